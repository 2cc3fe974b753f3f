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
pub mod core; // the call as one pure state machine (not yet what the call task runs)
mod legs; // transfer and agent legs, the bridge
mod queue; // the call's time in an agent queue
pub(crate) mod uas_shell; // carries the caller's dialog (a `sip::uas::Uas`) to the endpoint
use crate::media::clock::{MediaEngine, SessionId};
use crate::media::dtmf::Key;
use crate::media::ports::PortPool;
use crate::media::ports::RtpPort;
use crate::media::prompt::{Prompt, PromptLibrary};
use crate::media::session::{MediaEvent, Session, SessionCommand, SessionParams};
use crate::sip::endpoint::{NewCall, SipHandle, ToCall, our_contact};
use crate::sip::random_token;
use crate::sip::sdp::Negotiated;
use crate::sip::transport::Peer;
use crate::sip::uas::{AnswerParams, Ending, LocalMedia, Route, Uas, UasEvent};
pub use callback::call_back;
use uas_shell::{Addressed, Next, UasShell};

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

/// How a call ended, for its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    CallerHungUp,
    FlowHungUp,
    NoMedia,
    AckTimeout,
    /// The ACK of a late offer brought no usable answer.
    NoUsableAnswer,
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

/// A media session for `n` on `port`, its random starts drawn here, on the media worker
/// of `beside` when given (so the two can be bridged on the media clock). Every session a
/// call, a feature code or a leg sets up starts here.
pub(crate) fn start_session(
    deps: &CallDeps,
    port: RtpPort,
    n: &Negotiated,
    no_media_timeout: Duration,
    events: mpsc::UnboundedSender<MediaEvent>,
    beside: Option<SessionId>,
) -> SessionId {
    let params = SessionParams {
        codec: n.codec,
        payload_type: n.pt,
        telephone_event_pt: n.telephone_event_pt,
        remote: n.remote_rtp,
        no_media_timeout,
        ssrc: rand::random(),
        initial_seq: rand::random(),
        initial_timestamp: rand::random(),
    };
    let session = Session::new(params, Instant::now());
    let id = match beside {
        Some(b) => deps.media.add_beside(b, port, session, events),
        None => deps.media.add(port, session, events),
    };
    if n.on_hold() {
        deps.media.command(
            id,
            SessionCommand::Update {
                remote: n.remote_rtp,
                send: false,
                reset_latch: false,
            },
        );
    }
    id
}

/// The parts of an answer the engine draws or looks up for an INVITE that arrived through
/// `peer`: our tag, CSeq start and SDP session id, our Contact, and an RTP port (none: 503).
pub(crate) fn answer_params(
    deps: &CallDeps,
    peer: &Peer,
    advertised: IpAddr,
    route: Route,
    ring_for: Duration,
) -> (AnswerParams, Option<RtpPort>) {
    let port = match deps.ports.allocate(peer.local.ip()) {
        Ok(p) => Some(p),
        Err(e) => {
            warn!(error = %e, "no RTP port");
            None
        }
    };
    let params = AnswerParams {
        local_tag: random_token(10),
        first_cseq: rand::random_range(1..10_000),
        contact: our_contact(peer, advertised),
        route,
        media: port.as_ref().map(|p| LocalMedia {
            advertised,
            rtp_port: p.port,
            sdp_session_id: rand::random_range(1..u64::from(u32::MAX)),
            sdp_version: 1,
        }),
        ring_for,
        timers: crate::sip::transaction::TimerConfig::with_t1(deps.live().config.t1),
    };
    (params, port)
}

/// How the call began. One per call, made once: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Origin {
    /// The caller called (the call's UAS answers its INVITE).
    Called,
    /// hotline called the caller back (see `callback`).
    CalledBack(callback::CalledBack),
}

/// What a call is made of when it starts; the rest of [`Call`] starts empty.
struct Start {
    deps: Arc<CallDeps>,
    live: Arc<Live>,
    sip: SipHandle,
    peer: Peer,
    call_id: String,
    side: UasShell,
    /// The RTP port, until the media session takes it.
    rtp_port: Option<RtpPort>,
    origin: Origin,
    inbox: mpsc::UnboundedReceiver<ToCall>,
    media: (
        mpsc::UnboundedSender<MediaEvent>,
        mpsc::UnboundedReceiver<MediaEvent>,
    ),
    caller: String,
    caller_display: Option<String>,
    flow_name: String,
    machine: Option<FlowMachine>,
    registration: crate::registry::Registration,
}

