//! One agent: its state (logged out, available, ringing, on call, wrap-up, paused), where
//! it can be reached, and the facts strategies read (idle since, calls answered, misses).
//!
//! Owns the agent's own transitions and the rules that need only the agent: a registration
//! that expired, a pause asked for during a call that takes effect when the call ends. It
//! must not know about callers or lines; the `Acd` decides when to ring whom.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::config::AgentConfig;

/// The reason given to an agent paused for missing calls.
pub const MISSED_CALLS_REASON: &str = "missed calls";

/// What an agent is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentState {
    LoggedOut,
    Available,
    /// Being offered this call.
    Ringing {
        call: String,
    },
    OnCall {
        call: String,
    },
    /// After-call work until this moment; no call is offered, from any queue.
    WrapUp {
        until: Instant,
    },
    Paused {
        reason: String,
    },
}

impl AgentState {
    pub fn name(&self) -> &'static str {
        match self {
            AgentState::LoggedOut => "logged_out",
            AgentState::Available => "available",
            AgentState::Ringing { .. } => "ringing",
            AgentState::OnCall { .. } => "on_call",
            AgentState::WrapUp { .. } => "wrap_up",
            AgentState::Paused { .. } => "paused",
        }
    }

    /// Logged in and not paused: counted as serving the queue for the estimated wait.
    pub fn serving(&self) -> bool {
        !matches!(self, AgentState::LoggedOut | AgentState::Paused { .. })
    }
}

/// What an agent (from its phone or the admin API) asks for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentCommand {
    Login,
    Logout,
    Pause { reason: String },
    Resume,
}

/// The feature codes an agent dials from its phone.
pub const FEATURE_CODES: [(&str, &str); 4] = [
    ("*41", "pause"),
    ("*42", "resume"),
    ("*43", "login"),
    ("*44", "logout"),
];

/// The command behind a dialed feature code (`*41` pause, `*42` resume, `*43` login,
/// `*44` logout), if `dialed` is one. A pause from the phone has the reason "phone".
pub fn feature_code(dialed: &str) -> Option<AgentCommand> {
    match dialed.trim() {
        "*41" => Some(AgentCommand::Pause {
            reason: "phone".to_owned(),
        }),
        "*42" => Some(AgentCommand::Resume),
        "*43" => Some(AgentCommand::Login),
        "*44" => Some(AgentCommand::Logout),
        _ => None,
    }
}

/// Something asked during a call, done when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AfterCall {
    Pause(String),
    Logout,
}

#[derive(Debug, Clone)]
pub struct Agent {
    pub name: String,
    /// Queue name to penalty.
    pub queues: BTreeMap<String, u32>,
    pub skills: BTreeSet<String>,
    pub fixed_uri: Option<String>,
    /// Overrides the queue's wrap-up.
    pub wrap_up: Option<Duration>,
    registration: Option<(String, Instant)>,
    state: AgentState,
    since: Instant,
    pub(crate) idle_since: Instant,
    pub(crate) answered: u64,
    pub(crate) misses: u32,
    pub(crate) after_call: Option<AfterCall>,
    /// Logged out on purpose: a registration refresh does not log the agent back in.
    pub(crate) logged_out_on_purpose: bool,
}

impl Agent {
    /// A new agent: available at once when it has a fixed address, else logged out until
    /// it registers.
    pub fn new(name: &str, cfg: &AgentConfig, now: Instant) -> Self {
        let state = if cfg.uri.is_some() {
            AgentState::Available
        } else {
            AgentState::LoggedOut
        };
        Agent {
            name: name.to_owned(),
            queues: cfg.queues.clone(),
            skills: cfg.skills.iter().cloned().collect(),
            fixed_uri: cfg.uri.clone(),
            wrap_up: cfg.wrap_up,
            registration: None,
            state,
            since: now,
            idle_since: now,
            answered: 0,
            misses: 0,
            after_call: None,
            logged_out_on_purpose: false,
        }
    }

    pub fn state(&self) -> &AgentState {
        &self.state
    }

