//! `hotline check --impact`: asks a running hotline's admin API which calls are in
//! progress and where, and tells which of them sit on steps the version on disk removes or
//! changes, without reloading anything.
//!
//! Owns the two requests and the comparison; the on-disk version is loaded by `check`.

use std::fmt::Write as _;
use std::time::Duration;

use thiserror::Error;

use super::json;
use crate::config::Config;
use crate::flow::flowset::FlowSet;
use crate::flow::impact::{self, Affected, StepDiff};

/// What the version on disk would change for the running hotline.
#[derive(Debug, Clone)]
pub struct Impact {
    pub running_version: u64,
    pub changed_steps: Vec<StepDiff>,
    pub calls_in_progress: usize,
    pub affected: Vec<Affected>,
}

impl Impact {
    /// Compares the running version (as the API described it) with `on_disk`.
    pub fn compare(running: &json::Flows, calls: &json::Calls, on_disk: &FlowSet) -> Impact {
        let old: impact::Signatures = running
            .flows
            .iter()
            .map(|f| (f.name.clone(), f.steps.clone()))
            .collect();
        let new = impact::signatures(on_disk);
        let positions: Vec<_> = calls.calls.iter().map(json::CallInfo::position).collect();
        Impact {
            running_version: running.version,
            changed_steps: impact::diff(&old, &new),
            calls_in_progress: calls.calls.len(),
            affected: impact::affected(&positions, &new),
        }
    }

    /// The text `hotline check --impact` prints.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "impact: the files on disk against running version {}",
            self.running_version
        );
        if self.changed_steps.is_empty() {
            let _ = writeln!(
                out,
                "  no step of the running version is removed or changed"
            );
        } else {
            let _ = writeln!(
                out,
                "  {} step(s) removed or changed:",
                self.changed_steps.len()
            );
            for s in &self.changed_steps {
                let _ = writeln!(out, "    {}/{} ({})", s.flow, s.step, s.change);
            }
        }
        let _ = writeln!(
            out,
            "  {} call(s) in progress; {}",
            self.calls_in_progress,
            impact::summary(&self.affected)
        );
        for a in &self.affected {
            let _ = writeln!(
                out,
                "    {} from {} at {}/{} ({}): finishes on version {}",
                a.call_id,
                if a.caller.is_empty() { "?" } else { &a.caller },
                a.flow,
                a.step,
                a.change,
                a.version
            );
        }
        out
    }
}

/// The admin API's address from the configuration: `http://<admin.listen>`, with a
/// wildcard address asked on loopback.
pub fn default_url(config: &Config) -> Option<String> {
    let a = config.admin.as_ref()?.listen;
    let ip = match a.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
    };
    Some(format!("http://{ip}:{}", a.port()))
}

/// A request to the admin API that failed: what was asked, with why as its source.
#[derive(Debug, Error)]
#[error("{what}")]
pub struct FetchError {
    pub what: String,
    pub source: reqwest::Error,
}

/// Fetches `GET /flows` and `GET /calls` from the admin API at `base`.
pub async fn fetch(
    base: &str,
    token: Option<&str>,
) -> Result<(json::Flows, json::Calls), FetchError> {
    let client = crate::webhook::client();
    let base = base.trim_end_matches('/');
    let get = |path: &str| {
        let mut req = client
            .get(format!("{base}{path}"))
            .timeout(Duration::from_secs(10));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req
    };
    let failed = |what: String| move |source| FetchError { what, source };
    let flows: json::Flows = get("/flows")
        .send()
        .await
        .map_err(failed(format!(
            "asking {base}/flows (is the hotline running with an admin API?)"
        )))?
        .error_for_status()
        .map_err(failed("GET /flows".to_owned()))?
        .json()
        .await
        .map_err(failed("reading GET /flows".to_owned()))?;
    let calls: json::Calls = get("/calls")
        .send()
        .await
        .map_err(failed(format!("asking {base}/calls")))?
        .error_for_status()
        .map_err(failed("GET /calls".to_owned()))?
        .json()
        .await
        .map_err(failed("reading GET /calls".to_owned()))?;
    Ok((flows, calls))
}
