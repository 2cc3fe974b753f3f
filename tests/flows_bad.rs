//! `hotline check` against `tests/flows_bad/`: one flow file per mistake, each stating in
//! its header exactly the diagnostics it must give:
//!
//! ```text
//! # Mistake: a menu key misspelt.
//! # expect: error: unknown key 'timout' @ 10:7
//! #   help: did you mean 'timeout'?
//! ```
//!
//! Each file is checked the way `hotline check FILE` checks it (with the configuration
//! `flows_bad/support/hotline.yaml`: its prompts, one schedule, one variable, and the flow
//! `support/shared_menu.yaml` as a goto target), under a time limit so a hang fails the
//! test. `HOTLINE_BLESS=1 cargo test --test flows_bad` rewrites the headers from what the
//! checker says now (then read the diff).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hotline::config::Config;
use hotline::flow::diagnostic::{Diagnostic, Severity};
use hotline::flow::load::MAX_FLOW_FILE_BYTES;
use hotline::preflight::{Report, check_paths};

/// Longer than any check of one file takes, even on a loaded machine.
const LIMIT: Duration = Duration::from_secs(20);

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/flows_bad")
}

fn config() -> Config {
    Config::load(&dir().join("support/hotline.yaml")).expect("support/hotline.yaml")
}

fn shared_menu() -> PathBuf {
    dir().join("support/shared_menu.yaml")
}

/// Runs `f` on its own thread; a hang or a panic fails the test with `what`.
fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(LIMIT) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: no answer within {LIMIT:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: the check panicked"),
    }
}

/// The report of `hotline check FILE support/shared_menu.yaml`.
fn check_file(path: &Path) -> Report {
    let (config, paths) = (config(), vec![path.to_path_buf(), shared_menu()]);
    bounded(&path.display().to_string(), move || {
        check_paths(&config, &paths)
    })
}

#[derive(Debug, PartialEq)]
struct Expect {
    severity: Severity,
    message: String,
    line: u32,
    column: u32,
    help: Option<String>,
}

impl Expect {
    fn of(d: &Diagnostic) -> Self {
        Expect {
            severity: d.severity,
            message: d.message.clone(),
            line: d.line,
            column: d.column,
            help: d.help.clone(),
        }
    }

    fn header_lines(&self) -> Vec<String> {
        let mut v = vec![format!(
            "# expect: {}: {} @ {}:{}",
            self.severity, self.message, self.line, self.column
        )];
        if let Some(h) = &self.help {
            v.push(format!("#   help: {h}"));
        }
        v
    }
}

/// Reads the `# expect:` / `#   help:` lines of a file's header.
fn expectations(text: &str) -> Vec<Expect> {
    let mut out: Vec<Expect> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# expect: ") {
            let (sev, rest) = rest.split_once(": ").expect("'severity: message'");
            let severity = match sev {
                "error" => Severity::Error,
                "warning" => Severity::Warning,
                other => panic!("unknown severity '{other}'"),
            };
            let (message, pos) = rest.rsplit_once(" @ ").expect("'@ line:column'");
            let (l, c) = pos.split_once(':').expect("line:column");
            out.push(Expect {
                severity,
                message: message.to_owned(),
                line: l.parse().expect("line"),
                column: c.parse().expect("column"),
                help: None,
            });
        } else if let Some(h) = line.strip_prefix("#   help: ") {
            out.last_mut().expect("help after an expect").help = Some(h.to_owned());
        }
    }
    out
}

/// Replaces the header's expectations (kept right after its first line) with `got`.
fn bless(path: &Path, text: &str, got: &[Expect]) {
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("# expect: ") && !l.starts_with("#   help: "))
        .collect();
    let mut lines: Vec<String> = Vec::new();
    lines.extend(kept.first().map(|s| s.to_string()));
    lines.extend(got.iter().flat_map(Expect::header_lines));
    lines.extend(kept.iter().skip(1).map(|s| s.to_string()));
    std::fs::write(path, lines.join("\n") + "\n").expect("bless");
}

