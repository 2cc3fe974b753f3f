//! hotline's SIP message codec (RFC 3261 §7, §18.3, §20, §25): parse, inspect, build and
//! print requests and responses.
//!
//! Owns the wire format only. It has no sockets, no clock and no transaction or dialog
//! state; the transport feeds it bytes and the upper layers read typed views from it.
//!
//! Design:
//! - Headers are an ordered list of raw (name, value) lines, so everything we do not
//!   understand prints back as received. Names are matched case-insensitively with compact
//!   forms (`v`, `i`, `m`, ...) normalised; folded lines are unfolded.
//! - Typed views (Via hops, name-addrs, CSeq, ...) are parsed on demand by accessors on
//!   [`Headers`]; a malformed header fails its accessor only, never the whole message.
//! - [`Limits`] bound size, line length, header count and body size.
//! - [`ParseError::status_code`] and [`ParseError::reason_phrase`] turn any defect into the
//!   response to send; [`error_response`] builds it from the raw bytes.
//!
//! Decisions worth knowing:
//! - Lines may end in CRLF or a bare LF (printing always uses CRLF). CR/LF bytes before
//!   the start line are skipped; a datagram of nothing else is [`ParseError::KeepAlive`].
//! - The header section must end with an empty line, even in a datagram with no body.
//! - Request SIP versions other than 2.0 give 505; status codes outside 100..=699 (e.g.
//!   999) make the response unparsable, so it is dropped like any malformed response.
//! - Only Content-Length is interpreted while parsing (it frames the body); a repeated
//!   Content-Length is refused. Other duplicates of single-valued headers (From, To,
//!   Call-ID, CSeq, Max-Forwards, Content-Type) fail their accessor and so
//!   [`validate_request`], never silently picking one.
//! - NUL or a bare CR in the header section, and any non-token byte in a header name
//!   (VT, space, NUL...), fail the message; other bytes in values are kept raw, and a
//!   non-UTF-8 value fails only its own accessor.
//! - A `;tag=` with an empty value counts as no tag.
//! - Limits map to 513 (message, line, header count) and 413 (body only).
//!
//! Driving it from a transport:
//! ```no_run
//! use hotline_core::sip::message::{parse, validate_request, error_response, Limits, Message};
//! # fn handle(datagram: &[u8], from: std::net::SocketAddr) {
//! let limits = Limits::default();
//! match parse(datagram, &limits) {
//!     Ok(Message::Request(mut req)) => {
//!         if let Err(e) = validate_request(&req) {
//!             let _answer = hotline_core::sip::message::error_response_for(&req, &e, "tag1");
//!             return;
//!         }
//!         let _ = req.headers.stamp_top_via(from);
//!         // hand to the transaction layer
//!     }
//!     Ok(Message::Response(_resp)) => { /* validate_response, then transactions */ }
//!     Err(e) => {
//!         let _answer = error_response(datagram, &limits, &e, "tag1"); // None: drop and count
//!     }
//! }
//! # }
//! ```

mod error;
mod fields;
mod framing;
mod header;
mod method;
mod name_addr;
mod params;
mod parse;
mod status;
mod text;
mod uri;
mod via;

use bytes::Bytes;

pub use error::{HeaderError, ParseError, UriError};
pub use fields::{CSeq, ContentType};
pub use framing::{Frame, FramingError, StreamFramer};
pub use header::{Header, HeaderName, HeaderValue, Headers};
pub use method::Method;
pub use name_addr::{Contacts, NameAddr};
pub use params::{Param, Params};
pub use parse::{parse, parse_bytes, salvage_request};
pub use status::default_reason;
pub use uri::{Host, SipUri, TelUri, Uri};
pub use via::{MAGIC_COOKIE, Rport, Transport, Via};

