//! An outgoing call leg placed by a call task: the B2BUA's second half, used by `transfer`
//! (and by agent offers). It owns the leg's SIP side (through `sip::uac`, which decides),
//! its RTP port, and once answered its media session on the same media worker as the
//! caller's, so the two can be bridged on the media clock.
//!
//! The owning call task feeds it what the endpoint routes to the leg (`ToCall::Leg`) and
//! acts on what it reports; the leg never talks to the caller's side itself.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, info, warn};

use crate::call::CallDeps;
use crate::config::Transport as ListenTransport;
use crate::media::clock::SessionId;
use crate::media::ports::RtpPort;
use crate::media::session::{MediaEvent, Session, SessionParams};
use crate::sip::dialog::Dialog;
use crate::sip::endpoint::{SipHandle, ToCall, our_contact, our_via};
use crate::sip::message::{HeaderName, Host, Method, NameAddr, Request, Response, Uri};
use crate::sip::random_token;
use crate::sip::sdp::{self, Codec, Negotiated};
use crate::sip::transaction::TransactionKey;
use crate::sip::transport::Peer;
use crate::sip::uac::{InviteParams, LegEvent, LegFailure, LegOutput, LegState, OutgoingInvite};

/// The codecs we offer on a leg.
const OFFERED: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];

/// Why a leg could not be placed at all.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error("target '{0}' is not a SIP URI with a host")]
    BadTarget(String),
    #[error("'{0}' needs TLS, which outgoing legs do not support")]
    Tls(String),
    #[error("cannot resolve '{host}': {why}")]
    Resolve { host: String, why: String },
    #[error("no UDP listener to send from")]
    NoListener,
    #[error("no RTP port free: {0}")]
    NoPort(String),
}

/// What the leg reports to its call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegNews {
    Ringing,
    /// Answered, and media is set up; bridge it when ready.
    Answered,
    Failed(LegFailure),
    /// The far end hung up after answering.
    HungUp,
}

/// Where and how to call.
pub struct Dial<'a> {
    pub target: &'a str,
    /// The leg's Call-ID; a fresh one when `None`. A call back is placed with its own id
    /// as owner and Call-ID, so what arrives for it reaches its inbox unwrapped.
    pub call_id: Option<&'a str>,
    /// The caller, shown to the far end in From and P-Asserted-Identity.
    pub caller_user: &'a str,
    pub caller_display: Option<&'a str>,
    /// The engine's SIP listeners (the leg leaves from a UDP one).
    pub listeners: &'a [(ListenTransport, SocketAddr)],
    /// The listener the caller came in on; preferred when it is UDP.
    pub prefer: Option<Peer>,
    /// Where to send, when known (an agent's registration: NAT-safe, and over the
    /// phone's own TCP connection if it registered over TCP).
    pub via: Option<Peer>,
    pub public_address: Option<IpAddr>,
    pub no_media_timeout: Duration,
}

/// An answered leg's parts, for a call that makes the leg its own (see [`Leg::adopt`]).
pub struct Adopted {
    pub dialog: Dialog,
    pub session: SessionId,
    pub negotiated: Option<Negotiated>,
    pub peer: Peer,
    pub advertised: IpAddr,
    pub local_rtp_port: u16,
    pub sdp_session_id: u64,
}

pub struct Leg {
    pub call_id: String,
    uac: OutgoingInvite,
    peer: Peer,
    advertised: IpAddr,
    port: Option<RtpPort>,
    local_rtp_port: u16,
    session: Option<SessionId>,
    negotiated: Option<Negotiated>,
    sdp_session_id: u64,
    no_media_timeout: Duration,
    sip: SipHandle,
    owner: String,
    /// Our BYE or CANCEL went out and its answer is awaited.
    pub closing: bool,
}

