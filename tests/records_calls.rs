//! Call records from real calls on loopback: every call hands its record to the records
//! sink when it is answered (or refused) and again, whole, when it ends. The sink here
//! collects the messages (no database); the calls are placed by the project's scripted
//! caller through the sample flows and small flows of the test's own, and each test
//! checks the outcome and the fields and events that show it.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{SECOND, hears, prompt, repo};
use hotline::config::{Config, Protocol};
use hotline::records::{
    CallEvent, CallKind, CallOutcome, CallRecord, Deliver, RecordMsg, RecordSink,
};
use hotline::server::{RunningServer, Server};
use hotline::tools::demo_shop::DemoShop;
use hotline_load::caller::answerer::Answerer;
use hotline_load::caller::{CallMedia, KeyMethod, Offer, Phone};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const ALWAYS_OPEN: &str = "{ timezone: Europe/Berlin, weekly: { mon-sun: 00:00-24:00 } }";
const NEVER_OPEN: &str = "{ timezone: Europe/Berlin }";

/// Keeps every message the calls send.
#[derive(Default)]
struct Collected(Mutex<Vec<RecordMsg>>);

impl Deliver for Collected {
    fn deliver(&self, msg: RecordMsg) {
        self.0.lock().unwrap().push(msg);
    }
}

