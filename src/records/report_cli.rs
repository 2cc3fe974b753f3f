//! The report as people ask for it: `hotline report [--since 24h|7d|DATE] [--until ...]
//! [--flow F] [--queue Q] [--format table|csv|json]` and the admin's `GET /reports?since=...`.
//!
//! Owns the request (its words, their defaults, reading `24h` or a date into milliseconds),
//! the [`RecordSource`] the period's records are read from, and the choice of rendering. It
//! must not compute a figure (the core's `report` does) nor know how records are stored:
//! the store is one `RecordSource`, [`MemorySource`] another.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use serde::Deserialize;

use hotline_core::flow::duration::parse_duration;
use hotline_core::report::{self, Report, ReportParams};

use super::{CallEvent, CallRecord};

/// Why a source could not hand the records over (the store's own error, boxed).
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// Where a report's records come from: the records store, or records in memory.
pub trait RecordSource {
    /// The calls started in `[since_ms, until_ms)` and all their events.
    fn records_between(
        &mut self,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<(Vec<CallRecord>, Vec<CallEvent>), SourceError>;
}

/// The records store the configuration names is where reports read from.
impl RecordSource for Box<dyn super::store::Store> {
    fn records_between(
        &mut self,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<(Vec<CallRecord>, Vec<CallEvent>), SourceError> {
        super::store::Store::records_between(self.as_mut(), since_ms, until_ms).map_err(Into::into)
    }
}

/// Records held in memory (tests, and records read from elsewhere).
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    pub records: Vec<CallRecord>,
    pub events: Vec<CallEvent>,
}

impl RecordSource for MemorySource {
    fn records_between(
        &mut self,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<(Vec<CallRecord>, Vec<CallEvent>), SourceError> {
        let records: Vec<CallRecord> = self
            .records
            .iter()
            .filter(|r| r.started_ms >= since_ms && r.started_ms < until_ms)
            .cloned()
            .collect();
        let events = self
            .events
            .iter()
            .filter(|e| records.iter().any(|r| r.call_id == e.call_id))
            .cloned()
            .collect();
        Ok((records, events))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    /// Aligned tables for a terminal.
    Table,
    /// CSV: one table with --table, else every table, each after a `# NAME` line.
    Csv,
    /// The whole report as one JSON document.
    Json,
}

/// What is asked: the same words on the command line and in the admin's query string.
#[derive(Debug, Clone, Default, Deserialize, clap::Args, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    /// Calls started since: `24h`, `7d`, `2w`, `90m`, a date (`2026-11-01`, midnight in
    /// --time-zone), a local time (`2026-11-01T08:00`) or RFC 3339. Default: 24h.
    #[arg(long)]
    pub since: Option<String>,
    /// Calls started before this (same forms as --since; `2h` means two hours ago).
    /// Default: now.
    #[arg(long)]
    pub until: Option<String>,
    /// Only calls that started in this flow.
    #[arg(long)]
    pub flow: Option<String>,
    /// Only calls that went through this queue, and only its figures.
    #[arg(long)]
    pub queue: Option<String>,
    /// Default: table on the command line, json on the admin API.
    #[arg(long, value_enum)]
    pub format: Option<ReportFormat>,
    /// With --format csv: the one table to print (summary, outcomes, steps, reasons, tags,
    /// queues, agents, survey, repeat_callers, hours).
    #[arg(long)]
    pub table: Option<String>,
    /// The zone of the hours table and of dates without one (an IANA name). Default: UTC.
    #[arg(long)]
    pub time_zone: Option<String>,
    /// An abandon within this wait is a short abandon (default 5s).
    #[arg(long)]
    pub short_abandon: Option<String>,
    /// The service level counts calls answered within this wait (default 20s).
    #[arg(long)]
    pub service_level: Option<String>,
}

/// What a request could not be read as, or why its records could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(
        "{field}: expected 24h, 7d, 2w, 90m, a date like 2026-11-01 or a time like \
         2026-11-01T08:00, found '{found}'"
    )]
    Time { field: &'static str, found: String },
    #[error("the period is empty: since ({since}) is not before until ({until})")]
    EmptyPeriod { since: String, until: String },
    #[error("time zone: expected an IANA name like Europe/Paris, found '{0}'")]
    TimeZone(String),
    #[error("{field}: {source}")]
    Duration {
        field: &'static str,
        #[source]
        source: hotline_core::flow::duration::DurationError,
    },
    #[error("no table '{found}': the tables are {}", report::csv::NAMES.join(", "))]
    UnknownTable { found: String },
    #[error("--table goes with --format csv")]
    TableWithoutCsv,
    #[error("reading the records: {0}")]
    Source(#[source] SourceError),
}

impl ReportError {
    /// Whether the request was at fault (rather than the source).
    pub fn is_request(&self) -> bool {
        !matches!(self, ReportError::Source(_))
    }
}

/// A rendered report and the media type it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub content_type: &'static str,
    pub body: String,
}

