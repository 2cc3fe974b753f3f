//! A scripted answering phone: the far end of a transfer or an agent's desk phone, for
//! tests and the load tool. It receives the INVITEs the hotline places, rings, answers,
//! refuses or lets them ring out, and then talks and listens through a `CallMedia`, so a
//! test can check the audio that crosses a bridge sample by sample.
//!
//! Like `Phone` it is a test instrument over UDP on loopback, not a softphone: one call
//! at a time per answerer, and only the requests a called phone must answer.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::caller::{CallMedia, CallerError};
use crate::media::g711::Codec;
use crate::sip::digest::{Authorization, Challenge};
use crate::sip::message::{
    self, ContentType, HeaderName, Limits, Message, Method, Request, Response,
};
use crate::sip::random_token;
use crate::sip::sdp;

/// An INVITE that reached the answerer, with where it came from.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub invite: Request,
    pub source: SocketAddr,
    pub to_tag: String,
}

/// A call the answerer accepted.
#[derive(Debug, Clone)]
pub struct Answered {
    pub incoming: Incoming,
    pub remote_rtp: SocketAddr,
    pub codec: Codec,
    /// The payload type agreed for `codec`.
    pub pt: u8,
    cseq: u32,
}

pub struct Answerer {
    sock: UdpSocket,
    pub local: SocketAddr,
    buf: Vec<u8>,
    /// Messages read while waiting for something else.
    backlog: Vec<(Message, SocketAddr)>,
}

impl Answerer {
    pub async fn bind(ip: IpAddr) -> Result<Answerer, CallerError> {
        let sock = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
        let local = sock.local_addr()?;
        Ok(Answerer {
            sock,
            local,
            buf: vec![0; 65_536],
            backlog: Vec::new(),
        })
    }

    /// The SIP URI that reaches this phone as `user`.
    pub fn uri(&self, user: &str) -> String {
        format!("sip:{user}@{}", self.local)
    }

    async fn recv_any(&mut self, deadline: Instant) -> Option<(Message, SocketAddr)> {
        loop {
            let (n, from) =
                match tokio::time::timeout_at(deadline, self.sock.recv_from(&mut self.buf)).await {
                    Ok(Ok(x)) => x,
                    Ok(Err(_)) => continue,
                    Err(_) => return None,
                };
            if let Ok(m) = message::parse(&self.buf[..n], &Limits::default()) {
                return Some((m, from));
            }
        }
    }

    /// The next message matching `want`; others are kept for later calls.
    async fn wait_for(
        &mut self,
        timeout: Duration,
        what: &str,
        want: impl Fn(&Message) -> bool,
    ) -> Result<(Message, SocketAddr), CallerError> {
        if let Some(i) = self.backlog.iter().position(|(m, _)| want(m)) {
            return Ok(self.backlog.remove(i));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let Some((m, from)) = self.recv_any(deadline).await else {
                return Err(CallerError::Timeout(what.into()));
            };
            if want(&m) {
                return Ok((m, from));
            }
            // Retransmissions of what was already handled are noise; keep the rest.
            if self.backlog.len() < 64 {
                self.backlog.push((m, from));
            }
        }
    }

    async fn send_to(&self, bytes: Vec<u8>, to: SocketAddr) -> Result<(), CallerError> {
        self.sock.send_to(&bytes, to).await?;
        Ok(())
    }

