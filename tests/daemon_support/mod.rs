//! A harness for driving `halosync::daemon` in-process: a config in a
//! temporary directory, a clock that follows tokio's (pausable) time, a
//! scripted [`JobRunner`] whose runs the test controls, a plain HTTP GET,
//! and a strict parser of the Prometheus text format.
#![allow(dead_code)] // each test binary uses its own subset

pub mod prometheus;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use halosync::clock::{Clock, SharedClock};
use halosync::config::{self, Config, Environment};
use halosync::daemon::{Context, JobName, JobOutcome, JobRunner};
use halosync::halo::HaloShared;
use halosync::metrics::Metrics;
use halosync::store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

/// Every job fires once a year (1 January), so a test enables only the
/// schedules it sets.
pub const RARELY: &str = "0 0 0 1 1 *";

pub fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .expect("valid test time")
}

/// The repository's example config with its database in `dir` and the
/// given schedules (every other job: [`RARELY`]).
pub fn config(dir: &Path, schedules: &[(JobName, &str)]) -> Config {
    let example = std::fs::read_to_string(repo_file("config.example.toml")).expect("example");
    let db = dir.join("halosync.db");
    let mut text = example.replace(
        "path = \"/var/lib/halosync/halosync.db\"",
        &format!("path = \"{}\"", db.display()),
    );
    for job in JobName::ALL {
        let key = job.as_str().replace('-', "_");
        let expression = schedules
            .iter()
            .find(|(j, _)| *j == job)
            .map_or(RARELY, |(_, e)| *e);
        let start = text
            .find(&format!("\n{key} = \""))
            .expect("schedule key in the example")
            + 1;
        let end = start + text[start..].find('\n').expect("line end");
        text.replace_range(start..end, &format!("{key} = \"{expression}\""));
    }
    let path = dir.join("halosync.toml");
    std::fs::write(&path, &text).expect("write config");
    let env = Environment::fixed([(
        "CREDENTIALS_DIRECTORY",
        repo_file("examples/credentials")
            .to_str()
            .expect("utf-8 path")
            .to_owned(),
    )]);
    config::load(&path, &env).expect("valid config").config
}

pub fn repo_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

/// A context on a fresh database in `dir`, reading time from `clock`.
pub fn context(dir: &Path, schedules: &[(JobName, &str)], clock: SharedClock) -> Context {
    let config = config(dir, schedules);
    let store = Store::open(&config.store.path).expect("open store");
    Context {
        halo: HaloShared::for_config(&config.halo),
        config: Arc::new(config),
        store: Arc::new(Mutex::new(store)),
        metrics: Metrics::new(),
        clock,
    }
}

/// Wall-clock time that advances with tokio's clock, so `start_paused`
/// tests move it without sleeping. `jump` steps it like NTP or a resumed
/// virtual machine would.
#[derive(Debug)]
pub struct TokioClock {
    base: DateTime<Utc>,
    started: tokio::time::Instant,
    jumped_ms: AtomicI64,
}

impl TokioClock {
    /// Must be called inside the test's runtime.
    pub fn starting_at(base: DateTime<Utc>) -> Arc<Self> {
        Arc::new(Self {
            base,
            started: tokio::time::Instant::now(),
            jumped_ms: AtomicI64::new(0),
        })
    }

    pub fn jump(&self, by: chrono::Duration) {
        self.jumped_ms
            .fetch_add(by.num_milliseconds(), Ordering::SeqCst);
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        self.base
            + chrono::Duration::from_std(self.started.elapsed()).expect("elapsed fits")
            + chrono::Duration::milliseconds(self.jumped_ms.load(Ordering::SeqCst))
    }
}

/// How a scripted job behaves when run.
#[derive(Clone)]
pub enum Script {
    /// Ends at once with this outcome.
    Finish(JobOutcome),
    /// Waits for a permit from the semaphore, then ends `Done`.
    Gate(Arc<Semaphore>),
    /// Never ends by itself and ignores the stop request (a hung upstream
    /// call); reports that it saw the request.
    Hang,
}

/// What a scripted job reports as it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Started(JobName, DateTime<Utc>),
    Finished(JobName),
    /// The runtime asked the job to stop.
    StopRequested(JobName),
}

/// A [`JobRunner`] that plays a script per job and reports each step.
pub struct ScriptedJobs {
    scripts: HashMap<JobName, Script>,
    clock: SharedClock,
    events: mpsc::UnboundedSender<Event>,
}

impl ScriptedJobs {
    /// Jobs without a script finish `Done` with their name as the summary.
    pub fn new(
        clock: SharedClock,
        scripts: impl IntoIterator<Item = (JobName, Script)>,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<Event>) {
        let (events, receiver) = mpsc::unbounded_channel();
        let jobs = Self {
            scripts: scripts.into_iter().collect(),
            clock,
            events,
        };
        (Arc::new(jobs), receiver)
    }
}

pub fn done(summary: &str) -> JobOutcome {
    JobOutcome::Done {
        summary: summary.to_owned(),
        stats: serde_json::json!({ "by": "script" }),
    }
}

impl JobRunner for ScriptedJobs {
    fn run(&self, job: JobName, stop: CancellationToken) -> BoxFuture<'static, JobOutcome> {
        let script = self
            .scripts
            .get(&job)
            .cloned()
            .unwrap_or_else(|| Script::Finish(done(job.as_str())));
        let events = self.events.clone();
        let _ = events.send(Event::Started(job, self.clock.now()));
        async move {
            let outcome = match script {
                Script::Finish(outcome) => outcome,
                Script::Gate(gate) => {
                    gate.acquire().await.expect("gate open").forget();
                    done("released")
                }
                Script::Hang => {
                    stop.cancelled().await;
                    let _ = events.send(Event::StopRequested(job));
                    std::future::pending::<JobOutcome>().await
                }
            };
            let _ = events.send(Event::Finished(job));
            outcome
        }
        .boxed()
    }
}

/// Waits for the next event that satisfies `wanted`, skipping others.
pub async fn next_event(
    events: &mut mpsc::UnboundedReceiver<Event>,
    wanted: impl Fn(&Event) -> bool,
) -> Event {
    loop {
        let event = events.recv().await.expect("the job runner is alive");
        if wanted(&event) {
            return event;
        }
    }
}

/// A plain HTTP/1.1 GET without timers (so paused tokio time cannot fire
/// a client timeout): status, content type and body.
pub async fn http_get(address: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: halosync\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .expect("send");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("read response");
    let (head, body) = response.split_once("\r\n\r\n").expect("headers end");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status code");
    let content_type = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    (status, content_type, body.to_owned())
}

/// The `sync_runs` rows of `job` as (outcome, error), oldest first.
pub fn runs_of(store: &Mutex<Store>, job: JobName) -> Vec<(String, Option<String>)> {
    let store = store.lock().expect("store lock");
    let mut statement = store
        .connection()
        .prepare("SELECT outcome, error FROM sync_runs WHERE job = ?1 ORDER BY id")
        .expect("prepare");
    statement
        .query_map([job.as_str()], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}
