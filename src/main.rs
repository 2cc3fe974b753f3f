//! The `hotline` command: serve the hotline, check flow files, place load, run the demo
//! shop. Argument parsing and process setup only; everything else lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use hotline::config::{Config, Listen, PortRange};
use hotline::records::report_cli::{self, RecordSource, ReportFormat};
use hotline::tools::cli as tools;

#[derive(Parser)]
#[command(
    name = "hotline",
    version,
    about = "IVR and call-flow engine",
    after_help = "Exit status: 0 success; 1 problems found: the configuration or the flows are \
                  wrong (check, and every command that reads them: serve refuses to start), \
                  with --deny-warnings a warning, a failing flow test, a failed load criterion; \
                  2 the command could not run (bad arguments, a configuration file that is \
                  missing or unreadable, a port in use).\n\nEnvironment: HOTLINE_CONFIG is the \
                  configuration file when --config is not given; ${NAME} in hotline.yaml's values \
                  is replaced by the variable NAME."
)]
struct Cli {
    /// How logs are written. They always go to standard error: standard output is kept
    /// for what a command prints (`load --json`'s figures, `graph`, `schema`).
    #[arg(
        long,
        global = true,
        value_enum,
        env = LOG_FORMAT_ENV,
        default_value_t = LogFormat::Text
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// The environment variable `--log-format` falls back to. Processes a command starts (the
/// engine `hotline load` runs) inherit it, so they log in the same format.
const LOG_FORMAT_ENV: &str = "HOTLINE_LOG_FORMAT";

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    /// Lines for people; coloured only when standard error is a terminal (and NO_COLOR
    /// is not set).
    Text,
    /// One JSON object a line, with the fields of the spans it was written in: every line
    /// of a call carries its `call_id`.
    Json,
}

/// Logs to standard error, at the level `RUST_LOG` says (info by default).
fn init_logs(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match format {
        LogFormat::Text => {
            let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
            logs.with_ansi(std::io::stderr().is_terminal() && !no_color)
                .init();
        }
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}

#[derive(clap::Args, Clone)]
struct ConfigArgs {
    /// The server configuration.
    #[arg(long, short, env = "HOTLINE_CONFIG", default_value = "hotline.yaml")]
    config: PathBuf,
}

/// How `hotline test` reports.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum TestFormat {
    Text,
    Junit,
}

/// A listener moved on the command line, or switched off.
#[derive(Clone, Copy, Debug)]
enum Bind {
    Off,
    At(std::net::SocketAddr),
}