/// Bounds applied while parsing and framing. Exceeding one is a typed error:
/// [`ParseError::MessageTooLarge`], [`ParseError::LineTooLong`] and
/// [`ParseError::TooManyHeaders`] answer 513 Message Too Large, [`ParseError::BodyTooLarge`]
/// answers 413 Request Entity Too Large.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Whole message, start line to end of body (default 65 535, the largest UDP payload).
    pub max_message_bytes: usize,
    /// Header fields (lines after unfolding; default 128).
    pub max_headers: usize,
    /// One physical line of the start line or header section (default 8 192).
    pub max_line_bytes: usize,
    /// Body (default 65 535).
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 65_535,
            max_headers: 128,
            max_line_bytes: 8_192,
            max_body_bytes: 65_535,
        }
    }
}

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method (extension methods are [`Method::Other`]).
    pub method: Method,
    /// Request-URI. The version is always SIP/2.0 (anything else fails to parse).
    pub uri: Uri,
    /// Headers in order.
    pub headers: Headers,
    /// Body, raw.
    pub body: Bytes,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code, 100..=699.
    pub status: u16,
    /// Reason phrase (may be empty; non-UTF-8 bytes replaced).
    pub reason: String,
    /// Headers in order.
    pub headers: Headers,
    /// Body, raw.
    pub body: Bytes,
}

/// A request or a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

impl Message {
    /// The headers.
    pub fn headers(&self) -> &Headers {
        match self {
            Self::Request(r) => &r.headers,
            Self::Response(r) => &r.headers,
        }
    }

    /// The headers, mutable.
    pub fn headers_mut(&mut self) -> &mut Headers {
        match self {
            Self::Request(r) => &mut r.headers,
            Self::Response(r) => &mut r.headers,
        }
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        match self {
            Self::Request(r) => &r.body,
            Self::Response(r) => &r.body,
        }
    }

    /// Prints the message; see [`Request::to_bytes`].
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::Request(r) => r.to_bytes(),
            Self::Response(r) => r.to_bytes(),
        }
    }
}

