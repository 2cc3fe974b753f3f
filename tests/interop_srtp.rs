//! SRTP with SDES keys (RFC 4568) against baresip's `srtp` module with `mediaenc=srtp-mand`:
//! RTP/SAVP only, packets that do not authenticate are not played.
//!
//! 1. baresip calls the IVR over UDP on loopback with `rtp.srtp: required` (a plain offer
//!    would get 488), hears the menu prompt (our packets authenticate and decrypt at
//!    baresip: its recording of what it heard is not silence), and presses 1 (its RFC 4733
//!    events authenticate here), which moves the flow on: the goodbye and our BYE come long
//!    before the menu's 30 s timeout would end the call.
//! 2. baresip as agent `alice` (`srtp: true`: the engine offers it RTP/SAVP) answers a
//!    queue call from a plain-RTP caller; each leg has its own context, and the audio
//!    crosses the bridge both ways: the caller hears baresip's tone, baresip hears the
//!    caller's.
//!
//! Both check that no SRTP packet failed authentication or was taken for a replay here.
//! Without baresip (or its `srtp` module) the tests are skipped with a notice, unless
//! `HOTLINE_REQUIRE_BARESIP` is set, which makes it a failure.

#![cfg(unix)]

mod common;

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::baresip::{
    AGENT_TONE, BASE_MODULES, Baresip, BaresipConfig, baresip_modules,
    caller_and_agent_hear_each_other, cannot_run, heard_frames, loud_frames, wait_for,
};
use hotline::config::{Config, Protocol};
use hotline::server::RunningServer;
use hotline::sip::sdes::SrtpPolicy;

