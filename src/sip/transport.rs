//! SIP over UDP and TCP: the only place SIP touches a socket. Datagrams and stream frames
//! are parsed here, so a malformed message is answered (400 with the reason) or dropped and
//! counted right at the edge; what reaches the endpoint is always a parsed message. Sending
//! is by destination: UDP to an address, TCP over the connection that address opened.
//!
//! Each TCP connection has its own writer task behind a bounded buffer that senders fill
//! with `try_send`: a peer that stops reading fills its buffer and is disconnected (and
//! counted), so no sender ever waits on one slow peer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thiserror::Error;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Notify, mpsc};
use tracing::{debug, warn};

use crate::config::{Listen, Protocol};
use crate::sip::message::{
    self, Frame, Limits, Message, StreamFramer, error_response, validate_request, validate_response,
};

/// Where a message came from or goes to (plain data, the core's, so pure parts can name it).
pub use hotline_core::sip::peer::Peer;

/// A parsed message and where it came from.
#[derive(Debug)]
pub struct Inbound {
    pub peer: Peer,
    pub message: Message,
}

/// Counters of what the edge refused; visible in logs and the admin API.
#[derive(Debug, Default)]
pub struct TransportStats {
    pub received: AtomicU64,
    pub answered_400: AtomicU64,
    pub dropped_garbage: AtomicU64,
    pub keepalives: AtomicU64,
    pub send_errors: AtomicU64,
    /// TCP peers disconnected because they stopped reading (their write buffer filled).
    pub tcp_slow_closed: AtomicU64,
}

/// Why a message could not be sent.
#[derive(Debug, Error)]
pub enum SendError {
    #[error("no {transport} listener to send from")]
    NoListener { transport: Protocol },
    #[error("no open TCP connection to {0}")]
    NoConnection(SocketAddr),
    #[error("the TCP peer {0} is not reading: its write buffer is full, the connection is closed")]
    SlowPeer(SocketAddr),
    #[error("send failed: {0}")]
    Io(#[from] std::io::Error),
}

/// An idle TCP connection is closed after this long (AST-2016-005: idle connections must
/// not pile up).
const TCP_IDLE: Duration = Duration::from_secs(300);
/// A cap on open TCP connections, so a flood of idle connects cannot exhaust descriptors
/// (lowered to a quarter of the descriptor budget when that is smaller, see
/// [`crate::fd_limit::size_caps`]).
pub const MAX_TCP_CONNECTIONS: usize = 4096;
/// Messages waiting for one TCP connection's writer. The kernel's socket buffers absorb
/// bursts first, so this fills only when the peer has stopped reading for a long while.
const TCP_WRITE_BUFFER: usize = 256;
/// How long a closing connection's writer may take to flush what is queued.
const TCP_FLUSH: Duration = Duration::from_secs(5);

/// One open TCP connection as senders see it.
#[derive(Clone)]
struct Conn {
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

type ConnTable = Arc<Mutex<HashMap<SocketAddr, Conn>>>;

/// The open listeners. Cheap to clone.
#[derive(Clone)]
pub struct Transports {
    udp: Arc<Vec<(SocketAddr, Arc<UdpSocket>)>>,
    tcp_local: Arc<Vec<SocketAddr>>,
    conns: ConnTable,
    pub stats: Arc<TransportStats>,
    limits: Limits,
}

impl Transports {
    /// Binds every listener and starts its receive task; parsed messages go to `inbound`.
    pub async fn bind(
        listen: &[Listen],
        inbound: mpsc::Sender<Inbound>,
    ) -> std::io::Result<Transports> {
        let stats = Arc::new(TransportStats::default());
        let limits = Limits::default();
        let conns: ConnTable = Arc::new(Mutex::new(HashMap::new()));
        let mut udp = Vec::new();
        let mut tcp_local = Vec::new();
        for l in listen {
            match l.transport {
                Protocol::Udp => {
                    let sock = Arc::new(UdpSocket::bind(l.addr).await?);
                    let local = sock.local_addr()?;
                    udp.push((local, sock.clone()));
                    tokio::spawn(udp_loop(
                        sock,
                        local,
                        inbound.clone(),
                        stats.clone(),
                        limits,
                    ));
                }
                Protocol::Tcp => {
                    let listener = TcpListener::bind(l.addr).await?;
                    let local = listener.local_addr()?;
                    tcp_local.push(local);
                    tokio::spawn(tcp_accept(
                        listener,
                        local,
                        inbound.clone(),
                        conns.clone(),
                        stats.clone(),
                        limits,
                    ));
                }
            }
        }
        Ok(Transports {
            udp: Arc::new(udp),
            tcp_local: Arc::new(tcp_local),
            conns,
            stats,
            limits,
        })
    }

