//! A datagram through the RTP header parser. Checks the fields against the bytes: the
//! payload lies inside the datagram, and the fixed header reads back as written.
#![no_main]

use hotline_core::media::rtp::parse_rtp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = parse_rtp(data) else {
        return;
    };
    assert!(data.len() >= 12);
    assert_eq!(data[0] >> 6, 2, "version");
    assert_eq!(p.pt, data[1] & 0x7f);
    assert_eq!(p.marker, data[1] & 0x80 != 0);
    assert_eq!(p.seq, u16::from_be_bytes([data[2], data[3]]));
    assert_eq!(
        p.timestamp,
        u32::from_be_bytes([data[4], data[5], data[6], data[7]])
    );
    assert_eq!(
        p.ssrc,
        u32::from_be_bytes([data[8], data[9], data[10], data[11]])
    );
    assert_eq!(p.csrc_count, data[0] & 0x0f);
    let base = data.as_ptr() as usize;
    let start = p.payload.as_ptr() as usize;
    assert!(
        start >= base + 12 + 4 * usize::from(p.csrc_count)
            && start + p.payload.len() <= base + data.len(),
        "payload outside the datagram"
    );
});
