//! An outgoing call leg placed by a call task: the B2BUA's second half, used by `transfer`
//! (and by agent offers and call backs). Every SIP decision is the pure
//! [`LegCore`](crate::sip::leg::LegCore)'s; this shell finds where to send (DNS), takes the
//! leg's RTP port, sends what the core decides through the endpoint, and once answered
//! runs its media session on the same media worker as the caller's, so the two can be
//! bridged on the media clock.
//!
//! The owning call task feeds it what the endpoint routes to the leg (`ToCall::Leg`) and
//! its due timers (the call's one sleep covers the legs' [`Leg::poll_timeout`]), and acts
//! on what it reports; the leg never talks to the caller's side itself, and never sets a
//! timer of its own.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use crate::call::CallDeps;
use crate::config::Protocol;
use crate::mailbox::Mailbox;
use crate::media::clock::SessionId;
use crate::media::ports::RtpPort;
use crate::media::session::{MediaEvent, SessionCommand};
use crate::sip::endpoint::{SipHandle, ToCall, our_contact, our_via};
use crate::sip::leg::{LegCore, LegEvent, LegInput, LegOutput, LegParams};
use crate::sip::message::{Host, NameAddr, Uri};
use crate::sip::random_token;
use crate::sip::sdes::SrtpPolicy;
use crate::sip::transaction::TimerConfig;
use crate::sip::transport::Peer;
use crate::sip::uac::{LegFailure, LegState};
use crate::sip::uas::{LocalMedia, Uas};

/// Why a leg could not be placed at all.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error("target '{0}' is not a SIP URI with a host")]
    BadTarget(String),
    #[error("cannot reach '{target}' over TLS: {source}")]
    Tls {
        target: String,
        source: crate::sip::transport::ConnectError,
    },
    #[error("cannot resolve '{host}': {why}")]
    Resolve { host: String, why: String },
    #[error("no UDP listener to send from")]
    NoListener,
    #[error("no RTP port free: {0}")]
    NoPort(String),
}

pub use crate::sip::leg::LegNews;

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
    pub listeners: &'a [(Protocol, SocketAddr)],
    /// The listener the caller came in on; preferred when it is UDP.
    pub prefer: Option<Peer>,
    /// Where to send, when known (an agent's registration: NAT-safe, and over the
    /// phone's own TCP connection if it registered over TCP).
    pub via: Option<Peer>,
    pub public_address: Option<IpAddr>,
    pub no_media_timeout: Duration,
    /// Whether the far end may take `caller_user` as vouched for (P-Asserted-Identity):
    /// only for the hotline's own number, or a caller's that came from a trusted source.
    pub assert_identity: bool,
    /// Offer SRTP (`RTP/SAVP` with an SDES key) and accept only an SRTP answer (an agent
    /// with `srtp: true`); otherwise plain RTP.
    pub srtp: bool,
}

/// An answered leg's parts, for a call that makes the leg its own (see [`Leg::adopt`]).
pub(crate) struct Adopted {
    /// The leg's dialog, served as the call's own.
    pub uas: Uas,
    pub session: SessionId,
    pub peer: Peer,
}

pub struct Leg {
    pub call_id: String,
    core: LegCore,
    peer: Peer,
    port: Option<RtpPort>,
    session: Option<SessionId>,
    no_media_timeout: Duration,
    sip: SipHandle,
    owner: String,
    /// Our BYE or CANCEL went out and the leg's end is awaited.
    pub closing: bool,
}

/// Whether requests to `uri` must go over TLS: a `sips:` URI, or `;transport=tls`.
fn needs_tls(uri: &Uri) -> bool {
    uri.scheme().eq_ignore_ascii_case("sips")
        || uri.as_sip().is_some_and(|s| {
            s.params
                .value("transport")
                .is_some_and(|t| t.eq_ignore_ascii_case("tls"))
        })
}

