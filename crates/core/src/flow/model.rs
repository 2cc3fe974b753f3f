//! The flow files as written: serde types for every key of the call-flow language.
//!
//! Owns the shape of the YAML and the checks that need nothing but one value (a duration,
//! a key). It must not check anything that needs context (does a step exist, is a step's
//! action unique): that is `check`'s job, which reads the `Spanned` positions kept here to
//! point admins at the exact spot. Every struct denies unknown keys so typos are caught.
//!
//! Values that YAML lets admins leave empty (`next:`) are read with [`some`], so an empty
//! value is an error instead of silently meaning "not given".

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
pub use serde_saphyr::{Location, Spanned};

use super::duration::{DURATION_FORMS, parse_duration};

/// Messages built by the visitors below carry an optional hint after this marker; the
/// loader splits it off into the diagnostic's `help`.
pub const HELP_MARKER: &str = "\nhelp: ";

fn custom_with_help<E: de::Error>(message: impl fmt::Display, help: Option<&str>) -> E {
    match help {
        Some(h) => E::custom(format!("{message}{HELP_MARKER}{h}")),
        None => E::custom(message),
    }
}

/// Reads a present key as `Some`, so `key:` with nothing after it is an error
/// ("needs a value") rather than the same as leaving the key out.
pub fn some<'de, D, T>(d: D) -> Result<Option<Spanned<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Spanned::<T>::deserialize(d).map(Some)
}

// ---------------------------------------------------------------------------------------
// Small value types
// ---------------------------------------------------------------------------------------

/// A duration written as `5s`, `500ms`, `2m` or `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(DURATION_FORMS)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<HumanDuration, E> {
                parse_duration(s)
                    .map(HumanDuration)
                    .map_err(|e| custom_with_help(&e, e.help.as_deref()))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<HumanDuration, E> {
                self.visit_str(&n.to_string())
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<HumanDuration, E> {
                self.visit_str(&n.to_string())
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<HumanDuration, E> {
                self.visit_str(&n.to_string())
            }
        }
        d.deserialize_any(V)
    }
}

/// One telephone key: `0`-`9`, `*` or `#`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DtmfKey(char);

impl DtmfKey {
    pub fn new(c: char) -> Option<Self> {
        matches!(c, '0'..='9' | '*' | '#').then_some(Self(c))
    }
    pub fn as_char(self) -> char {
        self.0
    }
    pub fn is_digit(self) -> bool {
        self.0.is_ascii_digit()
    }
}

impl fmt::Display for DtmfKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl<'de> Deserialize<'de> for DtmfKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DtmfKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("one key: 0-9, * or #")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<DtmfKey, E> {
                let mut chars = s.chars();
                if let (Some(c), None) = (chars.next(), chars.next())
                    && let Some(k) = DtmfKey::new(c)
                {
                    return Ok(k);
                }
                let help = if s.len() > 1 && s.bytes().all(|b| b.is_ascii_digit()) {
                    Some("a key is one press; to read several digits use a collect step")
                } else {
                    None
                };
                Err(custom_with_help(
                    format!("expected one key: 0-9, * or #, found '{s}'"),
                    help,
                ))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<DtmfKey, E> {
                self.visit_str(&n.to_string())
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<DtmfKey, E> {
                self.visit_str(&n.to_string())
            }
        }
        d.deserialize_str(V)
    }
}

