//! Live reload: editing a flow, a prompt or `hotline.yaml` (or sending SIGHUP) loads
//! everything again and, if the check finds no errors, makes it what new calls get. Calls in
//! progress keep the version they started with. A change that fails the check is refused,
//! its diagnostics are logged, and the running version stays. The watcher watches folders,
//! not files, so that every save is seen, also by editors that rename a new file over the
//! old one.
//!
//! Listeners, the RTP range and the media workers are fixed for the life of the process;
//! a change to them in the file is logged and takes effect at the next start.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use crate::call::{CallDeps, Live};
use crate::config::Config;
use crate::flow::impact::{self, Affected, StepDiff};
use crate::preflight::{self, Report};

/// What a refused reload found.
#[derive(Debug)]
pub struct Refused {
    pub report: Report,
    /// The version that stays live.
    pub running: u64,
}

/// A reload that went live.
#[derive(Debug)]
pub struct Reloaded {
    pub previous: u64,
    pub version: u64,
    /// Steps of the previous version the new one removes or changes.
    pub changed_steps: Vec<StepDiff>,
    /// Calls in progress on such steps (they finish on the version they started with).
    pub affected: Vec<Affected>,
    /// Warnings of the check (errors refuse the reload).
    pub report: Report,
    /// What changed in the queues and agents ("agent dave added"), taken at once.
    pub queue_changes: Vec<String>,
}

impl Reloaded {
    /// `reload: version 4 → 5; 2 calls in progress sit on changed steps: ...`
    pub fn log_line(&self) -> String {
        format!(
            "reload: version {} → {}; {}",
            self.previous,
            self.version,
            impact::summary(&self.affected)
        )
    }
}

/// Reloads from the watcher, SIGHUP and the admin API never interleave, so version
/// numbers are never given twice.
static RELOADING: Mutex<()> = Mutex::new(());

/// Loads everything again from the files the running configuration came from. On success
/// the new version is live; the result says what it changed for the calls in progress.
pub fn reload(deps: &CallDeps) -> Result<Reloaded, Refused> {
    let _one_at_a_time = RELOADING.lock().unwrap_or_else(|e| e.into_inner());
    let result = load_and_replace(deps);
    deps.metrics().reload(result.is_ok());
    if let Err(r) = &result {
        deps.set_refused(Some(crate::call::RefusedEdits {
            at: std::time::SystemTime::now(),
            running: r.running,
            diagnostics: r.report.diagnostics.clone(),
        }));
    }
    result
}

fn load_and_replace(deps: &CallDeps) -> Result<Reloaded, Refused> {
    let current = deps.live();
    let running = current.version;
    let old = &current.config;
    let mut config = match &old.path {
        Some(p) => match Config::load(p) {
            Ok(c) => c,
            Err(e) => {
                let report = Report {
                    diagnostics: e.diagnostics(p),
                };
                return Err(Refused { report, running });
            }
        },
        None => (**old).clone(),
    };
    // What the process bound or built at start cannot change under it.
    for key in crate::config::start_only_changes(old, &config) {
        warn!(
            key,
            "{key} is read only at start: the edit takes effect at the next start"
        );
    }
    config.listen = old.listen.clone();
    config.rtp_ports = old.rtp_ports;
    // The admin API listens where the process started it.
    config.admin = old.admin.clone();
    let loaded = preflight::load_all(&config);
    if loaded.report.has_errors() {
        return Err(Refused {
            report: loaded.report,
            running,
        });
    }
    let queue_changes = match take_queues(deps, old, &config) {
        Ok(c) => c,
        Err(message) => {
            let mut report = loaded.report;
            let file = config.path.clone().unwrap_or_default();
            report
                .diagnostics
                .push(crate::flow::diagnostic::Diagnostic::error(&file, message));
            return Err(Refused { report, running });
        }
    };
    let new_signatures = impact::signatures(&loaded.flows);
    let changed_steps = impact::diff(&impact::signatures(&current.flows), &new_signatures);
    let affected = impact::affected(
        &impact::positions(&deps.registry.snapshot()),
        &new_signatures,
    );
    let version = running.saturating_add(1);
    deps.replace(Live {
        config: Arc::new(config),
        flows: Arc::new(loaded.flows),
        prompts: loaded.prompts,
        version,
        loaded_at: std::time::SystemTime::now(),
    });
    Ok(Reloaded {
        previous: running,
        version,
        changed_steps,
        affected,
        report: loaded.report,
        queue_changes,
    })
}