/// Finds where a SIP URI's requests go: its host and port (5060 by default, 5061 over
/// TLS), IP literals as they are, names through the resolver.
async fn resolve(uri: &Uri) -> Result<SocketAddr, PlaceError> {
    let Some(sip) = uri.as_sip() else {
        return Err(PlaceError::BadTarget(uri.to_string()));
    };
    let port = sip.port.unwrap_or(if needs_tls(uri) { 5061 } else { 5060 });
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
        if needs_tls(&uri) {
            // Over TLS or not at all: never the same request in clear.
            let host = uri
                .as_sip()
                .map(|s| match &s.host {
                    Host::Domain(d) => d.clone(),
                    other => other.to_string().trim_matches(['[', ']']).to_owned(),
                })
                .unwrap_or_default();
            let peer = deps
                .transports()
                .connect_tls(remote, &host)
                .await
                .map_err(|source| PlaceError::Tls {
                    target: dial.target.to_owned(),
                    source,
                })?;
            return Leg::start(deps, sip, owner, dial, uri, peer);
        }
        let local = match dial.prefer {
            Some(p) if p.transport == Protocol::Udp && p.local.is_ipv4() == remote.is_ipv4() => {
                p.local
            }
            _ => dial
                .listeners
                .iter()
                .filter(|(t, _)| *t == Protocol::Udp)
                .map(|(_, a)| *a)
                .find(|a| a.is_ipv4() == remote.is_ipv4())
                .ok_or(PlaceError::NoListener)?,
        };
        let peer = Peer {
            transport: Protocol::Udp,
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
        // A fresh random branch is the prefix of every branch of the leg.
        let via = our_via(&peer, advertised);
        let branch_prefix = via.branch().unwrap_or_default().to_string();
        let core = LegCore::new(LegParams {
            target: uri,
            from,
            call_id: call_id.clone(),
            local_tag: random_token(10),
            via,
            branch_prefix,
            contact: our_contact(&peer, advertised),
            media: LocalMedia {
                advertised,
                rtp_port: port.port,
                sdp_session_id: rand::random_range(1..u32::MAX as u64),
                sdp_version: 1,
                srtp: if dial.srtp {
                    SrtpPolicy::Required
                } else {
                    SrtpPolicy::Off
                },
                srtp_key: crate::call::fresh_srtp_key(),
            },
            headers: if dial.assert_identity {
                vec![("P-Asserted-Identity".into(), format!("<{from_uri}>"))]
            } else {
                Vec::new()
            },
            timers: TimerConfig::with_t1(deps.live().config.t1),
        });
        if call_id != owner {
            sip.open_leg(&call_id, owner);
        }
        let mut leg = Leg {
            call_id,
            core,
            peer,
            port: Some(port),
            session: None,
            no_media_timeout: dial.no_media_timeout,
            sip: sip.clone(),
            owner: owner.to_string(),
            closing: false,
        };
        for ev in leg.send() {
            debug!(leg = %leg.call_id, ?ev, "leg event while placing");
        }
        info!(leg = %leg.call_id, target = %dial.target, %remote, "leg placed");
        Ok(leg)
    }

    /// Hands an answered leg's dialog and media to a call that carries on with them as
    /// its own (a call back); the leg keeps its INVITE's side, to acknowledge a repeated
    /// 2xx. `None` before the answer or if it was taken already.
    pub(crate) fn adopt(&mut self) -> Option<Adopted> {
        if self.session.is_none() || self.core.uas().is_none() {
            return None;
        }
        let uas = self.core.take_dialog()?;
        self.closing = false;
        Some(Adopted {
            uas,
            session: self.session.take()?,
            peer: self.peer,
        })
    }

    pub fn state(&self) -> LegState {
        self.core.state()
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
        let now = Instant::now();
        let input = match msg {
            ToCall::Response(resp) => LegInput::Response(resp),
            ToCall::RequestTimeout { key } => LegInput::RequestTimeout { key },
            ToCall::Request { key, req } => LegInput::Request { key, req },
            ToCall::Cancel { key, req } => LegInput::Cancel { key, req },
            ToCall::Ack(ack) => LegInput::Ack(ack),
            // Never routed to a leg: the call that placed it ends it.
            ToCall::Leg { .. } | ToCall::Shutdown => return None,
        };
        self.core.handle(now, input);
        self.carry_out(deps, beside, media_tx)
    }

    /// When the leg's next SIP timer is due (a copy of a 2xx to the far end's re-INVITE,
    /// giving up on a cancelled INVITE). The owning call sleeps until the earliest of its
    /// own timers and its legs', and then calls [`Leg::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    /// The leg's timers that are due at `now` fire; returns the news for the call, as
    /// [`Leg::on_sip`] does.
    pub fn handle_timeout(
        &mut self,
        deps: &CallDeps,
        now: Instant,
        beside: Option<SessionId>,
        media_tx: &Mailbox<MediaEvent>,
    ) -> Option<LegNews> {
        if self.core.poll_timeout().is_none_or(|t| t > now) {
            return None;
        }
        self.core.handle_timeout(now);
        self.carry_out(deps, beside, media_tx)
    }

    /// Sends what the core decided and acts on what it reported; returns the news for the
    /// call (the last, when there are several).
    fn carry_out(
        &mut self,
        deps: &CallDeps,
        beside: Option<SessionId>,
        media_tx: &Mailbox<MediaEvent>,
    ) -> Option<LegNews> {
        let mut news = None;
        // An event may make the core say more (a hang-up for want of a port): loop.
        loop {
            let events = self.send();
            if events.is_empty() {
                break;
            }
            for ev in events {
                if let Some(n) = self.on_event(deps, ev, beside, media_tx) {
                    news = Some(n);
                }
            }
        }
        news
    }

    fn on_event(
        &mut self,
        deps: &CallDeps,
        ev: LegEvent,
        beside: Option<SessionId>,
        media_tx: &Mailbox<MediaEvent>,
    ) -> Option<LegNews> {
        match ev {
            LegEvent::Ringing => Some(LegNews::Ringing),
            LegEvent::Failed(f) => {
                if let LegFailure::Error {
                    status: 488,
                    reason,
                } = &f
                {
                    warn!(leg = %self.call_id, %reason, "answer without usable SDP; hanging up");
                }
                self.port = None;
                Some(LegNews::Failed(f))
            }
            LegEvent::Answered(n) => {
                let Some(port) = self.port.take() else {
                    self.hang_up();
                    return Some(LegNews::Failed(LegFailure::Error {
                        status: 500,
                        reason: "no RTP port".into(),
                    }));
                };
                self.session = Some(crate::call::start_session(
                    deps,
                    port,
                    &n,
                    self.no_media_timeout,
                    crate::call::media_sink(media_tx.clone()),
                    beside,
                    crate::media::session::MediaOrigin::Placed,
                ));
                debug!(leg = %self.call_id, "leg answered");
                Some(LegNews::Answered)
            }
            LegEvent::MediaUpdate {
                remote,
                send,
                reset_latch,
            } => {
                // Hold from the far end: the bridge keeps running, this side just stops
                // sending.
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
                // Whether this is a change of hold is the call's to judge.
                Some(LegNews::Hold { on: !send })
            }
            LegEvent::HungUp => {
                info!(leg = %self.call_id, "far end hung up");
                Some(LegNews::HungUp)
            }
            // Keys from the far end travel in its RTP, relayed by the bridge.
            LegEvent::Refer { target } => Some(LegNews::Refer { target }),
            LegEvent::Key(k) => {
                debug!(leg = %self.call_id, key = %k.as_char(), "INFO key on a leg; not relayed");
                None
            }
            LegEvent::Closed => {
                debug!(leg = %self.call_id, "leg's SIP is over");
                None
            }
        }
    }

    /// Sends the core's messages through the endpoint; returns its events. Then notes
    /// whether the leg is closing.
    fn send(&mut self) -> Vec<LegEvent> {
        let mut events = Vec::new();
        while let Some(o) = self.core.poll_output() {
            match o {
                LegOutput::Request(r) => self.sip.request(&self.call_id, self.peer, r),
                LegOutput::Ack(ack) => self.sip.ack(self.peer, ack),
                LegOutput::Respond { key, resp } => {
                    self.sip.respond(&key, self.peer, &self.call_id, resp)
                }
                LegOutput::Retransmit(resp) => self.sip.send_response(self.peer, resp),
                LegOutput::Event(e) => events.push(e),
            }
        }
        self.closing = self.core.is_closing();
        events
    }

    /// Lets the answered far end transfer the call by REFER to what `targets` allows.
    pub fn accept_refer(&mut self, targets: std::sync::Arc<crate::sip::refer::TransferTargets>) {
        self.core.accept_refer(targets);
    }

    /// Tells the far end how the transfer it asked for goes (a NOTIFY with `status`).
    pub fn notify_refer(&mut self, status: u16, reason: &str) {
        self.core.notify_refer(status, reason);
        for ev in self.send() {
            debug!(leg = %self.call_id, ?ev, "leg event on notify");
        }
    }

    /// Ends the leg whatever its state: CANCEL while it rings, BYE once answered.
    pub fn hang_up(&mut self) {
        self.core.hang_up(Instant::now());
        for ev in self.send() {
            debug!(leg = %self.call_id, ?ev, "leg event on hang-up");
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
