//! An outgoing call leg as one state machine: the B2BUA's calling side, from our INVITE to
//! the end of the dialog it makes (a transfer's target, an agent's phone, a caller called
//! back). Until the answer it is [`OutgoingInvite`] (ringing, busy, declined, no answer,
//! CANCEL, the ACK of the 2xx); once answered, the far end's requests in the dialog
//! (re-INVITE and hold, INFO keys, OPTIONS, BYE) are served by a [`Uas`] made from the
//! dialog, as for any call, and our BYE comes from it too. It also knows when the leg is
//! over: the INVITE finally answered (or, after our CANCEL, given up on as RFC 3261 §9.1
//! allows), and every BYE of ours answered.
//!
//! Pure: no sockets, no clock, no randomness, no media. Time is passed in; the To tag,
//! the SDP session id and the branch prefix (each request's branch is `<prefix>-<n>`) are
//! drawn by the shell. What it decides comes out of [`LegCore::poll_output`]: requests for
//! new client transactions, ACKs and 2xx copies to send as they are, responses for server
//! transactions, and [`LegEvent`]s for whoever placed the leg. The call core
//! (`call::core::CallCore`) holds one per leg a call placed, a call back's own leg to the
//! caller among them.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::media::dtmf::Key;
use crate::sip::message::{Method, NameAddr, Request, Response, Uri, Via};
use crate::sip::refer::TransferTargets;
use crate::sip::sdp::{self, Negotiated};
use crate::sip::transaction::{TimerConfig, TransactionKey};
use crate::sip::uac::{
    InviteEvent, InviteOutput, InviteParams, LegFailure, LegState, OutgoingInvite,
};
use crate::sip::uas::{CODECS, Ending, LocalMedia, Uas, UasEvent, UasInput, UasOutput};

/// What a leg means to the call that placed it (made from the leg's [`LegEvent`]s, once
/// the media session of an answer was asked for): the call decides what follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegNews {
    Ringing,
    /// Answered, and media is set up; bridge it when ready.
    Answered,
    Failed(LegFailure),
    /// The far end hung up after answering.
    HungUp,
    /// The answered far end put the call on hold (`on`: a re-INVITE with `sendonly` or
    /// `inactive`) or took it off hold.
    Hold {
        on: bool,
    },
    /// The answered far end (an agent's phone) asks, by REFER, to transfer the call to
    /// `target` (allowed, answered 202); report how it goes with a NOTIFY.
    Refer {
        target: String,
    },
}

/// What placing a leg needs.
#[derive(Debug, Clone)]
pub struct LegParams {
    /// The Request-URI: whom we call.
    pub target: Uri,
    /// Our From (the tag is added).
    pub from: NameAddr,
    pub call_id: String,
    pub local_tag: String,
    /// Our Via; each request gets the branch `<branch_prefix>-<n>`, so the prefix must
    /// start with the magic cookie and be unique (RFC 3261 §8.1.1.7).
    pub via: Via,
    pub branch_prefix: String,
    pub contact: Uri,
    /// Our media, as the offer in the INVITE shows it.
    pub media: LocalMedia,
    /// Extra headers of the INVITE (P-Asserted-Identity with the caller's number).
    pub headers: Vec<(String, String)>,
    /// T1 and T2: our 2xx copies, and how long a cancelled INVITE is waited for.
    pub timers: TimerConfig,
    /// Whom the far end may transfer the call to by REFER once answered (an agent's leg
    /// with `agent_transfers` configured); `None`: no REFER (405).
    pub refer: Option<Arc<TransferTargets>>,
}

/// What the endpoint reports for the leg.
#[derive(Debug, Clone)]
pub enum LegInput {
    /// A response to a request of the leg (INVITE, CANCEL, BYE).
    Response(Response),
    /// A request from the far end (inside the dialog once answered).
    Request { key: TransactionKey, req: Request },
    /// A CANCEL from the far end (of a re-INVITE of its own).
    Cancel { key: TransactionKey, req: Request },
    /// An ACK from the far end, for our 2xx to its re-INVITE.
    Ack(Request),
    /// The request of the client transaction `key` got no final response in time, or
    /// could not be sent.
    RequestTimeout { key: TransactionKey },
}

/// What the leg wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum LegOutput {
    /// Send through a new client transaction (INVITE, CANCEL, BYE).
    Request(Request),
    /// Send as it is, outside any transaction: the ACK of a 2xx (§13.2.2.4).
    Ack(Request),
    /// Answer the server transaction `key`.
    Respond {
        key: TransactionKey,
        resp: Response,
    },
    /// Send as it is, outside any transaction: a copy of our 2xx until its ACK.
    Retransmit(Response),
    Event(LegEvent),
}

/// What the leg's owner hears.
#[derive(Debug, Clone, PartialEq)]
pub enum LegEvent {
    /// The far end rings; reported once.
    Ringing,
    /// Answered (the ACK is out), with the media agreed.
    Answered(Negotiated),
    /// Not answered, or answered unusably (then our BYE is out); not reported when we
    /// hung up ourselves.
    Failed(LegFailure),
    /// The far end moved or held its media (a re-INVITE or UPDATE).
    MediaUpdate {
        remote: SocketAddr,
        send: bool,
        reset_latch: bool,
    },
    /// A key in a SIP INFO.
    Key(Key),
    /// The far end asks for a blind transfer to `target` (see [`LegCore::accept_refer`]).
    Refer { target: String },
    /// The answered far end is gone: its BYE, or it never acknowledged our 2xx to its
    /// re-INVITE (then our BYE is out).
    HungUp,
    /// Nothing more will happen: the leg may be forgotten.
    Closed,
}

