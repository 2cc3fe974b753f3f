//! Audio: the media clock that serves every call's session and the RTP port pool. The pure
//! parts (RTP packets, G.711, DTMF, tones, prompts, the session) are `hotline_core::media`,
//! re-exported here under their usual paths.

pub use hotline_core::media::{
    bridge, dtmf, g711, prompt, recorder, rtp, session, srtp, tone, wav,
};

pub mod clock;
pub mod ports;
pub mod uring;
