//! The interpreter: one `FlowMachine` per call runs the compiled flows.
//!
//! Owns what callers feel: type-ahead, barge-in, timeouts counted from the end of a
//! prompt, retries and their prompts, global keys (`back` among them), language switches,
//! goto and return, templates, opening hours, and the call's story. It is a pure state
//! machine: events and the current time go in, actions come out; it never sleeps, reads a
//! clock, spawns or does IO. Wall-clock time (for `hours` and `now`) is the call's
//! `CallContext::wall_clock_at_start` plus the `Instant`s given since, so a test that
//! drives time by hand is deterministic.
//!
//! # The contract with the shell
//!
//! The shell calls `handle(now, event)` and `handle_timeout(now)` at `poll_timeout()`,
//! then carries out every `poll_action()`:
//!
//! | action | the shell does | and reports |
//! | --- | --- | --- |
//! | `Play { id, audio, barge_in }` | plays the items in order | `PromptFinished { id }` after the last frame (not after a `StopPlayback`) |
//! | `StopPlayback { id }` | stops that playback within the frame | nothing |
//! | `Hangup` | ends the call (BYE) | nothing |
//! | `Http { id, method, url, headers, body, timeout }` | sends the request; `body` is JSON text (`Content-Type: application/json`); gives up after `timeout` | `HttpDone { id, outcome }`: `Ok(parsed JSON body)` (an empty body is `null`) for a 2xx status, else `Err(Timeout / Connect / Status(code) / BadJson)` |
//! | `Record { id, max_duration, silence_timeout, terminator, name }` | records the caller into a file named after `name` (unique within the call, safe as a file name); stops at `max_duration`, after `silence_timeout` of silence, at the `terminator` key (not recorded), or when the caller hangs up | `RecordDone { id, path, duration, reason }`; on a hang-up, before `CallerHangup`; `reason: Failed` when nothing could be recorded |
//! | `Transfer { id, target, timeout }` | calls `target` (a `sip:`, `sips:` or `tel:` URI written in the flow file) and rings it for at most `timeout` | `TransferDone { id, outcome }`; after `Connected` the shell bridges the two legs and owns the call until one side hangs up |
//! | `Queue { id, queue, priority, skills }` | puts the caller in that agent queue (hold music, announcements, offers to agents) | `QueueConnected { id, agent }` when an agent answers, then `QueueDone { id, outcome, waited }` when the caller's part in the queue is over |
//! | `LeaveQueue { id }` | takes the caller out of the line at once (a key of the step's `keys`); the flow continues with the actions that follow | nothing |
//!
//! While an http request runs, keys are kept as type-ahead. While a recording runs, keys
//! are the shell's (the terminator ends it); the machine ignores them. While a transfer
//! rings, keys are ignored. Each request is also guarded by the machine's own timer
//! (its timeout plus [`SHELL_GRACE`]): a shell that never answers cannot hold the call.
//! Results with an id the machine is not waiting for are ignored.
//!
//! The beep of `record: { beep: true }` is an `Audio::Tone` ([`BEEP_HZ`], [`BEEP`]),
//! played after the prompt, so no recording of it is needed in any language.
//!
//! While the caller waits in a queue, keys of the step's `keys` leave the line; other keys
//! are ignored (the shell handles the queue's callback key before the machine sees it).
//! A queue has no guard timer: the queue's own `max_wait` bounds the wait, and the
//! shell answers `QueueDone` for every way out (agent, caller, overflow, callback, failure).
//! After `QueueConnected` keys are the conversation's and are ignored.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::flowset::{
    AudioItem, CollectStep, CompiledFlow, FlowId, FlowSet, HttpStep, MenuStep, RecordStep,
    StepAction, StepId, Target,
};
use super::model::{DtmfKey, HttpMethod, SayKind, TagValue};
use super::schedule::{OpenState, is_open};
// `PlayId` lives with the story (which records it) and is part of this module's vocabulary.
pub use super::story::PlayId;
use super::story::{
    CallStory, FailReason, FailureKind, KeyUse, Outcome, REASON_TAG, StoryEntry, StoryEvent,
};
use super::template::{Rendered, Scope, Templates};

/// The prompt played when a flow ends without saying goodbye itself, or a caller could
/// not be helped (no `on_failure`, a step that cannot run). Shipped in every language.
pub const DEFAULT_GOODBYE_PROMPT: &str = "goodbye_default";
/// Steps entered in a row without the caller's part (a key, or a wait for one) before the
/// call is ended: a flow that loops through plays must not keep a caller forever.
pub const MAX_STEPS_WITHOUT_INPUT: u32 = 100;
/// `goto ... return: true` nested deeper than this ends the call (a flow calling itself).
pub const MAX_GOTO_DEPTH: usize = 16;
/// No-input failures in a row, across steps, before the call is ended: nobody is there.
pub const MAX_SILENT_FAILURES: u32 = 25;
/// Keys kept for later; more are dropped (a stuck key must not grow memory).
pub const TYPE_AHEAD_LIMIT: usize = 32;
/// Menus and collects remembered for `back`; older ones are forgotten.
pub const BACK_HISTORY_LIMIT: usize = 32;
/// How long a transfer rings when its step gives no `timeout`.
pub const DEFAULT_TRANSFER_TIMEOUT: Duration = Duration::from_secs(30);
/// Added to a request's own timeout before the machine stops waiting for the shell.
pub const SHELL_GRACE: Duration = Duration::from_secs(5);
/// The record beep.
pub const BEEP_HZ: u16 = 1000;
pub const BEEP: Duration = Duration::from_millis(500);

/// Who is calling whom, and when; becomes the `caller`, `dialed`, `call_id` and `now`
/// variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallContext {
    pub call_id: String,
    pub caller: String,
    pub dialed: String,
    /// The wall-clock time at the `now` given to `FlowMachine::new`.
    pub wall_clock_at_start: DateTime<Utc>,
}

/// Identifies one `Http`, `Record` or `Transfer` action and its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// A recorded prompt: `prompts/<language>/<name>.wav`, or the fallback language's when the
/// caller's language lacks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptRef {
    pub language: String,
    pub fallback_language: String,
    pub name: String,
}

/// One piece of what to play.
#[derive(Debug, Clone, PartialEq)]
pub enum Audio {
    Prompt(PromptRef),
    /// A value to speak (digits, a date...), in the caller's language.
    Say {
        language: String,
        kind: SayKind,
        value: String,
    },
    Silence(Duration),
    /// A sine tone (the record beep).
    Tone {
        freq_hz: u16,
        duration: Duration,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Play these in order. With `barge_in`, the machine may answer a key with
    /// `StopPlayback`; report `PromptFinished` when the last frame was sent.
    Play {
        id: PlayId,
        audio: Vec<Audio>,
        barge_in: bool,
    },
    /// Stop that playback now (within the current frame). No `PromptFinished` is needed.
    StopPlayback { id: PlayId },
    /// End the call.
    Hangup,
    /// Send an HTTP request; answer with `Event::HttpDone`.
    Http {
        id: RequestId,
        method: HttpMethod,
        url: String,
        headers: Vec<(String, String)>,
        /// JSON text.
        body: Option<String>,
        timeout: Duration,
    },
    /// Record the caller; answer with `Event::RecordDone`.
    Record {
        id: RequestId,
        max_duration: Duration,
        silence_timeout: Option<Duration>,
        terminator: Option<char>,
        /// A file name stem, unique within the call: `CALLID-STEP-N` with only
        /// letters, digits, `-` and `_`.
        name: String,
    },
    /// Call `target` and bridge the caller to it; answer with `Event::TransferDone`.
    Transfer {
        id: RequestId,
        target: String,
        timeout: Duration,
    },
    /// Put the caller in an agent queue; answer with `Event::QueueConnected` (if an agent
    /// answers) and `Event::QueueDone`.
    Queue {
        id: RequestId,
        queue: String,
        /// Higher is served first.
        priority: i32,
        /// Skills the agent must have.
        skills: Vec<String>,
    },
    /// The caller pressed a key of the queue step: take it out of the line now.
    LeaveQueue { id: RequestId },
}

/// How a caller's time in a queue ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueOutcome {
    /// An agent answered and hung up first (or transferred the call on): the flow
    /// continues at `after`.
    AgentHungUp { agent: String },
    /// The caller hung up, waiting or talking: the call is over.
    CallerHungUp,
    /// The queue sent the caller on (`max_wait`, `full`, `no_agents`): `on_timeout`.
    Overflow { reason: String },
    /// The caller asked to be called back: `on_callback`, or goodbye.
    Callback,
    /// The caller could not be queued (an unknown queue...): `on_timeout`.
    Failed(String),
}

