//! The metrics that describe state rather than events — queue depths, each
//! subscription's time to expiry, sign-ins to renew — read from the database every
//! [`REFRESH_EVERY`], so a scrape sees at most that old a picture.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Context, DaemonError, with_store};
use crate::metrics::Queue;
use crate::store::TokenState;

pub const REFRESH_EVERY: Duration = Duration::from_secs(15);

/// Reads the gauges' values from the database into the metrics once.
pub async fn refresh(context: &Context) -> Result<(), DaemonError> {
    let (statuses, unattributed, queued) = with_store(&context.store, |store| {
        Ok((
            store.agent_statuses()?,
            store.unattributed_pending_writes()?,
            store.webhook_queue_depth()?,
        ))
    })
    .await?;
    let metrics = &context.metrics;
    let now = context.clock.now();
    metrics.queue_depth(Queue::Webhook, queued);
    let journal: i64 = statuses.iter().map(|s| s.pending_writes).sum();
    metrics.queue_depth(Queue::Journal, journal + unattributed);
    for status in &statuses {
        let Some(mailbox) = &status.mailbox else {
            continue;
        };
        if let Some(state) = status.sign_in {
            metrics.sign_in_required(mailbox, state == TokenState::ReauthRequired);
        }
        match status.subscription_expires {
            Some(expires) => metrics.subscription_expires(mailbox, expires, now),
            None => metrics.subscription_removed(mailbox),
        }
    }
    Ok(())
}

/// Refreshes the gauges until `stop` is cancelled.
pub async fn keep_fresh(context: Context, stop: CancellationToken) {
    let mut every = tokio::time::interval(REFRESH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        if let Err(error) = refresh(&context).await {
            tracing::warn!(%error, "could not read the metrics' gauges from the database");
        }
    }
}