/// Finds where a SIP URI's requests go: its host and port (5060 by default), IP literals
/// as they are, names through the resolver.
async fn resolve(uri: &Uri) -> Result<SocketAddr, PlaceError> {
    let Some(sip) = uri.as_sip() else {
        return Err(PlaceError::BadTarget(uri.to_string()));
    };
    if uri.scheme().eq_ignore_ascii_case("sips") {
        return Err(PlaceError::Tls(uri.to_string()));
    }
    let port = sip.port.unwrap_or(5060);
    let host = match &sip.host {
        Host::Ipv4(ip) => return Ok(SocketAddr::new(IpAddr::V4(*ip), port)),
        Host::Ipv6(ip) => return Ok(SocketAddr::new(IpAddr::V6(*ip), port)),
        Host::Domain(d) => d.clone(),
    };
    let lookup = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::lookup_host((host.clone(), port)),
    )
    .await;
    match lookup {
        Ok(Ok(mut addrs)) => addrs.next().ok_or(PlaceError::Resolve {
            host,
            why: "no address".into(),
        }),
        Ok(Err(e)) => Err(PlaceError::Resolve {
            host,
            why: e.to_string(),
        }),
        Err(_) => Err(PlaceError::Resolve {
            host,
            why: "timed out".into(),
        }),
    }
}

impl Leg {
    /// Sends the INVITE. The endpoint routes the leg's messages to call `owner`'s inbox.
    pub async fn place(
        deps: &Arc<CallDeps>,
        sip: &SipHandle,
        owner: &str,
        dial: Dial<'_>,
    ) -> Result<Leg, PlaceError> {
        let uri = Uri::parse(dial.target).map_err(|_| PlaceError::BadTarget(dial.target.into()))?;
        if let Some(peer) = dial.via {
            return Leg::start(deps, sip, owner, dial, uri, peer);
        }
        let remote = resolve(&uri).await?;
        let local = match dial.prefer {
            Some(p)
                if p.transport == ListenTransport::Udp && p.local.is_ipv4() == remote.is_ipv4() =>
            {
                p.local
            }
            _ => dial
                .listeners
                .iter()
                .filter(|(t, _)| *t == ListenTransport::Udp)
                .map(|(_, a)| *a)
                .find(|a| a.is_ipv4() == remote.is_ipv4())
                .ok_or(PlaceError::NoListener)?,
        };
        let peer = Peer {
            transport: ListenTransport::Udp,
            remote,
            local,
        };
        Leg::start(deps, sip, owner, dial, uri, peer)
    }

    fn start(
        deps: &Arc<CallDeps>,
        sip: &SipHandle,
        owner: &str,
        dial: Dial<'_>,
        uri: Uri,
        peer: Peer,
    ) -> Result<Leg, PlaceError> {
        let (local, remote) = (peer.local, peer.remote);
        let advertised = crate::call::advertised_ip(dial.public_address, local, remote);
        let port = deps
            .ports
            .allocate(local.ip())
            .map_err(|e| PlaceError::NoPort(e.to_string()))?;
        let local_rtp_port = port.port;
        let sdp_session_id = rand::random_range(1..u32::MAX as u64);
        let call_id = dial
            .call_id
            .map_or_else(|| format!("{}@hotline", random_token(20)), str::to_string);
        let mut from_uri = Uri::sip(Some(dial.caller_user), Host::from(advertised), None);
        if dial.caller_user.is_empty() {
            from_uri = Uri::sip(Some("anonymous"), Host::from(advertised), None);
        }
        let mut from = NameAddr::new(from_uri.clone());
        if let Some(d) = dial.caller_display.filter(|d| !d.is_empty()) {
            from = from.with_display_name(d);
        }
        let (uac, invite) = OutgoingInvite::new(InviteParams {
            target: uri,
            from,
            call_id: call_id.clone(),
            local_tag: random_token(10),
            cseq: 1,
            via: our_via(&peer, advertised),
            contact: our_contact(&peer, advertised),
            sdp: sdp::build_offer(advertised, local_rtp_port, sdp_session_id, 1),
            headers: vec![("P-Asserted-Identity".into(), format!("<{from_uri}>"))],
        });
        if call_id != owner {
            sip.open_leg(&call_id, owner);
        }
        sip.request(&call_id, peer, invite);
        info!(leg = %call_id, target = %dial.target, %remote, "leg placed");
        Ok(Leg {
            call_id,
            uac,
            peer,
            advertised,
            port: Some(port),
            local_rtp_port,
            session: None,
            negotiated: None,
            sdp_session_id,
            no_media_timeout: dial.no_media_timeout,
            sip: sip.clone(),
            owner: owner.to_string(),
            closing: false,
        })
    }

