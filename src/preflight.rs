//! Loading everything a hotline needs before it answers a call (prompts, then flows checked
//! against those prompts) and reporting every problem at once, compiler style. `hotline
//! check` prints the report; `hotline serve` refuses to start on errors.

use std::collections::BTreeSet;
use std::path::Path;

use crate::config::Config;
use crate::flow::diagnostic::{Diagnostic, Severity};
use crate::flow::flowset::FlowSet;
use crate::flow::load::load_flows_dir_with;
use crate::flow::machine::DEFAULT_GOODBYE_PROMPT;
use crate::media::prompt::PromptLibrary;

/// Every problem found, in the order found.
#[derive(Debug, Default)]
pub struct Report {
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    pub fn errors(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    pub fn warnings(&self) -> usize {
        self.diagnostics.len() - self.errors()
    }

    pub fn has_errors(&self) -> bool {
        self.errors() > 0
    }

    /// Whether `hotline check` exits 1: on errors, and with `--deny-warnings` on warnings.
    pub fn fails(&self, deny_warnings: bool) -> bool {
        self.has_errors() || (deny_warnings && self.warnings() > 0)
    }

    pub fn summary(&self) -> String {
        match (self.errors(), self.warnings()) {
            (0, 0) => "no problems found".to_string(),
            (e, w) => format!("{e} error(s), {w} warning(s)"),
        }
    }
}

/// What a successful load gives the server.
pub struct Loaded {
    pub prompts: PromptLibrary,
    pub flows: FlowSet,
    pub report: Report,
    /// The flows whose files are there but have errors (so are not loaded): what names
    /// them (a route, a flow test) is not reported again, the file's own errors say why.
    pub broken_flows: BTreeSet<String>,
}

/// Loads the prompts and flows the configuration names, and checks the routes.
pub fn load_all(config: &Config) -> Loaded {
    let mut report = Report::default();
    let (prompts, prompt_errors) =
        PromptLibrary::load_dir(&config.prompts_dir, &config.default_language);
    for e in prompt_errors {
        report
            .diagnostics
            .push(Diagnostic::error(&e.path, e.kind.to_string()));
    }
    if prompts
        .get(&config.default_language, DEFAULT_GOODBYE_PROMPT)
        .is_none()
    {
        report.diagnostics.push(Diagnostic::warning(
            &config.prompts_dir,
            format!(
                "no '{DEFAULT_GOODBYE_PROMPT}' prompt in language '{}': callers whose flow runs out hear silence before the hang-up",
                config.default_language
            ),
        ));
    }
    let exists = |lang: &str, name: &str| prompts.get_exact(lang, name).is_some();
    let (flows, flow_diags) =
        load_flows_dir_with(&config.flows_dir, &exists, &config.flow_config());
    let broken_flows: BTreeSet<String> = flow_diags
        .iter()
        .filter(|d| d.is_error())
        .filter_map(|d| d.file.file_stem()?.to_str().map(str::to_owned))
        .collect();
    report.diagnostics.extend(flow_diags);
    let config_file = config
        .path
        .clone()
        .unwrap_or_else(|| Path::new("hotline.yaml").to_path_buf());
    let placed = Placed::read(config);
    for (dialed, flow) in &config.routes {
        if flows.id(flow).is_none() && !broken_flows.contains(flow) {
            let mut d = placed.at(
                &format!("routes.{dialed}"),
                Diagnostic::error(
                    &config_file,
                    format!("route '{dialed}' names flow '{flow}', which is not loaded"),
                ),
            );
            let names = flows.names();
            d.help = Some(if names.is_empty() {
                format!("no flow loaded from {}", config.flows_dir.display())
            } else {
                crate::flow::diagnostic::did_you_mean_help(flow, names.iter().copied())
                    .unwrap_or_else(|| format!("loaded flows: {}", names.join(", ")))
            });
            report.diagnostics.push(d);
        }
    }
    check_queue_prompts(config, &config_file, &placed, &prompts, &mut report);
    check_tls(config, &config_file, &placed, &mut report);
    Loaded {
        prompts,
        flows,
        report,
        broken_flows,
    }
}

/// The configuration file's text and where each of its keys and values is written, for
/// problems found after it was loaded (None when it did not come from a file, or the file
/// cannot be read again: the problems are then reported without a position).
struct Placed(Option<(String, crate::config_text::ConfigText)>);

impl Placed {
    fn read(config: &Config) -> Placed {
        let text = config
            .path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok());
        Placed(text.map(|t| {
            let positions = crate::config_text::positions(&t);
            (t, positions)
        }))
    }

