//! The server configuration, `hotline.yaml`: listeners, the RTP port range, where flows and
//! prompts live, which flow answers which dialed number, the opening-hours schedules and the
//! variables flows see as `config.NAME`, whether `serve` runs the sample's demonstration
//! order service, and where call records are kept. Every key has a working default, so the shipped
//! file is short. Paths are relative to the config file. This module only reads and checks
//! the file; it opens no socket.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use thiserror::Error;

use crate::config_text::{ConfigText, Sources};
use crate::flow::check::FlowConfig;
use crate::flow::check::is_identifier;
use crate::flow::diagnostic::Diagnostic;
use crate::flow::duration::parse_duration;
use crate::flow::schedule::Schedule;
use crate::queue::config::{AgentsConfig, QueuesConfig};
use crate::sip::admission::{AdmissionConfig, DEFAULT_MAX_CALLS};
use crate::sip::digest::{Algorithm, DEFAULT_ALGORITHMS};
use crate::sip::guard::GuardConfig;

/// A problem with `hotline.yaml` or a command-line override.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Every problem found in the file, each at its line and column.
    #[error("{}", render(diagnostics))]
    Invalid {
        path: PathBuf,
        diagnostics: Vec<Diagnostic>,
        /// The configuration as far as it could be read, when the broken parts leave the
        /// flows' own check meaningful (they name no flows, prompts, schedules, variables or
        /// queues): `hotline check` goes on with it, to report every problem in one run.
        partial: Option<Box<Config>>,
    },
    #[error("{0}")]
    Value(String),
}

fn render(diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diagnostics {
        out.push_str(&d.to_string());
        out.push('\n');
    }
    out.push_str(&format!(
        "{} error(s) in the configuration",
        diagnostics.len()
    ));
    out
}

impl ConfigError {
    /// The problems as diagnostics of `path` (for reports that gather several files').
    pub fn diagnostics(&self, path: &Path) -> Vec<Diagnostic> {
        match self {
            ConfigError::Invalid { diagnostics, .. } => diagnostics.clone(),
            ConfigError::Read { source, .. } => vec![Diagnostic::error(
                path,
                format!("cannot read the configuration: {source}"),
            )],
            ConfigError::Value(message) => vec![Diagnostic::error(path, message.clone())],
        }
    }
}

/// The socket protocol one of our listeners speaks (UDP, TCP, or TLS over TCP). A Via hop
/// can name more (WS, SCTP...): that wider set is `sip::message::Transport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Udp,
    Tcp,
    Tls,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Udp => "UDP",
            Protocol::Tcp => "TCP",
            Protocol::Tls => "TLS",
        })
    }
}

/// One SIP listener, written `udp:127.0.0.1:5060`, `tcp:[::1]:5060`, `tls:0.0.0.0:5061`
/// or `127.0.0.1:5060` (UDP). A TLS listener needs the `tls:` section's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen {
    pub transport: Protocol,
    pub addr: SocketAddr,
}

impl FromStr for Listen {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (transport, rest) = match s.split_once(':') {
            Some((t, rest)) if t.eq_ignore_ascii_case("udp") => (Protocol::Udp, rest),
            Some((t, rest)) if t.eq_ignore_ascii_case("tcp") => (Protocol::Tcp, rest),
            Some((t, rest)) if t.eq_ignore_ascii_case("tls") => (Protocol::Tls, rest),
            _ => (Protocol::Udp, s),
        };
        let addr = rest.parse::<SocketAddr>().map_err(|_| {
            ConfigError::Value(format!(
                "expected a listener like 'udp:0.0.0.0:5060', 'tcp:[::1]:5060' or 'tls:0.0.0.0:5061', found '{s}'"
            ))
        })?;
        Ok(Listen { transport, addr })
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}",
            self.transport.to_string().to_lowercase(),
            self.addr
        )
    }
}

/// An inclusive range of UDP ports for RTP, written `10000-20000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl FromStr for PortRange {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            ConfigError::Value(format!(
                "expected a port range like '10000-20000', found '{s}'"
            ))
        };
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let first: u16 = a.trim().parse().map_err(|_| bad())?;
        let last: u16 = b.trim().parse().map_err(|_| bad())?;
        if first == 0 || last < first.saturating_add(1) {
            return Err(ConfigError::Value(format!(
                "the RTP port range '{s}' must hold at least two ports, from a lower to a higher one"
            )));
        }
        Ok(PortRange { first, last })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    sip: RawSip,
    #[serde(default)]
    rtp: RawRtp,
    flows: Option<String>,
    prompts: Option<String>,
    recordings: Option<String>,
    data: Option<String>,
    #[serde(default)]
    routes: BTreeMap<String, String>,
    default_language: Option<String>,
    #[serde(default)]
    schedules: BTreeMap<String, Schedule>,
    #[serde(default)]
    vars: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    queues: QueuesConfig,
    #[serde(default)]
    agents: AgentsConfig,
    demo_shop: Option<RawDemoShop>,
    admin: Option<RawAdmin>,
    tests: Option<String>,
    /// `off`, or a table (read by hand for precise messages).
    #[serde(default)]
    #[schemars(schema_with = "records_schema")]
    records: Option<serde_json::Value>,
    #[serde(default)]
    limits: RawLimits,
    cluster: Option<RawCluster>,
    tls: Option<RawTls>,
    agent_transfers: Option<RawAgentTransfers>,
}

/// `agent_transfers:`: where agents' phones may transfer callers (REFER). Absent: every
/// REFER is refused, as from callers always.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawAgentTransfers {
    /// Targets agents may transfer callers to: a number pattern for the user part of the
    /// Refer-To URI (`2XX`, `0800X.`), optionally with `@host` or `@host:port` it must
    /// name (`2XX@pbx.example.net`). See docs/queues.md.
    allowed: Vec<String>,
}

/// `tls:`: the certificate a `tls:` listener presents, and whom connections we open trust.
#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawTls {
    /// The certificate chain (PEM), ours first; needed by a `tls:` listener.
    cert: Option<String>,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    key: Option<String>,
    /// The certificate authorities (PEM) that servers we connect to must be signed by.
    ca: Option<String>,
}

/// `tls:` as the engine uses it: paths made absolute. The files were readable and held
/// PEM of the right kind when the configuration was loaded; the engine parses them fully
/// when it opens the listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// Our certificate chain; None when only `ca` is given (no `tls:` listener then).
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub ca: Option<PathBuf>,
}

/// `cluster:`: this node's part in several nodes sharing one PostgreSQL database
/// (docs/cluster.md).
#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    /// This node's name, unique among the nodes (default: the host's name).
    node: Option<String>,
    /// The shared database (default: `records.store` when that is a postgres:// URL).
    store: Option<String>,
    /// How long a node that stops renewing its lease is still counted alive (default 5s).
    lease: Option<String>,
}

/// `cluster:` as the engine uses it; None: a single node (the default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub node: String,
    /// A postgres:// URL.
    pub store: String,
    pub lease: Duration,
}

/// How long a node's lease lasts when `cluster.lease` is not given.
pub const DEFAULT_CLUSTER_LEASE: Duration = Duration::from_secs(5);

/// `limits:`: who may talk to the engine (see docs/reliability.md).
#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    /// More than this many requests within `window` from one address bans it (16).
    requests: Option<u32>,
    /// The window of `requests` (2s).
    window: Option<String>,
    /// How long a banned address is ignored (300s).
    ban: Option<String>,
    /// Refused passwords from one address within 5 s that ban it (5).
    failed_logins: Option<u32>,
    /// Refused passwords for one user within 10 minutes that ban whoever fails next (20).
    failed_logins_per_user: Option<u32>,
    /// Addresses and CIDR ranges never limited: trunks, a proxy in front (["127.0.0.1"]).
    trusted: Option<Vec<String>>,
    /// User-Agent substrings dropped without a reply (known scanners by default).
    scanners: Option<Vec<String>>,
    /// The longest a call may last; the engine then hangs it up, legs included (2h).
    max_call: Option<String>,
    /// Calls in progress beyond which new calls get 503 with Retry-After (1500).
    max_calls: Option<usize>,
    /// New calls per second on average, beyond which they get 503 (200).
    new_calls_per_second: Option<f64>,
    /// New calls that may arrive at once after a quiet spell (200).
    burst: Option<u32>,
    /// The media clock's smoothed lateness beyond which new calls get 503 (10ms).
    max_media_lateness: Option<String>,
    /// How long a graceful shutdown waits for calls in progress before ending them (5m).
    drain: Option<String>,
    /// The largest SIP message accepted, in bytes or like `16KiB` (16KiB).
    #[schemars(schema_with = "byte_size_schema")]
    max_message: Option<serde_json::Value>,
    /// A TCP connection without a complete message for this long is closed (60s).
    tcp_idle: Option<String>,
    /// Open TCP connections from one address (32).
    tcp_per_source: Option<u32>,
    /// Open TCP connections in all (sized below the open-files limit).
    tcp_connections: Option<u32>,
}

#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawDemoShop {
    listen: Option<String>,
}

#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<String>,
    token: Option<String>,
    hosts: Option<Vec<String>>,
}

/// The admin HTTP API (`admin:` in hotline.yaml); absent: no admin API.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Default 127.0.0.1:8080. Any other than a loopback address needs `token`.
    pub listen: SocketAddr,
    /// When set, every request must carry `Authorization: Bearer TOKEN`.
    pub token: Option<String>,
    /// Host names the admin server answers to besides its own address (and `localhost`
    /// on loopback): a request whose `Host` or `Origin` names another is refused, which
    /// stops DNS rebinding and other sites' pages.
    pub hosts: Vec<String>,
}

impl fmt::Debug for AdminConfig {
    // The token never reaches a log line, even through `{:?}` of the whole configuration.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| ".."))
            .field("hosts", &self.hosts)
            .finish()
    }
}

/// How long a call may last when `limits.max_call` is not set: longer than any real
/// conversation with an agent, short enough that a stuck call frees its slot the same day.
pub const DEFAULT_MAX_CALL: Duration = Duration::from_secs(2 * 3600);

/// Where the admin API listens when `admin:` names no address.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:8080";

#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawSip {
    listen: Option<Vec<String>>,
    user_agent: Option<String>,
    max_calls: Option<usize>,
    answer_after: Option<String>,
    t1: Option<String>,
    realm: Option<String>,
    digest_algorithms: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawRtp {
    ports: Option<String>,
    public_address: Option<String>,
    no_media_timeout: Option<String>,
    /// SRTP for callers (SDES keys, RFC 4568): `optional` (default), `required` or `off`.
    #[schemars(with = "Option<crate::sip::sdes::SrtpPolicy>")]
    srtp: Option<String>,
}

