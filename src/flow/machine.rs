//! The interpreter: one `FlowMachine` per call runs the compiled flows.
//!
//! Owns what callers feel: type-ahead, barge-in, timeouts counted from the end of a
//! prompt, retries and their prompts, global keys, language switches, goto and return,
//! and the call's story. It is a pure state machine: events and the current time go in,
//! actions come out; it never sleeps, reads a clock, spawns or does IO. The shell plays
//! what `Action::Play` asks and reports `Event::PromptFinished` when the last frame of it
//! was sent, and calls `handle_timeout` at `poll_timeout()`.
//!
//! Step kinds whose execution is not built yet (set, branch, hours, http, record, queue,
//! transfer) end the call politely with `FailReason::Unsupported`. Their slots are kept
//! open: `http` will become `Action::HttpRequest` answered by an `Event::HttpResult`,
//! `queue` an `Action::Enqueue` with queue events, and so on.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::flowset::{
    AudioItem, CollectStep, CompiledFlow, FlowId, FlowSet, MenuStep, StepAction, StepId, Target,
};
use super::model::{DtmfKey, SayKind, TagValue};
use super::story::{CallStory, FailReason, FailureKind, KeyUse, Outcome, StoryEntry, StoryEvent};
use super::template;

/// The prompt played when a flow ends without saying goodbye itself, or a caller could
/// not be helped (no `on_failure`, a step that cannot run). Shipped in every language.
pub const DEFAULT_GOODBYE_PROMPT: &str = "goodbye_default";
/// Steps entered in a row without the caller's part (a key, or a wait for one) before the
/// call is ended: a flow that loops through plays must not keep a caller forever.
pub const MAX_STEPS_WITHOUT_INPUT: u32 = 100;
/// `goto ... return: true` nested deeper than this ends the call (a flow calling itself).
pub const MAX_GOTO_DEPTH: usize = 16;
/// No-input failures in a row, across steps, before the call is ended: nobody is there.
pub const MAX_SILENT_FAILURES: u32 = 25;
/// Keys kept for later; more are dropped (a stuck key must not grow memory).
pub const TYPE_AHEAD_LIMIT: usize = 32;

/// Who is calling whom; becomes the `caller`, `dialed` and `call_id` variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallContext {
    pub call_id: String,
    pub caller: String,
    pub dialed: String,
}

/// Identifies one `Action::Play`, so a late `PromptFinished` of a stopped prompt is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlayId(pub u64);

/// A recorded prompt: `prompts/<language>/<name>.wav`, or the fallback language's when the
/// caller's language lacks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptRef {
    pub language: String,
    pub fallback_language: String,
    pub name: String,
}

/// One piece of what to play.
#[derive(Debug, Clone, PartialEq)]
pub enum Audio {
    Prompt(PromptRef),
    /// A value to speak (digits, a date...), in the caller's language.
    Say {
        language: String,
        kind: SayKind,
        value: String,
    },
    Silence(Duration),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Play these in order. With `barge_in`, the machine may answer a key with
    /// `StopPlayback`; report `PromptFinished` when the last frame was sent.
    Play {
        id: PlayId,
        audio: Vec<Audio>,
        barge_in: bool,
    },
    /// Stop that playback now (within the current frame). No `PromptFinished` is needed.
    StopPlayback { id: PlayId },
    /// End the call.
    Hangup,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The call is answered and media flows: run the first step.
    Started,
    /// A telephone key (`0`-`9`, `*`, `#`); other characters are ignored.
    Key(char),
    /// The last frame of this playback was sent.
    PromptFinished { id: PlayId },
    /// The caller hung up.
    CallerHangup,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MachineError {
    #[error("no flow named '{name}' (loaded: {known})")]
    UnknownFlow { name: String, known: String },
}

/// What happens when a playback finishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterPlay {
    /// A `play` step: continue with its `next`.
    Continue(Option<Target>),
    /// Wait for the menu's key.
    Menu,
    /// Wait for the first digit of the collect.
    Collect,
    /// Wait for the collect's yes/no.
    Confirm,
    /// End the call.
    HangUp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    Menu,
    Collect,
    Confirm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    NotStarted,
    Playing {
        id: PlayId,
        barge_in: bool,
        then: AfterPlay,
    },
    Waiting {
        deadline: Instant,
        input: Input,
    },
    Ended,
}

