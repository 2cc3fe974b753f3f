//! Typed, on-demand views of individual headers (Via, From, To, Contact, routes, Call-ID,
//! CSeq, Max-Forwards, Content-Length, Content-Type, Expires, token lists) and the few
//! in-place edits the engine needs (stamping the top Via, adding a To tag).
//!
//! Every accessor parses the raw value each time it is called and fails for that header
//! only; nothing here caches or rewrites headers it was not asked to change.

use std::fmt;

use super::error::HeaderError;
use super::header::{HeaderName, Headers};
use super::method::Method;
use super::name_addr::{Contacts, NameAddr, parse_list};
use super::params::Params;
use super::text::{
    all_digits, is_token, parse_u64, snippet, split_list, split_top_level, trim_wsp,
};
use super::via::{Via, parse_hops};

/// The CSeq header: sequence number and method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number (RFC 3261 wants < 2^31; up to 2^32-1 is accepted).
    pub seq: u32,
    /// Method.
    pub method: Method,
}

impl CSeq {
    /// Parses `1*DIGIT LWS Method`.
    pub fn parse(s: &str) -> Result<Self, HeaderError> {
        let name = HeaderName::CSeq;
        let bad = |found: &str| HeaderError::Malformed {
            name: HeaderName::CSeq,
            expected: "a sequence number and a method",
            found: snippet(found),
        };
        let mut parts = s.split([' ', '\t']).filter(|p| !p.is_empty());
        let (Some(num), Some(method), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad(s));
        };
        let seq = match parse_u64(num).map(u32::try_from) {
            Some(Ok(n)) => n,
            _ if all_digits(num) => {
                return Err(HeaderError::OutOfRange {
                    name,
                    found: snippet(num),
                    max: u64::from(u32::MAX),
                });
            }
            _ => return Err(bad(s)),
        };
        if !is_token(method) {
            return Err(bad(s));
        }
        Ok(Self {
            seq,
            method: Method::from_token(method),
        })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// A Content-Type value: `type/subtype;params`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentType {
    /// Top-level type as received (`application`).
    pub mtype: String,
    /// Subtype as received (`sdp`).
    pub subtype: String,
    /// Parameters (`charset`, `boundary`...).
    pub params: Params,
}

impl ContentType {
    /// `type/subtype` without parameters.
    pub fn new(mtype: &str, subtype: &str) -> Self {
        Self {
            mtype: mtype.to_string(),
            subtype: subtype.to_string(),
            params: Params::new(),
        }
    }

    /// Parses `type/subtype *(;param)`.
    pub fn parse(s: &str) -> Result<Self, HeaderError> {
        let bad = |expected: &'static str, found: &str| HeaderError::Malformed {
            name: HeaderName::ContentType,
            expected,
            found: snippet(found),
        };
        let (media, params) = match s.split_once(';') {
            Some((m, p)) => (m, Some(p)),
            None => (s, None),
        };
        let (t, st) = media
            .split_once('/')
            .ok_or_else(|| bad("'type/subtype'", s))?;
        let (t, st) = (trim_wsp(t), trim_wsp(st));
        if !is_token(t) || !is_token(st) {
            return Err(bad("'type/subtype' tokens", s));
        }
        let params = match params {
            Some(p) => Params::parse(p).map_err(|e| bad("';name=value' parameters", &e.found))?,
            None => Params::new(),
        };
        Ok(Self {
            mtype: t.to_string(),
            subtype: st.to_string(),
            params,
        })
    }

    /// Case-insensitive match on type and subtype (`is("application", "sdp")`).
    pub fn is(&self, mtype: &str, subtype: &str) -> bool {
        self.mtype.eq_ignore_ascii_case(mtype) && self.subtype.eq_ignore_ascii_case(subtype)
    }
}

impl fmt::Display for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}{}", self.mtype, self.subtype, self.params)
    }
}

/// Parses a whole-value decimal for `name`; too big → [`HeaderError::OutOfRange`].
fn number(name: HeaderName, s: &str, max: u64) -> Result<u64, HeaderError> {
    match parse_u64(s) {
        Some(n) if n <= max => Ok(n),
        _ if all_digits(s) => Err(HeaderError::OutOfRange {
            name,
            found: snippet(s),
            max,
        }),
        _ => Err(HeaderError::Malformed {
            name,
            expected: "a non-negative decimal number",
            found: snippet(s),
        }),
    }
}

