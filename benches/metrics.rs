//! What metrics cost: counting one SIP message (the busiest counter on a call's path) and
//! one scrape of `GET /metrics` rendered with 10 queues of 20 agents, every outcome, key
//! source and a spread of SIP methods and codes. Tests marked `#[ignore]`, run only when
//! asked for:
//!
//! ```text
//! cargo test --release --bench metrics -- --ignored --nocapture --test-threads 1
//! ```
//!
//! Figures print; nothing is asserted about them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hotline::config::Config;
use hotline::media::clock::ClockStats;
use hotline::metrics::{Direction, Metrics, Scrape};
use hotline::queue::{Acd, MemoryStore};
use hotline::records::{CallOutcome, SinkCounters};
use hotline::sip::message::{Message, Method, Request, Response, Uri};

fn config() -> Config {
    let mut yaml = String::from("queues:\n");
    for q in 0..10 {
        yaml.push_str(&format!("  q{q}: {{}}\n"));
    }
    yaml.push_str("agents:\n");
    for a in 0..200 {
        yaml.push_str(&format!(
            "  a{a}: {{ uri: \"sip:a{a}@127.0.0.1:5999\", queues: {{ q{}: 0 }} }}\n",
            a % 10
        ));
    }
    Config::from_str_at(&yaml, std::path::Path::new("hotline.yaml")).expect("config")
}

fn messages() -> Vec<Message> {
    let uri = Uri::parse("sip:hotline@127.0.0.1").expect("uri");
    let mut out = Vec::new();
    for m in [Method::Invite, Method::Ack, Method::Bye, Method::Info] {
        let req = Request::new(m, uri.clone());
        for code in [100, 180, 200, 404, 487] {
            out.push(Message::Response(Response::for_request(&req, code, "")));
        }
        out.push(Message::Request(req));
    }
    out
}

#[test]
#[ignore]
fn counting_a_sip_message() {
    let m = Metrics::new();
    let msgs = messages();
    const N: usize = 2_000_000;
    let start = Instant::now();
    for i in 0..N {
        let d = if i % 2 == 0 {
            Direction::Received
        } else {
            Direction::Sent
        };
        m.sip_message(&msgs[i % msgs.len()], d);
    }
    let per = start.elapsed() / N as u32;
    println!("counting one SIP message: {per:?} ({N} messages)");
}

#[test]
#[ignore]
fn one_scrape() {
    let m = Metrics::new();
    for (i, msg) in messages().iter().enumerate() {
        m.sip_message(msg, Direction::Received);
        m.sip_message(msg, Direction::Sent);
        m.call_ended(CallOutcome::ALL[i % CallOutcome::ALL.len()]);
    }
    for q in 0..10 {
        m.queue_left(&format!("q{q}"), Duration::from_secs(q * 7));
    }
    let cfg = config();
    let now = Instant::now();
    let acd =
        Acd::new(&cfg.queues, &cfg.agents, Box::new(MemoryStore::new()), now).expect("queues");
    let snapshot = acd.snapshot(now);
    let media = vec![
        Arc::new(ClockStats::default()),
        Arc::new(ClockStats::default()),
    ];
    let records = SinkCounters::default();
    let scrape = Scrape {
        calls_active: 500,
        media: &media,
        records: &records,
        queues: Some(&snapshot),
        resources: hotline::metrics::Resources {
            call_tasks: 500,
            tasks: 2_000,
            rtp_ports: 700,
        },
    };
    let size = m.render(&scrape).len();
    const N: u32 = 2_000;
    let start = Instant::now();
    for _ in 0..N {
        std::hint::black_box(m.render(&scrape));
    }
    let per = start.elapsed() / N;
    println!("one scrape: {per:?}, {size} bytes (10 queues, 200 agents)");
}
