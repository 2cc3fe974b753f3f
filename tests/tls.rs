//! SIP over TLS on a real hotline on loopback: a rustls client that trusts the test's own
//! authority sends OPTIONS and places calls (`sip:` with `;transport=tls`, and `sips:`
//! throughout) and gets answers whose Via says TLS and whose Contact says
//! `transport=tls`; a client that connects and never starts the handshake is closed after
//! the handshake timeout, one that sends garbage instead of a ClientHello is closed at once,
//! both counted in `/metrics`; TLS connections count against `limits.tcp_per_source`.
//! Every wait is bounded.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::SECOND;
use common::tls::{Certificates, connect, connector, handshake, make_certificates};
use hotline::config::{AdminConfig, Listen, Protocol};
use hotline::server::RunningServer;
use hotline::sip::message::{
    Frame, HeaderName, Limits, Message, Method, StreamFramer, parse_bytes,
};
use hotline::sip::transport::TransportStats;
use hotline_load::caller::{CallMedia, Established, Offer, Phone};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, timeout};

/// A source address on loopback that is not trusted (the default trusts 127.0.0.1 only).
const UNTRUSTED: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

fn folder(test: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("tls-{test}-{}", std::process::id()))
}

/// A hotline with a UDP and a TLS listener on 127.0.0.1, the admin API on loopback, and
/// `tcp_idle` and `tcp_per_source` as given.
async fn tls_server(certs: &Certificates, idle: Duration, per_source: usize) -> RunningServer {
    common::server(|c| {
        c.listen = vec![
            "udp:127.0.0.1:0".parse::<Listen>().unwrap(),
            "tls:127.0.0.1:0".parse::<Listen>().unwrap(),
        ];
        c.tls = Some(certs.config());
        c.connections.tcp_idle = idle;
        c.connections.tcp_per_source = per_source;
        c.admin = Some(AdminConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            token: None,
            hosts: Vec::new(),
        });
    })
    .await
}

fn options(call_id: &str, scheme: &str, local: SocketAddr, server: SocketAddr) -> String {
    format!(
        "OPTIONS {scheme}:hotline@{server} SIP/2.0\r\n\
Via: SIP/2.0/TLS {local};branch=z9hG4bK{call_id}\r\nMax-Forwards: 70\r\n\
From: <{scheme}:probe@{local}>;tag=p1\r\nTo: <{scheme}:hotline@{server}>\r\n\
Contact: <{scheme}:probe@{local};transport=tls>\r\n\
Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

/// The next message on a stream, or None when it closes or `within` passes.
async fn message<S: AsyncRead + Unpin>(
    stream: &mut S,
    framer: &mut StreamFramer,
    within: Duration,
) -> Option<Message> {
    let until = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        while let Ok(Some(frame)) = framer.pop() {
            if let Frame::Message(bytes) = frame
                && let Ok(m) = parse_bytes(bytes, &Limits::default())
            {
                return Some(m);
            }
        }
        match tokio::time::timeout_at(until, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => framer.push(&buf[..n]),
            _ => return None,
        }
    }
}

/// The next response on a stream (requests before it are passed over).
async fn response<S: AsyncRead + Unpin>(
    stream: &mut S,
    framer: &mut StreamFramer,
    within: Duration,
) -> Option<hotline::sip::message::Response> {
    let until = Instant::now() + within;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if let Message::Response(r) = message(stream, framer, left).await? {
            return Some(r);
        }
    }
}

