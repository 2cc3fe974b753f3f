//! The records store in PostgreSQL (`records.store: postgres://...`), for teams that keep
//! their records on a database server.
//!
//! Owns the PostgreSQL dialect of the schema in `store.rs` (JSON columns are JSONB) and the
//! connection. It uses the synchronous `postgres` client: it runs on the records writer's
//! own thread, never on a call's task. It must not retry or spool (the writer does).
//! Connections are made without TLS; a database on another host is reached through a
//! network the operator trusts (or a local TLS tunnel).

use std::str::FromStr;
use std::time::Duration;

use postgres::{Client, NoTls, Row, Transaction};

use super::store::{
    CALL_COLUMNS, CallFilter, Columns, Dialect, Store, StoreError, batch_events, detail_text,
    event_of, pending_migrations,
};
use super::{CallEvent, CallRecord, RecordMsg};

const DIALECT: Dialect = Dialect { json: "JSONB" };

/// How long a connection attempt may take when the URL sets no `connect_timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Any advisory lock number that is ours: migrations hold it so that two engines starting
/// together migrate one after the other.
const MIGRATION_LOCK: i64 = 0x0068_6f74_6c69_6e65;

pub struct PostgresStore {
    client: Client,
    shown: String,
}

/// The URL as logs may show it: without its password.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl PostgresStore {
    /// Connects. Call [`Store::migrate`] before anything else.
    pub fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        let shown = redact(url);
        let mut config = postgres::Config::from_str(url).map_err(|e| {
            StoreError::Target(format!("'{shown}' is not a usable PostgreSQL URL: {e}"))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("hotline");
        }
        let client = config.connect(NoTls).map_err(|e| StoreError::Backend {
            store: shown.clone(),
            source: Box::new(e),
        })?;
        Ok(PostgresStore { client, shown })
    }

    fn fail(&self, e: postgres::Error) -> StoreError {
        StoreError::Backend {
            store: self.shown.clone(),
            source: Box::new(e),
        }
    }
}

fn columns(r: &Row) -> Result<Columns, postgres::Error> {
    Ok(Columns {
        call_id: r.try_get(0)?,
        kind: r.try_get(1)?,
        caller: r.try_get(2)?,
        dialed: r.try_get(3)?,
        started_ms: r.try_get(4)?,
        answered_ms: r.try_get(5)?,
        ended_ms: r.try_get(6)?,
        flow: r.try_get(7)?,
        flow_version: r.try_get(8)?,
        language: r.try_get(9)?,
        outcome: r.try_get(10)?,
        hung_up_by: r.try_get(11)?,
        last_step: r.try_get(12)?,
        reason: r.try_get(13)?,
        tags: r.try_get(14)?,
        queue: r.try_get(15)?,
        agent: r.try_get(16)?,
        wait_ms: r.try_get(17)?,
        talk_ms: r.try_get(18)?,
        survey: r.try_get(19)?,
        recordings: r.try_get(20)?,
    })
}

/// The columns of `calls` as read back: the JSON ones as text.
fn select_columns() -> String {
    CALL_COLUMNS
        .replace("tags", "tags::text")
        .replace("survey", "survey::text")
        .replace("recordings", "recordings::text")
}

const UPSERT_HEAD: &str = "INSERT INTO calls (call_id, kind, caller, dialed, started_ms, answered_ms, \
ended_ms, flow, flow_version, language, outcome, hung_up_by, last_step, reason, tags, queue, \
agent, wait_ms, talk_ms, survey, recordings) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
$11, $12, $13, $14, $15::text::jsonb, $16, $17, $18, $19, $20::text::jsonb, $21::text::jsonb) \
ON CONFLICT (call_id) DO UPDATE SET \
kind = excluded.kind, caller = excluded.caller, dialed = excluded.dialed, \
started_ms = excluded.started_ms, answered_ms = excluded.answered_ms, \
ended_ms = excluded.ended_ms, flow = excluded.flow, flow_version = excluded.flow_version, \
language = excluded.language, outcome = excluded.outcome, hung_up_by = excluded.hung_up_by, \
last_step = excluded.last_step, reason = excluded.reason, tags = excluded.tags, \
queue = excluded.queue, agent = excluded.agent, wait_ms = excluded.wait_ms, \
talk_ms = excluded.talk_ms, survey = excluded.survey, recordings = excluded.recordings";

/// The two upserts, prepared once per transaction: a Begin never reopens a row that has
/// ended (see `Store`), a Finish sets the whole row.
struct Upserts {
    begin: postgres::Statement,
    finish: postgres::Statement,
}

