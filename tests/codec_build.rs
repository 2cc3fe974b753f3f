//! Building and printing messages: requests in a dialog, responses to requests, and the
//! invariants of printing (Content-Length, no header injection, received spelling kept).

mod codec_common;
use codec_common as common;

use hotline::sip::message::{
    CSeq, ContentType, HeaderName, Host, Limits, Message, Method, NameAddr, Request, Response,
    Transport, Uri, Via, error_response_for, parse, validate_request, validate_response,
};

fn parsed_request(bytes: &[u8]) -> Request {
    match parse(bytes, &Limits::default()).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => panic!("expected a request"),
    }
}

#[test]
fn bye_in_a_dialog() {
    let target = Uri::parse("sip:caller@192.0.2.10:5060;transport=udp").unwrap();
    let mut bye = Request::new(Method::Bye, target);
    let via = Via::new(
        Transport::Udp,
        Host::Ipv4("192.0.2.1".parse().unwrap()),
        Some(5060),
        "z9hG4bKbye1",
    );
    let local = NameAddr::new(Uri::parse("sip:ivr@192.0.2.1").unwrap()).with_tag("uas-7");
    let remote = NameAddr::new(Uri::parse("sip:caller@192.0.2.10").unwrap())
        .with_display_name("Caller")
        .with_tag("1928301774");
    let h = &mut bye.headers;
    h.push(HeaderName::Via, &via);
    h.push(HeaderName::MaxForwards, 70u32);
    h.push(HeaderName::From, &local);
    h.push(HeaderName::To, &remote);
    h.push(HeaderName::CallId, "a84b4c76e66710@192.0.2.10");
    h.push(
        HeaderName::CSeq,
        CSeq {
            seq: 1,
            method: Method::Bye,
        },
    );
    for r in ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"] {
        h.push(HeaderName::Route, r);
    }
    let text = String::from_utf8(bye.to_bytes()).unwrap();
    assert_eq!(
        text,
        "BYE sip:caller@192.0.2.10:5060;transport=udp SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKbye1\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:ivr@192.0.2.1>;tag=uas-7\r\n\
         To: \"Caller\" <sip:caller@192.0.2.10>;tag=1928301774\r\n\
         Call-ID: a84b4c76e66710@192.0.2.10\r\n\
         CSeq: 1 BYE\r\n\
         Route: <sip:p2.example.com;lr>\r\n\
         Route: <sip:p1.example.com;lr>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    let back = parsed_request(text.as_bytes());
    validate_request(&back).unwrap();
    assert_eq!(back.headers.route().unwrap().len(), 2);
    assert_eq!(back.headers.from_addr().unwrap().tag(), Some("uas-7"));
}

#[test]
fn answering_an_invite() {
    let invite = parsed_request(&common::corpus()[0]);
    let mut ok = Response::for_request(&invite, 200, "OK");
    ok.copy_record_route(&invite);
    assert!(ok.headers.ensure_to_tag("uas-7").unwrap());
    ok.headers
        .push(HeaderName::Contact, "<sip:ivr@192.0.2.1:5060>");
    ok.set_body(&ContentType::new("application", "sdp"), common::SDP);
    validate_response(&ok).unwrap();
    let text = String::from_utf8(ok.to_bytes()).unwrap();
    let expected = format!(
        "SIP/2.0 200 OK\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n\
         From: \"Caller\" <sip:caller@192.0.2.10>;tag=1928301774\r\n\
         To: <sip:ivr@192.0.2.1>;tag=uas-7\r\n\
         Call-ID: a84b4c76e66710@192.0.2.10\r\n\
         CSeq: 314159 INVITE\r\n\
         Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
         Contact: <sip:ivr@192.0.2.1:5060>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{}",
        common::SDP.len(),
        common::SDP
    );
    assert_eq!(text, expected);
    // Without copy_record_route there is no Record-Route.
    let ringing = Response::for_request(&invite, 180, "");
    assert_eq!(ringing.reason, "Ringing");
    assert!(!ringing.headers.contains(HeaderName::RecordRoute));
}

#[test]
fn trying_copies_timestamp() {
    let raw = common::msg(
        &[
            "INVITE sip:ivr@192.0.2.1 SIP/2.0",
            "Via: SIP/2.0/UDP h;branch=z9hG4bK1",
            "From: <sip:a@b>;tag=1",
            "To: <sip:c@d>",
            "Call-ID: ts-1",
            "CSeq: 1 INVITE",
            "Timestamp: 54.2 0.3",
            "Content-Length: 0",
        ],
        "",
    );
    let req = parsed_request(&raw);
    let trying = Response::for_request(&req, 100, "Trying");
    assert_eq!(
        trying.headers.get("Timestamp").unwrap().as_str(),
        Some("54.2 0.3")
    );
    assert!(
        !Response::for_request(&req, 200, "OK")
            .headers
            .contains("Timestamp")
    );
}

