//! The server configuration, `hotline.yaml`: listeners, the RTP port range, where flows and
//! prompts live, which flow answers which dialed number, the opening-hours schedules and the
//! variables flows see as `config.NAME`, whether `serve` runs the sample's demonstration
//! order service, and where call records are kept. Every key has a working default, so the shipped
//! file is short. Paths are relative to the config file. This module only reads and checks
//! the file; it opens no socket.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use thiserror::Error;

use crate::flow::check::FlowConfig;
use crate::flow::check::is_identifier;
use crate::flow::duration::parse_duration;
use crate::flow::schedule::Schedule;
use crate::queue::config::{AgentsConfig, QueuesConfig};
use crate::sip::digest::{Algorithm, DEFAULT_ALGORITHMS};

/// A problem with `hotline.yaml` or a command-line override.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{0}")]
    Value(String),
}

/// Which SIP transport a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        })
    }
}

/// One SIP listener, written `udp:127.0.0.1:5060`, `tcp:[::1]:5060` or `127.0.0.1:5060`
/// (UDP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen {
    pub transport: Transport,
    pub addr: SocketAddr,
}

impl FromStr for Listen {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (transport, rest) = match s.split_once(':') {
            Some((t, rest)) if t.eq_ignore_ascii_case("udp") => (Transport::Udp, rest),
            Some((t, rest)) if t.eq_ignore_ascii_case("tcp") => (Transport::Tcp, rest),
            _ => (Transport::Udp, s),
        };
        let addr = rest.parse::<SocketAddr>().map_err(|_| {
            ConfigError::Value(format!(
                "expected a listener like 'udp:0.0.0.0:5060' or 'tcp:[::1]:5060', found '{s}'"
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
}

/// The admin HTTP API (`admin:` in hotline.yaml); absent: no admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Default 127.0.0.1:8080. Any other than a loopback address needs `token`.
    pub listen: SocketAddr,
    /// When set, every request must carry `Authorization: Bearer TOKEN`.
    pub token: Option<String>,
}

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
}

/// The loaded configuration, with defaults filled in and paths made absolute.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from (None when every value is a default).
    pub path: Option<PathBuf>,
    pub listen: Vec<Listen>,
    pub user_agent: String,
    /// New calls beyond this many get 503 with Retry-After.
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
}

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
        check(self.max_calls != new.max_calls, "sip.max_calls");
        check(self.t1 != new.t1, "sip.t1");
        check(self.realm != new.realm, "sip.realm");
        check(
            self.digest_algorithms != new.digest_algorithms,
            "sip.digest_algorithms",
        );
        check(self.records != new.records, "records");
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
}

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
            listen: vec![
                "udp:0.0.0.0:5060".parse().expect("static listener"),
                "tcp:0.0.0.0:5060".parse().expect("static listener"),
            ],
            user_agent: format!("hotline/{}", env!("CARGO_PKG_VERSION")),
            max_calls: 5000,
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

    /// Parses the text of a config file that lives at `path`.
    pub fn from_str_at(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawFile = if text.trim().is_empty() {
            RawFile::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| ConfigError::Syntax {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?
        };
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| Path::new("."));
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let mut cfg = Config {
            path: Some(path.to_path_buf()),
            ..Config::default()
        };
        if let Some(list) = raw.sip.listen {
            cfg.listen = list
                .iter()
                .map(|s| s.parse().map_err(|e: ConfigError| invalid(e.to_string())))
                .collect::<Result<_, _>>()?;
        }
        if let Some(ua) = raw.sip.user_agent {
            cfg.user_agent = ua;
        }
        if let Some(n) = raw.sip.max_calls {
            cfg.max_calls = n;
        }
        if let Some(t) = raw.sip.answer_after {
            cfg.answer_after =
                parse_duration(&t).map_err(|e| invalid(format!("sip.answer_after: {e}")))?;
        }
        if let Some(t) = raw.sip.t1 {
            cfg.t1 = parse_duration(&t).map_err(|e| invalid(format!("sip.t1: {e}")))?;
            if cfg.t1 < Duration::from_millis(1) || cfg.t1 > Duration::from_secs(60) {
                return Err(invalid(format!(
                    "sip.t1: expected between 1ms and 60s, found '{t}'"
                )));
            }
        }
        if let Some(r) = raw.sip.realm {
            if r.is_empty() || r.chars().any(|c| c.is_control()) {
                return Err(invalid(format!(
                    "sip.realm: expected a non-empty name without control characters, found '{r}'"
                )));
            }
            cfg.realm = r;
        }
        if let Some(list) = raw.sip.digest_algorithms {
            let mut algs = Vec::new();
            for a in &list {
                let alg = match Algorithm::parse(a) {
                    Ok(alg @ (Algorithm::Md5 | Algorithm::Sha256)) => alg,
                    _ => {
                        return Err(invalid(format!(
                            "sip.digest_algorithms: expected SHA-256 or MD5, found '{a}'"
                        )));
                    }
                };
                if !algs.contains(&alg) {
                    algs.push(alg);
                }
            }
            if algs.is_empty() {
                return Err(invalid(
                    "sip.digest_algorithms: expected at least one of SHA-256 and MD5".to_string(),
                ));
            }
            cfg.digest_algorithms = algs;
        }
        if let Some(p) = raw.rtp.ports {
            cfg.rtp_ports = p.parse().map_err(|e: ConfigError| invalid(e.to_string()))?;
        }
        if let Some(a) = raw.rtp.public_address {
            cfg.public_address = Some(a.parse().map_err(|_| {
                invalid(format!(
                    "rtp.public_address: expected an IP address, found '{a}'"
                ))
            })?);
        }
        if let Some(t) = raw.rtp.no_media_timeout {
            cfg.no_media_timeout =
                parse_duration(&t).map_err(|e| invalid(format!("rtp.no_media_timeout: {e}")))?;
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
                return Err(invalid(format!(
                    "schedules: '{name}' is not a usable schedule name (letters, digits and '_')"
                )));
            }
        }
        cfg.schedules = raw.schedules;
        for name in raw.vars.keys() {
            if !is_identifier(name) {
                return Err(invalid(format!(
                    "vars: '{name}' is not a usable variable name: flows write config.NAME, so use letters, digits and '_'"
                )));
            }
        }
        cfg.vars = raw.vars;
        let problems = crate::queue::config::check(&raw.queues, &raw.agents);
        if !problems.is_empty() {
            return Err(invalid(problems.join("; ")));
        }
        cfg.queues = raw.queues;
        cfg.agents = raw.agents;
        if let Some(shop) = raw.demo_shop {
            let listen = shop.listen.unwrap_or_else(|| DEMO_SHOP_LISTEN.to_owned());
            let listen = listen.parse().map_err(|_| {
                invalid(format!(
                    "demo_shop.listen: expected an address like '127.0.0.1:8081', found '{listen}'"
                ))
            })?;
            cfg.demo_shop = Some(DemoShopConfig { listen });
        }
        if let Some(a) = raw.admin {
            cfg.admin = Some(admin_config(a).map_err(invalid)?);
        }
        if let Some(r) = raw.records {
            cfg.records = records_config(&r, base, &cfg.data_dir).map_err(invalid)?;
        }
        cfg.tests_dir = match raw.tests {
            Some(t) => Some(base.join(t)),
            None => Some(cfg.flows_dir.join("tests")).filter(|p| p.is_dir()),
        };
        cfg.as_loaded = Some(StartOnly::of(&cfg));
        Ok(cfg)
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
            other => {
                let hint = crate::flow::diagnostic::did_you_mean(other, ["store", "keep"])
                    .map(|s| format!(" (did you mean '{s}'?)"))
                    .unwrap_or_default();
                return Err(format!(
                    "records: unknown key '{other}'{hint}; expected store or keep"
                ));
            }
        }
    }
    Ok(Some(records))
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

