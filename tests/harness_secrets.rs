//! Secrets: a whole run — `import`, `sync --once`, `subscriptions create`,
//! `run` with webhooks (a person's change notified and synced), `requests
//! inbound|outbound` (table and JSON) and `status`, all at `--log-level
//! trace` — never shows the Halo or Graph client secret, any access token
//! the simulator minted (identity platform and Halo), any refresh token it
//! issued, or any subscription's clientState: not on stdout or stderr, and
//! not anywhere in the database file (request logs included).
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

mod common;
mod harness_support;
#[path = "common/sync_sim.rs"]
mod sync_sim;

use std::time::{Duration, Instant};

use harness_support::{
    AGENTS, NEVER, Process, free_port, live_appointments, schedules, wait_until_up, webhooks_on,
    workload,
};
use serde_json::json;
use sync_sim::{SyncSim, event};

const HALO_SECRET: &str = "halo-client-secret-7d1e93a0b5";
const GRAPH_SECRET: &str = "graph-client-secret-2c84f6e1d9";

/// Each secret from its own environment variable.
const ENVS: [(&str, &str); 2] = [
    ("HARNESS_HALO_SECRET", HALO_SECRET),
    ("HARNESS_GRAPH_SECRET", GRAPH_SECRET),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_at_trace_level_never_shows_a_secret() {
    let (admin, hook) = (free_port(), free_port());
    let sim = SyncSim::start(
        workload(3, 3),
        &format!("{}\n{}", schedules(admin, NEVER, NEVER), webhooks_on(hook)),
    )
    .await;
    let text = std::fs::read_to_string(&sim.config).unwrap();
    let text = text
        .replacen("HALOSYNC_SIM_SECRET", "HARNESS_HALO_SECRET", 1)
        .replacen("HALOSYNC_SIM_SECRET", "HARNESS_GRAPH_SECRET", 1);
    assert!(!text.contains("HALOSYNC_SIM_SECRET"), "{text}");
    std::fs::write(&sim.config, text).unwrap();

    let mut printed = Vec::new();
    let trace = ["--log-level", "trace"];
    for args in [
        &["import"][..],
        &["sync", "--once"],
        &["subscriptions", "create", "--all"],
    ] {
        printed.extend(run(&sim, &[&trace[..], args].concat(), 0).await);
    }

    let log = sim.workspace.path("run.log");
    let mut service = Process::spawn_with(&sim, &["--log-level", "trace", "run"], &log, &ENVS);
    wait_until_up(
        &sim.http,
        &format!("http://127.0.0.1:{admin}/healthz"),
        &service,
    )
    .await;
    let (_, leah) = AGENTS[0];
    sim.act(json!({"op": "create_event", "mailbox": leah,
                   "event": event("Notified change", 3, 7, 8)}))
        .await;
    let started = Instant::now();
    while !live_appointments(&sim.state().await)
        .iter()
        .any(|a| a["subject"] == "Notified change")
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the notified change never synced:\n{}",
            service.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    service.kill();
    let service_output = std::fs::read(&log).unwrap();
    assert!(
        String::from_utf8_lossy(&service_output).contains("TRACE"),
        "the service did not log at trace level"
    );
    printed.extend(service_output);

    for args in [
        &["requests", "inbound"][..],
        &["requests", "outbound"],
        &["requests", "inbound", "--json"],
        &["requests", "outbound", "--json"],
        &["status"],
    ] {
        printed.extend(run(&sim, &[&trace[..], args].concat(), 0).await);
    }

    let state = sim.state().await;
    let client_states: Vec<String> = state["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["clientState"].as_str().expect("clientState").to_string())
        .collect();
    assert_eq!(
        client_states.len(),
        AGENTS.len(),
        "one subscription per agent"
    );
    let tokens = sim.sim.simulator.issued_tokens();
    assert!(
        tokens.len() >= 2,
        "a Graph and a Halo token at least: {tokens:?}"
    );
    let mut secrets = vec![HALO_SECRET.to_string(), GRAPH_SECRET.to_string()];
    secrets.extend(tokens);
    secrets.extend(client_states);

    let mut database = Vec::new();
    for suffix in ["", "-wal"] {
        let path = format!("{}{suffix}", sim.database().display());
        database.extend(std::fs::read(&path).unwrap_or_default());
    }
    assert!(!database.is_empty());
    let inbound: i64 = harness_support::open_read_only(&sim.database())
        .query_row("SELECT count(*) FROM inbound_requests", [], |r| r.get(0))
        .unwrap();
    assert!(inbound > 0, "the webhook's inbound log is empty");

    // The search can find things: what was printed names the agents.
    assert!(contains(&printed, leah.as_bytes()));
    for secret in &secrets {
        for (place, bytes) in [("output", &printed), ("database", &database)] {
            assert!(
                !contains(bytes, secret.as_bytes()),
                "a secret ({}…) appears in the {place}",
                &secret[..secret.len().min(8)]
            );
        }
    }
}

/// Runs halosync with the two secrets in its environment; asserts the exit
/// code and returns stdout and stderr.
async fn run(sim: &SyncSim, args: &[&str], code: i32) -> Vec<u8> {
    let mut command = common::halosync();
    command
        .args(args)
        .arg("--config")
        .arg(&sim.config)
        .envs(ENVS);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(code),
        "halosync {args:?}: {}",
        common::stderr(&output)
    );
    [output.stdout, output.stderr].concat()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
