//! `hotline capacity --queue Q [--agents 12 | 8..16] [--calls-per-hour 300]
//! [--handle-time 4m] [--patience 90s] [--target 80/20s]`: the service level, ASA and
//! abandonment to expect for a number of agents, by Erlang C, Erlang A and a simulation of
//! the queue on the real ACD.
//!
//! Owns the inputs (the flags, the queue's configuration, and the defaults read from the
//! recorded history, each with where it came from) and the table. The arithmetic and the
//! simulation are the core's `capacity`; the records come from whatever store the caller
//! opened.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use hotline_core::capacity::erlang::{self, ErlangError, Figures};
use hotline_core::capacity::simulate::{SimFigures, SimParams, simulate};
use hotline_core::flow::duration::{DisplayDuration, parse_duration};
use hotline_core::queue::config::QueueConfig;

use crate::config::Config;
use crate::records::{CallEvent, CallRecord};

/// The simulation's default number of counted calls per agent count.
pub const DEFAULT_SIM_CALLS: u32 = 20_000;
/// The simulation's largest number of counted calls per agent count.
pub const MAX_SIM_CALLS: u32 = 1_000_000;
/// At most this many rows (agent counts) in one table.
pub const MAX_ROWS: u32 = 40;
/// The Erlang searches for the agents a target needs stop here.
const MAX_AGENTS_SEARCHED: u32 = 2_000;

/// `hotline capacity` options, as given.
#[derive(Debug, Clone, Default)]
pub struct CapacityArgs {
    pub queue: String,
    /// `12` or `8..16`.
    pub agents: Option<String>,
    pub calls_per_hour: Option<f64>,
    pub handle_time: Option<String>,
    pub patience: Option<String>,
    /// `80/20s` (80 % answered within 20 s).
    pub target: Option<String>,
    /// The share of callers offered a callback who take it, in percent.
    pub callback_take: Option<f64>,
    /// How far back the records are read for the defaults (`7d`).
    pub since: String,
    pub sim_calls: u32,
    pub seed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CapacityError {
    #[error("no queue named '{queue}' in the configuration (queues: {known})")]
    UnknownQueue { queue: String, known: String },
    #[error("--agents: expected a number like 12 or a range like 8..16, found '{0}'")]
    Agents(String),
    #[error("--target: expected PERCENT/WAIT like 80/20s, found '{0}'")]
    Target(String),
    #[error("--{field}: {message}")]
    Value {
        field: &'static str,
        message: String,
    },
    #[error(
        "no {what}: pass --{flag}, or keep call records (records: in hotline.yaml) of calls to queue '{queue}'"
    )]
    Missing {
        what: &'static str,
        flag: &'static str,
        queue: String,
    },
    #[error("--simulate-calls: at most {MAX_SIM_CALLS}, found {0}")]
    SimCalls(u32),
    #[error("--since: {0}")]
    Since(#[from] crate::records::listing::TimeError),
    #[error("reading the records: {0}")]
    Records(#[from] crate::records::store::StoreError),
    #[error("the simulation: {0}")]
    Simulation(#[from] hotline_core::capacity::simulate::SimError),
}

/// One input and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Sourced<T> {
    pub value: T,
    pub from: String,
}

/// What the recorded calls of one queue say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Callers who joined the queue.
    pub joined: u64,
    /// Clock hours (UTC) in which at least one caller joined.
    pub busy_hours: u64,
    /// Agent conversations ended, and their talk and hold in all.
    pub handled: u64,
    pub handle_ms: u64,
    /// Visits of the queue that ended, their waits in all, how many gave up, how many
    /// asked for a callback, and how many waited long enough to be offered one.
    pub left: u64,
    pub wait_ms: u64,
    pub abandoned: u64,
    pub callbacks: u64,
    pub waited_past_offer: u64,
}

