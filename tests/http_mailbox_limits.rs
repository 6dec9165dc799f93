//! Per-mailbox limits in the shared HTTP layer: at most four requests in
//! flight per mailbox under a burst, and a throttled mailbox pauses as a
//! whole.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use halosync::clock::SystemClock;
use halosync::http::{
    MailboxLimits, MemoryRequestLog, RequestContext, Upstream, UpstreamClient, UpstreamSettings,
};
use tokio::time::Instant;
use url::Url;

#[derive(Default)]
struct Track {
    /// Per mailbox: in flight now, the most ever in flight.
    in_flight: Mutex<HashMap<String, (usize, usize)>>,
    /// Per mailbox: when each request arrived.
    arrivals: Mutex<HashMap<String, Vec<Instant>>>,
    /// Mailboxes whose next request gets a 429 with `Retry-After: 2`.
    throttle_next: Mutex<Vec<String>>,
}

async fn calendar(State(track): State<Arc<Track>>, Path(mailbox): Path<String>) -> Response {
    track
        .arrivals
        .lock()
        .unwrap()
        .entry(mailbox.clone())
        .or_default()
        .push(Instant::now());
    {
        let mut throttle = track.throttle_next.lock().unwrap();
        if let Some(index) = throttle.iter().position(|m| *m == mailbox) {
            throttle.remove(index);
            return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "2")], "").into_response();
        }
    }
    {
        let mut in_flight = track.in_flight.lock().unwrap();
        let entry = in_flight.entry(mailbox.clone()).or_default();
        entry.0 += 1;
        entry.1 = entry.1.max(entry.0);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    track.in_flight.lock().unwrap().get_mut(&mailbox).unwrap().0 -= 1;
    (StatusCode::OK, "{}").into_response()
}

async fn server() -> (Url, Arc<Track>) {
    let track = Arc::new(Track::default());
    let app = Router::new()
        .route("/users/{mailbox}/calendarView", get(calendar))
        .with_state(track.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, track)
}

fn graph_client() -> UpstreamClient {
    let settings = UpstreamSettings {
        mailbox_limits: Some(Arc::new(MailboxLimits::new(
            4,
            9_000,
            Duration::from_secs(600),
        ))),
        ..UpstreamSettings::new(Upstream::Graph)
    };
    UpstreamClient::new(
        settings,
        Arc::new(MemoryRequestLog::new()),
        Arc::new(SystemClock),
    )
    .unwrap()
}

async fn call(client: UpstreamClient, base: Url, mailbox: &'static str) -> StatusCode {
    let url = base
        .join(&format!("users/{}/calendarView", mailbox.to_lowercase()))
        .unwrap();
    let request = client.http().get(url).build().unwrap();
    let context = RequestContext::idempotent().for_mailbox(mailbox);
    client.send(request, &context).await.unwrap().status
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_100_calls_never_has_more_than_4_in_flight_per_mailbox() {
    let (base, track) = server().await;
    let client = graph_client();
    // The same mailbox spelled two ways, and a second mailbox alongside.
    let mailboxes = ["ada@contoso.com", "Ada@Contoso.com", "cy@contoso.com"];
    let calls: Vec<_> = (0..150)
        .map(|i| tokio::spawn(call(client.clone(), base.clone(), mailboxes[i % 3])))
        .collect();
    for status in futures_util::future::join_all(calls).await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    let in_flight = track.in_flight.lock().unwrap();
    assert_eq!(
        in_flight["ada@contoso.com"],
        (0, 4),
        "100 calls to one mailbox: 4 at a time, and the limit was reached"
    );
    assert_eq!(in_flight["cy@contoso.com"], (0, 4));
}

#[tokio::test(start_paused = true)]
async fn a_throttled_mailbox_holds_its_other_requests_but_not_other_mailboxes() {
    let (base, track) = server().await;
    track
        .throttle_next
        .lock()
        .unwrap()
        .push("ada@contoso.com".into());
    let client = graph_client();
    let start = Instant::now();
    let first = tokio::spawn(call(client.clone(), base.clone(), "ada@contoso.com"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = tokio::spawn(call(client.clone(), base.clone(), "ada@contoso.com"));
    let other = tokio::spawn(call(client.clone(), base.clone(), "cy@contoso.com"));
    for call in [first, second, other] {
        assert_eq!(call.await.unwrap(), StatusCode::OK);
    }
    let arrivals = track.arrivals.lock().unwrap();
    let ada: Vec<Duration> = arrivals["ada@contoso.com"]
        .iter()
        .map(|at| *at - start)
        .collect();
    assert_eq!(ada.len(), 3, "{ada:?}");
    assert!(ada[0] < Duration::from_millis(100), "{ada:?}");
    assert!(
        ada[1..].iter().all(|at| *at >= Duration::from_secs(2)),
        "the second request waited out the pause with the retry: {ada:?}"
    );
    let cy = arrivals["cy@contoso.com"][0] - start;
    assert!(
        cy < Duration::from_secs(1),
        "another mailbox is not paused: {cy:?}"
    );
}