/// Hands edited `queues:` and `agents:` to the running queues (which refuse a change
/// that would lose a caller or an agent's call) and the agents' secrets to the registrar.
fn take_queues(deps: &CallDeps, old: &Config, new: &Config) -> Result<Vec<String>, String> {
    if new.queues == old.queues && new.agents == old.agents {
        return Ok(Vec::new());
    }
    let offers_callbacks = |c: &Config| c.queues.values().any(|q| q.callback.is_some());
    if offers_callbacks(new) && !offers_callbacks(old) {
        return Err(
            "callback: callback requests are kept on disk from the next start; \
restart to offer callbacks"
                .into(),
        );
    }
    let changes = match deps.acd() {
        Some(acd) => acd.reconfigure_blocking(new.queues.clone(), new.agents.clone())?,
        None if new.queues.is_empty() => Vec::new(),
        None => {
            return Err(
                "queues: the engine started without queues; the first queues take effect at the next start"
                    .into(),
            );
        }
    };
    if let Some(c) = deps.credentials() {
        c.replace(crate::server::credentials_from_config(new));
    }
    Ok(changes)
}

/// Reloads and logs the result, for the watcher and SIGHUP.
pub fn reload_and_log(deps: &CallDeps, why: &str) {
    match reload(deps) {
        Ok(r) => log_reloaded(&r, why),
        Err(r) => log_refused(&r, why),
    }
}

/// Logs a reload that went live: its warnings, and the calls on changed steps.
pub fn log_reloaded(r: &Reloaded, why: &str) {
    for change in &r.queue_changes {
        info!(%change, "queues and agents");
    }
    for d in &r.report.diagnostics {
        warn!("{d}");
    }
    info!(
        version = r.version,
        trigger = why,
        "reloaded flows, prompts and routes"
    );
    info!("{}", r.log_line());
}

/// Logs a refused reload with its diagnostics.
pub fn log_refused(r: &Refused, why: &str) {
    for d in &r.report.diagnostics {
        error!("{d}");
    }
    error!(
        trigger = why,
        version = r.running,
        "reload refused ({}); the running version stays",
        r.report.summary()
    );
}

/// Reloads on a blocking thread: loading prompts is slow, and the queues answer the
/// reload over a channel.
async fn reload_off_the_runtime(deps: &Arc<CallDeps>, why: &'static str) {
    let deps = deps.clone();
    if let Err(e) = tokio::task::spawn_blocking(move || reload_and_log(&deps, why)).await {
        error!(error = %e, "reload failed");
    }
}

/// What the watcher looks at for a configuration. The folder of `hotline.yaml`, not the
/// file: an editor that saves by writing a new file and renaming it over the old one (vim,
/// `sed -i`, configuration-management tools) replaces the file, and a watch on the file
/// would go with the old one. The flow and prompt folders are watched whole.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Watched {
    /// The configuration file, absolute.
    config: Option<PathBuf>,
    flows: PathBuf,
    prompts: PathBuf,
}

impl Watched {
    fn of(config: &Config) -> Watched {
        let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        Watched {
            config: config.path.as_deref().map(absolute),
            flows: absolute(&config.flows_dir),
            prompts: absolute(&config.prompts_dir),
        }
    }

    /// The folders to watch, and whether with their subfolders.
    fn folders(&self) -> Vec<(PathBuf, bool)> {
        let mut v = vec![(self.flows.clone(), true), (self.prompts.clone(), true)];
        if let Some(parent) = self.config.as_deref().and_then(Path::parent) {
            v.push((parent.to_path_buf(), false));
        }
        v.sort();
        v.dedup();
        v
    }

