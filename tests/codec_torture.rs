//! Torture cases in the spirit of RFC 4475 (and RFC 5118 for IPv6), written for hotline.
//! Valid-but-odd messages must be accepted with the right reading; invalid ones must fail
//! with the status code a UAS should answer.

mod codec_common;

use codec_common::msg;
use hotline::sip::message::{
    Contacts, HeaderError, HeaderName, Host, Limits, Message, Method, ParseError, Request,
    Transport, Uri, parse, validate_request, validate_response,
};

fn req(bytes: &[u8]) -> Request {
    match parse(bytes, &Limits::default()) {
        Ok(Message::Request(r)) => r,
        other => panic!("expected a request, got {other:?}"),
    }
}

fn parse_err(bytes: &[u8]) -> ParseError {
    parse(bytes, &Limits::default()).expect_err("must not parse")
}

/// A valid OPTIONS with the given extra lines appended to the standard ones.
fn options_with(extra: &[&str]) -> Vec<u8> {
    let mut lines = vec![
        "OPTIONS sip:ivr@example.net SIP/2.0",
        "Via: SIP/2.0/UDP host.example.org;branch=z9hG4bKtort",
        "Max-Forwards: 70",
        "From: <sip:caller@example.org>;tag=ab12",
        "To: <sip:ivr@example.net>",
        "Call-ID: tort-42@example.org",
        "CSeq: 8 OPTIONS",
    ];
    lines.extend_from_slice(extra);
    msg(&lines, "")
}

#[test]
fn whitespace_folding_and_case_everywhere() {
    let body = "v=0\r\no=x 1 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let cl = format!("conTENT-lENGTH   :   {}", body.len());
    let raw = msg(
        &[
            "INVITE sip:menu@ivr.example.net;oddparam SIP/2.0",
            "tO :",
            " sip:menu@ivr.example.net ;   tag    = 77x",
            "FROM   : \"Pat \\\"The Cat\\\" Q \\\\\"     <sip:pat@example.org>",
            "  ;",
            "  tag = 3kd9",
            "mAx-FoRwArDs: 0042",
            "Call-ID: ws.9fj3@192.0.2.5",
            &cl,
            "cseq: 0017",
            "  INVITE",
            "Via  : SIP  /   2.0",
            " /UDP",
            "    192.0.2.5;rport;branch=z9hG4bKws1",
            "s :",
            "Headerless-Novelty:   first part",
            "\tsecond part",
            "Weird-Value: ;;,,;;,;",
            "c: application/sdp",
            "Route:",
            " <sip:edge.example.net;lr;flag;k=v>",
            "v:  SIP  / 2.0  / TCP     relay.example.org   ;",
            "  branch  =   z9hG4bKws2  ,",
            " SIP  /    2.0   / UDP  198.51.100.7   ; branch=",
            " z9hG4bKws3",
            "m:\"Quoted \\\"\\\"\" <sip:pat@example.org> ; extra =",
            "      stuff ;",
            "  lone ; q = 0.33",
        ],
        body,
    );
    let r = req(&raw);
    validate_request(&r).unwrap();
    let h = &r.headers;
    let to = h.to_addr().unwrap();
    assert_eq!(to.tag(), Some("77x"));
    let from = h.from_addr().unwrap();
    assert_eq!(from.display_name.as_deref(), Some("Pat \"The Cat\" Q \\"));
    assert_eq!(from.tag(), Some("3kd9"));
    assert_eq!(h.max_forwards().unwrap(), Some(42));
    assert_eq!(h.cseq().unwrap().seq, 17);
    let vias = h.vias().unwrap();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].host, Host::Ipv4("192.0.2.5".parse().unwrap()));
    assert_eq!(vias[0].branch(), Some("z9hG4bKws1"));
    assert_eq!(vias[1].transport, Transport::Tcp);
    assert_eq!(vias[1].branch(), Some("z9hG4bKws2"));
    assert_eq!(vias[2].branch(), Some("z9hG4bKws3"));
    assert_eq!(h.get("subject").unwrap().as_bytes(), b"");
    assert_eq!(
        h.get("headerless-novelty").unwrap().as_str(),
        Some("first part second part")
    );
    assert_eq!(h.route().unwrap()[0].uri.param("k"), Some("v"));
    let c = h.contact().unwrap().unwrap();
    assert_eq!(c.display_name.as_deref(), Some("Quoted \"\""));
    assert_eq!(c.params.value("extra"), Some("stuff"));
    assert!(c.params.contains("lone"));
    assert_eq!(c.params.value("q"), Some("0.33"));
    assert_eq!(r.body.as_ref(), body.as_bytes());
}

