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

use crate::media::session::{Session, SessionCommand};

/// The media clock's period.
pub const TICK: Duration = Duration::from_millis(20);

/// Identifies a session inside the media engine.
pub type SessionId = u64;

enum Command {
    Add(SessionId, Box<Session>),
    Remove(SessionId),
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

    fn worker(&self, id: SessionId) -> &Worker {
        let n = self.inner.workers.len() as u64;
        &self.inner.workers[(id % n) as usize]
    }

    /// Hands a session to a worker; it starts sending at the next tick.
    pub fn add(&self, session: Session) -> SessionId {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let _ = self.worker(id).tx.send(Command::Add(id, Box::new(session)));
        id
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
                    sessions.remove(&id);
                }
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
            s.tick(now, &mut buf);
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