pub struct LegCore {
    call_id: String,
    local_tag: String,
    uac: OutgoingInvite,
    /// The answered dialog's server side; `None` before the answer, or once a call took
    /// the dialog as its own.
    uas: Option<Uas>,
    adopted: bool,
    /// Whom the far end may transfer the call to once answered; `None`: no REFER.
    refer: Option<Arc<TransferTargets>>,
    contact: Uri,
    media: LocalMedia,
    timers: TimerConfig,
    via: Via,
    branch_prefix: String,
    branches: u64,
    /// The INVITE has its final response, or none is waited for any more.
    invite_done: bool,
    /// We hung up before the answer: the cancelled INVITE is waited for until then (§9.1).
    cancel_until: Option<Instant>,
    /// We end the leg (CANCEL or BYE of ours).
    hung_up: bool,
    /// Branches of the BYEs the INVITE's side sent (a 2xx that crossed our CANCEL, a
    /// second 2xx of a forked INVITE), until answered.
    byes: Vec<String>,
    closed: bool,
    out: VecDeque<LegOutput>,
}

impl LegCore {
    /// Builds the INVITE (the first output) with the SDP offer of `p.media`.
    pub fn new(p: LegParams) -> LegCore {
        let mut branches = 0;
        let m = &p.media;
        let (uac, invite) = OutgoingInvite::new(InviteParams {
            target: p.target,
            from: p.from,
            call_id: p.call_id.clone(),
            local_tag: p.local_tag.clone(),
            cseq: 1,
            via: branched(&p.via, &p.branch_prefix, &mut branches),
            contact: p.contact.clone(),
            sdp: sdp::build_offer(
                m.advertised,
                m.rtp_port,
                m.sdp_session_id,
                m.sdp_version,
                m.offered_crypto().as_ref(),
            ),
            headers: p.headers,
        });
        LegCore {
            call_id: p.call_id,
            local_tag: p.local_tag,
            uac,
            uas: None,
            adopted: false,
            refer: p.refer,
            contact: p.contact,
            media: p.media,
            timers: p.timers,
            via: p.via,
            branch_prefix: p.branch_prefix,
            branches,
            invite_done: false,
            cancel_until: None,
            hung_up: false,
            byes: Vec::new(),
            closed: false,
            out: VecDeque::from([LegOutput::Request(invite)]),
        }
    }

    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    pub fn state(&self) -> LegState {
        self.uac.state()
    }

    /// Lets the answered far end transfer the call by REFER to what `targets` allows (an
    /// agent's leg with `agent_transfers` configured).
    pub fn accept_refer(&mut self, targets: Arc<TransferTargets>) {
        if let Some(uas) = self.uas.as_mut() {
            uas.accept_refer(targets.clone());
        }
        self.refer = Some(targets);
    }

    /// Tells the far end how the transfer it asked for goes (a NOTIFY; see
    /// [`Uas::notify_refer`]).
    pub fn notify_refer(&mut self, status: u16, reason: &str) {
        if let Some(uas) = self.uas.as_mut() {
            let (via, prefix, n) = (&self.via, &self.branch_prefix, &mut self.branches);
            uas.notify_refer(status, reason, branched(via, prefix, n));
        }
        self.settle();
    }

    /// The answered dialog's server side.
    pub fn uas(&self) -> Option<&Uas> {
        self.uas.as_ref()
    }

    /// True while something of ours (CANCEL, BYE) still waits for its end.
    pub fn is_closing(&self) -> bool {
        !self.closed
            && (self.hung_up
                || !self.byes.is_empty()
                || self.uas.as_ref().is_some_and(Uas::is_closing))
    }

    /// True once nothing more will happen (see [`LegEvent::Closed`]).
    pub fn is_over(&self) -> bool {
        self.closed
    }

    /// Hands the answered dialog to a call that carries on with it as its own (a call
    /// back). The leg keeps its INVITE's side, to acknowledge a repeated 2xx, and no
    /// longer ends anything.
    pub fn take_dialog(&mut self) -> Option<Uas> {
        let uas = self.uas.take()?;
        self.adopted = true;
        Some(uas)
    }

    /// The next thing to do (the queue's room is let go once drained).
    pub fn poll_output(&mut self) -> Option<LegOutput> {
        crate::outputs::pop_releasing(&mut self.out)
    }