    /// `d` pointing at the value of `key`, or at the nearest key above it.
    fn at(&self, key: &str, d: Diagnostic) -> Diagnostic {
        let Some((text, positions)) = &self.0 else {
            return d;
        };
        let mut path = key;
        loop {
            if let Some(p) = positions.value_at(path) {
                return d.at(text, p.line, p.column, p.width);
            }
            match path.rsplit_once('.') {
                Some((up, _)) => path = up,
                None => return d,
            }
        }
    }
}

/// The `tls:` files parsed as the transport will parse them (the configuration loader only
/// checked that they hold PEM of the right kind): a key that does not fit its certificate,
/// or a broken block, is reported at the key that names the file.
fn check_tls(config: &Config, file: &Path, placed: &Placed, report: &mut Report) {
    let Some(tls) = &config.tls else {
        return;
    };
    if let Err(e) = crate::sip::tls::check(tls) {
        let key = match &e {
            crate::sip::tls::TlsError::Key { .. } => "tls.key",
            crate::sip::tls::TlsError::Ca { .. } | crate::sip::tls::TlsError::Client(_) => "tls.ca",
            crate::sip::tls::TlsError::Certificates { path, .. }
            | crate::sip::tls::TlsError::NoCertificateIn { path }
                if Some(path) == tls.ca.as_ref() && Some(path) != tls.cert.as_ref() =>
            {
                "tls.ca"
            }
            _ => "tls.cert",
        };
        report
            .diagnostics
            .push(placed.at(key, Diagnostic::error(file, e.to_string())));
    }
}

/// A queue's prompts in the default language: one the configuration names and that is
/// missing is an error (the caller would wait in silence); one the engine says for
/// announcements or callbacks is a warning (that part is skipped).
fn check_queue_prompts(
    config: &Config,
    file: &Path,
    placed: &Placed,
    prompts: &PromptLibrary,
    report: &mut Report,
) {
    let lang = &config.default_language;
    for (name, q) in &config.queues {
        let (named, builtin) = q.prompts();
        for p in named {
            if prompts.get_exact(lang, p).is_none() {
                report.diagnostics.push(placed.at(
                    &format!("queues.{name}"),
                    Diagnostic::error(
                        file,
                        format!("queues.{name}: no prompt '{p}' in language '{lang}'"),
                    ),
                ));
            }
        }
        for p in builtin {
            if prompts.get_exact(lang, p).is_none() {
                report.diagnostics.push(Diagnostic::warning(
                    file,
                    format!(
                        "queues.{name}: no prompt '{p}' in language '{lang}': callers in this queue hear that part of its announcements as nothing"
                    ),
                ));
            }
        }
    }
}

/// The report `hotline check` prints for the configuration as a whole: everything the
/// server loads, and the flow tests (checked against the flows, not run).
pub fn check(config: &Config) -> Report {
    check_all(config).report
}

