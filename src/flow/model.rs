//! The flow files as written: serde types for every key of the call-flow language.
//!
//! Owns the shape of the YAML and the checks that need nothing but one value (a duration,
//! a key). It must not check anything that needs context (does a step exist, is a step's
//! action unique): that is `check`'s job, which reads the `Spanned` positions kept here to
//! point admins at the exact spot. Every struct denies unknown keys so typos are caught.
//!
//! Values that YAML lets admins leave empty (`next:`) are read with [`some`], so an empty
//! value is an error instead of silently meaning "not given".

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
pub use serde_saphyr::{Location, Spanned};

pub use super::schema_stub::flow_schema;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    /// Free text for people reading the file and the reports.
    #[serde(default, deserialize_with = "some")]
    pub description: Option<Spanned<String>>,
    /// The first step; defaults to the first step in the file.
    #[serde(default, deserialize_with = "some")]
    pub start: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "some")]
    pub defaults: Option<Spanned<Defaults>>,
    /// Keys that work in every menu and collect of this flow, to the step they lead to.
    #[serde(default, deserialize_with = "some")]
    pub global_keys: Option<Spanned<OrderedMap<DtmfKey, String>>>,
    /// The steps by name, in file order.
    pub steps: Spanned<OrderedMap<String, Step>>,
}

/// `defaults: { language: en, timeout: 5s, retries: 3 }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    #[serde(default, deserialize_with = "some")]
    pub language: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "some")]
    pub timeout: Option<Spanned<HumanDuration>>,
    #[serde(default, deserialize_with = "some")]
    pub retries: Option<Spanned<u32>>,
}

/// The action keys of a step; each step has exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionKind {
    Play,
    Menu,
    Collect,
    Set,
    Branch,
    Hours,
    Language,
    Http,
    Record,
    Queue,
    Transfer,
    Goto,
    Hangup,
}

impl ActionKind {
    pub const ALL: [ActionKind; 13] = [
        ActionKind::Play,
        ActionKind::Menu,
        ActionKind::Collect,
        ActionKind::Set,
        ActionKind::Branch,
        ActionKind::Hours,
        ActionKind::Language,
        ActionKind::Http,
        ActionKind::Record,
        ActionKind::Queue,
        ActionKind::Transfer,
        ActionKind::Goto,
        ActionKind::Hangup,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Play => "play",
            ActionKind::Menu => "menu",
            ActionKind::Collect => "collect",
            ActionKind::Set => "set",
            ActionKind::Branch => "branch",
            ActionKind::Hours => "hours",
            ActionKind::Language => "language",
            ActionKind::Http => "http",
            ActionKind::Record => "record",
            ActionKind::Queue => "queue",
            ActionKind::Transfer => "transfer",
            ActionKind::Goto => "goto",
            ActionKind::Hangup => "hangup",
        }
    }

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

/// One step. Exactly one action key (`play`, `menu`, ...) must be present; the keys that
/// go with an action written beside it (`barge_in` with `play`, `open` with `hours`, ...)
/// are only valid with that action. `check` enforces both.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    // --- actions ---
    #[serde(default, deserialize_with = "some")]
    pub play: Option<Spanned<PlaySpec>>,
    #[serde(default, deserialize_with = "some")]
    pub menu: Option<Spanned<Menu>>,
    #[serde(default, deserialize_with = "some")]
    pub collect: Option<Spanned<Collect>>,
    /// Variable name to template.
    #[serde(default, deserialize_with = "some")]
    pub set: Option<Spanned<OrderedMap<String, Text>>>,
    #[serde(default, deserialize_with = "some")]
    pub branch: Option<Spanned<Branch>>,
    /// A schedule name from hotline.yaml.
    #[serde(default, deserialize_with = "some")]
    pub hours: Option<Spanned<String>>,
    /// A language code: prompts come from prompts/<code>/ from here on.
    #[serde(default, deserialize_with = "some")]
    pub language: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "some")]
    pub http: Option<Spanned<Http>>,
    #[serde(default, deserialize_with = "some")]
    pub record: Option<Spanned<Record>>,
    /// A queue name from hotline.yaml.
    #[serde(default, deserialize_with = "some")]
    pub queue: Option<Spanned<String>>,
    /// A SIP address.
    #[serde(default, deserialize_with = "some")]
    pub transfer: Option<Spanned<String>>,
    /// Another flow's name.
    #[serde(default, deserialize_with = "some")]
    pub goto: Option<Spanned<String>>,
    /// `hangup:`, `hangup: true`, `hangup: goodbye` or `hangup: { prompt: goodbye }`.
    #[serde(default, deserialize_with = "some")]
    pub hangup: Option<Spanned<HangupSpec>>,

    // --- shared ---
    #[serde(default, deserialize_with = "some")]
    pub next: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "some")]
    pub tag: Option<Spanned<OrderedMap<String, TagValue>>>,

    // --- written beside their action ---
    /// play: whether a key stops the prompt (default true).
    #[serde(default, deserialize_with = "some")]
    pub barge_in: Option<Spanned<bool>>,
    /// hours: step while open.
    #[serde(default, deserialize_with = "some")]
    pub open: Option<Spanned<String>>,
    /// hours: step while closed.
    #[serde(default, deserialize_with = "some")]
    pub closed: Option<Spanned<String>>,
    /// hours: step on holidays (default: `closed`).
    #[serde(default, deserialize_with = "some")]
    pub holiday: Option<Spanned<String>>,
    /// queue: higher is served first.
    #[serde(default, deserialize_with = "some")]
    pub priority: Option<Spanned<i32>>,
    /// queue: skills an agent needs.
    #[serde(default, deserialize_with = "some")]
    pub skills: Option<Spanned<Vec<Spanned<String>>>>,
    /// queue: step when the queue's maximum wait is reached.
    #[serde(default, deserialize_with = "some")]
    pub on_timeout: Option<Spanned<String>>,
    /// queue: step when the agent hangs up first.
    #[serde(default, deserialize_with = "some")]
    pub after: Option<Spanned<String>>,
    /// transfer: how long to ring.
    #[serde(default, deserialize_with = "some")]
    pub timeout: Option<Spanned<HumanDuration>>,
    /// transfer: step when the target does not answer.
    #[serde(default, deserialize_with = "some")]
    pub on_failure: Option<Spanned<String>>,
    /// goto: come back to `next` when the other flow ends.
    #[serde(default, rename = "return", deserialize_with = "some")]
    pub return_: Option<Spanned<bool>>,
}

