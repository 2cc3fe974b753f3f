//! A flow file's text through the loader and checker (YAML → checked flow set). Checks
//! that every diagnostic points inside the text and that a flow without errors is in the
//! set under its name.
#![no_main]

use std::collections::BTreeMap;
use std::path::PathBuf;

use hotline_core::flow::check::FlowConfig;
use hotline_core::flow::diagnostic::Severity;
use hotline_core::flow::load::{FlowSource, compile_flows_with};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let source = FlowSource {
        name: "fuzz".to_owned(),
        file: PathBuf::from("flows/fuzz.yaml"),
        text: text.to_owned(),
    };
    let mut vars = BTreeMap::new();
    vars.insert(
        "crm_url".to_owned(),
        serde_json::Value::from("http://crm.local"),
    );
    let config = FlowConfig {
        schedules: BTreeMap::new(),
        vars,
        queues: None,
    };
    let prompts = |_: &str, name: &str| name != "missing";
    let (set, diags) = compile_flows_with(vec![source], &prompts, &config);
    // Lines as YAML counts them: a CR alone breaks a line too (a CR LF pair once).
    let bytes = text.as_bytes();
    let breaks = bytes
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')))
        .count();
    let lines = breaks as u32 + 1;
    for d in &diags {
        assert!(
            d.line <= lines,
            "diagnostic at line {} of {lines}: {d}",
            d.line
        );
        let _ = d.to_string();
    }
    if !diags.iter().any(|d| d.severity == Severity::Error) {
        assert!(
            set.get("fuzz").is_some(),
            "a flow without errors is missing"
        );
    }
});
