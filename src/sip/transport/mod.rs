//! SIP over UDP, TCP and TLS: the only place SIP touches a socket. Datagrams and stream
//! frames are parsed here, so a malformed message is answered (400 with the reason) or
//! dropped and counted right at the edge; what reaches the endpoint is always a parsed
//! message. Sending is by destination: UDP to an address, TCP and TLS over the connection
//! that address opened (never another: a TLS peer whose connection is gone is unreachable).
//!
//! TLS is TCP with a handshake first: a `tls:` listener takes its connection under the
//! same caps, completes the handshake within [`TLS_HANDSHAKE`] (and `limits.tcp_idle`),
//! then serves it exactly as a TCP one; the TLS connections the engine opens itself (to a
//! `sips:` target) are `connect`'s, and are served the same way once open. Each connection
//! has its own writer task behind a bounded buffer that senders fill with `try_send`: a
//! peer that stops reading fills its buffer and is disconnected (and counted), so no
//! sender ever waits on one slow peer.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thiserror::Error;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::config::{ConnectionLimits, Listen, Protocol, TlsConfig};
use crate::metrics::{Metrics, TcpClose};
use crate::sip::guard::GuardConfig;
mod connect;

pub use connect::ConnectError;

use crate::sip::message::{
    self, Frame, Limits, Message, StreamFramer, error_response, too_large_response,
    validate_request, validate_response,
};

/// Where a message came from or goes to (plain data, the core's, so pure parts can name it).
pub use hotline_core::sip::peer::Peer;

/// A parsed message and where it came from.
#[derive(Debug)]
pub struct Inbound {
    pub peer: Peer,
    pub message: Message,
}

/// Counters of what the edge refused; visible in logs, `/metrics` and the admin API.
#[derive(Debug, Default)]
pub struct TransportStats {
    pub received: AtomicU64,
    /// Malformed requests answered (400, or 413/416/505/513 for their own defects).
    pub answered_400: AtomicU64,
    pub dropped_garbage: AtomicU64,
    pub keepalives: AtomicU64,
    pub send_errors: AtomicU64,
    /// TCP peers disconnected because they stopped reading (their write buffer filled).
    pub tcp_slow_closed: AtomicU64,
    /// Datagrams over `limits.max_message`, dropped unread.
    pub oversize_dropped: AtomicU64,
    /// TCP messages over `limits.max_message` answered 413 (their connection is closed).
    pub answered_413: AtomicU64,
    /// TCP connections closed for completing no message within `limits.tcp_idle`.
    pub tcp_idle_closed: AtomicU64,
    /// TCP connections refused at accept: their address had `limits.tcp_per_source` open.
    pub tcp_per_source_refused: AtomicU64,
    /// TCP connections refused at accept: `limits.tcp_connections` were open.
    pub tcp_total_refused: AtomicU64,
    /// TCP connections closed after a message over `limits.max_message`.
    pub tcp_oversize_closed: AtomicU64,
    /// TLS connections closed because their handshake failed or did not end in time.
    pub tls_handshake_failed: AtomicU64,
    /// TCP connections (TLS included) open now.
    pub tcp_open: AtomicUsize,
}

