//! halosync: two-way sync between HaloITSM appointments and Exchange Online
//! calendars (Microsoft Graph), run as a self-hosted daemon.
//!
//! Module map:
//! - [`clock`]: the injectable source of "now".

pub mod clock;
