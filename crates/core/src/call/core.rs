//! One call as data: its UAS (the caller's dialog) and what the call runs once answered
//! (its flow machine, or the tones of a feature code) composed into one state machine,
//! `handle(now, CallInput)` / `poll_output()` / `poll_timeout()`. What the caller sends,
//! what the media hears and what IO returns go in; SIP messages, media commands, HTTP
//! requests and the call's end (with its story) come out.
//!
//! Pure: no sockets, no tasks, no clock, no randomness (the Via branches of our requests
//! are a prefix drawn by the shell and a counter). It does not resolve prompts (the shell
//! has the library).
//!
//! It also holds the SIP machine ([`LegCore`]) of every outgoing leg the call placed, by
//! role ([`LegRole`]): a transfer's target, the agents a queue offers the call to, the
//! target an agent's REFER named. What needs IO to place a leg is the shell's: it is
//! asked to ([`CallOutput::Dial`]), resolves the target, takes an RTP port, draws the
//! leg's random ids, and answers with [`CallInput::LegPlaced`] (or
//! [`CallInput::LegNotPlaced`]); the core then builds the leg's machine. What the
//! endpoint routes to a leg comes in as [`CallInput::LegSip`], the leg's messages go out
//! as [`CallOutput::LegSend`], its timers are the core's, and its events become the news
//! (`LegNews`) the transfer, the referral and the queue place act on. The shell runs the
//! leg's media session ([`CallOutput::LegMedia`]), bridges it ([`CallOutput::Bridge`]) and
//! frees it once the leg is over ([`CallOutput::LegOver`]). A leg hung up is kept until
//! its last answer (its CANCEL's INVITE, its BYE), even after the call ended.
//!
//! A transfer is the core's (ringback, the ring time, bridging, what the flow is told),
//! and so is the call's place in a queue ([`QueuePlace`]): the shell only puts the call in
//! line with the ACD ([`CallOutput::JoinQueue`]) and passes the ACD's news in.
//!
//! A call back ([`CallCore::call_back`]) begins as a leg of its own ([`LegRole::CallBack`])
//! that rings the caller until the queue's ring time is up. Once the caller answers, the
//! leg's dialog becomes the call's (the leg only acknowledges a repeated 2xx), the caller
//! hears who is calling and the call goes back in line; an attempt that is not answered
//! ends with [`CallOutput::Unreached`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::info;

use super::Outcome;
use super::place::{Handled, PlaceInput, PlaceOutput, PlaceParams, QueuePlace};
use crate::flow::machine::{
    Action, Audio, Event, FlowMachine, PlayId, QueueOutcome, RequestId, TransferOutcome,
};
use crate::flow::story::{CallStory, StoryEntry, StoryEvent};
use crate::queue::acd::Input as AcdInput;
use crate::queue::news::QueueNews;
use crate::sip::leg::{LegCore, LegEvent, LegInput, LegNews, LegOutput, LegParams};
use crate::sip::message::{Request, Response, Via};
use crate::sip::peer::Peer;
use crate::sip::sdp::Negotiated;
use crate::sip::transaction::TransactionKey;
use crate::sip::uac::LegFailure;
use crate::sip::uas::{Ending, Uas, UasEvent, UasInput, UasOutput};

/// The play id of the ringback tone a caller hears while a transfer rings; the flow
/// machine never sees it.
pub const RINGBACK_PLAY: u64 = u64::MAX - 1;

/// Why a leg was placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegRole {
    /// The flow's `transfer` step with this request id.
    Transfer(RequestId),
    /// An offer of the queued call to this agent.
    Agent(String),
    /// The target an agent's REFER named (a blind transfer by the agent's phone).
    Referred,
    /// The caller, called back: once answered, its dialog is the call's own.
    CallBack,
}

/// How long the target of an agent's transfer may ring before it counts as unanswered:
/// the agent may have hung up already, and then nobody else would end the ringing.
pub const REFER_RING: Duration = Duration::from_secs(60);

/// A blind transfer an agent asked for (REFER) while talking to the caller: the agent,
/// the target, until when it may ring (none once answered), and whether the agent hung
/// up meanwhile (then the caller hears ringback).
#[derive(Debug, Clone)]
struct Referral {
    agent: String,
    rings_until: Option<Instant>,
    agent_gone: bool,
}

/// A transfer in progress: its step, and until when the target may ring (none once
/// answered).
#[derive(Debug, Clone, Copy)]
struct Transfer {
    id: RequestId,
    rings_until: Option<Instant>,
}

/// The play id of a call back's introduction ("this is your call back"), said to the
/// caller who answers before the call goes back in line.
pub const INTRO_PLAY: u64 = u64::MAX - 4;

/// The play id of a feature code's tones (a flow's plays count up from 1 too, but a call
/// runs one or the other).
pub const TONES_PLAY: u64 = 1;

/// How long a call whose dialog is over waits for a recording in progress to be stopped
/// and saved, so that a caller who hangs up mid-message still leaves a whole file.
pub const RECORDING_GRACE: Duration = Duration::from_secs(5);

/// What the call runs once answered. One per call, made once: the variants' sizes do
/// not matter.
#[allow(clippy::large_enum_variant)]
pub enum Script {
    /// A call flow.
    Flow(FlowMachine),
    /// These sounds, then hang up (a feature code's confirmation).
    Tones(Vec<Audio>),
    /// A call back: the introduction, then back in line in `queue`; the call ends when
    /// its time in line does.
    CallBack { queue: String, intro: Vec<Audio> },
    /// Nothing: a call refused before it could run anything (no route, a flow that is not
    /// loaded).
    Nothing,
}

/// What a call back is placed with (see [`CallCore::call_back`]).
#[derive(Debug, Clone)]
pub struct CallBack {
    /// Everything the leg's SIP machine needs (the shell resolved the caller's number,
    /// took the RTP port and drew the random ids), and where its messages go.
    pub leg: LegParams,
    pub peer: Peer,
    /// How long the caller's phone may ring.
    pub ring_for: Duration,
    /// The queue the caller goes back to.
    pub queue: String,
    /// What the caller hears first once they answer.
    pub intro: Vec<Audio>,
}

/// The caller's side of the call. One per call, in place: the variants' sizes do not
/// matter.
#[allow(clippy::large_enum_variant)]
enum Caller {
    /// The caller's dialog: the INVITE they sent, or a call back's once answered.
    Dialog(Uas),
    /// A call back rings the caller (its leg has [`LegRole::CallBack`]) until then.
    Ringing(Instant),
    /// The call back was not answered; the call is over.
    Unreached,
}

impl Caller {
    fn uas(&self) -> Option<&Uas> {
        match self {
            Caller::Dialog(u) => Some(u),
            _ => None,
        }
    }

    fn uas_mut(&mut self) -> Option<&mut Uas> {
        match self {
            Caller::Dialog(u) => Some(u),
            _ => None,
        }
    }
}

/// What the call hears.
#[derive(Debug, Clone)]
pub enum CallInput {
    /// Something of the caller's dialog.
    Sip(UasInput),
    /// A key the media heard (RFC 4733 or in-band).
    Key(char),
    /// The last frame of this playback was sent.
    PlayFinished { id: u64 },
    /// Nothing arrived from the caller for too long.
    NoMedia,
    /// What IO the call asked for returned (an HTTP answer, a saved recording, a
    /// transfer's or a queue's end).
    Io(Event),
    /// The shell ends the call (the far end of a bridge hung up or went silent, a call back
    /// is over).
    HangUp(Outcome),
    /// The leg the core asked for ([`CallOutput::Dial`]) is ready to call: `params` is
    /// everything its SIP machine needs (the shell resolved the target, took the RTP port
    /// and drew the random ids), `peer` where its messages go.
    LegPlaced {
        role: LegRole,
        params: Box<LegParams>,
        peer: Peer,
    },
    /// What the endpoint routed to the leg with this Call-ID.
    LegSip { call_id: String, input: LegInput },
    /// The leg of `role` could not be placed at all.
    LegNotPlaced { role: LegRole, why: String },
    /// Nothing arrives any more from the leg the caller is bridged to.
    LegNoMedia,
    /// The ACD took the caller (after [`CallOutput::JoinQueue`]).
    Joined(PlaceParams),
    /// The ACD did not take the caller.
    NotJoined { id: RequestId, why: String },
    /// The ACD's news for the call in line.
    Queue(QueueNews),
}

/// What the media session should do.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaCommand {
    /// Set up the session for what was negotiated.
    Start(Negotiated),
    Play {
        id: u64,
        audio: Vec<Audio>,
        barge_in: bool,
    },
    Stop {
        id: u64,
    },
    /// The caller moved or held the call.
    Update {
        remote: SocketAddr,
        send: bool,
        reset_latch: bool,
    },
    Record {
        id: u64,
        max_duration: Duration,
        silence_timeout: Option<Duration>,
        terminator: Option<char>,
        name: String,
    },
    /// Let the caller hear ringback (as [`RINGBACK_PLAY`]) for at most `ring_for`.
    Ringback {
        ring_for: Duration,
    },
    /// End the recording in progress now (the call is over); what it holds is kept.
    StopRecording {
        id: u64,
    },
}

/// What a leg's media session should do.
#[derive(Debug, Clone, PartialEq)]
pub enum LegMedia {
    /// The leg was answered: start its session for what was agreed, on the caller's media
    /// worker, so that the two can be bridged.
    Start(Negotiated),
    /// The far end moved or held its media: the bridge keeps running, this side just
    /// stops sending (`send: false`) or sends again.
    Update {
        remote: SocketAddr,
        send: bool,
        reset_latch: bool,
    },
}

/// An outgoing leg's SIP machine, and where its messages go.
struct Leg {
    /// Why it was placed; `None` once let go (hung up, failed, or the far end hung up),
    /// kept only until its last answers.
    role: Option<LegRole>,
    peer: Peer,
    sip: LegCore,
}

/// What the call wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum CallOutput {
    /// Answer a server transaction.
    Respond {
        key: TransactionKey,
        resp: Response,
    },
    /// Send as it is, outside any transaction (a copy of our 2xx until its ACK).
    Retransmit(Response),
    /// Send through a new client transaction.
    Request(Request),
    Media(MediaCommand),
    /// The flow's HTTP step (answer with `CallInput::Io(Event::HttpDone)`).
    Http(Action),
    /// Put the caller in line with the ACD; answer with [`CallInput::Joined`] or
    /// [`CallInput::NotJoined`].
    JoinQueue {
        id: RequestId,
        queue: String,
        priority: i32,
        skills: Vec<String>,
    },
    /// Tell the ACD.
    Acd(AcdInput),
    /// Get an outgoing leg for `role` to `target` ready (sent to `via` when given):
    /// answer with [`CallInput::LegPlaced`] or [`CallInput::LegNotPlaced`].
    Dial {
        role: LegRole,
        target: String,
        via: Option<Peer>,
    },
    /// Send this message of the leg with this Call-ID to `peer`: a request through a new
    /// client transaction, an ACK or a copy of a 2xx as it is, a response to a server
    /// transaction. Never a [`LegOutput::Event`].
    LegSend {
        call_id: String,
        peer: Peer,
        out: LegOutput,
    },
    /// What the media session of the leg with this Call-ID should do.
    LegMedia {
        call_id: String,
        media: LegMedia,
    },
    /// The leg with this Call-ID is over: free its media session, its RTP port and its
    /// routing.
    LegOver {
        call_id: String,
    },
    /// Connect the caller's media to the (answered) leg of `role` (see
    /// [`CallCore::leg_call_id`]).
    Bridge {
        role: LegRole,
    },
    /// Disconnect the bridge.
    Unbridge,
    /// The call was answered (the flow starts with its media).
    Answered,
    /// The INVITE was refused with this status, or cancelled (487).
    Refused {
        status: u16,
    },
    /// The call back was not answered (or not usable): the attempt failed, for `why`.
    /// [`CallOutput::Ended`] follows.
    Unreached {
        why: String,
    },
    /// The call is over; nothing more comes out.
    Ended {
        outcome: Option<Outcome>,
        story: CallStory,
    },
}

pub struct CallCore {
    caller: Caller,
    script: Script,
    /// Our Via without its branch, and the branch prefix the shell drew.
    via: Via,
    branch_prefix: String,
    branches: u64,
    started: bool,
    outcome: Option<Outcome>,
    /// The recording in progress (its id), and once the dialog is over, until when the
    /// call waits for it.
    recording: Option<u64>,
    recording_until: Option<Instant>,
    transfer: Option<Transfer>,
    /// An agent's transfer of the caller (REFER), from its 202 until it connects or fails.
    referral: Option<Referral>,
    place: Option<QueuePlace>,
    /// The leg the caller is bridged to.
    bridged: Option<LegRole>,
    /// The outgoing legs, in use or let go and awaiting their last answers.
    legs: Vec<Leg>,
    /// The roles asked for by [`CallOutput::Dial`] and not placed yet; a role hung up
    /// meanwhile is no longer here, and its leg is hung up as soon as it is placed.
    dialling: Vec<LegRole>,
    ended: bool,
    /// The engine's maximum call length and when this call reaches it; set by the shell.
    max_until: Option<(Instant, Duration)>,
    /// The story of a call that runs no flow (a call back's time in line), and its zero
    /// (the script's start); a flow keeps its own.
    story: CallStory,
    story_zero: Option<Instant>,
    out: VecDeque<CallOutput>,
}

impl CallCore {
    /// A call for the INVITE `uas` was made from, running `script` once answered. `via`
    /// is our Via for requests; each gets the branch `<branch_prefix>-<n>`.
    pub fn new(uas: Uas, script: Script, via: Via, branch_prefix: String) -> CallCore {
        let mut core = CallCore::with(Caller::Dialog(uas), script, via, branch_prefix);
        core.pump(None);
        core
    }

    /// A call back: its leg rings the caller (its INVITE is the first output) for at most
    /// `p.ring_for`; once answered, the caller hears `p.intro` and goes back in line in
    /// `p.queue`. `via` and `branch_prefix` are for the call's own requests once the
    /// dialog is its own, as in [`CallCore::new`].
    pub fn call_back(now: Instant, p: CallBack, via: Via, branch_prefix: String) -> CallCore {
        let script = Script::CallBack {
            queue: p.queue,
            intro: p.intro,
        };
        let mut core = CallCore::with(
            Caller::Ringing(now + p.ring_for),
            script,
            via,
            branch_prefix,
        );
        core.legs.push(Leg {
            role: Some(LegRole::CallBack),
            peer: p.peer,
            sip: LegCore::new(p.leg),
        });
        core.pump(Some(now));
        core
    }

    fn with(caller: Caller, script: Script, via: Via, branch_prefix: String) -> CallCore {
        CallCore {
            caller,
            script,
            via,
            branch_prefix,
            branches: 0,
            started: false,
            outcome: None,
            recording: None,
            recording_until: None,
            transfer: None,
            referral: None,
            place: None,
            bridged: None,
            legs: Vec::new(),
            dialling: Vec::new(),
            ended: false,
            max_until: None,
            story: CallStory::default(),
            story_zero: None,
            out: VecDeque::new(),
        }
    }

    /// Bounds the call's length: `max_call` after `now` the engine hangs up the caller and any leg
    /// (a transfer, an agent), whatever the call is doing, so no call holds its slot,
    /// port and agent forever.
    /// A limit too large for the clock is no limit.
    pub fn limit_length(&mut self, now: Instant, max_call: Duration) {
        self.max_until = now.checked_add(max_call).map(|t| (t, max_call));
    }

    /// Answers (or starts ringing); see [`Uas::answer`].
    pub fn answer(&mut self, now: Instant) {
        if let Some(uas) = self.caller.uas_mut() {
            uas.answer(now);
        }
        self.pump(Some(now));
    }

    /// Refuses the INVITE (before the answer), say when its flow cannot run.
    pub fn refuse(&mut self, now: Instant, status: u16, reason: &str) {
        if let Some(uas) = self.caller.uas_mut() {
            uas.refuse(status, reason);
        }
        self.pump(Some(now));
    }

    /// The caller's dialog; `None` while a call back rings (what arrives for the call's
    /// Call-ID is then its leg's: [`CallInput::LegSip`]) and once it went unanswered.
    pub fn uas(&self) -> Option<&Uas> {
        self.caller.uas()
    }

    /// The call's story so far: the flow's, or for a call back its time in line (empty
    /// for a feature code).
    pub fn story(&self) -> CallStory {
        match &self.script {
            Script::Flow(m) => m.story().clone(),
            _ => self.story.clone(),
        }
    }

    /// Adds what happened at `now` to the call's story: the flow's when it runs one
    /// (in its place among the flow's entries), the call's own otherwise.
    pub fn note(&mut self, now: Instant, event: StoryEvent) {
        match &mut self.script {
            Script::Flow(m) => m.add_to_story(now, event),
            _ => {
                let zero = *self.story_zero.get_or_insert(now);
                self.story.entries.push(StoryEntry {
                    at: now.saturating_duration_since(zero),
                    event,
                });
            }
        }
    }

    /// Whether the story is told here rather than by a flow machine (which notes the
    /// queue's steps itself).
    fn tells_queue_story(&self) -> bool {
        matches!(self.script, Script::CallBack { .. })
    }

    /// Where the flow is: (flow, step).
    pub fn position(&self) -> Option<(&str, &str)> {
        match &self.script {
            Script::Flow(m) => Some(m.position()),
            _ => None,
        }
    }

