//! The registrar (RFC 3261 §10.3): agents' phones log in with REGISTER and digest
//! authentication, and what they registered is where calls for them go.
//!
//! [`Registrar`] is pure: it takes a REGISTER, the address it came from and the time, and
//! returns the response and what changed ([`RegistrarEvent`]); bindings expire through
//! `poll_timeout`/`handle_timeout`. It never reads a clock or touches a socket.
//! [`RegistrarService`] is the thin shell the endpoint owns: it publishes the bindings to a
//! shared [`Registrations`] view and the events to a broadcast channel for the queues and
//! the admin API, keeps the bindings in a file so that they survive a restart, and writes
//! the `login failed` line fail2ban reads for every failed login.
//!
//! Rules:
//! - Every REGISTER must carry a valid digest answer; without one it is challenged (SHA-256
//!   then MD5). Unknown users are challenged like everyone else and refused with 403 after
//!   their answer, so the registrar does not tell who exists.
//! - A phone that comes back without answering a challenge (a new REGISTER of the same
//!   Call-ID) could not use the algorithms offered first: some phones give up on the first
//!   challenge they cannot answer instead of picking the next one (RFC 8760 §2.4). Its next
//!   challenge offers the next algorithms only, and the algorithm it then authenticates
//!   with is the first it is offered for as long as it keeps that Call-ID. Phones that
//!   answer the first challenge never see this. See docs/sip.md.
//! - Every failed login is reported ([`FailedLogin`]: source, user, reason, never a secret);
//!   the detailed report ([`LoginFailure`]) at most once a minute per user, address and
//!   reason, with a count of the ones held back.
//! - A stale nonce gets the same `401 stale=true` whether the password was right or not,
//!   and a wrong answer uses its nonce up (see `DigestAuth::verify`).
//! - A user registers only their own address: the To user must be the authenticated user.
//! - Per binding, a REGISTER with the same Call-ID and a CSeq not above the stored one is
//!   out of order; the whole request then fails with 500 and changes nothing.
//! - Expiry per contact (`;expires=`), else the Expires header, else the default; below the
//!   minimum is refused with 423 and Min-Expires; above the maximum is cut to it.
//! - A user may hold several contacts up to a maximum; beyond it the least recently
//!   refreshed binding is dropped (a rebooted phone's old binding must not lock it out).
//! - Each binding keeps the address the REGISTER came from: calls are sent there (the phone
//!   may sit behind NAT), with the Contact URI as Request-URI.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use tokio::sync::broadcast;
use tracing::{info, warn};

use crate::sip::digest::{
    Algorithm, Authorization, DEFAULT_ALGORITHMS, DigestAuth, DigestError, NonceConfig, Secret,
    Verdict,
};
use crate::sip::message::{Contacts, HeaderName, Request, Response, Uri};
use crate::sip::transport::Peer;

/// Where the registrar looks users up. Implement it over whatever holds the agents (the
/// configuration, a reloadable store); [`Credentials`] is the plain map.
pub trait CredentialStore: Send + Sync + fmt::Debug {
    /// The user's secret, `None` if there is no such user.
    fn secret(&self, user: &str) -> Option<Secret>;
}

/// User name to secret.
#[derive(Clone, Default)]
pub struct Credentials {
    users: HashMap<String, Secret>,
}

impl Credentials {
    pub fn new() -> Credentials {
        Credentials::default()
    }

    pub fn insert(&mut self, user: impl Into<String>, secret: Secret) {
        self.users.insert(user.into(), secret);
    }

    /// Builder form of [`Credentials::insert`].
    pub fn with(mut self, user: impl Into<String>, secret: Secret) -> Credentials {
        self.insert(user, secret);
        self
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

impl fmt::Debug for Credentials {
    /// Names the users only; secrets are never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.users.keys().collect();
        names.sort();
        f.debug_struct("Credentials")
            .field("users", &names)
            .finish()
    }
}

impl CredentialStore for Credentials {
    fn secret(&self, user: &str) -> Option<Secret> {
        self.users.get(user).cloned()
    }
}

/// Credentials a reload of the configuration replaces while the registrar runs.
#[derive(Debug, Default)]
pub struct SharedCredentials(std::sync::RwLock<Credentials>);

impl SharedCredentials {
    pub fn new(c: Credentials) -> SharedCredentials {
        SharedCredentials(std::sync::RwLock::new(c))
    }

    pub fn replace(&self, c: Credentials) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = c;
    }
}

impl CredentialStore for SharedCredentials {
    fn secret(&self, user: &str) -> Option<Secret> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .secret(user)
    }
}

/// Settings of the registrar.
#[derive(Debug, Clone)]
pub struct RegistrarConfig {
    /// The digest realm; hashed secrets must have been computed with it.
    pub realm: String,
    pub credentials: Arc<dyn CredentialStore>,
    /// The algorithms a 401 offers, in order of preference. Answers with any other (or
    /// its `-sess` form) are challenged again.
    pub algorithms: Vec<Algorithm>,
    /// Shorter registrations get 423 Interval Too Brief (seconds).
    pub min_expires: u32,
    /// Longer ones are cut to this (seconds).
    pub max_expires: u32,
    /// When the REGISTER names no expiry (seconds).
    pub default_expires: u32,
    /// Contacts one user may hold at once.
    pub max_contacts: usize,
    pub nonce: NonceConfig,
    /// Where the bindings are kept across restarts (a JSON file, replaced atomically on
    /// every change); `None`: they are not.
    pub store: Option<PathBuf>,
    /// Where failed logins are counted (`hotline_auth_failures`).
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            realm: "hotline".to_string(),
            credentials: Arc::new(Credentials::new()),
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_contacts: 5,
            nonce: NonceConfig::default(),
            store: None,
            metrics: None,
        }
    }
}

/// One registered contact of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The Contact URI: the Request-URI of calls offered to it.
    pub contact: Uri,
    /// Where the REGISTER came from: where calls are sent (NAT-safe).
    pub source: Peer,
    pub expires_at: Instant,
    /// When it was last registered or refreshed.
    pub updated_at: Instant,
    pub call_id: String,
    pub cseq: u32,
}

impl Binding {
    /// Time left at `now` (zero once expired).
    pub fn expires_in(&self, now: Instant) -> Duration {
        self.expires_at.saturating_duration_since(now)
    }
}

/// What a REGISTER or the passing of time changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrarEvent {
    /// A contact was added or refreshed.
    Registered {
        user: String,
        contact: Uri,
        source: Peer,
        expires_at: Instant,
    },
    /// The phone removed it (Expires 0, `Contact: *`), or it made room for a newer one.
    Unregistered { user: String, contact: Uri },
    /// It was not refreshed in time.
    Expired { user: String, contact: Uri },
}

impl RegistrarEvent {
    pub fn user(&self) -> &str {
        match self {
            RegistrarEvent::Registered { user, .. }
            | RegistrarEvent::Unregistered { user, .. }
            | RegistrarEvent::Expired { user, .. } => user,
        }
    }
}

/// Whether two Contact URIs name the same binding: scheme, user, host (any case), port and
/// transport. Other parameters vary between refreshes of one phone.
fn same_contact(a: &Uri, b: &Uri) -> bool {
    match (a.as_sip(), b.as_sip()) {
        (Some(x), Some(y)) => {
            x.secure == y.secure
                && x.user == y.user
                && x.host.to_string().eq_ignore_ascii_case(&y.host.to_string())
                && x.port == y.port
                && x.params.value("transport").map(str::to_ascii_lowercase)
                    == y.params.value("transport").map(str::to_ascii_lowercase)
        }
        _ => a.to_string() == b.to_string(),
    }
}

/// Why a REGISTER did not log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureReason {
    /// The answer named a user the registrar does not know.
    UnknownUser,
    /// The answer was computed with another password.
    WrongPassword,
    /// The answer used an algorithm that is not offered, or one the user's stored
    /// secret has no hash for.
    UnsupportedAlgorithm,
    /// The phone sent a new REGISTER instead of answering the challenge: it supports
    /// none of the algorithms offered first (or has no password configured).
    NoAnswer,
    /// A right answer to a nonce that expired; the phone is challenged again.
    StaleNonce,
    /// A nonce that is not ours (another process, forged) or was already used.
    BadNonce,
}

impl FailureReason {
    /// A password was tried and was wrong (or the user does not exist): what the guard
    /// and a fail2ban filter count.
    pub fn is_guess(self) -> bool {
        matches!(
            self,
            FailureReason::UnknownUser | FailureReason::WrongPassword
        )
    }

