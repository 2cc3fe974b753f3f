//! Problems found in flow files, printed the way compilers print them.
//!
//! Owns the `Diagnostic` type, its rustc-style rendering and the "did you mean" helper.
//! It does not find problems itself and never reads files: the finder attaches the source
//! line it points at.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_saphyr::Location;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One problem at one place. `line` and `column` are 1-based (characters, not bytes);
/// 0 means the problem has no position (a file that cannot be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    pub line: u32,
    pub column: u32,
    /// How many characters the `^^^` marker covers (at least one is drawn).
    pub width: u32,
    pub message: String,
    pub help: Option<String>,
    /// The text of `line`, for the snippet.
    pub source_line: Option<String>,
}

impl Diagnostic {
    pub fn error(file: &Path, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, file, message)
    }

    pub fn warning(file: &Path, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, file, message)
    }

    fn new(severity: Severity, file: &Path, message: impl Into<String>) -> Self {
        Self {
            severity,
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            width: 0,
            message: message.into(),
            help: None,
            source_line: None,
        }
    }

    /// Points at a position in `source` (the file's text), taking the snippet line from it.
    pub fn at(mut self, source: &str, line: u32, column: u32, width: u32) -> Self {
        self.line = line;
        self.column = column;
        self.width = width;
        self.source_line = line
            .checked_sub(1)
            .and_then(|i| source.lines().nth(i as usize))
            .map(str::to_owned);
        self
    }

    /// Points at a YAML node position from the parser.
    pub fn at_location(self, source: &str, loc: Location) -> Self {
        let line = u32::try_from(loc.line()).unwrap_or(u32::MAX);
        let column = u32::try_from(loc.column()).unwrap_or(u32::MAX);
        let width = u32::try_from(loc.span().len()).unwrap_or(1);
        self.at(source, line, column, width)
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_optional_help(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// True when any of them is an error (warnings do not stop a flow from loading).
pub fn has_errors(diagnostics: &[Diagnostic]) -> bool {
    diagnostics.iter().any(Diagnostic::is_error)
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {}", self.severity, self.message)?;
        let gutter = if self.line > 0 {
            self.line.to_string().len()
        } else {
            1
        };
        let pad = " ".repeat(gutter);
        if self.line == 0 {
            writeln!(f, "{pad}--> {}", self.file.display())?;
        } else {
            writeln!(
                f,
                "{pad}--> {}:{}:{}",
                self.file.display(),
                self.line,
                self.column
            )?;
            if let Some(src) = &self.source_line {
                // Tabs would shift the marker; one space per tab keeps columns aligned.
                let src = src.replace('\t', " ");
                writeln!(f, "{pad} |")?;
                writeln!(f, "{} | {}", self.line, src.trim_end())?;
                let column = (self.column.saturating_sub(1) as usize).min(src.chars().count());
                let indent = " ".repeat(column);
                let marks = "^".repeat(self.width.clamp(1, 200) as usize);
                writeln!(f, "{pad} | {indent}{marks}")?;
            }
        }
        if let Some(help) = &self.help {
            writeln!(f, "help: {help}")?;
        }
        Ok(())
    }
}

/// The candidate most like `word`, if one is close enough to be what was meant.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(f64, &'a str)> = None;
    for c in candidates {
        if c == word {
            continue;
        }
        let (w, cl) = (word.to_lowercase(), c.to_lowercase());
        let score = strsim::jaro_winkler(&w, &cl);
        // Jaro-Winkler ranks; the edit distance keeps a shared prefix alone ("after_hours"
        // and "after_sales") from passing as a typo.
        let longest = w.chars().count().max(cl.chars().count());
        let close = strsim::osa_distance(&w, &cl) <= (longest / 3).max(2);
        if score >= 0.8 && close && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c)
}

/// "did you mean 'x'?" when a close candidate exists.
pub fn did_you_mean_help<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    did_you_mean(word, candidates).map(|c| format!("did you mean '{c}'?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_a_compiler() {
        let src = "steps:\n  a:\n    menu:\n      timout: 5s\n";
        let d = Diagnostic::error(Path::new("flows/main.yaml"), "unknown key 'timout'")
            .at(src, 4, 7, 6)
            .with_help("did you mean 'timeout'?");
        assert_eq!(
            d.to_string(),
            "error: unknown key 'timout'\n \
             --> flows/main.yaml:4:7\n  \
             |\n\
             4 |       timout: 5s\n  \
             |       ^^^^^^\n\
             help: did you mean 'timeout'?\n"
        );
    }

    #[test]
    fn without_position_prints_only_the_file() {
        let d = Diagnostic::error(Path::new("flows/x.yaml"), "cannot read the file");
        assert_eq!(
            d.to_string(),
            "error: cannot read the file\n --> flows/x.yaml\n"
        );
    }

    #[test]
    fn suggests_close_words_only() {
        let keys = ["timeout", "retries", "prompt", "options"];
        assert_eq!(did_you_mean("timout", keys), Some("timeout"));
        assert_eq!(did_you_mean("promt", keys), Some("prompt"));
        assert_eq!(did_you_mean("after_hours", ["after_sales"]), None);
        assert_eq!(did_you_mean("xyz", keys), None);
    }
}
