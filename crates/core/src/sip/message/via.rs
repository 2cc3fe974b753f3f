//! The Via header (RFC 3261 §20.42, §18.2.1; RFC 3581 rport): one hop per [`Via`].
//!
//! Owns hop syntax, the typed parameters (`branch`, `received`, `rport`, `maddr`, `ttl`)
//! and printing. It does not choose where responses go; the transport does that.

use std::fmt;
use std::net::IpAddr;

use super::error::HeaderError;
use super::header::HeaderName;
use super::params::Params;
use super::text::{is_token, is_wsp, snippet, trim_wsp};
use super::uri::{Host, parse_port};

/// The RFC 3261 branch prefix (§8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// Transport named in a Via hop.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
    /// SCTP.
    Sctp,
    /// WebSocket (RFC 7118).
    Ws,
    /// Secure WebSocket (RFC 7118).
    Wss,
    /// Anything else, upper-cased.
    Other(String),
}

impl Transport {
    /// Case-insensitive lookup.
    pub fn from_token(s: &str) -> Self {
        match s.to_ascii_uppercase().as_str() {
            "UDP" => Self::Udp,
            "TCP" => Self::Tcp,
            "TLS" => Self::Tls,
            "SCTP" => Self::Sctp,
            "WS" => Self::Ws,
            "WSS" => Self::Wss,
            other => Self::Other(other.to_string()),
        }
    }

