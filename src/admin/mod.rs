//! The admin HTTP API: a small JSON API on its own listener (loopback by default) for the
//! people who run the hotline: health, the calls in progress, the running flows, reload,
//! and the agent queues (waiting callers, agents, figures; agent login, pause...).
//!
//! The same listener serves the dashboard ([`dashboard`]): a web page over these routes.
//!
//! Owns the router, its composition from parts, and the listener task. Every request
//! passes [`guard`] first (Host, Origin, body size, token). It decides nothing about
//! calls or flows: handlers read the registry and the live version and call the same
//! reload as SIGHUP. Other modules add endpoints by handing their own [`Part`] to
//! [`build`], as [`queues`] and [`metrics`] do; [`reports`] and [`records`] bring their
//! own records store.

pub mod dashboard;
mod endpoints;
pub mod guard;
pub mod impact_client;
pub mod json;
pub mod live;
pub mod metrics;
pub mod openapi;
pub mod queues;
pub mod records;
pub mod reports;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use tracing::{info, warn};

use crate::call::CallDeps;
use crate::config::AdminConfig;

pub use self::endpoints::core;

/// What every admin endpoint can reach.
pub struct AdminState {
    pub deps: Arc<CallDeps>,
    /// Who may come in: the hosts this server answers to and the token.
    pub door: guard::Door,
}

impl AdminState {
    /// The state for a server configured by `config`; the session secret is drawn here.
    pub fn new(config: &AdminConfig, deps: Arc<CallDeps>) -> AdminState {
        AdminState {
            deps,
            door: guard::Door::new(
                config.listen,
                config.token.clone(),
                &config.hosts,
                rand::random(),
            ),
        }
    }
}

pub type Shared = Arc<AdminState>;

/// A group of endpoints, still without its state; [`build`] joins parts into the API.
pub type Part = Router<Shared>;

/// The API from its parts, behind the door.
pub fn build(state: Shared, parts: impl IntoIterator<Item = Part>) -> Router {
    let mut router: Part = Router::new();
    for p in parts {
        router = router.merge(p);
    }
    router
        .layer(DefaultBodyLimit::max(guard::MAX_BODY))
        .layer(middleware::from_fn_with_state(state.clone(), guard::guard))
        .with_state(state)
}

/// The parts every admin server has: the API without the records, and the dashboard.
fn parts() -> Vec<Part> {
    vec![
        core(),
        queues::part(),
        metrics::part(),
        openapi::part(),
        live::part(),
        dashboard::part(),
    ]
}

/// The API and dashboard without the records routes (those need a store).
pub fn router(state: Shared) -> Router {
    build(state, parts())
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

/// Binds `config.listen` and serves the API of this module there. Refuses an address
/// other hosts can reach without a token (the configuration refuses it too; this holds
/// for any other way of making an [`AdminConfig`]).
pub async fn start(config: &AdminConfig, deps: Arc<CallDeps>) -> std::io::Result<AdminServer> {
    if !config.listen.ip().is_loopback() && config.token.is_none() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "the admin API on {} would be reachable from other hosts without a token (set admin.token)",
                config.listen
            ),
        ));
    }
    let live = deps.live();
    let records = live.config.records.clone();
    let recordings_dir = live.config.recordings_dir.clone();
    // Bound first: a port in use fails here, before a store connection is opened that
    // would then be dropped on this async task (a blocking client must not be).
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let state = Arc::new(AdminState::new(config, deps));
    let mut parts = parts();
    // Reports and the records routes read the store on a connection of their own.
    if let Some(r) = records {
        match tokio::task::spawn_blocking(move || crate::records::open_store(&r.store)).await {
            Ok(Ok(store)) => {
                let store: records::SharedStore = Arc::new(std::sync::Mutex::new(store));
                parts.push(reports::part(store.clone()));
                parts.push(records::part(records::Records {
                    store,
                    recordings_dir,
                }));
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "GET /reports and /records are off: the records store cannot be opened")
            }
            Err(e) => tracing::warn!(error = %e, "GET /reports and /records are off"),
        }
    }
    serve_on(listener, build(state, parts))
}

/// Binds `listen` and serves `router` there (for an API built from more parts).
pub async fn serve(listen: SocketAddr, router: Router) -> std::io::Result<AdminServer> {
    serve_on(tokio::net::TcpListener::bind(listen).await?, router)
}

/// Serves `router` on a bound listener.
fn serve_on(listener: tokio::net::TcpListener, router: Router) -> std::io::Result<AdminServer> {
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        warn!(address = %addr, "the admin API is reachable from other hosts");
    }
    info!(address = %addr, "admin API listening");
    let task = tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, service).await {
            warn!(error = %e, "the admin API stopped");
        }
    });
    Ok(AdminServer { addr, task })
}
