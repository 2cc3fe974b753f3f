//! The records writer: the thread between calls and the store, so that writing never
//! delays a call.
//!
//! Owns the bounded queue calls send into (through [`RecordSink`]), the batching (a
//! message waits at most `max_delay` before its batch is committed), retries with
//! back-off while the store is down, the spool for what cannot be queued or finally cannot
//! be written (replayed before any new write once the store answers), marking the rows an
//! earlier run left open as interrupted, the retention sweep, and the counters. It must
//! not block a caller of [`Deliver::deliver`] (except to fsync the spool when the queue is
//! full) and must not build or interpret records.
//!
//! Order at start: open the store, replay the spool, mark open rows interrupted, then the
//! new messages, which have waited in the queue meanwhile. Writes are idempotent and
//! order-independent (see [`Store`]), so a message replayed twice or after a later one
//! changes nothing.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::{error, info, warn};

use super::journal::{Journal, begins};
use super::spool::Spool;
use super::store::{Store, StoreError};
use super::{Deliver, RecordMsg, RecordSink, SinkCounters};

/// Opens the store (again, after a failure) with its schema up to date.
pub type Opener = Box<dyn FnMut() -> Result<Box<dyn Store>, StoreError> + Send>;

#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Messages the queue holds; beyond, they go straight to the spool.
    pub queue: usize,
    /// The longest a message waits for its batch to be committed.
    pub max_delay: Duration,
    /// The most messages in one transaction.
    pub max_batch: usize,
    /// How long a batch is retried before it goes to the spool.
    pub retry_for: Duration,
    /// The first and the longest pause between attempts while the store fails.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Rows older than this are deleted; None keeps them.
    pub keep: Option<Duration>,
    pub retention_every: Duration,
    pub retention_batch: usize,
    /// The spool file.
    pub spool: PathBuf,
    /// The journal of calls begun (beside the spool: `records.journal`).
    pub journal: PathBuf,
}

impl WriterConfig {
    pub fn new(spool: PathBuf) -> WriterConfig {
        WriterConfig {
            queue: 65_536,
            max_delay: Duration::from_millis(200),
            max_batch: 2_000,
            retry_for: Duration::from_secs(10),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            keep: None,
            retention_every: Duration::from_secs(3600),
            retention_batch: 1_000,
            journal: spool.with_extension("journal"),
            spool,
        }
    }
}

/// What the writer did before taking new messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Startup {
    /// Spooled messages written.
    pub replayed: u64,
    /// Calls an earlier run left open, now `interrupted`.
    pub interrupted: u64,
    /// Calls an earlier run journalled as begun (some of them in the store already).
    pub journalled: u64,
}

enum Cmd {
    /// Boxed: the queue's slots are allocated up front, 64k of them.
    Msg(Box<RecordMsg>),
    /// Answered once every message sent before it is written or spooled.
    Flush(mpsc::Sender<()>),
    /// Only wakes the thread; `stop` says why.
    Wake,
}

/// The writer's handle. Dropping it stops the thread after writing (or spooling) every
/// message queued.
pub struct Writer {
    tx: SyncSender<Cmd>,
    closed: Arc<RwLock<bool>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<SinkCounters>,
    spool: Arc<Spool>,
    journal: Arc<Journal>,
    ready: Mutex<Receiver<Result<Startup, String>>>,
}

/// The sink's side: puts messages in the queue, or in the spool when it is full.
struct Queue {
    tx: SyncSender<Cmd>,
    /// Set by the thread before its last look at the queue: from then on, spool.
    closed: Arc<RwLock<bool>>,
    counters: Arc<SinkCounters>,
    spool: Arc<Spool>,
    journal: Arc<Journal>,
}

