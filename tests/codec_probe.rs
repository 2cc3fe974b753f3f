//! The 28-message robustness probe (docs: research/rust-stack.md §3.3), each with the
//! outcome a carrier-facing server needs.

use hotline::sip::message::{
    Contacts, Frame, HeaderError, HeaderName, Host, Limits, Message, Method, ParseError, Request,
    Response, Rport, StreamFramer, Transport, Uri, error_response, parse, validate_request,
    validate_response,
};

const SDP: &str = "v=0\r\n\
o=- 3724394400 3724394400 IN IP4 192.0.2.10\r\n\
s=-\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n";

/// Joins lines with CRLF and ends the header section.
fn head(lines: &[&str]) -> String {
    let mut s = lines.join("\r\n");
    s.push_str("\r\n\r\n");
    s
}

fn invite_headers() -> Vec<&'static str> {
    vec![
        "INVITE sip:ivr@192.0.2.1 SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport",
        "Max-Forwards: 70",
        "From: \"Caller\" <sip:caller@192.0.2.10>;tag=1928301774",
        "To: <sip:ivr@192.0.2.1>",
        "Call-ID: a84b4c76e66710@192.0.2.10",
        "CSeq: 314159 INVITE",
        "Contact: <sip:caller@192.0.2.10:5060>",
        "Content-Type: application/sdp",
    ]
}

fn request(bytes: &[u8]) -> Request {
    match parse(bytes, &Limits::default()) {
        Ok(Message::Request(r)) => r,
        other => panic!("expected a request, got {other:?}"),
    }
}

fn response(bytes: &[u8]) -> Response {
    match parse(bytes, &Limits::default()) {
        Ok(Message::Response(r)) => r,
        other => panic!("expected a response, got {other:?}"),
    }
}

fn err(bytes: &[u8]) -> ParseError {
    match parse(bytes, &Limits::default()) {
        Err(e) => e,
        Ok(m) => panic!("expected an error, got {m:?}"),
    }
}

fn baseline() -> String {
    let mut lines = invite_headers();
    let cl = format!("Content-Length: {}", SDP.len());
    lines.push(&cl);
    let mut s = head(&lines);
    s.push_str(SDP);
    s
}

#[test]
fn p01_baseline_invite_round_trips() {
    let raw = baseline();
    let req = request(raw.as_bytes());
    validate_request(&req).unwrap();
    assert_eq!(req.method, Method::Invite);
    assert_eq!(req.uri.to_string(), "sip:ivr@192.0.2.1");
    assert_eq!(req.body.as_ref(), SDP.as_bytes());
    assert_eq!(req.headers.content_length().unwrap(), Some(SDP.len()));
    assert!(
        req.headers
            .content_type()
            .unwrap()
            .unwrap()
            .is("application", "sdp")
    );
    assert_eq!(req.to_bytes(), raw.as_bytes());
}

#[test]
fn p02_compact_forms() {
    let mut raw = head(&[
        "INVITE sip:ivr@192.0.2.1 SIP/2.0",
        "v: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKc1",
        "f: <sip:caller@192.0.2.10>;tag=aa",
        "t: <sip:ivr@192.0.2.1>",
        "i: compact-1@192.0.2.10",
        "CSeq: 1 INVITE",
        "m: <sip:caller@192.0.2.10>",
        "c: application/sdp",
        &format!("l: {}", SDP.len()),
    ]);
    raw.push_str(SDP);
    let req = request(raw.as_bytes());
    validate_request(&req).unwrap();
    let h = &req.headers;
    assert_eq!(h.top_via().unwrap().branch(), Some("z9hG4bKc1"));
    assert_eq!(h.from_addr().unwrap().tag(), Some("aa"));
    assert!(h.to_addr().is_ok());
    assert_eq!(h.call_id().unwrap(), "compact-1@192.0.2.10");
    assert!(h.contact().unwrap().is_some());
    assert!(h.content_type().unwrap().unwrap().is("application", "sdp"));
    assert_eq!(req.body.len(), SDP.len());
    // Printed as received: compact names stay compact.
    assert_eq!(req.to_bytes(), raw.as_bytes());
}

