//! The flow test file format (`flows/tests/*.yaml`): a flow, and cases that each script a
//! caller (`hears`, `press`, `silence`) and check the outcome (`tagged`, `hangs_up`,
//! `queued`, `transferred`, `language`).
//!
//! Owns the serde types and their checks that need nothing but one value; every script
//! item keeps its position so a failure points at its line, and the check of a test file
//! against the loaded flows without running it (for `hotline check`). Running the cases is
//! `flowtest`'s job.

use std::borrow::Cow;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use crate::flow::diagnostic::Diagnostic;
use crate::flow::duration::DisplayDuration;
use crate::flow::flowset::FlowSet;
use crate::flow::load::yaml_files;
use crate::flow::model::{HELP_MARKER, HumanDuration, OrderedMap, Spanned, TagValue, Text};
use crate::tools::phone::{QUEUE_ANSWERS, QueueAnswer};

/// Test files larger than this are refused: a test file is a few KiB.
pub const MAX_TEST_FILE_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "hotline flow test file")]
pub struct TestFile {
    /// The flow every case calls.
    #[schemars(with = "String")]
    pub flow: Spanned<String>,
    #[schemars(with = "Vec<TestCase>")]
    pub cases: Vec<Spanned<TestCase>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// The calling number (the `caller` variable). Read as written: `+4930123456`
    /// unquoted keeps its `+`.
    #[serde(default)]
    #[schemars(with = "Option<Text>")]
    pub caller: Option<Spanned<String>>,
    /// The dialed number (the `dialed` variable).
    #[serde(default)]
    #[schemars(with = "Option<Text>")]
    pub dialed: Option<Spanned<String>>,
    /// The wall-clock time of the call, for `hours`: `2026-11-23T10:00:00+01:00`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub at: Option<Spanned<String>>,
    /// Answers of `http` steps, by step name.
    #[serde(default)]
    #[schemars(with = "Option<OrderedMap<String, HttpStubSpec>>")]
    pub http: Option<Spanned<OrderedMap<String, HttpStubSpec>>>,
    /// How queue steps end: `queue: callback`, or
    /// `{ outcome: answered, agent: alice, wait: 30s }`.
    #[serde(default)]
    #[schemars(with = "Option<QueueSpec>")]
    pub queue: Option<Spanned<QueueSpec>>,
    #[schemars(with = "Vec<ScriptItem>")]
    pub script: Spanned<Vec<Spanned<ScriptItem>>>,
}

/// `{ status: 200, body: { eta: "2026-11-25" }, delay: 500ms }`
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpStubSpec {
    /// Default 200.
    #[serde(default)]
    pub status: Option<u16>,
    /// Default: no body (JSON `null`).
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    /// How long the server takes to answer (default: at once).
    #[serde(default)]
    pub delay: Option<HumanDuration>,
}

/// The answer of the simulated agent queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSpec(pub QueueAnswer);

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct QueueSpecFields {
    outcome: String,
    agent: Option<String>,
    wait: Option<HumanDuration>,
}

impl<'de> Deserialize<'de> for QueueSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = QueueSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(
                    f,
                    "{QUEUE_ANSWERS}, or {{ outcome: ..., agent: ..., wait: ... }}"
                )
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<QueueSpec, E> {
                answer::<E>(s, None, None)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<QueueSpec, A::Error> {
                let f = QueueSpecFields::deserialize(de::value::MapAccessDeserializer::new(map))?;
                answer::<A::Error>(&f.outcome, f.agent.as_deref(), f.wait.map(|w| w.0))
            }
        }
        fn answer<E: de::Error>(
            word: &str,
            agent: Option<&str>,
            wait: Option<Duration>,
        ) -> Result<QueueSpec, E> {
            QueueAnswer::from_word(word, agent.unwrap_or("agent"), wait.unwrap_or_default())
                .map(QueueSpec)
                .ok_or_else(|| {
                    E::custom(format!(
                        "expected a queue outcome ({QUEUE_ANSWERS}), found '{word}'"
                    ))
                })
        }
        d.deserialize_any(V)
    }
}

/// One line of a case's script.
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptItem {
    /// The next prompt played has this name.
    Hears(String),
    /// These keys are pressed now (during the prompt playing, if one is).
    Press(String),
    /// This much time passes without a key.
    Silence(Duration),
    /// The call's tags include these (values compared as text).
    Tagged(Vec<(String, String)>),
    /// The caller's language is now this.
    Language(String),
    /// With `true`: the flow ends the call, after the prompt playing now and nothing else.
    /// With `false`: the call is still going.
    HangsUp(bool),
    /// The call is handed to this queue.
    Queued(String),
    /// The call is transferred to this address.
    Transferred(String),
}

