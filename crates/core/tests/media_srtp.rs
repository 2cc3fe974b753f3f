//! A media session on an SRTP leg, driven on a fake clock: protected packets in give keys
//! and audio out; forged, replayed and plain packets are dropped and counted, never
//! decoded; what goes out is protected; the rollover counter follows a sequence number
//! that wraps around 65535.

// The fake clock needs one real instant to start from; nothing here reads it again.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hotline_core::media::dtmf::Key;
use hotline_core::media::g711::{Codec, FRAME_SAMPLES};
use hotline_core::media::prompt::Prompt;
use hotline_core::media::rtp::{RtpSender, TelephoneEvent, parse_rtp};
use hotline_core::media::session::{
    KeySource, MediaEvent, MediaOrigin, RtpRejection, Session, SessionCommand, SessionParams,
};
use hotline_core::media::srtp::{MasterKey, SrtpKeys, SrtpReceiver, SrtpSender, SrtpSuite};

const TICK: Duration = Duration::from_millis(20);
const SUITE: SrtpSuite = SrtpSuite::AesCm128HmacSha1_80;

fn far_key() -> MasterKey {
    MasterKey::from_bytes(&[0x11; 30])
}

fn our_key() -> MasterKey {
    MasterKey::from_bytes(&[0x22; 30])
}

fn remote() -> SocketAddr {
    "127.0.0.1:40000".parse().expect("addr")
}

/// The far end of an SRTP leg: its RTP sender and SRTP contexts, and our session.
struct Leg {
    s: Session,
    now: Instant,
    rtp: RtpSender,
    protect: SrtpSender,
    /// Reads what our session sends, as the far end would.
    unprotect: SrtpReceiver,
    buf: [u8; 2048],
}

impl Leg {
    fn new(first_seq: u16) -> Leg {
        let now = Instant::now();
        let params = SessionParams {
            codec: Codec::Pcmu,
            payload_type: 0,
            telephone_event_pt: Some(101),
            remote: remote(),
            no_media_timeout: Duration::from_secs(60),
            ssrc: 0x1234,
            initial_seq: first_seq,
            initial_timestamp: 0,
            origin: MediaOrigin::Placed,
            srtp: Some(SrtpKeys {
                suite: SUITE,
                tag: 1,
                inbound: far_key(),
                outbound: our_key(),
            }),
        };
        Leg {
            s: Session::new(params, now),
            now,
            rtp: RtpSender::new(0x9999, first_seq, 0, 0),
            protect: SrtpSender::new(&far_key(), SUITE),
            unprotect: SrtpReceiver::new(&our_key(), SUITE),
            buf: [0; 2048],
        }
    }

    fn protected(&mut self, plain: &[u8]) -> Vec<u8> {
        let mut b = [0u8; 512];
        b[..plain.len()].copy_from_slice(plain);
        let n = self
            .protect
            .protect(&mut b, plain.len())
            .expect("protected");
        b[..n].to_vec()
    }

    fn audio_plain(&mut self, level: i16) -> Vec<u8> {
        let mut frame = [0u8; FRAME_SAMPLES];
        Codec::Pcmu.encode_into(&[level; FRAME_SAMPLES], &mut frame);
        let mut b = [0u8; 256];
        let n = self.rtp.next_packet(&frame, &mut b).expect("packet");
        b[..n].to_vec()
    }

    fn audio(&mut self) -> Vec<u8> {
        let plain = self.audio_plain(0);
        self.protected(&plain)
    }

    fn key(&mut self, k: Key) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for i in 0..7u16 {
            let ev = TelephoneEvent {
                event: k.event_code(),
                end: i >= 4,
                volume: 10,
                duration: (i.min(4) + 1) * FRAME_SAMPLES as u16,
            };
            let mut b = [0u8; 64];
            let n = self
                .rtp
                .telephone_event_packet(101, ev, &mut b)
                .expect("event");
            let p = self.protected(&b[..n]);
            out.push(p);
        }
        self.rtp.finish_event();
        out
    }

    fn hear(&mut self, pkt: &[u8]) {
        self.s.handle_packet(self.now, remote(), pkt);
    }

    /// One tick; what the session sent, unprotected as the far end reads it.
    fn tick(&mut self) -> Option<Vec<u8>> {
        self.now += TICK;
        self.s.tick(self.now);
        let t = self.s.poll_transmit(self.now, &mut self.buf)?;
        let mut pkt = self.buf[..t.len].to_vec();
        let n = self
            .unprotect
            .unprotect(&mut pkt)
            .expect("our packets authenticate");
        pkt.truncate(n);
        Some(pkt)
    }

    fn events(&mut self) -> Vec<MediaEvent> {
        std::iter::from_fn(|| self.s.poll_event()).collect()
    }
}

