//! In-band DTMF detection: finds key tones in 8 kHz linear audio with Goertzel filters.
//!
//! Owns the signal tests that separate a real key tone from speech, music and noise, and
//! the timing rules (minimum tone length, pause between keys). It must not allocate per
//! frame, read a clock or know where the audio came from: the caller feeds samples (after
//! G.711 decoding) in arrival order, and the sample count is the clock.
//!
//! # How it decides
//!
//! Audio is analysed in 20 ms windows (160 samples) that overlap by half, so a decision is
//! made every 10 ms. The 160-sample window gives 50 Hz resolution, enough to separate the
//! row tones (73 Hz apart at the closest) better than the classic 102-106 or 205 sample
//! blocks at these durations, and the 10 ms hop gives the timing resolution needed to tell
//! a 23 ms blip from a 40 ms tone. Each half window's Goertzel results are computed once
//! and combined into both windows that contain it, so the overlap costs nothing extra.
//!
//! A window holds a key when, for the strongest row and strongest column frequency:
//!
//! - every other frequency of each group is at least 10 dB under that group's tone, which
//!   rejects chords and three-tone mixtures;
//! - each tone is within 2.5 % of its nominal frequency. Q.24 asks for acceptance within
//!   1.5 % and rejection beyond 3.5 %; Goertzel magnitudes alone are too blunt for that at
//!   the low frequencies, so the frequency is measured from the phase advance between two
//!   Hann-windowed 120-sample sub-blocks 40 samples apart (unambiguous to +-100 Hz). This
//!   runs only when the cheap tests have passed;
//! - measured at that frequency (so that an in-tolerance offset does not distort levels),
//!   each tone is at least -30 dBm0 (`MIN_TONE_DBM0`), 5 dB under the weakest level
//!   (-25 dBm0) that must be detected, to leave room for line loss;
//! - the twist is within limits: the high tone at most 4 dB above the low one, the low tone
//!   at most 8 dB above the high one;
//! - the two tones carry at least 60 % of the window's power, which rejects speech, music
//!   and noise, whose energy is spread over many frequencies.
//!
//! A key is reported once, when three consecutive windows agree (their span is 40 ms).
//! A tone of length L covers three consecutive windows by at least 60 % each only when
//! L >= 24 ms, and a tone of 40 ms always does, which gives the Q.24 timing: accept from
//! 40 ms, reject under about 23 ms. The same key is reported again only after four
//! consecutive windows without a key (a 40 ms pause always gives four; a dropout of 20 ms
//! or less never does), and a different key is reported as soon as it has its three
//! windows.
//!
//! Measured on synthetic tones (see the tests): every alignment of a tone of 34 ms or more
//! is detected and none of 24 ms or less; offsets up to 1.8 % are accepted and from 2.8 %
//! rejected; pauses of 35 ms or more separate presses and of 25 ms or less do not; keys
//! at -20 dBm0 are still found with white noise 6 dB under each tone.

use std::f32::consts::{PI, TAU};
use std::sync::LazyLock;

use super::{COL_FREQS, Key, ROW_FREQS};
use crate::media::tone::{SAMPLE_RATE, dbm0_to_power};

/// Samples between two analysis windows (10 ms).
const HOP: usize = 80;
/// Samples in an analysis window (20 ms).
const WINDOW: usize = 2 * HOP;
/// Samples in each of the two sub-blocks used to measure a tone's frequency.
const PHASE_BLOCK: usize = 120;
/// Distance between the two frequency sub-blocks.
const PHASE_HOP: usize = WINDOW - PHASE_BLOCK;