impl std::str::FromStr for Bind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(Bind::Off);
        }
        s.parse()
            .map(Bind::At)
            .map_err(|_| format!("expected an address like 127.0.0.1:9080, or off; found '{s}'"))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Answer calls: run the hotline described by the configuration.
    #[command(
        after_help = "Examples:\n  hotline serve\n  hotline serve --config /etc/hotline/hotline.yaml\n  hotline serve --sip udp:127.0.0.1:15060 --rtp-ports 30000-30999 --admin 127.0.0.1:9080 --demo-shop off"
    )]
    Serve {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Replace the configured SIP listeners (repeatable), e.g. udp:127.0.0.1:15060.
        #[arg(long = "sip")]
        sip: Vec<Listen>,
        /// Replace the configured RTP port range, e.g. 30000-30999.
        #[arg(long)]
        rtp_ports: Option<PortRange>,
        /// Media worker threads (each serves its calls on one 20 ms clock).
        #[arg(long, default_value_t = 1)]
        media_workers: usize,
        /// Move the admin API (e.g. 127.0.0.1:9080), or `off`.
        #[arg(long, value_name = "ADDR|off")]
        admin: Option<Bind>,
        /// Move the demonstration order service (e.g. 127.0.0.1:9081), or `off`. The flows
        /// find it through `vars.shop_url`: change that too.
        #[arg(long, value_name = "ADDR|off")]
        demo_shop: Option<Bind>,
    },
    /// Load the configuration, every flow and prompt, and report every problem found.
    /// With PATHS: check those configuration files, flow folders or flow files instead.
    #[command(
        after_help = "Examples:\n  hotline check\n  hotline check flows/main.yaml\n  hotline check --deny-warnings staging.yaml\n  hotline check --impact"
    )]
    Check {
        #[command(flatten)]
        cfg: ConfigArgs,
        paths: Vec<PathBuf>,
        /// Fail (exit 1) on warnings too.
        #[arg(long)]
        deny_warnings: bool,
        /// Also ask the running hotline (its admin API) which calls in progress sit on
        /// steps the files on disk remove or change. Reloads nothing.
        #[arg(long)]
        impact: bool,
        /// The running hotline's admin API for --impact (default: from the configuration's
        /// admin.listen). The token comes from admin.token or HOTLINE_ADMIN_TOKEN.
        #[arg(long, value_name = "URL", requires = "impact")]
        admin: Option<String>,
    },
    /// Place many concurrent calls against a running hotline and measure it.
    #[command(
        after_help = "Examples:\n  hotline load --calls 1000\n  hotline load --calls 200 --rate 50 --hold 25 --json >> results.jsonl"
    )]
    Load(hotline_load::load::LoadArgs),
    /// Call a flow in the terminal: print what the caller hears, press keys.
    #[command(
        after_help = "Examples:\n  hotline simulate main\n  hotline simulate main --keys \"1,2,>0\"\n  hotline simulate main --fast --language de"
    )]
    Simulate {
        /// The flow to call (its file name in the flows folder, without .yaml).
        flow: String,
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Keys to press, in comma-separated groups: each group at the next point where the
        /// flow waits for a key; `>` first presses it during the prompt instead (barge-in);
        /// an empty group lets the timeout pass. Runs on a virtual clock.
        #[arg(long)]
        keys: Option<String>,
        /// Prompts take no time; at each wait, type the keys to press (empty: time out).
        #[arg(long)]
        fast: bool,
        /// Start the call in this language instead of the flow's default.
        #[arg(long)]
        language: Option<String>,
        /// The calling number (the `caller` variable).
        #[arg(long, default_value = "")]
        caller: String,
        /// Show the call's clock before each line.
        #[arg(long)]
        times: bool,
    },
    /// Run flow tests (scripted callers) and report them; exit 1 on a failure.
    #[command(
        after_help = "Examples:\n  hotline test\n  hotline test flows/tests/hours.yaml\n  hotline test --format junit > flow-tests.xml"
    )]
    Test {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Test files or folders of them (default: the `tests` folder beside the flows).
        paths: Vec<PathBuf>,
        /// `text` for people, `junit` (XML) for CI systems.
        #[arg(long, value_enum, default_value = "text")]
        format: TestFormat,
    },
    /// Draw a flow: its steps and where each key and outcome leads.
    #[command(
        after_help = "Examples:\n  hotline graph main\n  hotline graph main --format svg -o main.svg"
    )]
    Graph {
        /// The flow to draw.
        flow: String,
        #[command(flatten)]
        cfg: ConfigArgs,
        #[arg(long, value_enum, default_value = "mermaid")]
        format: hotline::tools::graph::GraphFormat,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// The contact-centre report from the call records: outcomes, self-service, the IVR
    /// funnel, reasons, queues, agents, survey, repeat callers, hours (docs/reports.md).
    Report {
        #[command(flatten)]
        cfg: ConfigArgs,
        #[command(flatten)]
        request: report_cli::ReportRequest,
    },
    /// Print a JSON Schema, for editors that complete and check YAML (flow files by
    /// default, hotline.yaml, flow test files), or the admin API's OpenAPI document.
    #[command(
        after_help = "Examples:\n  hotline schema > schemas/flow.schema.json\n  hotline schema config > schemas/hotline.schema.json\n  hotline schema openapi > schemas/openapi.json"
    )]
    Schema {
        #[arg(value_enum, default_value = "flow")]
        kind: hotline::tools::schemas::SchemaKind,
    },
    /// Print a shell completion script, e.g. `hotline completions bash > /etc/bash_completion.d/hotline`.
    #[command(
        after_help = "Examples:\n  hotline completions bash > ~/.local/share/bash-completion/completions/hotline\n  hotline completions zsh > ~/.zfunc/_hotline"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `hotline man | man -l -`.
    #[command(after_help = "Examples:\n  hotline man | man -l -")]
    Man,
    /// List the recorded calls (oldest first), or with CALL_ID show that call's events.
    Records {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Show this call: its record and its events in order.
        call_id: Option<String>,
        /// Only the newest N calls (default 50 unless --since is given).
        #[arg(long)]
        last: Option<usize>,
        /// Only calls from this number.
        #[arg(long)]
        caller: Option<String>,
        /// Only calls started since: 24h, 7d, 30m ago, or a UTC date (2026-12-01) or time.
        #[arg(long)]
        since: Option<String>,
        /// Only calls started before this (same forms as --since).
        #[arg(long)]
        until: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: hotline::records::listing::ListFormat,
    },
    /// The nodes of the cluster (`cluster:` in hotline.yaml) as the shared database sees
    /// them, and which one leads (docs/cluster.md).
    #[command(
        after_help = "Examples:\n  hotline cluster status\n  hotline cluster status --config /etc/hotline/hotline.yaml"
    )]
    Cluster {
        #[command(subcommand)]
        what: ClusterCommand,
    },
    /// Run a recorded call's keys, with their timing, against the flows as they are now (or
    /// another folder of them), and show both paths side by side and where they part.
    /// Exit 0 when the paths are the same, 1 when they part, 2 when it cannot replay.
    #[command(
        after_help = "Examples:\n  hotline replay 8f3a2c@10.0.0.5\n  hotline replay 8f3a2c@10.0.0.5 --flows flows-next/\n  hotline replay 8f3a2c@10.0.0.5 --as-test flows/tests/complaint-1234.yaml"
    )]
    Replay {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// The call, as `hotline records` lists it.
        call_id: String,
        /// Replay against this flow file's folder instead of the configured flows (the
        /// call starts in the flow it started in, or in this file's flow if that is
        /// absent there).
        #[arg(long, value_name = "FILE|DIR")]
        flow: Option<PathBuf>,
        /// Also write the recorded call as a flow test file here.
        #[arg(long, value_name = "FILE")]
        as_test: Option<PathBuf>,
    },
    /// What a number of agents gives a queue: service level, ASA and abandonment by Erlang
    /// C, Erlang A and a simulation of the queue on the real ACD. Inputs not given come
    /// from the call records.
    #[command(
        after_help = "Examples:\n  hotline capacity --queue support\n  hotline capacity --queue support --agents 8..16 --calls-per-hour 300 --handle-time 4m --patience 90s --target 80/20s"
    )]
    Capacity {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// The queue (its name under queues: in hotline.yaml).
        #[arg(long)]
        queue: String,
        /// Agents: a number, or a range FROM..TO for a table (default: around what the
        /// target needs).
        #[arg(long, value_name = "N|FROM..TO")]
        agents: Option<String>,
        /// Calls arriving per hour (default: from the records, per hour with calls).
        #[arg(long)]
        calls_per_hour: Option<f64>,
        /// An agent's average time per call, talk and hold (default: from the records).
        /// The queue's wrap-up is added.
        #[arg(long, value_name = "DURATION")]
        handle_time: Option<String>,
        /// How long callers wait on average before giving up, or `none` (default: from
        /// the records).
        #[arg(long, value_name = "DURATION|none")]
        patience: Option<String>,
        /// The service level target, e.g. 80/20s (default: 80% in the queue's
        /// service_level).
        #[arg(long, value_name = "PERCENT/WAIT")]
        target: Option<String>,
        /// Percent of callers offered a callback who take it (default: from the records).
        #[arg(long, value_name = "PERCENT")]
        callback_take: Option<f64>,
        /// How far back the records are read (24h, 7d, a date).
        #[arg(long, default_value = "7d")]
        since: String,
        /// Calls simulated per agent count (0: no simulation).
        #[arg(long, default_value_t = hotline::tools::capacity::DEFAULT_SIM_CALLS)]
        simulate_calls: u32,
        /// The simulation's random seed: the same seed gives the same figures.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Run the demonstration order service the sample hotline looks orders up in
    /// (GET /orders/NUMBER; made-up orders, for trying the sample only).
    #[command(
        after_help = "Examples:\n  hotline demo-shop\n  hotline demo-shop --listen 127.0.0.1:9081"
    )]
    DemoShop {
        /// The address to listen on.
        #[arg(long, default_value = hotline::config::DEMO_SHOP_LISTEN)]
        listen: std::net::SocketAddr,
    },
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Each node's state (alive, lost, left), lease age and calls, and the leader.
    Status {
        #[command(flatten)]
        cfg: ConfigArgs,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = match cli.log_format {
        LogFormat::Text => "text",
        LogFormat::Json => "json",
    };
    // SAFETY: no other thread exists yet (the runtime and the records writer start later),
    // so nothing can read the environment while it changes.
    unsafe { std::env::set_var(LOG_FORMAT_ENV, format) };
    init_logs(cli.log_format);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // A wrong configuration is a problem found (1), shown like `check` shows it;
            // anything else kept the command from running (2).
            if let Some(hotline::config::ConfigError::Invalid { diagnostics, .. }) =
                e.downcast_ref::<hotline::config::ConfigError>()
            {
                for d in diagnostics {
                    eprintln!("{d}\n");
                }
                eprintln!("{} error(s) in the configuration", diagnostics.len());
                return ExitCode::from(1);
            }
            eprintln!("error: {e:#}");
            match e.downcast_ref::<hotline::server::StartError>() {
                // Refused configurations exit 1, like `check`; failures to start, 2.
                Some(
                    hotline::server::StartError::Config(_)
                    | hotline::server::StartError::SamplePassword { .. },
                ) => ExitCode::from(1),
                _ => ExitCode::from(2),
            }
        }
    }
}