#[test]
fn p03_folded_subject_is_unfolded() {
    let raw = head(&[
        "OPTIONS sip:ivr@192.0.2.1 SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKf1",
        "From: <sip:a@192.0.2.10>;tag=1",
        "To: <sip:ivr@192.0.2.1>",
        "Call-ID: fold-1",
        "CSeq: 1 OPTIONS",
        "Subject: I know you're there,",
        "   pick up the phone",
        "\tand talk to me!",
        "Content-Length: 0",
    ]);
    let req = request(raw.as_bytes());
    validate_request(&req).unwrap();
    assert_eq!(
        req.headers.get("Subject").unwrap().as_str(),
        Some("I know you're there, pick up the phone and talk to me!")
    );
    // Reprint is the unfolded form and parses to the same thing.
    let again = request(&req.to_bytes());
    assert_eq!(again.headers, req.headers);
}

#[test]
fn p04_three_via_hops_in_order() {
    let raw = head(&[
        "OPTIONS sip:ivr@192.0.2.1 SIP/2.0",
        "Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1, SIP/2.0/TCP 10.0.0.1;branch=z9hG4bKp0",
        "Via: SIP/2.0/UDP 10.0.0.2:5062;branch=z9hG4bKuac",
        "From: <sip:a@example.com>;tag=1",
        "To: <sip:ivr@192.0.2.1>",
        "Call-ID: via-1",
        "CSeq: 1 OPTIONS",
        "Content-Length: 0",
    ]);
    let req = request(raw.as_bytes());
    let vias = req.headers.vias().unwrap();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].branch(), Some("z9hG4bKp1"));
    assert_eq!(vias[0].host, Host::Domain("proxy.example.com".into()));
    assert_eq!(vias[1].transport, Transport::Tcp);
    assert_eq!(vias[1].branch(), Some("z9hG4bKp0"));
    assert_eq!(vias[2].port, Some(5062));
    assert_eq!(req.headers.top_via().unwrap(), vias[0]);
    // A response copies the Via lines unchanged and in order.
    let resp = Response::for_request(&req, 200, "OK");
    let copied: Vec<_> = resp
        .headers
        .get_all("Via")
        .map(|v| v.as_bytes().to_vec())
        .collect();
    let orig: Vec<_> = req
        .headers
        .get_all("Via")
        .map(|v| v.as_bytes().to_vec())
        .collect();
    assert_eq!(copied, orig);
}

#[test]
fn p05_unknown_headers_kept_verbatim() {
    let raw = head(&[
        "OPTIONS sip:ivr@192.0.2.1 SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKu1",
        "From: <sip:a@192.0.2.10>;tag=1",
        "To: <sip:ivr@192.0.2.1>",
        "Call-ID: unk-1",
        "CSeq: 1 OPTIONS",
        "P-Asserted-Identity: \"Alice\" <sip:+15551234567@carrier.example;user=phone>",
        "X-Custom-Header: whatever; a=b",
        "NewFangledHeader:",
        "Content-Length: 0",
    ]);
    let req = request(raw.as_bytes());
    assert_eq!(
        req.headers.get("x-custom-header").unwrap().as_str(),
        Some("whatever; a=b")
    );
    assert_eq!(req.headers.get("NewFangledHeader").unwrap().as_bytes(), b"");
    let pai = req
        .headers
        .name_addrs(HeaderName::PAssertedIdentity)
        .unwrap();
    assert_eq!(pai[0].uri.user(), Some("+15551234567"));
    // Our printer writes "Name: " even for an empty value; otherwise identical.
    let printed = String::from_utf8(req.to_bytes()).unwrap();
    assert_eq!(
        printed,
        raw.replace("NewFangledHeader:", "NewFangledHeader: ")
    );
}

