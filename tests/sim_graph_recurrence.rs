//! calendarView and instances: recurrence expansion, DST, exceptions and
//! cancelled occurrences.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod sim_graph_support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sim_graph_support::Harness;

const ADELE: &str = "adele@contoso.com";

fn weekly_london(count: i32) -> Value {
    json!({
        "subject": "Weekly sync",
        "start": {"dateTime": "2026-03-16T09:00:00", "timeZone": "Europe/London"},
        "end": {"dateTime": "2026-03-16T09:30:00", "timeZone": "Europe/London"},
        "recurrence": {
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"], "firstDayOfWeek": "monday"},
            "range": {"type": "numbered", "startDate": "2026-03-16", "numberOfOccurrences": count}
        }
    })
}

fn starts(reply: &Value) -> Vec<String> {
    reply["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["start"]["dateTime"].as_str().unwrap().to_string())
        .collect()
}

const MARCH_APRIL: &str =
    "calendarView?startDateTime=2026-03-01T00:00:00Z&endDateTime=2026-05-01T00:00:00Z";

#[tokio::test]
async fn a_london_weekly_meeting_keeps_its_local_time_across_the_dst_change() {
    let h = Harness::with_mailboxes(&[ADELE]).await;
    let master = h
        .post(&format!("/users/{ADELE}/events"), &weekly_london(4))
        .await;
    assert_eq!(master.status, StatusCode::CREATED, "{}", master.body);
    assert_eq!(master.body["type"], "seriesMaster");

    let utc = h.get(&format!("/users/{ADELE}/{MARCH_APRIL}")).await;
    assert_eq!(
        starts(&utc.body),
        [
            "2026-03-16T09:00:00.0000000",
            "2026-03-23T09:00:00.0000000",
            "2026-03-30T08:00:00.0000000", // BST began on 29 March
            "2026-04-06T08:00:00.0000000",
        ]
    );
    let local = h
        .get_with(
            &format!("/users/{ADELE}/{MARCH_APRIL}"),
            &[("Prefer", "outlook.timezone=\"GMT Standard Time\"")],
        )
        .await;
    assert!(
        starts(&local.body)
            .iter()
            .all(|s| s.ends_with("T09:00:00.0000000"))
    );
    for occurrence in local.body["value"].as_array().unwrap() {
        assert_eq!(occurrence["type"], "occurrence");
        assert_eq!(occurrence["seriesMasterId"], master.body["id"]);
        assert!(occurrence.get("recurrence").is_none_or(Value::is_null));
    }
}

#[tokio::test]
async fn occurrence_ids_are_stable_and_edits_and_cancellations_stick() {
    let h = Harness::with_mailboxes(&[ADELE]).await;
    let master = h
        .post(&format!("/users/{ADELE}/events"), &weekly_london(4))
        .await;
    let master_id = master.body["id"].as_str().unwrap().to_string();
    let view = format!("/users/{ADELE}/{MARCH_APRIL}");
    let first = h.get(&view).await;
    let again = h.get(&view).await;
    let ids = |r: &Value| -> Vec<String> {
        r["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(&first.body),
        ids(&again.body),
        "occurrence ids are stable"
    );
    let occurrence_ids = ids(&first.body);

    // Edit the second occurrence: it becomes an exception at its new time.
    let edited = h
        .patch(
            &format!("/users/{ADELE}/events/{}", occurrence_ids[1]),
            &json!({"subject": "Moved sync", "start": {"dateTime": "2026-03-24T10:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-03-24T10:30:00", "timeZone": "UTC"}}),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    assert_eq!(edited.body["type"], "exception");
    assert_eq!(edited.body["id"], occurrence_ids[1].as_str());

    // Moving it onto the next occurrence is refused.
    let crossing = h
        .patch(
            &format!("/users/{ADELE}/events/{}", occurrence_ids[1]),
            &json!({"start": {"dateTime": "2026-03-30T09:00:00", "timeZone": "Europe/London"}, "end": {"dateTime": "2026-03-30T09:30:00", "timeZone": "Europe/London"}}),
        )
        .await;
    assert_eq!(crossing.status, StatusCode::BAD_REQUEST);
    assert_eq!(crossing.code(), "ErrorOccurrenceCrossingBoundary");

    // Cancel the third.
    assert_eq!(
        h.delete(&format!("/users/{ADELE}/events/{}", occurrence_ids[2]))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let after = h.get(&view).await;
    let subjects: Vec<&str> = after.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["Weekly sync", "Moved sync", "Weekly sync"]);
    assert_eq!(after.body["value"][1]["type"], "exception");
    assert_eq!(
        after.body["value"][1]["start"]["dateTime"],
        "2026-03-24T10:00:00.0000000"
    );
    let cancelled = h
        .get(&format!("/users/{ADELE}/events/{}", occurrence_ids[2]))
        .await;
    assert_eq!(cancelled.status, StatusCode::NOT_FOUND);

    let instances = h
        .get(&format!(
            "/users/{ADELE}/events/{master_id}/instances?startDateTime=2026-03-01T00:00:00Z&endDateTime=2026-05-01T00:00:00Z"
        ))
        .await;
    assert_eq!(ids(&instances.body), ids(&after.body));
    // The list endpoint shows only the master.
    let list = h.get(&format!("/users/{ADELE}/events")).await;
    assert_eq!(list.body["value"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn monthly_yearly_and_daily_patterns_expand_through_the_api() {
    let h = Harness::with_mailboxes(&[ADELE]).await;
    let series = [
        (
            json!({"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["tuesday"], "index": "second"}),
            "2026-01-13",
            json!({"type": "endDate", "startDate": "2026-01-13", "endDate": "2026-04-30"}),
            4,
        ),
        (
            json!({"type": "absoluteMonthly", "interval": 2, "dayOfMonth": 15}),
            "2026-01-15",
            json!({"type": "noEnd", "startDate": "2026-01-15"}),
            3,
        ),
        (
            json!({"type": "absoluteYearly", "interval": 1, "month": 3, "dayOfMonth": 1}),
            "2026-03-01",
            json!({"type": "noEnd", "startDate": "2026-03-01"}),
            1,
        ),
        (
            json!({"type": "relativeYearly", "interval": 1, "month": 2, "daysOfWeek": ["monday"], "index": "last"}),
            "2026-02-23",
            json!({"type": "numbered", "startDate": "2026-02-23", "numberOfOccurrences": 5}),
            1,
        ),
        (
            json!({"type": "daily", "interval": 10}),
            "2026-01-01",
            json!({"type": "numbered", "startDate": "2026-01-01", "numberOfOccurrences": 5}),
            5,
        ),
    ];
    for (pattern, date, range, expected) in series {
        h.sim.reset();
        let seed = serde_json::from_value(json!({"mailboxes": [{"upn": ADELE}]})).unwrap();
        h.sim.seed(seed).unwrap();
        let body = json!({
            "subject": "series",
            "start": {"dateTime": format!("{date}T12:00:00"), "timeZone": "UTC"},
            "end": {"dateTime": format!("{date}T13:00:00"), "timeZone": "UTC"},
            "recurrence": {"pattern": pattern, "range": range},
        });
        let created = h.post(&format!("/users/{ADELE}/events"), &body).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let view = h
            .get(&format!("/users/{ADELE}/calendarView?startDateTime=2026-01-01T00:00:00Z&endDateTime=2026-07-01T00:00:00Z&$top=50"))
            .await;
        assert_eq!(
            view.body["value"].as_array().unwrap().len(),
            expected,
            "{pattern}: {}",
            view.body
        );
    }
}

#[tokio::test]
async fn an_invalid_recurrence_is_refused() {
    let h = Harness::with_mailboxes(&[ADELE]).await;
    let mut body = weekly_london(3);
    body["recurrence"]["range"]["startDate"] = json!("2026-03-17");
    let reply = h.post(&format!("/users/{ADELE}/events"), &body).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let mut body = weekly_london(3);
    body["recurrence"]["pattern"]["interval"] = json!(0);
    let reply = h
        .call(
            Method::POST,
            &format!("/users/{ADELE}/events"),
            &h.app_token(),
            &[],
            Some(&body),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.code(), "ErrorPropertyValidationFailure");
    let missing_window = h.get(&format!("/users/{ADELE}/calendarView")).await;
    assert_eq!(missing_window.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing_window.code(), "ErrorInvalidParameter");
}

#[tokio::test]
async fn an_all_day_series_stays_at_local_midnight_and_its_summer_occurrences_can_be_edited() {
    let h = Harness::with_mailboxes(&[ADELE]).await;
    let body = json!({
        "subject": "Holiday rota", "isAllDay": true,
        "start": {"dateTime": "2026-03-23T00:00:00", "timeZone": "Europe/London"},
        "end": {"dateTime": "2026-03-24T00:00:00", "timeZone": "Europe/London"},
        "recurrence": {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
                       "range": {"type": "numbered", "startDate": "2026-03-23", "numberOfOccurrences": 2}}
    });
    assert_eq!(
        h.post(&format!("/users/{ADELE}/events"), &body)
            .await
            .status,
        StatusCode::CREATED
    );
    let view = h
        .get_with(
            &format!("/users/{ADELE}/{MARCH_APRIL}"),
            &[("Prefer", "outlook.timezone=\"Europe/London\"")],
        )
        .await;
    assert_eq!(
        starts(&view.body),
        ["2026-03-23T00:00:00.0000000", "2026-03-30T00:00:00.0000000"]
    );
    let summer = view.body["value"][1]["id"].as_str().unwrap();
    let edited = h
        .patch(
            &format!("/users/{ADELE}/events/{summer}"),
            &json!({"subject": "Rota (swap)"}),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    assert_eq!(edited.body["isAllDay"], true);
}
