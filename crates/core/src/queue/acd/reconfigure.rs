//! An edited `queues:` / `agents:` taken while calls wait: queues and agents added,
//! changed or removed without dropping a caller, an agent's state or the figures. A change
//! that would lose someone is refused as a whole (the running configuration stays): a
//! queue removed while callers or callback requests are in its line, callbacks switched
//! off while requests wait, an agent removed while it rings, talks or wraps up.

use std::time::Instant;

use super::{Acd, Kind, Place, Queue};
use crate::queue::agent::{Agent, AgentState};
use crate::queue::config::{AgentsConfig, QueuesConfig};

/// Why an edited configuration cannot be taken now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "queues.{queue}: cannot remove the queue while {waiting} caller(s) or callback request(s) are in its line or talking; remove it once it is empty"
    )]
    QueueInUse { queue: String, waiting: usize },
    #[error(
        "queues.{queue}.callback: cannot switch callbacks off while {requests} request(s) wait to be called back"
    )]
    CallbacksWaiting { queue: String, requests: usize },
    #[error(
        "agents.{agent}: cannot remove the agent while it is {state}; remove it once it is free"
    )]
    AgentBusy { agent: String, state: &'static str },
}

impl Acd {
    /// Takes the edited sections (already checked with [`crate::queue::config::check`]).
    /// Returns what changed, one line each, or the first reason it cannot be taken now,
    /// having changed nothing.
    pub fn reconfigure(
        &mut self,
        now: Instant,
        queues: &QueuesConfig,
        agents: &AgentsConfig,
    ) -> Result<Vec<String>, Refusal> {
        self.refusal(queues, agents).map_or(Ok(()), Err)?;
        let mut changes = Vec::new();
        self.queues.retain(|name, _| {
            let keep = queues.contains_key(name);
            if !keep {
                changes.push(format!("queue {name} removed"));
            }
            keep
        });
        for (name, cfg) in queues {
            match self.queues.get_mut(name) {
                Some(q) if q.cfg == *cfg => {}
                Some(q) => {
                    q.cfg = cfg.clone();
                    changes.push(format!("queue {name} changed"));
                }
                None => {
                    self.queues.insert(name.clone(), Queue::new(cfg));
                    changes.push(format!("queue {name} added"));
                }
            }
        }
        self.agents.retain(|name, _| {
            let keep = agents.contains_key(name);
            if !keep {
                changes.push(format!("agent {name} removed"));
            }
            keep
        });
        for (name, cfg) in agents {
            match self.agents.get_mut(name) {
                Some(a) => {
                    let before = (a.queues.clone(), a.skills.clone(), a.fixed_uri.clone());
                    let wrap = a.wrap_up;
                    a.reconfigure(cfg, now);
                    if before != (a.queues.clone(), a.skills.clone(), a.fixed_uri.clone())
                        || wrap != a.wrap_up
                    {
                        changes.push(format!("agent {name} changed"));
                    }
                }
                None => {
                    self.agents.insert(name.clone(), Agent::new(name, cfg, now));
                    changes.push(format!("agent {name} added"));
                }
            }
        }
        // New agents may take waiting callers, changed queues may offer differently.
        self.dispatch(now);
        Ok(changes)
    }

    fn refusal(&self, queues: &QueuesConfig, agents: &AgentsConfig) -> Option<Refusal> {
        for (name, q) in &self.queues {
            let talking = self
                .calls
                .values()
                .filter(|p| matches!(p, Place::Bridged { queue, .. } if queue == name))
                .count();
            let Some(new) = queues.get(name) else {
                let waiting = q.line.len() + talking;
                if waiting > 0 {
                    return Some(Refusal::QueueInUse {
                        queue: name.clone(),
                        waiting,
                    });
                }
                continue;
            };
            let requests = q
                .line
                .iter()
                .filter(|e| matches!(e.kind, Kind::Callback(_)))
                .count();
            if new.callback.is_none() && requests > 0 {
                return Some(Refusal::CallbacksWaiting {
                    queue: name.clone(),
                    requests,
                });
            }
        }
        for (name, a) in &self.agents {
            let busy = matches!(
                a.state(),
                AgentState::Ringing { .. } | AgentState::OnCall { .. } | AgentState::WrapUp { .. }
            );
            if busy && !agents.contains_key(name) {
                return Some(Refusal::AgentBusy {
                    agent: name.clone(),
                    state: a.state().name(),
                });
            }
        }
        None
    }
}
