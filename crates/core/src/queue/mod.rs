//! Agent queues (ACD) as pure state: callers waiting for agents, agents with their states,
//! the strategies that match them, the estimated wait, live figures, and the interface of
//! the store that keeps callback requests. Driven with `now` (see [`acd`]); the engine's
//! queue task and the SQLite store live in the engine.

pub mod acd; // the line, offers, announcements, callbacks: inputs in, actions out
pub mod agent; // one agent's state and reachability; feature codes
pub mod config; // the queues: and agents: sections of hotline.yaml
pub mod ewt; // handle-time window and the estimated wait formula
pub mod news; // what the ACD tells one queued call
pub mod stats; // per-queue figures: service level, ASA, AHT
pub mod store; // the callback store's interface, and one in memory
pub mod strategy; // which free agent gets the caller

pub use acd::{Acd, AcdError, AcdState, Action, Input, OfferFailure, OverflowReason, Snapshot};
pub use agent::{AgentCommand, AgentState, feature_code};
pub use config::{AgentConfig, AgentsConfig, QueueConfig, QueuesConfig, Strategy, check};
pub use store::{CallbackId, CallbackStore, MemoryStore, StoredCallback};
