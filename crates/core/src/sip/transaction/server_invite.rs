//! The INVITE server transaction (RFC 3261 §17.2.1 as corrected by RFC 6026): relays the
//! TU's responses, answers INVITE retransmissions with the latest response, retransmits a
//! non-2xx final until its ACK arrives, and after a 2xx stays Accepted so retransmitted
//! INVITEs are absorbed while ACKs reach the TU. It does not retransmit 2xx responses
//! (that is the UAS core's job, see `Uas2xxRetransmitter`) and never builds a message.

use std::time::Instant;

use super::timers::{Backoff, Reliability, Retransmit, TimerConfig, after, earliest, is_due};
use super::{Event, State, StatusClass, TransactionError};

/// One INVITE server transaction. Created when a new INVITE arrives (state Proceeding);
/// the TU is expected to send a provisional response at once (RFC 3261 asks for a 100
/// Trying within 200 ms when the final answer may take longer).
#[derive(Debug, Clone)]
pub struct ServerInvite<M> {
    state: State,
    reliability: Reliability,
    timers: TimerConfig,
    /// The latest provisional (Proceeding) or the non-2xx final (Completed): what a
    /// retransmitted INVITE is answered with.
    last_response: Option<M>,
    /// Timer G.
    retransmit: Option<Retransmit>,
    /// Timer H (Completed), I (Confirmed) or L (Accepted).
    expiry: Option<Instant>,
}

