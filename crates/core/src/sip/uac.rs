//! An INVITE we place (a transfer target or an agent's phone), as the calling side sees it
//! (RFC 3261 §13.2): the request, what its responses mean for the call (ringing, answered,
//! busy, no answer, failed), the ACK for a 2xx and its repeats, CANCEL while it rings, and
//! BYE once it is answered. The transaction layer retransmits; this owns what only the
//! dialog's creator knows.
//!
//! Pure: no sockets, no clock. Tags, branches and Vias are passed in; requests come out.

use crate::sip::dialog::{Dialog, DialogError};
use crate::sip::message::{
    CSeq, ContentType, HeaderError, HeaderName, Method, NameAddr, Request, Response, Uri, Via,
};

/// What an outgoing INVITE starts from.
#[derive(Debug, Clone)]
pub struct InviteParams {
    /// The Request-URI: whom we call.
    pub target: Uri,
    /// Our From (a tag is added).
    pub from: NameAddr,
    pub call_id: String,
    pub local_tag: String,
    pub cseq: u32,
    pub via: Via,
    pub contact: Uri,
    /// The SDP offer.
    pub sdp: Vec<u8>,
    /// Extra headers, e.g. P-Asserted-Identity with the caller's number.
    pub headers: Vec<(String, String)>,
}

/// What a response meant for the leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InviteEvent {
    /// The far end rings (180/183); reported once.
    Ringing,
    /// Answered; the body is the SDP answer.
    Answered { sdp: Vec<u8> },
    /// A final failure, with the reason the far end gave.
    Failed(LegFailure),
}

/// Why a leg was not answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegFailure {
    /// 486 Busy Here or 600 Busy Everywhere.
    Busy,
    /// 603 Decline.
    Declined,
    /// 408, 480, a transaction timeout, or our own CANCEL after the ring time.
    NoAnswer,
    /// Anything else: the status and reason phrase.
    Error { status: u16, reason: String },
}

impl std::fmt::Display for LegFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LegFailure::Busy => f.write_str("busy"),
            LegFailure::Declined => f.write_str("declined"),
            LegFailure::NoAnswer => f.write_str("no answer"),
            LegFailure::Error { status, reason } => write!(f, "{status} {reason}"),
        }
    }
}

/// Where the leg stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegState {
    /// INVITE sent, nothing but perhaps 100 back.
    Calling,
    /// A provisional response other than 100 arrived.
    Ringing,
    /// A 2xx arrived and was acknowledged.
    Answered,
    /// Failed, cancelled, or hung up.
    Ended,
}

/// Requests the leg wants sent.
#[derive(Debug, Clone, PartialEq)]
pub enum InviteOutput {
    /// Through a new client transaction (CANCEL, BYE).
    Request(Request),
    /// Sent as it is, outside any transaction (the ACK for a 2xx, RFC 3261 §13.2.2.4).
    Ack(Request),
}

#[derive(Debug)]
pub struct OutgoingInvite {
    invite: Request,
    state: LegState,
    /// CANCEL is wanted but must wait for a provisional response (§9.1).
    cancel_pending: bool,
    dialog: Option<Dialog>,
    ack: Option<Request>,
}

impl OutgoingInvite {
    /// Builds the INVITE (returned for sending through a client transaction).
    pub fn new(p: InviteParams) -> (OutgoingInvite, Request) {
        let mut req = Request::new(Method::Invite, p.target.clone());
        let h = &mut req.headers;
        h.push(HeaderName::Via, p.via.to_string());
        h.push(HeaderName::MaxForwards, "70");
        h.push(HeaderName::From, p.from.with_tag(&p.local_tag).to_string());
        h.push(HeaderName::To, NameAddr::new(p.target).to_string());
        h.push(HeaderName::CallId, p.call_id);
        h.push(
            HeaderName::CSeq,
            CSeq {
                seq: p.cseq,
                method: Method::Invite,
            }
            .to_string(),
        );
        h.push(HeaderName::Contact, format!("<{}>", p.contact));
        h.push(HeaderName::Allow, crate::sip::ALLOW);
        for (n, v) in p.headers {
            h.push(HeaderName::new(&n), v);
        }
        req.set_body(&ContentType::new("application", "sdp"), p.sdp);
        let leg = OutgoingInvite {
            invite: req.clone(),
            state: LegState::Calling,
            cancel_pending: false,
            dialog: None,
            ack: None,
        };
        (leg, req)
    }

    pub fn state(&self) -> LegState {
        self.state
    }

