//! A small RIFF/WAVE reader: finds the `fmt ` and `data` chunks of a WAV file held in
//! memory, and decodes G.711 (mu-law, A-law) sample data, which `hound` refuses.
//!
//! Owns the chunk walk and the format description. Every size read from the file is
//! checked against the bytes actually present, so a corrupt or hostile header can neither
//! panic nor make us allocate more than the file's own size. It must not resample, pick
//! files or know about prompts: `prompt` does that.

use super::g711::Codec;

/// Format tags from the WAVE specification that we recognise.
pub const TAG_PCM: u16 = 0x0001;
pub const TAG_IEEE_FLOAT: u16 = 0x0003;
pub const TAG_ALAW: u16 = 0x0006;
pub const TAG_MULAW: u16 = 0x0007;
pub const TAG_EXTENSIBLE: u16 = 0xFFFE;

/// The 14 bytes that follow the format tag in a WAVE_FORMAT_EXTENSIBLE sub-format GUID
/// for every format that has a plain tag (KSDATAFORMAT_SUBTYPE_*).
const GUID_SUFFIX: [u8; 14] = [
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];

/// How the samples are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Linear integer PCM (8-bit unsigned, wider signed little-endian).
    Pcm,
    /// IEEE floating point.
    Float,
    /// G.711 mu-law or A-law, one byte per sample.
    G711(Codec),
    /// Anything else, by format tag (ADPCM, GSM, MP3...).
    Other(u16),
}

/// The `fmt ` chunk, with WAVE_FORMAT_EXTENSIBLE resolved to its sub-format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    pub encoding: Encoding,
    /// The tag as written in the file (0xFFFE for extensible files).
    pub tag: u16,
    pub channels: u16,
    pub sample_rate: u32,
    pub block_align: u16,
    pub bits_per_sample: u16,
}

/// A parsed WAV file: its format and the bytes of its `data` chunk.
#[derive(Debug, Clone, Copy)]
pub struct Wav<'a> {
    pub format: Format,
    pub data: &'a [u8],
}

/// What is wrong with a WAV file's structure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    #[error("not a WAV file: only {len} bytes, shorter than a RIFF header")]
    TooShort { len: usize },
    #[error("not a WAV file: expected \"RIFF\" at the start, found {found:?}")]
    NotRiff { found: String },
    #[error("not a WAV file: RIFF form type is {found:?}, expected \"WAVE\"")]
    NotWave { found: String },
    #[error(
        "chunk {chunk:?} at byte {offset} declares {declared} bytes but only {available} remain (truncated file?)"
    )]
    Truncated {
        chunk: String,
        offset: usize,
        declared: u32,
        available: usize,
    },
    #[error("no \"fmt \" chunk before the end of the file")]
    MissingFmt,
    #[error("no \"data\" chunk before the end of the file")]
    MissingData,
    #[error("\"fmt \" chunk is {found} bytes, expected at least {expected}")]
    ShortFmt { found: usize, expected: usize },
    #[error("{0}")]
    BadFormat(String),
}

fn fourcc(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Walks the RIFF chunks of `bytes` and returns the first `fmt ` and `data` chunks.
///
/// Unknown chunks (LIST, fact, cue...) are skipped, odd-sized chunks are followed by their
/// pad byte, and stray bytes after the last complete chunk are ignored once both chunks
/// have been found. The sizes in the RIFF header are not trusted.
pub fn parse(bytes: &[u8]) -> Result<Wav<'_>, WavError> {
    if bytes.len() < 12 {
        return Err(WavError::TooShort { len: bytes.len() });
    }
    let riff = bytes.get(0..4).unwrap_or(bytes);
    if riff != b"RIFF" {
        return Err(WavError::NotRiff {
            found: fourcc(riff),
        });
    }
    let form = bytes.get(8..12).unwrap_or_default();
    if form != b"WAVE" {
        return Err(WavError::NotWave {
            found: fourcc(form),
        });
    }

    let mut fmt: Option<&[u8]> = None;
    let mut data: Option<&[u8]> = None;
    let mut offset = 12usize;
    while fmt.is_none() || data.is_none() {
        let Some(header) = bytes.get(offset..offset.saturating_add(8)) else {
            break;
        };
        let id = &header[0..4];
        let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let body_start = offset + 8;
        let available = bytes.len() - body_start;
        let body = usize::try_from(size)
            .ok()
            .and_then(|len| bytes.get(body_start..body_start.checked_add(len)?));
        let Some(body) = body else {
            return Err(WavError::Truncated {
                chunk: fourcc(id),
                offset,
                declared: size,
                available,
            });
        };
        match id {
            b"fmt " if fmt.is_none() => fmt = Some(body),
            b"data" if data.is_none() => data = Some(body),
            _ => {}
        }
        // Chunks are word aligned: an odd size is followed by one pad byte.
        offset = body_start + body.len() + body.len() % 2;
    }

    let fmt = fmt.ok_or(WavError::MissingFmt)?;
    let data = data.ok_or(WavError::MissingData)?;
    Ok(Wav {
        format: parse_fmt(fmt)?,
        data,
    })
}

