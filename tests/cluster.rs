//! Cluster membership on a real PostgreSQL server: two real `hotline serve` processes join
//! one cluster (in a schema of the test's own); exactly one leads; when the leader is
//! killed with SIGKILL the other takes the lead and marks it lost once its lease runs out;
//! a node stopped cleanly is shown as left, never lost. `hotline cluster status` is read
//! as an admin would.
//!
//! Needs `HOTLINE_TEST_POSTGRES` (a postgres:// URL); with `HOTLINE_REQUIRE_POSTGRES=1` a
//! missing URL fails instead of skipping.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::postgres::{Schema, postgres_url};
use common::process::{Killed, free_udp_port, serve_in};
use common::repo;

/// Writes a node's folder: the sample prompts, a one-step flow, and `cluster:` naming it.
fn node_dir(root: &Path, node: &str, url: &str) -> PathBuf {
    let dir = root.join(node);
    std::fs::create_dir_all(dir.join("flows")).unwrap();
    std::fs::write(
        dir.join("flows/main.yaml"),
        "start: hello\nsteps:\n  hello:\n    play: goodbye\n    next: hangup\n",
    )
    .unwrap();
    let yaml = format!(
        "flows: flows\nprompts: {:?}\ndata: data\nrecords: {{ store: {url:?} }}\ncluster: {{ node: {node}, lease: 2s }}\n",
        repo().join("prompts").display().to_string(),
    );
    std::fs::write(dir.join("hotline.yaml"), yaml).unwrap();
    dir
}

async fn serve(dir: &Path, rtp: &str) -> Killed {
    let sip = SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port()));
    serve_in(dir, sip, &["--admin", "off", "--rtp-ports", rtp]).await
}

/// `hotline cluster status` as an admin runs it, in `dir`.
fn status(dir: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hotline"))
        .args(["cluster", "status", "--config", "hotline.yaml"])
        .current_dir(dir)
        .output()
        .expect("hotline cluster status runs");
    assert!(
        out.status.success(),
        "cluster status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The status row of `node`, split in words.
fn row(table: &str, node: &str) -> Vec<String> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(node))
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn leads(table: &str, node: &str) -> bool {
    let r = row(table, node);
    r.get(1).map(String::as_str) == Some("alive") && r.get(4).map(String::as_str) == Some("yes")
}

/// Polls `cluster status` (generously: a loaded machine) until `ok` holds.
fn wait_for(dir: &Path, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let t = status(dir);
        if ok(&t) {
            return t;
        }
        assert!(Instant::now() < deadline, "{what}; last status:\n{t}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn one_node_leads_and_a_killed_leader_is_replaced_and_marked_lost() {
    let Some(base) = postgres_url() else {
        return;
    };
    let schema = Schema::new(base, "cluster");
    let url = schema.url();
    let root = std::env::temp_dir().join(format!("hotline-cluster-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let a_dir = node_dir(&root, "a", &url);
    let b_dir = node_dir(&root, "b", &url);
    let c_dir = node_dir(&root, "c", &url);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // a starts first and leads; b joins and follows.
    let a = rt.block_on(serve(&a_dir, "45400-45499"));
    wait_for(&a_dir, "node a should lead alone", |t| leads(t, "a"));
    let b = rt.block_on(serve(&b_dir, "45500-45599"));
    let t = wait_for(&a_dir, "node b should join, alive, not leading", |t| {
        row(t, "b").get(1).map(String::as_str) == Some("alive")
    });
    assert!(leads(&t, "a") && !leads(&t, "b"), "{t}");

    // The leader dies without a word: b takes the lead and marks a lost.
    drop(a);
    let t = wait_for(&b_dir, "node b should lead and a be lost", |t| {
        leads(t, "b") && row(t, "a").get(1).map(String::as_str) == Some("lost")
    });
    assert_eq!(t.matches(" yes ").count(), 1, "one leader only:\n{t}");
    wait_for(&b_dir, "the database should say a is lost", |_| {
        let mut c = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        c.query_one(
            "SELECT count(*) FROM cluster_nodes WHERE name = 'a' AND lost_at IS NOT NULL",
            &[],
        )
        .map(|r| r.get::<_, i64>(0) == 1)
        .unwrap_or(false)
    });

    // A node that stops cleanly is shown as left, and never counted lost.
    let c = rt.block_on(serve(&c_dir, "45600-45699"));
    wait_for(&c_dir, "node c should join", |t| {
        row(t, "c").get(1).map(String::as_str) == Some("alive")
    });
    let pid = c.0.id();
    // SIGTERM: the engine's own shutdown, which leaves the cluster.
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let mut c = c;
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "node c did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
    let t = wait_for(&b_dir, "node c should be shown as left", |t| {
        row(t, "c").get(1).map(String::as_str) == Some("left")
    });
    std::thread::sleep(Duration::from_secs(3));
    let t2 = status(&b_dir);
    assert_eq!(
        row(&t2, "c").get(1).map(String::as_str),
        Some("left"),
        "a node that left stays left, never lost:\n{t}\n{t2}"
    );
    assert!(leads(&t2, "b"), "{t2}");
    drop(b);
    drop(rt);
    let _ = std::fs::remove_dir_all(&root);
}
