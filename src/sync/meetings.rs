//! One meeting, several calendars: before a mailbox is planned, its
//! unlinked events that are another calendar's view of a meeting halosync
//! already syncs are settled, so none of them is imported into Halo again.
//!
//! The organizer's event and every attendee's copy of a meeting share its
//! iCalUId, and each link records the iCalUId of its event. For every
//! unlinked event of the observed mailbox whose iCalUId a link records:
//! - **A link of this mailbox waiting for its copy** (owner override: the
//!   meeting was created in the scheduler's calendar before the agent's
//!   copy arrived, see [`super::owner`]): the event is that copy and becomes
//!   the link's Exchange side, last synced with the content halosync wrote
//!   (the Halo side's fingerprint) at a version never seen. The planner
//!   then records it if it arrived as written, or carries it to Halo if
//!   someone changed it since; a Halo edit meanwhile updates the meeting.
//! - **A link of another mailbox**: the event is that link's meeting seen
//!   from a second calendar (an additional agent's copy, or the scheduler's
//!   own event under an owner override). It is synced through that link,
//!   so it is left out of this mailbox's plan, even once that link is
//!   removed: a meeting whose appointment was deleted does not come back as
//!   an attendee's new appointment.
//!
//! What no link records yet: an unlinked attendee's copy whose organizer is
//! another calendar halosync syncs (a meeting one technician set up in
//! Outlook for another) is left out too. The organizer's calendar imports
//! the meeting, with the attendee as an additional agent, whichever of the
//! two is synced first.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use super::observe::{Details, Observation};
use super::plan::{GraphId, Seen, Snapshot, Synced};
use crate::store::{MeetingLink, Store};

/// Settles `observation` of `mailbox` against the meetings the store's
/// links record.
pub fn settle(
    observation: &mut Observation,
    mailbox: &str,
    store: &Mutex<Store>,
    served: &BTreeSet<String>,
) -> Result<(), String> {
    settle_recorded(observation, mailbox, store)?;
    leave_out_invitations(observation, mailbox, served);
    Ok(())
}

/// The rules for meetings a link records (see the module doc).
fn settle_recorded(
    observation: &mut Observation,
    mailbox: &str,
    store: &Mutex<Store>,
) -> Result<(), String> {
    let wanted = unlinked_meetings(&observation.snapshot, &observation.details);
    if wanted.is_empty() {
        return Ok(());
    }
    let store = store
        .lock()
        .map_err(|_| "the database handle was poisoned".to_string())?;
    let mut meetings = BTreeMap::new();
    for uid in wanted.into_values() {
        let links = store.links_of_meeting(&uid).map_err(|e| e.to_string())?;
        if !links.is_empty() {
            meetings.insert(uid, links);
        }
    }
    drop(store);
    settle_snapshot(
        &mut observation.snapshot,
        &observation.details,
        mailbox,
        &meetings,
    );
    Ok(())
}

/// Leaves out the unlinked copies of meetings another served calendar
/// organizes: they are synced through the organizer's calendar.
fn leave_out_invitations(observation: &mut Observation, mailbox: &str, served: &BTreeSet<String>) {
    let linked: BTreeSet<GraphId> = observation
        .snapshot
        .links
        .iter()
        .filter_map(|l| l.graph.as_ref().map(|g| g.id.clone()))
        .collect();
    let here = mailbox.trim().to_ascii_lowercase();
    let invitations: Vec<(GraphId, String, String)> = observation
        .snapshot
        .graph
        .iter()
        .filter(|(id, _)| !linked.contains(*id))
        .filter_map(|(id, seen)| {
            let Seen::Present(item) = seen else {
                return None;
            };
            let organizer = observation.details.events.get(id)?.organizer.clone()?;
            (organizer != here && served.contains(&organizer))
                .then(|| (id.clone(), item.content.subject.clone(), organizer))
        })
        .collect();
    for (id, subject, organizer) in invitations {
        observation.snapshot.graph.remove(&id);
        observation.skipped.push(format!(
            "\"{subject}\": an invitation from {organizer}, synced through their calendar"
        ));
    }
}

