//! The media side of a public number over real loopback sockets: a spoofed INVITE makes
//! the engine send no audio anywhere, RTP sprayed at a call's port from another address
//! neither takes the call's audio nor its keys, and a flood at one call's port does not
//! stall another call on the same media worker. Every wait is bounded; timing is asserted
//! only with generous margins.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{SECOND, addr, prompt, server};
use hotline::config::{PortRange, Protocol};
use hotline::media::clock::{EventSink, MediaEngine};
use hotline::media::dtmf::Key;
use hotline::media::g711::{Codec, FRAME_SAMPLES};
use hotline::media::ports::PortPool;
use hotline::media::rtp::{RtpSender, TelephoneEvent};
use hotline::media::session::{MediaOrigin, Session, SessionParams};
use hotline::server::RunningServer;
use hotline::sip::message::Method;
use hotline_load::caller::{CallMedia, KeyMethod, Offer, Phone};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A server that trusts no source: every caller is held to its own addresses.
async fn untrusting_server() -> RunningServer {
    server(|c| c.guard.trusted.clear()).await
}

/// Reads from `sock` until `within` passes; how many datagrams arrived.
fn count_arrivals(sock: &UdpSocket, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    let mut n = 0;
    let mut buf = [0u8; 2048];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return n;
        }
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        if sock.recv_from(&mut buf).is_ok() {
            n += 1;
        }
    }
}

/// SDP naming `media` as the caller's audio address.
fn sdp_naming(media: SocketAddr) -> String {
    format!(
        "v=0\r\no=x 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n",
        ip = media.ip(),
        port = media.port()
    )
}

/// Sends an INVITE whose SDP names `media` and waits for the 200 (never ACKed here).
async fn invite_naming(
    phone: &mut Phone,
    media: SocketAddr,
) -> (String, String, hotline::sip::message::Response) {
    let call_id = format!("spoof-{}@test", media.port());
    let from_tag = "spoof".to_string();
    let invite = phone.invite_text("hotline", &call_id, &from_tag, 1, &sdp_naming(media));
    phone.send_raw(invite.as_bytes()).await.expect("INVITE");
    let mut resp = phone
        .response(&call_id, &Method::Invite, 180, 10 * SECOND)
        .await
        .expect("an answer");
    if resp.status < 200 {
        resp = phone
            .response(&call_id, &Method::Invite, 200, 10 * SECOND)
            .await
            .expect("a 200");
    }
    assert_eq!(resp.status, 200);
    (call_id, from_tag, resp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoofed_invite_sends_no_audio_to_the_address_it_names() {
    common::logs();
    for trusting in [true, false] {
        let srv = if trusting {
            server(|_| {}).await
        } else {
            untrusting_server().await
        };
        let sip = addr(&srv, Protocol::Udp);
        // The address the INVITE names: a socket that never sends anything.
        let victim = UdpSocket::bind((LOCALHOST, 0)).expect("victim");
        let mut phone = Phone::new(Protocol::Udp, sip).await.unwrap();
        let (call_id, from_tag, resp) =
            invite_naming(&mut phone, victim.local_addr().unwrap()).await;
        // No ACK, no RTP: nothing reaches the named address.
        let v = victim.try_clone().unwrap();
        let got = tokio::task::spawn_blocking(move || count_arrivals(&v, 3 * SECOND))
            .await
            .unwrap();
        assert_eq!(
            got, 0,
            "trusting {trusting}: audio sent to an unproven address"
        );
        // The ACK from the signalling address, whose IP the SDP names: now audio flows
        // (the check above could have seen it).
        let ack = phone.ack_text("hotline", &call_id, &from_tag, &resp, 1, "", false);
        phone.send_raw(ack.as_bytes()).await.expect("ACK");
        let v = victim.try_clone().unwrap();
        let got = tokio::task::spawn_blocking(move || count_arrivals(&v, 2 * SECOND))
            .await
            .unwrap();
        assert!(got > 10, "trusting {trusting}: {got} packets after the ACK");
    }

    // An untrusted caller that names another IP than its own gets nothing there, ACK or not.
    let srv = untrusting_server().await;
    let third = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 3), 0)).expect("third address");
    let mut phone = Phone::new(Protocol::Udp, addr(&srv, Protocol::Udp))
        .await
        .unwrap();
    let (call_id, from_tag, resp) = invite_naming(&mut phone, third.local_addr().unwrap()).await;
    let ack = phone.ack_text("hotline", &call_id, &from_tag, &resp, 1, "", false);
    phone.send_raw(ack.as_bytes()).await.expect("ACK");
    let got = tokio::task::spawn_blocking(move || count_arrivals(&third, 3 * SECOND))
        .await
        .unwrap();
    assert_eq!(
        got, 0,
        "audio sent to an address the signalling never came from"
    );
}

