//! Mechanical conformance with Graph's v1.0 schemas: the shared payload
//! examples parse through the simulator's types, and everything the
//! simulator emits (events, subscriptions, notifications) uses only property
//! names and enum values the CSDL-derived schemas list.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod sim_graph_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Router;
use axum::extract::Query;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;
use halosync::clock::Clock;
use halosync::sim::graph::model::{
    ChangeNotificationCollection, DeltaPage, Event, LifecycleEventType,
};
use halosync::sim::graph::{GraphAction, GraphFaults, LifecycleFault};
use serde_json::{Value, json};
use sim_graph_support::Harness;
use tokio::sync::mpsc;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/graph")
}

/// The schemas by type name, and enum values by enum name.
struct Schemas {
    types: BTreeMap<String, Value>,
    enums: BTreeMap<String, BTreeSet<String>>,
}

/// Open types whose documented members the CSDL cannot list: Graph's
/// webhook docs define `resourceData.id` for basic notifications.
const OPEN_TYPE_MEMBERS: &[(&str, &[&str])] = &[("microsoft.graph.resourceData", &["id"])];

impl Schemas {
    fn load() -> Self {
        let dir = fixtures().join("schemas");
        let mut types = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if let Some(type_name) = name.strip_suffix(".json")
                && type_name.starts_with("microsoft.graph.")
                && type_name != "microsoft.graph.enums"
            {
                let schema: Value =
                    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                types.insert(type_name.to_string(), schema);
            }
        }
        let enums_file: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("microsoft.graph.enums.json")).unwrap(),
        )
        .unwrap();
        let enums = enums_file["enums"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, e)| {
                let values = e["enum"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect();
                (name.clone(), values)
            })
            .collect();
        Self { types, enums }
    }

    /// Every property (structural and navigation) of a type and its bases.
    fn properties(&self, type_name: &str) -> BTreeMap<String, Value> {
        let schema = self
            .types
            .get(type_name)
            .unwrap_or_else(|| panic!("no schema for {type_name}"));
        let mut chain = vec![type_name.to_string()];
        if let Some(bases) = schema["x-inheritance-chain"].as_array() {
            chain.extend(bases.iter().map(|b| b.as_str().unwrap().to_string()));
        } else if let Some(base) = schema["x-base-type"].as_str() {
            chain.push(base.to_string());
        }
        let mut out = BTreeMap::new();
        for name in chain {
            let schema = &self.types[&name];
            for key in ["properties", "x-navigation-properties"] {
                if let Some(props) = schema[key].as_object() {
                    for (prop, def) in props {
                        out.insert(prop.clone(), def.clone());
                    }
                }
            }
            for (open, members) in OPEN_TYPE_MEMBERS {
                if *open == name {
                    for m in *members {
                        out.insert(m.to_string(), json!({"type": "string"}));
                    }
                }
            }
        }
        out
    }

    /// Walks `value` as an instance of `type_name`, collecting violations.
    fn check(&self, type_name: &str, value: &Value, path: &str, errors: &mut Vec<String>) {
        let Some(object) = value.as_object() else {
            if !value.is_null() {
                errors.push(format!(
                    "{path}: expected a {type_name} object, got {value}"
                ));
            }
            return;
        };
        let properties = self.properties(type_name);
        for (key, item) in object {
            if key.starts_with("@odata.") || key == "@removed" {
                continue;
            }
            let here = format!("{path}.{key}");
            match properties.get(key) {
                None => errors.push(format!("{here}: '{key}' is not a property of {type_name}")),
                Some(def) => self.check_value(def, item, &here, errors),
            }
        }
    }

    fn check_value(&self, def: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
        if value.is_null() {
            return;
        }
        if let Some(reference) = def["$ref"].as_str() {
            if let Some(enum_name) = reference.strip_prefix("microsoft.graph.enums.json#/enums/") {
                let allowed = &self.enums[enum_name];
                match value.as_str() {
                    Some(v) if allowed.contains(v) => {}
                    _ => errors.push(format!("{path}: {value} is not a {enum_name} value")),
                }
            } else {
                let target = reference.trim_end_matches(".json");
                self.check(target, value, path, errors);
            }
            return;
        }
        if def["type"] == "array" {
            match value.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.check_value(&def["items"], item, &format!("{path}[{i}]"), errors);
                    }
                }
                None => errors.push(format!("{path}: expected an array")),
            }
        }
    }

    fn violations(&self, type_name: &str, value: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        self.check(type_name, value, "$", &mut errors);
        errors
    }
}

