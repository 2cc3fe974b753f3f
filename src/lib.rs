//! hotline: an IVR and call-flow engine. Pure state machines for SIP, media and flows
//! (the `hotline-core` crate, re-exported under the same paths), and the thin tokio
//! shell here that moves bytes and time between them. The load tool and the scripted
//! test caller are the `hotline-load` crate.
//!
//! The modules are listed in the order a call meets them: signalling brings it in, the
//! call conducts it through its flow, media carries its audio and keys, a queue may hand
//! it to an agent; around them the engine that is configured, checked and served, and
//! last the tools that drive it from outside.

pub mod mailbox; // a task's one inbox, posted to in each sender's own message type
pub mod sip; // SIP codec, transactions, dialogs, UAC/UAS, SDP, endpoint, sockets
pub mod call; // one call: its UAS, media session, flow machine, queue place and legs
pub mod feature; // feature codes from agents' phones: *41 pause, *42 resume...
pub mod leg; // an outgoing call leg (transfer, agent offer) and its media
pub mod flow; // the call-flow language: model, loading, checking, interpreter
pub mod webhook; // the IO of the http step: one request, JSON back
pub mod media; // RTP, G.711, DTMF, prompts, the media clock
pub mod queue; // agent queues (ACD): lines, agents, strategies, callbacks
pub mod registry; // the calls in progress, for the admin
pub mod records; // call records: what a call leaves behind, on their way to the store

pub use hotline_core::config; // hotline.yaml (parsed in the core: plain data)
pub use hotline_core::config_text; // hotline.yaml before serde: ${NAME} and KEY_file substituted
pub mod preflight; // load prompts, flows and routes before serving, and report every problem
pub mod server; // the running hotline
pub mod fd_limit; // the open-files limit serve raises, and the descriptor budget caps stay under
pub mod reload; // live reload of flows, prompts and routes
pub mod admin; // the admin HTTP API: health, calls, flows, reload, metrics
pub mod metrics; // the Prometheus metrics: counters where events happen, figures read at scrape
pub mod cluster; // this node's lease and leadership among nodes sharing one database

pub mod tools; // simulate, flow tests, graph: the admin's tools beside check