/// `check`, keeping what was loaded (for `hotline check --impact`).
pub fn check_all(config: &Config) -> Loaded {
    let mut loaded = load_all(config);
    if let Some(dir) = &config.tests_dir {
        let mut diags = if dir.is_dir() {
            let mut d = crate::tools::testfile::check_tests_dir(dir, &loaded.flows);
            d.retain(|d| !crate::tools::testfile::names_broken_flow(d, &loaded.broken_flows));
            d
        } else {
            let at = config
                .path
                .clone()
                .unwrap_or_else(|| Path::new("hotline.yaml").to_path_buf());
            vec![
                Diagnostic::error(
                    &at,
                    format!("the flow test folder {} does not exist", dir.display()),
                )
                .with_help("fix 'tests:' or remove it (the default is the 'tests' folder beside the flows)"),
            ]
        };
        loaded.report.diagnostics.append(&mut diags);
    }
    loaded
}

/// Checks the given paths: a configuration file (everything it names), a folder of flows,
/// or single flow files (checked together, with the configuration's prompts). A path that
/// cannot be read is itself a problem in the report.
pub fn check_paths(config: &Config, paths: &[std::path::PathBuf]) -> Report {
    use crate::flow::load::{compile_flows_with, read_flow_file};
    let mut report = Report::default();
    let mut flow_files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let c = Config {
                flows_dir: p.clone(),
                ..config.clone()
            };
            report.diagnostics.extend(load_all(&c).report.diagnostics);
        } else if is_server_config(p) {
            match Config::load(p) {
                Ok(c) => report.diagnostics.extend(check(&c).diagnostics),
                Err(e) => {
                    report.diagnostics.extend(e.diagnostics(p));
                    if let crate::config::ConfigError::Invalid {
                        partial: Some(c), ..
                    } = e
                    {
                        report.diagnostics.extend(check(&c).diagnostics);
                    }
                }
            }
        } else {
            flow_files.push(p.clone());
        }
    }
    if !flow_files.is_empty() {
        let (prompts, _) = PromptLibrary::load_dir(&config.prompts_dir, &config.default_language);
        let exists = |lang: &str, name: &str| prompts.get_exact(lang, name).is_some();
        let mut sources = Vec::new();
        for f in &flow_files {
            match read_flow_file(f) {
                Ok(src) => sources.push(src),
                Err(d) => report.diagnostics.push(d),
            }
        }
        // A flow's `goto` may name a flow beside it: those flows are read as context (only
        // they, so that the rest of the folder changes nothing), and only the named files'
        // problems are reported.
        let named: Vec<_> = flow_files.iter().map(|f| same_file_key(f)).collect();
        let mut diags = Vec::new();
        let mut read = named.clone();
        for _ in 0..8 {
            let (_, d) = compile_flows_with(sources.clone(), &exists, &config.flow_config());
            diags = d;
            let beside = flows_gone_to_beside(&diags, &flow_files, &read);
            if beside.is_empty() {
                break;
            }
            for f in beside {
                if let Ok(src) = read_flow_file(&f) {
                    sources.push(src);
                }
                read.push(same_file_key(&f));
            }
        }
        report.diagnostics.extend(
            diags
                .into_iter()
                .filter(|d| named.contains(&same_file_key(&d.file))),
        );
    }
    report
}

/// The files `flows/NAME.yaml` beside `files` for every "no flow named 'NAME'" in
/// `diags`, not read yet.
fn flows_gone_to_beside(
    diags: &[Diagnostic],
    files: &[std::path::PathBuf],
    read: &[std::path::PathBuf],
) -> Vec<std::path::PathBuf> {
    let mut out: Vec<std::path::PathBuf> = Vec::new();
    for d in diags {
        let Some(name) = d
            .message
            .strip_prefix("no flow named '")
            .and_then(|m| m.strip_suffix('\''))
        else {
            continue;
        };
        for f in files {
            let dir = match f.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => std::path::PathBuf::from("."),
            };
            for ext in ["yaml", "yml"] {
                let candidate = dir.join(format!("{name}.{ext}"));
                let key = same_file_key(&candidate);
                if candidate.is_file()
                    && !read.contains(&key)
                    && !out.iter().any(|o| same_file_key(o) == key)
                {
                    out.push(candidate);
                }
            }
        }
    }
    out
}