    /// When [`LegCore::handle_timeout`] wants to be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let cancel = self.cancel_until.filter(|_| !self.invite_done);
        let uas = self.uas.as_ref().and_then(Uas::poll_timeout);
        match (cancel, uas) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(uas) = self.uas.as_mut() {
            let (via, prefix, n) = (&self.via, &self.branch_prefix, &mut self.branches);
            uas.handle_timeout(now, || branched(via, prefix, n));
        }
        if !self.invite_done && self.cancel_until.is_some_and(|t| t <= now) {
            // §9.1: no final answer 64*T1 after our CANCEL; the INVITE counts as cancelled.
            self.invite_done = true;
        }
        self.settle();
    }

    pub fn handle(&mut self, now: Instant, input: LegInput) {
        match input {
            LegInput::Response(resp) => self.on_response(now, resp),
            LegInput::Request { key, req } => self.for_dialog(now, UasInput::Request { key, req }),
            LegInput::Cancel { key, req } => self.for_dialog(now, UasInput::Cancel { key, req }),
            LegInput::Ack(ack) => {
                if self.uas.is_some() {
                    self.for_dialog(now, UasInput::Ack(ack));
                }
            }
            LegInput::RequestTimeout { key } => self.on_request_timeout(now, &key),
        }
        self.settle();
    }

    /// Ends the leg whatever its state: CANCEL before the answer (as soon as a provisional
    /// response allows it), BYE after.
    pub fn hang_up(&mut self, now: Instant) {
        if self.closed || self.adopted || self.hung_up {
            return;
        }
        if let Some(uas) = self.uas.as_mut() {
            self.hung_up = true;
            // Answered: the BYE comes from the dialog's own side, which also answers a
            // BYE that crosses it; the INVITE's side is done with.
            self.uac.remote_hung_up();
            let (via, prefix, n) = (&self.via, &self.branch_prefix, &mut self.branches);
            uas.hang_up(now, branched(via, prefix, n));
        } else if !self.invite_done {
            self.hung_up = true;
            self.cancel_until = Some(now + self.timers.cancel_give_up());
            let (uac, via, prefix, n) = (
                &mut self.uac,
                &self.via,
                &self.branch_prefix,
                &mut self.branches,
            );
            if let Some(o) = uac.cancel(|| branched(via, prefix, n)) {
                self.invite_output(o);
            }
        }
        self.settle();
    }

    fn on_response(&mut self, now: Instant, resp: Response) {
        let Ok(cseq) = resp.headers.cseq() else {
            return;
        };
        if cseq.method == Method::Invite {
            return self.on_invite_response(now, resp);
        }
        if resp.status < 200 {
            return;
        }
        let branch = resp
            .headers
            .top_via()
            .ok()
            .and_then(|v| v.branch().map(str::to_string));
        match cseq.method {
            // Whatever the CANCEL's answer, the INVITE's own final response is what ends
            // it (a 487, or a 2xx that crossed the CANCEL).
            Method::Cancel => {}
            _ if branch.as_ref().is_some_and(|b| self.byes.contains(b)) => {
                self.byes.retain(|b| Some(b) != branch.as_ref());
            }
            _ => self.for_dialog(now, UasInput::Response(resp)),
        }
    }

    fn on_invite_response(&mut self, now: Instant, resp: Response) {
        if resp.status >= 200 {
            self.invite_done = true;
        }
        let mut out = Vec::new();
        let (uac, via, prefix, n) = (
            &mut self.uac,
            &self.via,
            &self.branch_prefix,
            &mut self.branches,
        );
        let ev = uac.on_response(&resp, || branched(via, prefix, n), &mut out);
        for o in out {
            self.invite_output(o);
        }
        match ev {
            None => {}
            Some(InviteEvent::Ringing) => self.event(LegEvent::Ringing),
            Some(InviteEvent::Failed(f)) => self.event(LegEvent::Failed(f)),
            Some(InviteEvent::Answered { sdp: body }) => self.answered(now, &body),
        }
    }

    /// The far end answered: its dialog is served from now on, with the media agreed.
    fn answered(&mut self, now: Instant, body: &[u8]) {
        let Some(dialog) = self.uac.dialog().cloned() else {
            return;
        };
        let offered = self.media.offered_crypto();
        let agreed =
            sdp::parse_offer(body).and_then(|r| sdp::accept_answer(&r, &CODECS, offered.as_ref()));
        let mut uas = Uas::in_dialog(
            dialog,
            self.contact.clone(),
            self.media.clone(),
            agreed.as_ref().ok().cloned(),
            self.timers,
        );
        if let Some(targets) = &self.refer {
            uas.accept_refer(targets.clone());
        }
        self.uas = Some(uas);
        match agreed {
            Ok(n) => self.event(LegEvent::Answered(n)),
            Err(e) => {
                self.hang_up(now);
                self.event(LegEvent::Failed(LegFailure::Error {
                    status: 488,
                    reason: format!("unusable SDP answer: {e}"),
                }));
            }
        }
    }

    fn invite_output(&mut self, o: InviteOutput) {
        match o {
            InviteOutput::Ack(ack) => self.out.push_back(LegOutput::Ack(ack)),
            InviteOutput::Request(req) => {
                if req.method == Method::Bye
                    && let Some(b) = req
                        .headers
                        .top_via()
                        .ok()
                        .and_then(|v| v.branch().map(str::to_string))
                {
                    self.byes.push(b);
                }
                self.out.push_back(LegOutput::Request(req));
            }
        }
    }

    fn on_request_timeout(&mut self, now: Instant, key: &TransactionKey) {
        if key.is_invite() {
            if !self.invite_done {
                self.invite_done = true;
                if let Some(InviteEvent::Failed(f)) = self.uac.on_timeout() {
                    self.event(LegEvent::Failed(f));
                }
            }
        } else if key.is_cancel() {
            // Our CANCEL went unanswered for 64*T1: so has the INVITE (§9.1).
            self.invite_done = true;
        } else if key
            .branch()
            .is_some_and(|b| self.byes.iter().any(|x| x == b))
        {
            self.byes.retain(|x| Some(x.as_str()) != key.branch());
        } else {
            self.for_dialog(now, UasInput::RequestTimeout);
        }
    }

    /// Something for the answered dialog; before the answer (or once the dialog is a
    /// call's) a request is answered 481 here.
    fn for_dialog(&mut self, now: Instant, input: UasInput) {
        let Some(uas) = self.uas.as_mut() else {
            if let UasInput::Request { key, req } | UasInput::Cancel { key, req } = input {
                let mut resp = Response::for_request(&req, 481, "Call/Transaction Does Not Exist");
                let _ = resp.headers.ensure_to_tag(&self.local_tag);
                self.out.push_back(LegOutput::Respond { key, resp });
            }
            return;
        };
        let (via, prefix, n) = (&self.via, &self.branch_prefix, &mut self.branches);
        uas.handle(now, input, || branched(via, prefix, n));
    }

    /// Moves what the dialog decided to the outputs, and says when the leg is over.
    fn settle(&mut self) {
        while let Some(o) = self.uas.as_mut().and_then(Uas::poll_output) {
            match o {
                UasOutput::Respond { key, resp } => {
                    self.out.push_back(LegOutput::Respond { key, resp })
                }
                UasOutput::Retransmit(r) => self.out.push_back(LegOutput::Retransmit(r)),
                UasOutput::Request(r) => self.out.push_back(LegOutput::Request(r)),
                UasOutput::Event(e) => self.on_dialog_event(e),
            }
        }
        let done = if self.adopted {
            false
        } else {
            let dialog_over = self.uas.as_ref().is_none_or(Uas::is_over);
            self.invite_done && dialog_over && self.byes.is_empty()
        };
        if done && !self.closed {
            self.closed = true;
            self.cancel_until = None;
            self.event(LegEvent::Closed);
        }
    }

    fn on_dialog_event(&mut self, e: UasEvent) {
        match e {
            UasEvent::Ended(Ending::RemoteBye) => {
                self.uac.remote_hung_up();
                self.event(LegEvent::HungUp);
            }
            UasEvent::Ended(Ending::AckTimeout | Ending::NoUsableAnswer) => {
                self.uac.remote_hung_up();
                self.hung_up = true;
                self.event(LegEvent::HungUp);
            }
            UasEvent::MediaUpdate {
                remote,
                send,
                reset_latch,
            } => self.event(LegEvent::MediaUpdate {
                remote,
                send,
                reset_latch,
            }),
            UasEvent::Key(k) => self.event(LegEvent::Key(k)),
            UasEvent::Refer { target } => self.event(LegEvent::Refer { target }),
            // A dialog we created has no INVITE of its own to answer, refuse or cancel,
            // and its media was agreed with the answer.
            UasEvent::Refused { .. }
            | UasEvent::Cancelled
            | UasEvent::Answered
            | UasEvent::Media(_)
            | UasEvent::Closed => {}
        }
    }

    fn event(&mut self, e: LegEvent) {
        self.out.push_back(LegOutput::Event(e));
    }
}

