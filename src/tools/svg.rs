//! A flow graph drawn as a standalone SVG file, without Graphviz: sizes the boxes from
//! their text, lays them out with `layout`, and writes boxes, curved arrows with labels,
//! dashed red failure edges and self-loops for retries.
//!
//! Owns the drawing only: what the nodes and edges say is `graph`'s.

use std::fmt::Write as _;

use super::graph::{EdgeStyle, Graph, NodeKind};
use super::layout::{Placed, Size, layout};

const TITLE_CHAR: f64 = 7.4;
const DETAIL_CHAR: f64 = 6.3;
const LABEL_CHAR: f64 = 6.0;
const PAD: f64 = 24.0;
const LOOP_STEP: f64 = 14.0;
const FAILURE_COLOUR: &str = "#c0392b";
const RETRY_COLOUR: &str = "#7f8c8d";
const EDGE_COLOUR: &str = "#34495e";

fn text_width(s: &str, per_char: f64) -> f64 {
    s.chars().count() as f64 * per_char
}

fn node_size(title: &str, detail: &str, kind: NodeKind) -> (f64, f64) {
    if kind == NodeKind::Start {
        return (34.0, 34.0);
    }
    let w = text_width(title, TITLE_CHAR)
        .max(text_width(detail, DETAIL_CHAR))
        .max(60.0)
        + PAD;
    let h = if detail.is_empty() { 28.0 } else { 42.0 };
    (w, h)
}

/// The self-loops of each node: (label, style), in edge order.
fn loops(g: &Graph) -> Vec<Vec<(&str, EdgeStyle)>> {
    let mut v: Vec<Vec<(&str, EdgeStyle)>> = vec![Vec::new(); g.nodes.len()];
    for e in &g.edges {
        if e.from == e.to
            && let Some(l) = v.get_mut(e.from)
        {
            l.push((e.label.as_str(), e.style));
        }
    }
    v
}

/// The whole SVG document.
pub fn svg(g: &Graph) -> String {
    let loops = loops(g);
    let sizes: Vec<Size> = g
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let (w, h) = node_size(&n.title, &n.detail, n.kind);
            let n_loops = loops[i].len() as f64;
            let right = loops[i]
                .iter()
                .map(|(label, _)| LOOP_STEP * n_loops * 1.6 + 10.0 + text_width(label, LABEL_CHAR))
                .fold(0.0_f64, f64::max);
            Size { w, h, right }
        })
        .collect();
    let edges: Vec<(usize, usize)> = g.edges.iter().map(|e| (e.from, e.to)).collect();
    let l = layout(&sizes, &edges, &[0]);

    let mut out = String::new();
    let (w, h) = (l.width.ceil(), l.height.ceil());
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="Helvetica, Arial, sans-serif">"#
    );
    let _ = writeln!(out, "<title>flow {}</title>", esc(&g.flow));
    out.push_str("<defs>\n");
    for (id, colour) in [
        ("arrow", EDGE_COLOUR),
        ("arrow-retry", RETRY_COLOUR),
        ("arrow-failure", FAILURE_COLOUR),
    ] {
        let _ = writeln!(
            out,
            r#"<marker id="{id}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>"#
        );
    }
    out.push_str("</defs>\n");
    let _ = writeln!(
        out,
        r##"<rect width="100%" height="100%" fill="#ffffff"/>"##
    );

    // Edges under the boxes, their labels over everything, each where it covers no other
    // label or box.
    let mut labels = String::new();
    let mut taken: Vec<Rect> = l
        .nodes
        .iter()
        .map(|n| Rect {
            x: n.x - n.w / 2.0,
            y: n.y - n.h / 2.0,
            w: n.w,
            h: n.h,
        })
        .collect();
    for (i, e) in g.edges.iter().enumerate() {
        let (colour, marker, dash) = match e.style {
            EdgeStyle::Normal => (EDGE_COLOUR, "arrow", ""),
            EdgeStyle::Retry => (RETRY_COLOUR, "arrow-retry", r#" stroke-dasharray="2 3""#),
            EdgeStyle::Failure => (
                FAILURE_COLOUR,
                "arrow-failure",
                r#" stroke-dasharray="6 4""#,
            ),
        };
        if e.from == e.to {
            continue;
        }
        let Some(p) = l.paths.get(i).filter(|p| p.len() >= 2) else {
            continue;
        };
        let _ = writeln!(
            out,
            r#"<path class="edge" d="{}" fill="none" stroke="{colour}" stroke-width="1.4"{dash} marker-end="url(#{marker})"/>"#,
            path_d(p)
        );
        if !e.label.is_empty() {
            let (x, y) = label_spot(&e.label, p[0], p[1], &mut taken);
            label(&mut labels, &e.label, x, y, colour);
        }
    }
    for (i, node_loops) in loops.iter().enumerate() {
        let Some(nd) = l.nodes.get(i) else { continue };
        for (k, (text, style)) in node_loops.iter().enumerate() {
            self_loop(
                &mut out,
                &mut labels,
                *nd,
                (k, node_loops.len()),
                text,
                *style,
            );
        }
    }
    for (i, n) in g.nodes.iter().enumerate() {
        if let Some(nd) = l.nodes.get(i) {
            node(&mut out, *nd, n.kind, &n.title, &n.detail);
        }
    }
    out.push_str(&labels);
    out.push_str("</svg>\n");
    out
}

