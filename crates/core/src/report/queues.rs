//! The queues' figures as a contact centre reads them: offered, answered, abandoned (short
//! abandons apart), the service level, speed of answer, handling time, the longest wait and
//! the callbacks.
//!
//! Owns the definitions (see docs/reports.md). It reads waits and segments from
//! `handling`; it must not walk events itself.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::record::{CallKind, CallOutcome};

use super::handling::{Handling, WaitEnd};
use super::params::ReportParams;
use super::select::{Call, ratio, seconds, text};

#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct QueueFigures {
    pub queue: String,
    /// Waits that began in the queue (a caller's callback call is not offered again).
    pub offered: u64,
    pub answered: u64,
    /// Answered within `service_level_seconds` of joining.
    pub answered_in_time: u64,
    /// Hung up (or left with a key) after waiting longer than `short_abandon`.
    pub abandoned: u64,
    /// Hung up (or left with a key) within `short_abandon`: not in the abandon rate.
    pub short_abandoned: u64,
    /// Sent on by the queue: maximum wait, full, no agents.
    pub overflowed: u64,
    /// Left the queue with a callback request.
    pub left_for_callback: u64,
    /// Waits cut because the engine stopped or, in a cluster, the caller's node died
    /// (the record's outcome is `interrupted`): reported apart, never abandoned.
    pub lost: u64,
    /// Waits that ended any other way (the queue failed, the call failed or was cut).
    pub failed: u64,
    /// Callers still waiting when the records were read.
    pub waiting: u64,
    /// `abandoned / (offered - short_abandoned)`.
    pub abandon_rate: Option<f64>,
    /// `answered_in_time / (answered + abandoned + overflowed)`.
    pub service_level: Option<f64>,
    /// Mean wait of the answered calls.
    pub asa_seconds: Option<f64>,
    /// Agent segments of the queue (callback calls included).
    pub handled: u64,
    /// Mean of talk + hold + wrap-up per handled segment, as far as the records know them.
    pub aht_seconds: Option<f64>,
    /// The longest wait, however it ended.
    pub longest_wait_seconds: Option<f64>,
    pub callbacks_requested: u64,
    /// Callback calls an agent answered.
    pub callbacks_completed: u64,
    /// Call-back attempts the caller did not answer (each a record of its own, kind
    /// `callback`, outcome `failed`; not counted among the calls).
    pub callbacks_unanswered: u64,
}

#[derive(Default)]
struct Sums {
    figures: QueueFigures,
    answered_wait_ms: u64,
    handle_ms: u64,
    longest_wait_ms: Option<u64>,
}

pub fn compute(
    calls: &[Call<'_>],
    handling: &[Handling],
    unanswered_callbacks: &[Call<'_>],
    params: &ReportParams,
) -> Vec<QueueFigures> {
    let mut queues: BTreeMap<&str, Sums> = BTreeMap::new();
    let short = millis(params.short_abandon);
    let in_time = millis(params.service_level);
    for (call, h) in calls.iter().zip(handling) {
        let callback_call = call.record.kind == CallKind::Callback;
        if !callback_call {
            for w in h.waits.iter().filter(|w| params.wants_queue(&w.queue)) {
                let s = queues.entry(&w.queue).or_default();
                let f = &mut s.figures;
                f.offered += 1;
                s.longest_wait_ms = s.longest_wait_ms.max(Some(w.wait_ms));
                match w.end {
                    WaitEnd::Answered => {
                        f.answered += 1;
                        if w.wait_ms <= in_time {
                            f.answered_in_time += 1;
                        }
                        s.answered_wait_ms = s.answered_wait_ms.saturating_add(w.wait_ms);
                    }
                    WaitEnd::Abandoned if w.wait_ms <= short => f.short_abandoned += 1,
                    WaitEnd::Abandoned => f.abandoned += 1,
                    WaitEnd::Overflowed => f.overflowed += 1,
                    WaitEnd::Callback => f.left_for_callback += 1,
                    WaitEnd::Lost => f.lost += 1,
                    WaitEnd::Failed => f.failed += 1,
                    WaitEnd::Waiting => f.waiting += 1,
                }
            }
            for q in h
                .callbacks_requested
                .iter()
                .filter(|q| params.wants_queue(q))
            {
                queues.entry(q).or_default().figures.callbacks_requested += 1;
            }
        }
        let mut completed: Vec<&str> = Vec::new();
        for seg in &h.segments {
            let Some(q) = seg.queue.as_deref().filter(|q| params.wants_queue(q)) else {
                continue;
            };
            let s = queues.entry(q).or_default();
            s.figures.handled += 1;
            s.handle_ms = s.handle_ms.saturating_add(seg.handle_ms());
            if callback_call && !completed.contains(&q) {
                completed.push(q);
            }
        }
        // A callback call's row may name its agent without the events saying so.
        if callback_call
            && completed.is_empty()
            && call.record.agent.is_some()
            && call.record.outcome == Some(CallOutcome::Agent)
            && let Some(q) = call
                .record
                .queue
                .as_deref()
                .filter(|q| params.wants_queue(q))
        {
            completed.push(q);
        }
        for q in completed {
            queues.entry(q).or_default().figures.callbacks_completed += 1;
        }
    }
    for c in unanswered_callbacks {
        let queue = c
            .events
            .iter()
            .find(|e| e.kind == "callback_placed")
            .and_then(|e| text(e, "queue"));
        if let Some(q) = queue.filter(|q| params.wants_queue(q)) {
            queues.entry(q).or_default().figures.callbacks_unanswered += 1;
        }
    }
    queues
        .into_iter()
        .map(|(name, s)| {
            let mut f = s.figures;
            f.queue = name.to_owned();
            f.abandon_rate = ratio(f.abandoned, f.offered - f.short_abandoned);
            f.service_level = ratio(f.answered_in_time, f.answered + f.abandoned + f.overflowed);
            f.asa_seconds = mean_seconds(s.answered_wait_ms, f.answered);
            f.aht_seconds = mean_seconds(s.handle_ms, f.handled);
            f.longest_wait_seconds = s.longest_wait_ms.map(seconds);
            f
        })
        .collect()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub fn mean_seconds(total_ms: u64, n: u64) -> Option<f64> {
    (n > 0).then(|| seconds(total_ms) / n as f64)
}
