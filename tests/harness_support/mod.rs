//! What the reliability harness tests (`tests/harness_*.rs`) share: a seeded
//! workload of two agents, the real service as a child process, the long
//! mode switch, and the end-state checks (no duplicate, everything linked
//! once, the database intact).
#![allow(dead_code)] // each harness file uses its own subset
#![allow(clippy::expect_used, clippy::unwrap_used)] // test support: fail loudly

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use serde_json::{Value, json};

use crate::common;
use crate::sync_sim::{SyncSim, appointment, day, event};

/// The agents of every harness workload: (Halo id, mailbox).
pub const AGENTS: [(i64, &str); 2] = [(2, "leah@contoso.com"), (3, "omar@contoso.com")];

/// A schedule that never fires during a test.
pub const NEVER: &str = "0 0 0 1 1 *";

/// `HALOSYNC_LONG=1` turns the CI-sized runs into the long ones.
pub fn long_mode() -> bool {
    std::env::var("HALOSYNC_LONG").is_ok_and(|v| v == "1")
}

/// A seeded generator; `HALOSYNC_SEED` replays a failed run. The seed is
/// printed when the test fails (while the guard is alive).
pub fn seeded_rng(test: &'static str) -> (SeedReport, fastrand::Rng) {
    let seed = std::env::var("HALOSYNC_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("{test}: seed {seed} (replay with HALOSYNC_SEED={seed})");
    (SeedReport { test, seed }, fastrand::Rng::with_seed(seed))
}

pub struct SeedReport {
    test: &'static str,
    pub seed: u64,
}

impl Drop for SeedReport {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "{} FAILED with seed {}: rerun with HALOSYNC_SEED={}",
                self.test, self.seed, self.seed
            );
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The config tables every harness run appends: the admin listener on a
/// free port (tests run in parallel) and the schedules (`pull`, `push`;
/// the other jobs never run).
pub fn schedules(admin: u16, pull: &str, push: &str) -> String {
    format!(
        "[admin]\nlisten = \"127.0.0.1:{admin}\"\n\n[sync.schedule]\n\
         pull = \"{pull}\"\npush = \"{push}\"\nreconcile = \"{NEVER}\"\n\
         renew_subscriptions = \"{NEVER}\"\nprune = \"{NEVER}\"\n"
    )
}

/// The `[webhook]` table of a run with webhooks on, listening on `hook`.
pub fn webhooks_on(hook: u16) -> String {
    format!(
        "[webhook]\nenabled = true\nlisten = \"127.0.0.1:{hook}\"\n\
         public_url = \"http://127.0.0.1:{hook}\"\n"
    )
}

/// `events` events per mailbox and `appointments` appointments per agent,
/// every subject unique, spread over the next weeks.
pub fn workload(events: i64, appointments: i64) -> Value {
    let agents: Vec<Value> = AGENTS
        .iter()
        .map(|(id, mailbox)| json!({"id": id, "name": mailbox, "email": mailbox}))
        .collect();
    let mailboxes: Vec<Value> = AGENTS.iter().map(|(_, m)| json!({"upn": m})).collect();
    let mut seeded_events = serde_json::Map::new();
    let mut seeded_appointments = Vec::new();
    for (id, mailbox) in AGENTS {
        let list: Vec<Value> = (0..events)
            .map(|n| {
                let hour = 8 + (n % 5) as u32;
                event(&format!("{mailbox} event {n:02}"), 1 + n, hour, hour + 1)
            })
            .collect();
        seeded_events.insert(mailbox.to_string(), Value::Array(list));
        seeded_appointments.extend((0..appointments).map(|n| {
            let hour = 13 + (n % 4) as u32;
            appointment(&format!("{mailbox} job {n:02}"), id, 1 + n, hour, hour + 1)
        }));
    }
    json!({"agents": agents, "mailboxes": mailboxes,
           "events": seeded_events, "appointments": seeded_appointments})
}

/// A person's random change on either side: a new event or appointment, or
/// an existing item moved to another hour. `tag` makes new subjects unique.
pub async fn person_changes(sim: &SyncSim, rng: &mut fastrand::Rng, tag: &str) {
    let (agent_id, mailbox) = AGENTS[rng.usize(..AGENTS.len())];
    let offset = rng.i64(1..40);
    let hour = rng.u32(7..18);
    match rng.u8(0..4) {
        0 => {
            let body = event(
                &format!("{mailbox} new event {tag}"),
                offset,
                hour,
                hour + 1,
            );
            sim.act(json!({"op": "create_event", "mailbox": mailbox, "event": body}))
                .await;
        }
        1 => {
            let body = appointment(
                &format!("{mailbox} new job {tag}"),
                agent_id,
                offset,
                hour,
                hour + 1,
            );
            sim.act(json!({"op": "create_appointment", "appointment": body}))
                .await;
        }
        2 => {
            let events = live_events(&sim.state().await, mailbox);
            if !events.is_empty() {
                let id = events[rng.usize(..events.len())]["id"].clone();
                let date = day(offset);
                let patch = json!({
                    "start": {"dateTime": format!("{date}T{hour:02}:30:00"), "timeZone": "UTC"},
                    "end": {"dateTime": format!("{date}T{:02}:30:00", hour + 1), "timeZone": "UTC"}});
                sim.act(
                    json!({"op": "update_event", "mailbox": mailbox, "id": id, "patch": patch}),
                )
                .await;
            }
        }
        _ => {
            let appointments = live_appointments(&sim.state().await);
            if !appointments.is_empty() {
                let id = appointments[rng.usize(..appointments.len())]["id"].clone();
                let date = day(offset);
                let changes = json!({"start_date": format!("{date}T{hour:02}:15:00"),
                                     "end_date": format!("{date}T{:02}:15:00", hour + 1)});
                sim.act(json!({"op": "update_appointment", "id": id, "changes": changes}))
                    .await;
            }
        }
    }
}

/// The events of `mailbox` a person sees (not cancelled).
pub fn live_events(state: &Value, mailbox: &str) -> Vec<Value> {
    state["events"][mailbox]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["isCancelled"] != json!(true))
        .collect()
}

