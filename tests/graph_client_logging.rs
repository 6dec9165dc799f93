//! No secret or token reaches the logs or the request log of the Graph
//! client. Alone in its own test binary: it installs a scoped `tracing`
//! subscriber, and tracing's per-callsite interest cache can miss events
//! when other tests in the same process hit the same callsites at once.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

mod graph_client_support;

#[path = "common/log_capture.rs"]
mod log_capture;
use log_capture::Captured;

use std::sync::Arc;

use halosync::clock::ShiftedClock;
use serde_json::json;

use graph_client_support::*;

#[tokio::test]
async fn no_secret_or_token_reaches_the_logs_or_the_request_log() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let h = Harness::start().await;
    let (gateway_url, gw) = start_gateway(&h).await;
    let client = h.app_client_at(&gateway_url, Arc::new(ShiftedClock::new()));
    client.user(OK).await.expect("user");
    client
        .create_event(OK, &new_event("Logged", h.now()), "t-logged")
        .await
        .expect("create after a lost answer");
    client
        .calendar_view("locked@contoso.com", window(&h))
        .await
        .expect_err("denied, and logged as a failure");
    // Expire the token on Graph's side only, for a 401 and a new token.
    h.control("faults", json!({"advance_clock_seconds": 7200}))
        .await;
    client.user(OK).await.expect("after a 401");

    let tokens: Vec<String> = gw
        .authorizations
        .lock()
        .unwrap()
        .iter()
        .map(|h| h.trim_start_matches("Bearer ").to_string())
        .collect();
    assert!(
        tokens
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len()
            >= 2,
        "two access tokens were used"
    );
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let rows = format!("{:?}", h.log.records());
    assert!(logs.contains("Graph request failed") && logs.contains("request_id"));
    assert!(rows.contains("ErrorAccessDenied"), "{rows}");
    for haystack in [&logs, &rows] {
        assert!(!haystack.contains(SECRET), "the client secret leaked");
        for token in &tokens {
            assert!(!haystack.contains(token.as_str()), "an access token leaked");
        }
    }
}
