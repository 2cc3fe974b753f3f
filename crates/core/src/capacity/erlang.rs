//! Erlang C (callers wait as long as it takes) and Erlang A (callers give up after an
//! exponentially distributed patience): what a number of agents gives for a given load.
//!
//! Owns the formulas only, on plain numbers (rates per second, times in seconds). It must
//! not read records or configuration, nor know how a queue picks agents: the simulation
//! beside it is where the real strategy, wrap-up and callbacks are played out.
//!
//! Both models are M/M/n queues: calls arrive at random (Poisson) at `lambda` per second,
//! an agent is busy for an exponentially distributed time of mean `handle` seconds per
//! call (talk, hold and wrap-up: the agent's whole time for the call). The service level
//! is the share of all arriving calls that an agent answers within the target wait.
//!
//! Erlang C goes through Erlang B by its recurrence, which never forms `a^n / n!` and so
//! stays finite for hundreds of agents. Erlang A is the birth-death chain of the calls in
//! the system, solved in logarithms; a caller who finds `j` callers waiting before it is
//! answered with probability `n mu / (n mu + (j + 1) theta)` (the product of its races
//! telescopes), and its answer time is a sum of exponential phases whose distribution is
//! taken by uniformisation.

/// What a number of agents gives, by one model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    /// The offered load in erlangs (`lambda * handle`).
    pub traffic: f64,
    /// The share of calls that wait at all (find every agent busy).
    pub wait_probability: f64,
    /// The share of calls answered within the target wait.
    pub service_level: f64,
    /// The average wait of the calls answered, in seconds (answered at once count 0).
    pub asa: f64,
    /// The share of calls that give up before an agent answers.
    pub abandoned: f64,
    /// The agents' busy share: carried load over agents.
    pub occupancy: f64,
}

/// Why no figures: the load is more than the agents can ever carry.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum ErlangError {
    #[error(
        "{traffic:.2} erlangs of work for {agents} agents: without callers giving up the line grows without end"
    )]
    Unstable { agents: u32, traffic: f64 },
    #[error("the inputs must be positive and finite")]
    Invalid,
}

/// The Erlang B blocking probability of `agents` servers offered `traffic` erlangs, by
/// the recurrence `B(k) = a B(k-1) / (k + a B(k-1))`.
pub fn erlang_b(agents: u32, traffic: f64) -> f64 {
    let mut b = 1.0;
    for k in 1..=agents {
        b = traffic * b / (f64::from(k) + traffic * b);
    }
    b
}

/// The Erlang C probability that a call waits, from Erlang B; `None` when `traffic` is at
/// least `agents` (the line grows without end).
pub fn erlang_c(agents: u32, traffic: f64) -> Option<f64> {
    let n = f64::from(agents);
    if agents == 0 || traffic >= n {
        return None;
    }
    let b = erlang_b(agents, traffic);
    Some(n * b / (n - traffic * (1.0 - b)))
}

