//! A stateful simulator of the parts of the Microsoft identity platform,
//! Microsoft Graph v1.0 and the HaloITSM API that halosync uses.
//!
//! Tests and `halosync sim` point the real daemon at it; it must never be
//! reachable from production code paths.
//!
//! - [`server`]: the composed simulator on one port, with its control API.
//! - [`identity`]: the Microsoft identity platform (token and authorize
//!   endpoints), mounted at `/login`.
//! - [`graph`]: Microsoft Graph v1.0 (users, events, calendarView and delta,
//!   subscriptions and notifications, `$batch`, throttling), mounted at
//!   `/graph`.
//! - [`halo`]: the HaloITSM API (auth, agents, appointments), mounted at
//!   `/halo`.
//! - [`faults`]: latency, fault injection and rolling request budgets shared by
//!   every simulated upstream.
//! - [`request_log`]: request counts per route, for `GET /_sim/state`.
//! - [`token`]: JWT-shaped access tokens shared by the identity, Graph and
//!   Halo simulators.

pub mod faults;
pub mod graph;
pub mod halo;
pub mod identity;
pub mod request_log;
pub mod server;
pub mod token;
