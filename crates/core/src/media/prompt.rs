//! Prompts: audio loaded once from WAV files (or generated), converted to 8 kHz mono and
//! encoded once per codec into 20 ms frames that every call playing the prompt shares.
//!
//! Owns the decoding pipeline (WAV of any common PCM or G.711 format -> mono -> 8 kHz via
//! `rubato` -> PCMU and PCMA frames) and the library of prompts found under a directory,
//! with per-language lookup. It must not play anything, keep per-call state or decode on
//! the media path: a call holds a cheap `Prompt` handle and reads ready-made frames.
//!
//! Loading reads files and resamples, so it blocks: the async shell should run it on a
//! blocking thread, once at start-up or on reload.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

use super::g711::{Codec, FRAME_SAMPLES};
use super::tone::{self, SAMPLE_RATE};
use super::wav::{self, Encoding, WavError};

/// Largest WAV file we read. Larger files are refused before reading them into memory
/// (256 MiB is about 25 minutes of 48 kHz 16-bit stereo: far beyond any prompt).
pub const MAX_PROMPT_FILE_BYTES: u64 = 256 * 1024 * 1024;
/// Largest transcript file we read.
pub const MAX_TRANSCRIPT_BYTES: u64 = 64 * 1024;
/// Accepted input sample rates.
pub const MIN_SAMPLE_RATE: u32 = 4_000;
pub const MAX_SAMPLE_RATE: u32 = 192_000;
/// How deep sub-directories of a language directory are searched.
const MAX_DEPTH: usize = 8;

/// A prompt that could not be loaded, with the file it came from.
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct PromptError {
    pub path: PathBuf,
    pub kind: PromptErrorKind,
}

impl PromptError {
    fn new(path: &Path, kind: PromptErrorKind) -> PromptError {
        PromptError {
            path: path.to_path_buf(),
            kind,
        }
    }
}

/// What went wrong with one prompt file or directory.
#[derive(Debug, thiserror::Error)]
pub enum PromptErrorKind {
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    /// A symlink (or a path) that leads out of the prompts folder: never read.
    #[error("refused: {0}")]
    Outside(crate::paths::PathError),
    #[error("file is larger than the {max}-byte limit for a prompt")]
    TooLarge { max: u64 },
    #[error("{0}")]
    Wav(#[from] WavError),
    #[error("cannot decode the WAV data: {0}")]
    Decode(#[from] hound::Error),
    #[error(
        "unsupported sample encoding {name} (format tag {tag:#06x}); expected PCM, float, mu-law or A-law"
    )]
    UnsupportedEncoding { tag: u16, name: &'static str },
    #[error("unsupported {encoding} sample size of {bits} bits; expected {expected}")]
    UnsupportedBits {
        encoding: &'static str,
        bits: u16,
        expected: &'static str,
    },
    #[error("unsupported sample rate {0} Hz; expected {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz")]
    UnsupportedSampleRate(u32),
    #[error("contains no audio")]
    Empty,
    #[error("resampling to 8000 Hz failed: {0}")]
    Resample(String),
    #[error("transcript is not valid UTF-8 text")]
    TranscriptNotUtf8,
    #[error("transcript is larger than the {max}-byte limit")]
    TranscriptTooLarge { max: u64 },
    #[error("file name is not valid UTF-8")]
    NonUtf8Name,
    #[error("prompt {name:?} is also defined by {}", other.display())]
    Duplicate { name: String, other: PathBuf },
    #[error("directories nested more than {MAX_DEPTH} levels deep are not searched")]
    TooDeep,
    #[error("no directory for the default language {language:?}")]
    MissingDefaultLanguage { language: String },
}

struct PromptData {
    name: String,
    samples: Box<[i16]>,
    pcmu: Box<[u8]>,
    pcma: Box<[u8]>,
    transcript: Option<String>,
}

/// A prompt ready to play: 8 kHz mono samples and their PCMU and PCMA encodings, padded to
/// whole 20 ms frames with the codec's silence.
///
/// Cloning is one reference-count increment; every clone reads the same frames.
#[derive(Clone)]
pub struct Prompt {
    data: Arc<PromptData>,
}

impl std::fmt::Debug for Prompt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prompt")
            .field("name", &self.data.name)
            .field("duration", &self.duration())
            .field("frames", &self.frame_count())
            .field("transcript", &self.data.transcript)
            .finish()
    }
}

