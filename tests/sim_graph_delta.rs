//! calendarView/delta: paging, later rounds, @removed, sparse occurrences,
//! replays and token eviction.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod sim_graph_support;

use std::collections::BTreeSet;

use halosync::sim::graph::GraphFaults;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sim_graph_support::{Harness, event};

const ADELE: &str = "adele@contoso.com";
const WINDOW: &str = "startDateTime=2026-02-01T00:00:00Z&endDateTime=2026-03-01T00:00:00Z";

/// Follows nextLinks to the end of a round: (pages, deltaLink).
async fn round(h: &Harness, first: &str, page_size: usize) -> (Vec<Vec<Value>>, String) {
    let prefer = format!("odata.maxpagesize={page_size}");
    let mut url = first.to_string();
    let mut pages = Vec::new();
    loop {
        let reply = h.get_with(&url, &[("Prefer", &prefer)]).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        pages.push(reply.body["value"].as_array().unwrap().clone());
        let next = reply.body.get("@odata.nextLink").and_then(Value::as_str);
        let delta = reply.body.get("@odata.deltaLink").and_then(Value::as_str);
        assert!(
            next.is_some() != delta.is_some(),
            "exactly one link per page"
        );
        match (next, delta) {
            (Some(next), None) => {
                assert!(
                    next.starts_with(&format!("{}/v1.0/users/", h.base)),
                    "{next}"
                );
                url = next.to_string();
            }
            (None, Some(delta)) => return (pages, delta.to_string()),
            _ => unreachable!(),
        }
    }
}

fn ids(items: &[Value]) -> BTreeSet<String> {
    items
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_first_round_pages_everything_and_a_later_round_only_changes() {
    let h = Harness::with_mailboxes(&[ADELE]).await;
    let mut singles = Vec::new();
    for day in 1..=7 {
        let start = format!("2026-02-{:02}T09:00:00", day + 1);
        let end = format!("2026-02-{:02}T10:00:00", day + 1);
        let reply = h
            .post(
                &format!("/users/{ADELE}/events"),
                &event(&format!("e{day}"), &start, &end, "UTC"),
            )
            .await;
        singles.push(reply.body["id"].as_str().unwrap().to_string());
    }
    let series = h
        .post(
            &format!("/users/{ADELE}/events"),
            &json!({
                "subject": "Daily",
                "start": {"dateTime": "2026-02-20T08:00:00", "timeZone": "UTC"},
                "end": {"dateTime": "2026-02-20T08:15:00", "timeZone": "UTC"},
                "recurrence": {"pattern": {"type": "daily", "interval": 1}, "range": {"type": "numbered", "startDate": "2026-02-20", "numberOfOccurrences": 3}}
            }),
        )
        .await;
    let master_id = series.body["id"].as_str().unwrap().to_string();

    let (pages, delta_link) = round(
        &h,
        &format!("/users/{ADELE}/calendarView/delta?{WINDOW}"),
        3,
    )
    .await;
    assert!(pages.len() >= 3, "{} pages", pages.len());
    let all: Vec<Value> = pages.iter().flatten().cloned().collect();
    assert_eq!(
        all.len(),
        7 + 1 + 3,
        "singles, the master and its occurrences"
    );
    for item in &all {
        if item["type"] == "occurrence" {
            let keys: BTreeSet<&str> = item
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                keys,
                BTreeSet::from([
                    "@odata.type",
                    "@odata.etag",
                    "id",
                    "seriesMasterId",
                    "type",
                    "start",
                    "end"
                ]),
                "occurrences are sparse"
            );
        } else {
            assert!(item.get("subject").is_some(), "{item}");
        }
    }
    // The series is never split across pages.
    let page_of = |id: &str| {
        pages
            .iter()
            .position(|p| p.iter().any(|e| e["id"] == id || e["seriesMasterId"] == id))
            .unwrap()
    };
    let series_pages: BTreeSet<usize> = pages
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            p.iter()
                .any(|e| e["seriesMasterId"] == master_id.as_str() || e["id"] == master_id.as_str())
        })
        .map(|(i, _)| i)
        .collect();
    assert_eq!(series_pages, BTreeSet::from([page_of(&master_id)]));

    // Nothing changed: the next round is empty.
    let (quiet, delta_link) = round(&h, &delta_link, 3).await;
    assert_eq!(quiet.concat().len(), 0);

    // Update one, delete one, move one out of the window, create one.
    h.patch(
        &format!("/users/{ADELE}/events/{}", singles[0]),
        &json!({"subject": "changed"}),
    )
    .await;
    h.delete(&format!("/users/{ADELE}/events/{}", singles[1]))
        .await;
    h.patch(
        &format!("/users/{ADELE}/events/{}", singles[2]),
        &event("away", "2026-04-01T09:00:00", "2026-04-01T10:00:00", "UTC"),
    )
    .await;
    let new = h
        .post(
            &format!("/users/{ADELE}/events"),
            &event("new", "2026-02-25T09:00:00", "2026-02-25T10:00:00", "UTC"),
        )
        .await;
    let new_id = new.body["id"].as_str().unwrap().to_string();

    let (changes, _) = round(&h, &delta_link, 10).await;
    let changes = changes.concat();
    let removed: BTreeSet<String> = changes
        .iter()
        .filter(|e| e["@removed"]["reason"] == "deleted")
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        removed,
        BTreeSet::from([singles[1].clone(), singles[2].clone()])
    );
    let present: BTreeSet<String> = changes
        .iter()
        .filter(|e| e.get("@removed").is_none())
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(present, BTreeSet::from([singles[0].clone(), new_id]));

    // Replaying the older token is allowed and reports the same changes.
    let (replayed, _) = round(&h, &delta_link, 10).await;
    assert_eq!(ids(&replayed.concat()), ids(&changes));
}

