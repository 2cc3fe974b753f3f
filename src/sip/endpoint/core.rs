//! The SIP endpoint's routing policy as a pure state machine: which call gets what.
//!
//! It owns the transaction table, the routing maps (Call-ID to call, a call's outgoing legs
//! to the call that placed them, INVITE server transactions for CANCEL, client transactions
//! to the call that started them), merged-request detection (482), the stateless answers to
//! what belongs to no call (OPTIONS, 481, 405, 501), the [`Admission`] controller that
//! answers a new INVITE 503 when the engine is full, too fast, late, out of RTP ports or
//! draining (and OPTIONS 503 meanwhile, so a proxy in front sends elsewhere), and the
//! [`Guard`] that drops requests from banned sources and scanners before any of that. The
//! 2xx retransmission of answered INVITEs is not here: it is the UAS core's (`sip::uas`),
//! whose copies come back as [`CallCommand::SendResponse`].
//!
//! Inputs go in with the current time (`handle_inbound`, `handle_call`, `handle_send_error`,
//! `handle_undeliverable`, `answer_register`, `handle_timeout`); [`Output`]s are polled out
//! (`poll_output`), and `poll_timeout` says when to wake it. It must not touch a socket, a
//! channel or a clock, nor draw random numbers: To tags and Retry-After spreads come from
//! the [`Tokens`] it is given. REGISTER is handed out ([`Output::Register`]) for the
//! registrar and its answer comes back through `answer_register`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tracing::{debug, info, warn};

use crate::config::Protocol;
use crate::sip::ALLOW;
use crate::sip::admission::{Admission, AdmissionConfig, Load, Refusal};
use crate::sip::guard::{Guard, GuardConfig, GuardEvent, Verdict};
use crate::sip::message::{HeaderName, Message, Method, Request, Response};
use crate::sip::overload::OverloadControl;
use crate::sip::transaction::{
    Output as TableOutput, Reliability, RequestKeyFields, Role, TimerConfig, TransactionError,
    TransactionKey, TransactionTable,
};
use crate::sip::transport::Peer;

/// What the endpoint tells a call.
#[derive(Debug)]
pub enum ToCall {
    /// The ACK for our 2xx (it may carry the SDP answer of a late offer).
    Ack(Request),
    /// The caller sent CANCEL for our INVITE transaction; the call answers it (with its own
    /// To tag, RFC 3261 §9.2) and, if it had not answered yet, ends the INVITE with 487.
    Cancel { key: TransactionKey, req: Request },
    /// A request inside the dialog; answer it with `SipHandle::respond`.
    Request { key: TransactionKey, req: Request },
    /// A response to a request the call sent.
    Response(Response),
    /// A request the call sent got no final response in time, or could not be sent at all
    /// (RFC 3261 §17.1.4; see [`EndpointCore::handle_send_error`]). `key` is its client
    /// transaction's: the branch and method of the request.
    RequestTimeout { key: TransactionKey },
    /// Something for one of the call's outgoing legs (see `SipHandle::open_leg`).
    Leg { call_id: String, msg: Box<ToCall> },
    /// The engine is stopping and its drain ran out: end the call now (BYE), its record
    /// `interrupted`.
    Shutdown,
}

/// A message as the transaction layer keeps it: parsed, with the peer it came from or goes
/// to, and for outgoing messages the bytes (printed once, resent as they are).
#[derive(Debug)]
pub struct SipMsg {
    pub peer: Peer,
    pub message: Message,
    pub bytes: Bytes,
}

type Out = Arc<SipMsg>;

/// What a call asks of the endpoint.
#[derive(Debug)]
pub enum CallCommand {
    /// Answer the server transaction `key`.
    Respond {
        key: TransactionKey,
        peer: Peer,
        resp: Response,
        call_id: String,
    },
    /// Send a request through a new client transaction (its top Via carries the branch).
    Request {
        call_id: String,
        peer: Peer,
        req: Request,
    },
    /// Send the ACK of a 2xx as it is: it belongs to no transaction (§17.1.1.3).
    Ack {
        peer: Peer,
        req: Request,
    },
    /// Send a response as it is, outside any transaction: the UAS core's copies of its 2xx
    /// to an INVITE until the ACK (§13.3.1.4).
    SendResponse {
        peer: Peer,
        resp: Response,
    },
    /// Route what arrives for Call-ID `leg` to call `owner`, wrapped in [`ToCall::Leg`].
    OpenLeg {
        leg: String,
        owner: String,
    },
    CloseLeg {
        leg: String,
    },
    /// A call the engine places itself: what arrives for `call_id` is for it.
    Originate {
        call_id: String,
    },
    /// The call is over: forget its routes.
    Ended {
        call_id: String,
    },
}

