//! The queues a cluster shares (docs/cluster.md): the rows that carry them through
//! PostgreSQL, and the leader's ACD.
//!
//! Every node writes the ACD inputs of its own calls to `acd_inputs` and wakes the leader
//! (`NOTIFY` as a wake-up only; each side also polls every second). The node that holds the
//! leader lock runs the one ACD: in one short transaction per round it takes the waiting
//! inputs, feeds them to the pure [`Acd`] with its own clock, writes the resulting actions
//! to `acd_actions` addressed to the node that holds each call, and saves the ACD's whole
//! state to `acd_state`. The state and the actions commit together, so a successor that
//! takes the lock goes on from exactly the last committed round, and an input is applied
//! once. The leader also knows which node holds each call: when a node's lease runs out,
//! it leaves cleanly, or it comes back as a new process, its callers leave the line as
//! lost (never abandoned) and the agents ringing for them are free again.
//!
//! Runs on the cluster thread, on that thread's session (the one that holds the lock), so
//! a leader that lost its session can write nothing more. Never touches a call: the relay
//! (`queue::relay`) does, with the actions this module hands it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, Transaction};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::queue::acd::{Acd, AcdError, AcdState, Action, Input, Snapshot};
use crate::queue::config::{AgentsConfig, QueuesConfig};
use crate::queue::relay::{RelayLink, ToCluster};
use crate::queue::store::MemoryStore;

/// The tables, created with the nodes table. An input's `body` is NULL for the row a node
/// writes when its process starts (so the leader learns that its earlier calls are gone).
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS acd_inputs (
    seq BIGSERIAL PRIMARY KEY,
    node TEXT NOT NULL,
    incarnation BIGINT NOT NULL,
    written_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    body TEXT
);
CREATE TABLE IF NOT EXISTS acd_actions (
    id BIGSERIAL PRIMARY KEY,
    node TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS acd_actions_node ON acd_actions (node, id);
CREATE TABLE IF NOT EXISTS acd_state (
    one BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
    leader TEXT NOT NULL,
    saved_at TIMESTAMPTZ NOT NULL,
    body TEXT NOT NULL
)";

/// The wake-up channels: inputs were written (for the leader); actions were written (the
/// payload names the node they are for).
const INPUTS: &str = "hotline_acd_inputs";
const ACTIONS: &str = "hotline_acd_actions";

/// How often each side looks at the tables without being woken.
const POLL: Duration = Duration::from_secs(1);
/// Inputs taken in one round.
const BATCH: i64 = 1000;
/// Inputs kept in memory while the database is away; beyond, the oldest are dropped.
const MAX_PENDING: usize = 100_000;

/// Why a round of the shared queues did not finish.
#[derive(Debug, thiserror::Error)]
pub enum QueuesError {
    #[error("the cluster database: {0}")]
    Database(#[from] postgres::Error),
    /// The configuration was checked before the engine started, so this is the engine's
    /// fault; the round is tried again.
    #[error("the queue configuration was refused: {0}")]
    Refused(AcdError),
}

/// One process of one node: a node that restarts is a new incarnation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Home {
    node: String,
    incarnation: i64,
}

/// What the leader keeps beside the ACD: where each call lives.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Homes {
    calls: HashMap<String, Home>,
    /// Call backs being dialled, by request id: the node dialling.
    dialing: HashMap<u64, Home>,
    /// The newest incarnation seen of each node.
    nodes: HashMap<String, i64>,
}

/// The saved state: the ACD and the homes, committed with the round's actions.
#[derive(Serialize, Deserialize)]
struct Saved {
    acd: AcdState,
    homes: Homes,
}

struct Leading {
    acd: Acd,
    homes: Homes,
    last_sweep: Option<Instant>,
    /// Changed outside a round (just restored, or reconfigured): the next round runs the
    /// ACD's timers and offers at once, and saves.
    dirty: bool,
}

