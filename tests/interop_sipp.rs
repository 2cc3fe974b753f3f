//! Interoperability with SIPp: the built `hotline` binary serves the sample hotline on
//! loopback and SIPp, a third-party SIP tester, places calls from the scenarios in
//! `tests/sipp/` (menu walks with RFC 4733 and in-band keys, hang-ups from either side,
//! CANCEL while ringing, OPTIONS, refusals, a burst of concurrent calls) over UDP and TCP.
//! SIPp also plays an agent's phone: it logs in, answers the call the queue offers it and
//! hangs up, while the project's own caller waits in the queue.
//!
//! This file only starts processes and judges their results: SIPp checks the SIP exchange
//! (any unexpected or missing message fails its call, so the exit status says it all) and,
//! where SIPp cannot hear the difference, the call's story in the hotline's log shows
//! which way the keys sent it. It must not depend on timing beyond generous timeouts.
//!
//! Without `sipp` on PATH every test prints a notice and passes, unless the environment
//! sets `HOTLINE_REQUIRE_SIPP` (meant for CI), which turns the notice into a failure. The
//! same goes for media scenarios when SIPp may not open the raw socket its pcap player
//! sends through (root or CAP_NET_RAW). `python3` writes the callers' RTP
//! (`tests/sipp/gen_pcaps.py`).

// SIPp is a Unix tool, and each run links the pcap files into its folder with symlinks.
#![cfg(unix)]

mod common;

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const HOTLINE: &str = env!("CARGO_BIN_EXE_hotline");
const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// SIPp's own limit for one run; far above what any scenario needs on an idle machine.
const SIPP_TIMEOUT: Duration = Duration::from_secs(150);

/// The sample's opening hours made deterministic (open at every hour, whenever the test
/// runs) and its order lookups sent to a port where nothing listens, unless a test starts
/// a demo shop of its own.
fn sample_config(shop_url: &str) -> String {
    format!(
        "schedules:\n  service_hours: {{ timezone: Europe/Berlin, weekly: {{ mon-sun: 00:00-24:00 }} }}\n\
vars: {{ shop_url: \"{shop_url}\", crm_url: \"{shop_url}\" }}\n"
    )
}
const NO_SHOP: &str = "http://127.0.0.1:9";

// ---------------------------------------------------------------- tools present?

/// True when SIPp can run; otherwise reports why not (see [`cannot_run`]).
fn sipp_ready(test: &str) -> bool {
    match Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            cannot_run(
                test,
                "`sipp` is not on PATH (Debian/Ubuntu: apt-get install sip-tester)",
            );
            false
        }
        Err(e) => {
            cannot_run(test, &format!("`sipp` cannot be started: {e}"));
            false
        }
    }
}

/// A test that cannot run on this machine fails when `HOTLINE_REQUIRE_SIPP` is set and is
/// otherwise skipped with a notice.
fn cannot_run(test: &str, why: &str) {
    if std::env::var_os("HOTLINE_REQUIRE_SIPP").is_some() {
        panic!("{test}: HOTLINE_REQUIRE_SIPP is set but {why}");
    }
    // Straight to stderr: the test harness captures eprintln!, and a skip that nobody
    // sees looks like a pass.
    let _ = writeln!(
        std::io::stderr(),
        "skipping {test}: {why}; set HOTLINE_REQUIRE_SIPP=1 to make this an error"
    );
}

/// Where this test process keeps its files: cargo's scratch folder for integration tests.
fn tmp_root() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

