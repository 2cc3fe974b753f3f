//! A call's task: one inbox that every source posts to ([`CallMsg`]), one sleep (until the
//! earliest of the core's timers, which cover its legs'), and a loop that carries out what
//! the [`CallCore`] decides: SIP through the endpoint (the caller's and the legs'), media
//! commands to the media clock, HTTP and recordings as IO whose results come back to the
//! same inbox.
//!
//! What the core asks that waits on the network (placing a leg, joining a queue) is
//! carried out between messages (see `legs`, `queue`), fed from the same inbox.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::sync::mpsc;
use tracing::{Instrument, debug, info, info_span, warn};

use super::core::{CallCore, CallInput, CallOutput, LegRole, MediaCommand, RINGBACK_PLAY, Script};
use super::{CallDeps, Live, Outcome, advertised_ip, answer_params};
use crate::flow::machine::{Action, Audio, CallContext, Event, FlowMachine, HttpFailure};
use crate::flow::machine::{RecordEnd, RequestId};
use crate::leg::Leg;
use crate::mailbox::Mailbox;
use crate::media::clock::SessionId;
use crate::media::dtmf::Key;
use crate::media::ports::RtpPort;
use crate::media::prompt::Prompt;
use crate::media::session::{MediaEvent, MediaOrigin, SessionCommand};
use crate::metrics::ForcedEnd;
use crate::queue::agent::AgentCommand;
use crate::queue::service::QueueNews;
use crate::records::{CallKind, HungUpBy, RecordMsg};
use crate::sip::endpoint::{NewCall, SipHandle, ToCall, our_via};
use crate::sip::message::MAGIC_COOKIE;
use crate::sip::random_token;
use crate::sip::transport::Peer;
use crate::sip::uas::{Route, Uas};
use hotline_core::record::build::{self as record_build, CallFacts};

/// Everything a call hears, from every source, in one inbox.
///
/// The inbox's channel keeps room for 32 messages at a time, from the call's start to its
/// end, so every variant is kept small: a SIP message (over 200 bytes) and the queues'
/// news, both rare beside media events, are boxed.
#[derive(Debug)]
pub enum CallMsg {
    /// From the endpoint: the caller's dialog, the legs' messages.
    Sip(Box<ToCall>),
    /// From the caller's media session.
    Media(MediaEvent),
    /// From a leg's media session.
    LegMedia(MediaEvent),
    /// From the agent queues.
    Queue(Box<QueueNews>),
    /// The IO the call started (an HTTP answer, a saved recording).
    Io(Event),
}

/// A call's one inbox, and the sender every mailbox of it wraps.
pub struct Inbox {
    tx: mpsc::UnboundedSender<CallMsg>,
    rx: mpsc::UnboundedReceiver<CallMsg>,
}

impl Default for Inbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Inbox {
    pub fn new() -> Inbox {
        let (tx, rx) = mpsc::unbounded_channel();
        Inbox { tx, rx }
    }

    /// Where the endpoint posts what arrives for the call.
    pub fn sip(&self) -> Mailbox<ToCall> {
        Mailbox::wrapping(self.tx.clone(), |m| CallMsg::Sip(Box::new(m)))
    }

    /// Where the caller's media session posts.
    pub(super) fn media(&self) -> Mailbox<MediaEvent> {
        Mailbox::wrapping(self.tx.clone(), CallMsg::Media)
    }

    fn leg_media(&self) -> Mailbox<MediaEvent> {
        Mailbox::wrapping(self.tx.clone(), CallMsg::LegMedia)
    }

    fn queue(&self) -> Mailbox<QueueNews> {
        Mailbox::wrapping(self.tx.clone(), |m| CallMsg::Queue(Box::new(m)))
    }

    fn io(&self) -> Mailbox<Event> {
        Mailbox::wrapping(self.tx.clone(), CallMsg::Io)
    }

    /// The next message, or None once `deadline` passed first. The call holds a sender of
    /// its own, so the inbox never closes under it.
    pub async fn next(&mut self, deadline: Option<Instant>) -> Option<CallMsg> {
        match deadline {
            Some(d) => tokio::time::timeout_at(d.into(), self.rx.recv())
                .await
                .ok()
                .flatten(),
            None => self.rx.recv().await,
        }
    }
}

/// How long a call that is over waits at most for the last answers of the legs it hung up.
const LEGS_CLOSE_AT_MOST: Duration = Duration::from_secs(34);

/// What the loop carries out between messages (it may wait on the network).
enum Pending {
    Dial(LegRole, String, Option<Peer>),
    Join {
        id: RequestId,
        queue: String,
        priority: i32,
        skills: Vec<String>,
    },
}

