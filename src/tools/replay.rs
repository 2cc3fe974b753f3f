//! `hotline replay CALL_ID [--flow FILE|DIR] [--as-test FILE]`: a recorded call's keys,
//! with their timing, run again on the flow interpreter (a virtual phone on a virtual
//! clock), and the two paths shown side by side with the point where they part.
//!
//! Owns reading a call's record into what the replay needs (keys and when, the caller, the
//! wall-clock time, the HTTP and queue answers the call got), the two paths as lines, and
//! the call written as a flow test. It must not run a live call or a clock: the virtual
//! phone (`phone`) runs the interpreter, the records store is opened by the caller or by
//! [`run`], and the test file format is `testfile`'s.
//!
//! What the records do not hold is said, never guessed silently: an HTTP answer's body is
//! not recorded (the replay answers with the recorded status and delay and an empty
//! body), and time in queues and recordings is left out (the virtual phone answers them at
//! once), so later keys are moved back by that time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hotline_core::flow::duration::DisplayDuration;
use hotline_core::record::build::{CallFacts, build};

use crate::config::Config;
use crate::flow::flowset::FlowSet;
use crate::flow::machine::{CallContext, QueueOutcome};
use crate::flow::story::Outcome;
use crate::media::prompt::PromptLibrary;
use crate::records::{CallEvent, CallRecord, HungUpBy};

use super::phone::{Happening, HttpStub, QueueAnswer, State, VirtualCall, World};
use super::sidebyside::{self, Row};

/// Stepping the virtual call at the end stops after this many events (a flow that loops
/// with a silent caller is ended by the interpreter's own limits long before).
const MAX_END_STEPS: usize = 10_000;
/// A recorded call the flow ended is followed this long past its recorded end at most.
const END_GRACE: Duration = Duration::from_secs(600);

/// `hotline replay` options.
#[derive(Debug, Clone, Default)]
pub struct ReplayArgs {
    pub call_id: String,
    /// A flow file or a folder of flows to replay against instead of the configured ones.
    pub flow: Option<PathBuf>,
    /// Write the call as a flow test file here.
    pub as_test: Option<PathBuf>,
}

/// One key the caller pressed, at this time on the replay's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Press {
    pub at: Duration,
    pub key: char,
}

/// What the replay takes from a recorded call.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub presses: Vec<Press>,
    /// When the call ended, on the replay's clock, and whether the caller ended it.
    pub ended: Duration,
    pub caller_hung_up: bool,
    pub world: World,
    /// The language the call was in throughout, when no step changed it.
    pub language: Option<String>,
    /// Whether a step changed the language.
    pub language_changed: bool,
    /// What the records could not give, for the report.
    pub notes: Vec<String>,
    /// Time in queues and recordings: (from, length) on the recorded clock.
    gaps: Vec<(Duration, Duration)>,
}

fn since_start(record: &CallRecord, at_ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(at_ms.saturating_sub(record.started_ms)).unwrap_or(0))
}

fn detail_str<'a>(e: &'a CallEvent, key: &str) -> Option<&'a str> {
    e.detail.get(key).and_then(serde_json::Value::as_str)
}

fn detail_ms(e: &CallEvent, key: &str) -> Option<u64> {
    e.detail.get(key).and_then(serde_json::Value::as_u64)
}