/// Why a message could not be sent.
#[derive(Debug, Error)]
pub enum SendError {
    #[error("no {transport} listener to send from")]
    NoListener { transport: Protocol },
    #[error("no open {transport} connection to {remote}")]
    NoConnection {
        transport: Protocol,
        remote: SocketAddr,
    },
    #[error("the peer {0} is not reading: its write buffer is full, the connection is closed")]
    SlowPeer(SocketAddr),
    #[error("send failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Messages waiting for one TCP connection's writer. The kernel's socket buffers absorb
/// bursts first, so this fills only when the peer has stopped reading for a long while.
const TCP_WRITE_BUFFER: usize = 256;
/// How long a closing connection's writer may take to flush what is queued.
const TCP_FLUSH: Duration = Duration::from_secs(5);
/// After a 413, what the peer still sends is read and thrown away for at most this long
/// and this much, so that closing with unread bytes (a reset) does not destroy the answer
/// before the peer has read it.
const TCP_LINGER: Duration = Duration::from_secs(1);
const TCP_LINGER_BYTES: usize = 256 * 1024;
/// The total cap on TCP connections when `limits.tcp_connections` is not given: a quarter
/// of the open-files limit (RTP sockets, records and logs need the rest), within these.
const TCP_CONNECTIONS_FLOOR: usize = 16;
const TCP_CONNECTIONS_CEILING: usize = 4096;
/// How long accepting waits after a failing `accept` (out of descriptors), so that the
/// loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// The longest a TLS handshake may take (less when `limits.tcp_idle` is shorter): a peer
/// that connects and never completes one holds a connection slot only this long.
pub const TLS_HANDSHAKE: Duration = Duration::from_secs(10);

/// What the listeners are built with.
#[derive(Clone)]
pub struct TransportConfig {
    pub limits: ConnectionLimits,
    /// Its trusted sources are exempt from `limits.tcp_per_source`.
    pub guard: GuardConfig,
    pub metrics: Arc<Metrics>,
    /// The certificate of `tls:` listeners (`tls:` in hotline.yaml).
    pub tls: Option<TlsConfig>,
}

/// Why the listeners cannot be opened.
#[derive(Debug, Error)]
pub enum BindError {
    #[error("cannot listen on {transport} {addr}: {source}")]
    Io {
        transport: Protocol,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot listen on TLS {addr}: {source}")]
    Tls {
        addr: SocketAddr,
        source: crate::sip::tls::TlsError,
    },
    #[error("cannot connect out over TLS: {source}")]
    TlsClient { source: crate::sip::tls::TlsError },
}

/// One open TCP connection as senders see it.
#[derive(Clone)]
struct Conn {
    /// What our Via and Contact give for it (a listener's address).
    local: SocketAddr,
    tx: mpsc::Sender<Bytes>,
    /// Tells the connection's tasks to close it now.
    close: Arc<Notify>,
}

impl Conn {
    /// Queues `bytes` without waiting; a full buffer closes the connection.
    fn push(&self, bytes: Bytes) -> Result<(), mpsc::error::TrySendError<Bytes>> {
        let r = self.tx.try_send(bytes);
        if matches!(r, Err(mpsc::error::TrySendError::Full(_))) {
            self.close.notify_one();
        }
        r
    }
}

/// Open connections by transport (TCP or TLS) and far address.
type ConnTable = Arc<Mutex<HashMap<(Protocol, SocketAddr), Conn>>>;

/// Open TCP connections, in all and per address, counted from accept to the end of the
/// connection's task (a [`Slot`] gives its place back when dropped).
#[derive(Default)]
struct Slots {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// What the edge shares between its tasks.
struct Edge {
    stats: Arc<TransportStats>,
    metrics: Arc<Metrics>,
    /// The codec's bounds, from `limits.max_message`.
    codec: Limits,
    idle: Duration,
    per_source: usize,
    max_connections: usize,
    guard: GuardConfig,
    slots: Mutex<Slots>,
}

/// Why a TCP connection cannot be taken.
enum Refusal {
    PerSource,
    Total,
}

impl Edge {
    /// Takes a place for a connection from `ip`, or says which cap is reached.
    fn take_slot(self: &Arc<Edge>, ip: IpAddr) -> Result<Slot, Refusal> {
        let ip = ip.to_canonical();
        let exempt = self.guard.trusted.iter().any(|n| n.contains(&ip));
        let mut s = self.slots.lock().map_err(|_| Refusal::Total)?;
        if s.total >= self.max_connections {
            return Err(Refusal::Total);
        }
        let mine = s.per_ip.get(&ip).copied().unwrap_or(0);
        if !exempt && mine >= self.per_source {
            return Err(Refusal::PerSource);
        }
        s.total += 1;
        s.per_ip.insert(ip, mine + 1);
        self.stats.tcp_open.store(s.total, Ordering::Relaxed);
        Ok(Slot {
            edge: self.clone(),
            ip,
        })
    }

