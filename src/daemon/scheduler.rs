//! When jobs run: a small loop per job over [`CronSchedule::next_after`]
//! (UTC), reading "now" from the injected [`Clock`].
//!
//! This replaces tokio-cron-scheduler, which the issue suggested: that crate
//! polls the wall clock (`Utc::now`) every 500 ms, so no test can move its
//! time (paused tokio time leaves it at zero runs), and its `_tz` jobs fix
//! the UTC offset at creation and drift by an hour at DST changes
//! (rust-notes §0). The loop below uses the same croner expressions the
//! config validates, is driven by the clock every other part uses, and runs
//! days of schedule in a test in milliseconds.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::JobName;
use crate::clock::SharedClock;
use crate::config::CronSchedule;

/// The longest single sleep. tokio sleeps on the monotonic clock while cron
/// times are wall-clock times; waking at least this often and re-reading
/// the clock keeps a step of the wall clock (NTP, a suspended VM) from
/// delaying a run by more than this.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Calls `tick` at every time `schedule` names, until `stop` is cancelled.
///
/// After a pause longer than a period (a suspended machine, a stepped
/// clock) the job fires once, not once for each time it missed.
pub(super) async fn drive(
    job: JobName,
    schedule: CronSchedule,
    clock: SharedClock,
    stop: CancellationToken,
    tick: impl Fn(),
) {
    let mut after = clock.now();
    loop {
        let Some(due) = schedule.next_after(after) else {
            tracing::warn!(job = %job, schedule = schedule.expression(), "the schedule never fires again; the job will not run");
            return;
        };
        tracing::debug!(job = %job, next = %due, "next run");
        if !sleep_until(due, &clock, &stop).await {
            return;
        }
        tick();
        after = due.max(clock.now());
    }
}

/// Sleeps until the clock reads `due` or later; `false` if stopped first.
async fn sleep_until(due: DateTime<Utc>, clock: &SharedClock, stop: &CancellationToken) -> bool {
    loop {
        let now = clock.now();
        if now >= due {
            return true;
        }
        let wait = (due - now).to_std().unwrap_or_default().min(MAX_SLEEP);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return false,
        }
    }
}
