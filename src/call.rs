//! One call: the task that joins its dialog, its media session and its flow machine. It
//! answers the INVITE (or refuses it with the right code), turns the flow's actions into
//! media commands and SIP requests, and feeds back keys, prompt ends, timeouts and the
//! caller's requests. It ends the call cleanly from either side and leaves its story.
//!
//! The decisions belong to the pure parts (the flow machine, the dialog, SDP negotiation);
//! this task only carries messages between them and the clocks.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::config::{Config, Transport};
use crate::flow::flowset::FlowSet;
use crate::flow::machine::{
    Action, Audio, CallContext, Event, FlowMachine, HttpFailure, PlayId, RecordEnd, RequestId,
};
use crate::leg::Leg;

mod callback; // calling back a caller who asked to keep their place in a queue
mod legs; // transfer and agent legs, the bridge
mod queue; // the call's time in an agent queue
use crate::media::clock::{MediaEngine, SessionId};
use crate::media::dtmf::Key;
use crate::media::ports::PortPool;
use crate::media::prompt::{Prompt, PromptLibrary};
use crate::media::session::{MediaEvent, Session, SessionCommand, SessionParams};
use crate::sip::ALLOW;
use crate::sip::dialog::{Dialog, DialogError};
use crate::sip::endpoint::{NewCall, SipHandle, ToCall, our_contact, our_via};
use crate::sip::message::{ContentType, HeaderName, Method, Request, Response};
use crate::sip::random_token;
use crate::sip::sdp::{self, Codec, Negotiated};
use crate::sip::transaction::TransactionKey;
use crate::sip::transport::Peer;
pub use callback::call_back;

/// What a reload replaces as one: the configuration, the flows and the prompts. A call
/// takes a snapshot when it starts and keeps it to its end, so editing a flow never changes
/// a call in progress.
pub struct Live {
    pub config: Arc<Config>,
    pub flows: Arc<FlowSet>,
    pub prompts: PromptLibrary,
    /// Counts reloads; 1 is the version the server started with.
    pub version: u64,
    /// When this version went live.
    pub loaded_at: std::time::SystemTime,
}

/// What every call shares: the engine's parts and the current live version.
pub struct CallDeps {
    pub media: MediaEngine,
    pub ports: PortPool,
    /// The HTTP client every `http` step shares (one connection pool).
    pub http: reqwest::Client,
    /// The calls in progress, for the admin.
    pub registry: Arc<crate::registry::Registry>,
    live: RwLock<Arc<Live>>,
    /// The SIP listeners, once bound (outgoing legs leave from one of them).
    listeners: std::sync::OnceLock<Vec<(Transport, SocketAddr)>>,
    /// The agent queues, when configured.
    acd: std::sync::OnceLock<crate::queue::service::AcdHandle>,
    /// The registrar's bindings (feature codes check where an agent's phone is).
    registrations: std::sync::OnceLock<crate::sip::registrar::Registrations>,
    /// The endpoint, for calls the engine places itself (call backs).
    sip: std::sync::OnceLock<SipHandle>,
    /// The registrar's users, when they come from the configuration (a reload replaces
    /// them).
    credentials: std::sync::OnceLock<Arc<crate::sip::registrar::SharedCredentials>>,
}

impl CallDeps {
    pub fn new(media: MediaEngine, ports: PortPool, live: Live) -> CallDeps {
        CallDeps {
            media,
            ports,
            http: crate::webhook::client(),
            registry: crate::registry::Registry::new(),
            live: RwLock::new(Arc::new(live)),
            listeners: std::sync::OnceLock::new(),
            acd: std::sync::OnceLock::new(),
            registrations: std::sync::OnceLock::new(),
            sip: std::sync::OnceLock::new(),
            credentials: std::sync::OnceLock::new(),
        }
    }

    pub fn set_credentials(&self, c: Arc<crate::sip::registrar::SharedCredentials>) {
        let _ = self.credentials.set(c);
    }

    pub fn credentials(&self) -> Option<&crate::sip::registrar::SharedCredentials> {
        self.credentials.get().map(|c| &**c)
    }

    pub fn set_sip(&self, sip: SipHandle) {
        let _ = self.sip.set(sip);
    }

    pub fn sip(&self) -> Option<&SipHandle> {
        self.sip.get()
    }

    pub fn set_registrations(&self, r: crate::sip::registrar::Registrations) {
        let _ = self.registrations.set(r);
    }

    pub fn registrations(&self) -> Option<&crate::sip::registrar::Registrations> {
        self.registrations.get()
    }

    pub fn set_acd(&self, acd: crate::queue::service::AcdHandle) {
        let _ = self.acd.set(acd);
    }

    pub fn acd(&self) -> Option<&crate::queue::service::AcdHandle> {
        self.acd.get()
    }

    /// Records where the engine listens, for outgoing legs.
    pub fn set_listeners(&self, listeners: Vec<(Transport, SocketAddr)>) {
        let _ = self.listeners.set(listeners);
    }

