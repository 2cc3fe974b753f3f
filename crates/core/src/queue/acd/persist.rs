//! The ACD's whole changing state as data, and an ACD rebuilt from it: what a cluster's
//! leader writes after every batch of inputs and what its successor starts from.
//!
//! Owns [`AcdState`] (plain mirror structs with serde, so the internal structs stay free
//! to change), the conversion both ways, and the rules for a state that no longer fits
//! the configuration. Instants are kept as signed milliseconds from the moment of the
//! save, and put back relative to the moment the caller says corresponds to it. The
//! configuration (queue settings, an agent's queues, skills, address and wrap-up) is never
//! part of the state: it comes from the configuration given to [`Acd::restore`]. Pending
//! actions are not part of it either: the leader commits them with the state.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Acd, AcdError, Action, Entry, Kind, Offer, Pending, Place, Queue, Waiter};
use crate::queue::agent::{AfterCall, AgentState};
use crate::queue::config::{AgentsConfig, QueuesConfig};
use crate::queue::stats::QueueStats;
use crate::queue::store::{CallbackId, MemoryStore};

/// The ACD's whole changing state as data (serde), times relative to the moment it was
/// saved.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AcdState {
    queues: BTreeMap<String, QueueData>,
    agents: BTreeMap<String, AgentData>,
    calls: BTreeMap<String, PlaceData>,
    next_seq: u64,
    orphans: usize,
    /// The highest callback id given out so far.
    last_callback_id: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct QueueData {
    line: Vec<EntryData>,
    stats: QueueStats,
    /// Oldest first.
    handle_times: Vec<Duration>,
    last_offered: Option<String>,
    callbacks_taken: Vec<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct EntryData {
    seq: u64,
    priority: i32,
    skills: Vec<String>,
    joined: i64,
    kind: KindData,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
enum KindData {
    Caller(WaiterData),
    Callback(PendingData),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct WaiterData {
    call: String,
    caller: String,
    offers: Vec<OfferData>,
    tried: BTreeSet<String>,
    announced_position: Option<usize>,
    announcements: u32,
    next_announce: Option<i64>,
    deadline: Option<i64>,
    callback_offered: bool,
    from_callback: Option<CallbackId>,
    request: Option<PendingData>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct OfferData {
    agent: String,
    deadline: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct PendingData {
    id: CallbackId,
    for_call: String,
    number: String,
    attempts: u32,
    dialing: bool,
    retry_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct AgentData {
    registration: Option<RegistrationData>,
    state: StateData,
    since: i64,
    idle_since: i64,
    answered: u64,
    misses: u32,
    after_call: Option<AfterCallData>,
    logged_out_on_purpose: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct RegistrationData {
    contact: String,
    expires: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StateData {
    LoggedOut,
    Available,
    Ringing { call: String },
    OnCall { call: String },
    WrapUp { until: i64 },
    Paused { reason: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
enum AfterCallData {
    Pause { reason: String },
    Logout,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
enum PlaceData {
    Waiting {
        queue: String,
    },
    Bridged {
        queue: String,
        agent: String,
        answered_at: i64,
    },
}

/// Converts instants to and from signed milliseconds relative to `base`.
#[derive(Clone, Copy)]
struct Clock {
    base: Instant,
}

impl Clock {
    fn offset(self, t: Instant) -> i64 {
        match t.checked_duration_since(self.base) {
            Some(ahead) => i64::try_from(ahead.as_millis()).unwrap_or(i64::MAX),
            None => {
                let behind = self.base.saturating_duration_since(t).as_millis();
                i64::try_from(behind).map_or(i64::MIN, |ms| -ms)
            }
        }
    }

    /// `base` moved by `ms`, or the farthest instant in that direction that can be
    /// represented (to the millisecond).
    fn at(self, ms: i64) -> Instant {
        let shift = |by: u64| {
            let d = Duration::from_millis(by);
            if ms >= 0 {
                self.base.checked_add(d)
            } else {
                self.base.checked_sub(d)
            }
        };
        let want = ms.unsigned_abs();
        if let Some(t) = shift(want) {
            return t;
        }
        // `lo` can be represented, `want` cannot.
        let (mut lo, mut hi) = (0u64, want);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if shift(mid).is_some() {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        shift(lo).unwrap_or(self.base)
    }

    fn pending_out(self, p: &Pending) -> PendingData {
        PendingData {
            id: p.id,
            for_call: p.for_call.clone(),
            number: p.number.clone(),
            attempts: p.attempts,
            dialing: p.dialing,
            retry_at: p.retry_at.map(|t| self.offset(t)),
        }
    }

    fn pending_in(self, p: PendingData) -> Pending {
        Pending {
            id: p.id,
            for_call: p.for_call,
            number: p.number,
            attempts: p.attempts,
            dialing: p.dialing,
            retry_at: p.retry_at.map(|t| self.at(t)),
        }
    }

    fn entry_out(self, e: &Entry) -> EntryData {
        let kind = match &e.kind {
            Kind::Caller(w) => KindData::Caller(WaiterData {
                call: w.call.clone(),
                caller: w.caller.clone(),
                offers: w
                    .offers
                    .iter()
                    .map(|o| OfferData {
                        agent: o.agent.clone(),
                        deadline: self.offset(o.deadline),
                    })
                    .collect(),
                tried: w.tried.clone(),
                announced_position: w.announced_position,
                announcements: w.announcements,
                next_announce: w.next_announce.map(|t| self.offset(t)),
                deadline: w.deadline.map(|t| self.offset(t)),
                callback_offered: w.callback_offered,
                from_callback: w.from_callback,
                request: w.request.as_ref().map(|p| self.pending_out(p)),
            }),
            Kind::Callback(p) => KindData::Callback(self.pending_out(p)),
        };
        EntryData {
            seq: e.seq,
            priority: e.priority,
            skills: e.skills.clone(),
            joined: self.offset(e.joined),
            kind,
        }
    }

    fn entry_in(self, e: EntryData) -> Entry {
        let kind = match e.kind {
            KindData::Caller(w) => Kind::Caller(Box::new(Waiter {
                call: w.call,
                caller: w.caller,
                offers: w
                    .offers
                    .into_iter()
                    .map(|o| Offer {
                        agent: o.agent,
                        deadline: self.at(o.deadline),
                    })
                    .collect(),
                tried: w.tried,
                announced_position: w.announced_position,
                announcements: w.announcements,
                next_announce: w.next_announce.map(|t| self.at(t)),
                deadline: w.deadline.map(|t| self.at(t)),
                callback_offered: w.callback_offered,
                from_callback: w.from_callback,
                request: w.request.map(|p| self.pending_in(p)),
            })),
            KindData::Callback(p) => Kind::Callback(self.pending_in(p)),
        };
        Entry {
            seq: e.seq,
            priority: e.priority,
            skills: e.skills,
            joined: self.at(e.joined),
            kind,
        }
    }

    fn state_out(self, s: &AgentState) -> StateData {
        match s {
            AgentState::LoggedOut => StateData::LoggedOut,
            AgentState::Available => StateData::Available,
            AgentState::Ringing { call } => StateData::Ringing { call: call.clone() },
            AgentState::OnCall { call } => StateData::OnCall { call: call.clone() },
            AgentState::WrapUp { until } => StateData::WrapUp {
                until: self.offset(*until),
            },
            AgentState::Paused { reason } => StateData::Paused {
                reason: reason.clone(),
            },
        }
    }

    fn state_in(self, s: StateData) -> AgentState {
        match s {
            StateData::LoggedOut => AgentState::LoggedOut,
            StateData::Available => AgentState::Available,
            StateData::Ringing { call } => AgentState::Ringing { call },
            StateData::OnCall { call } => AgentState::OnCall { call },
            StateData::WrapUp { until } => AgentState::WrapUp {
                until: self.at(until),
            },
            StateData::Paused { reason } => AgentState::Paused { reason },
        }
    }
}

/// The callback ids an entry holds.
fn callback_ids(e: &EntryData) -> impl Iterator<Item = u64> + '_ {
    let ids: [Option<CallbackId>; 3] = match &e.kind {
        KindData::Caller(w) => [w.from_callback, w.request.as_ref().map(|p| p.id), None],
        KindData::Callback(p) => [None, None, Some(p.id)],
    };
    ids.into_iter().flatten().map(|id| id.0)
}

impl Acd {
    /// Everything a successor needs to go on exactly where this ACD is, as of `now`.
    /// Pending actions are not included (the shell takes them with the state).
    pub fn save(&self, now: Instant) -> AcdState {
        let clock = Clock { base: now };
        let queues = self
            .queues
            .iter()
            .map(|(name, q)| {
                let data = QueueData {
                    line: q.line.iter().map(|e| clock.entry_out(e)).collect(),
                    stats: q.stats.clone(),
                    handle_times: q.handle_times.iter().collect(),
                    last_offered: q.last_offered.clone(),
                    callbacks_taken: q.callbacks_taken.iter().map(|t| clock.offset(*t)).collect(),
                };
                (name.clone(), data)
            })
            .collect();
        let agents = self
            .agents
            .iter()
            .map(|(name, a)| {
                let data = AgentData {
                    registration: a.registration().map(|(contact, expires)| RegistrationData {
                        contact: contact.to_owned(),
                        expires: clock.offset(expires),
                    }),
                    state: clock.state_out(a.state()),
                    since: clock.offset(a.since()),
                    idle_since: clock.offset(a.idle_since),
                    answered: a.answered,
                    misses: a.misses,
                    after_call: a.after_call.as_ref().map(|c| match c {
                        AfterCall::Pause(reason) => AfterCallData::Pause {
                            reason: reason.clone(),
                        },
                        AfterCall::Logout => AfterCallData::Logout,
                    }),
                    logged_out_on_purpose: a.logged_out_on_purpose,
                };
                (name.clone(), data)
            })
            .collect();
        let calls = self
            .calls
            .iter()
            .map(|(call, place)| {
                let data = match place {
                    Place::Waiting { queue } => PlaceData::Waiting {
                        queue: queue.clone(),
                    },
                    Place::Bridged {
                        queue,
                        agent,
                        answered_at,
                    } => PlaceData::Bridged {
                        queue: queue.clone(),
                        agent: agent.clone(),
                        answered_at: clock.offset(*answered_at),
                    },
                };
                (call.clone(), data)
            })
            .collect();
        AcdState {
            queues,
            agents,
            calls,
            next_seq: self.next_seq,
            orphans: self.orphans,
            last_callback_id: self.last_callback_id,
        }
    }

    /// Rebuilds an ACD from `state` under the current configuration. `saved_at` is the
    /// moment on the caller's clock that corresponds to the save (it may be long before
    /// `now`; the caller computes it from wall-clock times). Deadlines that passed meanwhile
    /// fire at the next `handle_timeout(now)`, which the caller should call at once (the
    /// restored ACD offers nobody until then). Queues or agents no longer configured are
    /// dropped (callbacks of dropped queues count as orphans, like `Acd::new` does);
    /// configured ones missing from the state start fresh.
    ///
    /// What was dropped is made consistent, with actions for the shell: an offer to an
    /// agent no longer configured is cancelled (`CancelOffer`, not missed); an agent
    /// ringing for or talking to a call that was dropped becomes available (logged out if
    /// it cannot be reached). The restored ACD keeps new callback requests in a
    /// [`MemoryStore`] whose ids start above every id in the state.
    pub fn restore(
        queues: &QueuesConfig,
        agents: &AgentsConfig,
        state: AcdState,
        saved_at: Instant,
        now: Instant,
    ) -> Result<Acd, AcdError> {
        let clock = Clock { base: saved_at };
        let mut acd_queues: BTreeMap<String, Queue> = queues
            .iter()
            .map(|(name, cfg)| (name.clone(), Queue::new(cfg)))
            .collect();
        let mut acd_agents: BTreeMap<String, _> = agents
            .iter()
            .map(|(name, cfg)| {
                (
                    name.clone(),
                    crate::queue::agent::Agent::new(name, cfg, now),
                )
            })
            .collect();
        let mut orphans = state.orphans;
        let mut last_callback_id = state.last_callback_id;
        let mut calls = HashMap::new();
        for (name, data) in state.queues {
            last_callback_id = data
                .line
                .iter()
                .flat_map(callback_ids)
                .fold(last_callback_id, u64::max);
            let Some(q) = acd_queues.get_mut(&name) else {
                // Requests (and callers called back for one) stay in the store, unserved.
                orphans = orphans.saturating_add(
                    data.line
                        .iter()
                        .filter(|e| callback_ids(e).next().is_some())
                        .count(),
                );
                continue;
            };
            for e in data.line {
                let entry = clock.entry_in(e);
                if let Kind::Caller(w) = &entry.kind {
                    calls.insert(
                        w.call.clone(),
                        Place::Waiting {
                            queue: name.clone(),
                        },
                    );
                }
                q.insert(entry);
            }
            q.stats = data.stats;
            for t in data.handle_times {
                q.handle_times.record(t);
            }
            q.last_offered = data.last_offered;
            q.callbacks_taken = data
                .callbacks_taken
                .into_iter()
                .map(|t| clock.at(t))
                .collect::<VecDeque<_>>();
        }
        for (name, data) in state.agents {
            let Some(a) = acd_agents.get_mut(&name) else {
                continue;
            };
            a.restore(
                data.registration.map(|r| (r.contact, clock.at(r.expires))),
                clock.state_in(data.state),
                clock.at(data.since),
            );
            a.idle_since = clock.at(data.idle_since);
            a.answered = data.answered;
            a.misses = data.misses;
            a.after_call = data.after_call.map(|c| match c {
                AfterCallData::Pause { reason } => AfterCall::Pause(reason),
                AfterCallData::Logout => AfterCall::Logout,
            });
            a.logged_out_on_purpose = data.logged_out_on_purpose;
        }
        for (call, data) in state.calls {
            // Waiting callers were taken from the lines above.
            if let PlaceData::Bridged {
                queue,
                agent,
                answered_at,
            } = data
                && acd_agents.contains_key(&agent)
            {
                calls.insert(
                    call,
                    Place::Bridged {
                        queue,
                        agent,
                        answered_at: clock.at(answered_at),
                    },
                );
            }
        }
        let mut acd = Acd {
            queues: acd_queues,
            agents: acd_agents,
            calls,
            store: Box::new(MemoryStore::starting_after(CallbackId(last_callback_id))),
            next_seq: state.next_seq,
            actions: VecDeque::new(),
            orphans,
            last_callback_id,
        };
        acd.drop_dangling(now);
        Ok(acd)
    }

    /// After a restore: no offer to an agent that is gone, no agent busy with a call
    /// that is gone.
    fn drop_dangling(&mut self, now: Instant) {
        let mut gone = Vec::new();
        for q in self.queues.values_mut() {
            for e in &mut q.line {
                if let Kind::Caller(w) = &mut e.kind {
                    let agents = &self.agents;
                    w.offers.retain(|o| {
                        let keep = agents.contains_key(&o.agent);
                        if !keep {
                            gone.push((w.call.clone(), o.agent.clone()));
                        }
                        keep
                    });
                }
            }
        }
        for (call, agent) in gone {
            self.actions.push_back(Action::CancelOffer {
                call,
                agent,
                missed: false,
            });
        }
        let stale: Vec<String> = self
            .agents
            .values()
            .filter(|a| match a.state() {
                AgentState::Ringing { call } => !self.offered(call, &a.name),
                AgentState::OnCall { call } => !matches!(
                    self.calls.get(call),
                    Some(Place::Bridged { agent, .. }) if *agent == a.name
                ),
                _ => false,
            })
            .map(|a| a.name.clone())
            .collect();
        for name in stale {
            let reachable = self
                .agents
                .get(&name)
                .is_some_and(|a| a.contact(now).is_some());
            let next = if reachable {
                AgentState::Available
            } else {
                AgentState::LoggedOut
            };
            self.set_agent(now, &name, next);
        }
    }

    /// Whether `call` waits with an offer to `agent`.
    fn offered(&self, call: &str, agent: &str) -> bool {
        let Some(Place::Waiting { queue }) = self.calls.get(call) else {
            return false;
        };
        self.queues
            .get(queue)
            .and_then(|q| q.index_of(call).and_then(|i| q.line.get(i)))
            .is_some_and(
                |e| matches!(&e.kind, Kind::Caller(w) if w.offers.iter().any(|o| o.agent == agent)),
            )
    }
}

#[cfg(test)]
mod tests;