/// The loaded configuration, with defaults filled in and paths made absolute.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from (None when every value is a default).
    pub path: Option<PathBuf>,
    /// Who may talk to the engine: flood and login bans, trusted sources, scanners.
    pub guard: GuardConfig,
    /// Which new calls are taken: the rate and the media lateness (`limits.*`); the
    /// count of calls is `max_calls`.
    pub admission: AdmissionConfig,
    /// How long a graceful shutdown waits for calls in progress before ending them.
    pub drain: Duration,
    pub listen: Vec<Listen>,
    pub user_agent: String,
    /// New calls beyond this many get 503 with Retry-After (`limits.max_calls`).
    pub max_calls: usize,
    /// Ring (180) for this long before answering; zero answers at once.
    pub answer_after: Duration,
    /// RFC 3261 T1, the round-trip estimate all SIP retransmission timers derive from.
    pub t1: Duration,
    /// The digest realm agents' phones authenticate in (hashed secrets depend on it).
    pub realm: String,
    /// The digest algorithms a registering phone is challenged with, preferred first.
    pub digest_algorithms: Vec<Algorithm>,
    pub rtp_ports: PortRange,
    /// The address written into SDP when the host sits behind NAT.
    pub public_address: Option<IpAddr>,
    /// A call whose caller sends no RTP for this long is ended.
    pub no_media_timeout: Duration,
    /// Whether callers' media is SRTP (`rtp.srtp`): which offers are answered, see
    /// [`SrtpPolicy`](crate::sip::sdes::SrtpPolicy).
    pub srtp: crate::sip::sdes::SrtpPolicy,
    /// The longest a call may last (`limits.max_call`); the engine then hangs it up.
    pub max_call: Duration,
    pub flows_dir: PathBuf,
    pub prompts_dir: PathBuf,
    /// Where `record` steps write their WAV files.
    pub recordings_dir: PathBuf,
    /// Where the engine keeps state that must survive a restart (callback requests).
    pub data_dir: PathBuf,
    /// Dialed number (Request-URI user) to flow name; "*" matches any.
    pub routes: BTreeMap<String, String>,
    pub default_language: String,
    /// Opening hours by name, for the `hours` steps of flows.
    pub schedules: BTreeMap<String, Schedule>,
    /// Values flows read as `config.NAME` in templates.
    pub vars: BTreeMap<String, serde_json::Value>,
    /// Agent queues by name (see docs/queues.md).
    pub queues: QueuesConfig,
    /// Agents by name, which is also the user name they register with.
    pub agents: AgentsConfig,
    /// Where `serve` also runs the demonstration order service; None: it does not.
    pub demo_shop: Option<DemoShopConfig>,
    /// The admin HTTP API, when configured.
    pub admin: Option<AdminConfig>,
    /// The flow tests `hotline check` checks and `hotline test` runs: `tests:`, or
    /// `<flows>/tests` when that folder exists.
    pub tests_dir: Option<PathBuf>,
    /// The start-only values as the file gave them, before any command-line override
    /// (None when not read from a file): reloads compare files with files, so a port given
    /// on the command line is not mistaken for an edit.
    pub as_loaded: Option<StartOnly>,
    /// Where call records are kept; None: they are not (`records: off`, or no `records:`).
    pub records: Option<RecordsConfig>,
    /// This node's part in a cluster; None: a single node.
    pub cluster: Option<ClusterConfig>,
    /// How large a message and how many and how idle TCP connections may be.
    pub connections: ConnectionLimits,
    /// The certificate files of `tls:` listeners and connections; None: no `tls:` section.
    pub tls: Option<TlsConfig>,
    /// Where agents' phones may transfer callers (`agent_transfers.allowed`); None: no
    /// REFER is accepted.
    pub agent_transfers: Option<std::sync::Arc<crate::sip::refer::TransferTargets>>,
}

/// `limits.max_message` and `limits.tcp_*`: what one SIP message and the TCP listeners may
/// take, so that neither memory nor descriptors can be exhausted from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Larger messages are refused: a datagram dropped, a TCP message answered 413 and its
    /// connection closed.
    pub max_message: usize,
    /// A TCP connection that completes no message for this long is closed.
    pub tcp_idle: Duration,
    /// Open TCP connections from one address (trusted addresses are exempt).
    pub tcp_per_source: usize,
    /// Open TCP connections in all; None: derived from the open-files limit at start.
    pub tcp_connections: Option<usize>,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_message: 16 * 1024,
            tcp_idle: Duration::from_secs(60),
            tcp_per_source: 32,
            tcp_connections: None,
        }
    }
}

/// The bounds of `limits.max_message`: a full Ethernet frame's worth at least, and no more
/// than the largest datagram.
const MAX_MESSAGE_RANGE: std::ops::RangeInclusive<usize> = 1024..=65_535;

/// The values the engine reads once, at start: sockets it binds, services it starts and
/// what the SIP endpoint and registrar are built with. A reload cannot change them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartOnly {
    listen: Vec<Listen>,
    rtp_ports: PortRange,
    admin: Option<AdminConfig>,
    demo_shop: Option<DemoShopConfig>,
    user_agent: String,
    max_calls: usize,
    t1: Duration,
    realm: String,
    digest_algorithms: Vec<Algorithm>,
    records: Option<RecordsConfig>,
    guard: GuardConfig,
    cluster: Option<ClusterConfig>,
    admission: AdmissionConfig,
    connections: ConnectionLimits,
    tls: Option<TlsConfig>,
}

impl StartOnly {
    pub fn of(c: &Config) -> StartOnly {
        StartOnly {
            listen: c.listen.clone(),
            rtp_ports: c.rtp_ports,
            admin: c.admin.clone(),
            demo_shop: c.demo_shop,
            user_agent: c.user_agent.clone(),
            max_calls: c.max_calls,
            t1: c.t1,
            realm: c.realm.clone(),
            digest_algorithms: c.digest_algorithms.clone(),
            records: c.records.clone(),
            guard: c.guard.clone(),
            cluster: c.cluster.clone(),
            admission: c.admission.clone(),
            connections: c.connections,
            tls: c.tls.clone(),
        }
    }

    /// The keys (as written in hotline.yaml) whose values differ.
    fn differences(&self, new: &StartOnly) -> Vec<&'static str> {
        let mut keys = Vec::new();
        let mut check = |changed: bool, key: &'static str| {
            if changed {
                keys.push(key);
            }
        };
        check(self.listen != new.listen, "sip.listen");
        check(self.rtp_ports != new.rtp_ports, "rtp.ports");
        check(self.admin != new.admin, "admin");
        check(self.demo_shop != new.demo_shop, "demo_shop");
        check(self.user_agent != new.user_agent, "sip.user_agent");
        check(self.max_calls != new.max_calls, "limits.max_calls");
        check(self.t1 != new.t1, "sip.t1");
        check(self.realm != new.realm, "sip.realm");
        check(
            self.digest_algorithms != new.digest_algorithms,
            "sip.digest_algorithms",
        );
        check(self.records != new.records, "records");
        check(self.cluster != new.cluster, "cluster");
        check(self.tls != new.tls, "tls");
        check(
            self.guard != new.guard
                || self.admission != new.admission
                || self.connections != new.connections,
            "limits",
        );
        keys
    }
}

/// The start-only keys (see [`StartOnly`]) a reload from `old` to `new` would change, which
/// therefore wait for the next start. Both sides are compared as their files gave them
/// when they came from files, so command-line overrides are not reported.
pub fn start_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let side = |c: &Config| c.as_loaded.clone().unwrap_or_else(|| StartOnly::of(c));
    side(old).differences(&side(new))
}

/// `records: { store: data/hotline.db, keep: 400d }`: where every call's record and
/// events are written, and how long they are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordsConfig {
    pub store: RecordsStore,
    /// Records of calls started longer ago than this are deleted.
    pub keep: Duration,
    /// Where every ended call is also POSTed as a JSON document; None: nowhere.
    pub webhook: Option<WebhookConfig>,
}

/// `records.webhook`: `https://crm.example.com/calls`, or `{ url, headers, timeout }`.
/// The webhook comes on top of the store, never instead of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// An http or https URL with a host.
    pub url: String,
    /// Sent with every request (an `Authorization` token, a tenant...).
    pub headers: Vec<(String, String)>,
    /// How long one request may take before it counts as failed (and is retried).
    pub timeout: Duration,
}

/// How long one webhook request may take when `records.webhook.timeout` is not given.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// The records store: an SQLite file (a path) or a PostgreSQL database (a URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordsStore {
    Sqlite(PathBuf),
    Postgres(String),
}

/// The SQLite file records go to when `records:` names no store, in the data folder.
pub const DEFAULT_RECORDS_FILE: &str = "hotline.db";

/// How long records are kept when `records.keep` is not given.
pub const DEFAULT_RECORDS_KEEP: Duration = Duration::from_secs(400 * 24 * 3600);

/// The address `hotline demo-shop` listens on when given none, and the sample's `shop_url`.
pub const DEMO_SHOP_LISTEN: &str = "127.0.0.1:8081";

/// `demo_shop: { listen: "127.0.0.1:8081" }`: the sample's made-up order service, served
/// beside the hotline for demonstration only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoShopConfig {
    pub listen: SocketAddr,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            path: None,
            guard: GuardConfig::default(),
            admission: AdmissionConfig::default(),
            drain: DEFAULT_DRAIN,
            listen: vec![
                "udp:0.0.0.0:5060".parse().expect("static listener"),
                "tcp:0.0.0.0:5060".parse().expect("static listener"),
            ],
            user_agent: format!("hotline/{}", env!("CARGO_PKG_VERSION")),
            max_calls: DEFAULT_MAX_CALLS,
            answer_after: Duration::ZERO,
            t1: Duration::from_millis(500),
            realm: "hotline".to_string(),
            digest_algorithms: DEFAULT_ALGORITHMS.to_vec(),
            rtp_ports: PortRange {
                first: 10000,
                last: 20000,
            },
            public_address: None,
            no_media_timeout: Duration::from_secs(30),
            srtp: crate::sip::sdes::SrtpPolicy::Optional,
            max_call: DEFAULT_MAX_CALL,
            flows_dir: PathBuf::from("flows"),
            prompts_dir: PathBuf::from("prompts"),
            recordings_dir: PathBuf::from("recordings"),
            data_dir: PathBuf::from("data"),
            routes: BTreeMap::from([("*".to_string(), "main".to_string())]),
            default_language: "en".to_string(),
            schedules: BTreeMap::new(),
            vars: BTreeMap::new(),
            queues: QueuesConfig::new(),
            agents: AgentsConfig::new(),
            demo_shop: None,
            admin: None,
            tests_dir: None,
            as_loaded: None,
            records: None,
            cluster: None,
            connections: ConnectionLimits::default(),
            tls: None,
            agent_transfers: None,
        }
    }
}

