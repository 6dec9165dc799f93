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
//! - [`identity`]: the Microsoft identity platform (token and authorize
//!   endpoints), mounted at `/login`.
//! - [`halo`]: the HaloITSM API (auth, agents, appointments), mounted at
//!   `/halo`.

pub mod faults;
pub mod halo;
pub mod identity;
pub mod request_log;
pub mod token;
