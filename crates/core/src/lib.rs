//! hotline-core: the pure protocol parts of hotline. SIP (codec, transactions, dialogs,
//! UAC/UAS, SDP, digest), the call itself (its core, which joins the UAS, the flow
//! machine, a transfer and its place in a queue), the call-flow language and its machine,
//! the ACD, and the media a call carries (G.711, DTMF, tones, prompts, the media session),
//! with the configuration they are built from. The modules are listed in the order a call
//! meets them.
//!
//! Nothing here may open a socket, spawn a thread or task, read the clock or draw a random
//! number: time (`now: Instant`) and randomness (tags, branches, SSRCs) come in from the
//! engine, and outputs go back to it as values. The crate's dependencies keep tokio and
//! sockets out (tests/purity.rs), and its clippy.toml forbids the clock and thread calls.
//! Reading prompt and flow files is allowed: it happens before a call, never inside one.

// Tests build their instants from a real one: the rule holds for the library, not its tests.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod outputs; // the pure machines' output queues let their room go once drained
pub mod sip; // SIP codec, transactions, dialogs, UAC/UAS, SDP, digest
pub mod call; // one call as pure state: its core (UAS, flow, transfer, recordings) and queue place
pub mod flow; // the call-flow language: model, loading, checking, interpreter
pub mod media; // RTP packets, G.711, DTMF, tones, prompts, the media session
pub mod queue; // the ACD: lines, agents, strategies, estimated wait, callback requests
pub mod config; // hotline.yaml
pub mod config_text; // hotline.yaml before serde: ${NAME} and KEY_file substituted, positions kept
pub mod record; // a call's record and events, as the records store keeps them
pub mod report; // the contact-centre report, computed from call records
pub mod cluster; // a node's lease and leadership among nodes sharing one database
pub mod paths; // prompts, recordings and flow files stay inside their folders
pub mod capacity; // Erlang C and A, and a simulation of a queue on the ACD: agents needed
