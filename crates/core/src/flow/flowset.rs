//! The compiled flows the interpreter runs: checked, with every reference resolved to an
//! index, so a call never looks a step up by name.
//!
//! Owns the compiled types only. They are built by `check` (which guarantees every index
//! is valid) and never change afterwards: a `FlowSet` is shared by `Arc` between the calls
//! that started on it, and a reload builds a new one.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use super::model::{HttpMethod, SayKind, TagValue};
use super::schedule::Schedule;
use super::template::Templates;

/// Index of a flow in its `FlowSet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId(pub(crate) usize);

/// Index of a step in its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StepId(pub(crate) usize);

impl FlowId {
    pub fn index(self) -> usize {
        self.0
    }
}

impl StepId {
    pub fn index(self) -> usize {
        self.0
    }
}

/// The name of the built-in step that ends the call at once (`next: hangup`).
pub const HANGUP_STEP: &str = "hangup";
/// The target of a global key that returns to the menu or collect the caller was in
/// before the current one.
pub const BACK_TARGET: &str = "back";

/// Where a step continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Step(StepId),
    /// The built-in `hangup` step: end the call now, without a goodbye.
    Hangup,
}

/// Something to play, before the language is known.
#[derive(Debug, Clone, PartialEq)]
pub enum AudioItem {
    Prompt(String),
    /// `value` is a template, rendered when played.
    Say {
        kind: SayKind,
        value: String,
    },
    Silence(Duration),
}

/// Every loaded flow by name, with what they use from the server configuration.
/// Immutable; share it with `Arc`.
#[derive(Debug, Default)]
pub struct FlowSet {
    pub(crate) flows: Vec<CompiledFlow>,
    pub(crate) by_name: HashMap<String, FlowId>,
    /// Every template and condition of the flows, compiled.
    pub(crate) templates: Templates,
    /// `schedules:` of hotline.yaml, for `hours` steps.
    pub(crate) schedules: BTreeMap<String, Schedule>,
    /// `vars:` of hotline.yaml, seen by templates as `config.NAME`.
    pub(crate) config_vars: BTreeMap<String, serde_json::Value>,
}

impl FlowSet {
    pub fn empty() -> Self {
        Self::default()
    }

    pub fn templates(&self) -> &Templates {
        &self.templates
    }

    pub fn schedule(&self, name: &str) -> Option<&Schedule> {
        self.schedules.get(name)
    }

    pub fn config_vars(&self) -> &BTreeMap<String, serde_json::Value> {
        &self.config_vars
    }

    pub fn id(&self, name: &str) -> Option<FlowId> {
        self.by_name.get(name).copied()
    }

    pub fn get(&self, name: &str) -> Option<&CompiledFlow> {
        self.id(name).and_then(|id| self.flows.get(id.0))
    }

    /// Panics only on an id from another set, which is a programming error.
    pub fn flow(&self, id: FlowId) -> &CompiledFlow {
        &self.flows[id.0]
    }

    /// For tools that adjust a compiled flow before running it (the simulator's language).
    pub fn flow_mut(&mut self, id: FlowId) -> Option<&mut CompiledFlow> {
        self.flows.get_mut(id.index())
    }

    pub fn flows(&self) -> impl Iterator<Item = &CompiledFlow> {
        self.flows.iter()
    }

    /// Flow names in alphabetical order.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }
}

#[derive(Debug)]
pub struct CompiledFlow {
    pub name: String,
    pub file: PathBuf,
    pub description: Option<String>,
    pub start: StepId,
    /// `defaults.language`: the call's language when the call starts in this flow, and the
    /// fallback for prompts missing in the caller's language.
    pub language: String,
    pub timeout: Duration,
    pub retries: u32,
    pub global_keys: Vec<(char, Target)>,
    /// Global keys whose target is `back`.
    pub back_keys: Vec<char>,
    pub steps: Vec<CompiledStep>,
}

impl CompiledFlow {
    /// Panics only on an id from another flow, which is a programming error.
    pub fn step(&self, id: StepId) -> &CompiledStep {
        &self.steps[id.0]
    }

