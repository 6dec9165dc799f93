//! Owner override: the appointments halosync creates in Exchange are
//! meetings organized by one scheduler mailbox, with the agent invited.
//!
//! The guide's "Owner override for new appointments": with
//! `owner_override = S` on a connection, a Halo appointment of agent A is
//! created in S's calendar (transactionId computed for S) with A — and, per
//! `[sync] attendees`, the additional agents — as attendees, so the
//! invitations come from S. Exchange then delivers A's own copy of the
//! meeting: another item, in A's calendar, with the same iCalUId and none
//! of halosync's extended properties (S's event carries the Halo id).
//!
//! **The link is A's copy.** A's sync observes A's calendar, so the link
//! (mailbox A) names the copy A sees and records the meeting's iCalUId.
//! Right after the create the copy is looked up by iCalUId in A's calendar.
//! Exchange delivers it with a delay, so it may not be there yet: the link
//! is then saved with its Halo side and the iCalUId only, which keeps the
//! appointment from being created again, and a later observation pairs it
//! with the copy once it arrives, before anything is planned
//! ([`super::meetings`]). The copy is never imported into Halo as new.
//!
//! **Writes go to the organizer's event.** An attendee's edit of its copy
//! stays local (as in Outlook) and the organizer's next update overwrites
//! it, so Halo → Exchange updates and deletions of a link whose event is a
//! copy of one of S's meetings are made on S's event, found by iCalUId.
//! Exchange carries them to every copy; A's copy comes back to the next
//! observation with a new version and the content halosync wrote, which is
//! recognised by its fingerprint like any own write (no ping-pong). A
//! create first looks for a meeting S already holds for the appointment (by
//! halosync's Halo-id property): one created before its link was saved, or
//! kept after A deleted its copy, is updated, never doubled.
//!
//! **Update scheduler appointment** (`update_scheduler_appointment`): a
//! change A makes to its own copy goes to Halo as usual and also to S's
//! meeting, so S and the other attendees see it. Only A's own change is
//! carried: when S's meeting differs from the copy and was modified after
//! it, S's change is the newer one and is on its way to the copy, so
//! carrying the copy would undo it. Without the setting A's change reaches
//! Halo only and stays local in Exchange until S's next update.

use std::collections::BTreeMap;

use serde_json::json;

use super::apply::{CreatedEvent, WriteError};
use super::engine::{MailboxSync, etag, graph_error};
use super::observe::EventIdentity;
use super::plan::{GraphId, HaloId, Item, Side, Synced};
use crate::config::ConnectionConfig;
use crate::graph::model::{Attendee, EmailAddress, Event};
use crate::model::Appointment;
use crate::store::WriteKind;

/// A connection's owner override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerOverride {
    /// The scheduler's mailbox (lower-case): the organizer of every meeting.
    pub scheduler: String,
    /// Carry an agent's edit of its copy to the scheduler's meeting.
    pub update_scheduler: bool,
}

impl OwnerOverride {
    pub fn of(connection: &ConnectionConfig) -> Option<Self> {
        let scheduler = connection.owner_override.as_deref()?.trim();
        (!scheduler.is_empty()).then(|| Self {
            scheduler: scheduler.to_ascii_lowercase(),
            update_scheduler: connection.update_scheduler_appointment,
        })
    }

    /// The overrides of `connections`, by connection name.
    pub fn by_connection(connections: &[ConnectionConfig]) -> BTreeMap<String, Self> {
        connections
            .iter()
            .filter_map(|c| Some((c.name.clone(), Self::of(c)?)))
            .collect()
    }

    /// Whether the agent of `mailbox` gets its appointments as meetings:
    /// every agent but the scheduler, whose own appointments are its own.
    pub fn applies_to(&self, mailbox: &str) -> bool {
        !mailbox.trim().eq_ignore_ascii_case(&self.scheduler)
    }

    fn organizes(&self, identity: &EventIdentity) -> bool {
        identity.organizer.as_deref() == Some(self.scheduler.as_str())
    }
}

/// Whether an agent's changed copy is its own edit, to be carried to the
/// scheduler's meeting: it differs from the meeting (as the copy would show
/// it) and is the newer of the two.
fn carries(copy: &Item<GraphId>, meeting: &Item<GraphId>) -> bool {
    copy.content.fingerprint() != meeting.content.fingerprint() && copy.modified > meeting.modified
}

/// The organizer's event among the events of one meeting.
fn organizers(events: Vec<Event>) -> Option<Event> {
    events.into_iter().find(|e| e.is_organizer != Some(false))
}

