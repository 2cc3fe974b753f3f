//! The queue endpoints of the admin API on a real hotline on loopback: the queues with
//! their waiting callers, agents and figures, one queue, the agents, and agent login,
//! logout, pause (with a reason) and resume; unknown names, refusals, the token, and a
//! hotline without queues.

mod common;

use std::net::SocketAddr;

use common::server;
use hotline::config::{AdminConfig, Config};
use serde_json::{Value, json};

const TOKEN: &str = "queue-admin-token";

const QUEUES: &str = "
queues:
  support: { service_level: 15s }
agents:
  carol: { uri: \"sip:carol@127.0.0.1:5999\", queues: { support: 0 } }
  alice: { password: s3cret, queues: { support: 1 } }
";

fn with_queues(cfg: &mut Config) {
    let q = Config::from_str_at(QUEUES, &common::repo().join("hotline.yaml")).expect("queues");
    cfg.queues = q.queues;
    cfg.agents = q.agents;
    with_admin(cfg);
}

fn with_admin(cfg: &mut Config) {
    cfg.admin = Some(AdminConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        token: Some(TOKEN.into()),
        hosts: Vec::new(),
    });
}

fn client() -> reqwest::Client {
    hotline::webhook::client()
}

async fn get(admin: SocketAddr, path: &str) -> (u16, Value) {
    let r = client()
        .get(format!("http://{admin}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("request");
    (r.status().as_u16(), r.json().await.expect("json"))
}

async fn post(admin: SocketAddr, path: &str, body: Option<&str>) -> (u16, Value) {
    let mut req = client()
        .post(format!("http://{admin}{path}"))
        .bearer_auth(TOKEN);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_owned());
    }
    let r = req.send().await.expect("request");
    (r.status().as_u16(), r.json().await.expect("json"))
}

