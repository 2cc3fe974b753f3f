//! The SIP endpoint's tokio shell: one task that moves messages between the transports,
//! the calls' inboxes and the pure [`EndpointCore`], which decides everything (transactions,
//! routing, CANCEL, 481/482/503, out-of-dialog answers). The shell also
//! runs the registrar service the core hands REGISTER to, feeds send failures and
//! closed inboxes back into the core, reads the engine's load (the media clock's lateness,
//! the free RTP ports) for the core's admission decisions, and carries out a drain: new
//! calls refused, then, when the server says the drain ran out, every call told to end.
//!
//! It must not make routing decisions of its own, and must never wait on one peer: sends
//! to a TCP peer never block (see `transport`), so a peer that stops reading cannot stall
//! signalling for everyone else.

pub mod core;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::debug;

use crate::config::Protocol;
use crate::mailbox::Mailbox;
use crate::metrics::Direction;
use crate::sip::admission::{AdmissionConfig, Refusal};
use crate::sip::guard::GuardConfig;
use crate::sip::message::{Host, Request, Response, Transport, Uri, Via};
use crate::sip::random_token;
use crate::sip::registrar::{RegistrarConfig, RegistrarEvent, RegistrarService, Registrations};
use crate::sip::transaction::{TimerConfig, TransactionKey};
use crate::sip::transport::{Inbound, Peer, Transports};

pub use self::core::{
    CallCommand, CoreConfig, CoreCounters, EndpointCore, Origin, Output, SipMsg, ToCall, Tokens,
    Transmit, request_key,
};

/// What calls send to the shell: commands for the core, and inboxes of calls the engine
/// places itself (the core knows nothing of channels). Commands are nearly every message,
/// so they stay unboxed.
#[allow(clippy::large_enum_variant)]
enum FromCall {
    Command(CallCommand),
    Originate {
        call_id: String,
        inbox: Mailbox<ToCall>,
    },
    /// From the server: refuse new calls from now on.
    Drain,
    /// From the server: tell every call in progress to end.
    EndCalls,
}

/// What the server tells the endpoint when it stops (see [`Endpoint::control`]).
#[derive(Clone)]
pub struct EndpointControl {
    tx: mpsc::UnboundedSender<FromCall>,
}

impl EndpointControl {
    /// New calls get 503 (and OPTIONS 503) from now on; calls in progress go on.
    pub fn drain(&self) {
        let _ = self.tx.send(FromCall::Drain);
    }

    /// Every call in progress is told to end now ([`ToCall::Shutdown`]).
    pub fn end_calls(&self) {
        let _ = self.tx.send(FromCall::EndCalls);
    }
}

/// What a call needs to talk SIP: send responses and requests, and build Vias and Contacts
/// for the listener its INVITE came in on.
#[derive(Clone)]
pub struct SipHandle {
    tx: mpsc::UnboundedSender<FromCall>,
}

impl SipHandle {
    fn command(&self, c: CallCommand) {
        // A closed channel means the endpoint stopped; the call is ending with it.
        let _ = self.tx.send(FromCall::Command(c));
    }

    pub fn respond(&self, key: &TransactionKey, peer: Peer, call_id: &str, resp: Response) {
        self.command(CallCommand::Respond {
            key: key.clone(),
            peer,
            resp,
            call_id: call_id.to_string(),
        });
    }

    /// Sends a request (it must carry exactly one Via, ours, with a fresh branch).
    pub fn request(&self, call_id: &str, peer: Peer, req: Request) {
        self.command(CallCommand::Request {
            call_id: call_id.to_string(),
            peer,
            req,
        });
    }

    /// Routes what arrives for Call-ID `leg` (an INVITE the call places) to the inbox of
    /// call `owner`, wrapped in [`ToCall::Leg`].
    pub fn open_leg(&self, leg: &str, owner: &str) {
        self.command(CallCommand::OpenLeg {
            leg: leg.to_string(),
            owner: owner.to_string(),
        });
    }

    pub fn close_leg(&self, leg: &str) {
        self.command(CallCommand::CloseLeg {
            leg: leg.to_string(),
        });
    }

