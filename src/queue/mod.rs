//! Agent queues (ACD): callers waiting for agents, agents with their states, the
//! strategies that match them, the estimated wait, live figures and durable callback
//! requests.
//!
//! Everything here is pure state driven by the shell with `now` (see [`acd`]), except the
//! callback store, which writes SQLite. Nothing here places calls, plays audio or opens
//! sockets: the shell does, as the actions say.

pub mod acd; // the line, offers, announcements, callbacks: inputs in, actions out
pub mod agent; // one agent's state and reachability; feature codes
pub mod config; // the queues: and agents: sections of hotline.yaml
pub mod ewt; // handle-time window and the estimated wait formula
pub mod service; // the ACD's tokio task: routes actions to calls
pub mod stats; // per-queue figures: service level, ASA, AHT
pub mod store; // durable callback requests (SQLite, memory)
pub mod strategy; // which free agent gets the caller

pub use acd::{Acd, AcdError, Action, Input, OfferFailure, OverflowReason, Snapshot};
pub use agent::{AgentCommand, AgentState, feature_code};
pub use config::{AgentConfig, AgentsConfig, QueueConfig, QueuesConfig, Strategy, check};
pub use store::{CallbackId, CallbackStore, MemoryStore, SqliteStore, StoredCallback};

#[cfg(test)]
mod tests;
