//! SIP signalling without IO: the message codec, transactions, dialogs, the INVITEs we
//! place (`uac`) and answer (`uas`), SDP offer/answer and digest authentication. The
//! endpoint that routes messages, the registrar's task and the sockets are the engine's.

pub mod dialog;
pub mod leg; // an outgoing leg: the INVITE we place and, once answered, its dialog
pub mod digest;
pub mod guard; // who may talk to a public number: flood and login bans, trusted sources, scanners
pub mod admission; // whether the engine takes one more call: max calls, rate, media lateness, draining
pub mod overload; // RFC 7339: how much new traffic a proxy should hold back, in its Via
pub mod message;
pub mod sdp;
pub mod sdes; // SRTP keys in SDP (RFC 4568) and the SRTP policy
pub mod transaction;
pub mod uac;
pub mod uas;
pub mod peer; // where a message came from or goes to
pub mod refer; // blind transfer by an agent's phone (RFC 3515): allowed targets, Refer-To, NOTIFY bodies

/// The methods we answer, for Allow headers (RFC 3261 §20.5).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REGISTER";

/// A token for tags and branches from random draws: `draw(n)` returns a number below `n`.
/// The caller owns the random source (RFC 3261 §19.3 asks for 32 bits of randomness; this
/// gives about 5 bits a character).
pub fn token(len: usize, mut draw: impl FnMut(usize) -> usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| ALPHABET[draw(ALPHABET.len()) % ALPHABET.len()] as char)
        .collect()
}
