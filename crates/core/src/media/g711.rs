//! G.711 companding (ITU-T G.711): mu-law (PCMU, RTP payload type 0) and A-law (PCMA,
//! payload type 8) between 16-bit linear samples and 8-bit code words.
//!
//! Owns the bit-exact code tables and the slice conversions used on every media frame.
//! It must not allocate, keep state or know about RTP packets: callers hand it slices.
//!
//! Decoding is one lookup in a 256-entry table built at compile time. Encoding is a few
//! integer operations (a leading-zero count finds the segment), which is as fast as a table
//! and needs no 64 KiB of cache.

/// Samples in one 20 ms frame at 8 kHz, which is also the byte count of a G.711 frame.
pub const FRAME_SAMPLES: usize = 160;

/// The two G.711 laws, as negotiated in SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// mu-law, RTP static payload type 0 (North America, Japan).
    Pcmu,
    /// A-law, RTP static payload type 8 (most of the rest of the world).
    Pcma,
}

impl Codec {
    /// Both codecs, in the order we prefer them in an SDP answer.
    pub const ALL: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];

    /// RTP static payload type (RFC 3551).
    pub const fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The codec for a static payload type, if it is one of ours.
    pub const fn from_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }

    /// Encoding name as written in an SDP `a=rtpmap` line.
    pub const fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// RTP clock rate, the same as the sample rate for G.711.
    pub const fn clock_rate(self) -> u32 {
        8000
    }

    /// The code word for a zero sample, used to pad frames and to send silence.
    pub const fn silence_byte(self) -> u8 {
        match self {
            Codec::Pcmu => ULAW_SILENCE,
            Codec::Pcma => ALAW_SILENCE,
        }
    }

    /// Encodes one sample.
    #[inline]
    pub fn encode_sample(self, sample: i16) -> u8 {
        match self {
            Codec::Pcmu => ulaw_encode(sample),
            Codec::Pcma => alaw_encode(sample),
        }
    }

    /// Decodes one code word.
    #[inline]
    pub fn decode_sample(self, byte: u8) -> i16 {
        match self {
            Codec::Pcmu => ulaw_decode(byte),
            Codec::Pcma => alaw_decode(byte),
        }
    }

    /// Encodes `min(input.len(), output.len())` samples into `output` and returns that count.
    /// A shorter output is not an error: media code sizes both sides from the same frame.
    pub fn encode_into(self, input: &[i16], output: &mut [u8]) -> usize {
        let n = input.len().min(output.len());
        match self {
            Codec::Pcmu => {
                for (out, &s) in output.iter_mut().zip(input) {
                    *out = ulaw_encode(s);
                }
            }
            Codec::Pcma => {
                for (out, &s) in output.iter_mut().zip(input) {
                    *out = alaw_encode(s);
                }
            }
        }
        n
    }

    /// Decodes `min(input.len(), output.len())` code words into `output` and returns that
    /// count.
    pub fn decode_into(self, input: &[u8], output: &mut [i16]) -> usize {
        let n = input.len().min(output.len());
        let table = match self {
            Codec::Pcmu => &ULAW_DECODE,
            Codec::Pcma => &ALAW_DECODE,
        };
        for (out, &b) in output.iter_mut().zip(input) {
            *out = table[usize::from(b)];
        }
        n
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// mu-law code word of a zero sample.
pub const ULAW_SILENCE: u8 = 0xFF;
/// A-law code word of the smallest positive sample (A-law has no zero code).
pub const ALAW_SILENCE: u8 = 0xD5;

/// The mu-law bias: adding it makes the segment boundaries powers of two.
const ULAW_BIAS: i32 = 0x84;
/// Largest magnitude that mu-law can represent before the bias would overflow 15 bits.
const ULAW_CLIP: i32 = 32_635;

/// Encodes one 16-bit sample as mu-law.
#[inline]
pub fn ulaw_encode(sample: i16) -> u8 {
    // Work in i32 so that -32768 has a magnitude.
    let s = i32::from(sample);
    let (sign, magnitude) = if s < 0 { (0x80, -s) } else { (0x00, s) };
    let biased = magnitude.min(ULAW_CLIP) + ULAW_BIAS;
    // `biased` is in 0x84..=0x7FFF, so its top bit is bit 7..=14: the segment is that
    // position minus 7. leading_zeros of a 32-bit value in that range is 17..=24.
    let exponent = (24 - biased.leading_zeros()) as i32;
    let mantissa = (biased >> (exponent + 3)) & 0x0F;
    // Masked to 8 bits, so the cast cannot lose anything.
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// Decodes one mu-law code word.
#[inline]
pub fn ulaw_decode(byte: u8) -> i16 {
    ULAW_DECODE[usize::from(byte)]
}

/// Encodes one 16-bit sample as A-law.
#[inline]
pub fn alaw_encode(sample: i16) -> u8 {
    // A-law works on 13 bits; the arithmetic shift floors, and the one's complement below
    // keeps the two signs symmetric (-1 and 0 land in mirror-image first steps).
    let s = i32::from(sample) >> 3;
    let (mask, magnitude) = if s >= 0 { (0xD5, s) } else { (0x55, -s - 1) };
    // magnitude is 0..=4095. Segment 0 and 1 share a step of 2; from segment 2 on the step
    // doubles with each segment. The segment is the top bit position minus 4 (clamped to 0).
    let top = 31 - (magnitude | 1).leading_zeros() as i32; // 0..=11
    let segment = (top - 4).max(0);
    let shift = if segment == 0 { 1 } else { segment };
    let code = (segment << 4) | ((magnitude >> shift) & 0x0F);
    (code as u8) ^ mask
}

/// Decodes one A-law code word.
#[inline]
pub fn alaw_decode(byte: u8) -> i16 {
    ALAW_DECODE[usize::from(byte)]
}

const fn ulaw_decode_arith(byte: u8) -> i16 {
    let u = !byte;
    let exponent = ((u >> 4) & 0x07) as i32;
    let mantissa = (u & 0x0F) as i32;
    // Reconstruct at the middle of the quantisation step.
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    if u & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

const fn alaw_decode_arith(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let segment = ((a & 0x70) >> 4) as i32;
    let mantissa = (a & 0x0F) as i32;
    // Middle of the step: +8 in segment 0, and the implicit leading one (0x100) from
    // segment 1 on.
    let magnitude = match segment {
        0 => (mantissa << 4) + 8,
        _ => ((mantissa << 4) + 0x108) << (segment - 1),
    };
    if a & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

const fn build_table(alaw: bool) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = if alaw {
            alaw_decode_arith(i as u8)
        } else {
            ulaw_decode_arith(i as u8)
        };
        i += 1;
    }
    table
}

static ULAW_DECODE: [i16; 256] = build_table(false);
static ALAW_DECODE: [i16; 256] = build_table(true);

#[cfg(test)]
mod tests {
    use super::*;

    /// Half a quantisation step of the mu-law segment of `code`, plus what clipping costs.
    fn ulaw_error_bound(x: i16, code: u8) -> i32 {
        let exponent = i32::from((!code >> 4) & 0x07);
        let clip_excess = (i32::from(x).abs() - ULAW_CLIP).max(0);
        (4 << exponent) + clip_excess
    }

    fn alaw_error_bound(code: u8) -> i32 {
        let segment = i32::from(((code ^ 0x55) >> 4) & 0x07);
        (4 << segment).max(8)
    }

    #[test]
    fn ulaw_round_trip_within_half_a_step_for_every_sample() {
        for x in i16::MIN..=i16::MAX {
            let code = ulaw_encode(x);
            let y = ulaw_decode(code);
            let err = (i32::from(x) - i32::from(y)).abs();
            assert!(
                err <= ulaw_error_bound(x, code),
                "x={x} code={code:#04x} y={y} err={err}"
            );
            // Never flips the sign of a non-negligible sample.
            if x.unsigned_abs() > 4 {
                assert_eq!(x.signum(), y.signum(), "x={x} y={y}");
            }
        }
    }

    #[test]
    fn alaw_round_trip_within_half_a_step_for_every_sample() {
        for x in i16::MIN..=i16::MAX {
            let code = alaw_encode(x);
            let y = alaw_decode(code);
            let err = (i32::from(x) - i32::from(y)).abs();
            assert!(
                err <= alaw_error_bound(code),
                "x={x} code={code:#04x} y={y} err={err}"
            );
            if x.unsigned_abs() > 8 {
                assert_eq!(x.signum(), y.signum(), "x={x} y={y}");
            }
        }
    }

    #[test]
    fn encoding_is_monotonic() {
        let mut prev_u = ulaw_decode(ulaw_encode(i16::MIN));
        let mut prev_a = alaw_decode(alaw_encode(i16::MIN));
        for x in i16::MIN..=i16::MAX {
            let u = ulaw_decode(ulaw_encode(x));
            let a = alaw_decode(alaw_encode(x));
            assert!(u >= prev_u && a >= prev_a, "not monotonic at {x}");
            prev_u = u;
            prev_a = a;
        }
    }

    #[test]
    fn ulaw_code_words_survive_decode_encode_except_negative_zero() {
        for b in 0..=255u8 {
            let back = ulaw_encode(ulaw_decode(b));
            if b == 0x7F {
                // 0x7F is "minus zero"; it decodes to 0, which encodes as 0xFF.
                assert_eq!(back, 0xFF);
            } else {
                assert_eq!(back, b, "code {b:#04x}");
            }
        }
    }

    #[test]
    fn alaw_code_words_survive_decode_encode() {
        for b in 0..=255u8 {
            assert_eq!(alaw_encode(alaw_decode(b)), b, "code {b:#04x}");
        }
    }

    #[test]
    fn reference_values() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(-1), 0x7F);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(ulaw_decode(0x80), 32_124);
        assert_eq!(ulaw_decode(0x00), -32_124);
        assert_eq!(ulaw_decode(0xFE), 8);
        assert_eq!(ulaw_decode(0x7E), -8);

        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_encode(-1), 0x55);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xAA), 32_256);
        assert_eq!(alaw_decode(0x2A), -32_256);
    }

    #[test]
    fn codec_metadata() {
        assert_eq!(Codec::Pcmu.payload_type(), 0);
        assert_eq!(Codec::Pcma.payload_type(), 8);
        assert_eq!(Codec::from_payload_type(8), Some(Codec::Pcma));
        assert_eq!(Codec::from_payload_type(101), None);
        assert_eq!(Codec::Pcmu.decode_sample(Codec::Pcmu.silence_byte()), 0);
        assert_eq!(Codec::Pcma.encode_sample(0), Codec::Pcma.silence_byte());
        assert_eq!(Codec::Pcma.to_string(), "PCMA");
    }

    #[test]
    fn slice_conversions_match_single_samples_and_respect_lengths() {
        let input: Vec<i16> = (0..FRAME_SAMPLES as i32)
            .map(|i| (i * 397 - 30_000) as i16)
            .collect();
        for codec in Codec::ALL {
            let mut bytes = [0u8; FRAME_SAMPLES];
            assert_eq!(codec.encode_into(&input, &mut bytes), FRAME_SAMPLES);
            for (b, &s) in bytes.iter().zip(&input) {
                assert_eq!(*b, codec.encode_sample(s));
            }
            let mut out = [0i16; 100];
            assert_eq!(codec.decode_into(&bytes, &mut out), 100);
            for (o, &b) in out.iter().zip(&bytes) {
                assert_eq!(*o, codec.decode_sample(b));
            }
            let mut short = [0u8; 3];
            assert_eq!(codec.encode_into(&input, &mut short), 3);
        }
    }
}