impl Step {
    /// The action keys present, with the position of each value.
    pub fn actions(&self) -> Vec<(ActionKind, Location)> {
        let mut v = Vec::new();
        let mut add = |k: ActionKind, at: Option<Location>| {
            if let Some(at) = at {
                v.push((k, at));
            }
        };
        add(ActionKind::Play, self.play.as_ref().map(|s| s.referenced));
        add(ActionKind::Menu, self.menu.as_ref().map(|s| s.referenced));
        add(
            ActionKind::Collect,
            self.collect.as_ref().map(|s| s.referenced),
        );
        add(ActionKind::Set, self.set.as_ref().map(|s| s.referenced));
        add(
            ActionKind::Branch,
            self.branch.as_ref().map(|s| s.referenced),
        );
        add(ActionKind::Hours, self.hours.as_ref().map(|s| s.referenced));
        add(
            ActionKind::Language,
            self.language.as_ref().map(|s| s.referenced),
        );
        add(ActionKind::Http, self.http.as_ref().map(|s| s.referenced));
        add(
            ActionKind::Record,
            self.record.as_ref().map(|s| s.referenced),
        );
        add(ActionKind::Queue, self.queue.as_ref().map(|s| s.referenced));
        add(
            ActionKind::Transfer,
            self.transfer.as_ref().map(|s| s.referenced),
        );
        add(ActionKind::Goto, self.goto.as_ref().map(|s| s.referenced));
        add(
            ActionKind::Hangup,
            self.hangup.as_ref().map(|s| s.referenced),
        );
        v
    }

