//! The admin HTTP API: a small JSON API on its own listener (loopback by default) for the
//! people who run the hotline: health, the calls in progress, the running flows, reload,
//! and the agent queues (waiting callers, agents, figures; agent login, pause...).
//!
//! Owns the router, its composition from parts, the bearer-token check and the listener
//! task. It decides nothing about calls or flows: handlers read the registry and the live
//! version and call the same reload as SIGHUP. Other modules add endpoints by handing
//! their own [`Part`] to [`build`], as [`queues`] and [`metrics`] do; [`reports`] brings
//! its own records source.

mod endpoints;
pub mod impact_client;
pub mod json;
pub mod metrics;
pub mod openapi;
pub mod queues;
pub mod reports;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tracing::{info, warn};

use crate::call::CallDeps;
use crate::config::AdminConfig;

pub use self::endpoints::core;

/// What every admin endpoint can reach.
pub struct AdminState {
    pub deps: Arc<CallDeps>,
    /// When set, every request must carry `Authorization: Bearer <token>`.
    pub token: Option<String>,
}

pub type Shared = Arc<AdminState>;

/// A group of endpoints, still without its state; [`build`] joins parts into the API.
pub type Part = Router<Shared>;

/// The API from its parts, behind the token check.
pub fn build(state: Shared, parts: impl IntoIterator<Item = Part>) -> Router {
    let mut router: Part = Router::new();
    for p in parts {
        router = router.merge(p);
    }
    router
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state)
}

/// The API with the endpoints of this module: health, calls, flows, reload, queues,
/// agents, metrics and the OpenAPI document.
pub fn router(state: Shared) -> Router {
    build(
        state,
        [core(), queues::part(), metrics::part(), openapi::part()],
    )
}

async fn authorize(State(state): State<Shared>, req: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !same(given.trim().as_bytes(), token.as_bytes()) {
            let mut r = (
                StatusCode::UNAUTHORIZED,
                axum::Json(json::ErrorBody::new(
                    "missing or wrong token: send 'Authorization: Bearer TOKEN'",
                )),
            )
                .into_response();
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    next.run(req).await
}

/// Compares without stopping at the first difference, so response times do not tell how
/// much of a guessed token was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, y) in b.iter().enumerate() {
        let x = a.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

/// The admin API serving in the background; dropping it stops it.
pub struct AdminServer {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `config.listen` and serves the API of this module there.
pub async fn start(config: &AdminConfig, deps: Arc<CallDeps>) -> std::io::Result<AdminServer> {
    let records = deps.live().config.records.clone();
    let state = Arc::new(AdminState {
        deps,
        token: config.token.clone(),
    });
    let mut parts = vec![core(), queues::part(), metrics::part(), openapi::part()];
    // Reports read the records store on a connection of their own.
    if let Some(r) = records {
        match tokio::task::spawn_blocking(move || crate::records::open_store(&r.store)).await {
            Ok(Ok(store)) => parts.push(reports::part(Arc::new(std::sync::Mutex::new(store)))),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "GET /reports is off: the records store cannot be opened")
            }
            Err(e) => tracing::warn!(error = %e, "GET /reports is off"),
        }
    }
    serve(config.listen, build(state, parts)).await
}

/// Binds `listen` and serves `router` there (for an API built from more parts).
pub async fn serve(listen: SocketAddr, router: Router) -> std::io::Result<AdminServer> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        warn!(address = %addr, "the admin API is reachable from other hosts");
    }
    info!(address = %addr, "admin API listening");
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            warn!(error = %e, "the admin API stopped");
        }
    });
    Ok(AdminServer { addr, task })
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_compare_whole() {
        assert!(super::same(b"abc", b"abc"));
        assert!(!super::same(b"abd", b"abc"));
        assert!(!super::same(b"ab", b"abc"));
        assert!(!super::same(b"abcd", b"abc"));
        assert!(!super::same(b"", b"abc"));
    }
}
