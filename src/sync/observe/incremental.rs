//! The incremental pass: only what changed since the previous cursors.
//!
//! Exchange: one calendarView delta round from the saved delta link (its
//! first page possibly read ahead in a `$batch` with other mailboxes'). Changed
//! events are observed; `@removed` ids, cancelled events and occurrences
//! that could not be read in full are suspects, and a suspect a link names
//! is read back (gone → deleted; still in the window → observed; elsewhere
//! or unreadable → not observed). A link Graph no longer knows (410,
//! `syncStateNotFound`) restarts the round over the window: everything comes
//! back as present and the planner matches it against the links — it is
//! never read as "everything was deleted".
//!
//! Halo: the agent's appointments modified since the cursor (less
//! [`HALO_CURSOR_OVERLAP`]), soft-deleted ones included, since that is the
//! only way a deletion shows up. No documented field marks a deleted row
//! (halo.md, "Deleted items" and open question 4; the simulator has none),
//! so when the listing holds anything new a second listing without deleted
//! rows tells the live ones apart, and a linked row only the first listing
//! had is read back. When nothing changed that is one page — shared by the
//! agents of a run whose cursors are close ([`super::SharedHalo`]). A tenant whose
//! delete leaves `last_modified` alone shows no deletion here at all; the
//! full pass finds it.
//!
//! What was not announced is not observed; deletions a round did not report
//! are found by the periodic full pass. A round over the whole window (no
//! link yet, or one Graph forgot) announces none, so then every linked event
//! it lacks is read back, as in the full pass.

use std::borrow::Cow;
use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};

use super::{
    Cursors, Found, Observation, ObserveError, Observer, ReadBack, halo_cursor, halo_query,
    linked_versions,
};
use crate::graph::{DeltaRound, GraphError, Window};
use crate::halo::{AppointmentListing, HaloError};
use crate::sync::plan::{GraphId, HaloId, Link, Seen};

/// How far before the cursor a Halo read starts again: a row saved just
/// before the newest one seen can become visible after it (clocks of Halo's
/// servers and commit order differ). Re-reading an unchanged row costs
/// nothing but a row of the page: the planner finds its version unchanged.
pub const HALO_CURSOR_OVERLAP: Duration = Duration::minutes(2);

