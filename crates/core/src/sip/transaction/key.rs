//! Transaction identity: which incoming message belongs to which transaction (RFC 3261
//! §17.1.3 for responses, §17.2.3 for requests, §9.2 for CANCEL). Built from plain strings
//! the caller has already taken out of the message; this module never parses SIP.
//!
//! Three shapes exist:
//! - server key (RFC 3261): top Via branch with the `z9hG4bK` cookie, top Via sent-by, method;
//! - server key (RFC 2543 fallback) for requests whose branch lacks the cookie: Request-URI,
//!   To tag, From tag, Call-ID, CSeq number, top Via, method;
//! - client key: the branch we put in our own Via, and the CSeq method.
//!
//! In every shape an ACK matches the INVITE that created the transaction, and a CANCEL is a
//! transaction of its own (use [`TransactionKey::invite_key_for_cancel`] to find what it
//! cancels).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// The prefix RFC 3261 branches start with; without it the sender is RFC 2543 era and its
/// branch (if any) is not unique enough to match on.
pub const BRANCH_MAGIC_COOKIE: &str = "z9hG4bK";

/// Everything the key of an incoming request may be built from. The RFC 2543 fields are
/// only looked at when `branch` lacks the magic cookie, but the caller supplies them
/// always: borrowing strings out of a parsed message costs nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestKeyFields<'a> {
    /// The request method, exactly as on the request line (methods are case-sensitive).
    pub method: &'a str,
    /// The `branch` parameter of the top Via, if present.
    pub branch: Option<&'a str>,
    /// The host part of the top Via sent-by.
    pub sent_by_host: &'a str,
    /// The port of the top Via sent-by, if written.
    pub sent_by_port: Option<u16>,
    /// RFC 2543 fallback: the Request-URI as received.
    pub request_uri: &'a str,
    /// RFC 2543 fallback: the To tag.
    pub to_tag: Option<&'a str>,
    /// RFC 2543 fallback: the From tag.
    pub from_tag: Option<&'a str>,
    /// RFC 2543 fallback: the Call-ID.
    pub call_id: &'a str,
    /// RFC 2543 fallback: the CSeq sequence number.
    pub cseq: u32,
    /// RFC 2543 fallback: the whole top Via header value as received.
    pub top_via: &'a str,
}

/// Identifies one transaction. Cheap to clone (shared), hashable, and equal for an INVITE
/// and its ACK.
#[derive(Clone)]
pub struct TransactionKey {
    inner: Arc<Inner>,
}

struct Inner {
    /// As received: an ACK's key keeps "ACK" so the table can tell it from the INVITE it
    /// matches.
    method: Box<str>,
    id: Id,
}

#[derive(PartialEq, Eq, Hash, Clone, Debug)]
enum Id {
    Server {
        branch: Box<str>,
        host: Box<str>,
        port: Option<u16>,
    },
    Rfc2543 {
        request_uri: Box<str>,
        /// Left out for INVITE and ACK: the ACK carries the tag our response added, which
        /// this layer cannot see in an opaque message; the other fields (the top Via
        /// above all) already tell an INVITE from a merged copy of it.
        to_tag: Option<Box<str>>,
        from_tag: Option<Box<str>>,
        call_id: Box<str>,
        cseq: u32,
        top_via: Box<str>,
    },
    Client {
        branch: Box<str>,
    },
}

impl TransactionKey {
    /// The key of an incoming request: RFC 3261 rules when the branch has the magic
    /// cookie, the RFC 2543 fallback otherwise.
    pub fn for_request(fields: &RequestKeyFields<'_>) -> Self {
        match fields.branch {
            Some(branch) if has_magic_cookie(branch) => TransactionKey::server(
                branch,
                fields.sent_by_host,
                fields.sent_by_port,
                fields.method,
            ),
            _ => {
                let drop_to_tag = matches!(fields.method, "INVITE" | "ACK");
                TransactionKey::new(
                    fields.method,
                    Id::Rfc2543 {
                        request_uri: fields.request_uri.into(),
                        to_tag: if drop_to_tag {
                            None
                        } else {
                            fields.to_tag.map(Into::into)
                        },
                        from_tag: fields.from_tag.map(Into::into),
                        call_id: fields.call_id.into(),
                        cseq: fields.cseq,
                        top_via: fields.top_via.into(),
                    },
                )
            }
        }
    }