    pub fn listeners(&self) -> &[(Transport, SocketAddr)] {
        self.listeners.get().map(Vec::as_slice).unwrap_or(&[])
    }

    /// The current version (what a new call gets).
    pub fn live(&self) -> Arc<Live> {
        self.live
            .read()
            .map(|l| l.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Makes `live` the version new calls get.
    pub fn replace(&self, live: Live) {
        let mut slot = self.live.write().unwrap_or_else(|e| e.into_inner());
        *slot = Arc::new(live);
    }
}

/// The codecs we answer with, in our order of preference when the caller has none.
const CODECS: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];

/// How a call ended, for its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    CallerHungUp,
    FlowHungUp,
    NoMedia,
    AckTimeout,
    /// A transfer target or agent the caller was bridged to hung up.
    FarEndHungUp,
}

/// The play id of the ringback tone a caller hears while a transfer rings; the flow
/// machine never sees it.
const RINGBACK_PLAY: u64 = u64::MAX - 1;

/// The IP address our SDP and Contact should show to `remote`: the configured public
/// address, the listener's own address, or the one the kernel would route from.
pub fn advertised_ip(public: Option<IpAddr>, local: SocketAddr, remote: SocketAddr) -> IpAddr {
    if let Some(ip) = public {
        return ip;
    }
    if !local.ip().is_unspecified() {
        return local.ip();
    }
    // Connecting a UDP socket sends nothing; it only asks the kernel for the route.
    let probe = if remote.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    UdpSocket::bind(probe)
        .and_then(|s| {
            s.connect(remote)?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .unwrap_or(local.ip())
}

/// Reads a key from a SIP INFO body: `application/dtmf-relay` (`Signal=5`) or
/// `application/dtmf` (`5`).
pub fn info_key(content_type: Option<&ContentType>, body: &[u8]) -> Option<Key> {
    let ct = content_type?;
    let text = std::str::from_utf8(body).ok()?;
    let signal = if ct.is("application", "dtmf-relay") {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("signal")
                .then(|| v.trim().to_string())
        })?
    } else if ct.is("application", "dtmf") {
        text.trim().to_string()
    } else {
        return None;
    };
    let mut chars = signal.chars();
    let c = chars.next()?;
    if chars.next().is_some() {
        // RFC 2833-style event numbers ("Signal=11" for #) are seen from some gateways.
        return signal.parse::<u8>().ok().and_then(Key::from_event_code);
    }
    Key::from_char(c)
}

/// How the call began. One per call, made once: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Origin {
    /// The caller called: its INVITE, which the call answers.
    Called {
        invite: Request,
        key: TransactionKey,
    },
    /// hotline called the caller back (see `callback`).
    CalledBack(callback::CalledBack),
}

/// What a call is made of when it starts; the rest of [`Call`] starts empty.
struct Start {
    deps: Arc<CallDeps>,
    live: Arc<Live>,
    sip: SipHandle,
    peer: Peer,
    advertised: IpAddr,
    call_id: String,
    dialog: Dialog,
    origin: Origin,
    inbox: mpsc::UnboundedReceiver<ToCall>,
    media: (
        mpsc::UnboundedSender<MediaEvent>,
        mpsc::UnboundedReceiver<MediaEvent>,
    ),
    caller: String,
    caller_display: Option<String>,
    local_rtp_port: u16,
    sdp_session_id: u64,
    flow_name: String,
    machine: Option<FlowMachine>,
    registration: crate::registry::Registration,
}

struct Call {
    deps: Arc<CallDeps>,
    live: Arc<Live>,
    sip: SipHandle,
    peer: Peer,
    advertised: IpAddr,
    call_id: String,
    dialog: Dialog,
    origin: Origin,
    inbox: mpsc::UnboundedReceiver<ToCall>,
    media_rx: mpsc::UnboundedReceiver<MediaEvent>,
    media_tx: mpsc::UnboundedSender<MediaEvent>,
    session: Option<SessionId>,
    negotiated: Option<Negotiated>,
    sdp_session_id: u64,
    sdp_version: u64,
    local_rtp_port: u16,
    flow_name: String,
    machine: Option<FlowMachine>,
    outcome: Option<Outcome>,
    bye_sent: bool,
    /// The recording in progress: its id and file name stem.
    recording: Option<(u64, String)>,
    /// Recordings being written; the call waits for them before it ends.
    pending_writes: Vec<tokio::task::JoinHandle<()>>,
    /// Results of IO the call started (HTTP answers, saved recordings) for the machine.
    io_tx: mpsc::UnboundedSender<Event>,
    io_rx: mpsc::UnboundedReceiver<Event>,
    started: Instant,
    caller: String,
    caller_display: Option<String>,
    /// A transfer the flow asked for, placed by the serve loop (it may need a DNS lookup).
    pending_transfer: Option<(RequestId, String, Duration)>,
    /// The legs the call placed (a transfer's, or agents' during a queue).
    legs: Vec<(legs::LegRole, Leg)>,
    /// When an unanswered transfer gives up.
    leg_deadline: Option<Instant>,
    /// Legs hung up whose last answers are awaited.
    old_legs: Vec<Leg>,
    leg_media_tx: mpsc::UnboundedSender<MediaEvent>,
    leg_media_rx: mpsc::UnboundedReceiver<MediaEvent>,
    /// The leg the caller is bridged to.
    bridged_to: Option<legs::LegRole>,
    /// A queue step the flow asked for, joined by the serve loop.
    pending_queue: Option<(RequestId, String, i32, Vec<String>)>,
    queued: Option<queue::Queued>,
    queue_tx: mpsc::UnboundedSender<crate::queue::service::QueueNews>,
    queue_rx: mpsc::UnboundedReceiver<crate::queue::service::QueueNews>,
    /// Lists the call for the admin until the call is dropped.
    registration: crate::registry::Registration,
}

