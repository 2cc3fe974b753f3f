//! A SIP dialog (RFC 3261 §12), from either side: the one we answered (a caller's INVITE)
//! or the one we placed (a transfer or an agent leg). It holds the identifiers (Call-ID
//! and both tags), the route set, the far end's target, and both CSeq spaces; it builds
//! the requests we send inside the dialog (BYE, ACK) and checks the ones we receive.
//! Pure: no sockets, no clock, no randomness of its own (tags and branches are passed in).

use crate::sip::message::{
    CSeq, HeaderError, HeaderName, Method, NameAddr, Request, Response, Uri, Via,
};

/// Why an in-dialog request is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DialogError {
    /// RFC 3261 §12.2.2: a CSeq lower than the last one seen is answered 500.
    #[error("CSeq {got} is lower than the last seen ({last})")]
    CSeqOutOfOrder { got: u32, last: u32 },
    #[error("request does not belong to this dialog")]
    NotThisDialog,
    #[error("{0}")]
    Header(#[from] HeaderError),
}

#[derive(Debug, Clone)]
pub struct Dialog {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: Option<String>,
    /// Our side as it appears in From of our requests (the INVITE's To, with our tag).
    pub local: NameAddr,
    /// The caller, as it appears in To of our requests (the INVITE's From).
    pub remote: NameAddr,
    /// Where requests go: the caller's Contact.
    pub remote_target: Uri,
    /// Record-Route of the INVITE, in order (for the UAS the route set keeps that order).
    pub route_set: Vec<NameAddr>,
    local_cseq: u32,
    remote_cseq: u32,
}

impl Dialog {
    /// The dialog a UAS creates when it answers `invite` with a tag of its own.
    pub fn uas(invite: &Request, local_tag: &str, first_cseq: u32) -> Result<Dialog, HeaderError> {
        let h = &invite.headers;
        let from = h.from_addr()?;
        let to = h.to_addr()?;
        let remote_target = match h.contact()? {
            Some(c) => c.uri,
            // No Contact: RFC 3261 makes it mandatory in INVITE; fall back to From so a BYE
            // can still be addressed rather than failing the call.
            None => from.uri.clone(),
        };
        Ok(Dialog {
            call_id: h.call_id()?.to_string(),
            local_tag: local_tag.to_string(),
            remote_tag: from.tag().map(str::to_string),
            local: to.with_tag(local_tag),
            remote: from,
            remote_target,
            route_set: h.record_route()?,
            local_cseq: first_cseq,
            remote_cseq: h.cseq()?.seq,
        })
    }

    /// The dialog a UAC creates from the INVITE it sent and a 2xx that answered it
    /// (§12.1.2): the route set is the 2xx's Record-Route reversed, the target its Contact.
    pub fn uac(invite: &Request, answer: &Response) -> Result<Dialog, HeaderError> {
        let h = &invite.headers;
        let from = h.from_addr()?;
        let to = answer.headers.to_addr()?;
        let remote_target = match answer.headers.contact()? {
            Some(c) => c.uri,
            None => invite.uri.clone(),
        };
        let mut route_set = answer.headers.record_route()?;
        route_set.reverse();
        Ok(Dialog {
            call_id: h.call_id()?.to_string(),
            local_tag: from.tag().unwrap_or_default().to_string(),
            remote_tag: to.tag().map(str::to_string),
            local: from,
            remote: to,
            remote_target,
            route_set,
            local_cseq: h.cseq()?.seq,
            // The far end has sent nothing in this dialog yet; any first CSeq is fine.
            remote_cseq: 0,
        })
    }

    /// The ACK for a 2xx to our INVITE number `cseq` (§13.2.2.4): a request of the dialog
    /// with the INVITE's CSeq number, outside any transaction.
    pub fn ack(&self, cseq: u32, via: Via) -> Request {
        let mut req = Request::new(Method::Ack, self.remote_target.clone());
        self.fill(&mut req, via, cseq);
        req
    }

