//! The call-records store and its writer.
//!
//! The store suite runs against SQLite (a temporary file) always, and against PostgreSQL
//! when `HOTLINE_TEST_POSTGRES` holds a connection URL (each test in a schema of its own,
//! so they run in parallel); with `HOTLINE_REQUIRE_POSTGRES=1` a missing URL fails the
//! PostgreSQL tests instead of skipping them. The writer's tests cover batching, a store
//! locked by another connection, a store that stays down (the spool, replayed by the next
//! writer), a full queue, shutdown, and a PostgreSQL server that cannot be reached.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hotline::records::postgres::PostgresStore;
use hotline::records::sqlite::SqliteStore;
use hotline::records::store::{CallFilter, Store, StoreError};
use hotline::records::writer::{Opener, Writer, WriterConfig};
use hotline::records::{CallEvent, CallKind, CallOutcome, CallRecord, HungUpBy, RecordMsg};
use hotline_core::record::{RecordingRef, SurveyAnswer};

// ---------------------------------------------------------------------------------------
// Fixtures

/// Opens fresh connections to one test's own store.
trait Fixture {
    fn open(&self) -> Box<dyn Store>;
}

struct Sqlite {
    dir: PathBuf,
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hotline-records-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

impl Sqlite {
    fn new(name: &str) -> Sqlite {
        Sqlite { dir: scratch(name) }
    }
    fn path(&self) -> PathBuf {
        self.dir.join("hotline.db")
    }
}

impl Drop for Sqlite {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Fixture for Sqlite {
    fn open(&self) -> Box<dyn Store> {
        Box::new(SqliteStore::open(&self.path()).expect("open the SQLite store"))
    }
}

/// A schema of the test's own in the PostgreSQL server the tests use.
struct Postgres(common::postgres::Schema);

impl Postgres {
    fn new(name: &str) -> Option<Postgres> {
        let base = common::postgres::postgres_url()?;
        Some(Postgres(common::postgres::Schema::new(base, name)))
    }

