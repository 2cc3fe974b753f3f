//! The SRTP transform of RFC 3711 for RTP, with the two SDES suites of RFC 4568 §6.2
//! (`AES_CM_128_HMAC_SHA1_80` and `AES_CM_128_HMAC_SHA1_32`).
//!
//! Owns: the session keys derived from a master key and salt (§4.3, key derivation rate
//! 0, so once per context), AES-128 counter mode over the payload (§4.1.1), the HMAC-SHA1
//! authentication tag over header, payload and rollover counter (§4.2), the rollover
//! counter of each direction (§3.3.1), and the 64-packet replay window on receive
//! (§3.3.2). Packets are transformed in place in the caller's buffer; nothing here
//! allocates per packet, reads a clock or draws a key (keys are handed in).
//!
//! Not here: SRTCP (the engine neither sends nor reads RTCP, see `docs/reliability.md`),
//! MKI, key lifetimes and re-keying, and the other RFC 3711 transforms (f8, NULL).

use aes::Aes128;
use aes::cipher::{Block, BlockCipherEncrypt, KeyInit};
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Bytes of a master key (AES-128).
pub const MASTER_KEY_LEN: usize = 16;
/// Bytes of a master salt (112 bits).
pub const MASTER_SALT_LEN: usize = 14;
/// Bytes of the `inline:` key material of an SDES crypto line: key then salt.
pub const KEY_SALT_LEN: usize = MASTER_KEY_LEN + MASTER_SALT_LEN;
/// The longest authentication tag a packet grows by when protected.
pub const MAX_TAG_LEN: usize = 10;
/// Bytes of the session authentication key (HMAC-SHA1, §4.2.1).
const AUTH_KEY_LEN: usize = 20;
/// Bytes of a SHA-1 block, the size HMAC keys are padded to.
const HMAC_BLOCK_LEN: usize = 64;
/// Packets the replay window remembers behind the highest index seen (§3.3.2).
const REPLAY_WINDOW: u64 = 64;
/// Bytes of a fixed RTP header.
const RTP_HEADER_LEN: usize = 12;
/// Blocks of keystream made per AES call (lets the CPU pipeline them).
const BATCH_BLOCKS: usize = 8;

/// The SRTP crypto suites we speak (RFC 4568 §6.2). Both use AES-128 counter mode and
/// HMAC-SHA1; they differ in the length of the tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpSuite {
    AesCm128HmacSha1_80,
    AesCm128HmacSha1_32,
}

impl SrtpSuite {
    /// Every suite, in our order of preference.
    pub const ALL: [SrtpSuite; 2] = [
        SrtpSuite::AesCm128HmacSha1_80,
        SrtpSuite::AesCm128HmacSha1_32,
    ];

    /// The suite's name in an SDP `a=crypto` line.
    pub const fn name(self) -> &'static str {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpSuite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    /// The suite an `a=crypto` line names, if we speak it (names are case-sensitive).
    pub fn from_name(name: &str) -> Option<SrtpSuite> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Bytes of the authentication tag each packet carries.
    pub const fn tag_len(self) -> usize {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => 10,
            SrtpSuite::AesCm128HmacSha1_32 => 4,
        }
    }
}

/// A master key and master salt, as an SDES `inline:` parameter carries them.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey {
    pub key: [u8; MASTER_KEY_LEN],
    pub salt: [u8; MASTER_SALT_LEN],
}

impl MasterKey {
    /// Splits the 30 bytes of key material (key first, salt after).
    pub fn from_bytes(bytes: &[u8; KEY_SALT_LEN]) -> MasterKey {
        let mut key = [0; MASTER_KEY_LEN];
        let mut salt = [0; MASTER_SALT_LEN];
        let (k, s) = bytes.split_at(MASTER_KEY_LEN);
        key.copy_from_slice(k);
        salt.copy_from_slice(s);
        MasterKey { key, salt }
    }

