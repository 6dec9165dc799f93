//! The label values halosync's series use, and the label sets they form.
//! Values are fixed vocabularies (or mailboxes, bounded by the agents
//! served), so no series can grow without bound.

use prometheus_client::encoding::EncodeLabelSet;

use crate::daemon::JobName;
use crate::sync::plan::Side;

/// What kind of write the engine applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    Create,
    Update,
    Delete,
    /// Two existing items recognised as one appointment and linked.
    Link,
}

impl ActionKind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Link => "link",
        }
    }
}

/// Work waiting to be done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// Mailboxes a change notification marked for a pull.
    Webhook,
    /// Writes recorded in the intent journal and not yet confirmed.
    Journal,
}

impl Queue {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Journal => "journal",
        }
    }
}

pub(super) fn side_label(side: Side) -> &'static str {
    match side {
        Side::Halo => "halo",
        Side::Exchange => "exchange",
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct JobLabels {
    pub(super) job: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct JobOutcomeLabels {
    pub(super) job: &'static str,
    pub(super) outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ActionLabels {
    pub(super) kind: &'static str,
    pub(super) side: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct WinnerLabels {
    pub(super) winner: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct MailboxLabels {
    pub(super) mailbox: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct UpstreamLabels {
    pub(super) upstream: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct UpstreamStatusLabels {
    pub(super) upstream: &'static str,
    /// The HTTP status, or `none` when no answer came back.
    pub(super) status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct OutcomeLabels {
    pub(super) outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct QueueLabels {
    pub(super) queue: &'static str,
}

pub(super) fn job_labels(job: JobName) -> JobLabels {
    JobLabels { job: job.as_str() }
}

/// Mailboxes compare without case in Exchange (and in the store), so one
/// mailbox is one series however it was spelt.
pub(super) fn mailbox_labels(mailbox: &str) -> MailboxLabels {
    MailboxLabels {
        mailbox: mailbox.to_ascii_lowercase(),
    }
}
