//! The built binary's logs: on standard error only, one JSON object a line with
//! `--log-format json` (a call's lines carrying its `call_id`), and `hotline load --json`
//! writing nothing but JSON on standard output, so that `>> results.jsonl` stays valid.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::repo;
use serde_json::Value;

const HOTLINE: &str = env!("CARGO_BIN_EXE_hotline");

/// A scratch folder of this test process.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hotline-logs-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// Every line of `text` as JSON; panics naming the first line that is not.
fn json_lines(text: &str, what: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap_or_else(|e| panic!("{what}: a line is not JSON ({e}): {l:?}\n{text}"))
        })
        .collect()
}

/// The `call_id` of the span a JSON log line was written in, if any.
fn call_id(line: &Value) -> Option<&str> {
    let current = line.pointer("/span/call_id").and_then(Value::as_str);
    let listed = || {
        line.get("spans")?
            .as_array()?
            .iter()
            .find_map(|s| s.get("call_id")?.as_str())
    };
    current.or_else(listed)
}

/// Stops the engine (SIGINT, as Ctrl-C would), waiting at most 20 s before killing it.
fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits for the engine's "listening for SIP" line on `log` and returns its UDP address.
fn sip_address(child: &mut Child, log: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let text = fs::read_to_string(log).unwrap_or_default();
        // Only whole lines: the last one may still be being written.
        let whole = text.rfind('\n').map_or("", |i| &text[..=i]);
        for line in json_lines(whole, "the engine's stderr") {
            if line.pointer("/fields/message").and_then(Value::as_str) == Some("listening for SIP")
                && line.pointer("/fields/transport").and_then(Value::as_str) == Some("UDP")
            {
                let addr = line.pointer("/fields/address").and_then(Value::as_str);
                return addr.expect("the address is logged").to_string();
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the engine exited ({status}) before listening:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "the engine did not say where it listens:\n{}",
        fs::read_to_string(log).unwrap_or_default()
    );
}

#[test]
fn json_logs_on_stderr_carry_the_call_id_and_load_json_keeps_stdout_clean() {
    let dir = scratch("json");
    let rtp_first = 31000 + (std::process::id() % 16) as u16 * 100;
    fs::write(
        dir.join("hotline.yaml"),
        format!(
            "sip: {{ listen: [\"udp:127.0.0.1:0\"] }}\nrtp: {{ ports: {rtp_first}-{} }}\n\
flows: {}\nprompts: {}\n{}",
            rtp_first + 99,
            repo().join("flows").display(),
            repo().join("prompts").display(),
            common::SAMPLE_TEST_CONFIG
        ),
    )
    .expect("configuration");
    let (out, err) = (dir.join("serve.stdout"), dir.join("serve.stderr"));
    let mut engine = Command::new(HOTLINE)
        .args(["--log-format", "json", "serve", "--config"])
        .arg(dir.join("hotline.yaml"))
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).expect("stdout file"))
        .stderr(fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("starting the engine");
    let target = sip_address(&mut engine, &err);

    // One short call of the load tool's script against it; its figures go to stdout.
    let load = Command::new(HOTLINE)
        .args([
            "--log-format",
            "json",
            "load",
            "--json",
            "--target",
            &target,
        ])
        .args([
            "--calls", "1", "--rate", "10", "--hold", "6", "--warmup", "0.5",
        ])
        .args(["--first-key-after", "0.5", "--key-timeout", "1"])
        .arg("--config")
        .arg(repo().join("hotline.yaml"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .expect("running hotline load");
    // The engine logs a call's end once its last transaction is over, which may be just
    // after the tool exits.
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline
        && !fs::read_to_string(&err)
            .unwrap_or_default()
            .contains("call ended")
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    stop(&mut engine);

    let load_out = String::from_utf8_lossy(&load.stdout);
    let figures = json_lines(&load_out, "hotline load --json's stdout");
    assert_eq!(
        figures.len(),
        1,
        "one JSON line of figures:\n{load_out}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&load.stderr)
    );
    assert!(figures[0].is_object());

    let serve_out = fs::read_to_string(&out).expect("stdout");
    assert!(
        serve_out.is_empty(),
        "serve writes nothing on stdout:\n{serve_out}"
    );
    let text = fs::read_to_string(&err).expect("stderr");
    assert!(!text.contains('\u{1b}'), "no colour when not a terminal");
    let lines = json_lines(&text, "serve's stderr");
    let of_calls: Vec<&Value> = lines.iter().filter(|l| call_id(l).is_some()).collect();
    let ended = of_calls
        .iter()
        .find(|l| l.pointer("/fields/message").and_then(Value::as_str) == Some("call ended"))
        .unwrap_or_else(|| panic!("a 'call ended' line inside the call's span:\n{text}"));
    let id = call_id(ended).expect("call id");
    assert!(!id.is_empty());
    assert!(
        of_calls.iter().filter(|l| call_id(l) == Some(id)).count() >= 2,
        "more than one line of the call carries its id:\n{text}"
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn text_logs_go_to_stderr_without_colour_when_redirected() {
    let dir = scratch("text");
    fs::write(
        dir.join("hotline.yaml"),
        format!(
            "sip: {{ listen: [\"udp:127.0.0.1:0\"] }}\nflows: {}\nprompts: {}\n{}",
            repo().join("flows").display(),
            repo().join("prompts").display(),
            common::SAMPLE_TEST_CONFIG
        ),
    )
    .expect("configuration");
    let mut engine = Command::new(HOTLINE)
        .args(["serve", "--config"])
        .arg(dir.join("hotline.yaml"))
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the engine");
    let stderr = engine.stderr.take().expect("stderr");
    let mut first = String::new();
    // The first line the engine logs, then it is stopped.
    BufReader::new(stderr)
        .read_line(&mut first)
        .expect("reading stderr");
    stop(&mut engine);
    let mut rest = String::new();
    if let Some(mut o) = engine.stdout.take() {
        use std::io::Read;
        let _ = o.read_to_string(&mut rest);
    }
    assert!(!first.trim().is_empty(), "the engine logs on stderr");
    assert!(!first.contains('\u{1b}'), "no colour codes: {first:?}");
    assert!(
        serde_json::from_str::<Value>(&first).is_err(),
        "text by default"
    );
    assert!(rest.is_empty(), "nothing on stdout: {rest}");
    let _ = fs::remove_dir_all(&dir);
}

/// `hotline load` without `--target` starts its own engine: that engine logs in the load
/// tool's format too, so one `--log-format json` makes the whole run's logs JSON.
#[test]
fn the_engine_load_starts_logs_in_the_load_tools_format() {
    let dir = scratch("load-engine");
    fs::write(
        dir.join("hotline.yaml"),
        format!(
            "flows: {}\nprompts: {}\n{}",
            repo().join("flows").display(),
            repo().join("prompts").display(),
            common::SAMPLE_TEST_CONFIG
        ),
    )
    .expect("configuration");
    // A free loopback port for the engine's SIP, and RTP ports of this process's own.
    let sip_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port();
    let rtp_first = 24400 + (std::process::id() % 16) as u16 * 100;
    let engine_log = dir.join("engine.log");
    let load = Command::new(HOTLINE)
        .args(["--log-format", "json", "load", "--json"])
        .args([
            "--calls", "1", "--rate", "10", "--hold", "6", "--warmup", "0.5",
        ])
        .args(["--first-key-after", "0.5", "--key-timeout", "1"])
        .args(["--sip-port", &sip_port.to_string()])
        .args(["--rtp-ports", &format!("{rtp_first}-{}", rtp_first + 99)])
        .arg("--config")
        .arg(dir.join("hotline.yaml"))
        .arg("--engine-log")
        .arg(&engine_log)
        .env("RUST_LOG", "info")
        .env_remove(LOG_FORMAT_ENV)
        .stdin(Stdio::null())
        .output()
        .expect("running hotline load");
    let engine = fs::read_to_string(&engine_log).unwrap_or_default();
    assert!(
        load.status.success() || !engine.is_empty(),
        "the load run failed before its engine logged:\n{}",
        String::from_utf8_lossy(&load.stderr)
    );
    let lines = json_lines(&engine, "the started engine's log");
    assert!(
        lines
            .iter()
            .any(|l| l.pointer("/fields/message").and_then(Value::as_str)
                == Some("listening for SIP")),
        "the engine's own lines are JSON:\n{engine}"
    );
    let _ = fs::remove_dir_all(&dir);
}

/// What `--log-format` falls back to; see `src/main.rs`.
const LOG_FORMAT_ENV: &str = "HOTLINE_LOG_FORMAT";
