//! Users, mailbox states, auth, and event CRUD against the Graph simulator.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod sim_graph_support;

use halosync::sim::graph::{GraphAction, GraphSeed};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sim_graph_support::{Harness, event};

const ADELE: &str = "adele@contoso.com";
const BOB: &str = "bob@contoso.com";

#[tokio::test]
async fn users_resolve_by_upn_and_id_and_unknown_users_get_graph_errors() {
    let h = Harness::with_mailboxes(&[ADELE]).await;
    let user = h.get(&format!("/users/{ADELE}")).await;
    assert_eq!(user.status, StatusCode::OK);
    assert_eq!(user.body["userPrincipalName"], ADELE);
    let by_id = h
        .get(&format!("/users/{}", user.body["id"].as_str().unwrap()))
        .await;
    assert_eq!(by_id.body["userPrincipalName"], ADELE);

    let me = h
        .call(Method::GET, "/me", &h.user_token(ADELE), &[], None)
        .await;
    assert_eq!(me.body["id"], user.body["id"]);

    let all = h.get("/users").await;
    assert_eq!(all.body["value"][0]["userPrincipalName"], ADELE);

    let missing = h.get("/users/nobody@contoso.com").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), "Request_ResourceNotFound");
    let outlook = h.get("/users/nobody@contoso.com/events").await;
    assert_eq!(outlook.code(), "ErrorInvalidUser");
    // Every error has Graph's shape and correlation ids.
    let inner = &outlook.body["error"]["innerError"];
    assert!(inner["request-id"].as_str().is_some_and(|r| !r.is_empty()));
    assert!(inner["date"].is_string());
    assert_eq!(outlook.header("request-id"), inner["request-id"].as_str());
}

#[tokio::test]
async fn client_request_id_is_echoed_in_header_and_error_body() {
    let h = Harness::with_mailboxes(&[ADELE]).await;
    let reply = h
        .get_with(
            "/users/ghost@x.com/events",
            &[("client-request-id", "abc-123")],
        )
        .await;
    assert_eq!(reply.header("client-request-id"), Some("abc-123"));
    assert_eq!(
        reply.body["error"]["innerError"]["client-request-id"],
        "abc-123"
    );
}

