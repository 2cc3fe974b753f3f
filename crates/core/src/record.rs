//! A call's record as the records store keeps it: one row per call and its append-only
//! events, in plain data.
//!
//! Owns the vocabulary (the outcomes a report counts, who hung up, what an event row
//! holds). It must not know how records are built from a call's story, how they are
//! written, or where: those belong to the builder and the store. Times are wall-clock
//! milliseconds since the Unix epoch, given by the engine (this crate reads no clock).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub mod build; // a call's record and events from its story and the engine's facts

/// How a call ended, as a contact centre counts it. Every call has exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    /// The flow reached a step the admin marked as resolving the caller's need.
    SelfService,
    /// An agent answered.
    Agent,
    /// The caller hung up in the menu (never counted as self-service).
    AbandonedInMenu,
    /// The caller hung up while waiting in a queue.
    AbandonedInQueue,
    /// The caller left a callback request.
    Callback,
    /// The caller left a message.
    Voicemail,
    /// A transfer connected the caller elsewhere.
    Transferred,
    /// An engine or network fault ended the call.
    Failed,
    /// The engine stopped while the call was in progress.
    Interrupted,
}

impl CallOutcome {
    pub const ALL: [CallOutcome; 9] = [
        CallOutcome::SelfService,
        CallOutcome::Agent,
        CallOutcome::AbandonedInMenu,
        CallOutcome::AbandonedInQueue,
        CallOutcome::Callback,
        CallOutcome::Voicemail,
        CallOutcome::Transferred,
        CallOutcome::Failed,
        CallOutcome::Interrupted,
    ];

    /// The name stores, reports and metrics use.
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::SelfService => "self_service",
            CallOutcome::Agent => "agent",
            CallOutcome::AbandonedInMenu => "abandoned_in_menu",
            CallOutcome::AbandonedInQueue => "abandoned_in_queue",
            CallOutcome::Callback => "callback",
            CallOutcome::Voicemail => "voicemail",
            CallOutcome::Transferred => "transferred",
            CallOutcome::Failed => "failed",
            CallOutcome::Interrupted => "interrupted",
        }
    }
}

impl fmt::Display for CallOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown call outcome '{0}'")]
pub struct UnknownOutcome(pub String);

impl FromStr for CallOutcome {
    type Err = UnknownOutcome;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CallOutcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| UnknownOutcome(s.to_string()))
    }
}

/// Who ended the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HungUpBy {
    Caller,
    Agent,
    /// The flow, a limit or a fault: the engine sent the BYE.
    Engine,
}

impl HungUpBy {
    pub fn as_str(self) -> &'static str {
        match self {
            HungUpBy::Caller => "caller",
            HungUpBy::Agent => "agent",
            HungUpBy::Engine => "engine",
        }
    }
}

/// A survey question's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurveyAnswer {
    /// The step that asked.
    pub question: String,
    /// 1 to 5.
    pub score: u8,
}

/// A message or recording the call left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingRef {
    pub path: String,
    pub duration_ms: u64,
}

/// Who placed the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CallKind {
    /// A caller dialled the hotline.
    #[default]
    Inbound,
    /// The hotline called a caller back for a queue (`dialed` is the caller's number).
    Callback,
}

