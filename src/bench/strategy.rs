//! The two ways of keeping the calendars in step that the bench compares:
//! halosync's own runs (the engine, through `run_agents`, as `import` and
//! the service's pull/push jobs call it) and a polling integrator that
//! lists the whole window of every mailbox and of Halo every cycle.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;

use super::BenchError;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::graph::Window;
use crate::halo::{Agent, AppointmentQuery, HaloShared};
use crate::http::{SharedRequestLog, spawn_store_writer};
use crate::session::{Session, connection_client, served_agents};
use crate::store::Store;
use crate::sync::agents::{AgentResult, Reporter, run_agents};
use crate::sync::run::{AgentOutcome, RunOptions};

/// Mailboxes the polling integrator reads at once (each mailbox's reads
/// still go through the client's four-per-mailbox limit). Generous to the
/// baseline: halosync runs its agents one after another.
pub const BASELINE_PARALLEL_MAILBOXES: usize = 8;

/// What the runs of one strategy share across its cycles, as the service's
/// jobs do: a Halo token, and a request budget that is lifted — the bench
/// records Halo's hosted limit instead of enforcing it, and reports the time
/// it would impose.
pub fn halo_across_cycles() -> HaloShared {
    HaloShared::new(u32::MAX, Duration::from_millis(1))
}

/// A session like the service's jobs open, sharing `halo`.
async fn open_session(
    config: &Config,
    store: &Arc<Mutex<Store>>,
    log: SharedRequestLog,
    halo: &HaloShared,
) -> Result<Session, BenchError> {
    Session::open_sharing(config, Some(store.clone()), log, Some(halo.clone()))
        .await
        .map_err(|e| BenchError::Halosync(e.to_string()))
}

/// What one halosync run over every served agent did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunSummary {
    pub agents: usize,
    pub writes: usize,
    pub failed_writes: usize,
    /// Agents skipped or not run at all (a failed read, no connection).
    pub agents_not_synced: usize,
}

/// Counts what a run did, printing nothing.
#[derive(Default)]
struct Tally(RunSummary);

impl Reporter for Tally {
    fn started(&mut self, _agent: &Agent, _n: usize, _of: usize) {}

    fn progress(&mut self, _done: usize, _total: usize) -> bool {
        true
    }

    fn finished(&mut self, agent: &Agent, result: &AgentResult) {
        let mailbox = agent.mailbox().unwrap_or_default();
        match result {
            AgentResult::Ran(run) => match &run.outcome {
                AgentOutcome::Applied { applied, .. } => {
                    self.0.writes += applied.done.len();
                    self.0.failed_writes += applied.failed.len();
                    if let Some((_, error)) = applied.failed.first() {
                        tracing::warn!(%mailbox, %error, "bench: a write failed");
                    }
                }
                AgentOutcome::Planned { .. } => {}
                AgentOutcome::Skipped { reason, .. } => {
                    tracing::warn!(%mailbox, %reason, "bench: agent skipped");
                    self.0.agents_not_synced += 1;
                }
            },
            AgentResult::NotRun { reason, .. } => {
                tracing::warn!(%mailbox, %reason, "bench: agent not run");
                self.0.agents_not_synced += 1;
            }
        }
    }
}

/// One halosync run over every served agent with `options`, keeping the
/// outbound request log in the database as the commands do.
pub async fn halosync_run(
    config: &Config,
    store: &Arc<Mutex<Store>>,
    options: RunOptions,
    halo: &HaloShared,
) -> Result<RunSummary, BenchError> {
    let (log, writer) = spawn_store_writer(store.clone(), 1024);
    let summary = {
        let session = open_session(config, store, log, halo).await?;
        let agents = served_agents(config, &session.agents, None).map_err(BenchError::Halosync)?;
        let mut tally = Tally::default();
        tally.0.agents = agents.len();
        run_agents(config, &session, store, options, &agents, &mut tally).await;
        tally.0
    };
    // The session (every sender) is gone: the writer drains and stops.
    writer
        .await
        .map_err(|e| BenchError::Halosync(format!("the request log writer failed: {e}")))?;
    Ok(summary)
}

/// What one full-rescan cycle read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RescanSummary {
    pub mailboxes: usize,
    pub events_read: usize,
    pub appointments_read: usize,
}

/// The window halosync syncs (whole UTC days, as the engine computes it).
fn window(config: &Config) -> Window {
    let today = SystemClock
        .now()
        .date_naive()
        .and_time(chrono::NaiveTime::MIN)
        .and_utc();
    let days = |n: u32| chrono::Duration::days(i64::from(n));
    Window::new(
        today - days(config.sync.window.days_past),
        today + days(config.sync.window.days_ahead + 1),
    )
}

/// The polling integrator's cycle: every mailbox's whole window through
/// `calendarView` (halosync's own full read) and every Halo appointment in
/// the window in one listing, through the same clients. It is the reading
/// such an integrator cannot avoid; its writes are the same as halosync's
/// and are not repeated here.
pub async fn full_rescan(
    config: &Config,
    store: &Arc<Mutex<Store>>,
    halo: &HaloShared,
) -> Result<RescanSummary, BenchError> {
    let log: SharedRequestLog = Arc::new(crate::http::MemoryRequestLog::new());
    let session = open_session(config, store, log, halo).await?;
    let agents = served_agents(config, &session.agents, None).map_err(BenchError::Halosync)?;
    let window = window(config);
    let reads = futures_util::stream::iter(agents.iter().map(|agent| {
        let session = &session;
        async move {
            let mailbox = agent.mailbox().unwrap_or_default();
            let connection = config
                .connections
                .iter()
                .find(|c| c.agents.serves(&mailbox))
                .ok_or_else(|| BenchError::Halosync(format!("no connection serves {mailbox}")))?;
            let graph = connection_client(
                connection,
                &session.upstreams,
                session.tokens.as_ref(),
                Some(agent.id),
            )
            .map_err(|e| BenchError::Halosync(e.to_string()))?;
            graph
                .calendar_view(&mailbox, window)
                .await
                .map(|events| events.len())
                .map_err(|e| BenchError::Halosync(format!("{mailbox}: {e}")))
        }
    }))
    .buffer_unordered(BASELINE_PARALLEL_MAILBOXES)
    .collect::<Vec<_>>()
    .await;
    let mut summary = RescanSummary {
        mailboxes: agents.len(),
        ..RescanSummary::default()
    };
    for read in reads {
        summary.events_read += read?;
    }
    let listing = session
        .halo
        .appointments(&AppointmentQuery {
            start: window.start,
            end: window.end,
            agents: Vec::new(),
            include_deleted: false,
            modified_since: None,
        })
        .await
        .map_err(|e| BenchError::Halosync(format!("Halo: {e}")))?;
    summary.appointments_read = listing.appointments.len();
    Ok(summary)
}
