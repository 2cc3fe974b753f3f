//! Micro-measurements of the media clock's per-call work, to explain the load tool's CPU
//! figures: what one session costs per 20 ms tick, and its parts (the pure session alone,
//! plain and on an SRTP leg; SRTP protect and unprotect of one packet; the in-band DTMF
//! detector on every received frame, an empty receive, one loopback send). They are tests marked `#[ignore]` so that they run only when asked for:
//!
//! ```text
//! cargo test --release --bench media_tick -- --ignored --nocapture --test-threads 1
//! ```
//!
//! Figures print as nanoseconds per operation; nothing is asserted about them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use hotline::config::PortRange;
use hotline::media::dtmf::goertzel::InbandDetector;
use hotline::media::g711::Codec;
use hotline::media::ports::PortPool;
use hotline::media::rtp::RtpSender;
use hotline::media::session::{MediaOrigin, Session, SessionParams};
use hotline::media::srtp::{MasterKey, SrtpKeys, SrtpReceiver, SrtpSender, SrtpSuite};

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn per_op(label: &str, n: u64, took: Duration) {
    println!(
        "{label:<48} {:>9.0} ns/op  ({n} ops)",
        took.as_nanos() as f64 / n as f64
    );
}

/// Quiet line noise, as a caller's silence really sounds after G.711.
fn noise_frame() -> [i16; 160] {
    let mut f = [0i16; 160];
    let mut x = 12345u32;
    for s in &mut f {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        *s = ((x >> 16) % 64) as i16 - 32;
    }
    f
}

#[test]
#[ignore]
fn inband_detector_per_frame() {
    let frame = noise_frame();
    let mut d = InbandDetector::new();
    let n = 200_000u64;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(d.push_frame(std::hint::black_box(&frame)));
    }
    per_op("InbandDetector::push_frame (160 samples)", n, t.elapsed());
}

#[test]
#[ignore]
fn empty_receive() {
    let s = UdpSocket::bind(SocketAddr::new(LOCAL, 0)).expect("bind");
    s.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 2048];
    let n = 500_000u64;
    let t = Instant::now();
    for _ in 0..n {
        let _ = std::hint::black_box(s.recv_from(&mut buf));
    }
    per_op("recv_from on an empty socket (EAGAIN)", n, t.elapsed());
}

#[test]
#[ignore]
fn loopback_send_and_receive() {
    let a = UdpSocket::bind(SocketAddr::new(LOCAL, 0)).expect("bind");
    let b = UdpSocket::bind(SocketAddr::new(LOCAL, 0)).expect("bind");
    b.set_nonblocking(true).expect("nonblocking");
    let to = b.local_addr().expect("addr");
    let pkt = [0x80u8; 172];
    let mut buf = [0u8; 2048];
    let rounds = 20_000u64;
    let (mut send, mut recv) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..10 {
            let _ = a.send_to(&pkt, to);
        }
        send += t.elapsed();
        let t = Instant::now();
        for _ in 0..10 {
            let _ = b.recv_from(&mut buf);
        }
        recv += t.elapsed();
    }
    per_op("send_to 172 bytes on loopback", rounds * 10, send);
    per_op("recv_from with a packet waiting", rounds * 10, recv);
}

/// `calls` sessions, each with a peer that sends one PCMU frame per tick, served as a media
/// worker serves them (read what arrived, tick, send the frame owed): the cost of one tick
/// per session, sockets included.
fn session_ticks(calls: usize, te: Option<u8>) -> Duration {
    let pool = PortPool::new(PortRange {
        first: 24_000,
        last: 24_000 + 2 * calls as u16 + 200,
    });
    let now = Instant::now();
    let mut sessions = Vec::new();
    let mut peers = Vec::new();
    for i in 0..calls {
        let peer = UdpSocket::bind(SocketAddr::new(LOCAL, 0)).expect("bind peer");
        peer.set_nonblocking(true).expect("nonblocking");
        let port = pool.allocate(LOCAL).expect("port");
        let engine_addr = SocketAddr::new(LOCAL, port.port);
        let params = SessionParams {
            codec: Codec::Pcmu,
            payload_type: 0,
            telephone_event_pt: te,
            remote: peer.local_addr().expect("addr"),
            no_media_timeout: Duration::from_secs(3600),
            ssrc: i as u32,
            initial_seq: 1,
            initial_timestamp: 0,
            origin: MediaOrigin::Placed,
            srtp: None,
        };
        sessions.push((port, Session::new(params, now)));
        let sender = RtpSender::new(7_000 + i as u32, 1, 0, 0);
        peers.push((peer, engine_addr, sender));
    }
    let mut frame = [0u8; 160];
    Codec::Pcmu.encode_into(&noise_frame(), &mut frame);
    let mut buf = vec![0u8; 2048];
    let mut pkt = [0u8; 2048];
    let mut in_tick = Duration::ZERO;
    for _ in 0..200 {
        for (peer, to, sender) in &mut peers {
            if let Ok(n) = sender.next_packet(&frame, &mut pkt) {
                let _ = peer.send_to(&pkt[..n], *to);
            }
        }
        let t = Instant::now();
        let now = Instant::now();
        for (port, s) in &mut sessions {
            if let Ok((n, from)) = port.socket.recv_from(&mut buf) {
                s.handle_packet(now, from, &buf[..n]);
            }
            s.tick(now);
            if let Some(tx) = s.poll_transmit(now, &mut buf) {
                let _ = port.socket.send_to(&buf[..tx.len], tx.destination);
            }
        }
        in_tick += t.elapsed();
        for (peer, _, _) in &peers {
            while peer.recv_from(&mut pkt).is_ok() {}
        }
        for (_, s) in &mut sessions {
            while s.poll_event().is_some() {}
        }
    }
    in_tick / (200 * calls as u32)
}

