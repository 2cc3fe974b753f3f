//! An INVITE we answer, as the called side sees it (RFC 3261 §13.3), and the dialog it
//! makes: the checks that refuse a call (420, 416, 403/404, 415, 488, 503), ringing, CANCEL
//! → 487, the 2xx and its ACK (with the SDP answer of a late offer), and then everything
//! the far end may send inside the dialog: re-INVITE and UPDATE (hold, a moved address, a
//! refresh), INFO keys, OPTIONS, BYE, with CSeq order and 481 checked by the dialog. It
//! also ends the dialog from our side (BYE, crossing BYEs) and says when nothing more will
//! come. Every call uses it: calls that come in, feature codes, and, through
//! [`Uas::in_dialog`], the dialogs we created ourselves (call backs, transfer and agent
//! legs), whose in-dialog requests are served the same way.
//!
//! It is also the UAS core of RFC 3261 §13.3.1.4: every 2xx it sends to an INVITE (the
//! first answer and the answers to re-INVITEs) is sent again at T1, 2*T1... capped at T2
//! until the ACK for it comes, outside any transaction; after 64*T1 without that ACK the
//! dialog is ended with a BYE.
//!
//! Pure: no sockets, no clock, no randomness. Time is passed in (and the timers it wants
//! come out of [`Uas::poll_timeout`]); tags, CSeq starts and SDP session ids are drawn by
//! the caller. What this decides comes out of [`Uas::poll_output`]: responses for server
//! transactions, 2xx copies for the transport, requests for new client transactions, and
//! events for the call.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::media::dtmf::Key;
use crate::media::srtp::MasterKey;
use crate::sip::ALLOW;
use crate::sip::dialog::{Dialog, DialogError};
use crate::sip::message::{ContentType, HeaderName, Method, Request, Response, Uri, Via};
use crate::sip::refer::{TransferTargets, sipfrag, subscription_state};
use crate::sip::sdes::SrtpPolicy;
use crate::sip::sdp::{self, Codec, Negotiated, OfferedCrypto, RemoteSdp, SdpError};
use crate::sip::transaction::{TimerConfig, TransactionKey, Uas2xxAction, Uas2xxRetransmitter};

/// The codecs we answer and offer with, in our order of preference.
pub const CODECS: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];

/// How long our BYE may go unanswered before the dialog is given up. The client
/// transaction times out first (64 × T1); this only guards against a lost report.
pub const BYE_WAIT: Duration = Duration::from_secs(40);

/// What the Retry-After of a 500 for an overlapping INVITE says (RFC 3261 §14.2 asks for
/// 0 to 10 seconds).
const RETRY_AFTER_SECS: u32 = 5;

/// Where the call goes, as decided by whoever answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Somewhere to go: answer.
    Found,
    /// Nothing answers this number: 404.
    NotFound,
    /// The caller may not use this number: 403.
    Forbidden,
}

/// Our side of the media, as it appears in our SDP.
#[derive(Debug, Clone)]
pub struct LocalMedia {
    /// The address our SDP and Contact show the far end.
    pub advertised: IpAddr,
    pub rtp_port: u16,
    /// The SDP origin's session id (RFC 4566 §5.2).
    pub sdp_session_id: u64,
    /// The last SDP version we sent; each new answer is one higher.
    pub sdp_version: u64,
    /// Whether this leg's media is SRTP. Answering, it decides which offers are taken
    /// (see [`SrtpPolicy`]); offering (a late offer, an agent leg), `Required` offers
    /// `RTP/SAVP` with our key and anything else plain `RTP/AVP`.
    pub srtp: SrtpPolicy,
    /// Our SRTP master key and salt for this leg, drawn by the shell (unused on plain RTP).
    pub srtp_key: MasterKey,
}

impl LocalMedia {
    /// The crypto line our own offers carry: only when SRTP is required, since one offer
    /// cannot say "SRTP or not" without capability negotiation (RFC 5939).
    pub fn offered_crypto(&self) -> Option<OfferedCrypto> {
        (self.srtp == SrtpPolicy::Required).then(|| OfferedCrypto::new(self.srtp_key.clone()))
    }

    /// Negotiates a remote offer under this leg's SRTP policy.
    fn negotiate(&self, remote: &RemoteSdp) -> Result<Negotiated, SdpError> {
        sdp::negotiate_srtp(remote, &CODECS, self.srtp, &self.srtp_key)
    }
}

/// What answering an INVITE needs besides the INVITE.
#[derive(Debug, Clone)]
pub struct AnswerParams {
    /// Our To tag.
    pub local_tag: String,
    /// The first CSeq of requests we send in the dialog.
    pub first_cseq: u32,
    /// Our Contact (the dialog's target for the far end).
    pub contact: Uri,
    pub route: Route,
    /// Our media; `None` when no RTP port was free (503).
    pub media: Option<LocalMedia>,
    /// How long to ring (180) before answering; zero answers at once.
    pub ring_for: Duration,
    /// T1 and T2, for retransmitting our 2xx.
    pub timers: TimerConfig,
}

/// What the caller's side of the endpoint reports, for this dialog.
#[derive(Debug, Clone)]
pub enum UasInput {
    /// A request inside the dialog (BYE, re-INVITE, UPDATE, INFO, OPTIONS, others).
    Request { key: TransactionKey, req: Request },
    /// CANCEL for the INVITE.
    Cancel { key: TransactionKey, req: Request },
    /// The ACK for a 2xx we sent.
    Ack(Request),
    /// A response to a request we sent (our BYE).
    Response(Response),
    /// A request we sent got no final response.
    RequestTimeout,
}

/// What the UAS wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum UasOutput {
    /// Answer the server transaction `key`.
    Respond { key: TransactionKey, resp: Response },
    /// Send this 2xx again, straight to the transport: its transaction no longer
    /// retransmits it (RFC 6026), the UAS core does until the ACK.
    Retransmit(Response),
    /// Send through a new client transaction (our BYE).
    Request(Request),
    /// Something the call must know.
    Event(UasEvent),
}

/// Why the dialog ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The far end sent BYE.
    RemoteBye,
    /// Our 2xx was never acknowledged.
    AckTimeout,
    /// The ACK of a late offer had no usable answer.
    NoUsableAnswer,
}

/// What the call hears from the UAS.
#[derive(Debug, Clone, PartialEq)]
pub enum UasEvent {
    /// The INVITE was refused with this final status (the response is out).
    Refused { status: u16 },
    /// The caller cancelled before the answer (200 for the CANCEL, 487 for the INVITE).
    Cancelled,
    /// Our 2xx is out.
    Answered,
    /// Media to set up: what was negotiated, with the INVITE's offer at once, with a late
    /// offer once the ACK brings the answer.
    Media(Negotiated),
    /// A re-INVITE or UPDATE changed the media: where to send, whether to send at all
    /// (hold), and whether to learn the source address again.
    MediaUpdate {
        remote: SocketAddr,
        send: bool,
        reset_latch: bool,
    },
    /// A key in a SIP INFO.
    Key(Key),
    /// A REFER this dialog accepts (see [`Uas::accept_refer`]) was answered 202: the far
    /// end asks for a blind transfer to `target` (the URI to dial, already checked).
    /// Report how it goes with [`Uas::notify_refer`].
    Refer { target: String },
    /// The dialog ended by the far end or by a failed answer; a BYE of ours, when needed,
    /// is already out (see `Closed`).
    Ended(Ending),
    /// Nothing more will come: the dialog is over and our BYE (if any) has its answer or
    /// was given up on.
    Closed,
}

/// Where the answer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UasState {
    /// Refused with a final response; nothing more.
    Refused,
    /// Passed the checks; the answer waits for [`Uas::answer`].
    Checked,
    /// 180 sent; the 2xx follows at the deadline.
    Ringing,
    /// 2xx sent, ACK awaited.
    Answered,
    /// ACK received (or a dialog we created): requests flow both ways.
    Confirmed,
    /// Our BYE is out; its answer is awaited.
    Closing,
    /// Over.
    Terminated,
}

pub struct Uas {
    state: UasState,
    local_tag: String,
    /// `None` when the INVITE was too broken to make a dialog (it is refused at once).
    dialog: Option<Dialog>,
    /// The transaction of the INVITE we answer; `None` for a dialog we created.
    invite_key: Option<TransactionKey>,
    /// The INVITE we answer, until the ACK of our 2xx: nothing answers it after that, and
    /// the caller's whole request (its headers, its SDP) need not be kept to the call's
    /// end.
    invite: Option<Request>,
    contact: Uri,
    media: Option<LocalMedia>,
    ring_for: Duration,
    /// The offer the INVITE carried, negotiated; `None` for a late offer.
    offer: Option<Negotiated>,
    /// The media as last agreed.
    negotiated: Option<Negotiated>,
    /// We sent an offer in a 2xx and its answer is due in the ACK (a late offer or a
    /// re-INVITE without SDP): another offer now is glare (491).
    offer_pending: bool,
    /// The call wants to hang up before our 2xx was acknowledged (§15: not before the ACK).
    hang_up_pending: bool,
    /// When ringing ends, or when waiting for our BYE's answer ends.
    deadline: Option<Instant>,
    timers: TimerConfig,
    /// Our latest 2xx to an INVITE while its ACK is awaited.
    unacked: Option<Unacked>,
    /// Whom a REFER may name; `None`: every REFER is refused (405).
    refer: Option<Arc<TransferTargets>>,
    /// A REFER was accepted and its final NOTIFY is not out yet.
    refer_active: bool,
    out: VecDeque<UasOutput>,
}

/// A 2xx waiting for its ACK: the ACK names the INVITE by its CSeq number.
struct Unacked {
    cseq: u32,
    copies: Uas2xxRetransmitter<Response>,
}

impl Uas {
    /// Checks `invite` and prepares its answer. A refused INVITE gets its final response
    /// at once (see [`Uas::poll_output`]); otherwise the call calls [`Uas::answer`] when
    /// it is ready (or [`Uas::refuse`] if something of its own fails).
    pub fn new(key: TransactionKey, invite: Request, p: AnswerParams) -> Uas {
        let dialog = Dialog::uas(&invite, &p.local_tag, p.first_cseq).ok();
        let broken = dialog.is_none();
        let mut uas = Uas {
            state: UasState::Checked,
            local_tag: p.local_tag,
            dialog,
            invite_key: Some(key),
            invite: Some(invite),
            contact: p.contact,
            media: p.media,
            ring_for: p.ring_for,
            offer: None,
            negotiated: None,
            offer_pending: false,
            hang_up_pending: false,
            deadline: None,
            timers: p.timers,
            unacked: None,
            refer: None,
            refer_active: false,
            out: VecDeque::new(),
        };
        if broken {
            uas.refuse(400, "Bad Request (unusable headers)");
            return uas;
        }
        if let Err((status, reason, extra)) = uas.check(p.route) {
            uas.refuse_with(status, reason, extra);
        }
        uas
    }

