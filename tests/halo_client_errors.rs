//! The Halo client against a scripted mock server, for the protocol edge
//! cases the simulator does not produce: every error-body shape, token
//! endpoint failures, response envelopes and repeated pages.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use chrono::{TimeZone, Utc};
use halosync::clock::SystemClock;
use halosync::config::HaloConfig;
use halosync::halo::{Appointment, AppointmentQuery, HaloClient, HaloClientOptions, HaloError};
use halosync::http::{MemoryRequestLog, RetryPolicy};
use secrecy::SecretString;
use serde_json::{Value, json};
use url::Url;

/// One scripted answer.
#[derive(Clone)]
struct Canned {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

fn canned(status: u16, body: &str) -> Canned {
    Canned {
        status,
        headers: Vec::new(),
        body: body.to_owned(),
    }
}

fn json_reply(status: u16, body: Value) -> Canned {
    Canned {
        status,
        headers: vec![("content-type", "application/json".into())],
        body: body.to_string(),
    }
}

#[derive(Default)]
struct Script {
    token: Mutex<VecDeque<Canned>>,
    api: Mutex<VecDeque<Canned>>,
    token_hits: Mutex<u32>,
    api_hits: Mutex<Vec<String>>,
}

impl Canned {
    fn into_response(self) -> Response {
        let mut response = (StatusCode::from_u16(self.status).unwrap(), self.body).into_response();
        for (name, value) in self.headers {
            response
                .headers_mut()
                .insert(HeaderName::from_static(name), value.parse().unwrap());
        }
        response
    }
}

async fn token(State(script): State<Arc<Script>>) -> Response {
    let hits = {
        let mut hits = script.token_hits.lock().unwrap();
        *hits += 1;
        *hits
    };
    let next = script.token.lock().unwrap().pop_front();
    next.unwrap_or_else(|| {
        json_reply(
            200,
            json!({"access_token": format!("token-{hits}"), "token_type": "Bearer", "expires_in": 3600}),
        )
    })
    .into_response()
}

async fn api(State(script): State<Arc<Script>>, request: axum::extract::Request) -> Response {
    script
        .api_hits
        .lock()
        .unwrap()
        .push(format!("{} {}", request.method(), request.uri()));
    let next = script.api.lock().unwrap().pop_front();
    next.unwrap_or_else(|| json_reply(200, json!({"id": 2, "name": "Ada"})))
        .into_response()
}

struct Mock {
    script: Arc<Script>,
    client: HaloClient,
    log: Arc<MemoryRequestLog>,
}

async fn mock() -> Mock {
    let script = Arc::new(Script::default());
    let app = Router::new()
        .route("/auth/token", post(token))
        .route("/api/{*rest}", any(api))
        .with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = HaloConfig {
        base_url: base.clone(),
        auth_url: Some(base.join("auth").unwrap()),
        tenant: None,
        client_id: "halosync".into(),
        client_secret: SecretString::from("mock-secret"),
        scope: "all".into(),
        requests_per_5_minutes: 250,
    };
    let log = Arc::new(MemoryRequestLog::new());
    let client = HaloClient::with_options(
        &config,
        log.clone(),
        Arc::new(SystemClock),
        HaloClientOptions {
            retry: RetryPolicy {
                max_attempts: 3,
                base_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(50),
                max_retry_after: Duration::from_secs(1),
            },
            ..HaloClientOptions::default()
        },
    )
    .unwrap();
    Mock {
        script,
        client,
        log,
    }
}

impl Mock {
    fn answer_api(&self, replies: impl IntoIterator<Item = Canned>) {
        self.script.api.lock().unwrap().extend(replies);
    }

    fn answer_token(&self, replies: impl IntoIterator<Item = Canned>) {
        self.script.token.lock().unwrap().extend(replies);
    }

    fn api_hits(&self) -> Vec<String> {
        self.script.api_hits.lock().unwrap().clone()
    }

