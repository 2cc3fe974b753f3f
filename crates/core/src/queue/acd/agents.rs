//! The agents' side of the ACD: commands from the admin API and feature codes,
//! registrations and their expiry, and what a logout means for `when_empty: leave` queues.

use std::time::Instant;

use super::{Acd, AcdError, Action, Kind, OverflowReason, Place};
use crate::queue::agent::{AfterCall, Agent, AgentCommand, AgentState};
use crate::queue::config::WhenEmpty;

impl Acd {
    pub(super) fn agent_mut(&mut self, agent: &str) -> Result<&mut Agent, AcdError> {
        self.agents
            .get_mut(agent)
            .ok_or_else(|| AcdError::UnknownAgent {
                agent: agent.to_owned(),
            })
    }

    pub(super) fn set_agent(&mut self, now: Instant, agent: &str, state: AgentState) {
        let Some(a) = self.agents.get_mut(agent) else {
            return;
        };
        let reason = match &state {
            AgentState::Paused { reason } => Some(reason.clone()),
            _ => None,
        };
        let name = state.name();
        if a.set_state(now, state) {
            self.actions.push_back(Action::AgentStateChanged {
                agent: agent.to_owned(),
                state: name.to_owned(),
                reason,
            });
        }
    }

    /// Agents of the queue logged in (paused ones included).
    pub(super) fn logged_in(&self, queue: &str) -> usize {
        self.agents
            .values()
            .filter(|a| a.queues.contains_key(queue) && *a.state() != AgentState::LoggedOut)
            .count()
    }

    /// Agents of the queue logged in and not paused.
    pub(super) fn serving(&self, queue: &str) -> usize {
        self.agents
            .values()
            .filter(|a| a.queues.contains_key(queue) && a.state().serving())
            .count()
    }

    /// Stops the ringing of `agent`, if it rings, without counting a miss.
    pub(super) fn stop_ringing(&mut self, now: Instant, agent: &str) {
        let Some(AgentState::Ringing { call }) = self.agents.get(agent).map(|a| a.state().clone())
        else {
            return;
        };
        if let Some(Place::Waiting { queue }) = self.calls.get(&call).cloned()
            && self.remove_offer(&queue, &call, agent)
        {
            self.actions.push_back(Action::CancelOffer {
                call: call.clone(),
                agent: agent.to_owned(),
                missed: false,
            });
        }
        self.release(now, agent, &call);
    }

    pub(super) fn command(
        &mut self,
        now: Instant,
        agent: &str,
        command: AgentCommand,
    ) -> Result<(), AcdError> {
        let a = self.agent_mut(agent)?;
        let state = a.state().clone();
        let not_logged_in = || AcdError::NotLoggedIn {
            agent: agent.to_owned(),
        };
        match command {
            AgentCommand::Login => {
                a.logged_out_on_purpose = false;
                if a.after_call == Some(AfterCall::Logout) {
                    a.after_call = None;
                }
                if state == AgentState::LoggedOut {
                    if a.contact(now).is_none() {
                        return Err(AcdError::Unreachable {
                            agent: agent.to_owned(),
                        });
                    }
                    self.set_agent(now, agent, AgentState::Available);
                }
            }
            AgentCommand::Logout => {
                a.logged_out_on_purpose = true;
                match state {
                    AgentState::OnCall { .. } => a.after_call = Some(AfterCall::Logout),
                    AgentState::LoggedOut => {}
                    _ => {
                        self.stop_ringing(now, agent);
                        self.set_agent(now, agent, AgentState::LoggedOut);
                        self.leave_empty_queues(now);
                    }
                }
            }
            AgentCommand::Pause { reason } => match state {
                AgentState::LoggedOut => return Err(not_logged_in()),
                AgentState::OnCall { .. } => a.after_call = Some(AfterCall::Pause(reason)),
                _ => {
                    self.stop_ringing(now, agent);
                    self.set_agent(now, agent, AgentState::Paused { reason });
                }
            },
            AgentCommand::Resume => match state {
                AgentState::LoggedOut => return Err(not_logged_in()),
                AgentState::OnCall { .. } => {
                    if matches!(a.after_call, Some(AfterCall::Pause(_))) {
                        a.after_call = None;
                    }
                }
                AgentState::Paused { .. } | AgentState::WrapUp { .. } => {
                    a.misses = 0;
                    self.set_agent(now, agent, AgentState::Available);
                }
                AgentState::Available | AgentState::Ringing { .. } => {}
            },
        }
        Ok(())
    }

    pub(super) fn unregister(&mut self, now: Instant, agent: &str) -> Result<(), AcdError> {
        self.agent_mut(agent)?.unregister();
        self.lost_contact(now, agent);
        Ok(())
    }

    /// The agent's registration ended: unless it has a fixed address it is logged out
    /// (at once, or when its call ends).
    pub(super) fn lost_contact(&mut self, now: Instant, agent: &str) {
        let Some(a) = self.agents.get_mut(agent) else {
            return;
        };
        if a.contact(now).is_some() {
            return;
        }
        match a.state() {
            AgentState::LoggedOut => {}
            AgentState::OnCall { .. } => a.after_call = Some(AfterCall::Logout),
            _ => {
                self.stop_ringing(now, agent);
                self.set_agent(now, agent, AgentState::LoggedOut);
                self.leave_empty_queues(now);
            }
        }
    }

    /// Queues with `when_empty: leave` whose last agent logged out send their waiting
    /// callers on. Callback requests keep their place.
    pub(super) fn leave_empty_queues(&mut self, now: Instant) {
        let empty: Vec<String> = self
            .queues
            .iter()
            .filter(|(_, q)| q.cfg.when_empty == WhenEmpty::Leave)
            .map(|(n, _)| n.clone())
            .filter(|n| self.logged_in(n) == 0)
            .collect();
        for queue in empty {
            let calls: Vec<String> = self.queues.get(&queue).map_or_else(Vec::new, |q| {
                q.line
                    .iter()
                    .filter_map(|e| match &e.kind {
                        Kind::Caller(w) if w.from_callback.is_none() => Some(w.call.clone()),
                        _ => None,
                    })
                    .collect()
            });
            for call in calls {
                self.overflow(now, &queue, &call, OverflowReason::NoAgents);
            }
        }
    }
}
