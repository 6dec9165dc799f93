//! [`WebhookQueue`]: the seam between the listener and the sync engine.
//!
//! The listener persists verified notifications (coalesced per mailbox)
//! and wakes the queue; the engine takes what is due with
//! [`WebhookQueue::take_due`] (or waits for it with
//! [`WebhookQueue::wait_due`]), pulls each mailbox once, then calls
//! [`WebhookQueue::done`] — or [`WebhookQueue::release`] if the pull could
//! not run, so nothing is lost.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::store::webhook_queue::{self, Arrival};
pub use crate::store::webhook_queue::{ChangeReason, MailboxChanged};
use crate::store::{Store, StoreError};

/// How long notifications for a mailbox are gathered before its pull: a
/// burst of them becomes one pull, and a change still lands in about a second.
pub const DEFAULT_DEBOUNCE: Duration = Duration::milliseconds(500);

/// A taken entry not finished within this time is handed out again: its
/// consumer must have died mid-pull.
const LEASE: Duration = Duration::minutes(30);

/// The longest [`WebhookQueue::wait_due`] sleeps before looking again, so
/// wall-clock jumps cannot stall it.
const MAX_IDLE: StdDuration = StdDuration::from_secs(60);

/// The persistent queue of mailboxes to pull. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WebhookQueue {
    store: Arc<Mutex<Store>>,
    wakeup: Arc<Notify>,
}

impl WebhookQueue {
    pub fn new(store: Arc<Mutex<Store>>) -> Self {
        Self {
            store,
            wakeup: Arc::new(Notify::new()),
        }
    }

    fn with_store<T>(
        &self,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut store = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        store.transaction(work)
    }

    /// Call once at start-up: entries taken by a previous process are
    /// handed out again.
    pub fn recover(&self) -> Result<(), StoreError> {
        self.with_store(|tx| webhook_queue::release_all(tx))
    }

    /// Queues a change for a mailbox outside the listener (the subscription
    /// manager after recreating a subscription).
    pub fn push(&self, arrival: &Arrival, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.with_store(|tx| webhook_queue::push(tx, arrival, now))?;
        self.wake();
        Ok(())
    }

    /// Every mailbox whose first waiting notification arrived `debounce`
    /// or more before `now` and that is not being pulled already; at most
    /// one entry per mailbox.
    pub fn take_due(
        &self,
        now: DateTime<Utc>,
        debounce: Duration,
    ) -> Result<Vec<MailboxChanged>, StoreError> {
        self.with_store(|tx| webhook_queue::take_due(tx, now, debounce, LEASE))
    }

    /// The engine pulled `changed.mailbox`: what the entry covered is done.
    pub fn done(&self, changed: &MailboxChanged) -> Result<(), StoreError> {
        self.with_store(|tx| webhook_queue::done(tx, changed.ticket))?;
        // Notifications that waited for this pull may be due now.
        self.wake();
        Ok(())
    }

    /// The pull did not happen: the entry waits again.
    pub fn release(&self, changed: &MailboxChanged) -> Result<(), StoreError> {
        self.with_store(|tx| webhook_queue::release(tx, changed.ticket))?;
        self.wake();
        Ok(())
    }

    /// When the next waiting entry becomes due, if any waits.
    pub fn next_due(&self, debounce: Duration) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.with_store(|tx| webhook_queue::next_due(tx, debounce))
    }

    /// Waits until something is due and takes it. The wait ends early when
    /// the listener queues something. (The queries take milliseconds, so
    /// they run on the caller's task.)
    pub async fn wait_due(
        &self,
        clock: &dyn Clock,
        debounce: Duration,
    ) -> Result<Vec<MailboxChanged>, StoreError> {
        loop {
            let now = clock.now();
            let due = self.take_due(now, debounce)?;
            if !due.is_empty() {
                return Ok(due);
            }
            let next = self.next_due(debounce)?;
            let idle = next
                .map(|at| (at - now).to_std().unwrap_or(StdDuration::ZERO))
                .unwrap_or(MAX_IDLE)
                .min(MAX_IDLE);
            tokio::select! {
                () = self.wakeup.notified() => {}
                () = tokio::time::sleep(idle) => {}
            }
        }
    }

    /// Something was queued. `notify_one` keeps a permit when nobody
    /// waits, so a wake between a take and the next wait is not lost.
    pub(crate) fn wake(&self) {
        self.wakeup.notify_one();
    }

    pub(crate) fn store(&self) -> &Arc<Mutex<Store>> {
        &self.store
    }
}