impl Deliver for Queue {
    fn deliver(&self, msg: RecordMsg) {
        self.counters.pending.fetch_add(1, Ordering::Relaxed);
        // A Begin is journalled first, and queued while the journal is held.
        let _journal = match self.journal.begin(&msg) {
            Ok(held) => Some(held),
            Err(e) => {
                warn!(journal = %self.journal.path().display(), error = %e,
                    "cannot journal a call's begin; a kill now would lose its record");
                None
            }
        };
        let msg = {
            // Held across the send, so the thread's last look cannot miss this message.
            let closed = self.closed.read().unwrap_or_else(|p| p.into_inner());
            if *closed {
                msg
            } else {
                match self.tx.try_send(Cmd::Msg(Box::new(msg))) {
                    Ok(()) => return,
                    Err(
                        TrySendError::Full(Cmd::Msg(m)) | TrySendError::Disconnected(Cmd::Msg(m)),
                    ) => *m,
                    Err(_) => return,
                }
            }
        };
        drop(_journal);
        spool_or_count(
            &self.spool,
            &self.counters,
            &self.journal,
            std::slice::from_ref(&msg),
        );
    }
}

/// Puts messages in the spool; if even that fails they are lost, and said so. Either way
/// their Begins are settled in the journal (the spool is on disk; what is lost is counted).
fn spool_or_count(spool: &Spool, counters: &SinkCounters, journal: &Journal, msgs: &[RecordMsg]) {
    settle(journal, msgs);
    let n = msgs.len() as u64;
    match spool.append(msgs) {
        Ok(()) => {
            counters.spooled.fetch_add(n, Ordering::Relaxed);
        }
        Err(e) => {
            counters.lost.fetch_add(n, Ordering::Relaxed);
            error!(spool = %spool.path().display(), error = %e, messages = n,
                "call records lost: the store and the spool both failed");
        }
    }
    counters.pending.fetch_sub(n, Ordering::Relaxed);
}

