//! The call-records store's interface, which the SQLite and PostgreSQL back ends both
//! implement, and what they share: the logical schema, its migrations, and the mapping
//! between a [`CallRecord`] and its columns.
//!
//! Owns what a store must do (write batches of [`RecordMsg`]s atomically and idempotently,
//! mark the rows an earlier run left open, answer the CLI's and the reports' queries,
//! delete old rows). It must not decide when to write, retry or spool (the writer does)
//! and holds no SQL dialect of its own beyond the schema both dialects are made from.
//!
//! Tags, survey answers and recordings are JSON columns (TEXT in SQLite, JSONB in
//! PostgreSQL) holding exactly what `serde_json` makes of the record's fields: tags as
//! `[["name","value"], ...]`, survey as `[{"question":..,"score":..}]`, recordings as
//! `[{"path":..,"duration_ms":..}]`. Events' `detail` is a JSON column too.

use super::{CallEvent, CallKind, CallOutcome, CallRecord, HungUpBy, RecordMsg};

/// A store that failed. `store` names it (a path or a URL without its password).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("records store {store}: {source}")]
    Backend {
        store: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("records store {store}: a row cannot be read: {what}")]
    Damaged { store: String, what: String },
    #[error(
        "records store {store}: its schema is at version {found}, newer than this hotline knows ({known}); upgrade hotline"
    )]
    TooNew {
        store: String,
        found: i64,
        known: i64,
    },
    #[error("records store: {0}")]
    Target(String),
}

/// Which calls [`Store::calls`] lists. Times are Unix milliseconds, on `started_ms`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallFilter {
    /// Calls started at or after this.
    pub since_ms: Option<i64>,
    /// Calls started before this.
    pub until_ms: Option<i64>,
    /// Calls from this number only.
    pub caller: Option<String>,
    /// Only the newest N of those.
    pub last: Option<usize>,
}

/// What both back ends do. Every method is one transaction; a failed one changed nothing.
///
/// Writes are idempotent and do not depend on their order across messages, because the
/// spool may replay a message after later ones landed: a `Finish` always sets the whole
/// row, a `Begin` never reopens a row that has ended, and an event already stored
/// (same `call_id` and `seq`) is ignored.
pub trait Store: Send {
    /// Brings the schema up to date (from empty, or from an older version); running it
    /// again changes nothing. Returns the schema version.
    fn migrate(&mut self) -> Result<i64, StoreError>;

    /// Writes the messages in one transaction.
    fn write(&mut self, batch: &[RecordMsg]) -> Result<(), StoreError>;

    /// Every row started at or before `now_ms` that has no end gets outcome `interrupted`
    /// and ends at `now_ms`: those calls were in progress when an earlier run stopped.
    /// Returns how many.
    fn interrupt_open(&mut self, now_ms: i64) -> Result<u64, StoreError>;

    /// The calls `filter` selects, oldest first.
    fn calls(&mut self, filter: &CallFilter) -> Result<Vec<CallRecord>, StoreError>;

    fn call(&mut self, call_id: &str) -> Result<Option<CallRecord>, StoreError>;

    /// One call's events in order.
    fn events(&mut self, call_id: &str) -> Result<Vec<CallEvent>, StoreError>;

