//! The checks that need more than one value of a flow file, and its compilation.
//!
//! Owns what `hotline check` says about a single parsed flow: one action per step, keys
//! used with the wrong action, references to missing steps, menu keys, names of prompts,
//! variables and languages, templates and conditions (compiled into the set's
//! `Templates`, with positions inside the file), schedule names and `config.NAME`
//! references (when the server configuration is known), transfer targets, unreachable
//! steps and loops that never wait for the caller. A flow with no error compiles to a
//! `CompiledFlow`. It does not read files and does not know other flows or the prompts on
//! disk: `load` does that for a whole set.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::path::Path;
use std::time::Duration;

use super::diagnostic::{Diagnostic, did_you_mean, did_you_mean_help};
use super::flowset::{
    AudioItem, BACK_TARGET, CollectStep, CompiledFlow, CompiledStep, ConfirmStep, FlowId,
    HANGUP_STEP, HttpStep, MenuOption, MenuStep, QueueStep, RecordStep, StepAction, StepId, Target,
};
use super::model::{
    self, ActionKind, HttpMethod, HumanDuration, Location, PlayItem, PlaySpec, Spanned,
};
use super::schedule::Schedule;
use super::story::REASON_TAG;
use super::template::{TemplateError, Templates, uses_safe_filter};

/// What flows use from the server configuration (hotline.yaml).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlowConfig {
    /// `schedules:`, for `hours` steps.
    pub schedules: BTreeMap<String, Schedule>,
    /// `vars:`, seen by templates as `config.NAME`.
    pub vars: BTreeMap<String, serde_json::Value>,
    /// The names of `queues:`, for `queue` steps; None: queue names are not checked.
    pub queues: Option<BTreeSet<String>>,
}

/// The call's language when a flow does not say.
pub const DEFAULT_LANGUAGE: &str = "en";
/// Menu and collect wait this long for the first key when neither they nor `defaults` say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Failures tolerated before `on_failure` when neither the step nor `defaults` say
/// (so three tries in all).
pub const DEFAULT_RETRIES: u32 = 2;
pub const DEFAULT_INTER_DIGIT_TIMEOUT: Duration = Duration::from_secs(3);
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(3);
pub const DEFAULT_RECORD_MAX: Duration = Duration::from_secs(120);
/// More retries than this keeps a lost caller in a menu for minutes.
pub const MAX_RETRIES: u32 = 10;
/// The longest entry a collect reads; also its `max_digits` when none is given.
pub const MAX_COLLECT_DIGITS: u32 = 64;
/// Variables the engine sets itself (`config` holds `vars:` of hotline.yaml).
pub const RESERVED_VARIABLES: [&str; 6] =
    ["caller", "dialed", "language", "now", "call_id", "config"];
const TEMPLATE_HELP: &str =
    "templates use Jinja syntax: {{ order }}, {{ result.eta }}, {% if ... %}...{% endif %}";
const CONDITION_HELP: &str =
    "conditions are Jinja expressions, e.g. result.status == \"shipped\" and caller != \"\"";
/// Compiled patterns are limited so a flow file cannot make the engine build a huge automaton.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// A flow after its own checks, with what `load` still has to check across flows (which
/// it checks for a flow with errors too, so one run reports every problem).
pub(crate) struct CheckedFlow {
    pub name: String,
    pub file: std::path::PathBuf,
    pub source: String,
    /// The flow's default language.
    pub language: String,
    /// None when the flow has errors.
    pub compiled: Option<CompiledFlow>,
    pub gotos: Vec<GotoUse>,
    pub prompts: Vec<PromptUse>,
    /// The default language and every language a step or menu option switches to.
    pub languages: BTreeSet<String>,
}

pub(crate) struct GotoUse {
    pub step: StepId,
    pub flow: String,
    pub at: Location,
}

pub(crate) struct PromptUse {
    pub name: String,
    pub at: Location,
}

/// Checks one parsed flow. The result holds the compiled flow when there is no error; the
/// diagnostics (errors and warnings) come either way.
/// Templates are compiled into `templates`; with `config` (the server's configuration),
/// schedule names and `config.NAME` references are checked too. The steps in `broken`
/// could not be read (the parser already reported why): they are not checked again, and
/// the step names written in their text count as where they lead, so that the steps
/// behind them are not reported as never reached.
pub(crate) fn check_flow(
    name: &str,
    file: &Path,
    source: &str,
    flow: &model::Flow,
    templates: &mut Templates,
    config: Option<&FlowConfig>,
    broken: &BTreeSet<String>,
) -> (CheckedFlow, Vec<Diagnostic>) {
    let mut cx = Ctx {
        unsure: BTreeSet::new(),
        misnamed: BTreeSet::new(),
        step: None,
        missing: Vec::new(),
        file,
        src: source,
        templates,
        config,
        diags: Vec::new(),
        names: flow
            .steps
            .value
            .iter()
            .map(|(k, _)| k.value.as_str())
            .collect(),
        prompts: Vec::new(),
        languages: BTreeSet::new(),
        gotos: Vec::new(),
        reasons: Vec::new(),
        timeout: DEFAULT_TIMEOUT,
        retries: DEFAULT_RETRIES,
    };

    let language = cx.flow_defaults(flow);
    cx.languages.insert(language.clone());

    if flow.steps.value.is_empty() {
        cx.error(
            flow.steps.referenced,
            "a flow needs at least one step",
            None,
        );
    }
    cx.step_names(flow);

    let start = match &flow.start {
        Some(s) if s.value == HANGUP_STEP => {
            cx.error(
                s.referenced,
                "a flow cannot start with the built-in 'hangup' step",
                None,
            );
            StepId(0)
        }
        Some(s) => match cx.resolve(s) {
            Target::Step(id) => id,
            Target::Hangup => StepId(0),
        },
        None => StepId(0),
    };

    let (global_keys, back_keys) = cx.global_keys(flow);

    let mut compiled_steps: Vec<Option<CompiledStep>> = Vec::with_capacity(flow.steps.value.len());
    for (index, (key, step)) in flow.steps.value.iter().enumerate() {
        if broken.contains(&key.value) {
            compiled_steps.push(None);
            continue;
        }
        cx.step = Some(index);
        let errors_before = cx.diags.iter().filter(|d| d.is_error()).count();
        let action = cx.step(StepId(index), key, &step.value);
        if cx.diags.iter().filter(|d| d.is_error()).count() > errors_before {
            cx.unsure.insert(index);
        }
        cx.step = None;
        let tags = cx.tags(&step.value);
        let reason = step
            .value
            .reason
            .as_ref()
            .map(|r| cx.reason_name(r, "reason"));
        let resolved = step
            .value
            .resolved
            .as_ref()
            .map(|r| cx.reason_name(r, "resolved"));
        let survey = step.value.survey.as_ref().map(|q| cx.question_name(q));
        compiled_steps.push(action.map(|action| CompiledStep {
            name: key.value.clone(),
            line: u32::try_from(key.referenced.line()).unwrap_or(0),
            tags,
            reason,
            resolved,
            survey,
            action,
        }));
    }
    cx.reason_typos();
    let guesses = cx.missing_steps();
    let actions: Vec<Option<&StepAction>> = compiled_steps
        .iter()
        .map(|s| s.as_ref().map(|s| &s.action))
        .collect();
    // Where a step leads is not known for sure when it did not compile or has a key that
    // was not understood (a misspelt `next`): the step names in its text stand in. A step
    // the parser could not read may lead anywhere (`next:` left empty names nothing).
    let unsure: Vec<bool> = flow
        .steps
        .value
        .iter()
        .zip(&actions)
        .enumerate()
        .map(|(i, ((_, step), a))| {
            a.is_none() || !step.value.unknown.is_empty() || cx.unsure.contains(&i)
        })
        .collect();
    let mut loose = loose_edges(source, flow, &unsure, &cx.names);
    for (i, (key, _)) in flow.steps.value.iter().enumerate() {
        if broken.contains(&key.value)
            && let Some(l) = loose.get_mut(i)
            && l.is_empty()
        {
            *l = (0..flow.steps.value.len()).collect();
        }
    }
    cx.graph(flow, start.0, &global_keys, &actions, &guesses, &loose);
    let steps: Vec<CompiledStep> = compiled_steps.into_iter().flatten().collect();

    let checked = |cx: Ctx<'_>, compiled: Option<CompiledFlow>| {
        let Ctx {
            diags,
            prompts,
            languages,
            gotos,
            ..
        } = cx;
        (
            CheckedFlow {
                name: name.to_owned(),
                file: file.to_path_buf(),
                source: source.to_owned(),
                language: language.clone(),
                compiled,
                gotos,
                prompts,
                languages,
            },
            diags,
        )
    };
    let has_errors = cx.diags.iter().any(Diagnostic::is_error);
    if !has_errors && broken.is_empty() && steps.len() == flow.steps.value.len() {
        let compiled = CompiledFlow {
            name: name.to_owned(),
            file: file.to_path_buf(),
            description: flow.description.as_ref().map(|d| d.value.clone()),
            start,
            language: language.clone(),
            timeout: cx.timeout,
            retries: cx.retries,
            global_keys,
            back_keys,
            steps,
        };
        return checked(cx, Some(compiled));
    }
    checked(cx, None)
}

