//! A URI through `Uri::parse`; what parses prints to text that parses to the same URI.
#![no_main]

use hotline_core::sip::message::Uri;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(uri) = Uri::parse(text) {
        let printed = uri.to_string();
        let again = Uri::parse(&printed)
            .unwrap_or_else(|e| panic!("printed URI {printed:?} does not parse: {e}"));
        assert_eq!(again.to_string(), printed, "printing is not stable");
        let _ = (uri.user(), uri.host(), uri.scheme(), uri.param("transport"));
    }
});