#[test]
fn p06_ipv6_register() {
    let raw = head(&[
        "REGISTER sip:[2001:db8::10] SIP/2.0",
        "Via: SIP/2.0/UDP [2001:db8::9:1]:5060;branch=z9hG4bKv6",
        "Max-Forwards: 70",
        "From: <sip:caller@[2001:db8::1]>;tag=v6",
        "To: <sip:caller@[2001:db8::1]>",
        "Call-ID: v6-1",
        "CSeq: 1 REGISTER",
        "Contact: <sip:caller@[2001:db8::1]:5060>",
        "Content-Length: 0",
    ]);
    let req = request(raw.as_bytes());
    validate_request(&req).unwrap();
    assert_eq!(
        req.uri.host(),
        Some(&Host::Ipv6("2001:db8::10".parse().unwrap()))
    );
    let via = req.headers.top_via().unwrap();
    assert_eq!(via.host, Host::Ipv6("2001:db8::9:1".parse().unwrap()));
    assert_eq!(via.port, Some(5060));
    let contact = req.headers.contact().unwrap().unwrap();
    assert_eq!(contact.uri.to_string(), "sip:caller@[2001:db8::1]:5060");
    assert_eq!(req.to_bytes(), raw.as_bytes());
}

#[test]
fn p07_no_content_length_takes_whole_body() {
    let mut raw = head(&invite_headers());
    raw.push_str(SDP);
    let req = request(raw.as_bytes());
    assert_eq!(req.body.as_ref(), SDP.as_bytes());
    assert_eq!(req.headers.content_length().unwrap(), None);
    // On output Content-Length is added to match.
    let out = String::from_utf8(req.to_bytes()).unwrap();
    assert!(out.contains(&format!("Content-Length: {}\r\n\r\n", SDP.len())));
}

fn invite_with_cl(cl: &str) -> String {
    let mut lines = invite_headers();
    let cl = format!("Content-Length: {cl}");
    lines.push(&cl);
    let mut s = head(&lines);
    s.push_str(SDP);
    s
}

#[test]
fn p08_content_length_beyond_datagram_is_an_error() {
    let e = err(invite_with_cl("9999").as_bytes());
    assert_eq!(
        e,
        ParseError::ContentLengthExceedsBody {
            declared: 9999,
            available: SDP.len()
        }
    );
    assert_eq!(e.status_code(), Some(400));
    let resp = error_response(
        invite_with_cl("9999").as_bytes(),
        &Limits::default(),
        &e,
        "x1",
    )
    .unwrap();
    assert_eq!(resp.status, 400);
    assert!(resp.reason.starts_with("Bad Request (Content-Length 9999"));
}

#[test]
fn p09_short_content_length_truncates() {
    let req = request(invite_with_cl("10").as_bytes());
    assert_eq!(req.body.as_ref(), &SDP.as_bytes()[..10]);
}

#[test]
fn p10_one_mib_subject_hits_the_size_limit() {
    let big = format!("Subject: {}", "x".repeat(1 << 20));
    let mut lines = invite_headers();
    lines.push(&big);
    lines.push("Content-Length: 0");
    let raw = head(&lines);
    let e = err(raw.as_bytes());
    assert!(matches!(
        e,
        ParseError::MessageTooLarge { limit: 65_535, .. }
    ));
    assert_eq!(e.status_code(), Some(513));
    assert_eq!(e.reason_phrase(), "Message Too Large");
    // The answer can still be addressed: the headers before the Subject are salvaged.
    let resp = error_response(raw.as_bytes(), &Limits::default(), &e, "t").unwrap();
    assert_eq!(resp.status, 513);
    assert_eq!(resp.headers.call_id().unwrap(), "a84b4c76e66710@192.0.2.10");
    // With a larger message limit, the line limit catches it.
    let limits = Limits {
        max_message_bytes: 2 << 20,
        ..Limits::default()
    };
    let e = parse(raw.as_bytes(), &limits).unwrap_err();
    assert_eq!(
        e,
        ParseError::LineTooLong {
            line: 10,
            limit: 8_192
        }
    );
}

