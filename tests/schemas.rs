//! The published documents (`schemas/`): each file is the one the code generates today,
//! the sample files name theirs for editors, and the schemas of `hotline.yaml` and of flow
//! test files accept every sample and test file and refuse obvious mistakes (checked with
//! the `jsonschema` crate, as an editor would).

use std::path::{Path, PathBuf};

use hotline::tools::schemas::SchemaKind;
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn validator(kind: SchemaKind) -> jsonschema::Validator {
    jsonschema::draft202012::new(&kind.document())
        .unwrap_or_else(|e| panic!("the {kind:?} schema is not a valid schema: {e}"))
}

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str::<Value>(text).expect("YAML")
}

/// Every problem the validator finds, or none.
fn problems(v: &jsonschema::Validator, text: &str) -> Vec<String> {
    v.iter_errors(&yaml(text))
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn yaml_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_files_in_schemas_are_the_current_ones() {
    for kind in SchemaKind::ALL {
        let file = repo().join("schemas").join(kind.file_name());
        let on_disk =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let arg = format!("{kind:?}").to_lowercase();
        assert!(
            on_disk == kind.text(),
            "schemas/{name} is out of date: run `hotline schema {arg} > schemas/{name}`",
            name = kind.file_name()
        );
    }
}

#[test]
fn the_sample_files_name_their_schema_for_editors() {
    let header = |schema: &str| format!("# yaml-language-server: $schema={schema}\n");
    let mut named = vec![(
        repo().join("hotline.yaml"),
        header("schemas/hotline.schema.json"),
    )];
    for f in yaml_in(&repo().join("flows")) {
        named.push((f, header("../schemas/flow.schema.json")));
    }
    for f in yaml_in(&repo().join("flows/tests")) {
        named.push((f, header("../../schemas/flow-test.schema.json")));
    }
    assert!(named.len() >= 5);
    for (file, header) in named {
        let text = std::fs::read_to_string(&file).expect("readable");
        assert!(
            text.starts_with(&header),
            "{} does not start with {header}",
            file.display()
        );
        // The header names a file that is there.
        let target = header
            .trim()
            .rsplit('=')
            .next()
            .map(|rel| file.parent().expect("folder").join(rel))
            .expect("a path");
        assert!(target.is_file(), "{}", target.display());
    }
}

#[test]
fn every_configuration_of_the_repository_is_valid_and_mistakes_are_not() {
    let v = validator(SchemaKind::Config);
    // The sample, and the configurations the checks of bad flows and bad tests run with.
    let files = [
        "hotline.yaml",
        "tests/flows_bad/support/hotline.yaml",
        "tests/flows_bad/flow_tests/hotline.yaml",
    ]
    .map(|f| repo().join(f));
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable");
        let p = problems(&v, &text);
        assert!(p.is_empty(), "{}: {p:?}", file.display());
    }
    let every = r#"
sip:
  listen: ["udp:127.0.0.1:5060", "tcp:[::1]:5060"]
  user_agent: hotline
  max_calls: 100
  answer_after: 1s
  t1: 500ms
  realm: example.com
  digest_algorithms: [SHA-256, MD5]
rtp: { ports: 10000-20000, public_address: 192.0.2.10, no_media_timeout: 30s }
flows: flows
prompts: prompts
recordings: recordings
data: data
tests: flows/tests
default_language: en
routes: { "*": main, "0800": sales }
schedules:
  office:
    timezone: Europe/Berlin
    weekly: { mon-fri: [08:00-12:00, 13:00-17:00], sat: 10:00-14:00 }
    holidays: [{ date: 12-25, name: christmas }, { from: 2026-08-01, to: 2026-08-15 }]
vars: { shop_url: "http://127.0.0.1:8081", retries: 3, nested: { a: [1, 2] } }
demo_shop: { listen: "127.0.0.1:8081" }
admin: { listen: "127.0.0.1:8080", token: "${ADMIN_TOKEN:-a-token}" }
records: { store: "postgres://hotline@db/hotline", keep: 400d }
queues:
  support:
    strategy: skills
    music: hold_music
    announce_every: 30s
    announce: [position, wait]
    announce_prompt: still_waiting
    max_wait: 10m
    max_callers: 50
    when_empty: leave
    ring_timeout: 15s
    max_misses: 3
    wrap_up: 10s
    service_level: 20s
    callback: { key: "1", offer_after_wait: 2m, dial: "sip:{number}@127.0.0.1:5080", caller_id: "+18005550100" }
agents:
  alice: { password: "${ALICE_PASSWORD:-a-password}", queues: { support: 0 }, skills: [de], wrap_up: 5s }
  bob: { ha1_sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef, queues: { support: 1 } }
  desk: { uri: "sip:desk@192.0.2.1", queues: { support: 2 } }
"#;
    let p = problems(&v, every);
    assert!(p.is_empty(), "{p:?}");
    // What the engine reads agrees: the same file loads.
    hotline::config::Config::from_str_at(every, &repo().join("hotline.yaml"))
        .expect("the engine reads it too");
    for records in [
        "off",
        "on",
        "false",
        "{}",
        "{ store: data/x.db }",
        "{ store_file: /run/secrets/db_url }",
        "{ webhook: \"https://crm.example.com/calls\" }",
        "{ webhook: { url: \"https://crm.example.com/calls\", headers: { X-Key: abc }, timeout: 5s } }",
    ] {
        let text = format!("records: {records}");
        assert!(problems(&v, &text).is_empty(), "{text}");
    }

    for (mistake, text) in [
        ("unknown top-level key", "flow: flows"),
        (
            "unknown sip key",
            "sip: { listen: [\"udp:0.0.0.0:5060\"], port: 5060 }",
        ),
        (
            "listen as one string",
            "sip: { listen: \"udp:0.0.0.0:5060\" }",
        ),
        ("max_calls as text", "sip: { max_calls: many }"),
        ("routes as a list", "routes: [main]"),
        ("unknown records key", "records: { store: x.db, kept: 30d }"),
        ("records as a word", "records: maybe"),
        (
            "webhook without url",
            "records: { webhook: { timeout: 5s } }",
        ),
        ("unknown queue key", "queues: { support: { ring: 15s } }"),
        ("bad strategy", "queues: { support: { strategy: random } }"),
        ("agent without queues", "agents: { alice: { password: x } }"),
        (
            "negative penalty",
            "agents: { alice: { queues: { support: -1 } } }",
        ),
        (
            "schedule without time zone",
            "schedules: { office: { weekly: { mon: 08:00-17:00 } } }",
        ),
        (
            "unknown holiday key",
            "schedules: { office: { timezone: UTC, holidays: [{ day: 12-25 }] } }",
        ),
        (
            "unknown admin key",
            "admin: { listen: \"127.0.0.1:8080\", password: x }",
        ),
    ] {
        assert!(
            !problems(&v, text).is_empty(),
            "{mistake} was accepted: {text}"
        );
    }
}

