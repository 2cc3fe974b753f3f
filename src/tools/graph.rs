//! A compiled flow as a graph (`hotline graph`): its steps as nodes, where each can lead as
//! labelled edges, and the Mermaid and Graphviz DOT texts of it.
//!
//! Owns what the diagram says: node labels (step name, kind, prompt), edge labels (keys,
//! `next`, `no input / invalid`, `on_failure`, `open`/`closed`...), which edges are marked
//! as failures, and the built-in ends (`hangup`, the built-in goodbye, other flows). The
//! edges come from the compiled `StepAction` data, one arm per step kind in [`step_edges`].
//! Layout and SVG are `layout`'s and `svg`'s; choosing among the formats is `cli`'s.

use std::fmt::Write as _;

use crate::flow::duration::DisplayDuration;
use crate::flow::flowset::{AudioItem, CompiledFlow, FlowSet, StepAction, Target};

/// Node labels longer than this are cut with `...`.
pub const MAX_LABEL: usize = 36;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    Mermaid,
    Dot,
    Svg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// Where the call comes in.
    Start,
    Step,
    /// Another flow, entered by `goto`.
    Flow,
    /// The built-in `hangup` step.
    Hangup,
    /// The flow runs out here: back to the flow that called it, or the built-in goodbye.
    End,
    /// The flow's global keys, which work in every menu and collect.
    GlobalKeys,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: NodeKind,
    /// First line: the step's name (or what the node stands for).
    pub title: String,
    /// Second line: the step's kind and prompt (may be empty).
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeStyle {
    Normal,
    /// The step is offered again after a timeout or a wrong key.
    Retry,
    /// Where callers go when a step fails: `on_failure`, `on_error`.
    Failure,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    pub from: usize,
    pub to: usize,
    pub label: String,
    pub style: EdgeStyle,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    pub flow: String,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

impl Graph {
    fn special(&mut self, kind: NodeKind, title: &str, detail: &str) -> usize {
        if let Some(i) = self
            .nodes
            .iter()
            .position(|n| n.kind == kind && n.title == title)
        {
            return i;
        }
        self.nodes.push(Node {
            kind,
            title: title.to_owned(),
            detail: detail.to_owned(),
        });
        self.nodes.len() - 1
    }

    /// Adds an edge; one with the same ends and style gets the label appended instead.
    fn edge(&mut self, from: usize, to: usize, label: String, style: EdgeStyle) {
        if let Some(e) = self
            .edges
            .iter_mut()
            .find(|e| e.from == from && e.to == to && e.style == style)
        {
            e.label.push_str(", ");
            e.label.push_str(&label);
            return;
        }
        self.edges.push(Edge {
            from,
            to,
            label,
            style,
        });
    }
}

/// The graph of `flow` (one of `flows`).
pub fn build(flows: &FlowSet, flow: &CompiledFlow) -> Graph {
    let mut g = Graph {
        flow: flow.name.clone(),
        nodes: vec![Node {
            kind: NodeKind::Start,
            title: "start".to_owned(),
            detail: String::new(),
        }],
        edges: Vec::new(),
    };
    // Steps are nodes 1..=n, in file order.
    for s in &flow.steps {
        g.nodes.push(Node {
            kind: NodeKind::Step,
            title: s.name.clone(),
            detail: cut(&step_detail(flows, &s.action)),
        });
    }
    g.edges.push(Edge {
        from: 0,
        to: flow.start.index() + 1,
        label: String::new(),
        style: EdgeStyle::Normal,
    });
    for (i, s) in flow.steps.iter().enumerate() {
        for (label, to, style) in step_edges(flows, &s.action) {
            let to = node_of(&mut g, i + 1, to);
            g.edge(i + 1, to, label, style);
        }
    }
    if !flow.global_keys.is_empty() {
        let k = g.special(
            NodeKind::GlobalKeys,
            "global keys",
            "in every menu and collect",
        );
        for (key, target) in &flow.global_keys {
            let to = node_of(&mut g, k, To::Target(*target));
            g.edge(k, to, key.to_string(), EdgeStyle::Normal);
        }
    }
    g
}

/// Where an edge goes, before it is a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum To {
    Target(Target),
    /// The same step again.
    Itself,
    /// The end of the flow (`next` left out, retries with no `on_failure`).
    End,
    /// Another flow.
    Flow(String),
}

fn node_of(g: &mut Graph, from: usize, to: To) -> usize {
    match to {
        To::Target(Target::Step(s)) => s.index() + 1,
        To::Target(Target::Hangup) => g.special(NodeKind::Hangup, "hangup", ""),
        To::Itself => from,
        To::End => g.special(NodeKind::End, "end of flow", "return, or built-in goodbye"),
        To::Flow(name) => g.special(NodeKind::Flow, &name, "another flow"),
    }
}

fn next_or_end(t: Option<Target>) -> To {
    t.map_or(To::End, To::Target)
}