impl Recorded {
    /// Reads the keys, the end and the outside world's answers from a call's record.
    pub fn of(record: &CallRecord, events: &[CallEvent]) -> Recorded {
        let mut notes = Vec::new();
        let mut http = BTreeMap::new();
        let mut queue: Option<QueueAnswer> = None;
        let mut step: Option<String> = None;
        let mut gaps: Vec<(Duration, Duration)> = Vec::new();
        let mut joined: Option<Duration> = None;
        let mut agent: Option<String> = None;
        let mut language_changed = false;
        for e in events {
            let at = since_start(record, e.at_ms);
            match e.kind.as_str() {
                "step" => step = detail_str(e, "step").map(str::to_owned),
                "language" => language_changed = true,
                "http" => {
                    let Some(step) = step.clone() else { continue };
                    let latency = Duration::from_millis(detail_ms(e, "latency_ms").unwrap_or(0));
                    let outcome = detail_str(e, "outcome").unwrap_or("");
                    let stub = |status| HttpStub {
                        status,
                        body: serde_json::Value::Null,
                        delay: latency,
                    };
                    if outcome == "ok" {
                        notes.push(format!(
                            "http step '{step}' was answered (200) after {}; the records keep no body, so the replay answers with an empty one: steps that read it may go another way",
                            DisplayDuration(latency)
                        ));
                        http.insert(step, stub(200));
                    } else if outcome == "timeout" {
                        // Longer than any step's timeout.
                        let mut s = stub(200);
                        s.delay = Duration::from_secs(3600);
                        http.insert(step, s);
                    } else if let Some(status) = outcome
                        .strip_prefix("status ")
                        .and_then(|s| s.parse::<u16>().ok())
                    {
                        http.insert(step, stub(status));
                    } else if outcome == "cannot connect" || outcome == "unfinished" {
                        // No answer at all: the virtual phone cannot connect either.
                    } else {
                        notes.push(format!(
                            "http step '{step}' ended '{outcome}', which the replay cannot reproduce: it answers with status 502"
                        ));
                        http.insert(step, stub(502));
                    }
                }
                "queue_joined" => joined = Some(at),
                "agent_answered" => agent = detail_str(e, "agent").map(str::to_owned),
                "queue_left" if queue.is_none() => {
                    let waited = Duration::from_millis(detail_ms(e, "wait_ms").unwrap_or(0));
                    let word = match detail_str(e, "outcome").unwrap_or("failed") {
                        "agent" | "transferred" => "answered",
                        "caller_hung_up" => "caller_hangs_up",
                        "key" => {
                            notes.push(
                                "the caller left the queue with a key, which a replayed queue cannot do: it answers 'failed'".to_owned(),
                            );
                            "failed"
                        }
                        w => w,
                    };
                    let who = agent
                        .clone()
                        .or_else(|| record.agent.clone())
                        .unwrap_or_else(|| "agent".to_owned());
                    queue = QueueAnswer::from_word(word, &who, waited)
                        .or_else(|| QueueAnswer::from_word("failed", &who, waited));
                }
                _ => {}
            }
            // The queue's time ends when the flow takes the call back (or the call ends).
            if let Some(from) = joined
                && matches!(e.kind.as_str(), "agent_ended" | "queue_left")
                && (e.kind == "agent_ended" || agent.is_none())
            {
                gaps.push((from, at.saturating_sub(from)));
                joined = None;
            }
            if e.kind == "recording" {
                let length = Duration::from_millis(detail_ms(e, "duration_ms").unwrap_or(0));
                gaps.push((at.saturating_sub(length), length));
            }
        }
        if let Some(from) = joined {
            let end = since_start(record, record.ended_ms.unwrap_or(record.started_ms));
            gaps.push((from, end.saturating_sub(from)));
        }
        let shift = |t: Duration| shift(&gaps, t);
        let presses = events
            .iter()
            .filter(|e| e.kind == "key" && e.detail.get("typed_ahead").is_none())
            .filter_map(|e| {
                let key = detail_str(e, "key")?.chars().next()?;
                Some(Press {
                    at: shift(since_start(record, e.at_ms)),
                    key,
                })
            })
            .collect();
        let ended = shift(since_start(
            record,
            record.ended_ms.unwrap_or(record.started_ms),
        ));
        let at = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(record.started_ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        if queue.is_none() && events.iter().any(|e| e.kind == "queue_joined") {
            notes.push("the call's queue visit did not end in the records: the replayed queue answers 'failed'".to_owned());
            queue = QueueAnswer::from_word("failed", "agent", Duration::ZERO);
        }
        if !gaps.is_empty() {
            let total: Duration = gaps.iter().map(|(_, l)| *l).sum();
            notes.push(format!(
                "the replay spends no time in queues and recordings: times after them are {} earlier than recorded",
                DisplayDuration(Duration::from_millis(total.as_millis() as u64))
            ));
        }
        Recorded {
            presses,
            ended,
            caller_hung_up: record.hung_up_by == Some(HungUpBy::Caller),
            world: World { http, at, queue },
            language: (!language_changed && !record.language.is_empty())
                .then(|| record.language.clone()),
            language_changed,
            notes,
            gaps,
        }
    }

    /// A recorded time on the replay's clock.
    pub fn shift(&self, t: Duration) -> Duration {
        shift(&self.gaps, t)
    }
}

/// `t` with the gaps before it taken out (a time inside a gap goes to its start).
fn shift(gaps: &[(Duration, Duration)], t: Duration) -> Duration {
    let mut out = t;
    for (from, length) in gaps {
        if t > *from {
            out = out.saturating_sub((t - *from).min(*length));
        }
    }
    out
}

/// One line of a path: when, and what (compared without the time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathLine {
    pub at: Duration,
    pub what: String,
}

