//! The report as CSV: one document per table (RFC 4180: comma-separated, CRLF line ends,
//! fields quoted when they hold a comma, a quote or a line break).
//!
//! Owns the CSV text only. Rates are fractions with four decimals, seconds have
//! millisecond precision, absent figures are empty fields.

use super::compute::Report;
use super::tables::{self, Cell, Table};

pub use super::tables::NAMES;

/// Every table as `(name, csv)`, in [`NAMES`]' order.
pub fn tables(report: &Report) -> Vec<(&'static str, String)> {
    tables::tables(report)
        .iter()
        .map(|t| (t.name, render(t)))
        .collect()
}

/// One table by name, or `None` if there is no such table.
pub fn table(report: &Report, name: &str) -> Option<String> {
    tables::tables(report)
        .iter()
        .find(|t| t.name == name)
        .map(render)
}

fn render(t: &Table) -> String {
    let mut out = String::new();
    line(&mut out, t.columns.iter().map(|c| field(c)));
    for row in &t.rows {
        line(&mut out, row.iter().map(cell));
    }
    out
}

fn line(out: &mut String, fields: impl Iterator<Item = String>) {
    let fields: Vec<String> = fields.collect();
    out.push_str(&fields.join(","));
    out.push_str("\r\n");
}

fn cell(c: &Cell) -> String {
    match c {
        Cell::Text(s) => field(s),
        Cell::Count(n) => n.to_string(),
        Cell::Rate(r) => r.map(|r| format!("{r:.4}")).unwrap_or_default(),
        Cell::Seconds(s) => s.map(|s| format!("{s:.3}")).unwrap_or_default(),
        Cell::Score(s) => s.map(|s| format!("{s:.2}")).unwrap_or_default(),
    }
}

/// A text field, quoted when it must be. Tag values and reasons come from flow files, and
/// may hold anything.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}