#[test]
fn p11_ten_thousand_headers() {
    let mut raw = String::from("OPTIONS sip:ivr@192.0.2.1 SIP/2.0\r\n");
    for n in 0..10_000 {
        raw.push_str(&format!("X-H{n}: v\r\n"));
    }
    raw.push_str("\r\n");
    assert!(matches!(
        err(raw.as_bytes()),
        ParseError::MessageTooLarge { .. }
    ));
    let roomy = Limits {
        max_message_bytes: 1 << 20,
        ..Limits::default()
    };
    assert_eq!(
        parse(raw.as_bytes(), &roomy).unwrap_err(),
        ParseError::TooManyHeaders { limit: 128 }
    );
    let huge = Limits {
        max_message_bytes: 1 << 20,
        max_headers: 20_000,
        ..Limits::default()
    };
    let Message::Request(req) = parse(raw.as_bytes(), &huge).unwrap() else {
        panic!()
    };
    assert_eq!(req.headers.len(), 10_000);
    assert_eq!(req.headers.get("x-h9999").unwrap().as_bytes(), b"v");
}

#[test]
fn p12_binary_garbage_is_dropped() {
    let e = err(&[0xde, 0xad, 0xbe, 0xef, 0x00, 0xff, 0x0d, 0x0a, 0x0d, 0x0a]);
    assert!(matches!(e, ParseError::NotSip { .. }));
    assert_eq!(e.status_code(), None);
}

#[test]
fn p13_empty_input() {
    let e = err(b"");
    assert_eq!(e, ParseError::Empty);
    assert_eq!(e.status_code(), None);
}

#[test]
fn p14_crlf_keepalive() {
    assert_eq!(err(b"\r\n\r\n"), ParseError::KeepAlive);
    assert_eq!(ParseError::KeepAlive.status_code(), None);
    let mut f = StreamFramer::new(Limits::default());
    f.push(b"\r\n\r\n");
    assert_eq!(f.pop().unwrap(), Some(Frame::Ping));
    assert_eq!(f.pop().unwrap(), None);
}

#[test]
fn p15_non_utf8_value_is_kept_raw() {
    let mut raw = Vec::new();
    raw.extend_from_slice(b"OPTIONS sip:ivr@192.0.2.1 SIP/2.0\r\n");
    raw.extend_from_slice(b"Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKb1\r\n");
    raw.extend_from_slice(b"From: <sip:a@192.0.2.10>;tag=1\r\nTo: <sip:ivr@192.0.2.1>\r\n");
    raw.extend_from_slice(b"Call-ID: bin-1\r\nCSeq: 1 OPTIONS\r\n");
    raw.extend_from_slice(b"Subject: caf\xff\xfe\r\n");
    raw.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    let req = request(&raw);
    validate_request(&req).unwrap();
    let subject = req.headers.get("Subject").unwrap();
    assert_eq!(subject.as_bytes(), b"caf\xff\xfe");
    assert_eq!(subject.as_str(), None);
    assert_eq!(
        req.headers.single_str("Subject"),
        Err(HeaderError::NotUtf8(HeaderName::Subject))
    );
    assert_eq!(req.headers.content_length().unwrap(), Some(0));
    assert_eq!(req.to_bytes(), raw);
}

#[test]
fn p16_lf_only_line_endings_are_tolerated() {
    let sdp = SDP.replace("\r\n", "\n");
    let mut raw = invite_headers().join("\n");
    raw.push_str(&format!("\nContent-Length: {}\n\n{sdp}", sdp.len()));
    let req = request(raw.as_bytes());
    validate_request(&req).unwrap();
    assert_eq!(req.headers.len(), 9);
    assert_eq!(req.body.as_ref(), sdp.as_bytes());
    // Printing uses CRLF.
    assert_eq!(
        req.to_bytes(),
        [
            head(&invite_headers()).replace(
                "\r\n\r\n",
                &format!("\r\nContent-Length: {}\r\n\r\n", sdp.len())
            ),
            sdp
        ]
        .concat()
        .as_bytes()
    );
}