#[test]
fn every_example_payload_parses_through_the_simulators_types() {
    let dir = fixtures().join("examples");
    let mut parsed = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let outcome = if name.starts_with("event-") {
            serde_json::from_str::<Event>(&text).map(|_| ())
        } else if name.starts_with("calendarview-delta-") {
            serde_json::from_str::<DeltaPage>(&text).map(|_| ())
        } else if name.starts_with("change-notification-") {
            serde_json::from_str::<ChangeNotificationCollection>(&text).map(|_| ())
        } else {
            panic!("unclassified example {name}: add it to this test");
        };
        outcome.unwrap_or_else(|e| panic!("{name}: {e}"));
        parsed += 1;
    }
    assert_eq!(parsed, 7);
}

#[test]
fn the_checker_rejects_made_up_properties_and_enum_values() {
    let schemas = Schemas::load();
    let text = std::fs::read_to_string(
        fixtures().join("examples/event-create-response-timezone-transactionId.json"),
    )
    .unwrap();
    let good: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        schemas.violations("microsoft.graph.event", &good),
        Vec::<String>::new()
    );

    let mut made_up = good.clone();
    made_up["haloSyncTag"] = json!("x");
    assert_eq!(
        schemas.violations("microsoft.graph.event", &made_up).len(),
        1
    );
    let mut nested = good.clone();
    nested["location"]["floor"] = json!(3);
    assert!(schemas.violations("microsoft.graph.event", &nested)[0].contains("floor"));
    let mut bad_enum = good.clone();
    bad_enum["sensitivity"] = json!("secret");
    assert!(schemas.violations("microsoft.graph.event", &bad_enum)[0].contains("sensitivity"));
    let mut bad_day = good;
    bad_day["recurrence"] = json!({"pattern": {"type": "weekly", "daysOfWeek": ["Monday"]}, "range": {"type": "noEnd"}});
    assert_eq!(
        schemas.violations("microsoft.graph.event", &bad_day).len(),
        1,
        "enum values are case-sensitive on output"
    );
}

async fn start_webhook() -> (String, mpsc::UnboundedReceiver<Value>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let handler = move |Query(q): Query<BTreeMap<String, String>>, body: String| {
        let tx = tx.clone();
        async move {
            if let Some(token) = q.get("validationToken") {
                return ([(header::CONTENT_TYPE, "text/plain")], token.clone()).into_response();
            }
            let _ = tx.send(serde_json::from_str::<Value>(&body).unwrap_or(Value::Null));
            axum::http::StatusCode::ACCEPTED.into_response()
        }
    };
    let app: Router = Router::new().route("/hook", post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), rx)
}

async fn received(rx: &mut mpsc::UnboundedReceiver<Value>) -> Value {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("notification")
        .unwrap()
}

