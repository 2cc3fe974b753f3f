//! Calling back a caller who asked to keep their place in a queue. The ACD decides when
//! (the request reached the front and an agent is held for it); this places the call to
//! the caller's number through the queue's `callback.dial` route, and once the caller
//! answers, says who is calling, puts the call back in line at its place and carries on
//! as a queued call: the agent is offered, bridged, and either side's hang-up ends both.
//!
//! Until the caller answers there is no call core yet: the dialling leg's SIP machine
//! ([`LegCore`]) is driven here ([`Dialling`]), the one place outside a call's core that
//! holds one; once answered, the call takes the leg's dialog as its own and the leg only
//! acknowledges a repeated 2xx.
//!
//! A call back runs no flow. Its story is the queue's: rung, answered or not, connected,
//! who hung up. What it reports to the ACD: `CallbackAnswered` (through
//! [`AcdHandle::rejoin`](crate::queue::service::AcdHandle::rejoin)) once the caller has
//! heard the introduction, `CallbackFailed` when the caller did not answer (or hung up
//! before being back in line), so that the ACD retries or gives up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{Instrument, debug, info, info_span, warn};

use super::CallDeps;
use super::actor::{Call, CallMsg, Inbox, Origin, Pending, Recorder, Start, via_and_branches};
use super::core::{CallCore, Script};
use crate::flow::machine::{Audio, PromptRef, RequestId};
use crate::flow::story::StoryEvent;
use crate::leg::{Dial, Leg};
use crate::mailbox::Mailbox;
use crate::media::session::{MediaEvent, SessionCommand};
use crate::queue::acd::CallbackRefusal;
use crate::queue::acd::Input;
use crate::queue::deliver::CallbackDial;
use crate::queue::store::CallbackId;
use crate::records::CallKind;
use crate::sip::endpoint::ToCall;
use crate::sip::leg::{LegCore, LegEvent, LegNews};
use crate::sip::message::Method;
use crate::sip::random_token;
use crate::sip::transport::Peer;
use crate::sip::uac::LegFailure;
use crate::sip::uas::Uas;

/// The play id of the introduction ("this is your call back"); the flow never sees it.
pub(super) const INTRO_PLAY: u64 = u64::MAX - 4;

// Said to the caller who answers, before the call is back in line.
use crate::queue::config::prompts::CALLBACK_INTRO as INTRO_PROMPT;

/// How long a cancelled or refused attempt may take to finish its SIP exchange.
const CLOSING: Duration = Duration::from_secs(5);

/// What a call back keeps of its beginning.
pub(super) struct CalledBack {
    /// The leg that placed the call: it acknowledges a repeated 2xx.
    leg: Dialling,
    id: CallbackId,
    queue: String,
    /// The ACD was told the caller answered (the call is back in line).
    rejoined: bool,
}

impl CalledBack {
    /// The dialling leg's next timer (see [`Dialling::poll_timeout`]).
    fn leg_timeout(&self) -> Option<Instant> {
        self.leg.poll_timeout()
    }
}

/// An answered call back's parts, for the call that makes the leg its own (see
/// [`Dialling::adopt`]).
struct Adopted {
    /// The leg's dialog, served as the call's own.
    uas: Uas,
    session: crate::media::clock::SessionId,
    peer: Peer,
}

/// The leg that calls the caller back: its SIP machine and its IO, driven here before the
/// call's core exists, and after the answer only to acknowledge a repeated 2xx.
struct Dialling {
    io: Leg,
    sip: LegCore,
    /// Our BYE or CANCEL went out and the leg's end is awaited.
    closing: bool,
}

impl Dialling {
    fn new(io: Leg, params: crate::sip::leg::LegParams) -> Dialling {
        let mut leg = Dialling {
            io,
            sip: LegCore::new(params),
            closing: false,
        };
        for ev in leg.send() {
            debug!(leg = %leg.io.call_id, ?ev, "leg event while placing");
        }
        leg
    }

    fn call_id(&self) -> &str {
        &self.io.call_id
    }

