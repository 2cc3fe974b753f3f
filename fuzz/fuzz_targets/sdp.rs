//! An SDP offer through parse, negotiation (SRTP optional, so `RTP/SAVP` offers with
//! `a=crypto` are answered too) and our answer. Checks that the answer we print is SDP we
//! parse ourselves and that reads back with the same codec, payload type and SRTP key.
#![no_main]

use hotline_core::media::srtp::MasterKey;
use hotline_core::sip::sdes::SrtpPolicy;
use hotline_core::sip::sdp::{
    Codec, OfferedCrypto, accept_answer, build_answer, negotiate_srtp, parse_offer,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(offer) = parse_offer(data) else {
        return;
    };
    let key = MasterKey::from_bytes(&[7; 30]);
    let optional = SrtpPolicy::Optional;
    let Ok(neg) = negotiate_srtp(&offer, &[Codec::Pcmu, Codec::Pcma], optional, &key) else {
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
    // Read back as if we had offered the remote's crypto line.
    let offered = neg.srtp.as_ref().map(|k| OfferedCrypto {
        tag: k.tag,
        suite: k.suite,
        key: k.inbound.clone(),
    });
    let read_back = if parsed.media.len() == 1 {
        accept_answer(&parsed, &[neg.codec], offered.as_ref())
    } else {
        negotiate_srtp(&parsed, &[neg.codec], optional, &key)
    };
    let accepted = read_back.unwrap_or_else(|e| {
        panic!(
            "our answer is refused ({e}):\n{}",
            String::from_utf8_lossy(&answer)
        )
    });
    assert_eq!(accepted.codec, neg.codec);
    assert_eq!(accepted.pt, neg.pt);
    assert_eq!(
        accepted.srtp.map(|k| k.inbound),
        neg.srtp.map(|k| k.outbound)
    );
});
