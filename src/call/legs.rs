//! The call's outgoing legs: a transfer's target, or the agents a queue offers the call
//! to (several at once with `ring_all`). Places them, routes what the endpoint sends
//! them, bridges the caller to the one the core names, and hangs them up; an agent's leg
//! accepts REFER when `agent_transfers` is configured, and the target it names is a leg
//! too. What a leg's news mean (for the flow, the queue place, the ACD) is the core's.

use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::actor::{Call, Origin};
use super::core::{CallInput, LegRole};
use crate::leg::{Dial, Leg, LegNews};
use crate::media::prompt::Prompt;
use crate::media::session::MediaEvent;
use crate::sip::endpoint::ToCall;
use crate::sip::transport::Peer;

impl Call {
    /// Places a leg for `role` to `target` (sent to `via` when given).
    pub(super) async fn place_leg(
        &mut self,
        role: LegRole,
        target: &str,
        via: Option<Peer>,
    ) -> Result<(), crate::leg::PlaceError> {
        let dial = Dial {
            target,
            call_id: None,
            caller_user: &self.caller,
            caller_display: self.caller_display.as_deref(),
            listeners: self.deps.listeners(),
            prefer: Some(self.peer),
            via,
            public_address: self.live.config.public_address,
            no_media_timeout: self.live.config.no_media_timeout,
            // Anyone can write any number in From: it is vouched for only when the call
            // came from a trusted trunk or proxy (`limits.trusted`).
            assert_identity: self
                .live
                .config
                .guard
                .trusted
                .iter()
                .any(|n| n.contains(&self.peer.remote.ip())),
            // An agent with `srtp: true` is offered SRTP; a transfer target plain RTP.
            // (Agents registered over TLS could default to it: see docs/reliability.md.)
            srtp: match &role {
                LegRole::Agent(name) => self
                    .live
                    .config
                    .agents
                    .get(name.as_str())
                    .is_some_and(|a| a.srtp),
                _ => false,
            },
        };
        let mut leg = Leg::place(&self.deps, &self.sip, &self.call_id, dial).await?;
        // Agents' phones may transfer the caller (REFER) where the configuration allows;
        // nobody else may ever make the engine call somewhere.
        if let (LegRole::Agent(_), Some(targets)) = (&role, &self.live.config.agent_transfers) {
            leg.accept_refer(targets.clone());
        }
        self.legs.push((role, leg));
        Ok(())
    }

    /// Places the leg the core asked for; tells it when that fails.
    pub(super) async fn dial(&mut self, role: LegRole, target: String, via: Option<Peer>) {
        match self.place_leg(role.clone(), &target, via).await {
            Ok(()) => info!(%target, ?role, "leg placed"),
            Err(e) => {
                warn!(%target, error = %e, "leg not placed");
                self.input(CallInput::LegNotPlaced {
                    role,
                    why: e.to_string(),
                });
            }
        }
    }

    pub(super) fn on_leg_sip(&mut self, leg_id: &str, msg: ToCall) {
        let (beside, media) = (self.session, self.leg_media());
        if let Some(i) = self.legs.iter().position(|(_, l)| l.call_id == leg_id) {
            let news = self.legs[i].1.on_sip(&self.deps, msg, beside, &media);
            if let Some(news) = news {
                let role = self.legs[i].0.clone();
                self.leg_news(role, news);
            }
            return;
        }
        if let Some(leg) = self.old_legs.iter_mut().find(|l| l.call_id == leg_id) {
            leg.on_sip(&self.deps, msg, None, &media);
            if !leg.closing {
                leg.close(&self.deps);
                self.old_legs.retain(|l| l.call_id != leg_id);
            }
        }
    }

    /// The earliest timer of the call's legs (those in use, those hung up and awaiting
    /// their last answers, and a call back's dialling leg): the call sleeps until then at
    /// the latest.
    pub(super) fn legs_timeout(&self) -> Option<Instant> {
        let callback = match &self.origin {
            Origin::CalledBack(cb) => cb.leg_timeout(),
            Origin::Called => None,
        };
        self.legs
            .iter()
            .map(|(_, l)| l)
            .chain(self.old_legs.iter())
            .filter_map(Leg::poll_timeout)
            .chain(callback)
            .min()
    }

