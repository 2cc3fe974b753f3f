//! Shared test corpus and helpers for the codec tests.
#![allow(dead_code)]

use hotline::sip::message::{Message, Request, Response, validate_request, validate_response};

pub const SDP: &str = "v=0\r\n\
o=- 3724394400 3724394400 IN IP4 192.0.2.10\r\n\
s=-\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n";

/// Lines joined with CRLF plus the empty line; `body` appended.
pub fn msg(lines: &[&str], body: &str) -> Vec<u8> {
    let mut s = lines.join("\r\n");
    s.push_str("\r\n\r\n");
    s.push_str(body);
    s.into_bytes()
}

/// Messages covering the shapes the codec must survive (the §3.3 probe and friends).
pub fn corpus() -> Vec<Vec<u8>> {
    let cl = format!("Content-Length: {}", SDP.len());
    let mut v = vec![
        msg(
            &[
                "INVITE sip:ivr@192.0.2.1 SIP/2.0",
                "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport",
                "Max-Forwards: 70",
                "From: \"Caller\" <sip:caller@192.0.2.10>;tag=1928301774",
                "To: <sip:ivr@192.0.2.1>",
                "Call-ID: a84b4c76e66710@192.0.2.10",
                "CSeq: 314159 INVITE",
                "Contact: <sip:caller@192.0.2.10:5060>",
                "Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>",
                "Supported: timer, 100rel",
                "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS",
                "Content-Type: application/sdp",
                &cl,
            ],
            SDP,
        ),
        msg(
            &[
                "INVITE sip:ivr@192.0.2.1 SIP/2.0",
                "v: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKc1",
                "f: <sip:caller@192.0.2.10>;tag=aa",
                "t: <sip:ivr@192.0.2.1>",
                "i: compact-1@192.0.2.10",
                "CSeq: 1 INVITE",
                "m: <sip:caller@192.0.2.10>",
                "c: application/sdp",
                "l: 0",
            ],
            "",
        ),
        msg(
            &[
                "OPTIONS sip:ivr@192.0.2.1 SIP/2.0",
                "Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1, SIP/2.0/TCP 10.0.0.1;branch=z9hG4bKp0",
                "Via: SIP/2.0/UDP [2001:db8::9:1]:5060;branch=z9hG4bKrc;received=2001:db8::9:255;rport",
                "From: \"Doe, John\" <sip:jdoe@example.com>;tag=d1",
                "To: <sip:ivr@192.0.2.1>;tag=",
                "Call-ID: via-1",
                "CSeq: 1 OPTIONS",
                "Subject: I know you're there,",
                "   pick up the phone",
                "P-Asserted-Identity: \"Alice\" <sip:+15551234567@carrier.example;user=phone>",
                "X-Custom-Header: whatever; a=b",
                "NewFangledHeader:",
                "Expires: 3600",
                "Content-Length: 0",
            ],
            "",
        ),
        msg(
            &[
                "REGISTER sip:[2001:db8::10] SIP/2.0",
                "vIa :  SIP/2.0/UDP 192.0.2.10 ; branch = z9hG4bKsp",
                "Max-Forwards: 70",
                "From: <sip:caller@[2001:db8::1]>;tag=v6",
                "To: <sip:caller@[2001:db8::1]>",
                "Call-ID: v6-1",
                "CSeq: 1 REGISTER",
                "Contact: <sip:jdoe@192.0.2.10>;q=0.7;expires=3600, \"Mobile\" <sip:jdoe@198.51.100.3;transport=tcp>;q=0.1",
                "Route: <sip:[2001:db8::1]:5070;lr>",
                "Content-Length: 0",
            ],
            "",
        ),
        msg(
            &[
                "FOOBAR tel:+1-201-555-0123 SIP/2.0",
                "Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKfb",
                "From: sip:a@192.0.2.10;tag=1",
                "To: tel:+1-201-555-0123",
                "Call-ID: foobar-1",
                "CSeq: 7 FOOBAR",
                "Require: foo",
            ],
            "abc",
        ),
        msg(
            &[
                "INVITE sip:%61lice@example.com;transport=TCP;user=phone?Subject=hi&Priority=urgent SIP/2.0",
                "Via: SIP/2.0/TLS 192.0.2.10:5061;branch=z9hG4bKx;ttl=16;maddr=224.2.0.1",
                "From: Bob Smith <sip:bob@example.com>;tag=x",
                "To: <sip:%61lice@example.com>",
                "Call-ID: raw-1",
                "CSeq: 99999999999999999999999 INVITE",
                "Content-Length: 10",
            ],
            SDP,
        ),
        msg(
            &[
                "SIP/2.0 200 OK",
                "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKr;received=192.0.2.77",
                "From: <sip:ivr@192.0.2.1>;tag=a",
                "To: <sip:b@192.0.2.10>;tag=b",
                "Call-ID: r-1",
                "CSeq: 1 INVITE",
                "Contact: *",
                "Content-Type: application/sdp",
            ],
            SDP,
        ),
        msg(&["SIP/2.0 183 ", "Via: SIP/2.0/UDP h;branch=z9hG4bK1", "Content-Length: 0"], ""),
        msg(
            &[
                "BYE sip:caller@192.0.2.10:5060;transport=udp SIP/2.0",
                "Via: SIP/2.0/",
                "From: <",
                "To: >;tag=",
                "Call-ID: mal-1",
                "CSeq: OPTIONS",
                "Max-Forwards: 300",
                "Content-Length: 0",
            ],
            "",
        ),
        b"\r\n\r\nACK sip:ivr@192.0.2.1 SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKack\nFrom: <sip:a@b>;tag=1\nTo: <sip:c@d>;tag=2\nCall-ID: lf-1\nCSeq: 1 ACK\n\n".to_vec(),
        b"OPTIONS sip:ivr@192.0.2.1 SIP/3.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nSubject: caf\xff\xfe\r\nContent-Length: 0\r\n\r\n".to_vec(),
    ];
    v.push(b"\r\n\r\n".to_vec());
    v
}

