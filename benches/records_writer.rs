//! The records writer's throughput: calls per second it commits, each call a `Begin` and a
//! `Finish` carrying 20 events, on SQLite (a file in the temporary folder) and, when
//! `HOTLINE_TEST_POSTGRES` holds a URL, on PostgreSQL. Tests marked `#[ignore]`, run only
//! when asked for:
//!
//! ```text
//! cargo test --release --bench records_writer -- --ignored --nocapture --test-threads 1
//! ```
//!
//! The time runs from the first message sent to the flush that says all are written.
//! Figures print; nothing is asserted about them.

use std::time::{Duration, Instant};

use hotline::records::postgres::PostgresStore;
use hotline::records::sqlite::SqliteStore;
use hotline::records::store::Store;
use hotline::records::writer::{Opener, Writer, WriterConfig};
use hotline::records::{CallEvent, CallKind, CallOutcome, CallRecord, HungUpBy, RecordMsg};

const CALLS: usize = 20_000;
const EVENTS_PER_CALL: u32 = 20;

fn record(id: &str, started_ms: i64) -> CallRecord {
    CallRecord {
        call_id: id.to_owned(),
        kind: CallKind::Inbound,
        caller: format!("+4930{}", started_ms % 10_000),
        dialed: "100".to_owned(),
        started_ms,
        answered_ms: Some(started_ms + 50),
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

fn messages(i: usize) -> [RecordMsg; 2] {
    let id = format!("bench-{i}");
    let start = 1_700_000_000_000 + i as i64 * 1_000;
    let mut done = record(&id, start);
    done.ended_ms = Some(start + 90_000);
    done.outcome = Some(CallOutcome::SelfService);
    done.hung_up_by = Some(HungUpBy::Caller);
    done.tags = vec![("reason".to_owned(), "orders".to_owned())];
    let events = (0..EVENTS_PER_CALL)
        .map(|seq| CallEvent {
            call_id: id.clone(),
            seq,
            at_ms: start + i64::from(seq) * 500,
            kind: "step".to_owned(),
            detail: serde_json::json!({ "flow": "main", "step": format!("step_{seq}") }),
        })
        .collect();
    [
        RecordMsg::Begin(record(&id, start)),
        RecordMsg::Finish(done, events),
    ]
}

fn run(label: &str, opener: Opener, spool_dir: &std::path::Path) {
    let w = Writer::start(
        opener,
        WriterConfig::new(spool_dir.join("records.spool")),
        0,
    )
    .expect("writer");
    assert!(matches!(w.wait_ready(Duration::from_secs(30)), Some(Ok(_))));
    let sink = w.sink();
    let t = Instant::now();
    for i in 0..CALLS {
        for m in messages(i) {
            sink.send(m);
        }
    }
    assert!(w.flush(Duration::from_secs(600)));
    let took = t.elapsed();
    let c = w.counters();
    println!(
        "{label:<10} {CALLS} calls x ({EVENTS_PER_CALL} events) in {:.2} s: {:>8.0} calls/s, {:>9.0} events/s, {} transactions, {} spooled",
        took.as_secs_f64(),
        CALLS as f64 / took.as_secs_f64(),
        (CALLS * EVENTS_PER_CALL as usize) as f64 / took.as_secs_f64(),
        c.commits.load(std::sync::atomic::Ordering::Relaxed),
        c.spooled.load(std::sync::atomic::Ordering::Relaxed),
    );
}

#[test]
#[ignore]
fn sqlite_writer_throughput() {
    let dir = std::env::temp_dir().join(format!("hotline-records-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bench.db");
    let opener: Opener = Box::new(move || {
        let mut s = SqliteStore::open(&path)?;
        s.migrate()?;
        Ok(Box::new(s) as Box<dyn Store>)
    });
    run("sqlite", opener, &dir);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore]
fn postgres_writer_throughput() {
    let Ok(url) = std::env::var("HOTLINE_TEST_POSTGRES") else {
        println!("postgres   skipped: HOTLINE_TEST_POSTGRES is not set");
        return;
    };
    let schema = format!("bench_{}", std::process::id());
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    admin
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};"
        ))
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let target = format!("{url}{sep}options=-c%20search_path%3D{schema}");
    let opener: Opener = Box::new(move || {
        let mut s = PostgresStore::connect(&target)?;
        s.migrate()?;
        Ok(Box::new(s) as Box<dyn Store>)
    });
    let dir = std::env::temp_dir().join(format!("hotline-records-bench-pg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    run("postgres", opener, &dir);
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// What the journal of calls begun costs a call: appending one `Begin` (and queueing it,
/// here nothing) on the call's task, the file emptied every 100 calls as the writer's
/// commits would.
#[test]
#[ignore]
fn journal_begin_cost() {
    use hotline::records::journal::Journal;
    const BEGINS: usize = 100_000;
    let dir = std::env::temp_dir().join(format!("hotline-journal-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let journal = Journal::new(dir.join("records.journal"));
    let msgs: Vec<RecordMsg> = (0..BEGINS)
        .map(|i| RecordMsg::Begin(record(&format!("call-{i:06}@bench"), 1_700_000_000_000)))
        .collect();
    let bytes = serde_json::to_vec(&msgs[0]).unwrap().len() + 1;
    let start = Instant::now();
    for (i, m) in msgs.iter().enumerate() {
        drop(journal.begin(m).expect("journalled"));
        if i % 100 == 99 {
            journal.settled(100).expect("emptied");
        }
    }
    let per = start.elapsed() / BEGINS as u32;
    println!(
        "journal    {BEGINS} begins, {bytes} bytes each: {:.2} µs per begin",
        per.as_secs_f64() * 1e6
    );
    let _ = std::fs::remove_dir_all(&dir);
}
