//! The simulator, a config pointing at it and Graph clients built from it,
//! for the `graph_client_*` tests; plus a gateway that loses an answer.
#![allow(dead_code)] // each test file uses a different part of the harness
#![allow(clippy::expect_used, clippy::unwrap_used)] // test support: fail loudly

#[path = "../common/sign_in.rs"]
mod sign_in;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use halosync::clock::SharedClock;
use halosync::config::{self, ConnectionConfig, Environment};
use halosync::graph::auth::{Flow, MemoryRefreshTokens};
use halosync::graph::model::{DateTimeTimeZone, Event};
use halosync::graph::{GraphClient, GraphClientOptions, GraphUpstreams, Window};
use halosync::http::{MemoryRequestLog, Upstream};
use halosync::sim::server::RunningSimulator;
use secrecy::SecretString;
use serde_json::{Value, json};

pub const SECRET: &str = "graph-app-secret-7c21";
pub const OK: &str = "leah@contoso.com";
pub const ADMIN: &str = "admin@contoso.com";

pub struct Harness {
    pub sim: RunningSimulator,
    pub http: reqwest::Client,
    pub log: Arc<MemoryRequestLog>,
}

impl Harness {
    pub async fn start() -> Self {
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

    pub fn base(&self) -> String {
        self.sim.simulator.base_url().to_string()
    }

    pub fn clock(&self) -> SharedClock {
        self.sim.simulator.clock()
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock().now()
    }

    pub async fn control(&self, path: &str, body: Value) -> Value {
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

    pub async fn state(&self) -> Value {
        self.http
            .get(format!("{}_sim/state", self.base()))
            .send()
            .await
            .expect("state")
            .json()
            .await
            .expect("json")
    }

    pub async fn route_count(&self, route: &str) -> u64 {
        self.state().await["requests"]["by_route"][route]
            .as_u64()
            .unwrap_or(0)
    }

    pub fn connection(&self, kind: &str, graph_url: &str) -> ConnectionConfig {
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

    pub fn upstreams(&self, clock: SharedClock) -> GraphUpstreams {
        GraphUpstreams::new(self.log.clone(), clock, &GraphClientOptions::default())
            .expect("upstreams")
    }

    /// An application-permission client on the simulator's Graph.
    pub fn app_client(&self) -> GraphClient {
        self.app_client_at(self.sim.simulator.graph_url().as_str(), self.clock())
    }

    pub fn app_client_at(&self, graph_url: &str, clock: SharedClock) -> GraphClient {
        GraphClient::new(
            &self.connection("application", graph_url),
            Flow::Application,
            &self.upstreams(clock),
        )
        .expect("client")
    }

    /// A delegated client signed in as the admin account.
    pub async fn delegated_client(&self) -> GraphClient {
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
    pub async fn sign_in(&self, upn: &str, scope: &str) -> SecretString {
        let login = self.sim.simulator.login_url();
        let app = sign_in::App {
            login: &login,
            tenant: "contoso",
            client_id: "app",
            client_secret: SECRET,
        };
        sign_in::sign_in(&app, upn, scope).await
    }

    pub fn graph_statuses(&self) -> Vec<Option<u16>> {
        self.log
            .records()
            .iter()
            .filter(|r| r.upstream == Upstream::Graph)
            .map(|r| r.status)
            .collect()
    }
}

pub fn at(instant: DateTime<Utc>) -> Value {
    json!({"dateTime": instant.format("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": "UTC"})
}

pub fn new_event(subject: &str, start: DateTime<Utc>) -> Event {
    Event {
        subject: Some(subject.into()),
        start: Some(DateTimeTimeZone::utc(start)),
        end: Some(DateTimeTimeZone::utc(start + chrono::Duration::hours(1))),
        ..Event::default()
    }
}

pub fn rule(method: &str, path: &str, action: Value) -> Value {
    json!({"graph": {"faults": {"rules": [
        {"method": method, "path_contains": path, "count": 1, "action": action}
    ]}}})
}

pub fn window(h: &Harness) -> Window {
    let now = h.now();
    Window::new(
        now - chrono::Duration::days(1),
        now + chrono::Duration::days(14),
    )
}

pub async fn events_with_subject(h: &Harness, mailbox: &str, subject: &str) -> usize {
    h.state().await["events"][mailbox]
        .as_array()
        .map_or(0, |events| {
            events.iter().filter(|e| e["subject"] == subject).count()
        })
}

/// Forwards everything to the simulator, except that the first create
/// (`POST …/events`) is answered `503` *after* the simulator processed it,
/// as a gateway that lost the answer would; it also records every
/// `Authorization` header it forwards.
#[derive(Clone)]
pub struct LossyGateway {
    target: String,
    http: reqwest::Client,
    pub posts: Arc<Mutex<u32>>,
    pub authorizations: Arc<Mutex<Vec<String>>>,
    /// `(method path, Prefer, client-request-id)` of every request.
    pub requests: Arc<Mutex<Vec<(String, String, String)>>>,
}

pub async fn gateway(State(gw): State<LossyGateway>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let path = parts.uri.path_and_query().map_or("", |p| p.as_str());
    let url = format!("{}{}", gw.target, path.trim_start_matches('/'));
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    gw.requests.lock().unwrap().push((
        format!("{} {}", parts.method, parts.uri.path()),
        header("prefer"),
        header("client-request-id"),
    ));
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

pub async fn start_gateway(h: &Harness) -> (String, LossyGateway) {
    let gw = LossyGateway {
        target: h.sim.simulator.base_url().to_string(),
        http: h.http.clone(),
        posts: Arc::default(),
        authorizations: Arc::default(),
        requests: Arc::default(),
    };
    let app = Router::new().fallback(gateway).with_state(gw.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/graph/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, gw)
}
