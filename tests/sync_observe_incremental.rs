//! The incremental observer against the simulator: what a delta round and a
//! Halo read from the cursor report, what they cost, and that a lost delta
//! token never reads as deletions; plus the store's cursors end to end.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

use std::path::Path;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use halosync::clock::{Clock, SharedClock};
use halosync::config::{self, AttendeeMode, Environment};
use halosync::graph::auth::Flow;
use halosync::graph::{GraphClient, GraphClientOptions, GraphUpstreams, Window};
use halosync::halo::HaloClient;
use halosync::http::MemoryRequestLog;
use halosync::sim::server::RunningSimulator;
use halosync::store::{AgentRow, Store};
use halosync::sync::graph_map::GraphMapping;
use halosync::sync::halo_map::{AgentDirectory, HaloMapping};
use halosync::sync::observe::{Cursors, Observation, Observer, ReadAhead};
use halosync::sync::plan::{Item, Link, Seen};
use serde_json::{Value, json};

const LEAH: &str = "leah@contoso.com";
/// Linked pairs: the same appointment in Halo and in Exchange.
const PAIRS: [&str; 4] = ["Audit", "Stand-up", "Review", "Handover"];

struct Sim {
    sim: RunningSimulator,
    http: reqwest::Client,
    halo: HaloClient,
    graph: GraphClient,
    agents: AgentDirectory,
    window: Window,
    /// What `/_sim/seed` returned (the ids it assigned).
    seeded: Value,
}

fn graph_time(at: DateTime<Utc>) -> Value {
    json!({"dateTime": at.format("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": "UTC"})
}

fn halo_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S").to_string()
}

impl Sim {
    async fn start() -> Self {
        let sim = RunningSimulator::start_local().await.expect("sim");
        let http = reqwest::Client::builder()
            .timeout(StdDuration::from_secs(10))
            .build()
            .expect("client");
        let config = config::load_str(
            Path::new("/nonexistent/halosync.toml"),
            &sim.simulator.config_snippet(),
            None,
            &Environment::fixed([("HALOSYNC_SIM_SECRET", "demo")]),
        )
        .expect("the simulator's config is valid")
        .config;
        let clock: SharedClock = sim.simulator.clock();
        let log = Arc::new(MemoryRequestLog::new());
        let halo = HaloClient::new(&config.halo, log.clone(), clock.clone()).expect("halo");
        let upstreams = GraphUpstreams::new(log, clock.clone(), &GraphClientOptions::default())
            .expect("upstreams");
        let graph =
            GraphClient::new(&config.connections[0], Flow::Application, &upstreams).expect("graph");
        // Whole hours, so the seeded times read back exactly.
        let day = clock.now() + Duration::days(1);
        let day = day - Duration::seconds(day.timestamp().rem_euclid(86_400));
        let mut this = Self {
            sim,
            http,
            halo,
            graph,
            agents: AgentDirectory::new([(2, LEAH.to_string())]),
            window: Window::new(day - Duration::days(2), day + Duration::days(14)),
            seeded: Value::Null,
        };
        let slot = |n: i64| (day + Duration::hours(8 + n), day + Duration::hours(9 + n));
        let mut events = Vec::new();
        let mut appointments = Vec::new();
        for (n, subject) in (0..).zip(PAIRS) {
            let (start, end) = slot(n);
            events.push(
                json!({"subject": subject, "start": graph_time(start), "end": graph_time(end)}),
            );
            appointments.push(json!({"subject": subject, "agent_id": 2,
                "start_date": halo_time(start), "end_date": halo_time(end)}));
        }
        let (start, end) = slot(6);
        events
            .push(json!({"subject": "Lunch", "start": graph_time(start), "end": graph_time(end)}));
        let (start, end) = slot(-1);
        events.push(
            json!({"subject": "Daily check", "start": graph_time(start), "end": graph_time(end),
            "recurrence": {"pattern": {"type": "daily", "interval": 1},
                           "range": {"type": "numbered", "numberOfOccurrences": 3,
                                     "startDate": day.format("%Y-%m-%d").to_string()}}}),
        );
        this.seeded = this
            .control(
                "seed",
                json!({
                    "agents": [{"id": 2, "name": "Leah", "email": LEAH}],
                    "mailboxes": [{"upn": LEAH}],
                    "events": {LEAH: events},
                    "appointments": appointments,
                }),
            )
            .await;
        this
    }

