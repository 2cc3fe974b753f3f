//! Batched datagram IO over io_uring, for whoever serves many UDP sockets on one clock
//! (the engine's media workers, the load tool's callers): every packet of a tick, for all
//! the sockets, goes to the kernel in one `io_uring_enter`, and one datagram from each
//! socket asked comes back in one, with the kernel's arrival time where the socket stamps
//! arrivals ([`watch_arrivals`]). With one socket per call (its port is in the SDP)
//! `sendmmsg`/`recvmmsg` cannot batch across calls; a ring can.
//!
//! This crate only moves bytes: it owns the ring and the buffers the kernel reads from
//! and writes into, never a socket and never a session. Every submission is waited for
//! before its call returns, so no buffer is reused or freed while the kernel may still
//! touch it, and every operation carries `MSG_DONTWAIT`, so a full socket buffer completes
//! at once with an error (counted) instead of parking work in the kernel. Where io_uring is
//! missing or forbidden, [`Uring::new`] fails and the caller uses `sendto`/`recvfrom`.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;
use std::time::Duration;

use io_uring::{IoUring, opcode, squeue, types};

/// Slots in the kernel's table of registered sockets ([`Uring::register`]). A socket
/// beyond them is named by its descriptor, which costs the kernel a lookup per operation.
const FIXED_FILES: u32 = 16_384;

/// No slot: the socket is named by its descriptor.
const NO_SLOT: u32 = u32::MAX;

/// The sockets registered with the ring, by descriptor, and the free slots.
#[derive(Default)]
struct FixedFiles {
    slot_of: Vec<u32>,
    free: Vec<u32>,
}

/// How an entry names its socket: a registered slot, or the descriptor.
#[derive(Clone, Copy)]
enum Target {
    Fixed(u32),
    Fd(RawFd),
}

/// Submission queue size. A tick with more packets than this is sent in several
/// submissions of this size.
const RING_ENTRIES: u32 = 2048;

/// Room for one received datagram: the largest that arrives unfragmented on Ethernet.
/// A longer one is cut and reaches its session truncated (and is then dropped as
/// malformed or read short), as with any fixed receive buffer.
pub const RECV_SLOT: usize = 1500;

/// A packet queued for the next [`Uring::flush_sends`].
struct Outgoing {
    fd: RawFd,
    /// Where it goes; a length of 0 means the socket's connected peer.
    to: libc::sockaddr_storage,
    to_len: libc::socklen_t,
    offset: usize,
    len: usize,
}

/// One datagram read by [`Uring::receive`].
pub struct Received<'a> {
    /// The token given with the socket to [`Uring::queue_recv`].
    pub token: u64,
    pub from: SocketAddr,
    pub data: &'a [u8],
    /// When the kernel received it (`CLOCK_REALTIME`, since the epoch), if the socket
    /// stamps arrivals (see [`watch_arrivals`]).
    pub arrived: Option<Duration>,
}

/// Room for one `SCM_TIMESTAMPNS` control message (a `timespec` after its header).
const CMSG_SLOT: usize = 64;

/// Asks the kernel to stamp every datagram `fd` receives with its arrival time, which
/// [`Received::arrived`] then reports.
pub fn watch_arrivals(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a plain setsockopt with a pointer to a live c_int and its size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&raw const on).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The arrival time in the control messages `m` points to, if there is one.
fn arrival(m: &libc::msghdr) -> Option<Duration> {
    // SAFETY: the kernel filled `msg_control` up to `msg_controllen`; the CMSG macros walk
    // only inside that.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(m);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SO_TIMESTAMPNS {
                let ts = libc::CMSG_DATA(c).cast::<libc::timespec>().read_unaligned();
                return Some(Duration::new(
                    u64::try_from(ts.tv_sec).ok()?,
                    u32::try_from(ts.tv_nsec).ok()?,
                ));
            }
            c = libc::CMSG_NXTHDR(m, c);
        }
    }
    None
}

/// What a batch of sends did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendReport {
    pub sent: u64,
    /// Packets the kernel refused (full buffer, ICMP error pending, unreachable address).
    pub failed: u64,
}

