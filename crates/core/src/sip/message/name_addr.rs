//! name-addr / addr-spec values (From, To, Contact, Route, Record-Route, Refer-To...):
//! optional display name, URI, header parameters (`tag`, `q`, `expires`...).
//!
//! Owns that grammar (RFC 3261 §20.10, §25.1) and its printing. In addr-spec form (no
//! `<>`) everything after the first `;` is a header parameter, never a URI parameter.

use std::fmt;

use super::error::HeaderError;
use super::header::HeaderName;
use super::params::Params;
use super::text::{is_wsp, read_quoted, snippet, split_list, trim_wsp, write_quoted};
use super::uri::Uri;

/// A name-addr or addr-spec with header parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name, unquoted and unescaped (`Doe, John`). `None` if there was none.
    pub display_name: Option<String>,
    /// The URI.
    pub uri: Uri,
    /// Header parameters (after `>` or after the addr-spec), raw.
    pub params: Params,
}

impl NameAddr {
    /// `<uri>` with no display name or parameters.
    pub fn new(uri: Uri) -> Self {
        Self {
            display_name: None,
            uri,
            params: Params::new(),
        }
    }

    /// Parses one name-addr or addr-spec; `name` only labels errors.
    pub fn parse(s: &str, name: &HeaderName) -> Result<Self, HeaderError> {
        let bad = |expected: &'static str, found: &str| HeaderError::Malformed {
            name: name.clone(),
            expected,
            found: snippet(found),
        };
        let s = trim_wsp(s);
        if s.is_empty() {
            return Err(bad("a name-addr or addr-spec", s));
        }
        let (display_name, after_display) = if s.starts_with('"') {
            let (dn, rest) =
                read_quoted(s).ok_or_else(|| bad("a closing '\"' in the display name", s))?;
            let rest = rest.trim_start_matches([' ', '\t']);
            if !rest.starts_with('<') {
                return Err(bad("'<' after the quoted display name", rest));
            }
            (Some(dn), rest)
        } else if let Some(lt) = s.find('<') {
            let dn = trim_wsp(s.get(..lt).unwrap_or_default());
            // Unquoted display names are tokens separated by LWS. Raw UTF-8 is tolerated
            // too: some carriers send `José <sip:...>` unquoted, and it is unambiguous.
            let ok = dn
                .bytes()
                .all(|b| super::text::is_token_char(b) || is_wsp(b) || b >= 0x80);
            if !ok {
                return Err(bad("a token or quoted display name", dn));
            }
            (
                (!dn.is_empty()).then(|| dn.split_whitespace().collect::<Vec<_>>().join(" ")),
                s.get(lt..).unwrap_or_default(),
            )
        } else {
            (None, s)
        };
        let (uri_text, param_text) = if let Some(inner) = after_display.strip_prefix('<') {
            let gt = inner
                .find('>')
                .ok_or_else(|| bad("a closing '>'", after_display))?;
            let uri_text = trim_wsp(inner.get(..gt).unwrap_or_default());
            let rest = trim_wsp(inner.get(gt + 1..).unwrap_or_default());
            (uri_text, rest)
        } else {
            if after_display.contains('>') {
                return Err(bad("'>' only after '<'", after_display));
            }
            match after_display.find(';') {
                Some(i) => (
                    trim_wsp(after_display.get(..i).unwrap_or_default()),
                    after_display.get(i..).unwrap_or_default(),
                ),
                None => (after_display, ""),
            }
        };
        let uri = Uri::parse(uri_text).map_err(|e| HeaderError::Uri {
            name: name.clone(),
            source: e,
        })?;
        let params = if param_text.is_empty() {
            Params::new()
        } else {
            let p = param_text
                .strip_prefix(';')
                .ok_or_else(|| bad("';' parameters after the address", param_text))?;
            Params::parse(p).map_err(|e| bad("';name=value' parameters", &e.found))?
        };
        Ok(Self {
            display_name,
            uri,
            params,
        })
    }

    /// The `tag` parameter; `None` when absent or empty (`;tag=` is treated as no tag).
    pub fn tag(&self) -> Option<&str> {
        self.params.value("tag").filter(|t| !t.is_empty())
    }

    /// Sets the `tag` parameter.
    pub fn set_tag(&mut self, tag: &str) {
        self.params.set("tag", Some(tag));
    }

    /// Builder form of [`NameAddr::set_tag`].
    pub fn with_tag(mut self, tag: &str) -> Self {
        self.set_tag(tag);
        self
    }

    /// Builder: sets the display name.
    pub fn with_display_name(mut self, name: &str) -> Self {
        self.display_name = Some(name.to_string());
        self
    }
}

