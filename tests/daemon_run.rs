//! `halosync run`, the real binary as systemd starts it, against the
//! simulator: it says READY=1 once serving, pings the watchdog, syncs on
//! its schedule (visible in /metrics), stops on SIGTERM with STOPPING=1 and
//! exit 0 even in the middle of a slow sync, and a restart finishes that
//! sync without a duplicate.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

mod common;
#[path = "common/sync_sim.rs"]
mod sync_sim;

use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::json;
use sync_sim::{SyncSim, event, subjects};
use tokio::net::UnixDatagram;

const LEAH: &str = "leah@contoso.com";

async fn message(socket: &UnixDatagram, within: Duration) -> Option<String> {
    let mut buffer = vec![0u8; 4096];
    let n = tokio::time::timeout(within, socket.recv(&mut buffer))
        .await
        .ok()?
        .ok()?;
    Some(String::from_utf8_lossy(&buffer[..n]).into_owned())
}

/// Waits for a message starting with `prefix`; every message seen on the way.
async fn wait_for(socket: &UnixDatagram, prefix: &str) -> Vec<String> {
    let mut seen = Vec::new();
    while let Some(m) = message(socket, Duration::from_secs(30)).await {
        let done = m.starts_with(prefix);
        seen.push(m);
        if done {
            return seen;
        }
    }
    panic!("no {prefix} within 30 s; saw {seen:?}");
}

/// Reads what is queued, so the socket has room for what comes next (a
/// full queue drops notifications: the service never blocks on them).
async fn drain(socket: &UnixDatagram) {
    while message(socket, Duration::from_millis(50)).await.is_some() {}
}

/// The service process, killed if the test ends without stopping it.
struct Service(Option<Child>);

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start(sim: &SyncSim, socket: &std::path::Path) -> Service {
    let child = common::halosync()
        .args(["run", "--config"])
        .arg(&sim.config)
        .env("HALOSYNC_SIM_SECRET", "anything")
        .env("NOTIFY_SOCKET", socket)
        .env("WATCHDOG_USEC", "1000000")
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(socket.with_extension("log"))
                .expect("log file"),
        ))
        .spawn()
        .expect("start halosync run");
    Service(Some(child))
}

fn terminate(service: &Service) {
    let pid = service.0.as_ref().expect("running").id();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

async fn exit_code(mut service: Service) -> Option<i32> {
    let mut child = service.0.take().expect("running");
    tokio::task::spawn_blocking(move || child.wait().expect("wait").code())
        .await
        .unwrap()
}

const EVENTS: i64 = 150;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_syncs_on_schedule_and_stops_cleanly_even_mid_sync() {
    // Creates go to Halo 25 to a request: 150 events take six.
    let events: Vec<_> = (0..EVENTS)
        .map(|n| {
            event(
                &format!("Visit {n:03}"),
                1 + n / 10,
                8 + (n % 10) as u32,
                9 + (n % 10) as u32,
            )
        })
        .collect();
    let admin = common::free_port();
    let sim = SyncSim::start(
        json!({"agents": [{"id": 2, "name": "Leah", "email": LEAH}],
               "mailboxes": [{"upn": LEAH}],
               "events": {LEAH: events}}),
        &format!(
            "[admin]\nlisten = \"127.0.0.1:{admin}\"\n\n[sync.schedule]\n\
             pull = \"*/2 * * * * *\"\npush = \"0 0 0 1 1 *\"\nreconcile = \"0 0 0 1 1 *\"\n\
             renew_subscriptions = \"0 0 0 1 1 *\"\nprune = \"0 0 0 1 1 *\"\n"
        ),
    )
    .await;
    // Every Halo request takes 400 ms: the import takes seconds.
    sim.post("faults", &json!({"halo": {"faults": {"latency_ms": 400}}}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify");
    let systemd = UnixDatagram::bind(&socket_path).unwrap();

    let child = start(&sim, &socket_path);
    let ready = wait_for(&systemd, "READY=1").await;
    assert!(
        !ready.iter().any(|m| m.starts_with("STOPPING")),
        "{ready:?}"
    );
    let health = sim
        .http
        .get(format!("http://127.0.0.1:{admin}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert!(health.status().is_success());
    wait_for(&systemd, "WATCHDOG=1").await;

    // Stop it while the first pull is importing.
    let mut imported = 0;
    for _ in 0..200 {
        imported = sim.appointments().await.len();
        if imported > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        imported > 0 && imported < EVENTS as usize,
        "{imported} imported when stopped"
    );
    drain(&systemd).await;
    terminate(&child);
    wait_for(&systemd, "STOPPING=1").await;
    assert_eq!(exit_code(child).await, Some(0), "a clean stop");
    let partial = sim.appointments().await.len();
    assert!(partial < EVENTS as usize, "stopped part-way: {partial}");

    // A restart finishes the work; nothing is there twice.
    sim.post("faults", &json!({"halo": {"faults": {"latency_ms": 0}}}))
        .await;
    let halo_sign_ins = |state: &serde_json::Value| {
        state["requests"]["by_route"]["POST /halo/auth/token"]
            .as_u64()
            .unwrap_or(0)
    };
    let signed_in = halo_sign_ins(&sim.state().await);
    let child = start(&sim, &socket_path);
    wait_for(&systemd, "READY=1").await;
    let mut appointments = Vec::new();
    for _ in 0..300 {
        appointments = sim.appointments().await;
        if appointments.len() >= EVENTS as usize {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let names = subjects(&appointments);
    let expected: Vec<String> = (0..EVENTS).map(|n| format!("Visit {n:03}")).collect();
    assert_eq!(names, expected, "each event imported exactly once");
    // The next pulls find nothing to do, and the metrics show the writes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Every pull of the service used the one Halo token.
    assert_eq!(halo_sign_ins(&sim.state().await) - signed_in, 1);
    assert_eq!(sim.appointments().await.len(), EVENTS as usize);
    assert_eq!(
        sim.events(LEAH).await.len(),
        EVENTS as usize,
        "nothing copied back"
    );
    // A new client: the first one's pooled connection died with the first
    // process.
    let metrics = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{admin}/metrics"))
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "metrics: {e:?}\n{}",
                std::fs::read_to_string(socket_path.with_extension("log")).unwrap_or_default()
            )
        })
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("halosync_sync_actions_total{kind=\"create\",side=\"halo\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("halosync_job_runs_total"), "{metrics}");
    assert!(
        metrics.contains("halosync_upstream_requests_total{upstream=\"graph\",status=\"200\"}"),
        "{metrics}"
    );
    drain(&systemd).await;
    terminate(&child);
    wait_for(&systemd, "STOPPING=1").await;
    assert_eq!(exit_code(child).await, Some(0));
}
