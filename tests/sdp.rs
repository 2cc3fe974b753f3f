//! Offer/answer through the public API: real-world offers, hold, rejected streams, late
//! offer, and hostile bodies.

use hotline::sip::sdp::{
    AnswerLine, Codec, Direction, LocalOrigin, MAX_FORMATS, MAX_SDP_BYTES, Negotiated, RemoteSdp,
    SdpError, accept_answer, build_answer, build_offer, negotiate, parse_offer,
};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

const BOTH: &[Codec] = &[Codec::Pcmu, Codec::Pcma];
const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));

fn crlf(text: &str) -> Vec<u8> {
    text.lines()
        .map(str::trim_start)
        .filter(|l| !l.is_empty())
        .flat_map(|l| format!("{l}\r\n").into_bytes())
        .collect()
}

fn offer(text: &str) -> RemoteSdp {
    parse_offer(&crlf(text)).unwrap_or_else(|e| panic!("offer refused: {e}\n{text}"))
}

fn neg(text: &str) -> Negotiated {
    negotiate(&offer(text), BOTH).unwrap_or_else(|e| panic!("no answer: {e}\n{text}"))
}

fn err(text: &str) -> SdpError {
    match parse_offer(&crlf(text)).and_then(|r| negotiate(&r, BOTH)) {
        Ok(n) => panic!("expected an error, negotiated {n:?}"),
        Err(e) => e,
    }
}

fn answer_text(n: &Negotiated) -> String {
    String::from_utf8(build_answer(LOCAL, 20000, n, 42, 1)).expect("answer is text")
}

fn sock(s: &str) -> SocketAddr {
    s.parse().expect("socket address literal")
}

// ----- offers seen in the wild -------------------------------------------------------

#[test]
fn sipp_static_payload_without_rtpmap() {
    let r = offer(
        "v=0
         o=user1 53655765 2353687637 IN IP4 127.0.0.1
         s=-
         c=IN IP4 127.0.0.1
         t=0 0
         m=audio 6000 RTP/AVP 0",
    );
    assert!(!r.lenient);
    let n = negotiate(&r, BOTH).expect("negotiated");
    assert_eq!(
        (n.codec, n.pt, n.telephone_event_pt),
        (Codec::Pcmu, 0, None)
    );
    assert_eq!(n.remote_rtp, sock("127.0.0.1:6000"));
    assert_eq!(n.direction, Direction::SendRecv);
    assert_eq!(n.remote_ptime, None);
}

