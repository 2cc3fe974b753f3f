//! Prompt loading from WAV files written here (with hound for PCM, by hand for G.711),
//! resampling quality, error reporting and the per-language library.

use std::f64::consts::TAU;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hotline::media::g711::{Codec, alaw_encode, ulaw_encode};
use hotline::media::prompt::{Prompt, PromptErrorKind, PromptLibrary, decode_wav};
use hotline::media::tone::{dbm0_to_amplitude, power_to_dbm0};
use hotline::media::wav::WavError;

/// A fresh, empty directory for one test under cargo's per-target temp dir.
fn test_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("media_prompt")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test dir");
    dir
}

/// `seconds` of a sine at `freq` Hz and `level_dbm0`, sampled at `rate`, as floats in -1..1.
fn sine(rate: u32, freq: f64, seconds: f64, level_dbm0: f32) -> Vec<f64> {
    let amp = f64::from(dbm0_to_amplitude(level_dbm0)) / 32768.0;
    let n = (f64::from(rate) * seconds).round() as usize;
    (0..n)
        .map(|i| amp * (TAU * freq * i as f64 / f64::from(rate)).sin())
        .collect()
}

#[derive(Clone, Copy, Debug)]
enum Fmt {
    U8,
    I16,
    I24,
    I32,
    F32,
}

