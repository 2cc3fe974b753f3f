//! SIP over TLS with a real softphone: baresip (Debian's 1.0) trusts the test's own
//! authority (`sip_cafile`) and talks to the hotline's `tls:` listener.
//!
//! - As agent `alice` it registers over TLS (`;transport=tls` in its account line); a
//!   caller on UDP is queued, the hotline offers the call to baresip over its TLS
//!   connection, baresip answers, and audio flows both ways through the bridge.
//! - As a caller it dials the IVR over TLS, is answered and hears the greeting.
//!
//! The registrar challenges with MD5 only here, which baresip 1.0 answers at once (with
//! SHA-256 also offered, its first registration waits 30 to 60 s: see
//! tests/interop_baresip.rs). Without baresip the tests are skipped with a notice, unless
//! `HOTLINE_REQUIRE_BARESIP` is set, which makes them failures.

#![cfg(unix)]

mod common;

use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::baresip::{
    AGENT_TONE, BASE_MODULES, Baresip, BaresipConfig, alice_account, baresip_modules,
    caller_and_agent_hear_each_other, cannot_run, heard_frames, loud_frames, wait_for,
    wait_registered,
};
use common::tls::{Certificates, make_certificates};
use hotline::config::{Config, Listen, Protocol};
use hotline::server::RunningServer;
use hotline::sip::digest::Algorithm;

fn folder(test: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("interop_tls-{test}-{}", std::process::id()))
}

/// A hotline on 127.0.0.1 with a UDP and a TLS listener, serving `flow` as `main`, with
/// the sample's `support` queue and agent `alice`.
async fn tls_server(root: &std::path::Path, certs: &Certificates, flow: &str) -> RunningServer {
    let flows = root.join("flows");
    fs::create_dir_all(&flows).unwrap();
    fs::write(flows.join("main.yaml"), flow).unwrap();
    let file = Config::from_str_at(
        "queues: { support: { ring_timeout: 20s, max_wait: 2m } }\n\
agents: { alice: { password: \"alice-change-me\", queues: { support: 0 } } }\n",
        &root.join("hotline.yaml"),
    )
    .expect("the test configuration");
    common::server(|cfg| {
        cfg.listen = vec![
            "udp:127.0.0.1:0".parse::<Listen>().unwrap(),
            "tls:127.0.0.1:0".parse::<Listen>().unwrap(),
        ];
        cfg.tls = Some(certs.config());
        cfg.digest_algorithms = vec![Algorithm::Md5];
        cfg.flows_dir = flows.clone();
        cfg.queues = file.queues.clone();
        cfg.agents = file.agents.clone();
    })
    .await
}

/// baresip's line trusting the test authority.
fn trust(certs: &Certificates) -> String {
    format!("sip_cafile\t\t{}\n", certs.ca.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_registers_over_tls_and_answers_a_queued_call_over_it() {
    let modules = match baresip_modules(&BASE_MODULES) {
        Ok(m) => m,
        Err(why) => return cannot_run("a baresip TLS test", &why),
    };
    common::logs();
    let root = folder("agent");
    let _ = fs::remove_dir_all(&root);
    let certs = make_certificates(&root.join("certs"));
    let srv = tls_server(&root, &certs, common::QUEUE_FLOW).await;
    let sip = common::addr(&srv, Protocol::Udp);
    let tls = common::addr(&srv, Protocol::Tls);

    let conf = root.join("baresip");
    let snd = root.join("snd");
    BaresipConfig {
        dir: &conf,
        modules: &modules,
        account: alice_account(tls, Some("tls")),
        tone: AGENT_TONE as u32,
        snd: &snd,
        extra_modules: &[],
        extra: trust(&certs),
    }
    .write();
    let baresip = Baresip::start(&conf, &root.join("baresip.log"), &[]);

    wait_registered(&srv, &baresip, "alice").await;
    let registrations = srv.server.deps.registrations().clone();
    let bindings = registrations.contacts("alice", Instant::now());
    assert!(
        !bindings.is_empty() && bindings.iter().all(|b| b.source.transport == Protocol::Tls),
        "alice's registration came over TLS: {bindings:?}"
    );

    // A caller on UDP; the queue offers the call to baresip over its TLS connection.
    caller_and_agent_hear_each_other(sip, &baresip, &snd, || "over TLS".into()).await;
    // Nothing went over plain TCP, and no handshake failed.
    let stats = &srv.server.transport_stats;
    assert_eq!(stats.tls_handshake_failed.load(Ordering::Relaxed), 0);
    drop(baresip);
    drop(srv);
    let _ = fs::remove_dir_all(&root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_calls_the_ivr_over_tls() {
    let modules = match baresip_modules(&BASE_MODULES) {
        Ok(m) => m,
        Err(why) => return cannot_run("a baresip TLS test", &why),
    };
    common::logs();
    let root = folder("caller");
    let _ = fs::remove_dir_all(&root);
    let certs = make_certificates(&root.join("certs"));
    // The caller hears a prompt, then is hung up on.
    let flow = "start: hello\nsteps:\n  hello:\n    play: [welcome, welcome]\n    next: hangup\n";
    let srv = tls_server(&root, &certs, flow).await;
    let tls: SocketAddr = common::addr(&srv, Protocol::Tls);

    let conf = root.join("baresip");
    let snd = root.join("snd");
    let account = format!(
        "<sip:caller@127.0.0.1:{};transport=tls>;regint=0",
        tls.port()
    );
    // `menu` has the dial command.
    let extra = format!("{}module_app\t\tmenu.so\n", trust(&certs));
    BaresipConfig {
        dir: &conf,
        modules: &modules,
        account,
        tone: AGENT_TONE as u32,
        snd: &snd,
        extra_modules: &[],
        extra,
    }
    .write();
    let dial = format!("/dial sip:hotline@127.0.0.1:{};transport=tls", tls.port());
    let baresip = Baresip::start(&conf, &root.join("baresip.log"), &[&dial]);

    let stats = srv.server.endpoint_stats.clone();
    let answered = wait_for(Duration::from_secs(30), || {
        stats.calls_total.load(Ordering::Relaxed) >= 1
    })
    .await;
    assert!(
        answered,
        "no call reached the hotline over TLS\n--- baresip ---\n{}",
        baresip.log_text()
    );
    // The flow plays its prompt and hangs up; baresip then closes its recording.
    let heard = wait_for(Duration::from_secs(40), || {
        loud_frames(&heard_frames(&snd)) >= 25
    })
    .await;
    let log = baresip.log_text();
    assert!(
        heard,
        "baresip did not hear the IVR's prompt over the TLS-signalled call ({} frames recorded)\n--- baresip ---\n{log}",
        heard_frames(&snd).len()
    );
    assert!(
        log.to_lowercase().contains("established"),
        "baresip's call: {log}"
    );
    drop(baresip);
    drop(srv);
    let _ = fs::remove_dir_all(&root);
}
