//! Meetings across mailboxes: what Exchange does for the attendees of an
//! event its organizer saves.
//!
//! When an organizer's event with attendees is created, every attendee that
//! is a mailbox of this simulator gets its own copy: a new item (its own
//! id) in the attendee's default calendar with the same iCalUId,
//! `isOrganizer: false`, the organizer as `organizer`, `responseStatus`
//! `notResponded`, and none of the organizer's extended properties
//! (Exchange does not copy them to attendees). Real Exchange delivers the
//! meeting request through mail transport, seconds to minutes later; the
//! simulator delivers it at once, so a client must not rely on the copy
//! being there when the organizer's create answers.
//!
//! The organizer's later saves update each copy's meeting properties
//! (times, subject, body, location, attendees, series shape and
//! exceptions) and keep what is the attendee's own (response, reminder,
//! categories, show-as); an attendee added later gets a copy, one removed
//! has theirs cancelled, and an attendee who deleted their copy gets it
//! back, as a meeting update does in Outlook. Deleting the organizer's event
//! cancels the copies (`isCancelled: true`, reference §2.2); they stay until
//! their owner deletes them. An attendee editing its own copy changes only
//! that copy, until the organizer's next update overwrites it.
//!
//! Every change to a copy is a change in the attendee's mailbox like any
//! other: it bumps the copy's changeKey (so delta rounds report it) and
//! notifies the attendee mailbox's subscriptions.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::model::{ChangeType, Event, ResponseStatus, ResponseType};
use super::store::{PRIMARY_CALENDAR, StoredEvent};
use super::{Inner, Shared, rules, subscriptions, time};

/// After the organizer's event `key` in mailbox `organizer` was created or
/// changed: brings every attendee's copy in line. `notify` is false while
/// seeding, which sends no notifications.
pub(crate) fn organizer_saved(
    shared: &Arc<Shared>,
    inner: &mut Inner,
    organizer: &str,
    key: Uuid,
    notify: bool,
) {
    let Some(meeting) = inner
        .mailboxes
        .get(organizer)
        .and_then(|mb| mb.events.get(&key))
        .filter(|stored| stored.event.is_organizer == Some(true))
        .cloned()
    else {
        return;
    };
    let now = shared.now();
    let invited: BTreeSet<String> = rules::attendee_addresses(&meeting.event)
        .iter()
        .filter_map(|address| inner.mailbox_key(address))
        .filter(|attendee| attendee != organizer)
        .collect();
    let existing = copies(inner, organizer, &meeting.event);
    let mut changes = Vec::new();
    for attendee in &invited {
        let Some(mb) = inner.mailboxes.get_mut(attendee) else {
            continue;
        };
        match existing.iter().find(|(m, _)| m == attendee) {
            Some((_, copy_key)) => {
                if let Some(copy) = mb.events.get_mut(copy_key) {
                    follow(copy, &meeting, now);
                    changes.push((attendee.clone(), *copy_key, ChangeType::Updated));
                }
            }
            None => {
                let copy_key = Uuid::new_v4();
                let mut copy = StoredEvent {
                    key: copy_key,
                    calendar: PRIMARY_CALENDAR,
                    event: Event::default(),
                    exceptions: Default::default(),
                    cancelled: Default::default(),
                    extended: Vec::new(),
                };
                follow(&mut copy, &meeting, now);
                copy.event.created_date_time = copy.event.last_modified_date_time.clone();
                mb.events.insert(copy_key, copy);
                changes.push((attendee.clone(), copy_key, ChangeType::Created));
            }
        }
    }
    for (attendee, copy_key) in existing.iter().filter(|(m, _)| !invited.contains(m)) {
        if cancel(inner, attendee, *copy_key, now) {
            changes.push((attendee.clone(), *copy_key, ChangeType::Updated));
        }
    }
    if notify {
        for (attendee, copy_key, change) in changes {
            subscriptions::notify(shared, inner, &attendee, copy_key, change);
        }
    }
}

