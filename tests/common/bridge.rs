//! Audio checks for calls that cross a bridge (transfers, agents): a recognisable sound,
//! and how much of it was heard in order, sample for sample.

use std::time::Duration;

use hotline::media::g711::{Codec, FRAME_SAMPLES};
use hotline_load::caller::CallMedia;

pub type Frame = [u8; FRAME_SAMPLES];

/// A sweep, different in every frame, so frames can be told apart.
pub fn sweep(frames: usize, base: f32) -> Vec<i16> {
    (0..frames * FRAME_SAMPLES)
        .map(|i| {
            let t = i as f32 / 8000.0;
            (8000.0 * (2.0 * std::f32::consts::PI * (base + 400.0 * t) * t).sin()) as i16
        })
        .collect()
}

pub fn encode(pcm: &[i16], codec: Codec) -> Vec<Frame> {
    pcm.chunks(FRAME_SAMPLES)
        .map(|c| {
            let mut f = [0u8; FRAME_SAMPLES];
            codec.encode_into(c, &mut f);
            f
        })
        .collect()
}

pub fn decoded(frames: &[Frame], codec: Codec) -> Vec<[i16; FRAME_SAMPLES]> {
    frames
        .iter()
        .map(|f| {
            let mut pcm = [0i16; FRAME_SAMPLES];
            codec.decode_into(f, &mut pcm);
            pcm
        })
        .collect()
}

pub fn payloads(m: &CallMedia) -> Vec<Frame> {
    m.heard().into_iter().map(|h| h.payload).collect()
}

/// The longest stretch of `sent` (PCMU) heard in order, sample for sample, from any
/// starting frame: a frame lost to a stalled machine shortens a stretch but does not hide
/// the rest. (Bytes may differ: μ-law has two codes for zero, and the bridge decodes and
/// encodes again.)
pub fn longest_run(heard: &[Frame], sent: &[Frame]) -> usize {
    let heard = decoded(heard, Codec::Pcmu);
    let sent = decoded(sent, Codec::Pcmu);
    let mut best = 0;
    for (i, h) in heard.iter().enumerate() {
        for (j, _) in sent.iter().enumerate().filter(|(_, s)| *s == h) {
            let run = heard[i..]
                .iter()
                .zip(&sent[j..])
                .take_while(|(h, s)| h == s)
                .count();
            best = best.max(run);
        }
    }
    best
}

/// How many frames of `pcm` `m` heard in order.
pub fn heard_run(m: &CallMedia, pcm: &[i16]) -> usize {
    longest_run(&payloads(m), &encode(pcm, Codec::Pcmu))
}

pub async fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let until = tokio::time::Instant::now() + timeout;
    while !ok() {
        assert!(
            tokio::time::Instant::now() < until,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Each side says a sweep and the other hears at least 30 frames of it in order, sample for
/// sample: the two are bridged both ways.
pub async fn hear_each_other(a: &CallMedia, b: &CallMedia) {
    heard_by(a, b, 300.0, "the first side at the second").await;
    heard_by(b, a, 900.0, "the second side at the first").await;
}

/// `speaker` says a sweep until `listener` has heard 30 frames of it in order: up to three
/// times, so that frames a stalled machine lost once do not fail the check.
async fn heard_by(speaker: &CallMedia, listener: &CallMedia, base: f32, what: &str) {
    let pcm = sweep(50, base);
    for _ in 0..3 {
        speaker.say_pcm(&pcm);
        let until = tokio::time::Instant::now() + Duration::from_secs(5);
        while tokio::time::Instant::now() < until {
            if heard_run(listener, &pcm) >= 30 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    panic!(
        "{what}: the longest stretch heard in order is {} of 50 frames, after 3 tries",
        heard_run(listener, &pcm)
    );
}