impl Config {
    /// Reads `path`; paths inside it are taken relative to its folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_str_at(&text, path)
    }

    /// Parses the text of a config file that lives at `path`, with `${NAME}` taken from
    /// the process's environment and `KEY_file` files read from the disk.
    pub fn from_str_at(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let env = |name: &str| std::env::var(name).ok();
        let read = |p: &Path| std::fs::read_to_string(p);
        Self::from_text(
            text,
            path,
            &Sources {
                env: &env,
                read: &read,
            },
        )
    }

    /// Parses the text of a config file that lives at `path`, reporting every problem
    /// found: a key serde rejects empties its top-level section (every line keeping its
    /// number) and the rest is read again, and the checks after parsing each add theirs.
    pub fn from_text(text: &str, path: &Path, sources: &Sources) -> Result<Config, ConfigError> {
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| Path::new("."));
        let source = crate::config_text::expand(text, base, sources);
        let mut found = Found {
            path,
            text,
            source: &source,
            diagnostics: Vec::new(),
            broken: BTreeSet::new(),
        };
        for p in &source.problems {
            found.at_pos(p.pos, p.message.clone(), p.help.clone());
        }
        let raw = found.parse();
        let mut cfg = Config {
            path: Some(path.to_path_buf()),
            ..Config::default()
        };
        let Some(mut raw) = raw else {
            return Err(found.into_error(None));
        };
        let p = &mut found;
        if let Some(list) = raw.sip.listen {
            let mut listen = Vec::new();
            for (i, s) in list.iter().enumerate() {
                match s.parse() {
                    Ok(l) => listen.push(l),
                    Err(e) => p.at(&format!("sip.listen.{i}"), format!("sip.listen: {e}")),
                }
            }
            cfg.listen = listen;
        }
        if let Some(ua) = raw.sip.user_agent {
            cfg.user_agent = ua;
        }
        if let Some(n) = raw.sip.max_calls {
            cfg.max_calls = n;
        }
        if let Some(t) = raw.sip.answer_after {
            match parse_duration(&t) {
                Ok(d) => cfg.answer_after = d,
                Err(e) => p.at("sip.answer_after", format!("sip.answer_after: {e}")),
            }
        }
        if let Some(t) = raw.sip.t1 {
            match parse_duration(&t) {
                Ok(d) if d < Duration::from_millis(1) || d > Duration::from_secs(60) => p.at(
                    "sip.t1",
                    format!("sip.t1: expected between 1ms and 60s, found '{t}'"),
                ),
                Ok(d) => cfg.t1 = d,
                Err(e) => p.at("sip.t1", format!("sip.t1: {e}")),
            }
        }
        if let Some(r) = raw.sip.realm {
            if r.is_empty() || r.chars().any(|c| c.is_control()) {
                p.at(
                    "sip.realm",
                    format!(
                        "sip.realm: expected a non-empty name without control characters, found '{r}'"
                    ),
                );
            }
            cfg.realm = r;
        }
        if let Some(list) = raw.sip.digest_algorithms {
            let mut algs = Vec::new();
            for (i, a) in list.iter().enumerate() {
                match Algorithm::parse(a) {
                    Ok(alg @ (Algorithm::Md5 | Algorithm::Sha256)) => {
                        if !algs.contains(&alg) {
                            algs.push(alg);
                        }
                    }
                    _ => p.at(
                        &format!("sip.digest_algorithms.{i}"),
                        format!("sip.digest_algorithms: expected SHA-256 or MD5, found '{a}'"),
                    ),
                }
            }
            if list.is_empty() {
                p.at(
                    "sip.digest_algorithms",
                    "sip.digest_algorithms: expected at least one of SHA-256 and MD5".to_string(),
                );
            }
            if !algs.is_empty() {
                cfg.digest_algorithms = algs;
            }
        }
        if let Some(ports) = raw.rtp.ports {
            match ports.parse() {
                Ok(r) => cfg.rtp_ports = r,
                Err(e) => p.at("rtp.ports", format!("rtp.ports: {e}")),
            }
        }
        if let Some(a) = raw.rtp.public_address {
            match a.parse() {
                Ok(ip) => cfg.public_address = Some(ip),
                Err(_) => p.at(
                    "rtp.public_address",
                    format!("rtp.public_address: expected an IP address, found '{a}'"),
                ),
            }
        }
        if let Some(t) = raw.rtp.no_media_timeout {
            match parse_duration(&t) {
                Ok(d) => cfg.no_media_timeout = d,
                Err(e) => p.at("rtp.no_media_timeout", format!("rtp.no_media_timeout: {e}")),
            }
        }
        if let Some(policy) = raw.rtp.srtp {
            use crate::sip::sdes::SrtpPolicy;
            match policy.as_str() {
                "optional" => cfg.srtp = SrtpPolicy::Optional,
                "required" => cfg.srtp = SrtpPolicy::Required,
                "off" => cfg.srtp = SrtpPolicy::Off,
                other => p.at(
                    "rtp.srtp",
                    format!("rtp.srtp: expected optional, required or off, found '{other}'"),
                ),
            }
        }
        cfg.flows_dir = base.join(raw.flows.unwrap_or_else(|| "flows".into()));
        cfg.prompts_dir = base.join(raw.prompts.unwrap_or_else(|| "prompts".into()));
        cfg.recordings_dir = base.join(raw.recordings.unwrap_or_else(|| "recordings".into()));
        cfg.data_dir = base.join(raw.data.unwrap_or_else(|| "data".into()));
        if !raw.routes.is_empty() {
            cfg.routes = raw.routes;
        }
        if let Some(l) = raw.default_language {
            cfg.default_language = l;
        }
        for name in raw.schedules.keys() {
            if !is_identifier(name) {
                p.at_key(
                    &format!("schedules.{name}"),
                    format!(
                        "schedules: '{name}' is not a usable schedule name (letters, digits and '_')"
                    ),
                );
            }
        }
        cfg.schedules = raw.schedules;
        for name in raw.vars.keys() {
            if !is_identifier(name) {
                p.at_key(
                    &format!("vars.{name}"),
                    format!(
                        "vars: '{name}' is not a usable variable name: flows write config.NAME, so use letters, digits and '_'"
                    ),
                );
            }
        }
        cfg.vars = raw.vars;
        // With either section unread, the other's references to it would only echo that.
        if !p.broken.contains("queues") && !p.broken.contains("agents") {
            for problem in crate::queue::config::check(&raw.queues, &raw.agents) {
                let key = problem
                    .split_once(':')
                    .map_or("queues", |(k, _)| k)
                    .to_owned();
                // "no queue named 'x'": at the name itself.
                let named = problem
                    .split_once("no queue named '")
                    .and_then(|(_, rest)| rest.split_once('\''))
                    .map(|(name, _)| format!("{key}.{name}"));
                match named {
                    Some(at) => p.at_key(&at, problem),
                    None => p.at(&key, problem),
                }
            }
        }
        cfg.queues = raw.queues;
        cfg.agents = raw.agents;
        if let Some(t) = raw.agent_transfers {
            use crate::sip::refer::TransferTargets;
            let mut fine = true;
            for (i, pattern) in t.allowed.iter().enumerate() {
                if let Err(e) = TransferTargets::check(pattern) {
                    fine = false;
                    p.at(
                        &format!("agent_transfers.allowed.{i}"),
                        format!("agent_transfers.allowed[{i}]: {e}, found '{pattern}'"),
                    );
                }
            }
            if t.allowed.is_empty() {
                fine = false;
                p.at(
                    "agent_transfers.allowed",
                    "agent_transfers.allowed: no target could be transferred to; leave agent_transfers out to refuse every REFER".to_owned(),
                );
            }
            if fine && let Ok(targets) = TransferTargets::new(&t.allowed) {
                cfg.agent_transfers = Some(std::sync::Arc::new(targets));
            }
        }
        if let Some(shop) = raw.demo_shop {
            let listen = shop.listen.unwrap_or_else(|| DEMO_SHOP_LISTEN.to_owned());
            match listen.parse() {
                Ok(listen) => cfg.demo_shop = Some(DemoShopConfig { listen }),
                Err(_) => p.at(
                    "demo_shop.listen",
                    format!(
                        "demo_shop.listen: expected an address like '127.0.0.1:8081', found '{listen}'"
                    ),
                ),
            }
        }
        if let Some(a) = raw.admin {
            match admin_config(a) {
                Ok(admin) => cfg.admin = Some(admin),
                Err((key, message)) => p.at(key, message),
            }
        }
        if let Some(r) = raw.records {
            match records_config(&r, base, &cfg.data_dir) {
                Ok(records) => cfg.records = records,
                Err(message) => {
                    let key = message
                        .split_once(':')
                        .map_or("records", |(k, _)| k)
                        .to_owned();
                    p.at(&key, message);
                }
            }
        }
        if let Some(t) = raw.limits.max_call.as_deref() {
            match parse_duration(t) {
                Ok(d) if d.is_zero() => p.at(
                    "limits.max_call",
                    "limits.max_call: expected more than 0s".to_owned(),
                ),
                Ok(d) => cfg.max_call = d,
                Err(e) => p.at("limits.max_call", format!("limits.max_call: {e}")),
            }
        }
        let sip_max_calls = raw.sip.max_calls.is_some();
        admission_config(&mut raw.limits, sip_max_calls, &mut cfg, p);
        connection_limits(&raw.limits, &mut cfg.connections, p);
        limits_config(raw.limits, &mut cfg.guard, p);
        if let Some(c) = raw.cluster {
            cfg.cluster = cluster_config(c, cfg.records.as_ref(), p);
        }
        // A certificate given but broken is reported at its own line, not here again.
        let cert_given = raw.tls.as_ref().is_some_and(|t| t.cert.is_some());
        cfg.tls = tls_config(raw.tls, base, sources, p);
        if !cert_given && let Some(i) = cfg.listen.iter().position(|l| l.transport == Protocol::Tls)
        {
            p.at(
                &format!("sip.listen.{i}"),
                "sip.listen: a 'tls:' listener needs a certificate: set tls.cert and tls.key (PEM files)"
                    .to_owned(),
            );
        }
        cfg.tests_dir = match raw.tests {
            Some(t) => Some(base.join(t)),
            None => Some(cfg.flows_dir.join("tests")).filter(|p| p.is_dir()),
        };
        cfg.as_loaded = Some(StartOnly::of(&cfg));
        if found.diagnostics.is_empty() {
            Ok(cfg)
        } else {
            Err(found.into_error(Some(cfg)))
        }
    }

    /// What flows use from this configuration: schedules and `vars`.
    pub fn flow_config(&self) -> FlowConfig {
        FlowConfig {
            schedules: self.schedules.clone(),
            vars: self.vars.clone(),
            // Without any queue, queue steps are not checked by name: such a flow is being
            // written before its queues, and its callers go to `on_timeout` meanwhile.
            queues: (!self.queues.is_empty()).then(|| self.queues.keys().cloned().collect()),
        }
    }

    /// The flow that answers a call to `dialed` (the Request-URI user), if any route matches.
    pub fn route(&self, dialed: &str) -> Option<&str> {
        self.routes
            .get(dialed)
            .or_else(|| self.routes.get("*"))
            .map(String::as_str)
    }
}

