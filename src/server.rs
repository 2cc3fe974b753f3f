//! The running hotline: loads prompts and flows, opens the listeners, starts the media
//! clock and the SIP endpoint, and creates a call task for every accepted INVITE.
//! Agents' phones register with the endpoint's registrar, using the credentials
//! [`credentials_from_config`] reads. Call records go to the store `records:` names,
//! through a writer started (and done with what an earlier run left) before the first call.
//! A graceful stop ([`RunningServer::drain`]) refuses new calls, lets the calls in progress
//! end up to `limits.drain`, then ends the rest, so that every call's record is written
//! before the writer closes.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use thiserror::Error;
use tokio::sync::{broadcast, mpsc};
use tracing::{info, warn};

use crate::call::{self, CallDeps, Live};
use crate::config::{Config, Protocol};
use crate::media::clock::MediaEngine;
use crate::media::ports::PortPool;
use crate::preflight;
use crate::sip::digest::Secret;
use crate::sip::endpoint::{
    Endpoint, EndpointConfig, EndpointControl, EndpointStats, LoadSource, NewCall,
};
use crate::sip::registrar::{
    CredentialStore, Credentials, RegistrarConfig, RegistrarEvent, Registrations, SharedCredentials,
};
use crate::sip::transaction::TimerConfig;
use crate::sip::transport::{TransportConfig, TransportStats, Transports};
use crate::tools::demo_shop::DemoShop;