/// Where a transmitted message came from, so that a failed send can find its way back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A transaction sent it (a request, its retransmission, a response, the ACK of a
    /// non-2xx): a failure is that transaction's transport error (§17.1.4, §17.2.4).
    Transaction { role: Role, key: TransactionKey },
    /// Sent outside any transaction: the ACK of a 2xx, a call's copy of its 2xx, a
    /// stateless answer. A failure is only counted.
    Direct,
}

/// Bytes to hand to the transport.
#[derive(Debug)]
pub struct Transmit {
    pub msg: Arc<SipMsg>,
    pub origin: Origin,
}

/// What the core asks of its shell.
#[derive(Debug)]
pub enum Output {
    /// Send `msg.bytes` to `msg.peer`; report a failure with `handle_send_error`.
    Transmit(Transmit),
    /// Put `msg` in the inbox of call `call_id` (a leg's messages already name the call
    /// that placed it); report a closed inbox with `handle_undeliverable`.
    ToCall { call_id: String, msg: ToCall },
    /// A new INVITE was accepted (100 Trying is already out): create call `call_id`.
    NewCall {
        call_id: String,
        invite: Request,
        key: TransactionKey,
        peer: Peer,
    },
    /// A REGISTER for the registrar; its answer comes back through `answer_register`.
    Register {
        key: TransactionKey,
        peer: Peer,
        req: Request,
    },
}

/// The randomness the core needs, drawn by the shell (tests give a predictable one).
pub trait Tokens: Send {
    /// A random token of `len` characters, for a To tag (RFC 3261 §19.3).
    fn token(&mut self, len: usize) -> String;
    /// A number from 0 to `n - 1`.
    fn below(&mut self, n: u32) -> u32;
}

/// Settings of the core.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub user_agent: String,
    pub max_calls: usize,
    pub timers: TimerConfig,
    /// Who may send requests that belong to no call (`limits.*`).
    pub guard: GuardConfig,
    /// Which new calls are taken besides `max_calls` (`limits.*`).
    pub admission: AdmissionConfig,
    /// The wall clock's Unix seconds when the engine starts: where RFC 7339's `oc-seq`
    /// begins, so it grows across restarts too.
    pub started_unix_secs: u64,
}

/// Counters the shell publishes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CoreCounters {
    pub active_calls: usize,
    pub calls_total: usize,
    pub rejected_busy: usize,
    /// Requests (and ACKs) that could not be handed to the transport.
    pub requests_unsent: usize,
    /// Responses that could not be handed to the transport.
    pub responses_unsent: usize,
    /// Requests dropped without a reply: from a banned source, or a scanner.
    pub dropped_banned: u64,
    pub dropped_scanner: u64,
    /// Sources banned so far.
    pub bans: u64,
    /// New calls refused with 503, by reason in the order of [`Refusal::ALL`].
    pub refused: [u64; 5],
    /// New calls are refused because the engine is stopping.
    pub draining: bool,
}

/// A request that carried no To tag, as RFC 3261 §8.2.2.2 compares them: From tag,
/// Call-ID and CSeq (number and method).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct MergeKey {
    from_tag: String,
    call_id: String,
    seq: u32,
    method: String,
}

/// The endpoint's routing policy. See the module documentation.
pub struct EndpointCore {
    cfg: CoreConfig,
    tokens: Box<dyn Tokens>,
    table: TransactionTable<Out>,
    /// The calls, by Call-ID.
    calls: HashSet<String>,
    /// Call-IDs of the INVITEs calls placed, to the Call-ID of the call that placed them.
    legs: HashMap<String, String>,
    /// Our INVITE server transactions, for CANCEL.
    invites: HashMap<TransactionKey, String>,
    /// Requests the calls sent, for routing their responses.
    clients: HashMap<TransactionKey, String>,
    /// Live server transactions of requests without a To tag, for merged requests.
    merge_index: HashMap<MergeKey, TransactionKey>,
    merge_keys: HashMap<TransactionKey, MergeKey>,
    /// Where the requests handed to calls came from, until their transaction ends: a call
    /// that vanished cannot answer them, so the core does.
    handed: HashMap<TransactionKey, Peer>,
    outputs: VecDeque<Output>,
    counters: CoreCounters,
    guard: Guard,
    admission: Admission,
    /// What a proxy supporting RFC 7339 is told to hold back, in its Via.
    overload: OverloadControl,
    /// The media clock's lateness and the free RTP ports, as the shell last saw them.
    load: Load,
}

