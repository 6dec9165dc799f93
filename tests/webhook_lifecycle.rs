//! Subscriptions over time, against the simulator: lifecycle events are
//! healed, renewal happens before expiry, delegated agents are polled.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

mod graph_client_support;
mod webhook_support;

#[path = "common/log_capture.rs"]
mod log_capture;
use log_capture::Captured;

use std::sync::Arc;
use std::time::Duration;

use chrono::Duration as Minutes;
use halosync::clock::{Clock, ManualClock};
use halosync::config::ConnectionKind;
use halosync::store::subscriptions::SubscriptionState;
use halosync::webhook::{ChangeReason, Ensured, GraphClients, SubscriptionTarget, Tended};
use serde_json::json;
use tokio::sync::oneshot;
use webhook_support::{Hook, LEAH};

/// Runs the maintenance task the daemon runs, until the returned sender
/// is dropped.
fn spawn_tend(hook: &Hook) -> oneshot::Sender<()> {
    let (stop, stopped) = oneshot::channel::<()>();
    let clients: Arc<dyn GraphClients> = hook.clients.clone();
    tokio::spawn(halosync::webhook::tend(
        hook.manager.clone(),
        clients,
        hook.state.maintenance_wakeup(),
        async {
            let _ = stopped.await;
        },
    ));
    stop
}

async fn lifecycle(hook: &Hook, subscription_id: &str, event: &str) {
    hook.h
        .control(
            "faults",
            json!({"graph": {"lifecycle": [{"subscription_id": subscription_id, "event": event}]}}),
        )
        .await;
}