    /// The caller's language, when the flow chose one.
    pub fn language(&self) -> Option<&str> {
        match &self.script {
            Script::Flow(m) => Some(m.language()),
            _ => None,
        }
    }

    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome
    }

    /// Whether the call is on its way out (nothing new starts).
    pub fn is_ending(&self) -> bool {
        self.outcome.is_some() || self.ended
    }

    pub fn handle(&mut self, now: Instant, input: CallInput) {
        match input {
            // A leg's last answers are awaited even once the call is over.
            CallInput::LegSip { call_id, input } => {
                if let Some(leg) = self.legs.iter_mut().find(|l| l.sip.call_id() == call_id) {
                    leg.sip.handle(now, input);
                }
                self.pump(Some(now));
                return;
            }
            CallInput::LegPlaced { role, params, peer } => {
                let wanted = self.dialled(&role) && !self.ended;
                let mut sip = LegCore::new(*params);
                if !wanted {
                    // Hung up while it was being placed: CANCEL it at once.
                    sip.hang_up(now);
                }
                self.legs.push(Leg {
                    role: wanted.then_some(role),
                    peer,
                    sip,
                });
                self.pump(Some(now));
                return;
            }
            _ if self.ended => return,
            _ => {}
        }
        match input {
            CallInput::LegSip { .. } | CallInput::LegPlaced { .. } => {}
            CallInput::Sip(s) => {
                let (via, prefix, n) = (&self.via, &self.branch_prefix, &mut self.branches);
                if let Some(uas) = self.caller.uas_mut() {
                    uas.handle(now, s, || branched(via, prefix, n));
                }
            }
            // Keys while bridged belong to the far end (the media clock relays them).
            CallInput::Key(_) if self.bridged.is_some() => {}
            CallInput::Key(k) => {
                if self.place_input(now, PlaceInput::Key(k)) == Handled::NotMine {
                    self.flow(now, Event::Key(k));
                }
            }
            CallInput::PlayFinished { id } => {
                if self.place_input(now, PlaceInput::PlayFinished { id }) == Handled::NotMine {
                    self.play_finished(now, id);
                }
            }
            CallInput::NoMedia => {
                self.outcome.get_or_insert(Outcome::NoMedia);
                self.hang_up(now);
            }
            CallInput::Io(ev) => {
                if let Event::RecordDone { id, .. } = &ev
                    && self.recording == Some(id.0)
                {
                    self.recording = None;
                    self.recording_until = None;
                }
                // What IO reports belongs in the story even after the caller hung up.
                if self.started
                    && let Script::Flow(m) = &mut self.script
                {
                    m.handle(now, ev);
                }
            }
            CallInput::HangUp(why) => {
                self.outcome.get_or_insert(why);
                self.hang_up(now);
            }
            CallInput::LegNotPlaced {
                role: LegRole::Referred,
                why,
            } if self.dialled(&LegRole::Referred) => self.referral_failed(
                now,
                503,
                "Service Unavailable",
                TransferOutcome::Failed(why),
            ),
            CallInput::LegNotPlaced {
                role: role @ LegRole::Agent(_),
                ..
            } if self.dialled(&role) => {
                if let LegRole::Agent(agent) = role {
                    let _ = self.place_input(now, PlaceInput::AgentNotPlaced { agent });
                }
            }
            CallInput::LegNotPlaced {
                role: role @ LegRole::Transfer(_),
                why,
            } if self.dialled(&role) => {
                if let LegRole::Transfer(id) = role
                    && self.transfer.is_some_and(|t| t.id == id)
                {
                    self.transfer_failed(now, id, TransferOutcome::Failed(why));
                }
            }
            // A leg hung up while it was being placed: nobody waits for it any more.
            CallInput::LegNotPlaced { .. } => {}
            CallInput::Joined(params) => {
                if self.is_ending() {
                    // The caller hung up while the ACD took them: out again at once.
                    self.out
                        .push_back(CallOutput::Acd(AcdInput::CallerLeft { call: params.call }));
                } else {
                    if self.tells_queue_story() {
                        self.note(
                            now,
                            StoryEvent::QueueJoined {
                                queue: params.queue.clone(),
                            },
                        );
                    }
                    self.place = Some(QueuePlace::new(now, params));
                    self.drain_place(now);
                }
            }
            CallInput::NotJoined { id, why } => {
                self.queue_done(now, id, QueueOutcome::Failed(why), Duration::ZERO)
            }
            CallInput::Queue(news) => {
                let _ = self.place_input(now, PlaceInput::News(news));
            }
            CallInput::LegNoMedia => {
                if self.bridged.take().is_some() {
                    self.out.push_back(CallOutput::Unbridge);
                    if let Some(t) = self.transfer.take() {
                        self.hang_up_leg(now, &LegRole::Transfer(t.id));
                    }
                    if self.referral.take().is_some() {
                        self.hang_up_leg(now, &LegRole::Referred);
                    }
                    self.outcome.get_or_insert(Outcome::NoMedia);
                    self.hang_up(now);
                }
            }
        }
        self.pump(Some(now));
    }

    /// Hands `input` to the call's place in a queue, if it has one, and carries out what
    /// the place decided.
    fn place_input(&mut self, now: Instant, input: PlaceInput) -> Handled {
        let Some(place) = self.place.as_mut() else {
            return Handled::NotMine;
        };
        let handled = place.handle(now, input);
        self.drain_place(now);
        handled
    }

    fn drain_place(&mut self, now: Instant) {
        while let Some(o) = self.place.as_mut().and_then(QueuePlace::poll_output) {
            match o {
                PlaceOutput::Play { id, audio } => {
                    self.out.push_back(CallOutput::Media(MediaCommand::Play {
                        id,
                        audio,
                        barge_in: false,
                    }))
                }
                PlaceOutput::Stop { id } => self
                    .out
                    .push_back(CallOutput::Media(MediaCommand::Stop { id })),
                PlaceOutput::Acd(i) => self.out.push_back(CallOutput::Acd(i)),
                PlaceOutput::DialAgent {
                    agent,
                    contact,
                    via,
                } => self.dial(LegRole::Agent(agent), contact, via),
                PlaceOutput::HangUpAgent { agent } => self.hang_up_leg(now, &LegRole::Agent(agent)),
                PlaceOutput::Bridge { agent } => {
                    let role = LegRole::Agent(agent);
                    self.bridged = Some(role.clone());
                    self.out.push_back(CallOutput::Bridge { role });
                }
                PlaceOutput::Unbridge => {
                    self.bridged = None;
                    self.out.push_back(CallOutput::Unbridge);
                }
                PlaceOutput::Flow(Event::QueueDone {
                    id,
                    outcome,
                    waited,
                }) => self.queue_done(now, id, outcome, waited),
                PlaceOutput::Flow(Event::QueueConnected { agent, .. })
                    if self.tells_queue_story() =>
                {
                    self.note(now, StoryEvent::QueueAnswered { agent })
                }
                PlaceOutput::Flow(ev) => self.flow(now, ev),
                PlaceOutput::Story(ev) => self.note(now, ev),
                PlaceOutput::Done => self.place = None,
            }
        }
    }

    /// The time in line is over: the flow goes on; a call back, which runs no flow, ends.
    fn queue_done(&mut self, now: Instant, id: RequestId, outcome: QueueOutcome, waited: Duration) {
        if matches!(self.script, Script::CallBack { .. }) {
            self.note(
                now,
                StoryEvent::QueueFinished {
                    outcome: outcome.as_str().to_owned(),
                    waited: Some(waited),
                },
            );
            self.outcome.get_or_insert(Outcome::FarEndHungUp);
            self.hang_up(now);
            return;
        }
        self.flow(
            now,
            Event::QueueDone {
                id,
                outcome,
                waited,
            },
        );
    }

    /// The far end the caller was bridged to (a transfer's or a referral's target) hung
    /// up: the call is over.
    fn far_end_hung_up(&mut self, now: Instant) {
        if self.bridged.take().is_some() {
            self.out.push_back(CallOutput::Unbridge);
        }
        self.outcome.get_or_insert(Outcome::FarEndHungUp);
        self.hang_up(now);
    }

    /// The call is ending: it leaves the line, and the transfer being rung is hung up.
    fn let_go(&mut self, now: Instant) {
        if self.place.is_some() {
            let _ = self.place_input(now, PlaceInput::Leave);
            self.place = None;
        }
        if let Some(t) = self.transfer.take() {
            let role = LegRole::Transfer(t.id);
            if self.bridged.take().is_some() {
                self.out.push_back(CallOutput::Unbridge);
            }
            self.hang_up_leg(now, &role);
        }
        if self.referral.take().is_some() {
            if self.bridged.take().is_some() {
                self.out.push_back(CallOutput::Unbridge);
            }
            self.hang_up_leg(now, &LegRole::Referred);
        }
    }

    /// The connected agent's phone asked (REFER, answered 202) to hand the caller to
    /// `target`: the target is dialled while agent and caller go on talking, and the
    /// agent hears `100 Trying`. Anything but the agent talking to the caller, with no
    /// other transfer under way, is refused with a final NOTIFY (nothing is dialled).
    fn refer(&mut self, now: Instant, agent: String, target: String) {
        let role = LegRole::Agent(agent.clone());
        let talking = self.place.as_ref().and_then(QueuePlace::agent) == Some(agent.as_str());
        if !talking || self.referral.is_some() || self.transfer.is_some() || self.is_ending() {
            info!(%agent, %target, "agent's transfer refused: not talking to the caller");
            self.notify_leg(&role, 503, "Service Unavailable");
            return;
        }
        info!(%agent, %target, "the agent transfers the caller");
        self.note(
            now,
            StoryEvent::TransferStarted {
                target: target.clone(),
            },
        );
        self.referral = Some(Referral {
            agent,
            rings_until: Some(now + REFER_RING),
            agent_gone: false,
        });
        self.notify_leg(&role, 100, "Trying");
        self.dial(LegRole::Referred, target, None);
    }

    /// The agent hung up before the target answered: that is a blind transfer going on.
    /// The agent leaves the queue's call (wrap-up) and the caller hears ringback.
    fn referrer_gone(&mut self, now: Instant, agent: String) {
        info!(%agent, "the agent hung up; the transfer goes on");
        let rings_until = match self.referral.as_mut() {
            Some(r) => {
                r.agent_gone = true;
                r.rings_until
            }
            None => return,
        };
        let _ = self.place_input(now, PlaceInput::Transferred { agent });
        let ring_for = rings_until.map_or(Duration::ZERO, |t| t.saturating_duration_since(now));
        self.out
            .push_back(CallOutput::Media(MediaCommand::Ringback { ring_for }));
    }

    /// News of the leg to the target an agent transferred the caller to.
    fn referred_news(&mut self, now: Instant, news: LegNews) {
        let Some(r) = self.referral.clone() else {
            return;
        };
        match news {
            LegNews::Ringing | LegNews::Hold { .. } | LegNews::Refer { .. } => {}
            LegNews::Answered => {
                let Some(referral) = self.referral.as_mut() else {
                    return;
                };
                referral.rings_until = None;
                if r.agent_gone {
                    self.stop_ringback();
                } else {
                    self.notify_leg(&LegRole::Agent(r.agent.clone()), 200, "OK");
                    // The agent leaves: the bridge ends, the leg is hung up, wrap-up.
                    let _ = self.place_input(
                        now,
                        PlaceInput::Transferred {
                            agent: r.agent.clone(),
                        },
                    );
                }
                self.bridged = Some(LegRole::Referred);
                self.out.push_back(CallOutput::Bridge {
                    role: LegRole::Referred,
                });
                info!(agent = %r.agent, "the agent's transfer connected");
                self.note(
                    now,
                    StoryEvent::TransferFinished {
                        outcome: TransferOutcome::Connected.to_string(),
                    },
                );
            }
            LegNews::Failed(f) => {
                let (status, reason, outcome) = match f {
                    LegFailure::Busy => (486, "Busy Here".to_owned(), TransferOutcome::Busy),
                    LegFailure::Declined => (
                        603,
                        "Decline".to_owned(),
                        TransferOutcome::Failed("declined".into()),
                    ),
                    LegFailure::NoAnswer => (
                        480,
                        "Temporarily Unavailable".to_owned(),
                        TransferOutcome::NoAnswer,
                    ),
                    LegFailure::Error { status, reason } => {
                        let outcome = TransferOutcome::Failed(format!("{status} {reason}"));
                        (status, reason, outcome)
                    }
                };
                self.referral_failed(now, status, &reason, outcome);
            }
            LegNews::HungUp => {
                // The target hung up after answering: the call is over.
                self.referral = None;
                self.far_end_hung_up(now);
            }
        }
    }

    /// The target of an agent's transfer did not answer: the agent hears why and the
    /// caller stays with the agent; if the agent is gone, nobody is left and the call
    /// ends.
    fn referral_failed(
        &mut self,
        now: Instant,
        status: u16,
        reason: &str,
        outcome: TransferOutcome,
    ) {
        let Some(r) = self.referral.take() else {
            return;
        };
        info!(agent = %r.agent, %outcome, "the agent's transfer failed");
        self.note(
            now,
            StoryEvent::TransferFinished {
                outcome: outcome.to_string(),
            },
        );
        if r.agent_gone {
            self.stop_ringback();
            self.outcome.get_or_insert(Outcome::FarEndHungUp);
            self.hang_up(now);
        } else {
            self.notify_leg(&LegRole::Agent(r.agent), status, reason);
        }
    }

    /// Whether the caller holds a place in a queue (waiting, being offered, or bridged to
    /// the agent it reserved).
    pub fn in_queue(&self) -> bool {
        self.place.is_some()
    }

    /// Whom the caller is bridged to.
    pub fn bridged(&self) -> Option<&LegRole> {
        self.bridged.as_ref()
    }

    /// Asks the shell for a leg for `role` to `target`.
    fn dial(&mut self, role: LegRole, target: String, via: Option<Peer>) {
        self.dialling.push(role.clone());
        self.out.push_back(CallOutput::Dial { role, target, via });
    }

    /// Whether the leg of `role` is still waited for (not hung up while being placed);
    /// it is not any more after this.
    fn dialled(&mut self, role: &LegRole) -> bool {
        match self.dialling.iter().position(|r| r == role) {
            Some(i) => {
                self.dialling.remove(i);
                true
            }
            None => false,
        }
    }

    /// The Call-ID of the leg of `role`, while it is in use.
    pub fn leg_call_id(&self, role: &LegRole) -> Option<&str> {
        self.legs
            .iter()
            .find(|l| l.role.as_ref() == Some(role))
            .map(|l| l.sip.call_id())
    }

    /// True while a leg still waits for the answers to its CANCEL or BYE: the shell keeps
    /// the call's task for them once the call is over.
    pub fn legs_closing(&self) -> bool {
        self.legs.iter().any(|l| l.sip.is_closing())
    }

    /// Hangs up every leg (CANCEL or BYE), whatever it was for: a call whose task failed.
    pub fn hang_up_legs(&mut self, now: Instant) {
        self.dialling.clear();
        let roles: Vec<LegRole> = self.legs.iter().filter_map(|l| l.role.clone()).collect();
        for role in roles {
            self.hang_up_leg(now, &role);
        }
        self.pump(Some(now));
    }

    /// Ends the leg of `role` (CANCEL or BYE) and lets it go; a leg still being placed is
    /// hung up as soon as it is.
    fn hang_up_leg(&mut self, now: Instant, role: &LegRole) {
        // Still being placed: no longer waited for.
        self.dialled(role);
        if let Some(leg) = self.legs.iter_mut().find(|l| l.role.as_ref() == Some(role)) {
            leg.sip.hang_up(now);
        }
        self.let_go_leg(role);
    }

    /// The leg of `role` is no longer in use: the bridge to it ends, and it is kept only
    /// until its last answers (see [`CallCore::drain_legs`]).
    fn let_go_leg(&mut self, role: &LegRole) {
        let Some(leg) = self.legs.iter_mut().find(|l| l.role.as_ref() == Some(role)) else {
            return;
        };
        leg.role = None;
        if self.bridged.as_ref() == Some(role) {
            self.bridged = None;
            self.out.push_back(CallOutput::Unbridge);
        }
    }

    /// Tells the (answered) leg of `role`, whose phone asked for a transfer, how it goes:
    /// a NOTIFY with this status line as its sipfrag.
    fn notify_leg(&mut self, role: &LegRole, status: u16, reason: &str) {
        match self.legs.iter_mut().find(|l| l.role.as_ref() == Some(role)) {
            Some(leg) => leg.sip.notify_refer(status, reason),
            None => tracing::debug!(?role, status, "no leg to notify"),
        }
    }

    /// Moves what the legs' machines decided to the outputs and acts on their events;
    /// frees the legs let go that wait for nothing more. True if anything moved.
    fn drain_legs(&mut self, now: Instant) -> bool {
        let mut moved = false;
        let mut events = Vec::new();
        for leg in &mut self.legs {
            while let Some(o) = leg.sip.poll_output() {
                moved = true;
                match o {
                    LegOutput::Event(e) => {
                        events.push((leg.role.clone(), leg.sip.call_id().to_owned(), e))
                    }
                    out => self.out.push_back(CallOutput::LegSend {
                        call_id: leg.sip.call_id().to_owned(),
                        peer: leg.peer,
                        out,
                    }),
                }
            }
        }
        for (role, call_id, e) in events {
            self.leg_event(now, role, call_id, e);
        }
        let out = &mut self.out;
        self.legs.retain(|l| {
            let keep = l.role.is_some() || l.sip.is_closing();
            if !keep {
                out.push_back(CallOutput::LegOver {
                    call_id: l.sip.call_id().to_owned(),
                });
            }
            keep
        });
        moved
    }

    /// What an event of a leg means: its media for the shell, its news for whoever placed
    /// it (a leg let go, or of a call that is over, has no news).
    fn leg_event(&mut self, now: Instant, role: Option<LegRole>, call_id: String, e: LegEvent) {
        let news = match e {
            LegEvent::Ringing => LegNews::Ringing,
            LegEvent::Answered(n) => {
                match role {
                    // The caller called back answered: the media is the call's own.
                    Some(LegRole::CallBack) => self
                        .out
                        .push_back(CallOutput::Media(MediaCommand::Start(n))),
                    Some(_) => self.out.push_back(CallOutput::LegMedia {
                        call_id,
                        media: LegMedia::Start(n),
                    }),
                    None => {}
                }
                LegNews::Answered
            }
            LegEvent::Failed(f) => {
                if let LegFailure::Error {
                    status: 488,
                    reason,
                } = &f
                {
                    tracing::warn!(leg = %call_id, %reason, "answer without usable SDP; hanging up");
                }
                if let Some(role) = &role {
                    self.let_go_leg(role);
                }
                LegNews::Failed(f)
            }
            LegEvent::MediaUpdate {
                remote,
                send,
                reset_latch,
            } => {
                self.out.push_back(CallOutput::LegMedia {
                    call_id,
                    media: LegMedia::Update {
                        remote,
                        send,
                        reset_latch,
                    },
                });
                // Whether this is a change of hold is for whoever placed the leg to judge.
                LegNews::Hold { on: !send }
            }
            LegEvent::HungUp => {
                info!(leg = %call_id, "far end hung up");
                if let Some(role) = &role {
                    self.let_go_leg(role);
                }
                LegNews::HungUp
            }
            LegEvent::Refer { target } => LegNews::Refer { target },
            // Keys from the far end travel in its RTP, relayed by the bridge.
            LegEvent::Key(k) => {
                tracing::debug!(leg = %call_id, key = %k.as_char(), "INFO key on a leg; not relayed");
                return;
            }
            LegEvent::Closed => {
                tracing::debug!(leg = %call_id, "leg's SIP is over");
                return;
            }
        };
        if let Some(role) = role
            && !self.ended
        {
            self.leg_news(now, role, news);
        }
    }

    /// What the news of the leg of `role` means for the call.
    fn leg_news(&mut self, now: Instant, role: LegRole, news: LegNews) {
        match (role, news) {
            (LegRole::Agent(agent), LegNews::Refer { target }) => self.refer(now, agent, target),
            (LegRole::Agent(agent), LegNews::HungUp)
                if self
                    .referral
                    .as_ref()
                    .is_some_and(|r| r.agent == agent && !r.agent_gone) =>
            {
                self.referrer_gone(now, agent)
            }
            (LegRole::Agent(agent), news) => {
                let _ = self.place_input(now, PlaceInput::AgentLeg { agent, news });
            }
            (LegRole::Referred, news) => self.referred_news(now, news),
            (role @ LegRole::Transfer(_), news) => self.transfer_news(now, role, news),
            (LegRole::CallBack, news) => self.callback_news(now, news),
        }
    }

    /// News of the leg that calls the caller back, while it rings (once answered, the
    /// dialog is the call's and the leg has no more news).
    fn callback_news(&mut self, now: Instant, news: LegNews) {
        if !matches!(self.caller, Caller::Ringing(_)) {
            return;
        }
        match news {
            LegNews::Answered => {
                let dialog = self
                    .legs
                    .iter_mut()
                    .find(|l| l.role == Some(LegRole::CallBack))
                    .and_then(|l| l.sip.take_dialog());
                match dialog {
                    Some(uas) => {
                        info!("the caller answered the call back");
                        self.caller = Caller::Dialog(uas);
                        self.out.push_back(CallOutput::Answered);
                        self.begin(now);
                    }
                    None => {
                        self.hang_up_leg(now, &LegRole::CallBack);
                        self.unreached("answered without a dialog");
                    }
                }
            }
            LegNews::Failed(f) => self.unreached(&f.to_string()),
            LegNews::HungUp => self.unreached("hung up at once"),
            LegNews::Ringing | LegNews::Hold { .. } | LegNews::Refer { .. } => {}
        }
    }

    /// The call back was not answered: the call is over (`end_if_over`).
    fn unreached(&mut self, why: &str) {
        if !matches!(self.caller, Caller::Ringing(_)) {
            return;
        }
        info!(why, "the call back was not answered");
        self.caller = Caller::Unreached;
        self.out
            .push_back(CallOutput::Unreached { why: why.into() });
    }

    fn transfer_news(&mut self, now: Instant, role: LegRole, news: LegNews) {
        let LegRole::Transfer(id) = role else {
            return;
        };
        if self.transfer.is_none_or(|t| t.id != id) {
            return;
        }
        match news {
            LegNews::Ringing | LegNews::Hold { .. } | LegNews::Refer { .. } => {}
            LegNews::Answered => {
                self.transfer = Some(Transfer {
                    id,
                    rings_until: None,
                });
                self.stop_ringback();
                self.bridged = Some(role.clone());
                self.out.push_back(CallOutput::Bridge { role });
                self.transfer_done(now, id, TransferOutcome::Connected);
            }
            LegNews::Failed(f) => {
                let outcome = match f {
                    LegFailure::Busy => TransferOutcome::Busy,
                    LegFailure::NoAnswer => TransferOutcome::NoAnswer,
                    other => TransferOutcome::Failed(other.to_string()),
                };
                self.transfer_failed(now, id, outcome);
            }
            LegNews::HungUp => {
                // The target hung up after answering: the call is over.
                self.transfer = None;
                self.far_end_hung_up(now);
            }
        }
    }

    /// The transfer did not connect: ringback stops and the flow goes on.
    fn transfer_failed(&mut self, now: Instant, id: RequestId, outcome: TransferOutcome) {
        self.transfer = None;
        self.stop_ringback();
        self.transfer_done(now, id, outcome);
    }

    fn transfer_done(&mut self, now: Instant, id: RequestId, outcome: TransferOutcome) {
        self.flow(now, Event::TransferDone { id, outcome });
    }

    fn stop_ringback(&mut self) {
        self.out
            .push_back(CallOutput::Media(MediaCommand::Stop { id: RINGBACK_PLAY }));
    }

    fn start_transfer(&mut self, now: Instant, id: RequestId, target: String, ring_for: Duration) {
        let role = LegRole::Transfer(id);
        self.transfer = Some(Transfer {
            id,
            rings_until: Some(now + ring_for),
        });
        self.dial(role, target, None);
        self.out
            .push_back(CallOutput::Media(MediaCommand::Ringback { ring_for }));
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let flow = match &self.script {
            Script::Flow(m) if self.started && !self.ended => m.poll_timeout(),
            _ => None,
        };
        let rings = self.transfer.and_then(|t| t.rings_until);
        let referral = self.referral.as_ref().and_then(|r| r.rings_until);
        let max = self.max_until.map(|(t, _)| t).filter(|_| !self.is_ending());
        let legs = self.legs.iter().filter_map(|l| l.sip.poll_timeout()).min();
        let caller = match &self.caller {
            Caller::Dialog(uas) => uas.poll_timeout(),
            Caller::Ringing(until) => Some(*until),
            Caller::Unreached => None,
        };
        [
            caller,
            flow,
            self.recording_until,
            rings,
            referral,
            max,
            legs,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some((until, after)) = self.max_until
            && until <= now
            && !self.is_ending()
        {
            self.max_until = None;
            self.note(now, StoryEvent::MaxCallReached { after });
            self.outcome = Some(Outcome::MaxCall);
            self.hang_up(now);
        }
        let (via, prefix, n) = (&self.via, &self.branch_prefix, &mut self.branches);
        match &mut self.caller {
            Caller::Dialog(uas) => uas.handle_timeout(now, || branched(via, prefix, n)),
            Caller::Ringing(until) if *until <= now => {
                // The caller did not answer in time: CANCEL the call back.
                self.hang_up_leg(now, &LegRole::CallBack);
                self.unreached("no answer in time");
            }
            Caller::Ringing(_) | Caller::Unreached => {}
        }
        if self.started
            && let Script::Flow(m) = &mut self.script
            && m.poll_timeout().is_some_and(|d| d <= now)
        {
            m.handle_timeout(now);
        }
        if self.recording_until.is_some_and(|t| t <= now) {
            self.recording = None;
            self.recording_until = None;
        }
        for leg in &mut self.legs {
            if leg.sip.poll_timeout().is_some_and(|t| t <= now) {
                leg.sip.handle_timeout(now);
            }
        }
        if let Some(t) = self.transfer
            && t.rings_until.is_some_and(|u| u <= now)
        {
            // The target did not answer in time: CANCEL it.
            self.hang_up_leg(now, &LegRole::Transfer(t.id));
            self.transfer_failed(now, t.id, TransferOutcome::NoAnswer);
        }
        if self
            .referral
            .as_ref()
            .is_some_and(|r| r.rings_until.is_some_and(|u| u <= now))
        {
            self.hang_up_leg(now, &LegRole::Referred);
            self.referral_failed(
                now,
                480,
                "Temporarily Unavailable",
                TransferOutcome::NoAnswer,
            );
        }
        self.pump(Some(now));
    }

    /// The next thing for the shell to do (the queue's room is let go once drained).
    pub fn poll_output(&mut self) -> Option<CallOutput> {
        crate::outputs::pop_releasing(&mut self.out)
    }

    /// Hangs up the caller: BYE (or the UAS's own way out before the answer), or a call
    /// back still ringing is cancelled.
    fn hang_up(&mut self, now: Instant) {
        match &mut self.caller {
            Caller::Dialog(uas) => {
                uas.hang_up(
                    now,
                    branched(&self.via, &self.branch_prefix, &mut self.branches),
                );
            }
            Caller::Ringing(_) => {
                self.hang_up_leg(now, &LegRole::CallBack);
                let why = match self.outcome {
                    Some(Outcome::Interrupted) => "engine stopped",
                    Some(Outcome::MaxCall) => "maximum call length",
                    Some(Outcome::Failed) => "call task failed",
                    _ => "hung up by the engine",
                };
                self.unreached(why);
            }
            Caller::Unreached => {}
        }
    }

    fn flow(&mut self, now: Instant, ev: Event) {
        if self.started
            && self.outcome.is_none()
            && let Script::Flow(m) = &mut self.script
        {
            m.handle(now, ev);
        }
    }

    fn play_finished(&mut self, now: Instant, id: u64) {
        match self.script {
            _ if id == RINGBACK_PLAY => {}
            Script::Flow(_) => self.flow(now, Event::PromptFinished { id: PlayId(id) }),
            Script::Tones(_) if id == TONES_PLAY && self.outcome.is_none() => {
                self.outcome = Some(Outcome::FlowHungUp);
                self.hang_up(now);
            }
            Script::CallBack { ref queue, .. } if id == INTRO_PLAY && self.outcome.is_none() => {
                // Back in line, at the place the request kept (the shell rejoins).
                self.out.push_back(CallOutput::JoinQueue {
                    id: RequestId(0),
                    queue: queue.clone(),
                    priority: 0,
                    skills: Vec::new(),
                })
            }
            Script::Tones(_) | Script::CallBack { .. } | Script::Nothing => {}
        }
    }

    /// The call is answered and its media is up: the script starts.
    fn begin(&mut self, now: Instant) {
        if self.started {
            return;
        }
        self.started = true;
        match &mut self.script {
            Script::Flow(m) => m.handle(now, Event::Started),
            Script::Tones(audio) => {
                let audio = std::mem::take(audio);
                self.out.push_back(CallOutput::Media(MediaCommand::Play {
                    id: TONES_PLAY,
                    audio,
                    barge_in: false,
                }));
            }
            Script::CallBack { intro, .. } => {
                let audio = std::mem::take(intro);
                self.out.push_back(CallOutput::Media(MediaCommand::Play {
                    id: INTRO_PLAY,
                    audio,
                    barge_in: false,
                }));
            }
            Script::Nothing => {}
        }
    }

    /// Moves what the legs, the UAS and the flow machine produced to the outputs, lets go
    /// of what a call on its way out holds, and ends the call once it is over.
    fn pump(&mut self, now: Option<Instant>) {
        loop {
            self.pump_once(now);
            // A call on its way out leaves the line and hangs up its transfer; what that
            // makes the legs say is moved out too.
            if self.outcome.is_some()
                && let Some(now) = now
                && (self.place.is_some() || self.transfer.is_some() || self.referral.is_some())
            {
                self.let_go(now);
                continue;
            }
            break;
        }
        self.end_if_over(now);
    }

    /// Moves what the legs, the UAS and the machine produced to the outputs, until all
    /// are quiet.
    fn pump_once(&mut self, now: Option<Instant>) {
        loop {
            let mut moved = now.is_some_and(|now| self.drain_legs(now));
            while let Some(o) = self.caller.uas_mut().and_then(Uas::poll_output) {
                moved = true;
                match o {
                    UasOutput::Respond { key, resp } => {
                        self.out.push_back(CallOutput::Respond { key, resp })
                    }
                    UasOutput::Retransmit(r) => self.out.push_back(CallOutput::Retransmit(r)),
                    UasOutput::Request(r) => self.out.push_back(CallOutput::Request(r)),
                    UasOutput::Event(e) => self.on_uas(now, e),
                }
            }
            while let Some(a) = match &mut self.script {
                Script::Flow(m) => m.poll_action(),
                _ => None,
            } {
                moved = true;
                self.on_action(now, a);
            }
            if !moved {
                break;
            }
        }
    }

    /// The call is over once its dialog is and no recording waits to be saved.
    fn end_if_over(&mut self, now: Option<Instant>) {
        let over = match &self.caller {
            Caller::Dialog(uas) => uas.is_over(),
            Caller::Ringing(_) => false,
            Caller::Unreached => true,
        };
        if self.ended || !over {
            return;
        }
        if let Some(id) = self.recording
            && self.recording_until.is_none()
            && let Some(now) = now
        {
            self.recording_until = Some(now + RECORDING_GRACE);
            self.out
                .push_back(CallOutput::Media(MediaCommand::StopRecording { id }));
        }
        if self.recording.is_none() {
            self.ended = true;
            let story = self.story();
            self.out.push_back(CallOutput::Ended {
                outcome: self.outcome,
                story,
            });
        }
    }

    fn on_uas(&mut self, now: Option<Instant>, ev: UasEvent) {
        match ev {
            UasEvent::Media(n) => {
                self.out
                    .push_back(CallOutput::Media(MediaCommand::Start(n)));
                if let Some(now) = now {
                    self.begin(now);
                }
            }
            UasEvent::MediaUpdate {
                remote,
                send,
                reset_latch,
            } => {
                self.out.push_back(CallOutput::Media(MediaCommand::Update {
                    remote,
                    send,
                    reset_latch,
                }));
                // The caller holding the conversation with an agent counts as hold.
                if let Some(now) = now {
                    let _ = self.place_input(now, PlaceInput::CallerHold { on: !send });
                }
            }
            UasEvent::Key(k) => {
                if let Some(now) = now {
                    self.flow(now, Event::Key(k.as_char()));
                }
            }
            UasEvent::Ended(why) => {
                let outcome = match why {
                    Ending::RemoteBye => Outcome::CallerHungUp,
                    Ending::AckTimeout => Outcome::AckTimeout,
                    Ending::NoUsableAnswer => Outcome::NoUsableAnswer,
                };
                if self.outcome.is_none() {
                    self.outcome = Some(outcome);
                    if outcome == Outcome::CallerHungUp
                        && self.started
                        && let Some(now) = now
                        && let Script::Flow(m) = &mut self.script
                    {
                        m.handle(now, Event::CallerHangup);
                    }
                }
            }
            UasEvent::Answered => self.out.push_back(CallOutput::Answered),
            // Only agents' legs accept REFER; the caller's dialog never does (405).
            UasEvent::Refer { .. } => {}
            UasEvent::Refused { status } => self.out.push_back(CallOutput::Refused { status }),
            UasEvent::Cancelled => self.out.push_back(CallOutput::Refused { status: 487 }),
            UasEvent::Closed => {}
        }
    }

    fn on_action(&mut self, now: Option<Instant>, a: Action) {
        match a {
            Action::Play {
                id,
                audio,
                barge_in,
            } => self.out.push_back(CallOutput::Media(MediaCommand::Play {
                id: id.0,
                audio,
                barge_in,
            })),
            Action::StopPlayback { id } => self
                .out
                .push_back(CallOutput::Media(MediaCommand::Stop { id: id.0 })),
            Action::Record {
                id: RequestId(id),
                max_duration,
                silence_timeout,
                terminator,
                name,
            } => {
                self.recording = Some(id);
                self.out.push_back(CallOutput::Media(MediaCommand::Record {
                    id,
                    max_duration,
                    silence_timeout,
                    terminator,
                    name,
                }))
            }
            Action::Hangup => {
                self.outcome.get_or_insert(Outcome::FlowHungUp);
                if let Some(now) = now {
                    self.hang_up(now);
                }
            }
            a @ Action::Http { .. } => self.out.push_back(CallOutput::Http(a)),
            Action::Transfer {
                id,
                target,
                timeout,
            } => {
                // A flow acts only once started, which always comes with a time.
                if let Some(now) = now {
                    self.start_transfer(now, id, target, timeout)
                }
            }
            Action::Queue {
                id,
                queue,
                priority,
                skills,
            } => self.out.push_back(CallOutput::JoinQueue {
                id,
                queue,
                priority,
                skills,
            }),
            Action::LeaveQueue { .. } => {
                if let Some(now) = now
                    && self.place.is_some()
                {
                    let _ = self.place_input(now, PlaceInput::Leave);
                    self.place = None;
                }
            }
        }
    }
}

