//! The jobs `halosync run` schedules and `halosync run-job` runs.
//!
//! - **pull** and **push**: an incremental two-way sync of every served
//!   agent. A run always reads both sides from its cursors (one delta round
//!   and one Halo page per agent when nothing changed), so the two schedules
//!   only say how soon a change on each side is picked up at the latest.
//! - **reconcile**: a full pass over the window, confirming deletions
//!   nothing announced and healing drift.
//! - **renew-subscriptions**: with webhooks on, every served agent
//!   subscribed, departed agents unsubscribed, and what is due renewed (see
//!   [`super::subscriptions`]); with them off, nothing to do.
//! - **prune**: retention (see [`super::prune`]).
//!
//! Sync jobs, and the sync a webhook notification triggers
//! ([`ProductionJobs::sync_mailbox`]), never run at the same time: they
//! share a lock, so two runs cannot plan the same change twice.

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use tokio::task::JoinHandle;

use super::subscriptions::SubscriptionUpkeep;
use super::{Context, JobName, JobOutcome, JobRunner, prune};
use crate::halo::Agent;
use crate::http::{RequestLogSink, RequestRecord, SharedRequestLog, spawn_store_writer};
use crate::metrics::ActionKind;
use crate::session::served_agents;
use crate::sync::agents::{AgentResult, Reporter, run_agents};
use crate::sync::plan::{Action, Reason, Side};
use crate::sync::run::{AgentOutcome, Mode, Pass, RunOptions};

/// The jobs of this build; `subscriptions` when webhooks are on.
pub fn production_jobs(
    context: &Context,
    subscriptions: Option<Arc<SubscriptionUpkeep>>,
) -> Arc<ProductionJobs> {
    Arc::new(ProductionJobs {
        context: context.clone(),
        sync_lock: Arc::new(tokio::sync::Mutex::new(())),
        subscriptions,
    })
}

pub struct ProductionJobs {
    context: Context,
    sync_lock: Arc<tokio::sync::Mutex<()>>,
    subscriptions: Option<Arc<SubscriptionUpkeep>>,
}

impl ProductionJobs {
    /// An incremental sync of the agent whose mailbox changed (a webhook
    /// notification), under the same lock as the scheduled syncs.
    pub async fn sync_mailbox(&self, mailbox: &str, stop: CancellationToken) -> JobOutcome {
        let _running = self.sync_lock.lock().await;
        sync(&self.context, Pass::Incremental, Some(mailbox), stop).await
    }
}

impl JobRunner for ProductionJobs {
    fn run(&self, job: JobName, stop: CancellationToken) -> BoxFuture<'static, JobOutcome> {
        let context = self.context.clone();
        match job {
            JobName::Prune => async move { prune(&context).await }.boxed(),
            JobName::Pull | JobName::Push | JobName::Reconcile => {
                let pass = if job == JobName::Reconcile {
                    Pass::Full
                } else {
                    Pass::Incremental
                };
                let lock = self.sync_lock.clone();
                async move {
                    let _running = lock.lock().await;
                    if stop.is_cancelled() {
                        return JobOutcome::Failed {
                            error: "stopped before it began".into(),
                        };
                    }
                    sync(&context, pass, None, stop).await
                }
                .boxed()
            }
            JobName::RenewSubscriptions => match self.subscriptions.clone() {
                Some(upkeep) => async move {
                    let (log, writer) = metered_log(&context);
                    let outcome = upkeep.run(&context, log).await;
                    finish_log(writer).await;
                    outcome
                }
                .boxed(),
                None => async move {
                    JobOutcome::Done {
                        summary: "webhooks are off ([webhook] enabled = false): nothing to renew"
                            .into(),
                        stats: json!({}),
                    }
                }
                .boxed(),
            },
        }
    }
}

/// The outbound request log, with each request also counted in the
/// metrics (API calls by upstream and status).
#[derive(Debug)]
struct MeteredLog {
    log: SharedRequestLog,
    metrics: crate::metrics::Metrics,
}

impl RequestLogSink for MeteredLog {
    fn record(&self, record: RequestRecord) {
        self.metrics
            .upstream_request(record.upstream, record.status);
        self.log.record(record);
    }

    fn throttled(&self, upstream: crate::http::Upstream, wait: std::time::Duration) {
        self.metrics.throttled_wait(upstream, wait);
    }
}

/// The outbound request log of one job run, kept in the database and
/// counted in the metrics; the handle finishes once every sender is gone.
pub fn metered_log(context: &Context) -> (SharedRequestLog, JoinHandle<()>) {
    let (log, writer) = spawn_store_writer(context.store.clone(), 1024);
    let log: SharedRequestLog = Arc::new(MeteredLog {
        log,
        metrics: context.metrics.clone(),
    });
    (log, writer)
}

