//! The shared HTTP layer on its own: Retry-After, bounded attempts, what is
//! replayed, the request log and its store writer.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use chrono::Utc;
use halosync::clock::{Clock, ManualClock, SystemClock};
use halosync::http::{
    HttpError, MemoryRequestLog, RequestContext, RequestRecord, RetryPolicy, TransportKind,
    Upstream, UpstreamClient, UpstreamSettings, spawn_store_writer,
};
use halosync::store::{Store, request_log};
use reqwest::header::HeaderValue;
use url::Url;

type Replies = Arc<Mutex<(VecDeque<(u16, Vec<(&'static str, &'static str)>)>, u32)>>;

async fn answer(State(replies): State<Replies>) -> Response {
    let mut guard = replies.lock().unwrap();
    guard.1 += 1;
    let (status, headers) = guard.0.pop_front().unwrap_or((200, Vec::new()));
    let mut response = (StatusCode::from_u16(status).unwrap(), "{}").into_response();
    for (name, value) in headers {
        response.headers_mut().insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

struct Server {
    base: Url,
    replies: Replies,
}

impl Server {
    async fn start(script: Vec<(u16, Vec<(&'static str, &'static str)>)>) -> Self {
        let replies: Replies = Arc::new(Mutex::new((script.into(), 0)));
        let app = Router::new()
            .route("/{*rest}", any(answer))
            .with_state(replies.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, replies }
    }

    fn hits(&self) -> u32 {
        self.replies.lock().unwrap().1
    }
}

fn client(upstream: Upstream, log: Arc<MemoryRequestLog>) -> UpstreamClient {
    let settings = UpstreamSettings {
        retry: RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(30),
        },
        request_id_header: Some(HeaderName::from_static("request-id")),
        ..UpstreamSettings::new(upstream)
    };
    UpstreamClient::new(settings, log, Arc::new(SystemClock)).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_429_with_retry_after_2_waits_two_seconds_then_succeeds() {
    let server = Server::start(vec![(429, vec![("retry-after", "2")])]).await;
    let log = Arc::new(MemoryRequestLog::new());
    let client = client(Upstream::Graph, log.clone());
    let request = client
        .http()
        .get(server.base.join("users/x").unwrap())
        .build()
        .unwrap();
    let started = tokio::time::Instant::now();
    let reply = client
        .send(
            request,
            &RequestContext::idempotent().for_mailbox("ada@contoso.com"),
        )
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.attempts, 2);
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_millis(2500),
        "{waited:?}"
    );
    let records = log.records();
    assert_eq!(records.len(), 2, "each attempt is logged");
    assert_eq!(records[0].status, Some(429));
    assert_eq!(records[0].mailbox.as_deref(), Some("ada@contoso.com"));
    assert_eq!(records[0].upstream, Upstream::Graph);
    assert_eq!(
        log.throttled_waits(),
        [(Upstream::Graph, Duration::from_secs(2))],
        "the wait is reported (the service counts it in its metrics)"
    );
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_longer_than_the_policy_allows_returns_the_429() {
    let server = Server::start(vec![(429, vec![("retry-after", "3600")])]).await;
    let client = client(Upstream::Graph, Arc::new(MemoryRequestLog::new()));
    let request = client
        .http()
        .get(server.base.join("x").unwrap())
        .build()
        .unwrap();
    let reply = client
        .send(request, &RequestContext::idempotent())
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        reply.retry_after(SystemClock.now()),
        Some(Duration::from_secs(3600))
    );
    assert_eq!(server.hits(), 1, "no retry: the caller reschedules");
}

