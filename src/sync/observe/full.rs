//! The full pass: the whole window on both sides, and every linked item the
//! listings lack read back.
//!
//! Exchange is listed with calendarView rather than an initial delta round:
//! only calendarView can `$expand` halosync's Halo-id marker, and the full
//! pass is what pairs lost links by their markers (`relink`, a write whose
//! link was never saved). So it returns no delta link: the next incremental
//! pass starts its own round.

use super::{Cursors, Found, Observation, ObserveError, Observer, ReadBack};
use crate::graph::Window;
use crate::sync::plan::{GraphId, HaloId, Link, Seen, Snapshot};

impl Observer<'_> {
    /// The full pass over `window` for agent `agent_id` in `mailbox`.
    pub async fn full(
        &self,
        agent_id: i64,
        mailbox: &str,
        window: Window,
        links: Vec<Link>,
    ) -> Result<Observation, ObserveError> {
        let mut found = Found::new(links);
        let halo_modified = self.take_halo_window(agent_id, window, &mut found).await?;
        let events = self.graph.calendar_view(mailbox, window).await?;
        // Whatever may have gone is missing from the snapshot, so the read
        // back below covers it.
        self.take_events(mailbox, &events, &mut found);
        self.confirm_missing(mailbox, &mut found.snapshot).await;
        Ok(found.into_observation(Cursors {
            delta_link: None,
            halo_modified,
        }))
    }

    /// Reads back every linked item the listings lacked: gone is a
    /// deletion, anything else is not observed.
    async fn confirm_missing(&self, mailbox: &str, snapshot: &mut Snapshot) {
        let missing_halo: Vec<HaloId> = snapshot
            .links
            .iter()
            .filter_map(|l| l.halo.as_ref().map(|h| h.id))
            .filter(|id| !snapshot.halo.contains_key(id))
            .collect();
        for id in missing_halo {
            if let ReadBack::Gone = self.read_back_appointment(id).await {
                snapshot.halo.insert(id, Seen::Deleted);
            }
        }
        let missing_graph: Vec<GraphId> = snapshot
            .links
            .iter()
            .filter_map(|l| l.graph.as_ref().map(|g| g.id.clone()))
            .filter(|id| !snapshot.graph.contains_key(id))
            .collect();
        for id in missing_graph {
            if let ReadBack::Gone = self.read_back_event(mailbox, &id).await {
                snapshot.graph.insert(id, Seen::Deleted);
            }
        }
    }
}
