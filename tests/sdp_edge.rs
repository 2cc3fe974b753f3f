//! Odd SDP offers in INVITEs to a real hotline on loopback: payload types over 127, ports
//! of 0 and over 65535, NUL bytes, ptime 0 and 65535, no audio line, hundreds of codecs, an
//! IPv6 connection address. Each gets a sensible answer (a call that is answered and hung
//! up) or a 488/400, the engine keeps serving, and no call is left behind.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{SECOND, addr, server};
use hotline::config::Protocol;
use hotline::sip::message::{HeaderName, Limits, Message, Response, parse};
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// What an offer must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Answered,
    Refused(u16),
}

fn sdp(conn: &str, media: &str) -> Vec<u8> {
    format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc={conn}\r\nt=0 0\r\n{media}").into_bytes()
}

fn cases() -> Vec<(&'static str, Vec<u8>, Expect)> {
    use Expect::*;
    let v4 = "IN IP4 127.0.0.1";
    let hundreds: String = (0..300).map(|i| format!(" {}", 96 + i % 32)).collect();
    let rtpmaps: String = (96..128)
        .map(|pt| format!("a=rtpmap:{pt} X-CODEC-{pt}/8000\r\n"))
        .collect();
    let nul = sdp(v4, "m=audio 40000 RTP/AVP 0\0\r\n");
    // In a line the engine does not act on, a NUL is harmless.
    let mut nul_origin = sdp(v4, "m=audio 40000 RTP/AVP 0\r\n");
    nul_origin.splice(20..20, *b"\0\0");
    vec![
        (
            "plain PCMU",
            sdp(
                v4,
                "m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n",
            ),
            Answered,
        ),
        (
            "payload type 128",
            sdp(v4, "m=audio 40000 RTP/AVP 128\r\n"),
            Refused(400),
        ),
        (
            "payload types 0 and 300",
            sdp(v4, "m=audio 40000 RTP/AVP 0 300\r\n"),
            Refused(400),
        ),
        (
            "port 0 only",
            sdp(v4, "m=audio 0 RTP/AVP 0\r\n"),
            Refused(488),
        ),
        (
            "port 70000",
            sdp(v4, "m=audio 70000 RTP/AVP 0\r\n"),
            Refused(400),
        ),
        ("NUL in the media line", nul, Refused(400)),
        ("NUL in the origin", nul_origin, Answered),
        (
            "ptime 0",
            sdp(v4, "m=audio 40000 RTP/AVP 0\r\na=ptime:0\r\n"),
            Answered,
        ),
        (
            "ptime 65535",
            sdp(v4, "m=audio 40000 RTP/AVP 8\r\na=ptime:65535\r\n"),
            Answered,
        ),
        (
            "no audio line",
            sdp(v4, "m=video 40000 RTP/AVP 31\r\n"),
            Refused(488),
        ),
        ("no media at all", sdp(v4, ""), Refused(488)),
        (
            "32 unknown codecs and PCMA last",
            sdp(
                v4,
                &format!(
                    "m=audio 40000 RTP/AVP{} 8\r\n{rtpmaps}",
                    (96..128).map(|p| format!(" {p}")).collect::<String>()
                ),
            ),
            Answered,
        ),
        (
            "hundreds of formats",
            sdp(v4, &format!("m=audio 40000 RTP/AVP{hundreds} 0\r\n")),
            Refused(400),
        ),
        (
            "only unknown codecs",
            sdp(
                v4,
                &format!(
                    "m=audio 40000 RTP/AVP 96\r\n{}",
                    "a=rtpmap:96 opus/48000/2\r\n"
                ),
            ),
            Refused(488),
        ),
        (
            "IPv6 connection",
            sdp("IN IP6 ::1", "m=audio 40000 RTP/AVP 0\r\n"),
            Answered,
        ),
        (
            "IPv6 address as IP4",
            sdp("IN IP4 ::1", "m=audio 40000 RTP/AVP 0\r\n"),
            Refused(400),
        ),
        ("garbage body", b"this is not sdp".to_vec(), Refused(400)),
    ]
}

struct Peer {
    sock: UdpSocket,
    server: SocketAddr,
    local: SocketAddr,
}

impl Peer {
    async fn send(&self, text: &[u8]) {
        self.sock.send_to(text, self.server).await.unwrap();
    }

