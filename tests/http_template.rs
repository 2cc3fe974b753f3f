//! An `http` step's URL on a live call, against a real HTTP server on loopback: values the
//! caller chooses (the number dialled, the From user) arrive percent-encoded, so a hostile
//! number cannot change the path or the query the back end sees, and a number of `..`
//! fails the request (to `on_error`) instead of climbing a path step.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::{SECOND, prompt, repo};
use hotline::config::{Config, Protocol};
use hotline::server::{RunningServer, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hotline-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("flows")).unwrap();
    d
}

async fn serve_flow(dir: &Path, flow: &str, extra_config: &str) -> RunningServer {
    std::fs::write(dir.join("flows/main.yaml"), flow).unwrap();
    std::fs::write(
        dir.join("hotline.yaml"),
        format!(
            "sip: {{ listen: [\"udp:127.0.0.1:0\"] }}\nrtp: {{ ports: 43400-43449 }}\nflows: flows\n\
prompts: {}\nrecordings: recordings\n{extra_config}",
            repo().join("prompts").display()
        ),
    )
    .unwrap();
    let cfg = Config::load(&dir.join("hotline.yaml")).unwrap();
    Server::start(cfg, 1).await.unwrap().spawn()
}

/// Answers every request with `{"status":"shipped"}` and remembers its request line.
async fn web_service() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let seen = seen2.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let Ok(n) = s.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                let text = String::from_utf8_lossy(&got).to_string();
                let line = text.lines().next().unwrap_or_default().to_string();
                seen.lock().unwrap().push(line);
                let body = r#"{"status":"shipped"}"#;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    (addr, seen)
}

const LOOKUP: &str = r#"
start: lookup
steps:
  lookup:
    http:
      url: "{{ config.crm_url }}/customers/{{ caller }}/orders/{{ dialed }}?src=ivr"
      timeout: 2s
      into: result
      next: status
      on_error: advisor
  status:
    branch:
      when: [{ if: 'result.status == "shipped"', next: shipped }]
      else: advisor
  shipped:
    hangup: order_noted
  advisor:
    hangup: advisors_busy
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_values_are_url_encoded_in_an_http_step() {
    let (web, seen) = web_service().await;
    let dir = scratch("http-template");
    let srv = serve_flow(
        &dir,
        LOOKUP,
        &format!("vars: {{ crm_url: \"http://{web}\" }}\n"),
    )
    .await;
    let sip = srv.server.addr(Protocol::Udp).unwrap();

    // A dialled number written to climb out of the path and add a query of its own.
    let (mut phone, media, _) = common::call(sip, "1/../../admin&x=1").await;
    media
        .wait_for_prompt(&prompt("en", "order_noted"), 0, 5 * SECOND)
        .await
        .expect("the lookup answers");
    phone.expect_bye(15 * SECOND).await.unwrap();
    let lines = seen.lock().unwrap().clone();
    assert_eq!(
        lines,
        ["GET /customers/%2B4930123456/orders/1%2F..%2F..%2Fadmin%26x%3D1?src=ivr HTTP/1.1"],
        "the caller's values must arrive encoded, each as one path segment"
    );

    // `..` cannot be encoded out of a URL parser's reach: the request is not sent.
    let (mut phone, media, _) = common::call(sip, "..").await;
    media
        .wait_for_prompt(&prompt("en", "advisors_busy"), 0, 5 * SECOND)
        .await
        .expect("a dot-segment number goes to on_error");
    phone.expect_bye(15 * SECOND).await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1, "no second request was sent");
    let _ = std::fs::remove_dir_all(&dir);
}
