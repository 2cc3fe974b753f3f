//! One scripted call for the interpreter's tests: a [`VirtualCall`] whose actions the test
//! reads and answers itself, on a fake clock, with the assertions those tests share about
//! what the caller hears. Compiling test flows lives here too. It holds no flow of its own.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use hotline::flow::check::FlowConfig;
use hotline::flow::diagnostic::has_errors;
use hotline::flow::flowset::FlowSet;
use hotline::flow::load::{AnyPrompt, FlowSource, compile_flows, compile_flows_with};
use hotline::flow::machine::{
    Action, Audio, CallContext, DEFAULT_GOODBYE_PROMPT, Event, FlowMachine, PlayId,
};
use hotline::flow::story::{Outcome, StoryEvent};
use hotline::tools::phone::VirtualCall;
use serde_json::Value;

pub const SECS: fn(u64) -> Duration = Duration::from_secs;
pub const MS: fn(u64) -> Duration = Duration::from_millis;

/// Compiles `(name, yaml)` flows, with what they use from hotline.yaml when given: the
/// set and its errors, one a line (empty when there are none).
pub fn compile(flows: &[(&str, &str)], config: Option<&FlowConfig>) -> (Arc<FlowSet>, String) {
    let sources = flows
        .iter()
        .map(|(name, text)| FlowSource {
            name: (*name).to_owned(),
            file: format!("flows/{name}.yaml").into(),
            text: (*text).to_owned(),
        })
        .collect();
    let (set, diags) = match config {
        Some(config) => compile_flows_with(sources, &AnyPrompt, config),
        None => compile_flows(sources, &AnyPrompt),
    };
    let errors = if has_errors(&diags) {
        diags.iter().map(|d| format!("{d}\n")).collect()
    } else {
        String::new()
    };
    (Arc::new(set), errors)
}

/// Compiles flows that must have no errors.
pub fn flow_set(flows: &[(&str, &str)]) -> Arc<FlowSet> {
    checked(compile(flows, None))
}

/// Compiles flows that must have no errors, with what they use from hotline.yaml.
pub fn flow_set_with(flows: &[(&str, &str)], config: &FlowConfig) -> Arc<FlowSet> {
    checked(compile(flows, Some(config)))
}

fn checked((set, errors): (Arc<FlowSet>, String)) -> Arc<FlowSet> {
    assert!(errors.is_empty(), "{errors}");
    set
}

/// The caller of every test call.
pub fn context() -> CallContext {
    CallContext {
        call_id: "c1@host".to_owned(),
        caller: "+4930123456".to_owned(),
        dialed: "100".to_owned(),
        ..CallContext::default()
    }
}

/// A Play as the tests look at it.
#[derive(Debug, PartialEq)]
pub struct Heard {
    pub names: Vec<String>,
    pub barge_in: bool,
}

pub fn heard(names: &[&str], barge_in: bool) -> Heard {
    Heard {
        names: names.iter().map(|s| (*s).to_owned()).collect(),
        barge_in,
    }
}

/// One scripted call. The machine's actions are read one at a time; the playback they
/// start lasts until the test [`finish`](Call::finish)es it.
pub struct Call {
    phone: VirtualCall,
    playing: Option<PlayId>,
}

impl Call {
    /// A call from [`context`] to `flow`, answered now.
    pub fn start(set: &Arc<FlowSet>, flow: &str) -> Call {
        Call::start_with(set, flow, context())
    }

    pub fn start_with(set: &Arc<FlowSet>, flow: &str, ctx: CallContext) -> Call {
        let phone =
            VirtualCall::scripted(Arc::clone(set), flow, ctx, Instant::now()).expect("flow exists");
        Call {
            phone,
            playing: None,
        }
    }

    pub fn m(&self) -> &FlowMachine {
        self.phone.machine()
    }

    /// The playback that runs, as far as the test has read the actions.
    pub fn playing(&self) -> Option<PlayId> {
        self.playing
    }

    pub fn now(&self) -> Instant {
        self.phone.now()
    }

    /// Time since the call started.
    pub fn at(&self) -> Duration {
        self.phone.elapsed()
    }

    /// Lets time pass, firing the machine's timer whenever it is due.
    pub fn wait(&mut self, d: Duration) {
        let end = self.now() + d;
        self.phone.advance_to(end);
    }

    pub fn press(&mut self, keys: &str) {
        for k in keys.chars() {
            self.phone.press(k);
        }
    }

    pub fn send(&mut self, event: Event) {
        self.phone.send(event);
    }

    /// The shell sent the last frame of the current playback.
    pub fn finish(&mut self) {
        let id = self.playing.take().expect("something is playing");
        self.send(Event::PromptFinished { id });
    }

    pub fn action(&mut self) -> Option<Action> {
        let a = self.phone.poll_action();
        if let Some(Action::Play { id, .. }) = &a {
            self.playing = Some(*id);
        }
        a
    }

    /// Every action asked for now.
    pub fn actions(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.action()).collect()
    }

    /// The next action must be a Play; returns what it plays.
    pub fn expect_play(&mut self) -> Heard {
        match self.action() {
            Some(Action::Play {
                audio, barge_in, ..
            }) => Heard {
                names: audio.iter().map(describe).collect(),
                barge_in,
            },
            other => panic!("expected a Play at {:?}, got {other:?}", self.at()),
        }
    }

    /// The next action must be a Play; returns its audio as it is.
    pub fn expect_play_audio(&mut self) -> Vec<Audio> {
        match self.action() {
            Some(Action::Play { audio, .. }) => audio,
            other => panic!("expected a Play, got {other:?}"),
        }
    }

    /// The next action is a Play: the names of what it plays.
    pub fn heard(&mut self) -> Vec<String> {
        self.expect_play().names
    }

    /// Hears a Play to its end.
    pub fn hears(&mut self, names: &[&str]) {
        assert_eq!(self.heard(), names);
        self.finish();
    }

    /// The next action stops the playback that runs.
    pub fn expect_stop(&mut self) {
        let playing = self.playing;
        match self.action() {
            Some(Action::StopPlayback { id }) => assert_eq!(Some(id), playing),
            other => panic!("expected StopPlayback, got {other:?}"),
        }
    }

    pub fn expect_hangup(&mut self) {
        assert_eq!(self.action(), Some(Action::Hangup));
        assert!(self.m().is_ended());
    }

    pub fn expect_nothing(&mut self) {
        assert_eq!(self.action(), None);
    }

    /// Hears the built-in goodbye to its end, then the hangup.
    pub fn expect_default_goodbye(&mut self) {
        assert_eq!(self.expect_play(), heard(&[DEFAULT_GOODBYE_PROMPT], false));
        self.finish();
        self.expect_hangup();
    }

    pub fn var(&self, name: &str) -> Option<Value> {
        self.m().vars().get(name).cloned()
    }

    pub fn outcome(&self) -> Option<Outcome> {
        self.m().story().outcome.clone()
    }

    pub fn path(&self) -> Vec<String> {
        self.m().story().path()
    }

    pub fn events(&self) -> Vec<StoryEvent> {
        self.m()
            .story()
            .entries
            .iter()
            .map(|e| e.event.clone())
            .collect()
    }
}

/// One audio item as the tests name it.
pub fn describe(a: &Audio) -> String {
    match a {
        Audio::Prompt(p) => p.name.clone(),
        Audio::Say { kind, value, .. } => format!("say:{}:{value}", kind.as_str()),
        Audio::Silence(d) => format!("silence:{}ms", d.as_millis()),
        Audio::Tone { freq_hz, duration } => format!("tone:{freq_hz}:{}ms", duration.as_millis()),
    }
}
