//! The records webhook against a real HTTP receiver on loopback: real calls through a real
//! engine (records in SQLite, the webhook beside them) end, and the receiver gets each
//! call's document, the same as `hotline records CALL_ID --format json` prints, with the
//! call id as the `Idempotency-Key`. The receiver is made to fail (503, a closed port, a
//! lasting 4xx) to see the retries, the spool across a restart, and the refusals. Waits
//! poll with generous deadlines; the back-off of the deliverer started alone is shortened.

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::{SECOND, repo};
use hotline::config::{Config, Protocol, RecordsStore};
use hotline::records::listing::{self, ListFormat};
use hotline::records::spool::Spool;
use hotline::records::webhook::{Policy, Target, Webhook, WebhookCounters};
use hotline::records::{CallKind, CallOutcome, CallRecord, RecordMsg};
use hotline::server::{RunningServer, Server};
use hotline_load::caller::{CallMedia, Offer, Phone};
use serde_json::Value;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// What the receiver saw: every request, and the documents it took (answered 2xx).
#[derive(Default)]
struct Seen {
    /// Requests per call id, whatever the answer.
    attempts: HashMap<String, usize>,
    /// (Idempotency-Key, body) of the requests answered 2xx, in arrival order.
    taken: Vec<(String, Value)>,
    content_types: Vec<String>,
}

/// A webhook receiver on 127.0.0.1 that answers `status` (settable) to every POST.
struct Receiver {
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    status: Arc<AtomicU16>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct ReceiverState {
    seen: Arc<Mutex<Seen>>,
    status: Arc<AtomicU16>,
}

async fn take(State(s): State<ReceiverState>, headers: HeaderMap, body: String) -> StatusCode {
    let doc: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let status = StatusCode::from_u16(s.status.load(Ordering::SeqCst)).unwrap();
    let mut seen = s.seen.lock().unwrap();
    *seen.attempts.entry(key.clone()).or_default() += 1;
    if status.is_success() {
        seen.content_types.push(
            headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
        );
        seen.taken.push((key, doc));
    }
    status
}

impl Receiver {
    async fn start(listener: tokio::net::TcpListener, status: u16) -> Receiver {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let status = Arc::new(AtomicU16::new(status));
        let app = axum::Router::new()
            .route("/calls", axum::routing::post(take))
            .with_state(ReceiverState {
                seen: seen.clone(),
                status: status.clone(),
            });
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            addr,
            seen,
            status,
            task,
        }
    }

    async fn on_free_port(status: u16) -> Receiver {
        let l = tokio::net::TcpListener::bind((LOCALHOST, 0)).await.unwrap();
        Receiver::start(l, status).await
    }

    fn url(&self) -> String {
        format!("http://{}/calls", self.addr)
    }

    fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// The distinct call ids taken.
    fn taken_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .seen
            .lock()
            .unwrap()
            .taken
            .iter()
            .map(|(k, _)| k.clone())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    fn attempts(&self, call_id: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .attempts
            .get(call_id)
            .copied()
            .unwrap_or(0)
    }

    fn all_attempts(&self) -> usize {
        self.seen.lock().unwrap().attempts.values().sum()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn wait_until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hotline-webhook-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("flows")).unwrap();
    d
}

const FLOW: &str = "steps:\n  hi:\n    play: welcome\n    next: hangup\n";

/// An engine for `dir/hotline.yaml`: a flow of its own answering `hotline` (other numbers
/// are refused), records in `dir/data/hotline.db` and the webhook at `url`.
async fn serve(dir: &Path, rtp: &str, url: &str) -> RunningServer {
    std::fs::write(dir.join("flows/main.yaml"), FLOW).unwrap();
    let text = format!(
        "sip: {{ listen: [\"udp:127.0.0.1:0\"] }}\nrtp: {{ ports: {rtp} }}\nprompts: {:?}\n\
flows: flows\ndata: data\nroutes: {{ \"hotline\": main }}\n\
records: {{ store: data/hotline.db, webhook: {{ url: \"{url}\", headers: {{ X-Tenant: acme }}, timeout: 5s }} }}\n",
        repo().join("prompts").display().to_string(),
    );
    std::fs::write(dir.join("hotline.yaml"), text).unwrap();
    let cfg = Config::load(&dir.join("hotline.yaml")).unwrap();
    Server::start(cfg, 1).await.expect("server starts").spawn()
}

