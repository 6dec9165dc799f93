//! Random bodies sent to POST and PATCH always get a Graph answer: a success
//! or a 4xx with Graph's error shape, never a 5xx or a dropped connection.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod sim_graph_support;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};
use sim_graph_support::{Harness, Reply, event};

const ADELE: &str = "adele@contoso.com";

/// Keys a client might plausibly send, plus noise.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "subject",
            "start",
            "end",
            "dateTime",
            "timeZone",
            "recurrence",
            "pattern",
            "range",
            "type",
            "interval",
            "daysOfWeek",
            "index",
            "dayOfMonth",
            "month",
            "startDate",
            "endDate",
            "numberOfOccurrences",
            "location",
            "displayName",
            "attendees",
            "emailAddress",
            "address",
            "sensitivity",
            "isOnlineMeeting",
            "onlineMeetingProvider",
            "body",
            "content",
            "contentType",
            "transactionId",
            "singleValueExtendedProperties",
            "id",
            "value",
            "isAllDay",
            "showAs",
            "categories",
        ])
        .prop_map(str::to_string),
        "[a-zA-Z@.]{1,12}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1.0e9f64..1.0e9).prop_map(|f| json!(f)),
        prop::sample::select(vec![
            "2026-02-10T09:00:00",
            "2026-02-10",
            "+262143-12-31T23:59:59",
            "-262143-01-01T00:00:00",
            "0000-01-01T00:00:00",
            "9999-12-31T23:59:59.9999999",
            "2026-03-29T01:30:00",
            "Pacific Standard Time",
            "Europe/London",
            "UTC",
            "Mars",
            "weekly",
            "daily",
            "relativeYearly",
            "absoluteMonthly",
            "noEnd",
            "numbered",
            "endDate",
            "monday",
            "last",
            "private",
            "teamsForBusiness",
            "HTML",
        ])
        .prop_map(|s| Value::String(s.to_string())),
        ".{0,16}".prop_map(Value::String),
    ]
}

fn body() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

const DATES: &[&str] = &[
    "2026-02-10T09:00:00",
    "2026-03-29T01:30:00",
    "2026-10-25T01:30:00",
    "0001-01-01T00:00:00",
    "9999-12-31T23:59:59",
    "2026-02-30T09:00:00",
];

/// Mostly ordinary start/end times, sometimes extreme or invalid ones.
fn date() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        3 => prop::sample::select(vec!["2026-02-10T09:00:00", "2026-02-10T10:30:00", "2026-02-17T09:00:00"]),
        1 => prop::sample::select(DATES.to_vec()),
    ]
}

/// A recurrence with plausible structure and arbitrary numbers.
fn recurrence(start_date: &'static str) -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["daily", "weekly", "absoluteMonthly", "relativeMonthly", "absoluteYearly", "relativeYearly"]),
        prop_oneof![3 => Just(1i32), 1 => -1i32..4],
        prop::sample::subsequence(vec!["sunday", "monday", "friday", "saturday"], 0..3),
        prop::sample::select(vec!["first", "second", "fourth", "last"]),
        -1i32..33,
        -1i32..14,
        prop::sample::select(vec!["endDate", "noEnd", "numbered"]),
        -1i32..6,
    )
        .prop_map(move |(kind, interval, days, index, day, month, range, count)| {
            json!({
                "pattern": {"type": kind, "interval": interval, "daysOfWeek": days, "index": index,
                            "dayOfMonth": day, "month": month},
                "range": {"type": range, "startDate": start_date, "endDate": "2026-06-30",
                          "numberOfOccurrences": count}
            })
        })
}

/// A valid event with a few properties replaced by random values.
fn mutated() -> impl Strategy<Value = Value> {
    (
        date(),
        date(),
        prop::sample::select(vec![
            "UTC",
            "Europe/London",
            "Pacific Standard Time",
            "UTC",
            "Nowhere",
        ]),
        prop::collection::btree_map(key(), body(), 0..2),
        prop::option::of(recurrence("2026-02-10")),
    )
        .prop_map(|(start, end, zone, overrides, recurrence)| {
            let mut value = event("m", start, end, zone);
            if let Some(r) = recurrence {
                value["recurrence"] = r;
            }
            for (k, v) in overrides {
                value[k] = v;
            }
            value
        })
}

fn graph_like(reply: &Reply) -> Result<(), TestCaseError> {
    let status = reply.status.as_u16();
    prop_assert!(status < 500, "server error {status}: {}", reply.body);
    if status >= 400 {
        prop_assert!(!reply.code().is_empty(), "no error code: {}", reply.body);
        prop_assert!(reply.body["error"]["message"].is_string());
        prop_assert!(reply.body["error"]["innerError"]["request-id"].is_string());
    }
    Ok(())
}

#[test]
fn random_bodies_to_post_and_patch_get_graph_answers() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let h = runtime.block_on(Harness::with_mailboxes(&[ADELE]));
    let series = json!({
        "subject": "s",
        "start": {"dateTime": "2026-02-09T09:00:00", "timeZone": "Europe/London"},
        "end": {"dateTime": "2026-02-09T10:00:00", "timeZone": "Europe/London"},
        "recurrence": {"pattern": {"type": "daily", "interval": 1}, "range": {"type": "noEnd", "startDate": "2026-02-09"}}
    });
    let single = event("x", "2026-02-10T09:00:00", "2026-02-10T10:00:00", "UTC");
    let (series_id, single_id) = runtime.block_on(async {
        let a = h.post(&format!("/users/{ADELE}/events"), &series).await;
        let b = h.post(&format!("/users/{ADELE}/events"), &single).await;
        (
            a.body["id"].as_str().unwrap().to_string(),
            b.body["id"].as_str().unwrap().to_string(),
        )
    });
    let mut runner = TestRunner::new(Config {
        cases: 128,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&prop_oneof![body(), mutated()], |value| {
            runtime.block_on(async {
                let created = h.post(&format!("/users/{ADELE}/events"), &value).await;
                graph_like(&created)?;
                for id in [&series_id, &single_id] {
                    let patched = h.patch(&format!("/users/{ADELE}/events/{id}"), &value).await;
                    graph_like(&patched)?;
                }
                let view = h
                    .get(&format!("/users/{ADELE}/calendarView?startDateTime=2026-01-01T00:00:00Z&endDateTime=2026-04-01T00:00:00Z&$top=5"))
                    .await;
                prop_assert_eq!(view.status.as_u16(), 200, "{}", view.body);
                let batch = h.post("/$batch", &value).await;
                graph_like(&batch)?;
                let subscription = h.post("/subscriptions", &value).await;
                graph_like(&subscription)?;
                Ok(())
            })
        })
        .unwrap();
}
