//! A stateful simulator of the parts of the Microsoft identity platform,
//! Microsoft Graph v1.0 and the HaloITSM API that halosync uses.
//!
//! Tests and `halosync demo` point the real daemon at it; it must never be
//! reachable from production code paths.
//!
//! - [`faults`]: latency, fault injection and rolling request budgets shared by
//!   both simulated upstreams.
//! - [`token`]: JWT-shaped access tokens shared by the identity, Graph and
//!   Halo simulators.
//! - [`graph`]: the simulated Microsoft Graph v1.0 (mounted at `/graph`).

pub mod faults;
pub mod graph;
pub mod token;