    /// The reason as one word, for log fields, fail2ban filters and metric labels.
    pub fn code(self) -> &'static str {
        match self {
            FailureReason::UnknownUser => "unknown_user",
            FailureReason::WrongPassword => "wrong_password",
            FailureReason::UnsupportedAlgorithm => "unsupported_algorithm",
            FailureReason::NoAnswer => "no_answer",
            FailureReason::StaleNonce => "stale_nonce",
            FailureReason::BadNonce => "bad_nonce",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::UnknownUser => "unknown user",
            FailureReason::WrongPassword => "wrong password",
            FailureReason::UnsupportedAlgorithm => "unsupported algorithm",
            FailureReason::NoAnswer => "no answer to the challenge (unsupported algorithm?)",
            FailureReason::StaleNonce => "stale nonce",
            FailureReason::BadNonce => "unknown or replayed nonce",
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed login, for the log. Never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginFailure {
    /// The user named in the answer, else the To user.
    pub user: String,
    pub source: Peer,
    pub reason: FailureReason,
    /// The algorithm the phone answered with, if it answered.
    pub algorithm: Option<Algorithm>,
    /// The algorithms the next challenge offers, preferred first.
    pub next_offer: Vec<Algorithm>,
    /// Failures with the same user, address and reason held back since the last report.
    pub held_back: u32,
}

/// One failed login as fail2ban and the metrics see it: every one, never throttled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedLogin {
    pub source: IpAddr,
    /// The user the phone named (anything a guesser sends; log it escaped).
    pub user: String,
    pub reason: FailureReason,
}

/// One failed-login report per user, address and reason in this interval.
const FAILURE_REPORT_INTERVAL: Duration = Duration::from_secs(60);
/// Rate-limit entries kept at most; beyond that the old ones are forgotten.
const MAX_FAILURE_KEYS: usize = 4096;
/// Phones (registration Call-IDs) whose challenge history is kept at most.
const MAX_PHONES: usize = 10_000;
/// User-Agents learned to need a weaker algorithm, at most.
const MAX_USER_AGENTS: usize = 256;

/// What the registrar remembers of one phone, keyed by its registration's Call-ID (a
/// phone keeps one Call-ID for all its registrations until it restarts, RFC 3261 §10.2).
#[derive(Debug, Clone)]
struct Phone {
    /// The To user; another user under the same Call-ID starts afresh.
    user: String,
    /// Index into the configured algorithms of the first one the last challenge offered.
    offer_from: usize,
    /// CSeq of the REGISTER last challenged without an answer since.
    challenged_cseq: Option<u32>,
    /// The algorithm it last answered with correctly.
    answered: Option<Algorithm>,
    seen_at: Instant,
}

/// The registrar's state: bindings per user and the digest verifier.
#[derive(Debug)]
pub struct Registrar {
    cfg: RegistrarConfig,
    auth: DigestAuth,
    /// Nonce times are seconds since this instant.
    epoch: Instant,
    bindings: BTreeMap<String, Vec<Binding>>,
    phones: HashMap<String, Phone>,
    /// User-Agent to the algorithm a phone of that make authenticated with after
    /// ignoring stronger ones: its next restart is challenged with that one first.
    user_agents: HashMap<String, Algorithm>,
    /// When each (user, address, reason) was last reported, and how many were held back.
    reported: HashMap<(String, IpAddr, FailureReason), (Instant, u32)>,
    failures: Vec<LoginFailure>,
    /// Every failed login, unthrottled: one log line each for fail2ban, and the metrics.
    attempts: Vec<FailedLogin>,
    /// Every refused password (wrong, or a user who does not exist), unthrottled, for the
    /// endpoint's guard: it bans sources that guess.
    refused: Vec<(IpAddr, String)>,
}

/// The user of the To header: the address being registered.
fn to_user(req: &Request) -> Option<String> {
    req.headers
        .to_addr()
        .ok()
        .and_then(|t| t.uri.user().map(str::to_string))
}

/// A failed REGISTER: status, reason, and for 423 the Min-Expires.
fn refuse(req: &Request, status: u16, reason: &str) -> Response {
    Response::for_request(req, status, reason)
}

impl Registrar {
    /// `key` signs nonces (give it 32 random bytes); `now` is the epoch of nonce times.
    pub fn new(cfg: RegistrarConfig, key: [u8; 32], now: Instant) -> Registrar {
        Registrar {
            auth: DigestAuth::new(&cfg.realm, key, cfg.nonce),
            cfg,
            epoch: now,
            bindings: BTreeMap::new(),
            phones: HashMap::new(),
            user_agents: HashMap::new(),
            reported: HashMap::new(),
            failures: Vec::new(),
            attempts: Vec::new(),
            refused: Vec::new(),
        }
    }

    /// The next failed login, unthrottled (oldest first).
    pub fn poll_failed_login(&mut self) -> Option<FailedLogin> {
        (!self.attempts.is_empty()).then(|| self.attempts.remove(0))
    }

    /// The next failed login to report (oldest first).
    /// The next refused password: the address it came from and the user it was for.
    pub fn poll_refused(&mut self) -> Option<(IpAddr, String)> {
        (!self.refused.is_empty()).then(|| self.refused.remove(0))
    }

    pub fn poll_failure(&mut self) -> Option<LoginFailure> {
        if self.failures.is_empty() {
            None
        } else {
            Some(self.failures.remove(0))
        }
    }

    pub fn realm(&self) -> &str {
        &self.cfg.realm
    }

    /// Replaces the user list (after a configuration reload). Bindings stay until they
    /// expire or are refreshed, when the new list applies.
    pub fn set_credentials(&mut self, credentials: Arc<dyn CredentialStore>) {
        self.cfg.credentials = credentials;
    }

    fn secs(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs()
    }

    /// Where the next challenge for this REGISTER starts in the configured algorithms.
    /// Reports a phone that came back without answering the last one.
    fn offer_from(&mut self, req: &Request, now: Instant, source: Peer) -> usize {
        let n = self.cfg.algorithms.len().max(1);
        let position = |algs: &[Algorithm], a: Algorithm| algs.iter().position(|x| *x == a);
        let (Ok(call_id), Ok(cseq)) = (req.headers.call_id(), req.headers.cseq()) else {
            return 0;
        };
        let user = to_user(req).unwrap_or_default();
        let learned = req
            .headers
            .get(HeaderName::UserAgent)
            .and_then(|v| v.as_str())
            .and_then(|ua| self.user_agents.get(ua))
            .and_then(|a| position(&self.cfg.algorithms, *a))
            .unwrap_or(0);
        let mut unanswered = false;
        let from = match self.phones.get(call_id) {
            Some(p) if p.user == user => match (p.answered, p.challenged_cseq) {
                (Some(a), _) => position(&self.cfg.algorithms, a).unwrap_or(0),
                (None, Some(c)) if cseq.seq > c => {
                    unanswered = true;
                    (p.offer_from + 1) % n
                }
                _ => p.offer_from,
            },
            _ => learned,
        };
        if unanswered {
            let next = self.offered(from);
            self.report(
                now,
                user.clone(),
                source,
                FailureReason::NoAnswer,
                None,
                next,
            );
        }
        if !self.phones.contains_key(call_id) && self.phones.len() >= MAX_PHONES {
            self.forget_oldest_phone();
        }
        let phone = self.phones.entry(call_id.to_string()).or_insert(Phone {
            user: user.clone(),
            offer_from: from,
            challenged_cseq: None,
            answered: None,
            seen_at: now,
        });
        if phone.user != user {
            phone.user = user;
            phone.answered = None;
        }
        phone.offer_from = from;
        phone.challenged_cseq = Some(cseq.seq);
        phone.seen_at = now;
        from
    }

    fn forget_oldest_phone(&mut self) {
        let oldest = self
            .phones
            .iter()
            .min_by_key(|(_, p)| p.seen_at)
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            self.phones.remove(&k);
        }
    }

    /// Notes that the phone answered (rightly or not) with `algorithm`.
    fn answered(&mut self, req: &Request, now: Instant, algorithm: Option<Algorithm>) {
        let Ok(call_id) = req.headers.call_id() else {
            return;
        };
        if let Some(p) = self.phones.get_mut(call_id) {
            p.challenged_cseq = None;
            p.seen_at = now;
            let Some(a) = algorithm else {
                return;
            };
            p.answered = Some(a);
            // It authenticated only after being offered weaker algorithms: phones of its
            // make are challenged that way from their first REGISTER on.
            if p.offer_from > 0
                && let Some(ua) = req
                    .headers
                    .get(HeaderName::UserAgent)
                    .and_then(|v| v.as_str())
                && (self.user_agents.len() < MAX_USER_AGENTS || self.user_agents.contains_key(ua))
            {
                self.user_agents.insert(ua.to_string(), a);
            }
        }
    }

    /// Queues a failed login for the log, unless the same one was reported lately.
    fn report(
        &mut self,
        now: Instant,
        user: String,
        source: Peer,
        reason: FailureReason,
        algorithm: Option<Algorithm>,
        next_offer: Vec<Algorithm>,
    ) {
        if self.reported.len() >= MAX_FAILURE_KEYS {
            self.reported
                .retain(|_, (at, _)| now.saturating_duration_since(*at) < FAILURE_REPORT_INTERVAL);
            if self.reported.len() >= MAX_FAILURE_KEYS {
                self.reported.clear();
            }
        }
        if self.attempts.len() < MAX_FAILURE_KEYS {
            self.attempts.push(FailedLogin {
                source: source.remote.ip(),
                user: user.clone(),
                reason,
            });
        }
        let key = (user.clone(), source.remote.ip(), reason);
        match self.reported.get_mut(&key) {
            Some((at, held)) if now.saturating_duration_since(*at) < FAILURE_REPORT_INTERVAL => {
                *held = held.saturating_add(1);
            }
            Some((at, held)) => {
                let held_back = std::mem::take(held);
                *at = now;
                self.failures.push(LoginFailure {
                    user,
                    source,
                    reason,
                    algorithm,
                    next_offer,
                    held_back,
                });
            }
            None => {
                self.reported.insert(key, (now, 0));
                self.failures.push(LoginFailure {
                    user,
                    source,
                    reason,
                    algorithm,
                    next_offer,
                    held_back: 0,
                });
            }
        }
        // Reports nobody polls must not pile up.
        if self.failures.len() > MAX_FAILURE_KEYS {
            self.failures.remove(0);
        }
    }

