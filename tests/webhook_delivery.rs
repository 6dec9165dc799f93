//! End to end against the simulator: a subscription made by the manager
//! passes Graph's handshake on the listener, and the notifications Graph
//! then delivers reach the engine's queue, coalesced per mailbox.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

mod graph_client_support;
mod webhook_support;

use std::time::{Duration, Instant};

use halosync::webhook::{ChangeReason, DEFAULT_DEBOUNCE, Ensured};
use webhook_support::{Hook, LEAH, LEAH_ID, LIFECYCLE, NOTIFY};

// Several worker threads: the simulator delivers while the test waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_passes_the_handshake_and_stores_only_a_hash_of_its_secret() {
    let hook = Hook::start().await;
    let id = hook.subscribe_leah().await;

    let graph = hook.graph_subscriptions().await;
    assert_eq!(graph.len(), 1);
    let on_graph = &graph[0];
    assert_eq!(on_graph["id"], id.as_str());
    assert_eq!(
        on_graph["notificationUrl"],
        format!("{}{NOTIFY}", hook.base)
    );
    assert_eq!(
        on_graph["lifecycleNotificationUrl"],
        format!("{}{LIFECYCLE}", hook.base)
    );
    assert_eq!(on_graph["changeType"], "created,updated,deleted");
    let secret = on_graph["clientState"].as_str().unwrap();
    assert!(secret.len() >= 43, "256 random bits, URL-safe: {secret}");

    let rows = hook.subscriptions();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].subscription_id, id);
    assert_eq!(
        rows[0].client_state_hash,
        halosync::webhook::notification::client_state_hash(&secret.to_string().into())
    );
    // The secret itself is nowhere in the database file.
    let db = std::fs::read(hook.store.lock().unwrap().path()).unwrap();
    let wal = std::fs::read(hook.store.lock().unwrap().path().with_extension("db-wal"))
        .unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }
    // Graph's two handshakes are in the inbound log.
    let validations = hook
        .inbound()
        .iter()
        .filter(|r| r.outcome == halosync::store::inbound_log::InboundOutcome::Validation)
        .count();
    assert_eq!(validations, 2);

    // A second ensure finds it; a second subscription is never made.
    let again = hook
        .manager
        .ensure(&hook.leah(), &hook.clients.0)
        .await
        .unwrap();
    assert!(
        matches!(again, Ensured::Existing { ref subscription_id, .. } if *subscription_id == id)
    );
    assert_eq!(hook.graph_subscriptions().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_s_change_reaches_the_queue_within_two_seconds() {
    let hook = Hook::start().await;
    let id = hook.subscribe_leah().await;

    let started = Instant::now();
    hook.person_creates(LEAH, "Site visit").await;
    let due = tokio::time::timeout(
        Duration::from_secs(10),
        hook.queue.wait_due(hook.clock.as_ref(), DEFAULT_DEBOUNCE),
    )
    .await
    .expect("the change reaches the queue")
    .unwrap();
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    assert_eq!(due.len(), 1);
    let changed = &due[0];
    assert_eq!(changed.mailbox, LEAH);
    assert_eq!(changed.agent_id, LEAH_ID);
    assert_eq!(changed.subscription_id.as_deref(), Some(id.as_str()));
    assert_eq!(changed.reason, ChangeReason::Changed);
    hook.queue.done(changed).unwrap();
    let later = hook.clock.now() + chrono::Duration::hours(1);
    assert!(
        hook.queue
            .take_due(later, chrono::Duration::zero())
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_twenty_changes_becomes_one_pull() {
    let hook = Hook::start().await;
    hook.subscribe_leah().await;
    for i in 0..20 {
        hook.person_creates(LEAH, &format!("Job {i}")).await;
    }
    hook.deliveries_done(20).await;
    let now = hook.clock.now();
    let due = hook
        .queue
        .take_due(now + DEFAULT_DEBOUNCE, DEFAULT_DEBOUNCE)
        .unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(due[0].notifications, 20);
    assert_eq!(due[0].mailbox, LEAH);
    let accepted = hook
        .inbound()
        .iter()
        .filter(|r| r.outcome == halosync::store::inbound_log::InboundOutcome::Accepted)
        .count();
    assert_eq!(accepted, 20, "each delivery is logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_agent_connection_subscribes_with_the_agent_s_own_sign_in() {
    use halosync::config::ConnectionKind;
    use halosync::graph::GraphClient;
    use halosync::graph::auth::{MemoryRefreshTokens, scopes};
    use halosync::webhook::SubscriptionTarget;
    use std::sync::Arc;

    let hook = Hook::start().await;
    let connection = hook
        .h
        .connection("per_agent", hook.h.sim.simulator.graph_url().as_str());
    let tokens = Arc::new(MemoryRefreshTokens::new());
    tokens.insert(
        &format!("agent:{LEAH_ID}"),
        hook.h
            .sign_in(LEAH, &scopes(connection.kind, connection.cloud))
            .await,
    );
    let client = GraphClient::for_agent(
        &connection,
        LEAH_ID,
        tokens,
        &hook.h.upstreams(hook.clock.clone()),
    )
    .unwrap();
    let target = SubscriptionTarget {
        agent_id: LEAH_ID,
        mailbox: LEAH,
        connection: "main",
        kind: ConnectionKind::PerAgent,
    };
    let ensured = hook.manager.ensure(&target, &client).await.unwrap();
    assert!(matches!(ensured, Ensured::Created { .. }), "{ensured:?}");
    let graph = hook.graph_subscriptions().await;
    assert_eq!(graph.len(), 1);
    assert_eq!(graph[0]["resource"], format!("/users/{LEAH}/events"));
    assert_ne!(
        graph[0]["creatorId"], graph[0]["applicationId"],
        "created as Leah, not the app"
    );

    hook.person_creates(LEAH, "Own calendar").await;
    let due = tokio::time::timeout(
        Duration::from_secs(10),
        hook.queue.wait_due(hook.clock.as_ref(), DEFAULT_DEBOUNCE),
    )
    .await
    .expect("the change reaches the queue")
    .unwrap();
    assert_eq!(due[0].mailbox, LEAH);
}