#[test]
fn exotic_extension_method() {
    let m = "~Odd.method-9_*+`!%'";
    let start = format!("{m} sip:ivr@example.net SIP/2.0");
    let cseq = format!("CSeq: 3 {m}");
    let raw = msg(
        &[
            &start,
            "Via: SIP/2.0/UDP h.example.org;branch=z9hG4bKm",
            "From: <sip:a@example.org>;tag=1",
            "To: <sip:ivr@example.net>",
            "Call-ID: m-1",
            &cseq,
            "Content-Length: 0",
        ],
        "",
    );
    let r = req(&raw);
    assert_eq!(r.method, Method::Other(m.into()));
    validate_request(&r).unwrap();
}

#[test]
fn escapes_in_request_uri_are_kept() {
    for uri in [
        "sip:sips%3Aagent%40example.org@example.net",
        "sip:null-%00-byte@example.net",
        "sip:user;par=u%40example.org@example.net",
        "sip:ivr@example.net?Route=%3Csip:example.net%3E",
        "sip:ivr@example.net;transport=udp;lr;maddr=239.255.255.1;ttl=15",
    ] {
        let start = format!("OPTIONS {uri} SIP/2.0");
        let mut raw = options_with(&["Content-Length: 0"]);
        let text = String::from_utf8(raw.clone()).unwrap().replacen(
            "OPTIONS sip:ivr@example.net SIP/2.0",
            &start,
            1,
        );
        raw = text.into_bytes();
        let r = req(&raw);
        assert_eq!(r.uri.to_string(), uri);
        assert_eq!(r.to_bytes(), raw);
    }
}

#[test]
fn display_name_forms() {
    let r = req(&options_with(&[
        "Contact: caller<sip:caller@example.org>;expires=60",
        "Content-Length: 0",
    ]));
    let c = r.headers.contact().unwrap().unwrap();
    assert_eq!(c.display_name.as_deref(), Some("caller"));
    assert_eq!(c.params.value("expires"), Some("60"));
    let r = req(&options_with(&[
        "Contact: \"\" <sip:caller@example.org>",
        "Content-Length: 0",
    ]));
    assert_eq!(
        r.headers
            .contact()
            .unwrap()
            .unwrap()
            .display_name
            .as_deref(),
        Some("")
    );
}

#[test]
fn unusual_transports_and_rfc2543_via() {
    let r = req(&msg(
        &[
            "OPTIONS sip:ivr@example.net SIP/2.0",
            "Via: SIP/2.0/SCTP a.example.org;branch=z9hG4bK1",
            "Via: SIP/2.0/TLS b.example.org;branch=z9hG4bK2",
            "Via: SIP/2.0/UNKNOWN c.example.org;branch=z9hG4bK3",
            "Via: SIP/2.0/UDP old.example.org",
            "From: <sip:a@example.org>;tag=1",
            "To: <sip:ivr@example.net>",
            "Call-ID: tr-1",
            "CSeq: 1 OPTIONS",
            "Content-Length: 0",
        ],
        "",
    ));
    let v = r.headers.vias().unwrap();
    assert_eq!(v[0].transport, Transport::Sctp);
    assert_eq!(v[1].transport, Transport::Tls);
    assert_eq!(v[1].port_or_default(), 5061);
    assert_eq!(v[2].transport, Transport::Other("UNKNOWN".into()));
    assert_eq!(v[3].branch(), None);
    assert!(!v[3].has_rfc3261_branch());
}

#[test]
fn multipart_body_is_opaque() {
    let body = "--b1\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b1\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--b1--\r\n";
    let ct = "Content-Type: multipart/mixed;boundary=b1";
    let cl = format!("Content-Length: {}", body.len());
    let mut lines = vec![
        "MESSAGE sip:ivr@example.net SIP/2.0",
        "Via: SIP/2.0/UDP h;branch=z9hG4bKmp",
        "From: <sip:a@example.org>;tag=1",
        "To: <sip:ivr@example.net>",
        "Call-ID: mp-1",
        "CSeq: 1 MESSAGE",
    ];
    lines.push(ct);
    lines.push(&cl);
    let r = req(&msg(&lines, body));
    validate_request(&r).unwrap();
    assert_eq!(
        r.headers
            .content_type()
            .unwrap()
            .unwrap()
            .params
            .value("boundary"),
        Some("b1")
    );
    assert_eq!(r.body.as_ref(), body.as_bytes());
}

