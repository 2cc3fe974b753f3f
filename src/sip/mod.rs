//! SIP signalling: the endpoint that routes messages to calls, the registrar agents log in
//! with, and the sockets. The pure parts (codec, transactions, dialogs, UAC/UAS, SDP,
//! digest) are `hotline_core::sip`, re-exported here under their usual paths. Of this
//! module's own files only `transport`, the endpoint's task (`endpoint/mod.rs`) and the
//! registrar's task touch sockets (`tls` reads the certificates the transport presents);
//! the random tokens are drawn here and passed in.

pub use hotline_core::sip::{
    ALLOW, admission, dialog, digest, guard, leg, message, overload, refer, sdes, sdp, token,
    transaction, uac, uas,
};

pub mod endpoint;
pub mod registrar;
pub mod tls;
pub mod transport;

/// A random token for tags and branches.
pub fn random_token(len: usize) -> String {
    token(len, |n| rand::random_range(0..n))
}