impl ScriptItem {
    /// The item as written in a script, for the expected side of a report.
    pub fn to_line(&self) -> String {
        match self {
            ScriptItem::Hears(p) => format!("hears: {p}"),
            ScriptItem::Press(k) => format!("press: {k}"),
            ScriptItem::Silence(d) => format!("silence: {}", DisplayDuration(*d)),
            ScriptItem::Tagged(tags) => format!("tagged: {}", tags_line(tags)),
            ScriptItem::Language(l) => format!("language: {l}"),
            ScriptItem::HangsUp(b) => format!("hangs_up: {b}"),
            ScriptItem::Queued(q) => format!("queued: {q}"),
            ScriptItem::Transferred(t) => format!("transferred: {t}"),
        }
    }
}

/// `{ k: v, k2: v2 }`
pub fn tags_line(tags: &[(String, String)]) -> String {
    let inner: Vec<String> = tags.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    format!("{{ {} }}", inner.join(", "))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ScriptFields {
    /// The next prompt played has this name.
    hears: Option<String>,
    /// These keys are pressed now (during the prompt playing, if one is); quote # and *.
    // `Some(None)`: the key is there with nothing after it (`press: #`, a comment).
    #[serde(default, deserialize_with = "present")]
    #[schemars(with = "Option<Keys>")]
    press: Option<Option<Text>>,
    /// This much time passes without a key.
    silence: Option<HumanDuration>,
    /// The call's tags include these (values compared as text).
    tagged: Option<OrderedMap<String, TagValue>>,
    /// The caller's language is now this.
    language: Option<String>,
    /// true: the flow ends the call, after the prompt playing now; false: the call goes on.
    hangs_up: Option<bool>,
    /// The call is handed to this queue.
    queued: Option<String>,
    /// The call is transferred to this address.
    transferred: Option<String>,
}

/// Keys to press, as the schema shows them: YAML reads unquoted digits as a number.
struct Keys;

impl JsonSchema for Keys {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Keys".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": "string", "pattern": "^[0-9*#\\s]+$" },
                { "type": "integer", "minimum": 0 }
            ]
        })
    }
}

// One script line is a map with exactly one of the fields' keys.
impl JsonSchema for ScriptItem {
    fn schema_name() -> Cow<'static, str> {
        "ScriptItem".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut schema = ScriptFields::json_schema(generator);
        schema.insert("minProperties".to_owned(), 1.into());
        schema.insert("maxProperties".to_owned(), 1.into());
        schema
    }
}

// A queue answer is a word, or a table with the word as `outcome`.
impl JsonSchema for QueueSpec {
    fn schema_name() -> Cow<'static, str> {
        "QueueAnswer".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let outcome = json_schema!({ "enum": queue_words() });
        let mut fields = QueueSpecFields::json_schema(generator);
        if let Some(props) = fields.get_mut("properties").and_then(|p| p.as_object_mut()) {
            props.insert("outcome".to_owned(), outcome.clone().to_value());
        }
        json_schema!({
            "description": format!("how queue steps end: {QUEUE_ANSWERS}"),
            "anyOf": [outcome, fields]
        })
    }
}

/// The words of [`QUEUE_ANSWERS`], one by one.
fn queue_words() -> Vec<&'static str> {
    QUEUE_ANSWERS
        .split(", ")
        .flat_map(|w| w.split(" or "))
        .collect()
}

