//! The bodies of `hotline simulate`, `graph` and `schema`: load what they need, choose the
//! mode, talk to the terminal and files. The work itself is in the sibling modules; this
//! is the thin shell around them (it reads the real clock and stdin, which they must not).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use thiserror::Error;

use crate::config::Config;
use crate::flow::diagnostic::Diagnostic;
use crate::flow::machine::{CallContext, MachineError};

use super::graph::{self, Graph, GraphFormat};
use super::load_flow;
use super::phone::{VirtualCall, World};
use super::simulate::{
    KeysError, Next, Printer, drive, parse_group, parse_keys, run_realtime, simulate_keys,
    start_in_language, stdin_lines,
};

/// `hotline simulate` options.
#[derive(Debug, Clone, Default)]
pub struct SimulateArgs {
    pub flow: String,
    pub keys: Option<String>,
    pub fast: bool,
    pub language: Option<String>,
    pub caller: String,
    pub times: bool,
}

fn print_diagnostics(diags: &[Diagnostic]) {
    for d in diags {
        eprintln!("{d}");
    }
}

/// Why a tool could not finish (a flow with errors is not one: it is reported and exits 1).
#[derive(Debug, Error)]
pub enum ToolError {
    #[error(transparent)]
    Keys(#[from] KeysError),
    #[error("the flow cannot start")]
    Start(#[from] MachineError),
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Runs `hotline simulate`; exit 1 when the flow does not load.
pub fn simulate(config: &Config, args: &SimulateArgs) -> Result<ExitCode, ToolError> {
    let groups = match &args.keys {
        Some(k) => Some(parse_keys(k)?),
        None => None,
    };
    let loaded = match load_flow(config, &args.flow) {
        Ok(l) => l,
        Err(diags) => {
            print_diagnostics(&diags);
            return Ok(ExitCode::from(1));
        }
    };
    let mut flows = loaded.flows;
    if let Some(lang) = &args.language {
        if !loaded.prompts.languages().any(|l| l == lang) {
            eprintln!(
                "warning: no prompts in language '{lang}' (in {}): the default language's play",
                config.prompts_dir.display()
            );
        }
        start_in_language(&mut flows, &args.flow, lang);
    }
    let flows = Arc::new(flows);
    let ctx = CallContext {
        wall_clock_at_start: std::time::SystemTime::now().into(),
        call_id: "simulate".to_owned(),
        caller: args.caller.clone(),
        dialed: String::new(),
    };
    let mut call = VirtualCall::start(
        flows,
        loaded.prompts,
        &args.flow,
        ctx,
        World::default(),
        Instant::now(),
    )?;
    let terminal = std::io::stdin().is_terminal();
    let language = call.machine().language().to_owned();
    let header = format!("call to flow '{}' (language {language})\n", args.flow);
    if let Some(groups) = groups {
        print(&(header + &simulate_keys(&mut call, &groups, args.times)))?;
        return Ok(ExitCode::SUCCESS);
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    out.write_all(header.as_bytes())?;
    if terminal && !args.fast {
        writeln!(
            out,
            "(type keys 0-9 * # and Enter, at any time; q or Ctrl-D hangs up)"
        )?;
        let input = stdin_lines();
        run_realtime(&mut call, &input, &mut out);
    } else {
        if terminal {
            writeln!(
                out,
                "(at each wait, type keys and Enter; an empty line lets the timeout pass; >KEYS presses during the next prompt; q hangs up)"
            )?;
        }
        step_by_step(&mut call, terminal, args.times, &mut out);
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `--fast` or keys from a pipe: each line of stdin is a key group, on a virtual clock.
fn step_by_step(call: &mut VirtualCall, terminal: bool, times: bool, out: &mut dyn Write) {
    let mut printer = Printer::new(call.machine().story().flow.clone(), times);
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let unused = drive(call, &mut |call| {
        printer.flush(call, out);
        loop {
            if call.is_ended() {
                return Next::RunOut;
            }
            if terminal {
                let _ = write!(out, "keys> ");
            }
            let _ = out.flush();
            let Some(Ok(line)) = lines.next() else {
                return Next::RunOut;
            };
            if line.trim().eq_ignore_ascii_case("q") {
                return Next::HangUp;
            }
            match parse_group(&line) {
                Ok(g) => return Next::Press(g),
                Err(c) => {
                    let _ = writeln!(out, "  (not a telephone key: '{c}'; use 0-9 * #)");
                }
            }
        }
    });
    printer.flush(call, out);
    printer.finish(call, &unused, out);
}

/// `hotline graph` options.
#[derive(Debug, Clone)]
pub struct GraphArgs {
    pub flow: String,
    pub format: GraphFormat,
    pub output: Option<PathBuf>,
}

/// Runs `hotline graph`; exit 1 when the flow does not load.
pub fn graph(config: &Config, args: &GraphArgs) -> Result<ExitCode, ToolError> {
    let loaded = match load_flow(config, &args.flow) {
        Ok(l) => l,
        Err(diags) => {
            print_diagnostics(&diags);
            return Ok(ExitCode::from(1));
        }
    };
    let Some(flow) = loaded.flows.get(&args.flow) else {
        return Ok(ExitCode::from(1));
    };
    let g = graph::build(&loaded.flows, flow);
    let text = render(&g, args.format);
    match &args.output {
        Some(path) => std::fs::write(path, text).map_err(|source| ToolError::Write {
            path: path.clone(),
            source,
        })?,
        None => print(&text)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `hotline schema KIND`: that document on stdout.
pub fn schema(kind: super::schemas::SchemaKind) -> Result<ExitCode, ToolError> {
    print(&kind.text())?;
    Ok(ExitCode::SUCCESS)
}

/// Writes to stdout; a reader that went away (`| head`) is not an error.
pub fn print(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

/// The graph in the format asked for.
pub fn render(g: &Graph, format: GraphFormat) -> String {
    match format {
        GraphFormat::Mermaid => graph::mermaid(g),
        GraphFormat::Dot => graph::dot(g),
        GraphFormat::Svg => super::svg::svg(g),
    }
}
