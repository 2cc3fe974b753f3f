//! A corpus of odd and broken SIP requests in the categories of RFC 4475 (written here,
//! not taken from it), sent over UDP and over TCP to a real hotline on loopback: valid ones
//! are answered as usual, invalid ones get their 4xx/5xx (400 for most) or are dropped and
//! counted when no answer can be addressed, nothing panics, and once every exchange is
//! over no transaction or call is left behind.
//!
//! Whether a message was answered is decided without waiting for silence: after each
//! case the peer sends a probe OPTIONS, and whatever arrives before the probe's 200 is
//! what the case got.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{SECOND, addr, server};
use hotline::config::Protocol;
use hotline::sip::message::{Frame, Limits, Message, StreamFramer, parse_bytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, timeout};

/// What a case must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// This status, on both transports.
    Status(u16),
    /// No answer (nothing to address one to); on TCP the connection stays usable.
    Dropped,
    /// UDP: this status; TCP: the stream cannot be framed, the connection is closed.
    StatusOrClosed(u16),
    /// UDP: dropped; TCP: the connection is closed (unframable, or over the size limit
    /// with no answer possible).
    DroppedOrClosed,
    /// UDP: dropped (over the size limit); TCP: 413, then the connection is closed.
    DroppedOr413,
}

struct Case {
    name: &'static str,
    expect: Expect,
    /// The message, with `{via}`, `{local}`, `{server}`, `{id}` and `{len}` (the body's
    /// length) to fill in; `{T}` is the transport.
    text: String,
    body: String,
}

const BASE: &str = "OPTIONS sip:hotline@{server} SIP/2.0\r\n\
Via: SIP/2.0/{T} {local};branch=z9hG4bK{id}\r\n\
Max-Forwards: 70\r\n\
From: <sip:tester@{local}>;tag=t{id}\r\n\
To: <sip:hotline@{server}>\r\n\
Call-ID: {id}\r\n\
CSeq: 7 OPTIONS\r\n\
Content-Length: {len}\r\n\r\n";

fn case(name: &'static str, expect: Expect, text: impl Into<String>) -> Case {
    Case {
        name,
        expect,
        text: text.into(),
        body: String::new(),
    }
}

/// The base OPTIONS with `from` replaced by `to`.
fn edit(name: &'static str, expect: Expect, from: &str, to: &str) -> Case {
    assert!(BASE.contains(from), "{name}: {from:?} is in the base");
    case(name, expect, BASE.replacen(from, to, 1))
}

fn invite(name: &'static str, expect: Expect, extra: &str, content_type: &str, body: &str) -> Case {
    let text = BASE
        .replace("OPTIONS sip:", "INVITE sip:")
        .replace("CSeq: 7 OPTIONS", "CSeq: 7 INVITE")
        .replace(
            "Content-Length:",
            &format!("{extra}Content-Type: {content_type}\r\nContact: <sip:tester@{{local}}>\r\nContent-Length:"),
        );
    Case {
        name,
        expect,
        text,
        body: body.to_string(),
    }
}