    /// An RFC 3261 server key from the top Via of a request. The host is compared without
    /// regard to case; the port as written (absent and 5060 differ, as retransmissions
    /// repeat the Via byte for byte).
    pub fn server(
        branch: &str,
        sent_by_host: &str,
        sent_by_port: Option<u16>,
        method: &str,
    ) -> Self {
        TransactionKey::new(
            method,
            Id::Server {
                branch: branch.into(),
                host: sent_by_host.to_ascii_lowercase().into_boxed_str(),
                port: sent_by_port,
            },
        )
    }

    /// A client key: the branch of the Via we wrote and the method of the request we sent.
    /// For a response, pass its top Via branch and its CSeq method; a response whose
    /// branch is not one of ours simply matches nothing.
    pub fn client(branch: &str, method: &str) -> Self {
        TransactionKey::new(
            method,
            Id::Client {
                branch: branch.into(),
            },
        )
    }

    fn new(method: &str, id: Id) -> Self {
        TransactionKey {
            inner: Arc::new(Inner {
                method: method.into(),
                id,
            }),
        }
    }

    /// The method as given when the key was built (an ACK's key says "ACK").
    pub fn method(&self) -> &str {
        &self.inner.method
    }

    /// The method used for matching: an ACK belongs to its INVITE's transaction.
    fn matching_method(&self) -> &str {
        match self.method() {
            "ACK" => "INVITE",
            m => m,
        }
    }

    pub fn is_ack(&self) -> bool {
        self.method() == "ACK"
    }

    /// True for an INVITE key (not for an ACK's, although the two are equal).
    pub fn is_invite(&self) -> bool {
        self.method() == "INVITE"
    }

    pub fn is_cancel(&self) -> bool {
        self.method() == "CANCEL"
    }

    /// True unless this is an RFC 2543 fallback key.
    pub fn is_rfc3261(&self) -> bool {
        !matches!(self.inner.id, Id::Rfc2543 { .. })
    }

    /// The branch the key was built from (None for RFC 2543 fallback keys).
    pub fn branch(&self) -> Option<&str> {
        match &self.inner.id {
            Id::Server { branch, .. } | Id::Client { branch } => Some(branch),
            Id::Rfc2543 { .. } => None,
        }
    }

    /// For a CANCEL's key, the key of the INVITE it cancels (RFC 3261 §9.2: same matching
    /// fields, method INVITE). None for any other method.
    pub fn invite_key_for_cancel(&self) -> Option<TransactionKey> {
        if !self.is_cancel() {
            return None;
        }
        let id = match &self.inner.id {
            Id::Rfc2543 {
                request_uri,
                from_tag,
                call_id,
                cseq,
                top_via,
                ..
            } => Id::Rfc2543 {
                request_uri: request_uri.clone(),
                to_tag: None,
                from_tag: from_tag.clone(),
                call_id: call_id.clone(),
                cseq: *cseq,
                top_via: top_via.clone(),
            },
            other => other.clone(),
        };
        Some(TransactionKey::new("INVITE", id))
    }
}

/// Whether a branch was generated under RFC 3261 rules.
pub fn has_magic_cookie(branch: &str) -> bool {
    branch.starts_with(BRANCH_MAGIC_COOKIE)
}

impl PartialEq for TransactionKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
            || (self.inner.id == other.inner.id
                && self.matching_method() == other.matching_method())
    }
}

impl Eq for TransactionKey {}

impl Hash for TransactionKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.id.hash(state);
        self.matching_method().hash(state);
    }
}

impl fmt::Display for TransactionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner.id {
            Id::Server { branch, host, port } => {
                write!(f, "{} branch={branch} sent-by={host}", self.method())?;
                match port {
                    Some(p) => write!(f, ":{p}"),
                    None => Ok(()),
                }
            }
            Id::Rfc2543 { call_id, cseq, .. } => {
                write!(f, "{} rfc2543 call-id={call_id} cseq={cseq}", self.method())
            }
            Id::Client { branch } => write!(f, "{} branch={branch}", self.method()),
        }
    }
}