fn reliability(peer: &Peer) -> Reliability {
    match peer.transport {
        Protocol::Udp => Reliability::Unreliable,
        Protocol::Tcp | Protocol::Tls => Reliability::Reliable,
    }
}

/// The transaction key of a request, per RFC 3261 §17.2.3 (with the RFC 2543 fallback).
pub fn request_key(req: &Request) -> Option<TransactionKey> {
    let h = &req.headers;
    let via = h.top_via().ok()?;
    let top_via_raw = h.get(HeaderName::Via)?.to_str_lossy();
    let from = h.from_addr().ok()?;
    let to = h.to_addr().ok()?;
    let cseq = h.cseq().ok()?;
    let uri = req.uri.to_string();
    let host = via.host.to_string();
    let fields = RequestKeyFields {
        method: req.method.as_str(),
        branch: via.branch(),
        sent_by_host: &host,
        sent_by_port: via.port,
        request_uri: &uri,
        to_tag: to.tag(),
        from_tag: from.tag(),
        call_id: h.call_id().ok()?,
        cseq: cseq.seq,
        top_via: &top_via_raw,
    };
    Some(TransactionKey::for_request(&fields))
}

fn response_key(resp: &Response) -> Option<TransactionKey> {
    let via = resp.headers.top_via().ok()?;
    let cseq = resp.headers.cseq().ok()?;
    Some(TransactionKey::client(via.branch()?, cseq.method.as_str()))
}

fn merge_key(req: &Request) -> Option<MergeKey> {
    let h = &req.headers;
    let cseq = h.cseq().ok()?;
    Some(MergeKey {
        from_tag: h.from_addr().ok()?.tag()?.to_string(),
        call_id: h.call_id().ok()?.to_string(),
        seq: cseq.seq,
        method: cseq.method.as_str().to_string(),
    })
}

/// The ACK the INVITE client transaction sends for a non-2xx final response.
fn non_2xx_ack(invite: &Out, resp: &Out) -> Out {
    let (Message::Request(inv), Message::Response(r)) = (&invite.message, &resp.message) else {
        return resp.clone();
    };
    match crate::sip::uac::ack_for_non_2xx(inv, r) {
        Ok(ack) => {
            let bytes = Bytes::from(ack.to_bytes());
            Arc::new(SipMsg {
                peer: invite.peer,
                message: Message::Request(ack),
                bytes,
            })
        }
        // Our own INVITE always has these headers; a response without a usable To is
        // acknowledged by nothing, and the far end's retransmissions time out.
        Err(_) => resp.clone(),
    }
}

fn call_id_of(m: &Message) -> Option<String> {
    m.headers().call_id().ok().map(str::to_string)
}

fn printed(peer: Peer, message: Message) -> Out {
    let bytes = Bytes::from(match &message {
        Message::Request(r) => r.to_bytes(),
        Message::Response(r) => r.to_bytes(),
    });
    Arc::new(SipMsg {
        peer,
        message,
        bytes,
    })
}

impl EndpointCore {
    pub fn new(cfg: CoreConfig, tokens: Box<dyn Tokens>) -> EndpointCore {
        EndpointCore {
            table: TransactionTable::new(cfg.timers),
            guard: Guard::new(cfg.guard.clone()),
            admission: Admission::new(AdmissionConfig {
                max_calls: cfg.max_calls,
                ..cfg.admission.clone()
            }),
            overload: OverloadControl::new(cfg.started_unix_secs),
            load: Load {
                calls: 0,
                lateness: std::time::Duration::ZERO,
                ports_free: usize::MAX,
            },
            cfg,
            tokens,
            calls: HashSet::new(),
            legs: HashMap::new(),
            invites: HashMap::new(),
            clients: HashMap::new(),
            merge_index: HashMap::new(),
            merge_keys: HashMap::new(),
            handed: HashMap::new(),
            outputs: VecDeque::new(),
            counters: CoreCounters::default(),
        }
    }

