//! A simulator, a config pointing at it, and the real binary: what the
//! end-to-end sync tests share.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use halosync::sim::server::RunningSimulator;
use serde_json::{Value, json};

use crate::common::{Workspace, halosync, stderr, stdout};

/// A day `offset` days from today, inside the default sync window whenever
/// the test runs.
pub fn day(offset: i64) -> String {
    use halosync::clock::Clock;
    (halosync::clock::SystemClock.now() + chrono::Duration::days(offset))
        .format("%Y-%m-%d")
        .to_string()
}

/// The English weekday name of `day(offset)` (for recurrence patterns).
pub fn weekday(offset: i64) -> String {
    use halosync::clock::Clock;
    (halosync::clock::SystemClock.now() + chrono::Duration::days(offset))
        .format("%A")
        .to_string()
        .to_lowercase()
}

/// A Graph event JSON in UTC on `day(offset)` from `from` to `to` o'clock.
pub fn event(subject: &str, offset: i64, from: u32, to: u32) -> Value {
    let date = day(offset);
    json!({"subject": subject,
           "start": {"dateTime": format!("{date}T{from:02}:00:00"), "timeZone": "UTC"},
           "end": {"dateTime": format!("{date}T{to:02}:00:00"), "timeZone": "UTC"}})
}

/// Requests that changed something upstream, by route: everything but
/// reads, token requests and `$batch`es (halosync batches reads only; the
/// writes inside one would be counted under their own routes).
pub fn writes(state: &Value) -> u64 {
    state["requests"]["by_route"]
        .as_object()
        .expect("by_route")
        .iter()
        .filter(|(route, _)| {
            !route.starts_with("GET ") && !route.contains("token") && !route.contains("$batch")
        })
        .map(|(_, n)| n.as_u64().unwrap_or(0))
        .sum()
}

/// A Halo appointment JSON for `agent_id`.
pub fn appointment(subject: &str, agent_id: i64, offset: i64, from: u32, to: u32) -> Value {
    json!({"subject": subject, "agent_id": agent_id,
           "start_date": format!("{}T{from:02}:00:00", day(offset)),
           "end_date": format!("{}T{to:02}:00:00", day(offset))})
}

pub struct SyncSim {
    pub sim: RunningSimulator,
    pub base: String,
    pub http: reqwest::Client,
    pub workspace: Workspace,
    pub config: PathBuf,
    /// What seeding answered (the ids it assigned).
    pub seeded: Value,
}

impl SyncSim {
    /// A simulator seeded with `seed` and a config for it with `extra`
    /// appended (e.g. a `[sync]` table).
    pub async fn start(seed: Value, extra: &str) -> Self {
        Self::start_with_connection(seed, "", extra).await
    }

    /// [`SyncSim::start`] with `keys` added to the simulator's
    /// `[[exchange.connection]]` (e.g. an owner override).
    pub async fn start_with_connection(seed: Value, keys: &str, extra: &str) -> Self {
        let sim = RunningSimulator::start_local().await.expect("sim");
        let base = sim.simulator.base_url().to_string();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let workspace = Workspace::new();
        let snippet = sim.simulator.config_snippet();
        assert!(snippet.contains("\n[store]"), "{snippet}");
        let snippet = snippet.replacen("\n[store]", &format!("{keys}\n\n[store]"), 1);
        let config = workspace.write_private("halosync.toml", &format!("{snippet}\n{extra}\n"));
        let mut this = Self {
            sim,
            base,
            http,
            workspace,
            config,
            seeded: Value::Null,
        };
        this.seeded = this.post("seed", &seed).await;
        this
    }

    /// The immutable id of the `n`th event seeded into `mailbox`.
    pub fn seeded_event(&self, mailbox: &str, n: usize) -> String {
        self.seeded["graph"]["events"][mailbox][n]["immutable_id"]
            .as_str()
            .expect("seeded event")
            .to_string()
    }

    pub async fn post(&self, path: &str, body: &Value) -> Value {
        let response = self
            .http
            .post(format!("{}_sim/{path}", self.base))
            .json(body)
            .send()
            .await
            .expect("sim control");
        let status = response.status();
        let text = response.text().await.expect("body");
        assert!(status.is_success(), "_sim/{path} {body}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// A person's change through the control API.
    pub async fn act(&self, body: Value) -> Value {
        self.post("act", &body).await
    }

    pub async fn state(&self) -> Value {
        self.http
            .get(format!("{}_sim/state", self.base))
            .send()
            .await
            .expect("state")
            .json()
            .await
            .expect("json")
    }

    /// Runs the real binary with `args` and this config.
    pub async fn halosync(&self, args: &[&str]) -> Output {
        let mut command = halosync();
        command
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env("HALOSYNC_SIM_SECRET", "anything");
        tokio::task::spawn_blocking(move || command.output().expect("run halosync"))
            .await
            .expect("join")
    }

    /// Runs the binary and asserts its exit code; returns its stdout.
    pub async fn expect(&self, args: &[&str], code: i32) -> String {
        let output = self.halosync(args).await;
        assert_eq!(
            output.status.code(),
            Some(code),
            "halosync {args:?}\nstdout:\n{}\nstderr:\n{}",
            stdout(&output),
            stderr(&output)
        );
        stdout(&output)
    }

    /// The live (not deleted) Halo appointments.
    pub async fn appointments(&self) -> Vec<Value> {
        self.state().await["appointments"]
            .as_array()
            .expect("appointments")
            .iter()
            .filter(|a| a["deleted"] != json!(true))
            .cloned()
            .collect()
    }

    /// The events (masters, singles, exceptions) of a mailbox.
    pub async fn events(&self, mailbox: &str) -> Vec<Value> {
        self.state().await["events"][mailbox]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn database(&self) -> PathBuf {
        self.workspace.path("halosync-sim.db")
    }
}

/// The subjects of `items`, sorted.
pub fn subjects(items: &[Value]) -> Vec<String> {
    let mut subjects: Vec<String> = items
        .iter()
        .map(|i| i["subject"].as_str().unwrap_or_default().to_string())
        .collect();
    subjects.sort();
    subjects
}

/// The one item with `subject`.
pub fn by_subject<'a>(items: &'a [Value], subject: &str) -> &'a Value {
    let found: Vec<&Value> = items.iter().filter(|i| i["subject"] == subject).collect();
    assert_eq!(found.len(), 1, "exactly one {subject:?} in {items:#?}");
    found[0]
}
