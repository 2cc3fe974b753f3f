//! Shared by the integration tests: a real hotline serving the sample flows on loopback,
//! and the sample prompts for comparing what a caller hears.

#![allow(dead_code)]

pub mod baresip;
pub mod bridge;
pub mod netns;
pub mod pg_server;
pub mod postgres;
pub mod records;
pub mod process;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use hotline::config::{Config, Listen, PortRange, Protocol};
use hotline::media::prompt::{Prompt, PromptLibrary};
use hotline::server::{RunningServer, Server, credentials_from_config};
use hotline::sip::registrar::CredentialStore;
use hotline_load::caller::{CallMedia, Established, Offer, Phone};

pub const SECOND: Duration = Duration::from_secs(1);

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// RTP ranges below the kernel's ephemeral ports, a different one per server in a process.
fn next_rtp_range() -> PortRange {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let slot = NEXT.fetch_add(1, Ordering::Relaxed) % 40;
    let pid_offset = (std::process::id() % 4) as u16 * 2000;
    let first = 44000 + pid_offset + slot * 40;
    PortRange {
        first,
        last: first + 39,
    }
}

/// What the sample's flows need from hotline.yaml, fixed for tests: `service_hours` open
/// at every hour (so the main menu answers whenever the test runs) and a `shop_url` where
/// nothing listens (an order lookup fails at once).
pub const SAMPLE_TEST_CONFIG: &str = "schedules:
  service_hours: { timezone: Europe/Berlin, weekly: { mon-sun: 00:00-24:00 } }
vars: { shop_url: \"http://127.0.0.1:9\", crm_url: \"http://127.0.0.1:9\" }
";

/// A server on 127.0.0.1 (UDP and TCP, ports chosen by the kernel) serving the sample.
pub async fn server(adjust: impl FnOnce(&mut Config)) -> RunningServer {
    server_with_credentials(adjust, None).await
}

/// [`server`] with the registrar's users given (`None`: those of the configuration).
pub async fn server_with_credentials(
    adjust: impl FnOnce(&mut Config),
    credentials: Option<std::sync::Arc<dyn CredentialStore>>,
) -> RunningServer {
    let sample = Config::from_str_at(SAMPLE_TEST_CONFIG, &repo().join("hotline.yaml"))
        .expect("the test configuration");
    let mut cfg = Config {
        listen: vec![
            "udp:127.0.0.1:0".parse::<Listen>().unwrap(),
            "tcp:127.0.0.1:0".parse::<Listen>().unwrap(),
        ],
        rtp_ports: next_rtp_range(),
        flows_dir: repo().join("flows"),
        prompts_dir: repo().join("prompts"),
        schedules: sample.schedules,
        vars: sample.vars,
        ..Config::default()
    };
    adjust(&mut cfg);
    let credentials =
        credentials.unwrap_or_else(|| std::sync::Arc::new(credentials_from_config(&cfg)));
    Server::start_with_credentials(cfg, 1, credentials)
        .await
        .expect("server starts")
        .spawn()
}

pub fn addr(s: &RunningServer, t: Protocol) -> SocketAddr {
    s.server.addr(t).expect("listener bound")
}

pub fn prompts() -> &'static PromptLibrary {
    static LIB: std::sync::OnceLock<PromptLibrary> = std::sync::OnceLock::new();
    LIB.get_or_init(|| {
        let (lib, errors) = PromptLibrary::load_dir(&repo().join("prompts"), "en");
        assert!(errors.is_empty(), "{errors:?}");
        lib
    })
}

pub fn prompt(lang: &str, name: &str) -> Prompt {
    prompts()
        .get_exact(lang, name)
        .unwrap_or_else(|| panic!("prompt {lang}/{name}"))
        .clone()
}

/// A flow that puts the caller in the `support` queue: `advisors_busy` when the queue sends
/// the caller on, `survey_thanks` once the agent hangs up first.
pub const QUEUE_FLOW: &str = "start: q
steps:
  q:
    queue: support
    on_timeout: sorry
    after: thanks
  sorry:
    play: advisors_busy
    next: hangup
  thanks:
    play: survey_thanks
    next: hangup
";

/// The queue flow with a callback: `on_callback` confirms with a goodbye.
pub const CALLBACK_FLOW: &str = "start: q
steps:
  q:
    queue: support
    on_timeout: sorry
    on_callback: noted
    after: thanks
  sorry:
    play: advisors_busy
    next: hangup
  noted:
    play: goodbye
    next: hangup
  thanks:
    play: survey_thanks
    next: hangup
";

/// Agent `alice`'s scripted phone on loopback, registered at `server` (with the password
/// the tests' configurations give her).
pub async fn alice_at(server: SocketAddr) -> hotline_load::caller::answerer::Answerer {
    let mut alice =
        hotline_load::caller::answerer::Answerer::bind(std::net::Ipv4Addr::LOCALHOST.into())
            .await
            .unwrap();
    let status = alice
        .register(server, "alice", "alice-secret", 300)
        .await
        .unwrap();
    assert_eq!(status, 200, "alice registers at {server}");
    alice
}

/// A caller on UDP from loopback calls `dialed` at `sip`; its media sends to the hotline.
pub async fn call(sip: SocketAddr, dialed: &str) -> (Phone, CallMedia, Established) {
    let mut phone = Phone::new(Protocol::Udp, sip).await.unwrap();
    let media = CallMedia::bind(std::net::Ipv4Addr::LOCALHOST.into(), true).unwrap();
    let c = phone
        .call(dialed, &media, Offer::Default)
        .await
        .expect("call answered");
    media.connect(c.remote_rtp, c.codec, c.payload_type, c.telephone_event_pt);
    (phone, media, c)
}

/// Waits for the English prompt `name` from frame `from` and returns where it starts; a
/// failure says what was heard instead.
pub async fn hears(media: &CallMedia, name: &str, from: usize, within: Duration) -> usize {
    let p = prompt("en", name);
    media
        .wait_for_prompt(&p, from, within)
        .await
        .unwrap_or_else(|| {
            panic!(
                "expected to hear '{name}' after frame {from}: {}",
                media.search_report(&p, from)
            )
        })
}

/// Shows the engine's log in a failing test's output, at the level `RUST_LOG` says
/// (nothing unless it is set).
pub fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