/// The wall clock in Unix milliseconds: what `24h` counts back from.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The default period: the last day.
const DEFAULT_SINCE: &str = "24h";

/// The report's parameters; `now_ms` is what relative times count back from.
pub fn params(req: &ReportRequest, now_ms: i64) -> Result<ReportParams, ReportError> {
    let time_zone: Tz = match req.time_zone.as_deref() {
        None => Tz::UTC,
        Some(name) => name
            .parse()
            .map_err(|_| ReportError::TimeZone(name.to_owned()))?,
    };
    let since = req.since.as_deref().unwrap_or(DEFAULT_SINCE);
    let since_ms = parse_time("since", since, now_ms, time_zone)?;
    let until_ms = match req.until.as_deref() {
        None => now_ms,
        Some(u) => parse_time("until", u, now_ms, time_zone)?,
    };
    if since_ms >= until_ms {
        return Err(ReportError::EmptyPeriod {
            since: since.to_owned(),
            until: req.until.clone().unwrap_or_else(|| "now".to_owned()),
        });
    }
    let duration = |field: &'static str, text: Option<&str>, default| match text {
        None => Ok(default),
        Some(t) => parse_duration(t).map_err(|source| ReportError::Duration { field, source }),
    };
    Ok(ReportParams {
        since_ms: Some(since_ms),
        until_ms: Some(until_ms),
        flow: req.flow.clone(),
        queue: req.queue.clone(),
        short_abandon: duration(
            "short_abandon",
            req.short_abandon.as_deref(),
            report::DEFAULT_SHORT_ABANDON,
        )?,
        service_level: duration(
            "service_level",
            req.service_level.as_deref(),
            report::DEFAULT_SERVICE_LEVEL,
        )?,
        time_zone,
    })
}

/// Reads the period's records from `source`, computes the report and renders it in the
/// format asked for, or in `default_format`.
pub fn run(
    req: &ReportRequest,
    source: &mut dyn RecordSource,
    now_ms: i64,
    default_format: ReportFormat,
) -> Result<Rendered, ReportError> {
    let params = params(req, now_ms)?;
    let format = req.format.unwrap_or(default_format);
    if let Some(t) = &req.table {
        if format != ReportFormat::Csv {
            return Err(ReportError::TableWithoutCsv);
        }
        if !report::csv::NAMES.contains(&t.as_str()) {
            return Err(ReportError::UnknownTable { found: t.clone() });
        }
    }
    let (since, until) = (
        params.since_ms.unwrap_or(i64::MIN),
        params.until_ms.unwrap_or(i64::MAX),
    );
    let (records, events) = source
        .records_between(since, until)
        .map_err(ReportError::Source)?;
    let report = Report::compute(&records, &events, &params);
    Ok(render(&report, format, req.table.as_deref()))
}

fn render(report: &Report, format: ReportFormat, table: Option<&str>) -> Rendered {
    match format {
        ReportFormat::Json => Rendered {
            content_type: "application/json",
            // A report is plain data: serialising it cannot fail.
            body: serde_json::to_string_pretty(report).unwrap_or_default() + "\n",
        },
        ReportFormat::Table => Rendered {
            content_type: "text/plain; charset=utf-8",
            body: report::text::render(report),
        },
        ReportFormat::Csv => {
            let body = match table.and_then(|t| report::csv::table(report, t)) {
                Some(one) => one,
                None => report::csv::tables(report)
                    .into_iter()
                    .map(|(name, csv)| format!("# {name}\r\n{csv}"))
                    .collect::<Vec<_>>()
                    .join("\r\n"),
            };
            Rendered {
                content_type: "text/csv; charset=utf-8",
                body,
            }
        }
    }
}

