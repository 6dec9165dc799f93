//! Webhooks inside `halosync run`, with every schedule off: the service
//! subscribes the served agents itself when it starts; an event a person
//! creates in Exchange reaches Halo within 2 s of the change; a removed
//! subscription is recreated and the change made meanwhile synced; the
//! metrics show the notifications, the subscription and the queue.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

mod common;
#[path = "daemon_support/prometheus.rs"]
mod prometheus;
#[path = "common/sync_sim.rs"]
mod sync_sim;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use serde_json::json;
use sync_sim::{SyncSim, event};

const LEAH: &str = "leah@contoso.com";

/// The service process, stopped (or killed) when the test ends.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The service, running against the simulator with every schedule off.
struct Running {
    sim: SyncSim,
    admin: u16,
    log: std::path::PathBuf,
    http: reqwest::Client,
    _service: Service,
}

impl Running {
    async fn start() -> Self {
        let (admin, hook) = (common::free_port(), common::free_port());
        let never = "0 0 0 1 1 *";
        let sim = SyncSim::start(
            json!({"agents": [{"id": 2, "name": "Leah", "email": LEAH}],
                   "mailboxes": [{"upn": LEAH}],
                   "events": {LEAH: [event("Audit", 1, 9, 10)]}}),
            &format!(
                "[admin]\nlisten = \"127.0.0.1:{admin}\"\n\n\
                 [webhook]\nenabled = true\nlisten = \"127.0.0.1:{hook}\"\n\
                 public_url = \"http://127.0.0.1:{hook}\"\n\n\
                 [sync.schedule]\npull = \"{never}\"\npush = \"{never}\"\nreconcile = \"{never}\"\n\
                 renew_subscriptions = \"{never}\"\nprune = \"{never}\"\n"
            ),
        )
        .await;
        let log = sim.workspace.path("run.log");
        let child = common::halosync()
            .args(["run", "--config"])
            .arg(&sim.config)
            .env("HALOSYNC_SIM_SECRET", "anything")
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .expect("start");
        let running = Self {
            sim,
            admin,
            log,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap(),
            _service: Service(child),
        };
        running
            .eventually(
                "the service to subscribe Leah's mailbox",
                Duration::from_secs(10),
                async |r| r.subscriptions().await.len() == 1,
            )
            .await;
        running
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The subscriptions Graph holds.
    async fn subscriptions(&self) -> Vec<Value> {
        self.sim.state().await["subscriptions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    async fn in_halo(&self, subject: &str) -> bool {
        self.sim
            .appointments()
            .await
            .iter()
            .any(|a| a["subject"] == subject)
    }

    /// Polls `check` every 25 ms until it holds; how long that took.
    async fn eventually(
        &self,
        what: &str,
        within: Duration,
        check: impl AsyncFn(&Self) -> bool,
    ) -> Duration {
        let started = Instant::now();
        while started.elapsed() < within {
            if check(self).await {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("timed out waiting for {what}:\n{}", self.log());
    }

    async fn metrics(&self) -> (prometheus::Exposition, String) {
        let text = self
            .http
            .get(format!("http://127.0.0.1:{}/metrics", self.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let parsed = prometheus::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        (parsed, text)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_subscribes_and_an_exchange_change_reaches_halo_within_two_seconds() {
    let running = Running::start().await;
    assert!(
        running.sim.appointments().await.is_empty(),
        "no pull has run"
    );
    let subscription = &running.subscriptions().await[0];
    assert_eq!(
        subscription["resource"],
        format!("/users/{LEAH}/events"),
        "{subscription}"
    );

    running
        .sim
        .act(json!({"op": "create_event", "mailbox": LEAH, "event": event("Urgent visit", 1, 14, 15)}))
        .await;
    let arrived = running
        .eventually(
            "the new event in Halo",
            Duration::from_secs(10),
            async |r| r.in_halo("Urgent visit").await,
        )
        .await;
    eprintln!("Exchange change to Halo through the webhook: {arrived:?}");
    assert!(arrived < Duration::from_secs(2), "took {arrived:?}");

    // The gauges are read from the database every 15 s; wait for one round.
    running
        .eventually(
            "the subscription's expiry in the metrics",
            Duration::from_secs(20),
            async |r| {
                r.metrics()
                    .await
                    .0
                    .value("halosync_subscription_expiry_seconds", &[("mailbox", LEAH)])
                    .is_some()
            },
        )
        .await;
    // The appointment is in Halo a moment before the run that wrote it ends.
    running
        .eventually(
            "the webhook's sync to finish",
            Duration::from_secs(5),
            async |r| {
                let metrics = r.metrics().await.0;
                let pulled = metrics.value("halosync_queue_depth", &[("queue", "webhook")]);
                pulled == Some(0.0)
                    && metrics
                        .value(
                            "halosync_sync_actions_total",
                            &[("kind", "create"), ("side", "halo")],
                        )
                        .is_some_and(|n| n >= 1.0)
            },
        )
        .await;
    let (metrics, text) = running.metrics().await;
    let expiry = metrics
        .value("halosync_subscription_expiry_seconds", &[("mailbox", LEAH)])
        .unwrap();
    assert!(
        expiry > 3600.0,
        "the subscription is live for hours: {expiry}\n{text}"
    );
    assert!(
        metrics
            .value(
                "halosync_webhook_notifications_total",
                &[("outcome", "accepted")]
            )
            .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(
        metrics
            .value(
                "halosync_webhook_notifications_total",
                &[("outcome", "validation")]
            )
            .is_some_and(|n| n >= 1.0),
        "the subscription's handshake is counted\n{text}"
    );
    assert!(
        metrics
            .value("halosync_webhook_ack_seconds_count", &[])
            .is_some_and(|n| n >= 2.0),
        "{text}"
    );
    assert_eq!(
        metrics.value(
            "halosync_job_runs_total",
            &[("job", "renew-subscriptions"), ("outcome", "ok")]
        ),
        Some(1.0),
        "subscribing at start is a recorded run\n{text}"
    );
    assert!(
        metrics
            .value(
                "halosync_upstream_requests_total",
                &[("upstream", "graph"), ("status", "201")]
            )
            .is_some_and(|n| n >= 1.0),
        "the subscription's creation is a Graph request\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_subscription_is_recreated_and_the_change_made_meanwhile_synced() {
    let running = Running::start().await;
    let old = running.subscriptions().await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Graph removes the subscription and says so; a person adds an event
    // while the mailbox has none.
    running
        .sim
        .post(
            "faults",
            &json!({"graph": {"lifecycle": [{"subscription_id": old, "event": "subscriptionRemoved"}]}}),
        )
        .await;
    running
        .sim
        .act(json!({"op": "create_event", "mailbox": LEAH, "event": event("In the gap", 2, 9, 10)}))
        .await;
    running
        .eventually("a new subscription", Duration::from_secs(10), async |r| {
            let live = r.subscriptions().await;
            live.len() == 1 && live[0]["id"] != old.as_str()
        })
        .await;
    running
        .eventually(
            "the change made meanwhile in Halo",
            Duration::from_secs(10),
            async |r| r.in_halo("In the gap").await,
        )
        .await;
    // And the new subscription carries the next change.
    running
        .sim
        .act(json!({"op": "create_event", "mailbox": LEAH, "event": event("After the gap", 3, 9, 10)}))
        .await;
    running
        .eventually(
            "the next change in Halo",
            Duration::from_secs(10),
            async |r| r.in_halo("After the gap").await,
        )
        .await;
    assert_eq!(
        running.subscriptions().await.len(),
        1,
        "never two subscriptions"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_renewal_job_unsubscribes_an_agent_no_longer_served() {
    const BOB: &str = "bob@contoso.com";
    let hook = common::free_port();
    let webhook = format!(
        "[webhook]\nenabled = true\nlisten = \"127.0.0.1:{hook}\"\n\
         public_url = \"http://127.0.0.1:{hook}\"\n"
    );
    let sim = SyncSim::start(
        json!({"agents": [{"id": 2, "name": "Leah", "email": LEAH},
                          {"id": 3, "name": "Bob", "email": BOB}],
               "mailboxes": [{"upn": LEAH}, {"upn": BOB}]}),
        &webhook,
    )
    .await;
    let resources = async || -> Vec<String> {
        let mut on_graph: Vec<String> = sim.state().await["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["resource"].as_str().unwrap().to_owned())
            .collect();
        on_graph.sort();
        on_graph
    };
    let said = sim.expect(&["run-job", "renew-subscriptions"], 0).await;
    assert!(said.contains("2 created"), "{said}");
    assert_eq!(
        resources().await,
        [
            format!("/users/{BOB}/events"),
            format!("/users/{LEAH}/events")
        ]
    );

    // The administrator stops serving Bob.
    let config = std::fs::read_to_string(&sim.config).unwrap();
    std::fs::write(
        &sim.config,
        config.replace(
            &webhook,
            &format!("{webhook}\n[sync]\nexclude_agents = [\"{BOB}\"]\n"),
        ),
    )
    .unwrap();
    let said = sim.expect(&["run-job", "renew-subscriptions"], 0).await;
    assert!(
        said.contains("1 already live") && said.contains("1 deleted"),
        "{said}"
    );
    assert_eq!(resources().await, [format!("/users/{LEAH}/events")]);
}
