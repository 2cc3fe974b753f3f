//! The load tool, `hotline load`: places many concurrent scripted calls against a hotline
//! (one it starts itself, or one already running) and measures what callers would notice
//! (set-up failures, lost keys, the regularity of the audio) and what it costs the engine
//! (CPU over a window where every call is up, memory).
//!
//! It owns the conduct of a run: checking the options, starting the engine, ramping the
//! calls, picking the steady-state window, and the verdict. One call's script is in
//! `script`, /proc reading in `procfs`, the figures and their printing in `report`. The
//! audio of every call rides on the scripted caller's shared media clock, so the tool's
//! own cost stays one thread waking every 20 ms plus one small task per call.

pub mod engine;
pub mod error;
pub mod procfs;
pub mod queue;
pub mod report;
pub mod sched;
pub mod script;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub use error::LoadError;
use error::{Context, bail};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::caller::media::clock_stats;
use crate::config::{Config, PortRange};
use crate::media::dtmf::Key;
use crate::media::g711::Codec;
use crate::media::prompt::{Prompt, PromptLibrary};
use engine::{Engine, SpawnOptions};
use procfs::{CpuSnapshot, MachineCpu, Memory};
use report::{Histogram, Recovery, Spread, Summary};
use script::{CallResult, Progress, Script};

/// Options of `hotline load`.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadArgs {
    /// Concurrent calls to place.
    #[arg(long, default_value_t = 100)]
    pub calls: usize,
    /// New calls per second while ramping up.
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// Seconds each call listens (from its 200 OK to its BYE). Must exceed the ramp
    /// (calls / rate) by a few seconds so that all calls are up together for a while.
    #[arg(long, default_value_t = 20.0)]
    pub hold: f64,
    /// Address of a hotline that is already running; without it the tool starts one.
    #[arg(long)]
    pub target: Option<SocketAddr>,
    /// Process id of the running hotline given with --target, for its CPU and memory.
    #[arg(long, requires = "target")]
    pub engine_pid: Option<u32>,
    /// The server configuration (the started engine uses it; its prompts are what the
    /// calls listen for).
    #[arg(long, short, env = "HOTLINE_CONFIG", default_value = "hotline.yaml")]
    pub config: PathBuf,
    /// Loopback SIP port of the engine the tool starts.
    #[arg(long, default_value_t = 25060)]
    pub sip_port: u16,
    /// RTP port range of the engine the tool starts (two ports per call; keep it clear of
    /// the kernel's ephemeral range, where the callers' sockets land).
    #[arg(long, default_value = "20000-29999")]
    pub rtp_ports: PortRange,
    /// Media worker threads of the engine the tool starts.
    #[arg(long, default_value_t = 1)]
    pub media_workers: usize,
    /// Where the started engine's output goes (default: a file in the temp directory).
    #[arg(long)]
    pub engine_log: Option<PathBuf>,
    /// The number dialled (the Request-URI user).
    #[arg(long, default_value = "hotline")]
    pub user: String,
    /// Language keys and the language of the menu each must lead to; call i uses entry
    /// i modulo their number.
    #[arg(long, default_value = "1=en,2=de")]
    pub language_keys: String,
    /// Seconds after the welcome starts before the language key is pressed.
    #[arg(long, default_value_t = 2.0)]
    pub first_key_after: f64,
    /// Seconds between the later key presses (the menu's repeat key).
    #[arg(long, default_value_t = 5.0)]
    pub key_interval: f64,
    /// The key that replays the menu.
    #[arg(long, default_value = "9")]
    pub repeat_key: char,
    /// A key is lost when the expected prompt has not started this many seconds after it.
    #[arg(long, default_value_t = 3.0)]
    pub key_timeout: f64,
    /// Seconds at the start of each call left out of the gap figures.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Fail when the 99th percentile of the RTP inter-arrival gap exceeds this.
    #[arg(long, default_value_t = 25.0)]
    pub max_p99_gap_ms: f64,
    /// Print the figures as one JSON line on stdout (the table goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Run the engine's media threads and the callers' media thread under SCHED_FIFO at
    /// this priority (1-99), so that other work on the machine cannot delay their ticks.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=99))]
    pub realtime: Option<i32>,
    /// Seconds to wait for the engine to answer OPTIONS.
    #[arg(long, default_value_t = 20.0)]
    pub ready_timeout: f64,
    /// Queue mode: this many agents (`agent1`..) register with an engine the tool starts
    /// with a one-queue configuration of its own, and every call goes through the queue to
    /// an agent, who answers at once; both sides talk for `--hold` seconds across the
    /// bridge. Without it the calls follow the menu script.
    #[arg(long, conflicts_with = "target")]
    pub agents: Option<usize>,
    /// The queue's strategy in queue mode (longest_idle, round_robin or fewest_calls).
    #[arg(long, default_value = "round_robin", requires = "agents")]
    pub strategy: String,
    /// Overload mode: the engine may refuse the ramp's calls with 503 (they are counted
    /// apart, not as failures). Once the ramp is over, the tool waits the longest
    /// Retry-After those refusals carried, then places this many more calls at
    /// --recovery-rate, every one of which must be admitted and served.
    #[arg(long, default_value_t = 0, conflicts_with = "agents")]
    pub recovery_calls: usize,
    /// New calls per second of the recovery calls.
    #[arg(long, default_value_t = 10.0)]
    pub recovery_rate: f64,
}

