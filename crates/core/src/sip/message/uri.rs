//! URIs: `sip:`/`sips:` (RFC 3261 §19.1), `tel:` (RFC 3966), and any other scheme kept raw.
//!
//! Owns URI syntax and printing. Escaped text (user, password, parameters, `?headers`) is
//! kept exactly as received and printed back unchanged: we never unescape on parse nor
//! escape on print, so nothing is double-escaped. URI comparison rules (§19.1.4) are not
//! implemented here.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::error::UriError;
use super::params::Params;
use super::text::snippet;

/// A host: domain name, IPv4 address or IPv6 address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A domain name, as received (case kept).
    Domain(String),
    /// A dotted IPv4 address.
    Ipv4(Ipv4Addr),
    /// An IPv6 address; printed in brackets.
    Ipv6(Ipv6Addr),
}

impl Host {
    /// Parses a host as found in a URI or Via sent-by: `[v6]`, dotted v4, or a domain
    /// (letters, digits, `-`, `.`, and `_` tolerated).
    pub fn parse(s: &str) -> Result<Self, UriError> {
        if s.is_empty() {
            return Err(UriError::Empty { part: "host" });
        }
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| UriError::Host { found: snippet(s) })?;
            return inner
                .parse::<Ipv6Addr>()
                .map(Self::Ipv6)
                .map_err(|_| UriError::Host { found: snippet(s) });
        }
        if let Ok(v4) = s.parse::<Ipv4Addr>() {
            return Ok(Self::Ipv4(v4));
        }
        let bytes = s.as_bytes();
        let domain_ok = bytes.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
            // All-numeric dotted text that is not a valid IPv4 address is an error, not a name.
            && !bytes.iter().all(|&b| b.is_ascii_digit() || b == b'.');
        if domain_ok {
            Ok(Self::Domain(s.to_string()))
        } else {
            Err(UriError::Host { found: snippet(s) })
        }
    }

    /// The IP address, if the host is one.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Self::Domain(_) => None,
            Self::Ipv4(a) => Some(IpAddr::V4(*a)),
            Self::Ipv6(a) => Some(IpAddr::V6(*a)),
        }
    }
}

impl From<IpAddr> for Host {
    fn from(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(a) => Self::Ipv4(a),
            IpAddr::V6(a) => Self::Ipv6(a),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Domain(d) => f.write_str(d),
            Self::Ipv4(a) => write!(f, "{a}"),
            Self::Ipv6(a) => write!(f, "[{a}]"),
        }
    }
}

/// A `sip:` or `sips:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    /// `sips:` rather than `sip:`.
    pub secure: bool,
    /// User part, raw (escapes kept, e.g. `%61lice`); may hold `;` (telephone-subscriber).
    pub user: Option<String>,
    /// Password, raw.
    pub password: Option<String>,
    /// Host.
    pub host: Host,
    /// Port, if given.
    pub port: Option<u16>,
    /// URI parameters (`transport`, `user`, `lr`, `maddr`...), raw.
    pub params: Params,
    /// The `?hname=hvalue&...` part without the `?`, raw.
    pub headers: Option<String>,
}

impl SipUri {
    /// `sip:host` with nothing else.
    pub fn new(host: Host) -> Self {
        Self {
            secure: false,
            user: None,
            password: None,
            host,
            port: None,
            params: Params::new(),
            headers: None,
        }
    }

