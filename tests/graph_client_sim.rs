//! The production Graph client against the simulator: token refresh,
//! throttling and the per-mailbox limits, which requests are retried, and
//! no secret or token in logs or the request log.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

mod graph_client_support;

use std::sync::Arc;
use std::time::Duration;

use halosync::clock::ShiftedClock;
use halosync::graph::auth::{AuthError, MemoryRefreshTokens};
use halosync::graph::model::Event;
use halosync::graph::{GraphClient, GraphError};
use halosync::http::Upstream;
use serde_json::json;

use graph_client_support::*;

#[tokio::test]
async fn an_expired_token_is_refreshed_before_the_call_and_a_401_gets_one_new_token() {
    let h = Harness::start().await;
    let client = h.app_client();
    client.user(OK).await.expect("first call");
    // The client shares the simulator's clock: after an hour it refreshes
    // before sending, and Graph never sees the old token.
    h.control("faults", json!({"advance_clock_seconds": 3700}))
        .await;
    client.user(OK).await.expect("after expiry");
    assert_eq!(h.graph_statuses(), [Some(200), Some(200)]);
    let token_calls = h
        .log
        .records()
        .iter()
        .filter(|r| r.upstream == Upstream::Identity)
        .count();
    assert_eq!(token_calls, 2, "one token, then one refresh");

    // This client keeps the wall clock while the simulator's moves on two
    // hours, so it trusts a token Graph finds expired: Graph answers 401,
    // the client gets a new token once and the call succeeds.
    let lagging = h.app_client_at(
        h.sim.simulator.graph_url().as_str(),
        Arc::new(ShiftedClock::new()),
    );
    lagging.user(OK).await.expect("a fresh token");
    h.control("faults", json!({"advance_clock_seconds": 7200}))
        .await;
    let before = h.graph_statuses().len();
    lagging.user(OK).await.expect("401, new token, success");
    assert_eq!(h.graph_statuses()[before..], [Some(401), Some(200)]);
}

#[tokio::test(start_paused = true)]
async fn a_429_with_retry_after_2_waits_2_seconds_and_then_succeeds() {
    let h = Harness::start().await;
    let client = h.app_client();
    client.user(OK).await.expect("warm up the token");
    h.control(
        "faults",
        rule(
            "GET",
            "/calendarView",
            json!({"kind": "status", "status": 429, "retry_after_seconds": 2}),
        ),
    )
    .await;
    let start = tokio::time::Instant::now();
    let events = client.calendar_view(OK, window(&h)).await;
    let waited = start.elapsed();
    assert!(events.is_ok(), "{events:?}");
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(3),
        "waited {waited:?}"
    );
    assert_eq!(h.graph_statuses()[1..], [Some(429), Some(200)]);
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_100_calls_stays_within_4_per_mailbox_so_graph_never_throttles() {
    let h = Harness::start().await;
    // Graph refuses a fifth concurrent request with 429; holding each request
    // makes a fifth one certain if the client sent it.
    h.control(
        "faults",
        json!({"graph": {"concurrency_limit": 4, "mailbox_hold_ms": 200}}),
    )
    .await;
    let client = h.app_client();
    client.user(OK).await.expect("warm up the token");
    let window = window(&h);
    let calls: Vec<_> = (0..100)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.calendar_view(OK, window).await })
        })
        .collect();
    for call in futures_util::future::join_all(calls).await {
        call.expect("task").expect("no 429 reaches the caller");
    }
    let statuses = h.graph_statuses();
    assert_eq!(statuses.len(), 101, "no retries were needed");
    assert!(
        statuses.iter().all(|s| *s == Some(200)),
        "Graph never throttled: {statuses:?}"
    );
}

