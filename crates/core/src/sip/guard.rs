//! Who may talk to a public number: per-source flood bans, digest-guessing bans, trusted
//! sources and known scanners, as a pure state machine.
//!
//! Owns the per-address request windows, the failed-login windows (per address and per
//! user), the bans they lead to and the list of sources never limited. The endpoint asks
//! [`Guard::check`] about every request that belongs to no call in progress (in-dialog
//! requests of admitted calls always pass, so a caller whose address is banned mid-call
//! keeps the call) and tells [`Guard::auth_failed`] about every refused login. It must not
//! answer, log or drop anything itself: it says what to do and hands out [`GuardEvent`]s
//! for the log lines a fail2ban filter reads. Time comes in as `now`; nothing here reads a
//! clock.
//!
//! Memory is bounded: at most `max_sources` addresses and `max_users` user names are
//! tracked, windows that have run out are swept on [`Guard::handle_timeout`], and a source
//! seen when the table is full is let through uncounted (a flood of spoofed addresses must
//! not grow the table, and refusing unknown sources would lock out real callers).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;

/// The limits; [`Default`] holds the defaults of `limits.*` in `hotline.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardConfig {
    /// More than `requests` requests within `window` from one address bans it.
    pub requests: u32,
    pub window: Duration,
    /// How long a banned address is ignored.
    pub ban: Duration,
    /// `auth_per_source` refused logins within `auth_source_window` from one address ban it.
    pub auth_per_source: u32,
    pub auth_source_window: Duration,
    /// `auth_per_user` refused logins for one user within `auth_user_window` ban every
    /// address that fails for that user while the window lasts (a guess spread over many
    /// addresses).
    pub auth_per_user: u32,
    pub auth_user_window: Duration,
    /// Sources never limited (trunks, a proxy in front, a load tool on the same host).
    pub trusted: Vec<IpNet>,
    /// User-Agent substrings of known scanners (compared without regard to case).
    pub scanners: Vec<String>,
    pub max_sources: usize,
    pub max_users: usize,
}

impl Default for GuardConfig {
    fn default() -> GuardConfig {
        GuardConfig {
            requests: 16,
            window: Duration::from_secs(2),
            ban: Duration::from_secs(300),
            auth_per_source: 5,
            auth_source_window: Duration::from_secs(5),
            auth_per_user: 20,
            auth_user_window: Duration::from_secs(600),
            trusted: vec![IpNet::from(IpAddr::from([127, 0, 0, 1]))],
            scanners: DEFAULT_SCANNERS.iter().map(|s| s.to_string()).collect(),
            max_sources: 100_000,
            max_users: 10_000,
        }
    }
}

/// User-Agents that announce a SIP scanner. They are dropped without a reply: an answer
/// only confirms that something listens.
pub const DEFAULT_SCANNERS: &[&str] = &[
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "vaxsipuseragent",
    "pplsip",
    "sip-scan",
    "sundayddr",
];

/// What to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Handle it as usual.
    Pass,
    /// Drop it without a reply: the source is banned (until the instant given).
    Banned(Instant),
    /// Drop it without a reply: a scanner's User-Agent.
    Scanner,
}

/// Why an address was banned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanReason {
    /// Too many requests in the window.
    Flood,
    /// Too many refused logins from this address.
    LoginsFromSource,
    /// Too many refused logins for one user, from wherever.
    LoginsForUser,
}

impl BanReason {
    pub fn as_str(self) -> &'static str {
        match self {
            BanReason::Flood => "flood",
            BanReason::LoginsFromSource => "failed_logins",
            BanReason::LoginsForUser => "failed_logins_for_user",
        }
    }
}

/// Something worth a log line (and a counter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardEvent {
    /// `source` is ignored until `until`.
    Banned {
        source: IpAddr,
        reason: BanReason,
        /// The user whose logins failed, for the login bans.
        user: Option<String>,
        until: Instant,
    },
    /// A ban ran out.
    Lifted { source: IpAddr },
}

/// What the guard has counted, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardCounters {
    /// Requests dropped because their source was banned.
    pub dropped_banned: u64,
    /// Requests dropped for a scanner's User-Agent.
    pub dropped_scanner: u64,
    /// Bans given, by any reason.
    pub bans: u64,
    /// Refused logins reported.
    pub auth_failures: u64,
    /// Requests from sources seen while the table was full (let through uncounted).
    pub untracked: u64,
}

/// A count within a window that starts at its first event.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    count: u32,
}

impl Window {
    fn new(now: Instant) -> Window {
        Window {
            start: now,
            count: 0,
        }
    }

