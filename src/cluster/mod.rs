//! The engine's side of a cluster (`cluster:` in hotline.yaml, docs/cluster.md): a thread
//! with its own PostgreSQL session that keeps this node's lease in `cluster_nodes`, holds
//! the leader lock when it can, and, while it leads, marks the nodes whose lease ran out.
//!
//! The decisions are `hotline_core::cluster`'s; this module only runs the queries and
//! reads the clock. It never blocks a call: calls and the admin API read only what it
//! publishes ([`Cluster::is_leader`]). Its session is its own, so that the leader lock
//! (a session-level advisory lock) lives exactly as long as this node's connection: a
//! killed node's session ends and the lock is free for another node.

pub mod queues;
pub mod status;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};
use tracing::{debug, info, warn};

use crate::config::ClusterConfig;
use crate::queue::config::{AgentsConfig, QueuesConfig};
use crate::queue::relay::RelayLink;
use crate::records::postgres::{DEFAULT_CONNECT_TIMEOUT, redact};
use hotline_core::cluster::{Change, Command, Event, Membership, NodeSeen};
use queues::SharedQueues;

/// Serialises the creation of the cluster's tables by nodes starting together.
const SCHEMA_LOCK: i64 = 0x6863_6c75_7374_6572;

/// The nodes table. `backend_pid` is the node's session, so `cluster status` can tell
/// which node holds the leader lock.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS cluster_nodes (
    name TEXT PRIMARY KEY,
    started_at TIMESTAMPTZ NOT NULL,
    seen_at TIMESTAMPTZ NOT NULL,
    calls BIGINT NOT NULL DEFAULT 0,
    backend_pid INTEGER NOT NULL,
    lost_at TIMESTAMPTZ,
    left_at TIMESTAMPTZ
)";