struct Ctx<'a> {
    /// Steps with an error of their own: where they lead is not known for sure.
    unsure: BTreeSet<usize>,
    /// Steps whose name is itself an error: not also "never reached".
    misnamed: BTreeSet<usize>,
    /// The index of the step being checked, while one is.
    step: Option<usize>,
    /// References to steps that do not exist: (step written in, name, where).
    missing: Vec<(Option<usize>, String, Location)>,
    file: &'a Path,
    src: &'a str,
    templates: &'a mut Templates,
    config: Option<&'a FlowConfig>,
    diags: Vec<Diagnostic>,
    names: Vec<&'a str>,
    prompts: Vec<PromptUse>,
    languages: BTreeSet<String>,
    gotos: Vec<GotoUse>,
    /// The reasons for calling named (`reason`, `resolved`, menu options), for typos.
    reasons: Vec<(String, Location)>,
    timeout: Duration,
    retries: u32,
}

impl<'a> Ctx<'a> {
    fn error(&mut self, at: Location, message: impl Into<String>, help: Option<String>) {
        let d = Diagnostic::error(self.file, message)
            .at_location(self.src, at)
            .with_optional_help(help);
        self.diags.push(d);
    }

    fn warning(&mut self, at: Location, message: impl Into<String>, help: Option<String>) {
        let d = Diagnostic::warning(self.file, message)
            .at_location(self.src, at)
            .with_optional_help(help);
        self.diags.push(d);
    }

    /// An error pointing at `key:` written before the value at `value_at`, so the marker
    /// sits under the key the message names.
    fn error_at_key(
        &mut self,
        value_at: Location,
        key: &str,
        message: impl Into<String>,
        help: Option<String>,
    ) {
        let d = Diagnostic::error(self.file, message);
        let d = match key_position(self.src, value_at, key) {
            Some((line, column)) => d.at(
                self.src,
                line,
                column,
                u32::try_from(key.chars().count()).unwrap_or(1),
            ),
            None => d.at_location(self.src, value_at),
        };
        self.diags.push(d.with_optional_help(help));
    }

    // ---------------------------------------------------------------- flow level

    fn flow_defaults(&mut self, flow: &model::Flow) -> String {
        let Some(d) = &flow.defaults else {
            return DEFAULT_LANGUAGE.to_owned();
        };
        if let Some(t) = &d.value.timeout {
            self.timeout = self.positive(t, "timeout");
        }
        if let Some(r) = &d.value.retries {
            self.retries = self.retries_value(r);
        }
        match &d.value.language {
            Some(l) => self.language_code(l),
            None => DEFAULT_LANGUAGE.to_owned(),
        }
    }

    fn step_names(&mut self, flow: &model::Flow) {
        for (i, (key, _)) in flow.steps.value.iter().enumerate() {
            let name = key.value.as_str();
            let misnamed = name == HANGUP_STEP
                || name == BACK_TARGET
                || name.trim().is_empty()
                || name.trim() != name;
            if misnamed {
                self.misnamed.insert(i);
            }
            if name == HANGUP_STEP {
                self.error(
                    key.referenced,
                    "'hangup' is the name of the built-in step that ends the call",
                    Some("give this step another name, e.g. 'goodbye'".to_owned()),
                );
            } else if name == BACK_TARGET {
                self.error(
                    key.referenced,
                    "'back' is the name global keys use to return to the previous menu",
                    Some("give this step another name, e.g. 'go_back'".to_owned()),
                );
            } else if name.trim().is_empty() || name.trim() != name {
                self.error(
                    key.referenced,
                    format!("'{name}' is not a usable step name"),
                    Some("step names must not be empty or start or end with spaces".to_owned()),
                );
            }
        }
    }

    /// The global keys to steps, and those whose target is `back`.
    fn global_keys(&mut self, flow: &model::Flow) -> (Vec<(char, Target)>, Vec<char>) {
        let Some(g) = &flow.global_keys else {
            return (Vec::new(), Vec::new());
        };
        let mut seen: HashMap<char, Location> = HashMap::new();
        let mut out = Vec::new();
        let mut back = Vec::new();
        for (key, target) in g.value.iter() {
            let k = key.value.as_char();
            if let Some(first) = seen.insert(k, key.referenced) {
                self.error(
                    key.referenced,
                    format!("duplicate global key '{k}'"),
                    Some(format!("'{k}' is already defined on line {}", first.line())),
                );
            }
            if target.value == BACK_TARGET {
                back.push(k);
                continue;
            }
            let t = self.resolve(target);
            out.push((k, t));
        }
        (out, back)
    }

    // ---------------------------------------------------------------- values

    /// Resolves a step reference; reports a missing step with the closest name.
    fn resolve(&mut self, r: &Spanned<String>) -> Target {
        if r.value == HANGUP_STEP {
            return Target::Hangup;
        }
        if let Some(i) = self.names.iter().position(|n| *n == r.value) {
            return Target::Step(StepId(i));
        }
        // Reported once per name after every step is read: see `missing_steps`.
        self.missing
            .push((self.step, r.value.clone(), r.referenced));
        Target::Hangup
    }

    /// Reports the references to steps that do not exist, one error per name however often
    /// it is written (at its first use, naming the other lines); returns the edges they
    /// were surely meant to be (from the step written in to the step of the closest name),
    /// so that step is not also "never reached".
    fn missing_steps(&mut self) -> Vec<(usize, usize)> {
        let mut guesses = Vec::new();
        let mut done: BTreeSet<String> = BTreeSet::new();
        let missing = std::mem::take(&mut self.missing);
        for (_, name, at) in &missing {
            if !done.insert(name.clone()) {
                continue;
            }
            let uses: Vec<&(Option<usize>, String, Location)> =
                missing.iter().filter(|(_, n, _)| n == name).collect();
            let candidates: Vec<&str> = self
                .names
                .iter()
                .copied()
                .chain(std::iter::once(HANGUP_STEP))
                .collect();
            let guess = did_you_mean(name, candidates.iter().copied());
            let guess_index = guess.and_then(|g| self.names.iter().position(|n| *n == g));
            if let Some(g) = guess_index {
                guesses.extend(uses.iter().filter_map(|(from, _, _)| from.map(|f| (f, g))));
            }
            let lines: Vec<String> = uses
                .iter()
                .skip(1)
                .map(|(_, _, l)| l.line().to_string())
                .collect();
            let also = match lines.as_slice() {
                [] => None,
                [one] => Some(format!("also written on line {one}")),
                more => Some(format!("also written on lines {}", more.join(", "))),
            };
            let help = match (guess.map(|g| format!("did you mean '{g}'?")), also) {
                (Some(g), Some(a)) => Some(format!("{g} ({a})")),
                (g, a) => g.or(a),
            };
            self.error(*at, format!("no step named '{name}'"), help);
        }
        guesses
    }

