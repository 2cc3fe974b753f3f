//! The RTP port pool: hands out even UDP ports from the configured range and takes them back
//! when a call ends. It binds the socket itself, so a port that another program holds is
//! skipped rather than handed to a call.
//!
//! Ports are drawn at random from the free ones, not in sequence: a caller's port says
//! nothing about the next call's, so nobody can aim RTP at a call about to start. A draw is
//! O(1) (swap-remove from a list), and one allocation binds at most [`MAX_ATTEMPTS`] ports,
//! so a range mostly held by other programs costs a refused call, not a long scan.
//!
//! A port that comes back rests before it is drawn again: the far end of the call that
//! just ended (or a media relay in front of it) may still be sending to it for a while, and
//! on a port handed straight to the next call that stale stream could reach the new call
//! before its own caller does, and be latched as its caller. The most recently returned
//! ports rest, oldest first, as long as they are at most half of the free ones; the draw
//! is from the other half, so it stays as unpredictable as before.

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

/// Ports one allocation tries to bind before it gives up.
pub const MAX_ATTEMPTS: usize = 64;

/// A shared pool of even RTP ports (RTCP would take the odd one above, RFC 3550 §11).
#[derive(Clone)]
pub struct PortPool {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    range: PortRange,
    /// Free ports the next call's is drawn from.
    free: Vec<u16>,
    /// Free ports that came back lately, oldest first (see the module comment).
    resting: VecDeque<u16>,
    /// Every port of the range the pool hands out.
    total: usize,
}

impl Inner {
    /// Takes a free port out, drawn at random from those not resting.
    fn draw(&mut self) -> Option<u16> {
        if self.free.is_empty() {
            return None;
        }
        let i = rand::random_range(0..self.free.len());
        let port = self.free.swap_remove(i);
        self.wake_rested();
        Some(port)
    }

    /// A port comes back, to rest.
    fn give_back(&mut self, port: u16) {
        self.resting.push_back(port);
        self.wake_rested();
    }

    /// Keeps the resting ports at most half of the free ones: those that rested longest
    /// can be drawn again.
    fn wake_rested(&mut self) {
        while self.resting.len() > self.free.len() {
            let Some(rested) = self.resting.pop_front() else {
                break;
            };
            self.free.push(rested);
        }
    }

    fn free_count(&self) -> usize {
        self.free.len() + self.resting.len()
    }
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
            inner.give_back(self.port);
        }
    }
}

impl PortPool {
    pub fn new(range: PortRange) -> Self {
        let first_even = range.first + (range.first % 2);
        let free: Vec<u16> = (first_even..range.last).step_by(2).collect();
        let total = free.len();
        PortPool {
            inner: Arc::new(Mutex::new(Inner {
                range,
                free,
                resting: VecDeque::new(),
                total,
            })),
        }
    }

    /// Binds a non-blocking UDP socket on a free even port at `ip`, drawn at random.
    pub fn allocate(&self, ip: IpAddr) -> Result<RtpPort, PortError> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let range = inner.range;
        let attempts = inner.free_count().min(MAX_ATTEMPTS);
        // Ports another program holds wait here, so this allocation never draws them twice.
        let mut busy = Vec::new();
        let mut found = None;
        for _ in 0..attempts {
            let Some(port) = inner.draw() else { break };
            match UdpSocket::bind(SocketAddr::new(ip, port)) {
                Ok(socket) if socket.set_nonblocking(true).is_ok() => {
                    found = Some((socket, port));
                    break;
                }
                _ => busy.push(port),
            }
        }
        let tried = busy.len() + usize::from(found.is_some());
        inner.free.extend(busy);
        match found {
            Some((socket, port)) => Ok(RtpPort {
                socket,
                port,
                pool: self.clone(),
            }),
            None => Err(PortError::Exhausted { range, tried }),
        }
    }

    pub fn free_count(&self) -> usize {
        self.inner.lock().map(|i| i.free_count()).unwrap_or(0)
    }

    /// Ports handed out and not yet back.
    pub fn in_use(&self) -> usize {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.total - inner.free_count()
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
        assert_eq!(pool.in_use(), 1);
        drop(a);
        assert_eq!(pool.free_count(), 4);
        assert_eq!(pool.in_use(), 0);
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
        // The held port stays in the pool for when its holder lets go.
        assert_eq!(pool.free_count(), 1);
    }

    #[test]
    fn a_port_that_came_back_rests_while_it_is_among_the_newest_half_of_the_free_ones() {
        let pool = PortPool::new(PortRange {
            first: 41300,
            last: 41307,
        });
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut held: Vec<RtpPort> = (0..4).map(|_| pool.allocate(ip).unwrap()).collect();
        let order: Vec<u16> = held.iter().map(|p| p.port).collect();
        for _ in 0..3 {
            drop(held.remove(0));
        }
        assert_eq!(pool.free_count(), 3);
        // Of three free ports, the one that came back last rests: the next two calls get
        // the other two, whichever the draw picks first.
        let next: Vec<RtpPort> = (0..2).map(|_| pool.allocate(ip).unwrap()).collect();
        let mut ports: Vec<u16> = next.iter().map(|p| p.port).collect();
        ports.sort_unstable();
        let mut expected = [order[0], order[1]];
        expected.sort_unstable();
        assert_eq!(ports, expected);
        // The only free port left is drawn, rested or not.
        assert_eq!(pool.allocate(ip).unwrap().port, order[2]);
    }

    #[test]
    fn ports_are_drawn_at_random_not_in_sequence() {
        let range = PortRange {
            first: 41200,
            last: 41399,
        };
        let pool = PortPool::new(range);
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let held: Vec<RtpPort> = (0..20).filter_map(|_| pool.allocate(ip).ok()).collect();
        let ports: Vec<u16> = held.iter().map(|p| p.port).collect();
        assert!(
            ports
                .iter()
                .all(|p| p % 2 == 0 && range.first <= *p && *p < range.last)
        );
        // In sequence, every step would be +2; drawn at random out of 99 ports, 20 draws
        // that all step by +2 have a chance far below one in a billion.
        let sequential = ports.windows(2).filter(|w| w[1] == w[0] + 2).count();
        assert!(sequential < 10, "{ports:?}");
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(
            unique.len(),
            ports.len(),
            "a port handed out twice: {ports:?}"
        );
    }
}
