//! Blind transfer by an agent's phone (RFC 3515): which targets a REFER may name
//! (`agent_transfers.allowed` in hotline.yaml), reading and checking its Refer-To, and the
//! `message/sipfrag` NOTIFYs that tell the phone how the transfer goes. The dialog that
//! receives the REFER ([`Uas`](crate::sip::uas::Uas)) uses these; whether it accepts a
//! REFER at all is decided by whoever made it (only agents' legs, only when configured).
//!
//! A target pattern is a number pattern (the notation of `callback.allowed`, see
//! [`pattern_matches`]) matched against the user part of the Refer-To URI, optionally
//! followed by `@host` or `@host:port`, which the URI's host (and port) must then equal.
//! Only `sip:`/`sips:` URIs whose user part is a plain number (an optional `+` and 3 to
//! 20 digits) are ever dialled; the engine dials `scheme:number@host[:port]` rebuilt from
//! those parts, never the URI as written (no parameters, no headers, no `Replaces`).
//!
//! Pure: no IO, no clock.

use crate::queue::config::{check_pattern, dialable, pattern_matches};
use crate::sip::message::{HeaderName, NameAddr, Request, Uri};

/// How long the implicit subscription of a REFER lasts (`Subscription-State: active`).
pub const REFER_SUBSCRIPTION_SECS: u32 = 60;

/// Why a REFER is refused; its status says how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferError {
    #[error("no Refer-To")]
    NoTarget,
    #[error("more than one Refer-To")]
    SeveralTargets,
    #[error("Refer-To is not a URI: {0}")]
    Malformed(String),
    #[error("the target '{0}' is not a SIP URI with a number as its user part")]
    NotANumber(String),
    #[error("the target '{0}' asks for more than a blind transfer (URI headers)")]
    NotBlind(String),
    #[error("the target '{0}' is not in agent_transfers.allowed")]
    NotAllowed(String),
}

impl ReferError {
    /// The final response for the REFER.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            ReferError::NoTarget | ReferError::SeveralTargets | ReferError::Malformed(_) => {
                (400, "Bad Request")
            }
            ReferError::NotANumber(_) | ReferError::NotBlind(_) | ReferError::NotAllowed(_) => {
                (403, "Forbidden")
            }
        }
    }
}

/// A pattern of `agent_transfers.allowed` that does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a number pattern like '2XX' or '2XX@pbx.example.net': {0}")]
pub struct TargetPatternError(String);

/// One pattern: the number, and the host (with its port) when it is pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TargetPattern {
    number: String,
    host: Option<String>,
    port: Option<u16>,
}

impl TargetPattern {
    fn parse(text: &str) -> Result<TargetPattern, TargetPatternError> {
        let (number, host) = match text.split_once('@') {
            Some((n, h)) => (n, Some(h)),
            None => (text, None),
        };
        check_pattern(number).map_err(TargetPatternError)?;
        let (host, port) = match host {
            None => (None, None),
            Some(h) => {
                let split = if h.starts_with('[') {
                    h.find(']').map(|i| h.split_at(i + 1))
                } else {
                    h.rsplit_once(':').map(|(n, _)| (n, &h[n.len()..]))
                };
                let (name, port) = match split {
                    Some((n, rest)) if rest.starts_with(':') => {
                        let p = &rest[1..];
                        let port = p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                            TargetPatternError(format!("the port '{p}' is not a port"))
                        })?;
                        (n, Some(port))
                    }
                    Some((n, "")) => (n, None),
                    Some(_) => {
                        return Err(TargetPatternError(format!(
                            "'{h}' after '@' is not a host name or address"
                        )));
                    }
                    None => (h, None),
                };
                let ok = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b));
                if !ok {
                    return Err(TargetPatternError(format!(
                        "'{h}' after '@' is not a host name or address"
                    )));
                }
                (Some(name.to_ascii_lowercase()), port)
            }
        };
        Ok(TargetPattern {
            number: number.to_owned(),
            host,
            port,
        })
    }

    fn matches(&self, number: &str, host: &str, port: Option<u16>) -> bool {
        pattern_matches(&self.number, number)
            && self.host.as_deref().is_none_or(|h| h == host)
            && self.port.is_none_or(|p| Some(p) == port)
    }
}

/// The targets agents may transfer callers to (`agent_transfers.allowed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferTargets {
    allowed: Vec<TargetPattern>,
}

impl TransferTargets {
    /// Reads the patterns; the first that does not read is the error, with its index.
    pub fn new(patterns: &[String]) -> Result<TransferTargets, (usize, TargetPatternError)> {
        let allowed = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| TargetPattern::parse(p).map_err(|e| (i, e)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TransferTargets { allowed })
    }

    /// Checks one pattern (for `hotline check`).
    pub fn check(pattern: &str) -> Result<(), TargetPatternError> {
        TargetPattern::parse(pattern).map(|_| ())
    }

    /// The URI to dial for the REFER's target, or why it is refused.
    pub fn target(&self, req: &Request) -> Result<String, ReferError> {
        let mut values = req.headers.get_all(HeaderName::ReferTo);
        let first = values.next().ok_or(ReferError::NoTarget)?;
        if values.next().is_some() {
            return Err(ReferError::SeveralTargets);
        }
        let text = first.to_str_lossy();
        let addr = NameAddr::parse(&text, &HeaderName::ReferTo)
            .map_err(|e| ReferError::Malformed(e.to_string()))?;
        self.allows(&addr.uri)
    }