/// Our Via with the next branch of this leg.
fn branched(via: &Via, prefix: &str, n: &mut u64) -> Via {
    *n += 1;
    let mut via = via.clone();
    via.params.set("branch", Some(&format!("{prefix}-{n}")));
    via
}

/// A leg with every id fixed and a far end's answer, for the tests of a leg and of the
/// call core that holds legs.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use crate::sip::message::{Host, Transport};

    /// The far end's SDP answer.
    pub const ANSWER: &str = "v=0\r\no=- 9 9 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";

    /// A leg `call_id` from `from` to `target`, over UDP from 127.0.0.1:5060.
    pub fn params(call_id: &str, target: &str, from: &str) -> LegParams {
        LegParams {
            target: Uri::parse(target).expect("uri"),
            from: NameAddr::new(Uri::parse(from).expect("uri")),
            call_id: call_id.into(),
            local_tag: "ours".into(),
            via: Via::new(
                Transport::Udp,
                Host::parse("127.0.0.1").expect("host"),
                Some(5060),
                "unused",
            ),
            branch_prefix: format!("z9hG4bK-{call_id}"),
            contact: Uri::parse("sip:hotline@127.0.0.1:5060").expect("uri"),
            media: LocalMedia {
                advertised: "127.0.0.1".parse().expect("ip"),
                rtp_port: 20000,
                sdp_session_id: 42,
                sdp_version: 1,
                srtp: crate::sip::sdes::SrtpPolicy::Optional,
                srtp_key: crate::media::srtp::MasterKey::from_bytes(&[0; 30]),
            },
            headers: Vec::new(),
            timers: TimerConfig::default(),
            refer: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::sip::message::ContentType;
    use crate::sip::uas::test_requests::request;

    use super::fixtures::ANSWER;

    fn key(name: &str, method: &str) -> TransactionKey {
        TransactionKey::client(name, method)
    }

    fn leg() -> (LegCore, Request) {
        let mut core = LegCore::new(LegParams {
            branch_prefix: "z9hG4bK-leg".into(),
            headers: vec![("P-Asserted-Identity".into(), "<sip:+4930123@x>".into())],
            ..fixtures::params(
                "leg-1",
                "sip:agent@192.0.2.5:5070",
                "sip:+4930123@127.0.0.1",
            )
        });
        let out = drain(&mut core);
        let [LegOutput::Request(invite)] = out.as_slice() else {
            panic!("{out:?}")
        };
        (core, invite.clone())
    }

    fn drain(core: &mut LegCore) -> Vec<LegOutput> {
        std::iter::from_fn(|| core.poll_output()).collect()
    }

    fn events(out: &[LegOutput]) -> Vec<LegEvent> {
        out.iter()
            .filter_map(|o| match o {
                LegOutput::Event(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }

    fn requests(out: &[LegOutput]) -> Vec<Request> {
        out.iter()
            .filter_map(|o| match o {
                LegOutput::Request(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }

    fn branch(r: &Request) -> String {
        r.headers
            .top_via()
            .expect("via")
            .branch()
            .expect("branch")
            .to_string()
    }

    /// The far end's response to `req`, from its tag `far`.
    fn reply(req: &Request, status: u16, sdp: &str) -> Response {
        let mut r = Response::for_request(req, status, "Reason");
        r.headers.ensure_to_tag("far").expect("tag");
        if (200..300).contains(&status) && req.method == Method::Invite {
            r.headers.push(
                crate::sip::message::HeaderName::Contact,
                "<sip:agent@192.0.2.5:5070>",
            );
            r.set_body(
                &ContentType::new("application", "sdp"),
                sdp.as_bytes().to_vec(),
            );
        }
        r
    }

    /// A request the far end sends in the dialog.
    fn from_far(method: &str, cseq: u32, extra: &str, body: &str) -> Request {
        request(&format!(
            "{method} sip:hotline@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.5:5070;branch=z9hG4bK-f{method}{cseq}\r\n\
From: <sip:agent@192.0.2.5:5070>;tag=far\r\nTo: <sip:+4930123@127.0.0.1>;tag=ours\r\nCall-ID: leg-1\r\n\
CSeq: {cseq} {method}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        ))
    }

    /// A leg answered and acknowledged at `now`.
    fn answered(now: Instant) -> (LegCore, Request) {
        let (mut core, invite) = leg();
        core.handle(now, LegInput::Response(reply(&invite, 200, ANSWER)));
        let out = drain(&mut core);
        assert!(matches!(
            events(&out).as_slice(),
            [LegEvent::Answered(n)] if n.remote_rtp.port() == 5000
        ));
        (core, invite)
    }

    #[test]
    fn the_invite_offers_our_media_and_names_the_caller() {
        let (core, invite) = leg();
        let t = String::from_utf8(invite.to_bytes()).expect("utf-8");
        assert!(
            t.starts_with("INVITE sip:agent@192.0.2.5:5070 SIP/2.0\r\n"),
            "{t}"
        );
        assert!(t.contains("m=audio 20000 RTP/AVP 0 8 101"), "{t}");
        assert!(t.contains("o=hotline 42 1 IN IP4 127.0.0.1"), "{t}");
        assert!(
            t.contains("P-Asserted-Identity: <sip:+4930123@x>\r\n"),
            "{t}"
        );
        assert_eq!(branch(&invite), "z9hG4bK-leg-1");
        assert_eq!(invite.headers.cseq().expect("cseq").to_string(), "1 INVITE");
        assert_eq!(core.state(), LegState::Calling);
        assert_eq!(
            core.poll_timeout(),
            None,
            "the INVITE's transaction keeps its timers"
        );
    }

    #[test]
    fn answered_is_acknowledged_with_the_invites_cseq_and_a_branch_of_its_own() {
        let now = Instant::now();
        let (mut core, invite) = leg();
        core.handle(now, LegInput::Response(reply(&invite, 180, "")));
        assert_eq!(events(&drain(&mut core)), vec![LegEvent::Ringing]);
        assert_eq!(core.state(), LegState::Ringing);
        core.handle(now, LegInput::Response(reply(&invite, 183, "")));
        assert!(drain(&mut core).is_empty(), "ringing is told once");
        let ok = reply(&invite, 200, ANSWER);
        core.handle(now, LegInput::Response(ok.clone()));
        let out = drain(&mut core);
        let [LegOutput::Ack(ack), LegOutput::Event(LegEvent::Answered(n))] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(n.remote_rtp, "192.0.2.5:5000".parse().expect("addr"));
        assert_eq!(
            ack.uri.to_string(),
            "sip:agent@192.0.2.5:5070",
            "to the Contact"
        );
        assert_eq!(ack.headers.cseq().expect("cseq").to_string(), "1 ACK");
        assert_eq!(
            branch(ack),
            "z9hG4bK-leg-2",
            "the ACK of a 2xx is a transaction of its own"
        );
        assert_eq!(ack.headers.to_addr().expect("to").tag(), Some("far"));
        assert_eq!(core.state(), LegState::Answered);
        assert!(!core.is_closing() && !core.is_over());
        // The 2xx again (our ACK was lost): the same ACK again, nothing else.
        core.handle(now, LegInput::Response(ok));
        assert_eq!(drain(&mut core), vec![LegOutput::Ack(ack.clone())]);
    }

    #[test]
    fn busy_declined_and_others_fail_the_leg_and_close_it() {
        let now = Instant::now();
        for (status, want) in [
            (486, LegFailure::Busy),
            (603, LegFailure::Declined),
            (480, LegFailure::NoAnswer),
            (
                500,
                LegFailure::Error {
                    status: 500,
                    reason: "Reason".into(),
                },
            ),
        ] {
            let (mut core, invite) = leg();
            core.handle(now, LegInput::Response(reply(&invite, status, "")));
            let out = drain(&mut core);
            assert_eq!(
                out,
                vec![
                    LegOutput::Event(LegEvent::Failed(want)),
                    LegOutput::Event(LegEvent::Closed)
                ],
                "the transaction acknowledges a non-2xx itself"
            );
            assert!(core.is_over() && !core.is_closing());
            assert_eq!(core.state(), LegState::Ended);
        }
    }

    #[test]
    fn no_final_answer_in_time_is_no_answer() {
        let now = Instant::now();
        let (mut core, invite) = leg();
        // The CANCEL's or a BYE's timeout would not be the INVITE's.
        core.handle(
            now,
            LegInput::RequestTimeout {
                key: key(&branch(&invite), "INVITE"),
            },
        );
        assert_eq!(
            events(&drain(&mut core)),
            vec![LegEvent::Failed(LegFailure::NoAnswer), LegEvent::Closed]
        );
    }

    #[test]
    fn a_hang_up_while_ringing_cancels_and_the_487_closes_quietly() {
        let now = Instant::now();
        let (mut core, invite) = leg();
        core.handle(now, LegInput::Response(reply(&invite, 180, "")));
        drain(&mut core);
        core.hang_up(now);
        let out = drain(&mut core);
        let [LegOutput::Request(cancel)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(cancel.method, Method::Cancel);
        assert_eq!(
            branch(cancel),
            branch(&invite),
            "a CANCEL matches its INVITE (§9.1)"
        );
        assert_eq!(cancel.headers.cseq().expect("cseq").to_string(), "1 CANCEL");
        assert!(core.is_closing());
        core.hang_up(now);
        assert!(drain(&mut core).is_empty(), "one CANCEL");
        // The CANCEL's 200 is not the end: the INVITE's final answer is.
        core.handle(now, LegInput::Response(reply(cancel, 200, "")));
        assert!(drain(&mut core).is_empty());
        assert!(core.is_closing());
        core.handle(now, LegInput::Response(reply(&invite, 487, "")));
        assert_eq!(
            events(&drain(&mut core)),
            vec![LegEvent::Closed],
            "no failure for a hang-up of ours"
        );
        assert!(core.is_over() && !core.is_closing());
        assert_eq!(core.poll_timeout(), None);
    }

    #[test]
    fn a_hang_up_before_any_provisional_cancels_on_the_first_one() {
        let now = Instant::now();
        let (mut core, invite) = leg();
        core.hang_up(now);
        assert!(
            drain(&mut core).is_empty(),
            "no CANCEL before a provisional (§9.1)"
        );
        assert!(core.is_closing());
        core.handle(now, LegInput::Response(reply(&invite, 100, "")));
        let reqs = requests(&drain(&mut core));
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].method, Method::Cancel);
    }

    #[test]
    fn a_cancelled_invite_without_a_final_answer_is_given_up_after_64_t1() {
        let t0 = Instant::now();
        let (mut core, invite) = leg();
        core.handle(t0, LegInput::Response(reply(&invite, 180, "")));
        core.hang_up(t0);
        drain(&mut core);
        assert_eq!(core.poll_timeout(), Some(t0 + Duration::from_secs(32)));
        core.handle_timeout(t0 + Duration::from_secs(31));
        assert!(drain(&mut core).is_empty() && core.is_closing());
        core.handle_timeout(t0 + Duration::from_secs(32));
        assert_eq!(events(&drain(&mut core)), vec![LegEvent::Closed]);
        assert_eq!(core.poll_timeout(), None);
    }

    #[test]
    fn a_200_crossing_our_cancel_is_acknowledged_then_hung_up() {
        let now = Instant::now();
        let (mut core, invite) = leg();
        core.handle(now, LegInput::Response(reply(&invite, 180, "")));
        core.hang_up(now);
        let cancel = requests(&drain(&mut core)).remove(0);
        core.handle(now, LegInput::Response(reply(&invite, 200, ANSWER)));
        let out = drain(&mut core);
        let [LegOutput::Ack(ack), LegOutput::Request(bye)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(ack.headers.cseq().expect("cseq").to_string(), "1 ACK");
        assert_eq!(bye.method, Method::Bye);
        assert_eq!(bye.headers.cseq().expect("cseq").seq, 2);
        assert_ne!(branch(bye), branch(ack));
        assert!(core.is_closing(), "the BYE's answer is awaited");
        // The CANCEL came too late: 481 or 200, it changes nothing.
        core.handle(now, LegInput::Response(reply(&cancel, 481, "")));
        assert!(drain(&mut core).is_empty());
        core.handle(now, LegInput::Response(reply(bye, 200, "")));
        assert_eq!(events(&drain(&mut core)), vec![LegEvent::Closed]);
    }

    #[test]
    fn the_far_ends_bye_hangs_the_leg_up_and_closes_it() {
        let now = Instant::now();
        let (mut core, _) = answered(now);
        core.handle(
            now,
            LegInput::Request {
                key: key("b", "BYE"),
                req: from_far("BYE", 1, "", ""),
            },
        );
        let out = drain(&mut core);
        assert!(matches!(&out[0], LegOutput::Respond { resp, .. } if resp.status == 200));
        assert_eq!(events(&out), vec![LegEvent::HungUp, LegEvent::Closed]);
        assert_eq!(core.state(), LegState::Ended);
        core.hang_up(now);
        assert!(drain(&mut core).is_empty(), "nothing left to hang up");
    }

    #[test]
    fn our_bye_and_its_200_close_the_leg() {
        let now = Instant::now();
        let (mut core, _) = answered(now);
        core.hang_up(now);
        let out = drain(&mut core);
        let [LegOutput::Request(bye)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(bye.uri.to_string(), "sip:agent@192.0.2.5:5070");
        assert_eq!(bye.headers.cseq().expect("cseq").seq, 2);
        assert_eq!(bye.headers.from_addr().expect("from").tag(), Some("ours"));
        assert_eq!(bye.headers.to_addr().expect("to").tag(), Some("far"));
        assert_eq!(branch(bye), "z9hG4bK-leg-3");
        assert!(core.is_closing());
        // A BYE crossing ours is answered, and does not count as the far end hanging up.
        core.handle(
            now,
            LegInput::Request {
                key: key("b", "BYE"),
                req: from_far("BYE", 1, "", ""),
            },
        );
        let out = drain(&mut core);
        assert!(matches!(out.as_slice(), [LegOutput::Respond { resp, .. }] if resp.status == 200));
        core.handle(now, LegInput::Response(reply(bye, 200, "")));
        assert_eq!(events(&drain(&mut core)), vec![LegEvent::Closed]);
        assert!(core.is_over() && !core.is_closing());
    }

    #[test]
    fn an_unanswered_bye_closes_the_leg_all_the_same() {
        let now = Instant::now();
        let (mut core, _) = answered(now);
        core.hang_up(now);
        let bye = requests(&drain(&mut core)).remove(0);
        core.handle(
            now,
            LegInput::RequestTimeout {
                key: key(&branch(&bye), "BYE"),
            },
        );
        assert_eq!(events(&drain(&mut core)), vec![LegEvent::Closed]);
    }

    #[test]
    fn a_reinvite_from_the_far_end_is_answered_and_its_2xx_repeated_until_the_ack() {
        let t0 = Instant::now();
        let (mut core, _) = answered(t0);
        let hold = ANSWER.replace("c=IN IP4 192.0.2.5", "c=IN IP4 0.0.0.0") + "a=sendonly\r\n";
        let req = from_far("INVITE", 1, "Content-Type: application/sdp\r\n", &hold);
        core.handle(
            t0,
            LegInput::Request {
                key: key("re", "INVITE"),
                req,
            },
        );
        let out = drain(&mut core);
        let Some(ok) = out.iter().find_map(|o| match o {
            LegOutput::Respond { resp, .. } => Some(resp.clone()),
            _ => None,
        }) else {
            panic!("{out:?}")
        };
        let t = String::from_utf8(ok.to_bytes()).expect("utf-8");
        assert_eq!(ok.status, 200);
        assert!(t.contains("o=hotline 42 2 IN IP4 127.0.0.1"), "{t}");
        assert!(t.contains("a=recvonly"), "{t}");
        assert_eq!(
            events(&out),
            vec![LegEvent::MediaUpdate {
                remote: "192.0.2.5:5000".parse().expect("addr"),
                send: false,
                reset_latch: false,
            }]
        );
        assert_eq!(core.poll_timeout(), Some(t0 + Duration::from_millis(500)));
        core.handle_timeout(t0 + Duration::from_millis(500));
        assert_eq!(drain(&mut core), vec![LegOutput::Retransmit(ok.clone())]);
        core.handle(
            t0 + Duration::from_secs(1),
            LegInput::Ack(from_far("ACK", 1, "", "")),
        );
        assert!(drain(&mut core).is_empty());
        assert_eq!(core.poll_timeout(), None, "the ACK stops the copies");
        assert!(!core.is_closing());
    }

    #[test]
    fn a_reinvite_never_acknowledged_ends_the_leg_with_a_bye() {
        let t0 = Instant::now();
        let (mut core, _) = answered(t0);
        let req = from_far("INVITE", 1, "Content-Type: application/sdp\r\n", ANSWER);
        core.handle(
            t0,
            LegInput::Request {
                key: key("re", "INVITE"),
                req,
            },
        );
        drain(&mut core);
        let mut seen = Vec::new();
        while let Some(at) = core.poll_timeout() {
            core.handle_timeout(at);
            seen.extend(drain(&mut core));
            if !requests(&seen).is_empty() {
                break;
            }
        }
        let byes = requests(&seen);
        assert_eq!(byes.len(), 1);
        assert_eq!(byes[0].method, Method::Bye);
        assert_eq!(events(&seen), vec![LegEvent::HungUp]);
        assert!(core.is_closing());
        core.handle(t0, LegInput::Response(reply(&byes[0], 200, "")));
        assert_eq!(events(&drain(&mut core)), vec![LegEvent::Closed]);
    }

    #[test]
    fn an_agents_leg_told_to_accept_refer_before_the_answer_reports_it_and_notifies() {
        let now = Instant::now();
        let (mut core, invite) = leg();
        let allowed = vec!["2XX".to_string()];
        core.accept_refer(Arc::new(TransferTargets::new(&allowed).expect("patterns")));
        core.handle(now, LegInput::Response(reply(&invite, 200, ANSWER)));
        drain(&mut core);
        let refer = |cseq: u32| LegInput::Request {
            key: key(&format!("r{cseq}"), "REFER"),
            req: from_far("REFER", cseq, "Refer-To: <sip:201@192.0.2.9>\r\n", ""),
        };
        core.handle(now, refer(1));
        let out = drain(&mut core);
        assert!(matches!(&out[0], LegOutput::Respond { resp, .. } if resp.status == 202));
        assert_eq!(
            events(&out),
            vec![LegEvent::Refer {
                target: "sip:201@192.0.2.9".into()
            }]
        );
        core.notify_refer(100, "Trying");
        let notify = requests(&drain(&mut core));
        assert_eq!(notify.len(), 1);
        assert_eq!(notify[0].method, Method::Notify);
        assert_eq!(notify[0].uri.to_string(), "sip:agent@192.0.2.5:5070");
        assert_ne!(branch(&notify[0]), branch(&invite));
    }

    #[test]
    fn a_leg_not_told_to_accept_refer_answers_405() {
        let now = Instant::now();
        let (mut core, _) = answered(now);
        core.handle(
            now,
            LegInput::Request {
                key: key("r", "REFER"),
                req: from_far("REFER", 1, "Refer-To: <sip:201@192.0.2.9>\r\n", ""),
            },
        );
        let out = drain(&mut core);
        assert!(matches!(&out[0], LegOutput::Respond { resp, .. } if resp.status == 405));
        assert!(events(&out).is_empty());
    }

    #[test]
    fn info_keys_from_the_far_end_are_answered_and_told() {
        let now = Instant::now();
        let (mut core, _) = answered(now);
        let req = from_far(
            "INFO",
            1,
            "Content-Type: application/dtmf-relay\r\n",
            "Signal=7\r\nDuration=160\r\n",
        );
        core.handle(
            now,
            LegInput::Request {
                key: key("i", "INFO"),
                req,
            },
        );
        let out = drain(&mut core);
        assert!(matches!(&out[0], LegOutput::Respond { resp, .. } if resp.status == 200));
        assert!(matches!(events(&out).as_slice(), [LegEvent::Key(k)] if k.as_char() == '7'));
        // CSeq order is the dialog's: going back is 500.
        let req = from_far("OPTIONS", 0, "", "");
        core.handle(
            now,
            LegInput::Request {
                key: key("o", "OPTIONS"),
                req,
            },
        );
        let out = drain(&mut core);
        assert!(matches!(out.as_slice(), [LegOutput::Respond { resp, .. }] if resp.status == 500));
    }

    #[test]
    fn a_request_before_the_answer_is_481() {
        let now = Instant::now();
        let (mut core, _) = leg();
        let req = from_far("INFO", 1, "", "");
        core.handle(
            now,
            LegInput::Request {
                key: key("i", "INFO"),
                req,
            },
        );
        let out = drain(&mut core);
        let [LegOutput::Respond { resp, .. }] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(resp.status, 481);
        assert_eq!(resp.headers.to_addr().expect("to").tag(), Some("ours"));
    }

    #[test]
    fn an_answer_without_usable_sdp_is_acknowledged_hung_up_and_failed() {
        let now = Instant::now();
        let (mut core, invite) = leg();
        let bad = ANSWER.replace("RTP/AVP 0 101", "RTP/AVP 18");
        core.handle(now, LegInput::Response(reply(&invite, 200, &bad)));
        let out = drain(&mut core);
        assert!(matches!(&out[0], LegOutput::Ack(_)));
        assert!(matches!(&out[1], LegOutput::Request(r) if r.method == Method::Bye));
        assert!(matches!(
            &out[2],
            LegOutput::Event(LegEvent::Failed(LegFailure::Error { status: 488, .. }))
        ));
        assert!(core.is_closing());
    }

    #[test]
    fn a_dialog_taken_by_a_call_leaves_the_leg_acknowledging_repeats_only() {
        let now = Instant::now();
        let (mut core, invite) = answered(now);
        let uas = core.take_dialog().expect("the answered dialog");
        assert_eq!(uas.state(), crate::sip::uas::UasState::Confirmed);
        assert!(core.take_dialog().is_none());
        core.hang_up(now);
        assert!(
            drain(&mut core).is_empty(),
            "the call ends the dialog, not the leg"
        );
        assert!(!core.is_closing());
        core.handle(now, LegInput::Response(reply(&invite, 200, ANSWER)));
        let out = drain(&mut core);
        assert!(matches!(out.as_slice(), [LegOutput::Ack(_)]), "{out:?}");
    }
}
