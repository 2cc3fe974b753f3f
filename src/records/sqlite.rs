//! The records store in an SQLite file, the default: nothing to install or start.
//!
//! Owns the SQLite dialect of the schema in `store.rs` and the connection's settings: WAL
//! (readers such as `hotline records` never block the writer), `synchronous=NORMAL` (a
//! commit survives a crash of the engine; only a power cut may lose the last commits),
//! and a busy timeout, so a short lock held by another process is waited out rather than
//! failed. It must not retry or spool (the writer does).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::store::{
    CALL_COLUMNS, CallFilter, Columns, Dialect, Store, StoreError, batch_events, detail_text,
    event_of, pending_migrations,
};
use super::{CallEvent, CallRecord, RecordMsg};

/// How long a statement waits for another connection's lock before failing.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(2);

const DIALECT: Dialect = Dialect { json: "TEXT" };

pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (or creates) the file. Call [`Store::migrate`] before anything else.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        Self::open_with(path, DEFAULT_BUSY_TIMEOUT)
    }

    pub fn open_with(path: &Path, busy_timeout: Duration) -> Result<SqliteStore, StoreError> {
        let fail = |e: rusqlite::Error| StoreError::Backend {
            store: path.display().to_string(),
            source: Box::new(e),
        };
        let conn = Connection::open(path).map_err(fail)?;
        conn.busy_timeout(busy_timeout).map_err(fail)?;
        // journal_mode answers with a row, so it is queried rather than executed.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(fail)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "records store is not in WAL mode");
        }
        conn.execute_batch("PRAGMA synchronous = NORMAL")
            .map_err(fail)?;
        Ok(SqliteStore {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn fail(&self, e: rusqlite::Error) -> StoreError {
        StoreError::Backend {
            store: self.describe(),
            source: Box::new(e),
        }
    }
}

fn columns(r: &rusqlite::Row<'_>) -> rusqlite::Result<Columns> {
    Ok(Columns {
        call_id: r.get(0)?,
        kind: r.get(1)?,
        caller: r.get(2)?,
        dialed: r.get(3)?,
        started_ms: r.get(4)?,
        answered_ms: r.get(5)?,
        ended_ms: r.get(6)?,
        flow: r.get(7)?,
        flow_version: r.get(8)?,
        language: r.get(9)?,
        outcome: r.get(10)?,
        hung_up_by: r.get(11)?,
        last_step: r.get(12)?,
        reason: r.get(13)?,
        tags: r.get(14)?,
        queue: r.get(15)?,
        agent: r.get(16)?,
        wait_ms: r.get(17)?,
        talk_ms: r.get(18)?,
        survey: r.get(19)?,
        recordings: r.get(20)?,
    })
}

const UPSERT_HEAD: &str = "INSERT INTO calls (call_id, kind, caller, dialed, started_ms, answered_ms, \
ended_ms, flow, flow_version, language, outcome, hung_up_by, last_step, reason, tags, queue, \
agent, wait_ms, talk_ms, survey, recordings) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, \
?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21) ON CONFLICT (call_id) DO UPDATE SET \
kind = excluded.kind, caller = excluded.caller, dialed = excluded.dialed, \
started_ms = excluded.started_ms, answered_ms = excluded.answered_ms, \
ended_ms = excluded.ended_ms, flow = excluded.flow, flow_version = excluded.flow_version, \
language = excluded.language, outcome = excluded.outcome, hung_up_by = excluded.hung_up_by, \
last_step = excluded.last_step, reason = excluded.reason, tags = excluded.tags, \
queue = excluded.queue, agent = excluded.agent, wait_ms = excluded.wait_ms, \
talk_ms = excluded.talk_ms, survey = excluded.survey, recordings = excluded.recordings";

fn upsert(tx: &Transaction<'_>, r: &CallRecord, finish: bool) -> rusqlite::Result<()> {
    // A Begin never reopens a row that has ended (see `Store`).
    let sql = if finish {
        UPSERT_HEAD.to_owned()
    } else {
        format!("{UPSERT_HEAD} WHERE calls.ended_ms IS NULL")
    };
    let c = Columns::of(r);
    tx.prepare_cached(&sql)?.execute(params![
        c.call_id,
        c.kind,
        c.caller,
        c.dialed,
        c.started_ms,
        c.answered_ms,
        c.ended_ms,
        c.flow,
        c.flow_version,
        c.language,
        c.outcome,
        c.hung_up_by,
        c.last_step,
        c.reason,
        c.tags,
        c.queue,
        c.agent,
        c.wait_ms,
        c.talk_ms,
        c.survey,
        c.recordings,
    ])?;
    Ok(())
}

impl Store for SqliteStore {
    fn migrate(&mut self) -> Result<i64, StoreError> {
        let store = self.describe();
        // IMMEDIATE: two engines opening one file migrate one after the other.
        let fail = |e: rusqlite::Error| StoreError::Backend {
            store: store.clone(),
            source: Box::new(e),
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(fail)?;
        let run = || -> Result<i64, StoreError> {
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
            )
            .map_err(fail)?;
            let current: i64 = tx
                .query_row(
                    "SELECT COALESCE(MAX(version), 0) FROM schema_version",
                    [],
                    |r| r.get(0),
                )
                .map_err(fail)?;
            let mut version = current;
            for (v, sql) in pending_migrations(current, &DIALECT, &store)? {
                tx.execute_batch(&sql).map_err(fail)?;
                tx.execute("INSERT INTO schema_version (version) VALUES (?1)", [v])
                    .map_err(fail)?;
                version = v;
            }
            Ok(version)
        };
        let version = run()?;
        tx.commit().map_err(fail)?;
        Ok(version)
    }

    fn write(&mut self, batch: &[RecordMsg]) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(|e| StoreError::Backend {
            store: self.path.display().to_string(),
            source: Box::new(e),
        })?;
        let run = || -> rusqlite::Result<()> {
            for m in batch {
                match m {
                    RecordMsg::Begin(r) => upsert(&tx, r, false)?,
                    RecordMsg::Finish(r, _) => upsert(&tx, r, true)?,
                    RecordMsg::Events(_) => {}
                }
            }
            let mut ins = tx.prepare_cached(
                "INSERT INTO events (call_id, seq, at_ms, kind, detail) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (call_id, seq) DO NOTHING",
            )?;
            for e in batch_events(batch) {
                ins.execute(params![e.call_id, e.seq, e.at_ms, e.kind, detail_text(e)])?;
            }
            Ok(())
        };
        let result = run().and_then(|()| tx.commit());
        result.map_err(|e| self.fail(e))
    }

    fn interrupt_open(&mut self, now_ms: i64) -> Result<u64, StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE calls SET outcome = 'interrupted', ended_ms = MAX(?1, started_ms)
                 WHERE ended_ms IS NULL AND started_ms <= ?1",
                [now_ms],
            )
            .map_err(|e| self.fail(e))?;
        Ok(n as u64)
    }

    fn calls(&mut self, filter: &CallFilter) -> Result<Vec<CallRecord>, StoreError> {
        let limit = filter
            .last
            .map(|n| i64::try_from(n).unwrap_or(i64::MAX))
            .unwrap_or(-1);
        let sql = format!(
            "SELECT {CALL_COLUMNS} FROM calls
             WHERE (?1 IS NULL OR started_ms >= ?1) AND (?2 IS NULL OR started_ms < ?2)
               AND (?3 IS NULL OR caller = ?3)
             ORDER BY started_ms DESC, call_id DESC LIMIT ?4"
        );
        let rows: Vec<Columns> = self
            .conn
            .prepare_cached(&sql)
            .and_then(|mut s| {
                s.query_map(
                    params![filter.since_ms, filter.until_ms, filter.caller, limit],
                    columns,
                )?
                .collect()
            })
            .map_err(|e| self.fail(e))?;
        let store = self.describe();
        let mut out = rows
            .into_iter()
            .map(|c| c.into_record(&store))
            .collect::<Result<Vec<_>, _>>()?;
        out.reverse();
        Ok(out)
    }

    fn call(&mut self, call_id: &str) -> Result<Option<CallRecord>, StoreError> {
        let sql = format!("SELECT {CALL_COLUMNS} FROM calls WHERE call_id = ?1");
        let row = self
            .conn
            .query_row(&sql, [call_id], columns)
            .optional()
            .map_err(|e| self.fail(e))?;
        row.map(|c| c.into_record(&self.describe())).transpose()
    }

    fn events(&mut self, call_id: &str) -> Result<Vec<CallEvent>, StoreError> {
        type Row = (String, i64, i64, String, String);
        let rows: Vec<Row> = self
            .conn
            .prepare_cached(
                "SELECT call_id, seq, at_ms, kind, detail FROM events WHERE call_id = ?1 ORDER BY seq",
            )
            .and_then(|mut s| {
                s.query_map([call_id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect()
            })
            .map_err(|e| self.fail(e))?;
        let store = self.describe();
        rows.into_iter()
            .map(|(c, s, a, k, d)| event_of(&store, c, s, a, k, &d))
            .collect()
    }

    fn records_between(
        &mut self,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<(Vec<CallRecord>, Vec<CallEvent>), StoreError> {
        let store = self.describe();
        // One read transaction, so the calls and their events agree.
        let tx = self.conn.transaction().map_err(|e| StoreError::Backend {
            store: store.clone(),
            source: Box::new(e),
        })?;
        let fail = |e: rusqlite::Error| StoreError::Backend {
            store: store.clone(),
            source: Box::new(e),
        };
        let sql = format!(
            "SELECT {CALL_COLUMNS} FROM calls WHERE started_ms >= ?1 AND started_ms < ?2
             ORDER BY started_ms, call_id"
        );
        let rows: Vec<Columns> = tx
            .prepare(&sql)
            .and_then(|mut s| s.query_map([since_ms, until_ms], columns)?.collect())
            .map_err(fail)?;
        type Row = (String, i64, i64, String, String);
        let events: Vec<Row> = tx
            .prepare(
                "SELECT e.call_id, e.seq, e.at_ms, e.kind, e.detail FROM events e
                 JOIN calls c ON c.call_id = e.call_id
                 WHERE c.started_ms >= ?1 AND c.started_ms < ?2
                 ORDER BY c.started_ms, e.call_id, e.seq",
            )
            .and_then(|mut s| {
                s.query_map([since_ms, until_ms], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect()
            })
            .map_err(fail)?;
        tx.commit().map_err(fail)?;
        let records = rows
            .into_iter()
            .map(|c| c.into_record(&store))
            .collect::<Result<Vec<_>, _>>()?;
        let events = events
            .into_iter()
            .map(|(c, s, a, k, d)| event_of(&store, c, s, a, k, &d))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((records, events))
    }

    fn delete_before(&mut self, before_ms: i64, batch: usize) -> Result<u64, StoreError> {
        let store = self.describe();
        let batch = i64::try_from(batch).unwrap_or(i64::MAX);
        let tx = self.conn.transaction().map_err(|e| StoreError::Backend {
            store: store.clone(),
            source: Box::new(e),
        })?;
        let run = || -> rusqlite::Result<u64> {
            tx.execute(
                "CREATE TEMP TABLE IF NOT EXISTS doomed (call_id TEXT PRIMARY KEY)",
                [],
            )?;
            tx.execute("DELETE FROM temp.doomed", [])?;
            tx.execute(
                "INSERT INTO temp.doomed SELECT call_id FROM calls WHERE started_ms < ?1
                 ORDER BY started_ms LIMIT ?2",
                params![before_ms, batch],
            )?;
            tx.execute(
                "DELETE FROM events WHERE call_id IN (SELECT call_id FROM temp.doomed)",
                [],
            )?;
            let n = tx.execute(
                "DELETE FROM calls WHERE call_id IN (SELECT call_id FROM temp.doomed)",
                [],
            )?;
            tx.execute(
                "DELETE FROM events WHERE rowid IN (SELECT e.rowid FROM events e
                   WHERE e.at_ms < ?1 AND NOT EXISTS (SELECT 1 FROM calls c WHERE c.call_id = e.call_id)
                   LIMIT ?2)",
                params![before_ms, batch],
            )?;
            tx.execute("DELETE FROM temp.doomed", [])?;
            Ok(n as u64)
        };
        let n = run().map_err(|e| StoreError::Backend {
            store: store.clone(),
            source: Box::new(e),
        })?;
        tx.commit().map_err(|e| StoreError::Backend {
            store,
            source: Box::new(e),
        })?;
        Ok(n)
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}