/// Writes `channels` copies of `signal` (scaled by `gains` per channel) with hound.
fn write_pcm(path: &Path, rate: u32, fmt: Fmt, signal: &[f64], gains: &[f64]) {
    let (bits, sample_format) = match fmt {
        Fmt::U8 => (8, hound::SampleFormat::Int),
        Fmt::I16 => (16, hound::SampleFormat::Int),
        Fmt::I24 => (24, hound::SampleFormat::Int),
        Fmt::I32 => (32, hound::SampleFormat::Int),
        Fmt::F32 => (32, hound::SampleFormat::Float),
    };
    let spec = hound::WavSpec {
        channels: gains.len() as u16,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create wav");
    for &x in signal {
        for &g in gains {
            let v = x * g;
            match fmt {
                Fmt::U8 => w.write_sample((v * 127.0).round() as i8).expect("write"),
                Fmt::I16 => w.write_sample((v * 32767.0).round() as i16).expect("write"),
                Fmt::I24 => w
                    .write_sample((v * 8_388_607.0).round() as i32)
                    .expect("write"),
                Fmt::I32 => w
                    .write_sample((v * 2_147_483_647.0).round() as i32)
                    .expect("write"),
                Fmt::F32 => w.write_sample(v as f32).expect("write"),
            }
        }
    }
    w.finalize().expect("finalize");
}

/// A G.711 WAV file built byte by byte (hound cannot write these).
fn g711_wav(tag: u16, channels: u16, rate: u32, data: &[u8], extensible: bool) -> Vec<u8> {
    let mut fmt = Vec::new();
    fmt.extend(if extensible { 0xFFFEu16 } else { tag }.to_le_bytes());
    fmt.extend(channels.to_le_bytes());
    fmt.extend(rate.to_le_bytes());
    fmt.extend((rate * u32::from(channels)).to_le_bytes());
    fmt.extend(channels.to_le_bytes()); // block align: one byte per channel
    fmt.extend(8u16.to_le_bytes());
    if extensible {
        fmt.extend(22u16.to_le_bytes());
        fmt.extend(8u16.to_le_bytes());
        fmt.extend(4u32.to_le_bytes());
        fmt.extend(tag.to_le_bytes());
        fmt.extend([0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71]);
    } else {
        fmt.extend(0u16.to_le_bytes());
    }
    let mut body = b"WAVE".to_vec();
    for (id, chunk) in [
        (b"fmt ", &fmt[..]),
        (
            b"fact",
            &(data.len() as u32 / u32::from(channels)).to_le_bytes()[..],
        ),
        (b"data", data),
    ] {
        body.extend(id);
        body.extend((chunk.len() as u32).to_le_bytes());
        body.extend(chunk);
        if chunk.len() % 2 == 1 {
            body.push(0);
        }
    }
    let mut file = b"RIFF".to_vec();
    file.extend((body.len() as u32).to_le_bytes());
    file.extend(body);
    file
}

/// Mean power of the component of `x` at `freq` (8 kHz), as a sine's mean power.
fn power_at(x: &[i16], freq: f64) -> f64 {
    let w = TAU * freq / 8000.0;
    let (mut re, mut im) = (0.0, 0.0);
    for (n, &s) in x.iter().enumerate() {
        re += f64::from(s) * (w * n as f64).cos();
        im -= f64::from(s) * (w * n as f64).sin();
    }
    2.0 * (re * re + im * im) / (x.len() as f64).powi(2)
}

fn mean_power(x: &[i16]) -> f64 {
    x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64
}

/// The middle of a signal, away from resampler edge effects.
fn middle(x: &[i16]) -> &[i16] {
    &x[x.len() / 5..x.len() * 4 / 5]
}

#[test]
fn every_pcm_format_rate_and_layout_becomes_8k_mono() {
    let dir = test_dir("formats");
    for rate in [8000, 11_025, 16_000, 22_050, 44_100, 48_000] {
        for fmt in [Fmt::U8, Fmt::I16, Fmt::I24, Fmt::I32, Fmt::F32] {
            for gains in [&[1.0][..], &[1.0, 1.0], &[1.0, 0.0]] {
                let path = dir.join(format!("{rate}-{fmt:?}-{}.wav", gains.len()));
                write_pcm(&path, rate, fmt, &sine(rate, 1000.0, 0.5, -10.0), gains);
                let p = Prompt::load("t", &path).unwrap_or_else(|e| panic!("{e}"));
                let what = format!("{rate} Hz {fmt:?} gains {gains:?}");
                assert!(
                    (p.samples().len() as i64 - 4000).abs() <= 1,
                    "{what}: {} samples",
                    p.samples().len()
                );
                assert_eq!(p.frame_count(), p.samples().len().div_ceil(160), "{what}");
                let mid = middle(p.samples());
                // Downmixing averages: a tone in one channel of two is 6 dB down.
                let expected = if gains == [1.0, 0.0] { -16.02 } else { -10.0 };
                let level = power_to_dbm0(mean_power(mid) as f32);
                assert!((level - expected).abs() < 0.3, "{what}: level {level}");
                // Nearly all of it at 1 kHz.
                let share = power_at(mid, 1000.0) / mean_power(mid);
                let min_share = if matches!(fmt, Fmt::U8) { 0.95 } else { 0.995 };
                assert!(share > min_share, "{what}: share {share}");
            }
        }
    }
}

#[test]
fn eight_khz_16_bit_mono_is_read_exactly() {
    let dir = test_dir("exact");
    let path = dir.join("a.wav");
    let signal: Vec<f64> = (0..1000)
        .map(|i| f64::from(i * 37 % 2001 - 1000) / 1000.0)
        .collect();
    write_pcm(&path, 8000, Fmt::I16, &signal, &[1.0]);
    let p = Prompt::load("a", &path).unwrap_or_else(|e| panic!("{e}"));
    let expected: Vec<i16> = signal
        .iter()
        .map(|v| (v * 32767.0).round() as i16)
        .collect();
    assert_eq!(p.samples(), &expected[..]);
}

#[test]
fn resampling_keeps_the_voice_band_and_removes_what_would_alias() {
    let dir = test_dir("alias");
    for rate in [16_000, 44_100, 48_000] {
        // 6 kHz would fold down to 2 kHz without an anti-aliasing filter.
        for (freq, should_pass) in [
            (300.0, true),
            (1000.0, true),
            (3000.0, true),
            (6000.0, false),
            (7000.0, false),
        ] {
            if freq >= f64::from(rate) / 2.0 {
                continue;
            }
            let path = dir.join(format!("{rate}-{freq}.wav"));
            write_pcm(&path, rate, Fmt::F32, &sine(rate, freq, 1.0, -10.0), &[1.0]);
            let p = Prompt::load("t", &path).unwrap_or_else(|e| panic!("{e}"));
            let level = power_to_dbm0(mean_power(middle(p.samples())) as f32);
            if should_pass {
                assert!(
                    (level + 10.0).abs() < 0.5,
                    "{rate} Hz, {freq} Hz tone: level {level}"
                );
            } else {
                assert!(
                    level < -60.0,
                    "{rate} Hz, {freq} Hz tone leaks at {level} dBm0"
                );
            }
        }
    }
}

#[test]
fn mulaw_and_alaw_files_read_back() {
    let dir = test_dir("g711");
    let signal: Vec<i16> = sine(8000, 440.0, 0.3, -6.0)
        .iter()
        .map(|v| (v * 32767.0) as i16)
        .collect();
    let ulaw: Vec<u8> = signal.iter().map(|&s| ulaw_encode(s)).collect();
    let alaw: Vec<u8> = signal.iter().map(|&s| alaw_encode(s)).collect();

    for extensible in [false, true] {
        let pu = dir.join(format!("u-{extensible}.wav"));
        std::fs::write(&pu, g711_wav(7, 1, 8000, &ulaw, extensible)).expect("write");
        let p = Prompt::load("u", &pu).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.samples().len(), signal.len());
        // The mu-law bytes come back as they were (0x7F, "minus zero", becomes 0xFF).
        let normalised: Vec<u8> = ulaw
            .iter()
            .map(|&b| if b == 0x7F { 0xFF } else { b })
            .collect();
        assert_eq!(&p.payload(Codec::Pcmu)[..ulaw.len()], &normalised[..]);
        assert!(
            p.payload(Codec::Pcmu)[ulaw.len()..]
                .iter()
                .all(|&b| b == 0xFF)
        );

        let pa = dir.join(format!("a-{extensible}.wav"));
        std::fs::write(&pa, g711_wav(6, 1, 8000, &alaw, extensible)).expect("write");
        let p = Prompt::load("a", &pa).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&p.payload(Codec::Pcma)[..alaw.len()], &alaw[..]);
        assert!(
            p.payload(Codec::Pcma)[alaw.len()..]
                .iter()
                .all(|&b| b == 0xD5)
        );
        // Transcoded to the other law, the audio is still the tone.
        let share = power_at(p.samples(), 440.0) / mean_power(p.samples());
        assert!(share > 0.99, "share {share}");
    }

    // Stereo mu-law (same audio in both channels) and 16 kHz mu-law.
    let stereo: Vec<u8> = ulaw.iter().flat_map(|&b| [b, b]).collect();
    let ps = dir.join("stereo.wav");
    std::fs::write(&ps, g711_wav(7, 2, 8000, &stereo, false)).expect("write");
    let p = Prompt::load("s", &ps).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.samples().len(), signal.len());

    let wide: Vec<u8> = sine(16_000, 440.0, 0.5, -10.0)
        .iter()
        .map(|v| ulaw_encode((v * 32767.0) as i16))
        .collect();
    let pw = dir.join("16k.wav");
    std::fs::write(&pw, g711_wav(7, 1, 16_000, &wide, false)).expect("write");
    let p = Prompt::load("w", &pw).unwrap_or_else(|e| panic!("{e}"));
    assert!((p.samples().len() as i64 - 4000).abs() <= 1);
    let level = power_to_dbm0(mean_power(middle(p.samples())) as f32);
    assert!((level + 10.0).abs() < 0.5, "level {level}");
}

