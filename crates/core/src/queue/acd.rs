//! The ACD: every queue's line and every agent, driven by inputs and the time, answering
//! with actions for the shell.
//!
//! Owns who waits where and in which order (priority, then arrival), who is offered to
//! whom and for how long, the miss rule, wrap-up across all of an agent's queues,
//! announcements (position only when it changed, never to a caller being offered),
//! callbacks that keep their place, overflow, and the live figures. It is a pure state
//! machine in the style of quinn-proto: [`Acd::handle`] and [`Acd::handle_timeout`] take
//! `now`, [`Acd::poll_action`] gives what to do, [`Acd::poll_timeout`] when to call again.
//! It never reads a clock, sleeps or touches a socket; its only IO is the
//! [`CallbackStore`] it is given.
//!
//! # The contract with the shell
//!
//! | action | the shell does | and reports |
//! | --- | --- | --- |
//! | `Offer` | rings `contact` (a second call leg) for the caller `call` | `OfferAnswered` or `OfferFailed` |
//! | `CancelOffer` | stops ringing that agent (CANCEL) | nothing |
//! | `Connect` | stops hold music or an announcement at once and bridges caller and agent | `CallerLeft` / `AgentLeft` when a side hangs up |
//! | `Announce` | plays `prompt`, then position and wait with `say:` items, over the hold music | nothing |
//! | `OfferCallback` | plays "press KEY to be called back" | `CallbackRequested` when the key comes |
//! | `PlaceCallback` | calls `number` | `CallbackAnswered` (with the new call's id) or `CallbackFailed` |
//! | `Overflow` | takes the caller out of the queue to the step's `on_timeout` | nothing |
//! | `Abandoned`, `Lost`, `CallbackGivenUp`, `AgentStateChanged`, `StoreFailed` | records and logs | nothing |
//!
//! `Lost` answers `CallerLost` (the node holding the caller's leg died): the caller left
//! the line without hanging up, so it is not counted abandoned.
//!
//! For a cluster, [`Acd::save`] gives the whole changing state as data and
//! [`Acd::restore`] rebuilds the ACD from it on another node (see `persist`).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::agent::{AfterCall, Agent, AgentState, MISSED_CALLS_REASON};
use super::config::{
    AgentsConfig, AnnounceItem, DEFAULT_EWT_WINDOW, QueueConfig, QueuesConfig, WhenEmpty,
};
use super::ewt::{HandleTimes, estimate};
use super::stats::QueueStats;
use super::store::{CallbackId, CallbackStore};
use super::strategy::{Candidate, Strategy, choose};

mod agents; // commands, registrations, when_empty: leave
mod callbacks; // callback requests keeping their place
mod io; // inputs, actions, errors
mod persist; // the whole state saved as data, and an ACD rebuilt from it
mod reconfigure; // an edited hotline.yaml taken while calls wait
mod snapshot; // the live state for the admin API
#[cfg(test)]
mod tests; // CallerLost, the vocabulary as JSON

pub use io::{AcdError, Action, CallbackRefusal, Input, OfferFailure, OverflowReason};
pub use persist::AcdState;
pub use reconfigure::Refusal;
pub use snapshot::{AgentSnapshot, QueueAgentSnapshot, QueueSnapshot, Snapshot, WaitingSnapshot};

#[derive(Debug, Clone)]
struct Offer {
    agent: String,
    deadline: Instant,
}

#[derive(Debug, Clone)]
struct Waiter {
    call: String,
    caller: String,
    offers: Vec<Offer>,
    /// Agents that missed this caller; skipped while others are free.
    tried: BTreeSet<String>,
    announced_position: Option<usize>,
    /// Announcement times passed (the first is at joining).
    announcements: u32,
    next_announce: Option<Instant>,
    /// `max_wait`; callers called back have none.
    deadline: Option<Instant>,
    callback_offered: bool,
    /// The request this caller was called back for.
    from_callback: Option<CallbackId>,
    /// That request as it was when the call back was answered: back in line, as a failed
    /// attempt, if the caller is lost.
    request: Option<Pending>,
}

#[derive(Debug, Clone)]
struct Pending {
    id: CallbackId,
    /// The call that asked.
    for_call: String,
    number: String,
    attempts: u32,
    dialing: bool,
    retry_at: Option<Instant>,
}