/// Where to go after handling something.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Go {
    /// Wait for the next event.
    Wait,
    /// Continue at a step of the current flow; `None` when the flow has run out.
    To(Option<Target>),
    /// Play the built-in goodbye, then hang up.
    Farewell(Outcome),
}

/// One call's interpreter. See the module comment for the contract with the shell.
#[derive(Debug)]
pub struct FlowMachine {
    flows: Arc<FlowSet>,
    started_at: Instant,
    flow: FlowId,
    step: StepId,
    /// Return points of `goto ... return: true`, innermost last.
    frames: Vec<(FlowId, Target)>,
    language: String,
    vars: BTreeMap<String, Value>,
    type_ahead: VecDeque<char>,
    phase: Phase,
    /// Failures in the current menu or collect.
    failures: u32,
    digits: String,
    steps_without_input: u32,
    silent_failures: u32,
    next_play: u64,
    actions: VecDeque<Action>,
    story: CallStory,
}

impl FlowMachine {
    /// A machine for a call that starts in `flow`. Nothing happens until `Event::Started`.
    pub fn new(
        flows: Arc<FlowSet>,
        flow: &str,
        ctx: CallContext,
        now: Instant,
    ) -> Result<Self, MachineError> {
        let Some(id) = flows.id(flow) else {
            return Err(MachineError::UnknownFlow {
                name: flow.to_owned(),
                known: flows.names().join(", "),
            });
        };
        let f = flows.flow(id);
        let language = f.language.clone();
        let start = f.start;
        let mut vars = BTreeMap::new();
        vars.insert("caller".to_owned(), Value::from(ctx.caller.clone()));
        vars.insert("dialed".to_owned(), Value::from(ctx.dialed.clone()));
        vars.insert("call_id".to_owned(), Value::from(ctx.call_id.clone()));
        vars.insert("language".to_owned(), Value::from(language.clone()));
        let story = CallStory {
            call_id: ctx.call_id,
            flow: flow.to_owned(),
            ..CallStory::default()
        };
        Ok(Self {
            flows,
            started_at: now,
            flow: id,
            step: start,
            frames: Vec::new(),
            language,
            vars,
            type_ahead: VecDeque::new(),
            phase: Phase::NotStarted,
            failures: 0,
            digits: String::new(),
            steps_without_input: 0,
            silent_failures: 0,
            next_play: 0,
            actions: VecDeque::new(),
            story,
        })
    }

    pub fn handle(&mut self, now: Instant, event: Event) {
        match event {
            Event::Started => {
                if self.phase == Phase::NotStarted {
                    let start = self.step;
                    self.run(now, Go::To(Some(Target::Step(start))));
                }
            }
            Event::Key(key) => self.on_key(now, key),
            Event::PromptFinished { id } => self.on_prompt_finished(now, id),
            Event::CallerHangup => {
                if self.phase != Phase::Ended {
                    self.note(now, StoryEvent::CallerHungUp);
                    self.phase = Phase::Ended;
                    self.set_outcome(now, Outcome::CallerHungUp);
                }
            }
        }
    }

