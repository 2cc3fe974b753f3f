//! The running hotline: loads prompts and flows, opens the listeners, starts the media
//! clock and the SIP endpoint, and creates a call task for every accepted INVITE.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::call::{self, CallDeps, Live};
use crate::check;
use crate::config::{Config, Transport};
use crate::media::clock::MediaEngine;
use crate::media::ports::PortPool;
use crate::sip::endpoint::{Endpoint, EndpointConfig, EndpointStats};
use crate::sip::transaction::TimerConfig;
use crate::sip::transport::{TransportStats, Transports};

pub struct Server {
    endpoint: Option<Endpoint>,
    pub deps: Arc<CallDeps>,
    pub local_addrs: Vec<(Transport, SocketAddr)>,
    pub endpoint_stats: Arc<EndpointStats>,
    pub transport_stats: Arc<TransportStats>,
    /// The admin API, when configured and its address could be bound.
    pub admin: Option<crate::admin::AdminServer>,
}

impl Server {
    /// Loads everything and binds the listeners; a configuration with errors is refused
    /// with every diagnostic, before any socket is opened.
    pub async fn start(config: Config, media_workers: usize) -> anyhow::Result<Server> {
        let loaded = check::load_all(&config);
        for d in &loaded.report.diagnostics {
            warn!("{d}");
        }
        if loaded.report.has_errors() {
            anyhow::bail!(
                "the configuration has errors ({}); run `hotline check` for details",
                loaded.report.summary()
            );
        }
        let config = Arc::new(config);
        let media = MediaEngine::start(media_workers).context("starting the media clock")?;
        let deps = Arc::new(CallDeps::new(
            media,
            PortPool::new(config.rtp_ports),
            Live {
                config: config.clone(),
                flows: Arc::new(loaded.flows),
                prompts: loaded.prompts,
                version: 1,
                loaded_at: std::time::SystemTime::now(),
            },
        ));
        let (in_tx, in_rx) = mpsc::channel(4096);
        let transports = Transports::bind(&config.listen, in_tx)
            .await
            .context("opening the SIP listeners")?;
        let local_addrs = transports.local_addrs();
        for (t, a) in &local_addrs {
            info!(transport = %t, address = %a, "listening for SIP");
        }
        let transport_stats = transports.stats.clone();
        let d2 = deps.clone();
        let new_call = Box::new(move |nc| {
            tokio::spawn(call::run(nc, d2.clone()));
        });
        let endpoint = Endpoint::new(
            EndpointConfig {
                user_agent: config.user_agent.clone(),
                max_calls: config.max_calls,
                timers: TimerConfig {
                    t1: config.t1,
                    t2: TimerConfig::default().t2.max(config.t1),
                    ..TimerConfig::default()
                },
            },
            transports,
            in_rx,
            new_call,
        );
        let endpoint_stats = endpoint.stats();
        let admin = start_admin(&config, &deps).await;
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
            transport_stats,
            admin,
        })
    }

    /// Where the admin API listens (tests bind port 0 and ask).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|a| a.addr)
    }

    /// The first bound address of a transport (tests bind port 0 and ask).
    pub fn addr(&self, t: Transport) -> Option<SocketAddr> {
        self.local_addrs
            .iter()
            .find(|(x, _)| *x == t)
            .map(|(_, a)| *a)
    }

    /// Serves until the listeners close, reloading on file changes and SIGHUP.
    pub async fn run(mut self) -> anyhow::Result<()> {
        tokio::spawn(crate::reload::watch(
            self.deps.clone(),
            std::time::Duration::from_millis(300),
        ));
        if let Some(ep) = self.endpoint.take() {
            ep.run().await;
        }
        Ok(())
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

/// A server serving in the background; dropping it stops it.
pub struct RunningServer {
    pub server: Server,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RunningServer {
    fn drop(&mut self) {
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
