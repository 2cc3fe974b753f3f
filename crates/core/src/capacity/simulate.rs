//! A discrete-event simulation of one queue on the real ACD: random callers join, the
//! queue's own strategy, wrap-up, `max_wait`, `max_callers` and callback offers decide
//! what happens to them, and the figures are counted the way the formulas define them.
//!
//! Owns the simulated world around the [`Acd`]: arrivals, patience and handle times drawn
//! from a seeded generator, agents that answer every offer at once and hang up when the
//! call's handle time is over, callers who give up when their patience runs out. It must
//! not read a clock or draw entropy: the start instant and the seed are given, so a run
//! is the same every time. Runs are bounded by the number of calls and of events.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use crate::queue::config::{AgentConfig, AgentsConfig, QueueConfig, QueuesConfig};
use crate::queue::{Acd, AcdError, Action, Input, MemoryStore};

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct SimParams {
    /// The queue's name and configuration (strategy, wrap-up, limits, callback).
    pub queue: String,
    pub config: QueueConfig,
    pub agents: u32,
    pub calls_per_hour: f64,
    /// The mean time an agent spends on a call (talk and hold), wrap-up not included:
    /// the queue's `wrap_up` follows each call, as in the engine.
    pub handle_time: Duration,
    /// The mean patience of a waiting caller; `None`: callers never give up.
    pub patience: Option<Duration>,
    /// The service level's target wait.
    pub target: Duration,
    /// The share of callers offered a callback who take it (0 to 1).
    pub callback_take: f64,
    /// Callers counted; as many again before them warm the queue up and are not counted.
    pub calls: u32,
    pub seed: u64,
}

/// What the simulated callers met.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SimFigures {
    /// Callers counted.
    pub calls: u64,
    pub answered: u64,
    pub answered_within_target: u64,
    /// Gave up while waiting.
    pub abandoned: u64,
    /// Sent to the queue step's `on_timeout` (`max_wait`, `full`, `no_agents`).
    pub overflowed: u64,
    /// Left their number to be called back.
    pub callbacks: u64,
    /// Total wait of the answered, in seconds.
    pub wait_answered_s: f64,
}

impl SimFigures {
    fn share(&self, n: u64) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            n as f64 / self.calls as f64
        }
    }
    pub fn service_level(&self) -> f64 {
        self.share(self.answered_within_target)
    }
    pub fn abandoned_share(&self) -> f64 {
        self.share(self.abandoned)
    }
    pub fn overflow_share(&self) -> f64 {
        self.share(self.overflowed)
    }
    pub fn callback_share(&self) -> f64 {
        self.share(self.callbacks)
    }
    /// Average wait of the answered, in seconds.
    pub fn asa(&self) -> f64 {
        if self.answered == 0 {
            0.0
        } else {
            self.wait_answered_s / self.answered as f64
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("the simulation needs at least one agent, a positive call rate and handle time")]
    Invalid,
    #[error("the queue refused a simulated input: {0}")]
    Acd(#[from] AcdError),
    #[error("the simulation did not finish within {0} events")]
    TooLong(u64),
}

/// A small deterministic generator (SplitMix64): the same seed gives the same run.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Exponentially distributed with this mean.
    pub fn exp(&mut self, mean: f64) -> f64 {
        -(1.0 - self.unit()).ln() * mean
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Waiting,
    Talking,
    Done,
}

struct Caller {
    counted: bool,
    fate: Fate,
}

/// Events of the simulated world, by time (ties in the order they were scheduled).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    GivesUp(String),
    HangsUp(String),
}