    /// The bound addresses, in the order they were configured per transport.
    pub fn local_addrs(&self) -> Vec<(Protocol, SocketAddr)> {
        let mut v: Vec<_> = self.udp.iter().map(|(a, _)| (Protocol::Udp, *a)).collect();
        v.extend(self.tcp_local.iter().map(|a| (Protocol::Tcp, *a)));
        v
    }

    /// Sends `bytes` to `peer`. UDP leaves from the listener the peer talked to; TCP uses the
    /// peer's open connection and never waits: a peer whose write buffer is full is
    /// disconnected. Failures are counted and returned, so that a transaction can see a
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
            Protocol::Tcp => self.send_tcp(peer.remote, bytes),
        };
        if r.is_err() {
            self.stats.send_errors.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    fn send_tcp(&self, remote: SocketAddr, bytes: Bytes) -> Result<(), SendError> {
        let conn = self.conns.lock().ok().and_then(|c| c.get(&remote).cloned());
        let Some(conn) = conn else {
            return Err(SendError::NoConnection(remote));
        };
        match conn.push(bytes) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                forget(&self.conns, remote, &conn.tx);
                self.stats.tcp_slow_closed.fetch_add(1, Ordering::Relaxed);
                warn!(%remote, "TCP peer stopped reading; connection closed");
                Err(SendError::SlowPeer(remote))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SendError::NoConnection(remote)),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }
}

/// Parses one message; answers or counts what cannot be parsed. Returns the message when it
/// should go on to the endpoint, and the bytes of an error response to send back otherwise.
fn accept(
    data: &[u8],
    limits: &Limits,
    stats: &TransportStats,
) -> Result<Message, Option<Vec<u8>>> {
    stats.received.fetch_add(1, Ordering::Relaxed);
    let err = match message::parse(data, limits) {
        Ok(Message::Request(req)) => match validate_request(&req) {
            Ok(()) => return Ok(Message::Request(req)),
            Err(e) => e,
        },
        Ok(Message::Response(resp)) => match validate_response(&resp) {
            Ok(()) => return Ok(Message::Response(resp)),
            Err(_) => {
                stats.dropped_garbage.fetch_add(1, Ordering::Relaxed);
                return Err(None);
            }
        },
        Err(e) => e,
    };
    match error_response(data, limits, &err, &crate::sip::random_token(10)) {
        Some(resp) => {
            stats.answered_400.fetch_add(1, Ordering::Relaxed);
            debug!(status = resp.status, reason = %resp.reason, "refused a malformed request");
            Err(Some(resp.to_bytes()))
        }
        None => {
            stats.dropped_garbage.fetch_add(1, Ordering::Relaxed);
            Err(None)
        }
    }
}

async fn udp_loop(
    sock: Arc<UdpSocket>,
    local: SocketAddr,
    inbound: mpsc::Sender<Inbound>,
    stats: Arc<TransportStats>,
    limits: Limits,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (len, remote) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            // ICMP port unreachable from an earlier send shows up here; keep serving.
            Err(_) => continue,
        };
        let data = &buf[..len];
        if data.iter().all(|b| matches!(b, b'\r' | b'\n' | 0)) {
            // Keep-alive (RFC 5626 CRLF or a NAT pinger's empty datagram): nothing to say.
            stats.keepalives.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        match accept(data, &limits, &stats) {
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

const ACCEPT_BACKOFF_FIRST: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// An accept error that belongs to the one connection (it went away before we took it),
/// not to the listener: the next accept may succeed at once.
fn accept_error_is_the_connections(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    )
}

async fn tcp_accept(
    listener: TcpListener,
    local: SocketAddr,
    inbound: mpsc::Sender<Inbound>,
    conns: ConnTable,
    stats: Arc<TransportStats>,
    limits: Limits,
) {
    // Out of descriptors (EMFILE, ENFILE) or memory, accept fails at once, again and
    // again: waiting, doubled up to a second, keeps the listener from spinning a core.
    let mut backoff = ACCEPT_BACKOFF_FIRST;
    let cap = crate::fd_limit::size_caps(crate::fd_limit::fd_budget(), 0, MAX_TCP_CONNECTIONS).tcp;
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(a) => {
                backoff = ACCEPT_BACKOFF_FIRST;
                a
            }
            Err(e) if accept_error_is_the_connections(&e) => continue,
            Err(e) => {
                warn!(%local, error = %e, wait_ms = backoff.as_millis() as u64, "TCP accept failed; waiting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let full = conns.lock().map(|c| c.len() >= cap).unwrap_or(true);
        if full {
            warn!(%remote, "too many TCP connections; refusing");
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        tokio::spawn(tcp_conn(
            stream,
            local,
            remote,
            inbound.clone(),
            conns.clone(),
            stats.clone(),
            limits,
        ));
    }
}

/// Removes `remote`'s entry if it is still the connection `tx` feeds.
fn forget(conns: &ConnTable, remote: SocketAddr, tx: &mpsc::Sender<Bytes>) {
    if let Ok(mut c) = conns.lock()
        && c.get(&remote).is_some_and(|t| t.tx.same_channel(tx))
    {
        c.remove(&remote);
    }
}

async fn tcp_conn(
    stream: TcpStream,
    local: SocketAddr,
    remote: SocketAddr,
    inbound: mpsc::Sender<Inbound>,
    conns: ConnTable,
    stats: Arc<TransportStats>,
    limits: Limits,
) {
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Bytes>(TCP_WRITE_BUFFER);
    let conn = Conn {
        tx,
        close: Arc::new(Notify::new()),
    };
    if let Ok(mut c) = conns.lock() {
        c.insert(remote, conn.clone());
    }
    let mut writer = tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
    });
    let peer = Peer {
        transport: Protocol::Tcp,
        remote,
        local,
    };
    let mut framer = StreamFramer::new(limits);
    let mut buf = vec![0u8; 16 * 1024];
    let mut closed_by_us = false;
    'conn: loop {
        let n = tokio::select! {
            r = tokio::time::timeout(TCP_IDLE, rd.read(&mut buf)) => match r {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                Ok(Ok(n)) => n,
            },
            _ = conn.close.notified() => {
                closed_by_us = true;
                break;
            }
        };
        framer.push(&buf[..n]);
        loop {
            let answer = match framer.pop() {
                Ok(None) => break,
                Ok(Some(Frame::Message(bytes))) => match accept(&bytes, &limits, &stats) {
                    Ok(message) => {
                        // Waits only for the endpoint (shared by every peer), never for
                        // this peer's writer.
                        if inbound.send(Inbound { peer, message }).await.is_err() {
                            break 'conn;
                        }
                        continue;
                    }
                    Err(Some(answer)) => Bytes::from(answer),
                    Err(None) => continue,
                },
                Ok(Some(Frame::Ping)) => {
                    // RFC 5626 §3.5.1: a CRLFCRLF ping is answered with a CRLF pong.
                    stats.keepalives.fetch_add(1, Ordering::Relaxed);
                    Bytes::from_static(b"\r\n")
                }
                Ok(Some(Frame::Pong)) => {
                    stats.keepalives.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Err(e) => {
                    // A stream we cannot frame cannot be resynchronised: close it.
                    debug!(%remote, error = %e, "closing TCP connection");
                    stats.dropped_garbage.fetch_add(1, Ordering::Relaxed);
                    break 'conn;
                }
            };
            if let Err(mpsc::error::TrySendError::Full(_)) = conn.push(answer) {
                stats.tcp_slow_closed.fetch_add(1, Ordering::Relaxed);
                warn!(%remote, "TCP peer stopped reading; connection closed");
                closed_by_us = true;
                break 'conn;
            }
        }
    }
    forget(&conns, remote, &conn.tx);
    drop(conn);
    if closed_by_us {
        // The writer may be stuck in a write the peer will never read: stop it, which
        // closes the socket.
        writer.abort();
    } else if tokio::time::timeout(TCP_FLUSH, &mut writer).await.is_err() {
        writer.abort();
    }
}