/// The addresses and headers of one submission. Raw pointers into these vectors go to
/// the kernel, so they are sized before any pointer is taken and never grow while a
/// submission is in flight.
#[derive(Default)]
struct Headers {
    names: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::msghdr>,
}

impl Headers {
    fn reset(&mut self, n: usize) {
        self.names.clear();
        self.iovs.clear();
        self.msgs.clear();
        self.names.reserve(n);
        self.iovs.reserve(n);
        self.msgs.reserve(n);
    }

    /// One header per name and iovec pushed, each pointing at its own pair, and with
    /// `control`, at its own `CMSG_SLOT` bytes of that buffer.
    fn build_msgs(
        &mut self,
        namelens: impl Iterator<Item = libc::socklen_t>,
        control: Option<*mut u8>,
    ) {
        let names = self.names.as_mut_ptr();
        let iovs = self.iovs.as_mut_ptr();
        for (i, namelen) in namelens.enumerate().take(self.names.len()) {
            // SAFETY: msghdr is plain data; the fields left zero mean "none".
            let mut m: libc::msghdr = unsafe { mem::zeroed() };
            // SAFETY: i < names.len() == iovs.len(); the vectors do not move until the
            // submission completes.
            m.msg_name = unsafe { names.add(i) }.cast();
            m.msg_namelen = namelen;
            m.msg_iov = unsafe { iovs.add(i) };
            m.msg_iovlen = 1;
            if let Some(base) = control {
                // SAFETY: the caller's buffer holds CMSG_SLOT bytes per header.
                m.msg_control = unsafe { base.add(i * CMSG_SLOT) }.cast();
                m.msg_controllen = CMSG_SLOT as _;
            }
            self.msgs.push(m);
        }
    }
}

/// Room a session may fill with one packet (a frame, its RTP header, an SRTP tag).
pub const SEND_SLOT: usize = 2048;

pub struct Uring {
    ring: IoUring,
    /// Bytes of the queued packets, back to back, from 0 to `used`. Never shrinks, so
    /// a tick's packets are written in place without zeroing it again.
    out: Vec<u8>,
    used: usize,
    outgoing: Vec<Outgoing>,
    /// Sockets to read in the next [`Uring::receive`], with their tokens.
    incoming: Vec<(u64, RawFd)>,
    /// `RECV_SLOT` bytes per incoming socket.
    inbuf: Vec<u8>,
    /// Length and sender of the datagram read per incoming socket; `None` when none.
    got: Vec<Option<(usize, SocketAddr)>>,
    /// Bytes read per socket of one submission.
    lens: Vec<Option<usize>>,
    /// When each datagram of the last `receive` arrived.
    arrivals: Vec<Option<Duration>>,
    /// `CMSG_SLOT` bytes of control messages per socket of one submission.
    control: Vec<u8>,
    headers: Headers,
    /// `None` where the kernel has no registered-file table for us.
    fixed: Option<FixedFiles>,
}

// SAFETY: the raw pointers inside (the headers' `msghdr`s and `iovec`s) point only into
// the Uring's own heap buffers, are rebuilt for every submission, and are not used by
// the kernel once a method returns (each waits for its completions). Moving the Uring to
// another thread between calls moves none of that memory.
unsafe impl Send for Uring {}

impl Uring {
    /// Sets up a ring and checks that the kernel serves it (a sandbox may allow the
    /// set-up and refuse the rest). Fails on kernels without io_uring or where it is
    /// forbidden; the caller then uses `sendto`.
    pub fn new() -> io::Result<Uring> {
        let ring = IoUring::builder()
            .setup_coop_taskrun()
            .build(RING_ENTRIES)
            .or_else(|_| IoUring::new(RING_ENTRIES))?;
        let mut u = Uring {
            ring,
            out: Vec::new(),
            used: 0,
            outgoing: Vec::new(),
            incoming: Vec::new(),
            inbuf: Vec::new(),
            got: Vec::new(),
            lens: Vec::new(),
            arrivals: Vec::new(),
            control: Vec::new(),
            headers: Headers::default(),
            fixed: None,
        };
        let nop = opcode::Nop::new().build().user_data(0);
        let mut result = None;
        submit_each(&mut u.ring, std::iter::once(nop), 1, |_, r| {
            result = Some(r)
        })?;
        match result {
            Some(r) if r >= 0 => {}
            Some(r) => return Err(io::Error::from_raw_os_error(-r)),
            None => return Err(io::Error::other("io_uring gave no completion")),
        }
        if u.ring
            .submitter()
            .register_files_sparse(FIXED_FILES)
            .is_ok()
        {
            u.fixed = Some(FixedFiles {
                slot_of: Vec::new(),
                free: (0..FIXED_FILES).rev().collect(),
            });
        }
        Ok(u)
    }

