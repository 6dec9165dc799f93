//! The sync engine: observe both sides, plan (pure), apply.
//!
//! - [`observe`]: reading both sides of a mailbox into a snapshot.
//! - [`plan`]: the planner, a pure function of links, observations and policy.
//! - [`graph_map`]: Exchange events ↔ the neutral appointment.
//! - [`halo_map`]: Halo appointments ↔ the neutral appointment.
//! - [`apply`]: carrying out a plan: the writes, and what each link becomes.
//! - [`agents`]: one run over several agents, each through its connection.
//! - [`run`]: one agent's run: replay, observe, plan, apply (or dry run).
//! - [`engine`]: the writes and links of one mailbox, over the clients and
//!   the store, journaled.
//! - [`replay`]: finishing the writes a crash left in the journal.
//! - [`owner`]: the owner override: Exchange writes made on a scheduler's
//!   meetings, the agent's copy linked.
//! - [`meetings`]: one meeting seen from several calendars: pairing a copy
//!   that arrived late, leaving out copies synced through another link.

pub mod agents;
pub mod apply;
pub mod engine;
pub mod graph_map;
pub mod halo_map;
pub mod meetings;
pub mod observe;
pub mod owner;
pub mod plan;
pub mod replay;
pub mod run;
