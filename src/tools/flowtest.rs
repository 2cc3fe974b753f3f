//! `hotline test`: runs flow test cases on virtual calls and reports them.
//!
//! Owns what each script item means on a call: `hears` takes the next prompt heard (by
//! name; `say` items and silences are not prompts and do not count), letting prompts play
//! but never a timeout pass; `press` presses keys at the current moment (during the
//! prompt playing, so barge-in and type-ahead are exercised); `silence` lets the prompt
//! playing now end and then the given time pass without a key;
//! the checks compare the call's state. A failure keeps the rows compared so far and what
//! the call did next, for the side-by-side report. Files and the flows are loaded here;
//! the file format is `testfile`'s.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::flow::diagnostic::Diagnostic;
use crate::flow::flowset::FlowSet;
use crate::flow::load::yaml_files;
use crate::flow::machine::CallContext;
use crate::flow::story::Outcome;
use crate::media::prompt::PromptLibrary;
use crate::preflight::load_all;

use super::phone::{Happening, HttpStub, State, VirtualCall, World};
use super::sidebyside::{self, Row};
use super::simulate::{play_until_wait, press_keys};
use super::testfile::{ScriptItem, TestCase, check_timestamp, parse_test_file, tags_line};

/// What the call is shown doing after a failure, at most this many lines.
pub const MAX_LINES_AFTER_FAILURE: usize = 12;

/// A failed case: why, where in the file, and the two transcripts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    pub help: Option<String>,
    /// 1-based line and column of the failing script item (0 when none applies).
    pub line: u32,
    pub column: u32,
    pub rows: Vec<Row>,
    /// The row of the failing item.
    pub mark: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    pub file: PathBuf,
    pub name: String,
    /// Line of the case's `name`.
    pub line: u32,
    pub failure: Option<Failure>,
}

/// Every case run, and the files that could not be run at all.
#[derive(Debug, Default)]
pub struct TestRun {
    pub cases: Vec<CaseResult>,
    /// Test files that do not parse, flows that do not load: each counts as a failure.
    pub errors: Vec<Diagnostic>,
}

impl TestRun {
    pub fn passed(&self) -> usize {
        self.cases.iter().filter(|c| c.failure.is_none()).count()
    }

    pub fn failed(&self) -> usize {
        self.cases.len() - self.passed() + self.errors.len()
    }

    pub fn success(&self) -> bool {
        self.failed() == 0
    }

    /// `N passed, M failed`
    pub fn summary(&self) -> String {
        format!("{} passed, {} failed", self.passed(), self.failed())
    }

    /// The whole report: a line per case, failures in detail, problems, the summary.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.cases {
            let at = format!("{}:{}", c.file.display(), c.line);
            match &c.failure {
                None => {
                    let _ = writeln!(out, "ok    {}  ({at})", c.name);
                }
                Some(f) => {
                    let _ = writeln!(out, "FAIL  {}  ({at})", c.name);
                    let _ = writeln!(
                        out,
                        "  {}:{}:{}: {}",
                        c.file.display(),
                        f.line,
                        f.column,
                        f.message
                    );
                    if let Some(h) = &f.help {
                        let _ = writeln!(out, "  help: {h}");
                    }
                    out.push_str(&sidebyside::render(&f.rows, f.mark, "  "));
                }
            }
        }
        for d in &self.errors {
            let _ = writeln!(out, "{d}");
        }
        let _ = writeln!(out, "{}", self.summary());
        out
    }
}

