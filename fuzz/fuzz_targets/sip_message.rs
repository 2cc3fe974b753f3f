//! A datagram through the SIP codec: parse, validate, build the error answer, and print.
//! Checks that printing is stable: what parses prints to bytes that parse again and
//! print to the very same bytes.
#![no_main]

use hotline_core::sip::message::{
    Limits, Message, error_response, parse, validate_request, validate_response,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    match parse(data, &limits) {
        Ok(msg) => {
            match &msg {
                Message::Request(req) => {
                    let _ = validate_request(req);
                    let _ = req.uri.to_string();
                }
                Message::Response(resp) => {
                    let _ = validate_response(resp);
                }
            }
            let printed = msg.to_bytes();
            let again = parse(&printed, &limits).unwrap_or_else(|e| {
                panic!(
                    "printed message does not parse ({e}):\n{}",
                    String::from_utf8_lossy(&printed)
                )
            });
            assert_eq!(
                String::from_utf8_lossy(&again.to_bytes()),
                String::from_utf8_lossy(&printed),
                "printing is not stable"
            );
            assert_eq!(again.body(), msg.body(), "the body changed on a round trip");
        }
        Err(e) => {
            if let Some(resp) = error_response(data, &limits, &e, "fuzz") {
                let bytes = resp.to_bytes();
                assert!(
                    parse(&bytes, &limits).is_ok(),
                    "our error answer does not parse:\n{}",
                    String::from_utf8_lossy(&bytes)
                );
            }
        }
    }
});
