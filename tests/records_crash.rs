//! Crash safety of call records: the real `hotline serve` binary takes calls on loopback,
//! is killed with SIGKILL, and is started again on the same store. Every call that had
//! ended at least one second before the kill must have its complete record (outcome, end,
//! its events), and every call in progress at the kill a record with outcome
//! `interrupted`, even one answered an instant before it: none missing, none left open.
//!
//! Runs against an SQLite file always, and against PostgreSQL when `HOTLINE_TEST_POSTGRES`
//! holds a connection URL (in a schema of the test's own); with `HOTLINE_REQUIRE_POSTGRES=1`
//! a missing URL fails instead of skipping.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::postgres::{Schema, postgres_url};
use common::process::free_udp_port;
use common::{SECOND, prompt, repo};
use hotline::records::postgres::PostgresStore;
use hotline::records::sqlite::SqliteStore;
use hotline::records::store::{CallFilter, Store};
use hotline::records::{CallEvent, CallOutcome, CallRecord, HungUpBy};
use hotline_load::caller::{CallMedia, KeyMethod, Phone};
use hotline_load::load::engine::Engine;

/// A menu that waits long enough for the test (calls kept in progress stay in it); `1`
/// leads to an answer that resolves the caller's need, then the hotline hangs up.
const FLOW: &str = "start: menu
defaults: { language: en, timeout: 60s, retries: 0 }
steps:
  menu:
    menu:
      prompt: main_menu
      options:
        \"1\": { next: shipping, reason: shipping }
  shipping:
    play: goodbye
    resolved: shipping
    next: hangup
";

/// Calls of each kind. Bounded: 35 calls on one engine, a minute at most.
const IN_PROGRESS: usize = 10;
const SELF_SERVED: usize = 10;
const ABANDONED: usize = 10;
const ENDING_AT_THE_KILL: usize = 5;
/// Answered a moment before the kill: their records' first write is still being batched.
const ANSWERED_AT_THE_KILL: usize = 5;

/// The engine as a child process; killed (SIGKILL) when dropped, even on a failed assert.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `hotline serve` on `dir/hotline.yaml`, its log appended to `dir/engine.log`, and
/// waits until it answers OPTIONS.
async fn serve(dir: &Path, sip: SocketAddr, rtp: &str) -> Serve {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("engine.log"))
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_hotline"))
        .args(["serve", "--config", "hotline.yaml"])
        .args(["--admin", "off", "--demo-shop", "off"])
        .args(["--sip", &format!("udp:{sip}"), "--rtp-ports", rtp])
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("hotline serve starts");
    let serve = Serve(child);
    let mut probe = Engine::attach(sip, Some(serve.0.id()));
    if let Err(e) = probe.wait_ready(Duration::from_secs(60)).await {
        panic!("the engine did not answer: {e}\n{}", engine_log(dir));
    }
    serve
}

fn engine_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("engine.log")).unwrap_or_default()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hotline-crash-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("flows")).unwrap();
    d
}

/// A call answered and in the menu: the menu prompt has started.
struct InMenu {
    phone: Phone,
    media: CallMedia,
    call: hotline_load::caller::Established,
}

async fn answered(sip: SocketAddr) -> InMenu {
    let (phone, media, call) = common::call(sip, "hotline").await;
    media
        .wait_for_prompt(&prompt("en", "main_menu"), 0, 20 * SECOND)
        .await
        .expect("the menu prompt starts");
    InMenu { phone, media, call }
}

/// Presses 1 and waits for the hotline's BYE (after the resolving answer). Returns the
/// SIP Call-ID and when the call had ended.
async fn self_served(sip: SocketAddr) -> (String, Instant) {
    let mut c = answered(sip).await;
    c.media.press_all("1", KeyMethod::Rfc4733);
    c.phone
        .expect_bye(30 * SECOND)
        .await
        .expect("the hotline hangs up after the answer");
    let ended = Instant::now();
    c.media.close();
    (c.call.call_id, ended)
}

/// Hangs up in the menu. Returns the SIP Call-ID and when the call had ended.
async fn abandoned(sip: SocketAddr) -> (String, Instant) {
    let mut c = answered(sip).await;
    c.phone
        .hang_up(&mut c.call)
        .await
        .expect("the BYE is answered");
    let ended = Instant::now();
    c.media.close();
    (c.call.call_id, ended)
}

/// What every complete record has, whatever its outcome.
fn complete(r: &CallRecord, events: &[CallEvent]) {
    let answered = r.answered_ms.expect("answered");
    let ended = r.ended_ms.expect("ended");
    assert!(r.started_ms <= answered && answered <= ended, "{r:?}");
    assert_eq!(r.flow, "main", "{r:?}");
    let seqs: Vec<u32> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (0..events.len() as u32).collect::<Vec<_>>(), "{r:?}");
    assert!(
        events
            .iter()
            .any(|e| e.kind == "step" && e.detail["step"] == "menu"),
        "{events:?}"
    );
    let last = events.last().expect("events");
    assert_eq!(last.kind, "ended", "{events:?}");
    assert_eq!(last.detail["outcome"], r.outcome.expect("outcome").as_str());
}

