//! The call's outgoing legs: a transfer's target, or the agents a queue offers the call
//! to (several at once with `ring_all`). Places them, routes what the endpoint sends
//! them, bridges the caller to the one that is connected, and hangs up the rest. What a
//! transfer's news mean is the core's; an agent's are told to the ACD here.

use std::time::Duration;

use tracing::{debug, info, warn};

use super::actor::Call;
use super::core::{CallInput, LegRole};
use crate::leg::{Dial, Leg, LegNews};
use crate::media::prompt::Prompt;
use crate::media::session::MediaEvent;
use crate::queue::acd::{Input, OfferFailure};
use crate::sip::endpoint::ToCall;
use crate::sip::transport::Peer;
use crate::sip::uac::LegFailure;

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
        };
        let leg = Leg::place(&self.deps, &self.sip, &self.call_id, dial).await?;
        self.legs.push((role, leg));
        Ok(())
    }

    /// Places the leg the core asked for; tells it when that fails.
    pub(super) async fn dial(&mut self, role: LegRole, target: String) {
        match self.place_leg(role.clone(), &target, None).await {
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

    fn leg_news(&mut self, role: LegRole, news: LegNews) {
        match role {
            LegRole::Transfer(_) => self.transfer_news(role, news),
            LegRole::Agent(agent) => self.agent_news(agent, news),
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
                self.end_bridge();
                self.retire_leg(&role);
            }
        }
        self.input(CallInput::Leg { role, news });
    }

    fn agent_news(&mut self, agent: String, news: LegNews) {
        let role = LegRole::Agent(agent.clone());
        let Some(acd) = self.deps.acd().cloned() else {
            return;
        };
        let call = self.call_id.clone();
        match news {
            LegNews::Ringing => debug!(%agent, "agent rings"),
            // The ACD decides whom to connect (another agent may have answered first).
            LegNews::Answered => acd.input(Input::OfferAnswered { call, agent }),
            LegNews::Failed(f) => {
                self.retire_leg(&role);
                let reason = match f {
                    LegFailure::Busy => OfferFailure::Busy,
                    LegFailure::Declined => OfferFailure::Declined,
                    LegFailure::NoAnswer | LegFailure::Error { .. } => OfferFailure::Error,
                };
                acd.input(Input::OfferFailed {
                    call,
                    agent,
                    reason,
                });
            }
            LegNews::HungUp => {
                // Only an answered leg can hang up, and an answer the ACD took is a
                // connection there, even if its Connect has not reached this call yet
                // (then Connect finds the leg gone and ends the conversation at once).
                let connected = self.bridged_to.as_ref() == Some(&role);
                self.retire_leg(&role);
                acd.input(Input::AgentLeft { call });
                if connected {
                    self.end_bridge();
                    self.agent_hung_up(agent);
                }
            }
        }
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

    pub(super) fn on_leg_media(&mut self, ev: MediaEvent) {
        if let MediaEvent::NoMedia = ev
            && self.bridged_to.is_some()
        {
            info!("no media from the bridged leg; ending the call");
            self.end_bridge();
            self.hang_up_all_legs();
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

    /// Hangs up the leg of `role` (CANCEL or BYE) and keeps it until its last answer.
    pub(super) fn hang_up_leg(&mut self, role: &LegRole) {
        if let Some((_, leg)) = self.legs.iter_mut().find(|(r, _)| r == role) {
            leg.hang_up();
        }
        self.retire_leg(role);
    }

    pub(super) fn hang_up_all_legs(&mut self) {
        let roles: Vec<LegRole> = self.legs.iter().map(|(r, _)| r.clone()).collect();
        for r in roles {
            self.hang_up_leg(&r);
        }
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
