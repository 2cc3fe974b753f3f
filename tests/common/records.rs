//! The finished call records a test's engine hands its record sink, kept in memory for
//! the test to look at.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hotline::config::Config;
use hotline::records::{CallEvent, CallRecord, Deliver, RecordMsg, RecordSink};
use hotline::server::{RunningServer, Server};

/// Keeps every finished record (with its events) the calls send.
#[derive(Default)]
pub struct Records(Mutex<Vec<(CallRecord, Vec<CallEvent>)>>);

impl Deliver for Records {
    fn deliver(&self, msg: RecordMsg) {
        if let RecordMsg::Finish(r, e) = msg {
            self.0.lock().unwrap().push((r, e));
        }
    }
}

impl Records {
    /// The first finished record that `want` picks, waiting for it up to `within`.
    pub async fn find(
        &self,
        within: Duration,
        want: impl Fn(&CallRecord) -> bool,
    ) -> (CallRecord, Vec<CallEvent>) {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(found) = self.0.lock().unwrap().iter().find(|(r, _)| want(r)) {
                return found.clone();
            }
            assert!(std::time::Instant::now() < deadline, "no such record");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The first finished record, waiting for it up to `within`.
    pub async fn first(&self, within: Duration) -> (CallRecord, Vec<CallEvent>) {
        self.find(within, |_| true).await
    }
}

/// A hotline on `dir/hotline.yaml`, whose calls' finished records are kept for the test.
pub async fn serve_recorded(dir: &Path) -> (RunningServer, Arc<Records>) {
    let cfg = Config::load(&dir.join("hotline.yaml")).unwrap();
    let records = Arc::new(Records::default());
    let srv = Server::start_with_records(cfg, 1, RecordSink::new(records.clone()))
        .await
        .unwrap()
        .spawn();
    (srv, records)
}
