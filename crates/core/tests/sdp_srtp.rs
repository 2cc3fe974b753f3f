//! SDES-SRTP offer/answer (RFC 4568) through the public API: which `a=crypto` line is
//! chosen, which are skipped, what each policy refuses, and what our answers and offers
//! say.

use hotline_core::media::srtp::{MasterKey, SrtpSuite};
use hotline_core::sip::sdes::{SrtpPolicy, parse_crypto};
use hotline_core::sip::sdp::{
    Codec, Negotiated, OfferedCrypto, SdpError, accept_answer, build_answer, build_offer,
    negotiate, negotiate_srtp, parse_offer,
};

const BOTH: &[Codec] = &[Codec::Pcmu, Codec::Pcma];
/// RFC 4568's example key (30 bytes) and another.
const KEY_A: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
const KEY_B: &str = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";

fn ours() -> MasterKey {
    MasterKey::from_bytes(&[0x42; 30])
}

fn body(proto: &str, attrs: &[String]) -> Vec<u8> {
    let mut s = format!(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\nm=audio 5000 {proto} 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    );
    for a in attrs {
        s.push_str(a);
        s.push_str("\r\n");
    }
    s.into_bytes()
}

fn crypto(tag: u32, suite: &str, key: &str) -> String {
    format!("a=crypto:{tag} {suite} inline:{key}")
}

fn answer(policy: SrtpPolicy, offer: &[u8]) -> Result<Negotiated, SdpError> {
    parse_offer(offer).and_then(|r| negotiate_srtp(&r, BOTH, policy, &ours()))
}

fn status(r: &Result<Negotiated, SdpError>) -> Option<u16> {
    r.as_ref().err().map(SdpError::status_code)
}

#[test]
fn the_first_acceptable_crypto_line_is_answered_with_its_tag_suite_and_our_key() {
    let offer = body(
        "RTP/SAVP",
        &[
            crypto(1, "AES_256_CM_HMAC_SHA1_80", KEY_A),
            format!("a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{KEY_A}|2^20|1:4"),
            crypto(3, "AES_CM_128_HMAC_SHA1_32", KEY_B),
            crypto(4, "AES_CM_128_HMAC_SHA1_80", KEY_A),
        ],
    );
    let n = answer(SrtpPolicy::Optional, &offer).expect("answered");
    let k = n.srtp.as_ref().expect("SRTP");
    assert_eq!((k.tag, k.suite), (3, SrtpSuite::AesCm128HmacSha1_32));
    assert_eq!(
        k.inbound,
        parse_crypto(&format!("3 AES_CM_128_HMAC_SHA1_32 inline:{KEY_B}"))
            .expect("key")
            .key
    );
    assert_eq!(k.outbound, ours());
    let text = String::from_utf8(build_answer(
        "192.0.2.10".parse().expect("ip"),
        20000,
        &n,
        9,
        1,
    ))
    .expect("text");
    assert!(text.contains("m=audio 20000 RTP/SAVP 0 101\r\n"), "{text}");
    let lines: Vec<_> = text
        .lines()
        .filter(|l| l.starts_with("a=crypto:"))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    let ours_back = parse_crypto(lines[0].trim_start_matches("a=crypto:")).expect("ours parses");
    assert_eq!(
        (ours_back.tag, ours_back.suite, ours_back.key),
        (3, SrtpSuite::AesCm128HmacSha1_32, ours())
    );
    // The answer reads back as SRTP with our key as the far end would see it.
    let back = parse_offer(text.as_bytes()).expect("parses");
    let theirs = OfferedCrypto {
        tag: 3,
        suite: SrtpSuite::AesCm128HmacSha1_32,
        key: k.inbound.clone(),
    };
    let seen = accept_answer(&back, BOTH, Some(&theirs)).expect("accepted");
    assert_eq!(seen.srtp.expect("SRTP").inbound, ours());
}

#[test]
fn savp_without_an_acceptable_crypto_line_is_488() {
    for attrs in [
        vec![],
        vec![crypto(1, "AES_256_CM_HMAC_SHA1_80", KEY_A)],
        vec![crypto(1, "F8_128_HMAC_SHA1_80", KEY_A)],
        vec![format!(
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_A}|1:4"
        )],
        vec![format!(
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_A}|2^10"
        )],
        vec![crypto(1, "AES_CM_128_HMAC_SHA1_80", "bm90IGJhc2U2NCE=!!")],
        vec![crypto(1, "AES_CM_128_HMAC_SHA1_80", "c2hvcnQ=")],
        vec!["a=crypto:1 AES_CM_128_HMAC_SHA1_80".to_owned()],
    ] {
        for policy in [SrtpPolicy::Optional, SrtpPolicy::Required] {
            let r = answer(policy, &body("RTP/SAVP", &attrs));
            assert_eq!(r, Err(SdpError::NoUsableCrypto), "{attrs:?} {policy:?}");
            assert_eq!(status(&r), Some(488));
        }
    }
}

