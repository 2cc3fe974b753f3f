//! The IO behind a flow's `http` step: one request to a self-service web service, its JSON
//! answer back. The flow machine decides what to ask and what an answer means; this module
//! only performs the request with a deadline and classifies what went wrong. It runs on the
//! call's own task (or one it spawns), so a slow web service delays that call only.

use std::time::Duration;

use thiserror::Error;

/// One request, as the flow machine rendered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// A JSON body, already rendered to text.
    pub body: Option<String>,
    pub timeout: Duration,
}

/// Why a request did not give a usable answer; each is an `on_error` path of the flow.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Failure {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("the service answered {0}")]
    Status(u16),
    #[error("the answer is not JSON: {0}")]
    BadJson(String),
    #[error("the request is not valid: {0}")]
    Invalid(String),
}

/// The largest answer body we read; a self-service lookup has no business sending more.
const MAX_BODY: usize = 1 << 20;

/// The client every call shares (connection pool, TLS roots).
pub fn client() -> reqwest::Client {
    client_builder()
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
        .unwrap_or_default()
}

/// The engine's HTTP client settings (its user agent, TLS through rustls), for the
/// clients built on them.
pub fn client_builder() -> reqwest::ClientBuilder {
    // rustls needs a process-wide crypto provider; installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().user_agent(concat!("hotline/", env!("CARGO_PKG_VERSION")))
}

/// Performs `req`. A 2xx answer whose body is empty gives `null`; any other 2xx body must
/// be JSON.
pub async fn perform(
    client: &reqwest::Client,
    req: &Request,
) -> Result<serde_json::Value, Failure> {
    let method = reqwest::Method::from_bytes(req.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| Failure::Invalid(format!("unknown method '{}'", req.method)))?;
    let url = reqwest::Url::parse(&req.url)
        .map_err(|e| Failure::Invalid(format!("url '{}': {e}", req.url)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Failure::Invalid(format!(
            "url '{}': only http and https are allowed",
            req.url
        )));
    }
    let mut builder = client.request(method, url).timeout(req.timeout);
    for (k, v) in &req.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    if let Some(body) = &req.body {
        builder = builder
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone());
    }
    let classify = |e: reqwest::Error| {
        if e.is_timeout() {
            Failure::Timeout(req.timeout)
        } else if e.is_builder() {
            Failure::Invalid(e.to_string())
        } else {
            Failure::Connect(e.to_string())
        }
    };
    let mut resp = builder.send().await.map_err(classify)?;
    let status = resp.status();
    if !status.is_success() {
        return Err(Failure::Status(status.as_u16()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(classify)? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(Failure::BadJson(format!(
                "answer larger than {MAX_BODY} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Value::Null);
    }
    serde_json::from_slice(&body).map_err(|e| Failure::BadJson(e.to_string()))
}
