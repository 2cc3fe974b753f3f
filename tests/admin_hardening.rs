//! The admin server's door on a real hotline on loopback, spoken to in raw HTTP so every
//! header is the test's: a `Host` that is not this server's (DNS rebinding) is refused
//! even with the token, a name listed in `admin.hosts` is not; a request from another
//! site's page (`Origin`) cannot reload or pause, and changes nothing; bodies over the
//! limit are refused, with a length or chunked; the refusals are counted in the metrics;
//! and an admin server on an address other hosts reach does not start without a token.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use hotline::config::{AdminConfig, Config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "hardening-token";
const LIMIT: Duration = Duration::from_secs(30);

const QUEUES: &str = "
queues:
  support: { service_level: 15s }
agents:
  carol: { uri: \"sip:carol@127.0.0.1:5999\", queues: { support: 0 } }
";

fn with_admin(cfg: &mut Config) {
    let q = Config::from_str_at(QUEUES, &common::repo().join("hotline.yaml")).expect("queues");
    cfg.queues = q.queues;
    cfg.agents = q.agents;
    cfg.admin = Some(AdminConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        token: Some(TOKEN.into()),
        hosts: vec!["wallboard.example.org".into()],
    });
}

/// Sends `head` (request line and headers, without the blank line) and `body` as they
/// are; returns the status and the whole answer.
async fn raw(admin: SocketAddr, head: &str, body: &[u8]) -> (u16, String) {
    let work = async {
        let mut s = tokio::net::TcpStream::connect(admin)
            .await
            .expect("connect");
        let mut req = format!("{head}\r\nConnection: close\r\n\r\n").into_bytes();
        req.extend_from_slice(body);
        // The server may answer and close before reading a refused body to its end.
        let _ = s.write_all(&req).await;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status in {text:?}"));
        (status, text)
    };
    tokio::time::timeout(LIMIT, work)
        .await
        .expect("an answer in time")
}

async fn version(admin: SocketAddr) -> u64 {
    let (status, text) = raw(
        admin,
        &format!("GET /health HTTP/1.1\r\nHost: {admin}\r\nAuthorization: Bearer {TOKEN}"),
        b"",
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let body = text.split("\r\n\r\n").nth(1).expect("a body");
    let v: serde_json::Value = serde_json::from_str(body).expect("JSON");
    v["version"].as_u64().expect("a version")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_hosts_origins_and_big_bodies_are_refused() {
    let srv = common::server(with_admin).await;
    let admin = srv.server.admin_addr().expect("admin");
    let port = admin.port();
    let auth = format!("Authorization: Bearer {TOKEN}");

    // Host: this server's address, localhost, a listed name; not a rebound name.
    for host in [
        admin.to_string(),
        format!("localhost:{port}"),
        format!("wallboard.example.org:{port}"),
        "127.0.0.1".to_owned(),
    ] {
        let (status, text) = raw(
            admin,
            &format!("GET /calls HTTP/1.1\r\nHost: {host}\r\n{auth}"),
            b"",
        )
        .await;
        assert_eq!(status, 200, "{host}: {text}");
    }
    for host in [
        format!("rebound.example.net:{port}"),
        "192.0.2.1".to_owned(),
    ] {
        let (status, text) = raw(
            admin,
            &format!("GET /calls HTTP/1.1\r\nHost: {host}\r\n{auth}"),
            b"",
        )
        .await;
        assert_eq!(status, 403, "{host}: {text}");
        assert!(text.contains("does not answer to that Host"), "{text}");
    }
    // HTTP/1.0 may leave the Host out; the door does not guess.
    let (status, _) = raw(admin, &format!("GET /calls HTTP/1.0\r\n{auth}"), b"").await;
    assert_eq!(status, 403);

    // Origin: another site's page cannot reload flows or pause agents, even when the
    // browser would send the token along; the page from this server can.
    for origin in [
        "http://evil.example",
        "null",
        &format!("http://localhost:{}", port + 1),
    ] {
        for path in ["/reload", "/agents/carol/logout"] {
            let (status, text) = raw(
                admin,
                &format!("POST {path} HTTP/1.1\r\nHost: {admin}\r\nOrigin: {origin}\r\n{auth}\r\nContent-Length: 0"),
                b"",
            )
            .await;
            assert_eq!(status, 403, "{origin} {path}: {text}");
        }
    }
    assert_eq!(version(admin).await, 1, "the refused reload did not run");
    let (status, text) = raw(
        admin,
        &format!("POST /reload HTTP/1.1\r\nHost: {admin}\r\nOrigin: http://{admin}\r\n{auth}\r\nContent-Length: 0"),
        b"",
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(version(admin).await, 2);

    // Bodies: a reason of 100 characters is fine, 64 KiB is refused, by its length or
    // chunked (then as it is read).
    let small = br#"{"reason": "lunch"}"#;
    let (status, text) = raw(
        admin,
        &format!(
            "POST /agents/carol/login HTTP/1.1\r\nHost: {admin}\r\n{auth}\r\nContent-Length: 0"
        ),
        b"",
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let (status, text) = raw(
        admin,
        &format!("POST /agents/carol/pause HTTP/1.1\r\nHost: {admin}\r\n{auth}\r\nContent-Type: application/json\r\nContent-Length: {}", small.len()),
        small,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let big = format!(r#"{{"reason": "{}"}}"#, "x".repeat(64 * 1024));
    let (status, text) = raw(
        admin,
        &format!("POST /agents/carol/pause HTTP/1.1\r\nHost: {admin}\r\n{auth}\r\nContent-Type: application/json\r\nContent-Length: {}", big.len()),
        big.as_bytes(),
    )
    .await;
    assert_eq!(status, 413, "{text}");
    let chunked = format!("{:x}\r\n{big}\r\n0\r\n\r\n", big.len());
    let (status, text) = raw(
        admin,
        &format!("POST /agents/carol/pause HTTP/1.1\r\nHost: {admin}\r\n{auth}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked"),
        chunked.as_bytes(),
    )
    .await;
    assert_eq!(status, 413, "{text}");

    // Each refusal is counted by reason.
    let (status, text) = raw(
        admin,
        &format!("GET /metrics HTTP/1.1\r\nHost: {admin}\r\n{auth}"),
        b"",
    )
    .await;
    assert_eq!(status, 200);
    let count = |reason: &str| -> f64 {
        let prefix = format!("hotline_admin_refused_total{{reason=\"{reason}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in the metrics"))
    };
    assert_eq!(count("foreign_host"), 2.0);
    assert_eq!(count("no_host"), 1.0);
    assert_eq!(count("foreign_origin"), 6.0);
    assert_eq!(
        count("body_too_large"),
        1.0,
        "a chunked body is cut by the handler's limit"
    );

    // No token on an address other hosts can reach: the server does not start.
    let open = AdminConfig {
        listen: "0.0.0.0:0".parse().expect("addr"),
        token: None,
        hosts: Vec::new(),
    };
    let refused = hotline::admin::start(&open, srv.server.deps.clone()).await;
    let err = refused.err().expect("refused without a token");
    assert!(err.to_string().contains("without a token"), "{err}");
}
