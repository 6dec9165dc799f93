//! The listener's HTTP contract: the validation handshake, and that forged
//! or broken requests change nothing but are logged with what they were.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

mod graph_client_support;
mod webhook_support;

use chrono::Duration;
use halosync::store::inbound_log::InboundOutcome;
use halosync::webhook::{MAX_BODY_BYTES, MAX_TOKEN_CHARS};
use serde_json::{Value, json};
use webhook_support::{Hook, LEAH, LIFECYCLE, NOTIFY};

fn notification(subscription_id: &str, client_state: &str, etag: &str) -> Value {
    json!({"value": [{
        "subscriptionId": subscription_id,
        "subscriptionExpirationDateTime": "2026-03-03T00:00:00Z",
        "clientState": client_state,
        "changeType": "updated",
        "tenantId": "contoso",
        "resource": "Users/u1/Events/e1",
        "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "@odata.id": "Users/u1/Events/e1",
                         "@odata.etag": etag, "id": "e1"}
    }]})
}

/// Nothing is queued, even long after any debounce.
fn nothing_queued(hook: &Hook) {
    let later = hook.clock.now() + Duration::hours(1);
    let due = hook.queue.take_due(later, Duration::zero()).unwrap();
    assert!(due.is_empty(), "queued: {due:?}");
}

#[tokio::test]
async fn the_validation_token_is_echoed_decoded_as_plain_text_and_odd_ones_are_refused() {
    let hook = Hook::start().await;
    let token =
        "Validation: Testing client application reachability for subscription Request-Id: 4f1c <&>";
    for path in [NOTIFY, LIFECYCLE] {
        let url = url::Url::parse_with_params(
            &format!("{}{path}", hook.base),
            [("validationToken", token)],
        )
        .unwrap();
        let response = hook
            .http
            .post(url)
            .header("content-type", "text/plain; charset=utf-8")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert_eq!(response.text().await.unwrap(), token, "decoded, verbatim");
    }

    let too_long = "a".repeat(MAX_TOKEN_CHARS + 1);
    for bad in [
        too_long.as_str(),
        "line\nbreak",
        "nul\u{0}",
        "caf\u{e9}",
        "",
    ] {
        let url = url::Url::parse_with_params(
            &format!("{}{NOTIFY}", hook.base),
            [("validationToken", bad)],
        )
        .unwrap();
        let response = hook.http.post(url).send().await.unwrap();
        assert_eq!(response.status(), 400, "{bad:?}");
        assert!(!response.text().await.unwrap().contains(bad) || bad.is_empty());
    }

    let log = hook.inbound();
    assert_eq!(log.len(), 7);
    let outcomes: Vec<InboundOutcome> = log.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == InboundOutcome::Validation)
            .count(),
        2
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == InboundOutcome::Rejected)
            .count(),
        5
    );
    assert!(
        log.iter().all(|r| !r.path.contains("validationToken")),
        "the log keeps the path, not the query"
    );
    nothing_queued(&hook);
}

#[tokio::test]
async fn a_verified_notification_is_queued_once_and_a_redelivery_is_recognised() {
    let hook = Hook::start().await;
    hook.insert_known("sub-known", "the-secret");
    let body = notification("sub-known", "the-secret", "W/\"1\"").to_string();
    for _ in 0..2 {
        let (status, _) = hook
            .post(NOTIFY, "application/json; charset=utf-8", body.clone())
            .await;
        assert_eq!(status, 202);
    }
    let due = hook
        .queue
        .take_due(hook.clock.now() + Duration::seconds(5), Duration::zero())
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].mailbox, LEAH);
    assert_eq!(
        due[0].notifications, 1,
        "the redelivery was not queued again"
    );
    let log = hook.inbound();
    assert!(log.iter().all(|r| r.outcome == InboundOutcome::Accepted));
    assert_eq!(log[0].detail.as_deref(), Some("1 duplicate"));
    assert_eq!(log[0].subscription_id.as_deref(), Some("sub-known"));
    assert_eq!(log[0].mailbox.as_deref(), Some(LEAH));
    assert_eq!(log[0].item_count, 1);
    let row = &hook.subscriptions()[0];
    assert!(row.last_notification_at.is_some());
}

#[tokio::test]
async fn forged_and_broken_requests_change_nothing_and_are_logged() {
    let hook = Hook::start().await;
    hook.insert_known("sub-known", "the-secret");
    let oversized = format!(
        "{{\"value\": [], \"pad\": \"{}\"}}",
        "x".repeat(MAX_BODY_BYTES)
    );
    let json = "application/json";
    let cases: Vec<(&str, u16, InboundOutcome, &str)> = vec![
        // Well-formed but unverifiable: 202 (see the listener's docs), dropped.
        (
            "wrong clientState",
            202,
            InboundOutcome::Rejected,
            "clientState mismatch",
        ),
        (
            "unknown subscription",
            202,
            InboundOutcome::Rejected,
            "unknown subscription",
        ),
        ("malformed JSON", 400, InboundOutcome::Malformed, "not JSON"),
        (
            "not a collection",
            400,
            InboundOutcome::Malformed,
            "not a notification collection",
        ),
        (
            "oversized body",
            413,
            InboundOutcome::Rejected,
            "larger than",
        ),
        (
            "wrong content type",
            415,
            InboundOutcome::Rejected,
            "application/json",
        ),
    ];
    for (case, status, outcome, detail) in &cases {
        let (content_type, body) = match *case {
            "wrong clientState" => (
                json,
                notification("sub-known", "guess", "W/\"1\"").to_string(),
            ),
            "unknown subscription" => (
                json,
                notification("sub-other", "the-secret", "W/\"1\"").to_string(),
            ),
            "malformed JSON" => (json, "{\"value\": [".to_string()),
            "not a collection" => (json, "[{\"subscriptionId\": \"sub-known\"}]".to_string()),
            "oversized body" => (json, oversized.clone()),
            _ => (
                "text/plain",
                notification("sub-known", "the-secret", "W/\"1\"").to_string(),
            ),
        };
        let (got, _) = hook.post(NOTIFY, content_type, body).await;
        assert_eq!(got, *status, "{case}");
        let row = hook.inbound().remove(0);
        assert_eq!(row.outcome, *outcome, "{case}");
        assert_eq!(row.status, *status, "{case}");
        let text = row.detail.clone().unwrap_or_default();
        assert!(text.contains(detail), "{case}: {text}");
        assert!(
            !text.contains("the-secret") && !text.contains("guess"),
            "{case}: {text}"
        );
    }

    let get = hook
        .http
        .get(format!("{}{NOTIFY}", hook.base))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    assert_eq!(get.headers()["allow"], "POST");
    let elsewhere = hook
        .post(
            "/graph/other",
            json,
            notification("sub-known", "the-secret", "W/\"1\"").to_string(),
        )
        .await;
    assert_eq!(elsewhere.0, 404);
    let statuses: Vec<u16> = hook.inbound().iter().take(2).map(|r| r.status).collect();
    assert_eq!(statuses, [404, 405]);

    nothing_queued(&hook);
    assert_eq!(
        hook.inbound().len(),
        cases.len() + 2,
        "every request logged"
    );
    assert!(
        hook.subscriptions()[0].last_notification_at.is_none(),
        "no forged request counts as a notification"
    );
}
