//! `halosync plan` against the simulator, as the real binary: it matches,
//! plans creates on both sides (a private event as times only) and changes
//! nothing anywhere.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

mod common;

use std::time::Duration;

use common::{Workspace, halosync, stderr, stdout};
use halosync::sim::server::RunningSimulator;
use serde_json::{Value, json};

/// A day `offset` days from today, inside the default sync window whenever
/// the test runs.
fn day(offset: i64) -> String {
    use halosync::clock::Clock;
    (halosync::clock::SystemClock.now() + chrono::Duration::days(offset))
        .format("%Y-%m-%d")
        .to_string()
}

fn seed() -> Value {
    let event = |subject: &str, offset: i64, from: u32, to: u32| {
        let date = day(offset);
        json!({"subject": subject,
               "start": {"dateTime": format!("{date}T{from:02}:00:00"), "timeZone": "UTC"},
               "end": {"dateTime": format!("{date}T{to:02}:00:00"), "timeZone": "UTC"}})
    };
    let mut private = event("Dentist", 3, 15, 16);
    private["sensitivity"] = json!("private");
    json!({
        "agents": [{"id": 2, "name": "Leah", "email": "leah@contoso.com"},
                   {"id": 3, "name": "Amir", "email": "amir@contoso.com"}],
        "mailboxes": [{"upn": "leah@contoso.com"}, {"upn": "amir@contoso.com"}],
        "events": {"leah@contoso.com": [event("Server room audit", 1, 9, 10), event("Stand-up", 2, 9, 10), private]},
        "appointments": [
            {"subject": "Printer repair", "agent_id": 2, "start_date": format!("{}T13:00:00", day(2)), "end_date": format!("{}T14:00:00", day(2))},
            {"subject": "Stand-up", "agent_id": 2, "start_date": format!("{}T09:00:00", day(2)), "end_date": format!("{}T10:00:00", day(2))}
        ]
    })
}

async fn state(http: &reqwest::Client, base: &str) -> Value {
    http.get(format!("{base}_sim/state"))
        .send()
        .await
        .expect("state")
        .json()
        .await
        .expect("json")
}

// Several worker threads: the simulator keeps serving while this test
// waits on the real binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_shows_every_write_and_why_and_changes_nothing() {
    let sim = RunningSimulator::start_local().await.expect("sim");
    let base = sim.simulator.base_url().to_string();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let seeded = http
        .post(format!("{base}_sim/seed"))
        .json(&seed())
        .send()
        .await
        .expect("seed");
    assert!(seeded.status().is_success());
    let before = state(&http, &base).await;

    let workspace = Workspace::new();
    let config = workspace.write_private("halosync.toml", &sim.simulator.config_snippet());
    let config_path = config.clone();
    let output = tokio::task::spawn_blocking(move || {
        halosync()
            .arg("plan")
            .arg("--config")
            .arg(&config_path)
            .env("HALOSYNC_SIM_SECRET", "anything")
            .output()
            .expect("run")
    })
    .await
    .expect("join");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let out = stdout(&output);
    for expected in [
        "Leah (#2) <leah@contoso.com>".to_string(),
        format!(
            "create in Exchange: \"Printer repair\" {} 13:00 – 14:00 UTC (new)",
            day(2)
        ),
        format!(
            "link: \"Stand-up\" {} 09:00 – 10:00 UTC (already on both sides)",
            day(2)
        ),
        format!(
            "create in Halo: \"Server room audit\" {} 09:00 – 10:00 UTC (new)",
            day(1)
        ),
        format!(
            "create in Halo: \"(private)\" {} 15:00 – 16:00 UTC (new)",
            day(3)
        ),
        "Amir (#3) <amir@contoso.com> [2/2]\n  nothing to do".to_string(),
    ] {
        assert!(
            out.contains(expected.as_str()),
            "missing `{expected}` in:\n{out}"
        );
    }

    let after = state(&http, &base).await;
    assert_eq!(
        after["appointments"], before["appointments"],
        "Halo unchanged"
    );
    assert_eq!(after["events"], before["events"], "Exchange unchanged");
    let writes: Vec<&String> = after["requests"]["by_route"]
        .as_object()
        .expect("by_route")
        .keys()
        .filter(|route| !route.starts_with("GET ") && !route.contains("token"))
        .collect();
    assert!(writes.is_empty(), "a preview made writes: {writes:?}");
    assert!(
        !workspace.path("halosync-sim.db").exists(),
        "and created no database"
    );

    let unknown = halosync()
        .args(["plan", "--agent", "nobody@contoso.com", "--config"])
        .arg(&config)
        .env("HALOSYNC_SIM_SECRET", "anything")
        .output()
        .expect("run");
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("nobody@contoso.com is not an enabled Halo agent"));
    sim.stop().await.expect("stop");
}
