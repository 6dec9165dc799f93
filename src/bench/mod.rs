//! `halosync bench`: halosync against the in-process simulator under
//! realistic conditions, next to a polling integrator that rescans
//! everything every cycle.
//!
//! The phases, in order, on one world of A technicians × E events:
//! 1. **import** (in a child process, `halosync bench --phase import`, so
//!    its peak memory is halosync's alone, not the simulator's) and the
//!    incremental cycles after it that still read the whole window, until
//!    every mailbox has a delta link;
//! 2. **steady**: with ten quiet minutes on the upstreams' clock since the
//!    import, one incremental cycle with nothing changed, against the least
//!    requests possible and against one full-rescan cycle;
//! 3. **churn**: 1% of events changed on each side by people (through the
//!    simulator's control API), then one cycle of each strategy;
//! 4. **latency**: `halosync run` as a child, with webhooks (Exchange →
//!    Halo) and then with a push schedule (Halo → Exchange).
//!
//! Conditions ([`Conditions`]): the simulator's per-request latency,
//! Graph's per-mailbox limits enforced, and Halo's 300 requests per rolling
//! 5 minutes recorded, not enforced: halosync writes 25 Halo appointments
//! per request, so an import of 100,000 would still need over two hours
//! under it. Each phase reports the time that limit would impose. The import phases also
//! do not sleep the latency (halosync sends one request after another, so
//! it adds requests × latency, reported as the projected time): at 20 ms a
//! 100,000-event import would take over half an hour of sleeping alone.

mod latency;
mod measure;
mod report;
mod service;
mod strategy;
mod workload;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::clock::{Clock, SystemClock};
use crate::config::{self, Config, Environment};
use crate::halo::HaloShared;
use crate::sim::faults::FaultSettings;
use crate::sim::graph::GraphFaults;
use crate::sim::halo::{HaloFaults, RateLimit};
use crate::sim::server::{RunningSimulator, Simulator};
use crate::store::Store;
use crate::sync::run::{Mode, Pass, RunOptions};

pub use latency::Latencies;
use measure::{RequestSnapshot, millis, status_kb};
pub use report::*;
use service::run_to_end;
pub use strategy::{RescanSummary, RunSummary};
pub use workload::Size;
use workload::{SECRET_VALUE, SECRET_VAR};

/// Graph's limits per app and mailbox, enforced by the simulator.
const GRAPH_CONCURRENCY: usize = 4;
const GRAPH_BUDGET_PER_10_MIN: usize = 10_000;
/// How long nothing changes before steady state is measured.
const QUIET_MINUTES: i64 = 10;

/// Cycles run after the import before steady state is measured: an import
/// saves no cursors, so the first is a full pass (calendarView, the whole
/// Halo window) and the second starts every mailbox's delta round; from the
/// third on, cycles are incremental.
const WARMUP_CYCLES: usize = 2;

/// Why the bench could not finish.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("the simulator: {0}")]
    Simulator(String),
    #[error("halosync: {0}")]
    Halosync(String),
    #[error("{0}")]
    Io(String),
}

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub size: Size,
    /// Exchange edits timed through the webhook path.
    pub webhook_changes: usize,
    pub webhook_pace: Duration,
    /// Halo edits timed through the push schedule.
    pub push_changes: usize,
    pub push_pace: Duration,
    pub latency_ms: u64,
    /// Where the database and the children's logs go.
    pub work_dir: PathBuf,
    /// The `halosync` binary the child phases run.
    pub exe: PathBuf,
}

/// What `halosync bench --phase import` prints (one JSON line).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportChild {
    pub wall_ms: u64,
    pub peak_rss_kb: Option<u64>,
    pub run: RunSummary,
}

/// The child side of the import phase: an import of every served agent,
/// then this process's peak memory.
pub async fn import_phase(config: &Config) -> Result<ImportChild, BenchError> {
    let store = open_store(config)?;
    let started = Instant::now();
    let run = strategy::halosync_run(
        config,
        &store,
        RunOptions {
            mode: Mode::Import { recurring: true },
            pass: Pass::Full,
            dry_run: false,
            allow_deletes: false,
        },
        &strategy::halo_across_cycles(),
    )
    .await?;
    Ok(ImportChild {
        wall_ms: millis(started.elapsed()),
        peak_rss_kb: status_kb("self", "VmHWM"),
        run,
    })
}

fn open_store(config: &Config) -> Result<Arc<Mutex<Store>>, BenchError> {
    Store::open(&config.store.path)
        .map(|store| Arc::new(Mutex::new(store)))
        .map_err(|e| BenchError::Halosync(format!("{}: {e}", config.store.path.display())))
}

fn progress(step: &str) {
    eprintln!("bench: {step}");
}