impl Headers {
    /// All Via hops in order: every Via line, each split at top-level commas.
    /// [`HeaderError::Missing`] if there is none.
    pub fn vias(&self) -> Result<Vec<Via>, HeaderError> {
        let mut out = Vec::new();
        for h in self.fields(HeaderName::Via) {
            out.extend(parse_hops(h.value_str()?)?);
        }
        if out.is_empty() {
            return Err(HeaderError::Missing(HeaderName::Via));
        }
        Ok(out)
    }

    /// The top Via hop (first hop of the first Via line). Only that hop is parsed.
    pub fn top_via(&self) -> Result<Via, HeaderError> {
        let h = self
            .fields(HeaderName::Via)
            .next()
            .ok_or(HeaderError::Missing(HeaderName::Via))?;
        let (first, _) = split_first_hop(h.value_str()?)?;
        Via::parse(first)
    }

    /// Edits the top Via hop in place. Only that hop is re-printed; other hops on the same
    /// line and other Via lines stay byte-for-byte as received.
    pub fn modify_top_via<R>(&mut self, f: impl FnOnce(&mut Via) -> R) -> Result<R, HeaderError> {
        let h = self
            .iter_mut()
            .find(|h| *h.name() == HeaderName::Via)
            .ok_or(HeaderError::Missing(HeaderName::Via))?;
        let value = h.value_str()?;
        let (first, rest) = split_first_hop(value)?;
        let mut via = Via::parse(first)?;
        let r = f(&mut via);
        let new = format!("{via}{rest}");
        h.set_value(new);
        Ok(r)
    }

    /// Adds `received`/`rport` to the top Via of a request received from `source`
    /// (RFC 3261 §18.2.1, RFC 3581). Returns whether the hop changed.
    pub fn stamp_top_via(&mut self, source: std::net::SocketAddr) -> Result<bool, HeaderError> {
        self.modify_top_via(|v| v.stamp_source(source))
    }

    /// The From header.
    pub fn from_addr(&self) -> Result<NameAddr, HeaderError> {
        NameAddr::parse(self.required_str(HeaderName::From)?, &HeaderName::From)
    }

    /// The To header.
    pub fn to_addr(&self) -> Result<NameAddr, HeaderError> {
        NameAddr::parse(self.required_str(HeaderName::To)?, &HeaderName::To)
    }

    /// The Call-ID (trimmed; must be non-empty without inner whitespace).
    pub fn call_id(&self) -> Result<&str, HeaderError> {
        let v = self.required_str(HeaderName::CallId)?;
        if v.is_empty() || v.bytes().any(|b| b == b' ' || b == b'\t') {
            return Err(HeaderError::Malformed {
                name: HeaderName::CallId,
                expected: "a non-empty word without spaces",
                found: snippet(v),
            });
        }
        Ok(v)
    }

    /// The CSeq header.
    pub fn cseq(&self) -> Result<CSeq, HeaderError> {
        CSeq::parse(self.required_str(HeaderName::CSeq)?)
    }

    /// Max-Forwards (0-255), `None` if absent.
    pub fn max_forwards(&self) -> Result<Option<u8>, HeaderError> {
        self.single_str(HeaderName::MaxForwards)?
            .map(|v| number(HeaderName::MaxForwards, v, 255).map(|n| n as u8))
            .transpose()
    }

    /// Content-Length, `None` if absent.
    pub fn content_length(&self) -> Result<Option<usize>, HeaderError> {
        self.single_str(HeaderName::ContentLength)?
            .map(|v| number(HeaderName::ContentLength, v, u32::MAX.into()).map(|n| n as usize))
            .transpose()
    }

    /// Content-Type, `None` if absent.
    pub fn content_type(&self) -> Result<Option<ContentType>, HeaderError> {
        self.single_str(HeaderName::ContentType)?
            .map(ContentType::parse)
            .transpose()
    }

    /// Expires in seconds, `None` if absent. Values over 2^32-1 are
    /// [`HeaderError::OutOfRange`]; the caller may fall back to a default (RFC 4475 §3.1.2.4).
    pub fn expires(&self) -> Result<Option<u32>, HeaderError> {
        self.single_str(HeaderName::Expires)?
            .map(|v| number(HeaderName::Expires, v, u32::MAX.into()).map(|n| n as u32))
            .transpose()
    }