impl QueueOutcome {
    pub fn as_str(&self) -> &str {
        match self {
            QueueOutcome::AgentHungUp { .. } => "agent_hung_up",
            QueueOutcome::CallerHungUp => "caller_hung_up",
            QueueOutcome::Overflow { reason } => reason,
            QueueOutcome::Callback => "callback",
            QueueOutcome::Failed(_) => "failed",
        }
    }
}

/// Why an http request gave no usable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpFailure {
    Timeout,
    Connect,
    /// A status outside 200-299.
    Status(u16),
    /// A 2xx answer whose body is not JSON.
    BadJson,
}

impl fmt::Display for HttpFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpFailure::Timeout => f.write_str("timeout"),
            HttpFailure::Connect => f.write_str("cannot connect"),
            HttpFailure::Status(s) => write!(f, "status {s}"),
            HttpFailure::BadJson => f.write_str("the body is not JSON"),
        }
    }
}

/// Why a recording ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordEnd {
    /// `max_duration` was reached.
    Max,
    /// `silence_timeout` of silence.
    Silence,
    /// The caller pressed the terminator.
    Terminator,
    /// The caller hung up; the recording is kept.
    Hangup,
    /// Nothing could be recorded (the path is empty).
    Failed,
}

impl RecordEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordEnd::Max => "max",
            RecordEnd::Silence => "silence",
            RecordEnd::Terminator => "terminator",
            RecordEnd::Hangup => "hangup",
            RecordEnd::Failed => "failed",
        }
    }
}

/// How a transfer went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferOutcome {
    /// Answered: the shell bridges the call from here on.
    Connected,
    Busy,
    NoAnswer,
    Failed(String),
}

impl fmt::Display for TransferOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransferOutcome::Connected => f.write_str("connected"),
            TransferOutcome::Busy => f.write_str("busy"),
            TransferOutcome::NoAnswer => f.write_str("no answer"),
            TransferOutcome::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The call is answered and media flows: run the first step.
    Started,
    /// A telephone key (`0`-`9`, `*`, `#`); other characters are ignored.
    Key(char),
    /// The last frame of this playback was sent.
    PromptFinished { id: PlayId },
    /// The caller hung up.
    CallerHangup,
    /// The answer to `Action::Http`.
    HttpDone {
        id: RequestId,
        outcome: Result<Value, HttpFailure>,
    },
    /// The end of `Action::Record`.
    RecordDone {
        id: RequestId,
        path: String,
        duration: Duration,
        reason: RecordEnd,
    },
    /// The result of `Action::Transfer`.
    TransferDone {
        id: RequestId,
        outcome: TransferOutcome,
    },
    /// An agent answered the caller of `Action::Queue`; they are bridged.
    QueueConnected { id: RequestId, agent: String },
    /// The caller's time in the queue of `Action::Queue` is over.
    QueueDone {
        id: RequestId,
        outcome: QueueOutcome,
        /// How long the caller waited before an agent answered or it left the line.
        waited: Duration,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MachineError {
    #[error("no flow named '{name}' (loaded: {known})")]
    UnknownFlow { name: String, known: String },
}

/// What happens when a playback finishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterPlay {
    /// A `play` step: continue with its `next`.
    Continue(Option<Target>),
    /// Wait for the menu's key.
    Menu,
    /// Wait for the first digit of the collect.
    Collect,
    /// Wait for the collect's yes/no.
    Confirm,
    /// Start the recording of a `record` step.
    Record,
    /// End the call.
    HangUp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    Menu,
    Collect,
    Confirm,
}

/// What the shell is doing for the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Task {
    Http,
    Record,
    Transfer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    NotStarted,
    Playing {
        id: PlayId,
        barge_in: bool,
        then: AfterPlay,
    },
    Waiting {
        deadline: Instant,
        input: Input,
    },
    /// Waiting for the result of a request to the shell.
    Busy {
        id: RequestId,
        task: Task,
        deadline: Instant,
    },
    /// In an agent queue (`connected` once an agent answered).
    Queued {
        id: RequestId,
        connected: bool,
    },
    Ended,
}

/// What the flow knows of the caller's time in a queue.
#[derive(Debug, Clone, Default)]
struct QueueFacts {
    queue: String,
    agent: Option<String>,
}

/// A return point of `goto ... return: true`: the calling flow and where it continues.
type Frame = (FlowId, Target);

/// Where to go after handling something.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Go {
    /// Wait for the next event.
    Wait,
    /// Continue at a step of the current flow; `None` when the flow has run out.
    To(Option<Target>),
    /// Play the built-in goodbye, then hang up.
    Farewell(Outcome),
}

/// One call's interpreter. See the module comment for the contract with the shell.
#[derive(Debug)]
pub struct FlowMachine {
    flows: Arc<FlowSet>,
    started_at: Instant,
    wall_clock_at_start: DateTime<Utc>,
    flow: FlowId,
    step: StepId,
    /// Return points of `goto ... return: true`, innermost last.
    frames: Vec<Frame>,
    /// Menus and collects entered, latest last, with the return points then.
    history: Vec<(FlowId, StepId, Vec<Frame>)>,
    language: String,
    vars: BTreeMap<String, Value>,
    type_ahead: VecDeque<char>,
    phase: Phase,
    /// Failures in the current menu or collect: all, timeouts, wrong entries.
    failures: u32,
    no_input_failures: u32,
    invalid_failures: u32,
    digits: String,
    steps_without_input: u32,
    silent_failures: u32,
    next_play: u64,
    next_request: u64,
    recordings: u32,
    /// A recording whose result may still arrive after the caller hung up.
    pending_record: Option<RequestId>,
    /// The queue the caller is in (or was in last) and the agent who answered.
    queue_facts: QueueFacts,
    actions: VecDeque<Action>,
    story: CallStory,
}

impl FlowMachine {
    /// A machine for a call that starts in `flow`. Nothing happens until `Event::Started`.
    pub fn new(
        flows: Arc<FlowSet>,
        flow: &str,
        ctx: CallContext,
        now: Instant,
    ) -> Result<Self, MachineError> {
        let Some(id) = flows.id(flow) else {
            return Err(MachineError::UnknownFlow {
                name: flow.to_owned(),
                known: flows.names().join(", "),
            });
        };
        let f = flows.flow(id);
        let language = f.language.clone();
        let start = f.start;
        let mut vars = BTreeMap::new();
        vars.insert("caller".to_owned(), Value::from(ctx.caller.clone()));
        vars.insert("dialed".to_owned(), Value::from(ctx.dialed.clone()));
        vars.insert("call_id".to_owned(), Value::from(ctx.call_id.clone()));
        vars.insert("language".to_owned(), Value::from(language.clone()));
        let story = CallStory {
            call_id: ctx.call_id,
            flow: flow.to_owned(),
            ..CallStory::default()
        };
        Ok(Self {
            flows,
            started_at: now,
            wall_clock_at_start: ctx.wall_clock_at_start,
            flow: id,
            step: start,
            frames: Vec::new(),
            history: Vec::new(),
            language,
            vars,
            type_ahead: VecDeque::new(),
            phase: Phase::NotStarted,
            failures: 0,
            no_input_failures: 0,
            invalid_failures: 0,
            digits: String::new(),
            steps_without_input: 0,
            silent_failures: 0,
            next_play: 0,
            next_request: 0,
            recordings: 0,
            pending_record: None,
            queue_facts: QueueFacts::default(),
            actions: VecDeque::new(),
            story,
        })
    }