    /// Checks that `req` belongs to this dialog and its CSeq moves forward (§12.2.2).
    /// ACK and CANCEL reuse the INVITE's number and are not checked for order.
    pub fn accept_request(&mut self, req: &Request) -> Result<(), DialogError> {
        let h = &req.headers;
        if h.call_id()? != self.call_id {
            return Err(DialogError::NotThisDialog);
        }
        let to = h.to_addr()?;
        if to.tag() != Some(self.local_tag.as_str()) {
            return Err(DialogError::NotThisDialog);
        }
        let cseq = h.cseq()?;
        if matches!(req.method, Method::Ack | Method::Cancel) {
            return Ok(());
        }
        if cseq.seq < self.remote_cseq {
            return Err(DialogError::CSeqOutOfOrder {
                got: cseq.seq,
                last: self.remote_cseq,
            });
        }
        self.remote_cseq = cseq.seq;
        Ok(())
    }

    /// A new request inside the dialog (§12.2.1.1), with `via` as its only Via.
    pub fn request(&mut self, method: Method, via: Via, contact: Option<&Uri>) -> Request {
        self.local_cseq = self.local_cseq.wrapping_add(1).max(1);
        // Loose routing (the usual case, `;lr` on the first route): the Request-URI is the
        // remote target and the route set goes in Route. Strict routing is long obsolete;
        // we treat every route set as loose.
        let mut req = Request::new(method, self.remote_target.clone());
        self.fill(&mut req, via, self.local_cseq);
        if let Some(c) = contact {
            req.headers.push(HeaderName::Contact, format!("<{c}>"));
        }
        req
    }

    fn fill(&self, req: &mut Request, via: Via, seq: u32) {
        let method = req.method.clone();
        let h = &mut req.headers;
        h.push(HeaderName::Via, via.to_string());
        h.push(HeaderName::MaxForwards, "70");
        h.push(HeaderName::From, self.local.to_string());
        h.push(HeaderName::To, self.remote.to_string());
        h.push(HeaderName::CallId, self.call_id.clone());
        h.push(HeaderName::CSeq, CSeq { seq, method }.to_string());
        for r in &self.route_set {
            h.push(HeaderName::Route, r.to_string());
        }
    }

    pub fn local_cseq(&self) -> u32 {
        self.local_cseq
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{Limits, Message, Transport, parse};

    fn invite() -> Request {
        let text = "INVITE sip:hotline@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;rport\r\n\
Record-Route: <sip:p1.example.com;lr>\r\n\
Record-Route: <sip:p2.example.com;lr>\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=a1\r\n\
To: <sip:hotline@127.0.0.1>\r\n\
Call-ID: c1@example.com\r\n\
CSeq: 7 INVITE\r\n\
Contact: <sip:alice@192.0.2.1:5070>\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n";
        match parse(text.as_bytes(), &Limits::default()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => unreachable!(),
        }
    }

    #[test]
    fn bye_goes_to_the_contact_with_tags_swapped_and_routes_in_order() {
        let mut d = Dialog::uas(&invite(), "ours", 100).unwrap();
        let via = Via::new(
            Transport::Udp,
            crate::sip::message::Host::parse("127.0.0.1").unwrap(),
            Some(5060),
            "z9hG4bK-x",
        );
        let bye = d.request(Method::Bye, via, None);
        let text = String::from_utf8(bye.to_bytes()).unwrap();
        assert!(
            text.starts_with("BYE sip:alice@192.0.2.1:5070 SIP/2.0\r\n"),
            "{text}"
        );
        assert_eq!(bye.headers.from_addr().unwrap().tag(), Some("ours"));
        assert_eq!(bye.headers.to_addr().unwrap().tag(), Some("a1"));
        assert_eq!(bye.headers.cseq().unwrap().seq, 101);
        let routes = bye.headers.route().unwrap();
        assert_eq!(routes.len(), 2);
        assert!(routes[0].to_string().contains("p1.example.com"));
    }

    #[test]
    fn in_dialog_cseq_must_not_go_back() {
        let inv = invite();
        let mut d = Dialog::uas(&inv, "ours", 1).unwrap();
        let mut bye = inv.clone();
        bye.method = Method::Bye;
        bye.headers.set_to_tag("ours").unwrap();
        bye.headers.set(HeaderName::CSeq, "8 BYE");
        assert_eq!(d.accept_request(&bye), Ok(()));
        bye.headers.set(HeaderName::CSeq, "3 BYE");
        assert_eq!(
            d.accept_request(&bye),
            Err(DialogError::CSeqOutOfOrder { got: 3, last: 8 })
        );
        bye.headers.set_to_tag("other").unwrap();
        assert_eq!(d.accept_request(&bye), Err(DialogError::NotThisDialog));
    }
}