    /// Hands an answered leg's dialog and media to a call that carries on with them as
    /// its own (a call back); the leg keeps its INVITE client, to acknowledge a repeated
    /// 2xx. `None` before the answer or if it was taken already.
    pub fn adopt(&mut self) -> Option<Adopted> {
        Some(Adopted {
            dialog: self.uac.dialog()?.clone(),
            session: self.session.take()?,
            negotiated: self.negotiated.clone(),
            peer: self.peer,
            advertised: self.advertised,
            local_rtp_port: self.local_rtp_port,
            sdp_session_id: self.sdp_session_id,
        })
    }

    pub fn state(&self) -> LegState {
        self.uac.state()
    }

    pub fn session(&self) -> Option<SessionId> {
        self.session
    }

    /// Something the endpoint routed to this leg. `beside` is the caller's media session,
    /// so an answered leg's session lands on the same media worker.
    pub fn on_sip(
        &mut self,
        deps: &CallDeps,
        msg: ToCall,
        beside: Option<SessionId>,
        media_tx: &UnboundedSender<MediaEvent>,
    ) -> Option<LegNews> {
        match msg {
            ToCall::Response(resp) => self.on_response(deps, &resp, beside, media_tx),
            ToCall::RequestTimeout => {
                if self.closing {
                    self.closing = false;
                    return None;
                }
                self.uac
                    .on_timeout()
                    .map(|e| self.news(deps, e, beside, media_tx))
            }
            ToCall::Request { key, req } => self.on_request(key, req),
            ToCall::Cancel { key, req } => {
                // Nobody may cancel an INVITE we did not receive.
                self.reply(&key, &req, 481, "Call/Transaction Does Not Exist");
                None
            }
            ToCall::Ack(_) | ToCall::AckTimeout | ToCall::Leg { .. } => None,
        }
    }

    fn on_response(
        &mut self,
        deps: &CallDeps,
        resp: &Response,
        beside: Option<SessionId>,
        media_tx: &UnboundedSender<MediaEvent>,
    ) -> Option<LegNews> {
        let is_invite = resp
            .headers
            .cseq()
            .is_ok_and(|c| c.method == Method::Invite);
        if !is_invite {
            // The answer to our BYE or CANCEL.
            if resp.status >= 200 {
                self.closing = false;
            }
            return None;
        }
        let mut out = Vec::new();
        let (peer, adv) = (self.peer, self.advertised);
        let ev = self.uac.on_response(resp, || our_via(&peer, adv), &mut out);
        self.send_outputs(out);
        let ev = ev?;
        Some(self.news(deps, ev, beside, media_tx))
    }