    /// Hands `now` to every leg whose timer is due, and acts on what they report as on
    /// their SIP.
    pub(super) fn legs_due(&mut self, now: Instant) {
        let (beside, media) = (self.session, self.leg_media());
        let due: Vec<String> = self
            .legs
            .iter()
            .filter(|(_, l)| l.poll_timeout().is_some_and(|t| t <= now))
            .map(|(_, l)| l.call_id.clone())
            .collect();
        for id in due {
            // An earlier leg's news may have retired this one.
            let Some(i) = self.legs.iter().position(|(_, l)| l.call_id == id) else {
                continue;
            };
            if let Some(news) = self.legs[i]
                .1
                .handle_timeout(&self.deps, now, beside, &media)
            {
                let role = self.legs[i].0.clone();
                self.leg_news(role, news);
            }
        }
        let deps = self.deps.clone();
        self.old_legs.retain_mut(|leg| {
            leg.handle_timeout(&deps, now, None, &media);
            if leg.closing {
                return true;
            }
            leg.close(&deps);
            false
        });
        self.callback_leg_due(now);
    }

    fn leg_news(&mut self, role: LegRole, news: LegNews) {
        match role {
            LegRole::Transfer(_) | LegRole::Referred => self.transfer_news(role, news),
            LegRole::Agent(_) => self.agent_news(role, news),
        }
    }

    fn transfer_news(&mut self, role: LegRole, news: LegNews) {
        match &news {
            LegNews::Ringing => debug!("transfer target rings"),
            LegNews::Answered => info!("transfer answered"),
            LegNews::Failed(f) => {
                info!(why = %f, "transfer failed");
                self.retire_leg(&role);
            }
            LegNews::HungUp => {
                info!("transfer target hung up; ending the call");
                self.retire_leg(&role);
            }
            LegNews::Hold { on } => debug!(on, "transfer target holds"),
            LegNews::Refer { .. } => {}
        }
        self.input(CallInput::Leg { role, news });
    }

    fn agent_news(&mut self, role: LegRole, news: LegNews) {
        match &news {
            LegNews::Ringing => debug!(?role, "agent rings"),
            LegNews::Answered => debug!(?role, "agent answered"),
            LegNews::Hold { on } => debug!(?role, on, "agent holds"),
            LegNews::Refer { target } => info!(?role, %target, "agent transfers the caller"),
            LegNews::Failed(_) | LegNews::HungUp => self.retire_leg(&role),
        }
        self.input(CallInput::Leg { role, news });
    }

    /// Bridges the caller's media to the leg of `role` (which has answered).
    pub(super) fn bridge_to(&mut self, role: &LegRole) -> bool {
        let leg_session = self
            .legs
            .iter()
            .find(|(r, _)| r == role)
            .and_then(|(_, l)| l.session());
        match (self.session, leg_session) {
            (Some(a), Some(b)) => {
                self.deps.media.bridge(a, b);
                self.bridged_to = Some(role.clone());
                true
            }
            _ => false,
        }
    }

    /// A leg's media session's news. Silence from the bridged leg is the core's to act on
    /// (it ends the bridge and the call, and names the legs to hang up).
    pub(super) fn on_leg_media(&mut self, ev: MediaEvent) {
        if let MediaEvent::NoMedia = ev {
            if self.bridged_to.is_some() {
                info!("no media from the bridged leg");
            }
            self.input(CallInput::LegNoMedia);
        }
    }

    pub(super) fn end_bridge(&mut self) {
        if self.bridged_to.take().is_some()
            && let Some(a) = self.session
        {
            self.deps.media.unbridge(a);
        }
    }

    /// Tells the leg of `role` how the transfer its phone asked for goes (a NOTIFY).
    pub(super) fn notify_leg(&mut self, role: &LegRole, status: u16, reason: &str) {
        match self.legs.iter_mut().find(|(r, _)| r == role) {
            Some((_, leg)) => leg.notify_refer(status, reason),
            None => debug!(?role, status, "no leg to notify"),
        }
    }

    /// Hangs up the leg of `role` (CANCEL or BYE) and keeps it until its last answer.
    pub(super) fn hang_up_leg(&mut self, role: &LegRole) {
        if let Some((_, leg)) = self.legs.iter_mut().find(|(r, _)| r == role) {
            leg.hang_up();
        }
        self.retire_leg(role);
    }

    fn retire_leg(&mut self, role: &LegRole) {
        let Some(i) = self.legs.iter().position(|(r, _)| r == role) else {
            return;
        };
        let (_, mut leg) = self.legs.remove(i);
        if self.bridged_to.as_ref() == Some(role) {
            self.end_bridge();
        }
        if leg.closing {
            self.old_legs.push(leg);
        } else {
            leg.close(&self.deps);
        }
    }
}

/// A ringback cadence (425 Hz, one second on, four off) long enough for `timeout`.
pub(super) fn ringback(timeout: Duration) -> Vec<Prompt> {
    let cycles = (timeout.as_secs() / 5 + 1).min(120);
    let mut out = Vec::with_capacity(cycles as usize * 2);
    for _ in 0..cycles {
        out.push(Prompt::tone(425.0, Duration::from_secs(1), -13.0));
        out.push(Prompt::silence(Duration::from_secs(4)));
    }
    out
}