/// One spelling per file, so that `flows/main.yaml` and `./flows/main.yaml` match.
fn same_file_key(p: &Path) -> std::path::PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// A server configuration is recognised by its top-level keys, so that `hotline check
/// staging.yaml flows/main.yaml` does the right thing with each.
fn is_server_config(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    text.lines().any(|l| {
        [
            "sip:",
            "rtp:",
            "routes:",
            "prompts:",
            "flows:",
            "schedules:",
            "vars:",
            "admin:",
            "tests:",
        ]
        .iter()
        .any(|k| l.starts_with(k))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_flow_file_is_checked_beside_the_flows_it_goes_to() {
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = std::env::temp_dir().join(format!("hotline-check-one-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("main.yaml"),
            "start: ask\nsteps:\n  ask:\n    goto: other\n    next: hangup\n  late:\n    goto: nowhere\n",
        )
        .unwrap();
        // The flow it goes to has problems of its own: they are not the named file's.
        std::fs::write(
            dir.join("other.yaml"),
            "start: a\nsteps:\n  a:\n    plya: x\n",
        )
        .unwrap();
        let config = Config {
            prompts_dir: repo.join("prompts"),
            ..Config::default()
        };
        let report = check_paths(&config, &[dir.join("main.yaml")]);
        let messages: Vec<_> = report
            .diagnostics
            .iter()
            .map(|d| d.message.clone())
            .collect();
        assert!(
            messages.iter().all(|m| !m.contains("'other'")),
            "the flow beside it is found: {messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.contains("'nowhere'")),
            "a flow that exists nowhere is still an error: {messages:?}"
        );
        assert!(
            report
                .diagnostics
                .iter()
                .all(|d| d.file.ends_with("main.yaml")),
            "only the named file's problems: {messages:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_queues_prompts_are_checked_in_the_default_language() {
        let dir = std::env::temp_dir().join(format!("hotline-check-queue-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("flows")).unwrap();
        std::fs::create_dir_all(dir.join("prompts/en")).unwrap();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts/en");
        for p in ["goodbye", "queue_position"] {
            std::fs::copy(
                repo.join(format!("{p}.wav")),
                dir.join(format!("prompts/en/{p}.wav")),
            )
            .unwrap();
        }
        std::fs::write(
            dir.join("flows/main.yaml"),
            "start: bye\nsteps:\n  bye:\n    play: goodbye\n    next: hangup\n",
        )
        .unwrap();
        let text = r#"
flows: flows
prompts: prompts
queues:
  support:
    music: no_such_music
    announce: [position, wait]
    callback: { key: "1", offer_after_wait: 1m, dial: "sip:{number}@127.0.0.1" }
agents:
  alice: { password: x, queues: { support: 0 } }
"#;
        let config = Config::from_str_at(text, &dir.join("hotline.yaml")).unwrap();
        let report = load_all(&config).report;
        let about_queues: Vec<(Severity, String)> = report
            .diagnostics
            .iter()
            .filter(|d| d.message.starts_with("queues.support"))
            .map(|d| (d.severity, d.message.clone()))
            .collect();
        let errors: Vec<&str> = about_queues
            .iter()
            .filter(|(s, _)| *s == Severity::Error)
            .map(|(_, m)| m.as_str())
            .collect();
        assert_eq!(
            errors,
            ["queues.support: no prompt 'no_such_music' in language 'en'"]
        );
        let warned: Vec<&str> = about_queues
            .iter()
            .filter(|(s, _)| *s == Severity::Warning)
            .filter_map(|(_, m)| m.split('\'').nth(1))
            .collect();
        assert_eq!(
            warned,
            [
                "queue_wait",
                "queue_minutes",
                "queue_callback_offer",
                "queue_callback_intro"
            ]
        );
    }
}
