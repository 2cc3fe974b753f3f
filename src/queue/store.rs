//! Where callback requests are kept so they survive a restart of the engine: the SQLite
//! store behind the core's [`CallbackStore`] interface (re-exported here with the rest of
//! `hotline_core::queue::store`). Every change is written before the ACD goes on; it must
//! not decide anything about the line.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, params};

pub use hotline_core::queue::store::*;

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
        let err = |source: rusqlite::Error| StoreError::Backend {
            path: shown.clone(),
            source: Box::new(source),
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
                 place INTEGER NOT NULL,
                 for_call TEXT NOT NULL DEFAULT ''
             );",
        )
        .map_err(err)?;
        // A file made before the asking call was kept gets the column (its requests keep
        // an empty link).
        let has_for_call = conn
            .prepare("SELECT 1 FROM pragma_table_info('queue_callbacks') WHERE name = 'for_call'")
            .and_then(|mut s| s.exists([]))
            .map_err(err)?;
        if !has_for_call {
            conn.execute_batch(
                "ALTER TABLE queue_callbacks ADD COLUMN for_call TEXT NOT NULL DEFAULT ''",
            )
            .map_err(err)?;
        }
        Ok(SqliteStore { conn, path: shown })
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Backend {
            path: self.path.clone(),
            source: Box::new(source),
        }
    }
}

impl CallbackStore for SqliteStore {
    fn load(&mut self) -> Result<Vec<StoredCallback>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, queue, number, priority, skills, waited_ms, attempts, place, for_call
                 FROM queue_callbacks ORDER BY place, id",
            )
            .map_err(|e| self.err(e))?;
        type Row = (i64, String, String, i64, String, i64, i64, i64, String);
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
                    r.get(8)?,
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
                |(id, queue, number, priority, skills, waited_ms, attempts, place, for_call)| {
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
                        for_call,
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
                "INSERT INTO queue_callbacks (queue, number, priority, skills, waited_ms, attempts, place, for_call)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    entry.queue,
                    entry.number,
                    entry.priority,
                    skills,
                    waited_ms,
                    entry.attempts,
                    i64::try_from(entry.place).unwrap_or(i64::MAX),
                    entry.for_call
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
    use std::time::Duration;

    use super::*;
    use hotline_core::queue::store::contract::{entry, exercise};

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