#[test]
fn baresip_offer() {
    let n = neg("v=0
         o=- 2190336394 2190336394 IN IP4 192.168.1.10
         s=-
         c=IN IP4 192.168.1.10
         t=0 0
         m=audio 10000 RTP/AVP 96 9 0 8 101
         b=AS:64
         a=rtpmap:96 opus/48000/2
         a=fmtp:96 stereo=1;sprop-stereo=1
         a=rtpmap:9 G722/8000
         a=rtpmap:0 PCMU/8000
         a=rtpmap:8 PCMA/8000
         a=rtpmap:101 telephone-event/8000
         a=fmtp:101 0-15
         a=sendrecv
         a=label:1
         a=ssrc:1234567 cname:abc@example
         a=rtcp-rsize");
    assert_eq!(
        (n.codec, n.pt, n.telephone_event_pt),
        (Codec::Pcmu, 0, Some(101))
    );
    assert_eq!(n.remote_rtp, sock("192.168.1.10:10000"));
}

#[test]
fn linphone_offer_picks_8k_telephone_event() {
    let r = offer(
        "v=0
         o=alice 1234 5678 IN IP4 192.168.0.20
         s=Talk
         c=IN IP4 192.168.0.20
         t=0 0
         a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
         a=record:off
         m=audio 7078 RTP/AVP 96 97 98 0 8 18 99 100 101
         a=rtpmap:96 opus/48000/2
         a=fmtp:96 useinbandfec=1
         a=rtpmap:97 speex/16000
         a=fmtp:97 vbr=on
         a=rtpmap:98 speex/8000
         a=fmtp:98 vbr=on
         a=fmtp:18 annexb=yes
         a=rtpmap:99 telephone-event/48000
         a=rtpmap:100 telephone-event/16000
         a=rtpmap:101 telephone-event/8000
         a=rtcp-fb:* trr-int 1000
         a=rtcp-fb:* ccm tmmbr",
    );
    let audio = r.media[0].audio.as_ref().expect("audio line");
    assert_eq!(audio.codecs, vec![(0, Codec::Pcmu), (8, Codec::Pcma)]);
    // Static G.729 without rtpmap is named from the RFC 3551 table.
    assert!(
        audio
            .payloads
            .iter()
            .any(|p| p.pt == 18 && p.encoding == "G729")
    );
    let n = negotiate(&r, BOTH).expect("negotiated");
    assert_eq!(
        (n.codec, n.pt, n.telephone_event_pt),
        (Codec::Pcmu, 0, Some(101))
    );
}

#[test]
fn zoiper_like_offer_prefers_pcma() {
    let text = "v=0
         o=Z 0 1 IN IP4 10.1.1.7
         s=Z
         c=IN IP4 10.1.1.7
         t=0 0
         m=audio 52000 RTP/AVP 8 0 3 110 97 101
         a=rtpmap:8 PCMA/8000
         a=rtpmap:0 PCMU/8000
         a=rtpmap:3 GSM/8000
         a=rtpmap:110 speex/8000
         a=rtpmap:97 iLBC/8000
         a=fmtp:97 mode=20
         a=rtpmap:101 telephone-event/8000
         a=fmtp:101 0-16
         a=sendrecv";
    let n = neg(text);
    assert_eq!(
        (n.codec, n.pt, n.telephone_event_pt),
        (Codec::Pcma, 8, Some(101))
    );
    let only_pcmu = negotiate(&offer(text), &[Codec::Pcmu]).expect("negotiated");
    assert_eq!((only_pcmu.codec, only_pcmu.pt), (Codec::Pcmu, 0));
    let audio = offer(text).media[0].audio.clone().expect("audio");
    assert_eq!(audio.telephone_event_fmtp.as_deref(), Some("0-16"));
}

#[test]
fn dynamic_payload_type_for_pcmu_and_remapped_static() {
    let n = neg("v=0
         o=- 1 1 IN IP4 192.0.2.5
         s=-
         c=IN IP4 192.0.2.5
         t=0 0
         m=audio 4000 RTP/AVP 0 96 98
         a=rtpmap:0 opus/48000/2
         a=rtpmap:96 pcmu/8000
         a=rtpmap:98 TELEPHONE-EVENT/8000");
    assert_eq!(
        (n.codec, n.pt, n.telephone_event_pt),
        (Codec::Pcmu, 96, Some(98))
    );
}

#[test]
fn telephone_event_at_other_rates_is_not_used() {
    let n = neg("v=0
         o=- 1 1 IN IP4 192.0.2.5
         s=-
         c=IN IP4 192.0.2.5
         t=0 0
         m=audio 4000 RTP/AVP 8 100
         a=rtpmap:100 telephone-event/16000");
    assert_eq!(n.telephone_event_pt, None);
}

// ----- the answer --------------------------------------------------------------------

#[test]
fn answer_is_exact() {
    let n = neg("v=0
         o=- 1 1 IN IP4 192.0.2.5
         s=-
         c=IN IP4 192.0.2.5
         t=0 0
         m=audio 4000 RTP/AVP 8 0 101
         a=rtpmap:101 telephone-event/8000
         a=ptime:30");
    assert_eq!(n.remote_ptime, Some(30));
    assert_eq!(
        answer_text(&n),
        "v=0\r\n\
         o=hotline 42 1 IN IP4 192.0.2.10\r\n\
         s=hotline\r\n\
         c=IN IP4 192.0.2.10\r\n\
         t=0 0\r\n\
         m=audio 20000 RTP/AVP 8 101\r\n\
         a=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-15\r\n\
         a=ptime:20\r\n\
         a=sendrecv\r\n"
    );
}

#[test]
fn answer_round_trips_through_our_parser() {
    let n = neg("v=0
         o=- 1 1 IN IP4 192.0.2.5
         s=-
         c=IN IP4 192.0.2.5
         t=0 0
         m=audio 4000 RTP/AVP 0 8 101
         a=rtpmap:101 telephone-event/8000");
    let back = parse_offer(&build_answer(LOCAL, 20000, &n, 42, 1)).expect("our answer parses");
    assert!(!back.lenient, "the strict parser accepts our output");
    let again = negotiate(&back, BOTH).expect("negotiated");
    assert_eq!(
        (again.codec, again.pt, again.telephone_event_pt),
        (Codec::Pcmu, 0, Some(101))
    );
    assert_eq!(again.remote_rtp, sock("192.0.2.10:20000"));
}

#[test]
fn other_media_lines_rejected_in_order() {
    let n = neg("v=0
         o=- 1 1 IN IP4 192.0.2.5
         s=-
         c=IN IP4 192.0.2.5
         t=0 0
         m=video 5002 RTP/AVP 31 34
         m=audio 5000 RTP/AVP 0
         m=image 0 udptl t38");
    assert_eq!(n.audio_index, 1);
    let text = answer_text(&n);
    let m_lines: Vec<&str> = text.lines().filter(|l| l.starts_with("m=")).collect();
    assert_eq!(
        m_lines,
        [
            "m=video 0 RTP/AVP 31",
            "m=audio 20000 RTP/AVP 0",
            "m=image 0 udptl t38"
        ]
    );
}

#[test]
fn first_usable_audio_line_wins() {
    let n = neg("v=0
         o=- 1 1 IN IP4 192.0.2.5
         s=-
         c=IN IP4 192.0.2.5
         t=0 0
         m=audio 5000 RTP/SAVP 0
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz
         m=audio 0 RTP/AVP 0
         m=audio 5004 RTP/AVP 18 8");
    assert_eq!(n.audio_index, 2);
    assert_eq!((n.codec, n.pt), (Codec::Pcma, 8));
    assert_eq!(n.remote_rtp, sock("192.0.2.5:5004"));
    assert_eq!(
        n.lines[..2],
        [
            AnswerLine::Rejected {
                media: "audio".into(),
                proto: "RTP/SAVP".into(),
                format: "0".into()
            },
            AnswerLine::Rejected {
                media: "audio".into(),
                proto: "RTP/AVP".into(),
                format: "0".into()
            },
        ]
    );
}

#[test]
fn audio_with_port_zero_only_is_no_audio() {
    let e = err("v=0
         o=- 1 1 IN IP4 192.0.2.5
         s=-
         c=IN IP4 192.0.2.5
         t=0 0
         m=audio 0 RTP/AVP 0");
    assert_eq!(e, SdpError::NoAudio);
    assert_eq!(e.status_code(), 488);
}

#[test]
fn video_only_is_no_audio() {
    let e = err("v=0
         o=- 1 1 IN IP4 192.0.2.5
         s=-
         c=IN IP4 192.0.2.5
         t=0 0
         m=video 5000 RTP/AVP 31");
    assert_eq!(e, SdpError::NoAudio);
}

#[test]
fn no_common_codec_is_488_and_names_the_offer() {
    let e = err("v=0
         o=- 1 1 IN IP4 192.0.2.5
         s=-
         c=IN IP4 192.0.2.5
         t=0 0
         m=audio 4000 RTP/AVP 18 96 101
         a=rtpmap:96 opus/48000/2
         a=rtpmap:101 telephone-event/8000");
    assert_eq!(e.status_code(), 488);
    let msg = e.to_string();
    assert!(msg.contains("18 G729/8000"), "{msg}");
    assert!(msg.contains("96 opus/48000"), "{msg}");

    // Remote text quoted in errors cannot carry line breaks.
    let body = b"v=0\no=- 1 1 IN IP4 192.0.2.5\ns=-\nc=IN IP4 192.0.2.5\nt=0 0\nm=audio 4000 RTP/AVP 96\na=rtpmap:96 x\ry/8000\n";
    let e = negotiate(&parse_offer(body).expect("parses"), BOTH).expect_err("no codec");
    assert!(!e.to_string().contains(['\r', '\n']), "{e}");
}

// ----- hold and direction ------------------------------------------------------------

fn reinvite(conn: &str, attrs: &str) -> Negotiated {
    neg(&format!(
        "v=0
         o=- 1 2 IN IP4 192.0.2.5
         s=-
         c=IN IP4 {conn}
         t=0 0
         m=audio 4000 RTP/AVP 0
         {attrs}"
    ))
}

#[test]
fn hold_variants() {
    let cases = [
        ("192.0.2.5", "a=sendrecv", Direction::SendRecv),
        ("192.0.2.5", "a=sendonly", Direction::RecvOnly),
        ("192.0.2.5", "a=inactive", Direction::Inactive),
        ("192.0.2.5", "a=recvonly", Direction::SendOnly),
        ("0.0.0.0", "", Direction::RecvOnly),
        ("0.0.0.0", "a=sendonly", Direction::RecvOnly),
        ("0.0.0.0", "a=recvonly", Direction::Inactive),
        ("0.0.0.0", "a=inactive", Direction::Inactive),
    ];
    for (conn, attrs, ours) in cases {
        let n = reinvite(conn, attrs);
        assert_eq!(n.direction, ours, "c={conn} {attrs}");
        assert_eq!(n.on_hold(), !ours.sends(), "c={conn} {attrs}");
        assert!(
            answer_text(&n).contains(&format!("a={ours}\r\n")),
            "answer carries {ours}"
        );
    }
}

#[test]
fn session_level_direction_and_media_override() {
    let n = neg("v=0
         o=- 1 1 IN IP4 192.0.2.5
         s=-
         c=IN IP4 192.0.2.5
         t=0 0
         a=sendonly
         m=audio 4000 RTP/AVP 0");
    assert_eq!(n.direction, Direction::RecvOnly);
    let n = neg("v=0
         o=- 1 1 IN IP4 192.0.2.5
         s=-
         c=IN IP4 192.0.2.5
         t=0 0
         a=sendonly
         m=audio 4000 RTP/AVP 0
         a=sendrecv");
    assert_eq!(n.direction, Direction::SendRecv);
}

#[test]
fn ipv6_offer_and_answer() {
    let n = neg("v=0
         o=- 1 1 IN IP6 2001:db8::5
         s=-
         c=IN IP6 2001:db8::5
         t=0 0
         m=audio 4000 RTP/AVP 8");
    assert_eq!(n.remote_rtp, sock("[2001:db8::5]:4000"));
    let local: IpAddr = "2001:db8::10".parse().expect("v6 literal");
    let text = String::from_utf8(build_answer(local, 20000, &n, 7, 3)).expect("text");
    assert!(
        text.contains("o=hotline 7 3 IN IP6 2001:db8::10\r\n"),
        "{text}"
    );
    assert!(text.contains("c=IN IP6 2001:db8::10\r\n"), "{text}");
}

#[test]
fn ipv6_unspecified_is_hold() {
    let n = neg("v=0
         o=- 1 1 IN IP6 ::
         s=-
         c=IN IP6 ::
         t=0 0
         m=audio 4000 RTP/AVP 0");
    assert_eq!(n.direction, Direction::RecvOnly);
}

#[test]
fn media_level_connection_overrides_session() {
    let n = neg("v=0
         o=- 1 1 IN IP4 192.0.2.5
         s=-
         c=IN IP4 192.0.2.5
         t=0 0
         m=audio 4000 RTP/AVP 0
         c=IN IP4 198.51.100.7");
    assert_eq!(n.remote_rtp, sock("198.51.100.7:4000"));
}

// ----- versions and late offer -------------------------------------------------------

#[test]
fn offer_is_exact_and_version_increments() {
    let mut origin = LocalOrigin::new(1000, 1);
    let first = build_offer(LOCAL, 30000, origin.session_id, origin.version, None);
    assert_eq!(
        String::from_utf8(first.clone()).expect("text"),
        "v=0\r\n\
         o=hotline 1000 1 IN IP4 192.0.2.10\r\n\
         s=hotline\r\n\
         c=IN IP4 192.0.2.10\r\n\
         t=0 0\r\n\
         m=audio 30000 RTP/AVP 0 8 101\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-15\r\n\
         a=ptime:20\r\n\
         a=sendrecv\r\n"
    );
    let v = origin.next_version();
    assert_eq!(v, 2);
    let second = build_offer(LOCAL, 30000, origin.session_id, v, None);
    let a = parse_offer(&first).expect("parses");
    let b = parse_offer(&second).expect("parses");
    assert!(!a.same_version_as(&b));
    assert!(a.same_version_as(&parse_offer(&first).expect("parses")));
    assert_eq!(b.origin.version, "2");
    assert_eq!(b.origin.session_id, "1000");
}

#[test]
fn late_offer_answer_parse() {
    let answer = offer(
        "v=0
         o=carrier 77 78 IN IP4 203.0.113.9
         s=-
         c=IN IP4 203.0.113.9
         t=0 0
         m=audio 31000 RTP/AVP 8 101
         a=rtpmap:8 PCMA/8000
         a=rtpmap:101 telephone-event/8000
         a=fmtp:101 0-15
         a=ptime:20",
    );
    let n = accept_answer(&answer, BOTH, None).expect("accepted");
    assert_eq!(
        (n.codec, n.pt, n.telephone_event_pt),
        (Codec::Pcma, 8, Some(101))
    );
    assert_eq!(n.remote_rtp, sock("203.0.113.9:31000"));
    assert_eq!(n.remote_ptime, Some(20));
    assert_eq!(n.direction, Direction::SendRecv);

    let two_lines = offer(
        "v=0
         o=carrier 77 78 IN IP4 203.0.113.9
         s=-
         c=IN IP4 203.0.113.9
         t=0 0
         m=audio 31000 RTP/AVP 8
         m=video 0 RTP/AVP 31",
    );
    let e = accept_answer(&two_lines, BOTH, None).expect_err("answer must mirror our offer");
    assert_eq!(e.status_code(), 400);
}

// ----- tolerance ---------------------------------------------------------------------

#[test]
fn unusual_but_valid_bodies_fall_back_to_the_tolerant_reader() {
    let bodies = [
        // GB28181-style `y=` (SSRC) line and `f=` line.
        "v=0
         o=34020000001320000001 0 0 IN IP4 192.168.1.64
         s=Play
         c=IN IP4 192.168.1.64
         t=0 0
         m=audio 15060 RTP/AVP 8
         a=rtpmap:8 PCMA/8000
         y=0100000001
         f=v/////a/1/8/1",
        // A protocol the strict parser does not list.
        "v=0
         o=- 1 1 IN IP4 192.168.1.64
         s=-
         c=IN IP4 192.168.1.64
         t=0 0
         m=message 9 TCP/MSRP *
         a=path:msrp://192.168.1.64:9/abc;tcp
         m=audio 15060 RTP/AVP 8",
        // No t= line, attribute before a media-level c=.
        "v=0
         o=- 1 1 IN IP4 192.168.1.64
         s=-
         m=audio 15060 RTP/AVP 8
         a=sendrecv
         c=IN IP4 192.168.1.64",
        // A session id past 64 bits.
        "v=0
         o=- 123456789012345678901234567890 1 IN IP4 192.168.1.64
         s=-
         c=IN IP4 192.168.1.64
         t=0 0
         m=audio 15060 RTP/AVP 8",
    ];
    for body in bodies {
        let r = offer(body);
        assert!(r.lenient, "the strict parser refused: {body}");
        let n = negotiate(&r, BOTH).expect("negotiated");
        assert_eq!((n.codec, n.pt), (Codec::Pcma, 8), "{body}");
        assert_eq!(n.remote_rtp, sock("192.168.1.64:15060"));
    }
    let msrp = neg(bodies[1]);
    assert!(answer_text(&msrp).contains("m=message 0 TCP/MSRP *\r\n"));
}

#[test]
fn lf_only_and_non_utf8_free_text() {
    let mut body = b"v=0\no=- 1 1 IN IP4 192.0.2.5\ns=Caf".to_vec();
    body.push(0xe9); // Latin-1 e-acute in the session name
    body.extend_from_slice(b"\nc=IN IP4 192.0.2.5\nt=0 0\nm=audio 4000 RTP/AVP 0\n");
    let r = parse_offer(&body).expect("accepted");
    assert!(r.lenient);
    assert_eq!(
        negotiate(&r, BOTH).expect("negotiated").remote_rtp,
        sock("192.0.2.5:4000")
    );
}

// ----- hostile input -----------------------------------------------------------------

fn with_media(m_line: &str) -> String {
    format!(
        "v=0
         o=- 1 1 IN IP4 192.0.2.5
         s=-
         c=IN IP4 192.0.2.5
         t=0 0
         {m_line}"
    )
}

#[test]
fn huge_payload_types_are_400() {
    for m in [
        "m=audio 17000 RTP/AVP 4294967296",
        "m=audio 17000 RTP/AVP 0 128",
        "m=audio 17000 RTP/AVP -1",
        "m=audio 17000 RTP/AVP PCMU",
    ] {
        let e = err(&with_media(m));
        assert!(
            matches!(e, SdpError::InvalidPayloadType { index: 0, .. }),
            "{m}: {e}"
        );
        assert_eq!(e.status_code(), 400);
    }
}

#[test]
fn thousands_of_payload_types_are_refused() {
    let pts: Vec<String> = (0..5000).map(|i| (i % 128).to_string()).collect();
    let e = err(&with_media(&format!(
        "m=audio 4000 RTP/AVP {}",
        pts.join(" ")
    )));
    assert!(
        matches!(
            e,
            SdpError::TooManyFormats {
                index: 0,
                max: MAX_FORMATS,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.status_code(), 400);
    // Exactly 128 distinct types is fine.
    let all: Vec<String> = (0..128).map(|i| i.to_string()).collect();
    let n = neg(&with_media(&format!(
        "m=audio 4000 RTP/AVP {}",
        all.join(" ")
    )));
    assert_eq!(n.pt, 0);
}

#[test]
fn nonsense_ptime_is_ignored() {
    for p in ["0", "65535", "-20", "abc", "99999999999999999999"] {
        let n = neg(&with_media(&format!("m=audio 4000 RTP/AVP 0\na=ptime:{p}")));
        assert_eq!(n.remote_ptime, None, "ptime {p}");
    }
}

#[test]
fn missing_connection_is_400() {
    let e = err("v=0
         o=- 1 1 IN IP4 192.0.2.5
         s=-
         t=0 0
         m=audio 4000 RTP/AVP 0");
    assert_eq!(e, SdpError::MissingConnection { index: 0 });
    assert_eq!(e.status_code(), 400);
}

#[test]
fn connection_addresses() {
    let cases = [
        ("IN IP4 pbx.example.com", 488),
        ("IN IP4 224.2.1.1/127", 488),
        ("IN IP4 2001:db8::1", 400),
        ("IN IP6 192.0.2.1", 400),
        ("IN IP4 300.1.1.1", 400),
        ("IN IP4", 400),
        ("XX IP4 192.0.2.1", 400),
        ("IN IPX 192.0.2.1", 400),
    ];
    for (c, status) in cases {
        let body = format!(
            "v=0
             o=- 1 1 IN IP4 192.0.2.5
             s=-
             t=0 0
             m=audio 4000 RTP/AVP 0
             c={c}"
        );
        let e = err(&body);
        assert_eq!(e.status_code(), status, "c={c}: {e}");
    }
}

#[test]
fn nul_bytes_do_not_panic() {
    let bodies: [&[u8]; 5] = [
        b"\0",
        b"v=0\0\r\n",
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\0\r\n",
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0\0.2.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
        b"v=0\r\n\0=\0\r\n",
    ];
    for body in bodies {
        let result = parse_offer(body).and_then(|r| negotiate(&r, BOTH));
        let e = result.expect_err("refused");
        assert_eq!(e.status_code(), 400, "{e}");
    }
    // NUL inside an attribute we ignore is harmless.
    let n = neg(&with_media("m=audio 4000 RTP/AVP 0\na=x-\0junk"));
    assert_eq!(n.pt, 0);
}

#[test]
fn size_and_count_limits() {
    let big = vec![b'a'; MAX_SDP_BYTES + 1];
    assert!(matches!(parse_offer(&big), Err(SdpError::TooLarge { .. })));
    let many: String = (0..20).map(|_| "m=video 0 RTP/AVP 31\n").collect();
    let e = err(&with_media(&many));
    assert!(matches!(e, SdpError::TooManyMedia { .. }), "{e}");
    // The strict parser takes this one; the limit is checked after it too.
    let many_crlf = crlf(&with_media(&many));
    assert!(matches!(
        parse_offer(&many_crlf),
        Err(SdpError::TooManyMedia { .. })
    ));
}

#[test]
fn garbage_bodies() {
    for body in [
        &b""[..],
        b"hello world",
        b"\r\n\r\n",
        b"v=1\r\n",
        b"m=audio 4000 RTP/AVP 0\r\n",
        b"v=0\r\nm=audio 70000 RTP/AVP 0\r\n",
        b"v=0\r\nm=audio\r\n",
    ] {
        let e = parse_offer(body).expect_err("refused");
        assert_eq!(e.status_code(), 400, "{e}");
    }
}

/// Deterministic mutation of a valid offer: flips, inserts and truncations must never
/// panic, whatever they produce.
#[test]
fn mutated_offers_never_panic() {
    let seed = crlf(
        "v=0
         o=- 1 1 IN IP4 192.0.2.5
         s=-
         c=IN IP4 192.0.2.5
         t=0 0
         m=audio 4000 RTP/AVP 0 8 101
         a=rtpmap:101 telephone-event/8000
         a=fmtp:101 0-16
         a=ptime:20
         a=sendonly
         m=video 0 RTP/AVP 31",
    );
    let alphabet = b"=:/ \r\n\0aAvocmt0189-.\xff";
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        let mut body = seed.clone();
        for _ in 0..(next() % 6 + 1) {
            let at = (next() as usize) % body.len().max(1);
            let byte = alphabet[(next() as usize) % alphabet.len()];
            match next() % 3 {
                0 => body[at] = byte,
                1 => body.insert(at, byte),
                _ => body.truncate(at),
            }
            if body.is_empty() {
                break;
            }
        }
        if let Ok(r) = parse_offer(&body)
            && let Ok(n) = negotiate(&r, BOTH)
        {
            let _ = build_answer(LOCAL, 20000, &n, 1, 1);
        }
    }
}