    /// A 401 for `req`, offering the algorithms from `from` on.
    fn challenge(&mut self, req: &Request, now: Instant, stale: bool, from: usize) -> Response {
        let mut resp = Response::for_request(req, 401, "Unauthorized");
        let secs = self.secs(now);
        let algorithms = self.offered(from);
        for ch in self.auth.challenges(secs, stale, &algorithms) {
            resp.headers
                .push(HeaderName::WwwAuthenticate, ch.to_string());
        }
        resp
    }

    /// Answers a REGISTER that came from `source`. The response has no To tag and no
    /// Server header yet: the sender adds them.
    pub fn handle_register(
        &mut self,
        now: Instant,
        req: &Request,
        source: Peer,
    ) -> (Response, Vec<RegistrarEvent>) {
        let auth = match self.pick_authorization(req) {
            Ok(Some(a)) => a,
            Ok(None) => {
                let from = self.offer_from(req, now, source);
                return (self.challenge(req, now, false, from), Vec::new());
            }
            Err(e) => {
                let reason = format!("Bad Request (Authorization: {e})");
                return (refuse(req, 400, &reason), Vec::new());
            }
        };
        let algorithm = auth.algorithm.base();
        let user = auth.username.clone();
        if !self.cfg.algorithms.contains(&algorithm) {
            self.answered(req, now, None);
            let from = self.offer_from(req, now, source);
            let next = self.offered(from);
            let why = FailureReason::UnsupportedAlgorithm;
            self.report(now, user, source, why, Some(algorithm), next);
            return (self.challenge(req, now, false, from), Vec::new());
        }
        let secret = self.cfg.credentials.secret(&auth.username);
        let verdict = self.auth.verify(
            self.secs(now),
            req.method.as_str(),
            &req.uri,
            &auth,
            secret.as_ref(),
        );
        let fail = |r: &mut Registrar, why: FailureReason, from: usize| {
            let next = r.offered(from);
            r.report(now, user.clone(), source, why, Some(algorithm), next);
        };
        // Why a wrong answer was wrong (also on a stale nonce, where the phone is not told).
        let wrong = |secret: &Option<Secret>, realm: &str| match secret {
            None => FailureReason::UnknownUser,
            Some(s) if s.ha1(algorithm, &auth.username, realm).is_none() => {
                FailureReason::UnsupportedAlgorithm
            }
            Some(_) => FailureReason::WrongPassword,
        };
        match verdict {
            Verdict::Authenticated => self.answered(req, now, Some(algorithm)),
            Verdict::Stale { right: true } => {
                self.answered(req, now, Some(algorithm));
                let from = self.offer_from(req, now, source);
                fail(self, FailureReason::StaleNonce, from);
                return (self.challenge(req, now, true, from), Vec::new());
            }
            Verdict::Stale { right: false } => {
                // The same 401 stale as for a right answer: an old nonce tests no password.
                self.answered(req, now, None);
                let from = self.offer_from(req, now, source);
                let why = wrong(&secret, &self.cfg.realm);
                fail(self, why, from);
                if why != FailureReason::UnsupportedAlgorithm {
                    self.refused.push((source.remote.ip(), user.clone()));
                }
                return (self.challenge(req, now, true, from), Vec::new());
            }
            Verdict::BadNonce | Verdict::Replayed => {
                self.answered(req, now, None);
                let from = self.offer_from(req, now, source);
                fail(self, FailureReason::BadNonce, from);
                return (self.challenge(req, now, false, from), Vec::new());
            }
            Verdict::Forbidden => {
                self.answered(req, now, None);
                let why = wrong(&secret, &self.cfg.realm);
                fail(self, why, 0);
                if why != FailureReason::UnsupportedAlgorithm {
                    self.refused.push((source.remote.ip(), user.clone()));
                }
                return (refuse(req, 403, "Forbidden"), Vec::new());
            }
            Verdict::UriMismatch => {
                return (
                    refuse(req, 400, "Bad Request (digest uri is not the Request-URI)"),
                    Vec::new(),
                );
            }
        }
        if to_user(req).as_deref() != Some(auth.username.as_str()) {
            return (
                refuse(req, 403, "Forbidden (To is not the authenticated user)"),
                Vec::new(),
            );
        }
        self.apply(now, req, source, auth.username)
    }

    /// The algorithms a challenge starting at `from` offers.
    fn offered(&self, from: usize) -> Vec<Algorithm> {
        match self.cfg.algorithms.get(from..) {
            Some(a) if !a.is_empty() => a.to_vec(),
            _ => self.cfg.algorithms.clone(),
        }
    }

    /// The first Digest answer for our realm. `Ok(None)`: none, so challenge. An error
    /// only when no line was readable at all (a line for another realm means the phone
    /// simply has not answered our challenge yet).
    fn pick_authorization(&self, req: &Request) -> Result<Option<Authorization>, DigestError> {
        let mut first_error = None;
        let mut other_realm = false;
        for v in req.headers.get_all(HeaderName::Authorization) {
            let parsed = v
                .as_str()
                .ok_or(DigestError::NotUtf8)
                .and_then(Authorization::parse);
            match parsed {
                Ok(a) if a.realm == self.cfg.realm => return Ok(Some(a)),
                Ok(_) => other_realm = true,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if !other_realm => Err(e),
            _ => Ok(None),
        }
    }

    /// The binding changes of an authenticated REGISTER, all or nothing.
    fn apply(
        &mut self,
        now: Instant,
        req: &Request,
        source: Peer,
        user: String,
    ) -> (Response, Vec<RegistrarEvent>) {
        let (Ok(call_id), Ok(cseq)) = (req.headers.call_id(), req.headers.cseq()) else {
            return (refuse(req, 400, "Bad Request"), Vec::new());
        };
        let contacts = match req.headers.contacts() {
            Ok(c) => c,
            Err(e) => {
                return (refuse(req, 400, &format!("Bad Request ({e})")), Vec::new());
            }
        };
        // A malformed or too large Expires header counts as absent (RFC 4475 §3.1.2.4).
        let header_expires = req.headers.expires().ok().flatten();
        let existing = self.bindings.get(&user).cloned().unwrap_or_default();
        let out_of_order = |b: &Binding| b.call_id == call_id && cseq.seq <= b.cseq;
        let mut events = Vec::new();
        let mut list = existing;
        match contacts {
            Contacts::Wildcard => {
                if header_expires != Some(0) {
                    return (
                        refuse(req, 400, "Bad Request (Contact: * needs Expires: 0)"),
                        Vec::new(),
                    );
                }
                if list.iter().any(out_of_order) {
                    return (refuse(req, 500, "Request Out Of Order"), Vec::new());
                }
                for b in list.drain(..) {
                    events.push(RegistrarEvent::Unregistered {
                        user: user.clone(),
                        contact: b.contact,
                    });
                }
            }
            Contacts::List(addrs) => {
                let mut changes = Vec::with_capacity(addrs.len());
                for a in &addrs {
                    let expires = a
                        .params
                        .value("expires")
                        .map(|v| v.trim().parse::<u32>().unwrap_or(self.cfg.default_expires))
                        .or(header_expires)
                        .unwrap_or(self.cfg.default_expires);
                    if expires != 0 && expires < self.cfg.min_expires {
                        let mut resp = refuse(req, 423, "Interval Too Brief");
                        resp.headers
                            .push(HeaderName::MinExpires, self.cfg.min_expires);
                        return (resp, Vec::new());
                    }
                    if list
                        .iter()
                        .any(|b| same_contact(&b.contact, &a.uri) && out_of_order(b))
                    {
                        return (refuse(req, 500, "Request Out Of Order"), Vec::new());
                    }
                    changes.push((a.uri.clone(), expires.min(self.cfg.max_expires)));
                }
                for (uri, expires) in changes {
                    let at = list.iter().position(|b| same_contact(&b.contact, &uri));
                    if expires == 0 {
                        if let Some(i) = at {
                            let b = list.remove(i);
                            events.push(RegistrarEvent::Unregistered {
                                user: user.clone(),
                                contact: b.contact,
                            });
                        }
                        continue;
                    }
                    let binding = Binding {
                        contact: uri.clone(),
                        source,
                        expires_at: now + Duration::from_secs(expires.into()),
                        updated_at: now,
                        call_id: call_id.to_string(),
                        cseq: cseq.seq,
                    };
                    events.push(RegistrarEvent::Registered {
                        user: user.clone(),
                        contact: uri,
                        source,
                        expires_at: binding.expires_at,
                    });
                    match at {
                        // Refreshed bindings move to the end: the list stays in refresh order.
                        Some(i) => {
                            list.remove(i);
                            list.push(binding);
                        }
                        None => list.push(binding),
                    }
                }
                while list.len() > self.cfg.max_contacts.max(1) {
                    let b = list.remove(0);
                    events.push(RegistrarEvent::Unregistered {
                        user: user.clone(),
                        contact: b.contact,
                    });
                }
            }
        }
        let mut resp = Response::for_request(req, 200, "OK");
        for b in &list {
            resp.headers.push(
                HeaderName::Contact,
                format!("<{}>;expires={}", b.contact, b.expires_in(now).as_secs()),
            );
        }
        if list.is_empty() {
            self.bindings.remove(&user);
        } else {
            self.bindings.insert(user, list);
        }
        (resp, events)
    }

    /// When the next binding expires.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.bindings
            .values()
            .flat_map(|l| l.iter().map(|b| b.expires_at))
            .min()
    }