#[tokio::test(start_paused = true)]
async fn attempts_are_bounded_and_backoff_grows() {
    let unavailable = || (503, Vec::new());
    let server = Server::start(vec![unavailable(); 10]).await;
    let client = client(Upstream::Halo, Arc::new(MemoryRequestLog::new()));
    let request = client
        .http()
        .get(server.base.join("x").unwrap())
        .build()
        .unwrap();
    let started = tokio::time::Instant::now();
    let reply = client
        .send(request, &RequestContext::idempotent())
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.attempts, 4);
    assert_eq!(server.hits(), 4);
    // Full jitter: at most 1 + 2 + 4 seconds in all.
    assert!(
        started.elapsed() <= Duration::from_secs(7),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_non_idempotent_request_is_not_replayed_after_a_503() {
    let server = Server::start(vec![(503, Vec::new())]).await;
    let client = client(Upstream::Graph, Arc::new(MemoryRequestLog::new()));
    let request = client
        .http()
        .post(server.base.join("users/x/events").unwrap())
        .body("{}")
        .build()
        .unwrap();
    let reply = client
        .send(request, &RequestContext::not_idempotent())
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(server.hits(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_refused_connection_is_retried_then_reported_without_the_query() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let log = Arc::new(MemoryRequestLog::new());
    let client = client(Upstream::Identity, log.clone());
    let url = format!("http://{address}/tenant/oauth2/v2.0/token?client_secret=hunter2");
    // Nothing was sent, so even a POST is tried again.
    let request = client.http().post(url).build().unwrap();
    let error = client
        .send(request, &RequestContext::not_idempotent())
        .await
        .unwrap_err();
    match &error {
        HttpError::Transport { attempts, kind, .. } => {
            assert_eq!(*attempts, 4);
            assert_eq!(*kind, TransportKind::Connect);
        }
        other => panic!("{other:?}"),
    }
    let text = error.to_string();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("client_secret=[redacted]"), "{text}");
    let records = log.records();
    assert_eq!(records.len(), 4);
    assert!(
        records
            .iter()
            .all(|r| r.status.is_none() && r.error.is_some())
    );
    assert!(records.iter().all(|r| !r.path.contains("hunter2")));
}

#[tokio::test]
async fn the_upstream_request_id_and_status_are_logged() {
    let server = Server::start(vec![(404, vec![("request-id", "7f3a-11")])]).await;
    let log = Arc::new(MemoryRequestLog::new());
    let client = client(Upstream::Graph, log.clone());
    let request = client
        .http()
        .get(
            server
                .base
                .join("users/x?$deltatoken=abcdefghijklmnop")
                .unwrap(),
        )
        .build()
        .unwrap();
    let reply = client
        .send(request, &RequestContext::idempotent().for_agent(7))
        .await
        .unwrap();
    assert_eq!(reply.request_id.as_deref(), Some("7f3a-11"));
    let record = log.records().pop().unwrap();
    assert_eq!(record.request_id.as_deref(), Some("7f3a-11"));
    assert_eq!(record.status, Some(404));
    assert_eq!(record.error.as_deref(), Some("Not Found"));
    assert_eq!(record.agent_id, Some(7));
    assert_eq!(record.path, "/users/x?$deltatoken=abcdefgh…");
}

fn record(at: chrono::DateTime<Utc>, path: &str) -> RequestRecord {
    RequestRecord {
        at,
        upstream: Upstream::Halo,
        method: "GET".into(),
        path: path.into(),
        status: Some(200),
        duration_ms: 12,
        mailbox: None,
        agent_id: Some(2),
        request_id: None,
        error: None,
    }
}

#[tokio::test]
async fn the_store_writer_persists_records_and_pruning_keeps_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Mutex::new(
        Store::open(dir.path().join("halosync.db")).unwrap(),
    ));
    let (sink, writer) = spawn_store_writer(store.clone(), 64);
    let clock = ManualClock::at(
        chrono::DateTime::parse_from_rfc3339("2026-02-10T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc),
    );
    let now = clock.now();
    use halosync::http::RequestLogSink;
    sink.record(record(now - chrono::Duration::days(40), "/api/old"));
    sink.record(record(now - chrono::Duration::days(1), "/api/recent"));
    let failed = RequestRecord {
        status: None,
        error: None,
        ..record(now, "/api/no-answer")
    };
    sink.record(failed);
    drop(sink);
    writer.await.unwrap();

    let store = store.lock().unwrap();
    let rows = request_log::recent(store.connection(), 10).unwrap();
    let paths: Vec<&str> = rows.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/api/no-answer", "/api/recent", "/api/old"]);
    assert_eq!(
        rows[0].error.as_deref(),
        Some("no answer"),
        "the table needs a status or an error"
    );
    assert_eq!(rows[1].at, now - chrono::Duration::days(1));
    assert_eq!(rows[1].agent_id, Some(2));

    let pruned = request_log::prune(store.connection(), now, 30).unwrap();
    assert_eq!(pruned, 1);
    let left: Vec<String> = request_log::recent(store.connection(), 10)
        .unwrap()
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(left, ["/api/no-answer", "/api/recent"]);
}
