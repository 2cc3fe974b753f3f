//! The README's agent recipe with the softphone it names: baresip (Debian's package, 1.0)
//! registers as agent `alice` with the account line the README gives, a caller is queued,
//! the hotline offers the call to baresip, baresip answers, and audio flows both ways
//! through the bridge: the caller hears baresip's tone, baresip hears the caller's.
//!
//! baresip 1.0 computes MD5 digests only and gives up on a 401 that also offers SHA-256;
//! the registrar notices that the phone came back without answering and challenges it
//! with MD5 alone (docs/sip.md). baresip retries a failed registration after 30 to 60 s,
//! so its first registration takes that long.
//!
//! Without baresip the test is skipped with a notice, unless `HOTLINE_REQUIRE_BARESIP` is
//! set (CI), which makes it a failure.

#![cfg(unix)]

mod common;

use std::fs;
use std::path::PathBuf;

use common::baresip::{
    AGENT_TONE, BASE_MODULES, Baresip, BaresipConfig, alice_account, baresip_modules,
    caller_and_agent_hear_each_other, cannot_run, wait_registered,
};
use hotline::config::{Config, Protocol};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_registers_as_alice_and_answers_a_queued_call() {
    let modules = match baresip_modules(&BASE_MODULES) {
        Ok(m) => m,
        Err(why) => return cannot_run("the baresip agent test", &why),
    };
    common::logs();
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("interop_baresip-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    let flows = root.join("flows");
    fs::create_dir_all(&flows).unwrap();
    fs::write(flows.join("main.yaml"), common::QUEUE_FLOW).unwrap();
    // The sample's queue and agent as hotline.yaml has them, with the sample's password.
    let file = Config::from_str_at(
        "queues: { support: { ring_timeout: 20s, max_wait: 2m } }\n\
agents: { alice: { password: \"alice-change-me\", queues: { support: 0 } } }\n",
        &root.join("hotline.yaml"),
    )
    .expect("the test configuration");
    let srv = common::server(|cfg| {
        cfg.flows_dir = flows.clone();
        cfg.queues = file.queues.clone();
        cfg.agents = file.agents.clone();
    })
    .await;
    let sip = common::addr(&srv, Protocol::Udp);

    let conf = root.join("baresip");
    let snd = root.join("snd");
    // The README's account line, with the test's port and auto answer.
    BaresipConfig {
        dir: &conf,
        modules: &modules,
        account: alice_account(sip, None),
        tone: AGENT_TONE as u32,
        snd: &snd,
        extra_modules: &[],
        extra: String::new(),
    }
    .write();
    let baresip = Baresip::start(&conf, &root.join("baresip.log"), &[]);

    wait_registered(&srv, &baresip, "alice").await;
    // The queue's callers wait for an agent (`when_empty: join`), so the call may come
    // before the queues have heard of the registration. The queue offers the call to
    // baresip, which answers at once.
    caller_and_agent_hear_each_other(sip, &baresip, &snd, String::new).await;
    let log = baresip.log_text();
    assert!(log.contains("200 OK"), "baresip's registration: {log}");
    drop(baresip);
    drop(srv);
    let _ = fs::remove_dir_all(&root);
}
