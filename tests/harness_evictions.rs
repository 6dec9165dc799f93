//! Token expiry and eviction, delta token eviction and a removed
//! subscription, each in the middle of `halosync run` (webhooks on, pulling
//! and pushing every second): after each, people's new items on both sides
//! still reach the other side, and the end state is converged.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

mod common;
mod harness_support;
#[path = "common/sync_sim.rs"]
mod sync_sim;

use std::time::{Duration, Instant};

use harness_support::{
    AGENTS, Process, assert_converged, free_port, live_appointments, live_events, schedules,
    wait_until_up, webhooks_on, workload,
};
use serde_json::{Value, json};
use sync_sim::{SyncSim, appointment, event};

/// Whether every agent's Exchange and Halo items have the same subjects.
fn sides_agree(state: &Value) -> bool {
    AGENTS.iter().all(|(agent_id, mailbox)| {
        let mut events: Vec<String> = live_events(state, mailbox)
            .iter()
            .map(|e| e["subject"].to_string())
            .collect();
        let mut appointments: Vec<String> = live_appointments(state)
            .iter()
            .filter(|a| a["agent_id"] == json!(agent_id))
            .map(|a| a["subject"].to_string())
            .collect();
        events.sort();
        appointments.sort();
        events == appointments
    })
}

/// A new item on each side, then waits (up to 30 s) until both reached
/// the other side.
async fn changes_get_through(sim: &SyncSim, process: &Process, step: &str) {
    let (agent_id, mailbox) = AGENTS[0];
    let (other_id, other) = AGENTS[1];
    sim.act(json!({"op": "create_event", "mailbox": mailbox,
                   "event": event(&format!("after {step} (Exchange)"), 5, 9, 10)}))
        .await;
    sim.act(json!({"op": "create_appointment",
                   "appointment": appointment(&format!("after {step} (Halo)"), other_id, 6, 9, 10)}))
        .await;
    let started = Instant::now();
    loop {
        let state = sim.state().await;
        let arrived = live_appointments(&state).iter().any(|a| {
            a["agent_id"] == json!(agent_id) && a["subject"] == format!("after {step} (Exchange)")
        }) && live_events(&state, other)
            .iter()
            .any(|e| e["subject"] == format!("after {step} (Halo)"));
        if arrived && sides_agree(&state) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "changes after {step} never got through:\n{}",
            harness_support::tail(&process.log_text(), 6000)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_and_evictions_mid_run_converge() {
    let (admin, hook) = (free_port(), free_port());
    let every_second = "* * * * * *";
    let sim = SyncSim::start(
        workload(4, 4),
        &format!(
            "{}\n{}",
            schedules(admin, every_second, every_second),
            webhooks_on(hook)
        ),
    )
    .await;
    // The service subscribes the agents itself when it starts.
    let mut process = Process::spawn(&sim, &["run"], &sim.workspace.path("run.log"));
    wait_until_up(
        &sim.http,
        &format!("http://127.0.0.1:{admin}/healthz"),
        &process,
    )
    .await;
    changes_get_through(&sim, &process, "start").await;

    // Expiry: two hours pass on the upstreams' clock; every token halosync
    // holds is now expired there.
    sim.post("faults", &json!({"advance_clock_seconds": 7200}))
        .await;
    changes_get_through(&sim, &process, "token expiry").await;

    // Eviction: tokens refused before their expiry (revoked, key rollover).
    let refused =
        json!({"faults": {"rules": [{"count": 2, "action": {"kind": "status", "status": 401}}]}});
    sim.post("faults", &json!({"graph": refused, "halo": refused}))
        .await;
    changes_get_through(&sim, &process, "token eviction").await;

    // Delta tokens forgotten by Graph in the middle of the rounds.
    sim.post("faults", &json!({"graph": {"evict_delta_tokens": "*"}}))
        .await;
    changes_get_through(&sim, &process, "delta eviction").await;

    // A subscription removed by Graph.
    let first_agents = async || -> Vec<Value> {
        sim.state().await["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| {
                s["resource"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(AGENTS[0].1)
            })
            .cloned()
            .collect()
    };
    let subscription = first_agents().await[0]["id"].clone();
    sim.post(
        "faults",
        &json!({"graph": {"lifecycle": [{"subscription_id": subscription, "event": "subscriptionRemoved"}]}}),
    )
    .await;
    changes_get_through(&sim, &process, "subscription removed").await;
    let mut replaced = false;
    for _ in 0..200 {
        let now = first_agents().await;
        if now.len() == 1 && now[0]["id"] != subscription {
            replaced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(replaced, "the service recreates the removed subscription");

    process.kill();
    // Each disruption was met: halosync was refused for its tokens and its
    // delta links, and heard the lifecycle event.
    let db = harness_support::open_read_only(&sim.database());
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert!(count("SELECT count(*) FROM outbound_requests WHERE status = 401") >= 2);
    assert!(count("SELECT count(*) FROM outbound_requests WHERE status = 410") >= 1);
    assert!(count("SELECT count(*) FROM inbound_requests WHERE outcome = 'lifecycle'") >= 1);
    sim.expect(&["sync", "--once"], 0).await;
    assert_converged(&sim).await;
}
