//! `;name=value` parameter lists as used by URIs, Via, name-addr headers and Content-Type.
//!
//! Owns parsing and printing of the list. Values are kept raw (a quoted value keeps its
//! quotes, escapes stay escaped) so printing never changes them; names are matched
//! case-insensitively. Meaning of particular parameters belongs to the callers.

use std::fmt;

use super::text::{is_token, snippet, split_top_level, trim_wsp};

/// One parameter: `name` or `name=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Name as received.
    pub name: String,
    /// Raw value; `None` for a flag (`;lr`), `Some("")` for `;tag=`.
    pub value: Option<String>,
}

/// An ordered parameter list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<Param>);

/// Why a parameter list is malformed; callers wrap it in their own error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParamError {
    pub(crate) found: String,
}

impl Params {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the text after a leading `;` (e.g. `branch=z9hG4bK1;rport`). Whitespace
    /// around `;` and `=` is tolerated (RFC 3261 allows LWS there); empty elements
    /// (`;;`, trailing `;`) are skipped. A name must be a token; an unquoted value may not
    /// hold whitespace, `"`, `<` or `>`; a quoted value must be closed.
    pub(crate) fn parse(s: &str) -> Result<Self, ParamError> {
        let mut list = Vec::new();
        let ranges = split_top_level(s, b';').map_err(|_| ParamError { found: snippet(s) })?;
        for r in ranges {
            let piece = trim_wsp(s.get(r).unwrap_or_default());
            if piece.is_empty() {
                continue;
            }
            let (name, value) = match piece.split_once('=') {
                Some((n, v)) => (trim_wsp(n), Some(trim_wsp(v))),
                None => (piece, None),
            };
            if !is_token(name) {
                return Err(ParamError {
                    found: snippet(piece),
                });
            }
            if let Some(v) = value {
                let ok = if v.starts_with('"') {
                    super::text::read_quoted(v).is_some_and(|(_, rest)| rest.is_empty())
                } else {
                    !v.bytes()
                        .any(|b| matches!(b, b' ' | b'\t' | b'"' | b'<' | b'>') || b < 0x20)
                };
                if !ok {
                    return Err(ParamError {
                        found: snippet(piece),
                    });
                }
            }
            list.push(Param {
                name: name.to_string(),
                value: value.map(str::to_string),
            });
        }
        Ok(Self(list))
    }

    /// The first parameter called `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&Param> {
        self.0.iter().find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// The raw value of `name`; `None` if absent or a flag without value.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|p| p.value.as_deref())
    }

    /// Whether `name` is present, with or without a value.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// How many times `name` appears.
    pub fn count(&self, name: &str) -> usize {
        self.0
            .iter()
            .filter(|p| p.name.eq_ignore_ascii_case(name))
            .count()
    }

    /// Sets `name` to `value` (replacing the first occurrence in place and dropping the
    /// others) or appends it.
    pub fn set(&mut self, name: &str, value: Option<&str>) {
        let value = value.map(str::to_string);
        match self
            .0
            .iter()
            .position(|p| p.name.eq_ignore_ascii_case(name))
        {
            Some(at) => {
                if let Some(p) = self.0.get_mut(at) {
                    p.value = value;
                }
                let mut i = 0;
                self.0.retain(|p| {
                    let keep = i <= at || !p.name.eq_ignore_ascii_case(name);
                    i += 1;
                    keep
                });
            }
            None => self.0.push(Param {
                name: name.to_string(),
                value,
            }),
        }
    }

    /// Removes every `name`; returns whether any was there.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.0.len();
        self.0.retain(|p| !p.name.eq_ignore_ascii_case(name));
        before != self.0.len()
    }

    /// All parameters in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Param> {
        self.0.iter()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Display for Params {
    /// Prints `;name=value` for each parameter (nothing for an empty list).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            write!(f, ";{}", p.name)?;
            if let Some(v) = &p.value {
                write!(f, "={v}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_whitespace_and_flags() {
        let p = Params::parse(" branch = z9hG4bKsp ; rport ;received=2001:db8::9:255").unwrap();
        assert_eq!(p.value("branch"), Some("z9hG4bKsp"));
        assert!(p.contains("RPORT"));
        assert_eq!(p.value("rport"), None);
        assert_eq!(p.value("received"), Some("2001:db8::9:255"));
        assert_eq!(
            p.to_string(),
            ";branch=z9hG4bKsp;rport;received=2001:db8::9:255"
        );
    }

    #[test]
    fn quoted_values_keep_quotes() {
        let p = Params::parse(r#"x="a;b c";tag="#).unwrap();
        assert_eq!(p.value("x"), Some(r#""a;b c""#));
        assert_eq!(p.value("tag"), Some(""));
        assert!(Params::parse(r#"x="open"#).is_err());
        assert!(Params::parse("=v").is_err());
        assert!(Params::parse("a b=c").is_err());
        assert!(Params::parse("a=b c").is_err());
    }

    #[test]
    fn set_and_remove() {
        let mut p = Params::parse("a=1;b;A=2").unwrap();
        p.set("a", Some("3"));
        assert_eq!(p.to_string(), ";a=3;b");
        p.set("c", None);
        assert!(p.remove("B"));
        assert_eq!(p.to_string(), ";a=3;c");
    }
}
