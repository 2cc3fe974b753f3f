//! HTTP digest authentication as SIP uses it (RFC 3261 §22, RFC 7616, RFC 8760): parsing
//! `Authorization` and `WWW-Authenticate` values, building challenges, stateless nonces and
//! checking a phone's answer against a password or a stored HA1.
//!
//! Supported: MD5 and SHA-256 (and their `-sess` forms), `qop=auth`, and for MD5 the
//! RFC 2069 answer without qop that old phones still send. Not supported: `auth-int`,
//! `userhash`, SHA-512-256 (none of which we offer).
//!
//! Nonces are stateless: issue time, a sequence number and an HMAC over both and the realm,
//! under a key that lives as long as the process. The only state is a bounded map of the
//! highest nonce-count seen per nonce, which stops a captured answer from being replayed.
//!
//! Pure: no clock (time comes in as seconds since an epoch the caller picks), no sockets,
//! no randomness. It knows nothing of users beyond the [`Secret`] it is handed.

use std::collections::BTreeMap;
use std::fmt;

use hmac::{KeyInit, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::sip::message::Uri;

/// A digest value we could not accept. Each message says what was expected and found.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DigestError {
    #[error("the header value is not UTF-8")]
    NotUtf8,
    #[error("expected the Digest scheme, found '{0}'")]
    UnsupportedScheme(String),
    #[error("expected {expected} at byte {at}, found '{found}'")]
    Syntax {
        expected: &'static str,
        at: usize,
        found: String,
    },
    #[error("the parameter '{0}' appears more than once")]
    DuplicateParam(String),
    #[error("expected at most {0} parameters")]
    TooManyParams(usize),
    #[error("the parameter '{0}' is missing")]
    MissingParam(&'static str),
    #[error("expected {expected} for '{name}', found '{found}'")]
    BadParam {
        name: &'static str,
        expected: &'static str,
        found: String,
    },
    #[error("expected algorithm MD5, MD5-sess, SHA-256 or SHA-256-sess, found '{0}'")]
    UnsupportedAlgorithm(String),
    #[error("expected qop 'auth', found '{0}'")]
    UnsupportedQop(String),
    #[error("expected a hex HA1 of {expected} digits, found {found} characters")]
    BadHa1 { expected: usize, found: usize },
}

/// A digest hash algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
}

impl Algorithm {
    /// The token on the wire (`MD5`, `SHA-256-sess`...).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    /// Reads an algorithm token (case-insensitive).
    pub fn parse(s: &str) -> Result<Algorithm, DigestError> {
        [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
        ]
        .into_iter()
        .find(|a| a.as_str().eq_ignore_ascii_case(s))
        .ok_or_else(|| DigestError::UnsupportedAlgorithm(snippet(s)))
    }

    /// The same hash without the session variant.
    pub fn base(self) -> Algorithm {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => Algorithm::Md5,
            Algorithm::Sha256 | Algorithm::Sha256Sess => Algorithm::Sha256,
        }
    }

    fn is_sess(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    /// Length of a hash in hex digits.
    pub fn hex_len(self) -> usize {
        match self.base() {
            Algorithm::Sha256 | Algorithm::Sha256Sess => 64,
            Algorithm::Md5 | Algorithm::Md5Sess => 32,
        }
    }

    /// The lower-case hex hash of `data`.
    pub fn hash_hex(self, data: &[u8]) -> String {
        match self.base() {
            Algorithm::Sha256 | Algorithm::Sha256Sess => hex::encode(Sha256::digest(data)),
            Algorithm::Md5 | Algorithm::Md5Sess => hex::encode(Md5::digest(data)),
        }
    }

    /// H(username:realm:password), the value a hashed secret stores.
    pub fn ha1(self, username: &str, realm: &str, password: &str) -> String {
        self.hash_hex(format!("{username}:{realm}:{password}").as_bytes())
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What we know of a user's password: the password itself, or only HA1 values
/// (H(user:realm:password)) per hash, so the configuration need not hold the password.
/// An HA1 is tied to the realm it was computed with.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Password(String),
    Hashed {
        /// Lower-case hex MD5 HA1.
        ha1_md5: Option<String>,
        /// Lower-case hex SHA-256 HA1.
        ha1_sha256: Option<String>,
    },
}

impl Secret {
    /// A hashed secret; each HA1 must be hex of the right length (any case).
    pub fn hashed(ha1_md5: Option<&str>, ha1_sha256: Option<&str>) -> Result<Secret, DigestError> {
        let check = |v: Option<&str>, len: usize| -> Result<Option<String>, DigestError> {
            v.map(|s| {
                let s = s.trim();
                if s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()) {
                    Ok(s.to_ascii_lowercase())
                } else {
                    Err(DigestError::BadHa1 {
                        expected: len,
                        found: s.len(),
                    })
                }
            })
            .transpose()
        };
        Ok(Secret::Hashed {
            ha1_md5: check(ha1_md5, 32)?,
            ha1_sha256: check(ha1_sha256, 64)?,
        })
    }

    /// The HA1 for `algorithm`'s hash, if this secret can give one.
    pub fn ha1(&self, algorithm: Algorithm, username: &str, realm: &str) -> Option<String> {
        match self {
            Secret::Password(p) => Some(algorithm.base().ha1(username, realm, p)),
            Secret::Hashed {
                ha1_md5,
                ha1_sha256,
            } => match algorithm.base() {
                Algorithm::Sha256 | Algorithm::Sha256Sess => ha1_sha256.clone(),
                Algorithm::Md5 | Algorithm::Md5Sess => ha1_md5.clone(),
            },
        }
    }
}

impl fmt::Debug for Secret {
    /// Never prints a secret, only its kind.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Password(_) => f.write_str("Password(..)"),
            Secret::Hashed {
                ha1_md5,
                ha1_sha256,
            } => write!(
                f,
                "Hashed {{ md5: {}, sha256: {} }}",
                ha1_md5.is_some(),
                ha1_sha256.is_some()
            ),
        }
    }
}

// ---------------------------------------------------------------- auth-param lists

