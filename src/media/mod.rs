//! Audio: RTP packets, G.711, DTMF in and out, tones, prompts, and the media clock that
//! serves every call's session.

pub mod bridge;
pub mod clock;
pub mod dtmf;
pub mod g711;
pub mod ports;
pub mod prompt;
pub mod recorder;
pub mod rtp;
pub mod session;
pub mod tone;
pub mod uring;
pub mod wav;