    fn resolve_opt(&mut self, r: Option<&Spanned<String>>) -> Option<Target> {
        r.map(|r| self.resolve(r))
    }

    fn positive(&mut self, d: &Spanned<HumanDuration>, what: &str) -> Duration {
        if d.value.0.is_zero() {
            self.error(
                d.referenced,
                format!("'{what}' must be longer than 0s"),
                Some("a zero wait ends before the caller can do anything".to_owned()),
            );
        }
        d.value.0
    }

    fn duration_or(
        &mut self,
        d: Option<&Spanned<HumanDuration>>,
        default: Duration,
        what: &str,
    ) -> Duration {
        d.map_or(default, |d| self.positive(d, what))
    }

    fn retries_value(&mut self, r: &Spanned<u32>) -> u32 {
        self.limit_value(r, "retries")
    }

    /// `retries`, `max_no_input`, `max_invalid`: at most `MAX_RETRIES`.
    fn limit_value(&mut self, r: &Spanned<u32>, key: &str) -> u32 {
        if r.value > MAX_RETRIES {
            self.error(
                r.referenced,
                format!("'{key}' is at most {MAX_RETRIES}, found {}", r.value),
                Some("a caller who failed this often needs another way: use on_failure".to_owned()),
            );
        }
        r.value.min(MAX_RETRIES)
    }

    fn retries_or_default(&mut self, r: Option<&Spanned<u32>>) -> u32 {
        r.map_or(self.retries, |r| self.retries_value(r))
    }

    fn language_code(&mut self, l: &Spanned<String>) -> String {
        if !is_language_code(&l.value) {
            self.error(
                l.referenced,
                format!("'{}' is not a language code", l.value),
                Some(
                    "use a code like en, de or pt-BR: prompts come from prompts/<code>/".to_owned(),
                ),
            );
        }
        l.value.clone()
    }

    fn var_name(&mut self, v: &Spanned<String>) -> String {
        let name = v.value.as_str();
        if RESERVED_VARIABLES.contains(&name) {
            self.error(
                v.referenced,
                format!("'{name}' is set by the engine and cannot be assigned"),
                Some("choose another variable name".to_owned()),
            );
        } else if !is_identifier(name) {
            self.error(
                v.referenced,
                format!("'{name}' is not a usable variable name"),
                Some("use letters, digits and '_', starting with a letter or '_'".to_owned()),
            );
        }
        v.value.clone()
    }

    fn prompt_name(&mut self, name: &str, at: Location) {
        if is_prompt_name(name) {
            self.prompts.push(PromptUse {
                name: name.to_owned(),
                at,
            });
            return;
        }
        if crate::paths::climbs_out(name) {
            self.error(
                at,
                format!("'{name}' leads out of the prompts folder"),
                Some(
                    "name a prompt inside prompts/<language>/ (e.g. 'menu/main'), without '..' or a leading '/'"
                        .to_owned(),
                ),
            );
            return;
        }
        let help = if let Some(stem) = name.strip_suffix(".wav") {
            format!("leave out '.wav': write '{stem}'")
        } else {
            "prompt names use letters, digits, '_', '-' and '/' for sub-folders of prompts/<language>/"
                .to_owned()
        };
        self.error(
            at,
            format!("'{name}' is not a usable prompt name"),
            Some(help),
        );
    }

    fn audio(&mut self, spec: &Spanned<PlaySpec>) -> Vec<AudioItem> {
        let items = spec.value.items(spec.referenced);
        if items.is_empty() {
            self.error(spec.referenced, "an empty list plays nothing", None);
        }
        items
            .into_iter()
            .map(|(at, item)| match item {
                PlayItem::Prompt(p) => {
                    self.prompt_name(p, at);
                    AudioItem::Prompt(p.clone())
                }
                PlayItem::Say { kind, value } => {
                    self.template(value, at);
                    AudioItem::Say {
                        kind: *kind,
                        value: value.clone(),
                    }
                }
                PlayItem::Silence(d) => AudioItem::Silence(*d),
            })
            .collect()
    }

    fn audio_opt(&mut self, spec: Option<&Spanned<PlaySpec>>) -> Vec<AudioItem> {
        spec.map(|s| self.audio(s)).unwrap_or_default()
    }

    /// The step's tags; `reason: X` is the tag `reason`, set after the others.
    fn tags(&mut self, step: &model::Step) -> Vec<(String, model::TagValue)> {
        let mut tags = self.tag_list(step);
        if let Some(r) = &step.reason {
            if let Some(tag) = step.tag.as_ref().and_then(|t| {
                t.value
                    .iter()
                    .find(|(k, _)| k.value == REASON_TAG)
                    .map(|(k, _)| k.referenced)
            }) {
                self.error(
                    tag,
                    "the reason for calling is given twice: in 'tag' and in 'reason'",
                    Some(format!(
                        "keep 'reason: {}' and remove 'reason' from 'tag'",
                        r.value
                    )),
                );
            }
            tags.push((
                REASON_TAG.to_owned(),
                model::TagValue::Text(r.value.clone()),
            ));
        }
        tags
    }

    /// A reason for calling (`reason:`, `resolved:`, a menu option's `reason`): a name
    /// the reports count, so a plain identifier.
    fn reason_name(&mut self, r: &Spanned<String>, key: &str) -> String {
        if !is_identifier(&r.value) {
            self.error(
                r.referenced,
                format!("'{}' is not a usable {key} name", r.value),
                Some(
                    "use letters, digits and '_', starting with a letter or '_' (e.g. order_status)"
                        .to_owned(),
                ),
            );
        } else {
            self.reasons.push((r.value.clone(), r.referenced));
        }
        r.value.clone()
    }

    fn question_name(&mut self, q: &Spanned<String>) -> String {
        if !is_identifier(&q.value) {
            self.error(
                q.referenced,
                format!("'{}' is not a usable survey question name", q.value),
                Some(
                    "use letters, digits and '_', starting with a letter or '_' (e.g. satisfaction)"
                        .to_owned(),
                ),
            );
        }
        q.value.clone()
    }

    /// A reason written once that is a near miss of another one is most likely a typo:
    /// the reports would count it apart.
    fn reason_typos(&mut self) {
        let reasons = std::mem::take(&mut self.reasons);
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for (r, _) in &reasons {
            *counts.entry(r.as_str()).or_default() += 1;
        }
        for (r, at) in &reasons {
            if counts.get(r.as_str()) != Some(&1) {
                continue;
            }
            let others = counts
                .iter()
                .filter(|(o, n)| **n > 1 && **o != r)
                .map(|(o, _)| *o);
            if let Some(guess) = did_you_mean(r, others) {
                self.warning(
                    *at,
                    format!("the reason '{r}' is used only here"),
                    Some(format!("did you mean '{guess}'?")),
                );
            }
        }
    }

    fn tag_list(&mut self, step: &model::Step) -> Vec<(String, model::TagValue)> {
        let Some(tag) = &step.tag else {
            return Vec::new();
        };
        tag.value
            .iter()
            .map(|(k, v)| {
                if !is_identifier(&k.value) {
                    self.error(
                        k.referenced,
                        format!("'{}' is not a usable tag name", k.value),
                        Some(
                            "use letters, digits and '_', starting with a letter or '_'".to_owned(),
                        ),
                    );
                }
                if let model::TagValue::Text(t) = &v.value {
                    self.template(t, v.referenced);
                }
                (k.value.clone(), v.value.clone())
            })
            .collect()
    }

    // ---------------------------------------------------------------- steps