    /// Registers as `user` at the hotline `server` with digest authentication (the first
    /// challenge offered), for `expires` seconds. Returns the final status.
    pub async fn register(
        &mut self,
        server: SocketAddr,
        user: &str,
        password: &str,
        expires: u32,
    ) -> Result<u16, CallerError> {
        let call_id = format!("reg-{}", random_token(12));
        let uri = "sip:hotline";
        let local = self.local;
        let text = |cseq: u32, auth: &str| {
            format!(
                "REGISTER {uri} SIP/2.0\r\n\
Via: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:{user}@hotline>;tag={tag}\r\n\
To: <sip:{user}@hotline>\r\n\
Call-ID: {call_id}\r\n\
CSeq: {cseq} REGISTER\r\n\
Contact: <sip:{user}@{local}>\r\n\
Expires: {expires}\r\n\
{auth}Content-Length: 0\r\n\r\n",
                branch = random_token(12),
                tag = random_token(6),
            )
        };
        let is_answer = |cseq: u32| {
            let cid = call_id.clone();
            move |m: &Message| {
                matches!(m, Message::Response(r) if r.status >= 200
                    && r.headers.call_id().is_ok_and(|c| c == cid)
                    && r.headers.cseq().is_ok_and(|c| c.seq == cseq))
            }
        };
        self.send_to(text(1, "").into_bytes(), server).await?;
        let (m, _) = self
            .wait_for(
                Duration::from_secs(10),
                "the REGISTER challenge",
                is_answer(1),
            )
            .await?;
        let Message::Response(challenge) = m else {
            return Err(CallerError::Unexpected("not a response".into()));
        };
        if challenge.status != 401 {
            return Ok(challenge.status);
        }
        let header = challenge
            .headers
            .get(HeaderName::new("WWW-Authenticate"))
            .map(|v| v.to_str_lossy().into_owned())
            .ok_or_else(|| CallerError::Unexpected("401 without a challenge".into()))?;
        let ch = Challenge::parse(&header).map_err(|e| CallerError::Unexpected(e.to_string()))?;
        let auth = Authorization::answer(&ch, user, password, "REGISTER", uri, "0a4f113b", 1);
        self.send_to(
            text(2, &format!("Authorization: {auth}\r\n")).into_bytes(),
            server,
        )
        .await?;
        let (m, _) = self
            .wait_for(Duration::from_secs(10), "the REGISTER answer", is_answer(2))
            .await?;
        match m {
            Message::Response(r) => Ok(r.status),
            Message::Request(_) => Err(CallerError::Unexpected("not a response".into())),
        }
    }

    /// Waits for an INVITE and answers 100 Trying.
    pub async fn next_invite(&mut self, timeout: Duration) -> Result<Incoming, CallerError> {
        let (m, source) = self
            .wait_for(
                timeout,
                "an INVITE",
                |m| matches!(m, Message::Request(r) if r.method == Method::Invite),
            )
            .await?;
        let Message::Request(invite) = m else {
            return Err(CallerError::Unexpected("not a request".into()));
        };
        let inc = Incoming {
            invite,
            source,
            to_tag: random_token(8),
        };
        let trying = Response::for_request(&inc.invite, 100, "Trying");
        self.send_to(trying.to_bytes(), source).await?;
        Ok(inc)
    }

    fn response(&self, inc: &Incoming, status: u16, reason: &str) -> Response {
        let mut r = Response::for_request(&inc.invite, status, reason);
        let _ = r.headers.ensure_to_tag(&inc.to_tag);
        if (180..300).contains(&status) {
            // A proxy on the way asked to stay in the dialog (RFC 3261 §12.1.1).
            r.copy_record_route(&inc.invite);
            r.headers
                .push(HeaderName::Contact, format!("<sip:agent@{}>", self.local));
        }
        r
    }

    /// 180 Ringing.
    pub async fn ring(&mut self, inc: &Incoming) -> Result<(), CallerError> {
        let r = self.response(inc, 180, "Ringing");
        self.send_to(r.to_bytes(), inc.source).await
    }

    /// Refuses with `status` (486 busy, 603 decline...) and waits for the ACK.
    pub async fn refuse(
        &mut self,
        inc: &Incoming,
        status: u16,
        reason: &str,
    ) -> Result<(), CallerError> {
        let r = self.response(inc, status, reason);
        self.send_to(r.to_bytes(), inc.source).await?;
        let call_id = call_id(&inc.invite);
        self.wait_for(Duration::from_secs(10), "the ACK of our refusal", |m| {
            is_request(m, Method::Ack, &call_id)
        })
        .await?;
        Ok(())
    }

