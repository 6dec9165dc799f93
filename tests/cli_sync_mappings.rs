//! Each mapping of the guide and each conflict policy, end to end with the
//! real binary against the simulator.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

mod common;
#[path = "common/sync_sim.rs"]
mod sync_sim;

use serde_json::{Value, json};
use sync_sim::{SyncSim, appointment, by_subject, day, event, subjects};

const LEAH: &str = "leah@contoso.com";

fn people(events: Vec<Value>, appointments: Vec<Value>) -> Value {
    json!({
        "agents": [{"id": 2, "name": "Leah", "email": LEAH},
                   {"id": 3, "name": "Amir", "email": "amir@contoso.com"}],
        "mailboxes": [{"upn": LEAH}, {"upn": "amir@contoso.com"}],
        "events": {LEAH: events},
        "appointments": appointments
    })
}

/// Edits the linked pair "Audit" on both sides, `first` side a minute
/// before the other, and syncs with `policy`; returns the sync's output
/// and the subjects each side ends with.
async fn conflict(policy: &str, first: &str) -> (String, String, String) {
    let sim = SyncSim::start(
        people(vec![event("Audit", 1, 9, 10)], vec![]),
        &format!("[sync]\nconflict_policy = \"{policy}\"\n"),
    )
    .await;
    sim.expect(&["sync", "--once"], 0).await;
    let halo_id = by_subject(&sim.appointments().await, "Audit")["id"].clone();
    let event_id = by_subject(&sim.events(LEAH).await, "Audit")["id"].clone();
    for side in if first == "halo" {
        ["halo", "exchange"]
    } else {
        ["exchange", "halo"]
    } {
        if side == "halo" {
            sim.act(json!({"op": "update_appointment", "id": halo_id,
                           "changes": {"subject": "Audit (Halo)"}}))
                .await;
        } else {
            sim.act(
                json!({"op": "update_event", "mailbox": LEAH, "id": event_id,
                           "patch": {"subject": "Audit (Exchange)"}}),
            )
            .await;
        }
        sim.post("faults", &json!({"advance_clock_seconds": 60}))
            .await;
    }
    let out = sim.expect(&["sync", "--once"], 0).await;
    let halo = subjects(&sim.appointments().await).join(",");
    let exchange = subjects(&sim.events(LEAH).await).join(",");
    (out, halo, exchange)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_follow_the_configured_policy() {
    for (policy, first, winner, side) in [
        ("newest", "halo", "Audit (Exchange)", "Exchange"),
        ("newest", "exchange", "Audit (Halo)", "Halo"),
        ("halo", "halo", "Audit (Halo)", "Halo"),
        ("exchange", "exchange", "Audit (Exchange)", "Exchange"),
    ] {
        let (out, halo, exchange) = conflict(policy, first).await;
        assert!(
            out.contains(&format!("both changed; {side} wins")),
            "{policy}/{first}: {out}"
        );
        assert!(out.contains("conflicts resolved by policy: 1"), "{out}");
        assert_eq!(
            (halo.as_str(), exchange.as_str()),
            (winner, winner),
            "{policy}/{first}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_against_delete_follows_its_own_policy() {
    for (policy, survives) in [("edit_wins", true), ("delete_wins", false)] {
        let sim = SyncSim::start(
            people(vec![event("Audit", 1, 9, 10)], vec![]),
            &format!("[sync]\nedit_delete_policy = \"{policy}\"\n"),
        )
        .await;
        sim.expect(&["sync", "--once"], 0).await;
        let halo_id = by_subject(&sim.appointments().await, "Audit")["id"].clone();
        let event_id = by_subject(&sim.events(LEAH).await, "Audit")["id"].clone();
        sim.act(json!({"op": "update_appointment", "id": halo_id, "changes": {"subject": "Audit (kept)"}}))
            .await;
        sim.act(json!({"op": "delete_event", "mailbox": LEAH, "id": event_id}))
            .await;
        sim.expect(&["sync", "--once"], 0).await;
        let (halo, exchange) = (sim.appointments().await, sim.events(LEAH).await);
        if survives {
            assert_eq!(subjects(&halo), ["Audit (kept)"], "{policy}");
            assert_eq!(subjects(&exchange), ["Audit (kept)"], "{policy}: recreated");
        } else {
            assert!(
                halo.is_empty() && exchange.is_empty(),
                "{policy}: {halo:?} {exchange:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_body_times_all_day_and_location_cross_both_ways() {
    let mut with_place = appointment("Site visit", 2, 2, 13, 14);
    with_place["note"] = json!("Bring the ladder\nand the keys");
    with_place["appointment_location_free_text"] = json!("Warehouse 4");
    let mut all_day = event("Training day", 3, 0, 0);
    all_day["isAllDay"] = json!(true);
    all_day["end"]["dateTime"] = json!(format!("{}T00:00:00", day(4)));
    all_day["location"] = json!({"displayName": "HQ, room 2"});
    let sim = SyncSim::start(people(vec![all_day], vec![with_place]), "").await;
    sim.expect(&["sync", "--once"], 0).await;

    let events = sim.events(LEAH).await;
    let visit = by_subject(&events, "Site visit");
    assert_eq!(visit["body"]["content"], "Bring the ladder\nand the keys");
    assert_eq!(visit["location"]["displayName"], "Warehouse 4");
    assert!(
        visit["start"]["dateTime"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}T13:00:00", day(2)))
    );
    let appointments = sim.appointments().await;
    let training = by_subject(&appointments, "Training day");
    assert_eq!(training["allday"], json!(true));
    assert_eq!(training["appointment_location_free_text"], "HQ, room 2");
    assert!(
        training["start_date"]
            .as_str()
            .unwrap()
            .starts_with(&day(3))
    );

    // A location change in Exchange comes back to Halo.
    sim.act(
        json!({"op": "update_event", "mailbox": LEAH, "id": visit["id"],
                   "patch": {"location": {"displayName": "Warehouse 5"}}}),
    )
    .await;
    sim.expect(&["sync", "--once"], 0).await;
    let appointments = sim.appointments().await;
    assert_eq!(
        by_subject(&appointments, "Site visit")["appointment_location_free_text"],
        "Warehouse 5"
    );

    // With location sync off, locations stay where they are.
    let quiet = SyncSim::start(
        people(vec![event("Audit", 1, 9, 10)], vec![]),
        "[sync]\nsync_location = false\n",
    )
    .await;
    let id = quiet.events(LEAH).await[0]["id"].clone();
    quiet
        .act(json!({"op": "update_event", "mailbox": LEAH, "id": id,
                    "patch": {"location": {"displayName": "Secret bunker"}}}))
        .await;
    quiet.expect(&["sync", "--once"], 0).await;
    assert!(
        !json!(quiet.appointments().await)
            .to_string()
            .contains("Secret bunker")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_appointments_stay_private_both_ways() {
    let mut private_halo = appointment("Salary review", 2, 2, 13, 14);
    private_halo["is_private"] = json!(true);
    let mut private_event = event("Dentist", 1, 15, 16);
    private_event["sensitivity"] = json!("private");
    let sim = SyncSim::start(
        people(
            vec![private_event, event("Audit", 1, 9, 10)],
            vec![private_halo],
        ),
        "",
    )
    .await;
    sim.expect(&["sync", "--once"], 0).await;
    let events = sim.events(LEAH).await;
    assert_eq!(
        by_subject(&events, "Salary review")["sensitivity"],
        "private"
    );
    let appointments = sim.appointments().await;
    let dentist = appointments
        .iter()
        .find(|a| a["is_private"] == json!(true) && a["subject"] != "Salary review")
        .expect("the private event, as times only");
    assert!(!dentist.to_string().contains("Dentist"));

    // A new subject on the private event is not copied; a new time is.
    let event_id = by_subject(&events, "Dentist")["id"].clone();
    sim.act(json!({"op": "update_event", "mailbox": LEAH, "id": event_id,
                   "patch": {"subject": "Dentist (Dr. Who)",
                             "start": {"dateTime": format!("{}T16:00:00", day(1)), "timeZone": "UTC"},
                             "end": {"dateTime": format!("{}T17:00:00", day(1)), "timeZone": "UTC"}}}))
        .await;
    sim.expect(&["sync", "--once"], 0).await;
    let moved = sim
        .appointments()
        .await
        .into_iter()
        .find(|a| a["id"] == dentist["id"])
        .expect("still there");
    assert!(
        moved["start_date"].as_str().unwrap().ends_with("T16:00:00"),
        "{moved}"
    );
    assert!(!moved.to_string().contains("Dr. Who"));

    // With "import as private", every imported event is times only.
    let all_private = SyncSim::start(
        people(vec![event("Board meeting", 1, 9, 10)], vec![]),
        "[sync]\nimport_as_private = true\n",
    )
    .await;
    all_private.expect(&["import"], 0).await;
    let imported = all_private.appointments().await;
    assert_eq!(imported.len(), 1);
    assert_eq!(imported[0]["is_private"], json!(true));
    assert!(!imported[0].to_string().contains("Board meeting"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_types_become_teams_meetings_with_the_link_back_in_halo() {
    let mut teams = appointment("Onboarding call", 2, 2, 10, 11);
    teams["appointment_type_id"] = json!(7);
    let mut visit = appointment("Site visit", 2, 2, 13, 14);
    visit["appointment_type_id"] = json!(1);
    let sim = SyncSim::start(
        people(vec![], vec![teams, visit]),
        "[sync]\nteams_appointment_type_ids = [7]\n",
    )
    .await;
    sim.expect(&["sync", "--once"], 0).await;
    let events = sim.events(LEAH).await;
    let call = by_subject(&events, "Onboarding call");
    assert_eq!(call["isOnlineMeeting"], json!(true));
    assert_eq!(call["onlineMeetingProvider"], "teamsForBusiness");
    let join = call["onlineMeeting"]["joinUrl"]
        .as_str()
        .expect("a join link")
        .to_string();
    assert_eq!(
        by_subject(&events, "Site visit")["isOnlineMeeting"],
        json!(false)
    );
    let appointments = sim.appointments().await;
    assert_eq!(
        by_subject(&appointments, "Onboarding call")["online_meeting_url"],
        json!(join)
    );
    // The write-back is not mistaken for an edit.
    let rest = sim.expect(&["sync", "--once"], 0).await;
    assert_eq!(rest.matches("nothing to do").count(), 2, "{rest}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn additional_agents_become_attendees_only_when_invitations_are_allowed() {
    let mut shared = appointment("Rack install", 2, 2, 10, 12);
    shared["agents"] = json!([{"id": 2}, {"id": 3}]);
    let sim = SyncSim::start(
        people(vec![], vec![shared.clone()]),
        "[sync]\nattendees = \"agents\"\n",
    )
    .await;
    sim.expect(&["sync", "--once"], 0).await;
    let events = sim.events(LEAH).await;
    let install = by_subject(&events, "Rack install");
    let attendees: Vec<&str> = install["attendees"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["emailAddress"]["address"].as_str().unwrap())
        .collect();
    assert_eq!(attendees, ["amir@contoso.com"]);
    let invitations = sim.state().await["invitations"].clone();
    assert!(
        invitations.to_string().contains("amir@contoso.com"),
        "{invitations}"
    );

    let quiet = SyncSim::start(
        people(vec![], vec![shared]),
        "[sync]\nattendees = \"none\"\n",
    )
    .await;
    quiet.expect(&["sync", "--once"], 0).await;
    let events = quiet.events(LEAH).await;
    assert_eq!(by_subject(&events, "Rack install")["attendees"], json!([]));
    assert_eq!(
        quiet.state().await["invitations"],
        json!([]),
        "no surprise invitations"
    );
    // And an Exchange edit does not strip Amir from the Halo appointment.
    let id = by_subject(&events, "Rack install")["id"].clone();
    quiet
        .act(json!({"op": "update_event", "mailbox": LEAH, "id": id, "patch": {"subject": "Rack install (2U)"}}))
        .await;
    quiet.expect(&["sync", "--once"], 0).await;
    let halo = quiet.appointments().await;
    let install = by_subject(&halo, "Rack install (2U)");
    assert!(
        install["agents"].to_string().contains("\"id\":3"),
        "{install}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_series_with_an_exception_and_a_cancellation() {
    let mut weekly = event("Weekly sync", 1, 14, 15);
    weekly["recurrence"] = json!({
        "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": [sync_sim::weekday(1)]},
        "range": {"type": "numbered", "startDate": day(1), "numberOfOccurrences": 4}
    });
    let sim = SyncSim::start(people(vec![weekly], vec![]), "").await;
    sim.expect(&["sync", "--once"], 0).await;
    let mut occurrences = sim.appointments().await;
    occurrences.sort_by_key(|a| a["start_date"].as_str().unwrap().to_string());
    assert_eq!(occurrences.len(), 4);
    let master = occurrences[0]["recurring_master_id"].clone();
    assert!(
        master.is_string(),
        "linked to its series: {:#}",
        occurrences[0]
    );
    assert!(
        occurrences
            .iter()
            .all(|o| o["recurring_master_id"] == master)
    );

    // The second occurrence moves an hour later (an exception); the third
    // is cancelled.
    let second = occurrences[1]["entryid"].clone();
    let third = occurrences[2]["entryid"].clone();
    let second_date = &occurrences[1]["start_date"].as_str().unwrap()[..10];
    sim.act(json!({"op": "update_event", "mailbox": LEAH, "id": second,
                   "patch": {"start": {"dateTime": format!("{second_date}T15:00:00"), "timeZone": "UTC"},
                             "end": {"dateTime": format!("{second_date}T16:00:00"), "timeZone": "UTC"}}}))
        .await;
    sim.act(json!({"op": "delete_event", "mailbox": LEAH, "id": third}))
        .await;
    let out = sim.expect(&["sync", "--once"], 0).await;
    assert!(out.contains("update in Halo: \"Weekly sync\""), "{out}");
    assert!(out.contains("delete in Halo"), "{out}");
    let after = sim.appointments().await;
    assert_eq!(after.len(), 3, "{after:#?}");
    let moved = after
        .iter()
        .find(|a| a["id"] == occurrences[1]["id"])
        .expect("exception kept");
    assert!(
        moved["start_date"].as_str().unwrap().ends_with("T15:00:00"),
        "{moved}"
    );
    assert!(
        after.iter().all(|a| a["id"] != occurrences[2]["id"]),
        "cancelled one gone"
    );
    let rest = sim.expect(&["sync", "--once"], 0).await;
    assert_eq!(rest.matches("nothing to do").count(), 2, "{rest}");
}