#[test]
fn policies_decide_between_plain_and_secure_offers() {
    let plain = body("RTP/AVP", &[]);
    let secure = body("RTP/SAVP", &[crypto(1, "AES_CM_128_HMAC_SHA1_80", KEY_A)]);
    // optional: each as offered.
    assert!(
        answer(SrtpPolicy::Optional, &plain)
            .expect("plain")
            .srtp
            .is_none()
    );
    assert!(
        answer(SrtpPolicy::Optional, &secure)
            .expect("secure")
            .srtp
            .is_some()
    );
    // required: a plain offer is refused.
    assert_eq!(
        answer(SrtpPolicy::Required, &plain),
        Err(SdpError::SrtpRequired)
    );
    assert!(
        answer(SrtpPolicy::Required, &secure)
            .expect("secure")
            .srtp
            .is_some()
    );
    // off: a secure offer is refused, as by a peer without SRTP (so is plain negotiate).
    assert_eq!(answer(SrtpPolicy::Off, &secure), Err(SdpError::SrtpOff));
    assert!(
        answer(SrtpPolicy::Off, &plain)
            .expect("plain")
            .srtp
            .is_none()
    );
    let r = parse_offer(&secure).expect("parses");
    assert_eq!(negotiate(&r, BOTH), Err(SdpError::SrtpOff));
    for e in [SdpError::SrtpOff, SdpError::SrtpRequired] {
        assert_eq!(e.status_code(), 488);
    }
}

#[test]
fn a_plain_answer_to_our_plain_offer_is_unchanged() {
    let n = answer(SrtpPolicy::Optional, &body("RTP/AVP", &[])).expect("plain");
    let text = String::from_utf8(build_answer(
        "192.0.2.10".parse().expect("ip"),
        20000,
        &n,
        9,
        1,
    ))
    .expect("text");
    assert!(text.contains("m=audio 20000 RTP/AVP 0 101\r\n"), "{text}");
    assert!(!text.contains("a=crypto"), "{text}");
}

#[test]
fn with_both_lines_offered_the_first_usable_one_wins() {
    let text = format!(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\n\
         m=audio 5000 RTP/SAVP 0\r\n{}\r\nm=audio 5002 RTP/AVP 0\r\n",
        crypto(1, "AES_CM_128_HMAC_SHA1_80", KEY_A)
    );
    let n = answer(SrtpPolicy::Optional, text.as_bytes()).expect("answered");
    assert_eq!((n.audio_index, n.srtp.is_some()), (0, true));
    let n = answer(SrtpPolicy::Off, text.as_bytes()).expect("answered");
    assert_eq!((n.audio_index, n.srtp.is_some()), (1, false));
}

#[test]
fn our_srtp_offer_and_the_answers_it_accepts() {
    let offered = OfferedCrypto::new(ours());
    let text = String::from_utf8(build_offer(
        "192.0.2.10".parse().expect("ip"),
        30000,
        5,
        1,
        Some(&offered),
    ))
    .expect("text");
    assert!(
        text.contains("m=audio 30000 RTP/SAVP 0 8 101\r\n"),
        "{text}"
    );
    assert!(
        text.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
        "{text}"
    );
    // A phone's answer: the same tag and suite, its own key.
    let good = body("RTP/SAVP", &[crypto(1, "AES_CM_128_HMAC_SHA1_80", KEY_B)]);
    let n = accept_answer(&parse_offer(&good).expect("parses"), BOTH, Some(&offered))
        .expect("accepted");
    let k = n.srtp.expect("SRTP");
    assert_eq!((k.tag, k.outbound.clone()), (1, ours()));
    assert_ne!(k.inbound, ours());
    // Answers that do not keep our offer.
    for bad in [
        body("RTP/AVP", &[]),
        body("RTP/SAVP", &[]),
        body("RTP/SAVP", &[crypto(2, "AES_CM_128_HMAC_SHA1_80", KEY_B)]),
        body("RTP/SAVP", &[crypto(1, "AES_CM_128_HMAC_SHA1_32", KEY_B)]),
    ] {
        let r = parse_offer(&bad).and_then(|a| accept_answer(&a, BOTH, Some(&offered)));
        assert_eq!(status(&r), Some(488), "{}", String::from_utf8_lossy(&bad));
    }
}

#[test]
fn hostile_crypto_lines_are_bounded_and_never_panic() {
    let mut attrs: Vec<String> = (0..200)
        .map(|i| crypto(i, "AES_CM_128_HMAC_SHA1_80", KEY_A))
        .collect();
    attrs.push("a=crypto:".to_owned());
    attrs.push("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:\u{1F600}".to_owned());
    attrs.push(format!(
        "a=crypto:99999999999999 AES_CM_128_HMAC_SHA1_80 inline:{KEY_A}"
    ));
    let r = parse_offer(&body("RTP/SAVP", &attrs)).expect("parses");
    let audio = r.media[0].audio.as_ref().expect("audio");
    assert!(audio.crypto.len() <= 8);
    assert_eq!(audio.crypto[0].tag, 0);
}