    /// Registers a socket with the ring, so its operations skip the kernel's descriptor
    /// lookup. The ring then holds the socket open: [`Uring::unregister`] it before
    /// closing it, or its port stays bound. Without a free slot (or a table) nothing
    /// happens and the socket is named by its descriptor.
    pub fn register(&mut self, fd: RawFd) {
        let (Some(f), Ok(i)) = (self.fixed.as_mut(), usize::try_from(fd)) else {
            return;
        };
        if f.slot_of.get(i).is_some_and(|&s| s != NO_SLOT) {
            return;
        }
        let Some(slot) = f.free.pop() else {
            return;
        };
        if self
            .ring
            .submitter()
            .register_files_update(slot, &[fd])
            .is_err()
        {
            f.free.push(slot);
            return;
        }
        if f.slot_of.len() <= i {
            f.slot_of.resize(i + 1, NO_SLOT);
        }
        f.slot_of[i] = slot;
    }

    /// Lets go of every registered socket (a ring that failed must not keep them open).
    pub fn unregister_all(&mut self) {
        if self.fixed.take().is_some() {
            let _ = self.ring.submitter().unregister_files();
        }
    }

    /// Lets go of a socket [`Uring::register`] registered (nothing if it did not).
    pub fn unregister(&mut self, fd: RawFd) {
        let (Some(f), Ok(i)) = (self.fixed.as_mut(), usize::try_from(fd)) else {
            return;
        };
        let Some(slot) = f.slot_of.get_mut(i).filter(|s| **s != NO_SLOT) else {
            return;
        };
        let freed = std::mem::replace(slot, NO_SLOT);
        // Failing, the slot stays taken: the socket stays open but is never used again.
        if self
            .ring
            .submitter()
            .register_files_update(freed, &[-1])
            .is_ok()
        {
            f.free.push(freed);
        }
    }

    /// Queues `data` to be sent from `fd` to `to` by the next `flush_sends`.
    pub fn queue_send(&mut self, fd: RawFd, to: SocketAddr, data: &[u8]) {
        self.queue_send_with(fd, |buf| {
            let b = buf.get_mut(..data.len())?;
            b.copy_from_slice(data);
            Some((data.len(), to))
        });
    }

    /// Queues the packet `fill` writes (into [`SEND_SLOT`] bytes; it returns the length
    /// and where the packet goes, or `None` to send nothing) to be sent from `fd` by the
    /// next `flush_sends`. The packet is written where the kernel will read it: no copy.
    pub fn queue_send_with(
        &mut self,
        fd: RawFd,
        fill: impl FnOnce(&mut [u8]) -> Option<(usize, SocketAddr)>,
    ) {
        self.queue(fd, |buf| fill(buf).map(|(len, to)| (len, Some(to))));
    }

    /// As [`Uring::queue_send_with`], for a socket connected to its one peer: the packet
    /// names no destination, so the kernel neither copies an address nor looks a route
    /// up for it (the connected socket keeps both).
    pub fn queue_send_connected_with(
        &mut self,
        fd: RawFd,
        fill: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) {
        self.queue(fd, |buf| fill(buf).map(|len| (len, None)));
    }

    fn queue(
        &mut self,
        fd: RawFd,
        fill: impl FnOnce(&mut [u8]) -> Option<(usize, Option<SocketAddr>)>,
    ) {
        let offset = self.used;
        if self.out.len() < offset + SEND_SLOT {
            self.out.resize(offset + SEND_SLOT, 0);
        }
        let Some((len, to)) = self
            .out
            .get_mut(offset..offset + SEND_SLOT)
            .and_then(fill)
            .filter(|&(l, _)| l <= SEND_SLOT)
        else {
            return;
        };
        self.used += len;
        let (to, to_len) = match to {
            Some(to) => sockaddr(to),
            // SAFETY: all-zero is a valid sockaddr_storage; with length 0 it is not read.
            None => (unsafe { mem::zeroed() }, 0),
        };
        self.outgoing.push(Outgoing {
            fd,
            to,
            to_len,
            offset,
            len,
        });
    }