/// What the first run left: the calls and how they were when the engine was killed.
struct Run {
    /// Calls that ended at least a second before the kill, with the outcome they had.
    ended: Vec<(String, CallOutcome)>,
    in_progress: Vec<String>,
    /// Calls whose BYE was sent less than a second before the kill.
    at_the_kill: Vec<String>,
    /// Calls answered right before the kill.
    answered_at_the_kill: Vec<String>,
    /// The engine started again on the same store.
    restarted: Serve,
}

/// Places the calls, kills the engine, starts it again and checks the store `open` opens.
/// The store's own calls run outside the async runtime (the PostgreSQL client blocks).
fn crash_and_restart(name: &str, rtp: &str, records_yaml: &str, open: &dyn Fn() -> Box<dyn Store>) {
    let dir = scratch(name);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut run = rt.block_on(first_run_killed(&dir, rtp, records_yaml));
    check(&dir, &mut run, open);
    drop(run);
    drop(rt);
    let _ = std::fs::remove_dir_all(&dir);
}

async fn first_run_killed(dir: &Path, rtp: &str, records_yaml: &str) -> Run {
    std::fs::write(dir.join("flows/main.yaml"), FLOW).unwrap();
    let yaml = format!(
        "flows: flows\nprompts: {:?}\ndata: data\n{records_yaml}\n",
        repo().join("prompts").display().to_string(),
    );
    std::fs::write(dir.join("hotline.yaml"), yaml).unwrap();
    let sip = SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port()));
    let engine = serve(dir, sip, rtp).await;

    // Calls answered now stay in the menu until the kill; the last few hang up right
    // before it.
    let mut waiting = Vec::new();
    for _ in 0..IN_PROGRESS + ENDING_AT_THE_KILL {
        waiting.push(tokio::spawn(answered(sip)));
    }
    let mut kept = Vec::new();
    for w in waiting {
        kept.push(w.await.unwrap());
    }
    let ending = kept.split_off(IN_PROGRESS);

    // Calls that end, some way each, all at once.
    let mut ends = Vec::new();
    for i in 0..SELF_SERVED + ABANDONED {
        ends.push(if i % 2 == 0 {
            (CallOutcome::SelfService, tokio::spawn(self_served(sip)))
        } else {
            (CallOutcome::AbandonedInMenu, tokio::spawn(abandoned(sip)))
        });
    }
    let mut ended = Vec::new();
    for (outcome, task) in ends {
        let (id, at) = task.await.unwrap();
        ended.push((id, outcome, at));
    }
    let last_end = ended.iter().map(|e| e.2).max().unwrap();

    // One second after the last of them, less what the last-moment calls take to end.
    let kill_at = last_end + SECOND;
    tokio::time::sleep_until((kill_at - Duration::from_millis(100)).into()).await;
    let mut at_the_kill = Vec::new();
    for mut c in ending {
        let bye = c.phone.in_dialog_text(&mut c.call, "BYE", "", "");
        c.phone.send_raw(bye.as_bytes()).await.unwrap();
        at_the_kill.push(c.call.call_id.clone());
        c.media.close();
    }
    tokio::time::sleep_until(kill_at.into()).await;
    // The last calls are answered, and the engine is killed as soon as they are: well
    // within the writer's batching delay (200 ms).
    let last: Vec<_> = (0..ANSWERED_AT_THE_KILL)
        .map(|_| tokio::spawn(common::call(sip, "hotline")))
        .collect();
    let mut answered_at_the_kill = Vec::new();
    let mut last_calls = Vec::new();
    for t in last {
        let (phone, media, call) = t.await.unwrap();
        answered_at_the_kill.push(call.call_id.clone());
        last_calls.push((phone, media));
    }
    let killed_at = Instant::now();
    drop(engine);
    for (_, media) in &last_calls {
        media.close();
    }
    assert!(ended.iter().all(|e| killed_at >= e.2 + SECOND));
    let in_progress: Vec<String> = kept.iter().map(|c| c.call.call_id.clone()).collect();
    for c in &kept {
        c.media.close();
    }
    drop(kept);

    // The same store, a new engine: it marks what the first one left open.
    let restarted = serve(dir, sip, rtp).await;
    Run {
        ended: ended.into_iter().map(|(id, o, _)| (id, o)).collect(),
        in_progress,
        at_the_kill,
        answered_at_the_kill,
        restarted,
    }
}

