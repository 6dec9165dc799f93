//! The prune job: keeps the database from growing without bound.
//!
//! Request logs (both directions) and finished job runs are kept for
//! `[store].request_log_retention_days`; tombstones of deleted links for
//! [`LINK_TOMBSTONE_DAYS`](crate::store::LINK_TOMBSTONE_DAYS).

use serde_json::json;

use super::{Context, JobOutcome, with_store};
use crate::store::{inbound_log, request_log};

/// Deletes what is past its retention and reports how much.
pub async fn prune(context: &Context) -> JobOutcome {
    let now = context.clock.now();
    let days = context.config.store.request_log_retention_days;
    let pruned = with_store(&context.store, move |store| {
        let outbound = request_log::prune(store.connection(), now, days)?;
        let inbound = inbound_log::prune(store.connection(), now, days)?;
        let runs = store.prune_runs(now, days)?;
        let tombstones = store.prune_link_tombstones(now)?;
        Ok((outbound, inbound, runs, tombstones))
    })
    .await;
    match pruned {
        Ok((outbound, inbound, runs, tombstones)) => JobOutcome::Done {
            summary: format!(
                "deleted {outbound} outbound and {inbound} inbound request log rows and {runs} job runs older than {days} days, and {tombstones} deleted-link tombstones"
            ),
            stats: json!({
                "outbound_requests": outbound,
                "inbound_requests": inbound,
                "sync_runs": runs,
                "link_tombstones": tombstones,
            }),
        },
        Err(error) => JobOutcome::Failed {
            error: error.to_string(),
        },
    }
}
