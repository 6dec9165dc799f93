//! halosync: two-way sync between HaloITSM appointments and Exchange Online
//! calendars (Microsoft Graph), run as a self-hosted daemon.
//!
//! Module map:
//! - [`admin`]: the loopback health and metrics listener.
//! - [`bench`]: `halosync bench`, halosync measured against the simulator.
//! - [`cli`]: the `halosync` command tree.
//! - [`clock`]: the injectable source of "now".
//! - [`cloud`]: Microsoft's clouds and their identity and Graph roots.
//! - [`config`]: the TOML schema, validation and secret loading.
//! - [`connect`]: signing accounts in (delegated and per-agent connections).
//! - [`daemon`]: the long-running service: job scheduling, run records,
//!   systemd notification and graceful shutdown.
//! - [`graph`]: the Microsoft Graph client.
//! - [`halo`]: the HaloITSM API client: auth, agents, appointments.
//! - [`http`]: the HTTP plumbing every upstream shares: clients, retries,
//!   request budgets, per-mailbox limits and the outbound request log.
//! - [`logging`]: log filtering and formats.
//! - [`metrics`]: the Prometheus series every part of halosync records into.
//! - [`model`]: the neutral appointment both sides map into, and its fingerprint.
//! - [`sim`]: the identity platform + Graph + Halo simulator used by tests
//!   and `halosync sim`.
//! - [`store`]: the SQLite database: schema, migrations, single-owner lock,
//!   backups.
//! - [`sync`]: the sync engine.
//! - [`token_cipher`]: encryption of refresh tokens at rest.
//! - [`webhook`]: the Graph change-notification listener, subscriptions and
//!   the queue of changed mailboxes.

pub mod admin;
pub mod bench;
pub mod cli;
pub mod clock;
pub mod cloud;
pub mod config;
pub mod connect;
pub mod daemon;
pub mod graph;
pub mod halo;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod session;
pub mod sim;
pub mod store;
pub mod sync;
pub mod token_cipher;
pub mod webhook;
