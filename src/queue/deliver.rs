//! Carrying out the ACD's actions on this node: news to the queued call each concerns
//! (through the mailbox it gave when it joined), call backs through the [`Dialer`], and the
//! logs and metrics of what happened in line. Used by the one-node service, which runs the
//! ACD itself, and by the cluster relay, which gets the leader's actions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tracing::{debug, info, warn};

use crate::mailbox::Mailbox;
use crate::metrics::Metrics;
use crate::queue::acd::{Action, Input};
use crate::queue::store::CallbackId;
use crate::sip::registrar::Registrations;
use crate::sip::transport::Peer;
use hotline_core::queue::news::QueueNews;

/// A callback request to call now (the ACD holds an agent for it meanwhile).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackDial {
    pub id: CallbackId,
    pub number: String,
    pub queue: String,
    /// The call that asked (empty when not known), and this attempt's number from 1.
    pub for_call: String,
    pub attempt: u32,
}

/// Starts a call back; its outcome comes back as `CallbackAnswered` (through
/// [`AcdHandle::rejoin`]) or `CallbackFailed`.
pub type Dialer = Box<dyn Fn(CallbackDial) + Send>;

/// The queued calls of this node and what their news need.
pub struct Delivery {
    /// The mailbox of each call in line or bridged through the ACD.
    pub calls: HashMap<String, Mailbox<QueueNews>>,
    pub registrations: Registrations,
    pub dialer: Option<Dialer>,
    /// Where a caller's wait is observed when they leave the line.
    pub metrics: Arc<Metrics>,
}

impl Delivery {
    /// After an input that may end a call's business with the ACD (it left, its agent
    /// left, it asked for a call back): forgets the calls that no longer read their
    /// mailbox. A call still reading keeps it, since an answer to what it said before may
    /// still be on its way (in a cluster, a Connect to an agent who has just hung up).
    pub fn after_input(&mut self, input: &Input) {
        if matches!(
            input,
            Input::CallerLeft { .. } | Input::AgentLeft { .. } | Input::CallbackRequested { .. }
        ) {
            self.calls.retain(|_, m| m.is_open());
        }
    }

    /// What the ACD must hear of `agent`'s phones on this node now: its newest live
    /// binding (the one calls go to), or that it has none.
    pub fn registration(&self, agent: &str) -> Input {
        let now = Instant::now();
        match self.registrations.contacts(agent, now).first() {
            Some(b) => Input::AgentRegistered {
                agent: agent.to_string(),
                contact: b.contact.to_string(),
                expires: b.expires_at.saturating_duration_since(now),
            },
            None => Input::AgentUnregistered {
                agent: agent.to_string(),
            },
        }
    }

    pub fn send(&mut self, call: &str, news: QueueNews) {
        let gone = match self.calls.get(call) {
            Some(tx) => tx.send(news).is_err(),
            None => true,
        };
        if gone {
            debug!(%call, "queue news for a call that is gone");
        }
    }

    /// Where to send an offer to `agent` at `contact`: the source of its registration.
    fn via(&self, agent: &str, contact: &str) -> Option<Peer> {
        self.registrations
            .contacts(agent, Instant::now())
            .into_iter()
            .find(|b| b.contact.to_string() == contact)
            .map(|b| b.source)
    }

    /// Carries out one action. What comes back is an input for the ACD (a call back that
    /// could not be placed).
    pub fn carry_out(&mut self, action: Action) -> Option<Input> {
        {
            match action {
                Action::Offer {
                    call,
                    agent,
                    contact,
                    queue,
                } => {
                    info!(%call, %agent, %queue, "offering the call");
                    let via = self.via(&agent, &contact);
                    self.send(
                        &call,
                        QueueNews::Offer {
                            agent,
                            contact,
                            via,
                        },
                    );
                }
                Action::CancelOffer {
                    call,
                    agent,
                    missed,
                } => self.send(&call, QueueNews::CancelOffer { agent, missed }),
                Action::Connect {
                    call,
                    agent,
                    queue,
                    waited,
                    wrap_up,
                } => {
                    info!(%call, %agent, %queue, waited = ?waited, "caller connected to agent");
                    self.metrics.queue_left(&queue, waited);
                    self.send(
                        &call,
                        QueueNews::Connect {
                            agent,
                            waited,
                            wrap_up,
                        },
                    );
                }
                Action::Announce {
                    call,
                    prompt,
                    position,
                    ewt,
                    ..
                } => self.send(
                    &call,
                    QueueNews::Announce {
                        prompt,
                        position,
                        ewt,
                    },
                ),
                Action::OfferCallback { call, key } => {
                    self.send(&call, QueueNews::OfferCallback { key })
                }
                Action::CallbackRefused {
                    call,
                    queue,
                    number,
                    reason,
                } => {
                    warn!(source = %number, reason = reason.as_str(), %queue, %call,
                        "callback refused");
                    self.metrics.callback_refused(reason.as_str());
                }
                Action::Overflow {
                    call,
                    queue,
                    reason,
                    waited,
                } => {
                    info!(%call, %queue, reason = reason.as_str(), "caller leaves the queue");
                    // A caller turned away as they joined (full, no agents) never waited
                    // on the line: the ACD says so with a wait of exactly zero.
                    if !waited.is_zero() {
                        self.metrics.queue_left(&queue, waited);
                    }
                    self.send(&call, QueueNews::Overflow { reason, waited });
                    self.calls.remove(&call);
                }
                Action::Abandoned {
                    call,
                    queue,
                    waited,
                } => {
                    info!(%call, %queue, waited = ?waited, "caller abandoned the queue");
                    self.metrics.queue_left(&queue, waited);
                }
                Action::Lost {
                    call,
                    queue,
                    waited,
                } => {
                    // The node holding the caller died: nobody to tell.
                    info!(%call, %queue, waited = ?waited, "caller lost from the queue");
                    self.metrics.queue_left(&queue, waited);
                    self.calls.remove(&call);
                }
                Action::AgentStateChanged {
                    agent,
                    state,
                    reason,
                } => info!(%agent, state, reason = reason.as_deref().unwrap_or(""), "agent state"),
                Action::PlaceCallback {
                    id,
                    number,
                    queue,
                    for_call,
                    attempt,
                } => {
                    info!(id = id.0, %number, %queue, %for_call, attempt, "calling back");
                    match &self.dialer {
                        Some(dial) => dial(CallbackDial {
                            id,
                            number,
                            queue,
                            for_call,
                            attempt,
                        }),
                        None => {
                            warn!(id = id.0, "no way to call out; callback not placed");
                            return Some(Input::CallbackFailed { id });
                        }
                    }
                }
                Action::CallbackGivenUp { id, number, queue } => {
                    warn!(id = id.0, %number, %queue, "callback request given up")
                }
                Action::StoreFailed { message } => warn!(%message, "callback store failed"),
            }
        }
        None
    }
}
