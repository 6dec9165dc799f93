//! The Graph client's operations against the simulator: delta paging,
//! typed errors from real payloads, `$batch` with throttled items,
//! subscriptions and their lifetime fallback, the Halo id property and id
//! translation.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

mod graph_client_support;

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use halosync::graph::model::{DateTimeTimeZone, Event, EventType};
use halosync::graph::{Access, BatchRequest, DeltaRound, GraphError, NewSubscription};
use secrecy::SecretString;
use serde_json::json;

use graph_client_support::*;

#[tokio::test]
async fn delta_pages_carry_changes_removals_and_full_occurrences_and_an_evicted_link_asks_for_resync()
 {
    let h = Harness::start().await;
    let now = h.now();
    let day = |n: i64| now + chrono::Duration::days(n);
    let seeded = h
        .control(
            "seed",
            json!({"events": {OK: [
                {"subject": "One", "start": at(day(1)), "end": at(day(1) + chrono::Duration::hours(1))},
                {"subject": "Two", "start": at(day(2)), "end": at(day(2) + chrono::Duration::hours(1))},
                {"subject": "Far away", "start": at(day(60)), "end": at(day(60) + chrono::Duration::hours(1))},
                {"subject": "Standup", "start": at(day(3)), "end": at(day(3) + chrono::Duration::minutes(15)),
                 "body": {"contentType": "text", "content": "daily"},
                 "recurrence": {"pattern": {"type": "daily", "interval": 1},
                                "range": {"type": "numbered", "startDate": day(3).format("%Y-%m-%d").to_string(),
                                          "numberOfOccurrences": 3}}}
            ]}}),
        )
        .await;
    let client = h.app_client();
    let window = window(&h);
    let mut pages = client
        .calendar_view_delta(OK, window, None, Some(2))
        .expect("start");
    let mut round = DeltaRound::default();
    let mut page_count = 0;
    while let Some(page) = pages.next_page().await.expect("page") {
        page_count += 1;
        assert!(page.changed.len() <= 4, "a small page: {page:?}");
        round.changed.extend(page.changed);
        if let Some(link) = page.delta_link {
            round.delta_link = link;
        }
    }
    assert!(page_count >= 2, "{page_count} page(s)");
    assert!(!round.delta_link.is_empty());
    let mut subjects: Vec<&str> = round
        .changed
        .iter()
        .filter(|e| e.event_type != Some(EventType::SeriesMaster))
        .filter_map(|e| e.subject.as_deref())
        .collect();
    subjects.sort_unstable();
    assert_eq!(
        subjects,
        ["One", "Standup", "Standup", "Standup", "Two"],
        "every occurrence read in full, nothing outside the window"
    );
    assert!(round.changed.iter().all(|e| !e.is_sparse()));
    let occurrence = round
        .changed
        .iter()
        .find(|e| e.event_type == Some(EventType::Occurrence))
        .expect("an occurrence");
    assert_eq!(
        occurrence.body.as_ref().map(|b| b.content.as_str()),
        Some("daily")
    );
    assert!(h.route_count("POST /v1.0/$batch").await >= 1);

    let one = seeded["graph"]["events"][OK][0]["immutable_id"]
        .as_str()
        .expect("id")
        .to_string();
    h.control(
        "act",
        json!({"op": "delete_event", "mailbox": OK, "id": one}),
    )
    .await;
    let next = client
        .calendar_view_delta(OK, window, Some(&round.delta_link), Some(2))
        .expect("from link")
        .collect()
        .await
        .expect("second round");
    assert_eq!(next.removed, [one]);
    assert!(next.changed.is_empty(), "{:?}", next.changed);

    h.control("faults", json!({"graph": {"evict_delta_tokens": OK}}))
        .await;
    let error = client
        .calendar_view_delta(OK, window, Some(&next.delta_link), None)
        .expect("from link")
        .collect()
        .await
        .expect_err("evicted");
    assert!(
        matches!(error, GraphError::ResyncRequired { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn each_mailbox_problem_arrives_as_its_typed_error_with_a_diagnosis() {
    let h = Harness::start().await;
    let app = h.app_client();
    let window = window(&h);

    let error = app
        .calendar_view("ghost@contoso.com", window)
        .await
        .unwrap_err();
    assert!(
        matches!(error, GraphError::MailboxNotEnabled { .. }),
        "{error}"
    );
    assert!(error.diagnosis(app.access()).unwrap().contains("licence"));

    let error = app
        .calendar_view("locked@contoso.com", window)
        .await
        .unwrap_err();
    assert!(matches!(error, GraphError::AccessDenied { .. }), "{error}");

    let error = app.user("nobody@contoso.com").await.unwrap_err();
    assert!(matches!(error, GraphError::UnknownUser { .. }), "{error}");
    assert!(error.to_string().contains("[request-id "), "{error}");

    let gone = app
        .create_event(OK, &new_event("Gone", h.now()), "t-gone")
        .await
        .unwrap()
        .id
        .unwrap();
    app.delete_event(OK, &gone, None).await.unwrap();
    let error = app.event(OK, &gone).await.unwrap_err();
    assert!(matches!(error, GraphError::ItemNotFound { .. }), "{error}");
    assert_eq!(
        error.diagnosis(app.access()),
        None,
        "for the app it just means gone"
    );

    let delegated = h.delegated_client().await;
    assert_eq!(delegated.access(), Access::Delegate);
    delegated
        .calendar_view(OK, window)
        .await
        .expect("a delegate of leah");
    let error = delegated
        .calendar_view("private@contoso.com", window)
        .await
        .unwrap_err();
    assert!(matches!(error, GraphError::ItemNotFound { .. }), "{error}");
    let diagnosis = error.diagnosis(delegated.access()).unwrap();
    assert!(
        diagnosis.contains("private@contoso.com")
            && diagnosis.contains("Full Access")
            && diagnosis.contains("up to an hour"),
        "{diagnosis}"
    );

    // Moving an occurrence onto the next one (a whole-hour series start).
    let soon = (h.now() + chrono::Duration::days(2)).timestamp();
    let start = DateTime::from_timestamp(soon - soon % 3600, 0).unwrap();
    let mut series = new_event("Series", start);
    series.recurrence = serde_json::from_value(json!({
        "pattern": {"type": "daily", "interval": 1},
        "range": {"type": "numbered", "startDate": start.format("%Y-%m-%d").to_string(), "numberOfOccurrences": 3}
    }))
    .unwrap();
    app.create_event(OK, &series, "t-series").await.unwrap();
    let mut occurrences: Vec<Event> = app
        .calendar_view(OK, window)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.subject.as_deref() == Some("Series"))
        .collect();
    occurrences.sort_by_key(|e| e.start_utc().unwrap());
    let moved = Event {
        start: Some(DateTimeTimeZone::utc(
            start + chrono::Duration::days(1) + chrono::Duration::hours(2),
        )),
        end: Some(DateTimeTimeZone::utc(
            start + chrono::Duration::days(1) + chrono::Duration::hours(3),
        )),
        ..Event::default()
    };
    let error = app
        .update_event(OK, occurrences[0].id.as_deref().unwrap(), &moved, None)
        .await
        .unwrap_err();
    assert!(
        matches!(error, GraphError::OccurrenceCrossingBoundary { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn batch_items_throttled_by_graph_are_retried_after_their_retry_after() {
    let h = Harness::start().await;
    let client = h.app_client();
    let created = client
        .create_event(
            OK,
            &new_event("Batched", h.now() + chrono::Duration::days(1)),
            "t-b",
        )
        .await
        .unwrap();
    let id = created.id.unwrap();
    // One request at a time per mailbox, held for 300 ms: the batch's items
    // arrive while another request holds the slot, and are refused with 429.
    h.control(
        "faults",
        json!({"graph": {"concurrency_limit": 1, "mailbox_hold_ms": 300}}),
    )
    .await;
    let holder = {
        let client = client.clone();
        let window = window(&h);
        tokio::spawn(async move { client.calendar_view(OK, window).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let path = format!("/users/{OK}/events/{id}");
    let requests: Vec<BatchRequest> = (0..3)
        .map(|n| BatchRequest::get(format!("r{n}"), path.clone()))
        .collect();
    let responses = client.batch(Some(OK), &requests).await.expect("batch");
    holder.await.unwrap().expect("the holder succeeded");
    assert_eq!(
        responses.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["r0", "r1", "r2"]
    );
    for response in responses {
        assert_eq!(response.status, 200, "{response:?}");
        let event: Event = response.into_result(OK).unwrap();
        assert_eq!(event.subject.as_deref(), Some("Batched"));
    }
    assert!(
        h.route_count("POST /v1.0/$batch").await >= 2,
        "the throttled items went in a second batch"
    );
}

async fn validation_echo(Query(query): Query<HashMap<String, String>>) -> Response {
    match query.get("validationToken") {
        Some(token) => (
            StatusCode::OK,
            [("content-type", "text/plain")],
            token.clone(),
        )
            .into_response(),
        None => StatusCode::ACCEPTED.into_response(),
    }
}

#[tokio::test]
async fn a_subscription_over_graphs_lifetime_falls_back_to_the_named_limit() {
    let h = Harness::start().await;
    h.control(
        "faults",
        json!({"graph": {"max_subscription_minutes": 4230}}),
    )
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let notify = format!("http://{}/notify", listener.local_addr().unwrap());
    let app = Router::new().fallback(validation_echo);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let client = h.app_client();
    let now = h.now();
    let subscription = client
        .create_subscription(&NewSubscription {
            resource: format!("/users/{OK}/events"),
            change_type: "created,updated,deleted".into(),
            notification_url: notify.clone(),
            lifecycle_notification_url: Some(notify),
            expiration: now + chrono::Duration::minutes(10_080),
            client_state: SecretString::from("state-9a1f"),
        })
        .await
        .expect("created with the named limit");
    let lifetime = subscription.expiration_date_time - now;
    assert!(
        lifetime <= chrono::Duration::minutes(4230) && lifetime > chrono::Duration::minutes(4200),
        "{lifetime}"
    );
    let renewed = client
        .renew_subscription(&subscription.id, h.now() + chrono::Duration::minutes(9000))
        .await
        .expect("renewed with the named limit");
    assert!(renewed.expiration_date_time - h.now() <= chrono::Duration::minutes(4230));
    client
        .reauthorize_subscription(&subscription.id)
        .await
        .expect("reauthorize");
    let listed = client.subscriptions().await.expect("list");
    assert_eq!(
        listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        [subscription.id.as_str()]
    );
    client
        .delete_subscription(&subscription.id)
        .await
        .expect("delete");
    assert!(client.subscriptions().await.expect("list").is_empty());
}

#[tokio::test]
async fn the_halo_id_property_is_written_and_found_again_and_ids_translate() {
    let h = Harness::start().await;
    let client = h.app_client();
    let mut event = new_event("Tagged", h.now() + chrono::Duration::days(4));
    event.set_halo_id(4242);
    let created = client.create_event(OK, &event, "t-4242").await.unwrap();
    let id = created.id.unwrap();
    assert_eq!(client.event(OK, &id).await.unwrap().halo_id(), Some(4242));
    let found = client.events_with_halo_id(OK, 4242).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id.as_deref(), Some(id.as_str()));
    assert!(
        client
            .events_with_halo_id(OK, 4243)
            .await
            .unwrap()
            .is_empty()
    );

    let seeded = h
        .control(
            "seed",
            json!({"events": {OK: [{"subject": "Old", "start": at(h.now()), "end": at(h.now())}]}}),
        )
        .await;
    let ids = &seeded["graph"]["events"][OK][0];
    let translated = client
        .translate_exchange_ids(OK, &[ids["id"].as_str().unwrap().to_string()])
        .await
        .unwrap();
    assert_eq!(translated.len(), 1);
    assert_eq!(
        translated[0].target_id.as_deref(),
        ids["immutable_id"].as_str()
    );
}

/// A Graph that answers every calendarView page with the same next link,
/// recording the `Prefer` header of each request.
async fn looping_graph(prefers: std::sync::Arc<std::sync::Mutex<Vec<String>>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/graph/", listener.local_addr().unwrap());
    let next = format!("{base}v1.0/users/{OK}/calendarView?$skiptoken=again");
    let app = Router::new().fallback(move |request: axum::extract::Request| {
        let prefers = prefers.clone();
        let next = next.clone();
        async move {
            let prefer = request
                .headers()
                .get("prefer")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            prefers.lock().unwrap().push(prefer);
            axum::Json(json!({"value": [], "@odata.nextLink": next})).into_response()
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

#[tokio::test]
async fn listings_ask_for_a_hundred_a_page_and_a_next_link_sent_twice_stops_the_listing() {
    let h = Harness::start().await;
    let prefers = std::sync::Arc::default();
    let graph = looping_graph(std::sync::Arc::clone(&prefers)).await;
    let client = h.app_client_at(&graph, h.clock());
    let listing = tokio::time::timeout(
        Duration::from_secs(10),
        client.calendar_view(OK, window(&h)),
    )
    .await
    .expect("the listing ends instead of looping");
    let error = listing.expect_err("a repeated next link is an error");
    assert!(matches!(error, GraphError::Decode { .. }), "{error:?}");
    assert!(error.to_string().contains("sent before"), "{error}");
    let prefers = prefers.lock().unwrap().clone();
    // The first page, then the link once: its repeat is never requested.
    assert_eq!(prefers.len(), 2, "{prefers:?}");
    assert!(
        prefers.iter().all(|p| p.contains("odata.maxpagesize=100")),
        "{prefers:?}"
    );
}

#[tokio::test]
async fn first_delta_pages_of_several_mailboxes_come_in_one_batch_and_carry_their_rounds_on() {
    let h = Harness::start().await;
    let now = h.now();
    for mailbox in [OK, ADMIN] {
        h.control(
            "seed",
            json!({"events": {mailbox: [
                {"subject": format!("Before {mailbox}"), "start": at(now + chrono::Duration::days(1)),
                 "end": at(now + chrono::Duration::days(1) + chrono::Duration::hours(1))}
            ]}}),
        )
        .await;
    }
    let client = h.app_client();
    let window = window(&h);
    let mut links = Vec::new();
    for mailbox in [OK, ADMIN] {
        let round = client
            .calendar_view_delta(mailbox, window, None, None)
            .expect("start")
            .collect()
            .await
            .expect("round");
        links.push((mailbox.to_string(), round.delta_link));
    }
    h.control(
        "seed",
        json!({"events": {ADMIN: [
            {"subject": "After", "start": at(now + chrono::Duration::days(2)),
             "end": at(now + chrono::Duration::days(2) + chrono::Duration::hours(1))}
        ]}}),
    )
    .await;
    // An unlicensed mailbox's item fails inside the batch.
    let ghost = links[0]
        .1
        .replace("leah%40contoso%2Ecom", "ghost%40contoso%2Ecom");
    assert_ne!(ghost, links[0].1);
    links.push(("ghost@contoso.com".into(), ghost));
    let batches = h.route_count("POST /v1.0/$batch").await;
    let deltas = h
        .route_count("GET /v1.0/users/{u}/calendarView/delta")
        .await;
    let pages = client.first_delta_pages(&links).await;
    assert_eq!(h.route_count("POST /v1.0/$batch").await, batches + 1);
    assert_eq!(
        h.route_count("GET /v1.0/users/{u}/calendarView/delta")
            .await,
        deltas
    );
    assert_eq!(
        h.route_count("GET /v1.0/users/{u}/calendarView/delta (in $batch)")
            .await,
        3
    );
    // The ghost's item failed: left out, to be asked for alone.
    let mut read: Vec<&String> = pages.keys().collect();
    read.sort();
    assert_eq!(read, [ADMIN, OK]);
    for (mailbox, link) in &links[..2] {
        let first = &pages[mailbox];
        assert_eq!(first.link(), link);
        let round = client
            .calendar_view_delta_from(mailbox, window, first)
            .collect()
            .await
            .expect("round from the page read ahead");
        let subjects: Vec<_> = round
            .changed
            .iter()
            .filter_map(|e| e.subject.clone())
            .collect();
        let expected: Vec<&str> = if mailbox == ADMIN {
            vec!["After"]
        } else {
            vec![]
        };
        assert_eq!(subjects, expected, "{mailbox}");
        assert!(!round.delta_link.is_empty(), "{mailbox}");
    }
}