impl Upserts {
    fn prepare(tx: &mut Transaction<'_>) -> Result<Upserts, postgres::Error> {
        Ok(Upserts {
            begin: tx.prepare(&format!("{UPSERT_HEAD} WHERE calls.ended_ms IS NULL"))?,
            finish: tx.prepare(UPSERT_HEAD)?,
        })
    }

    fn run(
        &self,
        tx: &mut Transaction<'_>,
        r: &CallRecord,
        finish: bool,
    ) -> Result<(), postgres::Error> {
        let c = Columns::of(r);
        let stmt = if finish { &self.finish } else { &self.begin };
        tx.execute(
            stmt,
            &[
                &c.call_id,
                &c.kind,
                &c.caller,
                &c.dialed,
                &c.started_ms,
                &c.answered_ms,
                &c.ended_ms,
                &c.flow,
                &c.flow_version,
                &c.language,
                &c.outcome,
                &c.hung_up_by,
                &c.last_step,
                &c.reason,
                &c.tags,
                &c.queue,
                &c.agent,
                &c.wait_ms,
                &c.talk_ms,
                &c.survey,
                &c.recordings,
            ],
        )?;
        Ok(())
    }
}

fn event_rows(store: &str, rows: Vec<Row>) -> Result<Vec<CallEvent>, StoreError> {
    rows.into_iter()
        .map(|r| {
            let get = || -> Result<(String, i32, i64, String, String), postgres::Error> {
                Ok((
                    r.try_get(0)?,
                    r.try_get(1)?,
                    r.try_get(2)?,
                    r.try_get(3)?,
                    r.try_get(4)?,
                ))
            };
            let (c, s, a, k, d) = get().map_err(|e| StoreError::Damaged {
                store: store.to_owned(),
                what: e.to_string(),
            })?;
            event_of(store, c, i64::from(s), a, k, &d)
        })
        .collect()
}

impl PostgresStore {
    fn records(&self, rows: Vec<Row>) -> Result<Vec<CallRecord>, StoreError> {
        rows.iter()
            .map(|r| {
                columns(r)
                    .map_err(|e| StoreError::Damaged {
                        store: self.shown.clone(),
                        what: e.to_string(),
                    })?
                    .into_record(&self.shown)
            })
            .collect()
    }
}

impl Store for PostgresStore {
    fn migrate(&mut self) -> Result<i64, StoreError> {
        let shown = self.shown.clone();
        let mut tx = self.client.transaction().map_err(|e| StoreError::Backend {
            store: shown.clone(),
            source: Box::new(e),
        })?;
        let fail = |e: postgres::Error| StoreError::Backend {
            store: shown.clone(),
            source: Box::new(e),
        };
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(fail)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            .map_err(fail)?;
        let current: i64 = tx
            .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
            .and_then(|r| r.try_get(0))
            .map_err(fail)?;
        let mut version = current;
        for (v, sql) in pending_migrations(current, &DIALECT, &shown)? {
            tx.batch_execute(&sql).map_err(fail)?;
            tx.execute("INSERT INTO schema_version (version) VALUES ($1)", &[&v])
                .map_err(fail)?;
            version = v;
        }
        tx.commit().map_err(fail)?;
        Ok(version)
    }

    fn write(&mut self, batch: &[RecordMsg]) -> Result<(), StoreError> {
        let run = |client: &mut Client| -> Result<(), postgres::Error> {
            let mut tx = client.transaction()?;
            if batch.iter().any(|m| !matches!(m, RecordMsg::Events(_))) {
                let upserts = Upserts::prepare(&mut tx)?;
                for m in batch {
                    match m {
                        RecordMsg::Begin(r) => upserts.run(&mut tx, r, false)?,
                        RecordMsg::Finish(r, _) => upserts.run(&mut tx, r, true)?,
                        RecordMsg::Events(_) => {}
                    }
                }
            }
            // All the batch's events in one statement: one round trip, not one per event.
            let (mut ids, mut seqs, mut ats, mut kinds, mut details) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for e in batch_events(batch) {
                ids.push(e.call_id.as_str());
                seqs.push(i32::try_from(e.seq).unwrap_or(i32::MAX));
                ats.push(e.at_ms);
                kinds.push(e.kind.as_str());
                details.push(detail_text(e));
            }
            if !ids.is_empty() {
                tx.execute(
                    "INSERT INTO events (call_id, seq, at_ms, kind, detail)
                     SELECT c, s, a, k, d::jsonb
                     FROM UNNEST($1::text[], $2::int4[], $3::int8[], $4::text[], $5::text[])
                       AS t(c, s, a, k, d)
                     ON CONFLICT (call_id, seq) DO NOTHING",
                    &[&ids, &seqs, &ats, &kinds, &details],
                )?;
            }
            tx.commit()
        };
        run(&mut self.client).map_err(|e| self.fail(e))
    }

