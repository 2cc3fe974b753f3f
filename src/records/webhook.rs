//! The records webhook: every ended call POSTed as one JSON document to the URL
//! `records.webhook` names (a CRM, a ticketing system), at least once.
//!
//! Owns the deliverer thread (with a small tokio runtime of its own for the HTTP client),
//! the bounded queue the calls' `Finish` messages reach it through, the back-off while the
//! receiver fails, its spool (`webhook.spool`, in the store spool's format, replayed at the
//! next start and as soon as the receiver answers), its dead-letter file
//! (`webhook.refused`) and its counters. It must not make a call wait (except to fsync the
//! spool when the queue is full), must not touch the records store, and is not the flow's
//! `http` step (`crate::webhook`), whose client settings only it shares.
//!
//! At least once: a document leaves memory or the spool only after a 2xx answer (or a
//! permanent refusal, which goes to the dead-letter file), so a crash or a lost answer can
//! deliver a call twice. The call id, in the body and in the `Idempotency-Key` header, is
//! what a receiver deduplicates on.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use thiserror::Error;
use tracing::{debug, error, info, warn};

use super::spool::Spool;
use super::{CallDocument, CallEvent, CallRecord, Deliver, RecordMsg};
use crate::config::WebhookConfig;

/// Where a webhook sends, checked for the HTTP client.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: reqwest::Url,
    pub headers: reqwest::header::HeaderMap,
    pub timeout: Duration,
}

/// A `records.webhook` the HTTP client cannot use (`hotline check` catches most of these).
#[derive(Debug, Error)]
pub enum TargetError {
    #[error("records.webhook: '{url}' is not a usable URL: {reason}")]
    Url { url: String, reason: String },
    #[error("records.webhook.headers.{0}: not a usable header")]
    Header(String),
}

impl Target {
    pub fn from_config(c: &WebhookConfig) -> Result<Target, TargetError> {
        let url = reqwest::Url::parse(&c.url).map_err(|e| TargetError::Url {
            url: c.url.clone(),
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(TargetError::Url {
                url: c.url.clone(),
                reason: "expected http or https with a host".to_owned(),
            });
        }
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &c.headers {
            let bad = || TargetError::Header(name.clone());
            headers.insert(
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?,
                reqwest::header::HeaderValue::from_str(value).map_err(|_| bad())?,
            );
        }
        Ok(Target {
            url,
            headers,
            timeout: c.timeout,
        })
    }
}

/// How the deliverer paces itself. The defaults suit a receiver on the network; tests
/// shorten them.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Documents waiting in memory; beyond, they go to the spool.
    pub queue: usize,
    /// The first and the longest pause after a failed attempt (before jitter).
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// A receiver failing this long is down: what waits in memory is spooled, and new
    /// documents go straight to the spool until it answers.
    pub spool_after: Duration,
    /// At a stop, how long the deliverer goes on sending what waits (if the receiver
    /// answers) before spooling the rest.
    pub stop_grace: Duration,
    /// The spool; the dead-letter file is beside it (`.refused` for `.spool`).
    pub spool: PathBuf,
}

impl Policy {
    pub fn new(spool: PathBuf) -> Policy {
        Policy {
            queue: 10_000,
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            spool_after: Duration::from_secs(10),
            stop_grace: Duration::from_secs(2),
            spool,
        }
    }

    /// Where refused documents are kept: `webhook.refused` beside `webhook.spool`.
    pub fn refused_path(&self) -> PathBuf {
        self.spool.with_extension("refused")
    }
}

/// What went through the webhook, for metrics. Every ended call is delivered, refused,
/// or lost (only when even the spool cannot be written, or a spool line cannot be read
/// back); each refusal and loss is also logged as an error.
#[derive(Debug, Default)]
pub struct WebhookCounters {
    /// Documents the receiver answered with a 2xx (replayed ones included).
    pub delivered: AtomicU64,
    /// Attempts that failed and will be retried (5xx, 408, 429, timeout, no connection).
    pub retries: AtomicU64,
    /// Documents neither delivered, refused nor lost yet: in memory or in the spool (a
    /// gauge).
    pub pending: AtomicU64,
    /// Documents put in the spool (queue full, receiver down, or the engine stopping).
    pub spooled: AtomicU64,
    /// Documents from the spool later delivered.
    pub replayed: AtomicU64,
    /// Documents the receiver refused for good (another 4xx), kept in the dead-letter file.
    pub refused: AtomicU64,
    /// Documents neither delivered nor kept on disk.
    pub lost: AtomicU64,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    /// The receiver will never take this document (as it stands).
    Refused(String),
    /// It might, later.
    Retry(String),
}

