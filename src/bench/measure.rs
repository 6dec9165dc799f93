//! What the bench reads off the world: requests counted by the simulator
//! per side, resident memory from `/proc`, and the time a rate limit would
//! impose.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::sim::graph::IN_BATCH;
use crate::sim::server::Simulator;

/// Requests the simulator served, per upstream and route, at one moment.
#[derive(Debug, Clone, Default)]
pub struct RequestSnapshot {
    graph: BTreeMap<String, u64>,
    halo: BTreeMap<String, u64>,
}

impl RequestSnapshot {
    pub fn take(simulator: &Simulator) -> Self {
        Self {
            graph: simulator.graph().request_counts(),
            halo: simulator.halo().request_counts(),
        }
    }

    /// The requests served between `earlier` and this snapshot.
    pub fn since(&self, earlier: &Self) -> Requests {
        Requests {
            graph: difference(&self.graph, &earlier.graph),
            halo: difference(&self.halo, &earlier.halo),
        }
    }
}

fn difference(now: &BTreeMap<String, u64>, then: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    now.iter()
        .map(|(route, n)| (route.clone(), n - then.get(route).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Requests per side over a phase, by route. A `$batch` is one Graph
/// request; the requests inside it are listed under their own routes
/// (ending in [`IN_BATCH`]) and counted apart, since Graph's per-mailbox
/// throttling counts each of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Requests {
    pub graph: BTreeMap<String, u64>,
    pub halo: BTreeMap<String, u64>,
}

impl Requests {
    /// HTTP requests to Graph (a `$batch` once).
    pub fn graph_total(&self) -> u64 {
        self.graph
            .iter()
            .filter(|(route, _)| !route.ends_with(IN_BATCH))
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests sent inside `$batch` calls.
    pub fn graph_batched_items(&self) -> u64 {
        self.graph
            .iter()
            .filter(|(route, _)| route.ends_with(IN_BATCH))
            .map(|(_, n)| n)
            .sum()
    }

    pub fn halo_total(&self) -> u64 {
        self.halo.values().sum()
    }

    pub fn total(&self) -> u64 {
        self.graph_total() + self.halo_total()
    }

    /// Requests to Halo's appointment list (pages read).
    pub fn halo_pages(&self) -> u64 {
        self.halo
            .iter()
            .filter(|(route, _)| route.starts_with("GET ") && route.ends_with("/api/Appointment"))
            .map(|(_, n)| n)
            .sum()
    }
}

/// Halo's hosted limit, which the bench records rather than enforces.
pub const HALO_LIMIT_REQUESTS: u64 = 300;
pub const HALO_LIMIT_WINDOW: Duration = Duration::from_secs(300);

/// The least time `halo_requests` take under Halo's 300 per rolling 5
/// minutes (the first 300 go at once, each further 300 wait a window).
pub fn halo_limit_floor(halo_requests: u64) -> Duration {
    let windows = halo_requests.saturating_sub(1) / HALO_LIMIT_REQUESTS;
    HALO_LIMIT_WINDOW * u32::try_from(windows).unwrap_or(u32::MAX)
}

/// A `kB` figure from `/proc/<pid>/status` (`VmHWM`, `VmRSS`).
pub fn status_kb(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kb(&status, field)
}

/// A `kB` figure from `/proc/meminfo` (`MemTotal`).
pub fn meminfo_kb(field: &str) -> Option<u64> {
    parse_status_kb(&std::fs::read_to_string("/proc/meminfo").ok()?, field)
}

fn parse_status_kb(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// Milliseconds of `duration`, for the report.
pub fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The `p`th percentile (nearest rank) of `sorted` milliseconds.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_in_kilobytes() {
        let status = "Name:\thalosync\nVmHWM:\t   41236 kB\nVmRSS:\t   20480 kB\n";
        assert_eq!(parse_status_kb(status, "VmHWM"), Some(41236));
        assert_eq!(parse_status_kb(status, "VmRSS"), Some(20480));
        assert_eq!(parse_status_kb(status, "VmSwap"), None);
    }

    #[test]
    fn the_halo_limit_floor_counts_whole_windows_beyond_the_first() {
        assert_eq!(halo_limit_floor(0), Duration::ZERO);
        assert_eq!(halo_limit_floor(300), Duration::ZERO);
        assert_eq!(halo_limit_floor(301), Duration::from_secs(300));
        assert_eq!(halo_limit_floor(100_000), Duration::from_secs(333 * 300));
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let sorted: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 50.0), Some(50));
        assert_eq!(percentile(&sorted, 99.0), Some(99));
        assert_eq!(percentile(&[7], 95.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn phase_requests_are_the_difference_of_two_snapshots() {
        let then = RequestSnapshot {
            graph: BTreeMap::from([("GET /a".to_string(), 2)]),
            halo: BTreeMap::new(),
        };
        let now = RequestSnapshot {
            graph: BTreeMap::from([
                ("GET /a".to_string(), 5),
                ("GET /b".to_string(), 1),
                (format!("GET /c {IN_BATCH}"), 20),
            ]),
            halo: BTreeMap::from([("GET /halo/api/Appointment".to_string(), 3)]),
        };
        let phase = now.since(&then);
        assert_eq!(phase.graph_total(), 4);
        assert_eq!(phase.graph_batched_items(), 20);
        assert_eq!(phase.halo_pages(), 3);
        assert_eq!(phase.total(), 7);
    }
}