fn bad_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("tests/flows_bad")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_bad_flow_gives_exactly_its_diagnostics() {
    let blessing = std::env::var_os("HOTLINE_BLESS").is_some();
    let files = bad_files();
    assert!(files.len() >= 70, "only {} files", files.len());
    let mut failures = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable");
        let started = Instant::now();
        let report = check_file(&path);
        let elapsed = started.elapsed();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        assert!(
            elapsed < Duration::from_secs(5),
            "{name}: the check took {elapsed:?}"
        );
        let (mine, others): (Vec<&Diagnostic>, Vec<&Diagnostic>) =
            report.diagnostics.iter().partition(|d| d.file == path);
        assert!(others.is_empty(), "{name}: {others:?}");
        let got: Vec<Expect> = mine.iter().map(|d| Expect::of(d)).collect();
        assert!(!got.is_empty(), "{name}: no diagnostic at all");
        if blessing {
            bless(&path, &text, &got);
            continue;
        }
        let want = expectations(&text);
        if got != want {
            failures.push(format!(
                "{name}:\n  header says:\n{}\n  check says:\n{}\n{}",
                want.iter()
                    .flat_map(Expect::header_lines)
                    .map(|l| format!("    {l}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                got.iter()
                    .flat_map(Expect::header_lines)
                    .map(|l| format!("    {l}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                mine.iter().map(|d| d.to_string()).collect::<String>()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every diagnostic with a position shows the line it points at, so the `^^^` marks the
/// right place in the rustc-style output.
#[test]
fn positions_point_into_the_file() {
    for path in bad_files() {
        let text = std::fs::read_to_string(&path).expect("readable");
        for d in check_file(&path).diagnostics {
            if d.line == 0 {
                continue;
            }
            let line = text.lines().nth(d.line as usize - 1);
            assert_eq!(
                d.source_line.as_deref(),
                line,
                "{}: {}",
                path.display(),
                d.message
            );
            assert!(
                d.column as usize <= line.map_or(0, |l| l.chars().count()) + 1,
                "{}: column {} beyond the line",
                path.display(),
                d.column
            );
        }
    }
}

/// A temp folder removed at the end of the test.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("hotline-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_50_mb_file_is_refused_quickly_with_its_size() {
    let tmp = TempDir::new("flows-bad-huge");
    let path = tmp.0.join("huge.yaml");
    // Real text, not a sparse file: every byte would be parsed if the limit were not applied
    // before reading.
    let line = "  step: { play: welcome, next: step }\n";
    let mut text = String::from("steps:\n");
    while text.len() < 50 * 1024 * 1024 {
        text.push_str(line);
    }
    std::fs::write(&path, &text).expect("write 50 MB");
    let len = text.len();
    drop(text);
    let started = Instant::now();
    let report = check_file(&path);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    let got: Vec<Expect> = report.diagnostics.iter().map(Expect::of).collect();
    assert_eq!(
        got,
        [Expect {
            severity: Severity::Error,
            message: format!(
                "the file is {len} bytes; a flow file may have at most {MAX_FLOW_FILE_BYTES} bytes"
            ),
            line: 0,
            column: 0,
            help: Some("split it into several flows joined by 'goto'".to_owned()),
        }]
    );
}

fn hotline(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hotline"))
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("run hotline");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn path_arg(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn the_command_prints_rustc_style_and_fails_on_errors() {
    let config = path_arg(&dir().join("support/hotline.yaml"));
    let file = dir().join("unknown_key.yaml");
    let (code, err) = hotline(&[
        "check",
        "--config",
        &config,
        &path_arg(&file),
        &path_arg(&shared_menu()),
    ]);
    assert_eq!(code, 1, "{err}");
    let source = std::fs::read_to_string(&file).expect("file");
    let want = expectations(&source);
    let line = want[0].line;
    let text_line = source.lines().nth(line as usize - 1).expect("line");
    let gutter = " ".repeat(line.to_string().len());
    assert_eq!(
        err,
        format!(
            "error: unknown key 'timout'\n{gutter}--> {}:{line}:7\n{gutter} |\n{line} | {text_line}\n{gutter} |       ^^^^^^\nhelp: did you mean 'timeout'?\n\n\n1 error(s), 0 warning(s)\n",
            file.display()
        )
    );
}

#[test]
fn warnings_fail_only_with_deny_warnings() {
    let config = path_arg(&dir().join("support/hotline.yaml"));
    let file = path_arg(&dir().join("unreachable_step.yaml"));
    let shared = path_arg(&shared_menu());
    let (code, err) = hotline(&["check", "--config", &config, &file, &shared]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.starts_with("warning: step 'forgotten' is never reached\n"),
        "{err}"
    );
    assert!(err.ends_with("0 error(s), 1 warning(s)\n"), "{err}");
    let (code, err) = hotline(&[
        "check",
        "--deny-warnings",
        "--config",
        &config,
        &file,
        &shared,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("warnings are denied"), "{err}");
}

#[test]
fn the_alias_bomb_is_refused_by_the_command_too() {
    let config = path_arg(&dir().join("support/hotline.yaml"));
    let file = path_arg(&dir().join("alias_bomb.yaml"));
    let started = Instant::now();
    let (code, err) = hotline(&["check", "--config", &config, &file]);
    assert!(started.elapsed() < LIMIT);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("YAML aliases (*name) expand to too much for a flow file"),
        "{err}"
    );
}

/// `hotline check` with `flow_tests/hotline.yaml` checks its flow tests (`tests: cases`)
/// against its flow without running them; each file of `flow_tests/cases/` states its
/// diagnostics in its header like the bad flows.
#[test]
fn flow_tests_are_checked_not_run() {
    let blessing = std::env::var_os("HOTLINE_BLESS").is_some();
    let root = dir().join("flow_tests");
    let config = Config::load(&root.join("hotline.yaml")).expect("flow_tests/hotline.yaml");
    assert_eq!(
        config.tests_dir.as_deref(),
        Some(root.join("cases").as_path())
    );
    let report = bounded("check of flow_tests", move || {
        hotline::preflight::check(&config)
    });
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("cases"))
        .expect("cases")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    assert!(files.len() >= 10);
    let mut seen = 0;
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("readable");
        let mine: Vec<&Diagnostic> = report
            .diagnostics
            .iter()
            .filter(|d| &d.file == path)
            .collect();
        seen += mine.len();
        let got: Vec<Expect> = mine.iter().map(|d| Expect::of(d)).collect();
        if blessing {
            bless(path, &text, &got);
            continue;
        }
        if got != expectations(&text) {
            failures.push(format!(
                "{}:\n{}",
                path.display(),
                mine.iter().map(|d| d.to_string()).collect::<String>()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        seen,
        report.diagnostics.len(),
        "only the test files have problems: {:?}",
        report.diagnostics
    );
}

#[test]
fn the_command_reports_flow_tests_and_fails() {
    let config = path_arg(&dir().join("flow_tests/hotline.yaml"));
    let (code, err) = hotline(&["check", "--config", &config]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("error: flow 'shopp' is not loaded\n"), "{err}");
    assert!(err.contains("help: did you mean 'shop'?\n"), "{err}");
    assert!(err.contains("cases/unknown_prompt.yaml:8:9\n"), "{err}");
}

/// `flows_bad/configs/`: configuration files, each stating in its header every diagnostic
/// its load gives, in one run, labelled with the file's name.
#[test]
fn configurations_report_every_problem_at_its_place() {
    let blessing = std::env::var_os("HOTLINE_BLESS").is_some();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir().join("configs"))
        .expect("configs")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    assert!(files.len() >= 5);
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("readable");
        let diagnostics = match Config::load(path) {
            Ok(_) => Vec::new(),
            Err(e) => e.diagnostics(path),
        };
        assert!(
            diagnostics.iter().all(|d| &d.file == path && d.line > 0),
            "{}: {diagnostics:?}",
            path.display()
        );
        let got: Vec<Expect> = diagnostics.iter().map(Expect::of).collect();
        if blessing {
            bless(path, &text, &got);
            continue;
        }
        if got != expectations(&text) {
            failures.push(format!(
                "{}:\n{}",
                path.display(),
                diagnostics
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<String>()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_command_reports_three_mistakes_of_the_configuration_at_once_and_exits_1() {
    let config = dir().join("configs/three_mistakes.yaml");
    let (code, err) = hotline(&["check", "--config", &path_arg(&config)]);
    assert_eq!(code, 1, "{err}");
    for at in [":7:3\n", ":9:10\n", ":11:11\n"] {
        assert!(
            err.contains(&format!("--> {}{at}", config.display())),
            "{at}: {err}"
        );
    }
    assert!(err.contains("help: did you mean 'listen'?"), "{err}");
    assert!(!err.contains("<input>"), "{err}");
}

/// One step name misspelt in a flow that a route and two flow tests name: one error, at
/// the misspelling, with the name meant; no route error, no error per test file.
#[test]
fn a_misspelt_step_name_is_one_error_at_the_misspelling() {
    let config = dir().join("misspelt_step/hotline.yaml");
    let flow = dir().join("misspelt_step/flows/main.yaml");
    let (code, err) = hotline(&["check", "--config", &path_arg(&config)]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.matches("error: ").count(), 1, "{err}");
    assert!(
        err.starts_with("error: no step named 'main_mneu'\n"),
        "{err}"
    );
    assert!(
        err.contains(&format!("--> {}:5:11\n", flow.display())),
        "{err}"
    );
    assert!(err.contains("help: did you mean 'main_menu'?"), "{err}");
    assert!(err.ends_with("1 error(s), 0 warning(s)\n"), "{err}");

    let out = Command::new(env!("CARGO_BIN_EXE_hotline"))
        .args(["test", "--config", &path_arg(&config)])
        .env("RUST_LOG", "off")
        .output()
        .expect("run hotline");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(
        text.matches("no step named 'main_mneu'").count(),
        1,
        "{text}"
    );
    assert!(!text.contains("is not loaded"), "{text}");
}

#[test]
fn a_route_to_a_flow_that_does_not_exist_is_reported_where_it_is_written() {
    let config = dir().join("misrouted/hotline.yaml");
    let (code, err) = hotline(&["check", "--config", &path_arg(&config)]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.starts_with("error: route '*' names flow 'shpo', which is not loaded\n"),
        "{err}"
    );
    assert!(
        err.contains(&format!("--> {}:5:8\n", config.display())),
        "{err}"
    );
    assert!(err.contains("help: did you mean 'shop'?"), "{err}");
}