/// How the call began. Kept for the whole call, inside the call's task: a call back's
/// beginning (its dialling leg's SIP machine, kilobytes) is boxed, so that the calls that
/// called in do not carry its room.
pub(super) enum Origin {
    /// The caller called (the call's UAS answers its INVITE).
    Called,
    /// hotline called the caller back (see `callback`).
    CalledBack(Box<CalledBack>),
}

/// What a call back keeps of its beginning (see `callback`).
pub(super) struct CalledBack {
    pub(super) id: crate::queue::store::CallbackId,
    /// How the call is listed for the admin once the caller answers.
    pub(super) listing: Option<crate::registry::NewLiveCall>,
    /// The ACD knows how the attempt went: the caller is back in line, or it failed.
    pub(super) settled: bool,
}

/// What a call is made of when it starts; the rest of [`Call`] starts empty.
pub(super) struct Start {
    pub deps: Arc<CallDeps>,
    pub live: Arc<Live>,
    pub peer: Peer,
    pub call_id: String,
    pub core: CallCore,
    pub inbox: Inbox,
    pub rtp_port: Option<RtpPort>,
    pub session: Option<SessionId>,
    pub origin: Origin,
    pub caller: String,
    pub caller_display: Option<String>,
    pub registration: Option<crate::registry::Registration>,
}

pub(super) struct Call {
    pub(super) deps: Arc<CallDeps>,
    pub(super) live: Arc<Live>,
    pub(super) sip: SipHandle,
    pub(super) peer: Peer,
    pub(super) call_id: String,
    pub(super) core: CallCore,
    pub(super) inbox: Inbox,
    /// The RTP port, until the media session takes it.
    rtp_port: Option<RtpPort>,
    pub(super) session: Option<SessionId>,
    pub(super) origin: Origin,
    /// The recording in progress: its id and file name stem.
    recording: Option<(u64, String)>,
    started: Instant,
    pub(super) caller: String,
    pub(super) caller_display: Option<String>,
    /// Legs to dial and queue steps, carried out by the loop (placing a leg may need a
    /// DNS lookup, joining a queue waits for the ACD's answer).
    pending: VecDeque<Pending>,
    /// The IO of the legs the call placed (a transfer's, or agents' during a queue),
    /// until the core says each is over; their SIP machines are the core's.
    pub(super) legs: Vec<Leg>,
    /// The Call-ID of the leg the caller's media is bridged to.
    pub(super) bridged_to: Option<String>,
    /// What ends with the call was let go (a call back's attempt settled with the ACD).
    torn_down: bool,
    /// The core ended the call; its outcome and story.
    ended: Option<(Option<Outcome>, crate::flow::story::CallStory)>,
    /// Lists the call for the admin until the call is dropped.
    pub(super) registration: Option<crate::registry::Registration>,
    /// The call's record, for calls that have one (not feature codes).
    pub(super) recorder: Option<Recorder>,
    /// `finish` ran: everything is released. A call dropped without it failed (its task
    /// panicked or was cancelled) and releases what it holds in `Drop`.
    finished: bool,
}

/// The fault a failed call's record shows.
const TASK_FAILED: &str = "call task failed";

/// A test call that dials this number panics inside the call's code when its ACK arrives
/// (compiled into the library's own tests only: the engine that ships has no such number).
#[cfg(test)]
pub(crate) const PANIC_NUMBER: &str = "test-panic-in-call";

impl Drop for Call {
    fn drop(&mut self) {
        if !self.finished {
            self.fail();
        }
    }
}

/// What a call's record needs beside the core's story, gathered as the call goes.
pub(super) struct Recorder {
    pub(super) facts: CallFacts,
    begun: bool,
    refused: Option<u16>,
}

impl Recorder {
    pub(super) fn new(kind: CallKind, call_id: &str, caller: &str, dialed: &str) -> Recorder {
        Recorder {
            facts: CallFacts {
                call_id: call_id.to_owned(),
                kind,
                caller: caller.to_owned(),
                dialed: dialed.to_owned(),
                started_ms: wall_ms(),
                ..CallFacts::default()
            },
            begun: false,
            refused: None,
        }
    }
}

/// An INFO that tells a key (the UAS reads it the same way and hands the key to the flow).
fn carries_key(req: &crate::sip::message::Request) -> bool {
    let ct = req.headers.content_type().ok().flatten();
    crate::sip::uas::info_key(ct.as_ref(), &req.body).is_ok()
}