    /// Whether a change at `path` can change what a reload loads: the configuration file,
    /// a flow file (`.yaml`, `.yml`) or a prompt (`.wav`). Editors' scratch files (hidden,
    /// backups, swap files, vim's `4913` probe) and everything else beside the
    /// configuration are not.
    fn cares_about(&self, path: &Path) -> bool {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            return false;
        };
        let scratch = name.starts_with('.')
            || name.ends_with('~')
            || name.bytes().all(|b| b.is_ascii_digit());
        if scratch {
            return false;
        }
        if self.config.as_deref() == Some(path) {
            return true;
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let ext = ext.as_deref();
        (path.starts_with(&self.flows) && matches!(ext, Some("yaml" | "yml")))
            || (path.starts_with(&self.prompts) && ext == Some("wav"))
    }
}

/// Moves `watcher` from the folders of `old` to those of `new`.
fn rewatch(watcher: &mut impl notify::Watcher, old: Option<&Watched>, new: &Watched) {
    use notify::RecursiveMode;
    let before = old.map(Watched::folders).unwrap_or_default();
    let after = new.folders();
    for (dir, _) in before.iter().filter(|f| !after.contains(f)) {
        let _ = watcher.unwatch(dir);
    }
    for (dir, recursive) in after.iter().filter(|f| !before.contains(f)) {
        let mode = if *recursive {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        match watcher.watch(dir, mode) {
            Ok(()) => debug!(folder = %dir.display(), "watching for edits"),
            Err(e) => {
                warn!(folder = %dir.display(), error = %e, "cannot watch; reload with SIGHUP")
            }
        }
    }
}

/// Watches the configuration's files and SIGHUP until the process ends. A burst of file
/// events (an editor writes a file in several steps, a deployment copies many) is
/// gathered until `settle` passes without one (at most ten times `settle`), then
/// reloaded once.
pub async fn watch(deps: Arc<CallDeps>, settle: Duration) {
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let mut current = Watched::of(&deps.live().config);
    // The watcher's thread filters with what is watched now (a reload may move folders).
    let shared = Arc::new(Mutex::new(current.clone()));
    let filter = shared.clone();
    let mut watcher =
        match notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let relevant = match res {
                Ok(ev) if matches!(ev.kind, notify::EventKind::Access(_)) => false,
                Ok(ev) => {
                    let w = filter.lock().unwrap_or_else(|e| e.into_inner());
                    ev.need_rescan() || ev.paths.iter().any(|p| w.cares_about(p))
                }
                // Events were lost (a full queue): reload to be sure.
                Err(_) => true,
            };
            if relevant {
                let _ = tx.send(());
            }
        }) {
            Ok(w) => Some(w),
            Err(e) => {
                warn!(error = %e, "cannot watch files; reload with SIGHUP");
                None
            }
        };
    if let Some(w) = watcher.as_mut() {
        rewatch(w, None, &current);
    }
    let mut hup = hangup_signal();
    loop {
        tokio::select! {
            ev = rx.recv() => {
                if ev.is_none() {
                    return;
                }
                settle_down(&mut rx, settle).await;
                reload_off_the_runtime(&deps, "file change").await;
            }
            _ = next_hangup(&mut hup) => reload_off_the_runtime(&deps, "SIGHUP").await,
        }
        let now_watched = Watched::of(&deps.live().config);
        if now_watched != current {
            if let Some(w) = watcher.as_mut() {
                rewatch(w, Some(&current), &now_watched);
            }
            *shared.lock().unwrap_or_else(|e| e.into_inner()) = now_watched.clone();
            current = now_watched;
        }
    }
}

/// Waits until `settle` passes with no further event on `rx`, at most ten times `settle`.
async fn settle_down(rx: &mut mpsc::UnboundedReceiver<()>, settle: Duration) {
    let until = tokio::time::Instant::now() + settle * 10;
    loop {
        tokio::time::sleep(settle).await;
        let mut more = false;
        while rx.try_recv().is_ok() {
            more = true;
        }
        if !more || tokio::time::Instant::now() >= until {
            return;
        }
    }
}

#[cfg(unix)]
fn hangup_signal() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(unix)]
async fn next_hangup(s: &mut Option<tokio::signal::unix::Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}
