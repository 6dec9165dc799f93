//! Observing one mailbox: what both systems hold, mapped into the neutral
//! model — the planner's [`Snapshot`] — with every deletion confirmed by
//! reading the item back.
//!
//! - [`Observer::full`] (in `full`): the whole window on both sides; an item
//!   a link names but the listing lacks is looked up.
//! - [`Observer::incremental`] (in `incremental`): only what changed since
//!   the [`Cursors`] of the last run; whatever is not announced is not
//!   observed, which the planner reads as unchanged.
//!
//! Both return the cursors the next incremental pass starts from. The
//! observer never writes them: the caller saves them only after it applied
//! the plan, so a failed apply is observed again. Nothing is ever deleted
//! because a read failed: gone (404) is a deletion; still there (moved out
//! of the window, or to another agent) is not observed; an error is not
//! observed either. A meeting copy its organizer cancelled counts as gone.

mod full;
mod incremental;
mod shared_halo;

pub use incremental::HALO_CURSOR_OVERLAP;
pub use shared_halo::{SharedHalo, SharedListing};

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::graph::model::{Event, EventType};
use crate::graph::{FirstDeltaPage, GraphClient, GraphError, Window};
use crate::halo::{
    Appointment as HaloAppointment, AppointmentListing, AppointmentQuery, HaloClient, HaloError,
};
use crate::sync::graph_map::{GraphMapping, Unsyncable};
use crate::sync::halo_map::{AgentDirectory, HaloMapping};
use crate::sync::plan::{GraphId, HaloId, Item, Link, Seen, Snapshot};

#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("reading Halo: {0}")]
    Halo(#[from] HaloError),
    #[error("reading Exchange: {0}")]
    Graph(#[from] GraphError),
}

/// Where an incremental pass starts, and what a pass hands back for the
/// caller to save once it applied the plan (`Store::save_delta_link`,
/// `Store::save_halo_cursor`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursors {
    /// The calendarView delta link of the mailbox over the sync window.
    pub delta_link: Option<String>,
    /// The newest Halo `last_modified` seen in the agent's listing.
    pub halo_modified: Option<DateTime<Utc>>,
}

/// A mailbox as observed, with what could not be synced and why.
#[derive(Debug)]
pub struct Observation {
    pub snapshot: Snapshot,
    /// Items left out, each with the reason (shown by `plan`).
    pub skipped: Vec<String>,
    /// Where the next incremental pass starts.
    pub cursors: Cursors,
    /// What the writes need beyond the synced content.
    pub details: Details,
}

/// What was observed of items beyond their synced content.
#[derive(Debug, Default)]
pub struct Details {
    /// Halo appointment types (a Teams type makes a Teams meeting).
    pub halo_types: BTreeMap<HaloId, i64>,
    /// Exchange identities, kept with links and written to Halo as markers.
    pub events: BTreeMap<GraphId, EventIdentity>,
}

/// An Exchange event's ids beyond its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventIdentity {
    pub ical_uid: Option<String>,
    /// Set on occurrences and exceptions of a series.
    pub series_master_id: Option<String>,
    /// The meeting's organizer (lower-case), when it is not this mailbox:
    /// the event is an attendee's copy.
    pub organizer: Option<String>,
}

impl EventIdentity {
    pub fn of(event: &Event) -> Self {
        Self {
            ical_uid: event.ical_uid.clone(),
            series_master_id: event.series_master_id.clone(),
            organizer: event.organizer_of_copy(),
        }
    }
}

impl Details {
    fn note_halo(&mut self, row: &HaloAppointment, snapshot: &mut Snapshot) {
        let Some(id) = row.id else { return };
        if let Some(kind) = row.appointment_type_id {
            self.halo_types.insert(id, kind);
        }
        if let Some(entry) = row
            .entryid
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            snapshot.markers.insert((id, entry.to_string()));
        }
    }

    fn note_event(&mut self, event: &Event, snapshot: &mut Snapshot) {
        let Some(id) = event.id.clone() else { return };
        if let Some(halo_id) = event.halo_id() {
            snapshot.markers.insert((halo_id, id.clone()));
        }
        self.events.insert(id, EventIdentity::of(event));
    }
}

/// Reads both sides of one agent's calendar.
pub struct Observer<'a> {
    pub halo: &'a HaloClient,
    pub graph: &'a GraphClient,
    pub halo_mapping: HaloMapping,
    pub graph_mapping: GraphMapping,
    pub agents: &'a AgentDirectory,
    pub read_ahead: ReadAhead<'a>,
}

