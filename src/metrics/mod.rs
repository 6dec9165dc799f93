//! Prometheus metrics: every series halosync exports, in one registry, with
//! a cheap handle ([`Metrics`]) the daemon, the sync engine and the webhook
//! listener record into.
//!
//! Served by the admin listener at `/metrics` in the Prometheus text format
//! (0.0.4). All names start with `halosync_`; counters end in `_total`.
//! Mailbox labels are bounded by the number of agents served, so every label
//! set here stays small.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

mod labels;

use crate::daemon::{JobName, JobOutcome};
use crate::http::Upstream;
use crate::store::inbound_log::InboundOutcome;
use crate::sync::plan::Side;
pub use labels::{ActionKind, Queue};
use labels::{
    ActionLabels, JobLabels, JobOutcomeLabels, MailboxLabels, OutcomeLabels, QueueLabels,
    UpstreamLabels, UpstreamStatusLabels, WinnerLabels, job_labels, mailbox_labels, side_label,
};

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn job_duration_histogram() -> Histogram {
    // 50 ms to about 7 minutes: a quiet pull to a large reconcile.
    Histogram::new(exponential_buckets(0.05, 2.0, 14))
}

fn ack_latency_histogram() -> Histogram {
    // 5 ms to about 5 s; Graph drops notifications not answered within 3 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 11))
}

