//! Recording one notification request, in one transaction: verify its
//! items against the `subscriptions` table, drop Graph's redeliveries,
//! queue each changed mailbox once, record lifecycle events, and write the
//! inbound log row. The listener answers `202` only after this commits.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use super::lifecycle;
use super::notification::{self, Item, KnownSubscription, NotificationKind, Verification};
use super::subscriptions::renewal_due_at;
use crate::store::inbound_log::{self, InboundOutcome, InboundRecord};
use crate::store::subscriptions::{self, SubscriptionState};
use crate::store::webhook_queue::{self, Arrival, ChangeReason};
use crate::store::{Store, StoreError};

/// What the listener must do once the request is recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Intake {
    /// Wake the engine's queue.
    pub queued: bool,
    /// Wake the subscription manager.
    pub needs_tending: bool,
    pub outcome: Option<InboundOutcome>,
}

/// The request line and timing, for its log row.
#[derive(Debug, Clone)]
pub(crate) struct RequestFacts {
    pub at: DateTime<Utc>,
    pub method: String,
    pub path: String,
    pub started: Instant,
}

fn known(conn: &Connection, id: &str) -> Result<Option<KnownSubscription>, StoreError> {
    Ok(subscriptions::get(conn, id)?.map(|row| KnownSubscription {
        subscription_id: row.subscription_id,
        agent_id: row.agent_id,
        mailbox: row.mailbox,
        client_state_hash: row.client_state_hash,
    }))
}

/// Verifies and records `items`, then logs the request as answered `status`.
pub(crate) fn record(
    store: &mut Store,
    items: Vec<Item>,
    request: &RequestFacts,
    status: u16,
) -> Result<Intake, StoreError> {
    let now = request.at;
    store.transaction(|tx| {
        let verification = notification::verify(items, |id| known(tx, id))?;
        let mut intake = Intake::default();
        let mut changed: BTreeMap<String, Arrival> = BTreeMap::new();
        let mut duplicates = 0;
        let mut events = Vec::new();
        for verified in &verification.verified {
            let subscription = &verified.subscription;
            match verified.kind {
                NotificationKind::Change => {
                    if let Some(key) = &verified.dedup_key
                        && webhook_queue::seen_before(tx, key, now)?
                    {
                        duplicates += 1;
                        continue;
                    }
                    let entry = changed
                        .entry(subscription.mailbox.to_ascii_lowercase())
                        .or_insert_with(|| Arrival {
                            mailbox: subscription.mailbox.clone(),
                            agent_id: subscription.agent_id,
                            subscription_id: Some(subscription.subscription_id.clone()),
                            reason: ChangeReason::Changed,
                            notifications: 0,
                        });
                    entry.notifications += 1;
                }
                NotificationKind::Lifecycle(event) => {
                    let recorded = lifecycle::record(tx, subscription, event, now)?;
                    intake.queued |= recorded.queued;
                    intake.needs_tending |= recorded.needs_tending;
                    events.push(event.as_str());
                }
            }
        }
        for arrival in changed.values() {
            webhook_queue::push(tx, arrival, now)?;
            intake.queued = true;
        }
        intake.needs_tending |= touch_subscriptions(tx, &verification, now)?;
        let outcome = if !events.is_empty() {
            InboundOutcome::Lifecycle
        } else if !verification.verified.is_empty() {
            InboundOutcome::Accepted
        } else {
            InboundOutcome::Rejected
        };
        intake.outcome = Some(outcome);
        inbound_log::insert(
            tx,
            &InboundRecord {
                at: now,
                method: request.method.clone(),
                path: request.path.clone(),
                status,
                outcome,
                subscription_id: first_subscription(&verification),
                mailbox: verification
                    .verified
                    .first()
                    .map(|v| v.subscription.mailbox.clone()),
                item_count: u32::try_from(verification.item_count()).unwrap_or(u32::MAX),
                duration_ms: u64::try_from(request.started.elapsed().as_millis())
                    .unwrap_or(u64::MAX),
                detail: detail(&verification, duplicates, &events),
            },
        )?;
        Ok(intake)
    })
}

/// Records the notification time of each verified subscription; true if
/// one of them is due for renewal (a notification renews, as in Halo's
/// integrator, once half the lifetime has passed).
fn touch_subscriptions(
    conn: &Connection,
    verification: &Verification,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut ids: Vec<&str> = verification
        .verified
        .iter()
        .map(|v| v.subscription.subscription_id.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut renewal_due = false;
    for id in ids {
        subscriptions::notified(conn, id, now)?;
        if let Some(row) = subscriptions::get(conn, id)? {
            renewal_due |= row.state == SubscriptionState::Active && now >= renewal_due_at(&row);
        }
    }
    Ok(renewal_due)
}

fn first_subscription(verification: &Verification) -> Option<String> {
    verification
        .verified
        .first()
        .map(|v| v.subscription.subscription_id.clone())
        .or_else(|| {
            verification
                .dropped
                .iter()
                .find_map(|d| d.subscription_id.clone())
        })
}

/// A few words on what was not acted on, e.g. `2 dropped (clientState
/// mismatch), 1 duplicate`, and which lifecycle events came.
fn detail(verification: &Verification, duplicates: usize, events: &[&str]) -> Option<String> {
    let mut parts = Vec::new();
    if !events.is_empty() {
        parts.push(events.join(", "));
    }
    if !verification.dropped.is_empty() {
        let mut reasons: Vec<&str> = verification
            .dropped
            .iter()
            .map(|d| d.reason.as_str())
            .collect();
        reasons.sort_unstable();
        reasons.dedup();
        parts.push(format!(
            "{} dropped ({})",
            verification.dropped.len(),
            reasons.join(", ")
        ));
    }
    if duplicates > 0 {
        parts.push(format!(
            "{duplicates} duplicate{}",
            if duplicates == 1 { "" } else { "s" }
        ));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}
