//! RTP sending, parsing, latching and counting through the public API, with the `rtp`
//! crate as an independent oracle for the wire format.

use bytes::Bytes;
use hotline::media::rtp::{
    Arrival, LatchConfig, LatchVerdict, RTP_HEADER_LEN, RtpError, RtpPacketRef, RtpReceiver,
    RtpSender, SymmetricLatch, TelephoneEvent, parse_rtp,
};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use webrtc_util::{Marshal, Unmarshal};

fn oracle(buf: &[u8]) -> rtp::packet::Packet {
    let mut b = Bytes::copy_from_slice(buf);
    rtp::packet::Packet::unmarshal(&mut b).expect("oracle parses")
}

fn send(s: &mut RtpSender, payload: &[u8]) -> Vec<u8> {
    let mut buf = [0u8; 1500];
    let n = s.next_packet(payload, &mut buf).expect("fits");
    buf[..n].to_vec()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address literal")
}

// ----- sending ---------------------------------------------------------------------------

#[test]
fn sender_output_matches_oracle() {
    let cases = [
        (0u32, 0u16, 0u32, 0u8),
        (0xffff_ffff, 0xffff, 0xffff_ffff, 127),
        (0x1234_5678, 40_000, 3_000_000_000, 8),
        (1, 1, 1, 101),
    ];
    for (ssrc, seq, ts, pt) in cases {
        let mut s = RtpSender::new(ssrc, seq, ts, pt);
        let payload: Vec<u8> = (0..160u8).collect();
        for i in 0..3u16 {
            let bytes = send(&mut s, &payload);
            let p = oracle(&bytes);
            assert_eq!(p.header.version, 2);
            assert!(!p.header.padding && !p.header.extension && p.header.csrc.is_empty());
            assert_eq!(p.header.marker, i == 0, "marker only on the first packet");
            assert_eq!(p.header.payload_type, pt);
            assert_eq!(p.header.sequence_number, seq.wrapping_add(i));
            assert_eq!(p.header.timestamp, ts.wrapping_add(160 * u32::from(i)));
            assert_eq!(p.header.ssrc, ssrc);
            assert_eq!(&p.payload[..], &payload[..]);

            let ours = parse_rtp(&bytes).expect("we parse our own packets");
            assert_eq!(
                (ours.pt, ours.seq, ours.timestamp, ours.ssrc, ours.marker),
                (pt, seq.wrapping_add(i), p.header.timestamp, ssrc, i == 0)
            );
            assert_eq!(ours.payload, &payload[..]);
        }
    }
}

#[test]
fn sequence_and_timestamp_wrap() {
    let mut s = RtpSender::new(7, 65_534, u32::MAX - 200, 0);
    let seqs_ts: Vec<(u16, u32)> = (0..4)
        .map(|_| {
            let b = send(&mut s, &[0xff; 160]);
            let p = parse_rtp(&b).expect("parses");
            (p.seq, p.timestamp)
        })
        .collect();
    assert_eq!(
        seqs_ts,
        [
            (65_534, u32::MAX - 200),
            (65_535, u32::MAX - 40),
            (0, 119),
            (1, 279)
        ]
    );
}

#[test]
fn clock_runs_through_silence_and_marks_talkspurts() {
    let mut s = RtpSender::new(1, 100, 8000, 0);
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(send(&mut s, &[0; 160]));
    }
    // Two frames of silence between prompts: nothing sent, time passes.
    s.skip(160);
    s.skip(160);
    s.skip(0);
    got.push(send(&mut s, &[0; 160]));
    got.push(send(&mut s, &[0; 160]));
    s.start_talkspurt();
    got.push(send(&mut s, &[0; 80]));
    got.push(send(&mut s, &[0; 160]));

    let seen: Vec<(u16, u32, bool)> = got
        .iter()
        .map(|b| {
            let p = parse_rtp(b).expect("parses");
            (p.seq, p.timestamp, p.marker)
        })
        .collect();
    assert_eq!(
        seen,
        [
            (100, 8000, true),
            (101, 8160, false),
            (102, 8320, false),
            (103, 8800, true),
            (104, 8960, false),
            (105, 9120, true),
            (106, 9200, false),
        ]
    );
    let stats = s.stats();
    assert_eq!((stats.packets, stats.octets), (7, 6 * 160 + 80));
}

