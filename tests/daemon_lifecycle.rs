//! The daemon's life as systemd and a monitoring system see it: READY=1
//! once the admin listener answers, watchdog pings, STOPPING=1 and a
//! bounded shutdown that drops a hung job; /readyz following the database;
//! /metrics in the Prometheus text format with the job series.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

mod daemon_support;

use std::sync::Arc;
use std::time::Duration;

use halosync::config::Environment;
use halosync::daemon::{Daemon, JobName, JobOutcome, Notifier, SHUTDOWN_GRACE};
use tokio::net::{TcpListener, UnixDatagram};
use tokio::sync::oneshot;

use daemon_support::prometheus;
use daemon_support::*;

async fn next_message(socket: &UnixDatagram) -> String {
    let mut buffer = vec![0u8; 4096];
    let n = socket.recv(&mut buffer).await.expect("recv");
    String::from_utf8(buffer[..n].to_vec()).expect("utf-8 message")
}

/// Waits for a message starting with `prefix`, returning those skipped.
async fn wait_for(socket: &UnixDatagram, prefix: &str) -> (String, Vec<String>) {
    let mut skipped = Vec::new();
    loop {
        let message = next_message(socket).await;
        if message.starts_with(prefix) {
            return (message, skipped);
        }
        skipped.push(message);
    }
}

#[tokio::test(start_paused = true)]
async fn systemd_hears_ready_watchdog_and_stopping_and_a_hung_job_is_dropped_after_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let systemd = UnixDatagram::bind(&socket_path).expect("bind notify socket");
    let notifier = Notifier::from_env(&Environment::fixed([
        ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
        ("WATCHDOG_USEC", "20000000"),
    ]));
    let clock = TokioClock::starting_at(utc(2026, 5, 4, 9, 0, 0));
    let context = context(
        dir.path(),
        &[(JobName::Reconcile, "0 * * * * *")],
        clock.clone(),
    );
    let (jobs, mut events) = ScriptedJobs::new(clock.clone(), [(JobName::Reconcile, Script::Hang)]);
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_address = admin.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let daemon = tokio::spawn(Daemon::new(context.clone()).with_notifier(notifier).run(
        admin,
        jobs,
        async {
            let _ = stopped.await;
        },
    ));

    let (ready, before) = wait_for(&systemd, "READY=1").await;
    assert_eq!(ready, "READY=1\n");
    assert!(before.is_empty(), "nothing before READY=1: {before:?}");
    // READY=1 means the listener answers.
    let (status, _, body) = http_get(admin_address, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, _, body) = http_get(admin_address, "/readyz").await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));

    // Every 10 s (half of WATCHDOG_USEC), from the start.
    let (ping, _) = wait_for(&systemd, "WATCHDOG=1").await;
    assert_eq!(ping, "WATCHDOG=1\n");
    let pinged_at = tokio::time::Instant::now();
    wait_for(&systemd, "WATCHDOG=1").await;
    assert_eq!(pinged_at.elapsed(), Duration::from_secs(10));

    // The reconcile at 09:01:00 hangs on a call that never answers.
    next_event(&mut events, |e| {
        matches!(e, Event::Started(JobName::Reconcile, _))
    })
    .await;
    let asked_at = tokio::time::Instant::now();
    stop.send(()).unwrap();
    let (stopping, _) = wait_for(&systemd, "STOPPING=1").await;
    assert_eq!(stopping, "STOPPING=1\n");
    assert_eq!(
        next_event(&mut events, |e| matches!(e, Event::StopRequested(_))).await,
        Event::StopRequested(JobName::Reconcile),
        "the job is asked to stop first"
    );
    let exit = daemon.await.unwrap().expect("clean stop");
    assert_eq!(exit.abandoned, [JobName::Reconcile]);
    assert_eq!(
        asked_at.elapsed(),
        SHUTDOWN_GRACE,
        "dropped after the grace"
    );
    let runs = runs_of(&context.store, JobName::Reconcile);
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].0, "failed");
    assert!(
        runs[0]
            .1
            .as_deref()
            .unwrap()
            .starts_with("interrupted: halosync stopped"),
        "{runs:?}"
    );
    // The listener is closed once run returns.
    assert!(tokio::net::TcpStream::connect(admin_address).await.is_err());
}

