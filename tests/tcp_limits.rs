//! The SIP TCP listener's limits on a real hotline on loopback: connections that complete
//! no message within `limits.tcp_idle` (silent, half a message, a trickle) are closed
//! while a busy one stays; `limits.tcp_per_source` and `limits.tcp_connections` refuse the
//! connection over the cap (trusted addresses are exempt from the first); a message over
//! `limits.max_message` is answered 413 and its connection closed; an oversize datagram is
//! dropped unanswered. Short limits keep the test quick; every wait is bounded.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{SECOND, addr, server};
use hotline::config::{ConnectionLimits, Protocol};
use hotline::sip::message::{Frame, Limits, Message, StreamFramer, parse_bytes};
use hotline::sip::transport::TransportStats;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio::time::{Instant, timeout};

/// A source address on loopback that is not trusted (the default trusts 127.0.0.1 only).
const UNTRUSTED: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

fn options(call_id: &str, local: SocketAddr, server: SocketAddr, transport: &str) -> String {
    format!(
        "OPTIONS sip:hotline@{server} SIP/2.0\r\n\
Via: SIP/2.0/{transport} {local};branch=z9hG4bK{call_id}\r\nMax-Forwards: 70\r\n\
From: <sip:probe@{local}>;tag=p1\r\nTo: <sip:hotline@{server}>\r\n\
Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

async fn connect_from(from: IpAddr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    timeout(10 * SECOND, socket.connect(to))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// What a peer reads from a connection: the next response, or the end of the connection.
#[derive(Debug)]
enum Read {
    Status(u16, String),
    Closed,
    TimedOut,
}

struct Client {
    stream: TcpStream,
    framer: StreamFramer,
}

impl Client {
    fn new(stream: TcpStream) -> Client {
        Client {
            stream,
            framer: StreamFramer::new(Limits::default()),
        }
    }

    async fn send(&mut self, text: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(text).await
    }

    async fn read(&mut self, within: Duration) -> Read {
        let until = Instant::now() + within;
        let mut buf = [0u8; 4096];
        loop {
            while let Ok(Some(frame)) = self.framer.pop() {
                if let Frame::Message(bytes) = frame
                    && let Ok(Message::Response(r)) = parse_bytes(bytes, &Limits::default())
                {
                    let call_id = r.headers.call_id().unwrap_or_default().to_string();
                    return Read::Status(r.status, call_id);
                }
            }
            match tokio::time::timeout_at(until, self.stream.read(&mut buf)).await {
                Err(_) => return Read::TimedOut,
                Ok(Ok(0)) | Ok(Err(_)) => return Read::Closed,
                Ok(Ok(n)) => self.framer.push(&buf[..n]),
            }
        }
    }

    /// Sends an OPTIONS and expects its 200.
    async fn ping(&mut self, call_id: &str, server: SocketAddr) {
        let local = self.stream.local_addr().unwrap();
        let text = options(call_id, local, server, "TCP");
        self.send(text.as_bytes()).await.expect("send");
        match self.read(10 * SECOND).await {
            Read::Status(200, id) if id == call_id => {}
            other => panic!("{call_id}: expected 200, got {other:?}"),
        }
    }
}

/// Waits (bounded) until `f` holds on the transport's counters.
async fn until(stats: &TransportStats, what: &str, f: impl Fn(&TransportStats) -> bool) {
    let deadline = Instant::now() + 20 * SECOND;
    while !f(stats) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn limits(adjust: impl FnOnce(&mut ConnectionLimits)) -> ConnectionLimits {
    let mut l = ConnectionLimits::default();
    adjust(&mut l);
    l
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_without_a_complete_message_are_closed_after_tcp_idle() {
    common::logs();
    let idle = Duration::from_millis(1500);
    let srv = server(|c| c.connections = limits(|l| l.tcp_idle = idle)).await;
    let tcp = addr(&srv, Protocol::Tcp);
    let stats = srv.server.transport_stats.clone();
    let opened = Instant::now();

    let mut silent = Client::new(connect_from(UNTRUSTED, tcp).await);
    let mut half = Client::new(connect_from(UNTRUSTED, tcp).await);
    let local = half.stream.local_addr().unwrap();
    let text = options("half", local, tcp, "TCP");
    half.send(&text.as_bytes()[..text.len() / 2]).await.unwrap();
    let mut busy = Client::new(connect_from(UNTRUSTED, tcp).await);
    let mut trickle = Client::new(connect_from(UNTRUSTED, tcp).await);
    let local = trickle.stream.local_addr().unwrap();
    let drip = options("trickle", local, tcp, "TCP").into_bytes();

    // For three idle periods: the busy peer completes a message every third of one, the
    // trickling peer sends a byte as often and never completes its message.
    let mut i = 0;
    while opened.elapsed() < idle * 3 {
        busy.ping(&format!("busy{i}"), tcp).await;
        let _ = trickle.send(&drip[i % 40..i % 40 + 1]).await;
        i += 1;
        tokio::time::sleep(idle / 3).await;
    }
    for (name, c) in [
        ("silent", &mut silent),
        ("half", &mut half),
        ("trickle", &mut trickle),
    ] {
        match c.read(10 * SECOND).await {
            Read::Closed => {}
            other => panic!("{name}: expected the connection closed, got {other:?}"),
        }
    }
    busy.ping("busy-last", tcp).await;
    assert_eq!(stats.tcp_idle_closed.load(Ordering::Relaxed), 3);
    // None of them was closed before its idle time was up.
    assert!(opened.elapsed() >= idle);
    drop(busy);
    until(&stats, "every connection gone", |s| {
        s.tcp_open.load(Ordering::Relaxed) == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_gets_tcp_per_source_connections_and_trusted_ones_are_exempt() {
    common::logs();
    let srv = server(|c| c.connections = limits(|l| l.tcp_per_source = 3)).await;
    let tcp = addr(&srv, Protocol::Tcp);
    let stats = srv.server.transport_stats.clone();

    let mut open = Vec::new();
    for i in 0..3 {
        let mut c = Client::new(connect_from(UNTRUSTED, tcp).await);
        c.ping(&format!("ok{i}"), tcp).await;
        open.push(c);
    }
    let mut over = Client::new(connect_from(UNTRUSTED, tcp).await);
    let local = over.stream.local_addr().unwrap();
    let _ = over
        .send(options("over", local, tcp, "TCP").as_bytes())
        .await;
    match over.read(10 * SECOND).await {
        Read::Closed => {}
        other => panic!("the fourth connection: expected it closed, got {other:?}"),
    }
    assert_eq!(stats.tcp_per_source_refused.load(Ordering::Relaxed), 1);

    // The open ones still work; once one closes, its place is free again.
    open[0].ping("still", tcp).await;
    drop(open.remove(0));
    until(&stats, "the closed connection's place", |s| {
        s.tcp_open.load(Ordering::Relaxed) == 2
    })
    .await;
    let mut again = Client::new(connect_from(UNTRUSTED, tcp).await);
    again.ping("again", tcp).await;

    // 127.0.0.1 is trusted by default: no per-source cap.
    let mut trusted = Vec::new();
    for i in 0..5 {
        let mut c = Client::new(connect_from(IpAddr::V4(Ipv4Addr::LOCALHOST), tcp).await);
        c.ping(&format!("trusted{i}"), tcp).await;
        trusted.push(c);
    }
    assert_eq!(stats.tcp_per_source_refused.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_total_cap_refuses_connections_beyond_tcp_connections() {
    common::logs();
    let srv = server(|c| c.connections = limits(|l| l.tcp_connections = Some(4))).await;
    let tcp = addr(&srv, Protocol::Tcp);
    let stats = srv.server.transport_stats.clone();
    let mut open = Vec::new();
    for i in 0..4u8 {
        let from = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10 + i));
        let mut c = Client::new(connect_from(from, tcp).await);
        c.ping(&format!("total{i}"), tcp).await;
        open.push(c);
    }
    let mut over = Client::new(connect_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 20)), tcp).await);
    match over.read(10 * SECOND).await {
        Read::Closed => {}
        other => panic!("the fifth connection: expected it closed, got {other:?}"),
    }
    assert_eq!(stats.tcp_total_refused.load(Ordering::Relaxed), 1);
    assert_eq!(stats.tcp_open.load(Ordering::Relaxed), 4);
    open.clear();
    until(&stats, "every connection gone", |s| {
        s.tcp_open.load(Ordering::Relaxed) == 0
    })
    .await;
    let mut c = Client::new(connect_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 20)), tcp).await);
    c.ping("after", tcp).await;
}

fn invite_with_body(call_id: &str, local: SocketAddr, server: SocketAddr, body: &str) -> String {
    format!(
        "INVITE sip:hotline@{server} SIP/2.0\r\n\
Via: SIP/2.0/TCP {local};branch=z9hG4bK{call_id}\r\nMax-Forwards: 70\r\n\
From: <sip:big@{local}>;tag=b1\r\nTo: <sip:hotline@{server}>\r\n\
Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_message_over_max_message_is_answered_413_and_its_connection_closed() {
    common::logs();
    let srv = server(|_| {}).await;
    let tcp = addr(&srv, Protocol::Tcp);
    let stats = srv.server.transport_stats.clone();

    // A body that takes the message past 16 KiB.
    let mut c = Client::new(connect_from(UNTRUSTED, tcp).await);
    let local = c.stream.local_addr().unwrap();
    let text = invite_with_body("body413", local, tcp, &"a".repeat(20_000));
    let _ = c.send(text.as_bytes()).await;
    match c.read(10 * SECOND).await {
        Read::Status(413, id) if id == "body413" => {}
        other => panic!("expected 413, got {other:?}"),
    }
    match c.read(10 * SECOND).await {
        Read::Closed => {}
        other => panic!("expected the connection closed after the 413, got {other:?}"),
    }

    // A 64 KiB header after the ones a response copies: answered too.
    let mut c = Client::new(connect_from(UNTRUSTED, tcp).await);
    let local = c.stream.local_addr().unwrap();
    let text = options("header413", local, tcp, "TCP").replace(
        "Content-Length: 0\r\n",
        &format!(
            "Subject: {}\r\nContent-Length: 0\r\n",
            "s".repeat(64 * 1024)
        ),
    );
    let _ = c.send(text.as_bytes()).await;
    match c.read(10 * SECOND).await {
        Read::Status(413, id) if id == "header413" => {}
        other => panic!("expected 413, got {other:?}"),
    }
    assert!(matches!(c.read(10 * SECOND).await, Read::Closed));

    // A 64 KiB Via: nothing to address an answer to, so the connection just closes.
    let mut c = Client::new(connect_from(UNTRUSTED, tcp).await);
    let local = c.stream.local_addr().unwrap();
    let text = options("via", local, tcp, "TCP").replace(
        "Via: SIP/2.0/TCP",
        &format!("Via: SIP/2.0/TCP {}.example,", "v".repeat(64 * 1024)),
    );
    let _ = c.send(text.as_bytes()).await;
    match c.read(10 * SECOND).await {
        Read::Closed => {}
        other => panic!("expected the connection closed unanswered, got {other:?}"),
    }
    assert_eq!(stats.answered_413.load(Ordering::Relaxed), 2);
    assert_eq!(stats.tcp_oversize_closed.load(Ordering::Relaxed), 3);

    // Others are served as before.
    let mut c = Client::new(connect_from(UNTRUSTED, tcp).await);
    c.ping("after", tcp).await;
    assert_eq!(
        srv.server
            .endpoint_stats
            .active_calls
            .load(Ordering::Relaxed),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_datagram_is_dropped_unanswered_and_counted() {
    common::logs();
    let srv = server(|_| {}).await;
    let udp = addr(&srv, Protocol::Udp);
    let stats = srv.server.transport_stats.clone();
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = sock.local_addr().unwrap();
    let big = options("bigdgram", local, udp, "UDP").replace(
        "Content-Length: 0\r\n",
        &format!("Subject: {}\r\nContent-Length: 0\r\n", "s".repeat(20_000)),
    );
    sock.send_to(big.as_bytes(), udp).await.unwrap();
    until(&stats, "the oversize datagram counted", |s| {
        s.oversize_dropped.load(Ordering::Relaxed) == 1
    })
    .await;
    // The first answer the socket gets is the one to the next request: the big one had none.
    sock.send_to(options("small", local, udp, "UDP").as_bytes(), udp)
        .await
        .unwrap();
    let mut buf = vec![0u8; 65_536];
    let (n, _) = timeout(10 * SECOND, sock.recv_from(&mut buf))
        .await
        .expect("answered in time")
        .unwrap();
    let Ok(Message::Response(r)) = parse_bytes(buf[..n].to_vec().into(), &Limits::default()) else {
        panic!("a response");
    };
    assert_eq!(
        (r.status, r.headers.call_id().unwrap()),
        (200, "small"),
        "the oversize datagram was not answered"
    );
    // Exactly at the limit is still a message.
    let fits = options("fits", local, udp, "UDP");
    let pad = 16 * 1024 - fits.len() - "Subject: \r\n".len();
    let fits = fits.replace(
        "Content-Length: 0\r\n",
        &format!("Subject: {}\r\nContent-Length: 0\r\n", "s".repeat(pad)),
    );
    assert_eq!(fits.len(), 16 * 1024);
    sock.send_to(fits.as_bytes(), udp).await.unwrap();
    let (n, _) = timeout(10 * SECOND, sock.recv_from(&mut buf))
        .await
        .expect("answered in time")
        .unwrap();
    let Ok(Message::Response(r)) = parse_bytes(buf[..n].to_vec().into(), &Limits::default()) else {
        panic!("a response");
    };
    // One header line longer than the codec's line limit (8 KiB): 513, but answered.
    assert_eq!((r.status, r.headers.call_id().unwrap()), (513, "fits"));
    assert_eq!(stats.oversize_dropped.load(Ordering::Relaxed), 1);
}