    pub fn invite(&self) -> &Request {
        &self.invite
    }

    pub fn dialog(&self) -> Option<&Dialog> {
        self.dialog.as_ref()
    }

    pub fn dialog_mut(&mut self) -> Option<&mut Dialog> {
        self.dialog.as_mut()
    }

    fn invite_cseq(&self) -> u32 {
        self.invite.headers.cseq().map(|c| c.seq).unwrap_or(1)
    }

    /// A response to our INVITE. `via` is used if an ACK or BYE must be built.
    pub fn on_response(
        &mut self,
        resp: &Response,
        mut via: impl FnMut() -> Via,
        out: &mut Vec<InviteOutput>,
    ) -> Option<InviteEvent> {
        let is_invite = resp
            .headers
            .cseq()
            .is_ok_and(|c| c.method == Method::Invite);
        if !is_invite {
            return None;
        }
        match resp.status {
            100..=199 => {
                // Any provisional answer, 100 Trying too, means the far end has the
                // INVITE's transaction: a CANCEL may now follow it (§9.1).
                if self.cancel_pending {
                    self.cancel_pending = false;
                    out.push(InviteOutput::Request(self.cancel_request()));
                }
                if resp.status > 100 && self.state == LegState::Calling {
                    self.state = LegState::Ringing;
                    return Some(InviteEvent::Ringing);
                }
                None
            }
            200..=299 => self.on_2xx(resp, &mut via, out),
            _ => {
                // The transaction acknowledges a non-2xx itself.
                if matches!(self.state, LegState::Calling | LegState::Ringing) {
                    self.state = LegState::Ended;
                    let cancelled = self.cancel_pending || resp.status == 487;
                    self.cancel_pending = false;
                    return Some(InviteEvent::Failed(failure_of(resp, cancelled)));
                }
                None
            }
        }
    }

    fn on_2xx(
        &mut self,
        resp: &Response,
        via: &mut impl FnMut() -> Via,
        out: &mut Vec<InviteOutput>,
    ) -> Option<InviteEvent> {
        let tag = resp
            .headers
            .to_addr()
            .ok()
            .and_then(|t| t.tag().map(str::to_string));
        let cseq = self.invite_cseq();
        if let Some(d) = &self.dialog {
            if d.remote_tag == tag {
                // A repeat of the 2xx: our ACK was lost (§13.2.2.4).
                if let Some(ack) = &self.ack {
                    out.push(InviteOutput::Ack(ack.clone()));
                }
            } else if let Ok(mut other) = Dialog::uac(&self.invite, resp) {
                // A second answer from a forked request: acknowledge it and end that one.
                out.push(InviteOutput::Ack(other.ack(cseq, via())));
                out.push(InviteOutput::Request(other.request(
                    Method::Bye,
                    via(),
                    None,
                )));
            }
            return None;
        }
        let Ok(dialog) = Dialog::uac(&self.invite, resp) else {
            self.state = LegState::Ended;
            return Some(InviteEvent::Failed(LegFailure::Error {
                status: resp.status,
                reason: "unusable answer".into(),
            }));
        };
        let ack = dialog.ack(cseq, via());
        out.push(InviteOutput::Ack(ack.clone()));
        self.ack = Some(ack);
        self.dialog = Some(dialog);
        if self.cancel_pending || self.state == LegState::Ended {
            // Answered after we gave up on it: the far end must still be told (§9.1).
            self.cancel_pending = false;
            self.state = LegState::Ended;
            if let Some(bye) = self.bye_request(via()) {
                out.push(InviteOutput::Request(bye));
            }
            return None;
        }
        self.state = LegState::Answered;
        Some(InviteEvent::Answered {
            sdp: resp.body.to_vec(),
        })
    }

    /// The INVITE transaction got no final answer in time.
    pub fn on_timeout(&mut self) -> Option<InviteEvent> {
        if matches!(self.state, LegState::Calling | LegState::Ringing) {
            self.state = LegState::Ended;
            return Some(InviteEvent::Failed(LegFailure::NoAnswer));
        }
        None
    }

    /// Stops a call that has not been answered: CANCEL now if it rings, or as soon as it
    /// does (a CANCEL before any provisional response may overtake the INVITE, §9.1).
    /// Once answered, it is a BYE instead.
    pub fn cancel(&mut self, via: impl FnOnce() -> Via) -> Option<InviteOutput> {
        match self.state {
            LegState::Calling => {
                self.cancel_pending = true;
                self.state = LegState::Ended;
                None
            }
            LegState::Ringing => {
                self.state = LegState::Ended;
                Some(InviteOutput::Request(self.cancel_request()))
            }
            LegState::Answered => self.hang_up(via).map(InviteOutput::Request),
            LegState::Ended => None,
        }
    }

