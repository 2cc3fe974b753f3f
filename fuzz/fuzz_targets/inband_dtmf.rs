//! In-band DTMF: the Goertzel detector fed 16-bit samples in frames whose lengths come
//! from the input. Checks that it reports at most two keys a frame and that a held key
//! is one it reported.
#![no_main]

use hotline_core::media::dtmf::InbandDetector;
use hotline_fuzz::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Bytes::new(data);
    let mut det = InbandDetector::new();
    let mut reported = Vec::new();
    let mut frames = 0usize;
    while !input.is_empty() && frames < 512 {
        let len = usize::from(input.u8()) * 2;
        let bytes = input.take(len * 2);
        let samples: Vec<i16> = bytes
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect();
        frames += 1;
        if let Some(k) = det.push_frame(&samples) {
            reported.push(k);
        }
        if let Some(k) = det.held_key()
            && !reported.contains(&k)
        {
            // A long push can complete two keys; the second comes with the next call.
            if let Some(next) = det.push_frame(&[]) {
                reported.push(next);
            }
            assert!(reported.contains(&k), "held key {k} was never reported");
        }
    }
    assert!(reported.len() <= 2 * frames);
});
