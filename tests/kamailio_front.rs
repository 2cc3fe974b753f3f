//! hotline behind Kamailio: the proxy configuration shipped in `deploy/kamailio/` runs in a
//! real Kamailio in front of two real `hotline serve` nodes, all on loopback.
//!
//! - New calls are spread over both nodes; every call's ACK and BYE reach the node that
//!   holds it through the proxy's Record-Route (the caller sends them to the proxy only),
//!   and so does a node's own BYE to the caller.
//! - A node killed with SIGKILL gets no more calls: the next calls are all answered by the
//!   node that is left (by the proxy's failover and its OPTIONS probes).
//! - A node stopped with SIGTERM drains: its call in progress goes on to its end through the
//!   proxy, new calls all go to the other node (the draining node answers INVITE and
//!   OPTIONS with 503, and the proxy tries the next node), and the node exits by itself.
//!
//! - Three nodes in a cluster share one queue: an agent registers once, through the proxy,
//!   and takes the callers the proxy spread over the three nodes in the order they came.
//!
//! Runs when `kamailio` is installed (Debian's `kamailio` package); with
//! `HOTLINE_REQUIRE_KAMAILIO=1` (set by CI) a missing Kamailio fails instead of skipping.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::bridge::hear_each_other;
use common::pg_server::PgServer;
use common::process::{Killed, free_udp_port, serve_in};
use common::{QUEUE_FLOW, SECOND, prompt, repo};
use hotline::config::Protocol;
use hotline_load::caller::answerer::Answerer;
use hotline_load::caller::{CallMedia, Established, KeyMethod, Offer, Phone};
use hotline_load::load::engine::Engine;

/// A menu that waits for the caller; `1` leads to an answer, then the node hangs up.
const FLOW: &str = "start: menu
steps:
  menu:
    menu:
      prompt: main_menu
      options:
        \"1\": { next: answer }
  answer:
    play: goodbye
    next: hangup
";

fn kamailio() -> Option<PathBuf> {
    let found = ["/usr/sbin/kamailio", "/usr/local/sbin/kamailio"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var("HOTLINE_REQUIRE_KAMAILIO").as_deref() != Ok("1"),
            "HOTLINE_REQUIRE_KAMAILIO=1 but kamailio is not installed (Debian package `kamailio`)"
        );
        eprintln!("skipped: kamailio is not installed (Debian package `kamailio`)");
    }
    found
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hotline-kamailio-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// One hotline node: `hotline serve` in its own folder, its RTP ports in `rtp`.
struct Node {
    sip: SocketAddr,
    rtp: std::ops::RangeInclusive<u16>,
    dir: PathBuf,
    process: Option<Killed>,
}

impl Node {
    async fn start(dir: PathBuf, rtp: std::ops::RangeInclusive<u16>) -> Node {
        Node::start_with(dir, rtp, FLOW, "").await
    }