#[tokio::test]
async fn a_create_retried_after_a_lost_answer_or_a_dropped_connection_is_not_duplicated() {
    let h = Harness::start().await;
    let (gateway_url, gw) = start_gateway(&h).await;
    let client = h.app_client_at(&gateway_url, h.clock());
    let start = h.now() + chrono::Duration::days(2);

    let created = client
        .create_event(OK, &new_event("Lost answer", start), "halo-417-create")
        .await
        .expect("the retry returns the event");
    assert_eq!(*gw.posts.lock().unwrap(), 2, "the POST was sent twice");
    assert_eq!(created.subject.as_deref(), Some("Lost answer"));
    assert_eq!(events_with_subject(&h, OK, "Lost answer").await, 1);

    // Every request carries the preferences and a client-request-id; a
    // retry is the same request, another call gets its own id.
    client.user(OK).await.expect("user");
    let requests = gw.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 3, "{requests:?}");
    for (request, prefer, _) in &requests {
        assert!(
            prefer.contains("IdType=\"ImmutableId\"")
                && prefer.contains("outlook.timezone=\"UTC\"")
                && prefer.contains("outlook.body-content-type=\"text\""),
            "{request}: {prefer}"
        );
    }
    let ids: Vec<&str> = requests.iter().map(|(_, _, id)| id.as_str()).collect();
    assert!(uuid::Uuid::parse_str(ids[0]).is_ok(), "{ids:?}");
    assert_eq!(ids[0], ids[1], "the retried POST");
    assert_ne!(ids[1], ids[2], "the next call");

    h.control("faults", rule("POST", "/events", json!({"kind": "drop"})))
        .await;
    let direct = h.app_client();
    direct
        .create_event(OK, &new_event("Dropped", start), "halo-418-create")
        .await
        .expect("retried after the dropped connection");
    assert_eq!(events_with_subject(&h, OK, "Dropped").await, 1);
}

#[tokio::test]
async fn patch_and_delete_are_retried_only_with_if_match() {
    let h = Harness::start().await;
    let client = h.app_client();
    let start = h.now() + chrono::Duration::days(3);
    let created = client
        .create_event(OK, &new_event("Review", start), "t-review")
        .await
        .expect("create");
    let id = created.id.clone().expect("id");
    let changes = Event {
        subject: Some("Review (moved)".into()),
        ..Event::default()
    };
    let unavailable = json!({"kind": "status", "status": 503});

    h.control("faults", rule("PATCH", "/events/", unavailable.clone()))
        .await;
    let error = client
        .update_event(OK, &id, &changes, None)
        .await
        .expect_err("a PATCH without If-Match is not replayed");
    assert!(
        matches!(error, GraphError::Throttled { status: 503, .. }),
        "{error}"
    );

    h.control("faults", rule("PATCH", "/events/", unavailable.clone()))
        .await;
    let updated = client
        .update_event(OK, &id, &changes, created.etag.as_deref())
        .await
        .expect("with If-Match it is retried");
    assert_eq!(updated.subject.as_deref(), Some("Review (moved)"));

    // The stored etag is now stale: Graph refuses, and the client says so.
    let conflict = client
        .update_event(OK, &id, &changes, created.etag.as_deref())
        .await
        .expect_err("stale etag");
    assert!(
        matches!(conflict, GraphError::Conflict { .. }),
        "{conflict}"
    );

    h.control("faults", rule("DELETE", "/events/", unavailable))
        .await;
    client
        .delete_event(OK, &id, updated.etag.as_deref())
        .await
        .expect("a DELETE with If-Match is retried");
    let gone = client.event(OK, &id).await.expect_err("deleted");
    assert!(matches!(gone, GraphError::ItemNotFound { .. }), "{gone}");
}

#[tokio::test]
async fn a_per_agent_client_signs_in_as_its_agent_and_logs_requests_with_it() {
    let h = Harness::start().await;
    let connection = h.connection("per_agent", h.sim.simulator.graph_url().as_str());
    let tokens = Arc::new(MemoryRefreshTokens::new());
    let scope = halosync::graph::auth::scopes(connection.kind, connection.cloud);
    tokens.insert("agent:7", h.sign_in(OK, &scope).await);
    let upstreams = h.upstreams(h.clock());

    let leah = GraphClient::for_agent(&connection, 7, tokens.clone(), &upstreams).unwrap();
    leah.calendar_view(OK, window(&h))
        .await
        .expect("own calendar");
    let graph: Vec<_> = h
        .log
        .records()
        .into_iter()
        .filter(|r| r.upstream == Upstream::Graph)
        .collect();
    assert_eq!(graph.len(), 1);
    assert_eq!(graph[0].agent_id, Some(7));
    assert_eq!(graph[0].mailbox.as_deref(), Some(OK));

    let stranger = GraphClient::for_agent(&connection, 8, tokens, &upstreams).unwrap();
    let error = stranger.user(ADMIN).await.expect_err("never signed in");
    assert!(
        matches!(error, GraphError::Auth(AuthError::NotConnected { ref subject }) if subject == "agent:8"),
        "{error}"
    );
}