impl History {
    /// Reads the events of `queue` from the records. `offer_after` is the queue's callback
    /// offer threshold, if it offers callbacks.
    pub fn of(events: &[CallEvent], queue: &str, offer_after: Option<Duration>) -> History {
        let mut h = History::default();
        let mut hours = BTreeSet::new();
        let of_queue =
            |e: &CallEvent| e.detail.get("queue").and_then(|q| q.as_str()) == Some(queue);
        let ms = |e: &CallEvent, k: &str| e.detail.get(k).and_then(serde_json::Value::as_u64);
        for e in events.iter().filter(|e| of_queue(e)) {
            match e.kind.as_str() {
                "queue_joined" => {
                    h.joined += 1;
                    hours.insert(e.at_ms.div_euclid(3_600_000));
                }
                "agent_ended" => {
                    h.handled += 1;
                    h.handle_ms += ms(e, "talk_ms").unwrap_or(0) + ms(e, "hold_ms").unwrap_or(0);
                }
                "queue_left" => {
                    let wait = ms(e, "wait_ms").unwrap_or(0);
                    h.left += 1;
                    h.wait_ms += wait;
                    match e.detail.get("outcome").and_then(|o| o.as_str()) {
                        Some("caller_hung_up") => h.abandoned += 1,
                        Some("callback") => h.callbacks += 1,
                        _ => {}
                    }
                    if offer_after.is_some_and(|o| Duration::from_millis(wait) >= o) {
                        h.waited_past_offer += 1;
                    }
                }
                _ => {}
            }
        }
        h.busy_hours = hours.len() as u64;
        h
    }
}

/// Everything the models are run with.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub queue: String,
    pub config: QueueConfig,
    pub agents: (u32, u32),
    pub calls_per_hour: Sourced<f64>,
    pub handle_time: Sourced<Duration>,
    pub patience: Option<Sourced<Duration>>,
    pub target_share: Sourced<f64>,
    pub target_wait: Sourced<Duration>,
    pub callback_take: Sourced<f64>,
    pub sim_calls: u32,
    pub seed: u64,
}

fn duration(field: &'static str, text: &str) -> Result<Duration, CapacityError> {
    parse_duration(text).map_err(|e| CapacityError::Value {
        field,
        message: e.to_string(),
    })
}

/// `12` or `8..16` (also `8..=16`).
pub fn parse_agents(text: &str) -> Result<(u32, u32), CapacityError> {
    let bad = || CapacityError::Agents(text.to_owned());
    let t = text.trim();
    let (a, b) = match t.split_once("..") {
        Some((a, b)) => (a, b.strip_prefix('=').unwrap_or(b)),
        None => (t, t),
    };
    let a: u32 = a.trim().parse().map_err(|_| bad())?;
    let b: u32 = b.trim().parse().map_err(|_| bad())?;
    if a == 0 || b < a || b - a >= MAX_ROWS {
        return Err(bad());
    }
    Ok((a, b))
}

/// `80/20s`, `80%/20s`: the share (0 to 1) and the wait.
pub fn parse_target(text: &str) -> Result<(f64, Duration), CapacityError> {
    let bad = || CapacityError::Target(text.to_owned());
    let (share, wait) = text.split_once('/').ok_or_else(bad)?;
    let share: f64 = share
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| bad())?;
    if !(share > 0.0 && share <= 100.0) {
        return Err(bad());
    }
    let wait = parse_duration(wait.trim()).map_err(|_| bad())?;
    Ok((share / 100.0, wait))
}

