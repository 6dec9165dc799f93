//! The owner override end to end: the real binary against the simulator,
//! with every Halo appointment created as the scheduler's meeting, the
//! agent's copy linked, Halo edits and deletions made on the meeting, and
//! the agent's own edits carried to the scheduler only when
//! `update_scheduler_appointment` says so.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

mod common;
#[path = "common/sync_sim.rs"]
mod sync_sim;

use halosync::clock::{Clock, SystemClock};
use halosync::model::Appointment;
use halosync::sim::graph::ids;
use halosync::store::{Store, WriteKind};
use halosync::sync::apply::transaction_id;
use halosync::sync::plan::Side;
use serde_json::{Value, json};
use sync_sim::{SyncSim, appointment, day, writes};

const LEAH: &str = "leah@contoso.com";
const AMIR: &str = "amir@contoso.com";
const SCHEDULER: &str = "scheduler@contoso.com";

/// Leah's audit, with Amir as an additional agent. The scheduler is a Halo
/// agent too, so its own calendar is synced as well.
fn seed() -> Value {
    let mut audit = appointment("Server room audit", 2, 2, 9, 10);
    audit["agents"] = json!([{"id": 2}, {"id": 3}]);
    json!({
        "agents": [{"id": 2, "name": "Leah", "email": LEAH},
                   {"id": 3, "name": "Amir", "email": AMIR},
                   {"id": 4, "name": "Scheduler", "email": SCHEDULER}],
        "mailboxes": [{"upn": LEAH}, {"upn": AMIR}, {"upn": SCHEDULER}],
        "appointments": [audit]
    })
}

async fn start(update_scheduler: bool) -> SyncSim {
    SyncSim::start_with_connection(
        seed(),
        &format!(
            "owner_override = \"{SCHEDULER}\"\nupdate_scheduler_appointment = {update_scheduler}"
        ),
        "",
    )
    .await
}

/// The one event of `mailbox`.
async fn only_event(sim: &SyncSim, mailbox: &str) -> Value {
    let events = sim.events(mailbox).await;
    assert_eq!(events.len(), 1, "{mailbox}: {events:#?}");
    events[0].clone()
}

