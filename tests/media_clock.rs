//! The media clock over real loopback sockets: a worker owns a session's RTP socket, reads
//! what the far end sends, reports through the sink given with the session, answers
//! commands, and gives the port back when the session is removed; with its packets sent
//! and read through io_uring (a tick's packets in one system call) or one `sendto` each.
//! Timing is not asserted (the machine may be busy); every wait is bounded.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hotline::config::PortRange;
use hotline::media::clock::{EventSink, MediaEngine};
use hotline::media::dtmf::Key;
use hotline::media::g711::{Codec, FRAME_SAMPLES};
use hotline::media::ports::PortPool;
use hotline::media::prompt::Prompt;
use hotline::media::rtp::{RtpSender, TelephoneEvent, parse_rtp};
use hotline::media::session::{
    KeySource, MediaEvent, MediaOrigin, Session, SessionCommand, SessionParams,
};
use hotline::media::uring::{MediaIo, Uring};

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const WAIT: Duration = Duration::from_secs(10);

struct Packet {
    from: SocketAddr,
    pt: u8,
    payload: Vec<u8>,
}

fn receive(peer: &UdpSocket) -> Packet {
    let mut buf = [0u8; 2048];
    let (n, from) = peer.recv_from(&mut buf).expect("a packet from the engine");
    let p = parse_rtp(&buf[..n]).expect("RTP");
    Packet {
        from,
        pt: p.pt,
        payload: p.payload.to_vec(),
    }
}

/// Sends `key` to `to` as the RFC 4733 packets of one press (start, updates, three ends).
fn press(from: &UdpSocket, to: SocketAddr, key: Key, ssrc: u32) {
    let mut rtp = RtpSender::new(ssrc, 1, 0, 0);
    let mut pkt = [0u8; 64];
    for i in 0..7u16 {
        let ev = TelephoneEvent {
            event: key.event_code(),
            end: i >= 4,
            volume: 10,
            duration: (i.min(4) + 1) * FRAME_SAMPLES as u16,
        };
        let n = rtp
            .telephone_event_packet(101, ev, &mut pkt)
            .expect("event packet");
        from.send_to(&pkt[..n], to).expect("send key");
    }
}

fn next_event(rx: &mpsc::Receiver<MediaEvent>) -> MediaEvent {
    rx.recv_timeout(WAIT)
        .expect("an event from the media worker")
}

/// A PCMU session with RFC 4733 keys that sends to `peer` and never times out.
fn pcmu_to(peer: &UdpSocket, ssrc: u32) -> SessionParams {
    SessionParams {
        codec: Codec::Pcmu,
        payload_type: 0,
        telephone_event_pt: Some(101),
        remote: peer.local_addr().expect("addr"),
        no_media_timeout: Duration::from_secs(3600),
        ssrc,
        initial_seq: 1,
        initial_timestamp: 0,
        origin: MediaOrigin::Placed,
        srtp: None,
    }
}

