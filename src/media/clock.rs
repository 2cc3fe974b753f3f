//! The media clock: one OS thread per media worker that wakes every 20 ms and serves every
//! session it holds (drain what arrived, send one frame). Ten thousand calls cost one
//! wake-up per tick, not one timer each. Calls talk to it through a command queue that is
//! drained at the start of each tick; it talks back through each session's event channel.
//!
//! The clock never blocks on a call and never allocates per packet; what it does per session
//! per tick is a recv loop that ends in EWOULDBLOCK and one send.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::media::bridge::relay;
use crate::media::session::{Session, SessionCommand};

/// The media clock's period.
pub const TICK: Duration = Duration::from_millis(20);

/// Identifies a session inside the media engine.
pub type SessionId = u64;

const WORKER_BITS: u32 = 8;
const WORKER_MASK: u64 = (1 << WORKER_BITS) - 1;

enum Command {
    Add(SessionId, Box<Session>),
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
}

struct Worker {
    tx: Sender<Command>,
    handle: Option<JoinHandle<()>>,
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
            let _ = w.tx.send(Command::Shutdown);
            if let Some(h) = w.handle.take() {
                let _ = h.join();
            }
        }
    }
}

impl MediaEngine {
    /// Starts `workers` media threads (at least one).
    pub fn start(workers: usize) -> std::io::Result<Self> {
        let mut ws = Vec::new();
        let mut stats = Vec::new();
        for i in 0..workers.max(1) {
            let (tx, rx) = mpsc::channel();
            let st = Arc::new(ClockStats::default());
            let st2 = st.clone();
            let handle = std::thread::Builder::new()
                .name(format!("media-{i}"))
                .spawn(move || run(rx, st2))?;
            ws.push(Worker {
                tx,
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

    /// Hands a session to a worker; it starts sending at the next tick.
    pub fn add(&self, session: Session) -> SessionId {
        let seq = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let worker = seq % self.inner.workers.len() as u64;
        self.add_on(worker, seq, session)
    }

    /// Hands a session to the worker that serves `beside`, so the two can be bridged.
    pub fn add_beside(&self, beside: SessionId, session: Session) -> SessionId {
        let seq = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.add_on(beside & WORKER_MASK, seq, session)
    }

    fn add_on(&self, worker: u64, seq: u64, session: Session) -> SessionId {
        let id = (seq << WORKER_BITS) | worker;
        let _ = self.worker(id).tx.send(Command::Add(id, Box::new(session)));
        id
    }

    /// Relays audio (and RFC 4733 keys) both ways between `a` and `b`, which must have been
    /// added beside each other. A prompt played on either side is heard instead of the
    /// other side's audio while it plays.
    pub fn bridge(&self, a: SessionId, b: SessionId) {
        let _ = self.worker(a).tx.send(Command::Bridge(a, b));
    }

    pub fn unbridge(&self, a: SessionId) {
        let _ = self.worker(a).tx.send(Command::Unbridge(a));
    }

    pub fn command(&self, id: SessionId, cmd: SessionCommand) {
        let _ = self.worker(id).tx.send(Command::Session(id, cmd));
    }

    /// Removes the session; its RTP port goes back to the pool.
    pub fn remove(&self, id: SessionId) {
        let _ = self.worker(id).tx.send(Command::Remove(id));
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

fn run(rx: Receiver<Command>, stats: Arc<ClockStats>) {
    let mut sessions: HashMap<SessionId, Box<Session>> = HashMap::new();
    let mut bridges: Vec<(SessionId, SessionId)> = Vec::new();
    let mut buf = vec![0u8; 2048];
    let mut next = Instant::now() + TICK;
    loop {
        // Commands first, so a Play or Stop issued during the last period takes effect now.
        loop {
            match rx.try_recv() {
                Ok(Command::Add(id, s)) => {
                    sessions.insert(id, s);
                }
                Ok(Command::Remove(id)) => {
                    unbridge(&mut sessions, &mut bridges, id);
                    sessions.remove(&id);
                }
                Ok(Command::Bridge(a, b)) => {
                    unbridge(&mut sessions, &mut bridges, a);
                    unbridge(&mut sessions, &mut bridges, b);
                    if let [Some(x), Some(y)] = sessions.get_disjoint_mut([&a, &b]) {
                        x.set_bridged(true);
                        y.set_bridged(true);
                        bridges.push((a, b));
                    }
                }
                Ok(Command::Unbridge(a)) => unbridge(&mut sessions, &mut bridges, a),
                Ok(Command::Session(id, cmd)) => {
                    if let Some(s) = sessions.get_mut(&id) {
                        s.command(cmd, Instant::now());
                    }
                }
                Ok(Command::Shutdown) | Err(TryRecvError::Disconnected) => return,
                Err(TryRecvError::Empty) => break,
            }
        }
        stats.sessions.store(sessions.len(), Ordering::Relaxed);
        let now = Instant::now();
        for s in sessions.values_mut() {
            s.receive_phase(now, &mut buf);
        }
        for (a, b) in &bridges {
            if let [Some(x), Some(y)] = sessions.get_disjoint_mut([a, b]) {
                relay_pair(x, y);
            }
        }
        for s in sessions.values_mut() {
            s.send_phase(&mut buf);
        }
        stats.ticks.fetch_add(1, Ordering::Relaxed);

        // Absolute deadlines: the clock does not drift with the work done in a tick. If a
        // tick ran long, the next starts at once (a short burst) rather than skipping frames,
        // because skipped frames would be heard as gaps.
        let after = Instant::now();
        if after > next {
            let late = after.duration_since(next);
            stats.late_ticks.fetch_add(1, Ordering::Relaxed);
            stats
                .max_lateness_us
                .fetch_max(late.as_micros() as u64, Ordering::Relaxed);
            if late > TICK * 5 {
                // Far behind (the machine stalled): resynchronise instead of bursting.
                next = after;
            }
        } else {
            std::thread::sleep(next - after);
        }
        next += TICK;
    }
}

/// Removes the bridge `id` is in, if any, and stops both sides relaying.
fn unbridge(
    sessions: &mut HashMap<SessionId, Box<Session>>,
    bridges: &mut Vec<(SessionId, SessionId)>,
    id: SessionId,
) {
    bridges.retain(|&(a, b)| {
        if a != id && b != id {
            return true;
        }
        for s in [a, b] {
            if let Some(s) = sessions.get_mut(&s) {
                s.set_bridged(false);
            }
        }
        false
    });
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
