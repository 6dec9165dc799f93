//! Observing one mailbox: what both systems hold in the sync window, mapped
//! into the neutral model, with every deletion confirmed by reading the item
//! back — the planner's [`Snapshot`].
//!
//! This is the full pass (the whole window on both sides). An item a link
//! names but the listing lacks is looked up: gone (404) is a deletion;
//! still there (moved out of the window, or to another agent) is simply not
//! observed; an error is not observed either, so nothing is ever deleted
//! because a read failed.

use crate::graph::{GraphClient, GraphError, Window};
use crate::halo::{AppointmentQuery, HaloClient, HaloError};
use crate::sync::graph_map::GraphMapping;
use crate::sync::halo_map::{AgentDirectory, HaloMapping};
use crate::sync::plan::{Link, Seen, Snapshot};

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
        for row in &listing.appointments {
            // A multi-agent appointment is synced from its own agent's side.
            if row.agent_id.is_some_and(|id| id != agent_id) {
                continue;
            }
            match self.halo_mapping.read(row, self.agents) {
                Some(item) => {
                    snapshot.halo.insert(item.id, Seen::Present(item));
                }
                None => skipped.push(format!(
                    "Halo appointment {} has no usable start and end",
                    row.id.unwrap_or_default()
                )),
            }
        }
        for event in self.graph.calendar_view(mailbox, window).await? {
            match self.graph_mapping.read(&event, mailbox) {
                Ok(item) => {
                    snapshot.graph.insert(item.id.clone(), Seen::Present(item));
                }
                Err(why) => skipped.push(format!(
                    "Exchange event {}: {why}",
                    event.id.as_deref().unwrap_or("?")
                )),
            }
        }
        self.confirm_deletions(mailbox, &mut snapshot).await;
        Ok(Observation { snapshot, skipped })
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
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(event = %id, %error, "could not confirm an Exchange deletion; not deleting");
                }
            }
        }
    }
}