impl fmt::Debug for TransactionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TransactionKey({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn fields<'a>(method: &'a str, branch: Option<&'a str>) -> RequestKeyFields<'a> {
        RequestKeyFields {
            method,
            branch,
            sent_by_host: "PBX.example.com",
            sent_by_port: Some(5060),
            request_uri: "sip:ivr@example.com",
            to_tag: None,
            from_tag: Some("f1"),
            call_id: "c1@pbx",
            cseq: 7,
            top_via: "SIP/2.0/UDP pbx.example.com:5060",
        }
    }

    #[test]
    fn ack_matches_invite_cancel_does_not() {
        let invite = TransactionKey::for_request(&fields("INVITE", Some("z9hG4bKa")));
        let ack = TransactionKey::for_request(&fields("ACK", Some("z9hG4bKa")));
        let cancel = TransactionKey::for_request(&fields("CANCEL", Some("z9hG4bKa")));
        assert_eq!(invite, ack);
        assert!(ack.is_ack() && !ack.is_invite() && invite.is_invite());
        assert_ne!(invite, cancel);
        assert_eq!(cancel.invite_key_for_cancel(), Some(invite.clone()));
        assert_eq!(invite.invite_key_for_cancel(), None);
        let set: HashSet<_> = [invite.clone(), ack].into_iter().collect();
        assert_eq!(set.len(), 1);
        assert!(set.contains(&invite));
    }

    #[test]
    fn server_key_compares_branch_sent_by_and_method() {
        let a = TransactionKey::server("z9hG4bKa", "PBX.example.com", Some(5060), "BYE");
        assert_eq!(
            a,
            TransactionKey::server("z9hG4bKa", "pbx.EXAMPLE.com", Some(5060), "BYE")
        );
        assert_ne!(
            a,
            TransactionKey::server("z9hG4bKA", "pbx.example.com", Some(5060), "BYE")
        );
        assert_ne!(
            a,
            TransactionKey::server("z9hG4bKa", "pbx.example.com", Some(5070), "BYE")
        );
        assert_ne!(
            a,
            TransactionKey::server("z9hG4bKa", "pbx.example.com", None, "BYE")
        );
        assert_ne!(
            a,
            TransactionKey::server("z9hG4bKa", "other.example.com", Some(5060), "BYE")
        );
        assert_ne!(
            a,
            TransactionKey::server("z9hG4bKa", "pbx.example.com", Some(5060), "bye")
        );
        assert!(a.is_rfc3261());
        assert_eq!(a.branch(), Some("z9hG4bKa"));
    }

    #[test]
    fn client_and_server_keys_never_collide() {
        let c = TransactionKey::client("z9hG4bKa", "INVITE");
        let s = TransactionKey::server("z9hG4bKa", "h", None, "INVITE");
        assert_ne!(c, s);
        assert_eq!(c, TransactionKey::client("z9hG4bKa", "ACK"));
        assert_eq!(
            TransactionKey::client("z9hG4bKa", "CANCEL").invite_key_for_cancel(),
            Some(c)
        );
    }

    #[test]
    fn rfc2543_fallback_without_cookie() {
        let invite = TransactionKey::for_request(&fields("INVITE", Some("old-branch")));
        assert!(!invite.is_rfc3261());
        assert_eq!(invite.branch(), None);
        let no_branch = TransactionKey::for_request(&fields("INVITE", None));
        assert_eq!(
            invite, no_branch,
            "an RFC 2543 branch takes no part in matching"
        );
        // The ACK carries the To tag our response added; it still matches.
        let mut ack = fields("ACK", None);
        ack.to_tag = Some("our-tag");
        assert_eq!(TransactionKey::for_request(&ack), invite);
        // A different top Via (merged request via another path) is another transaction.
        let mut merged = fields("INVITE", None);
        merged.top_via = "SIP/2.0/UDP other.example.com";
        assert_ne!(TransactionKey::for_request(&merged), invite);
        let mut next = fields("INVITE", None);
        next.cseq = 8;
        assert_ne!(TransactionKey::for_request(&next), invite);
        // Non-INVITE requests keep the To tag.
        let mut bye = fields("BYE", None);
        bye.to_tag = Some("t1");
        let bye_key = TransactionKey::for_request(&bye);
        bye.to_tag = Some("t2");
        assert_ne!(TransactionKey::for_request(&bye), bye_key);
        // CANCEL of an RFC 2543 INVITE.
        let mut cancel = fields("CANCEL", None);
        cancel.to_tag = None;
        let cancel = TransactionKey::for_request(&cancel);
        assert_ne!(cancel, invite);
        assert_eq!(cancel.invite_key_for_cancel(), Some(invite));
    }

    #[test]
    fn display_names_the_fields() {
        let k = TransactionKey::server("z9hG4bKx", "h", Some(5060), "INVITE");
        assert_eq!(k.to_string(), "INVITE branch=z9hG4bKx sent-by=h:5060");
        let k = TransactionKey::for_request(&fields("BYE", None));
        assert_eq!(k.to_string(), "BYE rfc2543 call-id=c1@pbx cseq=7");
    }
}
