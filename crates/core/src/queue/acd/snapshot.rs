//! The live state for the admin API: queues with their waiting callers and figures,
//! agents with their states. Read-only; computed on demand from the `Acd`.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{Acd, Kind};
use crate::queue::agent::{AfterCall, AgentState};
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
                                }
                                .to_owned(),
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
                                }
                                .to_owned(),
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
                            state: a.state().name().to_owned(),
                            penalty: *penalty,
                        })
                    })
                    .collect();
                QueueSnapshot {
                    name: name.clone(),
                    strategy: q.cfg.strategy.as_str().to_owned(),
                    service_level_secs: q.cfg.service_level.as_secs_f64(),
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
                    state: a.state().name().to_owned(),
                    reason,
                    since_secs: now.saturating_duration_since(a.since()).as_secs_f64(),
                    call,
                    wrap_up_left_secs: until,
                    contact: a.contact(now).map(str::to_owned),
                    after_call: a.after_call.as_ref().map(|c| match c {
                        AfterCall::Pause(_) => "pause".to_owned(),
                        AfterCall::Logout => "logout".to_owned(),
                    }),
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Snapshot {
    pub queues: Vec<QueueSnapshot>,
    pub agents: Vec<AgentSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct QueueSnapshot {
    pub name: String,
    pub strategy: String,
    /// The service level's threshold: `stats.service_level_percent` counts the callers
    /// answered within this many seconds (the queue's `service_level`).
    pub service_level_secs: f64,
    /// What a caller joining now could expect.
    pub estimated_wait_secs: Option<f64>,
    pub waiting: Vec<WaitingSnapshot>,
    pub agents: Vec<QueueAgentSnapshot>,
    pub stats: StatsSnapshot,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WaitingSnapshot {
    pub position: usize,
    /// The call id; none for a callback request (the caller is not on the line).
    pub call: Option<String>,
    pub callback: Option<u64>,
    pub caller: String,
    pub priority: i32,
    pub waited_secs: f64,
    /// `waiting`, `ringing`, `callback` or `calling_back`.
    pub state: String,
    /// The agents being rung for this caller.
    pub ringing: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct QueueAgentSnapshot {
    pub name: String,
    pub state: String,
    pub penalty: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AgentSnapshot {
    pub name: String,
    /// `logged_out`, `available`, `ringing`, `on_call`, `wrap_up` or `paused`.
    pub state: String,
    /// Why the agent is paused.
    pub reason: Option<String>,
    /// How long the agent has been in this state.
    pub since_secs: f64,
    pub call: Option<String>,
    pub wrap_up_left_secs: Option<f64>,
    pub contact: Option<String>,
    /// What the agent asked for during its call, done when the call ends: `pause` or
    /// `logout`.
    pub after_call: Option<String>,
    pub queues: BTreeMap<String, u32>,
    pub answered: u64,
    pub misses: u32,
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use crate::queue::acd::{Acd, Input};
    use crate::queue::agent::AgentCommand;
    use crate::queue::config::{AgentsConfig, QueuesConfig};
    use crate::queue::store::MemoryStore;

    fn acd(now: Instant) -> Acd {
        #[derive(serde::Deserialize)]
        struct Both {
            queues: QueuesConfig,
            agents: AgentsConfig,
        }
        let b: Both = serde_saphyr::from_str(
            "queues: { support: { service_level: 30s } }\n\
             agents: { alice: { uri: \"sip:alice@192.0.2.1\", queues: { support: 0 } } }\n",
        )
        .expect("config");
        Acd::new(&b.queues, &b.agents, Box::new(MemoryStore::new()), now).expect("acd")
    }

    /// Every figure the admin API promises is in the JSON, with the configured threshold.
    #[test]
    fn figures_threshold_and_asked_after_call() {
        let t0 = Instant::now();
        let mut acd = acd(t0);
        let snap = serde_json::to_value(acd.snapshot(t0)).expect("json");
        let q = &snap["queues"][0];
        assert_eq!(q["service_level_secs"], 30.0);
        for figure in [
            "offered",
            "answered",
            "abandoned",
            "service_level_percent",
            "average_speed_of_answer_secs",
            "average_handling_time_secs",
            "longest_wait_secs",
        ] {
            assert!(q["stats"].get(figure).is_some(), "{figure} missing: {q}");
        }
        assert_eq!(snap["agents"][0]["after_call"], serde_json::Value::Null);

        // Alice takes a call, then asks for a pause: it waits for the call's end.
        acd.handle(
            t0,
            Input::Join {
                call: "c1".into(),
                queue: "support".into(),
                priority: 0,
                skills: vec![],
                caller: "+491".into(),
            },
        )
        .expect("join");
        let t1 = t0 + Duration::from_secs(4);
        acd.handle(
            t1,
            Input::OfferAnswered {
                call: "c1".into(),
                agent: "alice".into(),
            },
        )
        .expect("answered");
        acd.handle(
            t1,
            Input::Agent {
                agent: "alice".into(),
                command: AgentCommand::Pause {
                    reason: "lunch".into(),
                },
            },
        )
        .expect("pause");
        let snap = acd.snapshot(t1);
        let alice = &snap.agents[0];
        assert_eq!(
            (alice.state.as_str(), alice.after_call.as_deref()),
            ("on_call", Some("pause"))
        );
        let stats = &snap.queues[0].stats;
        assert_eq!((stats.offered, stats.answered), (1, 1));
        assert_eq!(stats.service_level_percent, Some(100.0));
        assert_eq!(stats.average_speed_of_answer_secs, Some(4.0));
    }
}