impl<M: Clone> ServerInvite<M> {
    pub fn new(reliability: Reliability, timers: TimerConfig) -> Self {
        ServerInvite {
            state: State::Proceeding,
            reliability,
            timers,
            last_response: None,
            retransmit: None,
            expiry: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    /// When `handle_timeout` next has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest(self.retransmit.map(|r| r.at), self.expiry)
    }

    /// A retransmission of the INVITE that created the transaction.
    pub fn receive_invite(&mut self, out: &mut Vec<Event<M>>) {
        match self.state {
            State::Proceeding | State::Completed => {
                if let Some(response) = &self.last_response {
                    out.push(Event::Transmit(response.clone()));
                }
            }
            // Accepted: the UAS core retransmits the 2xx on its own schedule; answering
            // here too would double the traffic. Confirmed: the ACK proved delivery.
            _ => {}
        }
    }

    /// An ACK matching this transaction.
    pub fn receive_ack(&mut self, now: Instant, ack: M, out: &mut Vec<Event<M>>) {
        match self.state {
            State::Completed => {
                self.retransmit = None;
                let timer_i = self.timers.timer_i(self.reliability);
                if timer_i.is_zero() {
                    self.terminate();
                } else {
                    self.state = State::Confirmed;
                    self.expiry = Some(after(now, timer_i));
                }
            }
            // The ACK of a 2xx is the dialog's business (RFC 6026 §8.7).
            State::Accepted => out.push(Event::AckToTu(ack)),
            // Confirmed: a retransmitted ACK. Proceeding: nothing to acknowledge yet.
            _ => {}
        }
    }

    /// The TU's response to the INVITE.
    pub fn send_response(
        &mut self,
        now: Instant,
        status: u16,
        response: M,
        out: &mut Vec<Event<M>>,
    ) -> Result<(), TransactionError> {
        let class = StatusClass::of(status)?;
        match (self.state, class) {
            (State::Proceeding, StatusClass::Provisional) => {
                out.push(Event::Transmit(response.clone()));
                self.last_response = Some(response);
            }
            (State::Proceeding, StatusClass::Success) => {
                out.push(Event::Transmit(response));
                self.last_response = None;
                self.state = State::Accepted;
                self.expiry = Some(after(now, self.timers.timer_l()));
            }
            (State::Proceeding, StatusClass::Failure) => {
                out.push(Event::Transmit(response.clone()));
                self.last_response = Some(response);
                self.state = State::Completed;
                self.retransmit = self
                    .timers
                    .timer_g(self.reliability)
                    .map(|g| Retransmit::start(now, g, Backoff::DoubleCappedAtT2));
                self.expiry = Some(after(now, self.timers.timer_h()));
            }
            // RFC 6026: 2xx retransmissions from the TU go out through the transaction.
            (State::Accepted, StatusClass::Success) => out.push(Event::Transmit(response)),
            (state, _) => {
                return Err(TransactionError::WrongState {
                    state,
                    status,
                    expected: if state == State::Accepted {
                        "a 2xx retransmission in Accepted"
                    } else {
                        "state Proceeding"
                    },
                });
            }
        }
        Ok(())
    }

    /// The transport failed to send one of this transaction's responses.
    pub fn transport_error(&mut self, out: &mut Vec<Event<M>>) {
        match self.state {
            State::Proceeding | State::Completed => {
                out.push(Event::TransportError);
                self.terminate();
            }
            // The dialog layer decides what a failed 2xx means; Timer L still runs so
            // late INVITE retransmissions keep being absorbed.
            State::Accepted => out.push(Event::TransportError),
            _ => {}
        }
    }

    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<Event<M>>) {
        if is_due(self.expiry, now) {
            if self.state == State::Completed {
                // Timer H: the ACK never came.
                out.push(Event::Timeout);
            }
            self.terminate();
            return;
        }
        if let Some(retransmit) = &mut self.retransmit
            && retransmit.at <= now
        {
            retransmit.rearm(now, &self.timers);
            if let Some(response) = &self.last_response {
                out.push(Event::Transmit(response.clone()));
            }
        }
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.retransmit = None;
        self.expiry = None;
        self.last_response = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::test_support::Clock;

    type Txn = ServerInvite<&'static str>;

    fn txn(reliability: Reliability) -> Txn {
        ServerInvite::new(reliability, TimerConfig::default())
    }

    /// Drives the transaction through every deadline up to `until`, recording what it sent.
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

    #[test]
    fn non_2xx_retransmitted_on_timer_g_until_timer_h_udp() {
        let clock = Clock::new();
        let mut t = txn(Reliability::Unreliable);
        let mut out = Vec::new();
        t.send_response(clock.at(0.0), 486, "486", &mut out)
            .unwrap();
        assert_eq!(out, [Event::Transmit("486")]);
        assert_eq!(t.state(), State::Completed);
        let seen = run(&mut t, &clock, 100.0);
        let expected: Vec<_> = [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
            .into_iter()
            .map(|s| (s, Event::Transmit("486")))
            .chain([(32.0, Event::Timeout)])
            .collect();
        assert_eq!(seen, expected);
        assert!(t.is_terminated());
        assert_eq!(t.poll_timeout(), None);
    }

    #[test]
    fn non_2xx_over_tcp_is_sent_once_and_timer_h_still_waits_for_ack() {
        let clock = Clock::new();
        let mut t = txn(Reliability::Reliable);
        let mut out = Vec::new();
        t.send_response(clock.at(0.0), 404, "404", &mut out)
            .unwrap();
        assert_eq!(t.poll_timeout(), Some(clock.at(32.0)));
        assert_eq!(run(&mut t, &clock, 100.0), [(32.0, Event::Timeout)]);
        assert!(t.is_terminated());
    }

    #[test]
    fn ack_stops_retransmission_then_timer_i_udp() {
        let clock = Clock::new();
        let mut t = txn(Reliability::Unreliable);
        let mut out = Vec::new();
        t.send_response(clock.at(0.0), 486, "486", &mut out)
            .unwrap();
        assert_eq!(run(&mut t, &clock, 1.6).len(), 2); // 0.5 and 1.5
        t.receive_ack(clock.at(2.0), "ack", &mut out);
        assert_eq!(t.state(), State::Confirmed);
        assert_eq!(t.poll_timeout(), Some(clock.at(7.0)));
        // Retransmitted ACKs and INVITEs are absorbed silently.
        out.clear();
        t.receive_ack(clock.at(3.0), "ack", &mut out);
        t.receive_invite(&mut out);
        assert_eq!(out, []);
        assert_eq!(run(&mut t, &clock, 100.0), []);
        assert!(t.is_terminated());
    }

    #[test]
    fn ack_over_tcp_terminates_at_once() {
        let clock = Clock::new();
        let mut t = txn(Reliability::Reliable);
        let mut out = Vec::new();
        t.send_response(clock.at(0.0), 486, "486", &mut out)
            .unwrap();
        t.receive_ack(clock.at(0.1), "ack", &mut out);
        assert!(t.is_terminated());
        assert_eq!(out, [Event::Transmit("486")]);
    }

    #[test]
    fn invite_retransmission_gets_latest_response() {
        let clock = Clock::new();
        let mut t = txn(Reliability::Unreliable);
        let mut out = Vec::new();
        t.receive_invite(&mut out);
        assert_eq!(out, [], "nothing to resend before the TU answered");
        t.send_response(clock.at(0.0), 100, "100", &mut out)
            .unwrap();
        t.send_response(clock.at(0.1), 180, "180", &mut out)
            .unwrap();
        out.clear();
        t.receive_invite(&mut out);
        assert_eq!(out, [Event::Transmit("180")]);
        assert_eq!(t.poll_timeout(), None, "no timer runs in Proceeding");
        t.send_response(clock.at(1.0), 603, "603", &mut out)
            .unwrap();
        out.clear();
        t.receive_invite(&mut out);
        assert_eq!(out, [Event::Transmit("603")]);
    }

    #[test]
    fn accepted_absorbs_invites_passes_acks_and_ends_on_timer_l() {
        for reliability in [Reliability::Unreliable, Reliability::Reliable] {
            let clock = Clock::new();
            let mut t = txn(reliability);
            let mut out = Vec::new();
            t.send_response(clock.at(0.0), 180, "180", &mut out)
                .unwrap();
            t.send_response(clock.at(1.0), 200, "200", &mut out)
                .unwrap();
            assert_eq!(out, [Event::Transmit("180"), Event::Transmit("200")]);
            assert_eq!(t.state(), State::Accepted);
            out.clear();
            t.receive_invite(&mut out);
            assert_eq!(out, [], "INVITE retransmissions are absorbed in Accepted");
            t.send_response(clock.at(1.5), 200, "200", &mut out)
                .unwrap();
            assert_eq!(out, [Event::Transmit("200")], "the TU's 2xx retransmission");
            out.clear();
            t.receive_ack(clock.at(2.0), "ack", &mut out);
            t.receive_ack(clock.at(2.1), "ack2", &mut out);
            assert_eq!(out, [Event::AckToTu("ack"), Event::AckToTu("ack2")]);
            assert_eq!(
                t.send_response(clock.at(3.0), 486, "486", &mut out),
                Err(TransactionError::WrongState {
                    state: State::Accepted,
                    status: 486,
                    expected: "a 2xx retransmission in Accepted"
                })
            );
            assert_eq!(t.poll_timeout(), Some(clock.at(33.0)), "Timer L = 64*T1");
            assert_eq!(run(&mut t, &clock, 100.0), []);
            assert!(t.is_terminated());
        }
    }

    #[test]
    fn no_second_final_response() {
        let clock = Clock::new();
        let mut t = txn(Reliability::Unreliable);
        let mut out = Vec::new();
        t.send_response(clock.at(0.0), 486, "486", &mut out)
            .unwrap();
        for status in [180, 200, 500] {
            assert!(matches!(
                t.send_response(clock.at(0.1), status, "x", &mut out),
                Err(TransactionError::WrongState { .. })
            ));
        }
        assert_eq!(
            t.send_response(clock.at(0.1), 99, "x", &mut out),
            Err(TransactionError::InvalidStatus(99))
        );
        assert_eq!(
            t.send_response(clock.at(0.1), 700, "x", &mut out),
            Err(TransactionError::InvalidStatus(700))
        );
    }

    #[test]
    fn ack_in_proceeding_is_ignored() {
        let clock = Clock::new();
        let mut t = txn(Reliability::Unreliable);
        let mut out = Vec::new();
        t.receive_ack(clock.at(0.0), "ack", &mut out);
        assert_eq!(out, []);
        assert_eq!(t.state(), State::Proceeding);
    }

    #[test]
    fn transport_errors() {
        let clock = Clock::new();
        let mut out = Vec::new();
        let mut t = txn(Reliability::Unreliable);
        t.transport_error(&mut out);
        assert_eq!(out, [Event::TransportError]);
        assert!(t.is_terminated());

        let mut t = txn(Reliability::Unreliable);
        out.clear();
        t.send_response(clock.at(0.0), 486, "486", &mut out)
            .unwrap();
        t.transport_error(&mut out);
        assert!(t.is_terminated());
        assert_eq!(t.poll_timeout(), None);

        let mut t = txn(Reliability::Unreliable);
        out.clear();
        t.send_response(clock.at(0.0), 200, "200", &mut out)
            .unwrap();
        t.transport_error(&mut out);
        assert_eq!(out, [Event::Transmit("200"), Event::TransportError]);
        assert_eq!(t.state(), State::Accepted);
    }

    #[test]
    fn late_wakeup_sends_one_retransmission_not_a_burst() {
        let clock = Clock::new();
        let mut t = txn(Reliability::Unreliable);
        let mut out = Vec::new();
        t.send_response(clock.at(0.0), 486, "486", &mut out)
            .unwrap();
        out.clear();
        t.handle_timeout(clock.at(10.0), &mut out);
        assert_eq!(out, [Event::Transmit("486")]);
        assert_eq!(t.poll_timeout(), Some(clock.at(11.0)));
        out.clear();
        t.handle_timeout(clock.at(40.0), &mut out);
        assert_eq!(out, [Event::Timeout], "Timer H wins over a due Timer G");
    }
}