    fn parse(rest: &str, secure: bool) -> Result<Self, UriError> {
        if rest.is_empty() {
            return Err(UriError::Empty { part: "host" });
        }
        // An unescaped '@' can only end the userinfo: params, headers and host cannot hold one.
        let (userinfo, hostpart) = match rest.split_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => {
                let (user, pass) = match u.split_once(':') {
                    Some((a, b)) => (a, Some(b)),
                    None => (u, None),
                };
                if user.is_empty() {
                    return Err(UriError::Empty { part: "user" });
                }
                check_escaped(user, "user", b"&=+$,;?/-_.!~*'()")?;
                if let Some(p) = pass {
                    check_escaped(p, "password", b"&=+$,-_.!~*'()")?;
                }
                (Some(user.to_string()), pass.map(str::to_string))
            }
        };
        let (host, after) = split_host(hostpart)?;
        let mut rest = after;
        let mut port = None;
        if let Some(p) = rest.strip_prefix(':') {
            let end = p.find([';', '?']).unwrap_or(p.len());
            let text = p.get(..end).unwrap_or_default();
            port = Some(parse_port(text)?);
            rest = p.get(end..).unwrap_or_default();
        }
        let mut params = Params::new();
        if let Some(p) = rest.strip_prefix(';') {
            let end = p.find('?').unwrap_or(p.len());
            let text = p.get(..end).unwrap_or_default();
            check_escaped(text, "parameters", b"[]/:&+$;=-_.!~*'()")?;
            params = Params::parse(text).map_err(|e| UriError::Param { found: e.found })?;
            rest = p.get(end..).unwrap_or_default();
        }
        let mut headers = None;
        if let Some(h) = rest.strip_prefix('?') {
            check_escaped(h, "headers", b"[]/?:+$&=-_.!~*'()")?;
            headers = Some(h.to_string());
        } else if let Some(c) = rest.chars().next() {
            return Err(UriError::Char {
                part: "host",
                ch: c,
            });
        }
        Ok(Self {
            secure,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(u) = &self.user {
            f.write_str(u)?;
            if let Some(p) = &self.password {
                write!(f, ":{p}")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)?;
        if let Some(h) = &self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

/// A `tel:` URI (RFC 3966): the number as received plus parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelUri {
    /// The number, raw (`+1-201-555-0123`, `7042`, ...).
    pub number: String,
    /// Parameters (`phone-context`, `ext`, ...).
    pub params: Params,
}

impl fmt::Display for TelUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tel:{}{}", self.number, self.params)
    }
}

/// A URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    /// `sip:` / `sips:`.
    Sip(SipUri),
    /// `tel:`.
    Tel(TelUri),
    /// Any other scheme, kept raw: `scheme` lower-cased, `rest` after the colon.
    Other {
        /// The scheme, lower-case.
        scheme: String,
        /// Everything after `scheme:`.
        rest: String,
    },
}

impl Uri {
    /// Parses a URI. The scheme is case-insensitive. Whitespace, control characters and
    /// `<`, `>`, `"` are rejected anywhere.
    pub fn parse(s: &str) -> Result<Self, UriError> {
        if s.is_empty() {
            return Err(UriError::Empty { part: "URI" });
        }
        if let Some(ch) = s
            .chars()
            .find(|&c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"'))
        {
            return Err(UriError::Char { part: "URI", ch });
        }
        let (scheme, rest) = s
            .split_once(':')
            .ok_or_else(|| UriError::Scheme { found: snippet(s) })?;
        let scheme_ok = scheme
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if !scheme_ok {
            return Err(UriError::Scheme { found: snippet(s) });
        }
        if scheme.eq_ignore_ascii_case("sip") {
            SipUri::parse(rest, false).map(Self::Sip)
        } else if scheme.eq_ignore_ascii_case("sips") {
            SipUri::parse(rest, true).map(Self::Sip)
        } else if scheme.eq_ignore_ascii_case("tel") {
            let (number, params) = match rest.split_once(';') {
                Some((n, p)) => (
                    n,
                    Params::parse(p).map_err(|e| UriError::Param { found: e.found })?,
                ),
                None => (rest, Params::new()),
            };
            if number.is_empty() {
                return Err(UriError::Empty { part: "number" });
            }
            check_escaped(number, "number", b"+-.()*#")?;
            Ok(Self::Tel(TelUri {
                number: number.to_string(),
                params,
            }))
        } else {
            if rest.is_empty() {
                return Err(UriError::Empty { part: "URI" });
            }
            Ok(Self::Other {
                scheme: scheme.to_ascii_lowercase(),
                rest: rest.to_string(),
            })
        }
    }

    /// `sip:` URI with the given user and host.
    pub fn sip(user: Option<&str>, host: Host, port: Option<u16>) -> Self {
        let mut u = SipUri::new(host);
        u.user = user.map(str::to_string);
        u.port = port;
        Self::Sip(u)
    }

    /// The scheme, lower-case.
    pub fn scheme(&self) -> &str {
        match self {
            Self::Sip(u) if u.secure => "sips",
            Self::Sip(_) => "sip",
            Self::Tel(_) => "tel",
            Self::Other { scheme, .. } => scheme,
        }
    }

    /// The SIP URI, if this is one.
    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Self::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// The user part of a sip URI, or the number of a tel URI.
    pub fn user(&self) -> Option<&str> {
        match self {
            Self::Sip(u) => u.user.as_deref(),
            Self::Tel(t) => Some(&t.number),
            Self::Other { .. } => None,
        }
    }

    /// The host of a sip URI.
    pub fn host(&self) -> Option<&Host> {
        self.as_sip().map(|u| &u.host)
    }

    /// A URI parameter (sip or tel), raw.
    pub fn param(&self, name: &str) -> Option<&str> {
        match self {
            Self::Sip(u) => u.params.value(name),
            Self::Tel(t) => t.params.value(name),
            Self::Other { .. } => None,
        }
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sip(u) => u.fmt(f),
            Self::Tel(t) => t.fmt(f),
            Self::Other { scheme, rest } => write!(f, "{scheme}:{rest}"),
        }
    }
}