    /// A node with its own flow and more of hotline.yaml (`more`, whole lines).
    async fn start_with(
        dir: PathBuf,
        rtp: std::ops::RangeInclusive<u16>,
        flow: &str,
        more: &str,
    ) -> Node {
        std::fs::create_dir_all(dir.join("flows")).unwrap();
        std::fs::write(dir.join("flows/main.yaml"), flow).unwrap();
        let yaml = format!(
            "flows: flows\nprompts: {:?}\ndata: data\n{more}",
            repo().join("prompts").display().to_string(),
        );
        std::fs::write(dir.join("hotline.yaml"), yaml).unwrap();
        let sip = SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port()));
        let ports = format!("{}-{}", rtp.start(), rtp.end());
        let process = serve_in(&dir, sip, &["--admin", "off", "--rtp-ports", &ports]).await;
        Node {
            sip,
            rtp,
            dir,
            process: Some(process),
        }
    }

    fn holds(&self, call: &Established) -> bool {
        self.rtp.contains(&call.remote_rtp.port())
    }

    fn kill(&mut self) {
        self.process.take();
    }

    /// Asks the node to stop (SIGTERM): it drains.
    fn terminate(&self) {
        let pid = self.process.as_ref().expect("running").0.id();
        let pid = libc::pid_t::try_from(pid).expect("a pid");
        // SAFETY: kill(2) with a pid of our own child and a valid signal number.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "SIGTERM sent");
    }

    /// Waits (bounded) for the node's process to exit by itself; its exit status.
    async fn exited(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let child = &mut self.process.as_mut().expect("running").0;
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the node did not exit within {within:?}\n{}",
                read(&self.dir.join("engine.log"))
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Kamailio with the shipped configuration, listening on `sip`, in front of `nodes`.
struct Proxy {
    sip: SocketAddr,
    dir: PathBuf,
    _process: Killed,
}

impl Proxy {
    async fn start(binary: &Path, dir: PathBuf, nodes: &[&Node]) -> Proxy {
        let list: String = nodes
            .iter()
            .map(|n| format!("1 sip:{} 0 0\n", n.sip))
            .collect();
        let list_file = dir.join("nodes.list");
        std::fs::write(&list_file, list).unwrap();
        let run = dir.join("run");
        std::fs::create_dir_all(&run).unwrap();
        let sip = SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port()));
        let log = std::fs::File::create(dir.join("kamailio.log")).unwrap();
        let child = Command::new(binary)
            .arg("-f")
            .arg(repo().join("deploy/kamailio/kamailio.cfg"))
            // In the foreground, logging to stderr, two workers, a small shared memory.
            .args(["-DD", "-E", "-n", "2", "-m", "64", "-M", "8"])
            .arg("-Y")
            .arg(&run)
            .arg("-w")
            .arg(&dir)
            .args(["-A", &format!("LISTEN=udp:{sip}")])
            .args(["-A", &format!("NODES_LIST=\"{}\"", list_file.display())])
            // Probe every second, and give up on a silent node after one second, so the
            // test sees the proxy react quickly.
            .args(["-A", "PROBE_INTERVAL=1", "-A", "NODE_TIMEOUT=1000"])
            // Its own process group, so that `Killed` takes its workers with it.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("kamailio starts");
        let process = Killed(child);
        // The proxy answers OPTIONS addressed to itself with 200 once it runs.
        let mut probe = Engine::attach(sip, Some(process.0.id()));
        if let Err(e) = probe.wait_ready(Duration::from_secs(60)).await {
            panic!(
                "kamailio did not answer: {e}\n{}",
                read(&dir.join("kamailio.log"))
            );
        }
        Proxy {
            sip,
            dir,
            _process: process,
        }
    }

    fn log(&self) -> String {
        read(&self.dir.join("kamailio.log"))
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// A call through the proxy, in the menu (its prompt has started).
struct InMenu {
    phone: Phone,
    media: CallMedia,
    call: Established,
}

async fn call_through(proxy: &Proxy) -> InMenu {
    let (phone, media, call) = call_hearing(proxy, "main_menu").await;
    InMenu { phone, media, call }
}

/// A call through the proxy, once the caller hears the start of `prompt`.
async fn call_hearing(proxy: &Proxy, prompt_name: &str) -> (Phone, CallMedia, Established) {
    let mut phone = Phone::new(Protocol::Udp, proxy.sip).await.unwrap();
    let media = CallMedia::bind(Ipv4Addr::LOCALHOST.into(), true).unwrap();
    let call = match phone.call("hotline", &media, Offer::Default).await {
        Ok(c) => c,
        Err(e) => panic!("a call through the proxy failed: {e}\n{}", proxy.log()),
    };
    media.connect(
        call.remote_rtp,
        call.codec,
        call.payload_type,
        call.telephone_event_pt,
    );
    media
        .wait_for_prompt(&prompt("en", prompt_name), 0, 30 * SECOND)
        .await
        .unwrap_or_else(|| panic!("the caller hears {prompt_name}"));
    (phone, media, call)
}

/// The caller hangs up; the BYE reaches the node through the proxy and its 200 comes back.
async fn hang_up(mut c: InMenu, proxy: &Proxy) {
    if let Err(e) = c.phone.hang_up(&mut c.call).await {
        panic!("the BYE through the proxy got no 200: {e}\n{}", proxy.log());
    }
    c.media.close();
}

/// Runs `body` with a real Kamailio (the shipped configuration) in front of two fresh
/// nodes, in a scratch folder of its own; skips without Kamailio.
fn with_front(
    name: &str,
    rtp: [std::ops::RangeInclusive<u16>; 2],
    body: impl AsyncFnOnce(Node, Node, Proxy),
) {
    let Some(binary) = kamailio() else {
        return;
    };
    common::logs();
    let dir = scratch(name);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let [rtp_a, rtp_b] = rtp;
        let a = Node::start(dir.join("a"), rtp_a).await;
        let b = Node::start(dir.join("b"), rtp_b).await;
        let proxy = Proxy::start(&binary, dir.clone(), &[&a, &b]).await;
        body(a, b, proxy).await;
    });
    drop(rt);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn calls_are_spread_over_the_nodes_and_a_killed_node_gets_no_more() {
    with_front(
        "front",
        [45_100..=45_199, 45_200..=45_299],
        async |a, mut b, proxy| {
            // Spread: eight calls, round-robin gives each node four; each call's BYE reaches
            // its node.
            let (mut on_a, mut on_b) = (0, 0);
            for _ in 0..8 {
                let c = call_through(&proxy).await;
                match (a.holds(&c.call), b.holds(&c.call)) {
                    (true, false) => on_a += 1,
                    (false, true) => on_b += 1,
                    _ => panic!("the call's media is on neither node: {}", c.call.remote_rtp),
                }
                hang_up(c, &proxy).await;
            }
            assert!(
                on_a == 4 && on_b == 4,
                "calls were not spread: {on_a} on node a, {on_b} on node b"
            );

            // The node's own BYE reaches the caller through the proxy too.
            let mut c = call_through(&proxy).await;
            c.media.press_all("1", KeyMethod::Rfc4733);
            if let Err(e) = c.phone.expect_bye(30 * SECOND).await {
                panic!(
                    "the node's BYE did not come through the proxy: {e}\n{}",
                    proxy.log()
                );
            }
            c.media.close();

            // A node dies: every next call is answered by the other one.
            b.kill();
            for i in 0..6 {
                let c = call_through(&proxy).await;
                assert!(
                    a.holds(&c.call),
                    "call {i} after node b's death was not answered by node a: {}",
                    c.call.remote_rtp
                );
                hang_up(c, &proxy).await;
            }
        },
    );
}