/// RTP of the call's codec and RFC 4733 presses of `key` from `from` to `to`.
fn spray(from: &UdpSocket, to: SocketAddr, key: char, packets: usize) {
    let mut rtp = RtpSender::new(0x5eed, 1, 0, 0);
    let mut buf = [0u8; 256];
    let key = Key::from_char(key).expect("key");
    for i in 0..packets {
        let n = if i % 2 == 0 {
            rtp.next_packet(&[0x10; FRAME_SAMPLES], &mut buf).unwrap()
        } else {
            let ev = TelephoneEvent {
                event: key.event_code(),
                end: i % 4 == 3,
                volume: 10,
                duration: 160,
            };
            let n = rtp.telephone_event_packet(101, ev, &mut buf).unwrap();
            rtp.finish_event();
            rtp.skip(FRAME_SAMPLES as u32);
            n
        };
        let _ = from.send_to(&buf[..n], to);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtp_sprayed_from_another_address_takes_neither_audio_nor_keys() {
    common::logs();
    let srv = untrusting_server().await;
    let mut phone = Phone::new(Protocol::Udp, addr(&srv, Protocol::Udp))
        .await
        .unwrap();
    let media = CallMedia::bind(LOCALHOST, true).unwrap();
    let call = phone
        .call("hotline", &media, Offer::Default)
        .await
        .expect("call answered");
    // Right after the 200, before the caller's first packet: a stranger sprays audio and
    // the global key 0.
    let stranger = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 2), 0)).expect("stranger");
    spray(&stranger, call.remote_rtp, '0', 200);
    media.connect(
        call.remote_rtp,
        call.codec,
        call.payload_type,
        call.telephone_event_pt,
    );
    let welcome = prompt("en", "welcome");
    let w = media
        .wait_for_prompt(&welcome, 0, 5 * SECOND)
        .await
        .expect("the caller hears the welcome");
    // Mid-call, long after the first seconds: another spray with the key 0.
    tokio::time::sleep(3 * SECOND).await;
    spray(&stranger, call.remote_rtp, '0', 200);
    media.press_all("1", KeyMethod::Rfc4733);
    let menu = prompt("en", "main_menu");
    media
        .wait_for_prompt(&menu, w, 10 * SECOND)
        .await
        .expect("the caller's own key leads on");
    assert_eq!(
        media.find_prompt(&prompt("en", "advisors_busy"), 0),
        None,
        "the stranger's key 0 never reached the flow"
    );
    // The stranger heard nothing, and the call is still up.
    stranger.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 2048];
    assert!(
        stranger.recv_from(&mut buf).is_err(),
        "audio went to the stranger"
    );
    assert!(
        phone.expect_bye(2 * SECOND).await.is_err(),
        "the call was not hung up for lack of media"
    );
    let foreign: u64 = srv
        .server
        .deps
        .media
        .stats()
        .iter()
        .map(|s| s.rtp_rejected_foreign.load(Ordering::Relaxed))
        .sum();
    assert!(foreign >= 200, "{foreign} foreign packets counted");
}

fn params_to(peer: SocketAddr, ssrc: u32) -> SessionParams {
    SessionParams {
        codec: Codec::Pcmu,
        payload_type: 0,
        telephone_event_pt: Some(101),
        remote: peer,
        no_media_timeout: Duration::from_secs(3600),
        ssrc,
        initial_seq: 1,
        initial_timestamp: 0,
        origin: MediaOrigin::Placed,
        srtp: None,
    }
}

/// The largest gap between packets `sock` received while `busy` returns true.
fn gaps_while(sock: &UdpSocket, mut busy: impl FnMut() -> bool) -> (usize, Duration) {
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 2048];
    let mut last = None::<Instant>;
    let mut worst = Duration::ZERO;
    let mut n = 0;
    while busy() {
        if sock.recv_from(&mut buf).is_ok() {
            let now = Instant::now();
            if let Some(l) = last {
                worst = worst.max(now - l);
            }
            last = Some(now);
            n += 1;
        }
    }
    (n, worst)
}