    /// The calls started in `[since_ms, until_ms)`, oldest first, and all their events
    /// (by call, in order): what the reports are computed from.
    fn records_between(
        &mut self,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<(Vec<CallRecord>, Vec<CallEvent>), StoreError>;

    /// Deletes at most `batch` calls started before `before_ms` with their events (and
    /// events older than that whose call has no row). Returns the calls deleted; fewer
    /// than `batch` means nothing older is left.
    fn delete_before(&mut self, before_ms: i64, batch: usize) -> Result<u64, StoreError>;

    /// The store as logs should name it (never with a password).
    fn describe(&self) -> String;

    fn begin(&mut self, record: &CallRecord) -> Result<(), StoreError> {
        self.write(&[RecordMsg::Begin(record.clone())])
    }

    fn append(&mut self, events: &[CallEvent]) -> Result<(), StoreError> {
        self.write(&[RecordMsg::Events(events.to_vec())])
    }

    fn finish(&mut self, record: &CallRecord, events: &[CallEvent]) -> Result<(), StoreError> {
        self.write(&[RecordMsg::Finish(record.clone(), events.to_vec())])
    }
}

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i64 = 1;

/// How a back end spells the types the schema needs.
pub struct Dialect {
    /// A JSON column.
    pub json: &'static str,
}

/// The migrations, oldest first: migration `i` brings the schema to version `i + 1`. Both
/// back ends run the same text, with `{json}` replaced by their JSON type.
const MIGRATIONS: &[&str] = &["
CREATE TABLE calls (
    call_id      TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    caller       TEXT NOT NULL,
    dialed       TEXT NOT NULL,
    started_ms   BIGINT NOT NULL,
    answered_ms  BIGINT,
    ended_ms     BIGINT,
    flow         TEXT NOT NULL,
    flow_version TEXT NOT NULL,
    language     TEXT NOT NULL,
    outcome      TEXT,
    hung_up_by   TEXT,
    last_step    TEXT,
    reason       TEXT,
    tags         {json} NOT NULL,
    queue        TEXT,
    agent        TEXT,
    wait_ms      BIGINT,
    talk_ms      BIGINT,
    survey       {json} NOT NULL,
    recordings   {json} NOT NULL
);
CREATE INDEX calls_started ON calls (started_ms);
CREATE INDEX calls_caller ON calls (caller, started_ms);
CREATE INDEX calls_open ON calls (started_ms) WHERE ended_ms IS NULL;
CREATE TABLE events (
    call_id TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    at_ms   BIGINT NOT NULL,
    kind    TEXT NOT NULL,
    detail  {json} NOT NULL,
    PRIMARY KEY (call_id, seq)
);
CREATE INDEX events_at ON events (at_ms);
"];

/// The statements that bring a schema at `current` to the newest version, each with the
/// version it reaches.
pub fn pending_migrations(
    current: i64,
    dialect: &Dialect,
    store: &str,
) -> Result<Vec<(i64, String)>, StoreError> {
    if current > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            store: store.to_owned(),
            found: current,
            known: SCHEMA_VERSION,
        });
    }
    Ok(MIGRATIONS
        .iter()
        .enumerate()
        .map(|(i, sql)| (i as i64 + 1, sql.replace("{json}", dialect.json)))
        .filter(|(v, _)| *v > current)
        .collect())
}

/// The columns of `calls`, in the order [`Columns`] holds them.
pub const CALL_COLUMNS: &str = "call_id, kind, caller, dialed, started_ms, answered_ms, \
ended_ms, flow, flow_version, language, outcome, hung_up_by, last_step, reason, tags, queue, \
agent, wait_ms, talk_ms, survey, recordings";

/// A record as its row holds it: text for names, JSON text for the lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    pub call_id: String,
    pub kind: String,
    pub caller: String,
    pub dialed: String,
    pub started_ms: i64,
    pub answered_ms: Option<i64>,
    pub ended_ms: Option<i64>,
    pub flow: String,
    pub flow_version: String,
    pub language: String,
    pub outcome: Option<String>,
    pub hung_up_by: Option<String>,
    pub last_step: Option<String>,
    pub reason: Option<String>,
    pub tags: String,
    pub queue: Option<String>,
    pub agent: Option<String>,
    pub wait_ms: Option<i64>,
    pub talk_ms: Option<i64>,
    pub survey: String,
    pub recordings: String,
}

fn json_text<T: serde::Serialize>(value: &T) -> String {
    // Plain data of strings and numbers always serialises.
    serde_json::to_string(value).unwrap_or_else(|_| "[]".to_owned())
}