    /// Sends every queued packet in as few `io_uring_enter` calls as the ring's size
    /// allows (one up to `RING_ENTRIES` packets) and waits for all of them. The sockets
    /// must stay open until this returns. An error means the ring is unusable; the
    /// queue is emptied either way.
    pub fn flush_sends(&mut self) -> io::Result<SendReport> {
        let mut report = SendReport::default();
        let total = self.outgoing.len();
        let mut start = 0;
        let mut result = Ok(());
        while start < total && result.is_ok() {
            let end = (start + RING_ENTRIES as usize).min(total);
            let batch = &self.outgoing[start..end];
            let out = self.out.as_ptr();
            let (fixed, ring) = (&self.fixed, &mut self.ring);
            let target = |fd| target_in(fixed, fd);
            let entries = batch.iter().enumerate().map(|(i, o)| {
                // A send with its destination in the entry: no msghdr for the kernel to
                // copy in. The kernel only reads through these pointers, which stay
                // valid until `submit_each` has reaped every completion.
                // SAFETY: offset + len <= used <= out.len() (queue_send_with).
                let data = unsafe { out.add(o.offset) };
                let send = match target(o.fd) {
                    Target::Fixed(s) => opcode::Send::new(types::Fixed(s), data, o.len as u32),
                    Target::Fd(fd) => opcode::Send::new(types::Fd(fd), data, o.len as u32),
                };
                let send = match o.to_len {
                    0 => send,
                    len => send.dest_addr((&raw const o.to).cast()).dest_addr_len(len),
                };
                send.flags(libc::MSG_DONTWAIT).build().user_data(i as u64)
            });
            result = submit_each(ring, entries, batch.len(), |_, res| {
                if res >= 0 {
                    report.sent += 1;
                } else {
                    report.failed += 1;
                }
            });
            start = end;
        }
        self.outgoing.clear();
        self.used = 0;
        result.map(|()| report)
    }

    /// Queues one read of `fd` (a socket epoll said is readable) for the next `receive`.
    pub fn queue_recv(&mut self, token: u64, fd: RawFd) {
        self.incoming.push((token, fd));
    }

    /// Reads one datagram from each queued socket, one `io_uring_enter` for up to
    /// `RING_ENTRIES` sockets; [`Uring::received`] then lists them. Sockets with nothing
    /// to read or with an error pending give nothing (the error is consumed, as
    /// `recvfrom` would). The sockets must stay open until this returns. An error means
    /// the ring is unusable.
    pub fn receive(&mut self) -> io::Result<()> {
        let n = self.incoming.len();
        self.got.clear();
        self.got.resize(n, None);
        self.arrivals.clear();
        self.arrivals.resize(n, None);
        if self.inbuf.len() < n * RECV_SLOT {
            self.inbuf.resize(n * RECV_SLOT, 0);
        }
        let slots = (n.min(RING_ENTRIES as usize)) * CMSG_SLOT;
        if self.control.len() < slots {
            self.control.resize(slots, 0);
        }
        let mut start = 0;
        while start < n {
            let end = (start + RING_ENTRIES as usize).min(n);
            let h = &mut self.headers;
            h.reset(end - start);
            let base = self.inbuf.as_mut_ptr();
            for i in start..end {
                // SAFETY: all-zero is a valid sockaddr_storage (family AF_UNSPEC), which
                // is what is left when the kernel writes no address.
                h.names.push(unsafe { mem::zeroed() });
                h.iovs.push(libc::iovec {
                    // SAFETY: i < n and inbuf holds n slots.
                    iov_base: unsafe { base.add(i * RECV_SLOT) }.cast(),
                    iov_len: RECV_SLOT,
                });
            }
            let full = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.build_msgs(std::iter::repeat(full), Some(self.control.as_mut_ptr()));
            let msgs = h.msgs.as_mut_ptr();
            let fixed = &self.fixed;
            let entries = self.incoming[start..end]
                .iter()
                .enumerate()
                .map(|(i, &(_, fd))| {
                    // SAFETY: i < end - start, the number of headers built above.
                    let msg = unsafe { msgs.add(i) };
                    let recv = match target_in(fixed, fd) {
                        Target::Fixed(s) => opcode::RecvMsg::new(types::Fixed(s), msg),
                        Target::Fd(fd) => opcode::RecvMsg::new(types::Fd(fd), msg),
                    };
                    recv.flags(libc::MSG_DONTWAIT as u32)
                        .build()
                        .user_data(i as u64)
                });
            let lens = &mut self.lens;
            lens.clear();
            lens.resize(end - start, None);
            submit_each(&mut self.ring, entries, end - start, |i, res| {
                if let (Some(l), Ok(len)) = (lens.get_mut(i), usize::try_from(res)) {
                    *l = Some(len.min(RECV_SLOT));
                }
            })?;
            // Only now, with every read complete, are the addresses ours to look at.
            for (i, len) in self.lens.iter().enumerate() {
                self.got[start + i] = len.zip(from_sockaddr(&self.headers.names[i]));
                if len.is_some() {
                    self.arrivals[start + i] = self.headers.msgs.get(i).and_then(arrival);
                }
            }
            start = end;
        }
        Ok(())
    }