impl PathLine {
    fn text(&self) -> String {
        format!("{:>6.1}s  {}", self.at.as_secs_f64(), self.what)
    }
}

/// The lines of a path: steps, keys, no input and invalid input, queues, transfers and
/// the end, from a call's events. `at` maps an event's time to the replay's clock.
pub fn path_of(
    events: &[CallEvent],
    started_ms: i64,
    at: impl Fn(Duration) -> Duration,
) -> Vec<PathLine> {
    let mut out = Vec::new();
    for e in events {
        let s = |k| detail_str(e, k).unwrap_or("");
        let what = match e.kind.as_str() {
            "step" => format!("step {}/{}", s("flow"), s("step")),
            "key" => {
                let mut w = format!("key {} {}", s("key"), s("went"));
                if let Some(to) = detail_str(e, "to") {
                    let _ = write!(w, " -> {to}");
                }
                if e.detail.get("typed_ahead").is_some() {
                    w.push_str(" (typed ahead)");
                }
                w
            }
            "no_input" => format!("no input in {}", s("step")),
            "invalid" => format!("invalid '{}' in {}", s("input"), s("step")),
            "queue_joined" => format!("queued in {}", s("queue")),
            "transfer" => format!("transfer to {}: {}", s("target"), s("outcome")),
            "ended" => format!("ended: {}", s("outcome")),
            _ => continue,
        };
        let t =
            Duration::from_millis(u64::try_from(e.at_ms.saturating_sub(started_ms)).unwrap_or(0));
        out.push(PathLine { at: at(t), what });
    }
    out
}

/// The recorded and replayed paths and where they part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    pub recorded: Vec<PathLine>,
    pub replayed: Vec<PathLine>,
    /// The first line that differs (by what happened, not when).
    pub parts_at: Option<usize>,
}

impl Comparison {
    pub fn new(recorded: Vec<PathLine>, replayed: Vec<PathLine>) -> Comparison {
        let n = recorded.len().max(replayed.len());
        let parts_at =
            (0..n).find(|&i| recorded.get(i).map(|l| &l.what) != replayed.get(i).map(|l| &l.what));
        Comparison {
            recorded,
            replayed,
            parts_at,
        }
    }