/// Why the hotline could not start: which part failed, with the failure as its source
/// (the binary prints the whole chain).
#[derive(Debug, Error)]
pub enum StartError {
    #[error("the configuration has errors ({0}); run `hotline check` for details")]
    Config(String),
    #[error("starting the media clock")]
    Media(#[source] std::io::Error),
    #[error("opening the SIP listeners")]
    Listeners(#[source] crate::sip::transport::BindError),
    #[error("creating {path}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("opening the callback store {path}")]
    CallbackStore {
        path: std::path::PathBuf,
        source: crate::queue::store::StoreError,
    },
    #[error("starting the agent queues")]
    Queues(#[source] crate::queue::AcdError),
    #[error("opening the records store")]
    Records(#[source] crate::records::store::StoreError),
    #[error("starting the records writer")]
    RecordsWriter(#[source] std::io::Error),
    #[error("the records webhook")]
    Webhook(#[source] crate::records::webhook::TargetError),
    #[error("starting the records webhook")]
    WebhookThread(#[source] std::io::Error),
    #[error("starting the cluster membership")]
    Cluster(#[source] std::io::Error),
    #[error(
        "{key} is the sample hotline.yaml's published password, and SIP listens on {listen}, which other machines can reach: change the password (or listen on 127.0.0.1 only)"
    )]
    SamplePassword { key: String, listen: SocketAddr },
}

/// The registrations file in the data folder.
pub const REGISTRATIONS_FILE: &str = "registrations.json";

/// A listener other machines can reach while an agent keeps a published sample password:
/// anyone who read the sample could register as that agent and take its calls.
fn sample_password_exposed(config: &Config) -> Result<(), StartError> {
    let Some(key) = crate::queue::config::sample_password(&config.agents) else {
        return Ok(());
    };
    match config.listen.iter().find(|l| !l.addr.ip().is_loopback()) {
        Some(l) => Err(StartError::SamplePassword {
            key,
            listen: l.addr,
        }),
        None => Ok(()),
    }
}

pub struct Server {
    endpoint: Option<Endpoint>,
    pub deps: Arc<CallDeps>,
    pub local_addrs: Vec<(Protocol, SocketAddr)>,
    pub endpoint_stats: Arc<EndpointStats>,
    /// Drains the endpoint and ends its calls when the server stops.
    pub control: EndpointControl,
    pub transport_stats: Arc<TransportStats>,
    /// Who is registered where (agents' phones).
    pub registrations: Registrations,
    /// Registrations coming and going; `subscribe()` for a receiver.
    pub registrar_events: broadcast::Sender<RegistrarEvent>,
    /// The demonstration order service of `demo_shop:`, stopped with the server.
    pub demo_shop: Option<DemoShop>,
    /// The admin API, when configured and its address could be bound.
    pub admin: Option<crate::admin::AdminServer>,
    /// The call-records writer, when records are on; dropping it writes what is queued.
    pub records: Option<crate::records::writer::Writer>,
    /// The deliverer of `records.webhook`, when configured; dropping it sends or spools
    /// what waits.
    pub webhook: Option<crate::records::webhook::Webhook>,
    /// This node's membership of a cluster (`cluster:`); dropping it leaves cleanly.
    pub cluster: Option<crate::cluster::Cluster>,
}

/// The users that may register: the agents with a password or hashed secrets. An agent
/// whose hashes are not valid hex is left out (and logged), never let in without a check.
pub fn credentials_from_config(config: &Config) -> Credentials {
    let mut creds = Credentials::new();
    for (name, a) in &config.agents {
        let secret = match (&a.password, &a.ha1_md5, &a.ha1_sha256) {
            (Some(p), _, _) => Secret::Password(p.0.clone()),
            (None, None, None) => continue,
            (None, md5, sha) => match Secret::hashed(
                md5.as_ref().map(|s| s.0.as_str()),
                sha.as_ref().map(|s| s.0.as_str()),
            ) {
                Ok(s) => s,
                Err(e) => {
                    warn!(agent = %name, error = %e, "agent cannot register");
                    continue;
                }
            },
        };
        creds.insert(name, secret);
    }
    creds
}

impl Server {
    /// Loads everything and binds the listeners; a configuration with errors is refused
    /// with every diagnostic, before any socket is opened.
    pub async fn start(config: Config, media_workers: usize) -> Result<Server, StartError> {
        let credentials = Arc::new(SharedCredentials::new(credentials_from_config(&config)));
        // A reload of the configuration replaces them.
        Self::start_inner(
            config,
            media_workers,
            credentials.clone(),
            Some(credentials),
            None,
        )
        .await
    }

    /// Like [`Server::start`], with the calls' records going to `records` (embedding, and
    /// tests that collect records themselves) instead of the store `records:` names.
    pub async fn start_with_records(
        config: Config,
        media_workers: usize,
        records: crate::records::RecordSink,
    ) -> Result<Server, StartError> {
        let credentials = Arc::new(SharedCredentials::new(credentials_from_config(&config)));
        Self::start_inner(
            config,
            media_workers,
            credentials.clone(),
            Some(credentials),
            Some(records),
        )
        .await
    }

    /// Like [`Server::start`], with the registrar's users given rather than read from the
    /// configuration (tests, embedding).
    pub async fn start_with_credentials(
        config: Config,
        media_workers: usize,
        credentials: Arc<dyn CredentialStore>,
    ) -> Result<Server, StartError> {
        Self::start_inner(config, media_workers, credentials, None, None).await
    }

    async fn start_inner(
        config: Config,
        media_workers: usize,
        credentials: Arc<dyn CredentialStore>,
        reloadable: Option<Arc<SharedCredentials>>,
        records_sink: Option<crate::records::RecordSink>,
    ) -> Result<Server, StartError> {
        let loaded = preflight::load_all(&config);
        for d in &loaded.report.diagnostics {
            warn!("{d}");
        }
        if loaded.report.has_errors() {
            return Err(StartError::Config(loaded.report.summary()));
        }
        sample_password_exposed(&config)?;
        let config = Arc::new(config);
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let (records, webhook) = match records_sink {
            Some(_) => (None, None),
            None => (start_records(&config)?, start_webhook(&config)?),
        };
        let media = MediaEngine::start(media_workers).map_err(StartError::Media)?;
        let ports = PortPool::new(config.rtp_ports);
        let (in_tx, in_rx) = mpsc::channel(4096);
        let transport_cfg = TransportConfig {
            limits: config.connections,
            guard: config.guard.clone(),
            metrics: metrics.clone(),
            tls: config.tls.clone(),
        };
        let transports = Transports::bind(&config.listen, transport_cfg, in_tx)
            .await
            .map_err(StartError::Listeners)?;
        let local_addrs = transports.local_addrs();
        for (t, a) in &local_addrs {
            info!(transport = %t, address = %a, "listening for SIP");
        }
        let transport_stats = transports.stats.clone();
        let outbound = transports.clone();
        // Calls are created by one spawner task, which holds the services they share. The
        // endpoint and the queues only post to it: they run before the services are whole.
        let (spawn_tx, spawn_rx) = mpsc::unbounded_channel();
        let incoming = spawn_tx.clone();
        let new_call = Box::new(move |nc| {
            let inbox = call::Inbox::new();
            let mailbox = inbox.sip();
            let _ = incoming.send(Spawn::Incoming(nc, inbox));
            mailbox
        });
        let endpoint = Endpoint::new(
            EndpointConfig {
                user_agent: config.user_agent.clone(),
                max_calls: config.max_calls,
                timers: TimerConfig::with_t1(config.t1),
                registrar: RegistrarConfig {
                    realm: config.realm.clone(),
                    algorithms: config.digest_algorithms.clone(),
                    credentials,
                    // Kept beside the callback requests, when there is a hotline.yaml
                    // whose data folder it is (not for an all-defaults engine).
                    store: config
                        .path
                        .as_ref()
                        .map(|_| config.data_dir.join(REGISTRATIONS_FILE)),
                    metrics: Some(metrics.clone()),
                    ..RegistrarConfig::default()
                },
                guard: config.guard.clone(),
                admission: config.admission.clone(),
                load: {
                    let (media, ports) = (media.clone(), ports.clone());
                    LoadSource {
                        lateness: Box::new(move || media.lateness()),
                        ports_free: Box::new(move || ports.free_count()),
                    }
                },
                metrics: metrics.clone(),
            },
            transports,
            in_rx,
            new_call,
        );
        let endpoint_stats = endpoint.stats();
        let control = endpoint.control();
        let registrations = endpoint.registrations();
        let registrar_events = endpoint.registrar_events();
        let dialer: crate::queue::deliver::Dialer = Box::new(move |request| {
            let _ = spawn_tx.send(Spawn::CallBack(request));
        });
        let (acd, relay_link) = start_acd(
            &config,
            &registrations,
            &registrar_events,
            dialer,
            metrics.clone(),
        )?;
        let deps = Arc::new(CallDeps::new(
            media,
            ports,
            Live {
                config: config.clone(),
                flows: Arc::new(loaded.flows),
                prompts: loaded.prompts,
                version: 1,
                loaded_at: std::time::SystemTime::now(),
            },
            call::Services {
                listeners: local_addrs.clone(),
                transports: outbound,
                sip: endpoint.handle(),
                registrations: registrations.clone(),
                acd,
                credentials: reloadable,
                records: records_sink
                    .unwrap_or_else(|| records_sink_of(records.as_ref(), webhook.as_ref())),
                metrics,
            },
        ));
        tokio::spawn(spawn_calls(spawn_rx, Arc::downgrade(&deps)));
        let demo_shop = start_demo_shop(&config).await;
        let admin = start_admin(&config, &deps).await;
        let cluster = match &config.cluster {
            Some(c) => {
                let live = Arc::downgrade(&deps);
                let calls = Arc::new(move || live.upgrade().map_or(0, |d| d.registry.len()));
                let queues =
                    relay_link.map(|link| (link, config.queues.clone(), config.agents.clone()));
                Some(
                    crate::cluster::Cluster::start(c, calls, queues)
                        .map_err(StartError::Cluster)?,
                )
            }
            None => None,
        };
        info!(
            rtp_ports = %config.rtp_ports,
            flows = deps.live().flows.len(),
            prompts = deps.live().prompts.len(),
            "hotline ready"
        );
        Ok(Server {
            endpoint: Some(endpoint),
            deps,
            local_addrs,
            endpoint_stats,
            control,
            transport_stats,
            registrations,
            registrar_events,
            demo_shop,
            admin,
            records,
            webhook,
            cluster,
        })
    }

    /// Where the admin API listens (tests bind port 0 and ask).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|a| a.addr)
    }

    /// The first bound address of a transport (tests bind port 0 and ask).
    pub fn addr(&self, t: Protocol) -> Option<SocketAddr> {
        self.local_addrs
            .iter()
            .find(|(x, _)| *x == t)
            .map(|(_, a)| *a)
    }

    /// Serves until the listeners close, reloading on file changes and SIGHUP.
    pub async fn run(mut self) {
        tokio::spawn(crate::reload::watch(
            self.deps.clone(),
            std::time::Duration::from_millis(300),
        ));
        if let Some(ep) = self.endpoint.take() {
            ep.run().await;
        }
    }

    /// Serves in the background, reloading on file changes and SIGHUP, until the
    /// returned server is drained or dropped (`serve`).
    pub fn serve(self) -> RunningServer {
        tokio::spawn(crate::reload::watch(
            self.deps.clone(),
            std::time::Duration::from_millis(300),
        ));
        self.spawn()
    }

    /// Starts serving in the background (for tests and the load tool).
    pub fn spawn(mut self) -> RunningServer {
        let ep = self.endpoint.take();
        let task = tokio::spawn(async move {
            if let Some(ep) = ep {
                ep.run().await;
            }
        });
        RunningServer { server: self, task }
    }
}

/// What the spawner starts: a call that came in, or a call back the queues asked for.
/// Each is handed over once: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Spawn {
    Incoming(NewCall, call::Inbox),
    CallBack(crate::queue::deliver::CallbackDial),
}

/// Starts every call on its own task. Weak, so that neither the endpoint nor the queue
/// task keeps the engine alive.
async fn spawn_calls(mut rx: mpsc::UnboundedReceiver<Spawn>, deps: Weak<CallDeps>) {
    while let Some(s) = rx.recv().await {
        let Some(deps) = deps.upgrade() else {
            return;
        };
        match s {
            Spawn::Incoming(nc, inbox) => tokio::spawn(call::run(nc, inbox, deps)),
            Spawn::CallBack(request) => tokio::spawn(call::call_back(deps, request)),
        };
    }
}

/// The demonstration order service, when configured. A port already taken is only a
/// warning: calls are served all the same, and the sample's lookups go to `on_error`.
async fn start_demo_shop(config: &Config) -> Option<DemoShop> {
    let listen = config.demo_shop?.listen;
    match DemoShop::start(listen).await {
        Ok(shop) => {
            info!(address = %shop.addr(), "demo shop (demonstration order service) listening");
            Some(shop)
        }
        Err(e) => {
            warn!(address = %listen, error = %e, "cannot start the demo shop; serving calls without it");
            None
        }
    }
}

/// A server serving in the background; dropping it stops it.
pub struct RunningServer {
    pub server: Server,
    task: tokio::task::JoinHandle<()>,
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Every call ended by itself.
    Idle,
    /// `limits.drain` ran out; the calls left were ended.
    TimedOut { ended: usize },
    /// Told to stop at once meanwhile; the calls left were ended.
    Cut { ended: usize },
}

/// How long a drain waits at most, once it ended the calls left, for them to be over (their
/// BYE sent, their records handed to the writer). A BYE's own transaction may take longer
/// (32 s without an answer); the call's record does not wait for it.
const ENDED_CALLS_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl RunningServer {
    /// Calls in progress, as the endpoint counts them.
    pub fn active_calls(&self) -> usize {
        self.server
            .endpoint_stats
            .active_calls
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A graceful stop: new calls (and OPTIONS) get 503 from now on, calls in progress go on
    /// until they end or `limit` passes, or until `cut` completes (a second stop signal);
    /// then the calls left are ended (BYE, record `interrupted`) and this waits a short
    /// while for them. Dropping the server afterwards flushes the records.
    pub async fn drain(
        &self,
        limit: std::time::Duration,
        cut: impl std::future::Future<Output = ()>,
    ) -> Drained {
        let calls = self.active_calls();
        info!(
            calls,
            drain_secs = limit.as_secs(),
            "stopping: new calls are refused; calls in progress may go on"
        );
        self.server.control.drain();
        let deadline = tokio::time::Instant::now() + limit;
        let idle = async {
            // Polled, not signalled: the endpoint publishes its count after every event.
            while self.active_calls() > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        };
        let outcome = tokio::select! {
            () = idle => return self.drained(Drained::Idle),
            () = tokio::time::sleep_until(deadline) => Drained::TimedOut { ended: self.active_calls() },
            () = cut => Drained::Cut { ended: self.active_calls() },
        };
        warn!(
            calls = self.active_calls(),
            ?outcome,
            "ending the calls still in progress; their records say interrupted"
        );
        self.server.control.end_calls();
        let wait = tokio::time::Instant::now() + ENDED_CALLS_WAIT;
        while self.active_calls() > 0 && tokio::time::Instant::now() < wait {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        if self.active_calls() > 0 {
            warn!(
                calls = self.active_calls(),
                "calls did not end in time; the next start records them as interrupted"
            );
        }
        self.drained(outcome)
    }

    fn drained(&self, how: Drained) -> Drained {
        info!(?how, "drained; writing the last records and stopping");
        how
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        // The queues first: they must not act on the calls the stop ends.
        if let Some(acd) = self.server.deps.acd() {
            acd.stop();
        }
        self.task.abort();
    }
}

/// Starts the admin API if configured. Calls matter more than the admin's view of them, so
/// an address that cannot be bound is logged and the hotline answers calls without it.
async fn start_admin(config: &Config, deps: &Arc<CallDeps>) -> Option<crate::admin::AdminServer> {
    let admin = config.admin.as_ref()?;
    match crate::admin::start(admin, deps.clone()).await {
        Ok(a) => Some(a),
        Err(e) => {
            tracing::error!(address = %admin.listen, error = %e, "cannot start the admin API");
            None
        }
    }
}

/// The queues' handle for calls, and in a cluster the relay's link for the cluster thread.
type Queues = (
    Option<crate::queue::service::AcdHandle>,
    Option<crate::queue::relay::RelayLink>,
);

/// Starts the agent queues when any are configured. On one node the ACD runs here;
/// callback requests are kept in SQLite under the data folder when a queue offers
/// callbacks (so they survive a restart), in memory otherwise. In a cluster the leader runs
/// the ACD and this node relays (docs/cluster.md).
fn start_acd(
    config: &Config,
    registrations: &Registrations,
    registrar_events: &broadcast::Sender<RegistrarEvent>,
    dialer: crate::queue::deliver::Dialer,
    metrics: Arc<crate::metrics::Metrics>,
) -> Result<Queues, StartError> {
    use crate::queue::{Acd, CallbackStore, MemoryStore, SqliteStore};
    if config.queues.is_empty() {
        return Ok((None, None));
    }
    if config.cluster.is_some() {
        let (handle, link) = crate::queue::relay::spawn(
            config.queues.clone(),
            config.agents.clone(),
            registrations.clone(),
            registrar_events.subscribe(),
            Some(dialer),
            metrics,
        );
        info!(
            queues = config.queues.len(),
            agents = config.agents.len(),
            "agent queues shared with the cluster"
        );
        return Ok((Some(handle), Some(link)));
    }
    let durable = config.queues.values().any(|q| q.callback.is_some());
    let store: Box<dyn CallbackStore> = if durable {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let path = crate::queue::service::store_path(&config.data_dir);
        Box::new(
            SqliteStore::open(&path)
                .map_err(|source| StartError::CallbackStore { path, source })?,
        )
    } else {
        Box::new(MemoryStore::new())
    };
    let acd = Acd::new(
        &config.queues,
        &config.agents,
        store,
        std::time::Instant::now(),
    )
    .map_err(StartError::Queues)?;
    info!(
        queues = config.queues.len(),
        agents = config.agents.len(),
        "agent queues ready"
    );
    let handle = crate::queue::service::spawn(
        acd,
        registrations.clone(),
        registrar_events.subscribe(),
        Some(dialer),
        metrics,
    );
    Ok((Some(handle), None))
}

/// Where calls send their records: the store's writer, and beside it the webhook when
/// there is one (the webhook comes with a store; the writer's counters are the sink's).
fn records_sink_of(
    writer: Option<&crate::records::writer::Writer>,
    webhook: Option<&crate::records::webhook::Webhook>,
) -> crate::records::RecordSink {
    use crate::records::{FanOut, RecordSink};
    match (writer, webhook) {
        (Some(w), Some(h)) => RecordSink::with_counters(
            std::sync::Arc::new(FanOut(vec![w.deliverer(), h.deliverer()])),
            w.counters(),
        ),
        (Some(w), None) => w.sink(),
        (None, Some(h)) => RecordSink::new(h.deliverer()),
        (None, None) => RecordSink::disabled(),
    }
}

/// Starts the deliverer of `records.webhook`, when configured; its spool is
/// `webhook.spool` in the data folder, beside the store's.
fn start_webhook(config: &Config) -> Result<Option<crate::records::webhook::Webhook>, StartError> {
    use crate::records::webhook::{Policy, Target, Webhook};
    let Some(wc) = config.records.as_ref().and_then(|r| r.webhook.as_ref()) else {
        return Ok(None);
    };
    let target = Target::from_config(wc).map_err(StartError::Webhook)?;
    std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    info!(url = %target.url, "call records also go to the webhook");
    Webhook::start(target, Policy::new(config.data_dir.join("webhook.spool")))
        .map(Some)
        .map_err(StartError::WebhookThread)
}

/// How long the start waits for the records store's first answer before serving anyway.
const RECORDS_READY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Starts the records writer when `records:` is on, and waits (a bounded time) until it
/// has replayed the spool and marked the calls an earlier run left open, so that happens
/// before the first call. An SQLite file that cannot be opened stops the start (the fix
/// is on this machine); a database server that is down does not: the writer keeps
/// trying and spools meanwhile.
fn start_records(config: &Config) -> Result<Option<crate::records::writer::Writer>, StartError> {
    use crate::config::RecordsStore;
    use crate::records::writer::{Writer, WriterConfig};
    let Some(rc) = &config.records else {
        return Ok(None);
    };
    let mut dirs = vec![config.data_dir.clone()];
    if let RecordsStore::Sqlite(path) = &rc.store
        && let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
    {
        dirs.push(parent.to_path_buf());
    }
    for dir in dirs {
        std::fs::create_dir_all(&dir)
            .map_err(|source| StartError::DataDir { path: dir, source })?;
    }
    if let RecordsStore::Postgres(url) = &rc.store
        && let Err(e) = url.parse::<postgres::Config>()
    {
        return Err(StartError::Records(
            crate::records::store::StoreError::Target(format!(
                "'{}' is not a usable PostgreSQL URL: {e}",
                crate::records::postgres::redact(url)
            )),
        ));
    }
    let mut wc = WriterConfig::new(config.data_dir.join("records.spool"));
    wc.keep = Some(rc.keep);
    let target = rc.store.clone();
    let started_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let writer = Writer::start(
        Box::new(move || crate::records::open_store(&target)),
        wc,
        started_ms,
    )
    .map_err(StartError::RecordsWriter)?;
    match writer.wait_ready(RECORDS_READY_WAIT) {
        Some(Ok(s)) => info!(
            replayed = s.replayed,
            interrupted = s.interrupted,
            "call records ready"
        ),
        Some(Err(e)) => {
            if let RecordsStore::Sqlite(path) = &rc.store {
                drop(writer);
                warn!(path = %path.display(), "the records file cannot be used");
                return Err(StartError::Records(
                    crate::records::store::StoreError::Target(e),
                ));
            }
            warn!(error = %e, "records store unavailable; calls are served, their records spooled until it answers");
        }
        None => warn!("records store slow to answer; calls are served, their records wait"),
    }
    Ok(Some(writer))
}
