//! The long-running service behind `halosync run`.
//!
//! [`run`] takes everything from its caller — the shared [`Context`], the
//! bound admin listener, the [`JobRunner`] that does the work and the
//! shutdown future — so tests drive it exactly as the binary does (after
//! mini-redis and atuin). It schedules each job from `[sync.schedule]`, never
//! lets a job overlap itself, records every run in `sync_runs`, serves
//! health and metrics, keeps systemd informed, and on shutdown gives running
//! jobs a bounded grace before it returns.
//!
//! The caller checks what must hold before the service may say it is ready
//! (the config, the database migrations, a first token) before calling
//! [`run`]; `run` sends `READY=1` once its listener serves.

mod executor;
mod gauges;
mod jobs;
mod notify;
mod production;
mod prune;
mod scheduler;
mod shutdown;
mod subscriptions;

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminState, Readiness};
use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, Environment};
use crate::halo::HaloShared;
use crate::http::SharedRequestLog;
use crate::metrics::Metrics;
use crate::session::{Session, SessionError};
use crate::store::{Store, StoreError};

use executor::Executor;
pub use gauges::refresh as refresh_gauges;
pub use jobs::{JobName, JobOutcome, JobRunner, UnknownJob};
pub use notify::Notifier;
pub use production::{ProductionJobs, metered_log, production_jobs};
pub use prune::prune;
pub use shutdown::shutdown_signal;
pub use subscriptions::SubscriptionUpkeep;

/// How long running jobs may take to wind down after a shutdown request
/// before they are dropped. Below systemd's default `TimeoutStopSec=` (90 s)
/// so halosync always exits on its own rather than being killed.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The database, shared by the runtime, the jobs and the webhook listener.
/// One process may own the database only once (its lock is per open file),
/// so every part of the daemon goes through this one handle.
pub type SharedStore = Arc<Mutex<Store>>;

/// What every part of the running daemon shares.
#[derive(Debug, Clone)]
pub struct Context {
    pub config: Arc<Config>,
    pub store: SharedStore,
    pub metrics: Metrics,
    pub clock: SharedClock,
    /// Halo's request budget and token, for every job together.
    pub halo: HaloShared,
}

impl Context {
    /// Opens the database as its single owner (migrating it), with the wall
    /// clock and a fresh metrics registry.
    pub fn open(config: Arc<Config>) -> Result<Self, StoreError> {
        let store = Store::open(&config.store.path)?;
        Ok(Self {
            store: Arc::new(Mutex::new(store)),
            halo: HaloShared::for_config(&config.halo),
            config,
            metrics: Metrics::new(),
            clock: Arc::new(SystemClock),
        })
    }

    /// A session for one job: the database's sign-ins, `log` for its
    /// requests, and the service's Halo budget and token.
    pub async fn session(&self, log: SharedRequestLog) -> Result<Session, SessionError> {
        Session::open_sharing(
            &self.config,
            Some(self.store.clone()),
            log,
            Some(self.halo.clone()),
        )
        .await
    }
}

/// Runs `work` on the shared store on the blocking thread pool: SQLite
/// calls block, and blocking an async worker would stall every other task.
pub async fn with_store<T, F>(store: &SharedStore, work: F) -> Result<T, DaemonError>
where
    F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || {
        // A panic while the lock was held dropped its transaction, which
        // rolls back; the database is as consistent as before.
        let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
        work(&mut store)
    })
    .await
    .map_err(|e| DaemonError::TaskFailed(e.to_string()))?
    .map_err(DaemonError::Store)
}

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("the admin listener failed: {0}; check [admin].listen")]
    Admin(#[source] std::io::Error),
    #[error("an internal task failed: {0}")]
    TaskFailed(String),
}

/// How the daemon stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonExit {
    /// Jobs still running when the shutdown grace ran out; they were dropped
    /// and their runs recorded as failed. The next run of each picks up from
    /// the intent journal.
    pub abandoned: Vec<JobName>,
}

/// The daemon with its settings; [`run`] uses the defaults.
#[derive(Debug)]
pub struct Daemon {
    context: Context,
    notifier: Notifier,
    startup_jobs: Vec<JobName>,
}

impl Daemon {
    /// Notifies systemd through the process environment's `NOTIFY_SOCKET`.
    pub fn new(context: Context) -> Self {
        Self {
            context,
            notifier: Notifier::from_env(&Environment::process()),
            startup_jobs: Vec::new(),
        }
    }

    /// Also runs `jobs` once as soon as the service is ready, besides their
    /// schedules.
    pub fn with_startup_jobs(self, jobs: Vec<JobName>) -> Self {
        Self {
            startup_jobs: jobs,
            ..self
        }
    }

