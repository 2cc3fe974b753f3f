//! The INVITE client transaction (RFC 3261 §17.1.1 as corrected by RFC 6026): sends and
//! retransmits an INVITE, passes responses to the TU, acknowledges non-2xx finals with an
//! ACK the TU builds, and after a 2xx stays Accepted (Timer M) so retransmitted 2xx
//! responses still reach the TU, which acknowledges them itself. It never parses or builds
//! a message: the TU's `make_ack` closure does that.

use std::time::Instant;

use super::timers::{Backoff, Reliability, Retransmit, TimerConfig, after, earliest, is_due};
use super::{Event, State, StatusClass, TransactionError};

/// One INVITE client transaction, from the moment the INVITE is first handed to the
/// transport (state Calling).
#[derive(Debug, Clone)]
pub struct ClientInvite<M> {
    state: State,
    reliability: Reliability,
    timers: TimerConfig,
    request: M,
    /// The ACK for the non-2xx final, resent on each retransmission of that final.
    ack: Option<M>,
    /// Timer A.
    retransmit: Option<Retransmit>,
    /// Timer B (Calling), D (Completed) or M (Accepted).
    expiry: Option<Instant>,
}

impl<M: Clone> ClientInvite<M> {
    /// Starts the transaction: the INVITE goes out now.
    pub fn start(
        now: Instant,
        request: M,
        reliability: Reliability,
        timers: TimerConfig,
        out: &mut Vec<Event<M>>,
    ) -> Self {
        out.push(Event::Transmit(request.clone()));
        ClientInvite {
            state: State::Calling,
            reliability,
            timers,
            request,
            ack: None,
            retransmit: timers
                .timer_a(reliability)
                .map(|a| Retransmit::start(now, a, Backoff::Double)),
            expiry: Some(after(now, timers.timer_b())),
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

    /// A response matching this transaction. `make_ack(request, response)` is called once,
    /// for the first 300-699 final, and must return the ACK of RFC 3261 §17.1.1.3 (same
    /// Request-URI, Call-ID, From, CSeq number, top Via and Route as the INVITE, the To of
    /// the response, method ACK).
    pub fn receive_response<F>(
        &mut self,
        now: Instant,
        status: u16,
        response: M,
        make_ack: F,
        out: &mut Vec<Event<M>>,
    ) -> Result<(), TransactionError>
    where
        F: FnOnce(&M, &M) -> M,
    {
        let class = StatusClass::of(status)?;
        match (self.state, class) {
            (State::Calling | State::Proceeding, StatusClass::Provisional) => {
                // Timer B only guards Calling: once the far end answered, how long to ring
                // is the TU's decision (it sends CANCEL).
                self.state = State::Proceeding;
                self.retransmit = None;
                self.expiry = None;
                out.push(Event::ResponseToTu {
                    status,
                    msg: response,
                });
            }
            (State::Calling | State::Proceeding, StatusClass::Success) => {
                self.retransmit = None;
                self.state = State::Accepted;
                self.expiry = Some(after(now, self.timers.timer_m()));
                out.push(Event::ResponseToTu {
                    status,
                    msg: response,
                });
            }
            (State::Calling | State::Proceeding, StatusClass::Failure) => {
                let ack = make_ack(&self.request, &response);
                out.push(Event::Transmit(ack.clone()));
                out.push(Event::ResponseToTu {
                    status,
                    msg: response,
                });
                self.retransmit = None;
                let timer_d = self.timers.timer_d(self.reliability);
                if timer_d.is_zero() {
                    self.terminate();
                } else {
                    self.state = State::Completed;
                    self.ack = Some(ack);
                    self.expiry = Some(after(now, timer_d));
                }
            }
            (State::Completed, StatusClass::Failure) => {
                if let Some(ack) = &self.ack {
                    out.push(Event::Transmit(ack.clone()));
                }
            }
            // Every 2xx must reach the TU, so it can ACK it (RFC 6026 §8.4). In Completed
            // a 2xx can only come from another fork; the TU ACKs and hangs it up.
            (State::Accepted | State::Completed, StatusClass::Success) => {
                out.push(Event::ResponseToTu {
                    status,
                    msg: response,
                });
            }
            // Late provisionals, or non-2xx after a 2xx: nothing left to do with them.
            _ => {}
        }
        Ok(())
    }

    /// The transport failed to send the INVITE or the ACK.
    pub fn transport_error(&mut self, out: &mut Vec<Event<M>>) {
        if matches!(
            self.state,
            State::Calling | State::Proceeding | State::Completed
        ) {
            out.push(Event::TransportError);
            self.terminate();
        }
    }

    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<Event<M>>) {
        if is_due(self.expiry, now) {
            if self.state == State::Calling {
                // Timer B: no response at all.
                out.push(Event::Timeout);
            }
            self.terminate();
            return;
        }
        if let Some(retransmit) = &mut self.retransmit
            && retransmit.at <= now
        {
            retransmit.rearm(now, &self.timers);
            out.push(Event::Transmit(self.request.clone()));
        }
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.retransmit = None;
        self.expiry = None;
        self.ack = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::test_support::Clock;

    type Txn = ClientInvite<&'static str>;

    fn ack(_: &&'static str, _: &&'static str) -> &'static str {
        "ACK"
    }

    fn no_ack(_: &&'static str, _: &&'static str) -> &'static str {
        panic!("no ACK expected")
    }

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
            "INVITE",
            reliability,
            TimerConfig::default(),
            &mut out,
        );
        assert_eq!(out, [Event::Transmit("INVITE")]);
        t
    }

    #[test]
    fn timer_a_doubles_until_timer_b_udp() {
        let clock = Clock::new();
        let mut t = start(&clock, Reliability::Unreliable);
        let expected: Vec<_> = [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
            .into_iter()
            .map(|s| (s, Event::Transmit("INVITE")))
            .chain([(32.0, Event::Timeout)])
            .collect();
        assert_eq!(run(&mut t, &clock, 100.0), expected);
        assert!(t.is_terminated());
    }

    #[test]
    fn timer_b_only_over_tcp() {
        let clock = Clock::new();
        let mut t = start(&clock, Reliability::Reliable);
        assert_eq!(run(&mut t, &clock, 100.0), [(32.0, Event::Timeout)]);
        assert!(t.is_terminated());
    }

    #[test]
    fn provisional_stops_timers_a_and_b() {
        let clock = Clock::new();
        let mut t = start(&clock, Reliability::Unreliable);
        assert_eq!(run(&mut t, &clock, 1.0).len(), 1);
        let mut out = Vec::new();
        t.receive_response(clock.at(1.2), 180, "180", no_ack, &mut out)
            .unwrap();
        assert_eq!(
            out,
            [Event::ResponseToTu {
                status: 180,
                msg: "180"
            }]
        );
        assert_eq!(t.state(), State::Proceeding);
        assert_eq!(t.poll_timeout(), None);
    }

    #[test]
    fn non_2xx_builds_ack_and_resends_it_until_timer_d_udp() {
        let clock = Clock::new();
        let mut t = start(&clock, Reliability::Unreliable);
        let mut out = Vec::new();
        t.receive_response(clock.at(0.2), 180, "180", no_ack, &mut out)
            .unwrap();
        out.clear();
        t.receive_response(
            clock.at(2.0),
            486,
            "486",
            |req, resp| {
                assert_eq!((*req, *resp), ("INVITE", "486"));
                "ACK"
            },
            &mut out,
        )
        .unwrap();
        assert_eq!(
            out,
            [
                Event::Transmit("ACK"),
                Event::ResponseToTu {
                    status: 486,
                    msg: "486"
                }
            ]
        );
        assert_eq!(t.state(), State::Completed);
        out.clear();
        // The retransmitted final is not passed up again; the stored ACK is resent.
        t.receive_response(clock.at(2.5), 486, "486", no_ack, &mut out)
            .unwrap();
        assert_eq!(out, [Event::Transmit("ACK")]);
        assert_eq!(t.poll_timeout(), Some(clock.at(34.0)), "Timer D = 32 s");
        assert_eq!(run(&mut t, &clock, 100.0), []);
        assert!(t.is_terminated());
    }

    #[test]
    fn non_2xx_over_tcp_terminates_after_ack() {
        let clock = Clock::new();
        let mut t = start(&clock, Reliability::Reliable);
        let mut out = Vec::new();
        t.receive_response(clock.at(0.2), 503, "503", ack, &mut out)
            .unwrap();
        assert_eq!(out[0], Event::Transmit("ACK"));
        assert!(t.is_terminated());
    }

    #[test]
    fn final_in_calling_stops_timer_a() {
        let clock = Clock::new();
        let mut t = start(&clock, Reliability::Unreliable);
        let mut out = Vec::new();
        t.receive_response(clock.at(0.2), 404, "404", ack, &mut out)
            .unwrap();
        assert_eq!(t.poll_timeout(), Some(clock.at(32.2)));
    }

    #[test]
    fn success_goes_accepted_and_every_2xx_reaches_tu_until_timer_m() {
        for reliability in [Reliability::Unreliable, Reliability::Reliable] {
            let clock = Clock::new();
            let mut t = start(&clock, reliability);
            let mut out = Vec::new();
            t.receive_response(clock.at(0.3), 200, "200", no_ack, &mut out)
                .unwrap();
            assert_eq!(t.state(), State::Accepted);
            t.receive_response(clock.at(0.8), 200, "200b", no_ack, &mut out)
                .unwrap();
            t.receive_response(clock.at(0.9), 180, "180", no_ack, &mut out)
                .unwrap();
            t.receive_response(clock.at(0.9), 486, "486", no_ack, &mut out)
                .unwrap();
            assert_eq!(
                out,
                [
                    Event::ResponseToTu {
                        status: 200,
                        msg: "200"
                    },
                    Event::ResponseToTu {
                        status: 200,
                        msg: "200b"
                    }
                ]
            );
            assert_eq!(t.poll_timeout(), Some(clock.at(32.3)), "Timer M = 64*T1");
            assert_eq!(run(&mut t, &clock, 100.0), []);
            assert!(t.is_terminated());
        }
    }

    #[test]
    fn fork_2xx_after_non_2xx_reaches_tu() {
        let clock = Clock::new();
        let mut t = start(&clock, Reliability::Unreliable);
        let mut out = Vec::new();
        t.receive_response(clock.at(0.2), 486, "486", ack, &mut out)
            .unwrap();
        out.clear();
        t.receive_response(clock.at(0.3), 200, "200", no_ack, &mut out)
            .unwrap();
        assert_eq!(
            out,
            [Event::ResponseToTu {
                status: 200,
                msg: "200"
            }]
        );
        assert_eq!(t.state(), State::Completed);
    }

    #[test]
    fn transport_error_and_bad_status() {
        let clock = Clock::new();
        let mut t = start(&clock, Reliability::Unreliable);
        let mut out = Vec::new();
        assert_eq!(
            t.receive_response(clock.at(0.1), 0, "x", no_ack, &mut out),
            Err(TransactionError::InvalidStatus(0))
        );
        t.transport_error(&mut out);
        assert_eq!(out, [Event::TransportError]);
        assert!(t.is_terminated());
        assert_eq!(t.poll_timeout(), None);
    }
}
