//! The JSON Schema of flow files: well formed, with every step kind, and the sample flows
//! valid against it (checked by a small validator of the keywords the schema uses).

use std::path::Path;

use hotline::flow::model::{ActionKind, flow_schema};
use serde_json::{Map, Value};

/// Checks `value` against `schema`; returns the first problem as "path: what".
fn validate(root: &Value, schema: &Value, value: &Value, path: &str) -> Result<(), String> {
    let Some(s) = schema.as_object() else {
        return match schema {
            Value::Bool(true) => Ok(()),
            _ => Err(format!("{path}: rejected by schema {schema}")),
        };
    };
    for (key, want) in s {
        match key.as_str() {
            "$ref" => {
                let name = want
                    .as_str()
                    .and_then(|r| r.strip_prefix("#/$defs/"))
                    .ok_or_else(|| format!("unsupported $ref {want}"))?;
                let target = root
                    .get("$defs")
                    .and_then(|d| d.get(name))
                    .ok_or_else(|| format!("dangling $ref {name}"))?;
                validate(root, target, value, path)?;
            }
            "type" => {
                let types: Vec<&str> = match want {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                    _ => return Err(format!("bad type keyword {want}")),
                };
                if !types.iter().any(|t| has_type(value, t)) {
                    return Err(format!("{path}: expected {types:?}, found {value}"));
                }
            }
            "properties" => {
                if let (Some(props), Some(obj)) = (want.as_object(), value.as_object()) {
                    for (k, v) in obj {
                        if let Some(ps) = props.get(k) {
                            validate(root, ps, v, &format!("{path}.{k}"))?;
                        }
                    }
                }
            }
            "required" => {
                if let Some(obj) = value.as_object() {
                    for r in want.as_array().into_iter().flatten() {
                        let r = r.as_str().unwrap_or("");
                        if !obj.contains_key(r) {
                            return Err(format!("{path}: missing '{r}'"));
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(obj) = value.as_object() {
                    let props = s.get("properties").and_then(Value::as_object);
                    for (k, v) in obj {
                        if props.is_none_or(|p| !p.contains_key(k)) {
                            validate(root, want, v, &format!("{path}.{k}"))
                                .map_err(|e| format!("{e} (key '{k}' not allowed?)"))?;
                        }
                    }
                }
            }
            "propertyNames" => {
                if let Some(obj) = value.as_object() {
                    for k in obj.keys() {
                        validate(root, want, &Value::from(k.clone()), &format!("{path}[{k}]"))?;
                    }
                }
            }
            "items" => {
                if let Some(a) = value.as_array() {
                    for (i, v) in a.iter().enumerate() {
                        validate(root, want, v, &format!("{path}[{i}]"))?;
                    }
                }
            }
            "anyOf" | "oneOf" => {
                let branches = want.as_array().ok_or("anyOf needs a list")?;
                let ok = branches
                    .iter()
                    .filter(|b| validate(root, b, value, path).is_ok())
                    .count();
                if ok == 0 || (key == "oneOf" && ok > 1) {
                    return Err(format!("{path}: {ok} of the {key} branches match {value}"));
                }
            }
            "enum" => {
                if !want.as_array().is_some_and(|a| a.contains(value)) {
                    return Err(format!("{path}: {value} is not one of {want}"));
                }
            }
            "const" => {
                if want != value {
                    return Err(format!("{path}: expected {want}, found {value}"));
                }
            }
            "pattern" => {
                if let Some(text) = value.as_str() {
                    let re = regex::Regex::new(want.as_str().unwrap_or(""))
                        .map_err(|e| e.to_string())?;
                    if !re.is_match(text) {
                        return Err(format!("{path}: '{text}' does not match {want}"));
                    }
                }
            }
            "minimum" => {
                if let (Some(n), Some(m)) = (value.as_f64(), want.as_f64())
                    && n < m
                {
                    return Err(format!("{path}: {n} < {m}"));
                }
            }
            "maximum" => {
                if let (Some(n), Some(m)) = (value.as_f64(), want.as_f64())
                    && n > m
                {
                    return Err(format!("{path}: {n} > {m}"));
                }
            }
            "minLength" => {
                if let (Some(t), Some(m)) = (value.as_str(), want.as_u64())
                    && (t.chars().count() as u64) < m
                {
                    return Err(format!("{path}: '{t}' is too short"));
                }
            }
            "minItems" => {
                if let (Some(a), Some(m)) = (value.as_array(), want.as_u64())
                    && (a.len() as u64) < m
                {
                    return Err(format!("{path}: too few items"));
                }
            }
            "$schema" | "title" | "description" | "default" | "format" | "$defs" => {}
            other => return Err(format!("the validator does not know '{other}'")),
        }
    }
    Ok(())
}

fn has_type(v: &Value, t: &str) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => false,
    }
}

fn yaml_to_json(text: &str) -> Value {
    serde_saphyr::from_str::<Value>(text).expect("YAML")
}

fn check(text: &str) -> Result<(), String> {
    let schema = flow_schema();
    validate(&schema, &schema, &yaml_to_json(text), "flow")
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

#[test]
fn the_sample_flows_are_valid_against_the_schema() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in [
        "flows/main.yaml",
        "tests/flows/sample.yaml",
        "tests/flows/satisfaction_survey.yaml",
    ] {
        let text = std::fs::read_to_string(root.join(file)).expect("readable");
        check(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
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

#[test]
fn the_schema_beside_the_sample_flows_is_the_current_one() {
    // flows/flow.schema.json is what editors read through the sample flows'
    // `# yaml-language-server: $schema=flow.schema.json` line: regenerate it with
    // `hotline schema > flows/flow.schema.json` when the flow language changes.
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let on_disk: Value = serde_json::from_str(
        &std::fs::read_to_string(repo.join("flows/flow.schema.json")).unwrap(),
    )
    .unwrap();
    let current = serde_json::to_value(hotline::flow::model::flow_schema()).unwrap();
    assert!(
        on_disk == current,
        "flows/flow.schema.json is out of date: run `hotline schema > flows/flow.schema.json`"
    );
    for entry in std::fs::read_dir(repo.join("flows")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.starts_with("# yaml-language-server: $schema=flow.schema.json\n"),
                "{} names its schema for editors",
                path.display()
            );
        }
    }
}
