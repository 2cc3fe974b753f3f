//! Calling back a caller who asked to keep their place in a queue. The ACD decides when
//! (the request reached the front and an agent is held for it); this gets the call to the
//! caller's number ready through the queue's `callback.dial` route (the target resolved,
//! the RTP port taken, the ids drawn) and starts the call. Its core rings the caller
//! ([`CallCore::call_back`]); once the caller answers, it says who is calling, puts the
//! call back in line and carries on as a queued call: the agent is offered, bridged, and
//! either side's hang-up ends both.
//!
//! A call back runs no flow. Its story is the queue's: placed, answered or not, connected,
//! who hung up. What it reports to the ACD: `CallbackAnswered` (through
//! [`AcdHandle::rejoin`](crate::queue::service::AcdHandle::rejoin)) once the caller has
//! heard the introduction, `CallbackFailed` when the caller did not answer
//! ([`CallOutput::Unreached`](super::core::CallOutput::Unreached)) or hung up before being
//! back in line, so that the ACD retries or gives up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{Instrument, info, info_span, warn};

use super::CallDeps;
use super::actor::{Call, CalledBack, Inbox, Origin, Recorder, Start, via_and_branches};
use super::core::{CallBack, CallCore};
use crate::flow::machine::{Audio, PromptRef};
use crate::flow::story::{CallStory, StoryEntry, StoryEvent};
use crate::leg::{Dial, Leg};
use crate::queue::acd::CallbackRefusal;
use crate::queue::acd::Input;
use crate::queue::deliver::CallbackDial;
use crate::queue::store::CallbackId;
use crate::records::CallKind;
use crate::registry::NewLiveCall;
use crate::sip::random_token;

// Said to the caller who answers, before the call is back in line.
use crate::queue::config::prompts::CALLBACK_INTRO as INTRO_PROMPT;

/// Calls back for `request` and serves the call to its end.
pub async fn call_back(deps: Arc<CallDeps>, request: CallbackDial) {
    // The call's id is drawn when it is placed (see `Call::call_back`).
    let span = info_span!(
        "callback",
        id = request.id.0,
        number = %request.number,
        queue = %request.queue,
        call_id = tracing::field::Empty
    );
    let _task = super::CallTask::new(&deps);
    async move {
        // Boxed: the dialling's state is not kept beside the call for its whole life.
        if let Some(call) = Box::pin(Call::call_back(deps, request)).await {
            call.serve().await;
        }
    }
    .instrument(span)
    .await
}

/// Tells the ACD that the attempt came to nothing (it retries later or gives up).
fn attempt_failed(deps: &CallDeps, id: CallbackId, why: &str) {
    info!(why, "callback attempt failed");
    if let Some(acd) = deps.acd() {
        acd.input(Input::CallbackFailed { id });
    }
}

/// The record of an attempt that was dialled and not answered: a record of its own
/// (`kind: callback`, never answered, outcome `failed` with the reason as its fault), so
/// the records show every call placed. Reports count these apart from the calls (see
/// docs/reports.md).
fn record_unanswered(deps: &CallDeps, mut recorder: Recorder, story: &CallStory, why: &str) {
    let records = deps.records();
    if !records.is_enabled() {
        return;
    }
    recorder.facts.ended_ms = super::actor::wall_ms();
    recorder.facts.fault = Some(why.to_owned());
    let (record, events) = hotline_core::record::build::build(&recorder.facts, story);
    records.send(crate::records::RecordMsg::Finish(record, events));
}

