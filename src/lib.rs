//! halosync: two-way sync between HaloITSM appointments and Exchange Online
//! calendars (Microsoft Graph), run as a self-hosted daemon.
//!
//! Module map:
//! - [`cli`]: the `halosync` command tree.
//! - [`logging`]: log filtering and formats.
//! - [`config`]: the TOML schema, validation and secret loading.
//! - [`cloud`]: Microsoft's clouds and their identity and Graph roots.
//! - [`clock`]: the injectable source of "now".
//! - [`http`]: the HTTP plumbing every upstream shares: clients, retries,
//!   request budgets and the outbound request log.
//! - [`halo`]: the HaloITSM API client: auth, agents, appointments.
//! - [`sim`]: the Graph + Halo simulator used by tests and the demo.
//! - [`store`]: the SQLite database: schema, migrations, single-owner lock, backups.

pub mod cli;
pub mod clock;
pub mod cloud;
pub mod config;
pub mod halo;
pub mod http;
pub mod logging;
pub mod sim;
pub mod store;