#[tokio::test]
async fn a_cancelled_occurrence_leaves_the_window_as_removed() {
    let h = Harness::with_mailboxes(&[ADELE]).await;
    h.post(
        &format!("/users/{ADELE}/events"),
        &json!({
            "subject": "Daily",
            "start": {"dateTime": "2026-02-10T08:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-02-10T08:15:00", "timeZone": "UTC"},
            "recurrence": {"pattern": {"type": "daily", "interval": 1}, "range": {"type": "numbered", "startDate": "2026-02-10", "numberOfOccurrences": 3}}
        }),
    )
    .await;
    let (pages, delta_link) = round(
        &h,
        &format!("/users/{ADELE}/calendarView/delta?{WINDOW}"),
        50,
    )
    .await;
    let occurrence = pages
        .concat()
        .into_iter()
        .find(|e| e["type"] == "occurrence")
        .unwrap();
    let id = occurrence["id"].as_str().unwrap();
    h.delete(&format!("/users/{ADELE}/events/{id}")).await;
    let (changes, _) = round(&h, &delta_link, 50).await;
    let changes = changes.concat();
    assert!(
        changes
            .iter()
            .any(|e| e["id"] == id && e["@removed"]["reason"] == "deleted"),
        "{changes:?}"
    );
}

#[tokio::test]
async fn evicted_tokens_answer_410_sync_state_not_found() {
    let h = Harness::with_mailboxes(&[ADELE]).await;
    h.post(
        &format!("/users/{ADELE}/events"),
        &event("x", "2026-02-10T09:00:00", "2026-02-10T10:00:00", "UTC"),
    )
    .await;
    let (_, delta_link) = round(
        &h,
        &format!("/users/{ADELE}/calendarView/delta?{WINDOW}"),
        10,
    )
    .await;
    h.sim
        .set_faults(GraphFaults {
            evict_delta_tokens: Some(ADELE.to_uppercase()),
            ..GraphFaults::default()
        })
        .unwrap();
    let reply = h.get(&delta_link).await;
    assert_eq!(reply.status, StatusCode::GONE);
    assert!(reply.code().eq_ignore_ascii_case("syncStateNotFound"));
    assert!(
        reply
            .header("location")
            .is_some_and(|l| l.contains("calendarView/delta"))
    );
    // A fresh round works again.
    let (pages, _) = round(
        &h,
        &format!("/users/{ADELE}/calendarView/delta?{WINDOW}"),
        10,
    )
    .await;
    assert_eq!(pages.concat().len(), 1);
    let missing_window = h.get(&format!("/users/{ADELE}/calendarView/delta")).await;
    assert_eq!(missing_window.status, StatusCode::BAD_REQUEST);
}