/// Splits `[v6]...` or `host...` off the front of a hostport.
fn split_host(s: &str) -> Result<(Host, &str), UriError> {
    let end = if s.starts_with('[') {
        s.find(']')
            .map(|i| i + 1)
            .ok_or_else(|| UriError::Host { found: snippet(s) })?
    } else {
        s.find([':', ';', '?']).unwrap_or(s.len())
    };
    let host = Host::parse(s.get(..end).unwrap_or_default())?;
    Ok((host, s.get(end..).unwrap_or_default()))
}

/// Parses a port number (no sign, no spaces, 0..=65535).
pub(crate) fn parse_port(text: &str) -> Result<u16, UriError> {
    if text.is_empty() {
        return Err(UriError::Empty { part: "port" });
    }
    super::text::parse_u64(text)
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| UriError::Port {
            found: snippet(text),
        })
}

/// Checks that `s` holds only unreserved characters, the `extra` ones, and well-formed
/// `%XX` escapes (RFC 3261 §25.1). Non-ASCII is tolerated: some peers send raw UTF-8.
fn check_escaped(s: &str, part: &'static str, extra: &[u8]) -> Result<(), UriError> {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return Err(UriError::Escape { part });
            }
            i += 3;
            continue;
        }
        if !(c.is_ascii_alphanumeric() || c >= 0x80 || extra.contains(&c)) {
            return Err(UriError::Char {
                part,
                ch: char::from(c),
            });
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(s: &str) {
        let u = Uri::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(u.to_string(), s);
    }

    #[test]
    fn sip_round_trips() {
        rt("sip:ivr@192.0.2.1");
        rt("sip:%61lice@example.com;transport=TCP;user=phone?Subject=hi&Priority=urgent");
        rt("sips:alice:secret@example.com:5061;lr");
        rt("sip:[2001:db8::10]:5070;maddr=[2001:db8::1]");
        rt("sip:+1-212-555-1212:1234@gateway.com;user=phone");
        rt("sip:user;par=u%40example.net@example.com");
        rt("sip:example.com");
        rt("tel:+1-201-555-0123");
        rt("tel:7042;phone-context=example.com");
        rt("urn:service:sos");
    }

    #[test]
    fn fields() {
        let u = Uri::parse("SIP:%61lice@Example.COM:5080;transport=tcp").unwrap();
        let s = u.as_sip().unwrap();
        assert_eq!(s.user.as_deref(), Some("%61lice"));
        assert_eq!(s.host, Host::Domain("Example.COM".into()));
        assert_eq!(s.port, Some(5080));
        assert_eq!(u.param("TRANSPORT"), Some("tcp"));
        assert_eq!(u.to_string(), "sip:%61lice@Example.COM:5080;transport=tcp");
        let v6 = Uri::parse("sip:caller@[2001:db8::1]:5060").unwrap();
        assert_eq!(v6.host(), Some(&Host::Ipv6("2001:db8::1".parse().unwrap())));
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "sip:",
            "nocolon",
            "1sip:x",
            "sip:@host",
            "sip:host:",
            "sip:host:99999",
            "sip:host:12a",
            "sip:2001:db8::1",
            "sip:[2001:db8::1",
            "sip:[zz]",
            "sip:a b@c",
            "sip:<x>",
            "sip:us%zzer@host",
            "sip:256.1.1.1",
            "sip:host;=x",
            "tel:",
            "sip:host]",
            "sip:a@b@c",
        ] {
            assert!(Uri::parse(bad).is_err(), "{bad} should fail");
        }
    }
}
