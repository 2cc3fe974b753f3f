//! One scripted call of the load: dial, hear the welcome start, press a language key while
//! it plays (type-ahead: the engine must go straight to the main menu in that language),
//! then keep asking for the menu again until the hold time is over, and hang up. Every
//! key must be followed by the first frame of the expected prompt within a time limit, or
//! it counts as lost. Every wait is bounded, so a call always ends by itself.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::report::Histogram;
use crate::caller::media::CallMedia;
use crate::caller::{CallerError, KeyMethod, Offer, Phone};
use crate::config::Protocol;
use crate::media::dtmf::Key;
use crate::media::prompt::Prompt;

/// The nominal spacing of RTP frames.
const FRAME_US: u64 = 20_000;

/// What every call of a run does; shared by all call tasks.
#[derive(Debug, Clone)]
pub struct Script {
    pub target: SocketAddr,
    pub user: String,
    /// Listening time per call, from the 200 on.
    pub hold: Duration,
    /// When the first key goes, counted from the first frame of the welcome.
    pub first_key_after: Duration,
    /// Spacing of the later keys.
    pub key_interval: Duration,
    /// A key whose expected prompt has not started by then is lost.
    pub key_timeout: Duration,
    /// How long the start of each call is left out of the gap figures.
    pub warmup: Duration,
    pub setup_timeout: Duration,
    pub welcome: Prompt,
    /// The language keys and the menu each must lead to; call `i` uses entry `i % len`.
    pub languages: Vec<(Key, Prompt)>,
    /// Pressed in the menu to hear it again.
    pub repeat_key: Key,
}

/// How the calls of a run are doing, for the conductor that picks the measuring window.
#[derive(Debug, Default)]
pub struct Progress {
    /// Calls whose set-up ended, either way.
    pub settled: AtomicUsize,
    /// Calls currently up.
    pub up: AtomicUsize,
    pub changed: Notify,
    /// The earliest moment a call will stop listening.
    pub first_end: Mutex<Option<Instant>>,
    /// The longest `Retry-After` (seconds) a refusal has carried so far.
    pub retry_after_max: AtomicU32,
}

impl Progress {
    fn settle(&self) {
        self.settled.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
    }

    fn note_end(&self, end: Instant) {
        let mut g = self.first_end.lock().unwrap_or_else(|e| e.into_inner());
        if g.is_none_or(|e| end < e) {
            *g = Some(end);
        }
    }

