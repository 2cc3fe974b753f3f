//! The non-INVITE server transaction (RFC 3261 §17.2.2): relays the TU's responses and
//! answers request retransmissions with the latest one, lingering for Timer J after the
//! final so late retransmissions are still answered. It never builds a message.

use std::time::Instant;

use super::timers::{Reliability, TimerConfig, after, is_due};
use super::{Event, State, StatusClass, TransactionError};

/// One non-INVITE server transaction, created when a new request arrives (state Trying).
#[derive(Debug, Clone)]
pub struct ServerNonInvite<M> {
    state: State,
    reliability: Reliability,
    timers: TimerConfig,
    /// The latest provisional (Proceeding) or the final (Completed).
    last_response: Option<M>,
    /// Timer J.
    expiry: Option<Instant>,
}

impl<M: Clone> ServerNonInvite<M> {
    pub fn new(reliability: Reliability, timers: TimerConfig) -> Self {
        ServerNonInvite {
            state: State::Trying,
            reliability,
            timers,
            last_response: None,
            expiry: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.expiry
    }

    /// A retransmission of the request that created the transaction. In Trying it is
    /// discarded: there is nothing to answer with yet.
    pub fn receive_request(&mut self, out: &mut Vec<Event<M>>) {
        if matches!(self.state, State::Proceeding | State::Completed)
            && let Some(response) = &self.last_response
        {
            out.push(Event::Transmit(response.clone()));
        }
    }

    /// The TU's response to the request.
    pub fn send_response(
        &mut self,
        now: Instant,
        status: u16,
        response: M,
        out: &mut Vec<Event<M>>,
    ) -> Result<(), TransactionError> {
        let class = StatusClass::of(status)?;
        if !matches!(self.state, State::Trying | State::Proceeding) {
            return Err(TransactionError::WrongState {
                state: self.state,
                status,
                expected: "state Trying or Proceeding",
            });
        }
        out.push(Event::Transmit(response.clone()));
        if class == StatusClass::Provisional {
            self.state = State::Proceeding;
            self.last_response = Some(response);
            return Ok(());
        }
        let timer_j = self.timers.timer_j(self.reliability);
        if timer_j.is_zero() {
            self.terminate();
        } else {
            self.state = State::Completed;
            self.last_response = Some(response);
            self.expiry = Some(after(now, timer_j));
        }
        Ok(())
    }

    pub fn transport_error(&mut self, out: &mut Vec<Event<M>>) {
        if matches!(self.state, State::Proceeding | State::Completed) {
            out.push(Event::TransportError);
            self.terminate();
        }
    }

    pub fn handle_timeout(&mut self, now: Instant, _out: &mut Vec<Event<M>>) {
        if is_due(self.expiry, now) {
            self.terminate();
        }
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.expiry = None;
        self.last_response = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::test_support::Clock;

    type Txn = ServerNonInvite<&'static str>;

    #[test]
    fn timer_j_udp_absorbs_retransmissions_for_64_t1() {
        let clock = Clock::new();
        let mut t = Txn::new(Reliability::Unreliable, TimerConfig::default());
        let mut out = Vec::new();
        t.receive_request(&mut out);
        assert_eq!(out, [], "Trying: retransmission discarded");
        assert_eq!(t.poll_timeout(), None);
        t.send_response(clock.at(0.0), 200, "200", &mut out)
            .unwrap();
        assert_eq!(t.state(), State::Completed);
        assert_eq!(t.poll_timeout(), Some(clock.at(32.0)));
        t.receive_request(&mut out);
        assert_eq!(out, [Event::Transmit("200"), Event::Transmit("200")]);
        assert!(matches!(
            t.send_response(clock.at(1.0), 500, "500", &mut out),
            Err(TransactionError::WrongState { .. })
        ));
        t.handle_timeout(clock.at(31.999), &mut out);
        assert_eq!(t.state(), State::Completed);
        t.handle_timeout(clock.at(32.0), &mut out);
        assert!(t.is_terminated());
        assert_eq!(t.poll_timeout(), None);
    }

    #[test]
    fn tcp_terminates_on_final() {
        let clock = Clock::new();
        let mut t = Txn::new(Reliability::Reliable, TimerConfig::default());
        let mut out = Vec::new();
        t.send_response(clock.at(0.0), 481, "481", &mut out)
            .unwrap();
        assert_eq!(out, [Event::Transmit("481")]);
        assert!(t.is_terminated());
        assert_eq!(t.poll_timeout(), None);
    }

    #[test]
    fn provisional_then_final() {
        let clock = Clock::new();
        let mut t = Txn::new(Reliability::Unreliable, TimerConfig::default());
        let mut out = Vec::new();
        t.send_response(clock.at(0.0), 100, "100", &mut out)
            .unwrap();
        t.send_response(clock.at(0.1), 183, "183", &mut out)
            .unwrap();
        assert_eq!(t.state(), State::Proceeding);
        out.clear();
        t.receive_request(&mut out);
        assert_eq!(out, [Event::Transmit("183")]);
        t.send_response(clock.at(0.2), 486, "486", &mut out)
            .unwrap();
        assert_eq!(t.poll_timeout(), Some(clock.at(32.2)));
    }

    #[test]
    fn transport_error_terminates() {
        let clock = Clock::new();
        let mut t = Txn::new(Reliability::Unreliable, TimerConfig::default());
        let mut out = Vec::new();
        t.transport_error(&mut out);
        assert_eq!(out, [], "nothing was sent in Trying");
        assert_eq!(t.state(), State::Trying);
        t.send_response(clock.at(0.0), 180, "180", &mut out)
            .unwrap();
        t.transport_error(&mut out);
        assert_eq!(out, [Event::Transmit("180"), Event::TransportError]);
        assert!(t.is_terminated());
    }
}