fn seconds(name: &str, v: f64) -> Result<Duration, LoadError> {
    if !v.is_finite() || !(0.0..=86_400.0).contains(&v) {
        bail!("--{name} must be between 0 and 86400 seconds, found {v}");
    }
    Ok(Duration::from_secs_f64(v))
}

/// Parses `1=en,2=de`.
fn parse_language_keys(s: &str) -> Result<Vec<(Key, String)>, LoadError> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, lang) = part
            .split_once('=')
            .with_context(|| format!("expected KEY=LANGUAGE in --language-keys, found '{part}'"))?;
        let mut chars = k.trim().chars();
        let key = match (chars.next().and_then(Key::from_char), chars.next()) {
            (Some(key), None) => key,
            _ => bail!("expected one keypad key before '=' in '{part}'"),
        };
        out.push((key, lang.trim().to_string()));
    }
    if out.is_empty() {
        bail!("--language-keys names no key");
    }
    Ok(out)
}

/// A prompt is recognised by its first frame; that frame must not occur anywhere else the
/// caller could hear it in the meantime, or a key could be judged by the wrong prompt.
fn check_recognisable(p: &Prompt, others: &[&Prompt]) -> Result<(), LoadError> {
    let codec = Codec::Pcmu;
    let first = p
        .frame(codec, 0)
        .with_context(|| format!("prompt {} is empty", p.name()))?;
    if *first == [codec.silence_byte(); 160] {
        bail!(
            "prompt {} starts with digital silence, so its start cannot be heard",
            p.name()
        );
    }
    if p.frames(codec).skip(1).any(|f| f == first) {
        bail!("prompt {}'s first frame recurs inside it", p.name());
    }
    for o in others {
        if o.frames(codec).any(|f| f == first) {
            bail!(
                "prompt {}'s first frame also occurs in {}: it cannot be told apart",
                p.name(),
                o.name()
            );
        }
    }
    Ok(())
}

/// The prompts the script listens for, checked to be recognisable.
fn script_prompts(
    lib: &PromptLibrary,
    keys: &[(Key, String)],
) -> Result<(Prompt, Vec<(Key, Prompt)>), LoadError> {
    let get = |lang: &str, name: &str| {
        lib.get_exact(lang, name)
            .cloned()
            .with_context(|| format!("no prompt {name} in language {lang}"))
    };
    let welcome = get(lib.default_language(), "welcome")?;
    let choose = get(lib.default_language(), "choose_language")?;
    let mut menus = Vec::new();
    for (k, lang) in keys {
        menus.push((*k, get(lang, "main_menu")?));
    }
    for (i, (_, m)) in menus.iter().enumerate() {
        let mut others: Vec<&Prompt> = vec![&welcome, &choose];
        others.extend(
            menus
                .iter()
                .enumerate()
                .filter(|(j, (_, o))| *j != i && !o.shares_data_with(m))
                .map(|(_, (_, o))| o),
        );
        check_recognisable(m, &others)?;
    }
    check_recognisable(&welcome, &[])?;
    Ok((welcome, menus))
}

