//! An agent transfers the caller (blind transfer, RFC 3515) on live calls: a queued
//! caller is answered by alice's phone, which sends REFER; the target allowed by
//! `agent_transfers.allowed` is rung, alice hears NOTIFY 100 then the final status, and
//! on the answer caller and target hear each other while alice's leg ends. A target not
//! allowed gets 403 and a busy one NOTIFY 486, and the caller stays with alice; without
//! `agent_transfers` a REFER is refused as always. Real server on loopback, the project's
//! caller, and scripted answering phones (alice, the targets).

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::bridge::hear_each_other;
use common::records::Records;
use common::{SECOND, repo};
use hotline::config::Protocol;
use hotline::records::CallOutcome;
use hotline::server::RunningServer;
use hotline_load::caller::CallMedia;
use hotline_load::caller::answerer::{Answered, Answerer};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hotline-refer-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("flows")).unwrap();
    d
}

/// A hotline with one queue and one agent, alice; `transfers` is the `agent_transfers`
/// section (or nothing).
async fn serve(dir: &Path, rtp: &str, transfers: &str) -> (RunningServer, Arc<Records>) {
    std::fs::write(dir.join("flows/main.yaml"), common::QUEUE_FLOW).unwrap();
    std::fs::write(
        dir.join("hotline.yaml"),
        format!(
            "sip: {{ listen: [\"udp:127.0.0.1:0\"] }}\nrtp: {{ ports: {rtp} }}\nflows: flows\n\
prompts: {}\ndata: data\n\
queues:\n  support: {{ ring_timeout: 20s, wrap_up: 1s }}\n\
agents:\n  alice: {{ password: alice-secret, queues: {{ support: 0 }} }}\n{transfers}",
            repo().join("prompts").display()
        ),
    )
    .unwrap();
    common::records::serve_recorded(dir).await
}

const ALLOWED: &str = "agent_transfers: { allowed: [\"2XX@127.0.0.1\"] }\n";