impl Request {
    /// A request with no headers and no body. The caller adds Via, Max-Forwards, From, To,
    /// Call-ID, CSeq (and Contact/Route as needed); Content-Length is added on printing.
    pub fn new(method: Method, uri: Uri) -> Self {
        Self {
            method,
            uri,
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// Sets the body and its Content-Type.
    pub fn set_body(&mut self, content_type: &ContentType, body: impl Into<Bytes>) {
        self.headers.set(HeaderName::ContentType, content_type);
        self.body = body.into();
    }

    /// Prints the request: request line, headers in order (received spelling for parsed
    /// ones, canonical for built ones), exactly one Content-Length matching the body
    /// (where the first one was, else last), empty line, body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.body.len() + 64 * self.headers.len());
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.push(b' ');
        // A built URI could hold spaces or line breaks; escape them so the line stays one line.
        for b in self.uri.to_string().bytes() {
            if b <= b' ' || b == 0x7f {
                out.extend_from_slice(format!("%{b:02X}").as_bytes());
            } else {
                out.push(b);
            }
        }
        out.extend_from_slice(b" SIP/2.0\r\n");
        self.headers
            .write_without_content_length(&mut out, self.body.len());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

impl Response {
    /// A response to `req` (RFC 3261 §8.2.6): copies every Via line in order, then the
    /// first From, To, Call-ID and CSeq (and Timestamp on a 100). Record-Route is *not*
    /// copied; call [`Response::copy_record_route`] for dialog-creating responses
    /// (§12.1.1). The To tag is not added; call [`Headers::ensure_to_tag`] (every response
    /// but 100 needs one, §8.2.6.2). An empty `reason` becomes [`default_reason`].
    pub fn for_request(req: &Request, status: u16, reason: &str) -> Self {
        let mut headers = Headers::with_capacity(8);
        for h in req.headers.fields(HeaderName::Via) {
            headers.push_header(h.clone());
        }
        let mut single = vec![
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
        ];
        if status == 100 {
            single.push(HeaderName::Timestamp);
        }
        for name in single {
            if let Some(h) = req.headers.fields(name).next() {
                headers.push_header(h.clone());
            }
        }
        let reason = if reason.is_empty() {
            default_reason(status)
        } else {
            reason
        };
        Self {
            status,
            reason: reason.to_string(),
            headers,
            body: Bytes::new(),
        }
    }

    /// Copies the request's Record-Route lines, in order (RFC 3261 §12.1.1).
    pub fn copy_record_route(&mut self, req: &Request) {
        for h in req.headers.fields(HeaderName::RecordRoute) {
            self.headers.push_header(h.clone());
        }
    }

    /// Sets the body and its Content-Type.
    pub fn set_body(&mut self, content_type: &ContentType, body: impl Into<Bytes>) {
        self.headers.set(HeaderName::ContentType, content_type);
        self.body = body.into();
    }

    /// Prints the response; same rules as [`Request::to_bytes`]. Control characters in
    /// the reason phrase are replaced by spaces.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.body.len() + 64 * self.headers.len());
        out.extend_from_slice(b"SIP/2.0 ");
        out.extend_from_slice(self.status.to_string().as_bytes());
        out.push(b' ');
        out.extend(
            self.reason
                .bytes()
                .map(|b| if b < b' ' || b == 0x7f { b' ' } else { b }),
        );
        out.extend_from_slice(b"\r\n");
        self.headers
            .write_without_content_length(&mut out, self.body.len());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// Checks what a UAS needs before accepting a request (RFC 3261 §8.1.1, §8.2): Via, From,
/// To, Call-ID and CSeq present once and well-formed, Max-Forwards and Content-Type
/// well-formed if present, CSeq method equal to the request method, and a sip/sips/tel
/// Request-URI. Method support and Max-Forwards = 0 are left to the caller.
pub fn validate_request(req: &Request) -> Result<(), ParseError> {
    let h = &req.headers;
    h.vias()?;
    h.from_addr()?;
    h.to_addr()?;
    h.call_id()?;
    let cseq = h.cseq()?;
    h.max_forwards()?;
    h.content_type()?;
    if cseq.method != req.method {
        return Err(ParseError::CSeqMethodMismatch {
            method: req.method.clone(),
            cseq: cseq.method,
        });
    }
    if let Uri::Other { scheme, .. } = &req.uri {
        return Err(ParseError::UnsupportedUriScheme {
            scheme: scheme.clone(),
        });
    }
    Ok(())
}

/// Checks what a client transaction needs from a response: a well-formed top Via and
/// From, To, Call-ID, CSeq present once and well-formed. A failing response is dropped.
pub fn validate_response(resp: &Response) -> Result<(), ParseError> {
    let h = &resp.headers;
    h.top_via()?;
    h.from_addr()?;
    h.to_addr()?;
    h.call_id()?;
    h.cseq()?;
    Ok(())
}

/// The response to send for a request that failed [`validate_request`], or `None` when it
/// must not or cannot be answered: the error has no status code, the request is an ACK,
/// or it lacks a Via, From, To, Call-ID or CSeq line to copy. A To tag is added when the
/// To header is readable.
pub fn error_response_for(req: &Request, error: &ParseError, to_tag: &str) -> Option<Response> {
    let status = error.status_code()?;
    answer_salvaged(req, status, &error.reason_phrase(), to_tag)
}

/// The `413 Request Entity Too Large` for a message refused for its size, from its first
/// bytes (a stream framer's [`StreamFramer::refused_head`], or the start of a datagram):
/// `None` when it is no request or lacks a header a response copies (see
/// [`error_response_for`]). Only the first `limits.max_message_bytes` bytes are read.
pub fn too_large_response(head: &[u8], limits: &Limits, to_tag: &str) -> Option<Response> {
    let req = salvage_request(head, limits)?;
    answer_salvaged(&req, 413, default_reason(413), to_tag)
}

fn answer_salvaged(req: &Request, status: u16, reason: &str, to_tag: &str) -> Option<Response> {
    if req.method == Method::Ack {
        return None;
    }
    let h = &req.headers;
    let needed = [
        HeaderName::Via,
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
    ];
    if !needed.into_iter().all(|n| h.contains(n)) {
        return None;
    }
    let mut resp = Response::for_request(req, status, reason);
    let _ = resp.headers.ensure_to_tag(to_tag);
    Some(resp)
}

/// The response to send for bytes that [`parse`] rejected with `error`: salvages the
/// request's headers ([`salvage_request`]) and applies [`error_response_for`].
pub fn error_response(
    bytes: &[u8],
    limits: &Limits,
    error: &ParseError,
    to_tag: &str,
) -> Option<Response> {
    error.status_code()?;
    let req = salvage_request(bytes, limits)?;
    error_response_for(&req, error, to_tag)
}