    pub fn first_end(&self) -> Option<Instant> {
        *self.first_end.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What one call found.
#[derive(Debug, Default)]
pub struct CallResult {
    pub set_up: bool,
    /// The engine refused the call with 503 (over its limits): not a failure, when the
    /// run means to overload it.
    pub refused: bool,
    /// The refusal's `Retry-After`, seconds.
    pub retry_after: Option<u32>,
    /// Why the call failed, if it did.
    pub failure: Option<String>,
    pub setup_us: Option<u32>,
    pub welcome_heard: bool,
    pub keys_pressed: u64,
    pub keys_lost: u64,
    pub key_latency: Histogram,
    /// Inter-arrival gaps after the warm-up.
    pub gaps: Histogram,
    pub packets_received: u64,
    pub packets_expected: u64,
}

/// Polling period for "has the prompt started yet": the time itself comes from the media
/// thread, so this only sets how soon the script moves on, not the precision.
const POLL: Duration = Duration::from_millis(50);

/// Places call number `index` and runs the script to its end.
pub async fn place(index: usize, script: Arc<Script>, progress: Arc<Progress>) -> CallResult {
    let mut r = CallResult::default();
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let media = match CallMedia::bind(local, false) {
        Ok(m) => m,
        Err(e) => {
            progress.settle();
            r.failure = Some(format!("binding an RTP socket: {e}"));
            return r;
        }
    };
    // Armed before dialling: the engine may send the welcome's first frame before this task
    // is scheduled again after the 200. Only PCMU is offered, so the armed frame (chosen
    // with the socket's initial codec, PCMU) is the one that will arrive.
    media.watch(&script.welcome);
    let dialled = Instant::now();
    let established = async {
        let mut phone = Phone::new(Protocol::Udp, script.target).await?;
        let est = phone
            .call(&script.user, &media, Offer::Codecs(vec![0]))
            .await?;
        Ok::<_, CallerError>((phone, est))
    };
    let outcome = tokio::time::timeout(script.setup_timeout, established).await;
    progress.settle();
    let (mut phone, mut est) = match outcome {
        Ok(Ok(x)) => x,
        Ok(Err(CallerError::Refused {
            status: 503,
            retry_after,
            ..
        })) => {
            media.close();
            r.refused = true;
            r.retry_after = retry_after;
            if let Some(s) = retry_after {
                progress.retry_after_max.fetch_max(s, Ordering::AcqRel);
            }
            return r;
        }
        Ok(Err(e)) => {
            media.close();
            r.failure = Some(format!("set-up: {}", short(&e.to_string())));
            return r;
        }
        Err(_) => {
            media.close();
            r.failure = Some("set-up: no final answer in time".into());
            return r;
        }
    };
    r.set_up = true;
    r.setup_us = Some(micros(dialled.elapsed()));
    progress.up.fetch_add(1, Ordering::AcqRel);
    let listening = Instant::now();
    let end = listening + script.hold;
    progress.note_end(end);
    media.connect(
        est.remote_rtp,
        est.codec,
        est.payload_type,
        est.telephone_event_pt,
    );

    // The script runs until the hold is over; meanwhile the engine's own BYE (a flow that
    // hangs up) is answered at once, and the call counts as failed: the script expects to
    // hang up itself.
    let listen = async {
        if est.telephone_event_pt.is_none() {
            r.failure = Some("the answer has no telephone-event".into());
        } else {
            converse(index, &script, &media, listening, end, &mut r).await;
        }
        sleep_until(end).await;
    };
    let hung_up_by_engine = tokio::select! {
        () = listen => false,
        bye = phone.expect_bye(end.saturating_duration_since(Instant::now())) => bye.is_ok(),
    };
    let stats = media.stats();
    media.close();
    steady_gaps(&stats.gaps_us, script.warmup, &mut r);
    if stats.packets_in == 0 && r.failure.is_none() {
        r.failure = Some("no RTP received".into());
    }
    if hung_up_by_engine {
        progress.up.fetch_sub(1, Ordering::AcqRel);
        r.failure.get_or_insert_with(|| {
            format!(
                "the engine hung up after {:.0} s",
                listening.elapsed().as_secs_f64()
            )
        });
        return r;
    }
    let bye = tokio::time::timeout(Duration::from_secs(12), phone.hang_up(&mut est)).await;
    progress.up.fetch_sub(1, Ordering::AcqRel);
    if let Some(f) = bye_failure(bye) {
        r.failure.get_or_insert(f);
    }
    r
}

/// The keys of one call: a language key during the welcome, then the repeat key.
async fn converse(
    index: usize,
    script: &Script,
    media: &CallMedia,
    listening: Instant,
    end: Instant,
    r: &mut CallResult,
) {
    let welcome_at = wait_seen(media, (listening + Duration::from_secs(3)).min(end)).await;
    r.welcome_heard = welcome_at.is_some();
    if !r.welcome_heard {
        r.failure = Some("the welcome prompt did not start".into());
    }
    let Some((first_key, menu)) = script.languages.get(index % script.languages.len().max(1))
    else {
        return;
    };
    let mut key = *first_key;
    let mut next = welcome_at.unwrap_or(listening) + script.first_key_after;
    // Bounded: each round moves `next` forward by at least the interval, and stops short
    // of the end.
    while next + script.key_timeout <= end {
        sleep_until(next).await;
        media.watch(menu);
        let pressed = Instant::now();
        media.press(key, KeyMethod::Rfc4733);
        r.keys_pressed += 1;
        match wait_seen(media, pressed + script.key_timeout).await {
            Some(t) => r
                .key_latency
                .record(micros(t.saturating_duration_since(pressed))),
            None => r.keys_lost += 1,
        }
        key = script.repeat_key;
        next = (pressed + script.key_interval).max(Instant::now());
    }
}

/// Waits for the watched frame; its arrival time, or None at `deadline`.
async fn wait_seen(media: &CallMedia, deadline: Instant) -> Option<Instant> {
    loop {
        if let Some(t) = media.watch_seen() {
            return Some(t);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        tokio::time::sleep(POLL.min(deadline - now)).await;
    }
}

async fn sleep_until(t: Instant) {
    tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await;
}

/// Leaves out the gaps of the first `warmup` of the call, records the rest, and counts the
/// packets the rest spans: one per 20 ms of time covered.
fn steady_gaps(gaps_us: &[u32], warmup: Duration, r: &mut CallResult) {
    let skip = warmup.as_micros() as u64;
    let mut elapsed = 0u64;
    let mut span = 0u64;
    for &g in gaps_us {
        if elapsed < skip {
            elapsed += u64::from(g);
            continue;
        }
        r.gaps.record(g);
        r.packets_received += 1;
        span += u64::from(g);
    }
    r.packets_expected += (span + FRAME_US / 2) / FRAME_US;
}

fn micros(d: Duration) -> u32 {
    d.as_micros().min(u128::from(u32::MAX)) as u32
}

/// Keeps failure reasons short, so that equal failures count together in the report (the
/// caller's errors name the request, not the call).
/// An error message cut to a length that groups alike failures in the report.
pub(super) fn short(msg: &str) -> String {
    msg.chars().take(120).collect()
}

/// What went wrong with a scripted caller's hang-up, if anything.
pub(super) fn bye_failure(
    bye: Result<
        Result<crate::sip::message::Response, crate::caller::CallerError>,
        tokio::time::error::Elapsed,
    >,
) -> Option<String> {
    match bye {
        Ok(Ok(resp)) if resp.status == 200 => None,
        Ok(Ok(resp)) => Some(format!("BYE answered {}", resp.status)),
        Ok(Err(e)) => Some(format!("BYE: {}", short(&e.to_string()))),
        Err(_) => Some("BYE: no answer".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_is_left_out_and_the_rest_counted() {
        let mut r = CallResult::default();
        // 60 gaps of 20 ms: the first 50 (1 s) are warm-up.
        let gaps = vec![20_000u32; 60];
        steady_gaps(&gaps, Duration::from_secs(1), &mut r);
        assert_eq!(r.packets_received, 10);
        assert_eq!(r.packets_expected, 10);
        assert_eq!(r.gaps.count(), 10);
    }

    #[test]
    fn a_missing_frame_shows_as_expected_but_not_received() {
        let mut r = CallResult::default();
        let gaps = [20_000, 40_000, 20_000];
        steady_gaps(&gaps, Duration::ZERO, &mut r);
        assert_eq!(r.packets_received, 3);
        assert_eq!(r.packets_expected, 4);
    }
}