    fn url(&self) -> String {
        self.0.url()
    }
}

impl Fixture for Postgres {
    fn open(&self) -> Box<dyn Store> {
        Box::new(PostgresStore::connect(&self.url()).expect("connect to PostgreSQL"))
    }
}

fn migrated(f: &dyn Fixture) -> Box<dyn Store> {
    let mut s = f.open();
    s.migrate().expect("migrate");
    s
}

// ---------------------------------------------------------------------------------------
// Data

fn record(id: &str, caller: &str, started_ms: i64) -> CallRecord {
    CallRecord {
        call_id: id.to_owned(),
        kind: CallKind::Inbound,
        caller: caller.to_owned(),
        dialed: "100".to_owned(),
        started_ms,
        answered_ms: Some(started_ms + 40),
        ended_ms: None,
        flow: "main".to_owned(),
        flow_version: "v1".to_owned(),
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

/// The record once the call ended, with every field filled.
fn finished(mut r: CallRecord, outcome: CallOutcome) -> CallRecord {
    r.ended_ms = Some(r.started_ms + 95_000);
    r.outcome = Some(outcome);
    r.hung_up_by = Some(HungUpBy::Agent);
    r.last_step = Some("main/thanks".to_owned());
    r.reason = Some("billing".to_owned());
    r.tags = vec![
        ("reason".to_owned(), "billing".to_owned()),
        ("vip".to_owned(), "yes \"really\" ü".to_owned()),
    ];
    r.queue = Some("support".to_owned());
    r.agent = Some("alice".to_owned());
    r.wait_ms = Some(12_000);
    r.talk_ms = Some(60_000);
    r.survey = vec![SurveyAnswer {
        question: "survey_q1".to_owned(),
        score: 4,
    }];
    r.recordings = vec![RecordingRef {
        path: "recordings/x.wav".to_owned(),
        duration_ms: 3_500,
    }];
    r.kind = CallKind::Callback;
    r
}

fn events(id: &str, seqs: std::ops::Range<u32>, started_ms: i64) -> Vec<CallEvent> {
    seqs.map(|seq| CallEvent {
        call_id: id.to_owned(),
        seq,
        at_ms: started_ms + i64::from(seq) * 100,
        kind: if seq % 2 == 0 { "step" } else { "key" }.to_owned(),
        detail: serde_json::json!({ "flow": "main", "step": format!("s{seq}"), "n": seq }),
    })
    .collect()
}

fn seqs(events: &[CallEvent]) -> Vec<u32> {
    events.iter().map(|e| e.seq).collect()
}

// ---------------------------------------------------------------------------------------
// The store suite, run on each back end.

fn migrations_from_empty_and_again(f: &dyn Fixture) {
    let mut s = f.open();
    assert_eq!(s.migrate().unwrap(), 1);
    assert_eq!(s.migrate().unwrap(), 1, "a second run changes nothing");
    s.begin(&record("a", "+491", 1_000)).unwrap();
    drop(s);
    let mut again = f.open();
    assert_eq!(again.migrate().unwrap(), 1);
    assert_eq!(again.calls(&CallFilter::default()).unwrap().len(), 1);
}

fn begin_events_finish(f: &dyn Fixture) {
    let mut s = migrated(f);
    let open = record("c1", "+4930111", 10_000);
    s.begin(&open).unwrap();
    assert_eq!(s.call("c1").unwrap(), Some(open.clone()));
    s.append(&events("c1", 0..3, 10_000)).unwrap();
    let done = finished(open, CallOutcome::Agent);
    // The finish repeats event 2 (already stored) and brings 3 and 4.
    s.finish(&done, &events("c1", 2..5, 10_000)).unwrap();
    assert_eq!(s.call("c1").unwrap(), Some(done));
    let stored = s.events("c1").unwrap();
    assert_eq!(stored, events("c1", 0..5, 10_000));
    assert_eq!(s.call("nope").unwrap(), None);
    assert!(s.events("nope").unwrap().is_empty());
}

fn duplicate_events_are_ignored(f: &dyn Fixture) {
    let mut s = migrated(f);
    let first = events("d1", 0..4, 0);
    s.append(&first).unwrap();
    let mut changed = events("d1", 0..6, 0);
    changed[1].detail = serde_json::json!({ "changed": true });
    changed[1].kind = "other".to_owned();
    // In one batch: the row, the same events twice, then the end.
    s.write(&[
        RecordMsg::Begin(record("d1", "+1", 0)),
        RecordMsg::Events(changed.clone()),
        RecordMsg::Events(changed),
        RecordMsg::Finish(
            finished(record("d1", "+1", 0), CallOutcome::SelfService),
            vec![],
        ),
    ])
    .unwrap();
    let stored = s.events("d1").unwrap();
    assert_eq!(seqs(&stored), [0, 1, 2, 3, 4, 5]);
    assert_eq!(stored[1], first[1], "the event stored first stays");
}

fn a_begin_never_reopens_an_ended_call(f: &dyn Fixture) {
    let mut s = migrated(f);
    let done = finished(record("r1", "+1", 5_000), CallOutcome::Voicemail);
    s.finish(&done, &[]).unwrap();
    // A spooled Begin replayed after the Finish landed.
    s.begin(&record("r1", "+1", 5_000)).unwrap();
    assert_eq!(s.call("r1").unwrap(), Some(done));
}

fn open_rows_are_interrupted(f: &dyn Fixture) {
    let mut s = migrated(f);
    s.begin(&record("old", "+1", 1_000)).unwrap();
    s.begin(&record("new", "+2", 5_000)).unwrap();
    let done = finished(record("done", "+3", 500), CallOutcome::Agent);
    s.finish(&done, &[]).unwrap();
    assert_eq!(s.interrupt_open(3_000).unwrap(), 1);
    let old = s.call("old").unwrap().unwrap();
    assert_eq!(old.outcome, Some(CallOutcome::Interrupted));
    assert_eq!(old.ended_ms, Some(3_000));
    let new = s.call("new").unwrap().unwrap();
    assert_eq!(
        new.outcome, None,
        "a call started after that moment stays open"
    );
    assert_eq!(s.call("done").unwrap(), Some(done));
    assert_eq!(s.interrupt_open(3_000).unwrap(), 0);
    // The real end, replayed from a spool, still wins over `interrupted`.
    let real = finished(record("old", "+1", 1_000), CallOutcome::AbandonedInQueue);
    s.finish(&real, &[]).unwrap();
    assert_eq!(s.call("old").unwrap(), Some(real));
}

fn queries_select_and_order(f: &dyn Fixture) {
    let mut s = migrated(f);
    let calls = [
        ("q1", "+491", 1_000),
        ("q2", "+492", 2_000),
        ("q3", "+491", 3_000),
        ("q4", "+493", 4_000),
        ("q5", "+491", 5_000),
    ];
    let mut batch = Vec::new();
    for (id, caller, at) in calls {
        batch.push(RecordMsg::Finish(
            finished(record(id, caller, at), CallOutcome::Agent),
            events(id, 0..3, at),
        ));
    }
    s.write(&batch).unwrap();
    let ids = |rows: Vec<CallRecord>| rows.into_iter().map(|r| r.call_id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.calls(&CallFilter::default()).unwrap()),
        ["q1", "q2", "q3", "q4", "q5"]
    );
    let last2 = CallFilter {
        last: Some(2),
        ..CallFilter::default()
    };
    assert_eq!(ids(s.calls(&last2).unwrap()), ["q4", "q5"]);
    let window = CallFilter {
        since_ms: Some(2_000),
        until_ms: Some(5_000),
        ..CallFilter::default()
    };
    assert_eq!(ids(s.calls(&window).unwrap()), ["q2", "q3", "q4"]);
    let caller = CallFilter {
        caller: Some("+491".to_owned()),
        last: Some(2),
        ..CallFilter::default()
    };
    assert_eq!(ids(s.calls(&caller).unwrap()), ["q3", "q5"]);
    let (records, evs) = s.records_between(2_000, 4_001).unwrap();
    assert_eq!(ids(records), ["q2", "q3", "q4"]);
    let keys: Vec<(String, u32)> = evs.iter().map(|e| (e.call_id.clone(), e.seq)).collect();
    let expected: Vec<(String, u32)> = ["q2", "q3", "q4"]
        .iter()
        .flat_map(|id| (0..3).map(move |n| (id.to_string(), n)))
        .collect();
    assert_eq!(keys, expected);
    assert_eq!(evs[0], events("q2", 0..1, 2_000)[0]);
}

fn retention_deletes_in_batches(f: &dyn Fixture) {
    let mut s = migrated(f);
    let mut batch = Vec::new();
    for i in 0..2_500i64 {
        let id = format!("old{i}");
        batch.push(RecordMsg::Finish(
            finished(record(&id, "+1", i), CallOutcome::Agent),
            events(&id, 0..2, i),
        ));
    }
    for i in 0..3i64 {
        let id = format!("new{i}");
        batch.push(RecordMsg::Finish(
            finished(record(&id, "+1", 1_000_000 + i), CallOutcome::Agent),
            events(&id, 0..2, 1_000_000 + i),
        ));
    }
    // Events whose call never got a row (its Begin was lost): old ones go too.
    batch.push(RecordMsg::Events(events("orphan", 0..2, 10)));
    s.write(&batch).unwrap();
    let cut = 500_000;
    assert_eq!(s.delete_before(cut, 1_000).unwrap(), 1_000);
    assert_eq!(s.delete_before(cut, 1_000).unwrap(), 1_000);
    assert_eq!(s.delete_before(cut, 1_000).unwrap(), 500);
    assert_eq!(s.delete_before(cut, 1_000).unwrap(), 0);
    let left = s.calls(&CallFilter::default()).unwrap();
    assert_eq!(left.len(), 3);
    assert!(s.events("old7").unwrap().is_empty());
    assert!(s.events("orphan").unwrap().is_empty());
    assert_eq!(s.events("new1").unwrap().len(), 2);
}

macro_rules! store_suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    super::$name(&super::Sqlite::new(stringify!($name)));
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    if let Some(f) = super::Postgres::new(stringify!($name)) {
                        super::$name(&f);
                    }
                }
            )*
        }
    };
}

