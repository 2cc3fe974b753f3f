//! `hotline records`: the stored calls as a table or JSON, and one call's events in order.
//!
//! Owns the command's time arguments (`24h`, `7d`, a date) and its output. It reads the
//! store through the [`Store`] interface only and never writes records.

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use super::store::{CallFilter, Store, StoreError};
use super::{CallEvent, CallRecord};

/// How `hotline records` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ListFormat {
    #[default]
    Table,
    Json,
}

/// A time argument that could not be read.
#[derive(Debug, thiserror::Error)]
#[error(
    "expected a time like 24h, 7d, 30m (that long ago), 2026-12-01 or 2026-12-01T08:30 (UTC), found '{0}'"
)]
pub struct TimeError(pub String);

/// `24h`, `7d`, `90m` (before `now_ms`), or a UTC date or date and time, as Unix ms.
pub fn parse_time(text: &str, now_ms: i64) -> Result<i64, TimeError> {
    let t = text.trim();
    let bad = || TimeError(text.to_owned());
    let unit_ms = match t.chars().last() {
        Some('d') => Some(86_400_000),
        Some('h') => Some(3_600_000),
        Some('m') => Some(60_000),
        _ => None,
    };
    if let Some(unit) = unit_ms {
        let n = &t[..t.len() - 1];
        if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
            let n: i64 = n.parse().map_err(|_| bad())?;
            return n
                .checked_mul(unit)
                .map(|ago| now_ms.saturating_sub(ago))
                .ok_or_else(bad);
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        let dt = d.and_hms_opt(0, 0, 0).ok_or_else(bad)?;
        return Ok(dt.and_utc().timestamp_millis());
    }
    for form in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(t, form) {
            return Ok(dt.and_utc().timestamp_millis());
        }
    }
    DateTime::parse_from_rfc3339(t)
        .map(|d| d.timestamp_millis())
        .map_err(|_| bad())
}

fn utc(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| ms.to_string())
}

fn seconds(ms: i64) -> String {
    format!("{:.1}", ms as f64 / 1000.0)
}

/// The calls `filter` selects, as `format` prints them.
pub fn list(
    store: &mut dyn Store,
    filter: &CallFilter,
    format: ListFormat,
) -> Result<String, StoreError> {
    let calls = store.calls(filter)?;
    Ok(match format {
        ListFormat::Json => json_lines(&calls),
        ListFormat::Table => table(&calls),
    })
}

fn json_lines<T: serde::Serialize>(items: &[T]) -> String {
    let mut out = serde_json::to_string_pretty(items).unwrap_or_else(|_| "[]".to_owned());
    out.push('\n');
    out
}

/// One line per call, oldest first, columns aligned.
pub fn table(calls: &[CallRecord]) -> String {
    let header = [
        "started (UTC)",
        "call id",
        "caller",
        "dialed",
        "flow",
        "outcome",
        "secs",
        "queue",
        "agent",
        "reason",
    ];
    let mut rows: Vec<[String; 10]> = vec![header.map(str::to_owned)];
    for c in calls {
        rows.push([
            utc(c.started_ms),
            c.call_id.clone(),
            c.caller.clone(),
            c.dialed.clone(),
            c.flow.clone(),
            c.outcome
                .map_or_else(|| "(in progress)".to_owned(), |o| o.to_string()),
            c.ended_ms
                .map(|e| seconds(e - c.started_ms))
                .unwrap_or_default(),
            c.queue.clone().unwrap_or_default(),
            c.agent.clone().unwrap_or_default(),
            c.reason.clone().unwrap_or_default(),
        ]);
    }
    let mut widths = [0usize; 10];
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    let _ = writeln!(out, "{} call(s)", calls.len());
    out
}

/// One call: its row and its events in order. None if the store has no such call.
pub fn show(
    store: &mut dyn Store,
    call_id: &str,
    format: ListFormat,
) -> Result<Option<String>, StoreError> {
    let Some(call) = store.call(call_id)? else {
        return Ok(None);
    };
    let events = store.events(call_id)?;
    Ok(Some(match format {
        ListFormat::Json => {
            let doc = super::CallDocument {
                call: &call,
                events: &events,
            };
            let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
            s.push('\n');
            s
        }
        ListFormat::Table => {
            let mut out = table(std::slice::from_ref(&call));
            out.push('\n');
            out.push_str(&events_table(&call, &events));
            out
        }
    }))
}

/// The events with their time since the call started.
pub fn events_table(call: &CallRecord, events: &[CallEvent]) -> String {
    let mut out = String::new();
    for e in events {
        let _ = writeln!(
            out,
            "{:>4}  +{:>8}s  {:<18}  {}",
            e.seq,
            seconds(e.at_ms - call.started_ms),
            e.kind,
            e.detail
        );
    }
    let _ = writeln!(out, "{} event(s)", events.len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_relative_or_as_utc_dates() {
        let now = 1_764_000_000_000;
        assert_eq!(parse_time("24h", now).unwrap(), now - 86_400_000);
        assert_eq!(parse_time("7d", now).unwrap(), now - 7 * 86_400_000);
        assert_eq!(parse_time("30m", now).unwrap(), now - 1_800_000);
        assert_eq!(parse_time("1970-01-02", now).unwrap(), 86_400_000);
        assert_eq!(parse_time("1970-01-01T01:00", now).unwrap(), 3_600_000);
        assert_eq!(parse_time("1970-01-01T00:00:01Z", now).unwrap(), 1_000);
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_time("h", now).is_err());
    }
}