    /// Sends the ACK for a 2xx as it is: it belongs to no transaction (RFC 3261 §17.1.1.3).
    pub fn ack(&self, peer: Peer, req: Request) {
        self.command(CallCommand::Ack { peer, req });
    }

    /// Sends a response as it is, outside any transaction: a copy of our 2xx to an
    /// INVITE, which the UAS core repeats until the ACK (RFC 3261 §13.3.1.4).
    pub fn send_response(&self, peer: Peer, resp: Response) {
        self.command(CallCommand::SendResponse { peer, resp });
    }

    /// Routes what arrives for Call-ID `call_id` (a call the engine places itself, a call
    /// back) to `inbox`, as for a call that came in. End it with [`SipHandle::ended`].
    pub fn originate(&self, call_id: &str, inbox: Mailbox<ToCall>) {
        let _ = self.tx.send(FromCall::Originate {
            call_id: call_id.to_string(),
            inbox,
        });
    }

    pub fn ended(&self, call_id: &str) {
        self.command(CallCommand::Ended {
            call_id: call_id.to_string(),
        });
    }
}

/// A new call, handed to whoever creates calls; they give back the mailbox of the call's
/// inbox, where everything that arrives for it from now on is posted.
pub struct NewCall {
    pub invite: Request,
    pub key: TransactionKey,
    pub peer: Peer,
    pub sip: SipHandle,
}

/// Builds our Via for a request leaving through `peer`'s listener.
pub fn our_via(peer: &Peer, advertised: IpAddr) -> Via {
    let transport = match peer.transport {
        Protocol::Udp => Transport::Udp,
        Protocol::Tcp => Transport::Tcp,
        Protocol::Tls => Transport::Tls,
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
    let transport = match peer.transport {
        Protocol::Udp => None,
        Protocol::Tcp => Some("tcp"),
        Protocol::Tls => Some("tls"),
    };
    if let Some(t) = transport
        && let Uri::Sip(s) = &mut uri
    {
        s.params.set("transport", Some(t));
    }
    uri
}

/// Settings of the endpoint.
#[derive(Debug)]
pub struct EndpointConfig {
    pub user_agent: String,
    pub max_calls: usize,
    pub timers: TimerConfig,
    pub registrar: RegistrarConfig,
    /// Flood and login bans, trusted sources, scanners.
    pub guard: GuardConfig,
    /// The rate and lateness limits on new calls.
    pub admission: AdmissionConfig,
    /// Where the endpoint reads the engine's load before each decision.
    pub load: LoadSource,
    /// Where the SIP messages that go through the endpoint are counted.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Where the endpoint reads what the engine carries besides its calls. Each read must be
/// cheap (atomics, a short lock): it happens before every inbound message.
pub struct LoadSource {
    /// The media clock's smoothed lateness.
    pub lateness: Box<dyn Fn() -> Duration + Send + Sync>,
    /// RTP ports still free.
    pub ports_free: Box<dyn Fn() -> usize + Send + Sync>,
}

impl LoadSource {
    /// No lateness, ports without end (tests of the signalling alone).
    pub fn unloaded() -> LoadSource {
        LoadSource {
            lateness: Box::new(|| Duration::ZERO),
            ports_free: Box::new(|| usize::MAX),
        }
    }
}

impl std::fmt::Debug for LoadSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadSource")
            .field("lateness", &(self.lateness)())
            .field("ports_free", &(self.ports_free)())
            .finish()
    }
}

/// Live numbers the admin API, logs and tests read.
#[derive(Debug, Default)]
pub struct EndpointStats {
    pub active_calls: AtomicUsize,
    pub calls_total: AtomicUsize,
    pub rejected_busy: AtomicUsize,
    /// Requests (and ACKs) the transport could not send.
    pub requests_unsent: AtomicUsize,
    /// Responses the transport could not send.
    pub responses_unsent: AtomicUsize,
    /// Requests dropped without a reply: their source was banned, or a scanner sent them.
    pub dropped_banned: AtomicU64,
    pub dropped_scanner: AtomicU64,
    /// Sources banned (for flooding or for failed logins).
    pub bans: AtomicU64,
    /// New calls refused with 503, by reason in the order of [`Refusal::ALL`].
    pub refused: [AtomicU64; 5],
    /// The engine is stopping: new calls are refused.
    pub draining: AtomicBool,
    /// Live SIP transactions (back to zero once every exchange has ended).
    pub transactions: AtomicUsize,
    /// Calls the endpoint delivers messages to (back to zero once every call has ended).
    pub inboxes: AtomicUsize,
}