impl Observer<'_> {
    /// What changed for agent `agent_id` in `mailbox` since `previous`
    /// (with no previous cursor, that side is read whole).
    pub async fn incremental(
        &self,
        agent_id: i64,
        mailbox: &str,
        window: Window,
        links: Vec<Link>,
        previous: &Cursors,
    ) -> Result<Observation, ObserveError> {
        let mut found = Found::new(links);
        let halo_modified = self
            .halo_changes(agent_id, window, previous.halo_modified, &mut found)
            .await?;
        let delta_link = self
            .exchange_changes(mailbox, window, previous.delta_link.as_deref(), &mut found)
            .await?;
        Ok(found.into_observation(Cursors {
            delta_link: Some(delta_link).filter(|link| !link.is_empty()),
            halo_modified,
        }))
    }

    /// Observes the delta round from `link` and returns its new delta link.
    async fn exchange_changes(
        &self,
        mailbox: &str,
        window: Window,
        link: Option<&str>,
        found: &mut Found,
    ) -> Result<String, GraphError> {
        let (round, whole) = self.delta_round(mailbox, window, link).await?;
        let mut suspects: BTreeSet<GraphId> = round.removed.into_iter().collect();
        suspects.extend(self.take_events(mailbox, &round.changed, found));
        if whole {
            // A round over the whole window announces no deletion: every
            // linked event it lacks may be gone.
            let listed: BTreeSet<&str> = round
                .changed
                .iter()
                .filter_map(|e| e.id.as_deref())
                .collect();
            suspects.extend(
                found
                    .snapshot
                    .links
                    .iter()
                    .filter_map(|l| l.graph.as_ref().map(|g| g.id.clone()))
                    .filter(|id| !listed.contains(id.as_str())),
            );
        }
        let linked: BTreeSet<&GraphId> = found
            .snapshot
            .links
            .iter()
            .filter_map(|l| l.graph.as_ref().map(|g| &g.id))
            .collect();
        // Delta cannot say where a removed event went, and it reports
        // events that left the window the same way: read back only the ones
        // a link names, and ignore the rest (never synced, nothing to do).
        let to_confirm: Vec<GraphId> = suspects
            .into_iter()
            .filter(|id| linked.contains(id))
            .collect();
        for id in to_confirm {
            // The read back decides, whatever the round said about the id.
            found.snapshot.graph.remove(&id);
            match self.read_back_event(mailbox, &id).await {
                ReadBack::Gone => {
                    found.snapshot.graph.insert(id, Seen::Deleted);
                }
                ReadBack::Present(event) if window.overlaps(&event) => {
                    // Left out (and said why) if it cannot be synced.
                    let _ = found.take_event(&event, mailbox, self);
                }
                ReadBack::Present(_) | ReadBack::Unknown => {}
            }
        }
        Ok(round.delta_link)
    }

    /// A delta round from `link`, or over `window` when there is none or
    /// Graph no longer knows it; true when the round lists the whole window.
    async fn delta_round(
        &self,
        mailbox: &str,
        window: Window,
        link: Option<&str>,
    ) -> Result<(DeltaRound, bool), GraphError> {
        let whole = || async {
            self.graph
                .calendar_view_delta(mailbox, window, None, None)?
                .collect()
                .await
                .map(|round| (round, true))
        };
        let Some(link) = link else {
            return whole().await;
        };
        let round = match self
            .read_ahead
            .first_delta_page
            .filter(|first| first.link() == link)
        {
            Some(first) => {
                self.graph
                    .calendar_view_delta_from(mailbox, window, first)
                    .collect()
                    .await
            }
            None => {
                self.graph
                    .calendar_view_delta(mailbox, window, Some(link), None)?
                    .collect()
                    .await
            }
        };
        match round {
            Err(GraphError::ResyncRequired { code, .. }) => {
                tracing::info!(mailbox, %code, "Graph no longer knows the delta link; reading the window afresh");
                whole().await
            }
            round => round.map(|round| (round, false)),
        }
    }

    /// The rows modified since `since` of the listing this agent shares,
    /// else of its own.
    async fn changed_rows(
        &self,
        agent_id: i64,
        window: Window,
        include_deleted: bool,
        since: DateTime<Utc>,
    ) -> Result<Cow<'_, AppointmentListing>, HaloError> {
        if let Some(shared) = self
            .read_ahead
            .halo
            .filter(|shared| shared.since() <= since)
            && let Some(listing) = shared.rows(self.halo, include_deleted).await?
        {
            return Ok(Cow::Borrowed(listing));
        }
        self.halo
            .appointments(&halo_query(agent_id, window, include_deleted, Some(since)))
            .await
            .map(Cow::Owned)
    }

    /// Observes the Halo rows modified since `cursor` (everything with no
    /// cursor) and returns the new cursor.
    async fn halo_changes(
        &self,
        agent_id: i64,
        window: Window,
        cursor: Option<DateTime<Utc>>,
        found: &mut Found,
    ) -> Result<Option<DateTime<Utc>>, HaloError> {
        let Some(cursor) = cursor else {
            return self.take_halo_window(agent_id, window, found).await;
        };
        let since = cursor
            .checked_sub_signed(HALO_CURSOR_OVERLAP)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let known = linked_versions(&found.snapshot);
        let with_deleted = self.changed_rows(agent_id, window, true, since).await?;
        let mut newest = halo_cursor(&with_deleted).max(Some(cursor));
        let news: Vec<HaloId> = with_deleted
            .appointments
            .iter()
            .filter(|row| self.halo_news(agent_id, row, &known).is_some())
            .filter_map(|row| row.id)
            .collect();
        if news.is_empty() {
            return Ok(newest);
        }
        let live = self.changed_rows(agent_id, window, false, since).await?;
        newest = newest.max(halo_cursor(&live));
        let live_ids: BTreeSet<HaloId> = live.appointments.iter().filter_map(|r| r.id).collect();
        self.take_halo_rows(agent_id, &live.appointments, &known, false, found)
            .await;
        let gone_from_view: Vec<HaloId> = news
            .into_iter()
            .filter(|id| !live_ids.contains(id) && known.contains_key(id))
            .collect();
        for id in gone_from_view {
            if let ReadBack::Gone = self.read_back_appointment(id).await {
                found.snapshot.halo.insert(id, Seen::Deleted);
            }
        }
        Ok(newest)
    }
}
