//! Reading flow files: YAML parsing with limits, parser errors turned into diagnostics,
//! and the checks across a whole set of flows (goto targets, prompts in every language).
//!
//! Owns file access for flows and the `FlowSet` build. The checks of a single flow are
//! `check`'s; what a prompt file is, is the caller's (through `PromptCheck`), so this
//! module never touches audio. What flows use from hotline.yaml (schedules, `vars:`)
//! comes in as a [`FlowConfig`]; without one, schedule names and `config.NAME`
//! references are not checked and the set has no schedules.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_saphyr::Error as YamlError;

use super::check::{CheckedFlow, FlowConfig, GotoUse, check_flow, is_language_code};
use super::diagnostic::{Diagnostic, did_you_mean_help, has_errors};
use super::flowset::{CompiledFlow, FlowId, FlowSet, StepAction};
use super::model::{self, HELP_MARKER, Location};
use super::template::Templates;

/// Flow files larger than this are refused before parsing: a real flow is a few KiB.
pub const MAX_FLOW_FILE_BYTES: u64 = 1024 * 1024;

/// Tells whether a prompt exists for a language (`prompts/<language>/<name>.wav`).
pub trait PromptCheck {
    fn prompt_exists(&self, language: &str, name: &str) -> bool;
}

impl<F: Fn(&str, &str) -> bool> PromptCheck for F {
    fn prompt_exists(&self, language: &str, name: &str) -> bool {
        self(language, name)
    }
}

/// A `PromptCheck` that accepts every prompt, for tools that do not look at audio.
pub struct AnyPrompt;

impl PromptCheck for AnyPrompt {
    fn prompt_exists(&self, _language: &str, _name: &str) -> bool {
        true
    }
}

/// One flow file's text, named as other flows and routes refer to it (its file stem).
#[derive(Debug, Clone)]
pub struct FlowSource {
    pub name: String,
    pub file: PathBuf,
    pub text: String,
}

/// A flow that passed the checks that need only its own file.
#[derive(Debug, Clone)]
pub struct LoadedFlow {
    pub name: String,
    pub flow: model::Flow,
    pub warnings: Vec<Diagnostic>,
}

pub fn yaml_options() -> serde_saphyr::Options {
    // Generous for hand-written flows (hundreds of steps), tight enough that an alias
    // bomb or a pathological nesting fails in milliseconds.
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_events: 200_000,
            max_aliases: 1_000,
            max_anchors: 1_000,
            max_depth: 32,
            max_nodes: 100_000,
            max_total_scalar_bytes: 1024 * 1024,
            max_merge_keys: 1_000,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 20_000,
            max_replay_stack_depth: 16,
            max_alias_expansions_per_anchor: 500,
        },
    }
}

/// Parses one flow file's text into the model: YAML syntax, key names and value types.
/// Every problem is reported (see [`parse_flow_partly`]); the model only when there is none.
pub fn parse_flow(file: &Path, text: &str) -> Result<model::Flow, Vec<Diagnostic>> {
    match parse_flow_partly(file, text) {
        (Some(p), diags) if p.broken.is_empty() && !has_errors(&diags) => Ok(p.flow),
        (_, diags) => Err(diags),
    }
}

/// A flow file read as far as its problems allow.
#[derive(Debug)]
pub struct PartlyParsed {
    /// The flow, with the broken steps read as empty.
    pub flow: model::Flow,
    /// The steps that could not be read (the diagnostics say why).
    pub broken: BTreeSet<String>,
}

