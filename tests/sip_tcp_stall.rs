//! A TCP peer that sends and never reads must not stall SIP for anyone else: it floods a
//! real hotline on loopback with OPTIONS over a connection it never reads, while callers
//! over UDP and over another TCP connection are answered and hang up as usual. The slow
//! peer is disconnected (and counted) instead of being waited for.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;

use common::{SECOND, addr, server};
use hotline::config::Protocol;
use hotline_load::caller::{CallMedia, Offer, Phone};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::time::{Instant, timeout};

/// An upper bound on the flood, whatever the kernel's buffers absorb.
const MAX_REQUESTS: usize = 20_000;
/// At most this many rounds of calls while the flood runs.
const MAX_ROUNDS: usize = 200;
/// At least this many, even when the peer is disconnected sooner (it takes about a
/// thousand requests; a hotline that waited on the peer failed the third round).
const MIN_ROUNDS: usize = 5;

fn options(i: usize, local: SocketAddr, server: SocketAddr) -> String {
    format!(
        "OPTIONS sip:hotline@{server} SIP/2.0\r\n\
Via: SIP/2.0/TCP {local};branch=z9hG4bKflood{i}\r\nMax-Forwards: 70\r\n\
From: <sip:flood@{local}>;tag=f{i}\r\nTo: <sip:hotline@{server}>\r\n\
Call-ID: flood{i}@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

/// A caller on `transport` is answered and hangs up with a 200 to its BYE.
async fn call_and_hang_up(transport: Protocol, sip: SocketAddr) {
    let mut phone = Phone::new(transport, sip).await.expect("phone");
    let media = CallMedia::bind(IpAddr::V4(Ipv4Addr::LOCALHOST), false).expect("media");
    let mut call = phone
        .call("hotline", &media, Offer::Default)
        .await
        .unwrap_or_else(|e| panic!("{transport} call answered: {e}"));
    let ok = phone
        .hang_up(&mut call)
        .await
        .unwrap_or_else(|e| panic!("{transport} BYE answered: {e}"));
    assert_eq!(ok.status, 200, "{transport}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_peer_that_never_reads_stalls_nobody_and_is_disconnected() {
    common::logs();
    let srv = server(|_| {}).await;
    let tcp = addr(&srv, Protocol::Tcp);
    let udp = addr(&srv, Protocol::Udp);
    let stats = srv.server.transport_stats.clone();

    // The peer keeps its receive buffer small, so our answers pile up on our side.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = timeout(10 * SECOND, socket.connect(tcp))
        .await
        .expect("connect in time")
        .expect("connect");
    let local = stream.local_addr().unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let flood = tokio::spawn(async move {
        let until = Instant::now() + 60 * SECOND;
        let mut sent = 0;
        while sent < MAX_REQUESTS && Instant::now() < until {
            let text = options(sent, local, tcp);
            match timeout(10 * SECOND, wr.write_all(text.as_bytes())).await {
                Ok(Ok(())) => sent += 1,
                // Reset by the hotline (or, without the fix, blocked): the flood is over.
                Ok(Err(_)) | Err(_) => break,
            }
        }
        sent
    });

    // Calls while the flood runs, over UDP and over a second TCP connection at once, round
    // after round until the slow peer is disconnected (and a few more): the round under
    // way when its buffer fills must go through as well as the others.
    let until = Instant::now() + 60 * SECOND;
    let mut rounds = 0;
    while (stats.tcp_slow_closed.load(Ordering::Relaxed) == 0 || rounds < MIN_ROUNDS)
        && rounds < MAX_ROUNDS
        && Instant::now() < until
    {
        let calls = async {
            tokio::join!(
                call_and_hang_up(Protocol::Udp, udp),
                call_and_hang_up(Protocol::Tcp, tcp),
            )
        };
        timeout(30 * SECOND, calls)
            .await
            .unwrap_or_else(|_| panic!("round {rounds}: both calls set up and hung up in time"));
        rounds += 1;
    }
    assert_eq!(
        stats.tcp_slow_closed.load(Ordering::Relaxed),
        1,
        "the peer that never reads was disconnected once (after {rounds} rounds of calls)"
    );
    let sent = timeout(70 * SECOND, flood)
        .await
        .expect("the flood ends")
        .unwrap();
    assert!(
        sent < MAX_REQUESTS,
        "the flood was cut off after {sent} requests"
    );

    // What the peer finally reads ends: the hotline closed the connection.
    let mut buf = vec![0u8; 64 * 1024];
    let until = Instant::now() + 30 * SECOND;
    let closed = loop {
        match timeout(5 * SECOND, rd.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(_)) if Instant::now() < until => {}
            Ok(Ok(_)) | Err(_) => break false,
        }
    };
    assert!(closed, "the slow peer's connection is closed");

    // And the hotline still answers a new caller afterwards.
    timeout(60 * SECOND, call_and_hang_up(Protocol::Tcp, tcp))
        .await
        .expect("a call after the flood");
}
