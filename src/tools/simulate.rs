//! `hotline simulate`: a call to a flow in the terminal, without a phone.
//!
//! Owns the key groups (`--keys "1,12345678#"`), how they are pressed into a virtual
//! call, the real-time interactive loop, and the printed transcript. The call itself is a
//! [`VirtualCall`], so the interpreter is the one live calls use. Nothing here parses
//! configuration or arguments; `main` does.

use std::fmt;
use std::io::{BufRead, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::flow::duration::DisplayDuration;
use crate::flow::flowset::FlowSet;
use crate::flow::story::{KeyUse, Outcome, StoryEvent};

use super::phone::{Happening, LogEntry, Sound, State, VirtualCall};

/// Time between two keys of one group, as a caller's finger takes.
pub const KEY_GAP: Duration = Duration::from_millis(200);
/// How far into a prompt a `>` group is pressed (or earlier, when the prompt is shorter).
pub const BARGE_IN_AFTER: Duration = Duration::from_secs(1);
/// A call still going this long after the last group is ended by the simulated caller.
pub const RUN_OUT_LIMIT: Duration = Duration::from_secs(3600);

/// One group of `--keys`: keys pressed together at one point of the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGroup {
    /// `>` before the keys: press them while a prompt plays (barge-in, type-ahead), not
    /// when the flow waits.
    pub during_prompt: bool,
    /// Empty: say nothing and let the flow's timeout pass once.
    pub keys: String,
}

impl fmt::Display for KeyGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.during_prompt {
            f.write_str(">")?;
        }
        f.write_str(&self.keys)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("group {group} of the keys: expected keys 0-9, * or #, found '{found}'")]
pub struct KeysError {
    /// 1-based.
    pub group: usize,
    pub found: char,
}

/// Parses `1,12345678#,>2,` (groups separated by commas; see [`KeyGroup`]). Spaces are
/// ignored; an empty group is a silence.
pub fn parse_keys(text: &str) -> Result<Vec<KeyGroup>, KeysError> {
    text.split(',')
        .enumerate()
        .map(|(i, g)| {
            parse_group(g).map_err(|found| KeysError {
                group: i + 1,
                found,
            })
        })
        .collect()
}

/// One group: `>` for during the prompt, then keys; spaces ignored.
pub fn parse_group(text: &str) -> Result<KeyGroup, char> {
    let text = text.trim();
    let (during_prompt, rest) = match text.strip_prefix('>') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let mut keys = String::new();
    for c in rest.chars().filter(|c| !c.is_whitespace()) {
        if !matches!(c, '0'..='9' | '*' | '#') {
            return Err(c);
        }
        keys.push(c);
    }
    Ok(KeyGroup {
        during_prompt,
        keys,
    })
}

/// Starts the call in `language` instead of the flow's default language, as if its
/// `defaults.language` said so (prompts missing in it fall back to the library's default).
pub fn start_in_language(flows: &mut FlowSet, flow: &str, language: &str) -> bool {
    let Some(id) = flows.id(flow) else {
        return false;
    };
    match flows.flow_mut(id) {
        Some(f) => {
            f.language = language.to_owned();
            true
        }
        None => false,
    }
}

// ---------------------------------------------------------------------------------------
// Driving on a virtual clock
// ---------------------------------------------------------------------------------------

/// What the driver does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Press(KeyGroup),
    /// No more keys: the call goes on with a silent caller until it ends.
    RunOut,
    /// The caller hangs up now.
    HangUp,
}

/// Runs the call on its virtual clock, asking `next` for a group whenever the previous
/// one has been pressed, until it says otherwise. `next` sees the call as it is (to print
/// it first). Returns the groups that could not be pressed because the call had ended.
pub fn drive(call: &mut VirtualCall, next: &mut dyn FnMut(&VirtualCall) -> Next) -> Vec<KeyGroup> {
    let mut unused = Vec::new();
    loop {
        match next(call) {
            Next::Press(group) => {
                if call.is_ended() || !press_group(call, &group) {
                    unused.push(group);
                }
            }
            Next::RunOut => {
                run_out(call);
                return unused;
            }
            Next::HangUp => {
                call.hang_up();
                return unused;
            }
        }
    }
}

/// Presses one group at the point the group asks for; false if the call ended first.
pub fn press_group(call: &mut VirtualCall, group: &KeyGroup) -> bool {
    if group.during_prompt {
        if let Some(ends) = call.playback_ends_at() {
            let into = call.now().checked_add(BARGE_IN_AFTER).unwrap_or(ends);
            // Just before the end, so the key still lands in the prompt.
            let last = ends
                .checked_sub(Duration::from_millis(20))
                .unwrap_or(ends)
                .max(call.now());
            call.advance_to(into.min(last));
        }
    } else {
        play_until_wait(call);
    }
    if call.is_ended() {
        return false;
    }
    if group.keys.is_empty() {
        play_until_wait(call);
        if let State::Waiting { deadline, .. } = call.state() {
            call.advance_to(deadline);
        }
        return true;
    }
    press_keys(call, &group.keys);
    true
}