#[derive(Debug, Clone)]
enum Kind {
    Caller(Box<Waiter>),
    Callback(Pending),
}

#[derive(Debug, Clone)]
struct Entry {
    seq: u64,
    priority: i32,
    skills: Vec<String>,
    joined: Instant,
    kind: Kind,
}

#[derive(Debug)]
struct Queue {
    cfg: QueueConfig,
    /// Best first: higher priority, then earlier arrival.
    line: Vec<Entry>,
    stats: QueueStats,
    handle_times: HandleTimes,
    /// The round-robin cursor.
    last_offered: Option<String>,
    /// When the callback requests of the last 24 hours were taken (for `daily_cap`).
    callbacks_taken: VecDeque<Instant>,
}

impl Queue {
    fn new(cfg: &QueueConfig) -> Queue {
        Queue {
            cfg: cfg.clone(),
            line: Vec::new(),
            stats: QueueStats::default(),
            handle_times: HandleTimes::new(DEFAULT_EWT_WINDOW),
            last_offered: None,
            callbacks_taken: VecDeque::new(),
        }
    }

    fn insert(&mut self, entry: Entry) -> usize {
        let at = self.line.partition_point(|e| {
            (-i64::from(e.priority), e.seq) < (-i64::from(entry.priority), entry.seq)
        });
        self.line.insert(at, entry);
        at
    }

    fn index_of(&self, call: &str) -> Option<usize> {
        self.line
            .iter()
            .position(|e| matches!(&e.kind, Kind::Caller(w) if w.call == call))
    }
}

#[derive(Debug, Clone)]
enum Place {
    Waiting {
        queue: String,
    },
    Bridged {
        queue: String,
        agent: String,
        answered_at: Instant,
    },
}

/// What the dispatcher decided for one entry.
enum Decision {
    Offer(Vec<String>, bool),
    Claim(String),
    Dial(String),
}

/// All queues and agents. See the module comment for the contract with the shell.
pub struct Acd {
    queues: BTreeMap<String, Queue>,
    agents: BTreeMap<String, Agent>,
    calls: HashMap<String, Place>,
    store: Box<dyn CallbackStore>,
    next_seq: u64,
    actions: VecDeque<Action>,
    /// Stored callbacks for queues no longer configured; kept in the store, not served.
    orphans: usize,
    /// The highest callback id seen (a restored ACD's store starts above it).
    last_callback_id: u64,
}

impl std::fmt::Debug for Acd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acd")
            .field("queues", &self.queues.keys().collect::<Vec<_>>())
            .field("agents", &self.agents.keys().collect::<Vec<_>>())
            .field("calls", &self.calls.len())
            .finish()
    }
}

impl Acd {
    /// Builds the queues and agents from checked configuration ([`super::config::check`])
    /// and puts the stored callback requests back in line, in their order, each as if it
    /// had waited what it had waited when it was made.
    pub fn new(
        queues: &QueuesConfig,
        agents: &AgentsConfig,
        mut store: Box<dyn CallbackStore>,
        now: Instant,
    ) -> Result<Self, AcdError> {
        let queues: BTreeMap<String, Queue> = queues
            .iter()
            .map(|(name, cfg)| (name.clone(), Queue::new(cfg)))
            .collect();
        let agents = agents
            .iter()
            .map(|(name, cfg)| (name.clone(), Agent::new(name, cfg, now)))
            .collect();
        let stored = store.load()?;
        let mut acd = Acd {
            queues,
            agents,
            calls: HashMap::new(),
            store,
            next_seq: 0,
            actions: VecDeque::new(),
            orphans: 0,
            last_callback_id: 0,
        };
        for cb in stored {
            acd.last_callback_id = acd.last_callback_id.max(cb.id.0);
            // Restored requests keep their places; everyone new comes after them.
            let seq = cb.place;
            acd.next_seq = acd.next_seq.max(seq);
            let Some(q) = acd.queues.get_mut(&cb.queue) else {
                acd.orphans += 1;
                continue;
            };
            q.insert(Entry {
                seq,
                priority: cb.priority,
                skills: cb.skills,
                joined: now.checked_sub(cb.waited).unwrap_or(now),
                kind: Kind::Callback(Pending {
                    id: cb.id,
                    for_call: cb.for_call,
                    number: cb.number,
                    attempts: cb.attempts,
                    dialing: false,
                    retry_at: None,
                }),
            });
        }
        acd.dispatch(now);
        Ok(acd)
    }