fn admin_config(raw: RawAdmin) -> Result<AdminConfig, String> {
    let listen_text = raw.listen.as_deref().unwrap_or(DEFAULT_ADMIN_LISTEN);
    let listen: SocketAddr = listen_text.parse().map_err(|_| {
        format!("admin.listen: expected an address like 127.0.0.1:8080, found '{listen_text}'")
    })?;
    let token = raw.token.filter(|t| !t.is_empty());
    if !listen.ip().is_loopback() && token.is_none() {
        return Err(format!(
            "admin.listen: {listen} is reachable from other hosts, so the admin API needs a 'token' (admin: {{ listen: \"{listen}\", token: \"...\" }}), or listen on 127.0.0.1"
        ));
    }
    Ok(AdminConfig { listen, token })
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
    schema.to_value()
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
                    }
                }
            }
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(cfg.listen[1].transport, Transport::Tcp);
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
        for (text, expected) in [
            ("records: { stor: x.db }", "did you mean 'store'?"),
            ("records: { store: \"mysql://db\" }", "postgres:// URL"),
            ("records: { keep: 400 }", "records.keep"),
            ("records: { keep: 5m }", "at least 1h"),
            ("records: { keep: forever }", "400d"),
            ("records: maybe", "expected 'off'"),
        ] {
            let e = at(text).unwrap_err().to_string();
            assert!(e.contains(expected), "{text}: {e}");
        }
    }
}