    fn observer(&self) -> Observer<'_> {
        Observer {
            halo: &self.halo,
            graph: &self.graph,
            halo_mapping: HaloMapping {
                sync_location: true,
                sync_attendees: false,
            },
            graph_mapping: GraphMapping {
                sync_location: true,
                import_as_private: false,
                attendees: AttendeeMode::None,
            },
            agents: &self.agents,
            read_ahead: ReadAhead::default(),
        }
    }

    /// The first incremental pass: no cursors, so an initial delta round
    /// over the window and the whole Halo window (the full pass lists with
    /// calendarView for its markers and hands back no delta link).
    async fn first_round(&self) -> Observation {
        self.incremental(Vec::new(), &Cursors::default()).await
    }

    async fn incremental(&self, links: Vec<Link>, previous: &Cursors) -> Observation {
        self.observer()
            .incremental(2, LEAH, self.window, links, previous)
            .await
            .expect("incremental pass")
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}_sim/{path}", self.sim.simulator.base_url()))
            .json(&body)
            .send()
            .await
            .expect("control");
        let status = response.status();
        let text = response.text().await.expect("body");
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn act(&self, body: Value) -> Value {
        self.control("act", body).await
    }

    /// `(graph requests, halo requests, by route)` so far.
    async fn requests(&self) -> (u64, u64, Value) {
        let state: Value = self
            .http
            .get(format!("{}_sim/state", self.sim.simulator.base_url()))
            .send()
            .await
            .expect("state")
            .json()
            .await
            .expect("json");
        let requests = &state["requests"];
        (
            requests["graph"].as_u64().expect("graph count"),
            requests["halo"].as_u64().expect("halo count"),
            requests["by_route"].clone(),
        )
    }
}

fn present<Id>(seen: &Seen<Id>) -> Option<&Item<Id>> {
    match seen {
        Seen::Present(item) => Some(item),
        Seen::Deleted => None,
    }
}

fn halo_id(observation: &Observation, subject: &str) -> i64 {
    observation
        .snapshot
        .halo
        .values()
        .filter_map(present)
        .find(|item| item.content.subject == subject)
        .unwrap_or_else(|| panic!("no Halo {subject}"))
        .id
}

fn graph_id(observation: &Observation, subject: &str) -> String {
    observation
        .snapshot
        .graph
        .values()
        .filter_map(present)
        .find(|item| item.content.subject == subject)
        .unwrap_or_else(|| panic!("no Exchange {subject}"))
        .id
        .clone()
}

/// The links a sync would have made of the first round: each pair, with the
/// versions just read.
fn links(first: &Observation) -> Vec<Link> {
    (1..)
        .zip(PAIRS)
        .map(|(id, subject)| {
            let halo = present(&first.snapshot.halo[&halo_id(first, subject)]).unwrap();
            let graph = present(&first.snapshot.graph[&graph_id(first, subject)]).unwrap();
            Link {
                id,
                halo: Some(halo.synced()),
                graph: Some(graph.synced()),
            }
        })
        .collect()
}

fn route(by_route: &Value, name: &str) -> u64 {
    by_route[name].as_u64().unwrap_or(0)
}

fn deletions<Id>(observation: &std::collections::BTreeMap<Id, Seen<Id>>) -> usize {
    observation
        .values()
        .filter(|seen| matches!(seen, Seen::Deleted))
        .count()
}

#[tokio::test]
async fn with_nothing_changed_a_round_reports_nothing_for_one_delta_request_and_one_halo_page() {
    let sim = Sim::start().await;
    let first = sim.first_round().await;
    // 4 pairs + lunch + 3 occurrences, and the 4 appointments.
    assert_eq!(
        first.snapshot.graph.len(),
        8,
        "{:?}",
        first.snapshot.graph.keys()
    );
    assert_eq!(first.snapshot.halo.len(), 4);
    assert!(first.skipped.is_empty(), "{:?}", first.skipped);
    let link = first
        .cursors
        .delta_link
        .clone()
        .expect("an initial round ends with a delta link");
    assert!(link.contains("$deltatoken="), "{link}");
    assert!(first.cursors.halo_modified.is_some());

    let (graph_before, halo_before, routes_before) = sim.requests().await;
    let round = sim.incremental(links(&first), &first.cursors).await;
    let (graph_after, halo_after, routes_after) = sim.requests().await;

    assert!(
        round.snapshot.graph.is_empty(),
        "{:?}",
        round.snapshot.graph
    );
    assert!(round.snapshot.halo.is_empty(), "{:?}", round.snapshot.halo);
    assert!(round.skipped.is_empty(), "{:?}", round.skipped);
    assert_eq!(graph_after - graph_before, 1, "one Graph request");
    assert_eq!(halo_after - halo_before, 1, "one Halo request");
    let delta = "GET /v1.0/users/{u}/calendarView/delta";
    assert_eq!(
        route(&routes_after, delta) - route(&routes_before, delta),
        1
    );
    let pages = "GET /halo/api/Appointment";
    assert_eq!(
        route(&routes_after, pages) - route(&routes_before, pages),
        1
    );
    assert_eq!(
        round.cursors.halo_modified, first.cursors.halo_modified,
        "nothing newer was seen"
    );
    assert!(round.cursors.delta_link.is_some());
}