    /// Waits for the CANCEL of a ringing call, answers it 200 and the INVITE 487, and
    /// waits for the ACK of the 487.
    pub async fn expect_cancel(
        &mut self,
        inc: &Incoming,
        timeout: Duration,
    ) -> Result<Request, CallerError> {
        let call_id = call_id(&inc.invite);
        let (m, from) = self
            .wait_for(timeout, "a CANCEL", |m| {
                is_request(m, Method::Cancel, &call_id)
            })
            .await?;
        let Message::Request(cancel) = m else {
            return Err(CallerError::Unexpected("not a request".into()));
        };
        let ok = Response::for_request(&cancel, 200, "OK");
        self.send_to(ok.to_bytes(), from).await?;
        let terminated = self.response(inc, 487, "Request Terminated");
        self.send_to(terminated.to_bytes(), inc.source).await?;
        self.wait_for(Duration::from_secs(10), "the ACK of our 487", |m| {
            is_request(m, Method::Ack, &call_id)
        })
        .await?;
        Ok(cancel)
    }

    /// Answers with 200 and an SDP answer from `media`, waits for the ACK, and starts
    /// `media` sending to the hotline.
    pub async fn accept(
        &mut self,
        inc: &Incoming,
        media: &CallMedia,
    ) -> Result<Answered, CallerError> {
        self.accept_with(inc, media, &[Codec::Pcmu, Codec::Pcma])
            .await
    }

    /// Like `accept`, choosing the first codec of `codecs` the hotline offered.
    pub async fn accept_with(
        &mut self,
        inc: &Incoming,
        media: &CallMedia,
        codecs: &[Codec],
    ) -> Result<Answered, CallerError> {
        let mut offer =
            sdp::parse_offer(&inc.invite.body).map_err(|e| CallerError::Sdp(e.to_string()))?;
        // Our preference, not the offerer's order.
        for m in &mut offer.media {
            if let Some(a) = m.audio.as_mut() {
                a.codecs
                    .sort_by_key(|(_, c)| codecs.iter().position(|x| x == c));
            }
        }
        let neg = sdp::negotiate(&offer, codecs).map_err(|e| CallerError::Sdp(e.to_string()))?;
        let mut r = self.response(inc, 200, "OK");
        r.set_body(
            &ContentType::new("application", "sdp"),
            media.offer(&[neg.pt], true).into_bytes(),
        );
        self.send_to(r.to_bytes(), inc.source).await?;
        let call_id = call_id(&inc.invite);
        self.wait_for(Duration::from_secs(10), "the ACK of our 200", |m| {
            is_request(m, Method::Ack, &call_id)
        })
        .await?;
        media.connect(neg.remote_rtp, neg.codec, neg.pt, neg.telephone_event_pt);
        Ok(Answered {
            incoming: inc.clone(),
            remote_rtp: neg.remote_rtp,
            codec: neg.codec,
            pt: neg.pt,
            cseq: 1,
        })
    }

    /// Puts an answered call on hold (`on`: a re-INVITE offering `sendonly`, as a desk
    /// phone's hold key does) or takes it off hold (`sendrecv`), and acknowledges the
    /// hotline's 200. Returns the final status.
    pub async fn hold(
        &mut self,
        call: &mut Answered,
        media: &CallMedia,
        on: bool,
    ) -> Result<u16, CallerError> {
        let (target, from, to, cid) = in_dialog(call)?;
        call.cseq += 1;
        let mut sdp = media.offer(&[call.pt], true);
        if on {
            sdp = sdp.replace("a=sendrecv", "a=sendonly");
        }
        let local = self.local;
        let tag = call.incoming.to_tag.clone();
        let cseq = call.cseq;
        let head = |method: &str, branch: &str| {
            format!(
                "{method} {target} SIP/2.0\r\n\
Via: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport\r\n\
Max-Forwards: 70\r\n\
From: {to};tag={tag}\r\n\
To: {from}\r\n\
Call-ID: {cid}\r\n\
CSeq: {cseq} {method}\r\n\
Contact: <sip:agent@{local}>\r\n",
            )
        };
        let invite = format!(
            "{}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            head("INVITE", &random_token(12)),
            sdp.len()
        );
        self.send_to(invite.into_bytes(), call.incoming.source)
            .await?;
        let (m, _) = self
            .wait_for(
                Duration::from_secs(10),
                "the answer to our re-INVITE",
                |m| {
                    matches!(m, Message::Response(r) if r.status >= 200
                    && r.headers.call_id().is_ok_and(|c| c == cid)
                    && r.headers.cseq().is_ok_and(|c| c.method == Method::Invite && c.seq == cseq))
                },
            )
            .await?;
        let Message::Response(r) = m else {
            return Err(CallerError::Unexpected("not a response".into()));
        };
        let ack = format!(
            "{}Content-Length: 0\r\n\r\n",
            head("ACK", &random_token(12))
        );
        self.send_to(ack.into_bytes(), call.incoming.source).await?;
        Ok(r.status)
    }