impl EndpointStats {
    /// New calls refused so far for `reason`.
    pub fn refused(&self, reason: Refusal) -> u64 {
        let i = Refusal::ALL.iter().position(|r| *r == reason).unwrap_or(0);
        self.refused[i].load(Ordering::Relaxed)
    }

    /// Publishes the core's counters, and what moved since the last time to `metrics`.
    fn publish(&self, c: &CoreCounters, metrics: &crate::metrics::Metrics) {
        let moved = |a: &AtomicU64, v: u64| v.saturating_sub(a.swap(v, Ordering::Relaxed));
        for (i, r) in Refusal::ALL.into_iter().enumerate() {
            metrics.calls_refused(r, moved(&self.refused[i], c.refused[i]));
        }
        metrics.sip_dropped("banned", moved(&self.dropped_banned, c.dropped_banned));
        metrics.sip_dropped("scanner", moved(&self.dropped_scanner, c.dropped_scanner));
        metrics.sources_banned(moved(&self.bans, c.bans));
        if self.draining.swap(c.draining, Ordering::Relaxed) != c.draining {
            metrics.set_draining(c.draining);
        }
        self.active_calls.store(c.active_calls, Ordering::Relaxed);
        self.calls_total.store(c.calls_total, Ordering::Relaxed);
        self.rejected_busy.store(c.rejected_busy, Ordering::Relaxed);
        self.requests_unsent
            .store(c.requests_unsent, Ordering::Relaxed);
        self.responses_unsent
            .store(c.responses_unsent, Ordering::Relaxed);
    }
}

/// The core's randomness, from the thread's generator.
struct RandomTokens;

impl Tokens for RandomTokens {
    fn token(&mut self, len: usize) -> String {
        random_token(len)
    }

    fn below(&mut self, n: u32) -> u32 {
        rand::random_range(0..n.max(1))
    }
}

/// The endpoint task: the core, the sockets, the calls' inboxes and the registrar.
pub struct Endpoint {
    core: EndpointCore,
    transports: Transports,
    inbound: mpsc::Receiver<Inbound>,
    from_calls: mpsc::UnboundedReceiver<FromCall>,
    handle: SipHandle,
    /// Call-ID to the call's inbox; the core names calls, the shell delivers.
    inboxes: HashMap<String, Mailbox<ToCall>>,
    new_call: Box<dyn FnMut(NewCall) -> Mailbox<ToCall> + Send>,
    stats: Arc<EndpointStats>,
    registrar: RegistrarService,
    metrics: Arc<crate::metrics::Metrics>,
    load: LoadSource,
}

impl Endpoint {
    pub fn new(
        cfg: EndpointConfig,
        transports: Transports,
        inbound: mpsc::Receiver<Inbound>,
        new_call: Box<dyn FnMut(NewCall) -> Mailbox<ToCall> + Send>,
    ) -> Endpoint {
        let (tx, from_calls) = mpsc::unbounded_channel();
        let registrar =
            RegistrarService::new(cfg.registrar.clone(), rand::random(), Instant::now());
        let core = EndpointCore::new(
            CoreConfig {
                user_agent: cfg.user_agent,
                max_calls: cfg.max_calls,
                timers: cfg.timers,
                guard: cfg.guard.clone(),
                admission: cfg.admission.clone(),
                started_unix_secs: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            },
            Box::new(RandomTokens),
        );
        Endpoint {
            core,
            transports,
            inbound,
            from_calls,
            handle: SipHandle { tx },
            inboxes: HashMap::new(),
            new_call,
            stats: Arc::new(EndpointStats::default()),
            registrar,
            metrics: cfg.metrics,
            load: cfg.load,
        }
    }