fn corpus() -> Vec<Case> {
    use Expect::*;
    // 64 kB: as large as a datagram can carry with the rest of the message.
    let big = "x".repeat(64_000);
    let mut cases = vec![
        // Valid, if unusual.
        case("plain", Status(200), BASE),
        edit("compact forms", Status(200), "Via:", "v:"),
        case(
            "all compact",
            Status(200),
            BASE.replace("Via:", "v:")
                .replace("From:", "f:")
                .replace("To:", "t:")
                .replace("Call-ID:", "i:")
                .replace("Content-Length:", "l:"),
        ),
        edit(
            "odd spacing",
            Status(200),
            "CSeq: 7 OPTIONS",
            "cSeQ   :\t7    OPTIONS  ",
        ),
        edit(
            "spacing in Via",
            Status(200),
            "Via: SIP/2.0/{T} {local};branch",
            "Via:  SIP / 2.0 / {T}   {local}  ;  branch",
        ),
        edit(
            "folded header",
            Status(200),
            "Max-Forwards: 70\r\n",
            "Max-Forwards: 70\r\nSubject: a folded\r\n  header value\r\n\tover three lines\r\n",
        ),
        edit(
            "folded To",
            Status(200),
            "To: <sip:hotline@{server}>",
            "To:\r\n <sip:hotline@{server}>",
        ),
        edit(
            "escaped user",
            Status(200),
            "OPTIONS sip:hotline@",
            "OPTIONS sip:%68otl%69ne@",
        ),
        edit(
            "quoted display name with escapes",
            Status(200),
            "From: <sip:tester@{local}>",
            "From: \"J. \\\"Q\\\" Public \\\\ \" <sip:te%20ster@{local}>",
        ),
        edit("largest CSeq", Status(200), "CSeq: 7", "CSeq: 2147483647"),
        edit(
            "largest Max-Forwards",
            Status(200),
            "Max-Forwards: 70",
            "Max-Forwards: 255",
        ),
        edit(
            "unknown headers and parameters",
            Status(200),
            "Max-Forwards: 70\r\n",
            "Max-Forwards: 70\r\nX-Odd-Header: ;;,,\"unbalanced\r\nVia-Extension: 1\r\n",
        ),
        edit(
            "two Via hops",
            Status(200),
            "Max-Forwards:",
            "Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bKhop2\r\nMax-Forwards:",
        ),
        edit(
            "Via without the cookie (RFC 2543)",
            Status(200),
            "branch=z9hG4bK{id}",
            "branch=old{id}",
        ),
        edit(
            "Via without a branch",
            Status(200),
            ";branch=z9hG4bK{id}",
            "",
        ),
        edit(
            "lowercase method in CSeq",
            Status(400),
            "CSeq: 7 OPTIONS",
            "CSeq: 7 options",
        ),
        // Missing headers: nothing to copy into an answer.
        edit("missing To", Dropped, "To: <sip:hotline@{server}>\r\n", ""),
        edit(
            "missing From",
            Dropped,
            "From: <sip:tester@{local}>;tag=t{id}\r\n",
            "",
        ),
        edit("missing Call-ID", Dropped, "Call-ID: {id}\r\n", ""),
        edit("missing CSeq", Dropped, "CSeq: 7 OPTIONS\r\n", ""),
        edit(
            "missing Via",
            Dropped,
            "Via: SIP/2.0/{T} {local};branch=z9hG4bK{id}\r\n",
            "",
        ),
        // Duplicates and mismatches.
        edit(
            "two To",
            Status(400),
            "To: <sip:hotline@{server}>",
            "To: <sip:hotline@{server}>\r\nTo: <sip:other@{server}>",
        ),
        edit(
            "two From",
            Status(400),
            "From: <sip:tester@{local}>;tag=t{id}",
            "From: <sip:tester@{local}>;tag=t{id}\r\nFrom: <sip:x@{local}>;tag=2",
        ),
        edit(
            "two Call-ID",
            Status(400),
            "Call-ID: {id}",
            "Call-ID: {id}\r\ni: second-{id}",
        ),
        edit(
            "two CSeq",
            Status(400),
            "CSeq: 7 OPTIONS",
            "CSeq: 7 OPTIONS\r\nCSeq: 8 OPTIONS",
        ),
        edit(
            "CSeq method mismatch",
            Status(400),
            "CSeq: 7 OPTIONS",
            "CSeq: 7 INVITE",
        ),
        edit(
            "malformed Via",
            Status(400),
            "SIP/2.0/{T} {local}",
            "SIP/2.0 {local}",
        ),
        // Control characters.
        edit(
            "NUL in a header",
            Status(400),
            "Max-Forwards: 70",
            "Max-Forwards: 70\r\nSubject: a\0b",
        ),
        edit(
            "bare CR in a header",
            Status(400),
            "Max-Forwards: 70",
            "Max-Forwards: 70\r\nSubject: a\rb",
        ),
        edit(
            "control byte in a name",
            Status(400),
            "Max-Forwards: 70",
            "Max-Forwards: 70\r\nSub\x01ject: a",
        ),
        // Lengths.
        edit(
            "negative Content-Length",
            StatusOrClosed(400),
            "Content-Length: {len}",
            "Content-Length: -1",
        ),
        edit(
            "huge Content-Length",
            StatusOrClosed(400),
            "Content-Length: {len}",
            "Content-Length: 99999999999999999999999",
        ),
        // URIs and versions.
        edit(
            "unknown URI scheme",
            Status(416),
            "OPTIONS sip:hotline@{server}",
            "OPTIONS gopher:hotline@{server}",
        ),
        edit(
            "malformed Request-URI",
            Status(400),
            "OPTIONS sip:hotline@{server}",
            "OPTIONS sip:hotline@[::1",
        ),
        edit("SIP/3.0", Status(505), "SIP/2.0\r\nVia", "SIP/3.0\r\nVia"),
        edit(
            "huge CSeq",
            Status(400),
            "CSeq: 7",
            "CSeq: 184467440737095516150",
        ),
        edit(
            "huge Max-Forwards",
            Status(400),
            "Max-Forwards: 70",
            "Max-Forwards: 99999999999999999999",
        ),
        // Not SIP at all, and broken responses: no answer.
        case(
            "garbage",
            DroppedOrClosed,
            "\u{1}\u{2}\u{3} hello there\r\n\r\n",
        ),
        case(
            "response without Via",
            Dropped,
            "SIP/2.0 200 OK\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: {id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: {len}\r\n\r\n",
        ),
        // Limits of the codec within one message (lines over 8 KiB, headers over 128).
        edit(
            "a 10 KiB header",
            Status(513),
            "Max-Forwards: 70",
            &format!("Max-Forwards: 70\r\nSubject: {}", "y".repeat(10 * 1024)),
        ),
        edit(
            "200 headers",
            Status(513),
            "Max-Forwards: 70",
            &format!(
                "Max-Forwards: 70{}",
                (0..200)
                    .map(|i| format!("\r\nX-H{i}: v"))
                    .collect::<String>()
            ),
        ),
        // Calls that must not start.
        invite(
            "INVITE with Max-Forwards 0",
            Status(483),
            "",
            "application/sdp",
            "",
        ),
        invite(
            "unterminated multipart body",
            Status(415),
            "",
            "multipart/mixed;boundary=bnd",
            "--bnd\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n",
        ),
        invite(
            "unsupported body type",
            Status(415),
            "",
            "text/plain",
            "hello",
        ),
    ];
    // Max-Forwards 0 on the INVITE only.
    if let Some(c) = cases
        .iter_mut()
        .find(|c| c.name == "INVITE with Max-Forwards 0")
    {
        c.text = c.text.replace("Max-Forwards: 70", "Max-Forwards: 0");
    }
    // Every header at 64 kB: a datagram that large is dropped; on TCP the headers a
    // response copies come before the giant one or not.
    for (name, header) in [
        ("64 kB Via", "Via: SIP/2.0/{T} {local};branch=z9hG4bK{id}"),
        ("64 kB From", "From: <sip:tester@{local}>;tag=t{id}"),
        ("64 kB To", "To: <sip:hotline@{server}>"),
        ("64 kB Call-ID", "Call-ID: {id}"),
        ("64 kB CSeq", "CSeq: 7 OPTIONS"),
    ] {
        let expect = DroppedOrClosed;
        // The value grows at its end, so the line is still read up to the giant part.
        let grown = if header.starts_with("CSeq") {
            format!("CSeq: 7 OPTIONS{big}")
        } else {
            format!("{header};x={big}")
        };
        cases.push(case(name, expect, BASE.replacen(header, &grown, 1)));
    }
    for name in ["Subject", "User-Agent", "Contact", "Content-Type", "Accept"] {
        cases.push(case(
            "64 kB other header",
            DroppedOr413,
            BASE.replacen(
                "Content-Length:",
                &format!("{name}: {big}\r\nContent-Length:"),
                1,
            ),
        ));
    }
    cases
}