#[test]
fn a_worker_serves_a_session_over_its_own_socket() {
    let engine = MediaEngine::start(1).expect("media worker");
    let pool = PortPool::new(PortRange {
        first: 42_800,
        last: 42_899,
    });
    let free = pool.free_count();
    let port = pool.allocate(LOCAL).expect("RTP port");
    let engine_addr = SocketAddr::new(LOCAL, port.port);
    let peer = UdpSocket::bind(SocketAddr::new(LOCAL, 0)).expect("bind peer");
    peer.set_read_timeout(Some(WAIT)).expect("timeout");
    let params = pcmu_to(&peer, 42);
    let (tx, rx) = mpsc::channel();
    let sink = EventSink::new(move |ev| {
        let _ = tx.send(ev);
    });
    let id = engine.add(port, Session::new(params, Instant::now()), sink);

    // Silence flows from the session's own port.
    let first = receive(&peer);
    assert_eq!(first.from, engine_addr);
    assert_eq!(first.pt, 0);
    assert!(
        first
            .payload
            .iter()
            .all(|&b| b == Codec::Pcmu.silence_byte())
    );

    // A key from the far end reaches the sink once, however many packets it spans.
    let key = Key::from_char('5').expect("key");
    press(&peer, engine_addr, key, 7);
    assert_eq!(
        next_event(&rx),
        MediaEvent::Key {
            key,
            source: KeySource::Rfc4733,
            stopped_play: None
        }
    );

    // The call's answer plays, and its end is reported.
    let prompt = Prompt::from_samples("answer", vec![6000; 3 * FRAME_SAMPLES]);
    engine.command(
        id,
        SessionCommand::Play {
            id: 1,
            prompts: vec![prompt.clone()],
            barge_in: false,
        },
    );
    let want = prompt.frame(Codec::Pcmu, 0).expect("frame").to_vec();
    let heard = (0..500).any(|_| receive(&peer).payload == want);
    assert!(heard, "the prompt's first frame never came");
    assert_eq!(next_event(&rx), MediaEvent::PlayFinished { id: 1 });
    assert!(rx.try_recv().is_err(), "the key was reported once");

    // Removing the session closes its socket and gives the port back.
    engine.remove(id);
    let deadline = Instant::now() + WAIT;
    while pool.free_count() != free {
        assert!(Instant::now() < deadline, "the port never came back");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sessions_added_beside_each_other_hear_each_other() {
    let engine = MediaEngine::start(2).expect("media workers");
    let pool = PortPool::new(PortRange {
        first: 42_700,
        last: 42_799,
    });
    let mut peers = Vec::new();
    let mut ids: Vec<u64> = Vec::new();
    for i in 0..2u32 {
        let port = pool.allocate(LOCAL).expect("RTP port");
        let engine_addr = SocketAddr::new(LOCAL, port.port);
        let peer = UdpSocket::bind(SocketAddr::new(LOCAL, 0)).expect("bind peer");
        peer.set_read_timeout(Some(WAIT)).expect("timeout");
        let params = pcmu_to(&peer, i);
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let session = Session::new(params, Instant::now());
        let id = match ids.first() {
            Some(&a) => engine.add_beside(a, port, session, tx),
            None => engine.add(port, session, tx),
        };
        ids.push(id);
        peers.push((peer, engine_addr));
    }
    engine.bridge(ids[0], ids[1]);
    // What the first far end says comes out at the second, in bounded time.
    let mut frame = [0u8; FRAME_SAMPLES];
    Codec::Pcmu.encode_into(&[5000; FRAME_SAMPLES], &mut frame);
    let mut rtp = RtpSender::new(9, 1, 0, 0);
    let mut pkt = [0u8; 256];
    let mut heard = false;
    for _ in 0..250 {
        let n = rtp.next_packet(&frame, &mut pkt).expect("packet");
        peers[0].0.send_to(&pkt[..n], peers[0].1).expect("send");
        if receive(&peers[1].0).payload == frame {
            heard = true;
            break;
        }
    }
    assert!(heard, "bridged audio never crossed");
}

/// Many sessions on one worker: every far end gets its own session's packets, from that
/// session's port, and every session hears its own far end.
fn each_session_sends_from_its_port_and_hears_its_peer(io: MediaIo, first_port: u16) {
    const N: usize = 24;
    let engine = MediaEngine::start_with(1, io).expect("media worker");
    let pool = PortPool::new(PortRange {
        first: first_port,
        last: first_port + 2 * N as u16 + 20,
    });
    let (tx, rx) = mpsc::channel();
    let mut calls = Vec::new();
    for i in 0..N {
        let port = pool.allocate(LOCAL).expect("RTP port");
        let engine_addr = SocketAddr::new(LOCAL, port.port);
        let peer = UdpSocket::bind(SocketAddr::new(LOCAL, 0)).expect("bind peer");
        peer.set_read_timeout(Some(WAIT)).expect("timeout");
        let params = pcmu_to(&peer, 1000 + i as u32);
        let tx = tx.clone();
        let sink = EventSink::new(move |ev| {
            let _ = tx.send((i, ev));
        });
        engine.add(port, Session::new(params, Instant::now()), sink);
        calls.push((peer, engine_addr));
    }

    // Three ticks' packets: each from the right port, with the right session's SSRC.
    let mut buf = [0u8; 2048];
    for _ in 0..3 {
        for (i, (peer, engine_addr)) in calls.iter().enumerate() {
            let (n, from) = peer.recv_from(&mut buf).expect("a packet from the engine");
            let p = parse_rtp(&buf[..n]).expect("RTP");
            assert_eq!(from, *engine_addr, "call {i}: sent from another port");
            assert_eq!(
                p.ssrc,
                1000 + i as u32,
                "call {i}: another session's packet"
            );
        }
    }

    // One key from each far end, read by the worker and reported to that call only.
    for (i, (peer, engine_addr)) in calls.iter().enumerate() {
        let key = Key::from_char(char::from(b'0' + (i % 10) as u8)).expect("key");
        press(peer, *engine_addr, key, 7 + i as u32);
    }
    let mut heard = [None; N];
    for _ in 0..N {
        let (i, ev) = rx.recv_timeout(WAIT).expect("a key event");
        match ev {
            MediaEvent::Key { key, .. } => {
                assert!(heard[i].is_none(), "call {i}: the key was reported twice");
                heard[i] = Some(key.as_char());
            }
            other => panic!("call {i}: unexpected {other:?}"),
        }
    }
    for (i, k) in heard.iter().enumerate() {
        assert_eq!(*k, Some(char::from(b'0' + (i % 10) as u8)), "call {i}");
    }

    let stats = &engine.stats()[0];
    let want_ring = io == MediaIo::Uring && Uring::new().is_ok();
    assert_eq!(stats.uring.load(Ordering::Relaxed), want_ring);
    assert_eq!(stats.send_errors.load(Ordering::Relaxed), 0);
}

#[test]
fn the_batched_path_sends_each_packet_from_its_sessions_port() {
    each_session_sends_from_its_port_and_hears_its_peer(MediaIo::Uring, 43_000);
}

#[test]
fn the_sendto_path_sends_each_packet_from_its_sessions_port() {
    each_session_sends_from_its_port_and_hears_its_peer(MediaIo::Sendto, 43_200);
}