#[derive(Debug, Clone, Copy)]
struct Rect {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

impl Rect {
    fn overlaps(&self, o: &Rect) -> bool {
        self.x < o.x + o.w && o.x < self.x + self.w && self.y < o.y + o.h && o.y < self.y + self.h
    }
}

/// Where on the edge's first segment its label goes: the middle if free, else the first
/// free spot nearer an end; the spot is then taken.
fn label_spot(text: &str, a: (f64, f64), b: (f64, f64), taken: &mut Vec<Rect>) -> (f64, f64) {
    let w = text_width(text, LABEL_CHAR) + 6.0;
    let at = |t: f64| {
        let my = (a.1 + b.1) / 2.0;
        let u = 1.0 - t;
        let x = u * u * u * a.0 + 3.0 * u * u * t * a.0 + 3.0 * u * t * t * b.0 + t * t * t * b.0;
        let y = u * u * u * a.1 + 3.0 * u * u * t * my + 3.0 * u * t * t * my + t * t * t * b.1;
        (x, y)
    };
    let rect = |(x, y): (f64, f64)| Rect {
        x: x - w / 2.0,
        y: y - 7.0,
        w,
        h: 14.0,
    };
    let spot = [0.5, 0.35, 0.65, 0.25, 0.75, 0.2, 0.8]
        .into_iter()
        .map(at)
        .find(|&p| !taken.iter().any(|r| r.overlaps(&rect(p))))
        .unwrap_or_else(|| at(0.5));
    taken.push(rect(spot));
    spot
}

/// A smooth path through the points: vertical tangents at each point.
fn path_d(p: &[(f64, f64)]) -> String {
    let mut d = format!("M{:.1},{:.1}", p[0].0, p[0].1);
    for w in p.windows(2) {
        let ((x1, y1), (x2, y2)) = (w[0], w[1]);
        let my = (y1 + y2) / 2.0;
        let _ = write!(d, " C{x1:.1},{my:.1} {x2:.1},{my:.1} {x2:.1},{y2:.1}");
    }
    d
}

fn label(out: &mut String, text: &str, x: f64, y: f64, colour: &str) {
    let w = text_width(text, LABEL_CHAR) + 6.0;
    let _ = writeln!(
        out,
        r##"<rect x="{:.1}" y="{:.1}" width="{w:.1}" height="14" rx="3" fill="#ffffff" fill-opacity="0.9"/><text x="{x:.1}" y="{:.1}" font-size="10" text-anchor="middle" fill="{colour}">{}</text>"##,
        x - w / 2.0,
        y - 7.0,
        y + 3.5,
        esc(text)
    );
}

fn self_loop(
    out: &mut String,
    labels: &mut String,
    nd: Placed,
    (k, of): (usize, usize),
    text: &str,
    style: EdgeStyle,
) {
    let (colour, marker, dash) = match style {
        EdgeStyle::Normal => (EDGE_COLOUR, "arrow", ""),
        EdgeStyle::Retry => (RETRY_COLOUR, "arrow-retry", r#" stroke-dasharray="2 3""#),
        EdgeStyle::Failure => (
            FAILURE_COLOUR,
            "arrow-failure",
            r#" stroke-dasharray="6 4""#,
        ),
    };
    let right = nd.x + nd.w / 2.0;
    let reach = LOOP_STEP * (k as f64 + 1.0);
    let dy = (nd.h / 2.0 - 4.0).max(4.0) * (1.0 - 0.25 * k as f64).max(0.3);
    let (y1, y2) = (nd.y - dy, nd.y + dy);
    let _ = writeln!(
        out,
        r#"<path class="edge" d="M{right:.1},{y1:.1} C{:.1},{y1:.1} {:.1},{y2:.1} {right:.1},{y2:.1}" fill="none" stroke="{colour}" stroke-width="1.4"{dash} marker-end="url(#{marker})"/>"#,
        right + reach * 1.6,
        right + reach * 1.6,
    );
    if !text.is_empty() {
        // Labels stacked beside the outermost loop, one line each.
        let w = text_width(text, LABEL_CHAR);
        let x = right + LOOP_STEP * of as f64 * 1.2 + 6.0 + w / 2.0;
        let y = nd.y + (k as f64 - (of as f64 - 1.0) / 2.0) * 15.0;
        label(labels, text, x, y, colour);
    }
}

fn node(out: &mut String, nd: Placed, kind: NodeKind, title: &str, detail: &str) {
    let (x, y) = (nd.x - nd.w / 2.0, nd.y - nd.h / 2.0);
    let (fill, stroke, rx, dash) = match kind {
        NodeKind::Start => ("#2c3e50", "#2c3e50", nd.h / 2.0, ""),
        NodeKind::Step => ("#eef4fb", "#2c3e50", 8.0, ""),
        NodeKind::Flow => ("#fdf2e0", "#a0522d", 2.0, ""),
        NodeKind::Hangup | NodeKind::End => ("#f4f4f4", "#555555", nd.h / 2.0, ""),
        NodeKind::GlobalKeys => ("#fffbe6", "#8a6d00", 8.0, r#" stroke-dasharray="4 3""#),
    };
    let _ = writeln!(
        out,
        r#"<g class="node"><rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" rx="{rx:.1}" fill="{fill}" stroke="{stroke}" stroke-width="1.2"{dash}/>"#,
        nd.w, nd.h
    );
    if kind == NodeKind::Flow {
        let _ = writeln!(
            out,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="2" fill="none" stroke="{stroke}" stroke-width="0.8"/>"#,
            x + 3.0,
            y + 3.0,
            nd.w - 6.0,
            nd.h - 6.0
        );
    }
    if kind == NodeKind::Start {
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" font-size="9" text-anchor="middle" fill="#ffffff">{}</text></g>"##,
            nd.x,
            nd.y + 3.0,
            esc(title)
        );
        return;
    }
    if detail.is_empty() {
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" font-size="12" font-weight="bold" text-anchor="middle" fill="#1b2631">{}</text></g>"##,
            nd.x,
            nd.y + 4.0,
            esc(title)
        );
    } else {
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" font-size="12" font-weight="bold" text-anchor="middle" fill="#1b2631">{}</text><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="#4d5656">{}</text></g>"##,
            nd.x,
            nd.y - 3.0,
            esc(title),
            nd.x,
            nd.y + 12.0,
            esc(detail)
        );
    }
}

/// XML text and attribute escaping.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}