    /// Upper-case name as printed in Via.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
            Self::Sctp => "SCTP",
            Self::Ws => "WS",
            Self::Wss => "WSS",
            Self::Other(s) => s,
        }
    }

    /// Default port when the sent-by has none (5061 for TLS/WSS, else 5060; RFC 3261 §18.2.2).
    pub fn default_port(&self) -> u16 {
        match self {
            Self::Tls | Self::Wss => 5061,
            _ => 5060,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `rport` parameter of a hop (RFC 3581).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rport {
    /// No `rport`.
    Absent,
    /// `;rport` without a value: the client asks us to fill it in.
    Requested,
    /// `;rport=N`.
    Port(u16),
}

/// One Via hop: `SIP/2.0/UDP host:port;params`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Protocol name and version, normalised without spaces (`SIP/2.0`).
    pub protocol: String,
    /// Transport.
    pub transport: Transport,
    /// sent-by host.
    pub host: Host,
    /// sent-by port, if given.
    pub port: Option<u16>,
    /// Parameters in order, raw.
    pub params: Params,
}

impl Via {
    /// A `SIP/2.0` hop with a branch, as a client adds to a new request.
    pub fn new(transport: Transport, host: Host, port: Option<u16>, branch: &str) -> Self {
        let mut params = Params::new();
        params.set("branch", Some(branch));
        Self {
            protocol: "SIP/2.0".to_string(),
            transport,
            host,
            port,
            params,
        }
    }

    /// Parses one hop (one element of a comma-separated Via value). Whitespace is
    /// tolerated around `/`, `:`, `;` and `=`. Known parameters are checked: `rport`
    /// must be empty or a port, `ttl` 0-255, `branch` a token, and none may repeat.
    pub fn parse(s: &str) -> Result<Self, HeaderError> {
        let bad = |expected: &'static str, found: &str| HeaderError::Malformed {
            name: HeaderName::Via,
            expected,
            found: snippet(found),
        };
        let s = trim_wsp(s);
        // sent-protocol: name / version / transport, LWS allowed around the slashes.
        let mut parts = s.splitn(3, '/');
        let name = trim_wsp(parts.next().unwrap_or_default());
        let version = trim_wsp(parts.next().unwrap_or_default());
        let rest = parts.next().ok_or_else(|| bad("'SIP/2.0/transport'", s))?;
        if !is_token(name) || !is_token(version) {
            return Err(bad("'SIP/2.0/transport'", s));
        }
        let rest = rest.trim_start_matches([' ', '\t']);
        let t_end = rest
            .find(|c: char| !c.is_ascii() || !super::text::is_token_char(c as u8))
            .unwrap_or(rest.len());
        let transport = rest.get(..t_end).unwrap_or_default();
        if transport.is_empty() {
            return Err(bad("a transport after 'SIP/2.0/'", s));
        }
        let rest = rest.get(t_end..).unwrap_or_default();
        if !rest.starts_with([' ', '\t']) {
            return Err(bad("whitespace then sent-by host", rest));
        }
        let rest = rest.trim_start_matches([' ', '\t']);
        // sent-by host: bracketed v6 or up to ':', ';', whitespace.
        let h_end = if rest.starts_with('[') {
            rest.find(']')
                .map(|i| i + 1)
                .ok_or_else(|| bad("a closing ']'", rest))?
        } else {
            rest.find([':', ';', ' ', '\t']).unwrap_or(rest.len())
        };
        let host_text = rest.get(..h_end).unwrap_or_default();
        let host = Host::parse(host_text).map_err(|e| HeaderError::Uri {
            name: HeaderName::Via,
            source: e,
        })?;
        let mut rest = rest
            .get(h_end..)
            .unwrap_or_default()
            .trim_start_matches([' ', '\t']);
        let mut port = None;
        if let Some(p) = rest.strip_prefix(':') {
            let p = p.trim_start_matches([' ', '\t']);
            let end = p.find(|c: char| !c.is_ascii_digit()).unwrap_or(p.len());
            let text = p.get(..end).unwrap_or_default();
            port = Some(parse_port(text).map_err(|e| HeaderError::Uri {
                name: HeaderName::Via,
                source: e,
            })?);
            rest = p
                .get(end..)
                .unwrap_or_default()
                .trim_start_matches([' ', '\t']);
        }
        let params = match rest.strip_prefix(';') {
            Some(p) => Params::parse(p).map_err(|e| bad("';name=value' parameters", &e.found))?,
            None if rest.is_empty() => Params::new(),
            None => return Err(bad("';' or ',' after sent-by", rest)),
        };
        for known in ["branch", "received", "rport", "maddr", "ttl"] {
            if params.count(known) > 1 {
                return Err(bad(
                    "each of branch/received/rport/maddr/ttl at most once",
                    known,
                ));
            }
        }
        if let Some(v) = params
            .get("rport")
            .and_then(|p| p.value.as_deref())
            .filter(|v| !v.is_empty())
        {
            parse_port(v).map_err(|_| bad("rport empty or a port number", v))?;
        }
        if let Some(v) = params.value("ttl") {
            super::text::parse_u64(v)
                .filter(|n| *n <= 255)
                .ok_or_else(|| bad("ttl between 0 and 255", v))?;
        }
        if let Some(v) = params
            .value("branch")
            .filter(|v| !v.is_empty() && !is_token(v))
        {
            return Err(bad("branch to be a token", v));
        }
        let protocol = format!("{name}/{version}");
        Ok(Self {
            protocol,
            transport: Transport::from_token(transport),
            host,
            port,
            params,
        })
    }

    /// The `branch` parameter; `None` if absent or empty.
    pub fn branch(&self) -> Option<&str> {
        self.params.value("branch").filter(|b| !b.is_empty())
    }

    /// Whether the branch starts with the RFC 3261 magic cookie (so it can key a transaction).
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with(MAGIC_COOKIE))
    }

    /// The raw `received` parameter.
    pub fn received(&self) -> Option<&str> {
        self.params.value("received")
    }

    /// `received` as an address (bare or bracketed IPv6 accepted); `None` if absent or not an IP.
    pub fn received_ip(&self) -> Option<IpAddr> {
        let v = self.received()?;
        let v = v
            .strip_prefix('[')
            .and_then(|x| x.strip_suffix(']'))
            .unwrap_or(v);
        v.parse().ok()
    }

    /// The `rport` parameter.
    pub fn rport(&self) -> Rport {
        match self.params.get("rport") {
            None => Rport::Absent,
            Some(p) => match p.value.as_deref() {
                None | Some("") => Rport::Requested,
                Some(v) => parse_port(v).map_or(Rport::Requested, Rport::Port),
            },
        }
    }

    /// The raw `maddr` parameter.
    pub fn maddr(&self) -> Option<&str> {
        self.params.value("maddr")
    }

    /// The `ttl` parameter.
    pub fn ttl(&self) -> Option<u8> {
        self.params.value("ttl").and_then(|v| v.parse().ok())
    }

    /// sent-by port, or the transport's default.
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or_else(|| self.transport.default_port())
    }

    /// Sets `received` (IPv6 printed bare, as RFC 3261's grammar has it).
    pub fn set_received(&mut self, ip: IpAddr) {
        self.params
            .set("received", Some(&ip.to_canonical().to_string()));
    }

    /// Sets `rport=port`.
    pub fn set_rport(&mut self, port: u16) {
        self.params.set("rport", Some(&port.to_string()));
    }

    /// Applies RFC 3261 §18.2.1 and RFC 3581 §4 for a request that arrived from `source`:
    /// adds `received` when the sent-by host is not the source address (or when `rport`
    /// was requested), and fills in a requested `rport`. Returns whether anything changed.
    pub fn stamp_source(&mut self, source: std::net::SocketAddr) -> bool {
        let ip = source.ip().to_canonical();
        let mut changed = false;
        if self.rport() == Rport::Requested {
            self.set_rport(source.port());
            self.set_received(ip);
            changed = true;
        } else if self.host.ip().map(|h| h.to_canonical()) != Some(ip) {
            self.set_received(ip);
            changed = true;
        }
        changed
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} {}", self.protocol, self.transport, self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)
    }
}

