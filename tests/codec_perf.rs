//! Cost checks: no quadratic behaviour on many headers, and a timing print for a typical
//! INVITE (run `cargo test --release --test codec_perf -- --ignored --nocapture`).

mod codec_common;
use codec_common as common;

use std::time::{Duration, Instant};

use hotline::sip::message::{Limits, Message, parse};

fn many_headers(n: usize) -> Vec<u8> {
    let mut raw = String::from("OPTIONS sip:ivr@192.0.2.1 SIP/2.0\r\n");
    for i in 0..n {
        raw.push_str(&format!(
            "X-H{i}: v\r\nVia: SIP/2.0/UDP h{i};branch=z9hG4bK{i}\r\n"
        ));
    }
    raw.push_str("\r\n");
    raw.into_bytes()
}

fn time_parse(raw: &[u8], limits: &Limits) -> Duration {
    let t = Instant::now();
    let m = parse(raw, limits).unwrap();
    let Message::Request(r) = &m else { panic!() };
    // Typed access over every hop is linear too.
    assert_eq!(r.headers.vias().unwrap().len() * 2, r.headers.len());
    t.elapsed()
}

#[test]
fn header_count_scales_linearly() {
    let limits = Limits {
        max_message_bytes: 8 << 20,
        max_headers: 200_000,
        ..Limits::default()
    };
    let small = many_headers(2_000);
    let large = many_headers(20_000);
    // Best of three to shave scheduler noise; 10x the input must stay far below 100x the time.
    let best = |raw: &[u8]| (0..3).map(|_| time_parse(raw, &limits)).min().unwrap();
    let (ts, tl) = (best(&small), best(&large));
    assert!(
        tl < ts * 40 + Duration::from_millis(20),
        "2k headers: {ts:?}, 20k headers: {tl:?}"
    );
}

#[test]
#[ignore = "timing print; run in release"]
fn typical_invite_timing() {
    let corpus = common::corpus();
    let invite = &corpus[0];
    let limits = Limits::default();
    let n = 200_000;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(parse(std::hint::black_box(invite), &limits).unwrap());
    }
    let per = t.elapsed() / n;
    let m = parse(invite, &limits).unwrap();
    let t = Instant::now();
    for _ in 0..n {
        let h = std::hint::black_box(&m).headers();
        std::hint::black_box((
            h.top_via().unwrap(),
            h.call_id().unwrap(),
            h.cseq().unwrap(),
            h.from_addr().unwrap(),
            h.to_addr().unwrap(),
        ));
    }
    let typed = t.elapsed() / n;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(std::hint::black_box(&m).to_bytes());
    }
    let print = t.elapsed() / n;
    println!(
        "{} B INVITE: parse {per:?}, top Via+Call-ID+CSeq+From+To {typed:?}, print {print:?}",
        invite.len()
    );
}