    /// BYE for an answered leg.
    pub fn hang_up(&mut self, via: impl FnOnce() -> Via) -> Option<Request> {
        if self.state != LegState::Answered {
            return None;
        }
        self.state = LegState::Ended;
        self.bye_request(via())
    }

    /// The far end sent a request inside the dialog (BYE, re-INVITE, INFO).
    pub fn accept_request(&mut self, req: &Request) -> Result<(), DialogError> {
        match self.dialog.as_mut() {
            Some(d) => d.accept_request(req),
            None => Err(DialogError::NotThisDialog),
        }
    }

    /// The far end hung up (its BYE was accepted).
    pub fn remote_hung_up(&mut self) {
        self.state = LegState::Ended;
    }

    fn bye_request(&mut self, via: Via) -> Option<Request> {
        self.dialog
            .as_mut()
            .map(|d| d.request(Method::Bye, via, None))
    }

    /// CANCEL matches the INVITE (§9.1): same Request-URI, Call-ID, From, To, Route, the
    /// same top Via (branch) and CSeq number.
    fn cancel_request(&self) -> Request {
        let inv = &self.invite;
        let mut req = Request::new(Method::Cancel, inv.uri.clone());
        copy_headers(inv, &mut req, &[HeaderName::Via]);
        req.headers.push(HeaderName::MaxForwards, "70");
        copy_headers(
            inv,
            &mut req,
            &[HeaderName::From, HeaderName::To, HeaderName::CallId],
        );
        req.headers.push(
            HeaderName::CSeq,
            CSeq {
                seq: self.invite_cseq(),
                method: Method::Cancel,
            }
            .to_string(),
        );
        copy_headers(inv, &mut req, &[HeaderName::Route]);
        req
    }
}

fn copy_headers(from: &Request, to: &mut Request, names: &[HeaderName]) {
    for name in names {
        for v in from.headers.get_all(name.clone()) {
            to.headers.push(name.clone(), v.to_str_lossy().into_owned());
        }
    }
}

fn failure_of(resp: &Response, cancelled: bool) -> LegFailure {
    match resp.status {
        486 | 600 => LegFailure::Busy,
        603 => LegFailure::Declined,
        408 | 480 => LegFailure::NoAnswer,
        487 if cancelled => LegFailure::NoAnswer,
        s => LegFailure::Error {
            status: s,
            reason: resp.reason.clone(),
        },
    }
}

