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
//! | `Abandoned`, `CallbackGivenUp`, `AgentStateChanged`, `StoreFailed` | records and logs | nothing |

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::agent::{AfterCall, Agent, AgentCommand, AgentState, MISSED_CALLS_REASON};
use super::config::{
    AgentsConfig, AnnounceItem, DEFAULT_EWT_WINDOW, QueueConfig, QueuesConfig, WhenEmpty,
};
use super::ewt::{HandleTimes, estimate};
use super::stats::{QueueStats, StatsSnapshot};
use super::store::{CallbackId, CallbackStore, StoreError, StoredCallback};
use super::strategy::{Candidate, Strategy, choose};

/// Why a caller left the line for the queue step's `on_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

/// Why an agent's leg did not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferFailure {
    Busy,
    Declined,
    /// Unreachable, a transport error, a SIP error response.
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// The caller pressed the callback key: it leaves the line, its place is kept, and it
    /// will be called at `number` (default: the number it joined with).
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Ring `agent` at `contact` for `call`. `ring_all` gives several at once.
    Offer {
        call: String,
        agent: String,
        contact: String,
        queue: String,
    },
    /// Stop ringing: another agent answered, the caller left, or the ring timed out.
    CancelOffer { call: String, agent: String },
    /// Bridge the caller and the agent now, interrupting hold music or an announcement.
    Connect {
        call: String,
        agent: String,
        queue: String,
        waited: Duration,
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
    /// A callback request reached the front and an agent is free: call the caller.
    PlaceCallback {
        id: CallbackId,
        number: String,
        queue: String,
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
    AgentStateChanged {
        agent: String,
        state: &'static str,
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
    #[error("call '{call}' has no number to call back")]
    NoNumber { call: String },
    #[error("no callback request {}", id.0)]
    UnknownCallback { id: CallbackId },
    #[error(transparent)]
    Store(#[from] StoreError),
}

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
}

#[derive(Debug, Clone)]
struct Pending {
    id: CallbackId,
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
}

impl Queue {
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
            .map(|(name, cfg)| {
                (
                    name.clone(),
                    Queue {
                        cfg: cfg.clone(),
                        line: Vec::new(),
                        stats: QueueStats::default(),
                        handle_times: HandleTimes::new(DEFAULT_EWT_WINDOW),
                        last_offered: None,
                    },
                )
            })
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
        };
        for cb in stored {
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

    /// The caller's place in line (1 is the front), while it waits.
    pub fn position(&self, call: &str) -> Option<usize> {
        let Some(Place::Waiting { queue }) = self.calls.get(call) else {
            return None;
        };
        self.queues.get(queue)?.index_of(call).map(|i| i + 1)
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

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
        if let Some(a) = self.agents.get_mut(&agent) {
            a.misses = 0;
            a.answered = a.answered.saturating_add(1);
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
            w.callback_offered = true;
            self.actions.push_back(Action::OfferCallback {
                call: call.to_owned(),
                key: cb.key.as_char(),
            });
        }
    }

    // ------------------------------------------------------------------ callbacks

    fn callback_requested(
        &mut self,
        now: Instant,
        call: String,
        number: Option<String>,
    ) -> Result<(), AcdError> {
        let Some(Place::Waiting { queue }) = self.calls.get(&call).cloned() else {
            return Err(AcdError::UnknownCall { call });
        };
        let q = self
            .queues
            .get(&queue)
            .ok_or_else(|| AcdError::UnknownCall { call: call.clone() })?;
        if q.cfg.callback.is_none() {
            return Err(AcdError::NoCallback { queue });
        }
        let i = q
            .index_of(&call)
            .ok_or_else(|| AcdError::UnknownCall { call: call.clone() })?;
        let Some(entry) = q.line.get(i) else {
            return Err(AcdError::UnknownCall { call });
        };
        let Kind::Caller(w) = &entry.kind else {
            return Err(AcdError::UnknownCall { call });
        };
        if w.from_callback.is_some() {
            return Err(AcdError::NoCallback { queue });
        }
        let number = number.unwrap_or_else(|| w.caller.clone());
        if number.trim().is_empty() {
            return Err(AcdError::NoNumber { call });
        }
        let stored = StoredCallback {
            id: CallbackId(0),
            queue: queue.clone(),
            number: number.clone(),
            priority: entry.priority,
            skills: entry.skills.clone(),
            waited: now.saturating_duration_since(entry.joined),
            attempts: 0,
            place: entry.seq,
        };
        let id = self.store.add(&stored)?;
        // Out of the line as a caller, back in at the same place as a request.
        let Some(mut entry) = self.take_at(now, &queue, &call) else {
            return Err(AcdError::UnknownCall { call });
        };
        entry.kind = Kind::Callback(Pending {
            id,
            number,
            attempts: 0,
            dialing: false,
            retry_at: None,
        });
        if let Some(q) = self.queues.get_mut(&queue) {
            q.stats.callback();
            q.insert(entry);
        }
        Ok(())
    }

    fn find_callback(&self, id: CallbackId) -> Option<(String, usize)> {
        self.queues.iter().find_map(|(name, q)| {
            q.line
                .iter()
                .position(|e| matches!(&e.kind, Kind::Callback(p) if p.id == id))
                .map(|i| (name.clone(), i))
        })
    }

    fn callback_answered(&mut self, id: CallbackId, call: String) -> Result<(), AcdError> {
        if self.calls.contains_key(&call) {
            return Err(AcdError::AlreadyQueued { call });
        }
        let (queue, i) = self
            .find_callback(id)
            .ok_or(AcdError::UnknownCallback { id })?;
        let Some(q) = self.queues.get_mut(&queue) else {
            return Err(AcdError::UnknownCallback { id });
        };
        let Some(entry) = q.line.get_mut(i) else {
            return Err(AcdError::UnknownCallback { id });
        };
        let Kind::Callback(p) = &entry.kind else {
            return Err(AcdError::UnknownCallback { id });
        };
        let caller = p.number.clone();
        entry.kind = Kind::Caller(Box::new(Waiter {
            call: call.clone(),
            caller,
            offers: Vec::new(),
            tried: BTreeSet::new(),
            announced_position: None,
            announcements: 0,
            next_announce: None,
            deadline: None,
            callback_offered: false,
            from_callback: Some(id),
        }));
        self.calls.insert(call, Place::Waiting { queue });
        Ok(())
    }

    fn callback_failed(&mut self, now: Instant, id: CallbackId) -> Result<(), AcdError> {
        let (queue, i) = self
            .find_callback(id)
            .ok_or(AcdError::UnknownCallback { id })?;
        let Some(q) = self.queues.get_mut(&queue) else {
            return Err(AcdError::UnknownCallback { id });
        };
        let (max, retry) = q
            .cfg
            .callback
            .as_ref()
            .map_or((1, Duration::ZERO), |c| (c.attempts, c.retry_after));
        let Some(Entry {
            kind: Kind::Callback(p),
            ..
        }) = q.line.get_mut(i)
        else {
            return Err(AcdError::UnknownCallback { id });
        };
        p.attempts = p.attempts.saturating_add(1);
        p.dialing = false;
        let attempts = p.attempts;
        if attempts >= max {
            let number = p.number.clone();
            q.line.remove(i);
            self.forget_callback(id);
            self.actions
                .push_back(Action::CallbackGivenUp { id, number, queue });
        } else {
            p.retry_at = now.checked_add(retry);
            if let Err(e) = self.store.set_attempts(id, attempts) {
                self.actions.push_back(Action::StoreFailed {
                    message: e.to_string(),
                });
            }
        }
        Ok(())
    }

    fn forget_callback(&mut self, id: CallbackId) {
        if let Err(e) = self.store.remove(id) {
            self.actions.push_back(Action::StoreFailed {
                message: e.to_string(),
            });
        }
    }

    // ------------------------------------------------------------------ agents

    fn agent_mut(&mut self, agent: &str) -> Result<&mut Agent, AcdError> {
        self.agents
            .get_mut(agent)
            .ok_or_else(|| AcdError::UnknownAgent {
                agent: agent.to_owned(),
            })
    }

    fn set_agent(&mut self, now: Instant, agent: &str, state: AgentState) {
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
                state: name,
                reason,
            });
        }
    }

    /// Agents of the queue logged in (paused ones included).
    fn logged_in(&self, queue: &str) -> usize {
        self.agents
            .values()
            .filter(|a| a.queues.contains_key(queue) && *a.state() != AgentState::LoggedOut)
            .count()
    }

    /// Agents of the queue logged in and not paused.
    fn serving(&self, queue: &str) -> usize {
        self.agents
            .values()
            .filter(|a| a.queues.contains_key(queue) && a.state().serving())
            .count()
    }

    /// Stops the ringing of `agent`, if it rings, without counting a miss.
    fn stop_ringing(&mut self, now: Instant, agent: &str) {
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
            });
        }
        self.release(now, agent, &call);
    }

    fn command(
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

    fn unregister(&mut self, now: Instant, agent: &str) -> Result<(), AcdError> {
        self.agent_mut(agent)?.unregister();
        self.lost_contact(now, agent);
        Ok(())
    }

    /// The agent's registration ended: unless it has a fixed address it is logged out
    /// (at once, or when its call ends).
    fn lost_contact(&mut self, now: Instant, agent: &str) {
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
    fn leave_empty_queues(&mut self, now: Instant) {
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
                });
                self.missed(now, &queue, &call, &agent);
            }
        }
        self.dispatch(now);
        self.announce_new(now);
    }

    // ------------------------------------------------------------------ live state

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
