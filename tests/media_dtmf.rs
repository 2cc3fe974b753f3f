//! In-band DTMF detection against synthesized tones, noise, speech-like sound and music,
//! and RFC 4733 sender-to-receiver round trips. Everything is generated here from seeded
//! generators, so runs are identical.

use std::f64::consts::TAU;
use std::time::{Duration, Instant};

use hotline::media::dtmf::{InbandDetector, Key, Rfc4733Receiver, Rfc4733Sender};
use hotline::media::g711::Codec;
use hotline::media::tone::{self, SAMPLE_RATE, add_sine, dbm0_to_amplitude, dtmf_tone, samples_in};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// xorshift64*: small, seeded, good enough for test noise.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn gaussian(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-12);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (TAU * u2).cos()
    }
}

/// Adds white Gaussian noise with the mean power of a sine at `level_dbm0`.
fn add_noise(buf: &mut [f32], level_dbm0: f32, rng: &mut Rng) {
    let sigma = f64::from(dbm0_to_amplitude(level_dbm0)) / 2f64.sqrt();
    for s in buf {
        *s += (rng.gaussian() * sigma) as f32;
    }
}

/// A key tone with its own frequencies, levels and length, as floats.
struct Tone {
    low: (f32, f32),
    high: (f32, f32),
    len: Duration,
}

impl Tone {
    fn key(key: Key, level: f32, len: Duration) -> Tone {
        let (l, h) = key.frequencies();
        Tone {
            low: (l, level),
            high: (h, level),
            len,
        }
    }

    fn render(&self) -> Vec<f32> {
        let mut buf = vec![0f32; samples_in(self.len)];
        add_sine(&mut buf, self.low.0, self.low.1);
        add_sine(&mut buf, self.high.0, self.high.1);
        buf
    }
}

fn silence(len: Duration) -> Vec<f32> {
    vec![0f32; samples_in(len)]
}

fn to_i16(buf: &[f32]) -> Vec<i16> {
    tone::to_i16(buf)
}

/// Runs audio through a fresh detector in 20 ms frames and returns the keys as a string.
fn detect(audio: &[i16]) -> String {
    let mut det = InbandDetector::new();
    detect_with(&mut det, audio)
}

fn detect_with(det: &mut InbandDetector, audio: &[i16]) -> String {
    let mut keys: String = audio
        .chunks(160)
        .filter_map(|f| det.push_frame(f))
        .map(|k| k.as_char())
        .collect();
    keys.extend(det.push_frame(&[]).map(|k| k.as_char()));
    keys
}

/// `pre` of silence, the tone, `post` of silence, with noise at `noise_dbm0` over it all.
fn with_noise(tone: &Tone, noise_dbm0: Option<f32>, seed: u64) -> Vec<i16> {
    let mut buf = silence(ms(100));
    buf.extend(tone.render());
    buf.extend(silence(ms(100)));
    if let Some(level) = noise_dbm0 {
        add_noise(&mut buf, level, &mut Rng(seed));
    }
    to_i16(&buf)
}

#[test]
fn every_key_at_every_level_from_minus_6_to_minus_25_dbm0() {
    let mut seed = 1;
    for key in Key::ALL {
        for level in [-6.0, -10.0, -15.0, -20.0, -25.0] {
            seed += 1;
            // Line noise 20 dB under the tones.
            let audio = with_noise(&Tone::key(key, level, ms(60)), Some(level - 20.0), seed);
            assert_eq!(detect(&audio), key.to_string(), "key {key} at {level} dBm0");
        }
    }
}

#[test]
fn noisy_line_at_12_db_snr() {
    for (i, key) in Key::ALL.into_iter().enumerate() {
        let audio = with_noise(&Tone::key(key, -20.0, ms(80)), Some(-32.0), 100 + i as u64);
        assert_eq!(detect(&audio), key.to_string(), "key {key}");
    }
}

