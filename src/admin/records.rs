//! The call records over HTTP, for the dashboard's Calls tab: `GET /records` searches the
//! stored calls (by caller, time, outcome), `GET /records/{call_id}` is one call with its
//! events in order, and `GET /records/{call_id}/recordings/{index}` plays one of its
//! recordings.
//!
//! Owns the HTTP side and the confinement of recordings: a file is served only when it
//! really lies in the recordings folder (after resolving links and `..`), is a WAV file,
//! and is named by the call's record; the request never names a path. Reading the store
//! may block, so it runs on a blocking thread. It never writes records.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::json::ErrorBody;
use crate::records::listing::parse_time;
use crate::records::report_cli::now_ms;
use crate::records::store::{CallFilter, Store};
use crate::records::{CallEvent, CallRecord};

/// The store the records routes read, shared with the reports (one reads at a time).
pub type SharedStore = Arc<Mutex<Box<dyn Store>>>;

/// What the routes need: the store and where recordings may be.
#[derive(Clone)]
pub struct Records {
    pub store: SharedStore,
    pub recordings_dir: PathBuf,
}

/// The most calls one search lists.
pub const MAX_LIST: usize = 1000;

/// How many calls a search lists when it does not say.
pub const DEFAULT_LIST: usize = 200;

/// The routes, for [`super::build`] (they carry their own state).
pub fn part<S: Clone + Send + Sync + 'static>(records: Records) -> Router<S> {
    Router::new()
        .route("/records", get(search))
        .route("/records/{call_id}", get(one))
        .route("/records/{call_id}/recordings/{index}", get(recording))
        .with_state(records)
}

/// The query of `GET /records`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordSearch {
    /// Calls from this number only (exactly as recorded).
    pub caller: Option<String>,
    /// Calls started since: `24h`, `7d`, `30m` (that long ago), `2026-12-01` or
    /// `2026-12-01T08:30` (UTC). Default: 24h.
    pub since: Option<String>,
    /// Calls started before this (same forms). Default: now.
    pub until: Option<String>,
    /// Only calls with this outcome (`self_service`, `agent`, `abandoned_in_menu`, ...).
    pub outcome: Option<String>,
    /// At most this many calls, the newest (default 200, at most 1000).
    pub last: Option<usize>,
}

/// One stored call, as listed.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RecordSummary {
    pub call_id: String,
    pub caller: String,
    pub dialed: String,
    pub flow: String,
    pub language: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub started_ms: i64,
    /// Seconds from start to end; none while the call is in progress.
    pub duration_seconds: Option<f64>,
    /// None while the call is in progress.
    pub outcome: Option<String>,
    pub last_step: Option<String>,
    pub reason: Option<String>,
    pub queue: Option<String>,
    pub agent: Option<String>,
    pub recordings: usize,
}

/// `GET /records`
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RecordList {
    /// Oldest first.
    pub calls: Vec<RecordSummary>,
}

/// One event of a call's timeline.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TimelineEvent {
    pub seq: u32,
    pub at_ms: i64,
    /// Seconds since the call started.
    pub offset_seconds: f64,
    /// `step`, `key`, `no_input`, `queue_joined`... (docs/records.md).
    pub kind: String,
    /// The event's fields.
    pub detail: serde_json::Value,
}

/// One recording of a call.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RecordingInfo {
    pub index: usize,
    pub duration_seconds: f64,
    /// Where to fetch it (`audio/wav`).
    pub url: String,
}

/// `GET /records/{call_id}`
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CallTimeline {
    pub call: RecordSummary,
    pub events: Vec<TimelineEvent>,
    pub recordings: Vec<RecordingInfo>,
}

fn summary(c: &CallRecord) -> RecordSummary {
    RecordSummary {
        call_id: c.call_id.clone(),
        caller: c.caller.clone(),
        dialed: c.dialed.clone(),
        flow: c.flow.clone(),
        language: c.language.clone(),
        started_at: DateTime::<Utc>::from_timestamp_millis(c.started_ms)
            .map(|d| d.to_rfc3339())
            .unwrap_or_default(),
        started_ms: c.started_ms,
        duration_seconds: c
            .ended_ms
            .map(|e| e.saturating_sub(c.started_ms) as f64 / 1000.0),
        outcome: c.outcome.map(|o| o.to_string()),
        last_step: c.last_step.clone(),
        reason: c.reason.clone(),
        queue: c.queue.clone(),
        agent: c.agent.clone(),
        recordings: c.recordings.len(),
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(ErrorBody::new(message))).into_response()
}

