//! What a bench run found, as the JSON it writes, and the project's goals
//! checked against it.

use serde::Serialize;

use super::latency::Latencies;
use super::measure::{Requests, halo_limit_floor};
use super::strategy::{RescanSummary, RunSummary};

/// Requests of a phase per side, with their routes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RequestFigures {
    /// HTTP requests to Graph (a `$batch` once).
    pub graph: u64,
    /// Requests inside those `$batch`es (each throttled on its own).
    pub graph_batched_items: u64,
    pub halo: u64,
    pub total: u64,
    /// The least time Halo's 300 per rolling 5 minutes would impose on
    /// this phase's Halo requests (recorded, not enforced, by the bench).
    pub halo_limit_floor_s: u64,
    pub by_route: Requests,
}

impl From<Requests> for RequestFigures {
    fn from(requests: Requests) -> Self {
        Self {
            graph: requests.graph_total(),
            graph_batched_items: requests.graph_batched_items(),
            halo: requests.halo_total(),
            total: requests.total(),
            halo_limit_floor_s: halo_limit_floor(requests.halo_total()).as_secs(),
            by_route: requests,
        }
    }
}

/// Under what the run was made.
#[derive(Debug, Clone, Serialize)]
pub struct Conditions {
    pub agents: usize,
    pub events_per_agent: usize,
    pub latency_ms: u64,
    pub graph_concurrency_per_mailbox: usize,
    pub graph_requests_per_mailbox_per_10_min: usize,
    pub halo_limit: &'static str,
    /// Phases that ran with the simulator's latency recorded, not slept.
    pub latency_not_slept_in: Vec<&'static str>,
    pub database_dir: String,
    pub build: &'static str,
    pub cpus: usize,
    pub memory_total_kb: Option<u64>,
}

/// The import.
#[derive(Debug, Clone, Serialize)]
pub struct ImportFigures {
    pub events: usize,
    pub wall_ms: u64,
    pub events_per_s: f64,
    pub requests: RequestFigures,
    /// The wall time plus the latency the simulator did not sleep: every
    /// request of a run is sent after the one before it answered.
    pub projected_wall_ms_at_latency: u64,
    pub peak_rss_kb: Option<u64>,
    pub run: RunSummary,
}

/// One cycle of halosync over every agent.
#[derive(Debug, Clone, Serialize)]
pub struct CycleFigures {
    pub wall_ms: u64,
    pub requests: RequestFigures,
    pub run: RunSummary,
}

/// The least requests a cycle with nothing changed can make: one `$batch`
/// of delta requests per 20 mailboxes and one Halo page.
#[derive(Debug, Clone, Serialize)]
pub struct SteadyFigures {
    pub cycle: CycleFigures,
    pub minimum_graph: u64,
    pub minimum_halo: u64,
    pub ratio_to_minimum: f64,
}

/// The churn cycle: what people changed, and what halosync then did.
#[derive(Debug, Clone, Serialize)]
pub struct ChurnFigures {
    pub changed_in_exchange: usize,
    pub changed_in_halo: usize,
    pub cycle: CycleFigures,
}

/// One full-rescan cycle of the polling integrator.
#[derive(Debug, Clone, Serialize)]
pub struct RescanFigures {
    pub wall_ms: u64,
    pub requests: RequestFigures,
    pub read: RescanSummary,
    /// Writes it would also need (the same as halosync's: one per change);
    /// counted, not sent, and included in `total_requests`.
    pub writes_counted: u64,
    pub total_requests: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BaselineFigures {
    pub steady: RescanFigures,
    pub churn: RescanFigures,
    /// Mailboxes it reads at once.
    pub parallel_mailboxes: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct LatencyFigures {
    pub exchange_to_halo_webhook: Latencies,
    pub halo_to_exchange_push: Latencies,
    pub push_schedule: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemoryFigures {
    pub import_peak_rss_kb: Option<u64>,
    pub service_idle_rss_kb: Option<u64>,
    /// How the import's peak was isolated.
    pub method: &'static str,
}

/// A goal of the project and whether this run meets it.
#[derive(Debug, Clone, Serialize)]
pub struct Goal {
    pub goal: &'static str,
    pub measured: String,
    pub met: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub conditions: Conditions,
    pub setup_ms: u64,
    pub import: ImportFigures,
    /// The cycles after the import up to the first incremental one.
    pub warmup: Vec<CycleFigures>,
    pub steady: SteadyFigures,
    pub churn: ChurnFigures,
    pub baseline: BaselineFigures,
    pub latency: LatencyFigures,
    pub memory: MemoryFigures,
    pub goals: Vec<Goal>,
    pub total_wall_ms: u64,
}

/// `a / b`, or 0 when there is nothing to divide by.
pub fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// The goals against the figures.
pub fn goals(
    steady: &SteadyFigures,
    baseline: &BaselineFigures,
    latency: &LatencyFigures,
    memory: &MemoryFigures,
) -> Vec<Goal> {
    let fewer = ratio(baseline.steady.total_requests, steady.cycle.requests.total);
    let p99 = latency.exchange_to_halo_webhook.p99_ms;
    let all_carried =
        latency.exchange_to_halo_webhook.carried == latency.exchange_to_halo_webhook.changes;
    vec![
        Goal {
            goal: "steady-state requests <= 1.1 x minimum",
            measured: format!("{:.2} x", steady.ratio_to_minimum),
            met: steady.ratio_to_minimum <= 1.1,
        },
        Goal {
            goal: "webhook p99 <= 1 s",
            measured: match p99 {
                Some(ms) if all_carried => format!("{ms} ms"),
                Some(ms) => format!(
                    "{ms} ms, {} of {} changes never carried",
                    latency.exchange_to_halo_webhook.changes
                        - latency.exchange_to_halo_webhook.carried,
                    latency.exchange_to_halo_webhook.changes
                ),
                None => "no change carried".into(),
            },
            met: all_carried && p99.is_some_and(|ms| ms <= 1000),
        },
        Goal {
            goal: ">= 10 x fewer requests than the full-rescan baseline at steady state",
            measured: format!("{fewer:.1} x fewer"),
            met: fewer >= 10.0,
        },
        Goal {
            goal: "idle RSS of `halosync run` <= 30 MB",
            measured: memory.service_idle_rss_kb.map_or_else(
                || "not measured".into(),
                |kb| format!("{:.1} MB", kb as f64 / 1024.0),
            ),
            met: memory.service_idle_rss_kb.is_some_and(|kb| kb <= 30 * 1024),
        },
    ]
}
