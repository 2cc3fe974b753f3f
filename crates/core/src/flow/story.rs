//! A call's story as data: the steps it went through, the keys pressed and where they
//! went, what was played, the tags and how it ended.
//!
//! Owns the record types only. The interpreter writes them as the call moves; call
//! records, `simulate` and flow tests read them. Nothing here does IO.

use std::fmt;
use std::time::Duration;

/// The tag that holds the reason for calling (`reason:` on a step or a menu option, or
/// `tag: { reason: ... }`): the last value reached is the call's reason.
pub const REASON_TAG: &str = "reason";

/// Identifies one `Action::Play` of the interpreter, so a late `PromptFinished` of a stopped
/// prompt is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlayId(pub u64);

/// Everything that happened in a call, in order, with times relative to its start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallStory {
    pub call_id: String,
    /// The flow the call started in.
    pub flow: String,
    pub entries: Vec<StoryEntry>,
    /// The call's tags (last value wins per name), in the order first set.
    pub tags: Vec<(String, String)>,
    /// Set once, when the call's end is decided.
    pub outcome: Option<Outcome>,
}

impl CallStory {
    /// The steps entered, as "flow/step" names.
    pub fn path(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter_map(|e| match &e.event {
                StoryEvent::StepEntered { flow, step } => Some(format!("{flow}/{step}")),
                _ => None,
            })
            .collect()
    }