/// Runs one call to its end.
pub async fn run(nc: NewCall, deps: Arc<CallDeps>) {
    let call_id = nc
        .invite
        .headers
        .call_id()
        .map(str::to_string)
        .unwrap_or_default();
    let caller = nc
        .invite
        .headers
        .from_addr()
        .ok()
        .and_then(|f| f.uri.user().map(str::to_string))
        .unwrap_or_default();
    let dialed = nc.invite.uri.user().unwrap_or_default().to_string();
    let span = info_span!("call", %call_id, %caller, %dialed);
    async move {
        let sip = nc.sip.clone();
        let cid = call_id.clone();
        match Call::answer(nc, deps, call_id, caller, dialed).await {
            Some(mut call) => call.serve().await,
            None => sip.ended(&cid),
        }
    }
    .instrument(span)
    .await
}

impl Call {
    fn new(s: Start) -> Call {
        let (media_tx, media_rx) = s.media;
        let (io_tx, io_rx) = mpsc::unbounded_channel();
        let (leg_media_tx, leg_media_rx) = mpsc::unbounded_channel();
        let (queue_tx, queue_rx) = mpsc::unbounded_channel();
        Call {
            deps: s.deps,
            live: s.live,
            sip: s.sip,
            peer: s.peer,
            advertised: s.advertised,
            call_id: s.call_id,
            dialog: s.dialog,
            origin: s.origin,
            inbox: s.inbox,
            media_rx,
            media_tx,
            session: None,
            negotiated: None,
            sdp_session_id: s.sdp_session_id,
            sdp_version: 1,
            local_rtp_port: s.local_rtp_port,
            flow_name: s.flow_name,
            machine: s.machine,
            outcome: None,
            bye_sent: false,
            recording: None,
            pending_writes: Vec::new(),
            io_tx,
            io_rx,
            started: Instant::now(),
            caller: s.caller,
            caller_display: s.caller_display,
            pending_transfer: None,
            legs: Vec::new(),
            leg_deadline: None,
            old_legs: Vec::new(),
            leg_media_tx,
            leg_media_rx,
            bridged_to: None,
            pending_queue: None,
            queued: None,
            queue_tx,
            queue_rx,
            registration: s.registration,
        }
    }