/// Most parameters one value may carry; a real one has about a dozen.
const MAX_PARAMS: usize = 32;

fn snippet(s: &str) -> String {
    s.chars().take(40).collect()
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Splits `Digest name=value, name="quoted", ...` into the scheme and lower-cased names
/// with unquoted values. Repeated names are refused (which one would count is ambiguous).
pub fn parse_auth_params(value: &str) -> Result<(String, Vec<(String, String)>), DigestError> {
    let b = value.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while matches!(b.get(*i), Some(b' ' | b'\t')) {
            *i += 1;
        }
    };
    let syntax = |expected: &'static str, at: usize| DigestError::Syntax {
        expected,
        at,
        found: snippet(value.get(at..).unwrap_or_default()),
    };
    skip_ws(&mut i);
    let start = i;
    while b.get(i).is_some_and(|&c| is_token_byte(c)) {
        i += 1;
    }
    let scheme = value.get(start..i).unwrap_or_default().to_string();
    if scheme.is_empty() {
        return Err(syntax("an authentication scheme", i));
    }
    if !matches!(b.get(i), Some(b' ' | b'\t')) {
        return Err(syntax("a space after the scheme", i));
    }
    let mut params: Vec<(String, String)> = Vec::new();
    loop {
        // Empty list elements (", ,") are allowed by the list syntax.
        skip_ws(&mut i);
        while b.get(i) == Some(&b',') {
            i += 1;
            skip_ws(&mut i);
        }
        if i >= b.len() {
            break;
        }
        let name_start = i;
        while b.get(i).is_some_and(|&c| is_token_byte(c)) {
            i += 1;
        }
        if i == name_start {
            return Err(syntax("a parameter name", i));
        }
        let name = value
            .get(name_start..i)
            .unwrap_or_default()
            .to_ascii_lowercase();
        skip_ws(&mut i);
        if b.get(i) != Some(&b'=') {
            return Err(syntax("'=' after the parameter name", i));
        }
        i += 1;
        skip_ws(&mut i);
        let val = if b.get(i) == Some(&b'"') {
            i += 1;
            let mut out = Vec::new();
            loop {
                match b.get(i) {
                    None => return Err(syntax("a closing '\"'", i)),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => match b.get(i + 1) {
                        Some(&c) => {
                            out.push(c);
                            i += 2;
                        }
                        None => return Err(syntax("a character after '\\'", i)),
                    },
                    Some(&c) => {
                        out.push(c);
                        i += 1;
                    }
                }
            }
            // Escapes only ever remove ASCII backslashes, so this stays UTF-8.
            String::from_utf8(out).map_err(|_| DigestError::NotUtf8)?
        } else {
            // Tokens, but leniently: some phones send `uri=sip:...` unquoted.
            let vs = i;
            while b
                .get(i)
                .is_some_and(|&c| !matches!(c, b',' | b' ' | b'\t' | b'"'))
            {
                i += 1;
            }
            if i == vs {
                return Err(syntax("a token or quoted string", i));
            }
            value.get(vs..i).unwrap_or_default().to_string()
        };
        if params.iter().any(|(n, _)| *n == name) {
            return Err(DigestError::DuplicateParam(name));
        }
        if params.len() >= MAX_PARAMS {
            return Err(DigestError::TooManyParams(MAX_PARAMS));
        }
        params.push((name, val));
        skip_ws(&mut i);
        match b.get(i) {
            None => break,
            Some(b',') => i += 1,
            Some(_) => return Err(syntax("',' between parameters", i)),
        }
    }
    if params.is_empty() {
        return Err(DigestError::MissingParam("realm"));
    }
    Ok((scheme, params))
}

fn digest_params(value: &str) -> Result<Vec<(String, String)>, DigestError> {
    let (scheme, params) = parse_auth_params(value)?;
    if !scheme.eq_ignore_ascii_case("digest") {
        return Err(DigestError::UnsupportedScheme(snippet(&scheme)));
    }
    Ok(params)
}

fn get<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn required<'a>(
    params: &'a [(String, String)],
    name: &'static str,
) -> Result<&'a str, DigestError> {
    get(params, name).ok_or(DigestError::MissingParam(name))
}

/// Writes `s` as a quoted string, escaping `"` and `\`.
fn write_quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        if c == '"' || c == '\\' {
            f.write_str("\\")?;
        }
        write!(f, "{c}")?;
    }
    f.write_str("\"")
}

// ---------------------------------------------------------------- challenges

/// A `WWW-Authenticate: Digest ...` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub algorithm: Algorithm,
    /// Whether `qop="auth"` is offered.
    pub qop_auth: bool,
    /// The previous answer was right but its nonce had expired: answer again, no need to
    /// ask the user.
    pub stale: bool,
    pub opaque: Option<String>,
}

