//! The demonstration order service the sample hotline looks orders up in: a tiny HTTP
//! server answering `GET /orders/{number}` from a fixed table of made-up orders, so that
//! the sample's `http` step has something real to ask out of the box
//! (`hotline demo-shop`, or `demo_shop:` in hotline.yaml for `hotline serve`).
//!
//! It owns the table and the two answers (the order as JSON, or 404 with a JSON error).
//! It is for demonstration and tests only: no persistence, no authentication, no
//! configuration beyond the address, and it must never be something a production
//! hotline depends on.
//!
//! The orders:
//!
//! | number | status | other fields |
//! | --- | --- | --- |
//! | `123456` | `shipped` | `eta: 2026-11-26`, 2 items |
//! | `234567` | `processing` | 1 item |
//! | `345678` | `delivered` | `delivered_on: 2026-11-20`, 3 items |
//! | `456789` | `cancelled` | 1 item |
//! | `12345678` | `shipped` | `eta: 2026-12-03`, 1 item |
//!
//! Every other number answers 404 with `{"error": "no order with number ..."}`.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One made-up order, as the service answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DemoOrder {
    pub number: &'static str,
    /// `processing`, `shipped`, `delivered` or `cancelled`.
    pub status: &'static str,
    /// Expected delivery date of a shipped order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta: Option<&'static str>,
    /// Delivery date of a delivered order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_on: Option<&'static str>,
    pub items: u32,
}

/// The whole table; the module comment lists it for people.
pub const ORDERS: &[DemoOrder] = &[
    DemoOrder {
        number: "123456",
        status: "shipped",
        eta: Some("2026-11-26"),
        delivered_on: None,
        items: 2,
    },
    DemoOrder {
        number: "234567",
        status: "processing",
        eta: None,
        delivered_on: None,
        items: 1,
    },
    DemoOrder {
        number: "345678",
        status: "delivered",
        eta: None,
        delivered_on: Some("2026-11-20"),
        items: 3,
    },
    DemoOrder {
        number: "456789",
        status: "cancelled",
        eta: None,
        delivered_on: None,
        items: 1,
    },
    DemoOrder {
        number: "12345678",
        status: "shipped",
        eta: Some("2026-12-03"),
        delivered_on: None,
        items: 1,
    },
];

/// The order with this number, if the table has it.
pub fn find(number: &str) -> Option<&'static DemoOrder> {
    ORDERS.iter().find(|o| o.number == number)
}

/// The service's routes, for serving on any listener.
pub fn router() -> Router {
    Router::new().route("/orders/{number}", get(order))
}

async fn order(Path(number): Path<String>) -> Response {
    match find(&number) {
        Some(o) => Json(o).into_response(),
        None => {
            // At most 20 characters are echoed, so a long path does not make a long answer.
            let shown: String = number.chars().take(20).collect();
            (
                StatusCode::NOT_FOUND,
                Json(serde_json::json!({ "error": format!("no order with number '{shown}'") })),
            )
                .into_response()
        }
    }
}

/// Serves the service on `listener` until the task is dropped or the listener fails.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router()).await
}

/// The service running in the background; dropping it stops it.
#[derive(Debug)]
pub struct DemoShop {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl DemoShop {
    /// Binds `addr` (port 0: the kernel picks one) and serves in a task of the current
    /// runtime.
    pub async fn start(addr: SocketAddr) -> std::io::Result<DemoShop> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            if let Err(e) = serve(listener).await {
                tracing::warn!(error = %e, "the demo shop stopped");
            }
        });
        Ok(DemoShop { addr, task })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL flows put before `/orders/...`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for DemoShop {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_every_status_once_at_least_and_unique_numbers() {
        for s in ["processing", "shipped", "delivered", "cancelled"] {
            assert!(ORDERS.iter().any(|o| o.status == s), "{s}");
        }
        let mut numbers: Vec<_> = ORDERS.iter().map(|o| o.number).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), ORDERS.len());
        assert!(
            ORDERS
                .iter()
                .all(|o| (o.status == "shipped") == o.eta.is_some())
        );
    }

    #[test]
    fn an_order_serialises_without_absent_dates() {
        let o = find("234567").unwrap();
        assert_eq!(
            serde_json::to_value(o).unwrap(),
            serde_json::json!({ "number": "234567", "status": "processing", "items": 1 })
        );
        assert_eq!(find("000000"), None);
    }

    #[tokio::test]
    async fn answers_orders_and_404_over_http() {
        let shop = DemoShop::start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let client = crate::webhook::client();
        let r = client
            .get(format!("{}/orders/123456", shop.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(
            body,
            serde_json::json!({ "number": "123456", "status": "shipped", "eta": "2026-11-26", "items": 2 })
        );
        let r = client
            .get(format!("{}/orders/999999", shop.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "no order with number '999999'");
    }
}