/// The inputs: each flag given, else the records (`history`, read over `period`), else
/// the queue's configuration or a stated default.
pub fn plan(
    config: &Config,
    args: &CapacityArgs,
    history: Option<&History>,
    period: &str,
) -> Result<Plan, CapacityError> {
    let queue_config =
        config
            .queues
            .get(&args.queue)
            .cloned()
            .ok_or_else(|| CapacityError::UnknownQueue {
                queue: args.queue.clone(),
                known: if config.queues.is_empty() {
                    "none".to_owned()
                } else {
                    config.queues.keys().cloned().collect::<Vec<_>>().join(", ")
                },
            })?;
    let flag = |name: &str| format!("--{name}");
    let records = |what: String| format!("records, last {period}: {what}");
    let missing = |what, flag| CapacityError::Missing {
        what,
        flag,
        queue: args.queue.clone(),
    };
    let h = history.cloned().unwrap_or_default();
    let calls_per_hour = match args.calls_per_hour {
        Some(v) if v.is_finite() && v > 0.0 => Sourced {
            value: v,
            from: flag("calls-per-hour"),
        },
        Some(v) => {
            return Err(CapacityError::Value {
                field: "calls-per-hour",
                message: format!("expected a positive number, found {v}"),
            });
        }
        None if h.joined > 0 => Sourced {
            value: h.joined as f64 / h.busy_hours.max(1) as f64,
            from: records(format!(
                "{} calls joined in {} hours with calls",
                h.joined, h.busy_hours
            )),
        },
        None => return Err(missing("calls per hour", "calls-per-hour")),
    };
    let handle_time = match &args.handle_time {
        Some(t) => Sourced {
            value: duration("handle-time", t)?,
            from: flag("handle-time"),
        },
        None if h.handled > 0 => Sourced {
            value: Duration::from_millis(h.handle_ms / h.handled),
            from: records(format!("talk and hold of {} agent calls", h.handled)),
        },
        None => return Err(missing("handle time", "handle-time")),
    };
    if handle_time.value.is_zero() {
        return Err(CapacityError::Value {
            field: "handle-time",
            message: "the handle time must be more than 0s".to_owned(),
        });
    }
    let patience = match &args.patience {
        Some(t) if t.trim() == "none" => None,
        Some(t) => Some(Sourced {
            value: duration("patience", t)?,
            from: flag("patience"),
        })
        .filter(|p| !p.value.is_zero()),
        // Exponential patience, censored by answers: all the time spent waiting over the
        // number who gave up.
        None if h.abandoned > 0 => Some(Sourced {
            value: Duration::from_millis(h.wait_ms / h.abandoned),
            from: records(format!(
                "{} of {} callers gave up, {} waited in all",
                h.abandoned,
                h.left,
                DisplayDuration(Duration::from_millis(h.wait_ms - h.wait_ms % 1000))
            )),
        }),
        None => None,
    };
    let (target_share, target_wait) = match &args.target {
        Some(t) => {
            let (s, w) = parse_target(t)?;
            (
                Sourced {
                    value: s,
                    from: flag("target"),
                },
                Sourced {
                    value: w,
                    from: flag("target"),
                },
            )
        }
        None => (
            Sourced {
                value: 0.8,
                from: "default".to_owned(),
            },
            Sourced {
                value: queue_config.service_level,
                from: format!("queues.{}.service_level", args.queue),
            },
        ),
    };
    let callback_take = match (args.callback_take, &queue_config.callback) {
        (_, None) => Sourced {
            value: 0.0,
            from: "the queue offers no callback".to_owned(),
        },
        (Some(p), Some(_)) if (0.0..=100.0).contains(&p) => Sourced {
            value: p / 100.0,
            from: flag("callback-take"),
        },
        (Some(p), Some(_)) => {
            return Err(CapacityError::Value {
                field: "callback-take",
                message: format!("expected a percentage from 0 to 100, found {p}"),
            });
        }
        (None, Some(_)) if h.waited_past_offer > 0 => Sourced {
            value: (h.callbacks as f64 / h.waited_past_offer as f64).min(1.0),
            from: records(format!(
                "{} callbacks of {} callers offered one",
                h.callbacks, h.waited_past_offer
            )),
        },
        (None, Some(_)) => Sourced {
            value: 0.0,
            from: "no record of a callback offer".to_owned(),
        },
    };
    let work = handle_time.value + queue_config.wrap_up;
    let traffic = calls_per_hour.value * work.as_secs_f64() / 3600.0;
    let agents = match &args.agents {
        Some(a) => parse_agents(a)?,
        None => {
            // From the first count that can carry the load to two past what Erlang C
            // says the target needs.
            let lambda = calls_per_hour.value / 3600.0;
            let need = erlang::agents_for(target_share.value, MAX_AGENTS_SEARCHED, |n| {
                erlang::erlang_c_figures(
                    n,
                    lambda,
                    work.as_secs_f64(),
                    target_wait.value.as_secs_f64(),
                )
            })
            .unwrap_or(MAX_AGENTS_SEARCHED);
            let from = (traffic.floor() as u32).max(1);
            let to = (need + 2).max(from).min(from + MAX_ROWS - 1);
            (from, to)
        }
    };
    Ok(Plan {
        queue: args.queue.clone(),
        config: queue_config,
        agents,
        calls_per_hour,
        handle_time,
        patience,
        target_share,
        target_wait,
        callback_take,
        sim_calls: args.sim_calls,
        seed: args.seed,
    })
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub agents: u32,
    pub erlang_c: Result<Figures, ErlangError>,
    pub erlang_a: Option<Result<Figures, ErlangError>>,
    pub simulation: Option<SimFigures>,
}