/// The callers' RTP, written once per test process by `gen_pcaps.py`. Folders left by
/// earlier processes that are gone are removed first.
fn pcap_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        const PREFIX: &str = "sipp-pcaps-";
        for entry in fs::read_dir(tmp_root()).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix(PREFIX)
                && !Path::new("/proc").join(pid).exists()
            {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        let dir = tmp_root().join(format!("{PREFIX}{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let script = Path::new(REPO).join("tests/sipp/gen_pcaps.py");
        let out = Command::new("python3")
            .arg(&script)
            .arg(&dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed ({}):\n{}{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

// ---------------------------------------------------------------- ports and folders

/// One test's share of loopback ports: the hotline's SIP port (UDP and TCP), SIPp's SIP
/// and media ports, and the hotline's RTP range.
#[derive(Debug, Clone, Copy)]
struct Ports {
    sip: u16,
    sipp: u16,
    sipp_media: u16,
    rtp_first: u16,
    rtp_last: u16,
}

/// Blocks of 100 ports from 61000 to 65499: above the kernel's ephemeral ports (32768-60999
/// on Linux) and clear of the 10000-30000 RTP ranges that PBXes and load tests sharing the
/// machine like to use. The first block tried depends on the process id, so parallel test
/// runs start apart; a block with any port in use is passed over.
fn allocate_ports() -> Ports {
    const FIRST: u32 = 61000;
    const BLOCKS: u32 = 45;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7919);
    for _ in 0..BLOCKS {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let block = start.wrapping_add(n) % BLOCKS;
        let Ok(base) = u16::try_from(FIRST + block * 100) else {
            continue;
        };
        let ports = Ports {
            sip: base,
            sipp: base + 1,
            sipp_media: base + 10,
            rtp_first: base + 40,
            rtp_last: base + 99,
        };
        let sip_free = [ports.sip, ports.sipp]
            .iter()
            .all(|&p| udp_free(p) && tcp_free(p));
        let media_free = (ports.sipp_media..ports.sipp_media + 4).all(udp_free);
        let rtp_free = (ports.rtp_first..=ports.rtp_last).all(udp_free);
        if sip_free && media_free && rtp_free {
            return ports;
        }
    }
    panic!("no free block of 100 loopback ports between 61000 and 65499");
}

fn udp_free(port: u16) -> bool {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

fn tcp_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// A scratch folder, removed at the end unless the test failed (its logs are the evidence).
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = tmp_root().join(format!(
            "sipp-{}-{}-{test}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("logs kept in {}", self.0.display());
        } else {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

// ---------------------------------------------------------------- the hotline

/// A running `hotline serve`; killed when dropped.
struct Hotline {
    child: Child,
    log: PathBuf,
    ports: Ports,
}

impl Hotline {
    /// Starts the sample hotline. `extra_config` (YAML lines) makes a config of its own in
    /// `dir`, pointing at the repository's prompts and at `flows` (the repository's flows
    /// when None); without it the repository's `hotline.yaml` is used. Returns once the
    /// hotline answers OPTIONS. Another process may take a port between the check and the
    /// hotline's bind: then a new block is tried.
    fn start(dir: &Path, extra_config: Option<&str>, flows: Option<&Path>) -> Hotline {
        let config = match extra_config {
            None => Path::new(REPO).join("hotline.yaml"),
            Some(extra) => {
                let path = dir.join("hotline.yaml");
                let repo_flows = Path::new(REPO).join("flows");
                let text = format!(
                    "flows: {}\nprompts: {}\n{extra}\n",
                    yaml_quote(flows.unwrap_or(&repo_flows)),
                    yaml_quote(&Path::new(REPO).join("prompts")),
                );
                fs::write(&path, text)
                    .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
                path
            }
        };
        let log = dir.join("hotline.log");
        let mut last_failure = String::new();
        for _ in 0..5 {
            let ports = allocate_ports();
            let out = fs::File::create(&log)
                .unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
            let err = out.try_clone().expect("log file handle");
            let child = Command::new(HOTLINE)
                .arg("serve")
                .arg("--config")
                .arg(&config)
                .args(["--sip", &format!("udp:127.0.0.1:{}", ports.sip)])
                .args(["--sip", &format!("tcp:127.0.0.1:{}", ports.sip)])
                .args([
                    "--rtp-ports",
                    &format!("{}-{}", ports.rtp_first, ports.rtp_last),
                ])
                .env("RUST_LOG", "info")
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {HOTLINE}: {e}"));
            let mut hotline = Hotline {
                child,
                log: log.clone(),
                ports,
            };
            match hotline.wait_until_answering() {
                Ok(()) => return hotline,
                Err(e) if e.contains("Address already in use") => last_failure = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("the hotline found no free ports in five tries:\n{last_failure}");
    }

    /// Sends OPTIONS over UDP until a 200 comes back.
    fn wait_until_answering(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("probe socket");
        sock.set_read_timeout(Some(Duration::from_millis(250)))
            .expect("probe timeout");
        let target = SocketAddr::from((Ipv4Addr::LOCALHOST, self.ports.sip));
        let local = sock.local_addr().expect("probe address");
        let mut attempt = 0u32;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "the hotline exited ({status}) before answering:\n{}",
                    self.log_text()
                ));
            }
            attempt += 1;
            let options = format!(
                "OPTIONS sip:probe@127.0.0.1:{port} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {local};branch=z9hG4bK-probe-{attempt}\r\n\
                 Max-Forwards: 70\r\n\
                 From: <sip:probe@{local}>;tag=probe\r\n\
                 To: <sip:probe@127.0.0.1:{port}>\r\n\
                 Call-ID: probe-{attempt}-{pid}@127.0.0.1\r\n\
                 CSeq: {attempt} OPTIONS\r\n\
                 Content-Length: 0\r\n\r\n",
                port = self.ports.sip,
                pid = std::process::id(),
            );
            let _ = sock.send_to(options.as_bytes(), target);
            let mut buf = [0u8; 4096];
            // Connection refused (nobody listening yet) shows up as an error here.
            if let Ok((n, _)) = sock.recv_from(&mut buf)
                && buf[..n].starts_with(b"SIP/2.0 200")
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "the hotline did not answer OPTIONS within 60 s:\n{}",
            self.log_text()
        ))
    }

    /// Waits up to `timeout` for a line of the log that `wanted` accepts.
    fn wait_for_log(&self, timeout: Duration, wanted: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log_text().lines().map(strip_ansi).any(|l| wanted(&l)) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The "call ended" lines of the hotline's log (each holds the call's story), waiting
    /// up to 20 s for `count` of them: the hotline logs a call's end only once its last
    /// transaction is over, which may be just after SIPp exits.
    fn ended_calls(&self, count: usize) -> Vec<String> {
        self.ended_calls_within(count, Duration::from_secs(20))
    }

    /// [`Hotline::ended_calls`], waiting up to `timeout`.
    fn ended_calls_within(&self, count: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let lines: Vec<String> = self
                .log_text()
                .lines()
                .filter(|l| l.contains("call ended"))
                .map(strip_ansi)
                .collect();
            if lines.len() >= count || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Hotline {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn yaml_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "''"))
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------- SIPp

#[derive(Clone, Copy, PartialEq)]
enum Protocol {
    Udp,
    Tcp,
}

/// How SIPp is to place its calls.
struct Run<'a> {
    scenario: &'a str,
    transport: Protocol,
    /// Calls in all (-m).
    calls: u32,
    /// Calls started per second (-r), and most at once (-l).
    rate: u32,
    limit: u32,
    /// The scenario for requests outside SIPp's own calls (-oocsf): the INVITE an agent's
    /// phone is offered comes with a Call-ID SIPp did not make.
    out_of_call: Option<&'a str>,
}

impl Run<'_> {
    fn one(scenario: &str, transport: Protocol) -> Run<'_> {
        Run {
            scenario,
            transport,
            calls: 1,
            rate: 1,
            limit: 1,
            out_of_call: None,
        }
    }
}

/// Runs SIPp against `hotline` in `dir` and fails the test, with SIPp's logs and the
/// hotline's, unless every call succeeded (exit status 0). Returns false when the test
/// cannot run here: SIPp's pcap player needs a raw socket, which takes root or CAP_NET_RAW.
fn sipp(hotline: &Hotline, dir: &Path, run: &Run) -> bool {
    let name = run.scenario.trim_end_matches(".xml");
    let tag = match run.transport {
        Protocol::Udp => "udp",
        Protocol::Tcp => "tcp",
    };
    let work = dir.join(format!("sipp-{name}-{tag}"));
    fs::create_dir_all(&work).expect("sipp folder");
    // play_pcap_audio names its file relative to the working folder.
    for entry in fs::read_dir(pcap_dir()).expect("pcap folder").flatten() {
        let _ = std::os::unix::fs::symlink(entry.path(), work.join(entry.file_name()));
    }
    let scenario = Path::new(REPO).join("tests/sipp").join(run.scenario);
    let p = hotline.ports;
    let mut cmd = Command::new("sipp");
    cmd.current_dir(&work)
        .arg(format!("127.0.0.1:{}", p.sip))
        .arg("-sf")
        .arg(&scenario)
        .args(["-s", "hotline"])
        .args(["-i", "127.0.0.1", "-p", &p.sipp.to_string()])
        .args(["-mi", "127.0.0.1", "-mp", &p.sipp_media.to_string()])
        .args(["-m", &run.calls.to_string()])
        .args(["-r", &run.rate.to_string(), "-rp", "1000"])
        .args(["-l", &run.limit.to_string()])
        .args(["-timeout", &format!("{}s", SIPP_TIMEOUT.as_secs())])
        .arg("-timeout_error")
        .arg("-nostdin")
        .args(["-trace_err", "-error_file", "errors.log"])
        .args(["-trace_msg", "-message_file", "messages.log"])
        .args(["-trace_logs", "-log_file", "logs.log"])
        .stdin(Stdio::null())
        .stdout(fs::File::create(work.join("stdout.log")).expect("sipp stdout"))
        .stderr(fs::File::create(work.join("stderr.log")).expect("sipp stderr"));
    if run.transport == Protocol::Tcp {
        cmd.args(["-t", "t1"]);
    }
    if let Some(ooc) = run.out_of_call {
        cmd.arg("-oocsf")
            .arg(Path::new(REPO).join("tests/sipp").join(ooc));
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("starting sipp: {e}"));
    // SIPp stops itself at -timeout; this is only the backstop for a hung SIPp.
    let deadline = Instant::now() + SIPP_TIMEOUT + Duration::from_secs(60);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    if status.is_some_and(|s| s.success()) {
        return true;
    }
    let read = |f: &str| {
        let mut s = String::new();
        let _ = fs::File::open(work.join(f)).and_then(|mut h| h.read_to_string(&mut s));
        s
    };
    if read("stderr.log").contains("Can't create raw IPv4 socket") {
        cannot_run(
            run.scenario,
            "SIPp may not open the raw socket its pcap player sends RTP through \
             (run as root, or `setcap cap_net_raw+ep $(which sipp)`)",
        );
        return false;
    }
    let stdout = read("stdout.log");
    let tail: Vec<&str> = stdout.lines().rev().take(40).collect();
    panic!(
        "sipp {} over {tag} failed: {}\n\
         --- sipp errors.log ---\n{}\n--- sipp logs.log ---\n{}\n--- sipp stderr ---\n{}\n\
         --- sipp screen (last lines) ---\n{}\n--- sipp messages.log ---\n{}\n\
         --- hotline log ---\n{}",
        run.scenario,
        status.map_or("killed after the backstop timeout".to_string(), |s| s
            .to_string()),
        read("errors.log"),
        read("logs.log"),
        read("stderr.log"),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        read("messages.log"),
        hotline.log_text()
    );
}

// ---------------------------------------------------------------- stories

/// The steps named in a "call ended" line, in order.
fn steps(story: &str) -> Vec<&str> {
    story
        .match_indices("step: \"")
        .filter_map(|(i, m)| {
            let rest = &story[i + m.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect()
}

/// Checks the one call's story: the steps it went through and bits that must appear.
fn assert_story(hotline: &Hotline, path: &[&str], contains: &[&str]) {
    let ended = hotline.ended_calls(1);
    assert_eq!(
        ended.len(),
        1,
        "expected the hotline to log the end of exactly one call:\n{}",
        hotline.log_text()
    );
    let story = &ended[0];
    assert_eq!(
        steps(story),
        path,
        "the keys took the call another way (or the log no longer lists `step: \"...\"`):\n{story}"
    );
    for needle in contains {
        assert!(
            story.contains(needle),
            "the call's story lacks `{needle}`:\n{story}"
        );
    }
}

const MENU_TO_ADVISOR: &[&str] = &[
    "welcome",
    "choose_language",
    "opening_hours",
    "main_menu",
    "advisor",
    // No advisor is logged in: the queue sends the caller on to the message.
    "advisors_busy",
    "goodbye",
];

// ---------------------------------------------------------------- the tests

/// One test's hotline and folder. The hotline is declared first, so it is stopped before
/// the folder holding its log goes.
struct Case {
    hotline: Hotline,
    dir: Scratch,
}

impl Case {
    /// None when SIPp is missing (and that is allowed).
    fn start(test: &str, extra_config: Option<&str>) -> Option<Case> {
        if !sipp_ready(test) {
            return None;
        }
        let dir = Scratch::new(test);
        let hotline = Hotline::start(&dir.0, extra_config, None);
        Some(Case { hotline, dir })
    }

    /// [`Case::start`] with a flows folder of the test's own, holding `main.yaml` alone.
    fn start_with_flow(test: &str, extra_config: &str, main_flow: &str) -> Option<Case> {
        if !sipp_ready(test) {
            return None;
        }
        let dir = Scratch::new(test);
        let flows = dir.0.join("flows");
        fs::create_dir_all(&flows).expect("flows folder");
        fs::write(flows.join("main.yaml"), main_flow).expect("writing the flow");
        let hotline = Hotline::start(&dir.0, Some(extra_config), Some(&flows));
        Some(Case { hotline, dir })
    }

    /// False when the scenario cannot run here (see [`sipp`]).
    fn sipp(&self, run: &Run) -> bool {
        sipp(&self.hotline, &self.dir.0, run)
    }
}

fn menu_walk(test: &str, scenario: &str, transport: Protocol) {
    let Some(case) = Case::start(test, Some(&sample_config(NO_SHOP))) else {
        return;
    };
    if !case.sipp(&Run::one(scenario, transport)) {
        return;
    }
    assert_story(
        &case.hotline,
        MENU_TO_ADVISOR,
        &["language: \"en\"", "FlowHungUp"],
    );
}

#[test]
fn menu_rfc4733_over_udp_reaches_the_advisor_and_the_hotline_hangs_up() {
    menu_walk("menu_rfc4733_udp", "menu_rfc2833.xml", Protocol::Udp);
}

#[test]
fn menu_rfc4733_over_tcp_reaches_the_advisor_and_the_hotline_hangs_up() {
    menu_walk("menu_rfc4733_tcp", "menu_rfc2833.xml", Protocol::Tcp);
}

#[test]
fn menu_with_inband_tones_over_speech_reaches_the_advisor() {
    menu_walk("menu_inband", "menu_inband.xml", Protocol::Udp);
}

/// The order number goes to a demo shop of the test's own: 123456 is shipped. The "no"
/// the caller presses for "anything else?" comes during the status, typed ahead, so it
/// answers that menu and leads to the survey, which the silent caller lets pass.
#[test]
fn order_status_in_german_collects_the_order_number() {
    let rt = tokio::runtime::Runtime::new().expect("a runtime for the demo shop");
    let shop = rt
        .block_on(hotline::tools::demo_shop::DemoShop::start(
            "127.0.0.1:0".parse().expect("address"),
        ))
        .expect("the demo shop starts");
    let Some(case) = Case::start("order_status", Some(&sample_config(&shop.url()))) else {
        return;
    };
    if !case.sipp(&Run::one("order_status.xml", Protocol::Udp)) {
        return;
    }
    assert_story(
        &case.hotline,
        &[
            "welcome",
            "choose_language",
            "opening_hours",
            "main_menu",
            "order_status",
            "lookup_order",
            "order_found",
            "order_shipped",
            "anything_else",
            "survey",
            "rating",
            "rating", // the no-input, and giving up, name the step too
            "rating",
            "no_rating",
            "goodbye",
        ],
        &["language: \"de\"", "value: \"123456\"", "FlowHungUp"],
    );
    drop(shop);
}

fn caller_hangs_up(test: &str, transport: Protocol) {
    let Some(case) = Case::start(test, Some(&sample_config(NO_SHOP))) else {
        return;
    };
    if !case.sipp(&Run::one("caller_hangup.xml", transport)) {
        return;
    }
    let ended = case.hotline.ended_calls(1);
    assert!(
        ended.len() == 1 && ended[0].contains("CallerHungUp"),
        "expected one call ended by the caller:\n{}",
        case.hotline.log_text()
    );
}

#[test]
fn caller_hangs_up_over_udp() {
    caller_hangs_up("caller_hangup_udp", Protocol::Udp);
}

#[test]
fn caller_hangs_up_over_tcp() {
    caller_hangs_up("caller_hangup_tcp", Protocol::Tcp);
}

#[test]
fn options_is_answered_with_allow_over_udp_and_tcp() {
    let Some(case) = Case::start("options", Some(&sample_config(NO_SHOP))) else {
        return;
    };
    case.sipp(&Run::one("options.xml", Protocol::Udp));
    case.sipp(&Run::one("options.xml", Protocol::Tcp));
}

/// SIPp logs in as an agent with digest authentication and logs out again, over UDP and
/// TCP. SIPp 3.6 computes MD5 only and reads only the first challenge, so the hotline is
/// set to offer MD5 alone. Alice is an agent of `agents:` in hotline.yaml.
#[test]
fn agent_registers_with_digest_auth_and_unregisters() {
    let config = format!(
        "{}sip: {{ digest_algorithms: [MD5] }}\nqueues: {{ support: {{}} }}\n\
agents: {{ alice: {{ password: secret, queues: {{ support: 0 }} }} }}\n",
        sample_config(NO_SHOP)
    );
    let Some(case) = Case::start("register_auth", Some(&config)) else {
        return;
    };
    case.sipp(&Run::one("register_auth.xml", Protocol::Udp));
    case.sipp(&Run::one("register_auth.xml", Protocol::Tcp));
}

/// SIPp is alice's phone (agent_login.xml logs in with MD5 digest authentication, see
/// [`agent_registers_with_digest_auth_and_unregisters`]; agent_uas.xml answers the offer).
/// Once alice is available the project's own caller calls in and is queued; the hotline
/// offers the call to alice, SIPp answers and talks 4 s (its RTP must reach the caller
/// through the bridge) and hangs up, and the caller goes on to the step's `after`.
fn agent_answers_the_offered_call(test: &str, transport: Protocol) {
    let config = "sip: { digest_algorithms: [MD5] }\n\
queues: { support: { ring_timeout: 10s } }\n\
agents: { alice: { password: secret, queues: { support: 0 } } }\n";
    let Some(case) = Case::start_with_flow(test, config, common::QUEUE_FLOW) else {
        return;
    };
    let mut run = Run::one("agent_login.xml", transport);
    run.out_of_call = Some("agent_uas.xml");
    let rt = tokio::runtime::Runtime::new().expect("a runtime for the caller");
    let (ran, caller) = std::thread::scope(|s| {
        let agent = s.spawn(|| case.sipp(&run));
        let available = case.hotline.wait_for_log(Duration::from_secs(30), |l| {
            l.contains("agent state") && l.contains("alice") && l.contains("available")
        });
        let caller = if available {
            rt.block_on(caller_reaches_the_agent(case.hotline.ports.sip))
        } else {
            Err("alice never became available".to_string())
        };
        // SIPp's verdict first: when it failed, its logs explain the caller's trouble.
        let ran = match agent.join() {
            Ok(ran) => ran,
            Err(sipp_failed) => {
                if let Err(e) = &caller {
                    eprintln!("{test}: and the caller: {e}");
                }
                std::panic::resume_unwind(sipp_failed)
            }
        };
        (ran, caller)
    });
    if !ran {
        return;
    }
    if let Err(e) = caller {
        panic!(
            "{test}: {e}\n--- hotline log ---\n{}",
            case.hotline.log_text()
        );
    }
}

/// Calls the hotline as a caller over UDP and checks what the caller hears: the agent's
/// RTP (listen.pcap), then, after the agent's BYE, the `after` step's prompt; then the
/// hotline's BYE.
async fn caller_reaches_the_agent(sip_port: u16) -> Result<(), String> {
    use hotline_load::caller::{CallMedia, Offer, Phone};
    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, sip_port));
    let mut phone = Phone::new(hotline::config::Protocol::Udp, server)
        .await
        .map_err(|e| format!("the caller's phone: {e}"))?;
    let media = CallMedia::bind(Ipv4Addr::LOCALHOST.into(), true)
        .map_err(|e| format!("the caller's RTP socket: {e}"))?;
    let call = phone
        .call("hotline", &media, Offer::Default)
        .await
        .map_err(|e| format!("the call: {e}"))?;
    media.connect(
        call.remote_rtp,
        call.codec,
        call.payload_type,
        call.telephone_event_pt,
    );
    let thanks = common::prompt("en", "survey_thanks");
    let Some(at) = media
        .wait_for_prompt(&thanks, 0, Duration::from_secs(60))
        .await
    else {
        return Err(format!(
            "the caller never heard the `after` step's prompt ({} frames heard)",
            media.heard_len()
        ));
    };
    let agent = pcap_frames(&pcap_dir().join("listen.pcap"));
    let heard = media.heard();
    let from_agent = heard
        .get(..at)
        .unwrap_or_default()
        .iter()
        .filter(|h| agent.contains(&pcmu_decoded(&h.payload)))
        .count();
    // SIPp talks 4 s (200 frames) before its BYE; most of it must come through.
    if from_agent < 100 {
        return Err(format!(
            "the caller heard {from_agent} frames of the agent's RTP before the `after` \
             prompt, expected at least 100"
        ));
    }
    if let Some(last) = heard
        .iter()
        .rposition(|h| agent.contains(&pcmu_decoded(&h.payload)))
        && last > at
    {
        return Err(format!(
            "the agent's RTP still reached the caller (frame {last}) after the `after` \
             prompt began (frame {at})"
        ));
    }
    phone
        .expect_bye(Duration::from_secs(30))
        .await
        .map_err(|e| format!("the hotline's BYE after the `after` step: {e}"))?;
    Ok(())
}

/// The decoded PCMU frames of an RTP stream written by gen_pcaps.py (little-endian pcap,
/// Ethernet/IPv4/UDP, 12-byte RTP headers). Decoded, because a bridge may re-encode and
/// G.711 has two codes for silence.
fn pcap_frames(path: &Path) -> Vec<Vec<i16>> {
    const FRAME_HEADERS: usize = 14 + 20 + 8 + 12;
    let data = fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut frames = Vec::new();
    let mut at = 24;
    while let Some(header) = data.get(at..at + 16) {
        let len = u32::from_le_bytes([header[8], header[9], header[10], header[11]]) as usize;
        let Some(frame) = data.get(at + 16..at + 16 + len) else {
            break;
        };
        // PCMU (payload type 0) only: the stream has no events when it has no keys.
        if frame
            .get(FRAME_HEADERS - 11)
            .is_some_and(|pt| pt & 0x7f == 0)
            && let Some(payload) = frame.get(FRAME_HEADERS..)
        {
            frames.push(pcmu_decoded(payload));
        }
        at += 16 + len;
    }
    assert!(!frames.is_empty(), "no PCMU frames in {}", path.display());
    frames
}

fn pcmu_decoded(payload: &[u8]) -> Vec<i16> {
    use hotline::media::g711::{Codec, FRAME_SAMPLES};
    if payload.len() != FRAME_SAMPLES {
        return Vec::new();
    }
    let mut pcm = vec![0i16; FRAME_SAMPLES];
    Codec::Pcmu.decode_into(payload, &mut pcm);
    pcm
}

#[test]
fn agent_on_sipp_over_udp_answers_the_queued_call_and_hangs_up() {
    agent_answers_the_offered_call("agent_uas_udp", Protocol::Udp);
}

#[test]
fn agent_on_sipp_over_tcp_answers_the_queued_call_and_hangs_up() {
    agent_answers_the_offered_call("agent_uas_tcp", Protocol::Tcp);
}

#[test]
fn requests_for_unknown_dialogs_get_481() {
    let Some(case) = Case::start("unknown_dialog", Some(&sample_config(NO_SHOP))) else {
        return;
    };
    case.sipp(&Run::one("unknown_dialog.xml", Protocol::Udp));
}

#[test]
fn unsupported_and_malformed_requests_are_refused() {
    let Some(case) = Case::start("refusals", Some(&sample_config(NO_SHOP))) else {
        return;
    };
    case.sipp(&Run::one("refusals.xml", Protocol::Udp));
}

#[test]
fn cancel_while_ringing_gets_200_and_487() {
    let config = format!("sip: {{ answer_after: 4s }}\n{}", sample_config(NO_SHOP));
    let Some(case) = Case::start("cancel", Some(&config)) else {
        return;
    };
    case.sipp(&Run::one("cancel.xml", Protocol::Udp));
}

/// Six callers walk the sample menu with RFC 4733 keys over a loopback that loses 5 % of
/// the UDP datagrams it receives, duplicates 2 % of those sent, and delays 10 % of the RTP
/// sent to the engine by about 100 ms, behind later packets (in a network namespace the
/// test makes; see `common::netns`). Signalling completes through retransmissions on
/// both sides (SIPp's INVITE, the engine's 200 until the ACK and its BYE until the 200),
/// and every call takes exactly the menu path its keys choose: no key lost, none doubled
/// (a doubled 1 would pick the main menu's first option instead of the advisor).
#[test]
fn menu_walks_survive_a_link_that_loses_and_duplicates_datagrams() {
    let test = "lossy_menu";
    let Some(net) = common::netns::FaultyNet::create(test, 50, 20) else {
        return;
    };
    net.enter();
    let Some(case) = Case::start(test, Some(&sample_config(NO_SHOP))) else {
        return;
    };
    let ports = case.hotline.ports;
    net.delay_some((ports.rtp_first, ports.rtp_last), 100, 16)
        .expect("delaying some of the callers' RTP");
    let run = Run {
        scenario: "menu_rfc2833.xml",
        transport: Protocol::Udp,
        calls: 6,
        rate: 1,
        limit: 6,
        out_of_call: None,
    };
    if !case.sipp(&run) {
        return;
    }
    // A call ends once its last transaction does: a BYE whose 200 was lost is sent again
    // until timer F (32 s).
    let ended = case.hotline.ended_calls_within(6, Duration::from_secs(60));
    assert_eq!(
        ended.len(),
        6,
        "six calls ended:\n{}",
        case.hotline.log_text()
    );
    for story in &ended {
        assert_eq!(
            steps(story),
            MENU_TO_ADVISOR,
            "a key was lost or doubled on the lossy link:\n{story}"
        );
        assert!(story.contains("FlowHungUp"), "{story}");
    }
    let faults = net.faults();
    assert!(
        faults.dropped > 0 && faults.duplicated > 0 && faults.delayed > 0,
        "the link lost, duplicated and delayed datagrams: {faults:?}"
    );
    eprintln!("{test}: {faults:?}");
}

#[test]
fn twenty_concurrent_callers_all_get_through() {
    let Some(case) = Case::start("load", Some(&sample_config(NO_SHOP))) else {
        return;
    };
    let run = Run {
        scenario: "load.xml",
        transport: Protocol::Udp,
        calls: 20,
        rate: 20,
        limit: 20,
        out_of_call: None,
    };
    if !case.sipp(&run) {
        return;
    }
    let ended = case.hotline.ended_calls(20);
    let by_caller = ended.iter().filter(|l| l.contains("CallerHungUp")).count();
    assert_eq!(
        by_caller,
        20,
        "expected 20 calls ended by their callers:\n{}",
        case.hotline.log_text()
    );
}
