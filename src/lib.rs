//! hotline: an IVR and call-flow engine. Pure state machines for SIP, media and flows,
//! and a thin tokio shell that moves bytes and time between them.

pub mod config;
pub mod duration;
pub mod media;
pub mod sip;