    /// Counts one event at `now`, starting a new window if the old one has run out;
    /// returns the count within the current window.
    fn hit(&mut self, now: Instant, length: Duration) -> u32 {
        if now.saturating_duration_since(self.start) >= length {
            *self = Window::new(now);
        }
        self.count = self.count.saturating_add(1);
        self.count
    }

    /// Whether nothing in this window counts any more (empty, or run out).
    fn over(&self, now: Instant, length: Duration) -> bool {
        self.count == 0 || now.saturating_duration_since(self.start) >= length
    }
}

#[derive(Debug, Clone)]
struct Source {
    requests: Window,
    logins: Window,
    banned_until: Option<Instant>,
}

/// The per-source and per-user bookkeeping.
#[derive(Debug)]
pub struct Guard {
    cfg: GuardConfig,
    scanners: Vec<String>,
    sources: HashMap<IpAddr, Source>,
    users: HashMap<String, Window>,
    events: VecDeque<GuardEvent>,
    counters: GuardCounters,
    next_sweep: Option<Instant>,
}

impl Guard {
    pub fn new(cfg: GuardConfig) -> Guard {
        let scanners = cfg
            .scanners
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect();
        Guard {
            cfg,
            scanners,
            sources: HashMap::new(),
            users: HashMap::new(),
            events: VecDeque::new(),
            counters: GuardCounters::default(),
            next_sweep: None,
        }
    }

    pub fn config(&self) -> &GuardConfig {
        &self.cfg
    }

    pub fn counters(&self) -> GuardCounters {
        self.counters
    }

    /// Whether `ip` is one of the trusted sources (never limited, never banned).
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.cfg.trusted.iter().any(|net| net.contains(&ip))
    }

    /// Whether `ip` is banned at `now`.
    pub fn is_banned(&self, now: Instant, ip: IpAddr) -> bool {
        self.sources
            .get(&canonical(ip))
            .and_then(|s| s.banned_until)
            .is_some_and(|until| now < until)
    }

    /// A request that belongs to no call in progress, from `ip` with this User-Agent:
    /// counts it and says whether to handle or drop it.
    pub fn check(&mut self, now: Instant, ip: IpAddr, user_agent: Option<&str>) -> Verdict {
        let ip = canonical(ip);
        if self.is_trusted(ip) {
            return Verdict::Pass;
        }
        if let Some(ua) = user_agent {
            let ua = ua.to_ascii_lowercase();
            if self.scanners.iter().any(|s| ua.contains(s.as_str())) {
                self.counters.dropped_scanner += 1;
                return Verdict::Scanner;
            }
        }
        let (limit, window, ban) = (self.cfg.requests, self.cfg.window, self.cfg.ban);
        let Some(source) = self.source(now, ip) else {
            self.counters.untracked += 1;
            return Verdict::Pass;
        };
        if let Some(until) = source.banned_until.filter(|u| now < *u) {
            self.counters.dropped_banned += 1;
            return Verdict::Banned(until);
        }
        if source.requests.hit(now, window) > limit {
            let until = now + ban;
            source.banned_until = Some(until);
            self.counters.bans += 1;
            self.counters.dropped_banned += 1;
            self.events.push_back(GuardEvent::Banned {
                source: ip,
                reason: BanReason::Flood,
                user: None,
                until,
            });
            return Verdict::Banned(until);
        }
        Verdict::Pass
    }

    /// A login from `ip` for `user` was refused (wrong password, unknown user, a reused or
    /// expired nonce with a wrong answer). May ban the source.
    pub fn auth_failed(&mut self, now: Instant, ip: IpAddr, user: &str) {
        let ip = canonical(ip);
        self.counters.auth_failures += 1;
        if self.is_trusted(ip) {
            return;
        }
        let user_failures =
            if self.users.len() < self.cfg.max_users || self.users.contains_key(user) {
                let window = self.cfg.auth_user_window;
                let w = self
                    .users
                    .entry(user.to_owned())
                    .or_insert_with(|| Window::new(now));
                w.hit(now, window)
            } else {
                0
            };
        let (per_source, source_window, ban) = (
            self.cfg.auth_per_source,
            self.cfg.auth_source_window,
            self.cfg.ban,
        );
        let per_user = self.cfg.auth_per_user;
        let Some(source) = self.source(now, ip) else {
            self.counters.untracked += 1;
            return;
        };
        if source.banned_until.is_some_and(|u| now < u) {
            return;
        }
        let from_source = source.logins.hit(now, source_window);
        let reason = if from_source >= per_source {
            BanReason::LoginsFromSource
        } else if user_failures >= per_user {
            BanReason::LoginsForUser
        } else {
            return;
        };
        let until = now + ban;
        source.banned_until = Some(until);
        self.counters.bans += 1;
        self.events.push_back(GuardEvent::Banned {
            source: ip,
            reason,
            user: Some(user.to_owned()),
            until,
        });
    }

    /// The next event to log.
    pub fn poll_event(&mut self) -> Option<GuardEvent> {
        self.events.pop_front()
    }

    /// When [`Guard::handle_timeout`] should run next: a sweep of what has run out.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_sweep
    }

    /// Forgets windows that have run out and lifts bans that have.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.next_sweep.is_some_and(|t| now < t) {
            return;
        }
        let cfg = &self.cfg;
        let events = &mut self.events;
        self.sources.retain(|ip, s| {
            if let Some(until) = s.banned_until {
                if now < until {
                    return true;
                }
                s.banned_until = None;
                events.push_back(GuardEvent::Lifted { source: *ip });
            }
            !(s.requests.over(now, cfg.window) && s.logins.over(now, cfg.auth_source_window))
        });
        self.users.retain(|_, w| !w.over(now, cfg.auth_user_window));
        self.next_sweep = (!self.sources.is_empty() || !self.users.is_empty())
            .then(|| now + self.cfg.window.max(Duration::from_secs(1)));
    }

    /// The entry of `ip`, made if there is room.
    fn source(&mut self, now: Instant, ip: IpAddr) -> Option<&mut Source> {
        if !self.sources.contains_key(&ip) && self.sources.len() >= self.cfg.max_sources {
            return None;
        }
        if self.next_sweep.is_none() {
            self.next_sweep = Some(now + self.cfg.window.max(Duration::from_secs(1)));
        }
        Some(self.sources.entry(ip).or_insert_with(|| Source {
            requests: Window::new(now),
            logins: Window::new(now),
            banned_until: None,
        }))
    }
}