/// What an answer's status means for the document. A 408 (timeout) and a 429 (slow down)
/// are worth waiting for; any other 4xx, or a redirect (not followed: a POST must not turn
/// into a GET), will not change by itself.
pub fn classify(status: u16) -> Attempt {
    match status {
        200..=299 => Attempt::Delivered,
        408 | 429 => Attempt::Retry(format!("the receiver answered {status}")),
        500..=599 => Attempt::Retry(format!("the receiver answered {status}")),
        _ => Attempt::Refused(format!("the receiver answered {status}")),
    }
}

/// The pause before the next attempt: exponential from `min` to `max`, with "equal
/// jitter" (half fixed, half drawn by the caller as `jitter` in [0, 1)) so that engines
/// that lost the same receiver do not all come back at once.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    step: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            step: min,
        }
    }

    /// The pause after one more failure.
    pub fn next(&mut self, jitter: f64) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max.max(self.min));
        step / 2 + step.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
    }

    pub fn reset(&mut self) {
        self.step = self.min;
    }
}

/// A call's document as it waits: its record and all its events.
#[derive(Debug, Clone)]
struct Doc {
    record: CallRecord,
    events: Vec<CallEvent>,
}

impl Doc {
    fn message(&self) -> RecordMsg {
        RecordMsg::Finish(self.record.clone(), self.events.clone())
    }
}

enum Cmd {
    Msg(Box<RecordMsg>),
    /// Only wakes the thread; `stop` says why.
    Wake,
}

/// The deliverer's handle. Dropping it stops the thread: what waits is sent for a short
/// grace if the receiver answers, and spooled otherwise.
pub struct Webhook {
    tx: SyncSender<Cmd>,
    closed: Arc<RwLock<bool>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<WebhookCounters>,
    spool: Arc<Spool>,
}

/// The calls' side: `Finish` and `Events` into the queue, or the spool when it is full.
struct Queue {
    tx: SyncSender<Cmd>,
    closed: Arc<RwLock<bool>>,
    counters: Arc<WebhookCounters>,
    spool: Arc<Spool>,
}

impl Deliver for Queue {
    fn deliver(&self, msg: RecordMsg) {
        match &msg {
            // A document is made only of ended calls.
            RecordMsg::Begin(_) => return,
            RecordMsg::Events(_) => {}
            RecordMsg::Finish(..) => {
                self.counters.pending.fetch_add(1, Ordering::Relaxed);
            }
        }
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
        spool_or_count(&self.spool, &self.counters, std::slice::from_ref(&msg));
    }
}

/// Documents (`Finish` messages) among `msgs`.
fn documents(msgs: &[RecordMsg]) -> u64 {
    msgs.iter()
        .filter(|m| matches!(m, RecordMsg::Finish(..)))
        .count() as u64
}

/// Puts messages in the spool; if even that fails they are lost, and said so.
fn spool_or_count(spool: &Spool, counters: &WebhookCounters, msgs: &[RecordMsg]) {
    let n = documents(msgs);
    match spool.append(msgs) {
        Ok(()) => {
            counters.spooled.fetch_add(n, Ordering::Relaxed);
        }
        Err(e) => {
            counters.lost.fetch_add(n, Ordering::Relaxed);
            counters.pending.fetch_sub(n, Ordering::Relaxed);
            error!(spool = %spool.path().display(), error = %e, documents = n,
                "webhook documents lost: the receiver and the spool both failed");
        }
    }
}

