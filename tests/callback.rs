//! "Keep my place, call me back" on live calls. A caller waiting behind a busy agent hears
//! its position and expected wait, is offered a callback, presses the key and hangs up;
//! when the agent frees up, hotline calls the caller's number through the queue's
//! `callback.dial` route (a scripted phone on loopback plays the telephone network),
//! introduces the call, and connects the agent, audio checked both ways. The request is
//! kept in SQLite: a second server on the same data folder calls back after a restart,
//! and an unanswered attempt is tried again (and is on record as a call back never
//! answered).

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::bridge::hear_each_other;
use common::records::Records;
use common::{SECOND, prompt, repo};
use hotline::config::Protocol;
use hotline::flow::model::SayKind;
use hotline::media::dtmf::Key;
use hotline::records::{CallKind, CallOutcome};
use hotline::server::RunningServer;
use hotline_load::caller::answerer::{Answered, Answerer, Incoming};
use hotline_load::caller::{CallMedia, Established, KeyMethod, Phone};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The number the test callers call from (the project's phone sends it in From).
const CALLER_NUMBER: &str = "+4930123456";
/// The hotline's number, shown to the caller called back.
const HOTLINE_NUMBER: &str = "+18005550100";

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hotline-callback-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("flows")).unwrap();
    d
}

/// A hotline whose `support` queue calls back through `network` (the callers' side).
async fn serve(dir: &Path, rtp: &str, network: SocketAddr) -> RunningServer {
    serve_recorded(dir, rtp, network).await.0
}

/// `serve`, with the records the calls send.
async fn serve_recorded(
    dir: &Path,
    rtp: &str,
    network: SocketAddr,
) -> (RunningServer, Arc<Records>) {
    std::fs::write(dir.join("flows/main.yaml"), common::CALLBACK_FLOW).unwrap();
    std::fs::write(
        dir.join("hotline.yaml"),
        format!(
            "sip: {{ listen: [\"udp:127.0.0.1:0\"] }}\nrtp: {{ ports: {rtp} }}\nflows: flows\n\
prompts: {}\ndata: data\n\
queues:\n  support:\n    music: hold_music\n    announce: [position, wait]\n    \
ring_timeout: 20s\n    callback:\n      key: \"1\"\n      offer_after_wait: 0s\n      \
dial: \"sip:{{number}}@{network}\"\n      caller_id: \"{HOTLINE_NUMBER}\"\n      \
ring_timeout: 20s\n      attempts: 3\n      retry_after: 1s\n      \
allowed: [\"+49[1-8]X.\"]\n\
agents:\n  alice: {{ password: alice-secret, queues: {{ support: 0 }} }}\n",
            repo().join("prompts").display()
        ),
    )
    .unwrap();
    common::records::serve_recorded(dir).await
}

/// What stays up while the callback request waits: the agent talking to a second caller.
struct Busy {
    _caller: (Phone, CallMedia, Established),
    talking: Answered,
    _talking_media: CallMedia,
}

