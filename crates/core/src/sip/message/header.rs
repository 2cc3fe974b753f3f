//! Header storage: names (case-insensitive, compact forms normalised), raw values, and the
//! ordered header list with generic get/set/remove.
//!
//! Owns the list and its printing. It keeps every header as received (raw name spelling,
//! raw value bytes) so that what we do not understand is printed back unchanged. Typed
//! views live in `fields.rs`; this file never interprets a value.

use std::fmt;

use bytes::Bytes;

use super::error::HeaderError;
use super::text::is_token_char;

macro_rules! header_names {
    ($( $variant:ident => $canon:literal, $lower:literal $(, $compact:literal)? ; )*) => {
        /// A header name. Known names are variants (matched case-insensitively, compact
        /// forms such as `v` or `i` mapped to their full name); any other name is kept in
        /// [`HeaderName::Other`] and compared case-insensitively.
        #[derive(Debug, Clone, Eq)]
        #[non_exhaustive]
        pub enum HeaderName {
            $(
                #[doc = concat!("`", $canon, "`")]
                $variant,
            )*
            /// An extension header, spelled as received (or as built). Build names with
            /// [`HeaderName::new`] so that known names map to their own variant.
            Other(Box<str>),
        }

        impl HeaderName {
            /// The canonical spelling (`Call-ID`, `CSeq`, `WWW-Authenticate`...).
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $canon, )*
                    Self::Other(s) => s,
                }
            }

            /// Looks a name up from its lower-case form (full or compact).
            fn from_lower(lower: &[u8]) -> Option<Self> {
                match lower {
                    $( $lower $(| $compact)? => Some(Self::$variant), )*
                    _ => None,
                }
            }
        }
    };
}

header_names! {
    Via => "Via", b"via", b"v";
    From => "From", b"from", b"f";
    To => "To", b"to", b"t";
    CallId => "Call-ID", b"call-id", b"i";
    CSeq => "CSeq", b"cseq";
    Contact => "Contact", b"contact", b"m";
    MaxForwards => "Max-Forwards", b"max-forwards";
    ContentLength => "Content-Length", b"content-length", b"l";
    ContentType => "Content-Type", b"content-type", b"c";
    ContentEncoding => "Content-Encoding", b"content-encoding", b"e";
    ContentDisposition => "Content-Disposition", b"content-disposition";
    Subject => "Subject", b"subject", b"s";
    Supported => "Supported", b"supported", b"k";
    Require => "Require", b"require";
    ProxyRequire => "Proxy-Require", b"proxy-require";
    Unsupported => "Unsupported", b"unsupported";
    Allow => "Allow", b"allow";
    Accept => "Accept", b"accept";
    Expires => "Expires", b"expires";
    MinExpires => "Min-Expires", b"min-expires";
    RecordRoute => "Record-Route", b"record-route";
    Route => "Route", b"route";
    Event => "Event", b"event", b"o";
    AllowEvents => "Allow-Events", b"allow-events", b"u";
    SubscriptionState => "Subscription-State", b"subscription-state";
    ReferTo => "Refer-To", b"refer-to", b"r";
    ReferredBy => "Referred-By", b"referred-by", b"b";
    SessionExpires => "Session-Expires", b"session-expires", b"x";
    MinSe => "Min-SE", b"min-se";
    AcceptContact => "Accept-Contact", b"accept-contact", b"a";
    RejectContact => "Reject-Contact", b"reject-contact", b"j";
    RequestDisposition => "Request-Disposition", b"request-disposition", b"d";
    Identity => "Identity", b"identity", b"y";
    IdentityInfo => "Identity-Info", b"identity-info", b"n";
    UserAgent => "User-Agent", b"user-agent";
    Server => "Server", b"server";
    Timestamp => "Timestamp", b"timestamp";
    Date => "Date", b"date";
    Authorization => "Authorization", b"authorization";
    ProxyAuthorization => "Proxy-Authorization", b"proxy-authorization";
    WwwAuthenticate => "WWW-Authenticate", b"www-authenticate";
    ProxyAuthenticate => "Proxy-Authenticate", b"proxy-authenticate";
    RSeq => "RSeq", b"rseq";
    RAck => "RAck", b"rack";
    Reason => "Reason", b"reason";
    RetryAfter => "Retry-After", b"retry-after";
    Warning => "Warning", b"warning";
    Replaces => "Replaces", b"replaces";
    PAssertedIdentity => "P-Asserted-Identity", b"p-asserted-identity";
    PPreferredIdentity => "P-Preferred-Identity", b"p-preferred-identity";
    Privacy => "Privacy", b"privacy";
}