    /// Stored callback requests whose queue is no longer configured.
    pub fn orphaned_callbacks(&self) -> usize {
        self.orphans
    }

    pub fn queue_config(&self, queue: &str) -> Option<&QueueConfig> {
        self.queues.get(queue).map(|q| &q.cfg)
    }

    pub fn agent(&self, name: &str) -> Option<&Agent> {
        self.agents.get(name)
    }

    /// The key that asks for a callback, when it has been offered to this waiting caller.
    pub fn callback_key(&self, call: &str) -> Option<char> {
        let Some(Place::Waiting { queue }) = self.calls.get(call) else {
            return None;
        };
        let q = self.queues.get(queue)?;
        let i = q.index_of(call)?;
        match &q.line.get(i)?.kind {
            Kind::Caller(w) if w.callback_offered => {
                q.cfg.callback.as_ref().map(|c| c.key.as_char())
            }
            _ => None,
        }
    }

    /// Whether `call` is the ACD's: waiting in line or bridged to an agent.
    pub fn holds(&self, call: &str) -> bool {
        self.calls.contains_key(call)
    }

    /// The caller's place in line (1 is the front), while it waits.
    pub fn position(&self, call: &str) -> Option<usize> {
        let Some(Place::Waiting { queue }) = self.calls.get(call) else {
            return None;
        };
        self.queues.get(queue)?.index_of(call).map(|i| i + 1)
    }

    /// The next thing for the shell to do, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Takes one input at `now`, then offers waiting callers to agents that are free and
    /// makes the announcements due. An error means the input named something the ACD
    /// does not know (a late answer to a cancelled offer, a call that already left...):
    /// nothing changed because of it, and the shell should end any leg it concerns.
    pub fn handle(&mut self, now: Instant, input: Input) -> Result<(), AcdError> {
        let result = self.apply(now, input);
        self.dispatch(now);
        self.announce_new(now);
        result
    }

    fn apply(&mut self, now: Instant, input: Input) -> Result<(), AcdError> {
        match input {
            Input::Join {
                call,
                queue,
                priority,
                skills,
                caller,
            } => self.join(now, call, queue, priority, skills, caller),
            Input::CallerLeft { call } => match self.calls.get(&call).cloned() {
                Some(Place::Waiting { queue }) => {
                    self.abandon(now, &queue, &call);
                    Ok(())
                }
                Some(Place::Bridged { .. }) => {
                    self.end_bridge(now, &call);
                    Ok(())
                }
                None => Err(AcdError::UnknownCall { call }),
            },
            Input::CallerLost { call } => match self.calls.get(&call).cloned() {
                Some(Place::Waiting { queue }) => {
                    self.lose(now, &queue, &call);
                    Ok(())
                }
                Some(Place::Bridged { .. }) => {
                    self.end_bridge(now, &call);
                    Ok(())
                }
                None => Err(AcdError::UnknownCall { call }),
            },
            Input::AgentLeft { call } => match self.calls.get(&call) {
                Some(Place::Bridged { .. }) => {
                    self.end_bridge(now, &call);
                    Ok(())
                }
                _ => Err(AcdError::UnknownCall { call }),
            },
            Input::CallbackRequested { call, number } => self.callback_requested(now, call, number),
            Input::CallbackAnswered { id, call } => self.callback_answered(id, call),
            Input::CallbackFailed { id } => self.callback_failed(now, id),
            Input::AgentRegistered {
                agent,
                contact,
                expires,
            } => {
                if expires.is_zero() {
                    return self.unregister(now, &agent);
                }
                let a = self.agent_mut(&agent)?;
                a.register(contact, now.checked_add(expires).unwrap_or(now));
                if *a.state() == AgentState::LoggedOut && !a.logged_out_on_purpose {
                    self.set_agent(now, &agent, AgentState::Available);
                }
                Ok(())
            }
            Input::AgentUnregistered { agent } => self.unregister(now, &agent),
            Input::Agent { agent, command } => self.command(now, &agent, command),
            Input::OfferAnswered { call, agent } => self.answered(now, call, agent),
            Input::OfferFailed { call, agent, .. } => {
                let Some(Place::Waiting { queue }) = self.calls.get(&call).cloned() else {
                    return Err(AcdError::NotOffered { call, agent });
                };
                if !self.remove_offer(&queue, &call, &agent) {
                    return Err(AcdError::NotOffered { call, agent });
                }
                self.missed(now, &queue, &call, &agent);
                Ok(())
            }
        }
    }