/// Runs the models for every agent count of the plan. `t0` is the simulation's start
/// (any instant).
pub fn compute(plan: &Plan, t0: Instant) -> Result<Vec<Row>, CapacityError> {
    let lambda = plan.calls_per_hour.value / 3600.0;
    let work = (plan.handle_time.value + plan.config.wrap_up).as_secs_f64();
    let target = plan.target_wait.value.as_secs_f64();
    let mut rows = Vec::new();
    for n in plan.agents.0..=plan.agents.1 {
        let erlang_c = erlang::erlang_c_figures(n, lambda, work, target);
        let erlang_a = plan
            .patience
            .as_ref()
            .map(|p| erlang::erlang_a_figures(n, lambda, work, p.value.as_secs_f64(), target));
        let simulation = if plan.sim_calls == 0 {
            None
        } else {
            let params = SimParams {
                queue: plan.queue.clone(),
                config: plan.config.clone(),
                agents: n,
                calls_per_hour: plan.calls_per_hour.value,
                handle_time: plan.handle_time.value,
                patience: plan.patience.as_ref().map(|p| p.value),
                target: plan.target_wait.value,
                callback_take: plan.callback_take.value,
                calls: plan.sim_calls,
                seed: plan.seed,
            };
            Some(simulate(&params, t0)?)
        };
        rows.push(Row {
            agents: n,
            erlang_c,
            erlang_a,
            simulation,
        });
    }
    Ok(rows)
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn secs(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}s")
    } else {
        format!("{x:.1}s")
    }
}

