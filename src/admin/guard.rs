//! The admin server's door: who may come in before any handler runs. A request must name
//! this server in its `Host` (its own address, `localhost` on loopback, or a name in
//! `admin.hosts`), must not come from another site's page (`Origin`), must not carry a
//! body larger than [`MAX_BODY`], and must show the token (bearer header, or the session
//! cookie the dashboard's login form hands out) unless it is one of the few public
//! routes (the login page and the dashboard's static files).
//!
//! Owns those checks and the session cookie's value. It must not decide anything about
//! what a request asks for: handlers do that.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use tracing::warn;

use super::Shared;
use super::json::ErrorBody;

/// The largest request body the admin server reads: its bodies are a pause reason or a
/// login form, never a document.
pub const MAX_BODY: usize = 16 * 1024;

/// The name of the dashboard's session cookie.
pub const SESSION_COOKIE: &str = "hotline_session";

/// Routes a browser must reach before it has a session: the page (which shows the login
/// form without one), the form's target and the page's own script and style.
fn public(method: &Method, path: &str) -> bool {
    (method == Method::GET && (path == "/" || path.starts_with("/assets/")))
        || (method == Method::POST && path == "/login")
}

/// What the door knows about the server it guards.
#[derive(Debug, Clone)]
pub struct Door {
    /// The address the listener is bound to.
    pub listen: SocketAddr,
    /// `admin.hosts`, lower case.
    pub hosts: Vec<String>,
    pub token: Option<String>,
    /// The value of [`SESSION_COOKIE`] that stands for the token: a hash of it with a
    /// secret drawn at start, so a cookie is worthless after a restart or a token change
    /// and never shows the token itself.
    pub session: Option<String>,
}

impl Door {
    /// The door for `listen` with `token`; `secret` is random, drawn by the caller.
    pub fn new(
        listen: SocketAddr,
        token: Option<String>,
        hosts: &[String],
        secret: [u8; 32],
    ) -> Door {
        let session = token.as_ref().map(|t| {
            let mut h = Sha256::new();
            h.update(secret);
            h.update(t.as_bytes());
            hex::encode(h.finalize())
        });
        Door {
            listen,
            hosts: hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
            token,
            session,
        }
    }

    /// Whether `host` (a `Host` header's or an origin's host, without port) names this
    /// server. An address literal cannot be rebound by DNS, so any of this server's own
    /// addresses is fine; a name must be `localhost` (on loopback) or listed.
    pub fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let ip = self.listen.ip();
        if let Ok(given) = bare.parse::<IpAddr>() {
            return given == ip || ip.is_unspecified() || (ip.is_loopback() && given.is_loopback());
        }
        if self.hosts.iter().any(|h| *h == host) {
            return true;
        }
        let local_name = host == "localhost" || host.ends_with(".localhost");
        local_name && (ip.is_loopback() || ip.is_unspecified())
    }

    /// Whether the request shows the token, as a bearer header or the session cookie.
    pub fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if let Some(given) = bearer {
            return same(given.trim().as_bytes(), token.as_bytes());
        }
        match (&self.session, cookie(headers, SESSION_COOKIE)) {
            (Some(session), Some(given)) => same(given.as_bytes(), session.as_bytes()),
            _ => false,
        }
    }

    /// Whether `token` (typed into the login form) is the token.
    pub fn token_matches(&self, given: &str) -> bool {
        self.token
            .as_ref()
            .is_none_or(|t| same(given.trim().as_bytes(), t.as_bytes()))
    }
}

/// Why the door turned a request away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NoHost,
    ForeignHost,
    ForeignOrigin,
    BodyTooLarge,
    NoToken,
}