#[tokio::test]
async fn readyz_reports_the_database_and_healthz_does_not_depend_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(halosync::clock::SystemClock);
    let context = context(dir.path(), &[], clock.clone());
    let (jobs, _events) = ScriptedJobs::new(clock, []);
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = admin.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let database = context.config.store.path.clone();
    let daemon = tokio::spawn(
        Daemon::new(context)
            .with_notifier(Notifier::disabled())
            .run(admin, jobs, async {
                let _ = stopped.await;
            }),
    );

    // The daemon may not have started serving yet; the listener is bound,
    // so the request waits in its backlog instead of failing.
    let (status, _, _) = http_get(address, "/readyz").await;
    assert_eq!(status, 200);
    let moved = dir.path().join("moved.db");
    std::fs::rename(&database, &moved).unwrap();
    let (status, _, body) = http_get(address, "/readyz").await;
    assert_eq!(status, 503);
    assert!(body.starts_with("database unavailable: "), "{body}");
    assert!(
        body.contains("halosync db migrate"),
        "says what to do: {body}"
    );
    let (status, _, _) = http_get(address, "/healthz").await;
    assert_eq!(status, 200, "the process itself is fine");
    std::fs::rename(&moved, &database).unwrap();
    let (status, _, _) = http_get(address, "/readyz").await;
    assert_eq!(status, 200);
    let (status, _, _) = http_get(address, "/nothing-here").await;
    assert_eq!(status, 404);

    stop.send(()).unwrap();
    daemon.await.unwrap().expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn metrics_parse_as_prometheus_text_and_carry_each_job_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TokioClock::starting_at(utc(2026, 5, 4, 9, 0, 0));
    let every_minute = "0 * * * * *";
    let context = context(
        dir.path(),
        &[
            (JobName::Pull, every_minute),
            (JobName::Push, every_minute),
            (JobName::Reconcile, every_minute),
        ],
        clock.clone(),
    );
    let (jobs, mut events) = ScriptedJobs::new(
        clock.clone(),
        [
            (
                JobName::Push,
                Script::Finish(JobOutcome::Failed {
                    error: "Halo answered 503".into(),
                }),
            ),
            (
                JobName::Reconcile,
                Script::Finish(JobOutcome::NeedsOperator {
                    reason: "mass-deletion guard held 12 deletions in leah@contoso.com".into(),
                }),
            ),
        ],
    );
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let daemon = tokio::spawn(
        Daemon::new(context.clone())
            .with_notifier(Notifier::disabled())
            .run(admin, jobs, async {
                let _ = stopped.await;
            }),
    );
    let mut finished = Vec::new();
    while finished.len() < 3 {
        if let Event::Finished(job) =
            next_event(&mut events, |e| matches!(e, Event::Finished(_))).await
        {
            finished.push(job);
        }
    }
    stop.send(()).unwrap();
    daemon.await.unwrap().expect("clean stop");
    // The admin listener is gone with the daemon; the same registry renders.
    let text = context.metrics.render().unwrap();
    let metrics = prometheus::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));

    for (job, outcome) in [
        ("pull", "ok"),
        ("push", "failed"),
        ("reconcile", "needs_operator"),
    ] {
        assert_eq!(
            metrics.value(
                "halosync_job_runs_total",
                &[("job", job), ("outcome", outcome)]
            ),
            Some(1.0),
            "{job}\n{text}"
        );
        assert_eq!(
            metrics.value("halosync_job_duration_seconds_count", &[("job", job)]),
            Some(1.0)
        );
    }
    assert_eq!(
        metrics.value(
            "halosync_job_last_success_timestamp_seconds",
            &[("job", "pull")]
        ),
        Some(utc(2026, 5, 4, 9, 1, 0).timestamp() as f64)
    );
    assert_eq!(
        metrics.value(
            "halosync_job_last_success_timestamp_seconds",
            &[("job", "push")]
        ),
        None,
        "a failed run is not a success"
    );
    for family in ["halosync_job_runs_total", "halosync_job_duration_seconds"] {
        assert!(
            metrics.help.get(family).is_some_and(|help| help.len() > 20),
            "{family} is explained\n{text}"
        );
    }
}

#[tokio::test]
async fn metrics_are_served_with_the_prometheus_content_type() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(halosync::clock::SystemClock);
    let context = context(dir.path(), &[], clock.clone());
    context
        .metrics
        .queue_depth(halosync::metrics::Queue::Journal, 4);
    let (jobs, _events) = ScriptedJobs::new(clock, []);
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = admin.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let daemon = tokio::spawn(
        Daemon::new(context)
            .with_notifier(Notifier::disabled())
            .run(admin, jobs, async {
                let _ = stopped.await;
            }),
    );
    let (status, content_type, body) = http_get(address, "/metrics").await;
    stop.send(()).unwrap();
    daemon.await.unwrap().expect("clean stop");
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let metrics = prometheus::parse(&body).unwrap();
    assert_eq!(
        metrics.value("halosync_queue_depth", &[("queue", "journal")]),
        Some(4.0)
    );
}

#[test]
fn the_test_parser_rejects_what_prometheus_would() {
    let good = "# HELP a_total A thing.\n# TYPE a_total counter\na_total{x=\"1\\\"\"} 2\n";
    assert_eq!(
        prometheus::parse(good)
            .unwrap()
            .value("a_total", &[("x", "1\"")]),
        Some(2.0)
    );
    for bad in [
        "a_total 1\n",
        "# TYPE a counter\na{x=\"1} 1\n",
        "# TYPE a counter\na{x=\"\\q\"} 1\n",
        "# TYPE a gauge\na one\n",
        "# TYPE 1a gauge\n",
        "# TYPE a gauge\n# TYPE b gauge\na 1\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
    ] {
        assert!(prometheus::parse(bad).is_err(), "accepted {bad:?}");
    }
}
