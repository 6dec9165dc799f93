//! What must never go wrong, end to end with the real binary against the
//! simulator: a dry run changes nothing, the mass-deletion guard holds,
//! import matches before it creates and survives interruption, and relink
//! rebuilds a lost database without a single duplicate.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

mod common;
#[path = "common/sync_sim.rs"]
mod sync_sim;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sync_sim::{SyncSim, appointment, by_subject, event, subjects};

fn people() -> Value {
    json!({
        "agents": [{"id": 2, "name": "Leah", "email": "leah@contoso.com"}],
        "mailboxes": [{"upn": "leah@contoso.com"}]
    })
}

fn with(mut seed: Value, events: Vec<Value>, appointments: Vec<Value>) -> Value {
    seed["events"] = json!({"leah@contoso.com": events});
    seed["appointments"] = json!(appointments);
    seed
}

fn digest(path: &std::path::Path) -> Vec<u8> {
    let mut hasher = Sha256::new();
    for suffix in ["", "-wal"] {
        let file = format!("{}{suffix}", path.display());
        if let Ok(bytes) = std::fs::read(&file) {
            hasher.update(&bytes);
        }
    }
    hasher.finalize().to_vec()
}

/// Everything a person could see change: both calendars and the database.
async fn everything(sim: &SyncSim) -> (Value, Value, Vec<u8>) {
    let state = sim.state().await;
    (
        state["appointments"].clone(),
        state["events"].clone(),
        digest(&sim.database()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_changes_nothing_anywhere() {
    let seed = with(
        people(),
        vec![event("Audit", 1, 9, 10), event("Review", 2, 9, 10)],
        vec![appointment("Printer repair", 2, 2, 13, 14)],
    );
    let sim = SyncSim::start(seed, "").await;
    sim.expect(&["sync", "--once"], 0).await;
    let events = sim.events("leah@contoso.com").await;
    let appointments = sim.appointments().await;
    // Changes on both sides, including a deletion, wait for the next sync.
    sim.act(json!({"op": "update_event", "mailbox": "leah@contoso.com",
                   "id": by_subject(&events, "Audit")["id"], "patch": {"subject": "Audit (moved)"}}))
        .await;
    sim.act(json!({"op": "delete_event", "mailbox": "leah@contoso.com",
                   "id": by_subject(&events, "Review")["id"]}))
        .await;
    sim.act(
        json!({"op": "update_appointment", "id": by_subject(&appointments, "Printer repair")["id"],
                   "changes": {"subject": "Printer repair (urgent)"}}),
    )
    .await;
    sim.act(json!({"op": "create_event", "mailbox": "leah@contoso.com", "event": event("New", 3, 9, 10)}))
        .await;

    let before = everything(&sim).await;
    for args in [
        &["sync", "--once", "--dry-run"][..],
        &["plan"][..],
        &["import", "--dry-run", "--recurring"][..],
        &["relink", "--dry-run"][..],
    ] {
        let out = sim.expect(args, 0).await;
        assert!(
            out.contains("dry run: nothing was changed"),
            "{args:?}: {out}"
        );
    }
    let out = sim.expect(&["sync", "--once", "--dry-run"], 0).await;
    for expected in [
        "would update in Halo: \"Audit (moved)\"",
        "would delete in Halo: appointment ",
        "would update in Exchange: \"Printer repair (urgent)\"",
        "would create in Halo: \"New\"",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    assert_eq!(everything(&sim).await, before, "state before = state after");

    // And the real run then does exactly that.
    sim.expect(&["sync", "--once"], 0).await;
    assert_eq!(
        subjects(&sim.appointments().await),
        ["Audit (moved)", "New", "Printer repair (urgent)"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mass_deletion_guard_holds_until_deletes_are_allowed() {
    let events: Vec<Value> = (0..12)
        .map(|n| {
            event(
                &format!("Visit {n:02}"),
                1 + n / 6,
                8 + (n % 6) as u32,
                9 + (n % 6) as u32,
            )
        })
        .collect();
    let sim = SyncSim::start(with(people(), events, vec![]), "").await;
    sim.expect(&["sync", "--once"], 0).await;
    assert_eq!(sim.appointments().await.len(), 12);

    // Eleven disappear at once (a wrong calendar, a bulk delete...): more
    // than max(10, 20% of 12).
    for event in sim.events("leah@contoso.com").await.iter().skip(1) {
        sim.act(json!({"op": "delete_event", "mailbox": "leah@contoso.com", "id": event["id"]}))
            .await;
    }
    let out = sim.expect(&["sync", "--once"], 3).await;
    assert!(
        out.contains("held back: 11 deletions exceed this mailbox's limit of 10"),
        "{out}"
    );
    assert!(
        out.contains("halosync sync --once --allow-deletes --agent leah@contoso.com"),
        "{out}"
    );
    assert_eq!(sim.appointments().await.len(), 12, "nothing was deleted");
    // Still held on the next scheduled run.
    sim.expect(&["sync", "--once"], 3).await;
    assert_eq!(sim.appointments().await.len(), 12);

    let out = sim
        .expect(
            &[
                "sync",
                "--once",
                "--allow-deletes",
                "--agent",
                "leah@contoso.com",
            ],
            0,
        )
        .await;
    assert_eq!(out.matches("delete in Halo").count(), 11, "{out}");
    assert_eq!(sim.appointments().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_links_what_is_on_both_sides_and_creates_only_in_halo() {
    let mut weekly = event("Weekly sync", 1, 14, 15);
    weekly["recurrence"] = json!({
        "pattern": {"type": "weekly", "interval": 1,
                    "daysOfWeek": [sync_sim::weekday(1)]},
        "range": {"type": "numbered", "startDate": sync_sim::day(1), "numberOfOccurrences": 3}
    });
    let seed = with(
        people(),
        vec![
            event("Stand-up", 2, 9, 10),
            event("Audit", 1, 9, 10),
            weekly,
        ],
        vec![
            appointment("Stand-up", 2, 2, 9, 10),
            appointment("Printer repair", 2, 2, 13, 14),
        ],
    );
    let sim = SyncSim::start(seed, "").await;

    let out = sim.expect(&["import"], 0).await;
    assert!(out.contains("link: \"Stand-up\""), "{out}");
    assert!(out.contains("create in Halo: \"Audit\""), "{out}");
    assert!(out.contains("Summary"), "{out}");
    assert_eq!(
        subjects(&sim.appointments().await),
        ["Audit", "Printer repair", "Stand-up"],
        "series left for --recurring; nothing duplicated"
    );
    assert_eq!(
        sim.events("leah@contoso.com").await.len(),
        3,
        "an import writes nothing to Exchange"
    );

    let out = sim.expect(&["import", "--recurring"], 0).await;
    assert_eq!(
        out.matches("create in Halo: \"Weekly sync\"").count(),
        3,
        "{out}"
    );
    let again = sim.expect(&["import", "--recurring"], 0).await;
    assert!(again.contains("nothing to do"), "{again}");
    assert_eq!(sim.appointments().await.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_import_resumes_without_duplicates() {
    // Creates go to Halo 25 to a request: 30 events take two.
    let events: Vec<Value> = (0..30)
        .map(|n| {
            event(
                &format!("Job {n:02}"),
                1 + n / 10,
                8 + n as u32 % 10,
                9 + n as u32 % 10,
            )
        })
        .collect();
    let sim = SyncSim::start(with(people(), events, vec![]), "").await;
    // Halo fails the second save, after the first succeeded.
    sim.post(
        "faults",
        &json!({"halo": {"faults": {"rules": [
            {"method": "POST", "path_contains": "/api/Appointment", "count": 1, "skip": 1,
             "action": {"kind": "status", "status": 500}}]}}}),
    )
    .await;
    let out = sim.expect(&["import"], 1).await;
    assert!(out.contains("FAILED create in Halo"), "{out}");
    assert_eq!(
        sim.appointments().await.len(),
        25,
        "the first request's appointments were imported before the failure"
    );

    sim.expect(&["import"], 0).await;
    let appointments = sim.appointments().await;
    let expected: Vec<String> = (0..30).map(|n| format!("Job {n:02}")).collect();
    assert_eq!(subjects(&appointments), expected, "each exactly once");
    let saves: u64 = sim.state().await["requests"]["by_route"]
        .as_object()
        .expect("by_route")
        .iter()
        .filter(|(route, _)| route.starts_with("POST ") && route.contains("Appointment"))
        .map(|(_, n)| n.as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        saves, 3,
        "25 + 5 refused, then the 5 again: one request per batch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relink_rebuilds_a_lost_database_without_duplicates() {
    let seed = with(
        people(),
        vec![event("Audit", 1, 9, 10), event("Review", 2, 9, 10)],
        vec![
            appointment("Printer repair", 2, 2, 13, 14),
            appointment("Install", 2, 3, 13, 14),
        ],
    );
    let sim = SyncSim::start(seed, "").await;
    sim.expect(&["sync", "--once"], 0).await;
    let appointments = sim.appointments().await;
    assert_eq!(appointments.len(), 4);

    // The database is lost; meanwhile someone renames a Halo appointment
    // and an Exchange event, so only halosync's markers can pair them.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", sim.database().display()));
    }
    sim.act(
        json!({"op": "update_appointment", "id": by_subject(&appointments, "Install")["id"],
                   "changes": {"subject": "Install (2 screens)"}}),
    )
    .await;
    let events = sim.events("leah@contoso.com").await;
    sim.act(json!({"op": "update_event", "mailbox": "leah@contoso.com",
                   "id": by_subject(&events, "Audit")["id"], "patch": {"subject": "Audit (full)"}}))
        .await;

    let out = sim.expect(&["relink"], 0).await;
    assert_eq!(out.matches("\n  link").count(), 4, "{out}");
    assert!(
        out.contains("link and update in Halo: \"Audit (full)\""),
        "{out}"
    );
    assert!(!out.contains("create in"), "{out}");
    // The renamed copies were paired by marker and made to agree.
    let out = sim.expect(&["sync", "--once"], 0).await;
    assert!(out.contains("nothing to do"), "{out}");
    let appointments = sim.appointments().await;
    let events = sim.events("leah@contoso.com").await;
    assert_eq!(appointments.len(), 4, "{appointments:#?}");
    assert_eq!(events.len(), 4, "{events:#?}");
    assert_eq!(subjects(&appointments), subjects(&events));
    assert!(subjects(&events).contains(&"Install (2 screens)".to_string()));
    assert!(subjects(&appointments).contains(&"Audit (full)".to_string()));
}
