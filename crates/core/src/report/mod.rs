//! The contact-centre report: how many callers solved their problem in self-service, where
//! they gave up in the menu, why they call, how long they waited, what they thought, and
//! who called again, computed from call records and events.
//!
//! Owns the figures' definitions (docs/reports.md) and their renderings as JSON (serde),
//! CSV and a text table. Pure: it is handed records and the period in milliseconds, reads
//! no clock and no store. It must not change what a record means: `record` owns that.

mod agents;
mod compute;
pub mod csv;
mod handling;
mod hours;
mod outcomes;
mod params;
mod queues;
mod repeat;
mod select;
mod steps;
mod survey;
mod tables;
mod tags;
pub mod text;

#[cfg(test)]
mod tests;

pub use agents::AgentFigures;
pub use compute::{Period, Report};
pub use hours::HourFigures;
pub use outcomes::OutcomeCounts;
pub use params::{DEFAULT_SERVICE_LEVEL, DEFAULT_SHORT_ABANDON, ReportParams};
pub use queues::QueueFigures;
pub use repeat::{ReasonRepeats, RepeatCallers, Repeats};
pub use steps::StepFigures;
pub use survey::{GroupScores, Scores, SurveyFigures};
pub use tags::{ReasonCount, TagCount, TagFigures};