/// Runs `read` on the store on a blocking thread; a failing store is 503.
async fn with_store<T: Send + 'static>(
    store: &SharedStore,
    read: impl FnOnce(&mut dyn Store) -> Result<T, crate::records::store::StoreError> + Send + 'static,
) -> Result<T, Response> {
    let store = store.clone();
    let done = tokio::task::spawn_blocking(move || {
        let mut s = store.lock().unwrap_or_else(PoisonError::into_inner);
        read(s.as_mut())
    })
    .await;
    match done {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            warn!(error = %e, "the records could not be read");
            Err(error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))
        }
        Err(e) => {
            warn!(error = %e, "a records read stopped");
            Err(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the records read stopped",
            ))
        }
    }
}

/// The filter a search asks for, or what is wrong with it.
pub fn filter_of(q: &RecordSearch, now_ms: i64) -> Result<(CallFilter, Option<String>), String> {
    let since = parse_time(q.since.as_deref().unwrap_or("24h"), now_ms)
        .map_err(|e| format!("since: {e}"))?;
    let until = q
        .until
        .as_deref()
        .filter(|u| !u.trim().is_empty())
        .map(|u| parse_time(u, now_ms).map_err(|e| format!("until: {e}")))
        .transpose()?;
    let outcome = match q
        .outcome
        .as_deref()
        .map(str::trim)
        .filter(|o| !o.is_empty())
    {
        None => None,
        Some(o) => {
            let parsed: crate::records::CallOutcome = o.parse().map_err(|_| {
                let known: Vec<&str> = crate::records::CallOutcome::ALL
                    .iter()
                    .map(|o| o.as_str())
                    .collect();
                format!("outcome: expected one of {}, found '{o}'", known.join(", "))
            })?;
            Some(parsed.to_string())
        }
    };
    let last = q.last.unwrap_or(DEFAULT_LIST).clamp(1, MAX_LIST);
    let caller = q
        .caller
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    Ok((
        CallFilter {
            since_ms: Some(since),
            until_ms: until,
            caller,
            // An outcome is chosen after reading, so the newest N are of that outcome.
            last: if outcome.is_some() { None } else { Some(last) },
        },
        outcome,
    ))
}

async fn search(
    State(r): State<Records>,
    query: Result<Query<RecordSearch>, QueryRejection>,
) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let (filter, outcome) = match filter_of(&q, now_ms()) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let last = q.last.unwrap_or(DEFAULT_LIST).clamp(1, MAX_LIST);
    match with_store(&r.store, move |s| s.calls(&filter)).await {
        Ok(calls) => {
            let mut list: Vec<RecordSummary> = calls
                .iter()
                .filter(|c| {
                    outcome
                        .as_deref()
                        .is_none_or(|o| c.outcome.is_some_and(|x| x.as_str() == o))
                })
                .map(summary)
                .collect();
            let extra = list.len().saturating_sub(last);
            list.drain(..extra);
            Json(RecordList { calls: list }).into_response()
        }
        Err(r) => r,
    }
}

type CallAndEvents = Option<(CallRecord, Vec<CallEvent>)>;

async fn read_call(store: &SharedStore, call_id: String) -> Result<CallAndEvents, Response> {
    with_store(store, move |s| {
        let Some(call) = s.call(&call_id)? else {
            return Ok(None);
        };
        let events = s.events(&call_id)?;
        Ok(Some((call, events)))
    })
    .await
}

fn no_call(call_id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("no call '{call_id}' in the records"),
    )
}

async fn one(State(r): State<Records>, UrlPath(call_id): UrlPath<String>) -> Response {
    match read_call(&r.store, call_id.clone()).await {
        Ok(Some((call, events))) => {
            let started = call.started_ms;
            let recordings = call
                .recordings
                .iter()
                .enumerate()
                .map(|(index, rec)| RecordingInfo {
                    index,
                    duration_seconds: rec.duration_ms as f64 / 1000.0,
                    url: format!("/records/{}/recordings/{index}", url_segment(&call.call_id)),
                })
                .collect();
            Json(CallTimeline {
                call: summary(&call),
                events: events
                    .into_iter()
                    .map(|e| TimelineEvent {
                        seq: e.seq,
                        at_ms: e.at_ms,
                        offset_seconds: e.at_ms.saturating_sub(started) as f64 / 1000.0,
                        kind: e.kind,
                        detail: e.detail,
                    })
                    .collect(),
                recordings,
            })
            .into_response()
        }
        Ok(None) => no_call(&call_id),
        Err(r) => r,
    }
}

