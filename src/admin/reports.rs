//! `GET /reports`: the contact-centre report over HTTP, asked with the command line's
//! words as query parameters (`since`, `until`, `flow`, `queue`, `format`, `table`,
//! `time_zone`, `short_abandon`, `service_level`), in JSON unless `format` says otherwise.
//!
//! Owns the HTTP side only: statuses and media types. The figures are the core's report
//! and the request's meaning is `records::report_cli`'s. Reading records may block (the
//! store is a database), so it runs on a blocking thread, never on the admin's tasks.

use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tracing::warn;

use crate::records::report_cli::{self, RecordSource, ReportFormat, ReportRequest};

/// The source reports read, shared by the requests (one reads at a time).
pub type SharedSource = Arc<Mutex<dyn RecordSource + Send>>;

/// The endpoint, for [`super::build`] (or any router: it carries its own state).
pub fn part<S: Clone + Send + Sync + 'static>(source: SharedSource) -> Router<S> {
    Router::new()
        .route("/reports", get(reports))
        .with_state(source)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(super::json::ErrorBody::new(message))).into_response()
}

async fn reports(
    State(source): State<SharedSource>,
    query: Result<Query<ReportRequest>, QueryRejection>,
) -> Response {
    let req = match query {
        Ok(Query(req)) => req,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let now_ms = report_cli::now_ms();
    let done = tokio::task::spawn_blocking(move || {
        let mut source = source.lock().unwrap_or_else(PoisonError::into_inner);
        report_cli::run(&req, &mut *source, now_ms, ReportFormat::Json)
    })
    .await;
    match done {
        Ok(Ok(r)) => ([(header::CONTENT_TYPE, r.content_type)], r.body).into_response(),
        Ok(Err(e)) if e.is_request() => error(StatusCode::BAD_REQUEST, e.to_string()),
        Ok(Err(e)) => {
            warn!(error = %e, "a report could not read its records");
            error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
        Err(e) => {
            warn!(error = %e, "a report stopped");
            error(StatusCode::INTERNAL_SERVER_ERROR, "the report stopped")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};

    use super::*;
    use crate::records::report_cli::tests::record;
    use crate::records::report_cli::{MemorySource, SourceError};
    use crate::records::{CallEvent, CallOutcome, CallRecord};

    struct Down;
    impl RecordSource for Down {
        fn records_between(
            &mut self,
            _: i64,
            _: i64,
        ) -> Result<(Vec<CallRecord>, Vec<CallEvent>), SourceError> {
            Err("database is locked".into())
        }
    }

    async fn serve(source: SharedSource) -> crate::admin::AdminServer {
        let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        crate::admin::serve(listen, part::<()>(source))
            .await
            .expect("loopback listener")
    }

    #[tokio::test]
    async fn reports_over_http_in_each_format_and_the_errors() {
        let now = report_cli::now_ms();
        let hour = 3_600_000;
        let source = MemorySource {
            records: vec![
                record("a", now - hour, CallOutcome::SelfService),
                record("b", now - 2 * hour, CallOutcome::AbandonedInMenu),
                record("c", now - 72 * hour, CallOutcome::Agent),
            ],
            events: vec![],
        };
        let server = serve(Arc::new(Mutex::new(source))).await;
        let client = crate::webhook::client();
        let url = |q: &str| format!("http://{}/reports{q}", server.addr);
        // Generous: a loaded machine may be slow, but a hung server must still fail the test.
        let limit = std::time::Duration::from_secs(30);
        let get = |q: &str| client.get(url(q)).timeout(limit).send();

        // JSON by default, the last 24 h by default.
        let r = get("").await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/json");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["calls"], 2);
        assert_eq!(v["outcomes"]["self_service"], 1);
        assert_eq!(v["self_service_rate"], 0.5);

        let v: serde_json::Value = get("?since=7d").await.unwrap().json().await.unwrap();
        assert_eq!(v["calls"], 3);

        let r = get("?since=7d&format=csv&table=outcomes").await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        let body = r.text().await.unwrap();
        assert!(
            body.starts_with("outcome,calls\r\nself_service,1\r\nagent,1\r\n"),
            "{body}"
        );

        let r = get("?format=table").await.unwrap();
        assert!(r.text().await.unwrap().contains("OUTCOMES"));

        for bad in [
            "?since=yesterday",
            "?format=xml",
            "?colour=red",
            "?table=queues",
        ] {
            let r = get(bad).await.unwrap();
            assert_eq!(r.status(), 400, "{bad}");
            let v: serde_json::Value = r.json().await.unwrap();
            assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{bad}");
        }

        drop(server);
        let server = serve(Arc::new(Mutex::new(Down))).await;
        let r = client
            .get(format!("http://{}/reports", server.addr))
            .timeout(limit)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
        let v: serde_json::Value = r.json().await.unwrap();
        assert!(v["error"].as_str().unwrap().contains("database is locked"));
    }
}