    /// The names of the prompts played, in order (say items as `say:KIND:VALUE`).
    pub fn prompts_played(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter_map(|e| match &e.event {
                StoryEvent::Played { items, .. } => Some(items.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    pub fn tag(&self, name: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoryEntry {
    /// Time since the call started.
    pub at: Duration,
    pub event: StoryEvent,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StoryEvent {
    StepEntered {
        flow: String,
        step: String,
    },
    /// A `play` step was passed over because the caller had already typed ahead.
    SkippedForTypeAhead {
        step: String,
    },
    Played {
        id: PlayId,
        items: Vec<String>,
    },
    PlaybackStopped {
        id: PlayId,
    },
    /// A key: when pressed (`typed_ahead: false`) or when a buffered key was used later.
    Key {
        key: char,
        went: KeyUse,
        typed_ahead: bool,
    },
    TypeAheadDiscarded {
        keys: String,
    },
    NoInput {
        step: String,
        failures: u32,
    },
    Invalid {
        step: String,
        input: String,
        failures: u32,
    },
    /// Retries exhausted; the call goes to `on_failure` or the built-in goodbye.
    StepFailed {
        step: String,
    },
    VariableSet {
        name: String,
        value: String,
    },
    LanguageChanged {
        language: String,
    },
    Tagged {
        name: String,
        value: String,
    },
    FlowEntered {
        flow: String,
        returns: bool,
    },
    FlowReturned {
        to: String,
    },
    TemplateFailed {
        template: String,
        error: String,
    },
    /// A template used variables that are not set; they rendered as empty text.
    TemplateUndefined {
        template: String,
        variables: Vec<String>,
    },
    /// A `branch` decided: the condition that held, or `None` for `else` (or nothing).
    BranchTaken {
        condition: Option<String>,
        to: String,
    },
    /// An `hours` step asked its schedule.
    HoursChecked {
        schedule: String,
        /// `open`, `closed` or `holiday 'NAME'`.
        state: String,
        /// The schedule's local time then, e.g. `2026-11-23 18:00:00 CET`.
        local_time: String,
    },
    HttpRequested {
        method: String,
        url: String,
    },
    /// `ok`, or why the request gave no usable answer.
    HttpFinished {
        outcome: String,
    },
    RecordingStarted {
        /// The file name stem given to the shell.
        name: String,
    },
    RecordingFinished {
        path: String,
        duration: Duration,
        reason: String,
        /// Recorded by a step marked `voicemail: true`.
        voicemail: bool,
    },
    TransferStarted {
        target: String,
    },
    TransferFinished {
        outcome: String,
    },
    /// The caller was put in an agent queue.
    QueueJoined {
        queue: String,
    },
    /// An agent answered the queued caller.
    QueueAnswered {
        agent: String,
    },
    /// The caller's time in the queue ended: `agent_hung_up`, `caller_hung_up`,
    /// `max_wait`, `full`, `no_agents`, `callback`, `failed` or `left with key K`.
    QueueFinished {
        outcome: String,
        /// The wait as the queue measured it (not known when the caller left with a key).
        waited: Option<Duration>,
    },
    /// The queue rang this agent for the caller.
    AgentRinging {
        agent: String,
    },
    /// The agent rang and did not take the call: `ring_timeout`, `busy`, `declined` or
    /// `failed` (unreachable, an error answer). The queue goes on to the next agent.
    AgentNoAnswer {
        agent: String,
        reason: String,
    },
    /// The conversation with the agent went on hold (`on`) or came back from it; `by` is
    /// the side whose re-INVITE did it (`agent` or `caller`).
    Hold {
        on: bool,
        by: String,
    },
    /// The wrap-up the queue gives the agent after this call (its `wrap_up`, the agent's
    /// own winning), told when the agent's time with the caller ends.
    WrapUp {
        agent: String,
        wrap_up: Duration,
    },
    /// This call is a queue's call back of the caller of `for_call` (the call that asked),
    /// for request `request`; `attempt` counts from 1.
    CallbackPlaced {
        queue: String,
        request: u64,
        for_call: String,
        attempt: u32,
    },
    /// A step marked `resolved:` was entered: the caller's need is met in self-service.
    Resolved {
        reason: String,
    },
    /// A survey question (`survey:` on a menu or collect) was answered with a score.
    SurveyAnswered {
        question: String,
        /// 1 to 5.
        score: u8,
    },
    CallerHungUp,
    /// The call reached the engine's maximum call length (`limits.max_call`) and the engine
    /// hung it up.
    MaxCallReached {
        after: Duration,
    },
    Ended {
        outcome: Outcome,
    },
}

/// Where a key went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyUse {
    /// Kept for the next menu or collect.
    Buffered,
    /// Chose this menu option (the step it leads to).
    Option {
        to: String,
    },
    Repeat,
    /// A global key, to this step.
    Global {
        to: String,
    },
    /// A global `back` key, to the menu or collect the caller was in before.
    Back {
        to: String,
    },
    Digit,
    Terminator,
    ConfirmYes,
    ConfirmNo,
    /// Not an option here: counted as a failure.
    Invalid,
    /// Nothing listens now (e.g. during the goodbye or a recording), or not a
    /// telephone key.
    Ignored,
    /// The type-ahead buffer was full.
    Dropped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    NoInput,
    Invalid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailReason {
    /// `retries` used up in a step without `on_failure`.
    RetriesExhausted { step: String, last: FailureKind },
    /// Too many steps in a row without the caller's part.
    RunawayLoop { step: String },
    /// Too many `goto ... return: true` inside each other.
    GotoTooDeep { step: String },
    /// Timeout after timeout: nobody seems to be on the line.
    NoCaller { step: String },
    /// A transfer that did not connect, in a step without `on_failure`.
    TransferFailed { step: String, outcome: String },
    /// An `hours` step whose schedule the flow set does not have (flows loaded without
    /// the server configuration).
    UnknownSchedule { step: String, schedule: String },
    /// The queue sent the caller on (`max_wait`, `full`, `no_agents`) in a step without
    /// `on_timeout`.
    QueueOverflow {
        step: String,
        queue: String,
        reason: String,
    },
    /// The caller could not be queued, in a step without `on_timeout`.
    QueueFailed {
        step: String,
        queue: String,
        why: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The caller hung up.
    CallerHungUp,
    /// The flow ended the call (`next: hangup` or a `hangup` step).
    FlowHungUp,
    /// The flow ran out of steps; the built-in goodbye was played.
    FlowEnded,
    /// A transfer connected; the call went on outside the flow.
    Transferred { target: String },
    /// An agent of the queue answered and hung up first; the flow had no `after` step.
    Answered { queue: String, agent: String },
    /// The caller asked the queue to call back.
    CallbackRequested { queue: String },
    /// Something went wrong; the built-in goodbye was played.
    Failed(FailReason),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::CallerHungUp => f.write_str("hangup by caller"),
            Outcome::FlowHungUp => f.write_str("hangup by flow"),
            Outcome::FlowEnded => f.write_str("flow ended"),
            Outcome::Transferred { target } => write!(f, "transferred to {target}"),
            Outcome::Answered { queue, agent } => {
                write!(f, "answered by {agent} in queue {queue}")
            }
            Outcome::CallbackRequested { queue } => {
                write!(f, "callback requested in queue {queue}")
            }
            Outcome::Failed(r) => match r {
                FailReason::RetriesExhausted { step, .. } => {
                    write!(f, "failure: retries exhausted in '{step}'")
                }
                FailReason::RunawayLoop { step } => {
                    write!(f, "failure: steps loop without the caller at '{step}'")
                }
                FailReason::GotoTooDeep { step } => {
                    write!(f, "failure: too many nested goto at '{step}'")
                }
                FailReason::NoCaller { step } => {
                    write!(f, "failure: no input from the caller, last at '{step}'")
                }
                FailReason::TransferFailed { step, outcome } => {
                    write!(
                        f,
                        "failure: the transfer in '{step}' did not connect ({outcome})"
                    )
                }
                FailReason::UnknownSchedule { step, schedule } => {
                    write!(f, "failure: no schedule '{schedule}' for '{step}'")
                }
                FailReason::QueueOverflow {
                    step,
                    queue,
                    reason,
                } => write!(
                    f,
                    "failure: queue '{queue}' sent the caller on ({reason}) in '{step}', which has no on_timeout"
                ),
                FailReason::QueueFailed { step, queue, why } => {
                    write!(
                        f,
                        "failure: could not queue in '{queue}' at '{step}': {why}"
                    )
                }
            },
        }
    }
}
