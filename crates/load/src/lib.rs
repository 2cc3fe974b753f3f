//! hotline-load: the load tool (`hotline load`) and the scripted SIP caller it drives,
//! which the engine's integration tests drive too. It talks to an engine only over the
//! network (and starts one as a child process), so it builds on `hotline-core` (codec,
//! SDP, media) and never on the engine library.
//!
//! The core's modules are visible here under the paths the engine gives them
//! (`crate::sip`, `crate::media`, `crate::config`), so one caller reads the same anywhere.

pub mod caller; // a scripted caller for tests and load
pub mod load; // the load tool: many scripted calls, measured

pub(crate) use hotline_core::{config, media};

pub(crate) mod sip {
    pub(crate) use hotline_core::sip::*;

    /// A random token for tags and branches: the caller draws its own, as the engine does.
    pub(crate) fn random_token(len: usize) -> String {
        token(len, |n| rand::random_range(0..n))
    }
}