    /// The next thing for the shell to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When the machine wants `handle_timeout` (no-input and inter-digit timers).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Waiting { deadline, .. } => Some(deadline),
            _ => None,
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let Phase::Waiting { deadline, input } = self.phase else {
            return;
        };
        if now < deadline {
            return;
        }
        let go = match input {
            Input::Menu | Input::Confirm => self.fail(now, FailureKind::NoInput),
            Input::Collect if self.digits.is_empty() => self.fail(now, FailureKind::NoInput),
            Input::Collect => self.finish_collect(now),
        };
        self.run(now, go);
    }

    pub fn story(&self) -> &CallStory {
        &self.story
    }

    pub fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    /// The caller's language now.
    pub fn language(&self) -> &str {
        &self.language
    }

    pub fn vars(&self) -> &BTreeMap<String, Value> {
        &self.vars
    }

    /// The current flow and step names.
    pub fn position(&self) -> (&str, &str) {
        let f = self.flows.flow(self.flow);
        let step = f.steps.get(self.step.0).map_or("", |s| s.name.as_str());
        (f.name.as_str(), step)
    }

    // ------------------------------------------------------------------ driving

    fn run(&mut self, now: Instant, mut go: Go) {
        loop {
            go = match go {
                Go::Wait => return,
                Go::To(Some(Target::Hangup)) => {
                    self.hang_up(now, Outcome::FlowHungUp);
                    return;
                }
                Go::To(Some(Target::Step(step))) => self.enter(now, step),
                Go::To(None) => self.ran_out(now),
                Go::Farewell(outcome) => {
                    self.farewell(now, outcome);
                    return;
                }
            };
        }
    }

    fn flow_def(&self) -> &CompiledFlow {
        self.flows.flow(self.flow)
    }

    fn step_name(&self) -> String {
        self.position().1.to_owned()
    }

    fn enter(&mut self, now: Instant, step: StepId) -> Go {
        self.step = step;
        self.failures = 0;
        self.digits.clear();
        self.steps_without_input = self.steps_without_input.saturating_add(1);
        if self.steps_without_input > MAX_STEPS_WITHOUT_INPUT {
            return Go::Farewell(Outcome::Failed(FailReason::RunawayLoop {
                step: self.step_name(),
            }));
        }
        let flows = Arc::clone(&self.flows);
        let f = flows.flow(self.flow);
        let Some(s) = f.steps.get(step.0) else {
            return Go::To(None);
        };
        self.note(
            now,
            StoryEvent::StepEntered {
                flow: f.name.clone(),
                step: s.name.clone(),
            },
        );
        for (name, value) in &s.tags {
            self.tag(now, name, value);
        }
        match &s.action {
            StepAction::Play {
                audio,
                barge_in,
                next,
            } => {
                if *barge_in && !self.type_ahead.is_empty() {
                    self.note(
                        now,
                        StoryEvent::SkippedForTypeAhead {
                            step: s.name.clone(),
                        },
                    );
                    return Go::To(*next);
                }
                let audio = self.render_audio(now, audio);
                if audio.is_empty() {
                    return Go::To(*next);
                }
                self.play(now, audio, *barge_in, AfterPlay::Continue(*next));
                Go::Wait
            }
            StepAction::Menu(m) => {
                if let Some(key) = self.type_ahead.pop_front() {
                    return self.menu_key(now, m, key, true);
                }
                self.offer(now, &[], &m.prompt, AfterPlay::Menu);
                Go::Wait
            }
            StepAction::Collect(c) => {
                if self.type_ahead.is_empty() {
                    self.offer(now, &[], &c.prompt, AfterPlay::Collect);
                    return Go::Wait;
                }
                self.feed_collect(now, c)
            }
            StepAction::Language { code, next } => {
                self.set_language(now, code);
                Go::To(*next)
            }
            StepAction::Goto { flow, return_to } => {
                if let Some(back) = return_to {
                    if self.frames.len() >= MAX_GOTO_DEPTH {
                        return Go::Farewell(Outcome::Failed(FailReason::GotoTooDeep {
                            step: s.name.clone(),
                        }));
                    }
                    self.frames.push((self.flow, *back));
                }
                self.flow = *flow;
                let target = flows.flow(*flow);
                self.note(
                    now,
                    StoryEvent::FlowEntered {
                        flow: target.name.clone(),
                        returns: return_to.is_some(),
                    },
                );
                Go::To(Some(Target::Step(target.start)))
            }
            StepAction::Hangup { audio } => {
                let audio = self.render_audio(now, audio);
                if audio.is_empty() {
                    self.hang_up(now, Outcome::FlowHungUp);
                } else {
                    self.set_outcome(now, Outcome::FlowHungUp);
                    self.play(now, audio, false, AfterPlay::HangUp);
                }
                Go::Wait
            }
            other => Go::Farewell(Outcome::Failed(FailReason::Unsupported {
                step: s.name.clone(),
                kind: other.kind_name().to_owned(),
            })),
        }
    }

    /// The flow has no next step: return from a `goto ... return: true`, or say goodbye.
    fn ran_out(&mut self, now: Instant) -> Go {
        match self.frames.pop() {
            Some((flow, back)) => {
                self.flow = flow;
                let name = self.flow_def().name.clone();
                self.note(now, StoryEvent::FlowReturned { to: name });
                Go::To(Some(back))
            }
            None => Go::Farewell(Outcome::FlowEnded),
        }
    }

    fn farewell(&mut self, now: Instant, outcome: Outcome) {
        self.type_ahead.clear();
        self.set_outcome(now, outcome);
        let prompt = Audio::Prompt(self.prompt_ref(DEFAULT_GOODBYE_PROMPT));
        self.play(now, vec![prompt], false, AfterPlay::HangUp);
    }

    fn hang_up(&mut self, now: Instant, outcome: Outcome) {
        self.set_outcome(now, outcome);
        self.phase = Phase::Ended;
        self.actions.push_back(Action::Hangup);
    }

    fn set_outcome(&mut self, now: Instant, outcome: Outcome) {
        if self.story.outcome.is_none() {
            self.note(
                now,
                StoryEvent::Ended {
                    outcome: outcome.clone(),
                },
            );
            self.story.outcome = Some(outcome);
        }
    }

    // ------------------------------------------------------------------ events

    fn on_key(&mut self, now: Instant, key: char) {
        if DtmfKey::new(key).is_none() {
            self.key_note(now, key, KeyUse::Ignored, false);
            return;
        }
        self.silent_failures = 0;
        let go = match self.phase {
            Phase::NotStarted => {
                self.buffer_key(now, key);
                Go::Wait
            }
            Phase::Ended => Go::Wait,
            Phase::Playing { id, barge_in, then } => match then {
                AfterPlay::HangUp => {
                    self.key_note(now, key, KeyUse::Ignored, false);
                    Go::Wait
                }
                AfterPlay::Continue(next) => {
                    self.buffer_key(now, key);
                    if barge_in {
                        self.stop(now, id);
                        Go::To(next)
                    } else {
                        Go::Wait
                    }
                }
                AfterPlay::Menu | AfterPlay::Collect | AfterPlay::Confirm => {
                    self.stop(now, id);
                    self.input_key(now, key)
                }
            },
            Phase::Waiting { .. } => self.input_key(now, key),
        };
        self.run(now, go);
    }

    /// A key for the menu, collect or confirmation the current step is asking for.
    fn input_key(&mut self, now: Instant, key: char) -> Go {
        let flows = Arc::clone(&self.flows);
        let Some(step) = flows.flow(self.flow).steps.get(self.step.0) else {
            return Go::Wait;
        };
        match (&step.action, self.asking()) {
            (StepAction::Menu(m), _) => self.menu_key(now, m, key, false),
            (StepAction::Collect(c), Some(Input::Confirm)) => self.confirm_key(now, c, key, false),
            (StepAction::Collect(c), _) => self.collect_key(now, c, key, false),
            _ => Go::Wait,
        }
    }

    /// Which input the current phase asks for.
    fn asking(&self) -> Option<Input> {
        match self.phase {
            Phase::Waiting { input, .. } => Some(input),
            Phase::Playing {
                then: AfterPlay::Menu,
                ..
            } => Some(Input::Menu),
            Phase::Playing {
                then: AfterPlay::Collect,
                ..
            } => Some(Input::Collect),
            Phase::Playing {
                then: AfterPlay::Confirm,
                ..
            } => Some(Input::Confirm),
            _ => None,
        }
    }

    fn on_prompt_finished(&mut self, now: Instant, id: PlayId) {
        let Phase::Playing {
            id: playing, then, ..
        } = self.phase
        else {
            return;
        };
        if playing != id {
            return;
        }
        let go = self.after_play(now, then);
        self.run(now, go);
    }

    /// What follows a finished playback; timeouts start now, at the end of the prompt.
    fn after_play(&mut self, now: Instant, then: AfterPlay) -> Go {
        let flows = Arc::clone(&self.flows);
        let step = flows.flow(self.flow).steps.get(self.step.0);
        match (then, step.map(|s| &s.action)) {
            (AfterPlay::Continue(next), _) => Go::To(next),
            (AfterPlay::HangUp, _) => {
                self.phase = Phase::Ended;
                self.actions.push_back(Action::Hangup);
                Go::Wait
            }
            (AfterPlay::Menu, Some(StepAction::Menu(m))) => {
                self.wait_for(now, m.timeout, Input::Menu);
                Go::Wait
            }
            (AfterPlay::Collect, Some(StepAction::Collect(c))) => {
                self.wait_for(now, c.timeout, Input::Collect);
                Go::Wait
            }
            (AfterPlay::Confirm, Some(StepAction::Collect(c))) => {
                self.wait_for(now, c.timeout, Input::Confirm);
                Go::Wait
            }
            _ => Go::Wait,
        }
    }

    // ------------------------------------------------------------------ menu

    fn menu_key(&mut self, now: Instant, m: &MenuStep, key: char, typed_ahead: bool) -> Go {
        self.steps_without_input = 0;
        if let Some(option) = m.option(key) {
            let to = self.target_name(option.target);
            self.key_note(now, key, KeyUse::Option { to }, typed_ahead);
            if let Some(lang) = &option.language {
                self.set_language(now, lang);
            }
            return Go::To(Some(option.target));
        }
        if m.repeat_key == Some(key) {
            self.key_note(now, key, KeyUse::Repeat, typed_ahead);
            self.offer(now, &[], &m.prompt, AfterPlay::Menu);
            return Go::Wait;
        }
        if let Some(target) = self.flow_def().global_key(key) {
            let to = self.target_name(target);
            self.key_note(now, key, KeyUse::Global { to }, typed_ahead);
            return Go::To(Some(target));
        }
        self.key_note(now, key, KeyUse::Invalid, typed_ahead);
        self.input_failed(now, FailureKind::Invalid, key.to_string())
    }

    // ------------------------------------------------------------------ collect

    /// Runs the type-ahead through a collect that has just been entered.
    fn feed_collect(&mut self, now: Instant, c: &CollectStep) -> Go {
        while let Some(key) = self.type_ahead.pop_front() {
            let go = self.collect_key(now, c, key, true);
            let still_collecting = matches!(
                self.phase,
                Phase::Waiting {
                    input: Input::Collect,
                    ..
                }
            ) && go == Go::Wait;
            if !still_collecting {
                return go;
            }
        }
        Go::Wait
    }

    fn collect_key(&mut self, now: Instant, c: &CollectStep, key: char, typed_ahead: bool) -> Go {
        self.steps_without_input = 0;
        if Some(key) == c.terminator {
            self.key_note(now, key, KeyUse::Terminator, typed_ahead);
            return self.finish_collect(now);
        }
        // A global digit works only as the first key: after that, digits are the entry.
        let global = self
            .flow_def()
            .global_key(key)
            .filter(|_| !key.is_ascii_digit() || self.digits.is_empty());
        if let Some(target) = global {
            let to = self.target_name(target);
            self.key_note(now, key, KeyUse::Global { to }, typed_ahead);
            return Go::To(Some(target));
        }
        if !key.is_ascii_digit() {
            self.key_note(now, key, KeyUse::Invalid, typed_ahead);
            let mut input = std::mem::take(&mut self.digits);
            input.push(key);
            return self.input_failed(now, FailureKind::Invalid, input);
        }
        self.key_note(now, key, KeyUse::Digit, typed_ahead);
        self.digits.push(key);
        if self.digits.len() >= c.max_digits as usize {
            return self.finish_collect(now);
        }
        self.wait_for(now, c.inter_digit_timeout, Input::Collect);
        Go::Wait
    }

    fn finish_collect(&mut self, now: Instant) -> Go {
        let flows = Arc::clone(&self.flows);
        let Some(StepAction::Collect(c)) = flows
            .flow(self.flow)
            .steps
            .get(self.step.0)
            .map(|s| &s.action)
        else {
            return Go::Wait;
        };
        let entry = std::mem::take(&mut self.digits);
        let long_enough = entry.len() >= c.min_digits as usize;
        let matches = c.pattern.as_ref().is_none_or(|p| p.is_match(&entry));
        if !(long_enough && matches) {
            return self.input_failed(now, FailureKind::Invalid, entry);
        }
        self.set_var(now, &c.into, entry);
        match &c.confirm {
            None => Go::To(c.next),
            Some(cf) => {
                if let Some(key) = self.type_ahead.pop_front() {
                    return self.confirm_key(now, c, key, true);
                }
                self.offer(now, &[], &cf.prompt, AfterPlay::Confirm);
                Go::Wait
            }
        }
    }

    fn confirm_key(&mut self, now: Instant, c: &CollectStep, key: char, typed_ahead: bool) -> Go {
        self.steps_without_input = 0;
        let Some(cf) = &c.confirm else {
            return Go::Wait;
        };
        if key == cf.yes {
            self.key_note(now, key, KeyUse::ConfirmYes, typed_ahead);
            return Go::To(c.next);
        }
        if key == cf.no {
            // Asking again is the caller's choice, not a failure.
            self.key_note(now, key, KeyUse::ConfirmNo, typed_ahead);
            self.digits.clear();
            self.offer(now, &[], &c.prompt, AfterPlay::Collect);
            return Go::Wait;
        }
        self.key_note(now, key, KeyUse::Invalid, typed_ahead);
        self.input_failed(now, FailureKind::Invalid, key.to_string())
    }

    // ------------------------------------------------------------------ failures

    fn input_failed(&mut self, now: Instant, kind: FailureKind, input: String) -> Go {
        let failures = self.failures.saturating_add(1);
        let step = self.step_name();
        if kind == FailureKind::Invalid {
            self.note(
                now,
                StoryEvent::Invalid {
                    step,
                    input,
                    failures,
                },
            );
        }
        self.fail(now, kind)
    }

    /// A timeout or a wrong entry: offer the step again with the matching prompt first,
    /// or after `retries` such failures go to `on_failure` (or the built-in goodbye).
    fn fail(&mut self, now: Instant, kind: FailureKind) -> Go {
        self.failures = self.failures.saturating_add(1);
        self.digits.clear();
        // Keys typed after a failure were meant for a menu the caller misunderstood.
        if !self.type_ahead.is_empty() {
            let keys: String = self.type_ahead.drain(..).collect();
            self.note(now, StoryEvent::TypeAheadDiscarded { keys });
        }
        let step = self.step_name();
        if kind == FailureKind::NoInput {
            self.note(
                now,
                StoryEvent::NoInput {
                    step: step.clone(),
                    failures: self.failures,
                },
            );
            self.silent_failures = self.silent_failures.saturating_add(1);
            if self.silent_failures > MAX_SILENT_FAILURES {
                return Go::Farewell(Outcome::Failed(FailReason::NoCaller { step }));
            }
        }
        let flows = Arc::clone(&self.flows);
        let Some(s) = flows.flow(self.flow).steps.get(self.step.0) else {
            return Go::To(None);
        };
        let (retries, on_failure, extra, prompt, then) = match &s.action {
            StepAction::Menu(m) => (
                m.retries,
                m.on_failure,
                if kind == FailureKind::NoInput {
                    &m.no_input
                } else {
                    &m.invalid
                },
                &m.prompt,
                AfterPlay::Menu,
            ),
            StepAction::Collect(c) => (
                c.retries,
                c.on_failure,
                if kind == FailureKind::NoInput {
                    &c.no_input
                } else {
                    &c.invalid
                },
                &c.prompt,
                AfterPlay::Collect,
            ),
            _ => return Go::Wait,
        };
        if self.failures > retries {
            self.note(now, StoryEvent::StepFailed { step: step.clone() });
            return match on_failure {
                Some(target) => Go::To(Some(target)),
                None => Go::Farewell(Outcome::Failed(FailReason::RetriesExhausted {
                    step,
                    last: kind,
                })),
            };
        }
        self.offer(now, extra, prompt, then);
        Go::Wait
    }

    // ------------------------------------------------------------------ helpers

    /// Plays `before` then `prompt` with barge-in, then waits as `then` says.
    fn offer(&mut self, now: Instant, before: &[AudioItem], prompt: &[AudioItem], then: AfterPlay) {
        self.steps_without_input = 0;
        let mut audio = self.render_audio(now, before);
        audio.extend(self.render_audio(now, prompt));
        if audio.is_empty() {
            // Nothing to hear (every item failed to render): start waiting at once. For a
            // menu, collect or confirmation this is always a wait, never a jump.
            let _ = self.after_play(now, then);
            return;
        }
        self.play(now, audio, true, then);
    }

    fn play(&mut self, now: Instant, audio: Vec<Audio>, barge_in: bool, then: AfterPlay) {
        let id = PlayId(self.next_play);
        self.next_play = self.next_play.wrapping_add(1);
        let items = audio.iter().map(describe_audio).collect();
        self.note(now, StoryEvent::Played { id, items });
        self.actions.push_back(Action::Play {
            id,
            audio,
            barge_in,
        });
        self.phase = Phase::Playing { id, barge_in, then };
    }

    fn stop(&mut self, now: Instant, id: PlayId) {
        self.actions.push_back(Action::StopPlayback { id });
        self.note(now, StoryEvent::PlaybackStopped { id });
    }

    fn wait_for(&mut self, now: Instant, timeout: Duration, input: Input) {
        self.steps_without_input = 0;
        let deadline = now.checked_add(timeout).unwrap_or(now);
        self.phase = Phase::Waiting { deadline, input };
    }

    fn buffer_key(&mut self, now: Instant, key: char) {
        if self.type_ahead.len() >= TYPE_AHEAD_LIMIT {
            self.key_note(now, key, KeyUse::Dropped, false);
        } else {
            self.type_ahead.push_back(key);
            self.key_note(now, key, KeyUse::Buffered, false);
        }
    }

    fn prompt_ref(&self, name: &str) -> PromptRef {
        PromptRef {
            language: self.language.clone(),
            fallback_language: self.flow_def().language.clone(),
            name: name.to_owned(),
        }
    }

    fn render_audio(&mut self, now: Instant, items: &[AudioItem]) -> Vec<Audio> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item {
                AudioItem::Prompt(name) => out.push(Audio::Prompt(self.prompt_ref(name))),
                AudioItem::Silence(d) => out.push(Audio::Silence(*d)),
                AudioItem::Say { kind, value } => match template::render(value, &self.vars) {
                    Ok(value) => out.push(Audio::Say {
                        language: self.language.clone(),
                        kind: *kind,
                        value,
                    }),
                    Err(e) => self.note(
                        now,
                        StoryEvent::TemplateFailed {
                            template: value.clone(),
                            error: e.to_string(),
                        },
                    ),
                },
            }
        }
        out
    }

    fn set_language(&mut self, now: Instant, code: &str) {
        self.language = code.to_owned();
        self.vars
            .insert("language".to_owned(), Value::from(code.to_owned()));
        self.note(
            now,
            StoryEvent::LanguageChanged {
                language: code.to_owned(),
            },
        );
    }

    fn set_var(&mut self, now: Instant, name: &str, value: String) {
        self.vars
            .insert(name.to_owned(), Value::from(value.clone()));
        self.note(
            now,
            StoryEvent::VariableSet {
                name: name.to_owned(),
                value,
            },
        );
    }

    fn tag(&mut self, now: Instant, name: &str, value: &TagValue) {
        let value = match value {
            TagValue::Text(t) => match template::render(t, &self.vars) {
                Ok(v) => v,
                Err(e) => {
                    self.note(
                        now,
                        StoryEvent::TemplateFailed {
                            template: t.clone(),
                            error: e.to_string(),
                        },
                    );
                    t.clone()
                }
            },
            other => other.to_string(),
        };
        match self.story.tags.iter_mut().find(|(k, _)| k == name) {
            Some(entry) => entry.1 = value.clone(),
            None => self.story.tags.push((name.to_owned(), value.clone())),
        }
        self.note(
            now,
            StoryEvent::Tagged {
                name: name.to_owned(),
                value,
            },
        );
    }

    fn target_name(&self, target: Target) -> String {
        match target {
            Target::Hangup => "hangup".to_owned(),
            Target::Step(s) => self
                .flow_def()
                .steps
                .get(s.0)
                .map_or_else(String::new, |s| s.name.clone()),
        }
    }

    fn key_note(&mut self, now: Instant, key: char, went: KeyUse, typed_ahead: bool) {
        self.note(
            now,
            StoryEvent::Key {
                key,
                went,
                typed_ahead,
            },
        );
    }

    fn note(&mut self, now: Instant, event: StoryEvent) {
        let at = now.saturating_duration_since(self.started_at);
        self.story.entries.push(StoryEntry { at, event });
    }
}

fn describe_audio(a: &Audio) -> String {
    match a {
        Audio::Prompt(p) => p.name.clone(),
        Audio::Say { kind, value, .. } => format!("say:{}:{value}", kind.as_str()),
        Audio::Silence(d) => format!("silence:{}", super::duration::DisplayDuration(*d)),
    }
}
