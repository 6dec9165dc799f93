//! `halosync subscriptions` and `halosync requests`, as the real binary:
//! views of a seeded database, and subscriptions made and deleted against
//! the simulator.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

mod common;

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use common::{Workspace, halosync, stderr, stdout};
use halosync::clock::{Clock, SystemClock};
use halosync::http::{RequestRecord, Upstream};
use halosync::sim::server::RunningSimulator;
use halosync::store::inbound_log::{self, InboundOutcome, InboundRecord};
use halosync::store::subscriptions::{self, SubscriptionRow, SubscriptionState};
use halosync::store::{AgentRow, Store, request_log};
use serde_json::{Value, json};

fn at(hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, hour, minute, 0).unwrap()
}

fn inbound(
    at: DateTime<Utc>,
    status: u16,
    outcome: InboundOutcome,
    mailbox: Option<&str>,
) -> InboundRecord {
    InboundRecord {
        at,
        method: "POST".into(),
        path: "/graph/notify".into(),
        status,
        outcome,
        subscription_id: mailbox.map(|_| "sub-1".to_owned()),
        mailbox: mailbox.map(str::to_owned),
        item_count: 1,
        duration_ms: 4,
        detail: (outcome == InboundOutcome::Rejected)
            .then(|| "1 dropped (clientState mismatch)".to_owned()),
    }
}

fn seed(db: &Path) {
    let store = Store::open(db).unwrap();
    store
        .upsert_agent(
            &AgentRow {
                agent_id: 2,
                name: "Leah".into(),
                email: Some("leah@contoso.com".into()),
                mailbox: Some("leah@contoso.com".into()),
                connection: Some("contoso".into()),
                enabled: true,
            },
            at(8, 0),
        )
        .unwrap();
    let conn = store.connection();
    subscriptions::insert(
        conn,
        &SubscriptionRow {
            subscription_id: "sub-1".into(),
            agent_id: 2,
            mailbox: "leah@contoso.com".into(),
            connection: "contoso".into(),
            resource: "/users/leah@contoso.com/events".into(),
            client_state_hash: [1; 32],
            expires_at: at(23, 30),
            created_at: at(8, 0),
            renewed_at: None,
            state: SubscriptionState::Active,
            last_error: None,
            last_notification_at: Some(at(9, 15)),
        },
    )
    .unwrap();
    // An hour ago, recent enough for --since 2h; the rest long before.
    let recent = SystemClock.now() - chrono::Duration::hours(1);
    for record in [
        inbound(at(9, 0), 200, InboundOutcome::Validation, None),
        inbound(
            at(9, 15),
            202,
            InboundOutcome::Accepted,
            Some("leah@contoso.com"),
        ),
        inbound(at(9, 20), 202, InboundOutcome::Rejected, None),
        inbound(
            at(9, 25),
            202,
            InboundOutcome::Accepted,
            Some("amir@contoso.com"),
        ),
        inbound(recent, 400, InboundOutcome::Malformed, None),
    ] {
        inbound_log::insert(conn, &record).unwrap();
    }
    let outbound = |at, status: Option<u16>, mailbox: &str, error: Option<&str>| RequestRecord {
        at,
        upstream: Upstream::Graph,
        method: "GET".into(),
        path: format!("/v1.0/users/{mailbox}/calendarView"),
        status,
        duration_ms: 80,
        mailbox: Some(mailbox.into()),
        agent_id: None,
        request_id: None,
        error: error.map(str::to_owned),
    };
    request_log::insert(
        conn,
        &[
            outbound(at(9, 0), Some(200), "leah@contoso.com", None),
            outbound(
                at(9, 1),
                Some(429),
                "leah@contoso.com",
                Some("ApplicationThrottled: slow down"),
            ),
            outbound(at(9, 2), Some(200), "amir@contoso.com", None),
        ],
    )
    .unwrap();
}