    /// Removes the bindings that expired by `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<RegistrarEvent> {
        let mut events = Vec::new();
        self.bindings.retain(|user, list| {
            list.retain(|b| {
                let live = b.expires_at > now;
                if !live {
                    events.push(RegistrarEvent::Expired {
                        user: user.clone(),
                        contact: b.contact.clone(),
                    });
                }
                live
            });
            !list.is_empty()
        });
        events
    }

    /// The user's live contacts, most recently refreshed first.
    pub fn contacts(&self, user: &str, now: Instant) -> Vec<Binding> {
        live(self.bindings.get(user).map(Vec::as_slice), now)
    }

    /// Puts back a binding kept from before a restart (already checked: live, and within
    /// the user's contact limit). A binding of the same contact is replaced.
    pub fn restore(&mut self, user: &str, binding: Binding) {
        let list = self.bindings.entry(user.to_string()).or_default();
        list.retain(|b| !same_contact(&b.contact, &binding.contact));
        list.push(binding);
        list.sort_by_key(|b| b.updated_at);
        while list.len() > self.cfg.max_contacts.max(1) {
            list.remove(0);
        }
    }

    /// Every user's live contacts (for the admin API).
    pub fn snapshot(&self, now: Instant) -> BTreeMap<String, Vec<Binding>> {
        snapshot(&self.bindings, now)
    }
}

fn live(list: Option<&[Binding]>, now: Instant) -> Vec<Binding> {
    list.unwrap_or_default()
        .iter()
        .rev()
        .filter(|b| b.expires_at > now)
        .cloned()
        .collect()
}

fn snapshot(all: &BTreeMap<String, Vec<Binding>>, now: Instant) -> BTreeMap<String, Vec<Binding>> {
    all.iter()
        .map(|(u, l)| (u.clone(), live(Some(l), now)))
        .filter(|(_, l)| !l.is_empty())
        .collect()
}

/// A cheap, shared, read-only view of the bindings for other tasks (queues offering
/// calls, the admin API). Reads never wait for the registrar beyond a short copy.
#[derive(Debug, Clone, Default)]
pub struct Registrations {
    inner: Arc<RwLock<BTreeMap<String, Vec<Binding>>>>,
}

impl Registrations {
    /// The user's live contacts at `now`, most recently refreshed first.
    pub fn contacts(&self, user: &str, now: Instant) -> Vec<Binding> {
        let map = self.inner.read().unwrap_or_else(|e| e.into_inner());
        live(map.get(user).map(Vec::as_slice), now)
    }

    /// Whether the user has a live contact at `now`.
    pub fn is_registered(&self, user: &str, now: Instant) -> bool {
        !self.contacts(user, now).is_empty()
    }

    /// Every user's live contacts at `now`.
    pub fn snapshot(&self, now: Instant) -> BTreeMap<String, Vec<Binding>> {
        let map = self.inner.read().unwrap_or_else(|e| e.into_inner());
        snapshot(&map, now)
    }

    /// Copies `user`'s bindings from the registrar.
    fn publish(&self, registrar: &Registrar, user: &str) {
        let mut map = self.inner.write().unwrap_or_else(|e| e.into_inner());
        match registrar.bindings.get(user) {
            Some(l) => {
                map.insert(user.to_string(), l.clone());
            }
            None => {
                map.remove(user);
            }
        }
    }
}

/// Events buffered per subscriber; a subscriber that falls further behind is told it
/// lagged and should re-read [`Registrations`].
const EVENT_BUFFER: usize = 1024;

/// The registrar as the endpoint runs it: the pure [`Registrar`] plus the shared view and
/// the event channel.
#[derive(Debug)]
pub struct RegistrarService {
    registrar: Registrar,
    registrations: Registrations,
    events: broadcast::Sender<RegistrarEvent>,
    store: Option<PathBuf>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl RegistrarService {
    /// The registrar, with the bindings its store kept from the last run (expired ones
    /// dropped) already in the shared view.
    pub fn new(cfg: RegistrarConfig, key: [u8; 32], now: Instant) -> RegistrarService {
        let store = cfg.store.clone();
        let metrics = cfg.metrics.clone();
        let mut registrar = Registrar::new(cfg, key, now);
        let registrations = Registrations::default();
        if let Some(path) = &store {
            let restored = stored::load(path, now, SystemTime::now());
            let users: Vec<String> = restored.iter().map(|(u, _)| u.clone()).collect();
            for (user, binding) in restored {
                registrar.restore(&user, binding);
            }
            for user in &users {
                registrations.publish(&registrar, user);
            }
            if !users.is_empty() {
                info!(bindings = users.len(), file = %path.display(), "registrations restored");
            }
        }
        RegistrarService {
            registrar,
            registrations,
            events: broadcast::channel(EVENT_BUFFER).0,
            store,
            metrics,
        }
    }

    pub fn registrations(&self) -> Registrations {
        self.registrations.clone()
    }

    /// The sender side of the events; call `subscribe()` on it for a receiver.
    pub fn events(&self) -> broadcast::Sender<RegistrarEvent> {
        self.events.clone()
    }

    pub fn registrar(&self) -> &Registrar {
        &self.registrar
    }

    pub fn registrar_mut(&mut self) -> &mut Registrar {
        &mut self.registrar
    }

    pub fn handle_register(&mut self, now: Instant, req: &Request, source: Peer) -> Response {
        let (resp, events) = self.registrar.handle_register(now, req, source);
        self.publish(events);
        while let Some(f) = self.registrar.poll_failed_login() {
            log_failed_login(&f);
            if let Some(m) = &self.metrics {
                m.auth_failed(f.reason.code());
            }
        }
        while let Some(f) = self.registrar.poll_failure() {
            log_failure(&f);
        }
        resp
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.registrar.poll_timeout()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.registrar.poll_timeout().is_some_and(|t| t <= now) {
            let events = self.registrar.handle_timeout(now);
            self.publish(events);
        }
    }

    fn publish(&self, events: Vec<RegistrarEvent>) {
        // Expiries need no write: a stored binding past its time is dropped on loading.
        if let Some(path) = &self.store
            && events
                .iter()
                .any(|e| !matches!(e, RegistrarEvent::Expired { .. }))
        {
            let now = Instant::now();
            stored::save(path, &self.registrar.snapshot(now), now, SystemTime::now());
        }
        let mut done: Vec<&str> = Vec::new();
        for e in &events {
            if !done.contains(&e.user()) {
                self.registrations.publish(&self.registrar, e.user());
                done.push(e.user());
            }
        }
        for e in events {
            // No subscriber is not an error: nobody needs to hear it.
            let _ = self.events.send(e);
        }
    }
}

/// The line fail2ban reads, for every failed login: `source` comes first and is an
/// address, so that a crafted user name (printed escaped, in quotes) cannot pose as
/// another source. The filter in docs/reliability.md matches it.
pub fn log_failed_login(f: &FailedLogin) {
    let reason = f.reason.code();
    if f.reason.is_guess() {
        warn!(source = %f.source, reason, user = ?f.user, "login failed");
    } else {
        // Phones meet these in normal operation (an old nonce, a first challenge in an
        // algorithm they lack): logged, but not what a ban filter counts.
        info!(source = %f.source, reason, user = ?f.user, "login failed");
    }
}

/// The bindings on disk: what a restart needs to reach the agents' phones at once.
mod stored {
    use super::*;

    /// The file's layout; `version` changes when it does.
    #[derive(Debug, Serialize, Deserialize)]
    struct File {
        version: u32,
        bindings: Vec<Stored>,
    }

    #[derive(Debug, Serialize, Deserialize)]
    struct Stored {
        user: String,
        contact: String,
        /// Where the REGISTER came from and the listener it reached.
        remote: SocketAddr,
        local: SocketAddr,
        /// Seconds since the Unix epoch (an `Instant` means nothing to the next run).
        expires_at: u64,
        updated_at: u64,
        call_id: String,
        cseq: u32,
    }

    const VERSION: u32 = 1;

    fn unix(at: Instant, now: Instant, wall: SystemTime) -> u64 {
        let wall = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
        let t = if at >= now {
            wall + (at - now)
        } else {
            wall.saturating_sub(now - at)
        };
        t.as_secs()
    }

