//! The wire parser: start line, header section and body of one complete message
//! (a UDP datagram, or a frame cut by [`StreamFramer`](super::StreamFramer)).
//!
//! Owns framing-level syntax only: line splitting (CRLF, or bare LF tolerated), header
//! unfolding, name normalisation, limits and Content-Length (RFC 3261 §7, §18.3). It never
//! interprets header values beyond Content-Length; typed views are in `fields.rs`.
//! Runs in one pass over the input with one copy of it at most, so cost is linear in size.

use bytes::Bytes;

use super::error::{HeaderError, ParseError, UriError};
use super::header::{Header, HeaderName, HeaderValue, Headers};
use super::method::Method;
use super::text::{is_token, is_wsp, snippet_bytes, trim_wsp_bytes};
use super::uri::Uri;
use super::{Limits, Message, Request, Response};

/// The headers a response copies from its request (RFC 3261 §8.2.6.2).
const ANSWER_COPIES: [HeaderName; 5] = [
    HeaderName::Via,
    HeaderName::From,
    HeaderName::To,
    HeaderName::CallId,
    HeaderName::CSeq,
];
/// How many of those salvage keeps beyond `max_headers` (a few Vias and the other four).
const SALVAGE_EXTRA: usize = 16;

/// The start line, parsed.
enum Start {
    Request { method: Method, uri: Uri },
    Response { status: u16, reason: String },
}

/// Whether the parser stops at the first defect or skips what it cannot read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Strict,
    /// Best effort, to answer a bad request: bad lines are skipped, limits cut the header
    /// list short, the version and the body are ignored.
    Salvage,
}

fn starts_with_sip(b: &[u8]) -> bool {
    b.get(..4).is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"))
}

fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// Parses one complete message from a datagram.
///
/// Datagram rules (RFC 3261 §18.3): without Content-Length the body is everything after
/// the empty line; with it, extra bytes are discarded and missing bytes are an error.
/// Leading CR/LF bytes are skipped (§7.5); a datagram with nothing else is
/// [`ParseError::KeepAlive`]. Lines may end in CRLF or a bare LF.
pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Message, ParseError> {
    if bytes.len() > limits.max_message_bytes {
        return Err(ParseError::MessageTooLarge {
            size: bytes.len(),
            limit: limits.max_message_bytes,
        });
    }
    parse_bytes(Bytes::copy_from_slice(bytes), limits)
}

/// Like [`parse`] but takes ownership of the buffer, so header values and the body are
/// slices of it (no copy). Use it on frames from [`StreamFramer`](super::StreamFramer).
pub fn parse_bytes(buf: Bytes, limits: &Limits) -> Result<Message, ParseError> {
    if buf.len() > limits.max_message_bytes {
        return Err(ParseError::MessageTooLarge {
            size: buf.len(),
            limit: limits.max_message_bytes,
        });
    }
    let head = parse_head(&buf, limits, Mode::Strict)?;
    let available = buf.len().saturating_sub(head.body_start);
    let body_len = match head.content_length {
        Some(cl) if cl > available => {
            return Err(ParseError::ContentLengthExceedsBody {
                declared: cl,
                available,
            });
        }
        Some(cl) => cl,
        None => available,
    };
    if body_len > limits.max_body_bytes {
        return Err(ParseError::BodyTooLarge {
            size: body_len,
            limit: limits.max_body_bytes,
        });
    }
    let body = buf.slice(head.body_start..head.body_start + body_len);
    Ok(match head.start {
        Start::Request { method, uri } => Message::Request(Request {
            method,
            uri,
            headers: head.headers,
            body,
        }),
        Start::Response { status, reason } => Message::Response(Response {
            status,
            reason,
            headers: head.headers,
            body,
        }),
    })
}

/// Best-effort read of a request that [`parse`] rejected, keeping whatever header lines
/// are readable (within the limits, from the first `max_message_bytes` bytes), so that a
/// 4xx/5xx can still be addressed to its sender. `None` if there is no request line.
/// The body is left empty; an unreadable Request-URI is replaced by `invalid:`.
pub fn salvage_request(bytes: &[u8], limits: &Limits) -> Option<Request> {
    let cut = bytes.get(..limits.max_message_bytes).unwrap_or(bytes);
    let buf = Bytes::copy_from_slice(cut);
    let head = parse_head(&buf, limits, Mode::Salvage).ok()?;
    match head.start {
        Start::Request { method, uri } => Some(Request {
            method,
            uri,
            headers: head.headers,
            body: Bytes::new(),
        }),
        Start::Response { .. } => None,
    }
}