#[tokio::test]
async fn each_change_on_either_side_shows_up_exactly_in_the_next_round() {
    let sim = Sim::start().await;
    let first = sim.first_round().await;
    let links = links(&first);
    let (audit, stand_up, lunch) = (
        graph_id(&first, "Audit"),
        graph_id(&first, "Stand-up"),
        graph_id(&first, "Lunch"),
    );
    let (review, handover) = (halo_id(&first, "Review"), halo_id(&first, "Handover"));

    sim.act(json!({"op": "update_event", "mailbox": LEAH, "id": audit,
                   "patch": {"subject": "Audit (room 4)"}}))
        .await;
    sim.act(json!({"op": "delete_event", "mailbox": LEAH, "id": stand_up}))
        .await;
    sim.act(json!({"op": "delete_event", "mailbox": LEAH, "id": lunch}))
        .await;
    sim.act(json!({"op": "update_appointment", "id": review,
                   "changes": {"subject": "Review (moved)"}}))
        .await;
    sim.act(json!({"op": "delete_appointment", "id": handover}))
        .await;

    let round = sim.incremental(links, &first.cursors).await;
    let graph = &round.snapshot.graph;
    assert_eq!(
        graph.keys().collect::<Vec<_>>(),
        {
            let mut expected = vec![&audit, &stand_up];
            expected.sort();
            expected
        },
        "the unlinked lunch's removal is ignored: {graph:?}"
    );
    assert_eq!(
        present(&graph[&audit]).map(|i| i.content.subject.as_str()),
        Some("Audit (room 4)")
    );
    assert_eq!(graph[&stand_up], Seen::Deleted);
    let halo = &round.snapshot.halo;
    assert_eq!(halo.len(), 2, "{halo:?}");
    assert_eq!(
        present(&halo[&review]).map(|i| i.content.subject.as_str()),
        Some("Review (moved)")
    );
    assert_eq!(halo[&handover], Seen::Deleted);
    assert!(round.skipped.is_empty(), "{:?}", round.skipped);
    assert!(
        round.cursors.halo_modified > first.cursors.halo_modified,
        "the cursor moves on to the newest change"
    );
    assert_ne!(round.cursors.delta_link, first.cursors.delta_link);
}

#[tokio::test]
async fn an_evicted_delta_token_reads_the_window_afresh_and_deletes_nothing() {
    let sim = Sim::start().await;
    let first = sim.first_round().await;
    let links = links(&first);
    sim.control("faults", json!({"graph": {"evict_delta_tokens": LEAH}}))
        .await;

    let round = sim.incremental(links.clone(), &first.cursors).await;
    assert_eq!(
        round.snapshot.graph.keys().collect::<Vec<_>>(),
        first.snapshot.graph.keys().collect::<Vec<_>>(),
        "every event is present again"
    );
    assert_eq!(deletions(&round.snapshot.graph), 0);
    assert_eq!(deletions(&round.snapshot.halo), 0);
    let fresh = round.cursors.delta_link.clone().expect("a new link");
    assert_ne!(Some(&fresh), first.cursors.delta_link.as_ref());

    // The new link works: the next round is quiet again.
    let next = sim.incremental(links, &round.cursors).await;
    assert!(next.snapshot.graph.is_empty(), "{:?}", next.snapshot.graph);
}

#[tokio::test]
async fn sparse_occurrences_are_observed_with_their_full_content() {
    let sim = Sim::start().await;
    let (_, _, routes_before) = sim.requests().await;
    let first = sim.first_round().await;
    let (_, _, routes_after) = sim.requests().await;
    let batch = "POST /v1.0/$batch";
    assert!(
        route(&routes_after, batch) > route(&routes_before, batch),
        "the delta round sent the occurrences sparse and they were read in full"
    );
    let occurrences = |observation: &Observation, subject: &str| {
        observation
            .snapshot
            .graph
            .values()
            .filter_map(present)
            .filter(|item| item.content.subject == subject)
            .count()
    };
    assert_eq!(occurrences(&first, "Daily check"), 3);

    // Renaming the series changes every occurrence; the round sends them
    // sparse again.
    let master = sim.seeded["graph"]["events"][LEAH][5]["id"]
        .as_str()
        .expect("the series master's id")
        .to_string();
    sim.act(json!({"op": "update_event", "mailbox": LEAH, "id": master,
                   "patch": {"subject": "Daily check (room 2)"}}))
        .await;
    let round = sim.incremental(links(&first), &first.cursors).await;
    assert_eq!(
        occurrences(&round, "Daily check (room 2)"),
        3,
        "{:?}",
        round.snapshot.graph
    );
    assert_eq!(round.snapshot.graph.len(), 3, "only the series changed");
}

