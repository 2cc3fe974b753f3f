//! Error types of the codec and their mapping to SIP responses.
//!
//! Owns [`ParseError`] (the whole message cannot be accepted), [`HeaderError`] (one header
//! cannot be read as its type) and [`UriError`]. It decides which status code and reason
//! phrase answer each defect; it never builds or sends the response itself.

use super::header::HeaderName;
use super::method::Method;

/// A URI that does not follow RFC 3261 §19.1 / RFC 3966 syntax.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    /// No `scheme:` prefix, or the scheme has characters other than ALPHA DIGIT `+ - .`.
    #[error("expected a URI scheme followed by ':', found {found:?}")]
    Scheme {
        /// Excerpt of the input.
        found: String,
    },
    /// A part that must not be empty is (user before `@`, host, port after `:`, tel number).
    #[error("empty {part} in URI")]
    Empty {
        /// Which part: "user", "host", "port", "number", "URI".
        part: &'static str,
    },
    /// A character that cannot appear in that part.
    #[error("invalid character {ch:?} in URI {part}")]
    Char {
        /// Which part.
        part: &'static str,
        /// The offending character.
        ch: char,
    },
    /// A `%` not followed by two hex digits.
    #[error("malformed percent-escape in URI {part}: expected '%' and two hex digits")]
    Escape {
        /// Which part.
        part: &'static str,
    },
    /// Host is neither a domain name, an IPv4 address nor a bracketed IPv6 address.
    #[error("invalid host {found:?}: expected a domain name, IPv4 address or [IPv6] address")]
    Host {
        /// Excerpt of the host text.
        found: String,
    },
    /// Port is not a decimal number in 0..=65535.
    #[error("invalid port {found:?}: expected a number in 0-65535")]
    Port {
        /// Excerpt of the port text.
        found: String,
    },
    /// A `;name=value` parameter with an empty or non-token name, or a bad value.
    #[error("malformed URI parameter {found:?}")]
    Param {
        /// Excerpt of the parameter.
        found: String,
    },
}

/// One header could not be read as its type. The rest of the message is still usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// A header that the caller needs is absent.
    #[error("missing {0}")]
    Missing(HeaderName),
    /// A single-valued header appears more than once (RFC 3261 §7.3.1). Rejected rather than
    /// picking one, so that we never disagree with another element about which one counts.
    #[error("{count} {name} headers where one is allowed")]
    Duplicate {
        /// The header.
        name: HeaderName,
        /// How many were found.
        count: usize,
    },
    /// The header value holds bytes that are not UTF-8; it is kept raw but cannot be typed.
    #[error("{0} value is not valid UTF-8")]
    NotUtf8(HeaderName),
    /// The value does not follow the header's grammar.
    #[error("malformed {name}: expected {expected}, found {found:?}")]
    Malformed {
        /// The header.
        name: HeaderName,
        /// What the grammar wants at the point of failure.
        expected: &'static str,
        /// Excerpt of what was there.
        found: String,
    },
    /// A number in the value does not fit its type (CSeq > 2^32-1, Content-Length, ...).
    #[error("malformed {name}: {found:?} is out of range (max {max})")]
    OutOfRange {
        /// The header.
        name: HeaderName,
        /// Excerpt of the number.
        found: String,
        /// Largest accepted value.
        max: u64,
    },
    /// A URI inside the header is malformed.
    #[error("malformed {name}: {source}")]
    Uri {
        /// The header.
        name: HeaderName,
        /// What is wrong with the URI.
        source: UriError,
    },
}

impl HeaderError {
    /// The header this error is about.
    pub fn header_name(&self) -> &HeaderName {
        match self {
            Self::Missing(n) | Self::NotUtf8(n) => n,
            Self::Duplicate { name, .. }
            | Self::Malformed { name, .. }
            | Self::OutOfRange { name, .. }
            | Self::Uri { name, .. } => name,
        }
    }
}

