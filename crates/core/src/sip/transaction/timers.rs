//! SIP timer values (RFC 3261 §17 Table 4, RFC 6026 Timers L and M) derived from T1, T2
//! and T4, and the two timer shapes every transaction uses: a backing-off retransmission
//! timer and a single expiry. Pure arithmetic on `Instant`s handed in by the caller; this
//! module never reads a clock.

use std::fmt;
use std::time::{Duration, Instant};

use thiserror::Error;

/// Whether the transport under a transaction delivers messages itself (TCP, TLS, SCTP) or
/// leaves retransmission to SIP (UDP). Decides which timers exist at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reliability {
    /// UDP: the transaction retransmits and lingers to absorb retransmissions.
    Unreliable,
    /// TCP/TLS/SCTP: no retransmission timers (A, E, G), and Timers D, I, J, K are zero.
    Reliable,
}

impl fmt::Display for Reliability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reliability::Unreliable => "unreliable",
            Reliability::Reliable => "reliable",
        })
    }
}

/// The three base values every other SIP timer derives from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerConfig {
    /// Round-trip time estimate (RFC default 500 ms).
    pub t1: Duration,
    /// Longest retransmission interval for non-INVITE requests and INVITE responses (4 s).
    pub t2: Duration,
    /// Longest time a message stays in the network (5 s).
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// A `TimerConfig` that would make the transaction layer spin or never let go.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TimerConfigError {
    #[error("timer T1 must be between 1 ms and 60 s, found {0:?}")]
    T1OutOfRange(Duration),
    #[error("timer T2 must be at least T1 ({t1:?}) and at most 600 s, found {t2:?}")]
    T2OutOfRange { t1: Duration, t2: Duration },
    #[error("timer T4 must be at most 600 s, found {0:?}")]
    T4OutOfRange(Duration),
}

/// RFC 3261 §17.1.1.2: Timer D is "at least 32 s" whatever T1 is, because it must outlive
/// the server's Timer H, which runs on the server's own T1.
const TIMER_D_FLOOR: Duration = Duration::from_secs(32);

/// The arithmetic below keeps T1, T2 and T4 within the bounds `validate` enforces even
/// when it was skipped: a zero T1 would make retransmission timers fire the instant they
/// are set (the shell would spin), and huge values would overflow `Instant`.
const MIN_T1: Duration = Duration::from_millis(1);
const MAX_T1: Duration = Duration::from_secs(60);
const MAX_T2_T4: Duration = Duration::from_secs(600);

impl TimerConfig {
    /// The defaults with another T1 (`sip.t1` in the configuration); T2 is raised to T1
    /// when T1 is the larger.
    pub fn with_t1(t1: Duration) -> TimerConfig {
        let d = TimerConfig::default();
        TimerConfig {
            t1,
            t2: d.t2.max(t1),
            ..d
        }
    }

    /// Checks the values a configuration file may supply.
    pub fn validate(&self) -> Result<(), TimerConfigError> {
        if self.t1 < MIN_T1 || self.t1 > MAX_T1 {
            return Err(TimerConfigError::T1OutOfRange(self.t1));
        }
        if self.t2 < self.t1 || self.t2 > MAX_T2_T4 {
            return Err(TimerConfigError::T2OutOfRange {
                t1: self.t1,
                t2: self.t2,
            });
        }
        if self.t4 > MAX_T2_T4 {
            return Err(TimerConfigError::T4OutOfRange(self.t4));
        }
        Ok(())
    }

    fn t1(&self) -> Duration {
        self.t1.clamp(MIN_T1, MAX_T1)
    }

    fn t2(&self) -> Duration {
        self.t2.clamp(self.t1(), MAX_T2_T4)
    }

    fn t4(&self) -> Duration {
        self.t4.min(MAX_T2_T4)
    }

    fn sixty_four_t1(&self) -> Duration {
        self.t1().saturating_mul(64)
    }

    /// INVITE request retransmission, first interval (then doubling without cap).
    pub fn timer_a(&self, reliability: Reliability) -> Option<Duration> {
        unreliable_only(reliability, self.t1())
    }

    /// INVITE client transaction timeout while Calling.
    pub fn timer_b(&self) -> Duration {
        self.sixty_four_t1()
    }

    /// How long an INVITE client transaction absorbs retransmitted non-2xx finals.
    pub fn timer_d(&self, reliability: Reliability) -> Duration {
        match reliability {
            Reliability::Unreliable => self.sixty_four_t1().max(TIMER_D_FLOOR),
            Reliability::Reliable => Duration::ZERO,
        }
    }