/// Polls `check` every 20 ms for up to 10 s.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_subscription_is_recreated_and_its_mailbox_resynced() {
    let hook = Hook::start().await;
    let _tend = spawn_tend(&hook);
    let old = hook.subscribe_leah().await;
    lifecycle(&hook, &old, "subscriptionRemoved").await;

    eventually("a new subscription", || {
        hook.subscriptions()
            .iter()
            .any(|row| row.subscription_id != old && row.state == SubscriptionState::Active)
    })
    .await;
    let rows = hook.subscriptions();
    assert_eq!(rows.len(), 1, "the removed one is forgotten: {rows:?}");
    let live = hook.clients.0.subscriptions().await.unwrap();
    assert_eq!(
        live.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        [rows[0].subscription_id.as_str()],
        "Graph has exactly the new one"
    );
    let due = hook
        .queue
        .take_due(hook.clock.now() + Minutes::seconds(5), Minutes::zero())
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].mailbox, LEAH);
    assert_eq!(due[0].reason, ChangeReason::Removed, "the engine resyncs");

    // The new subscription works: a person's change is queued again.
    hook.queue.done(&due[0]).unwrap();
    hook.person_creates(LEAH, "After the gap").await;
    hook.deliveries_done(1).await;
    let due = hook
        .queue
        .take_due(hook.clock.now() + Minutes::seconds(5), Minutes::zero())
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        due[0].subscription_id.as_deref(),
        Some(rows[0].subscription_id.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reauthorization_required_reauthorizes_and_missed_resyncs() {
    let hook = Hook::start().await;
    let _tend = spawn_tend(&hook);
    let id = hook.subscribe_leah().await;
    let route = "POST /v1.0/subscriptions/{id}/reauthorize";
    assert_eq!(hook.h.route_count(route).await, 0);

    lifecycle(&hook, &id, "reauthorizationRequired").await;
    for _ in 0..500 {
        if hook.h.route_count(route).await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(hook.h.route_count(route).await, 1);
    eventually("the subscription active again", || {
        hook.subscriptions()[0].state == SubscriptionState::Active
    })
    .await;
    assert_eq!(
        hook.subscriptions()[0].subscription_id,
        id,
        "kept, not recreated"
    );

    lifecycle(&hook, &id, "missed").await;
    eventually("a resync queued", || {
        hook.queue
            .take_due(hook.clock.now() + Minutes::seconds(5), Minutes::zero())
            .unwrap()
            .iter()
            .any(|c| c.reason == ChangeReason::Missed && c.mailbox == LEAH)
    })
    .await;
    let log = hook.inbound();
    assert_eq!(
        log.iter()
            .filter(|r| r.outcome == halosync::store::inbound_log::InboundOutcome::Lifecycle)
            .count(),
        2
    );
    assert!(
        log[0]
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("missed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_is_renewed_before_it_lapses() {
    let h = graph_client_support::Harness::start().await;
    let manual = Arc::new(ManualClock::at(h.now()));
    let hook = Hook::start_with(h, manual.clone()).await;
    let _tend = spawn_tend(&hook);
    let id = hook.subscribe_leah().await;
    let created = hook.subscriptions()[0].clone();
    assert_eq!(
        (created.expires_at - created.created_at).num_minutes(),
        4230,
        "the configured lifetime"
    );

    // Before half the lifetime: nothing to do.
    manual.advance(Minutes::minutes(2000));
    let report = hook.manager.maintain(hook.clients.as_ref()).await.unwrap();
    assert!(report.is_empty(), "{report:?}");

    // Past half: a notification through it renews it at once.
    manual.advance(Minutes::minutes(120));
    hook.h
        .control("faults", json!({"advance_clock_seconds": 2120 * 60}))
        .await;
    hook.person_creates(LEAH, "Renews").await;
    eventually("the renewal", || {
        hook.subscriptions()[0].renewed_at.is_some()
    })
    .await;
    let renewed = hook.subscriptions()[0].clone();
    assert_eq!(renewed.subscription_id, id);
    assert_eq!(renewed.renewed_at, Some(manual.now()));
    assert!(renewed.expires_at >= manual.now() + Minutes::minutes(4229));

    // Past the original expiry, Graph still holds it.
    hook.h
        .control("faults", json!({"advance_clock_seconds": 2200 * 60}))
        .await;
    let live = hook.clients.0.subscriptions().await.unwrap();
    assert_eq!(live.len(), 1);
    assert!(live[0].expiration_date_time > created.expires_at);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lifetime_graph_refuses_is_capped_to_the_limit_it_names() {
    let hook = Hook::start().await;
    hook.h
        .control(
            "faults",
            json!({"graph": {"max_subscription_minutes": 1000}}),
        )
        .await;
    hook.subscribe_leah().await;
    let row = hook.subscriptions()[0].clone();
    let lifetime = (row.expires_at - row.created_at).num_minutes();
    assert!((990..=1000).contains(&lifetime), "{lifetime}");
    // Renewing asks for the learned limit at once: no refusal first.
    let before = hook.h.route_count("PATCH /v1.0/subscriptions/{id}").await;
    let report = hook
        .manager
        .renew(hook.clients.as_ref(), true)
        .await
        .unwrap();
    assert!(
        matches!(report[0].outcome, Tended::Renewed { .. }),
        "{report:?}"
    );
    assert_eq!(
        hook.h.route_count("PATCH /v1.0/subscriptions/{id}").await,
        before + 1
    );
}

#[tokio::test]
async fn delegated_agents_are_polled_with_one_clear_message() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("halosync::webhook=info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let hook = Hook::start().await;
    let delegated = hook.h.delegated_client().await;
    for mailbox in [LEAH, "admin@contoso.com"] {
        let target = SubscriptionTarget {
            agent_id: 2,
            mailbox,
            connection: "shared",
            kind: ConnectionKind::Delegated,
        };
        let ensured = hook.manager.ensure(&target, &delegated).await.unwrap();
        assert_eq!(ensured, Ensured::Polling);
    }
    assert!(hook.graph_subscriptions().await.is_empty());
    assert!(hook.subscriptions().is_empty());
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let message = "delegated connections cannot receive change notifications";
    assert_eq!(logs.matches(message).count(), 1, "{logs}");
    assert!(logs.contains("connection=\"shared\""), "{logs}");
}
