//! One call. This module holds what every call shares (the live version of flows and
//! prompts, the engine's services) and starts a call's task; the call itself is a pure
//! [`core::CallCore`] carried by one actor ([`actor`]) with one inbox.
//!
//! The decisions belong to the pure parts (the call core, the flow machine, the UAS, SDP
//! negotiation); the actor only carries messages between them and the clocks.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::config::{Config, Protocol};
use crate::flow::flowset::FlowSet;
use crate::mailbox::Mailbox;
use crate::media::clock::{EventSink, MediaEngine, SessionId};
use crate::media::ports::{PortPool, RtpPort};
use crate::media::prompt::PromptLibrary;
use crate::media::session::{MediaEvent, MediaOrigin, Session, SessionCommand, SessionParams};
use crate::queue::service::AcdHandle;
use crate::sip::endpoint::{SipHandle, our_contact};
use crate::sip::random_token;
use crate::sip::registrar::{Registrations, SharedCredentials};
use crate::sip::sdp::Negotiated;
use crate::sip::transport::Peer;
use crate::sip::uas::{AnswerParams, LocalMedia, Route};
use tracing::warn;

mod actor; // the call's task: one inbox, one sleep, carrying out what the core decides
mod callback; // calling back a caller who asked to keep their place in a queue
mod legs; // transfer and agent legs, the bridge
#[cfg(test)]
mod fail_tests; // a call whose code panics releases what it held
mod queue; // the call's time in an agent queue
pub use actor::{CallMsg, Inbox, run};
pub use callback::call_back;
// The call's pure parts are the core crate's; they keep their paths here.
pub use hotline_core::call::Outcome; // how a call ended, for its record
pub use hotline_core::call::core; // the call as one pure state machine
pub use hotline_core::call::place; // the caller's place in an agent queue, as one pure state machine

/// What a reload replaces as one: the configuration, the flows and the prompts. A call
/// takes a snapshot when it starts and keeps it to its end, so editing a flow never changes
/// a call in progress.
pub struct Live {
    pub config: Arc<Config>,
    pub flows: Arc<FlowSet>,
    pub prompts: PromptLibrary,
    /// Counts reloads; 1 is the version the server started with.
    pub version: u64,
    /// When this version went live.
    pub loaded_at: std::time::SystemTime,
}

/// The last edit on disk a reload refused, while no later reload has succeeded: the files
/// say one thing and the running version another, and the admin should know.
#[derive(Debug, Clone)]
pub struct RefusedEdits {
    pub at: std::time::SystemTime,
    /// The version that stayed live.
    pub running: u64,
    pub diagnostics: Vec<crate::flow::diagnostic::Diagnostic>,
}

/// The engine's services a call uses, all running before the first call.
pub struct Services {
    /// The SIP listeners (outgoing legs leave from one of them).
    pub listeners: Vec<(Protocol, SocketAddr)>,
    /// The SIP sockets, for the TLS connections legs open to `sips:` targets.
    pub transports: crate::sip::transport::Transports,
    /// The endpoint, for calls the engine places itself (legs, call backs).
    pub sip: SipHandle,
    /// The registrar's bindings (feature codes check where an agent's phone is).
    pub registrations: Registrations,
    /// The agent queues, when configured.
    pub acd: Option<AcdHandle>,
    /// The registrar's users, when they come from the configuration (a reload replaces
    /// them).
    pub credentials: Option<Arc<SharedCredentials>>,
    /// Where calls send their records (a disabled sink when records are off).
    pub records: crate::records::RecordSink,
    /// The counters calls move (outcomes, keys); shown by `GET /metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// What every call shares: the engine's parts and the current live version. Built whole
/// by the server before the first call.
pub struct CallDeps {
    pub media: MediaEngine,
    pub ports: PortPool,
    /// The HTTP client every `http` step shares (one connection pool).
    pub http: reqwest::Client,
    /// The calls in progress, for the admin.
    pub registry: Arc<crate::registry::Registry>,
    live: RwLock<Arc<Live>>,
    refused: std::sync::Mutex<Option<RefusedEdits>>,
    services: Services,
    /// Call tasks alive (see [`CallTask`]).
    call_tasks: AtomicUsize,
}

/// Counts one call's task while it lives, however it ends (a panic included).
pub(crate) struct CallTask(Arc<CallDeps>);

impl CallTask {
    pub(crate) fn new(deps: &Arc<CallDeps>) -> CallTask {
        deps.call_tasks.fetch_add(1, Ordering::Relaxed);
        CallTask(deps.clone())
    }
}

impl Drop for CallTask {
    fn drop(&mut self) {
        self.0.call_tasks.fetch_sub(1, Ordering::Relaxed);
    }
}

impl CallDeps {
    pub fn new(media: MediaEngine, ports: PortPool, live: Live, services: Services) -> CallDeps {
        CallDeps {
            media,
            ports,
            http: crate::webhook::client(),
            registry: crate::registry::Registry::new(),
            live: RwLock::new(Arc::new(live)),
            refused: std::sync::Mutex::new(None),
            services,
            call_tasks: AtomicUsize::new(0),
        }
    }

    /// What the engine holds for calls now: call tasks, runtime tasks, RTP ports.
    pub fn resources(&self) -> crate::metrics::Resources {
        let tasks = tokio::runtime::Handle::try_current()
            .map(|h| h.metrics().num_alive_tasks())
            .unwrap_or(0);
        crate::metrics::Resources {
            call_tasks: self.call_tasks.load(Ordering::Relaxed),
            tasks,
            rtp_ports: self.ports.in_use(),
        }
    }