    fn token_hits(&self) -> u32 {
        *self.script.token_hits.lock().unwrap()
    }
}

#[tokio::test]
async fn every_error_body_shape_becomes_a_typed_error_with_its_message() {
    let cases: Vec<(Canned, u16, &str)> = vec![
        (
            json_reply(
                400,
                json!({"ClassName": "Newtonsoft.Json.JsonSerializationException", "Message": "Error converting value"}),
            ),
            400,
            "Error converting value (Newtonsoft.Json.JsonSerializationException)",
        ),
        (
            json_reply(
                400,
                json!({"resultCode": 2, "errorMessage": "Ticket is closed"}),
            ),
            400,
            "Ticket is closed (result code 2)",
        ),
        (
            json_reply(400, json!({"error": "invalid_request"})),
            400,
            "invalid_request",
        ),
        (
            json_reply(
                403,
                json!({"error": {"error_description": "Agent lacks access"}}),
            ),
            403,
            "Agent lacks access",
        ),
        (
            json_reply(500, json!("An error has occurred.")),
            500,
            "An error has occurred.",
        ),
        (
            canned(400, "The value 'x' is not valid for agents."),
            400,
            "The value 'x' is not valid for agents.",
        ),
        (canned(404, "Agent 9 not found."), 404, "Agent 9 not found."),
        (json_reply(409, json!({"detail": "Clash"})), 409, "Clash"),
        (canned(502, ""), 502, "Bad Gateway"),
    ];
    for (reply, status, message) in cases {
        let mock = mock().await;
        mock.answer_api([reply]);
        let error = mock.client.me().await.unwrap_err();
        assert_eq!(error.status(), Some(status), "{error:?}");
        let text = error.to_string();
        assert!(text.contains(message), "{text}");
        assert!(text.contains("GET /api/Agent/me"), "{text}");
        match status {
            403 => assert!(matches!(error, HaloError::Forbidden { .. }), "{error:?}"),
            404 => assert!(matches!(error, HaloError::NotFound { .. }), "{error:?}"),
            _ => assert!(matches!(error, HaloError::Api { .. }), "{error:?}"),
        }
        let logged = mock.log.records();
        let last = logged.last().unwrap();
        assert_eq!(last.status, Some(status));
        assert!(
            last.error.as_deref().unwrap_or_default().contains(message),
            "the request log keeps the message: {last:?}"
        );
    }
}

#[tokio::test]
async fn a_401_gets_one_refresh_and_then_a_typed_error_with_the_challenge() {
    let mock = mock().await;
    let challenge = Canned {
        status: 401,
        headers: vec![(
            "www-authenticate",
            "Bearer error=\"invalid_token\", error_description=\"The token is invalid\"".into(),
        )],
        body: String::new(),
    };
    mock.answer_api([challenge.clone(), challenge]);
    let error = mock.client.me().await.unwrap_err();
    assert!(matches!(error, HaloError::Unauthorized { .. }), "{error:?}");
    assert!(
        error.to_string().contains("The token is invalid"),
        "{error}"
    );
    assert_eq!(mock.token_hits(), 2, "one refresh");
    assert_eq!(mock.api_hits().len(), 2, "one retry");
}

#[tokio::test]
async fn token_endpoint_failures_say_what_to_fix() {
    let mock = mock().await;
    mock.answer_token([json_reply(
        400,
        json!({"error": "invalid_scope", "error_description": "The scope 'everything' is not valid"}),
    )]);
    let error = mock.client.me().await.unwrap_err();
    assert!(
        matches!(error, HaloError::TokenRefused { status: 400, .. }),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(
        text.contains("The scope 'everything' is not valid"),
        "{text}"
    );
    assert!(text.contains("halo.scope"), "{text}");

    mock.answer_token([json_reply(401, json!({"error": "unauthorized_client"}))]);
    let error = mock.client.me().await.unwrap_err();
    assert!(matches!(error, HaloError::InvalidClient), "{error:?}");

    mock.answer_token([json_reply(200, json!({"token_type": "Bearer"}))]);
    let error = mock.client.me().await.unwrap_err();
    assert!(
        matches!(error, HaloError::BadTokenResponse { .. }),
        "{error:?}"
    );
    assert!(mock.api_hits().is_empty(), "no API call without a token");

    // `expires_in` as a string is accepted.
    mock.answer_token([json_reply(
        200,
        json!({"access_token": "abc", "expires_in": "3600"}),
    )]);
    assert_eq!(mock.client.me().await.unwrap().id, 2);
    mock.client.me().await.unwrap();
    assert_eq!(
        mock.token_hits(),
        4,
        "the string lifetime was understood and the token reused"
    );
}

#[tokio::test]
async fn unreadable_success_bodies_are_decode_errors() {
    let mock = mock().await;
    mock.answer_api([canned(200, "<html>maintenance</html>")]);
    let error = mock.client.me().await.unwrap_err();
    assert!(matches!(error, HaloError::Decode { .. }), "{error:?}");
    assert!(error.to_string().contains("GET /api/Agent/me"), "{error}");
}

#[tokio::test]
async fn agent_lists_come_bare_or_in_an_agents_or_results_envelope() {
    let agents = json!([
        {"id": 1, "name": "Unassigned", "email": ""},
        {"id": 2, "name": "Ada", "email": "ADA@contoso.com"},
        {"id": 3, "name": "Off", "email": "off@contoso.com", "isdisabled": true},
        {"id": 4, "name": "Null mail", "email": null}
    ]);
    for body in [
        agents.clone(),
        json!({"agents": agents.clone()}),
        json!({"page_no": 1, "results": agents.clone()}),
    ] {
        let mock = mock().await;
        mock.answer_api([json_reply(200, body)]);
        let listed = mock.client.agents().await.unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0].email.as_deref(), Some("ada@contoso.com"));
    }
    let mock = mock().await;
    mock.answer_api([json_reply(200, json!({"unexpected": []}))]);
    let error = mock.client.agents().await.unwrap_err();
    assert!(matches!(error, HaloError::Decode { .. }), "{error:?}");
}