    /// The next final response with this Call-ID and CSeq method.
    async fn final_response(&self, call_id: &str, method: &str) -> Response {
        let mut buf = vec![0u8; 65_536];
        let until = Instant::now() + 20 * SECOND;
        loop {
            let (n, _) = tokio::time::timeout_at(until, self.sock.recv_from(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("{call_id}: no final answer to {method}"))
                .unwrap();
            let Ok(Message::Response(r)) = parse(&buf[..n], &Limits::default()) else {
                continue;
            };
            let cseq = r
                .headers
                .cseq()
                .map(|c| c.method.to_string())
                .unwrap_or_default();
            if r.headers.call_id().ok() == Some(call_id) && cseq == method && r.status >= 200 {
                return r;
            }
        }
    }

    fn request(
        &self,
        method: &str,
        call_id: &str,
        cseq: u32,
        to_tag: Option<&str>,
        branch: &str,
    ) -> String {
        let (server, local) = (self.server, self.local);
        let tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        format!(
            "{method} sip:hotline@{server} SIP/2.0\r\n\
Via: SIP/2.0/UDP {local};branch=z9hG4bK{branch}\r\nMax-Forwards: 70\r\n\
From: <sip:sdp@{local}>;tag=s1\r\nTo: <sip:hotline@{server}>{tag}\r\n\
Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:sdp@{local}>\r\n"
        )
    }

    async fn offer(&self, call_id: &str, body: &[u8]) -> Response {
        let mut text = self
            .request("INVITE", call_id, 1, None, &format!("{call_id}i"))
            .into_bytes();
        text.extend_from_slice(
            format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        text.extend_from_slice(body);
        self.send(&text).await;
        self.final_response(call_id, "INVITE").await
    }

    async fn ack_and_bye(&self, call_id: &str, to_tag: &str) {
        let ack = self.request("ACK", call_id, 1, Some(to_tag), &format!("{call_id}a"));
        self.send(format!("{ack}Content-Length: 0\r\n\r\n").as_bytes())
            .await;
        let bye = self.request("BYE", call_id, 2, Some(to_tag), &format!("{call_id}b"));
        self.send(format!("{bye}Content-Length: 0\r\n\r\n").as_bytes())
            .await;
        let r = self.final_response(call_id, "BYE").await;
        assert_eq!(r.status, 200, "{call_id}: BYE");
    }

    async fn ack_failure(&self, call_id: &str, resp: &Response) {
        // The ACK to a failure belongs to the INVITE's transaction: same branch.
        let tag = resp
            .headers
            .to_addr()
            .ok()
            .and_then(|a| a.tag().map(str::to_string));
        let ack = self.request("ACK", call_id, 1, tag.as_deref(), &format!("{call_id}i"));
        self.send(format!("{ack}Content-Length: 0\r\n\r\n").as_bytes())
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_offers_get_an_answer_or_a_488_or_400_and_leave_no_call() {
    common::logs();
    let srv = server(|c| c.t1 = Duration::from_millis(50)).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let peer = Peer {
        local: sock.local_addr().unwrap(),
        sock,
        server: addr(&srv, Protocol::Udp),
    };
    let mut failures = Vec::new();
    for (i, (name, body, expect)) in cases().into_iter().enumerate() {
        let call_id = format!("sdp{i}");
        let r = peer.offer(&call_id, &body).await;
        let got = if r.status == 200 {
            let tag = r
                .headers
                .to_addr()
                .ok()
                .and_then(|a| a.tag().map(str::to_string))
                .expect("a To tag");
            assert!(
                r.headers.get(HeaderName::ContentType).is_some(),
                "{name}: the 200 carries our answer"
            );
            peer.ack_and_bye(&call_id, &tag).await;
            Expect::Answered
        } else {
            peer.ack_failure(&call_id, &r).await;
            Expect::Refused(r.status)
        };
        if got != expect {
            failures.push(format!(
                "{name}: expected {expect:?}, got {got:?} ({})",
                r.reason
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");

    let ep = srv.server.endpoint_stats.clone();
    let deadline = Instant::now() + 60 * SECOND;
    while ep.active_calls.load(Ordering::Relaxed) != 0
        || ep.transactions.load(Ordering::Relaxed) != 0
    {
        assert!(Instant::now() < deadline, "a call or transaction was left");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
