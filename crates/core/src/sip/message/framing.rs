//! Message framing on stream transports (TCP, TLS): cuts a byte stream into whole
//! messages using Content-Length (mandatory on streams, RFC 3261 §18.3) and reports
//! RFC 5626 keep-alives.
//!
//! Owns buffering and boundaries only; each frame is then parsed with
//! [`parse_bytes`](super::parse_bytes). It never reads a socket. Cost is linear: the
//! search for the end of the header section resumes where it stopped.

use bytes::{Bytes, BytesMut};

use super::Limits;
use super::text::{is_wsp, parse_u64, snippet_bytes, trim_wsp_bytes};

/// What [`StreamFramer::pop`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One complete message (start line to end of body); parse it with
    /// [`parse_bytes`](super::parse_bytes).
    Message(Bytes),
    /// A CRLFCRLF keep-alive ping (RFC 5626 §4.4.1): answer it with a single CRLF.
    Ping,
    /// A lone CRLF between messages: a keep-alive pong (the answer to our own ping).
    /// A ping split across reads right after its first CRLF is reported as `Pong` then
    /// `Ping`; answering that ping is always right, ignoring a pong is harmless.
    Pong,
}

/// A stream that cannot be framed any further; the transport should close the
/// connection. Once returned, the framer keeps returning it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// No empty line within `max_message_bytes` bytes.
    #[error("header section exceeds {limit} bytes without an empty line")]
    HeaderSectionTooLarge {
        /// The limit.
        limit: usize,
    },
    /// A message without Content-Length: on a stream its end cannot be found.
    #[error("message without Content-Length on a stream transport")]
    MissingContentLength,
    /// Content-Length is not a non-negative decimal.
    #[error("malformed Content-Length: expected a non-negative number, found {found:?}")]
    InvalidContentLength {
        /// Excerpt of the value.
        found: String,
    },
    /// Two Content-Length headers with different values.
    #[error("conflicting Content-Length values {first} and {second}")]
    ConflictingContentLength {
        /// The first value.
        first: usize,
        /// The second value.
        second: usize,
    },
    /// The message (headers + announced body) would exceed the limits.
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    MessageTooLarge {
        /// Announced size.
        size: usize,
        /// The limit that was hit.
        limit: usize,
    },
}

impl FramingError {
    /// The message is over a size limit (rather than unframable): it can still be answered
    /// 413 before the connection is closed.
    pub fn is_too_large(&self) -> bool {
        matches!(
            self,
            Self::HeaderSectionTooLarge { .. } | Self::MessageTooLarge { .. }
        )
    }
}

/// Cuts a stream into messages. Feed received bytes with [`StreamFramer::push`], then call
/// [`StreamFramer::pop`] until it returns `Ok(None)`.
///
/// For each [`Frame::Message`], call [`parse_bytes`](super::parse_bytes): a parse error
/// there is per message (answer it with [`error_response`](super::error_response) and keep
/// the connection), except [`ParseError::NotSip`](super::ParseError::NotSip), which means
/// the peer does not speak SIP: close. A [`FramingError`] always means close.
#[derive(Debug)]
pub struct StreamFramer {
    buf: BytesMut,
    limits: Limits,
    /// Where the search for the empty line resumes.
    scanned: usize,
    /// Total length of the message at the front, once its header section is known.
    need: Option<usize>,
    /// The last frame was a lone-CRLF pong.
    after_pong: bool,
    failed: Option<FramingError>,
    /// The start of a message refused as too large (at most `max_message_bytes`), kept so
    /// that the transport can still address a 413 to its sender.
    refused_head: Option<Bytes>,
}

impl StreamFramer {
    /// A framer enforcing `limits` (max_message_bytes and max_body_bytes are used here).
    pub fn new(limits: Limits) -> Self {
        Self {
            buf: BytesMut::new(),
            limits,
            scanned: 0,
            need: None,
            after_pong: false,
            failed: None,
            refused_head: None,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(data);
        }
    }