/// Milliseconds since the Unix epoch, now.
pub(super) fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Our Via for the call's requests, and the random prefix of its branches.
pub(super) fn via_and_branches(
    peer: &Peer,
    advertised: std::net::IpAddr,
) -> (crate::sip::message::Via, String) {
    (
        our_via(peer, advertised),
        format!("{MAGIC_COOKIE}{}", random_token(12)),
    )
}

/// Runs the call that the INVITE `nc` began, to its end, on `inbox` (whose SIP mailbox
/// the endpoint already posts to).
pub async fn run(nc: NewCall, inbox: Inbox, deps: Arc<CallDeps>) {
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
    let _task = super::CallTask::new(&deps);
    async move {
        let call = match crate::feature::command_for(deps.acd().is_some(), &dialed) {
            // Boxed: a feature code's wait for the queues would otherwise be room in every
            // call's task.
            Some(command) => {
                Box::pin(Call::feature_code(
                    nc, inbox, deps, call_id, caller, command,
                ))
                .await
            }
            None => Call::incoming(nc, inbox, deps, call_id, caller, dialed),
        };
        call.serve().await;
    }
    .instrument(span)
    .await
}

impl Call {
    /// The call, on the heap: its task's future holds only a pointer to it. An `async fn`
    /// taking the call by value would keep room for it twice (once for the argument, once
    /// for the local it becomes), for the whole call.
    pub(super) fn new(s: Start) -> Box<Call> {
        Box::new(Call {
            sip: s.deps.sip().clone(),
            deps: s.deps,
            live: s.live,
            peer: s.peer,
            call_id: s.call_id,
            core: s.core,
            inbox: s.inbox,
            rtp_port: s.rtp_port,
            session: s.session,
            origin: s.origin,
            recording: None,
            started: Instant::now(),
            caller: s.caller,
            caller_display: s.caller_display,
            pending: VecDeque::new(),
            legs: Vec::new(),
            bridged_to: None,
            torn_down: false,
            ended: None,
            registration: s.registration,
            recorder: None,
            finished: false,
        })
    }

    /// A call that dialled in: its UAS checks the INVITE (and refuses it with the right
    /// code when it must); the call answers once it runs.
    fn incoming(
        nc: NewCall,
        inbox: Inbox,
        deps: Arc<CallDeps>,
        call_id: String,
        caller: String,
        dialed: String,
    ) -> Box<Call> {
        let now = Instant::now();
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
        let ctx = CallContext {
            call_id: call_id.clone(),
            caller: caller.clone(),
            dialed: dialed.clone(),
            wall_clock_at_start: std::time::SystemTime::now().into(),
        };
        let machine = flow_name
            .as_deref()
            .filter(|_| !uas.is_over())
            .map(|f| FlowMachine::new(live.flows.clone(), f, ctx, now));
        let (via, branches) = via_and_branches(&nc.peer, advertised);
        let (script, broken) = match machine {
            Some(Ok(m)) => (Script::Flow(m), None),
            Some(Err(e)) => (Script::Nothing, Some(e)),
            None => (Script::Nothing, None),
        };
        let mut core = CallCore::new(uas, script, via, branches);
        let mut recorder = Recorder::new(CallKind::Inbound, &call_id, &caller, &dialed);
        recorder.facts.flow = flow_name.clone().unwrap_or_default();
        recorder.facts.flow_version = live.version.to_string();
        recorder.facts.language = core.language().unwrap_or_default().to_owned();
        let registration = match (&flow_name, broken) {
            (Some(flow), None) if !core.uas().is_some_and(Uas::is_over) => {
                Some(deps.registry.register(crate::registry::NewLiveCall {
                    call_id: call_id.clone(),
                    caller: caller.clone(),
                    dialed,
                    flow: flow.clone(),
                    version: live.version,
                    flows: live.flows.clone(),
                    started_at: std::time::SystemTime::now(),
                }))
            }
            (flow, Some(e)) => {
                warn!(error = %e, flow = ?flow, "route names a flow that is not loaded");
                core.refuse(now, 500, "Server Internal Error");
                None
            }
            _ => None,
        };
        core.limit_length(now, live.config.max_call);
        // Rings first when configured; media starts with the 2xx, or with the ACK that
        // answers a late offer.
        core.answer(now);
        let mut call = Call::new(Start {
            deps,
            live,
            peer: nc.peer,
            call_id,
            core,
            inbox,
            rtp_port,
            session: None,
            origin: Origin::Called,
            caller,
            caller_display,
            registration,
        });
        call.recorder = Some(recorder);
        call
    }

