//! The sync engine: observe both sides, plan (pure), apply.
//!
//! - [`plan`]: the planner, a pure function of links, observations and policy.
//! - [`halo_map`]: Halo appointments ↔ the neutral appointment.
//! - [`apply`]: carrying out a plan: the writes, and what each link becomes.

pub mod apply;
pub mod halo_map;
pub mod plan;