store_suite!(
    migrations_from_empty_and_again,
    begin_events_finish,
    duplicate_events_are_ignored,
    a_begin_never_reopens_an_ended_call,
    open_rows_are_interrupted,
    queries_select_and_order,
    retention_deletes_in_batches,
);

// ---------------------------------------------------------------------------------------
// The writer

/// One call as the builder sends it: Begin, then Finish with its 20 events.
fn call_messages(id: &str, started_ms: i64) -> [RecordMsg; 2] {
    [
        RecordMsg::Begin(record(id, "+4930", started_ms)),
        RecordMsg::Finish(
            finished(record(id, "+4930", started_ms), CallOutcome::SelfService),
            events(id, 0..20, started_ms),
        ),
    ]
}

fn sqlite_opener(path: &Path, busy: Duration) -> Opener {
    let path = path.to_path_buf();
    Box::new(move || {
        let mut s = SqliteStore::open_with(&path, busy)?;
        s.migrate()?;
        Ok(Box::new(s) as Box<dyn Store>)
    })
}

fn config(dir: &Path) -> WriterConfig {
    let mut c = WriterConfig::new(dir.join("records.spool"));
    c.backoff_min = Duration::from_millis(20);
    c.backoff_max = Duration::from_millis(200);
    c
}

/// Polls `done` until it holds; generous, for a loaded machine.
fn eventually(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn count(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

#[test]
fn the_writer_batches_many_messages_into_few_transactions() {
    let f = Sqlite::new("writer_batches");
    let mut cfg = config(&f.dir);
    // Everything sent below fits in the first window on any machine.
    cfg.max_delay = Duration::from_secs(2);
    let w = Writer::start(sqlite_opener(&f.path(), Duration::from_secs(2)), cfg, 0).unwrap();
    assert_eq!(
        w.wait_ready(Duration::from_secs(30)),
        Some(Ok(Default::default()))
    );
    let sink = w.sink();
    for i in 0..500 {
        for m in call_messages(&format!("b{i}"), 1_000 + i) {
            sink.send(m);
        }
    }
    assert!(w.flush(Duration::from_secs(60)));
    let c = w.counters();
    assert_eq!(count(&c.written), 1_000);
    assert_eq!(count(&c.pending), 0);
    assert_eq!(count(&c.spooled), 0);
    assert!(count(&c.commits) <= 2, "{} transactions", count(&c.commits));
    let mut s = migrated(&f);
    let all = s.calls(&CallFilter::default()).unwrap();
    assert_eq!(all.len(), 500);
    assert!(
        all.iter()
            .all(|r| r.outcome == Some(CallOutcome::SelfService))
    );
    assert_eq!(s.events("b499").unwrap(), events("b499", 0..20, 1_499));
}

#[test]
fn a_locked_store_is_retried_until_it_frees_and_nothing_is_lost() {
    let f = Sqlite::new("writer_locked");
    migrated(&f);
    let mut cfg = config(&f.dir);
    cfg.max_delay = Duration::from_millis(20);
    cfg.retry_for = Duration::from_secs(300);
    let w = Writer::start(sqlite_opener(&f.path(), Duration::from_millis(50)), cfg, 0).unwrap();
    assert!(matches!(w.wait_ready(Duration::from_secs(30)), Some(Ok(_))));
    // Another process holds the write lock.
    let blocker = rusqlite::Connection::open(f.path()).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let sink = w.sink();
    for i in 0..50 {
        for m in call_messages(&format!("l{i}"), i) {
            sink.send(m);
        }
    }
    let c = w.counters();
    eventually("failed attempts", Duration::from_secs(60), || {
        count(&c.errors) >= 3
    });
    assert_eq!(count(&c.written), 0);
    assert_eq!(count(&c.pending), 100);
    blocker.execute_batch("COMMIT").unwrap();
    drop(blocker);
    assert!(w.flush(Duration::from_secs(120)));
    assert_eq!(count(&c.written), 100);
    assert_eq!(count(&c.spooled), 0);
    assert_eq!(count(&c.pending), 0);
    let mut s = migrated(&f);
    assert_eq!(s.calls(&CallFilter::default()).unwrap().len(), 50);
    for i in 0..50 {
        let id = format!("l{i}");
        assert_eq!(s.events(&id).unwrap(), events(&id, 0..20, i), "in order");
        assert_eq!(
            s.call(&id).unwrap().unwrap().outcome,
            Some(CallOutcome::SelfService)
        );
    }
}

#[test]
fn a_store_that_stays_down_spools_and_the_next_writer_replays() {
    let f = Sqlite::new("writer_spool");
    let mut cfg = config(&f.dir);
    cfg.max_delay = Duration::from_millis(20);
    cfg.retry_for = Duration::from_millis(300);
    let down: Opener = Box::new(|| Err(StoreError::Target("the test's store is down".into())));
    let w = Writer::start(down, cfg.clone(), 0).unwrap();
    assert!(matches!(
        w.wait_ready(Duration::from_secs(30)),
        Some(Err(_))
    ));
    let sink = w.sink();
    for i in 0..20 {
        for m in call_messages(&format!("s{i}"), 1_000 + i) {
            sink.send(m);
        }
    }
    // A call still in progress when this run stops.
    sink.send(RecordMsg::Begin(record("open", "+1", 2_000)));
    assert!(w.flush(Duration::from_secs(60)));
    let c = w.counters();
    assert_eq!(count(&c.spooled), 41);
    assert_eq!(count(&c.written), 0);
    assert!(count(&c.errors) >= 1);
    drop(w);
    assert!(cfg.spool.exists());

    let w = Writer::start(
        sqlite_opener(&f.path(), Duration::from_secs(2)),
        cfg.clone(),
        10_000,
    )
    .unwrap();
    let startup = w.wait_ready(Duration::from_secs(30)).unwrap().unwrap();
    assert_eq!(startup.replayed, 41);
    assert_eq!(startup.interrupted, 1, "the call open in the spool");
    assert!(!cfg.spool.exists());
    drop(w);
    let mut s = migrated(&f);
    assert_eq!(s.calls(&CallFilter::default()).unwrap().len(), 21);
    assert_eq!(s.events("s7").unwrap(), events("s7", 0..20, 1_007));
    let open = s.call("open").unwrap().unwrap();
    assert_eq!(open.outcome, Some(CallOutcome::Interrupted));
    assert_eq!(open.ended_ms, Some(10_000));
}

#[test]
fn a_full_queue_spills_into_the_spool_and_everything_lands() {
    let f = Sqlite::new("writer_full");
    migrated(&f);
    let mut cfg = config(&f.dir);
    cfg.queue = 4;
    cfg.max_delay = Duration::from_millis(10);
    cfg.retry_for = Duration::from_secs(300);
    let w = Writer::start(sqlite_opener(&f.path(), Duration::from_millis(50)), cfg, 0).unwrap();
    assert!(matches!(w.wait_ready(Duration::from_secs(30)), Some(Ok(_))));
    let blocker = rusqlite::Connection::open(f.path()).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let sink = w.sink();
    for i in 0..30 {
        for m in call_messages(&format!("f{i}"), i) {
            sink.send(m);
        }
    }
    let c = w.counters();
    assert!(count(&c.spooled) > 0, "the queue of 4 overflowed");
    blocker.execute_batch("COMMIT").unwrap();
    drop(blocker);
    eventually("every message written", Duration::from_secs(120), || {
        count(&c.written) == 60
    });
    assert_eq!(count(&c.replayed), count(&c.spooled));
    assert_eq!(count(&c.pending), 0);
    assert_eq!(count(&c.lost), 0);
    let mut s = migrated(&f);
    let all = s.calls(&CallFilter::default()).unwrap();
    assert_eq!(all.len(), 30);
    assert!(
        all.iter()
            .all(|r| r.outcome == Some(CallOutcome::SelfService))
    );
}

#[test]
fn shutting_down_writes_what_is_queued() {
    let f = Sqlite::new("writer_shutdown");
    let mut cfg = config(&f.dir);
    cfg.max_delay = Duration::from_secs(60);
    let w = Writer::start(sqlite_opener(&f.path(), Duration::from_secs(2)), cfg, 0).unwrap();
    let sink = w.sink();
    for i in 0..10 {
        for m in call_messages(&format!("x{i}"), i) {
            sink.send(m);
        }
    }
    let c = w.counters();
    w.shutdown();
    assert_eq!(count(&c.written), 20);
    // A call that ends after the stop is spooled, not dropped.
    sink.send(call_messages("late", 99)[1].clone());
    assert_eq!(count(&c.spooled), 1);
    let mut s = migrated(&f);
    assert_eq!(s.calls(&CallFilter::default()).unwrap().len(), 10);
}

#[test]
fn an_unreachable_postgres_is_retried_until_it_answers() {
    let Some(url) = common::postgres::postgres_url() else {
        return;
    };
    let f = Postgres::new("writer_outage").unwrap();
    let good = f.url();
    // Nothing listens on port 1 of loopback: connecting fails at once.
    let bad = url_with_port(&good, 1);
    let up = Arc::new(AtomicBool::new(false));
    let flag = up.clone();
    let opener: Opener = Box::new(move || {
        let target = if flag.load(Ordering::SeqCst) {
            &good
        } else {
            &bad
        };
        let mut s = PostgresStore::connect(target)?;
        s.migrate()?;
        Ok(Box::new(s) as Box<dyn Store>)
    });
    let dir = scratch("writer_outage_pg");
    let mut cfg = config(&dir);
    cfg.max_delay = Duration::from_millis(20);
    cfg.retry_for = Duration::from_secs(300);
    let w = Writer::start(opener, cfg, 0).unwrap();
    assert!(matches!(
        w.wait_ready(Duration::from_secs(30)),
        Some(Err(_))
    ));
    let sink = w.sink();
    for i in 0..20 {
        for m in call_messages(&format!("p{i}"), i) {
            sink.send(m);
        }
    }
    let c = w.counters();
    eventually("failed attempts", Duration::from_secs(60), || {
        count(&c.errors) >= 3
    });
    assert_eq!(count(&c.written), 0);
    up.store(true, Ordering::SeqCst);
    assert!(w.flush(Duration::from_secs(120)));
    assert_eq!(count(&c.written), 40);
    assert_eq!(count(&c.spooled), 0);
    drop(w);
    let mut s = f.open();
    assert_eq!(s.calls(&CallFilter::default()).unwrap().len(), 20);
    assert_eq!(s.events("p3").unwrap(), events("p3", 0..20, 3));
    let _ = std::fs::remove_dir_all(&dir);
    drop(url);
}

/// The URL with its host's port replaced (the URL names 127.0.0.1 or localhost).
fn url_with_port(url: &str, port: u16) -> String {
    let cfg: ::postgres::Config = url.parse().expect("a postgres URL");
    let user = cfg.get_user().unwrap_or("postgres");
    let password = cfg
        .get_password()
        .map(|p| format!(":{}", String::from_utf8_lossy(p)))
        .unwrap_or_default();
    let db = cfg.get_dbname().unwrap_or(user);
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    format!("postgres://{user}{password}@127.0.0.1:{port}/{db}?{query}")
}

// ---------------------------------------------------------------------------------------
// The engine: start-up order, and `hotline records`

/// What an earlier run left an hour ago (`base`): a call open in the store, and in the
/// spool a call's end and another call's beginning. Its oldest call would have gone, were
/// retention not keeping 400 days.
fn leave_an_earlier_run(dir: &Path, base: i64) {
    let mut s = SqliteStore::open(&dir.join("data/hotline.db")).unwrap();
    s.migrate().unwrap();
    s.begin(&record("was-open", "+4930111", base + 1_000))
        .unwrap();
    s.append(&events("was-open", 0..2, base + 1_000)).unwrap();
    let ancient = finished(record("ancient", "+1", 1_000), CallOutcome::Agent);
    s.finish(&ancient, &events("ancient", 0..2, 1_000)).unwrap();
    let spool = hotline::records::spool::Spool::new(dir.join("data/records.spool"));
    spool
        .append(&[
            RecordMsg::Finish(
                finished(
                    record("spooled-end", "+4930222", base + 2_000),
                    CallOutcome::Agent,
                ),
                events("spooled-end", 0..3, base + 2_000),
            ),
            RecordMsg::Begin(record("spooled-begin", "+4930333", base + 3_000)),
        ])
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_replays_the_spool_and_marks_open_calls_before_serving() {
    let dir = scratch("engine_start");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 3_600_000;
    leave_an_earlier_run(&dir, base);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = format!(
        "sip: {{ listen: [\"udp:127.0.0.1:0\"] }}\nrtp: {{ ports: 47000-47039 }}\n\
flows: {:?}\nprompts: {:?}\n\
schedules:\n  service_hours: {{ timezone: Europe/Berlin }}\n\
vars: {{ shop_url: \"http://127.0.0.1:9\", crm_url: \"http://127.0.0.1:9\" }}\n\
records: {{ store: data/hotline.db, keep: 400d }}\n",
        repo.join("flows").display().to_string(),
        repo.join("prompts").display().to_string(),
    );
    let config_path = dir.join("hotline.yaml");
    std::fs::write(&config_path, text).unwrap();
    let cfg = hotline::config::Config::load(&config_path).unwrap();
    let server = hotline::server::Server::start(cfg, 1)
        .await
        .expect("server starts");
    assert!(server.deps.records().is_enabled());
    let started = {
        let mut s = SqliteStore::open(&dir.join("data/hotline.db")).unwrap();
        let open = s.call("was-open").unwrap().unwrap();
        assert_eq!(open.outcome, Some(CallOutcome::Interrupted));
        assert!(open.ended_ms.unwrap() > base + 1_000);
        let begun = s.call("spooled-begin").unwrap().unwrap();
        assert_eq!(begun.outcome, Some(CallOutcome::Interrupted));
        let ended = s.call("spooled-end").unwrap().unwrap();
        assert_eq!(ended.outcome, Some(CallOutcome::Agent));
        assert_eq!(s.events("spooled-end").unwrap().len(), 3);
        assert_eq!(s.call("ancient").unwrap(), None, "retention ran at start");
        assert!(s.events("ancient").unwrap().is_empty());
        open.ended_ms.unwrap()
    };
    assert!(!dir.join("data/records.spool").exists());
    // A call of this run, sent as the builder sends it, lands before the stop returns.
    let sink = server.deps.records().clone();
    for m in call_messages("this-run", started + 10) {
        sink.send(m);
    }
    drop(server);
    sink.send(RecordMsg::Events(events("this-run", 20..21, started + 10)));

    // `hotline records` reads the same store.
    let hotline = env!("CARGO_BIN_EXE_hotline");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(hotline)
            .arg("records")
            .arg("--config")
            .arg(&config_path)
            .args(args)
            .output()
            .expect("hotline records runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, table, err) = run(&[]);
    assert_eq!(code, Some(0), "{err}");
    let order: Vec<usize> = ["was-open", "spooled-end", "spooled-begin", "this-run"]
        .iter()
        .map(|id| table.find(id).unwrap_or_else(|| panic!("{id} in\n{table}")))
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "oldest first:\n{table}"
    );
    assert!(
        table.contains("interrupted") && table.contains("4 call(s)"),
        "{table}"
    );
    let (_, only, _) = run(&["--caller", "+4930222", "--format", "json"]);
    let listed: Vec<CallRecord> = serde_json::from_str(&only).expect("JSON records");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].call_id, "spooled-end");
    let (code, one, err) = run(&["this-run", "--format", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let doc: serde_json::Value = serde_json::from_str(&one).unwrap();
    assert_eq!(doc["call"]["outcome"], "self_service");
    assert_eq!(doc["events"].as_array().unwrap().len(), 20);
    let (code, text, _) = run(&["spooled-end"]);
    assert_eq!(code, Some(0));
    assert!(text.contains("3 event(s)"), "{text}");
    let (code, _, err) = run(&["no-such-call"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no call 'no-such-call'"), "{err}");
    // The event sent after the stop waits in the spool for the next start.
    assert!(dir.join("data/records.spool").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