/// This node's side of the shared queues.
pub struct SharedQueues {
    node: String,
    incarnation: i64,
    link: RelayLink,
    queues: QueuesConfig,
    agents: AgentsConfig,
    /// Inputs not yet written; the first write of a process is its start row (`None`).
    pending: VecDeque<Option<Input>>,
    leading: Option<Leading>,
    wake_inputs: bool,
    wake_actions: bool,
    last_inputs_read: Option<Instant>,
    last_actions_read: Option<Instant>,
}

impl SharedQueues {
    pub fn new(
        node: &str,
        incarnation: i64,
        link: RelayLink,
        queues: QueuesConfig,
        agents: AgentsConfig,
    ) -> SharedQueues {
        SharedQueues {
            node: node.to_string(),
            incarnation,
            link,
            queues,
            agents,
            pending: VecDeque::from([None]),
            leading: None,
            wake_inputs: false,
            wake_actions: true,
            last_inputs_read: None,
            last_actions_read: None,
        }
    }

    /// On a new session: listen for the wake-ups.
    pub fn prepare(&mut self, client: &mut Client) -> Result<(), postgres::Error> {
        client.batch_execute(&format!("LISTEN {INPUTS}; LISTEN {ACTIONS}"))?;
        self.wake_actions = true;
        self.wake_inputs = true;
        Ok(())
    }

    /// The session broke: what this node led is only what the database says now.
    pub fn session_lost(&mut self) {
        if self.leading.take().is_some() {
            warn!(node = %self.node, "no longer leading the queues");
        }
    }

    /// Whether this node runs the queues' ACD now.
    pub fn leads(&self) -> bool {
        self.leading.is_some()
    }

    /// One round: the relay's requests, the inputs written, the actions for this node
    /// read, and when `leader`, the ACD's round. An error means the session is unusable.
    pub fn step(&mut self, client: &mut Client, leader: bool) -> Result<(), QueuesError> {
        let mut snapshots = Vec::new();
        while let Ok(r) = self.link.requests.try_recv() {
            match r {
                ToCluster::Input(i) => {
                    if self.pending.len() >= MAX_PENDING {
                        self.pending.pop_front();
                        warn!("the cluster database is away: the oldest queue input is dropped");
                    }
                    self.pending.push_back(Some(i));
                }
                ToCluster::Snapshot(tx) => snapshots.push(tx),
                ToCluster::Reconfigure { queues, agents } => {
                    if let Some(l) = self.leading.as_mut() {
                        l.dirty = true;
                        match l.acd.reconfigure(Instant::now(), &queues, &agents) {
                            Ok(notes) => {
                                info!(?notes, "the shared queues took the new configuration")
                            }
                            Err(e) => {
                                warn!(error = %e, "the shared queues kept their configuration")
                            }
                        }
                    }
                    self.queues = queues;
                    self.agents = agents;
                }
            }
        }
        self.write_inputs(client)?;
        self.read_actions(client)?;
        if !leader {
            self.session_lost();
        } else {
            if self.leading.is_none() {
                self.take_over(client)?;
            }
            if let Err(e) = self.lead(client) {
                // The round did not commit: the ACD in memory may be ahead of the tables.
                self.leading = None;
                return Err(e.into());
            }
        }
        for tx in snapshots {
            match self.snapshot(client) {
                Ok(s) => {
                    let _ = tx.send(s);
                }
                Err(e) => warn!(error = %e, "queue snapshot unavailable"),
            }
        }
        Ok(())
    }