    /// The 30 bytes of key material, key then salt.
    pub fn to_bytes(&self) -> [u8; KEY_SALT_LEN] {
        let mut out = [0; KEY_SALT_LEN];
        let (k, s) = out.split_at_mut(MASTER_KEY_LEN);
        k.copy_from_slice(&self.key);
        s.copy_from_slice(&self.salt);
        out
    }
}

/// Keys never appear in logs.
impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// What offer/answer agreed for one call leg's SRTP: the suite, the key the far end
/// protects its packets with (`inbound`) and ours (`outbound`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    pub suite: SrtpSuite,
    /// The `a=crypto` tag both sides used.
    pub tag: u32,
    pub inbound: MasterKey,
    pub outbound: MasterKey,
}

/// Why a packet was not protected or unprotected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    #[error("SRTP: packet too short for an RTP header and a {tag}-byte tag ({len} bytes)")]
    TooShort { len: usize, tag: usize },
    #[error("SRTP: RTP header extends past the packet ({len} bytes)")]
    BadHeader { len: usize },
    #[error("SRTP: authentication tag does not match")]
    AuthFailed,
    #[error("SRTP: packet index already seen or older than the replay window")]
    Replayed,
    #[error("SRTP: buffer of {capacity} bytes cannot hold the {len}-byte packet and its tag")]
    NoRoom { len: usize, capacity: usize },
}

/// The keys of one direction, derived from a master key (§4.3.1 with a key derivation
/// rate of 0: the labels 0, 1 and 2 at index 0).
struct SessionKeys {
    cipher: Aes128,
    salt: [u8; MASTER_SALT_LEN],
    /// The HMAC keyed once; each packet clones it instead of hashing the key again.
    mac: Hmac<Sha1>,
    tag_len: usize,
}

impl SessionKeys {
    fn derive(master: &MasterKey, suite: SrtpSuite) -> SessionKeys {
        let prf = Aes128::new(&master.key.into());
        let mut enc = [0u8; MASTER_KEY_LEN];
        let mut auth = [0u8; AUTH_KEY_LEN];
        let mut salt = [0u8; MASTER_SALT_LEN];
        derive_key(&prf, &master.salt, 0, &mut enc);
        derive_key(&prf, &master.salt, 1, &mut auth);
        derive_key(&prf, &master.salt, 2, &mut salt);
        // HMAC pads a key shorter than its block with zeros; padding it here is the same
        // key and needs no fallible constructor.
        let mut block = [0u8; HMAC_BLOCK_LEN];
        if let Some(head) = block.get_mut(..AUTH_KEY_LEN) {
            head.copy_from_slice(&auth);
        }
        let mac = <Hmac<Sha1> as KeyInit>::new(&block.into());
        SessionKeys {
            cipher: Aes128::new(&enc.into()),
            salt,
            mac,
            tag_len: suite.tag_len(),
        }
    }

    /// XORs the counter-mode keystream of packet `index` of `ssrc` into `data` (§4.1.1).
    fn apply_keystream(&self, ssrc: u32, index: u64, data: &mut [u8]) {
        let mut iv = [0u8; 16];
        if let Some(head) = iv.get_mut(..MASTER_SALT_LEN) {
            head.copy_from_slice(&self.salt);
        }
        for (b, s) in iv.iter_mut().skip(4).zip(ssrc.to_be_bytes()) {
            *b ^= s;
        }
        // The 48-bit index sits at bytes 8..14 (shifted left by 16 bits).
        for (b, s) in iv
            .iter_mut()
            .skip(8)
            .zip(index.to_be_bytes().into_iter().skip(2))
        {
            *b ^= s;
        }
        ctr_xor(&self.cipher, &iv, data);
    }

    /// The tag of `authenticated` followed by the rollover counter (§4.2).
    fn tag(&self, authenticated: &[u8], roc: u32) -> [u8; 20] {
        let mut m = self.mac.clone();
        m.update(authenticated);
        m.update(&roc.to_be_bytes());
        m.finalize().into_bytes().into()
    }
}