/// The edges out of one step: label, where to, style. Each step kind's arm says where it
/// can continue; a new kind of step adds its arm here.
pub fn step_edges(flows: &FlowSet, action: &StepAction) -> Vec<(String, To, EdgeStyle)> {
    use EdgeStyle::{Failure, Normal, Retry};
    let mut v: Vec<(String, To, EdgeStyle)> = Vec::new();
    let failure = |v: &mut Vec<(String, To, EdgeStyle)>, retries: u32, on_failure| {
        if retries > 0 {
            v.push(("no input / invalid".to_owned(), To::Itself, Retry));
        }
        v.push(("on_failure".to_owned(), next_or_end(on_failure), Failure));
    };
    match action {
        StepAction::Play { next, .. }
        | StepAction::Set { next, .. }
        | StepAction::Language { next, .. } => {
            v.push(("next".to_owned(), next_or_end(*next), Normal))
        }
        StepAction::Menu(m) => {
            for o in &m.options {
                let label = match &o.language {
                    Some(l) => format!("{} ({l})", o.key),
                    None => o.key.to_string(),
                };
                v.push((label, To::Target(o.target), Normal));
            }
            if let Some(k) = m.repeat_key {
                v.push((format!("{k} (repeat)"), To::Itself, Normal));
            }
            failure(&mut v, m.retries, m.on_failure);
        }
        StepAction::Collect(c) => {
            let label = if c.confirm.is_some() {
                "valid, confirmed"
            } else {
                "valid"
            };
            v.push((label.to_owned(), next_or_end(c.next), Normal));
            failure(&mut v, c.retries, c.on_failure);
        }
        StepAction::Branch { when, otherwise } => {
            for (cond, t) in when {
                v.push((cut(&format!("if {cond}")), To::Target(*t), Normal));
            }
            v.push(("else".to_owned(), next_or_end(*otherwise), Normal));
        }
        StepAction::Hours {
            open,
            closed,
            holiday,
            ..
        } => {
            v.push(("open".to_owned(), To::Target(*open), Normal));
            v.push(("closed".to_owned(), To::Target(*closed), Normal));
            if let Some(h) = holiday {
                v.push(("holiday".to_owned(), To::Target(*h), Normal));
            }
        }
        StepAction::Http(h) => {
            v.push(("next".to_owned(), next_or_end(h.next), Normal));
            if let Some(e) = h.on_error {
                v.push(("on_error".to_owned(), To::Target(e), Failure));
            }
        }
        StepAction::Record(r) => v.push(("next".to_owned(), next_or_end(r.next), Normal)),
        StepAction::Queue(q) => {
            if let Some(t) = q.on_timeout {
                v.push(("timeout".to_owned(), To::Target(t), Failure));
            }
            if let Some(t) = q.after {
                v.push(("after the agent".to_owned(), To::Target(t), Normal));
            }
            for (key, t) in &q.keys {
                v.push((format!("{key} (leaves the line)"), To::Target(*t), Normal));
            }
            if let Some(t) = q.on_callback {
                v.push(("callback".to_owned(), To::Target(t), Normal));
            }
        }
        StepAction::Transfer { on_failure, .. } => {
            if let Some(t) = on_failure {
                v.push(("on_failure".to_owned(), To::Target(*t), Failure));
            }
        }
        StepAction::Goto { flow, return_to } => {
            let name = flows
                .flows()
                .nth(flow.index())
                .map_or_else(|| "?".to_owned(), |f| f.name.clone());
            v.push(("goto".to_owned(), To::Flow(name), Normal));
            if let Some(t) = return_to {
                v.push(("return".to_owned(), To::Target(*t), Normal));
            }
        }
        StepAction::Hangup { .. } => {}
    }
    v
}

/// `menu: main_menu`, `play: welcome, say digits`, `goto: other`...
pub fn step_detail(flows: &FlowSet, action: &StepAction) -> String {
    let kind = action.kind_name();
    let what = match action {
        StepAction::Play { audio, .. } | StepAction::Hangup { audio } => audio_names(audio),
        StepAction::Menu(m) => audio_names(&m.prompt),
        StepAction::Collect(c) => audio_names(&c.prompt),
        StepAction::Set { vars, .. } => vars
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        StepAction::Branch { .. } => String::new(),
        StepAction::Hours { schedule, .. } => schedule.clone(),
        StepAction::Language { code, .. } => code.clone(),
        StepAction::Http(h) => format!("{} {}", method_name(h.method), h.url),
        StepAction::Record(r) => audio_names(&r.prompt),
        StepAction::Queue(q) => q.queue.clone(),
        StepAction::Transfer { uri, .. } => uri.clone(),
        StepAction::Goto { flow, .. } => flows
            .flows()
            .nth(flow.index())
            .map_or_else(String::new, |f| f.name.clone()),
    };
    if what.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {what}")
    }
}