    /// Notifies through `notifier` instead (tests bind their own socket).
    pub fn with_notifier(self, notifier: Notifier) -> Self {
        Self { notifier, ..self }
    }

    /// Serves `admin`, runs jobs on their schedules until `shutdown`
    /// completes, then winds down (see the module docs).
    pub async fn run(
        self,
        admin: TcpListener,
        jobs: Arc<dyn JobRunner>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<DaemonExit, DaemonError> {
        let Self {
            context,
            notifier,
            startup_jobs,
        } = self;
        let executor = Arc::new(Executor::new(context.clone(), jobs, notifier.clone()));
        executor.close_interrupted_runs().await?;

        let readiness = Readiness::default();
        let admin_address = admin.local_addr().map_err(DaemonError::Admin)?;
        let admin_stop = CancellationToken::new();
        let admin_server = tokio::spawn(admin::serve(
            admin,
            AdminState::new(
                readiness.clone(),
                context.config.store.path.clone(),
                context.metrics.clone(),
            ),
            admin_stop.clone().cancelled_owned(),
        ));
        let scheduling = CancellationToken::new();
        let gauges = tokio::spawn(gauges::keep_fresh(context.clone(), scheduling.clone()));
        let schedulers: Vec<_> = JobName::ALL
            .into_iter()
            .map(|job| {
                tokio::spawn(scheduler::drive(
                    job,
                    job.schedule(&context.config.sync.schedule).clone(),
                    Arc::clone(&context.clock),
                    scheduling.clone(),
                    {
                        let executor = Arc::clone(&executor);
                        move || executor.tick(job)
                    },
                ))
            })
            .collect();

        readiness.set_ready();
        notifier.ready();
        notifier.status("running; no job has run yet");
        let watchdog = notifier
            .watchdog_interval()
            .map(|every| tokio::spawn(ping_watchdog(notifier.clone(), every)));
        tracing::info!(admin = %admin_address, "halosync is running");
        for job in startup_jobs {
            executor.tick(job);
        }

        shutdown.await;
        tracing::info!("shutting down: no new job runs; waiting for running jobs");
        readiness.set_stopping();
        notifier.stopping();
        scheduling.cancel();
        for scheduler in schedulers {
            // A scheduler that panicked has nothing left to stop; winding
            // down the jobs matters more than reporting it first.
            if let Err(error) = scheduler.await {
                tracing::error!(%error, "a job scheduler failed");
            }
        }
        if let Err(error) = gauges.await {
            tracing::error!(%error, "the metrics' gauge refresher failed");
        }
        let abandoned = executor.wind_down(SHUTDOWN_GRACE).await;
        if !abandoned.is_empty() {
            tracing::warn!(
                jobs = ?abandoned.iter().map(|job| job.as_str()).collect::<Vec<_>>(),
                "stopped jobs still running after the shutdown grace"
            );
        }
        admin_stop.cancel();
        admin_server
            .await
            .map_err(|e| DaemonError::TaskFailed(e.to_string()))?
            .map_err(DaemonError::Admin)?;
        if let Some(watchdog) = watchdog {
            watchdog.abort();
        }
        tracing::info!("halosync stopped");
        Ok(DaemonExit { abandoned })
    }
}

/// Runs the daemon with the default settings; see [`Daemon::run`].
pub async fn run(
    context: Context,
    admin: TcpListener,
    jobs: Arc<dyn JobRunner>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<DaemonExit, DaemonError> {
    Daemon::new(context).run(admin, jobs, shutdown).await
}

/// Runs `job` once, now, through `jobs` and records it in `sync_runs`, as
/// `halosync run-job` does. When `interrupt` completes the job is asked to
/// stop and given [`SHUTDOWN_GRACE`] before it is dropped.
pub async fn run_job(
    context: &Context,
    jobs: Arc<dyn JobRunner>,
    job: JobName,
    interrupt: impl Future<Output = ()>,
) -> Result<JobOutcome, DaemonError> {
    let executor = Executor::new(context.clone(), jobs, Notifier::disabled());
    executor.close_interrupted_runs().await?;
    let run = executor.run_recorded(job);
    tokio::pin!(run);
    tokio::select! {
        outcome = &mut run => return outcome,
        () = interrupt => executor.ask_to_stop(),
    }
    match tokio::time::timeout(SHUTDOWN_GRACE, &mut run).await {
        Ok(outcome) => outcome,
        Err(_) => {
            executor.abandon();
            run.await
        }
    }
}

/// Pings systemd's watchdog from the async runtime itself, so a wedged
/// runtime stops the pings and systemd restarts the service.
async fn ping_watchdog(notifier: Notifier, every: Duration) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        notifier.watchdog();
    }
}
