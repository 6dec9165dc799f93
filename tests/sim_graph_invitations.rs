//! Meetings across mailboxes: an organizer's event reaches each seeded
//! attendee as its own copy, the organizer's updates and deletion follow it
//! there, an attendee's edit stays local, and the attendee's mailbox sees
//! every one of these changes in delta and notifications.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod sim_graph_support;

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode as AxumStatus, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use halosync::clock::Clock;
use halosync::sim::graph::GraphAction;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sim_graph_support::{Harness, event};
use tokio::sync::mpsc;

const SCHEDULER: &str = "scheduler@contoso.com";
const LEAH: &str = "leah@contoso.com";
const AMIR: &str = "amir@contoso.com";
const PROPERTY: &str = "String {9b3e6f2a-5c1d-4e8b-a7f0-2d4c6b8e1a35} Name HaloAppointmentId";

fn attendee(address: &str) -> Value {
    json!({"emailAddress": {"address": address}, "type": "required"})
}

/// The scheduler's meeting with Leah, Amir and someone outside the tenant.
fn meeting() -> Value {
    let mut body = event(
        "Server room audit",
        "2026-02-11T09:00:00",
        "2026-02-11T10:00:00",
        "UTC",
    );
    body["attendees"] = json!([
        attendee(LEAH),
        attendee(AMIR),
        attendee("auditor@fabrikam.com")
    ]);
    body["singleValueExtendedProperties"] = json!([{"id": PROPERTY, "value": "41"}]);
    body["transactionId"] = json!("7e1f4a52-9c1b-4d36-8f0e-2b5a6c7d8e9f");
    body
}