/// Weakest level of each tone, in dBm0.
pub const MIN_TONE_DBM0: f32 = -30.0;
/// How much louder the low tone may be than the high tone ("normal" twist), in dB.
pub const NORMAL_TWIST_DB: f32 = 8.0;
/// How much louder the high tone may be than the low tone ("reverse" twist), in dB.
pub const REVERSE_TWIST_DB: f32 = 4.0;
/// How far under a group's tone the other frequencies of that group must be, in dB.
const RELATIVE_PEAK_DB: f32 = 10.0;
/// How low a tone at the edge of the accepted band can read at the nominal frequency
/// (a 160-sample window loses 3.9 dB half a bin away; 0.35 is 4.6 dB).
const EDGE_LOSS: f32 = 0.35;
/// Share of the window's power that the two tones must carry.
const DOMINANCE: f32 = 0.6;
/// Largest accepted deviation from the nominal frequency, as a fraction.
const FREQ_TOLERANCE: f32 = 0.025;
/// Consecutive windows needed to report a key.
const MIN_WINDOWS: u8 = 3;
/// Consecutive windows without a key that end a key (so the same key can be reported again).
const GAP_WINDOWS: u8 = 4;
/// Keys that can wait to be returned when one push completes several (only possible with
/// pushes longer than 30 ms).
const PENDING: usize = 4;

/// The eight frequencies: rows first, then columns.
const FREQS: [f32; 8] = [
    ROW_FREQS[0],
    ROW_FREQS[1],
    ROW_FREQS[2],
    ROW_FREQS[3],
    COL_FREQS[0],
    COL_FREQS[1],
    COL_FREQS[2],
    COL_FREQS[3],
];

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Complex {
    re: f32,
    im: f32,
}

impl Complex {
    fn from_angle(angle: f32) -> Complex {
        Complex {
            re: angle.cos(),
            im: angle.sin(),
        }
    }

    fn mul(self, o: Complex) -> Complex {
        Complex {
            re: self.re * o.re - self.im * o.im,
            im: self.re * o.im + self.im * o.re,
        }
    }

    fn add(self, o: Complex) -> Complex {
        Complex {
            re: self.re + o.re,
            im: self.im + o.im,
        }
    }

    fn scale(self, k: f32) -> Complex {
        Complex {
            re: self.re * k,
            im: self.im * k,
        }
    }

    fn conj(self) -> Complex {
        Complex {
            re: self.re,
            im: -self.im,
        }
    }

    fn norm_sqr(self) -> f32 {
        self.re * self.re + self.im * self.im
    }
}

/// Constants derived from the frequencies and thresholds, computed once per process.
struct Tables {
    /// Radians per sample of each frequency.
    omega: [f32; 8],
    /// Goertzel feedback coefficient, 2 cos(omega).
    coeff: [f32; 8],
    /// e^{-i omega (HOP-1)} and e^{-i omega HOP}: turn the Goertzel state after a half
    /// window into that half's DFT coefficient. The second is also the phase shift from the
    /// first half of a window to the second.
    fix_s1: [Complex; 8],
    fix_s2: [Complex; 8],
    hann: [f32; PHASE_BLOCK],
    min_tone_power: f32,
    /// Halves quieter than this (mean power) are not filtered: they cannot hold a tone
    /// and skipping them makes a silent line almost free.
    skip_half_power: f32,
    normal_twist: f32,
    reverse_twist: f32,
    relative_peak: f32,
}

static TABLES: LazyLock<Tables> = LazyLock::new(|| {
    let omega = FREQS.map(|f| TAU * f / SAMPLE_RATE as f32);
    let mut hann = [0f32; PHASE_BLOCK];
    for (m, w) in hann.iter_mut().enumerate() {
        *w = 0.5 - 0.5 * (TAU * (m as f32 + 0.5) / PHASE_BLOCK as f32).cos();
    }
    Tables {
        omega,
        coeff: omega.map(|w| 2.0 * w.cos()),
        fix_s1: omega.map(|w| Complex::from_angle(-w * (HOP - 1) as f32)),
        fix_s2: omega.map(|w| Complex::from_angle(-w * HOP as f32)),
        hann,
        min_tone_power: dbm0_to_power(MIN_TONE_DBM0),
        skip_half_power: dbm0_to_power(MIN_TONE_DBM0 - 20.0),
        normal_twist: 10f32.powf(NORMAL_TWIST_DB / 10.0),
        reverse_twist: 10f32.powf(REVERSE_TWIST_DB / 10.0),
        relative_peak: 10f32.powf(RELATIVE_PEAK_DB / 10.0),
    }
});

