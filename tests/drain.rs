//! Graceful shutdown of the real `hotline serve` binary on loopback: the first SIGTERM
//! refuses new calls (INVITE and OPTIONS 503) while the call in progress goes on and gets
//! its record; the engine exits 0 once it ended. When `limits.drain` runs out, or at a
//! second SIGTERM, the calls left get a BYE and an `interrupted` record written by the
//! stopping engine itself (its `ended` event says why), before it exits 0.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::process::free_udp_port;
use common::{SECOND, prompt, repo};
use hotline::records::sqlite::SqliteStore;
use hotline::records::store::Store;
use hotline::records::{CallOutcome, HungUpBy};
use hotline::sip::message::{HeaderName, Limits, Message, parse};
use hotline_load::caller::{CallMedia, Established, Phone};
use hotline_load::load::engine::Engine;

/// The engine as a child process; killed (SIGKILL) when dropped, even on a failed assert.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Serve {
    fn term(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM sent");
    }

    /// Waits (polling, bounded) for the process to exit.
    async fn exited(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(s) = self.0.try_wait().unwrap() {
                return Some(s);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hotline-drain-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("flows")).unwrap();
    d
}

/// A menu that waits long enough for the test.
const FLOW: &str = "start: menu
defaults: { language: en, timeout: 60s, retries: 0 }
steps:
  menu:
    menu:
      prompt: main_menu
      options:
        \"1\": { next: hangup }
";

