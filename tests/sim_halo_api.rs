//! The simulated HaloITSM API, driven over HTTP as halosync drives the real
//! one.

// Integration tests: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;

use axum::Router;
use chrono::Duration;
use halosync::clock::{Clock, ShiftedClock};
use halosync::sim::halo::{HaloAction, HaloFaults, HaloSeed, HaloSim, HaloSimConfig, RateLimit};
use halosync::sim::token::{Claims, TokenAuthority};
use serde_json::{Value, json};

struct Harness {
    /// `http://127.0.0.1:port/halo`
    base: String,
    clock: Arc<ShiftedClock>,
    tokens: Arc<TokenAuthority>,
    sim: HaloSim,
    http: reqwest::Client,
    token: String,
}

async fn start() -> Harness {
    let clock = Arc::new(ShiftedClock::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/halo", listener.local_addr().unwrap());
    let tokens = Arc::new(TokenAuthority::new());
    let sim = HaloSim::new(HaloSimConfig {
        public_base: url::Url::parse(&base).unwrap(),
        clock: clock.clone(),
        tokens: tokens.clone(),
        tenant_id: Some("acme".into()),
    });
    let app = Router::new().nest("/halo", sim.router());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();
    let mut harness = Harness {
        base,
        clock,
        tokens,
        sim,
        http,
        token: String::new(),
    };
    seed(
        &harness,
        json!({
            "halo_clients": [{"client_id": "halosync", "client_secret": "pw", "agent_id": 2}],
            "agents": [
                {"id": 2, "name": "Ada Lovelace", "email": "ada@contoso.com"},
                {"id": 3, "name": "Bob Builder", "email": "bob@contoso.com", "isdisabled": true},
                {"id": 4, "name": "Cy Young", "email": "cy@contoso.com"},
            ],
        }),
    );
    let (status, body) = harness.token("halosync", "pw", "all").await;
    assert_eq!(status, 200, "{body}");
    harness.token = body["access_token"].as_str().unwrap().to_owned();
    harness
}

fn seed(harness: &Harness, value: Value) -> Value {
    let seed: HaloSeed = serde_json::from_value(value).unwrap();
    harness.sim.seed(seed).unwrap()
}

fn appointment(subject: &str, day: u32, agent: i32) -> Value {
    json!({
        "subject": subject,
        "start_date": format!("2026-02-{day:02}T09:00:00"),
        "end_date": format!("2026-02-{day:02}T10:00:00"),
        "agent_id": agent,
    })
}

fn ids(rows: &Value) -> Vec<i64> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|row| row["id"].as_i64().unwrap())
        .collect()
}

impl Harness {
    async fn token(&self, client: &str, secret: &str, scope: &str) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/auth/token?tenant=acme", self.base))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client),
                ("client_secret", secret),
                ("scope", scope),
            ])
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path_and_query: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path_and_query}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Status, content type and raw body of a POST to `/api/Appointment`.
    async fn post_raw(&self, body: &str) -> (u16, String, String) {
        let response = self
            .http
            .post(format!("{}/api/Appointment", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, content_type, response.text().await.unwrap())
    }

    async fn post(&self, items: Value) -> Value {
        let (status, _, body) = self.post_raw(&items.to_string()).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn delete(&self, id: i64) -> u16 {
        self.http
            .delete(format!(
                "{}/api/Appointment/{id}?ignoreexchangedelete=true",
                self.base
            ))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

#[tokio::test]
async fn authinfo_discovery_leads_to_a_token_that_opens_the_api() {
    let harness = start().await;
    let info: Value = harness
        .http
        .get(format!("{}/api/authinfo", harness.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["auth_url"], format!("{}/auth", harness.base));
    assert_eq!(info["tenant_id"], "acme");

    let response = harness
        .http
        .post(format!(
            "{}/token?tenant=acme",
            info["auth_url"].as_str().unwrap()
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "halosync"),
            ("client_secret", "pw"),
            ("scope", "all"),
        ])
        .send()
        .await
        .unwrap();
    let token: Value = response.json().await.unwrap();
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["expires_in"], 3600);
    let me: Value = harness
        .http
        .get(format!("{}/api/Agent/me", harness.base))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], 2, "the client logs in as its agent");
    assert_eq!(me["name"], "Ada Lovelace");

    let (status, body) = harness.token("halosync", "wrong", "all").await;
    assert_eq!(status, 401);
    assert_eq!(body, json!({"error": "invalid_client"}));
}