#[test]
fn every_flow_test_file_is_valid_and_mistakes_are_not() {
    let v = validator(SchemaKind::Test);
    let mut files = yaml_in(&repo().join("flows/tests"));
    files.extend(yaml_in(&repo().join("tests/flow_tests")));
    assert!(files.len() >= 5, "{files:?}");
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable");
        let p = problems(&v, &text);
        assert!(p.is_empty(), "{}: {p:?}", file.display());
    }
    let every = r##"
flow: main
cases:
  - name: every key
    caller: +4930123456
    dialed: "0800"
    at: 2026-11-23T10:00:00+01:00
    http:
      lookup: { status: 200, body: { eta: "2026-11-25" }, delay: 500ms }
      other: { status: 503 }
    queue: { outcome: answered, agent: alice, wait: 30s }
    script:
      - hears: welcome
      - press: 1
      - press: "12#"
      - silence: 6s
      - tagged: { reason: order, n: 2 }
      - language: de
      - queued: support
      - transferred: "sip:desk@example.com"
      - hangs_up: true
  - name: a queue answered by a word
    queue: callback
    script: [{ hears: welcome }]
"##;
    let p = problems(&v, every);
    assert!(p.is_empty(), "{p:?}");
    for (mistake, text) in [
        ("no flow", "cases: [{ name: x, script: [{ hears: a }] }]"),
        (
            "unknown case key",
            "flow: main\ncases: [{ name: x, scrpt: [{ hears: a }] }]",
        ),
        (
            "two keys in one item",
            "flow: main\ncases: [{ name: x, script: [{ hears: a, press: \"1\" }] }]",
        ),
        (
            "an empty item",
            "flow: main\ncases: [{ name: x, script: [{}] }]",
        ),
        (
            "unknown item",
            "flow: main\ncases: [{ name: x, script: [{ says: a }] }]",
        ),
        (
            "a letter pressed",
            "flow: main\ncases: [{ name: x, script: [{ press: a }] }]",
        ),
        (
            "bad silence",
            "flow: main\ncases: [{ name: x, script: [{ silence: 6 secs }] }]",
        ),
        (
            "bad queue outcome",
            "flow: main\ncases: [{ name: x, queue: maybe, script: [{ hears: a }] }]",
        ),
        (
            "hangs_up as text",
            "flow: main\ncases: [{ name: x, script: [{ hangs_up: yes please }] }]",
        ),
        (
            "http status as text",
            "flow: main\ncases: [{ name: x, http: { s: { status: ok } }, script: [{ hears: a }] }]",
        ),
    ] {
        assert!(
            !problems(&v, text).is_empty(),
            "{mistake} was accepted: {text}"
        );
    }
}
