//! RFC 4733 telephone events: payload parsing and the receiver fed a packet sequence
//! (timestamps, markers, arrival times and payloads from the input). Checks that a
//! payload prints back to the bytes it came from (but the reserved bit), that an immediate duplicate of a packet
//! never reports a key (no key doubled by a retransmission) and that at most one key is
//! reported per packet.
#![no_main]

use std::time::{Duration, Instant};

use hotline_core::media::dtmf::{Rfc4733Receiver, TelephoneEvent};
use hotline_fuzz::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Bytes::new(data);
    let mut rx = Rfc4733Receiver::new();
    let mut now = Instant::now();
    let mut packets = 0usize;
    let mut keys = 0usize;
    while !input.is_empty() && packets < 2048 {
        let step = input.u8();
        let timestamp = input.u32();
        let payload_len = usize::from(input.u8() % 8);
        let payload = input.take(payload_len);
        if let Some(ev) = TelephoneEvent::parse(payload) {
            let bytes = ev.to_bytes();
            assert_eq!(TelephoneEvent::parse(&bytes), Some(ev), "event round trip");
            // The reserved bit is the only one not printed back.
            let want = [payload[0], payload[1] & !0x40, payload[2], payload[3]];
            assert_eq!(bytes, want, "event prints other bytes");
        }
        now += Duration::from_millis(u64::from(step & 0x7f) * 5);
        let marker = step & 0x80 != 0;
        packets += 1;
        if rx.handle(now, timestamp, marker, payload).is_some() {
            keys += 1;
        }
        let dup = rx.handle(now, timestamp, marker, payload);
        assert_eq!(dup, None, "a duplicate packet reported a key");
        let _ = rx.active_key(now);
        if step == 0xff {
            rx.reset();
        }
    }
    assert!(keys <= packets);
});