    /// Hands the answered leg's dialog and media to the call; the leg keeps its INVITE's
    /// side, to acknowledge a repeated 2xx. `None` before the answer.
    fn adopt(&mut self) -> Option<Adopted> {
        if self.io.session().is_none() || self.sip.uas().is_none() {
            return None;
        }
        let uas = self.sip.take_dialog()?;
        self.closing = false;
        Some(Adopted {
            uas,
            session: self.io.take_session()?,
            peer: self.io.peer,
        })
    }

    /// Something the endpoint routed to the leg; returns its news (the last, when there
    /// are several).
    fn on_sip(
        &mut self,
        deps: &CallDeps,
        msg: ToCall,
        media_tx: &Mailbox<MediaEvent>,
    ) -> Option<LegNews> {
        let input = crate::leg::leg_input(msg)?;
        self.sip.handle(Instant::now(), input);
        self.carry_out(deps, media_tx)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.sip.poll_timeout()
    }

    /// The leg's timers due at `now` fire; returns its news as [`Dialling::on_sip`] does.
    fn handle_timeout(
        &mut self,
        deps: &CallDeps,
        now: Instant,
        media_tx: &Mailbox<MediaEvent>,
    ) -> Option<LegNews> {
        if self.sip.poll_timeout().is_none_or(|t| t > now) {
            return None;
        }
        self.sip.handle_timeout(now);
        self.carry_out(deps, media_tx)
    }

    /// Ends the leg whatever its state: CANCEL while it rings, BYE once answered.
    fn hang_up(&mut self) {
        self.sip.hang_up(Instant::now());
        for ev in self.send() {
            debug!(leg = %self.io.call_id, ?ev, "leg event on hang-up");
        }
    }

    fn close(&mut self, deps: &CallDeps) {
        self.io.close(deps);
    }

    /// Sends what the machine decided and acts on what it reported; returns the news.
    fn carry_out(&mut self, deps: &CallDeps, media_tx: &Mailbox<MediaEvent>) -> Option<LegNews> {
        let mut news = None;
        // An event may make the machine say more (a hang-up for want of a port): loop.
        loop {
            let events = self.send();
            if events.is_empty() {
                break;
            }
            for ev in events {
                if let Some(n) = self.on_event(deps, ev, media_tx) {
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
                    warn!(leg = %self.io.call_id, %reason, "answer without usable SDP; hanging up");
                }
                Some(LegNews::Failed(f))
            }
            LegEvent::Answered(n) => {
                if !self.io.start_media(deps, &n, None, media_tx) {
                    self.hang_up();
                    return Some(LegNews::Failed(LegFailure::Error {
                        status: 500,
                        reason: "no RTP port".into(),
                    }));
                }
                Some(LegNews::Answered)
            }
            LegEvent::MediaUpdate {
                remote,
                send,
                reset_latch,
            } => {
                self.io.update_media(deps, remote, send, reset_latch);
                Some(LegNews::Hold { on: !send })
            }
            LegEvent::HungUp => {
                info!(leg = %self.io.call_id, "far end hung up");
                Some(LegNews::HungUp)
            }
            LegEvent::Refer { target } => Some(LegNews::Refer { target }),
            LegEvent::Key(_) | LegEvent::Closed => None,
        }
    }

    /// Sends the machine's messages through the endpoint; returns its events. Then notes
    /// whether the leg is closing.
    fn send(&mut self) -> Vec<LegEvent> {
        let mut events = Vec::new();
        while let Some(o) = self.sip.poll_output() {
            match o {
                crate::sip::leg::LegOutput::Event(e) => events.push(e),
                out => self.io.send(out),
            }
        }
        self.closing = self.sip.is_closing();
        events
    }
}

/// Calls back for `request` and serves the call to its end.
pub async fn call_back(deps: Arc<CallDeps>, request: CallbackDial) {
    // The call's id is drawn when it is placed (see `Call::call_back`).
    let span = info_span!(
        "callback",
        id = request.id.0,
        number = %request.number,
        queue = %request.queue,
        call_id = tracing::field::Empty
    );
    let _task = super::CallTask::new(&deps);
    async move {
        // Boxed: the dialling's state is not kept beside the call for its whole life.
        if let Some(call) = Box::pin(Call::call_back(deps, request)).await {
            call.serve().await;
        }
    }
    .instrument(span)
    .await
}