    pub fn handle(&mut self, now: Instant, event: Event) {
        match event {
            Event::Started => {
                if self.phase == Phase::NotStarted {
                    let start = self.step;
                    self.run(now, Go::To(Some(Target::Step(start))));
                }
            }
            Event::Key(key) => self.on_key(now, key),
            Event::PromptFinished { id } => self.on_prompt_finished(now, id),
            Event::CallerHangup => {
                if self.phase != Phase::Ended {
                    self.note(now, StoryEvent::CallerHungUp);
                    self.phase = Phase::Ended;
                    self.set_outcome(now, Outcome::CallerHungUp);
                }
            }
            Event::HttpDone { id, outcome } => {
                if self.busy_with(id, Task::Http) {
                    let go = self.http_done(now, outcome);
                    self.run(now, go);
                }
            }
            Event::RecordDone {
                id,
                path,
                duration,
                reason,
            } => {
                if self.busy_with(id, Task::Record)
                    || (self.phase == Phase::Ended && self.pending_record == Some(id))
                {
                    let go = self.record_done(now, path, duration, reason);
                    self.run(now, go);
                }
            }
            Event::TransferDone { id, outcome } => {
                if self.busy_with(id, Task::Transfer) {
                    let go = self.transfer_done(now, outcome);
                    self.run(now, go);
                }
            }
            Event::QueueConnected { id, agent } => {
                if self.phase
                    == (Phase::Queued {
                        id,
                        connected: false,
                    })
                {
                    self.phase = Phase::Queued {
                        id,
                        connected: true,
                    };
                    self.note(
                        now,
                        StoryEvent::QueueAnswered {
                            agent: agent.clone(),
                        },
                    );
                    self.queue_facts.agent = Some(agent);
                }
            }
            Event::QueueDone {
                id,
                outcome,
                waited,
            } => {
                if matches!(self.phase, Phase::Queued { id: i, .. } if i == id) {
                    let go = self.queue_done(now, outcome, waited);
                    self.run(now, go);
                }
            }
        }
    }

    /// The next thing for the shell to do (the queue's room is let go once drained).
    pub fn poll_action(&mut self) -> Option<Action> {
        crate::outputs::pop_releasing(&mut self.actions)
    }