impl Prompt {
    /// A prompt from 8 kHz mono samples.
    pub fn from_samples(name: impl Into<String>, samples: Vec<i16>) -> Prompt {
        Prompt::build(name.into(), samples, None)
    }

    fn build(name: String, samples: Vec<i16>, transcript: Option<String>) -> Prompt {
        let frames = samples.len().div_ceil(FRAME_SAMPLES);
        let encode = |codec: Codec| {
            let mut bytes = vec![codec.silence_byte(); frames * FRAME_SAMPLES];
            codec.encode_into(&samples, &mut bytes);
            bytes.into_boxed_slice()
        };
        Prompt {
            data: Arc::new(PromptData {
                pcmu: encode(Codec::Pcmu),
                pcma: encode(Codec::Pcma),
                samples: samples.into_boxed_slice(),
                name,
                transcript,
            }),
        }
    }

    /// Silence of the given length (rounded to the nearest sample).
    pub fn silence(duration: Duration) -> Prompt {
        Prompt::from_samples("silence", vec![0; tone::samples_in(duration)])
    }

    /// A sine tone, such as the 1 kHz beep before a recording. The first and last 5 ms are
    /// faded so that the tone does not click.
    pub fn tone(freq_hz: f32, duration: Duration, level_dbm0: f32) -> Prompt {
        let mut samples = tone::sine(freq_hz, duration, level_dbm0);
        tone::fade_edges(&mut samples, tone::samples_in(Duration::from_millis(5)));
        Prompt::from_samples(format!("tone {freq_hz} Hz"), samples)
    }

    /// A ringback cadence (425 Hz, one second on, four off) long enough for `ring_for`
    /// (at most ten minutes of it).
    pub fn ringback(ring_for: Duration) -> Vec<Prompt> {
        let cycles = (ring_for.as_secs() / 5 + 1).min(120);
        let mut out = Vec::with_capacity(cycles as usize * 2);
        for _ in 0..cycles {
            out.push(Prompt::tone(425.0, Duration::from_secs(1), -13.0));
            out.push(Prompt::silence(Duration::from_secs(4)));
        }
        out
    }

    /// Loads a WAV file and the transcript beside it (`<same name>.txt`), if there is one.
    /// A transcript that cannot be read is an error too.
    pub fn load(name: impl Into<String>, path: &Path) -> Result<Prompt, PromptError> {
        let samples = load_samples(path)?;
        let transcript = load_transcript(path)?;
        Ok(Prompt::build(name.into(), samples, transcript))
    }

    pub fn name(&self) -> &str {
        &self.data.name
    }

    /// The text spoken in the prompt, from its `.txt` file.
    pub fn transcript(&self) -> Option<&str> {
        self.data.transcript.as_deref()
    }

    /// The audio as 8 kHz mono samples (not padded).
    pub fn samples(&self) -> &[i16] {
        &self.data.samples
    }

    /// Length of the audio (not padded).
    pub fn duration(&self) -> Duration {
        let n = u64::try_from(self.data.samples.len()).unwrap_or(u64::MAX);
        Duration::from_micros(n.saturating_mul(1_000_000 / u64::from(SAMPLE_RATE)))
    }

    /// Number of 20 ms frames (the last one padded with silence).
    pub fn frame_count(&self) -> usize {
        self.data.pcmu.len() / FRAME_SAMPLES
    }

    /// The encoded audio for `codec`, a whole number of frames.
    pub fn payload(&self, codec: Codec) -> &[u8] {
        match codec {
            Codec::Pcmu => &self.data.pcmu,
            Codec::Pcma => &self.data.pcma,
        }
    }