/// Presses keys one after another, `KEY_GAP` apart.
pub fn press_keys(call: &mut VirtualCall, keys: &str) {
    for (i, k) in keys.chars().enumerate() {
        if i > 0 {
            let t = call.now().checked_add(KEY_GAP).unwrap_or(call.now());
            call.advance_to(t);
        }
        call.press(k);
    }
}

/// Lets playbacks run until the flow waits for a key or the call ends.
pub fn play_until_wait(call: &mut VirtualCall) {
    while call.state() == State::Playing {
        if !call.step() {
            break;
        }
    }
}

/// Lets the call go on with a silent caller until it ends, or hangs up after
/// `RUN_OUT_LIMIT` (the interpreter's own limits end a silent call long before).
pub fn run_out(call: &mut VirtualCall) {
    let limit = call.now().checked_add(RUN_OUT_LIMIT);
    while !call.is_ended() {
        if limit.is_some_and(|l| call.next_event_at().is_none_or(|t| t > l)) || !call.step() {
            call.hang_up();
        }
    }
}

/// The whole `--keys` run: a transcript as `simulate` prints it.
pub fn simulate_keys(call: &mut VirtualCall, groups: &[KeyGroup], times: bool) -> String {
    let mut printer = Printer::new(call.machine().story().flow.clone(), times);
    let mut out = Vec::new();
    let mut queue = groups.iter().cloned();
    let unused = drive(call, &mut |_| {
        queue.next().map_or(Next::RunOut, Next::Press)
    });
    printer.flush(call, &mut out);
    printer.finish(call, &unused, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------------------
// Real time
// ---------------------------------------------------------------------------------------

/// What the terminal sends the real-time loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A line typed: its keys are pressed now.
    Keys(String),
    /// `q` or the end of input: the caller hangs up.
    HangUp,
}

/// Reads lines from stdin on a thread of its own, as `Input`s.
pub fn stdin_lines() -> mpsc::Receiver<Input> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            let t = line.trim();
            let input = if t.eq_ignore_ascii_case("q") {
                Input::HangUp
            } else {
                Input::Keys(t.to_owned())
            };
            let quit = input == Input::HangUp;
            if tx.send(input).is_err() || quit {
                return;
            }
        }
        let _ = tx.send(Input::HangUp);
    });
    rx
}