#[test]
fn p17_extension_method_with_tel_uri() {
    let raw = head(&[
        "FOOBAR tel:+1-201-555-0123 SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKfb",
        "From: <sip:a@192.0.2.10>;tag=1",
        "To: <tel:+1-201-555-0123>",
        "Call-ID: foobar-1",
        "CSeq: 7 FOOBAR",
        "Content-Length: 0",
    ]);
    let req = request(raw.as_bytes());
    assert_eq!(req.method, Method::Other("FOOBAR".into()));
    let Uri::Tel(tel) = &req.uri else {
        panic!("tel uri expected")
    };
    assert_eq!(tel.number, "+1-201-555-0123");
    validate_request(&req).unwrap();
    // The lead answers 501 to it: the response can be built.
    let resp = Response::for_request(&req, 501, "");
    assert_eq!(resp.reason, "Not Implemented");
    assert_eq!(
        resp.headers.cseq().unwrap().method,
        Method::Other("FOOBAR".into())
    );
}

#[test]
fn p18_quoted_comma_and_contact_list() {
    let raw = head(&[
        "REGISTER sip:192.0.2.1 SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKct",
        "From: \"Doe, John\" <sip:jdoe@example.com>;tag=d1",
        "To: \"Doe, John\" <sip:jdoe@example.com>",
        "Call-ID: ct-1",
        "CSeq: 2 REGISTER",
        "Contact: <sip:jdoe@192.0.2.10>;q=0.7;expires=3600, \"Mobile\" <sip:jdoe@198.51.100.3;transport=tcp>;q=0.1",
        "Content-Length: 0",
    ]);
    let req = request(raw.as_bytes());
    validate_request(&req).unwrap();
    assert_eq!(
        req.headers.to_addr().unwrap().display_name.as_deref(),
        Some("Doe, John")
    );
    let Contacts::List(list) = req.headers.contacts().unwrap() else {
        panic!()
    };
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].params.value("q"), Some("0.7"));
    assert_eq!(list[0].params.value("expires"), Some("3600"));
    assert_eq!(list[1].display_name.as_deref(), Some("Mobile"));
    assert_eq!(list[1].uri.param("transport"), Some("tcp"));
    assert_eq!(list[1].params.value("q"), Some("0.1"));
}

#[test]
fn p19_empty_reason_phrase() {
    let raw = head(&[
        "SIP/2.0 183 ",
        "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKr",
        "From: <sip:ivr@192.0.2.1>;tag=a",
        "To: <sip:b@192.0.2.10>;tag=b",
        "Call-ID: r-1",
        "CSeq: 1 INVITE",
        "Content-Length: 0",
    ]);
    let resp = response(raw.as_bytes());
    validate_response(&resp).unwrap();
    assert_eq!(resp.status, 183);
    assert_eq!(resp.reason, "");
}

#[test]
fn p20_status_999_is_dropped() {
    let raw = head(&[
        "SIP/2.0 999 Totally Custom Reason Phrase",
        "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKr",
        "Content-Length: 0",
    ]);
    let e = err(raw.as_bytes());
    assert!(matches!(e, ParseError::InvalidStatusCode { .. }));
    assert_eq!(e.status_code(), None);
}

#[test]
fn p21_raw_user_kept_and_printed_unchanged() {
    let ruri = "sip:%61lice@example.com;transport=TCP;user=phone?Subject=hi&Priority=urgent";
    let start = format!("INVITE {ruri} SIP/2.0");
    let mut lines = invite_headers();
    lines[0] = &start;
    lines.push("Content-Length: 0");
    let raw = head(&lines);
    let req = request(raw.as_bytes());
    let sip = req.uri.as_sip().unwrap();
    assert_eq!(sip.user.as_deref(), Some("%61lice"));
    assert_eq!(sip.params.value("transport"), Some("TCP"));
    assert_eq!(sip.headers.as_deref(), Some("Subject=hi&Priority=urgent"));
    assert_eq!(req.uri.to_string(), ruri);
    assert_eq!(req.to_bytes(), raw.as_bytes());
}