/// `records:`: `off` (or `false`), `on` (or `true`: the defaults), or a table with `store`
/// and `keep`.
fn records_config(
    raw: &serde_json::Value,
    base: &Path,
    data_dir: &Path,
) -> Result<Option<RecordsConfig>, String> {
    use serde_json::Value;
    let mut records = RecordsConfig {
        store: RecordsStore::Sqlite(data_dir.join(DEFAULT_RECORDS_FILE)),
        keep: DEFAULT_RECORDS_KEEP,
        webhook: None,
    };
    let table = match raw {
        Value::Bool(false) | Value::Null => return Ok(None),
        Value::String(s) if s == "off" => return Ok(None),
        Value::Bool(true) => return Ok(Some(records)),
        Value::String(s) if s == "on" => return Ok(Some(records)),
        Value::Object(table) => table,
        other => {
            return Err(format!(
                "records: expected 'off' or a table like {{ store: data/hotline.db, keep: 400d }}, found {other}"
            ));
        }
    };
    for (key, value) in table {
        let text = value
            .as_str()
            .ok_or_else(|| format!("records.{key}: expected text, found {value}"));
        match key.as_str() {
            "store" => {
                let store = text?;
                records.store = if store.starts_with("postgres://")
                    || store.starts_with("postgresql://")
                {
                    RecordsStore::Postgres(store.to_owned())
                } else if store.contains("://") {
                    return Err(format!(
                        "records.store: expected a file path or a postgres:// URL, found '{store}'"
                    ));
                } else if store.trim().is_empty() {
                    return Err(
                        "records.store: expected a file path or a postgres:// URL, found nothing"
                            .to_owned(),
                    );
                } else {
                    RecordsStore::Sqlite(base.join(store))
                };
            }
            "keep" => records.keep = parse_keep(text?)?,
            "webhook" => records.webhook = Some(webhook_config(value)?),
            other => {
                let hint =
                    crate::flow::diagnostic::did_you_mean(other, ["store", "keep", "webhook"])
                        .map(|s| format!(" (did you mean '{s}'?)"))
                        .unwrap_or_default();
                return Err(format!(
                    "records: unknown key '{other}'{hint}; expected store, keep or webhook"
                ));
            }
        }
    }
    Ok(Some(records))
}

/// `records.webhook`: a URL, or a table with `url` and optionally `headers` and `timeout`.
fn webhook_config(raw: &serde_json::Value) -> Result<WebhookConfig, String> {
    use serde_json::Value;
    let mut webhook = WebhookConfig {
        url: String::new(),
        headers: Vec::new(),
        timeout: DEFAULT_WEBHOOK_TIMEOUT,
    };
    let table = match raw {
        Value::String(url) => {
            webhook.url = check_webhook_url(url)?;
            return Ok(webhook);
        }
        Value::Object(table) => table,
        other => {
            return Err(format!(
                "records.webhook: expected a URL like https://crm.example.com/calls or a table {{ url, headers, timeout }}, found {other}"
            ));
        }
    };
    let mut url = None;
    for (key, value) in table {
        match key.as_str() {
            "url" => {
                let text = value
                    .as_str()
                    .ok_or_else(|| format!("records.webhook.url: expected a URL, found {value}"))?;
                url = Some(check_webhook_url(text)?);
            }
            "headers" => {
                let Value::Object(headers) = value else {
                    return Err(format!(
                        "records.webhook.headers: expected a table like {{ Authorization: \"Bearer ...\" }}, found {value}"
                    ));
                };
                for (name, v) in headers {
                    let v = v.as_str().ok_or_else(|| {
                        format!("records.webhook.headers.{name}: expected text, found {v}")
                    })?;
                    check_header(name, v)?;
                    webhook.headers.push((name.clone(), v.to_owned()));
                }
            }
            "timeout" => {
                let text = value.as_str().ok_or_else(|| {
                    format!("records.webhook.timeout: expected a duration like 10s, found {value}")
                })?;
                webhook.timeout =
                    parse_duration(text).map_err(|e| format!("records.webhook.timeout: {e}"))?;
                if webhook.timeout.is_zero() {
                    return Err("records.webhook.timeout: expected more than 0s".to_owned());
                }
            }
            other => {
                let hint =
                    crate::flow::diagnostic::did_you_mean(other, ["url", "headers", "timeout"])
                        .map(|s| format!(" (did you mean '{s}'?)"))
                        .unwrap_or_default();
                return Err(format!(
                    "records.webhook: unknown key '{other}'{hint}; expected url, headers or timeout"
                ));
            }
        }
    }
    webhook.url = url.ok_or("records.webhook: the table needs a url")?;
    Ok(webhook)
}

/// An http or https URL with a host and nothing a request line cannot carry.
fn check_webhook_url(text: &str) -> Result<String, String> {
    let url = text.trim();
    let bad = |why: &str| {
        Err(format!(
            "records.webhook: expected an http:// or https:// URL like https://crm.example.com/calls, found '{text}' ({why})"
        ))
    };
    let rest = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => rest,
        Some(_) => return bad("only http and https are allowed"),
        None => return bad("no scheme"),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() || host.starts_with(':') {
        return bad("no host");
    }
    if let Some((_, port)) = host.rsplit_once(':').filter(|_| !host.ends_with(']'))
        && port.parse::<u16>().is_err()
    {
        return bad("the port is not a number from 0 to 65535");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("it contains spaces");
    }
    Ok(url.to_owned())
}

/// A header name (an HTTP token) and a value that fits on one header line.
fn check_header(name: &str, value: &str) -> Result<(), String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(format!(
            "records.webhook.headers: '{name}' is not a header name (letters, digits and -)"
        ));
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!(
            "records.webhook.headers.{name}: the value must be one line of text"
        ));
    }
    Ok(())
}

/// `cluster:`, with its store defaulting to the records' PostgreSQL database.
fn cluster_config(
    raw: RawCluster,
    records: Option<&RecordsConfig>,
    p: &mut Found<'_>,
) -> Option<ClusterConfig> {
    let node = match raw.node {
        Some(n) if n.trim().is_empty() || n.len() > 64 => {
            p.at(
                "cluster.node",
                "cluster.node: expected a name of 1 to 64 characters".to_owned(),
            );
            return None;
        }
        Some(n) => n,
        None => host_name(),
    };
    let store = match (raw.store, records.map(|r| &r.store)) {
        (Some(s), _) if s.starts_with("postgres://") || s.starts_with("postgresql://") => s,
        (Some(s), _) => {
            p.at(
                "cluster.store",
                format!("cluster.store: expected a postgres:// URL, found '{s}'"),
            );
            return None;
        }
        (None, Some(RecordsStore::Postgres(url))) => url.clone(),
        (None, _) => {
            p.at(
                "cluster",
                "cluster: the nodes share a PostgreSQL database: set cluster.store or a postgres:// records.store"
                    .to_owned(),
            );
            return None;
        }
    };
    let lease = match raw.lease.as_deref().map(parse_duration) {
        None => DEFAULT_CLUSTER_LEASE,
        Some(Ok(d)) if d >= Duration::from_secs(1) => d,
        Some(Ok(_)) => {
            p.at(
                "cluster.lease",
                "cluster.lease: expected at least 1s".to_owned(),
            );
            return None;
        }
        Some(Err(e)) => {
            p.at("cluster.lease", format!("cluster.lease: {e}"));
            return None;
        }
    };
    Some(ClusterConfig { node, store, lease })
}

/// The host's name, for a node that names none (`cluster.node`).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "hotline".to_owned())
}

/// `tls:`: each file given must be readable and hold PEM of its kind; `cert` and `key` go
/// together.
fn tls_config(
    raw: Option<RawTls>,
    base: &Path,
    sources: &Sources,
    p: &mut Found<'_>,
) -> Option<TlsConfig> {
    let raw = raw?;
    let mut ok = true;
    let mut file = |key: &str, value: Option<String>, kind: PemKind| -> Option<PathBuf> {
        let path = base.join(value?);
        if let Err(why) = check_pem(&path, kind, sources) {
            p.at(&format!("tls.{key}"), format!("tls.{key}: {why}"));
            ok = false;
        }
        Some(path)
    };
    let cert = file("cert", raw.cert, PemKind::Certificate);
    let key = file("key", raw.key, PemKind::PrivateKey);
    let ca = file("ca", raw.ca, PemKind::Certificate);
    match (&cert, &key) {
        (Some(_), None) => {
            p.at(
                "tls",
                "tls: 'cert' needs its private key: set tls.key".to_owned(),
            );
            ok = false;
        }
        (None, Some(_)) => {
            p.at(
                "tls",
                "tls: 'key' needs its certificate: set tls.cert".to_owned(),
            );
            ok = false;
        }
        _ => {}
    }
    ok.then_some(TlsConfig { cert, key, ca })
}

/// What a PEM file given in `tls:` must hold.
#[derive(Debug, Clone, Copy)]
enum PemKind {
    Certificate,
    PrivateKey,
}

/// Whether `path` can be read and holds at least one PEM block of `kind` (the block's
/// contents are the engine's to parse).
fn check_pem(path: &Path, kind: PemKind, sources: &Sources) -> Result<(), String> {
    let text =
        (sources.read)(path).map_err(|e| format!("cannot read '{}': {e}", path.display()))?;
    let labels: &[&str] = match kind {
        PemKind::Certificate => &["CERTIFICATE"],
        PemKind::PrivateKey => &["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"],
    };
    let found = text.lines().any(|line| {
        line.trim()
            .strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.strip_suffix("-----"))
            .is_some_and(|label| labels.contains(&label))
    });
    if found {
        return Ok(());
    }
    let what = match kind {
        PemKind::Certificate => "PEM certificate (-----BEGIN CERTIFICATE-----)",
        PemKind::PrivateKey => "PEM private key (-----BEGIN PRIVATE KEY-----)",
    };
    Err(format!("'{}' holds no {what}", path.display()))
}

/// How long a graceful shutdown waits when `limits.drain` is not given.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(300);

