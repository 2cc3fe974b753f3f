//! What goes in and out of the ACD: inputs from the shell, actions for it, errors.
//!
//! Owns the vocabulary only; the `Acd` gives it meaning. See `acd`'s module comment for
//! which action the shell answers with which input.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::queue::agent::AgentCommand;
use crate::queue::store::{CallbackId, StoreError};

/// Why a caller left the line for the queue step's `on_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverflowReason {
    /// Waited `max_wait`.
    MaxWait,
    /// The line held `max_callers` already.
    Full,
    /// No agent of the queue is logged in and the queue says `when_empty: leave`.
    NoAgents,
}

impl OverflowReason {
    pub fn as_str(self) -> &'static str {
        match self {
            OverflowReason::MaxWait => "max_wait",
            OverflowReason::Full => "full",
            OverflowReason::NoAgents => "no_agents",
        }
    }
}

/// Why a caller is not offered a callback, or its request is not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackRefusal {
    /// The number matches no `callback.allowed` pattern, or a `denied` one.
    NotAllowed,
    /// A request for the same number waits already (in any queue).
    AlreadyPending,
    /// The queue took `callback.daily_cap` requests in the last 24 hours.
    DailyCap,
}

impl CallbackRefusal {
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackRefusal::NotAllowed => "not_allowed",
            CallbackRefusal::AlreadyPending => "already_pending",
            CallbackRefusal::DailyCap => "daily_cap",
        }
    }
}

/// Why an agent's leg did not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferFailure {
    Busy,
    Declined,
    /// Unreachable, a transport error, a SIP error response.
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Input {
    /// A caller enters a queue. `caller` is the number to call back.
    Join {
        call: String,
        queue: String,
        priority: i32,
        skills: Vec<String>,
        caller: String,
    },
    /// The caller hung up or left with a key: out of the line at once (abandoned), or,
    /// when talking to an agent, the call is over (the agent goes to wrap-up).
    CallerLeft {
        call: String,
    },
    /// The agent's leg ended (hang-up or transfer): the call is over, the agent wraps up.
    AgentLeft {
        call: String,
    },
    /// The node that held the caller's leg died. A waiting caller leaves the line without
    /// counting as abandoned (it counts as `lost`, outside the service level); agents
    /// being rung for it are released without a miss. A caller that was called back
    /// leaves and its request goes back in line as a failed attempt. When talking to an
    /// agent, the call is over as with `AgentLeft`.
    CallerLost {
        call: String,
    },
    /// The caller pressed the callback key: it leaves the line, its place is kept, and it
    /// will be called at `number` (default: the number it joined with). From then on the
    /// call is no longer the ACD's: its hang-up is not reported (it would be an error).
    CallbackRequested {
        call: String,
        number: Option<String>,
    },
    /// The call placed for `PlaceCallback` was answered; `call` is its id from now on.
    CallbackAnswered {
        id: CallbackId,
        call: String,
    },
    /// The call placed for `PlaceCallback` was not answered.
    CallbackFailed {
        id: CallbackId,
    },
    /// A REGISTER of the agent: reachable at `contact` for `expires` (zero unregisters).
    /// A new contact replaces the old one.
    AgentRegistered {
        agent: String,
        contact: String,
        expires: Duration,
    },
    AgentUnregistered {
        agent: String,
    },
    /// From the admin API or a feature code.
    Agent {
        agent: String,
        command: AgentCommand,
    },
    OfferAnswered {
        call: String,
        agent: String,
    },
    OfferFailed {
        call: String,
        agent: String,
        reason: OfferFailure,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    /// Ring `agent` at `contact` for `call`. `ring_all` gives several at once.
    Offer {
        call: String,
        agent: String,
        contact: String,
        queue: String,
    },
    /// Stop ringing: another agent answered, the caller left, or the ring timed out
    /// (`missed`: the agent did not answer in the queue's `ring_timeout`).
    CancelOffer {
        call: String,
        agent: String,
        missed: bool,
    },
    /// Bridge the caller and the agent now, interrupting hold music or an announcement.
    /// `wrap_up` is the wrap-up the agent will have after this call (the agent's own, or
    /// the queue's), which the queue counts in its handle time.
    Connect {
        call: String,
        agent: String,
        queue: String,
        waited: Duration,
        wrap_up: Duration,
    },
    /// Tell the caller (over the hold music): `prompt`, then its position, then the
    /// estimated wait. Each part is given only when it is to be said.
    Announce {
        call: String,
        queue: String,
        prompt: Option<String>,
        position: Option<usize>,
        ewt: Option<Duration>,
    },
    /// The estimated wait is long: tell the caller it may press `key` to be called back.
    OfferCallback { call: String, key: char },
    /// A callback was not offered to the caller, or its request not taken: the number
    /// is not to be called (for the log and the metrics; the caller just waits on).
    CallbackRefused {
        call: String,
        queue: String,
        number: String,
        reason: CallbackRefusal,
    },
    /// A callback request reached the front and an agent is free: call the caller.
    /// `for_call` is the call that asked; `attempt` counts this call from 1.
    PlaceCallback {
        id: CallbackId,
        number: String,
        queue: String,
        for_call: String,
        attempt: u32,
    },
    /// The callback attempts are used up; the request is dropped.
    CallbackGivenUp {
        id: CallbackId,
        number: String,
        queue: String,
    },
    /// The caller leaves the line for the queue step's `on_timeout`.
    Overflow {
        call: String,
        queue: String,
        reason: OverflowReason,
        waited: Duration,
    },
    /// The caller left the line before an agent answered, after waiting this long.
    Abandoned {
        call: String,
        queue: String,
        waited: Duration,
    },
    /// The caller's node died while it waited (`Input::CallerLost`): out of the line,
    /// not abandoned, after waiting this long.
    Lost {
        call: String,
        queue: String,
        waited: Duration,
    },
    AgentStateChanged {
        agent: String,
        state: String,
        reason: Option<String>,
    },
    /// The callback store failed; the entry is still served from memory.
    StoreFailed { message: String },
}

#[derive(Debug, thiserror::Error)]
pub enum AcdError {
    #[error("no queue named '{queue}' (queues: {known})")]
    UnknownQueue { queue: String, known: String },
    #[error("no agent named '{agent}'")]
    UnknownAgent { agent: String },
    #[error("call '{call}' is not in a queue or with an agent")]
    UnknownCall { call: String },
    #[error("call '{call}' is in a queue already")]
    AlreadyQueued { call: String },
    #[error("call '{call}' is not being offered to agent '{agent}'")]
    NotOffered { call: String, agent: String },
    #[error("agent '{agent}' is logged out")]
    NotLoggedIn { agent: String },
    #[error("agent '{agent}' cannot be reached: it has no registration and no fixed uri")]
    Unreachable { agent: String },
    #[error("queue '{queue}' offers no callback")]
    NoCallback { queue: String },
    #[error("no callback for call '{call}': {}", reason.as_str())]
    CallbackRefused {
        call: String,
        reason: CallbackRefusal,
    },
    #[error("call '{call}' has no number to call back")]
    NoNumber { call: String },
    #[error("no callback request {}", id.0)]
    UnknownCallback { id: CallbackId },
    #[error(transparent)]
    Store(#[from] StoreError),
}
