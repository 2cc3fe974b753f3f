//! The `queues:` and `agents:` sections of `hotline.yaml`: serde types with their
//! defaults, and [`check`], which finds what needs both sections at once (an agent serving
//! a queue that does not exist, a zero ring timeout, a secret in the wrong form).
//!
//! Owns the shape of the configuration only. It must not hold live state (who is logged
//! in, who waits): that is the `Acd`'s, which is built from these values.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::de::Deserializer;
use serde::{Deserialize, Serialize};

use crate::flow::model::{DtmfKey, HumanDuration};

/// The prompts the engine says itself around a queue's numbers and callbacks (each
/// language has its own recording).
pub mod prompts {
    /// "You are caller number …"
    pub const POSITION: &str = "queue_position";
    /// "Your expected wait is about …"
    pub const WAIT: &str = "queue_wait";
    /// "… minutes."
    pub const MINUTES: &str = "queue_minutes";
    /// "To keep your place in line and be called back, press 1."
    pub const CALLBACK_OFFER: &str = "queue_callback_offer";
    /// "This is the call back you asked for; please hold."
    pub const CALLBACK_INTRO: &str = "queue_callback_intro";
}

impl QueueConfig {
    /// The prompts this queue plays: those its configuration names (`music`,
    /// `announce_prompt`), then those the engine says for what it is set to do.
    pub fn prompts(&self) -> (Vec<&str>, Vec<&'static str>) {
        let named = [&self.music, &self.announce_prompt]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        let mut builtin = Vec::new();
        if self.announce.contains(&AnnounceItem::Position) {
            builtin.push(prompts::POSITION);
        }
        if self.announce.contains(&AnnounceItem::Wait) {
            builtin.extend([prompts::WAIT, prompts::MINUTES]);
        }
        if self.callback.is_some() {
            builtin.extend([prompts::CALLBACK_OFFER, prompts::CALLBACK_INTRO]);
        }
        (named, builtin)
    }
}

/// Handled calls remembered per queue for the estimated wait.
pub const DEFAULT_EWT_WINDOW: usize = 20;