    /// All Contact values across lines; `Contact: *` gives [`Contacts::Wildcard`] (which
    /// must then be the only contact). No Contact gives an empty list.
    pub fn contacts(&self) -> Result<Contacts, HeaderError> {
        let mut list = Vec::new();
        let mut star = false;
        let mut lines = 0;
        for h in self.fields(HeaderName::Contact) {
            lines += 1;
            let v = h.value_str()?;
            if v == "*" {
                star = true;
            } else {
                parse_list(v, &HeaderName::Contact, &mut list)?;
            }
        }
        if star {
            if lines > 1 || !list.is_empty() {
                return Err(HeaderError::Malformed {
                    name: HeaderName::Contact,
                    expected: "'*' as the only contact",
                    found: "*".into(),
                });
            }
            return Ok(Contacts::Wildcard);
        }
        Ok(Contacts::List(list))
    }

    /// The first Contact (the remote target of a dialog), `None` if there is none.
    /// Fails if any Contact is malformed or is `*`.
    pub fn contact(&self) -> Result<Option<NameAddr>, HeaderError> {
        match self.contacts()? {
            Contacts::Wildcard => Err(HeaderError::Malformed {
                name: HeaderName::Contact,
                expected: "an address",
                found: "*".into(),
            }),
            Contacts::List(l) => Ok(l.into_iter().next()),
        }
    }

    /// All addresses of a list header (Record-Route, Route, ...) in order across lines.
    pub fn name_addrs(&self, name: impl Into<HeaderName>) -> Result<Vec<NameAddr>, HeaderError> {
        let name = name.into();
        let mut out = Vec::new();
        for h in self.fields(name.clone()) {
            parse_list(h.value_str()?, &name, &mut out)?;
        }
        Ok(out)
    }

    /// Record-Route entries in order (top first); empty if absent.
    pub fn record_route(&self) -> Result<Vec<NameAddr>, HeaderError> {
        self.name_addrs(HeaderName::RecordRoute)
    }

    /// Route entries in order; empty if absent.
    pub fn route(&self) -> Result<Vec<NameAddr>, HeaderError> {
        self.name_addrs(HeaderName::Route)
    }

    /// Comma-separated token list across all `name` lines (Require, Supported...).
    pub fn tokens(&self, name: impl Into<HeaderName>) -> Result<Vec<&str>, HeaderError> {
        let name = name.into();
        let mut out = Vec::new();
        for h in self.fields(name.clone()) {
            let v = h.value_str()?;
            let parts = split_list(v).map_err(|e| HeaderError::Malformed {
                name: name.clone(),
                expected: e.expected(),
                found: snippet(v),
            })?;
            for p in parts {
                if !is_token(p) {
                    return Err(HeaderError::Malformed {
                        name: name.clone(),
                        expected: "a comma-separated list of tokens",
                        found: snippet(p),
                    });
                }
                out.push(p);
            }
        }
        Ok(out)
    }

    /// Require option tags.
    pub fn require(&self) -> Result<Vec<&str>, HeaderError> {
        self.tokens(HeaderName::Require)
    }

    /// Proxy-Require option tags.
    pub fn proxy_require(&self) -> Result<Vec<&str>, HeaderError> {
        self.tokens(HeaderName::ProxyRequire)
    }

    /// Supported option tags.
    pub fn supported(&self) -> Result<Vec<&str>, HeaderError> {
        self.tokens(HeaderName::Supported)
    }

    /// Unsupported option tags.
    pub fn unsupported(&self) -> Result<Vec<&str>, HeaderError> {
        self.tokens(HeaderName::Unsupported)
    }

    /// Allow methods.
    pub fn allow(&self) -> Result<Vec<Method>, HeaderError> {
        Ok(self
            .tokens(HeaderName::Allow)?
            .into_iter()
            .map(Method::from_token)
            .collect())
    }

    /// Adds `;tag=<tag>` to the To header unless it already has a non-empty tag (an empty
    /// `;tag=` is replaced). Returns whether a tag was added. The rest of the To value is
    /// kept as received.
    pub fn ensure_to_tag(&mut self, tag: &str) -> Result<bool, HeaderError> {
        let to = self.to_addr()?;
        if to.tag().is_some() {
            return Ok(false);
        }
        self.set_to_tag_inner(to, tag);
        Ok(true)
    }

    /// Sets the To tag, replacing any existing one.
    pub fn set_to_tag(&mut self, tag: &str) -> Result<(), HeaderError> {
        let to = self.to_addr()?;
        self.set_to_tag_inner(to, tag);
        Ok(())
    }