/// Runs the simulation from `t0` (any instant: only differences are used).
pub fn simulate(p: &SimParams, t0: Instant) -> Result<SimFigures, SimError> {
    if p.agents == 0
        || !(p.calls_per_hour.is_finite() && p.calls_per_hour > 0.0)
        || p.handle_time.is_zero()
    {
        return Err(SimError::Invalid);
    }
    // The callers' numbers are made up: every one may be called back (the daily cap
    // still holds, as in the engine).
    let mut config = p.config.clone();
    if let Some(cb) = &mut config.callback {
        cb.allowed = vec!["X!".to_string()];
        cb.denied.clear();
    }
    let queues: QueuesConfig = BTreeMap::from([(p.queue.clone(), config)]);
    let agents: AgentsConfig = (1..=p.agents)
        .map(|i| {
            let name = format!("agent{i:03}");
            let cfg = AgentConfig {
                password: None,
                ha1_md5: None,
                ha1_sha256: None,
                // A fixed address: the agent is available from the start.
                uri: Some(format!("sip:{name}@capacity.invalid")),
                queues: BTreeMap::from([(p.queue.clone(), 0)]),
                skills: Vec::new(),
                wrap_up: None,
                srtp: false,
            };
            (name, cfg)
        })
        .collect();
    let mut acd = Acd::new(&queues, &agents, Box::new(MemoryStore::new()), t0)?;
    let mut rng = SplitMix64::new(p.seed);
    let at = |s: f64| t0 + Duration::from_secs_f64(s.max(0.0));
    let mean_gap = 3600.0 / p.calls_per_hour;
    let handle = p.handle_time.as_secs_f64();
    let warmup = u64::from(p.calls);
    let total = warmup + u64::from(p.calls);
    let max_events = total.saturating_mul(64).max(10_000);

    let mut figures = SimFigures::default();
    let mut callers: HashMap<String, Caller> = HashMap::new();
    let mut due: BinaryHeap<Reverse<(Instant, u64, Due)>> = BinaryHeap::new();
    let mut order = 0u64;
    let mut arrived = 0u64;
    let mut next_arrival = Some(at(rng.exp(mean_gap)));
    let mut unresolved = 0u64;
    let mut events = 0u64;
    loop {
        events += 1;
        if events > max_events {
            return Err(SimError::TooLong(max_events));
        }
        let candidates = [
            next_arrival,
            due.peek().map(|Reverse((t, ..))| *t),
            acd.poll_timeout(),
        ];
        let Some(now) = candidates.into_iter().flatten().min() else {
            break;
        };
        if next_arrival == Some(now) {
            let call = format!("c{arrived}");
            let counted = arrived >= warmup;
            arrived += 1;
            next_arrival =
                (arrived < total).then(|| now + Duration::from_secs_f64(rng.exp(mean_gap)));
            if counted {
                figures.calls += 1;
                unresolved += 1;
            }
            callers.insert(
                call.clone(),
                Caller {
                    counted,
                    fate: Fate::Waiting,
                },
            );
            if let Some(patience) = p.patience {
                let gives_up = now + Duration::from_secs_f64(rng.exp(patience.as_secs_f64()));
                order += 1;
                due.push(Reverse((gives_up, order, Due::GivesUp(call.clone()))));
            }
            acd.handle(
                now,
                Input::Join {
                    call: call.clone(),
                    queue: p.queue.clone(),
                    priority: 0,
                    skills: Vec::new(),
                    // A dialable number, so callbacks can be offered.
                    caller: format!("555{:07}", arrived % 10_000_000),
                },
            )?;
        } else if due.peek().is_some_and(|Reverse((t, ..))| *t == now) {
            let Some(Reverse((_, _, what))) = due.pop() else {
                break;
            };
            match what {
                Due::GivesUp(call) => {
                    if let Some(c) = callers.get_mut(&call)
                        && c.fate == Fate::Waiting
                    {
                        c.fate = Fate::Done;
                        if c.counted {
                            figures.abandoned += 1;
                            unresolved -= 1;
                        }
                        acd.handle(now, Input::CallerLeft { call })?;
                    }
                }
                Due::HangsUp(call) => {
                    if let Some(c) = callers.get_mut(&call) {
                        c.fate = Fate::Done;
                    }
                    acd.handle(now, Input::AgentLeft { call })?;
                }
            }
        } else {
            acd.handle_timeout(now);
        }
        // The world answers the queue's actions at once.
        while let Some(action) = acd.poll_action() {
            match action {
                Action::Offer { call, agent, .. } => {
                    acd.handle(now, Input::OfferAnswered { call, agent })?;
                }
                Action::Connect { call, waited, .. } => {
                    let c = callers.entry(call.clone()).or_insert(Caller {
                        counted: false,
                        fate: Fate::Waiting,
                    });
                    c.fate = Fate::Talking;
                    if c.counted {
                        c.counted = false;
                        unresolved -= 1;
                        figures.answered += 1;
                        figures.wait_answered_s += waited.as_secs_f64();
                        if waited <= p.target {
                            figures.answered_within_target += 1;
                        }
                    }
                    let ends = now + Duration::from_secs_f64(rng.exp(handle));
                    order += 1;
                    due.push(Reverse((ends, order, Due::HangsUp(call))));
                }
                Action::OfferCallback { call, .. } => {
                    if rng.unit() < p.callback_take
                        && let Some(c) = callers.get_mut(&call)
                        && c.fate == Fate::Waiting
                    {
                        c.fate = Fate::Done;
                        if c.counted {
                            c.counted = false;
                            figures.callbacks += 1;
                            unresolved -= 1;
                        }
                        acd.handle(now, Input::CallbackRequested { call, number: None })?;
                    }
                }
                // Not offered (the daily cap): the caller waits on.
                Action::CallbackRefused { .. } => {}
                Action::PlaceCallback { id, .. } => {
                    // The caller called back answers; the ACD offers it an agent.
                    let call = format!("callback{}", id.0);
                    callers.insert(
                        call.clone(),
                        Caller {
                            counted: false,
                            fate: Fate::Waiting,
                        },
                    );
                    acd.handle(now, Input::CallbackAnswered { id, call })?;
                }
                Action::Overflow { call, .. } => {
                    if let Some(c) = callers.get_mut(&call)
                        && c.fate == Fate::Waiting
                    {
                        c.fate = Fate::Done;
                        if c.counted {
                            c.counted = false;
                            figures.overflowed += 1;
                            unresolved -= 1;
                        }
                    }
                }
                Action::CancelOffer { .. }
                | Action::Announce { .. }
                | Action::CallbackGivenUp { .. }
                | Action::Abandoned { .. }
                | Action::Lost { .. }
                | Action::AgentStateChanged { .. }
                | Action::StoreFailed { .. } => {}
            }
        }
        callers.retain(|_, c| c.fate != Fate::Done);
        if next_arrival.is_none() && unresolved == 0 {
            break;
        }
    }
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity::erlang::{erlang_a_figures, erlang_c_figures};
    use crate::queue::config::Strategy;

    fn params(agents: u32, patience: Option<Duration>) -> SimParams {
        SimParams {
            queue: "support".into(),
            config: QueueConfig::default(),
            agents,
            calls_per_hour: 200.0,
            handle_time: Duration::from_secs(180),
            patience,
            target: Duration::from_secs(20),
            callback_take: 0.0,
            calls: 20_000,
            seed: 7,
        }
    }

    #[test]
    fn the_generator_is_seeded_and_uniform() {
        let mut a = SplitMix64::new(1);
        let mut b = SplitMix64::new(1);
        assert_eq!(a.next_u64(), b.next_u64());
        let mean: f64 = (0..100_000).map(|_| a.exp(2.0)).sum::<f64>() / 100_000.0;
        assert!((mean - 2.0).abs() < 0.05, "{mean}");
    }

    #[test]
    fn fifo_with_endless_patience_agrees_with_erlang_c() {
        // Waits are strongly correlated near full load: 60 000 calls keep the run's
        // service level within about 0.02 of the formula at these loads.
        let t0 = Instant::now();
        for n in [13u32, 14] {
            let mut p = params(n, None);
            p.calls = 60_000;
            let sim = simulate(&p, t0).unwrap();
            let c = erlang_c_figures(n, 200.0 / 3600.0, 180.0, 20.0).unwrap();
            assert_eq!(sim.calls, 60_000);
            assert_eq!(sim.answered, sim.calls);
            assert!(
                (sim.service_level() - c.service_level).abs() < 0.03,
                "{n}: {sim:?} {c:?}"
            );
            assert!(
                (sim.asa() - c.asa).abs() < 0.3 * c.asa,
                "{n}: {sim:?} {c:?}"
            );
        }
        // Seeded: the same run twice.
        assert_eq!(
            simulate(&params(12, None), t0).unwrap(),
            simulate(&params(12, None), t0).unwrap()
        );
    }

    #[test]
    fn impatient_callers_agree_with_erlang_a() {
        let t0 = Instant::now();
        let patience = Duration::from_secs(90);
        let sim = simulate(&params(10, Some(patience)), t0).unwrap();
        let a = erlang_a_figures(10, 200.0 / 3600.0, 180.0, 90.0, 20.0).unwrap();
        assert!(
            (sim.abandoned_share() - a.abandoned).abs() < 0.03,
            "{sim:?} {a:?}"
        );
        assert!(
            (sim.service_level() - a.service_level).abs() < 0.04,
            "{sim:?} {a:?}"
        );
        assert_eq!(sim.answered + sim.abandoned, sim.calls);
    }

    #[test]
    fn wrap_up_max_wait_and_callbacks_come_from_the_queue() {
        let t0 = Instant::now();
        let base = simulate(&params(12, None), t0).unwrap();
        let mut p = params(12, None);
        p.config.wrap_up = Duration::from_secs(30);
        let wrapped = simulate(&p, t0).unwrap();
        assert!(wrapped.asa() > base.asa() * 2.0, "{base:?} {wrapped:?}");
        p.config.max_wait = Some(Duration::from_secs(60));
        let limited = simulate(&p, t0).unwrap();
        assert!(limited.overflowed > 0, "{limited:?}");
        assert_eq!(limited.answered + limited.overflowed, limited.calls);
        p.config.max_wait = None;
        p.config.strategy = Strategy::RoundRobin;
        p.config.callback = Some(crate::queue::config::CallbackConfig {
            key: crate::flow::model::DtmfKey::new('1').unwrap(),
            offer_after_wait: Duration::from_secs(30),
            attempts: 3,
            retry_after: Duration::from_secs(60),
            dial: "sip:{number}@gateway.invalid".into(),
            caller_id: None,
            ring_timeout: Duration::from_secs(30),
            allowed: vec![crate::queue::config::DEFAULT_ALLOWED.into()],
            denied: Vec::new(),
            daily_cap: 200,
        });
        p.callback_take = 0.5;
        let called_back = simulate(&p, t0).unwrap();
        assert!(called_back.callbacks > 0, "{called_back:?}");
        assert_eq!(
            called_back.answered + called_back.callbacks,
            called_back.calls
        );
    }
}