    /// The keys written beside an action, with the action they belong to.
    pub fn companions(&self) -> Vec<(&'static str, ActionKind, Location)> {
        let mut v = Vec::new();
        let mut add = |key: &'static str, k: ActionKind, at: Option<Location>| {
            if let Some(at) = at {
                v.push((key, k, at));
            }
        };
        add(
            "barge_in",
            ActionKind::Play,
            self.barge_in.as_ref().map(|s| s.referenced),
        );
        add(
            "open",
            ActionKind::Hours,
            self.open.as_ref().map(|s| s.referenced),
        );
        add(
            "closed",
            ActionKind::Hours,
            self.closed.as_ref().map(|s| s.referenced),
        );
        add(
            "holiday",
            ActionKind::Hours,
            self.holiday.as_ref().map(|s| s.referenced),
        );
        add(
            "priority",
            ActionKind::Queue,
            self.priority.as_ref().map(|s| s.referenced),
        );
        add(
            "skills",
            ActionKind::Queue,
            self.skills.as_ref().map(|s| s.referenced),
        );
        add(
            "on_timeout",
            ActionKind::Queue,
            self.on_timeout.as_ref().map(|s| s.referenced),
        );
        add(
            "after",
            ActionKind::Queue,
            self.after.as_ref().map(|s| s.referenced),
        );
        add(
            "timeout",
            ActionKind::Transfer,
            self.timeout.as_ref().map(|s| s.referenced),
        );
        add(
            "on_failure",
            ActionKind::Transfer,
            self.on_failure.as_ref().map(|s| s.referenced),
        );
        add(
            "return",
            ActionKind::Goto,
            self.return_.as_ref().map(|s| s.referenced),
        );
        v
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Menu {
    pub prompt: Spanned<PlaySpec>,
    pub options: Spanned<OrderedMap<DtmfKey, MenuChoice>>,
    #[serde(default, deserialize_with = "some")]
    pub timeout: Option<Spanned<HumanDuration>>,
    #[serde(default, deserialize_with = "some")]
    pub retries: Option<Spanned<u32>>,
    /// Played after a timeout, before the menu is offered again.
    #[serde(default, deserialize_with = "some")]
    pub no_input: Option<Spanned<PlaySpec>>,
    /// Played after a key that is not an option, before the menu is offered again.
    #[serde(default, deserialize_with = "some")]
    pub invalid: Option<Spanned<PlaySpec>>,
    #[serde(default, deserialize_with = "some")]
    pub on_failure: Option<Spanned<String>>,
    /// A key that plays the menu again (not counted as a failure).
    #[serde(default, deserialize_with = "some")]
    pub repeat_key: Option<Spanned<DtmfKey>>,
}

/// A menu option: a step name, or `{ language: de, next: main_menu }`.
#[derive(Debug, Clone, PartialEq)]
pub enum MenuChoice {
    Step(String),
    Switch {
        language: Option<Spanned<String>>,
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MenuChoiceFields {
    #[serde(default, deserialize_with = "some")]
    language: Option<Spanned<String>>,
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
                    next: f.next,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// `collect`: play a prompt, read several digits into a variable.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Collect {
    pub prompt: Spanned<PlaySpec>,
    pub into: Spanned<String>,
    #[serde(default, deserialize_with = "some")]
    pub min_digits: Option<Spanned<u32>>,
    #[serde(default, deserialize_with = "some")]
    pub max_digits: Option<Spanned<u32>>,
    /// The key that ends the entry early (`*` or `#`); not part of the value.
    #[serde(default, deserialize_with = "some")]
    pub terminator: Option<Spanned<DtmfKey>>,
    /// Wait for the first digit, from the end of the prompt.
    #[serde(default, deserialize_with = "some")]
    pub timeout: Option<Spanned<HumanDuration>>,
    /// Wait between digits; the entry ends when it passes.
    #[serde(default, deserialize_with = "some")]
    pub inter_digit_timeout: Option<Spanned<HumanDuration>>,
    /// A regular expression the whole entry must match.
    #[serde(default, deserialize_with = "some")]
    pub pattern: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "some")]
    pub no_input: Option<Spanned<PlaySpec>>,
    #[serde(default, deserialize_with = "some")]
    pub invalid: Option<Spanned<PlaySpec>>,
    #[serde(default, deserialize_with = "some")]
    pub retries: Option<Spanned<u32>>,
    #[serde(default, deserialize_with = "some")]
    pub confirm: Option<Spanned<Confirm>>,
    #[serde(default, deserialize_with = "some")]
    pub next: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "some")]
    pub on_failure: Option<Spanned<String>>,
}

/// `confirm`: read the entry back and ask the caller to accept it.
/// `{ prompt: [you_entered, { say: digits, value: "{{ order }}" }, press_1_or_2], yes: "1", no: "2" }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Confirm {
    pub prompt: Spanned<PlaySpec>,
    /// Accepts the entry (default `1`).
    #[serde(default, deserialize_with = "some")]
    pub yes: Option<Spanned<DtmfKey>>,
    /// Asks for the entry again (default `2`).
    #[serde(default, deserialize_with = "some")]
    pub no: Option<Spanned<DtmfKey>>,
}

/// `branch`: the first `when` whose condition holds decides; otherwise `else`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Branch {
    pub when: Spanned<Vec<Spanned<When>>>,
    #[serde(default, rename = "else", deserialize_with = "some")]
    pub else_: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct When {
    #[serde(rename = "if")]
    pub if_: Spanned<Text>,
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    pub url: Spanned<String>,
    #[serde(default, deserialize_with = "some")]
    pub method: Option<Spanned<HttpMethod>>,
    #[serde(default, deserialize_with = "some")]
    pub headers: Option<Spanned<OrderedMap<String, Text>>>,
    /// A text template, or a mapping sent as JSON (its strings may be templates).
    #[serde(default, deserialize_with = "some")]
    pub body: Option<Spanned<serde_json::Value>>,
    #[serde(default, deserialize_with = "some")]
    pub timeout: Option<Spanned<HumanDuration>>,
    /// Variable that receives the parsed JSON body.
    #[serde(default, deserialize_with = "some")]
    pub into: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "some")]
    pub next: Option<Spanned<String>>,
    /// Step on timeout, non-2xx status or a body that is not JSON.
    #[serde(default, deserialize_with = "some")]
    pub on_error: Option<Spanned<String>>,
}

/// `record`: voicemail or a spoken comment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    #[serde(default, deserialize_with = "some")]
    pub prompt: Option<Spanned<PlaySpec>>,
    #[serde(default, deserialize_with = "some")]
    pub max_duration: Option<Spanned<HumanDuration>>,
    #[serde(default, deserialize_with = "some")]
    pub silence_timeout: Option<Spanned<HumanDuration>>,
    #[serde(default, deserialize_with = "some")]
    pub terminator: Option<Spanned<DtmfKey>>,
    #[serde(default, deserialize_with = "some")]
    pub beep: Option<Spanned<bool>>,
    #[serde(default, deserialize_with = "some")]
    pub into: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "some")]
    pub next: Option<Spanned<String>>,
}