impl Call {
    /// Gets the call to the caller ready and starts it: its core rings the caller for the
    /// queue's `callback.ring_timeout`. `None` when it could not be placed at all (the
    /// ACD has been told).
    async fn call_back(deps: Arc<CallDeps>, request: CallbackDial) -> Option<Box<Call>> {
        let CallbackDial {
            id,
            number,
            queue,
            for_call,
            attempt,
        } = request;
        let live = deps.live();
        let Some(cfg) = live
            .config
            .queues
            .get(&queue)
            .and_then(|q| q.callback.clone())
        else {
            attempt_failed(&deps, id, "the queue no longer offers callbacks");
            return None;
        };
        // Checked again at the last moment: the request may be older than the patterns
        // (restored after a restart, or taken before a reload narrowed them).
        if !cfg.allows(&number) {
            warn!(source = %number, reason = CallbackRefusal::NotAllowed.as_str(), %queue,
                "callback refused");
            deps.metrics()
                .callback_refused(CallbackRefusal::NotAllowed.as_str());
            attempt_failed(&deps, id, "the number may not be called back");
            return None;
        }
        let sip = deps.sip().clone();
        let call_id = format!("{}@hotline", random_token(20));
        tracing::Span::current().record("call_id", call_id.as_str());
        let inbox = Inbox::new();
        sip.originate(&call_id, inbox.sip());
        let target = cfg.target(&number);
        let caller_id = cfg.caller_id.clone().unwrap_or_default();
        let dial = Dial {
            target: &target,
            call_id: Some(&call_id),
            caller_user: &caller_id,
            caller_display: None,
            listeners: deps.listeners(),
            prefer: None,
            via: None,
            public_address: live.config.public_address,
            no_media_timeout: live.config.no_media_timeout,
            // The hotline's own number, from its configuration.
            assert_identity: true,
            // A caller called back gets plain RTP, as most callers' phones expect.
            srtp: false,
        };
        // A call back is a call of its own in the records, linked to the call that asked.
        let placed = StoryEvent::CallbackPlaced {
            queue: queue.clone(),
            request: id.0,
            for_call,
            attempt,
        };
        // `caller` and `dialed` are both the number called (docs/records.md).
        let mut recorder = Recorder::new(CallKind::Callback, &call_id, &number, &number);
        let (mut leg, params) = match Leg::place(&deps, &sip, &call_id, dial).await {
            Ok(placed) => placed,
            Err(e) => {
                warn!(%target, error = %e, "call back not placed");
                sip.ended(&call_id);
                let story = CallStory {
                    call_id: call_id.clone(),
                    entries: vec![StoryEntry {
                        at: Duration::ZERO,
                        event: placed,
                    }],
                    ..CallStory::default()
                };
                record_unanswered(&deps, recorder, &story, "not placed");
                attempt_failed(&deps, id, "not placed");
                return None;
            }
        };
        info!(%target, "calling the caller back");
        let advertised =
            super::advertised_ip(live.config.public_address, leg.peer.local, leg.peer.remote);
        let (via, branches) = via_and_branches(&leg.peer, advertised);
        let lib = &live.prompts;
        let intro = vec![Audio::Prompt(PromptRef {
            language: lib.default_language().to_string(),
            fallback_language: lib.default_language().to_string(),
            name: INTRO_PROMPT.to_string(),
        })];
        let now = Instant::now();
        let mut core = CallCore::call_back(
            now,
            CallBack {
                leg: params,
                peer: leg.peer,
                ring_for: cfg.ring_timeout,
                queue,
                intro,
            },
            via,
            branches,
        );
        core.limit_length(now, live.config.max_call);
        core.note(now, placed);
        recorder.facts.flow_version = live.version.to_string();
        recorder.facts.language = lib.default_language().to_string();
        let listing = NewLiveCall {
            call_id: call_id.clone(),
            caller: number.clone(),
            dialed: target,
            flow: String::new(),
            version: live.version,
            flows: live.flows.clone(),
            started_at: std::time::SystemTime::now(),
        };
        let mut call = Call::new(Start {
            deps,
            peer: leg.peer,
            call_id,
            core,
            inbox,
            // The leg's port: once the caller answers, the media is the call's own.
            rtp_port: leg.take_port(),
            session: None,
            origin: Origin::CalledBack(Box::new(CalledBack {
                id,
                listing: Some(listing),
                settled: false,
            })),
            caller: number,
            caller_display: None,
            registration: None,
            live,
        });
        call.recorder = Some(recorder);
        Some(call)
    }

    /// The caller answered the call back: the call is listed for the admin.
    pub(super) fn called_back_answered(&mut self) {
        if let Origin::CalledBack(cb) = &mut self.origin
            && let Some(listing) = cb.listing.take()
        {
            self.registration = Some(self.deps.registry.register(listing));
        }
    }

    /// The call back was not answered: its record says why, and the ACD retries or gives
    /// up.
    pub(super) fn called_back_unreached(&mut self, why: &str) {
        let Origin::CalledBack(cb) = &mut self.origin else {
            return;
        };
        cb.settled = true;
        let id = cb.id;
        if let Some(recorder) = self.recorder.take() {
            record_unanswered(&self.deps, recorder, &self.core.story(), why);
        }
        attempt_failed(&self.deps, id, why);
    }

    /// The request this call answers, when it is a call back not yet back in line.
    pub(super) fn callback_to_rejoin(&self) -> Option<CallbackId> {
        match &self.origin {
            Origin::CalledBack(cb) if !cb.settled => Some(cb.id),
            _ => None,
        }
    }

    pub(super) fn callback_rejoined(&mut self) {
        if let Origin::CalledBack(cb) = &mut self.origin {
            cb.settled = true;
        }
    }

    /// A call back ends: if the caller never got back in line, the attempt failed.
    pub(super) fn called_back_ends(&mut self) {
        let Origin::CalledBack(cb) = &mut self.origin else {
            return;
        };
        if !cb.settled {
            cb.settled = true;
            attempt_failed(
                &self.deps,
                cb.id,
                "the caller hung up before reaching the line",
            );
        }
    }
}
