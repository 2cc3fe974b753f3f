//! The engine's metrics, as `GET /metrics` shows them in the Prometheus text format.
//!
//! Owns the metric registry and every metric's name, help text and labels. Events are
//! counted where they happen, through the [`Metrics`] the server hands to the parts that
//! see them (the SIP endpoint, a call ending or hearing a key, a reload, the queue task
//! when a caller leaves the line): an atomic increment each, never per RTP packet.
//! Figures another part already keeps are read at scrape time from a [`Scrape`]: calls in
//! progress, the media workers' packet and lateness counts, the records writer's
//! counters, the queues' snapshot.
//!
//! It decides nothing about calls and does no IO; the text is written by the
//! `prometheus-client` crate, never by hand. It must not reach back into the call or
//! the admin API (they hand it plain figures).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::media::clock::ClockStats;
use crate::media::session::KeySource;
use crate::queue::acd::Snapshot;
use crate::records::{CallOutcome, SinkCounters};
use crate::sip::admission::Refusal;
use crate::sip::message::{Message, Method};

/// The `Content-Type` of what [`Metrics::render`] writes.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The upper bounds of `hotline_queue_wait_seconds`' buckets: around the usual service
/// level thresholds (20 s, 30 s, 60 s) and up to the long waits a report looks for.
const WAIT_BUCKETS: [f64; 12] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 1200.0,
];

/// The agent states the ACD reports (`AgentSnapshot::state`); each is shown, at zero
/// too, so that a query over a state never finds no series.
const AGENT_STATES: [&str; 6] = [
    "logged_out",
    "available",
    "ringing",
    "on_call",
    "wrap_up",
    "paused",
];

/// Why the engine itself ended a call: a limit every call is held to, or a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForcedEnd {
    /// `limits.max_call` was reached.
    MaxCall,
    /// Nothing came from the caller (or the bridged far end) for `rtp.no_media_timeout`.
    NoMedia,
    /// The call's task failed or panicked; its resources were released.
    TaskFailed,
}

impl ForcedEnd {
    pub const ALL: [ForcedEnd; 3] = [
        ForcedEnd::MaxCall,
        ForcedEnd::NoMedia,
        ForcedEnd::TaskFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ForcedEnd::MaxCall => "max_call",
            ForcedEnd::NoMedia => "no_media",
            ForcedEnd::TaskFailed => "task_failed",
        }
    }
}

/// What the engine holds for its calls now, read at scrape time: after the calls are
/// over, each is back where it started (the resource hygiene test compares them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// Call tasks alive, of every kind (flows, feature codes, refused calls, call backs).
    pub call_tasks: usize,
    /// Tasks alive on the runtime (calls, their IO, the engine's own).
    pub tasks: usize,
    /// RTP ports held by calls and legs.
    pub rtp_ports: usize,
}