impl HeaderName {
    /// Normalises a name: known names (any case, compact or full) become their variant;
    /// anything else becomes [`HeaderName::Other`]. Characters outside `token` are replaced
    /// with `-` so a built name can never break the header line on the wire.
    pub fn new(name: &str) -> Self {
        Self::from_bytes(name.as_bytes()).unwrap_or_else(|| {
            let clean: String = name
                .bytes()
                .map(|b| if is_token_char(b) { b as char } else { '-' })
                .collect();
            if clean.is_empty() {
                Self::Other("X-Empty".into())
            } else {
                Self::Other(clean.into())
            }
        })
    }

    /// Parser entry: `name` must be a token already. Returns `None` only if it is not.
    pub(crate) fn from_bytes(name: &[u8]) -> Option<Self> {
        if name.is_empty() || !name.iter().all(|&b| is_token_char(b)) {
            return None;
        }
        let mut buf = [0u8; 24];
        if let Some(slot) = buf.get_mut(..name.len()) {
            for (d, s) in slot.iter_mut().zip(name) {
                *d = s.to_ascii_lowercase();
            }
            if let Some(known) = Self::from_lower(slot) {
                return Some(known);
            }
        }
        // Token characters are ASCII, so this is valid UTF-8.
        std::str::from_utf8(name)
            .ok()
            .map(|s| Self::Other(s.into()))
    }

    /// Whether this is a known name whose value may not repeat in one message.
    pub fn is_single_valued(&self) -> bool {
        matches!(
            self,
            Self::From
                | Self::To
                | Self::CallId
                | Self::CSeq
                | Self::MaxForwards
                | Self::ContentLength
                | Self::ContentType
        )
    }
}

impl PartialEq for HeaderName {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Other(a), Self::Other(b)) => a.eq_ignore_ascii_case(b),
            (Self::Other(_), _) | (_, Self::Other(_)) => false,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

impl std::hash::Hash for HeaderName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        if let Self::Other(s) = self {
            for b in s.bytes() {
                b.to_ascii_lowercase().hash(state);
            }
        }
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for HeaderName {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<&HeaderName> for HeaderName {
    fn from(n: &HeaderName) -> Self {
        n.clone()
    }
}

/// A header value as raw bytes, already unfolded and trimmed. Never contains CR, LF or
/// NUL: parsed values cannot (the parser rejects or unfolds them) and built values have
/// them replaced by spaces, so printing can never inject a header line.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct HeaderValue(Bytes);

impl HeaderValue {
    /// Wraps parser output; the caller guarantees no CR/LF/NUL.
    pub(crate) fn from_parsed(b: Bytes) -> Self {
        Self(b)
    }

    /// Builds a value, replacing CR, LF and NUL by spaces and trimming SP/HT.
    pub fn from_bytes(b: impl Into<Bytes>) -> Self {
        let b: Bytes = b.into();
        if b.iter().any(|&c| matches!(c, b'\r' | b'\n' | 0)) {
            let clean: Vec<u8> = b
                .iter()
                .map(|&c| {
                    if matches!(c, b'\r' | b'\n' | 0) {
                        b' '
                    } else {
                        c
                    }
                })
                .collect();
            return Self(Bytes::copy_from_slice(super::text::trim_wsp_bytes(&clean)));
        }
        let trimmed = super::text::trim_wsp_bytes(&b);
        if trimmed.len() == b.len() {
            Self(b)
        } else {
            Self(Bytes::copy_from_slice(trimmed))
        }
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The value as text, or `None` if it holds non-UTF-8 bytes.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// The value as text, with invalid bytes replaced (for logs).
    pub fn to_str_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }
}

impl fmt::Debug for HeaderValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_str_lossy(), f)
    }
}