    /// A feature code from an agent's phone: the UAS answers it (403 to anyone but the
    /// agent's phone), the command is applied just before the answer, and the call plays
    /// the confirmation and hangs up.
    async fn feature_code(
        nc: NewCall,
        inbox: Inbox,
        deps: Arc<CallDeps>,
        call_id: String,
        caller: String,
        command: AgentCommand,
    ) -> Box<Call> {
        let live = deps.live();
        let bindings = deps.registrations().contacts(&caller, Instant::now());
        let allowed = live.config.agents.get(&caller).is_some_and(|a| {
            crate::feature::comes_from_agent(nc.peer.remote, &bindings, a.uri.as_deref())
        });
        let route = if allowed {
            Route::Found
        } else {
            warn!(
                from = %caller,
                source = %nc.peer.remote,
                "feature code refused: not an agent, or not from the agent's phone"
            );
            Route::Forbidden
        };
        let advertised = advertised_ip(live.config.public_address, nc.peer.local, nc.peer.remote);
        let (params, rtp_port) = answer_params(&deps, &nc.peer, advertised, route, Duration::ZERO);
        let uas = Uas::new(nc.key, nc.invite, params);
        // Everything that can fail before the answer is checked before the command is
        // applied.
        let mut applied = false;
        if !uas.is_over()
            && let Some(acd) = deps.acd()
        {
            match acd.command(&caller, command.clone()).await {
                Ok(()) => {
                    info!(agent = %caller, ?command, "feature code applied");
                    applied = true;
                }
                Err(e) => {
                    info!(agent = %caller, ?command, error = %e, "feature code refused by the queues")
                }
            }
        }
        let (via, branches) = via_and_branches(&nc.peer, advertised);
        let script = Script::Tones(crate::feature::confirmation(applied));
        let mut core = CallCore::new(uas, script, via, branches);
        core.limit_length(Instant::now(), live.config.max_call);
        core.answer(Instant::now());
        Call::new(Start {
            deps,
            live,
            peer: nc.peer,
            call_id,
            core,
            inbox,
            rtp_port,
            session: None,
            origin: Origin::Called,
            caller,
            caller_display: None,
            registration: None,
        })
    }

    /// Serves the call to its end. A panic in the call's code is caught here, before the
    /// task unwinds, so [`Call::fail`] can still ask the core for the caller's BYE and the
    /// legs' CANCEL or BYE.
    pub(super) async fn serve(mut self: Box<Self>) {
        let served = AssertUnwindSafe(self.serve_loop()).catch_unwind().await;
        if served.is_err() {
            self.fail();
        }
    }

    /// The one loop: carries out what the core decided, waits for the next message or the
    /// earliest timer, and hands it over, until the call and its legs are over.
    async fn serve_loop(&mut self) {
        let mut legs_until = None;
        loop {
            self.carry_out();
            while let Some(p) = self.pending.pop_front() {
                self.carry_pending(p).await;
                self.carry_out();
            }
            if self.ended.is_some() {
                if !self.core.legs_closing() {
                    break;
                }
                let until = *legs_until.get_or_insert(Instant::now() + LEGS_CLOSE_AT_MOST);
                if Instant::now() >= until {
                    break;
                }
            }
            let deadline = [self.core.poll_timeout(), legs_until]
                .into_iter()
                .flatten()
                .min();
            match self.inbox.next(deadline).await {
                Some(m) => self.on_message(m).await,
                None => self.on_timeout(),
            }
        }
        self.finish();
    }

    /// The sleep is over: the core's timers (its legs' among them) that are due fire.
    fn on_timeout(&mut self) {
        let now = Instant::now();
        if self.core.poll_timeout().is_some_and(|d| d <= now) {
            self.core.handle_timeout(now);
        }
    }

    async fn on_message(&mut self, m: CallMsg) {
        match m {
            CallMsg::Sip(m) => self.on_sip(*m),
            CallMsg::Media(ev) => self.on_media(ev),
            CallMsg::LegMedia(ev) => self.on_leg_media(ev),
            CallMsg::Queue(news) => self.input(CallInput::Queue(*news)),
            CallMsg::Io(ev) => self.input(CallInput::Io(ev)),
        }
    }

    pub(super) fn input(&mut self, i: CallInput) {
        self.core.handle(Instant::now(), i);
    }

