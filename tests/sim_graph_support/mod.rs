//! Starts a Graph simulator on 127.0.0.1:0 and talks to it like a client.
#![allow(dead_code)] // each test file uses a different part of the harness
#![allow(clippy::unwrap_used)] // test support: a failure here should fail the test loudly

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use halosync::clock::{Clock, ShiftedClock};
use halosync::sim::graph::{GraphSeed, GraphSim, GraphSimConfig};
use halosync::sim::token::{Claims, TokenAuthority};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub struct Harness {
    pub sim: GraphSim,
    pub base: String,
    pub client: reqwest::Client,
    pub tokens: Arc<TokenAuthority>,
    pub clock: Arc<ShiftedClock>,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Harness {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}/graph");
        let tokens = Arc::new(TokenAuthority::new());
        let clock = Arc::new(ShiftedClock::new());
        let sim = GraphSim::new(GraphSimConfig {
            public_base: base.clone(),
            clock: clock.clone(),
            tokens: tokens.clone(),
        });
        let app = Router::new().nest_service("/graph", sim.router());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Self {
            sim,
            base,
            client,
            tokens,
            clock,
        }
    }

    /// A harness with mailboxes already seeded (all `ok`).
    pub async fn with_mailboxes(upns: &[&str]) -> Self {
        let harness = Self::start().await;
        let mailboxes: Vec<Value> = upns.iter().map(|u| json!({"upn": u})).collect();
        let seed: GraphSeed = serde_json::from_value(json!({"mailboxes": mailboxes})).unwrap();
        harness.sim.seed(seed).unwrap();
        harness
    }

    fn claims(&self, upn: Option<&str>, roles: &[&str]) -> Claims {
        let now = self.clock.now().timestamp();
        Claims {
            aud: "https://graph.microsoft.com".into(),
            tid: "8f0c1e6a-5a53-4c59-9b0a-2f0a4c4b1f11".into(),
            appid: "halosync-app".into(),
            upn: upn.map(str::to_string),
            scp: upn.map(|_| "Calendars.ReadWrite".to_string()),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            iat: now,
            exp: now + 3600,
            epoch: 0,
        }
    }

    /// An app-only token with `Calendars.ReadWrite`.
    pub fn app_token(&self) -> String {
        self.tokens
            .mint(self.claims(None, &["Calendars.ReadWrite"]))
    }

    pub fn token_with(&self, mutate: impl FnOnce(&mut Claims)) -> String {
        let mut claims = self.claims(None, &["Calendars.ReadWrite"]);
        mutate(&mut claims);
        self.tokens.mint(claims)
    }

    pub fn user_token(&self, upn: &str) -> String {
        self.tokens.mint(self.claims(Some(upn), &[]))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/v1.0{path}", self.base)
    }

    pub async fn call(
        &self,
        method: Method,
        url: &str,
        token: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Reply {
        let url = if url.starts_with("http") {
            url.to_string()
        } else {
            self.url(url)
        };
        let mut request = self.client.request(method, url).bearer_auth(token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, url: &str) -> Reply {
        self.call(Method::GET, url, &self.app_token(), &[], None)
            .await
    }

    pub async fn get_with(&self, url: &str, headers: &[(&str, &str)]) -> Reply {
        self.call(Method::GET, url, &self.app_token(), headers, None)
            .await
    }

    pub async fn post(&self, url: &str, body: &Value) -> Reply {
        self.call(Method::POST, url, &self.app_token(), &[], Some(body))
            .await
    }

    pub async fn patch(&self, url: &str, body: &Value) -> Reply {
        self.call(Method::PATCH, url, &self.app_token(), &[], Some(body))
            .await
    }

    pub async fn delete(&self, url: &str) -> Reply {
        self.call(Method::DELETE, url, &self.app_token(), &[], None)
            .await
    }
}

/// A minimal event body.
pub fn event(subject: &str, start: &str, end: &str, zone: &str) -> Value {
    json!({
        "subject": subject,
        "start": {"dateTime": start, "timeZone": zone},
        "end": {"dateTime": end, "timeZone": zone},
    })
}
