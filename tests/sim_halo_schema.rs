//! Every appointment and agent the simulated Halo returns uses only property
//! names (and JSON types) of Halo's own OpenAPI schemas, checked mechanically
//! against the extract in `../shared/fixtures/halo/`.

// Integration tests: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::Router;
use halosync::clock::ShiftedClock;
use halosync::sim::halo::{HaloAction, HaloSeed, HaloSim, HaloSimConfig};
use halosync::sim::token::TokenAuthority;
use serde_json::{Map, Value, json};

const OPENAPI: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/fixtures/halo/halo-openapi-appointments-agents.json"
);

fn schemas() -> Map<String, Value> {
    let text = std::fs::read_to_string(OPENAPI).expect("the Halo OpenAPI extract is readable");
    let spec: Value = serde_json::from_str(&text).unwrap();
    spec["schemas"].as_object().unwrap().clone()
}

/// Halo writes date-times as naive UTC: `2026-02-10T09:00:00[.fff]`.
fn is_naive_date_time(text: &str) -> bool {
    let (date_time, fraction) = text.split_once('.').unwrap_or((text, "0"));
    chrono::NaiveDateTime::parse_from_str(date_time, "%Y-%m-%dT%H:%M:%S").is_ok()
        && !fraction.is_empty()
        && fraction.chars().all(|c| c.is_ascii_digit())
}

/// Everything in `value` that the named schema does not allow: unknown
/// property names, wrong JSON types, date-times that are not naive UTC.
/// Objects under `$ref`s outside the extract are not descended into.
fn violations(
    value: &Value,
    schema: &str,
    schemas: &Map<String, Value>,
    path: &str,
) -> Vec<String> {
    let Some(properties) = schemas[schema]["properties"].as_object() else {
        return vec![format!("{path}: schema {schema} is not in the extract")];
    };
    let Some(object) = value.as_object() else {
        return vec![format!("{path}: expected a {schema} object, got {value}")];
    };
    let mut found = Vec::new();
    for (key, item) in object {
        let at = format!("{path}.{key}");
        let Some(property) = properties.get(key) else {
            found.push(format!("{at}: not a property of {schema}"));
            continue;
        };
        if item.is_null() {
            continue;
        }
        let fits = match property["type"].as_str() {
            Some("string") => item.is_string(),
            Some("integer") => item.is_i64(),
            Some("number") => item.is_number(),
            Some("boolean") => item.is_boolean(),
            Some("array") => item.is_array(),
            _ => item.is_object(),
        };
        if !fits {
            found.push(format!("{at}: {item} does not fit {property}"));
            continue;
        }
        if property["format"] == "date-time" && !is_naive_date_time(item.as_str().unwrap_or("")) {
            found.push(format!("{at}: {item} is not a naive UTC date-time"));
        }
        let nested = property["items"]["$ref"]
            .as_str()
            .or(property["$ref"].as_str())
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
            .filter(|name| schemas.contains_key(*name));
        if let Some(nested) = nested {
            let children = item
                .as_array()
                .cloned()
                .unwrap_or_else(|| vec![item.clone()]);
            for (index, child) in children.iter().enumerate() {
                found.extend(violations(
                    child,
                    nested,
                    schemas,
                    &format!("{at}[{index}]"),
                ));
            }
        }
    }
    found
}

struct Harness {
    base: String,
    sim: HaloSim,
    http: reqwest::Client,
    token: String,
}

