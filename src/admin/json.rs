//! The admin API's request and response bodies, shared by the server side and the
//! `hotline check --impact` client. Field names are the API's contract: add fields,
//! never rename.

use std::collections::BTreeMap;
use std::time::SystemTime;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::flow::diagnostic::Diagnostic;
use crate::flow::impact::{Affected, CallPosition, StepDiff};

/// `GET /health`
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Health {
    /// `ok`, or `edits_refused` while the files on disk hold an edit the last reload
    /// refused (the engine serves the running version meanwhile).
    pub status: String,
    /// The running version (what new calls get).
    pub version: u64,
    /// Calls in progress.
    pub calls: usize,
    /// The refused edit: when, and its problems.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<RefusedInfo>,
}

/// An edit on disk the last reload refused.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RefusedInfo {
    /// Seconds since the Unix epoch.
    pub at: u64,
    pub errors: Vec<DiagnosticInfo>,
}

/// The body of every refusal and error the API answers (4xx, 5xx).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    /// What went wrong, and what to do about it where the API knows.
    pub error: String,
}

impl ErrorBody {
    pub fn new(error: impl Into<String>) -> Self {
        ErrorBody {
            error: error.into(),
        }
    }
}

/// `GET /calls`
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Calls {
    /// The running version; calls may be on older ones.
    pub version: u64,
    pub calls: Vec<CallInfo>,
}

/// One call in progress.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CallInfo {
    pub call_id: String,
    pub caller: String,
    pub dialed: String,
    /// The flow the route chose.
    pub flow: String,
    /// The version the call runs on to its end.
    pub version: u64,
    /// Where the call is now: the flow (differs from `flow` after a goto) and the step.
    pub current_flow: String,
    pub step: String,
    /// The fingerprint of the current step's definition in the call's version.
    pub fingerprint: String,
    /// RFC 3339.
    pub started_at: String,
    pub elapsed_seconds: f64,
}

impl CallInfo {
    pub fn position(&self) -> CallPosition {
        CallPosition {
            call_id: self.call_id.clone(),
            caller: self.caller.clone(),
            version: self.version,
            flow: self.current_flow.clone(),
            step: self.step.clone(),
            fingerprint: self.fingerprint.clone(),
        }
    }
}

/// `GET /agents`
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AgentList {
    pub agents: Vec<crate::queue::acd::AgentSnapshot>,
}

/// `GET /flows`
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Flows {
    pub version: u64,
    /// RFC 3339.
    pub loaded_at: String,
    pub flows: Vec<FlowInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FlowInfo {
    pub name: String,
    pub file: String,
    /// Step name → fingerprint of its definition.
    pub steps: BTreeMap<String, String>,
}

/// `POST /reload`, 200.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Reloaded {
    pub version: u64,
    pub previous: u64,
    pub changed_steps: Vec<StepDiff>,
    pub affected_calls: Vec<Affected>,
    pub warnings: Vec<DiagnosticInfo>,
    /// What changed in the queues and agents ("agent dave added").
    #[serde(default)]
    pub queue_changes: Vec<String>,
    /// The line the reload log shows.
    pub log: String,
}

/// `POST /reload`, 422: the check found errors and the running version stays.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Refused {
    pub error: String,
    /// The version that stays live.
    pub version: u64,
    pub diagnostics: Vec<DiagnosticInfo>,
    /// The diagnostics as `hotline check` prints them.
    pub text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DiagnosticInfo {
    pub severity: String,
    pub file: String,
    /// 1-based; 0 when the problem has no position.
    pub line: u32,
    pub column: u32,
    pub message: String,
    pub help: Option<String>,
}

impl From<&Diagnostic> for DiagnosticInfo {
    fn from(d: &Diagnostic) -> Self {
        DiagnosticInfo {
            severity: d.severity.to_string(),
            file: d.file.display().to_string(),
            line: d.line,
            column: d.column,
            message: d.message.clone(),
            help: d.help.clone(),
        }
    }
}

/// RFC 3339, UTC, whole milliseconds.
pub fn timestamp(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