impl Challenge {
    /// Reads a challenge (for clients and tests). `auth-int`-only challenges are refused.
    pub fn parse(value: &str) -> Result<Challenge, DigestError> {
        let p = digest_params(value)?;
        let algorithm = get(&p, "algorithm")
            .map(Algorithm::parse)
            .transpose()?
            .unwrap_or(Algorithm::Md5);
        let qop_auth = match get(&p, "qop") {
            None => false,
            Some(list) => {
                if !list
                    .split(',')
                    .any(|q| q.trim().eq_ignore_ascii_case("auth"))
                {
                    return Err(DigestError::UnsupportedQop(snippet(list)));
                }
                true
            }
        };
        Ok(Challenge {
            realm: required(&p, "realm")?.to_string(),
            nonce: required(&p, "nonce")?.to_string(),
            algorithm,
            qop_auth,
            stale: get(&p, "stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
            opaque: get(&p, "opaque").map(str::to_string),
        })
    }
}

impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digest realm=")?;
        write_quoted(f, &self.realm)?;
        f.write_str(", nonce=")?;
        write_quoted(f, &self.nonce)?;
        if let Some(o) = &self.opaque {
            f.write_str(", opaque=")?;
            write_quoted(f, o)?;
        }
        write!(f, ", algorithm={}", self.algorithm)?;
        if self.qop_auth {
            f.write_str(", qop=\"auth\"")?;
        }
        if self.stale {
            f.write_str(", stale=true")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- answers

/// An `Authorization: Digest ...` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    /// The digest-uri, as sent (it enters the hash as is).
    pub uri: String,
    /// Lower-case hex.
    pub response: String,
    pub algorithm: Algorithm,
    /// `qop=auth` was used; then `nc` and `cnonce` are present.
    pub qop_auth: bool,
    /// The nonce-count as sent (8 hex digits; it enters the hash as is).
    pub nc: Option<String>,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
}

impl Authorization {
    /// Reads an `Authorization` value.
    pub fn parse(value: &str) -> Result<Authorization, DigestError> {
        let p = digest_params(value)?;
        let algorithm = get(&p, "algorithm")
            .map(Algorithm::parse)
            .transpose()?
            .unwrap_or(Algorithm::Md5);
        if get(&p, "userhash").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Err(DigestError::BadParam {
                name: "userhash",
                expected: "false (hashed user names are not offered)",
                found: "true".into(),
            });
        }
        let response = required(&p, "response")?;
        if response.len() != algorithm.hex_len() || !response.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(DigestError::BadParam {
                name: "response",
                expected: "hex digits as long as the algorithm's hash",
                found: snippet(response),
            });
        }
        let qop_auth = match get(&p, "qop") {
            None => false,
            Some(q) if q.eq_ignore_ascii_case("auth") => true,
            Some(q) => return Err(DigestError::UnsupportedQop(snippet(q))),
        };
        let (nc, cnonce) = if qop_auth {
            let nc = required(&p, "nc")?;
            if nc.len() != 8 || !nc.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(DigestError::BadParam {
                    name: "nc",
                    expected: "8 hex digits",
                    found: snippet(nc),
                });
            }
            let cnonce = required(&p, "cnonce")?;
            if cnonce.is_empty() {
                return Err(DigestError::BadParam {
                    name: "cnonce",
                    expected: "a non-empty value",
                    found: String::new(),
                });
            }
            (Some(nc.to_string()), Some(cnonce.to_string()))
        } else {
            if algorithm.is_sess() {
                return Err(DigestError::MissingParam("cnonce"));
            }
            (None, None)
        };
        Ok(Authorization {
            username: required(&p, "username")?.to_string(),
            realm: required(&p, "realm")?.to_string(),
            nonce: required(&p, "nonce")?.to_string(),
            uri: required(&p, "uri")?.to_string(),
            response: response.to_ascii_lowercase(),
            algorithm,
            qop_auth,
            nc,
            cnonce,
            opaque: get(&p, "opaque").map(str::to_string),
        })
    }

    /// The nonce-count as a number (`None` without qop).
    pub fn nc_value(&self) -> Option<u32> {
        self.nc
            .as_deref()
            .and_then(|s| u32::from_str_radix(s, 16).ok())
    }

    /// Builds the answer a client gives to `challenge` (for tests and outgoing requests):
    /// qop=auth when offered, with `cnonce` and `nc`.
    pub fn answer(
        challenge: &Challenge,
        username: &str,
        password: &str,
        method: &str,
        uri: &str,
        cnonce: &str,
        nc: u32,
    ) -> Authorization {
        let mut a = Authorization {
            username: username.to_string(),
            realm: challenge.realm.clone(),
            nonce: challenge.nonce.clone(),
            uri: uri.to_string(),
            response: String::new(),
            algorithm: challenge.algorithm,
            qop_auth: challenge.qop_auth,
            nc: challenge.qop_auth.then(|| format!("{nc:08x}")),
            cnonce: (challenge.qop_auth || challenge.algorithm.is_sess())
                .then(|| cnonce.to_string()),
            opaque: challenge.opaque.clone(),
        };
        let ha1 = a.algorithm.base().ha1(username, &a.realm, password);
        a.response = expected_response(&a, &ha1, method);
        a
    }
}

impl fmt::Display for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digest username=")?;
        write_quoted(f, &self.username)?;
        f.write_str(", realm=")?;
        write_quoted(f, &self.realm)?;
        f.write_str(", nonce=")?;
        write_quoted(f, &self.nonce)?;
        f.write_str(", uri=")?;
        write_quoted(f, &self.uri)?;
        write!(
            f,
            ", response=\"{}\", algorithm={}",
            self.response, self.algorithm
        )?;
        if let Some(c) = &self.cnonce {
            f.write_str(", cnonce=")?;
            write_quoted(f, c)?;
        }
        if let Some(o) = &self.opaque {
            f.write_str(", opaque=")?;
            write_quoted(f, o)?;
        }
        if self.qop_auth {
            f.write_str(", qop=auth")?;
            if let Some(nc) = &self.nc {
                write!(f, ", nc={nc}")?;
            }
        }
        Ok(())
    }
}

/// The response the answer must carry, given the user's HA1 (RFC 7616 §3.4.1, §3.4.2;
/// RFC 2069 without qop).
fn expected_response(a: &Authorization, ha1: &str, method: &str) -> String {
    let alg = a.algorithm;
    let cnonce = a.cnonce.as_deref().unwrap_or_default();
    let ha1 = if alg.is_sess() {
        alg.hash_hex(format!("{ha1}:{}:{cnonce}", a.nonce).as_bytes())
    } else {
        ha1.to_string()
    };
    let ha2 = alg.hash_hex(format!("{method}:{}", a.uri).as_bytes());
    let data = if a.qop_auth {
        format!(
            "{ha1}:{}:{}:{cnonce}:auth:{ha2}",
            a.nonce,
            a.nc.as_deref().unwrap_or_default()
        )
    } else {
        format!("{ha1}:{}:{ha2}", a.nonce)
    };
    alg.hash_hex(data.as_bytes())
}

/// Equal-length comparison whose time does not depend on where the inputs differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

// ---------------------------------------------------------------- the verifier

/// Settings of [`DigestAuth`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonceConfig {
    /// A nonce older than this (seconds) is stale: a right answer gets `stale=true`.
    pub lifetime_secs: u64,
    /// Nonces whose nonce-count is tracked at most; beyond that the oldest are forgotten
    /// and count as stale from then on (never as fresh, so no replay window opens).
    pub max_tracked: usize,
}