#[test]
fn responses_with_odd_reason_phrases() {
    let lines = |start: &'static str| {
        msg(
            &[
                start,
                "Via: SIP/2.0/UDP h;branch=z9hG4bK1",
                "From: <sip:a@b>;tag=1",
                "To: <sip:c@d>;tag=2",
                "Call-ID: rs-1",
                "CSeq: 1 INVITE",
                "Content-Length: 0",
            ],
            "",
        )
    };
    let Message::Response(r) = parse(
        &lines("SIP/2.0 200 Ça marche — très bien"),
        &Limits::default(),
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(r.reason, "Ça marche — très bien");
    validate_response(&r).unwrap();
    let Message::Response(r) = parse(&lines("SIP/2.0 486"), &Limits::default()).unwrap() else {
        panic!()
    };
    assert_eq!((r.status, r.reason.as_str()), (486, ""));
    let e = parse_err(&lines("SIP/2.0 4294967301 better not break the receiver"));
    assert!(matches!(e, ParseError::InvalidStatusCode { .. }));
    assert_eq!(e.status_code(), None);
}

#[test]
fn request_line_spacing() {
    let base = String::from_utf8(options_with(&["Content-Length: 0"])).unwrap();
    let tolerated = [
        "OPTIONS  sip:ivr@example.net   SIP/2.0",
        "OPTIONS sip:ivr@example.net SIP/2.0  \t",
        "OPTIONS sip:ivr@example.net sip/2.0",
    ];
    for line in tolerated {
        let r = req(base
            .replacen("OPTIONS sip:ivr@example.net SIP/2.0", line, 1)
            .as_bytes());
        assert_eq!(r.uri.to_string(), "sip:ivr@example.net");
    }
    type Check = fn(&ParseError) -> bool;
    let rejected: [(&str, Check); 5] = [
        ("OPTIONS <sip:ivr@example.net> SIP/2.0", |e| {
            matches!(e, ParseError::InvalidRequestUri(_))
        }),
        ("OPTIONS sip:ivr@example.net; lr SIP/2.0", |e| {
            matches!(e, ParseError::InvalidRequestLine { .. })
        }),
        ("OPTIONS SIP/2.0", |e| {
            matches!(e, ParseError::InvalidRequestLine { .. })
        }),
        ("OPT<IONS sip:ivr@example.net SIP/2.0", |e| {
            matches!(e, ParseError::InvalidMethod { .. })
        }),
        ("OPTIONS sip:ivr@example.net SIP/2.0a", |e| {
            matches!(e, ParseError::InvalidRequestLine { .. })
        }),
    ];
    for (line, check) in rejected {
        let e = parse_err(
            base.replacen("OPTIONS sip:ivr@example.net SIP/2.0", line, 1)
                .as_bytes(),
        );
        assert!(check(&e), "{line}: {e:?}");
        assert_eq!(e.status_code(), Some(400), "{line}");
    }
    let e = parse_err(base.replacen("SIP/2.0\r\n", "SIP/7.0\r\n", 1).as_bytes());
    assert_eq!(e.status_code(), Some(505));
    let e = parse_err(b"GET / HTTP/1.1\r\nHost: example.net\r\n\r\n");
    assert!(matches!(e, ParseError::NotSip { .. }));
}