/// Tells the ACD that the attempt came to nothing (it retries later or gives up).
fn attempt_failed(deps: &CallDeps, id: CallbackId, why: &str) {
    info!(why, "callback attempt failed");
    if let Some(acd) = deps.acd() {
        acd.input(Input::CallbackFailed { id });
    }
}

/// An attempt that was dialled and not answered: a record of its own (`kind: callback`,
/// never answered, outcome `failed` with the reason as its fault), so the records show
/// every call placed. Reports count these apart from the calls (see docs/reports.md).
struct Attempt<'a> {
    call_id: &'a str,
    number: &'a str,
    target: &'a str,
    queue: &'a str,
    request: CallbackId,
    for_call: &'a str,
    attempt: u32,
    started_ms: i64,
}

impl Attempt<'_> {
    fn unanswered(&self, deps: &CallDeps, why: &str) {
        let records = deps.records();
        if !records.is_enabled() {
            return;
        }
        let mut recorder =
            Recorder::new(CallKind::Callback, self.call_id, self.number, self.target);
        recorder.facts.started_ms = self.started_ms;
        recorder.facts.ended_ms = super::actor::wall_ms();
        recorder.facts.fault = Some(why.to_owned());
        let story = crate::flow::story::CallStory {
            call_id: self.call_id.to_owned(),
            flow: String::new(),
            entries: vec![crate::flow::story::StoryEntry {
                at: Duration::ZERO,
                event: StoryEvent::CallbackPlaced {
                    queue: self.queue.to_owned(),
                    request: self.request.0,
                    for_call: self.for_call.to_owned(),
                    attempt: self.attempt,
                },
            }],
            tags: Vec::new(),
            outcome: None,
        };
        let (record, events) = hotline_core::record::build::build(&recorder.facts, &story);
        records.send(crate::records::RecordMsg::Finish(record, events));
    }
}

