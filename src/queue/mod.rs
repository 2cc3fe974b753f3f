//! Agent queues (ACD). The pure ACD is `hotline_core::queue`, re-exported here under its
//! usual paths; the engine adds the ACD's task (`service`), which routes its actions to
//! calls, and the durable callback store (`store`, SQLite).
//!
//! Nothing here places calls, plays audio or opens sockets: the call tasks do, as the
//! actions say.

pub use hotline_core::queue::{acd, agent, config, ewt, stats, strategy};

pub mod deliver; // carrying out the ACD's actions on this node
pub mod relay; // a cluster node's queue service: inputs to the leader, its actions here
pub mod service; // the ACD's tokio task on one node
pub mod store; // durable callback requests (SQLite), beside the core's interface

pub use acd::{Acd, AcdError, Action, Input, OfferFailure, OverflowReason, Snapshot};
pub use agent::{AgentCommand, AgentState, feature_code};
pub use config::{AgentConfig, AgentsConfig, QueueConfig, QueuesConfig, Strategy, check};
pub use store::{CallbackId, CallbackStore, MemoryStore, SqliteStore, StoredCallback};

#[cfg(test)]
mod tests;