fn clamp_ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Columns {
    pub fn of(r: &CallRecord) -> Columns {
        Columns {
            call_id: r.call_id.clone(),
            kind: kind_name(r.kind).to_owned(),
            caller: r.caller.clone(),
            dialed: r.dialed.clone(),
            started_ms: r.started_ms,
            answered_ms: r.answered_ms,
            ended_ms: r.ended_ms,
            flow: r.flow.clone(),
            flow_version: r.flow_version.clone(),
            language: r.language.clone(),
            outcome: r.outcome.map(|o| o.as_str().to_owned()),
            hung_up_by: r.hung_up_by.map(|h| h.as_str().to_owned()),
            last_step: r.last_step.clone(),
            reason: r.reason.clone(),
            tags: json_text(&r.tags),
            queue: r.queue.clone(),
            agent: r.agent.clone(),
            wait_ms: r.wait_ms.map(clamp_ms),
            talk_ms: r.talk_ms.map(clamp_ms),
            survey: json_text(&r.survey),
            recordings: json_text(&r.recordings),
        }
    }

    /// The record again; `store` names the store in the error of a damaged row.
    pub fn into_record(self, store: &str) -> Result<CallRecord, StoreError> {
        let id = self.call_id.clone();
        let damaged = |what: String| StoreError::Damaged {
            store: store.to_owned(),
            what: format!("call {id}: {what}"),
        };
        let json = |name: &str, text: &str| -> Result<serde_json::Value, StoreError> {
            serde_json::from_str(text).map_err(|e| damaged(format!("{name}: {e}")))
        };
        let kind = match self.kind.as_str() {
            "inbound" => CallKind::Inbound,
            "callback" => CallKind::Callback,
            other => return Err(damaged(format!("kind '{other}'"))),
        };
        let outcome = self
            .outcome
            .map(|o| o.parse::<CallOutcome>().map_err(|e| damaged(e.to_string())))
            .transpose()?;
        let hung_up_by = match self.hung_up_by.as_deref() {
            None => None,
            Some("caller") => Some(HungUpBy::Caller),
            Some("agent") => Some(HungUpBy::Agent),
            Some("engine") => Some(HungUpBy::Engine),
            Some(other) => return Err(damaged(format!("hung_up_by '{other}'"))),
        };
        let ms = |name: &str, v: Option<i64>| -> Result<Option<u64>, StoreError> {
            v.map(|v| u64::try_from(v).map_err(|_| damaged(format!("{name} {v}"))))
                .transpose()
        };
        let tags = serde_json::from_value(json("tags", &self.tags)?)
            .map_err(|e| damaged(format!("tags: {e}")))?;
        let survey = serde_json::from_value(json("survey", &self.survey)?)
            .map_err(|e| damaged(format!("survey: {e}")))?;
        let recordings = serde_json::from_value(json("recordings", &self.recordings)?)
            .map_err(|e| damaged(format!("recordings: {e}")))?;
        Ok(CallRecord {
            wait_ms: ms("wait_ms", self.wait_ms)?,
            talk_ms: ms("talk_ms", self.talk_ms)?,
            call_id: self.call_id,
            kind,
            caller: self.caller,
            dialed: self.dialed,
            started_ms: self.started_ms,
            answered_ms: self.answered_ms,
            ended_ms: self.ended_ms,
            flow: self.flow,
            flow_version: self.flow_version,
            language: self.language,
            outcome,
            hung_up_by,
            last_step: self.last_step,
            reason: self.reason,
            tags,
            queue: self.queue,
            agent: self.agent,
            survey,
            recordings,
        })
    }
}

pub fn kind_name(k: CallKind) -> &'static str {
    match k {
        CallKind::Inbound => "inbound",
        CallKind::Callback => "callback",
    }
}

/// An event's detail as stored.
pub fn detail_text(e: &CallEvent) -> String {
    e.detail.to_string()
}

/// An event again from its columns.
pub fn event_of(
    store: &str,
    call_id: String,
    seq: i64,
    at_ms: i64,
    kind: String,
    detail: &str,
) -> Result<CallEvent, StoreError> {
    let damaged = |what: String| StoreError::Damaged {
        store: store.to_owned(),
        what: format!("event {call_id}#{seq}: {what}"),
    };
    let seq = u32::try_from(seq).map_err(|_| damaged("seq out of range".to_owned()))?;
    let detail = serde_json::from_str(detail).map_err(|e| damaged(format!("detail: {e}")))?;
    Ok(CallEvent {
        call_id,
        seq,
        at_ms,
        kind,
        detail,
    })
}

/// The events a batch carries, in the order they came.
pub fn batch_events(batch: &[RecordMsg]) -> impl Iterator<Item = &CallEvent> {
    batch.iter().flat_map(|m| match m {
        RecordMsg::Begin(_) => &[][..],
        RecordMsg::Events(es) | RecordMsg::Finish(_, es) => &es[..],
    })
}
