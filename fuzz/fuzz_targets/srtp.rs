//! A datagram through the SRTP transform. Read as SRTP it must be refused or accepted,
//! never panic; read as an RTP packet, protecting it and unprotecting the result with the
//! same key must give it back byte for byte, and a copy with one bit flipped must fail.
#![no_main]

use hotline_core::media::srtp::{MasterKey, SrtpReceiver, SrtpSender, SrtpSuite};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&choice, data)) = data.split_first() else {
        return;
    };
    let suite = SrtpSuite::ALL[usize::from(choice & 1)];
    let key = MasterKey::from_bytes(&[0x5a; 30]);
    let mut copy = data.to_vec();
    let _ = SrtpReceiver::new(&key, suite).unprotect(&mut copy);

    let mut buf = vec![0u8; data.len() + 10];
    buf[..data.len()].copy_from_slice(data);
    let Ok(n) = SrtpSender::new(&key, suite).protect(&mut buf, data.len()) else {
        return;
    };
    let protected = buf[..n].to_vec();
    let mut rx = SrtpReceiver::new(&key, suite);
    let mut flipped = protected.clone();
    let bit = usize::from(choice >> 1) % (flipped.len() * 8);
    flipped[bit / 8] ^= 1 << (bit % 8);
    assert!(
        rx.unprotect(&mut flipped).is_err(),
        "a packet with bit {bit} flipped authenticated"
    );
    let mut back = protected;
    let m = rx.unprotect(&mut back).expect("our own packet authenticates");
    assert_eq!(&back[..m], data, "unprotect does not give the packet back");
});
