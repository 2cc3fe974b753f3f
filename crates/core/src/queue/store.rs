//! Where callback requests are kept so they survive a restart of the engine.
//!
//! Owns the [`CallbackStore`] interface and two implementations: SQLite (a real file, the
//! default) and memory (tests). The `Acd` is the only writer. Live waiting state stays in
//! memory; this interface is the seam where queue state can later move to a store shared
//! by several engines. It must not decide anything about the line: it keeps and returns
//! entries in the order they were added.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, params};
use serde::Serialize;

/// Identifies one callback request; assigned by the store, increasing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
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
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("callback store {path}: {source}")]
    Sqlite {
        path: String,
        source: rusqlite::Error,
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

/// Callback requests in an SQLite file. Every change is its own transaction, so a request
/// acknowledged to the caller is on disk.
pub struct SqliteStore {
    conn: Connection,
    path: String,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (or creates) the file and its table.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        let err = |source| StoreError::Sqlite {
            path: shown.clone(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS queue_callbacks (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 queue TEXT NOT NULL,
                 number TEXT NOT NULL,
                 priority INTEGER NOT NULL,
                 skills TEXT NOT NULL,
                 waited_ms INTEGER NOT NULL,
                 attempts INTEGER NOT NULL,
                 place INTEGER NOT NULL
             );",
        )
        .map_err(err)?;
        Ok(SqliteStore { conn, path: shown })
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }
}

impl CallbackStore for SqliteStore {
    fn load(&mut self) -> Result<Vec<StoredCallback>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, queue, number, priority, skills, waited_ms, attempts, place
                 FROM queue_callbacks ORDER BY place, id",
            )
            .map_err(|e| self.err(e))?;
        type Row = (i64, String, String, i64, String, i64, i64, i64);
        let rows: Vec<Row> = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            })
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))?;
        drop(stmt);
        let damaged = |what: String| StoreError::Damaged {
            path: self.path.clone(),
            what,
        };
        rows.into_iter()
            .map(
                |(id, queue, number, priority, skills, waited_ms, attempts, place)| {
                    let skills: Vec<String> = serde_json::from_str(&skills)
                        .map_err(|e| damaged(format!("entry {id}: skills: {e}")))?;
                    Ok(StoredCallback {
                        id: CallbackId(
                            u64::try_from(id).map_err(|_| damaged(format!("negative id {id}")))?,
                        ),
                        queue,
                        number,
                        priority: i32::try_from(priority)
                            .map_err(|_| damaged(format!("entry {id}: priority {priority}")))?,
                        skills,
                        waited: Duration::from_millis(u64::try_from(waited_ms).unwrap_or(0)),
                        attempts: u32::try_from(attempts).unwrap_or(0),
                        place: u64::try_from(place).unwrap_or(0),
                    })
                },
            )
            .collect()
    }

    fn add(&mut self, entry: &StoredCallback) -> Result<CallbackId, StoreError> {
        let skills = serde_json::to_string(&entry.skills).unwrap_or_else(|_| "[]".to_owned());
        let waited_ms = i64::try_from(entry.waited.as_millis()).unwrap_or(i64::MAX);
        self.conn
            .execute(
                "INSERT INTO queue_callbacks (queue, number, priority, skills, waited_ms, attempts, place)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    entry.queue,
                    entry.number,
                    entry.priority,
                    skills,
                    waited_ms,
                    entry.attempts,
                    i64::try_from(entry.place).unwrap_or(i64::MAX)
                ],
            )
            .map_err(|e| self.err(e))?;
        let id = self.conn.last_insert_rowid();
        Ok(CallbackId(u64::try_from(id).unwrap_or(0)))
    }

    fn set_attempts(&mut self, id: CallbackId, attempts: u32) -> Result<(), StoreError> {
        let key = i64::try_from(id.0).unwrap_or(i64::MAX);
        self.conn
            .execute(
                "UPDATE queue_callbacks SET attempts = ?1 WHERE id = ?2",
                params![attempts, key],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    fn remove(&mut self, id: CallbackId) -> Result<(), StoreError> {
        let key = i64::try_from(id.0).unwrap_or(i64::MAX);
        self.conn
            .execute("DELETE FROM queue_callbacks WHERE id = ?1", params![key])
            .map(|_| ())
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(queue: &str, number: &str, waited: u64) -> StoredCallback {
        StoredCallback {
            place: 100 - waited,
            id: CallbackId(0),
            queue: queue.to_owned(),
            number: number.to_owned(),
            priority: 0,
            skills: vec!["french".to_owned()],
            waited: Duration::from_secs(waited),
            attempts: 0,
        }
    }

    fn exercise(store: &mut dyn CallbackStore) {
        let a = store.add(&entry("support", "+4930111", 60)).unwrap();
        let b = store.add(&entry("support", "+4930222", 30)).unwrap();
        assert!(a < b);
        store.set_attempts(a, 2).unwrap();
        let all = store.load().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].attempts, 2);
        assert_eq!(all[1].skills, ["french"]);
        store.remove(a).unwrap();
        assert_eq!(store.load().unwrap().len(), 1);
    }

    #[test]
    fn memory_store_keeps_order() {
        exercise(&mut MemoryStore::new());
    }

    #[test]
    fn sqlite_store_keeps_entries_in_order_across_a_restart() {
        let dir = std::env::temp_dir().join(format!("hotline-cb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("callbacks.sqlite");
        let _ = std::fs::remove_file(&path);
        {
            let mut s = SqliteStore::open(&path).unwrap();
            exercise(&mut s);
            s.add(&entry("sales", "+4930333", 5)).unwrap();
        }
        let mut s = SqliteStore::open(&path).unwrap();
        let all = s.load().unwrap();
        let numbers: Vec<&str> = all.iter().map(|e| e.number.as_str()).collect();
        assert_eq!(numbers, ["+4930222", "+4930333"]);
        assert_eq!(all[0].waited, Duration::from_secs(30));
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