    // ------------------------------------------------------------------ callers

    fn seq(&mut self) -> u64 {
        self.next_seq = self.next_seq.wrapping_add(1);
        self.next_seq
    }

    fn join(
        &mut self,
        now: Instant,
        call: String,
        queue: String,
        priority: i32,
        skills: Vec<String>,
        caller: String,
    ) -> Result<(), AcdError> {
        if self.calls.contains_key(&call) {
            return Err(AcdError::AlreadyQueued { call });
        }
        let logged_in = self.logged_in(&queue);
        let seq = self.seq();
        let Some(q) = self.queues.get_mut(&queue) else {
            let known: Vec<&str> = self.queues.keys().map(String::as_str).collect();
            return Err(AcdError::UnknownQueue {
                queue,
                known: known.join(", "),
            });
        };
        q.stats.offer();
        let overflow = if q.cfg.max_callers.is_some_and(|m| q.line.len() >= m) {
            Some(OverflowReason::Full)
        } else if q.cfg.when_empty == WhenEmpty::Leave && logged_in == 0 {
            Some(OverflowReason::NoAgents)
        } else {
            None
        };
        if let Some(reason) = overflow {
            q.stats.overflow();
            self.actions.push_back(Action::Overflow {
                call,
                queue,
                reason,
                waited: Duration::ZERO,
            });
            return Ok(());
        }
        let deadline = q.cfg.max_wait.and_then(|d| now.checked_add(d));
        q.insert(Entry {
            seq,
            priority,
            skills,
            joined: now,
            kind: Kind::Caller(Box::new(Waiter {
                call: call.clone(),
                caller,
                offers: Vec::new(),
                tried: BTreeSet::new(),
                announced_position: None,
                announcements: 0,
                // The first announcement is at joining (see `announce_new`).
                next_announce: Some(now),
                deadline,
                callback_offered: false,
                from_callback: None,
                request: None,
            })),
        });
        self.calls.insert(call, Place::Waiting { queue });
        Ok(())
    }

    fn abandon(&mut self, now: Instant, queue: &str, call: &str) {
        let Some(entry) = self.take_at(now, queue, call) else {
            return;
        };
        let waited = now.saturating_duration_since(entry.joined);
        if let Some(q) = self.queues.get_mut(queue) {
            q.stats.abandon(waited);
        }
        if let Kind::Caller(w) = &entry.kind
            && let Some(id) = w.from_callback
        {
            self.forget_callback(id);
        }
        self.actions.push_back(Action::Abandoned {
            call: call.to_owned(),
            queue: queue.to_owned(),
            waited,
        });
    }

    /// The caller's node died while it waited: out of the line, counted as lost (not
    /// abandoned); its offers are cancelled without a miss. A caller that was called back
    /// puts its request back in line as a failed attempt (retried, or given up when the
    /// attempts are used up); it is not counted as lost, since its request goes on.
    fn lose(&mut self, now: Instant, queue: &str, call: &str) {
        let Some(mut entry) = self.take_at(now, queue, call) else {
            return;
        };
        let waited = now.saturating_duration_since(entry.joined);
        let request = match &mut entry.kind {
            Kind::Caller(w) => w.request.take(),
            Kind::Callback(_) => None,
        };
        self.actions.push_back(Action::Lost {
            call: call.to_owned(),
            queue: queue.to_owned(),
            waited,
        });
        match request {
            Some(mut p) => {
                let id = p.id;
                p.dialing = true;
                p.retry_at = None;
                entry.kind = Kind::Callback(p);
                if let Some(q) = self.queues.get_mut(queue) {
                    q.insert(entry);
                }
                // Always found: the request was just put back.
                let _ = self.callback_failed(now, id);
            }
            None => {
                if let Some(q) = self.queues.get_mut(queue) {
                    q.stats.lose();
                }
            }
        }
    }

