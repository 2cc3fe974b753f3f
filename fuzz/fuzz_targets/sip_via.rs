//! A Via value through `Via::parse`; what parses prints to text that parses again to the
//! same branch, sent-by and printed form.
#![no_main]

use hotline_core::sip::message::Via;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(via) = Via::parse(text) {
        let printed = via.to_string();
        let again = Via::parse(&printed)
            .unwrap_or_else(|e| panic!("printed Via {printed:?} does not parse: {e}"));
        assert_eq!(again.to_string(), printed, "printing is not stable");
        assert_eq!(again.branch(), via.branch());
        assert_eq!(again.port_or_default(), via.port_or_default());
        let _ = (via.received_ip(), via.rport(), via.ttl(), via.maddr());
        let mut stamped = via.clone();
        stamped.stamp_source("192.0.2.1:5060".parse().expect("address"));
        let stamped_text = stamped.to_string();
        assert!(
            Via::parse(&stamped_text).is_ok(),
            "stamped Via {stamped_text:?} does not parse"
        );
    }
});
