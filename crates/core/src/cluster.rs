//! A node's place in a cluster of hotline nodes sharing one PostgreSQL database: its lease
//! (renewed while it lives), whether it leads (holds the leader lock), and which other
//! nodes' leases have run out. See docs/cluster.md.
//!
//! Owns only the decisions, as a pure state machine in the house style: [`Membership::handle`]
//! takes what the database said with the time it was said, [`Membership::poll_command`] says
//! what to ask next, [`Membership::poll_timeout`] when. It runs no query and reads no clock;
//! the engine's cluster thread does both.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// How often a node renews its lease, as a share of the lease: five renewals fit in one
/// lease, so a node survives four lost ones.
const RENEWALS_PER_LEASE: u32 = 5;

/// How often a node that does not lead tries to take the leader lock.
pub const LOCK_RETRY: Duration = Duration::from_secs(1);

/// A row of the nodes table as the database saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSeen {
    pub name: String,
    /// How long ago, by the database's clock, the node last renewed its lease.
    pub since_renewal: Duration,
    /// Already marked lost or gone (left cleanly): nothing more to decide about it.
    pub settled: bool,
}

/// What the database answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Our lease was written.
    Renewed,
    /// Writing our lease (or any query) failed: the database is unreachable.
    Failed,
    /// `try_lock` answered: true when we hold the leader lock now.
    Lock(bool),
    /// The nodes table, read for the leader's sweep.
    Nodes(Vec<NodeSeen>),
}

/// What to ask the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Write our lease (and our current figures).
    Renew,
    /// Try to take the leader lock without waiting.
    TryLock,
    /// Read the nodes table (the leader does, to find leases that ran out).
    ReadNodes,
    /// Mark this node lost: its lease ran out while it had not left.
    MarkLost(String),
}

/// What changed, for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    BecameLeader,
    /// We lost the database (and with its session the lock): we lead no more.
    SteppedDown,
    /// Our lease could not be renewed for a whole lease: other nodes count us lost.
    LeaseLost,
    /// The database answers again after [`Change::LeaseLost`].
    LeaseBack,
}

/// One node's membership.
#[derive(Debug)]
pub struct Membership {
    lease: Duration,
    leader: bool,
    /// The last time a renewal succeeded; None before the first.
    renewed: Option<Instant>,
    lease_lost: bool,
    next_renew: Instant,
    next_lock: Instant,
    next_sweep: Instant,
    /// Nodes marked lost by this leader, so each is marked once.
    marked: BTreeSet<String>,
    commands: VecDeque<Command>,
    changes: VecDeque<Change>,
}

impl Membership {
    pub fn new(now: Instant, lease: Duration) -> Membership {
        Membership {
            lease,
            leader: false,
            renewed: None,
            lease_lost: false,
            next_renew: now,
            next_lock: now,
            next_sweep: now,
            marked: BTreeSet::new(),
            commands: VecDeque::new(),
            changes: VecDeque::new(),
        }
    }

    pub fn is_leader(&self) -> bool {
        self.leader
    }

    fn renew_every(&self) -> Duration {
        self.lease / RENEWALS_PER_LEASE
    }

    /// Takes what the database answered at `now`.
    pub fn handle(&mut self, now: Instant, event: Event) {
        match event {
            Event::Renewed => {
                self.renewed = Some(now);
                if self.lease_lost {
                    self.lease_lost = false;
                    self.changes.push_back(Change::LeaseBack);
                }
            }
            Event::Failed => {
                // A failed query means the session may be gone, and the lock with it:
                // never go on believing we lead.
                if self.leader {
                    self.leader = false;
                    self.changes.push_back(Change::SteppedDown);
                }
            }
            Event::Lock(true) if !self.leader => {
                self.leader = true;
                self.marked.clear();
                // Every node gets one whole lease to renew under the new leader before it
                // can be counted lost: after the database itself was away (restarted),
                // every lease in the table is as old as the outage.
                self.next_sweep = now + self.lease;
                self.changes.push_back(Change::BecameLeader);
            }
            Event::Lock(_) => {}
            Event::Nodes(nodes) => {
                if !self.leader {
                    return;
                }
                for n in nodes {
                    if !n.settled
                        && n.since_renewal > self.lease
                        && self.marked.insert(n.name.clone())
                    {
                        self.commands.push_back(Command::MarkLost(n.name));
                    }
                }
            }
        }
    }