#[tokio::test]
async fn tokens_are_checked_expiry_audience_roles_and_delegation() {
    let h = Harness::with_mailboxes(&[ADELE, BOB]).await;
    let path = format!("/users/{ADELE}/events");
    let none = h.call(Method::GET, &path, "", &[], None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.code(), "InvalidAuthenticationToken");

    let expired = h.token_with(|c| c.exp = c.iat - 1);
    let reply = h.call(Method::GET, &path, &expired, &[], None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.code(), "InvalidAuthenticationToken");

    let halo = h.token_with(|c| c.aud = "halo".into());
    let reply = h.call(Method::GET, &path, &halo, &[], None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    let no_role = h.token_with(|c| c.roles = vec!["User.Read.All".into()]);
    let reply = h.call(Method::GET, &path, &no_role, &[], None).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.code(), "ErrorAccessDenied");

    let read_only = h.token_with(|c| c.roles = vec!["Calendars.Read".into()]);
    let reply = h.call(Method::GET, &path, &read_only, &[], None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = event("x", "2026-02-10T09:00:00", "2026-02-10T10:00:00", "UTC");
    let reply = h
        .call(Method::POST, &path, &read_only, &[], Some(&body))
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    // Bob's delegated token may not read Adele's calendar: Exchange says the
    // folder is not there.
    let bob = h.user_token(BOB);
    let reply = h.call(Method::GET, &path, &bob, &[], None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.code(), "ErrorItemNotFound");
    let own = h.call(Method::GET, "/me/events", &bob, &[], None).await;
    assert_eq!(own.status, StatusCode::OK);

    let app_me = h.get("/me/events").await;
    assert_eq!(app_me.status, StatusCode::BAD_REQUEST);
    let app_me = h.get("/me").await;
    assert_eq!(app_me.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn each_mailbox_state_produces_its_real_error() {
    let h = Harness::start().await;
    let seed: GraphSeed = serde_json::from_value(json!({"mailboxes": [
        {"upn": "ok@contoso.com", "delegates": ["assistant@contoso.com"]},
        {"upn": "unlicensed@contoso.com", "state": "unlicensed"},
        {"upn": "denied@contoso.com", "state": "access_denied"},
        {"upn": "private@contoso.com", "state": "no_delegate", "delegates": ["assistant@contoso.com"]},
        {"upn": "assistant@contoso.com"},
    ]}))
    .unwrap();
    h.sim.seed(seed).unwrap();

    let unlicensed = h.get("/users/unlicensed@contoso.com/events").await;
    assert_eq!(unlicensed.status, StatusCode::NOT_FOUND);
    assert_eq!(unlicensed.code(), "MailboxNotEnabledForRESTAPI");
    // The user itself still exists.
    assert_eq!(
        h.get("/users/unlicensed@contoso.com").await.status,
        StatusCode::OK
    );

    let denied = h.get("/users/denied@contoso.com/calendarView?startDateTime=2026-01-01T00:00:00Z&endDateTime=2026-01-02T00:00:00Z").await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.code(), "ErrorAccessDenied");

    let assistant = h.user_token("assistant@contoso.com");
    let delegated = h
        .call(
            Method::GET,
            "/users/ok@contoso.com/events",
            &assistant,
            &[],
            None,
        )
        .await;
    assert_eq!(delegated.status, StatusCode::OK, "listed delegate");
    let refused = h
        .call(
            Method::GET,
            "/users/private@contoso.com/events",
            &assistant,
            &[],
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    assert_eq!(refused.code(), "ErrorItemNotFound");
    assert_eq!(
        refused.body["error"]["message"],
        "The specified object was not found in the store."
    );
    // The app itself still reaches the no_delegate mailbox.
    assert_eq!(
        h.get("/users/private@contoso.com/events").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn create_get_patch_delete_with_etags_and_if_match() {
    let h = Harness::with_mailboxes(&[ADELE]).await;
    let mut body = event(
        "Standup",
        "2026-02-10T09:00:00",
        "2026-02-10T09:15:00",
        "Europe/London",
    );
    body["sensitivity"] = json!("Private");
    body["location"] = json!({"displayName": "Room 1"});
    let created = h.post(&format!("/users/{ADELE}/events"), &body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let e = &created.body;
    let id = e["id"].as_str().unwrap().to_string();
    assert_eq!(e["sensitivity"], "private");
    assert_eq!(e["type"], "singleInstance");
    assert_eq!(e["location"]["displayName"], "Room 1");
    assert_eq!(e["originalStartTimeZone"], "Europe/London");
    assert_eq!(e["start"]["timeZone"], "UTC");
    assert_eq!(e["start"]["dateTime"], "2026-02-10T09:00:00.0000000");
    assert!(
        e["iCalUId"]
            .as_str()
            .is_some_and(|u| u.starts_with("040000008200E000"))
    );
    assert!(e["createdDateTime"].as_str().is_some());
    let etag = e["@odata.etag"].as_str().unwrap().to_string();
    assert_eq!(etag, format!("W/\"{}\"", e["changeKey"].as_str().unwrap()));

    let fetched = h.get(&format!("/users/{ADELE}/calendar/events/{id}")).await;
    assert_eq!(fetched.body["subject"], "Standup");

    let path = format!("/users/{ADELE}/events/{id}");
    h.clock.advance(chrono::Duration::minutes(5));
    let patched = h
        .call(
            Method::PATCH,
            &path,
            &h.app_token(),
            &[("If-Match", &etag)],
            Some(&json!({"subject": "Standup (moved)"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["subject"], "Standup (moved)");
    assert_ne!(patched.body["@odata.etag"], etag.as_str());
    assert_ne!(patched.body["changeKey"], e["changeKey"]);
    assert_eq!(
        patched.body["location"]["displayName"], "Room 1",
        "untouched"
    );
    assert_eq!(patched.body["createdDateTime"], e["createdDateTime"]);
    assert!(patched.body["lastModifiedDateTime"].as_str() > e["lastModifiedDateTime"].as_str());

    // The old etag is now stale.
    let stale = h
        .call(
            Method::PATCH,
            &path,
            &h.app_token(),
            &[("If-Match", &etag)],
            Some(&json!({"subject": "lost update"})),
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(stale.code(), "ErrorIrresolvableConflict");
    let stale_delete = h
        .call(
            Method::DELETE,
            &path,
            &h.app_token(),
            &[("If-Match", &etag)],
            None,
        )
        .await;
    assert_eq!(stale_delete.status, StatusCode::PRECONDITION_FAILED);

    assert_eq!(h.delete(&path).await.status, StatusCode::NO_CONTENT);
    let gone = h.get(&path).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.code(), "ErrorItemNotFound");
}

#[tokio::test]
async fn a_repeated_transaction_id_returns_the_first_event() {
    let h = Harness::with_mailboxes(&[ADELE]).await;
    let body: Value = serde_json::from_str(include_str!(
        "../../shared/fixtures/graph/examples/event-create-request-timezone-transactionId.json"
    ))
    .unwrap();
    let first = h.post(&format!("/users/{ADELE}/events"), &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let again = h.post(&format!("/users/{ADELE}/events"), &body).await;
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(
        again.body["transactionId"],
        "7E163156-7762-4BEB-A1C6-729EA81755A7"
    );
    let list = h.get(&format!("/users/{ADELE}/events")).await;
    assert_eq!(list.body["value"].as_array().unwrap().len(), 1);
    // The Windows zone was understood: 12:00 PDT is 19:00 UTC.
    assert_eq!(
        first.body["start"]["dateTime"],
        "2017-04-15T19:00:00.0000000"
    );
    assert_eq!(first.body["body"]["contentType"], "html");
}

#[tokio::test]
async fn outlook_timezone_preference_converts_start_and_end() {
    let h = Harness::with_mailboxes(&[ADELE]).await;
    let created = h
        .post(
            &format!("/users/{ADELE}/events"),
            &event("x", "2026-07-01T16:00:00", "2026-07-01T17:00:00", "UTC"),
        )
        .await;
    let id = created.body["id"].as_str().unwrap();
    let pacific = h
        .get_with(
            &format!("/users/{ADELE}/events/{id}"),
            &[("Prefer", "outlook.timezone=\"Pacific Standard Time\"")],
        )
        .await;
    assert_eq!(
        pacific.body["start"]["dateTime"],
        "2026-07-01T09:00:00.0000000"
    );
    assert_eq!(pacific.body["start"]["timeZone"], "Pacific Standard Time");
    assert_eq!(
        pacific.body["end"]["dateTime"],
        "2026-07-01T10:00:00.0000000"
    );
    assert!(
        pacific
            .header("preference-applied")
            .is_some_and(|p| p.contains("outlook.timezone"))
    );
}

#[tokio::test]
async fn immutable_ids_survive_a_move_between_calendars_and_rest_ids_do_not() {
    let h = Harness::with_mailboxes(&[ADELE]).await;
    let prefer = [("Prefer", "IdType=\"ImmutableId\"")];
    let created = h
        .call(
            Method::POST,
            &format!("/users/{ADELE}/events"),
            &h.app_token(),
            &prefer,
            Some(&event(
                "x",
                "2026-03-01T10:00:00",
                "2026-03-01T11:00:00",
                "UTC",
            )),
        )
        .await;
    let immutable = created.body["id"].as_str().unwrap().to_string();
    let rest = h.get(&format!("/users/{ADELE}/events")).await.body["value"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(rest, immutable);

    let translated = h
        .post(
            &format!("/users/{ADELE}/translateExchangeIds"),
            &json!({"inputIds": [rest], "sourceIdType": "restId", "targetIdType": "restImmutableEntryId"}),
        )
        .await;
    assert_eq!(translated.body["value"][0]["targetId"], immutable.as_str());

    let moved = h
        .sim
        .act(
            serde_json::from_value::<GraphAction>(json!({
                "op": "move_event", "mailbox": ADELE, "id": rest, "calendar": "Other Calendar"
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    assert_ne!(moved["id"], rest.as_str());
    assert_eq!(moved["immutable_id"], immutable.as_str());
    let old = h.get(&format!("/users/{ADELE}/events/{rest}")).await;
    assert_eq!(
        old.status,
        StatusCode::NOT_FOUND,
        "a REST id dies with the move"
    );
    let still = h
        .get_with(&format!("/users/{ADELE}/events/{immutable}"), &prefer)
        .await;
    assert_eq!(still.status, StatusCode::OK);
    assert_eq!(still.body["id"], immutable.as_str());
    // The default calendar no longer lists it; the other calendar does.
    let default = h.get(&format!("/users/{ADELE}/events")).await;
    assert_eq!(default.body["value"].as_array().unwrap().len(), 0);
    let calendars = h.get(&format!("/users/{ADELE}/calendars")).await;
    let other = calendars.body["value"][1]["id"].as_str().unwrap();
    let listed = h
        .get(&format!("/users/{ADELE}/calendars/{other}/events"))
        .await;
    assert_eq!(listed.body["value"][0]["id"], moved["id"]);
}

#[tokio::test]
async fn teams_meetings_get_a_join_url_and_attendees_get_invitations() {
    let h = Harness::with_mailboxes(&[ADELE]).await;
    let mut body = event(
        "Review",
        "2026-02-11T14:00:00",
        "2026-02-11T15:00:00",
        "UTC",
    );
    body["isOnlineMeeting"] = json!(true);
    body["onlineMeetingProvider"] = json!("teamsForBusiness");
    body["attendees"] = json!([{"emailAddress": {"address": "agent@contoso.com", "name": "Agent"}, "type": "required"}]);
    let created = h.post(&format!("/users/{ADELE}/events"), &body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert!(
        created.body["onlineMeeting"]["joinUrl"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://teams.microsoft.com/l/meetup-join/"))
    );
    assert_eq!(created.body["attendees"][0]["status"]["response"], "none");
    let id = created.body["id"].as_str().unwrap();
    h.patch(
        &format!("/users/{ADELE}/events/{id}"),
        &json!({"subject": "Review v2"}),
    )
    .await;
    h.delete(&format!("/users/{ADELE}/events/{id}")).await;
    let kinds: Vec<String> = h
        .sim
        .state()
        .invitations
        .iter()
        .map(|i| {
            assert_eq!(i.recipients, ["agent@contoso.com"]);
            i.kind.clone()
        })
        .collect();
    assert_eq!(kinds, ["request", "update", "cancellation"]);
}

#[tokio::test]
async fn extended_properties_are_stored_expanded_and_filterable() {
    let h = Harness::with_mailboxes(&[ADELE]).await;
    let prop = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name HaloApptId";
    for (subject, value) in [("a", "101"), ("b", "202")] {
        let mut body = event(subject, "2026-02-12T09:00:00", "2026-02-12T10:00:00", "UTC");
        body["singleValueExtendedProperties"] = json!([{"id": prop, "value": value}]);
        assert_eq!(
            h.post(&format!("/users/{ADELE}/events"), &body)
                .await
                .status,
            StatusCode::CREATED
        );
    }
    let filter =
        format!("singleValueExtendedProperties/Any(ep: ep/id eq '{prop}' and ep/value eq '202')");
    let url = reqwest::Url::parse_with_params(
        &h.url(&format!("/users/{ADELE}/events")),
        &[
            ("$filter", filter.as_str()),
            (
                "$expand",
                &format!("singleValueExtendedProperties($filter=id eq '{prop}')"),
            ),
            ("$select", "subject"),
        ],
    )
    .unwrap();
    let found = h.get(url.as_str()).await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.body);
    let value = found.body["value"].as_array().unwrap();
    assert_eq!(value.len(), 1);
    assert_eq!(value[0]["subject"], "b");
    assert_eq!(value[0]["singleValueExtendedProperties"][0]["value"], "202");
    assert!(value[0].get("start").is_none(), "$select trims the rest");
    // Without $expand the property stays hidden, as in Graph.
    let plain = h.get(&format!("/users/{ADELE}/events")).await;
    assert!(
        plain.body["value"][0]
            .get("singleValueExtendedProperties")
            .is_none()
    );
}

#[tokio::test]
async fn lists_page_with_top_and_next_link() {
    let h = Harness::with_mailboxes(&[ADELE]).await;
    for i in 0..5 {
        h.post(
            &format!("/users/{ADELE}/events"),
            &event(
                &format!("e{i}"),
                "2026-02-12T09:00:00",
                "2026-02-12T10:00:00",
                "UTC",
            ),
        )
        .await;
    }
    let first = h.get(&format!("/users/{ADELE}/events?$top=3")).await;
    assert_eq!(first.body["value"].as_array().unwrap().len(), 3);
    let next = first.body["@odata.nextLink"].as_str().unwrap();
    assert!(next.starts_with(&h.base), "{next}");
    let second = h.get(next).await;
    assert_eq!(second.body["value"].as_array().unwrap().len(), 2);
    assert!(second.body.get("@odata.nextLink").is_none());
}

#[tokio::test]
async fn bad_input_gets_graph_errors_not_panics() {
    let h = Harness::with_mailboxes(&[ADELE]).await;
    let path = format!("/users/{ADELE}/events");
    let cases = [
        (
            json!({"subject": "x", "madeUpProperty": 1}),
            "RequestBodyRead",
        ),
        (json!({"subject": 5}), "RequestBodyRead"),
        (
            json!({"subject": "x", "sensitivity": "secret"}),
            "RequestBodyRead",
        ),
        (json!({"subject": "x"}), "ErrorInvalidRequest"),
        (
            event("x", "yesterday", "2026-01-01T00:00:00", "UTC"),
            "ErrorInvalidRequest",
        ),
        (
            event("x", "2026-01-01T10:00:00", "2026-01-01T09:00:00", "UTC"),
            "ErrorInvalidRequest",
        ),
        (
            event(
                "x",
                "2026-01-01T10:00:00",
                "2026-01-01T11:00:00",
                "Mars/Olympus",
            ),
            "TimeZoneNotSupportedException",
        ),
        (json!([1, 2]), "BadRequest"),
        (
            json!({"subject": "x", "isAllDay": true, "start": {"dateTime": "2026-01-01T09:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-01-02T00:00:00", "timeZone": "UTC"}}),
            "ErrorInvalidRequest",
        ),
    ];
    for (body, code) in cases {
        let reply = h.post(&path, &body).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.body
        );
        assert_eq!(reply.code(), code, "{body}");
    }
    let unknown = h
        .post(&path, &json!({"subject": "x", "madeUpProperty": 1}))
        .await;
    assert!(
        unknown.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("madeUpProperty")
    );
    let raw = h
        .client
        .post(h.url(&path))
        .bearer_auth(h.app_token())
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
    let malformed_id = h.get(&format!("{path}/not-an-id")).await;
    assert_eq!(malformed_id.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed_id.code(), "ErrorInvalidIdMalformed");
    let unknown_segment = h.get("/users/x/whatever").await;
    assert_eq!(unknown_segment.status, StatusCode::BAD_REQUEST);
    assert_eq!(h.sim.state().events[ADELE].len(), 0, "nothing was stored");
}

#[tokio::test]
async fn requests_are_counted_by_route_template() {
    let h = Harness::with_mailboxes(&[ADELE, BOB]).await;
    h.get(&format!("/users/{ADELE}/events")).await;
    h.get(&format!("/users/{BOB}/events")).await;
    h.get(&format!("/users/{BOB}")).await;
    let state = h.sim.state();
    assert_eq!(state.requests, 3);
    assert_eq!(state.by_route["GET /v1.0/users/{u}/events"], 2);
    assert_eq!(state.by_route["GET /v1.0/users/{u}"], 1);
}

#[tokio::test]
async fn the_control_api_seeds_acts_and_refuses_bad_requests_clearly() {
    let h = Harness::start().await;
    let seed: GraphSeed = serde_json::from_value(json!({
        "mailboxes": [{"upn": ADELE, "display_name": "Adele Vance"}],
        "events": {ADELE: [event("seeded", "2026-02-10T09:00:00", "2026-02-10T10:00:00", "UTC")]}
    }))
    .unwrap();
    let ids = h.sim.seed(seed).unwrap();
    let id = ids["events"][ADELE][0]["id"].as_str().unwrap().to_string();
    assert!(ids["events"][ADELE][0]["immutable_id"].is_string());
    assert!(ids["mailboxes"][ADELE].is_string());
    assert_eq!(
        h.sim.state().events[ADELE][0].id.as_deref(),
        Some(id.as_str())
    );
    assert_eq!(
        h.sim.state().events[ADELE][0]
            .organizer
            .as_ref()
            .unwrap()
            .email_address
            .as_ref()
            .unwrap()
            .name
            .as_deref(),
        Some("Adele Vance")
    );

    let update: GraphAction = serde_json::from_value(
        json!({"op": "update_event", "mailbox": ADELE, "id": id, "patch": {"subject": "renamed"}}),
    )
    .unwrap();
    assert_eq!(
        h.sim.act(update).await.unwrap()["event"]["subject"],
        "renamed"
    );
    let delete: GraphAction =
        serde_json::from_value(json!({"op": "delete_event", "mailbox": ADELE, "id": id})).unwrap();
    h.sim.act(delete).await.unwrap();
    assert!(h.sim.state().events[ADELE].is_empty());

    let again: GraphAction =
        serde_json::from_value(json!({"op": "delete_event", "mailbox": ADELE, "id": id})).unwrap();
    let error = h.sim.act(again).await.unwrap_err().to_string();
    assert!(error.contains("ErrorItemNotFound"), "{error}");
    let nobody: GraphAction =
        serde_json::from_value(json!({"op": "delete_event", "mailbox": "x@y.z", "id": id}))
            .unwrap();
    assert!(
        h.sim
            .act(nobody)
            .await
            .unwrap_err()
            .to_string()
            .contains("x@y.z")
    );
    let duplicate: GraphSeed =
        serde_json::from_value(json!({"mailboxes": [{"upn": ADELE.to_uppercase()}]})).unwrap();
    assert!(h.sim.seed(duplicate).is_err());
    let unknown_mailbox: GraphSeed =
        serde_json::from_value(json!({"events": {"x@y.z": []}})).unwrap();
    assert!(
        h.sim
            .seed(unknown_mailbox)
            .unwrap_err()
            .to_string()
            .contains("x@y.z")
    );
    assert!(
        serde_json::from_value::<GraphSeed>(json!({"mailbox": []})).is_err(),
        "unknown keys are refused"
    );
    assert!(
        serde_json::from_value::<GraphAction>(json!({"op": "explode", "mailbox": ADELE})).is_err()
    );
    assert!(
        serde_json::from_value::<GraphSeed>(
            json!({"mailboxes": [{"upn": "a@b.c", "state": "haunted"}]})
        )
        .is_err()
    );

    h.sim.reset();
    assert!(h.sim.state().events.is_empty());
    assert_eq!(h.sim.state().requests, 0);
}
