//! Admission against a real engine on loopback: a full engine and a fast caller get 503
//! with Retry-After within milliseconds, every INVITE of a flood gets its own answer, the
//! admitted call goes on, and OPTIONS says 503 while new calls would be refused.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{SECOND, addr, call, server};
use hotline::config::Protocol;
use hotline::sip::message::{HeaderName, Limits, Message, parse};
use tokio::net::UdpSocket;

/// A request without a dialog from `sock`, as a proxy or a caller would send it.
fn request(sock: SocketAddr, method: &str, call_id: &str) -> Vec<u8> {
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
    let (ct, body) = if method == "INVITE" {
        ("Content-Type: application/sdp\r\n", sdp)
    } else {
        ("", "")
    };
    format!(
        "{method} sip:hotline@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP {sock};branch=z9hG4bK{call_id}\r\nMax-Forwards: 70\r\n\
From: <sip:load@127.0.0.1>;tag=f{call_id}\r\nTo: <sip:hotline@127.0.0.1>\r\n\
Call-ID: {call_id}\r\nCSeq: 1 {method}\r\nContact: <sip:load@{sock}>\r\n{ct}\
Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The final answers that arrive on `sock` within `wait`, by Call-ID: status and
/// Retry-After. Stops early once `want` Call-IDs have a final answer.
async fn finals(sock: &UdpSocket, want: usize, wait: Duration) -> HashMap<String, (u16, u32)> {
    let mut got = HashMap::new();
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = vec![0u8; 65536];
    while got.len() < want {
        let Ok(Ok(n)) = tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await else {
            break;
        };
        let Ok(Message::Response(r)) = parse(&buf[..n], &Limits::default()) else {
            continue;
        };
        if r.status < 200 {
            continue;
        }
        let retry = r
            .headers
            .get(HeaderName::new("Retry-After"))
            .and_then(|v| v.as_str())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let id = r.headers.call_id().expect("Call-ID").to_string();
        got.entry(id).or_insert((r.status, retry));
    }
    got
}

async fn udp_to(target: SocketAddr) -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    s.connect(target).await.unwrap();
    s
}

async fn options(sock: &UdpSocket, id: &str) -> (u16, u32) {
    let local = sock.local_addr().unwrap();
    sock.send(&request(local, "OPTIONS", id)).await.unwrap();
    *finals(sock, 1, 10 * SECOND)
        .await
        .get(id)
        .expect("OPTIONS answered")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_call_over_max_calls_gets_503_with_retry_after_while_the_admitted_call_goes_on() {
    common::logs();
    let srv = server(|c| c.max_calls = 1).await;
    let sip = addr(&srv, Protocol::Udp);
    let probe = udp_to(sip).await;
    assert_eq!(options(&probe, "probe-idle").await.0, 200);
    let (mut phone, media, mut established) = call(sip, "hotline").await;
    media
        .wait_for_prompt(&common::prompt("en", "welcome"), 0, 5 * SECOND)
        .await
        .expect("the admitted caller hears the welcome");

    let extra = udp_to(sip).await;
    let local = extra.local_addr().unwrap();
    let sent = Instant::now();
    extra
        .send(&request(local, "INVITE", "one-too-many"))
        .await
        .unwrap();
    let got = finals(&extra, 1, 10 * SECOND).await;
    let took = sent.elapsed();
    let (status, retry) = got["one-too-many"];
    assert_eq!(status, 503);
    assert!((5..=30).contains(&retry), "Retry-After {retry}");
    // Loopback on a loaded machine: milliseconds, with room for a stalled scheduler.
    assert!(took < Duration::from_secs(2), "answered after {took:?}");
    let (status, retry) = options(&probe, "probe-full").await;
    assert_eq!(status, 503, "OPTIONS while full");
    assert!((5..=30).contains(&retry));
    assert_eq!(
        srv.server
            .endpoint_stats
            .refused(hotline::sip::admission::Refusal::MaxCalls),
        1
    );

    // The admitted call is unaffected: it still hears its menu after the refusal.
    let heard = media.heard_len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        media.heard_len() > heard,
        "the admitted call's audio goes on"
    );
    let bye = phone.hang_up(&mut established).await.expect("BYE answered");
    assert_eq!(bye.status, 200);
    common::bridge::wait_until("the call is over", 10 * SECOND, || srv.active_calls() == 0).await;
    assert_eq!(
        options(&probe, "probe-free").await.0,
        200,
        "OPTIONS once a call ended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_above_the_rate_gets_one_503_per_invite_and_none_is_dropped() {
    let srv = server(|c| {
        c.admission.calls_per_second = 1.0;
        c.admission.burst = 2;
    })
    .await;
    let sip = addr(&srv, Protocol::Udp);
    let sock = udp_to(sip).await;
    let local = sock.local_addr().unwrap();
    const FLOOD: usize = 150;
    for i in 0..FLOOD {
        sock.send(&request(local, "INVITE", &format!("flood-{i}")))
            .await
            .unwrap();
    }
    let got = finals(&sock, FLOOD, 30 * SECOND).await;
    assert_eq!(got.len(), FLOOD, "every INVITE answered");
    let refused: Vec<u32> = got
        .values()
        .filter(|(s, _)| *s == 503)
        .map(|(_, r)| *r)
        .collect();
    // Two taken by the burst, perhaps one more refilled during the flood; the rest refused
    // for the rate, with a short Retry-After.
    assert!(refused.len() >= FLOOD - 3, "{} refused", refused.len());
    assert!(refused.iter().all(|r| (1..=5).contains(r)), "{refused:?}");
    // The endpoint publishes its counters after it has sent what a turn produced: the
    // last 503 may arrive a moment before its count.
    let counted = || {
        srv.server
            .endpoint_stats
            .refused(hotline::sip::admission::Refusal::Rate) as usize
    };
    common::bridge::wait_until("every refusal counted", 10 * SECOND, || {
        counted() >= refused.len()
    })
    .await;
    assert_eq!(counted(), refused.len());
    let text = srv.server.deps.metrics().render(&hotline::metrics::Scrape {
        calls_active: 0,
        media: &[],
        records: &Default::default(),
        queues: None,
        resources: srv.server.deps.resources(),
    });
    assert!(
        text.contains(&format!(
            "hotline_calls_refused_total{{reason=\"rate\"}} {}\n",
            refused.len()
        )),
        "{text}"
    );
    let (status, retry) = options(&sock, "probe-rate").await;
    assert_eq!(status, 503, "OPTIONS while the bucket is empty");
    assert!((1..=5).contains(&retry));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_engine_refuses_new_calls_and_options() {
    let srv = server(|_| {}).await;
    let sip = addr(&srv, Protocol::Udp);
    srv.server.control.drain();
    let sock = udp_to(sip).await;
    let local = sock.local_addr().unwrap();
    let mut status = (0, 0);
    // The drain is a message to the endpoint task: give it a moment to arrive.
    for i in 0..50 {
        status = options(&sock, &format!("probe-{i}")).await;
        if status.0 == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status.0, 503);
    assert!((60..=120).contains(&status.1), "Retry-After {}", status.1);
    sock.send(&request(local, "INVITE", "while-draining"))
        .await
        .unwrap();
    let got = finals(&sock, 1, 10 * SECOND).await;
    let (s, retry) = got["while-draining"];
    assert_eq!(s, 503);
    assert!((60..=120).contains(&retry));
}

/// `hotline load --recovery-calls` against an engine admitting 4 new calls a second, with
/// 16 calls offered at 32 a second: the calls over the rate are refused with 503 and a
/// Retry-After (counted apart, none failed, none left unanswered), the admitted ones lose
/// no key, and once the offered load drops, calls placed after the longest Retry-After
/// are all served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_tool_counts_refusals_and_service_returns_after_one_retry_after() {
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        load: hotline_load::load::LoadArgs,
    }
    let srv = server(|c| {
        c.admission.calls_per_second = 4.0;
        c.admission.burst = 4;
    })
    .await;
    let sip = addr(&srv, Protocol::Udp).to_string();
    let config = common::repo().join("hotline.yaml");
    let cli = <Cli as clap::Parser>::try_parse_from([
        "load",
        "--target",
        sip.as_str(),
        "--calls",
        "16",
        "--rate",
        "32",
        "--hold",
        "9",
        "--recovery-calls",
        "3",
        "--recovery-rate",
        "4",
        "--config",
        config.to_str().expect("a UTF-8 path"),
    ])
    .expect("the load tool's options");
    let s = hotline_load::load::measure(cli.load)
        .await
        .expect("the load run");
    let report = s.table();
    assert_eq!(s.calls_attempted, 16, "{report}");
    assert_eq!(s.calls_failed, 0, "{report}");
    assert_eq!(s.calls_set_up + s.calls_refused, 16, "{report}");
    assert!(s.calls_set_up >= 4, "the burst is admitted: {report}");
    assert!(
        s.calls_refused >= 4,
        "the calls over the rate are refused: {report}"
    );
    let (lo, hi) = s.retry_after_s.expect("the refusals carry Retry-After");
    assert!(
        1 <= lo && hi <= 5,
        "the rate's Retry-After is 1-5 s: {report}"
    );
    assert_eq!(s.keys_lost, 0, "{report}");
    let r = s.recovery.as_ref().expect("the recovery calls ran");
    assert_eq!((r.calls, r.set_up, r.refused), (3, 3, 0), "{report}");
    assert!(r.waited_s <= f64::from(hi) + 0.5, "{report}");
    assert!(
        s.verdicts.iter().all(|v| !v.contains("refused")),
        "{report}"
    );
}