fn method_name(m: crate::flow::model::HttpMethod) -> &'static str {
    use crate::flow::model::HttpMethod;
    match m {
        HttpMethod::Get => "GET",
        HttpMethod::Post => "POST",
        HttpMethod::Put => "PUT",
        HttpMethod::Patch => "PATCH",
        HttpMethod::Delete => "DELETE",
    }
}

fn audio_names(items: &[AudioItem]) -> String {
    items
        .iter()
        .map(|i| match i {
            AudioItem::Prompt(p) => p.clone(),
            AudioItem::Say { kind, .. } => format!("say {}", kind.as_str()),
            AudioItem::Silence(d) => DisplayDuration(*d).to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn cut(s: &str) -> String {
    if s.chars().count() <= MAX_LABEL {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(MAX_LABEL - 3).collect();
    t.push_str("...");
    t
}

// ---------------------------------------------------------------------------------------
// Mermaid
// ---------------------------------------------------------------------------------------

/// Mermaid `flowchart` text (GitHub and GitLab render it in Markdown).
pub fn mermaid(g: &Graph) -> String {
    let mut out = String::from("flowchart TD\n");
    for (i, n) in g.nodes.iter().enumerate() {
        let text = if n.detail.is_empty() {
            mermaid_text(&n.title)
        } else {
            format!("{}<br/>{}", mermaid_text(&n.title), mermaid_text(&n.detail))
        };
        let (open, close) = match n.kind {
            NodeKind::Start => ("((", "))"),
            NodeKind::Step => ("[", "]"),
            NodeKind::Flow => ("[[", "]]"),
            NodeKind::Hangup | NodeKind::End => ("([", "])"),
            NodeKind::GlobalKeys => ("{{", "}}"),
        };
        let _ = writeln!(out, "    n{i}{open}\"{text}\"{close}");
    }
    let mut failures = Vec::new();
    for (k, e) in g.edges.iter().enumerate() {
        let arrow = match e.style {
            EdgeStyle::Normal => "-->",
            EdgeStyle::Retry | EdgeStyle::Failure => "-.->",
        };
        if e.style == EdgeStyle::Failure {
            failures.push(k.to_string());
        }
        if e.label.is_empty() {
            let _ = writeln!(out, "    n{} {arrow} n{}", e.from, e.to);
        } else {
            let _ = writeln!(
                out,
                "    n{} {arrow}|\"{}\"| n{}",
                e.from,
                mermaid_text(&e.label),
                e.to
            );
        }
    }
    if !failures.is_empty() {
        let _ = writeln!(
            out,
            "    linkStyle {} stroke:#c0392b,color:#c0392b",
            failures.join(",")
        );
    }
    out
}

/// Mermaid labels take entity codes for the characters its syntax uses.
fn mermaid_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' => out.push_str("#35;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '|' => out.push_str("#124;"),
            _ => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Graphviz DOT
// ---------------------------------------------------------------------------------------

/// Graphviz DOT text (`dot -Tpng`).
pub fn dot(g: &Graph) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph \"{}\" {{", dot_text(&g.flow));
    out.push_str("    rankdir=TB;\n");
    out.push_str("    node [shape=box, style=rounded, fontname=\"Helvetica\", fontsize=11];\n");
    out.push_str("    edge [fontname=\"Helvetica\", fontsize=10];\n");
    for (i, n) in g.nodes.iter().enumerate() {
        let label = if n.detail.is_empty() {
            dot_text(&n.title)
        } else {
            format!("{}\\n{}", dot_text(&n.title), dot_text(&n.detail))
        };
        let shape = match n.kind {
            NodeKind::Start => ", shape=circle",
            NodeKind::Step => "",
            NodeKind::Flow => ", shape=box3d, style=solid",
            NodeKind::Hangup | NodeKind::End => ", shape=oval, style=solid",
            NodeKind::GlobalKeys => ", shape=hexagon, style=solid",
        };
        let _ = writeln!(out, "    n{i} [label=\"{label}\"{shape}];");
    }
    for e in &g.edges {
        let mut attrs = Vec::new();
        if !e.label.is_empty() {
            attrs.push(format!("label=\"{}\"", dot_text(&e.label)));
        }
        match e.style {
            EdgeStyle::Normal => {}
            EdgeStyle::Retry => attrs.push("style=dotted".to_owned()),
            EdgeStyle::Failure => {
                attrs.push("style=dashed, color=\"#c0392b\", fontcolor=\"#c0392b\"".to_owned())
            }
        }
        if attrs.is_empty() {
            let _ = writeln!(out, "    n{} -> n{};", e.from, e.to);
        } else {
            let _ = writeln!(out, "    n{} -> n{} [{}];", e.from, e.to, attrs.join(", "));
        }
    }
    out.push_str("}\n");
    out
}

fn dot_text(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