    fn news(
        &mut self,
        deps: &CallDeps,
        ev: LegEvent,
        beside: Option<SessionId>,
        media_tx: &UnboundedSender<MediaEvent>,
    ) -> LegNews {
        match ev {
            LegEvent::Ringing => LegNews::Ringing,
            LegEvent::Failed(f) => {
                self.port = None;
                LegNews::Failed(f)
            }
            LegEvent::Answered { sdp: body } => {
                let neg = sdp::parse_offer(&body).and_then(|r| sdp::accept_answer(&r, &OFFERED));
                let (neg, port) = match (neg, self.port.take()) {
                    (Ok(n), Some(p)) => (n, p),
                    (Err(e), _) => {
                        warn!(leg = %self.call_id, error = %e, "answer without usable SDP; hanging up");
                        self.hang_up();
                        return LegNews::Failed(LegFailure::Error {
                            status: 488,
                            reason: format!("unusable SDP answer: {e}"),
                        });
                    }
                    (Ok(_), None) => {
                        self.hang_up();
                        return LegNews::Failed(LegFailure::Error {
                            status: 500,
                            reason: "no RTP port".into(),
                        });
                    }
                };
                let params = SessionParams {
                    codec: neg.codec,
                    payload_type: neg.pt,
                    telephone_event_pt: neg.telephone_event_pt,
                    remote: neg.remote_rtp,
                    no_media_timeout: self.no_media_timeout,
                    ssrc: rand::random(),
                    initial_seq: rand::random(),
                    initial_timestamp: rand::random(),
                };
                let session = Session::new(params, Instant::now());
                self.negotiated = Some(neg);
                self.session = Some(match beside {
                    Some(b) => deps.media.add_beside(b, port, session, media_tx.clone()),
                    None => deps.media.add(port, session, media_tx.clone()),
                });
                debug!(leg = %self.call_id, "leg answered");
                LegNews::Answered
            }
        }
    }

    fn on_request(&mut self, key: TransactionKey, req: Request) -> Option<LegNews> {
        if self.uac.accept_request(&req).is_err() {
            self.reply(&key, &req, 481, "Call/Transaction Does Not Exist");
            return None;
        }
        match req.method {
            Method::Bye => {
                self.reply(&key, &req, 200, "OK");
                self.uac.remote_hung_up();
                info!(leg = %self.call_id, "far end hung up");
                Some(LegNews::HungUp)
            }
            Method::Invite => {
                // A refresh or hold from the far end: answer with the same session; the
                // bridge keeps running (a held phone simply sends nothing).
                let body =
                    sdp::build_offer(self.advertised, self.local_rtp_port, self.sdp_session_id, 2);
                let mut r = self.response(&req, 200, "OK");
                let contact = our_contact(&self.peer, self.advertised);
                r.headers.push(HeaderName::Contact, format!("<{contact}>"));
                r.set_body(
                    &crate::sip::message::ContentType::new("application", "sdp"),
                    body,
                );
                self.sip.respond(&key, self.peer, &self.call_id, r);
                None
            }
            Method::Ack => None,
            _ => {
                self.reply(&key, &req, 200, "OK");
                None
            }
        }
    }

    fn response(&self, req: &Request, status: u16, reason: &str) -> Response {
        let mut r = Response::for_request(req, status, reason);
        if let Some(d) = self.uac.dialog() {
            let _ = r.headers.ensure_to_tag(&d.local_tag);
        }
        r
    }

    fn reply(&self, key: &TransactionKey, req: &Request, status: u16, reason: &str) {
        let r = self.response(req, status, reason);
        self.sip.respond(key, self.peer, &self.call_id, r);
    }

    fn send_outputs(&mut self, out: Vec<LegOutput>) {
        for o in out {
            match o {
                LegOutput::Ack(ack) => self.sip.ack(self.peer, ack),
                LegOutput::Request(r) => {
                    self.closing = true;
                    self.sip.request(&self.call_id, self.peer, r);
                }
            }
        }
    }

    /// Ends the leg whatever its state: CANCEL while it rings, BYE once answered.
    pub fn hang_up(&mut self) {
        let (peer, adv) = (self.peer, self.advertised);
        if let Some(o) = self.uac.cancel(|| our_via(&peer, adv)) {
            self.send_outputs(vec![o]);
        }
    }

    /// Frees the leg's media and its routing; call after `hang_up` and once its answer
    /// came (or was given up on).
    pub fn close(&mut self, deps: &CallDeps) {
        if let Some(s) = self.session.take() {
            deps.media.remove(s);
        }
        self.port = None;
        self.sip.close_leg(&self.call_id);
        debug!(leg = %self.call_id, owner = %self.owner, "leg closed");
    }
}
