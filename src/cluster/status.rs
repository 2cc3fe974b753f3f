//! `hotline cluster status`: the nodes of a cluster as the shared database sees them (lease
//! age, calls, whether alive, lost or gone, how many queue actions wait for each) and which
//! one leads; and how far the shared queues are behind (inputs the leader has not applied,
//! the age of its last saved state). Reads only; decides nothing.

use std::fmt::Write as _;

use postgres::Client;

use super::{current_schema, leader_key};

/// One node as `cluster status` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeStatus {
    pub name: String,
    /// `alive`, `lost` (its lease ran out) or `left` (stopped cleanly).
    pub state: &'static str,
    /// Seconds since its last renewal, by the database's clock.
    pub lease_age: f64,
    pub calls: i64,
    pub leader: bool,
    pub started_at: String,
    /// Queue actions the leader wrote for this node that it has not read yet.
    pub behind: i64,
}

/// The shared queues as the database sees them.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuesStatus {
    /// Inputs written by the nodes and not yet applied by the leader.
    pub inputs_waiting: i64,
    /// The node that saved the queues' state last, and how many seconds ago.
    pub saved: Option<(String, f64)>,
}

/// Reads the backlog of the shared queues.
pub fn read_queues(client: &mut Client) -> Result<QueuesStatus, postgres::Error> {
    let inputs_waiting = client
        .query_one("SELECT count(*) FROM acd_inputs", &[])?
        .get(0);
    let saved = client
        .query_opt(
            "SELECT leader, EXTRACT(EPOCH FROM now() - saved_at)::float8 FROM acd_state",
            &[],
        )?
        .map(|r| (r.get(0), r.get(1)));
    Ok(QueuesStatus {
        inputs_waiting,
        saved,
    })
}

/// Reads the nodes table and the leader lock. A node is `alive` while its lease is younger
/// than `lease` seconds and it has not left.
pub fn read(client: &mut Client, lease: f64) -> Result<Vec<NodeStatus>, postgres::Error> {
    let key = leader_key(&current_schema(client)?);
    // A bigint advisory lock shows in pg_locks as its high half (classid) and low half
    // (objid), with objsubid 1.
    let high = (key >> 32) & 0xffff_ffff;
    let low = key & 0xffff_ffff;
    let rows = client.query(
        "SELECT n.name,
                CASE WHEN n.left_at IS NOT NULL THEN 'left'
                     WHEN n.lost_at IS NOT NULL OR n.seen_at < now() - make_interval(secs => $3)
                       THEN 'lost'
                     ELSE 'alive' END,
                EXTRACT(EPOCH FROM now() - n.seen_at)::float8,
                n.calls,
                EXISTS (SELECT 1 FROM pg_locks l
                        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                          AND l.classid::bigint = $1 AND l.objid::bigint = $2
                          AND l.pid = n.backend_pid)
                  AND n.left_at IS NULL,
                to_char(n.started_at, 'YYYY-MM-DD HH24:MI:SS TZ'),
                (SELECT count(*) FROM acd_actions a WHERE a.node = n.name)
         FROM cluster_nodes n ORDER BY n.name",
        &[&high, &low, &lease],
    )?;
    Ok(rows
        .iter()
        .map(|r| NodeStatus {
            name: r.get(0),
            state: match r.get::<_, &str>(1) {
                "left" => "left",
                "lost" => "lost",
                _ => "alive",
            },
            lease_age: r.get(2),
            calls: r.get(3),
            leader: r.get(4),
            started_at: r.get(5),
            behind: r.get(6),
        })
        .collect())
}

/// The table `cluster status` prints, and a line on the shared queues when there are any.
pub fn render(nodes: &[NodeStatus], queues: Option<&QueuesStatus>) -> String {
    if nodes.is_empty() {
        return "no node has joined this cluster yet\n".to_owned();
    }
    let width = nodes.iter().map(|n| n.name.len()).max().unwrap_or(4).max(4);
    let mut out = format!(
        "{:width$}  {:5}  {:>9}  {:>5}  {:6}  {:>6}  started\n",
        "node", "state", "lease age", "calls", "leader", "behind"
    );
    for n in nodes {
        let _ = writeln!(
            out,
            "{:width$}  {:5}  {:>8.1}s  {:>5}  {:6}  {:>6}  {}",
            n.name,
            n.state,
            n.lease_age,
            n.calls,
            if n.leader { "yes" } else { "" },
            n.behind,
            n.started_at
        );
    }
    if !nodes.iter().any(|n| n.leader) {
        out.push_str("no node leads right now\n");
    }
    if let Some(q) = queues
        && let Some((leader, age)) = &q.saved
    {
        let _ = writeln!(
            out,
            "queues: state saved by {leader} {age:.1}s ago; {} input(s) not yet applied",
            q.inputs_waiting
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_the_leader_and_says_when_there_is_none() {
        let a = NodeStatus {
            name: "node-a".into(),
            state: "alive",
            lease_age: 0.42,
            calls: 12,
            leader: true,
            started_at: "2026-12-05 02:00:00 UTC".into(),
            behind: 0,
        };
        let b = NodeStatus {
            name: "b".into(),
            state: "lost",
            lease_age: 31.0,
            calls: 3,
            leader: false,
            started_at: "2026-12-05 01:00:00 UTC".into(),
            behind: 7,
        };
        let t = render(&[a.clone(), b.clone()], None);
        assert!(
            t.contains("node-a  alive       0.4s     12  yes          0"),
            "{t}"
        );
        assert!(
            t.contains("b       lost       31.0s      3               7"),
            "{t}"
        );
        assert!(!t.contains("no node leads"), "{t}");
        let t = render(&[b], None);
        assert!(t.ends_with("no node leads right now\n"), "{t}");
        assert_eq!(render(&[], None), "no node has joined this cluster yet\n");
        let q = QueuesStatus {
            inputs_waiting: 2,
            saved: Some(("node-a".into(), 0.25)),
        };
        let t = render(&[a], Some(&q));
        assert!(
            t.ends_with("queues: state saved by node-a 0.2s ago; 2 input(s) not yet applied\n"),
            "{t}"
        );
    }

    #[test]
    fn leader_keys_differ_by_schema() {
        assert_ne!(leader_key("public"), leader_key("t_one"));
        assert_eq!(leader_key("public"), leader_key("public"));
    }
}
