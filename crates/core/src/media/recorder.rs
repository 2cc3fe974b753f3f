//! Recording what a caller says (voicemail, a spoken comment): decoded 8 kHz samples in,
//! a decision to stop out. Pure: the media session feeds it frames and keys, the call task
//! writes the result to a file. Memory for the longest allowed message is reserved when the
//! recording starts, so the media clock never allocates while the caller speaks.

use std::time::Duration;

use crate::media::dtmf::Key;

/// Why a recording ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// `max_duration` reached.
    MaxDuration,
    /// The caller was silent for `silence_timeout`.
    Silence,
    /// The caller pressed the terminator key.
    Terminator,
    /// Stopped from outside: the caller hung up, or the call ended.
    Stopped,
}

/// A finished recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    pub id: u64,
    pub samples: Vec<i16>,
    pub reason: StopReason,
}

impl Recording {
    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.samples.len() as u64 * 125)
    }
}

const RATE: usize = 8000;
/// Frames quieter than this RMS amplitude count as silence (about -40 dBm0).
const SILENCE_RMS: f64 = 230.0;
/// Silence kept at the end of a message stopped by silence, so it does not end abruptly.
const TAIL_KEPT: usize = RATE / 2;

#[derive(Debug)]
pub struct Recorder {
    id: u64,
    samples: Vec<i16>,
    max_samples: usize,
    silence_limit: usize,
    silent_run: usize,
    terminator: Option<Key>,
}

impl Recorder {
    pub fn new(
        id: u64,
        max_duration: Duration,
        silence_timeout: Option<Duration>,
        terminator: Option<Key>,
    ) -> Recorder {
        let max_samples = (max_duration.as_millis() as usize)
            .saturating_mul(RATE / 1000)
            .max(1);
        let silence_limit = silence_timeout
            .map(|d| (d.as_millis() as usize).saturating_mul(RATE / 1000).max(1))
            .unwrap_or(usize::MAX);
        Recorder {
            id,
            // Capped so a mistaken hour-long limit cannot reserve a gigabyte at once.
            samples: Vec::with_capacity(max_samples.min(RATE * 600)),
            max_samples,
            silence_limit,
            silent_run: 0,
            terminator,
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Appends a frame of what the caller said; tells when the recording should stop.
    pub fn push(&mut self, pcm: &[i16]) -> Option<StopReason> {
        let room = self.max_samples.saturating_sub(self.samples.len());
        let take = pcm.len().min(room);
        self.samples.extend_from_slice(&pcm[..take]);
        if take > 0 {
            let energy: f64 = pcm[..take]
                .iter()
                .map(|&s| f64::from(s) * f64::from(s))
                .sum();
            let rms = (energy / take as f64).sqrt();
            if rms < SILENCE_RMS {
                self.silent_run += take;
            } else {
                self.silent_run = 0;
            }
        }
        if self.samples.len() >= self.max_samples {
            Some(StopReason::MaxDuration)
        } else if self.silent_run >= self.silence_limit {
            Some(StopReason::Silence)
        } else {
            None
        }
    }

    /// A key the caller pressed: the terminator ends the recording.
    pub fn key(&self, key: Key) -> Option<StopReason> {
        (self.terminator == Some(key)).then_some(StopReason::Terminator)
    }

    pub fn finish(mut self, reason: StopReason) -> Recording {
        if reason == StopReason::Silence {
            let cut = self.silent_run.saturating_sub(TAIL_KEPT);
            self.samples
                .truncate(self.samples.len().saturating_sub(cut));
        }
        Recording {
            id: self.id,
            samples: self.samples,
            reason,
        }
    }
}

/// Writes a recording as an 8 kHz mono 16-bit WAV file (blocking IO: call it off the media
/// clock, e.g. with `spawn_blocking`). The file is complete once this returns.
pub fn write_wav(path: &std::path::Path, samples: &[i16]) -> Result<(), hound::Error> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE as u32,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let tmp = path.with_extension("wav.part");
    let mut w = hound::WavWriter::create(&tmp, spec)?;
    for &s in samples {
        w.write_sample(s)?;
    }
    w.finalize()?;
    // Renamed into place only when whole, so nobody ever picks up half a message.
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn speech(n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| if i % 8 < 4 { 3000 } else { -3000 })
            .collect()
    }

    #[test]
    fn stops_at_max_duration_exactly() {
        let mut r = Recorder::new(1, Duration::from_millis(100), None, None);
        assert_eq!(r.push(&speech(160)), None);
        assert_eq!(r.push(&speech(160)), None);
        assert_eq!(r.push(&speech(160)), None);
        assert_eq!(r.push(&speech(160)), None);
        assert_eq!(r.push(&speech(160)), Some(StopReason::MaxDuration));
        let rec = r.finish(StopReason::MaxDuration);
        assert_eq!(rec.samples.len(), 800);
        assert_eq!(rec.duration(), Duration::from_millis(100));
    }

    #[test]
    fn silence_after_speech_stops_and_is_trimmed() {
        let mut r = Recorder::new(
            2,
            Duration::from_secs(60),
            Some(Duration::from_secs(2)),
            None,
        );
        for _ in 0..50 {
            assert_eq!(r.push(&speech(160)), None);
        }
        let silence = [0i16; 160];
        let mut stop = None;
        for _ in 0..200 {
            stop = r.push(&silence);
            if stop.is_some() {
                break;
            }
        }
        assert_eq!(stop, Some(StopReason::Silence));
        let rec = r.finish(StopReason::Silence);
        // One second of speech plus the half second of tail kept.
        assert_eq!(rec.samples.len(), 8000 + 4000);
    }

    #[test]
    fn terminator_key() {
        let r = Recorder::new(3, Duration::from_secs(5), None, Key::from_char('#'));
        assert_eq!(r.key(Key::from_char('1').unwrap()), None);
        assert_eq!(
            r.key(Key::from_char('#').unwrap()),
            Some(StopReason::Terminator)
        );
    }

    #[test]
    fn wav_is_written_whole() {
        let dir = std::env::temp_dir().join(format!("hotline-rec-{}", std::process::id()));
        let path = dir.join("msg.wav");
        write_wav(&path, &speech(8000)).unwrap();
        let r = hound::WavReader::open(&path).unwrap();
        assert_eq!(r.spec().sample_rate, 8000);
        assert_eq!(r.len(), 8000);
        let _ = std::fs::remove_dir_all(dir);
    }
}