    fn closed(&self, transport: Protocol, remote: SocketAddr, reason: TcpClose) {
        let counter = match reason {
            TcpClose::Idle => &self.stats.tcp_idle_closed,
            TcpClose::PerSource => &self.stats.tcp_per_source_refused,
            TcpClose::Total => &self.stats.tcp_total_refused,
            TcpClose::Oversize => &self.stats.tcp_oversize_closed,
            TcpClose::Slow => &self.stats.tcp_slow_closed,
            TcpClose::Unframable => &self.stats.dropped_garbage,
            TcpClose::TlsHandshake => &self.stats.tls_handshake_failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.metrics.tcp_closed(reason);
        warn!(source = %remote.ip(), port = remote.port(), transport = label(transport),
            reason = reason.as_str(), "TCP connection closed");
    }
}

/// A connection's place under the caps.
struct Slot {
    edge: Arc<Edge>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut s) = self.edge.slots.lock() {
            s.total = s.total.saturating_sub(1);
            if let Some(n) = s.per_ip.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    s.per_ip.remove(&self.ip);
                }
            }
            self.edge.stats.tcp_open.store(s.total, Ordering::Relaxed);
        }
    }
}

/// The codec's bounds for `limits.max_message`: no message, header section or body larger.
pub fn codec_limits(l: &ConnectionLimits) -> Limits {
    Limits {
        max_message_bytes: l.max_message,
        max_body_bytes: l.max_message,
        ..Limits::default()
    }
}

/// The soft open-files limit of this process, when it can be read.
fn open_files_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    if soft == "unlimited" {
        return Some(usize::MAX);
    }
    soft.parse().ok()
}

/// The cap on open TCP connections when none is configured: below the open-files limit.
pub fn default_tcp_connections() -> usize {
    let nofile = open_files_limit().unwrap_or(1024);
    (nofile / 4).clamp(TCP_CONNECTIONS_FLOOR, TCP_CONNECTIONS_CEILING)
}

/// The open listeners. Cheap to clone.
#[derive(Clone)]
pub struct Transports {
    udp: Arc<Vec<(SocketAddr, Arc<UdpSocket>)>>,
    /// The TCP and TLS listeners' addresses.
    stream_local: Arc<Vec<(Protocol, SocketAddr)>>,
    conns: ConnTable,
    pub stats: Arc<TransportStats>,
    limits: Limits,
    /// For the connections we open ([`Transports::connect_tls`]).
    edge: Arc<Edge>,
    inbound: mpsc::Sender<Inbound>,
    /// What servers we connect to are checked with: `tls.ca`; None without it.
    tls_client: Option<Arc<rustls::ClientConfig>>,
}

impl Transports {
    /// Binds every listener and starts its receive task; parsed messages go to `inbound`.
    pub async fn bind(
        listen: &[Listen],
        cfg: TransportConfig,
        inbound: mpsc::Sender<Inbound>,
    ) -> Result<Transports, BindError> {
        let stats = Arc::new(TransportStats::default());
        let limits = codec_limits(&cfg.limits);
        let edge = Arc::new(Edge {
            stats: stats.clone(),
            metrics: cfg.metrics,
            codec: limits,
            idle: cfg.limits.tcp_idle,
            per_source: cfg.limits.tcp_per_source,
            max_connections: cfg
                .limits
                .tcp_connections
                .unwrap_or_else(default_tcp_connections),
            guard: cfg.guard,
            slots: Mutex::new(Slots::default()),
        });
        let conns: ConnTable = Arc::new(Mutex::new(HashMap::new()));
        let tls_client = match cfg.tls.as_ref().and_then(|t| t.ca.as_deref()) {
            Some(ca) => Some(
                crate::sip::tls::client_config(ca)
                    .map_err(|source| BindError::TlsClient { source })?,
            ),
            None => None,
        };
        let mut udp = Vec::new();
        let mut stream_local = Vec::new();
        for l in listen {
            let io = |source| BindError::Io {
                transport: l.transport,
                addr: l.addr,
                source,
            };
            // Read before the socket is bound, so a bad certificate opens nothing.
            let tls = match l.transport {
                Protocol::Tls => {
                    let config = cfg.tls.as_ref().ok_or(BindError::Tls {
                        addr: l.addr,
                        source: crate::sip::tls::TlsError::NoCertificate,
                    })?;
                    let server = crate::sip::tls::server_config(config).map_err(|source| {
                        BindError::Tls {
                            addr: l.addr,
                            source,
                        }
                    })?;
                    Some(tokio_rustls::TlsAcceptor::from(server))
                }
                Protocol::Udp | Protocol::Tcp => None,
            };
            match l.transport {
                Protocol::Udp => {
                    let sock = Arc::new(UdpSocket::bind(l.addr).await.map_err(io)?);
                    let local = sock.local_addr().map_err(io)?;
                    udp.push((local, sock.clone()));
                    tokio::spawn(udp_loop(sock, local, inbound.clone(), edge.clone()));
                }
                Protocol::Tcp | Protocol::Tls => {
                    let listener = TcpListener::bind(l.addr).await.map_err(io)?;
                    let local = listener.local_addr().map_err(io)?;
                    stream_local.push((l.transport, local));
                    info!(address = %local, transport = label(l.transport),
                        max_connections = edge.max_connections,
                        per_source = edge.per_source, idle_secs = edge.idle.as_secs(),
                        "TCP connection limits");
                    tokio::spawn(stream_accept(
                        listener,
                        Listener {
                            local,
                            transport: l.transport,
                            inbound: inbound.clone(),
                            conns: conns.clone(),
                            edge: edge.clone(),
                        },
                        tls,
                    ));
                }
            }
        }
        Ok(Transports {
            udp: Arc::new(udp),
            stream_local: Arc::new(stream_local),
            conns,
            stats,
            limits,
            edge,
            inbound,
            tls_client,
        })
    }

