//! One call as pure state: its core ([`core::CallCore`]: the UAS, the flow machine or a
//! feature code's tones, a transfer, recordings) and, inside it, the caller's place in an
//! agent queue ([`place::QueuePlace`]). Inputs and the time come in, outputs go out; the
//! engine's call actor carries them out (sockets, the media clock, the ACD's task, HTTP).
//!
//! Nothing here spawns, waits, reads the clock or draws a random number. Within this
//! module `core` names the call core; the language's own `core` crate is `::core`.

pub mod core; // the call as one pure state machine
pub mod place; // the caller's place in an agent queue, as one pure state machine

/// How a call ended, for its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    CallerHungUp,
    FlowHungUp,
    NoMedia,
    AckTimeout,
    /// The ACK of a late offer brought no usable answer.
    NoUsableAnswer,
    /// A transfer target or agent the caller was bridged to hung up.
    FarEndHungUp,
    /// The call lasted the engine's maximum call length and the engine hung it up.
    MaxCall,
    /// The call's task failed (a bug in the engine); the engine hung up what it could.
    Failed,
    /// The engine stopped and ended the call (a drain that ran out, a second stop).
    Interrupted,
}
