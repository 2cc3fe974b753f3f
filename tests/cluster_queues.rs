//! One queue shared by three real `hotline serve` nodes on a PostgreSQL server of the
//! test's own (docs/cluster.md): an agent registered once, at one node, takes the callers
//! of every node in the order they arrived; a node killed with SIGKILL mid-queue (the
//! leader itself) loses only its own callers, counted lost and never abandoned, while the
//! callers and the agent on the other nodes go on; the database stopped and started again
//! under calls, after which the queues resume where they were.
//!
//! Real parts only: the engine's processes, UDP on loopback, the project's caller and a
//! scripted answering phone as the agent, the admin API read as an admin would.

mod common;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::bridge::hear_each_other;
use common::pg_server::PgServer;
use common::process::{Killed, free_tcp_port, free_udp_port, serve_in};
use common::{QUEUE_FLOW, SECOND, prompt, repo};
use hotline_load::caller::answerer::{Answered, Answerer, Incoming};
use hotline_load::caller::{CallMedia, Established, Phone};
use serde_json::Value;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Generous: three engines, a database and the test share two cores.
const LONG: Duration = Duration::from_secs(30);

struct Node {
    dir: PathBuf,
    sip: SocketAddr,
    admin: SocketAddr,
    process: Option<Killed>,
}

impl Node {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("engine.log")).unwrap_or_default()
    }

    /// SIGKILL, as a machine that dies.
    fn kill(&mut self) {
        drop(self.process.take());
    }
}

/// The queue of most tests: music, a long ring, a short wrap-up.
const QUEUE: &str = "{ strategy: longest_idle, music: hold_music, ring_timeout: 20s, wrap_up: 1s }";

/// Writes a node's folder (the queue flow, the sample prompts, one queue, agent alice)
/// and starts it.
async fn node(root: &Path, name: &str, url: &str, rtp: &str) -> Node {
    node_with(root, name, url, rtp, QUEUE_FLOW, QUEUE).await
}

/// A node with its own flow and `support` queue.
async fn node_with(root: &Path, name: &str, url: &str, rtp: &str, flow: &str, queue: &str) -> Node {
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("flows")).unwrap();
    std::fs::write(dir.join("flows/main.yaml"), flow).unwrap();
    let yaml = format!(
        "flows: flows\nprompts: {:?}\ndata: data\nrecords: {{ store: {url:?} }}\n\
cluster: {{ node: {name}, lease: 2s }}\n\
queues:\n  support: {queue}\n\
agents:\n  alice: {{ password: alice-secret, queues: {{ support: 0 }} }}\n",
        repo().join("prompts").display().to_string(),
    );
    std::fs::write(dir.join("hotline.yaml"), yaml).unwrap();
    let sip = SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port()));
    let admin = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let admin_at = admin.to_string();
    let process = serve_in(&dir, sip, &["--admin", &admin_at, "--rtp-ports", rtp]).await;
    Node {
        dir,
        sip,
        admin,
        process: Some(process),
    }
}