    /// The bound addresses, in the order they were configured per transport.
    pub fn local_addrs(&self) -> Vec<(Protocol, SocketAddr)> {
        let mut v: Vec<_> = self.udp.iter().map(|(a, _)| (Protocol::Udp, *a)).collect();
        v.extend(self.stream_local.iter().copied());
        v
    }

    /// Sends `bytes` to `peer`. UDP leaves from the listener the peer talked to; TCP and TLS
    /// use the peer's open connection of that transport and never wait: a peer whose write
    /// buffer is full is disconnected, and one without a connection is not reached. Failures are counted and returned, so that a transaction can see a
    /// transport error.
    pub async fn send(&self, peer: &Peer, bytes: Bytes) -> Result<(), SendError> {
        let r = match peer.transport {
            Protocol::Udp => {
                let sock = self
                    .udp
                    .iter()
                    .find(|(a, _)| *a == peer.local)
                    .or_else(|| self.udp.first())
                    .map(|(_, s)| s.clone());
                match sock {
                    Some(s) => s
                        .send_to(&bytes, peer.remote)
                        .await
                        .map(|_| ())
                        .map_err(SendError::from),
                    None => Err(SendError::NoListener {
                        transport: Protocol::Udp,
                    }),
                }
            }
            Protocol::Tcp | Protocol::Tls => self.send_stream(peer.transport, peer.remote, bytes),
        };
        if r.is_err() {
            self.stats.send_errors.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    fn send_stream(
        &self,
        transport: Protocol,
        remote: SocketAddr,
        bytes: Bytes,
    ) -> Result<(), SendError> {
        let key = (transport, remote);
        let conn = self.conns.lock().ok().and_then(|c| c.get(&key).cloned());
        let Some(conn) = conn else {
            return Err(SendError::NoConnection { transport, remote });
        };
        match conn.push(bytes) {
            // The connection's own task counts and logs the close it was told of.
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                forget(&self.conns, key, &conn.tx);
                Err(SendError::SlowPeer(remote))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Err(SendError::NoConnection { transport, remote })
            }
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }
}

/// How a transport is named in metrics and log lines.
fn label(p: Protocol) -> &'static str {
    match p {
        Protocol::Udp => "udp",
        Protocol::Tcp => "tcp",
        Protocol::Tls => "tls",
    }
}

/// Parses one message; answers or counts what cannot be parsed. Returns the message when it
/// should go on to the endpoint, and the bytes of an error response to send back otherwise.
fn accept(
    data: &[u8],
    remote: SocketAddr,
    transport: Protocol,
    edge: &Edge,
) -> Result<Message, Option<Vec<u8>>> {
    let stats = &edge.stats;
    stats.received.fetch_add(1, Ordering::Relaxed);
    let err = match message::parse(data, &edge.codec) {
        Ok(Message::Request(req)) => match validate_request(&req) {
            Ok(()) if hops_exhausted(&req) => {
                let answer = answer_with(&req, 483);
                edge.metrics
                    .sip_refused(label(transport), "max_forwards", Some(483));
                info!(source = %remote.ip(), port = remote.port(), transport = label(transport),
                    reason = "max_forwards", status = 483, "SIP message refused");
                stats.answered_400.fetch_add(1, Ordering::Relaxed);
                return Err(Some(answer.to_bytes()));
            }
            Ok(()) => return Ok(Message::Request(req)),
            Err(e) => e,
        },
        Ok(Message::Response(resp)) => match validate_response(&resp) {
            Ok(()) => return Ok(Message::Response(resp)),
            Err(e) => e,
        },
        Err(e) => e,
    };
    let answer = error_response(data, &edge.codec, &err, &crate::sip::random_token(10));
    let status = answer.as_ref().map(|r| r.status);
    edge.metrics
        .sip_refused(label(transport), "malformed", status);
    info!(source = %remote.ip(), port = remote.port(), transport = label(transport),
        reason = "malformed", status, error = %err, "SIP message refused");
    match answer {
        Some(resp) => {
            stats.answered_400.fetch_add(1, Ordering::Relaxed);
            Err(Some(resp.to_bytes()))
        }
        None => {
            stats.dropped_garbage.fetch_add(1, Ordering::Relaxed);
            Err(None)
        }
    }
}

/// A new request (no To tag) that may not travel further: Max-Forwards 0 (RFC 3261
/// §16.3). OPTIONS is the exception, as it probes the hop that answers it; ACK is never
/// answered.
fn hops_exhausted(req: &message::Request) -> bool {
    !matches!(req.method, message::Method::Ack | message::Method::Options)
        && matches!(req.headers.max_forwards(), Ok(Some(0)))
        && req.headers.to_addr().is_ok_and(|to| to.tag().is_none())
}

/// A stateless answer with `status` and its usual reason, for a request that passed
/// [`validate_request`].
fn answer_with(req: &message::Request, status: u16) -> message::Response {
    let mut resp = message::Response::for_request(req, status, message::default_reason(status));
    let _ = resp.headers.ensure_to_tag(&crate::sip::random_token(10));
    resp
}

async fn udp_loop(
    sock: Arc<UdpSocket>,
    local: SocketAddr,
    inbound: mpsc::Sender<Inbound>,
    edge: Arc<Edge>,
) {
    // One byte more than the largest message accepted tells an oversize datagram from one
    // that fits exactly, whatever the kernel cuts off beyond it.
    let mut buf = vec![0u8; edge.codec.max_message_bytes + 1];
    loop {
        let (len, remote) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            // ICMP port unreachable from an earlier send shows up here; keep serving.
            Err(_) => continue,
        };
        let data = buf.get(..len).unwrap_or_default();
        if len > edge.codec.max_message_bytes {
            // No answer: a datagram that large is a flood or a broken peer, and a reply
            // would only help the first.
            edge.stats.oversize_dropped.fetch_add(1, Ordering::Relaxed);
            edge.metrics.sip_refused("udp", "oversize", None);
            warn!(source = %remote.ip(), port = remote.port(), transport = "udp",
                reason = "oversize", limit = edge.codec.max_message_bytes,
                "SIP message refused");
            continue;
        }
        if data.iter().all(|b| matches!(b, b'\r' | b'\n' | 0)) {
            // Keep-alive (RFC 5626 CRLF or a NAT pinger's empty datagram): nothing to say.
            edge.stats.keepalives.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        match accept(data, remote, Protocol::Udp, &edge) {
            Ok(message) => {
                let peer = Peer {
                    transport: Protocol::Udp,
                    remote,
                    local,
                };
                if inbound.send(Inbound { peer, message }).await.is_err() {
                    return;
                }
            }
            Err(Some(answer)) => {
                let _ = sock.send_to(&answer, remote).await;
            }
            Err(None) => {}
        }
    }
}

/// What the tasks of a TCP or TLS listener's connections (or of the TLS connections we
/// open) share.
#[derive(Clone)]
struct Listener {
    /// The address our Via and Contact give for this connection: the listener's.
    local: SocketAddr,
    transport: Protocol,
    inbound: mpsc::Sender<Inbound>,
    conns: ConnTable,
    edge: Arc<Edge>,
}

/// Accepts the connections of a TCP listener, or of a TLS one (`tls` Some), whose
/// connections start with a handshake.
async fn stream_accept(listener: TcpListener, l: Listener, tls: Option<tokio_rustls::TlsAcceptor>) {
    let transport = l.transport;
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, transport = label(transport),
                    "accepting a TCP connection failed; retrying shortly");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // A TLS connection takes its place before its handshake: the caps bound the
        // handshakes in progress as well.
        let slot = match l.edge.take_slot(remote.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                drop(stream);
                l.edge.closed(
                    transport,
                    remote,
                    match refusal {
                        Refusal::PerSource => TcpClose::PerSource,
                        Refusal::Total => TcpClose::Total,
                    },
                );
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let l = l.clone();
        match tls.clone() {
            None => {
                let (rd, wr) = stream.into_split();
                let opened = open_conn(&l.conns, (transport, remote), l.local);
                tokio::spawn(stream_conn(rd, wr, remote, l, slot, opened));
            }
            Some(acceptor) => {
                tokio::spawn(async move {
                    let limit = l.edge.idle.min(TLS_HANDSHAKE);
                    match tokio::time::timeout(limit, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let (rd, wr) = tokio::io::split(tls);
                            let opened = open_conn(&l.conns, (Protocol::Tls, remote), l.local);
                            stream_conn(rd, wr, remote, l, slot, opened).await;
                        }
                        Ok(Err(e)) => {
                            info!(source = %remote.ip(), port = remote.port(), error = %e,
                                "TLS handshake failed");
                            l.edge.closed(Protocol::Tls, remote, TcpClose::TlsHandshake);
                        }
                        Err(_) => {
                            info!(source = %remote.ip(), port = remote.port(),
                                limit_secs = limit.as_secs_f32(), "TLS handshake not done in time");
                            l.edge.closed(Protocol::Tls, remote, TcpClose::TlsHandshake);
                        }
                    }
                });
            }
        }
    }
}

