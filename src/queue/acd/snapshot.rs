//! The live state for the admin API: queues with their waiting callers and figures,
//! agents with their states. Read-only; computed on demand from the `Acd`.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

use super::{Acd, Kind};
use crate::queue::agent::AgentState;
use crate::queue::ewt::estimate;
use crate::queue::stats::{QueueStats, StatsSnapshot};

impl Acd {
    /// Queues with their waiting callers, agents by state, and figures, as of `now`.
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        let queues = self
            .queues
            .iter()
            .map(|(name, q)| {
                let waiting: Vec<WaitingSnapshot> = q
                    .line
                    .iter()
                    .enumerate()
                    .map(|(i, e)| {
                        let waited = now.saturating_duration_since(e.joined);
                        let (call, number, state, ringing, callback) = match &e.kind {
                            Kind::Caller(w) => (
                                Some(w.call.clone()),
                                w.caller.clone(),
                                if w.offers.is_empty() {
                                    "waiting"
                                } else {
                                    "ringing"
                                },
                                w.offers.iter().map(|o| o.agent.clone()).collect(),
                                w.from_callback.map(|id| id.0),
                            ),
                            Kind::Callback(p) => (
                                None,
                                p.number.clone(),
                                if p.dialing {
                                    "calling_back"
                                } else {
                                    "callback"
                                },
                                Vec::new(),
                                Some(p.id.0),
                            ),
                        };
                        WaitingSnapshot {
                            position: i + 1,
                            call,
                            callback,
                            caller: number,
                            priority: e.priority,
                            waited_secs: waited.as_secs_f64(),
                            state,
                            ringing,
                        }
                    })
                    .collect();
                let longest = q
                    .line
                    .iter()
                    .map(|e| now.saturating_duration_since(e.joined))
                    .max();
                let agents = self
                    .agents
                    .values()
                    .filter_map(|a| {
                        a.queues.get(name).map(|penalty| QueueAgentSnapshot {
                            name: a.name.clone(),
                            state: a.state().name(),
                            penalty: *penalty,
                        })
                    })
                    .collect();
                QueueSnapshot {
                    name: name.clone(),
                    strategy: q.cfg.strategy.as_str(),
                    estimated_wait_secs: estimate(
                        q.handle_times.average(),
                        q.line.len().saturating_add(1),
                        self.serving(name),
                    )
                    .map(|d| d.as_secs_f64()),
                    stats: q.stats.snapshot(longest, waiting.len()),
                    waiting,
                    agents,
                }
            })
            .collect();
        let agents = self
            .agents
            .values()
            .map(|a| {
                let (reason, call, until) = match a.state() {
                    AgentState::Paused { reason } => (Some(reason.clone()), None, None),
                    AgentState::Ringing { call } | AgentState::OnCall { call } => {
                        (None, Some(call.clone()), None)
                    }
                    AgentState::WrapUp { until } => (
                        None,
                        None,
                        Some(until.saturating_duration_since(now).as_secs_f64()),
                    ),
                    _ => (None, None, None),
                };
                AgentSnapshot {
                    name: a.name.clone(),
                    state: a.state().name(),
                    reason,
                    since_secs: now.saturating_duration_since(a.since()).as_secs_f64(),
                    call,
                    wrap_up_left_secs: until,
                    contact: a.contact(now).map(str::to_owned),
                    queues: a.queues.clone(),
                    answered: a.answered(),
                    misses: a.misses(),
                }
            })
            .collect();
        Snapshot { queues, agents }
    }

    /// The figures of one queue.
    pub fn stats(&self, queue: &str) -> Option<&QueueStats> {
        self.queues.get(queue).map(|q| &q.stats)
    }
}

/// The live state for the admin API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    pub queues: Vec<QueueSnapshot>,
    pub agents: Vec<AgentSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueSnapshot {
    pub name: String,
    pub strategy: &'static str,
    /// What a caller joining now could expect.
    pub estimated_wait_secs: Option<f64>,
    pub waiting: Vec<WaitingSnapshot>,
    pub agents: Vec<QueueAgentSnapshot>,
    pub stats: StatsSnapshot,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaitingSnapshot {
    pub position: usize,
    /// The call id; none for a callback request (the caller is not on the line).
    pub call: Option<String>,
    pub callback: Option<u64>,
    pub caller: String,
    pub priority: i32,
    pub waited_secs: f64,
    /// `waiting`, `ringing`, `callback` or `calling_back`.
    pub state: &'static str,
    /// The agents being rung for this caller.
    pub ringing: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueAgentSnapshot {
    pub name: String,
    pub state: &'static str,
    pub penalty: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentSnapshot {
    pub name: String,
    /// `logged_out`, `available`, `ringing`, `on_call`, `wrap_up` or `paused`.
    pub state: &'static str,
    /// Why the agent is paused.
    pub reason: Option<String>,
    /// How long the agent has been in this state.
    pub since_secs: f64,
    pub call: Option<String>,
    pub wrap_up_left_secs: Option<f64>,
    pub contact: Option<String>,
    pub queues: BTreeMap<String, u32>,
    pub answered: u64,
    pub misses: u32,
}
