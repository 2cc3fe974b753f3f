//! SIP signalling: the message codec, transactions, dialogs, SDP offer/answer and the
//! sockets. Everything here but `transport` is pure: no sockets, no clock.

pub mod sdp;
pub mod transaction;
