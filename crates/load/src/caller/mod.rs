//! A scripted caller: the project's own SIP user agent that places calls to a hotline,
//! listens to what it plays and presses keys. The load tool drives many of them and the
//! integration tests drive one at a time. It writes its requests as plain SIP text (as a
//! SIPp scenario would) and reads the answers with the engine's codec.
//!
//! It is a test instrument, not a softphone: it trusts the server to be on loopback, keeps
//! one call per `Phone`, and answers only what a caller of an IVR has to answer (BYE).

pub mod answerer;
pub mod media;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

use crate::config::Protocol;
use crate::sip::message::{
    self, Frame, HeaderName, Limits, Message, Method, Request, Response, StreamFramer,
};
use crate::sip::random_token;
use crate::sip::sdp;

pub use media::{CallMedia, KeyMethod};

#[derive(Debug, Error)]
pub enum CallerError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("timed out waiting for {0}")]
    Timeout(String),
    #[error("unexpected answer: {0}")]
    Unexpected(String),
    #[error("bad SDP in the answer: {0}")]
    Sdp(String),
    /// The INVITE got a final answer other than 200 (an engine over its limits says 503
    /// with the seconds to wait in `Retry-After`).
    #[error("refused: {status} {reason}")]
    Refused {
        status: u16,
        reason: String,
        retry_after: Option<u32>,
    },
    #[error("a {0} phone needs its connection: use Phone::over_stream")]
    NeedsStream(Protocol),
}

/// The reading half of a connection (TCP, or TLS set up by the caller's owner).
pub type StreamReader = Box<dyn AsyncRead + Unpin + Send>;
/// The writing half of a connection.
pub type StreamWriter = Box<dyn AsyncWrite + Unpin + Send>;

enum Sock {
    Udp(UdpSocket),
    Stream {
        rd: StreamReader,
        wr: StreamWriter,
        framer: StreamFramer,
    },
}

/// One SIP user agent bound to a local port, talking to one server.
pub struct Phone {
    sock: Sock,
    pub local: SocketAddr,
    pub server: SocketAddr,
    pub transport: Protocol,
    inbox: VecDeque<Message>,
    buf: Vec<u8>,
}

impl Phone {
    pub async fn new(transport: Protocol, server: SocketAddr) -> Result<Phone, CallerError> {
        let any: SocketAddr = if server.is_ipv4() {
            "127.0.0.1:0".parse().expect("static address")
        } else {
            "[::1]:0".parse().expect("static address")
        };
        let (sock, local) = match transport {
            Protocol::Udp => {
                let s = UdpSocket::bind(any).await?;
                let local = s.local_addr()?;
                (Sock::Udp(s), local)
            }
            Protocol::Tcp => {
                let s = TcpStream::connect(server).await?;
                s.set_nodelay(true)?;
                let local = s.local_addr()?;
                let (rd, wr) = s.into_split();
                return Ok(Phone::over_stream(
                    Protocol::Tcp,
                    server,
                    local,
                    Box::new(rd),
                    Box::new(wr),
                ));
            }
            Protocol::Tls => return Err(CallerError::NeedsStream(Protocol::Tls)),
        };
        Ok(Phone {
            sock,
            local,
            server,
            transport,
            inbox: VecDeque::new(),
            buf: vec![0; 65_536],
        })
    }

    /// A phone on a connection its owner opened (a TLS one, whose handshake is theirs):
    /// `local` is the connection's own address, written in Via and Contact.
    pub fn over_stream(
        transport: Protocol,
        server: SocketAddr,
        local: SocketAddr,
        rd: StreamReader,
        wr: StreamWriter,
    ) -> Phone {
        Phone {
            sock: Sock::Stream {
                rd,
                wr,
                framer: StreamFramer::new(Limits::default()),
            },
            local,
            server,
            transport,
            inbox: VecDeque::new(),
            buf: vec![0; 65_536],
        }
    }