#[test]
fn telephone_events() {
    let mut s = RtpSender::new(9, 10, 50_000, 0);
    let mut buf = [0u8; 64];
    send(&mut s, &[0; 160]);
    let mut events = Vec::new();
    for (i, end) in [(1u16, false), (2, false), (3, true), (3, true), (3, true)] {
        let ev = TelephoneEvent {
            event: 11,
            end,
            volume: 10,
            duration: 400 * i,
        };
        let n = s.telephone_event_packet(101, ev, &mut buf).expect("fits");
        assert_eq!(n, RTP_HEADER_LEN + 4);
        events.push(buf[..n].to_vec());
        s.skip(160); // the media clock keeps running while the event plays
    }
    s.finish_event();
    for (i, b) in events.iter().enumerate() {
        let p = parse_rtp(b).expect("parses");
        let o = oracle(b);
        assert_eq!(o.header.payload_type, 101);
        assert_eq!(p.pt, 101);
        assert_eq!(p.timestamp, 50_160, "one timestamp for the whole event");
        assert_eq!(p.seq, 11 + i as u16);
        assert_eq!(p.marker, i == 0);
        let end = if i >= 2 { 0x80 } else { 0 };
        let dur = (400 * (i.min(2) as u16 + 1)).to_be_bytes();
        assert_eq!(p.payload, [11, end | 10, dur[0], dur[1]]);
    }
    let audio = send(&mut s, &[0; 160]);
    let p = parse_rtp(&audio).expect("parses");
    assert_eq!((p.seq, p.timestamp, p.marker), (16, 50_160 + 5 * 160, true));

    // The next event starts at the current clock with a fresh marker.
    let ev = TelephoneEvent {
        event: 1,
        end: false,
        volume: 10,
        duration: 160,
    };
    let n = s.telephone_event_packet(101, ev, &mut buf).expect("fits");
    let p = parse_rtp(&buf[..n]).expect("parses");
    assert_eq!((p.timestamp, p.marker), (50_160 + 6 * 160, true));
}

#[test]
fn small_buffer_changes_nothing() {
    let mut s = RtpSender::new(1, 5, 5, 0);
    let mut small = [0u8; 100];
    let e = s.next_packet(&[0; 160], &mut small).expect_err("too small");
    assert_eq!(
        e,
        RtpError::BufferTooSmall {
            expected: 172,
            found: 100
        }
    );
    assert_eq!((s.seq(), s.timestamp(), s.stats().packets), (5, 5, 0));
    let b = send(&mut s, &[0; 160]);
    assert!(parse_rtp(&b).expect("parses").marker);
}

// ----- parsing ---------------------------------------------------------------------------

fn oracle_packet(csrc: Vec<u32>, ext: bool, padding: bool, payload: &[u8]) -> Vec<u8> {
    let mut header = rtp::header::Header {
        version: 2,
        padding,
        marker: true,
        payload_type: 96,
        sequence_number: 4242,
        timestamp: 0xcafe_babe,
        ssrc: 0x0bad_f00d,
        csrc,
        ..Default::default()
    };
    if ext {
        header
            .set_extension(1, Bytes::from_static(&[0xaa, 0xbb]))
            .expect("one-byte extension");
    }
    let pkt = rtp::packet::Packet {
        header,
        payload: Bytes::copy_from_slice(payload),
    };
    pkt.marshal().expect("oracle marshals").to_vec()
}

