//! Digest header values (RFC 7616 / RFC 3261 §22): `WWW-Authenticate` challenges and
//! `Authorization` answers. What parses prints to text that parses to an equal value.
#![no_main]

use hotline_core::sip::digest::{Authorization, Challenge, parse_auth_params};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_auth_params(text);
    if let Ok(c) = Challenge::parse(text) {
        let printed = c.to_string();
        let again = Challenge::parse(&printed)
            .unwrap_or_else(|e| panic!("printed challenge {printed:?} does not parse: {e}"));
        assert_eq!(again, c, "challenge changed on a round trip");
    }
    if let Ok(a) = Authorization::parse(text) {
        let printed = a.to_string();
        let again = Authorization::parse(&printed)
            .unwrap_or_else(|e| panic!("printed answer {printed:?} does not parse: {e}"));
        assert_eq!(again, a, "answer changed on a round trip");
        let _ = a.nc_value();
    }
});
