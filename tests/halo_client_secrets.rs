//! No client secret or access token ends up in the request log (memory or
//! store), in tracing output, in errors or in Debug output.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "common/log_capture.rs"]
mod log_capture;
use log_capture::Captured;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::Response;
use chrono::{Duration, TimeZone, Utc};
use halosync::clock::ShiftedClock;
use halosync::config::HaloConfig;
use halosync::halo::{Appointment, AppointmentQuery, HaloClient};
use halosync::http::{MemoryRequestLog, spawn_store_writer};
use halosync::sim::halo::{HaloSeed, HaloSim, HaloSimConfig};
use halosync::sim::token::TokenAuthority;
use halosync::store::{Store, request_log};
use secrecy::SecretString;
use serde_json::json;
use url::Url;

const SECRET: &str = "s3cr3t-halo-9f2c41d7";

type Seen = Arc<Mutex<Vec<String>>>;

/// Remembers every bearer token the client sends.
async fn capture_tokens(State(seen): State<Seen>, request: Request, next: Next) -> Response {
    if let Some(token) = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        seen.lock().unwrap().push(token.to_owned());
    }
    next.run(request).await
}

#[tokio::test]
async fn neither_the_secret_nor_any_token_is_logged_stored_or_printed() {
    // Every level, every target, on this (the runtime's only) thread.
    let output = Captured::default();
    let writer = output.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let clock = Arc::new(ShiftedClock::new());
    let tokens = Arc::new(TokenAuthority::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/halo", listener.local_addr().unwrap());
    let sim = HaloSim::new(HaloSimConfig {
        public_base: Url::parse(&base).unwrap(),
        clock: clock.clone(),
        tokens: tokens.clone(),
        tenant_id: Some("acme".into()),
    });
    let seed: HaloSeed = serde_json::from_value(json!({
        "halo_clients": [{"client_id": "halosync", "client_secret": SECRET, "agent_id": 2}],
        "agents": [{"id": 2, "name": "Ada Lovelace", "email": "ada@contoso.com"}],
    }))
    .unwrap();
    sim.seed(seed).unwrap();
    let seen: Seen = Arc::default();
    let app = Router::new()
        .nest("/halo", sim.router())
        .layer(from_fn_with_state(seen.clone(), capture_tokens));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Mutex::new(
        Store::open(dir.path().join("halosync.db")).unwrap(),
    ));
    let (sink, writer) = spawn_store_writer(store.clone(), 1024);
    let config = HaloConfig {
        base_url: Url::parse(&format!("{base}/")).unwrap(),
        auth_url: None,
        tenant: None,
        client_id: "halosync".into(),
        client_secret: SecretString::from(SECRET),
        scope: "all".into(),
        requests_per_5_minutes: 250,
    };
    let client = HaloClient::new(&config, sink.clone(), clock.clone()).unwrap();

    // A working session: agents, a save, a listing, an expired token, a
    // revoked one (a 401 and a refresh), and a failing call.
    client.agents().await.unwrap();
    let saved = client
        .save_appointments(&[Appointment {
            subject: Some("visit".into()),
            start_date: Some(Utc.with_ymd_and_hms(2026, 2, 10, 9, 0, 0).unwrap()),
            end_date: Some(Utc.with_ymd_and_hms(2026, 2, 10, 10, 0, 0).unwrap()),
            agent_id: Some(2),
            ..Appointment::default()
        }])
        .await
        .unwrap();
    clock.advance(Duration::hours(2));
    client
        .appointments(&AppointmentQuery {
            start: Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap(),
            end: Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap(),
            agents: vec![2],
            include_deleted: false,
            modified_since: None,
        })
        .await
        .unwrap();
    tokens.revoke_all();
    let id = saved[0].appointment.id.unwrap();
    client.appointment(id).await.unwrap();
    let missing = client.appointment(id + 1000).await.unwrap_err();

    let mut wrong = config;
    wrong.client_secret = SecretString::from("wrong-secret-0b7e");
    let memory = Arc::new(MemoryRequestLog::new());
    let refused = HaloClient::new(&wrong, memory.clone(), clock.clone()).unwrap();
    let invalid = refused.me().await.unwrap_err();

    let access_tokens: Vec<String> = seen.lock().unwrap().clone();
    assert!(
        access_tokens.len() >= 3,
        "tokens were used: {}",
        access_tokens.len()
    );
    let distinct: std::collections::HashSet<&String> = access_tokens.iter().collect();
    assert!(
        distinct.len() >= 3,
        "initial, after expiry, after revocation"
    );

    let printed = format!(
        "{client:?}\n{refused:?}\n{missing}\n{missing:?}\n{invalid}\n{invalid:?}\n{:?}",
        memory.records()
    );
    drop(client);
    drop(sink);
    writer.await.unwrap();
    let rows = request_log::recent(store.lock().unwrap().connection(), 1000).unwrap();
    assert!(rows.len() >= 10, "every call was stored: {}", rows.len());
    assert!(rows.iter().any(|r| r.status == Some(401)));
    assert!(
        rows.iter()
            .any(|r| r.path == "/halo/auth/token?tenant=acme")
    );
    let stored = format!("{rows:?}");
    let traced = String::from_utf8(output.0.lock().unwrap().clone()).unwrap();
    assert!(
        traced.contains("got a Halo access token") && traced.contains("getting a new one"),
        "the capture saw the client's events: {traced}"
    );

    for (place, text) in [("store", &stored), ("logs", &traced), ("printed", &printed)] {
        for secret in [SECRET, "wrong-secret-0b7e"] {
            assert!(
                !text.contains(secret),
                "the client secret is in the {place}"
            );
        }
        for token in &distinct {
            assert!(
                !text.contains(token.as_str()),
                "an access token is in the {place}"
            );
            // Not even its signature part.
            let signature = token.rsplit('.').next().unwrap();
            assert!(
                !text.contains(signature),
                "a token signature is in the {place}"
            );
        }
    }
}