    fn overflow(&mut self, now: Instant, queue: &str, call: &str, reason: OverflowReason) {
        let Some(entry) = self.take_at(now, queue, call) else {
            return;
        };
        if let Some(q) = self.queues.get_mut(queue) {
            q.stats.overflow();
        }
        self.actions.push_back(Action::Overflow {
            call: call.to_owned(),
            queue: queue.to_owned(),
            reason,
            waited: now.saturating_duration_since(entry.joined),
        });
    }

    /// `take`, releasing ringing agents at `now`.
    fn take_at(&mut self, now: Instant, queue: &str, call: &str) -> Option<Entry> {
        let q = self.queues.get_mut(queue)?;
        let i = q.index_of(call)?;
        let entry = q.line.remove(i);
        self.calls.remove(call);
        if let Kind::Caller(w) = &entry.kind {
            for o in &w.offers {
                self.actions.push_back(Action::CancelOffer {
                    call: call.to_owned(),
                    agent: o.agent.clone(),
                    missed: false,
                });
                self.release(now, &o.agent, call);
            }
        }
        Some(entry)
    }

    fn answered(&mut self, now: Instant, call: String, agent: String) -> Result<(), AcdError> {
        let Some(Place::Waiting { queue }) = self.calls.get(&call).cloned() else {
            return Err(AcdError::NotOffered { call, agent });
        };
        let offered = self
            .queues
            .get(&queue)
            .and_then(|q| q.index_of(&call).and_then(|i| q.line.get(i)))
            .is_some_and(
                |e| matches!(&e.kind, Kind::Caller(w) if w.offers.iter().any(|o| o.agent == agent)),
            );
        if !offered {
            return Err(AcdError::NotOffered { call, agent });
        }
        // The winner's own offer is not cancelled.
        self.remove_offer(&queue, &call, &agent);
        let Some(entry) = self.take_at(now, &queue, &call) else {
            return Err(AcdError::UnknownCall { call });
        };
        let waited = now.saturating_duration_since(entry.joined);
        if let Some(q) = self.queues.get_mut(&queue) {
            let sl = q.cfg.service_level;
            q.stats.answer(waited, sl);
        }
        let queue_wrap = self
            .queues
            .get(&queue)
            .map_or(Duration::ZERO, |q| q.cfg.wrap_up);
        let mut wrap_up = queue_wrap;
        if let Some(a) = self.agents.get_mut(&agent) {
            a.misses = 0;
            a.answered = a.answered.saturating_add(1);
            wrap_up = a.wrap_up.unwrap_or(queue_wrap);
        }
        self.set_agent(now, &agent, AgentState::OnCall { call: call.clone() });
        if let Kind::Caller(w) = &entry.kind
            && let Some(id) = w.from_callback
        {
            self.forget_callback(id);
        }
        self.calls.insert(
            call.clone(),
            Place::Bridged {
                queue: queue.clone(),
                agent: agent.clone(),
                answered_at: now,
            },
        );
        self.actions.push_back(Action::Connect {
            call,
            agent,
            queue,
            waited,
            wrap_up,
        });
        Ok(())
    }

    /// The call with an agent is over: its handle time counts, the agent wraps up.
    fn end_bridge(&mut self, now: Instant, call: &str) {
        let Some(Place::Bridged {
            queue,
            agent,
            answered_at,
        }) = self.calls.remove(call)
        else {
            return;
        };
        let queue_wrap = self
            .queues
            .get(&queue)
            .map_or(Duration::ZERO, |q| q.cfg.wrap_up);
        let Some(a) = self.agents.get_mut(&agent) else {
            return;
        };
        let wrap = a.wrap_up.unwrap_or(queue_wrap);
        let talk = now.saturating_duration_since(answered_at);
        if let Some(q) = self.queues.get_mut(&queue) {
            q.handle_times.record(talk.saturating_add(wrap));
            q.stats.handle(talk.saturating_add(wrap));
        }
        if !matches!(a.state(), AgentState::OnCall { call: c } if c == call) {
            return;
        }
        let next = match a.after_call.take() {
            Some(AfterCall::Pause(reason)) => AgentState::Paused { reason },
            Some(AfterCall::Logout) => AgentState::LoggedOut,
            None if a.contact(now).is_none() => AgentState::LoggedOut,
            None if wrap.is_zero() => AgentState::Available,
            None => AgentState::WrapUp {
                until: now.checked_add(wrap).unwrap_or(now),
            },
        };
        let logged_out = next == AgentState::LoggedOut;
        self.set_agent(now, &agent, next);
        if logged_out {
            self.leave_empty_queues(now);
        }
    }