async fn finish_log(writer: JoinHandle<()>) {
    if let Err(e) = writer.await {
        tracing::warn!(error = %e, "the request log writer stopped abnormally");
    }
}

/// One sync of every served agent, its writes counted in the metrics.
async fn sync(
    context: &Context,
    pass: Pass,
    only: Option<&str>,
    stop: CancellationToken,
) -> JobOutcome {
    let config = &context.config;
    let (log, writer) = metered_log(context);
    let outcome = match context.session(log).await {
        Err(error) => JobOutcome::Failed {
            error: error.to_string(),
        },
        Ok(session) => {
            let agents = match served_agents(config, &session.agents, only) {
                Ok(agents) => agents,
                Err(error) => return JobOutcome::Failed { error },
            };
            let options = RunOptions {
                mode: Mode::Sync,
                pass,
                dry_run: false,
                allow_deletes: false,
            };
            let mut counter = Counter {
                context: context.clone(),
                stop,
                writes: 0,
                failed: 0,
                skipped: Vec::new(),
            };
            let verdict = run_agents(
                config,
                &session,
                &context.store,
                options,
                &agents,
                &mut counter,
            )
            .await;
            let summary = format!(
                "{} agent(s): {} write(s), {} failed, {} skipped",
                agents.len(),
                counter.writes,
                counter.failed,
                counter.skipped.len()
            );
            let stats = json!({
                "agents": agents.len(),
                "writes": counter.writes,
                "failed": counter.failed,
                "skipped": counter.skipped,
            });
            if verdict.needs_operator {
                JobOutcome::NeedsOperator {
                    reason: format!("{summary}; `halosync status` says what to do"),
                }
            } else if verdict.failed {
                JobOutcome::Failed { error: summary }
            } else {
                JobOutcome::Done { summary, stats }
            }
        }
    };
    // Every sender is gone with the session: the log writer drains and stops.
    finish_log(writer).await;
    outcome
}

/// Counts a run's writes into the metrics and the job's summary.
struct Counter {
    context: Context,
    /// Cancelled when the service stops: the run ends after the write in
    /// flight, and the next run (after a restart) carries on.
    stop: CancellationToken,
    writes: usize,
    failed: usize,
    skipped: Vec<String>,
}

impl Reporter for Counter {
    fn started(&mut self, _agent: &Agent, _n: usize, _of: usize) {}

    fn progress(&mut self, _done: usize, _total: usize) -> bool {
        !self.stop.is_cancelled()
    }

    fn finished(&mut self, agent: &Agent, result: &AgentResult) {
        let mailbox = agent.mailbox().unwrap_or_default();
        let metrics = &self.context.metrics;
        let run = match result {
            AgentResult::NotRun { reason, .. } => {
                tracing::warn!(%mailbox, %reason, "agent not synced");
                self.skipped.push(mailbox);
                return;
            }
            AgentResult::Ran(run) => run,
        };
        match &run.outcome {
            AgentOutcome::Skipped { reason, diagnosis } => {
                tracing::warn!(%mailbox, %reason, diagnosis = diagnosis.as_deref().unwrap_or("-"), "agent not synced");
                self.skipped.push(mailbox);
            }
            AgentOutcome::Planned { .. } => {}
            AgentOutcome::Applied { plan, applied, .. } => {
                for action in &applied.done {
                    if let Some((kind, side)) = counted(action) {
                        metrics.sync_action(kind, side);
                        self.writes += 1;
                    }
                    if let Action::Create { reason, .. } | Action::Update { reason, .. } = action
                        && let Reason::Conflict { winner } = reason
                    {
                        metrics.sync_conflict(*winner);
                    }
                }
                if let Some((_, first)) = applied.failed.first() {
                    tracing::warn!(%mailbox, failed = applied.failed.len(), first_error = %first,
                        "writes not carried out; the next run tries again");
                }
                self.failed += applied.failed.len();
                if let Some(guard) = plan.guard {
                    metrics.deletions_held(&mailbox, guard.would_delete as u64);
                    tracing::warn!(%mailbox, would_delete = guard.would_delete, limit = guard.limit,
                        "mass-deletion guard: nothing deleted; run `halosync sync --once --allow-deletes --agent {mailbox}` once checked");
                }
                if applied.failed.is_empty() {
                    metrics.mailbox_synced(&mailbox, self.context.clock.now());
                }
            }
        }
    }
}

/// The metric an applied action counts as, if it wrote anything.
fn counted(action: &Action) -> Option<(ActionKind, Side)> {
    Some(match action {
        Action::Create { to, .. } => (ActionKind::Create, *to),
        Action::Update { to, .. } => (ActionKind::Update, *to),
        Action::Delete { to, .. } => (ActionKind::Delete, *to),
        // A link writes on neither side; counted once, as Exchange's.
        Action::Match { .. } => (ActionKind::Link, Side::Exchange),
        Action::Record { .. } | Action::Forget { .. } => return None,
    })
}
