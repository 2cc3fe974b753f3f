//! The report as plain text for a terminal: each table with a title, aligned columns,
//! numbers to the right, rates as percentages.
//!
//! Owns the layout only; what the figures mean is the report's.

use std::fmt::Write;

use super::compute::Report;
use super::tables::{self, Cell, Table};

/// All tables, one after the other. A table with no rows says so rather than vanishing.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    for t in tables::tables(report) {
        if !out.is_empty() {
            out.push('\n');
        }
        table(&mut out, &t);
    }
    out
}

fn table(out: &mut String, t: &Table) {
    let _ = writeln!(out, "{}", t.name.replace('_', " ").to_uppercase());
    let rows: Vec<Vec<(String, bool)>> = t
        .rows
        .iter()
        .map(|r| r.iter().map(cell).collect())
        .collect();
    let mut widths: Vec<usize> = t.columns.iter().map(|c| c.chars().count()).collect();
    for r in &rows {
        for (i, (s, _)) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(s.chars().count());
            }
        }
    }
    let header: Vec<(String, bool)> = t.columns.iter().map(|c| (c.to_string(), false)).collect();
    line(out, &header, &widths);
    let rule: Vec<(String, bool)> = widths.iter().map(|w| ("-".repeat(*w), false)).collect();
    line(out, &rule, &widths);
    if rows.is_empty() {
        let _ = writeln!(out, "(none)");
    }
    for r in &rows {
        line(out, r, &widths);
    }
}

fn line(out: &mut String, cells: &[(String, bool)], widths: &[usize]) {
    let mut s = String::new();
    for (i, ((text, right), w)) in cells.iter().zip(widths).enumerate() {
        if i > 0 {
            s.push_str("  ");
        }
        let pad = w.saturating_sub(text.chars().count());
        if *right {
            s.push_str(&" ".repeat(pad));
            s.push_str(text);
        } else {
            s.push_str(text);
            s.push_str(&" ".repeat(pad));
        }
    }
    let _ = writeln!(out, "{}", s.trim_end());
}

/// The cell's text and whether it aligns right (numbers do).
fn cell(c: &Cell) -> (String, bool) {
    let dash = || "-".to_owned();
    match c {
        Cell::Text(s) if s.is_empty() => (dash(), false),
        Cell::Text(s) => (s.replace(['\r', '\n', '\t'], " "), false),
        Cell::Count(n) => (n.to_string(), true),
        Cell::Rate(r) => (r.map_or_else(dash, |r| format!("{:.1}%", r * 100.0)), true),
        Cell::Seconds(s) => (s.map_or_else(dash, |s| format!("{s:.1}")), true),
        Cell::Score(s) => (s.map_or_else(dash, |s| format!("{s:.2}")), true),
    }
}