#[test]
fn protected_keys_in_and_protected_audio_out() {
    let mut leg = Leg::new(100);
    let samples: Vec<i16> = (0..3 * FRAME_SAMPLES)
        .map(|i| (i as i16 % 50) * 200)
        .collect();
    let prompt = Prompt::from_samples("p", samples);
    leg.s.command(
        SessionCommand::Play {
            id: 1,
            prompts: vec![prompt.clone()],
            barge_in: false,
        },
        leg.now,
    );
    for i in 0..3 {
        let p = leg.audio();
        leg.hear(&p);
        let out = leg.tick().expect("a frame");
        let rtp = parse_rtp(&out).expect("plain RTP inside");
        assert_eq!(
            rtp.payload,
            &prompt.frame(Codec::Pcmu, i).expect("frame")[..]
        );
    }
    for p in leg.key(Key::from_char('5').expect("key")) {
        leg.hear(&p);
    }
    let keys: Vec<_> = leg
        .events()
        .into_iter()
        .filter_map(|e| match e {
            MediaEvent::Key { key, source, .. } => Some((key, source)),
            _ => None,
        })
        .collect();
    assert_eq!(
        keys,
        vec![(Key::from_char('5').expect("key"), KeySource::Rfc4733)]
    );
    assert_eq!(leg.s.stats.srtp_auth_failed, 0);
    assert_eq!(leg.s.stats.packets_in, 10);
}

#[test]
fn tampered_packets_are_dropped_and_counted_never_decoded() {
    let mut leg = Leg::new(100);
    let keys = leg.key(Key::from_char('7').expect("key"));
    for mut p in keys {
        // One bit of the payload flipped: the event would still parse as RTP.
        p[13] ^= 0x01;
        leg.hear(&p);
    }
    assert!(leg.events().is_empty(), "no key from forged packets");
    assert_eq!(leg.s.stats.srtp_auth_failed, 7);
    assert_eq!(leg.s.stats.packets_in, 0);
    assert_eq!(
        leg.s.stats.last_rejected,
        Some((remote(), RtpRejection::SrtpAuth))
    );
    // Plain RTP on an SRTP leg is not read either.
    let plain = leg.audio_plain(1000);
    leg.hear(&plain);
    assert_eq!(leg.s.stats.srtp_auth_failed, 8);
    assert_eq!(leg.s.stats.packets_in, 0);
    // The genuine packets still pass afterwards.
    let ok = leg.audio();
    leg.hear(&ok);
    assert_eq!(leg.s.stats.packets_in, 1);
}

#[test]
fn replayed_packets_are_dropped_and_counted() {
    let mut leg = Leg::new(100);
    let keys = leg.key(Key::from_char('9').expect("key"));
    for p in &keys {
        leg.hear(p);
    }
    assert_eq!(leg.events().len(), 1);
    // The whole key again, as captured: every packet is a replay.
    for p in &keys {
        leg.hear(p);
    }
    assert!(leg.events().is_empty());
    assert_eq!(leg.s.stats.srtp_replayed, 7);
    assert_eq!(
        leg.s.stats.last_rejected,
        Some((remote(), RtpRejection::SrtpReplay))
    );
}

#[test]
fn both_directions_roll_over_around_sequence_65535() {
    // Both sides start 10 packets before the wrap.
    let mut leg = Leg::new(65526);
    let prompt = Prompt::from_samples("p", vec![500; 40 * FRAME_SAMPLES]);
    leg.s.command(
        SessionCommand::Play {
            id: 1,
            prompts: vec![prompt],
            barge_in: false,
        },
        leg.now,
    );
    let mut seqs = Vec::new();
    for _ in 0..30 {
        let p = leg.audio();
        leg.hear(&p);
        let out = leg.tick().expect("a frame");
        seqs.push(parse_rtp(&out).expect("rtp").seq);
    }
    assert_eq!(leg.s.stats.packets_in, 30);
    assert_eq!(leg.s.stats.srtp_auth_failed + leg.s.stats.srtp_replayed, 0);
    assert!(seqs.contains(&65535) && seqs.contains(&0), "{seqs:?}");
    assert_eq!(leg.unprotect.roc(), 1);
    assert_eq!(leg.protect.roc(), 1);
}

#[test]
fn srtcp_and_short_datagrams_are_malformed_not_auth_failures() {
    let mut leg = Leg::new(1);
    // A receiver report's first bytes (version 2, PT 201).
    leg.hear(&[
        0x81, 201, 0, 7, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    leg.hear(&[0x80, 0, 0]);
    leg.hear(&vec![0x80; 4096]);
    assert_eq!(leg.s.stats.srtp_auth_failed, 0);
    assert_eq!(leg.s.stats.malformed, 3);
}
