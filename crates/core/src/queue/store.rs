//! Where callback requests are kept so they survive a restart of the engine.
//!
//! Owns the [`CallbackStore`] interface and the store in memory (tests, and engines that
//! need no durability); the engine's SQLite store (a real file, the default) implements it. The `Acd` is the only writer. Live waiting state stays in
//! memory; this interface is the seam where queue state can later move to a store shared
//! by several engines. It must not decide anything about the line: it keeps and returns
//! entries in the order they were added.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Identifies one callback request; assigned by the store, increasing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CallbackId(pub u64);

/// A callback request as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCallback {
    pub id: CallbackId,
    pub queue: String,
    /// The number to call back.
    pub number: String,
    pub priority: i32,
    pub skills: Vec<String>,
    /// How long the caller had waited when asking to be called back; a restored entry
    /// takes its place in line as if it had waited this long.
    pub waited: Duration,
    /// Calls to the caller made so far that were not answered.
    pub attempts: u32,
    /// The entry's place in line: entries are served in this order (within a priority).
    /// Places increase across restarts, so new callers come after restored requests.
    pub place: u64,
    /// The id of the call that asked (its record links the call back to it); empty for
    /// requests stored before it was kept.
    pub for_call: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store's backend (a database) failed.
    #[error("callback store {path}: {source}")]
    Backend {
        path: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("callback store {path}: a stored entry is damaged: {what}")]
    Damaged { path: String, what: String },
}

/// Durable callback requests.
pub trait CallbackStore: Send {
    /// Every entry, by place (then in the order added).
    fn load(&mut self) -> Result<Vec<StoredCallback>, StoreError>;
    /// Keeps a new request (its `id` is ignored) and returns the id it got.
    fn add(&mut self, entry: &StoredCallback) -> Result<CallbackId, StoreError>;
    fn set_attempts(&mut self, id: CallbackId, attempts: u32) -> Result<(), StoreError>;
    /// Forgets the request (served, given up, or the caller hung up).
    fn remove(&mut self, id: CallbackId) -> Result<(), StoreError>;
}

/// A store in memory: for tests, and for engines that need no durability.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    entries: Vec<StoredCallback>,
    next: u64,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store whose first new request gets an id above `id` (for an ACD restored
    /// from a saved state, whose requests hold ids up to `id`).
    pub fn starting_after(id: CallbackId) -> Self {
        MemoryStore {
            entries: Vec::new(),
            next: id.0,
        }
    }
}

impl CallbackStore for MemoryStore {
    fn load(&mut self) -> Result<Vec<StoredCallback>, StoreError> {
        let mut all = self.entries.clone();
        all.sort_by_key(|e| (e.place, e.id));
        Ok(all)
    }
    fn add(&mut self, entry: &StoredCallback) -> Result<CallbackId, StoreError> {
        self.next = self.next.saturating_add(1);
        let id = CallbackId(self.next);
        self.entries.push(StoredCallback {
            id,
            ..entry.clone()
        });
        Ok(id)
    }
    fn set_attempts(&mut self, id: CallbackId, attempts: u32) -> Result<(), StoreError> {
        if let Some(e) = self.entries.iter_mut().find(|e| e.id == id) {
            e.attempts = attempts;
        }
        Ok(())
    }
    fn remove(&mut self, id: CallbackId) -> Result<(), StoreError> {
        self.entries.retain(|e| e.id != id);
        Ok(())
    }
}

/// What every [`CallbackStore`] must do, for the tests of each implementation.
#[cfg(any(test, feature = "test-support"))]
pub mod contract {
    use std::time::Duration;

    use super::{CallbackId, CallbackStore, StoredCallback};

    pub fn entry(queue: &str, number: &str, waited: u64) -> StoredCallback {
        StoredCallback {
            place: 100 - waited,
            id: CallbackId(0),
            queue: queue.to_owned(),
            number: number.to_owned(),
            priority: 0,
            skills: vec!["french".to_owned()],
            waited: Duration::from_secs(waited),
            attempts: 0,
            for_call: format!("asked-{number}"),
        }
    }

    /// Adds two requests, counts an attempt, removes one: order and fields must hold.
    pub fn exercise(store: &mut dyn CallbackStore) {
        let a = store.add(&entry("support", "+4930111", 60)).unwrap();
        let b = store.add(&entry("support", "+4930222", 30)).unwrap();
        assert!(a < b);
        store.set_attempts(a, 2).unwrap();
        let all = store.load().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].attempts, 2);
        assert_eq!(all[1].skills, ["french"]);
        assert_eq!(all[1].for_call, "asked-+4930222");
        store.remove(a).unwrap();
        assert_eq!(store.load().unwrap().len(), 1);
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryStore;
    use super::contract::exercise;

    #[test]
    fn memory_store_keeps_order() {
        exercise(&mut MemoryStore::new());
    }
}
