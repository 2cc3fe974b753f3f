//! The call-flow language. The language and its machine are `hotline_core::flow`,
//! re-exported here under their usual paths; what needs the engine's view of the calls
//! in progress (`impact`) is here.

pub use hotline_core::flow::{
    check, diagnostic, duration, flowset, load, machine, model, say, schedule, story, template,
};

pub mod impact; // which calls in progress a new version's changed steps concern