/// Any YAML scalar read as text: `value: 42` and `value: "42"` mean the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a text value")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Text, E> {
                Ok(Text(s.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Text, E> {
                Ok(Text(b.to_string()))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Text, E> {
                Ok(Text(n.to_string()))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Text, E> {
                Ok(Text(n.to_string()))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Text, E> {
                Ok(Text(n.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A value recorded with the call by `tag`: text (may hold a `{{ template }}`), a number
/// or true/false.
#[derive(Debug, Clone, PartialEq)]
pub enum TagValue {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl fmt::Display for TagValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagValue::Text(s) => f.write_str(s),
            TagValue::Int(n) => write!(f, "{n}"),
            TagValue::Float(n) => write!(f, "{n}"),
            TagValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl<'de> Deserialize<'de> for TagValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TagValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a text, a number or true/false")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<TagValue, E> {
                Ok(TagValue::Text(s.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<TagValue, E> {
                Ok(TagValue::Bool(b))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<TagValue, E> {
                Ok(TagValue::Int(n))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<TagValue, E> {
                Ok(i64::try_from(n).map_or_else(|_| TagValue::Text(n.to_string()), TagValue::Int))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<TagValue, E> {
                Ok(TagValue::Float(n))
            }
        }
        d.deserialize_any(V)
    }
}

/// A YAML mapping read in file order, with the position of every key and value.
#[derive(Debug, Clone)]
pub struct OrderedMap<K, V> {
    pub entries: Vec<(Spanned<K>, Spanned<V>)>,
}

impl<K, V> Default for OrderedMap<K, V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<K, V> OrderedMap<K, V> {
    pub fn iter(&self) -> impl Iterator<Item = &(Spanned<K>, Spanned<V>)> {
        self.entries.iter()
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<K: PartialEq, V> OrderedMap<K, V> {
    pub fn get(&self, key: &K) -> Option<&Spanned<V>> {
        self.entries
            .iter()
            .find(|(k, _)| &k.value == key)
            .map(|(_, v)| v)
    }
}

impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<K, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis<K, V>(PhantomData<(K, V)>);
        impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Visitor<'de> for Vis<K, V> {
            type Value = OrderedMap<K, V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping (key: value lines)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(k) = map.next_key::<Spanned<K>>()? {
                    let v = map.next_value::<Spanned<V>>()?;
                    entries.push((k, v));
                }
                Ok(OrderedMap { entries })
            }
        }
        d.deserialize_map(Vis(PhantomData))
    }
}

// ---------------------------------------------------------------------------------------
// What callers hear
// ---------------------------------------------------------------------------------------

/// How `say` speaks a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SayKind {
    Digits,
    Number,
    Currency,
    Date,
    Time,
}

impl SayKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SayKind::Digits => "digits",
            SayKind::Number => "number",
            SayKind::Currency => "currency",
            SayKind::Date => "date",
            SayKind::Time => "time",
        }
    }
}

/// One thing to play: a recorded prompt, a spoken value, or a pause.
#[derive(Debug, Clone, PartialEq)]
pub enum PlayItem {
    /// `welcome`: prompts/<language>/welcome.wav
    Prompt(String),
    /// `{ say: date, value: "{{ result.eta }}" }`
    Say { kind: SayKind, value: String },
    /// `{ silence: 500ms }`
    Silence(Duration),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlayItemFields {
    say: Option<SayKind>,
    value: Option<Text>,
    silence: Option<HumanDuration>,
}

impl<'de> Deserialize<'de> for PlayItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PlayItem;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a prompt name, { say: ..., value: ... } or { silence: ... }")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<PlayItem, E> {
                Ok(PlayItem::Prompt(s.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PlayItem, A::Error> {
                let f = PlayItemFields::deserialize(de::value::MapAccessDeserializer::new(map))?;
                match (f.say, f.value, f.silence) {
                    (Some(kind), Some(value), None) => Ok(PlayItem::Say {
                        kind,
                        value: value.0,
                    }),
                    (None, None, Some(d)) => Ok(PlayItem::Silence(d.0)),
                    (Some(_), None, None) => Err(custom_with_help(
                        "'say' needs a 'value'",
                        Some("for example { say: digits, value: \"{{ order }}\" }"),
                    )),
                    (None, Some(_), None) => Err(custom_with_help(
                        "'value' needs 'say'",
                        Some("for example { say: number, value: \"{{ count }}\" }"),
                    )),
                    (None, None, None) => Err(custom_with_help(
                        "an empty item plays nothing",
                        Some("use a prompt name, { say: ..., value: ... } or { silence: ... }"),
                    )),
                    _ => Err(custom_with_help(
                        "one item is either a 'say' or a 'silence', not both",
                        Some("make them two items of the list"),
                    )),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// What a `play` (or a menu's `prompt`, ...) plays: one item or a list of them.
#[derive(Debug, Clone, PartialEq)]
pub enum PlaySpec {
    One(PlayItem),
    Many(Vec<Spanned<PlayItem>>),
}

impl PlaySpec {
    /// The items with their positions; a single item takes the position of the whole value.
    pub fn items(&self, at: Location) -> Vec<(Location, &PlayItem)> {
        match self {
            PlaySpec::One(item) => vec![(at, item)],
            PlaySpec::Many(items) => items.iter().map(|i| (i.referenced, &i.value)).collect(),
        }
    }
}

impl<'de> Deserialize<'de> for PlaySpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PlaySpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a prompt name or a list of prompts")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<PlaySpec, E> {
                Ok(PlaySpec::One(PlayItem::Prompt(s.to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PlaySpec, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<PlayItem>>()? {
                    items.push(item);
                }
                Ok(PlaySpec::Many(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PlaySpec, A::Error> {
                PlayItem::deserialize(de::value::MapAccessDeserializer::new(map)).map(PlaySpec::One)
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------------------
// The flow
// ---------------------------------------------------------------------------------------

/// One flow file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    /// Free text for people reading the file and the reports.
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<String>")]
    pub description: Option<Spanned<String>>,
    /// The first step; defaults to the first step in the file.
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<String>")]
    pub start: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<Defaults>")]
    pub defaults: Option<Spanned<Defaults>>,
    /// Keys that work in every menu and collect of this flow, to the step they lead to.
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<OrderedMap<DtmfKey, String>>")]
    pub global_keys: Option<Spanned<OrderedMap<DtmfKey, String>>>,
    /// The steps by name, in file order.
    #[schemars(with = "OrderedMap<String, Step>")]
    pub steps: Spanned<OrderedMap<String, Step>>,
}

/// `defaults: { language: en, timeout: 5s, retries: 3 }`
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<String>")]
    pub language: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<HumanDuration>")]
    pub timeout: Option<Spanned<HumanDuration>>,
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<u32>")]
    pub retries: Option<Spanned<u32>>,
}

/// Declares the keys of a step from one table: the action keys (one per step), the keys
/// every step may have, and the keys written beside an action, each with its help text
/// (the doc comment, which the JSON schema shows), its value type and, where the schema
/// shows another type than the one read, `as` that type. From it come the `Step` fields,
/// [`ActionKind`] with its list and names, [`Step::actions`], [`Step::companions`], the
/// reading of a step and its schema, so a key is added in one place.
macro_rules! step_keys {
    (
        actions {
            $( $(#[doc = $adoc:literal])* $akey:literal => $afield:ident: $aty:ty $(as $aschema:ty)?, $variant:ident; )*
        }
        shared {
            $( $(#[doc = $sdoc:literal])* $skey:literal => $sfield:ident: $sty:ty $(as $sschema:ty)?; )*
        }
        beside {
            $( $(#[doc = $cdoc:literal])* $ckey:literal => $cfield:ident: $cty:ty $(as $cschema:ty)?, with $owner:ident; )*
        }
    ) => {
        /// The action keys of a step; each step has exactly one.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ActionKind {
            $( $variant, )*
        }

        const ACTION_COUNT: usize = [$( $akey ),*].len();

        impl ActionKind {
            pub const ALL: [ActionKind; ACTION_COUNT] = [$( ActionKind::$variant ),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $( ActionKind::$variant => $akey, )*
                }
            }
        }

        /// One step. Exactly one action key (`play`, `menu`, ...) must be present; the keys
        /// that go with an action written beside it (`barge_in` with `play`, `open` with
        /// `hours`, ...) are only valid with that action. `check` enforces both.
        #[derive(Debug, Clone, Default)]
        pub struct Step {
            $( $(#[doc = $adoc])* pub $afield: Option<Spanned<$aty>>, )*
            $( $(#[doc = $sdoc])* pub $sfield: Option<Spanned<$sty>>, )*
            $( $(#[doc = $cdoc])* pub $cfield: Option<Spanned<$cty>>, )*
            /// Keys that are none of the above, as written (`check` reports them), so the
            /// rest of the step is still read and checked.
            pub unknown: Vec<Spanned<String>>,
        }

        /// Every key a step may have, in the order of the table.
        pub const STEP_KEYS: &[&str] = &[$( $akey, )* $( $skey, )* $( $ckey, )*];

        impl Step {
            /// The action keys present, with the position of each value.
            pub fn actions(&self) -> Vec<(ActionKind, Location)> {
                let mut v = Vec::new();
                $( if let Some(s) = &self.$afield { v.push((ActionKind::$variant, s.referenced)); } )*
                v
            }

            /// The keys written beside an action, with the action they belong to.
            pub fn companions(&self) -> Vec<(&'static str, ActionKind, Location)> {
                let mut v = Vec::new();
                $( if let Some(s) = &self.$cfield { v.push(($ckey, ActionKind::$owner, s.referenced)); } )*
                v
            }
        }

        impl<'de> Deserialize<'de> for Step {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = Step;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        // The words serde's derive uses; the loader turns them into plain ones.
                        f.write_str("struct Step")
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Step, A::Error> {
                        let mut step = Step::default();
                        while let Some(key) = map.next_key::<Spanned<Text>>()? {
                            match key.value.0.as_str() {
                                $( $akey => {
                                    if step.$afield.is_some() {
                                        return Err(de::Error::duplicate_field($akey));
                                    }
                                    step.$afield = Some(map.next_value()?);
                                } )*
                                $( $skey => {
                                    if step.$sfield.is_some() {
                                        return Err(de::Error::duplicate_field($skey));
                                    }
                                    step.$sfield = Some(map.next_value()?);
                                } )*
                                $( $ckey => {
                                    if step.$cfield.is_some() {
                                        return Err(de::Error::duplicate_field($ckey));
                                    }
                                    step.$cfield = Some(map.next_value()?);
                                } )*
                                _ => {
                                    map.next_value::<de::IgnoredAny>()?;
                                    step.unknown.push(Spanned::new(
                                        key.value.0,
                                        key.referenced,
                                        key.defined,
                                    ));
                                }
                            }
                        }
                        Ok(step)
                    }
                }
                d.deserialize_struct("Step", STEP_KEYS, V)
            }
        }

        impl JsonSchema for Step {
            fn schema_name() -> Cow<'static, str> {
                "Step".into()
            }
            fn json_schema(generator: &mut SchemaGenerator) -> Schema {
                let mut properties = serde_json::Map::new();
                $( properties.insert(
                    $akey.to_owned(),
                    key_schema_of(generator.subschema_for::<step_keys!(@schema $aty $(, $aschema)?)>(), &[$($adoc),*]),
                ); )*
                $( properties.insert(
                    $skey.to_owned(),
                    key_schema_of(generator.subschema_for::<step_keys!(@schema $sty $(, $sschema)?)>(), &[$($sdoc),*]),
                ); )*
                $( properties.insert(
                    $ckey.to_owned(),
                    key_schema_of(generator.subschema_for::<step_keys!(@schema $cty $(, $cschema)?)>(), &[$($cdoc),*]),
                ); )*
                json_schema!({
                    "description": "One step. Exactly one action key (`play`, `menu`, ...) must be present; the keys that\ngo with an action written beside it (`barge_in` with `play`, `open` with `hours`, ...)\nare only valid with that action. `check` enforces both.",
                    "type": "object",
                    "properties": properties,
                    "additionalProperties": false
                })
            }
        }
    };
    (@schema $ty:ty) => { $ty };
    (@schema $ty:ty, $schema:ty) => { $schema };
}

/// A key's schema with its help text, as schemars writes a documented field.
fn key_schema_of(schema: Schema, doc: &[&str]) -> serde_json::Value {
    let mut v = schema.to_value();
    let text = doc.iter().map(|l| l.trim()).collect::<Vec<_>>().join("\n");
    if !text.is_empty()
        && let serde_json::Value::Object(m) = &mut v
    {
        m.insert("description".to_owned(), text.into());
    }
    v
}

step_keys! {
    actions {
        "play" => play: PlaySpec, Play;
        "menu" => menu: Menu, Menu;
        "collect" => collect: Collect, Collect;
        /// Variable name to template.
        "set" => set: OrderedMap<String, Text>, Set;
        "branch" => branch: Branch, Branch;
        /// A schedule name from hotline.yaml.
        "hours" => hours: String, Hours;
        /// A language code: prompts come from prompts/<code>/ from here on.
        "language" => language: String, Language;
        "http" => http: Http, Http;
        "record" => record: Record, Record;
        /// A queue name from hotline.yaml.
        "queue" => queue: String, Queue;
        /// A SIP address.
        "transfer" => transfer: String, Transfer;
        /// Another flow's name.
        "goto" => goto: String, Goto;
        /// `hangup:`, `hangup: true`, `hangup: goodbye` or `hangup: { prompt: goodbye }`.
        "hangup" => hangup: HangupSpec, Hangup;
    }
    shared {
        "next" => next: String;
        "tag" => tag: OrderedMap<String, TagValue>;
        /// The reason for calling this step stands for (`order_status`): the call's
        /// reason in its record is the last one reached. The same as `tag: { reason: ... }`.
        "reason" => reason: String;
        /// Entering this step meets the caller's need in self-service (`order_status`):
        /// a call that then ends without an agent, transfer, callback or message counts
        /// as self-service.
        "resolved" => resolved: String;
        /// collect or menu: the question's name; the answer (1 to 5) is kept as a score.
        "survey" => survey: String;
    }
    beside {
        /// play: whether a key stops the prompt (default true).
        "barge_in" => barge_in: bool, with Play;
        /// hours: step while open.
        "open" => open: String, with Hours;
        /// hours: step while closed.
        "closed" => closed: String, with Hours;
        /// hours: step on holidays (default: `closed`).
        "holiday" => holiday: String, with Hours;
        /// queue: higher is served first.
        "priority" => priority: i32, with Queue;
        /// queue: skills an agent needs.
        "skills" => skills: Vec<Spanned<String>> as Vec<String>, with Queue;
        /// queue: step when the queue's maximum wait is reached.
        "on_timeout" => on_timeout: String, with Queue;
        /// queue: step when the agent hangs up first.
        "after" => after: String, with Queue;
        /// queue: keys that take the caller out of the line to a step (`"2": voicemail`).
        "keys" => keys: OrderedMap<DtmfKey, String>, with Queue;
        /// queue: step after the caller asked to be called back (default: goodbye).
        "on_callback" => on_callback: String, with Queue;
        /// transfer: how long to ring.
        "timeout" => timeout: HumanDuration, with Transfer;
        /// transfer: step when the target does not answer.
        "on_failure" => on_failure: String, with Transfer;
        /// goto: come back to `next` when the other flow ends.
        "return" => return_: bool, with Goto;
    }
}

impl ActionKind {
    /// Whether a step of this kind waits for the caller (or ends the call), so a loop
    /// through it cannot spin.
    pub fn waits_for_caller(self) -> bool {
        matches!(
            self,
            ActionKind::Menu
                | ActionKind::Collect
                | ActionKind::Record
                | ActionKind::Queue
                | ActionKind::Transfer
                | ActionKind::Hangup
        )
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `hangup`'s optional prompt, played (without barge-in) before the call ends.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HangupSpec {
    pub prompt: Option<PlaySpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HangupFields {
    prompt: PlaySpec,
}

impl<'de> Deserialize<'de> for HangupSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = HangupSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("nothing, true, a prompt name or { prompt: ... }")
            }
            fn visit_unit<E: de::Error>(self) -> Result<HangupSpec, E> {
                Ok(HangupSpec::default())
            }
            fn visit_none<E: de::Error>(self) -> Result<HangupSpec, E> {
                Ok(HangupSpec::default())
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<HangupSpec, E> {
                if b {
                    Ok(HangupSpec::default())
                } else {
                    Err(custom_with_help(
                        "'hangup: false' does not make sense",
                        Some("to continue the call use 'next' on the step before"),
                    ))
                }
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<HangupSpec, E> {
                Ok(HangupSpec {
                    prompt: Some(PlaySpec::One(PlayItem::Prompt(s.to_owned()))),
                })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<HangupSpec, A::Error> {
                let p = PlaySpec::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(HangupSpec { prompt: Some(p) })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<HangupSpec, A::Error> {
                let f = HangupFields::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(HangupSpec {
                    prompt: Some(f.prompt),
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// `menu`: play a prompt, read one key, branch on it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Menu {
    #[schemars(with = "PlaySpec")]
    pub prompt: Spanned<PlaySpec>,
    #[schemars(with = "OrderedMap<DtmfKey, MenuChoice>")]
    pub options: Spanned<OrderedMap<DtmfKey, MenuChoice>>,
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<HumanDuration>")]
    pub timeout: Option<Spanned<HumanDuration>>,
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<u32>")]
    pub retries: Option<Spanned<u32>>,
    /// Played after a timeout, before the menu is offered again.
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<PlaySpec>")]
    pub no_input: Option<Spanned<PlaySpec>>,
    /// Played after a key that is not an option, before the menu is offered again.
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<PlaySpec>")]
    pub invalid: Option<Spanned<PlaySpec>>,
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<String>")]
    pub on_failure: Option<Spanned<String>>,
    /// A key that plays the menu again (not counted as a failure).
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<DtmfKey>")]
    pub repeat_key: Option<Spanned<DtmfKey>>,
    /// Played instead of `prompt` when the menu is offered again after a failure.
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<PlaySpec>")]
    pub retry_prompt: Option<Spanned<PlaySpec>>,
    /// Timeouts tolerated before `on_failure`, counted apart from wrong keys.
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<u32>")]
    pub max_no_input: Option<Spanned<u32>>,
    /// Wrong keys tolerated before `on_failure`, counted apart from timeouts.
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<u32>")]
    pub max_invalid: Option<Spanned<u32>>,
}

/// A menu option: a step name, or `{ language: de, reason: sales, next: main_menu }`.
// Read once per option at load: the size of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum MenuChoice {
    Step(String),
    Switch {
        language: Option<Spanned<String>>,
        /// The reason for calling that choosing this option gives.
        reason: Option<Spanned<String>>,
        next: Spanned<String>,
    },
}

impl MenuChoice {
    /// The step this option leads to, positioned (a bare name takes the option's position).
    pub fn target(&self, at: Location) -> (&str, Location) {
        match self {
            MenuChoice::Step(s) => (s, at),
            MenuChoice::Switch { next, .. } => (&next.value, next.referenced),
        }
    }
    pub fn language(&self) -> Option<&Spanned<String>> {
        match self {
            MenuChoice::Step(_) => None,
            MenuChoice::Switch { language, .. } => language.as_ref(),
        }
    }
    pub fn reason(&self) -> Option<&Spanned<String>> {
        match self {
            MenuChoice::Step(_) => None,
            MenuChoice::Switch { reason, .. } => reason.as_ref(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MenuChoiceFields {
    #[serde(default, deserialize_with = "some")]
    language: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "some")]
    reason: Option<Spanned<String>>,
    next: Spanned<String>,
}

impl<'de> Deserialize<'de> for MenuChoice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MenuChoice;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a step name or { language: ..., next: ... }")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<MenuChoice, E> {
                Ok(MenuChoice::Step(s.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<MenuChoice, A::Error> {
                let f = MenuChoiceFields::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(MenuChoice::Switch {
                    language: f.language,
                    reason: f.reason,
                    next: f.next,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// `collect`: play a prompt, read several digits into a variable.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Collect {
    #[schemars(with = "PlaySpec")]
    pub prompt: Spanned<PlaySpec>,
    #[schemars(with = "String")]
    pub into: Spanned<String>,
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<u32>")]
    pub min_digits: Option<Spanned<u32>>,
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<u32>")]
    pub max_digits: Option<Spanned<u32>>,
    /// The key that ends the entry early (`*` or `#`); not part of the value.
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<DtmfKey>")]
    pub terminator: Option<Spanned<DtmfKey>>,
    /// Wait for the first digit, from the end of the prompt.
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<HumanDuration>")]
    pub timeout: Option<Spanned<HumanDuration>>,
    /// Wait between digits; the entry ends when it passes.
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<HumanDuration>")]
    pub inter_digit_timeout: Option<Spanned<HumanDuration>>,
    /// A regular expression the whole entry must match.
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<String>")]
    pub pattern: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<PlaySpec>")]
    pub no_input: Option<Spanned<PlaySpec>>,
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<PlaySpec>")]
    pub invalid: Option<Spanned<PlaySpec>>,
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<u32>")]
    pub retries: Option<Spanned<u32>>,
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<Confirm>")]
    pub confirm: Option<Spanned<Confirm>>,
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<String>")]
    pub next: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<String>")]
    pub on_failure: Option<Spanned<String>>,
    /// A key (`*` or `#`) that plays the prompt again, as the first key of an entry.
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<DtmfKey>")]
    pub repeat_key: Option<Spanned<DtmfKey>>,
    /// Played instead of `prompt` when the entry is asked for again after a failure.
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<PlaySpec>")]
    pub retry_prompt: Option<Spanned<PlaySpec>>,
    /// Timeouts tolerated before `on_failure`, counted apart from wrong entries.
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<u32>")]
    pub max_no_input: Option<Spanned<u32>>,
    /// Wrong entries tolerated before `on_failure`, counted apart from timeouts.
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<u32>")]
    pub max_invalid: Option<Spanned<u32>>,
}

/// `confirm`: read the entry back and ask the caller to accept it.
/// `{ prompt: you_entered, then: press_1_or_2 }` plays `you_entered`, the entry as digits,
/// then `press_1_or_2`. A `prompt` that has a `say` item itself is played as written.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Confirm {
    #[schemars(with = "PlaySpec")]
    pub prompt: Spanned<PlaySpec>,
    /// Played after the entry is read back (the keys to press).
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<PlaySpec>")]
    pub then: Option<Spanned<PlaySpec>>,
    /// Accepts the entry (default `1`).
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<DtmfKey>")]
    pub yes: Option<Spanned<DtmfKey>>,
    /// Asks for the entry again (default `2`).
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<DtmfKey>")]
    pub no: Option<Spanned<DtmfKey>>,
}

/// `branch`: the first `when` whose condition holds decides; otherwise `else`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Branch {
    #[schemars(with = "Vec<When>")]
    pub when: Spanned<Vec<Spanned<When>>>,
    #[serde(default, rename = "else", deserialize_with = "some")]
    #[schemars(with = "Option<String>")]
    pub else_: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct When {
    #[serde(rename = "if")]
    #[schemars(with = "Text")]
    pub if_: Spanned<Text>,
    #[schemars(with = "String")]
    pub next: Spanned<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum HttpMethod {
    #[serde(rename = "GET", alias = "get")]
    Get,
    #[serde(rename = "POST", alias = "post")]
    Post,
    #[serde(rename = "PUT", alias = "put")]
    Put,
    #[serde(rename = "PATCH", alias = "patch")]
    Patch,
    #[serde(rename = "DELETE", alias = "delete")]
    Delete,
}

/// `http`: a self-service lookup or a notification.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Http {
    #[schemars(with = "String")]
    pub url: Spanned<String>,
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<HttpMethod>")]
    pub method: Option<Spanned<HttpMethod>>,
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<OrderedMap<String, Text>>")]
    pub headers: Option<Spanned<OrderedMap<String, Text>>>,
    /// A text template, or a mapping sent as JSON (its strings may be templates).
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub body: Option<Spanned<serde_json::Value>>,
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<HumanDuration>")]
    pub timeout: Option<Spanned<HumanDuration>>,
    /// Variable that receives the parsed JSON body.
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<String>")]
    pub into: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<String>")]
    pub next: Option<Spanned<String>>,
    /// Step on timeout, non-2xx status or a body that is not JSON.
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<String>")]
    pub on_error: Option<Spanned<String>>,
}

/// `record`: voicemail or a spoken comment.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Record {
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<PlaySpec>")]
    pub prompt: Option<Spanned<PlaySpec>>,
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<HumanDuration>")]
    pub max_duration: Option<Spanned<HumanDuration>>,
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<HumanDuration>")]
    pub silence_timeout: Option<Spanned<HumanDuration>>,
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<DtmfKey>")]
    pub terminator: Option<Spanned<DtmfKey>>,
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<bool>")]
    pub beep: Option<Spanned<bool>>,
    /// The message is a voicemail: a call that ends after leaving one counts as
    /// `voicemail` (a spoken survey comment does not).
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<bool>")]
    pub voicemail: Option<Spanned<bool>>,
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<String>")]
    pub into: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "some")]
    #[schemars(with = "Option<String>")]
    pub next: Option<Spanned<String>>,
}

// ---------------------------------------------------------------------------------------
// JSON Schema
// ---------------------------------------------------------------------------------------

/// A JSON Schema (draft 2020-12) of a flow file, for editors that complete and check keys.
/// It describes the shape only; `hotline check` checks what needs context.
pub fn flow_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(Flow);
    schema.insert("title".to_owned(), "hotline flow file".into());
    let mut v = schema.to_value();
    drop_null(&mut v);
    v
}

/// Optional keys are Rust `Option`s, which schemars lets be `null`; in a flow file an
/// empty value is an error ("needs a value"), so the schema must not offer it.
pub fn drop_null(v: &mut serde_json::Value) {
    use serde_json::Value;
    let Value::Object(m) = v else {
        if let Value::Array(a) = v {
            a.iter_mut().for_each(drop_null);
        }
        return;
    };
    if m.get("default") == Some(&Value::Null) {
        m.remove("default");
    }
    if let Some(Value::Array(types)) = m.get_mut("type") {
        types.retain(|t| t != "null");
        if let [only] = types.as_slice() {
            let only = only.clone();
            m.insert("type".to_owned(), only);
        }
    }
    let null = serde_json::json!({ "type": "null" });
    if let Some(Value::Array(branches)) = m.get("anyOf")
        && branches.len() == 2
        && branches.contains(&null)
        && let Some(Value::Object(other)) = branches.iter().find(|b| **b != null).cloned()
    {
        m.remove("anyOf");
        m.extend(other);
    }
    m.values_mut().for_each(drop_null);
}

/// Keys YAML reads as numbers (`1:`) arrive as numbers; both forms are one key.
fn key_schema() -> Schema {
    json_schema!({
        "anyOf": [
            { "type": "string", "pattern": "^[0-9*#]$" },
            { "type": "integer", "minimum": 0, "maximum": 9 }
        ],
        "description": "one telephone key: 0-9, * or # (quote * and #)"
    })
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^ *([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)? *$",
            "minLength": 2,
            "description": "a duration like 5s, 500ms, 2m or 1h30m"
        })
    }
}

impl JsonSchema for DtmfKey {
    fn schema_name() -> Cow<'static, str> {
        "Key".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        key_schema()
    }
}

impl JsonSchema for Text {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Text".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["string", "number", "boolean"] })
    }
}

impl JsonSchema for TagValue {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "TagValue".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["string", "number", "boolean"] })
    }
}

impl<K: JsonSchema, V: JsonSchema> JsonSchema for OrderedMap<K, V> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        format!("Map_of_{}_to_{}", K::schema_name(), V::schema_name()).into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let keys = generator.subschema_for::<K>();
        let values = generator.subschema_for::<V>();
        json_schema!({
            "type": "object",
            "propertyNames": keys,
            "additionalProperties": values
        })
    }
}

impl JsonSchema for HttpMethod {
    fn schema_name() -> Cow<'static, str> {
        "HttpMethod".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "get", "post", "put", "patch", "delete"]
        })
    }
}

impl JsonSchema for PlayItem {
    fn schema_name() -> Cow<'static, str> {
        "PlayItem".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let say = generator.subschema_for::<SayKind>();
        let duration = generator.subschema_for::<HumanDuration>();
        json_schema!({
            "anyOf": [
                { "type": "string", "description": "a prompt name: prompts/<language>/NAME.wav" },
                {
                    "type": "object",
                    "properties": {
                        "say": say,
                        "value": { "type": ["string", "number", "boolean"] }
                    },
                    "required": ["say", "value"],
                    "additionalProperties": false
                },
                {
                    "type": "object",
                    "properties": { "silence": duration },
                    "required": ["silence"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

impl JsonSchema for PlaySpec {
    fn schema_name() -> Cow<'static, str> {
        "Play".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let item = generator.subschema_for::<PlayItem>();
        json_schema!({
            "anyOf": [item.clone(), { "type": "array", "items": item, "minItems": 1 }],
            "description": "a prompt name, { say: KIND, value: TEMPLATE }, { silence: DURATION }, or a list of them"
        })
    }
}

impl JsonSchema for MenuChoice {
    fn schema_name() -> Cow<'static, str> {
        "MenuChoice".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": "string", "description": "the step this key leads to" },
                {
                    "type": "object",
                    "properties": {
                        "language": { "type": "string" },
                        "reason": { "type": "string", "description": "the reason for calling this option gives" },
                        "next": { "type": "string" }
                    },
                    "required": ["next"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

impl JsonSchema for HangupSpec {
    fn schema_name() -> Cow<'static, str> {
        "Hangup".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let play = generator.subschema_for::<PlaySpec>();
        json_schema!({
            "anyOf": [
                { "type": "null" },
                { "const": true },
                play.clone(),
                {
                    "type": "object",
                    "properties": { "prompt": play },
                    "required": ["prompt"],
                    "additionalProperties": false
                }
            ]
        })
    }
}
