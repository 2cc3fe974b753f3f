//! Two transcripts side by side, the first row where they differ marked: how a failing
//! flow test shows what was expected beside what the call did.
//!
//! Owns the text layout only; it knows nothing of calls or tests.

use std::fmt::Write;

/// The left column is at most this wide; longer lines are cut with `...`.
pub const MAX_LEFT_WIDTH: usize = 44;

/// One row: the expected line and the actual line (either may be empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub expected: String,
    pub actual: String,
}

/// Renders `rows` under an `expected | actual` header, each line starting with `indent`;
/// the row at `mark` (the first difference) starts with `>`.
pub fn render(rows: &[Row], mark: Option<usize>, indent: &str) -> String {
    render_titled(rows, mark, indent, "expected", "actual")
}

/// As [`render`], with other column titles (`recorded | replayed`).
pub fn render_titled(
    rows: &[Row],
    mark: Option<usize>,
    indent: &str,
    left: &str,
    right: &str,
) -> String {
    let width = rows
        .iter()
        .map(|r| r.expected.chars().count())
        .chain(std::iter::once(left.chars().count()))
        .max()
        .unwrap_or(0)
        .min(MAX_LEFT_WIDTH);
    let mut out = String::new();
    let _ = writeln!(out, "{indent}  {left:<width$} | {right}");
    for (i, r) in rows.iter().enumerate() {
        let m = if Some(i) == mark { '>' } else { ' ' };
        let left = fit(&r.expected, width);
        let line = format!("{indent}{m} {left:<width$} | {}", r.actual);
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(width.saturating_sub(3)).collect();
    t.push_str("...");
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_the_first_difference() {
        let rows = vec![
            Row {
                expected: "hears: welcome".into(),
                actual: "hears: welcome".into(),
            },
            Row {
                expected: "press: 1".into(),
                actual: "(call ended)".into(),
            },
            Row {
                expected: String::new(),
                actual: "more".into(),
            },
        ];
        assert_eq!(
            render(&rows, Some(1), "  "),
            "    expected       | actual\n    hears: welcome | hears: welcome\n  > press: 1       | (call ended)\n                   | more\n"
        );
    }

    #[test]
    fn long_lines_are_cut() {
        let long = "x".repeat(60);
        let rows = vec![Row {
            expected: long,
            actual: "y".into(),
        }];
        let out = render(&rows, None, "");
        assert!(out.lines().nth(1).unwrap().contains("xxx... | y"), "{out}");
    }
}