    pub fn step_id(&self, name: &str) -> Option<StepId> {
        self.steps.iter().position(|s| s.name == name).map(StepId)
    }

    pub fn global_key(&self, key: char) -> Option<Target> {
        self.global_keys
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, t)| *t)
    }

    pub fn is_back_key(&self, key: char) -> bool {
        self.back_keys.contains(&key)
    }
}

#[derive(Debug)]
pub struct CompiledStep {
    pub name: String,
    /// Line of the step's name in its file, for stories and graphs.
    pub line: u32,
    pub tags: Vec<(String, TagValue)>,
    /// `reason:` (kept as the tag `reason`, among `tags`), for tools that show it.
    pub reason: Option<String>,
    /// `resolved:`: entering the step meets the caller's need in self-service.
    pub resolved: Option<String>,
    /// `survey:` on a menu or collect: the question whose answer (1-5) is a score.
    pub survey: Option<String>,
    pub action: StepAction,
}

#[derive(Debug)]
pub enum StepAction {
    Play {
        audio: Vec<AudioItem>,
        barge_in: bool,
        next: Option<Target>,
    },
    Menu(Box<MenuStep>),
    Collect(Box<CollectStep>),
    Set {
        vars: Vec<(String, String)>,
        next: Option<Target>,
    },
    Branch {
        when: Vec<(String, Target)>,
        otherwise: Option<Target>,
    },
    Hours {
        schedule: String,
        open: Target,
        closed: Target,
        holiday: Option<Target>,
    },
    Language {
        code: String,
        next: Option<Target>,
    },
    Http(Box<HttpStep>),
    Record(Box<RecordStep>),
    Queue(Box<QueueStep>),
    Transfer {
        uri: String,
        timeout: Option<Duration>,
        on_failure: Option<Target>,
    },
    Goto {
        flow: FlowId,
        /// With `return: true`: where to continue when the other flow ends.
        return_to: Option<Target>,
    },
    Hangup {
        audio: Vec<AudioItem>,
    },
}

impl StepAction {
    pub fn kind_name(&self) -> &'static str {
        match self {
            StepAction::Play { .. } => "play",
            StepAction::Menu(_) => "menu",
            StepAction::Collect(_) => "collect",
            StepAction::Set { .. } => "set",
            StepAction::Branch { .. } => "branch",
            StepAction::Hours { .. } => "hours",
            StepAction::Language { .. } => "language",
            StepAction::Http(_) => "http",
            StepAction::Record(_) => "record",
            StepAction::Queue(_) => "queue",
            StepAction::Transfer { .. } => "transfer",
            StepAction::Goto { .. } => "goto",
            StepAction::Hangup { .. } => "hangup",
        }
    }

    /// Whether the step waits for the caller (or ends the call), so a loop through it
    /// cannot spin without the caller's part.
    pub fn waits_for_caller(&self) -> bool {
        matches!(
            self,
            StepAction::Menu(_)
                | StepAction::Collect(_)
                | StepAction::Record(_)
                | StepAction::Queue(_)
                | StepAction::Transfer { .. }
                | StepAction::Hangup { .. }
        )
    }

    /// Where the step can continue within its flow (global keys not included).
    pub fn successors(&self) -> Vec<Target> {
        let mut v: Vec<Target> = Vec::new();
        match self {
            StepAction::Play { next, .. }
            | StepAction::Set { next, .. }
            | StepAction::Language { next, .. } => v.extend(*next),
            StepAction::Menu(m) => {
                v.extend(m.options.iter().map(|o| o.target));
                v.extend(m.on_failure);
            }
            StepAction::Collect(c) => {
                v.extend(c.next);
                v.extend(c.on_failure);
            }
            StepAction::Branch { when, otherwise } => {
                v.extend(when.iter().map(|(_, t)| *t));
                v.extend(*otherwise);
            }
            StepAction::Hours {
                open,
                closed,
                holiday,
                ..
            } => {
                v.push(*open);
                v.push(*closed);
                v.extend(*holiday);
            }
            StepAction::Http(h) => {
                v.extend(h.next);
                v.extend(h.on_error);
            }
            StepAction::Record(r) => v.extend(r.next),
            StepAction::Queue(q) => {
                v.extend(q.on_timeout);
                v.extend(q.after);
                v.extend(q.keys.iter().map(|(_, t)| *t));
                v.extend(q.on_callback);
            }
            StepAction::Transfer { on_failure, .. } => v.extend(*on_failure),
            StepAction::Goto { return_to, .. } => v.extend(*return_to),
            StepAction::Hangup { .. } => {}
        }
        v
    }
}