#[test]
fn broken_files_give_errors_naming_the_file() {
    let dir = test_dir("broken");
    let good = dir.join("good.wav");
    write_pcm(
        &good,
        8000,
        Fmt::I16,
        &sine(8000, 440.0, 0.5, -10.0),
        &[1.0],
    );
    let bytes = std::fs::read(&good).expect("read");

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("truncated-header", bytes[..30].to_vec()),
        ("truncated-data", bytes[..100].to_vec()),
        (
            "random",
            (0..500u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ),
        ("text", b"this is not audio".to_vec()),
        ("adpcm", {
            let mut b = bytes.clone();
            b[20] = 2;
            b
        }),
        ("zero-channels", {
            let mut b = bytes.clone();
            b[22] = 0;
            b
        }),
        ("rate-zero", {
            let mut b = bytes.clone();
            b[24..28].copy_from_slice(&0u32.to_le_bytes());
            b
        }),
        ("huge-data", {
            let mut b = bytes.clone();
            b[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
            b
        }),
        ("no-samples", g711_wav(7, 1, 8000, &[], false)),
    ];
    for (name, content) in cases {
        let path = dir.join(format!("{name}.wav"));
        std::fs::write(&path, &content).expect("write");
        let err = Prompt::load(name, &path).expect_err(name);
        assert_eq!(err.path, path);
        let message = err.to_string();
        assert!(message.contains(&*path.to_string_lossy()), "{message}");
        assert!(
            message.len() > path.to_string_lossy().len() + 10,
            "{message}"
        );
    }

    let missing = dir.join("missing.wav");
    let err = Prompt::load("m", &missing).expect_err("missing");
    assert!(matches!(err.kind, PromptErrorKind::Io(_)));

    let err = decode_wav(&bytes[..100]).expect_err("truncated");
    assert!(
        matches!(err, PromptErrorKind::Wav(WavError::Truncated { .. })),
        "{err}"
    );
    let mut adpcm = bytes.clone();
    adpcm[20] = 2;
    let err = decode_wav(&adpcm).expect_err("adpcm");
    assert!(err.to_string().contains("ADPCM"), "{err}");
}

#[test]
fn mutated_pcm_files_never_panic() {
    let dir = test_dir("mutate");
    let mut seeds = Vec::new();
    for (i, fmt) in [Fmt::U8, Fmt::I16, Fmt::I24, Fmt::F32]
        .into_iter()
        .enumerate()
    {
        let path = dir.join(format!("{i}.wav"));
        write_pcm(
            &path,
            16_000,
            fmt,
            &sine(16_000, 440.0, 0.02, -10.0),
            &[1.0, 0.5],
        );
        seeds.push(std::fs::read(&path).expect("read"));
    }
    let mut state = 0x1234_5678_9ABC_DEF1u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        for seed in &seeds {
            let mut b = seed.clone();
            for _ in 0..1 + next() % 3 {
                let at = (next() % 48) as usize;
                b[at] = next() as u8;
            }
            if next() % 4 == 0 {
                b.truncate((next() % b.len() as u64) as usize);
            }
            let _ = decode_wav(&b);
        }
    }
}