impl MailboxSync<'_> {
    /// The scheduler's meeting for `content`: the agent always invited (the
    /// meeting exists to be on its calendar), the additional agents as the
    /// attendee setting writes them. An update that writes no attendees
    /// leaves the meeting's as they are.
    fn meeting_body(&self, content: &Appointment, teams: bool, creating: bool) -> Event {
        let mut event = self.settings.graph_mapping.write(content, teams);
        if creating || event.attendees.is_some() {
            let agent = Attendee {
                email_address: EmailAddress {
                    address: Some(self.mailbox.to_string()),
                    name: None,
                },
                attendee_type: Some("required".into()),
                status: None,
            };
            let others = event.attendees.take().unwrap_or_default();
            event.attendees = Some(
                std::iter::once(agent)
                    .chain(others.into_iter().filter(|a| {
                        a.email_address
                            .address
                            .as_deref()
                            .is_none_or(|address| !address.eq_ignore_ascii_case(self.mailbox))
                    }))
                    .collect(),
            );
        }
        event
    }

    /// Creates `origin` as a meeting in the scheduler's calendar (or updates
    /// the one the scheduler already holds for it) and finds the agent's copy.
    pub(super) async fn create_meeting(
        &mut self,
        owner: &OwnerOverride,
        content: &Appointment,
        origin: &Item<HaloId>,
        teams: bool,
    ) -> Result<CreatedEvent, WriteError> {
        let mut body = self.meeting_body(content, teams, true);
        body.set_halo_id(origin.id);
        let held = self
            .graph
            .events_with_halo_id(&owner.scheduler, origin.id)
            .await
            .map_err(graph_error)?;
        let meeting = match organizers(held) {
            Some(held) => self.patch_meeting(owner, &held, &body).await?,
            None => self.post_event(&owner.scheduler, &body, origin).await?,
        };
        let copy = self
            .copy_of_meeting(&owner.scheduler, &meeting, origin.id)
            .await;
        // Every copy of a Teams meeting has the organizer's join link.
        let join_url = self
            .read_event(&meeting)
            .ok()
            .and_then(|m| m.content.online_meeting_url);
        let halo = self
            .write_back_join_url(origin, teams, join_url.as_ref())
            .await;
        Ok(CreatedEvent { event: copy, halo })
    }

    /// The agent's copy of `meeting` (organized by `scheduler`) for the
    /// link of Halo appointment `halo_id`; `None` (remembered, so the link
    /// keeps the meeting's iCalUId) while Exchange has not delivered it.
    pub(super) async fn copy_of_meeting(
        &mut self,
        scheduler: &str,
        meeting: &Event,
        halo_id: HaloId,
    ) -> Option<Item<GraphId>> {
        let identity = EventIdentity {
            ical_uid: meeting.ical_uid.clone(),
            series_master_id: None,
            organizer: Some(scheduler.to_ascii_lowercase()),
        };
        let found = match identity.ical_uid.as_deref() {
            Some(uid) => match self.graph.events_with_ical_uid(self.mailbox, uid).await {
                Ok(events) => events.into_iter().find(|e| e.is_organizer == Some(false)),
                Err(error) => {
                    tracing::warn!(%error, halo_id, "could not look for the agent's copy of the meeting; it is paired when it is next observed");
                    None
                }
            },
            None => None,
        };
        if let Some(copy) = found
            && let Ok(item) = self.read_event(&copy)
        {
            self.remember(&copy);
            return Some(item);
        }
        self.awaiting_copy.insert(halo_id, identity);
        None
    }

    /// The scheduler's meeting of which the agent's event `copy_id` is a
    /// copy; `None` when the event is the agent's own.
    async fn meeting_of_copy(
        &mut self,
        owner: &OwnerOverride,
        copy_id: &GraphId,
    ) -> Result<Option<Event>, WriteError> {
        let identity = match self.identity(copy_id) {
            Some(identity) => identity.clone(),
            None => {
                let event = self
                    .graph
                    .event(self.mailbox, copy_id)
                    .await
                    .map_err(graph_error)?;
                self.remember(&event);
                EventIdentity::of(&event)
            }
        };
        let Some(uid) = identity
            .ical_uid
            .as_deref()
            .filter(|_| owner.organizes(&identity))
        else {
            return Ok(None);
        };
        let events = self
            .graph
            .events_with_ical_uid(&owner.scheduler, uid)
            .await
            .map_err(graph_error)?;
        organizers(events).map(Some).ok_or(WriteError::NotFound)
    }

    /// PATCHes the scheduler's `meeting` (at the version just read).
    async fn patch_meeting(
        &mut self,
        owner: &OwnerOverride,
        meeting: &Event,
        body: &Event,
    ) -> Result<Event, WriteError> {
        let id = meeting
            .id
            .clone()
            .ok_or_else(|| WriteError::Refused("the scheduler's meeting has no id".into()))?;
        self.journal(
            Side::Exchange,
            WriteKind::Update,
            None,
            &json!({"mailbox": self.mailbox, "organizer": owner.scheduler, "event_id": id}),
        )?;
        let if_match = meeting.change_key.as_deref().map(etag);
        self.graph
            .update_event(&owner.scheduler, &id, body, if_match.as_deref())
            .await
            .map_err(|e| {
                let error = graph_error(e);
                self.write_failed(&error, false);
                error
            })
    }

    /// A Halo change of a link whose event is a copy of one of the
    /// scheduler's meetings, made on the meeting; `None` when the event is
    /// the agent's own (the caller updates it in place).
    pub(super) async fn update_meeting(
        &mut self,
        owner: &OwnerOverride,
        target: &Synced<GraphId>,
        content: &Appointment,
    ) -> Result<Option<Item<GraphId>>, WriteError> {
        let Some(meeting) = self.meeting_of_copy(owner, &target.id).await? else {
            return Ok(None);
        };
        let body = self.meeting_body(content, false, false);
        self.patch_meeting(owner, &meeting, &body).await?;
        // Exchange brings the copy in line when it delivers the update. The
        // link records it at the version this run saw, with the content just
        // written: the delivered version is then no change.
        Ok(Some(Item {
            id: target.id.clone(),
            version: target.version.clone(),
            modified: self.clock.now(),
            content: content.canonical(),
        }))
    }

    /// A Halo deletion of a link whose event is a copy of one of the
    /// scheduler's meetings: the meeting is deleted, which cancels every
    /// copy. False when the event is the agent's own.
    pub(super) async fn delete_meeting(
        &mut self,
        owner: &OwnerOverride,
        target: &Synced<GraphId>,
    ) -> Result<bool, WriteError> {
        let meeting = match self.meeting_of_copy(owner, &target.id).await {
            Ok(Some(meeting)) => meeting,
            Ok(None) => return Ok(false),
            // Already gone is what a delete wants.
            Err(WriteError::NotFound) => return Ok(true),
            Err(error) => return Err(error),
        };
        let id = meeting.id.clone().unwrap_or_default();
        self.journal(
            Side::Exchange,
            WriteKind::Delete,
            None,
            &json!({"mailbox": self.mailbox, "organizer": owner.scheduler, "event_id": id}),
        )?;
        let if_match = meeting.change_key.as_deref().map(etag);
        self.graph
            .delete_event(&owner.scheduler, &id, if_match.as_deref())
            .await
            .map_err(|e| {
                let error = graph_error(e);
                self.write_failed(&error, false);
                error
            })?;
        Ok(true)
    }

    /// With `update_scheduler_appointment`: the agent's own edit of its
    /// copy (about to be copied to Halo) is made on the scheduler's meeting
    /// too.
    pub(super) async fn carry_to_scheduler(
        &mut self,
        owner: &OwnerOverride,
        copy: &Item<GraphId>,
    ) -> Result<(), WriteError> {
        if !owner.update_scheduler {
            return Ok(());
        }
        let meeting = match self.meeting_of_copy(owner, &copy.id).await {
            Ok(Some(meeting)) => meeting,
            // The agent's own event, or a meeting the scheduler no longer
            // holds: nothing to carry it to.
            Ok(None) | Err(WriteError::NotFound) => return Ok(()),
            Err(error) => return Err(error),
        };
        let as_copied = self.read_event(&meeting)?;
        if !carries(copy, &as_copied) {
            return Ok(());
        }
        let body = self.meeting_body(&copy.content, false, false);
        self.patch_meeting(owner, &meeting, &body).await?;
        // No link records this write: the copy's own version is what the
        // link keeps, and the echo Exchange delivers matches its content.
        self.write_done();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, TimeZone, Utc};

    fn at(minute: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + minute * 60, 0)
            .single()
            .expect("valid time")
    }

    fn item(subject: &str, modified: i64) -> Item<GraphId> {
        Item {
            id: "E".into(),
            version: "v".into(),
            modified: at(modified),
            content: Appointment {
                start: at(60),
                end: at(90),
                subject: subject.into(),
                ..Appointment::default()
            },
        }
    }

    #[test]
    fn only_the_agents_own_newer_edit_is_carried_to_the_scheduler() {
        // The agent renamed its copy after the scheduler's last change.
        assert!(carries(&item("Moved by agent", 9), &item("Audit", 5)));
        // The scheduler changed the meeting after the copy: its change is
        // on the way to the copy and must not be undone.
        assert!(!carries(&item("Audit", 5), &item("Moved by scheduler", 9)));
        // Already the same: nothing to carry.
        assert!(!carries(&item("Audit", 9), &item("Audit", 5)));
    }

    #[test]
    fn the_override_applies_to_every_agent_but_the_scheduler() {
        let owner = OwnerOverride {
            scheduler: "scheduler@contoso.com".into(),
            update_scheduler: false,
        };
        assert!(owner.applies_to("leah@contoso.com"));
        assert!(!owner.applies_to(" Scheduler@Contoso.com"));
        let copy = EventIdentity {
            ical_uid: Some("U".into()),
            series_master_id: None,
            organizer: Some("scheduler@contoso.com".into()),
        };
        assert!(owner.organizes(&copy));
        assert!(!owner.organizes(&EventIdentity::default()));
    }
}
