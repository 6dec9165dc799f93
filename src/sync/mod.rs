//! The sync engine: observe both sides, plan (pure), apply.
//!
//! - [`plan`]: the planner, a pure function of links, observations and policy.

pub mod plan;
