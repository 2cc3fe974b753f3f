//! What a report is asked for: the period, the filters and the thresholds the contact
//! centre measures against.
//!
//! Owns the parameters and their defaults. It must not read a clock: "the last 24 hours"
//! is turned into milliseconds by whoever knows the time.

use std::time::Duration;

use chrono_tz::Tz;

/// The industry's usual threshold: a caller who hangs up within 5 s probably dialled by
/// mistake, and is not counted as a caller the centre failed.
pub const DEFAULT_SHORT_ABANDON: Duration = Duration::from_secs(5);
/// The usual service-level target (the "80/20" rule's 20 seconds).
pub const DEFAULT_SERVICE_LEVEL: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, PartialEq)]
pub struct ReportParams {
    /// Calls that started at or after this (Unix milliseconds).
    pub since_ms: Option<i64>,
    /// Calls that started before this (Unix milliseconds).
    pub until_ms: Option<i64>,
    /// Only calls that started in this flow.
    pub flow: Option<String>,
    /// Only calls that went through this queue, and only this queue's figures.
    pub queue: Option<String>,
    /// An abandon within this wait is a short abandon.
    pub short_abandon: Duration,
    /// The service level counts calls answered within this wait.
    pub service_level: Duration,
    /// The zone the hour-of-day table is read in.
    pub time_zone: Tz,
}

impl Default for ReportParams {
    fn default() -> Self {
        ReportParams {
            since_ms: None,
            until_ms: None,
            flow: None,
            queue: None,
            short_abandon: DEFAULT_SHORT_ABANDON,
            service_level: DEFAULT_SERVICE_LEVEL,
            time_zone: Tz::UTC,
        }
    }
}

impl ReportParams {
    /// Whether a queue's figures belong in the report.
    pub fn wants_queue(&self, queue: &str) -> bool {
        self.queue.as_deref().is_none_or(|q| q == queue)
    }
}
