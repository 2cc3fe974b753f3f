//! The engine's open-files limit (RLIMIT_NOFILE): `serve` raises its soft limit to the
//! hard one at start ([`raise`]), and the caps that hold file descriptors (calls, legs,
//! TCP connections) are sized below it ([`fd_budget`]).
//!
//! It owns the limit only: it decides nothing about calls and holds no descriptor. Every
//! call holds one descriptor for its RTP socket and every leg to an agent or a transfer
//! target another; every SIP TCP connection holds one. The engine's own files (listeners,
//! the media workers' rings, the records store, logs) stay within [`RESERVED_FDS`].

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use thiserror::Error;

/// Descriptors kept for the engine itself, beside calls, legs and TCP connections.
pub const RESERVED_FDS: u64 = 256;

/// No limit is raised beyond this many: a hard limit of "unlimited" would make the caps
/// computed from it meaningless.
const CEILING: u64 = 1 << 20;

#[derive(Debug, Error)]
#[error("cannot {what} the open-files limit: {source}")]
pub struct FdLimitError {
    what: &'static str,
    source: nix::Error,
}

/// The open-files limit before and after [`raise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    pub before: u64,
    pub now: u64,
    pub hard: u64,
}

/// Raises the soft open-files limit as far as the hard limit allows (at most 2^20).
pub fn raise() -> Result<FdLimit, FdLimitError> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|source| FdLimitError {
        what: "read",
        source,
    })?;
    let want = hard.min(CEILING).max(soft);
    if want > soft {
        setrlimit(Resource::RLIMIT_NOFILE, want, hard).map_err(|source| FdLimitError {
            what: "raise",
            source,
        })?;
    }
    Ok(FdLimit {
        before: soft,
        now: want,
        hard,
    })
}

/// The descriptors calls, legs and TCP connections may hold together: the current soft
/// limit less [`RESERVED_FDS`]. A call with an agent leg takes two, a TCP connection one,
/// so `2 × max_calls + TCP connections` must stay under it.
pub fn fd_budget() -> u64 {
    getrlimit(Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024)
        .saturating_sub(RESERVED_FDS)
}

/// The most calls the budget holds when every call has a leg and `tcp` connections are open.
pub fn calls_within_budget(tcp: u64) -> u64 {
    fd_budget().saturating_sub(tcp) / 2
}

/// The caps that hold descriptors, sized to fit a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Calls at once (`sip.max_calls`, lowered when the budget cannot hold them).
    pub max_calls: usize,
    /// SIP TCP connections at once.
    pub tcp: usize,
}

/// Sizes the caps below `budget` descriptors: TCP connections take at most a quarter of
/// it, and each call two of what is left (its RTP socket and a leg's). A cap that already
/// fits is kept as it is.
pub fn size_caps(budget: u64, max_calls: usize, tcp: usize) -> Caps {
    let budget = usize::try_from(budget).unwrap_or(usize::MAX);
    let tcp = tcp.min(budget / 4);
    Caps {
        max_calls: max_calls.min(budget.saturating_sub(tcp) / 2),
        tcp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_reaches_the_hard_limit_and_the_budget_follows() {
        let got = raise().expect("the limit can be read and raised up to the hard one");
        assert!(got.now >= got.before);
        assert_eq!(got.now, got.hard.min(CEILING).max(got.before));
        let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).expect("read");
        assert_eq!(soft, got.now);
        assert_eq!(fd_budget(), soft.saturating_sub(RESERVED_FDS));
        assert_eq!(
            calls_within_budget(100),
            fd_budget().saturating_sub(100) / 2
        );
        // Raising again changes nothing.
        assert_eq!(raise().expect("again").now, got.now);
    }

    #[test]
    fn caps_that_fit_are_kept_and_the_others_are_lowered_below_the_budget() {
        assert_eq!(
            size_caps(1 << 20, 5000, 4096),
            Caps {
                max_calls: 5000,
                tcp: 4096
            }
        );
        // The usual soft limit of 1024 less the reserve: a quarter for TCP, the rest in pairs.
        let caps = size_caps(768, 5000, 4096);
        assert_eq!(
            caps,
            Caps {
                max_calls: 288,
                tcp: 192
            }
        );
        assert!(2 * caps.max_calls + caps.tcp <= 768);
        assert_eq!(
            size_caps(0, 5000, 4096),
            Caps {
                max_calls: 0,
                tcp: 0
            }
        );
    }
}
