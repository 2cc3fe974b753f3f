//! Audio: RTP packets, G.711, DTMF, prompts, and the media clock that serves every call.

pub mod ports;
pub mod rtp;
