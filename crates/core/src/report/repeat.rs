//! Callers who called again: the first-contact-resolution proxy. A call "is repeated"
//! when the same caller calls the hotline again within 24 hours (or 7 days) of its start.
//!
//! Owns the matching of a caller's calls. Only calls a caller placed count (not the
//! hotline's callback calls), and only callers with a number (an empty or anonymous caller
//! is not one person). It looks only at the calls the report covers: a repeat after the
//! period's end is not seen.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::record::CallKind;

use super::select::{Call, ratio};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
const WEEK_MS: i64 = 7 * DAY_MS;

#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct RepeatCallers {
    /// Distinct callers with a number.
    pub callers: u64,
    /// Their calls.
    pub calls: u64,
    pub within_24h: Repeats,
    pub within_7d: Repeats,
    /// By the reason of the call that was repeated; calls without a reason are left out.
    pub reasons: Vec<ReasonRepeats>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Repeats {
    /// Callers who called again within the window at least once.
    pub callers: u64,
    /// Calls followed by another call from the same caller within the window.
    pub calls: u64,
    /// `calls` over all calls with a number.
    pub rate: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ReasonRepeats {
    pub reason: String,
    pub calls: u64,
    pub repeated_24h: u64,
    pub repeated_7d: u64,
    pub rate_24h: Option<f64>,
    pub rate_7d: Option<f64>,
}

pub fn compute(calls: &[Call<'_>]) -> RepeatCallers {
    // Calls come ordered by start, so each caller's list is too.
    let mut by_caller: HashMap<&str, Vec<&Call<'_>>> = HashMap::new();
    for c in calls.iter().filter(|c| counts(c)) {
        by_caller.entry(&c.record.caller).or_default().push(c);
    }
    let mut out = RepeatCallers {
        callers: by_caller.len() as u64,
        ..RepeatCallers::default()
    };
    let mut reasons: BTreeMap<&str, ReasonRepeats> = BTreeMap::new();
    for list in by_caller.values() {
        let (mut day, mut week) = (false, false);
        for (i, c) in list.iter().enumerate() {
            let gap = list
                .get(i + 1)
                .map(|n| n.record.started_ms.saturating_sub(c.record.started_ms));
            let in_day = gap.is_some_and(|g| g <= DAY_MS);
            let in_week = gap.is_some_and(|g| g <= WEEK_MS);
            out.calls += 1;
            out.within_24h.calls += u64::from(in_day);
            out.within_7d.calls += u64::from(in_week);
            day |= in_day;
            week |= in_week;
            if let Some(reason) = c.record.reason.as_deref() {
                let r = reasons.entry(reason).or_default();
                r.calls += 1;
                r.repeated_24h += u64::from(in_day);
                r.repeated_7d += u64::from(in_week);
            }
        }
        out.within_24h.callers += u64::from(day);
        out.within_7d.callers += u64::from(week);
    }
    out.within_24h.rate = ratio(out.within_24h.calls, out.calls);
    out.within_7d.rate = ratio(out.within_7d.calls, out.calls);
    out.reasons = reasons
        .into_iter()
        .map(|(reason, mut r)| {
            r.reason = reason.to_owned();
            r.rate_24h = ratio(r.repeated_24h, r.calls);
            r.rate_7d = ratio(r.repeated_7d, r.calls);
            r
        })
        .collect();
    out
}

/// Whether a call is a person calling in.
fn counts(c: &Call<'_>) -> bool {
    let caller = c.record.caller.trim();
    c.record.kind == CallKind::Inbound
        && !caller.is_empty()
        && !caller.eq_ignore_ascii_case("anonymous")
}