    /// Non-INVITE request retransmission, first interval (then doubling up to T2).
    pub fn timer_e(&self, reliability: Reliability) -> Option<Duration> {
        unreliable_only(reliability, self.t1())
    }

    /// Non-INVITE client transaction timeout.
    pub fn timer_f(&self) -> Duration {
        self.sixty_four_t1()
    }

    /// INVITE non-2xx final response retransmission, first interval (doubling up to T2).
    pub fn timer_g(&self, reliability: Reliability) -> Option<Duration> {
        unreliable_only(reliability, self.t1())
    }

    /// How long an INVITE server transaction waits for the ACK of its non-2xx final.
    pub fn timer_h(&self) -> Duration {
        self.sixty_four_t1()
    }

    /// How long an INVITE server transaction absorbs ACK retransmissions.
    pub fn timer_i(&self, reliability: Reliability) -> Duration {
        zero_if_reliable(reliability, self.t4())
    }

    /// How long a non-INVITE server transaction absorbs request retransmissions.
    pub fn timer_j(&self, reliability: Reliability) -> Duration {
        zero_if_reliable(reliability, self.sixty_four_t1())
    }

    /// How long a non-INVITE client transaction absorbs response retransmissions.
    pub fn timer_k(&self, reliability: Reliability) -> Duration {
        zero_if_reliable(reliability, self.t4())
    }

    /// RFC 6026: how long an INVITE server transaction stays Accepted after a 2xx.
    pub fn timer_l(&self) -> Duration {
        self.sixty_four_t1()
    }

    /// RFC 6026: how long an INVITE client transaction stays Accepted after a 2xx.
    pub fn timer_m(&self) -> Duration {
        self.sixty_four_t1()
    }

    /// The 2xx retransmission give-up time of RFC 3261 §13.3.1.4.
    pub fn uas_2xx_give_up(&self) -> Duration {
        self.sixty_four_t1()
    }

    /// How long a UAC waits for the final response of an INVITE it cancelled before it
    /// considers it cancelled anyway (RFC 3261 §9.1).
    pub fn cancel_give_up(&self) -> Duration {
        self.sixty_four_t1()
    }

    /// The first interval of every retransmission schedule.
    pub(crate) fn first_interval(&self) -> Duration {
        self.t1()
    }

    /// The next interval of Timers E and G and of 2xx retransmission: doubled, capped at T2.
    pub(crate) fn doubled_capped(&self, interval: Duration) -> Duration {
        interval.saturating_mul(2).min(self.t2())
    }

    /// The interval of Timer E once a provisional response arrived.
    pub(crate) fn t2_interval(&self) -> Duration {
        self.t2()
    }
}

fn unreliable_only(reliability: Reliability, d: Duration) -> Option<Duration> {
    match reliability {
        Reliability::Unreliable => Some(d),
        Reliability::Reliable => None,
    }
}

fn zero_if_reliable(reliability: Reliability, d: Duration) -> Duration {
    match reliability {
        Reliability::Unreliable => d,
        Reliability::Reliable => Duration::ZERO,
    }
}

/// `now + d`. An `Instant` overflow can only come from an absurd, unvalidated duration;
/// firing at once then ends the transaction instead of keeping it forever.
pub(crate) fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d).unwrap_or(now)
}

/// How the next retransmission interval follows from the current one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backoff {
    /// Timer A: doubles without limit (Timer B ends it).
    Double,
    /// Timers E and G, and 2xx retransmission: doubles up to T2.
    DoubleCappedAtT2,
    /// Timer E in Proceeding: always T2.
    FixedT2,
}

/// One retransmission timer: when it fires next and the interval it was last set with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Retransmit {
    pub(crate) at: Instant,
    pub(crate) interval: Duration,
    pub(crate) backoff: Backoff,
}

impl Retransmit {
    pub(crate) fn start(now: Instant, first: Duration, backoff: Backoff) -> Self {
        Retransmit {
            at: after(now, first),
            interval: first,
            backoff,
        }
    }

    /// Re-arms after firing. The next interval counts from `now`, the moment the
    /// retransmission actually went out, so a late wake-up never causes a burst of
    /// catch-up retransmissions.
    pub(crate) fn rearm(&mut self, now: Instant, timers: &TimerConfig) {
        self.interval = match self.backoff {
            Backoff::Double => self.interval.saturating_mul(2),
            Backoff::DoubleCappedAtT2 => timers.doubled_capped(self.interval),
            Backoff::FixedT2 => timers.t2_interval(),
        };
        self.at = after(now, self.interval);
    }
}