    /// A dialog we created (an outgoing INVITE that was answered), served from now on as
    /// this side of it: its in-dialog requests, and its BYE.
    pub fn in_dialog(
        dialog: Dialog,
        contact: Uri,
        media: LocalMedia,
        negotiated: Option<Negotiated>,
        timers: TimerConfig,
    ) -> Uas {
        Uas {
            state: UasState::Confirmed,
            local_tag: dialog.local_tag.clone(),
            dialog: Some(dialog),
            invite_key: None,
            invite: None,
            contact,
            media: Some(media),
            ring_for: Duration::ZERO,
            offer: None,
            negotiated,
            offer_pending: false,
            hang_up_pending: false,
            deadline: None,
            timers,
            unacked: None,
            refer: None,
            refer_active: false,
            out: VecDeque::new(),
        }
    }

    pub fn state(&self) -> UasState {
        self.state
    }

    /// Lets the far end ask for a blind transfer (REFER) to a target `targets` allows: an
    /// agent's leg when `agent_transfers` is configured. Without it every REFER gets 405.
    pub fn accept_refer(&mut self, targets: Arc<TransferTargets>) {
        self.refer = Some(targets);
    }

    /// Reports how the transfer the far end asked for goes (RFC 3515 §2.4.4): a NOTIFY
    /// with the target's `status` as a sipfrag; a final status (≥ 200) ends the implicit
    /// subscription. Nothing is sent without an accepted REFER, or once the dialog ends.
    pub fn notify_refer(&mut self, status: u16, reason: &str, via: Via) {
        if !self.refer_active || self.state != UasState::Confirmed {
            return;
        }
        let Some(dialog) = self.dialog.as_mut() else {
            return;
        };
        let contact = self.contact.clone();
        let mut req = dialog.request(Method::Notify, via, Some(&contact));
        req.headers.push(HeaderName::Event, "refer");
        req.headers.push(
            HeaderName::new("Subscription-State"),
            subscription_state(status),
        );
        req.set_body(
            &ContentType::new("message", "sipfrag"),
            sipfrag(status, reason).into_bytes(),
        );
        self.out.push_back(UasOutput::Request(req));
        if status >= 200 {
            self.refer_active = false;
        }
    }

    /// True once nothing more will happen in this dialog.
    pub fn is_over(&self) -> bool {
        matches!(self.state, UasState::Refused | UasState::Terminated)
    }

    /// True while our BYE is out or waits for the ACK before it may go.
    pub fn is_closing(&self) -> bool {
        self.state == UasState::Closing || self.hang_up_pending
    }

    pub fn dialog(&self) -> Option<&Dialog> {
        self.dialog.as_ref()
    }

    /// The media as last agreed.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// The INVITE's own offer, once checked (`None` for a late offer).
    pub fn offer(&self) -> Option<&Negotiated> {
        self.offer.as_ref()
    }

    /// The order RFC 3261 §8.2 and the call's needs ask for.
    fn check(&mut self, route: Route) -> Result<(), Refusal> {
        let Some(inv) = &self.invite else {
            return Ok(());
        };
        // §8.2.2.3: we support no extension a caller could require.
        if let Ok(required) = inv.headers.require()
            && !required.is_empty()
        {
            let list = required.join(", ");
            return Err((420, "Bad Extension", vec![(HeaderName::Unsupported, list)]));
        }
        let scheme = inv.uri.scheme().to_ascii_lowercase();
        if !matches!(scheme.as_str(), "sip" | "sips" | "tel") {
            return Err((416, "Unsupported URI Scheme", Vec::new()));
        }
        match route {
            Route::Found => {}
            Route::NotFound => return Err((404, "Not Found", Vec::new())),
            Route::Forbidden => return Err((403, "Forbidden", Vec::new())),
        }
        if !inv.body.is_empty() {
            let ct = inv.headers.content_type().ok().flatten();
            if !ct.as_ref().is_some_and(|c| c.is("application", "sdp")) {
                let accept = vec![(HeaderName::Accept, "application/sdp".to_string())];
                return Err((415, "Unsupported Media Type", accept));
            }
            // §8.2.3: a body we cannot decode is refused the same way.
            let encoded = inv
                .headers
                .get(HeaderName::ContentEncoding)
                .map(|v| v.to_str_lossy().trim().to_ascii_lowercase())
                .is_some_and(|e| !e.is_empty() && e != "identity");
            if encoded {
                let accept = vec![(HeaderName::new("Accept-Encoding"), "identity".to_string())];
                return Err((415, "Unsupported Media Type", accept));
            }
            let negotiated = sdp::parse_offer(&inv.body).and_then(|r| match &self.media {
                Some(m) => m.negotiate(&r),
                // Refused with 503 below whatever the offer.
                None => sdp::negotiate(&r, &CODECS),
            });
            match negotiated {
                Ok(n) => self.offer = Some(n),
                Err(e) => {
                    let status = e.status_code();
                    let reason = if status == 488 {
                        "Not Acceptable Here"
                    } else {
                        "Bad Request"
                    };
                    return Err((status, reason, vec![warning(&e)]));
                }
            }
        }
        if self.media.is_none() {
            let retry = vec![(HeaderName::RetryAfter, "10".to_string())];
            return Err((503, "Service Unavailable", retry));
        }
        Ok(())
    }

    /// Refuses the INVITE for a reason of the call's own (say, its flow is missing).
    pub fn refuse(&mut self, status: u16, reason: &str) {
        self.refuse_with(status, reason, Vec::new());
    }

    fn refuse_with(&mut self, status: u16, reason: &str, extra: Vec<(HeaderName, String)>) {
        if !matches!(self.state, UasState::Checked | UasState::Ringing) {
            return;
        }
        let mut resp = self.invite_response(status, reason);
        for (n, v) in extra {
            resp.headers.push(n, v);
        }
        self.respond_invite(resp);
        self.state = UasState::Refused;
        self.deadline = None;
        self.event(UasEvent::Refused { status });
    }

    /// Answers the checked INVITE: rings first when asked to, then sends the 2xx.
    pub fn answer(&mut self, now: Instant) {
        if self.state != UasState::Checked {
            return;
        }
        if self.ring_for.is_zero() {
            return self.send_2xx(now);
        }
        let resp = self.invite_response(180, "Ringing");
        self.respond_invite(resp);
        self.state = UasState::Ringing;
        self.deadline = Some(now + self.ring_for);
    }

    /// Ends the dialog from our side: BYE once answered (after the ACK, §15), a final
    /// refusal before.
    pub fn hang_up(&mut self, now: Instant, via: Via) {
        match self.state {
            UasState::Checked | UasState::Ringing => {
                self.refuse(480, "Temporarily Unavailable");
            }
            UasState::Answered => self.hang_up_pending = true,
            UasState::Confirmed => self.send_bye(now, via),
            UasState::Refused | UasState::Closing | UasState::Terminated => {}
        }
    }

    fn send_bye(&mut self, now: Instant, via: Via) {
        let Some(dialog) = self.dialog.as_mut() else {
            return;
        };
        let bye = dialog.request(Method::Bye, via, None);
        self.out.push_back(UasOutput::Request(bye));
        self.state = UasState::Closing;
        self.deadline = Some(now + BYE_WAIT);
        self.hang_up_pending = false;
        // The dialog is ending: a 2xx still unacknowledged has nothing left to establish.
        self.unacked = None;
    }

    /// Something the endpoint reported. `via` gives the Via for a BYE we may have to send.
    pub fn handle(&mut self, now: Instant, input: UasInput, via: impl FnOnce() -> Via) {
        match input {
            UasInput::Request { key, req } => self.on_request(now, key, req),
            UasInput::Cancel { key, req } => self.on_cancel(key, req),
            UasInput::Ack(ack) => self.on_ack(now, ack, via),
            UasInput::Response(resp) => {
                let is_bye = resp.headers.cseq().is_ok_and(|c| c.method == Method::Bye);
                if is_bye && resp.status >= 200 && self.state == UasState::Closing {
                    self.close();
                }
            }
            UasInput::RequestTimeout => {
                if self.state == UasState::Closing {
                    self.close();
                }
            }
        }
    }

    /// When [`Uas::handle_timeout`] wants to be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let copies = self.unacked.as_ref().and_then(|u| u.copies.poll_timeout());
        match (self.deadline, copies) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Does what is due at `now`: the 2xx after ringing, a copy of an unacknowledged
    /// 2xx (or, after 64*T1, the BYE that gives up on it; `via` is its Via), the end
    /// of the wait for our BYE's answer.
    pub fn handle_timeout(&mut self, now: Instant, via: impl FnOnce() -> Via) {
        if let Some(u) = self.unacked.as_mut() {
            match u.copies.handle_timeout(now) {
                Some(Uas2xxAction::Retransmit(ok)) => self.out.push_back(UasOutput::Retransmit(ok)),
                Some(Uas2xxAction::GaveUp) => {
                    self.unacked = None;
                    self.ack_timeout(now, via);
                }
                None => {}
            }
        }
        if self.deadline.is_none_or(|d| d > now) {
            return;
        }
        self.deadline = None;
        match self.state {
            UasState::Ringing => self.send_2xx(now),
            UasState::Closing => self.close(),
            _ => {}
        }
    }

    /// 64*T1 passed without the ACK of our 2xx (§13.3.1.4 for the first answer, §14.2
    /// for a re-INVITE's): the dialog is ended with a BYE.
    fn ack_timeout(&mut self, now: Instant, via: impl FnOnce() -> Via) {
        if matches!(self.state, UasState::Answered | UasState::Confirmed) {
            self.event(UasEvent::Ended(Ending::AckTimeout));
            self.send_bye(now, via());
        }
    }

    /// Sends a 2xx to an INVITE (through its server transaction) and keeps it for
    /// retransmission until the ACK.
    fn send_invite_2xx(&mut self, now: Instant, key: TransactionKey, resp: Response) {
        if let Ok(cseq) = resp.headers.cseq() {
            self.unacked = Some(Unacked {
                cseq: cseq.seq,
                copies: Uas2xxRetransmitter::new(now, resp.clone(), &self.timers),
            });
        }
        self.out.push_back(UasOutput::Respond { key, resp });
    }

    /// The next thing to do (the queue's room is let go once drained).
    pub fn poll_output(&mut self) -> Option<UasOutput> {
        crate::outputs::pop_releasing(&mut self.out)
    }

    fn close(&mut self) {
        self.state = UasState::Terminated;
        self.deadline = None;
        self.unacked = None;
        self.event(UasEvent::Closed);
    }

    fn event(&mut self, ev: UasEvent) {
        self.out.push_back(UasOutput::Event(ev));
    }

    fn send_2xx(&mut self, now: Instant) {
        let Some(media) = self.media.clone() else {
            return;
        };
        let body = match &self.offer {
            Some(n) => sdp::build_answer(
                media.advertised,
                media.rtp_port,
                n,
                media.sdp_session_id,
                media.sdp_version,
            ),
            None => {
                // Late offer: we offer, the ACK answers (§13.2.1).
                self.offer_pending = true;
                sdp::build_offer(
                    media.advertised,
                    media.rtp_port,
                    media.sdp_session_id,
                    media.sdp_version,
                    media.offered_crypto().as_ref(),
                )
            }
        };
        let mut resp = self.invite_response(200, "OK");
        resp.set_body(&ContentType::new("application", "sdp"), body);
        // Said before the 2xx is handed out, so the shell opens the call's record before
        // the caller can learn that it was answered (a kill just after loses no call).
        self.event(UasEvent::Answered);
        if let Some(key) = &self.invite_key {
            let key = key.clone();
            self.send_invite_2xx(now, key, resp);
        }
        self.state = UasState::Answered;
        self.deadline = None;
        if let Some(n) = self.offer.clone() {
            self.negotiated = Some(n.clone());
            self.event(UasEvent::Media(n));
        }
    }

