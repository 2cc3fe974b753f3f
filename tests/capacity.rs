//! `hotline capacity` on a real SQLite records file: the defaults come from the recorded
//! history of the queue (arrivals per hour, handle time, patience) and say so; flags
//! override them; a range of agents prints a table and the agents the target needs.

use std::path::PathBuf;
use std::process::Command;

use hotline::records::store::Store;
use hotline::records::{CallEvent, CallKind, CallOutcome, CallRecord, RecordMsg};
use serde_json::json;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hotline-capacity-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn hotline(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hotline"))
        .args(args)
        .output()
        .expect("hotline runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn record(id: &str, started_ms: i64, outcome: CallOutcome) -> CallRecord {
    CallRecord {
        call_id: id.into(),
        kind: CallKind::Inbound,
        caller: "+4930123456".into(),
        dialed: "hotline".into(),
        started_ms,
        answered_ms: Some(started_ms),
        ended_ms: Some(started_ms + 600_000),
        flow: "main".into(),
        flow_version: "1".into(),
        language: "en".into(),
        outcome: Some(outcome),
        hung_up_by: None,
        last_step: None,
        reason: None,
        tags: Vec::new(),
        queue: Some("support".into()),
        agent: None,
        wait_ms: None,
        talk_ms: None,
        survey: Vec::new(),
        recordings: Vec::new(),
    }
}

fn event(id: &str, seq: u32, at_ms: i64, kind: &str, detail: serde_json::Value) -> CallEvent {
    CallEvent {
        call_id: id.into(),
        seq,
        at_ms,
        kind: kind.into(),
        detail,
    }
}

/// 40 calls to `support` in two clock hours: 36 answered after 30 s and handled for
/// 200 s talk + 40 s hold, 4 who gave up after 60 s. Patience, by waiting time over
/// those who gave up: (36 x 30 s + 4 x 60 s) / 4 = 330 s.
fn history(db: &std::path::Path) {
    let mut store = hotline::records::sqlite::SqliteStore::open(db).unwrap();
    store.migrate().unwrap();
    let hour = 3_600_000;
    let base = (now_ms() / hour - 3) * hour;
    let mut batch = Vec::new();
    for i in 0..40i64 {
        let id = format!("call-{i}");
        let t = base + (i / 20) * hour + (i % 20) * 60_000;
        let gave_up = i % 10 == 9;
        let outcome = if gave_up {
            CallOutcome::AbandonedInQueue
        } else {
            CallOutcome::Agent
        };
        let mut events = vec![event(
            &id,
            0,
            t,
            "queue_joined",
            json!({"queue": "support"}),
        )];
        if gave_up {
            events.push(event(
                &id,
                1,
                t + 60_000,
                "queue_left",
                json!({"queue": "support", "outcome": "caller_hung_up", "wait_ms": 60_000}),
            ));
        } else {
            events.push(event(
                &id,
                1,
                t + 30_000,
                "queue_left",
                json!({"queue": "support", "outcome": "agent", "wait_ms": 30_000}),
            ));
            events.push(event(
                &id,
                2,
                t + 270_000,
                "agent_ended",
                json!({"queue": "support", "agent": "alice", "talk_ms": 200_000, "hold_ms": 40_000}),
            ));
        }
        batch.push(RecordMsg::Finish(record(&id, t, outcome), events));
    }
    store.write(&batch).unwrap();
}

#[test]
fn defaults_come_from_the_records_and_flags_override_them() {
    let dir = scratch("history");
    let db = dir.join("records.db");
    history(&db);
    let config = dir.join("hotline.yaml");
    std::fs::write(
        &config,
        format!(
            "records: {{ store: {:?} }}\nqueues:\n  support: {{ wrap_up: 20s, service_level: 30s }}\n",
            db.display().to_string()
        ),
    )
    .unwrap();
    let config = config.display().to_string();

    let (code, out, err) = hotline(&[
        "capacity",
        "--config",
        &config,
        "--queue",
        "support",
        "--agents",
        "1..4",
        "--simulate-calls",
        "2000",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    for want in [
        "calls per hour  20.0",
        "records, last 7d: 40 calls joined in 2 hours with calls",
        "handle time     4m ",
        "talk and hold of 36 agent calls",
        "wrap-up         20s",
        "patience        5m30s",
        "4 of 40 callers gave up",
        "target          80% in 30s",
        // 20 calls/h x (240 s + 20 s) = 1.44 erlangs.
        "load            1.44 erlangs",
    ] {
        assert!(out.contains(want), "'{want}' missing in:\n{out}");
    }
    // One row per agent count; one agent cannot carry 1.44 erlangs without giving up.
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|w| w.parse::<u32>().is_ok())
        })
        .collect();
    assert_eq!(rows.len(), 4, "{out}");
    assert!(rows[0].contains("overloaded"), "{out}");
    assert!(out.contains("by Erlang C"), "{out}");

    // Flags win, and say so.
    let (code, out, err) = hotline(&[
        "capacity",
        "--config",
        &config,
        "--queue",
        "support",
        "--agents",
        "12",
        "--calls-per-hour",
        "200",
        "--handle-time",
        "160s",
        "--patience",
        "none",
        "--target",
        "80/20s",
        "--simulate-calls",
        "0",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("(--calls-per-hour)") && out.contains("(--handle-time)"),
        "{out}"
    );
    // 160 s + 20 s wrap-up at 200 calls/h is the textbook 10 erlangs: 12 agents, 64.0 %.
    assert!(out.contains("load            10.00 erlangs"), "{out}");
    assert!(out.contains("64.0%"), "{out}");
    assert!(
        out.contains("80% in 20s needs 14 agents by Erlang C"),
        "{out}"
    );

    // A queue that is not configured.
    let (code, _, err) = hotline(&["capacity", "--config", &config, "--queue", "sales"]);
    assert_eq!(code, 2);
    assert!(err.contains("no queue named 'sales'"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_records_the_inputs_must_be_given() {
    let dir = scratch("bare");
    let config = dir.join("hotline.yaml");
    std::fs::write(&config, "queues:\n  support: {}\n").unwrap();
    let config = config.display().to_string();
    let (code, _, err) = hotline(&["capacity", "--config", &config, "--queue", "support"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no calls per hour: pass --calls-per-hour"),
        "{err}"
    );
    let (code, out, err) = hotline(&[
        "capacity",
        "--config",
        &config,
        "--queue",
        "support",
        "--calls-per-hour",
        "200",
        "--handle-time",
        "3m",
        "--agents",
        "13..14",
        "--simulate-calls",
        "5000",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    // The worked example: 79.6 % and 88.8 % in 20 s by Erlang C.
    assert!(out.contains("79.6%") && out.contains("88.8%"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
