//! Lexical helpers shared by the field parsers: RFC 3261 §25.1 character classes,
//! quoted strings, and list splitting that respects quotes and angle brackets.
//!
//! Owns only byte/char classification and splitting; it knows nothing about header
//! semantics and never allocates except to build error snippets.

/// RFC 3261 `token` character.
pub(crate) fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// True when `s` is a non-empty RFC 3261 `token`.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

/// Linear white space inside one (already unfolded) line.
pub(crate) fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Trims SP and HT on both sides.
pub(crate) fn trim_wsp(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// Trims SP and HT on both sides of a byte slice.
pub(crate) fn trim_wsp_bytes(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if is_wsp(*first) {
            b = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = b {
        if is_wsp(*last) {
            b = rest;
        } else {
            break;
        }
    }
    b
}

/// Builds a short, printable excerpt of outside data for an error message: at most
/// 48 characters, control characters escaped, so it is safe in logs and in a reason phrase.
pub(crate) fn snippet(s: &str) -> String {
    const MAX: usize = 48;
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        if n == MAX {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Like [`snippet`] for raw bytes (lossy UTF-8).
pub(crate) fn snippet_bytes(b: &[u8]) -> String {
    let cut = b.get(..64).unwrap_or(b);
    snippet(&String::from_utf8_lossy(cut))
}

/// Why a list could not be split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SplitError {
    /// A `"` was opened and never closed.
    UnterminatedQuote,
    /// A `<` was opened and never closed, or a `>` had no `<`.
    UnbalancedAngle,
}

impl SplitError {
    pub(crate) fn expected(self) -> &'static str {
        match self {
            Self::UnterminatedQuote => "a closing '\"'",
            Self::UnbalancedAngle => "balanced '<' and '>'",
        }
    }
}

/// Splits `s` at every `sep` byte that is outside a quoted string and outside `<...>`.
/// Returns the pieces untrimmed, as byte ranges into `s`, so callers can keep raw text.
pub(crate) fn split_top_level(s: &str, sep: u8) -> Result<Vec<std::ops::Range<usize>>, SplitError> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let mut in_quote = false;
    let mut in_angle = false;
    while let Some(&b) = bytes.get(i) {
        if in_quote {
            match b {
                b'\\' => i += 1,
                b'"' => in_quote = false,
                _ => {}
            }
        } else if b == b'"' {
            in_quote = true;
        } else if b == b'<' {
            if in_angle {
                return Err(SplitError::UnbalancedAngle);
            }
            in_angle = true;
        } else if b == b'>' {
            if !in_angle {
                return Err(SplitError::UnbalancedAngle);
            }
            in_angle = false;
        } else if b == sep && !in_angle {
            out.push(start..i);
            start = i + 1;
        }
        i += 1;
    }
    if in_quote {
        return Err(SplitError::UnterminatedQuote);
    }
    if in_angle {
        return Err(SplitError::UnbalancedAngle);
    }
    out.push(start..bytes.len());
    Ok(out)
}

/// Splits a comma-separated header value into trimmed, non-empty elements.
/// RFC 7230-style tolerance: empty elements (`a,,b`) are skipped rather than rejected.
pub(crate) fn split_list(s: &str) -> Result<Vec<&str>, SplitError> {
    Ok(split_top_level(s, b',')?
        .into_iter()
        .filter_map(|r| s.get(r).map(trim_wsp))
        .filter(|p| !p.is_empty())
        .collect())
}

/// Reads a quoted string at the start of `s` (which must begin with `"`).
/// Returns the unescaped content and the rest of `s` after the closing quote.
pub(crate) fn read_quoted(s: &str) -> Option<(String, &str)> {
    let mut chars = s.char_indices();
    if chars.next()?.1 != '"' {
        return None;
    }
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?.1),
            '"' => return Some((out, s.get(i + 1..)?)),
            _ => out.push(c),
        }
    }
    None
}

/// Writes `s` as a quoted string, escaping `"` and `\`.
pub(crate) fn write_quoted(f: &mut impl std::fmt::Write, s: &str) -> std::fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        if c == '"' || c == '\\' {
            f.write_char('\\')?;
        }
        // Line breaks would end the header on the wire; they cannot come from a parsed
        // value, only from a builder, so they are flattened to a space.
        if c == '\r' || c == '\n' || c == '\0' {
            f.write_char(' ')?;
        } else {
            f.write_char(c)?;
        }
    }
    f.write_char('"')
}

/// Parses an unsigned decimal with no sign and no inner spaces; `None` on any other
/// character, on empty input or on overflow of `u64`.
pub(crate) fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.bytes().try_fold(0u64, |acc, b| {
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// Whether `s` consists of digits only (used to tell "too big" from "not a number").
pub(crate) fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_respects_quotes_and_angles() {
        let s = r#""Doe, John" <sip:a@b;x=1,2>, <sip:c@d>"#;
        let parts = split_list(s).unwrap();
        assert_eq!(parts, vec![r#""Doe, John" <sip:a@b;x=1,2>"#, "<sip:c@d>"]);
        assert_eq!(
            split_list("\"abc").unwrap_err(),
            SplitError::UnterminatedQuote
        );
        assert_eq!(split_list("<abc").unwrap_err(), SplitError::UnbalancedAngle);
        assert_eq!(split_list(">abc").unwrap_err(), SplitError::UnbalancedAngle);
        assert_eq!(split_list(r#""a\"b, c" x"#).unwrap().len(), 1);
        assert_eq!(split_list("a,, b ,").unwrap(), vec!["a", "b"]);
    }

    #[test]
    fn quoted_strings() {
        assert_eq!(
            read_quoted(r#""a\"b" rest"#),
            Some(("a\"b".to_string(), " rest"))
        );
        assert_eq!(read_quoted("\"open"), None);
        assert_eq!(read_quoted("\"trail\\"), None);
        let mut s = String::new();
        write_quoted(&mut s, "a\"b\\c").unwrap();
        assert_eq!(s, r#""a\"b\\c""#);
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64("0"), Some(0));
        assert_eq!(parse_u64("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64("18446744073709551616"), None);
        assert_eq!(parse_u64("-5"), None);
        assert_eq!(parse_u64(""), None);
        assert_eq!(parse_u64("1 2"), None);
    }

    #[test]
    fn snippets_are_printable_and_short() {
        let s = snippet("a\r\nb");
        assert_eq!(s, "a\\r\\nb");
        assert!(snippet(&"x".repeat(500)).len() < 60);
        assert_eq!(trim_wsp_bytes(b" \t ab \t"), b"ab");
        assert_eq!(trim_wsp_bytes(b"  "), b"");
    }
}
