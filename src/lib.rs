//! hotline: an IVR and call-flow engine. Pure state machines for SIP, media and flows,
//! and a thin tokio shell that moves bytes and time between them.

pub mod admin; // the admin HTTP API: health, calls, flows, reload
pub mod call; // one call: joins dialog, media session and flow machine
pub mod caller; // a scripted caller for tests and load
pub mod config; // hotline.yaml
pub mod feature; // feature codes from agents' phones: *41 pause, *42 resume...
pub mod flow; // the call-flow language: model, loading, interpreter
pub mod leg; // an outgoing call leg (transfer, agent offer) and its media
pub mod load; // the load tool: many scripted calls, measured
pub mod media; // RTP, G.711, DTMF, prompts, the media clock
pub mod preflight; // load prompts, flows and routes before serving, and report every problem
pub mod queue; // agent queues (ACD): lines, agents, strategies, callbacks
pub mod registry; // the calls in progress, for the admin
pub mod reload; // live reload of flows, prompts and routes
pub mod server; // the running hotline
pub mod sip; // SIP codec, transactions, dialogs, SDP, endpoint, sockets
pub mod tools; // simulate, flow tests, graph: the admin's tools beside check
pub mod webhook; // the IO of the http step: one request, JSON back