    /// The next thing to ask the database at `now`, if any is due.
    pub fn poll_command(&mut self, now: Instant) -> Option<Command> {
        if let Some(c) = self.commands.pop_front() {
            return Some(c);
        }
        let lease_gone = self
            .renewed
            .is_none_or(|r| now.duration_since(r) > self.lease);
        if lease_gone && self.renewed.is_some() && !self.lease_lost {
            self.lease_lost = true;
            self.changes.push_back(Change::LeaseLost);
        }
        if now >= self.next_renew {
            self.next_renew = now + self.renew_every();
            return Some(Command::Renew);
        }
        // Only a node whose lease is current may lead: others count it lost.
        if !self.leader && !lease_gone && now >= self.next_lock {
            self.next_lock = now + LOCK_RETRY;
            return Some(Command::TryLock);
        }
        if self.leader && now >= self.next_sweep {
            self.next_sweep = now + self.renew_every();
            return Some(Command::ReadNodes);
        }
        None
    }

    /// What changed since the last call.
    pub fn poll_change(&mut self) -> Option<Change> {
        self.changes.pop_front()
    }

    /// When [`Membership::poll_command`] will next have something.
    pub fn poll_timeout(&self) -> Instant {
        let mut t = self.next_renew;
        if !self.leader {
            t = t.min(self.next_lock);
        } else {
            t = t.min(self.next_sweep);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(5);

    fn drain(m: &mut Membership, now: Instant) -> Vec<Command> {
        std::iter::from_fn(|| m.poll_command(now)).collect()
    }

    fn seen(name: &str, secs: u64) -> NodeSeen {
        NodeSeen {
            name: name.into(),
            since_renewal: Duration::from_secs(secs),
            settled: false,
        }
    }

    #[test]
    fn a_node_renews_first_then_tries_the_lock_and_renews_five_times_a_lease() {
        let t0 = Instant::now();
        let mut m = Membership::new(t0, LEASE);
        assert_eq!(drain(&mut m, t0), vec![Command::Renew]);
        m.handle(t0, Event::Renewed);
        assert_eq!(drain(&mut m, t0), vec![Command::TryLock]);
        m.handle(t0, Event::Lock(false));
        assert_eq!(m.poll_timeout(), t0 + Duration::from_secs(1));
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(drain(&mut m, t1), vec![Command::Renew, Command::TryLock]);
        assert!(!m.is_leader());
    }

    #[test]
    fn a_node_without_a_current_lease_never_tries_to_lead() {
        let t0 = Instant::now();
        let mut m = Membership::new(t0, LEASE);
        assert_eq!(drain(&mut m, t0), vec![Command::Renew]);
        m.handle(t0, Event::Failed);
        for s in 1..10 {
            let cmds = drain(&mut m, t0 + Duration::from_secs(s));
            assert!(!cmds.contains(&Command::TryLock), "{cmds:?}");
        }
    }

    #[test]
    fn the_leader_marks_each_lapsed_lease_once_and_ignores_settled_nodes() {
        let t0 = Instant::now();
        let mut m = Membership::new(t0, LEASE);
        drain(&mut m, t0);
        m.handle(t0, Event::Renewed);
        drain(&mut m, t0);
        m.handle(t0, Event::Lock(true));
        assert_eq!(m.poll_change(), Some(Change::BecameLeader));
        // A new leader gives every node one whole lease to renew before it sweeps.
        assert_eq!(drain(&mut m, t0), vec![]);
        let ts = t0 + LEASE;
        assert_eq!(drain(&mut m, ts), vec![Command::Renew, Command::ReadNodes]);
        m.handle(ts, Event::Renewed);
        let mut gone = seen("c", 60);
        gone.settled = true;
        m.handle(
            ts,
            Event::Nodes(vec![seen("a", 0), seen("b", 6), gone.clone()]),
        );
        assert_eq!(drain(&mut m, ts), vec![Command::MarkLost("b".into())]);
        let t1 = ts + Duration::from_secs(1);
        m.handle(t1, Event::Renewed);
        assert_eq!(drain(&mut m, t1), vec![Command::Renew, Command::ReadNodes]);
        m.handle(t1, Event::Nodes(vec![seen("a", 0), seen("b", 7), gone]));
        assert_eq!(drain(&mut m, t1), vec![]);
    }

    #[test]
    fn a_failed_query_steps_the_leader_down_and_a_long_outage_loses_the_lease() {
        let t0 = Instant::now();
        let mut m = Membership::new(t0, LEASE);
        drain(&mut m, t0);
        m.handle(t0, Event::Renewed);
        drain(&mut m, t0);
        m.handle(t0, Event::Lock(true));
        m.poll_change();
        m.handle(t0, Event::Failed);
        assert!(!m.is_leader());
        assert_eq!(m.poll_change(), Some(Change::SteppedDown));
        let late = t0 + LEASE + Duration::from_secs(1);
        drain(&mut m, late);
        assert_eq!(m.poll_change(), Some(Change::LeaseLost));
        m.handle(late, Event::Renewed);
        assert_eq!(m.poll_change(), Some(Change::LeaseBack));
        assert_eq!(drain(&mut m, late), vec![Command::TryLock]);
    }
}
