//! Observing one mailbox: what both systems hold in the sync window, mapped
//! into the neutral model, with every deletion confirmed by reading the item
//! back — the planner's [`Snapshot`].
//!
//! This is the full pass (the whole window on both sides). An item a link
//! names but the listing lacks is looked up: gone (404), or a meeting copy
//! its organizer cancelled, is a deletion; still there (moved out of the
//! window, or to another agent) is simply not observed; an error is not
//! observed either, so nothing is ever deleted because a read failed.

use std::collections::BTreeMap;

use crate::graph::model::Event;
use crate::graph::{GraphClient, GraphError, Window};
use crate::halo::{Appointment as HaloAppointment, AppointmentQuery, HaloClient, HaloError};
use crate::sync::graph_map::GraphMapping;
use crate::sync::halo_map::{AgentDirectory, HaloMapping};
use crate::sync::plan::{GraphId, HaloId, Link, Seen, Snapshot};

#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("reading Halo: {0}")]
    Halo(#[from] HaloError),
    #[error("reading Exchange: {0}")]
    Graph(#[from] GraphError),
}

/// A mailbox as observed, with what could not be synced and why.
#[derive(Debug)]
pub struct Observation {
    pub snapshot: Snapshot,
    /// Items left out, each with the reason (shown by `plan`).
    pub skipped: Vec<String>,
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
}

impl Observer<'_> {
    /// The full pass over `window` for agent `agent_id` in `mailbox`.
    pub async fn full(
        &self,
        agent_id: i64,
        mailbox: &str,
        window: Window,
        links: Vec<Link>,
    ) -> Result<Observation, ObserveError> {
        let mut snapshot = Snapshot {
            links,
            ..Snapshot::default()
        };
        let mut skipped = Vec::new();
        let mut details = Details::default();
        let listing = self
            .halo
            .appointments(&AppointmentQuery {
                start: window.start,
                end: window.end,
                agents: vec![agent_id],
                include_deleted: false,
                modified_since: None,
            })
            .await?;
        let synced: BTreeMap<HaloId, &str> = snapshot
            .links
            .iter()
            .filter_map(|l| l.halo.as_ref().map(|h| (h.id, h.version.as_str())))
            .collect();
        let mut observed = Vec::new();
        for row in &listing.appointments {
            // A multi-agent appointment is synced from its own agent's side.
            if row.agent_id.is_some_and(|id| id != agent_id) {
                continue;
            }
            let Some(listed) = self.halo_mapping.read(row, self.agents) else {
                skipped.push(format!(
                    "Halo appointment {} has no usable start and end",
                    row.id.unwrap_or_default()
                ));
                continue;
            };
            if synced.get(&listed.id) == Some(&listed.version.as_str()) {
                // Unchanged since the last sync: the list row is enough.
                observed.push(row.clone());
                continue;
            }
            // New or changed: list rows lack the note, type and agents.
            match self.halo.appointment(listed.id).await {
                Ok(full) => observed.push(full),
                Err(HaloError::NotFound { .. }) => {}
                Err(error) => {
                    tracing::warn!(halo_id = listed.id, %error, "could not read a changed Halo appointment; it is synced next run");
                }
            }
        }
        for row in &observed {
            if let Some(item) = self.halo_mapping.read(row, self.agents) {
                details.note_halo(row, &mut snapshot);
                snapshot.halo.insert(item.id, Seen::Present(item));
            }
        }
        for event in self.graph.calendar_view(mailbox, window).await? {
            match self.graph_mapping.read(&event, mailbox) {
                Ok(item) => {
                    details.note_event(&event, &mut snapshot);
                    snapshot.graph.insert(item.id.clone(), Seen::Present(item));
                }
                Err(why) => skipped.push(format!(
                    "Exchange event {}: {why}",
                    event.id.as_deref().unwrap_or("?")
                )),
            }
        }
        self.confirm_deletions(mailbox, &mut snapshot).await;
        Ok(Observation {
            snapshot,
            skipped,
            details,
        })
    }

    async fn confirm_deletions(&self, mailbox: &str, snapshot: &mut Snapshot) {
        let missing_halo: Vec<i64> = snapshot
            .links
            .iter()
            .filter_map(|l| l.halo.as_ref().map(|h| h.id))
            .filter(|id| !snapshot.halo.contains_key(id))
            .collect();
        for id in missing_halo {
            match self.halo.appointment(id).await {
                Err(HaloError::NotFound { .. }) => {
                    snapshot.halo.insert(id, Seen::Deleted);
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(halo_id = id, %error, "could not confirm a Halo deletion; not deleting");
                }
            }
        }
        let missing_graph: Vec<String> = snapshot
            .links
            .iter()
            .filter_map(|l| l.graph.as_ref().map(|g| g.id.clone()))
            .filter(|id| !snapshot.graph.contains_key(id))
            .collect();
        for id in missing_graph {
            match self.graph.event(mailbox, &id).await {
                Err(GraphError::ItemNotFound { .. }) => {
                    snapshot.graph.insert(id, Seen::Deleted);
                }
                // The organizer cancelled the meeting this copy belongs to:
                // for the attendee it is gone, though the item stays.
                Ok(event) if event.is_cancelled == Some(true) => {
                    snapshot.graph.insert(id, Seen::Deleted);
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(event = %id, %error, "could not confirm an Exchange deletion; not deleting");
                }
            }
        }
    }
}