    /// A response to the INVITE, with our tag; a dialog-making one (≥ 180) carries the
    /// Record-Route and our Contact (§12.1.1), a 2xx what we allow.
    fn invite_response(&self, status: u16, reason: &str) -> Response {
        let mut resp = match &self.invite {
            Some(inv) => Response::for_request(inv, status, reason),
            // Unused: only an INVITE we answer has responses of its own.
            None => Response::for_request(
                &Request::new(Method::Invite, self.contact.clone()),
                status,
                reason,
            ),
        };
        let _ = resp.headers.ensure_to_tag(&self.local_tag);
        let Some(inv) = &self.invite else {
            return resp;
        };
        if (180..300).contains(&status) {
            resp.copy_record_route(inv);
            resp.headers
                .push(HeaderName::Contact, format!("<{}>", self.contact));
        }
        if (200..300).contains(&status) {
            resp.headers.push(HeaderName::Allow, ALLOW);
            resp.headers.push(HeaderName::Supported, "");
        }
        resp
    }

    fn respond_invite(&mut self, resp: Response) {
        if let Some(key) = &self.invite_key {
            self.out.push_back(UasOutput::Respond {
                key: key.clone(),
                resp,
            });
        }
    }

    fn respond(&mut self, key: TransactionKey, req: &Request, status: u16, reason: &str) {
        let resp = self.response(req, status, reason);
        self.out.push_back(UasOutput::Respond { key, resp });
    }

    fn response(&self, req: &Request, status: u16, reason: &str) -> Response {
        let mut resp = Response::for_request(req, status, reason);
        let _ = resp.headers.ensure_to_tag(&self.local_tag);
        resp
    }

    fn on_cancel(&mut self, key: TransactionKey, req: Request) {
        if self.invite_key.is_none() {
            // Nobody may cancel an INVITE we did not receive.
            return self.respond(key, &req, 481, "Call/Transaction Does Not Exist");
        }
        // The CANCEL's own response carries the tag of the INVITE's responses (§9.2).
        self.respond(key, &req, 200, "OK");
        if matches!(self.state, UasState::Checked | UasState::Ringing) {
            let resp = self.invite_response(487, "Request Terminated");
            self.respond_invite(resp);
            self.state = UasState::Terminated;
            self.deadline = None;
            self.event(UasEvent::Cancelled);
        }
        // After the 2xx a CANCEL changes nothing: the caller sends BYE.
    }

    fn on_ack(&mut self, now: Instant, ack: Request, via: impl FnOnce() -> Via) {
        let seq = ack.headers.cseq().ok().map(|c| c.seq);
        if self.unacked.as_ref().is_some_and(|u| Some(u.cseq) == seq) {
            // A stale ACK (of an earlier INVITE of the dialog) does not stop the copies.
            self.unacked = None;
        }
        match self.state {
            UasState::Answered => {
                self.state = UasState::Confirmed;
                // The INVITE is answered for good: nothing more is said in answer to it.
                self.invite = None;
                if self.offer_pending {
                    self.offer_pending = false;
                    let offered = self.media.as_ref().and_then(LocalMedia::offered_crypto);
                    match sdp::parse_offer(&ack.body)
                        .and_then(|r| sdp::accept_answer(&r, &CODECS, offered.as_ref()))
                    {
                        Ok(n) => {
                            self.negotiated = Some(n.clone());
                            self.event(UasEvent::Media(n));
                        }
                        Err(_) => {
                            self.event(UasEvent::Ended(Ending::NoUsableAnswer));
                            return self.send_bye(now, via());
                        }
                    }
                }
                if self.hang_up_pending {
                    self.send_bye(now, via());
                }
            }
            UasState::Confirmed if self.offer_pending => {
                // The answer to the offer of a re-INVITE without SDP.
                self.offer_pending = false;
                let offered = self.current_crypto();
                if let Ok(n) = sdp::parse_offer(&ack.body)
                    .and_then(|r| sdp::accept_answer(&r, &CODECS, offered.as_ref()))
                    .and_then(|n| self.same_keys(n))
                {
                    self.apply(n);
                }
            }
            _ => {}
        }
    }

    fn on_request(&mut self, now: Instant, key: TransactionKey, req: Request) {
        let accepted = match self.dialog.as_mut() {
            Some(d) => d.accept_request(&req),
            None => Err(DialogError::NotThisDialog),
        };
        match accepted {
            Ok(()) => {}
            Err(DialogError::CSeqOutOfOrder { .. }) => {
                return self.respond(key, &req, 500, "Server Internal Error (CSeq out of order)");
            }
            Err(_) => return self.respond(key, &req, 481, "Call/Transaction Does Not Exist"),
        }
        if matches!(self.state, UasState::Refused | UasState::Terminated) {
            return self.respond(key, &req, 481, "Call/Transaction Does Not Exist");
        }
        if self.state == UasState::Closing && req.method != Method::Bye {
            return self.respond(key, &req, 481, "Call/Transaction Does Not Exist");
        }
        match req.method {
            Method::Bye => self.on_bye(key, req),
            Method::Invite => self.on_reinvite(now, key, req),
            Method::Update => self.on_update(key, req),
            Method::Info => self.on_info(key, req),
            Method::Options => {
                let mut r = self.response(&req, 200, "OK");
                r.headers.push(HeaderName::Allow, ALLOW);
                r.headers.push(HeaderName::Accept, "application/sdp");
                self.out.push_back(UasOutput::Respond { key, resp: r });
            }
            Method::Refer if self.refer.is_some() => self.on_refer(key, req),
            Method::Other(_) => self.refuse_method(key, &req, 501, "Not Implemented"),
            _ => self.refuse_method(key, &req, 405, "Method Not Allowed"),
        }
    }

    /// A REFER on a dialog that accepts them: 202 and the target for the call, or a
    /// refusal (400 malformed, 403 not allowed, 491 while one is in progress).
    fn on_refer(&mut self, key: TransactionKey, req: Request) {
        let Some(targets) = self.refer.as_ref() else {
            return;
        };
        if self.refer_active || self.state != UasState::Confirmed {
            tracing::info!(reason = "refer", "REFER refused: a transfer is in progress");
            return self.respond(key, &req, 491, "Request Pending");
        }
        match targets.target(&req) {
            Ok(target) => {
                let mut r = self.response(&req, 202, "Accepted");
                r.headers
                    .push(HeaderName::Contact, format!("<{}>", self.contact));
                self.out.push_back(UasOutput::Respond { key, resp: r });
                self.refer_active = true;
                self.event(UasEvent::Refer { target });
            }
            Err(e) => {
                let (status, reason) = e.status();
                tracing::warn!(reason = "refer", status, why = %e, "REFER refused");
                let mut r = self.response(&req, status, reason);
                r.headers.push(
                    HeaderName::Warning,
                    format!("399 hotline \"{}\"", e.to_string().replace('"', "'")),
                );
                self.out.push_back(UasOutput::Respond { key, resp: r });
            }
        }
    }

    fn refuse_method(&mut self, key: TransactionKey, req: &Request, status: u16, reason: &str) {
        if req.method == Method::Refer {
            // A transfer a peer asks for would make the engine call where it says: never.
            tracing::warn!(reason = "refer", status, "REFER refused");
        }
        let mut r = self.response(req, status, reason);
        r.headers.push(HeaderName::Allow, ALLOW);
        self.out.push_back(UasOutput::Respond { key, resp: r });
    }

    fn on_bye(&mut self, key: TransactionKey, req: Request) {
        self.respond(key, &req, 200, "OK");
        match self.state {
            // Crossing BYEs: ours still waits for its answer.
            UasState::Closing => {}
            UasState::Checked | UasState::Ringing => {
                // A BYE in the early dialog ends the INVITE too (§15).
                let resp = self.invite_response(487, "Request Terminated");
                self.respond_invite(resp);
                self.state = UasState::Terminated;
                self.deadline = None;
                self.event(UasEvent::Cancelled);
            }
            _ => {
                self.state = UasState::Terminated;
                self.deadline = None;
                self.unacked = None;
                self.event(UasEvent::Ended(Ending::RemoteBye));
                self.event(UasEvent::Closed);
            }
        }
    }

    /// A second INVITE while the first has no final answer is refused 500 (§14.2); an
    /// offer while ours waits for its answer is glare (491).
    fn overlapping(&mut self, key: &TransactionKey, req: &Request) -> bool {
        if matches!(self.state, UasState::Checked | UasState::Ringing) {
            let mut r = self.response(req, 500, "Server Internal Error");
            r.headers
                .push(HeaderName::RetryAfter, RETRY_AFTER_SECS.to_string());
            self.out.push_back(UasOutput::Respond {
                key: key.clone(),
                resp: r,
            });
            return true;
        }
        if self.offer_pending {
            let r = self.response(req, 491, "Request Pending");
            self.out.push_back(UasOutput::Respond {
                key: key.clone(),
                resp: r,
            });
            return true;
        }
        false
    }

    /// A re-INVITE: hold, unhold, a moved address, or a refresh without SDP.
    fn on_reinvite(&mut self, now: Instant, key: TransactionKey, req: Request) {
        if self.overlapping(&key, &req) {
            return;
        }
        let Some(media) = self.media.clone() else {
            return self.respond(key, &req, 488, "Not Acceptable Here");
        };
        let body = if req.body.is_empty() {
            // No offer: we offer what we have, the ACK answers (§14.2).
            self.offer_pending = true;
            sdp::build_offer(
                media.advertised,
                media.rtp_port,
                media.sdp_session_id,
                media.sdp_version,
                self.current_crypto().as_ref(),
            )
        } else {
            match self.new_offer(&req.body) {
                Ok(body) => body,
                Err(e) => return self.refuse_offer(key, &req, &e),
            }
        };
        let mut r = self.response(&req, 200, "OK");
        r.headers
            .push(HeaderName::Contact, format!("<{}>", self.contact));
        r.headers.push(HeaderName::Allow, ALLOW);
        r.set_body(&ContentType::new("application", "sdp"), body);
        self.send_invite_2xx(now, key, r);
    }

    /// UPDATE (RFC 3311): an offer answered in its own 200, or a refresh without one. An
    /// offer that crosses one of ours is 491 and one in the early dialog, before we
    /// answered the INVITE's, 500 with Retry-After (§5.2); an offer we cannot take is
    /// refused and the old session stays.
    fn on_update(&mut self, key: TransactionKey, req: Request) {
        if !req.body.is_empty() {
            let ct = req.headers.content_type().ok().flatten();
            if !ct.as_ref().is_some_and(|c| c.is("application", "sdp")) {
                let mut r = self.response(&req, 415, "Unsupported Media Type");
                r.headers.push(HeaderName::Accept, "application/sdp");
                self.out.push_back(UasOutput::Respond { key, resp: r });
                return;
            }
            if self.overlapping(&key, &req) {
                return;
            }
        }
        let mut r = self.response(&req, 200, "OK");
        r.headers
            .push(HeaderName::Contact, format!("<{}>", self.contact));
        if !req.body.is_empty() {
            match self.new_offer(&req.body) {
                Ok(body) => r.set_body(&ContentType::new("application", "sdp"), body),
                Err(e) => return self.refuse_offer(key, &req, &e),
            }
        }
        self.out.push_back(UasOutput::Respond { key, resp: r });
    }

