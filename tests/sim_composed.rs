//! The composed simulator on one port: every upstream reachable at its mount,
//! and the control API (`/_sim/*`) that other tests and the demo rely on.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

use std::time::Duration;

use halosync::sim::server::RunningSimulator;
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Sim {
    running: RunningSimulator,
    http: reqwest::Client,
}

impl Sim {
    async fn start() -> Self {
        let running = RunningSimulator::start_local().await.expect("start");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        Self { running, http }
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}{}",
            self.running.simulator.base_url(),
            path.trim_start_matches('/')
        )
    }

    async fn control(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url(&format!("_sim/{path}")))
            .json(&body)
            .send()
            .await
            .expect("control call");
        let status = response.status();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn state(&self) -> Value {
        self.http
            .get(self.url("_sim/state"))
            .send()
            .await
            .expect("state")
            .json()
            .await
            .expect("json")
    }

    async fn graph_token(&self) -> String {
        let body: Value = self
            .http
            .post(self.url("login/contoso/oauth2/v2.0/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "app"),
                ("client_secret", "app-secret"),
                ("scope", "https://graph.microsoft.com/.default"),
            ])
            .send()
            .await
            .expect("token")
            .json()
            .await
            .expect("json");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("get");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

fn seed() -> Value {
    json!({
        "apps": [{"tenant": "contoso", "client_id": "app", "client_secret": "app-secret"}],
        "halo_clients": [{"client_id": "halo", "client_secret": "halo-secret"}],
        "agents": [{"id": 2, "name": "Leah", "email": "leah@contoso.com"}],
        "mailboxes": [{"upn": "leah@contoso.com"}],
        "events": {"leah@contoso.com": [{
            "subject": "Server room audit",
            "start": {"dateTime": "2026-12-01T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-12-01T10:00:00", "timeZone": "UTC"}
        }]},
        "appointments": [{
            "subject": "Printer repair", "agent_id": 2,
            "start_date": "2026-12-02T13:00:00", "end_date": "2026-12-02T14:00:00"
        }]
    })
}

#[tokio::test]
async fn every_upstream_is_served_at_its_mount_with_one_seed() {
    let sim = Sim::start().await;
    let (status, ids) = sim.control("seed", seed()).await;
    assert_eq!(status, StatusCode::OK, "{ids}");
    assert!(
        ids.get("graph").is_some() && ids.get("halo").is_some(),
        "{ids}"
    );

    let token = sim.graph_token().await;
    let (status, events) = sim
        .get("graph/v1.0/users/leah@contoso.com/events", &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{events}");
    assert_eq!(events["value"][0]["subject"], "Server room audit");

    let authinfo: Value = sim
        .http
        .get(sim.url("halo/api/authinfo"))
        .send()
        .await
        .expect("authinfo")
        .json()
        .await
        .expect("json");
    let auth_url = authinfo["auth_url"].as_str().expect("auth_url");
    assert_eq!(auth_url, sim.url("halo/auth"));
    let halo: Value = sim
        .http
        .post(format!("{auth_url}/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "halo"),
            ("client_secret", "halo-secret"),
            ("scope", "all"),
        ])
        .send()
        .await
        .expect("halo token")
        .json()
        .await
        .expect("json");
    let halo_token = halo["access_token"].as_str().expect("token");
    let (status, appointments) = sim.get("halo/api/Appointment", halo_token).await;
    assert_eq!(status, StatusCode::OK, "{appointments}");
    assert_eq!(appointments[0]["subject"], "Printer repair");

    let state = sim.state().await;
    let requests = &state["requests"];
    assert!(requests["identity"].as_u64() >= Some(1), "{requests}");
    assert!(requests["graph"].as_u64() >= Some(1), "{requests}");
    assert!(requests["halo"].as_u64() >= Some(3), "{requests}");
    sim.running.stop().await.expect("stop");
}

#[tokio::test]
async fn act_changes_either_side_and_state_shows_it() {
    let sim = Sim::start().await;
    sim.control("seed", seed()).await;
    let (status, body) = sim
        .control(
            "act",
            json!({"op": "create_event", "mailbox": "leah@contoso.com", "event": {
                "subject": "Made in Outlook",
                "start": {"dateTime": "2026-12-03T08:00:00", "timeZone": "UTC"},
                "end": {"dateTime": "2026-12-03T08:30:00", "timeZone": "UTC"}
            }}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = sim
        .control(
            "act",
            json!({"op": "create_appointment", "appointment": {
                "subject": "Made in Halo", "agent_id": 2,
                "start_date": "2026-12-04T08:00:00", "end_date": "2026-12-04T09:00:00"
            }}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let state = sim.state().await;
    let subjects: Vec<&str> = state["events"]["leah@contoso.com"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["subject"].as_str())
        .collect();
    assert!(subjects.contains(&"Made in Outlook"), "{subjects:?}");
    let halo_subjects: Vec<&str> = state["appointments"]
        .as_array()
        .expect("appointments")
        .iter()
        .filter_map(|a| a["subject"].as_str())
        .collect();
    assert!(halo_subjects.contains(&"Made in Halo"), "{halo_subjects:?}");
}

#[tokio::test]
async fn the_clock_jump_expires_tokens_and_reset_empties_everything() {
    let sim = Sim::start().await;
    sim.control("seed", seed()).await;
    let token = sim.graph_token().await;
    let path = "graph/v1.0/users/leah@contoso.com/events";
    assert_eq!(sim.get(path, &token).await.0, StatusCode::OK);

    let (status, _) = sim
        .control("faults", json!({"advance_clock_seconds": 7200}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = sim.get(path, &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");

    let fresh = sim.graph_token().await;
    assert_eq!(sim.get(path, &fresh).await.0, StatusCode::OK);
    let (status, _) = sim.control("reset", json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        sim.get(path, &fresh).await.0,
        StatusCode::UNAUTHORIZED,
        "reset revokes tokens"
    );
    let state = sim.state().await;
    assert_eq!(state["appointments"], json!([]));
    assert!(
        state["events"].as_object().is_none_or(|m| m.is_empty()),
        "{}",
        state["events"]
    );
}

#[tokio::test]
async fn bad_control_requests_get_a_clear_400_and_change_nothing() {
    let sim = Sim::start().await;
    for (path, body, expected) in [
        ("seed", json!({"mailbox": []}), "unknown field `mailbox`"),
        ("act", json!({"op": "explode"}), "unknown op `explode`"),
        (
            "act",
            json!({"op": "create_event", "mailbox": 5}),
            "invalid Exchange action",
        ),
        (
            "faults",
            json!({"graph": {"concurrency": 2}}),
            "unknown field `concurrency`",
        ),
    ] {
        let (status, response) = sim.control(path, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {response}");
        let message = response["error"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{path}: {message}");
    }
    let broken = sim
        .http
        .post(sim.url("_sim/seed"))
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(broken.status(), StatusCode::BAD_REQUEST);
    let state = sim.state().await;
    assert_eq!(state["appointments"], json!([]));
}
