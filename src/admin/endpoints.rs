//! The endpoints of the admin API itself: `GET /health`, `GET /calls`, `GET /flows`,
//! `POST /reload`. Handlers read the registry and the live version; reload runs the same
//! code as SIGHUP, on a blocking thread since it reads files and compiles flows.

use std::time::SystemTime;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::json::{self, CallInfo, DiagnosticInfo, FlowInfo};
use super::{Part, Shared};
use crate::flow::impact;

/// This module's endpoints, as a part for [`super::build`].
pub fn core() -> Part {
    Router::new()
        .route("/health", get(health))
        .route("/calls", get(calls))
        .route("/flows", get(flows))
        .route("/reload", post(reload))
}

async fn health(State(s): State<Shared>) -> Json<json::Health> {
    let refused = s.deps.refused_edits().map(|r| json::RefusedInfo {
        at: r
            .at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        errors: r
            .diagnostics
            .iter()
            .filter(|d| d.severity == crate::flow::diagnostic::Severity::Error)
            .map(json::DiagnosticInfo::from)
            .collect(),
    });
    Json(json::Health {
        status: if refused.is_some() {
            "edits_refused"
        } else {
            "ok"
        }
        .to_owned(),
        version: s.deps.live().version,
        calls: s.deps.registry.len(),
        refused,
    })
}

async fn calls(State(s): State<Shared>) -> Json<json::Calls> {
    let now = SystemTime::now();
    let live = s.deps.registry.snapshot();
    let positions = impact::positions(&live);
    let calls = live
        .iter()
        .zip(positions)
        .map(|(c, p)| CallInfo {
            call_id: c.call_id.clone(),
            caller: c.caller.clone(),
            dialed: c.dialed.clone(),
            flow: c.flow.clone(),
            version: c.version,
            current_flow: c.current_flow.clone(),
            step: c.step.clone(),
            fingerprint: p.fingerprint,
            started_at: json::timestamp(c.started_at),
            elapsed_seconds: now
                .duration_since(c.started_at)
                .map_or(0.0, |d| d.as_secs_f64()),
        })
        .collect();
    Json(json::Calls {
        version: s.deps.live().version,
        calls,
    })
}

async fn flows(State(s): State<Shared>) -> Json<json::Flows> {
    let live = s.deps.live();
    let mut signatures = impact::signatures(&live.flows);
    let flows = live
        .flows
        .flows()
        .map(|f| FlowInfo {
            name: f.name.clone(),
            file: f.file.display().to_string(),
            steps: signatures.remove(&f.name).unwrap_or_default(),
        })
        .collect();
    Json(json::Flows {
        version: live.version,
        loaded_at: json::timestamp(live.loaded_at),
        flows,
    })
}

async fn reload(State(s): State<Shared>) -> Response {
    let deps = s.deps.clone();
    let result = tokio::task::spawn_blocking(move || crate::reload::reload(&deps)).await;
    match result {
        Ok(Ok(r)) => {
            crate::reload::log_reloaded(&r, "admin API");
            Json(json::Reloaded {
                version: r.version,
                previous: r.previous,
                changed_steps: r.changed_steps.clone(),
                affected_calls: r.affected.clone(),
                warnings: r
                    .report
                    .diagnostics
                    .iter()
                    .map(DiagnosticInfo::from)
                    .collect(),
                queue_changes: r.queue_changes.clone(),
                log: r.log_line(),
            })
            .into_response()
        }
        Ok(Err(r)) => {
            crate::reload::log_refused(&r, "admin API");
            let text: String = r
                .report
                .diagnostics
                .iter()
                .map(|d| format!("{d}\n"))
                .collect::<String>()
                + &r.report.summary();
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json::Refused {
                    error: format!(
                        "reload refused ({}); version {} stays",
                        r.report.summary(),
                        r.running
                    ),
                    version: r.running,
                    diagnostics: r
                        .report
                        .diagnostics
                        .iter()
                        .map(DiagnosticInfo::from)
                        .collect(),
                    text,
                }),
            )
                .into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json::ErrorBody::new(format!(
                "the reload did not finish: {e}"
            ))),
        )
            .into_response(),
    }
}
