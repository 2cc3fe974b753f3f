//! Capacity planning: how many agents a queue needs. The queueing formulas (Erlang C and
//! Erlang A) and a simulation of one queue on the real ACD, both pure.
//!
//! Owns the arithmetic and the simulated world only. It must not read records, files or
//! the clock: the command that asks (`hotline capacity`) gathers the inputs and prints.

pub mod erlang; // Erlang B, C and A: service level, ASA, abandonment for a number of agents
pub mod simulate; // one queue on the real ACD, with seeded random callers
