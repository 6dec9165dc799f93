//! One Halo listing for many agents.
//!
//! An incremental run over A agents would list Halo A times to learn,
//! nearly always, that nothing changed; Halo allows 300 requests per five
//! minutes. Agents whose cursors are close instead share one listing
//! (`agents=1,2,...`) from the oldest of their cursors, fetched when the
//! first of them needs it and read by the others: one request a cycle when
//! nothing changed. Each agent takes only its own rows (by `agent_id`), so
//! what it observes is what its own listing would have held, plus unchanged
//! rows the planner finds unchanged. The listing's cursor holds for every
//! agent it covered.
//!
//! An agent whose cursor lags (it failed for a while) lists alone, so it
//! does not make every other agent re-read its backlog. A listing with a
//! row that names no agent cannot be shared out: its agents then list
//! alone, as before.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use tokio::sync::OnceCell;

use super::halo_query;
use super::incremental::HALO_CURSOR_OVERLAP;
use crate::graph::Window;
use crate::halo::{AppointmentListing, HaloClient, HaloError};

/// How far behind the newest cursor an agent's may be and still share.
pub const SHARED_CURSOR_SPAN: Duration = Duration::hours(1);

/// Agents per shared listing. Each id adds up to 7 characters to the query
/// string; 200 keeps it well under the 2,048 IIS allows by default.
pub const AGENTS_PER_LISTING: usize = 200;

/// The shared listings of one run, by agent.
#[derive(Debug, Default)]
pub struct SharedHalo {
    listings: Vec<SharedListing>,
    by_agent: HashMap<i64, usize>,
}

impl SharedHalo {
    /// Listings for the agents in `cursors` (agent id → its Halo cursor)
    /// over `window`. Agents more than [`SHARED_CURSOR_SPAN`] behind the
    /// newest cursor are left out (they list alone), and so is a group of
    /// one, which gains nothing.
    pub fn new(cursors: impl IntoIterator<Item = (i64, DateTime<Utc>)>, window: Window) -> Self {
        let mut cursors: Vec<(i64, DateTime<Utc>)> = cursors.into_iter().collect();
        let Some(newest) = cursors.iter().map(|(_, at)| *at).max() else {
            return Self::default();
        };
        cursors.retain(|(_, at)| *at >= newest - SHARED_CURSOR_SPAN);
        cursors.sort_unstable();
        let mut shared = Self::default();
        for group in cursors.chunks(AGENTS_PER_LISTING) {
            if group.len() < 2 {
                continue;
            }
            let Some(oldest) = group.iter().map(|(_, at)| *at).min() else {
                continue;
            };
            let index = shared.listings.len();
            shared
                .by_agent
                .extend(group.iter().map(|(agent, _)| (*agent, index)));
            shared.listings.push(SharedListing {
                agents: group.iter().map(|(agent, _)| *agent).collect(),
                since: oldest
                    .checked_sub_signed(HALO_CURSOR_OVERLAP)
                    .unwrap_or(DateTime::<Utc>::MIN_UTC),
                window,
                with_deleted: OnceCell::new(),
                live: OnceCell::new(),
            });
        }
        shared
    }

    /// The listing `agent_id` shares, if any.
    pub fn listing_of(&self, agent_id: i64) -> Option<&SharedListing> {
        self.by_agent
            .get(&agent_id)
            .and_then(|index| self.listings.get(*index))
    }
}

/// One listing several agents read.
#[derive(Debug)]
pub struct SharedListing {
    agents: Vec<i64>,
    /// The oldest member's cursor less the overlap.
    since: DateTime<Utc>,
    window: Window,
    with_deleted: OnceCell<AppointmentListing>,
    live: OnceCell<AppointmentListing>,
}

impl SharedListing {
    /// Where the listing starts: no later than any member's own start.
    pub fn since(&self) -> DateTime<Utc> {
        self.since
    }

    /// The members' rows modified since [`Self::since`] (soft-deleted ones
    /// too when `include_deleted`), listed on first use; `None` when a row
    /// names no agent, so the caller must list alone. A failed listing is
    /// not kept: the next member tries again.
    pub async fn rows(
        &self,
        halo: &HaloClient,
        include_deleted: bool,
    ) -> Result<Option<&AppointmentListing>, HaloError> {
        let cell = if include_deleted {
            &self.with_deleted
        } else {
            &self.live
        };
        let listing = cell
            .get_or_try_init(|| async {
                let mut query = halo_query(0, self.window, include_deleted, Some(self.since));
                query.agents = self.agents.clone();
                halo.appointments(&query).await
            })
            .await?;
        let attributable = listing.appointments.iter().all(|r| r.agent_id.is_some());
        Ok(attributable.then_some(listing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_800_000_000, 0).expect("valid time")
            + Duration::minutes(minutes)
    }

    fn window() -> Window {
        Window::new(at(-100_000), at(100_000))
    }

    #[test]
    fn close_cursors_share_from_the_oldest_and_a_laggard_lists_alone() {
        let shared = SharedHalo::new(
            [(1, at(0)), (2, at(-30)), (3, at(-61)), (4, at(-5))],
            window(),
        );
        let listing = shared.listing_of(1).map(|l| (l.agents.clone(), l.since()));
        assert_eq!(
            listing,
            Some((vec![1, 2, 4], at(-30) - HALO_CURSOR_OVERLAP))
        );
        assert!(std::ptr::eq(
            shared.listing_of(2).expect("shares"),
            shared.listing_of(4).expect("shares")
        ));
        assert!(shared.listing_of(3).is_none(), "an hour behind: alone");
    }

    #[test]
    fn many_agents_are_split_into_listings_of_two_hundred_and_one_alone_shares_nothing() {
        let shared = SharedHalo::new((0..450).map(|agent| (agent, at(0))), window());
        assert_eq!(shared.listings.len(), 3);
        assert_eq!(
            shared
                .listings
                .iter()
                .map(|l| l.agents.len())
                .collect::<Vec<_>>(),
            [200, 200, 50]
        );
        assert!((0..450).all(|agent| shared.listing_of(agent).is_some()));
        let alone = SharedHalo::new([(7, at(0))], window());
        assert!(alone.listing_of(7).is_none());
        assert!(SharedHalo::new([], window()).listing_of(7).is_none());
    }
}
