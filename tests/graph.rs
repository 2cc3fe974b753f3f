//! `hotline graph`: the Mermaid and DOT texts of a small flow, exactly, and an SVG that
//! is well-formed XML naming every step.

use std::path::PathBuf;

use hotline::flow::flowset::FlowSet;
use hotline::flow::load::{AnyPrompt, FlowSource, compile_flows};
use hotline::tools::cli::render;
use hotline::tools::graph::{GraphFormat, build};

const DESK: &str = r##"
start: menu
global_keys: { "0": help }
steps:
  menu:
    menu:
      prompt: main_menu
      options:
        "1": help
        "#": { language: de, next: menu }
        "5": elsewhere
      on_failure: bye
  help:
    play: [help, { say: digits, value: "{{ caller }}" }]
    next: bye
  elsewhere:
    goto: other
  bye:
    hangup: goodbye
"##;

const OTHER: &str = "steps:\n  only:\n    play: other\n    next: hangup\n";

fn flows() -> FlowSet {
    let src = |name: &str, text: &str| FlowSource {
        name: name.to_owned(),
        file: PathBuf::from(format!("{name}.yaml")),
        text: text.to_owned(),
    };
    let (set, diags) = compile_flows(vec![src("desk", DESK), src("other", OTHER)], &AnyPrompt);
    assert!(
        diags.iter().all(|d| !d.is_error()),
        "{}",
        diags.iter().map(ToString::to_string).collect::<String>()
    );
    set
}

fn graph_text(format: GraphFormat) -> String {
    let set = flows();
    let flow = set.get("desk").expect("desk loaded");
    render(&build(&set, flow), format)
}

#[test]
fn mermaid_of_a_small_flow() {
    let expected = r##"flowchart TD
    n0(("start"))
    n1["menu<br/>menu: main_menu"]
    n2["help<br/>play: help, say digits"]
    n3["elsewhere<br/>goto: other"]
    n4["bye<br/>hangup: goodbye"]
    n5[["other<br/>another flow"]]
    n6{{"global keys<br/>in every menu and collect"}}
    n0 --> n1
    n1 -->|"1"| n2
    n1 -->|"#35; (de)"| n1
    n1 -->|"5"| n3
    n1 -.->|"no input / invalid"| n1
    n1 -.->|"on_failure"| n4
    n2 -->|"next"| n4
    n3 -->|"goto"| n5
    n6 -->|"0"| n2
    linkStyle 5 stroke:#c0392b,color:#c0392b
"##;
    assert_eq!(graph_text(GraphFormat::Mermaid), expected);
}

#[test]
fn dot_of_a_small_flow() {
    let expected = r###"digraph "desk" {
    rankdir=TB;
    node [shape=box, style=rounded, fontname="Helvetica", fontsize=11];
    edge [fontname="Helvetica", fontsize=10];
    n0 [label="start", shape=circle];
    n1 [label="menu\nmenu: main_menu"];
    n2 [label="help\nplay: help, say digits"];
    n3 [label="elsewhere\ngoto: other"];
    n4 [label="bye\nhangup: goodbye"];
    n5 [label="other\nanother flow", shape=box3d, style=solid];
    n6 [label="global keys\nin every menu and collect", shape=hexagon, style=solid];
    n0 -> n1;
    n1 -> n2 [label="1"];
    n1 -> n1 [label="# (de)"];
    n1 -> n3 [label="5"];
    n1 -> n1 [label="no input / invalid", style=dotted];
    n1 -> n4 [label="on_failure", style=dashed, color="#c0392b", fontcolor="#c0392b"];
    n2 -> n4 [label="next"];
    n3 -> n5 [label="goto"];
    n6 -> n2 [label="0"];
}
"###;
    assert_eq!(graph_text(GraphFormat::Dot), expected);
}

