//! The estimated wait: what a caller at a given place in line can expect, from how long
//! the queue's recent calls took.
//!
//! Owns the rolling window of handle times and the formula. It must not know who waits or
//! which agents exist: the `Acd` gives the position and the number of agents serving.

use std::collections::VecDeque;
use std::time::Duration;

/// The handle times (talk plus wrap-up) of a queue's last calls, newest last.
#[derive(Debug, Clone)]
pub struct HandleTimes {
    window: usize,
    times: VecDeque<Duration>,
}

impl HandleTimes {
    /// Remembers at most `window` calls (at least one).
    pub fn new(window: usize) -> Self {
        let window = window.max(1);
        HandleTimes {
            window,
            times: VecDeque::with_capacity(window),
        }
    }

    pub fn record(&mut self, handled: Duration) {
        if self.times.len() >= self.window {
            self.times.pop_front();
        }
        self.times.push_back(handled);
    }

    /// The mean of the remembered calls; `None` before the first call.
    pub fn average(&self) -> Option<Duration> {
        let n = u32::try_from(self.times.len()).ok().filter(|n| *n > 0)?;
        let total: Duration = self
            .times
            .iter()
            .fold(Duration::ZERO, |a, t| a.saturating_add(*t));
        Some(total / n)
    }

    /// The remembered handle times, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = Duration> + '_ {
        self.times.iter().copied()
    }

    pub fn len(&self) -> usize {
        self.times.len()
    }

    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }
}

/// The estimated wait of the caller at `position` (1 is the front):
///
/// ```text
/// EWT = AHT × position ÷ agents
/// ```
///
/// where AHT is the mean handle time (talk plus wrap-up) of the queue's last
/// [`DEFAULT_EWT_WINDOW`](super::config::DEFAULT_EWT_WINDOW) calls and `agents` the number
/// of the queue's agents logged in and not paused (talking, wrapping up or free). Each
/// agent frees up once per AHT on average, so `agents` of them serve `agents` callers per
/// AHT. With no handled call yet, or no agent, there is no estimate (`None`): saying a
/// made-up number to a caller is worse than saying none.
pub fn estimate(aht: Option<Duration>, position: usize, agents: usize) -> Option<Duration> {
    let aht = aht?;
    if agents == 0 || position == 0 {
        return None;
    }
    let pos = u32::try_from(position).unwrap_or(u32::MAX);
    let agents = u32::try_from(agents).unwrap_or(u32::MAX);
    Some(aht.saturating_mul(pos) / agents)
}

/// The estimate as callers hear it: whole minutes, rounded up, at least one ("about 4
/// minutes"), so a caller is never promised less than the estimate.
pub fn spoken_minutes(ewt: Duration) -> u64 {
    ewt.as_secs().div_ceil(60).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spoken_minutes_round_up() {
        assert_eq!(spoken_minutes(Duration::from_secs(0)), 1);
        assert_eq!(spoken_minutes(Duration::from_secs(60)), 1);
        assert_eq!(spoken_minutes(Duration::from_secs(61)), 2);
        assert_eq!(spoken_minutes(Duration::from_secs(235)), 4);
    }

    #[test]
    fn the_window_keeps_the_last_calls() {
        let mut h = HandleTimes::new(3);
        assert_eq!(h.average(), None);
        for s in [100, 200, 300, 400] {
            h.record(Duration::from_secs(s));
        }
        assert_eq!(h.len(), 3);
        assert_eq!(h.average(), Some(Duration::from_secs(300)));
    }

    #[test]
    fn estimate_is_aht_times_position_over_agents() {
        let aht = Some(Duration::from_secs(240));
        assert_eq!(estimate(aht, 3, 1), Some(Duration::from_secs(720)));
        assert_eq!(estimate(aht, 3, 2), Some(Duration::from_secs(360)));
        assert_eq!(estimate(aht, 1, 4), Some(Duration::from_secs(60)));
        assert_eq!(estimate(aht, 3, 0), None);
        assert_eq!(estimate(None, 3, 2), None);
    }
}