    /// Checks one step and compiles its action; `None` when the step has no single action.
    fn step(
        &mut self,
        id: StepId,
        key: &Spanned<String>,
        step: &model::Step,
    ) -> Option<StepAction> {
        for k in &step.unknown {
            let help = did_you_mean_help(&k.value, model::STEP_KEYS.iter().copied())
                .unwrap_or_else(|| format!("expected one of: {}", model::STEP_KEYS.join(", ")));
            self.error(
                k.referenced,
                format!("unknown key '{}'", k.value),
                Some(help),
            );
        }
        let actions = step.actions();
        let kind = match actions.as_slice() {
            // An unknown key is most likely the action, misspelt: said already.
            [] if !step.unknown.is_empty() => return None,
            [] => {
                let list: Vec<&str> = ActionKind::ALL.iter().map(|k| k.as_str()).collect();
                self.error(
                    key.referenced,
                    format!("step '{}' has no action", key.value),
                    Some(format!("add one of: {}", list.join(", "))),
                );
                return None;
            }
            [(kind, _)] => *kind,
            [(first, _), (second, at), ..] => {
                self.error_at_key(
                    *at,
                    second.as_str(),
                    format!(
                        "step '{}' has more than one action: '{first}' and '{second}'",
                        key.value
                    ),
                    Some(
                        "a step does one thing: split it into two steps joined by 'next'"
                            .to_owned(),
                    ),
                );
                return None;
            }
        };

        for (ckey, owner, at) in step.companions() {
            if owner != kind {
                let help = if matches!(kind, ActionKind::Menu | ActionKind::Collect)
                    && matches!(ckey, "timeout" | "on_failure")
                {
                    format!("move it inside '{kind}:'")
                } else {
                    format!("'{ckey}' is used with '{owner}'")
                };
                self.error_at_key(
                    at,
                    ckey,
                    format!("'{ckey}' does not belong in {} step", a_kind(kind)),
                    Some(help),
                );
            }
        }

        if let Some(q) = &step.survey
            && !matches!(kind, ActionKind::Menu | ActionKind::Collect)
        {
            self.error_at_key(
                q.referenced,
                "survey",
                format!("'survey' does not belong in {} step", a_kind(kind)),
                Some("'survey' is used with 'collect' or 'menu', which read the score".to_owned()),
            );
        }

        let next = step.next.as_ref();
        let no_next = |cx: &mut Self, why: &str| {
            if let Some(n) = next {
                cx.error_at_key(
                    n.referenced,
                    "next",
                    format!("{} step does not use 'next'", a_kind(kind)),
                    Some(why.to_owned()),
                );
            }
        };

        let action = match kind {
            ActionKind::Play => {
                let spec = step.play.as_ref()?;
                StepAction::Play {
                    audio: self.audio(spec),
                    barge_in: step.barge_in.as_ref().is_none_or(|b| b.value),
                    next: self.resolve_opt(next),
                }
            }
            ActionKind::Menu => {
                no_next(
                    self,
                    "each option says where to go; add 'on_failure' for callers who choose nothing",
                );
                let m = step.menu.as_ref()?;
                StepAction::Menu(Box::new(self.menu(&m.value)))
            }
            ActionKind::Collect => {
                let c = step.collect.as_ref()?;
                let next = self.inner_next(next, c.value.next.as_ref(), kind);
                StepAction::Collect(Box::new(self.collect(&c.value, next)))
            }
            ActionKind::Set => {
                let set = step.set.as_ref()?;
                if set.value.is_empty() {
                    self.error(set.referenced, "'set' needs at least one variable", None);
                }
                let vars = set
                    .value
                    .iter()
                    .map(|(k, v)| {
                        self.template(&v.value.0, v.referenced);
                        (self.var_name(k), v.value.0.clone())
                    })
                    .collect();
                StepAction::Set {
                    vars,
                    next: self.resolve_opt(next),
                }
            }
            ActionKind::Branch => {
                no_next(self, "use 'when' and 'else' inside 'branch:'");
                let b = step.branch.as_ref()?;
                if b.value.when.value.is_empty() {
                    self.error(
                        b.value.when.referenced,
                        "'when' needs at least one condition",
                        Some("for example when: [{ if: 'result.status == \"shipped\"', next: shipped }]".to_owned()),
                    );
                }
                let when = b
                    .value
                    .when
                    .value
                    .iter()
                    .map(|w| {
                        let cond = &w.value.if_;
                        if cond.value.0.trim().is_empty() {
                            self.error(cond.referenced, "an empty condition", None);
                        } else {
                            self.condition(&cond.value.0, cond.referenced);
                        }
                        (cond.value.0.clone(), self.resolve(&w.value.next))
                    })
                    .collect();
                StepAction::Branch {
                    when,
                    otherwise: self.resolve_opt(b.value.else_.as_ref()),
                }
            }
            ActionKind::Hours => {
                no_next(self, "use 'open' and 'closed'");
                let h = step.hours.as_ref()?;
                self.not_blank(h, "a schedule name from hotline.yaml");
                self.schedule_name(h);
                let open = self.required_beside(step.open.as_ref(), h.referenced, "hours", "open");
                let closed =
                    self.required_beside(step.closed.as_ref(), h.referenced, "hours", "closed");
                StepAction::Hours {
                    schedule: h.value.clone(),
                    open,
                    closed,
                    holiday: self.resolve_opt(step.holiday.as_ref()),
                }
            }
            ActionKind::Language => {
                let l = step.language.as_ref()?;
                let code = self.language_code(l);
                self.languages.insert(code.clone());
                StepAction::Language {
                    code,
                    next: self.resolve_opt(next),
                }
            }
            ActionKind::Http => {
                let h = step.http.as_ref()?;
                let next = self.inner_next(next, h.value.next.as_ref(), kind);
                StepAction::Http(Box::new(self.http(&h.value, next)))
            }
            ActionKind::Record => {
                let r = step.record.as_ref()?;
                let next = self.inner_next(next, r.value.next.as_ref(), kind);
                StepAction::Record(Box::new(self.record(&r.value, next)))
            }
            ActionKind::Queue => {
                no_next(
                    self,
                    "use 'after' (the agent hung up first) and 'on_timeout'",
                );
                let q = step.queue.as_ref()?;
                self.not_blank(q, "a queue name from hotline.yaml");
                self.queue_name(q);
                let skills = step
                    .skills
                    .as_ref()
                    .map(|s| s.value.iter().map(|k| k.value.clone()).collect())
                    .unwrap_or_default();
                let keys = step.keys.as_ref().map_or_else(Vec::new, |k| {
                    k.value
                        .iter()
                        .map(|(key, to)| (key.value.as_char(), self.resolve(to)))
                        .collect()
                });
                StepAction::Queue(Box::new(QueueStep {
                    queue: q.value.clone(),
                    priority: step.priority.as_ref().map_or(0, |p| p.value),
                    skills,
                    on_timeout: self.resolve_opt(step.on_timeout.as_ref()),
                    after: self.resolve_opt(step.after.as_ref()),
                    keys,
                    on_callback: self.resolve_opt(step.on_callback.as_ref()),
                }))
            }
            ActionKind::Transfer => {
                no_next(
                    self,
                    "the call leaves the flow when the transfer succeeds; use 'on_failure'",
                );
                let t = step.transfer.as_ref()?;
                let uri = t.value.trim();
                self.transfer_target(uri, t.referenced);
                StepAction::Transfer {
                    uri: uri.to_owned(),
                    timeout: step.timeout.as_ref().map(|d| self.positive(d, "timeout")),
                    on_failure: self.resolve_opt(step.on_failure.as_ref()),
                }
            }
            ActionKind::Goto => {
                let g = step.goto.as_ref()?;
                self.not_blank(g, "a flow name");
                let returns = step.return_.as_ref().is_some_and(|r| r.value);
                let return_to = match (returns, next) {
                    (true, Some(n)) => Some(self.resolve(n)),
                    (true, None) => {
                        let at = step.return_.as_ref().map_or(g.referenced, |r| r.referenced);
                        self.error_at_key(
                            at,
                            "return",
                            "'return: true' needs a 'next' step to come back to",
                            None,
                        );
                        None
                    }
                    (false, Some(n)) => {
                        self.error_at_key(
                            n.referenced,
                            "next",
                            "'next' after a goto is only used with 'return: true'",
                            Some(format!(
                                "add 'return: true' to come back here when flow '{}' ends",
                                g.value
                            )),
                        );
                        None
                    }
                    (false, None) => None,
                };
                self.gotos.push(GotoUse {
                    step: id,
                    flow: g.value.clone(),
                    at: g.referenced,
                });
                StepAction::Goto {
                    flow: FlowId(usize::MAX),
                    return_to,
                }
            }
            ActionKind::Hangup => {
                no_next(self, "a hangup step ends the call");
                let h = step.hangup.as_ref()?;
                let audio = match &h.value.prompt {
                    Some(p) => self.audio(&Spanned::new(p.clone(), h.referenced, h.defined)),
                    None => Vec::new(),
                };
                StepAction::Hangup { audio }
            }
        };
        Some(action)
    }