#[test]
fn too_quiet_tones_are_ignored() {
    for key in [Key::One, Key::Zero, Key::D] {
        let audio = with_noise(&Tone::key(key, -36.0, ms(200)), None, 0);
        assert_eq!(detect(&audio), "", "key {key}");
    }
}

#[test]
fn forty_ms_tones_are_detected_at_every_alignment() {
    for offset in (0..160).step_by(5) {
        for key in [Key::One, Key::Five, Key::Pound, Key::D] {
            let mut buf = vec![0f32; 400 + offset];
            buf.extend(Tone::key(key, -15.0, ms(40)).render());
            buf.extend(silence(ms(100)));
            add_noise(&mut buf, -45.0, &mut Rng(offset as u64 + 7));
            assert_eq!(
                detect(&to_i16(&buf)),
                key.to_string(),
                "key {key} offset {offset}"
            );
        }
    }
}

#[test]
fn short_tones_are_rejected_at_every_alignment() {
    for len in [10, 20, 22] {
        for offset in (0..160).step_by(5) {
            for key in [Key::One, Key::Five, Key::Pound, Key::D] {
                let mut buf = vec![0f32; 400 + offset];
                buf.extend(Tone::key(key, -6.0, ms(len)).render());
                buf.extend(silence(ms(100)));
                assert_eq!(
                    detect(&to_i16(&buf)),
                    "",
                    "{len} ms key {key} offset {offset}"
                );
            }
        }
    }
}

fn shifted(key: Key, low_factor: f32, high_factor: f32) -> Tone {
    let (l, h) = key.frequencies();
    Tone {
        low: (l * low_factor, -10.0),
        high: (h * high_factor, -10.0),
        len: ms(200),
    }
}

#[test]
fn frequencies_within_one_and_a_half_percent_are_accepted() {
    for key in Key::ALL {
        for (lf, hf) in [
            (1.015, 1.0),
            (0.985, 1.0),
            (1.0, 1.015),
            (1.0, 0.985),
            (1.015, 0.985),
        ] {
            let audio = with_noise(&shifted(key, lf, hf), Some(-40.0), 3);
            assert_eq!(detect(&audio), key.to_string(), "key {key} x{lf} x{hf}");
        }
    }
}

#[test]
fn frequencies_off_by_three_and_a_half_percent_or_more_are_rejected() {
    for key in Key::ALL {
        for dev in [0.035f32, 0.05] {
            for (lf, hf) in [
                (1.0 + dev, 1.0),
                (1.0 - dev, 1.0),
                (1.0, 1.0 + dev),
                (1.0, 1.0 - dev),
            ] {
                let audio = with_noise(&shifted(key, lf, hf), Some(-40.0), 4);
                assert_eq!(detect(&audio), "", "key {key} x{lf} x{hf}");
            }
        }
    }
}

fn twisted(key: Key, low_dbm0: f32, high_dbm0: f32) -> Tone {
    let (l, h) = key.frequencies();
    Tone {
        low: (l, low_dbm0),
        high: (h, high_dbm0),
        len: ms(100),
    }
}

#[test]
fn twist_within_limits_is_accepted() {
    for key in Key::ALL {
        // High group 3 dB louder (reverse twist), low group 7 dB louder (normal twist).
        for (low, high) in [(-12.0, -9.0), (-8.0, -15.0), (-18.0, -15.0), (-10.0, -17.0)] {
            let audio = with_noise(&twisted(key, low, high), Some(-45.0), 5);
            assert_eq!(
                detect(&audio),
                key.to_string(),
                "key {key} low {low} high {high}"
            );
        }
    }
}

#[test]
fn twist_beyond_limits_is_rejected() {
    for key in Key::ALL {
        // High group 5-6 dB louder, or low group 9-10 dB louder.
        for (low, high) in [(-15.0, -9.0), (-15.0, -10.0), (-6.0, -16.0), (-8.0, -17.0)] {
            let audio = with_noise(&twisted(key, low, high), Some(-45.0), 6);
            assert_eq!(detect(&audio), "", "key {key} low {low} high {high}");
        }
    }
}