/// After the organizer deleted `meeting` from mailbox `organizer`: every
/// copy is cancelled (and stays in its calendar).
pub(crate) fn organizer_deleted(
    shared: &Arc<Shared>,
    inner: &mut Inner,
    organizer: &str,
    meeting: &StoredEvent,
) {
    if meeting.event.is_organizer != Some(true) {
        return;
    }
    let now = shared.now();
    for (attendee, copy_key) in copies(inner, organizer, &meeting.event) {
        if cancel(inner, &attendee, copy_key, now) {
            subscriptions::notify(shared, inner, &attendee, copy_key, ChangeType::Updated);
        }
    }
}

/// The copies of `meeting` in other mailboxes: same iCalUId, organized by
/// `organizer`, not their mailbox's own.
fn copies(inner: &Inner, organizer: &str, meeting: &Event) -> Vec<(String, Uuid)> {
    let Some(uid) = meeting.i_cal_uid.as_deref() else {
        return Vec::new();
    };
    inner
        .mailboxes
        .iter()
        .filter(|(key, _)| key.as_str() != organizer)
        .flat_map(|(key, mb)| {
            mb.events
                .values()
                .filter(|stored| {
                    stored.event.is_organizer == Some(false)
                        && stored.event.i_cal_uid.as_deref() == Some(uid)
                        && organized_by(&stored.event, organizer)
                })
                .map(move |stored| (key.clone(), stored.key))
        })
        .collect()
}

fn organized_by(event: &Event, mailbox: &str) -> bool {
    event
        .organizer
        .as_ref()
        .and_then(|o| o.email_address.as_ref())
        .and_then(|e| e.address.as_deref())
        .is_some_and(|address| address.eq_ignore_ascii_case(mailbox))
}

/// Marks a copy cancelled; false when it already was (or is gone).
fn cancel(inner: &mut Inner, mailbox: &str, key: Uuid, now: DateTime<Utc>) -> bool {
    let Some(copy) = inner
        .mailboxes
        .get_mut(mailbox)
        .and_then(|mb| mb.events.get_mut(&key))
    else {
        return false;
    };
    if copy.event.is_cancelled == Some(true) {
        return false;
    }
    copy.event.is_cancelled = Some(true);
    copy.event.change_key = Some(rules::new_change_key());
    copy.event.last_modified_date_time = Some(time::format_instant(now));
    true
}

/// Makes `copy` show the organizer's `meeting`, keeping the attendee's own
/// properties.
fn follow(copy: &mut StoredEvent, meeting: &StoredEvent, now: DateTime<Utc>) {
    let stamp = time::format_instant(now);
    copy.event = attendee_view(&meeting.event, Some(&copy.event), &stamp);
    copy.exceptions = meeting
        .exceptions
        .iter()
        .map(|(original, exception)| {
            let previous = copy.exceptions.get(original);
            (*original, attendee_view(exception, previous, &stamp))
        })
        .collect();
    copy.cancelled = meeting.cancelled.clone();
    // Exchange does not copy extended properties to attendees.
    copy.extended.clear();
}

/// The organizer's event as an attendee's calendar holds it.
fn attendee_view(meeting: &Event, previous: Option<&Event>, stamp: &str) -> Event {
    let mut copy = meeting.clone();
    copy.is_organizer = Some(false);
    copy.is_cancelled = Some(false);
    copy.transaction_id = None;
    copy.single_value_extended_properties = None;
    copy.change_key = Some(rules::new_change_key());
    copy.last_modified_date_time = Some(stamp.to_string());
    copy.response_status = Some(ResponseStatus {
        response: Some(ResponseType::NotResponded),
        time: Some("0001-01-01T00:00:00Z".into()),
    });
    if let Some(previous) = previous.filter(|p| p.created_date_time.is_some()) {
        copy.created_date_time = previous.created_date_time.clone();
        copy.response_status = previous.response_status.clone();
        copy.categories = previous.categories.clone();
        copy.is_reminder_on = previous.is_reminder_on;
        copy.reminder_minutes_before_start = previous.reminder_minutes_before_start;
        copy.show_as = previous.show_as;
    }
    copy
}
