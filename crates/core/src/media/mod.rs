//! Audio without IO: RTP packets, G.711, DTMF in and out, tones, prompts, recordings, and
//! the media session that turns one call's datagrams into events and its prompts into one
//! frame per tick. The sockets and the clock that drive sessions are the engine's.

pub mod bridge;
pub mod dtmf;
pub mod g711;
pub mod prompt;
pub mod recorder;
pub mod rtp;
pub mod session;
pub mod srtp;
pub mod tone;
pub mod wav;