impl Refusal {
    /// The `reason` field of the log line and of the metric.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NoHost => "no_host",
            Refusal::ForeignHost => "foreign_host",
            Refusal::ForeignOrigin => "foreign_origin",
            Refusal::BodyTooLarge => "body_too_large",
            Refusal::NoToken => "no_token",
        }
    }

    fn response(self) -> Response {
        let (status, text) = match self {
            Refusal::NoHost => (StatusCode::FORBIDDEN, "a Host header is required"),
            Refusal::ForeignHost => (
                StatusCode::FORBIDDEN,
                "this server does not answer to that Host name (add it to admin.hosts)",
            ),
            Refusal::ForeignOrigin => (
                StatusCode::FORBIDDEN,
                "requests from another site's page are refused",
            ),
            Refusal::BodyTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is too large",
            ),
            Refusal::NoToken => (
                StatusCode::UNAUTHORIZED,
                "missing or wrong token: send 'Authorization: Bearer TOKEN'",
            ),
        };
        let mut r = (status, axum::Json(ErrorBody::new(text))).into_response();
        if self == Refusal::NoToken {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// The checks of [`Door`] on one request's head, in order; `Ok(true)` when the request
/// passes with the token, `Ok(false)` when it passes as a public route without one.
pub fn check(
    door: &Door,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<bool, Refusal> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .ok_or(Refusal::NoHost)?;
    let (host_name, _) = split_authority(host);
    if !door.host_allowed(host_name) {
        return Err(Refusal::ForeignHost);
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        // Same origin only: the page that sends this must have come from this server,
        // under the very name and port the request uses.
        let origin = origin.to_str().unwrap_or("null");
        let same_site = origin.split_once("://").is_some_and(|(scheme, authority)| {
            matches!(scheme, "http" | "https")
                && same_authority(authority, host, scheme)
                && door.host_allowed(split_authority(authority).0)
        });
        if !same_site {
            return Err(Refusal::ForeignOrigin);
        }
    }
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if length.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(Refusal::BodyTooLarge);
    }
    if door.authorized(headers) {
        return Ok(true);
    }
    if public(method, path) {
        return Ok(false);
    }
    Err(Refusal::NoToken)
}

/// Whether the request showed the token (set by [`guard`] for the handlers of public
/// routes, which answer differently without it).
#[derive(Debug, Clone, Copy)]
pub struct Authorized(pub bool);

/// The middleware running [`check`] on every request.
pub async fn guard(State(state): State<Shared>, mut req: Request, next: Next) -> Response {
    match check(&state.door, req.method(), req.uri().path(), req.headers()) {
        Ok(authorized) => {
            req.extensions_mut().insert(Authorized(authorized));
            next.run(req).await
        }
        Err(refusal) => {
            let source = source(&req);
            if refusal != Refusal::NoToken || req.headers().contains_key(header::AUTHORIZATION) {
                warn!(
                    source = %source,
                    reason = refusal.as_str(),
                    method = %req.method(),
                    path = %req.uri().path(),
                    "admin request refused"
                );
            }
            state.deps.metrics().admin_refused(refusal.as_str());
            refusal.response()
        }
    }
}

/// The address a request came from, for log lines (empty when the server was started
/// without connection info).
pub fn source(req: &Request) -> String {
    req.extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default()
}

/// `host[:port]` or `[v6]:port` into the host and the port text.
fn split_authority(a: &str) -> (&str, Option<&str>) {
    if let Some(rest) = a.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((h, tail)) => (h, tail.strip_prefix(':')),
            None => (a, None),
        };
    }
    match a.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (a, None),
    }
}