fn rows(ids: std::ops::Range<i64>) -> Value {
    Value::Array(
        ids.map(|id| json!({"id": id, "subject": format!("a{id}"), "last_modified": "2026-02-01T00:00:00"}))
            .collect(),
    )
}

fn query() -> AppointmentQuery {
    AppointmentQuery {
        start: Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).single().unwrap(),
        end: Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).single().unwrap(),
        agents: vec![2, 4],
        include_deleted: false,
        modified_since: None,
    }
}

#[tokio::test]
async fn a_page_sent_again_stops_the_listing_with_an_error() {
    let mock = mock().await;
    mock.answer_api([
        json_reply(200, json!({"appointments": rows(0..100)})),
        json_reply(200, json!({"appointments": rows(100..200)})),
        json_reply(200, json!({"appointments": rows(100..200)})),
    ]);
    let error = mock.client.appointments(&query()).await.unwrap_err();
    match &error {
        HaloError::RepeatedPage {
            page,
            previous,
            first_id,
            ..
        } => assert_eq!((*page, *previous, *first_id), (3, 2, 100)),
        other => panic!("{other:?}"),
    }
    assert!(error.to_string().contains("same page again"), "{error}");
    let hits = mock.api_hits();
    assert_eq!(hits.len(), 3);
    assert!(hits[0].contains("agents=2%2C4"), "{hits:?}");
    assert!(
        hits[0].contains("order=last_modified&orderdesc=true"),
        "{hits:?}"
    );
    assert!(
        hits[0].contains("start_date=2026-02-01T00%3A00%3A00"),
        "{hits:?}"
    );
}