/// The handle every part of halosync records metrics through. Cloning is
/// one reference-count increment; all clones feed the same registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    job_runs: Family<JobOutcomeLabels, Counter>,
    job_duration: HistogramFamily<JobLabels>,
    job_ticks_skipped: Family<JobLabels, Counter>,
    job_running: Family<JobLabels, Gauge>,
    job_last_success: Family<JobLabels, Gauge>,
    sync_actions: Family<ActionLabels, Counter>,
    sync_conflicts: Family<WinnerLabels, Counter>,
    sync_deletions_held: Family<MailboxLabels, Counter>,
    mailbox_last_success: Family<MailboxLabels, Gauge>,
    upstream_requests: Family<UpstreamStatusLabels, Counter>,
    throttled_waits: Family<UpstreamLabels, Counter>,
    throttled_wait_seconds: Family<UpstreamLabels, Counter<f64, std::sync::atomic::AtomicU64>>,
    webhook_notifications: Family<OutcomeLabels, Counter>,
    webhook_ack_seconds: Histogram,
    subscription_expiry: Family<MailboxLabels, Gauge>,
    queue_depth: Family<QueueLabels, Gauge>,
    sign_in_required: Family<MailboxLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every halosync series registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("halosync");
        let inner = Inner {
            job_runs: Family::default(),
            job_duration: Family::new_with_constructor(job_duration_histogram),
            job_ticks_skipped: Family::default(),
            job_running: Family::default(),
            job_last_success: Family::default(),
            sync_actions: Family::default(),
            sync_conflicts: Family::default(),
            sync_deletions_held: Family::default(),
            mailbox_last_success: Family::default(),
            upstream_requests: Family::default(),
            throttled_waits: Family::default(),
            throttled_wait_seconds: Family::default(),
            webhook_notifications: Family::default(),
            webhook_ack_seconds: ack_latency_histogram(),
            subscription_expiry: Family::default(),
            queue_depth: Family::default(),
            sign_in_required: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "job_runs",
            "Finished job runs, by job and outcome (ok, failed, needs_operator)",
            inner.job_runs.clone(),
        );
        registry.register(
            "job_duration_seconds",
            "How long finished job runs took, by job",
            inner.job_duration.clone(),
        );
        registry.register(
            "job_ticks_skipped",
            "Scheduled ticks skipped because the job's previous run was still going",
            inner.job_ticks_skipped.clone(),
        );
        registry.register(
            "job_running",
            "1 while a run of the job is in progress",
            inner.job_running.clone(),
        );
        registry.register(
            "job_last_success_timestamp_seconds",
            "Unix time at which the job last finished ok",
            inner.job_last_success.clone(),
        );
        registry.register(
            "sync_actions",
            "Writes the sync engine applied, by kind (create, update, delete, link) and the side written (halo, exchange)",
            inner.sync_actions.clone(),
        );
        registry.register(
            "sync_conflicts",
            "Appointments changed on both sides since the last sync, by the side the conflict policy chose",
            inner.sync_conflicts.clone(),
        );
        registry.register(
            "sync_deletions_held",
            "Deletions held back by the mass-deletion guard, by mailbox; an operator must confirm them",
            inner.sync_deletions_held.clone(),
        );
        registry.register(
            "mailbox_last_success_timestamp_seconds",
            "Unix time at which the mailbox was last synced without error",
            inner.mailbox_last_success.clone(),
        );
        registry.register(
            "upstream_requests",
            "Requests to Halo, Graph and the identity platform, by upstream and HTTP status (none: no answer came back)",
            inner.upstream_requests.clone(),
        );
        registry.register(
            "upstream_throttled_waits",
            "Times an upstream throttled halosync (429 or 503) and it waited before trying again",
            inner.throttled_waits.clone(),
        );
        registry.register(
            "upstream_throttled_wait_seconds",
            "Seconds spent waiting after throttling answers (429 or 503), by upstream",
            inner.throttled_wait_seconds.clone(),
        );
        registry.register(
            "webhook_notifications",
            "Requests to the webhook listener, by outcome (accepted, validation, lifecycle, rejected, malformed, error)",
            inner.webhook_notifications.clone(),
        );
        registry.register(
            "webhook_ack_seconds",
            "Time from receiving a request on the webhook listener to answering it (Graph allows 3 s)",
            inner.webhook_ack_seconds.clone(),
        );
        registry.register(
            "subscription_expiry_seconds",
            "Seconds until the mailbox's Graph subscription expires (negative: already expired)",
            inner.subscription_expiry.clone(),
        );
        registry.register(
            "queue_depth",
            "Work waiting: webhook (mailboxes marked for a pull), journal (writes not yet confirmed)",
            inner.queue_depth.clone(),
        );
        registry.register(
            "sign_in_required",
            "1 when the agent's sign-in (its own, or its delegated connection's) must be renewed before its calendar syncs again",
            inner.sign_in_required.clone(),
        );
        Self {
            inner: Arc::new(Inner { registry, ..inner }),
        }
    }

    /// Every series in the Prometheus text format (0.0.4).
    pub fn render(&self) -> Result<String, fmt::Error> {
        let mut text = String::new();
        prometheus_text::encode(&mut text, &self.inner.registry)?;
        Ok(text)
    }

    // The daemon's own series.

    pub(crate) fn job_started(&self, job: JobName) {
        self.inner
            .job_running
            .get_or_create(&job_labels(job))
            .set(1);
    }

    pub(crate) fn job_finished(
        &self,
        job: JobName,
        outcome: &JobOutcome,
        took: Duration,
        at: DateTime<Utc>,
    ) {
        let labels = job_labels(job);
        self.inner.job_running.get_or_create(&labels).set(0);
        self.inner
            .job_runs
            .get_or_create(&JobOutcomeLabels {
                job: job.as_str(),
                outcome: outcome.label(),
            })
            .inc();
        self.inner
            .job_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        if matches!(outcome, JobOutcome::Done { .. }) {
            self.inner
                .job_last_success
                .get_or_create(&labels)
                .set(at.timestamp());
        }
    }

    pub(crate) fn job_tick_skipped(&self, job: JobName) {
        self.inner
            .job_ticks_skipped
            .get_or_create(&job_labels(job))
            .inc();
    }

    // For the sync engine.

    /// One write applied (or two items linked) on `side`.
    pub fn sync_action(&self, kind: ActionKind, side: Side) {
        self.inner
            .sync_actions
            .get_or_create(&ActionLabels {
                kind: kind.as_str(),
                side: side_label(side),
            })
            .inc();
    }

    /// One conflict, resolved in favour of `winner`.
    pub fn sync_conflict(&self, winner: Side) {
        self.inner
            .sync_conflicts
            .get_or_create(&WinnerLabels {
                winner: side_label(winner),
            })
            .inc();
    }

    /// The mass-deletion guard held back `count` deletions in `mailbox`.
    pub fn deletions_held(&self, mailbox: &str, count: u64) {
        self.inner
            .sync_deletions_held
            .get_or_create(&mailbox_labels(mailbox))
            .inc_by(count);
    }

    /// `mailbox` finished a sync without error at `at`.
    pub fn mailbox_synced(&self, mailbox: &str, at: DateTime<Utc>) {
        self.inner
            .mailbox_last_success
            .get_or_create(&mailbox_labels(mailbox))
            .set(at.timestamp());
    }

    /// One request to `upstream`; `status` is `None` when no answer came back.
    pub fn upstream_request(&self, upstream: Upstream, status: Option<u16>) {
        self.inner
            .upstream_requests
            .get_or_create(&UpstreamStatusLabels {
                upstream: upstream.as_str(),
                status: status.map_or_else(|| "none".to_owned(), |s| s.to_string()),
            })
            .inc();
    }

    /// halosync waited `waited` before calling `upstream` again.
    pub fn throttled_wait(&self, upstream: Upstream, waited: Duration) {
        let labels = UpstreamLabels {
            upstream: upstream.as_str(),
        };
        self.inner.throttled_waits.get_or_create(&labels).inc();
        self.inner
            .throttled_wait_seconds
            .get_or_create(&labels)
            .inc_by(waited.as_secs_f64());
    }

    /// Work waiting in `queue`.
    pub fn queue_depth(&self, queue: Queue, depth: i64) {
        self.inner
            .queue_depth
            .get_or_create(&QueueLabels {
                queue: queue.as_str(),
            })
            .set(depth);
    }

    // For the webhook listener and subscription manager.

    /// One request to the webhook listener, answered after `ack` with `outcome`.
    pub fn webhook_request(&self, outcome: InboundOutcome, ack: Duration) {
        self.inner
            .webhook_notifications
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str(),
            })
            .inc();
        self.inner.webhook_ack_seconds.observe(ack.as_secs_f64());
    }

    /// `mailbox`'s subscription expires at `expires`, as seen at `now`.
    pub fn subscription_expires(&self, mailbox: &str, expires: DateTime<Utc>, now: DateTime<Utc>) {
        self.inner
            .subscription_expiry
            .get_or_create(&mailbox_labels(mailbox))
            .set((expires - now).num_seconds());
    }

    /// Whether `mailbox`'s agent needs someone to sign in again.
    pub fn sign_in_required(&self, mailbox: &str, required: bool) {
        self.inner
            .sign_in_required
            .get_or_create(&mailbox_labels(mailbox))
            .set(i64::from(required));
    }

    /// `mailbox` no longer has a subscription (deleted, or its agent left).
    pub fn subscription_removed(&self, mailbox: &str) {
        self.inner
            .subscription_expiry
            .remove(&mailbox_labels(mailbox));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_recording_method_feeds_a_described_series() {
        // Families appear once they have a sample (as in every Prometheus
        // client), so record through each method the engine and the webhook
        // listener will call.
        let metrics = Metrics::new();
        let now = DateTime::from_timestamp(1_800_000_000, 0).expect("valid time");
        metrics.sync_action(ActionKind::Link, Side::Halo);
        metrics.sync_conflict(Side::Exchange);
        metrics.deletions_held("leah@contoso.com", 11);
        metrics.mailbox_synced("leah@contoso.com", now);
        metrics.upstream_request(Upstream::Identity, Some(200));
        metrics.throttled_wait(Upstream::Graph, Duration::from_secs(2));
        metrics.queue_depth(Queue::Webhook, 3);
        metrics.webhook_request(InboundOutcome::Rejected, Duration::from_millis(3));
        metrics.subscription_expires("leah@contoso.com", now, now);
        metrics.sign_in_required("leah@contoso.com", true);
        let text = metrics.render().expect("render");
        for (family, sample) in [
            (
                "halosync_sync_actions_total",
                "{kind=\"link\",side=\"halo\"} 1",
            ),
            ("halosync_sync_conflicts_total", "{winner=\"exchange\"} 1"),
            (
                "halosync_sync_deletions_held_total",
                "{mailbox=\"leah@contoso.com\"} 11",
            ),
            (
                "halosync_mailbox_last_success_timestamp_seconds",
                "{mailbox=\"leah@contoso.com\"} 1800000000",
            ),
            (
                "halosync_upstream_requests_total",
                "{upstream=\"identity\",status=\"200\"} 1",
            ),
            (
                "halosync_upstream_throttled_waits_total",
                "{upstream=\"graph\"} 1",
            ),
            (
                "halosync_upstream_throttled_wait_seconds_total",
                "{upstream=\"graph\"} 2.0",
            ),
            ("halosync_queue_depth", "{queue=\"webhook\"} 3"),
            (
                "halosync_webhook_notifications_total",
                "{outcome=\"rejected\"} 1",
            ),
            ("halosync_webhook_ack_seconds_count", " 1"),
            (
                "halosync_subscription_expiry_seconds",
                "{mailbox=\"leah@contoso.com\"} 0",
            ),
            (
                "halosync_sign_in_required",
                "{mailbox=\"leah@contoso.com\"} 1",
            ),
        ] {
            assert!(
                text.contains(&format!("{family}{sample}\n")),
                "{family}{sample}\n{text}"
            );
            let described = family.trim_end_matches("_count");
            assert!(
                text.contains(&format!("# HELP {described} ")),
                "{described}"
            );
            assert!(
                text.contains(&format!("# TYPE {described} ")),
                "{described}"
            );
        }
        metrics.subscription_removed("LEAH@contoso.com");
        let text = metrics.render().expect("render");
        assert!(
            !text.contains("halosync_subscription_expiry_seconds{"),
            "{text}"
        );
    }

    #[test]
    fn clones_share_one_registry_and_mailboxes_ignore_case() {
        let metrics = Metrics::new();
        let engine = metrics.clone();
        engine.sync_action(ActionKind::Create, Side::Exchange);
        engine.upstream_request(Upstream::Graph, Some(429));
        engine.upstream_request(Upstream::Halo, None);
        engine.deletions_held("Leah@Contoso.com", 12);
        engine.deletions_held("leah@contoso.com", 3);
        let text = metrics.render().expect("render");
        assert!(
            text.contains("halosync_sync_actions_total{kind=\"create\",side=\"exchange\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("halosync_upstream_requests_total{upstream=\"graph\",status=\"429\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("halosync_upstream_requests_total{upstream=\"halo\",status=\"none\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("halosync_sync_deletions_held_total{mailbox=\"leah@contoso.com\"} 15"),
            "{text}"
        );
    }
}
