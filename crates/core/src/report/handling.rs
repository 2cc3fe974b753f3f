//! A call's time with the queues and the agents, read from its events: each wait in a
//! queue and how it ended, each agent's talk segment, each agent who rang and did not
//! answer, each callback asked for.
//!
//! Owns the pairing of `queue_joined` with `queue_left`, and of `agent_answered` with
//! `agent_ended`, including calls whose events stop early (a call still in progress, or
//! one the engine lost). It must not aggregate: queues and agents do.

use crate::record::{CallOutcome, HungUpBy};

use super::select::{Call, number, text};

/// How a wait in a queue ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitEnd {
    /// An agent answered.
    Answered,
    /// The caller hung up, or left with a key, while waiting.
    Abandoned,
    /// The queue sent the caller on: maximum wait, full, no agents.
    Overflowed,
    /// The caller left a callback request.
    Callback,
    /// The engine stopped, or in a cluster the caller's node died, while the caller
    /// waited (the record says `interrupted`): never the caller's doing.
    Lost,
    /// The queue could not serve the call, or the call ended for another reason.
    Failed,
    /// Still waiting: the call has not ended.
    Waiting,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    pub queue: String,
    pub end: WaitEnd,
    pub wait_ms: u64,
}

/// An agent's time with the caller, from answer to the end of talk (or a transfer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub queue: Option<String>,
    pub agent: String,
    pub answered_ms: i64,
    pub talk_ms: u64,
    /// Known only when the event carries it.
    pub hold_ms: Option<u64>,
    pub wrap_up_ms: Option<u64>,
}

impl Segment {
    /// Talk, hold and wrap-up, as far as the events know them.
    pub fn handle_ms(&self) -> u64 {
        self.talk_ms
            .saturating_add(self.hold_ms.unwrap_or(0))
            .saturating_add(self.wrap_up_ms.unwrap_or(0))
    }

    pub fn ended_ms(&self) -> i64 {
        self.answered_ms
            .saturating_add(i64::try_from(self.handle_ms()).unwrap_or(i64::MAX))
    }
}

/// An agent rang for the caller and did not take the call (`agent_no_answer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoAnswer {
    pub queue: Option<String>,
    pub agent: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Handling {
    pub waits: Vec<Wait>,
    pub segments: Vec<Segment>,
    pub no_answers: Vec<NoAnswer>,
    /// The queues the caller asked to be called back from.
    pub callbacks_requested: Vec<String>,
}

struct OpenWait<'a> {
    queue: &'a str,
    joined_ms: i64,
    answered_after_ms: Option<u64>,
}

struct OpenSegment<'a> {
    queue: Option<&'a str>,
    agent: &'a str,
    answered_ms: i64,
}