#[test]
fn stamping_the_top_via_keeps_spelling_and_other_hops() {
    let raw = common::msg(
        &[
            "OPTIONS sip:ivr@192.0.2.1 SIP/2.0",
            "v: SIP/2.0/UDP 10.0.0.5:5060;rport;branch=z9hG4bKnat, SIP/2.0/UDP p.example.com;branch=z9hG4bKp",
            "From: <sip:a@b>;tag=1",
            "To: <sip:c@d>",
            "Call-ID: nat-1",
            "CSeq: 1 OPTIONS",
            "Content-Length: 0",
        ],
        "",
    );
    let mut req = parsed_request(&raw);
    assert!(
        req.headers
            .stamp_top_via("203.0.113.9:62000".parse().unwrap())
            .unwrap()
    );
    let text = String::from_utf8(req.to_bytes()).unwrap();
    assert!(text.contains("\r\nv: SIP/2.0/UDP 10.0.0.5:5060;rport=62000;branch=z9hG4bKnat;received=203.0.113.9, SIP/2.0/UDP p.example.com;branch=z9hG4bKp\r\n"), "{text}");
    let top = req.headers.top_via().unwrap();
    assert_eq!(top.received_ip(), Some("203.0.113.9".parse().unwrap()));
    assert_eq!(top.rport(), hotline::sip::message::Rport::Port(62000));
    // A generic edit through modify_top_via.
    let branch = req
        .headers
        .modify_top_via(|v| v.branch().map(str::to_string))
        .unwrap();
    assert_eq!(branch.as_deref(), Some("z9hG4bKnat"));
}

#[test]
fn content_length_always_matches_body() {
    let raw = common::msg(
        &[
            "MESSAGE sip:ivr@192.0.2.1 SIP/2.0",
            "Via: SIP/2.0/UDP h;branch=z9hG4bK1",
            "l: 2",
            "From: <sip:a@b>;tag=1",
            "To: <sip:c@d>",
            "Call-ID: cl-1",
            "CSeq: 1 MESSAGE",
        ],
        "hi",
    );
    let mut req = parsed_request(&raw);
    req.body = bytes::Bytes::from_static(b"hello");
    let text = String::from_utf8(req.to_bytes()).unwrap();
    // Same place and spelling as received, new value.
    assert!(text.starts_with("MESSAGE sip:ivr@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nl: 5\r\nFrom:"), "{text}");
    assert!(text.ends_with("\r\n\r\nhello"));
    assert_eq!(text.matches("l: ").count(), 1);
}

#[test]
fn built_values_cannot_inject_lines() {
    let mut req = Request::new(
        Method::Options,
        Uri::Other {
            scheme: "x".into(),
            rest: "a b\r\nc".into(),
        },
    );
    req.headers.push(
        "Subject",
        "hello\r\nVia: SIP/2.0/UDP evil;branch=z9hG4bKevil",
    );
    req.headers.push("Bad Name\r\n", "v");
    let mut resp = Response::for_request(&req, 200, "OK\r\nX: y");
    resp.headers.push("X-Note", "line1\nline2\0");
    let text = String::from_utf8(req.to_bytes()).unwrap();
    assert_eq!(text.lines().count(), 5, "{text}");
    assert!(text.starts_with("OPTIONS x:a%20b%0D%0Ac SIP/2.0\r\n"));
    assert!(text.contains("\r\nBad-Name--: v\r\n"));
    let text = String::from_utf8(resp.to_bytes()).unwrap();
    assert!(
        text.starts_with("SIP/2.0 200 OK  X: y\r\nX-Note: line1 line2\r\n"),
        "{text}"
    );
}

#[test]
fn error_response_for_bad_request() {
    let raw = common::msg(
        &[
            "OPTIONS sip:ivr@192.0.2.1 SIP/2.0",
            "Via: SIP/2.0/UDP h;branch=z9hG4bK1",
            "From: <sip:a@b>;tag=1",
            "To: <sip:c@d>",
            "Call-ID: e-1",
            "Call-ID: e-2",
            "CSeq: 1 OPTIONS",
            "Content-Length: 0",
        ],
        "",
    );
    let req = parsed_request(&raw);
    let e = validate_request(&req).unwrap_err();
    let resp = error_response_for(&req, &e, "t9").unwrap();
    assert_eq!(resp.status, 400);
    assert_eq!(
        resp.reason,
        "Bad Request (2 Call-ID headers where one is allowed)"
    );
    // Only the first Call-ID is echoed.
    assert_eq!(resp.headers.call_id().unwrap(), "e-1");
    assert_eq!(resp.headers.to_addr().unwrap().tag(), Some("t9"));
    // ACK is never answered.
    let mut ack = req.clone();
    ack.method = Method::Ack;
    assert!(error_response_for(&ack, &e, "t9").is_none());
}

#[test]
fn header_list_editing() {
    let mut req = Request::new(Method::Options, Uri::parse("sip:a@b").unwrap());
    req.headers.push("Supported", "timer");
    req.headers.push("k", "100rel");
    assert_eq!(req.headers.supported().unwrap(), ["timer", "100rel"]);
    req.headers.set("supported", "replaces");
    assert_eq!(req.headers.supported().unwrap(), ["replaces"]);
    assert_eq!(req.headers.remove(HeaderName::Supported), 1);
    assert!(req.headers.is_empty());
    req.headers
        .push("Via", "SIP/2.0/UDP second;branch=z9hG4bK2");
    req.headers
        .push_front("Via", "SIP/2.0/UDP first;branch=z9hG4bK1");
    assert_eq!(req.headers.top_via().unwrap().branch(), Some("z9hG4bK1"));
}
