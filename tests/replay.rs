//! `hotline replay`: a real call through a real engine, recorded into a real SQLite file,
//! replayed unchanged (the paths are the same), against an edited flow (the parting point
//! is reported, exit 1), and written as a flow test that `hotline test` passes and the
//! flow test schema accepts.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{SECOND, hears, repo};
use hotline::config::{Config, Protocol};
use hotline::records::store::{CallFilter, Store};
use hotline::records::{CallOutcome, CallRecord};
use hotline::server::Server;
use hotline_load::caller::KeyMethod;

const FLOW: &str = "start: hi
defaults: { language: en, timeout: 5s, retries: 2 }
steps:
  hi:
    play: welcome
    next: menu
  menu:
    menu:
      prompt: main_menu
      options:
        \"1\": { next: hours, reason: opening_hours }
        \"2\": bye
  hours:
    play: opening_hours_info
    next: more
  more:
    menu:
      prompt: anything_else
      options:
        \"9\": bye
  bye:
    hangup: goodbye
";

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hotline-replay-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("flows")).unwrap();
    d
}

/// The one call in the store, once its row has ended (the writer works on its own thread).
async fn finished_call(db: &Path) -> CallRecord {
    let deadline = std::time::Instant::now() + 30 * SECOND;
    loop {
        if let Ok(mut store) = hotline::records::sqlite::SqliteStore::open(db)
            && let Ok(calls) = store.calls(&CallFilter::default())
            && let Some(c) = calls.into_iter().find(|c| c.outcome.is_some())
        {
            return c;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no ended call in {}",
            db.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_call_replays_parts_on_an_edited_flow_and_becomes_a_test() {
    let dir = scratch("call");
    std::fs::write(dir.join("flows/main.yaml"), FLOW).unwrap();
    let db = dir.join("records.db");
    let yaml = format!(
        "sip: {{ listen: [\"udp:127.0.0.1:0\"] }}\nrtp: {{ ports: 48600-48639 }}\nprompts: {:?}\n\
flows: flows\ndata: data\nrecordings: recordings\nroutes: {{ \"hotline\": main }}\n\
records: {{ store: {:?} }}\n",
        repo().join("prompts").display().to_string(),
        db.display().to_string(),
    );
    let config_path = dir.join("hotline.yaml");
    std::fs::write(&config_path, yaml).unwrap();
    let cfg = Config::load(&config_path).unwrap();
    let srv = Server::start(cfg, 1).await.expect("server starts").spawn();

    // The caller: 1 during the menu, then 9 after "anything else"; the flow says goodbye.
    let (mut phone, media, _call) =
        common::call(common::addr(&srv, Protocol::Udp), "hotline").await;
    let w = hears(&media, "welcome", 0, 10 * SECOND).await;
    let m = hears(&media, "main_menu", w, 10 * SECOND).await;
    media.press_all("1", KeyMethod::Rfc4733);
    let h = hears(&media, "opening_hours_info", m, 10 * SECOND).await;
    let a = hears(&media, "anything_else", h, 10 * SECOND).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    media.press_all("9", KeyMethod::Rfc4733);
    hears(&media, "goodbye", a, 10 * SECOND).await;
    phone
        .expect_bye(30 * SECOND)
        .await
        .expect("the hotline hangs up");
    let record = finished_call(&db).await;
    drop(srv);
    assert!(
        record.outcome.is_some_and(|o| o != CallOutcome::Failed),
        "{record:?}"
    );
    assert_eq!(record.flow, "main");
    let id = record.call_id.clone();
    let config = config_path.display().to_string();

    // Unchanged: the same path.
    let (code, out, err) = hotline(&["replay", &id, "--config", &config]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("same path"), "{out}");
    assert!(out.contains("recorded"), "{out}");
    for line in [
        "step main/menu",
        "key 1 option -> hours",
        "key 9 option -> bye",
        "step main/bye",
    ] {
        assert!(out.contains(line), "'{line}' missing in:\n{out}");
    }

    // Edited: 1 now leads to goodbye; the paths part at that key.
    std::fs::create_dir_all(dir.join("edited")).unwrap();
    let edited = FLOW.replace("\"1\": { next: hours", "\"1\": { next: bye");
    std::fs::write(dir.join("edited/main.yaml"), edited).unwrap();
    let edited_flow = dir.join("edited/main.yaml").display().to_string();
    let (code, out, err) = hotline(&["replay", &id, "--config", &config, "--flow", &edited_flow]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("recorded 'key 1 option -> hours'")
            && out.contains("replayed 'key 1 option -> bye'"),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("  >")),
        "the row is marked:\n{out}"
    );

    // As a test: written, passing on the flow the call ran, and valid against the schema.
    let test = dir.join("complaint.yaml");
    let test_path = test.display().to_string();
    let (code, out, err) = hotline(&["replay", &id, "--config", &config, "--as-test", &test_path]);
    assert_eq!(code, 0, "{out}{err}");
    let text = std::fs::read_to_string(&test).unwrap();
    for line in [
        "hears: \"main_menu\"",
        "press: \"1\"",
        "press: \"9\"",
        "hangs_up: true",
        "opening_hours",
    ] {
        assert!(text.contains(line), "'{line}' missing in:\n{text}");
    }
    let (code, out, err) = hotline(&["test", "--config", &config, &test_path]);
    assert_eq!(code, 0, "{out}{err}\n{text}");
    assert!(out.contains("1 passed, 0 failed"), "{out}");
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("schemas/flow-test.schema.json")).unwrap(),
    )
    .unwrap();
    let doc: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}\n{text}");
    // The same test fails on the edited flow: the complaint is now a regression test.
    std::fs::create_dir_all(dir.join("edited-config")).unwrap();
    let edited_config = std::fs::read_to_string(&config_path).unwrap().replace(
        "flows: flows",
        &format!("flows: {:?}", dir.join("edited").display().to_string()),
    );
    let edited_config_path = dir.join("edited-config/hotline.yaml");
    std::fs::write(&edited_config_path, edited_config).unwrap();
    let (code, out, _) = hotline(&[
        "test",
        "--config",
        &edited_config_path.display().to_string(),
        &test_path,
    ]);
    assert_eq!(code, 1, "{out}");

    // A call that is not there.
    let (code, _, err) = hotline(&["replay", "no-such-call", "--config", &config]);
    assert_eq!(code, 2);
    assert!(err.contains("no call 'no-such-call'"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