fn agent<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == name))
        .unwrap_or_else(|| panic!("agent {name} in {list}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_agents_and_commands() {
    let srv = server(with_queues).await;
    let admin = srv.server.admin_addr().expect("admin API");

    // The token is checked here too.
    for path in ["/queues", "/agents"] {
        let r = client()
            .get(format!("http://{admin}{path}"))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 401, "{path}");
    }
    let r = client()
        .post(format!("http://{admin}/agents/carol/pause"))
        .bearer_auth("wrong")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 401);

    // The queue, its agents by state and its figures.
    let (status, all) = get(admin, "/queues").await;
    assert_eq!(status, 200, "{all}");
    let q = &all["queues"][0];
    assert_eq!(q["name"], "support");
    assert_eq!(q["strategy"], "longest_idle");
    assert_eq!(q["service_level_secs"], 15.0);
    assert_eq!(q["waiting"], json!([]));
    assert_eq!(agent(&q["agents"], "carol")["state"], "available");
    assert_eq!(agent(&q["agents"], "alice")["state"], "logged_out");
    assert_eq!(agent(&q["agents"], "alice")["penalty"], 1);
    let stats = &q["stats"];
    assert_eq!(
        (&stats["offered"], &stats["answered"], &stats["abandoned"]),
        (&json!(0), &json!(0), &json!(0))
    );
    for figure in [
        "service_level_percent",
        "average_speed_of_answer_secs",
        "average_handling_time_secs",
        "longest_wait_secs",
    ] {
        assert_eq!(stats[figure], Value::Null, "{figure} before any call");
    }
    let carol = agent(&all["agents"], "carol");
    assert_eq!(carol["contact"], "sip:carol@127.0.0.1:5999");
    assert!(carol["since_secs"].as_f64().is_some());

    let (status, one) = get(admin, "/queues/support").await;
    assert_eq!(status, 200);
    assert_eq!(one["name"], "support");
    let (status, err) = get(admin, "/queues/suport").await;
    assert_eq!(status, 404);
    assert_eq!(err["error"], "no queue named 'suport' (queues: support)");

    // Pause with a reason, shown with the time since.
    let (status, body) = post(admin, "/agents/carol/pause", Some(r#"{"reason": "lunch"}"#)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["state"], &body["reason"]),
        (&json!("paused"), &json!("lunch"))
    );
    let (_, agents) = get(admin, "/agents").await;
    let carol = agent(&agents["agents"], "carol");
    assert_eq!(
        (&carol["state"], &carol["reason"]),
        (&json!("paused"), &json!("lunch"))
    );
    let (_, one) = get(admin, "/agents/carol").await;
    assert_eq!(one["state"], "paused");

    // A caller waits while the only agent is paused: position, number and wait show.
    let acd = srv.server.deps.acd().expect("queues started").clone();
    let (news, _news_rx) = tokio::sync::mpsc::unbounded_channel();
    let news = hotline::mailbox::Mailbox::wrapping(news, |n| n);
    acd.join("call-1", "support", 0, vec![], "+4930111", news)
        .await
        .expect("joins");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (_, q) = get(admin, "/queues/support").await;
    let w = &q["waiting"][0];
    assert_eq!(
        (&w["position"], &w["call"], &w["caller"], &w["state"]),
        (
            &json!(1),
            &json!("call-1"),
            &json!("+4930111"),
            &json!("waiting")
        )
    );
    let waited = w["waited_secs"].as_f64().expect("wait");
    assert!(waited >= 0.2, "{waited}");
    assert!(q["stats"]["longest_wait_secs"].as_f64().expect("longest") >= waited);
    assert_eq!(q["stats"]["offered"], 1);
    assert_eq!(q["stats"]["waiting"], 1);
    acd.input(hotline::queue::acd::Input::CallerLeft {
        call: "call-1".into(),
    });
    let (_, q) = get(admin, "/queues/support").await;
    assert_eq!(q["waiting"], json!([]));
    assert_eq!(q["stats"]["abandoned"], 1);

    // Resume, logout, login; a pause without a body has the reason "admin".
    let (status, body) = post(admin, "/agents/carol/resume", None).await;
    assert_eq!((status, &body["state"]), (200, &json!("available")));
    assert_eq!(body["reason"], Value::Null);
    let (status, body) = post(admin, "/agents/carol/logout", None).await;
    assert_eq!((status, &body["state"]), (200, &json!("logged_out")));
    let (status, body) = post(admin, "/agents/carol/login", None).await;
    assert_eq!((status, &body["state"]), (200, &json!("available")));
    let (status, body) = post(admin, "/agents/carol/pause", None).await;
    assert_eq!((status, &body["reason"]), (200, &json!("admin")));

    // Refusals: 409 with the ACD's reason.
    let (status, body) = post(admin, "/agents/alice/pause", None).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "agent 'alice' is logged out");
    let (status, body) = post(admin, "/agents/alice/login", None).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("cannot be reached"),
        "{body}"
    );

    // Unknown agents and actions, and bodies that are not a reason.
    let (status, body) = post(admin, "/agents/dave/pause", None).await;
    assert_eq!(status, 404);
    assert_eq!(
        body["error"],
        "no agent named 'dave' (agents: alice, carol)"
    );
    let (status, _) = get(admin, "/agents/dave").await;
    assert_eq!(status, 404);
    let (status, body) = post(admin, "/agents/carol/nap", None).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = post(admin, "/agents/carol/pause", Some("lunch")).await;
    assert_eq!(status, 400, "{body}");
    drop(srv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_queues_the_endpoints_say_so() {
    let srv = server(with_admin).await;
    let admin = srv.server.admin_addr().expect("admin API");
    for path in ["/queues", "/queues/support", "/agents", "/agents/carol"] {
        let (status, body) = get(admin, path).await;
        assert_eq!(status, 503, "{path}");
        assert!(
            body["error"]
                .as_str()
                .unwrap_or_default()
                .starts_with("no agent queues are configured"),
            "{body}"
        );
    }
    let (status, _) = post(admin, "/agents/carol/pause", None).await;
    assert_eq!(status, 503);
    drop(srv);
}