fn valid(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

/// Erlang C figures for `agents` agents, `lambda` calls per second, `handle` seconds per
/// call and a target wait of `target` seconds. Nobody gives up (`abandoned` is 0).
pub fn erlang_c_figures(
    agents: u32,
    lambda: f64,
    handle: f64,
    target: f64,
) -> Result<Figures, ErlangError> {
    if !valid(lambda) || !valid(handle) || !(target.is_finite() && target >= 0.0) {
        return Err(ErlangError::Invalid);
    }
    let traffic = lambda * handle;
    let c = erlang_c(agents, traffic).ok_or(ErlangError::Unstable { agents, traffic })?;
    let n = f64::from(agents);
    Ok(Figures {
        traffic,
        wait_probability: c,
        service_level: 1.0 - c * (-(n - traffic) * target / handle).exp(),
        asa: c * handle / (n - traffic),
        abandoned: 0.0,
        occupancy: traffic / n,
    })
}

/// The chain is cut where the states left hold less than this share of the probability.
const TAIL: f64 = 1e-15;
/// At most this many waiting callers are modelled; a chain that needs more is refused.
pub const MAX_WAITING_STATES: usize = 2_000_000;

/// Erlang A (M/M/n+M) figures: as [`erlang_c_figures`], and every waiting caller gives up
/// after an exponentially distributed patience of mean `patience` seconds.
pub fn erlang_a_figures(
    agents: u32,
    lambda: f64,
    handle: f64,
    patience: f64,
    target: f64,
) -> Result<Figures, ErlangError> {
    if agents == 0
        || !valid(lambda)
        || !valid(handle)
        || !valid(patience)
        || !(target.is_finite() && target >= 0.0)
    {
        return Err(ErlangError::Invalid);
    }
    let traffic = lambda * handle;
    let n = agents as usize;
    let mu = 1.0 / handle;
    let theta = 1.0 / patience;
    let nmu = f64::from(agents) * mu;
    // log pi_k, unnormalised: pi_k = pi_{k-1} lambda / death(k).
    let mut logp: Vec<f64> = vec![0.0];
    let mut max = 0.0f64;
    loop {
        let k = logp.len();
        let death = if k <= n {
            k as f64 * mu
        } else {
            nmu + (k - n) as f64 * theta
        };
        let next = logp[k - 1] + lambda.ln() - death.ln();
        logp.push(next);
        max = max.max(next);
        // Past the agents and falling: stop once the rest cannot matter (the ratio is
        // below 1 and keeps falling, so the tail is bounded by a geometric series).
        if k > n && death > lambda {
            let ratio = lambda / death;
            if next - max + (1.0 / (1.0 - ratio)).ln() < TAIL.ln() {
                break;
            }
        }
        if k > n + MAX_WAITING_STATES {
            return Err(ErlangError::Unstable { agents, traffic });
        }
    }
    let p: Vec<f64> = logp.iter().map(|l| (l - max).exp()).collect();
    let total: f64 = p.iter().sum();
    let pi: Vec<f64> = p.iter().map(|x| x / total).collect();
    // An arrival sees the time average (Poisson arrivals): below n it is answered at once.
    let immediate: f64 = pi.iter().take(n).sum();
    let waiting = &pi[n.min(pi.len())..];
    let mut served = immediate;
    let mut wait_sum = 0.0;
    let mut phases = 0.0;
    for (j, &q) in waiting.iter().enumerate() {
        // Phase i (i callers before this one) ends at rate n mu + i theta + theta.
        phases += 1.0 / (nmu + (j + 1) as f64 * theta);
        let s = nmu / (nmu + (j + 1) as f64 * theta);
        served += q * s;
        wait_sum += q * s * phases;
    }
    let within = immediate + answered_within(waiting, nmu, theta, target);
    let carried = served * lambda * handle;
    Ok(Figures {
        traffic,
        wait_probability: 1.0 - immediate,
        service_level: within,
        asa: if served > 0.0 { wait_sum / served } else { 0.0 },
        abandoned: 1.0 - served,
        occupancy: carried / f64::from(agents),
    })
}

/// The probability of arriving with `j` callers waiting (`waiting[j]`) and being answered
/// within `target` seconds, by uniformisation of the chain "callers before me": from `j`
/// it moves to `j - 1` (or to answered, from 0) at rate `n mu + j theta`, and to gone at
/// rate `theta`.
fn answered_within(waiting: &[f64], nmu: f64, theta: f64, target: f64) -> f64 {
    if waiting.is_empty() || target <= 0.0 {
        return 0.0;
    }
    let states = waiting.len();
    let rate = |j: usize| nmu + (j + 1) as f64 * theta;
    let uniform = rate(states - 1);
    let mean = uniform * target;
    // Poisson(mean) terms, far enough into the tail.
    let jumps = (mean + 12.0 * mean.sqrt() + 30.0).ceil() as usize;
    let mut x: Vec<f64> = waiting.to_vec();
    let mut answered = 0.0;
    let mut within = 0.0;
    // Poisson weights in logarithms: e^-mean underflows for long targets.
    let mut log_weight = -mean;
    for k in 0..=jumps {
        within += log_weight.exp() * answered;
        // One uniformised jump.
        answered += x[0] * nmu / uniform;
        let mut next = vec![0.0; states];
        for j in 0..states {
            let stay = 1.0 - rate(j) / uniform;
            next[j] += x[j] * stay;
            if j + 1 < states {
                next[j] += x[j + 1] * (nmu + (j + 1) as f64 * theta) / uniform;
            }
        }
        x = next;
        log_weight += mean.ln() - ((k + 1) as f64).ln();
    }
    within
}

/// The fewest agents, up to `max_agents`, whose figures reach `service_level`, by `figures`.
pub fn agents_for(
    service_level: f64,
    max_agents: u32,
    figures: impl Fn(u32) -> Result<Figures, ErlangError>,
) -> Option<u32> {
    (1..=max_agents).find(|&n| figures(n).is_ok_and(|f| f.service_level >= service_level))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Erlang C by its textbook form, the sums of `a^k / k!` written out: an independent
    /// check of the recurrence for small agent counts.
    fn erlang_c_direct(n: u32, a: f64) -> f64 {
        let mut term = 1.0; // a^k / k!
        let mut sum = 0.0;
        for k in 0..n {
            sum += term;
            term *= a / f64::from(k + 1);
        }
        let top = term * f64::from(n) / (f64::from(n) - a);
        top / (sum + top)
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    // The classic worked example: 100 calls in half an hour (200 an hour), 3 minutes
    // handle time, so 10 erlangs, and a target of 80 % in 20 s. The published tables give,
    // for 11 to 14 agents, a wait probability of 68.2 %, 44.9 %, 28.5 % and 17.4 %, a
    // service level of 39.0 %, 64.0 %, 79.6 % and 88.8 %, and an ASA of 122.8 s, 40.4 s,
    // 17.1 s and 7.8 s: 14 agents are the fewest that reach 80/20.
    const EXAMPLE: [(u32, f64, f64, f64); 4] = [
        (11, 0.6821, 0.3896, 122.78),
        (12, 0.4494, 0.6402, 40.44),
        (13, 0.2853, 0.7956, 17.12),
        (14, 0.1741, 0.8884, 7.84),
    ];

    #[test]
    fn erlang_c_matches_the_worked_example() {
        let lambda = 200.0 / 3600.0;
        for (n, pw, sl, asa) in EXAMPLE {
            let f = erlang_c_figures(n, lambda, 180.0, 20.0).unwrap();
            assert!(close(f.traffic, 10.0, 1e-9));
            assert!(close(f.wait_probability, pw, 5e-5), "{n}: {f:?}");
            assert!(close(f.service_level, sl, 5e-5), "{n}: {f:?}");
            assert!(close(f.asa, asa, 5e-3), "{n}: {f:?}");
            assert!(close(f.wait_probability, erlang_c_direct(n, 10.0), 1e-12));
        }
        let needed = agents_for(0.8, 50, |n| erlang_c_figures(n, lambda, 180.0, 20.0));
        assert_eq!(needed, Some(14));
    }

    #[test]
    fn erlang_b_matches_its_table_and_stays_finite_for_many_agents() {
        // Erlang B tables: 10 erlangs on 10 circuits block 21.46 %, on 15 circuits 3.65 %.
        assert!(close(erlang_b(10, 10.0), 0.2146, 5e-5));
        assert!(close(erlang_b(15, 10.0), 0.0365, 5e-5));
        // a^n / n! would overflow long before this.
        let c = erlang_c(600, 580.0).unwrap();
        assert!(c.is_finite() && c > 0.0 && c < 1.0, "{c}");
        assert_eq!(erlang_c(10, 10.0), None);
        assert!(matches!(
            erlang_c_figures(10, 1.0, 10.0, 20.0),
            Err(ErlangError::Unstable { .. })
        ));
    }

    #[test]
    fn erlang_a_with_endless_patience_is_erlang_c() {
        let lambda = 200.0 / 3600.0;
        for (n, ..) in EXAMPLE {
            let c = erlang_c_figures(n, lambda, 180.0, 20.0).unwrap();
            let a = erlang_a_figures(n, lambda, 180.0, 1e9, 20.0).unwrap();
            assert!(
                close(a.wait_probability, c.wait_probability, 1e-5),
                "{a:?} {c:?}"
            );
            assert!(close(a.service_level, c.service_level, 1e-5), "{a:?} {c:?}");
            assert!(close(a.asa, c.asa, 1e-3 * c.asa), "{a:?} {c:?}");
            assert!(a.abandoned < 1e-5, "{a:?}");
        }
    }

    #[test]
    fn erlang_a_abandonment_agrees_with_littles_law_and_impatience_helps_the_others() {
        // Overloaded: 10 agents, 12 erlangs; only giving up keeps the line finite.
        let (n, lambda, handle, patience) = (10u32, 12.0 / 180.0, 180.0, 90.0);
        let f = erlang_a_figures(n, lambda, handle, patience, 20.0).unwrap();
        // P(abandon) = theta E[queue] / lambda, computed from the chain independently.
        let mu = 1.0 / handle;
        let theta = 1.0 / patience;
        let mut p = vec![1.0f64];
        for k in 1..2000usize {
            let death = if k <= n as usize {
                k as f64 * mu
            } else {
                f64::from(n) * mu + (k - n as usize) as f64 * theta
            };
            p.push(p[k - 1] * lambda / death);
        }
        let total: f64 = p.iter().sum();
        let queue: f64 = p
            .iter()
            .enumerate()
            .map(|(k, x)| k.saturating_sub(n as usize) as f64 * x / total)
            .sum();
        assert!(close(f.abandoned, theta * queue / lambda, 1e-9), "{f:?}");
        assert!(f.abandoned > 0.1 && f.abandoned < 0.5, "{f:?}");
        // More patience: fewer leave, the rest wait longer.
        let g = erlang_a_figures(n, lambda, handle, 600.0, 20.0).unwrap();
        assert!(g.abandoned < f.abandoned && g.asa > f.asa, "{f:?} {g:?}");
        // A service level is a share, and impatience cannot help it above the carried work.
        assert!(f.service_level > 0.0 && f.service_level < 1.0 - f.abandoned);
    }

    #[test]
    fn erlang_a_service_level_for_one_agent_has_a_closed_form() {
        // M/M/1+M, a caller that arrives to find the agent busy and nobody waiting is
        // answered within t with probability mu/(mu+theta) (1 - e^-(mu+theta)t).
        // Only light load so almost nobody finds a second caller waiting.
        let (lambda, handle, patience, t) = (0.00001, 100.0, 50.0, 30.0);
        let f = erlang_a_figures(1, lambda, handle, patience, t).unwrap();
        let (mu, theta) = (1.0 / handle, 1.0 / patience);
        let busy = f.wait_probability;
        let expect = (1.0 - busy) + busy * mu / (mu + theta) * (1.0 - (-(mu + theta) * t).exp());
        assert!(close(f.service_level, expect, 1e-6), "{f:?} {expect}");
    }
}
