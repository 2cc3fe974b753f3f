//! The records writer through real store outages: a PostgreSQL server of the test's own
//! stopped and started again while calls end, an SQLite file whose folder cannot exist at
//! start, and an SQLite file on a disk that fills up. In each, the writer counts its
//! failures, retries, spools what it cannot write, and once the store is back everything
//! lands: nothing lost, nothing twice.
//!
//! The PostgreSQL test runs when `HOTLINE_TEST_POSTGRES` is set (as the other PostgreSQL
//! tests) and needs PostgreSQL's server programs (`initdb`, `pg_ctl`; Debian's
//! `postgresql` package puts them in /usr/lib/postgresql/VERSION/bin); with
//! `HOTLINE_REQUIRE_POSTGRES=1` a skip is a failure. As root the server runs as the
//! `postgres` user, since PostgreSQL refuses to run as root. The full-disk test mounts a
//! small tmpfs and is skipped, saying why, where mounting is not permitted.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::pg_server::PgServer;
use hotline::records::postgres::PostgresStore;
use hotline::records::sqlite::SqliteStore;
use hotline::records::store::{CallFilter, Store};
use hotline::records::writer::{Opener, Writer, WriterConfig};
use hotline::records::{CallEvent, CallKind, CallOutcome, CallRecord, HungUpBy, RecordMsg};
use hotline::records::{RecordSink, SinkCounters};

// ---------------------------------------------------------------------------------------
// Calls as the builder sends them

const EVENTS_PER_CALL: u32 = 20;

fn record(id: &str, started_ms: i64) -> CallRecord {
    CallRecord {
        call_id: id.to_owned(),
        kind: CallKind::Inbound,
        caller: "+4930123".to_owned(),
        dialed: "100".to_owned(),
        started_ms,
        answered_ms: Some(started_ms + 40),
        ended_ms: None,
        flow: "main".to_owned(),
        flow_version: "1".to_owned(),
        language: "en".to_owned(),
        outcome: None,
        hung_up_by: None,
        last_step: Some("main/menu".to_owned()),
        reason: None,
        tags: vec![],
        queue: None,
        agent: None,
        wait_ms: None,
        talk_ms: None,
        survey: vec![],
        recordings: vec![],
    }
}

fn events(id: &str, started_ms: i64) -> Vec<CallEvent> {
    (0..EVENTS_PER_CALL)
        .map(|seq| CallEvent {
            call_id: id.to_owned(),
            seq,
            at_ms: started_ms + i64::from(seq) * 100,
            kind: "step".to_owned(),
            detail: serde_json::json!({ "flow": "main", "step": format!("s{seq}") }),
        })
        .collect()
}

fn ended(id: &str, started_ms: i64) -> RecordMsg {
    let mut r = record(id, started_ms);
    r.ended_ms = Some(started_ms + 30_000);
    r.outcome = Some(CallOutcome::SelfService);
    r.hung_up_by = Some(HungUpBy::Caller);
    RecordMsg::Finish(r, events(id, started_ms))
}

/// One whole call: its Begin, then its Finish with its events.
fn send_call(sink: &RecordSink, id: &str, started_ms: i64) {
    sink.send(RecordMsg::Begin(record(id, started_ms)));
    sink.send(ended(id, started_ms));
}