/// A menu whose key 1 says goodbye and hangs up; without a key it waits 30 s.
const MENU_FLOW: &str = "start: menu
defaults: { language: en }
steps:
  menu:
    menu:
      prompt: main_menu
      options: { \"1\": bye }
      timeout: 30s
      retries: 0
      on_failure: bye
  bye:
    play: goodbye
    next: hangup
";

fn modules() -> Option<PathBuf> {
    let mut wanted = BASE_MODULES.to_vec();
    wanted.extend(["srtp", "menu", "cons"]);
    match baresip_modules(&wanted) {
        Ok(m) => Some(m),
        Err(why) => {
            cannot_run("the baresip SRTP test", &why);
            None
        }
    }
}

fn scratch(name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("interop_srtp-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(root.join("flows")).unwrap();
    root
}

/// SRTP packets refused by every media worker: (authentication failed, replayed), and
/// the packets received.
fn srtp_counts(srv: &RunningServer) -> (u64, u64, u64) {
    let stats = srv.server.deps.media.stats();
    let sum = |f: &dyn Fn(&hotline::media::clock::ClockStats) -> u64| {
        stats.iter().map(|s| f(s)).sum::<u64>()
    };
    (
        sum(&|s| s.srtp_auth_failed.load(Ordering::Relaxed)),
        sum(&|s| s.srtp_replayed.load(Ordering::Relaxed)),
        sum(&|s| s.packets_in.load(Ordering::Relaxed)),
    )
}

/// baresip's configuration for SRTP: its `srtp` module, the menu (for `/dial`) and the
/// UDP console (for key presses) on a port of its own, which is returned with its SIP port.
fn srtp_baresip(conf: &Path, modules: &Path, snd: &Path, account: String) -> (u16, SocketAddr) {
    let console = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|s| s.local_addr())
        .expect("a UDP port");
    let port = BaresipConfig {
        dir: conf,
        modules,
        account,
        tone: AGENT_TONE as u32,
        snd,
        extra_modules: &["srtp", "menu", "cons"],
        extra: format!("cons_listen\t\t{console}\n"),
    }
    .write();
    (port, console)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_with_mandatory_srtp_hears_the_menu_and_its_key_moves_the_flow() {
    let Some(modules) = modules() else { return };
    common::logs();
    let root = scratch("ivr");
    let flows = root.join("flows");
    fs::write(flows.join("main.yaml"), MENU_FLOW).unwrap();
    let srv = common::server(|cfg| {
        cfg.flows_dir = flows.clone();
        cfg.srtp = SrtpPolicy::Required;
        cfg.no_media_timeout = Duration::from_secs(60);
    })
    .await;
    let sip = common::addr(&srv, Protocol::Udp);
    let conf = root.join("baresip");
    let snd = root.join("snd");
    let (_, console) = srtp_baresip(
        &conf,
        &modules,
        &snd,
        "<sip:caller@127.0.0.1>;regint=0;mediaenc=srtp-mand".to_owned(),
    );
    let dial = format!("/dial sip:hotline@127.0.0.1:{}", sip.port());
    let baresip = Baresip::start(&conf, &root.join("baresip.log"), &[&dial]);
    let deps = srv.server.deps.clone();
    let answered = wait_for(Duration::from_secs(20), || {
        deps.resources().call_tasks == 1 && srtp_counts(&srv).2 > 50
    })
    .await;
    assert!(
        answered,
        "baresip's SRTP call was not answered, or no SRTP packet of it authenticated ({:?})\n--- baresip ---\n{}",
        srtp_counts(&srv),
        baresip.log_text()
    );
    // Let the menu play a little, then press 1 on baresip's console.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pressed = Instant::now();
    let keys = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    keys.send_to(b"1", console).unwrap();
    let ended = wait_for(Duration::from_secs(15), || deps.resources().call_tasks == 0).await;
    assert!(
        ended,
        "the key did not end the menu: the call is still up {:?} after it ({:?})\n--- baresip ---\n{}",
        pressed.elapsed(),
        srtp_counts(&srv),
        baresip.log_text()
    );
    // baresip closes its recording when the call ends; it heard the prompt decrypted.
    let heard = wait_for(Duration::from_secs(10), || {
        loud_frames(&heard_frames(&snd)) >= 50
    })
    .await;
    assert!(
        heard,
        "baresip heard no prompt ({} frames recorded, {} loud)\n--- baresip ---\n{}",
        heard_frames(&snd).len(),
        loud_frames(&heard_frames(&snd)),
        baresip.log_text()
    );
    assert_srtp_enabled(&baresip);
    let (auth, replay, _) = srtp_counts(&srv);
    assert_eq!((auth, replay), (0, 0), "SRTP packets refused here");
    drop(baresip);
    drop(srv);
    let _ = fs::remove_dir_all(&root);
}

/// baresip's `srtp` module says so when the stream is SRTP (and with `srtp-mand` there
/// is no other way).
fn assert_srtp_enabled(baresip: &Baresip) {
    let log = baresip.log_text();
    assert!(
        log.contains("SRTP is Enabled (cryptosuite=AES_CM_128_HMAC_SHA1_80)"),
        "baresip did not use SRTP:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_srtp_agent_answers_a_plain_caller_through_the_bridge() {
    let Some(modules) = modules() else { return };
    common::logs();
    let root = scratch("agent");
    let flows = root.join("flows");
    fs::write(flows.join("main.yaml"), common::QUEUE_FLOW).unwrap();
    let conf = root.join("baresip");
    let snd = root.join("snd");
    // The agent does not register: its fixed address is baresip's listener.
    let (port, _) = srtp_baresip(
        &conf,
        &modules,
        &snd,
        "<sip:alice@127.0.0.1>;regint=0;answermode=auto;mediaenc=srtp-mand".to_owned(),
    );
    let file = Config::from_str_at(
        &format!(
            "queues: {{ support: {{ ring_timeout: 20s, max_wait: 2m }} }}\n\
agents: {{ alice: {{ uri: \"sip:alice@127.0.0.1:{port}\", queues: {{ support: 0 }}, srtp: true }} }}\n"
        ),
        &root.join("hotline.yaml"),
    )
    .expect("the test configuration");
    assert!(file.agents["alice"].srtp);
    let srv = common::server(|cfg| {
        cfg.flows_dir = flows.clone();
        cfg.queues = file.queues.clone();
        cfg.agents = file.agents.clone();
        // Callers stay on plain RTP.
        cfg.srtp = SrtpPolicy::Optional;
    })
    .await;
    let sip = common::addr(&srv, Protocol::Udp);
    let baresip = Baresip::start(&conf, &root.join("baresip.log"), &[]);
    tokio::time::sleep(Duration::from_secs(1)).await;

    caller_and_agent_hear_each_other(sip, &baresip, &snd, || {
        format!("a plain caller and an SRTP agent, {:?}", srtp_counts(&srv))
    })
    .await;
    assert_srtp_enabled(&baresip);
    let (auth, replay, _) = srtp_counts(&srv);
    assert_eq!((auth, replay), (0, 0), "SRTP packets refused here");
    drop(baresip);
    drop(srv);
    let _ = fs::remove_dir_all(&root);
}