async fn start() -> Harness {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let sim = HaloSim::new(HaloSimConfig {
        public_base: url::Url::parse(&base).unwrap(),
        clock: Arc::new(ShiftedClock::new()),
        tokens: Arc::new(TokenAuthority::new()),
        tenant_id: None,
    });
    let app = Router::new().merge(sim.router());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();
    let token: Value = http
        .post(format!("{base}/auth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "any"),
            ("client_secret", "any"),
            ("scope", "all"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    Harness {
        base,
        sim,
        http,
        token: token["access_token"].as_str().unwrap().to_owned(),
    }
}

impl Harness {
    async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        response.json().await.unwrap()
    }
}

/// A populated appointment, in the shapes clients write (offset dates,
/// fields the simulator does not model, control flags).
fn rich_appointment(day: u32) -> Value {
    json!({
        "subject": format!("Quarterly review {day}"),
        "start_date": format!("2026-03-{day:02}T09:00:00Z"),
        "end_date": format!("2026-03-{day:02}T10:30:00+00:00"),
        "allday": false,
        "agents": [{"id": 2}, {"id": 3}],
        "note": "Agenda attached", "note_html": "<p>Agenda attached</p>",
        "is_private": true, "appointment_type_id": 4, "appointment_type_name": "Teams Meeting",
        "online_meeting_url": "https://teams.example/join/1", "attendees": "cy@contoso.com",
        "entryid": "AAMkAD=", "changekey": "DwAAABYA", "exchange_uid": "040000008200E00074C5",
        "appointment_location_free_text": "Room 4", "exchangelastmodifieddate": "2026-03-01T08:00:00Z",
        "_force": true, "utcoffset": 0, "reassign_ticket": false,
    })
}

#[tokio::test]
async fn every_appointment_and_agent_the_simulator_returns_fits_halos_schemas() {
    let schemas = schemas();
    let harness = start().await;
    let seed: HaloSeed = serde_json::from_value(json!({
        "agents": [
            {"id": 2, "name": "Ada Lovelace", "email": "ada@contoso.com"},
            {"id": 3, "name": "Bob Builder", "email": "bob@contoso.com", "isdisabled": true},
        ],
        "appointments": [rich_appointment(2)],
    }))
    .unwrap();
    harness.sim.seed(seed).unwrap();

    let mut appointments: Vec<(String, Value)> = Vec::new();
    let posted: Value = harness
        .http
        .post(format!("{}/api/Appointment", harness.base))
        .bearer_auth(&harness.token)
        .json(&json!([rich_appointment(3), {"id": 1, "subject": "renamed", "agent_id": 3}]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    appointments.extend(
        posted
            .as_array()
            .unwrap()
            .iter()
            .map(|a| ("POST".to_owned(), a.clone())),
    );
    let acted = harness
        .sim
        .act(
            serde_json::from_value::<HaloAction>(
                json!({"op": "create_appointment", "appointment": rich_appointment(4)}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    appointments.push(("act".into(), acted));
    let mut list_rows = Vec::new();
    for path in [
        "/api/Appointment",
        "/api/Appointment?includedeleted=true&order=last_modified",
    ] {
        list_rows.extend(harness.get(path).await.as_array().unwrap().clone());
    }
    let paged = harness
        .get("/api/Appointment?pageinate=true&page_size=2")
        .await;
    list_rows.extend(paged["appointments"].as_array().unwrap().clone());
    appointments.extend(list_rows.iter().map(|a| ("list".to_owned(), a.clone())));
    for details in ["false", "true"] {
        let one = harness
            .get(&format!("/api/Appointment/1?includedetails={details}"))
            .await;
        appointments.push((format!("GET includedetails={details}"), one));
    }
    assert!(appointments.len() >= 10);

    let mut found = Vec::new();
    for (source, appointment) in &appointments {
        found.extend(violations(appointment, "Appointment", &schemas, source));
    }
    // List rows are the `Appointment_List` subset (plus `last_modified`, which
    // the newer spec adds to it).
    for row in &list_rows {
        let mut row = row.clone();
        row.as_object_mut().unwrap().remove("last_modified");
        found.extend(violations(&row, "Appointment_List", &schemas, "list row"));
    }
    let mut agents = harness
        .get("/api/Agent?includeapiagents=true")
        .await
        .as_array()
        .unwrap()
        .clone();
    agents.push(harness.get("/api/Agent/me").await);
    agents.push(harness.get("/api/Agent/2").await);
    let paged_agents = harness.get("/api/Agent?pageinate=true&page_size=1").await;
    agents.extend(paged_agents["agents"].as_array().unwrap().clone());
    for agent in &agents {
        found.extend(violations(agent, "Uname", &schemas, "agent"));
    }
    assert!(found.is_empty(), "{found:#?}");

    // The checks had something to look at: details carry the body and the
    // agents, list rows do not.
    let detailed = &appointments.last().unwrap().1;
    assert_eq!(detailed["agents"][0]["name"], "Bob Builder");
    assert!(detailed.get("note").is_some());
    assert!(list_rows.iter().all(|row| row.get("note").is_none()));
}

#[test]
fn the_checker_catches_made_up_fields_wrong_types_and_offset_dates() {
    let schemas = schemas();
    let made_up = json!({
        "id": 1,
        "subject": "fine",
        "location": "Room 4",
        "agent_id": "2",
        "start_date": "2026-02-10T09:00:00Z",
        "agents": [{"id": 2, "mailbox": "ada@contoso.com"}],
    });
    let found = violations(&made_up, "Appointment", &schemas, "made-up");
    let named = |needle: &str| found.iter().any(|v| v.contains(needle));
    assert!(
        named("made-up.location: not a property of Appointment"),
        "{found:#?}"
    );
    assert!(named("made-up.agent_id"), "{found:#?}");
    assert!(named("made-up.start_date"), "{found:#?}");
    assert!(named("made-up.agents[0].mailbox"), "{found:#?}");
    assert_eq!(found.len(), 4, "{found:#?}");
    // Fields the list schema lacks are caught against it.
    let detailed = json!({"id": 1, "note": "body"});
    assert_eq!(
        violations(&detailed, "Appointment_List", &schemas, "row").len(),
        1
    );
}
