//! An outgoing call leg placed by a call task: the B2BUA's second half, used by `transfer`
//! (and by agent offers). It owns the leg's SIP side (through `sip::uac`, which decides),
//! its RTP port, and once answered its media session on the same media worker as the
//! caller's, so the two can be bridged on the media clock.
//!
//! Once answered, the requests the far end sends in the leg's dialog (BYE, re-INVITE,
//! INFO) are answered by a `sip::uas::Uas` made from that dialog, as for any call; our BYE
//! comes from it too.
//!
//! The owning call task feeds it what the endpoint routes to the leg (`ToCall::Leg`) and
//! acts on what it reports; the leg never talks to the caller's side itself.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use crate::call::CallDeps;
use crate::call::uas_shell::{Addressed, UasShell};
use crate::config::Transport as ListenTransport;
use crate::mailbox::Mailbox;
use crate::media::clock::SessionId;
use crate::media::ports::RtpPort;
use crate::media::session::{MediaEvent, SessionCommand};
use crate::sip::endpoint::{SipHandle, ToCall, our_contact, our_via};
use crate::sip::message::{Host, Method, NameAddr, Request, Response, Uri};
use crate::sip::random_token;
use crate::sip::sdp;
use crate::sip::transaction::TransactionKey;
use crate::sip::transport::Peer;
use crate::sip::uac::{InviteParams, LegEvent, LegFailure, LegOutput, LegState, OutgoingInvite};
use crate::sip::uas::{CODECS, Ending, LocalMedia, Uas, UasEvent, UasState};

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
pub(crate) struct Adopted {
    /// The leg's dialog, served as the call's own.
    pub side: UasShell,
    pub session: SessionId,
    pub peer: Peer,
}

pub struct Leg {
    pub call_id: String,
    uac: OutgoingInvite,
    peer: Peer,
    advertised: IpAddr,
    port: Option<RtpPort>,
    local_rtp_port: u16,
    session: Option<SessionId>,
    /// The answered dialog's server side: what the far end sends in it, and our BYE.
    side: Option<UasShell>,
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
            side: None,
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
    pub(crate) fn adopt(&mut self) -> Option<Adopted> {
        if self.side.is_none() || self.session.is_none() {
            return None;
        }
        Some(Adopted {
            side: self.side.take()?,
            session: self.session.take()?,
            peer: self.peer,
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
        media_tx: &Mailbox<MediaEvent>,
    ) -> Option<LegNews> {
        match msg {
            ToCall::Response(resp) => self.on_response(deps, &resp, beside, media_tx),
            ToCall::RequestTimeout => {
                if self.closing {
                    self.closing = false;
                    if let Some(side) = self.side.as_mut() {
                        side.handle(Instant::now(), crate::sip::uas::UasInput::RequestTimeout);
                    }
                    return None;
                }
                self.uac
                    .on_timeout()
                    .map(|e| self.news(deps, e, beside, media_tx))
            }
            ToCall::Request { key, req } => self.on_request(deps, ToCall::Request { key, req }),
            ToCall::Cancel { key, req } => self.on_request(deps, ToCall::Cancel { key, req }),
            ToCall::Ack(_) | ToCall::AckTimeout | ToCall::Leg { .. } => None,
        }
    }

    fn on_response(
        &mut self,
        deps: &CallDeps,
        resp: &Response,
        beside: Option<SessionId>,
        media_tx: &Mailbox<MediaEvent>,
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
            if let Some(side) = self.side.as_mut() {
                side.handle(
                    Instant::now(),
                    crate::sip::uas::UasInput::Response(resp.clone()),
                );
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
        media_tx: &Mailbox<MediaEvent>,
    ) -> LegNews {
        match ev {
            LegEvent::Ringing => LegNews::Ringing,
            LegEvent::Failed(f) => {
                self.port = None;
                LegNews::Failed(f)
            }
            LegEvent::Answered { sdp: body } => {
                let neg = sdp::parse_offer(&body).and_then(|r| sdp::accept_answer(&r, &CODECS));
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
                self.session = Some(crate::call::start_session(
                    deps,
                    port,
                    &neg,
                    self.no_media_timeout,
                    crate::call::media_sink(media_tx.clone()),
                    beside,
                ));
                if let Some(dialog) = self.uac.dialog() {
                    let media = LocalMedia {
                        advertised: self.advertised,
                        rtp_port: self.local_rtp_port,
                        sdp_session_id: self.sdp_session_id,
                        sdp_version: 1,
                    };
                    let contact = our_contact(&self.peer, self.advertised);
                    let uas = Uas::in_dialog(dialog.clone(), contact, media, Some(neg));
                    self.side = Some(UasShell::new(
                        uas,
                        self.sip.clone(),
                        self.peer,
                        self.advertised,
                        &self.call_id,
                    ));
                }
                debug!(leg = %self.call_id, "leg answered");
                LegNews::Answered
            }
        }
    }

    /// A request in the leg's dialog: its UAS answers it once the leg is answered.
    fn on_request(&mut self, deps: &CallDeps, m: ToCall) -> Option<LegNews> {
        let Some(side) = self.side.as_mut() else {
            if let ToCall::Request { key, req } | ToCall::Cancel { key, req } = m {
                self.reply(&key, &req, 481, "Call/Transaction Does Not Exist");
            }
            return None;
        };
        let Addressed::Dialog(input) = UasShell::input(m) else {
            return None;
        };
        let mut news = None;
        for ev in side.handle(Instant::now(), input) {
            match ev {
                UasEvent::Ended(Ending::RemoteBye) => {
                    self.uac.remote_hung_up();
                    info!(leg = %self.call_id, "far end hung up");
                    news = Some(LegNews::HungUp);
                }
                UasEvent::MediaUpdate {
                    remote,
                    send,
                    reset_latch,
                } => {
                    // Hold from the far end: the bridge keeps running, this side just
                    // stops sending.
                    if let Some(s) = self.session {
                        deps.media.command(
                            s,
                            SessionCommand::Update {
                                remote,
                                send,
                                reset_latch,
                            },
                        );
                    }
                }
                // Keys from the far end travel in its RTP, relayed by the bridge.
                _ => {}
            }
        }
        news
    }

    /// A refusal for a request outside any dialog of ours (before the answer).
    fn reply(&self, key: &TransactionKey, req: &Request, status: u16, reason: &str) {
        let mut r = Response::for_request(req, status, reason);
        let _ = r.headers.ensure_to_tag(&random_token(10));
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
        if let Some(side) = self.side.as_mut()
            && side.uas.state() == UasState::Confirmed
        {
            // Answered: the BYE comes from the dialog's own side, which also answers a
            // BYE that crosses it; the INVITE client is done with.
            self.uac.remote_hung_up();
            side.hang_up(Instant::now());
            self.closing = true;
            return;
        }
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
