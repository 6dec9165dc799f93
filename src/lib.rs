//! halosync: two-way sync between HaloITSM appointments and Exchange Online
//! calendars (Microsoft Graph), run as a self-hosted daemon.
//!
//! Module map:
//! - [`clock`]: the injectable source of "now".
//! - [`sim`]: the Graph + Halo simulator used by tests and the demo.
//! - [`store`]: the SQLite database: schema, migrations, single-owner lock, backups.

pub mod clock;
pub mod sim;
pub mod store;
