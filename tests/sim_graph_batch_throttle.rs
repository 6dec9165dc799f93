//! `$batch`, Outlook throttling (concurrency and budget) and injected faults.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod sim_graph_support;

use halosync::sim::faults::{FaultAction, FaultRule, FaultSettings};
use halosync::sim::graph::GraphFaults;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sim_graph_support::{Harness, event};

const ADELE: &str = "adele@contoso.com";
const BOB: &str = "bob@contoso.com";

fn by_id<'a>(reply: &'a Value, id: &str) -> &'a Value {
    reply["responses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap()
}

#[tokio::test]
async fn batch_runs_each_request_through_the_api_with_depends_on() {
    let h = Harness::with_mailboxes(&[ADELE]).await;
    let body = json!({"requests": [
        {"id": "list", "method": "GET", "url": format!("/users/{ADELE}/events"), "dependsOn": ["create"]},
        {"id": "create", "method": "POST", "url": format!("/users/{ADELE}/events"),
         "headers": {"Content-Type": "application/json"},
         "body": event("via batch", "2026-02-10T09:00:00", "2026-02-10T10:00:00", "UTC")},
        {"id": "ghost", "method": "POST", "url": "/users/ghost@contoso.com/events",
         "headers": {"Content-Type": "application/json"},
         "body": event("x", "2026-02-10T09:00:00", "2026-02-10T10:00:00", "UTC")},
        {"id": "after-ghost", "method": "GET", "url": format!("users/{ADELE}/events?$top=1"), "dependsOn": ["ghost"]},
        {"id": "nested", "method": "POST", "url": "/$batch", "body": {"requests": []}},
    ]});
    let reply = h.post("/$batch", &body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let create = by_id(&reply.body, "create");
    assert_eq!(create["status"], 201);
    assert_eq!(create["body"]["subject"], "via batch");
    assert!(create["headers"]["request-id"].is_string());
    let list = by_id(&reply.body, "list");
    assert_eq!(list["status"], 200);
    assert_eq!(
        list["body"]["value"][0]["id"], create["body"]["id"],
        "ran after its dependency"
    );
    assert_eq!(by_id(&reply.body, "ghost")["status"], 404);
    assert_eq!(
        by_id(&reply.body, "ghost")["body"]["error"]["code"],
        "ErrorInvalidUser"
    );
    assert_eq!(by_id(&reply.body, "after-ghost")["status"], 424);
    assert_eq!(by_id(&reply.body, "nested")["status"], 400);
    let routes = h.sim.state().by_route;
    // The batch itself; its items (the nested attempt among them) are
    // counted apart from top-level requests.
    assert_eq!(routes["POST /v1.0/$batch"], 1);
    assert_eq!(
        routes["POST /v1.0/$batch (in $batch)"], 1,
        "the nested attempt"
    );
    assert_eq!(routes["POST /v1.0/users/{u}/events (in $batch)"], 2);
    assert!(!routes.contains_key("POST /v1.0/users/{u}/events"));
    assert_eq!(h.sim.state().requests, 1, "one HTTP request");
}

#[tokio::test]
async fn batches_over_twenty_or_with_bad_dependencies_are_refused() {
    let h = Harness::with_mailboxes(&[ADELE]).await;
    let requests: Vec<Value> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": format!("/users/{ADELE}/events")}))
        .collect();
    let reply = h.post("/$batch", &json!({"requests": requests})).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("20")
    );
    let reply = h
        .post(
            "/$batch",
            &json!({"requests": [{"id": "1", "method": "GET", "url": "/me", "dependsOn": ["9"]}]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = h.post("/$batch", &json!({"requests": "nope"})).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn too_many_concurrent_requests_per_app_and_mailbox_get_429_with_retry_after() {
    let h = Harness::with_mailboxes(&[ADELE]).await;
    h.sim
        .set_faults(GraphFaults {
            concurrency_limit: Some(2),
            mailbox_hold_ms: Some(400),
            ..GraphFaults::default()
        })
        .unwrap();
    let path = format!("/users/{ADELE}/events");
    let replies = futures_util::future::join_all((0..6).map(|_| h.get(&path))).await;
    let throttled: Vec<_> = replies
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    let served = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert!(!throttled.is_empty(), "six at once exceed a limit of two");
    assert!((1..=4).contains(&served), "{served} served");
    for reply in throttled {
        assert_eq!(reply.code(), "ApplicationThrottled");
        assert!(
            reply.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("MailboxConcurrency")
        );
        assert!(reply.header("retry-after").is_some());
    }
    // Slots are released when requests finish.
    h.sim
        .set_faults(GraphFaults {
            mailbox_hold_ms: Some(0),
            ..GraphFaults::default()
        })
        .unwrap();
    assert_eq!(h.get(&path).await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_ten_minute_budget_is_per_app_and_mailbox_and_recovers() {
    let h = Harness::with_mailboxes(&[ADELE, BOB]).await;
    h.sim
        .set_faults(GraphFaults {
            budget_per_10_min: Some(3),
            ..GraphFaults::default()
        })
        .unwrap();
    let path = format!("/users/{ADELE}/events");
    for _ in 0..3 {
        assert_eq!(h.get(&path).await.status, StatusCode::OK);
    }
    let refused = h.get(&path).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.code(), "ApplicationThrottled");
    let wait: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((590..=600).contains(&wait), "{wait}");
    assert_eq!(
        h.get(&format!("/users/{BOB}/events")).await.status,
        StatusCode::OK,
        "other mailbox"
    );
    h.clock.advance(chrono::Duration::minutes(10));
    assert_eq!(h.get(&path).await.status, StatusCode::OK);
}

#[tokio::test]
async fn injected_faults_use_graph_error_bodies() {
    let h = Harness::with_mailboxes(&[ADELE]).await;
    h.sim
        .set_faults(GraphFaults {
            faults: Some(FaultSettings {
                rules: vec![FaultRule {
                    method: Some("GET".into()),
                    path_contains: Some("/events".into()),
                    count: 1,
                    skip: 0,
                    action: FaultAction::Status {
                        status: 503,
                        retry_after_seconds: Some(7),
                    },
                }],
                ..FaultSettings::default()
            }),
            ..GraphFaults::default()
        })
        .unwrap();
    let path = format!("/users/{ADELE}/events");
    let failed = h.get(&path).await;
    assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(failed.code(), "serviceNotAvailable");
    assert!(failed.body["error"]["innerError"]["request-id"].is_string());
    assert_eq!(failed.header("retry-after"), Some("7"));
    assert_eq!(h.get(&path).await.status, StatusCode::OK);
}