    // ------------------------------------------------------------------ offers

    /// Removes the offer of `call` to `agent`; whether there was one.
    fn remove_offer(&mut self, queue: &str, call: &str, agent: &str) -> bool {
        let Some(q) = self.queues.get_mut(queue) else {
            return false;
        };
        let Some(i) = q.index_of(call) else {
            return false;
        };
        let Some(Entry {
            kind: Kind::Caller(w),
            ..
        }) = q.line.get_mut(i)
        else {
            return false;
        };
        let before = w.offers.len();
        w.offers.retain(|o| o.agent != agent);
        w.offers.len() != before
    }

    /// The agent no longer rings for `call` and it was not its fault.
    fn release(&mut self, now: Instant, agent: &str, call: &str) {
        let ringing = self
            .agents
            .get(agent)
            .is_some_and(|a| matches!(a.state(), AgentState::Ringing { call: c } if c == call));
        if ringing {
            self.set_agent(now, agent, AgentState::Available);
        }
    }

    /// The agent did not answer `call` (timeout, busy, declined, error): a miss.
    fn missed(&mut self, now: Instant, queue: &str, call: &str, agent: &str) {
        if let Some(Entry {
            kind: Kind::Caller(w),
            ..
        }) = self
            .queues
            .get_mut(queue)
            .and_then(|q| q.index_of(call).and_then(|i| q.line.get_mut(i)))
        {
            w.tried.insert(agent.to_owned());
        }
        let max = self.queues.get(queue).map_or(0, |q| q.cfg.max_misses);
        let Some(a) = self.agents.get_mut(agent) else {
            return;
        };
        if !matches!(a.state(), AgentState::Ringing { call: c } if c == call) {
            return;
        }
        a.misses = a.misses.saturating_add(1);
        let next = if max > 0 && a.misses >= max {
            AgentState::Paused {
                reason: MISSED_CALLS_REASON.to_owned(),
            }
        } else {
            AgentState::Available
        };
        self.set_agent(now, agent, next);
    }

    /// Offers waiting callers to free agents, best caller first across all queues (so an
    /// agent serving several queues takes the caller who should be served first), and
    /// calls back callback requests that reached an agent.
    fn dispatch(&mut self, now: Instant) {
        let mut free: BTreeSet<String> = self
            .agents
            .values()
            .filter(|a| a.offerable(now))
            .map(|a| a.name.clone())
            .collect();
        if free.is_empty() {
            return;
        }
        let mut order: Vec<(i64, u64, String)> = self
            .queues
            .iter()
            .flat_map(|(name, q)| {
                q.line
                    .iter()
                    .map(move |e| (-i64::from(e.priority), e.seq, name.clone()))
            })
            .collect();
        order.sort();
        for (_, seq, queue) in order {
            if free.is_empty() {
                break;
            }
            let Some(decision) = self.decide(now, &queue, seq, &free) else {
                continue;
            };
            self.carry_out(now, &queue, seq, decision, &mut free);
        }
    }

    fn decide(
        &self,
        now: Instant,
        queue: &str,
        seq: u64,
        free: &BTreeSet<String>,
    ) -> Option<Decision> {
        let q = self.queues.get(queue)?;
        let entry = q.line.iter().find(|e| e.seq == seq)?;
        let eligible: Vec<&Agent> = free
            .iter()
            .filter_map(|n| self.agents.get(n))
            .filter(|a| a.queues.contains_key(queue) && a.has_skills(&entry.skills))
            .collect();
        if eligible.is_empty() {
            return None;
        }
        let pick = |pool: &[&Agent]| -> Vec<String> {
            let cands: Vec<Candidate<'_>> = pool
                .iter()
                .map(|a| Candidate {
                    name: &a.name,
                    penalty: a.queues.get(queue).copied().unwrap_or(0),
                    idle_since: a.idle_since,
                    answered: a.answered,
                })
                .collect();
            choose(q.cfg.strategy, &cands, q.last_offered.as_deref())
                .into_iter()
                .filter_map(|i| cands.get(i).map(|c| c.name.to_owned()))
                .collect()
        };
        match &entry.kind {
            // One offer at a time, except that `ring_all` also rings agents that free up
            // while the others ring.
            Kind::Caller(w) if !w.offers.is_empty() && q.cfg.strategy != Strategy::RingAll => None,
            Kind::Caller(w) => {
                let untried: Vec<&Agent> = eligible
                    .iter()
                    .filter(|a| !w.tried.contains(&a.name))
                    .copied()
                    .collect();
                // Everyone free has missed this caller: start over rather than wait.
                let (pool, reset) = if untried.is_empty() {
                    (eligible, true)
                } else {
                    (untried, false)
                };
                Some(Decision::Offer(pick(&pool), reset))
            }
            Kind::Callback(p) if p.dialing => {
                pick(&eligible).into_iter().next().map(Decision::Claim)
            }
            Kind::Callback(p) if p.retry_at.is_some_and(|t| t > now) => None,
            Kind::Callback(_) => pick(&eligible).into_iter().next().map(Decision::Dial),
        }
    }

