//! The non-INVITE client transaction (RFC 3261 §17.1.2): sends a request (BYE, CANCEL,
//! OPTIONS...), retransmits it on Timer E until a final response or Timer F, passes
//! responses to the TU, then lingers for Timer K absorbing retransmitted responses.

use std::time::Instant;

use super::timers::{Backoff, Reliability, Retransmit, TimerConfig, after, earliest, is_due};
use super::{Event, State, StatusClass, TransactionError};

/// One non-INVITE client transaction, from the moment its request is first handed to the
/// transport (state Trying).
#[derive(Debug, Clone)]
pub struct ClientNonInvite<M> {
    state: State,
    reliability: Reliability,
    timers: TimerConfig,
    request: Option<M>,
    /// Timer E.
    retransmit: Option<Retransmit>,
    /// Timer F (Trying, Proceeding) or K (Completed).
    expiry: Option<Instant>,
}

impl<M: Clone> ClientNonInvite<M> {
    /// Starts the transaction: the request goes out now.
    pub fn start(
        now: Instant,
        request: M,
        reliability: Reliability,
        timers: TimerConfig,
        out: &mut Vec<Event<M>>,
    ) -> Self {
        out.push(Event::Transmit(request.clone()));
        ClientNonInvite {
            state: State::Trying,
            reliability,
            timers,
            request: Some(request),
            retransmit: timers
                .timer_e(reliability)
                .map(|e| Retransmit::start(now, e, Backoff::DoubleCappedAtT2)),
            expiry: Some(after(now, timers.timer_f())),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest(self.retransmit.map(|r| r.at), self.expiry)
    }

    /// A response matching this transaction.
    pub fn receive_response(
        &mut self,
        now: Instant,
        status: u16,
        response: M,
        out: &mut Vec<Event<M>>,
    ) -> Result<(), TransactionError> {
        let class = StatusClass::of(status)?;
        if !matches!(self.state, State::Trying | State::Proceeding) {
            // Completed: a retransmitted final, absorbed.
            return Ok(());
        }
        out.push(Event::ResponseToTu {
            status,
            msg: response,
        });
        if class == StatusClass::Provisional {
            self.state = State::Proceeding;
            // The pending Timer E still fires as scheduled; from then on it repeats every
            // T2 (RFC 3261 §17.1.2.2).
            if let Some(retransmit) = &mut self.retransmit {
                retransmit.backoff = Backoff::FixedT2;
            }
            return Ok(());
        }
        self.retransmit = None;
        self.request = None;
        let timer_k = self.timers.timer_k(self.reliability);
        if timer_k.is_zero() {
            self.terminate();
        } else {
            self.state = State::Completed;
            self.expiry = Some(after(now, timer_k));
        }
        Ok(())
    }

    pub fn transport_error(&mut self, out: &mut Vec<Event<M>>) {
        if matches!(self.state, State::Trying | State::Proceeding) {
            out.push(Event::TransportError);
            self.terminate();
        }
    }

    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<Event<M>>) {
        if is_due(self.expiry, now) {
            if matches!(self.state, State::Trying | State::Proceeding) {
                // Timer F: no final response.
                out.push(Event::Timeout);
            }
            self.terminate();
            return;
        }
        if let Some(retransmit) = &mut self.retransmit
            && retransmit.at <= now
        {
            retransmit.rearm(now, &self.timers);
            if let Some(request) = &self.request {
                out.push(Event::Transmit(request.clone()));
            }
        }
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.retransmit = None;
        self.expiry = None;
        self.request = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::test_support::Clock;

    type Txn = ClientNonInvite<&'static str>;

    fn run(t: &mut Txn, clock: &Clock, until: f64) -> Vec<(f64, Event<&'static str>)> {
        let mut seen = Vec::new();
        while let Some(at) = t.poll_timeout() {
            if clock.secs(at) > until {
                break;
            }
            let mut out = Vec::new();
            t.handle_timeout(at, &mut out);
            seen.extend(out.into_iter().map(|e| (clock.secs(at), e)));
        }
        seen
    }

    fn start(clock: &Clock, reliability: Reliability) -> Txn {
        let mut out = Vec::new();
        let t = Txn::start(
            clock.at(0.0),
            "BYE",
            reliability,
            TimerConfig::default(),
            &mut out,
        );
        assert_eq!(out, [Event::Transmit("BYE")]);
        t
    }

    fn sends(times: &[f64]) -> Vec<(f64, Event<&'static str>)> {
        times.iter().map(|&s| (s, Event::Transmit("BYE"))).collect()
    }

    #[test]
    fn timer_e_doubles_to_t2_until_timer_f_udp() {
        let clock = Clock::new();
        let mut t = start(&clock, Reliability::Unreliable);
        let mut expected = sends(&[0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]);
        expected.push((32.0, Event::Timeout));
        assert_eq!(run(&mut t, &clock, 100.0), expected);
        assert!(t.is_terminated());
    }

    #[test]
    fn timer_f_only_over_tcp() {
        let clock = Clock::new();
        let mut t = start(&clock, Reliability::Reliable);
        assert_eq!(run(&mut t, &clock, 100.0), [(32.0, Event::Timeout)]);
    }

    #[test]
    fn proceeding_retransmits_every_t2_and_timer_f_still_applies() {
        let clock = Clock::new();
        let mut t = start(&clock, Reliability::Unreliable);
        assert_eq!(run(&mut t, &clock, 1.0), sends(&[0.5]));
        let mut out = Vec::new();
        t.receive_response(clock.at(1.2), 100, "100", &mut out)
            .unwrap();
        assert_eq!(t.state(), State::Proceeding);
        let mut expected = sends(&[1.5, 5.5, 9.5, 13.5, 17.5, 21.5, 25.5, 29.5]);
        expected.push((32.0, Event::Timeout));
        assert_eq!(run(&mut t, &clock, 100.0), expected);
        assert!(t.is_terminated());
    }

    #[test]
    fn final_response_then_timer_k_udp() {
        let clock = Clock::new();
        let mut t = start(&clock, Reliability::Unreliable);
        let mut out = Vec::new();
        t.receive_response(clock.at(0.2), 200, "200", &mut out)
            .unwrap();
        t.receive_response(clock.at(0.7), 200, "200", &mut out)
            .unwrap();
        t.receive_response(clock.at(0.7), 180, "180", &mut out)
            .unwrap();
        assert_eq!(
            out,
            [Event::ResponseToTu {
                status: 200,
                msg: "200"
            }],
            "retransmitted responses are absorbed in Completed"
        );
        assert_eq!(t.state(), State::Completed);
        assert_eq!(t.poll_timeout(), Some(clock.at(5.2)), "Timer K = T4");
        assert_eq!(run(&mut t, &clock, 100.0), []);
        assert!(t.is_terminated());
    }

    #[test]
    fn final_response_over_tcp_terminates() {
        let clock = Clock::new();
        let mut t = start(&clock, Reliability::Reliable);
        let mut out = Vec::new();
        t.receive_response(clock.at(0.2), 481, "481", &mut out)
            .unwrap();
        assert!(t.is_terminated());
        assert_eq!(t.poll_timeout(), None);
    }

    #[test]
    fn transport_error_terminates() {
        let clock = Clock::new();
        let mut t = start(&clock, Reliability::Unreliable);
        let mut out = Vec::new();
        t.transport_error(&mut out);
        assert_eq!(out, [Event::TransportError]);
        assert!(t.is_terminated());
        assert_eq!(
            t.receive_response(clock.at(0.0), 1000, "x", &mut out),
            Err(TransactionError::InvalidStatus(1000))
        );
    }
}
