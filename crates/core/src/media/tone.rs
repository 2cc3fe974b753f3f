//! Tone synthesis at 8 kHz: sines, dual tones and DTMF key tones, with levels in dBm0.
//!
//! Owns the level reference (what 0 dBm0 is in 16-bit samples). Used to build generated
//! prompts (beeps, call-progress tones) and to send in-band DTMF; it must not know about
//! codecs or packets. Generation allocates the result once; it is not meant for a per-frame
//! hot path (prompts are generated once and shared).

use std::f64::consts::TAU;
use std::time::Duration;

use super::dtmf::Key;

/// Sample rate of everything the media engine handles internally.
pub const SAMPLE_RATE: u32 = 8000;

/// Peak amplitude, in 16-bit linear samples, of a sine at 0 dBm0.
///
/// G.711 puts the largest representable sine (peak 8159 in mu-law's 14-bit range, 32 636
/// in 16-bit samples) at +3.17 dBm0, so 0 dBm0 is 32 636 / 10^(3.17/20). A-law's
/// definition (+3.14 dBm0 at 4096 in 13 bits) lands within 0.4 dB of it.
pub const ZERO_DBM0_AMPLITUDE: f32 = 22_657.0;

/// Peak amplitude of a sine at `level_dbm0`.
pub fn dbm0_to_amplitude(level_dbm0: f32) -> f32 {
    ZERO_DBM0_AMPLITUDE * 10f32.powf(level_dbm0 / 20.0)
}

/// Mean power (mean of the squared samples) of a sine at `level_dbm0`.
pub fn dbm0_to_power(level_dbm0: f32) -> f32 {
    let a = dbm0_to_amplitude(level_dbm0);
    a * a / 2.0
}

/// The level in dBm0 of a signal with the given mean power (mean of squared samples).
pub fn power_to_dbm0(power: f32) -> f32 {
    10.0 * (power.max(f32::MIN_POSITIVE) / dbm0_to_power(0.0)).log10()
}

/// Number of 8 kHz samples in `duration`, rounded to the nearest sample.
pub fn samples_in(duration: Duration) -> usize {
    let n =
        (duration.as_nanos().saturating_mul(u128::from(SAMPLE_RATE)) + 500_000_000) / 1_000_000_000;
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Adds a sine of the given frequency and level onto `buf` (as floating-point samples),
/// starting at phase zero.
pub fn add_sine(buf: &mut [f32], freq_hz: f32, level_dbm0: f32) {
    let amplitude = f64::from(dbm0_to_amplitude(level_dbm0));
    let step = TAU * f64::from(freq_hz) / f64::from(SAMPLE_RATE);
    for (n, s) in buf.iter_mut().enumerate() {
        // Computing each phase from n (not by accumulation) keeps long tones exact.
        *s += (amplitude * (step * n as f64).sin()) as f32;
    }
}

/// Rounds and saturates floating-point samples to 16 bits.
pub fn to_i16(buf: &[f32]) -> Vec<i16> {
    // `as` saturates, and NaN becomes 0.
    buf.iter().map(|&s| s.round() as i16).collect()
}

/// A sine tone.
pub fn sine(freq_hz: f32, duration: Duration, level_dbm0: f32) -> Vec<i16> {
    let mut buf = vec![0f32; samples_in(duration)];
    add_sine(&mut buf, freq_hz, level_dbm0);
    to_i16(&buf)
}

/// Two sines added together, each at its own level.
pub fn dual_tone(
    (freq1_hz, level1_dbm0): (f32, f32),
    (freq2_hz, level2_dbm0): (f32, f32),
    duration: Duration,
) -> Vec<i16> {
    let mut buf = vec![0f32; samples_in(duration)];
    add_sine(&mut buf, freq1_hz, level1_dbm0);
    add_sine(&mut buf, freq2_hz, level2_dbm0);
    to_i16(&buf)
}

/// The DTMF tone of `key`: its row and column frequencies, each at `level_dbm0`.
pub fn dtmf_tone(key: Key, duration: Duration, level_dbm0: f32) -> Vec<i16> {
    let (low, high) = key.frequencies();
    dual_tone((low, level_dbm0), (high, level_dbm0), duration)
}

/// Ramps the first and last `ramp` samples with a raised cosine, so that a tone starts and
/// stops without an audible click.
pub fn fade_edges(samples: &mut [i16], ramp: usize) {
    let ramp = ramp.min(samples.len() / 2);
    let len = samples.len();
    for i in 0..ramp {
        let gain = 0.5 - 0.5 * (std::f64::consts::PI * (i as f64 + 0.5) / ramp as f64).cos();
        for idx in [i, len - 1 - i] {
            if let Some(s) = samples.get_mut(idx) {
                *s = (f64::from(*s) * gain).round() as i16;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_power(s: &[i16]) -> f32 {
        (s.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / s.len() as f64) as f32
    }

    #[test]
    fn levels() {
        let tone = sine(1000.0, Duration::from_secs(1), -10.0);
        assert_eq!(tone.len(), 8000);
        assert!((power_to_dbm0(mean_power(&tone)) + 10.0).abs() < 0.05);
        let peak = tone.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert!((f32::from(peak) - dbm0_to_amplitude(-10.0)).abs() < 2.0);
        // +3.17 dBm0 is the mu-law full-scale sine.
        assert!((dbm0_to_amplitude(3.17) - 32_636.0).abs() < 5.0);
    }

    #[test]
    fn dtmf_tone_has_both_frequencies_at_the_level() {
        let t = dtmf_tone(Key::Five, Duration::from_millis(100), -6.0);
        assert_eq!(t.len(), 800);
        // Two tones at -6 dBm0 each make -3 dBm0 in total.
        assert!((power_to_dbm0(mean_power(&t)) + 2.99).abs() < 0.1);
    }

    #[test]
    fn sample_counts_round() {
        assert_eq!(samples_in(Duration::from_millis(20)), 160);
        assert_eq!(samples_in(Duration::from_micros(62)), 0);
        assert_eq!(samples_in(Duration::from_micros(63)), 1);
        assert_eq!(samples_in(Duration::ZERO), 0);
    }

    #[test]
    fn fade_ramps_the_edges() {
        let mut s = vec![10_000i16; 100];
        fade_edges(&mut s, 10);
        assert!(s[0].abs() < 300 && s[99].abs() < 300);
        assert_eq!(s[50], 10_000);
        assert!(s[5] > 3_000 && s[5] < 7_000);
        let mut tiny = vec![1000i16; 3];
        fade_edges(&mut tiny, 10);
    }
}