/// `24h`, `7d`, `2w`, `1h30m` before `now_ms`; a date (midnight in `tz`); a local date and
/// time in `tz`; or RFC 3339.
fn parse_time(field: &'static str, text: &str, now_ms: i64, tz: Tz) -> Result<i64, ReportError> {
    let fail = || ReportError::Time {
        field,
        found: text.to_owned(),
    };
    let t = text.trim();
    if let Some(ago) = ago_ms(t) {
        return Ok(now_ms.saturating_sub(ago));
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.timestamp_millis());
    }
    let local = if let Ok(date) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        date.and_hms_opt(0, 0, 0)
    } else {
        [
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%d %H:%M",
        ]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
    };
    // A local time skipped by a clock change does not exist; one repeated is taken the
    // first time it happens.
    local
        .and_then(|l| tz.from_local_datetime(&l).earliest())
        .map(|d| d.timestamp_millis())
        .ok_or_else(fail)
}

/// A span back from now in milliseconds: whole days (`7d`) or weeks (`2w`), or a
/// duration as flows write them (`24h`, `90m`, `1h30m`).
fn ago_ms(t: &str) -> Option<i64> {
    const DAY: i64 = 24 * 3600 * 1000;
    let whole = |unit: char, ms: i64| {
        t.strip_suffix(unit)
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<i64>().ok())
            .map(|n| n.saturating_mul(ms))
    };
    whole('d', DAY).or_else(|| whole('w', 7 * DAY)).or_else(|| {
        let d = parse_duration(t).ok()?;
        i64::try_from(d.as_millis()).ok()
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::records::{CallKind, CallOutcome};

    const HOUR: i64 = 3600 * 1000;

    fn now() -> i64 {
        chrono::Utc
            .with_ymd_and_hms(2026, 11, 10, 12, 0, 0)
            .unwrap()
            .timestamp_millis()
    }

    /// A one-minute inbound call that ended with `outcome` (also the admin API's tests').
    pub(crate) fn record(id: &str, started_ms: i64, outcome: CallOutcome) -> CallRecord {
        CallRecord {
            call_id: id.to_owned(),
            kind: CallKind::Inbound,
            caller: "555".to_owned(),
            dialed: "100".to_owned(),
            started_ms,
            answered_ms: Some(started_ms),
            ended_ms: Some(started_ms + 60_000),
            flow: "main".to_owned(),
            flow_version: "1".to_owned(),
            language: "en".to_owned(),
            outcome: Some(outcome),
            hung_up_by: None,
            last_step: None,
            reason: None,
            tags: vec![],
            queue: None,
            agent: None,
            wait_ms: None,
            talk_ms: None,
            survey: vec![],
            recordings: vec![],
        }
    }

    /// Three calls in the last day, one two days ago, one a week and a half ago.
    pub(crate) fn source() -> MemorySource {
        let n = now();
        MemorySource {
            records: vec![
                record("a", n - HOUR, CallOutcome::SelfService),
                record("b", n - 2 * HOUR, CallOutcome::SelfService),
                record("c", n - 3 * HOUR, CallOutcome::AbandonedInMenu),
                record("d", n - 48 * HOUR, CallOutcome::Agent),
                record("e", n - 250 * HOUR, CallOutcome::Agent),
            ],
            events: vec![],
        }
    }

    fn req(since: Option<&str>, until: Option<&str>) -> ReportRequest {
        ReportRequest {
            since: since.map(str::to_owned),
            until: until.map(str::to_owned),
            ..ReportRequest::default()
        }
    }

    fn json(req: &ReportRequest) -> serde_json::Value {
        let out = run(req, &mut source(), now(), ReportFormat::Json).unwrap();
        assert_eq!(out.content_type, "application/json");
        serde_json::from_str(&out.body).unwrap()
    }

    #[test]
    fn relative_and_absolute_periods() {
        // Default: the last 24 h holds a, b, c.
        assert_eq!(json(&req(None, None))["calls"], 3);
        assert_eq!(json(&req(Some("7d"), None))["calls"], 4);
        assert_eq!(json(&req(Some("2w"), None))["calls"], 5);
        assert_eq!(json(&req(Some("90m"), None))["calls"], 1);
        // From 2 days ago to 2 hours ago: b (exactly 2 h ago is the end: out), c, d.
        assert_eq!(json(&req(Some("2d"), Some("2h")))["calls"], 2);
        // Dates are midnight in the zone: 9 November 00:00 UTC to now holds a, b, c.
        let v = json(&req(Some("2026-11-09"), None));
        assert_eq!(v["calls"], 3);
        assert_eq!(v["outcomes"]["self_service"], 2);
        assert_eq!(
            v["period"]["since_ms"],
            chrono::Utc
                .with_ymd_and_hms(2026, 11, 9, 0, 0, 0)
                .unwrap()
                .timestamp_millis()
        );
        // 10 November 10:30 in Paris is 09:30 UTC: a (11:00) and b (10:00) only.
        let mut r = req(Some("2026-11-10T10:30"), None);
        r.time_zone = Some("Europe/Paris".to_owned());
        assert_eq!(json(&r)["calls"], 2);
        assert_eq!(json(&req(Some("2026-11-10T09:30:00Z"), None))["calls"], 2);
    }

    #[test]
    fn bad_requests_are_refused_with_what_was_expected() {
        let err = |r: ReportRequest| run(&r, &mut source(), now(), ReportFormat::Json).unwrap_err();
        let e = err(req(Some("yesterday"), None));
        assert!(e.is_request());
        assert!(e.to_string().contains("found 'yesterday'"), "{e}");
        assert!(matches!(
            err(req(Some("1h"), Some("2h"))),
            ReportError::EmptyPeriod { .. }
        ));
        let mut r = req(None, None);
        r.time_zone = Some("Mars/Olympus".to_owned());
        assert!(matches!(err(r), ReportError::TimeZone(_)));
        let mut r = req(None, None);
        r.format = Some(ReportFormat::Csv);
        r.table = Some("nope".to_owned());
        assert!(err(r).to_string().contains("repeat_callers"));
        let mut r = req(None, None);
        r.table = Some("queues".to_owned());
        assert!(matches!(err(r), ReportError::TableWithoutCsv));
        let mut r = req(None, None);
        r.service_level = Some("20".to_owned());
        assert!(matches!(err(r), ReportError::Duration { .. }));
    }

    #[test]
    fn a_failing_source_is_not_the_request_s_fault() {
        struct Down;
        impl RecordSource for Down {
            fn records_between(
                &mut self,
                _: i64,
                _: i64,
            ) -> Result<(Vec<CallRecord>, Vec<CallEvent>), SourceError> {
                Err("database is locked".into())
            }
        }
        let e = run(&req(None, None), &mut Down, now(), ReportFormat::Json).unwrap_err();
        assert!(!e.is_request());
        assert!(e.to_string().contains("database is locked"));
    }

    #[test]
    fn formats_table_csv_and_one_csv_table() {
        let mut r = req(Some("7d"), None);
        let table = run(&r, &mut source(), now(), ReportFormat::Table).unwrap();
        assert!(table.content_type.starts_with("text/plain"));
        assert!(table.body.contains("OUTCOMES"));
        r.format = Some(ReportFormat::Csv);
        let all = run(&r, &mut source(), now(), ReportFormat::Table).unwrap();
        assert!(all.content_type.starts_with("text/csv"));
        assert!(all.body.starts_with("# summary\r\n"));
        assert!(all.body.contains("\r\n# hours\r\n"));
        r.table = Some("outcomes".to_owned());
        let one = run(&r, &mut source(), now(), ReportFormat::Table).unwrap();
        assert!(
            one.body
                .starts_with("outcome,calls\r\nself_service,2\r\nagent,1\r\n")
        );
        // Short abandon and service level reach the report.
        r.format = Some(ReportFormat::Json);
        r.table = None;
        r.service_level = Some("30s".to_owned());
        assert_eq!(json(&r)["period"]["service_level_seconds"], 30.0);
    }
}