    pub fn credentials(&self) -> Option<&SharedCredentials> {
        self.services.credentials.as_deref()
    }

    pub fn sip(&self) -> &SipHandle {
        &self.services.sip
    }

    pub fn registrations(&self) -> &Registrations {
        &self.services.registrations
    }

    pub fn records(&self) -> &crate::records::RecordSink {
        &self.services.records
    }

    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.services.metrics
    }

    pub fn acd(&self) -> Option<&AcdHandle> {
        self.services.acd.as_ref()
    }

    pub fn listeners(&self) -> &[(Protocol, SocketAddr)] {
        &self.services.listeners
    }

    pub fn transports(&self) -> &crate::sip::transport::Transports {
        &self.services.transports
    }

    /// The current version (what a new call gets).
    pub fn live(&self) -> Arc<Live> {
        self.live
            .read()
            .map(|l| l.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Makes `live` the version new calls get; the files and the running version agree again.
    pub fn replace(&self, live: Live) {
        let mut slot = self.live.write().unwrap_or_else(|e| e.into_inner());
        *slot = Arc::new(live);
        self.set_refused(None);
    }

    /// The edit on disk the last reload refused, if no reload succeeded since.
    pub fn refused_edits(&self) -> Option<RefusedEdits> {
        self.refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_refused(&self, refused: Option<RefusedEdits>) {
        *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = refused;
    }
}

/// The IP address our SDP and Contact should show to `remote`: the configured public
/// address, the listener's own address, or the one the kernel would route from.
pub fn advertised_ip(public: Option<IpAddr>, local: SocketAddr, remote: SocketAddr) -> IpAddr {
    if let Some(ip) = public {
        return ip;
    }
    if !local.ip().is_unspecified() {
        return local.ip();
    }
    // Connecting a UDP socket sends nothing; it only asks the kernel for the route.
    let probe = if remote.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    UdpSocket::bind(probe)
        .and_then(|s| {
            s.connect(remote)?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .unwrap_or(local.ip())
}

/// A media session for `n` on `port`, its random starts drawn here, on the media worker
/// of `beside` when given (so the two can be bridged on the media clock). Every session a
/// call, a feature code or a leg sets up starts here.
pub(crate) fn start_session(
    deps: &CallDeps,
    port: RtpPort,
    n: &Negotiated,
    no_media_timeout: Duration,
    events: EventSink,
    beside: Option<SessionId>,
    origin: MediaOrigin,
) -> SessionId {
    let params = SessionParams {
        codec: n.codec,
        payload_type: n.pt,
        telephone_event_pt: n.telephone_event_pt,
        remote: n.remote_rtp,
        no_media_timeout,
        ssrc: rand::random(),
        initial_seq: rand::random(),
        initial_timestamp: rand::random(),
        origin,
        srtp: n.srtp.clone(),
    };
    let session = Session::new(params, Instant::now());
    let id = match beside {
        Some(b) => deps.media.add_beside(b, port, session, events),
        None => deps.media.add(port, session, events),
    };
    if n.on_hold() {
        deps.media.command(
            id,
            SessionCommand::Update {
                remote: n.remote_rtp,
                send: false,
                reset_latch: false,
            },
        );
    }
    id
}

/// A fresh SRTP master key and salt for one leg, from the operating system's generator
/// (drawn for every leg: the policy decides later whether it is used).
pub(crate) fn fresh_srtp_key() -> crate::media::srtp::MasterKey {
    crate::media::srtp::MasterKey::from_bytes(&rand::random())
}

/// How far a caller's media addresses are believed: a trusted source (`limits.trusted`,
/// a trunk or a proxy in front) may name any address, anyone else only its own.
pub(crate) fn caller_media_origin(live: &Live, signalling: SocketAddr) -> MediaOrigin {
    let ip = crate::media::rtp::canonical_ip(signalling.ip());
    if live
        .config
        .guard
        .trusted
        .iter()
        .any(|net| net.contains(&ip))
    {
        MediaOrigin::Trusted
    } else {
        MediaOrigin::Untrusted { signalling: ip }
    }
}

/// A media session's events posted to a call's inbox.
pub(crate) fn media_sink(mailbox: Mailbox<MediaEvent>) -> EventSink {
    EventSink::new(move |ev| {
        let _ = mailbox.send(ev);
    })
}

/// The parts of an answer the engine draws or looks up for an INVITE that arrived through
/// `peer`: our tag, CSeq start and SDP session id, our Contact, and an RTP port (none: 503).
pub(crate) fn answer_params(
    deps: &CallDeps,
    peer: &Peer,
    advertised: IpAddr,
    route: Route,
    ring_for: Duration,
) -> (AnswerParams, Option<RtpPort>) {
    let port = match deps.ports.allocate(peer.local.ip()) {
        Ok(p) => Some(p),
        Err(e) => {
            warn!(error = %e, "no RTP port");
            None
        }
    };
    let params = AnswerParams {
        local_tag: random_token(10),
        first_cseq: rand::random_range(1..10_000),
        contact: our_contact(peer, advertised),
        route,
        media: port.as_ref().map(|p| LocalMedia {
            advertised,
            rtp_port: p.port,
            sdp_session_id: rand::random_range(1..u64::from(u32::MAX)),
            sdp_version: 1,
            srtp: deps.live().config.srtp,
            srtp_key: fresh_srtp_key(),
        }),
        ring_for,
        timers: crate::sip::transaction::TimerConfig::with_t1(deps.live().config.t1),
    };
    (params, port)
}
