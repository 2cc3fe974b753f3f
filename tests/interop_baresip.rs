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
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::baresip::{
    AGENT_TONE, BASE_MODULES, Baresip, BaresipConfig, CALLER_TONE, REGISTER_TIMEOUT, alice_account,
    baresip_modules, caller_tone, cannot_run, heard_frames, tone_frames, wait_for,
};
use common::bridge::{decoded, payloads};
use hotline::config::{Config, Protocol};
use hotline_load::caller::{CallMedia, Offer, Phone};

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

    let registrations = srv.server.deps.registrations().clone();
    let registered = wait_for(REGISTER_TIMEOUT, || {
        registrations.is_registered("alice", Instant::now())
    })
    .await;
    assert!(
        registered,
        "baresip did not register as alice within {REGISTER_TIMEOUT:?}\n--- baresip ---\n{}",
        baresip.log_text()
    );
    // The queue's callers wait for an agent (`when_empty: join`), so the call may come
    // before the queues have heard of the registration.
    let mut phone = Phone::new(Protocol::Udp, sip).await.expect("caller");
    let media = CallMedia::bind(Ipv4Addr::LOCALHOST.into(), true).expect("caller RTP");
    let mut call = phone
        .call("hotline", &media, Offer::Default)
        .await
        .expect("the hotline answers");
    media.connect(
        call.remote_rtp,
        call.codec,
        call.payload_type,
        call.telephone_event_pt,
    );
    // The queue offers the call to baresip, which answers at once: its tone reaches the
    // caller through the bridge.
    let codec = call.codec;
    let heard_tone = wait_for(Duration::from_secs(30), || {
        tone_frames(&decoded(&payloads(&media), codec), AGENT_TONE) >= 25
    })
    .await;
    assert!(
        heard_tone,
        "the caller never heard baresip's {AGENT_TONE} Hz tone ({} frames heard)\n--- baresip ---\n{}",
        media.heard_len(),
        baresip.log_text()
    );
    // The caller speaks (a tone) while the agent listens.
    media.say_pcm(&caller_tone());
    tokio::time::sleep(Duration::from_secs(4)).await;
    let bye = phone.hang_up(&mut call).await.expect("BYE answered");
    assert_eq!(bye.status, 200);
    media.close();
    // baresip ends its side of the bridge and closes its recording.
    let agent_heard_tone = wait_for(Duration::from_secs(20), || {
        tone_frames(&heard_frames(&snd), CALLER_TONE) >= 50
    })
    .await;
    assert!(
        agent_heard_tone,
        "baresip never heard the caller's {CALLER_TONE} Hz tone ({} frames recorded)\n--- baresip ---\n{}",
        heard_frames(&snd).len(),
        baresip.log_text()
    );
    let log = baresip.log_text();
    assert!(log.contains("200 OK"), "baresip's registration: {log}");
    drop(baresip);
    drop(srv);
    let _ = fs::remove_dir_all(&root);
}