    /// What the endpoint routed to the call: the caller's dialog's, a leg's, or a call
    /// back's own leg's (everything while it rings, the answers to its INVITE after).
    fn on_sip(&mut self, m: ToCall) {
        use crate::sip::uas::UasInput;
        let invite_answer = matches!(&m, ToCall::Response(r)
            if r.headers.cseq().is_ok_and(|c| c.method == crate::sip::message::Method::Invite));
        let own_leg = !matches!(m, ToCall::Leg { .. } | ToCall::Shutdown)
            && (self.core.uas().is_none() || invite_answer);
        if own_leg {
            let id = self.call_id.clone();
            return self.on_leg_sip(&id, m);
        }
        let input = match m {
            ToCall::Request { key, req } => {
                if req.method == crate::sip::message::Method::Info && carries_key(&req) {
                    self.deps
                        .metrics()
                        .key(crate::media::session::KeySource::SipInfo);
                }
                UasInput::Request { key, req }
            }
            ToCall::Cancel { key, req } => UasInput::Cancel { key, req },
            ToCall::Ack(a) => {
                self.input(CallInput::Sip(UasInput::Ack(a)));
                // The caller received our answer where its signalling came from: media
                // may go.
                self.media(SessionCommand::Confirmed);
                #[cfg(test)]
                if self
                    .recorder
                    .as_ref()
                    .is_some_and(|r| r.facts.dialed == PANIC_NUMBER)
                {
                    panic!("a test asked this call to fail");
                }
                return;
            }
            ToCall::RequestTimeout { .. } => UasInput::RequestTimeout,
            ToCall::Response(r) => UasInput::Response(r),
            ToCall::Leg { call_id, msg } => return self.on_leg_sip(&call_id, *msg),
            ToCall::Shutdown => return self.input(CallInput::HangUp(Outcome::Interrupted)),
        };
        self.input(CallInput::Sip(input));
    }

    fn on_media(&mut self, ev: MediaEvent) {
        match ev {
            MediaEvent::Key { key, source, .. } => {
                debug!(key = %key.as_char(), ?source, "key");
                self.deps.metrics().key(source);
                self.input(CallInput::Key(key.as_char()));
            }
            MediaEvent::PlayFinished { id } => self.input(CallInput::PlayFinished { id }),
            MediaEvent::Recorded(rec) => self.recorded(rec),
            MediaEvent::NoMedia => {
                info!("no media from the caller; ending the call");
                self.input(CallInput::NoMedia);
            }
        }
    }

    /// Carries out everything the core put out.
    fn carry_out(&mut self) {
        while let Some(o) = self.core.poll_output() {
            match o {
                CallOutput::Respond { key, resp } => {
                    self.sip.respond(&key, self.peer, &self.call_id, resp)
                }
                CallOutput::Request(r) => self.sip.request(&self.call_id, self.peer, r),
                CallOutput::Retransmit(r) => self.sip.send_response(self.peer, r),
                CallOutput::Media(cmd) => self.media_command(cmd),
                CallOutput::Http(a) => self.http(a),
                CallOutput::JoinQueue {
                    id,
                    queue,
                    priority,
                    skills,
                } => self.pending.push_back(Pending::Join {
                    id,
                    queue,
                    priority,
                    skills,
                }),
                CallOutput::Acd(i) => {
                    if let Some(acd) = self.deps.acd() {
                        acd.input(i);
                    }
                }
                CallOutput::Dial { role, target, via } => {
                    self.pending.push_back(Pending::Dial(role, target, via))
                }
                CallOutput::LegSend { call_id, peer, out } => {
                    crate::leg::send(&self.sip, &call_id, peer, out)
                }
                CallOutput::LegMedia { call_id, media } => self.leg_media_command(&call_id, media),
                CallOutput::LegOver { call_id } => self.leg_over(&call_id),
                CallOutput::Bridge { role } => {
                    if !self.bridge_to(&role) {
                        debug!(?role, "nothing to bridge to");
                    }
                }
                CallOutput::Unbridge => self.end_bridge(),
                CallOutput::Answered => {
                    info!(
                        late_offer = self.core.uas().is_some_and(|u| u.offer().is_none()),
                        "answered"
                    );
                    self.called_back_answered();
                    self.record_begin(None);
                }
                CallOutput::Refused { status: 487 } => {
                    info!("caller cancelled while ringing");
                    self.record_begin(Some(487));
                }
                CallOutput::Refused { status } => {
                    info!(status, "call refused");
                    self.record_begin(Some(status));
                }
                CallOutput::Unreached { why } => self.called_back_unreached(&why),
                CallOutput::Ended { outcome, story } => {
                    self.ended_by_engine(outcome);
                    // Written now: the legs' last answers, awaited below, change nothing.
                    self.record_finish(outcome, &story);
                    self.ended = Some((outcome, story));
                }
            }
        }
        if let (Some(r), Some((flow, step))) = (&self.registration, self.core.position()) {
            r.set_position(flow, step, self.core.language().unwrap_or_default());
        }
        if self.core.is_ending() && !self.torn_down {
            // The core has already asked for its legs to be hung up and the bridge ended.
            self.torn_down = true;
            self.called_back_ends();
        }
    }