/// `limits:`'s admission keys (taken out of `raw`; the guard's are left for
/// [`limits_config`]) over the defaults. `sip.max_calls`, the older spelling of
/// `limits.max_calls`, is still read; both at once is an error.
fn admission_config(raw: &mut RawLimits, sip_max_calls: bool, cfg: &mut Config, p: &mut Found<'_>) {
    if let Some(n) = raw.max_calls.take() {
        if sip_max_calls || n == 0 {
            let why = if n == 0 {
                "limits.max_calls: expected at least 1, found 0 (no call could come in)"
            } else {
                "limits.max_calls: also given as sip.max_calls; keep one (limits.max_calls)"
            };
            p.at("limits.max_calls", why.to_owned());
        }
        cfg.max_calls = n.max(1);
    }
    if let Some(r) = raw.new_calls_per_second.take() {
        if r.is_finite() && r > 0.0 {
            cfg.admission.calls_per_second = r;
        } else {
            p.at(
                "limits.new_calls_per_second",
                format!("limits.new_calls_per_second: expected a number above 0, found {r}"),
            );
        }
    }
    if let Some(b) = raw.burst.take() {
        if b == 0 {
            p.at(
                "limits.burst",
                "limits.burst: expected at least 1, found 0 (no call could come in)".to_owned(),
            );
        }
        cfg.admission.burst = b.max(1);
    }
    if let Some(t) = raw.max_media_lateness.take() {
        match parse_duration(&t) {
            Ok(d) => cfg.admission.max_lateness = d,
            Err(e) => p.at(
                "limits.max_media_lateness",
                format!("limits.max_media_lateness: {e}"),
            ),
        }
    }
    if let Some(t) = raw.drain.take() {
        match parse_duration(&t) {
            Ok(d) => cfg.drain = d,
            Err(e) => p.at("limits.drain", format!("limits.drain: {e}")),
        }
    }
}

/// `limits.max_message` and `limits.tcp_*` over their defaults.
fn connection_limits(raw: &RawLimits, c: &mut ConnectionLimits, p: &mut Found<'_>) {
    if let Some(v) = &raw.max_message {
        match byte_size(v) {
            Some(n) if MAX_MESSAGE_RANGE.contains(&n) => c.max_message = n,
            _ => p.at(
                "limits.max_message",
                format!(
                    "limits.max_message: expected a size from 1KiB to 65535 bytes like 16KiB or 16384, found {v}"
                ),
            ),
        }
    }
    if let Some(t) = &raw.tcp_idle {
        match parse_duration(t) {
            Ok(d) if d.is_zero() => p.at(
                "limits.tcp_idle",
                "limits.tcp_idle: expected more than 0s".to_string(),
            ),
            Ok(d) => c.tcp_idle = d,
            Err(e) => p.at("limits.tcp_idle", format!("limits.tcp_idle: {e}")),
        }
    }
    let mut count = |key: &str, value: Option<u32>| match value {
        Some(0) => {
            p.at(key, format!("{key}: expected at least 1, found 0"));
            None
        }
        n => n.map(|n| n as usize),
    };
    if let Some(n) = count("limits.tcp_per_source", raw.tcp_per_source) {
        c.tcp_per_source = n;
    }
    if let Some(n) = count("limits.tcp_connections", raw.tcp_connections) {
        c.tcp_connections = Some(n);
    }
}

/// `16384`, `16KiB`, `16k`, `64 KB`: a number of bytes (kilo meaning 1024).
fn byte_size(v: &serde_json::Value) -> Option<usize> {
    if let Some(n) = v.as_u64() {
        return usize::try_from(n).ok();
    }
    let t = v.as_str()?.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = t.split_at(digits);
    let n: usize = num.parse().ok()?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// `limits.max_message` is read by hand (a number or a text), so its shape is written here.
fn byte_size_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "the largest SIP message accepted: bytes, or like 16KiB (1KiB to 65535 bytes; default 16KiB)",
        "anyOf": [
            { "type": "null" },
            { "type": "integer", "minimum": 1024, "maximum": 65535 },
            { "type": "string", "pattern": "^[0-9]+ *([kK]([iI]?[bB])?|[bB])?$" }
        ]
    })
}

/// `limits:` over the defaults of the guard.
fn limits_config(raw: RawLimits, guard: &mut GuardConfig, p: &mut Found<'_>) {
    let count = |n: u32, key: &str, p: &mut Found<'_>| {
        if n == 0 {
            p.at(key, format!("{key}: expected at least 1, found 0"));
        }
        n.max(1)
    };
    if let Some(n) = raw.requests {
        guard.requests = count(n, "limits.requests", p);
    }
    if let Some(n) = raw.failed_logins {
        guard.auth_per_source = count(n, "limits.failed_logins", p);
    }
    if let Some(n) = raw.failed_logins_per_user {
        guard.auth_per_user = count(n, "limits.failed_logins_per_user", p);
    }
    for (key, text, slot) in [
        ("limits.window", raw.window, &mut guard.window),
        ("limits.ban", raw.ban, &mut guard.ban),
    ] {
        if let Some(t) = text {
            match parse_duration(&t) {
                Ok(d) if d.is_zero() => p.at(key, format!("{key}: expected more than 0s")),
                Ok(d) => *slot = d,
                Err(e) => p.at(key, format!("{key}: {e}")),
            }
        }
    }
    if let Some(list) = raw.trusted {
        guard.trusted.clear();
        for (i, t) in list.iter().enumerate() {
            let net = t
                .parse::<ipnet::IpNet>()
                .or_else(|_| t.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
            match net {
                Ok(n) => guard.trusted.push(n),
                Err(_) => p.at(
                    &format!("limits.trusted.{i}"),
                    format!(
                        "limits.trusted: expected an address or a CIDR range like '10.0.0.0/8', found '{t}'"
                    ),
                ),
            }
        }
    }
    if let Some(list) = raw.scanners {
        guard.scanners = list.into_iter().filter(|s| !s.trim().is_empty()).collect();
    }
}

/// `400d`, `12h`, `90m`: a retention period, at least an hour.
fn parse_keep(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let keep = match t.strip_suffix('d') {
        Some(days) if !days.is_empty() && days.bytes().all(|b| b.is_ascii_digit()) => days
            .parse::<u64>()
            .ok()
            .and_then(|d| d.checked_mul(24 * 3600))
            .map(Duration::from_secs)
            .ok_or_else(|| format!("records.keep: '{t}' is too long"))?,
        _ => parse_duration(t).map_err(|e| {
            format!(
                "records.keep: expected a number of days like 400d (or a duration like 12h), {e}"
            )
        })?,
    };
    if keep < Duration::from_secs(3600) {
        return Err(format!(
            "records.keep: expected at least 1h, found '{t}' (records would be deleted as they are written)"
        ));
    }
    Ok(keep)
}

fn admin_config(raw: RawAdmin) -> Result<AdminConfig, (&'static str, String)> {
    let listen_text = raw.listen.as_deref().unwrap_or(DEFAULT_ADMIN_LISTEN);
    let listen: SocketAddr = listen_text.parse().map_err(|_| {
        (
            "admin.listen",
            format!("admin.listen: expected an address like 127.0.0.1:8080, found '{listen_text}'"),
        )
    })?;
    let token = raw.token.filter(|t| !t.is_empty());
    if !listen.ip().is_loopback() && token.is_none() {
        return Err((
            "admin.listen",
            format!(
                "admin.listen: {listen} is reachable from other hosts, so the admin API needs a 'token' (admin: {{ listen: \"{listen}\", token: \"...\" }}, or token_file, or token: ${{HOTLINE_ADMIN_TOKEN}}), or listen on 127.0.0.1"
            ),
        ));
    }
    let mut hosts = Vec::new();
    for h in raw.hosts.unwrap_or_default() {
        let h = h.trim().trim_end_matches('.').to_ascii_lowercase();
        let name_like = !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !name_like {
            return Err((
                "admin.hosts",
                format!(
                    "admin.hosts: expected host names without port or scheme (like hotline.example.org), found '{h}'"
                ),
            ));
        }
        hosts.push(h);
    }
    Ok(AdminConfig {
        listen,
        token,
        hosts,
    })
}

/// The top-level keys of the file.
const SECTIONS: &[&str] = &[
    "sip",
    "rtp",
    "flows",
    "prompts",
    "recordings",
    "data",
    "routes",
    "default_language",
    "schedules",
    "vars",
    "queues",
    "agents",
    "demo_shop",
    "admin",
    "tests",
    "records",
    "limits",
    "cluster",
];

/// The sections flows depend on: while one of them is broken, checking the flows would
/// mostly repeat its problem (so would an unknown key, which may be one of them misspelt).
const FLOW_SECTIONS: &[&str] = &[
    "flows",
    "prompts",
    "schedules",
    "vars",
    "queues",
    "default_language",
    "tests",
    "routes",
];

/// The problems of one file as they are found, with what is needed to place them.
struct Found<'a> {
    path: &'a Path,
    /// The file's own text (diagnostics quote its lines).
    text: &'a str,
    source: &'a ConfigText,
    diagnostics: Vec<Diagnostic>,
    /// The top-level sections with a problem.
    broken: BTreeSet<String>,
}

/// One top-level key of the file and the lines it spans.
struct Section {
    name: String,
    first: u32,
    last: u32,
}

/// The top-level keys written in block style, each spanning the lines up to the next.
/// Empty when the file is written otherwise (`{ ... }` on its first line).
fn sections(text: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        n = i as u32 + 1;
        let key_like = line.chars().next().is_some_and(|c| {
            !c.is_whitespace() && !matches!(c, '#' | '-' | '{' | '}' | '[' | ']' | '.' | '%')
        });
        if let (true, Some((key, _))) = (key_like, line.split_once(':')) {
            if let Some(prev) = out.last_mut() {
                prev.last = n - 1;
            }
            out.push(Section {
                name: key.trim().trim_matches(['"', '\'']).to_owned(),
                first: n,
                last: n,
            });
        }
    }
    if let Some(prev) = out.last_mut() {
        prev.last = n.max(prev.first);
    }
    out
}

