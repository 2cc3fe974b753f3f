//! The dashboard: a web page on the admin listener at `/` (tabs Now, Flows, Reports,
//! Calls), its login, its script and style, and `GET /graphs`, the flows drawn as
//! `hotline graph` draws them.
//!
//! Owns the page's files (embedded in the binary: no build step, nothing from the
//! internet) and the session cookie's life: `POST /login` trades the token for an
//! HttpOnly, SameSite=Strict cookie the door accepts as well as the bearer header, since a
//! browser cannot add a header to a page load or an EventSource. Everything the page shows
//! comes from the admin API's own routes; this module reads no calls, queues or records.

use axum::Json;
use axum::Router;
use axum::extract::{Extension, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use schemars::JsonSchema;
use serde::Serialize;

use super::guard::{Authorized, SESSION_COOKIE};
use super::json::ErrorBody;
use super::{Part, Shared};
use crate::tools::{graph, svg};

const INDEX: &str = include_str!("dashboard/index.html");
const LOGIN: &str = include_str!("dashboard/login.html");
const SCRIPT: &str = include_str!("dashboard/app.js");
const STYLE: &str = include_str!("dashboard/app.css");

/// This module's routes, as a part for [`super::build`].
pub fn part() -> Part {
    Router::new()
        .route("/", get(page))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/assets/{file}", get(asset))
        .route("/graphs", get(graphs))
}

/// The page's headers: no caching of what it shows, no framing by other sites, and only
/// its own script, style and data.
fn html(body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'",
            ),
        ],
        body,
    )
        .into_response()
}

async fn page(Extension(Authorized(ok)): Extension<Authorized>) -> Response {
    if ok { html(INDEX) } else { html(LOGIN) }
}

fn see_other(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

/// The token from a login form's body (`token=...`, form-encoded).
fn form_token(body: &[u8]) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

async fn login(State(s): State<Shared>, req: Request) -> Response {
    let Some(session) = &s.door.session else {
        // No token: nothing to log in to.
        return see_other("/");
    };
    let source = super::guard::source(&req);
    let body = axum::body::to_bytes(req.into_body(), super::guard::MAX_BODY)
        .await
        .unwrap_or_default();
    let given = form_token(&body).unwrap_or_default();
    if !s.door.token_matches(&given) {
        tracing::warn!(source = %source, reason = "wrong_token", "dashboard login refused");
        s.deps.metrics().admin_refused("no_token");
        return see_other("/?failed");
    }
    let mut r = see_other("/");
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict"
    )) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn logout() -> Response {
    let mut r = see_other("/");
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("hotline_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}

async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "app.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "app.css" => (STYLE, "text/css; charset=utf-8"),
        _ => {
            return (
                StatusCode::NOT_FOUND,
                Json(ErrorBody::new(format!(
                    "no file '{file}' (files: app.js, app.css)"
                ))),
            )
                .into_response();
        }
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `GET /graphs`
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Graphs {
    /// The running version the graphs are of.
    pub version: u64,
    pub flows: Vec<FlowGraph>,
}

/// One flow drawn.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct FlowGraph {
    pub name: String,
    /// The steps drawn, in the order of the SVG's nodes (`g.node` elements), so a page
    /// can put figures on them.
    pub nodes: Vec<String>,
    /// The SVG document, as `hotline graph --format svg` writes it.
    pub svg: String,
}

async fn graphs(State(s): State<Shared>) -> Json<Graphs> {
    let live = s.deps.live();
    let flows = live
        .flows
        .flows()
        .map(|f| {
            let g = graph::build(&live.flows, f);
            FlowGraph {
                name: f.name.clone(),
                nodes: g.nodes.iter().map(|n| n.title.clone()).collect(),
                svg: svg::svg(&g),
            }
        })
        .collect();
    Json(Graphs {
        version: live.version,
        flows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_comes_from_the_form() {
        assert_eq!(form_token(b"token=a%2Bb+c").as_deref(), Some("a+b c"));
        assert_eq!(form_token(b"user=x&token=t").as_deref(), Some("t"));
        assert_eq!(form_token(b"tok=t"), None);
        assert_eq!(form_token(b""), None);
    }

    #[test]
    fn the_page_names_only_its_own_files() {
        for page in [INDEX, LOGIN] {
            assert!(
                !page.contains("http://") && !page.contains("https://"),
                "no CDN"
            );
        }
        assert!(INDEX.contains("/assets/app.js") && INDEX.contains("/assets/app.css"));
        assert!(SCRIPT.contains("new EventSource(\"/live\")"));
    }
}