#[tokio::test]
async fn a_bare_array_page_and_a_smaller_page_size_than_asked_are_followed() {
    let mock = mock().await;
    // Halo caps the page at 50 and says so in the envelope: 50 is a full page.
    mock.answer_api([
        json_reply(200, json!({"page_size": 50, "appointments": rows(0..50)})),
        json_reply(200, json!({"page_size": 50, "appointments": rows(50..80)})),
    ]);
    let listing = mock.client.appointments(&query()).await.unwrap();
    assert_eq!(listing.appointments.len(), 80);
    assert_eq!(listing.pages, 2);

    let mock = self::mock().await;
    mock.answer_api([json_reply(200, rows(0..7))]);
    let listing = mock.client.appointments(&query()).await.unwrap();
    assert_eq!(listing.appointments.len(), 7);
    assert_eq!(listing.pages, 1, "a short page ends the listing");
}

#[tokio::test]
async fn save_accepts_an_object_an_array_or_an_appointments_envelope() {
    let item = || Appointment {
        id: Some(10),
        subject: Some("x".into()),
        ..Appointment::default()
    };
    for body in [
        json!({"id": 11, "subject": "x"}),
        json!([{"id": 11, "subject": "x"}]),
        json!({"appointments": [{"id": 11, "subject": "x"}]}),
    ] {
        let mock = mock().await;
        mock.answer_api([json_reply(200, body)]);
        let saved = mock.client.save_appointments(&[item()]).await.unwrap();
        assert_eq!(saved[0].rekeyed(), Some((10, 11)));
    }

    let mock = mock().await;
    mock.answer_api([json_reply(200, json!({"id": 11}))]);
    let failure = mock
        .client
        .save_appointments(&[item(), item()])
        .await
        .unwrap_err();
    assert!(
        matches!(
            failure.error,
            HaloError::SaveCountMismatch {
                sent: 2,
                returned: 1,
                ..
            }
        ),
        "{failure:?}"
    );
}

#[tokio::test]
async fn a_503_is_retried_for_reads_but_not_for_saves() {
    let mock = mock().await;
    let unavailable = || {
        json_reply(
            503,
            json!({"ClassName": "System.Exception", "Message": "Down"}),
        )
    };
    mock.answer_api([unavailable(), json_reply(200, json!({"id": 2}))]);
    assert_eq!(mock.client.me().await.unwrap().id, 2);
    assert_eq!(mock.api_hits().len(), 2, "the GET was retried");

    mock.answer_api([unavailable(), json_reply(200, json!([{"id": 5}]))]);
    let failure = mock
        .client
        .save_appointments(&[Appointment {
            subject: Some("new".into()),
            ..Appointment::default()
        }])
        .await
        .unwrap_err();
    assert_eq!(failure.error.status(), Some(503), "{failure:?}");
    assert!(failure.saved.is_empty());
    assert!(failure.to_string().contains("Down"), "{failure}");
    assert_eq!(mock.api_hits().len(), 3, "the POST was sent once");
}

#[tokio::test]
async fn a_429_on_a_save_is_retried_because_halo_did_not_process_it() {
    let mock = mock().await;
    mock.answer_api([
        canned(
            429,
            "Rate Limit Reached - 300 Requests per rolling 5 minute window",
        ),
        json_reply(200, json!([{"id": 5}])),
    ]);
    let saved = mock
        .client
        .save_appointments(&[Appointment {
            subject: Some("new".into()),
            ..Appointment::default()
        }])
        .await
        .unwrap();
    assert_eq!(saved[0].appointment.id, Some(5));
    assert_eq!(mock.api_hits().len(), 2);

    // Still throttled after every attempt: a typed error with Halo's text.
    let mock = self::mock().await;
    let limit = || {
        canned(
            429,
            "Rate Limit Reached - 300 Requests per rolling 5 minute window",
        )
    };
    mock.answer_api([limit(), limit(), limit()]);
    let error = mock.client.me().await.unwrap_err();
    assert!(matches!(error, HaloError::RateLimited { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("300 Requests per rolling 5 minute"),
        "{error}"
    );
    assert!(
        error.to_string().contains("halo.requests_per_5_minutes"),
        "{error}"
    );
    assert_eq!(mock.api_hits().len(), 3, "bounded attempts");
}