#[tokio::test]
async fn the_cursors_a_pass_returns_round_trip_through_the_store() {
    let sim = Sim::start().await;
    let first = sim.first_round().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("halosync.db")).expect("store");
    let now = sim.sim.simulator.clock().now();
    let window = (sim.window.start, sim.window.end);

    let refused = store
        .save_halo_cursor(2, "appointments", first.cursors.halo_modified.unwrap(), now)
        .expect_err("agent 2 is not recorded yet");
    assert!(
        refused
            .to_string()
            .contains("agent 2 is not in the database"),
        "{refused}"
    );

    store
        .upsert_agent(
            &AgentRow {
                agent_id: 2,
                name: "Leah".into(),
                email: Some(LEAH.into()),
                mailbox: Some(LEAH.into()),
                connection: Some("sim".into()),
                enabled: true,
            },
            now,
        )
        .expect("agent");
    store
        .save_halo_cursor(2, "appointments", first.cursors.halo_modified.unwrap(), now)
        .expect("halo cursor");
    store
        .save_delta_link(
            LEAH,
            window,
            first.cursors.delta_link.as_deref().unwrap(),
            now,
        )
        .expect("delta link");
    let stored = Cursors {
        delta_link: store.delta_link(LEAH, window).expect("read"),
        halo_modified: store.halo_cursor(2, "appointments").expect("read"),
    };
    assert_eq!(stored.delta_link, first.cursors.delta_link);
    // Halo keeps milliseconds, as the store does: nothing is lost.
    assert_eq!(stored.halo_modified, first.cursors.halo_modified);

    let round = sim.incremental(links(&first), &stored).await;
    assert!(round.snapshot.graph.is_empty() && round.snapshot.halo.is_empty());
}

#[tokio::test]
async fn a_linked_event_moved_out_of_the_window_is_not_observed_and_not_deleted() {
    let sim = Sim::start().await;
    let first = sim.first_round().await;
    let review = graph_id(&first, "Review");
    let later = sim.window.end + Duration::days(30);
    sim.act(json!({"op": "update_event", "mailbox": LEAH, "id": review,
                   "patch": {"start": graph_time(later), "end": graph_time(later + Duration::hours(1))}}))
        .await;
    let (_, _, routes_before) = sim.requests().await;
    let round = sim.incremental(links(&first), &first.cursors).await;
    let (_, _, routes_after) = sim.requests().await;
    assert!(
        round.snapshot.graph.is_empty(),
        "{:?}",
        round.snapshot.graph
    );
    let read = "GET /v1.0/users/{u}/events/{id}";
    assert_eq!(
        route(&routes_after, read) - route(&routes_before, read),
        1,
        "the removal was checked by reading the event back: {routes_after}"
    );
}

#[tokio::test]
async fn after_a_burst_of_saves_a_quiet_agent_s_halo_read_is_one_page_again() {
    let sim = Sim::start().await;
    // An import saved 120 appointments in Halo within the same minute: more
    // than a page.
    let day = sim.sim.simulator.clock().now() + Duration::days(2);
    for n in 0..120 {
        let start = day + Duration::minutes(5 * n);
        sim.act(json!({"op": "create_appointment", "appointment": {
            "subject": format!("Imported {n}"), "agent_id": 2,
            "start_date": halo_time(start), "end_date": halo_time(start + Duration::minutes(5))}}))
            .await;
    }
    let burst = sim.sim.simulator.clock().now();
    // Ten quiet minutes pass on Halo's clock before the first read.
    sim.control("faults", json!({"advance_clock_seconds": 600}))
        .await;
    let first = sim.first_round().await;
    let cursor = first.cursors.halo_modified.expect("a Halo cursor");
    assert!(
        cursor > burst + Duration::minutes(5),
        "the cursor follows Halo's clock, not only the newest save: {burst} → {cursor}"
    );

    let (_, halo_before, _) = sim.requests().await;
    let round = sim.incremental(links(&first), &first.cursors).await;
    let (_, halo_after, _) = sim.requests().await;
    assert!(round.snapshot.halo.is_empty(), "{:?}", round.snapshot.halo);
    assert_eq!(
        halo_after - halo_before,
        1,
        "one page, not the burst's two pages (and its unlinked rows) again"
    );
}