    fn carry_out(
        &mut self,
        now: Instant,
        queue: &str,
        seq: u64,
        decision: Decision,
        free: &mut BTreeSet<String>,
    ) {
        match decision {
            Decision::Claim(agent) => {
                free.remove(&agent);
            }
            Decision::Dial(agent) => {
                free.remove(&agent);
                let Some(q) = self.queues.get_mut(queue) else {
                    return;
                };
                if let Some(Entry {
                    kind: Kind::Callback(p),
                    ..
                }) = q.line.iter_mut().find(|e| e.seq == seq)
                {
                    p.dialing = true;
                    p.retry_at = None;
                    self.actions.push_back(Action::PlaceCallback {
                        id: p.id,
                        number: p.number.clone(),
                        queue: queue.to_owned(),
                        for_call: p.for_call.clone(),
                        attempt: p.attempts.saturating_add(1),
                    });
                }
            }
            Decision::Offer(agents, reset) => {
                let mut offered = Vec::new();
                for agent in agents {
                    free.remove(&agent);
                    let Some(contact) = self
                        .agents
                        .get(&agent)
                        .and_then(|a| a.contact(now))
                        .map(str::to_owned)
                    else {
                        continue;
                    };
                    offered.push((agent, contact));
                }
                let Some(q) = self.queues.get_mut(queue) else {
                    return;
                };
                let deadline = now.checked_add(q.cfg.ring_timeout).unwrap_or(now);
                let Some(Entry {
                    kind: Kind::Caller(w),
                    ..
                }) = q.line.iter_mut().find(|e| e.seq == seq)
                else {
                    return;
                };
                if reset {
                    w.tried.clear();
                }
                let call = w.call.clone();
                for (agent, contact) in &offered {
                    w.offers.push(Offer {
                        agent: agent.clone(),
                        deadline,
                    });
                    self.actions.push_back(Action::Offer {
                        call: call.clone(),
                        agent: agent.clone(),
                        contact: contact.clone(),
                        queue: queue.to_owned(),
                    });
                }
                if let Some((last, _)) = offered.last() {
                    q.last_offered = Some(last.clone());
                }
                for (agent, _) in offered {
                    self.set_agent(now, &agent, AgentState::Ringing { call: call.clone() });
                }
            }
        }
    }

    // ------------------------------------------------------------------ announcements

    /// Announcements due now (at joining, and every `announce_every`), to callers not
    /// being offered.
    fn announce_new(&mut self, now: Instant) {
        let due: Vec<(String, String)> = self
            .queues
            .iter()
            .flat_map(|(name, q)| {
                q.line.iter().filter_map(move |e| match &e.kind {
                    Kind::Caller(w) if w.next_announce.is_some_and(|t| t <= now) => {
                        Some((name.clone(), w.call.clone()))
                    }
                    _ => None,
                })
            })
            .collect();
        for (queue, call) in due {
            self.announce(now, &queue, &call);
        }
    }