/// The inputs with their sources, the table, and the agents the target needs by each model.
pub fn render(plan: &Plan, rows: &[Row]) -> String {
    let mut out = String::new();
    let q = &plan.config;
    let callback = match &q.callback {
        Some(c) => format!(
            "callback offered after {}",
            DisplayDuration(c.offer_after_wait)
        ),
        None => "no callback".to_owned(),
    };
    let _ = writeln!(
        out,
        "queue {}: strategy {}, wrap-up {}, max wait {}, {callback}",
        plan.queue,
        q.strategy,
        DisplayDuration(q.wrap_up),
        q.max_wait
            .map_or("none".to_owned(), |d| DisplayDuration(d).to_string()),
    );
    let work = plan.handle_time.value + q.wrap_up;
    let traffic = plan.calls_per_hour.value * work.as_secs_f64() / 3600.0;
    let mut inputs: Vec<(&str, String, String)> = vec![
        (
            "calls per hour",
            format!("{:.1}", plan.calls_per_hour.value),
            plan.calls_per_hour.from.clone(),
        ),
        (
            "handle time",
            DisplayDuration(round_s(plan.handle_time.value)).to_string(),
            plan.handle_time.from.clone(),
        ),
        (
            "wrap-up",
            DisplayDuration(q.wrap_up).to_string(),
            format!("queues.{}.wrap_up", plan.queue),
        ),
    ];
    inputs.push(match &plan.patience {
        Some(p) => (
            "patience",
            DisplayDuration(round_s(p.value)).to_string(),
            p.from.clone(),
        ),
        None => (
            "patience",
            "none".to_owned(),
            "nobody gave up in the records; --patience sets one".to_owned(),
        ),
    });
    inputs.push((
        "target",
        format!(
            "{:.0}% in {}",
            plan.target_share.value * 100.0,
            DisplayDuration(plan.target_wait.value)
        ),
        if plan.target_share.from == plan.target_wait.from {
            plan.target_share.from.clone()
        } else {
            format!(
                "{} {:.0}%, the wait from {}",
                plan.target_share.from,
                plan.target_share.value * 100.0,
                plan.target_wait.from
            )
        },
    ));
    if q.callback.is_some() {
        inputs.push((
            "callback take",
            pct(plan.callback_take.value),
            plan.callback_take.from.clone(),
        ));
    }
    inputs.push((
        "load",
        format!("{traffic:.2} erlangs"),
        "calls per hour x (handle time + wrap-up)".to_owned(),
    ));
    for (name, value, from) in &inputs {
        let _ = writeln!(out, "  {name:<15} {value:<12} ({from})");
    }
    let _ = writeln!(out);
    let sim_note = if plan.sim_calls > 0 {
        format!(
            "simulation: {} calls per row, seed {}",
            plan.sim_calls, plan.seed
        )
    } else {
        "no simulation".to_owned()
    };
    let _ = writeln!(
        out,
        "SL: answered within {}; ASA: average wait of the answered; {sim_note}",
        DisplayDuration(plan.target_wait.value)
    );
    let _ = writeln!(
        out,
        "{:>6}  {:>5}  {:>15}  {:>23}  {:>31}",
        "",
        "",
        "Erlang C",
        if plan.patience.is_some() {
            "Erlang A"
        } else {
            "Erlang A (no patience)"
        },
        "simulation"
    );
    let _ = writeln!(
        out,
        "{:>6}  {:>5}  {:>6} {:>8}  {:>6} {:>7} {:>8}  {:>6} {:>7} {:>7} {:>8}",
        "agents", "occ", "SL", "ASA", "SL", "ASA", "abandon", "SL", "ASA", "abandon", "overflow"
    );
    for r in rows {
        let (occ, c) = match &r.erlang_c {
            Ok(f) => (
                pct(f.occupancy),
                format!("{:>6} {:>8}", pct(f.service_level), secs(f.asa)),
            ),
            Err(_) => ("-".to_owned(), format!("{:>15}", "overloaded")),
        };
        let a = match &r.erlang_a {
            Some(Ok(f)) => format!(
                "{:>6} {:>7} {:>8}",
                pct(f.service_level),
                secs(f.asa),
                pct(f.abandoned)
            ),
            Some(Err(_)) => format!("{:>23}", "overloaded"),
            None => format!("{:>23}", "-"),
        };
        let s = match &r.simulation {
            Some(f) => format!(
                "{:>6} {:>7} {:>7} {:>8}",
                pct(f.service_level()),
                secs(f.asa()),
                pct(f.abandoned_share()),
                pct(f.overflow_share() + f.callback_share())
            ),
            None => format!("{:>31}", "-"),
        };
        let _ = writeln!(out, "{:>6}  {occ:>5}  {c}  {a}  {s}", r.agents);
    }
    if q.callback.is_some() {
        let _ = writeln!(out, "(overflow counts callbacks taken too)");
    }
    let _ = writeln!(out);
    let lambda = plan.calls_per_hour.value / 3600.0;
    let target = plan.target_wait.value.as_secs_f64();
    let share = plan.target_share.value;
    let c_need = erlang::agents_for(share, MAX_AGENTS_SEARCHED, |n| {
        erlang::erlang_c_figures(n, lambda, work.as_secs_f64(), target)
    });
    let mut needs = vec![format!(
        "{} agents by Erlang C",
        c_need.map_or(format!("more than {MAX_AGENTS_SEARCHED}"), |n| n
            .to_string())
    )];
    if let Some(p) = &plan.patience {
        let a_need = erlang::agents_for(share, MAX_AGENTS_SEARCHED, |n| {
            erlang::erlang_a_figures(n, lambda, work.as_secs_f64(), p.value.as_secs_f64(), target)
        });
        needs.push(format!(
            "{} by Erlang A",
            a_need.map_or(format!("more than {MAX_AGENTS_SEARCHED}"), |n| n
                .to_string())
        ));
    }
    if plan.sim_calls > 0 {
        let sim_need = rows
            .iter()
            .find(|r| r.simulation.is_some_and(|s| s.service_level() >= share))
            .map(|r| r.agents);
        needs.push(match sim_need {
            Some(n) => format!("{n} in the simulation"),
            None => format!("more than {} in the simulation", plan.agents.1),
        });
    }
    let _ = writeln!(
        out,
        "{:.0}% in {} needs {}",
        share * 100.0,
        DisplayDuration(plan.target_wait.value),
        needs.join(", ")
    );
    out
}

