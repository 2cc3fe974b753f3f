//! Feature codes dialed from an agent's phone (`*41` pause, `*42` resume, `*43` login,
//! `*44` logout): the INVITE is applied to the agent instead of running a flow.
//!
//! Owns who may use a code (the From user names an agent AND the INVITE comes from where
//! that agent is: the source of one of its live registrations, or the host and port of
//! its fixed `uri`), and the short call that confirms it: answer, two beeps (one low tone
//! when the ACD refused the command), BYE. Anyone else gets 403. It decides nothing about
//! agents' states: the ACD accepts or refuses the command.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::call::uas_shell::{Next, UasShell};
use crate::call::{CallDeps, advertised_ip, answer_params, start_session};
use crate::media::prompt::Prompt;
use crate::media::session::{MediaEvent, SessionCommand};
use crate::queue::agent::{AgentCommand, feature_code};
use crate::sip::endpoint::NewCall;
use crate::sip::message::{Host, Uri};
use crate::sip::registrar::Binding;
use crate::sip::sdp::Negotiated;
use crate::sip::uas::{Route, Uas, UasEvent};

/// The command behind `dialed`, when it is a feature code and there are queues to apply
/// it to; otherwise the call is routed as usual.
pub fn command_for(deps: &CallDeps, dialed: &str) -> Option<AgentCommand> {
    deps.acd()?;
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

/// The beep of a command done, heard twice (whole 20 ms frames, so each starts a frame).
pub fn done_beep() -> Prompt {
    Prompt::tone(880.0, Duration::from_millis(160), -10.0)
}

/// The one low tone of a command the ACD refused (say, a pause while logged out).
pub fn refused_tone() -> Prompt {
    Prompt::tone(400.0, Duration::from_millis(700), -10.0)
}

/// Serves the feature-code INVITE `nc` from `caller` (the From user) to its end: the
/// UAS answers it (or refuses it: 403 to anyone but the agent's phone), the command is
/// applied just before the answer, and the tones are played. The caller of this function
/// tells the endpoint the call has ended afterwards.
pub async fn serve(
    mut nc: NewCall,
    deps: Arc<CallDeps>,
    call_id: String,
    caller: String,
    command: AgentCommand,
) {
    let live = deps.live();
    let now = Instant::now();
    let bindings = deps
        .registrations()
        .map(|r| r.contacts(&caller, now))
        .unwrap_or_default();
    let agent = live.config.agents.get(&caller);
    let allowed =
        agent.is_some_and(|a| comes_from_agent(nc.peer.remote, &bindings, a.uri.as_deref()));
    let route = if allowed {
        Route::Found
    } else {
        Route::Forbidden
    };
    let advertised = advertised_ip(live.config.public_address, nc.peer.local, nc.peer.remote);
    let (params, port) = answer_params(&deps, &nc.peer, advertised, route, Duration::ZERO);
    let uas = Uas::new(nc.key.clone(), nc.invite.clone(), params);
    let mut side = UasShell::new(uas, nc.sip.clone(), nc.peer, advertised, &call_id);
    // Everything that can fail before the answer is checked before the command is applied.
    for ev in side.flush() {
        if let UasEvent::Refused { status } = ev {
            if status == 403 {
                warn!(
                    from = %caller,
                    source = %nc.peer.remote,
                    "feature code refused: not an agent, or not from the agent's phone"
                );
            } else {
                info!(status, "feature code refused");
            }
        }
    }
    if side.uas.is_over() {
        return;
    }
    let (Some(acd), Some(port)) = (deps.acd(), port) else {
        side.refuse(404, "Not Found");
        return;
    };
    let result = acd.command(&caller, command.clone()).await;
    match &result {
        Ok(()) => info!(agent = %caller, ?command, "feature code applied"),
        Err(e) => {
            info!(agent = %caller, ?command, error = %e, "feature code refused by the queues")
        }
    }
    side.answer(Instant::now());
    let Some(negotiated) = wait_for_media(&mut side, &mut nc).await else {
        side.hang_up(Instant::now());
        side.close(&mut nc.inbox, false, |_| false).await;
        return;
    };
    let tone = if result.is_ok() {
        vec![
            done_beep(),
            Prompt::silence(Duration::from_millis(100)),
            done_beep(),
        ]
    } else {
        vec![refused_tone()]
    };
    let hung_up = play(&deps, &mut side, &mut nc, negotiated, port, tone).await;
    if !hung_up {
        side.hang_up(Instant::now());
    }
    side.close(&mut nc.inbox, false, |_| false).await;
}

/// Waits for the media the UAS agreed on (at once with an offer in the INVITE, with the
/// ACK for a late offer); None when the call cannot go on.
async fn wait_for_media(side: &mut UasShell, nc: &mut NewCall) -> Option<Negotiated> {
    if let Some(n) = side.uas.negotiated() {
        return Some(n.clone());
    }
    loop {
        if side.uas.is_over() || side.uas.is_closing() {
            return None;
        }
        match side.next(&mut nc.inbox).await {
            Next::Events(evs) => {
                for ev in evs {
                    if let UasEvent::Media(n) = ev {
                        return Some(n);
                    }
                }
            }
            Next::Other(_) => {}
            Next::Gone => return None,
        }
    }
}

/// Plays `tone` to the phone; true when the phone hung up meanwhile.
async fn play(
    deps: &CallDeps,
    side: &mut UasShell,
    nc: &mut NewCall,
    n: Negotiated,
    port: crate::media::ports::RtpPort,
    tone: Vec<Prompt>,
) -> bool {
    let length: Duration = tone.iter().map(Prompt::duration).sum();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let id = start_session(deps, port, &n, length + Duration::from_secs(10), tx, None);
    deps.media.command(
        id,
        SessionCommand::Play {
            id: 1,
            prompts: tone,
            barge_in: false,
        },
    );
    let deadline = tokio::time::Instant::now() + length + Duration::from_secs(2);
    let mut hung_up = false;
    while !hung_up {
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(MediaEvent::PlayFinished { id: 1 }) | None => break,
                Some(_) => {}
            },
            next = side.next(&mut nc.inbox) => match next {
                Next::Events(_) => hung_up = side.uas.is_over() || side.uas.is_closing(),
                Next::Other(_) => {}
                Next::Gone => hung_up = true,
            },
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    deps.media.remove(id);
    hung_up
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Transport;
    use crate::sip::transport::Peer;

    fn binding(source: &str) -> Binding {
        let now = Instant::now();
        Binding {
            contact: Uri::parse("sip:alice@192.0.2.7:5062").expect("uri"),
            source: Peer {
                transport: Transport::Udp,
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