fn parse_fmt(fmt: &[u8]) -> Result<Format, WavError> {
    let short = |expected| WavError::ShortFmt {
        found: fmt.len(),
        expected,
    };
    let tag = u16_at(fmt, 0).ok_or(short(16))?;
    let channels = u16_at(fmt, 2).ok_or(short(16))?;
    let sample_rate = u32_at(fmt, 4).ok_or(short(16))?;
    let block_align = u16_at(fmt, 12).ok_or(short(16))?;
    let bits_per_sample = u16_at(fmt, 14).ok_or(short(16))?;

    let effective_tag = if tag == TAG_EXTENSIBLE {
        // cbSize(2) validBits(2) channelMask(4) subFormat GUID(16) after the 16 base bytes.
        let guid = fmt.get(24..40).ok_or(short(40))?;
        if guid[2..] != GUID_SUFFIX {
            return Err(WavError::BadFormat(
                "WAVE_FORMAT_EXTENSIBLE with a sub-format that is not a standard format tag".into(),
            ));
        }
        u16::from_le_bytes([guid[0], guid[1]])
    } else {
        tag
    };
    let encoding = match effective_tag {
        TAG_PCM => Encoding::Pcm,
        TAG_IEEE_FLOAT => Encoding::Float,
        TAG_MULAW => Encoding::G711(Codec::Pcmu),
        TAG_ALAW => Encoding::G711(Codec::Pcma),
        other => Encoding::Other(other),
    };
    if channels == 0 {
        return Err(WavError::BadFormat(
            "the file declares zero channels".into(),
        ));
    }
    if sample_rate == 0 {
        return Err(WavError::BadFormat(
            "the file declares a sample rate of 0 Hz".into(),
        ));
    }
    Ok(Format {
        encoding,
        tag,
        channels,
        sample_rate,
        block_align,
        bits_per_sample,
    })
}

/// Human name of a format tag, for error messages.
pub fn tag_name(tag: u16) -> &'static str {
    match tag {
        TAG_PCM => "PCM",
        0x0002 => "Microsoft ADPCM",
        TAG_IEEE_FLOAT => "IEEE float",
        TAG_ALAW => "A-law",
        TAG_MULAW => "mu-law",
        0x0011 => "IMA ADPCM",
        0x0031 => "GSM 6.10",
        0x0040 => "G.721 ADPCM",
        0x0055 => "MP3",
        0x0064 => "G.726 ADPCM",
        TAG_EXTENSIBLE => "extensible",
        _ => "unknown",
    }
}