    /// When the current state began.
    pub fn since(&self) -> Instant {
        self.since
    }

    pub fn answered(&self) -> u64 {
        self.answered
    }

    pub fn misses(&self) -> u32 {
        self.misses
    }

    /// Where to ring the agent now: its registered contact, else its fixed address.
    pub fn contact(&self, now: Instant) -> Option<&str> {
        match &self.registration {
            Some((c, expires)) if *expires > now => Some(c.as_str()),
            _ => self.fixed_uri.as_deref(),
        }
    }

    /// When the registration runs out, if it is still running.
    pub fn registration_expires(&self) -> Option<Instant> {
        self.registration.as_ref().map(|(_, e)| *e)
    }

    /// Free for a call now: available and reachable.
    pub fn offerable(&self, now: Instant) -> bool {
        self.state == AgentState::Available && self.contact(now).is_some()
    }

    pub fn has_skills(&self, wanted: &[String]) -> bool {
        wanted.iter().all(|s| self.skills.contains(s))
    }

    pub(crate) fn set_state(&mut self, now: Instant, state: AgentState) -> bool {
        if self.state == state {
            return false;
        }
        if state == AgentState::Available && !matches!(self.state, AgentState::Ringing { .. }) {
            self.idle_since = now;
        }
        self.state = state;
        self.since = now;
        true
    }

    /// Takes an edited configuration, keeping the state, the registration and the
    /// figures. An agent reachable only through the `uri` that was removed is logged out.
    pub(crate) fn reconfigure(&mut self, cfg: &AgentConfig, now: Instant) {
        self.queues = cfg.queues.clone();
        self.skills = cfg.skills.iter().cloned().collect();
        self.wrap_up = cfg.wrap_up;
        let had_uri = self.fixed_uri.is_some();
        self.fixed_uri = cfg.uri.clone();
        if self.contact(now).is_none() && self.state == AgentState::Available {
            self.set_state(now, AgentState::LoggedOut);
        } else if !had_uri && cfg.uri.is_some() && self.state == AgentState::LoggedOut {
            // A fixed address is a login, as at start.
            self.set_state(now, AgentState::Available);
        }
    }

    /// The registered contact and when it runs out.
    pub(crate) fn registration(&self) -> Option<(&str, Instant)> {
        self.registration.as_ref().map(|(c, e)| (c.as_str(), *e))
    }

    /// Puts back a saved registration, state and its start (an ACD restored elsewhere).
    pub(crate) fn restore(
        &mut self,
        registration: Option<(String, Instant)>,
        state: AgentState,
        since: Instant,
    ) {
        self.registration = registration;
        self.state = state;
        self.since = since;
    }

    pub(crate) fn register(&mut self, contact: String, expires: Instant) {
        self.registration = Some((contact, expires));
    }

    pub(crate) fn unregister(&mut self) {
        self.registration = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_codes() {
        assert_eq!(
            feature_code("*41"),
            Some(AgentCommand::Pause {
                reason: "phone".into()
            })
        );
        assert_eq!(feature_code("*42"), Some(AgentCommand::Resume));
        assert_eq!(feature_code("*4"), None);
        assert_eq!(FEATURE_CODES.len(), 4);
    }

    #[test]
    fn contact_prefers_a_live_registration() {
        let t0 = Instant::now();
        let cfg = AgentConfig {
            password: None,
            ha1_md5: None,
            ha1_sha256: None,
            uri: Some("sip:carol@192.0.2.1".into()),
            queues: BTreeMap::new(),
            skills: vec![],
            wrap_up: None,
            srtp: false,
        };
        let mut a = Agent::new("carol", &cfg, t0);
        assert!(a.offerable(t0));
        a.register("sip:carol@192.0.2.9".into(), t0 + Duration::from_secs(60));
        assert_eq!(a.contact(t0), Some("sip:carol@192.0.2.9"));
        assert_eq!(
            a.contact(t0 + Duration::from_secs(60)),
            Some("sip:carol@192.0.2.1")
        );
    }
}