    /// A handle for the server to drain the endpoint and end its calls when it stops.
    pub fn control(&self) -> EndpointControl {
        EndpointControl {
            tx: self.handle.tx.clone(),
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
            let deadline = [self.core.poll_timeout(), self.registrar.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                m = self.inbound.recv() => match m {
                    Some(m) => {
                        self.metrics.sip_message(&m.message, Direction::Received);
                        self.core.set_load((self.load.lateness)(), (self.load.ports_free)());
                        self.core.handle_inbound(Instant::now(), m.peer, m.message)
                    }
                    None => return,
                },
                Some(c) = self.from_calls.recv() => self.on_call(c),
                _ = sleep => {
                    let now = Instant::now();
                    self.core.handle_timeout(now);
                    self.registrar.handle_timeout(now);
                }
            }
            self.carry_out().await;
            self.stats.publish(&self.core.counters(), &self.metrics);
            self.stats
                .transactions
                .store(self.core.transactions(), Ordering::Relaxed);
            self.stats
                .inboxes
                .store(self.inboxes.len(), Ordering::Relaxed);
        }
    }

    fn on_call(&mut self, c: FromCall) {
        let now = Instant::now();
        match c {
            FromCall::Command(cmd) => {
                if let CallCommand::Ended { call_id } = &cmd {
                    self.inboxes.remove(call_id);
                }
                self.core.handle_call(now, cmd);
            }
            FromCall::Originate { call_id, inbox } => {
                self.inboxes.insert(call_id.clone(), inbox);
                self.core
                    .handle_call(now, CallCommand::Originate { call_id });
            }
            FromCall::Drain => self.core.start_draining(),
            FromCall::EndCalls => {
                // Every call the engine knows, with or without an inbox of its own (a leg
                // is ended by the call that placed it).
                let ids: Vec<String> = self.core.call_ids().map(str::to_owned).collect();
                tracing::info!(calls = ids.len(), "ending the calls in progress");
                for id in ids {
                    if let Some(inbox) = self.inboxes.get(&id) {
                        let _ = inbox.send(ToCall::Shutdown);
                    }
                }
            }
        }
    }

    /// Does what the core asks until it asks for nothing more. Only UDP sends are awaited
    /// (a datagram socket is writable again at once); TCP sends never wait.
    async fn carry_out(&mut self) {
        while let Some(o) = self.core.poll_output() {
            match o {
                Output::Transmit(t) => {
                    let sent = self.transports.send(&t.msg.peer, t.msg.bytes.clone()).await;
                    match sent {
                        Ok(()) => self.metrics.sip_message(&t.msg.message, Direction::Sent),
                        Err(e) => {
                            debug!(error = %e, remote = %t.msg.peer.remote, "send failed");
                            self.core.handle_send_error(Instant::now(), &t);
                        }
                    }
                }
                Output::ToCall { call_id, msg } => {
                    let refused = match self.inboxes.get(&call_id) {
                        Some(inbox) => inbox.send(msg).err(),
                        None => Some(msg),
                    };
                    if let Some(msg) = refused {
                        self.inboxes.remove(&call_id);
                        self.core
                            .handle_undeliverable(Instant::now(), &call_id, msg);
                    }
                }
                Output::NewCall {
                    call_id,
                    invite,
                    key,
                    peer,
                } => {
                    let inbox = (self.new_call)(NewCall {
                        invite,
                        key,
                        peer,
                        sip: self.handle.clone(),
                    });
                    self.inboxes.insert(call_id, inbox);
                }
                Output::Register { key, peer, req } => {
                    let now = Instant::now();
                    let resp = self.registrar.handle_register(now, &req, peer);
                    while let Some((ip, user)) = self.registrar.registrar_mut().poll_refused() {
                        self.core.auth_failed(now, ip, &user);
                    }
                    self.core.answer_register(now, &key, peer, resp);
                }
            }
        }
    }
}