/// Whether the server closes `stream` within `within` (reading and ignoring anything else).
async fn closed_within<S: AsyncRead + Unpin>(stream: &mut S, within: Duration) -> bool {
    let until = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(until, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
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

async fn metrics_text(srv: &RunningServer) -> String {
    let admin = srv.server.admin_addr().expect("admin API");
    hotline::webhook::client()
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("its body")
}

fn header(r: &hotline::sip::message::Response, name: HeaderName) -> String {
    r.headers
        .get(name)
        .map(|v| v.to_str_lossy().into_owned())
        .unwrap_or_default()
}

/// A phone whose connection is a TLS one to `server`.
async fn tls_phone(certs: &Certificates, server: SocketAddr) -> Phone {
    let stream = connect(&connector(&certs.ca), server).await;
    let local = stream.get_ref().0.local_addr().unwrap();
    let (rd, wr) = tokio::io::split(stream);
    Phone::over_stream(Protocol::Tls, server, local, Box::new(rd), Box::new(wr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_and_calls_over_tls_are_answered_with_tls_in_via_and_contact() {
    common::logs();
    let dir = folder("calls");
    let certs = make_certificates(&dir);
    let srv = tls_server(&certs, Duration::from_secs(60), 32).await;
    let tls = common::addr(&srv, Protocol::Tls);

    // OPTIONS with sip: and with sips: URIs, on one connection.
    let mut stream = connect(&connector(&certs.ca), tls).await;
    let local = stream.get_ref().0.local_addr().unwrap();
    let mut framer = StreamFramer::new(Limits::default());
    for (call_id, scheme) in [("opt-sip", "sip"), ("opt-sips", "sips")] {
        let text = options(call_id, scheme, local, tls);
        stream.write_all(text.as_bytes()).await.unwrap();
        stream.flush().await.unwrap();
        let r = response(&mut stream, &mut framer, 10 * SECOND)
            .await
            .unwrap_or_else(|| panic!("{call_id}: no answer over TLS"));
        assert_eq!(r.status, 200, "{call_id}");
        assert_eq!(r.headers.call_id().unwrap(), call_id);
        let via = header(&r, HeaderName::Via);
        assert!(via.starts_with("SIP/2.0/TLS "), "{call_id}: Via {via}");
    }

    // A call: sip: with ;transport=tls, answered, hung up.
    let mut phone = tls_phone(&certs, tls).await;
    let media = CallMedia::bind(Ipv4Addr::LOCALHOST.into(), true).unwrap();
    let mut call = phone
        .call("hotline", &media, Offer::Default)
        .await
        .expect("the call over TLS is answered");
    let via = header(&call.answer, HeaderName::Via);
    assert!(via.starts_with("SIP/2.0/TLS "), "Via {via}");
    let contact = header(&call.answer, HeaderName::Contact);
    assert!(contact.contains(";transport=tls"), "Contact {contact}");
    let bye = phone.hang_up(&mut call).await.expect("BYE answered");
    assert_eq!(bye.status, 200);

    // A call with sips: in the Request-URI, From, To and Contact.
    let mut phone = tls_phone(&certs, tls).await;
    let (call_id, from_tag) = ("sips-call@127.0.0.1", "f1");
    let invite = phone
        .invite_text("hotline", call_id, from_tag, 1, &media.offer(&[0, 8], true))
        .replace("sip:", "sips:");
    assert!(invite.starts_with("INVITE sips:hotline@"), "{invite}");
    phone.send_raw(invite.as_bytes()).await.unwrap();
    let ok = phone
        .response(call_id, &Method::Invite, 200, 30 * SECOND)
        .await
        .expect("the sips: INVITE is answered");
    assert_eq!(ok.status, 200, "{ok:?}");
    assert!(header(&ok, HeaderName::Via).starts_with("SIP/2.0/TLS "));
    assert!(header(&ok, HeaderName::Contact).contains(";transport=tls"));
    let ack = phone.ack_text("hotline", call_id, from_tag, &ok, 1, "", false);
    phone.send_raw(ack.as_bytes()).await.unwrap();
    let to_tag = ok
        .headers
        .to_addr()
        .ok()
        .and_then(|t| t.tag().map(str::to_owned))
        .unwrap_or_default();
    let mut call = Established {
        user: "hotline".into(),
        call_id: call_id.into(),
        from_tag: from_tag.into(),
        to_tag,
        cseq: 1,
        remote_rtp: call.remote_rtp,
        codec: call.codec,
        payload_type: call.payload_type,
        telephone_event_pt: call.telephone_event_pt,
        answer: ok,
    };
    let bye = phone.hang_up(&mut call).await.expect("BYE answered");
    assert_eq!(bye.status, 200);
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_handshakes_or_sends_garbage_is_closed_and_counted() {
    common::logs();
    let dir = folder("handshake");
    let certs = make_certificates(&dir);
    // The handshake may take no longer than tcp_idle (when that is below 10 s).
    let idle = Duration::from_millis(1500);
    let srv = tls_server(&certs, idle, 32).await;
    let tls = common::addr(&srv, Protocol::Tls);
    let stats = srv.server.transport_stats.clone();

    // Connects and says nothing.
    let started = Instant::now();
    let mut silent = TcpStream::connect(tls).await.unwrap();
    assert!(
        closed_within(&mut silent, 20 * SECOND).await,
        "a silent client is closed"
    );
    let took = started.elapsed();
    assert!(
        took >= idle - Duration::from_millis(200),
        "closed after {took:?}"
    );
    until(&stats, "the silent client counted", |s| {
        s.tls_handshake_failed.load(Ordering::Relaxed) == 1
    })
    .await;

    // Plain SIP where a ClientHello should be.
    let mut plain = TcpStream::connect(tls).await.unwrap();
    let local = plain.local_addr().unwrap();
    plain
        .write_all(options("plain", "sip", local, tls).as_bytes())
        .await
        .unwrap();
    assert!(
        closed_within(&mut plain, 5 * SECOND).await,
        "a client sending plain SIP to the TLS port is closed at once"
    );
    // Bytes that are no protocol at all.
    let mut garbage = TcpStream::connect(tls).await.unwrap();
    garbage
        .write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 0, 0, 0, 1, 2, 3])
        .await
        .unwrap();
    garbage.write_all(&[0xaa; 512]).await.unwrap();
    assert!(
        closed_within(&mut garbage, 10 * SECOND).await,
        "a garbage handshake is closed"
    );
    until(&stats, "the failed handshakes counted", |s| {
        s.tls_handshake_failed.load(Ordering::Relaxed) == 3
    })
    .await;
    until(&stats, "every connection gone", |s| {
        s.tcp_open.load(Ordering::Relaxed) == 0
    })
    .await;
    let text = metrics_text(&srv).await;
    assert!(
        text.contains("hotline_tcp_closed_total{reason=\"tls_handshake\"} 3\n"),
        "{text}"
    );

    // The listener still serves a real client.
    let mut ok = connect(&connector(&certs.ca), tls).await;
    let local = ok.get_ref().0.local_addr().unwrap();
    ok.write_all(options("after", "sip", local, tls).as_bytes())
        .await
        .unwrap();
    let mut framer = StreamFramer::new(Limits::default());
    let r = response(&mut ok, &mut framer, 10 * SECOND)
        .await
        .expect("an answer after the failures");
    assert_eq!(r.status, 200);
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_connections_count_against_tcp_per_source() {
    common::logs();
    let dir = folder("per-source");
    let certs = make_certificates(&dir);
    let srv = tls_server(&certs, Duration::from_secs(60), 2).await;
    let tls = common::addr(&srv, Protocol::Tls);
    let stats = srv.server.transport_stats.clone();
    let connector = connector(&certs.ca);
    let from_untrusted = || async {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(UNTRUSTED, 0)).unwrap();
        timeout(10 * SECOND, socket.connect(tls))
            .await
            .expect("connect in time")
            .expect("connect")
    };
    let mut open = Vec::new();
    for _ in 0..2 {
        let tcp = from_untrusted().await;
        open.push(
            handshake(&connector, tcp)
                .await
                .expect("handshake within the cap"),
        );
    }
    // The third from the same address is refused before its handshake.
    let tcp = from_untrusted().await;
    assert!(
        handshake(&connector, tcp).await.is_err(),
        "a third TLS connection from one address gets no handshake"
    );
    until(&stats, "the refusal counted", |s| {
        s.tcp_per_source_refused.load(Ordering::Relaxed) == 1
    })
    .await;
    assert_eq!(stats.tls_handshake_failed.load(Ordering::Relaxed), 0);
    // Closing one gives its place back.
    drop(open.pop());
    until(&stats, "the closed connection's place", |s| {
        s.tcp_open.load(Ordering::Relaxed) == 1
    })
    .await;
    let tcp = from_untrusted().await;
    handshake(&connector, tcp)
        .await
        .expect("a place is free again");
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Registers `user` over `phone`'s TLS connection with digest authentication; returns the
/// final status.
async fn register_over(phone: &mut Phone, user: &str, password: &str) -> u16 {
    use hotline::sip::digest::{Authorization, Challenge};
    let call_id = format!("reg-{user}");
    let uri = "sip:hotline";
    let local = phone.local;
    let text = |cseq: u32, auth: &str| {
        format!(
            "REGISTER {uri} SIP/2.0\r\n\
Via: SIP/2.0/TLS {local};branch=z9hG4bKreg{cseq};rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:{user}@hotline>;tag=r{cseq}\r\n\
To: <sip:{user}@hotline>\r\n\
Call-ID: {call_id}\r\n\
CSeq: {cseq} REGISTER\r\n\
Contact: <sip:{user}@{local};transport=tls>\r\n\
Expires: 300\r\n\
{auth}Content-Length: 0\r\n\r\n"
        )
    };
    phone.send_raw(text(1, "").as_bytes()).await.unwrap();
    let challenge = phone
        .response(&call_id, &Method::Register, 200, 10 * SECOND)
        .await
        .expect("the challenge");
    assert_eq!(challenge.status, 401);
    let header = header(&challenge, HeaderName::new("WWW-Authenticate"));
    let ch = Challenge::parse(&header).expect("a digest challenge");
    let auth = Authorization::answer(&ch, user, password, "REGISTER", uri, "0a4f113b", 1);
    phone
        .send_raw(text(2, &format!("Authorization: {auth}\r\n")).as_bytes())
        .await
        .unwrap();
    phone
        .response(&call_id, &Method::Register, 200, 10 * SECOND)
        .await
        .expect("the REGISTER answer")
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_registered_over_tls_is_rung_over_its_connection_and_unreachable_without_it() {
    common::logs();
    let dir = folder("agent");
    let certs = make_certificates(&dir);
    let flows = dir.join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(flows.join("main.yaml"), common::QUEUE_FLOW).unwrap();
    let file = hotline::config::Config::from_str_at(
        "queues: { support: { ring_timeout: 20s, max_wait: 2m } }\n\
agents: { alice: { password: \"alice-secret\", queues: { support: 0 } } }\n",
        &dir.join("hotline.yaml"),
    )
    .expect("the test configuration");
    let srv = common::server(|c| {
        c.listen = vec![
            "udp:127.0.0.1:0".parse::<Listen>().unwrap(),
            "tls:127.0.0.1:0".parse::<Listen>().unwrap(),
        ];
        c.tls = Some(certs.config());
        c.flows_dir = flows.clone();
        c.queues = file.queues.clone();
        c.agents = file.agents.clone();
    })
    .await;
    let tls = common::addr(&srv, Protocol::Tls);
    let udp = common::addr(&srv, Protocol::Udp);
    let mut alice = tls_phone(&certs, tls).await;
    assert_eq!(
        register_over(&mut alice, "alice", "alice-secret").await,
        200
    );

    // The queue offers a caller to alice: the INVITE comes over her TLS connection.
    let (mut caller, _media, mut call) = common::call(udp, "hotline").await;
    let invite = loop {
        match alice.recv(20 * SECOND).await {
            Some(Message::Request(r)) if r.method == Method::Invite => break r,
            Some(_) => continue,
            None => panic!("alice was not offered the call over TLS"),
        }
    };
    let via = invite
        .headers
        .get(HeaderName::Via)
        .map(|v| v.to_str_lossy().into_owned())
        .unwrap_or_default();
    assert!(via.starts_with("SIP/2.0/TLS "), "Via {via}");
    assert!(
        invite.uri.to_string().contains("transport=tls"),
        "{}",
        invite.uri
    );
    let _ = caller.hang_up(&mut call).await;

    // Her connection closes: the next offer cannot reach her, and fails at once rather
    // than going anywhere in clear.
    drop(alice);
    let stats = srv.server.transport_stats.clone();
    until(&stats, "alice's connection gone", |s| {
        s.tcp_open.load(Ordering::Relaxed) == 0
    })
    .await;
    let unsent = srv
        .server
        .endpoint_stats
        .requests_unsent
        .load(Ordering::Relaxed);
    let (_caller, _media, _call) = common::call(udp, "hotline").await;
    let started = Instant::now();
    let endpoint = srv.server.endpoint_stats.clone();
    while endpoint.requests_unsent.load(Ordering::Relaxed) == unsent {
        assert!(
            started.elapsed() < 10 * SECOND,
            "the offer to alice did not fail without her connection"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        stats.tcp_open.load(Ordering::Relaxed),
        0,
        "no connection opened"
    );
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The next request on a stream (responses before it are passed over).
async fn request<S: AsyncRead + Unpin>(
    stream: &mut S,
    framer: &mut StreamFramer,
    within: Duration,
) -> Option<hotline::sip::message::Request> {
    let until = Instant::now() + within;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if let Message::Request(r) = message(stream, framer, left).await? {
            return Some(r);
        }
    }
}

/// A trunk on loopback speaking TLS with `trunk_certs`' certificate, and an engine with
/// `engine_certs` (its TLS listener, and `tls.ca`, the authority it trusts) whose flow
/// transfers every call to `target(trunk's port)`, hanging up when that fails.
async fn trunk_and_engine(
    dir: &std::path::Path,
    engine_certs: &Certificates,
    trunk_certs: &Certificates,
    target: impl Fn(u16) -> String,
) -> (
    tokio_rustls::TlsAcceptor,
    tokio::net::TcpListener,
    RunningServer,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(
        hotline::sip::tls::server_config(&trunk_certs.config()).expect("the trunk's certificate"),
    );
    let trunk = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = trunk.local_addr().unwrap().port();
    let flows = dir.join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(
        flows.join("main.yaml"),
        format!(
            "start: out\nsteps:\n  out:\n    transfer: \"{}\"\n    timeout: 10s\n    on_failure: bye\n  bye:\n    hangup: true\n",
            target(port)
        ),
    )
    .unwrap();
    let srv = common::server(|c| {
        c.listen = vec![
            "udp:127.0.0.1:0".parse::<Listen>().unwrap(),
            "tls:127.0.0.1:0".parse::<Listen>().unwrap(),
        ];
        c.tls = Some(hotline::config::TlsConfig {
            ca: Some(engine_certs.ca.clone()),
            ..engine_certs.config()
        });
        c.flows_dir = flows.clone();
    })
    .await;
    (acceptor, trunk, srv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sips_transfer_target_is_called_over_a_verified_tls_connection_that_is_reused() {
    common::logs();
    let dir = folder("trunk");
    let certs = make_certificates(&dir);
    // The trunk: a TLS server with the test authority's certificate for 127.0.0.1.
    let (acceptor, trunk, srv) = trunk_and_engine(&dir, &certs, &certs, |port| {
        format!("sips:desk@127.0.0.1:{port}")
    })
    .await;
    let trunk_addr = trunk.local_addr().unwrap();
    let udp = common::addr(&srv, Protocol::Udp);
    let tls = common::addr(&srv, Protocol::Tls);

    let (_caller, _media, _call) = common::call(udp, "hotline").await;
    let (tcp, _) = timeout(10 * SECOND, trunk.accept())
        .await
        .expect("the hotline connects to the trunk")
        .unwrap();
    let mut conn = timeout(10 * SECOND, acceptor.accept(tcp))
        .await
        .expect("handshake in time")
        .expect("the hotline completes the handshake, trusting tls.ca");
    let mut framer = StreamFramer::new(Limits::default());
    for call in 1..=2 {
        if call == 2 {
            let _ = common::call(udp, "hotline").await;
        }
        let invite = loop {
            let r = request(&mut conn, &mut framer, 10 * SECOND)
                .await
                .unwrap_or_else(|| panic!("call {call}: no INVITE over the TLS connection"));
            if r.method == Method::Invite {
                break r;
            }
        };
        assert_eq!(invite.uri.to_string(), format!("sips:desk@{trunk_addr}"));
        let via = invite
            .headers
            .get(HeaderName::Via)
            .map(|v| v.to_str_lossy().into_owned())
            .unwrap_or_default();
        assert!(
            via.starts_with(&format!("SIP/2.0/TLS 127.0.0.1:{}", tls.port())),
            "Via {via}"
        );
        let mut busy = hotline::sip::message::Response::for_request(&invite, 486, "Busy Here");
        busy.headers.ensure_to_tag("trunk1").unwrap();
        conn.write_all(&busy.to_bytes()).await.unwrap();
        conn.flush().await.unwrap();
        let ack = request(&mut conn, &mut framer, 10 * SECOND)
            .await
            .expect("the 486 is acknowledged");
        assert_eq!(ack.method, Method::Ack);
    }
    // The second call reused the connection: no other was opened.
    assert!(
        timeout(Duration::from_millis(300), trunk.accept())
            .await
            .is_err(),
        "a second connection to the trunk"
    );
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_target_whose_certificate_is_not_trusted_is_not_called() {
    common::logs();
    let dir = folder("untrusted");
    let certs = make_certificates(&dir);
    // The trunk's certificate is from another authority than the hotline's tls.ca.
    let other = make_certificates(&dir.join("other"));
    let (acceptor, trunk, srv) = trunk_and_engine(&dir, &certs, &other, |port| {
        format!("sip:desk@127.0.0.1:{port};transport=tls")
    })
    .await;
    let udp = common::addr(&srv, Protocol::Udp);
    let (mut caller, _media, _call) = common::call(udp, "hotline").await;
    let (tcp, _) = timeout(10 * SECOND, trunk.accept())
        .await
        .expect("the hotline connects")
        .unwrap();
    // The hotline refuses the certificate: the handshake fails, nothing is sent, and the
    // flow goes on (to its hang-up).
    assert!(acceptor.accept(tcp).await.is_err(), "the handshake fails");
    let bye = caller.expect_bye(20 * SECOND).await;
    assert!(
        bye.is_ok(),
        "the caller is hung up after the failed transfer: {bye:?}"
    );
    let stats = srv.server.transport_stats.clone();
    until(&stats, "the failed handshake counted", |s| {
        s.tls_handshake_failed.load(Ordering::Relaxed) == 1
    })
    .await;
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}