    /// The two paths side by side, the parting line marked, and a sentence saying where
    /// they part and after which key.
    pub fn render(&self) -> String {
        let n = self.recorded.len().max(self.replayed.len());
        let rows: Vec<Row> = (0..n)
            .map(|i| Row {
                expected: self.recorded.get(i).map(PathLine::text).unwrap_or_default(),
                actual: self.replayed.get(i).map(PathLine::text).unwrap_or_default(),
            })
            .collect();
        let mut out = sidebyside::render_titled(&rows, self.parts_at, "  ", "recorded", "replayed");
        match self.parts_at {
            None => out.push_str("same path\n"),
            Some(i) => {
                let line = |p: &[PathLine]| {
                    p.get(i).map_or("(nothing)".to_owned(), |l| {
                        format!("'{}' at {:.1}s", l.what, l.at.as_secs_f64())
                    })
                };
                // The last key the caller had pressed by then, the parting line's own
                // included: what the complaint is usually about.
                let upto = (i + 1).min(self.recorded.len());
                let key = self.recorded[..upto]
                    .iter()
                    .rev()
                    .find(|l| l.what.starts_with("key "))
                    .map_or("before any key".to_owned(), |k| {
                        format!(
                            "at key {} ({:.1}s)",
                            k.what
                                .strip_prefix("key ")
                                .and_then(|w| w.chars().next())
                                .unwrap_or('?'),
                            k.at.as_secs_f64()
                        )
                    });
                let _ = writeln!(
                    out,
                    "the paths part at line {}, {key}: recorded {}, replayed {}",
                    i + 1,
                    line(&self.recorded),
                    line(&self.replayed)
                );
            }
        }
        out
    }
}

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("records are off in the configuration (records: off, or no records: key)")]
    NoRecords,
    #[error("no call '{0}' in the records")]
    NoCall(String),
    #[error("call '{0}' has no flow (it was refused before a flow started)")]
    NoFlow(String),
    #[error("no flow named '{flow}' in {dir} (loaded: {loaded})")]
    FlowNotLoaded {
        flow: String,
        dir: String,
        loaded: String,
    },
    #[error("the flow cannot start: {0}")]
    Start(#[from] crate::flow::machine::MachineError),
    #[error(transparent)]
    Store(#[from] crate::records::store::StoreError),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the test written from the call does not pass:\n{0}")]
    TestFails(String),
}

/// The flows and prompts a replay runs on.
pub struct Flows {
    pub flows: Arc<FlowSet>,
    pub prompts: PromptLibrary,
    /// The same flows starting in the language the call was in, when it was not the
    /// default and no step changed it.
    pub in_language: Option<Arc<FlowSet>>,
    /// The flow the call starts in.
    pub start: String,
}

/// Loads the flows: the configured ones, or `--flow`'s folder (a file's folder, starting
/// in the file's flow when the call's own is not there).
pub fn load_flows(
    config: &Config,
    recorded_flow: &str,
    flow: Option<&Path>,
    language: Option<&str>,
) -> Result<Flows, ReplayError> {
    let mut config = config.clone();
    let mut fallback = None;
    if let Some(p) = flow {
        if p.is_dir() {
            config.flows_dir = p.to_path_buf();
        } else {
            config.flows_dir = p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            fallback = p.file_stem().and_then(|s| s.to_str()).map(str::to_owned);
        }
    }
    let loaded = crate::preflight::load_all(&config);
    let start = if loaded.flows.id(recorded_flow).is_some() {
        recorded_flow.to_owned()
    } else if let Some(f) = fallback.filter(|f| loaded.flows.id(f).is_some()) {
        f
    } else {
        return Err(ReplayError::FlowNotLoaded {
            flow: recorded_flow.to_owned(),
            dir: config.flows_dir.display().to_string(),
            loaded: loaded.flows.names().join(", "),
        });
    };
    let in_language = language.map(|lang| {
        let mut set = crate::preflight::load_all(&config).flows;
        super::simulate::start_in_language(&mut set, &start, lang);
        Arc::new(set)
    });
    Ok(Flows {
        flows: Arc::new(loaded.flows),
        prompts: loaded.prompts,
        in_language,
        start,
    })
}

fn context(record: &CallRecord, world: &World) -> CallContext {
    CallContext {
        wall_clock_at_start: world.wall_clock(),
        call_id: format!("replay: {}", record.call_id),
        caller: record.caller.clone(),
        dialed: record.dialed.clone(),
    }
}

fn flows_for(flows: &Flows, rec: &Recorded) -> Arc<FlowSet> {
    match (&rec.language, &flows.in_language) {
        (Some(_), Some(set)) => Arc::clone(set),
        _ => Arc::clone(&flows.flows),
    }
}

/// Runs the recorded keys at their times on a virtual call; the call when it has ended
/// (or been hung up where the recorded one was).
pub fn replay(
    record: &CallRecord,
    rec: &Recorded,
    flows: &Flows,
    t0: Instant,
) -> Result<VirtualCall, ReplayError> {
    let mut call = VirtualCall::start(
        flows_for(flows, rec),
        flows.prompts.clone(),
        &flows.start,
        context(record, &rec.world),
        rec.world.clone(),
        t0,
    )?;
    for p in &rec.presses {
        run_until(&mut call, t0 + p.at);
        if call.is_ended() {
            break;
        }
        call.press(p.key);
    }
    let end = if rec.caller_hung_up {
        t0 + rec.ended
    } else {
        t0 + rec.ended + END_GRACE
    };
    run_until(&mut call, end);
    call.hang_up();
    Ok(call)
}

/// Lets the call run until `t`, or until it ends on its way (its clock then stays at the
/// end, which the replayed record's end time is taken from).
fn run_until(call: &mut VirtualCall, t: Instant) {
    while let Some(next) = call.next_event_at() {
        if next > t {
            break;
        }
        call.step();
    }
    if !call.is_ended() {
        call.advance_to(t);
    }
}

/// The replayed call's path, from the events its record would have.
pub fn replayed_path(record: &CallRecord, call: &VirtualCall) -> Vec<PathLine> {
    let story = call.machine().story();
    let hung_up_by = match call.outcome() {
        Some(Outcome::CallerHungUp) => Some(HungUpBy::Caller),
        _ => Some(HungUpBy::Engine),
    };
    let facts = CallFacts {
        call_id: record.call_id.clone(),
        kind: record.kind,
        caller: record.caller.clone(),
        dialed: record.dialed.clone(),
        flow: story.flow.clone(),
        flow_version: record.flow_version.clone(),
        language: call.machine().language().to_owned(),
        started_ms: record.started_ms,
        answered_ms: record.answered_ms,
        ended_ms: record
            .started_ms
            .saturating_add(i64::try_from(call.elapsed().as_millis()).unwrap_or(0)),
        hung_up_by,
        fault: None,
        interrupted: false,
    };
    let (_, events) = build(&facts, story);
    path_of(&events, record.started_ms, |t| t)
}

/// Replays `record` on `flows` and compares the paths.
pub fn compare(
    record: &CallRecord,
    events: &[CallEvent],
    flows: &Flows,
    t0: Instant,
) -> Result<(Recorded, Comparison), ReplayError> {
    let rec = Recorded::of(record, events);
    let call = replay(record, &rec, flows, t0)?;
    let recorded = path_of(events, record.started_ms, |t| rec.shift(t));
    let replayed = replayed_path(record, &call);
    Ok((rec, Comparison::new(recorded, replayed)))
}

// ------------------------------------------------------------------ the call as a test

/// A YAML scalar written as JSON: always valid YAML, never read as another type.
fn q(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// Writes the call as a flow test: its caller, time and the answers it got, and a script
/// that drives the interpreter the way `hotline test` does (`hears` for each prompt,
/// `press` during a prompt, `silence` for the pause before a key or a timeout), followed
/// by the checks of how it ended. The script is built by running the call with the test
/// runner's own moves, so the file passes on the flows it was made from.
pub fn as_test(
    record: &CallRecord,
    rec: &Recorded,
    flows: &Flows,
    t0: Instant,
) -> Result<String, ReplayError> {
    let mut g = VirtualCall::start(
        Arc::clone(&flows.flows),
        flows.prompts.clone(),
        &flows.start,
        context(record, &rec.world),
        rec.world.clone(),
        t0,
    )?;
    let mut script: Vec<String> = Vec::new();
    let mut seen = 0usize;
    // Where the test runner's clock is: its now, and the end of the playback it is in.
    let mut from = t0;
    let observe =
        |g: &VirtualCall, seen: &mut usize, script: &mut Vec<String>, from: &mut Instant| {
            let log = g.log().get(*seen..).unwrap_or(&[]);
            *seen += log.len();
            let mut any = false;
            for e in log {
                let line = match &e.what {
                    Happening::Heard(s) => match s.prompt_name() {
                        Some(n) => format!("hears: {}", q(n)),
                        None => continue,
                    },
                    Happening::Queued(x) => format!("queued: {}", q(x)),
                    Happening::Transferred(x) => format!("transferred: {}", q(x)),
                    _ => continue,
                };
                script.push(line);
                any = true;
            }
            if any {
                *from = g.playback_ends_at().unwrap_or(g.now());
            }
        };
    let silence =
        |g: &mut VirtualCall, script: &mut Vec<String>, from: &mut Instant, until: Instant| {
            let d = until.saturating_duration_since(*from);
            script.push(format!("silence: {}", DisplayDuration(d)));
            g.advance_to(*from + d);
            *from = g.playback_ends_at().unwrap_or(g.now());
        };
    for p in &rec.presses {
        let at = t0 + p.at;
        loop {
            observe(&g, &mut seen, &mut script, &mut from);
            match (g.state(), g.next_event_at()) {
                (State::Playing, Some(next)) if next <= at => {
                    g.step();
                }
                _ => break,
            }
        }
        if g.is_ended() {
            break;
        }
        if g.state() != State::Playing {
            silence(&mut g, &mut script, &mut from, at);
            observe(&g, &mut seen, &mut script, &mut from);
            if g.is_ended() {
                break;
            }
        }
        g.press(p.key);
        script.push(format!("press: {}", q(&p.key.to_string())));
        from = g.playback_ends_at().unwrap_or(g.now());
    }
    let end = t0 + rec.ended;
    if rec.caller_hung_up {
        loop {
            observe(&g, &mut seen, &mut script, &mut from);
            match (g.state(), g.next_event_at()) {
                (State::Playing, Some(next)) if next <= end => {
                    g.step();
                }
                _ => break,
            }
        }
        if matches!(g.state(), State::Waiting { .. }) {
            silence(&mut g, &mut script, &mut from, end);
        }
        if !g.is_ended() && g.state() != State::Ended {
            script.push("hangs_up: false".to_owned());
        }
    } else {
        for _ in 0..MAX_END_STEPS {
            observe(&g, &mut seen, &mut script, &mut from);
            match g.state() {
                State::Playing => {
                    g.step();
                }
                State::Waiting { deadline, .. } => {
                    silence(&mut g, &mut script, &mut from, deadline);
                }
                State::Ended => break,
            }
        }
        observe(&g, &mut seen, &mut script, &mut from);
        if g.is_ended() && !matches!(g.outcome(), Some(Outcome::CallerHungUp) | None) {
            script.push("hangs_up: true".to_owned());
        }
    }
    let story = g.machine().story();
    if !story.tags.is_empty() {
        let tags: Vec<String> = story
            .tags
            .iter()
            .map(|(k, v)| format!("{}: {}", q(k), q(v)))
            .collect();
        script.push(format!("tagged: {{ {} }}", tags.join(", ")));
    }
    if rec.language_changed {
        script.push(format!("language: {}", q(g.machine().language())));
    }
    Ok(test_text(record, rec, &flows.start, &script))
}

fn test_text(record: &CallRecord, rec: &Recorded, flow: &str, script: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# The recorded call {} ({}), written by `hotline replay --as-test`.",
        record.call_id,
        rec.world.at.as_deref().unwrap_or("")
    );
    let _ = writeln!(out, "flow: {}", q(flow));
    let _ = writeln!(out, "cases:");
    let _ = writeln!(out, "  - name: {}", q(&format!("call {}", record.call_id)));
    let _ = writeln!(out, "    caller: {}", q(&record.caller));
    let _ = writeln!(out, "    dialed: {}", q(&record.dialed));
    if let Some(at) = &rec.world.at {
        let _ = writeln!(out, "    at: {}", q(at));
    }
    if !rec.world.http.is_empty() {
        let _ = writeln!(out, "    http:");
        for (step, stub) in &rec.world.http {
            let _ = writeln!(
                out,
                "      {}: {{ status: {}, delay: {} }}",
                q(step),
                stub.status,
                q(&DisplayDuration(stub.delay).to_string())
            );
        }
    }
    if let Some(a) = &rec.world.queue {
        let (word, agent) = match &a.outcome {
            QueueOutcome::AgentHungUp { agent } => ("answered", Some(agent.as_str())),
            QueueOutcome::CallerHungUp => ("caller_hangs_up", None),
            QueueOutcome::Overflow { reason } => (reason.as_str(), None),
            QueueOutcome::Callback => ("callback", None),
            QueueOutcome::Failed(_) => ("failed", None),
        };
        let mut fields = vec![format!("outcome: {word}")];
        if let Some(agent) = agent {
            fields.push(format!("agent: {}", q(agent)));
        }
        fields.push(format!(
            "wait: {}",
            q(&DisplayDuration(a.waited).to_string())
        ));
        let _ = writeln!(out, "    queue: {{ {} }}", fields.join(", "));
    }
    let _ = writeln!(out, "    script:");
    for line in script {
        let _ = writeln!(out, "      - {line}");
    }
    out
}

/// Runs `hotline replay`: prints the comparison (and writes the test); exit 0 when the
/// paths are the same, 1 when they part, 2 when the call cannot be replayed.
pub fn run(config: &Config, args: &ReplayArgs) -> ExitCode {
    match run_inner(config, args) {
        Ok((text, same)) => {
            if super::cli::print(&text).is_err() {
                return ExitCode::from(2);
            }
            if same {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// The report's text and whether the paths are the same.
pub fn run_inner(config: &Config, args: &ReplayArgs) -> Result<(String, bool), ReplayError> {
    let records = config.records.as_ref().ok_or(ReplayError::NoRecords)?;
    let mut store = crate::records::open_store(&records.store)?;
    let record = store
        .call(&args.call_id)?
        .ok_or_else(|| ReplayError::NoCall(args.call_id.clone()))?;
    let events = store.events(&args.call_id)?;
    if record.flow.is_empty() {
        return Err(ReplayError::NoFlow(args.call_id.clone()));
    }
    let language = Recorded::of(&record, &events).language;
    let flows = load_flows(
        config,
        &record.flow,
        args.flow.as_deref(),
        language.as_deref(),
    )?;
    let t0 = Instant::now();
    let (rec, cmp) = compare(&record, &events, &flows, t0)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "call {} from {} at {}: flow {} (flows version {} of the engine that served it), language {}",
        record.call_id,
        if record.caller.is_empty() {
            "(unknown)"
        } else {
            &record.caller
        },
        rec.world.at.as_deref().unwrap_or("?"),
        record.flow,
        record.flow_version,
        if record.language.is_empty() {
            "(default)"
        } else {
            &record.language
        },
    );
    let _ = writeln!(
        out,
        "replayed on the flows in {} (flow {}): {} keys",
        match &args.flow {
            Some(p) => p.display().to_string(),
            None => config.flows_dir.display().to_string(),
        },
        flows.start,
        rec.presses.len()
    );
    for n in &rec.notes {
        let _ = writeln!(out, "note: {n}");
    }
    out.push('\n');
    out.push_str(&cmp.render());
    if let Some(path) = &args.as_test {
        let text = as_test(&record, &rec, &flows, t0)?;
        let results = super::flowtest::run_file(path, &text, &flows.flows, &flows.prompts)
            .map_err(|d| ReplayError::TestFails(d.to_string()))?;
        if results.iter().any(|c| c.failure.is_some()) {
            let run = super::flowtest::TestRun {
                cases: results,
                errors: Vec::new(),
            };
            return Err(ReplayError::TestFails(run.render()));
        }
        std::fs::write(path, &text).map_err(|source| ReplayError::Write {
            path: path.clone(),
            source,
        })?;
        let _ = writeln!(out, "wrote the call as a flow test: {}", path.display());
        if cmp.parts_at.is_some() {
            let _ = writeln!(
                out,
                "(the test follows these flows, where the replay parted from the recorded call)"
            );
        }
    }
    Ok((out, cmp.parts_at.is_none()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_taken_out_of_later_times() {
        let s = |x| Duration::from_secs(x);
        let gaps = [(s(10), s(30)), (s(50), s(5))];
        assert_eq!(shift(&gaps, s(5)), s(5));
        assert_eq!(shift(&gaps, s(20)), s(10));
        assert_eq!(shift(&gaps, s(45)), s(15));
        assert_eq!(shift(&gaps, s(60)), s(25));
    }

    #[test]
    fn the_first_difference_is_found_by_what_not_when() {
        let l = |t, w: &str| PathLine {
            at: Duration::from_secs(t),
            what: w.to_owned(),
        };
        let a = vec![
            l(0, "step main/a"),
            l(2, "key 1 option -> b"),
            l(2, "step main/b"),
        ];
        let b = vec![
            l(0, "step main/a"),
            l(3, "key 1 option -> b"),
            l(3, "step main/c"),
        ];
        let c = Comparison::new(a.clone(), b);
        assert_eq!(c.parts_at, Some(2));
        let text = c.render();
        assert!(text.contains("line 3, at key 1 (2.0s)"), "{text}");
        assert!(text.contains("recorded 'step main/b'"), "{text}");
        assert_eq!(Comparison::new(a.clone(), a).parts_at, None);
    }
}