/// Runs the call in real time: prompts take as long as their recordings, timeouts are
/// real, and keys typed while a prompt plays reach the interpreter at once (barge-in and
/// type-ahead as on a live call). The call's clock must have started at about `Instant::now()`.
pub fn run_realtime(call: &mut VirtualCall, input: &mpsc::Receiver<Input>, out: &mut dyn Write) {
    let mut printer = Printer::new(call.machine().story().flow.clone(), false);
    loop {
        printer.flush(call, out);
        let _ = out.flush();
        let Some(due) = call.next_event_at() else {
            break;
        };
        let wait = due.saturating_duration_since(Instant::now());
        let got = input.recv_timeout(wait);
        call.advance_to(Instant::now().max(call.now()));
        match got {
            Ok(Input::Keys(keys)) => {
                let mut bad = Vec::new();
                for c in keys.chars().filter(|c| !c.is_whitespace()) {
                    if matches!(c, '0'..='9' | '*' | '#') {
                        call.press(c);
                    } else {
                        bad.push(c);
                    }
                }
                if !bad.is_empty() {
                    printer.flush(call, out);
                    let bad: String = bad.into_iter().collect();
                    let _ = writeln!(out, "  (not telephone keys, ignored: {bad})");
                }
            }
            Ok(Input::HangUp) | Err(mpsc::RecvTimeoutError::Disconnected) => call.hang_up(),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    printer.flush(call, out);
    printer.finish(call, &[], out);
}

// ---------------------------------------------------------------------------------------
// The transcript
// ---------------------------------------------------------------------------------------

/// Prints the call's log as it grows: one line per thing the caller notices, keys of one
/// burst on one `press:` line.
#[derive(Debug)]
pub struct Printer {
    start_flow: String,
    times: bool,
    seen: usize,
    pressed: String,
    pressed_at: Duration,
}

impl Printer {
    pub fn new(start_flow: String, times: bool) -> Self {
        Printer {
            start_flow,
            times,
            seen: 0,
            pressed: String::new(),
            pressed_at: Duration::ZERO,
        }
    }

    /// Prints what happened since the last call.
    pub fn flush(&mut self, call: &VirtualCall, out: &mut dyn Write) {
        let log = call.log().get(self.seen..).unwrap_or(&[]);
        self.seen += log.len();
        for entry in log {
            if let Happening::Pressed(k) = entry.what {
                if self.pressed.is_empty() {
                    self.pressed_at = entry.at;
                }
                self.pressed.push(k);
                continue;
            }
            let Some(line) = describe(entry, &self.start_flow) else {
                continue;
            };
            self.flush_pressed(out);
            self.line(out, entry.at, &line);
        }
        self.flush_pressed(out);
    }

    /// The tags, the unused key groups and the outcome.
    pub fn finish(&mut self, call: &VirtualCall, unused: &[KeyGroup], out: &mut dyn Write) {
        let story = call.machine().story();
        if !unused.is_empty() {
            let groups: Vec<String> = unused.iter().map(ToString::to_string).collect();
            let _ = writeln!(
                out,
                "keys not used (the call had ended): {}",
                groups.join(",")
            );
        }
        if story.tags.is_empty() {
            let _ = writeln!(out, "tags: none");
        } else {
            let tags: Vec<String> = story.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(out, "tags: {}", tags.join(", "));
        }
        let outcome = story
            .outcome
            .as_ref()
            .map_or_else(|| "still going".to_owned(), Outcome::to_string);
        let _ = writeln!(out, "outcome: {outcome}, after {}", length(call.elapsed()));
    }

    fn flush_pressed(&mut self, out: &mut dyn Write) {
        if !self.pressed.is_empty() {
            let line = format!("press: {}", self.pressed);
            self.pressed.clear();
            self.line(out, self.pressed_at, &line);
        }
    }

    fn line(&self, out: &mut dyn Write, at: Duration, text: &str) {
        if self.times {
            let _ = writeln!(out, "{:>7}  {text}", clock(at));
        } else {
            let _ = writeln!(out, "  {text}");
        }
    }
}

/// `53.4s`, `2m 15.2s`
fn length(d: Duration) -> String {
    let tenths = d.as_millis() / 100;
    let (m, s, t) = (tenths / 600, (tenths / 10) % 60, tenths % 10);
    if m == 0 {
        format!("{s}.{t}s")
    } else {
        format!("{m}m {s}.{t}s")
    }
}

/// `m:ss.t`
fn clock(d: Duration) -> String {
    let tenths = d.as_millis() / 100;
    format!("{}:{:02}.{}", tenths / 600, (tenths / 10) % 60, tenths % 10)
}

/// What the caller hears, as `simulate` prints it.
pub fn hears(sound: &Sound) -> String {
    match sound {
        Sound::Prompt {
            name, transcript, ..
        } => match transcript {
            Some(t) => t.clone(),
            None => format!("[{name}]"),
        },
        Sound::Say { kind, value } => format!("[say {} {value}]", kind.as_str()),
        Sound::Silence(d) => format!("[silence {}]", DisplayDuration(*d)),
        Sound::Tone { freq_hz } => format!("[beep {freq_hz} Hz]"),
    }
}

/// One transcript line for a log entry; `None` for what the caller does not notice.
fn describe(entry: &LogEntry, start_flow: &str) -> Option<String> {
    Some(match &entry.what {
        Happening::Heard(sound) => format!("hears: {}", hears(sound)),
        Happening::Pressed(k) => format!("press: {k}"),
        Happening::PromptStopped => "(the key stops the prompt)".to_owned(),
        Happening::FlowHungUp => "hangs up".to_owned(),
        Happening::Queued(q) => format!("queued: {q}"),
        Happening::Transferred(t) => format!("transferred: {t}"),
        Happening::Unsupported(what) => format!("(not simulated yet: {what})"),
        Happening::Story(event) => return describe_story(event, start_flow),
    })
}

fn describe_story(event: &StoryEvent, start_flow: &str) -> Option<String> {
    Some(match event {
        StoryEvent::StepEntered { flow, step } if flow == start_flow => format!("step: {step}"),
        StoryEvent::StepEntered { flow, step } => format!("step: {flow}/{step}"),
        StoryEvent::SkippedForTypeAhead { step } => {
            format!("(skips '{step}': keys typed ahead)")
        }
        StoryEvent::Key {
            key,
            went,
            typed_ahead,
        } => {
            let ahead = if *typed_ahead { "typed-ahead " } else { "" };
            match went {
                KeyUse::Buffered => format!("(key {key} kept for the next menu)"),
                KeyUse::Global { to } => format!("({ahead}key {key}: global key to '{to}')"),
                KeyUse::Back { to } => format!("({ahead}key {key}: back to '{to}')"),
                KeyUse::Repeat => format!("({ahead}key {key}: repeat)"),
                KeyUse::Ignored => format!("(key {key} ignored)"),
                KeyUse::Dropped => format!("(key {key} dropped: too many typed ahead)"),
                KeyUse::Option { to } if *typed_ahead => {
                    format!("(typed-ahead key {key}: option to '{to}')")
                }
                KeyUse::Option { .. }
                | KeyUse::Digit
                | KeyUse::Terminator
                | KeyUse::ConfirmYes
                | KeyUse::ConfirmNo
                | KeyUse::Invalid => return None,
            }
        }
        StoryEvent::TypeAheadDiscarded { keys } => format!("(keys typed ahead dropped: {keys})"),
        StoryEvent::NoInput { step, failures } => {
            format!("(no input in '{step}', failure {failures})")
        }
        StoryEvent::Invalid {
            step,
            input,
            failures,
        } => format!("(invalid entry '{input}' in '{step}', failure {failures})"),
        StoryEvent::StepFailed { step } => format!("(gives up on '{step}')"),
        StoryEvent::VariableSet { name, value } => format!("set: {name} = {value}"),
        StoryEvent::LanguageChanged { language } => format!("language: {language}"),
        StoryEvent::Tagged { name, value } => format!("tag: {name} = {value}"),
        StoryEvent::FlowEntered { flow, .. } => format!("goto: {flow}"),
        StoryEvent::FlowReturned { to } => format!("back in: {to}"),
        StoryEvent::TemplateFailed { template, error } => {
            format!("(template '{template}' failed: {error})")
        }
        StoryEvent::CallerHungUp => "caller hangs up".to_owned(),
        StoryEvent::MaxCallReached { after } => {
            format!("(maximum call length reached after {}s)", after.as_secs())
        }
        StoryEvent::TemplateUndefined {
            template,
            variables,
        } => {
            format!("(template '{template}': not set: {})", variables.join(", "))
        }
        StoryEvent::BranchTaken { condition, to } => match condition {
            Some(c) => format!("branch: {c} -> {to}"),
            None => format!("branch: else -> {to}"),
        },
        StoryEvent::HoursChecked {
            schedule,
            state,
            local_time,
        } => format!("hours: {schedule} is {state} at {local_time}"),
        StoryEvent::HttpRequested { method, url } => format!("http: {method} {url}"),
        StoryEvent::HttpFinished { outcome } => format!("http: {outcome}"),
        StoryEvent::RecordingStarted { name } => format!("record: {name}"),
        StoryEvent::RecordingFinished {
            path,
            duration,
            reason,
            ..
        } => format!(
            "recorded: {path} ({}, {reason})",
            DisplayDuration(*duration)
        ),
        StoryEvent::Resolved { reason } => format!("resolved: {reason}"),
        StoryEvent::SurveyAnswered { question, score } => format!("survey: {question} = {score}"),
        StoryEvent::TransferStarted { target } => format!("transfer: {target}"),
        StoryEvent::TransferFinished { outcome } => format!("transfer: {outcome}"),
        StoryEvent::QueueAnswered { agent } => format!("agent answers: {agent}"),
        StoryEvent::AgentRinging { agent } => format!("agent rings: {agent}"),
        StoryEvent::AgentNoAnswer { agent, reason } => format!("agent {agent}: {reason}"),
        StoryEvent::Hold { on: true, by } => format!("hold by the {by}"),
        StoryEvent::Hold { on: false, by } => format!("off hold by the {by}"),
        StoryEvent::WrapUp { agent, wrap_up } => {
            format!("wrap-up: {agent} {}", DisplayDuration(*wrap_up))
        }
        StoryEvent::CallbackPlaced {
            queue, for_call, ..
        } => format!("call back for {for_call} in {queue}"),
        StoryEvent::QueueFinished { outcome, waited } => match waited {
            Some(w) => format!("queue: {outcome} after {}", DisplayDuration(*w)),
            None => format!("queue: {outcome}"),
        },
        StoryEvent::Played { .. }
        | StoryEvent::QueueJoined { .. }
        | StoryEvent::PlaybackStopped { .. }
        | StoryEvent::Ended { .. } => {
            return None;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_groups_parse() {
        let g = parse_keys("1, 12345678#,>2,,*").unwrap();
        assert_eq!(g.len(), 5);
        assert_eq!(g[1].keys, "12345678#");
        assert!(g[2].during_prompt && g[2].keys == "2");
        assert!(g[3].keys.is_empty() && !g[3].during_prompt);
        assert_eq!(
            parse_keys("1,2a").unwrap_err().to_string(),
            "group 2 of the keys: expected keys 0-9, * or #, found 'a'"
        );
    }

    #[test]
    fn clock_prints_minutes_seconds_tenths() {
        assert_eq!(clock(Duration::from_millis(65_430)), "1:05.4");
        assert_eq!(clock(Duration::ZERO), "0:00.0");
    }
}