/// One call handled by alice (so the queue has a handling time to estimate from), a
/// second caller talking to her, and a third who hears its position and expected wait,
/// is offered the callback, presses 1, hears the confirmation and is hung up on.
async fn request_a_callback(addr: SocketAddr, alice: &mut Answerer) -> Busy {
    let (_p1, m1, _c1) = common::call(addr, "hotline").await;
    let offer = alice.next_invite(20 * SECOND).await.unwrap();
    let agent_media = CallMedia::bind(LOCALHOST, false).unwrap();
    let mut first = alice.accept(&offer, &agent_media).await.unwrap();
    alice.hang_up(&mut first).await.unwrap();
    assert!(
        m1.wait_for_prompt(&prompt("en", "survey_thanks"), 0, 10 * SECOND)
            .await
            .is_some(),
        "the first caller was served"
    );

    let second = common::call(addr, "hotline").await;
    let offer = alice.next_invite(20 * SECOND).await.unwrap();
    let talking_media = CallMedia::bind(LOCALHOST, true).unwrap();
    let talking = alice.accept(&offer, &talking_media).await.unwrap();
    // Connected, not just answered: until the ACD has bridged it, the second caller is
    // still ahead in line and the third would rightly hear "caller number 2".
    hear_each_other(&second.1, &talking_media).await;

    let (mut phone, media, _c3) = common::call(addr, "hotline").await;
    // "You are caller number 1. Your expected wait is about 1 minute." (one agent, a
    // handling time of a few seconds), then the callback offer.
    let one = hotline::flow::say::say(SayKind::Number, "1", "en").unwrap();
    let mut at = 0;
    for name in [
        "queue_position",
        &one[0],
        "queue_wait",
        &one[0],
        "queue_minutes",
    ] {
        at = media
            .wait_for_prompt(&prompt("en", name), at, 15 * SECOND)
            .await
            .unwrap_or_else(|| panic!("the third caller hears '{name}' in order"));
    }
    media
        .wait_for_prompt(&prompt("en", "queue_callback_offer"), at, 15 * SECOND)
        .await
        .expect("the callback is offered");
    let from = media.heard_len();
    media.press(Key::from_char('1').unwrap(), KeyMethod::Rfc4733);
    assert!(
        media
            .wait_for_prompt(&prompt("en", "goodbye"), from, 10 * SECOND)
            .await
            .is_some(),
        "the flow's on_callback step confirms"
    );
    phone.expect_bye(20 * SECOND).await.unwrap();
    Busy {
        _caller: second,
        talking,
        _talking_media: talking_media,
    }
}

/// The call back as it reaches the caller's phone: from the hotline's number, to the
/// caller's.
fn check_call_back(inc: &Incoming) {
    let text = String::from_utf8_lossy(&inc.invite.to_bytes()).into_owned();
    assert!(
        text.starts_with(&format!("INVITE sip:{CALLER_NUMBER}@")),
        "{text}"
    );
    assert!(
        text.contains(&format!("P-Asserted-Identity: <sip:{HOTLINE_NUMBER}@")),
        "{text}"
    );
}

