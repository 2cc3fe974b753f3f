//! The `hotline` command: serve the hotline, check flow files, place load, run the demo
//! shop. Argument parsing and process setup only; everything else lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use hotline::config::{Config, Listen, PortRange};
use hotline::tools::cli as tools;

#[derive(Parser)]
#[command(name = "hotline", version, about = "IVR and call-flow engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct ConfigArgs {
    /// The server configuration.
    #[arg(long, short, default_value = "hotline.yaml")]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Answer calls: run the hotline described by the configuration.
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
    },
    /// Load the configuration, every flow and prompt, and report every problem found.
    /// With PATHS: check those configuration files, flow folders or flow files instead.
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
    Load(hotline_load::load::LoadArgs),
    /// Call a flow in the terminal: print what the caller hears, press keys.
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
    Test {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Test files or folders of them (default: the `tests` folder beside the flows).
        paths: Vec<PathBuf>,
    },
    /// Draw a flow: its steps and where each key and outcome leads.
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
    /// Print the JSON Schema of flow files, for editors that complete and check YAML.
    Schema,
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
    /// Run the demonstration order service the sample hotline looks orders up in
    /// (GET /orders/NUMBER; made-up orders, for trying the sample only).
    DemoShop {
        /// The address to listen on.
        #[arg(long, default_value = hotline::config::DEMO_SHOP_LISTEN)]
        listen: std::net::SocketAddr,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
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
        } => {
            let mut config = load_config(&cfg.config)?;
            if !sip.is_empty() {
                config.listen = sip;
            }
            if let Some(r) = rtp_ports {
                config.rtp_ports = r;
            }
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            rt.block_on(async move {
                let server = hotline::server::Server::start(config, media_workers).await?;
                tokio::select! {
                    () = server.run() => {}
                    _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; stopping"),
                }
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
            let config = if cfg.config.exists() || paths.is_empty() || impact {
                load_config(&cfg.config)?
            } else {
                Config::default()
            };
            if impact {
                return check_impact(&config, admin, deny_warnings);
            }
            let report = if paths.is_empty() {
                hotline::preflight::check(&config)
            } else {
                hotline::preflight::check_paths(&config, &paths)
            };
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
        Command::Test { cfg, paths } => {
            let config = config_or_default(&cfg.config)?;
            let run = hotline::tools::flowtest::run_paths(&config, &paths);
            tools::print(&run.render())?;
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
        Command::Schema => Ok(tools::schema()?),
        Command::Records {
            cfg,
            call_id,
            last,
            caller,
            since,
            until,
            format,
        } => records(&cfg.config, call_id, last, caller, since, until, format),
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