    /// Writes every UDP binding to `path`: to a temporary file beside it, flushed to disk,
    /// then renamed over it, so a crash leaves the old file or the new one, never half.
    /// Bindings over TCP or TLS are not kept: their connection does not survive the
    /// restart, and such phones register again when they reconnect.
    pub(super) fn save(
        path: &Path,
        all: &BTreeMap<String, Vec<Binding>>,
        now: Instant,
        wall: SystemTime,
    ) {
        let bindings = all
            .iter()
            .flat_map(|(user, list)| list.iter().map(move |b| (user, b)))
            .filter(|(_, b)| b.source.transport == crate::config::Protocol::Udp)
            .map(|(user, b)| Stored {
                user: user.clone(),
                contact: b.contact.to_string(),
                remote: b.source.remote,
                local: b.source.local,
                expires_at: unix(b.expires_at, now, wall),
                updated_at: unix(b.updated_at, now, wall),
                call_id: b.call_id.clone(),
                cseq: b.cseq,
            })
            .collect();
        let file = File {
            version: VERSION,
            bindings,
        };
        if let Err(e) = write_atomically(path, &file) {
            warn!(file = %path.display(), error = %e, "registrations not saved; a restart would forget them");
        }
    }

    fn write_atomically(path: &Path, file: &File) -> std::io::Result<()> {
        use std::io::Write;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let text = serde_json::to_vec_pretty(file).map_err(std::io::Error::other)?;
        let tmp = path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    }

    /// The live bindings `path` holds, with their times moved onto this run's clock. A
    /// missing file is no binding; an unreadable one is logged and ignored (phones
    /// register again within their interval).
    pub(super) fn load(path: &Path, now: Instant, wall: SystemTime) -> Vec<(String, Binding)> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => {
                warn!(file = %path.display(), error = %e, "registrations not restored");
                return Vec::new();
            }
        };
        let file: File = match serde_json::from_slice(&text) {
            Ok(f) => f,
            Err(e) => {
                warn!(file = %path.display(), error = %e, "registrations not restored: unreadable file");
                return Vec::new();
            }
        };
        if file.version != VERSION {
            warn!(file = %path.display(), version = file.version, "registrations not restored: unknown version");
            return Vec::new();
        }
        let wall = wall
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        file.bindings
            .into_iter()
            .filter(|s| s.expires_at > wall)
            .filter_map(|s| {
                let contact = Uri::parse(&s.contact).ok()?;
                let back = Duration::from_secs(wall.saturating_sub(s.updated_at));
                Some((
                    s.user,
                    Binding {
                        contact,
                        source: Peer {
                            transport: crate::config::Protocol::Udp,
                            remote: s.remote,
                            local: s.local,
                        },
                        expires_at: now + Duration::from_secs(s.expires_at - wall),
                        updated_at: now.checked_sub(back).unwrap_or(now),
                        call_id: s.call_id,
                        cseq: s.cseq,
                    },
                ))
            })
            .collect()
    }
}

