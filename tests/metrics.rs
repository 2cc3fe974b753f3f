//! `GET /metrics` on a real hotline on loopback, read over HTTP and parsed with a
//! Prometheus text-format parser: a call refused (no route), a caller who presses a key
//! (RFC 4733) and is served in self-service, one who presses wrong keys (a tone, then SIP
//! INFO) and hangs up in the menu, one who waits in a queue and hangs up there, a reload
//! made live and one refused. The counters move as those calls and reloads say, with
//! records switched off; the token is asked for.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{SECOND, prompt, repo};
use hotline::config::{Config, Protocol};
use hotline::server::Server;
use hotline::sip::message::Method;
use hotline_load::caller::{CallMedia, KeyMethod, Offer, Phone};
use prometheus_parse::{Scrape, Value};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const TOKEN: &str = "metrics-scrape-token";

/// A menu whose one option is the answer the caller came for.
const MENU_FLOW: &str = "start: menu
defaults: { timeout: 20s, retries: 5 }
steps:
  menu:
    menu:
      prompt: main_menu
      options:
        \"1\": told
      invalid: invalid_option
      on_failure: hangup
  told:
    play: shipping_info
    resolved: shipping
    next: hangup
";

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn setup() -> (TempDir, Config) {
    let dir = std::env::temp_dir().join(format!("hotline-metrics-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("flows")).expect("temp dir");
    std::fs::write(dir.join("flows/menu.yaml"), MENU_FLOW).expect("menu flow");
    std::fs::write(dir.join("flows/line.yaml"), common::QUEUE_FLOW).expect("queue flow");
    std::fs::write(
        dir.join("hotline.yaml"),
        format!(
            "sip: {{ listen: [\"udp:127.0.0.1:0\"] }}\nrtp: {{ ports: 47400-47439 }}\n\
flows: flows\nprompts: {}\ndata: data\n\
routes: {{ menu: menu, queue: line }}\n\
admin: {{ listen: \"127.0.0.1:0\", token: {TOKEN} }}\n\
queues:\n  support: {{ music: hold_music }}\n\
agents:\n  alice: {{ password: alice-secret, queues: {{ support: 0 }} }}\n",
            repo().join("prompts").display()
        ),
    )
    .expect("hotline.yaml");
    let cfg = Config::load(&dir.join("hotline.yaml")).expect("config");
    (TempDir(dir), cfg)
}

/// One scrape, parsed: every sample's value by its name and labels.
struct Metrics(Scrape);

impl Metrics {
    /// The value of the sample `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<f64> = self
            .0
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
                Value::Histogram(_) | Value::Summary(_) => f64::NAN,
            })
            .collect();
        assert_eq!(found.len(), 1, "one sample {name}{labels:?}");
        found[0]
    }

    /// How many observations a histogram's series holds (none before the first).
    fn histogram_count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let count = format!("{name}_count");
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == count)
            .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map_or(0.0, |s| match &s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
                _ => f64::NAN,
            })
    }
}