#[test]
fn a_draining_node_finishes_its_call_and_the_proxy_sends_new_calls_elsewhere() {
    with_front(
        "drain",
        [45_300..=45_399, 45_400..=45_499],
        async |a, mut b, proxy| {
            // Round-robin: of two calls, one is on node b; that one stays up.
            let first = call_through(&proxy).await;
            let second = call_through(&proxy).await;
            let (mut on_b, on_a) = match (b.holds(&first.call), b.holds(&second.call)) {
                (true, false) => (first, second),
                (false, true) => (second, first),
                _ => panic!("two calls, and not one on each node"),
            };
            assert!(a.holds(&on_a.call));
            hang_up(on_a, &proxy).await;

            // Node b is asked to stop while its call goes on.
            b.terminate();
            for i in 0..4 {
                let c = call_through(&proxy).await;
                assert!(
                    a.holds(&c.call),
                    "new call {i} during node b's drain was not answered by node a: {}",
                    c.call.remote_rtp
                );
                hang_up(c, &proxy).await;
            }

            // The call on b goes on to its end: its key is heard, and b's BYE reaches the caller.
            on_b.media.press_all("1", KeyMethod::Rfc4733);
            if let Err(e) = on_b.phone.expect_bye(30 * SECOND).await {
                panic!(
                    "the draining node's call did not end through the proxy: {e}\n{}\n{}",
                    proxy.log(),
                    read(&b.dir.join("engine.log"))
                );
            }
            on_b.media.close();
            // With its last call over, node b exits by itself, cleanly.
            let status = b.exited(Duration::from_secs(60)).await;
            assert!(status.success(), "node b exited with {status}");
        },
    );
}

