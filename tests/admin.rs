//! The admin HTTP API on a real hotline on loopback, asked with a real HTTP client: the
//! token, the call in progress and where it is, `hotline check --impact` against it, a
//! reload through `POST /reload` that lists the call on a changed step, and a broken edit
//! refused with 422 while the running version keeps serving.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{SECOND, prompt, repo};
use hotline::admin::json;
use hotline::config::{Config, Protocol};
use hotline::server::Server;
use hotline_load::caller::{CallMedia, KeyMethod, Offer, Phone};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const TOKEN: &str = "s3cret-admin-token";

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A copy of the sample flow and a hotline.yaml with the admin API on a kernel-chosen
/// loopback port, behind a token.
fn setup(tag: &str) -> (TempDir, Config) {
    let dir = std::env::temp_dir().join(format!("hotline-admin-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("flows")).expect("temp dir");
    for f in ["main.yaml", "survey.yaml"] {
        std::fs::copy(repo().join("flows").join(f), dir.join("flows").join(f)).expect("copy");
    }
    std::fs::write(
        dir.join("hotline.yaml"),
        format!(
            "sip: {{ listen: [\"udp:127.0.0.1:0\"] }}\nrtp: {{ ports: 43100-43199 }}\n\
flows: flows\nprompts: {}\nadmin: {{ listen: \"127.0.0.1:0\", token: {TOKEN} }}\n{}",
            repo().join("prompts").display(),
            common::SAMPLE_TEST_CONFIG
        ),
    )
    .expect("hotline.yaml");
    let cfg = Config::load(&dir.join("hotline.yaml")).expect("config");
    (TempDir(dir), cfg)
}

fn client() -> reqwest::Client {
    hotline::webhook::client()
}

async fn get<T: serde::de::DeserializeOwned>(admin: SocketAddr, path: &str) -> T {
    let r = client()
        .get(format!("http://{admin}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200, "GET {path}");
    r.json().await.expect("json")
}

async fn post_reload(admin: SocketAddr) -> (u16, serde_json::Value) {
    let r = client()
        .post(format!("http://{admin}/reload"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("request");
    (r.status().as_u16(), r.json().await.expect("json"))
}

/// Waits until the call is listed at `step`.
async fn wait_for_step(admin: SocketAddr, call_id: &str, step: &str) -> json::CallInfo {
    let deadline = Instant::now() + 10 * SECOND;
    loop {
        let calls: json::Calls = get(admin, "/calls").await;
        if let Some(c) = calls.calls.iter().find(|c| c.call_id == call_id)
            && c.step == step
        {
            return c.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the call never showed at '{step}': {calls:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn hotline_check_impact(config: &Path, admin: SocketAddr, token: &str) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hotline"))
        .args(["check", "--impact", "--config"])
        .arg(config)
        .args(["--admin", &format!("http://{admin}")])
        .env("HOTLINE_ADMIN_TOKEN", token)
        .env("RUST_LOG", "off")
        .output()
        .expect("run hotline");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_impact_reload_and_refusal() {
    let (dir, cfg) = setup("calls");
    let config_path = dir.0.join("hotline.yaml");
    let srv = Server::start(cfg, 1).await.expect("server").spawn();
    let admin = srv.server.admin_addr().expect("admin API started");
    assert!(admin.ip().is_loopback());
    let sip = srv.server.addr(Protocol::Udp).expect("sip");

    // The token is checked on every request.
    let r = client()
        .get(format!("http://{admin}/health"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers().get("www-authenticate").map(|v| v.as_bytes()),
        Some(&b"Bearer"[..])
    );
    let r = client()
        .post(format!("http://{admin}/reload"))
        .bearer_auth("wrong")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 401);
    let health: json::Health = get(admin, "/health").await;
    assert_eq!(
        (health.status.as_str(), health.version, health.calls),
        ("ok", 1, 0)
    );

    let flows: json::Flows = get(admin, "/flows").await;
    assert_eq!(flows.version, 1);
    assert_eq!(
        flows
            .flows
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>(),
        ["main", "survey"]
    );
    assert!(flows.flows[0].steps.contains_key("main_menu"));
    assert!(!flows.loaded_at.is_empty());

    // A call chooses German during the welcome and waits in the main menu.
    let mut phone = Phone::new(Protocol::Udp, sip).await.expect("phone");
    let media = CallMedia::bind(LOCALHOST, true).expect("media");
    let mut call = phone
        .call("hotline", &media, Offer::Default)
        .await
        .expect("answered");
    media.connect(
        call.remote_rtp,
        call.codec,
        call.payload_type,
        call.telephone_event_pt,
    );
    media
        .wait_for_prompt(&prompt("en", "welcome"), 0, 5 * SECOND)
        .await
        .expect("hears the welcome");
    media.press_all("2", KeyMethod::Rfc4733);
    let listed = wait_for_step(admin, &call.call_id, "main_menu").await;
    assert_eq!(listed.caller, "+4930123456");
    assert_eq!(listed.dialed, "hotline");
    assert_eq!(
        (listed.flow.as_str(), listed.current_flow.as_str()),
        ("main", "main")
    );
    assert_eq!(listed.version, 1);
    assert!(!listed.fingerprint.is_empty());
    assert!(listed.elapsed_seconds >= 0.0 && !listed.started_at.is_empty());

    // The main menu changes on disk; --impact says so without reloading.
    let flow_file = dir.0.join("flows/main.yaml");
    let original = std::fs::read_to_string(&flow_file).expect("flow");
    let edited = original.replacen(
        "      on_failure: goodbye\n",
        "      on_failure: advisor\n",
        1,
    );
    assert_ne!(edited, original);
    std::fs::write(&flow_file, &edited).expect("edit");
    let (code, out, err) = hotline_check_impact(&config_path, admin, TOKEN);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&format!(
            "{} from +4930123456 at main/main_menu (changed): finishes on version 1",
            call.call_id
        )),
        "{out}"
    );
    assert!(
        out.contains("1 step(s) removed or changed:\n    main/main_menu (changed)"),
        "{out}"
    );
    let (code, _, err) = hotline_check_impact(&config_path, admin, "wrong");
    assert_ne!(code, 0);
    assert!(err.contains("401"), "{err}");
    let health: json::Health = get(admin, "/health").await;
    assert_eq!(health.version, 1, "--impact reloads nothing");

    // POST /reload makes the edit live and names the call on the changed step.
    let (status, body) = post_reload(admin).await;
    assert_eq!(status, 200, "{body}");
    let reloaded: json::Reloaded = serde_json::from_value(body).expect("reloaded");
    assert_eq!((reloaded.previous, reloaded.version), (1, 2));
    assert_eq!(reloaded.changed_steps.len(), 1, "{reloaded:?}");
    assert_eq!(reloaded.affected_calls.len(), 1);
    assert_eq!(reloaded.affected_calls[0].call_id, call.call_id);
    assert_eq!(
        reloaded.log,
        format!(
            "reload: version 1 → 2; 1 call in progress sits on changed steps: {} at main/main_menu (changed)",
            call.call_id
        )
    );
    // The call keeps its version.
    let calls: json::Calls = get(admin, "/calls").await;
    assert_eq!(calls.version, 2);
    assert_eq!(calls.calls[0].version, 1);

    // A broken edit: 422 with the diagnostics, and version 2 stays.
    std::fs::write(
        &flow_file,
        edited.replacen("on_failure: advisor", "on_failure: advisr", 1),
    )
    .expect("broken edit");
    let (status, body) = post_reload(admin).await;
    assert_eq!(status, 422, "{body}");
    let refused: json::Refused = serde_json::from_value(body).expect("refused");
    assert_eq!(refused.version, 2);
    let d = refused
        .diagnostics
        .iter()
        .find(|d| d.message == "no step named 'advisr'")
        .expect("the problem is named");
    assert_eq!(d.help.as_deref(), Some("did you mean 'advisor'?"));
    assert!(d.line > 0 && d.file.ends_with("main.yaml"));
    assert!(
        refused.text.starts_with("error: no step named 'advisr'\n"),
        "{}",
        refused.text
    );
    let flows: json::Flows = get(admin, "/flows").await;
    assert_eq!(flows.version, 2);
    // Health says the files on disk are not what runs, and why.
    let health: json::Health = get(admin, "/health").await;
    assert_eq!(health.status, "edits_refused");
    let refused = health.refused.expect("the refused edit");
    assert!(
        refused
            .errors
            .iter()
            .any(|e| e.message == "no step named 'advisr'"),
        "{:?}",
        refused.errors
    );

    // Files that cannot be good are refused quickly, and the server keeps serving.
    let bomb = std::fs::read_to_string(repo().join("tests/flows_bad/alias_bomb.yaml"))
        .expect("alias bomb");
    std::fs::write(&flow_file, bomb).expect("bomb");
    let huge = dir.0.join("flows/huge.yaml");
    std::fs::File::create(&huge)
        .and_then(|f| f.set_len(50 * 1024 * 1024))
        .expect("sparse 50 MB");
    let started = Instant::now();
    let (status, body) = post_reload(admin).await;
    assert!(
        started.elapsed() < 5 * SECOND,
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(status, 422, "{body}");
    let text = body["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("YAML aliases (*name) expand to too much for a flow file"),
        "{text}"
    );
    assert!(
        text.contains("the file is 52428800 bytes; a flow file may have at most"),
        "{text}"
    );
    std::fs::remove_file(&huge).expect("remove");
    std::fs::write(&flow_file, &edited).expect("restore");

    // A new call is served by version 2 (the broken edit never went live).
    let mut phone2 = Phone::new(Protocol::Udp, sip).await.expect("phone");
    let media2 = CallMedia::bind(LOCALHOST, true).expect("media");
    let call2 = phone2
        .call("hotline", &media2, Offer::Default)
        .await
        .expect("answered");
    let deadline = Instant::now() + 10 * SECOND;
    loop {
        let calls: json::Calls = get(admin, "/calls").await;
        if let Some(c) = calls.calls.iter().find(|c| c.call_id == call2.call_id) {
            assert_eq!(c.version, 2);
            break;
        }
        assert!(Instant::now() < deadline, "the second call is not listed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Ended calls leave the list.
    phone.hang_up(&mut call).await.expect("hang up");
    let deadline = Instant::now() + 10 * SECOND;
    loop {
        let calls: json::Calls = get(admin, "/calls").await;
        if !calls.calls.iter().any(|c| c.call_id == call.call_id) {
            break;
        }
        assert!(Instant::now() < deadline, "the ended call is still listed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The good files load again: health is ok.
    let (status, body) = post_reload(admin).await;
    assert_eq!(status, 200, "{body}");
    let health: json::Health = get(admin, "/health").await;
    assert_eq!(health.status, "ok");
    assert!(health.refused.is_none());
    drop(srv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_loopback_needs_none() {
    let (dir, mut cfg) = setup("open");
    if let Some(a) = cfg.admin.as_mut() {
        a.token = None;
    }
    let srv = Server::start(cfg, 1).await.expect("server").spawn();
    let admin = srv.server.admin_addr().expect("admin API");
    let r = client()
        .get(format!("http://{admin}/health"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let health: json::Health = r.json().await.expect("json");
    assert_eq!(health.version, 1);
    // An unknown path is a plain 404.
    let r = client()
        .get(format!("http://{admin}/nothing"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 404);
    drop(srv);
    drop(dir);
}
