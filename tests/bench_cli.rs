//! `halosync bench --quick`: the whole benchmark on a tiny world, checked
//! through the JSON it writes (never its timings, which depend on the
//! machine).
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

mod common;

use serde_json::Value;

fn count(value: &Value, pointer: &str) -> u64 {
    value
        .pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{pointer} missing from the report:\n{value:#}"))
}

#[test]
fn the_quick_bench_reports_every_phase_and_beats_the_full_rescan_at_steady_state() {
    let workspace = common::Workspace::new();
    let json = workspace.path("bench.json");
    let output = common::run(
        common::halosync()
            .args(["bench", "--quick", "--json"])
            .arg(&json)
            .arg("--work-dir")
            .arg(workspace.path("work")),
    );
    assert!(
        output.status.success(),
        "bench failed:\n{}\n{}",
        common::stdout(&output),
        common::stderr(&output)
    );
    let table = common::stdout(&output);
    for row in [
        "import",
        "steady: halosync",
        "steady: full rescan",
        "churn: halosync",
        "webhook",
        "push",
        "idle RSS",
    ] {
        assert!(table.contains(row), "no {row:?} in the table:\n{table}");
    }
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("JSON written"))
            .expect("valid JSON");

    // Every phase made requests on the side it must touch.
    assert_eq!(
        count(&report, "/import/run/writes"),
        100,
        "every event imported"
    );
    assert_eq!(count(&report, "/import/run/failed_writes"), 0);
    assert_eq!(
        count(
            &report,
            "/import/requests/by_route/halo/POST ~1halo~1api~1Appointment"
        ),
        4,
        "four agents' 25 events: one save each"
    );
    assert!(count(&report, "/import/requests/graph") > 0);
    assert!(
        !report["warmup"]
            .as_array()
            .expect("warmup cycles")
            .is_empty()
    );
    for phase in [
        "/steady/cycle",
        "/churn/cycle",
        "/baseline/steady",
        "/baseline/churn",
    ] {
        assert!(
            count(&report, &format!("{phase}/requests/graph")) > 0,
            "{phase}"
        );
        assert!(
            count(&report, &format!("{phase}/requests/halo")) > 0,
            "{phase}"
        );
    }
    // Nothing changed: nothing written. Churn: each change carried once.
    assert_eq!(count(&report, "/steady/cycle/run/writes"), 0);
    let changed =
        count(&report, "/churn/changed_in_exchange") + count(&report, "/churn/changed_in_halo");
    assert!(changed > 0);
    assert_eq!(count(&report, "/churn/cycle/run/writes"), changed);
    // Steady state reads one delta page per mailbox, the four in one
    // `$batch`; the rescan reads the window.
    assert_eq!(
        count(
            &report,
            "/steady/cycle/requests/by_route/graph/GET ~1v1.0~1users~1{u}~1calendarView~1delta (in $batch)"
        ),
        4
    );
    assert_eq!(count(&report, "/steady/cycle/requests/graph"), 1);
    assert_eq!(
        count(&report, "/steady/cycle/requests/graph_batched_items"),
        4
    );
    // ... and, with the token kept from the cycle before, Halo's agent list
    // and one listing shared by the four agents.
    assert_eq!(count(&report, "/steady/cycle/requests/halo"), 2);
    assert_eq!(
        count(
            &report,
            "/steady/cycle/requests/by_route/halo/GET ~1halo~1api~1Appointment"
        ),
        1
    );
    assert!(
        count(&report, "/steady/cycle/requests/total")
            < count(&report, "/baseline/steady/total_requests"),
        "halosync's steady state must cost less than a full rescan:\n{:#}",
        report["steady"]
    );
    // Every timed change arrived, and memory was read.
    for direction in ["exchange_to_halo_webhook", "halo_to_exchange_push"] {
        let latency = &report["latency"][direction];
        assert_eq!(
            latency["carried"], latency["changes"],
            "{direction}: {latency}"
        );
        assert!(count(&report, &format!("/latency/{direction}/changes")) > 0);
        assert!(latency["p99_ms"].is_u64(), "{direction}: {latency}");
    }
    assert!(count(&report, "/memory/import_peak_rss_kb") > 0);
    assert!(count(&report, "/memory/service_idle_rss_kb") > 0);
    assert_eq!(report["goals"].as_array().map(Vec::len), Some(4));
}