#[test]
fn parse_matches_oracle_with_csrc_extension_and_padding() {
    let payload = [1u8, 2, 3, 4, 5];
    for csrc in [
        vec![],
        vec![1],
        vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    ] {
        for ext in [false, true] {
            for padding in [false, true] {
                let bytes = oracle_packet(csrc.clone(), ext, padding, &payload);
                assert_eq!(bytes[0] & 0x20 != 0, padding, "the oracle wrote padding");
                assert_eq!(bytes[0] & 0x10 != 0, ext, "the oracle wrote an extension");
                let o = oracle(&bytes);
                let p = parse_rtp(&bytes).expect("parses");
                assert_eq!(
                    p.payload,
                    &o.payload[..],
                    "csrc {csrc:?} ext {ext} pad {padding}"
                );
                assert_eq!(p.payload, payload);
                assert_eq!(
                    (p.pt, p.seq, p.timestamp, p.ssrc, p.marker),
                    (96, 4242, 0xcafe_babe, 0x0bad_f00d, true)
                );
                assert_eq!(usize::from(p.csrc_count), csrc.len());
                assert_eq!(
                    p.extension.map(|(profile, _)| profile),
                    ext.then_some(0xbede)
                );
            }
        }
    }
}

fn header(b0: u8, b1: u8) -> Vec<u8> {
    let mut v = vec![b0, b1, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
    v.extend_from_slice(&[0xd5; 20]);
    v
}

#[test]
fn parse_rejects_bad_versions() {
    for b0 in [0x00u8, 0x40, 0xc0] {
        assert_eq!(
            parse_rtp(&header(b0, 0)),
            Err(RtpError::BadVersion { found: b0 >> 6 })
        );
    }
    // STUN (first byte 0 or 1) on the media port is not RTP.
    assert!(matches!(
        parse_rtp(&[0x00, 0x01, 0x00, 0x00]),
        Err(RtpError::BadVersion { .. })
    ));
}

#[test]
fn parse_rejects_truncation_and_overruns() {
    assert!(matches!(parse_rtp(&[]), Err(RtpError::Truncated { .. })));
    assert!(matches!(
        parse_rtp(&[0x80]),
        Err(RtpError::Truncated { .. })
    ));
    assert!(matches!(
        parse_rtp(&[0x80, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0]),
        Err(RtpError::Truncated {
            expected: 12,
            found: 11
        })
    ));
    // 15 CSRCs announced, none present.
    let mut p = header(0x8f, 0);
    p.truncate(12);
    assert_eq!(
        parse_rtp(&p),
        Err(RtpError::Truncated {
            expected: 72,
            found: 12
        })
    );
    // Extension bit without the extension header.
    let mut p = header(0x90, 0);
    p.truncate(14);
    assert_eq!(
        parse_rtp(&p),
        Err(RtpError::Truncated {
            expected: 16,
            found: 14
        })
    );
    // Extension length running past the end: 0xffff words.
    let mut p = header(0x90, 0);
    p.truncate(12);
    p.extend_from_slice(&[0xbe, 0xde, 0xff, 0xff, 0, 0, 0, 0]);
    assert!(matches!(parse_rtp(&p), Err(RtpError::Truncated { .. })));
    // Padding count of zero, and larger than what follows the header.
    let mut p = header(0xa0, 0);
    *p.last_mut().expect("non-empty") = 0;
    assert!(matches!(
        parse_rtp(&p),
        Err(RtpError::BadPadding { found: 0, .. })
    ));
    let mut p = header(0xa0, 0);
    *p.last_mut().expect("non-empty") = 21;
    assert_eq!(
        parse_rtp(&p),
        Err(RtpError::BadPadding {
            found: 21,
            available: 20
        })
    );
    // Padding that eats the whole payload is legal.
    let mut p = header(0xa0, 0);
    *p.last_mut().expect("non-empty") = 20;
    assert_eq!(parse_rtp(&p).expect("parses").payload, &[] as &[u8]);
}

#[test]
fn rtcp_is_recognised() {
    // A receiver report (PT 201) with no blocks: 8 bytes.
    let rr = [0x80, 201, 0x00, 0x01, 0x12, 0x34, 0x56, 0x78];
    assert_eq!(parse_rtp(&rr), Err(RtpError::Rtcp { packet_type: 201 }));
    for pt in 200..=204u8 {
        assert_eq!(
            parse_rtp(&header(0x81, pt)),
            Err(RtpError::Rtcp { packet_type: pt })
        );
    }
    // PT 0 with the marker set (0x80) is RTP, not RTCP.
    assert_eq!(parse_rtp(&header(0x80, 0x80)).expect("rtp").pt, 0);
}

#[test]
fn every_truncation_and_mutation_is_safe() {
    let full = oracle_packet(vec![1, 2], true, true, &[9; 33]);
    for len in 0..full.len() {
        let _ = parse_rtp(&full[..len]);
    }
    let mut state: u32 = 0x1234_5678;
    for _ in 0..20_000 {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let mut p = full.clone();
        let at = state as usize % p.len();
        p[at] = (state >> 8) as u8;
        p.truncate((state >> 16) as usize % (p.len() + 1));
        if let Ok(pkt) = parse_rtp(&p) {
            assert!(pkt.payload.len() <= p.len());
        }
    }
}

// ----- latching ------------------------------------------------------------------------

#[test]
fn nat_case_latches_to_the_real_source() {
    let t0 = Instant::now();
    let mut latch = SymmetricLatch::new(addr("10.0.0.5:4000"), t0, LatchConfig::default());
    assert_eq!(latch.remote(), addr("10.0.0.5:4000"));
    let real = addr("127.0.0.1:40000");
    for i in 0..5u64 {
        let now = t0 + Duration::from_millis(20 * i);
        assert_eq!(latch.handle_packet(real, 0xaaaa, now), LatchVerdict::Accept);
        assert_eq!(latch.remote(), real, "we follow at once, before locking");
    }
    assert!(latch.is_locked());
    // Third-party spray after the lock: dropped, counted, never latched.
    for (i, spray) in ["127.0.0.1:40001", "198.51.100.66:5000", "10.0.0.5:4000"]
        .iter()
        .enumerate()
    {
        let now = t0 + Duration::from_secs(1 + i as u64);
        assert_eq!(
            latch.handle_packet(addr(spray), 0xaaaa, now),
            LatchVerdict::DropForeign
        );
    }
    assert_eq!(latch.dropped(), 3);
    assert_eq!(latch.remote(), real);
    assert_eq!(
        latch.handle_packet(real, 0xaaaa, t0 + Duration::from_secs(60)),
        LatchVerdict::Accept
    );
}

#[test]
fn exact_sdp_source_locks_at_once() {
    let t0 = Instant::now();
    let sdp = addr("203.0.113.5:4000");
    let mut latch = SymmetricLatch::new(sdp, t0, LatchConfig::default());
    assert_eq!(latch.handle_packet(sdp, 1, t0), LatchVerdict::Accept);
    assert!(latch.is_locked());
    assert_eq!(
        latch.handle_packet(addr("203.0.113.5:4002"), 1, t0),
        LatchVerdict::DropForeign
    );
}

#[test]
fn learning_prefers_the_sdp_ip_and_drops_competing_streams() {
    let t0 = Instant::now();
    let sdp = addr("203.0.113.5:4000");
    let mut latch = SymmetricLatch::new(sdp, t0, LatchConfig::default());
    let attacker = addr("198.51.100.66:5000");
    let real = addr("203.0.113.5:4100"); // port-rewriting NAT, same IP
    assert_eq!(
        latch.handle_packet(attacker, 0x666, t0),
        LatchVerdict::Accept
    );
    assert_eq!(latch.remote(), attacker);
    assert_eq!(latch.handle_packet(real, 0x1, t0), LatchVerdict::Accept);
    assert_eq!(latch.remote(), real, "the SDP's IP beats a stranger");
    assert_eq!(
        latch.handle_packet(attacker, 0x666, t0),
        LatchVerdict::DropForeign
    );
    assert_eq!(latch.remote(), real);
}

#[test]
fn competing_stranger_during_learning_is_dropped() {
    let t0 = Instant::now();
    let mut latch = SymmetricLatch::new(addr("10.0.0.5:4000"), t0, LatchConfig::default());
    let real = addr("192.0.2.1:30000");
    latch.handle_packet(real, 7, t0);
    assert_eq!(
        latch.handle_packet(addr("192.0.2.99:1"), 8, t0),
        LatchVerdict::DropForeign
    );
    // Same SSRC from a new port: the NAT rebinding is followed.
    let rebound = addr("192.0.2.1:30002");
    assert_eq!(latch.handle_packet(rebound, 7, t0), LatchVerdict::Accept);
    assert_eq!(latch.remote(), rebound);
    assert_eq!(latch.dropped(), 1);
}

#[test]
fn window_expiry_locks_what_was_learned_or_the_first_late_source() {
    let t0 = Instant::now();
    let config = LatchConfig {
        confirm_packets: 100,
        window: Duration::from_secs(2),
    };
    let real = addr("192.0.2.1:30000");
    let mut latch = SymmetricLatch::new(addr("10.0.0.5:4000"), t0, config);
    latch.handle_packet(real, 7, t0);
    assert!(!latch.is_locked());
    let late = t0 + Duration::from_secs(3);
    assert_eq!(
        latch.handle_packet(addr("192.0.2.2:1"), 7, late),
        LatchVerdict::DropForeign,
        "even the same SSRC is foreign once the window closed"
    );
    assert!(latch.is_locked());
    assert_eq!(latch.remote(), real);

    // A silent caller: nothing during the window, then the first source is taken.
    let mut latch = SymmetricLatch::new(addr("10.0.0.5:4000"), t0, config);
    assert_eq!(latch.handle_packet(real, 7, late), LatchVerdict::Accept);
    assert!(latch.is_locked());
    assert_eq!(
        latch.handle_packet(addr("192.0.2.2:1"), 7, late),
        LatchVerdict::DropForeign
    );
}

#[test]
fn reinvite_resets_the_latch() {
    let t0 = Instant::now();
    let mut latch = SymmetricLatch::new(addr("10.0.0.5:4000"), t0, LatchConfig::default());
    let first = addr("127.0.0.1:40000");
    for _ in 0..5 {
        latch.handle_packet(first, 1, t0);
    }
    assert!(latch.is_locked());
    let moved = addr("127.0.0.1:41000");
    assert_eq!(latch.handle_packet(moved, 2, t0), LatchVerdict::DropForeign);

    let t1 = t0 + Duration::from_secs(30);
    latch.reset(addr("10.0.0.6:5000"), t1);
    assert!(!latch.is_locked());
    assert_eq!(latch.remote(), addr("10.0.0.6:5000"));
    for _ in 0..5 {
        assert_eq!(latch.handle_packet(moved, 2, t1), LatchVerdict::Accept);
    }
    assert!(latch.is_locked());
    assert_eq!(latch.remote(), moved);
    assert_eq!(latch.handle_packet(first, 1, t1), LatchVerdict::DropForeign);
    assert_eq!(latch.dropped(), 2);
}

// ----- receive counters ------------------------------------------------------------------

fn pkt(seq: u16, ssrc: u32) -> RtpPacketRef<'static> {
    RtpPacketRef {
        pt: 0,
        seq,
        timestamp: u32::from(seq) * 160,
        ssrc,
        marker: false,
        payload: &[0; 160],
        csrc_count: 0,
        extension: None,
    }
}

