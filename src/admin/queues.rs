//! The agent-queue endpoints of the admin API: `GET /queues`, `GET /queues/{name}`,
//! `GET /agents`, `GET /agents/{name}` and `POST /agents/{name}/{login|logout|pause|resume}`.
//!
//! Owns the mapping between HTTP and the ACD's handle: which status a refusal gets, the
//! optional pause reason in the body. It decides nothing about agents itself: the ACD
//! accepts or refuses every command, and the figures are the ACD's snapshot as it is.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::json::{AgentList, ErrorBody};
use super::{Part, Shared};
use crate::queue::acd::Snapshot;
use crate::queue::agent::AgentCommand;
use crate::queue::service::AcdHandle;

/// The reason an agent paused through the API without giving one has.
pub const DEFAULT_PAUSE_REASON: &str = "admin";

/// The longest pause reason accepted: it is shown and logged, not a document.
const MAX_REASON_CHARS: usize = 100;

/// This module's endpoints, as a part for [`super::build`].
pub fn part() -> Part {
    Router::new()
        .route("/queues", get(queues))
        .route("/queues/{name}", get(queue))
        .route("/agents", get(agents))
        .route("/agents/{name}", get(agent))
        .route("/agents/{name}/{action}", post(command))
}

/// The body of `POST /agents/{name}/pause` (optional).
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PauseBody {
    /// Why the agent pauses (one line, at most 100 characters); default `admin`.
    reason: Option<String>,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(ErrorBody::new(message))).into_response()
}

/// A request the API cannot carry out: its status and what to say.
#[derive(Debug, PartialEq)]
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

fn no_queues() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "no agent queues are configured (see queues: and agents: in hotline.yaml)",
    )
}

fn stopped() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the queue service has stopped",
    )
}

/// The ACD's live state, or the response saying why there is none.
async fn snapshot(s: &Shared) -> Result<(AcdHandle, Snapshot), Response> {
    let acd = s.deps.acd().ok_or_else(no_queues)?.clone();
    let snap = acd.snapshot().await.ok_or_else(stopped)?;
    Ok((acd, snap))
}

async fn queues(State(s): State<Shared>) -> Response {
    match snapshot(&s).await {
        Ok((_, snap)) => Json(snap).into_response(),
        Err(r) => r,
    }
}

async fn queue(State(s): State<Shared>, Path(name): Path<String>) -> Response {
    let snap = match snapshot(&s).await {
        Ok((_, snap)) => snap,
        Err(r) => return r,
    };
    let known = names(snap.queues.iter().map(|q| q.name.as_str()));
    match snap.queues.into_iter().find(|q| q.name == name) {
        Some(q) => Json(q).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no queue named '{name}' (queues: {known})"),
        ),
    }
}

async fn agents(State(s): State<Shared>) -> Response {
    match snapshot(&s).await {
        Ok((_, snap)) => Json(AgentList {
            agents: snap.agents,
        })
        .into_response(),
        Err(r) => r,
    }
}

async fn agent(State(s): State<Shared>, Path(name): Path<String>) -> Response {
    match snapshot(&s).await {
        Ok((_, snap)) => one_agent(snap, &name),
        Err(r) => r,
    }
}

/// The agent's entry of the snapshot, or 404 naming the agents there are.
fn one_agent(snap: Snapshot, name: &str) -> Response {
    let known = names(snap.agents.iter().map(|a| a.name.as_str()));
    match snap.agents.into_iter().find(|a| a.name == name) {
        Some(a) => Json(a).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no agent named '{name}' (agents: {known})"),
        ),
    }
}

fn names<'a>(it: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = it.collect();
    if v.is_empty() {
        "none".to_owned()
    } else {
        v.join(", ")
    }
}

/// The command an action and its body ask for.
fn parse_command(action: &str, body: &[u8]) -> Result<AgentCommand, Refusal> {
    match action {
        "login" => Ok(AgentCommand::Login),
        "logout" => Ok(AgentCommand::Logout),
        "resume" => Ok(AgentCommand::Resume),
        "pause" => {
            let body: PauseBody = if body.iter().all(u8::is_ascii_whitespace) {
                PauseBody::default()
            } else {
                serde_json::from_slice(body).map_err(|e| {
                    Refusal(
                        StatusCode::BAD_REQUEST,
                        format!("expected an empty body or {{\"reason\": \"...\"}}: {e}"),
                    )
                })?
            };
            let reason = body
                .reason
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| DEFAULT_PAUSE_REASON.to_owned());
            if reason.chars().count() > MAX_REASON_CHARS || reason.chars().any(char::is_control) {
                return Err(Refusal(
                    StatusCode::BAD_REQUEST,
                    format!("a pause reason is one line of at most {MAX_REASON_CHARS} characters"),
                ));
            }
            Ok(AgentCommand::Pause { reason })
        }
        other => Err(Refusal(
            StatusCode::NOT_FOUND,
            format!("no agent action '{other}' (actions: login, logout, pause, resume)"),
        )),
    }
}

async fn command(
    State(s): State<Shared>,
    Path((name, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let Some(acd) = s.deps.acd().cloned() else {
        return no_queues();
    };
    let cmd = match parse_command(&action, &body) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let result = acd.command(&name, cmd).await;
    // The snapshot tells an unknown agent (404) from a refusal (409), and shows the
    // agent as the command left it.
    let Some(snap) = acd.snapshot().await else {
        return stopped();
    };
    if !snap.agents.iter().any(|a| a.name == name) {
        return one_agent(snap, &name);
    }
    match result {
        Ok(()) => one_agent(snap, &name),
        Err(e) => error(StatusCode::CONFLICT, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(r: Result<AgentCommand, Refusal>) -> Result<AgentCommand, StatusCode> {
        r.map_err(|r| r.0)
    }

    #[test]
    fn commands_and_pause_bodies() {
        assert_eq!(status(parse_command("login", b"")), Ok(AgentCommand::Login));
        assert_eq!(
            status(parse_command("pause", b"")),
            Ok(AgentCommand::Pause {
                reason: "admin".into()
            })
        );
        assert_eq!(
            status(parse_command("pause", br#"{"reason": " lunch "}"#)),
            Ok(AgentCommand::Pause {
                reason: "lunch".into()
            })
        );
        assert_eq!(
            status(parse_command("pause", b"{}")),
            Ok(AgentCommand::Pause {
                reason: "admin".into()
            })
        );
        assert_eq!(
            status(parse_command("pause", b"lunch")),
            Err(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            status(parse_command("pause", br#"{"reasn": "x"}"#)),
            Err(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            status(parse_command("pause", br#"{"reason": "a\nb"}"#)),
            Err(StatusCode::BAD_REQUEST)
        );
        let long = format!(r#"{{"reason": "{}"}}"#, "x".repeat(101));
        assert_eq!(
            status(parse_command("pause", long.as_bytes())),
            Err(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            status(parse_command("nap", b"")),
            Err(StatusCode::NOT_FOUND)
        );
    }
}