async fn events(h: &Harness, mailbox: &str) -> Vec<Value> {
    let reply = h
        .get(&format!(
            "/users/{mailbox}/events?$expand=singleValueExtendedProperties"
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["value"].as_array().unwrap().clone()
}

async fn only_event(h: &Harness, mailbox: &str) -> Value {
    let listed = events(h, mailbox).await;
    assert_eq!(listed.len(), 1, "{mailbox}: {listed:#?}");
    listed[0].clone()
}

fn kinds(h: &Harness) -> Vec<(String, String)> {
    h.sim
        .state()
        .invitations
        .iter()
        .map(|i| (i.mailbox.clone(), i.kind.clone()))
        .collect()
}

#[tokio::test]
async fn each_seeded_attendee_gets_its_own_copy_of_the_organizers_meeting() {
    let h = Harness::with_mailboxes(&[SCHEDULER, LEAH, AMIR]).await;
    let created = h
        .post(&format!("/users/{SCHEDULER}/events"), &meeting())
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["isOrganizer"], true);
    let uid = created.body["iCalUId"].as_str().unwrap();

    for mailbox in [LEAH, AMIR] {
        let copy = only_event(&h, mailbox).await;
        assert_ne!(copy["id"], created.body["id"]);
        assert_eq!(copy["iCalUId"], uid);
        assert_eq!(copy["isOrganizer"], false);
        assert_eq!(copy["organizer"]["emailAddress"]["address"], SCHEDULER);
        assert_eq!(copy["responseStatus"]["response"], "notResponded");
        assert_eq!(copy["subject"], "Server room audit");
        assert_eq!(copy["attendees"].as_array().unwrap().len(), 3);
        assert_eq!(
            copy["singleValueExtendedProperties"],
            json!([]),
            "extended properties stay with the organizer"
        );
        assert!(copy.get("transactionId").is_none());
        // The copy is found by the meeting's iCalUId, as a client looks for it.
        let url = reqwest::Url::parse_with_params(
            &h.url(&format!("/users/{mailbox}/events")),
            &[("$filter", format!("iCalUId eq '{uid}'"))],
        )
        .unwrap();
        let found = h.get(url.as_str()).await;
        assert_eq!(found.body["value"][0]["id"], copy["id"]);
    }
    let organizers = only_event(&h, SCHEDULER).await;
    assert_eq!(
        organizers["singleValueExtendedProperties"][0]["value"],
        "41"
    );
    // The invitations come from the organizer, to everyone invited.
    let invitations = h.sim.state().invitations;
    assert_eq!(invitations.len(), 1);
    assert_eq!(invitations[0].mailbox, SCHEDULER);
    assert_eq!(invitations[0].kind, "request");
    assert_eq!(invitations[0].recipients.len(), 3);

    // A replayed create (same transactionId) delivers nothing new.
    let again = h
        .post(&format!("/users/{SCHEDULER}/events"), &meeting())
        .await;
    assert_eq!(again.body["id"], created.body["id"]);
    assert_eq!(events(&h, LEAH).await.len(), 1);
    assert_eq!(h.sim.state().invitations.len(), 1);
}

#[tokio::test]
async fn organizer_updates_overwrite_the_copies_and_an_attendee_edit_stays_local() {
    let h = Harness::with_mailboxes(&[SCHEDULER, LEAH, AMIR]).await;
    let created = h
        .post(&format!("/users/{SCHEDULER}/events"), &meeting())
        .await;
    let id = created.body["id"].as_str().unwrap().to_string();
    let before = only_event(&h, LEAH).await;

    let moved = h
        .patch(
            &format!("/users/{SCHEDULER}/events/{id}"),
            &json!({"subject": "Server room audit (moved)",
                    "body": {"contentType": "text", "content": "Bring the keys"},
                    "location": {"displayName": "B2"},
                    "start": {"dateTime": "2026-02-11T11:00:00", "timeZone": "UTC"},
                    "end": {"dateTime": "2026-02-11T12:00:00", "timeZone": "UTC"}}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    let copy = only_event(&h, LEAH).await;
    assert_eq!(copy["id"], before["id"], "the copy is updated in place");
    assert_ne!(copy["changeKey"], before["changeKey"]);
    assert_eq!(copy["subject"], "Server room audit (moved)");
    assert_eq!(copy["body"]["content"], "Bring the keys");
    assert_eq!(copy["location"]["displayName"], "B2");
    assert!(
        copy["start"]["dateTime"]
            .as_str()
            .unwrap()
            .starts_with("2026-02-11T11:00:00")
    );
    assert_eq!(copy["isOrganizer"], false);

    // Leah edits her copy: only her copy changes, and nothing is sent.
    let sent = h.sim.state().invitations.len();
    h.sim
        .act(
            serde_json::from_value::<GraphAction>(json!({"op": "update_event", "mailbox": LEAH,
                "id": copy["id"], "patch": {"subject": "Audit (Leah's note)"}}))
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(only_event(&h, LEAH).await["subject"], "Audit (Leah's note)");
    assert_eq!(
        only_event(&h, SCHEDULER).await["subject"],
        "Server room audit (moved)"
    );
    assert_eq!(
        only_event(&h, AMIR).await["subject"],
        "Server room audit (moved)"
    );
    assert_eq!(h.sim.state().invitations.len(), sent);

    // The organizer's next update overwrites it; Amir is uninvited.
    h.patch(
        &format!("/users/{SCHEDULER}/events/{id}"),
        &json!({"subject": "Audit, final", "attendees": [attendee(LEAH)]}),
    )
    .await;
    assert_eq!(only_event(&h, LEAH).await["subject"], "Audit, final");
    let amirs = only_event(&h, AMIR).await;
    assert_eq!(amirs["isCancelled"], true, "{amirs}");
    assert_eq!(amirs["subject"], "Server room audit (moved)");
}

#[tokio::test]
async fn deleting_the_meeting_cancels_the_copies_which_stay_until_their_owner_deletes_them() {
    let h = Harness::with_mailboxes(&[SCHEDULER, LEAH, AMIR]).await;
    let created = h
        .post(&format!("/users/{SCHEDULER}/events"), &meeting())
        .await;
    let id = created.body["id"].as_str().unwrap();
    assert_eq!(
        h.delete(&format!("/users/{SCHEDULER}/events/{id}"))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert!(events(&h, SCHEDULER).await.is_empty());
    let copy = only_event(&h, LEAH).await;
    assert_eq!(copy["isCancelled"], true);
    assert_eq!(only_event(&h, AMIR).await["isCancelled"], true);
    assert_eq!(
        kinds(&h),
        [
            (SCHEDULER.to_string(), "request".to_string()),
            (SCHEDULER.to_string(), "cancellation".to_string())
        ]
    );
    let copy_id = copy["id"].as_str().unwrap();
    assert_eq!(
        h.delete(&format!("/users/{LEAH}/events/{copy_id}"))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert!(events(&h, LEAH).await.is_empty());
    assert_eq!(kinds(&h).len(), 2, "an attendee's delete sends nothing");
}

/// Answers the validation handshake and forwards each notification.
async fn receive(
    State(tx): State<mpsc::UnboundedSender<Value>>,
    Query(query): Query<HashMap<String, String>>,
    body: String,
) -> Response {
    if let Some(token) = query.get("validationToken") {
        return ([(header::CONTENT_TYPE, "text/plain")], token.clone()).into_response();
    }
    let _ = tx.send(serde_json::from_str(&body).unwrap_or(Value::Null));
    AxumStatus::ACCEPTED.into_response()
}

/// The next notification's change type and event id.
async fn notified(rx: &mut mpsc::UnboundedReceiver<Value>) -> (String, String) {
    let body = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a notification arrives")
        .unwrap();
    let change = &body["value"][0];
    (
        change["changeType"].as_str().unwrap().to_string(),
        change["resourceData"]["id"].as_str().unwrap().to_string(),
    )
}

async fn delta_round(h: &Harness, url: &str) -> (Vec<Value>, String) {
    let reply = h.get(url).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(reply.body.get("@odata.nextLink").is_none(), "one page");
    (
        reply.body["value"].as_array().unwrap().clone(),
        reply.body["@odata.deltaLink"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn the_attendees_mailbox_sees_its_copy_change_in_delta_and_notifications() {
    let h = Harness::with_mailboxes(&[SCHEDULER, LEAH]).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = Router::new().route("/notify", post(receive)).with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/notify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let subscribed = h
        .post(
            "/subscriptions",
            &json!({"changeType": "created,updated,deleted", "notificationUrl": hook,
                    "resource": format!("/users/{LEAH}/events"), "clientState": "s3cret",
                    "expirationDateTime": (h.clock.now() + chrono::Duration::hours(1)).to_rfc3339()}),
        )
        .await;
    assert_eq!(
        subscribed.status,
        StatusCode::CREATED,
        "{}",
        subscribed.body
    );
    let (_, link) = delta_round(
        &h,
        &format!(
            "/users/{LEAH}/calendarView/delta?startDateTime=2026-02-01T00:00:00Z&endDateTime=2026-03-01T00:00:00Z"
        ),
    )
    .await;

    let created = h
        .post(&format!("/users/{SCHEDULER}/events"), &meeting())
        .await;
    let id = created.body["id"].as_str().unwrap();
    let (kind, copy_id) = notified(&mut rx).await;
    assert_eq!(kind, "created");
    let (items, link) = delta_round(&h, &link).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], copy_id.as_str());
    assert_eq!(items[0]["subject"], "Server room audit");

    h.patch(
        &format!("/users/{SCHEDULER}/events/{id}"),
        &json!({"subject": "Audit (moved)"}),
    )
    .await;
    assert_eq!(
        notified(&mut rx).await,
        ("updated".to_string(), copy_id.clone())
    );
    let (items, link) = delta_round(&h, &link).await;
    assert_eq!(items[0]["subject"], "Audit (moved)");

    h.delete(&format!("/users/{SCHEDULER}/events/{id}")).await;
    assert_eq!(
        notified(&mut rx).await,
        ("updated".to_string(), copy_id.clone())
    );
    let (items, _) = delta_round(&h, &link).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["isCancelled"], true);
    assert!(items[0].get("@removed").is_none(), "the copy stays");
}