/// Runs a Goertzel filter over `samples` (optionally weighted) and returns its last two
/// states.
#[inline]
fn goertzel(samples: impl Iterator<Item = f32>, coeff: f32) -> (f32, f32) {
    let (mut s1, mut s2) = (0f32, 0f32);
    for x in samples {
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1, s2)
}

/// Detects DTMF key tones in 8 kHz audio. See the module documentation for the rules.
#[derive(Debug, Clone)]
pub struct InbandDetector {
    /// The last full window; its second half is the most recent hop.
    window: [f32; WINDOW],
    /// Samples of the hop being filled.
    incoming: [f32; HOP],
    filled: usize,
    /// DFT coefficients and energy of the previous half window.
    prev_coeffs: [Complex; 8],
    prev_energy: f32,
    candidate: Option<Key>,
    run: u8,
    quiet_run: u8,
    /// The key reported last, until a pause ends it.
    held: Option<Key>,
    pending: [Option<Key>; PENDING],
}

impl Default for InbandDetector {
    fn default() -> InbandDetector {
        InbandDetector::new()
    }
}

impl InbandDetector {
    pub fn new() -> InbandDetector {
        InbandDetector {
            window: [0.0; WINDOW],
            incoming: [0.0; HOP],
            filled: 0,
            prev_coeffs: [Complex::default(); 8],
            prev_energy: 0.0,
            candidate: None,
            run: 0,
            quiet_run: GAP_WINDOWS,
            held: None,
            pending: [None; PENDING],
        }
    }

    /// Forgets all audio and state, as after a new stream.
    pub fn reset(&mut self) {
        *self = InbandDetector::new();
    }

    /// Feeds the next samples (any length; normally a 20 ms frame of 160) and returns the
    /// key whose tone was confirmed, if any.
    ///
    /// Only pushes of more than 30 ms can complete two keys; the extra one is returned by
    /// the next call.
    pub fn push_frame(&mut self, samples: &[i16]) -> Option<Key> {
        let mut rest = samples;
        while !rest.is_empty() {
            // A hop's worth at a time: a plain conversion loop the compiler vectorises.
            let take = (HOP - self.filled).min(rest.len());
            let (now, later) = rest.split_at(take);
            for (slot, &s) in self.incoming[self.filled..].iter_mut().zip(now) {
                *slot = f32::from(s);
            }
            self.filled += take;
            rest = later;
            if self.filled >= HOP {
                self.filled = 0;
                self.process_hop();
            }
        }
        self.pop_pending()
    }

    /// The key currently held down, as last reported, until the pause after it.
    pub fn held_key(&self) -> Option<Key> {
        self.held
    }

    fn process_hop(&mut self) {
        let t = &*TABLES;
        self.window.copy_within(HOP.., 0);
        self.window[HOP..].copy_from_slice(&self.incoming);

        let energy: f32 = self.incoming.iter().map(|x| x * x).sum();
        let mut coeffs = [Complex::default(); 8];
        if energy / HOP as f32 >= t.skip_half_power {
            // All eight filters advance together, sample by sample: the inner loop over a
            // fixed-size array is what the compiler turns into vector instructions.
            let mut s1 = [0f32; 8];
            let mut s2 = [0f32; 8];
            for &x in &self.incoming {
                for i in 0..8 {
                    let s0 = x + t.coeff[i] * s1[i] - s2[i];
                    s2[i] = s1[i];
                    s1[i] = s0;
                }
            }
            for (i, c) in coeffs.iter_mut().enumerate() {
                *c = t.fix_s1[i].scale(s1[i]).add(t.fix_s2[i].scale(-s2[i]));
            }
        }

        let detected = self.classify(&coeffs, energy);
        self.prev_coeffs = coeffs;
        self.prev_energy = energy;
        if let Some(key) = self.on_window(detected) {
            self.push_pending(key);
        }
    }