#[tokio::test]
async fn everything_the_simulator_emits_conforms_to_the_schemas() {
    let schemas = Schemas::load();
    let h = Harness::with_mailboxes(&["adele@contoso.com"]).await;
    let (hook, mut rx) = start_webhook().await;
    let mailbox = "/users/adele@contoso.com";
    let expires = (h.clock.now() + chrono::Duration::hours(2)).to_rfc3339();
    let subscription = h
        .post(
            "/subscriptions",
            &json!({"changeType": "created,updated,deleted", "notificationUrl": hook, "lifecycleNotificationUrl": hook,
                    "resource": format!("{mailbox}/events"), "expirationDateTime": expires, "clientState": "cs"}),
        )
        .await;
    let mut emitted: Vec<(&str, Value)> =
        vec![("microsoft.graph.subscription", subscription.body.clone())];

    let prop = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name HaloApptId";
    let rich = json!({
        "subject": "Everything", "body": {"contentType": "HTML", "content": "<p>Hi</p>"},
        "start": {"dateTime": "2026-02-09T09:00:00", "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": "2026-02-09T10:00:00", "timeZone": "W. Europe Standard Time"},
        "recurrence": {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["Monday", "wednesday"]},
                       "range": {"type": "endDate", "startDate": "2026-02-09", "endDate": "2026-03-01"}},
        "location": {"displayName": "HQ", "address": {"city": "Berlin"}, "coordinates": {"latitude": 52.5, "longitude": 13.4}},
        "attendees": [{"emailAddress": {"address": "agent@contoso.com"}, "type": "optional"}],
        "isOnlineMeeting": true, "onlineMeetingProvider": "teamsForBusiness", "sensitivity": "private",
        "showAs": "tentative", "importance": "high", "categories": ["Halo"],
        "singleValueExtendedProperties": [{"id": prop, "value": "77"}],
    });
    let master = h.post(&format!("{mailbox}/events"), &rich).await;
    assert_eq!(
        master.status,
        reqwest::StatusCode::CREATED,
        "{}",
        master.body
    );
    emitted.push(("microsoft.graph.event", master.body.clone()));
    let window = "startDateTime=2026-02-01T00:00:00Z&endDateTime=2026-03-01T00:00:00Z&$top=100";
    let view = h.get(&format!("{mailbox}/calendarView?{window}")).await;
    let occurrence_id = view.body["value"][1]["id"].as_str().unwrap().to_string();
    let exception = h
        .patch(
            &format!("{mailbox}/events/{occurrence_id}"),
            &json!({"subject": "Exception", "isAllDay": false}),
        )
        .await;
    emitted.push(("microsoft.graph.event", exception.body.clone()));
    let master_id = master.body["id"].as_str().unwrap();
    let expanded = h
        .get(&format!("{mailbox}/events/{master_id}?$expand=singleValueExtendedProperties($filter=id%20eq%20'{prop}')"))
        .await;
    assert_eq!(
        expanded.body["singleValueExtendedProperties"][0]["value"],
        "77"
    );
    emitted.push(("microsoft.graph.event", expanded.body.clone()));
    let act: GraphAction = serde_json::from_value(json!({"op": "create_event", "mailbox": "adele@contoso.com",
        "event": {"subject": "Single", "start": {"dateTime": "2026-02-20T09:00:00"}, "end": {"dateTime": "2026-02-20T09:30:00"}}}))
    .unwrap();
    let single = h.sim.act(act).await.unwrap();
    let single_id = single["id"].as_str().unwrap();
    h.delete(&format!("{mailbox}/events/{single_id}")).await;

    for collection in [
        h.get(&format!("{mailbox}/events")).await.body,
        h.get(&format!("{mailbox}/calendarView?{window}")).await.body,
        h.get(&format!("{mailbox}/events/{master_id}/instances?{window}")).await.body,
        h.get(&format!("{mailbox}/calendarView/delta?startDateTime=2026-02-01T00:00:00Z&endDateTime=2026-03-01T00:00:00Z")).await.body,
    ] {
        let items = collection["value"].as_array().unwrap();
        assert!(!items.is_empty());
        emitted.extend(items.iter().map(|e| ("microsoft.graph.event", e.clone())));
    }
    // A later delta round carries @removed entries and changed series.
    let first_round = h
        .get_with(
            &format!("{mailbox}/calendarView/delta?startDateTime=2026-02-01T00:00:00Z&endDateTime=2026-03-01T00:00:00Z"),
            &[("Prefer", "odata.maxpagesize=100")],
        )
        .await;
    let delta_link = first_round.body["@odata.deltaLink"]
        .as_str()
        .unwrap()
        .to_string();
    let cancelled = view.body["value"][2]["id"].as_str().unwrap();
    h.delete(&format!("{mailbox}/events/{cancelled}")).await;
    let second_round = h.get(&delta_link).await;
    let changes = second_round.body["value"].as_array().unwrap();
    assert!(
        changes.iter().any(|e| e.get("@removed").is_some()),
        "{changes:?}"
    );
    emitted.extend(changes.iter().map(|e| ("microsoft.graph.event", e.clone())));
    for list in h.get("/subscriptions").await.body["value"]
        .as_array()
        .unwrap()
    {
        emitted.push(("microsoft.graph.subscription", list.clone()));
    }
    let state = serde_json::to_value(h.sim.state()).unwrap();
    for event in state["events"]["adele@contoso.com"].as_array().unwrap() {
        emitted.push(("microsoft.graph.event", event.clone()));
    }
    for sub in state["subscriptions"].as_array().unwrap() {
        emitted.push(("microsoft.graph.subscription", sub.clone()));
    }
    // created (master), updated (exception), created + deleted (act),
    // updated (cancelled occurrence), then lifecycle.
    for _ in 0..5 {
        emitted.push((
            "microsoft.graph.changeNotificationCollection",
            received(&mut rx).await,
        ));
    }
    let id = subscription.body["id"].as_str().unwrap().to_string();
    let lifecycle = LifecycleEventType::ReauthorizationRequired;
    h.sim
        .set_faults(GraphFaults {
            lifecycle: vec![LifecycleFault {
                subscription_id: id,
                event: lifecycle,
            }],
            ..GraphFaults::default()
        })
        .unwrap();
    let lifecycle_payload = received(&mut rx).await;
    assert_eq!(
        lifecycle_payload["value"][0]["lifecycleEvent"],
        "reauthorizationRequired"
    );
    emitted.push((
        "microsoft.graph.changeNotificationCollection",
        lifecycle_payload,
    ));

    let mut all_errors = Vec::new();
    for (type_name, value) in &emitted {
        all_errors.extend(schemas.violations(type_name, value));
    }
    assert!(
        all_errors.is_empty(),
        "{} violations:\n{}",
        all_errors.len(),
        all_errors.join("\n")
    );
    assert!(
        emitted.len() > 20,
        "the walk covered {} payloads",
        emitted.len()
    );
}
