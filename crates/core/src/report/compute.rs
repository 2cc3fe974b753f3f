//! The report as a whole: what it covers and every table, computed from call records.
//!
//! Owns the assembling of the tables in one pass over the selected calls. It must not
//! format anything (json, csv and text do) nor read records from anywhere: it is handed
//! them.

use serde::Serialize;

use crate::record::{CallEvent, CallKind, CallRecord};

use super::agents::{self, AgentFigures};
use super::handling::{self, Handling};
use super::hours::{self, HourFigures};
use super::outcomes::{self, OutcomeCounts};
use super::params::ReportParams;
use super::queues::{self, QueueFigures};
use super::repeat::{self, RepeatCallers};
use super::select::{self, seconds};
use super::steps::{self, StepFigures};
use super::survey::{self, SurveyFigures};
use super::tags::{self, TagFigures};

/// The contact-centre report. Rates are fractions (0 to 1); a rate or mean with nothing
/// to divide by is `None` (`null` in JSON), never 0.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Report {
    pub period: Period,
    /// Every call that started in the period (and passed the filters).
    pub calls: u64,
    /// Calls without an outcome yet: in progress when the records were read.
    pub in_progress: u64,
    pub outcomes: OutcomeCounts,
    /// `self_service` calls over the calls that ended.
    pub self_service_rate: Option<f64>,
    pub steps: Vec<StepFigures>,
    pub tags: TagFigures,
    pub queues: Vec<QueueFigures>,
    pub agents: Vec<AgentFigures>,
    pub survey: SurveyFigures,
    pub repeat_callers: RepeatCallers,
    pub hours: Vec<HourFigures>,
}

/// What the report covers and the thresholds it used.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Period {
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub flow: Option<String>,
    pub queue: Option<String>,
    pub time_zone: String,
    pub short_abandon_seconds: f64,
    pub service_level_seconds: f64,
}

impl Report {
    pub fn compute(records: &[CallRecord], events: &[CallEvent], params: &ReportParams) -> Report {
        // A call back the caller never answered is a record of its own but no call: it
        // counts only in its queue's `callbacks_unanswered`.
        let (unanswered, calls): (Vec<_>, Vec<_>) = select::select(records, events, params)
            .into_iter()
            .partition(|c| {
                c.record.kind == CallKind::Callback
                    && c.record.answered_ms.is_none()
                    && c.record.outcome.is_some()
            });
        let handling: Vec<Handling> = calls.iter().map(handling::read).collect();
        let (outcomes, in_progress) = outcomes::count(&calls);
        Report {
            period: Period {
                since_ms: params.since_ms,
                until_ms: params.until_ms,
                flow: params.flow.clone(),
                queue: params.queue.clone(),
                time_zone: params.time_zone.name().to_owned(),
                short_abandon_seconds: seconds_of(params.short_abandon),
                service_level_seconds: seconds_of(params.service_level),
            },
            calls: calls.len() as u64,
            in_progress,
            self_service_rate: outcomes::self_service_rate(&outcomes),
            outcomes,
            steps: steps::compute(&calls),
            tags: tags::compute(&calls),
            queues: queues::compute(&calls, &handling, &unanswered, params),
            agents: agents::compute(&handling, params),
            survey: survey::compute(&calls, params),
            repeat_callers: repeat::compute(&calls),
            hours: hours::compute(&calls, params),
        }
    }
}

fn seconds_of(d: std::time::Duration) -> f64 {
    seconds(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