impl Found<'_> {
    fn section_of(&self, line: u32) -> String {
        sections(&self.source.text)
            .into_iter()
            .find(|s| (s.first..=s.last).contains(&line))
            .map_or_else(|| "?".to_owned(), |s| s.name)
    }

    fn push(&mut self, mut d: Diagnostic) {
        d.message = self.source.redact(&d.message);
        d.help = d.help.map(|h| self.source.redact(&h));
        if !self.diagnostics.contains(&d) {
            self.diagnostics.push(d);
        }
    }

    fn at_pos(&mut self, pos: crate::config_text::Pos, message: String, help: Option<String>) {
        self.broken.insert(self.section_of(pos.line));
        let d = Diagnostic::error(self.path, message)
            .at(self.text, pos.line, pos.column, pos.width)
            .with_optional_help(help);
        self.push(d);
    }

    /// A problem with the value at `key` (or, when that is not written, the nearest key
    /// above it that is).
    fn at(&mut self, key: &str, message: String) {
        self.place(key, message, false);
    }

    /// A problem with the key `key` itself (a name).
    fn at_key(&mut self, key: &str, message: String) {
        self.place(key, message, true);
    }

    fn place(&mut self, key: &str, message: String, key_itself: bool) {
        let mut path = key;
        loop {
            let pos = if key_itself {
                self.source.key_at(path)
            } else {
                self.source.value_at(path)
            };
            if let Some(pos) = pos {
                return self.at_pos(pos, message, None);
            }
            match path.rsplit_once('.') {
                Some((up, _)) => path = up,
                None => break,
            }
        }
        self.broken
            .insert(key.split('.').next().unwrap_or("?").to_owned());
        self.push(Diagnostic::error(self.path, message));
    }

    /// Parses the rewritten text, emptying a top-level section at each problem serde
    /// stops at; None when a problem lies outside every section (YAML syntax, mostly).
    fn parse(&mut self) -> Option<RawFile> {
        let text = &self.source.text;
        if text.trim().is_empty() {
            return Some(RawFile::default());
        }
        let sections = sections(text);
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        // A value the rewrite already reported (an unset variable) is not reported again
        // for the type serde then finds there.
        let reported: BTreeSet<u32> = self.diagnostics.iter().map(|d| d.line).collect();
        let mut emptied = BTreeSet::new();
        for _ in 0..=sections.len() {
            let current = lines.join("\n");
            let err = match serde_saphyr::from_str_with_options::<RawFile>(
                &current,
                crate::flow::load::yaml_options(),
            ) {
                Ok(raw) => return Some(raw),
                Err(e) => e,
            };
            let mut d = crate::flow::load::yaml_error(self.path, &current, &err);
            let line = d.line;
            if line > 0 {
                let (l, c) = self.source.original(d.line, d.column);
                let width = d.width;
                d = d.at(self.text, l, c, width);
            }
            if !reported.contains(&line) {
                self.push(d);
            }
            match sections.iter().find(|s| (s.first..=s.last).contains(&line)) {
                Some(s) if line > 0 && emptied.insert(s.name.clone()) => {
                    self.broken.insert(s.name.clone());
                    for l in lines
                        .iter_mut()
                        .take(s.last as usize)
                        .skip(s.first as usize - 1)
                    {
                        l.clear();
                    }
                }
                _ => return None,
            }
        }
        None
    }

    fn into_error(mut self, config: Option<Config>) -> ConfigError {
        self.diagnostics.sort_by_key(|d| (d.line, d.column));
        let flows_unaffected = self
            .broken
            .iter()
            .all(|s| SECTIONS.contains(&s.as_str()) && !FLOW_SECTIONS.contains(&s.as_str()));
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            diagnostics: self.diagnostics,
            partial: config.filter(|_| flows_unaffected).map(Box::new),
        }
    }
}

/// A JSON Schema (draft 2020-12) of `hotline.yaml`, for editors that complete and check
/// keys. It describes the shape only: values stay plain text where `${VAR}` may stand, and
/// what needs context (an address that parses, a flow that exists) is `hotline check`'s.
pub fn config_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(RawFile);
    schema.insert(
        "title".to_owned(),
        "hotline configuration (hotline.yaml)".into(),
    );
    let mut v = schema.to_value();
    add_file_keys(&mut v);
    v
}

/// Beside every key that may hold a secret, its `KEY_file` twin (read by `config_text`
/// before the file is parsed, so the parsed types never see it).
fn add_file_keys(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            if let Some(Value::Object(props)) = m.get_mut("properties") {
                let twins: Vec<String> = crate::config_text::FILE_KEYS
                    .iter()
                    .filter(|k| props.contains_key(**k))
                    .map(|k| k.to_string())
                    .collect();
                for k in twins {
                    props.insert(
                        format!("{k}_file"),
                        serde_json::json!({
                            "type": "string",
                            "description": format!("a file holding the {k} (instead of `{k}`; relative to this file)")
                        }),
                    );
                }
            }
            m.values_mut().for_each(add_file_keys);
        }
        Value::Array(a) => a.iter_mut().for_each(add_file_keys),
        _ => {}
    }
}

