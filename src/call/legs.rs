//! The call's outgoing legs: a transfer's target, or the agents a queue offers the call
//! to (several at once with `ring_all`). Places them, routes what the endpoint sends
//! them, bridges the caller to the one that is connected, and hangs up the rest. What a
//! leg's news mean for the flow or the queue is decided here, per the leg's role.

use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::Outcome;
use super::actor::{Call, RINGBACK_PLAY};
use super::core::CallInput;
use crate::flow::machine::{Event, RequestId, TransferOutcome};
use crate::leg::{Dial, Leg, LegNews};
use crate::media::prompt::Prompt;
use crate::media::session::{MediaEvent, SessionCommand};
use crate::queue::acd::{Input, OfferFailure};
use crate::sip::endpoint::ToCall;
use crate::sip::transport::Peer;
use crate::sip::uac::LegFailure;

/// Why a leg was placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LegRole {
    /// The flow's `transfer` step with this request id.
    Transfer(RequestId),
    /// An offer of the queued call to this agent.
    Agent(String),
}

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

    /// Places the transfer's leg and lets the caller hear ringback meanwhile.
    pub(super) async fn start_transfer(
        &mut self,
        id: RequestId,
        target: String,
        timeout: Duration,
    ) {
        match self.place_leg(LegRole::Transfer(id), &target, None).await {
            Ok(()) => {
                info!(%target, "transferring");
                self.leg_deadline = Some(Instant::now() + timeout);
                self.media(SessionCommand::Play {
                    id: RINGBACK_PLAY,
                    prompts: ringback(timeout),
                    barge_in: false,
                });
            }
            Err(e) => {
                warn!(%target, error = %e, "transfer not placed");
                let outcome = TransferOutcome::Failed(e.to_string());
                self.input(CallInput::Io(Event::TransferDone { id, outcome }));
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
            LegRole::Transfer(id) => self.transfer_news(id, news),
            LegRole::Agent(agent) => self.agent_news(agent, news),
        }
    }

    fn transfer_news(&mut self, id: RequestId, news: LegNews) {
        let role = LegRole::Transfer(id);
        match news {
            LegNews::Ringing => debug!("transfer target rings"),
            LegNews::Answered => {
                self.leg_deadline = None;
                self.media(SessionCommand::Stop { id: RINGBACK_PLAY });
                self.bridge_to(&role);
                info!("transfer answered; bridged");
                self.input(CallInput::Io(Event::TransferDone {
                    id,
                    outcome: TransferOutcome::Connected,
                }));
            }
            LegNews::Failed(f) => {
                self.leg_deadline = None;
                self.media(SessionCommand::Stop { id: RINGBACK_PLAY });
                info!(why = %f, "transfer failed");
                self.retire_leg(&role);
                let outcome = match f {
                    LegFailure::Busy => TransferOutcome::Busy,
                    LegFailure::NoAnswer => TransferOutcome::NoAnswer,
                    other => TransferOutcome::Failed(other.to_string()),
                };
                self.input(CallInput::Io(Event::TransferDone { id, outcome }));
            }
            LegNews::HungUp => {
                info!("transfer target hung up; ending the call");
                self.end_bridge();
                self.retire_leg(&role);
                self.input(CallInput::HangUp(Outcome::FarEndHungUp));
            }
        }
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

    /// The target did not answer within the step's timeout: CANCEL it.
    pub(super) fn transfer_not_answered(&mut self) {
        self.leg_deadline = None;
        let Some(id) = self.legs.iter().find_map(|(r, _)| match r {
            LegRole::Transfer(id) => Some(*id),
            LegRole::Agent(_) => None,
        }) else {
            return;
        };
        self.hang_up_leg(&LegRole::Transfer(id));
        self.media(SessionCommand::Stop { id: RINGBACK_PLAY });
        info!("transfer target did not answer in time");
        self.input(CallInput::Io(Event::TransferDone {
            id,
            outcome: TransferOutcome::NoAnswer,
        }));
    }

    pub(super) fn on_leg_media(&mut self, ev: MediaEvent) {
        if let MediaEvent::NoMedia = ev
            && self.bridged_to.is_some()
        {
            info!("no media from the bridged leg; ending the call");
            self.end_bridge();
            self.hang_up_all_legs();
            self.input(CallInput::HangUp(Outcome::NoMedia));
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
fn ringback(timeout: Duration) -> Vec<Prompt> {
    let cycles = (timeout.as_secs() / 5 + 1).min(120);
    let mut out = Vec::with_capacity(cycles as usize * 2);
    for _ in 0..cycles {
        out.push(Prompt::tone(425.0, Duration::from_secs(1), -13.0));
        out.push(Prompt::silence(Duration::from_secs(4)));
    }
    out
}
