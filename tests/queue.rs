//! Agent queues on live calls: agents register with digest authentication, the caller
//! waits with hold music, the ACD offers the call to an agent (a second SIP leg), a ring
//! with no answer moves on to the next agent, the answering agent is bridged to the
//! caller (audio checked sample by sample both ways), and each side's hang-up does what a
//! contact centre expects. Real server on loopback, the project's caller, and scripted
//! answering phones as the agents.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::bridge::hear_each_other;
use common::{SECOND, prompt, repo};
use hotline::config::{Config, Protocol};
use hotline::server::{RunningServer, Server};
use hotline_load::caller::CallMedia;
use hotline_load::caller::answerer::{Answerer, Incoming};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hotline-queue-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("flows")).unwrap();
    d
}

async fn serve(dir: &Path, rtp: &str, queue: &str) -> RunningServer {
    serve_with(dir, rtp, queue, "").await
}

/// Like `serve`, with `more` agents (YAML lines, each indented by two spaces).
async fn serve_with(dir: &Path, rtp: &str, queue: &str, more: &str) -> RunningServer {
    std::fs::write(dir.join("flows/main.yaml"), common::QUEUE_FLOW).unwrap();
    std::fs::write(
        dir.join("hotline.yaml"),
        format!(
            "sip: {{ listen: [\"udp:127.0.0.1:0\"] }}\nrtp: {{ ports: {rtp} }}\nflows: flows\n\
prompts: {}\ndata: data\n\
queues:\n  support: {queue}\n\
agents:\n  alice: {{ password: alice-secret, queues: {{ support: 0 }} }}\n  \
bob: {{ password: bob-secret, queues: {{ support: 0 }} }}\n{more}",
            repo().join("prompts").display()
        ),
    )
    .unwrap();
    let cfg = Config::load(&dir.join("hotline.yaml")).unwrap();
    Server::start(cfg, 1).await.unwrap().spawn()
}

async fn agents(server: SocketAddr) -> (Answerer, Answerer) {
    let mut alice = Answerer::bind(LOCALHOST).await.unwrap();
    let mut bob = Answerer::bind(LOCALHOST).await.unwrap();
    assert_eq!(
        alice
            .register(server, "alice", "alice-secret", 300)
            .await
            .unwrap(),
        200
    );
    assert_eq!(
        bob.register(server, "bob", "bob-secret", 300)
            .await
            .unwrap(),
        200
    );
    (alice, bob)
}

