//! The answered INVITEs waiting for their ACK: the UAS core's 2xx retransmission (RFC 3261
//! §13.3.1.4), one [`Uas2xxRetransmitter`] per call, keyed by Call-ID. It only keeps the
//! schedule and says what is due; it must not route, send or decide what a call does when
//! its ACK never comes (the endpoint core tells the call `AckTimeout`).
//!
//! It is kept apart from the routing so it can move into the call's own UAS later without
//! touching the rest of the endpoint.

use std::collections::HashMap;
use std::time::Instant;

use crate::sip::transaction::{TimerConfig, Uas2xxAction, Uas2xxRetransmitter};

/// What came due in [`AnsweredInvites::handle_timeout`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnsweredEvent<M> {
    /// Send this 2xx again (it goes straight to the transport, outside any transaction).
    Retransmit(M),
    /// 64*T1 passed without the ACK for the 2xx of this Call-ID; it is forgotten.
    AckTimeout(String),
}

/// Every answered INVITE still waiting for its ACK.
#[derive(Debug)]
pub struct AnsweredInvites<M> {
    timers: TimerConfig,
    pending: HashMap<String, Uas2xxRetransmitter<M>>,
}

impl<M: Clone> AnsweredInvites<M> {
    pub fn new(timers: TimerConfig) -> Self {
        AnsweredInvites {
            timers,
            pending: HashMap::new(),
        }
    }

    /// The call `call_id` sent the 2xx `ok` at `now` (the first copy goes through the
    /// INVITE server transaction). A later 2xx for the same call replaces the earlier.
    pub fn answered(&mut self, now: Instant, call_id: String, ok: M) {
        self.pending
            .insert(call_id, Uas2xxRetransmitter::new(now, ok, &self.timers));
    }

    /// The ACK for `call_id` arrived; true if a 2xx was waiting for it.
    pub fn acked(&mut self, call_id: &str) -> bool {
        match self.pending.remove(call_id) {
            Some(mut r) => {
                r.ack_received();
                true
            }
            None => false,
        }
    }

    /// The call ended: stop retransmitting its 2xx.
    pub fn forget(&mut self, call_id: &str) {
        self.pending.remove(call_id);
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The earliest moment `handle_timeout` has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.values().filter_map(|r| r.poll_timeout()).min()
    }

    /// Collects what is due at `now` into `out`; at most one action per call and wake-up.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<AnsweredEvent<M>>) {
        let mut gave_up = Vec::new();
        for (call_id, r) in self.pending.iter_mut() {
            if r.poll_timeout().is_some_and(|d| d <= now) {
                match r.handle_timeout(now) {
                    Some(Uas2xxAction::Retransmit(m)) => out.push(AnsweredEvent::Retransmit(m)),
                    Some(Uas2xxAction::GaveUp) => gave_up.push(call_id.clone()),
                    None => {}
                }
            }
        }
        for call_id in gave_up {
            self.pending.remove(&call_id);
            out.push(AnsweredEvent::AckTimeout(call_id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::test_support::Clock;

    #[test]
    fn retransmits_until_acked_or_gives_up() {
        let clock = Clock::new();
        let mut a = AnsweredInvites::new(TimerConfig::default());
        a.answered(clock.at(0.0), "one".into(), 1);
        a.answered(clock.at(0.0), "two".into(), 2);
        assert_eq!(a.poll_timeout(), Some(clock.at(0.5)));
        let mut out = Vec::new();
        a.handle_timeout(clock.at(0.5), &mut out);
        out.sort_by_key(|e| match e {
            AnsweredEvent::Retransmit(m) => *m,
            AnsweredEvent::AckTimeout(_) => 0,
        });
        assert_eq!(
            out,
            [AnsweredEvent::Retransmit(1), AnsweredEvent::Retransmit(2)]
        );
        assert!(a.acked("one"));
        assert!(!a.acked("one"), "an ACK is taken once");
        out.clear();
        while let Some(at) = a.poll_timeout() {
            a.handle_timeout(at, &mut out);
        }
        assert_eq!(out.last(), Some(&AnsweredEvent::AckTimeout("two".into())));
        assert_eq!(
            out.iter()
                .filter(|e| matches!(e, AnsweredEvent::AckTimeout(_)))
                .count(),
            1,
            "only the call never acknowledged gives up"
        );
        assert!(a.is_empty());
    }
}