/// Names the algorithms of a challenge, as phones' logs show them.
fn algorithm_list(algs: &[Algorithm]) -> String {
    algs.iter()
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A failed login in the log: a warning, except a stale nonce, which phones that reuse
/// nonces meet in normal operation.
fn log_failure(f: &LoginFailure) {
    let algorithm = f.algorithm.map(Algorithm::as_str).unwrap_or("none");
    let next_offer = algorithm_list(&f.next_offer);
    if f.reason == FailureReason::StaleNonce {
        info!(user = ?f.user, remote = %f.source.remote, algorithm, held_back = f.held_back,
            "login needs a fresh nonce: {}", f.reason);
    } else {
        info!(user = ?f.user, remote = %f.source.remote, transport = %f.source.transport,
            algorithm, next_offer, held_back = f.held_back, "login failure details: {}", f.reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Protocol;
    use crate::sip::digest::{Algorithm, Challenge};
    use crate::sip::message::{Message, parse};

    const KEY: [u8; 32] = [3; 32];

    fn peer(port: u16) -> Peer {
        Peer {
            transport: Protocol::Udp,
            remote: format!("192.0.2.7:{port}").parse().unwrap(),
            local: "127.0.0.1:5060".parse().unwrap(),
        }
    }

    fn registrar(now: Instant) -> Registrar {
        let creds = Credentials::new()
            .with("alice", Secret::Password("secret".into()))
            .with(
                "bob",
                Secret::hashed(None, Some(&Algorithm::Sha256.ha1("bob", "hotline", "pw"))).unwrap(),
            );
        Registrar::new(
            RegistrarConfig {
                credentials: Arc::new(creds),
                max_contacts: 2,
                ..RegistrarConfig::default()
            },
            KEY,
            now,
        )
    }

    struct Reg<'a> {
        user: &'a str,
        auth_user: &'a str,
        password: &'a str,
        call_id: &'a str,
        cseq: u32,
        contacts: &'a [&'a str],
        expires: Option<u32>,
        alg: Algorithm,
    }

    fn reg<'a>(user: &'a str, cseq: u32) -> Reg<'a> {
        Reg {
            user,
            auth_user: user,
            password: if user == "bob" { "pw" } else { "secret" },
            call_id: "c1",
            cseq,
            contacts: &["<sip:phone@10.0.0.5:5062>"],
            expires: None,
            alg: Algorithm::Sha256,
        }
    }

    fn request(r: &Reg, auth: Option<String>) -> Request {
        let mut text = format!(
            "REGISTER sip:hotline SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK{cseq}\r\n\
             From: <sip:{u}@hotline>;tag=f\r\nTo: <sip:{u}@hotline>\r\nCall-ID: {cid}\r\n\
             CSeq: {cseq} REGISTER\r\n",
            u = r.user,
            cid = r.call_id,
            cseq = r.cseq
        );
        for c in r.contacts {
            text.push_str(&format!("Contact: {c}\r\n"));
        }
        if let Some(e) = r.expires {
            text.push_str(&format!("Expires: {e}\r\n"));
        }
        if let Some(a) = auth {
            text.push_str(&format!("Authorization: {a}\r\n"));
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        match parse(text.as_bytes(), &Default::default()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => unreachable!(),
        }
    }

    /// Challenge, then answer: the final response and events.
    fn register(
        reg_: &mut Registrar,
        now: Instant,
        r: &Reg,
        from: Peer,
    ) -> (Response, Vec<RegistrarEvent>) {
        let (resp, ev) = reg_.handle_register(now, &request(r, None), from);
        assert_eq!(resp.status, 401);
        assert!(ev.is_empty());
        let chs: Vec<Challenge> = resp
            .headers
            .get_all(HeaderName::WwwAuthenticate)
            .map(|v| Challenge::parse(v.as_str().unwrap()).unwrap())
            .collect();
        let ch = chs.iter().find(|c| c.algorithm == r.alg).unwrap();
        let a = Authorization::answer(
            ch,
            r.auth_user,
            r.password,
            "REGISTER",
            "sip:hotline",
            "cn",
            1,
        );
        reg_.handle_register(now, &request(r, Some(a.to_string())), from)
    }

    #[test]
    fn challenge_offers_sha256_then_md5() {
        let t0 = Instant::now();
        let mut r = registrar(t0);
        let (resp, _) = r.handle_register(t0, &request(&reg("alice", 1), None), peer(1));
        assert_eq!(resp.status, 401);
        let algs: Vec<Algorithm> = resp
            .headers
            .get_all(HeaderName::WwwAuthenticate)
            .map(|v| Challenge::parse(v.as_str().unwrap()).unwrap().algorithm)
            .collect();
        assert_eq!(algs, [Algorithm::Sha256, Algorithm::Md5]);
        // Unknown users get the same challenge.
        let (resp, _) = r.handle_register(t0, &request(&reg("mallory", 1), None), peer(1));
        assert_eq!(resp.status, 401);
        assert_eq!(resp.headers.count(HeaderName::WwwAuthenticate), 2);
    }

    #[test]
    fn only_offered_algorithms_are_accepted() {
        let t0 = Instant::now();
        let mut r = registrar(t0);
        r.cfg.algorithms = vec![Algorithm::Md5];
        let (resp, _) = r.handle_register(t0, &request(&reg("alice", 1), None), peer(1));
        assert_eq!(resp.headers.count(HeaderName::WwwAuthenticate), 1);
        let ch = Challenge::parse(
            resp.headers
                .get(HeaderName::WwwAuthenticate)
                .unwrap()
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(ch.algorithm, Algorithm::Md5);
        let mut sha = ch.clone();
        sha.algorithm = Algorithm::Sha256;
        let a = Authorization::answer(&sha, "alice", "secret", "REGISTER", "sip:hotline", "cn", 1);
        let (resp, _) =
            r.handle_register(t0, &request(&reg("alice", 2), Some(a.to_string())), peer(1));
        assert_eq!(resp.status, 401);
        let a = Authorization::answer(&ch, "alice", "secret", "REGISTER", "sip:hotline", "cn", 1);
        let (resp, _) =
            r.handle_register(t0, &request(&reg("alice", 3), Some(a.to_string())), peer(1));
        assert_eq!(resp.status, 200);
    }

    #[test]
    fn register_refresh_and_lookup() {
        let t0 = Instant::now();
        let mut r = registrar(t0);
        let (resp, ev) = register(&mut r, t0, &reg("alice", 1), peer(40000));
        assert_eq!(resp.status, 200);
        assert_eq!(
            resp.headers.get(HeaderName::Contact).unwrap().as_str(),
            Some("<sip:phone@10.0.0.5:5062>;expires=3600")
        );
        assert!(matches!(&ev[..], [RegistrarEvent::Registered { user, .. }] if user == "alice"));
        let c = r.contacts("alice", t0);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].contact.to_string(), "sip:phone@10.0.0.5:5062");
        // NAT: the binding remembers where the REGISTER came from.
        assert_eq!(c[0].source, peer(40000));
        // A refresh with a new source port updates the binding, not adds one.
        let mut refresh = reg("alice", 3);
        refresh.expires = Some(120);
        refresh.alg = Algorithm::Md5;
        let (resp, _) = register(&mut r, t0 + Duration::from_secs(10), &refresh, peer(40001));
        assert_eq!(resp.status, 200);
        let c = r.contacts("alice", t0);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].source, peer(40001));
        assert_eq!(c[0].expires_at, t0 + Duration::from_secs(130));
        assert!(r.contacts("bob", t0).is_empty());
        // Hashed secrets work too.
        let (resp, _) = register(&mut r, t0, &reg("bob", 1), peer(2));
        assert_eq!(resp.status, 200);
        assert_eq!(r.snapshot(t0).len(), 2);
    }

    #[test]
    fn wrong_password_unknown_user_and_foreign_aor_are_forbidden() {
        let t0 = Instant::now();
        let mut r = registrar(t0);
        let mut bad = reg("alice", 1);
        bad.password = "guess";
        assert_eq!(register(&mut r, t0, &bad, peer(1)).0.status, 403);
        assert_eq!(
            register(&mut r, t0, &reg("mallory", 1), peer(1)).0.status,
            403
        );
        // Bob proves his password but tries to register Alice's address.
        let mut foreign = reg("alice", 1);
        foreign.auth_user = "bob";
        foreign.password = "pw";
        let (resp, ev) = register(&mut r, t0, &foreign, peer(1));
        assert_eq!(resp.status, 403);
        assert!(ev.is_empty());
        // Bob has only a SHA-256 HA1: his MD5 answer cannot be checked.
        let mut md5 = reg("bob", 1);
        md5.alg = Algorithm::Md5;
        assert_eq!(register(&mut r, t0, &md5, peer(1)).0.status, 403);
        assert!(r.snapshot(t0).is_empty());
        // The guard hears each refused password, in order: the wrong one and the unknown
        // user; not the foreign address (a right password) nor the unusable algorithm.
        let ip = peer(1).remote.ip();
        let refused: Vec<_> = std::iter::from_fn(|| r.poll_refused()).collect();
        assert_eq!(
            refused,
            vec![(ip, "alice".to_string()), (ip, "mallory".to_string())]
        );
    }

    /// What a phone can see of a response: status, reason and header names (values of
    /// Via, To, Call-ID and CSeq echo its own request).
    fn visible(resp: &Response) -> (u16, String, Vec<String>) {
        let names = resp
            .to_bytes()
            .split(|b| *b == b'\n')
            .filter_map(|l| {
                let l = String::from_utf8_lossy(l).into_owned();
                l.split_once(':').map(|(n, _)| n.to_string())
            })
            .collect();
        (resp.status, resp.reason.clone(), names)
    }

    #[test]
    fn an_unknown_user_is_answered_like_a_wrong_password_and_every_failure_is_logged() {
        let t0 = Instant::now();
        let mut r = registrar(t0);
        let mut wrong = reg("alice", 1);
        wrong.password = "guess";
        let (a, _) = register(&mut r, t0, &wrong, peer(1));
        let (b, _) = register(&mut r, t0, &reg("mallory", 1), peer(1));
        assert_eq!(a.status, 403);
        assert_eq!(visible(&a), visible(&b));
        // Every failure, unthrottled (the same one twice too), for fail2ban.
        let (c, _) = register(&mut r, t0, &wrong, peer(1));
        assert_eq!(c.status, 403);
        let failed: Vec<_> = std::iter::from_fn(|| r.poll_failed_login())
            .map(|f| (f.source, f.user, f.reason.code()))
            .collect();
        let ip = peer(1).remote.ip();
        assert_eq!(
            failed,
            [
                (ip, "alice".to_string(), "wrong_password"),
                (ip, "mallory".to_string(), "unknown_user"),
                (ip, "alice".to_string(), "wrong_password"),
            ]
        );
    }

    /// The first challenge's SHA-256 answer for `user` with `password`.
    fn answer_first(r: &mut Registrar, now: Instant, user: &str, password: &str) -> String {
        let (resp, _) = r.handle_register(now, &request(&reg(user, 1), None), peer(1));
        let ch = resp
            .headers
            .get_all(HeaderName::WwwAuthenticate)
            .map(|v| Challenge::parse(v.as_str().unwrap()).unwrap())
            .find(|c| c.algorithm == Algorithm::Sha256)
            .unwrap();
        Authorization::answer(&ch, user, password, "REGISTER", "sip:hotline", "cn", 1).to_string()
    }

    #[test]
    fn a_stale_nonce_does_not_tell_a_right_password_from_a_wrong_one() {
        let t0 = Instant::now();
        let mut r = registrar(t0);
        let right = answer_first(&mut r, t0, "alice", "secret");
        let wrong = answer_first(&mut r, t0, "alice", "guess");
        let unknown = answer_first(&mut r, t0, "mallory", "guess");
        let later = t0 + Duration::from_secs(301);
        let mut seen = Vec::new();
        for (user, a) in [("alice", right), ("alice", wrong), ("mallory", unknown)] {
            let (resp, ev) = r.handle_register(later, &request(&reg(user, 2), Some(a)), peer(1));
            assert!(ev.is_empty());
            let stale = resp
                .headers
                .get_all(HeaderName::WwwAuthenticate)
                .map(|v| Challenge::parse(v.as_str().unwrap()).unwrap().stale)
                .collect::<Vec<_>>();
            seen.push((visible(&resp), stale));
        }
        assert_eq!(seen[0].0.0, 401);
        assert!(seen[0].1.iter().all(|s| *s), "{seen:?}");
        assert_eq!(seen[0], seen[1]);
        assert_eq!(seen[0], seen[2]);
        // The guard still hears the wrong passwords.
        let ip = peer(1).remote.ip();
        let refused: Vec<_> = std::iter::from_fn(|| r.poll_refused()).collect();
        assert_eq!(
            refused,
            [(ip, "alice".to_string()), (ip, "mallory".to_string())]
        );
    }

    #[test]
    fn a_failed_guess_uses_up_its_nonce() {
        let t0 = Instant::now();
        let mut r = registrar(t0);
        let (resp, _) = r.handle_register(t0, &request(&reg("alice", 1), None), peer(1));
        let ch = resp
            .headers
            .get_all(HeaderName::WwwAuthenticate)
            .map(|v| Challenge::parse(v.as_str().unwrap()).unwrap())
            .find(|c| c.algorithm == Algorithm::Sha256)
            .unwrap();
        let guess =
            Authorization::answer(&ch, "alice", "guess", "REGISTER", "sip:hotline", "cn", 1);
        let (resp, _) = r.handle_register(
            t0,
            &request(&reg("alice", 2), Some(guess.to_string())),
            peer(1),
        );
        assert_eq!(resp.status, 403);
        // The right password on the same nonce, with the next count: challenged again,
        // not registered.
        let right =
            Authorization::answer(&ch, "alice", "secret", "REGISTER", "sip:hotline", "cn", 2);
        let (resp, ev) = r.handle_register(
            t0,
            &request(&reg("alice", 3), Some(right.to_string())),
            peer(1),
        );
        assert_eq!(resp.status, 401);
        assert!(ev.is_empty());
        // The fresh nonce of that challenge works.
        let fresh = resp
            .headers
            .get_all(HeaderName::WwwAuthenticate)
            .map(|v| Challenge::parse(v.as_str().unwrap()).unwrap())
            .find(|c| c.algorithm == Algorithm::Sha256)
            .unwrap();
        assert_ne!(fresh.nonce, ch.nonce);
        let right = Authorization::answer(
            &fresh,
            "alice",
            "secret",
            "REGISTER",
            "sip:hotline",
            "cn",
            1,
        );
        let (resp, ev) = r.handle_register(
            t0,
            &request(&reg("alice", 4), Some(right.to_string())),
            peer(1),
        );
        assert_eq!(resp.status, 200);
        assert_eq!(ev.len(), 1);
    }

    #[test]
    fn bindings_are_kept_on_disk_and_expired_ones_are_dropped_on_loading() {
        let dir = std::env::temp_dir().join(format!("hotline-reg-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("registrations.json");
        let t0 = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut r = registrar(t0);
        let mut short = reg("bob", 1);
        short.expires = Some(60);
        assert_eq!(
            register(&mut r, t0, &reg("alice", 1), peer(1)).0.status,
            200
        );
        assert_eq!(register(&mut r, t0, &short, peer(2)).0.status, 200);
        stored::save(&path, &r.snapshot(t0), t0, wall);
        assert!(!dir.join("registrations.json.tmp").exists());
        // Two minutes later in another process: bob's binding has expired.
        let t1 = t0 + Duration::from_secs(5);
        let back = stored::load(&path, t1, wall + Duration::from_secs(120));
        assert_eq!(back.len(), 1, "{back:?}");
        let (user, b) = &back[0];
        assert_eq!(user, "alice");
        assert_eq!(b.contact.to_string(), "sip:phone@10.0.0.5:5062");
        assert_eq!(b.source, peer(1));
        assert_eq!(b.expires_in(t1), Duration::from_secs(3600 - 120));
        let mut again = registrar(t1);
        again.restore(user, b.clone());
        assert_eq!(again.contacts("alice", t1).len(), 1);
        // A missing or broken file is no binding.
        std::fs::write(&path, "{ not json").unwrap();
        assert!(stored::load(&path, t1, wall).is_empty());
        assert!(stored::load(&dir.join("none.json"), t1, wall).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn malformed_authorization_is_400_and_other_realms_are_challenged() {
        let t0 = Instant::now();
        let mut r = registrar(t0);
        let req = request(&reg("alice", 1), Some("Digest username=\"alice".into()));
        let (resp, _) = r.handle_register(t0, &req, peer(1));
        assert_eq!(resp.status, 400);
        assert!(resp.reason.contains("closing"), "{}", resp.reason);
        let other = r#"Digest username="alice", realm="elsewhere", nonce="n", uri="sip:hotline", response="6629fae49393a05397450978507c4ef1""#;
        let (resp, _) =
            r.handle_register(t0, &request(&reg("alice", 1), Some(other.into())), peer(1));
        assert_eq!(resp.status, 401);
    }

    #[test]
    fn stale_nonce_gets_stale_challenge() {
        let t0 = Instant::now();
        let mut r = registrar(t0);
        let (resp, _) = r.handle_register(t0, &request(&reg("alice", 1), None), peer(1));
        let ch = Challenge::parse(
            resp.headers
                .get(HeaderName::WwwAuthenticate)
                .unwrap()
                .as_str()
                .unwrap(),
        )
        .unwrap();
        let a = Authorization::answer(&ch, "alice", "secret", "REGISTER", "sip:hotline", "cn", 1);
        let later = t0 + Duration::from_secs(301);
        let (resp, _) = r.handle_register(
            later,
            &request(&reg("alice", 2), Some(a.to_string())),
            peer(1),
        );
        assert_eq!(resp.status, 401);
        let ch = Challenge::parse(
            resp.headers
                .get(HeaderName::WwwAuthenticate)
                .unwrap()
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert!(ch.stale);
        // Reusing the nonce with a higher count works while fresh; a replay is challenged.
        let a1 = Authorization::answer(&ch, "alice", "secret", "REGISTER", "sip:hotline", "cn", 1);
        let a2 = Authorization::answer(&ch, "alice", "secret", "REGISTER", "sip:hotline", "cn", 2);
        let ok = |r: &mut Registrar, cseq, a: &Authorization| {
            r.handle_register(
                later,
                &request(&reg("alice", cseq), Some(a.to_string())),
                peer(1),
            )
            .0
            .status
        };
        assert_eq!(ok(&mut r, 3, &a1), 200);
        assert_eq!(ok(&mut r, 4, &a2), 200);
        assert_eq!(ok(&mut r, 5, &a2), 401);
    }

    #[test]
    fn expiry_rules() {
        let t0 = Instant::now();
        let mut r = registrar(t0);
        let mut brief = reg("alice", 1);
        brief.expires = Some(30);
        let (resp, ev) = register(&mut r, t0, &brief, peer(1));
        assert_eq!(resp.status, 423);
        assert_eq!(
            resp.headers.get(HeaderName::MinExpires).unwrap().as_str(),
            Some("60")
        );
        assert!(ev.is_empty());
        // The contact parameter wins over the header; the maximum caps it.
        let mut long = reg("alice", 2);
        long.contacts = &["<sip:a@10.0.0.5>;expires=99999"];
        long.expires = Some(30);
        let (resp, _) = register(&mut r, t0, &long, peer(1));
        assert_eq!(resp.status, 200);
        assert_eq!(
            r.contacts("alice", t0)[0].expires_at,
            t0 + Duration::from_secs(3600)
        );
        assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(3600)));
        assert!(r.handle_timeout(t0 + Duration::from_secs(3599)).is_empty());
        assert_eq!(r.contacts("alice", t0 + Duration::from_secs(3600)).len(), 0);
        let ev = r.handle_timeout(t0 + Duration::from_secs(3600));
        assert!(matches!(&ev[..], [RegistrarEvent::Expired { user, .. }] if user == "alice"));
        assert!(r.snapshot(t0).is_empty());
        assert_eq!(r.poll_timeout(), None);
    }

    #[test]
    fn unregister_one_and_all() {
        let t0 = Instant::now();
        let mut r = registrar(t0);
        let mut two = reg("alice", 1);
        two.contacts = &["<sip:a@10.0.0.5>", "<sip:b@10.0.0.6>"];
        assert_eq!(register(&mut r, t0, &two, peer(1)).0.status, 200);
        assert_eq!(r.contacts("alice", t0).len(), 2);
        let mut one = reg("alice", 2);
        one.contacts = &["<sip:a@10.0.0.5>"];
        one.expires = Some(0);
        let (resp, ev) = register(&mut r, t0, &one, peer(1));
        assert_eq!(resp.status, 200);
        assert_eq!(resp.headers.count(HeaderName::Contact), 1);
        assert!(
            matches!(&ev[..], [RegistrarEvent::Unregistered { contact, .. }] if contact.to_string() == "sip:a@10.0.0.5")
        );
        // A REGISTER without Contact lists the bindings.
        let mut query = reg("alice", 3);
        query.contacts = &[];
        let (resp, ev) = register(&mut r, t0, &query, peer(1));
        assert_eq!(resp.status, 200);
        assert!(ev.is_empty());
        assert_eq!(
            resp.headers.get(HeaderName::Contact).unwrap().as_str(),
            Some("<sip:b@10.0.0.6>;expires=3600")
        );
        // `*` needs Expires: 0.
        let mut star = reg("alice", 4);
        star.contacts = &["*"];
        assert_eq!(register(&mut r, t0, &star, peer(1)).0.status, 400);
        star.cseq = 5;
        star.expires = Some(0);
        let (resp, ev) = register(&mut r, t0, &star, peer(1));
        assert_eq!(resp.status, 200);
        assert_eq!(ev.len(), 1);
        assert!(r.snapshot(t0).is_empty());
    }

    #[test]
    fn out_of_order_cseq_changes_nothing() {
        let t0 = Instant::now();
        let mut r = registrar(t0);
        assert_eq!(
            register(&mut r, t0, &reg("alice", 10), peer(1)).0.status,
            200
        );
        let mut old = reg("alice", 9);
        old.expires = Some(0);
        let (resp, ev) = register(&mut r, t0, &old, peer(1));
        assert_eq!(resp.status, 500);
        assert!(ev.is_empty());
        assert_eq!(r.contacts("alice", t0).len(), 1);
        // Another Call-ID (the phone rebooted) may use any CSeq.
        let mut rebooted = reg("alice", 1);
        rebooted.call_id = "c2";
        rebooted.expires = Some(0);
        assert_eq!(register(&mut r, t0, &rebooted, peer(1)).0.status, 200);
        assert!(r.contacts("alice", t0).is_empty());
    }

    #[test]
    fn contact_limit_drops_the_stalest() {
        let t0 = Instant::now();
        let mut r = registrar(t0);
        for (i, c) in ["<sip:a@10.0.0.1>", "<sip:b@10.0.0.2>", "<sip:c@10.0.0.3>"]
            .iter()
            .enumerate()
        {
            let mut x = reg("alice", 1);
            x.call_id = ["c1", "c2", "c3"][i];
            x.contacts = std::slice::from_ref(c);
            let (resp, ev) = register(&mut r, t0 + Duration::from_secs(i as u64), &x, peer(1));
            assert_eq!(resp.status, 200);
            if i == 2 {
                assert!(
                    matches!(&ev[1], RegistrarEvent::Unregistered { contact, .. } if contact.to_string() == "sip:a@10.0.0.1")
                );
            }
        }
        let users: Vec<String> = r
            .contacts("alice", t0)
            .iter()
            .map(|b| b.contact.to_string())
            .collect();
        assert_eq!(users, ["sip:c@10.0.0.3", "sip:b@10.0.0.2"]);
    }

    #[test]
    fn service_publishes_view_and_events() {
        let t0 = Instant::now();
        let creds = Credentials::new().with("alice", Secret::Password("secret".into()));
        let mut s = RegistrarService::new(
            RegistrarConfig {
                credentials: Arc::new(creds),
                ..RegistrarConfig::default()
            },
            KEY,
            t0,
        );
        let view = s.registrations();
        let mut rx = s.events().subscribe();
        let r = reg("alice", 1);
        let resp = s.handle_register(t0, &request(&r, None), peer(1));
        let ch = Challenge::parse(
            resp.headers
                .get(HeaderName::WwwAuthenticate)
                .unwrap()
                .as_str()
                .unwrap(),
        )
        .unwrap();
        let a = Authorization::answer(&ch, "alice", "secret", "REGISTER", "sip:hotline", "cn", 1);
        let resp = s.handle_register(t0, &request(&r, Some(a.to_string())), peer(1));
        assert_eq!(resp.status, 200);
        assert!(view.is_registered("alice", t0));
        assert!(matches!(
            rx.try_recv(),
            Ok(RegistrarEvent::Registered { .. })
        ));
        s.handle_timeout(t0 + Duration::from_secs(3600));
        assert!(!view.is_registered("alice", t0));
        assert!(view.snapshot(t0).is_empty());
        assert!(matches!(rx.try_recv(), Ok(RegistrarEvent::Expired { .. })));
        assert!(
            format!(
                "{creds:?}",
                creds = Credentials::new().with("x", Secret::Password("p".into()))
            )
            .contains("\"x\"")
        );
    }

    fn offered(resp: &Response) -> Vec<Algorithm> {
        resp.headers
            .get_all(HeaderName::WwwAuthenticate)
            .map(|v| Challenge::parse(v.as_str().unwrap()).unwrap().algorithm)
            .collect()
    }

    fn with_agent(mut req: Request, ua: &str) -> Request {
        req.headers.push(HeaderName::UserAgent, ua);
        req
    }

    /// Answers the challenge in `resp` that uses `alg`.
    fn answer(resp: &Response, alg: Algorithm, password: &str) -> String {
        let ch = resp
            .headers
            .get_all(HeaderName::WwwAuthenticate)
            .map(|v| Challenge::parse(v.as_str().unwrap()).unwrap())
            .find(|c| c.algorithm == alg)
            .unwrap();
        Authorization::answer(&ch, "alice", password, "REGISTER", "sip:hotline", "cn", 1)
            .to_string()
    }

    #[test]
    fn a_phone_that_ignores_the_first_challenge_is_offered_the_next_algorithm() {
        let t0 = Instant::now();
        let mut r = registrar(t0);
        let old = "baresip v1.0.0 (x86_64/linux)";
        let send = |r: &mut Registrar, cseq: u32, auth: Option<String>, call_id: &str| {
            let mut x = reg("alice", cseq);
            x.call_id = call_id;
            r.handle_register(t0, &with_agent(request(&x, auth), old), peer(7))
                .0
        };
        let first = send(&mut r, 1, None, "c1");
        assert_eq!(offered(&first), [Algorithm::Sha256, Algorithm::Md5]);
        assert_eq!(r.poll_failure(), None);
        // A retransmission (same CSeq) is not a sign of anything.
        let again = send(&mut r, 1, None, "c1");
        assert_eq!(offered(&again), [Algorithm::Sha256, Algorithm::Md5]);
        // A new REGISTER instead of an answer: the phone could not use SHA-256.
        let second = send(&mut r, 2, None, "c1");
        assert_eq!(offered(&second), [Algorithm::Md5]);
        let f = r.poll_failure().unwrap();
        assert_eq!(f.reason, FailureReason::NoAnswer);
        assert_eq!(
            (f.user.as_str(), f.next_offer.as_slice()),
            ("alice", &[Algorithm::Md5][..])
        );
        let ok = send(
            &mut r,
            3,
            Some(answer(&second, Algorithm::Md5, "secret")),
            "c1",
        );
        assert_eq!(ok.status, 200);
        // Its refreshes come without an answer (the phone forgets its nonce): MD5 at once.
        assert_eq!(offered(&send(&mut r, 4, None, "c1")), [Algorithm::Md5]);
        // The same make restarted (new Call-ID) is challenged the way it can answer.
        assert_eq!(offered(&send(&mut r, 1, None, "c2")), [Algorithm::Md5]);
        // Other phones still get SHA-256 first.
        let mut other = reg("alice", 1);
        other.call_id = "c3";
        let (other, _) = r.handle_register(t0, &request(&other, None), peer(8));
        assert_eq!(offered(&other), [Algorithm::Sha256, Algorithm::Md5]);
        // A phone that never answers cycles through the offers instead of being locked out.
        let mut x = reg("alice", 1);
        x.call_id = "silent";
        let offers: Vec<Vec<Algorithm>> = (1..=3)
            .map(|c| {
                x.cseq = c;
                offered(&r.handle_register(t0, &request(&x, None), peer(9)).0)
            })
            .collect();
        assert_eq!(
            offers,
            [
                vec![Algorithm::Sha256, Algorithm::Md5],
                vec![Algorithm::Md5],
                vec![Algorithm::Sha256, Algorithm::Md5]
            ]
        );
    }

    #[test]
    fn a_phone_that_answers_sha256_keeps_being_offered_it_first() {
        let t0 = Instant::now();
        let mut r = registrar(t0);
        let (resp, _) = register(&mut r, t0, &reg("alice", 1), peer(1));
        assert_eq!(resp.status, 200);
        // A refresh without an answer, then another REGISTER: SHA-256 stays first, since
        // the phone proved it answers SHA-256.
        let (resp, _) = r.handle_register(t0, &request(&reg("alice", 3), None), peer(1));
        assert_eq!(offered(&resp), [Algorithm::Sha256, Algorithm::Md5]);
        let (resp, _) = r.handle_register(t0, &request(&reg("alice", 4), None), peer(1));
        assert_eq!(offered(&resp), [Algorithm::Sha256, Algorithm::Md5]);
    }

    #[test]
    fn failed_logins_are_reported_with_their_reason_once_a_minute() {
        let t0 = Instant::now();
        let mut r = registrar(t0);
        let mut bad = reg("alice", 1);
        bad.password = "guess";
        assert_eq!(register(&mut r, t0, &bad, peer(1)).0.status, 403);
        let f = r.poll_failure().unwrap();
        assert_eq!(
            (f.user.as_str(), f.reason, f.algorithm, f.held_back),
            (
                "alice",
                FailureReason::WrongPassword,
                Some(Algorithm::Sha256),
                0
            )
        );
        assert_eq!(f.source, peer(1));
        assert!(!format!("{f:?}").contains("guess"));
        // The phone retries: held back, then counted in the next report.
        for s in 2..5 {
            bad.cseq = s;
            register(&mut r, t0 + Duration::from_secs(s.into()), &bad, peer(1));
        }
        assert_eq!(r.poll_failure(), None);
        bad.cseq = 9;
        register(&mut r, t0 + Duration::from_secs(61), &bad, peer(1));
        assert_eq!(r.poll_failure().unwrap().held_back, 3);
        assert_eq!(
            register(&mut r, t0, &reg("mallory", 1), peer(1)).0.status,
            403
        );
        assert_eq!(r.poll_failure().unwrap().reason, FailureReason::UnknownUser);
        // Bob has only a SHA-256 hash of his password.
        let mut md5 = reg("bob", 1);
        md5.alg = Algorithm::Md5;
        assert_eq!(register(&mut r, t0, &md5, peer(1)).0.status, 403);
        assert_eq!(
            r.poll_failure().unwrap().reason,
            FailureReason::UnsupportedAlgorithm
        );
        // An algorithm that is not offered.
        r.cfg.algorithms = vec![Algorithm::Sha256];
        let mut sha = reg("alice", 20);
        sha.call_id = "c9";
        let (resp, _) = r.handle_register(t0, &request(&sha, None), peer(2));
        let mut ch = Challenge::parse(
            resp.headers
                .get(HeaderName::WwwAuthenticate)
                .unwrap()
                .as_str()
                .unwrap(),
        )
        .unwrap();
        ch.algorithm = Algorithm::Md5;
        let a = Authorization::answer(&ch, "alice", "secret", "REGISTER", "sip:hotline", "cn", 1);
        sha.cseq = 21;
        let (resp, _) = r.handle_register(t0, &request(&sha, Some(a.to_string())), peer(2));
        assert_eq!(resp.status, 401);
        let f = r.poll_failure().unwrap();
        assert_eq!(
            (f.reason, f.algorithm),
            (FailureReason::UnsupportedAlgorithm, Some(Algorithm::Md5))
        );
        // A stale nonce is reported too; the right answer to it then succeeds.
        let (resp, _) = r.handle_register(t0, &request(&reg("alice", 30), None), peer(3));
        let a = answer(&resp, Algorithm::Sha256, "secret");
        let later = t0 + Duration::from_secs(301);
        let (resp, _) = r.handle_register(later, &request(&reg("alice", 31), Some(a)), peer(3));
        assert_eq!(resp.status, 401);
        assert_eq!(r.poll_failure().unwrap().reason, FailureReason::StaleNonce);
        let a = answer(&resp, Algorithm::Sha256, "secret");
        let (resp, _) = r.handle_register(later, &request(&reg("alice", 32), Some(a)), peer(3));
        assert_eq!(resp.status, 200);
        assert_eq!(r.poll_failure(), None);
    }
}
