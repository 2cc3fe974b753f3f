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
use tracing::{debug, info, warn};

use crate::call::{CallDeps, advertised_ip};
use crate::media::prompt::Prompt;
use crate::media::session::{MediaEvent, Session, SessionCommand, SessionParams};
use crate::queue::agent::{AgentCommand, feature_code};
use crate::sip::ALLOW;
use crate::sip::dialog::Dialog;
use crate::sip::endpoint::{NewCall, ToCall, our_contact, our_via};
use crate::sip::message::{ContentType, HeaderName, Host, Method, Response, Uri};
use crate::sip::random_token;
use crate::sip::registrar::Binding;
use crate::sip::sdp::{self, Codec, Negotiated};

const CODECS: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];

/// How long the confirmation waits for the ACK of its 200 (64 × T1 with the default T1).
const ACK_WAIT: Duration = Duration::from_secs(32);

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

/// Serves the feature-code INVITE `nc` from `caller` (the From user) to its end. The
/// caller of this function tells the endpoint the call has ended afterwards.
pub async fn serve(
    mut nc: NewCall,
    deps: Arc<CallDeps>,
    call_id: String,
    caller: String,
    command: AgentCommand,
) {
    let refuse = |nc: &NewCall, status: u16, reason: &str| {
        let mut resp = Response::for_request(&nc.invite, status, reason);
        let _ = resp.headers.ensure_to_tag(&random_token(10));
        nc.sip.respond(&nc.key, nc.peer, &call_id, resp);
    };
    let live = deps.live();
    let now = Instant::now();
    let bindings = deps
        .registrations()
        .map(|r| r.contacts(&caller, now))
        .unwrap_or_default();
    let agent = live.config.agents.get(&caller);
    let allowed =
        agent.is_some_and(|a| comes_from_agent(nc.peer.remote, &bindings, a.uri.as_deref()));
    if !allowed {
        warn!(
            from = %caller,
            source = %nc.peer.remote,
            "feature code refused: not an agent, or not from the agent's phone"
        );
        refuse(&nc, 403, "Forbidden");
        return;
    }

    // Everything that can fail before the answer is checked before the command is applied.
    let offer = if nc.invite.body.is_empty() {
        None
    } else {
        match sdp::parse_offer(&nc.invite.body).and_then(|r| sdp::negotiate(&r, &CODECS)) {
            Ok(n) => Some(n),
            Err(e) => {
                debug!(error = %e, "feature code without a usable offer");
                refuse(&nc, 488, "Not Acceptable Here");
                return;
            }
        }
    };
    let local_tag = random_token(10);
    let mut dialog = match Dialog::uas(&nc.invite, &local_tag, rand::random_range(1..10_000)) {
        Ok(d) => d,
        Err(e) => {
            refuse(&nc, 400, &format!("Bad Request ({e})"));
            return;
        }
    };
    let rtp_port = match deps.ports.allocate(nc.peer.local.ip()) {
        Ok(p) => p,
        Err(e) => {
            warn!(error = %e, "no RTP port for a feature code");
            refuse(&nc, 503, "Service Unavailable");
            return;
        }
    };
    let Some(acd) = deps.acd() else {
        refuse(&nc, 404, "Not Found");
        return;
    };
    let result = acd.command(&caller, command.clone()).await;
    match &result {
        Ok(()) => info!(agent = %caller, ?command, "feature code applied"),
        Err(e) => {
            info!(agent = %caller, ?command, error = %e, "feature code refused by the queues")
        }
    }

    let advertised = advertised_ip(live.config.public_address, nc.peer.local, nc.peer.remote);
    let session_id = rand::random_range(1..u64::from(u32::MAX));
    let body = match &offer {
        Some(n) => sdp::build_answer(advertised, rtp_port.port, n, session_id, 1),
        None => sdp::build_offer(advertised, rtp_port.port, session_id, 1),
    };
    let mut ok = Response::for_request(&nc.invite, 200, "OK");
    let _ = ok.headers.ensure_to_tag(&local_tag);
    ok.copy_record_route(&nc.invite);
    let contact = our_contact(&nc.peer, advertised);
    ok.headers.push(HeaderName::Contact, format!("<{contact}>"));
    ok.headers.push(HeaderName::Allow, ALLOW);
    ok.headers.push(HeaderName::Supported, "");
    ok.set_body(&ContentType::new("application", "sdp"), body);
    nc.sip.respond(&nc.key, nc.peer, &call_id, ok);

    let Some(negotiated) = wait_for_ack(&mut nc, &call_id, offer).await else {
        bye(&mut nc, &mut dialog, advertised, &call_id).await;
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
    let hung_up = play(&deps, &mut nc, &call_id, negotiated, rtp_port, tone).await;
    if !hung_up {
        bye(&mut nc, &mut dialog, advertised, &call_id).await;
    }
}

/// Waits for the ACK of our 200; returns the media to play to, or None when the call
/// cannot go on (no ACK, or a late-offer ACK without a usable answer).
async fn wait_for_ack(
    nc: &mut NewCall,
    call_id: &str,
    offer: Option<Negotiated>,
) -> Option<Negotiated> {
    let deadline = tokio::time::Instant::now() + ACK_WAIT;
    loop {
        let m = tokio::select! {
            m = nc.inbox.recv() => m?,
            _ = tokio::time::sleep_until(deadline) => return None,
        };
        match m {
            ToCall::Ack(ack) => {
                return match offer {
                    Some(n) => Some(n),
                    None => sdp::parse_offer(&ack.body)
                        .and_then(|r| sdp::accept_answer(&r, &CODECS))
                        .ok(),
                };
            }
            ToCall::AckTimeout => return None,
            ToCall::Request { key, req } => {
                let resp = Response::for_request(&req, 200, "OK");
                nc.sip.respond(&key, nc.peer, call_id, resp);
            }
            _ => {}
        }
    }
}

/// Plays `tone` to the phone; true when the phone hung up meanwhile.
async fn play(
    deps: &CallDeps,
    nc: &mut NewCall,
    call_id: &str,
    n: Negotiated,
    port: crate::media::ports::RtpPort,
    tone: Vec<Prompt>,
) -> bool {
    let length: Duration = tone.iter().map(Prompt::duration).sum();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let params = SessionParams {
        codec: n.codec,
        payload_type: n.pt,
        telephone_event_pt: n.telephone_event_pt,
        remote: n.remote_rtp,
        no_media_timeout: length + Duration::from_secs(10),
        ssrc: rand::random(),
        initial_seq: rand::random(),
        initial_timestamp: rand::random(),
    };
    let id = deps
        .media
        .add(port, Session::new(params, Instant::now()), tx);
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
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(MediaEvent::PlayFinished { id: 1 }) | None => break,
                Some(_) => {}
            },
            m = nc.inbox.recv() => match m {
                Some(ToCall::Request { key, req }) => {
                    let resp = Response::for_request(&req, 200, "OK");
                    nc.sip.respond(&key, nc.peer, call_id, resp);
                    if req.method == Method::Bye {
                        hung_up = true;
                        break;
                    }
                }
                Some(_) => {}
                None => {
                    hung_up = true;
                    break;
                }
            },
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    deps.media.remove(id);
    hung_up
}

/// Hangs up and waits for the BYE's final answer, so the response still finds the call.
async fn bye(nc: &mut NewCall, dialog: &mut Dialog, advertised: IpAddr, call_id: &str) {
    let req = dialog.request(Method::Bye, our_via(&nc.peer, advertised), None);
    nc.sip.request(call_id, nc.peer, req);
    let until = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        tokio::select! {
            m = nc.inbox.recv() => match m {
                Some(ToCall::Response(r)) if r.status >= 200 => return,
                Some(ToCall::RequestTimeout) | None => return,
                Some(ToCall::Request { key, req }) => {
                    // A BYE crossing ours.
                    let resp = Response::for_request(&req, 200, "OK");
                    nc.sip.respond(&key, nc.peer, call_id, resp);
                }
                Some(_) => {}
            },
            _ = tokio::time::sleep_until(until) => return,
        }
    }
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
