//! What the ACD tells one queued call, as data: the words between the engine's queue task
//! (which turns the ACD's actions into news, call by call) and the call's place in line
//! (which follows them). Only the vocabulary lives here; who sends it and how is the
//! engine's.

use std::time::Duration;

use crate::queue::acd::OverflowReason;
use crate::sip::peer::Peer;

/// What the ACD tells a queued call.
#[derive(Debug, Clone, PartialEq)]
pub enum QueueNews {
    /// Ring this agent: `contact` is the Request-URI, `via` where to send it (the
    /// registration's source, for phones behind NAT), when known.
    Offer {
        agent: String,
        contact: String,
        via: Option<Peer>,
    },
    /// Stop ringing this agent; `missed` when its ring time ran out (not when another
    /// agent answered or the caller left).
    CancelOffer { agent: String, missed: bool },
    /// Bridge to the agent's answered leg now; the agent will have `wrap_up` after the
    /// call.
    Connect {
        agent: String,
        waited: Duration,
        wrap_up: Duration,
    },
    /// Say this over the hold music.
    Announce {
        prompt: Option<String>,
        position: Option<usize>,
        ewt: Option<Duration>,
    },
    /// Tell the caller it may press `key` to be called back.
    OfferCallback { key: char },
    /// Leave the line for the step's `on_timeout`.
    Overflow {
        reason: OverflowReason,
        waited: Duration,
    },
}
