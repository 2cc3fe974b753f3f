//! The SIP endpoint: one task that owns the transaction table and routes what arrives.
//! New INVITEs become calls (or a 503 when the engine is full); in-dialog requests and
//! responses go to their call's inbox; requests outside any dialog that need no call
//! (OPTIONS, stray BYE, unsupported methods) are answered here, and REGISTER goes to the
//! registrar it owns. Calls send through it, so
//! every message we send passes through a transaction and is retransmitted by the rules.
//!
//! It holds no call state beyond the routing maps; what a call is doing is the call's.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::config::Transport as ListenTransport;
use crate::sip::message::{
    HeaderName, Host, Message, Method, Request, Response, Transport, Uri, Via,
};
use crate::sip::registrar::{RegistrarConfig, RegistrarEvent, RegistrarService, Registrations};
use crate::sip::transaction::{
    Output, Reliability, RequestKeyFields, TimerConfig, TransactionKey, TransactionTable,
    Uas2xxAction, Uas2xxRetransmitter,
};
use crate::sip::transport::{Inbound, Peer, Transports};
use crate::sip::{ALLOW, random_token};

/// What the endpoint tells a call.
#[derive(Debug)]
pub enum ToCall {
    /// The ACK for our 2xx (it may carry the SDP answer of a late offer).
    Ack(Request),
    /// The caller sent CANCEL for our INVITE transaction; the call answers it (with its own
    /// To tag, RFC 3261 §9.2) and, if it had not answered yet, ends the INVITE with 487.
    Cancel { key: TransactionKey, req: Request },
    /// A request inside the dialog; answer it with [`SipHandle::respond`].
    Request { key: TransactionKey, req: Request },
    /// A response to a request the call sent.
    Response(Response),
    /// A request the call sent got no final response in time.
    RequestTimeout,
    /// Our 2xx was never acknowledged (64*T1); the call should end with BYE.
    AckTimeout,
    /// Something for one of the call's outgoing legs (see [`SipHandle::open_leg`]).
    Leg { call_id: String, msg: Box<ToCall> },
}

enum FromCall {
    Respond {
        key: TransactionKey,
        peer: Peer,
        resp: Response,
        call_id: String,
    },
    Request {
        call_id: String,
        peer: Peer,
        req: Request,
    },
    Ended {
        call_id: String,
    },
    Originate {
        call_id: String,
        inbox: mpsc::UnboundedSender<ToCall>,
    },
    OpenLeg {
        leg: String,
        owner: String,
    },
    CloseLeg {
        leg: String,
    },
    Ack {
        peer: Peer,
        req: Request,
    },
}

/// What a call needs to talk SIP: send responses and requests, and build Vias and Contacts
/// for the listener its INVITE came in on.
#[derive(Clone)]
pub struct SipHandle {
    tx: mpsc::UnboundedSender<FromCall>,
}

impl SipHandle {
    pub fn respond(&self, key: &TransactionKey, peer: Peer, call_id: &str, resp: Response) {
        let _ = self.tx.send(FromCall::Respond {
            key: key.clone(),
            peer,
            resp,
            call_id: call_id.to_string(),
        });
    }

    /// Sends a request (it must carry exactly one Via, ours, with a fresh branch).
    pub fn request(&self, call_id: &str, peer: Peer, req: Request) {
        let _ = self.tx.send(FromCall::Request {
            call_id: call_id.to_string(),
            peer,
            req,
        });
    }

    /// Routes what arrives for Call-ID `leg` (an INVITE the call places) to the inbox of
    /// call `owner`, wrapped in [`ToCall::Leg`].
    pub fn open_leg(&self, leg: &str, owner: &str) {
        let _ = self.tx.send(FromCall::OpenLeg {
            leg: leg.to_string(),
            owner: owner.to_string(),
        });
    }

    pub fn close_leg(&self, leg: &str) {
        let _ = self.tx.send(FromCall::CloseLeg {
            leg: leg.to_string(),
        });
    }

