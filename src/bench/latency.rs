//! Change-to-copy latency through the running service: a person's edit in
//! Exchange reaching Halo through the webhook path, and a dispatcher's edit
//! in Halo reaching Exchange through the push schedule. Changes are made
//! at a steady pace, each timed on its own from the moment the simulator
//! accepted it until the other side shows it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::measure::{millis, percentile};
use super::report::LatencyFigures;
use super::service::{free_port, run_to_end, start_service};
use super::workload::{self, Change, ServiceSettings, rename_appointment, rename_event};
use super::{BenchError, BenchOptions, progress};
use crate::sim::server::Simulator;

/// How long the service is left alone before its idle memory is read.
const IDLE_SETTLE: Duration = Duration::from_secs(2);
/// How often the push job runs in the latency phase (cron, with seconds).
pub const PUSH_SCHEDULE: &str = "*/2 * * * * *";

/// How often a copy is looked for.
const POLL: Duration = Duration::from_millis(5);
/// A change not carried within this long counts as lost.
const GIVE_UP: Duration = Duration::from_secs(120);

/// Which way the edits go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ExchangeToHalo,
    HaloToExchange,
}

/// Latencies of one direction, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Latencies {
    pub changes: usize,
    pub carried: usize,
    pub p50_ms: Option<u64>,
    pub p95_ms: Option<u64>,
    pub p99_ms: Option<u64>,
    pub max_ms: Option<u64>,
    /// Milliseconds between two changes.
    pub pace_ms: u64,
}

impl Latencies {
    fn from(changes: usize, mut carried: Vec<u64>, pace: Duration) -> Self {
        carried.sort_unstable();
        Self {
            changes,
            carried: carried.len(),
            p50_ms: percentile(&carried, 50.0),
            p95_ms: percentile(&carried, 95.0),
            p99_ms: percentile(&carried, 99.0),
            max_ms: carried.last().copied(),
            pace_ms: millis(pace),
        }
    }
}

/// Makes `changes` one every `pace` and times each until its copy shows.
pub async fn measure(
    simulator: &Simulator,
    direction: Direction,
    changes: Vec<Change>,
    pace: Duration,
) -> Result<Latencies, BenchError> {
    let count = changes.len();
    let mut timers = tokio::task::JoinSet::new();
    let mut ticks = tokio::time::interval(pace);
    for change in changes {
        ticks.tick().await;
        let action = match direction {
            Direction::ExchangeToHalo => {
                rename_event(&change.mailbox, &change.event_id, &change.subject)
            }
            Direction::HaloToExchange => {
                rename_appointment(i64::from(change.halo_id), &change.subject)
            }
        };
        simulator
            .act_json(action)
            .await
            .map_err(BenchError::Simulator)?;
        let made = Instant::now();
        let simulator = simulator.clone();
        timers.spawn(async move {
            while made.elapsed() < GIVE_UP {
                let copy = match direction {
                    Direction::ExchangeToHalo => simulator
                        .halo()
                        .appointment(change.halo_id)
                        .map(|a| a.appointment.subject),
                    Direction::HaloToExchange => simulator
                        .graph()
                        .event_subject(&change.mailbox, &change.event_id),
                };
                if copy.as_deref() == Some(change.subject.as_str()) {
                    return Some(millis(made.elapsed()));
                }
                tokio::time::sleep(POLL).await;
            }
            None
        });
    }
    let mut carried = Vec::with_capacity(count);
    while let Some(timed) = timers.join_next().await {
        if let Some(ms) =
            timed.map_err(|e| BenchError::Io(format!("a latency timer failed: {e}")))?
        {
            carried.push(ms);
        }
    }
    Ok(Latencies::from(count, carried, pace))
}

/// The service phases: webhook latency (and idle memory), then push latency.
pub async fn through_service(
    options: &BenchOptions,
    simulator: &Simulator,
    event_ids: &[Vec<String>],
    halo_ids: &HashMap<String, i32>,
) -> Result<(LatencyFigures, Option<u64>), BenchError> {
    let dir = &options.work_dir;
    let size = options.size;
    let settings = |webhooks: bool, push: &str| -> Result<ServiceSettings, BenchError> {
        Ok(ServiceSettings {
            admin_port: free_port()?,
            webhook_port: free_port()?,
            webhooks,
            push: push.to_string(),
        })
    };
    let write = |name: &str, settings: &ServiceSettings| -> Result<PathBuf, BenchError> {
        let path = dir.join(name);
        workload::write_config(
            &path,
            &workload::config_text(simulator, dir, Some(settings)),
        )?;
        Ok(path)
    };

    let hooked = settings(true, "0 0 0 1 1 *")?;
    let hooked_config = write("service-webhooks.toml", &hooked)?;
    progress("latency: subscribing every mailbox, then `halosync run` with webhooks");
    run_to_end(
        &options.exe,
        &hooked_config,
        &["subscriptions", "create", "--all"],
        &dir.join("subscriptions.log"),
    )?;
    let service = start_service(
        &options.exe,
        &hooked_config,
        hooked.admin_port,
        &dir.join("service-webhooks.log"),
    )
    .await?;
    tokio::time::sleep(IDLE_SETTLE).await;
    let idle_rss = service.rss_kb();
    let edits = workload::changes(
        size,
        options.webhook_changes,
        0.25,
        "webhook",
        event_ids,
        halo_ids,
    )?;
    let webhook = measure(
        simulator,
        Direction::ExchangeToHalo,
        edits,
        options.webhook_pace,
    )
    .await?;
    drop(service);

    let pushing = settings(false, PUSH_SCHEDULE)?;
    let pushing_config = write("service-push.toml", &pushing)?;
    progress("latency: `halosync run` with the push schedule");
    let service = start_service(
        &options.exe,
        &pushing_config,
        pushing.admin_port,
        &dir.join("service-push.log"),
    )
    .await?;
    let edits = workload::changes(
        size,
        options.push_changes,
        0.75,
        "push",
        event_ids,
        halo_ids,
    )?;
    let push = measure(
        simulator,
        Direction::HaloToExchange,
        edits,
        options.push_pace,
    )
    .await?;
    drop(service);
    Ok((
        LatencyFigures {
            exchange_to_halo_webhook: webhook,
            halo_to_exchange_push: push,
            push_schedule: PUSH_SCHEDULE.to_string(),
        },
        idle_rss,
    ))
}
