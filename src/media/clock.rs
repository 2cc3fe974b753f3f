//! The media clock: one OS thread per media worker that owns the RTP sockets of the sessions
//! it serves and drives those pure sessions (`media::session`) every 20 ms. Ten thousand
//! calls cost one wake-up per tick, not one timer each.
//!
//! Each tick the worker reads what its sockets received, hands the datagrams to their
//! sessions, ticks every session, moves bridged audio, then sends the one packet each
//! session owes. Reads and sends go through io_uring (`media::uring`): one system call
//! for the tick's reads and one for its sends, across all the worker's sockets. The read
//! asks every socket once, without epoll (a socket watched by epoll makes every packet it
//! sends and receives wake the watcher), and asks again only a socket whose datagram
//! arrived more than a tick ago, which may have more behind it. `HOTLINE_MEDIA_IO=sendto`,
//! or a kernel without io_uring, gives one system call per packet instead, with epoll
//! saying which sockets have data. The worker also wakes when a command arrives (an eventfd
//! in the same wait), so the call's answer to a key (its next `Play`) goes out in the tick
//! that heard the key: a session holds that tick's frame for a moment (see
//! `session::ANSWER_WAIT`) instead of sending silence and then the prompt a tick later.
//! Events go back to each call through the sink given when its session was added.
//!
//! The worker never blocks on a call and never allocates per packet. It must not decide
//! anything about media itself: what to send and when a frame is owed is the session's.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::sync::mpsc::UnboundedSender;
use tracing::{info, warn};

use crate::media::bridge::relay;
use crate::media::ports::RtpPort;
use crate::media::session::{MediaEvent, Session, SessionCommand};
use crate::media::uring::{MediaIo, Uring, watch_arrivals};

/// The media clock's period.
pub const TICK: Duration = Duration::from_millis(20);

/// Identifies a session inside the media engine.
pub type SessionId = u64;

const WORKER_BITS: u32 = 8;
const WORKER_MASK: u64 = (1 << WORKER_BITS) - 1;

/// Epoll tokens of the worker's own descriptors; session ids start above them.
const WAKE_TOKEN: u64 = 0;
const TIMER_TOKEN: u64 = 1;

/// A datagram burst larger than this is left for the next tick, so one flooded socket
/// cannot stall the clock (the kernel drops what its buffer cannot hold). A caller sends
/// one or two packets a tick; 64 absorbs a second of jitter-delayed audio in a few ticks.
const MAX_READS_PER_SOCKET: usize = 64;

/// Two datagrams closer together than this are a burst: the socket is read again.
const BURST_SPACING: Duration = Duration::from_millis(15);

/// Every this many ticks each socket is read until it is empty, whatever the arrival times
/// say: a backlog the times did not reveal lasts at most this long.
const DRAIN_EVERY: u64 = 5;

/// How often one session's refused packets are logged (they are counted every tick).
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(1);

/// Where a session's events go: the call that owns it. Called on the media thread, so it
/// must not block.
pub struct EventSink(Box<dyn FnMut(MediaEvent) + Send>);

impl EventSink {
    pub fn new(f: impl FnMut(MediaEvent) + Send + 'static) -> Self {
        EventSink(Box::new(f))
    }

    fn emit(&mut self, ev: MediaEvent) {
        (self.0)(ev)
    }
}

impl From<UnboundedSender<MediaEvent>> for EventSink {
    fn from(tx: UnboundedSender<MediaEvent>) -> Self {
        EventSink::new(move |ev| {
            // A call that has gone no longer cares.
            let _ = tx.send(ev);
        })
    }
}

/// A session with what the worker needs to serve it.
struct Served {
    session: Session,
    port: RtpPort,
    sink: EventSink,
    /// The session's packet counts already added to the worker's [`ClockStats`].
    counted: (u64, u64),
    /// The session's refusals (malformed, foreign, keys over the bound, SRTP
    /// authentication failures, SRTP replays) already added.
    refused: [u64; 5],
    /// When refusals of this session were last logged.
    logged_at: Option<Instant>,
    /// When the last datagram read from its socket arrived (kernel time, io_uring path).
    last_arrival: Option<Duration>,
}

