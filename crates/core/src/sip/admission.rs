//! Whether the engine takes one more call: the admission controller, as a pure state
//! machine.
//!
//! Owns the limits on new calls (`limits.max_calls`, `limits.new_calls_per_second` with its
//! burst, the media clock's lateness), the token bucket of the rate limit and the draining
//! flag of a graceful shutdown. The endpoint asks [`Admission::admit`] about every INVITE
//! that starts a new call, before any call state or RTP port exists, and
//! [`Admission::refusing`] when an OPTIONS outside a dialog asks whether the engine takes
//! calls. Requests inside a dialog never come here: a call once admitted keeps going.
//!
//! It must not answer, log or count anything outside itself, read a clock or draw random
//! numbers: time and the engine's load come in as arguments, and the spread of a refusal's
//! `Retry-After` is drawn by the caller inside the range [`Refusal::retry_after`] gives.

use std::time::{Duration, Instant};

/// The limits; [`Default`] holds the defaults of `limits.*` in `hotline.yaml`.
#[derive(Debug, Clone, PartialEq)]
pub struct AdmissionConfig {
    /// Calls in progress beyond which new calls are refused. The default, 1,500, is the
    /// largest count `docs/performance.md` measured meeting every media target with one
    /// media worker on a quiet machine (1,750) less a margin for other work on the host.
    pub max_calls: usize,
    /// New calls per second, on average (the token bucket's refill rate).
    pub calls_per_second: f64,
    /// New calls that may arrive at once after a quiet spell (the bucket's size).
    pub burst: u32,
    /// The media clock's smoothed lateness beyond which new calls are refused: the calls
    /// in progress need the clock's time more than a new caller does.
    pub max_lateness: Duration,
}

impl Default for AdmissionConfig {
    fn default() -> AdmissionConfig {
        AdmissionConfig {
            max_calls: DEFAULT_MAX_CALLS,
            // `docs/performance.md`: ramps of up to 250 calls/s were set up with INVITE →
            // 200 under 20 ms at p99; 200/s leaves a fifth of that as margin.
            calls_per_second: 200.0,
            burst: 200,
            max_lateness: Duration::from_millis(10),
        }
    }
}

// The rate is never NaN (the configuration accepts only numbers above 0), so equality is
// total and the start-only comparison of configurations can hold this.
impl Eq for AdmissionConfig {}

/// `limits.max_calls` when not given (see [`AdmissionConfig::max_calls`]).
pub const DEFAULT_MAX_CALLS: usize = 1500;

/// Why a new call was refused; each is a label of the refusal counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// `max_calls` calls are in progress.
    MaxCalls,
    /// New calls arrive faster than `new_calls_per_second` allows.
    Rate,
    /// The media clock runs late.
    Lateness,
    /// No RTP port is free.
    Ports,
    /// The engine is shutting down.
    Draining,
}

impl Refusal {
    pub const ALL: [Refusal; 5] = [
        Refusal::MaxCalls,
        Refusal::Rate,
        Refusal::Lateness,
        Refusal::Ports,
        Refusal::Draining,
    ];

    /// The name logs and metrics use.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::MaxCalls => "max_calls",
            Refusal::Rate => "rate",
            Refusal::Lateness => "lateness",
            Refusal::Ports => "ports",
            Refusal::Draining => "draining",
        }
    }

    fn index(self) -> usize {
        match self {
            Refusal::MaxCalls => 0,
            Refusal::Rate => 1,
            Refusal::Lateness => 2,
            Refusal::Ports => 3,
            Refusal::Draining => 4,
        }
    }

    /// The seconds of `Retry-After` to choose from, first and last included. The spread
    /// keeps refused callers from coming back all at once (RFC 3261 §21.5.4). A rate
    /// refusal clears within a second or two, so its callers come back soon; an engine
    /// that is full or late needs calls to end first; one that drains is going away.
    pub fn retry_after(self) -> (u32, u32) {
        match self {
            Refusal::Rate => (1, 5),
            Refusal::MaxCalls | Refusal::Lateness | Refusal::Ports => (5, 30),
            Refusal::Draining => (60, 120),
        }
    }
}

/// What the engine carries when a decision is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Load {
    /// Calls in progress.
    pub calls: usize,
    /// The media clock's smoothed lateness (the worst worker's).
    pub lateness: Duration,
    /// RTP ports free in the pool.
    pub ports_free: usize,
}

