//! `GET /live`: what is happening now, as Server-Sent Events for the dashboard's Now tab:
//! the calls in progress (where each is, for how long, its language, its queue and place
//! in line), the queues and the agents.
//!
//! Owns the view and when to send it. A view goes out at once when a call starts, moves
//! or ends (the registry wakes the stream) and within [`SAMPLE`] when the queues change
//! (the ACD is asked that often; it has no change signal of its own). Figures that only
//! grow with the clock (seconds waited, in a step, in a state) do not count as a change:
//! the page ticks them on itself and gets fresh ones with the next view or at least every
//! [`REFRESH`]. It decides nothing and changes nothing.

use std::convert::Infallible;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use futures_util::Stream;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use super::{Part, Shared};
use crate::queue::acd::{AgentSnapshot, QueueSnapshot};

/// How often the queues are looked at while a page listens.
pub const SAMPLE: Duration = Duration::from_millis(250);

/// The longest a page goes without a view, so its figures (service level, waits) stay
/// fresh even when nothing else changes.
pub const REFRESH: Duration = Duration::from_secs(10);

/// The service level a queue should reach (per cent of callers answered within its
/// `service_level` threshold): at or above it the queue shows green, within
/// [`AMBER_MARGIN`] points below amber, further below red.
pub const SERVICE_LEVEL_TARGET: f64 = 80.0;

/// How far below the target a queue is amber rather than red.
pub const AMBER_MARGIN: f64 = 10.0;

/// This module's endpoint, as a part for [`super::build`].
pub fn part() -> Part {
    Router::new().route("/live", get(live))
}

/// One view of the Now tab: the data of each `now` event of `GET /live`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Now {
    /// The running version.
    pub version: u64,
    /// The calls in progress, oldest first.
    pub calls: Vec<LiveCallView>,
    /// False when no queues are configured (or the queue service stopped).
    pub queues_on: bool,
    pub queues: Vec<QueueView>,
    pub agents: Vec<AgentSnapshot>,
}

/// One call in progress.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LiveCallView {
    pub call_id: String,
    pub caller: String,
    pub dialed: String,
    /// The flow the route chose.
    pub flow: String,
    /// Where the call is: its flow now and step (empty before the first step).
    pub current_flow: String,
    pub step: String,
    /// The caller's language (empty before the first step).
    pub language: String,
    /// Seconds in the current step.
    pub step_seconds: f64,
    /// Seconds since the call came in.
    pub elapsed_seconds: f64,
    /// The queue the caller waits in, and their place in its line (1 is next).
    pub queue: Option<String>,
    pub position: Option<usize>,
}

/// A queue, with the colour its service level earns.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct QueueView {
    #[serde(flatten)]
    pub queue: QueueSnapshot,
    /// `green`, `amber` or `red` against [`SERVICE_LEVEL_TARGET`]; `none` before any
    /// caller was answered or gave up.
    pub status: &'static str,
    /// The service level target in per cent.
    pub target_percent: f64,
    /// How many of the queue's agents are in each state.
    pub agents_by_state: std::collections::BTreeMap<String, u32>,
}

/// The colour of a service level against the target.
pub fn status(service_level_percent: Option<f64>) -> &'static str {
    match service_level_percent {
        None => "none",
        Some(p) if p >= SERVICE_LEVEL_TARGET => "green",
        Some(p) if p >= SERVICE_LEVEL_TARGET - AMBER_MARGIN => "amber",
        Some(_) => "red",
    }
}