    /// Compiles a template written at `at`; reports a template that cannot be used and
    /// `config.NAME` references to variables hotline.yaml does not define.
    fn template(&mut self, text: &str, at: Location) {
        match self.templates.add(text) {
            Ok(reads) => self.config_reads(text, at, &reads),
            Err(e) => self.template_error(text, at, &e, TEMPLATE_HELP),
        }
    }

    /// An `http` step's URL: its values are percent-encoded when rendered, except through
    /// `safe`, which lets a caller's value rewrite the path or query.
    fn url_template(&mut self, text: &str, at: Location) {
        match self.templates.add_url(text) {
            Ok(reads) => self.config_reads(text, at, &reads),
            Err(e) => return self.template_error(text, at, &e, TEMPLATE_HELP),
        }
        if uses_safe_filter(text) {
            self.warning(
                at,
                "the URL inserts a value raw with `safe`: a caller's number or digits \
                 passed through it can change the URL's path or query",
                Some(
                    "drop `| safe` so the value is URL-encoded, or use it only for values \
                     the caller cannot choose"
                        .to_owned(),
                ),
            );
        }
    }

    fn condition(&mut self, text: &str, at: Location) {
        match self.templates.add_condition(text) {
            Ok(reads) => self.config_reads(text, at, &reads),
            Err(e) => self.template_error(text, at, &e, CONDITION_HELP),
        }
    }

    fn template_error(&mut self, text: &str, at: Location, e: &TemplateError, help: &str) {
        let line_no = e.line.unwrap_or(1);
        let in_line = text.lines().nth(line_no.saturating_sub(1)).unwrap_or("");
        let d = Diagnostic::error(self.file, e.message.clone());
        let d = match (locate(self.src, at, in_line, line_no), e.column) {
            (Some((line, col)), Some(c)) => d.at(
                self.src,
                line,
                col.saturating_add(u32::try_from(c).unwrap_or(1).saturating_sub(1)),
                u32::try_from(e.width).unwrap_or(1),
            ),
            (Some((line, col)), None) => d.at(self.src, line, col, 1),
            (None, _) => d.at_location(self.src, at),
        };
        self.diags.push(d.with_help(help));
    }

    fn config_reads(&mut self, text: &str, at: Location, reads: &[String]) {
        let Some(config) = self.config else {
            return;
        };
        for path in reads {
            let mut segs = path.split('.');
            if segs.next() != Some("config") {
                continue;
            }
            let Some(name) = segs.next() else {
                continue;
            };
            if config.vars.contains_key(name) {
                continue;
            }
            let written = format!("config.{name}");
            let d = Diagnostic::error(self.file, format!("no config variable '{name}'"));
            let d = match text
                .lines()
                .enumerate()
                .find_map(|(i, l)| l.find(&written).map(|b| (i + 1, l, b)))
            {
                Some((line_no, l, byte)) => match locate(self.src, at, l, line_no) {
                    Some((line, col)) => {
                        let c = l.get(..byte).map_or(0, |p| p.chars().count());
                        let col = col.saturating_add(u32::try_from(c).unwrap_or(0));
                        let width = u32::try_from(written.chars().count()).unwrap_or(1);
                        d.at(self.src, line, col, width)
                    }
                    None => d.at_location(self.src, at),
                },
                None => d.at_location(self.src, at),
            };
            let help = did_you_mean_help(name, config.vars.keys().map(String::as_str))
                .unwrap_or_else(|| {
                    "config variables are defined under 'vars:' in hotline.yaml".to_owned()
                });
            self.diags.push(d.with_help(help));
        }
    }

    fn schedule_name(&mut self, h: &Spanned<String>) {
        let Some(config) = self.config else {
            return;
        };
        let name = h.value.trim();
        if name.is_empty() || config.schedules.contains_key(name) {
            return;
        }
        let help = did_you_mean_help(name, config.schedules.keys().map(String::as_str))
            .unwrap_or_else(|| {
                "schedules are defined under 'schedules:' in hotline.yaml".to_owned()
            });
        self.error(
            h.referenced,
            format!("no schedule named '{name}'"),
            Some(help),
        );
    }

    fn queue_name(&mut self, q: &Spanned<String>) {
        let Some(queues) = self.config.and_then(|c| c.queues.as_ref()) else {
            return;
        };
        let name = q.value.trim();
        if name.is_empty() || queues.contains(name) {
            return;
        }
        let help = did_you_mean_help(name, queues.iter().map(String::as_str))
            .unwrap_or_else(|| "queues are defined under 'queues:' in hotline.yaml".to_owned());
        self.error(q.referenced, format!("no queue named '{name}'"), Some(help));
    }

    /// A transfer target is a fixed address from the flow file: never a template, so a
    /// caller's input can never choose where a call goes.
    fn transfer_target(&mut self, uri: &str, at: Location) {
        let scheme_ok = ["sip:", "sips:", "tel:"]
            .iter()
            .find_map(|p| uri.strip_prefix(p))
            .is_some_and(|rest| {
                !rest.is_empty()
                    && !rest.chars().any(|c| {
                        c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"')
                    })
            });
        if super::template::is_template(uri) {
            self.error(
                at,
                "a transfer target cannot use templates",
                Some(
                    "write the address out: a caller's input must never choose where a call goes"
                        .to_owned(),
                ),
            );
        } else if !scheme_ok {
            self.error(
                at,
                format!("expected a SIP address like sip:desk@example.com, found '{uri}'"),
                Some("transfer targets start with sip:, sips: or tel:".to_owned()),
            );
        }
    }

    fn not_blank(&mut self, s: &Spanned<String>, expected: &str) {
        if s.value.trim().is_empty() {
            self.error(
                s.referenced,
                format!("expected {expected}, found nothing"),
                None,
            );
        }
    }

    fn required_beside(
        &mut self,
        r: Option<&Spanned<String>>,
        action_at: Location,
        action: &str,
        key: &str,
    ) -> Target {
        match r {
            Some(r) => self.resolve(r),
            None => {
                self.error_at_key(
                    action_at,
                    action,
                    format!("{} step needs '{key}'", a_kind_str(action)),
                    Some(format!("add '{key}: STEP' beside '{action}:'")),
                );
                Target::Hangup
            }
        }
    }

    /// `next` may be written beside the action or inside it, not both.
    fn inner_next(
        &mut self,
        outer: Option<&Spanned<String>>,
        inner: Option<&Spanned<String>>,
        kind: ActionKind,
    ) -> Option<Target> {
        match (outer, inner) {
            (Some(o), Some(_)) => {
                self.error_at_key(
                    o.referenced,
                    "next",
                    "'next' is given twice",
                    Some(format!("keep the one inside '{kind}:'")),
                );
                None
            }
            (Some(n), None) | (None, Some(n)) => Some(self.resolve(n)),
            (None, None) => None,
        }
    }