/// How a queue picks the agent for the caller at the front.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The available agent whose last call ended longest ago.
    #[default]
    LongestIdle,
    /// Agents in turn, in the configured order, starting after the last one offered.
    RoundRobin,
    /// The available agent who has answered the fewest calls since the engine started.
    FewestCalls,
    /// Every available agent rings at once; the first to answer takes the call.
    RingAll,
    /// The lowest penalty first (among agents with the skills the caller needs), then
    /// longest idle.
    Skills,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::LongestIdle => "longest_idle",
            Strategy::RoundRobin => "round_robin",
            Strategy::FewestCalls => "fewest_calls",
            Strategy::RingAll => "ring_all",
            Strategy::Skills => "skills",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a periodic announcement tells the caller (after `announce_prompt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AnnounceItem {
    /// "You are caller number 3."
    Position,
    /// "Your expected wait is about 4 minutes."
    Wait,
}

/// What happens to a caller who arrives when no agent of the queue is logged in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WhenEmpty {
    /// Wait anyway: an agent may log in.
    #[default]
    Join,
    /// Go to the queue step's `on_timeout` at once (and so do the waiting callers when
    /// the last agent logs out).
    Leave,
}

/// "Keep my place, call me back".
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallbackConfig {
    /// The key the caller presses to be called back.
    #[serde(serialize_with = "ser_key")]
    pub key: DtmfKey,
    /// Offer the callback when the estimated wait is longer than this.
    #[serde(deserialize_with = "de_duration", serialize_with = "ser_duration")]
    #[schemars(with = "String")]
    pub offer_after_wait: Duration,
    /// Calls to the caller before the request is given up.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// The pause before calling again after an unanswered callback.
    #[serde(
        default = "default_retry_after",
        deserialize_with = "de_duration",
        serialize_with = "ser_duration"
    )]
    #[schemars(with = "String")]
    pub retry_after: Duration,
    /// Where callers' numbers are called: a SIP URI with `{number}` where the number
    /// goes, usually the trunk or gateway to the telephone network
    /// (`sip:{number}@gateway.example.net`).
    pub dial: String,
    /// The number shown to the caller called back (From and P-Asserted-Identity): the
    /// hotline's own number, so the caller recognises it.
    #[serde(default)]
    pub caller_id: Option<String>,
    /// How long the caller's phone rings before the attempt counts as unanswered.
    #[serde(
        default = "default_callback_ring",
        deserialize_with = "de_duration",
        serialize_with = "ser_duration"
    )]
    #[schemars(with = "String")]
    pub ring_timeout: Duration,
    /// The numbers that may be called back: number patterns (see [`pattern_matches`]).
    /// A caller's number must match one of them and none of `denied`. The default is
    /// [`DEFAULT_ALLOWED`]: national numbers in national format only.
    #[serde(default = "default_allowed")]
    pub allowed: Vec<String>,
    /// Numbers never called back even though `allowed` matches (premium-rate ranges).
    #[serde(default)]
    pub denied: Vec<String>,
    /// Callback requests this queue accepts in any 24 hours; beyond it no callback is
    /// offered, so a flood of calls cannot make the hotline place thousands of calls.
    #[serde(default = "default_daily_cap")]
    pub daily_cap: u32,
}

impl CallbackConfig {
    /// The URI that calls `number` (which must be [`dialable`]).
    pub fn target(&self, number: &str) -> String {
        self.dial.replace(NUMBER_SLOT, number)
    }

    /// Whether `number` may be called back: a plain number that one `allowed` pattern
    /// matches and no `denied` one does.
    pub fn allows(&self, number: &str) -> bool {
        dialable(number)
            && self.allowed.iter().any(|p| pattern_matches(p, number))
            && !self.denied.iter().any(|p| pattern_matches(p, number))
    }
}

/// What `callback.allowed` is when left out: a national number written with the single
/// trunk prefix `0`, 9 digits or more. Neither `00` (the international prefix in most
/// of the world) nor `09` (premium rate in Germany, Austria, Switzerland, the United
/// Kingdom, the Netherlands, Belgium...) nor a `+` (an international number) matches.
pub const DEFAULT_ALLOWED: &str = "0[1-8]XXXXXX.";

/// The largest `callback.daily_cap` (the ACD keeps one timestamp per accepted request).
pub const MAX_DAILY_CAP: u32 = 100_000;

/// One position of a number pattern: which characters it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatternItem {
    /// One character of this set: bit 0-9 for the digits, 10 for `+`.
    One(u16),
    /// One or more further digits (`.`), or any number including none (`!`).
    Rest { at_least_one: bool },
}

const PLUS_BIT: u16 = 1 << 10;

fn digit_bits(from: u8, to: u8) -> u16 {
    (from..=to).fold(0, |bits, d| bits | (1 << d))
}

/// Reads a number pattern, the dial-plan notation PBX administrators know: digits and
/// `+` stand for themselves, `X` is any digit, `Z` 1-9, `N` 2-9, `[15-7]` one digit of
/// a set or range, and a final `.` one or more further digits, a final `!` zero or more.
/// The whole number must match. Letters are upper or lower case.
fn parse_pattern(pattern: &str) -> Result<Vec<PatternItem>, String> {
    let mut items = Vec::new();
    let bytes = pattern.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let item = match c.to_ascii_uppercase() {
            b'0'..=b'9' => PatternItem::One(1 << (c - b'0')),
            b'+' => PatternItem::One(PLUS_BIT),
            b'X' => PatternItem::One(digit_bits(0, 9)),
            b'Z' => PatternItem::One(digit_bits(1, 9)),
            b'N' => PatternItem::One(digit_bits(2, 9)),
            b'.' | b'!' => {
                if i + 1 != bytes.len() {
                    return Err(format!(
                        "'{}' may only end a pattern (at position {})",
                        c as char,
                        i + 1
                    ));
                }
                PatternItem::Rest {
                    at_least_one: c == b'.',
                }
            }
            b'[' => {
                let Some(len) = bytes[i + 1..].iter().position(|&b| b == b']') else {
                    return Err("'[' without its ']'".to_string());
                };
                let set = &bytes[i + 1..i + 1 + len];
                let mut bits = 0u16;
                let mut j = 0;
                while j < set.len() {
                    let d = set[j];
                    if !d.is_ascii_digit() {
                        return Err(format!(
                            "only digits and ranges like 1-5 go between '[' and ']', found '{}'",
                            d as char
                        ));
                    }
                    if set.get(j + 1) == Some(&b'-') {
                        let Some(&e) = set.get(j + 2).filter(|e| e.is_ascii_digit() && **e >= d)
                        else {
                            return Err(
                                "a range between '[' and ']' goes up from digit to digit, like 1-5"
                                    .to_string(),
                            );
                        };
                        bits |= digit_bits(d - b'0', e - b'0');
                        j += 3;
                    } else {
                        bits |= 1 << (d - b'0');
                        j += 1;
                    }
                }
                if bits == 0 {
                    return Err("'[]' matches nothing".to_string());
                }
                i += len + 1;
                PatternItem::One(bits)
            }
            _ => {
                return Err(format!(
                    "'{}' is not part of a number pattern (digits, '+', X, Z, N, [1-5], and a final '.' or '!')",
                    c as char
                ));
            }
        };
        items.push(item);
        i += 1;
    }
    if items.is_empty() {
        return Err("an empty pattern".to_string());
    }
    Ok(items)
}

/// Whether `pattern` is a valid number pattern; the error says what is wrong.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    parse_pattern(pattern).map(|_| ())
}

/// Whether the whole of `number` matches `pattern` (see [`parse_pattern`] for the
/// notation). An invalid pattern matches nothing.
pub fn pattern_matches(pattern: &str, number: &str) -> bool {
    let Ok(items) = parse_pattern(pattern) else {
        return false;
    };
    let mut chars = number.bytes();
    for item in items {
        match item {
            PatternItem::One(bits) => {
                let bit = match chars.next() {
                    Some(d @ b'0'..=b'9') => 1 << (d - b'0'),
                    Some(b'+') => PLUS_BIT,
                    _ => return false,
                };
                if bits & bit == 0 {
                    return false;
                }
            }
            PatternItem::Rest { at_least_one } => {
                let rest: Vec<u8> = chars.collect();
                return (!at_least_one || !rest.is_empty()) && rest.iter().all(u8::is_ascii_digit);
            }
        }
    }
    chars.next().is_none()
}

/// Where the number goes in `callback.dial`.
pub const NUMBER_SLOT: &str = "{number}";

/// Whether a caller's number may be called back: an optional `+` and 3 to 20 digits. A
/// From user is whatever the caller's phone sent; anything else (a name, a URI trick, a
/// `;` parameter) is never put into a dialled URI.
pub fn dialable(number: &str) -> bool {
    let digits = number.strip_prefix('+').unwrap_or(number);
    (3..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// How the sample hotline.yaml's agent passwords end: they are published, so a hotline
/// reachable from other machines must not accept them.
pub const SAMPLE_PASSWORD_SUFFIX: &str = "change-me";

/// The first agent (by name) whose password is a sample one (`alice-change-me`, or
/// anything else ending in [`SAMPLE_PASSWORD_SUFFIX`]), as its configuration key.
pub fn sample_password(agents: &AgentsConfig) -> Option<String> {
    agents.iter().find_map(|(name, a)| match &a.password {
        Some(Secret(p)) if p.trim().ends_with(SAMPLE_PASSWORD_SUFFIX) => {
            Some(format!("agents.{name}.password"))
        }
        _ => None,
    })
}

/// One queue of `queues:`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    #[serde(default)]
    pub strategy: Strategy,
    /// The prompt looped while the caller waits.
    #[serde(default)]
    pub music: Option<String>,
    /// A periodic announcement every this long (none when absent).
    #[serde(
        default,
        deserialize_with = "de_opt_duration",
        serialize_with = "ser_opt_duration"
    )]
    #[schemars(with = "Option<String>")]
    pub announce_every: Option<Duration>,
    /// What the periodic announcement says.
    #[serde(default = "default_announce")]
    pub announce: Vec<AnnounceItem>,
    /// A prompt played first in each periodic announcement.
    #[serde(default)]
    pub announce_prompt: Option<String>,
    /// A caller waiting this long goes to `on_timeout`.
    #[serde(
        default,
        deserialize_with = "de_opt_duration",
        serialize_with = "ser_opt_duration"
    )]
    #[schemars(with = "Option<String>")]
    pub max_wait: Option<Duration>,
    /// Callers beyond this many go to `on_timeout` at once.
    #[serde(default)]
    pub max_callers: Option<usize>,
    #[serde(default)]
    pub when_empty: WhenEmpty,
    /// How long one agent rings before the next is tried.
    #[serde(
        default = "default_ring_timeout",
        deserialize_with = "de_duration",
        serialize_with = "ser_duration"
    )]
    #[schemars(with = "String")]
    pub ring_timeout: Duration,
    /// Missed offers in a row before an agent is paused ("missed calls"); 0 never.
    #[serde(default = "default_max_misses")]
    pub max_misses: u32,
    /// After-call work: the agent is offered no call, from any queue, this long.
    #[serde(
        default,
        deserialize_with = "de_duration",
        serialize_with = "ser_duration"
    )]
    #[schemars(with = "String")]
    pub wrap_up: Duration,
    /// The service level counts calls answered within this long.
    #[serde(
        default = "default_service_level",
        deserialize_with = "de_duration",
        serialize_with = "ser_duration"
    )]
    #[schemars(with = "String")]
    pub service_level: Duration,
    #[serde(default)]
    pub callback: Option<CallbackConfig>,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            strategy: Strategy::default(),
            music: None,
            announce_every: None,
            announce: default_announce(),
            announce_prompt: None,
            max_wait: None,
            max_callers: None,
            when_empty: WhenEmpty::default(),
            ring_timeout: default_ring_timeout(),
            max_misses: default_max_misses(),
            wrap_up: Duration::ZERO,
            service_level: default_service_level(),
            callback: None,
        }
    }
}

/// A secret from the configuration; never printed.
#[derive(Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// One agent of `agents:`. The map key is the agent's name, which is also the user name
/// it registers with.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The digest password of REGISTER, in clear.
    #[serde(default)]
    pub password: Option<Secret>,
    /// The digest HA1 (`MD5(name:realm:password)`, hex) instead of the password.
    #[serde(default)]
    pub ha1_md5: Option<Secret>,
    /// The digest HA1 with SHA-256 (hex).
    #[serde(default)]
    pub ha1_sha256: Option<Secret>,
    /// A fixed address: the agent is reachable there without registering.
    #[serde(default)]
    pub uri: Option<String>,
    /// Queue name to penalty: lower is preferred by the `skills` strategy.
    pub queues: BTreeMap<String, u32>,
    /// What the agent can do, for queue steps that ask for `skills`.
    #[serde(default)]
    pub skills: Vec<String>,
    /// Overrides the wrap-up of the queues for this agent.
    #[serde(default, deserialize_with = "de_opt_duration")]
    #[schemars(with = "Option<String>")]
    pub wrap_up: Option<Duration>,
    /// Offer this agent's phone SRTP: `RTP/SAVP` with an SDES key (RFC 4568). Its answer
    /// must be SRTP too, or the leg fails. Off by default (plain RTP).
    #[serde(default)]
    pub srtp: bool,
}

impl AgentConfig {
    /// Whether the agent logs in by registering (it has a secret).
    pub fn registers(&self) -> bool {
        self.password.is_some() || self.ha1_md5.is_some() || self.ha1_sha256.is_some()
    }
}

/// `queues:` by name.
pub type QueuesConfig = BTreeMap<String, QueueConfig>;
/// `agents:` by name.
pub type AgentsConfig = BTreeMap<String, AgentConfig>;

/// Every problem of the two sections together, as messages naming the agent or queue and
/// saying what was expected; empty when they are usable.
pub fn check(queues: &QueuesConfig, agents: &AgentsConfig) -> Vec<String> {
    let mut out = Vec::new();
    for (name, q) in queues {
        let at = format!("queues.{name}");
        if !is_name(name) {
            out.push(format!(
                "{at}: '{name}' is not a usable queue name (letters, digits, '_', '-' and '.')"
            ));
        }
        if q.ring_timeout.is_zero() {
            out.push(format!(
                "{at}.ring_timeout: expected a positive duration such as 15s, found 0s"
            ));
        }
        if q.announce_every.is_some_and(|d| d < Duration::from_secs(1)) {
            out.push(format!(
                "{at}.announce_every: expected at least 1s between announcements"
            ));
        }
        if q.max_wait.is_some_and(|d| d.is_zero()) {
            out.push(format!(
                "{at}.max_wait: expected a positive duration, found 0s (leave it out for no limit)"
            ));
        }
        if q.max_callers == Some(0) {
            out.push(format!(
                "{at}.max_callers: expected at least 1, found 0 (leave it out for no limit)"
            ));
        }
        if q.announce.is_empty() && q.announce_every.is_some() && q.announce_prompt.is_none() {
            out.push(format!(
                "{at}.announce_every: the announcement says nothing; add 'announce' or 'announce_prompt'"
            ));
        }
        for prompt in [&q.music, &q.announce_prompt].into_iter().flatten() {
            if prompt.trim().is_empty() || prompt.contains(['/', '\\']) || prompt.contains("..") {
                out.push(format!(
                    "{at}: expected a prompt name (no '/' or '..'), found '{prompt}'"
                ));
            }
        }
        if let Some(cb) = &q.callback {
            if cb.attempts == 0 {
                out.push(format!(
                    "{at}.callback.attempts: expected at least 1, found 0"
                ));
            }
            if cb.retry_after.is_zero() {
                out.push(format!(
                    "{at}.callback.retry_after: expected a positive duration, found 0s"
                ));
            }
            if cb.ring_timeout.is_zero() {
                out.push(format!(
                    "{at}.callback.ring_timeout: expected a positive duration such as 30s, found 0s"
                ));
            }
            let example = cb.target("+15550100");
            let lower = cb.dial.to_ascii_lowercase();
            if !cb.dial.contains(NUMBER_SLOT) {
                out.push(format!(
                    "{at}.callback.dial: expected '{NUMBER_SLOT}' where the caller's number goes, as in 'sip:{NUMBER_SLOT}@gateway.example.net', found '{}'",
                    cb.dial
                ));
            } else if !(lower.starts_with("sip:") || lower.starts_with("sips:"))
                || crate::sip::message::Uri::parse(&example).is_err()
            {
                out.push(format!(
                    "{at}.callback.dial: expected a SIP URI like 'sip:{NUMBER_SLOT}@gateway.example.net' (or 'sips:' over TLS), found '{}'",
                    cb.dial
                ));
            }
            if let Some(id) = &cb.caller_id
                && !dialable(id)
            {
                out.push(format!(
                    "{at}.callback.caller_id: expected a number like '+18005550100', found '{id}'"
                ));
            }
            for (list, patterns) in [("allowed", &cb.allowed), ("denied", &cb.denied)] {
                for (i, p) in patterns.iter().enumerate() {
                    if let Err(why) = check_pattern(p) {
                        out.push(format!(
                            "{at}.callback.{list}[{i}]: expected a number pattern like '{DEFAULT_ALLOWED}': {why}, found '{p}'"
                        ));
                    }
                }
            }
            if cb.allowed.is_empty() {
                out.push(format!(
                    "{at}.callback.allowed: no number could be called back; leave the key out for national numbers ('{DEFAULT_ALLOWED}')"
                ));
            }
            if cb.daily_cap == 0 || cb.daily_cap > MAX_DAILY_CAP {
                out.push(format!(
                    "{at}.callback.daily_cap: expected 1 to {MAX_DAILY_CAP}, found {}",
                    cb.daily_cap
                ));
            }
        }
    }
    for (name, a) in agents {
        let at = format!("agents.{name}");
        if !is_name(name) {
            out.push(format!(
                "{at}: '{name}' is not a usable agent name: it is the SIP user name (letters, digits, '_', '-' and '.')"
            ));
        }
        if !a.registers() && a.uri.is_none() {
            out.push(format!(
                "{at}: the agent cannot be reached: give 'password' (or 'ha1_md5'/'ha1_sha256') to register, or a fixed 'uri'"
            ));
        }
        if let Some(uri) = &a.uri {
            let lower = uri.to_ascii_lowercase();
            if !(lower.starts_with("sip:") || lower.starts_with("sips:")) || uri.len() < 5 {
                out.push(format!(
                    "{at}.uri: expected a SIP address like 'sip:carol@192.0.2.10:5060', found '{uri}'"
                ));
            }
        }
        for (key, len, secret) in [
            ("ha1_md5", 32, &a.ha1_md5),
            ("ha1_sha256", 64, &a.ha1_sha256),
        ] {
            if let Some(s) = secret
                && (s.0.len() != len || !s.0.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                out.push(format!(
                    "{at}.{key}: expected {len} hexadecimal characters, found {} characters",
                    s.0.len()
                ));
            }
        }
        if a.password.as_ref().is_some_and(|p| p.0.is_empty()) {
            out.push(format!("{at}.password: expected a password, found nothing"));
        }
        if a.queues.is_empty() {
            out.push(format!(
                "{at}.queues: the agent serves no queue; expected a mapping like {{ support: 0 }}"
            ));
        }
        for q in a.queues.keys() {
            if !queues.contains_key(q) {
                let known: Vec<&str> = queues.keys().map(String::as_str).collect();
                let hint = match closest(q, &known) {
                    Some(c) => format!(" (did you mean '{c}'?)"),
                    None if known.is_empty() => " (no queue is configured)".to_owned(),
                    None => format!(" (queues: {})", known.join(", ")),
                };
                out.push(format!("{at}.queues: no queue named '{q}'{hint}"));
            }
        }
    }
    out
}

fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(name, k), *k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// Queue and agent names appear in SIP user parts, URLs of the admin API and logs.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn default_announce() -> Vec<AnnounceItem> {
    vec![AnnounceItem::Position, AnnounceItem::Wait]
}
fn default_ring_timeout() -> Duration {
    Duration::from_secs(15)
}
fn default_max_misses() -> u32 {
    3
}
fn default_service_level() -> Duration {
    Duration::from_secs(20)
}
fn default_attempts() -> u32 {
    3
}
fn default_retry_after() -> Duration {
    Duration::from_secs(120)
}

fn default_callback_ring() -> Duration {
    Duration::from_secs(30)
}

fn default_allowed() -> Vec<String> {
    vec![DEFAULT_ALLOWED.to_string()]
}

fn default_daily_cap() -> u32 {
    200
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    HumanDuration::deserialize(d).map(|h| h.0)
}

fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    Option::<HumanDuration>::deserialize(d).map(|o| o.map(|h| h.0))
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::flow::duration::DisplayDuration(*d).to_string())
}

fn ser_opt_duration<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_duration(d, s),
        None => s.serialize_none(),
    }
}

fn ser_key<S: serde::Serializer>(k: &DtmfKey, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_char(k.as_char())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Both {
        #[serde(default)]
        queues: QueuesConfig,
        #[serde(default)]
        agents: AgentsConfig,
    }

    fn parse(text: &str) -> Result<Both, String> {
        serde_saphyr::from_str::<Both>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn the_documented_example_parses() {
        let b = parse(
            r#"
agents:
  alice: { password: "s3cret", queues: { support: 0, sales: 5 }, skills: [billing] }
  bob:   { ha1_md5: "0123456789abcdef0123456789abcdef", queues: { support: 0 } }
  carol: { uri: "sip:carol@127.0.0.1:5070", queues: { support: 1 }, wrap_up: 30s }
queues:
  support:
    strategy: skills
    music: hold_music
    announce_every: 30s
    announce: [position, wait]
    announce_prompt: still_waiting
    max_wait: 10m
    max_callers: 50
    when_empty: leave
    ring_timeout: 15s
    max_misses: 3
    wrap_up: 10s
    service_level: 20s
    callback: { key: "1", offer_after_wait: 2m, dial: "sip:{number}@127.0.0.1:5080", caller_id: "+18005550100" }
  sales: {}
"#,
        )
        .unwrap();
        assert!(check(&b.queues, &b.agents).is_empty());
        let s = &b.queues["support"];
        assert_eq!(s.strategy, Strategy::Skills);
        assert_eq!(s.max_wait, Some(Duration::from_secs(600)));
        assert_eq!(s.when_empty, WhenEmpty::Leave);
        let cb = s.callback.as_ref().unwrap();
        assert_eq!(cb.key.as_char(), '1');
        assert_eq!(cb.attempts, 3);
        assert_eq!(cb.ring_timeout, Duration::from_secs(30));
        assert_eq!(cb.target("+4930111"), "sip:+4930111@127.0.0.1:5080");
        let sales = &b.queues["sales"];
        assert_eq!(sales, &QueueConfig::default());
        assert_eq!(b.agents["carol"].wrap_up, Some(Duration::from_secs(30)));
        assert!(!b.agents["carol"].registers());
        assert!(b.agents["alice"].registers());
        assert_eq!(
            format!("{:?}", b.agents["alice"].password),
            "Some(Secret(..))"
        );
    }

    #[test]
    fn unknown_strategy_is_a_serde_error_with_its_line() {
        let err = parse("queues:\n  support:\n    strategy: random\n").unwrap_err();
        assert!(err.contains("random"), "{err}");
        assert!(err.contains("line 3") || err.contains("3:"), "{err}");
        let err = parse("queues:\n  support:\n    ring_timeout: 15\n").unwrap_err();
        assert!(err.contains("add a unit"), "{err}");
        let err = parse("queues:\n  support:\n    ringtimeout: 15s\n").unwrap_err();
        assert!(err.contains("ringtimeout"), "{err}");
    }

    #[test]
    fn check_reports_every_problem() {
        let b = parse(
            r#"
agents:
  alice: { password: "x", queues: { suport: 0 } }
  bob: { queues: { support: 0 } }
  carol: { uri: "http://x", ha1_md5: "abc", queues: {} }
queues:
  support: { ring_timeout: 0s, max_callers: 0, callback: { key: "1", offer_after_wait: 1m, attempts: 0, dial: "sip:gw.example.net", caller_id: "hotline" } }
  sales: { callback: { key: "1", offer_after_wait: 1m, dial: "tel:{number}" } }
"#,
        )
        .unwrap();
        let problems = check(&b.queues, &b.agents);
        let all = problems.join("\n");
        for want in [
            "queues.support.ring_timeout: expected a positive duration",
            "queues.support.max_callers",
            "queues.support.callback.attempts",
            "queues.support.callback.dial: expected '{number}'",
            "queues.support.callback.caller_id: expected a number",
            "queues.sales.callback.dial: expected a SIP URI",
            "agents.alice.queues: no queue named 'suport' (did you mean 'support'?)",
            "agents.bob: the agent cannot be reached",
            "agents.carol.uri: expected a SIP address",
            "agents.carol.ha1_md5: expected 32 hexadecimal characters, found 3",
            "agents.carol.queues: the agent serves no queue",
        ] {
            assert!(all.contains(want), "missing '{want}' in:\n{all}");
        }
        assert_eq!(problems.len(), 11, "{all}");
    }

    #[test]
    fn number_patterns() {
        for (pattern, number, want) in [
            ("0[1-8]XXXXXX.", "030123456", true),
            ("0[1-8]XXXXXX.", "02079460000", true),
            ("0[1-8]XXXXXX.", "03012345", false),
            ("0[1-8]XXXXXX.", "0900123456", false),
            ("0[1-8]XXXXXX.", "00442079460000", false),
            ("0[1-8]XXXXXX.", "+4930123456", false),
            ("+49[1-8]X.", "+4930123456", true),
            ("+49[1-8]X.", "+49900123456", false),
            ("1NXXNXXXXXX", "12125550100", true),
            ("1NXXNXXXXXX", "11125550100", false),
            ("1NXXNXXXXXX", "121255501000", false),
            ("555!", "555", true),
            ("555!", "5551", true),
            ("555.", "555", false),
            ("z[13-5]", "94", true),
            ("z[13-5]", "92", false),
            ("[0-9]", "+", false),
        ] {
            assert_eq!(
                pattern_matches(pattern, number),
                want,
                "{pattern} ~ {number}"
            );
        }
        for bad in ["", "0.1", "[1", "[a]", "[5-1]", "0A", "*", "[]"] {
            assert!(check_pattern(bad).is_err(), "{bad}");
            assert!(!pattern_matches(bad, "0"), "{bad}");
        }
    }

    #[test]
    fn callback_numbers_default_to_national_ones_with_a_daily_cap() {
        let b = parse(
            r#"
queues:
  support: { callback: { key: "1", offer_after_wait: 1m, dial: "sip:{number}@gw" } }
  sales: { callback: { key: "1", offer_after_wait: 1m, dial: "sip:{number}@gw", allowed: ["+49[1-8]X.", "0X."], denied: ["+49137.", "0[1-3]."], daily_cap: 5 } }
  bad: { callback: { key: "1", offer_after_wait: 1m, dial: "sip:{number}@gw", allowed: ["+49 30.", "0."], denied: ["[9"], daily_cap: 0 } }
  none: { callback: { key: "1", offer_after_wait: 1m, dial: "sip:{number}@gw", allowed: [] } }
"#,
        )
        .unwrap();
        let support = b.queues["support"].callback.as_ref().unwrap();
        assert_eq!(support.daily_cap, 200);
        assert!(support.allows("030123456"));
        for refused in ["+4930123456", "0044207946000", "0900123456", "0;x", "110"] {
            assert!(!support.allows(refused), "{refused}");
        }
        let sales = b.queues["sales"].callback.as_ref().unwrap();
        assert!(sales.allows("+4930123456"));
        assert!(!sales.allows("+49137123456"));
        assert!(sales.allows("0412"));
        assert!(!sales.allows("0312"));
        let problems = check(&b.queues, &b.agents).join("\n");
        for want in [
            "queues.bad.callback.allowed[0]: expected a number pattern like '0[1-8]XXXXXX.': ' ' is not part",
            "queues.bad.callback.denied[0]: expected a number pattern",
            "queues.bad.callback.daily_cap: expected 1 to 100000, found 0",
            "queues.none.callback.allowed: no number could be called back",
        ] {
            assert!(problems.contains(want), "missing '{want}' in:\n{problems}");
        }
        assert!(
            !problems.contains("queues.bad.callback.allowed[1]"),
            "{problems}"
        );
        assert!(!problems.contains("queues.sales"), "{problems}");
        assert!(!problems.contains("queues.support"), "{problems}");
    }

    #[test]
    fn only_plain_numbers_are_dialable() {
        for ok in ["+4930123456", "5550100", "112"] {
            assert!(dialable(ok), "{ok}");
        }
        for bad in [
            "",
            "+",
            "12",
            "alice",
            "+49 30",
            "123;user=x",
            "1@evil",
            "+123456789012345678901",
        ] {
            assert!(!dialable(bad), "{bad}");
        }
    }
}