    /// Hangs up an answered call: BYE to the hotline's Contact, and its 200.
    pub async fn hang_up(&mut self, call: &mut Answered) -> Result<Response, CallerError> {
        let inv = &call.incoming.invite;
        let target = inv
            .headers
            .contact()
            .ok()
            .flatten()
            .map(|c| c.uri.to_string())
            .unwrap_or_else(|| inv.uri.to_string());
        let from = inv
            .headers
            .from_addr()
            .map_err(|e| CallerError::Unexpected(e.to_string()))?;
        let to = inv
            .headers
            .to_addr()
            .map_err(|e| CallerError::Unexpected(e.to_string()))?;
        call.cseq += 1;
        let bye = format!(
            "BYE {target} SIP/2.0\r\n\
Via: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport\r\n\
Max-Forwards: 70\r\n\
From: {to};tag={tag}\r\n\
To: {from}\r\n\
Call-ID: {cid}\r\n\
CSeq: {cseq} BYE\r\n\
{routes}\
Content-Length: 0\r\n\r\n",
            routes = route_lines(inv),
            local = self.local,
            branch = random_token(12),
            tag = call.incoming.to_tag,
            cid = call_id(inv),
            cseq = call.cseq,
        );
        self.send_to(bye.into_bytes(), call.incoming.source).await?;
        let cid = call_id(inv);
        let (m, _) = self
            .wait_for(Duration::from_secs(10), "the 200 for our BYE", |m| {
                matches!(m, Message::Response(r) if r.status >= 200
                    && r.headers.call_id().is_ok_and(|c| c == cid)
                    && r.headers.cseq().is_ok_and(|c| c.method == Method::Bye))
            })
            .await?;
        match m {
            Message::Response(r) => Ok(r),
            Message::Request(_) => Err(CallerError::Unexpected("not a response".into())),
        }
    }

    /// Asks the hotline to transfer the call to `target` (a blind transfer, RFC 3515: an
    /// in-dialog REFER with `Refer-To: <target>`, as a desk phone's transfer key sends).
    /// Returns the REFER's final status (202 when accepted).
    pub async fn refer(&mut self, call: &mut Answered, target: &str) -> Result<u16, CallerError> {
        let inv = &call.incoming.invite;
        let (uri, from, to, cid) = in_dialog(call)?;
        call.cseq += 1;
        let cseq = call.cseq;
        let refer = format!(
            "REFER {uri} SIP/2.0
Via: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport
Max-Forwards: 70
From: {to};tag={tag}
To: {from}
Call-ID: {cid}
CSeq: {cseq} REFER
{routes}Contact: <sip:agent@{local}>
Refer-To: <{target}>
Referred-By: <sip:agent@{local}>
Content-Length: 0

",
            routes = route_lines(inv),
            local = self.local,
            branch = random_token(12),
            tag = call.incoming.to_tag,
        );
        self.send_to(refer.into_bytes(), call.incoming.source)
            .await?;
        let (m, _) = self
            .wait_for(Duration::from_secs(10), "the answer to our REFER", |m| {
                matches!(m, Message::Response(r) if r.status >= 200
                    && r.headers.call_id().is_ok_and(|c| c == cid)
                    && r.headers.cseq().is_ok_and(|c| c.method == Method::Refer && c.seq == cseq))
            })
            .await?;
        match m {
            Message::Response(r) => Ok(r.status),
            Message::Request(_) => Err(CallerError::Unexpected("not a response".into())),
        }
    }