#[test]
fn p22_spaces_around_colon_and_params() {
    let raw = head(&[
        "OPTIONS sip:ivr@192.0.2.1 SIP/2.0",
        "vIa :  SIP/2.0/UDP 192.0.2.10 ; branch = z9hG4bKsp",
        "From: <sip:a@192.0.2.10>;tag=1",
        "To: <sip:ivr@192.0.2.1>",
        "Call-ID: sp-1",
        "CSeq: 1 OPTIONS",
        "Content-Length: 0",
    ]);
    let req = request(raw.as_bytes());
    validate_request(&req).unwrap();
    let via = req.headers.top_via().unwrap();
    assert_eq!(via.branch(), Some("z9hG4bKsp"));
    assert_eq!(via.host, Host::Ipv4("192.0.2.10".parse().unwrap()));
    // Reprinted with the received name spelling and value.
    assert!(
        String::from_utf8(req.to_bytes())
            .unwrap()
            .contains("\r\nvIa: SIP/2.0/UDP 192.0.2.10 ; branch = z9hG4bKsp\r\n")
    );
}

#[test]
fn p23_cseq_overflow_and_negative_content_length() {
    let lines = [
        "OPTIONS sip:ivr@192.0.2.1 SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKov",
        "From: <sip:a@192.0.2.10>;tag=1",
        "To: <sip:ivr@192.0.2.1>",
        "Call-ID: ov-1",
        "CSeq: 99999999999999999999999 OPTIONS",
    ];
    let mut both = lines.to_vec();
    both.push("Content-Length: -5");
    let e = err(head(&both).as_bytes());
    assert!(matches!(e, ParseError::InvalidContentLength { .. }));
    assert_eq!(e.status_code(), Some(400));

    let mut cseq_only = lines.to_vec();
    cseq_only.push("Content-Length: 0");
    let req = request(head(&cseq_only).as_bytes());
    assert!(matches!(
        req.headers.cseq(),
        Err(HeaderError::OutOfRange { .. })
    ));
    let e = validate_request(&req).unwrap_err();
    assert_eq!(e.status_code(), Some(400));
    assert!(
        e.reason_phrase()
            .starts_with("Bad Request (malformed CSeq: "),
        "{}",
        e.reason_phrase()
    );
}

#[test]
fn p24_request_line_only() {
    let raw = b"INVITE sip:a@b SIP/2.0\r\n";
    let e = err(raw);
    assert_eq!(e, ParseError::UnterminatedHeaders);
    // Nothing to address an answer with.
    assert!(error_response(raw, &Limits::default(), &e, "t").is_none());
}

#[test]
fn p25_sip_3_0_gets_505() {
    let mut lines = invite_headers();
    lines[0] = "OPTIONS sip:ivr@192.0.2.1 SIP/3.0";
    lines[6] = "CSeq: 314159 OPTIONS";
    lines.push("Content-Length: 0");
    let raw = head(&lines);
    let e = err(raw.as_bytes());
    assert_eq!(
        e,
        ParseError::VersionNotSupported {
            found: "SIP/3.0".into()
        }
    );
    assert_eq!(e.status_code(), Some(505));
    let resp = error_response(raw.as_bytes(), &Limits::default(), &e, "z9").unwrap();
    assert_eq!(
        (resp.status, resp.reason.as_str()),
        (505, "Version Not Supported")
    );
    assert_eq!(resp.headers.to_addr().unwrap().tag(), Some("z9"));
    assert_eq!(
        resp.headers.top_via().unwrap().branch(),
        Some("z9hG4bK776asdhds")
    );
}