/// Runs the load and prints its figures; returns whether every check held.
pub async fn run(args: LoadArgs) -> Result<bool, LoadError> {
    crate::caller::media::connect_sockets(true);
    if let Some(agents) = args.agents {
        return queue::run(&args, agents).await;
    }
    let json = args.json;
    let summary = measure(args).await?;
    report::print(&summary.table(), json.then(|| summary.json()))?;
    Ok(summary.passed)
}

/// Runs the load of the menu script (not queue mode) and judges it; prints nothing.
pub async fn measure(args: LoadArgs) -> Result<Summary, LoadError> {
    if args.calls == 0 {
        bail!("--calls must be at least 1");
    }
    if !args.rate.is_finite() || args.rate <= 0.0 {
        bail!("--rate must be a positive number of calls per second");
    }
    if !args.recovery_rate.is_finite() || args.recovery_rate <= 0.0 {
        bail!("--recovery-rate must be a positive number of calls per second");
    }
    let hold = seconds("hold", args.hold)?;
    let first_key_after = seconds("first-key-after", args.first_key_after)?;
    let key_interval = seconds("key-interval", args.key_interval)?.max(Duration::from_millis(500));
    let key_timeout = seconds("key-timeout", args.key_timeout)?;
    let warmup = seconds("warmup", args.warmup)?;
    let ready_timeout = seconds("ready-timeout", args.ready_timeout)?;
    let ramp = Duration::from_secs_f64((args.calls - 1) as f64 / args.rate);
    if hold < first_key_after + key_timeout + Duration::from_secs(4) {
        bail!(
            "--hold {} s leaves no time to press a key and hear the answer; give at least {} s",
            args.hold,
            (first_key_after + key_timeout + Duration::from_secs(4)).as_secs_f64()
        );
    }
    if hold < ramp + warmup + Duration::from_secs(4) {
        bail!(
            "--hold {} s must exceed the ramp ({:.1} s = calls / rate) plus the warm-up by 4 s, \
             so that all calls are up together for a while; raise --hold or --rate",
            args.hold,
            ramp.as_secs_f64()
        );
    }
    let repeat_key = Key::from_char(args.repeat_key)
        .with_context(|| format!("--repeat-key '{}' is not a keypad key", args.repeat_key))?;
    let language_keys = parse_language_keys(&args.language_keys)?;

    // Each call holds a SIP and an RTP socket here; the engine one RTP socket.
    let wanted = ((args.calls + args.recovery_calls) as u64) * 3 + 512;
    let nofile = procfs::raise_open_files(wanted).context("raising the open-files limit")?;
    if nofile < (args.calls as u64) * 2 + 64 {
        bail!(
            "the open-files limit is {nofile}, too low for {} calls (raise `ulimit -Hn`)",
            args.calls
        );
    }

    let config =
        Config::load(&args.config).with_context(|| format!("reading {}", args.config.display()))?;
    let prompts_dir = config.prompts_dir.clone();
    let default_language = config.default_language.clone();
    let (lib, errors) = tokio::task::spawn_blocking(move || {
        PromptLibrary::load_dir(&prompts_dir, &default_language)
    })
    .await
    .context("loading prompts")?;
    for e in &errors {
        warn!("{e}");
    }
    let (welcome, languages) = script_prompts(&lib, &language_keys)?;

    let mut engine = match args.target {
        Some(t) => Engine::attach(t, args.engine_pid),
        None => {
            let range = args.rtp_ports;
            // The engine hands out the even ports of the range (the odd one above is RTCP's).
            let first_even = range.first.saturating_add(range.first % 2);
            let pairs = (first_even..range.last).step_by(2).count();
            if pairs < args.calls {
                bail!(
                    "--rtp-ports {range} holds {pairs} calls (two ports each); {} wanted",
                    args.calls
                );
            }
            if let Some((lo, hi)) = procfs::ephemeral_ports()
                && range.first <= hi
                && lo <= range.last
            {
                bail!(
                    "--rtp-ports {range} overlaps the kernel's ephemeral ports {lo}-{hi}, \
                     where the callers' own sockets are bound"
                );
            }
            let config_path = std::fs::canonicalize(&args.config)
                .with_context(|| format!("finding {}", args.config.display()))?;
            let log = args.engine_log.clone().unwrap_or_else(|| {
                std::env::temp_dir().join(format!("hotline-load-engine-{}.log", std::process::id()))
            });
            Engine::spawn(&SpawnOptions {
                config: config_path,
                sip: SocketAddr::new(Ipv4Addr::LOCALHOST.into(), args.sip_port),
                rtp_ports: range,
                media_workers: args.media_workers,
                log,
            })?
        }
    };
    let took = engine.wait_ready(ready_timeout).await?;
    info!(target = %engine.sip, pid = ?engine.pid, ready_in = ?took, "engine answers");
    if let Some(prio) = args.realtime {
        let pid = engine
            .pid
            .context("--realtime needs the engine's process (--engine-pid with --target)")?;
        let n = sched::realtime_threads(Some(pid), "media-", prio)
            .context("setting the engine's media threads to SCHED_FIFO")?;
        crate::caller::media::start_clock();
        let m = sched::realtime_threads(None, "caller-media", prio)
            .context("setting the callers' media thread to SCHED_FIFO")?;
        info!(
            engine_threads = n,
            caller_threads = m,
            prio,
            "real-time media threads"
        );
    }

    let script = Arc::new(Script {
        target: engine.sip,
        user: args.user.clone(),
        hold,
        first_key_after,
        key_interval,
        key_timeout,
        warmup,
        setup_timeout: Duration::from_secs(40),
        welcome,
        languages,
        repeat_key,
    });
    let outcome = conduct(&args, &mut engine, script, ramp).await;
    engine.stop(Duration::from_secs(5)).await;
    let mut summary = outcome?;
    summary.judge();
    Ok(summary)
}

