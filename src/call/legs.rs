//! The IO of the call's outgoing legs (a transfer's target, the agents a queue offers
//! the call to, the target an agent's REFER names): their SIP machines and every decision
//! about them are the core's. This places the legs the core asks for
//! ([`CallOutput::Dial`](super::core::CallOutput::Dial)) and tells it what it needs to
//! build their machines, hands it what the endpoint routes to them, sends their messages,
//! runs their media sessions, bridges the caller to the one the core names, and frees a
//! leg once the core says it is over.

use tracing::{debug, info, warn};

use super::actor::Call;
use super::core::{CallInput, LegMedia, LegRole};
use crate::leg::{Dial, Leg};
use crate::media::session::MediaEvent;
use crate::sip::endpoint::ToCall;
use crate::sip::leg::LegParams;
use crate::sip::transport::Peer;

impl Call {
    /// Places a leg for `role` to `target` (sent to `via` when given).
    async fn place_leg(
        &mut self,
        role: &LegRole,
        target: &str,
        via: Option<Peer>,
    ) -> Result<(Leg, LegParams), crate::leg::PlaceError> {
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
            srtp: match role {
                LegRole::Agent(name) => self
                    .live
                    .config
                    .agents
                    .get(name.as_str())
                    .is_some_and(|a| a.srtp),
                _ => false,
            },
        };
        let (leg, mut params) = Leg::place(&self.deps, &self.sip, &self.call_id, dial).await?;
        // Agents' phones may transfer the caller (REFER) where the configuration allows;
        // nobody else may ever make the engine call somewhere.
        if let LegRole::Agent(_) = role {
            params.refer = self.live.config.agent_transfers.clone();
        }
        Ok((leg, params))
    }

    /// Places the leg the core asked for, and tells the core whether it could.
    pub(super) async fn dial(&mut self, role: LegRole, target: String, via: Option<Peer>) {
        match self.place_leg(&role, &target, via).await {
            Ok((leg, params)) => {
                info!(%target, ?role, "leg placed");
                let peer = leg.peer;
                self.legs.push(leg);
                self.input(CallInput::LegPlaced {
                    role,
                    params: Box::new(params),
                    peer,
                });
            }
            Err(e) => {
                warn!(%target, error = %e, "leg not placed");
                self.input(CallInput::LegNotPlaced {
                    role,
                    why: e.to_string(),
                });
            }
        }
    }

    /// What the endpoint routed to the leg `leg_id`: for the core, which holds its SIP
    /// machine.
    pub(super) fn on_leg_sip(&mut self, leg_id: &str, msg: ToCall) {
        let Some(input) = crate::leg::leg_input(msg) else {
            return;
        };
        self.input(CallInput::LegSip {
            call_id: leg_id.to_owned(),
            input,
        });
    }

    /// What the core wants of the media of the leg `call_id`.
    pub(super) fn leg_media_command(&mut self, call_id: &str, media: LegMedia) {
        let (beside, media_tx) = (self.session, self.leg_media());
        let Some(leg) = self.legs.iter_mut().find(|l| l.call_id == call_id) else {
            debug!(leg = %call_id, "media for no leg");
            return;
        };
        match media {
            LegMedia::Start(agreed) => {
                leg.start_media(&self.deps, &agreed, beside, &media_tx);
            }
            LegMedia::Update {
                remote,
                send,
                reset_latch,
            } => leg.update_media(&self.deps, remote, send, reset_latch),
        }
    }

    /// The leg `call_id` is over: its media, port and routing are freed.
    pub(super) fn leg_over(&mut self, call_id: &str) {
        if self.bridged_to.as_deref() == Some(call_id) {
            self.end_bridge();
        }
        if let Some(i) = self.legs.iter().position(|l| l.call_id == call_id) {
            let mut leg = self.legs.remove(i);
            leg.close(&self.deps);
        }
    }

    /// Frees every leg left (the call's task is over).
    pub(super) fn close_legs(&mut self) {
        self.end_bridge();
        for mut leg in std::mem::take(&mut self.legs) {
            leg.close(&self.deps);
        }
    }

    /// Bridges the caller's media to the leg of `role` (which has answered).
    pub(super) fn bridge_to(&mut self, role: &LegRole) -> bool {
        let Some(call_id) = self.core.leg_call_id(role).map(str::to_owned) else {
            return false;
        };
        let leg_session = self
            .legs
            .iter()
            .find(|l| l.call_id == call_id)
            .and_then(Leg::session);
        match (self.session, leg_session) {
            (Some(a), Some(b)) => {
                self.deps.media.bridge(a, b);
                self.bridged_to = Some(call_id);
                true
            }
            _ => false,
        }
    }

    /// A leg's media session's news. Silence from the bridged leg is the core's to act on
    /// (it ends the bridge and the call, and hangs up the legs).
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
}
