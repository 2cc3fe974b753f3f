//! The admin API's OpenAPI document against a real hotline on loopback: served at
//! `/openapi.json` (behind the token), every documented path and method answered, every
//! real answer valid against the document's schema for its path and status (with fields
//! the document does not name counted as errors), and no route of the router missing
//! from the document.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::server;
use hotline::config::{AdminConfig, Config, RecordsConfig, RecordsStore};
use serde_json::{Value, json};

const TOKEN: &str = "openapi-token";

const QUEUES: &str = "
queues:
  support: { service_level: 15s }
agents:
  carol: { uri: \"sip:carol@127.0.0.1:5999\", queues: { support: 0 } }
  alice: { password: s3cret, queues: { support: 1 } }
";

/// Generous: a loaded machine may be slow, but a hung server must still fail the test.
const LIMIT: Duration = Duration::from_secs(30);

/// The schema of a response in `doc`, as a standalone schema whose `$ref`s resolve. Objects
/// with named properties get `additionalProperties: false`, so a field the handler writes
/// and the document does not name fails too.
fn response_schema(doc: &Value, path: &str, method: &str, status: u16) -> Value {
    media_schema(doc, path, method, status, "application/json")
}

fn media_schema(doc: &Value, path: &str, method: &str, status: u16, media: &str) -> Value {
    let response = &doc["paths"][path][method]["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{method} {path} {status} is not documented"
    );
    let schema = response["content"][media]["schema"].clone();
    assert!(
        !schema.is_null(),
        "{method} {path} {status} has no JSON body"
    );
    let mut components = doc["components"].clone();
    close_objects(&mut components);
    let mut root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": components,
    });
    let mut schema = schema;
    close_objects(&mut schema);
    if let (Some(root), Some(s)) = (root.as_object_mut(), schema.as_object()) {
        root.extend(s.clone());
    }
    root
}

fn close_objects(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if m.contains_key("properties") && !m.contains_key("additionalProperties") {
                m.insert("additionalProperties".into(), Value::Bool(false));
            }
            m.values_mut().for_each(close_objects);
        }
        Value::Array(a) => a.iter_mut().for_each(close_objects),
        _ => {}
    }
}

struct Api {
    admin: SocketAddr,
    client: reqwest::Client,
    doc: Value,
    /// (template path, method) pairs answered with a 2xx.
    covered: BTreeSet<(String, String)>,
}