fn counters(srv: &RunningServer) -> Arc<WebhookCounters> {
    srv.server.webhook.as_ref().expect("webhook on").counters()
}

fn get(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// A call to a number nobody answers: refused at once, its record ends `failed`.
async fn refused_call(srv: &RunningServer) {
    let mut phone = Phone::new(Protocol::Udp, common::addr(srv, Protocol::Udp))
        .await
        .unwrap();
    let media = CallMedia::bind(LOCALHOST, true).unwrap();
    assert!(phone.call("nowhere", &media, Offer::Default).await.is_err());
}

/// An answered call gets one POST whose body is what `hotline records CALL_ID --format
/// json` prints for it, with the call id as the Idempotency-Key and the configured header;
/// a refused call gets its own document, outcome `failed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_call_is_posted_once_as_hotline_records_shows_it() {
    let rx = Receiver::on_free_port(200).await;
    let dir = scratch("posted");
    let srv = serve(&dir, "47600-47639", &rx.url()).await;
    let (mut phone, media, mut call) =
        common::call(common::addr(&srv, Protocol::Udp), "hotline").await;
    media
        .wait_for_prompt(&common::prompt("en", "welcome"), 0, 5 * SECOND)
        .await
        .expect("hears the welcome");
    phone.hang_up(&mut call).await.unwrap();
    wait_until("the answered call's document", 20 * SECOND, || {
        rx.taken_ids().len() == 1
    })
    .await;
    refused_call(&srv).await;
    // The receiver holds a document before the sender has read its answer and counted it.
    let c = counters(&srv);
    wait_until("the refused call's document, counted", 20 * SECOND, || {
        rx.taken_ids().len() == 2 && get(&c.delivered) == 2
    })
    .await;
    assert_eq!(get(&c.delivered), 2);
    assert_eq!(get(&c.pending), 0);
    assert_eq!(get(&c.retries), 0);
    // The store has committed them too; what it shows is what the receiver got.
    assert!(srv.server.records.as_ref().unwrap().flush(10 * SECOND));
    let mut store =
        hotline::records::open_store(&RecordsStore::Sqlite(dir.join("data/hotline.db"))).unwrap();
    let seen = rx.seen.lock().unwrap();
    assert_eq!(seen.taken.len(), 2, "one POST per call");
    assert!(seen.content_types.iter().all(|t| t == "application/json"));
    let mut outcomes = Vec::new();
    for (key, body) in &seen.taken {
        assert_eq!(body["call"]["call_id"], key.as_str(), "{body}");
        assert_eq!(seen.attempts[key], 1);
        let shown = listing::show(store.as_mut(), key, ListFormat::Json)
            .unwrap()
            .expect("the call is in the store");
        let shown: Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(&shown, body, "the webhook and `hotline records` agree");
        let events = body["events"].as_array().unwrap();
        assert_eq!(events.last().unwrap()["kind"], "ended");
        outcomes.push(body["call"]["outcome"].as_str().unwrap().to_owned());
    }
    let answered = &seen.taken[0].1;
    assert_eq!(answered["call"]["dialed"], "hotline");
    assert!(answered["call"]["answered_ms"].is_i64());
    assert!(
        answered["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "step" && e["detail"]["step"] == "hi"),
        "{answered}"
    );
    assert_eq!(seen.taken[1].1["call"]["dialed"], "nowhere");
    assert_eq!(outcomes[1], "failed");
    drop(seen);
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The receiver answers 503 while calls end: retried with back-off, nothing lost; once it
/// answers 200 every call arrives (duplicates allowed, and counted here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_gets_every_call_once_it_answers() {
    let rx = Receiver::on_free_port(503).await;
    let dir = scratch("retry");
    let srv = serve(&dir, "47640-47679", &rx.url()).await;
    for _ in 0..3 {
        refused_call(&srv).await;
    }
    let c = counters(&srv);
    wait_until("three calls waiting, retried", 30 * SECOND, || {
        get(&c.retries) >= 3 && get(&c.pending) == 3
    })
    .await;
    assert!(rx.taken_ids().is_empty());
    assert_eq!(get(&c.delivered), 0);
    rx.set_status(200);
    wait_until("every call delivered", 90 * SECOND, || {
        get(&c.delivered) == 3
    })
    .await;
    assert_eq!(rx.taken_ids().len(), 3);
    assert_eq!(get(&c.pending), 0);
    assert_eq!(get(&c.refused), 0);
    assert_eq!(get(&c.lost), 0);
    let taken = rx.seen.lock().unwrap().taken.len();
    assert_eq!(taken - 3, 0, "duplicates: none expected without a crash");
    assert!(rx.all_attempts() >= 3 + 3, "503s then 200s");
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The engine stops while the receiver's port is closed: the documents are in
/// `webhook.spool`; the next engine sends them once the receiver listens, and empties
/// the spool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_spooled_at_a_stop_are_sent_by_the_next_engine() {
    // A port that was free; nothing listens there until the receiver starts.
    let port = std::net::TcpListener::bind((LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/calls");
    let dir = scratch("restart");
    let srv = serve(&dir, "47680-47719", &url).await;
    for _ in 0..3 {
        refused_call(&srv).await;
    }
    let c = counters(&srv);
    wait_until("a refused connection retried", 30 * SECOND, || {
        get(&c.retries) >= 1 && get(&c.pending) == 3
    })
    .await;
    drop(srv);
    assert_eq!(get(&c.spooled), 3);
    let spool = dir.join("data/webhook.spool");
    let read = Spool::read(&spool).expect("the spool file");
    let mut spooled: Vec<String> = read
        .messages
        .iter()
        .map(|m| match m {
            RecordMsg::Finish(r, _) => r.call_id.clone(),
            other => panic!("a document, not {other:?}"),
        })
        .collect();
    spooled.sort();
    assert_eq!(spooled.len(), 3);

    let listener = tokio::net::TcpListener::bind((LOCALHOST, port))
        .await
        .expect("the receiver's port again");
    let rx = Receiver::start(listener, 200).await;
    let srv = serve(&dir, "47680-47719", &url).await;
    let c = counters(&srv);
    wait_until("the spool replayed", 60 * SECOND, || get(&c.replayed) == 3).await;
    assert_eq!(rx.taken_ids(), spooled);
    assert_eq!(get(&c.pending), 0);
    assert!(!spool.exists() && !Spool::new(spool.clone()).replay_path().exists());
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A 422 is a lasting refusal: one attempt, counted, kept in `webhook.refused`, and the
/// calls after it are delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_document_is_not_retried_and_is_kept() {
    let rx = Receiver::on_free_port(422).await;
    let dir = scratch("refused");
    let srv = serve(&dir, "47720-47759", &rx.url()).await;
    refused_call(&srv).await;
    let c = counters(&srv);
    wait_until("the refusal counted", 20 * SECOND, || get(&c.refused) == 1).await;
    let refused = Spool::read(&dir.join("data/webhook.refused")).expect("the refused file");
    let [RecordMsg::Finish(r, _)] = refused.messages.as_slice() else {
        panic!("one document: {:?}", refused.messages);
    };
    let first = r.call_id.clone();
    rx.set_status(200);
    refused_call(&srv).await;
    wait_until("the next call delivered", 20 * SECOND, || {
        get(&c.delivered) == 1
    })
    .await;
    assert_eq!(rx.attempts(&first), 1, "a refusal is not retried");
    assert!(!rx.taken_ids().contains(&first));
    assert_eq!(get(&c.retries), 0);
    assert_eq!(get(&c.pending), 0);
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

fn ended(n: usize) -> RecordMsg {
    let id = format!("call-{n:04}");
    let record = CallRecord {
        call_id: id.clone(),
        kind: CallKind::Inbound,
        caller: "+4930123456".into(),
        dialed: "hotline".into(),
        started_ms: 1_764_000_000_000 + n as i64,
        ended_ms: Some(1_764_000_001_000 + n as i64),
        answered_ms: Some(1_764_000_000_100 + n as i64),
        flow: "main".into(),
        flow_version: "1".into(),
        language: "en".into(),
        outcome: Some(CallOutcome::SelfService),
        hung_up_by: None,
        last_step: Some("main/hi".into()),
        reason: None,
        tags: vec![],
        queue: None,
        agent: None,
        wait_ms: None,
        talk_ms: None,
        survey: vec![],
        recordings: vec![],
    };
    let event = |seq: u32, kind: &str| hotline::records::CallEvent {
        call_id: id.clone(),
        seq,
        at_ms: record.started_ms + seq as i64,
        kind: kind.into(),
        detail: serde_json::json!({}),
    };
    RecordMsg::Finish(record.clone(), vec![event(0, "step"), event(1, "ended")])
}

/// The deliverer alone, with a short back-off: a receiver down longer than `spool_after`
/// makes it spool (more than one rewrite's worth, so the replay file is compacted on the
/// way); once the receiver answers, every document arrives and the spool is gone. Events
/// sent before a call's `Finish` are in its document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deliverer_spools_while_the_receiver_is_down_and_replays_when_it_is_back() {
    let rx = Receiver::on_free_port(503).await;
    let dir = scratch("alone");
    let mut policy = Policy::new(dir.join("webhook.spool"));
    policy.backoff_min = Duration::from_millis(10);
    policy.backoff_max = Duration::from_millis(100);
    policy.spool_after = Duration::from_millis(200);
    let config = hotline::config::WebhookConfig {
        url: rx.url(),
        headers: vec![],
        timeout: 5 * SECOND,
    };
    let hook = Webhook::start(Target::from_config(&config).unwrap(), policy.clone()).unwrap();
    let c = hook.counters();
    let sink = hotline::records::RecordSink::new(hook.deliverer());
    const N: usize = 250;
    let RecordMsg::Finish(first, first_events) = ended(0) else {
        unreachable!()
    };
    // The first call's opening event comes early; its Finish brings the rest.
    sink.send(RecordMsg::Begin(first.clone()));
    sink.send(RecordMsg::Events(vec![first_events[0].clone()]));
    sink.send(RecordMsg::Finish(first, vec![first_events[1].clone()]));
    for n in 1..N {
        sink.send(ended(n));
    }
    wait_until("spooled while down", 30 * SECOND, || {
        get(&c.spooled) as usize >= N - 1
    })
    .await;
    assert_eq!(get(&c.pending) as usize, N);
    rx.set_status(200);
    wait_until("all delivered", 60 * SECOND, || {
        get(&c.delivered) as usize == N
    })
    .await;
    assert_eq!(rx.taken_ids().len(), N);
    assert_eq!(get(&c.pending), 0);
    assert_eq!(get(&c.lost), 0);
    let seen = rx.seen.lock().unwrap();
    let (_, doc) = seen
        .taken
        .iter()
        .find(|(k, _)| k == "call-0000")
        .expect("the first call");
    let kinds: Vec<&str> = doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["step", "ended"]);
    drop(seen);
    hook.shutdown();
    let spool = Spool::new(policy.spool.clone());
    assert!(!spool.has_messages(), "the spool is empty once delivered");
    let _ = std::fs::remove_dir_all(&dir);
}

/// How fast the deliverer sends to a receiver on loopback that answers at once (one
/// request at a time): `cargo test --release --test records_webhook -- --ignored
/// --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn measure_delivery_rate() {
    let rx = Receiver::on_free_port(200).await;
    let dir = scratch("rate");
    let config = hotline::config::WebhookConfig {
        url: rx.url(),
        headers: vec![],
        timeout: 5 * SECOND,
    };
    let hook = Webhook::start(
        Target::from_config(&config).unwrap(),
        Policy::new(dir.join("webhook.spool")),
    )
    .unwrap();
    let c = hook.counters();
    let sink = hotline::records::RecordSink::new(hook.deliverer());
    const N: usize = 5_000;
    let start = Instant::now();
    for n in 0..N {
        sink.send(ended(n));
    }
    let queued = start.elapsed();
    wait_until("all delivered", 120 * SECOND, || {
        get(&c.delivered) as usize == N
    })
    .await;
    let all = start.elapsed();
    println!(
        "{N} documents: handed over in {queued:?} ({:.1} us each), delivered in {all:?} ({:.0}/s)",
        queued.as_secs_f64() * 1e6 / N as f64,
        N as f64 / all.as_secs_f64()
    );
    assert_eq!(rx.taken_ids().len(), N);
    hook.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