impl From<&str> for HeaderValue {
    fn from(s: &str) -> Self {
        Self::from_bytes(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for HeaderValue {
    fn from(s: String) -> Self {
        Self::from_bytes(Bytes::from(s))
    }
}

impl From<&String> for HeaderValue {
    fn from(s: &String) -> Self {
        Self::from(s.as_str())
    }
}

impl From<Bytes> for HeaderValue {
    fn from(b: Bytes) -> Self {
        Self::from_bytes(b)
    }
}

impl From<Vec<u8>> for HeaderValue {
    fn from(b: Vec<u8>) -> Self {
        Self::from_bytes(Bytes::from(b))
    }
}

macro_rules! value_from_display {
    ($($t:ty),*) => {$(
        impl From<&$t> for HeaderValue {
            fn from(v: &$t) -> Self {
                Self::from(v.to_string())
            }
        }
        impl From<$t> for HeaderValue {
            fn from(v: $t) -> Self {
                Self::from(v.to_string())
            }
        }
    )*};
}
value_from_display!(
    u32,
    u64,
    usize,
    super::method::Method,
    super::uri::Uri,
    super::via::Via,
    super::name_addr::NameAddr,
    super::fields::CSeq,
    super::fields::ContentType
);

/// One header field line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    name: HeaderName,
    /// Spelling as received when it differs from the canonical one (`v`, `VIA`, `call-id`),
    /// so the line prints back as it came.
    wire_name: Option<Bytes>,
    value: HeaderValue,
}

impl Header {
    /// A header built locally; printed with the canonical name.
    pub fn new(name: impl Into<HeaderName>, value: impl Into<HeaderValue>) -> Self {
        Self {
            name: name.into(),
            wire_name: None,
            value: value.into(),
        }
    }

    pub(crate) fn parsed(name: HeaderName, raw_name: Bytes, value: HeaderValue) -> Self {
        let wire_name = (name.as_str().as_bytes() != raw_name.as_ref()).then_some(raw_name);
        Self {
            name,
            wire_name,
            value,
        }
    }

    /// The normalised name.
    pub fn name(&self) -> &HeaderName {
        &self.name
    }

    /// The name as it will be printed (received spelling for parsed headers).
    pub fn wire_name(&self) -> &[u8] {
        match &self.wire_name {
            Some(raw) => raw,
            None => self.name.as_str().as_bytes(),
        }
    }

    /// The raw value.
    pub fn value(&self) -> &HeaderValue {
        &self.value
    }

    /// The value as UTF-8 text, or [`HeaderError::NotUtf8`] naming this header.
    pub fn value_str(&self) -> Result<&str, HeaderError> {
        self.value
            .as_str()
            .ok_or_else(|| HeaderError::NotUtf8(self.name.clone()))
    }

    /// Replaces the value, keeping the name and its spelling.
    pub fn set_value(&mut self, value: impl Into<HeaderValue>) {
        self.value = value.into();
    }

    pub(crate) fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.wire_name());
        out.extend_from_slice(b": ");
        out.extend_from_slice(self.value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// The ordered header list of one message. Order is kept exactly (it matters for Via,
/// Route and Record-Route and for printing unknown headers back).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    list: Vec<Header>,
}

impl Headers {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            list: Vec::with_capacity(n),
        }
    }

    /// Appends a header line as it is (keeping a received spelling), e.g. one copied
    /// from another message with [`Headers::fields`].
    pub fn push_header(&mut self, h: Header) {
        self.list.push(h);
    }

