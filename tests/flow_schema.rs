//! The JSON Schema of flow files: well formed, with every step kind, every sample and test
//! flow valid against it and mistakes not (checked with the `jsonschema` crate, as an
//! editor would).

use std::path::Path;

use hotline::flow::model::{ActionKind, flow_schema};
use serde_json::{Map, Value};

fn yaml_to_json(text: &str) -> Value {
    serde_saphyr::from_str::<Value>(text).expect("YAML")
}

fn check(text: &str) -> Result<(), String> {
    static VALIDATOR: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    let validator = VALIDATOR.get_or_init(|| {
        jsonschema::draft202012::new(&flow_schema()).expect("the flow schema is a valid schema")
    });
    let errors: Vec<String> = validator
        .iter_errors(&yaml_to_json(text))
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

#[test]
fn the_schema_is_json_schema_with_every_step_kind() {
    let schema = flow_schema();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(schema["title"], "hotline flow file");
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["required"], serde_json::json!(["steps"]));
    let step: &Map<String, Value> = schema["$defs"]["Step"]["properties"]
        .as_object()
        .expect("Step has properties");
    for kind in ActionKind::ALL {
        assert!(
            step.contains_key(kind.as_str()),
            "{kind} is not in the schema"
        );
    }
    for companion in [
        "next", "tag", "barge_in", "open", "closed", "holiday", "return",
    ] {
        assert!(step.contains_key(companion), "{companion}");
    }
    // Every $ref resolves.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&schema, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r.strip_prefix("#/$defs/").expect("local ref");
        assert!(schema["$defs"].get(name).is_some(), "{r}");
    }
}

/// The flows of a folder that the engine loads (`hotline check` passes them).
fn yaml_in(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_sample_flows_and_the_tests_flows_are_valid_against_the_schema() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = yaml_in(&root.join("flows"));
    files.extend(yaml_in(&root.join("tests/flows")));
    files.extend(yaml_in(&root.join("tests/flow_tests/flows")));
    assert!(files.len() >= 5, "{files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable");
        check(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
}

#[test]
fn every_step_kind_and_option_is_valid_and_mistakes_are_not() {
    let every = r##"
description: all of it
start: a
defaults: { language: en, timeout: 5s, retries: 2 }
global_keys: { "0": a, "*": back }
steps:
  a:
    play: [welcome, { say: digits, value: "{{ caller }}" }, { silence: 500ms }]
    barge_in: false
    tag: { reason: x, n: 1, ok: true }
    next: b
  b:
    menu:
      prompt: main_menu
      retry_prompt: main_menu_short
      options: { "1": c, "2": { language: de, next: c } }
      timeout: 4s
      retries: 1
      max_no_input: 2
      max_invalid: 3
      no_input: please_choose
      invalid: invalid_option
      repeat_key: "9"
      on_failure: c
  c:
    collect:
      prompt: enter_order_number
      into: order
      min_digits: 6
      max_digits: 10
      terminator: "#"
      repeat_key: "*"
      inter_digit_timeout: 3s
      pattern: '^[0-9]+$'
      retry_prompt: short
      max_invalid: 2
      confirm: { prompt: you_entered, then: press_1_or_2, yes: 1, no: "2" }
      next: d
  d:
    set: { x: "{{ order }}" }
    next: e
  e:
    branch:
      when: [{ if: 'x == "1"', next: f }]
      else: f
  f:
    hours: service_hours
    open: g
    closed: g
    holiday: g
  g:
    http:
      url: "{{ config.crm_url }}/x"
      method: post
      headers: { X-A: b }
      body: { a: [1, "{{ x }}"] }
      timeout: 2s
      into: r
      next: h
      on_error: h
  h:
    record: { prompt: leave_a_message, max_duration: 2m, silence_timeout: 5s, terminator: "#", beep: true, into: m, next: i }
  i:
    queue: support
    priority: 2
    skills: [de]
    on_timeout: j
    after: j
  j:
    transfer: "sip:desk@example.com"
    timeout: 30s
    on_failure: k
  k:
    goto: other
    return: true
    next: l
  l:
    language: de
    next: m
  m:
    hangup: { prompt: goodbye }
"##;
    check(every).expect("valid");
    for (mistake, yaml) in [
        ("unknown step key", "steps: { a: { play: x, nxt: b } }"),
        (
            "unknown menu key",
            "steps: { a: { menu: { prompt: x, options: { '1': a }, retry: 1 } } }",
        ),
        (
            "bad duration",
            "steps: { a: { menu: { prompt: x, options: { '1': a }, timeout: 5 secs } } }",
        ),
        (
            "bad key",
            "steps: { a: { menu: { prompt: x, options: { '10': a } } } }",
        ),
        (
            "bad say kind",
            "steps: { a: { play: { say: digit, value: '1' } } }",
        ),
        ("no steps", "description: x"),
        ("list for next", "steps: { a: { play: x, next: [b] } }"),
        ("empty next", "steps: { a: { play: x, next: } }"),
    ] {
        assert!(check(yaml).is_err(), "{mistake} was accepted");
    }
}