/// Sets the simulator's conditions: `latency_ms` on Graph and Halo, and
/// Halo's limit lifted (the bench records it instead).
fn set_latency(simulator: &Simulator, latency_ms: u64) -> Result<(), BenchError> {
    let faults = FaultSettings {
        latency_ms,
        ..FaultSettings::default()
    };
    simulator
        .graph()
        .set_faults(GraphFaults {
            faults: Some(faults.clone()),
            ..GraphFaults::default()
        })
        .map_err(|e| BenchError::Simulator(e.to_string()))?;
    simulator
        .halo()
        .set_faults(HaloFaults {
            faults,
            rate_limit: Some(RateLimit {
                requests: 1_000_000_000,
                window_seconds: 300,
            }),
            rekey_on_update: false,
        })
        .map_err(|e| BenchError::Simulator(e.to_string()))
}

/// Runs every phase and returns the report.
pub async fn run(options: &BenchOptions) -> Result<BenchReport, BenchError> {
    let started = Instant::now();
    let running = RunningSimulator::start_local()
        .await
        .map_err(|e| BenchError::Simulator(e.to_string()))?;
    let simulator = running.simulator.clone();
    let outcome = phases(options, &simulator, started).await;
    if let Err(e) = running.stop().await {
        tracing::warn!(error = %e, "the bench's simulator did not stop cleanly");
    }
    outcome
}

async fn phases(
    options: &BenchOptions,
    simulator: &Simulator,
    started: Instant,
) -> Result<BenchReport, BenchError> {
    let size = options.size;
    let dir = &options.work_dir;
    simulator
        .graph()
        .set_faults(GraphFaults {
            concurrency_limit: Some(GRAPH_CONCURRENCY),
            budget_per_10_min: Some(GRAPH_BUDGET_PER_10_MIN),
            ..GraphFaults::default()
        })
        .map_err(|e| BenchError::Simulator(e.to_string()))?;
    progress(&format!(
        "seeding {} agents × {} events",
        size.agents, size.events
    ));
    let event_ids = workload::seed_simulator(simulator, size, SystemClock.now())?;
    let setup_ms = millis(started.elapsed());

    let config_path = dir.join("halosync.toml");
    let text = workload::config_text(simulator, dir, None);
    workload::write_config(&config_path, &text)?;
    let env = Environment::fixed([(SECRET_VAR, SECRET_VALUE)]);
    let config = config::load_str(&config_path, &text, None, &env)
        .map_err(|e| BenchError::Halosync(format!("the bench's config: {e}")))?
        .config;

    // Import and first cycle: latency recorded, not slept (see the module doc).
    set_latency(simulator, 0)?;
    progress("import (child process)");
    let before = RequestSnapshot::take(simulator);
    let out = run_to_end(
        &options.exe,
        &config_path,
        &["bench", "--phase", "import"],
        &dir.join("import.log"),
    )?;
    let child: ImportChild = serde_json::from_str(out.trim())
        .map_err(|e| BenchError::Halosync(format!("the import phase printed {out:?}: {e}")))?;
    let requests = RequestSnapshot::take(simulator).since(&before);
    let sequential = requests.total();
    let import = ImportFigures {
        events: size.total(),
        wall_ms: child.wall_ms,
        events_per_s: size.total() as f64 / (child.wall_ms.max(1) as f64 / 1000.0),
        projected_wall_ms_at_latency: child.wall_ms + sequential * options.latency_ms,
        requests: requests.into(),
        peak_rss_kb: child.peak_rss_kb,
        run: child.run,
    };
    let store = open_store(&config)?;
    // Each strategy keeps its Halo token across its cycles, as a service does.
    let (halo, rescan_halo) = (
        strategy::halo_across_cycles(),
        strategy::halo_across_cycles(),
    );
    // Steady state is a quiet spell: ten minutes pass on the upstreams'
    // clock after the import with nothing changed (Halo's cursor follows
    // Halo's clock, so a cycle within minutes of the import still lists its
    // saves, as it must).
    simulator
        .clock()
        .advance(chrono::Duration::minutes(QUIET_MINUTES));
    // The cycles right after an import read the whole window again until
    // every mailbox has a delta link; steady state is what follows.
    let mut warmup = Vec::new();
    while warmup.len() < WARMUP_CYCLES {
        progress(&format!("cycle {} after the import", warmup.len() + 1));
        warmup.push(cycle(simulator, &config, &store, &halo).await?);
    }
    set_latency(simulator, options.latency_ms)?;

    let halo_ids = halo_ids(simulator);
    progress("steady state: halosync, then the full-rescan baseline");
    let steady_cycle = cycle(simulator, &config, &store, &halo).await?;
    let minimum_graph = size.agents.div_ceil(crate::graph::MAX_BATCH_REQUESTS) as u64;
    let minimum_halo = 1;
    let steady = SteadyFigures {
        ratio_to_minimum: ratio(steady_cycle.requests.total, minimum_graph + minimum_halo),
        cycle: steady_cycle,
        minimum_graph,
        minimum_halo,
    };
    let baseline_steady = rescan(simulator, &config, &store, &rescan_halo, 0).await?;

    let churned = size.total().div_ceil(100);
    progress(&format!("churn: {churned} events changed on each side"));
    let in_exchange = workload::changes(size, churned, 0.0, "moved", &event_ids, &halo_ids)?;
    let in_halo = workload::changes(size, churned, 0.5, "renamed", &event_ids, &halo_ids)?;
    for change in &in_exchange {
        simulator
            .act_json(workload::rename_event(
                &change.mailbox,
                &change.event_id,
                &change.subject,
            ))
            .await
            .map_err(BenchError::Simulator)?;
    }
    for change in &in_halo {
        simulator
            .act_json(workload::rename_appointment(
                i64::from(change.halo_id),
                &change.subject,
            ))
            .await
            .map_err(BenchError::Simulator)?;
    }
    let churn_cycle = cycle(simulator, &config, &store, &halo).await?;
    let churn_writes = churn_cycle.run.writes as u64;
    let churn = ChurnFigures {
        changed_in_exchange: in_exchange.len(),
        changed_in_halo: in_halo.len(),
        cycle: churn_cycle,
    };
    let baseline_churn = rescan(simulator, &config, &store, &rescan_halo, churn_writes).await?;
    let baseline = BaselineFigures {
        steady: baseline_steady,
        churn: baseline_churn,
        parallel_mailboxes: strategy::BASELINE_PARALLEL_MAILBOXES,
    };
    // The service owns the database from here on.
    drop(store);

    let (latency, service_idle_rss_kb) =
        latency::through_service(options, simulator, &event_ids, &halo_ids).await?;
    let memory = MemoryFigures {
        import_peak_rss_kb: import.peak_rss_kb,
        service_idle_rss_kb,
        method: "VmHWM of the import's own child process; VmRSS of `halosync run` 2 s after /readyz answered",
    };
    let goals = report::goals(&steady, &baseline, &latency, &memory);
    Ok(BenchReport {
        conditions: conditions(options),
        setup_ms,
        import,
        warmup,
        steady,
        churn,
        baseline,
        latency,
        memory,
        goals,
        total_wall_ms: millis(started.elapsed()),
    })
}