/// Starts `hotline serve` in `dir` with `limits.drain: drain`, records in SQLite, and waits
/// until it answers OPTIONS.
async fn serve(dir: &Path, sip: SocketAddr, rtp: &str, drain: &str) -> Serve {
    std::fs::write(dir.join("flows/main.yaml"), FLOW).unwrap();
    let yaml = format!(
        "flows: flows\nprompts: {:?}\ndata: data\nrecords: {{ store: data/hotline.db }}\nlimits: {{ drain: {drain} }}\n",
        repo().join("prompts").display().to_string(),
    );
    std::fs::write(dir.join("hotline.yaml"), yaml).unwrap();
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

async fn in_menu(sip: SocketAddr) -> (Phone, CallMedia, Established) {
    let (phone, media, call) = common::call(sip, "hotline").await;
    media
        .wait_for_prompt(&prompt("en", "main_menu"), 0, 20 * SECOND)
        .await
        .expect("the menu prompt starts");
    (phone, media, call)
}

/// Sends a request without a dialog (OPTIONS or INVITE) and returns its final status.
async fn ask(sip: SocketAddr, method: &str, id: &str) -> Option<u16> {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = sock.local_addr().unwrap();
    let text = format!(
        "{method} sip:hotline@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{id}\r\n\
Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p{id}\r\nTo: <sip:hotline@127.0.0.1>\r\n\
Call-ID: {id}\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(text.as_bytes(), sip).await.unwrap();
    let mut buf = vec![0u8; 65536];
    let deadline = tokio::time::Instant::now() + 5 * SECOND;
    loop {
        let (n, _) = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        if let Ok(Message::Response(r)) = parse(&buf[..n], &Limits::default())
            && r.status >= 200
        {
            assert!(
                r.status != 503 || r.headers.get(HeaderName::new("Retry-After")).is_some(),
                "a 503 carries Retry-After"
            );
            return Some(r.status);
        }
    }
}

/// Polls OPTIONS until it says 503 (the signal reached the engine).
async fn until_refusing(sip: SocketAddr) {
    for i in 0..100 {
        if ask(sip, "OPTIONS", &format!("probe{i}")).await == Some(503) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("OPTIONS never answered 503 after SIGTERM");
}

fn store(dir: &Path) -> SqliteStore {
    SqliteStore::open(&dir.join("data/hotline.db")).expect("the records file")
}

/// The record the stopping engine wrote for an interrupted call: outcome, who ended it,
/// and an `ended` event (a store marking a call left open at the next start writes none).
fn assert_interrupted_by_the_engine(dir: &Path, call_id: &str) {
    let mut s = store(dir);
    let r = s
        .call(call_id)
        .unwrap()
        .unwrap_or_else(|| panic!("no record of {call_id}\n{}", engine_log(dir)));
    assert_eq!(r.outcome, Some(CallOutcome::Interrupted), "{r:?}");
    assert_eq!(r.hung_up_by, Some(HungUpBy::Engine), "{r:?}");
    let events = s.events(call_id).unwrap();
    let last = events.last().expect("events");
    assert_eq!(last.kind, "ended", "{events:?}");
    assert_eq!(last.detail["outcome"], "interrupted");
    assert_eq!(last.detail["fault"], "engine stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_call_in_progress_finish_refuses_new_ones_and_exits_0() {
    let dir = scratch("finish");
    let sip = SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port()));
    let mut engine = serve(&dir, sip, "46800-46839", "60s").await;
    let (mut phone, media, mut call) = in_menu(sip).await;

    engine.term();
    until_refusing(sip).await;
    assert_eq!(ask(sip, "INVITE", "late-caller").await, Some(503));
    // The call goes on: its audio still flows a while after the signal.
    let heard = media.heard_len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(media.heard_len() > heard, "the call's audio goes on");
    assert!(
        engine.0.try_wait().unwrap().is_none(),
        "still serving its call"
    );

    let bye = phone.hang_up(&mut call).await.expect("BYE answered");
    assert_eq!(bye.status, 200);
    let status = engine
        .exited(20 * SECOND)
        .await
        .unwrap_or_else(|| panic!("did not exit\n{}", engine_log(&dir)));
    assert!(status.success(), "exit {status:?}\n{}", engine_log(&dir));
    let r = store(&dir).call(&call.call_id).unwrap().expect("record");
    assert_eq!(r.outcome, Some(CallOutcome::AbandonedInMenu), "{r:?}");
    assert_eq!(r.hung_up_by, Some(HungUpBy::Caller), "{r:?}");
    let log = engine_log(&dir);
    assert!(log.contains("stop requested"), "{log}");
    assert!(log.contains("call refused"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_drain_runs_out_or_a_second_sigterm_comes_calls_end_as_interrupted() {
    // The drain runs out.
    let dir = scratch("timeout");
    let sip = SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port()));
    let mut engine = serve(&dir, sip, "46840-46879", "2s").await;
    let (mut phone, media, call) = in_menu(sip).await;
    let signalled = Instant::now();
    engine.term();
    phone
        .expect_bye(30 * SECOND)
        .await
        .expect("the engine hangs up when the drain ran out");
    assert!(signalled.elapsed() >= Duration::from_millis(1900));
    media.close();
    let status = engine
        .exited(20 * SECOND)
        .await
        .unwrap_or_else(|| panic!("did not exit\n{}", engine_log(&dir)));
    assert!(status.success(), "exit {status:?}\n{}", engine_log(&dir));
    assert_interrupted_by_the_engine(&dir, &call.call_id);
    let _ = std::fs::remove_dir_all(&dir);

    // A second SIGTERM during a five-minute drain ends at once.
    let dir = scratch("second");
    let sip = SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port()));
    let mut engine = serve(&dir, sip, "46880-46919", "5m").await;
    let (mut phone, media, call) = in_menu(sip).await;
    engine.term();
    until_refusing(sip).await;
    let second = Instant::now();
    engine.term();
    phone
        .expect_bye(20 * SECOND)
        .await
        .expect("the engine hangs up at the second SIGTERM");
    media.close();
    let status = engine
        .exited(20 * SECOND)
        .await
        .unwrap_or_else(|| panic!("did not exit\n{}", engine_log(&dir)));
    assert!(status.success(), "exit {status:?}\n{}", engine_log(&dir));
    assert!(
        second.elapsed() < 15 * SECOND,
        "stopped {:?} after the second SIGTERM",
        second.elapsed()
    );
    assert_interrupted_by_the_engine(&dir, &call.call_id);
    let _ = std::fs::remove_dir_all(&dir);
}
