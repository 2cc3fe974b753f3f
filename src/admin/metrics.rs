//! `GET /metrics`: the engine's metrics in the Prometheus text format, behind the same
//! bearer token as the rest of the admin API (Prometheus sends it with `authorization`
//! in its scrape config).
//!
//! Owns the HTTP side and the gathering of what a scrape reads from the engine as it is:
//! the calls in progress, the media workers' figures, the records writer's counters and
//! the queues' snapshot. The metrics themselves, their names and their text are
//! `crate::metrics`'.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{Part, Shared};
use crate::metrics::{CONTENT_TYPE, Scrape};

/// This module's endpoint, as a part for [`super::build`].
pub fn part() -> Part {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(s): State<Shared>) -> Response {
    let deps = &s.deps;
    // A queue task that has stopped leaves the queue metrics out rather than failing the
    // whole scrape.
    let queues = match deps.acd() {
        Some(acd) => acd.snapshot().await,
        None => None,
    };
    let text = deps.metrics().render(&Scrape {
        calls_active: deps.registry.len(),
        media: deps.media.stats(),
        records: deps.records().counters(),
        queues: queues.as_ref(),
        resources: deps.resources(),
    });
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}