/// The observed events no link names, with their iCalUIds.
fn unlinked_meetings(snapshot: &Snapshot, details: &Details) -> BTreeMap<GraphId, String> {
    let linked: BTreeSet<&GraphId> = snapshot
        .links
        .iter()
        .filter_map(|l| l.graph.as_ref().map(|g| &g.id))
        .collect();
    snapshot
        .graph
        .iter()
        .filter(|(id, seen)| matches!(seen, Seen::Present(_)) && !linked.contains(id))
        .filter_map(|(id, _)| {
            let uid = details.events.get(id)?.ical_uid.clone()?;
            Some((id.clone(), uid))
        })
        .collect()
}

/// The rules of the module doc, given the links of each meeting.
fn settle_snapshot(
    snapshot: &mut Snapshot,
    details: &Details,
    mailbox: &str,
    meetings: &BTreeMap<String, Vec<MeetingLink>>,
) {
    for (id, uid) in unlinked_meetings(snapshot, details) {
        let Some(links) = meetings.get(&uid) else {
            continue;
        };
        let here = |m: &MeetingLink| m.mailbox.eq_ignore_ascii_case(mailbox);
        let waiting: BTreeSet<_> = links
            .iter()
            .filter(|m| here(m) && m.awaiting_copy)
            .map(|m| m.link)
            .collect();
        let link = snapshot
            .links
            .iter_mut()
            .find(|l| waiting.contains(&l.id) && l.graph.is_none());
        if let Some(link) = link
            && let Some(halo) = &link.halo
        {
            link.graph = Some(Synced {
                id,
                version: String::new(),
                fingerprint: halo.fingerprint,
            });
            continue;
        }
        if links.iter().any(|m| !here(m)) {
            tracing::debug!(event = %id, "a meeting synced through another calendar's link");
            snapshot.graph.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConflictPolicy, DeleteGuard, DeletePolicy, EditDeletePolicy};
    use crate::model::Appointment;
    use crate::sync::observe::EventIdentity;
    use crate::sync::plan::{Action, Item, Link, Policy, Side, Source, plan};
    use chrono::{TimeZone, Utc};

    fn content(subject: &str) -> Appointment {
        let at = |hour| {
            Utc.with_ymd_and_hms(2026, 12, 1, hour, 0, 0)
                .single()
                .expect("valid date")
        };
        Appointment {
            start: at(9),
            end: at(10),
            subject: subject.into(),
            ..Appointment::default()
        }
        .canonical()
    }

    fn policy() -> Policy {
        Policy {
            conflict: ConflictPolicy::Newest,
            edit_delete: EditDeletePolicy::EditWins,
            deletes: DeletePolicy::Both,
            guard: DeleteGuard {
                max_per_run: 10,
                max_fraction: 0.2,
            },
            allow_mass_deletes: false,
        }
    }

    /// Leah's mailbox: link 7 (Halo 41, "Audit") waits for its copy; the
    /// copy `copy` (iCalUId U1) and Amir's meeting `other` (U2) are unlinked.
    fn observed(copy_subject: &str) -> (Snapshot, Details) {
        let halo = Item {
            id: 41,
            version: "h1".into(),
            modified: Utc
                .with_ymd_and_hms(2026, 11, 30, 8, 0, 0)
                .single()
                .expect("valid date"),
            content: content("Audit"),
        };
        let mut snapshot = Snapshot {
            links: vec![Link {
                id: 7,
                halo: Some(halo.synced()),
                graph: None,
            }],
            ..Snapshot::default()
        };
        let mut details = Details::default();
        for (id, uid, subject) in [("copy", "U1", copy_subject), ("other", "U2", "Stand-up")] {
            snapshot.graph.insert(
                id.into(),
                Seen::Present(Item {
                    id: id.into(),
                    version: "ck1".into(),
                    modified: halo.modified,
                    content: content(subject),
                }),
            );
            details.events.insert(
                id.into(),
                EventIdentity {
                    ical_uid: Some(uid.into()),
                    series_master_id: None,
                    organizer: Some("scheduler@contoso.com".into()),
                },
            );
        }
        snapshot.halo.insert(41, Seen::Present(halo));
        (snapshot, details)
    }

    fn meetings() -> BTreeMap<String, Vec<MeetingLink>> {
        BTreeMap::from([
            (
                "U1".to_string(),
                vec![MeetingLink {
                    link: 7,
                    mailbox: "Leah@contoso.com".into(),
                    awaiting_copy: true,
                }],
            ),
            (
                "U2".to_string(),
                vec![MeetingLink {
                    link: 9,
                    mailbox: "amir@contoso.com".into(),
                    awaiting_copy: false,
                }],
            ),
        ])
    }

    #[test]
    fn a_late_copy_is_paired_with_its_link_and_another_links_meeting_is_left_out() {
        let (mut snapshot, details) = observed("Audit");
        // Without settling, both events would be new to Halo.
        let unsettled = plan(&snapshot, &policy());
        assert_eq!(
            unsettled
                .actions
                .iter()
                .filter(|a| matches!(a, Action::Create { to: Side::Halo, .. }))
                .count(),
            2
        );
        settle_snapshot(&mut snapshot, &details, "leah@contoso.com", &meetings());
        assert!(!snapshot.graph.contains_key("other"));
        let settled = plan(&snapshot, &policy());
        let [
            Action::Record {
                link: Some(7),
                graph: Some(graph),
                ..
            },
        ] = settled.actions.as_slice()
        else {
            panic!("expected the copy to be recorded on link 7: {settled:?}");
        };
        assert_eq!((graph.id.as_str(), graph.version.as_str()), ("copy", "ck1"));
    }

    #[test]
    fn a_late_copy_changed_since_the_create_goes_to_halo() {
        let (mut snapshot, details) = observed("Audit (moved by the scheduler)");
        settle_snapshot(&mut snapshot, &details, "leah@contoso.com", &meetings());
        let settled = plan(&snapshot, &policy());
        assert!(
            matches!(
                settled.actions.as_slice(),
                [Action::Update {
                    to: Side::Halo,
                    link: 7,
                    source: Source::Exchange(copy),
                    ..
                }] if copy.id == "copy"
            ),
            "{settled:?}"
        );
    }

    #[test]
    fn meetings_no_link_records_are_left_to_the_planner() {
        let (mut snapshot, details) = observed("Audit");
        settle_snapshot(
            &mut snapshot,
            &details,
            "leah@contoso.com",
            &BTreeMap::new(),
        );
        assert_eq!(snapshot.graph.len(), 2);
        assert!(snapshot.links[0].graph.is_none());
    }

    #[test]
    fn invitations_from_a_served_organizer_are_left_to_its_calendar() {
        let observation = |served: &[&str]| {
            let (snapshot, details) = observed("Audit");
            let mut observation = Observation {
                snapshot,
                skipped: Vec::new(),
                cursors: crate::sync::observe::Cursors::default(),
                details,
            };
            let served: BTreeSet<String> = served.iter().map(|s| s.to_string()).collect();
            leave_out_invitations(&mut observation, "leah@contoso.com", &served);
            observation
        };
        // The scheduler's calendar is synced: its invitations are its own.
        let left_out = observation(&["leah@contoso.com", "scheduler@contoso.com"]);
        assert!(left_out.snapshot.graph.is_empty());
        assert_eq!(left_out.skipped.len(), 2);
        assert!(left_out.skipped[0].contains("an invitation from scheduler@contoso.com"));
        // A customer's (an unsynced organizer's) invitation is synced here.
        let kept = observation(&["leah@contoso.com", "amir@contoso.com"]);
        assert_eq!(kept.snapshot.graph.len(), 2);
        assert!(kept.skipped.is_empty());
    }
}
