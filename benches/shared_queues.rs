//! What the shared queues of a cluster cost (docs/cluster.md): the size of the ACD's saved
//! state and the time to save and restore it with N callers waiting, and, when
//! `HOTLINE_TEST_POSTGRES` holds a URL, the leader's rounds on a real PostgreSQL server
//! (callers joining, one by one, through the same code a node runs). Tests marked
//! `#[ignore]`, run only when asked for:
//!
//! ```text
//! HOTLINE_TEST_POSTGRES=postgres://hotline:hotline@127.0.0.1:5432/hotline_test \
//!   cargo test --release --bench shared_queues -- --ignored --nocapture --test-threads 1
//! ```
//!
//! Figures print; nothing is asserted about them.

use std::time::{Duration, Instant};

use hotline::cluster::queues::SharedQueues;
use hotline::queue::MemoryStore;
use hotline::queue::acd::{Acd, Action, Input};
use hotline::queue::config::{AgentsConfig, QueuesConfig};
use hotline::queue::relay::{RelayLink, ToCluster};

#[derive(serde::Deserialize)]
struct Both {
    queues: QueuesConfig,
    agents: AgentsConfig,
}

/// One queue, two agents with fixed addresses (always reachable), announcements every 30 s.
fn config() -> Both {
    serde_saphyr::from_str(
        "queues: { support: { announce_every: 30s } }\n\
         agents:\n  alice: { uri: \"sip:alice@192.0.2.1\", queues: { support: 0 } }\n  \
         bob: { uri: \"sip:bob@192.0.2.2\", queues: { support: 0 } }\n",
    )
    .expect("config")
}

fn join(i: usize) -> Input {
    Input::Join {
        call: format!("call-{i:06}@bench"),
        queue: "support".into(),
        priority: 0,
        skills: vec![],
        caller: format!("+4930{i:07}"),
    }
}

#[test]
#[ignore]
fn acd_state_size_and_save_and_restore_times() {
    let cfg = config();
    println!("waiting  state bytes  save+json µs  json+restore µs");
    for waiting in [10usize, 100, 1_000, 3_000] {
        let t0 = Instant::now();
        let mut acd =
            Acd::new(&cfg.queues, &cfg.agents, Box::new(MemoryStore::new()), t0).expect("acd");
        for i in 0..waiting {
            acd.handle(t0 + Duration::from_millis(i as u64), join(i))
                .expect("join");
        }
        while acd.poll_action().is_some() {}
        let now = t0 + Duration::from_secs(60);
        const ROUNDS: u32 = 20;
        let start = Instant::now();
        let mut json = String::new();
        for _ in 0..ROUNDS {
            json = serde_json::to_string(&acd.save(now)).expect("json");
        }
        let save = start.elapsed() / ROUNDS;
        let start = Instant::now();
        for _ in 0..ROUNDS {
            let state = serde_json::from_str(&json).expect("parse");
            let restored =
                Acd::restore(&cfg.queues, &cfg.agents, state, now, now).expect("restore");
            std::hint::black_box(restored);
        }
        let restore = start.elapsed() / ROUNDS;
        println!(
            "{waiting:>7}  {:>11}  {:>12.0}  {:>15.0}",
            json.len(),
            save.as_secs_f64() * 1e6,
            restore.as_secs_f64() * 1e6
        );
    }
}

/// A leader's side of the shared queues in a schema of its own, fed through the relay's
/// link as a node's calls would feed it.
struct Leader {
    queues: SharedQueues,
    requests: std::sync::mpsc::Sender<ToCluster>,
    actions: tokio::sync::mpsc::UnboundedReceiver<Action>,
    client: postgres::Client,
}

impl Leader {
    fn new(url: &str) -> Leader {
        let cfg = config();
        let (requests, rx) = std::sync::mpsc::channel();
        let (tx, actions) = tokio::sync::mpsc::unbounded_channel();
        let link = RelayLink {
            requests: rx,
            actions: tx,
        };
        let mut client = hotline::cluster::connect(url).expect("the cluster database");
        let mut queues = SharedQueues::new("bench", 1, link, cfg.queues, cfg.agents);
        queues.prepare(&mut client).expect("listen");
        Leader {
            queues,
            requests,
            actions,
            client,
        }
    }

    /// Rounds until `n` actions came out.
    fn until_actions(&mut self, n: usize) -> Vec<Action> {
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while out.len() < n && Instant::now() < deadline {
            self.queues.step(&mut self.client, true).expect("round");
            while let Ok(a) = self.actions.try_recv() {
                out.push(a);
            }
        }
        out
    }
}

#[test]
#[ignore]
fn leader_rounds_on_postgres() {
    let Ok(base) = std::env::var("HOTLINE_TEST_POSTGRES") else {
        eprintln!("skipped: set HOTLINE_TEST_POSTGRES to a postgres:// URL");
        return;
    };
    let schema = format!("bench_queues_{}", std::process::id());
    let mut admin = postgres::Client::connect(&base, postgres::NoTls).expect("connect");
    admin
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .expect("schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    let mut leader = Leader::new(&url);
    leader.until_actions(0);

    // Callers join one at a time, each waiting for its first announcement or offer: the
    // time from the input to its action, with the line growing.
    println!("waiting  join→action p50 ms  p99 ms  state bytes");
    let mut joined = 0usize;
    for target in [100usize, 1_000] {
        let mut lat = Vec::new();
        while joined < target {
            let start = Instant::now();
            leader
                .requests
                .send(ToCluster::Input(join(joined)))
                .expect("relay");
            let got = leader.until_actions(1);
            assert!(!got.is_empty(), "no action for a join");
            lat.push(start.elapsed());
            joined += 1;
        }
        lat.sort();
        let p = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
        let bytes: i64 = leader
            .client
            .query_one("SELECT length(body) FROM acd_state", &[])
            .expect("state")
            .get::<_, i32>(0)
            .into();
        println!(
            "{target:>7}  {:>19.2}  {:>6.2}  {bytes:>11}",
            p(0.5),
            p(0.99)
        );
    }

    // A burst: 500 callers join at once; the rounds take them in batches.
    let start = Instant::now();
    for i in 0..500 {
        leader
            .requests
            .send(ToCluster::Input(join(joined + i)))
            .expect("relay");
    }
    let got = leader.until_actions(500);
    let took = start.elapsed();
    println!(
        "burst: 500 joins with {joined} waiting applied in {:.0} ms ({:.0} joins/s), {} actions",
        took.as_secs_f64() * 1e3,
        500.0 / took.as_secs_f64(),
        got.len()
    );
    let _ = admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
}
