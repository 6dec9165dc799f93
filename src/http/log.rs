//! The outbound request log (the guide's "Outbound requests" tab).
//!
//! An HTTP call must never wait on SQLite, so a call only hands its
//! [`RequestRecord`] to a [`RequestLogSink`]. In the daemon that is a
//! [`ChannelRequestLog`]: a bounded channel drained by a task that writes
//! batches in one transaction on the blocking pool. Tests use a
//! [`MemoryRequestLog`].
//!
//! A record never holds a header or a body, and its path is scrubbed
//! ([`super::scrub_path`]) before it is made.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Upstream;
use crate::store::{Store, request_log};

/// One attempt at one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub at: DateTime<Utc>,
    pub upstream: Upstream,
    pub method: String,
    /// Path and query with secret values removed.
    pub path: String,
    /// `None` when no HTTP answer came back (then `error` says why).
    pub status: Option<u16>,
    pub duration_ms: u64,
    pub mailbox: Option<String>,
    pub agent_id: Option<i64>,
    /// The upstream's id for the request (Graph's `request-id`), for support.
    pub request_id: Option<String>,
    pub error: Option<String>,
}

/// Where request records go. `record` must return at once.
pub trait RequestLogSink: Send + Sync + std::fmt::Debug {
    fn record(&self, record: RequestRecord);

    /// The upstream throttled a request (429 or 503) and it is retried
    /// after `wait`. Only the service's metrics care.
    fn throttled(&self, _upstream: Upstream, _wait: std::time::Duration) {}
}

pub type SharedRequestLog = Arc<dyn RequestLogSink>;

/// Keeps records in memory (tests, `check --connectivity`).
#[derive(Debug, Default)]
pub struct MemoryRequestLog {
    records: Mutex<Vec<RequestRecord>>,
    throttled: Mutex<Vec<(Upstream, std::time::Duration)>>,
}

impl MemoryRequestLog {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn records(&self) -> Vec<RequestRecord> {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Each wait a throttling answer caused, in order.
    pub fn throttled_waits(&self) -> Vec<(Upstream, std::time::Duration)> {
        self.throttled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl RequestLogSink for MemoryRequestLog {
    fn record(&self, record: RequestRecord) {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(record);
    }

    fn throttled(&self, upstream: Upstream, wait: std::time::Duration) {
        self.throttled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((upstream, wait));
    }
}

/// Sends records to the store writer; drops (and counts) records when the
/// writer falls behind rather than slowing a sync down.
#[derive(Debug)]
pub struct ChannelRequestLog {
    sender: mpsc::Sender<RequestRecord>,
    dropped: AtomicU64,
}

impl ChannelRequestLog {
    /// Records dropped because the writer was behind or gone.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl RequestLogSink for ChannelRequestLog {
    fn record(&self, record: RequestRecord) {
        if self.sender.try_send(record).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // Once per thousand, so a stuck writer does not flood the log.
            if dropped % 1000 == 1 {
                tracing::warn!(
                    dropped,
                    "the outbound request log writer is behind; records are being dropped"
                );
            }
        }
    }
}

/// The most records written in one transaction.
const BATCH: usize = 256;

/// Starts the task that writes records into the store's `outbound_requests`
/// table. It ends when every [`ChannelRequestLog`] clone is dropped, after
/// writing what is queued.
pub fn spawn_store_writer(
    store: Arc<Mutex<Store>>,
    capacity: usize,
) -> (Arc<ChannelRequestLog>, JoinHandle<()>) {
    let (sender, mut receiver) = mpsc::channel::<RequestRecord>(capacity.max(1));
    let task = tokio::spawn(async move {
        while let Some(first) = receiver.recv().await {
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match receiver.try_recv() {
                    Ok(record) => batch.push(record),
                    Err(_) => break,
                }
            }
            let store = store.clone();
            let written = tokio::task::spawn_blocking(move || {
                let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
                store.transaction(|tx| request_log::insert(tx, &batch))
            })
            .await;
            match written {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    tracing::warn!(%error, "could not write the outbound request log");
                }
                Err(error) => {
                    tracing::warn!(%error, "the outbound request log writer failed");
                }
            }
        }
    });
    let sink = Arc::new(ChannelRequestLog {
        sender,
        dropped: AtomicU64::new(0),
    });
    (sink, task)
}