/// The leader lock's key: one per schema, so clusters (and tests) in separate schemas of
/// one database never share a leader. FNV-1a over the schema's name.
pub fn leader_key(schema: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in "hotline-leader:".bytes().chain(schema.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

/// Connects with the timeouts a cluster needs: a bounded connect, and server-side TCP
/// keepalives so the server ends the session (and frees the leader lock) within seconds
/// when this node's machine vanishes without closing it.
pub fn connect(url: &str) -> Result<Client, String> {
    let mut cfg = postgres::Config::from_str(url)
        .map_err(|e| format!("'{}' is not a usable PostgreSQL URL: {e}", redact(url)))?;
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
    }
    let mut client = cfg
        .connect(NoTls)
        .map_err(|e| format!("cannot reach {}: {e}", redact(url)))?;
    client
        .batch_execute(
            "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 1; \
             SET tcp_keepalives_count = 3; SET statement_timeout = 5000;",
        )
        .map_err(|e| format!("setting up the session: {e}"))?;
    let mut tx = client.transaction().map_err(|e| e.to_string())?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .map_err(|e| e.to_string())?;
    tx.batch_execute(SCHEMA).map_err(|e| e.to_string())?;
    tx.batch_execute(queues::SCHEMA)
        .map_err(|e| e.to_string())?;
    tx.commit().map_err(|e| e.to_string())?;
    Ok(client)
}

/// The schema the session works in (the leader lock is per schema).
pub fn current_schema(client: &mut Client) -> Result<String, postgres::Error> {
    client.query_one("SELECT current_schema()", &[])?.try_get(0)
}

/// A running membership; dropping it leaves the cluster cleanly (the row says `left`,
/// the lock is released).
pub struct Cluster {
    leader: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Cluster {
    /// Starts the membership thread. `calls` counts this node's calls in progress (shown
    /// by `cluster status`); with `queues`, the thread also carries the shared queues
    /// (the relay's link and the configuration the ACD starts from).
    pub fn start(
        config: &ClusterConfig,
        calls: Arc<dyn Fn() -> usize + Send + Sync>,
        queues: Option<(RelayLink, QueuesConfig, AgentsConfig)>,
    ) -> std::io::Result<Cluster> {
        let leader = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let queues = queues.map(|(link, queues, agents)| {
            SharedQueues::new(&config.node, incarnation(), link, queues, agents)
        });
        let mut keeper = Keeper {
            queues,
            config: config.clone(),
            calls,
            client: None,
            key: 0,
            fresh: true,
            unreachable: false,
            leader: leader.clone(),
        };
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("hotline-cluster".into())
            .spawn(move || keeper.run(&stopping))?;
        info!(node = %config.node, lease = ?config.lease, "joining the cluster");
        Ok(Cluster {
            leader,
            stop,
            thread: Some(thread),
        })
    }

    /// Whether this node holds the leader lock (as of its last query).
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// This process among the node's lives: the start time in nanoseconds with the process id,
/// so a node restarted within the same nanosecond still differs.
fn incarnation() -> i64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    nanos ^ i64::from(std::process::id())
}

struct Keeper {
    /// The shared queues, when this node has queues.
    queues: Option<SharedQueues>,
    config: ClusterConfig,
    calls: Arc<dyn Fn() -> usize + Send + Sync>,
    client: Option<Client>,
    key: i64,
    /// No lease written by this process yet: the first one also sets `started_at`.
    fresh: bool,
    /// The last connection attempt failed (logged once per outage).
    unreachable: bool,
    leader: Arc<AtomicBool>,
}

impl Keeper {
    fn run(&mut self, stop: &AtomicBool) {
        let mut m = Membership::new(Instant::now(), self.config.lease);
        while !stop.load(Ordering::Relaxed) {
            while let Some(cmd) = m.poll_command(Instant::now()) {
                let event = self.run_command(cmd);
                if let Some(e) = event {
                    m.handle(Instant::now(), e);
                }
            }
            while let Some(change) = m.poll_change() {
                self.report(change);
            }
            self.leader.store(m.is_leader(), Ordering::Relaxed);
            let wait = m
                .poll_timeout()
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(500));
            if !self.queues_round(&mut m, wait) {
                std::thread::park_timeout(wait);
            }
        }
        self.leave();
    }

    /// The shared queues' round, then the wait for a wake-up (at most `wait`, and at most
    /// a tick so that the relay's inputs go out promptly). False when there was no round
    /// (no queues, or no session): the caller waits instead.
    fn queues_round(&mut self, m: &mut Membership, wait: Duration) -> bool {
        const TICK: Duration = Duration::from_millis(20);
        let leader = m.is_leader();
        let (Some(q), Some(c)) = (self.queues.as_mut(), self.client.as_mut()) else {
            return false;
        };
        let r = q
            .step(c, leader)
            .and_then(|()| Ok(q.wait(c, wait.min(TICK))?));
        if let Err(e) = r {
            warn!(node = %self.config.node, error = %e, "shared queues: the database failed; reconnecting");
            q.session_lost();
            self.client = None;
            m.handle(Instant::now(), Event::Failed);
            return false;
        }
        true
    }

    fn report(&self, change: Change) {
        let node = &self.config.node;
        match change {
            Change::BecameLeader => info!(node = %node, "this node leads the cluster"),
            Change::SteppedDown => warn!(node = %node, "this node no longer leads the cluster"),
            Change::LeaseLost => {
                warn!(node = %node, "the cluster database is unreachable: other nodes count this one lost")
            }
            Change::LeaseBack => info!(node = %node, "the cluster database answers again"),
        }
    }

    /// The session, connecting when there is none. A failure is logged once per outage.
    fn client(&mut self) -> Option<&mut Client> {
        if self.client.is_none() {
            match connect(&self.config.store).and_then(|mut c| {
                let schema = current_schema(&mut c).map_err(|e| e.to_string())?;
                Ok((c, schema))
            }) {
                Ok((mut c, schema)) => {
                    if let Some(q) = self.queues.as_mut()
                        && let Err(e) = q.prepare(&mut c)
                    {
                        warn!(node = %self.config.node, error = %e, "cluster database unavailable");
                        return None;
                    }
                    self.key = leader_key(&schema);
                    self.client = Some(c);
                    if std::mem::take(&mut self.unreachable) {
                        info!(node = %self.config.node, "cluster database reachable again");
                    }
                }
                Err(e) => {
                    if !self.unreachable {
                        self.unreachable = true;
                        warn!(node = %self.config.node, error = %e, "cluster database unavailable");
                    } else {
                        debug!(node = %self.config.node, error = %e, "cluster database still unavailable");
                    }
                    return None;
                }
            }
        }
        self.client.as_mut()
    }

    fn run_command(&mut self, cmd: Command) -> Option<Event> {
        let node = self.config.node.clone();
        let calls = i64::try_from((self.calls)()).unwrap_or(i64::MAX);
        let fresh = self.fresh;
        let key = self.key;
        let lease = self.config.lease.as_secs_f64();
        let client = match self.client() {
            Some(c) => c,
            None => return Some(Event::Failed),
        };
        let result = match cmd {
            Command::Renew => client
                .execute(
                    "INSERT INTO cluster_nodes (name, started_at, seen_at, calls, backend_pid)
                     VALUES ($1, now(), now(), $2, pg_backend_pid())
                     ON CONFLICT (name) DO UPDATE SET
                       started_at = CASE WHEN $3 THEN now() ELSE cluster_nodes.started_at END,
                       seen_at = now(), calls = $2, backend_pid = pg_backend_pid(),
                       lost_at = NULL, left_at = NULL",
                    &[&node, &calls, &fresh],
                )
                .map(|_| Some(Event::Renewed)),
            Command::TryLock => client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
                .and_then(|r| r.try_get::<_, bool>(0))
                .map(|held| Some(Event::Lock(held))),
            Command::ReadNodes => client
                .query(
                    "SELECT name, EXTRACT(EPOCH FROM now() - seen_at)::float8,
                            lost_at IS NOT NULL OR left_at IS NOT NULL
                     FROM cluster_nodes WHERE name <> $1",
                    &[&node],
                )
                .map(|rows| {
                    Some(Event::Nodes(
                        rows.iter()
                            .map(|r| NodeSeen {
                                name: r.get(0),
                                since_renewal: Duration::from_secs_f64(r.get::<_, f64>(1).max(0.0)),
                                settled: r.get(2),
                            })
                            .collect(),
                    ))
                }),
            Command::MarkLost(name) => client
                .execute(
                    "UPDATE cluster_nodes SET lost_at = now()
                     WHERE name = $1 AND lost_at IS NULL AND left_at IS NULL
                       AND seen_at < now() - make_interval(secs => $2)",
                    &[&name, &lease],
                )
                .map(|n| {
                    if n > 0 {
                        warn!(node = %name, "cluster node lost: its lease ran out");
                    }
                    // Nothing to tell the membership: the next sweep sees it settled.
                    None
                }),
        };
        match result {
            Ok(Some(Event::Renewed)) => {
                self.fresh = false;
                Some(Event::Renewed)
            }
            Ok(e) => e,
            Err(e) => {
                warn!(node = %node, error = %e, "cluster query failed; reconnecting");
                // A broken session may have lost the lock: start over with a new one.
                self.client = None;
                Some(Event::Failed)
            }
        }
    }

    /// Leaving cleanly: the row says so (nobody counts this node lost) and the lock is
    /// released with the session.
    fn leave(&mut self) {
        let node = self.config.node.clone();
        if let Some(c) = self.client.as_mut() {
            let _ = c.execute(
                "UPDATE cluster_nodes SET left_at = now() WHERE name = $1",
                &[&node],
            );
        }
        self.client = None;
        self.leader.store(false, Ordering::Relaxed);
        info!(node = %node, "left the cluster");
    }
}