/// An IPv4 address carried in IPv6 (`::ffff:192.0.2.1`, from a dual-stack socket) is the
/// IPv4 address: one source, one window, and `127.0.0.1` in `trusted` covers both forms.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn guard() -> Guard {
        Guard::new(GuardConfig::default())
    }

    #[test]
    fn sixteen_requests_in_two_seconds_pass_and_the_seventeenth_bans_for_five_minutes() {
        let t0 = Instant::now();
        let mut g = guard();
        let src = ip("192.0.2.7");
        for i in 0..16 {
            let at = t0 + Duration::from_millis(100 * i);
            assert_eq!(
                g.check(at, src, Some("Zoiper")),
                Verdict::Pass,
                "request {i}"
            );
        }
        let at = t0 + Duration::from_millis(1900);
        let until = at + Duration::from_secs(300);
        assert_eq!(g.check(at, src, None), Verdict::Banned(until));
        assert_eq!(
            g.poll_event(),
            Some(GuardEvent::Banned {
                source: src,
                reason: BanReason::Flood,
                user: None,
                until
            })
        );
        // Still ignored just before the ban ends, whatever it sends; others are not.
        assert!(matches!(
            g.check(until - Duration::from_millis(1), src, None),
            Verdict::Banned(_)
        ));
        assert_eq!(g.check(at, ip("192.0.2.8"), None), Verdict::Pass);
        // After the ban: a fresh window.
        g.handle_timeout(until);
        assert_eq!(g.poll_event(), Some(GuardEvent::Lifted { source: src }));
        assert_eq!(g.check(until, src, None), Verdict::Pass);
        let c = g.counters();
        assert_eq!((c.bans, c.dropped_banned), (1, 2));
    }

    #[test]
    fn a_steady_caller_below_the_rate_is_never_banned() {
        let t0 = Instant::now();
        let mut g = guard();
        let src = ip("198.51.100.1");
        // 8 requests a second for a minute: 16 in every 2 s window, never 17.
        for i in 0..480u64 {
            let at = t0 + Duration::from_millis(125 * i);
            g.handle_timeout(at);
            assert_eq!(g.check(at, src, None), Verdict::Pass, "request {i}");
        }
        assert_eq!(g.counters().bans, 0);
    }

    #[test]
    fn trusted_sources_and_their_ipv6_mapped_form_are_never_limited() {
        let t0 = Instant::now();
        let mut g = Guard::new(GuardConfig {
            trusted: vec![
                "127.0.0.1/32".parse().unwrap(),
                "10.1.0.0/16".parse().unwrap(),
            ],
            ..GuardConfig::default()
        });
        for src in ["127.0.0.1", "::ffff:127.0.0.1", "10.1.200.3"] {
            for _ in 0..1000 {
                assert_eq!(g.check(t0, ip(src), None), Verdict::Pass, "{src}");
                g.auth_failed(t0, ip(src), "agent1");
            }
        }
        // Other loopback addresses are limited like everyone else.
        let other = ip("127.0.0.2");
        let verdicts: Vec<_> = (0..17).map(|_| g.check(t0, other, None)).collect();
        assert!(matches!(verdicts[16], Verdict::Banned(_)));
        assert!(verdicts[..16].iter().all(|v| *v == Verdict::Pass));
    }

    #[test]
    fn scanner_user_agents_are_dropped_whatever_their_case() {
        let t0 = Instant::now();
        let mut g = guard();
        for ua in [
            "friendly-scanner",
            "SIPVicious 0.3",
            "sipcli/v1.8",
            "VaxSIPUserAgent/3.1",
        ] {
            assert_eq!(g.check(t0, ip("203.0.113.9"), Some(ua)), Verdict::Scanner);
        }
        assert_eq!(
            g.check(t0, ip("203.0.113.9"), Some("baresip v1.0")),
            Verdict::Pass
        );
        assert_eq!(g.counters().dropped_scanner, 4);
    }

    #[test]
    fn five_refused_logins_in_five_seconds_ban_the_source() {
        let t0 = Instant::now();
        let mut g = guard();
        let src = ip("203.0.113.50");
        for i in 0..4 {
            g.auth_failed(t0 + Duration::from_secs(i), src, "agent1");
            assert!(!g.is_banned(t0 + Duration::from_secs(i), src));
        }
        // Spread over more than five seconds, five failures are no ban...
        let late = t0 + Duration::from_secs(6);
        g.auth_failed(late, src, "agent1");
        assert!(!g.is_banned(late, src));
        // ...but five within five seconds are.
        for i in 1..5 {
            g.auth_failed(late + Duration::from_millis(100 * i), src, "agent1");
        }
        let at = late + Duration::from_millis(400);
        assert!(g.is_banned(at, src));
        assert!(matches!(
            g.poll_event(),
            Some(GuardEvent::Banned { reason: BanReason::LoginsFromSource, user: Some(u), .. }) if u == "agent1"
        ));
        assert!(matches!(g.check(at, src, None), Verdict::Banned(_)));
    }

    #[test]
    fn twenty_refused_logins_for_one_user_from_many_sources_ban_the_next_guessers() {
        let t0 = Instant::now();
        let mut g = guard();
        // Twenty addresses, one guess each, a few seconds apart: no source reaches five.
        for i in 0..19u64 {
            let src = IpAddr::from([198, 51, 100, i as u8 + 1]);
            g.auth_failed(t0 + Duration::from_secs(10 * i), src, "agent1");
            assert!(!g.is_banned(t0 + Duration::from_secs(10 * i), src));
        }
        let at = t0 + Duration::from_secs(200);
        let twentieth = ip("198.51.100.99");
        g.auth_failed(at, twentieth, "agent1");
        assert!(g.is_banned(at, twentieth));
        assert!(matches!(
            g.poll_event(),
            Some(GuardEvent::Banned {
                reason: BanReason::LoginsForUser,
                ..
            })
        ));
        // Another user's failures are counted apart.
        g.auth_failed(at, ip("198.51.100.100"), "agent2");
        assert!(!g.is_banned(at, ip("198.51.100.100")));
        // Ten minutes after the first failure the user's window starts again.
        let later = t0 + Duration::from_secs(601);
        g.handle_timeout(later);
        g.auth_failed(later, ip("198.51.100.101"), "agent1");
        assert!(!g.is_banned(later, ip("198.51.100.101")));
    }

    #[test]
    fn the_table_is_bounded_and_swept() {
        let t0 = Instant::now();
        let mut g = Guard::new(GuardConfig {
            max_sources: 100,
            ..GuardConfig::default()
        });
        for i in 0..1000u32 {
            let src = IpAddr::from(i.to_be_bytes());
            assert_eq!(g.check(t0, src, None), Verdict::Pass);
        }
        assert_eq!(g.sources.len(), 100);
        assert_eq!(g.counters().untracked, 900);
        let sweep = g.poll_timeout().expect("a sweep is due");
        g.handle_timeout(sweep);
        assert!(g.sources.is_empty());
        assert_eq!(g.poll_timeout(), None);
    }
}