    fn menu(&mut self, m: &model::Menu) -> MenuStep {
        let prompt = self.audio(&m.prompt);
        if m.options.value.is_empty() {
            self.error(
                m.options.referenced,
                "a menu needs at least one option",
                Some("for example options: { \"1\": sales, \"2\": support }".to_owned()),
            );
        }
        let mut seen: HashMap<char, Location> = HashMap::new();
        let mut options = Vec::new();
        for (key, choice) in m.options.value.iter() {
            let k = key.value.as_char();
            if let Some(first) = seen.insert(k, key.referenced) {
                self.error(
                    key.referenced,
                    format!("duplicate menu key '{k}'"),
                    Some(format!(
                        "'{k}' is already an option on line {}",
                        first.line()
                    )),
                );
            }
            let (name, at) = choice.value.target(choice.referenced);
            let target = self.resolve(&Spanned::new(name.to_owned(), at, at));
            let language = choice.value.language().map(|l| {
                let code = self.language_code(l);
                self.languages.insert(code.clone());
                code
            });
            let reason = choice.value.reason().map(|r| self.reason_name(r, "reason"));
            options.push(MenuOption {
                key: k,
                language,
                reason,
                target,
            });
        }
        let repeat_key = m.repeat_key.as_ref().map(|r| {
            let k = r.value.as_char();
            if seen.contains_key(&k) {
                self.error(
                    r.referenced,
                    format!("'{k}' is both the repeat key and an option of this menu"),
                    None,
                );
            }
            k
        });
        MenuStep {
            prompt,
            options,
            timeout: self.duration_or(m.timeout.as_ref(), self.timeout, "timeout"),
            retries: self.retries_or_default(m.retries.as_ref()),
            no_input: self.audio_opt(m.no_input.as_ref()),
            invalid: self.audio_opt(m.invalid.as_ref()),
            on_failure: self.resolve_opt(m.on_failure.as_ref()),
            repeat_key,
            retry_prompt: self.audio_opt(m.retry_prompt.as_ref()),
            max_no_input: m
                .max_no_input
                .as_ref()
                .map(|r| self.limit_value(r, "max_no_input")),
            max_invalid: m
                .max_invalid
                .as_ref()
                .map(|r| self.limit_value(r, "max_invalid")),
        }
    }

    fn collect(&mut self, c: &model::Collect, next: Option<Target>) -> CollectStep {
        let prompt = self.audio(&c.prompt);
        let into = self.var_name(&c.into);
        let min_digits = c.min_digits.as_ref().map_or(1, |m| {
            if m.value == 0 {
                self.error(m.referenced, "'min_digits' must be at least 1", None);
            }
            m.value
        });
        let max_digits = c.max_digits.as_ref().map_or(MAX_COLLECT_DIGITS, |m| {
            if m.value == 0 || m.value > MAX_COLLECT_DIGITS {
                self.error(
                    m.referenced,
                    format!(
                        "'max_digits' must be between 1 and {MAX_COLLECT_DIGITS}, found {}",
                        m.value
                    ),
                    None,
                );
            }
            m.value
        });
        if let (Some(min), Some(max)) = (&c.min_digits, &c.max_digits)
            && min.value > max.value
        {
            self.error(
                min.referenced,
                format!(
                    "'min_digits' ({}) is more than 'max_digits' ({})",
                    min.value, max.value
                ),
                None,
            );
        }
        let terminator = c.terminator.as_ref().map(|t| {
            if t.value.is_digit() {
                self.error(
                    t.referenced,
                    format!("the terminator must be * or #, found '{}'", t.value),
                    Some("a digit cannot both be part of the number and end it".to_owned()),
                );
            }
            t.value.as_char()
        });
        let pattern = c.pattern.as_ref().and_then(|p| {
            match regex::RegexBuilder::new(&p.value)
                .size_limit(PATTERN_SIZE_LIMIT)
                .build()
            {
                Ok(r) => Some(r),
                Err(e) => {
                    let detail = e.to_string();
                    let last = detail.lines().last().unwrap_or("").trim();
                    let last = last.strip_prefix("error: ").unwrap_or(last).to_owned();
                    self.error(
                        p.referenced,
                        format!("'pattern' is not a valid regular expression: {last}"),
                        Some("for example '^[0-9]{6,10}$'".to_owned()),
                    );
                    None
                }
            }
        });
        let confirm = c.confirm.as_ref().map(|cf| {
            let yes = cf.value.yes.as_ref().map_or('1', |k| k.value.as_char());
            let no = cf.value.no.as_ref().map_or('2', |k| k.value.as_char());
            if yes == no {
                self.error(
                    cf.referenced,
                    format!("'yes' and 'no' of 'confirm' are both '{yes}'"),
                    None,
                );
            }
            let prompt = self.audio(&cf.value.prompt);
            let read_back = !prompt.iter().any(|a| matches!(a, AudioItem::Say { .. }));
            ConfirmStep {
                prompt,
                read_back,
                then: self.audio_opt(cf.value.then.as_ref()),
                yes,
                no,
            }
        });
        let repeat_key = c.repeat_key.as_ref().map(|r| {
            let k = r.value.as_char();
            if r.value.is_digit() {
                self.error(
                    r.referenced,
                    format!("the repeat key of a collect must be * or #, found '{k}'"),
                    Some("a digit would be part of the entry".to_owned()),
                );
            } else if terminator == Some(k) {
                self.error(
                    r.referenced,
                    format!("'{k}' is both the repeat key and the terminator"),
                    None,
                );
            }
            k
        });
        CollectStep {
            prompt,
            into,
            min_digits,
            max_digits,
            terminator,
            timeout: self.duration_or(c.timeout.as_ref(), self.timeout, "timeout"),
            inter_digit_timeout: self.duration_or(
                c.inter_digit_timeout.as_ref(),
                DEFAULT_INTER_DIGIT_TIMEOUT,
                "inter_digit_timeout",
            ),
            pattern,
            no_input: self.audio_opt(c.no_input.as_ref()),
            invalid: self.audio_opt(c.invalid.as_ref()),
            retries: self.retries_or_default(c.retries.as_ref()),
            confirm,
            next,
            on_failure: self.resolve_opt(c.on_failure.as_ref()),
            repeat_key,
            retry_prompt: self.audio_opt(c.retry_prompt.as_ref()),
            max_no_input: c
                .max_no_input
                .as_ref()
                .map(|r| self.limit_value(r, "max_no_input")),
            max_invalid: c
                .max_invalid
                .as_ref()
                .map(|r| self.limit_value(r, "max_invalid")),
        }
    }

