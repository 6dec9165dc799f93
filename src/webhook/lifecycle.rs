//! Lifecycle notifications, in two steps. Before the listener answers,
//! [`record`] writes what the event means into the store (the
//! subscription's state; a resync for its mailbox) in the request's
//! transaction. Afterwards [`tend`] — woken by the listener — lets
//! [`SubscriptionManager::maintain`] act on it with Graph: reauthorize or
//! renew, recreate. Because the flag is in the store, an event whose
//! repair was cut short by a restart is repaired by the next maintenance.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use tokio::sync::Notify;

use super::notification::{KnownSubscription, LifecycleEvent};
use super::subscriptions::{GraphClients, SubscriptionManager};
use crate::store::StoreError;
use crate::store::subscriptions::{self, SubscriptionState};
use crate::store::webhook_queue::{self, Arrival, ChangeReason};

/// What recording an event asks of the caller once the transaction commits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Recorded {
    /// A mailbox was queued for the engine.
    pub queued: bool,
    /// The subscription manager has work (reauthorize, recreate).
    pub needs_tending: bool,
}

/// Records `event` for `subscription` inside the caller's transaction.
pub(crate) fn record(
    conn: &Connection,
    subscription: &KnownSubscription,
    event: LifecycleEvent,
    now: DateTime<Utc>,
) -> Result<Recorded, StoreError> {
    let resync = |reason| {
        webhook_queue::push(
            conn,
            &Arrival {
                mailbox: subscription.mailbox.clone(),
                agent_id: subscription.agent_id,
                subscription_id: Some(subscription.subscription_id.clone()),
                reason,
                notifications: 1,
            },
            now,
        )
    };
    let id = &subscription.subscription_id;
    Ok(match event {
        LifecycleEvent::ReauthorizationRequired => {
            subscriptions::set_state(conn, id, SubscriptionState::ReauthorizationRequired, None)?;
            Recorded {
                queued: false,
                needs_tending: true,
            }
        }
        LifecycleEvent::SubscriptionRemoved => {
            // The engine resyncs now (changes may already be missing); the
            // manager queues another once the new subscription is live.
            subscriptions::set_state(conn, id, SubscriptionState::Removed, None)?;
            resync(ChangeReason::Removed)?;
            Recorded {
                queued: true,
                needs_tending: true,
            }
        }
        LifecycleEvent::Missed => {
            resync(ChangeReason::Missed)?;
            Recorded {
                queued: true,
                needs_tending: false,
            }
        }
    })
}

/// The longest [`tend`] sleeps between looks at the subscriptions, so a
/// subscription added behind its back (by the daily upkeep) is renewed in
/// time; the shortest, so a failing renewal is not retried in a tight loop.
const LONGEST_NAP: std::time::Duration = std::time::Duration::from_secs(6 * 3600);
const SHORTEST_NAP: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// How long [`tend`] sleeps when the next renewal is due at `due`.
fn nap_until(due: Option<DateTime<Utc>>, now: DateTime<Utc>) -> std::time::Duration {
    due.map_or(LONGEST_NAP, |due| {
        (due - now)
            .to_std()
            .unwrap_or_default()
            .clamp(SHORTEST_NAP, LONGEST_NAP)
    })
}

/// Runs [`SubscriptionManager::maintain`] each time `wakeup` is signalled
/// (the listener does after a lifecycle event, or a notification through a
/// subscription past half its lifetime) and when the next subscription is
/// due for renewal, until `shutdown` completes. A quiet mailbox sends no
/// notification to trigger its renewal; the timer renews it anyway.
pub async fn tend(
    manager: Arc<SubscriptionManager>,
    clients: Arc<dyn GraphClients>,
    wakeup: Arc<Notify>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let nap = match manager.next_due() {
            Ok(due) => nap_until(due, manager.now()),
            Err(error) => {
                tracing::warn!(%error, "could not read the webhook subscriptions");
                SHORTEST_NAP
            }
        };
        tokio::select! {
            () = &mut shutdown => return,
            () = wakeup.notified() => {}
            () = tokio::time::sleep(nap) => {}
        }
        // Each failure is logged (and kept on its row) by the manager.
        if let Err(error) = manager.maintain(clients.as_ref()).await {
            tracing::warn!(%error, "could not read the webhook subscriptions");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tend_wakes_when_the_next_renewal_is_due_within_bounds() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).expect("valid time");
        let minutes = |m: i64| now + chrono::Duration::minutes(m);
        assert_eq!(
            nap_until(Some(minutes(90)), now),
            std::time::Duration::from_secs(90 * 60)
        );
        assert_eq!(nap_until(Some(minutes(-10)), now), SHORTEST_NAP, "overdue");
        assert_eq!(nap_until(Some(minutes(1)), now), SHORTEST_NAP);
        assert_eq!(nap_until(Some(minutes(3 * 24 * 60)), now), LONGEST_NAP);
        assert_eq!(nap_until(None, now), LONGEST_NAP, "nothing to renew");
    }
}