/// Parses a flow file, going on after a problem inside a step: the parser stops at the
/// first problem, so the step it is in is read as empty and the file parsed again (every
/// line keeps its number), once per broken step at most. A problem outside the steps (or
/// a YAML syntax error the parser cannot place in one) ends the parse without a model.
/// Keys YAML silently swallows (`#` and `*` unquoted) are reported the same way.
pub fn parse_flow_partly(file: &Path, text: &str) -> (Option<PartlyParsed>, Vec<Diagnostic>) {
    if text.len() as u64 > MAX_FLOW_FILE_BYTES {
        return (None, vec![too_large(file, text.len() as u64)]);
    }
    let mut diags = lint_special_keys(file, text);
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut broken: BTreeSet<String> = BTreeSet::new();
    let blocks = step_blocks(text);
    let mut outside = false;
    for d in &diags {
        match blocks.iter().find(|b| b.contains(d.line)) {
            Some(b) => {
                if broken.insert(b.name.clone()) {
                    b.blank(&mut lines);
                }
            }
            None => outside = true,
        }
    }
    // Each round either ends or empties one more step.
    for _ in 0..=blocks.len() {
        let current = lines.join("\n");
        match serde_saphyr::from_str_with_options::<model::Flow>(&current, yaml_options()) {
            Ok(flow) if !outside => return (Some(PartlyParsed { flow, broken }), diags),
            Ok(_) => return (None, diags),
            Err(e) => {
                let d = yaml_error(file, text, &e);
                let line = d.line;
                if !diags.iter().any(|l| l.line == d.line) {
                    diags.push(d);
                }
                match blocks.iter().find(|b| b.contains(line)) {
                    Some(b) if line > 0 && broken.insert(b.name.clone()) => b.blank(&mut lines),
                    _ => return (None, diags),
                }
            }
        }
    }
    (None, diags)
}

/// Where one step is written: its key's line and column, and its last line.
struct StepBlock {
    name: String,
    line: u32,
    column: u32,
    last: u32,
}

impl StepBlock {
    fn contains(&self, line: u32) -> bool {
        (self.line..=self.last).contains(&line)
    }

    /// Rewrites the step as `name: {}`, every line keeping its number.
    fn blank(&self, lines: &mut [String]) {
        let first = self.line as usize - 1;
        if let Some(l) = lines.get_mut(first) {
            let start = self.column as usize - 1;
            let chars: Vec<char> = l.chars().collect();
            let mut i = start;
            if let Some(q @ ('"' | '\'')) = chars.get(i).copied() {
                i += 1;
                while chars.get(i).is_some_and(|c| *c != q) {
                    i += 1;
                }
            }
            while chars.get(i).is_some_and(|c| *c != ':') {
                i += 1;
            }
            let key: String = chars.iter().take(i + 1).collect();
            *l = format!("{key} {{}}");
        }
        for l in lines.iter_mut().take(self.last as usize).skip(first + 1) {
            l.clear();
        }
    }
}