impl Collected {
    /// The finished record and events of the one call, once it has ended.
    async fn finished(&self, within: Duration) -> (CallRecord, Vec<CallEvent>) {
        let deadline = std::time::Instant::now() + within;
        loop {
            {
                let msgs = self.0.lock().unwrap();
                if let Some((r, e)) = msgs.iter().find_map(|m| match m {
                    RecordMsg::Finish(r, e) => Some((r.clone(), e.clone())),
                    _ => None,
                }) {
                    let begins: Vec<&CallRecord> = msgs
                        .iter()
                        .filter_map(|m| match m {
                            RecordMsg::Begin(b) => Some(b),
                            _ => None,
                        })
                        .collect();
                    assert_eq!(begins.len(), 1, "one Begin per call: {msgs:?}");
                    assert!(
                        matches!(msgs.first(), Some(RecordMsg::Begin(_))),
                        "Begin comes first"
                    );
                    assert_eq!(begins[0].call_id, r.call_id);
                    assert_eq!(begins[0].outcome, None);
                    assert_eq!(begins[0].ended_ms, None);
                    return (r, e);
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no finished record within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hotline-records-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("flows")).unwrap();
    d
}

/// A server for `dir/hotline.yaml` (`yaml` plus the listener, ports and prompts), whose
/// calls send their records to the returned collector.
async fn serve(dir: &Path, rtp: &str, yaml: &str) -> (RunningServer, Arc<Collected>) {
    let text = format!(
        "sip: {{ listen: [\"udp:127.0.0.1:0\"] }}\nrtp: {{ ports: {rtp} }}\nprompts: {:?}\n\
recordings: recordings\n{yaml}",
        repo().join("prompts").display().to_string(),
    );
    std::fs::write(dir.join("hotline.yaml"), text).unwrap();
    let cfg = Config::load(&dir.join("hotline.yaml")).unwrap();
    let collected = Arc::new(Collected::default());
    let srv = Server::start_with_records(cfg, 1, RecordSink::new(collected.clone()))
        .await
        .expect("server starts")
        .spawn();
    (srv, collected)
}

/// The sample's flows, with the test's opening hours and shop.
async fn serve_sample(
    dir: &Path,
    rtp: &str,
    schedule: &str,
    shop: &str,
) -> (RunningServer, Arc<Collected>) {
    let yaml = format!(
        "flows: {:?}\nschedules:\n  service_hours: {schedule}\n\
vars: {{ shop_url: \"{shop}\", crm_url: \"{shop}\" }}\n",
        repo().join("flows").display().to_string(),
    );
    serve(dir, rtp, &yaml).await
}

/// A flow of the test's own (`flows/main.yaml` in `dir`).
async fn serve_flow(
    dir: &Path,
    rtp: &str,
    flow: &str,
    more: &str,
) -> (RunningServer, Arc<Collected>) {
    std::fs::write(dir.join("flows/main.yaml"), flow).unwrap();
    serve(dir, rtp, &format!("flows: flows\ndata: data\n{more}")).await
}

fn kinds(events: &[CallEvent]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

fn event<'e>(events: &'e [CallEvent], kind: &str) -> &'e CallEvent {
    events
        .iter()
        .find(|e| e.kind == kind)
        .unwrap_or_else(|| panic!("no '{kind}' event in {:?}", kinds(events)))
}

/// Checks what every answered inbound call's record has.
fn common_fields(r: &CallRecord, events: &[CallEvent]) {
    assert_eq!(r.kind, CallKind::Inbound);
    assert_eq!(r.caller, "+4930123456");
    assert_eq!(r.dialed, "hotline");
    assert_eq!(r.flow, "main");
    assert_eq!(r.flow_version, "1");
    let answered = r.answered_ms.expect("answered");
    let ended = r.ended_ms.expect("ended");
    assert!(r.started_ms <= answered && answered <= ended, "{r:?}");
    let seqs: Vec<u32> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (0..events.len() as u32).collect::<Vec<_>>());
    assert!(events.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
    let last = events.last().expect("events");
    assert_eq!(last.kind, "ended");
    assert_eq!(last.detail["outcome"], r.outcome.unwrap().as_str());
}

/// The order status told by the demo shop, then the caller hangs up in "anything else":
/// served in self-service, for the reason "order_status".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_status_told_in_self_service() {
    let shop = DemoShop::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = scratch("self-service");
    let (srv, rec) = serve_sample(&dir, "47000-47039", ALWAYS_OPEN, &shop.url()).await;
    let (mut phone, media, mut call) =
        common::call(common::addr(&srv, Protocol::Udp), "hotline").await;
    let w = hears(&media, "welcome", 0, 5 * SECOND).await;
    media.press_all("1", KeyMethod::Rfc4733);
    let m = hears(&media, "main_menu", w, 5 * SECOND).await;
    media.press_all("2", KeyMethod::Rfc4733);
    let e = hears(&media, "enter_order_number", m, 5 * SECOND).await;
    media.press_all("123456#", KeyMethod::Rfc4733);
    hears(&media, "anything_else", e, 30 * SECOND).await;
    phone.hang_up(&mut call).await.unwrap();

    let (r, events) = rec.finished(20 * SECOND).await;
    common_fields(&r, &events);
    assert_eq!(r.outcome, Some(CallOutcome::SelfService));
    assert_eq!(r.reason.as_deref(), Some("order_status"));
    assert_eq!(r.hung_up_by, Some(hotline::records::HungUpBy::Caller));
    assert_eq!(r.last_step.as_deref(), Some("main/anything_else"));
    assert_eq!(r.language, "en");
    assert_eq!(event(&events, "resolved").detail["reason"], "order_status");
    let http = event(&events, "http");
    assert_eq!(http.detail["outcome"], "ok");
    assert!(http.detail["latency_ms"].as_u64().is_some(), "{http:?}");
    assert!(
        events
            .iter()
            .any(|e| e.kind == "step" && e.detail["step"] == "order_shipped")
    );
    assert!(
        events
            .iter()
            .any(|e| e.kind == "key" && e.detail["key"] == "2" && e.detail["went"] == "option")
    );
    assert!(events.iter().any(|e| e.kind == "tag"
        && e.detail["name"] == "reason"
        && e.detail["value"] == "order_status"));
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A caller who hangs up in the main menu gave up in the menu.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hang_up_in_the_main_menu_is_abandoned_in_menu() {
    let dir = scratch("menu");
    let (srv, rec) = serve_sample(&dir, "47040-47079", ALWAYS_OPEN, "http://127.0.0.1:9").await;
    let (mut phone, media, mut call) =
        common::call(common::addr(&srv, Protocol::Udp), "hotline").await;
    let w = hears(&media, "welcome", 0, 5 * SECOND).await;
    media.press_all("1", KeyMethod::Rfc4733);
    hears(&media, "main_menu", w, 5 * SECOND).await;
    phone.hang_up(&mut call).await.unwrap();
    let (r, events) = rec.finished(20 * SECOND).await;
    common_fields(&r, &events);
    assert_eq!(r.outcome, Some(CallOutcome::AbandonedInMenu));
    assert_eq!(r.last_step.as_deref(), Some("main/main_menu"));
    assert_eq!(r.reason, None);
    assert!(!kinds(&events).contains(&"resolved"));
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

fn tone(seconds: f32) -> Vec<i16> {
    (0..(8000.0 * seconds) as usize)
        .map(|i| (8000.0 * (i as f32 * 440.0 * std::f32::consts::TAU / 8000.0).sin()) as i16)
        .collect()
}

/// Out of hours the caller hears the opening hours and leaves a message: a voicemail
/// (the message counts before the opening hours' self-service).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_left_out_of_hours_is_voicemail() {
    let dir = scratch("voicemail");
    let (srv, rec) = serve_sample(&dir, "47080-47119", NEVER_OPEN, "http://127.0.0.1:9").await;
    let (mut phone, media, _call) =
        common::call(common::addr(&srv, Protocol::Udp), "hotline").await;
    let w = hears(&media, "welcome", 0, 5 * SECOND).await;
    media.press_all("1", KeyMethod::Rfc4733);
    let l = hears(&media, "leave_a_message", w, 30 * SECOND).await;
    media
        .wait_for_whole_prompt(&prompt("en", "leave_a_message"), l, 20 * SECOND)
        .await
        .expect("the prompt is heard to its end, frame for frame");
    tokio::time::sleep(SECOND).await;
    media.say_pcm(&tone(2.0));
    media.press_all("#", KeyMethod::Rfc4733);
    phone
        .expect_bye(30 * SECOND)
        .await
        .expect("the hotline hangs up");
    let (r, events) = rec.finished(20 * SECOND).await;
    common_fields(&r, &events);
    assert_eq!(r.outcome, Some(CallOutcome::Voicemail));
    assert_eq!(r.reason.as_deref(), Some("after_hours"));
    assert_eq!(r.recordings.len(), 1, "{r:?}");
    assert!(r.recordings[0].path.ends_with(".wav"));
    assert!(r.recordings[0].duration_ms > 500, "{r:?}");
    let recording = event(&events, "recording");
    assert_eq!(recording.detail["voicemail"], true);
    assert!(
        kinds(&events).contains(&"resolved"),
        "the opening hours were told"
    );
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A number with no route is refused (404): the call still gets a finished record, failed,
/// never answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_call_is_failed() {
    let dir = scratch("refused");
    let (srv, rec) = serve_flow(
        &dir,
        "47120-47159",
        "steps:\n  hi:\n    play: welcome\n    next: hangup\n",
        "routes: { \"hotline\": main }\n",
    )
    .await;
    let mut phone = Phone::new(Protocol::Udp, common::addr(&srv, Protocol::Udp))
        .await
        .unwrap();
    let media = CallMedia::bind(LOCALHOST, true).unwrap();
    assert!(phone.call("nowhere", &media, Offer::Default).await.is_err());
    let (r, events) = rec.finished(20 * SECOND).await;
    assert_eq!(r.outcome, Some(CallOutcome::Failed));
    assert_eq!(r.answered_ms, None);
    assert_eq!(r.dialed, "nowhere");
    assert_eq!(kinds(&events), ["ended"]);
    assert!(
        events[0].detail["fault"]
            .as_str()
            .unwrap_or_default()
            .contains("404"),
        "{events:?}"
    );
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A transfer the target answers: transferred, whoever hangs up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_transfer_is_transferred() {
    let dir = scratch("transfer");
    let mut desk = Answerer::bind(LOCALHOST).await.unwrap();
    let flow = format!(
        "start: desk\nsteps:\n  desk:\n    transfer: \"{}\"\n    timeout: 20s\n    \
on_failure: sorry\n  sorry:\n    play: advisors_busy\n    next: hangup\n",
        desk.uri("desk")
    );
    let (srv, rec) = serve_flow(&dir, "47160-47199", &flow, "").await;
    let (mut phone, _media, _call) =
        common::call(common::addr(&srv, Protocol::Udp), "hotline").await;
    let incoming = desk.next_invite(10 * SECOND).await.unwrap();
    let desk_media = CallMedia::bind(LOCALHOST, true).unwrap();
    let mut answered = desk.accept(&incoming, &desk_media).await.unwrap();
    tokio::time::sleep(SECOND).await;
    desk.hang_up(&mut answered).await.unwrap();
    phone.expect_bye(10 * SECOND).await.unwrap();
    let (r, events) = rec.finished(20 * SECOND).await;
    common_fields(&r, &events);
    assert_eq!(r.outcome, Some(CallOutcome::Transferred));
    let t: Vec<&CallEvent> = events.iter().filter(|e| e.kind == "transfer").collect();
    assert_eq!(t.len(), 2, "{events:?}");
    assert_eq!(t[1].detail["outcome"], "connected");
    assert!(t[1].detail["target"].as_str().unwrap().contains("desk"));
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The queue flow with one agent at a fixed address (no registration needed).
async fn serve_queue(dir: &Path, rtp: &str, carol: &Answerer) -> (RunningServer, Arc<Collected>) {
    let more = format!(
        "queues:\n  support: {{ ring_timeout: 20s }}\n\
agents:\n  carol: {{ uri: \"{}\", queues: {{ support: 0 }} }}\n",
        carol.uri("carol")
    );
    serve_flow(dir, rtp, common::QUEUE_FLOW, &more).await
}

/// An agent answers and talks; the caller hangs up: agent, with the wait and talk times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_an_agent_answers_is_agent() {
    let dir = scratch("agent");
    let mut carol = Answerer::bind(LOCALHOST).await.unwrap();
    let (srv, rec) = serve_queue(&dir, "47200-47239", &carol).await;
    let (mut phone, _media, mut call) =
        common::call(common::addr(&srv, Protocol::Udp), "hotline").await;
    let offer = carol.next_invite(20 * SECOND).await.unwrap();
    let agent_media = CallMedia::bind(LOCALHOST, true).unwrap();
    let talking = carol.accept(&offer, &agent_media).await.unwrap();
    tokio::time::sleep(2 * SECOND).await;
    phone.hang_up(&mut call).await.unwrap();
    carol.expect_bye(&talking, 20 * SECOND).await.unwrap();
    let (r, events) = rec.finished(20 * SECOND).await;
    common_fields(&r, &events);
    assert_eq!(r.outcome, Some(CallOutcome::Agent));
    assert_eq!(r.queue.as_deref(), Some("support"));
    assert_eq!(r.agent.as_deref(), Some("carol"));
    assert!(r.wait_ms.is_some(), "{r:?}");
    assert!(r.talk_ms.unwrap_or(0) >= 1500, "{r:?}");
    let k = kinds(&events);
    for want in [
        "queue_joined",
        "queue_left",
        "agent_answered",
        "agent_ended",
    ] {
        assert!(k.contains(&want), "{want} in {k:?}");
    }
    assert_eq!(event(&events, "agent_ended").detail["by"], "caller");
    assert_eq!(event(&events, "queue_left").detail["outcome"], "agent");
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The caller hangs up while the agent's phone rings: abandoned in the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hang_up_while_waiting_is_abandoned_in_queue() {
    let dir = scratch("abandoned");
    let mut carol = Answerer::bind(LOCALHOST).await.unwrap();
    let (srv, rec) = serve_queue(&dir, "47240-47279", &carol).await;
    let (mut phone, _media, mut call) =
        common::call(common::addr(&srv, Protocol::Udp), "hotline").await;
    let _offer = carol.next_invite(20 * SECOND).await.unwrap();
    phone.hang_up(&mut call).await.unwrap();
    let (r, events) = rec.finished(20 * SECOND).await;
    common_fields(&r, &events);
    assert_eq!(r.outcome, Some(CallOutcome::AbandonedInQueue));
    assert_eq!(r.agent, None);
    assert_eq!(r.queue.as_deref(), Some("support"));
    assert_eq!(
        event(&events, "queue_left").detail["outcome"],
        "caller_hung_up"
    );
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

/// bob (preferred) lets the queue's ring time run out, alice answers, holds the caller
/// with a re-INVITE and takes the call back, then the caller hangs up: the record shows
/// bob's no-answer, alice's ring, hold and talk, and the queue's wrap-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_agent_then_one_who_answers_holds_and_wraps_up() {
    let dir = scratch("agents");
    let mut bob = Answerer::bind(LOCALHOST).await.unwrap();
    let mut alice = Answerer::bind(LOCALHOST).await.unwrap();
    let more = format!(
        "queues:\n  support: {{ strategy: skills, ring_timeout: 2s, wrap_up: 7s }}\n\
agents:\n  bob: {{ uri: \"{}\", queues: {{ support: 0 }} }}\n  \
alice: {{ uri: \"{}\", queues: {{ support: 5 }} }}\n",
        bob.uri("bob"),
        alice.uri("alice")
    );
    let (srv, rec) = serve_flow(&dir, "47280-47319", common::QUEUE_FLOW, &more).await;
    let (mut phone, _media, mut call) =
        common::call(common::addr(&srv, Protocol::Udp), "hotline").await;
    let missed = bob.next_invite(20 * SECOND).await.unwrap();
    bob.ring(&missed).await.unwrap();
    bob.expect_cancel(&missed, 20 * SECOND).await.unwrap();
    let offer = alice.next_invite(20 * SECOND).await.unwrap();
    alice.ring(&offer).await.unwrap();
    let agent_media = CallMedia::bind(LOCALHOST, true).unwrap();
    let mut talking = alice.accept(&offer, &agent_media).await.unwrap();
    tokio::time::sleep(SECOND).await;
    assert_eq!(
        alice.hold(&mut talking, &agent_media, true).await.unwrap(),
        200
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        alice.hold(&mut talking, &agent_media, false).await.unwrap(),
        200
    );
    tokio::time::sleep(SECOND).await;
    phone.hang_up(&mut call).await.unwrap();
    alice.expect_bye(&talking, 20 * SECOND).await.unwrap();
    let (r, events) = rec.finished(20 * SECOND).await;
    common_fields(&r, &events);
    assert_eq!(r.outcome, Some(CallOutcome::Agent));
    assert_eq!(r.agent.as_deref(), Some("alice"));
    let k = kinds(&events);
    let ringing: Vec<&CallEvent> = events
        .iter()
        .filter(|e| e.kind == "agent_ringing")
        .collect();
    assert_eq!(ringing.len(), 2, "{k:?}");
    assert_eq!(ringing[0].detail["agent"], "bob");
    assert_eq!(ringing[1].detail["agent"], "alice");
    let no_answer = event(&events, "agent_no_answer");
    assert_eq!(no_answer.detail["agent"], "bob");
    assert_eq!(no_answer.detail["reason"], "ring_timeout");
    let ring_ms = no_answer.detail["ring_ms"].as_u64().unwrap();
    assert!((1500..=5000).contains(&ring_ms), "{no_answer:?}");
    let answered = event(&events, "agent_answered");
    assert_eq!(answered.detail["agent"], "alice");
    assert!(
        answered.detail["ring_ms"].as_u64().is_some(),
        "{answered:?}"
    );
    let hold = event(&events, "hold");
    assert_eq!(hold.detail["by"], "agent");
    let held = event(&events, "hold_ended").detail["hold_ms"]
        .as_u64()
        .unwrap();
    assert!((1000..=5000).contains(&held), "{events:?}");
    let ended = event(&events, "agent_ended");
    assert_eq!(ended.detail["agent"], "alice");
    assert_eq!(ended.detail["hold_ms"].as_u64(), Some(held));
    assert_eq!(ended.detail["wrap_up_ms"], 7000);
    assert_eq!(ended.detail["by"], "caller");
    // Talk leaves the hold out: about two seconds of it.
    let talk = ended.detail["talk_ms"].as_u64().unwrap();
    assert_eq!(r.talk_ms, Some(talk));
    assert!((1500..=10_000).contains(&talk), "{ended:?}");
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}