/// A PCMU session with telephone-events toward `remote`, SRTP when `srtp` is given.
fn bench_params(remote: SocketAddr, srtp: Option<SrtpKeys>) -> SessionParams {
    SessionParams {
        codec: Codec::Pcmu,
        payload_type: 0,
        telephone_event_pt: Some(101),
        remote,
        no_media_timeout: Duration::from_secs(3600),
        ssrc: 1,
        initial_seq: 1,
        initial_timestamp: 0,
        origin: MediaOrigin::Placed,
        srtp,
    }
}

/// The session alone, without sockets: what the pure state machine costs per tick.
#[test]
#[ignore]
fn pure_session_tick() {
    let remote = SocketAddr::new(LOCAL, 40_000);
    let params = bench_params(remote, None);
    let mut now = Instant::now();
    let mut s = Session::new(params, now);
    let mut sender = RtpSender::new(7_000, 1, 0, 0);
    let mut frame = [0u8; 160];
    Codec::Pcmu.encode_into(&noise_frame(), &mut frame);
    let mut pkt = [0u8; 2048];
    let mut out = [0u8; 2048];
    let n = 200_000u64;
    let t = Instant::now();
    for _ in 0..n {
        now += Duration::from_millis(20);
        if let Ok(len) = sender.next_packet(&frame, &mut pkt) {
            s.handle_packet(now, remote, &pkt[..len]);
        }
        s.tick(now);
        std::hint::black_box(s.poll_transmit(now, &mut out));
    }
    per_op(
        "Session: handle_packet + tick + poll_transmit",
        n,
        t.elapsed(),
    );
}

/// SRTP (AES-128 counter mode, HMAC-SHA1 80) on one 172-byte PCMU packet: protect, and
/// unprotect (authenticate, replay check, decrypt).
#[test]
#[ignore]
fn srtp_protect_unprotect() {
    let key = MasterKey::from_bytes(&[7; 30]);
    let suite = SrtpSuite::AesCm128HmacSha1_80;
    let mut tx = SrtpSender::new(&key, suite);
    let mut rx = SrtpReceiver::new(&key, suite);
    let mut sender = RtpSender::new(7_000, 1, 0, 0);
    let mut frame = [0u8; 160];
    Codec::Pcmu.encode_into(&noise_frame(), &mut frame);
    let n = 200_000u64;
    let mut packets = Vec::with_capacity(n as usize);
    let mut buf = [0u8; 256];
    let mut protect = Duration::ZERO;
    for _ in 0..n {
        let Ok(len) = sender.next_packet(&frame, &mut buf) else {
            continue;
        };
        let t = Instant::now();
        let out = tx.protect(&mut buf, len);
        protect += t.elapsed();
        if let Ok(out) = out {
            packets.push(buf[..out].to_vec());
        }
    }
    per_op("SRTP protect, 172-byte RTP packet", n, protect);
    let t = Instant::now();
    for p in &mut packets {
        std::hint::black_box(rx.unprotect(p).is_ok());
    }
    per_op("SRTP unprotect, 182-byte SRTP packet", n, t.elapsed());
}

/// [`pure_session_tick`] on an SRTP leg: the same work plus unprotect and protect.
#[test]
#[ignore]
fn pure_srtp_session_tick() {
    let remote = SocketAddr::new(LOCAL, 40_000);
    let key = MasterKey::from_bytes(&[7; 30]);
    let suite = SrtpSuite::AesCm128HmacSha1_80;
    let params = bench_params(
        remote,
        Some(SrtpKeys {
            suite,
            tag: 1,
            inbound: key.clone(),
            outbound: key.clone(),
        }),
    );
    let mut now = Instant::now();
    let mut s = Session::new(params, now);
    let mut sender = RtpSender::new(7_000, 1, 0, 0);
    let mut far = SrtpSender::new(&key, suite);
    let mut frame = [0u8; 160];
    Codec::Pcmu.encode_into(&noise_frame(), &mut frame);
    let n = 200_000u64;
    // Protected beforehand: only the engine's side is timed.
    let mut packets = Vec::with_capacity(n as usize);
    let mut pkt = [0u8; 256];
    for _ in 0..n {
        if let Ok(len) = sender.next_packet(&frame, &mut pkt)
            && let Ok(out) = far.protect(&mut pkt, len)
        {
            packets.push(pkt[..out].to_vec());
        }
    }
    let mut out = [0u8; 2048];
    let t = Instant::now();
    for p in &packets {
        now += Duration::from_millis(20);
        s.handle_packet(now, remote, p);
        s.tick(now);
        std::hint::black_box(s.poll_transmit(now, &mut out));
    }
    assert_eq!(s.stats.srtp_auth_failed, 0);
    per_op(
        "SRTP session: handle_packet + tick + poll_transmit",
        n,
        t.elapsed(),
    );
}

#[test]
#[ignore]
fn session_tick_per_call() {
    for calls in [100usize, 1000] {
        let d = session_ticks(calls, Some(101));
        per_op(
            &format!("one tick per session, {calls} sessions (recv+detect+send)"),
            1,
            d,
        );
    }
}
