//! The admin's tools beside `check`: `simulate` (a call in the terminal), `test` (flow
//! tests), `graph` (a flow as a diagram). They run the same interpreter as live calls,
//! on a virtual phone, and never open a socket.

pub mod capacity; // `hotline capacity`: agents a queue needs, by Erlang C, Erlang A and simulation
pub mod cli; // the bodies of the simulate, test, graph and schema subcommands
pub mod demo_shop; // the demonstration order service the sample hotline looks orders up in
pub mod flowtest; // running flow tests and reporting them
pub mod graph; // a flow as nodes and edges; mermaid and dot text
pub mod junit; // a flow test run as JUnit XML, for CI systems
pub mod layout; // layered layout of a graph, for the SVG
pub mod phone; // one call on a virtual clock, media simulated from the prompt library
pub mod replay; // `hotline replay`: a recorded call's keys run again on the flows, paths compared
pub mod schemas; // the JSON Schemas and the OpenAPI document, and their files
pub mod sidebyside; // expected and actual transcripts in two columns
pub mod simulate; // `hotline simulate`: drive a call from keys, print what is heard
pub mod svg; // a laid-out graph as SVG
pub mod testfile; // the flow test file format

use crate::config::Config;
use crate::flow::diagnostic::Diagnostic;
use crate::flow::flowset::FlowSet;
use crate::preflight::{Loaded, load_all};

/// Loads prompts and flows as the server would; the diagnostics of errors that keep
/// `flow` from loading, if it is not in the set.
pub fn load_flow(config: &Config, flow: &str) -> Result<Loaded, Vec<Diagnostic>> {
    let loaded = load_all(config);
    if loaded.flows.id(flow).is_some() {
        return Ok(loaded);
    }
    let mut diags: Vec<Diagnostic> = loaded
        .report
        .diagnostics
        .into_iter()
        .filter(Diagnostic::is_error)
        .collect();
    if diags.is_empty() {
        diags.push(not_loaded(config, &loaded.flows, flow));
    }
    Err(diags)
}

fn not_loaded(config: &Config, flows: &FlowSet, flow: &str) -> Diagnostic {
    let d = Diagnostic::error(
        &config.flows_dir,
        format!("no flow named '{flow}' in {}", config.flows_dir.display()),
    );
    let names = flows.names();
    if names.is_empty() {
        d.with_help("a flow is a file flows/NAME.yaml; pass --config to use another folder")
    } else {
        d.with_help(format!("loaded flows: {}", names.join(", ")))
    }
}
