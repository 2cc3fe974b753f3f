//! The IO of an outgoing call leg (the B2BUA's second half: a transfer's target, an
//! agent's phone, a caller called back). Every SIP decision is the pure
//! [`LegCore`](crate::sip::leg::LegCore)'s, held by the call's core (or, for a call back
//! before its call exists, by `call::callback`); this shell places the leg: it finds
//! where to send (DNS, a TLS connection, a listener), takes the leg's RTP port, draws its
//! random Call-ID, tag, branch prefix and SDP ids and routes the leg's messages to its
//! call ([`Leg::place`] returns the [`LegParams`] to build the machine from). It sends the
//! machine's messages through the endpoint ([`send`]), and once answered runs the leg's
//! media session on the same media worker as the caller's, so the two can be bridged on
//! the media clock. It makes no decision and sets no timer of its own.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, info, warn};

use crate::call::CallDeps;
use crate::config::Protocol;
use crate::mailbox::Mailbox;
use crate::media::clock::SessionId;
use crate::media::ports::RtpPort;
use crate::media::session::{MediaEvent, SessionCommand};
use crate::sip::endpoint::{SipHandle, ToCall, our_contact, our_via};
use crate::sip::leg::{LegInput, LegOutput, LegParams};
use crate::sip::message::{Host, NameAddr, Uri};
use crate::sip::random_token;
use crate::sip::sdes::SrtpPolicy;
use crate::sip::sdp::Negotiated;
use crate::sip::transaction::TimerConfig;
use crate::sip::transport::Peer;
use crate::sip::uas::LocalMedia;

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

/// What a placed leg holds for its IO: where its messages go, its RTP port until the
/// answer, then its media session.
pub struct Leg {
    pub call_id: String,
    pub peer: Peer,
    port: Option<RtpPort>,
    session: Option<SessionId>,
    no_media_timeout: Duration,
    sip: SipHandle,
    owner: String,
}

/// Sends a message of the leg `call_id` to `peer` through the endpoint, as its SIP
/// machine asked (an event is not a message: nothing is sent).
pub fn send(sip: &SipHandle, call_id: &str, peer: Peer, out: LegOutput) {
    match out {
        LegOutput::Request(r) => sip.request(call_id, peer, r),
        LegOutput::Ack(ack) => sip.ack(peer, ack),
        LegOutput::Respond { key, resp } => sip.respond(&key, peer, call_id, resp),
        LegOutput::Retransmit(resp) => sip.send_response(peer, resp),
        LegOutput::Event(_) => {}
    }
}

/// What the endpoint routed to a leg, as its SIP machine's input; `None` for what is
/// never routed to a leg (the call that placed it ends it).
pub fn leg_input(msg: ToCall) -> Option<LegInput> {
    Some(match msg {
        ToCall::Response(resp) => LegInput::Response(resp),
        ToCall::RequestTimeout { key } => LegInput::RequestTimeout { key },
        ToCall::Request { key, req } => LegInput::Request { key, req },
        ToCall::Cancel { key, req } => LegInput::Cancel { key, req },
        ToCall::Ack(ack) => LegInput::Ack(ack),
        ToCall::Leg { .. } | ToCall::Shutdown => return None,
    })
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
    /// Gets the leg ready to call: its target resolved, its port taken, its ids drawn, and
    /// the endpoint told to route its messages to call `owner`. Returns what its SIP
    /// machine is built from (the machine's first output is the INVITE).
    pub async fn place(
        deps: &Arc<CallDeps>,
        sip: &SipHandle,
        owner: &str,
        dial: Dial<'_>,
    ) -> Result<(Leg, LegParams), PlaceError> {
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
    ) -> Result<(Leg, LegParams), PlaceError> {
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
        let params = LegParams {
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
            refer: None,
        };
        if call_id != owner {
            sip.open_leg(&call_id, owner);
        }
        let leg = Leg {
            call_id,
            peer,
            port: Some(port),
            session: None,
            no_media_timeout: dial.no_media_timeout,
            sip: sip.clone(),
            owner: owner.to_string(),
        };
        info!(leg = %leg.call_id, target = %dial.target, %remote, "leg placed");
        Ok((leg, params))
    }

    pub fn session(&self) -> Option<SessionId> {
        self.session
    }

    /// Sends a message of the leg's SIP machine to its peer (see [`send`]).
    pub fn send(&self, out: LegOutput) {
        send(&self.sip, &self.call_id, self.peer, out)
    }

    /// Hands the leg's RTP port to a call that makes the leg's media its own (a call back,
    /// whose caller's media is the call's).
    pub(crate) fn take_port(&mut self) -> Option<RtpPort> {
        self.port.take()
    }

    /// The leg was answered with `agreed`: its media session starts on the RTP port taken
    /// when it was placed, on the same media worker as `beside` (the caller's session),
    /// and reports to `media_tx`. False if it has no port (any more).
    pub fn start_media(
        &mut self,
        deps: &CallDeps,
        agreed: &Negotiated,
        beside: Option<SessionId>,
        media_tx: &Mailbox<MediaEvent>,
    ) -> bool {
        let Some(port) = self.port.take() else {
            warn!(leg = %self.call_id, "answered, but no RTP port");
            return false;
        };
        self.session = Some(crate::call::start_session(
            deps,
            port,
            agreed,
            self.no_media_timeout,
            crate::call::media_sink(media_tx.clone()),
            beside,
            crate::media::session::MediaOrigin::Placed,
        ));
        debug!(leg = %self.call_id, "leg answered");
        true
    }

    /// The far end moved or held its media (hold from the far end: the bridge keeps
    /// running, this side just stops sending).
    pub fn update_media(&self, deps: &CallDeps, remote: SocketAddr, send: bool, reset_latch: bool) {
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

    /// Frees the leg's media, its port and its routing: its SIP is over.
    pub fn close(&mut self, deps: &CallDeps) {
        if let Some(s) = self.session.take() {
            deps.media.remove(s);
        }
        self.port = None;
        self.sip.close_leg(&self.call_id);
        debug!(leg = %self.call_id, owner = %self.owner, "leg closed");
    }
}
