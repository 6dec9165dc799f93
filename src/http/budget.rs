//! A rolling request budget: at most `limit` requests in any `window`, the
//! way Halo counts its hosted limit ("300 requests per rolling 5 minute
//! window"). A caller over budget waits for the oldest request to leave the
//! window instead of earning a 429.
//!
//! Hand-written rather than `governor`, whose waiting uses its own timer and
//! so cannot run under paused tokio time in tests; the whole thing is a
//! queue of instants.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct RollingBudget {
    limit: usize,
    window: Duration,
    /// When each request still inside the window was let through, oldest first.
    sent: Mutex<VecDeque<Instant>>,
}

impl RollingBudget {
    /// A budget of `limit` requests (at least one) per `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        let limit = usize::try_from(limit.max(1)).unwrap_or(usize::MAX);
        Self {
            limit,
            window,
            sent: Mutex::new(VecDeque::with_capacity(limit.min(1024))),
        }
    }

    /// Waits until one more request fits in the window, and counts it.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut sent = self.sent.lock().unwrap_or_else(PoisonError::into_inner);
                let now = Instant::now();
                while sent.front().is_some_and(|at| *at + self.window <= now) {
                    sent.pop_front();
                }
                if sent.len() < self.limit {
                    sent.push_back(now);
                    return;
                }
                sent.front()
                    .map_or(Duration::ZERO, |oldest| *oldest + self.window - now)
            };
            tracing::debug!(wait_ms = wait.as_millis(), "request budget spent; waiting");
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_over_budget_wait_for_the_window_to_roll() {
        let budget = RollingBudget::new(3, Duration::from_secs(10));
        let start = Instant::now();
        for _ in 0..3 {
            budget.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "within budget: no wait");
        tokio::time::advance(Duration::from_secs(4)).await;
        budget.acquire().await;
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(10),
            "the fourth waits until the first leaves the window"
        );
        budget.acquire().await;
        budget.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        budget.acquire().await;
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(20),
            "the window rolls: the next slot frees when the request at t=10 ages out"
        );
    }
}
