//! The calls in progress, as the admin sees them: for each, who called which number, the
//! live version and flow it started on, and where its story stands now (flow and step).
//!
//! Owns the shared table only. The call task registers itself when it has a flow, moves
//! its position as the flow moves, and is removed when its `Registration` is dropped, so
//! no path out of a call can leave a stale entry. It never decides anything about a call
//! and holds no socket; readers (the admin API, the reload log) take snapshots, and the
//! dashboard waits on [`Registry::changed`] to push a change as it happens.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use crate::flow::flowset::FlowSet;

/// What a call says about itself when it registers.
#[derive(Debug, Clone)]
pub struct NewLiveCall {
    pub call_id: String,
    pub caller: String,
    pub dialed: String,
    /// The flow the route chose.
    pub flow: String,
    /// The live version the call runs on to its end.
    pub version: u64,
    /// That version's flows, so what the call sits on can be compared with another version.
    pub flows: Arc<FlowSet>,
    pub started_at: SystemTime,
}

/// One call in progress, as of the snapshot.
#[derive(Debug, Clone)]
pub struct LiveCall {
    pub call_id: String,
    pub caller: String,
    pub dialed: String,
    pub flow: String,
    pub version: u64,
    /// The flow the call is in now (differs from `flow` after a `goto`); empty before the
    /// first step.
    pub current_flow: String,
    /// The step the call is in now; empty before the first step.
    pub step: String,
    /// When the call entered `step` (its start before the first step).
    pub step_since: SystemTime,
    /// The caller's language as the flow has it now; empty before the first step.
    pub language: String,
    pub started_at: SystemTime,
    pub flows: Arc<FlowSet>,
}

/// Every call in progress. Share it with `Arc`.
#[derive(Debug)]
pub struct Registry {
    calls: Mutex<BTreeMap<u64, LiveCall>>,
    next: AtomicU64,
    /// Counts changes (a call added, moved or gone), so a reader can wait for the next one.
    changes: tokio::sync::watch::Sender<u64>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            calls: Mutex::default(),
            next: AtomicU64::new(0),
            changes: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Registry {
    pub fn new() -> Arc<Registry> {
        Arc::new(Registry::default())
    }

    fn table(&self) -> MutexGuard<'_, BTreeMap<u64, LiveCall>> {
        // A panic elsewhere while holding the lock leaves a usable table: every update is
        // a single insert, remove or field write.
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a call; it stays listed until the returned registration is dropped.
    pub fn register(self: &Arc<Self>, call: NewLiveCall) -> Registration {
        let slot = self.next.fetch_add(1, Ordering::Relaxed);
        self.table().insert(
            slot,
            LiveCall {
                call_id: call.call_id,
                caller: call.caller,
                dialed: call.dialed,
                flow: call.flow,
                version: call.version,
                current_flow: String::new(),
                step: String::new(),
                step_since: call.started_at,
                language: String::new(),
                started_at: call.started_at,
                flows: call.flows,
            },
        );
        self.touch();
        Registration {
            registry: Arc::clone(self),
            slot,
        }
    }

    /// The calls in progress, oldest first.
    pub fn snapshot(&self) -> Vec<LiveCall> {
        // Slots grow with registration order, so the map's order is the age order.
        self.table().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.table().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A receiver that wakes after each change to the table.
    pub fn changed(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn touch(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// A call's entry in the registry; dropping it removes the entry.
#[derive(Debug)]
pub struct Registration {
    registry: Arc<Registry>,
    slot: u64,
}

impl Registration {
    /// Moves the call's position. Called after every event the flow handled, so it
    /// allocates only when the position really changed.
    pub fn set_position(&self, flow: &str, step: &str, language: &str) {
        let mut table = self.registry.table();
        let Some(c) = table.get_mut(&self.slot) else {
            return;
        };
        let moved = c.step != step || c.current_flow != flow;
        if moved {
            flow.clone_into(&mut c.current_flow);
            step.clone_into(&mut c.step);
            c.step_since = SystemTime::now();
        }
        let spoke = c.language != language;
        if spoke {
            language.clone_into(&mut c.language);
        }
        drop(table);
        if moved || spoke {
            self.registry.touch();
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.table().remove(&self.slot);
        self.registry.touch();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_call(id: &str) -> NewLiveCall {
        NewLiveCall {
            call_id: id.to_owned(),
            caller: "+4930123456".to_owned(),
            dialed: "hotline".to_owned(),
            flow: "main".to_owned(),
            version: 3,
            flows: Arc::new(FlowSet::empty()),
            started_at: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn calls_are_listed_while_registered_in_age_order() {
        let reg = Registry::new();
        let a = reg.register(new_call("a"));
        let mut changes = reg.changed();
        let b = reg.register(new_call("b"));
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        b.set_position("main", "main_menu", "en");
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        b.set_position("main", "main_menu", "en");
        assert!(!changes.has_changed().unwrap(), "no move, no change");
        let snap = reg.snapshot();
        let ids: Vec<&str> = snap.iter().map(|c| c.call_id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(snap[0].step, "");
        assert_eq!(
            (snap[1].current_flow.as_str(), snap[1].step.as_str()),
            ("main", "main_menu")
        );
        assert_eq!(snap[1].version, 3);
        assert_eq!(snap[1].language, "en");
        assert!(snap[1].step_since > snap[1].started_at);
        drop(a);
        assert_eq!(reg.len(), 1);
        drop(b);
        assert!(reg.is_empty());
    }
}