impl Api {
    /// Sends, checks the status, and validates the body against the document.
    async fn check(
        &mut self,
        method: &str,
        path: &str,
        template: &str,
        body: Option<&str>,
        want: u16,
    ) -> Value {
        let url = format!("http://{}{path}", self.admin);
        let mut req = match method {
            "get" => self.client.get(url),
            "post" => self.client.post(url),
            other => panic!("{other}"),
        }
        .bearer_auth(TOKEN)
        .timeout(LIMIT);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        assert_eq!(status, want, "{method} {path}: {text}");
        let value: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
        let schema = response_schema(&self.doc, template, method, status);
        let validator = jsonschema::draft202012::new(&schema)
            .unwrap_or_else(|e| panic!("{method} {template} {status}: bad schema: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {path} {status} does not match the document: {errors:?}\n{value:#}"
        );
        if (200..300).contains(&status) {
            self.covered
                .insert((template.to_owned(), method.to_owned()));
        }
        value
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_endpoint_answers_as_the_document_says() {
    let store = std::env::temp_dir().join(format!("hotline-openapi-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&store);
    let store_path = store.clone();
    let recordings =
        std::env::temp_dir().join(format!("hotline-openapi-rec-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&recordings);
    std::fs::create_dir_all(&recordings).expect("recordings dir");
    let wav = b"RIFF\x24\0\0\0WAVEfmt ".to_vec();
    std::fs::write(recordings.join("message.wav"), &wav).expect("a recording");
    let recordings_dir = recordings.clone();
    let srv = server(move |cfg: &mut Config| {
        cfg.recordings_dir = recordings_dir;
        let q = Config::from_str_at(QUEUES, &common::repo().join("hotline.yaml")).expect("queues");
        cfg.queues = q.queues;
        cfg.agents = q.agents;
        cfg.admin = Some(AdminConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            token: Some(TOKEN.into()),
            hosts: Vec::new(),
        });
        cfg.records = Some(RecordsConfig {
            store: RecordsStore::Sqlite(store_path),
            keep: Duration::from_secs(24 * 3600),
            webhook: None,
        });
    })
    .await;
    let admin = srv.server.admin_addr().expect("admin API");
    let client = hotline::webhook::client();

    // The document is served behind the token, and is the one the code generates.
    let r = client
        .get(format!("http://{admin}/openapi.json"))
        .timeout(LIMIT)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 401);
    let r = client
        .get(format!("http://{admin}/openapi.json"))
        .bearer_auth(TOKEN)
        .timeout(LIMIT)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.expect("JSON");
    assert_eq!(doc, hotline::admin::openapi::document());
    assert_eq!(doc["openapi"], "3.1.0");

    let mut api = Api {
        admin,
        client,
        doc: doc.clone(),
        covered: BTreeSet::new(),
    };

    // A call in progress and a caller waiting, so the lists are not empty.
    let sip = common::addr(&srv, hotline::config::Protocol::Udp);
    let (_phone, _media, _call) = common::call(sip, "100").await;
    let acd = srv.server.deps.acd().expect("queues started").clone();
    let (news, _news_rx) = tokio::sync::mpsc::unbounded_channel();
    let news = hotline::mailbox::Mailbox::wrapping(news, |n| n);
    // Carol is paused first, so the caller waits instead of ringing her.
    api.check(
        "post",
        "/agents/carol/pause",
        "/agents/{name}/{action}",
        Some(r#"{"reason": "lunch"}"#),
        200,
    )
    .await;
    acd.join("call-w", "support", 0, vec![], "+4930111", news)
        .await
        .expect("joins");

    let h = api.check("get", "/health", "/health", None, 200).await;
    assert_eq!(h["status"], "ok");
    let calls = api.check("get", "/calls", "/calls", None, 200).await;
    assert_eq!(calls["calls"].as_array().map(Vec::len), Some(1), "{calls}");
    api.check("get", "/flows", "/flows", None, 200).await;
    let q = api.check("get", "/queues", "/queues", None, 200).await;
    assert_eq!(q["queues"][0]["waiting"][0]["caller"], "+4930111", "{q}");
    api.check("get", "/queues/support", "/queues/{name}", None, 200)
        .await;
    api.check("get", "/queues/nope", "/queues/{name}", None, 404)
        .await;
    api.check("get", "/agents", "/agents", None, 200).await;
    api.check("get", "/agents/carol", "/agents/{name}", None, 200)
        .await;
    api.check("get", "/agents/nope", "/agents/{name}", None, 404)
        .await;
    let post = "/agents/{name}/{action}";
    api.check("post", "/agents/carol/resume", post, None, 200)
        .await;
    api.check("post", "/agents/carol/logout", post, None, 200)
        .await;
    api.check("post", "/agents/carol/login", post, None, 200)
        .await;
    api.check("post", "/agents/alice/pause", post, None, 409)
        .await;
    api.check("post", "/agents/carol/nap", post, None, 404)
        .await;
    api.check("post", "/agents/carol/pause", post, Some("lunch"), 400)
        .await;
    let reloaded = api.check("post", "/reload", "/reload", None, 200).await;
    assert_eq!(reloaded["version"], 2, "{reloaded}");
    api.check("get", "/reports?since=7d", "/reports", None, 200)
        .await;
    api.check("get", "/reports?since=yesterday", "/reports", None, 400)
        .await;
    api.check("get", "/openapi.json", "/openapi.json", None, 200)
        .await;

    // The dashboard's data: the flows' graphs, the records and a recording.
    let g = api.check("get", "/graphs", "/graphs", None, 200).await;
    assert!(
        g["flows"][0]["svg"]
            .as_str()
            .is_some_and(|s| s.starts_with("<svg")),
        "{g}"
    );
    {
        use hotline::records::store::Store;
        let mut db = hotline::records::sqlite::SqliteStore::open(&store).expect("the store");
        db.migrate().expect("migrated");
        let now = hotline::records::report_cli::now_ms();
        let record = hotline::records::CallRecord {
            call_id: "rec-1".into(),
            kind: hotline::records::CallKind::Inbound,
            caller: "+4930222".into(),
            dialed: "100".into(),
            started_ms: now - 60_000,
            answered_ms: Some(now - 59_900),
            ended_ms: Some(now - 30_000),
            flow: "main".into(),
            flow_version: "1".into(),
            language: "en".into(),
            outcome: Some(hotline::records::CallOutcome::Voicemail),
            hung_up_by: None,
            last_step: Some("main/message".into()),
            reason: None,
            tags: vec![],
            queue: None,
            agent: None,
            wait_ms: None,
            talk_ms: None,
            survey: vec![],
            recordings: vec![
                hotline_core::record::RecordingRef {
                    path: recordings.join("message.wav").display().to_string(),
                    duration_ms: 1500,
                },
                hotline_core::record::RecordingRef {
                    path: recordings.join("../elsewhere.wav").display().to_string(),
                    duration_ms: 1500,
                },
            ],
        };
        let event = hotline::records::CallEvent {
            call_id: "rec-1".into(),
            seq: 0,
            at_ms: now - 59_000,
            kind: "step".into(),
            detail: json!({ "flow": "main", "step": "message" }),
        };
        db.finish(&record, &[event]).expect("written");
    }
    let list = api
        .check(
            "get",
            "/records?since=7d&caller=%2B4930222",
            "/records",
            None,
            200,
        )
        .await;
    assert_eq!(list["calls"][0]["call_id"], "rec-1", "{list}");
    api.check("get", "/records?outcome=happy", "/records", None, 400)
        .await;
    let one = api
        .check("get", "/records/rec-1", "/records/{call_id}", None, 200)
        .await;
    assert_eq!(one["events"][0]["kind"], "step", "{one}");
    assert_eq!(one["recordings"][0]["url"], "/records/rec-1/recordings/0");
    api.check("get", "/records/nope", "/records/{call_id}", None, 404)
        .await;
    let rec = "/records/{call_id}/recordings/{index}";
    let r = api
        .client
        .get(format!("http://{}/records/rec-1/recordings/0", api.admin))
        .bearer_auth(TOKEN)
        .timeout(LIMIT)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "audio/wav");
    assert_eq!(r.bytes().await.expect("body").to_vec(), wav);
    assert!(doc["paths"][rec]["get"]["responses"]["200"]["content"]["audio/wav"].is_object());
    api.covered.insert((rec.into(), "get".into()));
    // Out of the recordings folder, or past the call's recordings: not served.
    api.check("get", "/records/rec-1/recordings/1", rec, None, 404)
        .await;
    api.check("get", "/records/rec-1/recordings/2", rec, None, 404)
        .await;

    // The live view: one `now` event at once, its data as documented.
    let mut r = api
        .client
        .get(format!("http://{}/live", api.admin))
        .bearer_auth(TOKEN)
        .timeout(LIMIT)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = r
            .chunk()
            .await
            .expect("a chunk")
            .expect("more of the stream");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(r);
    assert!(text.starts_with("event: now\n"), "{text}");
    let data = text
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("a data line");
    let now: Value = serde_json::from_str(data).expect("JSON");
    assert_eq!(now["calls"].as_array().map(Vec::len), Some(1), "{now}");
    assert_eq!(
        now["queues"][0]["waiting"][0]["caller"], "+4930111",
        "{now}"
    );
    let schema = media_schema(&doc, "/live", "get", 200, "text/event-stream");
    let validator = jsonschema::draft202012::new(&schema).expect("schema");
    let errors: Vec<String> = validator.iter_errors(&now).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "the live view does not match the document: {errors:?}"
    );
    api.covered.insert(("/live".into(), "get".into()));

    // The page: the login form without the token, the dashboard with it; its files; the
    // login and logout.
    let page = |auth: bool| {
        let req = api
            .client
            .get(format!("http://{}/", api.admin))
            .timeout(LIMIT);
        if auth { req.bearer_auth(TOKEN) } else { req }
    };
    let text = page(false)
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    assert!(text.contains("action=\"/login\""), "{text}");
    let r = page(true).send().await.expect("request");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(r.text().await.expect("body").contains("/assets/app.js"));
    api.covered.insert(("/".into(), "get".into()));
    for (file, kind) in [("app.js", "text/javascript"), ("app.css", "text/css")] {
        let r = api
            .client
            .get(format!("http://{}/assets/{file}", api.admin))
            .timeout(LIMIT)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200, "{file}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
    }
    api.covered.insert(("/assets/{file}".into(), "get".into()));
    // The answers to the forms are redirects, looked at as they are.
    let plain = hotline::webhook::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let r = plain
        .post(format!("http://{}/login", api.admin))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={TOKEN}"))
        .timeout(LIMIT)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains(TOKEN), "{cookie}");
    let session = cookie.split(';').next().unwrap().to_owned();
    api.covered.insert(("/login".into(), "post".into()));
    let r = api
        .client
        .get(format!("http://{}/health", api.admin))
        .header("cookie", &session)
        .timeout(LIMIT)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200, "the session cookie stands for the token");
    let r = plain
        .post(format!("http://{}/logout", api.admin))
        .header("cookie", &session)
        .timeout(LIMIT)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    api.covered.insert(("/logout".into(), "post".into()));
    // The metrics are text, as the document says.
    let r = api
        .client
        .get(format!("http://{}/metrics", api.admin))
        .bearer_auth(TOKEN)
        .timeout(LIMIT)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"]
        .to_str()
        .expect("text")
        .to_owned();
    assert!(ct.starts_with("text/plain"), "{ct}");
    assert!(
        doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]["text/plain"].is_object()
    );
    assert!(
        r.text()
            .await
            .expect("body")
            .contains("hotline_calls_active")
    );
    api.covered.insert(("/metrics".into(), "get".into()));
    acd.input(hotline::queue::acd::Input::CallerLeft {
        call: "call-w".into(),
    });

    // Every documented operation was answered (with a 2xx) above.
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .expect("operations")
                .keys()
                .map(move |m| (p.clone(), m.clone()))
        })
        .collect();
    assert_eq!(api.covered, documented);
    drop(srv);
    let _ = std::fs::remove_file(&store);
    let _ = std::fs::remove_dir_all(&recordings);
}