    /// Sends the ACK for a 2xx as it is: it belongs to no transaction (RFC 3261 §17.1.1.3).
    pub fn ack(&self, peer: Peer, req: Request) {
        let _ = self.tx.send(FromCall::Ack { peer, req });
    }

    /// Opens an inbox for a call the engine places itself (a call back): what arrives
    /// for Call-ID `call_id` comes there, as for a call that came in. End it with
    /// [`SipHandle::ended`].
    pub fn originate(&self, call_id: &str) -> mpsc::UnboundedReceiver<ToCall> {
        let (inbox, rx) = mpsc::unbounded_channel();
        let _ = self.tx.send(FromCall::Originate {
            call_id: call_id.to_string(),
            inbox,
        });
        rx
    }

    pub fn ended(&self, call_id: &str) {
        let _ = self.tx.send(FromCall::Ended {
            call_id: call_id.to_string(),
        });
    }
}

/// A new call, handed to whoever creates calls.
pub struct NewCall {
    pub invite: Request,
    pub key: TransactionKey,
    pub peer: Peer,
    pub inbox: mpsc::UnboundedReceiver<ToCall>,
    pub sip: SipHandle,
}

/// Builds our Via for a request leaving through `peer`'s listener.
pub fn our_via(peer: &Peer, advertised: IpAddr) -> Via {
    let transport = match peer.transport {
        ListenTransport::Udp => Transport::Udp,
        ListenTransport::Tcp => Transport::Tcp,
    };
    let branch = format!("{}{}", crate::sip::message::MAGIC_COOKIE, random_token(16));
    let mut via = Via::new(
        transport,
        Host::from(advertised),
        Some(peer.local.port()),
        &branch,
    );
    via.params.set("rport", None);
    via
}

/// Our Contact URI for a call that arrived through `peer`'s listener.
pub fn our_contact(peer: &Peer, advertised: IpAddr) -> Uri {
    let mut uri = Uri::sip(
        Some("hotline"),
        Host::from(advertised),
        Some(peer.local.port()),
    );
    if peer.transport == ListenTransport::Tcp
        && let Uri::Sip(s) = &mut uri
    {
        s.params.set("transport", Some("tcp"));
    }
    uri
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

/// Settings of the endpoint.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub user_agent: String,
    pub max_calls: usize,
    pub timers: TimerConfig,
    pub registrar: RegistrarConfig,
}

/// Live numbers the admin API, logs and tests read.
#[derive(Debug, Default)]
pub struct EndpointStats {
    pub active_calls: AtomicUsize,
    pub calls_total: AtomicUsize,
    pub rejected_busy: AtomicUsize,
}

pub struct Endpoint {
    cfg: EndpointConfig,
    transports: Transports,
    table: TransactionTable<Out>,
    inbound: mpsc::Receiver<Inbound>,
    from_calls: mpsc::UnboundedReceiver<FromCall>,
    handle: SipHandle,
    /// Call-ID to the call's inbox.
    calls: HashMap<String, mpsc::UnboundedSender<ToCall>>,
    /// Call-IDs of the INVITEs calls placed, to the Call-ID of the call that placed them.
    legs: HashMap<String, String>,
    /// Our INVITE server transactions, for CANCEL.
    invites: HashMap<TransactionKey, String>,
    /// Requests the calls sent, for routing their responses.
    clients: HashMap<TransactionKey, String>,
    /// Answered INVITEs waiting for their ACK, by Call-ID.
    acks_pending: HashMap<String, Uas2xxRetransmitter<Out>>,
    sends: Vec<Out>,
    new_call: Box<dyn FnMut(NewCall) + Send>,
    stats: Arc<EndpointStats>,
    registrar: RegistrarService,
}