/// Ramps the calls, measures the steady-state window, gathers every call's result.
async fn conduct(
    args: &LoadArgs,
    engine: &mut Engine,
    script: Arc<Script>,
    ramp: Duration,
) -> Result<Summary, LoadError> {
    let pid = engine.pid;
    let (cpu_model, cpus) = procfs::machine();
    let idle = pid.and_then(|p| Memory::read(Some(p)));
    let progress = Arc::new(Progress::default());
    let start = Instant::now();
    // Bounded however the engine behaves: set-up (40 s), the hold, BYE (12 s), slack.
    let deadline = start + ramp + script.hold + Duration::from_secs(70);
    let calls = args.calls;
    let rate = args.rate;
    let ramp_task = {
        let script = script.clone();
        let progress = progress.clone();
        tokio::spawn(ramp_script(calls, rate, start, deadline, script, progress))
    };

    let recovery_task = (args.recovery_calls > 0).then(|| {
        tokio::spawn(recover(
            args.recovery_calls,
            args.recovery_rate,
            start + ramp,
            script.clone(),
            progress.clone(),
        ))
    });

    let mut peak_rss: Option<u64> = None;
    let sample_rss = |peak: &mut Option<u64>| {
        if let Some(m) = pid.and_then(|p| Memory::read(Some(p))) {
            *peak = Some(peak.map_or(m.rss_kib, |x| x.max(m.rss_kib)));
        }
    };

    // Phase 1: until every call's set-up has ended (or it is too late for a window).
    loop {
        sample_rss(&mut peak_rss);
        if progress.settled.load(Ordering::Acquire) >= calls {
            break;
        }
        if progress
            .first_end()
            .is_some_and(|e| Instant::now() + script.warmup + Duration::from_secs(1) >= e)
            || Instant::now() >= deadline
        {
            warn!("calls were still being set up when the first ones ended; no clean window");
            break;
        }
        if let Some(status) = engine.exited() {
            warn!(%status, "the engine exited during the ramp");
            break;
        }
        tokio::select! {
            _ = progress.changed.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
    info!(
        up = progress.up.load(Ordering::Acquire),
        after = ?start.elapsed(),
        "ramp done"
    );

    // Phase 2: the steady-state window, from the last call's warm-up to the first BYE.
    tokio::time::sleep(script.warmup).await;
    let end = progress
        .first_end()
        .map(|e| e.checked_sub(Duration::from_millis(300)).unwrap_or(e));
    let mut window = None;
    if let Some(end) = end
        && end > Instant::now() + Duration::from_millis(500)
    {
        let up_before = progress.up.load(Ordering::Acquire);
        let softirq = procfs::softirq_threads();
        let s0 = procfs::total_run_ns(&softirq);
        let m0 = MachineCpu::read();
        let e0 = pid.and_then(|p| CpuSnapshot::read(Some(p)));
        let t0 = CpuSnapshot::read(None);
        let c0 = clock_stats();
        while Instant::now() < end {
            sample_rss(&mut peak_rss);
            let left = end.saturating_duration_since(Instant::now());
            tokio::time::sleep(left.min(Duration::from_millis(500))).await;
        }
        sample_rss(&mut peak_rss);
        let e1 = pid.and_then(|p| CpuSnapshot::read(Some(p)));
        let t1 = CpuSnapshot::read(None);
        let m1 = MachineCpu::read();
        let s1 = procfs::total_run_ns(&softirq);
        let c1 = clock_stats();
        let up_after = progress.up.load(Ordering::Acquire);
        window = Some((
            e0.zip(e1).map(|(a, b)| b.since(&a)),
            t0.zip(t1).map(|(a, b)| b.since(&a)),
            m0.zip(m1).map(|(a, b)| b.busy_pct_since(&a, cpus)),
            s1.saturating_sub(s0),
            (c0, c1),
            up_before.min(up_after),
        ));
        info!(
            calls_up = up_before.min(up_after),
            "steady-state window measured"
        );
    } else {
        warn!("no steady-state window: raise --hold or --rate");
    }

    let (results, unfinished) = ramp_task.await.context("the call ramp")?;
    let recovery = match recovery_task {
        Some(t) => Some(t.await.context("the recovery calls")?),
        None => None,
    };
    let hwm = pid.and_then(|p| Memory::read(Some(p))).map(|m| m.hwm_kib);
    let clock = clock_stats();

    let mut s = Summary {
        target: engine.sip.to_string(),
        spawned_engine: engine.spawned(),
        media_workers: engine.spawned().then_some(args.media_workers),
        calls,
        rate_per_s: rate,
        hold_s: args.hold,
        max_p99_gap_ms: args.max_p99_gap_ms,
        realtime: args.realtime,
        cpus,
        cpu_model,
        ..Summary::default()
    };
    let mut gaps = Histogram::default();
    let mut keys = Histogram::default();
    let mut setup = Histogram::default();
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    s.calls_attempted = results.len() + unfinished;
    if unfinished > 0 {
        failures.insert("not finished by the overall deadline".into(), unfinished);
    }
    let mut retry_after = Vec::new();
    for r in &results {
        s.calls_set_up += usize::from(r.set_up);
        s.calls_refused += usize::from(r.refused);
        retry_after.extend(r.retry_after);
        if let Some(f) = &r.failure {
            *failures.entry(f.clone()).or_insert(0) += 1;
        }
        s.welcome_missing += usize::from(r.set_up && !r.welcome_heard);
        s.keys_pressed += r.keys_pressed;
        s.keys_lost += r.keys_lost;
        s.packets_received += r.packets_received;
        s.packets_expected += r.packets_expected;
        gaps.merge(&r.gaps);
        keys.merge(&r.key_latency);
        if let Some(us) = r.setup_us {
            setup.record(us);
        }
    }
    s.retry_after_s = (!retry_after.is_empty()).then(|| {
        (
            retry_after.iter().copied().min().unwrap_or(0),
            retry_after.iter().copied().max().unwrap_or(0),
        )
    });
    if let Some(rec) = recovery {
        let mut r = Recovery {
            calls: rec.results.len() + rec.unfinished,
            waited_s: rec.waited.as_secs_f64(),
            ..Recovery::default()
        };
        if rec.unfinished > 0 {
            *failures
                .entry("recovery: not finished by the overall deadline".into())
                .or_insert(0) += rec.unfinished;
        }
        for c in &rec.results {
            r.set_up += usize::from(c.set_up);
            r.refused += usize::from(c.refused);
            if let Some(f) = &c.failure {
                *failures.entry(format!("recovery: {f}")).or_insert(0) += 1;
            }
            s.keys_pressed += c.keys_pressed;
            s.keys_lost += c.keys_lost;
            keys.merge(&c.key_latency);
            if let Some(us) = c.setup_us {
                setup.record(us);
            }
        }
        s.recovery = Some(r);
    }
    s.calls_failed = failures.values().sum();
    let mut f: Vec<(String, usize)> = failures.into_iter().collect();
    f.sort_by_key(|x| std::cmp::Reverse(x.1));
    f.truncate(6);
    s.failures = f;
    s.gap = Spread::from(&gaps);
    s.gap_mean_ms = gaps.mean_us() / 1000.0;
    s.gaps_over_40ms = gaps.count_at_least(40_000);
    s.key_latency = Spread::from(&keys);
    s.setup_latency = Spread::from(&setup);
    if let Some((engine_cpu, tool_cpu, machine, softirq_ns, (c0, c1), up)) = window {
        let ticks = c1.ticks.saturating_sub(c0.ticks);
        if ticks > 0 {
            s.caller_tick_mean_ms =
                Some(c1.busy_us.saturating_sub(c0.busy_us) as f64 / ticks as f64 / 1000.0);
        }
        s.caller_late_ticks = Some(c1.late_ticks.saturating_sub(c0.late_ticks));
        s.concurrent_in_window = up;
        s.machine_busy_pct = machine;
        let secs = engine_cpu
            .as_ref()
            .or(tool_cpu.as_ref())
            .map_or(0.0, |c| c.seconds);
        let softirq_pct = (secs > 0.0).then(|| softirq_ns as f64 / 1e9 / secs * 100.0);
        s.softirq_threads_pct = softirq_pct;
        s.others_cpu_pct = machine.map(|m| {
            let ours = engine_cpu.as_ref().map_or(0.0, |c| c.total_pct)
                + tool_cpu.as_ref().map_or(0.0, |c| c.total_pct)
                + softirq_pct.unwrap_or(0.0);
            (m - ours).max(0.0)
        });
        s.window_s = engine_cpu
            .as_ref()
            .or(tool_cpu.as_ref())
            .map_or(0.0, |c| c.seconds);
        if up > 0 {
            s.engine_cpu_per_call_pct = engine_cpu.as_ref().map(|c| c.total_pct / up as f64);
            s.engine_rss_per_call_kib = peak_rss
                .zip(idle)
                .map(|(p, i)| p.saturating_sub(i.rss_kib) as f64 / up as f64);
        }
        s.engine_cpu = engine_cpu;
        s.tool_cpu = tool_cpu;
    }
    s.engine_rss_peak_kib = peak_rss;
    s.engine_rss_idle_kib = idle.map(|m| m.rss_kib);
    s.engine_hwm_kib = hwm;
    s.caller_tick_max_ms = Some(clock.max_tick_us as f64 / 1000.0);
    s.caller_max_lateness_ms = Some(clock.max_lateness_us as f64 / 1000.0);
    Ok(s)
}

/// What the recovery calls of an overload run found.
struct Recovered {
    results: Vec<CallResult>,
    unfinished: usize,
    /// From the end of the ramp to the first recovery call.
    waited: Duration,
}

/// The recovery calls of an overload run: at `ramp_end` (the offered load drops back),
/// waits the longest Retry-After the refusals carried so far, then places `calls` at
/// `rate`; each must be admitted.
async fn recover(
    calls: usize,
    rate: f64,
    ramp_end: Instant,
    script: Arc<Script>,
    overload: Arc<Progress>,
) -> Recovered {
    tokio::time::sleep_until(tokio::time::Instant::from_std(ramp_end)).await;
    let wait = Duration::from_secs(u64::from(overload.retry_after_max.load(Ordering::Acquire)));
    let start = Instant::now() + wait;
    info!(after = ?wait, calls, "ramp over; recovery calls start after the longest Retry-After");
    let progress = Arc::new(Progress::default());
    let ramp = Duration::from_secs_f64(calls.saturating_sub(1) as f64 / rate);
    let deadline = start + ramp + script.hold + Duration::from_secs(70);
    let (results, unfinished) = ramp_script(calls, rate, start, deadline, script, progress).await;
    Recovered {
        results,
        unfinished,
        waited: start.saturating_duration_since(ramp_end),
    }
}

/// Places `calls` scripted calls at `rate` from `start` (see [`ramp_tasks`]).
async fn ramp_script(
    calls: usize,
    rate: f64,
    start: Instant,
    deadline: Instant,
    script: Arc<Script>,
    progress: Arc<Progress>,
) -> (Vec<CallResult>, usize) {
    ramp_tasks(
        calls,
        rate,
        start,
        deadline,
        move |i| script::place(i, script.clone(), progress.clone()),
        |why| CallResult {
            failure: Some(format!("call task failed: {why}")),
            ..CallResult::default()
        },
    )
    .await
}

/// Starts `start_one(i)` at `start + i / rate` for each of `calls` and gathers the
/// results (a task that panicked gives `failed(why)`); tasks still running at `deadline`
/// are aborted and counted. Calls (call mode) and callers (queue mode) ramp alike.
pub(crate) async fn ramp_tasks<R, Fut>(
    calls: usize,
    rate: f64,
    start: Instant,
    deadline: Instant,
    mut start_one: impl FnMut(usize) -> Fut,
    failed: impl Fn(String) -> R,
) -> (Vec<R>, usize)
where
    R: Send + 'static,
    Fut: std::future::Future<Output = R> + Send + 'static,
{
    let mut set = JoinSet::new();
    let mut results = Vec::with_capacity(calls);
    for i in 0..calls {
        let at = start + Duration::from_secs_f64(i as f64 / rate);
        // Gather finished tasks while waiting, so the set stays small on long runs.
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(at)) => break,
                Some(Ok(r)) = set.join_next(), if !set.is_empty() => results.push(r),
            }
        }
        set.spawn(start_one(i));
    }
    let dl = tokio::time::Instant::from_std(deadline);
    loop {
        match tokio::time::timeout_at(dl, set.join_next()).await {
            Ok(Some(Ok(r))) => results.push(r),
            Ok(Some(Err(e))) => results.push(failed(e.to_string())),
            Ok(None) => break,
            Err(_) => {
                let left = set.len();
                set.abort_all();
                return (results, left);
            }
        }
    }
    (results, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_keys_parse() {
        let k = parse_language_keys("1=en, 2=de").expect("valid");
        assert_eq!(k, vec![(Key::One, "en".into()), (Key::Two, "de".into())]);
        assert!(parse_language_keys("12=en").is_err());
        assert!(parse_language_keys("x").is_err());
        assert!(parse_language_keys("").is_err());
    }

    #[test]
    fn a_prompt_starting_with_silence_is_not_recognisable() {
        let s = Prompt::silence(Duration::from_millis(100));
        assert!(check_recognisable(&s, &[]).is_err());
        let t = Prompt::tone(440.0, Duration::from_millis(100), -10.0);
        // A steady tone repeats its frames, so its start is not unique either.
        let u = Prompt::tone(700.0, Duration::from_millis(20), -10.0);
        assert!(check_recognisable(&u, &[]).is_ok());
        assert!(check_recognisable(&u, &[&t]).is_ok());
        assert!(check_recognisable(&u, &[&u.clone()]).is_err());
    }

    #[test]
    fn the_sample_prompts_are_recognisable() {
        // The sample prompts are the workspace's, two folders up from this crate.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../prompts");
        let (lib, _) = PromptLibrary::load_dir(&root, "en");
        let keys = parse_language_keys("1=en,2=de").expect("valid");
        script_prompts(&lib, &keys).expect("sample prompts");
    }
}