    /// Frame `index` (20 ms, 160 bytes) for `codec`, or `None` past the end.
    pub fn frame(&self, codec: Codec, index: usize) -> Option<&[u8; FRAME_SAMPLES]> {
        self.payload(codec)
            .as_chunks::<FRAME_SAMPLES>()
            .0
            .get(index)
    }

    /// All frames for `codec`, in order.
    pub fn frames(&self, codec: Codec) -> std::slice::Iter<'_, [u8; FRAME_SAMPLES]> {
        self.payload(codec).as_chunks::<FRAME_SAMPLES>().0.iter()
    }

    /// True when both handles read the same audio data.
    pub fn shares_data_with(&self, other: &Prompt) -> bool {
        Arc::ptr_eq(&self.data, &other.data)
    }
}

fn load_samples(wav_path: &Path) -> Result<Vec<i16>, PromptError> {
    let bytes = read_limited(wav_path, MAX_PROMPT_FILE_BYTES)
        .map_err(|kind| PromptError::new(wav_path, kind))?;
    decode_wav(&bytes).map_err(|kind| PromptError::new(wav_path, kind))
}

fn load_transcript(wav_path: &Path) -> Result<Option<String>, PromptError> {
    let path = wav_path.with_extension("txt");
    read_transcript(&path).map_err(|kind| PromptError::new(&path, kind))
}

/// Reads a whole file, refusing files larger than `max` without reading them.
fn read_limited(path: &Path, max: u64) -> Result<Vec<u8>, PromptErrorKind> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    // Reading at most max + 1 bytes tells "too large" apart without trusting metadata.
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > max {
        return Err(PromptErrorKind::TooLarge { max });
    }
    Ok(bytes)
}

fn read_transcript(path: &Path) -> Result<Option<String>, PromptErrorKind> {
    let bytes = match read_limited(path, MAX_TRANSCRIPT_BYTES) {
        Ok(bytes) => bytes,
        Err(PromptErrorKind::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(PromptErrorKind::TooLarge { max }) => {
            return Err(PromptErrorKind::TranscriptTooLarge { max });
        }
        Err(e) => return Err(e),
    };
    let text = String::from_utf8(bytes).map_err(|_| PromptErrorKind::TranscriptNotUtf8)?;
    Ok(Some(text.trim().to_string()))
}

/// Decodes a WAV file held in memory to 8 kHz mono 16-bit samples.
///
/// PCM (8, 16, 24, 32-bit integer) and 32-bit float files are read with `hound`; mu-law
/// and A-law files (plain or WAVE_FORMAT_EXTENSIBLE) with our own reader. Channels are
/// averaged; other rates are resampled once with `rubato`'s FFT resampler, whose
/// anti-aliasing filter removes what cannot be represented at 8 kHz.
pub fn decode_wav(bytes: &[u8]) -> Result<Vec<i16>, PromptErrorKind> {
    let parsed = wav::parse(bytes)?;
    let format = parsed.format;
    let rate = format.sample_rate;
    if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&rate) {
        return Err(PromptErrorKind::UnsupportedSampleRate(rate));
    }
    let mono: Vec<f32> = match format.encoding {
        Encoding::G711(_) => {
            let samples = wav::decode_g711_mono(&parsed)?;
            if rate == SAMPLE_RATE {
                // Already what we want: skip the float round trip.
                return non_empty(samples);
            }
            samples.iter().map(|&s| f32::from(s) / 32768.0).collect()
        }
        Encoding::Pcm | Encoding::Float => read_pcm(bytes, &format)?,
        Encoding::Other(tag) => {
            return Err(PromptErrorKind::UnsupportedEncoding {
                tag,
                name: wav::tag_name(tag),
            });
        }
    };
    if mono.is_empty() {
        return Err(PromptErrorKind::Empty);
    }
    let at_8k = if rate == SAMPLE_RATE {
        mono
    } else {
        resample_to_8k(&mono, rate)?
    };
    non_empty(at_8k.iter().map(|&x| to_i16(x)).collect())
}