/// `--admin` and `--demo-shop` over the configuration, with the configuration's own rule:
/// an admin API reachable from other hosts needs a token.
fn move_listeners(
    config: &mut Config,
    admin: Option<Bind>,
    demo_shop: Option<Bind>,
) -> anyhow::Result<()> {
    match admin {
        None => {}
        Some(Bind::Off) => config.admin = None,
        Some(Bind::At(listen)) => {
            let token = config.admin.as_ref().and_then(|a| a.token.clone());
            if !listen.ip().is_loopback() && token.is_none() {
                anyhow::bail!(
                    "--admin {listen} is reachable from other hosts, so the admin API needs \
                     admin.token in the configuration, or listen on 127.0.0.1"
                );
            }
            let hosts = config
                .admin
                .as_ref()
                .map(|a| a.hosts.clone())
                .unwrap_or_default();
            config.admin = Some(hotline::config::AdminConfig {
                listen,
                token,
                hosts,
            });
        }
    }
    match demo_shop {
        None => {}
        Some(Bind::Off) => config.demo_shop = None,
        Some(Bind::At(listen)) => {
            config.demo_shop = Some(hotline::config::DemoShopConfig { listen });
        }
    }
    Ok(())
}

/// RTP ports inside the kernel's ephemeral range collide with the sockets other programs
/// (and the engine's own HTTP clients) get from port 0: allowed, but said.
fn warn_about_ephemeral_rtp(range: PortRange) {
    if let Some((lo, hi)) = hotline_load::load::procfs::ephemeral_ports()
        && range.first <= hi
        && lo <= range.last
    {
        tracing::warn!(
            rtp_ports = %range,
            ephemeral = %format!("{lo}-{hi}"),
            "the RTP ports overlap the kernel's ephemeral ports: a call can fail to get its \
             port while another program holds it (choose a range outside, e.g. 10000-20000)"
        );
    }
}

