//! The tokio side of a [`Uas`]: feeds it what the endpoint routes to the dialog, sends
//! the responses and requests it decides through the endpoint, and hands its events to the
//! owner (an outgoing leg's answered dialog). It decides nothing: every SIP answer is the
//! UAS's.

use std::net::IpAddr;
use std::time::Instant;

use crate::sip::endpoint::{SipHandle, ToCall, our_via};
use crate::sip::transport::Peer;
use crate::sip::uas::{Uas, UasEvent, UasInput, UasOutput};

/// Whose an endpoint's message is.
pub(crate) enum Addressed {
    /// The dialog's (its UAS answers it).
    Dialog(UasInput),
    /// The owner's (not for the dialog).
    Owner,
}

pub(crate) struct UasShell {
    pub uas: Uas,
    sip: SipHandle,
    peer: Peer,
    advertised: IpAddr,
    call_id: String,
}

impl UasShell {
    pub fn new(uas: Uas, sip: SipHandle, peer: Peer, advertised: IpAddr, call_id: &str) -> Self {
        UasShell {
            uas,
            sip,
            peer,
            advertised,
            call_id: call_id.to_string(),
        }
    }

    /// What of the endpoint's message is the dialog's. A response to an INVITE is not (the
    /// dialog sends none; a call back's leg does).
    pub fn input(m: ToCall) -> Addressed {
        match m {
            ToCall::Request { key, req } => Addressed::Dialog(UasInput::Request { key, req }),
            ToCall::Cancel { key, req } => Addressed::Dialog(UasInput::Cancel { key, req }),
            ToCall::Ack(a) => Addressed::Dialog(UasInput::Ack(a)),
            ToCall::AckTimeout => Addressed::Dialog(UasInput::AckTimeout),
            ToCall::Response(r)
                if !r
                    .headers
                    .cseq()
                    .is_ok_and(|c| c.method == crate::sip::message::Method::Invite) =>
            {
                Addressed::Dialog(UasInput::Response(r))
            }
            ToCall::RequestTimeout => Addressed::Dialog(UasInput::RequestTimeout),
            _ => Addressed::Owner,
        }
    }

    pub fn handle(&mut self, now: Instant, input: UasInput) -> Vec<UasEvent> {
        let (peer, adv) = (self.peer, self.advertised);
        self.uas.handle(now, input, || our_via(&peer, adv));
        self.flush()
    }

    pub fn hang_up(&mut self, now: Instant) -> Vec<UasEvent> {
        let via = our_via(&self.peer, self.advertised);
        self.uas.hang_up(now, via);
        self.flush()
    }

    /// Sends what the UAS decided; returns what it reported.
    pub fn flush(&mut self) -> Vec<UasEvent> {
        let mut events = Vec::new();
        while let Some(o) = self.uas.poll_output() {
            match o {
                UasOutput::Respond { key, resp } => {
                    self.sip.respond(&key, self.peer, &self.call_id, resp)
                }
                UasOutput::Request(req) => self.sip.request(&self.call_id, self.peer, req),
                UasOutput::Event(e) => events.push(e),
            }
        }
        events
    }
}