#[test]
fn p26_unbracketed_ipv6_received() {
    let raw = head(&[
        "OPTIONS sip:ivr@192.0.2.1 SIP/2.0",
        "Via: SIP/2.0/UDP [2001:db8::9:1]:5060;branch=z9hG4bKrc;received=2001:db8::9:255;rport",
        "From: <sip:a@192.0.2.10>;tag=1",
        "To: <sip:ivr@192.0.2.1>",
        "Call-ID: rc-1",
        "CSeq: 1 OPTIONS",
        "Content-Length: 0",
    ]);
    let req = request(raw.as_bytes());
    let via = req.headers.top_via().unwrap();
    assert_eq!(via.received(), Some("2001:db8::9:255"));
    assert_eq!(via.received_ip(), Some("2001:db8::9:255".parse().unwrap()));
    assert_eq!(via.rport(), Rport::Requested);
}

#[test]
fn p27_header_without_colon_names_the_line() {
    let raw = head(&[
        "OPTIONS sip:ivr@192.0.2.1 SIP/2.0",
        "Via SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKnc",
        "From: <sip:a@192.0.2.10>;tag=1",
        "To: <sip:ivr@192.0.2.1>",
        "Call-ID: nc-1",
        "CSeq: 1 OPTIONS",
        "Content-Length: 0",
    ]);
    let e = err(raw.as_bytes());
    assert!(matches!(e, ParseError::MissingColon { line: 2, .. }));
    assert!(
        e.reason_phrase()
            .starts_with("Bad Request (no colon in header line 2")
    );
    // The Via is the broken line, so no answer can be addressed.
    assert!(error_response(raw.as_bytes(), &Limits::default(), &e, "t").is_none());
}

#[test]
fn p28_malformed_typed_headers() {
    let raw = head(&[
        "OPTIONS sip:ivr@192.0.2.1 SIP/2.0",
        "Via: SIP/2.0/",
        "From: <",
        "To: >;tag=",
        "Call-ID: mal-1",
        "CSeq: OPTIONS",
        "Content-Length: 0",
    ]);
    let req = request(raw.as_bytes());
    let h = &req.headers;
    assert!(matches!(
        h.top_via(),
        Err(HeaderError::Malformed {
            name: HeaderName::Via,
            ..
        })
    ));
    assert!(matches!(h.vias(), Err(HeaderError::Malformed { .. })));
    assert!(matches!(
        h.from_addr(),
        Err(HeaderError::Malformed {
            name: HeaderName::From,
            ..
        })
    ));
    assert!(matches!(
        h.to_addr(),
        Err(HeaderError::Malformed {
            name: HeaderName::To,
            ..
        })
    ));
    assert!(matches!(
        h.cseq(),
        Err(HeaderError::Malformed {
            name: HeaderName::CSeq,
            ..
        })
    ));
    assert_eq!(h.call_id().unwrap(), "mal-1");
    let e = validate_request(&req).unwrap_err();
    assert_eq!(e.status_code(), Some(400));
    assert!(e.reason_phrase().starts_with("Bad Request (malformed Via"));

    // An empty To tag reads as "no tag", and the UAS's tag replaces it.
    let raw = head(&[
        "OPTIONS sip:ivr@192.0.2.1 SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKet",
        "From: <sip:a@192.0.2.10>;tag=1",
        "To: <sip:ivr@192.0.2.1>;tag=",
        "Call-ID: et-1",
        "CSeq: 1 OPTIONS",
        "Content-Length: 0",
    ]);
    let req = request(raw.as_bytes());
    assert_eq!(req.headers.to_addr().unwrap().tag(), None);
    let mut resp = Response::for_request(&req, 200, "OK");
    assert!(resp.headers.ensure_to_tag("uas1").unwrap());
    assert_eq!(resp.headers.to_addr().unwrap().tag(), Some("uas1"));
    assert_eq!(
        resp.headers.get("To").unwrap().as_str(),
        Some("<sip:ivr@192.0.2.1>;tag=uas1")
    );
}
