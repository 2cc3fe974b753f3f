//! Feature codes dialed from an agent's phone (`*41` pause, `*42` resume, `*43` login,
//! `*44` logout): the INVITE is applied to the agent instead of running a flow.
//!
//! Owns who may use a code (the From user names an agent AND the INVITE comes from where
//! that agent is: the source of one of its live registrations, or the host and port of
//! its fixed `uri`), and what the short call that confirms it plays: two beeps, or one low
//! tone when the ACD refused the command. Anyone else gets 403. The call itself (answer,
//! tones, BYE) is an ordinary call running `Script::Tones`. It decides nothing about
//! agents' states: the ACD accepts or refuses the command.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::flow::machine::Audio;
use crate::media::prompt::Prompt;
use crate::queue::agent::{AgentCommand, feature_code};
use crate::sip::message::{Host, Uri};
use crate::sip::registrar::Binding;

/// The command behind `dialed`, when it is a feature code and there are queues to apply
/// it to; otherwise the call is routed as usual.
pub fn command_for(has_queues: bool, dialed: &str) -> Option<AgentCommand> {
    if !has_queues {
        return None;
    }
    feature_code(dialed)
}

/// Whether an INVITE from `source` may speak for the agent whose live registrations are
/// `bindings` and whose fixed address is `fixed_uri`. Only an exact source (address and
/// port) counts: a From header alone is whatever the sender wrote.
pub fn comes_from_agent(source: SocketAddr, bindings: &[Binding], fixed_uri: Option<&str>) -> bool {
    bindings.iter().any(|b| b.source.remote == source)
        || fixed_uri.is_some_and(|u| fixed_address(u) == Some(source))
}

/// The socket address of a fixed `sip:`/`sips:` URI with a literal IP host (a domain
/// name would need a lookup, and matches nothing).
fn fixed_address(uri: &str) -> Option<SocketAddr> {
    let uri = Uri::parse(uri).ok()?;
    let sip = uri.as_sip()?;
    let ip = match &sip.host {
        Host::Ipv4(a) => IpAddr::V4(*a),
        Host::Ipv6(a) => IpAddr::V6(*a),
        Host::Domain(_) => return None,
    };
    let port = sip.port.unwrap_or(if sip.secure { 5061 } else { 5060 });
    Some(SocketAddr::new(ip, port))
}

const BEEP_HZ: u16 = 880;
const BEEP: Duration = Duration::from_millis(160);
const REFUSED_HZ: u16 = 400;
const REFUSED: Duration = Duration::from_millis(700);

/// The beep of a command done, heard twice (whole 20 ms frames, so each starts a frame).
pub fn done_beep() -> Prompt {
    Prompt::tone(f32::from(BEEP_HZ), BEEP, -10.0)
}

/// The one low tone of a command the ACD refused (say, a pause while logged out).
pub fn refused_tone() -> Prompt {
    Prompt::tone(f32::from(REFUSED_HZ), REFUSED, -10.0)
}

/// What the agent hears once the call is answered: two beeps when the command was
/// applied, one low tone when the queues refused it. (Tones are played at the level of
/// [`done_beep`] and [`refused_tone`].)
pub fn confirmation(applied: bool) -> Vec<Audio> {
    if applied {
        let beep = Audio::Tone {
            freq_hz: BEEP_HZ,
            duration: BEEP,
        };
        vec![
            beep.clone(),
            Audio::Silence(Duration::from_millis(100)),
            beep,
        ]
    } else {
        vec![Audio::Tone {
            freq_hz: REFUSED_HZ,
            duration: REFUSED,
        }]
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::config::Protocol;
    use crate::sip::transport::Peer;

    fn binding(source: &str) -> Binding {
        let now = Instant::now();
        Binding {
            contact: Uri::parse("sip:alice@192.0.2.7:5062").expect("uri"),
            source: Peer {
                transport: Protocol::Udp,
                remote: source.parse().expect("addr"),
                local: "127.0.0.1:5060".parse().expect("addr"),
            },
            expires_at: now + Duration::from_secs(60),
            updated_at: now,
            call_id: "c".into(),
            cseq: 1,
        }
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    #[test]
    fn only_the_registered_source_or_the_fixed_address_counts() {
        let b = [binding("192.0.2.7:40000")];
        assert!(comes_from_agent(addr("192.0.2.7:40000"), &b, None));
        // Same host, another port: another program on that host.
        assert!(!comes_from_agent(addr("192.0.2.7:40001"), &b, None));
        assert!(!comes_from_agent(addr("192.0.2.8:40000"), &b, None));
        assert!(!comes_from_agent(addr("192.0.2.7:40000"), &[], None));

        let fixed = Some("sip:carol@192.0.2.10:5070");
        assert!(comes_from_agent(addr("192.0.2.10:5070"), &[], fixed));
        assert!(!comes_from_agent(addr("192.0.2.10:5071"), &[], fixed));
        assert!(comes_from_agent(
            addr("192.0.2.10:5060"),
            &[],
            Some("sip:carol@192.0.2.10")
        ));
        assert!(comes_from_agent(
            addr("[2001:db8::1]:5061"),
            &[],
            Some("sips:carol@[2001:db8::1]")
        ));
        // A name would need a lookup: it matches nothing.
        assert!(!comes_from_agent(
            addr("192.0.2.10:5060"),
            &[],
            Some("sip:carol@pbx.example.com")
        ));
        assert!(!comes_from_agent(
            addr("192.0.2.10:5060"),
            &[],
            Some("not a uri")
        ));
    }
}