impl Webhook {
    /// Starts the deliverer. What the spool holds from an earlier run is sent first.
    pub fn start(target: Target, policy: Policy) -> std::io::Result<Webhook> {
        let (tx, rx) = mpsc::sync_channel(policy.queue.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(WebhookCounters::default());
        let spool = Arc::new(Spool::new(policy.spool.clone()));
        let closed = Arc::new(RwLock::new(false));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let client = crate::webhook::client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(std::io::Error::other)?;
        let worker = Worker {
            rx,
            closed: closed.clone(),
            stop: stop.clone(),
            counters: counters.clone(),
            spool: spool.clone(),
            refused: Spool::new(policy.refused_path()),
            runtime,
            client,
            target,
            memory: VecDeque::new(),
            replay: VecDeque::new(),
            replay_path: None,
            replay_progress: 0,
            open: HashMap::new(),
            backoff: Backoff::new(policy.backoff_min, policy.backoff_max),
            next_attempt: Instant::now(),
            failing_since: None,
            spooling: false,
            policy,
        };
        let thread = std::thread::Builder::new()
            .name("records-webhook".to_owned())
            .spawn(move || worker.run())?;
        Ok(Webhook {
            tx,
            closed,
            stop,
            thread: Some(thread),
            counters,
            spool,
        })
    }

    /// What calls send through, alone or beside the store's writer ([`super::FanOut`]).
    pub fn deliverer(&self) -> Arc<dyn Deliver> {
        Arc::new(Queue {
            tx: self.tx.clone(),
            closed: self.closed.clone(),
            counters: self.counters.clone(),
            spool: self.spool.clone(),
        })
    }

    pub fn counters(&self) -> Arc<WebhookCounters> {
        self.counters.clone()
    }

    /// Stops the thread (see the type). Messages sent later go to the spool.
    pub fn shutdown(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.tx.try_send(Cmd::Wake);
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            error!("the records webhook panicked");
        }
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

struct Worker {
    rx: Receiver<Cmd>,
    closed: Arc<RwLock<bool>>,
    stop: Arc<AtomicBool>,
    counters: Arc<WebhookCounters>,
    spool: Arc<Spool>,
    refused: Spool,
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    target: Target,
    /// Documents of this run, oldest first, not spooled.
    memory: VecDeque<Doc>,
    /// Documents read from the spool file at `replay_path`, which keeps them on disk
    /// until they are delivered.
    replay: VecDeque<Doc>,
    replay_path: Option<PathBuf>,
    /// Replayed documents delivered since the replay file was last rewritten.
    replay_progress: usize,
    /// Events of calls in progress that came before their `Finish`.
    open: HashMap<String, Vec<CallEvent>>,
    backoff: Backoff,
    next_attempt: Instant,
    /// When the current run of failures began.
    failing_since: Option<Instant>,
    /// The receiver is down: new documents go straight to the spool.
    spooling: bool,
    policy: Policy,
}

/// How long the thread sleeps with nothing to do.
const IDLE: Duration = Duration::from_millis(500);
/// Replayed documents delivered between two rewrites of the replay file: a crash
/// delivers at most this many twice.
const COMPACT_EVERY: usize = 100;
/// Calls whose events are held while they wait for their `Finish`.
const MAX_OPEN_CALLS: usize = 100_000;

impl Worker {
    fn run(mut self) {
        self.count_leftovers();
        loop {
            let stopping = self.stop.load(Ordering::SeqCst);
            if stopping {
                break;
            }
            let wait = if self.has_work() {
                self.next_attempt.saturating_duration_since(Instant::now())
            } else {
                IDLE
            };
            if self.receive(wait) {
                break;
            }
            if self.has_work() && Instant::now() >= self.next_attempt {
                self.attempt(self.target.timeout);
            }
        }
        self.finish();
    }

    /// Documents a spool of an earlier run holds are pending from the start.
    fn count_leftovers(&self) {
        let mut n = 0;
        for path in [self.spool.replay_path(), self.spool.path().to_path_buf()] {
            if path.exists()
                && let Ok(read) = Spool::read(&path)
            {
                n += documents(&read.messages);
            }
        }
        if n > 0 {
            self.counters.pending.fetch_add(n, Ordering::Relaxed);
            info!(documents = n, spool = %self.spool.path().display(),
                "webhook documents spooled by an earlier run will be sent first");
        }
    }

    fn has_work(&self) -> bool {
        !self.replay.is_empty()
            || !self.memory.is_empty()
            || self.replay_path.is_some()
            || self.spool.has_messages()
    }

    /// Takes what arrives within `wait`, then whatever else is queued. True when every
    /// sender is gone.
    fn receive(&mut self, wait: Duration) -> bool {
        let first = match self.rx.recv_timeout(wait) {
            Ok(c) => c,
            Err(RecvTimeoutError::Timeout) => return false,
            Err(RecvTimeoutError::Disconnected) => return true,
        };
        self.command(first);
        loop {
            match self.rx.try_recv() {
                Ok(c) => self.command(c),
                Err(mpsc::TryRecvError::Empty) => return false,
                Err(mpsc::TryRecvError::Disconnected) => return true,
            }
        }
    }

    fn command(&mut self, cmd: Cmd) {
        if let Cmd::Msg(m) = cmd
            && let Some(doc) = self.take_message(*m)
        {
            if self.spooling || self.memory.len() >= self.policy.queue {
                spool_or_count(&self.spool, &self.counters, &[doc.message()]);
            } else {
                self.memory.push_back(doc);
            }
        }
    }

    /// Keeps the events of a call in progress; a `Finish` makes the call's document, with
    /// every event once, in order.
    fn take_message(&mut self, msg: RecordMsg) -> Option<Doc> {
        match msg {
            RecordMsg::Begin(_) => None,
            RecordMsg::Events(events) => {
                if self.open.len() >= MAX_OPEN_CALLS {
                    warn!(
                        calls = self.open.len(),
                        "too many calls in progress with events held for the webhook; their early events are left out"
                    );
                    self.open.clear();
                }
                for e in events {
                    self.open.entry(e.call_id.clone()).or_default().push(e);
                }
                None
            }
            RecordMsg::Finish(record, events) => {
                let mut all = self.open.remove(&record.call_id).unwrap_or_default();
                all.extend(events);
                all.sort_by_key(|e| e.seq);
                all.dedup_by_key(|e| e.seq);
                Some(Doc {
                    record,
                    events: all,
                })
            }
        }
    }

    /// The next document to send and whether it came from the spool: the spool first
    /// (older), then this run's.
    fn next_doc(&mut self) -> Option<(Doc, bool)> {
        loop {
            if let Some(d) = self.replay.pop_front() {
                return Some((d, true));
            }
            if let Some(path) = self.replay_path.take() {
                if let Err(e) = Spool::done(&path) {
                    // Sent again at the next start: harmless, receivers deduplicate.
                    warn!(spool = %path.display(), error = %e, "cannot remove the replayed webhook spool");
                }
                self.replay_progress = 0;
            }
            if !self.spool.has_messages() || !self.load_spool() {
                break;
            }
        }
        self.memory.pop_front().map(|d| (d, false))
    }

    /// Reads the spool (renamed for the replay) into `replay`. False if there was nothing
    /// to read or it cannot be read.
    fn load_spool(&mut self) -> bool {
        let path = match self.spool.take() {
            Ok(Some(p)) => p,
            Ok(None) => return false,
            Err(e) => {
                error!(spool = %self.spool.path().display(), error = %e, "cannot take the webhook spool for replay");
                return false;
            }
        };
        let read = match Spool::read(&path) {
            Ok(r) => r,
            Err(e) => {
                error!(spool = %path.display(), error = %e, "cannot read the webhook spool");
                return false;
            }
        };
        if read.damaged > 0 {
            self.counters
                .lost
                .fetch_add(read.damaged as u64, Ordering::Relaxed);
            warn!(spool = %path.display(), lines = read.damaged, "webhook spool lines that are not records skipped");
        }
        for m in read.messages {
            if let Some(d) = self.take_message(m) {
                self.replay.push_back(d);
            }
        }
        info!(documents = self.replay.len(), spool = %path.display(), "replaying the webhook spool");
        self.replay_path = Some(path);
        true
    }

    /// One attempt at the next document, giving the receiver `timeout` to answer.
    fn attempt(&mut self, timeout: Duration) {
        let Some((doc, replayed)) = self.next_doc() else {
            return;
        };
        let call_id = doc.record.call_id.clone();
        let result = self.post(&doc, timeout);
        match result {
            Attempt::Delivered => {
                debug!(call_id = %call_id, "call record delivered to the webhook");
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                self.counters.pending.fetch_sub(1, Ordering::Relaxed);
                if replayed {
                    self.counters.replayed.fetch_add(1, Ordering::Relaxed);
                    self.replayed_one();
                }
                self.answered();
            }
            Attempt::Refused(why) => {
                error!(call_id = %call_id, url = %self.target.url, reason = %why,
                    refused = %self.refused.path().display(),
                    "the webhook receiver refused a call record; kept in the refused file");
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                self.counters.pending.fetch_sub(1, Ordering::Relaxed);
                if let Err(e) = self.refused.append(&[doc.message()]) {
                    self.counters.lost.fetch_add(1, Ordering::Relaxed);
                    error!(call_id = %call_id, error = %e, "cannot keep a refused call record");
                }
                if replayed {
                    self.replayed_one();
                }
                self.answered();
            }
            Attempt::Retry(why) => {
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
                let pause = self.backoff.next(rand::random::<f64>());
                let now = Instant::now();
                let since = *self.failing_since.get_or_insert(now);
                if now.duration_since(since).is_zero() {
                    warn!(call_id = %call_id, url = %self.target.url, reason = %why,
                        retry_in_ms = pause.as_millis() as u64, "webhook receiver failed; retrying");
                } else {
                    debug!(call_id = %call_id, reason = %why,
                        retry_in_ms = pause.as_millis() as u64, "webhook receiver still failing");
                }
                self.next_attempt = now + pause;
                // The document waits at the back: one the receiver chokes on must not
                // hold back the others.
                if replayed {
                    self.replay.push_back(doc);
                } else {
                    self.memory.push_back(doc);
                }
                if !self.spooling && now.duration_since(since) >= self.policy.spool_after {
                    warn!(url = %self.target.url, spool = %self.spool.path().display(),
                        "webhook receiver down; spooling call records until it answers");
                    self.spooling = true;
                    self.spool_memory();
                    self.compact_replay();
                }
            }
        }
    }

    /// The receiver answered: it is up.
    fn answered(&mut self) {
        if self.failing_since.take().is_some() {
            info!(url = %self.target.url, "webhook receiver answering again");
        }
        self.spooling = false;
        self.backoff.reset();
        self.next_attempt = Instant::now();
    }

    fn replayed_one(&mut self) {
        self.replay_progress += 1;
        if self.replay_progress >= COMPACT_EVERY {
            self.compact_replay();
        }
    }

    /// Rewrites the replay file with what is left to send.
    fn compact_replay(&mut self) {
        let Some(path) = &self.replay_path else {
            return;
        };
        let left: Vec<RecordMsg> = self.replay.iter().map(Doc::message).collect();
        match Spool::replace(path, &left) {
            Ok(()) => self.replay_progress = 0,
            // The old file stays: its delivered documents will be sent again.
            Err(e) => {
                warn!(spool = %path.display(), error = %e, "cannot rewrite the webhook replay file")
            }
        }
        if left.is_empty() {
            self.replay_path = None;
        }
    }

    fn spool_memory(&mut self) {
        if self.memory.is_empty() {
            return;
        }
        let msgs: Vec<RecordMsg> = self.memory.drain(..).map(|d| d.message()).collect();
        spool_or_count(&self.spool, &self.counters, &msgs);
    }

    /// One POST of `doc`, classified.
    fn post(&self, doc: &Doc, timeout: Duration) -> Attempt {
        let body = match serde_json::to_vec(&CallDocument {
            call: &doc.record,
            events: &doc.events,
        }) {
            Ok(b) => b,
            Err(e) => return Attempt::Refused(format!("cannot be written as JSON: {e}")),
        };
        let request = self
            .client
            .post(self.target.url.clone())
            .timeout(timeout)
            .headers(self.target.headers.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", doc.record.call_id.as_str())
            .body(body);
        self.runtime.block_on(async move {
            match request.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    // Read (a little of) the answer, so the connection can be used again.
                    let _ = tokio::time::timeout(Duration::from_secs(1), resp.bytes()).await;
                    classify(status)
                }
                Err(e) if e.is_timeout() => Attempt::Retry(format!("no answer within {timeout:?}")),
                Err(e) => Attempt::Retry(format!("{e}")),
            }
        })
    }

    /// The stop: what is queued joins the rest; while the receiver answers, documents are
    /// sent for a short grace; what is left is spooled.
    fn finish(mut self) {
        *self.closed.write().unwrap_or_else(|p| p.into_inner()) = true;
        while let Ok(cmd) = self.rx.try_recv() {
            self.command(cmd);
        }
        let grace = Instant::now() + self.policy.stop_grace;
        while !self.spooling && self.failing_since.is_none() && self.has_work() {
            let left = grace.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.attempt(self.target.timeout.min(left));
        }
        self.spool_memory();
        self.compact_replay();
        info!(
            delivered = self.counters.delivered.load(Ordering::Relaxed),
            spooled = self.counters.spooled.load(Ordering::Relaxed),
            pending = self.counters.pending.load(Ordering::Relaxed),
            "records webhook stopped"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_2xx_delivers_and_only_lasting_refusals_are_not_retried() {
        for s in [200, 201, 202, 204, 299] {
            assert_eq!(classify(s), Attempt::Delivered, "{s}");
        }
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(matches!(classify(s), Attempt::Retry(_)), "{s}");
        }
        for s in [301, 302, 307, 400, 401, 403, 404, 410, 413, 422] {
            assert!(matches!(classify(s), Attempt::Refused(_)), "{s}");
        }
    }

    #[test]
    fn the_backoff_doubles_to_its_cap_with_half_of_it_jittered() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
        let low: Vec<u64> = (0..10).map(|_| b.next(0.0).as_millis() as u64).collect();
        assert_eq!(
            low,
            [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        b.reset();
        let first = b.next(0.999_999);
        assert!(first > Duration::from_millis(499) && first < Duration::from_millis(500));
        let top = (0..20).map(|_| b.next(0.999_999)).max().unwrap();
        assert!(
            top <= Duration::from_secs(60) && top > Duration::from_secs(59),
            "{top:?}"
        );
    }
}