struct Head {
    start: Start,
    headers: Headers,
    body_start: usize,
    content_length: Option<usize>,
}

fn parse_head(buf: &Bytes, limits: &Limits, mode: Mode) -> Result<Head, ParseError> {
    let data: &[u8] = buf;
    if data.is_empty() {
        return Err(ParseError::Empty);
    }
    let mut pos = data
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .ok_or(ParseError::KeepAlive)?;

    // Start line.
    let rest = data.get(pos..).unwrap_or_default();
    let (line, next) = match find_byte(rest, b'\n') {
        Some(i) => (rest.get(..i).unwrap_or_default(), Some(pos + i + 1)),
        None => (rest, None),
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > limits.max_line_bytes && mode == Mode::Strict {
        // Classify first so that garbage is dropped rather than answered "too large".
        let last = line.rsplit(|&b| is_wsp(b)).next().unwrap_or_default();
        return Err(if starts_with_sip(line) {
            ParseError::InvalidStatusLine {
                found: snippet_bytes(line),
            }
        } else if starts_with_sip(last) {
            ParseError::LineTooLong {
                line: 1,
                limit: limits.max_line_bytes,
            }
        } else {
            ParseError::NotSip {
                found: snippet_bytes(line),
            }
        });
    }
    let start = parse_start(line, mode)?;
    pos = next.ok_or(ParseError::UnterminatedHeaders)?;

    let mut headers = Headers::with_capacity(16);
    let mut content_length: Option<usize> = None;
    let mut line_no = 1usize;
    let strict = mode == Mode::Strict;
    let body_start;
    loop {
        line_no += 1;
        let Some((line, next)) = next_line(data, pos) else {
            if strict {
                return Err(ParseError::UnterminatedHeaders);
            }
            body_start = data.len();
            break;
        };
        if line.len() > limits.max_line_bytes {
            if strict {
                return Err(ParseError::LineTooLong {
                    line: line_no,
                    limit: limits.max_line_bytes,
                });
            }
            pos = next;
            continue;
        }
        if line.is_empty() {
            body_start = next;
            break;
        }
        let line_start = pos;
        pos = next;
        let parsed = parse_header_line(line, line_no);
        // Folded continuation lines (RFC 3261 §7.3.1) belong to this header.
        let mut pieces: Vec<&[u8]> = Vec::new();
        let mut cont_error = None;
        while let Some(&first) = data.get(pos) {
            if !is_wsp(first) {
                break;
            }
            let Some((cont, cont_next)) = next_line(data, pos) else {
                break;
            };
            line_no += 1;
            if cont.len() > limits.max_line_bytes {
                cont_error.get_or_insert(ParseError::LineTooLong {
                    line: line_no,
                    limit: limits.max_line_bytes,
                });
            } else if let Some(&b) = cont.iter().find(|&&b| b == 0 || b == b'\r') {
                cont_error.get_or_insert(ParseError::ControlCharacter {
                    line: line_no,
                    byte: b,
                });
            }
            pieces.push(trim_wsp_bytes(cont));
            pos = cont_next;
        }
        let (name, name_range, value_range) = match (parsed, cont_error) {
            (Ok(p), None) => p,
            (Err(e), _) | (Ok(_), Some(e)) => {
                if strict {
                    return Err(e);
                }
                continue;
            }
        };
        if headers.len() >= limits.max_headers {
            if strict {
                return Err(ParseError::TooManyHeaders {
                    limit: limits.max_headers,
                });
            }
            // Past the cap, salvage keeps only what an answer copies (a few more), so
            // that a request with too many headers can still be told so.
            if !ANSWER_COPIES.contains(&name) || headers.len() >= limits.max_headers + SALVAGE_EXTRA
            {
                continue;
            }
        }
        let value = if pieces.iter().all(|p| p.is_empty()) {
            buf.slice(line_start + value_range.start..line_start + value_range.end)
        } else {
            let mut v = line.get(value_range.clone()).unwrap_or_default().to_vec();
            for p in pieces.iter().filter(|p| !p.is_empty()) {
                if !v.is_empty() {
                    v.push(b' ');
                }
                v.extend_from_slice(p);
            }
            Bytes::from(v)
        };
        if name == HeaderName::ContentLength {
            match parse_content_length(&value) {
                Ok(cl) if content_length.is_none() => content_length = Some(cl),
                Ok(_) if strict => {
                    return Err(ParseError::Header(HeaderError::Duplicate {
                        name,
                        count: 2,
                    }));
                }
                Err(e) if strict => return Err(e),
                _ => {}
            }
        }
        let raw_name = buf.slice(line_start + name_range.start..line_start + name_range.end);
        headers.push_header(Header::parsed(
            name,
            raw_name,
            HeaderValue::from_parsed(value),
        ));
    }
    Ok(Head {
        start,
        headers,
        body_start,
        content_length,
    })
}

/// The line starting at `pos` without its CRLF/LF, and the index after its LF.
/// `None` if no LF follows (the line is incomplete).
fn next_line(data: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = data.get(pos..)?;
    let i = find_byte(rest, b'\n')?;
    let line = rest.get(..i)?;
    Some((line.strip_suffix(b"\r").unwrap_or(line), pos + i + 1))
}

type HeaderLine = (HeaderName, std::ops::Range<usize>, std::ops::Range<usize>);

/// Splits `name : value`, returning the normalised name and the ranges of the raw name
/// and of the trimmed value within `line`.
fn parse_header_line(line: &[u8], line_no: usize) -> Result<HeaderLine, ParseError> {
    if line.first().is_some_and(|&b| is_wsp(b)) {
        return Err(ParseError::ContinuationWithoutHeader { line: line_no });
    }
    let colon = find_byte(line, b':').ok_or_else(|| ParseError::MissingColon {
        line: line_no,
        found: snippet_bytes(line),
    })?;
    let raw_name = line.get(..colon).unwrap_or_default();
    let name_len = raw_name.len() - raw_name.iter().rev().take_while(|b| is_wsp(**b)).count();
    let name_bytes = raw_name.get(..name_len).unwrap_or_default();
    let name = HeaderName::from_bytes(name_bytes).ok_or_else(|| ParseError::InvalidHeaderName {
        line: line_no,
        found: snippet_bytes(raw_name),
    })?;
    if let Some(&b) = line.iter().find(|&&b| b == 0 || b == b'\r') {
        return Err(ParseError::ControlCharacter {
            line: line_no,
            byte: b,
        });
    }
    let value_all = line.get(colon + 1..).unwrap_or_default();
    let lead = value_all.iter().take_while(|b| is_wsp(**b)).count();
    let trail = value_all.iter().rev().take_while(|b| is_wsp(**b)).count();
    let v_start = colon + 1 + lead;
    let v_end = (line.len() - trail).max(v_start);
    Ok((name, 0..name_bytes.len(), v_start..v_end))
}

fn parse_content_length(value: &[u8]) -> Result<usize, ParseError> {
    let bad = || ParseError::InvalidContentLength {
        found: snippet_bytes(value),
    };
    let s = std::str::from_utf8(value).map_err(|_| bad())?;
    super::text::parse_u64(s)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(bad)
}

fn parse_start(line: &[u8], mode: Mode) -> Result<Start, ParseError> {
    if starts_with_sip(line) {
        return parse_status_line(line);
    }
    let mut parts = line.split(|&b| is_wsp(b)).filter(|p| !p.is_empty());
    let first = parts.next();
    let second = parts.next();
    let third = parts.next();
    let fourth = parts.next();
    let last = fourth.or(third).or(second).or(first);
    if !last.is_some_and(starts_with_sip) {
        return Err(ParseError::NotSip {
            found: snippet_bytes(line),
        });
    }
    let (Some(method), Some(uri), Some(version), None) = (first, second, third, fourth) else {
        return Err(ParseError::InvalidRequestLine {
            found: snippet_bytes(line),
        });
    };
    let method_str = std::str::from_utf8(method).ok().filter(|m| is_token(m));
    let Some(method_str) = method_str else {
        return Err(ParseError::InvalidMethod {
            found: snippet_bytes(method),
        });
    };
    if mode == Mode::Strict && !version.eq_ignore_ascii_case(b"SIP/2.0") {
        let v = version.get(4..).unwrap_or_default();
        let numeric = v
            .split(|&b| b == b'.')
            .map(|p| !p.is_empty() && p.iter().all(u8::is_ascii_digit))
            .collect::<Vec<_>>();
        return Err(if numeric == [true, true] {
            ParseError::VersionNotSupported {
                found: snippet_bytes(version),
            }
        } else {
            ParseError::InvalidRequestLine {
                found: snippet_bytes(line),
            }
        });
    }
    let parsed_uri = std::str::from_utf8(uri)
        .map_err(|_| UriError::Char {
            part: "URI",
            ch: char::REPLACEMENT_CHARACTER,
        })
        .and_then(Uri::parse);
    let uri = match parsed_uri {
        Ok(u) => u,
        Err(_) if mode == Mode::Salvage => Uri::Other {
            scheme: "invalid".into(),
            rest: String::new(),
        },
        Err(e) => return Err(ParseError::InvalidRequestUri(e)),
    };
    Ok(Start::Request {
        method: Method::from_token(method_str),
        uri,
    })
}

fn parse_status_line(line: &[u8]) -> Result<Start, ParseError> {
    let bad = || ParseError::InvalidStatusLine {
        found: snippet_bytes(line),
    };
    let version = line.get(..7).ok_or_else(bad)?;
    if !version.eq_ignore_ascii_case(b"SIP/2.0") {
        return Err(bad());
    }
    let rest = line.get(7..).unwrap_or_default();
    let gap = rest.iter().take_while(|b| is_wsp(**b)).count();
    if gap == 0 {
        return Err(bad());
    }
    let rest = rest.get(gap..).unwrap_or_default();
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let code_text = rest.get(..digits).unwrap_or_default();
    let after = rest.get(digits..).unwrap_or_default();
    if digits != 3 || after.first().is_some_and(|b| !is_wsp(*b)) {
        return Err(if digits > 0 && after.first().is_none_or(|b| is_wsp(*b)) {
            ParseError::InvalidStatusCode {
                found: snippet_bytes(code_text),
            }
        } else {
            bad()
        });
    }
    let status = code_text
        .iter()
        .fold(0u16, |acc, b| acc * 10 + u16::from(b - b'0'));
    if !(100..=699).contains(&status) {
        return Err(ParseError::InvalidStatusCode {
            found: snippet_bytes(code_text),
        });
    }
    // Control characters cannot appear in a reason phrase; they are blanked rather than
    // failing the response, so it can still complete its transaction.
    let reason = String::from_utf8_lossy(after)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim_matches(' ')
        .to_string();
    Ok(Start::Response { status, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_line_shapes() {
        let (n, nr, vr) = parse_header_line(b"vIa :  SIP/2.0/UDP x ", 2).unwrap();
        assert_eq!(n, HeaderName::Via);
        assert_eq!(nr, 0..3);
        assert_eq!(&b"vIa :  SIP/2.0/UDP x "[vr], b"SIP/2.0/UDP x");
        let (_, _, vr) = parse_header_line(b"NewFangledHeader:", 2).unwrap();
        assert!(vr.is_empty());
        assert!(matches!(
            parse_header_line(b"Via SIP/2.0/UDP x", 2),
            Err(ParseError::MissingColon { line: 2, .. })
        ));
        assert!(matches!(
            parse_header_line(b"V\x0bia: x", 3),
            Err(ParseError::InvalidHeaderName { line: 3, .. })
        ));
        assert!(matches!(
            parse_header_line(b"Via\0: x", 3),
            Err(ParseError::InvalidHeaderName { .. })
        ));
        assert!(matches!(
            parse_header_line(b"X Y: x", 3),
            Err(ParseError::InvalidHeaderName { .. })
        ));
        assert!(matches!(
            parse_header_line(b": x", 3),
            Err(ParseError::InvalidHeaderName { .. })
        ));
        assert!(matches!(
            parse_header_line(b"X: a\rb", 3),
            Err(ParseError::ControlCharacter { byte: b'\r', .. })
        ));
    }

    #[test]
    fn status_lines() {
        assert!(matches!(
            parse_status_line(b"SIP/2.0 183 "),
            Ok(Start::Response { status: 183, .. })
        ));
        assert!(matches!(
            parse_status_line(b"SIP/2.0 200"),
            Ok(Start::Response { status: 200, .. })
        ));
        assert!(matches!(
            parse_status_line(b"SIP/2.0 999 Custom"),
            Err(ParseError::InvalidStatusCode { .. })
        ));
        assert!(matches!(
            parse_status_line(b"SIP/2.0 4294967301 Big"),
            Err(ParseError::InvalidStatusCode { .. })
        ));
        assert!(matches!(
            parse_status_line(b"SIP/2.0 20 OK"),
            Err(ParseError::InvalidStatusCode { .. })
        ));
        assert!(matches!(
            parse_status_line(b"SIP/2.0 2x0 OK"),
            Err(ParseError::InvalidStatusLine { .. })
        ));
        assert!(matches!(
            parse_status_line(b"SIP/3.0 200 OK"),
            Err(ParseError::InvalidStatusLine { .. })
        ));
        assert!(matches!(
            parse_status_line(b"SIP/2.0200 OK"),
            Err(ParseError::InvalidStatusLine { .. })
        ));
    }
}