/// One call, as one row. Written when the call starts (with `ended_ms` and `outcome`
/// empty) and again, whole, when it ends; a row still open at the next start was
/// interrupted.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CallRecord {
    pub call_id: String,
    pub kind: CallKind,
    /// The caller's number (the From user part).
    pub caller: String,
    /// The number dialled (the Request-URI user part).
    pub dialed: String,
    pub started_ms: i64,
    pub answered_ms: Option<i64>,
    pub ended_ms: Option<i64>,
    /// The flow the call started in and the version of the flows that served it.
    pub flow: String,
    pub flow_version: String,
    /// The language the caller ended in.
    pub language: String,
    pub outcome: Option<CallOutcome>,
    pub hung_up_by: Option<HungUpBy>,
    /// The step last entered, as "flow/step" (where a caller gave up).
    pub last_step: Option<String>,
    /// The reason for calling (the last `reason` tag the call reached).
    pub reason: Option<String>,
    /// Every tag the flow set, last value per name.
    pub tags: Vec<(String, String)>,
    /// The queue the call waited in last, the agent who answered, and the times.
    pub queue: Option<String>,
    pub agent: Option<String>,
    pub wait_ms: Option<u64>,
    /// Time talking to agents, hold left out (the events hold the hold and wrap-up).
    pub talk_ms: Option<u64>,
    pub survey: Vec<SurveyAnswer>,
    pub recordings: Vec<RecordingRef>,
}

/// One thing that happened in a call, appended in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallEvent {
    pub call_id: String,
    /// 0, 1, 2... within the call: with `call_id`, the event's key (idempotent writes).
    pub seq: u32,
    pub at_ms: i64,
    /// What happened, one of the names below, with `detail`'s fields:
    ///
    /// | kind | detail |
    /// |---|---|
    /// | `step` | `flow`, `step` |
    /// | `key` | `key`, `went` (`option`, `digit`, `invalid`, `buffered`, `global`, ...), `to` (where an option or global key led), `typed_ahead` (true when a buffered key was used) |
    /// | `no_input` | `step`, `failures` |
    /// | `invalid` | `step`, `input`, `failures` |
    /// | `http` | `method`, `url`, `outcome` (`ok`, why not, or `unfinished` when the call ended first), `latency_ms` |
    /// | `tag` | `name`, `value` |
    /// | `language` | `language` |
    /// | `resolved` | `reason` (the step's `resolved:` mark) |
    /// | `queue_joined` | `queue` |
    /// | `queue_left` | `queue`, `outcome` (`agent`, `caller_hung_up`, `max_wait`, `full`, `no_agents`, `callback`, `failed`, `key` with `key`), `wait_ms` |
    /// | `agent_ringing` | `queue`, `agent` (the queue rang this agent for the caller) |
    /// | `agent_no_answer` | `queue`, `agent`, `reason` (`ring_timeout`, `busy`, `declined`, `no_answer`, `failed`), `ring_ms` |
    /// | `agent_answered` | `queue`, `agent`, `wait_ms`, `ring_ms` (when the ring was seen) |
    /// | `hold` | `queue`, `agent`, `by` (`agent` or `caller`: whose re-INVITE held the conversation) |
    /// | `hold_ended` | `queue`, `agent`, `by`, `hold_ms` (when neither side holds any more: that hold's length) |
    /// | `agent_ended` | `queue`, `agent`, `talk_ms` (hold left out), `hold_ms`, `wrap_up_ms` (the wrap-up the queue gave the agent, when known), `by` (`agent`, `caller` or `transfer`) |
    /// | `transfer` | `target`, `outcome` (`started`, then `connected`, `busy`, `no answer` or `failed: ...`) |
    /// | `callback_requested` | `queue` |
    /// | `callback_placed` | `queue`, `request`, `for_call` (the call that asked), `attempt` (from 1): the first event of a call back |
    /// | `recording` | `path`, `duration_ms`, `voicemail` |
    /// | `survey` | `question`, `score` |
    /// | `ended` | `outcome`, `hung_up_by`, `fault` (when an engine or network fault ended the call) |
    pub kind: String,
    /// The event's fields as a JSON object.
    pub detail: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_round_trip_through_their_names() {
        for o in CallOutcome::ALL {
            assert_eq!(o.as_str().parse::<CallOutcome>(), Ok(o));
            assert_eq!(
                serde_json::to_string(&o).unwrap(),
                format!("\"{}\"", o.as_str())
            );
        }
        assert!("hung_up".parse::<CallOutcome>().is_err());
    }
}
