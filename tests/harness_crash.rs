//! Crash anywhere: `halosync import`, `sync --once` and `run` (pulling and
//! pushing every second) are SIGKILLed at random moments against a slowed
//! simulator, with people changing both sides between runs; afterwards one
//! clean sync leaves no duplicate, both sides equal, every item linked
//! exactly once and the database intact. 30 kills in CI, 500 with
//! `HALOSYNC_LONG=1`; `HALOSYNC_SEED` replays a run.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

mod common;
mod harness_support;
#[path = "common/sync_sim.rs"]
mod sync_sim;

use std::time::Duration;

use harness_support::{
    Process, assert_converged, content, long_mode, person_changes, schedules, seeded_rng,
    sync_until_clean, workload,
};
use serde_json::json;
use sync_sim::SyncSim;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_moments_it_converges_without_a_duplicate() {
    let (_seed, mut rng) = seeded_rng("harness_crash");
    let kills_wanted = if long_mode() { 500 } else { 30 };
    let every_second = "* * * * * *";
    let sim = SyncSim::start(
        workload(6, 6),
        &schedules(harness_support::free_port(), every_second, every_second),
    )
    .await;
    // Each request takes a while, so a kill lands inside a run's writes.
    // Thirty-odd processes in under a minute, each with a budget of its
    // own, send Halo more than its 300 per 5 minutes (about 320 requests
    // here, half of them reads of rows a killed run never recorded as
    // seen): throttling is `harness_faults`' subject, so Halo's limit is
    // lifted until the end.
    let slow = json!({"faults": {"latency_ms": 40}});
    sim.post(
        "faults",
        &json!({"graph": slow, "halo": {"faults": {"latency_ms": 40},
                                        "rate_limit": {"requests": 100_000, "window_seconds": 300}}}),
    )
    .await;
    let log = sim.workspace.path("crash.log");

    let (mut kills, mut finished, mut interrupted_writes) = (0, 0, 0);
    let mut round = 0;
    // Until enough kills, at least one of them inside a write (whether one
    // lands there depends on the seed's timings).
    while kills < kills_wanted || interrupted_writes == 0 {
        round += 1;
        assert!(
            round <= kills_wanted * 3,
            "only {kills} kills in {round} rounds"
        );
        // Several changes per round, so most runs have writes to interrupt.
        for change in 0..rng.usize(1..=3) {
            person_changes(&sim, &mut rng, &format!("{round}.{change}")).await;
        }
        let args: &[&str] = match rng.u8(0..3) {
            0 => &["import"],
            1 => &["sync", "--once"],
            _ => &["run"],
        };
        let mut process = Process::spawn(&sim, args, &log);
        tokio::time::sleep(Duration::from_millis(rng.u64(20..1200))).await;
        match process.exited() {
            None => {
                process.kill();
                kills += 1;
                if journaled_writes(&sim) > 0 {
                    interrupted_writes += 1;
                }
            }
            Some(code) => {
                finished += 1;
                // An interrupted run may leave an agent failed (1); nothing
                // else is acceptable from a run that ended by itself.
                assert!(
                    matches!(code, Some(0 | 1)),
                    "halosync {args:?} exited {code:?}:\n{}",
                    harness_support::tail(&process.log_text(), 4000)
                );
            }
        }
    }
    eprintln!(
        "{kills} kills ({interrupted_writes} with writes in flight), \
         {finished} runs finished before their kill, {round} rounds"
    );
    assert!(
        interrupted_writes > 0,
        "no kill landed between a write's journal entry and its outcome"
    );

    // No faults, and Halo's own limit back (a fresh window).
    sim.post(
        "faults",
        &json!({"graph": {"faults": {}}, "halo": {"faults": {}}}),
    )
    .await;
    sync_until_clean(&sim, 2).await;
    assert_converged(&sim).await;
    // And the next sync finds nothing left to do.
    let before = sim.state().await;
    sim.expect(&["sync", "--once"], 0).await;
    let after = sim.state().await;
    assert_eq!(content(&before), content(&after));
    assert_eq!(
        before["appointments"], after["appointments"],
        "Halo written again"
    );
}

/// Writes journaled but not yet recorded as done (0 before the first run
/// made the database).
fn journaled_writes(sim: &SyncSim) -> i64 {
    if !sim.database().exists() {
        return 0;
    }
    harness_support::open_read_only(&sim.database())
        .query_row("SELECT count(*) FROM pending_operations", [], |r| r.get(0))
        .unwrap_or(0)
}