#[test]
fn svg_is_well_formed_and_names_every_step() {
    let svg = graph_text(GraphFormat::Svg);
    check_xml(&svg);
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    for step in ["menu", "help", "elsewhere", "bye", "other", "global keys"] {
        assert!(
            svg.contains(&format!(">{step}</text>")),
            "no {step} in\n{svg}"
        );
    }
    assert!(
        svg.contains("stroke-dasharray=\"6 4\""),
        "failure edges are dashed"
    );
}

#[test]
fn the_sample_draws_in_every_format() {
    let config = hotline::config::Config::load(std::path::Path::new("hotline.yaml")).unwrap();
    let loaded = hotline::preflight::load_all(&config);
    let flow = loaded.flows.get("main").unwrap();
    let g = build(&loaded.flows, flow);
    let svg = render(&g, GraphFormat::Svg);
    check_xml(&svg);
    for s in &flow.steps {
        assert!(svg.contains(&format!(">{}</text>", s.name)), "{}", s.name);
    }
    assert!(render(&g, GraphFormat::Mermaid).contains("n3 -->|\"2\"| n7"));
}

/// A small XML well-formedness check: tags nest and close, attributes are quoted, text
/// holds no raw `<` and only known entities.
fn check_xml(doc: &str) {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = doc;
    let mut roots = 0;
    while let Some(open) = rest.find('<') {
        check_text(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('>').expect("a tag is closed with >");
        let tag = &after[..close];
        rest = &after[close + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let top = stack.pop().expect("a closing tag has an opening one");
            assert_eq!(top, name.trim(), "tags nest");
            continue;
        }
        let self_closing = tag.ends_with('/');
        let body = tag.trim_end_matches('/');
        let (name, attrs) = body.split_once(' ').unwrap_or((body, ""));
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "tag name {name:?}"
        );
        check_attrs(attrs);
        if stack.is_empty() {
            roots += 1;
        }
        if !self_closing {
            stack.push(name.to_owned());
        }
    }
    check_text(rest);
    assert!(stack.is_empty(), "unclosed: {stack:?}");
    assert_eq!(roots, 1, "one root element");
}

fn check_attrs(mut s: &str) {
    loop {
        s = s.trim_start();
        if s.is_empty() {
            return;
        }
        let eq = s.find('=').expect("an attribute has a value");
        let name = &s[..eq];
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':'),
            "attribute name {name:?}"
        );
        let v = &s[eq + 1..];
        assert!(v.starts_with('"'), "attribute {name} is quoted");
        let end = v[1..].find('"').expect("attribute value closed");
        check_text(&v[1..1 + end]);
        s = &v[end + 2..];
    }
}

fn check_text(t: &str) {
    assert!(!t.contains('<'));
    let mut rest = t;
    while let Some(i) = rest.find('&') {
        let after = &rest[i + 1..];
        let end = after.find(';').expect("an entity ends with ;");
        assert!(
            ["amp", "lt", "gt", "quot", "apos"].contains(&&after[..end]),
            "entity {}",
            &after[..end]
        );
        rest = &after[end + 1..];
    }
}

/// Every way out of a queue step is an edge: the agent hanging up, the timeout, the keys
/// that leave the line, and a callback request.
#[test]
fn a_queue_step_shows_every_way_out() {
    let flow = r#"
start: q
steps:
  q:
    queue: support
    on_timeout: busy
    after: thanks
    keys: { "2": busy }
    on_callback: noted
  busy:
    hangup: advisors_busy
  thanks:
    hangup: goodbye
  noted:
    hangup: goodbye
"#;
    let src = FlowSource {
        name: "q".to_owned(),
        file: PathBuf::from("q.yaml"),
        text: flow.to_owned(),
    };
    let (set, diags) = compile_flows(vec![src], &AnyPrompt);
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    let text = render(
        &build(&set, set.get("q").expect("loaded")),
        GraphFormat::Mermaid,
    );
    for edge in [
        "-.->|\"timeout\"|",
        "-->|\"after the agent\"|",
        "-->|\"2 (leaves the line)\"|",
        "-->|\"callback\"|",
    ] {
        assert!(text.contains(edge), "{edge} missing in\n{text}");
    }
}
