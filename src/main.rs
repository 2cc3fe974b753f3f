//! The `hotline` command: serve the hotline, check flow files, place load. Argument parsing
//! and process setup only; everything else lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use hotline::config::{Config, Listen, PortRange};

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
    },
    /// Place many concurrent calls against a running hotline and measure it.
    Load(hotline::load::LoadArgs),
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
                    r = server.run() => r?,
                    _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; stopping"),
                }
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { cfg, paths } => {
            let config = if cfg.config.exists() || paths.is_empty() {
                load_config(&cfg.config)?
            } else {
                Config::default()
            };
            let report = if paths.is_empty() {
                hotline::check::check(&config)
            } else {
                hotline::check::check_paths(&config, &paths)
            };
            for d in &report.diagnostics {
                eprintln!("{d}\n");
            }
            eprintln!("{}", report.summary());
            Ok(if report.has_errors() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Load(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let ok = rt.block_on(hotline::load::run(args))?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}
