//! Subscriptions: the validation handshake, lifetimes, delegated limits,
//! change and lifecycle notification delivery.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod sim_graph_support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, RawQuery, State};
use axum::http::{StatusCode as AxumStatus, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Utc;
use halosync::clock::Clock;
use halosync::sim::graph::model::{ChangeNotificationCollection, LifecycleEventType};
use halosync::sim::graph::{GraphAction, GraphFaults, LifecycleFault};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sim_graph_support::{Harness, event};
use tokio::sync::mpsc;

const ADELE: &str = "adele@contoso.com";
const BOB: &str = "bob@contoso.com";

#[derive(Clone)]
struct Receiver {
    tx: mpsc::UnboundedSender<(String, Value)>,
    failures_left: Arc<AtomicUsize>,
}

/// Answers validation like a correct webhook, records notifications.
async fn good(
    State(rx): State<Receiver>,
    Query(query): Query<HashMap<String, String>>,
    body: String,
) -> Response {
    if let Some(token) = query.get("validationToken") {
        return ([(header::CONTENT_TYPE, "text/plain")], token.clone()).into_response();
    }
    if rx.failures_left.load(Ordering::SeqCst) > 0 {
        rx.failures_left.fetch_sub(1, Ordering::SeqCst);
        return AxumStatus::INTERNAL_SERVER_ERROR.into_response();
    }
    let _ = rx.tx.send((
        "notify".into(),
        serde_json::from_str(&body).unwrap_or(Value::Null),
    ));
    AxumStatus::ACCEPTED.into_response()
}

async fn lifecycle(
    State(rx): State<Receiver>,
    Query(query): Query<HashMap<String, String>>,
    body: String,
) -> Response {
    if let Some(token) = query.get("validationToken") {
        return ([(header::CONTENT_TYPE, "text/plain")], token.clone()).into_response();
    }
    let _ = rx.tx.send((
        "lifecycle".into(),
        serde_json::from_str(&body).unwrap_or(Value::Null),
    ));
    AxumStatus::ACCEPTED.into_response()
}

/// Echoes the token still URL-encoded: the classic handshake bug.
async fn encoded(RawQuery(query): RawQuery) -> Response {
    let raw = query
        .unwrap_or_default()
        .trim_start_matches("validationToken=")
        .to_string();
    ([(header::CONTENT_TYPE, "text/plain")], raw).into_response()
}

async fn start_receiver() -> (
    String,
    mpsc::UnboundedReceiver<(String, Value)>,
    Arc<AtomicUsize>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let failures_left = Arc::new(AtomicUsize::new(0));
    let state = Receiver {
        tx,
        failures_left: failures_left.clone(),
    };
    let app = Router::new()
        .route("/notify", post(good))
        .route("/lifecycle", post(lifecycle))
        .route("/encoded", post(encoded))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), rx, failures_left)
}