pub fn read(call: &Call<'_>) -> Handling {
    let mut out = Handling::default();
    let mut waits: Vec<OpenWait<'_>> = Vec::new();
    let mut segments: Vec<OpenSegment<'_>> = Vec::new();
    for e in &call.events {
        let queue = text(e, "queue");
        match e.kind.as_str() {
            "queue_joined" => {
                if let Some(queue) = queue {
                    waits.push(OpenWait {
                        queue,
                        joined_ms: e.at_ms,
                        answered_after_ms: None,
                    });
                }
            }
            "agent_answered" => {
                let waited = number(e, "wait_ms");
                if let Some(w) = queue.and_then(|q| last_open(&mut waits, q)) {
                    w.answered_after_ms = waited.or(Some(elapsed(w.joined_ms, e.at_ms)));
                }
                if let Some(agent) = text(e, "agent") {
                    segments.push(OpenSegment {
                        queue,
                        agent,
                        answered_ms: e.at_ms,
                    });
                }
            }
            "queue_left" => {
                let Some(queue) = queue else { continue };
                let open = waits.iter().rposition(|w| w.queue == queue);
                let open = open.map(|i| waits.remove(i));
                let answered = open.as_ref().and_then(|w| w.answered_after_ms);
                let end = match answered {
                    Some(_) => WaitEnd::Answered,
                    None => classify(text(e, "outcome").unwrap_or("")),
                };
                let wait_ms = number(e, "wait_ms")
                    .or(answered)
                    .or_else(|| open.as_ref().map(|w| elapsed(w.joined_ms, e.at_ms)))
                    .unwrap_or(0);
                out.waits.push(Wait {
                    queue: queue.to_owned(),
                    end,
                    wait_ms,
                });
            }
            "agent_ended" => {
                let Some(agent) = text(e, "agent") else {
                    continue;
                };
                let open = segments
                    .iter()
                    .rposition(|s| s.agent == agent && (queue.is_none() || s.queue == queue))
                    .map(|i| segments.remove(i));
                let talk_ms = number(e, "talk_ms");
                let (answered_ms, talk_ms) = match (open, talk_ms) {
                    (Some(s), Some(t)) => (s.answered_ms, t),
                    (Some(s), None) => (s.answered_ms, elapsed(s.answered_ms, e.at_ms)),
                    (None, Some(t)) => (e.at_ms.saturating_sub_unsigned(t), t),
                    (None, None) => (e.at_ms, 0),
                };
                out.segments.push(Segment {
                    queue: queue.map(str::to_owned),
                    agent: agent.to_owned(),
                    answered_ms,
                    talk_ms,
                    hold_ms: number(e, "hold_ms"),
                    wrap_up_ms: number(e, "wrap_up_ms"),
                });
            }
            "agent_no_answer" => {
                if let Some(agent) = text(e, "agent") {
                    out.no_answers.push(NoAnswer {
                        queue: queue.map(str::to_owned),
                        agent: agent.to_owned(),
                    });
                }
            }
            "callback_requested" => {
                if let Some(queue) = queue {
                    out.callbacks_requested.push(queue.to_owned());
                }
            }
            _ => {}
        }
    }
    // What the events left open ended with the call.
    let end_ms = call.end_ms();
    let record = call.record;
    for w in waits {
        let end = if w.answered_after_ms.is_some() {
            WaitEnd::Answered
        } else if record.outcome.is_none() {
            WaitEnd::Waiting
        } else if record.outcome == Some(CallOutcome::AbandonedInQueue)
            || record.hung_up_by == Some(HungUpBy::Caller)
        {
            WaitEnd::Abandoned
        } else if record.outcome == Some(CallOutcome::Callback) {
            WaitEnd::Callback
        } else if record.outcome == Some(CallOutcome::Interrupted) {
            WaitEnd::Lost
        } else {
            WaitEnd::Failed
        };
        out.waits.push(Wait {
            queue: w.queue.to_owned(),
            end,
            wait_ms: w
                .answered_after_ms
                .unwrap_or_else(|| elapsed(w.joined_ms, end_ms)),
        });
    }
    for s in segments {
        out.segments.push(Segment {
            queue: s.queue.map(str::to_owned),
            agent: s.agent.to_owned(),
            answered_ms: s.answered_ms,
            talk_ms: elapsed(s.answered_ms, end_ms),
            hold_ms: None,
            wrap_up_ms: None,
        });
    }
    // A callback asked for by leaving the queue counts even without its own event.
    for w in &out.waits {
        if w.end == WaitEnd::Callback && !out.callbacks_requested.contains(&w.queue) {
            out.callbacks_requested.push(w.queue.clone());
        }
    }
    out
}

fn last_open<'w, 'a>(waits: &'w mut [OpenWait<'a>], queue: &str) -> Option<&'w mut OpenWait<'a>> {
    waits.iter_mut().rev().find(|w| w.queue == queue)
}

/// The `queue_left` outcome as a wait's end. Leaving with a key counts as abandoning, as
/// the live queue figures count it.
fn classify(outcome: &str) -> WaitEnd {
    match outcome {
        "caller_hung_up" => WaitEnd::Abandoned,
        o if o == "key" || o.starts_with("key ") || o.starts_with("left with key") => {
            WaitEnd::Abandoned
        }
        o if o == "agent" || o.starts_with("agent_") => WaitEnd::Answered,
        "max_wait" | "full" | "no_agents" => WaitEnd::Overflowed,
        "callback" => WaitEnd::Callback,
        _ => WaitEnd::Failed,
    }
}

fn elapsed(from_ms: i64, to_ms: i64) -> u64 {
    u64::try_from(to_ms.saturating_sub(from_ms)).unwrap_or(0)
}