    /// The datagrams the last `receive` read, in the order their sockets were queued.
    pub fn received(&self) -> impl Iterator<Item = Received<'_>> {
        let (inbuf, arrivals) = (&self.inbuf, &self.arrivals);
        self.incoming.iter().zip(&self.got).enumerate().filter_map(
            move |(i, (&(token, _), got))| {
                let (len, from) = (*got)?;
                let data = inbuf.get(i * RECV_SLOT..i * RECV_SLOT + len)?;
                let arrived = arrivals.get(i).copied().flatten();
                Some(Received {
                    token,
                    from,
                    data,
                    arrived,
                })
            },
        )
    }

    /// Forgets the sockets queued for reading and what was read from them.
    pub fn clear_recvs(&mut self) {
        self.incoming.clear();
        self.got.clear();
        self.arrivals.clear();
    }
}

/// How an entry names `fd`: its registered slot if it has one.
fn target_in(fixed: &Option<FixedFiles>, fd: RawFd) -> Target {
    fixed
        .as_ref()
        .and_then(|f| f.slot_of.get(usize::try_from(fd).ok()?))
        .filter(|&&s| s != NO_SLOT)
        .map_or(Target::Fd(fd), |&s| Target::Fixed(s))
}

/// Pushes `n` (at most the ring's size) entries, submits them with one `io_uring_enter`
/// and waits until all have completed, handing each result to `done` with the entry's
/// user data. Waiting is what keeps the buffers the entries point to valid: with
/// `MSG_DONTWAIT` every one completes inside the submission.
///
/// An error other than an interruption means the ring cannot be trusted; the caller
/// must stop using it (and keep it, with its buffers, alive).
fn submit_each(
    ring: &mut IoUring,
    entries: impl Iterator<Item = squeue::Entry>,
    n: usize,
    mut done: impl FnMut(usize, i32),
) -> io::Result<()> {
    let mut pushed = 0;
    {
        let mut sq = ring.submission();
        for e in entries.take(n) {
            // SAFETY: the buffers each entry points to live until its completion is
            // reaped below, before this function returns (or, on error, for as long as
            // the caller keeps the ring).
            if unsafe { sq.push(&e) }.is_err() {
                break;
            }
            pushed += 1;
        }
    }
    let mut reaped = 0;
    while reaped < pushed {
        match ring.submit_and_wait(pushed - reaped) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        for c in ring.completion() {
            if let Ok(i) = usize::try_from(c.user_data())
                && i < n
            {
                done(i, c.result());
            }
            reaped += 1;
        }
    }
    Ok(())
}