    /// Waits for a NOTIFY about our REFER on an answered call and answers it 200. Returns
    /// the status of its `message/sipfrag` body (100, 200, 486...) and its
    /// `Subscription-State`.
    pub async fn expect_notify(
        &mut self,
        call: &Answered,
        timeout: Duration,
    ) -> Result<(u16, String), CallerError> {
        let cid = call_id(&call.incoming.invite);
        let (m, from) = self
            .wait_for(timeout, "a NOTIFY", |m| is_request(m, Method::Notify, &cid))
            .await?;
        let Message::Request(notify) = m else {
            return Err(CallerError::Unexpected("not a request".into()));
        };
        let ok = Response::for_request(&notify, 200, "OK");
        self.send_to(ok.to_bytes(), from).await?;
        let event = notify
            .headers
            .get(HeaderName::Event)
            .map(|v| v.to_str_lossy().into_owned())
            .unwrap_or_default();
        if event.trim() != "refer" {
            return Err(CallerError::Unexpected(format!(
                "a NOTIFY for event '{event}'"
            )));
        }
        let state = notify
            .headers
            .get(HeaderName::new("Subscription-State"))
            .map(|v| v.to_str_lossy().into_owned())
            .unwrap_or_default();
        let body = String::from_utf8_lossy(&notify.body).into_owned();
        let status = body
            .strip_prefix("SIP/2.0 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| CallerError::Unexpected(format!("a sipfrag body '{body}'")))?;
        Ok((status, state))
    }

    /// Waits for the hotline's BYE on an answered call and answers it 200.
    pub async fn expect_bye(
        &mut self,
        call: &Answered,
        timeout: Duration,
    ) -> Result<Request, CallerError> {
        let cid = call_id(&call.incoming.invite);
        let (m, from) = self
            .wait_for(timeout, "the hotline's BYE", |m| {
                is_request(m, Method::Bye, &cid)
            })
            .await?;
        let Message::Request(bye) = m else {
            return Err(CallerError::Unexpected("not a request".into()));
        };
        let ok = Response::for_request(&bye, 200, "OK");
        self.send_to(ok.to_bytes(), from).await?;
        Ok(bye)
    }
}

/// An answered call's in-dialog addressing: the hotline's Contact, its From and To, and
/// the Call-ID.
fn in_dialog(call: &Answered) -> Result<(String, String, String, String), CallerError> {
    let inv = &call.incoming.invite;
    let target = inv
        .headers
        .contact()
        .ok()
        .flatten()
        .map(|c| c.uri.to_string())
        .unwrap_or_else(|| inv.uri.to_string());
    let from = inv
        .headers
        .from_addr()
        .map_err(|e| CallerError::Unexpected(e.to_string()))?;
    let to = inv
        .headers
        .to_addr()
        .map_err(|e| CallerError::Unexpected(e.to_string()))?;
    Ok((target, from.to_string(), to.to_string(), call_id(inv)))
}

/// The route set of the dialog an INVITE made, as the callee keeps it (the Record-Route
/// in order, RFC 3261 §12.1.1), one `Route:` line each.
fn route_lines(inv: &Request) -> String {
    inv.headers
        .record_route()
        .unwrap_or_default()
        .iter()
        .map(|rr| format!("Route: {rr}\r\n"))
        .collect()
}

fn call_id(req: &Request) -> String {
    req.headers.call_id().unwrap_or_default().to_string()
}

fn is_request(m: &Message, method: Method, call_id: &str) -> bool {
    matches!(m, Message::Request(r) if r.method == method
        && r.headers.call_id().is_ok_and(|c| c == call_id))
}
