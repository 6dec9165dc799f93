//! The HTTP plumbing every upstream (Halo, Microsoft Graph, the identity
//! platform) shares: one `reqwest::Client` per upstream built once with
//! timeouts, a retry policy that honours `Retry-After`, a rolling request
//! budget, and the outbound request log.
//!
//! An upstream client (`halo`, `graph`) builds a [`reqwest::Request`], says
//! whether it may be replayed ([`Idempotency`]) and hands it to
//! [`UpstreamClient::send`], which waits for the budgets (the upstream's and,
//! for Graph, the mailbox's: [`MailboxLimits`]), retries what is safe to
//! retry, records every attempt and returns the whole [`Reply`]. Turning a
//! reply into a typed, upstream-specific error stays with the caller.

mod budget;
mod client;
mod error;
mod log;
mod mailbox;
mod retry;
mod scrub;

use std::fmt;

pub use budget::RollingBudget;
pub use client::{Reply, RequestContext, Timeouts, UpstreamClient, UpstreamSettings};
pub use error::{HttpError, TransportKind};
pub use log::{
    ChannelRequestLog, MemoryRequestLog, RequestLogSink, RequestRecord, SharedRequestLog,
    spawn_store_writer,
};
pub use mailbox::MailboxLimits;
pub use retry::{Idempotency, RetryPolicy, parse_retry_after};
pub use scrub::scrub_path;

/// Sent on every request so upstream administrators can tell halosync apart.
pub const USER_AGENT: &str = concat!("halosync/", env!("CARGO_PKG_VERSION"));

/// Which service a request goes to; stored in the request log's `upstream`
/// column (whose CHECK constraint lists the same three names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Upstream {
    Graph,
    Halo,
    /// The Microsoft identity platform (token endpoints).
    Identity,
}

impl Upstream {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Graph => "graph",
            Self::Halo => "halo",
            Self::Identity => "identity",
        }
    }

    /// Parses the request log's `upstream` column.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "graph" => Some(Self::Graph),
            "halo" => Some(Self::Halo),
            "identity" => Some(Self::Identity),
            _ => None,
        }
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
