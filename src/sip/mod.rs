//! SIP signalling: the message codec, transactions, dialogs, the INVITEs we answer (UAS)
//! and place (UAC, and the outgoing leg built on both), SDP offer/answer, the endpoint
//! that routes messages to calls, the registrar agents log in with, and the sockets.
//! Everything here but `transport` and the endpoint's task (`endpoint/mod.rs`) is pure: no
//! sockets, no clock.

pub mod dialog;
pub mod digest;
pub mod endpoint;
pub mod leg;
pub mod message;
pub mod registrar;
pub mod sdp;
pub mod transaction;
pub mod transport;
pub mod uac;
pub mod uas;

/// The methods we answer, for Allow headers (RFC 3261 §20.5).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REGISTER";

/// A random token for tags and branches (RFC 3261 §19.3 asks for 32 bits of randomness;
/// this gives about 5 bits a character).
pub fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}