#[test]
fn single_tones_and_three_tone_mixtures_are_rejected() {
    for f in [697.0, 941.0, 1209.0, 1633.0] {
        let audio = to_i16(&{
            let mut b = silence(ms(300));
            add_sine(&mut b, f, -6.0);
            b
        });
        assert_eq!(detect(&audio), "", "{f} Hz");
    }
    // Two rows and a column: not a key.
    let mut b = silence(ms(300));
    add_sine(&mut b, 697.0, -10.0);
    add_sine(&mut b, 770.0, -10.0);
    add_sine(&mut b, 1209.0, -10.0);
    assert_eq!(detect(&to_i16(&b)), "");
}

#[test]
fn silence_and_white_noise_give_no_key() {
    assert_eq!(detect(&vec![0i16; 8000 * 10]), "");
    for (i, level) in [-50.0, -30.0, -20.0, -10.0, -3.0].into_iter().enumerate() {
        let mut buf = silence(Duration::from_secs(20));
        add_noise(&mut buf, level, &mut Rng(1000 + i as u64));
        assert_eq!(detect(&to_i16(&buf)), "", "noise at {level} dBm0");
    }
}

/// Vowel formants (F1, F2, F3 in Hz) of a few vowels.
const VOWELS: [[f64; 3]; 6] = [
    [730.0, 1090.0, 2440.0], // a
    [270.0, 2290.0, 3010.0], // i
    [300.0, 870.0, 2240.0],  // u
    [530.0, 1840.0, 2480.0], // e
    [570.0, 840.0, 2410.0],  // o
    [660.0, 1720.0, 2410.0], // ae
];

/// Gain of a formant filter bank at frequency `f` (resonances with 90 Hz bandwidth).
fn formant_gain(f: f64, formants: &[f64; 3]) -> f64 {
    formants
        .iter()
        .zip([1.0, 0.6, 0.3])
        .map(|(&fc, weight)| {
            let bw = 90.0;
            weight / (1.0 + ((f - fc) / (bw / 2.0)).powi(2)).sqrt()
        })
        .sum::<f64>()
        // Glottal source roll-off, about -12 dB per octave.
        / (1.0 + (f / 300.0).powi(2))
}

/// Voiced "speech": a glottal pulse train as the sum of harmonics of a fundamental that
/// glides between 100 and 250 Hz, shaped by formants that move between vowels every
/// 120-250 ms, with a syllable rhythm and short pauses.
fn speech_like(seconds: f64, level_dbm0: f32, rng: &mut Rng) -> Vec<f32> {
    let n = (seconds * f64::from(SAMPLE_RATE)) as usize;
    let fs = f64::from(SAMPLE_RATE);
    let mut out = vec![0f32; n];
    let mut phases = [0f64; 40];
    let mut f0 = 150.0;
    let mut f0_target = 180.0;
    let mut vowel = VOWELS[0];
    let mut next_vowel = VOWELS[1];
    let mut segment_len = 1600usize;
    let mut segment_pos = 0usize;
    for s in out.iter_mut() {
        if segment_pos >= segment_len {
            segment_pos = 0;
            segment_len = 960 + (rng.uniform() * 1040.0) as usize;
            vowel = next_vowel;
            next_vowel = VOWELS[(rng.next_u64() % VOWELS.len() as u64) as usize];
            f0_target = 100.0 + rng.uniform() * 150.0;
        }
        let t = segment_pos as f64 / segment_len as f64;
        segment_pos += 1;
        // Formants glide from one vowel to the next over the segment.
        let formants = [0, 1, 2].map(|k| vowel[k] + (next_vowel[k] - vowel[k]) * t);
        f0 += (f0_target - f0) * 0.0008;
        // Syllables: a raised-cosine envelope per segment, with an occasional pause.
        let envelope = (std::f64::consts::PI * t).sin().powf(0.5);
        let mut v = 0.0;
        for (h, phase) in phases.iter_mut().enumerate() {
            let f = f0 * (h + 1) as f64;
            if f >= 3800.0 {
                break;
            }
            *phase = (*phase + TAU * f / fs) % TAU;
            v += formant_gain(f, &formants) * phase.sin();
        }
        let breath = rng.gaussian() * 0.01;
        *s = ((v + breath) * envelope) as f32;
    }
    normalise(&mut out, level_dbm0);
    out
}

