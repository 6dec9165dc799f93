//! The production Graph client against the simulator: headers and token
//! refresh, throttling and the per-mailbox limits, idempotent retries,
//! delta, typed errors, `$batch`, subscriptions, id translation and the
//! Halo id property — and no secret or token in logs or the request log.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use halosync::clock::{SharedClock, ShiftedClock};
use halosync::config::{self, ConnectionConfig, Environment};
use halosync::graph::auth::{Flow, MemoryRefreshTokens};
use halosync::graph::model::{DateTimeTimeZone, Event};
use halosync::graph::{
    Access, BatchRequest, GraphClient, GraphClientOptions, GraphError, GraphUpstreams,
    NewSubscription, Window,
};
use halosync::http::{MemoryRequestLog, Upstream};
use halosync::sim::server::RunningSimulator;
use secrecy::SecretString;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const SECRET: &str = "graph-app-secret-7c21";
const OK: &str = "leah@contoso.com";
const ADMIN: &str = "admin@contoso.com";

struct Harness {
    sim: RunningSimulator,
    http: reqwest::Client,
    log: Arc<MemoryRequestLog>,
}

impl Harness {
    async fn start() -> Self {
        let sim = RunningSimulator::start_local().await.expect("sim");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let harness = Self {
            sim,
            http,
            log: Arc::new(MemoryRequestLog::new()),
        };
        harness
            .control(
                "seed",
                json!({
                    "apps": [{"tenant": "contoso", "client_id": "app", "client_secret": SECRET,
                              "cloud": "global", "roles": ["Calendars.ReadWrite", "User.Read.All"]}],
                    "mailboxes": [
                        {"upn": OK, "delegates": [ADMIN]},
                        {"upn": ADMIN},
                        {"upn": "ghost@contoso.com", "state": "unlicensed"},
                        {"upn": "locked@contoso.com", "state": "access_denied"},
                        {"upn": "private@contoso.com", "state": "no_delegate", "delegates": [ADMIN]},
                    ]
                }),
            )
            .await;
        harness
    }

    fn base(&self) -> String {
        self.sim.simulator.base_url().to_string()
    }

    fn clock(&self) -> SharedClock {
        self.sim.simulator.clock()
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock().now()
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}_sim/{path}", self.base()))
            .json(&body)
            .send()
            .await
            .expect("control");
        let status = response.status();
        let text = response.text().await.expect("body");
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn state(&self) -> Value {
        self.http
            .get(format!("{}_sim/state", self.base()))
            .send()
            .await
            .expect("state")
            .json()
            .await
            .expect("json")
    }

    async fn route_count(&self, route: &str) -> u64 {
        self.state().await["requests"]["by_route"][route]
            .as_u64()
            .unwrap_or(0)
    }

    fn connection(&self, kind: &str, graph_url: &str) -> ConnectionConfig {
        let text = format!(
            "[halo]\nbase_url = \"http://127.0.0.1:1/halo\"\nclient_id = \"h\"\nclient_secret = \"h\"\n\n\
             [[exchange.connection]]\nname = \"main\"\ntype = \"{kind}\"\n\
             login_url = \"{}\"\ngraph_url = \"{graph_url}\"\ntenant_id = \"contoso\"\nclient_id = \"app\"\n\
             client_secret = \"{SECRET}\"\n\n[store]\npath = \"x.db\"\ntoken_key = \"{}\"\n",
            self.sim.simulator.login_url(),
            "k".repeat(40),
        );
        config::load_str(
            Path::new("/nonexistent/halosync.toml"),
            &text,
            None,
            &Environment::fixed(Vec::<(String, String)>::new()),
        )
        .expect("valid config")
        .config
        .connections
        .into_iter()
        .next()
        .expect("one connection")
    }

    fn upstreams(&self, clock: SharedClock) -> GraphUpstreams {
        GraphUpstreams::new(self.log.clone(), clock, &GraphClientOptions::default())
            .expect("upstreams")
    }

    /// An application-permission client on the simulator's Graph.
    fn app_client(&self) -> GraphClient {
        self.app_client_at(self.sim.simulator.graph_url().as_str(), self.clock())
    }

    fn app_client_at(&self, graph_url: &str, clock: SharedClock) -> GraphClient {
        GraphClient::new(
            &self.connection("application", graph_url),
            Flow::Application,
            &self.upstreams(clock),
        )
        .expect("client")
    }