/// The first offer to reach either agent: which one (0 alice, 1 bob) and the INVITE.
async fn first_offer(alice: &mut Answerer, bob: &mut Answerer) -> (usize, Incoming) {
    tokio::select! {
        i = alice.next_invite(20 * SECOND) => (0, i.unwrap()),
        i = bob.next_invite(20 * SECOND) => (1, i.unwrap()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_no_answer_moves_on_then_the_agent_talks_and_hangs_up_first() {
    let dir = scratch("main");
    let srv = serve(
        &dir,
        "46200-46239",
        "{ strategy: longest_idle, music: hold_music, ring_timeout: 2s, wrap_up: 1s }",
    )
    .await;
    let addr = common::addr(&srv, Protocol::Udp);
    let (mut alice, mut bob) = agents(addr).await;
    let (mut phone, media, _call) = common::call(addr, "hotline").await;

    // Hold music while the first agent rings.
    let music = prompt("en", "hold_music");
    assert!(
        media
            .wait_for_prompt(&music, 0, 10 * SECOND)
            .await
            .is_some(),
        "the caller hears the queue's music"
    );

    // The first agent offered lets it ring: after the ring timeout it is cancelled and
    // the other agent is offered the call.
    let (first, offer) = first_offer(&mut alice, &mut bob).await;
    let text = String::from_utf8_lossy(&offer.invite.to_bytes()).into_owned();
    assert!(
        text.contains("P-Asserted-Identity: <sip:+4930123456@"),
        "{text}"
    );
    let (ringer, other) = if first == 0 {
        (&mut alice, &mut bob)
    } else {
        (&mut bob, &mut alice)
    };
    ringer.ring(&offer).await.unwrap();
    ringer.expect_cancel(&offer, 15 * SECOND).await.unwrap();
    let offer2 = other.next_invite(15 * SECOND).await.unwrap();
    let agent_media = CallMedia::bind(LOCALHOST, true).unwrap();
    let mut talking = other.accept(&offer2, &agent_media).await.unwrap();

    // Caller and agent hear each other.
    hear_each_other(&media, &agent_media).await;

    // The agent hangs up first: the caller goes on to the step's `after`.
    let from = media.heard_len();
    other.hang_up(&mut talking).await.unwrap();
    assert!(
        media
            .wait_for_prompt(&prompt("en", "survey_thanks"), from, 10 * SECOND)
            .await
            .is_some(),
        "after the agent hangs up the caller reaches the `after` step"
    );
    phone.expect_bye(20 * SECOND).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_hangs_up_while_an_agent_rings_cancels_the_agents_leg() {
    let dir = scratch("cancel");
    let srv = serve(&dir, "46240-46279", "{ ring_timeout: 20s }").await;
    let addr = common::addr(&srv, Protocol::Udp);
    let (mut alice, mut bob) = agents(addr).await;
    let (mut phone, _media, mut call) = common::call(addr, "hotline").await;
    let (first, offer) = first_offer(&mut alice, &mut bob).await;
    let agent = if first == 0 { &mut alice } else { &mut bob };
    agent.ring(&offer).await.unwrap();
    phone.hang_up(&mut call).await.unwrap();
    agent.expect_cancel(&offer, 10 * SECOND).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_agent_logged_in_a_leave_queue_sends_the_caller_on_at_once() {
    let dir = scratch("empty");
    let srv = serve(&dir, "46280-46299", "{ when_empty: leave }").await;
    let addr = common::addr(&srv, Protocol::Udp);
    let (mut phone, media, _call) = common::call(addr, "hotline").await;
    assert!(
        media
            .wait_for_prompt(&prompt("en", "advisors_busy"), 0, 10 * SECOND)
            .await
            .is_some(),
        "no agent registered: on_timeout at once"
    );
    phone.expect_bye(20 * SECOND).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_third_caller_waiting_hears_its_position() {
    let dir = scratch("position");
    let srv = serve(
        &dir,
        "46300-46339",
        "{ music: hold_music, announce_every: 20s, announce: [position] }",
    )
    .await;
    let addr = common::addr(&srv, Protocol::Udp);
    // No agent is logged in; the callers join anyway (the default) and wait in order. Each
    // is in line (it hears its position) before the next calls: joining is asynchronous,
    // and a later call may otherwise overtake an earlier one on a busy machine.
    let position = prompt("en", "queue_position");
    let mut calls = Vec::new();
    let mut heard_at = Vec::new();
    for _ in 0..3 {
        let call = common::call(addr, "hotline").await;
        let at = call
            .1
            .wait_for_prompt(&position, 0, 20 * SECOND)
            .await
            .expect("a position announcement");
        heard_at.push(at);
        calls.push(call);
    }
    let three = hotline::flow::say::say(hotline::flow::model::SayKind::Number, "3", "en").unwrap();
    let three = prompt("en", &three[0]);
    let two = hotline::flow::say::say(hotline::flow::model::SayKind::Number, "2", "en").unwrap();
    let two = prompt("en", &two[0]);
    for (i, number) in [(2, &three), (1, &two)] {
        let (media, at) = (&calls[i].1, heard_at[i]);
        let n = media
            .wait_for_prompt(number, at, 10 * SECOND)
            .await
            .expect("the position");
        assert!(
            n >= at + position.frame_count() - 1,
            "the number follows the words"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrap_up_holds_the_next_call_back_from_the_agent() {
    let dir = scratch("wrapup");
    let srv = serve(&dir, "46340-46379", "{ ring_timeout: 20s, wrap_up: 3s }").await;
    let addr = common::addr(&srv, Protocol::Udp);
    let mut alice = common::alice_at(addr).await;
    let (_p1, _m1, _c1) = common::call(addr, "hotline").await;
    let offer = alice.next_invite(10 * SECOND).await.unwrap();
    let agent_media = CallMedia::bind(LOCALHOST, false).unwrap();
    let mut talking = alice.accept(&offer, &agent_media).await.unwrap();
    // A second caller waits while alice talks.
    let (_p2, _m2, _c2) = common::call(addr, "hotline").await;
    alice.hang_up(&mut talking).await.unwrap();
    let hung_up = tokio::time::Instant::now();
    // The next offer comes only after the wrap-up (never before: a lower bound).
    let _next = alice.next_invite(20 * SECOND).await.unwrap();
    let waited = hung_up.elapsed();
    assert!(
        waited >= Duration::from_millis(2900),
        "offered again after {waited:?}, within the 3 s wrap-up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_at_a_fixed_address_is_offered_the_call_without_registering() {
    let dir = scratch("fixed");
    let mut carol = Answerer::bind(LOCALHOST).await.unwrap();
    let more = format!(
        "  carol: {{ uri: \"{}\", queues: {{ support: 0 }} }}\n",
        carol.uri("carol")
    );
    // alice and bob never register: carol, at her fixed address, is the only agent.
    let srv = serve_with(&dir, "46380-46399", "{ ring_timeout: 20s }", &more).await;
    let addr = common::addr(&srv, Protocol::Udp);
    let (mut phone, media, mut call) = common::call(addr, "hotline").await;
    let offer = carol.next_invite(20 * SECOND).await.unwrap();
    assert!(
        offer
            .invite
            .uri
            .to_string()
            .starts_with("sip:carol@127.0.0.1:"),
        "{}",
        offer.invite.uri
    );
    let agent_media = CallMedia::bind(LOCALHOST, true).unwrap();
    let talking = carol.accept(&offer, &agent_media).await.unwrap();
    hear_each_other(&media, &agent_media).await;
    // The caller hangs up: the agent's leg is hung up too.
    phone.hang_up(&mut call).await.unwrap();
    carol.expect_bye(&talking, 20 * SECOND).await.unwrap();
}
