//! Which calls a report covers, each with its events in order, and the reading of an
//! event's fields.
//!
//! Owns the filters (period, flow, queue) and the tidying of what a store hands over: a
//! call's row may come twice (open, then whole) and an event may be repeated by an
//! idempotent write. It must not compute any figure.

use std::collections::HashMap;

use crate::record::{CallEvent, CallRecord};

use super::params::ReportParams;

/// One call the report covers.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    pub record: &'a CallRecord,
    /// The call's events, by `seq`, each once.
    pub events: Vec<&'a CallEvent>,
}

impl Call<'_> {
    /// The queues the call met, in any event or its row.
    fn touches_queue(&self, queue: &str) -> bool {
        self.record.queue.as_deref() == Some(queue)
            || self.events.iter().any(|e| text(e, "queue") == Some(queue))
    }

    /// When the call ended, or its last known moment if it has not.
    pub fn end_ms(&self) -> i64 {
        self.record.ended_ms.unwrap_or_else(|| {
            self.events.last().map_or(self.record.started_ms, |e| {
                e.at_ms.max(self.record.started_ms)
            })
        })
    }
}

/// The calls `params` asks for, ordered by start (then call id, so the order never depends
/// on the store's).
pub fn select<'a>(
    records: &'a [CallRecord],
    events: &'a [CallEvent],
    params: &ReportParams,
) -> Vec<Call<'a>> {
    // The whole row wins over the open one written when the call started.
    let mut rows: HashMap<&str, &CallRecord> = HashMap::new();
    for r in records {
        rows.entry(r.call_id.as_str())
            .and_modify(|kept| {
                if kept.outcome.is_none() || r.outcome.is_some() {
                    *kept = r;
                }
            })
            .or_insert(r);
    }
    let mut by_call: HashMap<&str, Vec<&CallEvent>> = HashMap::new();
    for e in events {
        if rows.contains_key(e.call_id.as_str()) {
            by_call.entry(e.call_id.as_str()).or_default().push(e);
        }
    }
    let mut calls: Vec<Call<'a>> = rows
        .into_values()
        .filter(|r| params.since_ms.is_none_or(|s| r.started_ms >= s))
        .filter(|r| params.until_ms.is_none_or(|u| r.started_ms < u))
        .filter(|r| params.flow.as_deref().is_none_or(|f| r.flow == f))
        .map(|record| {
            let mut events = by_call.remove(record.call_id.as_str()).unwrap_or_default();
            events.sort_by_key(|e| e.seq);
            events.dedup_by_key(|e| e.seq);
            Call { record, events }
        })
        .filter(|c| params.queue.as_deref().is_none_or(|q| c.touches_queue(q)))
        .collect();
    calls.sort_by(|a, b| {
        (a.record.started_ms, &a.record.call_id).cmp(&(b.record.started_ms, &b.record.call_id))
    });
    calls
}

/// A text field of an event's detail.
pub fn text<'e>(event: &'e CallEvent, field: &str) -> Option<&'e str> {
    event.detail.get(field)?.as_str()
}

/// A count or a number of milliseconds in an event's detail; a negative or non-numeric
/// value is treated as absent.
pub fn number(event: &CallEvent, field: &str) -> Option<u64> {
    let v = event.detail.get(field)?;
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f.round() as u64)
    })
}

/// Milliseconds as seconds, for the figures.
pub fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// `part / whole`, or `None` when there is nothing to divide.
pub fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}
