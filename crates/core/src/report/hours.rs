//! Calls, answered and abandoned per hour of the day, in the report's time zone.
//!
//! Owns the hour a call belongs to: the local hour its start fell in. On the day clocks go
//! forward an hour has no calls; on the day they go back, one hour holds two hours' calls.

use chrono::{DateTime, Timelike};
use serde::Serialize;

use crate::record::CallOutcome;

use super::params::ReportParams;
use super::select::Call;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct HourFigures {
    /// 0 to 23, local time.
    pub hour: u32,
    pub calls: u64,
    /// Calls an agent answered.
    pub answered: u64,
    /// Calls that ended abandoned, in the menu or in a queue.
    pub abandoned: u64,
}

/// All 24 hours, in order, even when empty.
pub fn compute(calls: &[Call<'_>], params: &ReportParams) -> Vec<HourFigures> {
    let mut hours: Vec<HourFigures> = (0..24)
        .map(|hour| HourFigures {
            hour,
            ..HourFigures::default()
        })
        .collect();
    for c in calls {
        let Some(start) = DateTime::from_timestamp_millis(c.record.started_ms) else {
            continue;
        };
        let hour = start.with_timezone(&params.time_zone).hour() as usize;
        let Some(h) = hours.get_mut(hour) else {
            continue;
        };
        h.calls += 1;
        if c.record.agent.is_some() {
            h.answered += 1;
        }
        if matches!(
            c.record.outcome,
            Some(CallOutcome::AbandonedInMenu | CallOutcome::AbandonedInQueue)
        ) {
            h.abandoned += 1;
        }
    }
    hours
}