fn fill(c: &Case, t: &str, local: SocketAddr, server: SocketAddr, id: &str) -> Vec<u8> {
    let mut text = c
        .text
        .replace("{T}", t)
        .replace("{local}", &local.to_string())
        .replace("{server}", &server.to_string())
        .replace("{id}", id)
        .replace("{len}", &c.body.len().to_string());
    text.push_str(&c.body);
    text.into_bytes()
}

fn probe(t: &str, local: SocketAddr, server: SocketAddr, id: &str) -> Vec<u8> {
    fill(
        &case("probe", Expect::Status(200), BASE),
        t,
        local,
        server,
        id,
    )
}

/// The responses read until the probe's, as (status, Call-ID).
type Got = Vec<(u16, String)>;

/// A response's status, Call-ID and To tag.
fn response(bytes: bytes::Bytes) -> Option<(u16, String, Option<String>)> {
    match parse_bytes(bytes, &Limits::default()) {
        Ok(Message::Response(r)) => Some((
            r.status,
            r.headers.call_id().unwrap_or_default().to_string(),
            r.headers
                .to_addr()
                .ok()
                .and_then(|a| a.tag().map(str::to_string)),
        )),
        _ => None,
    }
}

/// The ACK for a case's final answer to its INVITE (same branch: RFC 3261 §17.1.1.3).
fn ack(t: &str, local: SocketAddr, server: SocketAddr, id: &str, to_tag: &str) -> Vec<u8> {
    format!(
        "ACK sip:hotline@{server} SIP/2.0\r\nVia: SIP/2.0/{t} {local};branch=z9hG4bK{id}\r\n\
Max-Forwards: 70\r\nFrom: <sip:tester@{local}>;tag=t{id}\r\n\
To: <sip:hotline@{server}>;tag={to_tag}\r\nCall-ID: {id}\r\nCSeq: 7 ACK\r\n\
Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// An INVITE case is answered by a call's task, after the endpoint has moved on: its final
/// answer is awaited (and acknowledged) before the probe goes out.
fn awaits_final(c: &Case) -> bool {
    c.text.starts_with("INVITE") && matches!(c.expect, Expect::Status(_))
}

async fn udp_case(sock: &UdpSocket, server: SocketAddr, c: &Case, n: usize) -> Got {
    let local = sock.local_addr().unwrap();
    let id = format!("udp{n}");
    sock.send_to(&fill(c, "UDP", local, server, &id), server)
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65_536];
    let mut waiting = awaits_final(c);
    let probe_id = format!("probe-udp{n}");
    if !waiting {
        sock.send_to(&probe("UDP", local, server, &probe_id), server)
            .await
            .unwrap();
    }
    loop {
        let (len, _) = timeout(10 * SECOND, sock.recv_from(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{}: no answer in time", c.name))
            .unwrap();
        let Some((status, call_id, tag)) = response(bytes::Bytes::copy_from_slice(&buf[..len]))
        else {
            continue;
        };
        if call_id == probe_id {
            assert_eq!(status, 200, "{}: probe", c.name);
            return got;
        }
        // A provisional answer is not what a case is judged by.
        if status < 200 {
            continue;
        }
        if waiting && call_id == id {
            sock.send_to(
                &ack("UDP", local, server, &id, &tag.unwrap_or_default()),
                server,
            )
            .await
            .unwrap();
            sock.send_to(&probe("UDP", local, server, &probe_id), server)
                .await
                .unwrap();
            waiting = false;
        }
        got.push((status, call_id));
    }
}

/// What a TCP case got, and whether the connection was closed.
async fn tcp_case(server: SocketAddr, c: &Case, n: usize) -> (Got, bool) {
    let mut stream = timeout(10 * SECOND, TcpStream::connect(server))
        .await
        .expect("connect in time")
        .expect("connect");
    let local = stream.local_addr().unwrap();
    let id = format!("tcp{n}");
    let probe_id = format!("probe-tcp{n}");
    let mut waiting = awaits_final(c);
    // The peer may close while we write a giant message: that is an outcome, not a failure.
    let _ = stream.write_all(&fill(c, "TCP", local, server, &id)).await;
    if !waiting {
        let _ = stream
            .write_all(&probe("TCP", local, server, &probe_id))
            .await;
    }
    let mut framer = StreamFramer::new(Limits::default());
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let until = Instant::now() + 10 * SECOND;
    loop {
        while let Ok(Some(Frame::Message(bytes))) = framer.pop() {
            let Some((status, call_id, tag)) = response(bytes) else {
                continue;
            };
            if call_id == probe_id {
                assert_eq!(status, 200, "{}: probe", c.name);
                return (got, false);
            }
            if status < 200 {
                continue;
            }
            if waiting && call_id == id {
                let _ = stream
                    .write_all(&ack("TCP", local, server, &id, &tag.unwrap_or_default()))
                    .await;
                let _ = stream
                    .write_all(&probe("TCP", local, server, &probe_id))
                    .await;
                waiting = false;
            }
            got.push((status, call_id));
        }
        match tokio::time::timeout_at(until, stream.read(&mut buf)).await {
            Err(_) => panic!("{}: neither the probe's answer nor a close", c.name),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
            Ok(Ok(k)) => framer.push(&buf[..k]),
        }
    }
}

fn judge(c: &Case, transport: &str, id: &str, got: &Got, closed: bool) -> Option<String> {
    // Late answers to earlier cases (retransmissions before their ACK) are not this one's.
    let statuses: Vec<u16> = got
        .iter()
        .filter(|(_, call_id)| call_id == id)
        .map(|(s, _)| *s)
        .collect();
    let tcp = transport == "TCP";
    let (want, want_closed): (Vec<u16>, bool) = match (c.expect, tcp) {
        (Expect::Status(s), _) | (Expect::StatusOrClosed(s), false) => (vec![s], false),
        (Expect::Dropped, _) | (Expect::DroppedOrClosed | Expect::DroppedOr413, false) => {
            (vec![], false)
        }
        (Expect::StatusOrClosed(_) | Expect::DroppedOrClosed, true) => (vec![], true),
        (Expect::DroppedOr413, true) => (vec![413], true),
    };
    ((statuses.clone(), closed) != (want.clone(), want_closed)).then(|| {
        format!(
            "{} over {transport}: expected {want:?} (closed: {want_closed}), got {statuses:?} (closed: {closed})",
            c.name
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_and_broken_requests_over_udp_and_tcp_are_answered_or_dropped_and_leave_no_state() {
    common::logs();
    // A short T1 so that the transactions' lingering timers end within the test.
    let srv = server(|c| c.t1 = Duration::from_millis(50)).await;
    let udp = addr(&srv, Protocol::Udp);
    let tcp = addr(&srv, Protocol::Tcp);
    let stats = srv.server.transport_stats.clone();
    let cases = corpus();
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut wrong = Vec::new();
    for (n, c) in cases.iter().enumerate() {
        let got = udp_case(&sock, udp, c, n).await;
        wrong.extend(judge(c, "UDP", &format!("udp{n}"), &got, false));
        let (got, closed) = tcp_case(tcp, c, n).await;
        wrong.extend(judge(c, "TCP", &format!("tcp{n}"), &got, closed));
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    let refused = stats.answered_400.load(Ordering::Relaxed)
        + stats.dropped_garbage.load(Ordering::Relaxed)
        + stats.oversize_dropped.load(Ordering::Relaxed)
        + stats.answered_413.load(Ordering::Relaxed);
    assert!(refused >= 40, "refusals counted: {refused}");

    // Nothing is left once the transactions' timers have run out.
    let ep = srv.server.endpoint_stats.clone();
    let deadline = Instant::now() + 60 * SECOND;
    loop {
        let left = (
            ep.transactions.load(Ordering::Relaxed),
            ep.active_calls.load(Ordering::Relaxed),
            ep.inboxes.load(Ordering::Relaxed),
            stats.tcp_open.load(Ordering::Relaxed),
        );
        if left == (0, 0, 0, 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "state left (transactions, calls, inboxes, TCP connections): {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