/// The view as of now.
pub async fn now(s: &Shared) -> Now {
    let at = SystemTime::now();
    let secs = |since: SystemTime| at.duration_since(since).map_or(0.0, |d| d.as_secs_f64());
    let snapshot = match s.deps.acd() {
        Some(acd) => acd.snapshot().await,
        None => None,
    };
    let mut places = std::collections::HashMap::new();
    for q in snapshot.iter().flat_map(|s| &s.queues) {
        for w in &q.waiting {
            if let Some(call) = &w.call {
                places.insert(call.clone(), (q.name.clone(), w.position));
            }
        }
    }
    let calls = s
        .deps
        .registry
        .snapshot()
        .into_iter()
        .map(|c| {
            let place = places.remove(&c.call_id);
            LiveCallView {
                step_seconds: secs(c.step_since),
                elapsed_seconds: secs(c.started_at),
                queue: place.as_ref().map(|p| p.0.clone()),
                position: place.map(|p| p.1),
                call_id: c.call_id,
                caller: c.caller,
                dialed: c.dialed,
                flow: c.flow,
                current_flow: c.current_flow,
                step: c.step,
                language: c.language,
            }
        })
        .collect();
    let queues_on = snapshot.is_some();
    let (queues, agents) = match snapshot {
        Some(snap) => (
            snap.queues
                .into_iter()
                .map(|q| {
                    let mut agents_by_state = std::collections::BTreeMap::new();
                    for a in &q.agents {
                        *agents_by_state.entry(a.state.to_owned()).or_insert(0) += 1;
                    }
                    QueueView {
                        status: status(q.stats.service_level_percent),
                        target_percent: SERVICE_LEVEL_TARGET,
                        agents_by_state,
                        queue: q,
                    }
                })
                .collect(),
            snap.agents,
        ),
        None => (Vec::new(), Vec::new()),
    };
    Now {
        version: s.deps.live().version,
        calls,
        queues_on,
        queues,
        agents,
    }
}

/// The fields that grow with the clock alone: left out when views are compared.
const CLOCK_FIELDS: [&str; 8] = [
    "step_seconds",
    "elapsed_seconds",
    "waited_secs",
    "since_secs",
    "wrap_up_left_secs",
    "estimated_wait_secs",
    "longest_wait_secs",
    "average_handling_time_secs",
];

/// The view without its clock-driven figures: two views with the same key show the same.
pub fn change_key(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !CLOCK_FIELDS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), change_key(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(change_key).collect()),
        other => other.clone(),
    }
}

struct Watch {
    state: Shared,
    changes: tokio::sync::watch::Receiver<u64>,
    last: Option<(Value, Instant)>,
}

impl Watch {
    /// Waits for the next view worth sending and makes its event.
    async fn next(&mut self) -> Event {
        loop {
            let view = now(&self.state).await;
            let value = serde_json::to_value(&view).unwrap_or(Value::Null);
            let key = change_key(&value);
            let due = match &self.last {
                None => true,
                Some((last, at)) => *last != key || at.elapsed() >= REFRESH,
            };
            if due {
                self.last = Some((key, Instant::now()));
                return Event::default().event("now").data(value.to_string());
            }
            // The registry wakes us at once for calls; the queues are looked at again
            // after SAMPLE. A closed channel (the hotline stopping) leaves the timer.
            tokio::select! {
                r = self.changes.changed() => {
                    if r.is_err() {
                        tokio::time::sleep(SAMPLE).await;
                    }
                }
                () = tokio::time::sleep(SAMPLE) => {}
            }
        }
    }
}

async fn live(State(s): State<Shared>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let watch = Watch {
        changes: s.deps.registry.changed(),
        state: s,
        last: None,
    };
    let stream = futures_util::stream::unfold(watch, |mut w| async move {
        let event = w.next().await;
        Some((Ok(event), w))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn colours_against_the_target() {
        assert_eq!(status(None), "none");
        assert_eq!(status(Some(100.0)), "green");
        assert_eq!(status(Some(80.0)), "green");
        assert_eq!(status(Some(79.9)), "amber");
        assert_eq!(status(Some(70.0)), "amber");
        assert_eq!(status(Some(69.9)), "red");
    }

    #[test]
    fn the_clock_alone_is_no_change() {
        let a = json!({ "calls": [{ "step": "menu", "step_seconds": 1.0 }], "queues": [{ "waiting": [{ "waited_secs": 3.0, "position": 1 }] }] });
        let b = json!({ "calls": [{ "step": "menu", "step_seconds": 2.5 }], "queues": [{ "waiting": [{ "waited_secs": 4.0, "position": 1 }] }] });
        let c = json!({ "calls": [{ "step": "support", "step_seconds": 0.0 }], "queues": [{ "waiting": [{ "waited_secs": 4.0, "position": 1 }] }] });
        assert_eq!(change_key(&a), change_key(&b));
        assert_ne!(change_key(&b), change_key(&c));
    }
}