/// Scales `buf` so that its mean power is that of a sine at `level_dbm0`.
fn normalise(buf: &mut [f32], level_dbm0: f32) {
    let power = buf
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        / buf.len() as f64;
    let target = f64::from(dbm0_to_amplitude(level_dbm0)).powi(2) / 2.0;
    let gain = (target / power.max(1e-20)).sqrt() as f32;
    for s in buf {
        *s *= gain;
    }
}

#[test]
fn speech_like_sound_gives_no_key() {
    for (seed, level) in [(11u64, -10.0f32), (12, -18.0), (13, -25.0)] {
        let mut rng = Rng(seed);
        let mut speech = speech_like(20.0, level, &mut rng);
        add_noise(&mut speech, level - 35.0, &mut rng);
        assert_eq!(detect(&to_i16(&speech)), "", "seed {seed} level {level}");
    }
}

/// Frequency of a MIDI note.
fn midi(note: i32) -> f64 {
    440.0 * 2f64.powf(f64::from(note - 69) / 12.0)
}

/// Chords of instrument-like notes (a few harmonics, plucked envelope), 400 ms each, with
/// a melody on top, over `seconds`.
fn music(seconds: f64, level_dbm0: f32) -> Vec<f32> {
    let fs = f64::from(SAMPLE_RATE);
    let n = (seconds * fs) as usize;
    let chords: [&[i32]; 6] = [
        &[60, 64, 67, 72],     // C major
        &[65, 69, 72, 77],     // F major (F5 is 698 Hz, next to the 697 Hz row)
        &[67, 71, 74, 77],     // G7
        &[57, 60, 64, 69],     // A minor
        &[62, 65, 69, 74, 77], // D minor with F5
        &[64, 68, 71, 76, 88], // E major with E6 (1319 Hz, near the 1336 Hz column)
    ];
    let melody = [77, 76, 74, 72, 77, 79, 81, 84, 88, 86, 84, 81];
    let chord_len = (0.4 * fs) as usize;
    let note_len = (0.2 * fs) as usize;
    let mut out = vec![0f32; n];
    for (i, s) in out.iter_mut().enumerate() {
        let chord = chords[(i / chord_len) % chords.len()];
        let tc = (i % chord_len) as f64 / fs;
        let mut v = 0.0;
        let mut add_note = |note: i32, t: f64, gain: f64| {
            let f = midi(note);
            let env = (-t * 3.0).exp() * (1.0 - (-t * 200.0).exp());
            for (h, amp) in [1.0, 0.5, 0.33, 0.25, 0.2].iter().enumerate() {
                let fh = f * (h + 1) as f64;
                if fh < 3800.0 {
                    v += gain * amp * env * (TAU * fh * (i as f64 / fs)).sin();
                }
            }
        };
        for &note in chord {
            add_note(note, tc, 1.0);
        }
        let tm = (i % note_len) as f64 / fs;
        add_note(melody[(i / note_len) % melody.len()], tm, 1.2);
        *s = v as f32;
    }
    normalise(&mut out, level_dbm0);
    out
}

#[test]
fn music_gives_no_key() {
    for level in [-8.0, -15.0, -25.0] {
        let audio = to_i16(&music(15.0, level));
        assert_eq!(detect(&audio), "", "music at {level} dBm0");
    }
}