/// The steps of a flow file and the lines each spans (a step's lines are those indented
/// deeper than its key), from a parse that looks at nothing but the step names. Empty when
/// the steps cannot be told apart (a syntax error, steps written on one line).
fn step_blocks(text: &str) -> Vec<StepBlock> {
    #[derive(serde::Deserialize)]
    struct Skeleton {
        steps: model::OrderedMap<String, serde::de::IgnoredAny>,
    }
    let Ok(sk) = serde_saphyr::from_str_with_options::<Skeleton>(text, yaml_options()) else {
        return Vec::new();
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (key, _) in sk.steps.iter() {
        let (Ok(line), Ok(column)) = (
            u32::try_from(key.referenced.line()),
            u32::try_from(key.referenced.column()),
        ) else {
            return Vec::new();
        };
        if line == 0 || column == 0 || out.iter().any(|b: &StepBlock| b.line == line) {
            return Vec::new();
        }
        let indent = column as usize - 1;
        let mut last = line;
        for (i, l) in lines.iter().enumerate().skip(line as usize) {
            let t = l.trim_start();
            let deeper = l.chars().take_while(|c| *c == ' ').count() > indent;
            if t.is_empty() || t.starts_with('#') || deeper {
                if deeper {
                    last = u32::try_from(i + 1).unwrap_or(last);
                }
            } else {
                break;
            }
        }
        out.push(StepBlock {
            name: key.value.clone(),
            line,
            column,
            last,
        });
    }
    out
}

/// Reads and checks one flow file on its own (goto targets and prompts are not checked:
/// that needs the other flows and the prompts, see `load_flows_dir`).
pub fn load_flow(path: &Path) -> Result<LoadedFlow, Vec<Diagnostic>> {
    let source = read_flow_file(path).map_err(|d| vec![d])?;
    let (parsed, mut diags) = parse_flow_partly(&source.file, &source.text);
    let Some(parsed) = parsed else {
        return Err(diags);
    };
    let mut templates = Templates::new();
    let (checked, more) = check_flow(
        &source.name,
        &source.file,
        &source.text,
        &parsed.flow,
        &mut templates,
        None,
        &parsed.broken,
    );
    diags.extend(more);
    sort_diagnostics(&mut diags);
    match checked.compiled {
        Some(_) if !has_errors(&diags) => Ok(LoadedFlow {
            name: source.name,
            flow: parsed.flow,
            warnings: diags,
        }),
        _ => Err(diags),
    }
}

/// Loads every `*.yaml` / `*.yml` file directly in `dir` (not its sub-folders, where flow
/// tests live) and checks them together. The set holds every flow without errors whose
/// gotos lead to flows in the set; with errors, callers keep their running set.
/// Schedules and config variables are not known: see [`load_flows_dir_with`].
pub fn load_flows_dir(dir: &Path, prompts: &dyn PromptCheck) -> (FlowSet, Vec<Diagnostic>) {
    load_flows(dir, prompts, None)
}

/// `load_flows_dir` with what the flows use from hotline.yaml: `hours` steps must name one
/// of its schedules and `config.NAME` one of its variables.
pub fn load_flows_dir_with(
    dir: &Path,
    prompts: &dyn PromptCheck,
    config: &FlowConfig,
) -> (FlowSet, Vec<Diagnostic>) {
    load_flows(dir, prompts, Some(config))
}

/// The `*.yaml` / `*.yml` files directly in `dir`, sorted: a flow folder's flows (and a
/// test folder's test files).
pub fn yaml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|x| x.to_str())
                    .is_some_and(|x| x == "yaml" || x == "yml")
        })
        .collect();
    v.sort();
    Ok(v)
}

fn load_flows(
    dir: &Path,
    prompts: &dyn PromptCheck,
    config: Option<&FlowConfig>,
) -> (FlowSet, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let paths = match yaml_files(dir) {
        Ok(p) => p,
        Err(e) => {
            diags.push(Diagnostic::error(
                dir,
                format!("cannot read the flow folder: {e}"),
            ));
            return (FlowSet::empty(), diags);
        }
    };
    let mut sources = Vec::new();
    for p in paths {
        // A symlink in the flow folder that points out of it is not read.
        if let Err(e) = crate::paths::confined(dir, &p) {
            diags.push(Diagnostic::error(
                &p,
                format!("the flow file is not used: {e}"),
            ));
            continue;
        }
        match read_flow_file(&p) {
            Ok(s) => sources.push(s),
            Err(d) => diags.push(d),
        }
    }
    let (set, more) = compile(sources, prompts, config);
    diags.extend(more);
    sort_diagnostics(&mut diags);
    (set, diags)
}

/// Checks and compiles flows given as text (what `load_flows_dir` does after reading).
/// Schedules and config variables are not known: see [`compile_flows_with`].
pub fn compile_flows(
    sources: Vec<FlowSource>,
    prompts: &dyn PromptCheck,
) -> (FlowSet, Vec<Diagnostic>) {
    compile(sources, prompts, None)
}

/// `compile_flows` with what the flows use from hotline.yaml.
pub fn compile_flows_with(
    sources: Vec<FlowSource>,
    prompts: &dyn PromptCheck,
    config: &FlowConfig,
) -> (FlowSet, Vec<Diagnostic>) {
    compile(sources, prompts, Some(config))
}

