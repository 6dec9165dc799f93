//! Change-to-copy latency through the running service: a person's edit in
//! Exchange reaching Halo through the webhook path, and a dispatcher's edit
//! in Halo reaching Exchange through the push schedule. Changes are made
//! at a steady pace, each timed on its own from the moment the simulator
//! accepted it until the other side shows it.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::BenchError;
use super::measure::{millis, percentile};
use super::workload::{Size, rename_appointment, rename_event};
use crate::sim::server::Simulator;

/// How often a copy is looked for.
const POLL: Duration = Duration::from_millis(5);
/// A change not carried within this long counts as lost.
const GIVE_UP: Duration = Duration::from_secs(120);

/// One edit to time: where it is made and where it must show.
#[derive(Debug, Clone)]
pub struct Change {
    pub mailbox: String,
    pub event_id: String,
    pub halo_id: i32,
    pub subject: String,
}

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

/// `count` edits spread over the world, `offset` into each stride (so
/// different phases edit different items), each with a subject never
/// used before.
pub fn changes(
    size: Size,
    count: usize,
    offset: f64,
    tag: &str,
    event_ids: &[Vec<String>],
    halo_ids: &std::collections::HashMap<String, i32>,
) -> Result<Vec<Change>, BenchError> {
    size.spread(count, offset)
        .into_iter()
        .enumerate()
        .map(|(k, (agent, event))| {
            let seeded = Size::subject(agent, event);
            let halo_id = *halo_ids.get(&seeded).ok_or_else(|| {
                BenchError::Halosync(format!("the import did not bring {seeded:?} into Halo"))
            })?;
            let event_id = event_ids
                .get(agent)
                .and_then(|ids| ids.get(event))
                .cloned()
                .ok_or_else(|| BenchError::Simulator(format!("no event id for {seeded:?}")))?;
            Ok(Change {
                mailbox: Size::mailbox(agent),
                event_id,
                halo_id,
                subject: format!("{seeded} ({tag} {k})"),
            })
        })
        .collect()
}