/// Which way a message or packet went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Received,
    Sent,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Received => "received",
            Direction::Sent => "sent",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    direction: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResponseLabels {
    code: u16,
    direction: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SourceLabels {
    source: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct QueueLabels {
    queue: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AgentLabels {
    queue: String,
    state: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

/// Why the admin server's door refuses a request (`admin::guard::Refusal`).
const ADMIN_REFUSALS: [&str; 5] = [
    "no_host",
    "foreign_host",
    "foreign_origin",
    "body_too_large",
    "no_token",
];
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RefusedLabels {
    transport: &'static str,
    reason: &'static str,
    status: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CloseLabels {
    reason: &'static str,
}

/// Why the SIP transport closed (or refused) a TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpClose {
    /// No complete message within `limits.tcp_idle`.
    Idle,
    /// Refused at accept: `limits.tcp_per_source` open from its address.
    PerSource,
    /// Refused at accept: `limits.tcp_connections` open in all.
    Total,
    /// It sent a message over `limits.max_message` (answered 413 when possible).
    Oversize,
    /// It stopped reading and its write buffer filled.
    Slow,
    /// Its bytes could not be cut into messages (no Content-Length, a bad one...).
    Unframable,
    /// A TLS connection whose handshake failed (not TLS, a version or cipher we do not
    /// speak) or did not end within the handshake timeout.
    TlsHandshake,
}

impl TcpClose {
    pub const ALL: [TcpClose; 7] = [
        TcpClose::Idle,
        TcpClose::PerSource,
        TcpClose::Total,
        TcpClose::Oversize,
        TcpClose::Slow,
        TcpClose::Unframable,
        TcpClose::TlsHandshake,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TcpClose::Idle => "idle",
            TcpClose::PerSource => "per_source",
            TcpClose::Total => "total",
            TcpClose::Oversize => "oversize",
            TcpClose::Slow => "slow",
            TcpClose::Unframable => "unframable",
            TcpClose::TlsHandshake => "tls_handshake",
        }
    }
}

/// The label of a refused message's answer: the codes the transport answers with, `none`
/// when it sent nothing (a peer must not be able to make new series).
fn refused_status(status: Option<u16>) -> &'static str {
    match status {
        None => "none",
        Some(400) => "400",
        Some(413) => "413",
        Some(483) => "483",
        Some(416) => "416",
        Some(505) => "505",
        Some(513) => "513",
        Some(_) => "other",
    }
}

type WaitHistograms = Family<QueueLabels, Histogram, fn() -> Histogram>;

fn wait_histogram() -> Histogram {
    Histogram::new(WAIT_BUCKETS)
}

/// The engine's counters and the registry they are shown from. Share it with `Arc`.
pub struct Metrics {
    registry: Registry,
    calls: Family<OutcomeLabels, Counter>,
    sip_requests: Family<RequestLabels, Counter>,
    sip_responses: Family<ResponseLabels, Counter>,
    dtmf_keys: Family<SourceLabels, Counter>,
    queue_wait: WaitHistograms,
    reloads: Family<ResultLabels, Counter>,
    callback_refusals: Family<ReasonLabels, Counter>,
    refer_refusals: Counter,
    auth_failures: Family<ReasonLabels, Counter>,
    forced_ends: Family<ReasonLabels, Counter>,
    refused: Family<ReasonLabels, Counter>,
    dropped: Family<ReasonLabels, Counter>,
    bans: Counter,
    draining: Gauge,
    admin_refused: Family<ReasonLabels, Counter>,
    sip_refused: Family<RefusedLabels, Counter>,
    tcp_closed: Family<CloseLabels, Counter>,
}

/// The reasons `hotline_callback_refusals` counts, each shown from the start.
const CALLBACK_REFUSALS: [&str; 3] = ["not_allowed", "already_pending", "daily_cap"];
/// The reasons `hotline_auth_failures` counts.
const AUTH_FAILURES: [&str; 6] = [
    "unknown_user",
    "wrong_password",
    "unsupported_algorithm",
    "no_answer",
    "stale_nonce",
    "bad_nonce",
];

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// What a scrape reads from the rest of the engine, as it is at that moment.
pub struct Scrape<'a> {
    /// The calls in progress.
    pub calls_active: usize,
    /// Every media worker's figures.
    pub media: &'a [Arc<ClockStats>],
    /// The records writer's counters (all zero when records are off).
    pub records: &'a SinkCounters,
    /// The queues and agents, when queues are configured and the queue task answered.
    pub queues: Option<&'a Snapshot>,
    pub resources: Resources,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let calls = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "hotline_calls",
            "Calls ended, by outcome (the outcome their record has, also when records are off)",
            calls.clone(),
        );
        let sip_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "hotline_sip_requests",
            "SIP requests received and sent by the endpoint, retransmissions included, by method (other: any extension method)",
            sip_requests.clone(),
        );
        let sip_responses = Family::<ResponseLabels, Counter>::default();
        registry.register(
            "hotline_sip_responses",
            "SIP responses received and sent by the endpoint, retransmissions included, by status code",
            sip_responses.clone(),
        );
        let dtmf_keys = Family::<SourceLabels, Counter>::default();
        registry.register(
            "hotline_dtmf_keys",
            "Keys callers pressed, by how they came: rfc4733 (RTP events), inband (tones) or info (SIP INFO)",
            dtmf_keys.clone(),
        );
        let queue_wait: WaitHistograms = Family::new_with_constructor(wait_histogram);
        registry.register(
            "hotline_queue_wait_seconds",
            "How long callers waited in a queue, observed when they left the line: answered, abandoned or sent elsewhere",
            queue_wait.clone(),
        );
        let reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "hotline_flow_reloads",
            "Reloads of flows, prompts and configuration, by result: ok or refused",
            reloads.clone(),
        );
        let callback_refusals = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "hotline_callback_refusals",
            "Callbacks not offered or not taken, by reason: not_allowed (the number fails callback.allowed/denied), already_pending (a request for the number waits), daily_cap",
            callback_refusals.clone(),
        );
        let refer_refusals = Counter::default();
        registry.register(
            "hotline_refer_refusals",
            "REFER requests refused (answered 4xx-6xx, retransmissions included): callers' always, agents' unless agent_transfers.allowed names the target",
            refer_refusals.clone(),
        );
        let auth_failures = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "hotline_auth_failures",
            "Failed digest logins (REGISTER), by reason; unknown_user and wrong_password are guesses",
            auth_failures.clone(),
        );
        for reason in CALLBACK_REFUSALS {
            callback_refusals.get_or_create_owned(&ReasonLabels { reason });
        }
        for reason in AUTH_FAILURES {
            auth_failures.get_or_create_owned(&ReasonLabels { reason });
        }
        let refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "hotline_calls_refused",
            "New calls answered 503 before any call state existed, by reason: max_calls, rate, lateness (the media clock ran late), ports (no RTP port free), draining (the engine is stopping)",
            refused.clone(),
        );
        let dropped = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "hotline_sip_dropped",
            "SIP requests dropped without a reply by the guard, by reason: banned (the source is banned), scanner (a scanner's User-Agent)",
            dropped.clone(),
        );
        let bans = Counter::default();
        registry.register(
            "hotline_sources_banned",
            "Source addresses banned, for flooding or for refused logins",
            bans.clone(),
        );
        let draining = Gauge::default();
        registry.register(
            "hotline_draining",
            "1 while the engine stops: new calls and OPTIONS get 503, calls in progress go on",
            draining.clone(),
        );
        for r in Refusal::ALL {
            refused.get_or_create_owned(&ReasonLabels { reason: r.as_str() });
        }
        for reason in ["banned", "scanner"] {
            dropped.get_or_create_owned(&ReasonLabels { reason });
        }
        let admin_refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "hotline_admin_refused",
            "Requests the admin server refused before any handler, by reason: no_host, foreign_host, foreign_origin, body_too_large, no_token",
            admin_refused.clone(),
        );
        for reason in ADMIN_REFUSALS {
            admin_refused.get_or_create_owned(&ReasonLabels { reason });
        }
        let sip_refused = Family::<RefusedLabels, Counter>::default();
        registry.register(
            "hotline_sip_refused",
            "SIP messages refused by the transport before the endpoint, by transport, reason (oversize: over limits.max_message; malformed; max_forwards: Max-Forwards 0) and the status answered (none: dropped)",
            sip_refused.clone(),
        );
        let tcp_closed = Family::<CloseLabels, Counter>::default();
        registry.register(
            "hotline_tcp_closed",
            "SIP TCP and TLS connections the engine closed or refused, by reason: idle, per_source, total, oversize, slow, unframable, tls_handshake",
            tcp_closed.clone(),
        );
        // Every value of a fixed label shows from the start, at zero: a rate over a series
        // that appears late misses its first increment.
        for reason in TcpClose::ALL {
            tcp_closed.get_or_create_owned(&CloseLabels {
                reason: reason.as_str(),
            });
        }
        for (transport, reason, status) in [
            ("udp", "oversize", "none"),
            ("tcp", "oversize", "413"),
            ("tls", "oversize", "413"),
            ("udp", "malformed", "400"),
            ("tcp", "malformed", "400"),
            ("tls", "malformed", "400"),
        ] {
            sip_refused.get_or_create_owned(&RefusedLabels {
                transport,
                reason,
                status,
            });
        }
        for o in CallOutcome::ALL {
            calls.get_or_create_owned(&OutcomeLabels {
                outcome: o.as_str(),
            });
        }
        for source in ["rfc4733", "inband", "info"] {
            dtmf_keys.get_or_create_owned(&SourceLabels { source });
        }
        for result in ["ok", "refused"] {
            reloads.get_or_create_owned(&ResultLabels { result });
        }
        let forced_ends = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "hotline_calls_forced_end",
            "Calls the engine ended itself, by reason: max_call (limits.max_call reached), no_media (nothing from the caller or the bridged far end for rtp.no_media_timeout), task_failed (the call's task failed; its resources were released)",
            forced_ends.clone(),
        );
        for r in ForcedEnd::ALL {
            forced_ends.get_or_create_owned(&ReasonLabels { reason: r.as_str() });
        }
        Metrics {
            registry,
            calls,
            sip_requests,
            sip_responses,
            dtmf_keys,
            queue_wait,
            reloads,
            forced_ends,
            refused,
            dropped,
            bans,
            draining,
            admin_refused,
            sip_refused,
            tcp_closed,
            callback_refusals,
            refer_refusals,
            auth_failures,
        }
    }

    /// A callback was refused (see `CallbackRefusal`); unknown reasons are not counted.
    pub fn callback_refused(&self, reason: &str) {
        if let Some(reason) = CALLBACK_REFUSALS.into_iter().find(|r| *r == reason) {
            self.callback_refusals
                .get_or_create(&ReasonLabels { reason })
                .inc();
        }
    }

    /// A REGISTER failed to log in; `reason` is one of the registrar's failure reasons.
    pub fn auth_failed(&self, reason: &str) {
        if let Some(reason) = AUTH_FAILURES.into_iter().find(|r| *r == reason) {
            self.auth_failures
                .get_or_create(&ReasonLabels { reason })
                .inc();
        }
    }

    /// `n` more new calls were refused for `reason`.
    pub fn calls_refused(&self, reason: Refusal, n: u64) {
        if n > 0 {
            self.refused
                .get_or_create(&ReasonLabels {
                    reason: reason.as_str(),
                })
                .inc_by(n);
        }
    }

    /// `n` more requests were dropped by the guard; `reason` is `banned` or `scanner`.
    pub fn sip_dropped(&self, reason: &'static str, n: u64) {
        if n > 0 {
            self.dropped
                .get_or_create(&ReasonLabels { reason })
                .inc_by(n);
        }
    }

    /// `n` more sources were banned.
    pub fn sources_banned(&self, n: u64) {
        self.bans.inc_by(n);
    }

    /// The engine started (or stopped) draining.
    pub fn set_draining(&self, draining: bool) {
        self.draining.set(i64::from(draining));
    }

    /// The admin server refused a request for `reason` (one of [`ADMIN_REFUSALS`]).
    pub fn admin_refused(&self, reason: &'static str) {
        let reason = ADMIN_REFUSALS
            .into_iter()
            .find(|r| *r == reason)
            .unwrap_or("other");
        self.admin_refused
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// The transport refused a message (`reason`: oversize or malformed) on `transport`
    /// (udp, tcp), answering it with `status` or not at all.
    pub fn sip_refused(&self, transport: &'static str, reason: &'static str, status: Option<u16>) {
        self.sip_refused
            .get_or_create(&RefusedLabels {
                transport,
                reason,
                status: refused_status(status),
            })
            .inc();
    }

    /// The transport closed or refused a TCP connection.
    pub fn tcp_closed(&self, reason: TcpClose) {
        self.tcp_closed
            .get_or_create(&CloseLabels {
                reason: reason.as_str(),
            })
            .inc();
    }

    /// The engine ended a call itself, for `reason`.
    pub fn forced_end(&self, reason: ForcedEnd) {
        self.forced_ends
            .get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            })
            .inc();
    }

    /// A SIP message went through the endpoint, one way or the other.
    pub fn sip_message(&self, message: &Message, direction: Direction) {
        let direction = direction.as_str();
        match message {
            Message::Request(r) => {
                self.sip_requests
                    .get_or_create(&RequestLabels {
                        method: method_label(&r.method),
                        direction,
                    })
                    .inc();
            }
            Message::Response(r) => {
                // A REFER refused: callers' always (405), agents' when not allowed (403,
                // 400) or without agent_transfers (405); an accepted one gets 202.
                if direction == "sent"
                    && r.status >= 300
                    && r.headers.cseq().is_ok_and(|c| c.method == Method::Refer)
                {
                    self.refer_refusals.inc();
                }
                // The parser keeps codes to three digits; anything else is one series, so
                // that no peer can make the series grow.
                let code = if (100..=699).contains(&r.status) {
                    r.status
                } else {
                    0
                };
                self.sip_responses
                    .get_or_create(&ResponseLabels { code, direction })
                    .inc();
            }
        }
    }

    /// A call ended with `outcome`.
    pub fn call_ended(&self, outcome: CallOutcome) {
        self.calls
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// A caller's key reached the call.
    pub fn key(&self, source: KeySource) {
        let source = match source {
            KeySource::Rfc4733 => "rfc4733",
            KeySource::Inband => "inband",
            KeySource::SipInfo => "info",
        };
        self.dtmf_keys.get_or_create(&SourceLabels { source }).inc();
    }

    /// A caller left the line of `queue` after `waited` (answered, abandoned, overflowed).
    pub fn queue_left(&self, queue: &str, waited: Duration) {
        self.queue_wait
            .get_or_create(&QueueLabels {
                queue: queue.to_owned(),
            })
            .observe(waited.as_secs_f64());
    }

    /// A reload was made live (`ok`) or refused.
    pub fn reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "refused" };
        self.reloads.get_or_create(&ResultLabels { result }).inc();
    }

    /// Every metric in the Prometheus text format (version 0.0.4).
    pub fn render(&self, scrape: &Scrape<'_>) -> String {
        // Every configured queue's histogram shows from the first scrape, empty, rather
        // than from its first caller on.
        for q in scrape.queues.iter().flat_map(|s| &s.queues) {
            let _ = self.queue_wait.get_or_create_owned(&QueueLabels {
                queue: q.name.clone(),
            });
        }
        let now = scraped(scrape);
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would only cut the text.
        let _ = prometheus_text::encode(&mut out, &self.registry);
        let _ = prometheus_text::encode(&mut out, &now);
        out
    }
}

