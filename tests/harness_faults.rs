//! Faults: the same seeded workload (a seed, then rounds of people's
//! creations, moves and deletions on both sides, each followed by syncs)
//! runs against two simulators, one fault-free and one failing 10% of the
//! requests to Graph and to Halo at random — 429 with and without
//! `Retry-After`, 500, 503, 504, dropped connections, slow answers and
//! answers lost after the change was made (what a response past the client's
//! timeout does). Syncing until quiet ends in the same content on both, with
//! no duplicate, nothing lost and everything linked once.
//!
//! The client's request timeout is 60 s, so CI stands in for "past the
//! timeout" with lost answers and 1.5 s slow ones; `HALOSYNC_LONG=1` makes
//! the slow answers 61 s, past the real timeout.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

mod common;
mod harness_support;
#[path = "common/sync_sim.rs"]
mod sync_sim;

use harness_support::{
    AGENTS, NEVER, assert_converged, content, live_appointments, live_events, long_mode, schedules,
    seeded_rng, sync_until_clean, workload,
};
use serde_json::{Value, json};
use sync_sim::{SyncSim, appointment, day, event};

/// One round of people's changes, named by subject so it means the same on
/// both simulators whatever ids they assigned.
async fn round(sim: &SyncSim, n: u32) {
    let state = sim.state().await;
    let (leah_id, leah) = AGENTS[0];
    let (omar_id, omar) = AGENTS[1];
    let event_id = |mailbox: &str, subject: &str| -> Value {
        live_events(&state, mailbox)
            .into_iter()
            .find(|e| e["subject"] == subject)
            .unwrap_or_else(|| panic!("no {subject:?} in {mailbox}"))["id"]
            .clone()
    };
    let appointment_id = |subject: &str| -> Value {
        live_appointments(&state)
            .into_iter()
            .find(|a| a["subject"] == subject)
            .unwrap_or_else(|| panic!("no appointment {subject:?}"))["id"]
            .clone()
    };
    let date = day(20 + i64::from(n));
    let moved = json!({
        "start": {"dateTime": format!("{date}T07:00:00"), "timeZone": "UTC"},
        "end": {"dateTime": format!("{date}T07:45:00"), "timeZone": "UTC"}});
    let actions = [
        json!({"op": "create_event", "mailbox": leah,
               "event": event(&format!("{leah} round {n} event"), 2 + i64::from(n), 18, 19)}),
        json!({"op": "create_appointment",
               "appointment": appointment(&format!("{omar} round {n} job"), omar_id, 3, 6, 7)}),
        json!({"op": "create_appointment",
               "appointment": appointment(&format!("{leah} round {n} job"), leah_id, 4, 6, 7)}),
        json!({"op": "update_event", "mailbox": omar, "patch": moved,
               "id": event_id(omar, &format!("{omar} event {n:02}"))}),
        json!({"op": "update_appointment", "id": appointment_id(&format!("{leah} job {n:02}")),
               "changes": {"subject": format!("{leah} job {n:02} (renamed)")}}),
        json!({"op": "delete_event", "mailbox": leah,
               "id": event_id(leah, &format!("{leah} event {:02}", n + 3))}),
        json!({"op": "delete_appointment", "id": appointment_id(&format!("{omar} job {:02}", n + 3))}),
    ];
    for action in actions {
        sim.act(action).await;
    }
}

/// Seeds, syncs, then plays `rounds` rounds, syncing until a clean run
/// after each, and finally until a sync changes nothing more.
async fn play(sim: &SyncSim, rounds: u32) -> usize {
    let mut syncs = sync_until_clean(sim, 8).await;
    for n in 0..rounds {
        round(sim, n).await;
        syncs += sync_until_clean(sim, 8).await;
    }
    loop {
        let before = content(&sim.state().await);
        syncs += sync_until_clean(sim, 8).await;
        if content(&sim.state().await) == before {
            return syncs;
        }
        assert!(syncs < 40, "still changing after {syncs} syncs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_ten_percent_of_requests_failing_it_ends_where_a_fault_free_run_ends() {
    let (_seed, mut rng) = seeded_rng("harness_faults");
    let rounds = if long_mode() { 3 } else { 2 };
    let configs = [0, 1].map(|_| schedules(harness_support::free_port(), NEVER, NEVER));
    let (clean, faulty) = tokio::join!(
        SyncSim::start(workload(6, 6), &configs[0]),
        SyncSim::start(workload(6, 6), &configs[1])
    );
    let slow_ms = if long_mode() { 61_000 } else { 1_500 };
    let mix = json!({"kind": "any_of", "actions": [
            {"kind": "status", "status": 429, "retry_after_seconds": 1},
            {"kind": "status", "status": 429},
            {"kind": "status", "status": 500},
            {"kind": "status", "status": 503},
            {"kind": "status", "status": 504},
            {"kind": "drop"},
            {"kind": "slow", "delay_ms": slow_ms},
            {"kind": "lose_answer"}]});
    let random =
        |seed: u64| json!({"faults": {"random": {"rate": 0.1, "seed": seed, "action": mix}}});
    faulty
        .post(
            "faults",
            &json!({"graph": random(rng.u64(..)), "halo": random(rng.u64(..))}),
        )
        .await;

    let (clean_syncs, faulty_syncs) = tokio::join!(play(&clean, rounds), play(&faulty, rounds));
    eprintln!("fault-free: {clean_syncs} syncs; with faults: {faulty_syncs} syncs");

    let (expected, got) = (
        content(&clean.state().await),
        content(&faulty.state().await),
    );
    assert_eq!(got, expected, "the faulty run ended elsewhere");
    assert_converged(&clean).await;
    assert_converged(&faulty).await;
    // The faults were real: halosync saw failed answers and broken
    // connections, and still ended in the same place.
    let db = harness_support::open_read_only(&faulty.database());
    let failed: i64 = db
        .query_row(
            "SELECT count(*) FROM outbound_requests
             WHERE upstream <> 'identity' AND (status >= 429 OR error IS NOT NULL)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        failed > 0,
        "no failed request was logged: the faults never hit"
    );
    eprintln!("{failed} failed requests survived");
}
