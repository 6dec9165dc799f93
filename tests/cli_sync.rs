//! `halosync sync --once` end to end: the real binary against the
//! simulator, both ways, with every change landing once and nothing
//! bouncing back.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

mod common;
#[path = "common/sync_sim.rs"]
mod sync_sim;

use serde_json::{Value, json};
use sync_sim::{SyncSim, appointment, by_subject, day, event, subjects, writes};

fn seed() -> Value {
    let mut private = event("Dentist", 3, 15, 16);
    private["sensitivity"] = json!("private");
    private["body"] = json!({"contentType": "text", "content": "root canal"});
    json!({
        "agents": [{"id": 2, "name": "Leah", "email": "leah@contoso.com"},
                   {"id": 3, "name": "Amir", "email": "amir@contoso.com"}],
        "mailboxes": [{"upn": "leah@contoso.com"}, {"upn": "amir@contoso.com"}],
        "events": {"leah@contoso.com": [event("Server room audit", 1, 9, 10), event("Stand-up", 2, 9, 10), private]},
        "appointments": [appointment("Printer repair", 2, 2, 13, 14), appointment("Stand-up", 2, 2, 9, 10)]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_carries_each_side_across_once_and_then_rests() {
    let sim = SyncSim::start(seed(), "").await;
    let out = sim.expect(&["sync", "--once"], 0).await;
    assert!(
        out.contains("create in Halo: \"Server room audit\""),
        "{out}"
    );
    assert!(
        out.contains("create in Exchange: \"Printer repair\""),
        "{out}"
    );
    assert!(out.contains("link: \"Stand-up\""), "{out}");

    let appointments = sim.appointments().await;
    assert_eq!(appointments.len(), 4, "{appointments:#?}");
    assert_eq!(
        subjects(&appointments),
        ["", "Printer repair", "Server room audit", "Stand-up"]
    );
    // The private event reached Halo as its times only.
    let private = by_subject(&appointments, "");
    assert_eq!(private["is_private"], json!(true));
    assert!(!private.to_string().contains("root canal"));
    let events = sim.events("leah@contoso.com").await;
    assert_eq!(
        subjects(&events),
        ["Dentist", "Printer repair", "Server room audit", "Stand-up"]
    );
    // The Halo copy names its event.
    let audit_event = by_subject(&events, "Server room audit");
    let audit = by_subject(&appointments, "Server room audit");
    assert_eq!(audit["entryid"], sim.seeded_event("leah@contoso.com", 0));
    // (The Exchange copy's marker is proven by the relink test.)
    let repair = by_subject(&appointments, "Printer repair");

    // A second run finds nothing to do and writes nothing.
    let before = sim.state().await;
    let again = sim.expect(&["sync", "--once"], 0).await;
    assert_eq!(again.matches("nothing to do").count(), 2, "{again}");
    assert_eq!(writes(&sim.state().await), writes(&before));

    // An edit on each side lands on the other, once.
    sim.act(json!({"op": "update_event", "mailbox": "leah@contoso.com",
                   "id": audit_event["id"], "patch": {"subject": "Server room audit (rescheduled)",
                   "start": {"dateTime": format!("{}T11:00:00", day(1)), "timeZone": "UTC"},
                   "end": {"dateTime": format!("{}T12:00:00", day(1)), "timeZone": "UTC"}}}))
        .await;
    sim.act(json!({"op": "update_appointment", "id": repair["id"],
                   "changes": {"note": "Bring toner", "start_date": format!("{}T15:00:00", day(2)),
                               "end_date": format!("{}T16:00:00", day(2))}}))
        .await;
    let out = sim.expect(&["sync", "--once"], 0).await;
    assert!(
        out.contains("update in Halo: \"Server room audit (rescheduled)\""),
        "{out}"
    );
    assert!(
        out.contains("update in Exchange: \"Printer repair\""),
        "{out}"
    );
    let audit = sim
        .appointments()
        .await
        .into_iter()
        .find(|a| a["id"] == audit["id"])
        .expect("still there");
    assert_eq!(audit["subject"], "Server room audit (rescheduled)");
    assert!(
        audit["start_date"].as_str().unwrap().ends_with("T11:00:00"),
        "{audit}"
    );
    let events = sim.events("leah@contoso.com").await;
    let repair_event = by_subject(&events, "Printer repair");
    assert!(
        repair_event["start"]["dateTime"]
            .as_str()
            .unwrap()
            .contains("T15:00:00")
    );
    assert_eq!(repair_event["body"]["content"], "Bring toner");

    // Its own writes coming back are not changes: no ping-pong.
    let before = sim.state().await;
    let rest = sim.expect(&["sync", "--once"], 0).await;
    assert_eq!(rest.matches("nothing to do").count(), 2, "{rest}");
    assert_eq!(writes(&sim.state().await), writes(&before));

    // A deletion in Exchange is carried to Halo.
    let standup = by_subject(&events, "Stand-up").clone();
    sim.act(json!({"op": "delete_event", "mailbox": "leah@contoso.com", "id": standup["id"]}))
        .await;
    let out = sim.expect(&["sync", "--once"], 0).await;
    assert!(
        out.contains("delete in Halo: appointment ") && out.contains("(deleted on the other side)"),
        "{out}"
    );
    assert_eq!(
        subjects(&sim.appointments().await),
        ["", "Printer repair", "Server room audit (rescheduled)"]
    );
}

/// Requests made so far to `route`.
fn requests(state: &Value, route: &str) -> u64 {
    state["requests"]["by_route"][route].as_u64().unwrap_or(0)
}

/// Halo listings of appointments (not reads by id) made so far.
fn halo_listings(state: &Value) -> u64 {
    requests(state, "GET /halo/api/Appointment")
}

const DELTA: &str = "GET /v1.0/users/{u}/calendarView/delta";
const BATCH: &str = "POST /v1.0/$batch";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_share_one_halo_listing_and_one_batch_of_delta_pages_and_each_gets_only_its_own_changes()
 {
    let seed = json!({
        "agents": [{"id": 2, "name": "Leah", "email": "leah@contoso.com"},
                   {"id": 3, "name": "Amir", "email": "amir@contoso.com"},
                   {"id": 4, "name": "Noor", "email": "noor@contoso.com"}],
        "mailboxes": [{"upn": "leah@contoso.com"}, {"upn": "amir@contoso.com"},
                      {"upn": "noor@contoso.com"}],
        "appointments": [appointment("Printer repair", 2, 2, 13, 14),
                         appointment("Desk move", 3, 2, 9, 10),
                         appointment("Laptop swap", 4, 3, 9, 10)]
    });
    let sim = SyncSim::start(seed, "").await;
    sim.expect(&["sync", "--once"], 0).await;
    for mailbox in ["leah@contoso.com", "amir@contoso.com", "noor@contoso.com"] {
        assert_eq!(sim.events(mailbox).await.len(), 1, "{mailbox}");
    }

    // The first incremental run starts each mailbox's delta round.
    sim.expect(&["sync", "--once"], 0).await;

    // Nothing changed: one Halo listing serves all three agents, and one
    // `$batch` reads the three delta rounds.
    let before = sim.state().await;
    let rest = sim.expect(&["sync", "--once"], 0).await;
    assert_eq!(rest.matches("nothing to do").count(), 3, "{rest}");
    let after = sim.state().await;
    assert_eq!(halo_listings(&after) - halo_listings(&before), 1);
    assert_eq!(
        requests(&after, BATCH) - requests(&before, BATCH),
        1,
        "{rest}"
    );
    assert_eq!(requests(&after, DELTA), requests(&before, DELTA), "{rest}");

    // Amir's appointment edited and Noor's deleted in Halo: each lands in
    // its own mailbox only, through one listing with deleted rows and one
    // without.
    let appointments = sim.appointments().await;
    let desk = by_subject(&appointments, "Desk move").clone();
    let laptop = by_subject(&appointments, "Laptop swap").clone();
    sim.act(json!({"op": "update_appointment", "id": desk["id"],
                   "changes": {"subject": "Desk move (2nd floor)"}}))
        .await;
    sim.act(json!({"op": "delete_appointment", "id": laptop["id"]}))
        .await;
    let before = halo_listings(&sim.state().await);
    let out = sim.expect(&["sync", "--once"], 0).await;
    assert_eq!(halo_listings(&sim.state().await) - before, 2, "{out}");
    assert_eq!(
        subjects(&sim.events("amir@contoso.com").await),
        ["Desk move (2nd floor)"]
    );
    assert!(sim.events("noor@contoso.com").await.is_empty(), "{out}");
    assert_eq!(
        subjects(&sim.events("leah@contoso.com").await),
        ["Printer repair"]
    );
    assert_eq!(out.matches("nothing to do").count(), 1, "{out}");

    // An Exchange change found through the batched page lands in Halo.
    let events = sim.events("leah@contoso.com").await;
    let repair = by_subject(&events, "Printer repair");
    sim.act(
        json!({"op": "update_event", "mailbox": "leah@contoso.com", "id": repair["id"],
                   "patch": {"subject": "Printer repair (toner)"}}),
    )
    .await;
    let before = sim.state().await;
    let out = sim.expect(&["sync", "--once"], 0).await;
    assert!(
        out.contains("update in Halo: \"Printer repair (toner)\""),
        "{out}"
    );
    let after = sim.state().await;
    assert_eq!(requests(&after, DELTA), requests(&before, DELTA), "{out}");
    assert_eq!(
        subjects(&sim.appointments().await),
        ["Desk move (2nd floor)", "Printer repair (toner)"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_edits_reach_halo_in_one_save_request() {
    let seed = json!({
        "agents": [{"id": 2, "name": "Leah", "email": "leah@contoso.com"}],
        "mailboxes": [{"upn": "leah@contoso.com"}],
        "events": {"leah@contoso.com": [event("Audit", 1, 9, 10), event("Backup check", 2, 9, 10),
                                        event("Cabling", 3, 9, 10)]},
        "appointments": [appointment("Desk move", 2, 4, 9, 10), appointment("Escalation", 2, 5, 9, 10)]
    });
    let sim = SyncSim::start(seed, "").await;
    sim.expect(&["sync", "--once"], 0).await;
    let events = sim.events("leah@contoso.com").await;
    let appointments = sim.appointments().await;
    // Three people's edits in Exchange and two in Halo, in one run.
    for subject in ["Audit", "Backup check", "Cabling"] {
        sim.act(json!({"op": "update_event", "mailbox": "leah@contoso.com",
                       "id": by_subject(&events, subject)["id"],
                       "patch": {"subject": format!("{subject} (moved)")}}))
            .await;
    }
    for subject in ["Desk move", "Escalation"] {
        sim.act(
            json!({"op": "update_appointment", "id": by_subject(&appointments, subject)["id"],
                       "changes": {"subject": format!("{subject} (moved)")}}),
        )
        .await;
    }
    let before = sim.state().await;
    let out = sim.expect(&["sync", "--once"], 0).await;
    let after = sim.state().await;
    const SAVE: &str = "POST /halo/api/Appointment";
    assert_eq!(requests(&after, SAVE) - requests(&before, SAVE), 1, "{out}");
    assert_eq!(out.matches("update in Halo:").count(), 3, "{out}");
    assert_eq!(out.matches("update in Exchange:").count(), 2, "{out}");
    let moved = [
        "Audit (moved)",
        "Backup check (moved)",
        "Cabling (moved)",
        "Desk move (moved)",
        "Escalation (moved)",
    ];
    assert_eq!(subjects(&sim.appointments().await), moved);
    assert_eq!(subjects(&sim.events("leah@contoso.com").await), moved);
}