/// Removes `key`'s entry if it is still the connection `tx` feeds.
fn forget(conns: &ConnTable, key: (Protocol, SocketAddr), tx: &mpsc::Sender<Bytes>) {
    if let Ok(mut c) = conns.lock()
        && c.get(&key).is_some_and(|t| t.tx.same_channel(tx))
    {
        c.remove(&key);
    }
}

/// How a connection's read loop ended.
enum End {
    /// The peer closed, or the endpoint is gone: flush what is queued.
    Peer,
    /// We close it: stop at once.
    Abort(TcpClose),
    /// We answered and close it: flush the answer, then read and discard for a moment.
    Linger(TcpClose),
}

/// Enters a new connection in the table senders look in (before its task runs, so that a
/// message sent right after a connect finds it). Returns it with its writer's queue.
fn open_conn(
    conns: &ConnTable,
    key: (Protocol, SocketAddr),
    local: SocketAddr,
) -> (Conn, mpsc::Receiver<Bytes>) {
    let (tx, rx) = mpsc::channel::<Bytes>(TCP_WRITE_BUFFER);
    let conn = Conn {
        local,
        tx,
        close: Arc::new(Notify::new()),
    };
    if let Ok(mut c) = conns.lock() {
        c.insert(key, conn.clone());
    }
    (conn, rx)
}

