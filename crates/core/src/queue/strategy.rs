//! The strategies: which of the agents free for a caller is offered the call.
//!
//! Owns the ordering rules only, as a pure function over candidates the `Acd` has already
//! filtered (available, reachable, serving the queue, with the caller's skills, not yet
//! tried for this caller). It must not look at agent state itself or keep any.

use std::time::Instant;

pub use super::config::Strategy;

/// An agent free to take the call, as the strategy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub name: &'a str,
    /// The agent's penalty in this queue (lower is preferred by `skills`).
    pub penalty: u32,
    /// When the agent's last call ended (or it became available first).
    pub idle_since: Instant,
    /// Calls answered since the engine started.
    pub answered: u64,
}

/// The indexes into `candidates` to offer the call to: all of them for `ring_all`, else
/// one. `last_offered` is the queue's round-robin cursor (the agent offered last).
/// Ties are broken by name, so the choice never depends on the order given.
pub fn choose(
    strategy: Strategy,
    candidates: &[Candidate<'_>],
    last_offered: Option<&str>,
) -> Vec<usize> {
    if candidates.is_empty() {
        return Vec::new();
    }
    let best_by = |key: &dyn Fn(&Candidate<'_>) -> (u64, Instant)| {
        (0..candidates.len())
            .min_by(|&a, &b| {
                let (ca, cb) = (&candidates[a], &candidates[b]);
                key(ca).cmp(&key(cb)).then_with(|| ca.name.cmp(cb.name))
            })
            .into_iter()
            .collect::<Vec<_>>()
    };
    match strategy {
        Strategy::RingAll => {
            let mut all: Vec<usize> = (0..candidates.len()).collect();
            all.sort_by(|&a, &b| candidates[a].name.cmp(candidates[b].name));
            all
        }
        Strategy::LongestIdle => best_by(&|c| (0, c.idle_since)),
        Strategy::FewestCalls => best_by(&|c| (c.answered, c.idle_since)),
        Strategy::Skills => best_by(&|c| (u64::from(c.penalty), c.idle_since)),
        Strategy::RoundRobin => {
            // The first name after the cursor, wrapping around to the first name.
            let after = |c: &Candidate<'_>| last_offered.is_some_and(|l| c.name > l);
            let pick = (0..candidates.len())
                .filter(|&i| after(&candidates[i]))
                .min_by(|&a, &b| candidates[a].name.cmp(candidates[b].name))
                .or_else(|| {
                    (0..candidates.len())
                        .min_by(|&a, &b| candidates[a].name.cmp(candidates[b].name))
                });
            pick.into_iter().collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn c(name: &str, penalty: u32, idle: u64, answered: u64, t0: Instant) -> Candidate<'_> {
        Candidate {
            name,
            penalty,
            idle_since: t0 + Duration::from_secs(idle),
            answered,
        }
    }

    fn names<'a>(cands: &[Candidate<'a>], picked: Vec<usize>) -> Vec<&'a str> {
        picked.into_iter().map(|i| cands[i].name).collect()
    }

    #[test]
    fn longest_idle_takes_the_earliest_idle_since() {
        let t0 = Instant::now();
        let cands = [
            c("alice", 0, 30, 0, t0),
            c("bob", 0, 10, 9, t0),
            c("carol", 0, 20, 0, t0),
        ];
        assert_eq!(
            names(&cands, choose(Strategy::LongestIdle, &cands, None)),
            ["bob"]
        );
    }

    #[test]
    fn fewest_calls_then_longest_idle() {
        let t0 = Instant::now();
        let cands = [
            c("alice", 0, 30, 2, t0),
            c("bob", 0, 10, 5, t0),
            c("carol", 0, 20, 2, t0),
        ];
        assert_eq!(
            names(&cands, choose(Strategy::FewestCalls, &cands, None)),
            ["carol"]
        );
    }

    #[test]
    fn skills_prefers_the_lowest_penalty_then_longest_idle() {
        let t0 = Instant::now();
        let cands = [
            c("alice", 5, 0, 0, t0),
            c("bob", 1, 30, 0, t0),
            c("carol", 1, 20, 0, t0),
        ];
        assert_eq!(
            names(&cands, choose(Strategy::Skills, &cands, None)),
            ["carol"]
        );
    }

    #[test]
    fn round_robin_goes_round_in_name_order() {
        let t0 = Instant::now();
        let cands = [
            c("carol", 0, 0, 0, t0),
            c("alice", 0, 0, 0, t0),
            c("bob", 0, 0, 0, t0),
        ];
        let rr = |last| names(&cands, choose(Strategy::RoundRobin, &cands, last));
        assert_eq!(rr(None), ["alice"]);
        assert_eq!(rr(Some("alice")), ["bob"]);
        assert_eq!(rr(Some("bob")), ["carol"]);
        assert_eq!(rr(Some("carol")), ["alice"]);
        // The cursor agent may be busy now: the next name after it still comes next.
        assert_eq!(rr(Some("bert")), ["bob"]);
    }

    #[test]
    fn ring_all_rings_everyone_and_ties_break_by_name() {
        let t0 = Instant::now();
        let cands = [c("bob", 0, 0, 0, t0), c("alice", 0, 0, 0, t0)];
        assert_eq!(
            names(&cands, choose(Strategy::RingAll, &cands, None)),
            ["alice", "bob"]
        );
        assert_eq!(
            names(&cands, choose(Strategy::LongestIdle, &cands, None)),
            ["alice"]
        );
        assert!(choose(Strategy::RingAll, &[], None).is_empty());
    }
}