/// Decodes the G.711 data of `wav` to linear 16-bit samples, averaging the channels into
/// one. The result has one sample per frame, at the file's sample rate.
pub fn decode_g711_mono(wav: &Wav<'_>) -> Result<Vec<i16>, WavError> {
    let f = wav.format;
    let Encoding::G711(codec) = f.encoding else {
        return Err(WavError::BadFormat(format!(
            "expected mu-law or A-law data, found {} (tag {:#06x})",
            tag_name(f.tag),
            f.tag
        )));
    };
    if f.bits_per_sample != 8 {
        return Err(WavError::BadFormat(format!(
            "{codec} data must have 8 bits per sample, found {}",
            f.bits_per_sample
        )));
    }
    if f.block_align != f.channels {
        return Err(WavError::BadFormat(format!(
            "block align is {} bytes, expected {} (one byte per channel)",
            f.block_align, f.channels
        )));
    }
    let frame = usize::from(f.channels);
    if !wav.data.len().is_multiple_of(frame) {
        return Err(WavError::BadFormat(format!(
            "data chunk holds {} bytes, not a whole number of {}-channel frames (truncated file?)",
            wav.data.len(),
            f.channels
        )));
    }
    if frame == 1 {
        let mut out = vec![0i16; wav.data.len()];
        codec.decode_into(wav.data, &mut out);
        return Ok(out);
    }
    let channels = i32::from(f.channels);
    Ok(wav
        .data
        .chunks_exact(frame)
        .map(|bytes| {
            let sum: i32 = bytes
                .iter()
                .map(|&b| i32::from(codec.decode_sample(b)))
                .sum();
            // The mean of i16 values fits in i16.
            (sum / channels) as i16
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(id: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = id.to_vec();
        v.extend((body.len() as u32).to_le_bytes());
        v.extend(body);
        if body.len() % 2 == 1 {
            v.push(0);
        }
        v
    }

    fn fmt_body(tag: u16, channels: u16, rate: u32, bits: u16) -> Vec<u8> {
        let align = channels * bits / 8;
        let mut v = Vec::new();
        v.extend(tag.to_le_bytes());
        v.extend(channels.to_le_bytes());
        v.extend(rate.to_le_bytes());
        v.extend((rate * u32::from(align)).to_le_bytes());
        v.extend(align.to_le_bytes());
        v.extend(bits.to_le_bytes());
        v
    }

    fn riff(chunks: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = chunks.concat();
        let mut v = b"RIFF".to_vec();
        v.extend((body.len() as u32 + 4).to_le_bytes());
        v.extend(b"WAVE");
        v.extend(body);
        v
    }

    #[test]
    fn parses_a_mulaw_file_with_extra_chunks() {
        let file = riff(&[
            chunk(b"LIST", b"odd"),
            chunk(b"fmt ", &fmt_body(TAG_MULAW, 1, 8000, 8)),
            chunk(b"fact", &4u32.to_le_bytes()),
            chunk(b"data", &[0xFF, 0x80, 0x00, 0x7F]),
        ]);
        let wav = parse(&file).unwrap();
        assert_eq!(wav.format.encoding, Encoding::G711(Codec::Pcmu));
        assert_eq!(wav.data, &[0xFF, 0x80, 0x00, 0x7F]);
        assert_eq!(decode_g711_mono(&wav).unwrap(), vec![0, 32_124, -32_124, 0]);
    }

    #[test]
    fn extensible_alaw_stereo() {
        let mut body = fmt_body(TAG_EXTENSIBLE, 2, 8000, 8);
        body.extend(22u16.to_le_bytes());
        body.extend(8u16.to_le_bytes());
        body.extend(3u32.to_le_bytes());
        body.extend(TAG_ALAW.to_le_bytes());
        body.extend(GUID_SUFFIX);
        let file = riff(&[
            chunk(b"fmt ", &body),
            chunk(b"data", &[0xD5, 0x55, 0xAA, 0xAA]),
        ]);
        let wav = parse(&file).unwrap();
        assert_eq!(wav.format.encoding, Encoding::G711(Codec::Pcma));
        assert_eq!(wav.format.tag, TAG_EXTENSIBLE);
        assert_eq!(decode_g711_mono(&wav).unwrap(), vec![0, 32_256]);
    }

    #[test]
    fn structural_errors() {
        assert_eq!(parse(b"").unwrap_err(), WavError::TooShort { len: 0 });
        assert!(matches!(
            parse(b"RIFX\0\0\0\0WAVE"),
            Err(WavError::NotRiff { .. })
        ));
        assert!(matches!(
            parse(b"RIFF\0\0\0\0AVI "),
            Err(WavError::NotWave { .. })
        ));
        assert_eq!(parse(&riff(&[])).unwrap_err(), WavError::MissingFmt);
        let only_fmt = riff(&[chunk(b"fmt ", &fmt_body(TAG_MULAW, 1, 8000, 8))]);
        assert_eq!(parse(&only_fmt).unwrap_err(), WavError::MissingData);

        // A data chunk that claims 4 GiB: an error, and no allocation of that size.
        let mut huge = riff(&[chunk(b"fmt ", &fmt_body(TAG_MULAW, 1, 8000, 8))]);
        huge.extend(b"data");
        huge.extend(u32::MAX.to_le_bytes());
        huge.extend([0xFF; 10]);
        let err = parse(&huge).unwrap_err();
        assert!(
            matches!(
                err,
                WavError::Truncated {
                    declared: u32::MAX,
                    available: 10,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("\"data\""));

        let short_fmt = riff(&[chunk(b"fmt ", &[7, 0, 1, 0]), chunk(b"data", &[])]);
        assert!(matches!(
            parse(&short_fmt),
            Err(WavError::ShortFmt { found: 4, .. })
        ));
        let zero_channels = riff(&[
            chunk(b"fmt ", &fmt_body(TAG_MULAW, 0, 8000, 8)),
            chunk(b"data", &[]),
        ]);
        assert!(matches!(parse(&zero_channels), Err(WavError::BadFormat(_))));
    }

    #[test]
    fn g711_data_checks() {
        let file = riff(&[
            chunk(b"fmt ", &fmt_body(TAG_MULAW, 2, 8000, 8)),
            chunk(b"data", &[1, 2, 3]),
        ]);
        let wav = parse(&file).unwrap();
        assert!(
            decode_g711_mono(&wav)
                .unwrap_err()
                .to_string()
                .contains("not a whole number")
        );
        let file = riff(&[
            chunk(b"fmt ", &fmt_body(TAG_MULAW, 1, 8000, 16)),
            chunk(b"data", &[1, 2]),
        ]);
        assert!(decode_g711_mono(&parse(&file).unwrap()).is_err());
        let file = riff(&[
            chunk(b"fmt ", &fmt_body(TAG_PCM, 1, 8000, 16)),
            chunk(b"data", &[1, 2]),
        ]);
        assert!(decode_g711_mono(&parse(&file).unwrap()).is_err());
    }

    #[test]
    fn never_panics_on_mutated_headers() {
        let good = riff(&[
            chunk(b"fmt ", &fmt_body(TAG_MULAW, 1, 8000, 8)),
            chunk(b"data", &[0x12; 40]),
        ]);
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..20_000 {
            let mut file = good.clone();
            for _ in 0..3 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = (state % 48) as usize;
                file[at] = (state >> 32) as u8;
            }
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            file.truncate((state % (good.len() as u64 + 1)) as usize);
            if let Ok(wav) = parse(&file) {
                let _ = decode_g711_mono(&wav);
            }
        }
    }
}