/// A JSON Schema (draft 2020-12) of flow test files, for editors that complete and check
/// keys; whether the flow, prompts and steps named exist is `hotline check`'s to say.
pub fn test_file_schema() -> serde_json::Value {
    let mut v = schemars::schema_for!(TestFile).to_value();
    crate::flow::model::drop_null(&mut v);
    v
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<Text>>, D::Error> {
    Option::<Text>::deserialize(d).map(Some)
}

fn with_help<E: de::Error>(message: &str, help: &str) -> E {
    E::custom(format!("{message}{HELP_MARKER}{help}"))
}

impl<'de> Deserialize<'de> for ScriptItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ScriptItem;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "one of hears, press, silence, tagged, language, hangs_up, queued, transferred",
                )
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ScriptItem, A::Error> {
                let f = ScriptFields::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let mut items = Vec::new();
                if let Some(p) = f.hears {
                    items.push(ScriptItem::Hears(p));
                }
                if let Some(k) = f.press {
                    let keys: String = k
                        .map(|t| t.0)
                        .unwrap_or_default()
                        .chars()
                        .filter(|c| !c.is_whitespace())
                        .collect();
                    if keys.is_empty() {
                        return Err(with_help(
                            "'press' needs keys",
                            "quote # and * (press: \"#\"): unquoted, # starts a comment",
                        ));
                    }
                    if let Some(bad) = keys.chars().find(|c| !matches!(c, '0'..='9' | '*' | '#')) {
                        return Err(<A::Error as de::Error>::custom(format!(
                            "expected keys 0-9, * or # for 'press', found '{bad}'"
                        )));
                    }
                    items.push(ScriptItem::Press(keys));
                }
                if let Some(s) = f.silence {
                    items.push(ScriptItem::Silence(s.0));
                }
                if let Some(t) = f.tagged {
                    items.push(ScriptItem::Tagged(
                        t.entries
                            .into_iter()
                            .map(|(k, v)| (k.value, v.value.to_string()))
                            .collect(),
                    ));
                }
                if let Some(l) = f.language {
                    items.push(ScriptItem::Language(l));
                }
                if let Some(b) = f.hangs_up {
                    items.push(ScriptItem::HangsUp(b));
                }
                if let Some(q) = f.queued {
                    items.push(ScriptItem::Queued(q));
                }
                if let Some(t) = f.transferred {
                    items.push(ScriptItem::Transferred(t));
                }
                match items.len() {
                    1 => Ok(items.remove(0)),
                    0 => Err(with_help(
                        "a script item needs one key",
                        "for example - hears: welcome, - press: \"1\", - silence: 6s",
                    )),
                    _ => Err(with_help(
                        "one script item does one thing; this one has several keys",
                        "write each on its own '- ' line, in the order they happen",
                    )),
                }
            }
        }
        d.deserialize_map(V)
    }
}

/// Parses a test file's text; a problem is a diagnostic at its line.
pub fn parse_test_file(file: &Path, text: &str) -> Result<TestFile, Diagnostic> {
    if text.len() > MAX_TEST_FILE_BYTES {
        return Err(Diagnostic::error(
            file,
            format!(
                "the file is {} bytes; a test file may have at most {MAX_TEST_FILE_BYTES}",
                text.len()
            ),
        ));
    }
    // The limits and the messages of flow files: an alias bomb fails in milliseconds
    // here too, and a misspelt key gets a "did you mean".
    serde_saphyr::from_str_with_options::<TestFile>(text, crate::flow::load::yaml_options())
        .map_err(|e| crate::flow::load::yaml_error(file, text, &e))
}

/// Checks the flow test files in `dir` (every `*.yaml`) against the loaded flows without
/// running them, for `hotline check`: see [`check_test_file`].
/// What a test file whose flow is not loaded is told.
pub fn not_loaded(flow: &str) -> String {
    format!("flow '{flow}' is not loaded")
}

/// Whether `d` says a test's flow is not loaded, for one of `broken` (flows whose files have
/// errors of their own: those errors are the cause, reported once).
pub fn names_broken_flow(d: &Diagnostic, broken: &std::collections::BTreeSet<String>) -> bool {
    broken.iter().any(|f| d.message == not_loaded(f))
}

pub fn check_tests_dir(dir: &Path, flows: &FlowSet) -> Vec<Diagnostic> {
    let files = match yaml_files(dir) {
        Ok(f) => f,
        Err(e) => {
            return vec![Diagnostic::error(
                dir,
                format!("cannot read the flow test folder: {e}"),
            )];
        }
    };
    let mut out = Vec::new();
    for file in files {
        match crate::flow::load::read_flow_file(&file) {
            Ok(src) => out.extend(check_test_file(&file, &src.text, flows)),
            // The same limits as flow files: size, UTF-8.
            Err(d) => out.push(d),
        }
    }
    out
}