/// Parses every hop of one Via header value (comma-separated).
pub(crate) fn parse_hops(value: &str) -> Result<Vec<Via>, HeaderError> {
    let ranges = super::text::split_top_level(value, b',').map_err(|e| HeaderError::Malformed {
        name: HeaderName::Via,
        expected: e.expected(),
        found: snippet(value),
    })?;
    let mut out = Vec::with_capacity(ranges.len());
    for r in ranges {
        let piece = value.get(r).unwrap_or_default();
        if piece.bytes().all(is_wsp) {
            return Err(HeaderError::Malformed {
                name: HeaderName::Via,
                expected: "a hop between commas",
                found: snippet(value),
            });
        }
        out.push(Via::parse(piece)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_spaced_hop() {
        let v = Via::parse("SIP / 2.0 / UDP first.example.com: 4000;ttl=16 ;maddr=224.2.0.1 ; branch=z9hG4bKa7c6a8dlze.1").unwrap();
        assert_eq!(v.protocol, "SIP/2.0");
        assert_eq!(v.transport, Transport::Udp);
        assert_eq!(v.host, Host::Domain("first.example.com".into()));
        assert_eq!(v.port, Some(4000));
        assert_eq!(v.ttl(), Some(16));
        assert_eq!(v.maddr(), Some("224.2.0.1"));
        assert_eq!(v.branch(), Some("z9hG4bKa7c6a8dlze.1"));
        assert!(v.has_rfc3261_branch());
    }

    #[test]
    fn rport_and_received() {
        let v = Via::parse(
            "SIP/2.0/UDP [2001:db8::9:1]:5060;branch=z9hG4bK1;received=2001:db8::9:255;rport",
        )
        .unwrap();
        assert_eq!(v.host, Host::Ipv6("2001:db8::9:1".parse().unwrap()));
        assert_eq!(v.received(), Some("2001:db8::9:255"));
        assert_eq!(v.received_ip(), Some("2001:db8::9:255".parse().unwrap()));
        assert_eq!(v.rport(), Rport::Requested);
        let v = Via::parse("SIP/2.0/TCP h;rport=5070").unwrap();
        assert_eq!(v.rport(), Rport::Port(5070));
        assert_eq!(v.port_or_default(), 5060);
    }

    #[test]
    fn stamp() {
        let mut v = Via::parse("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport").unwrap();
        assert!(v.stamp_source("192.0.2.7:40000".parse().unwrap()));
        assert_eq!(
            v.to_string(),
            "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport=40000;received=192.0.2.7"
        );
        let mut v = Via::parse("SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK1").unwrap();
        assert!(!v.stamp_source("192.0.2.7:5060".parse().unwrap()));
        let mut v = Via::parse("SIP/2.0/UDP pc.example.com;branch=z9hG4bK1").unwrap();
        assert!(v.stamp_source("[2001:db8::5]:5060".parse().unwrap()));
        assert_eq!(v.received(), Some("2001:db8::5"));
    }

    #[test]
    fn rejects() {
        for bad in [
            "SIP/2.0/",
            "SIP/2.0/UDP",
            "SIP/2.0 UDP host",
            "SIP/2.0/UDP host;rport=abc",
            "SIP/2.0/UDP host;ttl=300",
            "SIP/2.0/UDP host:99999",
            "SIP/2.0/UDP [::1",
            "SIP/2.0/UDP host junk",
            "SIP/2.0/UDP host;branch=a;branch=b",
            "SIP/2.0/UDPhost",
            "SIP/2.0/UDP 2001:db8::1",
        ] {
            assert!(Via::parse(bad).is_err(), "{bad} should fail");
        }
        assert_eq!(
            parse_hops("SIP/2.0/UDP a;branch=z9hG4bKp1, SIP/2.0/TCP 10.0.0.1;branch=z9hG4bKp0")
                .unwrap()
                .len(),
            2
        );
        assert!(parse_hops("SIP/2.0/UDP a,").is_err());
    }
}