impl Call {
    /// Places the call and waits for the answer (the queue's `callback.ring_timeout`).
    /// Returns the answered call, introduction playing; `None` when nobody answered
    /// (the ACD has been told).
    async fn call_back(deps: Arc<CallDeps>, request: CallbackDial) -> Option<Box<Call>> {
        let CallbackDial {
            id,
            number,
            queue,
            for_call,
            attempt,
        } = request;
        let live = deps.live();
        let Some(cfg) = live
            .config
            .queues
            .get(&queue)
            .and_then(|q| q.callback.clone())
        else {
            attempt_failed(&deps, id, "the queue no longer offers callbacks");
            return None;
        };
        // Checked again at the last moment: the request may be older than the patterns
        // (restored after a restart, or taken before a reload narrowed them).
        if !cfg.allows(&number) {
            warn!(source = %number, reason = CallbackRefusal::NotAllowed.as_str(), %queue,
                "callback refused");
            deps.metrics()
                .callback_refused(CallbackRefusal::NotAllowed.as_str());
            attempt_failed(&deps, id, "the number may not be called back");
            return None;
        }
        let sip = deps.sip().clone();
        let call_id = format!("{}@hotline", random_token(20));
        tracing::Span::current().record("call_id", call_id.as_str());
        let mut inbox = Inbox::new();
        sip.originate(&call_id, inbox.sip());
        // Until the answer, the leg's media is the call's own.
        let media = inbox.media();
        let target = cfg.target(&number);
        let caller_id = cfg.caller_id.clone().unwrap_or_default();
        let dial = Dial {
            target: &target,
            call_id: Some(&call_id),
            caller_user: &caller_id,
            caller_display: None,
            listeners: deps.listeners(),
            prefer: None,
            via: None,
            public_address: live.config.public_address,
            no_media_timeout: live.config.no_media_timeout,
            // The hotline's own number, from its configuration.
            assert_identity: true,
            // A caller called back gets plain RTP, as most callers' phones expect.
            srtp: false,
        };
        let placed = Attempt {
            call_id: &call_id,
            number: &number,
            target: &target,
            queue: &queue,
            request: id,
            for_call: &for_call,
            attempt,
            started_ms: super::actor::wall_ms(),
        };
        let mut leg = match Leg::place(&deps, &sip, &call_id, dial).await {
            Ok((io, params)) => Dialling::new(io, params),
            Err(e) => {
                warn!(%target, error = %e, "call back not placed");
                sip.ended(&call_id);
                placed.unanswered(&deps, "not placed");
                attempt_failed(&deps, id, "not placed");
                return None;
            }
        };
        info!(%target, "calling the caller back");
        let rings_until = Instant::now() + cfg.ring_timeout;
        loop {
            // One sleep: until the ring timeout or the leg's next timer.
            let wake = leg
                .poll_timeout()
                .map_or(rings_until, |t| t.min(rings_until));
            let news = match inbox.next(Some(wake)).await {
                Some(CallMsg::Sip(msg)) => leg.on_sip(&deps, *msg, &media),
                Some(_) => continue,
                None if Instant::now() >= rings_until => {
                    leg.hang_up();
                    close_attempt(&deps, &mut leg, &mut inbox, &media).await;
                    placed.unanswered(&deps, "no answer in time");
                    attempt_failed(&deps, id, "no answer in time");
                    return None;
                }
                None => leg.handle_timeout(&deps, Instant::now(), &media),
            };
            match news {
                Some(LegNews::Answered) => break,
                Some(LegNews::Failed(why)) => {
                    close_attempt(&deps, &mut leg, &mut inbox, &media).await;
                    placed.unanswered(&deps, &why.to_string());
                    attempt_failed(&deps, id, &why.to_string());
                    return None;
                }
                Some(LegNews::HungUp) => {
                    close_attempt(&deps, &mut leg, &mut inbox, &media).await;
                    placed.unanswered(&deps, "hung up at once");
                    attempt_failed(&deps, id, "hung up at once");
                    return None;
                }
                Some(LegNews::Ringing) => debug!("the caller's phone rings"),
                Some(LegNews::Hold { .. } | LegNews::Refer { .. }) | None => {}
            }
        }
        let Some(answered) = leg.adopt() else {
            leg.hang_up();
            close_attempt(&deps, &mut leg, &mut inbox, &media).await;
            placed.unanswered(&deps, "answered without media");
            attempt_failed(&deps, id, "answered without media");
            return None;
        };
        info!("the caller answered the call back");
        let registration = deps.registry.register(crate::registry::NewLiveCall {
            call_id: call_id.clone(),
            caller: number.clone(),
            dialed: target,
            flow: String::new(),
            version: live.version,
            flows: live.flows.clone(),
            started_at: std::time::SystemTime::now(),
        });
        let advertised = super::advertised_ip(
            live.config.public_address,
            answered.peer.local,
            answered.peer.remote,
        );
        let (via, branches) = via_and_branches(&answered.peer, advertised);
        let mut core = CallCore::new(answered.uas, Script::Queue, via, branches);
        let now = Instant::now();
        core.limit_length(now, live.config.max_call);
        core.start(now);
        // A call back is a call of its own in the records, answered from the start and
        // linked to the call that asked.
        core.note(
            now,
            StoryEvent::CallbackPlaced {
                queue: queue.clone(),
                request: id.0,
                for_call,
                attempt,
            },
        );
        let mut recorder = Recorder::new(CallKind::Callback, &call_id, &number, &number);
        recorder.facts.flow_version = live.version.to_string();
        recorder.facts.language = live.prompts.default_language().to_string();
        let mut call = Call::new(Start {
            deps,
            live,
            peer: answered.peer,
            call_id,
            core,
            inbox,
            rtp_port: None,
            session: Some(answered.session),
            origin: Origin::CalledBack(Box::new(CalledBack {
                leg,
                id,
                queue,
                rejoined: false,
            })),
            caller: number,
            caller_display: None,
            registration: Some(registration),
        });
        call.recorder = Some(recorder);
        call.record_begin(None);
        let lib = &call.live.prompts;
        let intro = call.resolve(&[Audio::Prompt(PromptRef {
            language: lib.default_language().to_string(),
            fallback_language: lib.default_language().to_string(),
            name: INTRO_PROMPT.to_string(),
        })]);
        if intro.is_empty() {
            call.intro_finished();
        } else {
            call.media(SessionCommand::Play {
                id: INTRO_PLAY,
                prompts: intro,
                barge_in: false,
            });
        }
        Some(call)
    }