    /// Caps the live transactions (a request beyond it is answered 503 statelessly).
    pub fn with_max_transactions(mut self, limit: usize) -> Self {
        self.table = TransactionTable::new(self.cfg.timers).with_max_transactions(limit);
        self
    }

    pub fn counters(&self) -> CoreCounters {
        let g = self.guard.counters();
        CoreCounters {
            dropped_banned: g.dropped_banned,
            dropped_scanner: g.dropped_scanner,
            bans: g.bans,
            refused: Refusal::ALL.map(|r| self.admission.refused(r)),
            draining: self.admission.is_draining(),
            ..self.counters
        }
    }

    /// What the engine carries besides its calls, as the shell reads it before each input:
    /// the media clock's smoothed lateness and the RTP ports still free.
    pub fn set_load(&mut self, lateness: std::time::Duration, ports_free: usize) {
        self.load.lateness = lateness;
        self.load.ports_free = ports_free;
    }

    /// Starts a drain: from now on every new call and every OPTIONS gets 503; calls in
    /// progress go on.
    pub fn start_draining(&mut self) {
        if !self.admission.is_draining() {
            info!(
                calls = self.calls.len(),
                "draining: new calls are refused, calls in progress go on"
            );
        }
        self.admission.set_draining(true);
    }

    /// The calls in progress, by Call-ID (the shell ends them when a drain runs out).
    pub fn call_ids(&self) -> impl Iterator<Item = &str> {
        self.calls.iter().map(String::as_str)
    }

    fn current_load(&self) -> Load {
        Load {
            calls: self.calls.len(),
            ..self.load
        }
    }

    /// A login from `source` for `user` was refused (by the registrar).
    pub fn auth_failed(&mut self, now: Instant, source: std::net::IpAddr, user: &str) {
        self.guard.auth_failed(now, source, user);
        self.log_guard();
    }

    /// The guard's bans and lifts, as log lines a fail2ban filter can match
    /// (`source banned source=… reason=…`).
    fn log_guard(&mut self) {
        while let Some(e) = self.guard.poll_event() {
            match e {
                GuardEvent::Banned {
                    source,
                    reason,
                    user,
                    until: _,
                } => {
                    let secs = self.guard.config().ban.as_secs();
                    warn!(%source, reason = reason.as_str(), user = user.as_deref(),
                        for_secs = secs, "source banned");
                }
                GuardEvent::Lifted { source } => debug!(%source, "ban lifted"),
            }
        }
    }

    /// Number of live transactions.
    pub fn transactions(&self) -> usize {
        self.table.len()
    }