impl Served {
    /// Whether the socket may hold more after a datagram that arrived at `arrived` was
    /// read at `read_at` (both kernel real time). A caller sends a packet per 20 ms or
    /// slower, so a datagram that arrived less than a tick ago, a normal spacing after
    /// the one before it, is the newest there is. One older than a tick, one close behind
    /// the previous (a burst after jitter, or a 10 ms packet time), or one without a time
    /// may have others behind it.
    fn may_hold_more(&mut self, arrived: Option<Duration>, read_at: Duration) -> bool {
        let prev = self.last_arrival;
        if arrived.is_some() {
            self.last_arrival = arrived;
        }
        may_hold_more(prev, arrived, read_at)
    }

    /// The packets received and sent since the last call.
    fn uncounted(&mut self) -> (u64, u64) {
        let now = (
            self.session.stats.packets_in,
            self.session.stats.packets_out,
        );
        let delta = (
            now.0.saturating_sub(self.counted.0),
            now.1.saturating_sub(self.counted.1),
        );
        self.counted = now;
        delta
    }

    /// Adds the session's new refusals to the worker's counters and logs them, at most
    /// once per [`REFUSAL_LOG_EVERY`] per session, so a flood costs one line a second.
    fn publish_refusals(&mut self, now: Instant, stats: &ClockStats) {
        let st = &self.session.stats;
        let totals = [
            st.malformed,
            st.foreign_dropped,
            st.keys_dropped,
            st.srtp_auth_failed,
            st.srtp_replayed,
        ];
        if totals == self.refused {
            return;
        }
        let [m, f, k, a, r] = [0, 1, 2, 3, 4].map(|i| totals[i].saturating_sub(self.refused[i]));
        stats.rtp_rejected_malformed.fetch_add(m, Ordering::Relaxed);
        stats.rtp_rejected_foreign.fetch_add(f, Ordering::Relaxed);
        stats.keys_dropped.fetch_add(k, Ordering::Relaxed);
        stats.srtp_auth_failed.fetch_add(a, Ordering::Relaxed);
        stats.srtp_replayed.fetch_add(r, Ordering::Relaxed);
        if self
            .logged_at
            .is_some_and(|t| now.saturating_duration_since(t) < REFUSAL_LOG_EVERY)
        {
            return;
        }
        let logged = std::mem::replace(&mut self.refused, totals);
        let [m, f, k, a, r] = [0, 1, 2, 3, 4].map(|i| totals[i].saturating_sub(logged[i]));
        self.logged_at = Some(now);
        if m + f + a + r > 0
            && let Some((source, reason)) = st.last_rejected
        {
            warn!(
                %source,
                reason = reason.as_str(),
                port = self.port.port,
                malformed = m,
                foreign = f,
                srtp_auth = a,
                srtp_replay = r,
                "RTP rejected"
            );
        }
        if k > 0 {
            warn!(
                port = self.port.port,
                dropped = k,
                reason = "key_rate",
                "keys dropped"
            );
        }
    }

    fn deliver(&mut self) {
        while let Some(ev) = self.session.poll_event() {
            self.sink.emit(ev);
        }
    }

