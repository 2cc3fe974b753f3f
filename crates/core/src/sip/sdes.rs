//! SDES: SRTP keys carried in SDP `a=crypto` attributes (RFC 4568), and the policy that
//! says whether a call leg's media must, may or must not be SRTP.
//!
//! Owns: reading one `a=crypto` value into a tag, a suite we speak and its master key
//! (or the reason the line is not acceptable), and printing ours. Which line of an offer
//! is chosen, and what the answer looks like around it, is `sip::sdp`'s business; the
//! transform itself is `media::srtp`'s.

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::media::srtp::{KEY_SALT_LEN, MasterKey, SrtpSuite};

/// The smallest key lifetime (in packets) we accept: we never re-key, so a key must last
/// the longest call (2^24 packets is about 93 hours of 20 ms packets).
pub const MIN_LIFETIME: u64 = 1 << 24;
/// The largest tag RFC 4568 §9.1 allows (nine digits).
const MAX_TAG: u32 = 999_999_999;

/// Whether a call leg's media is SRTP (RFC 4568 SDES keys over `RTP/SAVP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SrtpPolicy {
    /// `RTP/SAVP` offers are refused (488 when nothing else is offered): the media is
    /// always plain RTP.
    Off,
    /// An `RTP/SAVP` offer with an acceptable key gets SRTP, an `RTP/AVP` one plain RTP.
    #[default]
    Optional,
    /// A plain `RTP/AVP` offer is refused with 488: the media is always SRTP.
    Required,
}

/// One acceptable `a=crypto` line: its tag, its suite and the far end's master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crypto {
    pub tag: u32,
    pub suite: SrtpSuite,
    pub key: MasterKey,
}

/// Why an `a=crypto` line cannot be used (the line is skipped; another may do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoRefusal {
    #[error("expected `<tag> <suite> inline:<key>`")]
    Malformed,
    #[error("the crypto suite is not AES_CM_128_HMAC_SHA1_80 or _32")]
    UnknownSuite,
    #[error("the key is not 30 bytes of base64")]
    BadKey,
    #[error("the key carries an MKI (not supported)")]
    Mki,
    #[error("the key lifetime is below 2^24 packets (re-keying is not supported)")]
    ShortLifetime,
    #[error("a session parameter is not supported")]
    SessionParameter,
}

/// Reads the value of an `a=crypto` attribute (what follows `a=crypto:`).
pub fn parse_crypto(value: &str) -> Result<Crypto, CryptoRefusal> {
    let mut fields = value.split_ascii_whitespace();
    let tag = fields
        .next()
        .filter(|t| !t.is_empty() && t.len() <= 9 && t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse::<u32>().ok())
        .filter(|&t| t <= MAX_TAG)
        .ok_or(CryptoRefusal::Malformed)?;
    let suite = fields.next().ok_or(CryptoRefusal::Malformed)?;
    let params = fields.next().ok_or(CryptoRefusal::Malformed)?;
    let suite = SrtpSuite::from_name(suite).ok_or(CryptoRefusal::UnknownSuite)?;
    // Session parameters (§6.3): a window size hint and the default key derivation rate
    // change nothing for us; ones marked optional with `-` may be ignored; any other
    // changes the transform, so the line is not ours.
    for p in fields {
        let harmless = p.starts_with('-') || p.starts_with("WSH=") || p == "KDR=0";
        if !harmless {
            return Err(CryptoRefusal::SessionParameter);
        }
    }
    // Several keys (`;`) only make sense with MKIs.
    if params.contains(';') {
        return Err(CryptoRefusal::Mki);
    }
    let material = params
        .strip_prefix("inline:")
        .ok_or(CryptoRefusal::Malformed)?;
    let mut parts = material.split('|');
    let encoded = parts.next().ok_or(CryptoRefusal::Malformed)?;
    // An MKI (`|value:length`) refuses the line whatever its lifetime says.
    if parts.clone().any(|p| p.contains(':')) {
        return Err(CryptoRefusal::Mki);
    }
    for part in parts {
        let lifetime = match part.strip_prefix("2^") {
            Some(exp) => exp
                .parse::<u32>()
                .ok()
                .filter(|&e| e < 64)
                .map(|e| 1u64 << e),
            None => part.parse::<u64>().ok(),
        }
        .ok_or(CryptoRefusal::Malformed)?;
        if lifetime < MIN_LIFETIME {
            return Err(CryptoRefusal::ShortLifetime);
        }
    }
    // 30 bytes are 40 base64 characters; anything longer is not our key.
    if encoded.len() > 44 {
        return Err(CryptoRefusal::BadKey);
    }
    let mut bytes = [0u8; KEY_SALT_LEN + 3];
    let n = STANDARD
        .decode_slice(encoded, &mut bytes)
        .map_err(|_| CryptoRefusal::BadKey)?;
    let key: &[u8; KEY_SALT_LEN] = bytes
        .get(..n)
        .and_then(|b| b.try_into().ok())
        .ok_or(CryptoRefusal::BadKey)?;
    Ok(Crypto {
        tag,
        suite,
        key: MasterKey::from_bytes(key),
    })
}