/// Runs the test files found at `paths` (files, or folders of `*.yaml`), with the flows
/// and prompts `config` names; no paths means the configured `tests:` folder (by default
/// the `tests` folder beside the flows).
pub fn run_paths(config: &Config, paths: &[PathBuf]) -> TestRun {
    let mut run = TestRun::default();
    let tests = config
        .tests_dir
        .clone()
        .unwrap_or_else(|| config.flows_dir.join("tests"));
    // `./flows/tests` reads better as `flows/tests` in reports.
    let default = [tests
        .strip_prefix(".")
        .map_or_else(|_| tests.clone(), Path::to_path_buf)];
    let paths = if paths.is_empty() {
        &default[..]
    } else {
        paths
    };
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            match yaml_files(p) {
                Ok(f) => files.extend(f),
                Err(e) => run
                    .errors
                    .push(Diagnostic::error(p, format!("cannot read the folder: {e}"))),
            }
        } else {
            files.push(p.clone());
        }
    }
    if files.is_empty() && run.errors.is_empty() {
        run.errors.push(
            Diagnostic::error(&paths[0], "no flow test files (*.yaml) here")
                .with_help("a test file names a 'flow' and its 'cases'; see docs/tools.md"),
        );
        return run;
    }
    let loaded = load_all(config);
    let flows = Arc::new(loaded.flows);
    let load_errors: Vec<Diagnostic> = loaded
        .report
        .diagnostics
        .into_iter()
        .filter(Diagnostic::is_error)
        .collect();
    let mut reported = false;
    for file in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                run.errors.push(Diagnostic::error(
                    &file,
                    format!("cannot read the file: {e}"),
                ));
                continue;
            }
        };
        match run_file(&file, &text, &flows, &loaded.prompts) {
            Ok(cases) => run.cases.extend(cases),
            Err(d) => {
                // The flow did not load: show why, once; when its file has errors, they
                // are the whole story for every test of it.
                if !reported && d.message.contains("not loaded") {
                    run.errors.extend(load_errors.iter().cloned());
                    reported = true;
                }
                if !super::testfile::names_broken_flow(&d, &loaded.broken_flows) {
                    run.errors.push(d);
                }
            }
        }
    }
    run
}

/// Runs every case of one test file's text against loaded flows.
pub fn run_file(
    file: &Path,
    text: &str,
    flows: &Arc<FlowSet>,
    prompts: &PromptLibrary,
) -> Result<Vec<CaseResult>, Diagnostic> {
    let tf = parse_test_file(file, text)?;
    let flow = tf.flow.value.as_str();
    if flows.id(flow).is_none() {
        let names = flows.names();
        return Err(Diagnostic::error(file, super::testfile::not_loaded(flow))
            .at_location(text, tf.flow.referenced)
            .with_help(if names.is_empty() {
                "no flow loaded; run 'hotline check'".to_owned()
            } else {
                format!("loaded flows: {}", names.join(", "))
            }));
    }
    let mut out = Vec::with_capacity(tf.cases.len());
    for case in &tf.cases {
        if let Some(at) = &case.value.at
            && let Err(e) = check_timestamp(&at.value)
        {
            return Err(Diagnostic::error(file, e)
                .at_location(text, at.referenced)
                .with_help("write it as 2026-11-23T10:00:00+01:00"));
        }
        out.push(CaseResult {
            file: file.to_path_buf(),
            name: case.value.name.value.clone(),
            line: line_of(case.value.name.referenced),
            failure: run_case(flow, &case.value, flows, prompts),
        });
    }
    Ok(out)
}

fn line_of(loc: serde_saphyr::Location) -> u32 {
    u32::try_from(loc.line()).unwrap_or(u32::MAX)
}

fn column_of(loc: serde_saphyr::Location) -> u32 {
    u32::try_from(loc.column()).unwrap_or(u32::MAX)
}

/// The outside world of one case: its HTTP stubs and wall clock.
pub fn world_of(case: &TestCase) -> World {
    let http: BTreeMap<String, HttpStub> = case
        .http
        .iter()
        .flat_map(|m| m.value.entries.iter())
        .map(|(k, v)| {
            (
                k.value.clone(),
                HttpStub {
                    status: v.value.status.unwrap_or(200),
                    body: v.value.body.clone().unwrap_or(serde_json::Value::Null),
                    delay: v.value.delay.map_or(Duration::ZERO, |d| d.0),
                },
            )
        })
        .collect();
    World {
        http,
        at: case.at.as_ref().map(|a| a.value.clone()),
        queue: case.queue.as_ref().map(|q| q.value.0.clone()),
    }
}