#[test]
fn a_flood_at_one_port_does_not_stall_another_call_on_the_same_worker() {
    let engine = MediaEngine::start(1).expect("media worker");
    let pool = PortPool::new(PortRange {
        first: 43_700,
        last: 43_799,
    });
    let flooded_port = pool.allocate(LOCALHOST).expect("port");
    let flooded = SocketAddr::new(LOCALHOST, flooded_port.port);
    let calm_port = pool.allocate(LOCALHOST).expect("port");
    let a_peer = UdpSocket::bind((LOCALHOST, 0)).unwrap();
    let b_peer = UdpSocket::bind((LOCALHOST, 0)).unwrap();
    let (tx, _rx) = mpsc::channel();
    let tx2 = tx.clone();
    engine.add(
        flooded_port,
        Session::new(params_to(a_peer.local_addr().unwrap(), 1), Instant::now()),
        EventSink::new(move |e| {
            let _ = tx.send(e);
        }),
    );
    engine.add(
        calm_port,
        Session::new(params_to(b_peer.local_addr().unwrap(), 2), Instant::now()),
        EventSink::new(move |e| {
            let _ = tx2.send(e);
        }),
    );
    // Warm up: the calm call's audio flows.
    let (warm, _) = {
        let until = Instant::now() + SECOND;
        gaps_while(&b_peer, || Instant::now() < until)
    };
    assert!(warm > 0, "the calm call is served");

    // The flood: the caller's own address sends key events and audio as fast as it can,
    // bounded in count and time.
    let flooder = a_peer.try_clone().unwrap();
    let flood = std::thread::spawn(move || {
        let mut rtp = RtpSender::new(0xf100d, 1, 0, 0);
        let mut buf = [0u8; 1500];
        let giant = [0x55u8; 1200];
        let started = Instant::now();
        let mut sent = 0u64;
        while sent < 2_000_000 && started.elapsed() < 2 * SECOND {
            let n = if sent.is_multiple_of(3) {
                rtp.next_packet(&giant, &mut buf).unwrap()
            } else {
                let ev = TelephoneEvent {
                    event: (sent % 16) as u8,
                    end: false,
                    volume: 10,
                    duration: 160,
                };
                let n = rtp.telephone_event_packet(101, ev, &mut buf).unwrap();
                rtp.finish_event();
                rtp.skip(160);
                n
            };
            let _ = flooder.send_to(&buf[..n], flooded);
            sent += 1;
        }
        (sent, started.elapsed())
    });
    let (during, worst) = gaps_while(&b_peer, || !flood.is_finished());
    let (sent, lasted) = flood.join().unwrap();
    let stats = &engine.stats()[0];
    let keys_dropped = stats.keys_dropped.load(Ordering::Relaxed);
    eprintln!(
        "flood: {sent} packets in {lasted:?} at one port; the other call got {during} packets, worst gap {worst:?}; keys dropped {keys_dropped}"
    );
    let owed = (lasted.as_millis() / 20) as usize;
    // The calm call kept its cadence (generous: the machine may be busy).
    assert!(worst < Duration::from_millis(500), "worst gap {worst:?}");
    assert!(
        during * 2 >= owed,
        "only {during} of {owed} packets during the flood"
    );
    assert!(keys_dropped > 0, "the key storm was bounded");
}

/// The caller of a call that just ended may go on sending to its port for a while (a phone
/// slow to stop, a media relay in front of it). The next call does not get that port, so
/// the stale stream cannot be latched as the next caller: that caller hears the welcome
/// from its start though it speaks only after the stale stream had time to be latched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_still_sending_after_its_call_ended_does_not_take_the_next_call() {
    // Two RTP ports: a port handed straight back would go to every other next call.
    let srv = server(|c| {
        c.rtp_ports = PortRange {
            first: 49700,
            last: 49703,
        }
    })
    .await;
    let ports = srv.server.deps.ports.clone();
    let mut phone = Phone::new(Protocol::Udp, addr(&srv, Protocol::Udp))
        .await
        .unwrap();
    let welcome = prompt("en", "welcome");
    for round in 0..3 {
        let (mut first, stale, mut ended) =
            common::call(addr(&srv, Protocol::Udp), "hotline").await;
        stale
            .wait_for_prompt(&welcome, 0, 5 * SECOND)
            .await
            .expect("the first caller hears the welcome");
        first.hang_up(&mut ended).await.expect("BYE answered");
        let deadline = Instant::now() + 10 * SECOND;
        while ports.in_use() > 0 {
            assert!(Instant::now() < deadline, "the ended call's port came back");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // The first caller goes on sending to its port all through the next call.
        let media = CallMedia::bind(LOCALHOST, true).unwrap();
        let mut next = phone
            .call("hotline", &media, Offer::Default)
            .await
            .expect("call answered");
        assert_ne!(
            next.remote_rtp, ended.remote_rtp,
            "round {round}: the port that just came back went to the next call"
        );
        // Fifteen stale packets' head start before the next caller's first.
        tokio::time::sleep(Duration::from_millis(300)).await;
        media.connect(
            next.remote_rtp,
            next.codec,
            next.payload_type,
            next.telephone_event_pt,
        );
        let at = media
            .wait_for_prompt(&welcome, 0, 5 * SECOND)
            .await
            .expect("the next caller hears the welcome");
        assert!(at < 10, "round {round}: the welcome started at frame {at}");
        phone.hang_up(&mut next).await.expect("BYE answered");
        stale.close();
    }
}