fn sequence(keys: &str, tone: Duration, gap: Duration, level: f32) -> Vec<f32> {
    let mut buf = silence(ms(100));
    for c in keys.chars() {
        let key = Key::from_char(c).expect("test keys are valid");
        buf.extend(Tone::key(key, level, tone).render());
        buf.extend(silence(gap));
    }
    buf.extend(silence(ms(100)));
    buf
}

#[test]
fn a_dialled_sequence_comes_out_exactly() {
    let keys = "1234567890*#";
    let mut buf = sequence(keys, ms(60), ms(60), -12.0);
    add_noise(&mut buf, -40.0, &mut Rng(21));
    assert_eq!(detect(&to_i16(&buf)), keys);
    // With every key of the pad, faster: 45 ms tones, 45 ms pauses.
    let all = "147*2580369#ABCD";
    let mut buf = sequence(all, ms(45), ms(45), -15.0);
    add_noise(&mut buf, -45.0, &mut Rng(22));
    assert_eq!(detect(&to_i16(&buf)), all);
}

#[test]
fn repeated_key_needs_a_pause() {
    let buf = sequence("1111", ms(60), ms(40), -10.0);
    assert_eq!(detect(&to_i16(&buf)), "1111");
    // A long press is one key.
    let buf = sequence("5", Duration::from_secs(3), ms(60), -10.0);
    assert_eq!(detect(&to_i16(&buf)), "5");
    // At every alignment: a pause of 40 ms separates two presses, and dropouts of up to
    // 20 ms inside a press do not repeat it.
    for offset in (0..160).step_by(5) {
        for (gap, expected) in [(40, "77"), (20, "7"), (10, "7")] {
            let mut buf = vec![0f32; offset];
            buf.extend(Tone::key(Key::Seven, -10.0, ms(100)).render());
            buf.extend(silence(ms(gap)));
            buf.extend(Tone::key(Key::Seven, -10.0, ms(100)).render());
            buf.extend(silence(ms(100)));
            assert_eq!(
                detect(&to_i16(&buf)),
                expected,
                "{gap} ms gap at offset {offset}"
            );
        }
    }
}

#[test]
fn a_different_key_without_a_pause_is_a_new_key() {
    let mut buf = Tone::key(Key::One, -10.0, ms(100)).render();
    buf.extend(Tone::key(Key::Two, -10.0, ms(100)).render());
    buf.extend(Tone::key(Key::One, -10.0, ms(100)).render());
    assert_eq!(detect(&to_i16(&buf)), "121");
}

#[test]
fn tones_survive_g711() {
    for codec in Codec::ALL {
        for key in Key::ALL {
            for level in [-6.0, -25.0] {
                let audio = dtmf_tone(key, ms(60), level);
                let mut padded = vec![0i16; 800];
                padded.extend(&audio);
                padded.extend(vec![0i16; 800]);
                let mut bytes = vec![0u8; padded.len()];
                codec.encode_into(&padded, &mut bytes);
                let mut decoded = vec![0i16; bytes.len()];
                codec.decode_into(&bytes, &mut decoded);
                assert_eq!(
                    detect(&decoded),
                    key.to_string(),
                    "{codec} key {key} at {level}"
                );
            }
        }
    }
}

#[test]
fn rfc4733_sender_to_receiver() {
    let t0 = Instant::now();
    let mut rx = Rfc4733Receiver::new();
    let mut got = String::new();
    let mut ts = 12_345u32;
    let mut now = t0;
    for c in "0123456789*#ABCD".chars() {
        let key = Key::from_char(c).expect("valid");
        for packet in Rfc4733Sender::new(key, ts, ms(100)) {
            if let Some(k) = rx.handle(now, packet.timestamp, packet.marker, &packet.payload) {
                got.push(k.as_char());
            }
            now += ms(20);
        }
        ts = ts.wrapping_add(1600);
        now += ms(60);
    }
    assert_eq!(got, "0123456789*#ABCD");
}
