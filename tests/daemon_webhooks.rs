//! Webhooks inside `halosync run`: an event a person creates in Exchange
//! reaches Halo within 2 s of the change, with the scheduled pull off.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

mod common;
#[path = "common/sync_sim.rs"]
mod sync_sim;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use sync_sim::{SyncSim, event};

const LEAH: &str = "leah@contoso.com";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The service process, stopped (or killed) when the test ends.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_change_reaches_halo_within_two_seconds_through_the_webhook() {
    let (admin, hook) = (free_port(), free_port());
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
    // The administrator subscribes the agents (service stopped), then
    // starts the service.
    sim.expect(&["subscriptions", "create", "--all"], 0).await;
    let log = sim.workspace.path("run.log");
    let child = common::halosync()
        .args(["run", "--config"])
        .arg(&sim.config)
        .env("HALOSYNC_SIM_SECRET", "anything")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .expect("start");
    let service = Service(child);
    let health = format!("http://127.0.0.1:{admin}/healthz");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let mut up = false;
    for _ in 0..100 {
        if client
            .get(&health)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        up,
        "service up: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(sim.appointments().await.is_empty(), "no pull has run");

    let created = Instant::now();
    sim.act(
        json!({"op": "create_event", "mailbox": LEAH, "event": event("Urgent visit", 1, 14, 15)}),
    )
    .await;
    let mut arrived = None;
    while created.elapsed() < Duration::from_secs(10) {
        if sim
            .appointments()
            .await
            .iter()
            .any(|a| a["subject"] == "Urgent visit")
        {
            arrived = Some(created.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let arrived = arrived.unwrap_or_else(|| {
        panic!(
            "never arrived:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    eprintln!("Exchange change to Halo through the webhook: {arrived:?}");
    assert!(arrived < Duration::from_secs(2), "took {arrived:?}");
    drop(service);
}