fn check(dir: &Path, run: &mut Run, open: &dyn Fn() -> Box<dyn Store>) {
    let mut store = open();
    let deadline = Instant::now() + 60 * SECOND;
    let all = loop {
        let all = store.calls(&CallFilter::default()).unwrap();
        if all.iter().all(|r| r.ended_ms.is_some()) {
            break all;
        }
        assert!(
            Instant::now() < deadline,
            "calls left open after the restart: {:?}\n{}",
            all.iter()
                .filter(|r| r.ended_ms.is_none())
                .collect::<Vec<_>>(),
            engine_log(dir)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let ids: Vec<&str> = all.iter().map(|r| r.call_id.as_str()).collect();
    let missing: Vec<(&str, &str)> = run
        .ended
        .iter()
        .map(|(id, _)| ("ended", id.as_str()))
        .chain(
            run.in_progress
                .iter()
                .map(|id| ("in progress", id.as_str())),
        )
        .chain(
            run.at_the_kill
                .iter()
                .map(|id| ("ended at the kill", id.as_str())),
        )
        .chain(
            run.answered_at_the_kill
                .iter()
                .map(|id| ("answered at the kill", id.as_str())),
        )
        .filter(|(_, id)| !ids.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "calls without a record: {missing:?}\n{}",
        engine_log(dir)
    );
    assert_eq!(
        all.len(),
        IN_PROGRESS + SELF_SERVED + ABANDONED + ENDING_AT_THE_KILL + ANSWERED_AT_THE_KILL,
        "one record per call, none missing, none extra: {ids:?}"
    );

    for (id, outcome) in &run.ended {
        let r = store
            .call(id)
            .unwrap()
            .unwrap_or_else(|| panic!("no record of {id}, which ended before the kill"));
        assert_eq!(r.outcome, Some(*outcome), "{r:?}");
        let events = store.events(id).unwrap();
        complete(&r, &events);
        if *outcome == CallOutcome::SelfService {
            assert_eq!(r.hung_up_by, Some(HungUpBy::Engine), "{r:?}");
            assert_eq!(r.reason.as_deref(), Some("shipping"), "{r:?}");
            assert!(
                events
                    .iter()
                    .any(|e| e.kind == "key" && e.detail["key"] == "1"),
                "{events:?}"
            );
            assert!(events.iter().any(|e| e.kind == "resolved"), "{events:?}");
        } else {
            assert_eq!(r.hung_up_by, Some(HungUpBy::Caller), "{r:?}");
        }
    }
    for id in &run.in_progress {
        let r = store
            .call(id)
            .unwrap()
            .unwrap_or_else(|| panic!("no record of {id}, in progress at the kill"));
        assert_eq!(r.outcome, Some(CallOutcome::Interrupted), "{r:?}");
        assert!(
            r.ended_ms.unwrap() >= r.answered_ms.expect("answered"),
            "{r:?}"
        );
    }
    // Answered an instant before the kill: the journal of calls begun kept them.
    for id in &run.answered_at_the_kill {
        let r = store.call(id).unwrap().unwrap_or_else(|| {
            panic!(
                "no record of {id}, answered at the kill\n{}",
                engine_log(dir)
            )
        });
        assert_eq!(r.outcome, Some(CallOutcome::Interrupted), "{r:?}");
    }
    // Ended less than a second before the kill: complete or interrupted, never open.
    for id in &run.at_the_kill {
        let r = store
            .call(id)
            .unwrap()
            .unwrap_or_else(|| panic!("no record of {id}, answered long before the kill"));
        match r.outcome {
            Some(CallOutcome::Interrupted) => {}
            Some(CallOutcome::AbandonedInMenu) => complete(&r, &store.events(id).unwrap()),
            other => panic!("{id}: outcome {other:?}"),
        }
    }
    let spool = dir.join("data/records.spool");
    assert!(
        std::fs::metadata(&spool).map(|m| m.len()).unwrap_or(0) == 0,
        "the spool was replayed"
    );
    assert!(
        run.restarted.0.try_wait().unwrap().is_none(),
        "the engine started again keeps serving\n{}",
        engine_log(dir)
    );
}

#[test]
fn after_a_kill_ended_calls_are_complete_and_calls_in_progress_interrupted_sqlite() {
    let dir_name = "sqlite";
    let path = std::env::temp_dir()
        .join(format!("hotline-crash-{dir_name}-{}", std::process::id()))
        .join("data/hotline.db");
    let open = move || -> Box<dyn Store> {
        Box::new(SqliteStore::open(&path).expect("the records file opens"))
    };
    crash_and_restart(
        dir_name,
        "48000-48099",
        "records: { store: data/hotline.db }",
        &open,
    );
}

#[test]
fn after_a_kill_ended_calls_are_complete_and_calls_in_progress_interrupted_postgres() {
    let Some(base) = postgres_url() else {
        return;
    };
    let schema = Schema::new(base, "crash");
    let url = schema.url();
    let opened = url.clone();
    let open = move || -> Box<dyn Store> {
        Box::new(PostgresStore::connect(&opened).expect("connect to PostgreSQL"))
    };
    crash_and_restart(
        "postgres",
        "48100-48199",
        &format!("records: {{ store: {url:?} }}"),
        &open,
    );
}