/// What a run read once for many agents, this agent's share of it.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReadAhead<'a> {
    /// The Halo listing this agent shares with others in the run, if any
    /// ([`SharedHalo`]); else the incremental pass lists the agent alone.
    pub halo: Option<&'a SharedListing>,
    /// The first page of the mailbox's delta round, if it was read ahead
    /// with other mailboxes' (used only when it came from the same link).
    pub first_delta_page: Option<&'a FirstDeltaPage>,
}

/// What a pass has found so far.
struct Found {
    snapshot: Snapshot,
    skipped: Vec<String>,
    details: Details,
}

impl Found {
    fn new(links: Vec<Link>) -> Self {
        Self {
            snapshot: Snapshot {
                links,
                ..Snapshot::default()
            },
            skipped: Vec::new(),
            details: Details::default(),
        }
    }

    fn take_halo(&mut self, row: &HaloAppointment, observer: &Observer<'_>) {
        if let Some(item) = observer.halo_mapping.read(row, observer.agents) {
            self.details.note_halo(row, &mut self.snapshot);
            self.snapshot.halo.insert(item.id, Seen::Present(item));
        }
    }

    /// Observes `event`; `Err` when it is left out (with the mapping's
    /// reason, if that was why).
    fn take_event(
        &mut self,
        event: &Event,
        mailbox: &str,
        observer: &Observer<'_>,
    ) -> Result<(), Option<Unsyncable>> {
        match observer.graph_mapping.read(event, mailbox) {
            Ok(item) => {
                self.details.note_event(event, &mut self.snapshot);
                self.snapshot
                    .graph
                    .insert(item.id.clone(), Seen::Present(item));
                Ok(())
            }
            Err(why) => {
                self.skipped.push(format!(
                    "Exchange event {}: {why}",
                    event.id.as_deref().unwrap_or("?")
                ));
                Err(Some(why))
            }
        }
    }

    fn into_observation(self, cursors: Cursors) -> Observation {
        Observation {
            snapshot: self.snapshot,
            skipped: self.skipped,
            cursors,
            details: self.details,
        }
    }
}

/// Halo id → the version its link holds.
fn linked_versions(snapshot: &Snapshot) -> BTreeMap<HaloId, String> {
    snapshot
        .links
        .iter()
        .filter_map(|l| l.halo.as_ref().map(|h| (h.id, h.version.clone())))
        .collect()
}

/// What reading back one item a link names found.
enum ReadBack<T> {
    /// 404: confirmed deleted.
    Gone,
    Present(T),
    /// The read failed; nothing may be concluded.
    Unknown,
}

