//! Call records: what calls hand over when they start and end, and the way it reaches the
//! store without ever making a call wait.
//!
//! Owns the message calls send ([`RecordMsg`]) and the handle they send it through
//! ([`RecordSink`]). It must not build records from a call's story (the builder does) nor
//! talk to a database on a call's task (the writer does, on its own thread).

pub mod report_cli;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use hotline_core::record::{CallEvent, CallKind, CallOutcome, CallRecord, HungUpBy};

/// What a call tells the records writer.
#[derive(Debug, Clone)]
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

/// Counts what went through a sink, for metrics.
#[derive(Debug, Default)]
pub struct SinkCounters {
    pub sent: AtomicU64,
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