/// `records:` is read by hand (for its messages), so its shape is written here.
fn records_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "where call records are kept: off, on (the defaults), or a table",
        "anyOf": [
            { "type": "null" },
            { "type": "boolean" },
            { "type": "string", "enum": ["off", "on"] },
            {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "store": {
                        "type": "string",
                        "description": "an SQLite file (relative to this file) or a postgres:// URL"
                    },
                    "keep": {
                        "type": "string",
                        "description": "how long records are kept: 400d, 12h (at least 1h)"
                    },
                    "webhook": {
                        "description": "a URL each ended call is POSTed to, or a table { url, headers, timeout }",
                        "anyOf": [
                            { "type": "string" },
                            {
                                "type": "object",
                                "additionalProperties": false,
                                "required": ["url"],
                                "properties": {
                                    "url": { "type": "string" },
                                    "headers": {
                                        "type": "object",
                                        "additionalProperties": { "type": "string" }
                                    },
                                    "timeout": {
                                        "type": "string",
                                        "description": "how long one request may take: 10s"
                                    }
                                }
                            }
                        ]
                    }
                }
            }
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loads `text` as /etc/hotline/hotline.yaml, with the files of `files` (path, content)
    /// as the only ones that can be read.
    fn with_files(text: &str, files: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env = |_: &str| None;
        let read = |p: &Path| {
            files
                .iter()
                .find(|(name, _)| Path::new(name) == p)
                .map(|(_, text)| (*text).to_owned())
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        };
        Config::from_text(
            text,
            Path::new("/etc/hotline/hotline.yaml"),
            &Sources {
                env: &env,
                read: &read,
            },
        )
    }

    fn problems(r: Result<Config, ConfigError>) -> Vec<(u32, String)> {
        match r {
            Err(ConfigError::Invalid { diagnostics, .. }) => diagnostics
                .into_iter()
                .map(|d| (d.line, d.message))
                .collect(),
            other => panic!("expected problems, got {other:?}"),
        }
    }

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n";

    #[test]
    fn a_tls_listener_with_its_certificate_loads_with_paths_relative_to_the_file() {
        let cfg = with_files(
            "sip: { listen: [\"tls:0.0.0.0:5061\"] }\ntls: { cert: tls/cert.pem, key: tls/key.pem, ca: /etc/ssl/ca.pem }\n",
            &[
                ("/etc/hotline/tls/cert.pem", CERT),
                ("/etc/hotline/tls/key.pem", KEY),
                ("/etc/ssl/ca.pem", CERT),
            ],
        )
        .unwrap();
        assert_eq!(cfg.listen[0].transport, Protocol::Tls);
        assert_eq!(cfg.listen[0].to_string(), "tls:0.0.0.0:5061");
        let tls = cfg.tls.unwrap();
        assert_eq!(tls.cert.unwrap(), Path::new("/etc/hotline/tls/cert.pem"));
        assert_eq!(tls.key.unwrap(), Path::new("/etc/hotline/tls/key.pem"));
        assert_eq!(tls.ca.unwrap(), Path::new("/etc/ssl/ca.pem"));
    }

    #[test]
    fn agent_transfers_read_their_patterns_and_report_bad_ones_at_their_place() {
        let at = Path::new("h.yaml");
        let cfg = Config::from_str_at("", at).unwrap();
        assert!(cfg.agent_transfers.is_none(), "no key: no REFER accepted");
        let cfg = Config::from_str_at(
            "agent_transfers:\n  allowed: [\"2XX\", \"0800X.@gw.example.net\"]\n",
            at,
        )
        .unwrap();
        let targets = cfg.agent_transfers.expect("transfers");
        let uri = crate::sip::message::Uri::parse("sip:201@pbx").unwrap();
        assert_eq!(targets.allows(&uri), Ok("sip:201@pbx".into()));
        let err = Config::from_str_at(
            "agent_transfers:\n  allowed:\n    - \"2XX\"\n    - \"2X?\"\n",
            at,
        )
        .unwrap_err();
        let p = problems(Err(err));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, 4, "{p:?}");
        assert!(p[0].1.starts_with("agent_transfers.allowed[1]: "), "{p:?}");
        let p = problems(Config::from_str_at(
            "agent_transfers: { allowed: [] }\n",
            at,
        ));
        assert!(
            p[0].1.contains("no target could be transferred to"),
            "{p:?}"
        );
        let p = problems(Config::from_str_at(
            "agent_transfers: { allow: [\"2XX\"] }\n",
            at,
        ));
        assert_eq!(p[0].0, 1, "{p:?}");
    }

    #[test]
    fn tls_problems_are_reported_at_their_lines() {
        // A TLS listener without a certificate.
        let p = problems(with_files("sip: { listen: [\"tls:0.0.0.0:5061\"] }\n", &[]));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, 1);
        assert!(p[0].1.contains("needs a certificate"), "{p:?}");
        // Unreadable, and not PEM of its kind.
        let p = problems(with_files(
            "sip: { listen: [\"tls:0.0.0.0:5061\"] }\ntls:\n  cert: missing.pem\n  key: cert.pem\n",
            &[("/etc/hotline/cert.pem", CERT)],
        ));
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(p[0].0, 3);
        assert!(p[0].1.contains("tls.cert: cannot read"), "{p:?}");
        assert_eq!(p[1].0, 4);
        assert!(
            p[1].1.contains("tls.key:") && p[1].1.contains("no PEM private key"),
            "{p:?}"
        );
        // A certificate without its key.
        let p = problems(with_files(
            "tls:\n  cert: cert.pem\n",
            &[("/etc/hotline/cert.pem", CERT)],
        ));
        assert!(p[0].1.contains("set tls.key"), "{p:?}");
    }

    #[test]
    fn issue_example_parses_with_paths_relative_to_the_file() {
        let text = r#"
sip:   { listen: ["udp:0.0.0.0:5060", "tcp:0.0.0.0:5060"] }
rtp:   { ports: 10000-20000, public_address: null }
flows: flows
prompts: prompts
routes: { "*": main, "0800123": sales }
"#;
        let cfg = Config::from_str_at(text, Path::new("/etc/hotline/hotline.yaml")).unwrap();
        assert_eq!(cfg.listen.len(), 2);
        assert_eq!(cfg.listen[1].transport, Protocol::Tcp);
        assert_eq!(
            cfg.rtp_ports,
            PortRange {
                first: 10000,
                last: 20000
            }
        );
        assert_eq!(cfg.flows_dir, PathBuf::from("/etc/hotline/flows"));
        assert_eq!(cfg.route("0800123"), Some("sales"));
        assert_eq!(cfg.route("999"), Some("main"));
    }

    #[test]
    fn empty_file_gives_defaults() {
        let cfg = Config::from_str_at("", Path::new("hotline.yaml")).unwrap();
        assert_eq!(cfg.route("anything"), Some("main"));
        assert_eq!(cfg.no_media_timeout, Duration::from_secs(30));
        assert_eq!(cfg.flows_dir, PathBuf::from("./flows"));
    }

    #[test]
    fn listeners_and_ranges_are_checked() {
        assert!("udp:127.0.0.1:5060".parse::<Listen>().is_ok());
        assert!("tcp:[::1]:5070".parse::<Listen>().is_ok());
        assert!("127.0.0.1:5060".parse::<Listen>().is_ok());
        assert!("udp:localhost".parse::<Listen>().is_err());
        assert!("30000-30999".parse::<PortRange>().is_ok());
        assert!("300-200".parse::<PortRange>().is_err());
        assert!("abc".parse::<PortRange>().is_err());
    }

    #[test]
    fn the_srtp_policy_is_read_and_checked() {
        use crate::sip::sdes::SrtpPolicy;
        let at = Path::new("h.yaml");
        let cfg = Config::from_str_at("", at).unwrap();
        assert_eq!(cfg.srtp, SrtpPolicy::Optional);
        for (text, policy) in [
            ("optional", SrtpPolicy::Optional),
            ("required", SrtpPolicy::Required),
            ("off", SrtpPolicy::Off),
        ] {
            let cfg = Config::from_str_at(&format!("rtp: {{ srtp: {text} }}"), at).unwrap();
            assert_eq!(cfg.srtp, policy);
        }
        let err = Config::from_str_at("rtp: { srtp: mandatory }", at).unwrap_err();
        assert!(
            err.to_string()
                .contains("rtp.srtp: expected optional, required or off, found 'mandatory'"),
            "{err}"
        );
        let cfg = Config::from_str_at(
            "queues: { q: {} }\nagents: { a: { uri: \"sip:a@192.0.2.1\", queues: { q: 0 }, srtp: true } }",
            at,
        )
        .unwrap();
        assert!(cfg.agents["a"].srtp);
    }

    #[test]
    fn schedules_and_vars_are_read_and_checked() {
        let text = r#"
schedules:
  service_hours:
    timezone: Europe/Berlin
    weekly: { mon-fri: 08:00-18:00 }
    holidays: [{ date: 12-25, name: christmas }]
vars:
  crm_url: http://127.0.0.1:8081
  support_queue: { name: support, max_wait: 120 }
"#;
        let cfg = Config::from_str_at(text, Path::new("hotline.yaml")).unwrap();
        let s = &cfg.schedules["service_hours"];
        assert_eq!(s.timezone, chrono_tz::Europe::Berlin);
        assert_eq!(s.holidays.len(), 1);
        assert_eq!(
            cfg.vars["crm_url"],
            serde_json::json!("http://127.0.0.1:8081")
        );
        assert_eq!(
            cfg.vars["support_queue"]["max_wait"],
            serde_json::json!(120)
        );
        let fc = cfg.flow_config();
        assert_eq!(fc.schedules.len(), 1);
        assert_eq!(fc.vars.len(), 2);

        let err = Config::from_str_at(
            "schedules: { s: { timezone: Mars/Olympus } }",
            Path::new("h.yaml"),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("expected a time zone like Europe/Berlin, found 'Mars/Olympus'"),
            "{err}"
        );
        let err = Config::from_str_at("vars: { crm-url: x }", Path::new("h.yaml")).unwrap_err();
        assert!(
            err.to_string()
                .contains("'crm-url' is not a usable variable name"),
            "{err}"
        );
        let err = Config::from_str_at(
            "schedules: { service-hours: { timezone: UTC } }",
            Path::new("h.yaml"),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("'service-hours' is not a usable schedule name"),
            "{err}"
        );
        let cfg = Config::from_str_at("", Path::new("hotline.yaml")).unwrap();
        assert!(cfg.schedules.is_empty() && cfg.vars.is_empty());
    }

    #[test]
    fn queues_and_agents_are_read_and_checked() {
        let text = r#"
queues:
  support: { strategy: round_robin, max_wait: 5m }
agents:
  alice: { password: s3cret, queues: { support: 0 } }
"#;
        let cfg = Config::from_str_at(text, Path::new("h.yaml")).unwrap();
        assert_eq!(
            cfg.queues["support"].max_wait,
            Some(Duration::from_secs(300))
        );
        assert!(cfg.agents["alice"].registers());
        let err = Config::from_str_at(
            "agents: { bob: { uri: \"sip:bob@192.0.2.1\", queues: { sales: 0 } } }",
            Path::new("h.yaml"),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("agents.bob.queues: no queue named 'sales'"),
            "{err}"
        );
        let err = Config::from_str_at("queues: { q: { strategy: random } }", Path::new("h.yaml"))
            .unwrap_err();
        assert!(err.to_string().contains("random"), "{err}");
    }

    #[test]
    fn the_demo_shop_is_off_unless_configured() {
        let cfg = Config::from_str_at("", Path::new("hotline.yaml")).unwrap();
        assert_eq!(cfg.demo_shop, None);
        let cfg = Config::from_str_at(
            "demo_shop: { listen: \"127.0.0.1:9000\" }",
            Path::new("h.yaml"),
        )
        .unwrap();
        assert_eq!(
            cfg.demo_shop.map(|d| d.listen.port()),
            Some(9000),
            "the given address"
        );
        let cfg = Config::from_str_at("demo_shop: {}", Path::new("h.yaml")).unwrap();
        assert_eq!(
            cfg.demo_shop.map(|d| d.listen.to_string()),
            Some("127.0.0.1:8081".to_owned())
        );
        let err =
            Config::from_str_at("demo_shop: { listen: shop }", Path::new("h.yaml")).unwrap_err();
        assert!(
            err.to_string().contains(
                "demo_shop.listen: expected an address like '127.0.0.1:8081', found 'shop'"
            ),
            "{err}"
        );
    }

    #[test]
    fn admin_binds_loopback_by_default_and_elsewhere_only_with_a_token() {
        let cfg = Config::from_str_at("admin: {}", Path::new("h.yaml")).unwrap();
        let admin = cfg.admin.unwrap();
        assert_eq!(admin.listen.to_string(), DEFAULT_ADMIN_LISTEN);
        assert_eq!(admin.token, None);
        assert!(
            Config::from_str_at("", Path::new("h.yaml"))
                .unwrap()
                .admin
                .is_none()
        );
        let err = Config::from_str_at("admin: { listen: 0.0.0.0:8080 }", Path::new("h.yaml"))
            .unwrap_err();
        assert!(err.to_string().contains("needs a 'token'"), "{err}");
        let cfg = Config::from_str_at(
            "admin: { listen: \"[::]:9000\", token: s3cret }",
            Path::new("h.yaml"),
        )
        .unwrap();
        assert_eq!(cfg.admin.unwrap().token.as_deref(), Some("s3cret"));
        let cfg =
            Config::from_str_at("admin: { listen: \"[::1]:9000\" }", Path::new("h.yaml")).unwrap();
        assert!(cfg.admin.is_some());
    }

    #[test]
    fn admin_hosts_are_names_without_port() {
        let cfg = Config::from_str_at(
            "admin: { hosts: [Hotline.Example.org., wallboard] }",
            Path::new("h.yaml"),
        )
        .unwrap();
        assert_eq!(
            cfg.admin.unwrap().hosts,
            ["hotline.example.org", "wallboard"]
        );
        for bad in ["\"http://x\"", "\"x:8080\"", "\"\""] {
            let err =
                Config::from_str_at(&format!("admin: {{ hosts: [{bad}] }}"), Path::new("h.yaml"))
                    .unwrap_err();
            assert!(
                err.to_string().contains("admin.hosts: expected host names"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn the_tests_folder_defaults_to_the_one_beside_the_flows_if_any() {
        let cfg = Config::from_str_at("tests: checks", Path::new("/etc/hotline/h.yaml")).unwrap();
        assert_eq!(cfg.tests_dir, Some(PathBuf::from("/etc/hotline/checks")));
        let cfg = Config::from_str_at("flows: nowhere", Path::new("/etc/hotline/h.yaml")).unwrap();
        assert_eq!(cfg.tests_dir, None);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = Config::from_str_at("rtp: { prots: 1-2 }", Path::new("h.yaml")).unwrap_err();
        assert!(err.to_string().contains("prots"), "{err}");
    }

    #[test]
    fn start_only_changes_name_the_edited_keys_and_ignore_overrides() {
        let at = Path::new("h.yaml");
        let base = "sip: { listen: [\"udp:127.0.0.1:5060\"] }\nroutes: { \"*\": main }\n";
        let old = Config::from_str_at(base, at).unwrap();
        // An edit of reloadable keys only: nothing to warn about.
        let routes = Config::from_str_at(&base.replace("main", "other"), at).unwrap();
        assert!(start_only_changes(&old, &routes).is_empty());
        // The command line moved the listener: the file did not change, no warning.
        let mut overridden = old.clone();
        overridden.listen = vec!["udp:127.0.0.1:0".parse().unwrap()];
        let same = Config::from_str_at(base, at).unwrap();
        assert!(start_only_changes(&overridden, &same).is_empty());
        let edited = Config::from_str_at(
            &base.replace(
                "sip: {",
                "admin: {}\nsip: { digest_algorithms: [MD5], realm: r,",
            ),
            at,
        )
        .unwrap();
        assert_eq!(
            start_only_changes(&overridden, &edited),
            ["admin", "sip.realm", "sip.digest_algorithms"]
        );
        let ports = Config::from_str_at(&base.replace("5060", "5070"), at).unwrap();
        assert_eq!(start_only_changes(&old, &ports), ["sip.listen"]);
        // Configurations built in code compare their live values.
        let mut a = Config::default();
        let b = Config::default();
        assert!(start_only_changes(&a, &b).is_empty());
        a.rtp_ports = PortRange {
            first: 30000,
            last: 30099,
        };
        assert_eq!(start_only_changes(&a, &b), ["rtp.ports"]);
    }

    #[test]
    fn limits_max_call_defaults_to_two_hours_and_a_bad_one_is_placed() {
        let path = Path::new("/srv/hotline/hotline.yaml");
        assert_eq!(
            Config::from_str_at("", path).unwrap().max_call,
            Duration::from_secs(7200)
        );
        let cfg = Config::from_str_at("limits:\n  max_call: 45m\n", path).unwrap();
        assert_eq!(cfg.max_call, Duration::from_secs(45 * 60));
        for bad in ["0s", "forever"] {
            let text = format!("limits:\n  requests: 20\n  max_call: {bad}\n");
            let Err(ConfigError::Invalid { diagnostics, .. }) = Config::from_str_at(&text, path)
            else {
                panic!("{bad} refused");
            };
            assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
            assert_eq!(diagnostics[0].line, 3, "{diagnostics:?}");
            assert!(diagnostics[0].message.contains("limits.max_call"));
        }
    }

    #[test]
    fn limits_set_the_guard_and_a_bad_trusted_entry_is_placed() {
        let path = Path::new("/srv/hotline/hotline.yaml");
        let cfg = Config::from_str_at("", path).unwrap();
        assert_eq!(cfg.guard, GuardConfig::default());
        let text = "limits:\n  requests: 40\n  window: 4s\n  ban: 10m\n  failed_logins: 3\n  trusted: [\"127.0.0.1\", \"10.20.0.0/16\", \"::1\"]\n  scanners: [evil-bot]\n";
        let g = Config::from_str_at(text, path).unwrap().guard;
        assert_eq!((g.requests, g.auth_per_source), (40, 3));
        assert_eq!(g.window, Duration::from_secs(4));
        assert_eq!(g.ban, Duration::from_secs(600));
        assert_eq!(g.trusted.len(), 3);
        assert_eq!(g.scanners, vec!["evil-bot".to_string()]);
        let bad =
            "limits:\n  trusted: [\"127.0.0.1\", \"10.0.0.0/33\"]\n  requests: 0\n  window: soon\n";
        let Err(ConfigError::Invalid { diagnostics, .. }) = Config::from_str_at(bad, path) else {
            panic!("refused");
        };
        let found: Vec<(u32, &str)> = diagnostics
            .iter()
            .map(|d| (d.line, d.message.as_str()))
            .collect();
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(
            found[0].0 == 2 && found[0].1.contains("'10.0.0.0/33'"),
            "{found:?}"
        );
        assert!(
            found[1].0 == 3 && found[1].1.contains("limits.requests"),
            "{found:?}"
        );
        assert!(
            found[2].0 == 4 && found[2].1.contains("limits.window"),
            "{found:?}"
        );
    }

    #[test]
    fn a_cluster_takes_the_records_database_unless_it_names_its_own() {
        let path = Path::new("/srv/hotline/hotline.yaml");
        let at = |text: &str| Config::from_str_at(text, path);
        assert_eq!(at("").unwrap().cluster, None);
        let shared = "records: { store: \"postgres://h@db/hotline\" }\ncluster: { node: a }\n";
        let c = at(shared).unwrap().cluster.unwrap();
        assert_eq!(c.node, "a");
        assert_eq!(c.store, "postgres://h@db/hotline");
        assert_eq!(c.lease, DEFAULT_CLUSTER_LEASE);
        let own = "cluster: { node: b, store: \"postgres://h@other/x\", lease: 3s }\n";
        let c = at(own).unwrap().cluster.unwrap();
        assert_eq!(
            (c.store.as_str(), c.lease),
            ("postgres://h@other/x", Duration::from_secs(3))
        );
        for (bad, says) in [
            ("cluster: { node: a }\n", "set cluster.store"),
            (
                "cluster: { node: a, store: data/x.db }\n",
                "expected a postgres:// URL",
            ),
            (
                "cluster: { store: \"postgres://d/x\", lease: 0s }\n",
                "at least 1s",
            ),
            (
                "cluster: { store: \"postgres://d/x\", leese: 3s }\n",
                "unknown key 'leese'",
            ),
        ] {
            let Err(ConfigError::Invalid { diagnostics, .. }) = at(bad) else {
                panic!("{bad} refused");
            };
            assert!(
                diagnostics.iter().any(|d| d.message.contains(says)),
                "{bad}: {diagnostics:?}"
            );
        }
    }

    #[test]
    fn limits_set_admission_and_drain_with_placed_diagnostics() {
        let path = Path::new("/srv/hotline/hotline.yaml");
        let d = Config::from_str_at("", path).unwrap();
        assert_eq!(d.admission, AdmissionConfig::default());
        assert_eq!((d.max_calls, d.drain), (DEFAULT_MAX_CALLS, DEFAULT_DRAIN));
        let text = "limits:\n  max_calls: 40\n  new_calls_per_second: 2.5\n  burst: 7\n  max_media_lateness: 30ms\n  drain: 90s\n";
        let c = Config::from_str_at(text, path).unwrap();
        assert_eq!(c.max_calls, 40);
        assert_eq!(c.admission.calls_per_second, 2.5);
        assert_eq!(c.admission.burst, 7);
        assert_eq!(c.admission.max_lateness, Duration::from_millis(30));
        assert_eq!(c.drain, Duration::from_secs(90));
        // The older spelling still works alone.
        let old = Config::from_str_at("sip: { max_calls: 12 }", path).unwrap();
        assert_eq!(old.max_calls, 12);
        let bad = "sip: { max_calls: 12 }\nlimits:\n  max_calls: 10\n  new_calls_per_second: 0\n  burst: 0\n  drain: later\n";
        let Err(ConfigError::Invalid { diagnostics, .. }) = Config::from_str_at(bad, path) else {
            panic!("refused");
        };
        let found: Vec<(u32, &str)> = diagnostics
            .iter()
            .map(|d| (d.line, d.message.as_str()))
            .collect();
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(
            found[0].0 == 3 && found[0].1.contains("sip.max_calls"),
            "{found:?}"
        );
        assert!(
            found[1].0 == 4 && found[1].1.contains("above 0"),
            "{found:?}"
        );
        assert!(
            found[2].0 == 5 && found[2].1.contains("limits.burst"),
            "{found:?}"
        );
        assert!(
            found[3].0 == 6 && found[3].1.contains("limits.drain"),
            "{found:?}"
        );
        let mut changed = c.clone();
        changed.as_loaded = None;
        changed.admission.burst = 8;
        let mut before = c.clone();
        before.as_loaded = None;
        assert_eq!(start_only_changes(&before, &changed), ["limits"]);
    }

    #[test]
    fn connection_limits_have_defaults_sizes_and_placed_diagnostics() {
        let path = Path::new("/srv/hotline/hotline.yaml");
        let c = Config::from_str_at("", path).unwrap().connections;
        assert_eq!(c, ConnectionLimits::default());
        assert_eq!(c.max_message, 16 * 1024);
        assert_eq!(c.tcp_idle, Duration::from_secs(60));
        assert_eq!((c.tcp_per_source, c.tcp_connections), (32, None));
        let text = "limits:\n  max_message: 32KiB\n  tcp_idle: 5s\n  tcp_per_source: 4\n  tcp_connections: 100\n";
        let c = Config::from_str_at(text, path).unwrap().connections;
        assert_eq!(c.max_message, 32 * 1024);
        assert_eq!(c.tcp_idle, Duration::from_secs(5));
        assert_eq!((c.tcp_per_source, c.tcp_connections), (4, Some(100)));
        let bytes = Config::from_str_at("limits: { max_message: 4000 }", path).unwrap();
        assert_eq!(bytes.connections.max_message, 4000);
        let bad = "limits:\n  max_message: 1MiB\n  tcp_idle: 0s\n  tcp_per_source: 0\n  tcp_connections: 0\n";
        let Err(ConfigError::Invalid { diagnostics, .. }) = Config::from_str_at(bad, path) else {
            panic!("refused");
        };
        let found: Vec<(u32, &str)> = diagnostics
            .iter()
            .map(|d| (d.line, d.message.as_str()))
            .collect();
        assert_eq!(found.len(), 4, "{found:?}");
        for (i, key) in [
            "max_message",
            "tcp_idle",
            "tcp_per_source",
            "tcp_connections",
        ]
        .into_iter()
        .enumerate()
        {
            assert_eq!(found[i].0, i as u32 + 2, "{found:?}");
            assert!(found[i].1.contains(&format!("limits.{key}")), "{found:?}");
        }
        let small = Config::from_str_at("limits: { max_message: 100 }", path);
        assert!(small.is_err(), "a limit below 1KiB is refused");
    }

    #[test]
    fn records_are_off_unless_configured_and_their_store_is_checked() {
        let dir = Path::new("/srv/hotline");
        let at = |text: &str| Config::from_str_at(text, &dir.join("hotline.yaml"));
        assert_eq!(at("").unwrap().records, None);
        assert_eq!(at("records: off").unwrap().records, None);
        assert_eq!(at("records: false").unwrap().records, None);
        let on = at("records: on").unwrap().records.unwrap();
        assert_eq!(on.store, RecordsStore::Sqlite(dir.join("data/hotline.db")));
        assert_eq!(on.keep, DEFAULT_RECORDS_KEEP);
        let r = at("data: state\nrecords: {}").unwrap().records.unwrap();
        assert_eq!(r.store, RecordsStore::Sqlite(dir.join("state/hotline.db")));
        let r = at("records: { store: db/calls.db, keep: 30d }")
            .unwrap()
            .records
            .unwrap();
        assert_eq!(r.store, RecordsStore::Sqlite(dir.join("db/calls.db")));
        assert_eq!(r.keep, Duration::from_secs(30 * 24 * 3600));
        let r = at("records: { store: \"postgres://u:p@db/hotline\", keep: 12h }")
            .unwrap()
            .records
            .unwrap();
        assert_eq!(
            r.store,
            RecordsStore::Postgres("postgres://u:p@db/hotline".into())
        );
        assert_eq!(r.keep, Duration::from_secs(12 * 3600));
        assert_eq!(r.webhook, None);
        let r = at("records: { webhook: \"https://crm.example.com/calls\" }")
            .unwrap()
            .records
            .unwrap();
        assert_eq!(r.store, RecordsStore::Sqlite(dir.join("data/hotline.db")));
        let w = r.webhook.unwrap();
        assert_eq!(w.url, "https://crm.example.com/calls");
        assert!(w.headers.is_empty());
        assert_eq!(w.timeout, DEFAULT_WEBHOOK_TIMEOUT);
        let w = at(
            "records:\n  webhook:\n    url: http://[::1]:8099/hook?x=1\n    \
headers: { Authorization: Bearer abc, X-Tenant: acme }\n    timeout: 3s\n",
        )
        .unwrap()
        .records
        .unwrap()
        .webhook
        .unwrap();
        assert_eq!(w.url, "http://[::1]:8099/hook?x=1");
        assert_eq!(
            w.headers,
            [
                ("Authorization".to_owned(), "Bearer abc".to_owned()),
                ("X-Tenant".to_owned(), "acme".to_owned())
            ]
        );
        assert_eq!(w.timeout, Duration::from_secs(3));
        for (text, expected) in [
            ("records: { stor: x.db }", "did you mean 'store'?"),
            ("records: { store: \"mysql://db\" }", "postgres:// URL"),
            ("records: { keep: 400 }", "records.keep"),
            ("records: { keep: 5m }", "at least 1h"),
            ("records: { keep: forever }", "400d"),
            ("records: maybe", "expected 'off'"),
            (
                "records: { webhook: \"ftp://crm/calls\" }",
                "only http and https",
            ),
            ("records: { webhook: \"crm.example.com\" }", "no scheme"),
            ("records: { webhook: \"https:///calls\" }", "no host"),
            ("records: { webhook: \"http://crm:99999/x\" }", "port"),
            ("records: { webhook: \"http://crm/a b\" }", "spaces"),
            ("records: { webhook: 42 }", "expected a URL"),
            (
                "records: { webhook: { uri: \"http://crm\" } }",
                "did you mean 'url'?",
            ),
            ("records: { webhook: { timeout: 5s } }", "needs a url"),
            (
                "records: { webhook: { url: \"http://crm\", timeout: soon } }",
                "records.webhook.timeout",
            ),
            (
                "records: { webhook: { url: \"http://crm\", headers: { \"a b\": x } } }",
                "not a header name",
            ),
            (
                "records: { webhok: \"http://crm\" }",
                "did you mean 'webhook'?",
            ),
        ] {
            let e = at(text).unwrap_err().to_string();
            assert!(e.contains(expected), "{text}: {e}");
        }
    }
}