    /// Counts and logs a call the engine ended by a limit (one line per call a fail2ban
    /// filter can read: a source whose calls keep hitting the limits is worth a look).
    fn ended_by_engine(&self, outcome: Option<Outcome>) {
        let reason = match outcome {
            Some(Outcome::MaxCall) => ForcedEnd::MaxCall,
            Some(Outcome::NoMedia) => ForcedEnd::NoMedia,
            _ => return,
        };
        self.deps.metrics().forced_end(reason);
        warn!(
            source = %self.peer.remote,
            reason = reason.as_str(),
            seconds = self.started.elapsed().as_secs(),
            "call ended by the engine"
        );
    }

    /// A leg to dial or a queue to join. Each waits on its own boxed future: placing a
    /// leg (a DNS lookup, a TLS connection) takes kilobytes of state that would otherwise
    /// be part of every call's task for its whole life, though most calls never dial.
    async fn carry_pending(&mut self, p: Pending) {
        if self.core.is_ending() {
            return;
        }
        match p {
            Pending::Dial(role, target, via) => Box::pin(self.dial(role, target, via)).await,
            Pending::Join {
                id,
                queue,
                priority,
                skills,
            } => Box::pin(self.join_queue(id, queue, priority, skills)).await,
        }
    }

    fn media_command(&mut self, cmd: MediaCommand) {
        match cmd {
            MediaCommand::Start(n) => {
                let Some(port) = self.rtp_port.take() else {
                    return;
                };
                let origin = match self.origin {
                    Origin::Called => super::caller_media_origin(&self.live, self.peer.remote),
                    Origin::CalledBack(_) => MediaOrigin::Placed,
                };
                let id = super::start_session(
                    &self.deps,
                    port,
                    &n,
                    self.live.config.no_media_timeout,
                    super::media_sink(self.inbox.media()),
                    None,
                    origin,
                );
                self.session = Some(id);
                // A late offer's media starts with the ACK that has already arrived.
                if self
                    .core
                    .uas()
                    .is_some_and(|u| u.state() == crate::sip::uas::UasState::Confirmed)
                {
                    self.media(SessionCommand::Confirmed);
                }
            }
            MediaCommand::Play {
                id,
                audio,
                barge_in,
            } => {
                let prompts = self.resolve(&audio);
                if prompts.is_empty() {
                    // Nothing audible: the prompt is over as soon as it began.
                    self.input(CallInput::PlayFinished { id });
                    return;
                }
                self.media(SessionCommand::Play {
                    id,
                    prompts,
                    barge_in,
                });
            }
            MediaCommand::Stop { id } => self.media(SessionCommand::Stop { id }),
            MediaCommand::Update {
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
            MediaCommand::Record {
                id,
                max_duration,
                silence_timeout,
                terminator,
                name,
            } => {
                self.recording = Some((id, name));
                self.media(SessionCommand::Record {
                    id,
                    max_duration,
                    silence_timeout,
                    terminator: terminator.and_then(Key::from_char),
                });
            }
            MediaCommand::Ringback { ring_for } => self.media(SessionCommand::Play {
                id: RINGBACK_PLAY,
                prompts: Prompt::ringback(ring_for),
                barge_in: false,
            }),
            MediaCommand::StopRecording { id } => self.media(SessionCommand::StopRecording { id }),
        }
    }

    pub(super) fn media(&self, cmd: SessionCommand) {
        if let Some(id) = self.session {
            self.deps.media.command(id, cmd);
        }
    }

    /// The flow's HTTP step, on its own task: a slow service delays this call only, and
    /// the caller can still hang up meanwhile.
    fn http(&self, a: Action) {
        let Action::Http {
            id,
            method,
            url,
            headers,
            body,
            timeout,
        } = a
        else {
            return;
        };
        let req = crate::webhook::Request {
            method: format!("{method:?}").to_ascii_uppercase(),
            url,
            headers,
            body,
            timeout,
        };
        let client = self.deps.http.clone();
        let io = self.inbox.io();
        tokio::spawn(
            async move {
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
                let _ = io.send(Event::HttpDone { id, outcome });
            }
            .in_current_span(),
        );
    }

    pub(super) fn resolve(&self, audio: &[Audio]) -> Vec<Prompt> {
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

    /// Writes a finished recording to the recordings folder off the async workers, then
    /// tells the core where it is.
    fn recorded(&mut self, rec: crate::media::recorder::Recording) {
        use crate::media::recorder::StopReason;
        let Some((id, name)) = self.recording.take().filter(|(id, _)| *id == rec.id) else {
            return;
        };
        let recordings_dir = self.live.config.recordings_dir.clone();
        let path = recordings_dir.join(format!("{name}.wav"));
        let duration = rec.duration();
        let reason = match rec.reason {
            StopReason::MaxDuration => RecordEnd::Max,
            StopReason::Silence => RecordEnd::Silence,
            StopReason::Terminator => RecordEnd::Terminator,
            StopReason::Stopped => RecordEnd::Hangup,
        };
        info!(path = %path.display(), ?duration, ?reason, "recording finished");
        let io = self.inbox.io();
        tokio::spawn(
            async move {
                let (dir, file) = (recordings_dir, format!("{name}.wav"));
                let written = tokio::task::spawn_blocking(move || {
                    // The file and its temporary twin must really be in the folder: a
                    // symlink planted there must not make us write elsewhere.
                    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
                    hotline_core::paths::file_in(&dir, &format!("{file}.part"))
                        .map_err(|e| e.to_string())?;
                    let p = hotline_core::paths::file_in(&dir, &file).map_err(|e| e.to_string())?;
                    crate::media::recorder::write_wav(&p, &rec.samples).map_err(|e| e.to_string())
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
                let _ = io.send(Event::RecordDone {
                    id: RequestId(id),
                    path: path.display().to_string(),
                    duration,
                    reason,
                });
            }
            .in_current_span(),
        );
    }

    /// Where a leg's media events go (the call's inbox).
    pub(super) fn leg_media(&self) -> Mailbox<MediaEvent> {
        self.inbox.leg_media()
    }

    /// Where the queues' news for this call go.
    pub(super) fn queue_news(&self) -> Mailbox<QueueNews> {
        self.inbox.queue()
    }

    /// The call and its legs are over: frees what is left and records the call's story.
    fn finish(&mut self) {
        self.close_legs();
        if let Some(id) = self.session.take() {
            self.deps.media.remove(id);
        }
        let (outcome, story) = self.ended.take().unwrap_or_default();
        info!(
            outcome = ?outcome,
            seconds = self.started.elapsed().as_secs_f32(),
            story = ?story,
            "call ended"
        );
        if self.recorder.is_some() {
            // Over without the core saying so (it always does; this keeps the promise of
            // one finished record per call).
            self.record_finish(outcome, &story);
        }
        self.sip.ended(&self.call_id);
        self.finished = true;
    }

    /// The call's task failed before `finish`: the caller and the legs get their BYE or
    /// CANCEL where the core can still say so, and whatever the call holds is released
    /// here (media sessions, RTP ports, the place in a queue and the agent it reserved,
    /// the endpoint's routes); the record ends as failed. Nothing here may panic: it can
    /// run while the task unwinds.
    fn fail(&mut self) {
        warn!(
            call_id = %self.call_id,
            source = %self.peer.remote,
            reason = ForcedEnd::TaskFailed.as_str(),
            "call task failed; releasing what it held"
        );
        self.deps.metrics().forced_end(ForcedEnd::TaskFailed);
        let in_queue = self.core.in_queue();
        let mut left_queue = false;
        // `serve` catches a panic in the call's code, so the core is asked for the
        // caller's BYE and the legs' CANCEL or BYE; should it fail again, nothing is said
        // (the caller's own timers end the call) but everything below is released all the
        // same. A call dropped while its task unwinds never asks the core: a second panic
        // while unwinding would abort the process.
        let said = if std::thread::panicking() {
            Vec::new()
        } else {
            let core = &mut self.core;
            std::panic::catch_unwind(AssertUnwindSafe(|| {
                let now = Instant::now();
                core.handle(now, CallInput::HangUp(Outcome::Failed));
                core.hang_up_legs(now);
                std::iter::from_fn(|| core.poll_output()).collect::<Vec<_>>()
            }))
            .unwrap_or_else(|_| {
                warn!(call_id = %self.call_id, "the call's core failed again; no BYE sent");
                Vec::new()
            })
        };
        for o in said {
            match o {
                CallOutput::Request(r) => self.sip.request(&self.call_id, self.peer, r),
                CallOutput::Respond { key, resp } => {
                    self.sip.respond(&key, self.peer, &self.call_id, resp)
                }
                CallOutput::Acd(i) => {
                    left_queue |= matches!(i, crate::queue::acd::Input::CallerLeft { .. });
                    if let Some(acd) = self.deps.acd() {
                        acd.input(i);
                    }
                }
                CallOutput::LegSend { call_id, peer, out } => {
                    crate::leg::send(&self.sip, &call_id, peer, out)
                }
                _ => {}
            }
        }
        if in_queue
            && !left_queue
            && let Some(acd) = self.deps.acd()
        {
            acd.input(crate::queue::acd::Input::CallerLeft {
                call: self.call_id.clone(),
            });
        }
        self.close_legs();
        if !self.torn_down {
            self.torn_down = true;
            self.called_back_ends();
        }
        if let Some(id) = self.session.take() {
            self.deps.media.remove(id);
        }
        self.rtp_port = None;
        if self.recorder.is_some() {
            let story = self.core.story();
            self.record_finish(Some(Outcome::Failed), &story);
        }
        self.registration = None;
        self.sip.ended(&self.call_id);
        self.finished = true;
    }

    /// The call was answered (`None`) or refused with `status`: its record opens. Sent
    /// once; the sink never waits.
    pub(super) fn record_begin(&mut self, refused: Option<u16>) {
        let Some(r) = self.recorder.as_mut() else {
            return;
        };
        if r.begun {
            return;
        }
        r.begun = true;
        match refused {
            None => r.facts.answered_ms = Some(wall_ms()),
            Some(status) => r.refused = Some(status),
        }
        self.deps
            .records()
            .send(RecordMsg::Begin(record_build::begin(&r.facts)));
    }

    /// The call is over: its whole record, built from the story and what the shell saw.
    fn record_finish(&mut self, outcome: Option<Outcome>, story: &crate::flow::story::CallStory) {
        if self.recorder.as_ref().is_some_and(|r| !r.begun) {
            // Over before it was answered or refused (the caller's CANCEL raced us).
            self.record_begin(Some(487));
        }
        let Some(mut r) = self.recorder.take() else {
            return;
        };
        r.facts.ended_ms = wall_ms();
        let (by, fault) = match (outcome, r.refused) {
            (Some(Outcome::CallerHungUp), _) | (None, Some(487)) => (HungUpBy::Caller, None),
            (Some(Outcome::FarEndHungUp), _) => (HungUpBy::Agent, None),
            (Some(Outcome::Interrupted), _) => {
                r.facts.interrupted = true;
                (HungUpBy::Engine, Some("engine stopped".to_owned()))
            }
            (Some(Outcome::FlowHungUp), _) => (HungUpBy::Engine, None),
            (Some(Outcome::NoMedia), _) => (HungUpBy::Engine, Some("no media".to_owned())),
            // The limit is no fault: the record keeps the call's own outcome, and its
            // events say the limit ended it (`max_call_reached`).
            (Some(Outcome::MaxCall), _) => (HungUpBy::Engine, None),
            (Some(Outcome::Failed), _) => (HungUpBy::Engine, Some(TASK_FAILED.to_owned())),
            (Some(Outcome::AckTimeout), _) => (HungUpBy::Engine, Some("no ACK".to_owned())),
            (Some(Outcome::NoUsableAnswer), _) => {
                (HungUpBy::Engine, Some("no usable answer".to_owned()))
            }
            (None, Some(status)) => (HungUpBy::Engine, Some(format!("refused with {status}"))),
            (None, None) => (HungUpBy::Engine, None),
        };
        r.facts.hung_up_by = Some(by);
        r.facts.fault = fault;
        let (mut record, mut events) = record_build::build(&r.facts, story);
        if outcome == Some(Outcome::Failed) {
            // The engine failed this call whatever it had reached: no other outcome
            // would be honest.
            record.outcome = Some(crate::records::CallOutcome::Failed);
            if let Some(end) = events.last_mut().filter(|e| e.kind == "ended") {
                end.detail["outcome"] = "failed".into();
            }
        }
        // Counted here, not by the writer: the outcome is the record's even when records
        // are off.
        if let Some(outcome) = record.outcome {
            self.deps.metrics().call_ended(outcome);
        }
        self.deps.records().send(RecordMsg::Finish(record, events));
    }
}

/// What every call keeps for its whole life stays small: its task's future (tokio keeps
/// it in the task's allocation) and its inbox's messages (the channel keeps room for 32).
/// Each bound is about twice today's size, far below what a future that holds the call by
/// value, or a message that holds a SIP request inline, would take.
#[cfg(test)]
mod size_tests {
    use super::*;

    /// The size of the future `f` returns.
    fn future_size<A, B, C, F: Future>(_: impl FnOnce(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    #[test]
    fn a_calls_task_and_its_inbox_messages_stay_small() {
        // 18,776 bytes when `serve` took the call by value and dialling was inline.
        assert!(future_size(run) <= 4096, "run: {}", future_size(run));
        // 224 bytes when a SIP message was inline: 7 KiB of channel per call.
        let msg = std::mem::size_of::<CallMsg>();
        assert!(msg <= 96, "CallMsg: {msg}");
    }
}