fn count(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Polls `done` until it holds; generous, for a loaded machine.
fn eventually(
    what: &str,
    within: Duration,
    counters: &SinkCounters,
    mut done: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {counters:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hotline-outage-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Retries quickly, and gives a batch up to the spool after a second.
fn config(dir: &Path) -> WriterConfig {
    let mut c = WriterConfig::new(dir.join("records.spool"));
    c.max_delay = Duration::from_millis(20);
    c.retry_for = Duration::from_secs(1);
    c.backoff_min = Duration::from_millis(20);
    c.backoff_max = Duration::from_millis(200);
    c
}

/// Every message sent was written exactly once (directly, or from the spool), and some
/// went through the spool.
fn nothing_lost(c: &SinkCounters) {
    assert_eq!(count(&c.pending), 0, "{c:?}");
    assert_eq!(count(&c.lost), 0, "{c:?}");
    assert!(count(&c.errors) > 0, "the outage was seen: {c:?}");
    assert!(
        count(&c.spooled) > 0,
        "the outage outlasted the retries: {c:?}"
    );
    assert_eq!(count(&c.replayed), count(&c.spooled), "{c:?}");
    assert_eq!(count(&c.written), count(&c.sent), "{c:?}");
}

/// The store holds the calls `ids`, each ended with all its events, and nothing else.
fn all_landed(store: &mut dyn Store, ids: &[String]) {
    let all = store.calls(&CallFilter::default()).unwrap();
    let mut stored: Vec<&str> = all.iter().map(|r| r.call_id.as_str()).collect();
    stored.sort_unstable();
    let mut want: Vec<&str> = ids.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(stored, want);
    for r in &all {
        assert_eq!(r.outcome, Some(CallOutcome::SelfService), "{r:?}");
        assert_eq!(
            store.events(&r.call_id).unwrap(),
            events(&r.call_id, r.started_ms),
            "{}",
            r.call_id
        );
    }
}

/// Sends whole calls from a thread of their own, one every 5 ms, until stopped (and at
/// most `max`): calls ending while the store comes and goes.
struct Caller {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Caller {
    fn start(sink: RecordSink, prefix: &'static str, first_ms: i64, max: usize) -> Caller {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut ids = Vec::new();
            while !flag.load(Ordering::SeqCst) && ids.len() < max {
                let id = format!("{prefix}{}", ids.len());
                send_call(&sink, &id, first_ms + ids.len() as i64);
                ids.push(id);
                std::thread::sleep(Duration::from_millis(5));
            }
            ids
        });
        Caller {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Caller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------------------
// PostgreSQL stopped and started

/// Whether PostgreSQL tests are wanted; with `HOTLINE_REQUIRE_POSTGRES=1` they must run.
fn postgres_wanted() -> bool {
    let wanted = std::env::var("HOTLINE_TEST_POSTGRES").is_ok_and(|u| !u.is_empty());
    if !wanted {
        skip("set HOTLINE_TEST_POSTGRES to run the PostgreSQL tests");
    }
    wanted
}

fn skip(why: &str) {
    assert!(
        std::env::var("HOTLINE_REQUIRE_POSTGRES").as_deref() != Ok("1"),
        "HOTLINE_REQUIRE_POSTGRES=1 but the test cannot run: {why}"
    );
    eprintln!("skipped: {why}");
}

fn postgres_opener(url: String) -> Opener {
    Box::new(move || {
        let mut s = PostgresStore::connect(&url)?;
        s.migrate()?;
        Ok(Box::new(s) as Box<dyn Store>)
    })
}

#[test]
fn postgres_stopped_and_started_again_loses_nothing_and_writes_nothing_twice() {
    if !postgres_wanted() {
        return;
    }
    let pg = match PgServer::new("pg") {
        Ok(pg) => pg,
        Err(why) => {
            skip(&format!(
                "cannot run a PostgreSQL server of the test's own: {why}"
            ));
            return;
        }
    };
    let spool_dir = scratch("pg-spool");
    let w = Writer::start(postgres_opener(pg.url()), config(&spool_dir), 0).unwrap();
    assert!(matches!(w.wait_ready(Duration::from_secs(60)), Some(Ok(_))));
    let c = w.counters();

    // Records flow while the server is up.
    let caller = Caller::start(w.sink(), "call", 1_000, 20_000);
    eventually(
        "the first records written",
        Duration::from_secs(60),
        &c,
        || count(&c.written) >= 100,
    );

    // Stopped while calls go on ending: failures counted, batches spooled.
    pg.stop().unwrap();
    let errors = count(&c.errors);
    eventually(
        "batches spooled while the server is down",
        Duration::from_secs(60),
        &c,
        || count(&c.spooled) > 0 && count(&c.errors) >= errors + 2,
    );
    let written_while_down = count(&c.written);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        count(&c.written),
        written_while_down,
        "nothing written while down"
    );

    // Started again: the spool is replayed and new records flow again.
    pg.start().unwrap();
    eventually("the spool replayed", Duration::from_secs(60), &c, || {
        count(&c.replayed) > 0
    });
    let replayed = count(&c.replayed);
    eventually(
        "new records written after the restart",
        Duration::from_secs(60),
        &c,
        || count(&c.written) >= written_while_down + replayed + 100,
    );
    let ids = caller.stop();
    assert!(w.flush(Duration::from_secs(120)));
    // A batch given up just before the restart may still wait in the spool.
    eventually("everything written", Duration::from_secs(60), &c, || {
        count(&c.written) == count(&c.sent)
    });
    assert_eq!(count(&c.sent), 2 * ids.len() as u64);
    nothing_lost(&c);
    drop(w);

    let mut store = PostgresStore::connect(&pg.url()).unwrap();
    all_landed(&mut store, &ids);
    // Nothing twice: exactly one row per call, one per event.
    let mut client = ::postgres::Client::connect(&pg.url(), ::postgres::NoTls).unwrap();
    let calls: i64 = client
        .query_one("SELECT count(*) FROM calls", &[])
        .unwrap()
        .get(0);
    let events: i64 = client
        .query_one("SELECT count(*) FROM events", &[])
        .unwrap()
        .get(0);
    assert_eq!(calls, ids.len() as i64);
    assert_eq!(events, ids.len() as i64 * i64::from(EVENTS_PER_CALL));
    let _ = std::fs::remove_dir_all(&spool_dir);
}

// ---------------------------------------------------------------------------------------
// SQLite

fn sqlite_opener(path: &Path) -> Opener {
    let path = path.to_path_buf();
    Box::new(move || {
        let mut s = SqliteStore::open_with(&path, Duration::from_millis(200))?;
        s.migrate()?;
        Ok(Box::new(s) as Box<dyn Store>)
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The store's folder is a file at start (as if the disk it lives on were not mounted):
/// the writer spools, keeps trying, and once the folder is there writes everything,
/// without a restart. A call of this run still in progress is not taken for one an
/// earlier run left open.
#[test]
fn an_sqlite_store_missing_at_start_is_written_once_it_is_there() {
    let dir = scratch("sqlite-missing");
    let folder = dir.join("store");
    std::fs::write(&folder, b"not a folder").unwrap();
    let path = folder.join("hotline.db");
    let started = now_ms();
    let w = Writer::start(sqlite_opener(&path), config(&dir), started).unwrap();
    assert!(matches!(
        w.wait_ready(Duration::from_secs(60)),
        Some(Err(_))
    ));
    let sink = w.sink();
    let mut ids = Vec::new();
    for i in 0..20 {
        let id = format!("m{i}");
        send_call(&sink, &id, started + i);
        ids.push(id);
    }
    sink.send(RecordMsg::Begin(record("going-on", started + 50)));
    assert!(w.flush(Duration::from_secs(60)));
    let c = w.counters();
    assert_eq!(count(&c.spooled), 41, "{c:?}");
    assert_eq!(count(&c.written), 0);

    std::fs::remove_file(&folder).unwrap();
    std::fs::create_dir(&folder).unwrap();
    eventually("the spool replayed", Duration::from_secs(60), &c, || {
        count(&c.written) == 41
    });
    sink.send(ended("going-on", started + 50));
    ids.push("going-on".to_owned());
    assert!(w.flush(Duration::from_secs(60)));
    nothing_lost(&c);
    drop(w);
    let mut store = SqliteStore::open(&path).unwrap();
    all_landed(&mut store, &ids);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A small tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system at `path` up: writes until it is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 64 * 1024];
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    // The last partial blocks.
    let mut small = [0u8; 512];
    while f.write(&small).is_ok_and(|n| n > 0) {
        small[0] = small[0].wrapping_add(1);
    }
}

/// The disk the SQLite file is on fills up while calls end, then has room again: the
/// writer retries, spools (on another disk) and then writes everything. Needs the right to
/// mount a tmpfs (root with CAP_SYS_ADMIN); skipped where that is refused.
#[test]
fn an_sqlite_store_on_a_full_disk_is_written_once_there_is_room() {
    let dir = scratch("sqlite-full");
    let disk = match Tmpfs::mount(&dir.join("disk"), "4m") {
        Ok(d) => d,
        Err(why) => {
            eprintln!("skipped: cannot mount a small tmpfs to fill up ({why})");
            let _ = std::fs::remove_dir_all(&dir);
            return;
        }
    };
    let path = disk.0.join("hotline.db");
    let w = Writer::start(sqlite_opener(&path), config(&dir), 0).unwrap();
    assert!(matches!(w.wait_ready(Duration::from_secs(60)), Some(Ok(_))));
    let c = w.counters();
    let sink = w.sink();
    let mut ids = Vec::new();
    for i in 0..10 {
        let id = format!("before{i}");
        send_call(&sink, &id, 1_000 + i);
        ids.push(id);
    }
    assert!(w.flush(Duration::from_secs(60)));
    assert_eq!(count(&c.written), 20);

    let filler = disk.0.join("filler");
    fill(&filler);
    // Enough to outgrow the write-ahead log's pages on the full disk.
    for i in 0..300 {
        let id = format!("full{i}");
        send_call(&sink, &id, 2_000 + i);
        ids.push(id);
    }
    eventually(
        "batches spooled while the disk is full",
        Duration::from_secs(60),
        &c,
        || count(&c.spooled) > 0 && count(&c.errors) >= 2,
    );
    std::fs::remove_file(&filler).unwrap();
    for i in 0..10 {
        let id = format!("after{i}");
        send_call(&sink, &id, 3_000 + i);
        ids.push(id);
    }
    assert!(w.flush(Duration::from_secs(60)));
    eventually("everything written", Duration::from_secs(60), &c, || {
        count(&c.written) == count(&c.sent)
    });
    nothing_lost(&c);
    drop(w);
    let mut store = SqliteStore::open(&path).unwrap();
    all_landed(&mut store, &ids);
    drop(store);
    drop(disk);
    let _ = std::fs::remove_dir_all(&dir);
}
