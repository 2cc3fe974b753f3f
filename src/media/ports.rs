//! The RTP port pool: hands out even UDP ports from the configured range and takes them back
//! when a call ends. It binds the socket itself, so a port that another program holds is
//! skipped rather than handed to a call.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};

use thiserror::Error;

use crate::config::PortRange;

#[derive(Debug, Error)]
pub enum PortError {
    #[error("no free RTP port in {range} ({tried} tried)")]
    Exhausted { range: PortRange, tried: usize },
}

/// A shared pool of even RTP ports (RTCP would take the odd one above, RFC 3550 §11).
#[derive(Clone)]
pub struct PortPool {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    range: PortRange,
    free: VecDeque<u16>,
}

/// A bound RTP socket whose port goes back to the pool when dropped.
pub struct RtpPort {
    pub socket: UdpSocket,
    pub port: u16,
    pool: PortPool,
}

impl Drop for RtpPort {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.pool.inner.lock() {
            inner.free.push_back(self.port);
        }
    }
}

impl PortPool {
    pub fn new(range: PortRange) -> Self {
        let first_even = range.first + (range.first % 2);
        let free = (first_even..range.last).step_by(2).collect();
        PortPool {
            inner: Arc::new(Mutex::new(Inner { range, free })),
        }
    }

    /// Binds a non-blocking UDP socket on the next free even port at `ip`.
    pub fn allocate(&self, ip: IpAddr) -> Result<RtpPort, PortError> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let range = inner.range;
        let mut tried = 0;
        let total = inner.free.len();
        while tried < total {
            let Some(port) = inner.free.pop_front() else {
                break;
            };
            tried += 1;
            match UdpSocket::bind(SocketAddr::new(ip, port)) {
                Ok(socket) => {
                    if socket.set_nonblocking(true).is_err() {
                        inner.free.push_back(port);
                        continue;
                    }
                    return Ok(RtpPort {
                        socket,
                        port,
                        pool: self.clone(),
                    });
                }
                // Held by someone else: put it at the back and try the next one.
                Err(_) => inner.free.push_back(port),
            }
        }
        Err(PortError::Exhausted { range, tried })
    }

    pub fn free_count(&self) -> usize {
        self.inner.lock().map(|i| i.free.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn ports_are_even_and_come_back() {
        let pool = PortPool::new(PortRange {
            first: 41001,
            last: 41010,
        });
        assert_eq!(pool.free_count(), 4); // 41002..41008
        let a = pool.allocate(IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
        assert_eq!(a.port % 2, 0);
        assert_eq!(pool.free_count(), 3);
        drop(a);
        assert_eq!(pool.free_count(), 4);
    }

    #[test]
    fn busy_ports_are_skipped_and_exhaustion_is_an_error() {
        let pool = PortPool::new(PortRange {
            first: 41100,
            last: 41103,
        });
        let _held = UdpSocket::bind("127.0.0.1:41100").unwrap();
        let a = pool.allocate(IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
        assert_eq!(a.port, 41102);
        assert!(pool.allocate(IpAddr::V4(Ipv4Addr::LOCALHOST)).is_err());
    }
}