/// The AES-CM pseudo-random function of §4.3.3: the keystream of `master_salt` XOR the
/// label at bit 48 (`r` is 0), written into `out`.
fn derive_key(prf: &Aes128, master_salt: &[u8; MASTER_SALT_LEN], label: u8, out: &mut [u8]) {
    let mut iv = [0u8; 16];
    if let Some(head) = iv.get_mut(..MASTER_SALT_LEN) {
        head.copy_from_slice(master_salt);
    }
    // key_id = label || r (48 bits), right-aligned in the 112-bit salt: the label is byte 7.
    if let Some(b) = iv.get_mut(7) {
        *b ^= label;
    }
    out.fill(0);
    ctr_xor(prf, &iv, out);
}

/// AES counter mode: block `i` of keystream is AES(iv + i), the counter in the low 16 bits
/// (a packet is far shorter than 2^16 blocks, so the addition never carries further).
fn ctr_xor(cipher: &Aes128, iv: &[u8; 16], data: &mut [u8]) {
    let mut counter: u16 = 0;
    let mut blocks: [Block<Aes128>; BATCH_BLOCKS] = Default::default();
    for chunk in data.chunks_mut(16 * BATCH_BLOCKS) {
        let n = chunk.len().div_ceil(16);
        let batch = blocks.get_mut(..n).unwrap_or_default();
        for b in batch.iter_mut() {
            b.copy_from_slice(iv);
            let low = u16::from_be_bytes([iv[14], iv[15]]).wrapping_add(counter);
            b[14..16].copy_from_slice(&low.to_be_bytes());
            counter = counter.wrapping_add(1);
        }
        cipher.encrypt_blocks(batch);
        for (d, k) in chunk.iter_mut().zip(batch.iter().flat_map(|b| b.iter())) {
            *d ^= k;
        }
    }
}

/// Length of the RTP header of `packet` (fixed part, CSRCs, extension): where the
/// encrypted payload starts.
fn header_len(packet: &[u8]) -> Option<usize> {
    let first = *packet.first()?;
    let csrcs = usize::from(first & 0x0f) * 4;
    let mut len = RTP_HEADER_LEN + csrcs;
    if first & 0x10 != 0 {
        let ext = packet.get(len + 2..len + 4)?;
        len += 4 + usize::from(u16::from_be_bytes([ext[0], ext[1]])) * 4;
    }
    (len <= packet.len()).then_some(len)
}

fn seq_and_ssrc(packet: &[u8]) -> Option<(u16, u32)> {
    let seq = packet.get(2..4)?;
    let ssrc = packet.get(8..12)?;
    Some((
        u16::from_be_bytes([seq[0], seq[1]]),
        u32::from_be_bytes([ssrc[0], ssrc[1], ssrc[2], ssrc[3]]),
    ))
}

