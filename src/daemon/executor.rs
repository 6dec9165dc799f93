//! Running jobs: one run at a time per job, each recorded in `sync_runs`,
//! counted in the metrics and reported to systemd.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Context, DaemonError, JobName, JobOutcome, JobRunner, Notifier, with_store};
use crate::store::RunOutcome;

/// Why a run that was still going when halosync stopped is marked failed.
const INTERRUPTED: &str =
    "interrupted: halosync stopped before this run finished; the next run picks up what it left";

/// Runs jobs for the scheduler and for `run-job`.
pub(super) struct Executor {
    context: Context,
    jobs: Arc<dyn JobRunner>,
    notifier: Notifier,
    /// Held for the whole of a job's run, so a job never overlaps itself.
    running: BTreeMap<JobName, Arc<Mutex<()>>>,
    /// Cancelled to ask running jobs to finish their current write and stop.
    stop: CancellationToken,
    /// Cancelled when the grace is over: runs still going are dropped.
    abandon: CancellationToken,
    /// Every spawned run and skip record, so shutdown can wait for them.
    tasks: TaskTracker,
}

impl Executor {
    pub(super) fn new(context: Context, jobs: Arc<dyn JobRunner>, notifier: Notifier) -> Self {
        Self {
            context,
            jobs,
            notifier,
            running: JobName::ALL
                .into_iter()
                .map(|job| (job, Arc::default()))
                .collect(),
            stop: CancellationToken::new(),
            abandon: CancellationToken::new(),
            tasks: TaskTracker::new(),
        }
    }

    /// The database's owner starts by closing runs a previous process left
    /// open, so `status` never shows a run as going that is not.
    pub(super) async fn close_interrupted_runs(&self) -> Result<(), DaemonError> {
        let now = self.context.clock.now();
        let closed = with_store(&self.context.store, move |store| {
            store.close_interrupted_runs(INTERRUPTED, now)
        })
        .await?;
        if closed > 0 {
            tracing::warn!(
                runs = closed,
                "closed job runs left open by a halosync that stopped mid-run"
            );
        }
        Ok(())
    }

    /// A scheduled tick of `job`: start a run, unless the previous one is
    /// still going, in which case the tick is skipped and counted.
    pub(super) fn tick(self: &Arc<Self>, job: JobName) {
        let Some(lock) = self.running.get(&job) else {
            return;
        };
        match Arc::clone(lock).try_lock_owned() {
            Ok(guard) => {
                let executor = Arc::clone(self);
                self.tasks.spawn(async move {
                    // An error here was logged where it happened.
                    let _ = executor.run_locked(job).await;
                    drop(guard);
                });
            }
            Err(_) => {
                self.context.metrics.job_tick_skipped(job);
                tracing::warn!(job = %job, "skipped a scheduled run: the previous run is still going");
                let store = Arc::clone(&self.context.store);
                let now = self.context.clock.now();
                self.tasks.spawn(async move {
                    let recorded = with_store(&store, move |store| {
                        store.record_skipped_run(
                            job.as_str(),
                            "the previous run was still going",
                            now,
                        )
                    })
                    .await;
                    if let Err(error) = recorded {
                        tracing::error!(job = %job, %error, "could not record a skipped run");
                    }
                });
            }
        }
    }

    /// Runs `job` now, waiting for a run already going to finish first.
    pub(super) async fn run_recorded(&self, job: JobName) -> Result<JobOutcome, DaemonError> {
        let lock = self.running.get(&job).map(Arc::clone).unwrap_or_default();
        let _guard = lock.lock().await;
        self.run_locked(job).await
    }

    /// Asks running jobs to stop at their next safe point.
    pub(super) fn ask_to_stop(&self) {
        self.stop.cancel();
    }

    /// Drops runs still going; each is recorded as interrupted.
    pub(super) fn abandon(&self) {
        self.abandon.cancel();
    }

    /// Stops taking runs, asks running jobs to stop, waits up to `grace`,
    /// then drops what is still going. Returns the jobs that were dropped.
    pub(super) async fn wind_down(&self, grace: Duration) -> Vec<JobName> {
        self.tasks.close();
        self.ask_to_stop();
        if tokio::time::timeout(grace, self.tasks.wait()).await.is_ok() {
            return Vec::new();
        }
        let abandoned = self
            .running
            .iter()
            .filter(|(_, lock)| lock.try_lock().is_err())
            .map(|(job, _)| *job)
            .collect();
        self.abandon();
        self.tasks.wait().await;
        abandoned
    }

    async fn run_locked(&self, job: JobName) -> Result<JobOutcome, DaemonError> {
        let Context {
            store,
            metrics,
            clock,
            ..
        } = &self.context;
        let started_at = clock.now();
        let run = with_store(store, move |store| store.start_run(job.as_str(), started_at))
            .await
            .inspect_err(|error| {
                tracing::error!(job = %job, %error, "could not record the start of a run; not running it");
            })?;
        metrics.job_started(job);
        tracing::info!(job = %job, run, "job started");
        let timer = tokio::time::Instant::now();
        let outcome = tokio::select! {
            outcome = self.jobs.run(job, self.stop.child_token()) => outcome,
            () = self.abandon.cancelled() => JobOutcome::Failed { error: INTERRUPTED.to_owned() },
        };
        let finished_at = clock.now();
        metrics.job_finished(job, &outcome, timer.elapsed(), finished_at);
        log_outcome(job, &outcome);
        self.notifier.status(&format!(
            "last run: {job} {} at {}: {}",
            outcome.label(),
            finished_at.format("%Y-%m-%d %H:%M:%SZ"),
            outcome.describe()
        ));
        let (result, stats, error) = row_of(&outcome);
        with_store(store, move |store| {
            store.finish_run(run, result, Some(&stats), error.as_deref(), finished_at)
        })
        .await
        .inspect_err(|error| {
            tracing::error!(job = %job, run, %error, "could not record the end of a run");
        })?;
        // A run changes what the gauges show; no need to wait for the timer.
        if let Err(error) = super::gauges::refresh(&self.context).await {
            tracing::warn!(%error, "could not read the metrics' gauges from the database");
        }
        Ok(outcome)
    }
}

/// How an outcome is stored: `stats` keeps the summary beside the runner's
/// own stats, and marks a run that needs an operator so `status` can say so.
fn row_of(outcome: &JobOutcome) -> (RunOutcome, serde_json::Value, Option<String>) {
    match outcome {
        JobOutcome::Done { summary, stats } => (
            RunOutcome::Ok,
            json!({ "summary": summary, "stats": stats }),
            None,
        ),
        JobOutcome::NeedsOperator { reason } => (
            RunOutcome::Failed,
            json!({ "needs_operator": true }),
            Some(format!("operator action needed: {reason}")),
        ),
        JobOutcome::Failed { error } => (RunOutcome::Failed, json!({}), Some(error.clone())),
    }
}

fn log_outcome(job: JobName, outcome: &JobOutcome) {
    match outcome {
        JobOutcome::Done { summary, .. } => tracing::info!(job = %job, %summary, "job finished"),
        JobOutcome::NeedsOperator { reason } => {
            tracing::error!(job = %job, %reason, "job needs an operator")
        }
        JobOutcome::Failed { error } => tracing::warn!(job = %job, %error, "job failed"),
    }
}