    /// Bytes held but not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next frame, `Ok(None)` if more bytes are needed, or the error that ends the
    /// connection.
    pub fn pop(&mut self) -> Result<Option<Frame>, FramingError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = self.pop_inner();
        if let Err(e) = &r {
            if e.is_too_large() {
                let keep = self.buf.len().min(self.limits.max_message_bytes);
                self.refused_head = Some(self.buf.split_to(keep).freeze());
            }
            self.failed = Some(e.clone());
            self.buf = BytesMut::new();
        }
        r
    }

    /// After a [`FramingError::MessageTooLarge`] or [`FramingError::HeaderSectionTooLarge`]:
    /// the first bytes of the refused message (never more than the limit), from which
    /// [`too_large_response`](super::too_large_response) can answer it.
    pub fn refused_head(&self) -> Option<&[u8]> {
        self.refused_head.as_deref()
    }

    fn pop_inner(&mut self) -> Result<Option<Frame>, FramingError> {
        if self.need.is_none() {
            // Between messages: keep-alives, and stray bare LFs (ignored, RFC 3261 §7.5).
            loop {
                let b: &[u8] = &self.buf;
                if b.starts_with(b"\r\n\r\n") {
                    self.after_pong = false;
                    let _ = self.buf.split_to(4);
                    return Ok(Some(Frame::Ping));
                }
                match b {
                    // Could be the first half of a ping: wait.
                    [b'\r', b'\n', b'\r'] | [b'\r'] => return Ok(None),
                    [b'\r', b'\n', ..] => {
                        let _ = self.buf.split_to(2);
                        // A lone CRLF is reported at once (a pong must not wait for more
                        // data), so a ping split after its first CRLF shows up as a pong and
                        // then a second CRLF: that second one is reported as the ping.
                        let frame = if self.after_pong {
                            Frame::Ping
                        } else {
                            Frame::Pong
                        };
                        self.after_pong = frame == Frame::Pong;
                        return Ok(Some(frame));
                    }
                    [b'\n', ..] => {
                        self.after_pong = false;
                        let _ = self.buf.split_to(1);
                    }
                    [] => return Ok(None),
                    _ => break,
                }
            }
            let Some(head_len) = self.find_header_end() else {
                if self.buf.len() > self.limits.max_message_bytes {
                    return Err(FramingError::HeaderSectionTooLarge {
                        limit: self.limits.max_message_bytes,
                    });
                }
                return Ok(None);
            };
            let cl = content_length(self.buf.get(..head_len).unwrap_or_default())?;
            if cl > self.limits.max_body_bytes {
                return Err(FramingError::MessageTooLarge {
                    size: cl,
                    limit: self.limits.max_body_bytes,
                });
            }
            let total = head_len.saturating_add(cl);
            if total > self.limits.max_message_bytes {
                return Err(FramingError::MessageTooLarge {
                    size: total,
                    limit: self.limits.max_message_bytes,
                });
            }
            self.need = Some(total);
        }
        match self.need {
            Some(total) if self.buf.len() >= total => {
                self.need = None;
                self.after_pong = false;
                self.scanned = 0;
                Ok(Some(Frame::Message(self.buf.split_to(total).freeze())))
            }
            _ => Ok(None),
        }
    }

    /// Length of the header section including its empty line, if complete. Accepts CRLF
    /// and bare-LF line ends.
    fn find_header_end(&mut self) -> Option<usize> {
        let b: &[u8] = &self.buf;
        let mut i = self.scanned;
        while let Some(off) = b.get(i..).and_then(|r| r.iter().position(|&x| x == b'\n')) {
            let lf = i + off;
            match (b.get(lf + 1), b.get(lf + 2)) {
                (Some(b'\n'), _) => return Some(lf + 2),
                (Some(b'\r'), Some(b'\n')) => return Some(lf + 3),
                (None, _) | (Some(b'\r'), None) => {
                    self.scanned = lf;
                    return None;
                }
                _ => i = lf + 1,
            }
        }
        self.scanned = b.len();
        None
    }
}

/// Finds Content-Length (or `l`) in a header section; the start line is skipped.
fn content_length(head: &[u8]) -> Result<usize, FramingError> {
    let mut found: Option<usize> = None;
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first().is_none_or(|&b| is_wsp(b)) {
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = trim_wsp_bytes(line.get(..colon).unwrap_or_default());
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let value = trim_wsp_bytes(line.get(colon + 1..).unwrap_or_default());
        let n = std::str::from_utf8(value)
            .ok()
            .and_then(parse_u64)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| FramingError::InvalidContentLength {
                found: snippet_bytes(value),
            })?;
        match found {
            Some(first) if first != n => {
                return Err(FramingError::ConflictingContentLength { first, second: n });
            }
            _ => found = Some(n),
        }
    }
    found.ok_or(FramingError::MissingContentLength)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::too_large_response;

    const HEAD: &str = "INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bKx\r\n\
From: <sip:c@d>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: big@test\r\nCSeq: 1 INVITE\r\n";

    fn small() -> Limits {
        Limits {
            max_message_bytes: 2048,
            max_body_bytes: 2048,
            ..Limits::default()
        }
    }

    #[test]
    fn a_huge_content_length_is_refused_before_any_body_is_buffered_and_answered_413() {
        let mut f = StreamFramer::new(small());
        // Past u64: not a length at all.
        f.push(format!("{HEAD}Content-Length: 18446744073709551616\r\n\r\n").as_bytes());
        assert!(matches!(
            f.pop(),
            Err(FramingError::InvalidContentLength { .. })
        ));
        // The largest u64: a length, far too large.
        let mut f = StreamFramer::new(small());
        f.push(format!("{HEAD}Content-Length: 18446744073709551615\r\n\r\n").as_bytes());
        assert!(f.pop().unwrap_err().is_too_large());
        let mut f = StreamFramer::new(small());
        f.push(format!("{HEAD}Content-Length: 9000000\r\n\r\nv=0").as_bytes());
        let e = f.pop().unwrap_err();
        assert!(e.is_too_large(), "{e}");
        assert_eq!(f.buffered(), 0, "nothing kept but the head");
        let head = f.refused_head().expect("head kept");
        let resp = too_large_response(head, &small(), "t").expect("answerable");
        assert_eq!(resp.status, 413);
        assert_eq!(resp.headers.call_id().unwrap(), "big@test");
        f.push(&[b'x'; 10_000]);
        assert_eq!(f.buffered(), 0, "a failed framer takes nothing more");
    }

    #[test]
    fn a_header_section_over_the_limit_keeps_only_the_limit_and_is_answered_when_it_can_be() {
        let mut f = StreamFramer::new(small());
        let big = format!("{HEAD}Subject: {}\r\n", "a".repeat(64 * 1024));
        f.push(big.as_bytes());
        let e = f.pop().unwrap_err();
        assert!(
            matches!(e, FramingError::HeaderSectionTooLarge { .. }),
            "{e}"
        );
        let head = f.refused_head().unwrap();
        assert_eq!(head.len(), 2048);
        assert_eq!(too_large_response(head, &small(), "t").unwrap().status, 413);

        // The same giant header before the Via: nothing to address an answer to.
        let mut f = StreamFramer::new(small());
        f.push(
            format!(
                "INVITE sip:a@b SIP/2.0\r\nSubject: {}\r\n",
                "a".repeat(64 * 1024)
            )
            .as_bytes(),
        );
        assert!(f.pop().is_err());
        assert!(too_large_response(f.refused_head().unwrap(), &small(), "t").is_none());
    }
}