fn in_minutes(h: &Harness, minutes: i64) -> String {
    (h.clock.now() + chrono::Duration::minutes(minutes))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn subscription(h: &Harness, hook: &str, resource: &str, minutes: i64) -> Value {
    json!({
        "changeType": "created,updated,deleted",
        "notificationUrl": format!("{hook}/notify"),
        "lifecycleNotificationUrl": format!("{hook}/lifecycle"),
        "resource": resource,
        "expirationDateTime": in_minutes(h, minutes),
        "clientState": "s3cret",
    })
}

async fn next(rx: &mut mpsc::UnboundedReceiver<(String, Value)>) -> (String, Value) {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a notification arrives")
        .unwrap()
}

#[tokio::test]
async fn a_valid_handshake_creates_a_subscription_that_can_be_renewed_and_deleted() {
    let h = Harness::with_mailboxes(&[ADELE]).await;
    let (hook, _rx, _) = start_receiver().await;
    let created = h
        .post(
            "/subscriptions",
            &subscription(&h, &hook, &format!("/users/{ADELE}/events"), 60),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(created.body["applicationId"], "halosync-app");
    assert_eq!(created.body["clientState"], "s3cret");
    let listed = h.get("/subscriptions").await;
    assert_eq!(listed.body["value"][0]["id"], id.as_str());

    let renewed = h
        .patch(
            &format!("/subscriptions/{id}"),
            &json!({"expirationDateTime": in_minutes(&h, 2000)}),
        )
        .await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.body);
    assert_ne!(
        renewed.body["expirationDateTime"],
        created.body["expirationDateTime"]
    );
    let refused = h
        .patch(
            &format!("/subscriptions/{id}"),
            &json!({"resource": "/me/events"}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);

    assert_eq!(
        h.delete(&format!("/subscriptions/{id}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        h.get(&format!("/subscriptions/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn an_endpoint_echoing_the_encoded_token_is_refused() {
    let h = Harness::with_mailboxes(&[ADELE]).await;
    let (hook, _rx, _) = start_receiver().await;
    let mut body = subscription(&h, &hook, &format!("/users/{ADELE}/events"), 60);
    body["notificationUrl"] = json!(format!("{hook}/encoded"));
    let reply = h.post("/subscriptions", &body).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert_eq!(reply.code(), "ValidationError");
    // A lifecycle URL that answers wrongly is refused too.
    let mut body = subscription(&h, &hook, &format!("/users/{ADELE}/events"), 60);
    body["lifecycleNotificationUrl"] = json!(format!("{hook}/encoded"));
    assert_eq!(
        h.post("/subscriptions", &body).await.code(),
        "ValidationError"
    );
    // Unreachable endpoints fail the same way.
    let mut body = subscription(&h, &hook, &format!("/users/{ADELE}/events"), 60);
    body["notificationUrl"] = json!("http://127.0.0.1:9/notify");
    assert_eq!(
        h.post("/subscriptions", &body).await.code(),
        "ValidationError"
    );
    assert!(h.sim.state().subscriptions.is_empty());
}

#[tokio::test]
async fn lifetimes_beyond_the_configured_maximum_name_the_limit() {
    let h = Harness::with_mailboxes(&[ADELE]).await;
    let (hook, _rx, _) = start_receiver().await;
    let resource = format!("/users/{ADELE}/events");
    let reply = h
        .post(
            "/subscriptions",
            &subscription(&h, &hook, &resource, 10_081),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.code(), "ExtensionError");
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("10080 minutes")
    );
    assert_eq!(
        h.post(
            "/subscriptions",
            &subscription(&h, &hook, &resource, 10_000)
        )
        .await
        .status,
        StatusCode::CREATED
    );

    h.sim
        .set_faults(GraphFaults {
            max_subscription_minutes: Some(4230),
            ..GraphFaults::default()
        })
        .unwrap();
    let reply = h
        .post("/subscriptions", &subscription(&h, &hook, &resource, 5000))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("4230 minutes")
    );

    // Short lifetimes are raised to Graph's 45-minute minimum.
    let short = h
        .post("/subscriptions", &subscription(&h, &hook, &resource, 5))
        .await;
    let expires =
        chrono::DateTime::parse_from_rfc3339(short.body["expirationDateTime"].as_str().unwrap())
            .unwrap();
    assert!(expires.with_timezone(&Utc) >= h.clock.now() + chrono::Duration::minutes(44));
}

#[tokio::test]
async fn delegated_callers_may_subscribe_only_to_their_own_mailbox() {
    let h = Harness::with_mailboxes(&[ADELE, BOB]).await;
    let (hook, _rx, _) = start_receiver().await;
    let bob = h.user_token(BOB);
    let others = subscription(&h, &hook, &format!("/users/{ADELE}/events"), 60);
    let reply = h
        .call(Method::POST, "/subscriptions", &bob, &[], Some(&others))
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    let own = subscription(&h, &hook, "/me/events", 60);
    let reply = h
        .call(Method::POST, "/subscriptions", &bob, &[], Some(&own))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

#[tokio::test]
async fn a_person_changing_an_event_notifies_the_webhook_with_graph_payloads() {
    let h = Harness::with_mailboxes(&[ADELE]).await;
    let (hook, mut rx, failures) = start_receiver().await;
    let created = h
        .call(
            Method::POST,
            "/subscriptions",
            &h.app_token(),
            &[("Prefer", "IdType=\"ImmutableId\"")],
            Some(&subscription(
                &h,
                &hook,
                &format!("/users/{ADELE}/events"),
                60,
            )),
        )
        .await;
    let subscription_id = created.body["id"].as_str().unwrap().to_string();

    let act: GraphAction = serde_json::from_value(json!({
        "op": "create_event", "mailbox": ADELE,
        "event": event("Dentist", "2026-02-10T09:00:00", "2026-02-10T10:00:00", "UTC")
    }))
    .unwrap();
    let acted = h.sim.act(act).await.unwrap();
    let (kind, payload) = next(&mut rx).await;
    assert_eq!(kind, "notify");
    let parsed: ChangeNotificationCollection = serde_json::from_value(payload.clone()).unwrap();
    let n = &parsed.value[0];
    assert_eq!(n.subscription_id, subscription_id);
    assert_eq!(n.client_state.as_deref(), Some("s3cret"));
    assert_eq!(payload["value"][0]["changeType"], "created");
    let data = n.resource_data.as_ref().unwrap();
    assert_eq!(data.odata_type, "#Microsoft.Graph.Event");
    assert_eq!(
        data.id,
        acted["immutable_id"].as_str().unwrap(),
        "created with ImmutableId"
    );
    assert!(
        n.resource
            .as_deref()
            .unwrap()
            .ends_with(&format!("/Events/{}", data.id))
    );

    // An API caller's change notifies too; a failed delivery is retried.
    failures.store(1, Ordering::SeqCst);
    let id = acted["id"].as_str().unwrap();
    h.patch(
        &format!("/users/{ADELE}/events/{id}"),
        &json!({"subject": "Dentist (moved)"}),
    )
    .await;
    let (_, payload) = next(&mut rx).await;
    assert_eq!(payload["value"][0]["changeType"], "updated");
    h.delete(&format!("/users/{ADELE}/events/{id}")).await;
    let (_, payload) = next(&mut rx).await;
    assert_eq!(payload["value"][0]["changeType"], "deleted");

    // The simulator records an attempt once the webhook's answer is back,
    // which can trail the webhook seeing the body.
    let mut deliveries = h.sim.state().deliveries;
    for _ in 0..100 {
        if deliveries.iter().filter(|d| d.status == Some(202)).count() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        deliveries = h.sim.state().deliveries;
    }
    let updated: Vec<_> = deliveries.iter().filter(|d| d.kind == "updated").collect();
    assert_eq!(
        updated
            .iter()
            .map(|d| (d.attempt, d.status))
            .collect::<Vec<_>>(),
        [(1, Some(500)), (2, Some(202))]
    );
    assert!(deliveries.iter().all(|d| d.url == format!("{hook}/notify")));
}

#[tokio::test]
async fn changing_one_occurrence_sends_one_update_for_the_series_master() {
    let h = Harness::with_mailboxes(&[ADELE]).await;
    let (hook, mut rx, _) = start_receiver().await;
    let master = h
        .post(
            &format!("/users/{ADELE}/events"),
            &json!({
                "subject": "Daily",
                "start": {"dateTime": "2026-02-10T08:00:00", "timeZone": "UTC"},
                "end": {"dateTime": "2026-02-10T08:15:00", "timeZone": "UTC"},
                "recurrence": {"pattern": {"type": "daily", "interval": 1}, "range": {"type": "numbered", "startDate": "2026-02-10", "numberOfOccurrences": 3}}
            }),
        )
        .await;
    let master_id = master.body["id"].as_str().unwrap().to_string();
    h.post(
        "/subscriptions",
        &subscription(&h, &hook, &format!("/users/{ADELE}/events"), 60),
    )
    .await;
    let view = h
        .get(&format!("/users/{ADELE}/calendarView?startDateTime=2026-02-01T00:00:00Z&endDateTime=2026-03-01T00:00:00Z"))
        .await;
    let occurrence = view.body["value"][1]["id"].as_str().unwrap().to_string();
    h.patch(
        &format!("/users/{ADELE}/events/{occurrence}"),
        &json!({"subject": "Special"}),
    )
    .await;
    let (_, payload) = next(&mut rx).await;
    assert_eq!(payload["value"].as_array().unwrap().len(), 1);
    assert_eq!(payload["value"][0]["changeType"], "updated");
    assert_eq!(
        payload["value"][0]["resourceData"]["id"],
        master_id.as_str()
    );
    h.delete(&format!("/users/{ADELE}/events/{occurrence}"))
        .await;
    let (_, payload) = next(&mut rx).await;
    assert_eq!(payload["value"][0]["changeType"], "updated");
    assert_eq!(
        payload["value"][0]["resourceData"]["id"],
        master_id.as_str()
    );
}

#[tokio::test]
async fn lifecycle_notifications_are_sent_on_demand() {
    let h = Harness::with_mailboxes(&[ADELE]).await;
    let (hook, mut rx, _) = start_receiver().await;
    let created = h
        .post(
            "/subscriptions",
            &subscription(&h, &hook, &format!("/users/{ADELE}/events"), 60),
        )
        .await;
    let id = created.body["id"].as_str().unwrap().to_string();
    for event in [
        LifecycleEventType::ReauthorizationRequired,
        LifecycleEventType::Missed,
        LifecycleEventType::SubscriptionRemoved,
    ] {
        h.sim
            .set_faults(GraphFaults {
                lifecycle: vec![LifecycleFault {
                    subscription_id: id.clone(),
                    event,
                }],
                ..GraphFaults::default()
            })
            .unwrap();
        let (kind, payload) = next(&mut rx).await;
        assert_eq!(kind, "lifecycle");
        assert_eq!(payload["value"][0]["lifecycleEvent"], event.as_str());
        assert_eq!(payload["value"][0]["subscriptionId"], id.as_str());
        assert_eq!(payload["value"][0]["clientState"], "s3cret");
    }
    assert_eq!(
        h.get(&format!("/subscriptions/{id}")).await.status,
        StatusCode::NOT_FOUND,
        "removed"
    );
    let unknown = h.sim.set_faults(GraphFaults {
        lifecycle: vec![LifecycleFault {
            subscription_id: "nope".into(),
            event: LifecycleEventType::Missed,
        }],
        ..GraphFaults::default()
    });
    assert!(unknown.is_err());
}
