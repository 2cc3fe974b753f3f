//! An SDP offer through parse, negotiation and our answer. Checks that the answer we
//! print is SDP we parse ourselves and that reads back with the same codec and payload
//! type.
#![no_main]

use hotline_core::sip::sdp::{Codec, accept_answer, build_answer, negotiate, parse_offer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(offer) = parse_offer(data) else {
        return;
    };
    let Ok(neg) = negotiate(&offer, &[Codec::Pcmu, Codec::Pcma]) else {
        return;
    };
    assert!(neg.audio_index < offer.media.len());
    assert_eq!(neg.lines.len(), offer.media.len());
    let answer = build_answer("192.0.2.1".parse().expect("ip"), 40000, &neg, 1, 1);
    let parsed = parse_offer(&answer).unwrap_or_else(|e| {
        panic!(
            "our answer does not parse ({e}):\n{}",
            String::from_utf8_lossy(&answer)
        )
    });
    // `accept_answer` expects the answer to our own single-line offer; an answer to a
    // caller's several lines is read back the way an offer is.
    let read_back = if parsed.media.len() == 1 {
        accept_answer(&parsed, &[neg.codec])
    } else {
        negotiate(&parsed, &[neg.codec])
    };
    let accepted = read_back.unwrap_or_else(|e| {
        panic!(
            "our answer is refused ({e}):\n{}",
            String::from_utf8_lossy(&answer)
        )
    });
    assert_eq!(accepted.codec, neg.codec);
    assert_eq!(accepted.pt, neg.pt);
});