fn reliability(peer: &Peer) -> Reliability {
    match peer.transport {
        ListenTransport::Udp => Reliability::Unreliable,
        ListenTransport::Tcp => Reliability::Reliable,
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

impl Endpoint {
    pub fn new(
        cfg: EndpointConfig,
        transports: Transports,
        inbound: mpsc::Receiver<Inbound>,
        new_call: Box<dyn FnMut(NewCall) + Send>,
    ) -> Endpoint {
        let (tx, from_calls) = mpsc::unbounded_channel();
        let registrar =
            RegistrarService::new(cfg.registrar.clone(), rand::random(), Instant::now());
        Endpoint {
            table: TransactionTable::new(cfg.timers),
            cfg,
            transports,
            inbound,
            from_calls,
            handle: SipHandle { tx },
            calls: HashMap::new(),
            legs: HashMap::new(),
            invites: HashMap::new(),
            clients: HashMap::new(),
            acks_pending: HashMap::new(),
            sends: Vec::new(),
            new_call,
            stats: Arc::new(EndpointStats::default()),
            registrar,
        }
    }

    /// A handle for calls the engine places itself.
    pub fn handle(&self) -> SipHandle {
        self.handle.clone()
    }

    pub fn stats(&self) -> Arc<EndpointStats> {
        self.stats.clone()
    }

    /// The registered agents' contacts, for whoever offers them calls.
    pub fn registrations(&self) -> Registrations {
        self.registrar.registrations()
    }

    /// Registrar events; `subscribe()` on it for a receiver.
    pub fn registrar_events(&self) -> tokio::sync::broadcast::Sender<RegistrarEvent> {
        self.registrar.events()
    }

    /// Runs until every listener is gone.
    pub async fn run(mut self) {
        loop {
            let deadline = self.next_deadline();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                m = self.inbound.recv() => match m {
                    Some(m) => self.on_inbound(m),
                    None => return,
                },
                Some(c) = self.from_calls.recv() => self.on_call(c),
                _ = sleep => self.on_timeout(Instant::now()),
            }
            self.drain_outputs();
            for m in std::mem::take(&mut self.sends) {
                self.transports.send(&m.peer, m.bytes.clone()).await;
            }
        }
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        let t = self.table.poll_timeout();
        let a = self
            .acks_pending
            .values()
            .filter_map(|r| r.poll_timeout())
            .min();
        [t, a, self.registrar.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    fn on_timeout(&mut self, now: Instant) {
        self.table.handle_timeout(now);
        self.registrar.handle_timeout(now);
        let mut gave_up = Vec::new();
        for (call_id, r) in self.acks_pending.iter_mut() {
            if r.poll_timeout().is_some_and(|d| d <= now) {
                match r.handle_timeout(now) {
                    Some(Uas2xxAction::Retransmit(m)) => self.sends.push(m),
                    Some(Uas2xxAction::GaveUp) => gave_up.push(call_id.clone()),
                    None => {}
                }
            }
        }
        for id in gave_up {
            self.acks_pending.remove(&id);
            self.to_call(&id, ToCall::AckTimeout);
        }
    }

    fn to_call(&self, call_id: &str, msg: ToCall) -> bool {
        if let Some(tx) = self.calls.get(call_id) {
            return tx.send(msg).is_ok();
        }
        let Some(owner) = self.legs.get(call_id) else {
            return false;
        };
        let msg = ToCall::Leg {
            call_id: call_id.to_string(),
            msg: Box::new(msg),
        };
        self.calls.get(owner).is_some_and(|tx| tx.send(msg).is_ok())
    }

    fn is_known(&self, call_id: &str) -> bool {
        self.calls.contains_key(call_id) || self.legs.contains_key(call_id)
    }

    fn drain_outputs(&mut self) {
        while let Some(o) = self.table.poll_output() {
            match o {
                Output::Transmit { msg, .. } => self.sends.push(msg),
                Output::RequestToTu { key, msg } => self.on_new_request(key, msg),
                Output::AckToTu { msg, .. } => self.on_ack(&msg),
                Output::ResponseToTu { key, msg, status } => {
                    let Some(call_id) = self.clients.get(&key).cloned() else {
                        continue;
                    };
                    // An INVITE's 2xx may come again (our ACK was lost): keep routing them
                    // until the transaction ends (RFC 6026's Accepted state).
                    if status >= 300 || (status >= 200 && !key.is_invite()) {
                        self.clients.remove(&key);
                    }
                    if let Message::Response(r) = &msg.message {
                        self.to_call(&call_id, ToCall::Response(r.clone()));
                    }
                }
                Output::StrayResponse { status, .. } => {
                    debug!(status, "response matching no transaction");
                }
                Output::Timeout { key, .. } | Output::TransportError { key, .. } => {
                    if let Some(call_id) = self.clients.remove(&key) {
                        self.to_call(&call_id, ToCall::RequestTimeout);
                    }
                }
                Output::Terminated { key, .. } => {
                    self.invites.remove(&key);
                    self.clients.remove(&key);
                }
            }
        }
    }

    fn on_inbound(&mut self, m: Inbound) {
        let now = Instant::now();
        let peer = m.peer;
        match m.message {
            Message::Request(req) => {
                let Some(key) = request_key(&req) else {
                    return;
                };
                let msg = Arc::new(SipMsg {
                    peer,
                    message: Message::Request(req),
                    bytes: Bytes::new(),
                });
                if let Err(e) = self.table.handle_request(now, key, msg, reliability(&peer)) {
                    warn!(error = %e, "transaction table refused a request");
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
                let _ = self
                    .table
                    .handle_response(now, key, status, msg, non_2xx_ack);
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
        if let Some(r) = self.acks_pending.get_mut(&call_id) {
            r.ack_received();
            self.acks_pending.remove(&call_id);
        }
        self.to_call(&call_id, ToCall::Ack(req.clone()));
    }

    /// Answers a request right here (it belongs to no call).
    fn answer(&mut self, key: &TransactionKey, msg: &SipMsg, status: u16, reason: &str) {
        let Message::Request(req) = &msg.message else {
            return;
        };
        let mut resp = Response::for_request(req, status, reason);
        let _ = resp.headers.ensure_to_tag(&random_token(10));
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
            let secs = 5 + rand::random_range(0..25u32);
            resp.headers
                .push(HeaderName::new("Retry-After"), secs.to_string());
        }
        self.send_response(key, msg.peer, resp);
    }

    fn send_response(&mut self, key: &TransactionKey, peer: Peer, resp: Response) {
        let status = resp.status;
        let bytes = Bytes::from(resp.to_bytes());
        let out = Arc::new(SipMsg {
            peer,
            message: Message::Response(resp),
            bytes,
        });
        if let Err(e) = self.table.send_response(Instant::now(), key, status, out) {
            debug!(error = %e, status, "response not sent");
        }
    }

    fn on_new_request(&mut self, key: TransactionKey, msg: Out) {
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
                        if !self.to_call(&id, cancel) {
                            self.answer(&key, &msg, 200, "OK");
                        }
                    }
                    None => self.answer(&key, &msg, 481, "Call/Transaction Does Not Exist"),
                }
            }
            _ if has_to_tag || self.is_known(&call_id) && req.method != Method::Invite => {
                if self.is_known(&call_id) {
                    self.to_call(
                        &call_id,
                        ToCall::Request {
                            key,
                            req: req.clone(),
                        },
                    );
                } else if req.method == Method::Options {
                    self.answer(&key, &msg, 200, "OK");
                } else {
                    self.answer(&key, &msg, 481, "Call/Transaction Does Not Exist");
                }
            }
            Method::Invite => self.on_invite(key, &msg, call_id),
            Method::Options => self.answer(&key, &msg, 200, "OK"),
            Method::Register => {
                let mut resp = self
                    .registrar
                    .handle_register(Instant::now(), req, msg.peer);
                let _ = resp.headers.ensure_to_tag(&random_token(10));
                resp.headers
                    .push(HeaderName::new("Server"), self.cfg.user_agent.clone());
                self.send_response(&key, msg.peer, resp);
            }
            Method::Bye | Method::Info | Method::Update | Method::Prack => {
                self.answer(&key, &msg, 481, "Call/Transaction Does Not Exist")
            }
            Method::Other(_) => self.answer(&key, &msg, 501, "Not Implemented"),
            _ => self.answer(&key, &msg, 405, "Method Not Allowed"),
        }
    }

    fn on_invite(&mut self, key: TransactionKey, msg: &Out, call_id: String) {
        let Message::Request(req) = &msg.message else {
            return;
        };
        if self.is_known(&call_id) {
            // Same Call-ID, new transaction, no To tag: a merged or looped request (§8.2.2.2),
            // or an INVITE we placed that came back to us.
            self.answer(&key, msg, 482, "Loop Detected");
            return;
        }
        if self.calls.len() >= self.cfg.max_calls {
            self.stats.rejected_busy.fetch_add(1, Ordering::Relaxed);
            self.answer(&key, msg, 503, "Service Unavailable");
            return;
        }
        // 100 Trying at once, so the caller's INVITE retransmissions stop (§17.2.1).
        let trying = Response::for_request(req, 100, "Trying");
        self.send_response(&key, msg.peer, trying);
        let (tx, inbox) = mpsc::unbounded_channel();
        self.calls.insert(call_id.clone(), tx);
        self.invites.insert(key.clone(), call_id);
        self.stats
            .active_calls
            .store(self.calls.len(), Ordering::Relaxed);
        self.stats.calls_total.fetch_add(1, Ordering::Relaxed);
        (self.new_call)(NewCall {
            invite: req.clone(),
            key,
            peer: msg.peer,
            inbox,
            sip: self.handle.clone(),
        });
    }

    fn on_call(&mut self, c: FromCall) {
        let now = Instant::now();
        match c {
            FromCall::Respond {
                key,
                peer,
                mut resp,
                call_id,
            } => {
                if !resp.headers.contains(HeaderName::new("Server")) {
                    resp.headers
                        .push(HeaderName::new("Server"), self.cfg.user_agent.clone());
                }
                let is_invite_2xx = key.is_invite() && (200..300).contains(&resp.status);
                let status = resp.status;
                let bytes = Bytes::from(resp.to_bytes());
                let out = Arc::new(SipMsg {
                    peer,
                    message: Message::Response(resp),
                    bytes,
                });
                if is_invite_2xx {
                    self.acks_pending.insert(
                        call_id,
                        Uas2xxRetransmitter::new(now, out.clone(), &self.cfg.timers),
                    );
                }
                if let Err(e) = self.table.send_response(now, &key, status, out) {
                    debug!(error = %e, status, "call's response not sent");
                }
            }
            FromCall::Request {
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
                let bytes = Bytes::from(req.to_bytes());
                let out = Arc::new(SipMsg {
                    peer,
                    message: Message::Request(req),
                    bytes,
                });
                match self
                    .table
                    .start_client(now, key.clone(), out, reliability(&peer))
                {
                    Ok(()) => {
                        self.clients.insert(key, call_id);
                    }
                    Err(e) => {
                        warn!(error = %e, "request not sent");
                        self.to_call(&call_id, ToCall::RequestTimeout);
                    }
                }
            }
            FromCall::Originate { call_id, inbox } => {
                self.calls.insert(call_id, inbox);
                self.stats
                    .active_calls
                    .store(self.calls.len(), Ordering::Relaxed);
            }
            FromCall::OpenLeg { leg, owner } => {
                self.legs.insert(leg, owner);
            }
            FromCall::CloseLeg { leg } => {
                self.legs.remove(&leg);
            }
            FromCall::Ack { peer, mut req } => {
                req.headers
                    .push(HeaderName::new("User-Agent"), self.cfg.user_agent.clone());
                let bytes = Bytes::from(req.to_bytes());
                self.sends.push(Arc::new(SipMsg {
                    peer,
                    message: Message::Request(req),
                    bytes,
                }));
            }
            FromCall::Ended { call_id } => {
                self.calls.remove(&call_id);
                self.legs.retain(|_, owner| *owner != call_id);
                self.acks_pending.remove(&call_id);
                self.invites.retain(|_, v| *v != call_id);
                self.stats
                    .active_calls
                    .store(self.calls.len(), Ordering::Relaxed);
            }
        }
    }
}