/// A message that cannot be accepted. [`ParseError::status_code`] says how a request with
/// this defect is answered; responses with any defect are dropped (RFC 3261 §18.1.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Zero bytes.
    #[error("empty message")]
    Empty,
    /// Only CR and LF bytes: a keep-alive (RFC 5626 §4.4.1 on streams, common on UDP too).
    #[error("keep-alive (CR/LF only), not a message")]
    KeepAlive,
    /// The first line is neither a SIP request line nor a SIP status line.
    #[error("not a SIP message: first line is {found:?}")]
    NotSip {
        /// Excerpt of the first line.
        found: String,
    },
    /// A request line whose last element is a SIP version but which does not have
    /// exactly three elements, or whose version is not `SIP/<digits>.<digits>`.
    #[error("malformed request line: expected 'Method SP Request-URI SP SIP/2.0', found {found:?}")]
    InvalidRequestLine {
        /// Excerpt of the line.
        found: String,
    },
    /// The method is not an RFC 3261 `token`.
    #[error("malformed method {found:?}: expected a token")]
    InvalidMethod {
        /// Excerpt of the method.
        found: String,
    },
    /// The Request-URI is malformed.
    #[error("malformed Request-URI: {0}")]
    InvalidRequestUri(UriError),
    /// A request with a SIP version other than 2.0 (answered 505).
    #[error("SIP version {found:?} not supported, expected SIP/2.0")]
    VersionNotSupported {
        /// The version text.
        found: String,
    },
    /// A status line that is not `SIP/2.0 SP 3DIGIT SP Reason-Phrase`.
    #[error("malformed status line: expected 'SIP/2.0 SP code SP reason', found {found:?}")]
    InvalidStatusLine {
        /// Excerpt of the line.
        found: String,
    },
    /// A status code outside 100..=699. Such a response cannot drive a transaction, so it is
    /// dropped like any malformed response.
    #[error("status code {found:?} outside 100-699")]
    InvalidStatusCode {
        /// The code text.
        found: String,
    },
    /// The whole message is longer than [`Limits::max_message_bytes`](super::Limits).
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    MessageTooLarge {
        /// Bytes received (or buffered, on a stream).
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// One line of the start line or header section is longer than [`Limits::max_line_bytes`](super::Limits).
    #[error("line {line} exceeds {limit} bytes")]
    LineTooLong {
        /// 1-based line number (the start line is line 1).
        line: usize,
        /// The limit.
        limit: usize,
    },
    /// More header fields than [`Limits::max_headers`](super::Limits).
    #[error("more than {limit} header fields")]
    TooManyHeaders {
        /// The limit.
        limit: usize,
    },
    /// The body is longer than [`Limits::max_body_bytes`](super::Limits).
    #[error("body of {size} bytes exceeds the limit of {limit}")]
    BodyTooLarge {
        /// Body size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A header line without a colon.
    #[error("no colon in header line {line}: {found:?}")]
    MissingColon {
        /// 1-based line number.
        line: usize,
        /// Excerpt of the line.
        found: String,
    },
    /// A header name that is empty or has characters outside `token` (including NUL, CR, VT).
    #[error("invalid header name on line {line}: {found:?}")]
    InvalidHeaderName {
        /// 1-based line number.
        line: usize,
        /// Excerpt of the name.
        found: String,
    },
    /// A NUL or a CR not followed by LF inside a header line.
    #[error("control byte 0x{byte:02x} in header line {line}")]
    ControlCharacter {
        /// 1-based line number.
        line: usize,
        /// The byte.
        byte: u8,
    },
    /// A folded continuation line (starting with SP/HT) right after the start line.
    #[error("continuation line {line} without a header to continue")]
    ContinuationWithoutHeader {
        /// 1-based line number.
        line: usize,
    },
    /// The datagram ends before the empty line that closes the header section.
    #[error("header section not terminated by an empty line")]
    UnterminatedHeaders,
    /// Content-Length is not a non-negative decimal that fits in memory.
    #[error("malformed Content-Length: expected a non-negative number, found {found:?}")]
    InvalidContentLength {
        /// Excerpt of the value.
        found: String,
    },
    /// Content-Length announces more bytes than the datagram carries (RFC 3261 §18.3).
    #[error("Content-Length {declared} exceeds the {available} body bytes present")]
    ContentLengthExceedsBody {
        /// Announced length.
        declared: usize,
        /// Bytes present after the header section.
        available: usize,
    },
    /// A header needed to accept the message is missing, duplicated or malformed
    /// (from [`validate_request`](super::validate_request) / [`validate_response`](super::validate_response),
    /// or a duplicate Content-Length found while framing).
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// CSeq method differs from the request method (RFC 3261 §8.1.1.5).
    #[error("CSeq method {cseq} does not match request method {method}")]
    CSeqMethodMismatch {
        /// The request line's method.
        method: Method,
        /// The CSeq header's method.
        cseq: Method,
    },
    /// Request-URI scheme other than sip, sips or tel (answered 416, RFC 3261 §8.2.2.1).
    #[error("unsupported Request-URI scheme {scheme:?}")]
    UnsupportedUriScheme {
        /// The scheme.
        scheme: String,
    },
}

impl ParseError {
    /// The status code to answer a *request* with this defect, or `None` when it cannot be
    /// answered at all (no request line: empty, keep-alive, garbage, or a response).
    ///
    /// Mapping: 505 for another SIP version; 513 Message Too Large when the message, a line
    /// or the header count is over its limit (RFC 3261 §21.5.14); 413 Request Entity Too
    /// Large when only the body is; 416 for an unsupported Request-URI scheme; 400 for
    /// everything else. Having a code does not guarantee an answer is possible: the
    /// request also needs usable Via, From, To, Call-ID and CSeq, see
    /// [`error_response`](super::error_response).
    pub fn status_code(&self) -> Option<u16> {
        match self {
            Self::Empty
            | Self::KeepAlive
            | Self::NotSip { .. }
            | Self::InvalidStatusLine { .. }
            | Self::InvalidStatusCode { .. } => None,
            Self::VersionNotSupported { .. } => Some(505),
            Self::MessageTooLarge { .. }
            | Self::LineTooLong { .. }
            | Self::TooManyHeaders { .. } => Some(513),
            Self::BodyTooLarge { .. } => Some(413),
            Self::UnsupportedUriScheme { .. } => Some(416),
            Self::InvalidRequestLine { .. }
            | Self::InvalidMethod { .. }
            | Self::InvalidRequestUri(_)
            | Self::MissingColon { .. }
            | Self::InvalidHeaderName { .. }
            | Self::ControlCharacter { .. }
            | Self::ContinuationWithoutHeader { .. }
            | Self::UnterminatedHeaders
            | Self::InvalidContentLength { .. }
            | Self::ContentLengthExceedsBody { .. }
            | Self::Header(_)
            | Self::CSeqMethodMismatch { .. } => Some(400),
        }
    }

    /// Reason phrase for the answer: `"Bad Request (missing Call-ID)"`, `"Version Not
    /// Supported"`, `"Message Too Large"`... Printable ASCII only and at most ~160 bytes, so
    /// outside data quoted in it cannot break the status line.
    pub fn reason_phrase(&self) -> String {
        let text = match self.status_code() {
            Some(400) => format!("Bad Request ({self})"),
            Some(code) => super::status::default_reason(code).to_string(),
            None => self.to_string(),
        };
        sanitize_reason(&text)
    }
}

/// Keeps printable ASCII, replaces the rest with '?', and caps the length.
fn sanitize_reason(text: &str) -> String {
    const MAX: usize = 160;
    let mut out: String = text
        .chars()
        .take(MAX)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if text.chars().nth(MAX).is_some() {
        out.push_str("...");
        if out.ends_with(")...") || text.ends_with(')') {
            out.push(')');
        }
    }
    out
}
