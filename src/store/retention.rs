//! Retention of the tombstones of deleted links. (The request logs, job
//! runs and the webhook queue's memory are pruned by their own modules.)

use chrono::{DateTime, Duration, Utc};

use super::{Store, StoreError, db_time};

/// How long a deleted link's tombstone is kept. A deleted item that comes
/// back in a delta round within this time is recognised instead of being
/// created again; after it, Graph and Halo have long forgotten the item.
pub const LINK_TOMBSTONE_DAYS: u32 = 90;

impl Store {
    /// Deletes tombstones of links deleted more than [`LINK_TOMBSTONE_DAYS`]
    /// before `now`. A tombstone an unfinished journal entry still names is
    /// kept: that write's outcome is not known yet.
    pub fn prune_link_tombstones(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let cutoff = now - Duration::days(i64::from(LINK_TOMBSTONE_DAYS));
        self.connection()
            .execute(
                "DELETE FROM links
                 WHERE state = 'deleted' AND updated_at < ?1
                   AND id NOT IN (SELECT link_id FROM pending_operations WHERE link_id IS NOT NULL)",
                [db_time(cutoff)],
            )
            .map_err(|e| StoreError::sqlite("pruning deleted links", self.path(), e))
    }
}
