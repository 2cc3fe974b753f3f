//! Every call ends: a call offered `a=inactive` or `a=sendonly` that sends no RTP is ended
//! by the no-media timeout, its prompts and menu timeouts run by the clock without any
//! RTP from the caller, and `limits.max_call` ends a call that is still talking.

mod common;

use std::time::{Duration, Instant};

use common::{SECOND, addr, prompt, server};
use hotline::config::Protocol;
use hotline::sip::message::Method;
use hotline_load::caller::{CallMedia, Offer, Phone};

/// Calls `user` offering `direction` on a media socket that never sends; returns when the
/// call is set up (INVITE, 200, ACK).
async fn call_without_media(phone: &mut Phone, direction: &str) -> CallMedia {
    let media = CallMedia::bind(std::net::Ipv4Addr::LOCALHOST.into(), false).unwrap();
    let sdp = media
        .offer(&[0], true)
        .replace("a=sendrecv", &format!("a={direction}"));
    let call_id = format!("ends-{direction}-{}", std::process::id());
    let invite = phone.invite_text("100", &call_id, "ft", 1, &sdp);
    phone.send_raw(invite.as_bytes()).await.unwrap();
    let ok = phone
        .response(&call_id, &Method::Invite, 200, 10 * SECOND)
        .await
        .expect("answered");
    let ack = phone.ack_text("100", &call_id, "ft", &ok, 1, "", false);
    phone.send_raw(ack.as_bytes()).await.unwrap();
    media
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_offered_inactive_that_sends_nothing_is_ended_by_the_no_media_timeout() {
    for direction in ["inactive", "sendonly"] {
        let srv = server(|c| c.no_media_timeout = 2 * SECOND).await;
        let mut phone = Phone::new(Protocol::Udp, addr(&srv, Protocol::Udp))
            .await
            .unwrap();
        let _media = call_without_media(&mut phone, direction).await;
        let t0 = Instant::now();
        phone
            .expect_bye(15 * SECOND)
            .await
            .unwrap_or_else(|e| panic!("{direction}: no BYE: {e}"));
        let took = t0.elapsed();
        assert!(
            took >= SECOND + SECOND / 2,
            "{direction}: BYE after {took:?}, before the timeout"
        );
        settled(&srv).await;
    }
}

/// Waits until the engine holds no call, port or media session (polling, bounded).
async fn settled(srv: &hotline::server::RunningServer) {
    let deps = &srv.server.deps;
    let until = Instant::now() + 20 * SECOND;
    loop {
        let r = deps.resources();
        if r.call_tasks == 0 && r.rtp_ports == 0 && deps.media.session_count() == 0 {
            return;
        }
        assert!(Instant::now() < until, "still held: {r:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompts_and_menu_timeouts_run_on_schedule_without_rtp_from_the_caller() {
    let dir = std::env::temp_dir().join(format!("hotline-call-ends-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("main.yaml"),
        "start: menu\ndefaults: { language: en }\nsteps:\n  menu:\n    menu:\n      prompt: main_menu\n      options: { \"1\": bye }\n      timeout: 1s\n      retries: 0\n      on_failure: bye\n  bye:\n    play: goodbye\n    next: hangup\n",
    )
    .unwrap();
    let flows = dir.clone();
    let srv = server(move |c| {
        c.flows_dir = flows;
        c.no_media_timeout = 60 * SECOND;
    })
    .await;
    let menu = Duration::from_millis(20) * prompt("en", "main_menu").frame_count() as u32;
    for direction in ["sendonly", "inactive"] {
        let mut phone = Phone::new(Protocol::Udp, addr(&srv, Protocol::Udp))
            .await
            .unwrap();
        let _media = call_without_media(&mut phone, direction).await;
        let t0 = Instant::now();
        // The menu plays (by the clock), waits its second, says goodbye and hangs up.
        phone
            .expect_bye(menu + 30 * SECOND)
            .await
            .unwrap_or_else(|e| panic!("{direction}: the flow never ended: {e}"));
        let took = t0.elapsed();
        assert!(
            took >= menu + SECOND,
            "{direction}: BYE after {took:?}: the menu ({menu:?}) and its timeout were cut short"
        );
    }
    settled(&srv).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_call_ends_a_call_that_is_still_talking() {
    let srv = server(|c| c.max_call = 2 * SECOND).await;
    let mut phone = Phone::new(Protocol::Udp, addr(&srv, Protocol::Udp))
        .await
        .unwrap();
    let media = CallMedia::bind(std::net::Ipv4Addr::LOCALHOST.into(), true).unwrap();
    let t0 = Instant::now();
    let c = phone
        .call("100", &media, Offer::Default)
        .await
        .expect("answered");
    // The caller sends audio all along: only the limit can end this call.
    media.connect(c.remote_rtp, c.codec, c.payload_type, c.telephone_event_pt);
    phone
        .expect_bye(15 * SECOND)
        .await
        .expect("the engine's BYE");
    let took = t0.elapsed();
    assert!(
        took >= 2 * SECOND - SECOND / 10,
        "BYE after {took:?}, before max_call"
    );
    media.close();
    settled(&srv).await;
    let deps = &srv.server.deps;
    let text = deps.metrics().render(&hotline::metrics::Scrape {
        calls_active: 0,
        media: &[],
        records: &hotline::records::SinkCounters::default(),
        queues: None,
        resources: deps.resources(),
    });
    assert!(
        text.contains("hotline_calls_forced_end_total{reason=\"max_call\"} 1\n"),
        "{text}"
    );
}