fn root(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hotline-cq-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The queue as a node's admin API shows it.
async fn support(n: &Node) -> Option<Value> {
    let r = hotline::webhook::client()
        .get(format!("http://{}/queues/support", n.admin))
        .send()
        .await
        .ok()?;
    r.json().await.ok()
}

/// Polls a node's view of the queue until `ok` holds.
async fn wait_queue(n: &Node, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        if let Some(q) = support(n).await {
            if ok(&q) {
                return q;
            }
            last = q;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{what}; the queue last looked like:\n{last:#}\n{}", n.log());
}

fn agent_state(q: &Value, agent: &str) -> String {
    q["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == agent))
        .and_then(|x| x["state"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn waiting(q: &Value) -> Vec<String> {
    q["waiting"]
        .as_array()
        .map(|w| {
            w.iter()
                .map(|x| x["call"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// A caller on `n` that waits in the queue (it hears the hold music).
struct Caller {
    phone: Phone,
    media: CallMedia,
    call: Established,
}

async fn queued_caller(n: &Node) -> Caller {
    let (phone, media, call) = common::call(n.sip, "hotline").await;
    assert!(
        media
            .wait_for_prompt(&prompt("en", "hold_music"), 0, LONG)
            .await
            .is_some(),
        "the caller hears the queue's music\n{}",
        n.log()
    );
    Caller { phone, media, call }
}

/// Agent alice's scripted phone, and the calls it was offered.
struct Alice {
    phone: Answerer,
    offered: HashSet<String>,
}

impl Alice {
    /// Her phone, registered once, at `sip`.
    async fn at(sip: SocketAddr) -> Alice {
        Alice {
            phone: common::alice_at(sip).await,
            offered: HashSet::new(),
        }
    }

    /// The next new offer (a retransmission of an INVITE taken already is not one).
    async fn offer(&mut self) -> Incoming {
        let deadline = Instant::now() + LONG;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let inc = self
                .phone
                .next_invite(left)
                .await
                .expect("an offer reaches alice");
            let id = inc.invite.headers.call_id().unwrap_or_default().to_string();
            if self.offered.insert(id) {
                return inc;
            }
        }
    }
}

async fn take(alice: &mut Answerer, inc: &Incoming) -> (Answered, CallMedia) {
    let media = CallMedia::bind(LOCALHOST, true).unwrap();
    let talking = alice.accept(inc, &media).await.unwrap();
    (talking, media)
}

/// The caller is thanked and hung up on after the agent leaves.
async fn thanked(c: &mut Caller) {
    let from = 0;
    assert!(
        c.media
            .wait_for_prompt(&prompt("en", "survey_thanks"), from, LONG)
            .await
            .is_some(),
        "after the agent hangs up the caller reaches the `after` step"
    );
    c.phone.expect_bye(LONG).await.unwrap();
}

fn call_id(c: &Caller) -> String {
    c.call.call_id.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_on_three_nodes_are_answered_in_arrival_order_by_an_agent_registered_once() {
    let Some(pg) = PgServer::start_or_skip("order") else {
        return;
    };
    let root = root("order");
    let a = node(&root, "a", &pg.url(), "47000-47099").await;
    let b = node(&root, "b", &pg.url(), "47100-47199").await;
    let c = node(&root, "c", &pg.url(), "47200-47299").await;

    // Alice registers once, at node c; every node's view of the queue shows her.
    let mut alice = Alice::at(c.sip).await;
    for n in [&a, &b, &c] {
        wait_queue(n, "alice should be available", |q| {
            agent_state(q, "alice") == "available"
        })
        .await;
    }

    // A caller on a takes her; three more wait, arriving on b, then c, then a.
    let mut first = queued_caller(&a).await;
    let inc = alice.offer().await;
    assert_eq!(inc.source, a.sip, "the caller's own node rings the agent");
    let (mut talking, agent_media) = take(&mut alice.phone, &inc).await;
    hear_each_other(&first.media, &agent_media).await;
    let mut line = Vec::new();
    for n in [&b, &c, &a] {
        let caller = queued_caller(n).await;
        let id = call_id(&caller);
        line.push((n.sip, caller));
        wait_queue(n, "the caller should be in line", |q| {
            waiting(q).contains(&id)
        })
        .await;
    }
    let order: Vec<String> = line.iter().map(|(_, c)| call_id(c)).collect();
    for n in [&a, &b, &c] {
        let q = wait_queue(n, "every node shows the same line", |q| waiting(q) == order).await;
        assert_eq!(q["stats"]["offered"], 4, "{q:#}");
    }

    // Each hang-up brings the next in the order they arrived, whatever their node.
    alice.phone.hang_up(&mut talking).await.unwrap();
    thanked(&mut first).await;
    for (sip, mut caller) in line {
        let inc = alice.offer().await;
        assert_eq!(
            inc.source, sip,
            "the next caller in arrival order is offered"
        );
        let (mut talking, agent_media) = take(&mut alice.phone, &inc).await;
        hear_each_other(&caller.media, &agent_media).await;
        alice.phone.hang_up(&mut talking).await.unwrap();
        thanked(&mut caller).await;
    }
    let q = wait_queue(&b, "all four answered", |q| q["stats"]["answered"] == 4).await;
    assert_eq!(q["stats"]["abandoned"], 0, "{q:#}");
    assert!(waiting(&q).is_empty(), "{q:#}");

    // `cluster status` as an admin reads it: the leader, nothing waiting for any node,
    // and the queues' state saved by the leader.
    let out = Command::new(env!("CARGO_BIN_EXE_hotline"))
        .args(["cluster", "status", "--config", "hotline.yaml"])
        .current_dir(&c.dir)
        .output()
        .expect("hotline cluster status runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    let leader = text
        .lines()
        .find(|l| l.contains(" yes "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no leader shown:\n{text}"))
        .to_string();
    assert!(
        text.contains(&format!("queues: state saved by {leader} ")),
        "{text}"
    );
    assert!(text.contains("0 input(s) not yet applied"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_killed_mid_queue_loses_only_its_callers_and_the_others_keep_their_places() {
    let Some(pg) = PgServer::start_or_skip("kill") else {
        return;
    };
    let root = root("kill");
    // a starts first and leads.
    let mut a = node(&root, "a", &pg.url(), "47300-47399").await;
    let b = node(&root, "b", &pg.url(), "47400-47499").await;
    let c = node(&root, "c", &pg.url(), "47500-47599").await;
    let mut alice = Alice::at(c.sip).await;
    wait_queue(&c, "alice should be available", |q| {
        agent_state(q, "alice") == "available"
    })
    .await;

    // Alice talks to a caller on c; one caller waits on a (the leader), then one on b.
    let mut first = queued_caller(&c).await;
    let inc = alice.offer().await;
    let (mut talking, agent_media) = take(&mut alice.phone, &inc).await;
    let on_a = queued_caller(&a).await;
    let mut on_b = queued_caller(&b).await;
    let (id_a, id_b) = (call_id(&on_a), call_id(&on_b));
    wait_queue(&c, "two callers wait", |q| {
        waiting(q) == [id_a.clone(), id_b.clone()]
    })
    .await;

    // The leader dies without a word.
    a.kill();

    // Another node leads from the saved state; once a's lease has run out its caller
    // leaves the line as lost, and b's caller moves up to the front.
    let q = wait_queue(&c, "a's caller is lost and b's moves up", |q| {
        waiting(q) == [id_b.clone()] && q["stats"]["lost"] == 1
    })
    .await;
    assert_eq!(
        q["stats"]["abandoned"], 0,
        "a lost caller is never abandoned: {q:#}"
    );
    assert_eq!(agent_state(&q, "alice"), "on_call", "{q:#}");

    // Nobody on the surviving nodes noticed: the call in progress still carries audio,
    // and the waiting caller still hears the music.
    hear_each_other(&first.media, &agent_media).await;
    let heard = on_b.media.heard_len();
    assert!(
        on_b.media
            .wait_for_prompt(&prompt("en", "hold_music"), heard, LONG)
            .await
            .is_some(),
        "b's caller still hears the music"
    );

    // Alice's next call is b's caller.
    alice.phone.hang_up(&mut talking).await.unwrap();
    thanked(&mut first).await;
    let inc = alice.offer().await;
    assert_eq!(inc.source, b.sip, "b's caller is offered next");
    let (mut talking, agent_media) = take(&mut alice.phone, &inc).await;
    hear_each_other(&on_b.media, &agent_media).await;
    alice.phone.hang_up(&mut talking).await.unwrap();
    thanked(&mut on_b).await;
    let q = wait_queue(&b, "two answered, one lost", |q| {
        q["stats"]["answered"] == 2 && agent_state(q, "alice") != "on_call"
    })
    .await;
    assert_eq!(
        (&q["stats"]["lost"], &q["stats"]["abandoned"]),
        (&Value::from(1), &Value::from(0)),
        "{q:#}"
    );
    drop(on_a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queues_resume_after_the_database_is_stopped_and_started_under_calls() {
    let Some(pg) = PgServer::start_or_skip("restart") else {
        return;
    };
    let root = root("restart");
    let a = node(&root, "a", &pg.url(), "47600-47699").await;
    let b = node(&root, "b", &pg.url(), "47700-47799").await;
    let c = node(&root, "c", &pg.url(), "47800-47899").await;
    let mut alice = Alice::at(a.sip).await;
    wait_queue(&a, "alice should be available", |q| {
        agent_state(q, "alice") == "available"
    })
    .await;
    let mut first = queued_caller(&b).await;
    let inc = alice.offer().await;
    let (mut talking, agent_media) = take(&mut alice.phone, &inc).await;
    let mut on_c = queued_caller(&c).await;
    let id_c = call_id(&on_c);
    wait_queue(&a, "c's caller waits", |q| waiting(q) == [id_c.clone()]).await;

    // The database goes away for a few seconds; meanwhile a caller joins on a, and the
    // calls in progress go on.
    pg.stop().unwrap();
    let mut on_a = queued_caller(&a).await;
    hear_each_other(&first.media, &agent_media).await;
    tokio::time::sleep(3 * SECOND).await;
    pg.start().unwrap();

    // The queues resume where they were: the caller who joined during the outage is in
    // line behind c's, nobody was lost or abandoned.
    let id_a = call_id(&on_a);
    let q = wait_queue(&c, "both callers wait in arrival order", |q| {
        waiting(q) == [id_c.clone(), id_a.clone()]
    })
    .await;
    assert_eq!(
        (&q["stats"]["lost"], &q["stats"]["abandoned"]),
        (&Value::from(0), &Value::from(0)),
        "{q:#}"
    );

    alice.phone.hang_up(&mut talking).await.unwrap();
    thanked(&mut first).await;
    for (sip, caller) in [(c.sip, &mut on_c), (a.sip, &mut on_a)] {
        let inc = alice.offer().await;
        assert_eq!(inc.source, sip, "the callers are offered in arrival order");
        let (mut talking, agent_media) = take(&mut alice.phone, &inc).await;
        hear_each_other(&caller.media, &agent_media).await;
        alice.phone.hang_up(&mut talking).await.unwrap();
        thanked(caller).await;
    }
    let q = wait_queue(&b, "three answered", |q| q["stats"]["answered"] == 3).await;
    assert_eq!(q["stats"]["lost"], 0, "{q:#}\n{}", pg.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_asked_for_on_one_node_is_placed_after_the_leader_died() {
    let Some(pg) = PgServer::start_or_skip("callback") else {
        return;
    };
    let root = root("callback");
    // The telephone network: the callers' numbers are reached through this phone.
    let mut network = Answerer::bind(LOCALHOST).await.unwrap();
    let queue = format!(
        "{{ music: hold_music, ring_timeout: 20s, wrap_up: 1s, callback: {{ key: \"1\", \
offer_after_wait: 0s, dial: \"sip:{{number}}@{}\", caller_id: \"+18005550100\", \
ring_timeout: 20s, attempts: 3, retry_after: 1s, allowed: [\"+49[1-8]X.\"] }} }}",
        network.local
    );
    let mut a = node_with(
        &root,
        "a",
        &pg.url(),
        "47900-47949",
        common::CALLBACK_FLOW,
        &queue,
    )
    .await;
    let b = node_with(
        &root,
        "b",
        &pg.url(),
        "47950-47999",
        common::CALLBACK_FLOW,
        &queue,
    )
    .await;
    let c = node_with(
        &root,
        "c",
        &pg.url(),
        "48000-48049",
        common::CALLBACK_FLOW,
        &queue,
    )
    .await;
    let mut alice = Alice::at(b.sip).await;
    wait_queue(&b, "alice should be available", |q| {
        agent_state(q, "alice") == "available"
    })
    .await;

    // One call handled (so the queue can estimate a wait), then alice talks to a caller
    // on b while a caller on c asks to be called back and hangs up.
    let mut served = queued_caller(&c).await;
    let inc = alice.offer().await;
    let (mut talking, _agent_media) = take(&mut alice.phone, &inc).await;
    alice.phone.hang_up(&mut talking).await.unwrap();
    thanked(&mut served).await;
    let first = queued_caller(&b).await;
    let inc = alice.offer().await;
    let (mut talking, agent_media) = take(&mut alice.phone, &inc).await;
    hear_each_other(&first.media, &agent_media).await;
    let Caller {
        mut phone, media, ..
    } = queued_caller(&c).await;
    media
        .wait_for_prompt(&prompt("en", "queue_callback_offer"), 0, LONG)
        .await
        .expect("the callback is offered");
    let from = media.heard_len();
    media.press(
        hotline::media::dtmf::Key::from_char('1').unwrap(),
        hotline_load::caller::KeyMethod::Rfc4733,
    );
    assert!(
        media
            .wait_for_prompt(&prompt("en", "goodbye"), from, LONG)
            .await
            .is_some(),
        "the flow's on_callback step confirms"
    );
    phone.expect_bye(LONG).await.unwrap();
    wait_queue(&b, "the request waits in line", |q| {
        q["waiting"][0]["state"] == "callback"
    })
    .await;

    // The leader dies; the request is in the state it saved, so the next leader places
    // the call back once alice is free.
    a.kill();
    wait_queue(&b, "another node leads with the request in line", |q| {
        q["waiting"][0]["state"] == "callback" && q["stats"]["lost"] == 0
    })
    .await;
    alice.phone.hang_up(&mut talking).await.unwrap();
    let call_back = network
        .next_invite(LONG)
        .await
        .expect("the caller is called back");
    let text = String::from_utf8_lossy(&call_back.invite.to_bytes()).into_owned();
    assert!(text.starts_with("INVITE sip:+4930123456@"), "{text}");
    let caller_media = CallMedia::bind(LOCALHOST, true).unwrap();
    let mut caller = network.accept(&call_back, &caller_media).await.unwrap();
    assert!(
        caller_media
            .wait_for_prompt(&prompt("en", "queue_callback_intro"), 0, LONG)
            .await
            .is_some(),
        "the caller hears who calls and why"
    );
    let inc = alice.offer().await;
    let (mut talking, agent_media) = take(&mut alice.phone, &inc).await;
    hear_each_other(&caller_media, &agent_media).await;
    alice.phone.hang_up(&mut talking).await.unwrap();
    let _ = network.expect_bye(&caller, LONG).await;
    let _ = network.hang_up(&mut caller).await;
    let q = wait_queue(&c, "the callback was completed", |q| {
        q["stats"]["answered"] == 3 && waiting(q).is_empty()
    })
    .await;
    assert_eq!(q["stats"]["abandoned"], 0, "{q:#}");
    drop(first);
}