    /// Decides whether the current window (previous half + this half) holds a key.
    fn classify(&self, coeffs: &[Complex; 8], energy: f32) -> Option<Key> {
        let t = &*TABLES;
        let mean_power = (self.prev_energy + energy) / WINDOW as f32;
        // A key is two tones of at least the floor each: a quieter window cannot hold one.
        if mean_power < t.min_tone_power {
            return None;
        }
        let norm = 2.0 / (WINDOW * WINDOW) as f32;
        let mut power = [0f32; 8];
        for (i, p) in power.iter_mut().enumerate() {
            let x = self.prev_coeffs[i].add(t.fix_s2[i].mul(coeffs[i]));
            *p = x.norm_sqr() * norm;
        }
        let (rows, cols) = power.split_at(4);
        let (r, pr_nominal) = strongest(rows)?;
        let (c, pc_nominal) = strongest(cols)?;

        // Cheap screens first. Measured at the nominal frequency, a tone at the edge of
        // the accepted band reads up to 4 dB low, so the level screen is loose here and
        // exact below.
        let screen = t.min_tone_power * EDGE_LOSS;
        if pr_nominal < screen || pc_nominal < screen {
            return None;
        }
        let others_quiet = |group: &[f32], best: usize, p: f32| {
            group
                .iter()
                .enumerate()
                .all(|(j, &q)| j == best || q * t.relative_peak <= p)
        };
        if !others_quiet(rows, r, pr_nominal) || !others_quiet(cols, c, pc_nominal) {
            return None;
        }

        let fr = self.measure_frequency(r)?;
        let fc = self.measure_frequency(4 + c)?;
        // Levels at the measured frequencies, so that an in-tolerance offset does not
        // distort the twist or the share of power.
        let pr = self.window_power_at(fr);
        let pc = self.window_power_at(fc);
        if pr < t.min_tone_power || pc < t.min_tone_power {
            return None;
        }
        if pc > pr * t.reverse_twist || pr > pc * t.normal_twist {
            return None;
        }
        if pr + pc < DOMINANCE * mean_power {
            return None;
        }
        Key::at(r, c)
    }

    /// Measures the frequency of the tone near `FREQS[idx]` from the phase advance between
    /// two overlapping sub-blocks of the window; `None` when it is out of tolerance.
    fn measure_frequency(&self, idx: usize) -> Option<f32> {
        let t = &*TABLES;
        let coeff = *t.coeff.get(idx)?;
        let omega = *t.omega.get(idx)?;
        let nominal = *FREQS.get(idx)?;
        let block = |start: usize| {
            let samples = self.window[start..start + PHASE_BLOCK]
                .iter()
                .zip(&t.hann)
                .map(|(x, w)| x * w);
            let (s1, s2) = goertzel(samples, coeff);
            // Proportional to the block's DFT coefficient; the common phase factor of two
            // equal-length blocks cancels in the comparison below.
            Complex {
                re: s1 - omega.cos() * s2,
                im: omega.sin() * s2,
            }
        };
        let z = block(PHASE_HOP).mul(block(0).conj());
        if z.norm_sqr() <= 0.0 {
            return None;
        }
        let dphi = (z.im.atan2(z.re) - omega * PHASE_HOP as f32 + PI).rem_euclid(TAU) - PI;
        let offset_hz = dphi * SAMPLE_RATE as f32 / (TAU * PHASE_HOP as f32);
        (offset_hz.abs() <= FREQ_TOLERANCE * nominal).then_some(nominal + offset_hz)
    }