    fn set_to_tag_inner(&mut self, mut to: NameAddr, tag: &str) {
        let Some(h) = self.iter_mut().find(|h| *h.name() == HeaderName::To) else {
            return;
        };
        if to.params.contains("tag") {
            to.set_tag(tag);
            h.set_value(to.to_string());
        } else {
            // Appending keeps the received spelling; in both name-addr and addr-spec form a
            // trailing ';tag=' is a header parameter.
            let mut v = h.value().as_bytes().to_vec();
            v.extend_from_slice(b";tag=");
            v.extend_from_slice(tag.as_bytes());
            h.set_value(v);
        }
    }
}

/// Splits a Via value into its first hop and the raw remainder (starting at the comma,
/// or empty).
fn split_first_hop(value: &str) -> Result<(&str, &str), HeaderError> {
    let ranges = split_top_level(value, b',').map_err(|e| HeaderError::Malformed {
        name: HeaderName::Via,
        expected: e.expected(),
        found: snippet(value),
    })?;
    let end = ranges.first().map_or(value.len(), |r| r.end);
    Ok((
        value.get(..end).unwrap_or_default(),
        value.get(end..).unwrap_or_default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cseq() {
        assert_eq!(
            CSeq::parse("  314159   INVITE ").unwrap(),
            CSeq {
                seq: 314159,
                method: Method::Invite
            }
        );
        assert_eq!(CSeq::parse("4294967295 ACK").unwrap().seq, u32::MAX);
        assert!(matches!(
            CSeq::parse("4294967296 ACK"),
            Err(HeaderError::OutOfRange { .. })
        ));
        assert!(matches!(
            CSeq::parse("99999999999999999999999 OPTIONS"),
            Err(HeaderError::OutOfRange { .. })
        ));
        for bad in [
            "OPTIONS",
            "1",
            "-1 INVITE",
            "1 INVITE extra",
            "1 IN<VITE",
            "",
        ] {
            assert!(
                matches!(CSeq::parse(bad), Err(HeaderError::Malformed { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn content_type() {
        let c = ContentType::parse("Application / SDP ; charset=utf-8").unwrap();
        assert!(c.is("application", "sdp"));
        assert_eq!(c.params.value("charset"), Some("utf-8"));
        assert!(ContentType::parse("application").is_err());
    }

    #[test]
    fn modify_top_via_keeps_other_hops_raw() {
        let mut h = Headers::new();
        h.push("Via", "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1;rport ,  SIP/2.0/TCP  x.example.com ;branch=z9hG4bK0");
        h.push("v", "SIP/2.0/UDP y;branch=z9hG4bKz");
        assert!(h.stamp_top_via("192.0.2.1:6000".parse().unwrap()).unwrap());
        let first = h.get("Via").unwrap().as_str().unwrap();
        assert_eq!(
            first,
            "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1;rport=6000;received=192.0.2.1,  SIP/2.0/TCP  x.example.com ;branch=z9hG4bK0"
        );
        assert_eq!(h.vias().unwrap().len(), 3);
    }

    #[test]
    fn to_tag() {
        let mut h = Headers::new();
        h.push("t", "sip:bob@example.com");
        assert!(h.ensure_to_tag("abc").unwrap());
        assert_eq!(
            h.get("To").unwrap().as_bytes(),
            b"sip:bob@example.com;tag=abc"
        );
        assert!(!h.ensure_to_tag("zzz").unwrap());
        h.set("To", "<sip:bob@example.com>;tag=");
        assert!(h.ensure_to_tag("t2").unwrap());
        assert_eq!(h.to_addr().unwrap().tag(), Some("t2"));
        assert_eq!(h.count("To"), 1);
    }

    #[test]
    fn numbers_and_tokens() {
        let mut h = Headers::new();
        h.push("Max-Forwards", "70");
        h.push("Expires", "4294967296");
        h.push("Supported", "timer, 100rel,replaces");
        h.push("k", "path");
        h.push("Allow", "INVITE, ACK, FOO");
        assert_eq!(h.max_forwards().unwrap(), Some(70));
        assert!(matches!(h.expires(), Err(HeaderError::OutOfRange { .. })));
        assert_eq!(
            h.supported().unwrap(),
            ["timer", "100rel", "replaces", "path"]
        );
        assert_eq!(h.allow().unwrap()[2], Method::Other("FOO".into()));
        assert_eq!(h.content_length().unwrap(), None);
        h.push("Max-Forwards", "70");
        assert!(matches!(
            h.max_forwards(),
            Err(HeaderError::Duplicate { .. })
        ));
    }
}