    /// Number of header fields (lines).
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// All header fields in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Header> {
        self.list.iter()
    }

    /// Mutable access to header fields in order.
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Header> {
        self.list.iter_mut()
    }

    /// Fields named `name` (full or compact, any case), in order.
    pub fn fields(&self, name: impl Into<HeaderName>) -> impl Iterator<Item = &Header> {
        let name = name.into();
        self.list.iter().filter(move |h| h.name == name)
    }

    /// First value of `name`, if any.
    pub fn get(&self, name: impl Into<HeaderName>) -> Option<&HeaderValue> {
        self.fields(name).next().map(Header::value)
    }

    /// All values of `name`, in order (one per header line; comma-joined values are not split).
    pub fn get_all(&self, name: impl Into<HeaderName>) -> impl Iterator<Item = &HeaderValue> {
        self.fields(name).map(Header::value)
    }

    /// Whether at least one `name` header is present.
    pub fn contains(&self, name: impl Into<HeaderName>) -> bool {
        self.get(name).is_some()
    }

    /// Number of `name` header lines.
    pub fn count(&self, name: impl Into<HeaderName>) -> usize {
        self.fields(name).count()
    }

    /// Appends a header line.
    pub fn push(&mut self, name: impl Into<HeaderName>, value: impl Into<HeaderValue>) {
        self.list.push(Header::new(name, value));
    }

    /// Inserts a header line before all others of the same name (or at the end if there is
    /// none), e.g. a new top Via.
    pub fn push_front(&mut self, name: impl Into<HeaderName>, value: impl Into<HeaderValue>) {
        let h = Header::new(name, value);
        let at = self
            .list
            .iter()
            .position(|x| x.name == h.name)
            .unwrap_or(self.list.len());
        self.list.insert(at, h);
    }

    /// Replaces every `name` line with one line holding `value`, at the position of the
    /// first one (or at the end if there was none).
    pub fn set(&mut self, name: impl Into<HeaderName>, value: impl Into<HeaderValue>) {
        let h = Header::new(name, value);
        match self.list.iter().position(|x| x.name == h.name) {
            Some(at) => {
                let name = h.name.clone();
                if let Some(slot) = self.list.get_mut(at) {
                    *slot = h;
                }
                let mut i = 0;
                self.list.retain(|x| {
                    let keep = i <= at || x.name != name;
                    i += 1;
                    keep
                });
            }
            None => self.list.push(h),
        }
    }

    /// Removes every `name` line; returns how many were removed.
    pub fn remove(&mut self, name: impl Into<HeaderName>) -> usize {
        let name = name.into();
        let before = self.list.len();
        self.list.retain(|h| h.name != name);
        before - self.list.len()
    }

    /// The only `name` header, `None` if absent, [`HeaderError::Duplicate`] if repeated.
    pub fn single(&self, name: impl Into<HeaderName>) -> Result<Option<&Header>, HeaderError> {
        let name = name.into();
        let mut it = self.list.iter().filter(|h| h.name == name);
        let first = it.next();
        let extra = it.count();
        if extra > 0 {
            return Err(HeaderError::Duplicate {
                name,
                count: extra + 1,
            });
        }
        Ok(first)
    }

    /// Like [`Headers::single`] but returns the value as text.
    pub fn single_str(&self, name: impl Into<HeaderName>) -> Result<Option<&str>, HeaderError> {
        self.single(name)?.map(Header::value_str).transpose()
    }

    /// Like [`Headers::single_str`] but absence is [`HeaderError::Missing`].
    pub fn required_str(&self, name: impl Into<HeaderName>) -> Result<&str, HeaderError> {
        let name = name.into();
        self.single_str(name.clone())?
            .ok_or(HeaderError::Missing(name))
    }

    /// Prints every header, with exactly one Content-Length set to `content_length`: at the
    /// place (and spelling) of the first received one, or last if there was none.
    pub(crate) fn write_without_content_length(&self, out: &mut Vec<u8>, content_length: usize) {
        let mut written = false;
        for h in &self.list {
            if h.name == HeaderName::ContentLength {
                if !written {
                    written = true;
                    out.extend_from_slice(h.wire_name());
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(content_length.to_string().as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
            } else {
                h.write_to(out);
            }
        }
        if !written {
            out.extend_from_slice(b"Content-Length: ");
            out.extend_from_slice(content_length.to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalise() {
        assert_eq!(HeaderName::new("v"), HeaderName::Via);
        assert_eq!(HeaderName::new("VIA"), HeaderName::Via);
        assert_eq!(HeaderName::new("i"), HeaderName::CallId);
        assert_eq!(HeaderName::new("call-id"), HeaderName::CallId);
        assert_eq!(HeaderName::new("X-Foo"), HeaderName::new("x-foo"));
        assert_ne!(HeaderName::new("X-Foo"), HeaderName::new("x-bar"));
        assert_eq!(HeaderName::new("bad name\r\n").as_str(), "bad-name--");
        assert_eq!(
            HeaderName::new("a-very-long-extension-header-name-indeed").as_str(),
            "a-very-long-extension-header-name-indeed"
        );
        assert!(HeaderName::from_bytes(b"bad\0").is_none());
    }

    #[test]
    fn values_cannot_inject_lines() {
        let v = HeaderValue::from("a\r\nVia: evil");
        assert_eq!(v.as_bytes(), b"a  Via: evil");
        assert_eq!(HeaderValue::from("  x ").as_bytes(), b"x");
    }

    #[test]
    fn set_replaces_in_place() {
        let mut h = Headers::new();
        h.push("X-A", "1");
        h.push("X-B", "2");
        h.push("x-a", "3");
        h.set("X-A", "9");
        let names: Vec<_> = h.iter().map(|x| x.name().as_str().to_string()).collect();
        assert_eq!(names, ["X-A", "X-B"]);
        assert_eq!(h.get("x-a").unwrap().as_bytes(), b"9");
        assert_eq!(h.remove("x-b"), 1);
        h.push("Via", "x");
        h.push_front("v", "y");
        assert_eq!(h.get("Via").unwrap().as_bytes(), b"y");
        assert!(matches!(
            h.single("Via"),
            Err(HeaderError::Duplicate { count: 2, .. })
        ));
    }
}
