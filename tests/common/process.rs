//! Child processes the tests start (`hotline serve`, Kamailio) and the ports they get.

use std::net::{Ipv4Addr, UdpSocket};
use std::process::Child;

/// A child process killed (SIGKILL) when dropped, even on a failed assert.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A UDP port on loopback that was free a moment ago.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