    /// A delegated client signed in as the admin account.
    async fn delegated_client(&self) -> GraphClient {
        let connection = self.connection("delegated", self.sim.simulator.graph_url().as_str());
        let tokens = Arc::new(MemoryRefreshTokens::new());
        tokens.insert(
            "connection:main",
            self.sign_in(
                ADMIN,
                &halosync::graph::auth::scopes(connection.kind, connection.cloud),
            )
            .await,
        );
        GraphClient::new(
            &connection,
            Flow::RefreshToken {
                subject: "connection:main".into(),
                tokens,
            },
            &self.upstreams(self.clock()),
        )
        .expect("client")
    }

    /// Signs `upn` in with the authorization code flow and PKCE.
    async fn sign_in(&self, upn: &str, scope: &str) -> SecretString {
        let verifier = "a-very-long-pkce-code-verifier-0123456789abcdef";
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let redirect = "http://localhost:8780/auth/callback";
        let login = self.sim.simulator.login_url();
        let authorize = self
            .http
            .get(format!("{login}contoso/oauth2/v2.0/authorize"))
            .query(&[
                ("client_id", "app"),
                ("response_type", "code"),
                ("redirect_uri", redirect),
                ("scope", scope),
                ("state", "s1"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("login_hint", upn),
            ])
            .send()
            .await
            .expect("authorize");
        let location = authorize.headers()["location"]
            .to_str()
            .unwrap()
            .to_string();
        let code = url::Url::parse(&location)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.to_string())
            .expect("code");
        let token: Value = self
            .http
            .post(format!("{login}contoso/oauth2/v2.0/token"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("client_id", "app"),
                ("client_secret", SECRET),
                ("code", &code),
                ("redirect_uri", redirect),
                ("code_verifier", verifier),
                ("scope", scope),
            ])
            .send()
            .await
            .expect("redeem")
            .json()
            .await
            .expect("json");
        SecretString::from(token["refresh_token"].as_str().unwrap().to_string())
    }

    fn graph_statuses(&self) -> Vec<Option<u16>> {
        self.log
            .records()
            .iter()
            .filter(|r| r.upstream == Upstream::Graph)
            .map(|r| r.status)
            .collect()
    }
}