/// A caller in line answered by alice: the caller's phone and media, alice's phone, her
/// media and her answered leg.
async fn talking_to_alice(
    addr: SocketAddr,
) -> (
    hotline_load::caller::Phone,
    CallMedia,
    hotline_load::caller::Established,
    Answerer,
    CallMedia,
    Answered,
) {
    let mut alice = common::alice_at(addr).await;
    let (phone, media, call) = common::call(addr, "hotline").await;
    let offer = alice.next_invite(20 * SECOND).await.unwrap();
    let alice_media = CallMedia::bind(LOCALHOST, true).unwrap();
    let leg = alice.accept(&offer, &alice_media).await.unwrap();
    hear_each_other(&media, &alice_media).await;
    (phone, media, call, alice, alice_media, leg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alice_transfers_the_caller_to_bob_who_answers_and_her_leg_ends() {
    let dir = scratch("connected");
    let (srv, records) = serve(&dir, "49000-49039", ALLOWED).await;
    let addr = common::addr(&srv, Protocol::Udp);
    let (mut phone, media, _call, mut alice, _alice_media, mut leg) = talking_to_alice(addr).await;
    let mut bob = Answerer::bind(LOCALHOST).await.unwrap();

    let target = bob.uri("201");
    assert_eq!(alice.refer(&mut leg, &target).await.unwrap(), 202);
    let (status, state) = alice.expect_notify(&leg, 10 * SECOND).await.unwrap();
    assert_eq!((status, state.as_str()), (100, "active;expires=60"));

    // Bob is rung at the target and answers.
    let offer = bob.next_invite(10 * SECOND).await.unwrap();
    assert_eq!(offer.invite.uri.to_string(), target);
    let bob_media = CallMedia::bind(LOCALHOST, true).unwrap();
    let mut bob_leg = bob.accept(&offer, &bob_media).await.unwrap();

    // Alice hears it worked, and her leg ends.
    let (status, state) = alice.expect_notify(&leg, 10 * SECOND).await.unwrap();
    assert_eq!(
        (status, state.as_str()),
        (200, "terminated;reason=noresource")
    );
    alice.expect_bye(&leg, 10 * SECOND).await.unwrap();

    // Caller and bob hear each other; bob hangs up, the caller's call ends.
    hear_each_other(&media, &bob_media).await;
    bob.hang_up(&mut bob_leg).await.unwrap();
    phone.expect_bye(20 * SECOND).await.unwrap();

    let (record, events) = records.first(20 * SECOND).await;
    assert_eq!(record.outcome, Some(CallOutcome::Transferred), "{record:?}");
    assert_eq!(record.agent.as_deref(), Some("alice"));
    let ended = events
        .iter()
        .find(|e| e.kind == "agent_ended")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert_eq!(ended.detail["by"], "transfer");
    assert_eq!(ended.detail["agent"], "alice");
    let transfers: Vec<_> = events.iter().filter(|e| e.kind == "transfer").collect();
    assert_eq!(transfers.len(), 2, "{events:?}");
    assert_eq!(transfers[0].detail["target"], target.as_str());
    assert_eq!(transfers[0].detail["outcome"], "started");
    assert_eq!(transfers[1].detail["outcome"], "connected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alice_may_hang_up_before_bob_answers_and_the_caller_is_handed_to_bob() {
    let dir = scratch("blind");
    let (srv, records) = serve(&dir, "49160-49199", ALLOWED).await;
    let addr = common::addr(&srv, Protocol::Udp);
    let (mut phone, media, mut call, mut alice, _alice_media, mut leg) =
        talking_to_alice(addr).await;
    let mut bob = Answerer::bind(LOCALHOST).await.unwrap();

    assert_eq!(alice.refer(&mut leg, &bob.uri("203")).await.unwrap(), 202);
    let (status, _) = alice.expect_notify(&leg, 10 * SECOND).await.unwrap();
    assert_eq!(status, 100);
    let offer = bob.next_invite(10 * SECOND).await.unwrap();
    bob.ring(&offer).await.unwrap();
    // Alice is done: she hangs up while bob's phone rings.
    alice.hang_up(&mut leg).await.unwrap();
    let bob_media = CallMedia::bind(LOCALHOST, true).unwrap();
    let bob_leg = bob.accept(&offer, &bob_media).await.unwrap();
    hear_each_other(&media, &bob_media).await;
    // The caller hangs up: bob's leg is ended too.
    phone.hang_up(&mut call).await.unwrap();
    bob.expect_bye(&bob_leg, 10 * SECOND).await.unwrap();
    let (record, events) = records.first(20 * SECOND).await;
    assert_eq!(record.outcome, Some(CallOutcome::Transferred), "{record:?}");
    assert!(
        events
            .iter()
            .any(|e| e.kind == "transfer" && e.detail["outcome"] == "connected"),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_not_allowed_gets_403_and_the_caller_stays_with_alice() {
    let dir = scratch("forbidden");
    let (srv, _records) = serve(&dir, "49040-49079", ALLOWED).await;
    let addr = common::addr(&srv, Protocol::Udp);
    let (mut phone, media, _call, mut alice, alice_media, mut leg) = talking_to_alice(addr).await;
    let mut premium = Answerer::bind(LOCALHOST).await.unwrap();

    assert_eq!(
        alice
            .refer(&mut leg, &premium.uri("0900123456"))
            .await
            .unwrap(),
        403
    );
    // Not even on another host with an allowed number.
    assert_eq!(
        alice
            .refer(&mut leg, "sip:201@192.0.2.1:5060")
            .await
            .unwrap(),
        403
    );
    // Nothing is dialled, and the conversation goes on.
    assert!(premium.next_invite(2 * SECOND).await.is_err());
    hear_each_other(&media, &alice_media).await;
    alice.hang_up(&mut leg).await.unwrap();
    phone.expect_bye(20 * SECOND).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_target_gives_notify_486_and_the_caller_stays_with_alice() {
    let dir = scratch("busy");
    let (srv, records) = serve(&dir, "49080-49119", ALLOWED).await;
    let addr = common::addr(&srv, Protocol::Udp);
    let (mut phone, media, _call, mut alice, alice_media, mut leg) = talking_to_alice(addr).await;
    let mut carol = Answerer::bind(LOCALHOST).await.unwrap();

    assert_eq!(alice.refer(&mut leg, &carol.uri("202")).await.unwrap(), 202);
    let (status, _) = alice.expect_notify(&leg, 10 * SECOND).await.unwrap();
    assert_eq!(status, 100);
    let offer = carol.next_invite(10 * SECOND).await.unwrap();
    carol.refuse(&offer, 486, "Busy Here").await.unwrap();
    let (status, state) = alice.expect_notify(&leg, 10 * SECOND).await.unwrap();
    assert_eq!(
        (status, state.as_str()),
        (486, "terminated;reason=noresource")
    );

    // Still talking; alice may try again (here she hangs up).
    hear_each_other(&media, &alice_media).await;
    alice.hang_up(&mut leg).await.unwrap();
    phone.expect_bye(20 * SECOND).await.unwrap();
    let (record, events) = records.first(20 * SECOND).await;
    assert_eq!(record.outcome, Some(CallOutcome::Agent), "{record:?}");
    let ended = events
        .iter()
        .find(|e| e.kind == "agent_ended")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert_eq!(ended.detail["by"], "agent");
    assert!(
        events
            .iter()
            .any(|e| e.kind == "transfer" && e.detail["outcome"] == "busy"),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_agent_transfers_a_refer_is_refused_as_always() {
    let dir = scratch("off");
    let (srv, _records) = serve(&dir, "49120-49159", "").await;
    let addr = common::addr(&srv, Protocol::Udp);
    let (mut phone, media, _call, mut alice, alice_media, mut leg) = talking_to_alice(addr).await;
    let mut bob = Answerer::bind(LOCALHOST).await.unwrap();
    assert_eq!(alice.refer(&mut leg, &bob.uri("201")).await.unwrap(), 405);
    assert!(bob.next_invite(2 * SECOND).await.is_err());
    hear_each_other(&media, &alice_media).await;
    alice.hang_up(&mut leg).await.unwrap();
    phone.expect_bye(20 * SECOND).await.unwrap();
}
