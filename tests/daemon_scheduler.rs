//! The daemon's scheduler in paused tokio time: a job never overlaps itself
//! (a tick during a run is skipped, recorded and counted), schedules are UTC
//! and do not move at a daylight-saving change, and a long pause fires a
//! job once rather than once per missed tick.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

mod daemon_support;

use std::sync::Arc;
use std::time::Duration;

use chrono::Timelike;
use chrono_tz::Europe::London;
use halosync::config::CronSchedule;
use halosync::daemon::{Daemon, JobName, Notifier};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};

use daemon_support::*;

/// Starts the daemon on `context` with `jobs`; returns the shutdown trigger
/// and the daemon's task.
async fn start(
    context: halosync::daemon::Context,
    jobs: Arc<ScriptedJobs>,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<halosync::daemon::DaemonExit, halosync::daemon::DaemonError>>,
) {
    let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (stop, stopped) = oneshot::channel::<()>();
    let daemon = tokio::spawn(
        Daemon::new(context)
            .with_notifier(Notifier::disabled())
            .run(admin, jobs, async {
                let _ = stopped.await;
            }),
    );
    (stop, daemon)
}

#[tokio::test(start_paused = true)]
async fn a_tick_while_the_previous_run_is_going_is_skipped_recorded_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TokioClock::starting_at(utc(2026, 3, 28, 0, 0, 0));
    let context = context(
        dir.path(),
        &[(JobName::Pull, "*/10 * * * * *")],
        clock.clone(),
    );
    let gate = Arc::new(Semaphore::new(0));
    let (jobs, mut events) = ScriptedJobs::new(
        clock.clone(),
        [(JobName::Pull, Script::Gate(Arc::clone(&gate)))],
    );
    let (stop, daemon) = start(context.clone(), jobs).await;

    let started = next_event(&mut events, |e| matches!(e, Event::Started(..))).await;
    assert_eq!(
        started,
        Event::Started(JobName::Pull, utc(2026, 3, 28, 0, 0, 10))
    );
    // The run holds on through the ticks at :20 and :30.
    tokio::time::sleep(Duration::from_secs(25)).await;
    gate.add_permits(1);
    next_event(&mut events, |e| *e == Event::Finished(JobName::Pull)).await;
    stop.send(()).unwrap();
    let exit = daemon.await.unwrap().expect("clean stop");
    assert!(exit.abandoned.is_empty());

    let runs = runs_of(&context.store, JobName::Pull);
    let outcomes: Vec<&str> = runs.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(outcomes, ["ok", "skipped", "skipped"], "{runs:?}");
    assert_eq!(
        runs[1].1.as_deref(),
        Some("the previous run was still going")
    );
    let metrics = daemon_support::prometheus::parse(&context.metrics.render().unwrap()).unwrap();
    assert_eq!(
        metrics.value("halosync_job_ticks_skipped_total", &[("job", "pull")]),
        Some(2.0)
    );
    assert_eq!(
        metrics.value(
            "halosync_job_runs_total",
            &[("job", "pull"), ("outcome", "ok")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metrics.value("halosync_job_running", &[("job", "pull")]),
        Some(0.0)
    );
}

#[tokio::test(start_paused = true)]
async fn a_daily_utc_schedule_keeps_its_utc_time_across_the_london_clock_change() {
    // British Summer Time starts at 01:00 UTC on Sunday 29 March 2026.
    let dir = tempfile::tempdir().unwrap();
    let clock = TokioClock::starting_at(utc(2026, 3, 27, 12, 0, 0));
    let context = context(
        dir.path(),
        &[(JobName::Prune, "0 30 1 * * *")],
        clock.clone(),
    );
    let (jobs, mut events) = ScriptedJobs::new(clock.clone(), []);
    let (stop, daemon) = start(context, jobs).await;

    let mut fired = Vec::new();
    for _ in 0..4 {
        match next_event(&mut events, |e| matches!(e, Event::Started(..))).await {
            Event::Started(JobName::Prune, at) => fired.push(at),
            other => panic!("unexpected {other:?}"),
        }
    }
    stop.send(()).unwrap();
    daemon.await.unwrap().expect("clean stop");

    assert_eq!(
        fired,
        [
            utc(2026, 3, 28, 1, 30, 0),
            utc(2026, 3, 29, 1, 30, 0),
            utc(2026, 3, 30, 1, 30, 0),
            utc(2026, 3, 31, 1, 30, 0),
        ]
    );
    // In London the run moves from 01:30 to 02:30 local time: the schedule
    // is UTC, as documented, rather than following the local clock.
    let london_hours: Vec<u32> = fired
        .iter()
        .map(|at| at.with_timezone(&London).hour())
        .collect();
    assert_eq!(london_hours, [1, 2, 2, 2]);
}

#[test]
fn next_run_is_computed_in_utc_on_both_dst_changes() {
    let daily = CronSchedule::parse("0 0 2 * * *").unwrap();
    for (after, expected) in [
        // Spring forward in London (29 March) and back (25 October 2026).
        (utc(2026, 3, 28, 12, 0, 0), utc(2026, 3, 29, 2, 0, 0)),
        (utc(2026, 3, 29, 2, 0, 0), utc(2026, 3, 30, 2, 0, 0)),
        (utc(2026, 10, 24, 12, 0, 0), utc(2026, 10, 25, 2, 0, 0)),
        (utc(2026, 10, 25, 2, 0, 0), utc(2026, 10, 26, 2, 0, 0)),
    ] {
        assert_eq!(daily.next_after(after), Some(expected), "after {after}");
    }
    let every_five = CronSchedule::parse("0 */5 * * * *").unwrap();
    assert_eq!(
        every_five.next_after(utc(2026, 3, 29, 0, 58, 0)),
        Some(utc(2026, 3, 29, 1, 0, 0))
    );
    // Seconds come first and are required; nonsense is refused.
    assert!(CronSchedule::parse("*/5 * * * *").is_err());
    assert!(CronSchedule::parse("every five minutes").is_err());
}

#[tokio::test(start_paused = true)]
async fn after_the_clock_jumps_an_hour_the_job_fires_once_not_for_every_missed_tick() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TokioClock::starting_at(utc(2026, 3, 28, 0, 0, 0));
    let context = context(
        dir.path(),
        &[(JobName::Push, "0 */5 * * * *")],
        clock.clone(),
    );
    let (jobs, mut events) = ScriptedJobs::new(clock.clone(), []);
    let (stop, daemon) = start(context.clone(), jobs).await;

    next_event(&mut events, |e| matches!(e, Event::Finished(JobName::Push))).await;
    // A suspended machine resumes an hour later (12 ticks missed).
    clock.jump(chrono::Duration::hours(1));
    let resumed = next_event(&mut events, |e| matches!(e, Event::Started(..))).await;
    next_event(&mut events, |e| matches!(e, Event::Finished(JobName::Push))).await;
    let after_resume = next_event(&mut events, |e| matches!(e, Event::Started(..))).await;
    stop.send(()).unwrap();
    daemon.await.unwrap().expect("clean stop");

    let Event::Started(_, resumed_at) = resumed else {
        unreachable!()
    };
    let Event::Started(_, next_at) = after_resume else {
        unreachable!()
    };
    // The missed run happens as soon as the jump is noticed (within the
    // scheduler's one-minute wake-up), once; then the schedule resumes.
    assert!(resumed_at >= utc(2026, 3, 28, 1, 5, 0), "{resumed_at}");
    assert!(resumed_at <= utc(2026, 3, 28, 1, 6, 0), "{resumed_at}");
    assert_eq!(next_at, utc(2026, 3, 28, 1, 10, 0));
}