async fn scrape(admin: SocketAddr) -> (Metrics, String) {
    let r = hotline::webhook::client()
        .get(format!("http://{admin}/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = r.text().await.expect("body");
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let parsed = Scrape::parse(lines).expect("the Prometheus text format");
    (Metrics(parsed), text)
}

/// Scrapes until `ok` holds (what it waits for happens on other tasks), or fails showing
/// the last scrape.
async fn scrape_until(admin: SocketAddr, what: &str, ok: impl Fn(&Metrics) -> bool) -> Metrics {
    let deadline = Instant::now() + 20 * SECOND;
    loop {
        let (m, text) = scrape(admin).await;
        if ok(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "never {what}:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn reload(admin: SocketAddr) -> u16 {
    hotline::webhook::client()
        .post(format!("http://{admin}/reload"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_calls_keys_queues_and_reloads() {
    common::logs();
    let (dir, cfg) = setup();
    let srv = Server::start(cfg, 1).await.expect("server").spawn();
    let admin = srv.server.admin_addr().expect("admin API");
    let sip = srv.server.addr(Protocol::Udp).expect("sip");

    // The token is asked for here as everywhere in the admin API.
    let r = hotline::webhook::client()
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 401);
    let r = hotline::webhook::client()
        .get(format!("http://{admin}/metrics"))
        .bearer_auth("wrong")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 401);

    // Before any call: every outcome, key source and reload result shows, at zero.
    let (m, text) = scrape(admin).await;
    for outcome in [
        "self_service",
        "agent",
        "abandoned_in_menu",
        "abandoned_in_queue",
        "callback",
        "voicemail",
        "transferred",
        "failed",
        "interrupted",
    ] {
        assert_eq!(
            m.value("hotline_calls_total", &[("outcome", outcome)]),
            0.0,
            "{outcome}"
        );
    }
    for source in ["rfc4733", "inband", "info"] {
        assert_eq!(
            m.value("hotline_dtmf_keys_total", &[("source", source)]),
            0.0
        );
    }
    assert_eq!(m.value("hotline_calls_active", &[]), 0.0);
    assert_eq!(
        m.value("hotline_queue_waiting", &[("queue", "support")]),
        0.0
    );
    assert_eq!(
        m.value(
            "hotline_agents",
            &[("queue", "support"), ("state", "logged_out")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "hotline_agents",
            &[("queue", "support"), ("state", "available")]
        ),
        0.0
    );
    assert_eq!(
        m.value("hotline_queue_wait_seconds_count", &[("queue", "support")]),
        0.0
    );
    assert_eq!(m.value("hotline_records_pending", &[]), 0.0);
    assert_eq!(m.value("hotline_records_errors_total", &[]), 0.0);
    for kind in [
        "# TYPE hotline_calls_total counter\n",
        "# TYPE hotline_calls_active gauge\n",
        "# TYPE hotline_queue_wait_seconds histogram\n",
        "# TYPE hotline_rtp_packets_total counter\n",
    ] {
        assert!(text.contains(kind), "{kind}{text}");
    }

    // 0. A number with no route: refused, and counted as failed though it ran no flow.
    let mut phone = Phone::new(Protocol::Udp, sip).await.expect("phone");
    let media = CallMedia::bind(LOCALHOST, true).expect("media");
    assert!(phone.call("nowhere", &media, Offer::Default).await.is_err());
    let m = scrape_until(admin, "counted the refused call", |m| {
        m.value("hotline_calls_total", &[("outcome", "failed")]) == 1.0
    })
    .await;
    assert!(
        m.value(
            "hotline_sip_responses_total",
            &[("code", "404"), ("direction", "sent")]
        ) >= 1.0
    );
    assert_eq!(m.value("hotline_calls_active", &[]), 0.0);

    // 1. A key by RFC 4733 picks the answer; the flow hangs up: self-service.
    let (mut phone, media, _c) = common::call(sip, "menu").await;
    media
        .wait_for_prompt(&prompt("en", "main_menu"), 0, 10 * SECOND)
        .await
        .expect("the menu");
    let during = scrape(admin).await.0;
    assert_eq!(during.value("hotline_calls_active", &[]), 1.0);
    media.press_all("1", KeyMethod::Rfc4733);
    phone
        .expect_bye(30 * SECOND)
        .await
        .expect("the flow hangs up");
    let m = scrape_until(admin, "counted a self-service call", |m| {
        m.value("hotline_calls_total", &[("outcome", "self_service")]) == 1.0
    })
    .await;
    assert_eq!(
        m.value("hotline_dtmf_keys_total", &[("source", "rfc4733")]),
        1.0
    );

    // 2. Wrong keys, as a tone and by SIP INFO, then the caller hangs up in the menu.
    let (mut phone, media, mut call) = common::call(sip, "menu").await;
    media
        .wait_for_prompt(&prompt("en", "main_menu"), 0, 10 * SECOND)
        .await
        .expect("the menu");
    let invalid = prompt("en", "invalid_option");
    media.press_all("7", KeyMethod::Inband);
    let heard = media
        .wait_for_prompt(&invalid, 0, 10 * SECOND)
        .await
        .expect("the tone is heard");
    let info = phone.in_dialog_text(
        &mut call,
        "INFO",
        "Content-Type: application/dtmf-relay\r\n",
        "Signal=8\r\nDuration=160\r\n",
    );
    phone.send_raw(info.as_bytes()).await.expect("INFO sent");
    let r = phone
        .response(&call.call_id, &Method::Info, 200, 10 * SECOND)
        .await
        .expect("INFO answered");
    assert_eq!(r.status, 200);
    media
        .wait_for_prompt(&invalid, heard + 1, 10 * SECOND)
        .await
        .expect("the INFO key is heard");
    phone.hang_up(&mut call).await.expect("BYE answered");
    let m = scrape_until(admin, "counted a hang-up in the menu", |m| {
        m.value("hotline_calls_total", &[("outcome", "abandoned_in_menu")]) == 1.0
    })
    .await;
    assert_eq!(
        m.value("hotline_dtmf_keys_total", &[("source", "inband")]),
        1.0
    );
    assert_eq!(
        m.value("hotline_dtmf_keys_total", &[("source", "info")]),
        1.0
    );

    // 3. A caller waits in the queue (no agent is logged in), then hangs up there.
    let (mut phone, media, mut call) = common::call(sip, "queue").await;
    media
        .wait_for_prompt(&prompt("en", "hold_music"), 0, 10 * SECOND)
        .await
        .expect("hold music");
    let m = scrape_until(admin, "showed the caller waiting", |m| {
        m.value("hotline_queue_waiting", &[("queue", "support")]) == 1.0
    })
    .await;
    assert_eq!(
        m.histogram_count("hotline_queue_wait_seconds", &[("queue", "support")]),
        0.0
    );
    tokio::time::sleep(SECOND).await;
    phone.hang_up(&mut call).await.expect("BYE answered");
    let m = scrape_until(admin, "counted the caller who left the queue", |m| {
        m.value("hotline_calls_total", &[("outcome", "abandoned_in_queue")]) == 1.0
            && m.value("hotline_queue_waiting", &[("queue", "support")]) == 0.0
    })
    .await;
    assert_eq!(
        m.histogram_count("hotline_queue_wait_seconds", &[("queue", "support")]),
        1.0
    );
    assert_eq!(m.value("hotline_calls_active", &[]), 0.0);

    // What the three calls moved on the wire.
    let invites = m.value(
        "hotline_sip_requests_total",
        &[("method", "INVITE"), ("direction", "received")],
    );
    assert!(invites >= 3.0, "{invites} INVITEs");
    assert!(
        m.value(
            "hotline_sip_requests_total",
            &[("method", "BYE"), ("direction", "received")]
        ) >= 2.0
    );
    assert!(
        m.value(
            "hotline_sip_requests_total",
            &[("method", "BYE"), ("direction", "sent")]
        ) >= 1.0
    );
    assert!(
        m.value(
            "hotline_sip_responses_total",
            &[("code", "200"), ("direction", "sent")]
        ) >= 5.0,
        "a 200 for each INVITE and each caller's BYE"
    );
    assert!(
        m.value(
            "hotline_sip_responses_total",
            &[("code", "200"), ("direction", "received")]
        ) >= 1.0,
        "the caller answered the flow's BYE"
    );
    for direction in ["received", "sent"] {
        let n = m.value("hotline_rtp_packets_total", &[("direction", direction)]);
        assert!(n > 10.0, "{n} RTP packets {direction}");
    }
    assert_eq!(
        m.value("hotline_calls_total", &[("outcome", "failed")]),
        1.0
    );
    assert_eq!(m.value("hotline_calls_total", &[("outcome", "agent")]), 0.0);

    // 4. A reload made live, then an edit that breaks a flow, refused.
    assert_eq!(reload(admin).await, 200);
    std::fs::write(
        dir.0.join("flows/menu.yaml"),
        MENU_FLOW.replace("next: hangup", "next: nowhere"),
    )
    .expect("broken edit");
    assert_eq!(reload(admin).await, 422);
    let (m, _) = scrape(admin).await;
    assert_eq!(
        m.value("hotline_flow_reloads_total", &[("result", "ok")]),
        1.0
    );
    assert_eq!(
        m.value("hotline_flow_reloads_total", &[("result", "refused")]),
        1.0
    );
    drop(srv);
}