/// The admission controller. See the module documentation.
#[derive(Debug)]
pub struct Admission {
    cfg: AdmissionConfig,
    /// Calls the bucket holds now, as of `filled`.
    tokens: f64,
    filled: Option<Instant>,
    draining: bool,
    refused: [u64; 5],
    admitted: u64,
}

impl Admission {
    pub fn new(cfg: AdmissionConfig) -> Admission {
        Admission {
            tokens: f64::from(cfg.burst.max(1)),
            cfg,
            filled: None,
            draining: false,
            refused: [0; 5],
            admitted: 0,
        }
    }

    pub fn config(&self) -> &AdmissionConfig {
        &self.cfg
    }

    /// Starts (or, for tests and an aborted stop, ends) a drain: while it lasts every new
    /// call is refused.
    pub fn set_draining(&mut self, draining: bool) {
        self.draining = draining;
    }

    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// A new call asks to come in at `now`: takes one token of the bucket and admits it, or
    /// says why not (and counts the refusal). The first reason that holds is given, the
    /// most lasting first.
    pub fn admit(&mut self, now: Instant, load: Load) -> Result<(), Refusal> {
        self.refill(now);
        let verdict = match self.limit_reached(load) {
            Some(r) => Err(r),
            None if self.tokens >= 1.0 => {
                self.tokens -= 1.0;
                Ok(())
            }
            None => Err(Refusal::Rate),
        };
        match verdict {
            Ok(()) => self.admitted += 1,
            Err(r) => self.refused[r.index()] += 1,
        }
        verdict
    }

    /// Whether a new call arriving at `now` would be refused, and why; nothing is taken or
    /// counted (an OPTIONS probe asks this). An empty bucket counts: a proxy that keeps
    /// sending faster than the rate should send elsewhere for a moment.
    pub fn refusing(&mut self, now: Instant, load: Load) -> Option<Refusal> {
        self.refill(now);
        self.limit_reached(load)
            .or((self.tokens < 1.0).then_some(Refusal::Rate))
    }

    /// New calls refused so far for `reason`.
    pub fn refused(&self, reason: Refusal) -> u64 {
        self.refused[reason.index()]
    }

    /// New calls admitted so far.
    pub fn admitted(&self) -> u64 {
        self.admitted
    }

    fn limit_reached(&self, load: Load) -> Option<Refusal> {
        if self.draining {
            Some(Refusal::Draining)
        } else if load.calls >= self.cfg.max_calls {
            Some(Refusal::MaxCalls)
        } else if load.ports_free == 0 {
            Some(Refusal::Ports)
        } else if load.lateness > self.cfg.max_lateness {
            Some(Refusal::Lateness)
        } else {
            None
        }
    }

