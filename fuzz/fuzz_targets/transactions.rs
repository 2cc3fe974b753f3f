//! The pure SIP transaction layer (RFC 3261 §17) fed a sequence of requests, responses,
//! TU answers, transport errors and clock steps decoded from the input. Checks that the
//! table never exceeds its capacity and that, once the TU has answered every server
//! transaction and the far end every client one (an INVITE client that heard a 1xx waits
//! for its final answer without a timer), time alone ends every transaction (nothing
//! leaks).
#![no_main]

use std::time::{Duration, Instant};

use hotline_core::sip::transaction::{
    Reliability, Role, TimerConfig, TransactionKey, TransactionTable,
};
use hotline_fuzz::Bytes;
use libfuzzer_sys::fuzz_target;

const METHODS: [&str; 6] = ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER"];
const STATUSES: [u16; 8] = [100, 180, 183, 200, 404, 486, 503, 603];
const CAPACITY: usize = 16;

fn server_key(b: u8) -> TransactionKey {
    let method = METHODS[usize::from(b) % METHODS.len()];
    let branch = format!("z9hG4bK{}", (b >> 3) % 4);
    let port = if b & 0x80 != 0 { Some(5060) } else { None };
    TransactionKey::server(&branch, "192.0.2.1", port, method)
}

fn client_key(b: u8) -> TransactionKey {
    let method = METHODS[usize::from(b) % METHODS.len()];
    TransactionKey::client(&format!("z9hG4bKc{}", (b >> 3) % 4), method)
}

fn status(input: &mut Bytes) -> u16 {
    let b = input.u8();
    if b & 0x80 != 0 {
        input.u16()
    } else {
        STATUSES[usize::from(b) % STATUSES.len()]
    }
}

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let mut now = start;
    let mut table: TransactionTable<u32> =
        TransactionTable::new(TimerConfig::default()).with_max_transactions(CAPACITY);
    let mut input = Bytes::new(data);
    let mut servers = Vec::new();
    let mut clients = Vec::new();
    let mut ops = 0;
    while !input.is_empty() && ops < 512 {
        ops += 1;
        let op = input.u8();
        let reliability = if op & 0x80 != 0 {
            Reliability::Reliable
        } else {
            Reliability::Unreliable
        };
        match op % 6 {
            0 => {
                let key = server_key(input.u8());
                let _ = table.handle_request(now, key.clone(), u32::from(op), reliability);
                servers.push(key);
            }
            1 => {
                let key = server_key(input.u8());
                let s = status(&mut input);
                let _ = table.send_response(now, &key, s, 1);
            }
            2 => {
                let key = client_key(input.u8());
                let _ = table.start_client(now, key.clone(), 2, reliability);
                clients.push(key);
            }
            3 => {
                let key = client_key(input.u8());
                let s = status(&mut input);
                let _ = table.handle_response(now, key, s, 3, |_, r| *r);
            }
            4 => {
                now += Duration::from_millis(u64::from(input.u16()));
                table.handle_timeout(now);
            }
            _ => {
                let b = input.u8();
                if b & 1 == 0 {
                    table.transport_error(Role::Server, &server_key(b >> 1));
                } else {
                    table.transport_error(Role::Client, &client_key(b >> 1));
                }
            }
        }
        while table.poll_output().is_some() {}
        assert!(table.len() <= CAPACITY, "{} transactions", table.len());
    }
    // The TU answers whatever still waits for it; then only time passes.
    for key in &servers {
        if table.state(Role::Server, key).is_some() {
            let _ = table.send_response(now, key, 500, 9);
        }
    }
    for key in &clients {
        if table.state(Role::Client, key).is_some() {
            let _ = table.handle_response(now, key.clone(), 500, 9, |_, r| *r);
        }
    }
    while table.poll_output().is_some() {}
    // The hour counts from the last message, however far the operations moved the clock.
    let last_message = now;
    for _ in 0..10_000 {
        let Some(at) = table.poll_timeout() else {
            break;
        };
        now = now.max(at);
        table.handle_timeout(now);
        while table.poll_output().is_some() {}
        if now.duration_since(last_message) > Duration::from_secs(3600) {
            break;
        }
    }
    assert!(
        table.is_empty(),
        "{} transactions still live an hour after the last message",
        table.len()
    );
});