#[test]
fn loss_duplicates_and_reordering_across_wrap() {
    let t0 = Instant::now();
    let mut r = RtpReceiver::new(t0, 8000, Some(0));
    let seqs = [65_533u16, 65_534, 1, 65_535, 1, 0, 2, 6, 5];
    let got: Vec<Arrival> = seqs.iter().map(|&s| r.on_packet(&pkt(s, 9), t0)).collect();
    assert_eq!(
        got,
        [
            Arrival::InOrder { lost: 0 },
            Arrival::InOrder { lost: 0 },
            Arrival::InOrder { lost: 2 },
            Arrival::Late,
            Arrival::Duplicate,
            Arrival::Late,
            Arrival::InOrder { lost: 0 },
            Arrival::InOrder { lost: 3 },
            Arrival::Late,
        ]
    );
    let s = r.stats();
    assert_eq!(s.packets, 9);
    assert_eq!(s.octets, 9 * 160);
    assert_eq!(s.lost, 2, "3 and 4 never came");
    assert_eq!(s.duplicates, 1);
    assert_eq!(s.out_of_order, 3);
    assert!(!Arrival::Duplicate.is_fresh());
}

#[test]
fn restarts_by_ssrc_or_confirmed_jump() {
    let t0 = Instant::now();
    let mut r = RtpReceiver::new(t0, 8000, None);
    r.on_packet(&pkt(100, 1), t0);
    r.on_packet(&pkt(101, 1), t0);
    assert_eq!(r.on_packet(&pkt(30_000, 1), t0), Arrival::Stray);
    assert_eq!(r.on_packet(&pkt(30_001, 1), t0), Arrival::Restart);
    assert_eq!(
        r.on_packet(&pkt(30_002, 1), t0),
        Arrival::InOrder { lost: 0 }
    );
    assert_eq!(r.on_packet(&pkt(5, 2), t0), Arrival::Restart);
    assert_eq!(r.on_packet(&pkt(6, 2), t0), Arrival::InOrder { lost: 0 });
    let s = r.stats();
    assert_eq!((s.lost, s.restarts, s.out_of_order), (0, 2, 1));
}