impl Observer<'_> {
    /// Maps one Halo row of `agent_id`'s listing: `None` for a row of
    /// another primary agent (a multi-agent appointment is synced from its
    /// own agent's side), else the item or why it cannot be synced.
    fn halo_item(
        &self,
        agent_id: i64,
        row: &HaloAppointment,
    ) -> Option<Result<Item<HaloId>, String>> {
        if row.agent_id.is_some_and(|id| id != agent_id) {
            return None;
        }
        Some(self.halo_mapping.read(row, self.agents).ok_or_else(|| {
            format!(
                "Halo appointment {} has no usable start and end",
                row.id.unwrap_or_default()
            )
        }))
    }

    /// Observes every live appointment of `agent_id` in `window`; returns
    /// the newest `last_modified` listed.
    async fn take_halo_window(
        &self,
        agent_id: i64,
        window: Window,
        found: &mut Found,
    ) -> Result<Option<DateTime<Utc>>, HaloError> {
        let listing = self
            .halo
            .appointments(&halo_query(agent_id, window, false, None))
            .await?;
        let known = linked_versions(&found.snapshot);
        self.take_halo_rows(agent_id, &listing.appointments, &known, true, found)
            .await;
        Ok(halo_cursor(&listing))
    }

    /// [`Self::halo_item`], except that a re-read of the version its link
    /// already holds (`known`: Halo id → linked version) is `None` too: the
    /// planner would find it unchanged anyway.
    fn halo_news(
        &self,
        agent_id: i64,
        row: &HaloAppointment,
        known: &BTreeMap<HaloId, String>,
    ) -> Option<Result<Item<HaloId>, String>> {
        self.halo_item(agent_id, row).filter(|read| {
            read.as_ref()
                .map_or(true, |item| known.get(&item.id) != Some(&item.version))
        })
    }

    /// Adds `agent_id`'s rows to the snapshot. A row at the version its
    /// link holds is unchanged: kept as listed when `keep_unchanged` (the
    /// full pass, which would otherwise read it back as missing), else left
    /// out. Any other row is read in full, since list rows lack the note,
    /// the type and the agents.
    async fn take_halo_rows(
        &self,
        agent_id: i64,
        rows: &[HaloAppointment],
        known: &BTreeMap<HaloId, String>,
        keep_unchanged: bool,
        found: &mut Found,
    ) {
        for row in rows {
            let listed = match self.halo_item(agent_id, row) {
                None => continue,
                Some(Err(why)) => {
                    found.skipped.push(why);
                    continue;
                }
                Some(Ok(listed)) => listed,
            };
            let row = if known.get(&listed.id) == Some(&listed.version) {
                if !keep_unchanged {
                    continue;
                }
                row.clone()
            } else {
                match self.halo.appointment(listed.id).await {
                    Ok(full) => full,
                    Err(HaloError::NotFound { .. }) => continue,
                    Err(error) => {
                        tracing::warn!(halo_id = listed.id, %error, "could not read a changed Halo appointment; it is synced next run");
                        continue;
                    }
                }
            };
            found.take_halo(&row, self);
        }
    }

    /// Adds the events of a listing or delta round to the snapshot and
    /// returns the ids that may have gone and need reading back: cancelled
    /// events, and sparse occurrences that could not be read in full.
    fn take_events(&self, mailbox: &str, events: &[Event], found: &mut Found) -> Vec<GraphId> {
        let mut suspects = Vec::new();
        for event in events {
            // A series is observed through its occurrences; delta also
            // sends the master, which is no appointment of its own.
            if event.event_type == Some(EventType::SeriesMaster) {
                continue;
            }
            if event.is_sparse() {
                // Deleted between the page and the read of its details.
                suspects.extend(event.id.clone());
                continue;
            }
            if let Err(Some(Unsyncable::Cancelled)) = found.take_event(event, mailbox, self) {
                suspects.extend(event.id.clone());
            }
        }
        suspects
    }

    async fn read_back_appointment(&self, id: HaloId) -> ReadBack<HaloAppointment> {
        match self.halo.appointment(id).await {
            Ok(row) => ReadBack::Present(row),
            Err(HaloError::NotFound { .. }) => ReadBack::Gone,
            Err(error) => {
                tracing::warn!(halo_id = id, %error, "could not confirm a Halo deletion; not deleting");
                ReadBack::Unknown
            }
        }
    }

    async fn read_back_event(&self, mailbox: &str, id: &str) -> ReadBack<Event> {
        match self.graph.event(mailbox, id).await {
            // The organizer cancelled the meeting this copy belongs to: for
            // the attendee it is gone, though the item stays.
            Ok(event) if event.is_cancelled == Some(true) => ReadBack::Gone,
            Ok(event) => ReadBack::Present(event),
            Err(GraphError::ItemNotFound { .. }) => ReadBack::Gone,
            Err(error) => {
                tracing::warn!(event = %id, %error, "could not confirm an Exchange deletion; not deleting");
                ReadBack::Unknown
            }
        }
    }
}

/// `agent_id`'s appointments overlapping `window`, newest change first.
fn halo_query(
    agent_id: i64,
    window: Window,
    include_deleted: bool,
    modified_since: Option<DateTime<Utc>>,
) -> AppointmentQuery {
    AppointmentQuery {
        start: window.start,
        end: window.end,
        agents: vec![agent_id],
        include_deleted,
        modified_since,
    }
}

/// The newest `last_modified` among `rows`.
fn newest_modified(rows: &[HaloAppointment]) -> Option<DateTime<Utc>> {
    rows.iter().filter_map(|row| row.last_modified).max()
}

/// The Halo cursor a listing supports: its newest change, or Halo's own
/// time when it served the listing less [`incremental::HALO_CURSOR_OVERLAP`]
/// if that is later. Without the second, the rows of a burst of saves (an
/// import) would be listed again every cycle until something newer is saved.
fn halo_cursor(listing: &AppointmentListing) -> Option<DateTime<Utc>> {
    let served = listing
        .server_time
        .and_then(|at| at.checked_sub_signed(incremental::HALO_CURSOR_OVERLAP));
    newest_modified(&listing.appointments).max(served)
}