    fn http(&mut self, h: &model::Http, next: Option<Target>) -> HttpStep {
        let url = h.url.value.trim();
        // A URL may start with a template (`{{ config.crm_url }}/orders`): its scheme is
        // then known only when the call renders it.
        if !(url.starts_with("http://") || url.starts_with("https://") || url.starts_with("{{")) {
            self.error(
                h.url.referenced,
                format!("expected a URL starting with http:// or https://, found '{url}'"),
                None,
            );
        }
        self.url_template(url, h.url.referenced);
        if let Some(hs) = &h.headers {
            for (k, v) in hs.value.iter() {
                if !is_header_name(&k.value) {
                    self.error(
                        k.referenced,
                        format!("'{}' is not a usable HTTP header name", k.value),
                        Some("use letters, digits and '-', e.g. Authorization".to_owned()),
                    );
                }
                self.template(&v.value.0, v.referenced);
            }
        }
        if let Some(b) = &h.body {
            let mut texts = Vec::new();
            json_strings(&b.value, &mut texts);
            for t in texts {
                self.template(t, b.referenced);
            }
        }
        HttpStep {
            method: h.method.as_ref().map_or(HttpMethod::Get, |m| m.value),
            url: url.to_owned(),
            headers: h
                .headers
                .as_ref()
                .map(|hs| {
                    hs.value
                        .iter()
                        .map(|(k, v)| (k.value.clone(), v.value.0.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            body: h.body.as_ref().map(|b| b.value.clone()),
            timeout: self.duration_or(h.timeout.as_ref(), DEFAULT_HTTP_TIMEOUT, "timeout"),
            into: h.into.as_ref().map(|i| self.var_name(i)),
            next,
            on_error: self.resolve_opt(h.on_error.as_ref()),
        }
    }

    fn record(&mut self, r: &model::Record, next: Option<Target>) -> RecordStep {
        RecordStep {
            prompt: self.audio_opt(r.prompt.as_ref()),
            max_duration: self.duration_or(
                r.max_duration.as_ref(),
                DEFAULT_RECORD_MAX,
                "max_duration",
            ),
            silence_timeout: r
                .silence_timeout
                .as_ref()
                .map(|d| self.positive(d, "silence_timeout")),
            terminator: r.terminator.as_ref().map(|t| t.value.as_char()),
            beep: r.beep.as_ref().is_none_or(|b| b.value),
            voicemail: r.voicemail.as_ref().is_some_and(|v| v.value),
            into: r.into.as_ref().map(|i| self.var_name(i)),
            next,
        }
    }

    // ---------------------------------------------------------------- graph

    /// Unreachable steps (warnings) and loops that never wait for the caller (errors).
    /// Steps that did not compile lead where `loose` says (the step names in their text);
    /// `guesses` are the edges of misspelt references.
    fn graph(
        &mut self,
        flow: &model::Flow,
        start: usize,
        global_keys: &[(char, Target)],
        actions: &[Option<&StepAction>],
        guesses: &[(usize, usize)],
        loose: &[Vec<usize>],
    ) {
        let n = actions.len();
        let globals: Vec<usize> = global_keys
            .iter()
            .filter_map(|(_, t)| step_index(*t))
            .collect();
        let mut edges: Vec<Vec<usize>> = actions
            .iter()
            .map(|a| match a {
                Some(action) => {
                    let mut e: Vec<usize> = action
                        .successors()
                        .into_iter()
                        .filter_map(step_index)
                        .collect();
                    if matches!(action, StepAction::Menu(_) | StepAction::Collect(_)) {
                        e.extend(&globals);
                    }
                    e
                }
                None => Vec::new(),
            })
            .collect();
        for (e, more) in edges.iter_mut().zip(loose) {
            e.extend(more);
        }
        for (from, to) in guesses {
            if let Some(e) = edges.get_mut(*from) {
                e.push(*to);
            }
        }

        let mut reached = vec![false; n];
        let mut queue = VecDeque::from([start]);
        while let Some(i) = queue.pop_front() {
            if let Some(r) = reached.get_mut(i)
                && !*r
            {
                *r = true;
                queue.extend(edges.get(i).into_iter().flatten().copied());
            }
        }
        for (i, (key, _)) in flow.steps.value.iter().enumerate() {
            if !reached.get(i).copied().unwrap_or(true) && !self.misnamed.contains(&i) {
                self.warning(
                    key.referenced,
                    format!("step '{}' is never reached", key.value),
                    Some("no step, option or global key leads to it from the start".to_owned()),
                );
            }
        }

        // A goto with `return: true` is treated as waiting: the other flow usually asks
        // the caller something, and the interpreter's own guard stops the rare loop that
        // does not.
        // A step that did not compile is not known to spin.
        let spins: Vec<bool> = actions
            .iter()
            .map(|a| {
                a.as_ref()
                    .is_some_and(|a| !a.waits_for_caller() && !matches!(a, StepAction::Goto { .. }))
            })
            .collect();
        let spin_edges: Vec<Vec<usize>> = edges
            .iter()
            .enumerate()
            .map(|(i, e)| {
                if spins.get(i).copied().unwrap_or(false) {
                    e.iter()
                        .copied()
                        .filter(|j| spins.get(*j).copied().unwrap_or(false))
                        .collect()
                } else {
                    Vec::new()
                }
            })
            .collect();
        let mut reported: HashSet<usize> = HashSet::new();
        for start in 0..n {
            if reported.contains(&start) {
                continue;
            }
            if let Some(cycle) = shortest_cycle(&spin_edges, start) {
                reported.extend(cycle.iter().copied());
                let names: Vec<&str> = cycle
                    .iter()
                    .chain(cycle.first())
                    .filter_map(|i| self.names.get(*i).copied())
                    .collect();
                if let Some((key, _)) = flow.steps.value.entries.get(start) {
                    self.error(
                        key.referenced,
                        format!(
                            "these steps loop forever without waiting for the caller: {}",
                            names.join(" → ")
                        ),
                        Some(
                            "put a menu or collect in the loop, or end it with 'next: hangup'"
                                .to_owned(),
                        ),
                    );
                }
            }
        }
    }
}

/// For each `unsure` step, the steps whose names its text mentions (from its key's line to
/// the next step's): where it would lead, as far as can be told.
fn loose_edges(src: &str, flow: &model::Flow, unsure: &[bool], names: &[&str]) -> Vec<Vec<usize>> {
    let lines: Vec<&str> = src.lines().collect();
    let entries = &flow.steps.value.entries;
    let line_of = |i: usize| {
        entries
            .get(i)
            .and_then(|(k, _)| usize::try_from(k.referenced.line()).ok())
    };
    (0..unsure.len())
        .map(|i| {
            if !unsure.get(i).copied().unwrap_or(false) {
                return Vec::new();
            }
            let Some(first) = line_of(i) else {
                return Vec::new();
            };
            let last = line_of(i + 1).map_or(lines.len(), |l| l.saturating_sub(1));
            let text = lines
                .get(first.saturating_sub(1)..last.max(first))
                .unwrap_or_default()
                .join("\n");
            let words: BTreeSet<&str> = text
                .split(|c: char| c.is_whitespace() || ":,[]{}\"'#".contains(c))
                .filter(|w| !w.is_empty())
                .collect();
            names
                .iter()
                .enumerate()
                .filter(|(j, n)| *j != i && words.contains(*n))
                .map(|(j, _)| j)
                .collect()
        })
        .collect()
}

/// Where line `line_no` (1-based) of a template written at `at` is in the file: the first
/// line at or after it holding that text. `None` when the text is not found as written
/// (escapes in a quoted scalar, a folded block).
fn locate(src: &str, at: Location, text_line: &str, line_no: usize) -> Option<(u32, u32)> {
    let first = usize::try_from(at.line()).ok()?.checked_sub(1)?;
    let needle = text_line.trim_end();
    if needle.is_empty() {
        return None;
    }
    let start = first + line_no.saturating_sub(1);
    for (i, l) in src.lines().enumerate().skip(start).take(20) {
        // On the template's own first line, look from its start only.
        let from = if i == first {
            usize::try_from(at.column()).ok()?.saturating_sub(1)
        } else {
            0
        };
        let offset: usize = l.chars().take(from).map(char::len_utf8).sum();
        if let Some(b) = l.get(offset..).and_then(|rest| rest.find(needle)) {
            let col = l.get(..offset + b)?.chars().count() + 1;
            return Some((u32::try_from(i + 1).ok()?, u32::try_from(col).ok()?));
        }
    }
    None
}

/// Every string inside a JSON value (an http body's templates).
fn json_strings<'v>(v: &'v serde_json::Value, out: &mut Vec<&'v str>) {
    match v {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(a) => a.iter().for_each(|x| json_strings(x, out)),
        serde_json::Value::Object(m) => m.values().for_each(|x| json_strings(x, out)),
        _ => {}
    }
}

/// An HTTP header name (RFC 9110 token characters).
fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

/// "a 'menu'", "an 'hours'": the article admins would say.
fn a_kind(kind: ActionKind) -> String {
    a_kind_str(kind.as_str())
}

fn a_kind_str(kind: &str) -> String {
    let an = matches!(kind, "hours" | "http") || kind.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} '{kind}'", if an { "an" } else { "a" })
}

fn step_index(t: Target) -> Option<usize> {
    match t {
        Target::Step(s) => Some(s.0),
        Target::Hangup => None,
    }
}

/// The shortest path from `start` back to itself, as the list of steps on it.
fn shortest_cycle(edges: &[Vec<usize>], start: usize) -> Option<Vec<usize>> {
    let mut parent: HashMap<usize, usize> = HashMap::new();
    let mut queue = VecDeque::new();
    for &s in edges.get(start)? {
        if s == start {
            return Some(vec![start]);
        }
        if let std::collections::hash_map::Entry::Vacant(e) = parent.entry(s) {
            e.insert(start);
            queue.push_back(s);
        }
    }
    while let Some(i) = queue.pop_front() {
        for &j in edges.get(i).into_iter().flatten() {
            if j == start {
                let mut path = vec![i];
                let mut cur = i;
                while let Some(&p) = parent.get(&cur) {
                    if p == start {
                        break;
                    }
                    path.push(p);
                    cur = p;
                }
                path.push(start);
                path.reverse();
                return Some(path);
            }
            if let std::collections::hash_map::Entry::Vacant(e) = parent.entry(j) {
                e.insert(i);
                queue.push_back(j);
            }
        }
    }
    None
}

/// Finds `key:` on the value's line (before it) or on the few lines above, so errors about
/// a key can point at the key rather than its value.
pub(crate) fn key_position(src: &str, value_at: Location, key: &str) -> Option<(u32, u32)> {
    let line = usize::try_from(value_at.line()).ok()?;
    let col = usize::try_from(value_at.column()).ok()?;
    let lines: Vec<&str> = src.lines().collect();
    for back in 0..4 {
        let ln = line.checked_sub(back)?;
        let text: Vec<char> = lines.get(ln.checked_sub(1)?)?.chars().collect();
        let limit = if back == 0 {
            col.saturating_sub(1)
        } else {
            text.len()
        };
        let key_chars: Vec<char> = key.chars().collect();
        let mut found = None;
        for i in 0..limit.min(text.len()) {
            if text.get(i..i + key_chars.len()) != Some(key_chars.as_slice()) {
                continue;
            }
            let before_ok = i == 0
                || text
                    .get(i - 1)
                    .is_some_and(|c| c.is_whitespace() || matches!(c, '{' | ',' | '"' | '\''));
            let after = text.get(i + key_chars.len()..).unwrap_or(&[]);
            let after_ok = after
                .iter()
                .find(|c| !c.is_whitespace() && !matches!(c, '"' | '\''))
                == Some(&':');
            if before_ok && after_ok {
                found = Some(i);
            }
        }
        if let Some(i) = found {
            let column = u32::try_from(i + 1).ok()?;
            return Some((u32::try_from(ln).ok()?, column));
        }
    }
    None
}

pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `en`, `de`, `pt-BR`, `zh_Hant`: used as a folder name, so nothing that could climb out.
pub(crate) fn is_language_code(s: &str) -> bool {
    let mut parts = s.split(['-', '_']);
    let first_ok = parts
        .next()
        .is_some_and(|p| (2..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphabetic()));
    first_ok
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// A prompt name is a path below prompts/<language>/ without the extension; it must not
/// be able to climb out of that folder.
pub(crate) fn is_prompt_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().count() <= 100
        && s.split('/').all(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_become_paths_cannot_climb_out() {
        for ok in ["en", "de", "pt-BR", "zh_Hant", "gsw"] {
            assert!(is_language_code(ok), "{ok}");
        }
        for bad in [
            "",
            "e",
            "english",
            "../de",
            "de/",
            "de-",
            "d e",
            "de-toolongsubtag",
        ] {
            assert!(!is_language_code(bad), "{bad}");
        }
        for ok in ["welcome", "menus/main_menu", "grüße", "order-2"] {
            assert!(is_prompt_name(ok), "{ok}");
        }
        for bad in ["", "../x", "/abs", "a//b", "a/", "x.wav", "a b"] {
            assert!(!is_prompt_name(bad), "{bad}");
        }
    }

    #[test]
    fn variable_names_are_identifiers() {
        assert!(is_identifier("order"));
        assert!(is_identifier("_x1"));
        assert!(!is_identifier("1x"));
        assert!(!is_identifier("a-b"));
        assert!(!is_identifier(""));
    }

    fn diagnostics(flow: &str) -> String {
        let (_, diags) = crate::flow::load::compile_flows(
            vec![crate::flow::load::FlowSource {
                name: "main".into(),
                file: "flows/main.yaml".into(),
                text: flow.into(),
            }],
            &crate::flow::load::AnyPrompt,
        );
        diags.iter().map(|d| format!("{d}\n")).collect()
    }

    const RECORD_KEYS: &str = r#"
steps:
  menu:
    menu:
      prompt: main_menu
      options:
        "1": { next: info, reason: opening_hours }
        "2": { next: rate, reason: opening_hours }
    survey: menu_score
  info:
    play: opening_hours_info
    reason: opening_hours
    resolved: opening_hours
    next: rate
  rate:
    collect: { prompt: survey_rating, into: score, max_digits: 1 }
    survey: satisfaction
    next: message
  message:
    record: { prompt: leave_a_message, voicemail: true }
"#;

    #[test]
    fn the_record_keys_are_accepted_and_compiled() {
        assert_eq!(diagnostics(RECORD_KEYS), "");
        let (set, _) = crate::flow::load::compile_flows(
            vec![crate::flow::load::FlowSource {
                name: "main".into(),
                file: "flows/main.yaml".into(),
                text: RECORD_KEYS.into(),
            }],
            &crate::flow::load::AnyPrompt,
        );
        let flow = set.flow(set.id("main").expect("main"));
        let info = &flow.steps[1];
        assert_eq!(info.resolved.as_deref(), Some("opening_hours"));
        assert!(
            info.tags
                .iter()
                .any(|(k, v)| k == REASON_TAG && v.to_string() == "opening_hours")
        );
        assert_eq!(flow.steps[2].survey.as_deref(), Some("satisfaction"));
        let StepAction::Menu(m) = &flow.steps[0].action else {
            panic!("a menu")
        };
        assert_eq!(m.options[0].reason.as_deref(), Some("opening_hours"));
        let StepAction::Record(r) = &flow.steps[3].action else {
            panic!("a record")
        };
        assert!(r.voicemail);
    }

    #[test]
    fn the_record_keys_are_checked() {
        let d = diagnostics(
            "steps:\n  a:\n    play: x\n    survey: satisfaction\n    next: b\n  b:\n    hangup:\n",
        );
        assert!(
            d.contains("'survey' does not belong in a 'play' step"),
            "{d}"
        );
        assert!(d.contains("'collect' or 'menu'"), "{d}");
        let d = diagnostics("steps:\n  a:\n    play: x\n    resolved: order status\n");
        assert!(
            d.contains("'order status' is not a usable resolved name"),
            "{d}"
        );
        let d = diagnostics("steps:\n  a:\n    play: x\n    reason: ''\n");
        assert!(d.contains("is not a usable reason name"), "{d}");
        let d = diagnostics(
            "steps:\n  a:\n    play: x\n    reason: sales\n    tag: { reason: sales }\n",
        );
        assert!(d.contains("the reason for calling is given twice"), "{d}");
        let d = diagnostics("steps:\n  a:\n    play: x\n    resolve: sales\n");
        assert!(d.contains("did you mean 'resolved'?"), "{d}");
        let d = diagnostics(
            "steps:\n  a:\n    menu:\n      prompt: m\n      options:\n        \"1\": { next: a, reason: x, reasn: y }\n",
        );
        assert!(d.contains("reasn"), "{d}");
        let d = diagnostics("steps:\n  a:\n    record: { voicemail: yes please }\n");
        assert!(d.contains("voicemail"), "{d}");
        // A reason written once beside a near twin used elsewhere is most likely a typo.
        let d = diagnostics(
            "steps:\n  a:\n    play: x\n    reason: order_status\n    next: b\n  b:\n    play: x\n    reason: order_status\n    next: c\n  c:\n    play: x\n    reason: order_staus\n",
        );
        assert!(
            d.contains("the reason 'order_staus' is used only here"),
            "{d}"
        );
        assert!(d.contains("did you mean 'order_status'?"), "{d}");
    }

    #[test]
    fn the_schema_knows_the_record_keys() {
        let schema = crate::flow::model::flow_schema().to_string();
        for key in ["\"resolved\"", "\"reason\"", "\"survey\"", "\"voicemail\""] {
            assert!(schema.contains(key), "{key}");
        }
    }
}