#[test]
fn semantic_checks() {
    // CSeq method must match.
    let r = req(&String::from_utf8(options_with(&["Content-Length: 0"]))
        .unwrap()
        .replace("CSeq: 8 OPTIONS", "CSeq: 8 INVITE")
        .into_bytes());
    let e = validate_request(&r).unwrap_err();
    assert_eq!(
        e,
        ParseError::CSeqMethodMismatch {
            method: Method::Options,
            cseq: Method::Invite
        }
    );
    assert_eq!(e.status_code(), Some(400));
    // Unknown Request-URI scheme: 416.
    let text = String::from_utf8(options_with(&["Content-Length: 0"])).unwrap();
    let r = req(text
        .replacen("sip:ivr@example.net", "nobodyknows:opaque/content", 1)
        .as_bytes());
    assert!(matches!(r.uri, Uri::Other { .. }));
    assert_eq!(validate_request(&r).unwrap_err().status_code(), Some(416));
    // Unbalanced quote in From.
    let r = req(text
        .replace(
            "From: <sip:caller@example.org>;tag=ab12",
            "From: \"Mr. J. User <sip:j.user@example.org>;tag=1",
        )
        .as_bytes());
    let e = validate_request(&r).unwrap_err();
    assert!(
        matches!(
            e,
            ParseError::Header(HeaderError::Malformed {
                name: HeaderName::From,
                ..
            })
        ),
        "{e:?}"
    );
    // Max-Forwards out of range.
    let r = req(text
        .replace("Max-Forwards: 70", "Max-Forwards: 300")
        .as_bytes());
    assert!(matches!(
        validate_request(&r),
        Err(ParseError::Header(HeaderError::OutOfRange { .. }))
    ));
    // Max-Forwards absent is tolerated.
    let r = req(text.replace("Max-Forwards: 70\r\n", "").as_bytes());
    validate_request(&r).unwrap();
}

#[test]
fn missing_and_duplicate_headers() {
    let text = String::from_utf8(options_with(&["Content-Length: 0"])).unwrap();
    for (name, line) in [
        (
            HeaderName::Via,
            "Via: SIP/2.0/UDP host.example.org;branch=z9hG4bKtort\r\n",
        ),
        (
            HeaderName::From,
            "From: <sip:caller@example.org>;tag=ab12\r\n",
        ),
        (HeaderName::To, "To: <sip:ivr@example.net>\r\n"),
        (HeaderName::CallId, "Call-ID: tort-42@example.org\r\n"),
        (HeaderName::CSeq, "CSeq: 8 OPTIONS\r\n"),
    ] {
        let r = req(text.replace(line, "").as_bytes());
        let e = validate_request(&r).unwrap_err();
        assert_eq!(e, ParseError::Header(HeaderError::Missing(name.clone())));
        assert_eq!(e.reason_phrase(), format!("Bad Request (missing {name})"));
        if name != HeaderName::Via {
            let doubled = text.replace(line, &format!("{line}{line}"));
            let r = req(doubled.as_bytes());
            let e = validate_request(&r).unwrap_err();
            assert_eq!(
                e,
                ParseError::Header(HeaderError::Duplicate { name, count: 2 })
            );
        }
    }
    // Two Content-Length lines: framing is ambiguous, the whole message is refused.
    let e = parse_err(&options_with(&["Content-Length: 0", "l: 0"]));
    assert!(matches!(
        e,
        ParseError::Header(HeaderError::Duplicate {
            name: HeaderName::ContentLength,
            ..
        })
    ));
    // Call-ID with a compact twin is still a duplicate.
    let r = req(&options_with(&["i: other", "Content-Length: 0"]));
    assert!(matches!(
        validate_request(&r),
        Err(ParseError::Header(HeaderError::Duplicate { .. }))
    ));
}

#[test]
fn control_bytes_in_header_section() {
    let e = parse_err(&options_with(&["Sub\x0bject: x", "Content-Length: 0"]));
    assert!(matches!(e, ParseError::InvalidHeaderName { line: 8, .. }));
    let e = parse_err(&options_with(&["Sub\0ject: x", "Content-Length: 0"]));
    assert!(matches!(e, ParseError::InvalidHeaderName { .. }));
    let e = parse_err(&options_with(&[
        "Subject: a\rInjected: b",
        "Content-Length: 0",
    ]));
    assert_eq!(
        e,
        ParseError::ControlCharacter {
            line: 8,
            byte: b'\r'
        }
    );
    let e = parse_err(&options_with(&["Subject: a\0b", "Content-Length: 0"]));
    assert_eq!(e, ParseError::ControlCharacter { line: 8, byte: 0 });
    let e = parse_err(b"OPTIONS sip:a@b SIP/2.0\r\n continued: x\r\n\r\n");
    assert_eq!(e, ParseError::ContinuationWithoutHeader { line: 2 });
    // Other control characters inside a value are kept raw.
    let r = req(&options_with(&["Subject: bell\x07", "Content-Length: 0"]));
    assert_eq!(r.headers.get("Subject").unwrap().as_bytes(), b"bell\x07");
}