/// Every route the admin modules register is in the document (a new endpoint needs its
/// entry in src/admin/openapi.rs), and the document names no other.
#[test]
fn every_route_of_the_router_is_documented() {
    let dir = common::repo().join("src/admin");
    let mut routes = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("src/admin") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable");
        for piece in text.split(".route(\"").skip(1) {
            let route = piece.split('"').next().expect("a quoted path");
            routes.insert(route.to_owned());
        }
    }
    let doc = hotline::admin::openapi::document();
    let documented: BTreeSet<String> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .cloned()
        .collect();
    assert!(routes.len() >= 10, "{routes:?}");
    assert_eq!(routes, documented, "routes (left) and the document (right)");
}

/// The components are what the handlers' types say: a sample of fields and their types.
#[test]
fn the_components_come_from_the_handlers_types() {
    let doc = hotline::admin::openapi::document();
    let schemas = &doc["components"]["schemas"];
    for name in [
        "Health",
        "Calls",
        "Flows",
        "Reloaded",
        "Refused",
        "Snapshot",
        "QueueSnapshot",
        "AgentList",
        "AgentSnapshot",
        "Report",
        "ErrorBody",
    ] {
        assert!(schemas[name].is_object(), "{name} missing");
    }
    assert_eq!(
        schemas["Health"]["properties"]["version"]["type"],
        "integer"
    );
    assert_eq!(
        schemas["Health"]["required"],
        json!(["status", "version", "calls"])
    );
    assert_eq!(schemas["ErrorBody"]["required"], json!(["error"]));
    // The check of real answers can fail: a field the document does not name, a wrong
    // type or a missing field is an error.
    let health = jsonschema::draft202012::new(&response_schema(&doc, "/health", "get", 200))
        .expect("schema");
    assert!(health.is_valid(&json!({ "status": "ok", "version": 1, "calls": 0 })));
    for wrong in [
        json!({ "status": "ok", "version": 1, "calls": 0, "uptime": 5 }),
        json!({ "status": "ok", "version": "1", "calls": 0 }),
        json!({ "status": "ok", "calls": 0 }),
    ] {
        assert!(!health.is_valid(&wrong), "{wrong}");
    }
    let params: Vec<&str> = doc["paths"]["/reports"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for p in [
        "since",
        "until",
        "flow",
        "queue",
        "format",
        "table",
        "time_zone",
    ] {
        assert!(params.contains(&p), "{p} in {params:?}");
    }
}
