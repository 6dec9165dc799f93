//! The seam between the daemon's runtime and the work it runs: named jobs,
//! what a run can end in, and the [`JobRunner`] that does the work.
//!
//! The runtime decides *when* a job runs (schedule, overlap, shutdown) and
//! records every run; a [`JobRunner`] decides *what* a run does.

use std::fmt;
use std::str::FromStr;

use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::config::{CronSchedule, Schedules};

/// The jobs halosync runs, each on its own schedule from `[sync.schedule]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobName {
    /// Exchange → Halo: read what changed in the mailboxes.
    Pull,
    /// Halo → Exchange: read what changed in Halo.
    Push,
    /// Both sides over the whole window: confirms deletions and heals drift.
    Reconcile,
    /// Renews Graph change-notification subscriptions before they expire.
    RenewSubscriptions,
    /// Deletes request logs, finished runs and old link tombstones.
    Prune,
}

impl JobName {
    /// Every job, in the order `status` and the docs list them.
    pub const ALL: [JobName; 5] = [
        Self::Pull,
        Self::Push,
        Self::Reconcile,
        Self::RenewSubscriptions,
        Self::Prune,
    ];

    /// The name used on the command line, in `sync_runs.job`, in metric
    /// labels and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pull => "pull",
            Self::Push => "push",
            Self::Reconcile => "reconcile",
            Self::RenewSubscriptions => "renew-subscriptions",
            Self::Prune => "prune",
        }
    }

    /// This job's schedule in the config.
    pub fn schedule(self, schedules: &Schedules) -> &CronSchedule {
        match self {
            Self::Pull => &schedules.pull,
            Self::Push => &schedules.push,
            Self::Reconcile => &schedules.reconcile,
            Self::RenewSubscriptions => &schedules.renew_subscriptions,
            Self::Prune => &schedules.prune,
        }
    }
}

impl fmt::Display for JobName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of [`JobName::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown job `{given}`; the jobs are: {}", valid_job_names())]
pub struct UnknownJob {
    pub given: String,
}

fn valid_job_names() -> String {
    JobName::ALL
        .iter()
        .map(|job| job.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for JobName {
    type Err = UnknownJob;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|job| job.as_str() == text)
            .ok_or_else(|| UnknownJob {
                given: text.to_owned(),
            })
    }
}

/// How one run of a job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    /// The job did its work. `summary` is one line for logs and the systemd
    /// status; `stats` is stored with the run (counts of actions and so on).
    Done {
        summary: String,
        stats: serde_json::Value,
    },
    /// The job cannot go on without a person (re-authorization, the
    /// mass-deletion guard). The daemon keeps running other work.
    NeedsOperator { reason: String },
    /// The run failed; the next tick tries again.
    Failed { error: String },
}

impl JobOutcome {
    /// The outcome's name in metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Done { .. } => "ok",
            Self::NeedsOperator { .. } => "needs_operator",
            Self::Failed { .. } => "failed",
        }
    }

    /// One line describing the outcome.
    pub fn describe(&self) -> &str {
        match self {
            Self::Done { summary, .. } => summary,
            Self::NeedsOperator { reason } => reason,
            Self::Failed { error } => error,
        }
    }
}

/// Does the work of a job. The daemon calls it on each scheduled tick and
/// `halosync run-job` once; neither calls it again for a job whose previous
/// run has not finished.
///
/// `stop` is cancelled when the daemon shuts down: finish the write in
/// flight, leave the rest for the next run and return. A run still going
/// after the shutdown grace is dropped (and recorded as interrupted).
pub trait JobRunner: Send + Sync + 'static {
    fn run(&self, job: JobName, stop: CancellationToken) -> BoxFuture<'static, JobOutcome>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_an_unknown_name_lists_the_valid_ones() {
        for job in JobName::ALL {
            assert_eq!(job.as_str().parse::<JobName>(), Ok(job));
            assert_eq!(job.to_string(), job.as_str());
        }
        let error = "renew_subscriptions".parse::<JobName>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown job `renew_subscriptions`; the jobs are: pull, push, reconcile, renew-subscriptions, prune"
        );
    }
}