    /// When the machine wants `handle_timeout` (no-input and inter-digit timers, and the
    /// guard on requests to the shell).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Waiting { deadline, .. } | Phase::Busy { deadline, .. } => Some(deadline),
            _ => None,
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let go = match self.phase {
            Phase::Waiting { deadline, input } if now >= deadline => match input {
                Input::Menu | Input::Confirm => self.fail(now, FailureKind::NoInput),
                Input::Collect if self.digits.is_empty() => self.fail(now, FailureKind::NoInput),
                Input::Collect => self.finish_collect(now),
            },
            Phase::Busy { task, deadline, .. } if now >= deadline => match task {
                Task::Http => self.http_done(now, Err(HttpFailure::Timeout)),
                Task::Record => {
                    self.record_done(now, String::new(), Duration::ZERO, RecordEnd::Failed)
                }
                Task::Transfer => {
                    self.transfer_done(now, TransferOutcome::Failed("no result in time".to_owned()))
                }
            },
            _ => return,
        };
        self.run(now, go);
    }

    pub fn story(&self) -> &CallStory {
        &self.story
    }

    /// Adds to the story what the call saw beside the flow (the agents rung, a hold),
    /// in its place among the flow's own entries, even after the flow ended.
    pub fn add_to_story(&mut self, now: Instant, event: StoryEvent) {
        self.note(now, event);
    }

    pub fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    /// The caller's language now.
    pub fn language(&self) -> &str {
        &self.language
    }

    pub fn vars(&self) -> &BTreeMap<String, Value> {
        &self.vars
    }

    /// The current flow and step names.
    pub fn position(&self) -> (&str, &str) {
        let f = self.flows.flow(self.flow);
        let step = f.steps.get(self.step.0).map_or("", |s| s.name.as_str());
        (f.name.as_str(), step)
    }

    /// The wall-clock time at `now`: the call's start plus the time since.
    pub fn wall_clock(&self, now: Instant) -> DateTime<Utc> {
        let since = now.saturating_duration_since(self.started_at);
        chrono::Duration::from_std(since)
            .ok()
            .and_then(|d| self.wall_clock_at_start.checked_add_signed(d))
            .unwrap_or(self.wall_clock_at_start)
    }

    // ------------------------------------------------------------------ driving

    fn run(&mut self, now: Instant, mut go: Go) {
        loop {
            go = match go {
                Go::Wait => return,
                Go::To(Some(Target::Hangup)) => {
                    self.hang_up(now, Outcome::FlowHungUp);
                    return;
                }
                Go::To(Some(Target::Step(step))) => self.enter(now, step),
                Go::To(None) => self.ran_out(now),
                Go::Farewell(outcome) => {
                    self.farewell(now, outcome);
                    return;
                }
            };
        }
    }

    fn flow_def(&self) -> &CompiledFlow {
        self.flows.flow(self.flow)
    }

    fn step_name(&self) -> String {
        self.position().1.to_owned()
    }

    fn busy_with(&self, id: RequestId, task: Task) -> bool {
        matches!(self.phase, Phase::Busy { id: i, task: t, .. } if i == id && t == task)
    }

    fn enter(&mut self, now: Instant, step: StepId) -> Go {
        self.step = step;
        self.failures = 0;
        self.no_input_failures = 0;
        self.invalid_failures = 0;
        self.digits.clear();
        self.steps_without_input = self.steps_without_input.saturating_add(1);
        if self.steps_without_input > MAX_STEPS_WITHOUT_INPUT {
            return Go::Farewell(Outcome::Failed(FailReason::RunawayLoop {
                step: self.step_name(),
            }));
        }
        let flows = Arc::clone(&self.flows);
        let f = flows.flow(self.flow);
        let Some(s) = f.steps.get(step.0) else {
            return Go::To(None);
        };
        self.note(
            now,
            StoryEvent::StepEntered {
                flow: f.name.clone(),
                step: s.name.clone(),
            },
        );
        for (name, value) in &s.tags {
            self.tag(now, name, value);
        }
        if let Some(reason) = &s.resolved {
            self.note(
                now,
                StoryEvent::Resolved {
                    reason: reason.clone(),
                },
            );
        }
        match &s.action {
            StepAction::Play {
                audio,
                barge_in,
                next,
            } => {
                if *barge_in && !self.type_ahead.is_empty() {
                    self.note(
                        now,
                        StoryEvent::SkippedForTypeAhead {
                            step: s.name.clone(),
                        },
                    );
                    return Go::To(*next);
                }
                let audio = self.render_audio(now, audio);
                if audio.is_empty() {
                    return Go::To(*next);
                }
                self.play(now, audio, *barge_in, AfterPlay::Continue(*next));
                Go::Wait
            }
            StepAction::Menu(m) => {
                self.remember(step);
                if let Some(key) = self.type_ahead.pop_front() {
                    return self.menu_key(now, m, key, true);
                }
                self.offer(now, &[], &m.prompt, AfterPlay::Menu);
                Go::Wait
            }
            StepAction::Collect(c) => {
                self.remember(step);
                if self.type_ahead.is_empty() {
                    self.offer(now, &[], &c.prompt, AfterPlay::Collect);
                    return Go::Wait;
                }
                self.feed_collect(now, c)
            }
            StepAction::Set { vars, next } => {
                for (name, template) in vars {
                    let r = self.with_scope(now, |t, scope| t.value(template, scope));
                    if let Some(value) = self.rendered(now, template, r) {
                        self.set_json_var(now, name, value);
                    }
                }
                Go::To(*next)
            }
            StepAction::Branch { when, otherwise } => {
                for (condition, target) in when {
                    let r = self.with_scope(now, |t, scope| t.condition(condition, scope));
                    if self.rendered(now, condition, r) == Some(true) {
                        let to = self.target_name(*target);
                        self.note(
                            now,
                            StoryEvent::BranchTaken {
                                condition: Some(condition.clone()),
                                to,
                            },
                        );
                        return Go::To(Some(*target));
                    }
                }
                let to = otherwise.map_or_else(String::new, |t| self.target_name(t));
                self.note(
                    now,
                    StoryEvent::BranchTaken {
                        condition: None,
                        to,
                    },
                );
                Go::To(*otherwise)
            }
            StepAction::Hours {
                schedule,
                open,
                closed,
                holiday,
            } => {
                let Some(sch) = flows.schedule(schedule) else {
                    return Go::Farewell(Outcome::Failed(FailReason::UnknownSchedule {
                        step: s.name.clone(),
                        schedule: schedule.clone(),
                    }));
                };
                let at = self.wall_clock(now);
                let state = is_open(sch, at);
                let local = at
                    .with_timezone(&sch.timezone)
                    .format("%Y-%m-%d %H:%M:%S %Z")
                    .to_string();
                self.note(
                    now,
                    StoryEvent::HoursChecked {
                        schedule: schedule.clone(),
                        state: state.to_string(),
                        local_time: local,
                    },
                );
                let to = match state {
                    OpenState::Open => *open,
                    OpenState::Closed => *closed,
                    OpenState::Holiday(_) => holiday.unwrap_or(*closed),
                };
                Go::To(Some(to))
            }
            StepAction::Language { code, next } => {
                self.set_language(now, code);
                Go::To(*next)
            }
            StepAction::Http(h) => self.start_http(now, h),
            StepAction::Record(r) => {
                self.discard_type_ahead(now);
                let mut audio = self.render_audio(now, &r.prompt);
                if r.beep {
                    audio.push(Audio::Tone {
                        freq_hz: BEEP_HZ,
                        duration: BEEP,
                    });
                }
                if audio.is_empty() {
                    self.start_record(now, r);
                } else {
                    self.play(now, audio, false, AfterPlay::Record);
                }
                Go::Wait
            }
            StepAction::Transfer { uri, timeout, .. } => {
                self.discard_type_ahead(now);
                let id = self.request_id();
                self.actions.push_back(Action::Transfer {
                    id,
                    target: uri.clone(),
                    timeout: timeout.unwrap_or(DEFAULT_TRANSFER_TIMEOUT),
                });
                self.note(
                    now,
                    StoryEvent::TransferStarted {
                        target: uri.clone(),
                    },
                );
                self.busy(
                    now,
                    id,
                    Task::Transfer,
                    timeout.unwrap_or(DEFAULT_TRANSFER_TIMEOUT),
                );
                Go::Wait
            }
            StepAction::Goto { flow, return_to } => {
                if let Some(back) = return_to {
                    if self.frames.len() >= MAX_GOTO_DEPTH {
                        return Go::Farewell(Outcome::Failed(FailReason::GotoTooDeep {
                            step: s.name.clone(),
                        }));
                    }
                    self.frames.push((self.flow, *back));
                }
                self.flow = *flow;
                let target = flows.flow(*flow);
                self.note(
                    now,
                    StoryEvent::FlowEntered {
                        flow: target.name.clone(),
                        returns: return_to.is_some(),
                    },
                );
                Go::To(Some(Target::Step(target.start)))
            }
            StepAction::Hangup { audio } => {
                let audio = self.render_audio(now, audio);
                if audio.is_empty() {
                    self.hang_up(now, Outcome::FlowHungUp);
                } else {
                    self.set_outcome(now, Outcome::FlowHungUp);
                    self.play(now, audio, false, AfterPlay::HangUp);
                }
                Go::Wait
            }
            StepAction::Queue(q) => {
                self.discard_type_ahead(now);
                self.steps_without_input = 0;
                let id = self.request_id();
                self.queue_facts = QueueFacts {
                    queue: q.queue.clone(),
                    agent: None,
                };
                self.note(
                    now,
                    StoryEvent::QueueJoined {
                        queue: q.queue.clone(),
                    },
                );
                self.actions.push_back(Action::Queue {
                    id,
                    queue: q.queue.clone(),
                    priority: q.priority,
                    skills: q.skills.clone(),
                });
                self.phase = Phase::Queued {
                    id,
                    connected: false,
                };
                Go::Wait
            }
        }
    }

    /// The flow has no next step: return from a `goto ... return: true`, or say goodbye.
    fn ran_out(&mut self, now: Instant) -> Go {
        match self.frames.pop() {
            Some((flow, back)) => {
                self.flow = flow;
                let name = self.flow_def().name.clone();
                self.note(now, StoryEvent::FlowReturned { to: name });
                Go::To(Some(back))
            }
            None => Go::Farewell(Outcome::FlowEnded),
        }
    }

    fn farewell(&mut self, now: Instant, outcome: Outcome) {
        self.type_ahead.clear();
        self.set_outcome(now, outcome);
        let prompt = Audio::Prompt(self.prompt_ref(DEFAULT_GOODBYE_PROMPT));
        self.play(now, vec![prompt], false, AfterPlay::HangUp);
    }

    fn hang_up(&mut self, now: Instant, outcome: Outcome) {
        self.set_outcome(now, outcome);
        self.phase = Phase::Ended;
        self.actions.push_back(Action::Hangup);
    }

    fn set_outcome(&mut self, now: Instant, outcome: Outcome) {
        if self.story.outcome.is_none() {
            self.note(
                now,
                StoryEvent::Ended {
                    outcome: outcome.clone(),
                },
            );
            self.story.outcome = Some(outcome);
        }
    }

    // ------------------------------------------------------------------ events

    fn on_key(&mut self, now: Instant, key: char) {
        if DtmfKey::new(key).is_none() {
            self.key_note(now, key, KeyUse::Ignored, false);
            return;
        }
        self.silent_failures = 0;
        let go = match self.phase {
            Phase::NotStarted => {
                self.buffer_key(now, key);
                Go::Wait
            }
            Phase::Ended => Go::Wait,
            Phase::Queued { id, connected } => self.queue_key(now, id, connected, key),
            Phase::Busy { task, .. } => {
                if task == Task::Http {
                    self.buffer_key(now, key);
                } else {
                    // The recording's terminator is the shell's; a ringing transfer
                    // takes no keys.
                    self.key_note(now, key, KeyUse::Ignored, false);
                }
                Go::Wait
            }
            Phase::Playing { id, barge_in, then } => match then {
                AfterPlay::HangUp | AfterPlay::Record => {
                    self.key_note(now, key, KeyUse::Ignored, false);
                    Go::Wait
                }
                AfterPlay::Continue(next) => {
                    self.buffer_key(now, key);
                    if barge_in {
                        self.stop(now, id);
                        Go::To(next)
                    } else {
                        Go::Wait
                    }
                }
                AfterPlay::Menu | AfterPlay::Collect | AfterPlay::Confirm => {
                    self.stop(now, id);
                    self.input_key(now, key)
                }
            },
            Phase::Waiting { .. } => self.input_key(now, key),
        };
        self.run(now, go);
    }

    /// A key for the menu, collect or confirmation the current step is asking for.
    fn input_key(&mut self, now: Instant, key: char) -> Go {
        let flows = Arc::clone(&self.flows);
        let Some(step) = flows.flow(self.flow).steps.get(self.step.0) else {
            return Go::Wait;
        };
        match (&step.action, self.asking()) {
            (StepAction::Menu(m), _) => self.menu_key(now, m, key, false),
            (StepAction::Collect(c), Some(Input::Confirm)) => self.confirm_key(now, c, key, false),
            (StepAction::Collect(c), _) => self.collect_key(now, c, key, false),
            _ => Go::Wait,
        }
    }

    /// Which input the current phase asks for.
    fn asking(&self) -> Option<Input> {
        match self.phase {
            Phase::Waiting { input, .. } => Some(input),
            Phase::Playing {
                then: AfterPlay::Menu,
                ..
            } => Some(Input::Menu),
            Phase::Playing {
                then: AfterPlay::Collect,
                ..
            } => Some(Input::Collect),
            Phase::Playing {
                then: AfterPlay::Confirm,
                ..
            } => Some(Input::Confirm),
            _ => None,
        }
    }

    fn on_prompt_finished(&mut self, now: Instant, id: PlayId) {
        let Phase::Playing {
            id: playing, then, ..
        } = self.phase
        else {
            return;
        };
        if playing != id {
            return;
        }
        let go = self.after_play(now, then);
        self.run(now, go);
    }

    /// What follows a finished playback; timeouts start now, at the end of the prompt.
    fn after_play(&mut self, now: Instant, then: AfterPlay) -> Go {
        let flows = Arc::clone(&self.flows);
        let step = flows.flow(self.flow).steps.get(self.step.0);
        match (then, step.map(|s| &s.action)) {
            (AfterPlay::Continue(next), _) => Go::To(next),
            (AfterPlay::HangUp, _) => {
                self.phase = Phase::Ended;
                self.actions.push_back(Action::Hangup);
                Go::Wait
            }
            (AfterPlay::Menu, Some(StepAction::Menu(m))) => {
                self.wait_for(now, m.timeout, Input::Menu);
                Go::Wait
            }
            (AfterPlay::Collect, Some(StepAction::Collect(c))) => {
                self.wait_for(now, c.timeout, Input::Collect);
                Go::Wait
            }
            (AfterPlay::Confirm, Some(StepAction::Collect(c))) => {
                self.wait_for(now, c.timeout, Input::Confirm);
                Go::Wait
            }
            (AfterPlay::Record, Some(StepAction::Record(r))) => {
                self.start_record(now, r);
                Go::Wait
            }
            _ => Go::Wait,
        }
    }

    // ------------------------------------------------------------------ menu

    fn menu_key(&mut self, now: Instant, m: &MenuStep, key: char, typed_ahead: bool) -> Go {
        self.steps_without_input = 0;
        if let Some(option) = m.option(key) {
            let to = self.target_name(option.target);
            self.key_note(now, key, KeyUse::Option { to }, typed_ahead);
            if let Some(lang) = &option.language {
                self.set_language(now, lang);
            }
            if let Some(reason) = &option.reason {
                self.tag(now, REASON_TAG, &TagValue::Text(reason.clone()));
            }
            if let Some(score) = survey_score(&key.to_string()) {
                self.survey_answered(now, score);
            }
            return Go::To(Some(option.target));
        }
        if m.repeat_key == Some(key) {
            self.key_note(now, key, KeyUse::Repeat, typed_ahead);
            self.offer(now, &[], &m.prompt, AfterPlay::Menu);
            return Go::Wait;
        }
        if let Some(go) = self.global(now, key, typed_ahead) {
            return go;
        }
        self.key_note(now, key, KeyUse::Invalid, typed_ahead);
        self.input_failed(now, FailureKind::Invalid, key.to_string())
    }

    /// A global key (to a step, or `back`), if `key` is one and leads somewhere.
    fn global(&mut self, now: Instant, key: char, typed_ahead: bool) -> Option<Go> {
        if let Some(target) = self.flow_def().global_key(key) {
            let to = self.target_name(target);
            self.key_note(now, key, KeyUse::Global { to }, typed_ahead);
            return Some(Go::To(Some(target)));
        }
        if !self.flow_def().is_back_key(key) {
            return None;
        }
        // The entries of the step the caller is in are not "back".
        let here = (self.flow, self.step);
        while self
            .history
            .last()
            .is_some_and(|(f, s, _)| (*f, *s) == here)
        {
            self.history.pop();
        }
        let (flow, step, frames) = self.history.pop()?;
        self.frames = frames;
        self.flow = flow;
        let to = self.target_name(Target::Step(step));
        self.key_note(now, key, KeyUse::Back { to }, typed_ahead);
        Some(Go::To(Some(Target::Step(step))))
    }

    /// Notes a menu or collect for `back`.
    fn remember(&mut self, step: StepId) {
        if self
            .history
            .last()
            .is_some_and(|(f, s, _)| (*f, *s) == (self.flow, step))
        {
            return;
        }
        if self.history.len() >= BACK_HISTORY_LIMIT {
            self.history.remove(0);
        }
        self.history.push((self.flow, step, self.frames.clone()));
    }

    // ------------------------------------------------------------------ collect

    /// Runs the type-ahead through a collect that has just been entered.
    fn feed_collect(&mut self, now: Instant, c: &CollectStep) -> Go {
        while let Some(key) = self.type_ahead.pop_front() {
            let go = self.collect_key(now, c, key, true);
            let still_collecting = matches!(
                self.phase,
                Phase::Waiting {
                    input: Input::Collect,
                    ..
                }
            ) && go == Go::Wait;
            if !still_collecting {
                return go;
            }
        }
        Go::Wait
    }

    fn collect_key(&mut self, now: Instant, c: &CollectStep, key: char, typed_ahead: bool) -> Go {
        self.steps_without_input = 0;
        if Some(key) == c.terminator {
            self.key_note(now, key, KeyUse::Terminator, typed_ahead);
            return self.finish_collect(now);
        }
        let first = self.digits.is_empty();
        if first && c.repeat_key == Some(key) {
            self.key_note(now, key, KeyUse::Repeat, typed_ahead);
            self.offer(now, &[], &c.prompt, AfterPlay::Collect);
            return Go::Wait;
        }
        // A global digit works only as the first key: after that, digits are the entry.
        if (!key.is_ascii_digit() || first)
            && let Some(go) = self.global(now, key, typed_ahead)
        {
            return go;
        }
        if !key.is_ascii_digit() {
            self.key_note(now, key, KeyUse::Invalid, typed_ahead);
            let mut input = std::mem::take(&mut self.digits);
            input.push(key);
            return self.input_failed(now, FailureKind::Invalid, input);
        }
        self.key_note(now, key, KeyUse::Digit, typed_ahead);
        self.digits.push(key);
        if self.digits.len() >= c.max_digits as usize {
            return self.finish_collect(now);
        }
        self.wait_for(now, c.inter_digit_timeout, Input::Collect);
        Go::Wait
    }

    fn finish_collect(&mut self, now: Instant) -> Go {
        let flows = Arc::clone(&self.flows);
        let Some(StepAction::Collect(c)) = flows
            .flow(self.flow)
            .steps
            .get(self.step.0)
            .map(|s| &s.action)
        else {
            return Go::Wait;
        };
        let entry = std::mem::take(&mut self.digits);
        let long_enough = entry.len() >= c.min_digits as usize;
        let matches = c.pattern.as_ref().is_none_or(|p| p.is_match(&entry));
        let survey = self.survey_question().is_some();
        let score = survey_score(&entry);
        if !(long_enough && matches) || (survey && score.is_none()) {
            return self.input_failed(now, FailureKind::Invalid, entry);
        }
        self.set_var(now, &c.into, entry.clone());
        if let Some(score) = score {
            self.survey_answered(now, score);
        }
        match &c.confirm {
            None => Go::To(c.next),
            Some(cf) => {
                if let Some(key) = self.type_ahead.pop_front() {
                    return self.confirm_key(now, c, key, true);
                }
                let mut audio = self.render_audio(now, &cf.prompt);
                if cf.read_back {
                    audio.push(Audio::Say {
                        language: self.language.clone(),
                        kind: SayKind::Digits,
                        value: entry,
                    });
                }
                audio.extend(self.render_audio(now, &cf.then));
                self.steps_without_input = 0;
                self.play(now, audio, true, AfterPlay::Confirm);
                Go::Wait
            }
        }
    }

    fn confirm_key(&mut self, now: Instant, c: &CollectStep, key: char, typed_ahead: bool) -> Go {
        self.steps_without_input = 0;
        let Some(cf) = &c.confirm else {
            return Go::Wait;
        };
        if key == cf.yes {
            self.key_note(now, key, KeyUse::ConfirmYes, typed_ahead);
            return Go::To(c.next);
        }
        if key == cf.no {
            // Asking again is the caller's choice, not a failure.
            self.key_note(now, key, KeyUse::ConfirmNo, typed_ahead);
            self.digits.clear();
            self.offer(now, &[], &c.prompt, AfterPlay::Collect);
            return Go::Wait;
        }
        self.key_note(now, key, KeyUse::Invalid, typed_ahead);
        self.input_failed(now, FailureKind::Invalid, key.to_string())
    }

    // ------------------------------------------------------------------ failures

    fn input_failed(&mut self, now: Instant, kind: FailureKind, input: String) -> Go {
        let failures = self.failures.saturating_add(1);
        let step = self.step_name();
        if kind == FailureKind::Invalid {
            self.note(
                now,
                StoryEvent::Invalid {
                    step,
                    input,
                    failures,
                },
            );
        }
        self.fail(now, kind)
    }

    /// A timeout or a wrong entry: offer the step again with the matching prompt first,
    /// or once the failures are used up go to `on_failure` (or the built-in goodbye).
    /// Timeouts and wrong entries count together against `retries`, or each against its
    /// own limit when the step sets `max_no_input` or `max_invalid`.
    fn fail(&mut self, now: Instant, kind: FailureKind) -> Go {
        self.failures = self.failures.saturating_add(1);
        let kind_count = match kind {
            FailureKind::NoInput => &mut self.no_input_failures,
            FailureKind::Invalid => &mut self.invalid_failures,
        };
        *kind_count = kind_count.saturating_add(1);
        self.digits.clear();
        // Keys typed after a failure were meant for a menu the caller misunderstood.
        self.discard_type_ahead(now);
        let step = self.step_name();
        if kind == FailureKind::NoInput {
            self.note(
                now,
                StoryEvent::NoInput {
                    step: step.clone(),
                    failures: self.failures,
                },
            );
            self.silent_failures = self.silent_failures.saturating_add(1);
            if self.silent_failures > MAX_SILENT_FAILURES {
                return Go::Farewell(Outcome::Failed(FailReason::NoCaller { step }));
            }
        }
        let flows = Arc::clone(&self.flows);
        let Some(s) = flows.flow(self.flow).steps.get(self.step.0) else {
            return Go::To(None);
        };
        let no_input = kind == FailureKind::NoInput;
        let (limits, on_failure, extra, prompt, then) = match &s.action {
            StepAction::Menu(m) => (
                (m.retries, m.max_no_input, m.max_invalid),
                m.on_failure,
                if no_input { &m.no_input } else { &m.invalid },
                if m.retry_prompt.is_empty() {
                    &m.prompt
                } else {
                    &m.retry_prompt
                },
                AfterPlay::Menu,
            ),
            StepAction::Collect(c) => (
                (c.retries, c.max_no_input, c.max_invalid),
                c.on_failure,
                if no_input { &c.no_input } else { &c.invalid },
                if c.retry_prompt.is_empty() {
                    &c.prompt
                } else {
                    &c.retry_prompt
                },
                AfterPlay::Collect,
            ),
            _ => return Go::Wait,
        };
        let (retries, max_no_input, max_invalid) = limits;
        let exhausted = if max_no_input.is_some() || max_invalid.is_some() {
            match kind {
                FailureKind::NoInput => self.no_input_failures > max_no_input.unwrap_or(retries),
                FailureKind::Invalid => self.invalid_failures > max_invalid.unwrap_or(retries),
            }
        } else {
            self.failures > retries
        };
        if exhausted {
            self.note(now, StoryEvent::StepFailed { step: step.clone() });
            return match on_failure {
                Some(target) => Go::To(Some(target)),
                None => Go::Farewell(Outcome::Failed(FailReason::RetriesExhausted {
                    step,
                    last: kind,
                })),
            };
        }
        self.offer(now, extra, prompt, then);
        Go::Wait
    }

    // ------------------------------------------------------------------ requests

    fn request_id(&mut self) -> RequestId {
        let id = RequestId(self.next_request);
        self.next_request = self.next_request.wrapping_add(1);
        id
    }

    fn busy(&mut self, now: Instant, id: RequestId, task: Task, timeout: Duration) {
        let wait = timeout.saturating_add(SHELL_GRACE);
        let deadline = now.checked_add(wait).unwrap_or(now);
        self.phase = Phase::Busy { id, task, deadline };
    }

    fn start_http(&mut self, now: Instant, h: &HttpStep) -> Go {
        let url = self.with_scope(now, |t, scope| t.render_url(&h.url, scope));
        let Some(url) = self.rendered(now, &h.url, url) else {
            self.note(
                now,
                StoryEvent::HttpFinished {
                    outcome: "the request could not be built".to_owned(),
                },
            );
            return Go::To(h.on_error.or(h.next));
        };
        let mut headers = Vec::with_capacity(h.headers.len());
        for (name, value) in &h.headers {
            let r = self.with_scope(now, |t, scope| t.render(value, scope));
            // A header value must not carry a line break into the request.
            let v = self
                .rendered(now, value, r)
                .unwrap_or_default()
                .replace(['\r', '\n'], " ");
            headers.push((name.clone(), v));
        }
        let body = h.body.as_ref().map(|b| self.render_body(now, b));
        let id = self.request_id();
        let method = h.method;
        self.note(
            now,
            StoryEvent::HttpRequested {
                method: method_name(method).to_owned(),
                url: url.clone(),
            },
        );
        self.actions.push_back(Action::Http {
            id,
            method,
            url,
            headers,
            body,
            timeout: h.timeout,
        });
        self.busy(now, id, Task::Http, h.timeout);
        Go::Wait
    }

    /// A text body is rendered as written; a mapping or list becomes JSON whose strings
    /// are rendered (one `{{ expression }}` keeps its value's type).
    fn render_body(&mut self, now: Instant, body: &Value) -> String {
        match body {
            Value::String(t) => {
                let r = self.with_scope(now, |tp, scope| tp.render(t, scope));
                self.rendered(now, t, r).unwrap_or_default()
            }
            other => {
                let filled = self.fill_json(now, other);
                filled.to_string()
            }
        }
    }

    fn fill_json(&mut self, now: Instant, v: &Value) -> Value {
        match v {
            Value::String(t) => {
                let r = self.with_scope(now, |tp, scope| tp.value(t, scope));
                self.rendered(now, t, r).unwrap_or(Value::Null)
            }
            Value::Array(a) => Value::Array(a.iter().map(|x| self.fill_json(now, x)).collect()),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| (k.clone(), self.fill_json(now, x)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn current_step(&self) -> Option<&StepAction> {
        self.flow_def().steps.get(self.step.0).map(|s| &s.action)
    }

    /// The survey question the current step asks, if it is one.
    fn survey_question(&self) -> Option<&str> {
        self.flow_def()
            .steps
            .get(self.step.0)
            .and_then(|s| s.survey.as_deref())
    }

    /// Notes the score when the current step is a survey question (the last answer to a
    /// question asked again is the one that counts).
    fn survey_answered(&mut self, now: Instant, score: u8) {
        if let Some(question) = self.survey_question().map(str::to_owned) {
            self.note(now, StoryEvent::SurveyAnswered { question, score });
        }
    }

    fn http_done(&mut self, now: Instant, outcome: Result<Value, HttpFailure>) -> Go {
        let flows = Arc::clone(&self.flows);
        let Some(StepAction::Http(h)) = flows
            .flow(self.flow)
            .steps
            .get(self.step.0)
            .map(|s| &s.action)
        else {
            return Go::Wait;
        };
        match outcome {
            Ok(body) => {
                self.note(
                    now,
                    StoryEvent::HttpFinished {
                        outcome: "ok".to_owned(),
                    },
                );
                if let Some(into) = &h.into {
                    self.set_json_var(now, into, body);
                }
                Go::To(h.next)
            }
            Err(failure) => {
                self.note(
                    now,
                    StoryEvent::HttpFinished {
                        outcome: failure.to_string(),
                    },
                );
                Go::To(h.on_error.or(h.next))
            }
        }
    }

    fn start_record(&mut self, now: Instant, r: &RecordStep) {
        let id = self.request_id();
        self.recordings = self.recordings.saturating_add(1);
        let name = format!(
            "{}-{}-{}",
            file_safe(&self.story.call_id),
            file_safe(&self.step_name()),
            self.recordings
        );
        self.note(now, StoryEvent::RecordingStarted { name: name.clone() });
        self.actions.push_back(Action::Record {
            id,
            max_duration: r.max_duration,
            silence_timeout: r.silence_timeout,
            terminator: r.terminator,
            name,
        });
        self.pending_record = Some(id);
        self.busy(now, id, Task::Record, r.max_duration);
    }

    fn record_done(
        &mut self,
        now: Instant,
        path: String,
        duration: Duration,
        reason: RecordEnd,
    ) -> Go {
        self.pending_record = None;
        let (into, next, voicemail) = match self.current_step() {
            Some(StepAction::Record(r)) => (r.into.clone(), r.next, r.voicemail),
            _ => (None, None, false),
        };
        self.note(
            now,
            StoryEvent::RecordingFinished {
                path: path.clone(),
                duration,
                reason: reason.as_str().to_owned(),
                voicemail,
            },
        );
        if reason != RecordEnd::Failed
            && let Some(into) = into
        {
            let value = serde_json::json!({
                "path": path,
                "duration": duration.as_secs_f64(),
                "reason": reason.as_str(),
            });
            self.set_json_var(now, &into, value);
        }
        if self.phase == Phase::Ended {
            return Go::Wait;
        }
        if reason == RecordEnd::Hangup {
            self.note(now, StoryEvent::CallerHungUp);
            self.phase = Phase::Ended;
            self.set_outcome(now, Outcome::CallerHungUp);
            return Go::Wait;
        }
        Go::To(next)
    }

    fn transfer_done(&mut self, now: Instant, outcome: TransferOutcome) -> Go {
        let (target, on_failure) = match self.current_step() {
            Some(StepAction::Transfer {
                uri, on_failure, ..
            }) => (uri.clone(), *on_failure),
            _ => (String::new(), None),
        };
        self.note(
            now,
            StoryEvent::TransferFinished {
                outcome: outcome.to_string(),
            },
        );
        if outcome == TransferOutcome::Connected {
            self.phase = Phase::Ended;
            self.set_outcome(now, Outcome::Transferred { target });
            return Go::Wait;
        }
        match on_failure {
            Some(t) => Go::To(Some(t)),
            None => Go::Farewell(Outcome::Failed(FailReason::TransferFailed {
                step: self.step_name(),
                outcome: outcome.to_string(),
            })),
        }
    }

    /// A key while queued: a key of the step's `keys` leaves the line for its step.
    fn queue_key(&mut self, now: Instant, id: RequestId, connected: bool, key: char) -> Go {
        let target = match self.current_step() {
            Some(StepAction::Queue(q)) if !connected => q.key(key),
            _ => None,
        };
        let Some(target) = target else {
            self.key_note(now, key, KeyUse::Ignored, false);
            return Go::Wait;
        };
        let to = self.target_name(target);
        self.key_note(now, key, KeyUse::Option { to }, false);
        self.actions.push_back(Action::LeaveQueue { id });
        // The shell knows the wait; the flow records that the caller chose to leave.
        self.finish_queue(now, &format!("left with key {key}"), None);
        Go::To(Some(target))
    }

    fn queue_done(&mut self, now: Instant, outcome: QueueOutcome, waited: Duration) -> Go {
        let (on_timeout, after, on_callback) = match self.current_step() {
            Some(StepAction::Queue(q)) => (q.on_timeout, q.after, q.on_callback),
            _ => (None, None, None),
        };
        if let QueueOutcome::AgentHungUp { agent } = &outcome {
            self.queue_facts.agent = Some(agent.clone());
        }
        self.finish_queue(now, outcome.as_str(), Some(waited));
        let queue = self.queue_facts.queue.clone();
        match outcome {
            QueueOutcome::AgentHungUp { agent } => match after {
                Some(t) => Go::To(Some(t)),
                None => {
                    self.hang_up(now, Outcome::Answered { queue, agent });
                    Go::Wait
                }
            },
            QueueOutcome::CallerHungUp => {
                self.note(now, StoryEvent::CallerHungUp);
                self.phase = Phase::Ended;
                self.set_outcome(now, Outcome::CallerHungUp);
                Go::Wait
            }
            QueueOutcome::Callback => match on_callback {
                Some(t) => {
                    self.set_outcome(now, Outcome::CallbackRequested { queue });
                    Go::To(Some(t))
                }
                None => Go::Farewell(Outcome::CallbackRequested { queue }),
            },
            QueueOutcome::Overflow { reason } => match on_timeout {
                Some(t) => Go::To(Some(t)),
                None => Go::Farewell(Outcome::Failed(FailReason::QueueOverflow {
                    step: self.step_name(),
                    queue,
                    reason,
                })),
            },
            QueueOutcome::Failed(why) => match on_timeout {
                Some(t) => Go::To(Some(t)),
                None => Go::Farewell(Outcome::Failed(FailReason::QueueFailed {
                    step: self.step_name(),
                    queue,
                    why,
                })),
            },
        }
    }

    /// Notes how the caller's time in the queue ended and keeps the facts in the `queue`
    /// variable (`queue.name`, `queue.outcome`, `queue.wait` in whole seconds, `queue.agent`).
    fn finish_queue(&mut self, now: Instant, outcome: &str, waited: Option<Duration>) {
        self.note(
            now,
            StoryEvent::QueueFinished {
                outcome: outcome.to_owned(),
                waited,
            },
        );
        let value = serde_json::json!({
            "name": self.queue_facts.queue,
            "outcome": outcome,
            "wait": waited.map(|w| w.as_secs()),
            "agent": self.queue_facts.agent,
        });
        self.set_json_var(now, "queue", value);
    }

    // ------------------------------------------------------------------ helpers

    /// Plays `before` then `prompt` with barge-in, then waits as `then` says.
    fn offer(&mut self, now: Instant, before: &[AudioItem], prompt: &[AudioItem], then: AfterPlay) {
        self.steps_without_input = 0;
        let mut audio = self.render_audio(now, before);
        audio.extend(self.render_audio(now, prompt));
        if audio.is_empty() {
            // Nothing to hear (every item failed to render): start waiting at once. For a
            // menu, collect or confirmation this is always a wait, never a jump.
            let _ = self.after_play(now, then);
            return;
        }
        self.play(now, audio, true, then);
    }

    fn play(&mut self, now: Instant, audio: Vec<Audio>, barge_in: bool, then: AfterPlay) {
        let id = PlayId(self.next_play);
        self.next_play = self.next_play.wrapping_add(1);
        let items = audio.iter().map(describe_audio).collect();
        self.note(now, StoryEvent::Played { id, items });
        self.actions.push_back(Action::Play {
            id,
            audio,
            barge_in,
        });
        self.phase = Phase::Playing { id, barge_in, then };
    }

    fn stop(&mut self, now: Instant, id: PlayId) {
        self.actions.push_back(Action::StopPlayback { id });
        self.note(now, StoryEvent::PlaybackStopped { id });
    }

    fn wait_for(&mut self, now: Instant, timeout: Duration, input: Input) {
        self.steps_without_input = 0;
        let deadline = now.checked_add(timeout).unwrap_or(now);
        self.phase = Phase::Waiting { deadline, input };
    }

    fn buffer_key(&mut self, now: Instant, key: char) {
        if self.type_ahead.len() >= TYPE_AHEAD_LIMIT {
            self.key_note(now, key, KeyUse::Dropped, false);
        } else {
            self.type_ahead.push_back(key);
            self.key_note(now, key, KeyUse::Buffered, false);
        }
    }

    fn discard_type_ahead(&mut self, now: Instant) {
        if !self.type_ahead.is_empty() {
            let keys: String = self.type_ahead.drain(..).collect();
            self.note(now, StoryEvent::TypeAheadDiscarded { keys });
        }
    }

    fn prompt_ref(&self, name: &str) -> PromptRef {
        PromptRef {
            language: self.language.clone(),
            fallback_language: self.flow_def().language.clone(),
            name: name.to_owned(),
        }
    }

    /// Runs `f` with the flow set's templates and the call's variables as they are now.
    fn with_scope<T>(&self, now: Instant, f: impl FnOnce(&Templates, Scope<'_>) -> T) -> T {
        let scope = Scope {
            vars: &self.vars,
            config: self.flows.config_vars(),
            now: self.wall_clock(now),
        };
        f(self.flows.templates(), scope)
    }

    /// Notes what a rendering left undefined or why it failed; the value if any.
    fn rendered<T>(
        &mut self,
        now: Instant,
        template: &str,
        r: Result<Rendered<T>, String>,
    ) -> Option<T> {
        match r {
            Ok(r) => {
                if !r.undefined.is_empty() {
                    self.note(
                        now,
                        StoryEvent::TemplateUndefined {
                            template: template.to_owned(),
                            variables: r.undefined,
                        },
                    );
                }
                Some(r.value)
            }
            Err(error) => {
                self.note(
                    now,
                    StoryEvent::TemplateFailed {
                        template: template.to_owned(),
                        error,
                    },
                );
                None
            }
        }
    }

    fn render_audio(&mut self, now: Instant, items: &[AudioItem]) -> Vec<Audio> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item {
                AudioItem::Prompt(name) => out.push(Audio::Prompt(self.prompt_ref(name))),
                AudioItem::Silence(d) => out.push(Audio::Silence(*d)),
                AudioItem::Say { kind, value } => {
                    let r = self.with_scope(now, |t, scope| t.render(value, scope));
                    if let Some(v) = self.rendered(now, value, r) {
                        out.push(Audio::Say {
                            language: self.language.clone(),
                            kind: *kind,
                            value: v,
                        });
                    }
                }
            }
        }
        out
    }

    fn set_language(&mut self, now: Instant, code: &str) {
        self.language = code.to_owned();
        self.vars
            .insert("language".to_owned(), Value::from(code.to_owned()));
        self.note(
            now,
            StoryEvent::LanguageChanged {
                language: code.to_owned(),
            },
        );
    }

    fn set_var(&mut self, now: Instant, name: &str, value: String) {
        self.set_json_var(now, name, Value::from(value));
    }

    fn set_json_var(&mut self, now: Instant, name: &str, value: Value) {
        let shown = match &value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        self.vars.insert(name.to_owned(), value);
        self.note(
            now,
            StoryEvent::VariableSet {
                name: name.to_owned(),
                value: shown,
            },
        );
    }

    fn tag(&mut self, now: Instant, name: &str, value: &TagValue) {
        let value = match value {
            TagValue::Text(t) => {
                let r = self.with_scope(now, |tp, scope| tp.render(t, scope));
                self.rendered(now, t, r).unwrap_or_else(|| t.clone())
            }
            other => other.to_string(),
        };
        match self.story.tags.iter_mut().find(|(k, _)| k == name) {
            Some(entry) => entry.1 = value.clone(),
            None => self.story.tags.push((name.to_owned(), value.clone())),
        }
        self.note(
            now,
            StoryEvent::Tagged {
                name: name.to_owned(),
                value,
            },
        );
    }

    fn target_name(&self, target: Target) -> String {
        match target {
            Target::Hangup => "hangup".to_owned(),
            Target::Step(s) => self
                .flow_def()
                .steps
                .get(s.0)
                .map_or_else(String::new, |s| s.name.clone()),
        }
    }

    fn key_note(&mut self, now: Instant, key: char, went: KeyUse, typed_ahead: bool) {
        self.note(
            now,
            StoryEvent::Key {
                key,
                went,
                typed_ahead,
            },
        );
    }

    fn note(&mut self, now: Instant, event: StoryEvent) {
        let at = now.saturating_duration_since(self.started_at);
        self.story.entries.push(StoryEntry { at, event });
    }
}

/// A survey answer: one key, 1 to 5.
fn survey_score(entry: &str) -> Option<u8> {
    match entry.as_bytes() {
        [d @ b'1'..=b'5'] => Some(d - b'0'),
        _ => None,
    }
}

fn method_name(m: HttpMethod) -> &'static str {
    match m {
        HttpMethod::Get => "GET",
        HttpMethod::Post => "POST",
        HttpMethod::Put => "PUT",
        HttpMethod::Patch => "PATCH",
        HttpMethod::Delete => "DELETE",
    }
}

/// Letters, digits, `-` and `_` only, at most 64 characters: safe in any file name.
fn file_safe(s: &str) -> String {
    let out: String = s
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() {
        "call".to_owned()
    } else {
        out
    }
}

fn describe_audio(a: &Audio) -> String {
    match a {
        Audio::Prompt(p) => p.name.clone(),
        Audio::Say { kind, value, .. } => format!("say:{}:{value}", kind.as_str()),
        Audio::Silence(d) => format!("silence:{}", super::duration::DisplayDuration(*d)),
        Audio::Tone { freq_hz, duration } => format!(
            "tone:{freq_hz}Hz:{}",
            super::duration::DisplayDuration(*duration)
        ),
    }
}
