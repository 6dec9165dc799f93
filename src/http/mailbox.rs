//! Per-mailbox limits, as Graph imposes them: a few concurrent requests per
//! app and mailbox, a request budget per mailbox, and a pause for the whole
//! mailbox once Graph throttles one of its requests, so the others wait it
//! out instead of hammering.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::RollingBudget;

/// The limits applied to each mailbox separately.
#[derive(Debug)]
pub struct MailboxLimits {
    concurrency: usize,
    budget_limit: u32,
    budget_window: Duration,
    gates: Mutex<HashMap<String, Arc<MailboxGate>>>,
}

#[derive(Debug)]
pub(crate) struct MailboxGate {
    permits: Arc<Semaphore>,
    budget: RollingBudget,
    paused_until: Mutex<Option<Instant>>,
}

impl MailboxLimits {
    /// At most `concurrency` requests in flight and `budget_limit` per
    /// `budget_window` for each mailbox.
    pub fn new(concurrency: usize, budget_limit: u32, budget_window: Duration) -> Self {
        Self {
            concurrency: concurrency.max(1),
            budget_limit,
            budget_window,
            gates: Mutex::new(HashMap::new()),
        }
    }

    /// Mailbox addresses are case-insensitive.
    pub(crate) fn gate(&self, mailbox: &str) -> Arc<MailboxGate> {
        let mut gates = self.gates.lock().unwrap_or_else(PoisonError::into_inner);
        gates
            .entry(mailbox.to_lowercase())
            .or_insert_with(|| {
                Arc::new(MailboxGate {
                    permits: Arc::new(Semaphore::new(self.concurrency)),
                    budget: RollingBudget::new(self.budget_limit, self.budget_window),
                    paused_until: Mutex::new(None),
                })
            })
            .clone()
    }
}

impl MailboxGate {
    /// Waits out a pause, then for a free slot and the budget. The slot is
    /// held until the returned permit is dropped.
    pub(crate) async fn enter(&self) -> Option<OwnedSemaphorePermit> {
        self.wait_out_pause().await;
        // The semaphore is never closed, so this only fails in theory.
        let permit = self.permits.clone().acquire_owned().await.ok();
        // A pause may have begun while this request queued for a slot.
        self.wait_out_pause().await;
        self.budget.acquire().await;
        permit
    }

    async fn wait_out_pause(&self) {
        loop {
            let until = *self
                .paused_until
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match until {
                Some(until) if until > Instant::now() => tokio::time::sleep_until(until).await,
                _ => return,
            }
        }
    }

    /// Holds every request to this mailbox for `wait` (extending, never
    /// shortening, a pause already in place).
    pub(crate) fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut paused = self
            .paused_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if paused.is_none_or(|current| current < until) {
            *paused = Some(until);
        }
    }
}