/// Our Via with the next branch of this call.
fn branched(via: &Via, prefix: &str, n: &mut u64) -> Via {
    *n += 1;
    let mut via = via.clone();
    via.params.set("branch", Some(&format!("{prefix}-{n}")));
    via
}

/// A scripted caller, the core and the flow machine on a fake clock, in the manner of
/// quinn-proto's `Pair`: no socket, no task.
#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::call::place::{ANNOUNCE_PLAY, MUSIC_PLAY};
    use crate::flow::flowset::FlowSet;
    use crate::flow::load::{AnyPrompt, FlowSource, compile_flows};
    use crate::flow::machine::CallContext;
    use crate::flow::story::{KeyUse, StoryEvent};
    use crate::sip::message::{ContentType, HeaderName, Host, Method, Transport, Uri};
    use crate::sip::refer::TransferTargets;
    use crate::sip::uac::LegFailure;
    use crate::sip::uas::test_requests::{OFFER, in_dialog, invite_with, request};
    use crate::sip::uas::{AnswerParams, LocalMedia, Route, UasState};

    const FLOW: &str = "steps:
  welcome:
    play: welcome
    next: menu
  menu:
    menu:
      prompt: main_menu
      options: { \"1\": bye }
  bye:
    hangup: thanks
";

    fn invite() -> Request {
        request(&format!(
            "INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bK-inv\r\n\
From: <sip:alice@192.0.2.1>;tag=theirs\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: c1\r\n\
CSeq: 1 INVITE\r\nContact: <sip:alice@192.0.2.1:5070>\r\nContent-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{OFFER}",
            OFFER.len()
        ))
    }

    fn key(name: &str) -> TransactionKey {
        TransactionKey::client(name, "X")
    }

    /// What the engine draws and looks up for an answer, fixed.
    fn answer_params(route: Route, ring_for: Duration) -> AnswerParams {
        AnswerParams {
            local_tag: "ours".into(),
            first_cseq: 10,
            contact: Uri::parse("sip:hotline@127.0.0.1:5060").expect("uri"),
            route,
            media: Some(LocalMedia {
                advertised: "127.0.0.1".parse().expect("ip"),
                rtp_port: 20000,
                sdp_session_id: 5,
                sdp_version: 1,
                srtp: crate::sip::sdes::SrtpPolicy::Optional,
                srtp_key: crate::media::srtp::MasterKey::from_bytes(&[0; 30]),
            }),
            ring_for,
            timers: crate::sip::transaction::TimerConfig::default(),
        }
    }

    /// `flow` compiled as the flow `main` (every prompt name is taken as present).
    fn flow_set(flow: &str) -> Arc<FlowSet> {
        let (set, diags) = compile_flows(
            vec![FlowSource {
                name: "main".into(),
                file: "flows/main.yaml".into(),
                text: flow.into(),
            }],
            &AnyPrompt,
        );
        assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
        Arc::new(set)
    }

    struct Pair {
        core: CallCore,
        now: Instant,
        /// Everything the core put out, in order.
        out: Vec<CallOutput>,
        /// The legs placed, in order: their role and Call-ID. The harness places every
        /// leg the core dials at once (`CallInput::LegPlaced`), as a shell whose DNS and
        /// ports never fail.
        placed: Vec<(LegRole, String)>,
        /// The CSeq of the legs' far ends' next request.
        far_cseq: u32,
        /// Whether legs dialled are placed (a shell that cannot place them says nothing
        /// until the test does).
        place_legs: bool,
    }

    /// The far end of every leg: an agent's phone or a transfer's target.
    fn far_peer() -> Peer {
        Peer {
            transport: crate::config::Protocol::Udp,
            remote: "192.0.2.5:5070".parse().expect("addr"),
            local: "127.0.0.1:5060".parse().expect("addr"),
        }
    }

    /// What a shell draws and looks up to place a leg, fixed; agents' phones may transfer
    /// the caller to `2XX`.
    fn leg_params(role: &LegRole, call_id: &str) -> LegParams {
        LegParams {
            refer: matches!(role, LegRole::Agent(_))
                .then(|| Arc::new(TransferTargets::new(&["2XX".to_string()]).expect("patterns"))),
            ..crate::sip::leg::fixtures::params(
                call_id,
                "sip:far@192.0.2.5:5070",
                "sip:alice@127.0.0.1",
            )
        }
    }

    use crate::sip::leg::fixtures::ANSWER as LEG_ANSWER;

    /// The far end's response to `req` (a leg's INVITE, CANCEL or BYE), from its tag `far`.
    fn far_reply(req: &Request, status: u16) -> Response {
        let mut r = Response::for_request(req, status, "Reason");
        r.headers.ensure_to_tag("far").expect("tag");
        if (200..300).contains(&status) && req.method == Method::Invite {
            r.headers
                .push(HeaderName::Contact, "<sip:far@192.0.2.5:5070>");
            r.set_body(
                &ContentType::new("application", "sdp"),
                LEG_ANSWER.as_bytes().to_vec(),
            );
        }
        r
    }

    /// The requests of the leg `call_id` in `out`.
    fn leg_requests(out: &[CallOutput], call_id: &str) -> Vec<Request> {
        out.iter()
            .filter_map(|o| match o {
                CallOutput::LegSend {
                    call_id: id,
                    out: LegOutput::Request(r) | LegOutput::Ack(r),
                    ..
                } if id == call_id => Some(r.clone()),
                _ => None,
            })
            .collect()
    }

    /// The methods of the requests the legs sent in `out`, with their Call-IDs.
    fn leg_methods(out: &[CallOutput]) -> Vec<(String, Method)> {
        out.iter()
            .filter_map(|o| match o {
                CallOutput::LegSend {
                    call_id,
                    out: LegOutput::Request(r) | LegOutput::Ack(r),
                    ..
                } => Some((call_id.clone(), r.method.clone())),
                _ => None,
            })
            .collect()
    }

    /// The statuses the legs answered the far ends' requests with in `out`.
    fn leg_statuses(out: &[CallOutput]) -> Vec<u16> {
        out.iter()
            .filter_map(|o| match o {
                CallOutput::LegSend {
                    out: LegOutput::Respond { resp, .. },
                    ..
                } => Some(resp.status),
                _ => None,
            })
            .collect()
    }

    impl Pair {
        fn new(route: Route, ring_for: Duration) -> Pair {
            Pair::with_flow(FLOW, route, ring_for)
        }

        fn with_flow(flow: &str, route: Route, ring_for: Duration) -> Pair {
            Pair::with_set(flow_set(flow), route, ring_for)
        }

        /// A call on the compiled flows `set`: what the engine does with the version
        /// that is live when the call starts.
        fn with_set(set: Arc<FlowSet>, route: Route, ring_for: Duration) -> Pair {
            let now = Instant::now();
            let ctx = CallContext {
                call_id: "c1".into(),
                caller: "alice".into(),
                dialed: "100".into(),
                wall_clock_at_start: std::time::SystemTime::UNIX_EPOCH.into(),
            };
            let machine = FlowMachine::new(set, "main", ctx, now).expect("machine");
            Pair::with_script(Script::Flow(machine), route, ring_for, now)
        }

        fn with_script(script: Script, route: Route, ring_for: Duration, now: Instant) -> Pair {
            Pair::build(invite(), answer_params(route, ring_for), script, now)
        }

        /// A call for `invite`, answered with `params`.
        fn build(invite: Request, params: AnswerParams, script: Script, now: Instant) -> Pair {
            let uas = Uas::new(key("inv"), invite, params);
            let via = Via::new(
                Transport::Udp,
                Host::parse("127.0.0.1").expect("host"),
                Some(5060),
                "z9hG4bK-x",
            );
            let mut pair = Pair {
                core: CallCore::new(uas, script, via, "z9hG4bK-call".into()),
                now,
                out: Vec::new(),
                placed: Vec::new(),
                far_cseq: 1,
                place_legs: true,
            };
            pair.drain();
            pair
        }

        /// What the core put out; a leg it dials is placed at once, and what that makes
        /// it say follows.
        fn drain(&mut self) -> Vec<CallOutput> {
            let mut all = Vec::new();
            loop {
                let new: Vec<CallOutput> = std::iter::from_fn(|| self.core.poll_output()).collect();
                if new.is_empty() {
                    break;
                }
                self.out.extend(new.iter().cloned());
                for o in &new {
                    if let CallOutput::Dial { role, .. } = o
                        && self.place_legs
                    {
                        let call_id = format!("leg{}", self.placed.len() + 1);
                        self.placed.push((role.clone(), call_id.clone()));
                        let params = Box::new(leg_params(role, &call_id));
                        self.core.handle(
                            self.now,
                            CallInput::LegPlaced {
                                role: role.clone(),
                                params,
                                peer: far_peer(),
                            },
                        );
                    }
                }
                all.extend(new);
            }
            all
        }

        /// The Call-ID of the last leg placed for `role`.
        fn id(&self, role: &LegRole) -> String {
            self.placed
                .iter()
                .rev()
                .find(|(r, _)| r == role)
                .map(|(_, id)| id.clone())
                .unwrap_or_else(|| panic!("no leg for {role:?}"))
        }

        /// The INVITE the leg `call_id` sent.
        fn invite_of(&self, call_id: &str) -> Request {
            leg_requests(&self.out, call_id)
                .into_iter()
                .find(|r| r.method == Method::Invite)
                .expect("the leg's INVITE")
        }

        /// Hands the leg `call_id` what its far end sent.
        fn leg_sip(&mut self, call_id: &str, input: LegInput) -> Vec<CallOutput> {
            self.input(CallInput::LegSip {
                call_id: call_id.into(),
                input,
            })
        }

        /// The far end of the leg `call_id` answers its INVITE with `status`.
        fn far_answers(&mut self, call_id: &str, status: u16) -> Vec<CallOutput> {
            let resp = far_reply(&self.invite_of(call_id), status);
            self.leg_sip(call_id, LegInput::Response(resp))
        }

        /// The far end of the leg `call_id` sends `method` in the dialog.
        fn far_request(
            &mut self,
            call_id: &str,
            method: &str,
            extra: &str,
            body: &str,
        ) -> Vec<CallOutput> {
            let cseq = self.far_cseq;
            self.far_cseq += 1;
            let req = far_request(call_id, method, cseq, extra, body);
            let key = TransactionKey::client(&format!("far-{method}-{cseq}"), method);
            self.leg_sip(call_id, LegInput::Request { key, req })
        }

        /// The far end of the leg of `role` does what makes the leg report `news`, over
        /// SIP into the leg's own machine: 180, 200 (with its SDP), a failure's status,
        /// BYE, a re-INVITE (acknowledged), REFER. A role with no leg hears the news
        /// directly, as if a leg of its own had sent it.
        fn leg(&mut self, role: LegRole, news: LegNews) -> Vec<CallOutput> {
            if !self.placed.iter().any(|(r, _)| *r == role) {
                self.core.leg_news(self.now, role, news);
                self.core.pump(Some(self.now));
                return self.drain();
            }
            let id = self.id(&role);
            match news {
                LegNews::Ringing => self.far_answers(&id, 180),
                LegNews::Answered => self.far_answers(&id, 200),
                LegNews::Failed(f) => {
                    let status = match f {
                        LegFailure::Busy => 486,
                        LegFailure::Declined => 603,
                        LegFailure::NoAnswer => 480,
                        LegFailure::Error { status, .. } => status,
                    };
                    self.far_answers(&id, status)
                }
                LegNews::HungUp => self.far_request(&id, "BYE", "", ""),
                LegNews::Hold { on } => {
                    let sdp = if on {
                        LEG_ANSWER.replace("c=IN IP4 192.0.2.5", "c=IN IP4 0.0.0.0")
                            + "a=sendonly\r\n"
                    } else {
                        LEG_ANSWER.to_owned()
                    };
                    let mut out =
                        self.far_request(&id, "INVITE", "Content-Type: application/sdp\r\n", &sdp);
                    let ack = far_request(&id, "ACK", self.far_cseq - 1, "", "");
                    out.extend(self.leg_sip(&id, LegInput::Ack(ack)));
                    out
                }
                LegNews::Refer { target } => {
                    self.far_request(&id, "REFER", &format!("Refer-To: <{target}>\r\n"), "")
                }
            }
        }

        fn input(&mut self, i: CallInput) -> Vec<CallOutput> {
            self.core.handle(self.now, i);
            self.drain()
        }

        fn sip(&mut self, i: UasInput) -> Vec<CallOutput> {
            self.input(CallInput::Sip(i))
        }

        /// Lets the fake clock run for `d`, firing every timer due on the way.
        fn advance(&mut self, d: Duration) -> Vec<CallOutput> {
            let until = self.now + d;
            let mut got = Vec::new();
            while let Some(t) = self.core.poll_timeout().filter(|t| *t <= until) {
                self.now = self.now.max(t);
                self.core.handle_timeout(self.now);
                got.extend(self.drain());
            }
            self.now = until;
            got
        }

        fn answered_and_acked(route: Route) -> Pair {
            Pair::acked(Pair::new(route, Duration::ZERO))
        }

        fn acked(mut p: Pair) -> Pair {
            p.core.answer(p.now);
            p.drain();
            p.sip(UasInput::Ack(in_dialog("ACK", 1, "", "")));
            p
        }
    }

    /// A request the far end of the leg `call_id` sends in its dialog.
    fn far_request(call_id: &str, method: &str, cseq: u32, extra: &str, body: &str) -> Request {
        request(&format!(
            "{method} sip:hotline@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.5:5070;branch=z9hG4bK-f{method}{cseq}\r\n\
From: <sip:far@192.0.2.5:5070>;tag=far\r\nTo: <sip:alice@127.0.0.1>;tag=ours\r\nCall-ID: {call_id}\r\n\
CSeq: {cseq} {method}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        ))
    }

    /// Whether the leg of `role` was let go and hung up: its CANCEL or BYE is out, or
    /// waits for a provisional response (§9.1).
    fn hung_up(p: &Pair, role: &LegRole) -> bool {
        let id = p.id(role);
        let sent = leg_methods(&p.out)
            .iter()
            .any(|(i, m)| *i == id && matches!(m, Method::Cancel | Method::Bye));
        let waiting = p
            .core
            .legs
            .iter()
            .any(|l| l.sip.call_id() == id && l.role.is_none() && l.sip.is_closing());
        p.core.leg_call_id(role).is_none() && (sent || waiting)
    }

    fn statuses(out: &[CallOutput]) -> Vec<u16> {
        out.iter()
            .filter_map(|o| match o {
                CallOutput::Respond { resp, .. } => Some(resp.status),
                _ => None,
            })
            .collect()
    }

    fn plays(out: &[CallOutput]) -> Vec<(u64, String)> {
        out.iter()
            .filter_map(|o| match o {
                CallOutput::Media(MediaCommand::Play { id, audio, .. }) => match audio.first() {
                    Some(Audio::Prompt(p)) => Some((*id, p.name.clone())),
                    _ => Some((*id, String::new())),
                },
                _ => None,
            })
            .collect()
    }

    fn ended(out: &[CallOutput]) -> Option<(Option<Outcome>, CallStory)> {
        out.iter().find_map(|o| match o {
            CallOutput::Ended { outcome, story } => Some((*outcome, story.clone())),
            _ => None,
        })
    }

    #[test]
    fn a_whole_call_walks_the_menu_with_an_info_key_and_the_flow_hangs_up() {
        let mut p = Pair::new(Route::Found, Duration::ZERO);
        p.core.answer(p.now);
        let out = p.drain();
        assert_eq!(statuses(&out), vec![200]);
        assert!(
            out.iter()
                .any(|o| matches!(o, CallOutput::Media(MediaCommand::Start(_))))
        );
        let welcome = plays(&out);
        assert_eq!(welcome[0].1, "welcome");
        p.sip(UasInput::Ack(in_dialog("ACK", 1, "", "")));
        let out = p.input(CallInput::PlayFinished { id: welcome[0].0 });
        assert_eq!(plays(&out)[0].1, "main_menu");
        let info = in_dialog(
            "INFO",
            2,
            "Content-Type: application/dtmf-relay\r\n",
            "Signal=1\r\nDuration=160\r\n",
        );
        let out = p.sip(UasInput::Request {
            key: key("info"),
            req: info,
        });
        assert_eq!(statuses(&out)[0], 200);
        let thanks = plays(&out);
        assert_eq!(thanks.last().map(|t| t.1.as_str()), Some("thanks"));
        let out = p.input(CallInput::PlayFinished {
            id: thanks.last().expect("play").0,
        });
        let bye = out
            .iter()
            .find_map(|o| match o {
                CallOutput::Request(r) if r.method == Method::Bye => Some(r.clone()),
                _ => None,
            })
            .expect("a BYE");
        assert_eq!(
            bye.headers.top_via().expect("via").branch(),
            Some("z9hG4bK-call-1")
        );
        assert!(ended(&out).is_none(), "the BYE's answer is awaited");
        let out = p.sip(UasInput::Response(Response::for_request(&bye, 200, "OK")));
        let (outcome, story) = ended(&out).expect("ended");
        assert_eq!(outcome, Some(Outcome::FlowHungUp));
        assert_eq!(story.path(), vec!["main/welcome", "main/menu", "main/bye"]);
        assert!(p.core.poll_timeout().is_none());
    }

    #[test]
    fn no_route_ends_the_call_with_404_before_any_flow() {
        let p = Pair::new(Route::NotFound, Duration::ZERO);
        assert_eq!(statuses(&p.out), vec![404]);
        let (outcome, story) = ended(&p.out).expect("ended");
        assert_eq!(outcome, None);
        assert!(story.entries.is_empty(), "the flow never ran");
    }

    #[test]
    fn cancel_while_ringing_ends_the_call_before_the_flow() {
        let mut p = Pair::new(Route::Found, Duration::from_secs(2));
        p.core.answer(p.now);
        assert_eq!(statuses(&p.drain()), vec![180]);
        p.advance(Duration::from_secs(1));
        let mut cancel = invite();
        cancel.method = Method::Cancel;
        cancel
            .headers
            .set(crate::sip::message::HeaderName::CSeq, "1 CANCEL");
        let out = p.sip(UasInput::Cancel {
            key: key("c"),
            req: cancel,
        });
        assert_eq!(statuses(&out), vec![200, 487]);
        assert!(ended(&out).is_some());
        assert!(plays(&p.out).is_empty());
        assert_eq!(p.core.uas().map(Uas::state), Some(UasState::Terminated));
    }

    #[test]
    fn ringing_gives_way_to_the_answer_and_the_flow_on_the_fake_clock() {
        let mut p = Pair::new(Route::Found, Duration::from_secs(2));
        p.core.answer(p.now);
        p.drain();
        assert!(p.advance(Duration::from_millis(1999)).is_empty());
        let out = p.advance(Duration::from_millis(1));
        assert_eq!(statuses(&out), vec![200]);
        assert_eq!(plays(&out)[0].1, "welcome");
    }

    #[test]
    fn a_hold_reinvite_stops_sending_and_the_flow_goes_on() {
        let mut p = Pair::answered_and_acked(Route::Found);
        let hold = OFFER.replace("c=IN IP4 192.0.2.1", "c=IN IP4 0.0.0.0") + "a=sendonly\r\n";
        let req = in_dialog("INVITE", 2, "Content-Type: application/sdp\r\n", &hold);
        let out = p.sip(UasInput::Request {
            key: key("re"),
            req,
        });
        assert_eq!(statuses(&out), vec![200]);
        assert!(out.iter().any(|o| matches!(
            o,
            CallOutput::Media(MediaCommand::Update { send: false, .. })
        )));
        assert!(ended(&p.out).is_none());
    }

    #[test]
    fn the_callers_bye_mid_prompt_ends_the_call_and_the_story() {
        let mut p = Pair::answered_and_acked(Route::Found);
        let out = p.sip(UasInput::Request {
            key: key("bye"),
            req: in_dialog("BYE", 2, "", ""),
        });
        assert_eq!(statuses(&out), vec![200]);
        let (outcome, story) = ended(&out).expect("ended");
        assert_eq!(outcome, Some(Outcome::CallerHungUp));
        assert_eq!(story.path(), vec!["main/welcome"]);
        // Nothing more comes out of an ended call.
        assert!(p.input(CallInput::Key('1')).is_empty());
    }

    #[test]
    fn silence_from_the_caller_hangs_up() {
        let mut p = Pair::answered_and_acked(Route::Found);
        let out = p.input(CallInput::NoMedia);
        assert!(
            out.iter()
                .any(|o| matches!(o, CallOutput::Request(r) if r.method == Method::Bye))
        );
        let out = p.sip(UasInput::RequestTimeout);
        assert_eq!(ended(&out).expect("ended").0, Some(Outcome::NoMedia));
    }

    const TRANSFER: &str = "steps:
  welcome:
    play: welcome
    next: desk
  desk:
    transfer: \"sip:desk@192.0.2.9\"
    timeout: 20s
    on_failure: sorry
  sorry:
    hangup: thanks
";

    /// A call past its welcome, its transfer dialled: the role and what came out.
    fn transferring() -> (Pair, LegRole, Vec<CallOutput>) {
        let mut p = Pair::acked(Pair::with_flow(TRANSFER, Route::Found, Duration::ZERO));
        let welcome = plays(&p.out)[0].0;
        let out = p.input(CallInput::PlayFinished { id: welcome });
        let role = out
            .iter()
            .find_map(|o| match o {
                CallOutput::Dial { role, target, .. } => {
                    assert_eq!(target, "sip:desk@192.0.2.9");
                    Some(role.clone())
                }
                _ => None,
            })
            .expect("a dial");
        assert!(out.contains(&CallOutput::Media(MediaCommand::Ringback {
            ring_for: Duration::from_secs(20)
        })));
        (p, role, out)
    }

    fn ringback_stopped(out: &[CallOutput]) -> bool {
        out.contains(&CallOutput::Media(MediaCommand::Stop { id: RINGBACK_PLAY }))
    }

    fn bye(out: &[CallOutput]) -> Option<Request> {
        out.iter().find_map(|o| match o {
            CallOutput::Request(r) if r.method == Method::Bye => Some(r.clone()),
            _ => None,
        })
    }

    #[test]
    fn a_transfer_rings_then_bridges_keys_go_to_the_far_end_and_its_hang_up_ends_the_call() {
        let (mut p, role, _) = transferring();
        assert!(p.leg(role.clone(), LegNews::Ringing).is_empty());
        let out = p.leg(role.clone(), LegNews::Answered);
        assert!(ringback_stopped(&out));
        assert!(out.contains(&CallOutput::Bridge { role: role.clone() }));
        assert_eq!(p.core.bridged(), Some(&role));
        // Keys while bridged are the far end's; the flow hears none.
        assert!(p.input(CallInput::Key('1')).is_empty());
        // The ring time no longer runs once answered.
        assert!(p.advance(Duration::from_secs(60)).is_empty());
        let out = p.leg(role, LegNews::HungUp);
        assert!(out.contains(&CallOutput::Unbridge));
        let bye = bye(&out).expect("BYE to the caller");
        let out = p.sip(UasInput::Response(Response::for_request(&bye, 200, "OK")));
        let (outcome, story) = ended(&out).expect("ended");
        assert_eq!(outcome, Some(Outcome::FarEndHungUp));
        assert_eq!(story.path(), vec!["main/welcome", "main/desk"]);
    }

    #[test]
    fn a_busy_transfer_target_sends_the_caller_to_on_failure() {
        let (mut p, role, _) = transferring();
        let out = p.leg(role, LegNews::Failed(LegFailure::Busy));
        assert!(ringback_stopped(&out));
        assert_eq!(plays(&out).last().map(|p| p.1.as_str()), Some("thanks"));
        assert!(p.core.bridged().is_none());
    }

    #[test]
    fn an_unanswered_transfer_is_cancelled_after_its_ring_time_on_the_fake_clock() {
        let (mut p, role, _) = transferring();
        assert!(p.advance(Duration::from_millis(19_999)).is_empty());
        let out = p.advance(Duration::from_millis(1));
        assert!(hung_up(&p, &role));
        assert!(ringback_stopped(&out));
        assert_eq!(plays(&out).last().map(|p| p.1.as_str()), Some("thanks"));
        // A late answer of the cancelled leg changes nothing for the call: the leg
        // acknowledges it and hangs it up (§9.1).
        let id = p.id(&role);
        let out = p.leg(role, LegNews::Answered);
        assert_eq!(
            leg_methods(&out),
            vec![(id.clone(), Method::Ack), (id, Method::Bye)]
        );
        assert!(
            !out.iter()
                .any(|o| matches!(o, CallOutput::Bridge { .. } | CallOutput::Media(_))),
            "{out:?}"
        );
    }

    #[test]
    fn a_transfer_that_cannot_be_placed_goes_to_on_failure() {
        let mut p = Pair::acked(Pair::with_flow(TRANSFER, Route::Found, Duration::ZERO));
        p.place_legs = false;
        let welcome = plays(&p.out)[0].0;
        let out = p.input(CallInput::PlayFinished { id: welcome });
        let role = out
            .iter()
            .find_map(|o| match o {
                CallOutput::Dial { role, .. } => Some(role.clone()),
                _ => None,
            })
            .expect("a dial");
        let out = p.input(CallInput::LegNotPlaced {
            role,
            why: "cannot resolve".into(),
        });
        assert_eq!(plays(&out).last().map(|p| p.1.as_str()), Some("thanks"));
    }

    #[test]
    fn silence_from_the_bridged_leg_ends_both_sides() {
        let (mut p, role, _) = transferring();
        p.leg(role.clone(), LegNews::Answered);
        let out = p.input(CallInput::LegNoMedia);
        assert!(out.contains(&CallOutput::Unbridge));
        assert!(hung_up(&p, &role));
        let bye = bye(&out).expect("BYE to the caller");
        let out = p.sip(UasInput::Response(Response::for_request(&bye, 200, "OK")));
        assert_eq!(ended(&out).expect("ended").0, Some(Outcome::NoMedia));
    }

    #[test]
    fn the_callers_hang_up_during_a_transfer_ends_the_call_at_once() {
        let (mut p, _, _) = transferring();
        let out = p.sip(UasInput::Request {
            key: key("bye"),
            req: in_dialog("BYE", 2, "", ""),
        });
        assert_eq!(statuses(&out), vec![200]);
        assert_eq!(ended(&out).expect("ended").0, Some(Outcome::CallerHungUp));
    }

    const VOICEMAIL: &str = "steps:
  message:
    record:
      max_duration: 60s
      into: message
    next: bye
  bye:
    hangup: thanks
";

    /// A call in the voicemail flow, recording (once the beep before it was heard): the
    /// recording's id.
    fn recording() -> (Pair, u64) {
        let mut p = Pair::acked(Pair::with_flow(VOICEMAIL, Route::Found, Duration::ZERO));
        for _ in 0..3 {
            let rec = p.out.iter().find_map(|o| match o {
                CallOutput::Media(MediaCommand::Record { id, .. }) => Some(*id),
                _ => None,
            });
            if let Some(id) = rec {
                return (p, id);
            }
            let last = plays(&p.out).last().expect("a play before the recording").0;
            p.input(CallInput::PlayFinished { id: last });
        }
        panic!("no recording: {:?}", p.out);
    }

    #[test]
    fn a_caller_who_hangs_up_mid_message_leaves_the_recording_before_the_call_ends() {
        let (mut p, id) = recording();
        let out = p.sip(UasInput::Request {
            key: key("bye"),
            req: in_dialog("BYE", 2, "", ""),
        });
        assert_eq!(statuses(&out), vec![200]);
        assert!(out.contains(&CallOutput::Media(MediaCommand::StopRecording { id })));
        assert!(ended(&out).is_none(), "the recording is still being saved");
        let out = p.input(CallInput::Io(Event::RecordDone {
            id: RequestId(id),
            path: "recordings/message-c1.wav".into(),
            duration: Duration::from_secs(3),
            reason: crate::flow::machine::RecordEnd::Hangup,
        }));
        let (outcome, story) = ended(&out).expect("ended once saved");
        assert_eq!(outcome, Some(Outcome::CallerHungUp));
        assert!(
            format!("{story:?}").contains("message-c1.wav"),
            "the story keeps the recording: {story:?}"
        );
    }

    #[test]
    fn a_recording_never_saved_ends_the_call_after_the_grace_time() {
        let (mut p, _) = recording();
        p.sip(UasInput::Request {
            key: key("bye"),
            req: in_dialog("BYE", 2, "", ""),
        });
        assert!(
            p.advance(RECORDING_GRACE - Duration::from_millis(1))
                .is_empty()
        );
        let out = p.advance(Duration::from_millis(1));
        assert_eq!(ended(&out).expect("ended").0, Some(Outcome::CallerHungUp));
    }

    fn feature_code(route: Route) -> Pair {
        let tones = vec![Audio::Tone {
            freq_hz: 880,
            duration: Duration::from_millis(160),
        }];
        Pair::with_script(Script::Tones(tones), route, Duration::ZERO, Instant::now())
    }

    #[test]
    fn a_feature_code_plays_its_tones_then_hangs_up() {
        let mut p = Pair::acked(feature_code(Route::Found));
        let tones = p
            .out
            .iter()
            .find_map(|o| match o {
                CallOutput::Media(MediaCommand::Play { id, audio, .. }) => Some((*id, audio.len())),
                _ => None,
            })
            .expect("tones");
        assert_eq!(tones, (TONES_PLAY, 1));
        // Keys mean nothing to it.
        assert!(p.input(CallInput::Key('5')).is_empty());
        let out = p.input(CallInput::PlayFinished { id: TONES_PLAY });
        let bye = bye(&out).expect("BYE");
        let out = p.sip(UasInput::Response(Response::for_request(&bye, 200, "OK")));
        assert_eq!(ended(&out).expect("ended").0, Some(Outcome::FlowHungUp));
    }

    #[test]
    fn a_feature_code_from_anyone_but_the_agents_phone_is_403() {
        let p = feature_code(Route::Forbidden);
        assert_eq!(statuses(&p.out), vec![403]);
        assert!(p.out.contains(&CallOutput::Refused { status: 403 }));
        assert!(ended(&p.out).is_some());
    }

    const QUEUE: &str = "steps:
  welcome:
    play: welcome
    next: line
  line:
    queue: support
    after: survey
    on_timeout: sorry
  survey:
    menu:
      prompt: survey_question
      options: { \"1\": bye, \"2\": bye }
  bye:
    hangup: thanks
  sorry:
    hangup: thanks
";

    fn place_params(id: RequestId) -> PlaceParams {
        PlaceParams {
            id,
            queue: "support".into(),
            call: "c1".into(),
            language: "en".into(),
            fallback_language: "en".into(),
            music: Some("hold_music".into()),
            dialable: true,
        }
    }

    /// A call in line for `support` with its music playing.
    fn queued(p: Pair) -> Pair {
        let mut p = Pair::acked(p);
        let welcome = plays(&p.out)[0].0;
        let out = p.input(CallInput::PlayFinished { id: welcome });
        let id = out
            .iter()
            .find_map(|o| match o {
                CallOutput::JoinQueue { id, queue, .. } => {
                    assert_eq!(queue, "support");
                    Some(*id)
                }
                _ => None,
            })
            .expect("asks to join");
        let out = p.input(CallInput::Joined(place_params(id)));
        assert_eq!(plays(&out), vec![(MUSIC_PLAY, "hold_music".to_string())]);
        p
    }

    fn acd(out: &[CallOutput]) -> Vec<AcdInput> {
        out.iter()
            .filter_map(|o| match o {
                CallOutput::Acd(i) => Some(i.clone()),
                _ => None,
            })
            .collect()
    }

    fn offer(p: &mut Pair, agent: &str) -> LegRole {
        let out = p.input(CallInput::Queue(QueueNews::Offer {
            agent: agent.into(),
            contact: format!("sip:{agent}@192.0.2.7"),
            via: None,
        }));
        let role = LegRole::Agent(agent.into());
        assert!(out.contains(&CallOutput::Dial {
            role: role.clone(),
            target: format!("sip:{agent}@192.0.2.7"),
            via: None,
        }));
        role
    }

    /// `answered` (what `agent`'s answer put out) told the ACD; the ACD connects the
    /// caller to `agent` (no wrap-up). Returns what that put out.
    fn connect(p: &mut Pair, answered: &[CallOutput], agent: &str) -> Vec<CallOutput> {
        assert_eq!(
            acd(answered),
            vec![AcdInput::OfferAnswered {
                call: "c1".into(),
                agent: agent.into()
            }]
        );
        p.input(CallInput::Queue(QueueNews::Connect {
            agent: agent.into(),
            waited: Duration::from_secs(30),
            wrap_up: Duration::ZERO,
        }))
    }

    #[test]
    fn queue_then_agent_then_bridge_then_the_survey_after_the_agent_hangs_up() {
        let mut p = queued(Pair::with_flow(QUEUE, Route::Found, Duration::ZERO));
        let role = offer(&mut p, "alice");
        let out = p.leg(role.clone(), LegNews::Answered);
        let out = connect(&mut p, &out, "alice");
        assert!(out.contains(&CallOutput::Media(MediaCommand::Stop { id: MUSIC_PLAY })));
        assert!(out.contains(&CallOutput::Bridge { role: role.clone() }));
        assert_eq!(p.core.bridged(), Some(&role));
        // Talking to the agent: keys are relayed by the media, the flow hears none.
        assert!(p.input(CallInput::Key('1')).is_empty());
        let out = p.leg(role, LegNews::HungUp);
        assert!(out.contains(&CallOutput::Unbridge));
        assert_eq!(acd(&out), vec![AcdInput::AgentLeft { call: "c1".into() }]);
        assert_eq!(
            plays(&out).last().map(|p| p.1.as_str()),
            Some("survey_question")
        );
        assert!(p.core.bridged().is_none());
        let out = p.input(CallInput::Key('2'));
        assert_eq!(plays(&out).last().map(|p| p.1.as_str()), Some("thanks"));
        assert_eq!(
            p.core.story().path(),
            vec!["main/welcome", "main/line", "main/survey", "main/bye"]
        );
    }

    /// A queued call connected to alice (bridged), and alice's role.
    fn talking_to_alice() -> (Pair, LegRole) {
        let mut p = queued(Pair::with_flow(QUEUE, Route::Found, Duration::ZERO));
        let role = offer(&mut p, "alice");
        p.leg(role.clone(), LegNews::Answered);
        p.input(CallInput::Queue(QueueNews::Connect {
            agent: "alice".into(),
            waited: Duration::from_secs(30),
            wrap_up: Duration::from_secs(10),
        }));
        assert_eq!(p.core.bridged(), Some(&role));
        (p, role)
    }

    /// The NOTIFYs the legs sent in `out`: to whose leg, and the status of their sipfrag.
    fn notified(p: &Pair, out: &[CallOutput]) -> Vec<(LegRole, u16)> {
        let mut got = Vec::new();
        for (role, id) in &p.placed {
            for r in leg_requests(out, id) {
                if r.method != Method::Notify {
                    continue;
                }
                let body = String::from_utf8_lossy(&r.body).into_owned();
                let status = body
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .expect("a sipfrag status line");
                got.push((role.clone(), status));
            }
        }
        got
    }

    fn refer(p: &mut Pair, role: &LegRole) -> Vec<CallOutput> {
        p.leg(
            role.clone(),
            LegNews::Refer {
                target: "sip:201@192.0.2.9".into(),
            },
        )
    }

    fn story_has(p: &Pair, want: &StoryEvent) -> bool {
        p.core.story().entries.iter().any(|e| &e.event == want)
    }

    #[test]
    fn an_agents_refer_dials_the_target_and_its_answer_hands_the_caller_over() {
        let (mut p, alice) = talking_to_alice();
        let out = refer(&mut p, &alice);
        assert_eq!(notified(&p, &out), vec![(alice.clone(), 100)]);
        assert!(out.contains(&CallOutput::Dial {
            role: LegRole::Referred,
            target: "sip:201@192.0.2.9".into(),
            via: None,
        }));
        // Agent and caller go on talking while the target rings.
        assert!(!out.contains(&CallOutput::Unbridge));
        assert_eq!(p.core.bridged(), Some(&alice));
        p.leg(LegRole::Referred, LegNews::Ringing);
        let out = p.leg(LegRole::Referred, LegNews::Answered);
        assert_eq!(notified(&p, &out), vec![(alice.clone(), 200)]);
        assert_eq!(acd(&out), vec![AcdInput::AgentLeft { call: "c1".into() }]);
        assert!(hung_up(&p, &alice));
        assert!(out.contains(&CallOutput::Bridge {
            role: LegRole::Referred
        }));
        assert_eq!(p.core.bridged(), Some(&LegRole::Referred));
        assert!(!p.core.in_queue());
        // The flow is not told: no survey, the call goes on with the target.
        assert!(plays(&out).is_empty(), "{out:?}");
        assert!(story_has(
            &p,
            &StoryEvent::TransferStarted {
                target: "sip:201@192.0.2.9".into()
            }
        ));
        assert!(story_has(
            &p,
            &StoryEvent::TransferFinished {
                outcome: "connected".into()
            }
        ));
        // The target hangs up: the call ends.
        let out = p.leg(LegRole::Referred, LegNews::HungUp);
        assert!(out.contains(&CallOutput::Unbridge));
        assert!(bye(&out).is_some());
        assert_eq!(p.core.outcome(), Some(Outcome::FarEndHungUp));
    }

    #[test]
    fn a_refer_from_the_caller_is_refused_even_while_talking_to_an_agent() {
        let (mut p, alice) = talking_to_alice();
        let out = p.sip(UasInput::Request {
            key: key("refer"),
            req: in_dialog("REFER", 2, "Refer-To: <sip:201@192.0.2.9>\r\n", ""),
        });
        assert_eq!(statuses(&out), vec![405]);
        assert!(!out.iter().any(|o| matches!(o, CallOutput::Dial { .. })));
        assert_eq!(p.core.bridged(), Some(&alice));
    }

    #[test]
    fn a_busy_target_is_notified_and_the_caller_stays_with_the_agent() {
        let (mut p, alice) = talking_to_alice();
        refer(&mut p, &alice);
        let out = p.leg(LegRole::Referred, LegNews::Failed(LegFailure::Busy));
        assert_eq!(notified(&p, &out), vec![(alice.clone(), 486)]);
        assert!(acd(&out).is_empty());
        assert_eq!(p.core.bridged(), Some(&alice));
        assert!(p.core.in_queue());
        assert!(story_has(
            &p,
            &StoryEvent::TransferFinished {
                outcome: "busy".into()
            }
        ));
        // The agent may try again.
        let out = refer(&mut p, &alice);
        assert_eq!(notified(&p, &out), vec![(alice, 100)]);
    }

    #[test]
    fn a_second_refer_or_one_from_an_agent_not_talking_is_refused_and_nothing_is_dialled() {
        let (mut p, alice) = talking_to_alice();
        refer(&mut p, &alice);
        // The phone's dialog refuses a second REFER while its first is under way.
        let out = refer(&mut p, &alice);
        assert_eq!(leg_statuses(&out), vec![491]);
        assert!(notified(&p, &out).is_empty());
        assert!(!out.iter().any(|o| matches!(o, CallOutput::Dial { .. })));
        // Should one reach the call all the same, the call refuses it with a NOTIFY.
        p.core.leg_news(
            p.now,
            alice.clone(),
            LegNews::Refer {
                target: "sip:202@192.0.2.9".into(),
            },
        );
        p.core.pump(Some(p.now));
        let out = p.drain();
        assert_eq!(notified(&p, &out), vec![(alice, 503)]);
        assert!(!out.iter().any(|o| matches!(o, CallOutput::Dial { .. })));
        let bob = LegRole::Agent("bob".into());
        let out = refer(&mut p, &bob);
        assert!(notified(&p, &out).is_empty(), "bob has no leg to tell");
        assert!(!out.iter().any(|o| matches!(o, CallOutput::Dial { .. })));
    }

    #[test]
    fn the_agent_hanging_up_first_leaves_the_caller_with_ringback_until_the_answer() {
        let (mut p, alice) = talking_to_alice();
        refer(&mut p, &alice);
        let out = p.leg(alice.clone(), LegNews::HungUp);
        assert_eq!(acd(&out), vec![AcdInput::AgentLeft { call: "c1".into() }]);
        assert!(out.contains(&CallOutput::Unbridge));
        assert!(
            out.iter()
                .any(|o| matches!(o, CallOutput::Media(MediaCommand::Ringback { .. })))
        );
        // The flow is not sent on (no survey): the transfer proceeds.
        assert!(plays(&out).is_empty(), "{out:?}");
        assert!(bye(&out).is_none());
        let out = p.leg(LegRole::Referred, LegNews::Answered);
        assert!(notified(&p, &out).is_empty());
        assert!(out.contains(&CallOutput::Media(MediaCommand::Stop { id: RINGBACK_PLAY })));
        assert!(out.contains(&CallOutput::Bridge {
            role: LegRole::Referred
        }));
    }

    #[test]
    fn an_unanswered_target_after_the_agent_left_ends_the_call_on_the_fake_clock() {
        let (mut p, alice) = talking_to_alice();
        refer(&mut p, &alice);
        p.leg(alice, LegNews::HungUp);
        assert!(bye(&p.advance(REFER_RING - Duration::from_millis(1))).is_none());
        let out = p.advance(Duration::from_millis(1));
        assert!(hung_up(&p, &LegRole::Referred));
        assert!(bye(&out).is_some(), "{out:?}");
        assert!(story_has(
            &p,
            &StoryEvent::TransferFinished {
                outcome: "no answer".into()
            }
        ));
    }

    #[test]
    fn the_caller_hanging_up_mid_transfer_hangs_up_the_target_and_the_agent() {
        let (mut p, alice) = talking_to_alice();
        refer(&mut p, &alice);
        let out = p.sip(UasInput::Request {
            key: key("bye"),
            req: in_dialog("BYE", 2, "", ""),
        });
        assert!(hung_up(&p, &LegRole::Referred));
        assert!(hung_up(&p, &alice));
        // The agent's BYE goes out at once; the target's CANCEL waits for its ringing.
        assert!(leg_methods(&out).contains(&(p.id(&alice), Method::Bye)));
    }

    #[test]
    fn a_call_that_reaches_its_maximum_length_is_hung_up_with_its_story_told() {
        let mut p = Pair::answered_and_acked(Route::Found);
        p.core.limit_length(p.now, Duration::from_secs(10));
        // The prompts never finish (no media): only the limit can end this call.
        assert!(bye(&p.advance(Duration::from_millis(9_999))).is_none());
        let out = p.advance(Duration::from_millis(1));
        let bye = bye(&out).expect("the engine hangs up at the limit");
        let out = p.sip(UasInput::Response(Response::for_request(&bye, 200, "OK")));
        let (outcome, story) = ended(&out).expect("ended");
        assert_eq!(outcome, Some(Outcome::MaxCall));
        assert!(story.entries.iter().any(|e| e.event
            == StoryEvent::MaxCallReached {
                after: Duration::from_secs(10)
            }));
        assert!(
            p.core.poll_timeout().is_none(),
            "no timer left on an ended call"
        );
    }

    #[test]
    fn the_maximum_length_hangs_up_the_caller_and_the_bridged_agent() {
        let mut p = queued(Pair::with_flow(QUEUE, Route::Found, Duration::ZERO));
        p.core.limit_length(p.now, Duration::from_secs(60));
        let role = offer(&mut p, "alice");
        p.leg(role.clone(), LegNews::Answered);
        p.input(CallInput::Queue(QueueNews::Connect {
            agent: "alice".into(),
            waited: Duration::from_secs(3),
            wrap_up: Duration::ZERO,
        }));
        assert_eq!(p.core.bridged(), Some(&role));
        let out = p.advance(Duration::from_secs(60));
        assert!(bye(&out).is_some(), "the caller gets a BYE: {out:?}");
        assert!(hung_up(&p, &role), "the agent's leg is hung up: {out:?}");
        assert!(p.core.bridged().is_none() || out.contains(&CallOutput::Unbridge));
        assert_eq!(p.core.outcome(), Some(Outcome::MaxCall));
    }

    #[test]
    fn a_call_that_ends_first_never_reaches_its_maximum_length() {
        let mut p = Pair::answered_and_acked(Route::Found);
        p.core.limit_length(p.now, Duration::from_secs(10));
        let out = p.sip(UasInput::Request {
            key: key("bye"),
            req: in_dialog("BYE", 2, "", ""),
        });
        assert_eq!(ended(&out).expect("ended").0, Some(Outcome::CallerHungUp));
        assert!(p.advance(Duration::from_secs(20)).is_empty());
    }

    /// The story the core tells of agents and hold becomes the record's events: the
    /// agent rung, the caller's hold while bridged (a re-INVITE), the wrap-up.
    #[test]
    fn the_agent_rung_the_callers_hold_and_the_wrap_up_reach_the_story_and_the_record() {
        use crate::record::build::{CallFacts, build};
        let mut p = queued(Pair::with_flow(QUEUE, Route::Found, Duration::ZERO));
        let role = offer(&mut p, "alice");
        p.advance(Duration::from_secs(3));
        p.leg(role.clone(), LegNews::Answered);
        p.input(CallInput::Queue(QueueNews::Connect {
            agent: "alice".into(),
            waited: Duration::from_secs(30),
            wrap_up: Duration::from_secs(20),
        }));
        p.advance(Duration::from_secs(10));
        let hold = OFFER.replace("c=IN IP4 192.0.2.1", "c=IN IP4 0.0.0.0") + "a=sendonly\r\n";
        p.sip(UasInput::Request {
            key: key("hold"),
            req: in_dialog("INVITE", 2, "Content-Type: application/sdp\r\n", &hold),
        });
        p.sip(UasInput::Ack(in_dialog("ACK", 2, "", "")));
        p.advance(Duration::from_secs(5));
        p.sip(UasInput::Request {
            key: key("resume"),
            req: in_dialog("INVITE", 3, "Content-Type: application/sdp\r\n", OFFER),
        });
        p.sip(UasInput::Ack(in_dialog("ACK", 3, "", "")));
        p.advance(Duration::from_secs(4));
        p.leg(role, LegNews::HungUp);
        let facts = CallFacts {
            call_id: "c1".into(),
            started_ms: 0,
            ended_ms: 60_000,
            ..CallFacts::default()
        };
        let (record, events) = build(&facts, &p.core.story());
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        for want in ["agent_ringing", "agent_answered", "hold", "hold_ended"] {
            assert!(kinds.contains(&want), "{want} in {kinds:?}");
        }
        let answered = events.iter().find(|e| e.kind == "agent_answered").unwrap();
        assert_eq!(answered.detail["ring_ms"], 3000);
        let held = events.iter().find(|e| e.kind == "hold_ended").unwrap();
        assert_eq!(held.detail["by"], "caller");
        assert_eq!(held.detail["hold_ms"], 5000);
        let ended = events.iter().find(|e| e.kind == "agent_ended").unwrap();
        // 19 s with alice, 5 of them on hold.
        assert_eq!(ended.detail["talk_ms"], 14_000);
        assert_eq!(ended.detail["hold_ms"], 5000);
        assert_eq!(ended.detail["wrap_up_ms"], 20_000);
        assert_eq!(ended.detail["by"], "agent");
        assert_eq!(record.talk_ms, Some(14_000));
    }

    #[test]
    fn a_caller_who_hangs_up_in_line_leaves_it_and_the_ringing_agent_is_hung_up() {
        let mut p = queued(Pair::with_flow(QUEUE, Route::Found, Duration::ZERO));
        let role = offer(&mut p, "bob");
        let out = p.sip(UasInput::Request {
            key: key("bye"),
            req: in_dialog("BYE", 2, "", ""),
        });
        assert_eq!(statuses(&out), vec![200]);
        assert_eq!(acd(&out), vec![AcdInput::CallerLeft { call: "c1".into() }]);
        assert!(hung_up(&p, &role));
        assert_eq!(ended(&out).expect("ended").0, Some(Outcome::CallerHungUp));
    }

    #[test]
    fn the_queues_overflow_sends_the_caller_to_on_timeout_and_a_refused_join_too() {
        let mut p = queued(Pair::with_flow(QUEUE, Route::Found, Duration::ZERO));
        let out = p.input(CallInput::Queue(QueueNews::Overflow {
            reason: crate::queue::acd::OverflowReason::MaxWait,
            waited: Duration::from_secs(300),
        }));
        assert!(out.contains(&CallOutput::Media(MediaCommand::Stop { id: MUSIC_PLAY })));
        assert_eq!(plays(&out).last().map(|p| p.1.as_str()), Some("thanks"));
        assert_eq!(
            p.core.story().path(),
            vec!["main/welcome", "main/line", "main/sorry"]
        );

        // The ACD refusing the caller: the flow goes on at once (no music ever played).
        let mut p = Pair::acked(Pair::with_flow(QUEUE, Route::Found, Duration::ZERO));
        let welcome = plays(&p.out)[0].0;
        let out = p.input(CallInput::PlayFinished { id: welcome });
        let Some(CallOutput::JoinQueue { id, .. }) = out
            .iter()
            .find(|o| matches!(o, CallOutput::JoinQueue { .. }))
        else {
            panic!("no join: {out:?}");
        };
        let out = p.input(CallInput::NotJoined {
            id: *id,
            why: "no queues are configured".into(),
        });
        assert!(!plays(&out).is_empty(), "the flow went on: {out:?}");
    }

    // ------------------------------------------------------------- call backs

    /// A call back to the caller, ringing for at most `ring_for`: its leg is `cb1`.
    fn calling_back(ring_for: Duration) -> Pair {
        let now = Instant::now();
        let role = LegRole::CallBack;
        let via = Via::new(
            Transport::Udp,
            Host::parse("127.0.0.1").expect("host"),
            Some(5060),
            "z9hG4bK-x",
        );
        let core = CallCore::call_back(
            now,
            CallBack {
                leg: leg_params(&role, "cb1"),
                peer: far_peer(),
                ring_for,
                queue: "support".into(),
                intro: vec![Audio::Prompt(crate::flow::machine::PromptRef {
                    language: "en".into(),
                    fallback_language: "en".into(),
                    name: "callback_intro".into(),
                })],
            },
            via,
            "z9hG4bK-call".into(),
        );
        let mut p = Pair {
            core,
            now,
            out: Vec::new(),
            placed: vec![(role, "cb1".into())],
            far_cseq: 1,
            place_legs: true,
        };
        p.drain();
        p
    }

    fn unreached(out: &[CallOutput]) -> Option<String> {
        out.iter().find_map(|o| match o {
            CallOutput::Unreached { why } => Some(why.clone()),
            _ => None,
        })
    }

    #[test]
    fn a_call_back_rings_the_caller_says_who_calls_and_goes_back_in_line_until_its_time_there_ends()
    {
        let mut p = calling_back(Duration::from_secs(30));
        // The leg's INVITE goes out; the call has no dialog of its own yet.
        assert_eq!(leg_methods(&p.out), vec![("cb1".into(), Method::Invite)]);
        assert!(p.core.uas().is_none());
        assert!(p.far_answers("cb1", 180).is_empty());
        let out = p.far_answers("cb1", 200);
        assert_eq!(leg_methods(&out), vec![("cb1".into(), Method::Ack)]);
        // The caller's media is the call's own, not a leg's to bridge.
        assert!(
            out.iter()
                .any(|o| matches!(o, CallOutput::Media(MediaCommand::Start(_))))
        );
        assert!(!out.iter().any(|o| matches!(o, CallOutput::LegMedia { .. })));
        assert!(out.contains(&CallOutput::Answered));
        assert_eq!(
            plays(&out),
            vec![(INTRO_PLAY, "callback_intro".to_string())]
        );
        assert!(p.core.uas().is_some(), "the leg's dialog is the call's");
        // A repeated 2xx is acknowledged again by the leg, and changes nothing else.
        let out = p.far_answers("cb1", 200);
        assert_eq!(leg_methods(&out), vec![("cb1".into(), Method::Ack)]);
        assert!(plays(&out).is_empty() && !out.contains(&CallOutput::Answered));
        // The introduction over, the call goes back in line.
        let out = p.input(CallInput::PlayFinished { id: INTRO_PLAY });
        assert_eq!(
            out,
            vec![CallOutput::JoinQueue {
                id: RequestId(0),
                queue: "support".into(),
                priority: 0,
                skills: Vec::new(),
            }]
        );
        let out = p.input(CallInput::Joined(place_params(RequestId(0))));
        assert_eq!(plays(&out), vec![(MUSIC_PLAY, "hold_music".to_string())]);
        let out = p.input(CallInput::Queue(QueueNews::Overflow {
            reason: crate::queue::acd::OverflowReason::NoAgents,
            waited: Duration::from_secs(5),
        }));
        // Our BYE goes in the dialog the leg set up.
        let bye = bye(&out).expect("BYE");
        assert_eq!(bye.headers.call_id().expect("call id"), "cb1");
        let out = p.sip(UasInput::Response(Response::for_request(&bye, 200, "OK")));
        let (outcome, story) = ended(&out).expect("ended");
        assert_eq!(outcome, Some(Outcome::FarEndHungUp));
        assert!(matches!(
            story.entries.first().map(|e| &e.event),
            Some(StoryEvent::QueueJoined { queue }) if queue == "support"
        ));
        assert!(unreached(&p.out).is_none());
    }

    #[test]
    fn a_busy_caller_is_not_reached_and_the_call_back_ends() {
        let mut p = calling_back(Duration::from_secs(30));
        let out = p.far_answers("cb1", 486);
        // The INVITE's transaction acknowledges a non-2xx itself.
        assert!(leg_methods(&out).is_empty(), "{out:?}");
        assert_eq!(unreached(&out).as_deref(), Some("busy"));
        assert_eq!(ended(&out).expect("ended").0, None);
        assert!(!p.core.legs_closing());
        assert!(plays(&p.out).is_empty(), "nobody to say anything to");
    }

    #[test]
    fn a_call_back_not_answered_in_time_is_cancelled_and_waits_for_its_487() {
        let mut p = calling_back(Duration::from_secs(30));
        p.far_answers("cb1", 180);
        assert!(p.advance(Duration::from_secs(29)).is_empty());
        let out = p.advance(Duration::from_secs(1));
        let cancel = leg_requests(&out, "cb1")
            .into_iter()
            .find(|r| r.method == Method::Cancel)
            .expect("a CANCEL");
        assert_eq!(unreached(&out).as_deref(), Some("no answer in time"));
        assert!(ended(&out).is_some());
        assert!(p.core.legs_closing(), "the INVITE's answer is awaited");
        p.leg_sip("cb1", LegInput::Response(far_reply(&cancel, 200)));
        let out = p.far_answers("cb1", 487);
        assert!(leg_over(&out, "cb1"));
        assert!(!p.core.legs_closing());
    }

    #[test]
    fn an_engine_that_stops_cancels_a_ringing_call_back() {
        let mut p = calling_back(Duration::from_secs(30));
        p.far_answers("cb1", 180);
        let out = p.input(CallInput::HangUp(Outcome::Interrupted));
        assert!(leg_methods(&out).contains(&("cb1".into(), Method::Cancel)));
        assert_eq!(unreached(&out).as_deref(), Some("engine stopped"));
        assert_eq!(ended(&out).expect("ended").0, Some(Outcome::Interrupted));
    }

    #[test]
    fn a_caller_who_hangs_up_during_the_introduction_never_goes_back_in_line() {
        let mut p = calling_back(Duration::from_secs(30));
        p.far_answers("cb1", 200);
        // The caller's BYE comes in the call's own dialog now.
        let bye = far_request("cb1", "BYE", 1, "", "");
        let out = p.sip(UasInput::Request {
            key: key("bye"),
            req: bye,
        });
        assert_eq!(statuses(&out), vec![200]);
        assert_eq!(ended(&out).expect("ended").0, Some(Outcome::CallerHungUp));
        let out = p.input(CallInput::PlayFinished { id: INTRO_PLAY });
        assert!(out.is_empty(), "{out:?}");
    }

    // ------------------------------------------------------------- answer checks

    /// Every check that refuses an INVITE, on the whole call: the status goes out, the
    /// call ends with no outcome (it never started), no media is set up and no flow runs.
    #[test]
    fn each_answer_check_refuses_the_call_before_any_media_or_flow() {
        let no_codec = OFFER.replace("RTP/AVP 0 101", "RTP/AVP 18");
        let no_port = AnswerParams {
            media: None,
            ..answer_params(Route::Found, Duration::ZERO)
        };
        let found = || answer_params(Route::Found, Duration::ZERO);
        let cases: Vec<(&str, Request, AnswerParams, u16)> = vec![
            (
                "a required extension",
                invite_with("sip:100@127.0.0.1", "Require: 100rel\r\n", OFFER),
                found(),
                420,
            ),
            (
                "a URI scheme we do not serve",
                invite_with("mailto:a@example.com", "", OFFER),
                found(),
                416,
            ),
            (
                "no route",
                invite_with("sip:9@127.0.0.1", "", OFFER),
                answer_params(Route::NotFound, Duration::ZERO),
                404,
            ),
            (
                "a body that is not SDP",
                invite_with("sip:100@127.0.0.1", "Content-Type: text/plain\r\n", "hi"),
                found(),
                415,
            ),
            (
                "no codec in common",
                invite_with("sip:100@127.0.0.1", "", &no_codec),
                found(),
                488,
            ),
            (
                "no RTP port",
                invite_with("sip:100@127.0.0.1", "", OFFER),
                no_port,
                503,
            ),
            (
                // RFC 3261 §8.2: the extension check comes before the others.
                "a required extension and no codec",
                invite_with("sip:100@127.0.0.1", "Require: timer\r\n", &no_codec),
                found(),
                420,
            ),
        ];
        for (what, invite, params, status) in cases {
            let script = Script::Flow(
                FlowMachine::new(
                    flow_set(FLOW),
                    "main",
                    CallContext {
                        call_id: "c1".into(),
                        caller: "alice".into(),
                        dialed: "100".into(),
                        wall_clock_at_start: std::time::SystemTime::UNIX_EPOCH.into(),
                    },
                    Instant::now(),
                )
                .expect("machine"),
            );
            let mut p = Pair::build(invite, params, script, Instant::now());
            // The shell answers a call that passed the checks; this one did not.
            p.core.answer(p.now);
            p.drain();
            assert_eq!(statuses(&p.out), vec![status], "{what}");
            assert!(
                p.out.contains(&CallOutput::Refused { status }),
                "{what}: {:?}",
                p.out
            );
            let (outcome, story) = ended(&p.out).unwrap_or_else(|| panic!("{what}: not ended"));
            assert_eq!(outcome, None, "{what}");
            assert!(story.entries.is_empty(), "{what}: the flow ran");
            assert!(
                !p.out
                    .iter()
                    .any(|o| matches!(o, CallOutput::Media(_) | CallOutput::Answered)),
                "{what}: {:?}",
                p.out
            );
            assert!(p.core.poll_timeout().is_none(), "{what}: a timer is left");
        }
    }

    // ------------------------------------------------------------- re-INVITE

    #[test]
    fn a_held_call_is_taken_off_hold_and_a_caller_who_moves_is_followed() {
        let mut p = Pair::answered_and_acked(Route::Found);
        let hold = OFFER.replace("c=IN IP4 192.0.2.1", "c=IN IP4 0.0.0.0") + "a=sendonly\r\n";
        let out = p.sip(UasInput::Request {
            key: key("hold"),
            req: in_dialog("INVITE", 2, "Content-Type: application/sdp\r\n", &hold),
        });
        assert_eq!(statuses(&out), vec![200]);
        p.sip(UasInput::Ack(in_dialog("ACK", 2, "", "")));
        // Back from hold, from another address and port (the caller's phone moved).
        let moved = OFFER
            .replace("c=IN IP4 192.0.2.1", "c=IN IP4 192.0.2.50")
            .replace("m=audio 4000", "m=audio 4100");
        let out = p.sip(UasInput::Request {
            key: key("resume"),
            req: in_dialog("INVITE", 3, "Content-Type: application/sdp\r\n", &moved),
        });
        assert_eq!(statuses(&out), vec![200]);
        let update = out.iter().find_map(|o| match o {
            CallOutput::Media(MediaCommand::Update { remote, send, .. }) => Some((*remote, *send)),
            _ => None,
        });
        assert_eq!(
            update,
            Some(("192.0.2.50:4100".parse().expect("addr"), true)),
            "{out:?}"
        );
        // The flow was never disturbed: the welcome still plays, then the menu.
        assert!(plays(&out).is_empty());
        let welcome = plays(&p.out)[0].0;
        let out = p.input(CallInput::PlayFinished { id: welcome });
        assert_eq!(plays(&out)[0].1, "main_menu");
        assert!(ended(&p.out).is_none());
    }

    // ------------------------------------------------------------- INFO keys

    const INFO_MENUS: &str = "steps:
  menu:
    menu:
      prompt: main_menu
      options: { \"5\": more }
  more:
    menu:
      prompt: more_menu
      options: { \"#\": bye }
  bye:
    hangup: thanks
";

    fn info(cseq: u32, content_type: &str, body: &str) -> UasInput {
        UasInput::Request {
            key: key(&format!("info{cseq}")),
            req: in_dialog(
                "INFO",
                cseq,
                &format!("Content-Type: {content_type}\r\n"),
                body,
            ),
        }
    }

    fn stops(out: &[CallOutput]) -> Vec<u64> {
        out.iter()
            .filter_map(|o| match o {
                CallOutput::Media(MediaCommand::Stop { id }) => Some(*id),
                _ => None,
            })
            .collect()
    }

    /// The keys the story kept: (key, where it went, typed ahead).
    fn story_keys(story: &CallStory) -> Vec<(char, KeyUse, bool)> {
        story
            .entries
            .iter()
            .filter_map(|e| match &e.event {
                StoryEvent::Key {
                    key,
                    went,
                    typed_ahead,
                } => Some((*key, went.clone(), *typed_ahead)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn info_keys_in_either_body_reach_the_flow_and_a_bad_body_is_refused_without_a_key() {
        let mut p = Pair::acked(Pair::with_flow(INFO_MENUS, Route::Found, Duration::ZERO));
        let menu = plays(&p.out);
        assert_eq!(menu.len(), 1);
        assert_eq!(menu[0].1, "main_menu");

        // Bodies that carry no key: refused, and the flow hears nothing.
        // Our types with no key in them are the sender's error (400); another type is one
        // we do not take (415).
        for (cseq, ct, body, status) in [
            (
                2,
                "application/dtmf-relay",
                "Signal=Z\r\nDuration=160\r\n",
                400,
            ),
            (3, "application/dtmf-relay", "Duration=160\r\n", 400),
            (4, "application/dtmf", "55", 400),
            (5, "text/plain", "5", 415),
        ] {
            let out = p.sip(info(cseq, ct, body));
            assert_eq!(statuses(&out), vec![status], "{ct} {body:?}: {out:?}");
            assert_eq!(out.len(), 1, "{ct} {body:?}: more than the answer: {out:?}");
        }
        assert_eq!(p.core.position(), Some(("main", "menu")));
        assert!(story_keys(&p.core.story()).is_empty());

        // application/dtmf: answered 200, and the key is the menu's answer in the same
        // handle call (the menu prompt stops, the next one starts).
        let out = p.sip(info(6, "application/dtmf", "5"));
        assert_eq!(statuses(&out), vec![200]);
        assert_eq!(stops(&out), vec![menu[0].0]);
        assert_eq!(plays(&out)[0].1, "more_menu");
        assert_eq!(p.core.position(), Some(("main", "more")));

        // application/dtmf-relay, the key as an RFC 4733 event code (11 is #).
        let out = p.sip(info(
            7,
            "application/dtmf-relay",
            "Signal=11\r\nDuration=100\r\n",
        ));
        assert_eq!(statuses(&out), vec![200]);
        assert_eq!(plays(&out).last().map(|p| p.1.as_str()), Some("thanks"));
        assert_eq!(
            story_keys(&p.core.story()),
            vec![
                ('5', KeyUse::Option { to: "more".into() }, false),
                ('#', KeyUse::Option { to: "bye".into() }, false),
            ]
        );
    }

    #[test]
    fn an_info_out_of_order_or_for_another_dialog_gives_no_key() {
        let mut p = Pair::acked(Pair::with_flow(INFO_MENUS, Route::Found, Duration::ZERO));
        assert_eq!(
            statuses(&p.sip(info(5, "application/dtmf", "5"))),
            vec![200]
        );
        assert_eq!(p.core.position(), Some(("main", "more")));
        // A lower CSeq than the last request of the dialog: 500, no key.
        let out = p.sip(info(4, "application/dtmf", "#"));
        assert_eq!(statuses(&out), vec![500]);
        assert_eq!(p.core.position(), Some(("main", "more")));
        // Another dialog's INFO (not our tag): 481, no key.
        let stranger = in_dialog("INFO", 6, "Content-Type: application/dtmf\r\n", "#");
        let mut stranger = stranger;
        stranger.headers.set(
            crate::sip::message::HeaderName::To,
            "<sip:100@127.0.0.1>;tag=someone-else",
        );
        let out = p.sip(UasInput::Request {
            key: key("stranger"),
            req: stranger,
        });
        assert_eq!(statuses(&out), vec![481]);
        assert_eq!(p.core.position(), Some(("main", "more")));
        assert_eq!(story_keys(&p.core.story()).len(), 1);
    }

    // ------------------------------------------------------------- type-ahead, barge-in

    const TYPE_AHEAD: &str = "steps:
  welcome:
    play: welcome
    next: notice
  notice:
    play: notice
    next: menu
  menu:
    menu:
      prompt: main_menu
      options: { \"2\": two }
  two:
    hangup: thanks
";

    #[test]
    fn a_key_during_the_welcome_is_typed_ahead_past_the_notice_and_the_menus_prompt() {
        let mut p = Pair::acked(Pair::with_flow(TYPE_AHEAD, Route::Found, Duration::ZERO));
        let welcome = plays(&p.out);
        assert_eq!(welcome.len(), 1);
        assert!(p.out.iter().any(|o| matches!(
            o,
            CallOutput::Media(MediaCommand::Play { barge_in: true, .. })
        )));
        let out = p.input(CallInput::Key('2'));
        // All in the one handle call: the welcome stops, the notice is passed over (the
        // key would have interrupted it), the menu takes the key without its prompt, and
        // option 2's goodbye starts.
        assert_eq!(stops(&out), vec![welcome[0].0]);
        assert_eq!(
            plays(&out).iter().map(|p| p.1.as_str()).collect::<Vec<_>>(),
            vec!["thanks"]
        );
        let story = p.core.story();
        assert_eq!(
            story.path(),
            vec!["main/welcome", "main/notice", "main/menu", "main/two"]
        );
        assert!(story.entries.iter().any(|e| matches!(
            &e.event,
            StoryEvent::SkippedForTypeAhead { step } if step == "notice"
        )));
        assert_eq!(
            story_keys(&story),
            vec![
                ('2', KeyUse::Buffered, false),
                ('2', KeyUse::Option { to: "two".into() }, true),
            ]
        );
        assert!(!story.prompts_played().iter().any(|n| n == "main_menu"));
    }

    const NO_BARGE_IN: &str = "steps:
  welcome:
    play: welcome
    barge_in: false
    next: menu
  menu:
    menu:
      prompt: main_menu
      options: { \"2\": two }
  two:
    hangup: thanks
";

    #[test]
    fn without_barge_in_the_prompt_plays_on_and_the_key_waits_for_the_menu() {
        let mut p = Pair::acked(Pair::with_flow(NO_BARGE_IN, Route::Found, Duration::ZERO));
        let welcome = plays(&p.out)[0].0;
        assert!(p.out.iter().any(|o| matches!(
            o,
            CallOutput::Media(MediaCommand::Play {
                barge_in: false,
                ..
            })
        )));
        // Nothing stops, nothing starts: the welcome plays to its end.
        assert!(p.input(CallInput::Key('2')).is_empty());
        assert!(p.advance(Duration::from_secs(30)).is_empty());
        let out = p.input(CallInput::PlayFinished { id: welcome });
        assert_eq!(
            plays(&out).iter().map(|p| p.1.as_str()).collect::<Vec<_>>(),
            vec!["thanks"],
            "the menu used the waiting key without its prompt"
        );
        assert_eq!(
            p.core.story().path(),
            vec!["main/welcome", "main/menu", "main/two"]
        );
    }

    #[test]
    fn a_key_barges_into_the_menu_prompt_and_the_next_prompt_starts_in_the_same_call() {
        let mut p = Pair::answered_and_acked(Route::Found);
        let welcome = plays(&p.out)[0].0;
        let out = p.input(CallInput::PlayFinished { id: welcome });
        let menu = plays(&out)[0].0;
        let out = p.input(CallInput::Key('1'));
        let stop = out
            .iter()
            .position(|o| *o == CallOutput::Media(MediaCommand::Stop { id: menu }))
            .expect("the menu prompt stops");
        let next = out
            .iter()
            .position(|o| matches!(o, CallOutput::Media(MediaCommand::Play { .. })))
            .expect("the next prompt starts");
        assert!(stop < next, "stop before the next play: {out:?}");
        assert_eq!(plays(&out)[0].1, "thanks");
        // The goodbye cannot be interrupted: a key changes nothing, it plays on.
        assert!(p.out.iter().any(|o| matches!(
            o,
            CallOutput::Media(MediaCommand::Play { id, barge_in: false, .. }) if *id == plays(&out)[0].0
        )));
        assert!(p.input(CallInput::Key('1')).is_empty());
        assert!(bye(&p.out).is_none());
    }

    // ------------------------------------------------------------- reload pinning

    const VERSION_1: &str = "steps:
  welcome:
    play: welcome
    next: menu
  menu:
    menu:
      prompt: main_menu
      options: { \"1\": bye }
  bye:
    hangup: thanks
";

    /// The same flow edited: a new welcome, and option 1 leads somewhere else.
    const VERSION_2: &str = "steps:
  welcome:
    play: welcome_new
    next: menu
  menu:
    menu:
      prompt: main_menu_new
      options: { \"1\": sales }
  sales:
    hangup: sales_closed
";

    #[test]
    fn a_call_keeps_the_flows_it_started_with_and_a_new_call_gets_the_reloaded_ones() {
        // The engine's slot for the live version, as a reload replaces it.
        let mut live = flow_set(VERSION_1);
        let mut first = Pair::acked(Pair::with_set(live.clone(), Route::Found, Duration::ZERO));
        assert_eq!(plays(&first.out)[0].1, "welcome");

        live = flow_set(VERSION_2);
        // The reload dropped the engine's hold on version 1: the call still has it.
        let mut second = Pair::acked(Pair::with_set(live.clone(), Route::Found, Duration::ZERO));
        assert_eq!(plays(&second.out)[0].1, "welcome_new");

        let welcome = plays(&first.out)[0].0;
        let out = first.input(CallInput::PlayFinished { id: welcome });
        assert_eq!(plays(&out)[0].1, "main_menu");
        let out = first.input(CallInput::Key('1'));
        assert_eq!(plays(&out)[0].1, "thanks");
        assert_eq!(
            first.core.story().path(),
            vec!["main/welcome", "main/menu", "main/bye"]
        );

        let welcome = plays(&second.out)[0].0;
        let out = second.input(CallInput::PlayFinished { id: welcome });
        assert_eq!(plays(&out)[0].1, "main_menu_new");
        let out = second.input(CallInput::Key('1'));
        assert_eq!(plays(&out)[0].1, "sales_closed");
        assert_eq!(
            second.core.story().path(),
            vec!["main/welcome", "main/menu", "main/sales"]
        );
    }

    // ------------------------------------------------------------- keys in line

    const QUEUE_KEYS: &str = "steps:
  welcome:
    play: welcome
    next: line
  line:
    queue: support
    keys: { \"2\": voicemail }
    on_callback: noted
    on_timeout: sorry
  voicemail:
    hangup: leave_a_message
  noted:
    hangup: we_will_call_back
  sorry:
    hangup: thanks
";

    #[test]
    fn the_callback_key_offered_in_line_asks_the_acd_and_the_flow_confirms_it() {
        let mut p = queued(Pair::with_flow(QUEUE_KEYS, Route::Found, Duration::ZERO));
        // Before the offer the key means nothing to the queue, nor to the flow.
        assert!(p.input(CallInput::Key('9')).is_empty());
        let out = p.input(CallInput::Queue(QueueNews::OfferCallback { key: '9' }));
        let offer = plays(&out);
        assert_eq!(offer.len(), 1, "{out:?}");
        assert_eq!(offer[0].0, ANNOUNCE_PLAY);
        let out = p.input(CallInput::Key('9'));
        assert_eq!(
            acd(&out),
            vec![AcdInput::CallbackRequested {
                call: "c1".into(),
                number: None
            }]
        );
        let stopped = stops(&out);
        assert!(stopped.contains(&MUSIC_PLAY), "{out:?}");
        assert!(stopped.contains(&ANNOUNCE_PLAY), "{out:?}");
        assert_eq!(
            plays(&out).last().map(|p| p.1.as_str()),
            Some("we_will_call_back")
        );
        assert_eq!(
            p.core.story().path(),
            vec!["main/welcome", "main/line", "main/noted"]
        );
    }

    #[test]
    fn a_key_of_the_queue_step_takes_the_caller_out_of_the_line_to_its_step() {
        let mut p = queued(Pair::with_flow(QUEUE_KEYS, Route::Found, Duration::ZERO));
        let role = offer(&mut p, "carol");
        let out = p.input(CallInput::Key('2'));
        assert_eq!(acd(&out), vec![AcdInput::CallerLeft { call: "c1".into() }]);
        assert!(hung_up(&p, &role), "{out:?}");
        assert!(stops(&out).contains(&MUSIC_PLAY), "{out:?}");
        assert_eq!(
            plays(&out).last().map(|p| p.1.as_str()),
            Some("leave_a_message")
        );
        // Out of the line: the ACD's late news changes nothing.
        assert!(
            p.input(CallInput::Queue(QueueNews::Connect {
                agent: "carol".into(),
                waited: Duration::from_secs(3),
                wrap_up: Duration::ZERO,
            }))
            .is_empty()
        );
        assert!(p.core.bridged().is_none());
    }

    // ------------------------------------------------------------- late offer, lost ACK

    fn flow_script() -> Script {
        Script::Flow(
            FlowMachine::new(
                flow_set(FLOW),
                "main",
                CallContext {
                    call_id: "c1".into(),
                    caller: "alice".into(),
                    dialed: "100".into(),
                    wall_clock_at_start: std::time::SystemTime::UNIX_EPOCH.into(),
                },
                Instant::now(),
            )
            .expect("machine"),
        )
    }

    /// A call whose INVITE came without an offer, answered with ours.
    fn late_offer() -> Pair {
        let mut p = Pair::build(
            invite_with("sip:100@127.0.0.1", "", ""),
            answer_params(Route::Found, Duration::ZERO),
            flow_script(),
            Instant::now(),
        );
        p.core.answer(p.now);
        let out = p.drain();
        let ok = out
            .iter()
            .find_map(|o| match o {
                CallOutput::Respond { resp, .. } if resp.status == 200 => Some(resp.clone()),
                _ => None,
            })
            .expect("200");
        assert!(
            String::from_utf8_lossy(&ok.body).contains("m=audio 20000 RTP/AVP"),
            "our offer is in the 200"
        );
        // No media and no flow before the caller's answer.
        assert!(
            !out.iter()
                .any(|o| matches!(o, CallOutput::Media(MediaCommand::Start(_)))),
            "{out:?}"
        );
        assert!(plays(&out).is_empty());
        p
    }

    #[test]
    fn a_late_offer_gets_ours_in_the_200_and_the_flow_starts_with_the_acks_answer() {
        let mut p = late_offer();
        let answer = OFFER.replace("m=audio 4000", "m=audio 4200");
        let out = p.sip(UasInput::Ack(in_dialog(
            "ACK",
            1,
            "Content-Type: application/sdp\r\n",
            &answer,
        )));
        let started = out.iter().find_map(|o| match o {
            CallOutput::Media(MediaCommand::Start(n)) => Some(n.remote_rtp),
            _ => None,
        });
        assert_eq!(started, Some("192.0.2.1:4200".parse().expect("addr")));
        assert_eq!(plays(&out)[0].1, "welcome");
    }

    #[test]
    fn a_late_offers_ack_without_a_usable_answer_ends_the_call_without_the_flow() {
        let mut p = late_offer();
        let useless = OFFER.replace("RTP/AVP 0 101", "RTP/AVP 18");
        let mut out = p.sip(UasInput::Ack(in_dialog(
            "ACK",
            1,
            "Content-Type: application/sdp\r\n",
            &useless,
        )));
        if let Some(bye) = bye(&out) {
            out = p.sip(UasInput::Response(Response::for_request(&bye, 200, "OK")));
        }
        let (outcome, story) = ended(&out).expect("ended");
        assert_eq!(outcome, Some(Outcome::NoUsableAnswer));
        assert!(story.path().is_empty(), "{story:?}");
        assert!(plays(&p.out).is_empty());
    }

    #[test]
    fn an_answer_never_acknowledged_is_sent_again_then_given_up_with_a_bye() {
        let mut p = Pair::new(Route::Found, Duration::ZERO);
        p.core.answer(p.now);
        p.drain();
        // RFC 3261 §13.3.1.4: the 200 again from T1, doubling to T2, for 64*T1.
        let out = p.advance(Duration::from_millis(31_900));
        let copies = out
            .iter()
            .filter(|o| matches!(o, CallOutput::Retransmit(r) if r.status == 200))
            .count();
        assert!(copies >= 8, "{copies} copies");
        assert!(bye(&out).is_none(), "too early: {out:?}");
        let mut out = p.advance(Duration::from_millis(200));
        let bye = bye(&out).expect("BYE after 64*T1");
        if ended(&out).is_none() {
            out = p.sip(UasInput::Response(Response::for_request(&bye, 200, "OK")));
        }
        assert_eq!(ended(&out).expect("ended").0, Some(Outcome::AckTimeout));
    }

    /// The `LegSend`s of `out` with their Call-IDs and where they go.
    fn leg_sends(out: &[CallOutput]) -> Vec<(String, Peer, LegOutput)> {
        out.iter()
            .filter_map(|o| match o {
                CallOutput::LegSend { call_id, peer, out } => {
                    Some((call_id.clone(), *peer, out.clone()))
                }
                _ => None,
            })
            .collect()
    }

    fn leg_over(out: &[CallOutput], call_id: &str) -> bool {
        out.contains(&CallOutput::LegOver {
            call_id: call_id.into(),
        })
    }

    #[test]
    fn an_agents_leg_rings_answers_is_bridged_and_its_bye_is_answered_by_the_core() {
        let mut p = queued(Pair::with_flow(QUEUE, Route::Found, Duration::ZERO));
        let out = p.input(CallInput::Queue(QueueNews::Offer {
            agent: "alice".into(),
            contact: "sip:alice@192.0.2.7".into(),
            via: None,
        }));
        let alice = LegRole::Agent("alice".into());
        let id = p.id(&alice);
        // The shell placed the leg; the core's own machine sends its INVITE to the peer.
        let sends = leg_sends(&out);
        let [(sent_id, peer, LegOutput::Request(invite))] = sends.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!((sent_id.as_str(), *peer), (id.as_str(), far_peer()));
        assert_eq!(invite.method, Method::Invite);
        assert_eq!(p.core.leg_call_id(&alice), Some(id.as_str()));
        assert!(p.far_answers(&id, 180).is_empty(), "ringing is the place's");
        let out = p.far_answers(&id, 200);
        assert_eq!(leg_methods(&out), vec![(id.clone(), Method::Ack)]);
        assert!(out.iter().any(|o| matches!(
            o,
            CallOutput::LegMedia { call_id, media: LegMedia::Start(_) } if *call_id == id
        )));
        let out = connect(&mut p, &out, "alice");
        assert!(out.contains(&CallOutput::Bridge {
            role: alice.clone()
        }));
        // The agent hangs up: the leg answers its BYE, the bridge ends, the leg is over.
        let out = p.far_request(&id, "BYE", "", "");
        assert_eq!(leg_statuses(&out), vec![200]);
        assert!(out.contains(&CallOutput::Unbridge));
        assert!(leg_over(&out, &id));
        assert_eq!(acd(&out), vec![AcdInput::AgentLeft { call: "c1".into() }]);
        assert_eq!(p.core.leg_call_id(&alice), None);
        assert!(!p.core.legs_closing());
        assert_eq!(
            plays(&out).last().map(|p| p.1.as_str()),
            Some("survey_question")
        );
    }

    #[test]
    fn a_busy_agent_fails_the_offer_and_its_leg_is_over() {
        let mut p = queued(Pair::with_flow(QUEUE, Route::Found, Duration::ZERO));
        let alice = offer(&mut p, "alice");
        let id = p.id(&alice);
        let out = p.far_answers(&id, 486);
        // The INVITE's transaction acknowledges a non-2xx itself: nothing for the leg to send.
        assert!(leg_methods(&out).is_empty(), "{out:?}");
        assert!(acd(&out).iter().any(|i| matches!(
            i,
            AcdInput::OfferFailed { agent, .. } if agent == "alice"
        )));
        assert!(leg_over(&out, &id));
        assert_eq!(p.core.leg_call_id(&alice), None);
        // Still in line.
        assert!(p.core.in_queue());
    }

    #[test]
    fn a_ringing_agent_of_a_caller_who_hangs_up_is_cancelled_and_its_487_ends_the_leg() {
        let mut p = queued(Pair::with_flow(QUEUE, Route::Found, Duration::ZERO));
        let alice = offer(&mut p, "alice");
        let id = p.id(&alice);
        p.far_answers(&id, 180);
        let out = p.sip(UasInput::Request {
            key: key("bye"),
            req: in_dialog("BYE", 2, "", ""),
        });
        let cancel = leg_requests(&out, &id)
            .into_iter()
            .find(|r| r.method == Method::Cancel)
            .expect("a CANCEL");
        let invite = p.invite_of(&id);
        assert_eq!(
            cancel.headers.top_via().expect("via").branch(),
            invite.headers.top_via().expect("via").branch(),
            "a CANCEL matches its INVITE"
        );
        assert!(p.core.legs_closing(), "the INVITE's answer is awaited");
        assert!(!leg_over(&out, &id));
        // The call is over, but its leg still hears its answers.
        assert!(ended(&p.out).is_some() || p.core.is_ending());
        let out = p.leg_sip(&id, LegInput::Response(far_reply(&cancel, 200)));
        assert!(!leg_over(&out, &id));
        let out = p.far_answers(&id, 487);
        assert!(leg_methods(&out).is_empty(), "the transaction ACKs the 487");
        assert!(leg_over(&out, &id));
        assert!(!p.core.legs_closing());
    }

    #[test]
    fn a_transfer_connects_over_sip_and_the_callers_bye_ends_the_leg_with_ours() {
        let (mut p, role, out) = transferring();
        let id = p.id(&role);
        assert!(
            leg_methods(&out).contains(&(id.clone(), Method::Invite)),
            "{out:?}"
        );
        p.far_answers(&id, 100);
        p.far_answers(&id, 183);
        let out = p.far_answers(&id, 200);
        assert_eq!(leg_methods(&out), vec![(id.clone(), Method::Ack)]);
        assert!(ringback_stopped(&out));
        assert!(out.contains(&CallOutput::Bridge { role: role.clone() }));
        assert!(
            p.core
                .story()
                .entries
                .iter()
                .any(|e| matches!(&e.event, StoryEvent::TransferFinished { outcome } if outcome == "connected"))
        );
        // The caller hangs up: the bridge ends and the target gets our BYE.
        let out = p.sip(UasInput::Request {
            key: key("bye"),
            req: in_dialog("BYE", 2, "", ""),
        });
        assert!(out.contains(&CallOutput::Unbridge));
        let bye = leg_requests(&out, &id)
            .into_iter()
            .find(|r| r.method == Method::Bye)
            .expect("our BYE to the target");
        assert!(ended(&out).is_some());
        assert!(p.core.legs_closing());
        let out = p.leg_sip(&id, LegInput::Response(far_reply(&bye, 200)));
        assert!(leg_over(&out, &id));
        assert!(!p.core.legs_closing());
    }

    #[test]
    fn a_cancelled_transfer_never_answered_is_given_up_on_the_calls_timer() {
        let (mut p, role, _) = transferring();
        let id = p.id(&role);
        p.far_answers(&id, 180);
        // The ring time runs out: CANCEL.
        let out = p.advance(Duration::from_secs(20));
        assert!(leg_methods(&out).contains(&(id.clone(), Method::Cancel)));
        let at = p.now;
        assert!(p.core.legs_closing());
        // No final answer ever: 64*T1 later the leg gives up, on the call's own timer.
        assert_eq!(
            p.core.poll_timeout(),
            Some(at + Duration::from_secs(32)),
            "the leg's timer is the call's"
        );
        assert!(!leg_over(&p.advance(Duration::from_secs(31)), &id));
        let out = p.advance(Duration::from_secs(1));
        assert!(leg_over(&out, &id));
        assert!(!p.core.legs_closing());
    }

    #[test]
    fn an_agents_reinvite_is_answered_and_its_2xx_repeated_on_the_calls_timer() {
        let (mut p, alice) = talking_to_alice();
        let id = p.id(&alice);
        let hold = LEG_ANSWER.replace("c=IN IP4 192.0.2.5", "c=IN IP4 0.0.0.0") + "a=sendonly\r\n";
        let out = p.far_request(&id, "INVITE", "Content-Type: application/sdp\r\n", &hold);
        assert_eq!(leg_statuses(&out), vec![200]);
        assert!(out.iter().any(|o| matches!(
            o,
            CallOutput::LegMedia {
                media: LegMedia::Update { send: false, .. },
                ..
            }
        )));
        let ok = leg_sends(&out)
            .into_iter()
            .find_map(|(_, _, o)| match o {
                LegOutput::Respond { resp, .. } => Some(resp),
                _ => None,
            })
            .expect("the 200");
        // No ACK: the call's timer repeats the 200 (T1), as the leg's machine asks.
        let out = p.advance(Duration::from_millis(500));
        assert!(
            leg_sends(&out)
                .iter()
                .any(|(i, _, o)| *i == id && *o == LegOutput::Retransmit(ok.clone())),
            "{out:?}"
        );
    }
}