/// Prints our `a=crypto` line (with CRLF).
pub fn write_crypto(out: &mut String, tag: u32, suite: SrtpSuite, key: &MasterKey) {
    let _ = write!(
        out,
        "a=crypto:{tag} {} inline:{}\r\n",
        suite.name(),
        STANDARD.encode(key.to_bytes())
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key of RFC 4568's examples (§7.1.1): 30 bytes.
    const KEY: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

    #[test]
    fn acceptable_lines() {
        for (value, tag, suite) in [
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}"),
                1,
                SrtpSuite::AesCm128HmacSha1_80,
            ),
            (
                format!("2 AES_CM_128_HMAC_SHA1_32 inline:{KEY}|2^31"),
                2,
                SrtpSuite::AesCm128HmacSha1_32,
            ),
            (
                format!("7  AES_CM_128_HMAC_SHA1_80  inline:{KEY}|4294967296 WSH=64 -FOO"),
                7,
                SrtpSuite::AesCm128HmacSha1_80,
            ),
        ] {
            let c = parse_crypto(&value).unwrap_or_else(|e| panic!("{value}: {e}"));
            assert_eq!((c.tag, c.suite), (tag, suite));
            assert_eq!(c.key.key[..3], *b"YS_");
        }
    }

    #[test]
    fn refused_lines_say_why() {
        let short_key = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9";
        for (value, why) in [
            (String::new(), CryptoRefusal::Malformed),
            (
                "1 AES_CM_128_HMAC_SHA1_80".to_owned(),
                CryptoRefusal::Malformed,
            ),
            (
                format!("x AES_CM_128_HMAC_SHA1_80 inline:{KEY}"),
                CryptoRefusal::Malformed,
            ),
            (
                format!("1234567890 AES_CM_128_HMAC_SHA1_80 inline:{KEY}"),
                CryptoRefusal::Malformed,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 key:{KEY}"),
                CryptoRefusal::Malformed,
            ),
            (
                format!("1 AES_256_CM_HMAC_SHA1_80 inline:{KEY}"),
                CryptoRefusal::UnknownSuite,
            ),
            (
                format!("1 F8_128_HMAC_SHA1_80 inline:{KEY}"),
                CryptoRefusal::UnknownSuite,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{short_key}"),
                CryptoRefusal::BadKey,
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:!!!notbase64!!!".to_owned(),
                CryptoRefusal::BadKey,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}{KEY}"),
                CryptoRefusal::BadKey,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:4"),
                CryptoRefusal::Mki,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|1:4"),
                CryptoRefusal::Mki,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|1:4;inline:{KEY}|2:4"),
                CryptoRefusal::Mki,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^10"),
                CryptoRefusal::ShortLifetime,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|1000"),
                CryptoRefusal::ShortLifetime,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^99"),
                CryptoRefusal::Malformed,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} UNENCRYPTED_SRTP"),
                CryptoRefusal::SessionParameter,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} KDR=10"),
                CryptoRefusal::SessionParameter,
            ),
        ] {
            assert_eq!(parse_crypto(&value), Err(why), "{value}");
        }
    }

    #[test]
    fn our_line_reads_back() {
        let key = MasterKey::from_bytes(&[0xa5; KEY_SALT_LEN]);
        let mut out = String::new();
        write_crypto(&mut out, 3, SrtpSuite::AesCm128HmacSha1_32, &key);
        assert!(
            out.starts_with("a=crypto:3 AES_CM_128_HMAC_SHA1_32 inline:"),
            "{out}"
        );
        assert!(out.ends_with("\r\n"));
        let value = out.trim_end().strip_prefix("a=crypto:").expect("prefix");
        let c = parse_crypto(value).expect("reads back");
        assert_eq!(
            (c.tag, c.suite, c.key),
            (3, SrtpSuite::AesCm128HmacSha1_32, key)
        );
    }
}