#[test]
fn idle_detection_and_error_counts() {
    let t0 = Instant::now();
    let limit = Duration::from_secs(30);
    let mut r = RtpReceiver::new(t0, 8000, Some(0));
    assert_eq!(r.poll_timeout(limit), Some(t0 + limit));
    assert!(!r.is_idle(t0 + Duration::from_secs(29), limit));
    assert!(r.is_idle(t0 + limit, limit));
    let t1 = t0 + Duration::from_secs(20);
    r.on_packet(&pkt(1, 1), t1);
    assert_eq!(r.stats().last_arrival, Some(t1));
    assert!(!r.is_idle(t0 + Duration::from_secs(45), limit));
    assert!(r.is_idle(t1 + limit, limit));

    r.on_error(&RtpError::Rtcp { packet_type: 200 });
    r.on_error(&RtpError::BadVersion { found: 0 });
    r.on_error(&RtpError::Truncated {
        expected: 12,
        found: 3,
    });
    let s = r.stats();
    assert_eq!((s.rtcp, s.malformed), (1, 2));
}

#[test]
fn telephone_events_do_not_feed_jitter() {
    let t0 = Instant::now();
    let mut r = RtpReceiver::new(t0, 8000, Some(0));
    for i in 0..10u16 {
        let now = t0 + Duration::from_millis(20 * u64::from(i));
        let mut p = pkt(i, 1);
        if i >= 3 {
            // An RFC 4733 event: same timestamp every 20 ms.
            p.pt = 101;
            p.timestamp = 3 * 160;
        }
        r.on_packet(&p, now);
    }
    assert_eq!(r.stats().jitter, 0);
}

