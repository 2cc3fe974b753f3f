//! The tokio side of a [`Uas`]: feeds it what the endpoint routes to the dialog, sends
//! the responses and requests it decides through the endpoint, and hands its events to the
//! owner (a call, a feature code, a leg). It waits for the dialog's next message or timer,
//! and for the end of a dialog we hang up. It decides nothing: every SIP answer is the
//! UAS's.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedReceiver;

use crate::sip::endpoint::{SipHandle, ToCall, our_via};
use crate::sip::transport::Peer;
use crate::sip::uas::{BYE_WAIT, Uas, UasEvent, UasInput, UasOutput};

/// How long closing a dialog may take at most, whatever arrives meanwhile: the ACK our BYE
/// may wait for (64 × T1 with the default T1) and the BYE's own wait.
const CLOSE_AT_MOST: Duration = Duration::from_secs(32).saturating_add(BYE_WAIT);

/// What happened next in the dialog.
pub(crate) enum Next {
    /// The UAS reported these (perhaps none: it answered a request on its own).
    Events(Vec<UasEvent>),
    /// Something for the owner, not for the dialog (a leg's message, a response to an
    /// INVITE we sent).
    Other(ToCall),
    /// The endpoint is gone.
    Gone,
}

/// Whose an endpoint's message is.
pub(crate) enum Addressed {
    /// The dialog's (its UAS answers it).
    Dialog(DialogInput),
    /// The owner's.
    Owner(ToCall),
}

/// What the dialog is given: a message for its UAS, or the wake-up its timers asked for.
/// Passed along once and never stored, so the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum DialogInput {
    Sip(UasInput),
    Wake,
}

impl From<UasInput> for DialogInput {
    fn from(i: UasInput) -> Self {
        DialogInput::Sip(i)
    }
}

pub(crate) struct UasShell {
    pub uas: Uas,
    sip: SipHandle,
    peer: Peer,
    advertised: IpAddr,
    call_id: String,
    /// The wake-up asked of the endpoint for the UAS's next timer (see `arm`).
    armed: Option<Instant>,
}

impl UasShell {
    pub fn new(uas: Uas, sip: SipHandle, peer: Peer, advertised: IpAddr, call_id: &str) -> Self {
        UasShell {
            uas,
            sip,
            peer,
            advertised,
            call_id: call_id.to_string(),
            armed: None,
        }
    }

    /// What of the endpoint's message is the dialog's. A response to an INVITE is not (the
    /// dialog sends none; a call back's leg does).
    pub fn input(m: ToCall) -> Addressed {
        match m {
            ToCall::Request { key, req } => {
                Addressed::Dialog(UasInput::Request { key, req }.into())
            }
            ToCall::Cancel { key, req } => Addressed::Dialog(UasInput::Cancel { key, req }.into()),
            ToCall::Ack(a) => Addressed::Dialog(UasInput::Ack(a).into()),
            ToCall::Response(r)
                if !r
                    .headers
                    .cseq()
                    .is_ok_and(|c| c.method == crate::sip::message::Method::Invite) =>
            {
                Addressed::Dialog(UasInput::Response(r).into())
            }
            ToCall::RequestTimeout { .. } => Addressed::Dialog(UasInput::RequestTimeout.into()),
            ToCall::Wake => Addressed::Dialog(DialogInput::Wake),
            other => Addressed::Owner(other),
        }
    }

    pub fn handle(&mut self, now: Instant, input: impl Into<DialogInput>) -> Vec<UasEvent> {
        let (peer, adv) = (self.peer, self.advertised);
        match input.into() {
            DialogInput::Sip(input) => self.uas.handle(now, input, || our_via(&peer, adv)),
            DialogInput::Wake => {
                // Whichever wake-up this is, the next one is asked for afresh.
                self.armed = None;
                return self.handle_timeout(now);
            }
        }
        self.flush()
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Vec<UasEvent> {
        if self.armed.is_some_and(|a| a <= now) {
            self.armed = None;
        }
        let (peer, adv) = (self.peer, self.advertised);
        self.uas.handle_timeout(now, || our_via(&peer, adv));
        self.flush()
    }

    pub fn answer(&mut self, now: Instant) -> Vec<UasEvent> {
        self.uas.answer(now);
        self.flush()
    }

    pub fn refuse(&mut self, status: u16, reason: &str) -> Vec<UasEvent> {
        self.uas.refuse(status, reason);
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
                UasOutput::Retransmit(resp) => self.sip.send_response(self.peer, resp),
                UasOutput::Request(req) => self.sip.request(&self.call_id, self.peer, req),
                UasOutput::Event(e) => events.push(e),
            }
        }
        self.arm();
        events
    }

    /// Asks the endpoint for a wake-up at the UAS's next timer, unless one at that moment
    /// or earlier is pending (it asks for the next itself): the call's own loop waits only
    /// on its inbox while the flow runs, and the 2xx copies must go out meanwhile.
    fn arm(&mut self) {
        if let Some(at) = self.uas.poll_timeout()
            && self.armed.is_none_or(|a| at < a)
        {
            self.sip.wake_at(&self.call_id, at);
            self.armed = Some(at);
        }
    }

    /// Waits for the next message of the dialog or its next timer, and lets the UAS deal
    /// with it. Cancel-safe: nothing is lost when another branch of a `select!` wins.
    pub async fn next(&mut self, inbox: &mut UnboundedReceiver<ToCall>) -> Next {
        let deadline = self.uas.poll_timeout();
        let timer = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            m = inbox.recv() => match m {
                None => Next::Gone,
                Some(m) => match UasShell::input(m) {
                    Addressed::Dialog(input) => Next::Events(self.handle(Instant::now(), input)),
                    Addressed::Owner(other) => Next::Other(other),
                },
            },
            _ = timer => Next::Events(self.handle_timeout(Instant::now())),
        }
    }

    /// Waits until a dialog we hang up is over (our BYE answered or given up on) and, while
    /// `others_waiting`, for the owner's own business: `other` gets what is not the
    /// dialog's and says whether the owner still waits.
    pub async fn close(
        &mut self,
        inbox: &mut UnboundedReceiver<ToCall>,
        mut others_waiting: bool,
        mut other: impl FnMut(ToCall) -> bool,
    ) {
        let until = tokio::time::Instant::now() + CLOSE_AT_MOST;
        while self.uas.is_closing() || others_waiting {
            tokio::select! {
                n = self.next(inbox) => match n {
                    Next::Events(_) => {}
                    Next::Other(m) => others_waiting = other(m),
                    Next::Gone => return,
                },
                _ = tokio::time::sleep_until(until) => return,
            }
        }
    }
}