    fn refill(&mut self, now: Instant) {
        let size = f64::from(self.cfg.burst.max(1));
        if let Some(then) = self.filled {
            let elapsed = now.saturating_duration_since(then).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.cfg.calls_per_second).min(size);
        }
        // A clock that went backwards refills nothing and moves the mark back.
        self.filled = Some(match self.filled {
            Some(then) if then > now => then,
            _ => now,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle() -> Load {
        Load {
            calls: 0,
            lateness: Duration::ZERO,
            ports_free: 100,
        }
    }

    fn cfg(rate: f64, burst: u32) -> AdmissionConfig {
        AdmissionConfig {
            max_calls: 10,
            calls_per_second: rate,
            burst,
            max_lateness: Duration::from_millis(10),
        }
    }

    #[test]
    fn the_burst_passes_then_the_rate_refills_the_bucket() {
        let t0 = Instant::now();
        let mut a = Admission::new(cfg(10.0, 5));
        for i in 0..5 {
            assert_eq!(a.admit(t0, idle()), Ok(()), "call {i} of the burst");
        }
        assert_eq!(a.admit(t0, idle()), Err(Refusal::Rate));
        // 10 per second: one token every 100 ms.
        assert_eq!(
            a.admit(t0 + Duration::from_millis(99), idle()),
            Err(Refusal::Rate)
        );
        assert_eq!(a.admit(t0 + Duration::from_millis(100), idle()), Ok(()));
        assert_eq!(
            a.admit(t0 + Duration::from_millis(150), idle()),
            Err(Refusal::Rate)
        );
        // A long quiet spell fills the bucket to its size, not beyond.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..5 {
            assert_eq!(a.admit(later, idle()), Ok(()));
        }
        assert_eq!(a.admit(later, idle()), Err(Refusal::Rate));
        assert_eq!(a.admitted(), 11);
        assert_eq!(a.refused(Refusal::Rate), 4);
    }

    #[test]
    fn a_steady_rate_below_the_limit_is_never_refused() {
        let t0 = Instant::now();
        let mut a = Admission::new(cfg(100.0, 1));
        // 99 calls a second for a minute: one every 10.1 ms.
        for i in 0..(99 * 60) {
            let at = t0 + Duration::from_micros(10_101 * i);
            assert_eq!(a.admit(at, idle()), Ok(()), "call {i}");
        }
    }

    #[test]
    fn max_calls_refuses_and_frees_with_the_calls() {
        let t0 = Instant::now();
        let mut a = Admission::new(cfg(1000.0, 100));
        let full = Load {
            calls: 10,
            ..idle()
        };
        assert_eq!(a.admit(t0, full), Err(Refusal::MaxCalls));
        assert_eq!(a.refusing(t0, full), Some(Refusal::MaxCalls));
        let one_less = Load { calls: 9, ..idle() };
        assert_eq!(a.refusing(t0, one_less), None);
        assert_eq!(a.admit(t0, one_less), Ok(()));
        assert_eq!(a.refused(Refusal::MaxCalls), 1);
    }

    #[test]
    fn a_refusal_takes_no_token() {
        let t0 = Instant::now();
        let mut a = Admission::new(cfg(1.0, 1));
        let full = Load {
            calls: 10,
            ..idle()
        };
        for _ in 0..50 {
            assert_eq!(a.admit(t0, full), Err(Refusal::MaxCalls));
        }
        assert_eq!(a.admit(t0, idle()), Ok(()));
    }

    #[test]
    fn lateness_and_ports_are_signals_of_their_own() {
        let t0 = Instant::now();
        let mut a = Admission::new(cfg(1000.0, 100));
        let late = Load {
            lateness: Duration::from_millis(11),
            ..idle()
        };
        assert_eq!(a.admit(t0, late), Err(Refusal::Lateness));
        let just = Load {
            lateness: Duration::from_millis(10),
            ..idle()
        };
        assert_eq!(a.admit(t0, just), Ok(()));
        let no_ports = Load {
            ports_free: 0,
            ..idle()
        };
        assert_eq!(a.admit(t0, no_ports), Err(Refusal::Ports));
        assert_eq!(a.refusing(t0, no_ports), Some(Refusal::Ports));
        assert_eq!(a.refused(Refusal::Lateness), 1);
        assert_eq!(a.refused(Refusal::Ports), 1);
    }

    #[test]
    fn draining_refuses_everything_and_says_so_first() {
        let t0 = Instant::now();
        let mut a = Admission::new(cfg(1000.0, 100));
        a.set_draining(true);
        assert!(a.is_draining());
        let full = Load {
            calls: 10,
            ..idle()
        };
        assert_eq!(a.admit(t0, idle()), Err(Refusal::Draining));
        assert_eq!(a.admit(t0, full), Err(Refusal::Draining));
        assert_eq!(a.refusing(t0, idle()), Some(Refusal::Draining));
        a.set_draining(false);
        assert_eq!(a.admit(t0, idle()), Ok(()));
    }

    #[test]
    fn options_probes_see_an_empty_bucket_but_take_nothing() {
        let t0 = Instant::now();
        let mut a = Admission::new(cfg(1.0, 2));
        for _ in 0..10 {
            assert_eq!(a.refusing(t0, idle()), None);
        }
        assert_eq!(a.admit(t0, idle()), Ok(()));
        assert_eq!(a.admit(t0, idle()), Ok(()));
        assert_eq!(a.refusing(t0, idle()), Some(Refusal::Rate));
        assert_eq!(a.refusing(t0 + Duration::from_secs(1), idle()), None);
        assert_eq!(a.refused(Refusal::Rate), 0, "probes are not refusals");
    }

    #[test]
    fn a_clock_that_goes_back_refills_nothing() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut a = Admission::new(cfg(10.0, 1));
        assert_eq!(a.admit(t0, idle()), Ok(()));
        assert_eq!(
            a.admit(t0 - Duration::from_secs(5), idle()),
            Err(Refusal::Rate)
        );
        assert_eq!(
            a.admit(t0 + Duration::from_millis(50), idle()),
            Err(Refusal::Rate)
        );
        assert_eq!(a.admit(t0 + Duration::from_millis(100), idle()), Ok(()));
    }

    #[test]
    fn retry_after_ranges_are_ordered_and_never_zero() {
        for r in Refusal::ALL {
            let (lo, hi) = r.retry_after();
            assert!(lo >= 1 && lo <= hi, "{r:?}");
            assert_eq!(Refusal::ALL[r.index()], r);
        }
    }
}