fn round_s(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs() + u64::from(d.subsec_millis() >= 500))
}

/// Runs `hotline capacity`: the history from the records store the configuration names
/// (when records are on), the plan, the models, the text. `now_ms` is what `--since`
/// counts back from; `t0` starts the simulation's clock.
pub fn run(
    config: &Config,
    args: &CapacityArgs,
    now_ms: i64,
    t0: Instant,
) -> Result<String, CapacityError> {
    if args.sim_calls > MAX_SIM_CALLS {
        return Err(CapacityError::SimCalls(args.sim_calls));
    }
    let offer_after = config
        .queues
        .get(&args.queue)
        .and_then(|q| q.callback.as_ref())
        .map(|c| c.offer_after_wait);
    let history = match &config.records {
        Some(records) => {
            let since = crate::records::listing::parse_time(&args.since, now_ms)?;
            let mut store = crate::records::open_store(&records.store)?;
            let (calls, events) = store.records_between(since, now_ms)?;
            Some(history_of(&calls, &events, &args.queue, offer_after))
        }
        None => None,
    };
    let plan = plan(config, args, history.as_ref(), &args.since)?;
    let rows = compute(&plan, t0)?;
    Ok(render(&plan, &rows))
}

/// Reads the history of `queue` from the records of a period.
pub fn history_of(
    records: &[CallRecord],
    events: &[CallEvent],
    queue: &str,
    offer_after: Option<Duration>,
) -> History {
    // Events of calls in the period only (a store may hand over more).
    let ids: BTreeSet<&str> = records.iter().map(|r| r.call_id.as_str()).collect();
    let events: Vec<CallEvent> = events
        .iter()
        .filter(|e| ids.contains(e.call_id.as_str()))
        .cloned()
        .collect();
    History::of(&events, queue, offer_after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(call: &str, at_ms: i64, kind: &str, detail: serde_json::Value) -> CallEvent {
        CallEvent {
            call_id: call.into(),
            seq: 0,
            at_ms,
            kind: kind.into(),
            detail,
        }
    }

    #[test]
    fn flags_parse() {
        assert_eq!(parse_agents("12").unwrap(), (12, 12));
        assert_eq!(parse_agents("8..16").unwrap(), (8, 16));
        assert_eq!(parse_agents("8..=16").unwrap(), (8, 16));
        assert!(parse_agents("16..8").is_err());
        assert!(parse_agents("0").is_err());
        assert!(parse_agents("1..500").is_err());
        let (s, w) = parse_target("80/20s").unwrap();
        assert!((s - 0.8).abs() < 1e-12 && w == Duration::from_secs(20));
        assert!(parse_target("90%/1m").is_ok());
        assert!(parse_target("80").is_err());
        assert!(parse_target("180/20s").is_err());
    }

    #[test]
    fn history_counts_the_queue_only() {
        let q = |kind, detail| ev("a", 3_600_000 * 5 + 10, kind, detail);
        let events = vec![
            q("queue_joined", json!({"queue": "support"})),
            q("queue_joined", json!({"queue": "sales"})),
            ev(
                "b",
                3_600_000 * 7,
                "queue_joined",
                json!({"queue": "support"}),
            ),
            q(
                "agent_ended",
                json!({"queue": "support", "talk_ms": 200_000, "hold_ms": 40_000}),
            ),
            q(
                "queue_left",
                json!({"queue": "support", "outcome": "agent", "wait_ms": 30_000}),
            ),
            q(
                "queue_left",
                json!({"queue": "support", "outcome": "caller_hung_up", "wait_ms": 60_000}),
            ),
            q(
                "queue_left",
                json!({"queue": "support", "outcome": "callback", "wait_ms": 45_000}),
            ),
        ];
        let h = History::of(&events, "support", Some(Duration::from_secs(40)));
        assert_eq!(
            h,
            History {
                joined: 2,
                busy_hours: 2,
                handled: 1,
                handle_ms: 240_000,
                left: 3,
                wait_ms: 135_000,
                abandoned: 1,
                callbacks: 1,
                waited_past_offer: 2,
            }
        );
    }
}