    /// Sends raw bytes to the server (tests use this for malformed input).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), CallerError> {
        match &mut self.sock {
            Sock::Udp(s) => {
                s.send_to(bytes, self.server).await?;
            }
            Sock::Stream { wr, .. } => {
                wr.write_all(bytes).await?;
                wr.flush().await?;
            }
        }
        Ok(())
    }

    pub async fn send(&mut self, req: &Request) -> Result<(), CallerError> {
        self.send_raw(&req.to_bytes()).await
    }

    pub async fn send_response(&mut self, resp: &Response) -> Result<(), CallerError> {
        self.send_raw(&resp.to_bytes()).await
    }

    /// The next message from the server, parsed; None when `timeout` passes first.
    pub async fn recv(&mut self, timeout: Duration) -> Option<Message> {
        if let Some(m) = self.inbox.pop_front() {
            return Some(m);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let n = match &mut self.sock {
                Sock::Udp(s) => {
                    match tokio::time::timeout_at(deadline, s.recv_from(&mut self.buf)).await {
                        Ok(Ok((n, _))) => n,
                        Ok(Err(_)) => continue,
                        Err(_) => return None,
                    }
                }
                Sock::Stream { rd, framer, .. } => {
                    if let Ok(Some(Frame::Message(b))) = framer.pop() {
                        if let Ok(m) = message::parse_bytes(b, &Limits::default()) {
                            return Some(m);
                        }
                        continue;
                    }
                    match tokio::time::timeout_at(deadline, rd.read(&mut self.buf)).await {
                        Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
                        Ok(Ok(n)) => {
                            framer.push(&self.buf[..n]);
                            continue;
                        }
                    }
                }
            };
            if let Ok(m) = message::parse(&self.buf[..n], &Limits::default()) {
                return Some(m);
            }
        }
    }

    /// Waits for a response to the request with `cseq_method` and `call_id`, skipping
    /// retransmissions and other traffic (which is kept for later `recv` calls).
    pub async fn response(
        &mut self,
        call_id: &str,
        method: &Method,
        min_status: u16,
        timeout: Duration,
    ) -> Result<Response, CallerError> {
        let deadline = Instant::now() + timeout;
        let mut kept = Vec::new();
        let result = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(m) = self.recv(left).await else {
                break Err(CallerError::Timeout(format!("a response to {method}")));
            };
            match m {
                Message::Response(r)
                    if r.status >= min_status
                        && r.headers.call_id().ok() == Some(call_id)
                        && r.headers.cseq().ok().map(|c| c.method) == Some(method.clone()) =>
                {
                    break Ok(r);
                }
                Message::Response(_) => {}
                other => kept.push(other),
            }
        };
        self.inbox.extend(kept);
        result
    }

    /// A fresh Via for this phone.
    pub fn via(&self) -> String {
        let t = match self.transport {
            Protocol::Udp => "UDP",
            Protocol::Tcp => "TCP",
            Protocol::Tls => "TLS",
        };
        format!(
            "SIP/2.0/{t} {};branch=z9hG4bK{};rport",
            self.local,
            random_token(12)
        )
    }

    /// Places a call to `user` at the server, offering PCMU, PCMA and telephone-event on
    /// `rtp` (or no SDP at all with `late_offer`), and completes it: INVITE, provisional
    /// answers, 200, ACK. Returns the established call.
    pub async fn call(
        &mut self,
        user: &str,
        media: &CallMedia,
        offer: Offer,
    ) -> Result<Established, CallerError> {
        let call_id = format!("{}@{}", random_token(16), self.local.ip());
        let from_tag = random_token(8);
        let body = match offer {
            Offer::Default => media.offer(&[0, 8], true),
            Offer::Codecs(ref pts) => media.offer(pts, true),
            Offer::Late => String::new(),
        };
        let invite = self.invite_text(user, &call_id, &from_tag, 1, &body);
        self.send_raw(invite.as_bytes()).await?;
        let resp = self
            .response(&call_id, &Method::Invite, 180, Duration::from_secs(10))
            .await?;
        let resp = if resp.status < 200 {
            self.response(&call_id, &Method::Invite, 200, Duration::from_secs(30))
                .await?
        } else {
            resp
        };
        if resp.status != 200 {
            // A failed INVITE is acknowledged within its transaction (§17.1.1.3).
            let ack = self.ack_text(user, &call_id, &from_tag, &resp, 1, "", true);
            self.send_raw(ack.as_bytes()).await?;
            let retry_after = resp
                .headers
                .get(HeaderName::RetryAfter)
                .and_then(|v| v.as_str())
                .and_then(|v| v.split(';').next())
                .and_then(|v| v.trim().parse().ok());
            return Err(CallerError::Refused {
                status: resp.status,
                reason: resp.reason.to_string(),
                retry_after,
            });
        }
        let to_tag = resp
            .headers
            .to_addr()
            .ok()
            .and_then(|t| t.tag().map(str::to_string))
            .unwrap_or_default();
        let answer = sdp::parse_offer(&resp.body).map_err(|e| CallerError::Sdp(e.to_string()))?;
        let neg = if matches!(offer, Offer::Late) {
            sdp::negotiate(&answer, &[crate::media::g711::Codec::Pcmu])
        } else {
            sdp::accept_answer(
                &answer,
                &[
                    crate::media::g711::Codec::Pcmu,
                    crate::media::g711::Codec::Pcma,
                ],
                None,
            )
        }
        .map_err(|e| CallerError::Sdp(e.to_string()))?;
        let ack_body = if matches!(offer, Offer::Late) {
            media.offer(&[neg.pt], true)
        } else {
            String::new()
        };
        let ack = self.ack_text(user, &call_id, &from_tag, &resp, 1, &ack_body, false);
        self.send_raw(ack.as_bytes()).await?;
        Ok(Established {
            user: user.to_string(),
            call_id,
            from_tag,
            to_tag,
            cseq: 1,
            remote_rtp: neg.remote_rtp,
            codec: neg.codec,
            payload_type: neg.pt,
            telephone_event_pt: neg.telephone_event_pt,
            answer: resp,
        })
    }

    /// The text of an INVITE (public so tests can vary it).
    pub fn invite_text(
        &self,
        user: &str,
        call_id: &str,
        from_tag: &str,
        cseq: u32,
        sdp_body: &str,
    ) -> String {
        let ct = if sdp_body.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".to_string()
        };
        format!(
            "INVITE sip:{user}@{server} SIP/2.0\r\n\
Via: {via}\r\n\
Max-Forwards: 70\r\n\
From: \"Test Caller\" <sip:+4930123456@{local}>;tag={from_tag}\r\n\
To: <sip:{user}@{server}>\r\n\
Call-ID: {call_id}\r\n\
CSeq: {cseq} INVITE\r\n\
Contact: <sip:caller@{local}{tp}>\r\n\
{ct}Content-Length: {len}\r\n\r\n{sdp_body}",
            server = self.server,
            via = self.via(),
            local = self.local,
            tp = self.transport_param(),
            len = sdp_body.len(),
        )
    }

    fn transport_param(&self) -> &'static str {
        match self.transport {
            Protocol::Udp => "",
            Protocol::Tcp => ";transport=tcp",
            Protocol::Tls => ";transport=tls",
        }
    }

    /// An ACK: for a non-2xx it reuses the INVITE's branch (same transaction); for a 2xx it
    /// is a new transaction sent to the Contact (here, the server).
    #[allow(clippy::too_many_arguments)]
    pub fn ack_text(
        &self,
        user: &str,
        call_id: &str,
        from_tag: &str,
        resp: &Response,
        cseq: u32,
        sdp_body: &str,
        same_transaction: bool,
    ) -> String {
        let via = if same_transaction {
            resp.headers
                .get(message::HeaderName::Via)
                .map(|v| v.to_str_lossy().into_owned())
                .unwrap_or_else(|| self.via())
        } else {
            self.via()
        };
        let to = resp
            .headers
            .get(message::HeaderName::To)
            .map(|v| v.to_str_lossy().into_owned())
            .unwrap_or_default();
        let ct = if sdp_body.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".to_string()
        };
        let (target, routes) = if same_transaction {
            (format!("sip:{user}@{}", self.server), String::new())
        } else {
            self.dialog_target(user, resp)
        };
        format!(
            "ACK {target} SIP/2.0\r\n\
Via: {via}\r\n\
{routes}Max-Forwards: 70\r\n\
From: \"Test Caller\" <sip:+4930123456@{local}>;tag={from_tag}\r\n\
To: {to}\r\n\
Call-ID: {call_id}\r\n\
CSeq: {cseq} ACK\r\n\
{ct}Content-Length: {len}\r\n\r\n{sdp_body}",
            local = self.local,
            len = sdp_body.len(),
        )
    }

    /// Where requests inside the call answered by `answer` go (RFC 3261 §12.2.1.1): with no
    /// Record-Route, straight to the server as `user@server` (every request is sent to the
    /// server anyway); when a proxy record-routed the call, to the answerer's Contact with
    /// the route set (the Record-Route reversed) as Route lines, so the proxy can pass them
    /// on to the node that holds the call.
    fn dialog_target(&self, user: &str, answer: &Response) -> (String, String) {
        let plain = (format!("sip:{user}@{}", self.server), String::new());
        let record_route = answer.headers.record_route().unwrap_or_default();
        if record_route.is_empty() {
            return plain;
        }
        let Ok(Some(contact)) = answer.headers.contact() else {
            return plain;
        };
        let routes: String = record_route
            .iter()
            .rev()
            .map(|r| format!("Route: {r}\r\n"))
            .collect();
        (contact.uri.to_string(), routes)
    }

    /// A request inside an established call (BYE, INFO, re-INVITE, OPTIONS...).
    pub fn in_dialog_text(
        &self,
        call: &mut Established,
        method: &str,
        extra_headers: &str,
        body: &str,
    ) -> String {
        call.cseq += 1;
        let (target, routes) = self.dialog_target(&call.user, &call.answer);
        format!(
            "{method} {target} SIP/2.0\r\n\
Via: {via}\r\n\
{routes}Max-Forwards: 70\r\n\
From: \"Test Caller\" <sip:+4930123456@{local}>;tag={from}\r\n\
To: <sip:{user}@{server}>;tag={to}\r\n\
Call-ID: {cid}\r\n\
CSeq: {cseq} {method}\r\n\
Contact: <sip:caller@{local}{tp}>\r\n\
{extra_headers}Content-Length: {len}\r\n\r\n{body}",
            user = call.user,
            server = self.server,
            via = self.via(),
            local = self.local,
            from = call.from_tag,
            to = call.to_tag,
            cid = call.call_id,
            cseq = call.cseq,
            tp = self.transport_param(),
            len = body.len(),
        )
    }

    /// Hangs up: BYE and its 200.
    pub async fn hang_up(&mut self, call: &mut Established) -> Result<Response, CallerError> {
        let bye = self.in_dialog_text(call, "BYE", "", "");
        self.send_raw(bye.as_bytes()).await?;
        self.response(&call.call_id, &Method::Bye, 200, Duration::from_secs(10))
            .await
    }

    /// Waits for the server's BYE, answers it 200, and returns it.
    pub async fn expect_bye(&mut self, timeout: Duration) -> Result<Request, CallerError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left).await {
                Some(Message::Request(r)) if r.method == Method::Bye => {
                    let ok = Response::for_request(&r, 200, "OK");
                    self.send_response(&ok).await?;
                    return Ok(r);
                }
                Some(_) => continue,
                None => return Err(CallerError::Timeout("the server's BYE".into())),
            }
        }
    }
}

/// What SDP the INVITE carries.
#[derive(Debug, Clone)]
pub enum Offer {
    /// PCMU, PCMA and telephone-event 101.
    Default,
    /// These static payload types (plus telephone-event 101).
    Codecs(Vec<u8>),
    /// No SDP in the INVITE: the server offers in its 200 and we answer in the ACK.
    Late,
}

/// A call the server answered.
#[derive(Debug, Clone)]
pub struct Established {
    pub user: String,
    pub call_id: String,
    pub from_tag: String,
    pub to_tag: String,
    pub cseq: u32,
    pub remote_rtp: SocketAddr,
    pub codec: crate::media::g711::Codec,
    pub payload_type: u8,
    pub telephone_event_pt: Option<u8>,
    pub answer: Response,
}

impl Established {
    pub fn sdp_answer(&self) -> Bytes {
        self.answer.body.clone()
    }
}