/// The ACK for a non-2xx final response (§17.1.1.3), which the INVITE client transaction
/// sends: the INVITE's Request-URI, Call-ID, From, top Via and Route, the response's To
/// (with its tag), and the INVITE's CSeq number.
pub fn ack_for_non_2xx(invite: &Request, resp: &Response) -> Result<Request, HeaderError> {
    let mut ack = Request::new(Method::Ack, invite.uri.clone());
    let via = invite.headers.top_via()?;
    ack.headers.push(HeaderName::Via, via.to_string());
    ack.headers.push(HeaderName::MaxForwards, "70");
    copy_headers(invite, &mut ack, &[HeaderName::From]);
    ack.headers
        .push(HeaderName::To, resp.headers.to_addr()?.to_string());
    copy_headers(invite, &mut ack, &[HeaderName::CallId]);
    let seq = invite.headers.cseq()?.seq;
    ack.headers.push(
        HeaderName::CSeq,
        CSeq {
            seq,
            method: Method::Ack,
        }
        .to_string(),
    );
    copy_headers(invite, &mut ack, &[HeaderName::Route]);
    Ok(ack)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{Host, Limits, Message, Transport, parse};

    fn via(branch: &str) -> Via {
        Via::new(
            Transport::Udp,
            Host::parse("127.0.0.1").unwrap(),
            Some(5060),
            branch,
        )
    }

    fn start() -> (OutgoingInvite, Request) {
        OutgoingInvite::new(InviteParams {
            target: Uri::parse("sip:agent@127.0.0.1:5070").unwrap(),
            from: NameAddr::new(Uri::parse("sip:+4930123@127.0.0.1").unwrap()),
            call_id: "leg-1".into(),
            local_tag: "ours".into(),
            cseq: 1,
            via: via("z9hG4bK-inv"),
            contact: Uri::parse("sip:hotline@127.0.0.1:5060").unwrap(),
            sdp: b"v=0\r\n".to_vec(),
            headers: vec![("P-Asserted-Identity".into(), "<sip:+4930123@x>".into())],
        })
    }

    fn response(inv: &Request, status: u16, tag: Option<&str>, extra: &str) -> Response {
        let mut r = Response::for_request(inv, status, "Reason");
        if let Some(t) = tag {
            r.headers.ensure_to_tag(t).unwrap();
        }
        let text = String::from_utf8(r.to_bytes()).unwrap();
        let text = text.replacen("\r\n", &format!("\r\n{extra}"), 1);
        match parse(text.as_bytes(), &Limits::default()).unwrap() {
            Message::Response(r) => r,
            Message::Request(_) => unreachable!(),
        }
    }

    fn text(r: &Request) -> String {
        String::from_utf8(r.to_bytes()).unwrap()
    }

    #[test]
    fn the_invite_carries_offer_contact_and_identity() {
        let (_, inv) = start();
        let t = text(&inv);
        assert!(
            t.starts_with("INVITE sip:agent@127.0.0.1:5070 SIP/2.0\r\n"),
            "{t}"
        );
        assert_eq!(inv.headers.from_addr().unwrap().tag(), Some("ours"));
        assert_eq!(inv.headers.to_addr().unwrap().tag(), None);
        assert!(t.contains("P-Asserted-Identity: <sip:+4930123@x>\r\n"));
        assert!(t.contains("Content-Type: application/sdp\r\n"));
        assert!(t.contains("Contact: <sip:hotline@127.0.0.1:5060>\r\n"));
    }

    #[test]
    fn ringing_then_answer_gives_ack_to_the_contact_with_the_invite_cseq() {
        let (mut leg, inv) = start();
        let mut out = Vec::new();
        assert_eq!(
            leg.on_response(&response(&inv, 100, None, ""), || via("x"), &mut out),
            None
        );
        let ringing = response(&inv, 180, Some("far"), "");
        assert_eq!(
            leg.on_response(&ringing, || via("x"), &mut out),
            Some(InviteEvent::Ringing)
        );
        assert_eq!(leg.on_response(&ringing, || via("x"), &mut out), None);
        let ok = response(
            &inv,
            200,
            Some("far"),
            "Contact: <sip:agent@10.0.0.9:5070>\r\nRecord-Route: <sip:p1;lr>\r\nRecord-Route: <sip:p2;lr>\r\n",
        );
        let ev = leg.on_response(&ok, || via("z9hG4bK-ack"), &mut out);
        assert!(matches!(ev, Some(InviteEvent::Answered { .. })));
        assert_eq!(leg.state(), LegState::Answered);
        let [InviteOutput::Ack(ack)] = out.as_slice() else {
            panic!("{out:?}")
        };
        let ack = ack.clone();
        let t = text(&ack);
        assert!(
            t.starts_with("ACK sip:agent@10.0.0.9:5070 SIP/2.0\r\n"),
            "{t}"
        );
        assert_eq!(ack.headers.cseq().unwrap().seq, 1);
        assert_eq!(ack.headers.to_addr().unwrap().tag(), Some("far"));
        // The UAC's route set is the Record-Route reversed.
        let routes = ack.headers.route().unwrap();
        assert!(routes[0].to_string().contains("p2"));
        // A repeated 2xx is acknowledged again, with the same ACK.
        out.clear();
        assert_eq!(leg.on_response(&ok, || via("other"), &mut out), None);
        assert_eq!(out, vec![InviteOutput::Ack(ack)]);
    }

    #[test]
    fn busy_decline_and_others_are_told_apart() {
        for (status, want) in [
            (486, LegFailure::Busy),
            (600, LegFailure::Busy),
            (603, LegFailure::Declined),
            (480, LegFailure::NoAnswer),
            (
                404,
                LegFailure::Error {
                    status: 404,
                    reason: "Reason".into(),
                },
            ),
        ] {
            let (mut leg, inv) = start();
            let mut out = Vec::new();
            let ev = leg.on_response(
                &response(&inv, status, Some("t"), ""),
                || via("x"),
                &mut out,
            );
            assert_eq!(ev, Some(InviteEvent::Failed(want)));
            assert!(out.is_empty(), "the transaction sends the ACK of a non-2xx");
        }
    }

    #[test]
    fn cancel_waits_for_a_provisional_response_and_matches_the_invite() {
        let (mut leg, inv) = start();
        assert_eq!(leg.cancel(|| via("x")), None);
        let mut out = Vec::new();
        leg.on_response(&response(&inv, 180, Some("far"), ""), || via("x"), &mut out);
        let [InviteOutput::Request(cancel)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(cancel.method, Method::Cancel);
        assert_eq!(cancel.uri, inv.uri);
        assert_eq!(
            cancel.headers.top_via().unwrap().branch(),
            Some("z9hG4bK-inv")
        );
        assert_eq!(cancel.headers.cseq().unwrap().to_string(), "1 CANCEL");
        assert_eq!(cancel.headers.to_addr().unwrap().tag(), None);
        // The 487 that follows ends the leg quietly.
        out.clear();
        let ev = leg.on_response(&response(&inv, 487, Some("far"), ""), || via("x"), &mut out);
        assert_eq!(ev, None);
    }

    #[test]
    fn a_pending_cancel_goes_out_on_100_trying() {
        let (mut leg, inv) = start();
        assert_eq!(leg.cancel(|| via("x")), None);
        let mut out = Vec::new();
        leg.on_response(&response(&inv, 100, None, ""), || via("x"), &mut out);
        assert!(matches!(out.as_slice(), [InviteOutput::Request(c)] if c.method == Method::Cancel));
        out.clear();
        leg.on_response(&response(&inv, 180, Some("far"), ""), || via("x"), &mut out);
        assert!(out.is_empty(), "one CANCEL");
    }

    #[test]
    fn an_answer_that_crosses_our_cancel_is_acknowledged_and_hung_up() {
        let (mut leg, inv) = start();
        let mut out = Vec::new();
        leg.on_response(&response(&inv, 180, Some("far"), ""), || via("x"), &mut out);
        assert!(matches!(
            leg.cancel(|| via("x")),
            Some(InviteOutput::Request(_))
        ));
        out.clear();
        let ok = response(&inv, 200, Some("far"), "Contact: <sip:a@10.0.0.9>\r\n");
        assert_eq!(leg.on_response(&ok, || via("y"), &mut out), None);
        assert!(matches!(&out[0], InviteOutput::Ack(_)));
        assert!(matches!(&out[1], InviteOutput::Request(r) if r.method == Method::Bye));
    }

    #[test]
    fn hang_up_sends_bye_in_the_dialog_once() {
        let (mut leg, inv) = start();
        let mut out = Vec::new();
        let ok = response(&inv, 200, Some("far"), "Contact: <sip:a@10.0.0.9>\r\n");
        leg.on_response(&ok, || via("x"), &mut out);
        let bye = leg.hang_up(|| via("b")).unwrap();
        assert_eq!(bye.method, Method::Bye);
        assert_eq!(bye.headers.cseq().unwrap().seq, 2);
        assert_eq!(bye.headers.from_addr().unwrap().tag(), Some("ours"));
        assert_eq!(bye.headers.to_addr().unwrap().tag(), Some("far"));
        assert!(leg.hang_up(|| via("b")).is_none());
    }

    #[test]
    fn the_far_ends_bye_is_accepted_in_the_dialog() {
        let (mut leg, inv) = start();
        let mut out = Vec::new();
        let ok = response(&inv, 200, Some("far"), "Contact: <sip:a@10.0.0.9>\r\n");
        leg.on_response(&ok, || via("x"), &mut out);
        let bye = "BYE sip:hotline@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK-b\r\nFrom: <sip:agent@127.0.0.1:5070>;tag=far\r\nTo: <sip:+4930123@127.0.0.1>;tag=ours\r\nCall-ID: leg-1\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n";
        let Message::Request(bye) = parse(bye.as_bytes(), &Limits::default()).unwrap() else {
            unreachable!()
        };
        assert_eq!(leg.accept_request(&bye), Ok(()));
    }

    #[test]
    fn non_2xx_ack_matches_the_invite() {
        let (_, inv) = start();
        let busy = response(&inv, 486, Some("far"), "");
        let ack = ack_for_non_2xx(&inv, &busy).unwrap();
        assert_eq!(ack.uri, inv.uri);
        assert_eq!(ack.headers.top_via().unwrap().branch(), Some("z9hG4bK-inv"));
        assert_eq!(ack.headers.cseq().unwrap().to_string(), "1 ACK");
        assert_eq!(ack.headers.to_addr().unwrap().tag(), Some("far"));
    }

    #[test]
    fn no_final_answer_is_no_answer() {
        let (mut leg, _) = start();
        assert_eq!(
            leg.on_timeout(),
            Some(InviteEvent::Failed(LegFailure::NoAnswer))
        );
        assert_eq!(leg.on_timeout(), None);
    }
}