    /// Negotiates a new offer and applies it; returns our answer.
    fn new_offer(&mut self, body: &[u8]) -> Result<Vec<u8>, SdpError> {
        let Some(media) = self.media.as_ref() else {
            return Err(SdpError::NoAudio);
        };
        let n = sdp::parse_offer(body).and_then(|r| media.negotiate(&r))?;
        let n = self.same_keys(n)?;
        let Some(media) = self.media.as_mut() else {
            return Err(SdpError::NoAudio);
        };
        media.sdp_version += 1;
        let answer = sdp::build_answer(
            media.advertised,
            media.rtp_port,
            &n,
            media.sdp_session_id,
            media.sdp_version,
        );
        self.apply(n);
        Ok(answer)
    }

    /// The crypto line of a re-offer of ours: the current call's, if it is SRTP, so the
    /// media keeps its keys; else what the leg's policy offers.
    fn current_crypto(&self) -> Option<OfferedCrypto> {
        match self.negotiated.as_ref().and_then(|n| n.srtp.as_ref()) {
            Some(k) => Some(OfferedCrypto {
                tag: k.tag,
                suite: k.suite,
                key: k.outbound.clone(),
            }),
            None => self.media.as_ref().and_then(LocalMedia::offered_crypto),
        }
    }

    /// A new offer or answer inside the dialog must keep the SRTP of the call as it is:
    /// the media session keeps its keys for the whole call (no re-keying), so plain media
    /// may not turn into SRTP, nor the reverse, nor the far end's key change. Our own key
    /// stays the one already agreed.
    fn same_keys(&self, mut n: Negotiated) -> Result<Negotiated, SdpError> {
        let Some(old) = self.negotiated.as_ref() else {
            return Ok(n);
        };
        match (&old.srtp, n.srtp.as_mut()) {
            (None, None) => Ok(n),
            (Some(o), Some(k)) if o.inbound == k.inbound && o.suite == k.suite => {
                k.outbound = o.outbound.clone();
                Ok(n)
            }
            _ => Err(SdpError::SrtpRekey),
        }
    }

    /// Makes `n` the media; the session follows a new address, or stops sending on hold.
    fn apply(&mut self, n: Negotiated) {
        let changed = self
            .negotiated
            .as_ref()
            .is_none_or(|old| old.remote_rtp != n.remote_rtp);
        // On hold the address may be 0.0.0.0: keep sending (nothing) to the old one.
        let remote = if n.remote_rtp.ip().is_unspecified() || !changed {
            self.negotiated
                .as_ref()
                .map(|o| o.remote_rtp)
                .unwrap_or(n.remote_rtp)
        } else {
            n.remote_rtp
        };
        self.event(UasEvent::MediaUpdate {
            remote,
            send: !n.on_hold(),
            reset_latch: changed && !n.remote_rtp.ip().is_unspecified(),
        });
        self.negotiated = Some(n);
    }

    /// The old session stays (§14.2).
    fn refuse_offer(&mut self, key: TransactionKey, req: &Request, e: &SdpError) {
        let status = e.status_code();
        let reason = if status == 488 {
            "Not Acceptable Here"
        } else {
            "Bad Request"
        };
        let mut r = self.response(req, status, reason);
        let (n, v) = warning(e);
        r.headers.push(n, v);
        self.out.push_back(UasOutput::Respond { key, resp: r });
    }

    fn on_info(&mut self, key: TransactionKey, req: Request) {
        let ct = req.headers.content_type().ok().flatten();
        if req.body.is_empty() {
            return self.respond(key, &req, 200, "OK");
        }
        match info_key(ct.as_ref(), &req.body) {
            Ok(k) => {
                self.respond(key, &req, 200, "OK");
                self.event(UasEvent::Key(k));
            }
            Err(InfoBody::Unsupported) => {
                let mut r = self.response(&req, 415, "Unsupported Media Type");
                r.headers.push(
                    HeaderName::Accept,
                    "application/dtmf-relay, application/dtmf",
                );
                self.out.push_back(UasOutput::Respond { key, resp: r });
            }
            Err(InfoBody::Malformed) => {
                // A type we read, with a body that names no key: the sender's fault
                // (RFC 3261 §21.4.1), not a type to negotiate away.
                let mut r = self.response(&req, 400, "Bad Request");
                r.headers.push(
                    HeaderName::Warning,
                    "399 hotline \"no DTMF key in the body\"",
                );
                self.out.push_back(UasOutput::Respond { key, resp: r });
            }
        }
    }
}

type Refusal = (u16, &'static str, Vec<(HeaderName, String)>);

fn warning(e: &SdpError) -> (HeaderName, String) {
    (
        HeaderName::Warning,
        format!("304 hotline \"{}\"", e.to_string().replace('"', "'")),
    )
}

/// Why an INFO body gave no key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfoBody {
    /// A content type that carries no keys for us (answered 415 with `Accept`).
    Unsupported,
    /// One of our types, but no key can be read from it (answered 400).
    Malformed,
}

/// Reads a key from a SIP INFO body: `application/dtmf-relay` (`Signal=5`) or
/// `application/dtmf` (`5`).
pub fn info_key(content_type: Option<&ContentType>, body: &[u8]) -> Result<Key, InfoBody> {
    let ct = content_type.ok_or(InfoBody::Unsupported)?;
    let relay = ct.is("application", "dtmf-relay");
    if !relay && !ct.is("application", "dtmf") {
        return Err(InfoBody::Unsupported);
    }
    let text = std::str::from_utf8(body).map_err(|_| InfoBody::Malformed)?;
    let signal = if relay {
        text.lines()
            .find_map(|l| {
                let (k, v) = l.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("signal")
                    .then(|| v.trim().to_string())
            })
            .ok_or(InfoBody::Malformed)?
    } else {
        text.trim().to_string()
    };
    let mut chars = signal.chars();
    let c = chars.next().ok_or(InfoBody::Malformed)?;
    let key = if chars.next().is_some() {
        // RFC 2833-style event numbers ("Signal=11" for #) are seen from some gateways.
        signal.parse::<u8>().ok().and_then(Key::from_event_code)
    } else {
        Key::from_char(c)
    };
    key.ok_or(InfoBody::Malformed)
}

/// Requests a caller sends, for the tests of the UAS and of the calls built on it.
#[cfg(any(test, feature = "test-support"))]
pub mod test_requests {
    use crate::sip::message::{Limits, Message, Request, parse};

    pub const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";

    pub fn request(text: &str) -> Request {
        match parse(text.as_bytes(), &Limits::default()).expect("parses") {
            Message::Request(r) => r,
            Message::Response(_) => unreachable!(),
        }
    }

    /// An INVITE with `extra` headers and `body` (an SDP offer unless told otherwise).
    pub fn invite_with(uri: &str, extra: &str, body: &str) -> Request {
        let ct = if body.is_empty() || extra.contains("Content-Type") {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".to_string()
        };
        request(&format!(
            "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bK-inv\r\n\
From: <sip:alice@192.0.2.1>;tag=theirs\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: c1\r\n\
CSeq: 1 INVITE\r\nContact: <sip:alice@192.0.2.1:5070>\r\nRecord-Route: <sip:p1;lr>\r\n\
{extra}{ct}Content-Length: {}\r\n\r\n{body}",
            body.len()
        ))
    }