fn non_empty(samples: Vec<i16>) -> Result<Vec<i16>, PromptErrorKind> {
    if samples.is_empty() {
        Err(PromptErrorKind::Empty)
    } else {
        Ok(samples)
    }
}

fn to_i16(x: f32) -> i16 {
    // `as` saturates, and maps NaN to 0.
    (x * 32768.0).round() as i16
}

/// Reads PCM or float samples with hound and averages the channels, as floats in -1..1.
fn read_pcm(bytes: &[u8], format: &wav::Format) -> Result<Vec<f32>, PromptErrorKind> {
    let bits = format.bits_per_sample;
    match format.encoding {
        Encoding::Float if bits != 32 => {
            return Err(PromptErrorKind::UnsupportedBits {
                encoding: "float",
                bits,
                expected: "32",
            });
        }
        Encoding::Pcm if !matches!(bits, 8 | 16 | 24 | 32) => {
            return Err(PromptErrorKind::UnsupportedBits {
                encoding: "PCM",
                bits,
                expected: "8, 16, 24 or 32",
            });
        }
        _ => {}
    }
    let mut reader = hound::WavReader::new(std::io::Cursor::new(bytes))?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    // The declared length is bounded by the bytes really present, so a lying header
    // cannot make us reserve more than the file's size.
    let declared = usize::try_from(reader.len()).unwrap_or(usize::MAX);
    let capacity = declared.min(bytes.len()) / channels;
    let mut mono = Vec::with_capacity(capacity);
    let mut push_frames = |samples: &mut dyn Iterator<Item = Result<f32, hound::Error>>| {
        let mut sum = 0f32;
        let mut n = 0usize;
        for s in samples {
            sum += s?;
            n += 1;
            if n == channels {
                mono.push(sum / channels as f32);
                sum = 0.0;
                n = 0;
            }
        }
        Ok::<(), hound::Error>(())
    };
    match spec.sample_format {
        hound::SampleFormat::Int => {
            let bits = u32::from(spec.bits_per_sample).clamp(1, 32);
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            push_frames(&mut reader.samples::<i32>().map(|r| r.map(|s| s as f32 * scale)))?;
        }
        hound::SampleFormat::Float => {
            let clean = |x: f32| {
                if x.is_finite() {
                    x.clamp(-1.0, 1.0)
                } else {
                    0.0
                }
            };
            push_frames(&mut reader.samples::<f32>().map(|r| r.map(clean)))?;
        }
    }
    Ok(mono)
}

/// Resamples mono audio to 8 kHz.
fn resample_to_8k(input: &[f32], rate: u32) -> Result<Vec<f32>, PromptErrorKind> {
    let err = |e: &dyn std::fmt::Display| PromptErrorKind::Resample(e.to_string());
    let from = usize::try_from(rate).map_err(|e| err(&e))?;
    let to = usize::try_from(SAMPLE_RATE).map_err(|e| err(&e))?;
    let mut resampler = Fft::<f32>::new(from, to, 1024, 1, FixedSync::Both).map_err(|e| err(&e))?;
    let adapter = InterleavedSlice::new(input, 1, input.len()).map_err(|e| err(&e))?;
    let out = resampler
        .process_all(&adapter, input.len(), None)
        .map_err(|e| err(&e))?;
    Ok(out.take_data())
}

#[derive(Debug, Default)]
struct Library {
    default_language: String,
    languages: BTreeMap<String, BTreeMap<String, Prompt>>,
}

/// Every prompt of a deployment, by language and name. Cloning is cheap (one `Arc`).
///
/// On disk: `ROOT/<language>/<name>.wav`, optionally with `<name>.txt` holding the
/// transcript. Sub-directories give names with slashes (`ROOT/en/menu/main.wav` is
/// `menu/main`). Hidden files and other extensions are ignored, as are files directly
/// under `ROOT`.
#[derive(Debug, Clone, Default)]
pub struct PromptLibrary {
    inner: Arc<Library>,
}