/// One halosync incremental cycle over every agent, as the service's pull
/// and push jobs run it.
async fn cycle(
    simulator: &Simulator,
    config: &Config,
    store: &Arc<Mutex<Store>>,
    halo: &HaloShared,
) -> Result<CycleFigures, BenchError> {
    let before = RequestSnapshot::take(simulator);
    let started = Instant::now();
    let run = strategy::halosync_run(
        config,
        store,
        RunOptions {
            mode: Mode::Sync,
            pass: Pass::Incremental,
            dry_run: false,
            allow_deletes: false,
        },
        halo,
    )
    .await?;
    Ok(CycleFigures {
        wall_ms: millis(started.elapsed()),
        requests: RequestSnapshot::take(simulator).since(&before).into(),
        run,
    })
}

/// One full-rescan cycle, with `writes` it would also have to send.
async fn rescan(
    simulator: &Simulator,
    config: &Config,
    store: &Arc<Mutex<Store>>,
    halo: &HaloShared,
    writes: u64,
) -> Result<RescanFigures, BenchError> {
    let before = RequestSnapshot::take(simulator);
    let started = Instant::now();
    let read = strategy::full_rescan(config, store, halo).await?;
    let wall_ms = millis(started.elapsed());
    let requests: RequestFigures = RequestSnapshot::take(simulator).since(&before).into();
    Ok(RescanFigures {
        wall_ms,
        total_requests: requests.total + writes,
        requests,
        read,
        writes_counted: writes,
    })
}

/// Halo ids by the subject the seed gave each event (the import copies it).
fn halo_ids(simulator: &Simulator) -> HashMap<String, i32> {
    simulator
        .halo()
        .state()
        .appointments
        .into_iter()
        .filter(|a| !a.deleted)
        .map(|a| (a.appointment.subject, a.appointment.id))
        .collect()
}

fn conditions(options: &BenchOptions) -> Conditions {
    Conditions {
        agents: options.size.agents,
        events_per_agent: options.size.events,
        latency_ms: options.latency_ms,
        graph_concurrency_per_mailbox: GRAPH_CONCURRENCY,
        graph_requests_per_mailbox_per_10_min: GRAPH_BUDGET_PER_10_MIN,
        halo_limit: "300 per rolling 5 minutes: recorded, not enforced (see halo_limit_floor_s)",
        latency_not_slept_in: vec!["import", "warmup"],
        database_dir: options.work_dir.display().to_string(),
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        cpus: std::thread::available_parallelism().map_or(1, usize::from),
        memory_total_kb: measure::meminfo_kb("MemTotal"),
    }
}

/// Where the bench keeps its database by default: tmpfs when there is one,
/// so the 100,000 journaled writes of the import are not each an fsync to
/// disk (which alone would take this machine past ten minutes).
pub fn default_work_root() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}