/// Runs one case; `None` when it passes.
pub fn run_case(
    flow: &str,
    case: &TestCase,
    flows: &Arc<FlowSet>,
    prompts: &PromptLibrary,
) -> Option<Failure> {
    let world = world_of(case);
    let ctx = CallContext {
        wall_clock_at_start: world.wall_clock(),
        call_id: format!("test: {}", case.name.value),
        caller: case
            .caller
            .as_ref()
            .map_or_else(String::new, |c| c.value.clone()),
        dialed: case
            .dialed
            .as_ref()
            .map_or_else(String::new, |c| c.value.clone()),
    };
    let call = match VirtualCall::start(
        Arc::clone(flows),
        prompts.clone(),
        flow,
        ctx,
        world,
        Instant::now(),
    ) {
        Ok(c) => c,
        Err(e) => {
            return Some(Failure {
                message: e.to_string(),
                help: None,
                line: line_of(case.name.referenced),
                column: column_of(case.name.referenced),
                rows: Vec::new(),
                mark: None,
            });
        }
    };
    let mut r = Runner {
        call,
        observed: VecDeque::new(),
        seen: 0,
        rows: Vec::new(),
    };
    let script = &case.script.value;
    for (i, item) in script.iter().enumerate() {
        match r.run(&item.value) {
            Ok(line) => r.rows.push(Row {
                expected: item.value.to_line(),
                actual: line,
            }),
            Err(m) => {
                let mark = r.rows.len();
                r.rows.push(Row {
                    expected: item.value.to_line(),
                    actual: m.actual.clone(),
                });
                let rest: Vec<String> = script
                    .iter()
                    .skip(i + 1)
                    .map(|s| s.value.to_line())
                    .collect();
                let mut then = r.what_happens_next();
                if then.first() == Some(&m.actual) {
                    then.remove(0);
                }
                let n = rest.len().max(then.len());
                for k in 0..n {
                    r.rows.push(Row {
                        expected: rest.get(k).cloned().unwrap_or_default(),
                        actual: then.get(k).cloned().unwrap_or_default(),
                    });
                }
                return Some(Failure {
                    message: m.message,
                    help: m.help,
                    line: line_of(item.referenced),
                    column: column_of(item.referenced),
                    rows: r.rows,
                    mark: Some(mark),
                });
            }
        }
    }
    None
}

/// Why an item failed, and what the call did instead (the actual side of its row).
struct Mismatch {
    actual: String,
    message: String,
    help: Option<String>,
}

impl Mismatch {
    fn new(actual: impl Into<String>, message: impl Into<String>) -> Self {
        Mismatch {
            actual: actual.into(),
            message: message.into(),
            help: None,
        }
    }
    fn help(mut self, h: impl Into<String>) -> Self {
        self.help = Some(h.into());
        self
    }
}

struct Runner {
    call: VirtualCall,
    /// What the caller noticed and no script item has matched yet, as script lines
    /// (`hears: welcome`, `queued: support`).
    observed: VecDeque<String>,
    /// Log entries already looked at.
    seen: usize,
    rows: Vec<Row>,
}

impl Runner {
    fn run(&mut self, item: &ScriptItem) -> Result<String, Mismatch> {
        match item {
            ScriptItem::Hears(name) => self.hears(name),
            ScriptItem::Press(keys) => {
                self.take_log();
                if self.call.is_ended() {
                    return Err(Mismatch::new(
                        self.ended_line(),
                        format!("cannot press {keys}: the call has ended"),
                    ));
                }
                press_keys(&mut self.call, keys);
                Ok(item.to_line())
            }
            ScriptItem::Silence(d) => {
                // The caller listens to the end of what plays now; then the pause.
                let from = self.call.playback_ends_at().unwrap_or(self.call.now());
                let t = from.checked_add(*d).unwrap_or(from);
                self.call.advance_to(t);
                Ok(item.to_line())
            }
            ScriptItem::Tagged(want) => {
                let story = self.call.machine().story();
                let got: Vec<(String, String)> = want
                    .iter()
                    .map(|(k, _)| {
                        let v = story.tag(k).unwrap_or("(not set)");
                        (k.clone(), v.to_owned())
                    })
                    .collect();
                if &got == want {
                    return Ok(item.to_line());
                }
                let all = if story.tags.is_empty() {
                    "none".to_owned()
                } else {
                    tags_line(&story.tags)
                };
                Err(Mismatch::new(
                    format!("tagged: {}", tags_line(&got)),
                    format!("expected tags {}, the call has {all}", tags_line(want)),
                ))
            }
            ScriptItem::Language(want) => {
                let got = self.call.machine().language();
                if got == want {
                    Ok(item.to_line())
                } else {
                    Err(Mismatch::new(
                        format!("language: {got}"),
                        format!("expected the caller's language to be '{want}', it is '{got}'"),
                    ))
                }
            }
            ScriptItem::HangsUp(true) => self.hangs_up(),
            ScriptItem::HangsUp(false) => {
                self.take_log();
                if self.call.is_ended() {
                    Err(Mismatch::new(
                        self.ended_line(),
                        "expected the call to go on, it has ended",
                    ))
                } else {
                    Ok(item.to_line())
                }
            }
            ScriptItem::Queued(q) => self.handed_off(item, "queue", q),
            ScriptItem::Transferred(t) => self.handed_off(item, "transfer", t),
        }
    }