impl PromptLibrary {
    /// A library from prompts already built, as `(language, prompt)` pairs.
    pub fn from_prompts(
        default_language: impl Into<String>,
        prompts: impl IntoIterator<Item = (String, Prompt)>,
    ) -> PromptLibrary {
        let mut languages: BTreeMap<String, BTreeMap<String, Prompt>> = BTreeMap::new();
        for (lang, prompt) in prompts {
            languages
                .entry(lang)
                .or_default()
                .insert(prompt.name().to_string(), prompt);
        }
        PromptLibrary {
            inner: Arc::new(Library {
                default_language: default_language.into(),
                languages,
            }),
        }
    }

    /// Loads every prompt under `root`. Files that fail are left out and every failure is
    /// returned, so that a check command can list them all at once.
    pub fn load_dir(root: &Path, default_language: &str) -> (PromptLibrary, Vec<PromptError>) {
        let mut errors = Vec::new();
        let mut languages = BTreeMap::new();
        match sorted_entries(root) {
            Err(e) => errors.push(PromptError::new(root, PromptErrorKind::Io(e))),
            Ok(entries) => {
                for path in entries {
                    if let Err(e) = crate::paths::confined(root, &path) {
                        errors.push(PromptError::new(&path, PromptErrorKind::Outside(e)));
                        continue;
                    }
                    let is_dir = match std::fs::metadata(&path) {
                        Ok(m) => m.is_dir(),
                        Err(e) => {
                            errors.push(PromptError::new(&path, e.into()));
                            continue;
                        }
                    };
                    if !is_dir || is_hidden(&path) {
                        continue;
                    }
                    let Some(lang) = path.file_name().and_then(|n| n.to_str()) else {
                        errors.push(PromptError::new(&path, PromptErrorKind::NonUtf8Name));
                        continue;
                    };
                    let mut walk = Walk {
                        root: root.to_path_buf(),
                        ..Walk::default()
                    };
                    walk.dir(&path, "", 0, &mut errors);
                    languages.insert(lang.to_string(), walk.prompts);
                }
                if !languages.contains_key(default_language) {
                    errors.push(PromptError::new(
                        &root.join(default_language),
                        PromptErrorKind::MissingDefaultLanguage {
                            language: default_language.to_string(),
                        },
                    ));
                }
            }
        }
        let library = PromptLibrary {
            inner: Arc::new(Library {
                default_language: default_language.to_string(),
                languages,
            }),
        };
        (library, errors)
    }

    /// The prompt `name` in `lang`, falling back to the language's primary tag (`en` for
    /// `en-GB`) and then to the default language.
    pub fn get(&self, lang: &str, name: &str) -> Option<&Prompt> {
        self.get_exact(lang, name)
            .or_else(|| {
                let primary = lang.split(['-', '_']).next().unwrap_or(lang);
                (primary != lang)
                    .then(|| self.get_exact(primary, name))
                    .flatten()
            })
            .or_else(|| self.get_exact(&self.inner.default_language, name))
    }

    /// The prompt `name` in exactly `lang`, with no fallback.
    pub fn get_exact(&self, lang: &str, name: &str) -> Option<&Prompt> {
        self.inner.languages.get(lang)?.get(name)
    }

    pub fn default_language(&self) -> &str {
        &self.inner.default_language
    }

    /// Languages with a directory, sorted.
    pub fn languages(&self) -> impl Iterator<Item = &str> {
        self.inner.languages.keys().map(String::as_str)
    }