/// Serves one TCP connection, or one TLS connection past its handshake: `rd` and `wr` are
/// its two halves, `opened` its entry from [`open_conn`].
async fn stream_conn<R, W>(
    mut rd: R,
    mut wr: W,
    remote: SocketAddr,
    l: Listener,
    slot: Slot,
    opened: (Conn, mpsc::Receiver<Bytes>),
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let Listener {
        local,
        inbound,
        conns,
        transport,
        ..
    } = &l;
    let transport = *transport;
    let key = (transport, remote);
    let edge = slot.edge.clone();
    let (conn, mut rx) = opened;
    let mut writer = tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if wr.write_all(&b).await.is_err() {
                return;
            }
            // TLS holds records back until flushed; plain TCP has nothing to flush.
            if rx.is_empty() && wr.flush().await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    });
    let peer = Peer {
        transport,
        remote,
        local: *local,
    };
    let mut framer = StreamFramer::new(edge.codec);
    let mut buf = vec![0u8; 16 * 1024];
    // Only a complete message (or keep-alive) moves this: a peer that trickles bytes, or
    // sends half a message and stalls, is closed as idle.
    let mut idle_until = Instant::now() + edge.idle;
    let end = 'conn: loop {
        let n = tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(0) | Err(_) => break End::Peer,
                Ok(n) => n,
            },
            _ = tokio::time::sleep_until(idle_until) => break End::Abort(TcpClose::Idle),
            _ = conn.close.notified() => break End::Abort(TcpClose::Slow),
        };
        framer.push(buf.get(..n).unwrap_or_default());
        loop {
            let answer = match framer.pop() {
                Ok(None) => break,
                Ok(Some(Frame::Message(bytes))) => {
                    idle_until = Instant::now() + edge.idle;
                    match accept(&bytes, remote, transport, &edge) {
                        Ok(message) => {
                            // Waits only for the endpoint (shared by every peer), never for
                            // this peer's writer.
                            if inbound.send(Inbound { peer, message }).await.is_err() {
                                break 'conn End::Peer;
                            }
                            continue;
                        }
                        Err(Some(answer)) => Bytes::from(answer),
                        Err(None) => continue,
                    }
                }
                Ok(Some(Frame::Ping)) => {
                    // RFC 5626 §3.5.1: a CRLFCRLF ping is answered with a CRLF pong.
                    idle_until = Instant::now() + edge.idle;
                    edge.stats.keepalives.fetch_add(1, Ordering::Relaxed);
                    Bytes::from_static(b"\r\n")
                }
                Ok(Some(Frame::Pong)) => {
                    idle_until = Instant::now() + edge.idle;
                    edge.stats.keepalives.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Err(e) if e.is_too_large() => {
                    let answer = framer.refused_head().and_then(|head| {
                        too_large_response(head, &edge.codec, &crate::sip::random_token(10))
                    });
                    let status = answer.as_ref().map(|r| r.status);
                    edge.metrics
                        .sip_refused(label(transport), "oversize", status);
                    warn!(source = %remote.ip(), port = remote.port(), transport = label(transport),
                        reason = "oversize", status, error = %e, "SIP message refused");
                    if let Some(resp) = answer {
                        edge.stats.answered_413.fetch_add(1, Ordering::Relaxed);
                        let _ = conn.push(Bytes::from(resp.to_bytes()));
                    }
                    break 'conn End::Linger(TcpClose::Oversize);
                }
                Err(e) => {
                    // A stream we cannot frame cannot be resynchronised: close it.
                    debug!(%remote, transport = label(transport), error = %e, "unframable stream");
                    break 'conn End::Abort(TcpClose::Unframable);
                }
            };
            if let Err(mpsc::error::TrySendError::Full(_)) = conn.push(answer) {
                break 'conn End::Abort(TcpClose::Slow);
            }
        }
    };
    forget(conns, key, &conn.tx);
    drop(conn);
    match end {
        End::Abort(reason) => {
            edge.closed(transport, remote, reason);
            // The writer may be stuck in a write the peer will never read: stop it, which
            // closes the socket.
            writer.abort();
        }
        End::Peer => {
            if tokio::time::timeout(TCP_FLUSH, &mut writer).await.is_err() {
                writer.abort();
            }
        }
        End::Linger(reason) => {
            edge.closed(transport, remote, reason);
            if tokio::time::timeout(TCP_FLUSH, &mut writer).await.is_err() {
                writer.abort();
            }
            discard(&mut rd, &mut buf).await;
        }
    }
    drop(slot);
}

/// Reads and throws away what the peer still sends, for at most [`TCP_LINGER`] and
/// [`TCP_LINGER_BYTES`], or until it closes.
async fn discard<R: AsyncRead + Unpin>(rd: &mut R, buf: &mut [u8]) {
    let until = Instant::now() + TCP_LINGER;
    let mut left = TCP_LINGER_BYTES;
    while left > 0 {
        match tokio::time::timeout_at(until, rd.read(buf)).await {
            Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n),
            _ => return,
        }
    }
}