    /// The next thing for the shell to do, oldest first.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The earliest moment `handle_timeout` has work to do.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        match (self.table.poll_timeout(), self.guard.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires the transaction timers due at `now`, and sweeps the guard's windows.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.table.handle_timeout(now);
        self.guard.handle_timeout(now);
        self.log_guard();
        self.drain_table(now);
    }

    /// A parsed message arrived from `peer`.
    pub fn handle_inbound(&mut self, now: Instant, peer: Peer, message: Message) {
        match message {
            Message::Request(req) => {
                // A call in progress keeps its requests whatever its address has done
                // since; everything else passes the guard first, and is dropped without a
                // reply when banned (a reply would tell a scanner something listens).
                let known = req.headers.call_id().is_ok_and(|id| self.is_known(id));
                if !known {
                    let ua = req
                        .headers
                        .get(HeaderName::UserAgent)
                        .and_then(|v| v.as_str());
                    let verdict = self.guard.check(now, peer.remote.ip(), ua);
                    self.log_guard();
                    if verdict != Verdict::Pass {
                        debug!(source = %peer.remote, ?verdict, method = %req.method, "request dropped");
                        return;
                    }
                }
                let Some(key) = request_key(&req) else {
                    return;
                };
                let msg = Arc::new(SipMsg {
                    peer,
                    message: Message::Request(req),
                    bytes: Bytes::new(),
                });
                let result =
                    self.table
                        .handle_request(now, key.clone(), msg.clone(), reliability(&peer));
                match result {
                    Ok(()) => {}
                    Err(TransactionError::TableFull { limit }) => {
                        // §17 gives no transaction to a request we cannot keep: answer it
                        // statelessly so the sender backs off instead of retrying at once.
                        warn!(limit, "transaction table full; answering 503");
                        if !key.is_ack() {
                            let resp = self.answer_for(&msg, 503, "Service Unavailable");
                            if let Some(resp) = resp {
                                self.counters.rejected_busy += 1;
                                self.transmit(
                                    printed(peer, Message::Response(resp)),
                                    Origin::Direct,
                                );
                            }
                        }
                    }
                    Err(e) => warn!(error = %e, "transaction table refused a request"),
                }
            }
            Message::Response(resp) => {
                let Some(key) = response_key(&resp) else {
                    return;
                };
                let status = resp.status;
                let msg = Arc::new(SipMsg {
                    peer,
                    message: Message::Response(resp),
                    bytes: Bytes::new(),
                });
                if let Err(e) = self
                    .table
                    .handle_response(now, key, status, msg, non_2xx_ack)
                {
                    debug!(error = %e, "response refused");
                }
            }
        }
        self.drain_table(now);
    }

    /// A call asks for something.
    pub fn handle_call(&mut self, now: Instant, cmd: CallCommand) {
        match cmd {
            CallCommand::Respond {
                key,
                peer,
                mut resp,
                call_id,
            } => {
                self.sign(&mut resp);
                self.advise(now, &mut resp);
                let status = resp.status;
                let out = printed(peer, Message::Response(resp));
                if let Err(e) = self.table.send_response(now, &key, status, out) {
                    debug!(error = %e, status, call_id, "call's response not sent");
                }
            }
            CallCommand::SendResponse { peer, mut resp } => {
                // Signed as the first copy was, so every copy is the same bytes.
                self.sign(&mut resp);
                self.transmit(printed(peer, Message::Response(resp)), Origin::Direct);
            }
            CallCommand::Request {
                call_id,
                peer,
                mut req,
            } => {
                req.headers
                    .push(HeaderName::new("User-Agent"), self.cfg.user_agent.clone());
                let Some(branch) = req
                    .headers
                    .top_via()
                    .ok()
                    .and_then(|v| v.branch().map(str::to_string))
                else {
                    return;
                };
                let key = TransactionKey::client(&branch, req.method.as_str());
                let out = printed(peer, Message::Request(req));
                match self
                    .table
                    .start_client(now, key.clone(), out, reliability(&peer))
                {
                    Ok(()) => {
                        self.clients.insert(key, call_id);
                    }
                    Err(e) => {
                        warn!(error = %e, "request not sent");
                        self.deliver(&call_id, ToCall::RequestTimeout { key });
                    }
                }
            }
            CallCommand::Ack { peer, mut req } => {
                req.headers
                    .push(HeaderName::new("User-Agent"), self.cfg.user_agent.clone());
                self.transmit(printed(peer, Message::Request(req)), Origin::Direct);
            }
            CallCommand::OpenLeg { leg, owner } => {
                self.legs.insert(leg, owner);
            }
            CallCommand::CloseLeg { leg } => {
                self.legs.remove(&leg);
            }
            CallCommand::Originate { call_id } => {
                self.calls.insert(call_id);
                self.counters.active_calls = self.calls.len();
            }
            CallCommand::Ended { call_id } => self.forget_call(&call_id),
        }
        self.drain_table(now);
    }

    /// The transport could not send a message an [`Output::Transmit`] carried.
    ///
    /// For a client transaction this reaches `TransactionTable::transport_error`, and the
    /// call is told [`ToCall::RequestTimeout`]: RFC 3261 §17.1.4 asks the TU to treat it as
    /// a 503, and in this engine a request that failed without a final answer from the far
    /// end has one path in every call (a leg gives up, a BYE counts as done) whether it
    /// timed out or never left; a made-up 503 would have to pretend to be the far end's
    /// answer (To tag, dialog matching). For a server transaction the response is counted
    /// and logged: over UDP §18.2.2 leaves nothing worth trying (the address is the one the
    /// request came from), and over TCP the connection is gone with the caller.
    pub fn handle_send_error(&mut self, now: Instant, transmit: &Transmit) {
        match &transmit.origin {
            Origin::Transaction { role, key } => {
                self.table.transport_error(*role, key);
                self.drain_table(now);
            }
            Origin::Direct => match transmit.msg.message {
                Message::Response(ref r) => {
                    self.counters.responses_unsent += 1;
                    debug!(status = r.status, remote = %transmit.msg.peer.remote, "response not sent");
                }
                Message::Request(ref r) => {
                    self.counters.requests_unsent += 1;
                    debug!(method = %r.method, remote = %transmit.msg.peer.remote, "request not sent");
                }
            },
        }
    }

    /// The inbox of call `call_id` is closed (the call task is gone without saying so):
    /// forget the call, and answer what it can no longer answer.
    pub fn handle_undeliverable(&mut self, now: Instant, call_id: &str, msg: ToCall) {
        debug!(call_id, "call's inbox is closed");
        self.forget_call(call_id);
        let (key, req, status, reason) = match msg {
            // The INVITE is over with its call; the CANCEL itself succeeded (§9.2).
            ToCall::Cancel { key, req } => (key, req, 200, "OK"),
            ToCall::Request { key, req } if req.method != Method::Ack => {
                (key, req, 481, "Call/Transaction Does Not Exist")
            }
            _ => return,
        };
        let Some(peer) = self.handed.get(&key).copied() else {
            return;
        };
        let resp = self.answer_request(&req, status, reason);
        self.send_response(now, &key, peer, resp);
        self.drain_table(now);
    }

    /// The registrar's answer to the REGISTER of [`Output::Register`].
    pub fn answer_register(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        peer: Peer,
        mut resp: Response,
    ) {
        let tag = self.tokens.token(10);
        let _ = resp.headers.ensure_to_tag(&tag);
        resp.headers
            .push(HeaderName::new("Server"), self.cfg.user_agent.clone());
        let status = resp.status;
        if let Err(e) =
            self.table
                .send_response(now, key, status, printed(peer, Message::Response(resp)))
        {
            debug!(error = %e, status, "REGISTER answer not sent");
        }
        self.drain_table(now);
    }

    /// Our Server header on a call's response, unless the call set one.
    fn sign(&self, resp: &mut Response) {
        if !resp.headers.contains(HeaderName::new("Server")) {
            resp.headers
                .push(HeaderName::new("Server"), self.cfg.user_agent.clone());
        }
    }

    /// RFC 7339: a proxy that announced overload control in its Via hears there how much
    /// new traffic to hold back (every response, so its view stays fresh).
    fn advise(&mut self, now: Instant, resp: &mut Response) {
        let load = self.current_load();
        let admission = &mut self.admission;
        self.overload
            .advise(now, || admission.refusing(now, load), resp);
    }

    fn forget_call(&mut self, call_id: &str) {
        self.calls.remove(call_id);
        self.legs.retain(|_, owner| owner != call_id);
        self.invites.retain(|_, v| v != call_id);
        self.counters.active_calls = self.calls.len();
    }

    fn transmit(&mut self, msg: Out, origin: Origin) {
        self.outputs
            .push_back(Output::Transmit(Transmit { msg, origin }));
    }

    fn deliver(&mut self, call_id: &str, msg: ToCall) -> bool {
        if self.calls.contains(call_id) {
            self.outputs.push_back(Output::ToCall {
                call_id: call_id.to_string(),
                msg,
            });
            return true;
        }
        let Some(owner) = self.legs.get(call_id) else {
            return false;
        };
        if !self.calls.contains(owner) {
            return false;
        }
        let msg = ToCall::Leg {
            call_id: call_id.to_string(),
            msg: Box::new(msg),
        };
        self.outputs.push_back(Output::ToCall {
            call_id: owner.clone(),
            msg,
        });
        true
    }

    fn is_known(&self, call_id: &str) -> bool {
        self.calls.contains(call_id) || self.legs.contains_key(call_id)
    }

    /// Turns what the transaction table asks for into outputs and routing.
    fn drain_table(&mut self, now: Instant) {
        while let Some(o) = self.table.poll_output() {
            match o {
                TableOutput::Transmit { role, key, msg } => {
                    self.transmit(msg, Origin::Transaction { role, key })
                }
                TableOutput::RequestToTu { key, msg } => self.on_new_request(now, key, msg),
                TableOutput::AckToTu { msg, .. } => self.on_ack(&msg),
                TableOutput::ResponseToTu { key, msg, status } => {
                    let Some(call_id) = self.clients.get(&key).cloned() else {
                        continue;
                    };
                    // An INVITE's 2xx may come again (our ACK was lost): keep routing them
                    // until the transaction ends (RFC 6026's Accepted state).
                    if status >= 300 || (status >= 200 && !key.is_invite()) {
                        self.clients.remove(&key);
                    }
                    if let Message::Response(r) = &msg.message {
                        self.deliver(&call_id, ToCall::Response(r.clone()));
                    }
                }
                TableOutput::StrayResponse { status, .. } => {
                    debug!(status, "response matching no transaction");
                }
                TableOutput::Timeout { key, .. } => {
                    if let Some(call_id) = self.clients.remove(&key) {
                        self.deliver(&call_id, ToCall::RequestTimeout { key });
                    }
                }
                TableOutput::TransportError { role, key } => match role {
                    Role::Client => {
                        self.counters.requests_unsent += 1;
                        debug!(%key, "request could not be sent");
                        if let Some(call_id) = self.clients.remove(&key) {
                            self.deliver(&call_id, ToCall::RequestTimeout { key });
                        }
                    }
                    Role::Server => {
                        self.counters.responses_unsent += 1;
                        debug!(%key, "response could not be sent");
                    }
                },
                TableOutput::Terminated { key, .. } => {
                    self.invites.remove(&key);
                    self.clients.remove(&key);
                    self.handed.remove(&key);
                    if let Some(m) = self.merge_keys.remove(&key) {
                        self.merge_index.remove(&m);
                    }
                }
            }
        }
    }

    fn on_ack(&mut self, msg: &SipMsg) {
        let Message::Request(req) = &msg.message else {
            return;
        };
        let Some(call_id) = call_id_of(&msg.message) else {
            return;
        };
        self.deliver(&call_id, ToCall::Ack(req.clone()));
    }

    /// The answer to a request the core gives itself (it belongs to no call).
    fn answer_request(&mut self, req: &Request, status: u16, reason: &str) -> Response {
        self.answer_retry(req, status, reason, Refusal::MaxCalls.retry_after())
    }

    /// [`Self::answer_request`], with a 503's Retry-After drawn from `retry` (seconds,
    /// both ends included).
    fn answer_retry(
        &mut self,
        req: &Request,
        status: u16,
        reason: &str,
        retry: (u32, u32),
    ) -> Response {
        let mut resp = Response::for_request(req, status, reason);
        let tag = self.tokens.token(10);
        let _ = resp.headers.ensure_to_tag(&tag);
        resp.headers
            .push(HeaderName::new("Server"), self.cfg.user_agent.clone());
        if matches!(status, 200 | 405 | 501) {
            resp.headers.push(HeaderName::Allow, ALLOW);
        }
        if status == 200 && req.method == Method::Options {
            resp.headers
                .push(HeaderName::new("Accept"), "application/sdp");
            resp.headers.push(HeaderName::Supported, "");
            resp.headers.push(HeaderName::new("Accept-Language"), "en");
        }
        if status == 503 {
            // Spread the retries of rejected callers over time (RFC 3261 §21.5.4).
            let (lo, hi) = retry;
            let secs = lo + self.tokens.below(hi.saturating_sub(lo) + 1);
            resp.headers
                .push(HeaderName::new("Retry-After"), secs.to_string());
        }
        resp
    }

    /// The answer to `msg`, if it is a request.
    fn answer_for(&mut self, msg: &SipMsg, status: u16, reason: &str) -> Option<Response> {
        let Message::Request(req) = &msg.message else {
            return None;
        };
        Some(self.answer_request(req, status, reason))
    }

    /// Answers the server transaction `key` right here.
    fn answer(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        msg: &SipMsg,
        status: u16,
        reason: &str,
    ) {
        if let Some(resp) = self.answer_for(msg, status, reason) {
            self.send_response(now, key, msg.peer, resp);
        }
    }

    fn send_response(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        peer: Peer,
        mut resp: Response,
    ) {
        self.advise(now, &mut resp);
        let status = resp.status;
        let out = printed(peer, Message::Response(resp));
        if let Err(e) = self.table.send_response(now, key, status, out) {
            debug!(error = %e, status, "response not sent");
        }
    }

    fn on_new_request(&mut self, now: Instant, key: TransactionKey, msg: Out) {
        let Message::Request(req) = &msg.message else {
            return;
        };
        let Some(call_id) = call_id_of(&msg.message) else {
            return;
        };
        let has_to_tag = req
            .headers
            .to_addr()
            .ok()
            .and_then(|t| t.tag().map(|_| ()))
            .is_some();
        if !has_to_tag && let Some(m) = merge_key(req) {
            // §8.2.2.2: the same request reached us twice by different paths (a forking
            // proxy): answer the later copy 482, the first one goes on.
            if self.merge_index.get(&m).is_some_and(|k| *k != key) {
                self.answer(now, &key, &msg, 482, "Loop Detected");
                return;
            }
            self.merge_index.insert(m.clone(), key.clone());
            self.merge_keys.insert(key.clone(), m);
        }
        match req.method {
            Method::Cancel => {
                let found = key
                    .invite_key_for_cancel()
                    .and_then(|k| self.invites.get(&k).cloned());
                match found {
                    Some(id) => {
                        let cancel = ToCall::Cancel {
                            key: key.clone(),
                            req: req.clone(),
                        };
                        if self.deliver(&id, cancel) {
                            self.handed.insert(key, msg.peer);
                        } else {
                            self.answer(now, &key, &msg, 200, "OK");
                        }
                    }
                    None => self.answer(now, &key, &msg, 481, "Call/Transaction Does Not Exist"),
                }
            }
            _ if has_to_tag || self.is_known(&call_id) && req.method != Method::Invite => {
                if self.is_known(&call_id) {
                    let request = ToCall::Request {
                        key: key.clone(),
                        req: req.clone(),
                    };
                    if self.deliver(&call_id, request) && !key.is_ack() {
                        self.handed.insert(key, msg.peer);
                    }
                } else if req.method == Method::Options {
                    self.on_options(now, &key, &msg);
                } else {
                    self.answer(now, &key, &msg, 481, "Call/Transaction Does Not Exist");
                }
            }
            Method::Invite => self.on_invite(now, key, &msg, call_id),
            Method::Options => self.on_options(now, &key, &msg),
            Method::Register => self.outputs.push_back(Output::Register {
                key,
                peer: msg.peer,
                req: req.clone(),
            }),
            Method::Bye | Method::Info | Method::Update | Method::Prack => {
                self.answer(now, &key, &msg, 481, "Call/Transaction Does Not Exist")
            }
            Method::Other(_) => self.answer(now, &key, &msg, 501, "Not Implemented"),
            _ => self.answer(now, &key, &msg, 405, "Method Not Allowed"),
        }
    }

    /// OPTIONS outside a dialog: 200 while new calls would be taken, 503 with Retry-After
    /// while they would not (over a limit, draining), so that a proxy probing with OPTIONS
    /// (Kamailio's dispatcher) sends its calls elsewhere meanwhile.
    fn on_options(&mut self, now: Instant, key: &TransactionKey, msg: &Out) {
        let Message::Request(req) = &msg.message else {
            return;
        };
        let resp = match self.admission.refusing(now, self.current_load()) {
            None => self.answer_request(req, 200, "OK"),
            Some(why) => {
                debug!(source = %msg.peer.remote, reason = why.as_str(), "OPTIONS answered 503");
                self.answer_retry(req, 503, "Service Unavailable", why.retry_after())
            }
        };
        self.send_response(now, key, msg.peer, resp);
    }

    fn on_invite(&mut self, now: Instant, key: TransactionKey, msg: &Out, call_id: String) {
        let Message::Request(req) = &msg.message else {
            return;
        };
        if self.is_known(&call_id) {
            // Same Call-ID, new transaction, no To tag: a merged or looped request (§8.2.2.2),
            // or an INVITE we placed that came back to us.
            self.answer(now, &key, msg, 482, "Loop Detected");
            return;
        }
        let admitted = self.admission.admit(now, self.current_load());
        self.overload.count(now, admitted.is_err());
        if let Err(why) = admitted {
            self.counters.rejected_busy += 1;
            let resp = self.answer_retry(req, 503, "Service Unavailable", why.retry_after());
            // One line per refusal, for fail2ban and for the operator (`source`, `reason`).
            info!(source = %msg.peer.remote, reason = why.as_str(), %call_id,
                retry_after = resp.headers.get(HeaderName::new("Retry-After")).and_then(|v| v.as_str()),
                "call refused");
            self.send_response(now, &key, msg.peer, resp);
            return;
        }
        // 100 Trying at once, so the caller's INVITE retransmissions stop (§17.2.1).
        let trying = Response::for_request(req, 100, "Trying");
        self.send_response(now, &key, msg.peer, trying);
        self.calls.insert(call_id.clone());
        self.invites.insert(key.clone(), call_id.clone());
        self.counters.active_calls = self.calls.len();
        self.counters.calls_total += 1;
        self.outputs.push_back(Output::NewCall {
            call_id,
            invite: req.clone(),
            key,
            peer: msg.peer,
        });
    }
}