struct Call {
    deps: Arc<CallDeps>,
    live: Arc<Live>,
    sip: SipHandle,
    peer: Peer,
    call_id: String,
    /// The caller's dialog: every SIP answer to the caller is its.
    side: UasShell,
    rtp_port: Option<RtpPort>,
    origin: Origin,
    inbox: mpsc::UnboundedReceiver<ToCall>,
    media_rx: mpsc::UnboundedReceiver<MediaEvent>,
    media_tx: mpsc::UnboundedSender<MediaEvent>,
    session: Option<SessionId>,
    flow_name: String,
    machine: Option<FlowMachine>,
    outcome: Option<Outcome>,
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
        if let Some(command) = crate::feature::command_for(&deps, &dialed) {
            crate::feature::serve(nc, deps, call_id, caller, command).await;
            sip.ended(&cid);
            return;
        }
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
            call_id: s.call_id,
            side: s.side,
            rtp_port: s.rtp_port,
            origin: s.origin,
            inbox: s.inbox,
            media_rx,
            media_tx,
            session: None,
            flow_name: s.flow_name,
            machine: s.machine,
            outcome: None,
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

    /// Answers the INVITE through the call's UAS (which refuses it with the right code
    /// when it must) and waits until media is set up. Returns None when the call was
    /// refused, cancelled or ended before that (the responses are already sent).
    async fn answer(
        nc: NewCall,
        deps: Arc<CallDeps>,
        call_id: String,
        caller: String,
        dialed: String,
    ) -> Option<Call> {
        let live = deps.live();
        let flow_name = live.config.route(&dialed).map(str::to_string);
        let route = match flow_name {
            Some(_) => Route::Found,
            None => Route::NotFound,
        };
        let advertised = advertised_ip(live.config.public_address, nc.peer.local, nc.peer.remote);
        let (params, rtp_port) =
            answer_params(&deps, &nc.peer, advertised, route, live.config.answer_after);
        let caller_display = nc
            .invite
            .headers
            .from_addr()
            .ok()
            .and_then(|f| f.display_name.clone());
        let uas = Uas::new(nc.key, nc.invite, params);
        let mut side = UasShell::new(uas, nc.sip.clone(), nc.peer, advertised, &call_id);
        for ev in side.flush() {
            if let UasEvent::Refused { status } = ev {
                info!(status, "call refused");
            }
        }
        let flow_name = flow_name.filter(|_| !side.uas.is_over())?;
        let flows = live.flows.clone();
        let ctx = CallContext {
            call_id: call_id.clone(),
            caller: caller.clone(),
            dialed: dialed.clone(),
            wall_clock_at_start: std::time::SystemTime::now().into(),
        };
        let machine = match FlowMachine::new(flows, &flow_name, ctx, Instant::now()) {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, flow = %flow_name, "route names a flow that is not loaded");
                side.refuse(500, "Server Internal Error");
                return None;
            }
        };
        let registration = deps.registry.register(crate::registry::NewLiveCall {
            call_id: call_id.clone(),
            caller: caller.clone(),
            dialed,
            flow: flow_name.clone(),
            version: live.version,
            flows: live.flows.clone(),
            started_at: std::time::SystemTime::now(),
        });

        let mut call = Call::new(Start {
            sip: nc.sip.clone(),
            peer: nc.peer,
            call_id,
            side,
            rtp_port,
            origin: Origin::Called,
            inbox: nc.inbox,
            media: mpsc::unbounded_channel(),
            caller,
            caller_display,
            flow_name,
            machine: Some(machine),
            registration,
            deps,
            live,
        });

        // Rings first when configured; media starts with the 2xx, or with the ACK that
        // answers a late offer.
        let evs = call.side.answer(Instant::now());
        call.on_answer_events(evs);
        loop {
            if call.session.is_some() && call.outcome.is_none() {
                return Some(call);
            }
            if call.side.uas.is_over() || call.outcome.is_some() {
                if call.outcome.is_some() {
                    call.finish().await;
                }
                return None;
            }
            match call.side.next(&mut call.inbox).await {
                Next::Events(evs) => call.on_answer_events(evs),
                Next::Other(other) => debug!(?other, "ignored before the answer"),
                Next::Gone => {
                    // The endpoint is gone: the caller can no longer be answered.
                    call.side.refuse(487, "Request Terminated");
                    call.outcome.get_or_insert(Outcome::CallerHungUp);
                }
            }
        }
    }

    /// What the UAS reports before the flow runs (keys wait for the flow to start).
    fn on_answer_events(&mut self, evs: Vec<UasEvent>) {
        for ev in evs {
            match ev {
                UasEvent::Key(k) => debug!(key = %k.as_char(), "key before the answer; ignored"),
                UasEvent::Answered => {
                    info!(flow = %self.flow_name, late_offer = self.side.uas.offer().is_none(), "answered")
                }
                UasEvent::Refused { status } => info!(status, "call refused"),
                UasEvent::Cancelled => info!("caller cancelled while ringing"),
                other => self.on_uas_event(other),
            }
        }
    }

    /// Sets up the media session the UAS agreed on (once; later changes are updates).
    fn start_media(&mut self, n: &Negotiated) {
        let Some(port) = self.rtp_port.take() else {
            return;
        };
        let id = start_session(
            &self.deps,
            port,
            n,
            self.live.config.no_media_timeout,
            self.media_tx.clone(),
            None,
        );
        self.session = Some(id);
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
        match UasShell::input(m) {
            Addressed::Dialog(input) => {
                let evs = self.side.handle(Instant::now(), input);
                for ev in evs {
                    self.on_uas_event(ev);
                }
            }
            Addressed::Owner(ToCall::Leg { call_id, msg }) => self.on_leg_sip(&call_id, *msg),
            Addressed::Owner(ToCall::Response(r)) => self.called_back_response(r),
            Addressed::Owner(other) => debug!(?other, "ignored"),
        }
    }

    /// What the caller's dialog reports once the call runs.
    fn on_uas_event(&mut self, ev: UasEvent) {
        match ev {
            UasEvent::Media(n) => self.start_media(&n),
            UasEvent::MediaUpdate {
                remote,
                send,
                reset_latch,
            } => {
                info!(hold = !send, "re-INVITE");
                self.media(SessionCommand::Update {
                    remote,
                    send,
                    reset_latch,
                });
            }
            UasEvent::Key(k) => self.flow_event(Event::Key(k.as_char())),
            UasEvent::Ended(Ending::RemoteBye) => {
                info!("caller hung up");
                self.outcome.get_or_insert(Outcome::CallerHungUp);
            }
            UasEvent::Ended(Ending::AckTimeout) => {
                info!("no ACK for our 200; ending the call");
                self.outcome.get_or_insert(Outcome::AckTimeout);
            }
            UasEvent::Ended(Ending::NoUsableAnswer) => {
                warn!("late-offer ACK without a usable answer; ending the call");
                self.outcome.get_or_insert(Outcome::NoUsableAnswer);
            }
            UasEvent::Refused { .. }
            | UasEvent::Cancelled
            | UasEvent::Answered
            | UasEvent::Closed => {}
        }
    }

    /// Hangs up the caller's side (BYE, once the ACK came).
    fn send_bye(&mut self) {
        let evs = self.side.hang_up(Instant::now());
        for ev in evs {
            self.on_uas_event(ev);
        }
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
        // the response still finds this call, and for the last answers of legs hung up.
        let (deps, old_legs, leg_media_tx) = (&self.deps, &mut self.old_legs, &self.leg_media_tx);
        let legs_waiting = !old_legs.is_empty();
        self.side
            .close(&mut self.inbox, legs_waiting, |m| {
                if let ToCall::Leg { call_id, msg } = m
                    && let Some(leg) = old_legs.iter_mut().find(|l| l.call_id == call_id)
                {
                    leg.on_sip(deps, *msg, None, leg_media_tx);
                    if !leg.closing {
                        leg.close(deps);
                        old_legs.retain(|l| l.call_id != call_id);
                    }
                }
                !old_legs.is_empty()
            })
            .await;
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