    /// The introduction is over: back in line (the serve loop joins).
    pub(super) fn intro_finished(&mut self) {
        if let Origin::CalledBack(cb) = &self.origin {
            let queue = cb.queue.clone();
            self.push_pending(Pending::Join {
                id: RequestId(0),
                queue,
                priority: 0,
                skills: Vec::new(),
            });
        }
    }

    /// The request this call answers, when it is a call back not yet back in line.
    pub(super) fn callback_to_rejoin(&self) -> Option<CallbackId> {
        match &self.origin {
            Origin::CalledBack(cb) if !cb.rejoined => Some(cb.id),
            _ => None,
        }
    }

    pub(super) fn callback_rejoined(&mut self) {
        if let Origin::CalledBack(cb) = &mut self.origin {
            cb.rejoined = true;
        }
    }

    /// A response for a call back's INVITE (a repeated 2xx) goes to its leg, which
    /// acknowledges it again.
    pub(super) fn called_back_response(&mut self, resp: crate::sip::message::Response) {
        let media = self.inbox.media();
        let Origin::CalledBack(cb) = &mut self.origin else {
            debug!(
                status = resp.status,
                "a response to an INVITE of no leg; ignored"
            );
            return;
        };
        if resp
            .headers
            .cseq()
            .is_ok_and(|c| c.method == Method::Invite)
        {
            let _ = cb.leg.on_sip(&self.deps, ToCall::Response(resp), &media);
        }
    }

    /// The call back's dialling leg's next timer: the call sleeps until then at the latest.
    pub(super) fn callback_leg_timeout(&self) -> Option<Instant> {
        match &self.origin {
            Origin::CalledBack(cb) => cb.leg_timeout(),
            Origin::Called => None,
        }
    }

    /// The dialling leg's timer is due: it acknowledges, answers or gives up as its core
    /// decides (its news no longer matter: the call has its dialog).
    pub(super) fn callback_leg_due(&mut self, now: Instant) {
        let media = self.inbox.media();
        if let Origin::CalledBack(cb) = &mut self.origin {
            let _ = cb.leg.handle_timeout(&self.deps, now, &media);
        }
    }

    /// A call back ends: if the caller never got back in line, the attempt failed.
    pub(super) fn called_back_ends(&mut self) {
        let Origin::CalledBack(cb) = &mut self.origin else {
            return;
        };
        if !cb.rejoined {
            cb.rejoined = true;
            attempt_failed(
                &self.deps,
                cb.id,
                "the caller hung up before reaching the line",
            );
        }
        cb.leg.close(&self.deps);
    }
}

/// Waits (briefly) for a given-up attempt's last answers, then frees it.
async fn close_attempt(
    deps: &CallDeps,
    leg: &mut Dialling,
    inbox: &mut Inbox,
    media: &Mailbox<MediaEvent>,
) {
    let until = Instant::now() + CLOSING;
    while leg.closing {
        let wake = leg.poll_timeout().map_or(until, |t| t.min(until));
        match inbox.next(Some(wake)).await {
            Some(CallMsg::Sip(m)) => {
                let _ = leg.on_sip(deps, *m, media);
            }
            Some(_) => {}
            None if Instant::now() >= until => break,
            None => {
                let _ = leg.handle_timeout(deps, Instant::now(), media);
            }
        }
    }
    leg.close(deps);
    deps.sip().ended(leg.call_id());
}