/// Leah's link: its event id (if any) and the meeting's iCalUId.
fn leahs_link(sim: &SyncSim) -> (Option<String>, Option<String>) {
    let store = Store::open_read_only(sim.database()).expect("database");
    let rows: Vec<(Option<String>, Option<String>)> = store
        .connection()
        .prepare("SELECT graph_id, ical_uid FROM links WHERE mailbox = ?1 AND state <> 'deleted'")
        .unwrap()
        .query_map([LEAH], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows[0].clone()
}

/// Whether two ids (REST or immutable) name the same item.
fn same_item(a: &str, b: &str) -> bool {
    ids::parse(a).unwrap().key == ids::parse(b).unwrap().key
}

/// A run that changes nothing anywhere.
async fn at_rest(sim: &SyncSim) {
    let before = sim.state().await;
    let out = sim.expect(&["sync", "--once"], 0).await;
    assert_eq!(out.matches("nothing to do").count(), 3, "{out}");
    let after = sim.state().await;
    assert_eq!(writes(&after), writes(&before), "{out}");
    assert_eq!(after["appointments"], before["appointments"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halo_appointment_becomes_the_schedulers_meeting_with_the_agents_copy_linked() {
    let sim = start(false).await;
    let out = sim.expect(&["sync", "--once"], 0).await;
    assert!(
        out.contains("create in Exchange: \"Server room audit\""),
        "{out}"
    );

    let meeting = only_event(&sim, SCHEDULER).await;
    assert_eq!(meeting["isOrganizer"], true);
    let mut invited: Vec<&str> = meeting["attendees"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["emailAddress"]["address"].as_str().unwrap())
        .collect();
    invited.sort();
    assert_eq!(invited, [AMIR, LEAH]);
    let invitations = sim.state().await["invitations"].clone();
    assert_eq!(invitations.as_array().unwrap().len(), 1, "{invitations}");
    assert_eq!(invitations[0]["mailbox"], SCHEDULER);
    assert_eq!(invitations[0]["kind"], "request");

    let copy = only_event(&sim, LEAH).await;
    assert_eq!(copy["isOrganizer"], false);
    assert_eq!(copy["iCalUId"], meeting["iCalUId"]);
    assert_eq!(only_event(&sim, AMIR).await["iCalUId"], meeting["iCalUId"]);
    let (linked, uid) = leahs_link(&sim);
    assert!(same_item(&linked.unwrap(), copy["id"].as_str().unwrap()));
    assert_eq!(uid.as_deref(), meeting["iCalUId"].as_str());

    // Neither Amir's copy nor the scheduler's own event comes back to Halo.
    at_rest(&sim).await;
    at_rest(&sim).await;
    assert_eq!(sim.appointments().await.len(), 1);
    for mailbox in [LEAH, AMIR, SCHEDULER] {
        assert_eq!(sim.events(mailbox).await.len(), 1, "{mailbox}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halo_edits_and_deletions_are_made_on_the_schedulers_meeting() {
    let sim = start(false).await;
    sim.expect(&["sync", "--once"], 0).await;
    let audit = sim.appointments().await[0].clone();

    sim.act(json!({"op": "update_appointment", "id": audit["id"],
                   "changes": {"subject": "Server room audit (moved)",
                               "start_date": format!("{}T11:00:00", day(2)),
                               "end_date": format!("{}T12:00:00", day(2))}}))
        .await;
    let out = sim.expect(&["sync", "--once"], 0).await;
    assert!(
        out.contains("update in Exchange: \"Server room audit (moved)\""),
        "{out}"
    );
    for mailbox in [SCHEDULER, LEAH, AMIR] {
        let event = only_event(&sim, mailbox).await;
        assert_eq!(event["subject"], "Server room audit (moved)", "{mailbox}");
        assert!(
            event["start"]["dateTime"]
                .as_str()
                .unwrap()
                .contains("T11:00:00"),
            "{mailbox}: {event}"
        );
    }
    // The update came back to Leah's copy as halosync's own write.
    at_rest(&sim).await;

    sim.act(json!({"op": "delete_appointment", "id": audit["id"]}))
        .await;
    let out = sim.expect(&["sync", "--once"], 0).await;
    assert!(out.contains("delete in Exchange"), "{out}");
    assert!(sim.events(SCHEDULER).await.is_empty());
    assert_eq!(only_event(&sim, LEAH).await["isCancelled"], true);
    let kinds: Vec<Value> = sim.state().await["invitations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].clone())
        .collect();
    assert_eq!(kinds, ["request", "update", "cancellation"]);
    // The cancelled copies are not imported into Halo.
    sim.expect(&["sync", "--once"], 0).await;
    assert!(sim.appointments().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_cancelling_the_meeting_deletes_the_appointment() {
    let sim = start(false).await;
    sim.expect(&["sync", "--once"], 0).await;
    let meeting = only_event(&sim, SCHEDULER).await;
    sim.act(json!({"op": "delete_event", "mailbox": SCHEDULER, "id": meeting["id"]}))
        .await;
    let out = sim.expect(&["sync", "--once"], 0).await;
    assert!(
        out.contains("delete in Halo: appointment") && out.contains("(deleted on the other side)"),
        "{out}"
    );
    assert!(sim.appointments().await.is_empty());
    // Leah's cancelled copy stays in her calendar, unsynced.
    assert_eq!(only_event(&sim, LEAH).await["isCancelled"], true);
    sim.expect(&["sync", "--once"], 0).await;
    assert!(sim.appointments().await.is_empty());
}

/// Leah reschedules her copy in Outlook.
async fn leah_edits_her_copy(sim: &SyncSim) {
    let copy = only_event(sim, LEAH).await;
    sim.act(json!({"op": "update_event", "mailbox": LEAH, "id": copy["id"],
                   "patch": {"subject": "Audit (Leah moved it)",
                             "start": {"dateTime": format!("{}T15:00:00", day(2)), "timeZone": "UTC"},
                             "end": {"dateTime": format!("{}T16:00:00", day(2)), "timeZone": "UTC"}}}))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_update_scheduler_appointment_an_agents_edit_reaches_the_schedulers_meeting() {
    let sim = start(true).await;
    sim.expect(&["sync", "--once"], 0).await;
    leah_edits_her_copy(&sim).await;
    let out = sim.expect(&["sync", "--once"], 0).await;
    assert!(
        out.contains("update in Halo: \"Audit (Leah moved it)\""),
        "{out}"
    );
    let audit = &sim.appointments().await[0];
    assert_eq!(audit["subject"], "Audit (Leah moved it)");
    assert!(audit["start_date"].as_str().unwrap().ends_with("T15:00:00"));
    for mailbox in [SCHEDULER, AMIR] {
        let event = only_event(&sim, mailbox).await;
        assert_eq!(event["subject"], "Audit (Leah moved it)", "{mailbox}");
        assert!(
            event["start"]["dateTime"]
                .as_str()
                .unwrap()
                .contains("T15:00:00")
        );
    }
    // The scheduler's update echoing to Leah's copy is no change.
    at_rest(&sim).await;
    assert_eq!(sim.appointments().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_update_scheduler_appointment_an_agents_edit_reaches_halo_only() {
    let sim = start(false).await;
    sim.expect(&["sync", "--once"], 0).await;
    let meeting = only_event(&sim, SCHEDULER).await;
    leah_edits_her_copy(&sim).await;
    let out = sim.expect(&["sync", "--once"], 0).await;
    assert!(
        out.contains("update in Halo: \"Audit (Leah moved it)\""),
        "{out}"
    );
    assert_eq!(
        sim.appointments().await[0]["subject"],
        "Audit (Leah moved it)"
    );
    let unchanged = only_event(&sim, SCHEDULER).await;
    assert_eq!(unchanged["changeKey"], meeting["changeKey"]);
    assert_eq!(unchanged["subject"], "Server room audit");
    assert_eq!(only_event(&sim, AMIR).await["subject"], "Server room audit");
    at_rest(&sim).await;
    assert_eq!(sim.appointments().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_that_arrives_after_the_create_is_linked_not_imported() {
    let sim = start(false).await;
    // Leah's copy cannot be found right after the create (as when Exchange
    // has not delivered it yet).
    sim.post(
        "faults",
        &json!({"graph": {"faults": {"rules": [{"method": "GET", "path_contains": format!("{LEAH}/events"),
                "count": 1, "action": {"kind": "status", "status": 400}}]}}}),
    )
    .await;
    let out = sim.expect(&["sync", "--once"], 0).await;
    assert!(
        out.contains("create in Exchange: \"Server room audit\""),
        "{out}"
    );
    let (linked, uid) = leahs_link(&sim);
    assert_eq!(linked, None, "the link waits for the copy");
    let meeting = only_event(&sim, SCHEDULER).await;
    assert_eq!(uid.as_deref(), meeting["iCalUId"].as_str());

    // The next run pairs the copy with the link instead of importing it.
    at_rest(&sim).await;
    let (linked, _) = leahs_link(&sim);
    let copy = only_event(&sim, LEAH).await;
    assert!(same_item(&linked.unwrap(), copy["id"].as_str().unwrap()));
    assert_eq!(sim.appointments().await.len(), 1);

    // And a Halo edit still reaches the meeting through the paired link.
    let audit = sim.appointments().await[0].clone();
    sim.act(json!({"op": "update_appointment", "id": audit["id"],
                   "changes": {"subject": "Audit, paired"}}))
        .await;
    sim.expect(&["sync", "--once"], 0).await;
    assert_eq!(
        only_event(&sim, SCHEDULER).await["subject"],
        "Audit, paired"
    );
    assert_eq!(sim.events(SCHEDULER).await.len(), 1, "never doubled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_meeting_create_is_finished_into_the_same_meeting() {
    let sim = start(false).await;
    // A previous run journaled the create of Leah's audit as the
    // scheduler's meeting, sent it, and died before its answer came back.
    let row: halosync::halo::Appointment =
        serde_json::from_value(sim.appointments().await[0].clone()).unwrap();
    let (halo_id, version) = (row.id.unwrap(), row.last_modified.unwrap().to_rfc3339());
    let transaction = transaction_id(SCHEDULER, halo_id, &version);
    let mut meeting = json!({"subject": "Server room audit",
        "start": {"dateTime": format!("{}T09:00:00", day(2)), "timeZone": "UTC"},
        "end": {"dateTime": format!("{}T10:00:00", day(2)), "timeZone": "UTC"},
        "attendees": [{"emailAddress": {"address": LEAH}}, {"emailAddress": {"address": AMIR}}]});
    let payload = json!({"mailbox": LEAH, "agent_id": 2, "halo_id": halo_id,
        "halo_version": version, "event": meeting.clone(), "organizer": SCHEDULER,
        // Only compared once Halo's version moves.
        "halo_fingerprint": Appointment::default().fingerprint().to_string()});
    meeting["transactionId"] = json!(transaction);
    sim.act(json!({"op": "create_event", "mailbox": SCHEDULER, "event": meeting}))
        .await;
    {
        let store = Store::open(sim.database()).expect("database");
        store
            .record_intent(
                None,
                Side::Exchange,
                WriteKind::Create,
                Some(&transaction),
                &payload,
                SystemClock.now(),
            )
            .expect("intent");
    }

    let out = sim.expect(&["sync", "--once"], 0).await;
    assert!(
        out.contains("finished 1 write(s) interrupted last time"),
        "{out}"
    );
    assert!(!out.contains("create in Exchange"), "{out}");
    let meeting = only_event(&sim, SCHEDULER).await;
    let (linked, uid) = leahs_link(&sim);
    let copy = only_event(&sim, LEAH).await;
    assert!(same_item(&linked.unwrap(), copy["id"].as_str().unwrap()));
    assert_eq!(uid.as_deref(), meeting["iCalUId"].as_str());
    assert!(
        Store::open_read_only(sim.database())
            .unwrap()
            .pending_intents()
            .unwrap()
            .is_empty()
    );
    at_rest(&sim).await;
    assert_eq!(sim.appointments().await.len(), 1);
}