fn write_tone(path: &Path, freq: f64) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    write_pcm(path, 8000, Fmt::I16, &sine(8000, freq, 0.1, -10.0), &[1.0]);
}

#[test]
fn library_loads_languages_with_fallback_and_lists_every_error() {
    let root = test_dir("library");
    write_tone(&root.join("en/welcome.wav"), 400.0);
    std::fs::write(root.join("en/welcome.txt"), "Welcome to the hotline.\n").expect("write");
    write_tone(&root.join("en/goodbye.wav"), 500.0);
    write_tone(&root.join("en/menu/main.wav"), 600.0);
    write_tone(&root.join("en/.hidden.wav"), 600.0);
    write_tone(&root.join("fr/welcome.wav"), 700.0);
    std::fs::write(root.join("fr/broken.wav"), b"RIFF junk").expect("write");
    std::fs::write(root.join("fr/notes.md"), b"ignored").expect("write");
    std::fs::write(root.join("de.wav"), b"ignored: not in a language directory").expect("write");
    std::fs::create_dir_all(root.join("es")).expect("mkdir");
    std::fs::write(root.join("es/bad.wav"), b"").expect("write");
    write_tone(&root.join("es/hola.wav"), 800.0);
    std::fs::write(root.join("es/hola.txt"), [0xFF, 0xFE, 0x00]).expect("write");

    let (lib, errors) = PromptLibrary::load_dir(&root, "en");
    let mut failed: Vec<String> = errors
        .iter()
        .map(|e| {
            e.path
                .strip_prefix(&root)
                .expect("under root")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    failed.sort();
    assert_eq!(
        failed,
        ["es/bad.wav", "es/hola.txt", "fr/broken.wav"],
        "{errors:#?}"
    );

    assert_eq!(lib.languages().collect::<Vec<_>>(), ["en", "es", "fr"]);
    assert_eq!(
        lib.names("en").collect::<Vec<_>>(),
        ["goodbye", "menu/main", "welcome"]
    );
    assert_eq!(lib.len(), 5);
    // The audio whose transcript failed is still there.
    assert_eq!(
        lib.get_exact("es", "hola").expect("es hola").transcript(),
        None
    );

    let fr_welcome = lib.get("fr", "welcome").expect("fr welcome");
    assert!(power_at(fr_welcome.samples(), 700.0) > 0.9 * mean_power(fr_welcome.samples()));
    // Missing in French: the default language's.
    let goodbye = lib.get("fr", "goodbye").expect("fallback");
    assert!(goodbye.shares_data_with(lib.get_exact("en", "goodbye").expect("en")));
    assert!(lib.get_exact("fr", "goodbye").is_none());
    // Regional tag falls back to the primary language, then the default.
    assert!(
        lib.get("fr-CA", "welcome")
            .expect("fr-CA")
            .shares_data_with(fr_welcome)
    );
    assert!(lib.get("de", "menu/main").is_some());
    assert!(lib.get("en", "nope").is_none());

    let welcome = lib.get("en", "welcome").expect("en welcome");
    assert_eq!(welcome.transcript(), Some("Welcome to the hotline."));
    assert_eq!(welcome.name(), "welcome");
    assert_eq!(welcome.duration(), Duration::from_millis(100));

    // Clones of the library and of prompts share the audio.
    let lib2 = lib.clone();
    assert!(
        lib2.get("en", "welcome")
            .expect("clone")
            .shares_data_with(welcome)
    );
}

#[test]
fn library_reports_a_missing_root_or_default_language() {
    let root = test_dir("library-missing");
    let (lib, errors) = PromptLibrary::load_dir(&root.join("nope"), "en");
    assert!(lib.is_empty());
    assert_eq!(errors.len(), 1);
    assert!(errors[0].to_string().contains("nope"), "{}", errors[0]);

    write_tone(&root.join("fr/welcome.wav"), 700.0);
    let (lib, errors) = PromptLibrary::load_dir(&root, "en");
    assert_eq!(lib.len(), 1);
    assert_eq!(errors.len(), 1);
    assert!(matches!(
        errors[0].kind,
        PromptErrorKind::MissingDefaultLanguage { .. }
    ));
    assert!(errors[0].to_string().contains("\"en\""), "{}", errors[0]);
}

#[test]
fn library_from_generated_prompts() {
    let beep = Prompt::tone(1000.0, Duration::from_millis(300), -10.0);
    let lib = PromptLibrary::from_prompts("en", [("en".to_string(), beep.clone())]);
    assert!(
        lib.get("sv", beep.name())
            .expect("fallback")
            .shares_data_with(&beep)
    );
    assert_eq!(lib.default_language(), "en");
}
