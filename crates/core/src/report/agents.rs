//! The agents' figures: calls handled, talk, hold and wrap-up, handling time and
//! occupancy.
//!
//! Owns the per-agent sums over the segments and no-answers `handling` read. Records hold
//! no logged-in or idle time, so occupancy is measured over the agent's span of calls
//! (docs/reports.md says why).

use std::collections::BTreeMap;

use serde::Serialize;

use super::handling::Handling;
use super::params::ReportParams;
use super::queues::mean_seconds;
use super::select::seconds;

#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct AgentFigures {
    pub agent: String,
    /// Talk segments: calls answered, callback calls included.
    pub calls_handled: u64,
    pub talk_seconds: f64,
    /// `None` when no event of the agent's calls carried it.
    pub hold_seconds: Option<f64>,
    pub wrap_up_seconds: Option<f64>,
    /// Mean of talk + hold + wrap-up per call handled.
    pub aht_seconds: Option<f64>,
    /// Handling time over the span from the agent's first answer to the end of their last
    /// call in the report: the share of that span spent on calls.
    pub occupancy: Option<f64>,
    /// Times the agent rang for a caller and did not take the call (ring time out, busy,
    /// declined, unreachable).
    pub no_answers: u64,
}

#[derive(Default)]
struct Sums {
    calls: u64,
    talk_ms: u64,
    hold_ms: Option<u64>,
    wrap_up_ms: Option<u64>,
    first_ms: Option<i64>,
    last_ms: Option<i64>,
    no_answers: u64,
}

pub fn compute(handling: &[Handling], params: &ReportParams) -> Vec<AgentFigures> {
    let mut agents: BTreeMap<&str, Sums> = BTreeMap::new();
    for seg in handling.iter().flat_map(|h| &h.segments) {
        if seg.queue.as_deref().is_some_and(|q| !params.wants_queue(q)) {
            continue;
        }
        let s = agents.entry(&seg.agent).or_default();
        s.calls += 1;
        s.talk_ms = s.talk_ms.saturating_add(seg.talk_ms);
        s.hold_ms = add(s.hold_ms, seg.hold_ms);
        s.wrap_up_ms = add(s.wrap_up_ms, seg.wrap_up_ms);
        s.first_ms = Some(
            s.first_ms
                .map_or(seg.answered_ms, |f| f.min(seg.answered_ms)),
        );
        s.last_ms = Some(s.last_ms.map_or(seg.ended_ms(), |l| l.max(seg.ended_ms())));
    }
    for n in handling.iter().flat_map(|h| &h.no_answers) {
        if n.queue.as_deref().is_some_and(|q| !params.wants_queue(q)) {
            continue;
        }
        agents.entry(&n.agent).or_default().no_answers += 1;
    }
    agents
        .into_iter()
        .map(|(agent, s)| {
            let handle_ms = s
                .talk_ms
                .saturating_add(s.hold_ms.unwrap_or(0))
                .saturating_add(s.wrap_up_ms.unwrap_or(0));
            let span_ms = match (s.first_ms, s.last_ms) {
                (Some(f), Some(l)) => u64::try_from(l.saturating_sub(f)).unwrap_or(0),
                _ => 0,
            };
            AgentFigures {
                agent: agent.to_owned(),
                calls_handled: s.calls,
                talk_seconds: seconds(s.talk_ms),
                hold_seconds: s.hold_ms.map(seconds),
                wrap_up_seconds: s.wrap_up_ms.map(seconds),
                aht_seconds: mean_seconds(handle_ms, s.calls),
                occupancy: (span_ms > 0).then(|| (handle_ms as f64 / span_ms as f64).min(1.0)),
                no_answers: s.no_answers,
            }
        })
        .collect()
}

fn add(sum: Option<u64>, part: Option<u64>) -> Option<u64> {
    match (sum, part) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
    }
}