fn at(instant: DateTime<Utc>) -> Value {
    json!({"dateTime": instant.format("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": "UTC"})
}

fn new_event(subject: &str, start: DateTime<Utc>) -> Event {
    Event {
        subject: Some(subject.into()),
        start: Some(DateTimeTimeZone::utc(start)),
        end: Some(DateTimeTimeZone::utc(start + chrono::Duration::hours(1))),
        ..Event::default()
    }
}

fn rule(method: &str, path: &str, action: Value) -> Value {
    json!({"graph": {"faults": {"rules": [
        {"method": method, "path_contains": path, "count": 1, "action": action}
    ]}}})
}

fn window(h: &Harness) -> Window {
    let now = h.now();
    Window::new(
        now - chrono::Duration::days(1),
        now + chrono::Duration::days(14),
    )
}

async fn events_with_subject(h: &Harness, mailbox: &str, subject: &str) -> usize {
    h.state().await["events"][mailbox]
        .as_array()
        .map_or(0, |events| {
            events.iter().filter(|e| e["subject"] == subject).count()
        })
}

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

    // This client's clock lags the simulator's by two hours, so it trusts a
    // token Graph finds expired: Graph answers 401, the client gets a new
    // token once and the call succeeds.
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

/// Forwards everything to the simulator, except that the first create
/// (`POST …/events`) is answered `503` *after* the simulator processed it,
/// as a gateway that lost the answer would; it also records every
/// `Authorization` header it forwards.
#[derive(Clone)]
struct LossyGateway {
    target: String,
    http: reqwest::Client,
    posts: Arc<Mutex<u32>>,
    authorizations: Arc<Mutex<Vec<String>>>,
}

async fn gateway(State(gw): State<LossyGateway>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let path = parts.uri.path_and_query().map_or("", |p| p.as_str());
    let url = format!("{}{}", gw.target, path.trim_start_matches('/'));
    let mut forward = gw.http.request(parts.method.clone(), url).body(body);
    for (name, value) in &parts.headers {
        if name != "host" {
            forward = forward.header(name, value);
        }
        if name == "authorization" {
            gw.authorizations
                .lock()
                .unwrap()
                .push(value.to_str().unwrap().to_string());
        }
    }
    let answer = forward.send().await.unwrap();
    let is_create = parts.method == "POST" && parts.uri.path().ends_with("/events");
    if is_create {
        let mut posts = gw.posts.lock().unwrap();
        *posts += 1;
        if *posts == 1 {
            assert!(answer.status().is_success(), "the simulator created it");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [("content-type", "application/json")],
                r#"{"error":{"code":"serviceNotAvailable","message":"gateway lost the answer"}}"#,
            )
                .into_response();
        }
    }
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await.unwrap();
    let mut response = (status, bytes).into_response();
    for (name, value) in &headers {
        if name != "content-length" && name != "transfer-encoding" {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}

async fn start_gateway(h: &Harness) -> (String, LossyGateway) {
    let gw = LossyGateway {
        target: h.sim.simulator.base_url().to_string(),
        http: h.http.clone(),
        posts: Arc::default(),
        authorizations: Arc::default(),
    };
    let app = Router::new().fallback(gateway).with_state(gw.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/graph/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, gw)
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
async fn delta_pages_carry_changes_removals_and_full_occurrences_and_an_evicted_link_asks_for_resync()
 {
    let h = Harness::start().await;
    let now = h.now();
    let day = |n: i64| now + chrono::Duration::days(n);
    let seeded = h
        .control(
            "seed",
            json!({"events": {OK: [
                {"subject": "One", "start": at(day(1)), "end": at(day(1) + chrono::Duration::hours(1))},
                {"subject": "Two", "start": at(day(2)), "end": at(day(2) + chrono::Duration::hours(1))},
                {"subject": "Far away", "start": at(day(60)), "end": at(day(60) + chrono::Duration::hours(1))},
                {"subject": "Standup", "start": at(day(3)), "end": at(day(3) + chrono::Duration::minutes(15)),
                 "body": {"contentType": "text", "content": "daily"},
                 "recurrence": {"pattern": {"type": "daily", "interval": 1},
                                "range": {"type": "numbered", "startDate": day(3).format("%Y-%m-%d").to_string(),
                                          "numberOfOccurrences": 3}}}
            ]}}),
        )
        .await;
    let client = h.app_client();
    let window = window(&h);
    let mut pages = client
        .calendar_view_delta(OK, window, None, Some(2))
        .expect("start");
    let mut round = halosync::graph::DeltaRound::default();
    let mut page_count = 0;
    while let Some(page) = pages.next_page().await.expect("page") {
        page_count += 1;
        assert!(page.changed.len() <= 4, "a small page: {page:?}");
        round.changed.extend(page.changed);
        if let Some(link) = page.delta_link {
            round.delta_link = link;
        }
    }
    assert!(page_count >= 2, "{page_count} page(s)");
    assert!(!round.delta_link.is_empty());
    let mut subjects: Vec<&str> = round
        .changed
        .iter()
        .filter(|e| e.event_type != Some(halosync::graph::model::EventType::SeriesMaster))
        .filter_map(|e| e.subject.as_deref())
        .collect();
    subjects.sort_unstable();
    assert_eq!(
        subjects,
        ["One", "Standup", "Standup", "Standup", "Two"],
        "every occurrence read in full, nothing outside the window"
    );
    assert!(round.changed.iter().all(|e| !e.is_sparse()));
    let occurrence = round
        .changed
        .iter()
        .find(|e| e.event_type == Some(halosync::graph::model::EventType::Occurrence))
        .expect("an occurrence");
    assert_eq!(
        occurrence.body.as_ref().map(|b| b.content.as_str()),
        Some("daily")
    );
    assert!(h.route_count("POST /v1.0/$batch").await >= 1);

    let one = seeded["graph"]["events"][OK][0]["immutable_id"]
        .as_str()
        .expect("id")
        .to_string();
    h.control(
        "act",
        json!({"op": "delete_event", "mailbox": OK, "id": one}),
    )
    .await;
    let next = client
        .calendar_view_delta(OK, window, Some(&round.delta_link), Some(2))
        .expect("from link")
        .collect()
        .await
        .expect("second round");
    assert_eq!(next.removed, [one]);
    assert!(next.changed.is_empty(), "{:?}", next.changed);

    h.control("faults", json!({"graph": {"evict_delta_tokens": OK}}))
        .await;
    let error = client
        .calendar_view_delta(OK, window, Some(&next.delta_link), None)
        .expect("from link")
        .collect()
        .await
        .expect_err("evicted");
    assert!(
        matches!(error, GraphError::ResyncRequired { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn each_mailbox_problem_arrives_as_its_typed_error_with_a_diagnosis() {
    let h = Harness::start().await;
    let app = h.app_client();
    let window = window(&h);

    let error = app
        .calendar_view("ghost@contoso.com", window)
        .await
        .unwrap_err();
    assert!(
        matches!(error, GraphError::MailboxNotEnabled { .. }),
        "{error}"
    );
    assert!(error.diagnosis(app.access()).unwrap().contains("licence"));

    let error = app
        .calendar_view("locked@contoso.com", window)
        .await
        .unwrap_err();
    assert!(matches!(error, GraphError::AccessDenied { .. }), "{error}");

    let error = app.user("nobody@contoso.com").await.unwrap_err();
    assert!(matches!(error, GraphError::UnknownUser { .. }), "{error}");
    assert!(error.to_string().contains("[request-id "), "{error}");

    let gone = app
        .create_event(OK, &new_event("Gone", h.now()), "t-gone")
        .await
        .unwrap()
        .id
        .unwrap();
    app.delete_event(OK, &gone, None).await.unwrap();
    let error = app.event(OK, &gone).await.unwrap_err();
    assert!(matches!(error, GraphError::ItemNotFound { .. }), "{error}");
    assert_eq!(
        error.diagnosis(app.access()),
        None,
        "for the app it just means gone"
    );

    let delegated = h.delegated_client().await;
    assert_eq!(delegated.access(), Access::Delegate);
    delegated
        .calendar_view(OK, window)
        .await
        .expect("a delegate of leah");
    let error = delegated
        .calendar_view("private@contoso.com", window)
        .await
        .unwrap_err();
    assert!(matches!(error, GraphError::ItemNotFound { .. }), "{error}");
    let diagnosis = error.diagnosis(delegated.access()).unwrap();
    assert!(
        diagnosis.contains("private@contoso.com")
            && diagnosis.contains("Full Access")
            && diagnosis.contains("up to an hour"),
        "{diagnosis}"
    );

    // Moving an occurrence onto the next one (a whole-hour series start).
    let soon = (h.now() + chrono::Duration::days(2)).timestamp();
    let start = DateTime::from_timestamp(soon - soon % 3600, 0).unwrap();
    let mut series = new_event("Series", start);
    series.recurrence = serde_json::from_value(json!({
        "pattern": {"type": "daily", "interval": 1},
        "range": {"type": "numbered", "startDate": start.format("%Y-%m-%d").to_string(), "numberOfOccurrences": 3}
    }))
    .unwrap();
    app.create_event(OK, &series, "t-series").await.unwrap();
    let mut occurrences: Vec<Event> = app
        .calendar_view(OK, window)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.subject.as_deref() == Some("Series"))
        .collect();
    occurrences.sort_by_key(|e| e.start_utc().unwrap());
    let moved = Event {
        start: Some(DateTimeTimeZone::utc(
            start + chrono::Duration::days(1) + chrono::Duration::hours(2),
        )),
        end: Some(DateTimeTimeZone::utc(
            start + chrono::Duration::days(1) + chrono::Duration::hours(3),
        )),
        ..Event::default()
    };
    let error = app
        .update_event(OK, occurrences[0].id.as_deref().unwrap(), &moved, None)
        .await
        .unwrap_err();
    assert!(
        matches!(error, GraphError::OccurrenceCrossingBoundary { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn batch_items_throttled_by_graph_are_retried_after_their_retry_after() {
    let h = Harness::start().await;
    let client = h.app_client();
    let created = client
        .create_event(
            OK,
            &new_event("Batched", h.now() + chrono::Duration::days(1)),
            "t-b",
        )
        .await
        .unwrap();
    let id = created.id.unwrap();
    // One request at a time per mailbox, held for 300 ms: the batch's items
    // arrive while another request holds the slot, and are refused with 429.
    h.control(
        "faults",
        json!({"graph": {"concurrency_limit": 1, "mailbox_hold_ms": 300}}),
    )
    .await;
    let holder = {
        let client = client.clone();
        let window = window(&h);
        tokio::spawn(async move { client.calendar_view(OK, window).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let path = format!("/users/{OK}/events/{id}");
    let requests: Vec<BatchRequest> = (0..3)
        .map(|n| BatchRequest::get(format!("r{n}"), path.clone()))
        .collect();
    let responses = client.batch(Some(OK), &requests).await.expect("batch");
    holder.await.unwrap().expect("the holder succeeded");
    assert_eq!(
        responses.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["r0", "r1", "r2"]
    );
    for response in responses {
        assert_eq!(response.status, 200, "{response:?}");
        let event: Event = response.into_result(OK).unwrap();
        assert_eq!(event.subject.as_deref(), Some("Batched"));
    }
    assert!(
        h.route_count("POST /v1.0/$batch").await >= 2,
        "the throttled items went in a second batch"
    );
}

async fn validation_echo(Query(query): Query<HashMap<String, String>>) -> Response {
    match query.get("validationToken") {
        Some(token) => (
            StatusCode::OK,
            [("content-type", "text/plain")],
            token.clone(),
        )
            .into_response(),
        None => StatusCode::ACCEPTED.into_response(),
    }
}

#[tokio::test]
async fn a_subscription_over_graphs_lifetime_falls_back_to_the_named_limit() {
    let h = Harness::start().await;
    h.control(
        "faults",
        json!({"graph": {"max_subscription_minutes": 4230}}),
    )
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let notify = format!("http://{}/notify", listener.local_addr().unwrap());
    let app = Router::new().fallback(validation_echo);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let client = h.app_client();
    let now = h.now();
    let subscription = client
        .create_subscription(&NewSubscription {
            resource: format!("/users/{OK}/events"),
            change_type: "created,updated,deleted".into(),
            notification_url: notify.clone(),
            lifecycle_notification_url: Some(notify),
            expiration: now + chrono::Duration::minutes(10_080),
            client_state: SecretString::from("state-9a1f"),
        })
        .await
        .expect("created with the named limit");
    let lifetime = subscription.expiration_date_time - now;
    assert!(
        lifetime <= chrono::Duration::minutes(4230) && lifetime > chrono::Duration::minutes(4200),
        "{lifetime}"
    );
    let renewed = client
        .renew_subscription(&subscription.id, h.now() + chrono::Duration::minutes(9000))
        .await
        .expect("renewed with the named limit");
    assert!(renewed.expiration_date_time - h.now() <= chrono::Duration::minutes(4230));
    client
        .reauthorize_subscription(&subscription.id)
        .await
        .expect("reauthorize");
    let listed = client.subscriptions().await.expect("list");
    assert_eq!(
        listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        [subscription.id.as_str()]
    );
    client
        .delete_subscription(&subscription.id)
        .await
        .expect("delete");
    assert!(client.subscriptions().await.expect("list").is_empty());
}

#[tokio::test]
async fn the_halo_id_property_is_written_and_found_again_and_ids_translate() {
    let h = Harness::start().await;
    let client = h.app_client();
    let mut event = new_event("Tagged", h.now() + chrono::Duration::days(4));
    event.set_halo_id(4242);
    let created = client.create_event(OK, &event, "t-4242").await.unwrap();
    let id = created.id.unwrap();
    assert_eq!(client.event(OK, &id).await.unwrap().halo_id(), Some(4242));
    let found = client.events_with_halo_id(OK, 4242).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id.as_deref(), Some(id.as_str()));
    assert!(
        client
            .events_with_halo_id(OK, 4243)
            .await
            .unwrap()
            .is_empty()
    );

    let seeded = h
        .control(
            "seed",
            json!({"events": {OK: [{"subject": "Old", "start": at(h.now()), "end": at(h.now())}]}}),
        )
        .await;
    let ids = &seeded["graph"]["events"][OK][0];
    let translated = client
        .translate_exchange_ids(OK, &[ids["id"].as_str().unwrap().to_string()])
        .await
        .unwrap();
    assert_eq!(translated.len(), 1);
    assert_eq!(
        translated[0].target_id.as_deref(),
        ids["immutable_id"].as_str()
    );
}

/// Collects everything `tracing` writes while a test runs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

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