    fn announce(&mut self, now: Instant, queue: &str, call: &str) {
        let serving = self.serving(queue);
        let refusal = self.callback_refusal(now, queue, call);
        let Some(q) = self.queues.get_mut(queue) else {
            return;
        };
        let Some(i) = q.index_of(call) else {
            return;
        };
        let position = i + 1;
        let ewt = estimate(q.handle_times.average(), position, serving);
        let cfg = &q.cfg;
        let Some(Entry {
            kind: Kind::Caller(w),
            ..
        }) = q.line.get_mut(i)
        else {
            return;
        };
        let first = w.announcements == 0;
        w.announcements = w.announcements.saturating_add(1);
        w.next_announce = cfg.announce_every.and_then(|d| now.checked_add(d));
        if !w.offers.is_empty() {
            return;
        }
        let changed = w.announced_position != Some(position);
        let say_position = changed && cfg.announce.contains(&AnnounceItem::Position);
        let say_wait = changed && ewt.is_some() && cfg.announce.contains(&AnnounceItem::Wait);
        // The prompt belongs to the periodic announcement, not the one at joining.
        let prompt = if first {
            None
        } else {
            cfg.announce_prompt.clone()
        };
        if say_position || say_wait || prompt.is_some() {
            if say_position || say_wait {
                w.announced_position = Some(position);
            }
            self.actions.push_back(Action::Announce {
                call: call.to_owned(),
                queue: queue.to_owned(),
                prompt,
                position: say_position.then_some(position),
                ewt: if say_wait { ewt } else { None },
            });
        }
        if let (Some(cb), Some(ewt)) = (&cfg.callback, ewt)
            && !w.callback_offered
            && w.from_callback.is_none()
            && ewt > cb.offer_after_wait
        {
            // Offered once: a refusal is not asked about again at the next announcement.
            w.callback_offered = true;
            self.actions.push_back(match refusal {
                None => Action::OfferCallback {
                    call: call.to_owned(),
                    key: cb.key.as_char(),
                },
                Some(reason) => Action::CallbackRefused {
                    call: call.to_owned(),
                    queue: queue.to_owned(),
                    number: w.caller.clone(),
                    reason,
                },
            });
        }
    }

    // ------------------------------------------------------------------ time

    /// The next moment `handle_timeout` has work: a ring timeout, a maximum wait, an
    /// announcement, a callback retry, the end of a wrap-up or of a registration.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let agents = self.agents.values().flat_map(|a| {
            let wrap = match a.state() {
                AgentState::WrapUp { until } => Some(*until),
                _ => None,
            };
            [wrap, a.registration_expires()]
        });
        let entries = self
            .queues
            .values()
            .flat_map(|q| q.line.iter())
            .flat_map(|e| {
                let mut v: [Option<Instant>; 4] = [None; 4];
                match &e.kind {
                    Kind::Caller(w) => {
                        v[0] = w.offers.iter().map(|o| o.deadline).min();
                        v[1] = w.deadline;
                        v[2] = w.next_announce;
                    }
                    Kind::Callback(p) => v[3] = p.retry_at,
                }
                v
            });
        agents.chain(entries).flatten().min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let names: Vec<String> = self.agents.keys().cloned().collect();
        for name in names {
            let Some(a) = self.agents.get_mut(&name) else {
                continue;
            };
            if a.registration_expires().is_some_and(|t| t <= now) {
                a.unregister();
                self.lost_contact(now, &name);
            }
            if let Some(AgentState::WrapUp { until }) =
                self.agents.get(&name).map(|a| a.state().clone())
                && until <= now
            {
                self.set_agent(now, &name, AgentState::Available);
            }
        }
        let mut rings = Vec::new();
        let mut overflows = Vec::new();
        for (name, q) in &mut self.queues {
            for e in &mut q.line {
                match &mut e.kind {
                    Kind::Caller(w) => {
                        for o in w.offers.iter().filter(|o| o.deadline <= now) {
                            rings.push((name.clone(), w.call.clone(), o.agent.clone()));
                        }
                        if w.deadline.is_some_and(|t| t <= now) {
                            overflows.push((name.clone(), w.call.clone()));
                        }
                    }
                    Kind::Callback(p) => {
                        if p.retry_at.is_some_and(|t| t <= now) {
                            p.retry_at = None;
                        }
                    }
                }
            }
        }
        for (queue, call) in overflows {
            self.overflow(now, &queue, &call, OverflowReason::MaxWait);
        }
        for (queue, call, agent) in rings {
            if self.remove_offer(&queue, &call, &agent) {
                self.actions.push_back(Action::CancelOffer {
                    call: call.clone(),
                    agent: agent.clone(),
                    missed: true,
                });
                self.missed(now, &queue, &call, &agent);
            }
        }
        self.dispatch(now);
        self.announce_new(now);
    }
}