/// Whether an origin's authority and the `Host` header name the same host and port
/// (a missing port is the scheme's default).
fn same_authority(origin: &str, host: &str, scheme: &str) -> bool {
    let default = if scheme == "https" { "443" } else { "80" };
    let (oh, op) = split_authority(origin);
    let (hh, hp) = split_authority(host);
    oh.eq_ignore_ascii_case(hh) && op.unwrap_or(default) == hp.unwrap_or(default)
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Compares without stopping at the first difference, so response times do not tell how
/// much of a guessed token was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, y) in b.iter().enumerate() {
        let x = a.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn door(listen: &str, token: Option<&str>, hosts: &[&str]) -> Door {
        let hosts: Vec<String> = hosts.iter().map(|h| (*h).to_owned()).collect();
        Door::new(
            listen.parse().unwrap(),
            token.map(str::to_owned),
            &hosts,
            [7; 32],
        )
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abd", b"abc"));
        assert!(!same(b"ab", b"abc"));
        assert!(!same(b"abcd", b"abc"));
        assert!(!same(b"", b"abc"));
    }

    #[test]
    fn hosts_this_server_answers_to() {
        let d = door("127.0.0.1:8080", None, &["wallboard.example.org"]);
        for ok in [
            "127.0.0.1",
            "127.0.0.2",
            "localhost",
            "LOCALHOST.",
            "app.localhost",
            "[::1]",
            "wallboard.example.org",
        ] {
            assert!(d.host_allowed(ok), "{ok}");
        }
        for bad in ["evil.example", "192.0.2.1", "localhost.evil.example", ""] {
            assert!(!d.host_allowed(bad), "{bad}");
        }
        let d = door("192.0.2.7:8080", Some("t"), &[]);
        assert!(d.host_allowed("192.0.2.7"));
        assert!(!d.host_allowed("192.0.2.8"));
        assert!(!d.host_allowed("localhost"), "not on loopback");
        let d = door("0.0.0.0:8080", Some("t"), &[]);
        assert!(
            d.host_allowed("198.51.100.4"),
            "any of the machine's addresses"
        );
        assert!(
            !d.host_allowed("hotline.example.org"),
            "a name must be listed"
        );
    }

    #[test]
    fn the_checks_in_order() {
        let d = door("127.0.0.1:8080", Some("tok"), &[]);
        let get = Method::GET;
        let bearer = ("authorization", "Bearer tok");
        let host = ("host", "127.0.0.1:8080");
        assert_eq!(
            check(&d, &get, "/calls", &headers(&[host, bearer])),
            Ok(true)
        );
        assert_eq!(
            check(&d, &get, "/calls", &headers(&[bearer])),
            Err(Refusal::NoHost)
        );
        assert_eq!(
            check(
                &d,
                &get,
                "/calls",
                &headers(&[("host", "rebound.example:8080"), bearer])
            ),
            Err(Refusal::ForeignHost)
        );
        assert_eq!(
            check(&d, &get, "/calls", &headers(&[host])),
            Err(Refusal::NoToken)
        );
        assert_eq!(
            check(
                &d,
                &get,
                "/calls",
                &headers(&[host, ("authorization", "Bearer tok2")])
            ),
            Err(Refusal::NoToken)
        );
        // The page and its files are public; what they show is not.
        assert_eq!(check(&d, &get, "/", &headers(&[host])), Ok(false));
        assert_eq!(
            check(&d, &get, "/assets/app.js", &headers(&[host])),
            Ok(false)
        );
        assert_eq!(
            check(&d, &Method::POST, "/login", &headers(&[host])),
            Ok(false)
        );
        assert_eq!(
            check(&d, &Method::POST, "/reload", &headers(&[host])),
            Err(Refusal::NoToken)
        );
        // Origins: same origin only, with the scheme's default port.
        let post = Method::POST;
        for ok in ["http://127.0.0.1:8080"] {
            assert_eq!(
                check(
                    &d,
                    &post,
                    "/reload",
                    &headers(&[host, bearer, ("origin", ok)])
                ),
                Ok(true),
                "{ok}"
            );
        }
        for bad in [
            "http://evil.example",
            "null",
            "http://127.0.0.1:9999",
            "http://localhost:8080",
            "file://",
            "garbage",
        ] {
            assert_eq!(
                check(
                    &d,
                    &post,
                    "/reload",
                    &headers(&[host, bearer, ("origin", bad)])
                ),
                Err(Refusal::ForeignOrigin),
                "{bad}"
            );
        }
        let d80 = door("127.0.0.1:80", None, &[]);
        assert_eq!(
            check(
                &d80,
                &post,
                "/reload",
                &headers(&[("host", "localhost"), ("origin", "http://localhost:80")])
            ),
            Ok(true)
        );
        // A body too large is refused before it is read.
        let big = (MAX_BODY + 1).to_string();
        assert_eq!(
            check(
                &d,
                &post,
                "/reload",
                &headers(&[host, bearer, ("content-length", &big)])
            ),
            Err(Refusal::BodyTooLarge)
        );
    }

    #[test]
    fn the_session_cookie_stands_for_the_token() {
        let d = door("127.0.0.1:8080", Some("tok"), &[]);
        let session = d.session.clone().unwrap();
        assert!(!session.contains("tok"));
        let with = |c: &str| headers(&[("cookie", c)]);
        assert!(d.authorized(&with(&format!("theme=dark; {SESSION_COOKIE}={session}"))));
        assert!(!d.authorized(&with(&format!("{SESSION_COOKIE}=tok"))));
        assert!(!d.authorized(&with("theme=dark")));
        let other = Door::new(
            "127.0.0.1:8080".parse().unwrap(),
            Some("tok".into()),
            &[],
            [8; 32],
        );
        assert_ne!(other.session, d.session, "a restart ends the sessions");
        assert!(d.token_matches(" tok "));
        assert!(!d.token_matches("to"));
        assert!(door("127.0.0.1:1", None, &[]).authorized(&HeaderMap::new()));
    }
}
