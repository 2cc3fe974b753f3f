//! The SIP transaction layer (RFC 3261 §17, with the RFC 6026 corrections for 2xx to
//! INVITE) as pure state machines: messages and the current time go in, messages to send
//! and events for the transaction user (TU: the dialog/call layer) come out. It owns
//! retransmission, retransmission absorption, the ACK of non-2xx finals and transaction
//! timeouts. It must not parse or print SIP (messages are an opaque `M: Clone` the shell
//! chooses, e.g. encoded bytes plus destination), read a clock, sleep or touch a socket.
//!
//! # Pieces
//! - [`TransactionTable`]: every transaction of an endpoint, keyed by [`TransactionKey`],
//!   with one deadline heap and one output queue. This is what the shell drives.
//! - The four machines it holds, usable alone: [`ServerInvite`], [`ServerNonInvite`],
//!   [`ClientInvite`], [`ClientNonInvite`]. Each returns [`Event`]s into a `Vec` it is given.
//! - [`Uas2xxRetransmitter`]: the UAS core's 2xx retransmission (RFC 3261 §13.3.1.4),
//!   held by the dialog layer for every answered call.
//! - [`TimerConfig`]: T1/T2/T4 and the derived Timers A to M.
//!
//! # How the shell and the TU drive the table
//! 1. Incoming request (already parsed by the codec): build
//!    `TransactionKey::for_request(&RequestKeyFields { .. })` from its top Via, method,
//!    Request-URI, tags, Call-ID and CSeq, then `table.handle_request(now, key, msg,
//!    reliability)`. A `TableFull` error means: answer 503 statelessly.
//! 2. Incoming response: `TransactionKey::client(top_via_branch, cseq_method)`, then
//!    `table.handle_response(now, key, status, msg, make_ack)`. `make_ack(request,
//!    response)` builds the ACK for a 300-699 answer to our INVITE (§17.1.1.3).
//! 3. Drain `table.poll_output()` after every call into the table:
//!    - `Transmit { role, key, msg }`: hand `msg` to the transport; if sending fails, call
//!      `table.transport_error(role, &key)`.
//!    - `RequestToTu { key, msg }`: a new request; a server transaction now exists under
//!      `key`; answer it with `table.send_response(now, &key, status, response)`. For an
//!      INVITE send a provisional (100 Trying at least) at once, as RFC 3261 wants one
//!      within 200 ms; the table does not generate it. Merged requests (§8.2.2.2) are the
//!      TU's to detect (same From tag, Call-ID and CSeq, no To tag, new key): 482.
//!    - `AckToTu { key, msg }`: an ACK for a 2xx (or matching nothing): the dialog
//!      matches it, and calls `Uas2xxRetransmitter::ack_received`.
//!    - `ResponseToTu { key, status, msg }`: a response to a request the TU started.
//!      For each 2xx to an INVITE, the TU sends the ACK itself, straight to the transport
//!      (the ACK of a 2xx is not part of the INVITE transaction).
//!    - `StrayResponse { .. }`: matched no client transaction; a 2xx to INVITE here is a
//!      late retransmission the dialog should ACK again; anything else can be dropped.
//!    - `Timeout { role, key }` / `TransportError { role, key }`: the request went
//!      unanswered (Timer B, F) or the ACK never came (Timer H), or the transport failed.
//!      For a client transaction treat it as a 408 / 503 (§8.1.3.1).
//!    - `Terminated { role, key }`: the transaction is gone; the key may be forgotten.
//! 4. Timers: sleep until `table.poll_timeout()` (or until the next message), then call
//!    `table.handle_timeout(now)` and drain outputs again.
//! 5. Outgoing requests: `table.start_client(now, TransactionKey::client(branch, method),
//!    request, reliability)` for INVITE and non-INVITE (BYE, CANCEL, OPTIONS...). Never for
//!    ACK. Send a CANCEL only once the INVITE's state is Proceeding (§9.1).
//! 6. CANCEL received: it arrives as `RequestToTu` with its own key;
//!    `table.find_invite_for_cancel(&key)` finds the INVITE server transaction: none →
//!    481; Proceeding → 200 to the CANCEL and 487 to the INVITE; otherwise 200 only.
//! 7. Answering a call: `send_response(now, &invite_key, 200, ok)` moves the INVITE
//!    transaction to Accepted, then create `Uas2xxRetransmitter::new(now, ok, timers)`,
//!    send its `Retransmit` copies directly to the transport (or through `send_response`),
//!    stop it on the ACK, and send a BYE when it reports `GaveUp`.

mod client_invite;
mod client_non_invite;
mod key;
mod server_invite;
mod server_non_invite;
mod table;
mod timers;
mod uas_2xx;

use std::fmt;

use thiserror::Error;

pub use client_invite::ClientInvite;
pub use client_non_invite::ClientNonInvite;
pub use key::{BRANCH_MAGIC_COOKIE, RequestKeyFields, TransactionKey, has_magic_cookie};
pub use server_invite::ServerInvite;
pub use server_non_invite::ServerNonInvite;
pub use table::{DEFAULT_MAX_TRANSACTIONS, TransactionTable};
pub use timers::{Reliability, TimerConfig, TimerConfigError};
pub use uas_2xx::{Uas2xxAction, Uas2xxRetransmitter};

