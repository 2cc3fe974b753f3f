//! A call whose code panics: the engine survives, the caller gets a BYE, and the call's
//! slot, RTP port, media session and routes are released, its record ending as failed.

use std::time::{Duration, Instant};

use hotline_load::caller::{CallMedia, Offer, Phone};

use super::actor::PANIC_NUMBER;
use crate::config::{Config, Listen, PortRange, Protocol};
use crate::server::Server;

fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

async fn settled(what: &str, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < until, "{what} never settled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_call_hangs_up_and_releases_what_it_held() {
    // The sample flows' schedule open at every hour, their services where nothing listens.
    let sample = Config::from_str_at(
        "schedules:\n  service_hours: { timezone: Europe/Berlin, weekly: { mon-sun: 00:00-24:00 } }\nvars: { shop_url: \"http://127.0.0.1:9\", crm_url: \"http://127.0.0.1:9\" }\n",
        &repo().join("hotline.yaml"),
    )
    .expect("the test configuration");
    let cfg = Config {
        schedules: sample.schedules,
        vars: sample.vars,
        listen: vec!["udp:127.0.0.1:0".parse::<Listen>().expect("listen")],
        rtp_ports: PortRange {
            first: 43600,
            last: 43639,
        },
        flows_dir: repo().join("flows"),
        prompts_dir: repo().join("prompts"),
        ..Config::default()
    };
    let srv = Server::start(cfg, 1).await.expect("server").spawn();
    let deps = srv.server.deps.clone();
    let sip = srv.server.addr(Protocol::Udp).expect("bound");
    let before = deps.resources();

    let mut phone = Phone::new(Protocol::Udp, sip).await.expect("phone");
    let media = CallMedia::bind(std::net::Ipv4Addr::LOCALHOST.into(), false).expect("media");
    let _call = phone
        .call(PANIC_NUMBER, &media, Offer::Default)
        .await
        .expect("answered");
    // The call's task panics at the ACK: the caller is told with a BYE, and what the call
    // held is let go.
    let bye = phone
        .expect_bye(Duration::from_secs(20))
        .await
        .expect("the engine hangs up a call whose code failed");
    assert_eq!(bye.method, hotline_core::sip::message::Method::Bye);
    settled("the call's resources", || {
        let r = deps.resources();
        r.call_tasks == before.call_tasks
            && r.rtp_ports == before.rtp_ports
            && deps.media.session_count() == 0
            && deps.registry.is_empty()
    })
    .await;
    let text = deps.metrics().render(&crate::metrics::Scrape {
        calls_active: 0,
        media: &[],
        records: &crate::records::SinkCounters::default(),
        queues: None,
        resources: deps.resources(),
    });
    assert!(
        text.contains("hotline_calls_forced_end_total{reason=\"task_failed\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("hotline_calls_total{outcome=\"failed\"} 1\n"),
        "the record ends as failed: {text}"
    );
    // The engine goes on serving calls.
    let media = CallMedia::bind(std::net::Ipv4Addr::LOCALHOST.into(), false).expect("media");
    let mut next = phone
        .call("100", &media, Offer::Default)
        .await
        .expect("the next call is answered");
    phone.hang_up(&mut next).await.expect("hung up");
    settled("the second call's resources", || {
        deps.resources().rtp_ports == before.rtp_ports && deps.media.session_count() == 0
    })
    .await;
}