    /// Waits at most `max` for a wake-up (or less, when the ACD has a deadline sooner).
    pub fn wait(&mut self, client: &mut Client, max: Duration) -> Result<(), postgres::Error> {
        let mut wait = max;
        if let Some(d) = self.leading.as_ref().and_then(|l| l.acd.poll_timeout()) {
            wait = wait.min(d.saturating_duration_since(Instant::now()));
        }
        if !self.link_idle() {
            wait = Duration::ZERO;
        }
        let mut notes = client.notifications();
        let first = notes.timeout_iter(wait).next()?;
        let rest: Vec<_> = notes.iter().collect()?;
        for n in first.into_iter().chain(rest) {
            match n.channel() {
                INPUTS => self.wake_inputs = true,
                ACTIONS if n.payload() == self.node => self.wake_actions = true,
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether nothing is waiting to be written.
    fn link_idle(&self) -> bool {
        self.pending.is_empty()
    }

    fn write_inputs(&mut self, client: &mut Client) -> Result<(), postgres::Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut tx = client.transaction()?;
        let insert =
            tx.prepare("INSERT INTO acd_inputs (node, incarnation, body) VALUES ($1, $2, $3)")?;
        for input in &self.pending {
            let body = input
                .as_ref()
                .map(|i| serde_json::to_string(i).unwrap_or_default());
            tx.execute(&insert, &[&self.node, &self.incarnation, &body])?;
        }
        tx.execute("SELECT pg_notify($1, '')", &[&INPUTS])?;
        tx.commit()?;
        self.pending.clear();
        self.wake_inputs = true;
        Ok(())
    }

    fn read_actions(&mut self, client: &mut Client) -> Result<(), postgres::Error> {
        let due = self.last_actions_read.is_none_or(|t| t.elapsed() >= POLL);
        if !(self.wake_actions || due) {
            return Ok(());
        }
        self.wake_actions = false;
        self.last_actions_read = Some(Instant::now());
        let rows = client.query(
            "DELETE FROM acd_actions WHERE node = $1 RETURNING id, body",
            &[&self.node],
        )?;
        let mut actions: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        actions.sort_by_key(|(id, _)| *id);
        for (id, body) in actions {
            match serde_json::from_str::<Action>(&body) {
                Ok(a) => {
                    let _ = self.link.actions.send(a);
                }
                Err(e) => warn!(id, error = %e, "an unreadable queue action was skipped"),
            }
        }
        Ok(())
    }

    /// Becomes the ACD's leader: the last committed state, or a fresh ACD in a new cluster.
    fn take_over(&mut self, client: &mut Client) -> Result<(), QueuesError> {
        let now = Instant::now();
        let row = client.query_opt(
            "SELECT body, EXTRACT(EPOCH FROM now() - saved_at)::float8 FROM acd_state",
            &[],
        )?;
        let (acd, homes) = match row {
            Some(r) => match self.restore(&r.get::<_, String>(0), r.get(1), now) {
                Ok(x) => x,
                Err(e) => {
                    warn!(error = %e, "the saved queue state is unusable; starting the queues afresh");
                    (self.fresh(now)?, Homes::default())
                }
            },
            None => (self.fresh(now)?, Homes::default()),
        };
        info!(node = %self.node, calls = homes.calls.len(), "this node leads the queues");
        self.leading = Some(Leading {
            acd,
            homes,
            last_sweep: None,
            dirty: true,
        });
        Ok(())
    }

    /// A new ACD, as the first leader of a new cluster starts it.
    fn fresh(&self, now: Instant) -> Result<Acd, QueuesError> {
        Acd::new(
            &self.queues,
            &self.agents,
            Box::new(MemoryStore::new()),
            now,
        )
        .map_err(QueuesError::Refused)
    }

    fn restore(&self, body: &str, age_secs: f64, now: Instant) -> Result<(Acd, Homes), String> {
        let saved: Saved = serde_json::from_str(body).map_err(|e| e.to_string())?;
        let age = Duration::from_secs_f64(age_secs.max(0.0));
        let saved_at = now.checked_sub(age).unwrap_or(now);
        let acd = Acd::restore(&self.queues, &self.agents, saved.acd, saved_at, now)
            .map_err(|e| e.to_string())?;
        Ok((acd, saved.homes))
    }

    /// The live state: the leader's own, or the last state the leader saved, as of now.
    fn snapshot(&self, client: &mut Client) -> Result<Snapshot, String> {
        let now = Instant::now();
        if let Some(l) = &self.leading {
            return Ok(l.acd.snapshot(now));
        }
        let row = client
            .query_opt(
                "SELECT body, EXTRACT(EPOCH FROM now() - saved_at)::float8 FROM acd_state",
                &[],
            )
            .map_err(|e| e.to_string())?;
        match row {
            Some(r) => Ok(self
                .restore(&r.get::<_, String>(0), r.get(1), now)?
                .0
                .snapshot(now)),
            None => Ok(self.fresh(now).map_err(|e| e.to_string())?.snapshot(now)),
        }
    }

    /// The leader's round, in one transaction.
    fn lead(&mut self, client: &mut Client) -> Result<(), postgres::Error> {
        let now = Instant::now();
        let node = self.node.clone();
        let read_due =
            self.wake_inputs || self.last_inputs_read.is_none_or(|t| t.elapsed() >= POLL);
        let Some(l) = self.leading.as_mut() else {
            return Ok(());
        };
        let sweep_due = l.last_sweep.is_none_or(|t| now.duration_since(t) >= POLL);
        let timeout_due = l.dirty || l.acd.poll_timeout().is_some_and(|d| d <= now);
        l.dirty = false;
        if !(read_due || sweep_due || timeout_due) {
            return Ok(());
        }
        let mut tx = client.transaction()?;
        let mut changed = false;
        if timeout_due {
            l.acd.handle_timeout(now);
            changed = true;
        }
        if read_due {
            self.wake_inputs = false;
            self.last_inputs_read = Some(now);
            let rows = tx.query(
                "DELETE FROM acd_inputs WHERE seq IN
                   (SELECT seq FROM acd_inputs ORDER BY seq LIMIT $1)
                 RETURNING seq, node, incarnation, body",
                &[&BATCH],
            )?;
            let mut rows: Vec<(i64, String, i64, Option<String>)> = rows
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
                .collect();
            rows.sort_by_key(|r| r.0);
            if rows.len() as i64 == BATCH {
                self.wake_inputs = true;
            }
            for (seq, from, incarnation, body) in rows {
                changed = true;
                let home = Home {
                    node: from,
                    incarnation,
                };
                l.meet(now, &home);
                let Some(body) = body else { continue };
                match serde_json::from_str::<Input>(&body) {
                    Ok(input) => l.apply(now, home, input),
                    Err(e) => warn!(seq, error = %e, "an unreadable queue input was skipped"),
                }
            }
        }
        if sweep_due {
            l.last_sweep = Some(now);
            let gone: HashSet<String> = tx
                .query(
                    "SELECT name FROM cluster_nodes
                     WHERE (lost_at IS NOT NULL OR left_at IS NOT NULL) AND name <> $1",
                    &[&node],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if l.lose(now, |h| gone.contains(&h.node)) {
                changed = true;
            }
            if !gone.is_empty() {
                let gone: Vec<String> = gone.into_iter().collect();
                tx.execute("DELETE FROM acd_actions WHERE node = ANY($1)", &[&gone])?;
            }
        }
        if !changed {
            return tx.commit();
        }
        let own = l.route(&node, &mut tx)?;
        let saved = Saved {
            acd: l.acd.save(now),
            homes: std::mem::take(&mut l.homes),
        };
        let body = serde_json::to_string(&saved).unwrap_or_default();
        l.homes = saved.homes;
        tx.execute(
            "INSERT INTO acd_state (one, leader, saved_at, body) VALUES (true, $1, now(), $2)
             ON CONFLICT (one) DO UPDATE SET leader = $1, saved_at = now(), body = $2",
            &[&node, &body],
        )?;
        tx.commit()?;
        for a in own {
            let _ = self.link.actions.send(a);
        }
        Ok(())
    }
}

impl Leading {
    /// An input row from `home`: a node seen in a new process has lost its earlier calls.
    fn meet(&mut self, now: Instant, home: &Home) {
        let known = self.homes.nodes.insert(home.node.clone(), home.incarnation);
        if known.is_some_and(|i| i != home.incarnation) {
            info!(node = %home.node, "a node started again: its earlier calls are gone");
            self.lose(now, |h| {
                h.node == home.node && h.incarnation != home.incarnation
            });
        }
    }

    fn apply(&mut self, now: Instant, home: Home, input: Input) {
        match &input {
            Input::Join { call, .. } | Input::CallbackAnswered { call, .. } => {
                self.homes.calls.insert(call.clone(), home);
            }
            _ => {}
        }
        if let Input::CallbackAnswered { id, .. } | Input::CallbackFailed { id } = &input {
            self.homes.dialing.remove(&id.0);
        }
        if let Err(e) = self.acd.handle(now, input) {
            debug!(error = %e, "queue input not applied");
        }
    }

    /// Takes the calls of the homes `gone` picks out of line as lost; their call backs
    /// being dialled count as not answered. Whether anything changed.
    fn lose(&mut self, now: Instant, gone: impl Fn(&Home) -> bool) -> bool {
        let calls: Vec<String> = self
            .homes
            .calls
            .iter()
            .filter(|(_, h)| gone(h))
            .map(|(c, _)| c.clone())
            .collect();
        let dialing: Vec<u64> = self
            .homes
            .dialing
            .iter()
            .filter(|(_, h)| gone(h))
            .map(|(id, _)| *id)
            .collect();
        for call in &calls {
            self.homes.calls.remove(call);
            if let Err(e) = self
                .acd
                .handle(now, Input::CallerLost { call: call.clone() })
            {
                debug!(error = %e, %call, "lost call no longer queued");
            }
        }
        for id in &dialing {
            self.homes.dialing.remove(id);
            let _ = self.acd.handle(
                now,
                Input::CallbackFailed {
                    id: crate::queue::CallbackId(*id),
                },
            );
        }
        !(calls.is_empty() && dialing.is_empty())
    }

    /// Writes each action for the node that holds its call, and returns this node's own.
    /// Calls the ACD no longer holds are forgotten.
    fn route(
        &mut self,
        me: &str,
        tx: &mut Transaction<'_>,
    ) -> Result<Vec<Action>, postgres::Error> {
        let mut own = Vec::new();
        let mut woken = HashSet::new();
        let insert = tx.prepare("INSERT INTO acd_actions (node, body) VALUES ($1, $2)")?;
        while let Some(a) = self.acd.poll_action() {
            let to = match &a {
                Action::PlaceCallback { id, .. } => {
                    self.homes.dialing.insert(
                        id.0,
                        Home {
                            node: me.to_string(),
                            incarnation: self.homes.nodes.get(me).copied().unwrap_or_default(),
                        },
                    );
                    None
                }
                Action::Lost { .. } => None,
                other => action_call(other)
                    .and_then(|c| self.homes.calls.get(c))
                    .map(|h| h.node.clone()),
            };
            match to {
                Some(node) if node != me => {
                    let body = serde_json::to_string(&a).unwrap_or_default();
                    tx.execute(&insert, &[&node, &body])?;
                    woken.insert(node);
                }
                _ => own.push(a),
            }
        }
        for node in woken {
            tx.execute("SELECT pg_notify($1, $2)", &[&ACTIONS, &node])?;
        }
        let acd = &self.acd;
        self.homes.calls.retain(|call, _| acd.holds(call));
        Ok(own)
    }
}

/// The call an action concerns, if any.
fn action_call(a: &Action) -> Option<&str> {
    match a {
        Action::Offer { call, .. }
        | Action::CancelOffer { call, .. }
        | Action::Connect { call, .. }
        | Action::Announce { call, .. }
        | Action::OfferCallback { call, .. }
        | Action::CallbackRefused { call, .. }
        | Action::Overflow { call, .. }
        | Action::Abandoned { call, .. }
        | Action::Lost { call, .. } => Some(call),
        _ => None,
    }
}