fn load_config(path: &std::path::Path) -> anyhow::Result<Config> {
    if path.exists() {
        Config::load(path).map_err(Into::into)
    } else {
        anyhow::bail!(
            "no configuration at {} (pass --config FILE)",
            path.display()
        )
    }
}

/// The configuration file if there is one; the defaults (flows/, prompts/ here) if the
/// default file is absent.
fn config_or_default(path: &std::path::Path) -> anyhow::Result<Config> {
    if path.exists() || path != std::path::Path::new("hotline.yaml") {
        load_config(path)
    } else {
        Ok(Config::default())
    }
}

/// `hotline check --impact`: the check of the files on disk, then what they would change
/// for the calls in progress on the running hotline.
fn check_impact(
    config: &Config,
    admin: Option<String>,
    deny_warnings: bool,
) -> anyhow::Result<ExitCode> {
    use hotline::admin::impact_client;
    let loaded = hotline::preflight::check_all(config);
    for d in &loaded.report.diagnostics {
        eprintln!("{d}\n");
    }
    eprintln!("{}", loaded.report.summary());
    if loaded.report.has_errors() {
        eprintln!("impact: not computed: a reload of these files would be refused");
        return Ok(ExitCode::from(1));
    }
    let url = admin
        .or_else(|| impact_client::default_url(config))
        .context("no admin API to ask: pass --admin URL or configure admin.listen")?;
    let token = std::env::var("HOTLINE_ADMIN_TOKEN")
        .ok()
        .or_else(|| config.admin.as_ref().and_then(|a| a.token.clone()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (flows, calls) = rt.block_on(impact_client::fetch(&url, token.as_deref()))?;
    let impact = impact_client::Impact::compare(&flows, &calls, &loaded.flows);
    print!("{}", impact.render());
    Ok(if loaded.report.fails(deny_warnings) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `hotline records`: reads the store hotline.yaml names.
fn records(
    config: &std::path::Path,
    call_id: Option<String>,
    last: Option<usize>,
    caller: Option<String>,
    since: Option<String>,
    until: Option<String>,
    format: hotline::records::listing::ListFormat,
) -> anyhow::Result<ExitCode> {
    use hotline::records::listing;
    let config = load_config(config)?;
    let target = config
        .records
        .as_ref()
        .context("records are off in the configuration (records: off, or no records: key)")?;
    let mut store = hotline::records::open_store(&target.store)?;
    if let Some(id) = call_id {
        return match listing::show(store.as_mut(), &id, format)? {
            Some(text) => {
                tools::print(&text)?;
                Ok(ExitCode::SUCCESS)
            }
            None => {
                eprintln!("no call '{id}' in the records");
                Ok(ExitCode::from(1))
            }
        };
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let time = |t: Option<String>| -> anyhow::Result<Option<i64>> {
        t.map(|t| listing::parse_time(&t, now))
            .transpose()
            .map_err(Into::into)
    };
    let since_ms = time(since)?;
    let filter = hotline::records::store::CallFilter {
        since_ms,
        until_ms: time(until)?,
        caller,
        last: last.or(if since_ms.is_none() { Some(50) } else { None }),
    };
    tools::print(&listing::list(store.as_mut(), &filter, format)?)?;
    Ok(ExitCode::SUCCESS)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve {
            cfg,
            sip,
            rtp_ports,
            media_workers,
            admin,
            demo_shop,
        } => {
            let mut config = load_config(&cfg.config)?;
            if !sip.is_empty() {
                config.listen = sip;
            }
            if let Some(r) = rtp_ports {
                config.rtp_ports = r;
            }
            move_listeners(&mut config, admin, demo_shop)?;
            warn_about_ephemeral_rtp(config.rtp_ports);
            match hotline::fd_limit::raise() {
                Ok(l) => tracing::info!(
                    before = l.before,
                    now = l.now,
                    hard = l.hard,
                    budget = hotline::fd_limit::fd_budget(),
                    "open-files limit"
                ),
                Err(e) => tracing::warn!(error = %e, "open-files limit left as it was"),
            }
            let caps = hotline::fd_limit::size_caps(
                hotline::fd_limit::fd_budget(),
                config.max_calls,
                config
                    .connections
                    .tcp_connections
                    .unwrap_or_else(hotline::sip::transport::default_tcp_connections),
            );
            if caps.max_calls < config.max_calls {
                tracing::warn!(
                    configured = config.max_calls,
                    max_calls = caps.max_calls,
                    tcp_connections = caps.tcp,
                    "max_calls lowered to fit the open-files limit"
                );
                config.max_calls = caps.max_calls;
            }
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            rt.block_on(async move {
                let server = hotline::server::Server::start(config, media_workers).await?;
                // Under systemd (Type=notify) the unit is started once calls can come in.
                if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
                    tracing::warn!(error = %e, "cannot tell systemd the hotline is ready");
                }
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .context("listening for SIGTERM")?;
                let drain = server.deps.live().config.drain;
                let running = server.serve();
                // The first SIGTERM (or Ctrl-C) drains: calls in progress may finish. The
                // second ends them at once. Either way the records are written before exit.
                let mut stop = async move || {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => "interrupt",
                        _ = term.recv() => "SIGTERM",
                    }
                };
                let first = stop().await;
                tracing::info!(
                    signal = first,
                    "stop requested; draining (send it again to stop at once)"
                );
                let cut = async {
                    let second = stop().await;
                    tracing::warn!(
                        signal = second,
                        "second stop requested; ending the calls now"
                    );
                };
                running.drain(drain, cut).await;
                if let Some(ep) = running.server.deps.acd() {
                    ep.stop();
                }
                drop(running);
                tracing::info!("stopped");
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check {
            cfg,
            paths,
            deny_warnings,
            impact,
            admin,
        } => {
            let mut report = hotline::preflight::Report::default();
            let config = if cfg.config.exists() || paths.is_empty() || impact {
                match load_config(&cfg.config) {
                    Ok(c) => c,
                    // Every problem in one run: the configuration's, then (when what
                    // is broken leaves them meaningful) the flows'.
                    Err(e) => match e.downcast::<hotline::config::ConfigError>() {
                        Ok(hotline::config::ConfigError::Invalid {
                            diagnostics,
                            partial: Some(partial),
                            ..
                        }) if !impact => {
                            report.diagnostics = diagnostics;
                            *partial
                        }
                        Ok(other) => return Err(other.into()),
                        Err(other) => return Err(other),
                    },
                }
            } else {
                Config::default()
            };
            if impact {
                return check_impact(&config, admin, deny_warnings);
            }
            report.diagnostics.extend(if paths.is_empty() {
                hotline::preflight::check(&config).diagnostics
            } else {
                hotline::preflight::check_paths(&config, &paths).diagnostics
            });
            for d in &report.diagnostics {
                eprintln!("{d}\n");
            }
            eprintln!("{}", report.summary());
            if deny_warnings && !report.has_errors() && report.warnings() > 0 {
                eprintln!("warnings are denied (--deny-warnings)");
            }
            Ok(if report.fails(deny_warnings) {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Simulate {
            flow,
            cfg,
            keys,
            fast,
            language,
            caller,
            times,
        } => {
            let config = config_or_default(&cfg.config)?;
            let opts = tools::SimulateArgs {
                flow,
                keys,
                fast,
                language,
                caller,
                times,
            };
            Ok(tools::simulate(&config, &opts)?)
        }
        Command::Test { cfg, paths, format } => {
            let config = config_or_default(&cfg.config)?;
            let run = hotline::tools::flowtest::run_paths(&config, &paths);
            match format {
                TestFormat::Text => tools::print(&run.render())?,
                TestFormat::Junit => tools::print(&hotline::tools::junit::render(&run))?,
            }
            Ok(if run.success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Graph {
            flow,
            cfg,
            format,
            output,
        } => {
            let config = config_or_default(&cfg.config)?;
            Ok(tools::graph(
                &config,
                &tools::GraphArgs {
                    flow,
                    format,
                    output,
                },
            )?)
        }
        Command::Report { cfg, request } => {
            let config = load_config(&cfg.config)?;
            let mut source = records_source(&config)?;
            let out = report_cli::run(
                &request,
                &mut *source,
                report_cli::now_ms(),
                ReportFormat::Table,
            )?;
            tools::print(&out.body)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema { kind } => Ok(tools::schema(kind)?),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "hotline", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command())
                .render(&mut std::io::stdout())
                .context("writing the manual page")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Records {
            cfg,
            call_id,
            last,
            caller,
            since,
            until,
            format,
        } => records(&cfg.config, call_id, last, caller, since, until, format),
        Command::Cluster {
            what: ClusterCommand::Status { cfg },
        } => {
            let config = load_config(&cfg.config)?;
            let Some(cluster) = config.cluster else {
                anyhow::bail!(
                    "{} has no `cluster:` section: this hotline runs as a single node",
                    cfg.config.display()
                );
            };
            let mut client =
                hotline::cluster::connect(&cluster.store).map_err(anyhow::Error::msg)?;
            let nodes = hotline::cluster::status::read(&mut client, cluster.lease.as_secs_f64())
                .context("reading the cluster's nodes")?;
            let queues = if config.queues.is_empty() {
                None
            } else {
                Some(
                    hotline::cluster::status::read_queues(&mut client)
                        .context("reading the shared queues")?,
                )
            };
            tools::print(&hotline::cluster::status::render(&nodes, queues.as_ref()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay {
            cfg,
            call_id,
            flow,
            as_test,
        } => {
            let config = load_config(&cfg.config)?;
            let args = hotline::tools::replay::ReplayArgs {
                call_id,
                flow,
                as_test,
            };
            Ok(hotline::tools::replay::run(&config, &args))
        }
        Command::Capacity {
            cfg,
            queue,
            agents,
            calls_per_hour,
            handle_time,
            patience,
            target,
            callback_take,
            since,
            simulate_calls,
            seed,
        } => {
            let config = load_config(&cfg.config)?;
            let args = hotline::tools::capacity::CapacityArgs {
                queue,
                agents,
                calls_per_hour,
                handle_time,
                patience,
                target,
                callback_take,
                since,
                sim_calls: simulate_calls,
                seed,
            };
            let now = report_cli::now_ms();
            let text =
                hotline::tools::capacity::run(&config, &args, now, std::time::Instant::now())?;
            tools::print(&text)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::DemoShop { listen } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("listening on {listen}"))?;
                tracing::info!(address = %listen, "demo shop listening: GET /orders/NUMBER");
                tokio::select! {
                    r = hotline::tools::demo_shop::serve(listener) => r.context("serving")?,
                    _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; stopping"),
                }
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Load(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let ok = rt.block_on(hotline_load::load::run(args))?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

/// The records store `hotline.yaml` names, read by `hotline report`.
/// The records store hotline.yaml names, to read reports from.
fn records_source(config: &Config) -> anyhow::Result<Box<dyn RecordSource>> {
    let target = config
        .records
        .as_ref()
        .context("records are off in the configuration (records: off, or no records: key)")?;
    let store = hotline::records::open_store(&target.store)?;
    Ok(Box::new(store))
}