/// A call id as one path segment.
fn url_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'@') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `path` resolved, when it lies inside `dir` (also resolved) and is a WAV file.
pub fn confined(dir: &Path, path: &Path) -> Option<PathBuf> {
    let dir = dir.canonicalize().ok()?;
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        dir.join(path)
    };
    let real = path.canonicalize().ok()?;
    let wav = real
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("wav"));
    (wav && real.starts_with(&dir) && real.is_file()).then_some(real)
}

async fn recording(
    State(r): State<Records>,
    UrlPath((call_id, index)): UrlPath<(String, usize)>,
) -> Response {
    let call = match read_call(&r.store, call_id.clone()).await {
        Ok(Some((call, _))) => call,
        Ok(None) => return no_call(&call_id),
        Err(r) => return r,
    };
    let Some(rec) = call.recordings.get(index) else {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "call '{call_id}' has {} recording(s)",
                call.recordings.len()
            ),
        );
    };
    let dir = r.recordings_dir.clone();
    let path = PathBuf::from(&rec.path);
    let Some(real) = confined(&dir, &path) else {
        warn!(call_id = %call_id, path = %rec.path, "a recording outside the recordings folder, or missing, was not served");
        return error(
            StatusCode::NOT_FOUND,
            "the recording is not in the recordings folder (or no longer there)",
        );
    };
    match tokio::fs::read(&real).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, "audio/wav")], bytes).into_response(),
        Err(e) => error(
            StatusCode::NOT_FOUND,
            format!("the recording cannot be read: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searches_read_as_filters() {
        let now = 10 * 86_400_000;
        let (f, o) = filter_of(&RecordSearch::default(), now).unwrap();
        assert_eq!(f.since_ms, Some(now - 86_400_000));
        assert_eq!(f.last, Some(DEFAULT_LIST));
        assert_eq!(o, None);
        let q = RecordSearch {
            caller: Some(" +4930 ".into()),
            since: Some("7d".into()),
            until: Some("1970-01-05".into()),
            outcome: Some("agent".into()),
            last: Some(5000),
        };
        let (f, o) = filter_of(&q, now).unwrap();
        assert_eq!(f.caller.as_deref(), Some("+4930"));
        assert_eq!(f.until_ms, Some(4 * 86_400_000));
        assert_eq!(f.last, None);
        assert_eq!(o.as_deref(), Some("agent"));
        for bad in [
            RecordSearch {
                since: Some("yesterday".into()),
                ..Default::default()
            },
            RecordSearch {
                outcome: Some("happy".into()),
                ..Default::default()
            },
        ] {
            assert!(filter_of(&bad, now).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn recordings_are_served_only_from_their_folder() {
        let base = std::env::temp_dir().join(format!("hotline-confined-{}", std::process::id()));
        let dir = base.join("recordings");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.wav"), b"RIFF").unwrap();
        std::fs::write(dir.join("notes.txt"), b"x").unwrap();
        std::fs::write(base.join("secret.wav"), b"RIFF").unwrap();
        assert!(confined(&dir, &dir.join("a.wav")).is_some());
        assert!(confined(&dir, Path::new("a.wav")).is_some());
        assert!(confined(&dir, &dir.join("../secret.wav")).is_none());
        assert!(confined(&dir, &base.join("secret.wav")).is_none());
        assert!(confined(&dir, &dir.join("notes.txt")).is_none());
        assert!(confined(&dir, &dir.join("gone.wav")).is_none());
        #[cfg(unix)]
        {
            let link = dir.join("link.wav");
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(base.join("secret.wav"), &link).unwrap();
            assert!(confined(&dir, &link).is_none(), "a link out of the folder");
        }
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn call_ids_become_one_segment() {
        assert_eq!(url_segment("a1b2@host"), "a1b2@host");
        assert_eq!(url_segment("x/../y z"), "x%2F..%2Fy%20z");
    }
}