    /// Checks the INVITE, negotiates media and sends 200 OK. Returns None when the call was
    /// refused or cancelled (the response is already sent).
    async fn answer(
        nc: NewCall,
        deps: Arc<CallDeps>,
        call_id: String,
        caller: String,
        dialed: String,
    ) -> Option<Call> {
        let live = deps.live();
        let inv = &nc.invite;
        let refuse = |status: u16, reason: &str, extra: &[(&str, String)]| {
            let mut resp = Response::for_request(inv, status, reason);
            let _ = resp.headers.ensure_to_tag(&random_token(10));
            for (n, v) in extra {
                resp.headers.push(HeaderName::new(n), v.clone());
            }
            info!(status, reason, "call refused");
            nc.sip.respond(&nc.key, nc.peer, &call_id, resp);
        };
        // RFC 3261 §8.2.2.3: we support no extensions a caller could require.
        if let Ok(required) = inv.headers.require()
            && !required.is_empty()
        {
            let list = required.join(", ");
            refuse(420, "Bad Extension", &[("Unsupported", list)]);
            return None;
        }
        let scheme = inv.uri.scheme().to_ascii_lowercase();
        if !matches!(scheme.as_str(), "sip" | "sips" | "tel") {
            refuse(416, "Unsupported URI Scheme", &[]);
            return None;
        }
        if let Some(command) = crate::feature::command_for(&deps, &dialed) {
            crate::feature::serve(nc, deps, call_id, caller, command).await;
            return None;
        }
        let flow_name = match live.config.route(&dialed) {
            Some(f) => f.to_string(),
            None => {
                refuse(404, "Not Found", &[]);
                return None;
            }
        };
        let offer = if inv.body.is_empty() {
            None
        } else {
            let ct = inv.headers.content_type().ok().flatten();
            if !ct.as_ref().is_some_and(|c| c.is("application", "sdp")) {
                refuse(
                    415,
                    "Unsupported Media Type",
                    &[("Accept", "application/sdp".into())],
                );
                return None;
            }
            let neg = sdp::parse_offer(&inv.body).and_then(|r| sdp::negotiate(&r, &CODECS));
            match neg {
                Ok(n) => Some(n),
                Err(e) => {
                    let status = e.status_code();
                    let reason = if status == 488 {
                        "Not Acceptable Here"
                    } else {
                        "Bad Request"
                    };
                    let warning = format!("304 hotline \"{}\"", e.to_string().replace('"', "'"));
                    refuse(status, reason, &[("Warning", warning)]);
                    return None;
                }
            }
        };
        let advertised = advertised_ip(live.config.public_address, nc.peer.local, nc.peer.remote);
        let bind_ip = nc.peer.local.ip();
        let rtp_port = match deps.ports.allocate(bind_ip) {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "no RTP port");
                refuse(503, "Service Unavailable", &[("Retry-After", "10".into())]);
                return None;
            }
        };
        let local_tag = random_token(10);
        let caller_display = inv
            .headers
            .from_addr()
            .ok()
            .and_then(|f| f.display_name.clone());
        let dialog = match Dialog::uas(inv, &local_tag, rand::random_range(1..10_000)) {
            Ok(d) => d,
            Err(e) => {
                refuse(400, &format!("Bad Request ({e})"), &[]);
                return None;
            }
        };
        let registration = deps.registry.register(crate::registry::NewLiveCall {
            call_id: call_id.clone(),
            caller: caller.clone(),
            dialed: dialed.clone(),
            flow: flow_name.clone(),
            version: live.version,
            flows: live.flows.clone(),
            started_at: std::time::SystemTime::now(),
        });
        let flows = live.flows.clone();
        let ctx = CallContext {
            call_id: call_id.clone(),
            caller: caller.clone(),
            dialed,
            wall_clock_at_start: std::time::SystemTime::now().into(),
        };
        let machine = match FlowMachine::new(flows, &flow_name, ctx, Instant::now()) {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, flow = %flow_name, "route names a flow that is not loaded");
                refuse(500, "Server Internal Error", &[]);
                return None;
            }
        };

        let mut call = Call::new(Start {
            sip: nc.sip.clone(),
            peer: nc.peer,
            advertised,
            call_id,
            dialog,
            origin: Origin::Called {
                invite: nc.invite.clone(),
                key: nc.key.clone(),
            },
            inbox: nc.inbox,
            media: mpsc::unbounded_channel(),
            caller,
            caller_display,
            local_rtp_port: rtp_port.port,
            sdp_session_id: rand::random_range(1..u32::MAX as u64),
            flow_name,
            machine: Some(machine),
            registration,
            deps,
            live,
        });

        // Optionally ring first; a CANCEL during the ring ends the call with 487.
        let ring = call.live.config.answer_after;
        if !ring.is_zero() {
            call.respond_invite(180, "Ringing", None);
            let until = tokio::time::Instant::now() + ring;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => break,
                    m = call.inbox.recv() => match m {
                        Some(ToCall::Cancel { key, req }) => {
                            let ok = call.respond(&req, 200, "OK");
                            call.send(&key, ok);
                            call.respond_invite(487, "Request Terminated", None);
                            info!("caller cancelled while ringing");
                            return None;
                        }
                        None => {
                            call.respond_invite(487, "Request Terminated", None);
                            info!("caller cancelled while ringing");
                            return None;
                        }
                        Some(other) => debug!(?other, "ignored while ringing"),
                    }
                }
            }
        }

        let body = match &offer {
            Some(n) => sdp::build_answer(
                advertised,
                call.local_rtp_port,
                n,
                call.sdp_session_id,
                call.sdp_version,
            ),
            None => sdp::build_offer(
                advertised,
                call.local_rtp_port,
                call.sdp_session_id,
                call.sdp_version,
            ),
        };
        call.respond_invite(200, "OK", Some(body));
        info!(flow = %call.flow_name, late_offer = offer.is_none(), "answered");
        match offer {
            Some(n) => call.start_media(n, rtp_port),
            None => {
                // Late offer: the answer comes in the ACK.
                let answer = call.wait_for_late_answer().await;
                match answer {
                    Some(n) => call.start_media(n, rtp_port),
                    None => {
                        call.send_bye();
                        call.finish().await;
                        return None;
                    }
                }
            }
        }
        Some(call)
    }

    fn respond_invite(&self, status: u16, reason: &str, sdp_body: Option<Vec<u8>>) {
        let Origin::Called { invite, key } = &self.origin else {
            return;
        };
        let mut resp = Response::for_request(invite, status, reason);
        let _ = resp.headers.ensure_to_tag(&self.dialog.local_tag);
        if status >= 180 {
            resp.copy_record_route(invite);
            let contact = our_contact(&self.peer, self.advertised);
            resp.headers
                .push(HeaderName::Contact, format!("<{contact}>"));
        }
        if (200..300).contains(&status) {
            resp.headers.push(HeaderName::Allow, ALLOW);
            resp.headers.push(HeaderName::Supported, "");
        }
        if let Some(b) = sdp_body {
            resp.set_body(&ContentType::new("application", "sdp"), b);
        }
        self.sip.respond(key, self.peer, &self.call_id, resp);
    }

    async fn wait_for_late_answer(&mut self) -> Option<Negotiated> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(32);
        loop {
            let m = tokio::select! {
                m = self.inbox.recv() => m?,
                _ = tokio::time::sleep_until(deadline) => return None,
            };
            match m {
                ToCall::Ack(ack) => {
                    let parsed =
                        sdp::parse_offer(&ack.body).and_then(|r| sdp::accept_answer(&r, &CODECS));
                    return match parsed {
                        Ok(n) => Some(n),
                        Err(e) => {
                            warn!(error = %e, "late-offer ACK without a usable answer");
                            None
                        }
                    };
                }
                ToCall::AckTimeout => return None,
                ToCall::Request { key, req } => self.in_dialog_request(key, req),
                _ => {}
            }
        }
    }

    fn start_media(&mut self, n: Negotiated, port: crate::media::ports::RtpPort) {
        let params = SessionParams {
            codec: n.codec,
            payload_type: n.pt,
            telephone_event_pt: n.telephone_event_pt,
            remote: n.remote_rtp,
            no_media_timeout: self.live.config.no_media_timeout,
            ssrc: rand::random(),
            initial_seq: rand::random(),
            initial_timestamp: rand::random(),
        };
        let session = Session::new(params, Instant::now());
        self.session = Some(self.deps.media.add(port, session, self.media_tx.clone()));
        if n.on_hold() {
            self.media(SessionCommand::Update {
                remote: n.remote_rtp,
                send: false,
                reset_latch: false,
            });
        }
        self.negotiated = Some(n);
    }

    fn media(&self, cmd: SessionCommand) {
        if let Some(id) = self.session {
            self.deps.media.command(id, cmd);
        }
    }

    async fn serve(&mut self) {
        self.flow_event(Event::Started);
        while self.outcome.is_none() {
            if let Some((id, target, timeout)) = self.pending_transfer.take() {
                self.start_transfer(id, target, timeout).await;
                continue;
            }
            if let Some((id, queue, priority, skills)) = self.pending_queue.take() {
                self.join_queue(id, queue, priority, skills).await;
                continue;
            }
            let deadline = self.machine.as_ref().and_then(|m| m.poll_timeout());
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            let ring_deadline = self.leg_deadline;
            let ring_over = async {
                match ring_deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(ev) = self.leg_media_rx.recv() => self.on_leg_media(ev),
                Some(news) = self.queue_rx.recv() => self.on_queue_news(news).await,
                _ = ring_over => self.transfer_not_answered(),
                m = self.inbox.recv() => match m {
                    Some(m) => self.on_sip(m),
                    None => self.outcome = Some(Outcome::CallerHungUp),
                },
                Some(ev) = self.media_rx.recv() => self.on_media(ev),
                Some(ev) = self.io_rx.recv() => self.flow_event(ev),
                _ = sleep => {
                    if let Some(m) = self.machine.as_mut() {
                        m.handle_timeout(Instant::now());
                    }
                    self.run_actions();
                }
            }
        }
        self.finish().await;
    }

    fn flow_event(&mut self, ev: Event) {
        if let Some(m) = self.machine.as_mut() {
            m.handle(Instant::now(), ev);
        }
        self.run_actions();
    }

    fn run_actions(&mut self) {
        if let Some(m) = &self.machine {
            let (flow, step) = m.position();
            self.registration.set_position(flow, step);
        }
        loop {
            let Some(action) = self.machine.as_mut().and_then(|m| m.poll_action()) else {
                return;
            };
            match action {
                Action::Play {
                    id,
                    audio,
                    barge_in,
                } => {
                    let prompts = self.resolve(&audio);
                    if prompts.is_empty() {
                        // Nothing audible: the prompt is over as soon as it began.
                        if let Some(m) = self.machine.as_mut() {
                            m.handle(Instant::now(), Event::PromptFinished { id });
                        }
                        continue;
                    }
                    self.media(SessionCommand::Play {
                        id: id.0,
                        prompts,
                        barge_in,
                    });
                }
                Action::StopPlayback { id } => self.media(SessionCommand::Stop { id: id.0 }),
                // Not carried out yet: answered with a failure so the flow's error paths run.
                Action::Http {
                    id,
                    method,
                    url,
                    headers,
                    body,
                    timeout,
                } => {
                    let req = crate::webhook::Request {
                        method: format!("{method:?}").to_ascii_uppercase(),
                        url,
                        headers,
                        body,
                        timeout,
                    };
                    let client = self.deps.http.clone();
                    let tx = self.io_tx.clone();
                    // On its own task: a slow service delays this call only, and the caller
                    // can still hang up meanwhile.
                    tokio::spawn(async move {
                        let outcome = crate::webhook::perform(&client, &req).await.map_err(|e| {
                            debug!(error = %e, url = %req.url, "http step failed");
                            match e {
                                crate::webhook::Failure::Timeout(_) => HttpFailure::Timeout,
                                crate::webhook::Failure::Status(s) => HttpFailure::Status(s),
                                crate::webhook::Failure::BadJson(_) => HttpFailure::BadJson,
                                crate::webhook::Failure::Connect(_)
                                | crate::webhook::Failure::Invalid(_) => HttpFailure::Connect,
                            }
                        });
                        let _ = tx.send(Event::HttpDone { id, outcome });
                    });
                }
                Action::Record {
                    id,
                    max_duration,
                    silence_timeout,
                    terminator,
                    name,
                } => {
                    self.recording = Some((id.0, name));
                    self.media(SessionCommand::Record {
                        id: id.0,
                        max_duration,
                        silence_timeout,
                        terminator: terminator.and_then(Key::from_char),
                    });
                }
                Action::Transfer {
                    id,
                    target,
                    timeout,
                } => {
                    self.pending_transfer = Some((id, target, timeout));
                }
                Action::Queue {
                    id,
                    queue,
                    priority,
                    skills,
                } => {
                    self.pending_queue = Some((id, queue, priority, skills));
                }
                Action::LeaveQueue { .. } => self.leave_line(),
                Action::Hangup => {
                    self.send_bye();
                    self.outcome.get_or_insert(Outcome::FlowHungUp);
                    return;
                }
            }
        }
    }

    fn resolve(&self, audio: &[Audio]) -> Vec<Prompt> {
        let lib = &self.live.prompts;
        let mut out = Vec::with_capacity(audio.len());
        for a in audio {
            match a {
                Audio::Prompt(p) => {
                    let found = lib
                        .get(&p.language, &p.name)
                        .or_else(|| lib.get(&p.fallback_language, &p.name));
                    match found {
                        Some(pr) => out.push(pr.clone()),
                        None => warn!(prompt = %p.name, language = %p.language, "prompt missing"),
                    }
                }
                Audio::Silence(d) => out.push(Prompt::silence(*d)),
                Audio::Tone { freq_hz, duration } => {
                    out.push(Prompt::tone(f32::from(*freq_hz), *duration, -10.0))
                }
                Audio::Say {
                    language,
                    kind,
                    value,
                } => {
                    // A language without its own number grammar is spoken in the default one.
                    let lang = if crate::flow::say::is_supported(language) {
                        language.as_str()
                    } else {
                        lib.default_language()
                    };
                    match crate::flow::say::say(*kind, value, lang) {
                        Ok(names) => {
                            for n in names {
                                match lib.get(lang, &n) {
                                    Some(pr) => out.push(pr.clone()),
                                    None => {
                                        warn!(prompt = %n, language = %lang, "say fragment missing")
                                    }
                                }
                            }
                        }
                        Err(e) => warn!(error = %e, "cannot say this value; skipped"),
                    }
                }
            }
        }
        out
    }

    fn on_media(&mut self, ev: MediaEvent) {
        match ev {
            // Keys while bridged belong to the far end (the media clock relays them).
            MediaEvent::Key { .. } if self.bridged_to.is_some() => {}
            MediaEvent::Key { key, source, .. } => {
                debug!(key = %key.as_char(), ?source, "key");
                if self.queue_key(key.as_char()) {
                    return;
                }
                self.flow_event(Event::Key(key.as_char()));
            }
            MediaEvent::PlayFinished { id } if id == RINGBACK_PLAY => {}
            MediaEvent::PlayFinished { id } if id == callback::INTRO_PLAY => self.intro_finished(),
            MediaEvent::PlayFinished { id } if self.queue_play_finished(id) => {}
            MediaEvent::PlayFinished { id } => {
                self.flow_event(Event::PromptFinished { id: PlayId(id) })
            }
            MediaEvent::Recorded(rec) => self.recorded(rec),
            MediaEvent::NoMedia => {
                info!("no media from the caller; ending the call");
                self.send_bye();
                self.outcome = Some(Outcome::NoMedia);
            }
        }
    }

    /// Writes a finished recording to the recordings folder off the async workers, then
    /// tells the machine where it is.
    fn recorded(&mut self, rec: crate::media::recorder::Recording) {
        use crate::media::recorder::StopReason;
        let Some((id, name)) = self.recording.take().filter(|(id, _)| *id == rec.id) else {
            return;
        };
        let path = self.live.config.recordings_dir.join(format!("{name}.wav"));
        let duration = rec.duration();
        let reason = match rec.reason {
            StopReason::MaxDuration => RecordEnd::Max,
            StopReason::Silence => RecordEnd::Silence,
            StopReason::Terminator => RecordEnd::Terminator,
            StopReason::Stopped => RecordEnd::Hangup,
        };
        info!(path = %path.display(), ?duration, ?reason, "recording finished");
        let tx = self.io_tx.clone();
        self.pending_writes.push(tokio::spawn(async move {
            let p2 = path.clone();
            let written = tokio::task::spawn_blocking(move || {
                crate::media::recorder::write_wav(&p2, &rec.samples)
            })
            .await;
            let reason = match written {
                Ok(Ok(())) => reason,
                Ok(Err(e)) => {
                    warn!(path = %path.display(), error = %e, "recording not saved");
                    RecordEnd::Failed
                }
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "recording not saved");
                    RecordEnd::Failed
                }
            };
            let _ = tx.send(Event::RecordDone {
                id: RequestId(id),
                path: path.display().to_string(),
                duration,
                reason,
            });
        }));
    }

    fn on_sip(&mut self, m: ToCall) {
        match m {
            ToCall::Request { key, req } => self.in_dialog_request(key, req),
            ToCall::AckTimeout => {
                info!("no ACK for our 200; ending the call");
                self.send_bye();
                self.outcome = Some(Outcome::AckTimeout);
            }
            ToCall::Cancel { key, req } => {
                // A CANCEL after our 200 is answered but has no effect (§9.2): the caller
                // sends BYE.
                let ok = self.respond(&req, 200, "OK");
                self.send(&key, ok);
            }
            ToCall::Leg { call_id, msg } => self.on_leg_sip(&call_id, *msg),
            ToCall::Response(r) => self.called_back_response(r),
            ToCall::Ack(_) | ToCall::RequestTimeout => {}
        }
    }

    fn respond(&self, req: &Request, status: u16, reason: &str) -> Response {
        let mut resp = Response::for_request(req, status, reason);
        let _ = resp.headers.ensure_to_tag(&self.dialog.local_tag);
        resp
    }

    fn send(&self, key: &TransactionKey, resp: Response) {
        self.sip.respond(key, self.peer, &self.call_id, resp);
    }

    fn in_dialog_request(&mut self, key: TransactionKey, req: Request) {
        match self.dialog.accept_request(&req) {
            Ok(()) => {}
            Err(DialogError::CSeqOutOfOrder { .. }) => {
                let r = self.respond(&req, 500, "Server Internal Error (CSeq out of order)");
                return self.send(&key, r);
            }
            Err(_) => {
                let r = self.respond(&req, 481, "Call/Transaction Does Not Exist");
                return self.send(&key, r);
            }
        }
        match req.method {
            Method::Bye => {
                let r = self.respond(&req, 200, "OK");
                self.send(&key, r);
                info!("caller hung up");
                self.outcome = Some(Outcome::CallerHungUp);
            }
            Method::Invite => self.reinvite(key, req),
            Method::Info => {
                let ct = req.headers.content_type().ok().flatten();
                let status = if req.body.is_empty() {
                    200
                } else if let Some(k) = info_key(ct.as_ref(), &req.body) {
                    self.flow_event(Event::Key(k.as_char()));
                    200
                } else {
                    415
                };
                let mut r = self.respond(
                    &req,
                    status,
                    if status == 200 {
                        "OK"
                    } else {
                        "Unsupported Media Type"
                    },
                );
                if status == 415 {
                    r.headers.push(
                        HeaderName::new("Accept"),
                        "application/dtmf-relay, application/dtmf",
                    );
                }
                self.send(&key, r);
            }
            Method::Options => {
                let mut r = self.respond(&req, 200, "OK");
                r.headers.push(HeaderName::Allow, ALLOW);
                self.send(&key, r);
            }
            Method::Other(_) => {
                let mut r = self.respond(&req, 501, "Not Implemented");
                r.headers.push(HeaderName::Allow, ALLOW);
                self.send(&key, r);
            }
            _ => {
                let mut r = self.respond(&req, 405, "Method Not Allowed");
                r.headers.push(HeaderName::Allow, ALLOW);
                self.send(&key, r);
            }
        }
    }

    /// A re-INVITE: hold, unhold, a moved address, or a session refresh without SDP.
    fn reinvite(&mut self, key: TransactionKey, req: Request) {
        let answer = if req.body.is_empty() {
            // Refresh without an offer: we offer what we have (RFC 3261 §14.2).
            self.negotiated.as_ref().map(|n| {
                sdp::build_answer(
                    self.advertised,
                    self.local_rtp_port,
                    n,
                    self.sdp_session_id,
                    self.sdp_version,
                )
            })
        } else {
            match sdp::parse_offer(&req.body).and_then(|r| sdp::negotiate(&r, &CODECS)) {
                Ok(n) => {
                    self.sdp_version += 1;
                    let body = sdp::build_answer(
                        self.advertised,
                        self.local_rtp_port,
                        &n,
                        self.sdp_session_id,
                        self.sdp_version,
                    );
                    let changed = self
                        .negotiated
                        .as_ref()
                        .is_none_or(|old| old.remote_rtp != n.remote_rtp);
                    let remote = if n.remote_rtp.ip().is_unspecified() || !changed {
                        self.negotiated
                            .as_ref()
                            .map(|o| o.remote_rtp)
                            .unwrap_or(n.remote_rtp)
                    } else {
                        n.remote_rtp
                    };
                    info!(hold = n.on_hold(), "re-INVITE");
                    self.media(SessionCommand::Update {
                        remote,
                        send: !n.on_hold(),
                        reset_latch: changed && !n.remote_rtp.ip().is_unspecified(),
                    });
                    self.negotiated = Some(n);
                    Some(body)
                }
                Err(e) => {
                    // The old session stays (RFC 3261 §14.2).
                    let mut r = self.respond(&req, e.status_code(), "Not Acceptable Here");
                    r.headers.push(
                        HeaderName::new("Warning"),
                        format!("304 hotline \"{}\"", e.to_string().replace('"', "'")),
                    );
                    return self.send(&key, r);
                }
            }
        };
        let mut r = self.respond(&req, 200, "OK");
        let contact = our_contact(&self.peer, self.advertised);
        r.headers.push(HeaderName::Contact, format!("<{contact}>"));
        r.headers.push(HeaderName::Allow, ALLOW);
        if let Some(b) = answer {
            r.set_body(&ContentType::new("application", "sdp"), b);
        }
        self.send(&key, r);
    }

    fn send_bye(&mut self) {
        let via = our_via(&self.peer, self.advertised);
        let bye = self.dialog.request(Method::Bye, via, None);
        self.sip.request(&self.call_id, self.peer, bye);
        self.bye_sent = true;
    }

    /// Ends a recording in progress and collects it, so a caller who hangs up mid-message
    /// still leaves a whole file.
    async fn stop_recording(&mut self) {
        let Some((id, _)) = self.recording.clone() else {
            return;
        };
        self.media(SessionCommand::StopRecording { id });
        let until = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            tokio::select! {
                ev = self.media_rx.recv() => match ev {
                    Some(MediaEvent::Recorded(rec)) => {
                        self.recorded(rec);
                        return;
                    }
                    Some(_) => {}
                    None => return,
                },
                _ = tokio::time::sleep_until(until) => return,
            }
        }
    }

    /// Tears down what is left and records the call's story.
    async fn finish(&mut self) {
        self.stop_recording().await;
        self.called_back_ends();
        self.leave_line();
        self.end_bridge();
        self.hang_up_all_legs();
        if let Some(id) = self.session.take() {
            self.deps.media.remove(id);
        }
        if let Some(m) = self.machine.as_mut()
            && self.outcome == Some(Outcome::CallerHungUp)
        {
            m.handle(Instant::now(), Event::CallerHangup);
        }
        // Our BYE is retransmitted by its transaction; wait for its answer (or timeout) so
        // the response still finds this call.
        if self.bye_sent || !self.old_legs.is_empty() {
            let until = tokio::time::Instant::now() + Duration::from_secs(40);
            let mut bye_pending = self.bye_sent;
            while bye_pending || !self.old_legs.is_empty() {
                tokio::select! {
                    m = self.inbox.recv() => match m {
                        Some(ToCall::Response(r))
                            if r.status >= 200
                                && r.headers.cseq().is_ok_and(|c| c.method == Method::Bye) =>
                        {
                            bye_pending = false
                        }
                        Some(ToCall::RequestTimeout) => bye_pending = false,
                        None => break,
                        Some(ToCall::Leg { call_id, msg }) => self.on_leg_sip(&call_id, *msg),
                        Some(ToCall::Request { key, req }) => {
                            // A BYE crossing ours: answer it.
                            let r = self.respond(&req, 200, "OK");
                            self.send(&key, r);
                        }
                        Some(_) => {}
                    },
                    _ = tokio::time::sleep_until(until) => break,
                }
            }
        }
        for mut leg in self.old_legs.drain(..) {
            leg.close(&self.deps);
        }
        for write in self.pending_writes.drain(..) {
            let _ = write.await;
        }
        // What the IO reported meanwhile still belongs in the call's story.
        while let Ok(ev) = self.io_rx.try_recv() {
            if let Some(m) = self.machine.as_mut() {
                m.handle(Instant::now(), ev);
            }
        }
        let story = self.machine.as_ref().map(|m| m.story().clone());
        info!(
            outcome = ?self.outcome,
            seconds = self.started.elapsed().as_secs_f32(),
            story = ?story,
            "call ended"
        );
        self.sip.ended(&self.call_id);
    }
}