fn run(workspace: &Workspace, config: &Path, args: &[&str]) -> std::process::Output {
    workspace
        .halosync()
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

#[test]
fn subscriptions_list_and_the_request_logs_read_a_seeded_database() {
    let workspace = Workspace::new();
    let config = workspace.example_config();
    seed(&workspace.path("halosync.db"));

    let list = run(&workspace, &config, &["subscriptions", "list"]);
    assert_eq!(list.status.code(), Some(0), "{}", stderr(&list));
    let out = stdout(&list);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "agent     | mailbox          | id    | expires              | last notification    | state",
            "Leah (#2) | leah@contoso.com | sub-1 | 2026-03-01 23:30 UTC | 2026-03-01 09:15 UTC | active",
        ]
    );

    let all = run(&workspace, &config, &["requests", "inbound", "--json"]);
    assert_eq!(all.status.code(), Some(0), "{}", stderr(&all));
    let records: Vec<Value> = serde_json::from_str(&stdout(&all)).unwrap();
    let outcomes: Vec<&str> = records
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        [
            "malformed",
            "accepted",
            "rejected",
            "accepted",
            "validation"
        ],
        "newest first"
    );
    assert_eq!(records[1]["mailbox"], "amir@contoso.com");
    assert_eq!(records[3]["subscription_id"], "sub-1");
    assert_eq!(records[3]["at"], "2026-03-01T09:15:00.000Z");
    assert_eq!(records[2]["detail"], "1 dropped (clientState mismatch)");

    let json_of = |args: &[&str]| -> Vec<Value> {
        let output = run(&workspace, &config, args);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        serde_json::from_str(&stdout(&output)).unwrap()
    };
    let failed = json_of(&["requests", "inbound", "--json", "--failed"]);
    assert_eq!(
        failed
            .iter()
            .map(|r| r["outcome"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["malformed", "rejected"]
    );
    let leah = json_of(&[
        "requests",
        "inbound",
        "--json",
        "--agent",
        "Leah@Contoso.com",
    ]);
    assert_eq!(leah.len(), 1);
    assert_eq!(leah[0]["mailbox"], "leah@contoso.com");
    let recent = json_of(&["requests", "inbound", "--json", "--since", "2h"]);
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0]["outcome"], "malformed");

    let outbound = run(
        &workspace,
        &config,
        &[
            "requests",
            "outbound",
            "--failed",
            "--agent",
            "leah@contoso.com",
        ],
    );
    assert_eq!(outbound.status.code(), Some(0), "{}", stderr(&outbound));
    let out = stdout(&outbound);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(
        out.lines().next().unwrap().starts_with("time (UTC)"),
        "{out}"
    );
    assert!(
        out.contains("429") && out.contains("ApplicationThrottled: slow down"),
        "{out}"
    );

    let bad = run(
        &workspace,
        &config,
        &["requests", "inbound", "--since", "yesterday"],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("such as 30m, 2h, 3d or 1w"),
        "{}",
        stderr(&bad)
    );
}

async fn state(http: &reqwest::Client, base: &str) -> Value {
    http.get(format!("{base}_sim/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_created_for_every_agent_and_deleted_with_the_real_binary() {
    let sim = RunningSimulator::start_local().await.unwrap();
    let base = sim.simulator.base_url().to_string();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let seeded = http
        .post(format!("{base}_sim/seed"))
        .json(&json!({
            "agents": [{"id": 2, "name": "Leah", "email": "leah@contoso.com"},
                       {"id": 3, "name": "Amir", "email": "amir@contoso.com"}],
            "mailboxes": [{"upn": "leah@contoso.com"}, {"upn": "amir@contoso.com"}],
        }))
        .send()
        .await
        .unwrap();
    assert!(seeded.status().is_success());

    let workspace = Workspace::new();
    let port = common::free_port();
    let config = workspace.write_private(
        "halosync.toml",
        &format!(
            "{}\n[webhook]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n",
            sim.simulator.config_snippet()
        ),
    );
    let binary = |args: &'static [&'static str]| {
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            halosync()
                .args(args)
                .arg("--config")
                .arg(&config)
                .env("HALOSYNC_SIM_SECRET", "anything")
                .output()
                .unwrap()
        })
    };

    let created = binary(&["subscriptions", "create", "--all"]).await.unwrap();
    assert_eq!(created.status.code(), Some(0), "{}", stderr(&created));
    let out = stdout(&created);
    assert_eq!(out.matches("subscribed (").count(), 2, "{out}");
    let on_graph = state(&http, &base).await["subscriptions"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(on_graph, 2);

    let again = binary(&["subscriptions", "create", "--all"]).await.unwrap();
    assert_eq!(
        stdout(&again).matches("already subscribed").count(),
        2,
        "{}",
        stdout(&again)
    );

    let list = binary(&["subscriptions", "list"]).await.unwrap();
    let listed = stdout(&list);
    assert!(
        listed.contains("Amir (#3) | amir@contoso.com") && listed.contains("never"),
        "{listed}"
    );

    let deleted = binary(&["subscriptions", "delete", "--all"]).await.unwrap();
    assert_eq!(deleted.status.code(), Some(0), "{}", stderr(&deleted));
    assert_eq!(
        stdout(&deleted).matches("deleted 1").count(),
        2,
        "{}",
        stdout(&deleted)
    );
    assert!(
        state(&http, &base).await["subscriptions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let list = binary(&["subscriptions", "list"]).await.unwrap();
    assert_eq!(stdout(&list).trim(), "no subscriptions");
    sim.stop().await.unwrap();
}