#[tokio::test]
async fn the_api_refuses_missing_bad_expired_and_scopeless_tokens() {
    let mut harness = start().await;
    let response = harness
        .http
        .get(format!("{}/api/Appointment", harness.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert!(response.headers().contains_key("www-authenticate"));

    let good = harness.token.clone();
    harness.token = "not.a.token".into();
    assert_eq!(harness.get("/api/Appointment").await.0, 401);

    let (status, scopeless) = harness.token("halosync", "pw", "").await;
    assert_eq!(status, 200, "Halo issues a token without a scope...");
    harness.token = scopeless["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        harness.get("/api/Appointment").await.0,
        401,
        "...but the API refuses it"
    );

    // A token from the same authority, but for Graph.
    let now = harness.clock.now().timestamp();
    harness.token = harness.tokens.mint(Claims {
        aud: "https://graph.microsoft.com".into(),
        tid: "acme".into(),
        appid: "halosync".into(),
        upn: None,
        scp: Some("all".into()),
        roles: Vec::new(),
        iat: now,
        exp: now + 3600,
        epoch: 0,
    });
    assert_eq!(
        harness.get("/api/Appointment").await.0,
        401,
        "wrong audience"
    );

    harness.token = good;
    assert_eq!(harness.get("/api/Appointment").await.0, 200);
    harness.clock.advance(Duration::seconds(3601));
    assert_eq!(harness.get("/api/Appointment").await.0, 401, "expired");
}

#[tokio::test]
async fn agents_include_unassigned_and_disabled_and_page_in_an_envelope() {
    let harness = start().await;
    let (status, all) = harness.get("/api/Agent").await;
    assert_eq!(status, 200);
    assert_eq!(ids(&all), [1, 2, 3, 4], "no API agent unless asked for");
    let (_, enabled) = harness
        .get("/api/Agent?includedisabled=false&includeunassigned=false")
        .await;
    assert_eq!(ids(&enabled), [2, 4]);
    let (_, page) = harness
        .get("/api/Agent?pageinate=true&page_size=3&page_no=2")
        .await;
    assert_eq!(page["record_count"], 4);
    assert_eq!(page["page_no"], 2);
    assert_eq!(ids(&page["agents"]), [4]);
    let (status, agent) = harness.get("/api/Agent/3").await;
    assert_eq!(status, 200);
    assert_eq!(agent["isdisabled"], true);
    assert_eq!(harness.get("/api/Agent/99").await.0, 404);
    assert_eq!(
        harness.get("/api/agent/4").await.0,
        200,
        "routes ignore case"
    );
}

#[tokio::test]
async fn paging_over_1000_appointments_visits_each_once_and_ends_on_a_short_page() {
    let harness = start().await;
    let appointments: Vec<Value> = (0..1003)
        .map(|i| appointment(&format!("Visit {i}"), 1 + (i % 28), 2))
        .collect();
    seed(&harness, json!({ "appointments": appointments }));
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        pages += 1;
        let (status, page) = harness
            .get(&format!(
                "/api/Appointment?pageinate=true&page_size=100&page_no={pages}&order=id"
            ))
            .await;
        assert_eq!(status, 200);
        assert_eq!(page["record_count"], 1003);
        let rows = ids(&page["appointments"]);
        seen.extend_from_slice(&rows);
        if rows.len() < 100 {
            break;
        }
        assert!(pages < 20, "paging never ended");
    }
    assert_eq!(pages, 11);
    assert_eq!(seen.len(), 1003);
    assert_eq!(
        seen.iter().collect::<HashSet<_>>().len(),
        1003,
        "no duplicates"
    );
    let (_, bare) = harness.get("/api/Appointment").await;
    assert_eq!(
        bare.as_array().unwrap().len(),
        1003,
        "without pageinate: a bare array of everything"
    );
}

#[tokio::test]
async fn ordering_by_last_modified_desc_puts_the_latest_changes_first() {
    let harness = start().await;
    let seeded = seed(
        &harness,
        json!({"appointments": (1..=5).map(|day| {
            let mut a = appointment(&format!("Day {day}"), day, 2);
            a["last_modified"] = json!(format!("2026-01-0{day}T08:00:00"));
            a
        }).collect::<Vec<_>>()}),
    );
    let seeded: Vec<i64> = seeded["appointments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_i64().unwrap())
        .collect();
    harness.clock.advance(Duration::seconds(1));
    harness
        .post(json!([{"id": seeded[1], "subject": "changed first"}]))
        .await;
    harness.clock.advance(Duration::seconds(1));
    harness
        .post(json!([{"id": seeded[3], "subject": "changed last"}]))
        .await;
    let (_, rows) = harness
        .get("/api/Appointment?order=last_modified&orderdesc=true")
        .await;
    assert_eq!(
        ids(&rows),
        [seeded[3], seeded[1], seeded[4], seeded[2], seeded[0]]
    );
    let newest = rows[0]["last_modified"].as_str().unwrap();
    assert!(
        !newest.ends_with('Z') && !newest.contains('+'),
        "naive UTC: {newest}"
    );
    let (_, ascending) = harness.get("/api/Appointment?order=start_date").await;
    assert_eq!(ids(&ascending), seeded);
}

#[tokio::test]
async fn one_array_post_creates_and_partially_updates() {
    let harness = start().await;
    let existing = harness
        .post(json!([{
            "subject": "Boiler service", "note": "bring the ladder",
            "start_date": "2026-02-10T09:00:00Z", "end_date": "2026-02-10T11:00:00+01:00",
            "agent_id": 2,
        }]))
        .await;
    let existing_id = existing[0]["id"].as_i64().unwrap();
    assert_eq!(existing[0]["start_date"], "2026-02-10T09:00:00");
    assert_eq!(
        existing[0]["end_date"], "2026-02-10T10:00:00",
        "offsets become UTC"
    );
    assert_eq!(existing[0]["agent_name"], "Ada Lovelace");
    assert_eq!(existing[0]["agents"][0]["id"], 2);

    let saved = harness
        .post(json!([
            appointment("New visit", 12, 4),
            {"id": existing_id, "subject": "Boiler service (moved)", "agent_id": 4},
        ]))
        .await;
    let saved = saved.as_array().unwrap();
    assert_eq!(saved.len(), 2);
    assert_ne!(saved[0]["id"], json!(existing_id));
    assert_eq!(saved[1]["id"], json!(existing_id));
    let (_, detail) = harness
        .get(&format!(
            "/api/Appointment/{existing_id}?includedetails=true"
        ))
        .await;
    assert_eq!(detail["subject"], "Boiler service (moved)");
    assert_eq!(
        detail["note"], "bring the ladder",
        "fields not sent keep their values"
    );
    assert_eq!(detail["start_date"], "2026-02-10T09:00:00");
    assert_eq!(detail["agent_id"], 4);
    assert_eq!(
        detail["agents"],
        json!([{"id": 4, "name": "Cy Young", "email": "cy@contoso.com"}])
    );
    let (_, summary) = harness
        .get(&format!("/api/Appointment/{existing_id}"))
        .await;
    assert!(
        summary.get("note").is_none(),
        "the body needs includedetails"
    );
    assert_eq!(summary["subject"], "Boiler service (moved)");
}

#[tokio::test]
async fn the_rekey_switch_returns_updates_under_a_new_id() {
    let harness = start().await;
    let created = harness.post(json!([appointment("Visit", 3, 2)])).await;
    let old = created[0]["id"].as_i64().unwrap();
    harness
        .sim
        .set_faults(HaloFaults {
            rekey_on_update: true,
            ..HaloFaults::default()
        })
        .unwrap();
    let updated = harness
        .post(json!([{"id": old, "subject": "Visit (moved)"}]))
        .await;
    let new = updated[0]["id"].as_i64().unwrap();
    assert_ne!(new, old);
    assert_eq!(updated[0]["subject"], "Visit (moved)");
    assert_eq!(harness.get(&format!("/api/Appointment/{old}")).await.0, 404);
    assert_eq!(ids(&harness.get("/api/Appointment").await.1), [new]);

    harness.sim.set_faults(HaloFaults::default()).unwrap();
    let again = harness.post(json!([{"id": new, "subject": "kept"}])).await;
    assert_eq!(again[0]["id"], json!(new), "switched off: ids are stable");
}

#[tokio::test]
async fn delete_is_soft_and_shows_with_includedeleted() {
    let harness = start().await;
    let created = harness
        .post(json!([
            appointment("Keep", 3, 2),
            appointment("Drop", 4, 2)
        ]))
        .await;
    let (keep, drop) = (
        created[0]["id"].as_i64().unwrap(),
        created[1]["id"].as_i64().unwrap(),
    );
    assert_eq!(harness.delete(drop).await, 200);
    assert_eq!(
        harness.get(&format!("/api/Appointment/{drop}")).await.0,
        404
    );
    assert_eq!(ids(&harness.get("/api/Appointment").await.1), [keep]);
    assert_eq!(
        ids(&harness.get("/api/Appointment?includedeleted=true").await.1),
        [keep, drop]
    );
    assert_eq!(harness.delete(drop).await, 404, "already deleted");
    let state = harness.sim.state();
    let deleted: Vec<(i32, bool)> = state
        .appointments
        .iter()
        .map(|a| (a.appointment.id, a.deleted))
        .collect();
    assert_eq!(deleted, [(keep as i32, false), (drop as i32, true)]);
}

#[tokio::test]
async fn the_window_and_agents_filters_select_overlapping_appointments() {
    let harness = start().await;
    seed(
        &harness,
        json!({"appointments": [
            {"id": 10, "subject": "before", "start_date": "2026-02-09T08:00:00", "end_date": "2026-02-09T09:00:00", "agent_id": 2},
            {"id": 11, "subject": "overlaps start", "start_date": "2026-02-09T23:00:00", "end_date": "2026-02-10T01:00:00", "agent_id": 2},
            {"id": 12, "subject": "inside", "start_date": "2026-02-10T09:00:00", "end_date": "2026-02-10T10:00:00", "agent_id": 4},
            {"id": 13, "subject": "after", "start_date": "2026-02-11T00:00:00", "end_date": "2026-02-11T01:00:00", "agent_id": 2},
        ]}),
    );
    let window = "start_date=2026-02-10T00:00:00&end_date=2026-02-11T00:00:00";
    let (_, rows) = harness.get(&format!("/api/Appointment?{window}")).await;
    assert_eq!(ids(&rows), [11, 12]);
    let (_, rows) = harness
        .get(&format!("/api/Appointment?{window}&agents=4&showall=true"))
        .await;
    assert_eq!(ids(&rows), [12]);
    let (_, rows) = harness
        .get(&format!("/api/Appointment?{window}&agents=0"))
        .await;
    assert_eq!(ids(&rows), [11, 12], "0 means every agent");
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_halos_text() {
    let harness = start().await;
    // The default hosted budget: 300 per rolling 5 minutes (the token request
    // in start() spent one).
    for _ in 0..299 {
        assert_eq!(harness.get("/api/Agent/me").await.0, 200);
    }
    let (status, body) = harness.get("/api/Agent/me").await;
    assert_eq!(status, 429);
    assert_eq!(
        body,
        json!("Rate Limit Reached - 300 Requests per rolling 5 minute window")
    );
    harness.clock.advance(Duration::minutes(5));
    assert_eq!(
        harness.get("/api/Agent/me").await.0,
        200,
        "the window rolled on"
    );

    harness
        .sim
        .set_faults(HaloFaults {
            rate_limit: Some(RateLimit {
                requests: 3,
                window_seconds: 120,
            }),
            ..HaloFaults::default()
        })
        .unwrap();
    for _ in 0..3 {
        assert_eq!(harness.get("/api/Agent/me").await.0, 200);
    }
    assert_eq!(
        harness.get("/api/Agent/me").await,
        (
            429,
            json!("Rate Limit Reached - 3 Requests per rolling 2 minute window")
        )
    );
}

#[tokio::test]
async fn bad_input_gets_halos_error_shapes_and_changes_nothing() {
    let harness = start().await;
    let class_name = |body: &str| -> String {
        let value: Value = serde_json::from_str(body).unwrap();
        assert!(
            value["Message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        value["ClassName"].as_str().unwrap().to_owned()
    };
    let (status, _, body) = harness.post_raw("[{\"subject\": ").await;
    assert_eq!(status, 400);
    assert_eq!(class_name(&body), "Newtonsoft.Json.JsonReaderException");
    let (status, _, body) = harness.post_raw(&appointment("x", 3, 2).to_string()).await;
    assert_eq!(status, 400, "an object, not an array");
    assert_eq!(
        class_name(&body),
        "Newtonsoft.Json.JsonSerializationException"
    );
    let (status, _, body) = harness
        .post_raw(&json!([appointment("ok", 3, 2), {"subject": 5, "agent_id": "two"}]).to_string())
        .await;
    assert_eq!(status, 400, "wrong types");
    assert_eq!(
        class_name(&body),
        "Newtonsoft.Json.JsonSerializationException"
    );
    let (status, content_type, body) = harness
        .post_raw(
            &json!([{"subject": "backwards", "start_date": "2026-02-10T10:00:00",
                           "end_date": "2026-02-10T09:00:00"}])
            .to_string(),
        )
        .await;
    assert_eq!(status, 400, "validation");
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert!(body.contains("end date"), "{body}");
    let (status, content_type, _) = harness
        .post_raw(&json!([appointment("nobody", 3, 77)]).to_string())
        .await;
    assert_eq!(status, 400, "unknown agent");
    assert!(content_type.starts_with("text/plain"));
    let (status, _, _) = harness
        .post_raw(&json!([{"id": 4242, "subject": "ghost"}]).to_string())
        .await;
    assert_eq!(status, 404, "update of an unknown id");
    assert_eq!(harness.get("/api/Appointment/4242").await.0, 404);
    assert_eq!(harness.get("/api/Appointment/abc").await.0, 404);
    let (status, body) = harness
        .get("/api/Appointment?pageinate=true&page_no=abc")
        .await;
    assert_eq!(
        (status, body),
        (400, json!("The value 'abc' is not valid for page_no."))
    );
    assert_eq!(harness.get("/api/Appointment?start_date=soon").await.0, 400);
    assert!(
        harness.sim.state().appointments.is_empty(),
        "a batch with one bad item saves nothing"
    );
}

#[tokio::test]
async fn faults_use_halo_bodies_and_requests_are_counted_by_route_template() {
    let harness = start().await;
    let faults: HaloFaults = serde_json::from_value(json!({
        "faults": {"rules": [{"count": 1, "method": "GET", "path_contains": "/api/Appointment",
                              "action": {"kind": "status", "status": 500}}]}
    }))
    .unwrap();
    harness.sim.set_faults(faults).unwrap();
    let (status, body) = harness.get("/api/Appointment").await;
    assert_eq!(status, 500);
    assert_eq!(body["ClassName"], "System.Exception");
    assert_eq!(harness.get("/api/Appointment").await.0, 200);
    assert_eq!(harness.get("/api/Appointment/7").await.0, 404);
    let state = harness.sim.state();
    assert_eq!(state.by_route.get("GET /halo/api/Appointment"), Some(&2));
    assert_eq!(
        state.by_route.get("GET /halo/api/Appointment/{id}"),
        Some(&1)
    );
    assert_eq!(state.by_route.get("POST /halo/auth/token"), Some(&1));
    assert_eq!(state.requests, 4);
}

#[tokio::test]
async fn a_person_acting_in_halo_changes_appointments_and_last_modified() {
    let harness = start().await;
    let created = harness
        .sim
        .act(
            serde_json::from_value::<HaloAction>(json!({
                "op": "create_appointment", "appointment": appointment("Walk-in", 5, 4)
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let id = created["id"].as_i64().unwrap();
    let before = created["last_modified"].as_str().unwrap().to_owned();
    harness.clock.advance(Duration::minutes(3));
    let updated = harness
        .sim
        .act(
            serde_json::from_value::<HaloAction>(json!({
                "op": "update_appointment", "id": id, "changes": {"subject": "Walk-in (late)"}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(updated["id"], json!(id));
    assert!(updated["last_modified"].as_str().unwrap() > before.as_str());
    harness
        .sim
        .act(
            serde_json::from_value::<HaloAction>(json!({"op": "delete_appointment", "id": id}))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(harness.get(&format!("/api/Appointment/{id}")).await.0, 404);
    assert!(
        serde_json::from_value::<HaloAction>(
            json!({"op": "delete_appointment", "id": 1, "why": "x"})
        )
        .is_err(),
        "unknown keys are refused"
    );
    assert!(
        harness
            .sim
            .act(
                serde_json::from_value::<HaloAction>(json!({"op": "delete_appointment", "id": id}))
                    .unwrap()
            )
            .await
            .is_err()
    );
}