/// The states of RFC 3261 §17 and RFC 6026. Client INVITE: Calling, Proceeding, Completed,
/// Accepted. Client non-INVITE: Trying, Proceeding, Completed. Server INVITE: Proceeding,
/// Completed, Confirmed, Accepted. Server non-INVITE: Trying, Proceeding, Completed. All
/// end in Terminated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Calling,
    Trying,
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
    Terminated,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Calling => "Calling",
            State::Trying => "Trying",
            State::Proceeding => "Proceeding",
            State::Completed => "Completed",
            State::Confirmed => "Confirmed",
            State::Accepted => "Accepted",
            State::Terminated => "Terminated",
        })
    }
}

/// Which side of a transaction we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// We sent the request.
    Client,
    /// We received the request.
    Server,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Client => "client",
            Role::Server => "server",
        })
    }
}

/// What one machine asks of its owner. The table wraps these into [`Output`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<M> {
    /// Hand this message to the transport.
    Transmit(M),
    /// Server INVITE in Accepted: an ACK (for the 2xx) the TU must see.
    AckToTu(M),
    /// Client: a response the TU must see.
    ResponseToTu { status: u16, msg: M },
    /// Timer B, F or H fired: no response, or no ACK.
    Timeout,
    /// The transport reported a failure to send.
    TransportError,
}

/// What the table asks of the shell and the TU; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output<M> {
    Transmit {
        role: Role,
        key: TransactionKey,
        msg: M,
    },
    RequestToTu {
        key: TransactionKey,
        msg: M,
    },
    AckToTu {
        key: TransactionKey,
        msg: M,
    },
    ResponseToTu {
        key: TransactionKey,
        status: u16,
        msg: M,
    },
    StrayResponse {
        key: TransactionKey,
        status: u16,
        msg: M,
    },
    Timeout {
        role: Role,
        key: TransactionKey,
    },
    TransportError {
        role: Role,
        key: TransactionKey,
    },
    Terminated {
        role: Role,
        key: TransactionKey,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TransactionError {
    #[error("invalid status code: expected 100 to 699, found {0}")]
    InvalidStatus(u16),
    #[error("no {role} transaction matches key {key}")]
    NoSuchTransaction { role: Role, key: TransactionKey },
    #[error("cannot send a {status} response in state {state}: expected {expected}")]
    WrongState {
        state: State,
        status: u16,
        expected: &'static str,
    },
    #[error("a {role} transaction with key {key} already exists")]
    DuplicateKey { role: Role, key: TransactionKey },
    #[error("transaction table full: expected fewer than {limit} live transactions")]
    TableFull { limit: usize },
    #[error(
        "an ACK never starts a client transaction: expected another method, found ACK (send \
         the ACK of a 2xx directly; the INVITE transaction builds the ACK of a non-2xx)"
    )]
    AckIsNotATransaction,
}

/// The three kinds of response the machines treat differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusClass {
    Provisional,
    Success,
    Failure,
}

impl StatusClass {
    pub(crate) fn of(status: u16) -> Result<Self, TransactionError> {
        match status {
            100..=199 => Ok(StatusClass::Provisional),
            200..=299 => Ok(StatusClass::Success),
            300..=699 => Ok(StatusClass::Failure),
            _ => Err(TransactionError::InvalidStatus(status)),
        }
    }
}

#[cfg(any(test, feature = "test-support"))]
pub mod test_support {
    use std::time::{Duration, Instant};

    /// A fake clock: instants are offsets in seconds from one fixed origin.
    pub struct Clock {
        origin: Instant,
    }

    impl Clock {
        // A fake clock still needs one real instant to count from.
        #[allow(clippy::disallowed_methods)]
        pub fn new() -> Self {
            Clock {
                origin: Instant::now(),
            }
        }

        /// Rounded to whole microseconds, so schedules compare exactly.
        pub fn at(&self, secs: f64) -> Instant {
            self.origin + Duration::from_micros((secs * 1e6).round() as u64)
        }

        pub fn secs(&self, at: Instant) -> f64 {
            at.duration_since(self.origin).as_micros() as f64 / 1e6
        }
    }

    impl Default for Clock {
        fn default() -> Self {
            Self::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        assert_eq!(StatusClass::of(100), Ok(StatusClass::Provisional));
        assert_eq!(StatusClass::of(199), Ok(StatusClass::Provisional));
        assert_eq!(StatusClass::of(200), Ok(StatusClass::Success));
        assert_eq!(StatusClass::of(299), Ok(StatusClass::Success));
        assert_eq!(StatusClass::of(300), Ok(StatusClass::Failure));
        assert_eq!(StatusClass::of(699), Ok(StatusClass::Failure));
        assert_eq!(
            StatusClass::of(99),
            Err(TransactionError::InvalidStatus(99))
        );
        assert_eq!(
            StatusClass::of(700),
            Err(TransactionError::InvalidStatus(700))
        );
    }

    #[test]
    fn error_messages_say_expected_and_found() {
        let e = TransactionError::WrongState {
            state: State::Completed,
            status: 200,
            expected: "state Proceeding",
        };
        assert_eq!(
            e.to_string(),
            "cannot send a 200 response in state Completed: expected state Proceeding"
        );
        assert_eq!(
            TransactionError::InvalidStatus(42).to_string(),
            "invalid status code: expected 100 to 699, found 42"
        );
    }
}
