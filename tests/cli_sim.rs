//! `halosync sim`: the simulator as a standalone server.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::{Workspace, halosync};

#[tokio::test]
async fn sim_serves_prints_its_urls_loads_a_seed_and_stops_cleanly_on_sigterm() {
    let workspace = Workspace::new();
    let seed = workspace.write_private(
        "seed.json",
        r#"{"agents": [{"id": 2, "name": "Leah", "email": "leah@contoso.com"}],
            "appointments": [{"subject": "Seeded", "agent_id": 2,
            "start_date": "2026-12-02T13:00:00", "end_date": "2026-12-02T14:00:00"}]}"#,
    );
    let mut child = halosync()
        .args(["sim", "--listen", "127.0.0.1:0", "--seed"])
        .arg(&seed)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a line").expect("utf-8");
    let base = first
        .strip_prefix("simulator listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_string();
    let rest: Vec<String> = lines.by_ref().take(23).map(|l| l.expect("line")).collect();
    let printed = rest.join("\n");
    assert!(
        printed.contains(&format!("Microsoft Graph    {base}graph/")),
        "{printed}"
    );
    // The printed config is complete and valid as it stands.
    let snippet = &printed[printed.find("[halo]").expect("a config")..];
    let config = workspace.write_private("sim.toml", snippet);
    let check = halosync()
        .arg("check-config")
        .arg("--config")
        .arg(&config)
        .env("HALOSYNC_SIM_SECRET", "anything")
        .output()
        .expect("check-config");
    assert_eq!(
        check.status.code(),
        Some(0),
        "{snippet}\n{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let state: serde_json::Value = http
        .get(format!("{base}_sim/state"))
        .send()
        .await
        .expect("state")
        .json()
        .await
        .expect("json");
    assert_eq!(state["appointments"][0]["subject"], "Seeded");

    // The shell's own `kill`, so no procps package is needed.
    let status = std::process::Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", child.id())])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = child.wait().expect("wait");
    assert_eq!(exit.code(), Some(0), "a clean stop on SIGTERM");
}

#[test]
fn a_bad_seed_file_is_refused_with_exit_2() {
    let workspace = Workspace::new();
    let seed = workspace.write_private("seed.json", r#"{"mailbox": []}"#);
    let output = halosync()
        .args(["sim", "--listen", "127.0.0.1:0", "--seed"])
        .arg(&seed)
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("unknown field `mailbox`"), "{err}");
}

#[test]
fn the_demo_seed_in_the_readme_loads() {
    let seed = common::repo_file("examples/demo-seed.json");
    let body = std::fs::read(&seed).expect("demo seed");
    let parsed: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(parsed["agents"].as_array().map(Vec::len), Some(2));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let sim = halosync::sim::server::RunningSimulator::start_local()
            .await
            .expect("sim");
        let ids = sim
            .simulator
            .seed_json(&body)
            .expect("the demo seed is accepted");
        assert!(ids["halo"].is_object() || ids["halo"].is_array(), "{ids}");
        sim.stop().await.expect("stop");
    });
}
