//! Call records: what calls hand over when they start and end, and the way it reaches the
//! store without ever making a call wait.
//!
//! Owns the message calls send ([`RecordMsg`]) and the handle they send it through
//! ([`RecordSink`]). It must not build records from a call's story (the builder does) nor
//! talk to a database on a call's task (the writer does, on its own thread).
//!
//! The rooms: `store` (the interface both back ends implement, and the schema),
//! `sqlite` and `postgres` (the back ends), `spool` (what could not be written, on disk),
//! `journal` (the calls begun, so a kill loses none of them)
//! `writer` (the thread between the sink and the store), `webhook` (every ended call POSTed
//! to a receiver, beside the store) and `listing` (`hotline records`).

pub mod journal;
pub mod listing;
pub mod postgres;
pub mod spool;
pub mod sqlite;
pub mod store;
pub mod webhook;
pub mod writer;

pub mod report_cli;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::config::RecordsStore;

pub use hotline_core::record::{CallEvent, CallKind, CallOutcome, CallRecord, HungUpBy};

/// What a call tells the records writer. Serialised (as the spool's lines) with the
/// variant's name in snake case as the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordMsg {
    /// The call was answered or refused: its row, still open (no end, no outcome).
    Begin(CallRecord),
    /// Events of a call in progress, in order.
    Events(Vec<CallEvent>),
    /// The call ended: its whole row and the events not sent yet.
    Finish(CallRecord, Vec<CallEvent>),
}

/// Where calls send their records. Cloned into every call; sending never blocks.
#[derive(Clone, Default)]
pub struct RecordSink {
    inner: Option<Arc<dyn Deliver>>,
    counters: Arc<SinkCounters>,
}

/// What the writer behind a sink does with a message. Must return at once.
pub trait Deliver: Send + Sync {
    fn deliver(&self, msg: RecordMsg);
}

/// Counts what went through a sink, for metrics. Every message sent ends up written or
/// spooled (and, if even the spool fails, lost: logged and counted, never silent).
#[derive(Debug, Default)]
pub struct SinkCounters {
    pub sent: AtomicU64,
    /// Messages sent and neither written nor spooled yet (a gauge).
    pub pending: AtomicU64,
    /// Messages committed to the store (replayed ones included).
    pub written: AtomicU64,
    /// Transactions committed (a batch of messages each).
    pub commits: AtomicU64,
    /// Failed attempts to reach or write the store.
    pub errors: AtomicU64,
    /// Messages put in the spool file (queue full, or the store down too long).
    pub spooled: AtomicU64,
    /// Spooled messages later written to the store.
    pub replayed: AtomicU64,
    /// Messages neither written nor spooled (the spool file could not be written either),
    /// and spool lines that could not be read back.
    pub lost: AtomicU64,
}

impl RecordSink {
    /// A sink that keeps nothing (records switched off).
    pub fn disabled() -> RecordSink {
        RecordSink::default()
    }

    pub fn new(deliver: Arc<dyn Deliver>) -> RecordSink {
        RecordSink {
            inner: Some(deliver),
            counters: Arc::default(),
        }
    }

    /// A sink whose writer counts into `counters` (the writer's own, so that the admin
    /// reads one struct).
    pub fn with_counters(deliver: Arc<dyn Deliver>, counters: Arc<SinkCounters>) -> RecordSink {
        RecordSink {
            inner: Some(deliver),
            counters,
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    pub fn send(&self, msg: RecordMsg) {
        if let Some(d) = &self.inner {
            self.counters.sent.fetch_add(1, Ordering::Relaxed);
            d.deliver(msg);
        }
    }

    pub fn counters(&self) -> &SinkCounters {
        &self.counters
    }
}

/// Hands every message to several deliverers (the store's writer and the webhook), so a
/// call sends once whatever listens.
pub struct FanOut(pub Vec<Arc<dyn Deliver>>);

impl Deliver for FanOut {
    fn deliver(&self, msg: RecordMsg) {
        if let Some((last, rest)) = self.0.split_last() {
            for d in rest {
                d.deliver(msg.clone());
            }
            last.deliver(msg);
        }
    }
}

/// One call as a document: its record and its events in order. `hotline records CALL_ID
/// --format json` prints it and the webhook POSTs it, so both speak one format.
#[derive(Debug, Serialize)]
pub struct CallDocument<'a> {
    pub call: &'a CallRecord,
    pub events: &'a [CallEvent],
}

/// Opens (or connects to) the store `target` names and brings its schema up to date.
pub fn open_store(target: &RecordsStore) -> Result<Box<dyn store::Store>, store::StoreError> {
    let mut s: Box<dyn store::Store> = match target {
        RecordsStore::Sqlite(path) => Box::new(sqlite::SqliteStore::open(path)?),
        RecordsStore::Postgres(url) => Box::new(postgres::PostgresStore::connect(url)?),
    };
    s.migrate()?;
    Ok(s)
}