#[derive(Debug)]
pub struct MenuOption {
    pub key: char,
    pub language: Option<String>,
    /// The reason for calling that choosing the option gives.
    pub reason: Option<String>,
    pub target: Target,
}

#[derive(Debug)]
pub struct MenuStep {
    pub prompt: Vec<AudioItem>,
    pub options: Vec<MenuOption>,
    pub timeout: Duration,
    pub retries: u32,
    pub no_input: Vec<AudioItem>,
    pub invalid: Vec<AudioItem>,
    pub on_failure: Option<Target>,
    pub repeat_key: Option<char>,
    /// Played instead of `prompt` after a failure; empty: `prompt` again.
    pub retry_prompt: Vec<AudioItem>,
    pub max_no_input: Option<u32>,
    pub max_invalid: Option<u32>,
}

impl MenuStep {
    pub fn option(&self, key: char) -> Option<&MenuOption> {
        self.options.iter().find(|o| o.key == key)
    }
}

#[derive(Debug)]
pub struct ConfirmStep {
    pub prompt: Vec<AudioItem>,
    /// Whether the entry is read back (as digits) after `prompt`: when `prompt` has no
    /// `say` item of its own.
    pub read_back: bool,
    /// Played after the read-back.
    pub then: Vec<AudioItem>,
    pub yes: char,
    pub no: char,
}

#[derive(Debug)]
pub struct CollectStep {
    pub prompt: Vec<AudioItem>,
    pub into: String,
    pub min_digits: u32,
    pub max_digits: u32,
    pub terminator: Option<char>,
    pub timeout: Duration,
    pub inter_digit_timeout: Duration,
    pub pattern: Option<regex::Regex>,
    pub no_input: Vec<AudioItem>,
    pub invalid: Vec<AudioItem>,
    pub retries: u32,
    pub confirm: Option<ConfirmStep>,
    pub next: Option<Target>,
    pub on_failure: Option<Target>,
    pub repeat_key: Option<char>,
    /// Played instead of `prompt` after a failure; empty: `prompt` again.
    pub retry_prompt: Vec<AudioItem>,
    pub max_no_input: Option<u32>,
    pub max_invalid: Option<u32>,
}

#[derive(Debug)]
pub struct HttpStep {
    pub method: HttpMethod,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<serde_json::Value>,
    pub timeout: Duration,
    pub into: Option<String>,
    pub next: Option<Target>,
    pub on_error: Option<Target>,
}

#[derive(Debug)]
pub struct RecordStep {
    pub prompt: Vec<AudioItem>,
    pub max_duration: Duration,
    pub silence_timeout: Option<Duration>,
    pub terminator: Option<char>,
    pub beep: bool,
    /// The message counts as a voicemail in the call's record.
    pub voicemail: bool,
    pub into: Option<String>,
    pub next: Option<Target>,
}

#[derive(Debug)]
pub struct QueueStep {
    pub queue: String,
    pub priority: i32,
    pub skills: Vec<String>,
    pub on_timeout: Option<Target>,
    pub after: Option<Target>,
    /// Keys that take the caller out of the line, in file order.
    pub keys: Vec<(char, Target)>,
    pub on_callback: Option<Target>,
}

impl QueueStep {
    /// Where `key` leads while the caller waits, if anywhere.
    pub fn key(&self, key: char) -> Option<Target> {
        self.keys.iter().find(|(k, _)| *k == key).map(|(_, t)| *t)
    }
}
