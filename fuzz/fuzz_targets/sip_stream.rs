//! A TCP byte stream through the framer, fed in chunks whose sizes come from the input.
//! Checks that the framer never holds more than its limit and that every frame it cuts
//! is no longer than what was pushed.
#![no_main]

use hotline_core::sip::message::{Frame, Limits, StreamFramer, parse_bytes};
use hotline_fuzz::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let mut framer = StreamFramer::new(limits.clone());
    let mut input = Bytes::new(data);
    let mut pushed = 0usize;
    let mut framed = 0usize;
    for _ in 0..256 {
        if input.is_empty() {
            break;
        }
        let n = usize::from(input.u8()) * 4 + 1;
        let chunk = input.take(n);
        framer.push(chunk);
        pushed += chunk.len();
        for _ in 0..64 {
            match framer.pop() {
                Ok(Some(Frame::Message(m))) => {
                    framed += m.len();
                    assert!(framed <= pushed, "the framer gave out more than it took");
                    let _ = parse_bytes(m, &limits);
                }
                Ok(Some(Frame::Ping | Frame::Pong)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        assert!(
            framer.buffered() <= limits.max_message_bytes + limits.max_body_bytes + n,
            "the framer holds {} bytes",
            framer.buffered()
        );
    }
});