    /// A request inside the dialog (our tag in To).
    pub fn in_dialog(method: &str, cseq: u32, extra: &str, body: &str) -> Request {
        request(&format!(
            "{method} sip:hotline@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bK-{method}{cseq}\r\n\
From: <sip:alice@192.0.2.1>;tag=theirs\r\nTo: <sip:100@127.0.0.1>;tag=ours\r\nCall-ID: c1\r\n\
CSeq: {cseq} {method}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::test_requests::{OFFER, in_dialog, invite_with, request};
    use super::*;
    use crate::sip::message::{Host, Transport};

    fn key(name: &str) -> TransactionKey {
        TransactionKey::client(name, "INVITE")
    }

    fn via() -> Via {
        Via::new(
            Transport::Udp,
            Host::parse("127.0.0.1").expect("host"),
            Some(5060),
            "z9hG4bK-bye",
        )
    }

    /// A UAS for `invite` that has been told to answer at `now`.
    fn answering(now: Instant, invite: Request, ring_for: Duration) -> Uas {
        let mut uas = Uas::new(key("inv"), invite, params(ring_for));
        uas.answer(now);
        uas
    }

    fn params(ring_for: Duration) -> AnswerParams {
        AnswerParams {
            local_tag: "ours".into(),
            first_cseq: 100,
            contact: Uri::parse("sip:hotline@127.0.0.1:5060").expect("uri"),
            route: Route::Found,
            media: Some(LocalMedia {
                advertised: "127.0.0.1".parse().expect("ip"),
                rtp_port: 20000,
                sdp_session_id: 77,
                sdp_version: 1,
                srtp: SrtpPolicy::Optional,
                srtp_key: MasterKey::from_bytes(&[0; 30]),
            }),
            ring_for,
            timers: TimerConfig::default(),
        }
    }

    fn drain(uas: &mut Uas) -> Vec<UasOutput> {
        std::iter::from_fn(|| uas.poll_output()).collect()
    }

    fn responses(out: &[UasOutput]) -> Vec<(String, u16)> {
        out.iter()
            .filter_map(|o| match o {
                UasOutput::Respond { resp, .. } => Some((
                    resp.headers
                        .cseq()
                        .expect("cseq")
                        .method
                        .as_str()
                        .to_string(),
                    resp.status,
                )),
                _ => None,
            })
            .collect()
    }

    fn events(out: &[UasOutput]) -> Vec<UasEvent> {
        out.iter()
            .filter_map(|o| match o {
                UasOutput::Event(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }

    fn response_of(out: &[UasOutput], status: u16) -> Response {
        out.iter()
            .find_map(|o| match o {
                UasOutput::Respond { resp, .. } if resp.status == status => Some(resp.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no {status} in {out:?}"))
    }

    fn text(r: &Response) -> String {
        String::from_utf8(r.to_bytes()).expect("utf-8")
    }

    /// An answered, acknowledged call on an offer.
    fn confirmed(now: Instant) -> Uas {
        let mut uas = answering(
            now,
            invite_with("sip:100@127.0.0.1", "", OFFER),
            Duration::ZERO,
        );
        uas.handle(now, UasInput::Ack(in_dialog("ACK", 1, "", "")), via);
        drain(&mut uas);
        assert_eq!(uas.state(), UasState::Confirmed);
        uas
    }

    fn refused_with(inv: Request, p: AnswerParams) -> Response {
        let mut uas = Uas::new(key("inv"), inv, p);
        assert_eq!(uas.state(), UasState::Refused);
        assert!(uas.is_over());
        let out = drain(&mut uas);
        let [
            UasOutput::Respond { resp, .. },
            UasOutput::Event(UasEvent::Refused { status }),
        ] = out.as_slice()
        else {
            panic!("{out:?}")
        };
        assert_eq!(resp.status, *status);
        assert_eq!(resp.headers.to_addr().expect("to").tag(), Some("ours"));
        resp.clone()
    }

    fn refer_to(uas: &mut Uas, now: Instant, cseq: u32, refer_to: &str) -> Vec<UasOutput> {
        let extra = if refer_to.is_empty() {
            String::new()
        } else {
            format!("Refer-To: {refer_to}\r\n")
        };
        uas.handle(
            now,
            UasInput::Request {
                key: key(&format!("refer{cseq}")),
                req: in_dialog("REFER", cseq, &extra, ""),
            },
            via,
        );
        drain(uas)
    }

    fn agent_leg(now: Instant) -> Uas {
        let mut uas = confirmed(now);
        let allowed = vec!["2XX".to_string()];
        uas.accept_refer(Arc::new(TransferTargets::new(&allowed).expect("patterns")));
        uas
    }

    #[test]
    fn a_refer_is_refused_with_405_unless_the_dialog_accepts_them() {
        let now = Instant::now();
        let mut uas = confirmed(now);
        let out = refer_to(&mut uas, now, 2, "<sip:201@192.0.2.9>");
        assert_eq!(responses(&out), vec![("REFER".into(), 405)]);
        assert!(events(&out).is_empty());
    }

    #[test]
    fn an_accepted_refer_gets_202_and_its_target_then_notifies_follow_rfc_3515() {
        let now = Instant::now();
        let mut uas = agent_leg(now);
        let out = refer_to(&mut uas, now, 2, "<sip:201@192.0.2.9:5070;transport=udp>");
        assert_eq!(responses(&out), vec![("REFER".into(), 202)]);
        assert_eq!(
            events(&out),
            vec![UasEvent::Refer {
                target: "sip:201@192.0.2.9:5070".into()
            }]
        );
        // A second REFER while this one runs.
        let out = refer_to(&mut uas, now, 3, "<sip:202@192.0.2.9>");
        assert_eq!(responses(&out), vec![("REFER".into(), 491)]);
        uas.notify_refer(100, "Trying", via());
        uas.notify_refer(486, "Busy Here", via());
        // Nothing more once the subscription is over.
        uas.notify_refer(200, "OK", via());
        let notifies: Vec<Request> = drain(&mut uas)
            .into_iter()
            .filter_map(|o| match o {
                UasOutput::Request(r) => Some(r),
                _ => None,
            })
            .collect();
        assert_eq!(notifies.len(), 2);
        for (n, (state, body)) in notifies.iter().zip([
            ("active;expires=60", "SIP/2.0 100 Trying\r\n"),
            ("terminated;reason=noresource", "SIP/2.0 486 Busy Here\r\n"),
        ]) {
            let text = String::from_utf8(n.to_bytes()).expect("utf-8");
            assert_eq!(n.method, Method::Notify);
            assert!(text.contains("Event: refer\r\n"), "{text}");
            assert!(
                text.contains(&format!("Subscription-State: {state}\r\n")),
                "{text}"
            );
            assert!(text.contains("Content-Type: message/sipfrag\r\n"), "{text}");
            assert_eq!(&n.body[..], body.as_bytes());
            assert_eq!(n.headers.to_addr().expect("to").tag(), Some("theirs"));
        }
        // After the final NOTIFY a new REFER is taken.
        let out = refer_to(&mut uas, now, 4, "<sip:202@192.0.2.9>");
        assert_eq!(responses(&out), vec![("REFER".into(), 202)]);
    }

    #[test]
    fn a_refer_without_one_target_is_400_and_one_not_allowed_403_with_no_event() {
        let now = Instant::now();
        let mut uas = agent_leg(now);
        for (cseq, refer, status) in [
            (2, "", 400),
            (3, "<sip:201@a>, <sip:202@a>", 400),
            (4, "<sip:900@192.0.2.9>", 403),
            (5, "<sip:alice@192.0.2.9>", 403),
            (6, "<sip:201@192.0.2.9?Replaces=abc>", 403),
        ] {
            let out = refer_to(&mut uas, now, cseq, refer);
            assert_eq!(responses(&out), vec![("REFER".into(), status)], "{refer}");
            assert!(events(&out).is_empty(), "{refer}");
        }
        // No NOTIFY without an accepted REFER.
        uas.notify_refer(200, "OK", via());
        assert!(drain(&mut uas).is_empty());
    }

    #[test]
    fn an_offer_is_answered_with_200_our_contact_and_the_media_at_once() {
        let now = Instant::now();
        let mut uas = Uas::new(
            key("inv"),
            invite_with("sip:100@127.0.0.1", "", OFFER),
            params(Duration::ZERO),
        );
        assert_eq!(uas.state(), UasState::Checked);
        assert!(drain(&mut uas).is_empty(), "nothing before the answer");
        uas.answer(now);
        let out = drain(&mut uas);
        let ok = response_of(&out, 200);
        let t = text(&ok);
        assert!(
            t.contains("Contact: <sip:hotline@127.0.0.1:5060>\r\n"),
            "{t}"
        );
        assert!(t.contains("Record-Route: <sip:p1;lr>\r\n"), "{t}");
        assert!(t.contains("Allow: "), "{t}");
        assert!(t.contains("m=audio 20000 RTP/AVP 0"), "{t}");
        assert_eq!(ok.headers.to_addr().expect("to").tag(), Some("ours"));
        let ev = events(&out);
        assert_eq!(ev[0], UasEvent::Answered);
        assert!(matches!(&ev[1], UasEvent::Media(n) if n.remote_rtp.port() == 4000));
        assert_eq!(uas.state(), UasState::Answered);
        uas.handle(now, UasInput::Ack(in_dialog("ACK", 1, "", "")), via);
        assert_eq!(uas.state(), UasState::Confirmed);
        assert!(drain(&mut uas).is_empty());
    }

    #[test]
    fn a_required_extension_is_refused_420_naming_it() {
        let r = refused_with(
            invite_with("sip:100@127.0.0.1", "Require: 100rel, timer\r\n", OFFER),
            params(Duration::ZERO),
        );
        assert_eq!(r.status, 420);
        assert!(text(&r).contains("Unsupported: 100rel, timer\r\n"));
    }

    #[test]
    fn an_unknown_uri_scheme_is_refused_416() {
        let r = refused_with(
            invite_with("mailto:a@example.com", "", OFFER),
            params(Duration::ZERO),
        );
        assert_eq!(r.status, 416);
    }

    #[test]
    fn no_route_is_404_and_a_forbidden_one_403() {
        let mut p = params(Duration::ZERO);
        p.route = Route::NotFound;
        assert_eq!(
            refused_with(invite_with("sip:9@h", "", OFFER), p.clone()).status,
            404
        );
        p.route = Route::Forbidden;
        assert_eq!(
            refused_with(invite_with("sip:*41@h", "", OFFER), p).status,
            403
        );
    }

    #[test]
    fn a_body_that_is_not_plain_sdp_is_refused_415() {
        let r = refused_with(
            invite_with("sip:100@h", "Content-Type: text/plain\r\n", "hello"),
            params(Duration::ZERO),
        );
        assert_eq!(r.status, 415);
        assert!(text(&r).contains("Accept: application/sdp\r\n"));
        let r = refused_with(
            invite_with("sip:100@h", "Content-Encoding: gzip\r\n", OFFER),
            params(Duration::ZERO),
        );
        assert_eq!(r.status, 415);
        assert!(text(&r).contains("Accept-Encoding: identity\r\n"));
    }

    #[test]
    fn an_offer_without_a_common_codec_is_refused_488_with_a_warning() {
        let offer = OFFER.replace("RTP/AVP 0 101", "RTP/AVP 18");
        let r = refused_with(invite_with("sip:100@h", "", &offer), params(Duration::ZERO));
        assert_eq!(r.status, 488);
        assert!(text(&r).contains("Warning: 304 hotline"));
        let r = refused_with(
            invite_with("sip:100@h", "", "v=0\r\nnonsense\r\n"),
            params(Duration::ZERO),
        );
        assert_eq!(r.status, 400);
    }

    #[test]
    fn no_rtp_port_is_503_with_retry_after() {
        let mut p = params(Duration::ZERO);
        p.media = None;
        let r = refused_with(invite_with("sip:100@h", "", OFFER), p);
        assert_eq!(r.status, 503);
        assert!(text(&r).contains("Retry-After: 10\r\n"));
    }

    #[test]
    fn the_call_may_refuse_after_the_checks() {
        let mut uas = Uas::new(
            key("inv"),
            invite_with("sip:100@h", "", OFFER),
            params(Duration::ZERO),
        );
        uas.refuse(500, "Server Internal Error");
        let out = drain(&mut uas);
        assert_eq!(responses(&out), vec![("INVITE".into(), 500)]);
        uas.answer(Instant::now());
        assert!(
            drain(&mut uas).is_empty(),
            "a refused INVITE is not answered"
        );
    }

    #[test]
    fn it_rings_then_answers_at_the_deadline() {
        let t0 = Instant::now();
        let ring = Duration::from_secs(3);
        let mut uas = Uas::new(
            key("inv"),
            invite_with("sip:100@h", "", OFFER),
            params(ring),
        );
        uas.answer(t0);
        let out = drain(&mut uas);
        let ringing = response_of(&out, 180);
        assert_eq!(ringing.headers.to_addr().expect("to").tag(), Some("ours"));
        assert_eq!(uas.poll_timeout(), Some(t0 + ring));
        uas.handle_timeout(t0 + ring - Duration::from_millis(1), via);
        assert!(drain(&mut uas).is_empty(), "not before the deadline");
        uas.handle_timeout(t0 + ring, via);
        let out = drain(&mut uas);
        assert_eq!(responses(&out), vec![("INVITE".into(), 200)]);
        assert_eq!(
            uas.poll_timeout(),
            Some(t0 + ring + Duration::from_millis(500)),
            "only the 2xx's first copy is due"
        );
    }

    #[test]
    fn cancel_while_ringing_is_200_and_487_both_with_our_tag() {
        let t0 = Instant::now();
        let mut uas = Uas::new(
            key("inv"),
            invite_with("sip:100@h", "", OFFER),
            params(Duration::from_secs(5)),
        );
        uas.answer(t0);
        drain(&mut uas);
        let mut cancel = invite_with("sip:100@h", "", "");
        cancel.method = Method::Cancel;
        cancel.headers.set(HeaderName::CSeq, "1 CANCEL");
        uas.handle(
            t0,
            UasInput::Cancel {
                key: key("cancel"),
                req: cancel,
            },
            via,
        );
        let out = drain(&mut uas);
        assert_eq!(
            responses(&out),
            vec![("CANCEL".into(), 200), ("INVITE".into(), 487)]
        );
        for o in &out {
            if let UasOutput::Respond { resp, .. } = o {
                assert_eq!(resp.headers.to_addr().expect("to").tag(), Some("ours"));
            }
        }
        assert_eq!(events(&out), vec![UasEvent::Cancelled]);
        assert!(uas.is_over());
        assert_eq!(uas.poll_timeout(), None, "the ring timer is gone");
    }

    #[test]
    fn a_cancel_after_the_answer_changes_nothing() {
        let mut uas = confirmed(Instant::now());
        let mut cancel = in_dialog("CANCEL", 1, "", "");
        cancel.headers.set(HeaderName::CSeq, "1 CANCEL");
        uas.handle(
            Instant::now(),
            UasInput::Cancel {
                key: key("c"),
                req: cancel,
            },
            via,
        );
        let out = drain(&mut uas);
        assert_eq!(responses(&out), vec![("CANCEL".into(), 200)]);
        assert_eq!(uas.state(), UasState::Confirmed);
    }

    #[test]
    fn a_late_offer_is_ours_in_the_200_and_the_ack_answers_it() {
        let now = Instant::now();
        let mut uas = answering(now, invite_with("sip:100@h", "", ""), Duration::ZERO);
        let out = drain(&mut uas);
        let ok = response_of(&out, 200);
        assert!(text(&ok).contains("m=audio 20000 RTP/AVP 0 8"), "we offer");
        assert_eq!(
            events(&out),
            vec![UasEvent::Answered],
            "no media before the answer"
        );
        let ack = in_dialog("ACK", 1, "Content-Type: application/sdp\r\n", OFFER);
        uas.handle(now, UasInput::Ack(ack), via);
        let out = drain(&mut uas);
        assert!(
            matches!(events(&out).as_slice(), [UasEvent::Media(n)] if n.remote_rtp.port() == 4000)
        );
        assert_eq!(uas.state(), UasState::Confirmed);
    }

    #[test]
    fn a_late_offer_ack_without_an_answer_ends_with_bye() {
        let now = Instant::now();
        let mut uas = answering(now, invite_with("sip:100@h", "", ""), Duration::ZERO);
        drain(&mut uas);
        uas.handle(now, UasInput::Ack(in_dialog("ACK", 1, "", "")), via);
        let out = drain(&mut uas);
        assert_eq!(events(&out), vec![UasEvent::Ended(Ending::NoUsableAnswer)]);
        assert!(matches!(&out[1], UasOutput::Request(r) if r.method == Method::Bye));
        assert_eq!(uas.state(), UasState::Closing);
    }

    #[test]
    fn a_hang_up_before_the_ack_waits_for_it() {
        let now = Instant::now();
        let mut uas = answering(now, invite_with("sip:100@h", "", OFFER), Duration::ZERO);
        drain(&mut uas);
        uas.hang_up(now, via());
        assert!(
            drain(&mut uas).is_empty(),
            "no BYE before the ACK (RFC 3261 §15)"
        );
        uas.handle(now, UasInput::Ack(in_dialog("ACK", 1, "", "")), via);
        let out = drain(&mut uas);
        assert!(matches!(out.as_slice(), [UasOutput::Request(r)] if r.method == Method::Bye));
    }

    #[test]
    fn a_hold_reinvite_gets_a_new_answer_and_stops_sending() {
        let now = Instant::now();
        let mut uas = confirmed(now);
        let hold = OFFER.replace("c=IN IP4 192.0.2.1", "c=IN IP4 0.0.0.0") + "a=sendonly\r\n";
        let req = in_dialog("INVITE", 2, "Content-Type: application/sdp\r\n", &hold);
        uas.handle(
            now,
            UasInput::Request {
                key: key("re"),
                req,
            },
            via,
        );
        let out = drain(&mut uas);
        let ok = response_of(&out, 200);
        let t = text(&ok);
        assert!(t.contains("o=hotline 77 2 IN IP4"), "a new version: {t}");
        assert!(t.contains("a=recvonly"), "{t}");
        assert!(t.contains("Contact: <sip:hotline@127.0.0.1:5060>"), "{t}");
        assert_eq!(
            events(&out),
            vec![UasEvent::MediaUpdate {
                remote: "192.0.2.1:4000".parse().expect("addr"),
                send: false,
                reset_latch: false,
            }]
        );
        // Off hold, to a new address: follow it.
        let moved = OFFER.replace("192.0.2.1\r\nt=", "192.0.2.9\r\nt=");
        let req = in_dialog("INVITE", 3, "Content-Type: application/sdp\r\n", &moved);
        uas.handle(
            now,
            UasInput::Request {
                key: key("re2"),
                req,
            },
            via,
        );
        let out = drain(&mut uas);
        assert_eq!(
            events(&out),
            vec![UasEvent::MediaUpdate {
                remote: "192.0.2.9:4000".parse().expect("addr"),
                send: true,
                reset_latch: true,
            }]
        );
    }

    #[test]
    fn a_reinvite_with_a_bad_offer_keeps_the_old_session() {
        let now = Instant::now();
        let mut uas = confirmed(now);
        let offer = OFFER.replace("RTP/AVP 0 101", "RTP/AVP 18");
        let req = in_dialog("INVITE", 2, "Content-Type: application/sdp\r\n", &offer);
        uas.handle(
            now,
            UasInput::Request {
                key: key("re"),
                req,
            },
            via,
        );
        let out = drain(&mut uas);
        assert_eq!(responses(&out), vec![("INVITE".into(), 488)]);
        assert!(events(&out).is_empty());
        assert_eq!(uas.negotiated().expect("kept").remote_rtp.port(), 4000);
    }

    #[test]
    fn a_reinvite_without_sdp_is_offered_to_and_a_second_offer_meanwhile_is_glare() {
        let now = Instant::now();
        let mut uas = confirmed(now);
        let req = in_dialog("INVITE", 2, "", "");
        uas.handle(
            now,
            UasInput::Request {
                key: key("re"),
                req,
            },
            via,
        );
        let out = drain(&mut uas);
        assert!(text(&response_of(&out, 200)).contains("m=audio 20000"));
        let req = in_dialog("INVITE", 3, "Content-Type: application/sdp\r\n", OFFER);
        uas.handle(
            now,
            UasInput::Request {
                key: key("re2"),
                req,
            },
            via,
        );
        assert_eq!(responses(&drain(&mut uas)), vec![("INVITE".into(), 491)]);
        // The ACK answers our offer; then offers are welcome again.
        let ack = in_dialog("ACK", 2, "Content-Type: application/sdp\r\n", OFFER);
        uas.handle(now, UasInput::Ack(ack), via);
        drain(&mut uas);
        let req = in_dialog("INVITE", 4, "Content-Type: application/sdp\r\n", OFFER);
        uas.handle(
            now,
            UasInput::Request {
                key: key("re3"),
                req,
            },
            via,
        );
        assert_eq!(responses(&drain(&mut uas)), vec![("INVITE".into(), 200)]);
    }

    #[test]
    fn an_invite_in_the_early_dialog_is_500_with_retry_after() {
        let now = Instant::now();
        let mut uas = answering(
            now,
            invite_with("sip:100@h", "", OFFER),
            Duration::from_secs(5),
        );
        drain(&mut uas);
        let req = in_dialog("INVITE", 2, "Content-Type: application/sdp\r\n", OFFER);
        uas.handle(
            now,
            UasInput::Request {
                key: key("re"),
                req,
            },
            via,
        );
        let out = drain(&mut uas);
        let r = response_of(&out, 500);
        assert!(text(&r).contains("Retry-After: 5\r\n"));
        assert_eq!(uas.state(), UasState::Ringing);
    }

    #[test]
    fn an_update_with_an_offer_is_answered_in_its_200() {
        let now = Instant::now();
        let mut uas = confirmed(now);
        let moved = OFFER.replace("m=audio 4000", "m=audio 4002");
        let req = in_dialog("UPDATE", 2, "Content-Type: application/sdp\r\n", &moved);
        uas.handle(
            now,
            UasInput::Request {
                key: key("up"),
                req,
            },
            via,
        );
        let out = drain(&mut uas);
        assert!(text(&response_of(&out, 200)).contains("m=audio 20000"));
        assert!(
            matches!(events(&out).as_slice(), [UasEvent::MediaUpdate { remote, .. }] if remote.port() == 4002)
        );
        let req = in_dialog("UPDATE", 3, "", "");
        uas.handle(
            now,
            UasInput::Request {
                key: key("up2"),
                req,
            },
            via,
        );
        let out = drain(&mut uas);
        assert_eq!(responses(&out), vec![("UPDATE".into(), 200)]);
        assert!(events(&out).is_empty());
    }

    #[test]
    fn an_update_gets_the_answer_rfc_3311_asks_for() {
        let now = Instant::now();
        let mut uas = confirmed(now);
        let sdp = "Content-Type: application/sdp\r\n";
        let update = |uas: &mut Uas, cseq: u32, extra: &str, body: &str| {
            let req = in_dialog("UPDATE", cseq, extra, body);
            uas.handle(
                now,
                UasInput::Request {
                    key: key(&format!("up{cseq}")),
                    req,
                },
                via,
            );
            drain(uas)
        };

        // We say we take UPDATE.
        let options = in_dialog("OPTIONS", 2, "", "");
        let opt_key = key("opt");
        uas.handle(
            now,
            UasInput::Request {
                key: opt_key,
                req: options,
            },
            via,
        );
        let allow = text(&response_of(&drain(&mut uas), 200));
        assert!(allow.contains("UPDATE"), "{allow}");

        // An offer answered: 200 with our answer and our Contact (§5.2).
        let moved = OFFER.replace("m=audio 4000", "m=audio 4002");
        let out = update(&mut uas, 3, sdp, &moved);
        let ok = text(&response_of(&out, 200));
        assert!(ok.contains("m=audio 20000"), "{ok}");
        assert!(ok.contains("Contact: <sip:hotline@127.0.0.1:5060>"), "{ok}");
        assert_eq!(events(&out).len(), 1);

        // An offer with no codec we speak: 488 with a Warning, the session stays.
        let g729 = OFFER
            .replace("m=audio 4000 RTP/AVP 0 101", "m=audio 4004 RTP/AVP 18")
            .replace("a=rtpmap:101 telephone-event/8000\r\n", "");
        let out = update(&mut uas, 4, sdp, &g729);
        assert_eq!(responses(&out), vec![("UPDATE".into(), 488)]);
        assert!(text(&response_of(&out, 488)).contains("Warning: 304 "));
        assert!(events(&out).is_empty(), "no media change: {out:?}");

        // A body that is not SDP: 415 naming what we accept.
        let out = update(&mut uas, 5, "Content-Type: text/plain\r\n", "hello");
        assert!(text(&response_of(&out, 415)).contains("Accept: application/sdp"));

        // An offer crossing ours (a re-INVITE without SDP, answered by our offer, not yet
        // acknowledged): 491.
        let reinvite = in_dialog("INVITE", 6, "", "");
        uas.handle(
            now,
            UasInput::Request {
                key: key("re6"),
                req: reinvite,
            },
            via,
        );
        assert_eq!(responses(&drain(&mut uas)), vec![("INVITE".into(), 200)]);
        let out = update(&mut uas, 7, sdp, OFFER);
        assert_eq!(responses(&out), vec![("UPDATE".into(), 491)]);
        // Without an offer it is only a refresh, answered at once.
        let out = update(&mut uas, 8, "", "");
        assert_eq!(responses(&out), vec![("UPDATE".into(), 200)]);

        // In the early dialog, before our answer to the INVITE's offer: 500, Retry-After.
        let mut early = answering(
            now,
            invite_with("sip:100@h", "", OFFER),
            Duration::from_secs(5),
        );
        drain(&mut early);
        let out = update(&mut early, 2, sdp, OFFER);
        assert!(text(&response_of(&out, 500)).contains("Retry-After: "));
        assert_eq!(early.state(), UasState::Ringing);
    }

    #[test]
    fn info_keys_are_read_from_both_bodies_unreadable_ones_are_400_and_others_415() {
        let now = Instant::now();
        let mut uas = confirmed(now);
        // One INFO with this CSeq, Content-Type (none when empty) and body; what came out.
        let mut info = |cseq: u32, ct: &str, body: &str| {
            let ct = if ct.is_empty() {
                String::new()
            } else {
                format!("Content-Type: {ct}\r\n")
            };
            let req = in_dialog("INFO", cseq, &ct, body);
            uas.handle(
                now,
                UasInput::Request {
                    key: key("info"),
                    req,
                },
                via,
            );
            drain(&mut uas)
        };
        let cases = [
            (
                "application/dtmf-relay",
                "Signal=5\r\nDuration=160\r\n",
                Some('5'),
            ),
            ("application/dtmf", "#", Some('#')),
            ("application/dtmf-relay", "Signal=11\r\n", Some('#')),
        ];
        for (i, (ct, body, want)) in cases.into_iter().enumerate() {
            let out = info(2 + i as u32, ct, body);
            assert_eq!(responses(&out), vec![("INFO".into(), 200)]);
            let keys: Vec<char> = events(&out)
                .into_iter()
                .filter_map(|e| match e {
                    UasEvent::Key(k) => Some(k.as_char()),
                    _ => None,
                })
                .collect();
            assert_eq!(keys, want.into_iter().collect::<Vec<_>>());
        }
        let out = info(9, "text/plain", "5");
        assert!(
            text(&response_of(&out, 415))
                .contains("Accept: application/dtmf-relay, application/dtmf")
        );
        for (i, (ct, body)) in [
            ("application/dtmf-relay", "Duration=160\r\n"),
            ("application/dtmf", "Z"),
            ("application/dtmf", "\u{0}\u{ff}"),
        ]
        .into_iter()
        .enumerate()
        {
            let out = info(10 + i as u32, ct, body);
            assert!(
                text(&response_of(&out, 400)).contains("Warning: 399 hotline"),
                "{ct} {body:?}"
            );
            assert!(events(&out).is_empty(), "{ct} {body:?}: {out:?}");
        }
        assert_eq!(responses(&info(20, "", "")), vec![("INFO".into(), 200)]);
    }

    #[test]
    fn options_is_200_with_allow_and_other_methods_405_or_501() {
        let now = Instant::now();
        let mut uas = confirmed(now);
        uas.handle(
            now,
            UasInput::Request {
                key: key("o"),
                req: in_dialog("OPTIONS", 2, "", ""),
            },
            via,
        );
        let out = drain(&mut uas);
        assert!(text(&response_of(&out, 200)).contains("Allow: INVITE"));
        uas.handle(
            now,
            UasInput::Request {
                key: key("s"),
                req: in_dialog("SUBSCRIBE", 3, "", ""),
            },
            via,
        );
        assert!(text(&response_of(&drain(&mut uas), 405)).contains("Allow: "));
        uas.handle(
            now,
            UasInput::Request {
                key: key("x"),
                req: in_dialog("FROBNICATE", 4, "", ""),
            },
            via,
        );
        assert!(text(&response_of(&drain(&mut uas), 501)).contains("Allow: "));
        assert_eq!(uas.state(), UasState::Confirmed);
    }

    #[test]
    fn cseq_going_back_is_500_and_another_dialog_481() {
        let now = Instant::now();
        let mut uas = confirmed(now);
        uas.handle(
            now,
            UasInput::Request {
                key: key("o"),
                req: in_dialog("OPTIONS", 5, "", ""),
            },
            via,
        );
        drain(&mut uas);
        uas.handle(
            now,
            UasInput::Request {
                key: key("b"),
                req: in_dialog("BYE", 4, "", ""),
            },
            via,
        );
        let out = drain(&mut uas);
        assert_eq!(responses(&out), vec![("BYE".into(), 500)]);
        assert!(
            events(&out).is_empty(),
            "an out-of-order BYE does not end the call"
        );
        let mut stranger = in_dialog("BYE", 6, "", "");
        stranger.headers.set_to_tag("other").expect("tag");
        uas.handle(
            now,
            UasInput::Request {
                key: key("b"),
                req: stranger,
            },
            via,
        );
        assert_eq!(responses(&drain(&mut uas)), vec![("BYE".into(), 481)]);
        assert_eq!(uas.state(), UasState::Confirmed);
    }

    #[test]
    fn the_far_ends_bye_ends_and_closes_the_dialog() {
        let now = Instant::now();
        let mut uas = confirmed(now);
        uas.handle(
            now,
            UasInput::Request {
                key: key("b"),
                req: in_dialog("BYE", 2, "", ""),
            },
            via,
        );
        let out = drain(&mut uas);
        assert_eq!(responses(&out), vec![("BYE".into(), 200)]);
        assert_eq!(
            events(&out),
            vec![UasEvent::Ended(Ending::RemoteBye), UasEvent::Closed]
        );
        assert!(uas.is_over());
        uas.handle(
            now,
            UasInput::Request {
                key: key("i"),
                req: in_dialog("INFO", 3, "", ""),
            },
            via,
        );
        assert_eq!(responses(&drain(&mut uas)), vec![("INFO".into(), 481)]);
    }

    #[test]
    fn our_bye_waits_for_its_answer_and_answers_a_crossing_bye() {
        let t0 = Instant::now();
        let mut uas = confirmed(t0);
        uas.hang_up(t0, via());
        let out = drain(&mut uas);
        let [UasOutput::Request(bye)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(uas.state(), UasState::Closing);
        assert_eq!(uas.poll_timeout(), Some(t0 + BYE_WAIT));
        uas.hang_up(t0, via());
        assert!(drain(&mut uas).is_empty(), "one BYE");
        uas.handle(
            t0,
            UasInput::Request {
                key: key("b"),
                req: in_dialog("BYE", 2, "", ""),
            },
            via,
        );
        let out = drain(&mut uas);
        assert_eq!(responses(&out), vec![("BYE".into(), 200)]);
        assert!(
            events(&out).is_empty(),
            "still waiting for our BYE's answer"
        );
        let ok = Response::for_request(bye, 200, "OK");
        uas.handle(t0, UasInput::Response(ok), via);
        assert_eq!(events(&drain(&mut uas)), vec![UasEvent::Closed]);
        assert!(uas.is_over());
    }

    #[test]
    fn an_unanswered_bye_is_given_up_on() {
        let t0 = Instant::now();
        let mut uas = confirmed(t0);
        uas.hang_up(t0, via());
        drain(&mut uas);
        uas.handle_timeout(t0 + BYE_WAIT, via);
        assert_eq!(events(&drain(&mut uas)), vec![UasEvent::Closed]);
        let mut other = confirmed(t0);
        other.hang_up(t0, via());
        drain(&mut other);
        other.handle(t0, UasInput::RequestTimeout, via);
        assert_eq!(events(&drain(&mut other)), vec![UasEvent::Closed]);
    }

    #[test]
    fn a_dialog_we_created_is_served_the_same_way() {
        let now = Instant::now();
        // The dialog of an INVITE we sent, as the far end's 2xx made it.
        let ours = request(
            "INVITE sip:agent@192.0.2.5 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK-o\r\n\
From: <sip:100@127.0.0.1>;tag=ours\r\nTo: <sip:agent@192.0.2.5>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\
Content-Length: 0\r\n\r\n",
        );
        let mut ok = Response::for_request(&ours, 200, "OK");
        ok.headers.ensure_to_tag("theirs").expect("tag");
        let dialog = Dialog::uac(&ours, &ok).expect("dialog");
        let media = params(Duration::ZERO).media.expect("media");
        let mut uas = Uas::in_dialog(
            dialog,
            Uri::parse("sip:hotline@127.0.0.1").expect("uri"),
            media,
            None,
            TimerConfig::default(),
        );
        assert_eq!(uas.state(), UasState::Confirmed);
        let req = in_dialog("INVITE", 1, "Content-Type: application/sdp\r\n", OFFER);
        uas.handle(
            now,
            UasInput::Request {
                key: key("re"),
                req,
            },
            via,
        );
        let out = drain(&mut uas);
        assert!(text(&response_of(&out, 200)).contains("o=hotline 77 2 "));
        uas.hang_up(now, via());
        let out = drain(&mut uas);
        let [UasOutput::Request(bye)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(bye.headers.cseq().expect("cseq").seq, 2);
        assert_eq!(bye.uri.to_string(), "sip:agent@192.0.2.5");
    }

    /// What the timers put out until `until` seconds after `t0`, with when.
    fn run_timers(uas: &mut Uas, t0: Instant, until: f64) -> Vec<(f64, UasOutput)> {
        let end = t0 + Duration::from_secs_f64(until);
        let mut seen = Vec::new();
        while let Some(at) = uas.poll_timeout().filter(|at| *at <= end) {
            uas.handle_timeout(at, via);
            for o in drain(uas) {
                seen.push(((at - t0).as_secs_f64(), o));
            }
        }
        seen
    }

    /// When the copies of `ok` went out.
    fn copies_of(seen: &[(f64, UasOutput)], ok: &Response) -> Vec<f64> {
        seen.iter()
            .filter_map(|(t, o)| match o {
                UasOutput::Retransmit(r) => {
                    assert_eq!(r, ok, "a copy is the 2xx as it was sent");
                    Some(*t)
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn our_2xx_is_sent_again_at_t1_doubling_to_t2_until_the_ack() {
        let t0 = Instant::now();
        let mut uas = answering(t0, invite_with("sip:100@h", "", OFFER), Duration::ZERO);
        let ok = response_of(&drain(&mut uas), 200);
        assert_eq!(uas.poll_timeout(), Some(t0 + Duration::from_millis(500)));
        let seen = run_timers(&mut uas, t0, 12.0);
        assert_eq!(copies_of(&seen, &ok), [0.5, 1.5, 3.5, 7.5, 11.5]);
        assert_eq!(seen.len(), 5, "nothing but copies: {seen:?}");
        // An ACK of another INVITE of the dialog does not stop them; the one of ours does.
        let at = t0 + Duration::from_secs(12);
        uas.handle(at, UasInput::Ack(in_dialog("ACK", 7, "", "")), via);
        assert_eq!(uas.poll_timeout(), Some(t0 + Duration::from_secs_f64(15.5)));
        uas.handle(at, UasInput::Ack(in_dialog("ACK", 1, "", "")), via);
        assert_eq!(uas.poll_timeout(), None, "no timer left once acknowledged");
        assert_eq!(uas.state(), UasState::Confirmed);
        assert!(drain(&mut uas).is_empty());
    }

    #[test]
    fn the_copies_start_with_the_2xx_after_ringing_and_follow_the_configured_t1() {
        let t0 = Instant::now();
        let mut p = params(Duration::from_secs(2));
        p.timers = TimerConfig::with_t1(Duration::from_millis(50));
        let mut uas = Uas::new(key("inv"), invite_with("sip:100@h", "", OFFER), p);
        uas.answer(t0);
        assert_eq!(responses(&drain(&mut uas)), vec![("INVITE".into(), 180)]);
        let seen = run_timers(&mut uas, t0, 2.4);
        // The answer is announced first (the shell opens the record), then the 2xx.
        assert!(
            matches!(&seen[0], (t, UasOutput::Event(UasEvent::Answered)) if *t == 2.0),
            "{seen:?}"
        );
        let ok = match &seen[1] {
            (t, UasOutput::Respond { resp, .. }) if *t == 2.0 && resp.status == 200 => resp.clone(),
            other => panic!("{other:?}"),
        };
        let copies: Vec<f64> = copies_of(&seen, &ok)
            .into_iter()
            .map(|t| ((t - 2.0) * 1000.0).round())
            .collect();
        assert_eq!(copies, [50.0, 150.0, 350.0]);
    }

    #[test]
    fn no_ack_in_64_t1_ends_the_call_with_a_bye() {
        let t0 = Instant::now();
        let mut uas = answering(t0, invite_with("sip:100@h", "", OFFER), Duration::ZERO);
        let ok = response_of(&drain(&mut uas), 200);
        let seen = run_timers(&mut uas, t0, 32.0);
        assert_eq!(
            copies_of(&seen, &ok),
            [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
        );
        let last: Vec<&UasOutput> = seen
            .iter()
            .filter(|(t, _)| *t == 32.0)
            .map(|(_, o)| o)
            .collect();
        let [
            UasOutput::Event(UasEvent::Ended(Ending::AckTimeout)),
            UasOutput::Request(bye),
        ] = last.as_slice()
        else {
            panic!("{last:?}")
        };
        assert_eq!(bye.method, Method::Bye);
        assert_eq!(bye.uri.to_string(), "sip:alice@192.0.2.1:5070");
        assert_eq!(bye.headers.cseq().expect("cseq").seq, 101);
        assert_eq!(bye.headers.from_addr().expect("from").tag(), Some("ours"));
        assert_eq!(uas.state(), UasState::Closing);
        // A late ACK changes nothing; the BYE's answer closes the dialog.
        uas.handle(
            t0 + Duration::from_secs(33),
            UasInput::Ack(in_dialog("ACK", 1, "", "")),
            via,
        );
        assert!(drain(&mut uas).is_empty());
        let done = Response::for_request(bye, 200, "OK");
        uas.handle(t0 + Duration::from_secs(33), UasInput::Response(done), via);
        assert_eq!(events(&drain(&mut uas)), vec![UasEvent::Closed]);
        assert_eq!(uas.poll_timeout(), None);
    }

    #[test]
    fn a_hang_up_waiting_for_the_ack_is_a_bye_when_it_never_comes() {
        let t0 = Instant::now();
        let mut uas = answering(t0, invite_with("sip:100@h", "", OFFER), Duration::ZERO);
        drain(&mut uas);
        uas.hang_up(t0 + Duration::from_secs(1), via());
        let seen = run_timers(&mut uas, t0, 40.0);
        let byes: Vec<f64> = seen
            .iter()
            .filter_map(|(t, o)| {
                matches!(o, UasOutput::Request(r) if r.method == Method::Bye).then_some(*t)
            })
            .collect();
        assert_eq!(byes, [32.0], "one BYE, when the ACK is given up on");
    }

    #[test]
    fn a_reinvites_2xx_is_sent_again_until_its_own_ack() {
        let t0 = Instant::now();
        let mut uas = confirmed(t0);
        assert_eq!(uas.poll_timeout(), None);
        let req = in_dialog("INVITE", 2, "Content-Type: application/sdp\r\n", OFFER);
        uas.handle(
            t0,
            UasInput::Request {
                key: key("re"),
                req,
            },
            via,
        );
        let ok = response_of(&drain(&mut uas), 200);
        let seen = run_timers(&mut uas, t0, 4.0);
        assert_eq!(copies_of(&seen, &ok), [0.5, 1.5, 3.5]);
        // The first INVITE's ACK again (a retransmission) is not this one's.
        let at = t0 + Duration::from_secs(4);
        uas.handle(at, UasInput::Ack(in_dialog("ACK", 1, "", "")), via);
        assert!(uas.poll_timeout().is_some());
        uas.handle(at, UasInput::Ack(in_dialog("ACK", 2, "", "")), via);
        assert_eq!(uas.poll_timeout(), None);
        assert!(drain(&mut uas).is_empty());
        assert_eq!(uas.state(), UasState::Confirmed);
    }

    #[test]
    fn a_reinvites_2xx_never_acknowledged_ends_the_dialog() {
        let t0 = Instant::now();
        let mut uas = confirmed(t0);
        let req = in_dialog("INVITE", 2, "", "");
        uas.handle(
            t0,
            UasInput::Request {
                key: key("re"),
                req,
            },
            via,
        );
        drain(&mut uas);
        let seen = run_timers(&mut uas, t0, 32.0);
        assert!(seen.iter().any(|(t, o)| *t == 32.0
            && matches!(o, UasOutput::Event(UasEvent::Ended(Ending::AckTimeout)))));
        assert!(
            seen.iter()
                .any(|(_, o)| matches!(o, UasOutput::Request(r) if r.method == Method::Bye))
        );
        assert_eq!(uas.state(), UasState::Closing);
    }

    #[test]
    fn the_far_ends_bye_stops_the_copies() {
        let t0 = Instant::now();
        let mut uas = answering(t0, invite_with("sip:100@h", "", OFFER), Duration::ZERO);
        drain(&mut uas);
        // The ACK was lost, then the caller hangs up.
        uas.handle(
            t0 + Duration::from_secs(1),
            UasInput::Request {
                key: key("b"),
                req: in_dialog("BYE", 2, "", ""),
            },
            via,
        );
        let out = drain(&mut uas);
        assert_eq!(responses(&out), vec![("BYE".into(), 200)]);
        assert_eq!(uas.poll_timeout(), None);
        assert!(uas.is_over());
    }

    const SRTP_KEY: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
    const OTHER_KEY: &str = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";

    fn srtp_offer(key: &str, version: u32) -> String {
        OFFER
            .replace("RTP/AVP", "RTP/SAVP")
            .replace("o=- 1 1", &format!("o=- 1 {version}"))
            + &format!("a=crypto:5 AES_CM_128_HMAC_SHA1_80 inline:{key}\r\n")
    }

    fn with_policy(policy: SrtpPolicy) -> AnswerParams {
        let mut p = params(Duration::ZERO);
        if let Some(m) = p.media.as_mut() {
            m.srtp = policy;
            m.srtp_key = MasterKey::from_bytes(&[9; 30]);
        }
        p
    }

    fn crypto_lines(r: &Response) -> Vec<String> {
        text(r)
            .lines()
            .filter(|l| l.starts_with("a=crypto:"))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn srtp_offers_are_answered_or_refused_by_the_policy() {
        let now = Instant::now();
        let r = refused_with(
            invite_with("sip:100@h", "", OFFER),
            with_policy(SrtpPolicy::Required),
        );
        assert_eq!(r.status, 488);
        assert!(text(&r).contains("SRTP"), "{}", text(&r));
        let r = refused_with(
            invite_with("sip:100@h", "", &srtp_offer(SRTP_KEY, 1)),
            with_policy(SrtpPolicy::Off),
        );
        assert_eq!(r.status, 488);
        let mut uas = Uas::new(
            key("inv"),
            invite_with("sip:100@h", "", &srtp_offer(SRTP_KEY, 1)),
            with_policy(SrtpPolicy::Optional),
        );
        uas.answer(now);
        let out = drain(&mut uas);
        let ok = response_of(&out, 200);
        assert!(text(&ok).contains("m=audio 20000 RTP/SAVP 0 101\r\n"));
        assert_eq!(crypto_lines(&ok).len(), 1);
        assert!(crypto_lines(&ok)[0].starts_with("a=crypto:5 AES_CM_128_HMAC_SHA1_80 inline:"));
        let keys = events(&out)
            .into_iter()
            .find_map(|e| match e {
                UasEvent::Media(n) => n.srtp,
                _ => None,
            })
            .expect("SRTP media");
        assert_eq!(keys.outbound, MasterKey::from_bytes(&[9; 30]));
    }

    #[test]
    fn a_late_offer_under_required_srtp_is_ours_on_savp_and_needs_an_srtp_answer() {
        let now = Instant::now();
        for (answer, media) in [(srtp_offer(SRTP_KEY, 1), true), (OFFER.to_owned(), false)] {
            let mut uas = Uas::new(
                key("inv"),
                invite_with("sip:100@h", "", ""),
                with_policy(SrtpPolicy::Required),
            );
            uas.answer(now);
            let ok = response_of(&drain(&mut uas), 200);
            assert!(text(&ok).contains("m=audio 20000 RTP/SAVP 0 8 101\r\n"));
            let ours = crypto_lines(&ok);
            assert_eq!(ours.len(), 1);
            assert!(ours[0].starts_with("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"));
            // The phone answers with our tag 1 and suite, or with plain RTP.
            let answer = answer.replace("a=crypto:5", "a=crypto:1");
            let ack = in_dialog("ACK", 1, "Content-Type: application/sdp\r\n", &answer);
            uas.handle(now, UasInput::Ack(ack), via);
            let evs = events(&drain(&mut uas));
            if media {
                assert!(
                    matches!(evs.as_slice(), [UasEvent::Media(n)] if n.srtp.is_some()),
                    "{evs:?}"
                );
            } else {
                assert_eq!(evs, vec![UasEvent::Ended(Ending::NoUsableAnswer)]);
            }
        }
    }

    #[test]
    fn a_reinvite_keeps_the_srtp_keys_or_is_refused() {
        let now = Instant::now();
        let mut uas = Uas::new(
            key("inv"),
            invite_with("sip:100@127.0.0.1", "", &srtp_offer(SRTP_KEY, 1)),
            with_policy(SrtpPolicy::Optional),
        );
        uas.answer(now);
        let first = crypto_lines(&response_of(&drain(&mut uas), 200));
        uas.handle(now, UasInput::Ack(in_dialog("ACK", 1, "", "")), via);
        drain(&mut uas);
        let reinvite = |uas: &mut Uas, cseq: u32, body: &str| {
            let req = in_dialog("INVITE", cseq, "Content-Type: application/sdp\r\n", body);
            let k = key(&format!("re{cseq}"));
            uas.handle(now, UasInput::Request { key: k, req }, via);
            drain(uas)
        };
        // Hold with the same key: answered with our same key.
        let held = srtp_offer(SRTP_KEY, 2).replace(
            "telephone-event/8000\r\n",
            "telephone-event/8000\r\na=sendonly\r\n",
        );
        let out = reinvite(&mut uas, 2, &held);
        assert_eq!(crypto_lines(&response_of(&out, 200)), first);
        // Another key, or plain RTP: refused, the call keeps its keys.
        for (cseq, body) in [
            (3, srtp_offer(OTHER_KEY, 3)),
            (4, OFFER.replace("o=- 1 1", "o=- 1 4")),
        ] {
            let out = reinvite(&mut uas, cseq, &body);
            assert_eq!(responses(&out), vec![("INVITE".into(), 488)], "{body}");
        }
        let kept = uas
            .negotiated()
            .and_then(|n| n.srtp.as_ref())
            .expect("still SRTP");
        assert_eq!(kept.outbound, MasterKey::from_bytes(&[9; 30]));
    }
}