    /// Power of the window's component at `freq_hz` (a sine's mean power if one is there).
    fn window_power_at(&self, freq_hz: f32) -> f32 {
        let omega = TAU * freq_hz / SAMPLE_RATE as f32;
        let (s1, s2) = goertzel(self.window.iter().copied(), 2.0 * omega.cos());
        // |s1 - e^{-i omega} s2|^2, the squared magnitude of the DFT coefficient.
        let mag_sqr = s1 * s1 + s2 * s2 - 2.0 * omega.cos() * s1 * s2;
        2.0 * mag_sqr / (WINDOW * WINDOW) as f32
    }

    /// Timing rules: three windows to confirm, a pause (or another key) before a repeat.
    fn on_window(&mut self, detected: Option<Key>) -> Option<Key> {
        match detected {
            Some(key) => {
                self.quiet_run = 0;
                if self.candidate == Some(key) {
                    self.run = self.run.saturating_add(1);
                } else {
                    self.candidate = Some(key);
                    self.run = 1;
                }
                if self.run == MIN_WINDOWS && self.held != Some(key) {
                    self.held = Some(key);
                    return Some(key);
                }
                None
            }
            None => {
                self.candidate = None;
                self.run = 0;
                self.quiet_run = self.quiet_run.saturating_add(1);
                if self.quiet_run >= GAP_WINDOWS {
                    self.held = None;
                }
                None
            }
        }
    }

    fn push_pending(&mut self, key: Key) {
        // When full (never with pushes of 30 ms or less) the newest key is dropped.
        if let Some(slot) = self.pending.iter_mut().find(|s| s.is_none()) {
            *slot = Some(key);
        }
    }

    fn pop_pending(&mut self) -> Option<Key> {
        let first = self.pending[0].take();
        self.pending.rotate_left(1);
        first
    }
}

/// Index and value of the largest element.
fn strongest(powers: &[f32]) -> Option<(usize, f32)> {
    powers
        .iter()
        .copied()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::tone::dtmf_tone;
    use std::time::Duration;

    fn run(det: &mut InbandDetector, audio: &[i16]) -> String {
        audio
            .chunks(160)
            .filter_map(|f| det.push_frame(f))
            .map(|k| k.as_char())
            .collect()
    }

    #[test]
    fn detects_a_clean_tone_once() {
        let mut det = InbandDetector::new();
        let mut audio = dtmf_tone(Key::Eight, Duration::from_millis(200), -10.0);
        audio.extend(std::iter::repeat_n(0, 800));
        assert_eq!(run(&mut det, &audio), "8");
        assert_eq!(det.held_key(), None);
    }

    #[test]
    fn reports_at_the_start_of_the_tone() {
        let mut det = InbandDetector::new();
        let audio = dtmf_tone(Key::Three, Duration::from_millis(500), -10.0);
        let frame_of_report = audio.chunks(160).position(|f| det.push_frame(f).is_some());
        // Confirmed by the third window that lies wholly inside the tone, which ends 40 ms
        // in: the second 20 ms frame.
        assert_eq!(frame_of_report, Some(1));
        assert_eq!(det.held_key(), Some(Key::Three));
    }

    #[test]
    fn odd_push_sizes_and_queued_keys() {
        let mut det = InbandDetector::new();
        let mut audio = Vec::new();
        for key in [Key::One, Key::Two] {
            audio.extend(dtmf_tone(key, Duration::from_millis(60), -10.0));
            audio.extend(std::iter::repeat_n(0, 480));
        }
        // One push with the whole thing: both keys come out, one per call.
        assert_eq!(det.push_frame(&audio), Some(Key::One));
        assert_eq!(det.push_frame(&[]), Some(Key::Two));
        assert_eq!(det.push_frame(&[]), None);
        // Pushes of 37 samples.
        let mut det = InbandDetector::new();
        let keys: String = audio
            .chunks(37)
            .filter_map(|f| det.push_frame(f))
            .map(|k| k.as_char())
            .collect();
        assert_eq!(keys, "12");
    }
}