/// The earlier of two optional deadlines.
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

pub(crate) fn is_due(deadline: Option<Instant>, now: Instant) -> bool {
    deadline.is_some_and(|d| d <= now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn defaults_match_rfc_3261_table_4() {
        let t = TimerConfig::default();
        assert_eq!(t.validate(), Ok(()));
        let u = Reliability::Unreliable;
        let r = Reliability::Reliable;
        assert_eq!(t.timer_a(u), Some(ms(500)));
        assert_eq!(t.timer_a(r), None);
        assert_eq!(t.timer_b(), ms(32_000));
        assert_eq!(t.timer_d(u), ms(32_000));
        assert_eq!(t.timer_d(r), Duration::ZERO);
        assert_eq!(t.timer_e(u), Some(ms(500)));
        assert_eq!(t.timer_e(r), None);
        assert_eq!(t.timer_f(), ms(32_000));
        assert_eq!(t.timer_g(u), Some(ms(500)));
        assert_eq!(t.timer_g(r), None);
        assert_eq!(t.timer_h(), ms(32_000));
        assert_eq!(t.timer_i(u), ms(5_000));
        assert_eq!(t.timer_i(r), Duration::ZERO);
        assert_eq!(t.timer_j(u), ms(32_000));
        assert_eq!(t.timer_j(r), Duration::ZERO);
        assert_eq!(t.timer_k(u), ms(5_000));
        assert_eq!(t.timer_k(r), Duration::ZERO);
        assert_eq!(t.timer_l(), ms(32_000));
        assert_eq!(t.timer_m(), ms(32_000));
    }

    #[test]
    fn timer_d_never_below_32_seconds() {
        let t = TimerConfig {
            t1: ms(100),
            ..TimerConfig::default()
        };
        assert_eq!(t.timer_d(Reliability::Unreliable), ms(32_000));
        let t = TimerConfig {
            t1: ms(1_000),
            ..TimerConfig::default()
        };
        assert_eq!(t.timer_d(Reliability::Unreliable), ms(64_000));
    }

    #[test]
    fn validate_rejects_spinning_or_endless_values() {
        let zero = TimerConfig {
            t1: Duration::ZERO,
            ..TimerConfig::default()
        };
        assert_eq!(
            zero.validate(),
            Err(TimerConfigError::T1OutOfRange(Duration::ZERO))
        );
        let inverted = TimerConfig {
            t1: ms(5_000),
            t2: ms(4_000),
            ..TimerConfig::default()
        };
        assert!(matches!(
            inverted.validate(),
            Err(TimerConfigError::T2OutOfRange { .. })
        ));
        let huge = TimerConfig {
            t4: Duration::from_secs(u64::MAX),
            ..TimerConfig::default()
        };
        assert!(matches!(
            huge.validate(),
            Err(TimerConfigError::T4OutOfRange(_))
        ));
        // Even unvalidated, nothing panics and intervals stay positive.
        assert_eq!(zero.timer_a(Reliability::Unreliable), Some(ms(1)));
        let absurd = TimerConfig {
            t1: Duration::MAX,
            t2: Duration::MAX,
            t4: Duration::MAX,
        };
        assert_eq!(absurd.timer_b(), Duration::from_secs(64 * 60));
        assert_eq!(
            absurd.timer_i(Reliability::Unreliable),
            Duration::from_secs(600)
        );
        let now = Instant::now();
        assert_eq!(after(now, Duration::MAX), now);
    }

    #[test]
    fn backoff_shapes() {
        let t = TimerConfig::default();
        let now = Instant::now();
        let mut a = Retransmit::start(now, ms(500), Backoff::Double);
        let mut e = Retransmit::start(now, ms(500), Backoff::DoubleCappedAtT2);
        let mut a_seen = Vec::new();
        let mut e_seen = Vec::new();
        for _ in 0..6 {
            a_seen.push(a.interval);
            e_seen.push(e.interval);
            a.rearm(now, &t);
            e.rearm(now, &t);
        }
        assert_eq!(a_seen, [500, 1000, 2000, 4000, 8000, 16000].map(ms));
        assert_eq!(e_seen, [500, 1000, 2000, 4000, 4000, 4000].map(ms));
        e.backoff = Backoff::FixedT2;
        e.rearm(now, &t);
        assert_eq!(e.interval, ms(4000));
    }
}