    /// Prompt names of one language, sorted.
    pub fn names<'a>(&'a self, lang: &str) -> impl Iterator<Item = &'a str> {
        self.inner
            .languages
            .get(lang)
            .into_iter()
            .flat_map(|m| m.keys().map(String::as_str))
    }

    /// Number of prompts over all languages.
    pub fn len(&self) -> usize {
        self.inner.languages.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The prompts of one language directory being collected.
#[derive(Default)]
struct Walk {
    /// The prompts folder: every file read must really be inside it.
    root: PathBuf,
    prompts: BTreeMap<String, Prompt>,
    sources: HashMap<String, PathBuf>,
}

impl Walk {
    fn dir(&mut self, dir: &Path, prefix: &str, depth: usize, errors: &mut Vec<PromptError>) {
        if depth > MAX_DEPTH {
            errors.push(PromptError::new(dir, PromptErrorKind::TooDeep));
            return;
        }
        let entries = match sorted_entries(dir) {
            Ok(entries) => entries,
            Err(e) => {
                errors.push(PromptError::new(dir, e.into()));
                return;
            }
        };
        for path in entries {
            if is_hidden(&path) {
                continue;
            }
            let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
                errors.push(PromptError::new(&path, PromptErrorKind::NonUtf8Name));
                continue;
            };
            // A symlink inside the folder that points out of it is not followed.
            if let Err(e) = crate::paths::confined(&self.root, &path) {
                errors.push(PromptError::new(&path, PromptErrorKind::Outside(e)));
                continue;
            }
            let is_dir = match std::fs::metadata(&path) {
                Ok(m) => m.is_dir(),
                Err(e) => {
                    errors.push(PromptError::new(&path, e.into()));
                    continue;
                }
            };
            if is_dir {
                let sub_prefix = format!("{prefix}{file_name}/");
                self.dir(&path, &sub_prefix, depth + 1, errors);
                continue;
            }
            let is_wav = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("wav"));
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if !is_wav {
                continue;
            }
            let name = format!("{prefix}{stem}");
            if let Some(other) = self.sources.get(&name) {
                errors.push(PromptError::new(
                    &path,
                    PromptErrorKind::Duplicate {
                        name,
                        other: other.clone(),
                    },
                ));
                continue;
            }
            let samples = match load_samples(&path) {
                Ok(samples) => samples,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            // A bad transcript is reported, but the audio is still worth playing.
            let transcript = load_transcript(&path).unwrap_or_else(|e| {
                errors.push(e);
                None
            });
            self.prompts.insert(
                name.clone(),
                Prompt::build(name.clone(), samples, transcript),
            );
            self.sources.insert(name, path);
        }
    }
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

fn sorted_entries(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut paths = std::fs::read_dir(dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()?;
    paths.sort();
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_padded_with_the_codec_silence() {
        let p = Prompt::from_samples("x", vec![1000; 170]);
        assert_eq!(p.frame_count(), 2);
        assert_eq!(p.duration(), Duration::from_micros(21_250));
        let last_u = p.frame(Codec::Pcmu, 1).unwrap();
        let last_a = p.frame(Codec::Pcma, 1).unwrap();
        assert_eq!(last_u[..10], [Codec::Pcmu.encode_sample(1000); 10]);
        assert!(last_u[10..].iter().all(|&b| b == 0xFF));
        assert!(last_a[10..].iter().all(|&b| b == 0xD5));
        assert!(p.frame(Codec::Pcmu, 2).is_none());
        assert_eq!(p.frames(Codec::Pcma).len(), 2);
        let empty = Prompt::from_samples("e", Vec::new());
        assert_eq!(empty.frame_count(), 0);
        assert!(empty.frame(Codec::Pcmu, 0).is_none());
    }

    #[test]
    fn generated_prompts() {
        let s = Prompt::silence(Duration::from_millis(50));
        assert_eq!(s.samples().len(), 400);
        assert_eq!(s.frame_count(), 3);
        assert!(s.frames(Codec::Pcmu).flatten().all(|&b| b == 0xFF));
        assert!(s.frames(Codec::Pcma).flatten().all(|&b| b == 0xD5));
        let beep = Prompt::tone(1000.0, Duration::from_millis(300), -10.0);
        assert_eq!(beep.frame_count(), 15);
        assert_eq!(beep.duration(), Duration::from_millis(300));
        let clone = beep.clone();
        assert!(clone.shares_data_with(&beep));
        assert!(!clone.shares_data_with(&s));
    }
}
