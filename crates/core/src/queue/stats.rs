//! Live figures of one queue: calls offered, answered, abandoned and sent on, the service
//! level, the average speed of answer and the average handling time.
//!
//! Owns the counters and the arithmetic on them. It must not decide what counts as what:
//! the `Acd` tells it, at the moment each thing happens.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Counters since the engine started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    /// Callers who came to the queue (including those sent on at once).
    pub offered: u64,
    pub answered: u64,
    /// Answered within the queue's service-level time.
    pub answered_in_time: u64,
    /// Hung up or left with a key while waiting.
    pub abandoned: u64,
    /// Sent to `on_timeout`: maximum wait, a full queue or no agent.
    pub overflowed: u64,
    pub callbacks_requested: u64,
    /// Left the line because the node holding the caller died (not the caller's doing):
    /// not abandoned, and left out of the service level.
    #[serde(default)]
    pub lost: u64,
    /// Calls ended after an agent answered (their handle time is known).
    pub handled: u64,
    total_answer_wait: Duration,
    total_abandon_wait: Duration,
    total_handle: Duration,
}

impl QueueStats {
    pub fn offer(&mut self) {
        self.offered = self.offered.saturating_add(1);
    }

    pub fn answer(&mut self, waited: Duration, service_level: Duration) {
        self.answered = self.answered.saturating_add(1);
        if waited <= service_level {
            self.answered_in_time = self.answered_in_time.saturating_add(1);
        }
        self.total_answer_wait = self.total_answer_wait.saturating_add(waited);
    }

    pub fn abandon(&mut self, waited: Duration) {
        self.abandoned = self.abandoned.saturating_add(1);
        self.total_abandon_wait = self.total_abandon_wait.saturating_add(waited);
    }

    pub fn lose(&mut self) {
        self.lost = self.lost.saturating_add(1);
    }

    pub fn overflow(&mut self) {
        self.overflowed = self.overflowed.saturating_add(1);
    }

    pub fn callback(&mut self) {
        self.callbacks_requested = self.callbacks_requested.saturating_add(1);
    }

    pub fn handle(&mut self, handled: Duration) {
        self.handled = self.handled.saturating_add(1);
        self.total_handle = self.total_handle.saturating_add(handled);
    }

    /// Percent of the callers whose wait is over (answered, abandoned or sent on) that
    /// were answered within the service-level time; `None` before the first. Lost
    /// callers are not counted.
    pub fn service_level(&self) -> Option<f64> {
        let done = self
            .answered
            .saturating_add(self.abandoned)
            .saturating_add(self.overflowed);
        (done > 0).then(|| self.answered_in_time as f64 * 100.0 / done as f64)
    }

    /// Average speed of answer: the mean wait of answered callers.
    pub fn asa(&self) -> Option<Duration> {
        mean(self.total_answer_wait, self.answered)
    }

    /// Average handling time: the mean of talk plus wrap-up of handled calls.
    pub fn aht(&self) -> Option<Duration> {
        mean(self.total_handle, self.handled)
    }

    /// The mean wait of abandoned callers.
    pub fn average_abandon_wait(&self) -> Option<Duration> {
        mean(self.total_abandon_wait, self.abandoned)
    }

    /// The figures for the admin API; `longest_wait` is the longest current wait.
    pub fn snapshot(&self, longest_wait: Option<Duration>, waiting: usize) -> StatsSnapshot {
        StatsSnapshot {
            waiting,
            offered: self.offered,
            answered: self.answered,
            abandoned: self.abandoned,
            overflowed: self.overflowed,
            callbacks_requested: self.callbacks_requested,
            lost: self.lost,
            service_level_percent: self.service_level(),
            average_speed_of_answer_secs: self.asa().map(|d| d.as_secs_f64()),
            average_handling_time_secs: self.aht().map(|d| d.as_secs_f64()),
            average_abandon_wait_secs: self.average_abandon_wait().map(|d| d.as_secs_f64()),
            longest_wait_secs: longest_wait.map(|d| d.as_secs_f64()),
        }
    }
}

fn mean(total: Duration, n: u64) -> Option<Duration> {
    let n = u32::try_from(n).unwrap_or(u32::MAX);
    (n > 0).then(|| total / n)
}

/// A queue's figures as the admin API shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StatsSnapshot {
    pub waiting: usize,
    pub offered: u64,
    pub answered: u64,
    pub abandoned: u64,
    pub overflowed: u64,
    pub callbacks_requested: u64,
    /// Callers whose node died while they waited (not in the service level).
    pub lost: u64,
    pub service_level_percent: Option<f64>,
    pub average_speed_of_answer_secs: Option<f64>,
    pub average_handling_time_secs: Option<f64>,
    pub average_abandon_wait_secs: Option<f64>,
    pub longest_wait_secs: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_level_asa_and_aht() {
        let sl = Duration::from_secs(20);
        let mut s = QueueStats::default();
        assert_eq!(s.service_level(), None);
        assert_eq!(s.asa(), None);
        s.answer(Duration::from_secs(10), sl);
        s.answer(Duration::from_secs(20), sl);
        s.answer(Duration::from_secs(60), sl);
        s.abandon(Duration::from_secs(5));
        assert_eq!(s.service_level(), Some(50.0));
        assert_eq!(s.asa(), Some(Duration::from_secs(30)));
        s.handle(Duration::from_secs(100));
        s.handle(Duration::from_secs(200));
        assert_eq!(s.aht(), Some(Duration::from_secs(150)));
        let snap = s.snapshot(Some(Duration::from_secs(7)), 2);
        assert_eq!(snap.longest_wait_secs, Some(7.0));
        assert_eq!(snap.average_abandon_wait_secs, Some(5.0));
    }
}