    fn interrupt_open(&mut self, now_ms: i64) -> Result<u64, StoreError> {
        self.client
            .execute(
                "UPDATE calls SET outcome = 'interrupted', ended_ms = GREATEST($1, started_ms)
                 WHERE ended_ms IS NULL AND started_ms <= $1",
                &[&now_ms],
            )
            .map_err(|e| self.fail(e))
    }

    fn calls(&mut self, filter: &CallFilter) -> Result<Vec<CallRecord>, StoreError> {
        let limit = filter.last.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        let sql = format!(
            "SELECT {} FROM calls
             WHERE ($1::int8 IS NULL OR started_ms >= $1) AND ($2::int8 IS NULL OR started_ms < $2)
               AND ($3::text IS NULL OR caller = $3)
             ORDER BY started_ms DESC, call_id DESC LIMIT $4",
            select_columns()
        );
        let rows = self
            .client
            .query(
                &sql,
                &[&filter.since_ms, &filter.until_ms, &filter.caller, &limit],
            )
            .map_err(|e| self.fail(e))?;
        let mut out = self.records(rows)?;
        out.reverse();
        Ok(out)
    }

    fn call(&mut self, call_id: &str) -> Result<Option<CallRecord>, StoreError> {
        let sql = format!("SELECT {} FROM calls WHERE call_id = $1", select_columns());
        let rows = self
            .client
            .query(&sql, &[&call_id])
            .map_err(|e| self.fail(e))?;
        Ok(self.records(rows)?.pop())
    }

    fn events(&mut self, call_id: &str) -> Result<Vec<CallEvent>, StoreError> {
        let rows = self
            .client
            .query(
                "SELECT call_id, seq, at_ms, kind, detail::text FROM events
                 WHERE call_id = $1 ORDER BY seq",
                &[&call_id],
            )
            .map_err(|e| self.fail(e))?;
        event_rows(&self.shown, rows)
    }

    fn records_between(
        &mut self,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<(Vec<CallRecord>, Vec<CallEvent>), StoreError> {
        let shown = self.shown.clone();
        let fail = |e: postgres::Error| StoreError::Backend {
            store: shown.clone(),
            source: Box::new(e),
        };
        // One snapshot, so the calls and their events agree.
        let mut tx = self
            .client
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(fail)?;
        let sql = format!(
            "SELECT {} FROM calls WHERE started_ms >= $1 AND started_ms < $2
             ORDER BY started_ms, call_id",
            select_columns()
        );
        let calls = tx.query(&sql, &[&since_ms, &until_ms]).map_err(fail)?;
        let events = tx
            .query(
                "SELECT e.call_id, e.seq, e.at_ms, e.kind, e.detail::text FROM events e
                 JOIN calls c ON c.call_id = e.call_id
                 WHERE c.started_ms >= $1 AND c.started_ms < $2
                 ORDER BY c.started_ms, e.call_id, e.seq",
                &[&since_ms, &until_ms],
            )
            .map_err(fail)?;
        tx.commit().map_err(fail)?;
        Ok((self.records(calls)?, event_rows(&shown, events)?))
    }

    fn delete_before(&mut self, before_ms: i64, batch: usize) -> Result<u64, StoreError> {
        let batch = i64::try_from(batch).unwrap_or(i64::MAX);
        let run = |client: &mut Client| -> Result<u64, postgres::Error> {
            let mut tx = client.transaction()?;
            let doomed: Vec<String> = tx
                .query(
                    "SELECT call_id FROM calls WHERE started_ms < $1 ORDER BY started_ms LIMIT $2",
                    &[&before_ms, &batch],
                )?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
            tx.execute("DELETE FROM events WHERE call_id = ANY($1)", &[&doomed])?;
            let n = tx.execute("DELETE FROM calls WHERE call_id = ANY($1)", &[&doomed])?;
            tx.execute(
                "DELETE FROM events WHERE ctid IN (SELECT e.ctid FROM events e
                   WHERE e.at_ms < $1 AND NOT EXISTS (SELECT 1 FROM calls c WHERE c.call_id = e.call_id)
                   LIMIT $2)",
                &[&before_ms, &batch],
            )?;
            tx.commit()?;
            Ok(n)
        };
        run(&mut self.client).map_err(|e| self.fail(e))
    }

    fn describe(&self) -> String {
        self.shown.clone()
    }
}