/// Checks one flow test file without running it: it parses, its flow is loaded, and what
/// its cases name exists in the flows: `http` stubs name http steps, `hears` prompts some
/// step plays, `tagged` tags some step sets, `queued` queues some step uses, `at` is a
/// timestamp. Every problem is reported, each at its line.
pub fn check_test_file(file: &Path, text: &str, flows: &FlowSet) -> Vec<Diagnostic> {
    use crate::flow::diagnostic::did_you_mean_help;
    let tf = match parse_test_file(file, text) {
        Ok(tf) => tf,
        Err(d) => return vec![d],
    };
    let mut out = Vec::new();
    let flow = tf.flow.value.as_str();
    if flows.id(flow).is_none() {
        let names = flows.names();
        let help = did_you_mean_help(flow, names.iter().copied()).unwrap_or_else(|| {
            if names.is_empty() {
                "no flow is loaded".to_owned()
            } else {
                format!("loaded flows: {}", names.join(", "))
            }
        });
        out.push(
            Diagnostic::error(file, not_loaded(flow))
                .at_location(text, tf.flow.referenced)
                .with_help(help),
        );
        return out;
    }
    let known = Known::of(flows);
    let unknown = |what: &str, name: &str, at, pool: &std::collections::BTreeSet<&str>| {
        let help = did_you_mean_help(name, pool.iter().copied()).unwrap_or_else(|| {
            if pool.is_empty() {
                format!("the flows have no {what}")
            } else {
                let mut names: Vec<&str> = pool.iter().copied().take(12).collect();
                if pool.len() > names.len() {
                    names.push("...");
                }
                format!("the flows have: {}", names.join(", "))
            }
        });
        let message = if what == "prompt" {
            format!("no step plays a prompt named '{name}'")
        } else {
            format!("no {what} named '{name}'")
        };
        Diagnostic::error(file, message)
            .at_location(text, at)
            .with_help(help)
    };
    for case in &tf.cases {
        let c = &case.value;
        if let Some(at) = &c.at
            && let Err(e) = check_timestamp(&at.value)
        {
            out.push(
                Diagnostic::error(file, e)
                    .at_location(text, at.referenced)
                    .with_help("write it as 2026-11-23T10:00:00+01:00"),
            );
        }
        for (step, _) in c.http.iter().flat_map(|m| m.value.entries.iter()) {
            if !known.http_steps.contains(step.value.as_str()) {
                out.push(unknown(
                    "http step",
                    &step.value,
                    step.referenced,
                    &known.http_steps,
                ));
            }
        }
        for item in &c.script.value {
            let d = match &item.value {
                ScriptItem::Hears(p) if !known.prompts.contains(p.as_str()) => {
                    unknown("prompt", p, item.referenced, &known.prompts)
                }
                ScriptItem::Queued(q) if !known.queues.contains(q.as_str()) => {
                    unknown("queue", q, item.referenced, &known.queues)
                }
                ScriptItem::Tagged(tags) => {
                    match tags.iter().find(|(k, _)| !known.tags.contains(k.as_str())) {
                        Some((k, _)) => unknown("tag", k, item.referenced, &known.tags),
                        None => continue,
                    }
                }
                _ => continue,
            };
            out.push(d);
        }
    }
    out
}

/// What the loaded flows can do, by name, for the checks of flow tests.
struct Known<'a> {
    http_steps: std::collections::BTreeSet<&'a str>,
    prompts: std::collections::BTreeSet<&'a str>,
    tags: std::collections::BTreeSet<&'a str>,
    queues: std::collections::BTreeSet<&'a str>,
}

impl<'a> Known<'a> {
    fn of(flows: &'a FlowSet) -> Self {
        use crate::flow::flowset::{AudioItem, StepAction};
        let mut k = Known {
            http_steps: Default::default(),
            prompts: [crate::flow::machine::DEFAULT_GOODBYE_PROMPT].into(),
            tags: Default::default(),
            queues: Default::default(),
        };
        for step in flows.flows().flat_map(|f| f.steps.iter()) {
            k.tags.extend(step.tags.iter().map(|(t, _)| t.as_str()));
            let mut audio: Vec<&'a [AudioItem]> = Vec::new();
            match &step.action {
                StepAction::Play { audio: a, .. } | StepAction::Hangup { audio: a } => {
                    audio.push(a)
                }
                StepAction::Menu(m) => audio.extend([
                    &m.prompt[..],
                    &m.no_input[..],
                    &m.invalid[..],
                    &m.retry_prompt[..],
                ]),
                StepAction::Collect(c) => {
                    audio.extend([
                        &c.prompt[..],
                        &c.no_input[..],
                        &c.invalid[..],
                        &c.retry_prompt[..],
                    ]);
                    if let Some(conf) = &c.confirm {
                        audio.extend([&conf.prompt[..], &conf.then[..]]);
                    }
                }
                StepAction::Record(r) => audio.push(&r.prompt),
                StepAction::Http(_) => {
                    k.http_steps.insert(step.name.as_str());
                }
                StepAction::Queue(q) => {
                    k.queues.insert(q.queue.as_str());
                }
                _ => {}
            }
            for item in audio.into_iter().flatten() {
                if let AudioItem::Prompt(p) = item {
                    k.prompts.insert(p.as_str());
                }
            }
        }
        k
    }
}