impl fmt::Display for NameAddr {
    /// Always prints the name-addr form (`"Name" <uri>;params`), which is valid for every
    /// URI, and quotes the display name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(dn) = &self.display_name {
            write_quoted(f, dn)?;
            f.write_str(" ")?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

/// The Contact header(s) of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contacts {
    /// `Contact: *` (REGISTER removing all bindings).
    Wildcard,
    /// Zero or more contacts, in order across all Contact lines.
    List(Vec<NameAddr>),
}

/// Parses a comma-separated list of name-addrs (Contact, Route, Record-Route...).
pub(crate) fn parse_list(
    value: &str,
    name: &HeaderName,
    out: &mut Vec<NameAddr>,
) -> Result<(), HeaderError> {
    let parts = split_list(value).map_err(|e| HeaderError::Malformed {
        name: name.clone(),
        expected: e.expected(),
        found: snippet(value),
    })?;
    if parts.is_empty() {
        return Err(HeaderError::Malformed {
            name: name.clone(),
            expected: "at least one address",
            found: String::new(),
        });
    }
    for p in parts {
        out.push(NameAddr::parse(p, name)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<NameAddr, HeaderError> {
        NameAddr::parse(s, &HeaderName::To)
    }

    #[test]
    fn forms() {
        let a = p(r#""Doe, John" <sip:jdoe@example.com>;tag=abc"#).unwrap();
        assert_eq!(a.display_name.as_deref(), Some("Doe, John"));
        assert_eq!(a.tag(), Some("abc"));
        let a = p("sip:bob@example.com;tag=xyz").unwrap();
        assert_eq!(a.tag(), Some("xyz"));
        assert_eq!(a.uri.to_string(), "sip:bob@example.com");
        let a = p("Bob   Smith<sip:bob@example.com;transport=tcp>;q=0.1").unwrap();
        assert_eq!(a.display_name.as_deref(), Some("Bob Smith"));
        assert_eq!(a.uri.param("transport"), Some("tcp"));
        assert_eq!(a.params.value("q"), Some("0.1"));
        assert_eq!(
            a.to_string(),
            r#""Bob Smith" <sip:bob@example.com;transport=tcp>;q=0.1"#
        );
        let a = p(r#""a \"quoted\" name" <tel:+1234>"#).unwrap();
        assert_eq!(a.display_name.as_deref(), Some(r#"a "quoted" name"#));
        assert_eq!(a.to_string(), r#""a \"quoted\" name" <tel:+1234>"#);
        assert_eq!(p("<sip:a@b>;tag=").unwrap().tag(), None);
        assert_eq!(
            p("José Núñez <sip:a@b>").unwrap().display_name.as_deref(),
            Some("José Núñez")
        );
    }

    #[test]
    fn rejects() {
        for bad in [
            "<",
            ">;tag=",
            "",
            "\"open <sip:a@b>",
            "Doe, John <sip:a@b>",
            "<sip:a@b> junk",
            "<sip:a b>",
            "sip:a@b>",
            "<>",
            "\"x\" sip:a@b",
        ] {
            assert!(p(bad).is_err(), "{bad} should fail");
        }
    }
}