#[test]
fn second_message_in_one_datagram_is_discarded() {
    let mut raw = options_with(&["Content-Length: 0"]);
    raw.extend(options_with(&["Content-Length: 0"]));
    let r = req(&raw);
    assert!(r.body.is_empty());
}

#[test]
fn register_wildcard_contact() {
    let r = req(&msg(
        &[
            "REGISTER sip:example.net SIP/2.0",
            "Via: SIP/2.0/UDP h;branch=z9hG4bKr",
            "From: <sip:a@example.net>;tag=1",
            "To: <sip:a@example.net>",
            "Call-ID: reg-1",
            "CSeq: 2 REGISTER",
            "Contact: *",
            "Expires: 0",
            "Content-Length: 0",
        ],
        "",
    ));
    assert_eq!(r.headers.contacts().unwrap(), Contacts::Wildcard);
    assert_eq!(r.headers.expires().unwrap(), Some(0));
    let r = req(&options_with(&[
        "Contact: *",
        "Contact: <sip:x@y>",
        "Content-Length: 0",
    ]));
    assert!(r.headers.contacts().is_err());
}

#[test]
fn ipv6_forms() {
    let r = req(&msg(
        &[
            "OPTIONS sip:[2001:db8::10:5070] SIP/2.0",
            "Via: SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKv6",
            "From: <sip:a@[2001:db8::1]:5080>;tag=1",
            "To: <sip:b@[2001:db8::10]>",
            "Call-ID: v6-2",
            "CSeq: 1 OPTIONS",
            "Content-Length: 0",
        ],
        "",
    ));
    let sip = r.uri.as_sip().unwrap();
    assert_eq!(sip.host, Host::Ipv6("2001:db8::10:5070".parse().unwrap()));
    assert_eq!(sip.port, None);
    assert_eq!(
        r.headers.top_via().unwrap().received_ip(),
        Some("2001:db8::9:255".parse().unwrap())
    );
    assert_eq!(
        r.headers.from_addr().unwrap().uri.as_sip().unwrap().port,
        Some(5080)
    );
    let e = parse_err(b"OPTIONS sip:2001:db8::10 SIP/2.0\r\nContent-Length: 0\r\n\r\n");
    assert!(matches!(e, ParseError::InvalidRequestUri(_)));
    let e = parse_err(b"OPTIONS sip:[2001:db8::10 SIP/2.0\r\nContent-Length: 0\r\n\r\n");
    assert!(matches!(e, ParseError::InvalidRequestUri(_)));
}

#[test]
fn scalar_overflows() {
    let r = req(&options_with(&[
        "Expires: 99999999999999999999",
        "Content-Length: 0",
    ]));
    assert!(matches!(
        r.headers.expires(),
        Err(HeaderError::OutOfRange { .. })
    ));
    let text = String::from_utf8(options_with(&["Content-Length: 0"])).unwrap();
    let r = req(text
        .replace("CSeq: 8 OPTIONS", "CSeq: 36893488147419103232 OPTIONS")
        .as_bytes());
    assert!(matches!(
        validate_request(&r),
        Err(ParseError::Header(HeaderError::OutOfRange { .. }))
    ));
    let e = parse_err(&options_with(&["Content-Length: 18446744073709551616"]));
    assert!(matches!(e, ParseError::InvalidContentLength { .. }));
    let e = parse_err(&options_with(&["Content-Length: 1 2"]));
    assert!(matches!(e, ParseError::InvalidContentLength { .. }));
}

#[test]
fn reason_phrases_are_safe() {
    let text = String::from_utf8(options_with(&["Content-Length: 0"])).unwrap();
    let r = req(text
        .replace("CSeq: 8 OPTIONS", "CSeq: 8 OPT\u{e9}\x07IONS")
        .as_bytes());
    let e = validate_request(&r).unwrap_err();
    let phrase = e.reason_phrase();
    assert!(
        phrase.starts_with("Bad Request (malformed CSeq"),
        "{phrase}"
    );
    assert!(
        phrase.bytes().all(|b| (b' '..=b'~').contains(&b)),
        "{phrase}"
    );
    let long = format!("Bad\x01{}", "x".repeat(1000));
    let e = parse_err(&options_with(&[&long]));
    assert!(e.reason_phrase().len() < 200);
}