/// The caller answers the call back, hears the introduction, and alice is offered the
/// call with the caller's number; caller and agent hear each other.
async fn answer_and_talk(
    network: &mut Answerer,
    call_back: &Incoming,
    alice: &mut Answerer,
) -> (Answered, Answered) {
    let caller_media = CallMedia::bind(LOCALHOST, true).unwrap();
    let caller = network.accept(call_back, &caller_media).await.unwrap();
    assert!(
        caller_media
            .wait_for_prompt(&prompt("en", "queue_callback_intro"), 0, 15 * SECOND)
            .await
            .is_some(),
        "the caller hears who calls and why"
    );
    let offer = alice.next_invite(30 * SECOND).await.unwrap();
    let text = String::from_utf8_lossy(&offer.invite.to_bytes()).into_owned();
    assert!(
        text.contains(&format!("P-Asserted-Identity: <sip:{CALLER_NUMBER}@")),
        "the agent sees the caller's number: {text}"
    );
    let agent_media = CallMedia::bind(LOCALHOST, true).unwrap();
    let agent = alice.accept(&offer, &agent_media).await.unwrap();

    hear_each_other(&caller_media, &agent_media).await;
    (caller, agent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caller_is_called_back_when_the_agent_frees_up_and_is_connected() {
    common::logs();
    let dir = scratch("main");
    let mut network = Answerer::bind(LOCALHOST).await.unwrap();
    let (srv, records) = serve_recorded(&dir, "46400-46459", network.local).await;
    let addr = common::addr(&srv, Protocol::Udp);
    let mut alice = common::alice_at(addr).await;
    let mut busy = request_a_callback(addr, &mut alice).await;

    // Nothing is dialled while alice is busy: the request waits at its place.
    assert!(network.next_invite(2 * SECOND).await.is_err());
    alice.hang_up(&mut busy.talking).await.unwrap();

    let call_back = network.next_invite(20 * SECOND).await.unwrap();
    check_call_back(&call_back);
    let (caller, mut agent) = answer_and_talk(&mut network, &call_back, &mut alice).await;

    // The agent hangs up: so does the call back.
    alice.hang_up(&mut agent).await.unwrap();
    network.expect_bye(&caller, 20 * SECOND).await.unwrap();

    // The records: the caller who asked, and the call back linked to that call, which
    // alice answered and ended.
    let (asked, events) = records
        .find(20 * SECOND, |r| r.outcome == Some(CallOutcome::Callback))
        .await;
    assert!(
        events.iter().any(|e| e.kind == "callback_requested"),
        "{events:?}"
    );
    let (back, events) = records
        .find(20 * SECOND, |r| r.kind == CallKind::Callback)
        .await;
    assert_eq!(back.outcome, Some(CallOutcome::Agent), "{back:?}");
    assert_eq!(back.agent.as_deref(), Some("alice"));
    let placed = events
        .iter()
        .find(|e| e.kind == "callback_placed")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert_eq!(placed.detail["for_call"], asked.call_id.as_str());
    assert_eq!(placed.detail["queue"], "support");
    assert_eq!(placed.detail["attempt"], 1);
    let ended = events
        .iter()
        .find(|e| e.kind == "agent_ended")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert_eq!(ended.detail["by"], "agent");
    assert!(ended.detail["talk_ms"].as_u64().is_some(), "{ended:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_request_survives_a_restart_and_an_unanswered_attempt() {
    common::logs();
    let dir = scratch("restart");
    let mut network = Answerer::bind(LOCALHOST).await.unwrap();
    {
        let srv = serve(&dir, "46460-46519", network.local).await;
        let addr = common::addr(&srv, Protocol::Udp);
        let mut alice = common::alice_at(addr).await;
        let _busy = request_a_callback(addr, &mut alice).await;
        // The engine stops with the request still waiting.
    }
    assert!(dir.join("data/callbacks.sqlite").exists());

    let (srv, records) = serve_recorded(&dir, "46520-46579", network.local).await;
    let addr = common::addr(&srv, Protocol::Udp);
    // Nobody can take the call yet: nothing is dialled.
    assert!(network.next_invite(2 * SECOND).await.is_err());
    let mut alice = common::alice_at(addr).await;

    // The first attempt is refused (busy); the next comes after `retry_after`.
    let first = network.next_invite(20 * SECOND).await.unwrap();
    check_call_back(&first);
    network.refuse(&first, 486, "Busy Here").await.unwrap();
    let refused = tokio::time::Instant::now();
    // The attempt the caller did not take is on record: a call back never answered.
    let first_id = first.invite.headers.call_id().unwrap().to_string();
    let (r, events) = records.find(20 * SECOND, |r| r.call_id == first_id).await;
    assert_eq!(
        (r.kind, r.answered_ms, r.outcome),
        (CallKind::Callback, None, Some(CallOutcome::Failed)),
        "{r:?}"
    );
    assert_eq!(r.caller, CALLER_NUMBER);
    let placed = events
        .iter()
        .find(|e| e.kind == "callback_placed")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert_eq!(placed.detail["attempt"], 1, "{events:?}");
    assert!(
        events.iter().any(|e| e.kind == "ended"
            && e.detail["fault"]
                .as_str()
                .is_some_and(|f| f.contains("busy"))),
        "{events:?}"
    );
    let again = network.next_invite(20 * SECOND).await.unwrap();
    assert!(refused.elapsed() >= Duration::from_millis(900));
    check_call_back(&again);
    let (mut caller, agent) = answer_and_talk(&mut network, &again, &mut alice).await;

    // The caller hangs up: the agent's leg ends too.
    network.hang_up(&mut caller).await.unwrap();
    alice.expect_bye(&agent, 20 * SECOND).await.unwrap();
}