    /// Sends the packet the session owes now, if any, with its own system call.
    fn transmit(&mut self, now: Instant, buf: &mut [u8], stats: &ClockStats) {
        if let Some(t) = self.session.poll_transmit(now, buf)
            && let Some(pkt) = buf.get(..t.len)
            // A send that fails (buffer full, ICMP error pending) loses one frame; the
            // next tick tries again.
            && self.port.socket.send_to(pkt, t.destination).is_err()
        {
            stats.send_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Queues the packet the session owes now, if any, for the tick's batched send,
    /// written straight into the ring's send buffer.
    fn queue_transmit(&mut self, now: Instant, ring: &mut Uring) {
        let session = &mut self.session;
        ring.queue_send_with(self.port.socket.as_raw_fd(), |buf| {
            session
                .poll_transmit(now, buf)
                .map(|t| (t.len, t.destination))
        });
    }

    /// Reads what is waiting on the socket: one datagram, or all of them when `drain`.
    fn receive(&mut self, now: Instant, buf: &mut [u8], drain: bool) {
        for _ in 0..MAX_READS_PER_SOCKET {
            match self.port.socket.recv_from(buf) {
                Ok((len, from)) => {
                    if let Some(data) = buf.get(..len) {
                        self.session.handle_packet(now, from, data);
                    }
                    if !drain {
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                // ICMP errors surface here on Linux and say nothing about our caller; the
                // error is consumed, so reading on is safe.
                Err(_) => {}
            }
        }
    }
}

/// See `Served::may_hold_more`; `prev` is when the datagram read before this one arrived.
fn may_hold_more(prev: Option<Duration>, arrived: Option<Duration>, read_at: Duration) -> bool {
    let Some(a) = arrived else {
        return true;
    };
    read_at.saturating_sub(a) >= TICK || prev.is_some_and(|p| a.saturating_sub(p) < BURST_SPACING)
}

enum Command {
    Add(SessionId, Box<Served>),
    Remove(SessionId),
    /// Relays audio both ways between two sessions of this worker.
    Bridge(SessionId, SessionId),
    /// Ends the bridge the session is in.
    Unbridge(SessionId),
    Session(SessionId, SessionCommand),
    Shutdown,
}

/// Figures the clock publishes for the admin API and the load tool.
#[derive(Debug, Default)]
pub struct ClockStats {
    pub sessions: AtomicUsize,
    pub ticks: AtomicU64,
    /// Ticks that started more than one period late (catch-up happened).
    pub late_ticks: AtomicU64,
    /// Worst lateness seen, in microseconds.
    pub max_lateness_us: AtomicU64,
    /// How late the ticks end, smoothed over the last few (an exponential average with a
    /// weight of 1/8, about 160 ms), in microseconds: what admission reads, so one stall
    /// of the machine does not refuse calls but a clock that keeps running late does.
    pub lateness_us: AtomicU64,
    /// RTP packets the kernel refused to send (each is one lost frame).
    pub send_errors: AtomicU64,
    /// RTP packets the sessions accepted (from the latched address) and sent. Added once
    /// per tick, not per packet.
    pub packets_in: AtomicU64,
    pub packets_out: AtomicU64,
    /// Frames sent late: every session's frame of a tick that started late.
    pub late_frames: AtomicU64,
    /// Datagrams on a call's port that were not RTP we can read.
    pub rtp_rejected_malformed: AtomicU64,
    /// RTP from an address other than the caller's media address (hijack attempts,
    /// strays): dropped, never learned.
    pub rtp_rejected_foreign: AtomicU64,
    /// Keys over a call's per-second bound (a storm of RFC 4733 events).
    pub keys_dropped: AtomicU64,
    /// SRTP packets whose authentication failed: dropped unread.
    pub srtp_auth_failed: AtomicU64,
    /// SRTP packets replayed or older than the replay window: dropped unread.
    pub srtp_replayed: AtomicU64,
    /// The worker sends and reads through io_uring (else `sendto`/`recvfrom`).
    pub uring: AtomicBool,
}

/// Wakes a worker out of its wait. Many commands between two wake-ups cost one write.
struct Waker {
    fd: EventFd,
    pending: AtomicBool,
}

impl Waker {
    fn wake(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            let _ = self.fd.write(1);
        }
    }

    /// Called by the worker before it drains its queue, so a command queued after the
    /// drain wakes it again. The counter is read *before* the flag is lowered: the other
    /// order lets a `wake` between the two write a count that this read then swallows,
    /// leaving the flag raised with nothing to read, so that no later command ever wakes
    /// the worker again (each then waited for the next tick: the lost tick of a key's
    /// answer).
    fn clear(&self) {
        self.clear_with(|| {});
    }

    /// `clear`, with `between` run where another thread's `wake` may land.
    fn clear_with(&self, between: impl FnOnce()) {
        let _ = self.fd.read();
        between();
        // A swap, not a store: reading the flag a `wake` raised makes that command's
        // send visible to the drain that follows.
        self.pending.swap(false, Ordering::AcqRel);
    }
}

struct Worker {
    tx: Sender<Command>,
    waker: Arc<Waker>,
    handle: Option<JoinHandle<()>>,
}

impl Worker {
    fn send(&self, cmd: Command) {
        if self.tx.send(cmd).is_ok() {
            self.waker.wake();
        }
    }
}

/// A handle on the media workers. Cheap to clone; the workers stop when `shutdown` is called
/// or the last handle is dropped.
#[derive(Clone)]
pub struct MediaEngine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    workers: Vec<Worker>,
    next_id: AtomicU64,
    stats: Vec<Arc<ClockStats>>,
}

impl Drop for EngineInner {
    fn drop(&mut self) {
        for w in &mut self.workers {
            w.send(Command::Shutdown);
            if let Some(h) = w.handle.take() {
                let _ = h.join();
            }
        }
    }
}

impl MediaEngine {
    /// Starts `workers` media threads (at least one), with the IO path that
    /// `HOTLINE_MEDIA_IO` asks for (io_uring unless it says `sendto`).
    pub fn start(workers: usize) -> std::io::Result<Self> {
        Self::start_with(workers, MediaIo::from_env())
    }

    /// Starts `workers` media threads that move their datagrams with `io`. A worker
    /// asked for io_uring that cannot set a ring up uses `sendto` (and says so in the log
    /// and in `ClockStats::uring`).
    pub fn start_with(workers: usize, io: MediaIo) -> std::io::Result<Self> {
        let mut ws = Vec::new();
        let mut stats = Vec::new();
        for i in 0..workers.max(1) {
            let (tx, rx) = mpsc::channel();
            let waker = Arc::new(Waker {
                fd: EventFd::from_value_and_flags(
                    0,
                    EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC,
                )?,
                pending: AtomicBool::new(false),
            });
            let st = Arc::new(ClockStats::default());
            let clock = Clock::new(rx, waker.clone(), st.clone())?;
            let handle = std::thread::Builder::new()
                .name(format!("media-{i}"))
                // Workers tick out of phase (worker i of n starts i/n of a tick later), so
                // on a machine with few cores they do not all wake at the same instant.
                .spawn(move || clock.run(io, TICK * i as u32 / workers.max(1) as u32))?;
            ws.push(Worker {
                tx,
                waker,
                handle: Some(handle),
            });
            stats.push(st);
        }
        Ok(MediaEngine {
            inner: Arc::new(EngineInner {
                workers: ws,
                next_id: AtomicU64::new(1),
                stats,
            }),
        })
    }

    /// A session id carries its worker in the low bits, so a session added beside another
    /// lands on the same worker (bridged sessions must share one).
    fn worker(&self, id: SessionId) -> &Worker {
        let n = self.inner.workers.len();
        &self.inner.workers[(id & WORKER_MASK) as usize % n]
    }

    /// Hands a session and its RTP port to a worker; it starts sending at the next tick.
    /// Its events go to `sink`.
    pub fn add(&self, port: RtpPort, session: Session, sink: impl Into<EventSink>) -> SessionId {
        let seq = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let worker = seq % self.inner.workers.len() as u64;
        self.add_on(worker, seq, port, session, sink.into())
    }

    /// Hands a session to the worker that serves `beside`, so the two can be bridged.
    pub fn add_beside(
        &self,
        beside: SessionId,
        port: RtpPort,
        session: Session,
        sink: impl Into<EventSink>,
    ) -> SessionId {
        let seq = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.add_on(beside & WORKER_MASK, seq, port, session, sink.into())
    }

    fn add_on(
        &self,
        worker: u64,
        seq: u64,
        port: RtpPort,
        session: Session,
        sink: EventSink,
    ) -> SessionId {
        let id = (seq << WORKER_BITS) | worker;
        let served = Box::new(Served {
            session,
            port,
            sink,
            counted: (0, 0),
            refused: [0; 5],
            logged_at: None,
            last_arrival: None,
        });
        self.worker(id).send(Command::Add(id, served));
        id
    }

    /// Relays audio (and RFC 4733 keys) both ways between `a` and `b`, which must have been
    /// added beside each other. A prompt played on either side is heard instead of the
    /// other side's audio while it plays.
    pub fn bridge(&self, a: SessionId, b: SessionId) {
        self.worker(a).send(Command::Bridge(a, b));
    }

    pub fn unbridge(&self, a: SessionId) {
        self.worker(a).send(Command::Unbridge(a));
    }

    pub fn command(&self, id: SessionId, cmd: SessionCommand) {
        self.worker(id).send(Command::Session(id, cmd));
    }

    /// Removes the session; its RTP port goes back to the pool.
    pub fn remove(&self, id: SessionId) {
        self.worker(id).send(Command::Remove(id));
    }

    /// The worst worker's smoothed lateness (see [`ClockStats::lateness_us`]); a few
    /// atomic loads.
    pub fn lateness(&self) -> Duration {
        let us = self
            .inner
            .stats
            .iter()
            .map(|s| s.lateness_us.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        Duration::from_micros(us)
    }

    pub fn stats(&self) -> &[Arc<ClockStats>] {
        &self.inner.stats
    }

    pub fn session_count(&self) -> usize {
        self.inner
            .stats
            .iter()
            .map(|s| s.sessions.load(Ordering::Relaxed))
            .sum()
    }
}

/// One worker's state, moved onto its thread.
struct Clock {
    rx: Receiver<Command>,
    waker: Arc<Waker>,
    /// Waits for a command or the timer; never for a socket, so packets cost no wake-up.
    wake: Epoll,
    timer: TimerFd,
    /// Every session socket when the worker sends with `sendto`; asked once per tick
    /// which have data. A worker with a ring reads every socket without it.
    sockets: Epoll,
    /// Sockets to read again in the next pass of a tick's batched read.
    again: Vec<SessionId>,
    /// Ticks since the batched read last read every socket until it was empty.
    since_drain: u64,
    ready: Vec<EpollEvent>,
    /// Boxed: a map keeps room for up to twice its entries, and a session is kilobytes.
    sessions: HashMap<SessionId, Box<Served>>,
    bridges: Vec<(SessionId, SessionId)>,
    /// Sessions whose frame of this tick waits for the call's answer to a key.
    held: Vec<SessionId>,
    buf: Vec<u8>,
    /// The tick's sends and reads in one system call each; `None`: one call per packet.
    ring: Option<Uring>,
    /// A ring that failed. It is kept, never used again, because the kernel may not be
    /// done with the buffers its last submission pointed to.
    failed_ring: Option<Uring>,
    stats: Arc<ClockStats>,
}

impl Clock {
    fn new(
        rx: Receiver<Command>,
        waker: Arc<Waker>,
        stats: Arc<ClockStats>,
    ) -> std::io::Result<Self> {
        let wake = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        wake.add(
            waker.fd.as_fd(),
            EpollEvent::new(EpollFlags::EPOLLIN, WAKE_TOKEN),
        )?;
        wake.add(
            timer.as_fd(),
            EpollEvent::new(EpollFlags::EPOLLIN, TIMER_TOKEN),
        )?;
        Ok(Clock {
            rx,
            waker,
            wake,
            timer,
            sockets: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?,
            again: Vec::new(),
            since_drain: 0,
            ready: vec![EpollEvent::empty(); 64],
            sessions: HashMap::new(),
            bridges: Vec::new(),
            held: Vec::new(),
            buf: vec![0u8; 2048],
            ring: None,
            failed_ring: None,
            stats,
        })
    }

    /// Sets up the ring on the worker's own thread (the thread that will submit to it).
    fn choose_io(&mut self, io: MediaIo) {
        if io == MediaIo::Sendto {
            info!("media worker sends with sendto ({}=sendto)", MediaIo::ENV);
            return;
        }
        match Uring::new() {
            Ok(ring) => {
                self.ring = Some(ring);
                self.stats.uring.store(true, Ordering::Relaxed);
            }
            Err(e) => warn!(
                error = %e,
                "io_uring unavailable; the media worker sends with one sendto per packet"
            ),
        }
    }

    /// Stops using a ring that returned an error; the worker carries on with `sendto`.
    fn ring_failed(&mut self, e: &std::io::Error) {
        warn!(error = %e, "io_uring failed; the media worker falls back to sendto");
        self.failed_ring = self.ring.take();
        if let Some(r) = self.failed_ring.as_mut() {
            r.unregister_all();
        }
        self.stats.uring.store(false, Ordering::Relaxed);
        for (id, s) in &self.sessions {
            self.watch(*id, s);
        }
    }

    /// Adds a session's socket to the epoll set the `sendto` path reads by.
    fn watch(&self, id: SessionId, s: &Served) {
        let ev = EpollEvent::new(EpollFlags::EPOLLIN, id);
        if let Err(e) = self.sockets.add(s.port.socket.as_fd(), ev) {
            warn!(port = s.port.port, error = %e, "RTP socket not watched; its audio is not heard");
        }
    }

    fn run(mut self, io: MediaIo, phase: Duration) {
        self.choose_io(io);
        let stats = self.stats.clone();
        let mut next = Instant::now() + TICK + phase;
        let mut woke = [EpollEvent::empty(); 2];
        loop {
            if !self.commands() {
                return;
            }
            let now = Instant::now();
            if now >= next {
                stats.sessions.store(self.sessions.len(), Ordering::Relaxed);
                self.tick(now);
                stats.ticks.fetch_add(1, Ordering::Relaxed);
                // Absolute deadlines: the clock does not drift with the work done in a tick.
                // If a tick ran long, the next starts at once (a short burst) rather than
                // skipping frames, because skipped frames would be heard as gaps.
                next += TICK;
                let after = Instant::now();
                let sample = after.saturating_duration_since(next).as_micros() as u64;
                let smoothed = stats.lateness_us.load(Ordering::Relaxed);
                stats
                    .lateness_us
                    .store(smoothed - smoothed / 8 + sample / 8, Ordering::Relaxed);
                if after > next {
                    let late = after.duration_since(next);
                    stats.late_ticks.fetch_add(1, Ordering::Relaxed);
                    stats
                        .late_frames
                        .fetch_add(self.sessions.len() as u64, Ordering::Relaxed);
                    stats
                        .max_lateness_us
                        .fetch_max(late.as_micros() as u64, Ordering::Relaxed);
                    if late > TICK * 5 {
                        // Far behind (the machine stalled): resynchronise instead of bursting.
                        next = after;
                    }
                }
            }
            let now = Instant::now();
            self.release_held(now);
            let deadline = self.held_deadline().map_or(next, |h| h.min(next));
            if deadline <= now {
                continue;
            }
            let wait = TimeSpec::from(deadline - now);
            if self
                .timer
                .set(Expiration::OneShot(wait), TimerSetTimeFlags::empty())
                .is_err()
            {
                std::thread::sleep(deadline - now);
                continue;
            }
            // EINTR counts as nothing reported: look at the time and the queue again.
            let n = self
                .wake
                .wait(&mut woke, EpollTimeout::NONE)
                .unwrap_or_default();
            for e in &woke[..n] {
                match e.data() {
                    WAKE_TOKEN => self.waker.clear(),
                    _ => {
                        let mut expirations = [0u8; 8];
                        let _ = nix::unistd::read(&self.timer, &mut expirations);
                    }
                }
            }
        }
    }

    /// Applies every queued command. Returns false when the worker must stop.
    fn commands(&mut self) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(Command::Add(id, s)) => {
                    match self.ring.as_mut() {
                        None => self.watch(id, &s),
                        Some(ring) => {
                            let fd = s.port.socket.as_raw_fd();
                            ring.register(fd);
                            if let Err(e) = watch_arrivals(fd) {
                                // Without arrival times the socket is read twice a tick.
                                warn!(port = s.port.port, error = %e, "RTP arrivals not timed");
                            }
                        }
                    }
                    self.sessions.insert(id, s);
                }
                Ok(Command::Remove(id)) => {
                    self.unbridge(id);
                    if let Some(mut s) = self.sessions.remove(&id) {
                        match self.ring.as_mut() {
                            // Before the socket closes: a registered socket stays open.
                            Some(ring) => ring.unregister(s.port.socket.as_raw_fd()),
                            None => {
                                let _ = self.sockets.delete(s.port.socket.as_fd());
                            }
                        }
                        self.count_packets(s.uncounted());
                        s.logged_at = None;
                        s.publish_refusals(Instant::now(), &self.stats);
                    }
                }
                Ok(Command::Bridge(a, b)) => {
                    self.unbridge(a);
                    self.unbridge(b);
                    if let [Some(x), Some(y)] = self.sessions.get_disjoint_mut([&a, &b]) {
                        x.session.set_bridged(true);
                        y.session.set_bridged(true);
                        self.bridges.push((a, b));
                    }
                }
                Ok(Command::Unbridge(a)) => self.unbridge(a),
                Ok(Command::Session(id, cmd)) => {
                    if let Some(s) = self.sessions.get_mut(&id) {
                        let now = Instant::now();
                        s.session.command(cmd, now);
                        // The answer to a key: the held frame (now the new prompt's first)
                        // goes at once.
                        s.transmit(now, &mut self.buf, &self.stats);
                        s.deliver();
                    }
                }
                Ok(Command::Shutdown) | Err(TryRecvError::Disconnected) => return false,
                Err(TryRecvError::Empty) => return true,
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        // A held frame whose release this thread woke too late for (a busy machine) goes
        // now, late, rather than being dropped by the session's next tick.
        self.release_held(now);
        self.receive(now);
        for s in self.sessions.values_mut() {
            s.session.tick(now);
        }
        for (a, b) in &self.bridges {
            if let [Some(x), Some(y)] = self.sessions.get_disjoint_mut([a, b]) {
                relay_pair(&mut x.session, &mut y.session);
            }
        }
        self.held.clear();
        // Packets sent outside a tick (an answer to a key, a held frame) are counted in
        // the next one.
        let mut packets = (0, 0);
        for (id, s) in self.sessions.iter_mut() {
            match self.ring.as_mut() {
                Some(ring) => s.queue_transmit(now, ring),
                None => s.transmit(now, &mut self.buf, &self.stats),
            }
            if s.session.poll_timeout().is_some() {
                self.held.push(*id);
            }
            s.deliver();
            s.publish_refusals(now, &self.stats);
            let (i, o) = s.uncounted();
            packets = (packets.0 + i, packets.1 + o);
        }
        self.count_packets(packets);
        if let Some(ring) = self.ring.as_mut() {
            // The sockets are the sessions', and no session leaves before this returns.
            match ring.flush_sends() {
                Ok(r) => {
                    self.stats
                        .send_errors
                        .fetch_add(r.failed, Ordering::Relaxed);
                }
                Err(e) => self.ring_failed(&e),
            }
        }
    }

    /// Publishes packet counts: one atomic add per direction and tick, not one per packet.
    fn count_packets(&self, (received, sent): (u64, u64)) {
        if received > 0 {
            self.stats.packets_in.fetch_add(received, Ordering::Relaxed);
        }
        if sent > 0 {
            self.stats.packets_out.fetch_add(sent, Ordering::Relaxed);
        }
    }

    /// Reads what the sockets received: with a ring, every socket (see
    /// `receive_batched`); otherwise the sockets epoll says have data. The first pass
    /// takes one datagram from each, which is nearly always all there is (one frame per
    /// tick); a socket still readable in the second pass had a burst and is drained.
    fn receive(&mut self, now: Instant) {
        if self.ring.is_some() {
            if let Err(e) = self.receive_batched(now) {
                self.ring_failed(&e);
            }
            return;
        }
        let want = self.sessions.len().max(64);
        if self.ready.len() < want {
            self.ready.resize(want, EpollEvent::empty());
        }
        for drain in [false, true] {
            let n = match self.sockets.wait(&mut self.ready, EpollTimeout::ZERO) {
                Ok(n) => n,
                Err(_) => return,
            };
            if n == 0 {
                return;
            }
            for e in &self.ready[..n] {
                if let Some(s) = self.sessions.get_mut(&e.data()) {
                    s.receive(now, &mut self.buf, drain);
                }
            }
        }
    }

    /// The batched form of `receive`: each pass reads one datagram from every socket it
    /// asks, all in one submission. The first pass asks every socket: an empty one costs
    /// a failed read inside the submission, not a system call, and no epoll means no
    /// wake-up work on every packet the socket sends or receives. A later pass asks only
    /// the sockets whose datagram may have others behind it (`Served::may_hold_more`),
    /// and every `DRAIN_EVERY` ticks every socket that gave one. A socket is read at
    /// most `MAX_READS_PER_SOCKET` times per tick.
    fn receive_batched(&mut self, now: Instant) -> std::io::Result<()> {
        let Some(ring) = self.ring.as_mut() else {
            return Ok(());
        };
        let (sessions, again) = (&mut self.sessions, &mut self.again);
        self.since_drain += 1;
        let drain = self.since_drain >= DRAIN_EVERY;
        if drain {
            self.since_drain = 0;
        }
        let read_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        again.clear();
        ring.clear_recvs();
        for (id, s) in sessions.iter() {
            ring.queue_recv(*id, s.port.socket.as_raw_fd());
        }
        for pass in 0..MAX_READS_PER_SOCKET {
            if pass > 0 {
                if again.is_empty() {
                    break;
                }
                ring.clear_recvs();
                for id in again.drain(..) {
                    if let Some(s) = sessions.get(&id) {
                        ring.queue_recv(id, s.port.socket.as_raw_fd());
                    }
                }
            }
            // The sockets are the sessions', and no session leaves before this returns.
            ring.receive()?;
            for r in ring.received() {
                if let Some(s) = sessions.get_mut(&r.token) {
                    s.session.handle_packet(now, r.from, r.data);
                    if s.may_hold_more(r.arrived, read_at) || drain {
                        again.push(r.token);
                    }
                }
            }
        }
        ring.clear_recvs();
        Ok(())
    }

    /// Sends the held frames whose wait is over.
    fn release_held(&mut self, now: Instant) {
        let (sessions, buf, stats) = (&mut self.sessions, &mut self.buf, &self.stats);
        self.held.retain(|id| {
            let Some(s) = sessions.get_mut(id) else {
                return false;
            };
            s.transmit(now, buf, stats);
            s.deliver();
            s.session.poll_timeout().is_some()
        });
    }

    fn held_deadline(&self) -> Option<Instant> {
        self.held
            .iter()
            .filter_map(|id| self.sessions.get(id)?.session.poll_timeout())
            .min()
    }

    /// Removes the bridge `id` is in, if any, and stops both sides relaying.
    fn unbridge(&mut self, id: SessionId) {
        let sessions = &mut self.sessions;
        self.bridges.retain(|&(a, b)| {
            if a != id && b != id {
                return true;
            }
            for s in [a, b] {
                if let Some(s) = sessions.get_mut(&s) {
                    s.session.set_bridged(false);
                }
            }
            false
        });
    }
}

fn relay_pair(x: &mut Session, y: &mut Session) {
    let (Some(bx), Some(by)) = (x.bridge_buffers(), y.bridge_buffers()) else {
        return;
    };
    let to_y = relay(bx, by);
    let to_x = relay(by, bx);
    if let Some(k) = to_y {
        y.send_key(k);
    }
    if let Some(k) = to_x {
        x.send_key(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waker() -> Waker {
        Waker {
            fd: EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
                .expect("eventfd"),
            pending: AtomicBool::new(false),
        }
    }

    fn readable(w: &Waker) -> bool {
        // Non-blocking: a read succeeds only when a wake wrote a count.
        w.fd.read().is_ok()
    }

    #[test]
    fn a_wake_during_clear_does_not_silence_later_wakes() {
        let w = waker();
        w.wake();
        // The worker clears while another thread wakes it (that command is drained
        // right after the clear).
        w.clear_with(|| w.wake());
        w.wake();
        assert!(
            readable(&w),
            "a command queued after the drain must wake the worker"
        );
    }

    #[test]
    fn a_socket_is_read_again_after_an_old_datagram_a_burst_or_one_without_a_time() {
        let ms = Duration::from_millis;
        let read_at = ms(10_000);
        // The newest of a steady 20 ms stream, and of a slower one: nothing behind it.
        assert!(!may_hold_more(Some(ms(9_975)), Some(ms(9_995)), read_at));
        assert!(!may_hold_more(Some(ms(9_955)), Some(ms(9_985)), read_at));
        assert!(!may_hold_more(None, Some(ms(9_990)), read_at));
        // Older than a tick: the next may have come.
        assert!(may_hold_more(Some(ms(9_960)), Some(ms(9_980)), read_at));
        // Close behind the one before: a burst after jitter, or 10 ms packets.
        assert!(may_hold_more(Some(ms(9_995)), Some(ms(9_996)), read_at));
        assert!(may_hold_more(Some(ms(9_985)), Some(ms(9_995)), read_at));
        // No arrival time: read until empty.
        assert!(may_hold_more(Some(ms(9_995)), None, read_at));
    }

    #[test]
    fn many_wakes_between_two_clears_cost_one_write() {
        let w = waker();
        for _ in 0..5 {
            w.wake();
        }
        assert_eq!(w.fd.read().expect("a count"), 1);
        w.pending.swap(false, Ordering::AcqRel);
        w.wake();
        w.clear();
        assert!(!readable(&w));
    }
}