    /// Moves what the caller notices in new log entries (prompts heard, hand-offs) into
    /// `observed`, as script lines.
    fn take_log(&mut self) {
        let log = self.call.log().get(self.seen..).unwrap_or(&[]);
        self.seen += log.len();
        for e in log {
            let line = match &e.what {
                Happening::Heard(s) => match s.prompt_name() {
                    Some(n) => format!("hears: {n}"),
                    None => continue,
                },
                Happening::Queued(q) => format!("queued: {q}"),
                Happening::Transferred(t) => format!("transferred: {t}"),
                _ => continue,
            };
            self.observed.push_back(line);
        }
    }

    fn hears(&mut self, name: &str) -> Result<String, Mismatch> {
        loop {
            self.take_log();
            if let Some(line) = self.observed.pop_front() {
                if line.strip_prefix("hears: ") == Some(name) {
                    return Ok(line);
                }
                let message = match line.strip_prefix("hears: ") {
                    Some(h) => format!("expected to hear '{name}', heard '{h}'"),
                    None => format!("expected to hear '{name}', the call was {line}"),
                };
                return Err(Mismatch::new(line, message));
            }
            match self.call.state() {
                State::Playing => {
                    self.call.step();
                }
                State::Waiting { step, .. } => {
                    return Err(Mismatch::new(
                        format!("(waits for a key in '{step}')"),
                        format!(
                            "expected to hear '{name}', but the flow waits for a key in '{step}'"
                        ),
                    )
                    .help(
                        "add '- press: ...' for a key, or '- silence: 6s' to let the timeout pass",
                    ));
                }
                State::Ended => {
                    return Err(Mismatch::new(
                        self.ended_line(),
                        format!("expected to hear '{name}', the call has ended"),
                    ));
                }
            }
        }
    }

    fn hangs_up(&mut self) -> Result<String, Mismatch> {
        loop {
            self.take_log();
            if let Some(line) = self.observed.pop_front() {
                return Err(Mismatch::new(
                    line.clone(),
                    format!("expected the flow to hang up, the call goes on ({line})"),
                )
                .help("add '- hears: ...' for the prompts before the end"));
            }
            match self.call.state() {
                State::Playing => {
                    self.call.step();
                }
                State::Waiting { step, .. } => {
                    return Err(Mismatch::new(
                        format!("(waits for a key in '{step}')"),
                        format!("expected the flow to hang up, it waits for a key in '{step}'"),
                    ));
                }
                State::Ended => {
                    return match self.call.outcome() {
                        Some(Outcome::CallerHungUp) | None => Err(Mismatch::new(
                            self.ended_line(),
                            "expected the flow to hang up, the caller did",
                        )),
                        Some(_) => Ok("hangs_up: true".to_owned()),
                    };
                }
            }
        }
    }

    /// `queued` and `transferred`: the call is handed on, after the prompt playing now and
    /// nothing else.
    fn handed_off(&mut self, item: &ScriptItem, kind: &str, to: &str) -> Result<String, Mismatch> {
        let want = item.to_line();
        loop {
            self.take_log();
            if let Some(line) = self.observed.pop_front() {
                if line == want {
                    return Ok(line);
                }
                let message = format!("expected '{want}', the call goes on ({line})");
                return Err(Mismatch::new(line, message));
            }
            match self.call.state() {
                State::Playing => {
                    self.call.step();
                }
                State::Waiting { step, .. } => {
                    return Err(Mismatch::new(
                        format!("(waits for a key in '{step}')"),
                        format!(
                            "expected the call to {kind} to '{to}', it waits for a key in '{step}'"
                        ),
                    ));
                }
                State::Ended => {
                    let message =
                        format!("expected the call to {kind} to '{to}', the call has ended");
                    return Err(Mismatch::new(self.ended_line(), message));
                }
            }
        }
    }

    fn ended_line(&self) -> String {
        match self.call.outcome() {
            Some(o) => format!("(call ended: {o})"),
            None => "(call ended)".to_owned(),
        }
    }

    /// After a failure: the prompts the call plays on its own, up to a wait or the end.
    fn what_happens_next(&mut self) -> Vec<String> {
        let mut lines: Vec<String> = Vec::new();
        play_until_wait(&mut self.call);
        self.take_log();
        lines.extend(self.observed.drain(..));
        match self.call.state() {
            State::Waiting { step, .. } => lines.push(format!("(waits for a key in '{step}')")),
            State::Ended => lines.push(self.ended_line()),
            State::Playing => {}
        }
        if lines.len() > MAX_LINES_AFTER_FAILURE {
            lines.truncate(MAX_LINES_AFTER_FAILURE);
            lines.push("...".to_owned());
        }
        lines
    }
}