    /// Whether `uri` may be dialled: the URI to dial when it may.
    pub fn allows(&self, uri: &Uri) -> Result<String, ReferError> {
        let written = uri.to_string();
        let Some(sip) = uri.as_sip() else {
            return Err(ReferError::NotANumber(written));
        };
        let number = sip.user.as_deref().unwrap_or_default();
        if !dialable(number) || sip.password.is_some() {
            return Err(ReferError::NotANumber(written));
        }
        if sip.headers.is_some() {
            return Err(ReferError::NotBlind(written));
        }
        let host = sip.host.to_string().to_ascii_lowercase();
        if !self
            .allowed
            .iter()
            .any(|p| p.matches(number, &host, sip.port))
        {
            return Err(ReferError::NotAllowed(written));
        }
        let scheme = if sip.secure { "sips" } else { "sip" };
        Ok(match sip.port {
            Some(port) => format!("{scheme}:{number}@{host}:{port}"),
            None => format!("{scheme}:{number}@{host}"),
        })
    }
}

/// The `message/sipfrag` body of a NOTIFY for a REFER: the status line of the target's
/// answer.
pub fn sipfrag(status: u16, reason: &str) -> String {
    format!("SIP/2.0 {status} {reason}\r\n")
}

/// The `Subscription-State` of a NOTIFY: active until the final status, then over.
pub fn subscription_state(status: u16) -> String {
    if status < 200 {
        format!("active;expires={REFER_SUBSCRIPTION_SECS}")
    } else {
        "terminated;reason=noresource".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::Method;

    fn targets(p: &[&str]) -> TransferTargets {
        let p: Vec<String> = p.iter().map(|s| s.to_string()).collect();
        TransferTargets::new(&p).unwrap()
    }

    fn refer(refer_to: &[&str]) -> Request {
        let mut r = Request::new(Method::Refer, Uri::parse("sip:hotline@127.0.0.1").unwrap());
        for t in refer_to {
            r.headers.push(HeaderName::ReferTo, t.to_string());
        }
        r
    }

    #[test]
    fn a_number_pattern_matches_the_user_part_at_any_host_unless_one_is_pinned() {
        let t = targets(&["2XX", "0800X.@gw.example.net", "9XX@10.0.0.1:5070"]);
        assert_eq!(
            t.target(&refer(&["<sip:201@pbx.local>"])),
            Ok("sip:201@pbx.local".into())
        );
        assert_eq!(
            t.target(&refer(&[
                "\"Bob\" <sip:201@127.0.0.1:5071;transport=udp>;x=1"
            ])),
            Ok("sip:201@127.0.0.1:5071".into())
        );
        assert_eq!(
            t.target(&refer(&["<sip:08001234@GW.example.net>"])),
            Ok("sip:08001234@gw.example.net".into())
        );
        assert!(matches!(
            t.target(&refer(&["<sip:08001234@evil.example>"])),
            Err(ReferError::NotAllowed(_))
        ));
        assert!(t.target(&refer(&["<sip:901@10.0.0.1:5070>"])).is_ok());
        assert!(matches!(
            t.target(&refer(&["<sip:901@10.0.0.1>"])),
            Err(ReferError::NotAllowed(_))
        ));
        assert!(matches!(
            t.target(&refer(&["<sip:0041900123@pbx.local>"])),
            Err(ReferError::NotAllowed(_))
        ));
    }

    #[test]
    fn refusals_say_400_for_a_malformed_refer_and_403_for_a_target_not_allowed() {
        let t = targets(&["2XX"]);
        let status = |r: &[&str]| t.target(&refer(r)).map(|_| 0).map_err(|e| e.status().0);
        assert_eq!(status(&[]), Err(400));
        assert_eq!(status(&["<sip:201@a>", "<sip:202@a>"]), Err(400));
        assert_eq!(status(&["<sip:201@a"]), Err(400));
        assert_eq!(status(&["<sip:alice@a>"]), Err(403));
        assert_eq!(status(&["<tel:201>"]), Err(403));
        assert_eq!(status(&["<sip:201@a?Replaces=x%40y>"]), Err(403));
        assert_eq!(status(&["<sip:301@a>"]), Err(403));
        assert_eq!(status(&["<sip:201@a>"]), Ok(0));
    }

    #[test]
    fn patterns_that_do_not_read_are_named_by_index() {
        let p: Vec<String> = vec!["2XX".into(), "2XX@".into()];
        assert_eq!(TransferTargets::new(&p).err().map(|(i, _)| i), Some(1));
        assert!(TransferTargets::check("abc").is_err());
        assert!(TransferTargets::check("2XX@host name").is_err());
        assert!(TransferTargets::check("2XX@pbx:99999").is_err());
        assert!(TransferTargets::check("+49X.@gw").is_ok());
    }

    #[test]
    fn notify_bodies_and_states_follow_rfc_3515() {
        assert_eq!(sipfrag(100, "Trying"), "SIP/2.0 100 Trying\r\n");
        assert_eq!(subscription_state(100), "active;expires=60");
        assert_eq!(subscription_state(486), "terminated;reason=noresource");
    }
}