fn compile(
    sources: Vec<FlowSource>,
    prompts: &dyn PromptCheck,
    config: Option<&FlowConfig>,
) -> (FlowSet, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let mut templates = Templates::new();
    let mut names: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut checked: Vec<CheckedFlow> = Vec::new();
    let mut failed: BTreeSet<String> = BTreeSet::new();

    for src in sources {
        if let Some(first) = names.get(&src.name) {
            diags.push(
                Diagnostic::error(&src.file, format!("a second flow named '{}'", src.name))
                    .with_help(format!("'{}' is already named so", first.display())),
            );
            continue;
        }
        names.insert(src.name.clone(), src.file.clone());
        let (parsed, d) = parse_flow_partly(&src.file, &src.text);
        diags.extend(d);
        let Some(parsed) = parsed else {
            failed.insert(src.name);
            continue;
        };
        let (c, d) = check_flow(
            &src.name,
            &src.file,
            &src.text,
            &parsed.flow,
            &mut templates,
            config,
            &parsed.broken,
        );
        diags.extend(d);
        if c.compiled.is_none() || !parsed.broken.is_empty() {
            failed.insert(src.name);
        }
        checked.push(c);
    }

    // Gotos to flows that do not exist.
    for c in &checked {
        for g in &c.gotos {
            if !names.contains_key(&g.flow) {
                let help = did_you_mean_help(&g.flow, names.keys().map(String::as_str));
                diags.push(
                    Diagnostic::error(&c.file, format!("no flow named '{}'", g.flow))
                        .at_location(&c.source, g.at)
                        .with_optional_help(help),
                );
                failed.insert(c.name.clone());
            }
        }
    }

    // Prompts, in every language callers can be in: those of the flows that compiled, and
    // a flow with errors adds its own (the valid ones) for itself only.
    let languages: BTreeSet<&str> = checked
        .iter()
        .filter(|c| c.compiled.is_some())
        .flat_map(|c| c.languages.iter().map(String::as_str))
        .collect();
    for c in &checked {
        let before = diags.len();
        let mut own = languages.clone();
        own.extend(
            c.languages
                .iter()
                .map(String::as_str)
                .filter(|l| is_language_code(l)),
        );
        check_prompts(c, &own, prompts, &mut diags);
        if has_errors(diags.get(before..).unwrap_or(&[])) {
            failed.insert(c.name.clone());
        }
    }

    // A flow whose goto leads to a failed flow cannot run either.
    loop {
        let mut changed = false;
        for c in &checked {
            if !failed.contains(&c.name) && c.gotos.iter().any(|g| failed.contains(&g.flow)) {
                failed.insert(c.name.clone());
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }

    let mut good: Vec<(CompiledFlow, Vec<GotoUse>)> = checked
        .into_iter()
        .filter(|c| !failed.contains(&c.name))
        .filter_map(|c| Some((c.compiled?, c.gotos)))
        .collect();
    good.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    let by_name: HashMap<String, FlowId> = good
        .iter()
        .enumerate()
        .map(|(i, c)| (c.0.name.clone(), FlowId(i)))
        .collect();
    let mut flows = Vec::with_capacity(good.len());
    for (mut compiled, gotos) in good {
        for g in &gotos {
            if let (Some(id), Some(step)) = (by_name.get(&g.flow), compiled.steps.get_mut(g.step.0))
                && let StepAction::Goto { flow, .. } = &mut step.action
            {
                *flow = *id;
            }
        }
        flows.push(compiled);
    }
    sort_diagnostics(&mut diags);
    let (schedules, config_vars) = config
        .map(|c| (c.schedules.clone(), c.vars.clone()))
        .unwrap_or_default();
    let set = FlowSet {
        flows,
        by_name,
        templates,
        schedules,
        config_vars,
    };
    (set, diags)
}

fn check_prompts(
    c: &CheckedFlow,
    languages: &BTreeSet<&str>,
    prompts: &dyn PromptCheck,
    diags: &mut Vec<Diagnostic>,
) {
    let default = c.language.as_str();
    if !is_language_code(default) {
        // Already an error; every prompt would be "missing" in a language that cannot be.
        return;
    }
    let mut done: BTreeSet<&str> = BTreeSet::new();
    for p in &c.prompts {
        if !done.insert(p.name.as_str()) {
            continue;
        }
        let missing: Vec<&str> = languages
            .iter()
            .copied()
            .filter(|l| !prompts.prompt_exists(l, &p.name))
            .collect();
        if missing.is_empty() {
            continue;
        }
        let file = &c.file;
        if missing.contains(&default) {
            let others: Vec<&str> = missing.iter().copied().filter(|l| *l != default).collect();
            let message = if others.is_empty() {
                format!("prompt '{}' not found for language '{default}'", p.name)
            } else {
                format!(
                    "prompt '{}' not found for languages {}",
                    p.name,
                    quoted_list(&missing)
                )
            };
            diags.push(
                Diagnostic::error(file, message)
                    .at_location(&c.source, p.at)
                    .with_help(format!("record prompts/{default}/{}.wav", p.name)),
            );
        } else {
            let message = format!(
                "prompt '{}' not found for {} {}",
                p.name,
                if missing.len() == 1 {
                    "language"
                } else {
                    "languages"
                },
                quoted_list(&missing)
            );
            diags.push(
                Diagnostic::warning(file, message)
                    .at_location(&c.source, p.at)
                    .with_help(format!(
                        "callers in {} hear the '{default}' recording",
                        quoted_list(&missing)
                    )),
            );
        }
    }
}

fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn sort_diagnostics(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
}

fn too_large(file: &Path, len: u64) -> Diagnostic {
    Diagnostic::error(
        file,
        format!(
            "the file is {len} bytes; a flow file may have at most {MAX_FLOW_FILE_BYTES} bytes"
        ),
    )
    .with_help("split it into several flows joined by 'goto'")
}

/// Reads a flow file with the size limit applied before and while reading.
pub fn read_flow_file(path: &Path) -> Result<FlowSource, Diagnostic> {
    let name = match path.file_stem().and_then(|s| s.to_str()) {
        Some(n) if !n.is_empty() => n.to_owned(),
        _ => {
            return Err(Diagnostic::error(
                path,
                "the file name does not give a usable flow name",
            ));
        }
    };
    let cannot = |e: std::io::Error| Diagnostic::error(path, format!("cannot read the file: {e}"));
    let file = std::fs::File::open(path).map_err(cannot)?;
    let len = file.metadata().map_err(cannot)?.len();
    if len > MAX_FLOW_FILE_BYTES {
        return Err(too_large(path, len));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FLOW_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_FLOW_FILE_BYTES {
        return Err(too_large(path, bytes.len() as u64));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| Diagnostic::error(path, "the file is not UTF-8 text"))?;
    Ok(FlowSource {
        name,
        file: path.to_path_buf(),
        text,
    })
}

// ---------------------------------------------------------------------------------------
// Parser errors
// ---------------------------------------------------------------------------------------

/// Turns a YAML/serde error into a diagnostic that says what was expected and found.
pub fn yaml_error(file: &Path, src: &str, err: &YamlError) -> Diagnostic {
    let mut inner = err.without_snippet();
    if let YamlError::AliasError { error, .. } = inner {
        inner = error.without_snippet();
    }
    let loc = inner.location().or_else(|| err.location());
    let found = || loc.map_or_else(|| "something else".to_owned(), |l| found_at(src, l));
    // "for 'next'" when the value sits right after its key on the line.
    let for_key = loc
        .and_then(|l| key_before(src, l))
        .map_or_else(String::new, |k| format!(" for '{k}'"));
    let (message, help): (String, Option<String>) = match inner {
        YamlError::SerdeUnknownField {
            field, expected, ..
        } => (
            format!("unknown key '{field}'"),
            did_you_mean_help(field, expected.iter().copied())
                .or_else(|| Some(format!("expected one of: {}", expected.join(", ")))),
        ),
        YamlError::SerdeUnknownVariant {
            variant, expected, ..
        } => (
            format!("unknown value '{variant}'"),
            did_you_mean_help(variant, expected.iter().copied())
                .or_else(|| Some(format!("expected one of: {}", expected.join(", ")))),
        ),
        YamlError::SerdeMissingField { field, .. } => {
            (format!("missing key '{field}'"), missing_help(field))
        }
        YamlError::SerdeInvalidType {
            unexpected,
            expected,
            ..
        }
        | YamlError::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => (
            format!("expected {}{for_key}, found {}", friendly(expected), unexpected),
            None,
        ),
        YamlError::InvalidScalar { ty, .. } => (
            format!("expected {}{for_key}, found {}", friendly(ty), found()),
            None,
        ),
        YamlError::Unexpected { expected, .. } => (
            format!("expected {}{for_key}, found {}", friendly(expected), found()),
            None,
        ),
        YamlError::NullIntoString { .. } => (
            match loc.and_then(|l| key_before(src, l)) {
                Some(k) => format!("'{k}' needs a value"),
                None => "this key needs a value".to_owned(),
            },
            Some("write the value after the colon, or remove the key".to_owned()),
        ),
        YamlError::DuplicateMappingKey { key, .. } => (
            match key {
                Some(k) => format!("duplicate key '{k}'"),
                None => "duplicate key".to_owned(),
            },
            Some("each key may appear only once in a mapping".to_owned()),
        ),
        YamlError::UnknownAnchor { .. } => (
            "'*' starts a YAML alias, and no anchor has this name".to_owned(),
            Some("to mean the key *, quote it: \"*\"".to_owned()),
        ),
        YamlError::MultipleDocuments { .. } => (
            "a flow file holds one YAML document; this is a second one".to_owned(),
            Some("remove the '---' line, or put the second flow in its own file".to_owned()),
        ),
        YamlError::Budget { .. } => (
            "the file goes beyond the limits of a flow file (too many or too deeply nested entries)"
                .to_owned(),
            Some("split it into several flows joined by 'goto'".to_owned()),
        ),
        YamlError::AliasReplayLimitExceeded { .. }
        | YamlError::AliasExpansionLimitExceeded { .. }
        | YamlError::AliasReplayStackDepthExceeded { .. }
        | YamlError::AliasReplayCounterOverflow { .. } => {
            // The parser stops inside some replayed node; no one alias is to blame, so
            // point at the first one, where the expansion starts.
            let d = Diagnostic::error(
                file,
                "YAML aliases (*name) expand to too much for a flow file",
            )
            .with_help("write the repeated parts out, or share them with 'goto'");
            return match first_alias(src) {
                Some((line, column, width)) => d.at(src, line, column, width),
                None => match loc {
                    Some(l) if l.line() > 0 => d.at_location(src, l),
                    _ => d,
                },
            };
        }
        YamlError::Message { msg, .. } => match msg.split_once(HELP_MARKER) {
            Some((m, h)) => (m.to_owned(), Some(h.to_owned())),
            None => (msg.clone(), None),
        },
        // The parser points just past the tab and speaks of "contexts".
        YamlError::ExternalMessage { msg, .. } if msg.contains("tab") => {
            let d = Diagnostic::error(
                file,
                "a tab in the indentation: YAML indents with spaces only",
            )
            .with_help("replace the tab with spaces");
            return match loc.and_then(|l| first_tab(src, l)) {
                Some((line, column)) => d.at(src, line, column, 1),
                None => match loc {
                    Some(l) if l.line() > 0 => d.at_location(src, l),
                    _ => d,
                },
            };
        }
        YamlError::ExternalMessage { msg, .. } => (
            format!("YAML syntax: {msg}"),
            Some("check the indentation and quoting of this line and the lines above".to_owned()),
        ),
        YamlError::Eof { .. } => ("the file ends too early".to_owned(), None),
        other => (strip_position(&other.to_string()), None),
    };
    let d = Diagnostic::error(file, message).with_optional_help(help);
    match loc {
        Some(l) if l.line() > 0 => d.at_location(src, l),
        _ => d,
    }
}

/// The first alias (`*name` after a space, `[`, `{` or `,`) in the text: 1-based line,
/// column and width.
fn first_alias(src: &str) -> Option<(u32, u32, u32)> {
    for (i, line) in src.lines().enumerate() {
        let chars: Vec<char> = line.chars().collect();
        for (j, c) in chars.iter().enumerate() {
            if *c == '#' && (j == 0 || chars.get(j - 1).is_some_and(|p| p.is_whitespace())) {
                break;
            }
            let starts = *c == '*'
                && (j == 0 || chars.get(j - 1).is_some_and(|p| " \t[{,".contains(*p)))
                && chars
                    .get(j + 1)
                    .is_some_and(|n| n.is_alphanumeric() || *n == '_');
            if starts {
                let width = chars
                    .iter()
                    .skip(j + 1)
                    .take_while(|n| n.is_alphanumeric() || matches!(n, '_' | '-'))
                    .count()
                    + 1;
                return Some((
                    u32::try_from(i + 1).ok()?,
                    u32::try_from(j + 1).ok()?,
                    u32::try_from(width).ok()?,
                ));
            }
        }
    }
    None
}

/// The first tab in the leading whitespace of the line at `loc` (or of the first line
/// before it that has one), as a 1-based line and column.
fn first_tab(src: &str, loc: Location) -> Option<(u32, u32)> {
    let upto = usize::try_from(loc.line()).ok()?;
    let lines: Vec<&str> = src.lines().take(upto).collect();
    lines.iter().enumerate().rev().find_map(|(i, l)| {
        let indent: String = l.chars().take_while(|c| c.is_whitespace()).collect();
        let col = indent.chars().position(|c| c == '\t')?;
        Some((u32::try_from(i + 1).ok()?, u32::try_from(col + 1).ok()?))
    })
}

/// serde-saphyr appends " at line L, column C"; diagnostics show the position themselves.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg.get(..i).unwrap_or(msg).to_owned(),
        None => msg.to_owned(),
    }
}

/// Plain words for the type names serde reports.
fn friendly(expected: &str) -> String {
    let e = expected.trim();
    let s = match e {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number (0 or more)",
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number",
        "bool" | "a boolean" | "boolean" => "true or false",
        "string scalar" | "a string" | "string" | "str" => "a text value",
        "struct Flow" => "a flow (a mapping with 'steps')",
        "struct Step" => "a step (a mapping with one action such as 'play' or 'menu')",
        "struct Menu" => "a menu (a mapping with 'prompt' and 'options')",
        "struct Collect" => "a collect (a mapping with 'prompt' and 'into')",
        "struct Defaults" => "a mapping like { language: en, timeout: 5s, retries: 2 }",
        "struct Branch" => "a mapping with 'when' and 'else'",
        "struct When" => "a mapping like { if: CONDITION, next: STEP }",
        "struct Http" => "a mapping with 'url'",
        "struct Record" => "a mapping with the recording's settings",
        "struct Confirm" => "a mapping with 'prompt'",
        _ if e.contains("mapping") || e.starts_with("struct ") || e == "a map" => {
            "a mapping (key: value lines)"
        }
        _ if e.contains("sequence") => "a list",
        _ => return e.to_owned(),
    };
    s.to_owned()
}

/// Help for a required key that is missing.
fn missing_help(field: &str) -> Option<String> {
    let h = match field {
        "steps" => "a flow lists its steps under 'steps:'",
        "options" => "a menu needs 'options': which key leads to which step",
        "prompt" => "add 'prompt:' with what the caller hears",
        "into" => "a collect needs 'into': the variable that receives the digits",
        "next" => "add 'next:' with the step to continue with",
        "url" => "an http step needs 'url'",
        "when" => "a branch needs 'when:', a list of { if: CONDITION, next: STEP }",
        "if" => "each 'when' entry needs 'if' and 'next'",
        _ => return None,
    };
    Some(h.to_owned())
}

/// The key written just before a position on its line (`next:` in `next: [a, b]`).
fn key_before(src: &str, loc: Location) -> Option<String> {
    let line = src
        .lines()
        .nth(usize::try_from(loc.line()).ok()?.checked_sub(1)?)?;
    let col = usize::try_from(loc.column()).ok()?.checked_sub(1)?;
    // The position is the value's, or (for an empty value) the colon's.
    let upto = |n: usize| line.chars().take(n).collect::<String>();
    let (a, b) = (upto(col), upto(col + 1));
    let before = a
        .trim_end()
        .strip_suffix(':')
        .or_else(|| b.trim_end().strip_suffix(':'))?;
    let key = before
        .rsplit(|c: char| c.is_whitespace() || matches!(c, '{' | ',' | '-'))
        .next()?
        .trim_matches(|c| c == '"' || c == '\'');
    (!key.is_empty()).then(|| key.to_owned())
}

/// Describes the value written at a position: "a list", "a mapping", "nothing" or 'text'.
fn found_at(src: &str, loc: Location) -> String {
    let line_no = usize::try_from(loc.line()).unwrap_or(0);
    let col = usize::try_from(loc.column()).unwrap_or(1).max(1);
    let Some(line) = line_no.checked_sub(1).and_then(|i| src.lines().nth(i)) else {
        return "nothing".to_owned();
    };
    let rest: String = line.chars().skip(col - 1).collect();
    let rest = match rest.find(" #") {
        Some(i) => rest.get(..i).unwrap_or(&rest).to_owned(),
        None => rest,
    };
    let t = rest.trim();
    if t.is_empty() || t.starts_with('#') {
        "nothing".to_owned()
    } else if t.starts_with('[') || t == "-" || t.starts_with("- ") {
        "a list".to_owned()
    } else if t.starts_with('{') || t.ends_with(':') || t.contains(": ") {
        "a mapping".to_owned()
    } else {
        let short: String = t.chars().take(40).collect();
        format!("'{short}'")
    }
}

/// YAML reads an unquoted `#` as a comment and `*` as an alias, so `#: operator` in a
/// menu silently vanishes and `terminator: #` silently becomes empty. Both are surely
/// meant as keys; say so before the parser's confusing consequence.
fn lint_special_keys(file: &Path, src: &str) -> Vec<Diagnostic> {
    const KEY_VALUED: [&str; 4] = ["terminator", "repeat_key", "yes", "no"];
    let mut out = Vec::new();
    for (i, line) in src.lines().enumerate() {
        let line_no = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let indent = line.chars().take_while(|c| c.is_whitespace()).count();
        let t = line.trim_start();
        let column = u32::try_from(indent + 1).unwrap_or(u32::MAX);
        for special in ['#', '*'] {
            let key_form = format!("{special}:");
            if t.starts_with(&key_form) {
                out.push(special_key(file, src, line_no, column, special));
            }
        }
        for key in KEY_VALUED {
            let Some(after) = t
                .strip_prefix(key)
                .and_then(|a| a.trim_start().strip_prefix(':'))
            else {
                continue;
            };
            let value = after.trim_start();
            let special = if value.starts_with('#') && after.starts_with(char::is_whitespace) {
                Some('#')
            } else if value == "*" || value.starts_with("* ") {
                Some('*')
            } else {
                None
            };
            if let Some(special) = special {
                let value_col = line.chars().count() - value.chars().count() + 1;
                let what = if special == '#' {
                    "starts a comment"
                } else {
                    "starts an alias"
                };
                out.push(
                    Diagnostic::error(
                        file,
                        format!("'{special}' {what} in YAML, so '{key}' has no value"),
                    )
                    .at(src, line_no, u32::try_from(value_col).unwrap_or(1), 1)
                    .with_help(format!("quote it: {key}: \"{special}\"")),
                );
            }
        }
    }
    out
}

fn special_key(file: &Path, src: &str, line: u32, column: u32, special: char) -> Diagnostic {
    let what = if special == '#' {
        "starts a comment in YAML, so this line is ignored"
    } else {
        "starts an alias in YAML"
    };
    Diagnostic::error(file, format!("'{special}' {what}"))
        .at(src, line, column, 1)
        .with_help(format!("quote the key: \"{special}\": ..."))
}