/// Calls every typed accessor and validator; returns nothing, must never panic.
pub fn exercise(m: &Message) {
    let h = m.headers();
    if let Ok(vias) = h.vias() {
        for via in &vias {
            let _ = (
                via.branch(),
                via.received_ip(),
                via.rport(),
                via.ttl(),
                via.maddr(),
                via.port_or_default(),
            );
            // Typed structs print themselves in a form that reads back the same.
            let printed = via.to_string();
            let again = hotline::sip::message::Via::parse(&printed)
                .unwrap_or_else(|e| panic!("reprinted Via {printed:?} fails: {e}"));
            assert_eq!(&again, via);
        }
    }
    let _ = h.top_via();
    for na in [h.from_addr(), h.to_addr()].into_iter().flatten() {
        let _ = na.tag();
        let printed = na.to_string();
        let again = hotline::sip::message::NameAddr::parse(
            &printed,
            &hotline::sip::message::HeaderName::To,
        )
        .unwrap_or_else(|e| panic!("reprinted name-addr {printed:?} fails: {e}"));
        assert_eq!(again, na);
    }
    if let Ok(c) = h.cseq() {
        assert_eq!(
            hotline::sip::message::CSeq::parse(&c.to_string()).unwrap(),
            c
        );
    }
    let _ = (
        h.call_id(),
        h.max_forwards(),
        h.content_length(),
        h.content_type(),
        h.expires(),
    );
    let _ = (h.contacts(), h.contact(), h.record_route(), h.route());
    let _ = (
        h.require(),
        h.supported(),
        h.unsupported(),
        h.allow(),
        h.proxy_require(),
    );
    for hd in h {
        let _ = (hd.value_str(), hd.name().as_str());
    }
    match m {
        Message::Request(r) => {
            let _ = validate_request(r);
            check_response_building(r);
        }
        Message::Response(r) => {
            let _ = validate_response(r);
        }
    }
}

fn check_response_building(r: &Request) {
    let mut resp: Response = Response::for_request(r, 200, "OK");
    resp.copy_record_route(r);
    let _ = resp.headers.ensure_to_tag("t1");
    let mut req = r.clone();
    let _ = req
        .headers
        .stamp_top_via("192.0.2.99:5999".parse().unwrap());
    let _ = req
        .headers
        .stamp_top_via("[2001:db8::99]:5999".parse().unwrap());
    let _ = resp.to_bytes();
    let _ = req.to_bytes();
}