/// The Halo appointments not deleted.
pub fn live_appointments(state: &Value) -> Vec<Value> {
    state["appointments"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a["deleted"] != json!(true))
        .collect()
}

/// What a person sees of the end state, ids left out so two simulators'
/// end states compare: per mailbox its events, and per agent its
/// appointments, as (subject, start, end) sorted.
pub fn content(state: &Value) -> BTreeMap<String, Vec<(String, String, String)>> {
    let mut content = BTreeMap::new();
    for (agent_id, mailbox) in AGENTS {
        let mut events: Vec<_> = live_events(state, mailbox)
            .iter()
            .map(|e| {
                (
                    text(&e["subject"]),
                    text(&e["start"]["dateTime"]),
                    text(&e["end"]["dateTime"]),
                )
            })
            .collect();
        events.sort();
        content.insert(format!("exchange {mailbox}"), events);
        let mut appointments: Vec<_> = live_appointments(state)
            .iter()
            .filter(|a| a["agent_id"] == json!(agent_id))
            .map(|a| {
                (
                    text(&a["subject"]),
                    text(&a["start_date"]),
                    text(&a["end_date"]),
                )
            })
            .collect();
        appointments.sort();
        content.insert(format!("halo {agent_id}"), appointments);
    }
    content
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}

/// The end state of a converged run: no duplicate anywhere, both sides
/// hold the same items, every item is linked exactly once, nothing is
/// pending, and the database passes SQLite's checks.
pub async fn assert_converged(sim: &SyncSim) {
    let state = sim.state().await;
    let appointments = live_appointments(&state);
    for (agent_id, mailbox) in AGENTS {
        let events = live_events(&state, mailbox);
        let event_subjects = distinct_subjects(&events, &format!("mailbox {mailbox}"));
        let mine: Vec<Value> = appointments
            .iter()
            .filter(|a| a["agent_id"] == json!(agent_id))
            .cloned()
            .collect();
        let appointment_subjects = distinct_subjects(&mine, &format!("Halo agent {agent_id}"));
        assert_eq!(
            event_subjects, appointment_subjects,
            "{mailbox}: Exchange and Halo hold different items"
        );
    }
    let db = open_read_only(&sim.database());
    let integrity: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let broken_keys: i64 = db
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(broken_keys, 0, "foreign key violations");
    let pending: i64 = db
        .query_row("SELECT count(*) FROM pending_operations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(pending, 0, "writes still journaled after a clean sync");
    // A deleted pair keeps its link as a tombstone; every other link must
    // be settled.
    let links: Vec<LinkRow> = links(&db)
        .into_iter()
        .filter(|l| l.state != "deleted")
        .collect();
    for link in &links {
        assert_eq!(link.state, "active", "{link:?}");
    }
    for a in &appointments {
        let id = a["id"].as_i64().unwrap();
        let count = links.iter().filter(|l| l.halo_id == Some(id)).count();
        assert_eq!(
            count, 1,
            "appointment {id} ({}) has {count} links",
            a["subject"]
        );
    }
    let mut events_total = 0;
    for (_, mailbox) in AGENTS {
        for e in live_events(&state, mailbox) {
            events_total += 1;
            let uid = e["iCalUId"].as_str().unwrap();
            let count = links
                .iter()
                .filter(|l| {
                    l.mailbox.eq_ignore_ascii_case(mailbox) && l.ical_uid.as_deref() == Some(uid)
                })
                .count();
            assert_eq!(
                count, 1,
                "event {} in {mailbox} has {count} links",
                e["subject"]
            );
        }
    }
    assert_eq!(links.len(), appointments.len(), "links vs appointments");
    assert_eq!(links.len(), events_total, "links vs events");
}

/// The subjects of `items`, failing on any duplicate.
fn distinct_subjects(items: &[Value], place: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for item in items {
        let subject = text(&item["subject"]);
        assert!(seen.insert(subject.clone()), "{subject:?} twice in {place}");
    }
    seen
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LinkRow {
    pub mailbox: String,
    pub halo_id: Option<i64>,
    pub graph_id: Option<String>,
    pub ical_uid: Option<String>,
    pub state: String,
}

pub fn open_read_only(path: &Path) -> Connection {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open database")
}

pub fn links(db: &Connection) -> Vec<LinkRow> {
    let mut statement = db
        .prepare("SELECT mailbox, halo_id, graph_id, ical_uid, state FROM links ORDER BY id")
        .unwrap();
    statement
        .query_map([], |r| {
            Ok(LinkRow {
                mailbox: r.get(0)?,
                halo_id: r.get(1)?,
                graph_id: r.get(2)?,
                ical_uid: r.get(3)?,
                state: r.get(4)?,
            })
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A running `halosync` child process, killed (SIGKILL) if the test ends
/// without stopping it. Its stdout and stderr go to `log`.
pub struct Process {
    pub child: Option<Child>,
    pub log: std::path::PathBuf,
}

impl Process {
    pub fn spawn(sim: &SyncSim, args: &[&str], log: &Path) -> Self {
        Self::spawn_with(sim, args, log, &[])
    }

    /// [`Process::spawn`] with more environment; stdout goes to `log` too.
    pub fn spawn_with(sim: &SyncSim, args: &[&str], log: &Path, envs: &[(&str, &str)]) -> Self {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let child = common::halosync()
            .args(args)
            .arg("--config")
            .arg(&sim.config)
            .env("HALOSYNC_SIM_SECRET", "anything")
            .envs(envs.iter().copied())
            .stdout(Stdio::from(file.try_clone().expect("log file")))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("start halosync");
        Self {
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Its exit code if it has ended.
    pub fn exited(&mut self) -> Option<Option<i32>> {
        let child = self.child.as_mut()?;
        let status = child.try_wait().expect("wait")?;
        self.child = None;
        Some(status.code())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits (up to 20 s) until `url` answers 2xx.
pub async fn wait_until_up(http: &reqwest::Client, url: &str, process: &Process) {
    for _ in 0..200 {
        if http
            .get(url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never answered:\n{}", process.log_text());
}

/// Runs `sync --once` until one ends 0 (faults may fail a few), at most
/// `attempts` times; returns how many it took.
pub async fn sync_until_clean(sim: &SyncSim, attempts: usize) -> usize {
    let mut last = String::new();
    for attempt in 1..=attempts {
        let output = sim.halosync(&["sync", "--once"]).await;
        if output.status.code() == Some(0) {
            return attempt;
        }
        last = format!(
            "exit {:?}\nstdout:\n{}\nstderr (tail):\n{}",
            output.status.code(),
            common::stdout(&output),
            tail(&common::stderr(&output), 4000)
        );
    }
    panic!("no clean sync in {attempts} attempts; the last:\n{last}");
}

pub fn tail(text: &str, max: usize) -> &str {
    let start = text.len().saturating_sub(max);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    &text[start..]
}