#[test]
fn an_agent_registered_at_the_proxy_takes_the_callers_of_three_nodes_in_arrival_order() {
    let Some(binary) = kamailio() else {
        return;
    };
    let Some(pg) = PgServer::start_or_skip("front") else {
        return;
    };
    common::logs();
    let dir = scratch("queues");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut nodes = Vec::new();
        for (name, rtp) in [
            ("a", 45_500..=45_599),
            ("b", 45_600..=45_699),
            ("c", 45_700..=45_799),
        ] {
            let more = format!(
                "records: {{ store: {:?} }}\ncluster: {{ node: {name}, lease: 2s }}\n\
queues:\n  support: {{ music: hold_music, ring_timeout: 20s, wrap_up: 1s }}\n\
agents:\n  alice: {{ password: alice-secret, queues: {{ support: 0 }} }}\n",
                pg.url()
            );
            nodes.push(Node::start_with(dir.join(name), rtp, QUEUE_FLOW, &more).await);
        }
        let proxy = Proxy::start(&binary, dir.clone(), &nodes.iter().collect::<Vec<_>>()).await;

        // Alice registers once, through the proxy (digest challenge and answer reach the
        // same node).
        let mut alice = Answerer::bind(Ipv4Addr::LOCALHOST.into()).await.unwrap();
        let status = alice
            .register(proxy.sip, "alice", "alice-secret", 300)
            .await
            .unwrap();
        assert_eq!(
            status,
            200,
            "alice registers through the proxy\n{}",
            proxy.log()
        );

        // The first caller takes her; the next three wait, one on each node.
        let (mut first_phone, first_media, _first) = call_hearing(&proxy, "hold_music").await;
        let offer = alice
            .next_invite(30 * SECOND)
            .await
            .expect("alice is offered the first call");
        let agent_media = CallMedia::bind(Ipv4Addr::LOCALHOST.into(), true).unwrap();
        let mut talking = alice.accept(&offer, &agent_media).await.unwrap();
        hear_each_other(&first_media, &agent_media).await;
        let mut line = Vec::new();
        for _ in 0..3 {
            line.push(call_hearing(&proxy, "hold_music").await);
        }
        let homes: Vec<usize> = line
            .iter()
            .map(|(_, _, call)| {
                nodes
                    .iter()
                    .position(|n| n.holds(call))
                    .expect("the call is on a node")
            })
            .collect();
        let mut distinct = homes.clone();
        distinct.sort();
        assert_eq!(
            distinct,
            [0, 1, 2],
            "the proxy spread the waiting callers: {homes:?}"
        );

        // Each time alice is free, the longest waiting caller is hers, whatever its node:
        // she hears that caller and it hears her.
        let mut offered =
            std::collections::HashSet::from([offer.invite.headers.call_id().unwrap().to_string()]);
        alice.hang_up(&mut talking).await.unwrap();
        first_phone.expect_bye(30 * SECOND).await.unwrap();
        for (i, (mut phone, media, _)) in line.into_iter().enumerate() {
            let offer = loop {
                let o = alice
                    .next_invite(30 * SECOND)
                    .await
                    .expect("the next offer");
                if offered.insert(o.invite.headers.call_id().unwrap().to_string()) {
                    break o;
                }
            };
            let agent_media = CallMedia::bind(Ipv4Addr::LOCALHOST.into(), true).unwrap();
            let mut talking = alice.accept(&offer, &agent_media).await.unwrap();
            tokio::time::timeout(60 * SECOND, hear_each_other(&media, &agent_media))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "caller {i} (node {}) and alice do not hear each other",
                        homes[i]
                    )
                });
            alice.hang_up(&mut talking).await.unwrap();
            phone.expect_bye(30 * SECOND).await.unwrap();
        }
        drop(nodes);
    });
    drop(rt);
    let _ = std::fs::remove_dir_all(&dir);
}