/// The Begins of `msgs` reached the store or the spool: the journal may forget them.
fn settle(journal: &Journal, msgs: &[RecordMsg]) {
    if let Err(e) = journal.settled(begins(msgs)) {
        warn!(journal = %journal.path().display(), error = %e, "cannot empty the journal of calls begun");
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Writer {
    /// Starts the thread. `started_ms` is the engine's start: rows still open that
    /// started before it were left by an earlier run.
    pub fn start(opener: Opener, config: WriterConfig, started_ms: i64) -> std::io::Result<Writer> {
        let (tx, rx) = mpsc::sync_channel(config.queue.max(1));
        let (ready_tx, ready_rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(SinkCounters::default());
        let spool = Arc::new(Spool::new(config.spool.clone()));
        let journal = Arc::new(Journal::new(config.journal.clone()));
        let now = Instant::now();
        let closed = Arc::new(RwLock::new(false));
        let worker = Worker {
            rx,
            closed: closed.clone(),
            stop: stop.clone(),
            counters: counters.clone(),
            spool: spool.clone(),
            journal: journal.clone(),
            journal_replayed: false,
            opener,
            store: None,
            started_ms,
            interrupted: false,
            down: false,
            next_attempt: now,
            backoff: config.backoff_min,
            next_retention: now,
            ready: Some(ready_tx),
            startup: Startup::default(),
            config,
        };
        let thread = std::thread::Builder::new()
            .name("records-writer".to_owned())
            .spawn(move || worker.run())?;
        Ok(Writer {
            tx,
            closed,
            stop,
            thread: Some(thread),
            counters,
            spool,
            journal,
            ready: Mutex::new(ready_rx),
        })
    }

    /// The sink calls send through.
    pub fn sink(&self) -> RecordSink {
        RecordSink::with_counters(self.deliverer(), self.counters.clone())
    }

    /// The writer's side of a sink, to be combined with other deliverers ([`super::FanOut`]).
    pub fn deliverer(&self) -> Arc<dyn Deliver> {
        Arc::new(Queue {
            tx: self.tx.clone(),
            closed: self.closed.clone(),
            counters: self.counters.clone(),
            spool: self.spool.clone(),
            journal: self.journal.clone(),
        })
    }

    pub fn counters(&self) -> Arc<SinkCounters> {
        self.counters.clone()
    }

    /// Waits for the writer's first contact with the store: what it replayed and marked
    /// interrupted, or why the store could not be used (the writer keeps trying). None if
    /// it has not answered in time.
    pub fn wait_ready(&self, timeout: Duration) -> Option<Result<Startup, String>> {
        let rx = self.ready.lock().unwrap_or_else(|p| p.into_inner());
        rx.recv_timeout(timeout).ok()
    }

    /// Waits until every message sent before is written or spooled. False on timeout.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (ack_tx, ack_rx) = mpsc::channel();
        let deadline = Instant::now() + timeout;
        let mut cmd = Cmd::Flush(ack_tx);
        loop {
            match self.tx.try_send(cmd) {
                Ok(()) => break,
                Err(TrySendError::Full(c)) if Instant::now() < deadline => {
                    cmd = c;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return false,
            }
        }
        ack_rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }

    /// Stops the thread once what is queued is written or spooled. Messages sent later
    /// go to the spool.
    pub fn shutdown(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.tx.try_send(Cmd::Wake);
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            error!("the records writer panicked");
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

struct Worker {
    rx: Receiver<Cmd>,
    closed: Arc<RwLock<bool>>,
    stop: Arc<AtomicBool>,
    counters: Arc<SinkCounters>,
    spool: Arc<Spool>,
    journal: Arc<Journal>,
    /// Whether the journal an earlier run left is in the store.
    journal_replayed: bool,
    opener: Opener,
    store: Option<Box<dyn Store>>,
    started_ms: i64,
    /// Whether the rows an earlier run left open are marked.
    interrupted: bool,
    /// A batch was spooled after its retries: later batches get one attempt each.
    down: bool,
    next_attempt: Instant,
    backoff: Duration,
    next_retention: Instant,
    ready: Option<mpsc::Sender<Result<Startup, String>>>,
    startup: Startup,
    config: WriterConfig,
}

/// How long the thread sleeps with nothing to do before it looks at the store again.
const IDLE: Duration = Duration::from_millis(500);

impl Worker {
    fn run(mut self) {
        if self.ensure() {
            self.retention();
        }
        // A failure has answered already (see `failed`).
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Ok(self.startup));
        }
        loop {
            let stopping = self.stop.load(Ordering::SeqCst);
            let (batch, acks, closed) = self.collect(stopping);
            let idle = batch.is_empty() && acks.is_empty();
            if !batch.is_empty() {
                self.commit(batch);
            } else if !stopping && self.needs_store() {
                self.ensure();
            }
            for a in acks {
                let _ = a.send(());
            }
            if closed || (stopping && idle) {
                break;
            }
            if !stopping {
                self.retention();
            }
        }
        // From here on, senders spool; what they queued before is written or spooled.
        *self.closed.write().unwrap_or_else(|p| p.into_inner()) = true;
        let mut rest = Vec::new();
        while let Ok(cmd) = self.rx.try_recv() {
            match cmd {
                Cmd::Msg(m) => rest.push(*m),
                Cmd::Flush(a) => {
                    let _ = a.send(());
                }
                Cmd::Wake => {}
            }
        }
        if !rest.is_empty() {
            self.commit(rest);
        }
        info!(
            written = self.counters.written.load(Ordering::Relaxed),
            spooled = self.counters.spooled.load(Ordering::Relaxed),
            "records writer stopped"
        );
    }

    fn needs_store(&self) -> bool {
        self.store.is_none() || !self.interrupted || self.spool.has_messages()
    }

    /// The next batch: what arrives within `max_delay` of its first message, up to
    /// `max_batch`, or up to a flush. When stopping, only what is queued already.
    fn collect(&mut self, stopping: bool) -> (Vec<RecordMsg>, Vec<mpsc::Sender<()>>, bool) {
        let mut batch = Vec::new();
        let mut acks = Vec::new();
        let first = if stopping {
            // A wake-up says nothing when stopping: only an empty queue ends the loop.
            loop {
                match self.rx.try_recv() {
                    Ok(Cmd::Wake) => continue,
                    Ok(c) => break c,
                    Err(mpsc::TryRecvError::Empty) => return (batch, acks, false),
                    Err(mpsc::TryRecvError::Disconnected) => return (batch, acks, true),
                }
            }
        } else {
            match self.rx.recv_timeout(IDLE) {
                Ok(c) => c,
                Err(RecvTimeoutError::Timeout) => return (batch, acks, false),
                Err(RecvTimeoutError::Disconnected) => return (batch, acks, true),
            }
        };
        match first {
            Cmd::Msg(m) => batch.push(*m),
            Cmd::Flush(a) => {
                acks.push(a);
                return (batch, acks, false);
            }
            Cmd::Wake => return (batch, acks, false),
        }
        let deadline = Instant::now() + self.config.max_delay;
        while batch.len() < self.config.max_batch {
            let next = if stopping {
                self.rx.try_recv().ok()
            } else {
                let left = deadline.saturating_duration_since(Instant::now());
                self.rx.recv_timeout(left).ok()
            };
            match next {
                Some(Cmd::Msg(m)) => batch.push(*m),
                Some(Cmd::Flush(a)) => {
                    acks.push(a);
                    break;
                }
                Some(Cmd::Wake) => {
                    if self.stop.load(Ordering::SeqCst) {
                        break;
                    }
                }
                None => break,
            }
        }
        (batch, acks, false)
    }

    /// Writes the batch, retrying with back-off for `retry_for`; then it is spooled.
    fn commit(&mut self, batch: Vec<RecordMsg>) {
        let n = batch.len() as u64;
        let give_up = Instant::now() + self.config.retry_for;
        loop {
            if self.ensure() {
                let store = self.store.as_mut().expect("ensure() opened the store");
                match store.write(&batch) {
                    Ok(()) => {
                        settle(&self.journal, &batch);
                        self.counters.written.fetch_add(n, Ordering::Relaxed);
                        self.counters.pending.fetch_sub(n, Ordering::Relaxed);
                        self.counters.commits.fetch_add(1, Ordering::Relaxed);
                        self.down = false;
                        self.backoff = self.config.backoff_min;
                        return;
                    }
                    Err(e) => self.failed(&e),
                }
            }
            let now = Instant::now();
            if self.down || now >= give_up || self.stop.load(Ordering::SeqCst) {
                if !self.down {
                    warn!(messages = n, spool = %self.spool.path().display(),
                        "records store still failing; spooling until it answers");
                }
                self.down = true;
                spool_or_count(&self.spool, &self.counters, &self.journal, &batch);
                return;
            }
            // Sleep in slices, so a stop is not kept waiting.
            let until = self.next_attempt.min(give_up);
            while Instant::now() < until && !self.stop.load(Ordering::SeqCst) {
                std::thread::sleep(
                    until
                        .saturating_duration_since(Instant::now())
                        .min(Duration::from_millis(50)),
                );
            }
        }
    }

    /// A store that failed: counted, logged, dropped (the next attempt reopens it, after
    /// the back-off).
    fn failed(&mut self, e: &StoreError) {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        warn!(error = %e, retry_in_ms = self.backoff.as_millis() as u64, "records store failed");
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Err(e.to_string()));
        }
        self.store = None;
        self.next_attempt = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(self.config.backoff_max);
    }

    /// Makes the store usable: opened, the spool replayed, the rows of an earlier run
    /// marked. False while it fails (or its back-off has not passed).
    fn ensure(&mut self) -> bool {
        if self.store.is_none() {
            if Instant::now() < self.next_attempt {
                return false;
            }
            match (self.opener)() {
                Ok(s) => {
                    info!(store = %s.describe(), "records store open");
                    self.store = Some(s);
                }
                Err(e) => {
                    self.failed(&e);
                    return false;
                }
            }
        }
        if self.spool.has_messages() && !self.replay() {
            return false;
        }
        if !self.journal_replayed && !self.replay_journal() {
            return false;
        }
        if !self.interrupted {
            let store = self.store.as_mut().expect("opened above");
            match store.interrupt_open(self.started_ms) {
                Ok(n) => {
                    if n > 0 {
                        info!(
                            calls = n,
                            "calls in progress when the engine last stopped recorded as interrupted"
                        );
                    }
                    self.interrupted = true;
                    self.startup.interrupted = n;
                }
                Err(e) => {
                    self.failed(&e);
                    return false;
                }
            }
        }
        true
    }

    /// Writes the Begins an earlier run journalled (rows the store has already are left
    /// as they are: a Begin never reopens an ended call), so that the calls it began
    /// moments before it was killed are marked interrupted with the others. False if the
    /// store failed.
    fn replay_journal(&mut self) -> bool {
        let path = match self.journal.take() {
            Ok(Some(p)) => p,
            Ok(None) => {
                self.journal_replayed = true;
                return true;
            }
            Err(e) => {
                error!(journal = %self.journal.path().display(), error = %e, "cannot take the journal of calls begun");
                self.journal_replayed = true;
                return true;
            }
        };
        let read = match Journal::read(&path) {
            Ok(r) => r,
            Err(e) => {
                error!(journal = %path.display(), error = %e, "cannot read the journal of calls begun");
                self.journal_replayed = true;
                return true;
            }
        };
        let Some(store) = self.store.as_mut() else {
            return false;
        };
        let begins: Vec<RecordMsg> = read
            .messages
            .into_iter()
            .filter(|m| matches!(m, RecordMsg::Begin(_)))
            .collect();
        for chunk in begins.chunks(1_000) {
            if let Err(e) = store.write(chunk) {
                self.failed(&e);
                return false;
            }
        }
        self.startup.journalled = begins.len() as u64;
        info!(
            calls = begins.len(),
            "calls begun before the engine last stopped, read from its journal"
        );
        if let Err(e) = Journal::done(&path) {
            warn!(journal = %path.display(), error = %e, "cannot remove the replayed journal");
        }
        self.journal_replayed = true;
        true
    }

    /// Writes what the spool holds, oldest first. False if the store failed (the rest
    /// stays in the spool).
    fn replay(&mut self) -> bool {
        const CHUNK: usize = 1_000;
        loop {
            let path = match self.spool.take() {
                Ok(Some(p)) => p,
                Ok(None) => return true,
                Err(e) => {
                    // New records must not wait on a spool that cannot be read.
                    error!(spool = %self.spool.path().display(), error = %e, "cannot take the records spool for replay");
                    return true;
                }
            };
            let read = match Spool::read(&path) {
                Ok(r) => r,
                Err(e) => {
                    error!(spool = %path.display(), error = %e, "cannot read the records spool");
                    return true;
                }
            };
            if read.damaged > 0 {
                self.counters
                    .lost
                    .fetch_add(read.damaged as u64, Ordering::Relaxed);
                warn!(spool = %path.display(), lines = read.damaged, "records spool lines that are not records skipped");
            }
            let Some(store) = self.store.as_mut() else {
                return false;
            };
            for chunk in read.messages.chunks(CHUNK) {
                if let Err(e) = store.write(chunk) {
                    self.failed(&e);
                    return false;
                }
            }
            let n = read.messages.len() as u64;
            self.counters.written.fetch_add(n, Ordering::Relaxed);
            self.counters.replayed.fetch_add(n, Ordering::Relaxed);
            self.startup.replayed += n;
            info!(messages = n, spool = %path.display(), "records spool replayed");
            if let Err(e) = Spool::done(&path) {
                // It would be replayed again: harmless, every write is idempotent.
                warn!(spool = %path.display(), error = %e, "cannot remove the replayed records spool");
                return true;
            }
        }
    }

    /// Deletes rows older than `keep`, a few batches at a time between writes.
    fn retention(&mut self) {
        const BATCHES_PER_TURN: usize = 10;
        let Some(keep) = self.config.keep else {
            return;
        };
        if Instant::now() < self.next_retention || self.store.is_none() {
            return;
        }
        let before = now_ms().saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX));
        let batch = self.config.retention_batch.max(1);
        let mut deleted = 0;
        for _ in 0..BATCHES_PER_TURN {
            let Some(store) = self.store.as_mut() else {
                return;
            };
            match store.delete_before(before, batch) {
                Ok(n) => {
                    deleted += n;
                    if (n as usize) < batch {
                        if deleted > 0 {
                            info!(calls = deleted, "old call records deleted");
                        }
                        self.next_retention = Instant::now() + self.config.retention_every;
                        return;
                    }
                }
                Err(e) => {
                    self.failed(&e);
                    self.next_retention = Instant::now() + Duration::from_secs(60);
                    return;
                }
            }
        }
        // More to delete: go on after the next messages.
        self.next_retention = Instant::now() + Duration::from_secs(1);
    }
}