/// Checks the shape of an RFC 3339 time (`2026-11-23T10:00:00+01:00`, `...Z`).
pub fn check_timestamp(s: &str) -> Result<(), String> {
    let bad = || format!("expected a date and time like 2026-11-23T10:00:00+01:00, found '{s}'");
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r)
            .is_some_and(|x| !x.is_empty() && x.iter().all(u8::is_ascii_digit))
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    let shape = digits(0..4)
        && at(4, b'-')
        && digits(5..7)
        && at(7, b'-')
        && digits(8..10)
        && (at(10, b'T') || at(10, b't') || at(10, b' '))
        && digits(11..13)
        && at(13, b':')
        && digits(14..16)
        && at(16, b':')
        && digits(17..19);
    if !shape {
        return Err(bad());
    }
    let mut i = 19;
    if at(i, b'.') {
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    let zone_ok = match b.get(i) {
        Some(b'Z' | b'z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            digits(i + 1..i + 3) && at(i + 3, b':') && digits(i + 4..i + 6) && i + 6 == b.len()
        }
        _ => false,
    };
    let field =
        |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<u32>().ok()).unwrap_or(99);
    let ranges_ok = (1..=12).contains(&field(5..7))
        && (1..=31).contains(&field(8..10))
        && field(11..13) <= 23
        && field(14..16) <= 59
        && field(17..19) <= 60;
    if zone_ok && ranges_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TestFile, Diagnostic> {
        parse_test_file(Path::new("t.yaml"), text)
    }

    #[test]
    fn a_case_parses_with_positions() {
        let f = parse(
            r#"flow: main
cases:
  - name: order status
    caller: +4930123456
    at: 2026-11-23T10:00:00+01:00
    http:
      lookup_order: { status: 200, body: { eta: "2026-11-25" } }
    script:
      - hears: welcome
      - press: 12345678#
      - silence: 6s
      - tagged: { reason: order_status, resolved: true }
      - hangs_up: true
"#,
        )
        .unwrap();
        let c = &f.cases[0].value;
        assert_eq!(c.caller.as_ref().unwrap().value, "+4930123456");
        assert_eq!(c.at.as_ref().unwrap().value, "2026-11-23T10:00:00+01:00");
        let stub = &c.http.as_ref().unwrap().value.entries[0];
        assert_eq!(stub.0.value, "lookup_order");
        assert_eq!(stub.1.value.body.as_ref().unwrap()["eta"], "2026-11-25");
        let s = &c.script.value;
        assert_eq!(s[1].value, ScriptItem::Press("12345678#".into()));
        assert_eq!(s[1].referenced.line(), 10);
        assert_eq!(s[2].value, ScriptItem::Silence(Duration::from_secs(6)));
        assert_eq!(
            s[3].value.to_line(),
            "tagged: { reason: order_status, resolved: true }"
        );
    }

    #[test]
    fn bad_items_point_at_their_line() {
        let d = parse("flow: main\ncases:\n  - name: x\n    script:\n      - hears: a\n        press: \"1\"\n").unwrap_err();
        assert!(d.message.contains("one thing"), "{d}");
        let d =
            parse("flow: main\ncases:\n  - name: x\n    script:\n      - press: #\n").unwrap_err();
        assert!(d.message.contains("needs keys"), "{d}");
        assert_eq!(d.line, 5);
        let d =
            parse("flow: main\ncases:\n  - name: x\n    script:\n      - hear: a\n").unwrap_err();
        assert!(d.message.contains("hear"), "{d}");
        assert_eq!(d.line, 5);
    }

    #[test]
    fn timestamps() {
        assert!(check_timestamp("2026-11-23T10:00:00+01:00").is_ok());
        assert!(check_timestamp("2026-11-23T10:00:00Z").is_ok());
        assert!(check_timestamp("2026-11-23T10:00:00.250-05:00").is_ok());
        assert!(check_timestamp("2026-11-23").is_err());
        assert!(check_timestamp("2026-13-23T10:00:00Z").is_err());
        assert!(check_timestamp("2026-11-23T10:00:00+1").is_err());
        assert!(check_timestamp("2026-11-23T10:00:00Zjunk").is_err());
    }
}