impl Default for NonceConfig {
    fn default() -> Self {
        NonceConfig {
            lifetime_secs: 300,
            max_tracked: 10_000,
        }
    }
}

/// What a 401 offers unless configured otherwise: SHA-256 first, MD5 for older phones.
pub const DEFAULT_ALGORITHMS: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Md5];

/// What [`DigestAuth::verify`] concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The user proved the password.
    Authenticated,
    /// The nonce is too old (or forgotten): challenge again with `stale=true`, whether the
    /// answer was `right` or not, so that an old nonce does not test passwords. `right`
    /// is for the log and the guard only.
    Stale { right: bool },
    /// The nonce is not ours (another process, forged, another realm): challenge again.
    BadNonce,
    /// The nonce-count did not go up, or the nonce was used up by a wrong answer: a
    /// replayed answer, whatever it says. Challenge again.
    Replayed,
    /// Wrong password, unknown user, or no HA1 for the algorithm used.
    Forbidden,
    /// The digest-uri does not name the Request-URI (400).
    UriMismatch,
}

/// The nonce-count recorded for a nonce a wrong answer used up: no count goes above it.
const USED_UP: u32 = u32::MAX;

/// Nonce id: issue time in the high 64 bits, sequence number in the low ones, so ids grow
/// in issue order.
type NonceId = u128;

/// Digest verification for one realm: issues challenges and checks answers.
#[derive(Clone)]
pub struct DigestAuth {
    realm: String,
    key: [u8; 32],
    cfg: NonceConfig,
    seq: u64,
    /// Highest nonce-count seen per used nonce.
    seen: BTreeMap<NonceId, u32>,
    /// Nonces at or below this id were forgotten; they count as stale.
    forgotten_up_to: Option<NonceId>,
}

impl fmt::Debug for DigestAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestAuth")
            .field("realm", &self.realm)
            .field("cfg", &self.cfg)
            .field("tracked", &self.seen.len())
            .finish_non_exhaustive()
    }
}

enum NonceState {
    Fresh(NonceId),
    Stale,
    Invalid,
}