#[test]
fn pipeline_from_datagram_to_counters() {
    let t0 = Instant::now();
    let mut sender = RtpSender::new(0x5555, 1000, 0, 8);
    let mut latch = SymmetricLatch::new(addr("10.0.0.5:4000"), t0, LatchConfig::default());
    let mut rx = RtpReceiver::new(t0, 8000, Some(8));
    let src = addr("127.0.0.1:40000");
    let mut datagrams: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
    for _ in 0..10 {
        datagrams.push((src, send(&mut sender, &[0xd5; 160])));
    }
    datagrams.insert(3, (src, vec![0x81, 201, 0, 1, 0, 0, 0, 1]));
    datagrams.insert(
        6,
        (
            addr("6.6.6.6:6"),
            send(&mut RtpSender::new(9, 0, 0, 8), &[1; 160]),
        ),
    );
    let mut fresh = 0;
    for (i, (from, d)) in datagrams.iter().enumerate() {
        let now = t0 + Duration::from_millis(20 * i as u64);
        match parse_rtp(d) {
            Err(e) => rx.on_error(&e),
            Ok(p) => {
                if latch.handle_packet(*from, p.ssrc, now) == LatchVerdict::Accept
                    && rx.on_packet(&p, now).is_fresh()
                {
                    fresh += 1;
                }
            }
        }
    }
    assert_eq!(fresh, 10);
    assert_eq!(latch.remote(), src);
    assert_eq!(latch.dropped(), 1);
    let s = rx.stats();
    assert_eq!((s.packets, s.lost, s.rtcp), (10, 0, 1));
}