/// A socket address in the kernel's form, and its length.
fn sockaddr(a: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut s: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match a {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { (&raw mut s).cast::<libc::sockaddr_in>().write(sin) };
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { (&raw mut s).cast::<libc::sockaddr_in6>().write(sin6) };
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (s, len as libc::socklen_t)
}

/// The address the kernel wrote, if it is IPv4 or IPv6.
fn from_sockaddr(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(s.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 =
                unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    fn bind() -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind on loopback");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s
    }

    /// A ring, or `None` where the kernel or a sandbox refuses io_uring (the clock then
    /// uses `sendto`, which `tests/media_clock.rs` covers).
    fn ring() -> Option<Uring> {
        match Uring::new() {
            Ok(r) => Some(r),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => None,
            Err(e) => panic!("io_uring set-up failed: {e}"),
        }
    }

    #[test]
    fn one_flush_sends_each_packet_from_its_socket_to_its_peer() {
        let Some(mut ring) = ring() else { return };
        let ours: Vec<UdpSocket> = (0..8).map(|_| bind()).collect();
        let peers: Vec<UdpSocket> = (0..8).map(|_| bind()).collect();
        for round in 0..3u8 {
            for (i, (s, p)) in ours.iter().zip(&peers).enumerate() {
                let payload = [round, i as u8, 0xAB];
                ring.queue_send(s.as_raw_fd(), p.local_addr().expect("addr"), &payload);
            }
            let report = ring.flush_sends().expect("flush");
            assert_eq!(report, SendReport { sent: 8, failed: 0 });
            for (i, (s, p)) in ours.iter().zip(&peers).enumerate() {
                let mut buf = [0u8; 64];
                let (n, from) = p.recv_from(&mut buf).expect("the packet");
                assert_eq!(&buf[..n], &[round, i as u8, 0xAB]);
                assert_eq!(from, s.local_addr().expect("addr"));
            }
        }
    }

    #[test]
    fn a_connected_socket_sends_to_its_peer_without_naming_it() {
        let Some(mut ring) = ring() else { return };
        let (ours, peer, unconnected) = (bind(), bind(), bind());
        ours.connect(peer.local_addr().expect("addr"))
            .expect("connect");
        ring.queue_send_connected_with(ours.as_raw_fd(), |buf| {
            buf[..2].copy_from_slice(&[7, 7]);
            Some(2)
        });
        // One that is not connected has nowhere to send it: refused, counted, the rest go.
        ring.queue_send_connected_with(unconnected.as_raw_fd(), |buf| {
            buf[0] = 1;
            Some(1)
        });
        ring.queue_send(
            unconnected.as_raw_fd(),
            peer.local_addr().expect("addr"),
            &[9],
        );
        let report = ring.flush_sends().expect("flush");
        assert_eq!(report, SendReport { sent: 2, failed: 1 });
        let mut buf = [0u8; 8];
        let (n, from) = peer.recv_from(&mut buf).expect("the connected send");
        assert_eq!(
            (&buf[..n], from),
            (&[7u8, 7][..], ours.local_addr().expect("addr"))
        );
        let (n, from) = peer.recv_from(&mut buf).expect("the addressed send");
        assert_eq!(
            (&buf[..n], from),
            (&[9u8][..], unconnected.local_addr().expect("addr"))
        );
    }

    #[test]
    fn a_refused_send_is_counted_and_the_rest_still_go() {
        let Some(mut ring) = ring() else { return };
        let s = bind();
        let p = bind();
        ring.queue_send(s.as_raw_fd(), p.local_addr().expect("addr"), b"one");
        // Port 0 is no destination: the kernel refuses this one packet.
        ring.queue_send(s.as_raw_fd(), "127.0.0.1:0".parse().expect("addr"), b"lost");
        ring.queue_send(s.as_raw_fd(), p.local_addr().expect("addr"), b"two");
        let report = ring.flush_sends().expect("flush");
        assert_eq!(report, SendReport { sent: 2, failed: 1 });
        let mut buf = [0u8; 16];
        let (n, _) = p.recv_from(&mut buf).expect("first");
        assert_eq!(&buf[..n], b"one");
        let (n, _) = p.recv_from(&mut buf).expect("second");
        assert_eq!(&buf[..n], b"two");
    }

    #[test]
    fn one_receive_reads_a_datagram_from_each_socket_and_skips_empty_ones() {
        let Some(mut ring) = ring() else { return };
        let ours: Vec<UdpSocket> = (0..5).map(|_| bind()).collect();
        let peer = bind();
        // Socket 2 gets nothing; socket 4 gets two datagrams.
        for (i, s) in ours.iter().enumerate() {
            if i != 2 {
                peer.send_to(&[i as u8; 3], s.local_addr().expect("addr"))
                    .expect("send");
            }
        }
        peer.send_to(&[9; 2], ours[4].local_addr().expect("addr"))
            .expect("send");
        // Wait until every datagram is queued (loopback delivers at once, but be sure).
        for (i, s) in ours.iter().enumerate() {
            if i != 2 {
                let mut b = [0u8; 4];
                s.peek_from(&mut b).expect("queued");
            }
        }
        for (i, s) in ours.iter().enumerate() {
            ring.queue_recv(100 + i as u64, s.as_raw_fd());
        }
        ring.receive().expect("receive");
        let got: Vec<(u64, SocketAddr, Vec<u8>)> = ring
            .received()
            .map(|r| (r.token, r.from, r.data.to_vec()))
            .collect();
        let from = peer.local_addr().expect("addr");
        assert_eq!(
            got,
            vec![
                (100, from, vec![0; 3]),
                (101, from, vec![1; 3]),
                (103, from, vec![3; 3]),
                (104, from, vec![4; 3]),
            ]
        );
        ring.clear_recvs();
        // The second datagram of socket 4 is still there for the next pass.
        ring.queue_recv(104, ours[4].as_raw_fd());
        ring.receive().expect("receive");
        let again: Vec<Vec<u8>> = ring.received().map(|r| r.data.to_vec()).collect();
        assert_eq!(again, vec![vec![9; 2]]);
    }

    #[test]
    fn a_registered_socket_sends_and_reads_and_is_closed_once_let_go() {
        let Some(mut ring) = ring() else { return };
        let (ours, peer) = (bind(), bind());
        let (at, to) = (
            ours.local_addr().expect("addr"),
            peer.local_addr().expect("addr"),
        );
        ring.register(ours.as_raw_fd());
        ring.queue_send(ours.as_raw_fd(), to, b"out");
        assert_eq!(ring.flush_sends().expect("flush").sent, 1);
        let mut b = [0u8; 8];
        let (n, from) = peer.recv_from(&mut b).expect("sent");
        assert_eq!((&b[..n], from), (&b"out"[..], at));
        peer.send_to(b"in", at).expect("send");
        ours.peek_from(&mut b).expect("queued");
        ring.queue_recv(7, ours.as_raw_fd());
        ring.receive().expect("receive");
        let got: Vec<(u64, Vec<u8>)> = ring
            .received()
            .map(|r| (r.token, r.data.to_vec()))
            .collect();
        assert_eq!(got, vec![(7, b"in".to_vec())]);
        ring.clear_recvs();
        // Let go of, then closed: the port is free again.
        ring.unregister(ours.as_raw_fd());
        drop(ours);
        UdpSocket::bind(at).expect("the port was given back");
    }

    #[test]
    fn a_watched_socket_reports_when_each_datagram_arrived() {
        let Some(mut ring) = ring() else { return };
        let (watched, plain, peer) = (bind(), bind(), bind());
        watch_arrivals(watched.as_raw_fd()).expect("SO_TIMESTAMPNS");
        let realtime = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970")
        };
        let before = realtime();
        for s in [&watched, &plain] {
            peer.send_to(b"rtp", s.local_addr().expect("addr"))
                .expect("send");
            let mut b = [0u8; 4];
            s.peek_from(&mut b).expect("queued");
        }
        let after = realtime();
        ring.queue_recv(1, watched.as_raw_fd());
        ring.queue_recv(2, plain.as_raw_fd());
        ring.receive().expect("receive");
        let got: Vec<(u64, Option<Duration>)> =
            ring.received().map(|r| (r.token, r.arrived)).collect();
        assert_eq!(got.len(), 2);
        let arrived = got[0].1.expect("the watched socket's arrival time");
        assert!(before <= arrived && arrived <= after, "{arrived:?}");
        assert_eq!(got[1], (2, None), "an unwatched socket has no time");
    }
}
