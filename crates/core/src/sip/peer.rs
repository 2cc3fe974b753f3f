//! Where a SIP message came from or leaves to: the transport, the far address and our
//! listener's address. Plain data, so the pure parts (a call's core, its queue place, the
//! endpoint's routing) can name a peer; the sockets that reach it are the engine's.

use std::net::SocketAddr;

use crate::config::Protocol;

/// Where a message came from or goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: Protocol,
    pub remote: SocketAddr,
    /// The local address of the listener it arrived on (or will leave from).
    pub local: SocketAddr,
}
