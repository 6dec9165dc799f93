//! The full pass: the whole window on both sides, and every linked item the
//! listings lack read back.
//!
//! Exchange is listed with an initial calendarView delta round rather than
//! calendarView itself. Both page through the same instances; delta adds the
//! series masters and sends occurrences sparse (read in full through
//! `$batch`, 20 per request), so it costs a little more per pass. What it
//! buys is the round's delta link: the window is part of a delta token, so
//! when the window rolls (daily) or Graph forgets the token, the next
//! incremental pass would otherwise pay for this very listing again as its
//! initial round. A full pass that ends with a fresh link makes that round
//! unnecessary.

use super::{Cursors, Observation, ObserveError, Observer, ReadBack};
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
        let mut snapshot = Snapshot {
            links,
            ..Snapshot::default()
        };
        let mut skipped = Vec::new();
        let halo_modified = self
            .take_halo_window(agent_id, window, &mut snapshot, &mut skipped)
            .await?;
        let round = self
            .graph
            .calendar_view_delta(mailbox, window, None, None)?
            .collect()
            .await?;
        // Whatever may have gone is missing from the snapshot, so the read
        // back below covers it.
        self.take_events(mailbox, &round.changed, &mut snapshot, &mut skipped);
        self.confirm_missing(mailbox, &mut snapshot).await;
        Ok(Observation {
            snapshot,
            skipped,
            cursors: Cursors {
                delta_link: Some(round.delta_link).filter(|link| !link.is_empty()),
                halo_modified,
            },
        })
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
