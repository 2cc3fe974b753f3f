//! The UAS core's 2xx retransmission (RFC 3261 §13.3.1.4): after answering an INVITE, the
//! 2xx is resent at T1, 2*T1, 4*T1... capped at T2 until the ACK arrives, on every
//! transport (hop-by-hop reliability says nothing about end-to-end delivery through
//! proxies); at 64*T1 without an ACK the dialog must be ended with a BYE. This machine only
//! keeps the schedule: the dialog layer feeds it the ACK and acts on `GaveUp`.

use std::time::{Duration, Instant};

use super::timers::{TimerConfig, after, earliest};

/// What the retransmitter asks for when its timer fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uas2xxAction<M> {
    /// Hand this 2xx to the transport again.
    Retransmit(M),
    /// 64*T1 passed without an ACK: confirm and then end the dialog with a BYE.
    GaveUp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    Acked,
    GaveUp,
}

/// Retransmits one 2xx to one INVITE until it is acknowledged.
#[derive(Debug, Clone)]
pub struct Uas2xxRetransmitter<M> {
    response: M,
    timers: TimerConfig,
    phase: Phase,
    interval: Duration,
    next_send: Instant,
    give_up_at: Instant,
}

impl<M: Clone> Uas2xxRetransmitter<M> {
    /// `sent_at` is when the 2xx was first handed to the transport; the caller sends that
    /// first copy itself (through the INVITE server transaction).
    pub fn new(sent_at: Instant, response: M, timers: &TimerConfig) -> Self {
        let first = timers.first_interval();
        Uas2xxRetransmitter {
            response,
            timers: *timers,
            phase: Phase::Running,
            interval: first,
            next_send: after(sent_at, first),
            give_up_at: after(sent_at, timers.uas_2xx_give_up()),
        }
    }

    /// The 2xx being retransmitted.
    pub fn response(&self) -> &M {
        &self.response
    }

    /// When `handle_timeout` next has work to do; None once acknowledged or given up.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Running => earliest(Some(self.next_send), Some(self.give_up_at)),
            Phase::Acked | Phase::GaveUp => None,
        }
    }

    /// At most one action per call: a late wake-up sends one copy, not a burst, and if
    /// the give-up time has passed that wins.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Uas2xxAction<M>> {
        if self.phase != Phase::Running {
            return None;
        }
        if self.give_up_at <= now {
            self.phase = Phase::GaveUp;
            return Some(Uas2xxAction::GaveUp);
        }
        if self.next_send <= now {
            self.interval = self.timers.doubled_capped(self.interval);
            self.next_send = after(now, self.interval);
            return Some(Uas2xxAction::Retransmit(self.response.clone()));
        }
        None
    }

    /// The ACK for this 2xx arrived: stop.
    pub fn ack_received(&mut self) {
        if self.phase == Phase::Running {
            self.phase = Phase::Acked;
        }
    }

    pub fn is_acked(&self) -> bool {
        self.phase == Phase::Acked
    }

    pub fn has_given_up(&self) -> bool {
        self.phase == Phase::GaveUp
    }

    /// True once there is nothing left to do (acknowledged or given up).
    pub fn is_done(&self) -> bool {
        self.phase != Phase::Running
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::test_support::Clock;

    fn run(r: &mut Uas2xxRetransmitter<&'static str>, clock: &Clock) -> Vec<(f64, bool)> {
        let mut seen = Vec::new();
        while let Some(at) = r.poll_timeout() {
            match r.handle_timeout(at) {
                Some(Uas2xxAction::Retransmit(m)) => {
                    assert_eq!(m, "200");
                    seen.push((clock.secs(at), true));
                }
                Some(Uas2xxAction::GaveUp) => seen.push((clock.secs(at), false)),
                None => panic!("woken at {} for nothing", clock.secs(at)),
            }
        }
        seen
    }

    #[test]
    fn schedule_t1_doubling_capped_at_t2_gives_up_at_64_t1() {
        // The schedule is the same whatever the transport: the machine does not ask.
        let clock = Clock::new();
        let mut r = Uas2xxRetransmitter::new(clock.at(0.0), "200", &TimerConfig::default());
        let seen = run(&mut r, &clock);
        let mut expected: Vec<_> = [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
            .into_iter()
            .map(|s| (s, true))
            .collect();
        expected.push((32.0, false));
        assert_eq!(seen, expected);
        let gaps: Vec<f64> = seen.windows(2).map(|w| w[1].0 - w[0].0).collect();
        assert_eq!(gaps[..5], [1.0, 2.0, 4.0, 4.0, 4.0]);
        assert!(r.has_given_up() && r.is_done() && !r.is_acked());
        assert_eq!(r.handle_timeout(clock.at(100.0)), None);
    }

    #[test]
    fn ack_stops_it() {
        let clock = Clock::new();
        let mut r = Uas2xxRetransmitter::new(clock.at(10.0), "200", &TimerConfig::default());
        assert_eq!(r.poll_timeout(), Some(clock.at(10.5)));
        assert_eq!(r.handle_timeout(clock.at(10.4)), None, "not due yet");
        assert_eq!(
            r.handle_timeout(clock.at(10.5)),
            Some(Uas2xxAction::Retransmit("200"))
        );
        assert_eq!(r.poll_timeout(), Some(clock.at(11.5)));
        r.ack_received();
        assert!(r.is_acked() && r.is_done());
        assert_eq!(r.poll_timeout(), None);
        assert_eq!(r.handle_timeout(clock.at(50.0)), None);
        assert_eq!(*r.response(), "200");
    }

    #[test]
    fn late_wakeup_past_give_up_reports_gave_up_only() {
        let clock = Clock::new();
        let mut r = Uas2xxRetransmitter::new(clock.at(0.0), "200", &TimerConfig::default());
        assert_eq!(r.handle_timeout(clock.at(40.0)), Some(Uas2xxAction::GaveUp));
        r.ack_received();
        assert!(r.has_given_up(), "a late ACK does not undo giving up");
    }
}