impl DigestAuth {
    /// `key` signs the nonces; a random one per process means nonces do not survive a
    /// restart (phones are simply challenged again).
    pub fn new(realm: &str, key: [u8; 32], cfg: NonceConfig) -> DigestAuth {
        DigestAuth {
            realm: realm.to_string(),
            key,
            cfg,
            seq: 0,
            seen: BTreeMap::new(),
            forgotten_up_to: None,
        }
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    fn mac(&self, id: NonceId) -> [u8; 16] {
        let mut out = [0u8; 16];
        // HMAC takes keys of any length, so this cannot fail.
        if let Ok(mut m) = hmac::Hmac::<Sha256>::new_from_slice(&self.key) {
            m.update(&id.to_be_bytes());
            m.update(self.realm.as_bytes());
            let full = m.finalize().into_bytes();
            for (o, b) in out.iter_mut().zip(full.iter()) {
                *o = *b;
            }
        }
        out
    }

    /// A new nonce issued at `now` (seconds since the caller's epoch).
    pub fn nonce(&mut self, now: u64) -> String {
        self.seq = self.seq.wrapping_add(1);
        let id = (u128::from(now) << 64) | u128::from(self.seq);
        let mut s = hex::encode(id.to_be_bytes());
        s.push_str(&hex::encode(self.mac(id)));
        s
    }

    /// The challenges for a 401, one per algorithm in the order given (strongest first,
    /// RFC 8760 §2.4), all with one fresh nonce and `qop="auth"`.
    pub fn challenges(
        &mut self,
        now: u64,
        stale: bool,
        algorithms: &[Algorithm],
    ) -> Vec<Challenge> {
        let nonce = self.nonce(now);
        algorithms
            .iter()
            .map(|&algorithm| Challenge {
                realm: self.realm.clone(),
                nonce: nonce.clone(),
                algorithm,
                qop_auth: true,
                stale,
                opaque: None,
            })
            .collect()
    }

    fn check_nonce(&self, nonce: &str, now: u64) -> NonceState {
        if nonce.len() != 64 {
            return NonceState::Invalid;
        }
        let (Some(id_hex), Some(mac_hex)) = (nonce.get(..32), nonce.get(32..)) else {
            return NonceState::Invalid;
        };
        let Ok(id) = u128::from_str_radix(id_hex, 16) else {
            return NonceState::Invalid;
        };
        let Ok(mac) = hex::decode(mac_hex) else {
            return NonceState::Invalid;
        };
        if !ct_eq(&mac, &self.mac(id)) {
            return NonceState::Invalid;
        }
        let issued = (id >> 64) as u64;
        if issued > now {
            return NonceState::Invalid;
        }
        if now - issued > self.cfg.lifetime_secs || self.forgotten_up_to.is_some_and(|f| id <= f) {
            return NonceState::Stale;
        }
        NonceState::Fresh(id)
    }

    /// Checks `auth` for a request with `method` and `request_uri` at `now`, for a user
    /// whose secret is `secret` (`None`: unknown user; the work done is the same, so the
    /// answer's timing does not tell). A success records the nonce-count.
    pub fn verify(
        &mut self,
        now: u64,
        method: &str,
        request_uri: &Uri,
        auth: &Authorization,
        secret: Option<&Secret>,
    ) -> Verdict {
        if auth.realm != self.realm {
            return Verdict::BadNonce;
        }
        let state = self.check_nonce(&auth.nonce, now);
        if matches!(state, NonceState::Invalid) {
            return Verdict::BadNonce;
        }
        if !same_target(&auth.uri, request_uri) {
            return Verdict::UriMismatch;
        }
        // RFC 7616 makes qop mandatory; only MD5 keeps the RFC 2069 form for old phones.
        if !auth.qop_auth && auth.algorithm != Algorithm::Md5 {
            return Verdict::Forbidden;
        }
        let ha1 = secret.and_then(|s| s.ha1(auth.algorithm, &auth.username, &self.realm));
        let known = ha1.is_some();
        let ha1 = ha1.unwrap_or_else(|| auth.algorithm.base().hash_hex(b"no such user"));
        let expected = expected_response(auth, &ha1, method);
        // The same work for every answer; only then does the nonce decide what is said.
        let right = ct_eq(expected.as_bytes(), auth.response.as_bytes()) && known;
        let id = match state {
            NonceState::Fresh(id) => id,
            NonceState::Stale | NonceState::Invalid => return Verdict::Stale { right },
        };
        if self.seen.get(&id) == Some(&USED_UP) {
            return Verdict::Replayed;
        }
        if !right {
            // One guess per nonce: the next one costs a new challenge.
            self.record(id, USED_UP, now);
            return Verdict::Forbidden;
        }
        if auth.qop_auth {
            let Some(nc) = auth.nc_value() else {
                return Verdict::Forbidden;
            };
            match self.seen.get(&id) {
                Some(&high) if nc <= high => return Verdict::Replayed,
                _ => self.record(id, nc, now),
            }
        }
        Verdict::Authenticated
    }

    fn record(&mut self, id: NonceId, nc: u32, now: u64) {
        // Entries for nonces past their lifetime are stale anyway: drop them.
        let oldest_live = u128::from(now.saturating_sub(self.cfg.lifetime_secs)) << 64;
        self.seen = self.seen.split_off(&oldest_live);
        self.seen.insert(id, nc);
        while self.seen.len() > self.cfg.max_tracked.max(1) {
            if let Some((old, _)) = self.seen.pop_first() {
                self.forgotten_up_to = Some(self.forgotten_up_to.map_or(old, |f| f.max(old)));
            }
        }
    }

    /// Number of nonces whose count is tracked (for tests and stats).
    pub fn tracked(&self) -> usize {
        self.seen.len()
    }
}

/// Whether the digest-uri names the same resource as the Request-URI: same scheme, user,
/// host and port (parameters are ignored, as phones print them differently).
fn same_target(digest_uri: &str, request_uri: &Uri) -> bool {
    let Ok(d) = Uri::parse(digest_uri) else {
        return false;
    };
    match (d.as_sip(), request_uri.as_sip()) {
        (Some(a), Some(b)) => {
            a.secure == b.secure
                && a.user == b.user
                && a.host.to_string().eq_ignore_ascii_case(&b.host.to_string())
                && a.port == b.port
        }
        _ => d.to_string() == request_uri.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    fn two(v: Vec<Challenge>) -> [Challenge; 2] {
        v.try_into().unwrap()
    }

    fn uri(s: &str) -> Uri {
        Uri::parse(s).unwrap()
    }

    /// RFC 7616 §3.9.1, both answers (values checked with Python's hashlib).
    #[test]
    fn rfc7616_example() {
        for (alg, expected) in [
            (
                Algorithm::Sha256,
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
            (Algorithm::Md5, "8ca523f5e9506fed4657c9700eebdbec"),
        ] {
            let ch = Challenge {
                realm: "http-auth@example.org".into(),
                nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v".into(),
                algorithm: alg,
                qop_auth: true,
                stale: false,
                opaque: Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS".into()),
            };
            let a = Authorization::answer(
                &ch,
                "Mufasa",
                "Circle of Life",
                "GET",
                "/dir/index.html",
                "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
                1,
            );
            assert_eq!(a.response, expected);
            // The printed answer reads back the same.
            assert_eq!(Authorization::parse(&a.to_string()).unwrap(), a);
        }
    }

    /// RFC 2069 answer (no qop) and MD5-sess, vectors from Python's hashlib:
    /// md5(md5("alice:hotline:secret") + ":abc:" + md5("REGISTER:sip:hotline")) and
    /// the -sess form with cnonce "xyz", nc 00000001.
    #[test]
    fn legacy_and_sess_vectors() {
        let mut a = Authorization {
            username: "alice".into(),
            realm: "hotline".into(),
            nonce: "abc".into(),
            uri: "sip:hotline".into(),
            response: String::new(),
            algorithm: Algorithm::Md5,
            qop_auth: false,
            nc: None,
            cnonce: None,
            opaque: None,
        };
        let ha1 = Algorithm::Md5.ha1("alice", "hotline", "secret");
        assert_eq!(ha1, "0e645a80ff0fe721e173486d01576657");
        assert_eq!(
            expected_response(&a, &ha1, "REGISTER"),
            "34bce382632f8161e0b820e46731942a"
        );
        a.algorithm = Algorithm::Md5Sess;
        a.qop_auth = true;
        a.nc = Some("00000001".into());
        a.cnonce = Some("xyz".into());
        assert_eq!(
            expected_response(&a, &ha1, "REGISTER"),
            "5d0bfe88a0da65ea1ac8b092adafad98"
        );
        assert_eq!(
            Algorithm::Sha256.ha1("alice", "hotline", "secret"),
            "a8f90fffee7d2ecd657b1d12d6c6e3257ecd6f0eac266fd00e9f59b0ee5205e8"
        );
    }

    #[test]
    fn parses_real_phone_headers() {
        let v = r#"Digest username="alice",realm="hotline", nonce="n1", uri="sip:127.0.0.1:5060", response="6629fae49393a05397450978507c4ef1", algorithm=MD5, cnonce="0a4f113b", qop=auth, nc=00000001"#;
        let a = Authorization::parse(v).unwrap();
        assert_eq!(a.username, "alice");
        assert_eq!(a.uri, "sip:127.0.0.1:5060");
        assert_eq!(a.nc_value(), Some(1));
        assert!(a.qop_auth);
        // Unquoted uri (seen in the wild), escapes and commas inside quotes, odd spacing.
        let v = r#"digest  username = "a\"b,c" , realm="r", nonce="n", uri=sip:x@y, response="6629FAE49393A05397450978507C4EF1",,"#;
        let a = Authorization::parse(v).unwrap();
        assert_eq!(a.username, "a\"b,c");
        assert_eq!(a.uri, "sip:x@y");
        assert_eq!(a.response, "6629fae49393a05397450978507c4ef1");
        assert_eq!(a.algorithm, Algorithm::Md5);
        assert!(!a.qop_auth);
    }

    #[test]
    fn refuses_malformed_values() {
        let ok = r#"Digest username="a", realm="r", nonce="n", uri="sip:x", response="6629fae49393a05397450978507c4ef1""#;
        assert!(Authorization::parse(ok).is_ok());
        type Check = fn(&DigestError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| matches!(e, DigestError::Syntax { .. })),
            ("Digest", |e| matches!(e, DigestError::Syntax { .. })),
            ("Digest ", |e| matches!(e, DigestError::MissingParam(_))),
            ("Basic YWxhZGRpbjpvcGVuc2VzYW1l", |e| {
                matches!(e, DigestError::Syntax { .. })
            }),
            (r#"Basic realm="x""#, |e| {
                matches!(e, DigestError::UnsupportedScheme(_))
            }),
            (r#"Digest username="a"#, |e| {
                matches!(e, DigestError::Syntax { .. })
            }),
            (r#"Digest username="a\"#, |e| {
                matches!(e, DigestError::Syntax { .. })
            }),
            ("Digest username", |e| {
                matches!(e, DigestError::Syntax { .. })
            }),
            ("Digest username=", |e| {
                matches!(e, DigestError::Syntax { .. })
            }),
            ("Digest =x", |e| matches!(e, DigestError::Syntax { .. })),
            (r#"Digest username="a" realm="r""#, |e| {
                matches!(e, DigestError::Syntax { .. })
            }),
            (r#"Digest username="a", username="b""#, |e| {
                matches!(e, DigestError::DuplicateParam(_))
            }),
            (r#"Digest username="a", realm="r""#, |e| {
                matches!(e, DigestError::MissingParam("response"))
            }),
        ];
        for (v, want) in cases {
            let e = Authorization::parse(v).unwrap_err();
            assert!(want(&e), "{v:?} gave {e:?}");
        }
        let bad = |extra: &str| Authorization::parse(&format!("{ok}, {extra}")).unwrap_err();
        assert!(matches!(
            bad("qop=auth-int"),
            DigestError::UnsupportedQop(_)
        ));
        assert!(matches!(bad("qop=auth"), DigestError::MissingParam("nc")));
        assert!(matches!(
            bad("qop=auth, nc=1, cnonce=x"),
            DigestError::BadParam { name: "nc", .. }
        ));
        assert!(matches!(
            bad("algorithm=SHA-512-256"),
            DigestError::UnsupportedAlgorithm(_)
        ));
        // A 32-digit response cannot be a SHA-256 one.
        assert!(matches!(
            bad("algorithm=SHA-256"),
            DigestError::BadParam {
                name: "response",
                ..
            }
        ));
        assert!(matches!(
            bad("userhash=true"),
            DigestError::BadParam {
                name: "userhash",
                ..
            }
        ));
        let many: String = (0..40).map(|i| format!(", x{i}=1")).collect();
        assert!(matches!(
            Authorization::parse(&format!("{ok}{many}")).unwrap_err(),
            DigestError::TooManyParams(_)
        ));
    }

    /// Every prefix and every single-byte change of a valid value parses or fails cleanly.
    #[test]
    fn mutations_never_panic() {
        let v = r#"Digest username="a\"b", realm="hotline", nonce="00ff", uri="sip:h", response="6629fae49393a05397450978507c4ef1", qop=auth, nc=00000001, cnonce="c", algorithm=MD5"#;
        for i in 0..=v.len() {
            if let Some(p) = v.get(..i) {
                let _ = Authorization::parse(p);
                let _ = Challenge::parse(p);
            }
        }
        let bytes = v.as_bytes();
        for i in 0..bytes.len() {
            for b in [b'"', b'\\', b',', b'=', b' ', 0xc3, b'x'] {
                let mut m = bytes.to_vec();
                m[i] = b;
                if let Ok(s) = std::str::from_utf8(&m) {
                    let _ = Authorization::parse(s);
                    let _ = Challenge::parse(s);
                }
            }
        }
    }

    #[test]
    fn challenges_print_and_read_back() {
        let mut auth = DigestAuth::new("hot\"line", KEY, NonceConfig::default());
        let [sha, md5] = two(auth.challenges(10, true, &DEFAULT_ALGORITHMS));
        assert_eq!(sha.algorithm, Algorithm::Sha256);
        assert_eq!(md5.algorithm, Algorithm::Md5);
        let text = sha.to_string();
        assert!(
            text.starts_with(r#"Digest realm="hot\"line", nonce=""#),
            "{text}"
        );
        assert!(text.ends_with(r#"algorithm=SHA-256, qop="auth", stale=true"#));
        assert_eq!(Challenge::parse(&text).unwrap(), sha);
        let c = Challenge::parse(r#"Digest realm="r", nonce="n", qop="auth-int,auth""#).unwrap();
        assert_eq!(c.algorithm, Algorithm::Md5);
        assert!(c.qop_auth && !c.stale);
    }

    fn answer(
        auth: &mut DigestAuth,
        now: u64,
        alg: Algorithm,
        password: &str,
        nc: u32,
    ) -> Authorization {
        let [sha, md5] = two(auth.challenges(now, false, &DEFAULT_ALGORITHMS));
        let ch = if alg.base() == Algorithm::Sha256 {
            sha
        } else {
            md5
        };
        Authorization::answer(&ch, "alice", password, "REGISTER", "sip:hotline", "cn", nc)
    }

    #[test]
    fn verifies_passwords_and_hashed_secrets() {
        let mut auth = DigestAuth::new("hotline", KEY, NonceConfig::default());
        let ruri = uri("sip:hotline");
        let pw = Secret::Password("secret".into());
        let hashed = Secret::hashed(
            Some(
                &Algorithm::Md5
                    .ha1("alice", "hotline", "secret")
                    .to_uppercase(),
            ),
            Some(&Algorithm::Sha256.ha1("alice", "hotline", "secret")),
        )
        .unwrap();
        let md5_only = Secret::hashed(
            Some(&Algorithm::Md5.ha1("alice", "hotline", "secret")),
            None,
        )
        .unwrap();
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            for secret in [&pw, &hashed] {
                let a = answer(&mut auth, 5, alg, "secret", 1);
                assert_eq!(
                    auth.verify(6, "REGISTER", &ruri, &a, Some(secret)),
                    Verdict::Authenticated
                );
                let a = answer(&mut auth, 5, alg, "wrong", 1);
                assert_eq!(
                    auth.verify(6, "REGISTER", &ruri, &a, Some(secret)),
                    Verdict::Forbidden
                );
            }
            let a = answer(&mut auth, 5, alg, "secret", 1);
            assert_eq!(
                auth.verify(6, "REGISTER", &ruri, &a, None),
                Verdict::Forbidden
            );
        }
        let a = answer(&mut auth, 5, Algorithm::Sha256, "secret", 1);
        assert_eq!(
            auth.verify(6, "REGISTER", &ruri, &a, Some(&md5_only)),
            Verdict::Forbidden
        );
        // The method and the URI are part of the hash and the check.
        let a = answer(&mut auth, 5, Algorithm::Md5, "secret", 1);
        assert_eq!(
            auth.verify(6, "INVITE", &ruri, &a, Some(&pw)),
            Verdict::Forbidden
        );
        assert_eq!(
            auth.verify(6, "REGISTER", &uri("sip:other"), &a, Some(&pw)),
            Verdict::UriMismatch
        );
        let a = answer(&mut auth, 5, Algorithm::Md5, "secret", 1);
        // Parameters of the URI do not matter; the host's case does not either.
        assert_eq!(
            auth.verify(
                6,
                "REGISTER",
                &uri("sip:HOTLINE;transport=udp"),
                &a,
                Some(&pw)
            ),
            Verdict::Authenticated
        );
        assert!(Secret::hashed(Some("abc"), None).is_err());
        assert!(Secret::hashed(None, Some(&"g".repeat(64))).is_err());
        assert_eq!(format!("{pw:?}"), "Password(..)");
    }

    #[test]
    fn a_wrong_answer_uses_up_its_nonce() {
        let mut auth = DigestAuth::new("hotline", KEY, NonceConfig::default());
        let ruri = uri("sip:hotline");
        let pw = Secret::Password("secret".into());
        // With qop: the right password on the guessed nonce, even with a higher count, and
        // another wrong guess, are both replays (401 again), never a 200 or a second 403.
        let [ch, _] = two(auth.challenges(0, false, &DEFAULT_ALGORITHMS));
        let answer_with = |password: &str, nc: u32| {
            let a =
                Authorization::answer(&ch, "alice", password, "REGISTER", "sip:hotline", "c", nc);
            Authorization::parse(&a.to_string()).unwrap()
        };
        assert_eq!(
            auth.verify(1, "REGISTER", &ruri, &answer_with("guess", 1), Some(&pw)),
            Verdict::Forbidden
        );
        for a in [answer_with("secret", 2), answer_with("guess2", 3)] {
            assert_eq!(
                auth.verify(1, "REGISTER", &ruri, &a, Some(&pw)),
                Verdict::Replayed
            );
        }
        // An unknown user's guess uses its nonce up the same way.
        let [ch, _] = two(auth.challenges(0, false, &DEFAULT_ALGORITHMS));
        let a = Authorization::answer(&ch, "nobody", "x", "REGISTER", "sip:hotline", "c", 1);
        let a = Authorization::parse(&a.to_string()).unwrap();
        assert_eq!(
            auth.verify(1, "REGISTER", &ruri, &a, None),
            Verdict::Forbidden
        );
        assert_eq!(
            auth.verify(1, "REGISTER", &ruri, &a, None),
            Verdict::Replayed
        );
        // Without qop (RFC 2069 MD5), which has no count, too.
        let [_, mut ch] = two(auth.challenges(0, false, &DEFAULT_ALGORITHMS));
        ch.qop_auth = false;
        let legacy = |password: &str| {
            let a = Authorization::answer(&ch, "alice", password, "REGISTER", "sip:hotline", "", 0);
            Authorization::parse(&a.to_string()).unwrap()
        };
        assert_eq!(
            auth.verify(1, "REGISTER", &ruri, &legacy("guess"), Some(&pw)),
            Verdict::Forbidden
        );
        assert_eq!(
            auth.verify(1, "REGISTER", &ruri, &legacy("secret"), Some(&pw)),
            Verdict::Replayed
        );
    }

    #[test]
    fn legacy_md5_without_qop_is_accepted_sha256_is_not() {
        let mut auth = DigestAuth::new("hotline", KEY, NonceConfig::default());
        let ruri = uri("sip:hotline");
        let pw = Secret::Password("secret".into());
        for (alg, verdict) in [
            (Algorithm::Md5, Verdict::Authenticated),
            (Algorithm::Sha256, Verdict::Forbidden),
        ] {
            let [sha, md5] = two(auth.challenges(0, false, &DEFAULT_ALGORITHMS));
            let mut ch = if alg == Algorithm::Md5 { md5 } else { sha };
            ch.qop_auth = false;
            let a = Authorization::answer(&ch, "alice", "secret", "REGISTER", "sip:hotline", "", 0);
            assert!(a.nc.is_none() && a.cnonce.is_none());
            let a = Authorization::parse(&a.to_string()).unwrap();
            assert_eq!(auth.verify(1, "REGISTER", &ruri, &a, Some(&pw)), verdict);
        }
    }

    #[test]
    fn sess_variants_verify() {
        let mut auth = DigestAuth::new("hotline", KEY, NonceConfig::default());
        let pw = Secret::Password("secret".into());
        for alg in [Algorithm::Md5Sess, Algorithm::Sha256Sess] {
            let mut ch = two(auth.challenges(0, false, &DEFAULT_ALGORITHMS))[0].clone();
            ch.algorithm = alg;
            let a =
                Authorization::answer(&ch, "alice", "secret", "REGISTER", "sip:hotline", "cn", 1);
            assert_eq!(
                auth.verify(0, "REGISTER", &uri("sip:hotline"), &a, Some(&pw)),
                Verdict::Authenticated
            );
        }
    }

    #[test]
    fn nonces_expire_and_are_bound_to_key_and_realm() {
        let cfg = NonceConfig {
            lifetime_secs: 60,
            max_tracked: 100,
        };
        let mut auth = DigestAuth::new("hotline", KEY, cfg);
        let ruri = uri("sip:hotline");
        let pw = Secret::Password("secret".into());
        let a = answer(&mut auth, 100, Algorithm::Sha256, "secret", 1);
        assert_eq!(
            auth.verify(160, "REGISTER", &ruri, &a, Some(&pw)),
            Verdict::Authenticated
        );
        let a = answer(&mut auth, 100, Algorithm::Sha256, "secret", 1);
        assert_eq!(
            auth.verify(161, "REGISTER", &ruri, &a, Some(&pw)),
            Verdict::Stale { right: true }
        );
        // A stale nonce with a wrong password gets the same answer: an old nonce must not
        // tell a right password from a wrong one. Only the log and the guard learn.
        let a = answer(&mut auth, 100, Algorithm::Sha256, "wrong", 1);
        assert_eq!(
            auth.verify(161, "REGISTER", &ruri, &a, Some(&pw)),
            Verdict::Stale { right: false }
        );
        assert_eq!(
            auth.verify(161, "REGISTER", &ruri, &a, None),
            Verdict::Stale { right: false }
        );
        // Issued "in the future": not ours.
        let a = answer(&mut auth, 200, Algorithm::Sha256, "secret", 1);
        assert_eq!(
            auth.verify(199, "REGISTER", &ruri, &a, Some(&pw)),
            Verdict::BadNonce
        );
        // Another key (a restarted process) or another realm.
        let mut other = DigestAuth::new("hotline", [8; 32], cfg);
        let a = answer(&mut other, 100, Algorithm::Sha256, "secret", 1);
        assert_eq!(
            auth.verify(100, "REGISTER", &ruri, &a, Some(&pw)),
            Verdict::BadNonce
        );
        let mut other = DigestAuth::new("elsewhere", KEY, cfg);
        let mut a = answer(&mut other, 100, Algorithm::Sha256, "secret", 1);
        assert_eq!(
            auth.verify(100, "REGISTER", &ruri, &a, Some(&pw)),
            Verdict::BadNonce
        );
        a.realm = "hotline".into();
        assert_eq!(
            auth.verify(100, "REGISTER", &ruri, &a, Some(&pw)),
            Verdict::BadNonce
        );
        // Tampered nonces.
        for n in ["", "zz", &"0".repeat(64), &"g".repeat(64)] {
            let mut a = answer(&mut auth, 100, Algorithm::Sha256, "secret", 1);
            a.nonce = n.to_string();
            assert_eq!(
                auth.verify(100, "REGISTER", &ruri, &a, Some(&pw)),
                Verdict::BadNonce
            );
        }
        // Two nonces in the same second differ.
        assert_ne!(auth.nonce(5), auth.nonce(5));
    }

    #[test]
    fn nonce_counts_must_grow() {
        let mut auth = DigestAuth::new("hotline", KEY, NonceConfig::default());
        let ruri = uri("sip:hotline");
        let pw = Secret::Password("secret".into());
        let [sha, _] = two(auth.challenges(0, false, &DEFAULT_ALGORITHMS));
        let at = |nc| {
            Authorization::answer(&sha, "alice", "secret", "REGISTER", "sip:hotline", "cn", nc)
        };
        assert_eq!(
            auth.verify(1, "REGISTER", &ruri, &at(1), Some(&pw)),
            Verdict::Authenticated
        );
        assert_eq!(
            auth.verify(1, "REGISTER", &ruri, &at(1), Some(&pw)),
            Verdict::Replayed
        );
        assert_eq!(
            auth.verify(1, "REGISTER", &ruri, &at(3), Some(&pw)),
            Verdict::Authenticated
        );
        assert_eq!(
            auth.verify(1, "REGISTER", &ruri, &at(2), Some(&pw)),
            Verdict::Replayed
        );
        // Another phone holding another nonce of the same second starts at 1.
        let [sha2, _] = two(auth.challenges(0, false, &DEFAULT_ALGORITHMS));
        let a = Authorization::answer(&sha2, "bob", "pw", "REGISTER", "sip:hotline", "c", 1);
        assert_eq!(
            auth.verify(
                1,
                "REGISTER",
                &ruri,
                &a,
                Some(&Secret::Password("pw".into()))
            ),
            Verdict::Authenticated
        );
    }

    #[test]
    fn tracking_is_bounded_and_forgotten_nonces_are_stale() {
        let cfg = NonceConfig {
            lifetime_secs: 60,
            max_tracked: 3,
        };
        let mut auth = DigestAuth::new("hotline", KEY, cfg);
        let ruri = uri("sip:hotline");
        let pw = Secret::Password("secret".into());
        let answers: Vec<_> = (0..10)
            .map(|_| answer(&mut auth, 0, Algorithm::Md5, "secret", 1))
            .collect();
        for a in &answers {
            assert_eq!(
                auth.verify(1, "REGISTER", &ruri, a, Some(&pw)),
                Verdict::Authenticated
            );
            assert!(auth.tracked() <= 3);
        }
        // The first nonce was forgotten: its replay is not accepted but called stale.
        assert_eq!(
            auth.verify(1, "REGISTER", &ruri, &answers[0], Some(&pw)),
            Verdict::Stale { right: true }
        );
        assert_eq!(
            auth.verify(1, "REGISTER", &ruri, &answers[9], Some(&pw)),
            Verdict::Replayed
        );
        // Entries of expired nonces go when new ones come.
        let a = answer(&mut auth, 100, Algorithm::Md5, "secret", 1);
        assert_eq!(
            auth.verify(100, "REGISTER", &ruri, &a, Some(&pw)),
            Verdict::Authenticated
        );
        assert_eq!(auth.tracked(), 1);
    }
}