/// Constant-time comparison of two tags, so timing does not reveal how much matched.
fn same_tag(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Our direction: protects the packets we send.
pub struct SrtpSender {
    keys: SessionKeys,
    roc: u32,
    last_seq: Option<u16>,
}

impl SrtpSender {
    pub fn new(master: &MasterKey, suite: SrtpSuite) -> SrtpSender {
        SrtpSender {
            keys: SessionKeys::derive(master, suite),
            roc: 0,
            last_seq: None,
        }
    }

    /// The rollover counter the next packet after a wrap would use (for tests).
    pub fn roc(&self) -> u32 {
        self.roc
    }

    /// Protects the RTP packet in `buf[..len]` in place and appends its tag; returns the
    /// protected length. `buf` must have room for the tag ([`MAX_TAG_LEN`] is enough).
    pub fn protect(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let tag_len = self.keys.tag_len;
        let capacity = buf.len();
        let out_len = len + tag_len;
        if out_len > capacity {
            return Err(SrtpError::NoRoom { len, capacity });
        }
        let packet = buf
            .get_mut(..len)
            .ok_or(SrtpError::NoRoom { len, capacity })?;
        let (seq, ssrc) = seq_and_ssrc(packet).ok_or(SrtpError::TooShort { len, tag: 0 })?;
        let head = header_len(packet).ok_or(SrtpError::BadHeader { len })?;
        // Our sender counts up by one: going from the top half back to the bottom is a wrap.
        if let Some(last) = self.last_seq
            && seq < last
            && last - seq > 0x8000
        {
            self.roc = self.roc.wrapping_add(1);
        }
        self.last_seq = Some(seq);
        let index = (u64::from(self.roc) << 16) | u64::from(seq);
        if let Some(payload) = packet.get_mut(head..) {
            self.keys.apply_keystream(ssrc, index, payload);
        }
        let tag = self.keys.tag(packet, self.roc);
        if let (Some(dst), Some(src)) = (buf.get_mut(len..out_len), tag.get(..tag_len)) {
            dst.copy_from_slice(src);
        }
        Ok(out_len)
    }
}

/// The far end's direction: checks and decrypts the packets it sends.
pub struct SrtpReceiver {
    keys: SessionKeys,
    /// The SSRC the rollover counter and window belong to.
    ssrc: u32,
    /// The rollover counter and highest sequence number authenticated (`s_l`), once a
    /// packet has been.
    state: Option<(u32, u16)>,
    /// Bit `i` set: the packet `i` below the highest index was received.
    window: u64,
}

impl SrtpReceiver {
    pub fn new(master: &MasterKey, suite: SrtpSuite) -> SrtpReceiver {
        SrtpReceiver {
            keys: SessionKeys::derive(master, suite),
            ssrc: 0,
            state: None,
            window: 0,
        }
    }

    /// The rollover counter of the highest packet authenticated so far.
    pub fn roc(&self) -> u32 {
        self.state.map_or(0, |(roc, _)| roc)
    }

    /// The packet index `seq` most likely has (§3.3.1), with its rollover counter, or
    /// `None` when it would be before index 0.
    fn estimate(&self, seq: u16, ssrc: u32) -> Option<(u32, u64)> {
        let Some((roc, s_l)) = self.state.filter(|_| ssrc == self.ssrc) else {
            return Some((0, u64::from(seq)));
        };
        let v = if s_l < 0x8000 {
            if seq > s_l && seq - s_l > 0x8000 {
                roc.checked_sub(1)?
            } else {
                roc
            }
        } else if s_l - 0x8000 > seq {
            roc.checked_add(1)?
        } else {
            roc
        };
        Some((v, (u64::from(v) << 16) | u64::from(seq)))
    }

    fn highest(&self, ssrc: u32) -> Option<u64> {
        self.state
            .filter(|_| ssrc == self.ssrc)
            .map(|(roc, s_l)| (u64::from(roc) << 16) | u64::from(s_l))
    }

    /// Checks the SRTP packet in `buf` and decrypts it in place; returns the length of the
    /// plain RTP packet (the tag is cut off). A packet that fails is left unusable and
    /// must be dropped: nothing of it may be read.
    ///
    /// The far end's stream is tracked for one SSRC at a time: an authenticated packet of
    /// another SSRC (the far end restarted its stream) starts its rollover counter and
    /// window afresh.
    pub fn unprotect(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let len = buf.len();
        let tag_len = self.keys.tag_len;
        if len < RTP_HEADER_LEN + tag_len {
            return Err(SrtpError::TooShort { len, tag: tag_len });
        }
        let plain_len = len - tag_len;
        let (seq, ssrc) = seq_and_ssrc(buf).ok_or(SrtpError::TooShort { len, tag: tag_len })?;
        let (roc, index) = self.estimate(seq, ssrc).ok_or(SrtpError::Replayed)?;
        // Replay check first: it is cheap, and a replay must not cost an HMAC.
        if let Some(high) = self.highest(ssrc)
            && index <= high
        {
            let behind = high - index;
            if behind >= REPLAY_WINDOW || self.window & (1 << behind) != 0 {
                return Err(SrtpError::Replayed);
            }
        }
        let (packet, tag) = buf.split_at_mut(plain_len);
        let expected = self.keys.tag(packet, roc);
        if !same_tag(expected.get(..tag_len).unwrap_or_default(), tag) {
            return Err(SrtpError::AuthFailed);
        }
        let head = header_len(packet).ok_or(SrtpError::BadHeader { len })?;
        if let Some(payload) = packet.get_mut(head..) {
            self.keys.apply_keystream(ssrc, index, payload);
        }
        self.accept(ssrc, roc, seq, index);
        Ok(plain_len)
    }

    /// Moves the window for an authenticated packet.
    fn accept(&mut self, ssrc: u32, roc: u32, seq: u16, index: u64) {
        match self.highest(ssrc) {
            None => {
                self.ssrc = ssrc;
                self.state = Some((roc, seq));
                self.window = 1;
            }
            Some(high) if index > high => {
                let ahead = index - high;
                self.window = if ahead >= REPLAY_WINDOW {
                    1
                } else {
                    (self.window << ahead) | 1
                };
                self.state = Some((roc, seq));
            }
            Some(high) => {
                self.window |= 1 << (high - index);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        hex::decode(s).expect("hex")
    }

    /// RFC 3711 Appendix B.2: the AES-CM keystream for a session key and salt, SSRC 0,
    /// index 0; the first three blocks and those of counters 0xFEFF to 0xFF01.
    #[test]
    fn aes_cm_keystream_matches_rfc_3711_b2() {
        let key: [u8; 16] = hex("2B7E151628AED2A6ABF7158809CF4F3C")
            .try_into()
            .expect("16");
        let cipher = Aes128::new(&key.into());
        let iv: [u8; 16] = hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000")
            .try_into()
            .expect("16");
        let mut stream = vec![0u8; 16 * 0xFF02];
        ctr_xor(&cipher, &iv, &mut stream);
        assert_eq!(
            stream[..48],
            hex("E03EAD0935C95E80E166B16DD92B4EB4
                 D23513162B02D0F72A43A2FE4A5F97AB
                 41E95B3BB0A2E8DD477901E4FCA894C0")[..]
        );
        assert_eq!(
            stream[16 * 0xFEFF..],
            hex("EC8CDF7398607CB0F2D21675EA9EA1E4
                 362B7C3C6773516318A077D7FC5073AE
                 6A2CC3787889374FBEB4C81B17BA6C44")[..]
        );
        // The same keystream through the session keys' IV (salt, SSRC 0, index 0).
        let keys = SessionKeys {
            cipher: Aes128::new(&key.into()),
            salt: iv[..14].try_into().expect("14"),
            mac: <Hmac<Sha1> as KeyInit>::new(&[0u8; HMAC_BLOCK_LEN].into()),
            tag_len: 10,
        };
        let mut first = [0u8; 48];
        keys.apply_keystream(0, 0, &mut first);
        assert_eq!(first[..], stream[..48]);
    }

    /// RFC 3711 Appendix B.3: the session encryption key, salt and authentication key
    /// derived from a master key and salt.
    #[test]
    fn key_derivation_matches_rfc_3711_b3() {
        let master_key: [u8; 16] = hex("E1F97A0D3E018BE0D64FA32C06DE4139")
            .try_into()
            .expect("16");
        let master_salt: [u8; 14] = hex("0EC675AD498AFEEBB6960B3AABE6").try_into().expect("14");
        let prf = Aes128::new(&master_key.into());
        let mut enc = [0u8; 16];
        derive_key(&prf, &master_salt, 0, &mut enc);
        assert_eq!(enc[..], hex("C61E7A93744F39EE10734AFE3FF7A087")[..]);
        let mut salt = [0u8; 14];
        derive_key(&prf, &master_salt, 2, &mut salt);
        assert_eq!(salt[..], hex("30CBBC08863D8C85D49DB34A9AE1")[..]);
        let mut auth = [0u8; 94];
        derive_key(&prf, &master_salt, 1, &mut auth);
        assert_eq!(
            auth[..],
            hex(
                "CEBE321F6FF7716B6FD4AB49AF256A15 6D38BAA48F0A0ACF3C34E2359E6CDBCE
                 E049646C43D9327AD175578EF7227098 6371C10C9A369AC2F94A8C5FBCDDDC25
                 6D6E919A48B610EF17C2041E47403576 6B68642C59BBFC2F34DB60DBDFB2"
            )[..]
        );
    }

    fn master(fill: u8) -> MasterKey {
        MasterKey::from_bytes(&[fill; KEY_SALT_LEN])
    }

    fn rtp(seq: u16, payload: &[u8], buf: &mut [u8]) -> usize {
        buf[..12].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 160, 0xde, 0xad, 0xbe, 0xef]);
        buf[2..4].copy_from_slice(&seq.to_be_bytes());
        buf[12..12 + payload.len()].copy_from_slice(payload);
        12 + payload.len()
    }

    #[test]
    fn protect_then_unprotect_gives_the_packet_back_for_both_suites() {
        for suite in SrtpSuite::ALL {
            let mut tx = SrtpSender::new(&master(7), suite);
            let mut rx = SrtpReceiver::new(&master(7), suite);
            let mut buf = [0u8; 256];
            let len = rtp(100, &[0x55; 160], &mut buf);
            let plain = buf[..len].to_vec();
            let n = tx.protect(&mut buf, len).expect("protected");
            assert_eq!(n, len + suite.tag_len());
            assert_ne!(buf[12..len], plain[12..], "payload is encrypted");
            assert_eq!(buf[..12], plain[..12], "header stays clear");
            let m = rx.unprotect(&mut buf[..n]).expect("authentic");
            assert_eq!(buf[..m], plain[..]);
        }
    }

    #[test]
    fn a_tampered_packet_or_a_wrong_key_fails_authentication() {
        let mut tx = SrtpSender::new(&master(7), SrtpSuite::AesCm128HmacSha1_80);
        let mut rx = SrtpReceiver::new(&master(7), SrtpSuite::AesCm128HmacSha1_80);
        let mut buf = [0u8; 256];
        let len = rtp(1, &[1; 160], &mut buf);
        let n = tx.protect(&mut buf, len).expect("protected");
        let mut bad = buf;
        bad[40] ^= 1;
        assert_eq!(rx.unprotect(&mut bad[..n]), Err(SrtpError::AuthFailed));
        let mut other = SrtpReceiver::new(&master(8), SrtpSuite::AesCm128HmacSha1_80);
        let mut copy = buf;
        assert_eq!(other.unprotect(&mut copy[..n]), Err(SrtpError::AuthFailed));
        // The failures changed nothing: the genuine packet still passes.
        assert!(rx.unprotect(&mut buf[..n]).is_ok());
    }

    #[test]
    fn replays_and_packets_older_than_the_window_are_refused() {
        let mut tx = SrtpSender::new(&master(3), SrtpSuite::AesCm128HmacSha1_32);
        let mut rx = SrtpReceiver::new(&master(3), SrtpSuite::AesCm128HmacSha1_32);
        let mut sent = Vec::new();
        for seq in 1000..1100u16 {
            let mut buf = [0u8; 64];
            let len = rtp(seq, &[9; 20], &mut buf);
            let n = tx.protect(&mut buf, len).expect("protected");
            sent.push(buf[..n].to_vec());
        }
        // Out of order within the window is fine, once.
        for i in [1usize, 0, 3, 2] {
            assert!(rx.unprotect(&mut sent[i].clone()).is_ok());
            assert_eq!(rx.unprotect(&mut sent[i].clone()), Err(SrtpError::Replayed));
        }
        assert!(rx.unprotect(&mut sent[99].clone()).is_ok());
        // 99 - 4 = 95 behind: outside the 64-packet window.
        assert_eq!(rx.unprotect(&mut sent[4].clone()), Err(SrtpError::Replayed));
        // 99 - 40 = 59 behind: inside, never seen.
        assert!(rx.unprotect(&mut sent[40].clone()).is_ok());
    }

    #[test]
    fn the_rollover_counter_follows_the_sequence_number_around_65535() {
        let mut tx = SrtpSender::new(&master(5), SrtpSuite::AesCm128HmacSha1_80);
        let mut rx = SrtpReceiver::new(&master(5), SrtpSuite::AesCm128HmacSha1_80);
        let mut late = None;
        for i in 0..20u16 {
            let seq = 65530u16.wrapping_add(i);
            let mut buf = [0u8; 64];
            let len = rtp(seq, &[i as u8; 20], &mut buf);
            let n = tx.protect(&mut buf, len).expect("protected");
            if seq == 65535 {
                // Held back: arrives after the wrap, and must still be read with ROC 0.
                late = Some(buf[..n].to_vec());
                continue;
            }
            let m = rx.unprotect(&mut buf[..n]).expect("authentic");
            assert_eq!(buf[12..m], [i as u8; 20]);
        }
        assert_eq!(tx.roc(), 1);
        assert_eq!(rx.roc(), 1);
        let mut late = late.expect("kept");
        let m = rx
            .unprotect(&mut late)
            .expect("index estimated before the wrap");
        assert_eq!(late[12..m], [5u8; 20]);
    }

    #[test]
    fn a_new_ssrc_starts_its_own_window() {
        let mut rx = SrtpReceiver::new(&master(4), SrtpSuite::AesCm128HmacSha1_80);
        let mut tx = SrtpSender::new(&master(4), SrtpSuite::AesCm128HmacSha1_80);
        let mut buf = [0u8; 64];
        let len = rtp(5000, &[1; 20], &mut buf);
        let n = tx.protect(&mut buf, len).expect("protected");
        assert!(rx.unprotect(&mut buf[..n]).is_ok());
        // The far end restarts with another SSRC and a lower sequence number.
        let mut tx = SrtpSender::new(&master(4), SrtpSuite::AesCm128HmacSha1_80);
        let len = rtp(10, &[2; 20], &mut buf);
        buf[8..12].copy_from_slice(&7u32.to_be_bytes());
        let n = tx.protect(&mut buf, len).expect("protected");
        let kept = buf;
        assert!(rx.unprotect(&mut buf[..n]).is_ok());
        let mut again = kept;
        assert_eq!(rx.unprotect(&mut again[..n]), Err(SrtpError::Replayed));
    }

    #[test]
    fn short_and_malformed_packets_are_errors_not_panics() {
        let mut rx = SrtpReceiver::new(&master(1), SrtpSuite::AesCm128HmacSha1_80);
        for len in 0..40 {
            let mut buf = vec![0x9f; len];
            assert!(rx.unprotect(&mut buf).is_err());
        }
        let mut tx = SrtpSender::new(&master(1), SrtpSuite::AesCm128HmacSha1_80);
        let mut buf = [0u8; 30];
        let len = rtp(1, &[0; 10], &mut buf);
        assert!(matches!(
            tx.protect(&mut buf, len),
            Err(SrtpError::NoRoom { .. })
        ));
        let mut tiny = [0x80u8; 8];
        assert!(tx.protect(&mut tiny, 4).is_err());
        // An extension header longer than the packet.
        let mut ext = [0u8; 64];
        let len = rtp(1, &[0; 8], &mut ext);
        ext[0] = 0x90;
        ext[14..16].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(tx.protect(&mut ext, len), Err(SrtpError::BadHeader { len }));
    }

    #[test]
    fn suite_names_round_trip() {
        for s in SrtpSuite::ALL {
            assert_eq!(SrtpSuite::from_name(s.name()), Some(s));
        }
        assert_eq!(SrtpSuite::from_name("AES_256_CM_HMAC_SHA1_80"), None);
        assert_eq!(SrtpSuite::from_name("aes_cm_128_hmac_sha1_80"), None);
    }
}
