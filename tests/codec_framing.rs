//! Stream framing (RFC 3261 §18.3 Content-Length, RFC 5626 §4.4.1 keep-alives).

mod codec_common;
use codec_common as common;

use hotline::sip::message::{
    Frame, FramingError, Limits, Message, StreamFramer, parse, parse_bytes,
};

fn options(call_id: &str, body: &str) -> Vec<u8> {
    common::msg(
        &[
            "OPTIONS sip:ivr@192.0.2.1 SIP/2.0",
            "Via: SIP/2.0/TCP 192.0.2.10;branch=z9hG4bKt1",
            "From: <sip:a@192.0.2.10>;tag=1",
            "To: <sip:ivr@192.0.2.1>",
            &format!("Call-ID: {call_id}"),
            "CSeq: 1 OPTIONS",
            &format!("Content-Length: {}", body.len()),
        ],
        body,
    )
}

fn drain(f: &mut StreamFramer) -> Vec<Frame> {
    let mut out = Vec::new();
    while let Some(fr) = f.pop().unwrap() {
        out.push(fr);
    }
    out
}

fn call_id(frame: &Frame) -> String {
    let Frame::Message(b) = frame else {
        panic!("expected a message, got {frame:?}")
    };
    let m = parse_bytes(b.clone(), &Limits::default()).unwrap();
    m.headers().call_id().unwrap().to_string()
}

#[test]
fn two_messages_in_one_read() {
    let mut f = StreamFramer::new(Limits::default());
    let mut data = options("one", "hello");
    data.extend(options("two", ""));
    f.push(&data);
    let frames = drain(&mut f);
    assert_eq!(frames.len(), 2);
    assert_eq!(call_id(&frames[0]), "one");
    assert_eq!(call_id(&frames[1]), "two");
    let Frame::Message(b) = &frames[0] else {
        panic!()
    };
    assert_eq!(
        parse_bytes(b.clone(), &Limits::default())
            .unwrap()
            .body()
            .as_ref(),
        b"hello"
    );
    assert_eq!(f.buffered(), 0);
}

#[test]
fn byte_at_a_time_gives_the_same_frames() {
    let mut data = options("a", "xyz");
    data.extend_from_slice(b"\r\n\r\n");
    data.extend(options("b", "0123456789"));
    data.extend_from_slice(b"\r\n");
    data.extend(options("c", ""));
    let mut f = StreamFramer::new(Limits::default());
    let mut frames = Vec::new();
    for b in &data {
        f.push(std::slice::from_ref(b));
        frames.extend(drain(&mut f));
    }
    // The ping arrives in halves: its first CRLF looks like a pong, the second is the ping.
    assert_eq!(frames.len(), 6, "{frames:?}");
    assert_eq!(call_id(&frames[0]), "a");
    assert_eq!(frames[1..3], [Frame::Pong, Frame::Ping]);
    assert_eq!(call_id(&frames[3]), "b");
    assert_eq!(frames[4], Frame::Pong);
    assert_eq!(call_id(&frames[5]), "c");
}

#[test]
fn keepalives_between_messages() {
    let mut f = StreamFramer::new(Limits::default());
    f.push(b"\r\n\r\n\r\n\r\n");
    assert_eq!(drain(&mut f), vec![Frame::Ping, Frame::Ping]);
    f.push(b"\r\n");
    assert_eq!(drain(&mut f), vec![Frame::Pong]);
    // Stray bare LFs are ignored.
    f.push(b"\n\n");
    f.push(&options("after", ""));
    let frames = drain(&mut f);
    assert_eq!(frames.len(), 1);
    assert_eq!(call_id(&frames[0]), "after");
}

#[test]
fn frame_parses_like_the_datagram() {
    let data = options("same", "body!");
    let mut f = StreamFramer::new(Limits::default());
    f.push(&data);
    let Some(Frame::Message(b)) = f.pop().unwrap() else {
        panic!()
    };
    assert_eq!(b.as_ref(), data.as_slice());
    let (Message::Request(a), Message::Request(c)) = (
        parse_bytes(b, &Limits::default()).unwrap(),
        parse(&data, &Limits::default()).unwrap(),
    ) else {
        panic!()
    };
    assert_eq!(a, c);
}

#[test]
fn compact_content_length_and_lf_only() {
    let raw = "OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\nl: 3\n\nabcOPTIONS";
    let mut f = StreamFramer::new(Limits::default());
    f.push(raw.as_bytes());
    let Some(Frame::Message(b)) = f.pop().unwrap() else {
        panic!()
    };
    assert!(b.ends_with(b"\n\nabc"));
    assert_eq!(f.pop().unwrap(), None);
    assert_eq!(f.buffered(), "OPTIONS".len());
}

#[test]
fn missing_content_length_closes_the_stream() {
    let mut f = StreamFramer::new(Limits::default());
    f.push(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\r\n");
    assert_eq!(f.pop(), Err(FramingError::MissingContentLength));
    // Sticky: the connection must be closed.
    f.push(&options("x", ""));
    assert_eq!(f.pop(), Err(FramingError::MissingContentLength));
}

#[test]
fn bad_content_lengths() {
    for (cl, expect) in [
        (
            "Content-Length: -5",
            FramingError::InvalidContentLength { found: "-5".into() },
        ),
        (
            "Content-Length: 99999999999999999999999",
            FramingError::InvalidContentLength {
                found: "99999999999999999999999".into(),
            },
        ),
        (
            "Content-Length: 1\r\nl: 2",
            FramingError::ConflictingContentLength {
                first: 1,
                second: 2,
            },
        ),
    ] {
        let mut f = StreamFramer::new(Limits::default());
        f.push(format!("OPTIONS sip:a@b SIP/2.0\r\n{cl}\r\n\r\n").as_bytes());
        assert_eq!(f.pop(), Err(expect));
    }
    let mut f = StreamFramer::new(Limits::default());
    f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 100000\r\n\r\n");
    assert!(matches!(
        f.pop(),
        Err(FramingError::MessageTooLarge { size: 100_000, .. })
    ));
}

#[test]
fn endless_header_section_is_cut_off() {
    let limits = Limits {
        max_message_bytes: 1_000,
        ..Limits::default()
    };
    let mut f = StreamFramer::new(limits);
    f.push(b"OPTIONS sip:a@b SIP/2.0\r\n");
    for _ in 0..30 {
        f.push(b"X-Filler: 0123456789012345678901234567890123456789\r\n");
        if f.pop().is_err() {
            break;
        }
    }
    assert_eq!(
        f.pop(),
        Err(FramingError::HeaderSectionTooLarge { limit: 1_000 })
    );
}