/// The name a method is counted under. Extension methods share `other`: a peer must not be
/// able to make new series.
fn method_label(m: &Method) -> &'static str {
    match m {
        Method::Invite => "INVITE",
        Method::Ack => "ACK",
        Method::Bye => "BYE",
        Method::Cancel => "CANCEL",
        Method::Options => "OPTIONS",
        Method::Register => "REGISTER",
        Method::Prack => "PRACK",
        Method::Subscribe => "SUBSCRIBE",
        Method::Notify => "NOTIFY",
        Method::Publish => "PUBLISH",
        Method::Info => "INFO",
        Method::Refer => "REFER",
        Method::Message => "MESSAGE",
        Method::Update => "UPDATE",
        Method::Other(_) => "other",
    }
}

fn gauge(v: u64) -> Gauge {
    let g = Gauge::default();
    g.set(i64::try_from(v).unwrap_or(i64::MAX));
    g
}

fn counter(v: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(v);
    c
}

/// The figures read at scrape time, in a registry of their own made for this scrape.
fn scraped(s: &Scrape<'_>) -> Registry {
    let mut r = Registry::default();
    r.register(
        "hotline_calls_active",
        "Calls in progress that run a flow",
        gauge(s.calls_active as u64),
    );
    let res = s.resources;
    r.register(
        "hotline_call_tasks",
        "Call tasks alive, of every kind: flows, feature codes, refused calls, call backs",
        gauge(res.call_tasks as u64),
    );
    r.register(
        "hotline_tasks",
        "Tasks alive on the engine's async runtime",
        gauge(res.tasks as u64),
    );
    r.register(
        "hotline_rtp_ports_in_use",
        "RTP ports held by calls and legs",
        gauge(res.rtp_ports as u64),
    );

    let sum = |f: fn(&ClockStats) -> u64| s.media.iter().map(|w| f(w)).sum::<u64>();
    let rtp = Family::<DirectionLabels, Counter>::default();
    for (d, v) in [
        (
            Direction::Received,
            sum(|w| w.packets_in.load(Ordering::Relaxed)),
        ),
        (
            Direction::Sent,
            sum(|w| w.packets_out.load(Ordering::Relaxed)),
        ),
    ] {
        rtp.get_or_create(&DirectionLabels {
            direction: d.as_str(),
        })
        .inc_by(v);
    }
    r.register(
        "hotline_rtp_packets",
        "RTP packets of every call and leg: received (from the caller's latched address) and sent",
        rtp,
    );
    let rejected = Family::<ReasonLabels, Counter>::default();
    for (reason, v) in [
        (
            "malformed",
            sum(|w| w.rtp_rejected_malformed.load(Ordering::Relaxed)),
        ),
        (
            "foreign",
            sum(|w| w.rtp_rejected_foreign.load(Ordering::Relaxed)),
        ),
        (
            "srtp_auth",
            sum(|w| w.srtp_auth_failed.load(Ordering::Relaxed)),
        ),
        (
            "srtp_replay",
            sum(|w| w.srtp_replayed.load(Ordering::Relaxed)),
        ),
    ] {
        rejected.get_or_create(&ReasonLabels { reason }).inc_by(v);
    }
    r.register(
        "hotline_rtp_rejected",
        "Datagrams on calls' RTP ports thrown away: not readable RTP (malformed), from an address that is not the caller's media address (foreign: hijack attempts, strays), or on an SRTP leg failing authentication (srtp_auth) or replayed (srtp_replay)",
        rejected,
    );
    r.register(
        "hotline_keys_dropped",
        "Keys heard over a call's bound of keys per second (an RFC 4733 event storm), not passed to the flow",
        counter(sum(|w| w.keys_dropped.load(Ordering::Relaxed))),
    );
    r.register(
        "hotline_rtp_late_frames",
        "Frames the media clock sent late: every session's frame of a tick that started more than one period (20 ms) late",
        counter(sum(|w| w.late_frames.load(Ordering::Relaxed))),
    );

    let rc = s.records;
    r.register(
        "hotline_records_pending",
        "Call-record messages sent by calls and neither written nor spooled yet",
        gauge(rc.pending.load(Ordering::Relaxed)),
    );
    r.register(
        "hotline_records_written",
        "Call-record messages committed to the store (replayed ones included)",
        counter(rc.written.load(Ordering::Relaxed)),
    );
    r.register(
        "hotline_records_spooled",
        "Call-record messages put in the spool file (queue full, or the store down too long)",
        counter(rc.spooled.load(Ordering::Relaxed)),
    );
    r.register(
        "hotline_records_lost",
        "Call-record messages neither written nor spooled, and spool lines that could not be read back",
        counter(rc.lost.load(Ordering::Relaxed)),
    );
    r.register(
        "hotline_records_errors",
        "Failed attempts to reach or write the records store",
        counter(rc.errors.load(Ordering::Relaxed)),
    );

    if let Some(snap) = s.queues {
        let waiting = Family::<QueueLabels, Gauge>::default();
        let agents = Family::<AgentLabels, Gauge>::default();
        for q in &snap.queues {
            let on_line = q.waiting.iter().filter(|w| w.call.is_some()).count();
            waiting
                .get_or_create(&QueueLabels {
                    queue: q.name.clone(),
                })
                .set(on_line as i64);
            for state in AGENT_STATES {
                agents.get_or_create_owned(&AgentLabels {
                    queue: q.name.clone(),
                    state: state.to_owned(),
                });
            }
            for a in &q.agents {
                agents
                    .get_or_create(&AgentLabels {
                        queue: q.name.clone(),
                        state: a.state.to_owned(),
                    })
                    .inc();
            }
        }
        r.register(
            "hotline_queue_waiting",
            "Callers on the line in each queue (callback requests not included)",
            waiting,
        );
        r.register("hotline_agents", "Agents of each queue, by state", agents);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{Request, Response};

    fn render(m: &Metrics) -> String {
        render_with(m, &[])
    }

    fn render_with(m: &Metrics, media: &[Arc<ClockStats>]) -> String {
        m.render(&Scrape {
            calls_active: 2,
            media,
            records: &SinkCounters::default(),
            queues: None,
            resources: Resources {
                call_tasks: 3,
                tasks: 40,
                rtp_ports: 4,
            },
        })
    }

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(prefix))
    }

    #[test]
    fn fixed_labels_show_at_zero_and_counts_move() {
        let m = Metrics::new();
        let t = render(&m);
        assert_eq!(
            line(&t, "hotline_calls_total{outcome=\"abandoned_in_menu\"}"),
            Some("hotline_calls_total{outcome=\"abandoned_in_menu\"} 0")
        );
        assert_eq!(
            line(&t, "hotline_calls_active "),
            Some("hotline_calls_active 2")
        );
        m.call_ended(CallOutcome::AbandonedInMenu);
        m.reload(false);
        m.key(KeySource::SipInfo);
        m.queue_left("sales", Duration::from_secs(7));
        let t = render(&m);
        assert!(t.contains("hotline_calls_total{outcome=\"abandoned_in_menu\"} 1\n"));
        assert!(t.contains("hotline_flow_reloads_total{result=\"refused\"} 1\n"));
        assert!(t.contains("hotline_dtmf_keys_total{source=\"info\"} 1\n"));
        assert!(t.contains("hotline_queue_wait_seconds_bucket{queue=\"sales\",le=\"5\"} 0\n"));
        assert!(t.contains("hotline_queue_wait_seconds_bucket{queue=\"sales\",le=\"10\"} 1\n"));
        assert!(t.contains("hotline_queue_wait_seconds_count{queue=\"sales\"} 1\n"));
    }

    #[test]
    fn refusals_drops_bans_and_draining_show() {
        let m = Metrics::new();
        let t = render(&m);
        for r in Refusal::ALL {
            let line = format!(
                "hotline_calls_refused_total{{reason=\"{}\"}} 0\n",
                r.as_str()
            );
            assert!(t.contains(&line), "{line} in {t}");
        }
        assert!(t.contains("hotline_sip_dropped_total{reason=\"scanner\"} 0\n"));
        assert!(t.contains("hotline_draining 0\n"));
        m.calls_refused(Refusal::Rate, 3);
        m.sip_dropped("banned", 2);
        m.sources_banned(1);
        m.set_draining(true);
        let t = render(&m);
        assert!(
            t.contains("hotline_calls_refused_total{reason=\"rate\"} 3\n"),
            "{t}"
        );
        assert!(t.contains("hotline_sip_dropped_total{reason=\"banned\"} 2\n"));
        assert!(t.contains("hotline_sources_banned_total 1\n"));
        assert!(t.contains("hotline_draining 1\n"));
    }

    #[test]
    fn forced_ends_count_by_reason_and_resources_are_read_at_scrape_time() {
        let m = Metrics::new();
        let t = render(&m);
        for r in ForcedEnd::ALL {
            let want = format!(
                "hotline_calls_forced_end_total{{reason=\"{}\"}} 0\n",
                r.as_str()
            );
            assert!(t.contains(&want), "{want}");
        }
        m.forced_end(ForcedEnd::MaxCall);
        m.forced_end(ForcedEnd::NoMedia);
        m.forced_end(ForcedEnd::NoMedia);
        let t = render(&m);
        assert!(t.contains("hotline_calls_forced_end_total{reason=\"max_call\"} 1\n"));
        assert!(t.contains("hotline_calls_forced_end_total{reason=\"no_media\"} 2\n"));
        assert!(t.contains("hotline_call_tasks 3\n"));
        assert!(t.contains("hotline_tasks 40\n"));
        assert!(t.contains("hotline_rtp_ports_in_use 4\n"));
    }

    #[test]
    fn srtp_refusals_are_rejected_rtp_by_reason() {
        let m = Metrics::new();
        let t = render(&m);
        for reason in ["malformed", "foreign", "srtp_auth", "srtp_replay"] {
            let want = format!("hotline_rtp_rejected_total{{reason=\"{reason}\"}} 0\n");
            assert!(t.contains(&want), "{want}");
        }
        let worker = Arc::new(ClockStats::default());
        worker.srtp_auth_failed.store(3, Ordering::Relaxed);
        worker.srtp_replayed.store(2, Ordering::Relaxed);
        let t = render_with(&m, &[worker]);
        assert!(t.contains("hotline_rtp_rejected_total{reason=\"srtp_auth\"} 3\n"));
        assert!(t.contains("hotline_rtp_rejected_total{reason=\"srtp_replay\"} 2\n"));
    }

    #[test]
    fn extension_methods_and_odd_codes_cannot_grow_the_series() {
        let m = Metrics::new();
        let uri = crate::sip::message::Uri::parse("sip:a@127.0.0.1").expect("uri");
        let mut req = Request::new(Method::Invite, uri);
        for i in 0..50 {
            req.method = Method::Other(format!("X{i}"));
            m.sip_message(&Message::Request(req.clone()), Direction::Received);
        }
        let mut resp = Response::for_request(&req, 200, "OK");
        m.sip_message(&Message::Response(resp.clone()), Direction::Sent);
        resp.status = 999;
        m.sip_message(&Message::Response(resp), Direction::Sent);
        let t = render(&m);
        assert!(
            t.contains("hotline_sip_requests_total{method=\"other\",direction=\"received\"} 50\n"),
            "{t}"
        );
        assert!(t.contains("hotline_sip_responses_total{code=\"200\",direction=\"sent\"} 1\n"));
        assert!(t.contains("hotline_sip_responses_total{code=\"0\",direction=\"sent\"} 1\n"));
        assert_eq!(t.matches("hotline_sip_requests_total{").count(), 1);
    }

    #[test]
    fn refusals_and_tcp_closes_are_counted_by_reason() {
        let m = Metrics::new();
        let t = render(&m);
        for reason in TcpClose::ALL {
            let zero = format!(
                "hotline_tcp_closed_total{{reason=\"{}\"}} 0\n",
                reason.as_str()
            );
            assert!(t.contains(&zero), "{zero} in {t}");
        }
        m.tcp_closed(TcpClose::Idle);
        m.tcp_closed(TcpClose::Idle);
        m.sip_refused("udp", "oversize", None);
        m.sip_refused("tcp", "oversize", Some(413));
        m.sip_refused("tcp", "malformed", Some(400));
        m.sip_refused("tcp", "malformed", Some(299));
        let t = render(&m);
        assert!(
            t.contains("hotline_tcp_closed_total{reason=\"idle\"} 2\n"),
            "{t}"
        );
        assert!(t.contains(
            "hotline_sip_refused_total{transport=\"udp\",reason=\"oversize\",status=\"none\"} 1\n"
        ));
        assert!(t.contains(
            "hotline_sip_refused_total{transport=\"tcp\",reason=\"oversize\",status=\"413\"} 1\n"
        ));
        assert!(t.contains(
            "hotline_sip_refused_total{transport=\"tcp\",reason=\"malformed\",status=\"other\"} 1\n"
        ));
    }
}
