//! The production Halo client against the simulated Halo API: discovery,
//! tokens, agents, paging, incremental reads, batched saves, re-keying,
//! deletes and the hosted rate limit.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration as StdDuration;

use axum::Router;
use chrono::{DateTime, Duration, TimeZone, Utc};
use halosync::clock::ShiftedClock;
use halosync::config::HaloConfig;
use halosync::halo::{
    Appointment, AppointmentQuery, HaloClient, HaloClientOptions, HaloError, HaloShared, PAGE_SIZE,
};
use halosync::http::{MemoryRequestLog, RequestRecord, RetryPolicy};
use halosync::sim::faults::{FaultAction, FaultRule, FaultSettings};
use halosync::sim::halo::{HaloFaults, HaloSeed, HaloSim, HaloSimConfig, RateLimit};
use halosync::sim::token::TokenAuthority;
use secrecy::SecretString;
use serde_json::{Value, json};
use url::Url;

const SECRET: &str = "halo-secret-7d1e33";

struct Harness {
    /// `http://127.0.0.1:port/halo/`
    base: Url,
    clock: Arc<ShiftedClock>,
    tokens: Arc<TokenAuthority>,
    sim: HaloSim,
    log: Arc<MemoryRequestLog>,
}

async fn start(tenant: Option<&str>) -> Harness {
    let clock = Arc::new(ShiftedClock::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/halo", listener.local_addr().unwrap());
    let tokens = Arc::new(TokenAuthority::new());
    let sim = HaloSim::new(HaloSimConfig {
        public_base: Url::parse(&base).unwrap(),
        clock: clock.clone(),
        tokens: tokens.clone(),
        tenant_id: tenant.map(str::to_owned),
    });
    let app = Router::new().nest("/halo", sim.router());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let harness = Harness {
        base: Url::parse(&format!("{base}/")).unwrap(),
        clock,
        tokens,
        sim,
        log: Arc::new(MemoryRequestLog::new()),
    };
    harness.seed(json!({
        "halo_clients": [{"client_id": "halosync", "client_secret": SECRET, "agent_id": 2}],
        "agents": [
            {"id": 2, "name": "Ada Lovelace", "email": "Ada.Lovelace@Contoso.com"},
            {"id": 3, "name": "Bob Builder", "email": "bob@contoso.com", "isdisabled": true},
            {"id": 4, "name": "Cy Young", "email": "cy@contoso.com"},
            {"id": 5, "name": "No Mail", "email": ""},
        ],
    }));
    harness
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 10,
        base_delay: StdDuration::from_millis(200),
        max_delay: StdDuration::from_secs(1),
        max_retry_after: StdDuration::from_secs(5),
    }
}

fn day(d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, d, h, 0, 0).single().unwrap()
}

fn february() -> AppointmentQuery {
    AppointmentQuery {
        start: day(1, 0),
        end: Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).single().unwrap(),
        agents: vec![2],
        include_deleted: false,
        modified_since: None,
    }
}

impl Harness {
    fn seed(&self, value: Value) -> Value {
        let seed: HaloSeed = serde_json::from_value(value).unwrap();
        self.sim.seed(seed).unwrap()
    }

    fn config(&self) -> HaloConfig {
        HaloConfig {
            base_url: self.base.clone(),
            auth_url: None,
            tenant: None,
            client_id: "halosync".into(),
            client_secret: SecretString::from(SECRET),
            scope: "all".into(),
            requests_per_5_minutes: 250,
        }
    }

    fn client_with(&self, config: &HaloConfig) -> HaloClient {
        HaloClient::with_options(
            config,
            self.log.clone(),
            self.clock.clone(),
            HaloClientOptions {
                retry: fast_retries(),
                ..HaloClientOptions::default()
            },
        )
        .unwrap()
    }

    fn client(&self) -> HaloClient {
        self.client_with(&self.config())
    }

    fn route_count(&self, route: &str) -> u64 {
        self.sim
            .state()
            .by_route
            .get(route)
            .copied()
            .unwrap_or_default()
    }

    /// Halo's own limit: `requests` a second.
    fn halo_allows_per_second(&self, requests: usize) {
        self.sim
            .set_faults(HaloFaults {
                rate_limit: Some(RateLimit {
                    requests,
                    window_seconds: 1,
                }),
                ..HaloFaults::default()
            })
            .unwrap();
    }

    fn paths(&self) -> Vec<String> {
        self.log
            .records()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }
}

fn appointment_json(subject: &str, start: DateTime<Utc>, agent: i64) -> Value {
    json!({
        "subject": subject,
        "start_date": start.format("%Y-%m-%dT%H:%M:%S").to_string(),
        "end_date": (start + Duration::minutes(30)).format("%Y-%m-%dT%H:%M:%S").to_string(),
        "agent_id": agent,
    })
}

#[tokio::test]
async fn discovery_finds_the_auth_server_and_tenant_and_the_token_opens_the_api() {
    let harness = start(Some("acme")).await;
    let me = harness.client().me().await.unwrap();
    assert_eq!(me.id, 2, "the application logs in as its agent");
    assert_eq!(
        harness.paths(),
        [
            "GET /halo/api/authinfo",
            "POST /halo/auth/token?tenant=acme",
            "GET /halo/api/Agent/me",
        ]
    );
    assert!(harness.log.records().iter().all(|r| r.status == Some(200)));

    // A configured auth URL and tenant skip discovery.
    let log = Arc::new(MemoryRequestLog::new());
    let mut config = harness.config();
    config.auth_url = Some(harness.base.join("auth").unwrap());
    config.tenant = Some("contoso".into());
    let client = HaloClient::new(&config, log.clone(), harness.clock.clone()).unwrap();
    client.me().await.unwrap();
    let paths: Vec<String> = log.records().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        ["/halo/auth/token?tenant=contoso", "/halo/api/Agent/me"]
    );
}

#[tokio::test]
async fn a_failing_authinfo_falls_back_to_base_auth() {
    let harness = start(None).await;
    harness
        .sim
        .set_faults(HaloFaults {
            faults: FaultSettings {
                rules: vec![FaultRule {
                    method: None,
                    path_contains: Some("authinfo".into()),
                    count: 1,
                    skip: 0,
                    action: FaultAction::Status {
                        status: 404,
                        retry_after_seconds: None,
                    },
                }],
                ..FaultSettings::default()
            },
            ..HaloFaults::default()
        })
        .unwrap();
    let client = harness.client();
    client.me().await.unwrap();
    assert_eq!(
        harness.paths(),
        [
            "GET /halo/api/authinfo",
            "POST /halo/auth/token",
            "GET /halo/api/Agent/me",
        ]
    );
    assert_eq!(harness.log.records()[0].status, Some(404));

    // The fallback is not kept: the next token request asks authinfo again,
    // which now answers, and the discovered server is used from then on.
    harness.clock.advance(Duration::hours(2));
    client.me().await.unwrap();
    harness.clock.advance(Duration::hours(2));
    client.me().await.unwrap();
    assert_eq!(harness.route_count("GET /halo/api/authinfo"), 2);
    assert_eq!(harness.route_count("POST /halo/auth/token"), 3);
    assert!(harness.paths().ends_with(&[
        "POST /halo/auth/token".to_owned(),
        "GET /halo/api/Agent/me".to_owned()
    ]));
}

#[tokio::test]
async fn a_token_is_reused_then_refreshed_before_it_expires_and_after_a_401() {
    let harness = start(Some("acme")).await;
    let client = harness.client();
    client.me().await.unwrap();
    client.agents().await.unwrap();
    assert_eq!(
        harness.route_count("POST /halo/auth/token"),
        1,
        "one token, reused"
    );

    // 57 minutes on, the hour-long token is inside the refresh margin: it is
    // replaced before Halo would refuse it.
    harness.clock.advance(Duration::minutes(57));
    client.me().await.unwrap();
    assert_eq!(harness.route_count("POST /halo/auth/token"), 2);
    // Long after expiry: a new token again, and never a 401.
    harness.clock.advance(Duration::hours(3));
    client.me().await.unwrap();
    assert_eq!(harness.route_count("POST /halo/auth/token"), 3);
    assert!(
        harness.log.records().iter().all(|r| r.status == Some(200)),
        "{:?}",
        harness.paths()
    );

    // A token Halo stops accepting early: one 401, one refresh, success.
    harness.tokens.revoke_all();
    let me = client.me().await.unwrap();
    assert_eq!(me.id, 2);
    let statuses: Vec<Option<u16>> = harness
        .log
        .records()
        .iter()
        .rev()
        .take(3)
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [Some(200), Some(200), Some(401)], "newest first");
    assert_eq!(harness.route_count("POST /halo/auth/token"), 4);
}

#[tokio::test]
async fn concurrent_callers_share_one_token_request() {
    let harness = start(Some("acme")).await;
    let client = harness.client();
    let calls = (0..20).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.me().await })
    });
    for call in futures_util::future::join_all(calls).await {
        assert_eq!(call.unwrap().unwrap().id, 2);
    }
    assert_eq!(harness.route_count("POST /halo/auth/token"), 1);
    assert_eq!(harness.route_count("GET /halo/api/authinfo"), 1);
    assert_eq!(harness.route_count("GET /halo/api/Agent/me"), 20);

    // Expired for everyone at once: still one refresh.
    harness.clock.advance(Duration::hours(2));
    let calls = (0..20).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.me().await })
    });
    for call in futures_util::future::join_all(calls).await {
        call.unwrap().unwrap();
    }
    assert_eq!(harness.route_count("POST /halo/auth/token"), 2);
}

#[tokio::test]
async fn a_wrong_secret_is_a_configuration_error_naming_where_to_fix_it() {
    let harness = start(Some("acme")).await;
    let mut config = harness.config();
    config.client_secret = SecretString::from("not-the-secret");
    let error = harness.client_with(&config).me().await.unwrap_err();
    assert!(matches!(error, HaloError::InvalidClient), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("Configuration > Integrations > Halo API"),
        "{message}"
    );
    assert!(!message.contains("not-the-secret"), "{message}");
    assert_eq!(
        harness.route_count("POST /halo/auth/token"),
        1,
        "a refused client is not retried"
    );
}

#[tokio::test]
async fn agents_skip_unassigned_disabled_and_mailless_and_keep_lower_case_email() {
    let harness = start(None).await;
    let client = harness.client();
    let agents = client.agents().await.unwrap();
    let listed: Vec<(i64, Option<&str>)> =
        agents.iter().map(|a| (a.id, a.email.as_deref())).collect();
    assert_eq!(
        listed,
        [
            (2, Some("ada.lovelace@contoso.com")),
            (4, Some("cy@contoso.com"))
        ]
    );
    let bob = client.agent(3).await.unwrap();
    assert_eq!(bob.name.as_deref(), Some("Bob Builder"));
    assert!(bob.is_disabled());
    let missing = client.agent(999).await.unwrap_err();
    assert!(matches!(missing, HaloError::NotFound { .. }), "{missing:?}");
    assert!(
        missing.to_string().contains("Agent 999 not found"),
        "{missing}"
    );
}

#[tokio::test]
async fn paging_over_1050_appointments_returns_each_once_newest_change_first() {
    let harness = start(None).await;
    let stamp = day(1, 0);
    let appointments: Vec<Value> = (0..1050)
        .map(|i| {
            let mut row = appointment_json(&format!("visit {i}"), day(2 + i % 20, 9), 2);
            row["last_modified"] = json!(
                (stamp + Duration::minutes(i64::from(i)))
                    .format("%Y-%m-%dT%H:%M:%S")
                    .to_string()
            );
            row
        })
        .collect();
    // Another agent's appointments stay out of the listing.
    harness.seed(json!({"appointments": appointments}));
    harness.seed(json!({"appointments": [appointment_json("cy's", day(3, 9), 4)]}));

    let listing = harness.client().appointments(&february()).await.unwrap();
    assert_eq!(listing.appointments.len(), 1050);
    let mut ids: Vec<i64> = listing.appointments.iter().filter_map(|a| a.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 1050, "no duplicates");
    assert_eq!(
        listing.pages, 11,
        "ten full pages of {PAGE_SIZE} and a short one"
    );
    assert_eq!(harness.route_count("GET /halo/api/Appointment"), 11);
    assert!(!listing.reached_cursor);
    let modified: Vec<DateTime<Utc>> = listing
        .appointments
        .iter()
        .map(|a| a.last_modified.unwrap())
        .collect();
    assert!(modified.windows(2).all(|w| w[0] >= w[1]), "newest first");
    assert_eq!(
        listing.appointments[0].subject.as_deref(),
        Some("visit 1049")
    );
    assert!(
        harness
            .log
            .records()
            .iter()
            .any(|r| r.path.contains("page_no=11") && r.path.contains("agents=2")),
        "{:?}",
        harness.paths()
    );
}

#[tokio::test]
async fn an_incremental_read_stops_at_the_cursor() {
    let harness = start(None).await;
    let stamp = day(1, 0);
    let appointments: Vec<Value> = (0..250)
        .map(|i| {
            let mut row = appointment_json(&format!("visit {i}"), day(10, 9), 2);
            row["last_modified"] = json!(
                (stamp + Duration::minutes(i64::from(i)))
                    .format("%Y-%m-%dT%H:%M:%S")
                    .to_string()
            );
            row
        })
        .collect();
    harness.seed(json!({"appointments": appointments}));
    // The cursor is the change to "visit 240": it and the nine after it come back.
    let query = AppointmentQuery {
        modified_since: Some(stamp + Duration::minutes(240)),
        ..february()
    };
    let listing = harness.client().appointments(&query).await.unwrap();
    let subjects: Vec<&str> = listing
        .appointments
        .iter()
        .filter_map(|a| a.subject.as_deref())
        .collect();
    assert_eq!(subjects.len(), 10, "{subjects:?}");
    assert_eq!(subjects.first(), Some(&"visit 249"));
    assert_eq!(subjects.last(), Some(&"visit 240"));
    assert!(listing.reached_cursor);
    assert_eq!(listing.pages, 1, "stopped without reading further pages");
    assert_eq!(harness.route_count("GET /halo/api/Appointment"), 1);
}

#[tokio::test]
async fn creates_and_updates_go_in_one_batched_post() {
    let harness = start(None).await;
    let seeded =
        harness.seed(json!({"appointments": [appointment_json("old subject", day(5, 9), 2)]}));
    let existing = seeded["appointments"][0].as_i64().unwrap();
    let client = harness.client();
    let saved = client
        .save_appointments(&[
            Appointment {
                id: Some(existing),
                subject: Some("new subject".into()),
                ..Appointment::default()
            },
            Appointment {
                subject: Some("created".into()),
                note: Some("bring the ladder".into()),
                start_date: Some(day(6, 9)),
                end_date: Some(day(6, 10)),
                agent_id: Some(4),
                is_private: Some(true),
                ..Appointment::default()
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        harness.route_count("POST /halo/api/Appointment"),
        1,
        "one request"
    );
    assert_eq!(saved.len(), 2);
    assert_eq!(saved[0].appointment.id, Some(existing));
    assert_eq!(saved[0].rekeyed(), None);
    let created = saved[1].appointment.id.unwrap();
    assert_ne!(created, existing);
    assert_eq!(saved[1].sent_id, None);

    let updated = client.appointment(existing).await.unwrap();
    assert_eq!(updated.subject.as_deref(), Some("new subject"));
    assert_eq!(
        updated.start_date,
        Some(day(5, 9)),
        "a partial update keeps the fields it did not send"
    );
    let fetched = client.appointment(created).await.unwrap();
    assert_eq!(
        fetched.note.as_deref(),
        Some("bring the ladder"),
        "details included"
    );
    assert_eq!(fetched.start_date, Some(day(6, 9)));
    assert_eq!(fetched.is_private, Some(true));
    assert!(
        harness
            .log
            .records()
            .iter()
            .any(|r| r.path == format!("/halo/api/Appointment/{created}?includedetails=true")),
        "{:?}",
        harness.paths()
    );
}

#[tokio::test]
async fn many_saves_are_split_into_batches() {
    let harness = start(None).await;
    let items: Vec<Appointment> = (0..60)
        .map(|i| Appointment {
            subject: Some(format!("batch {i}")),
            start_date: Some(day(7, 9) + Duration::minutes(i)),
            end_date: Some(day(7, 10) + Duration::minutes(i)),
            agent_id: Some(2),
            ..Appointment::default()
        })
        .collect();
    let saved = harness.client().save_appointments(&items).await.unwrap();
    assert_eq!(saved.len(), 60);
    assert_eq!(
        harness.route_count("POST /halo/api/Appointment"),
        3,
        "25 + 25 + 10"
    );
    let subjects: Vec<String> = saved
        .iter()
        .map(|s| s.appointment.subject.clone().unwrap())
        .collect();
    assert_eq!(subjects[59], "batch 59", "results keep the order sent");
}

#[tokio::test]
async fn an_update_saved_under_a_new_id_is_reported_as_rekeyed() {
    let harness = start(None).await;
    let seeded = harness.seed(json!({"appointments": [appointment_json("visit", day(5, 9), 2)]}));
    let old = seeded["appointments"][0].as_i64().unwrap();
    harness
        .sim
        .set_faults(HaloFaults {
            rekey_on_update: true,
            ..HaloFaults::default()
        })
        .unwrap();
    let client = harness.client();
    let saved = client
        .save_appointments(&[Appointment {
            id: Some(old),
            subject: Some("moved".into()),
            ..Appointment::default()
        }])
        .await
        .unwrap();
    let (from, to) = saved[0].rekeyed().expect("re-keyed");
    assert_eq!(from, old);
    assert_ne!(to, old);
    assert_eq!(
        client.appointment(to).await.unwrap().subject.as_deref(),
        Some("moved")
    );
    let gone = client.appointment(old).await.unwrap_err();
    assert!(matches!(gone, HaloError::NotFound { .. }), "{gone:?}");
}

#[tokio::test]
async fn delete_removes_the_appointment_with_ignoreexchangedelete() {
    let harness = start(None).await;
    let seeded = harness.seed(json!({"appointments": [
        appointment_json("keep", day(5, 9), 2),
        appointment_json("drop", day(5, 11), 2),
    ]}));
    let drop_id = seeded["appointments"][1].as_i64().unwrap();
    let client = harness.client();
    client.delete_appointment(drop_id, true).await.unwrap();
    assert!(
        harness.paths().contains(&format!(
            "DELETE /halo/api/Appointment/{drop_id}?ignoreexchangedelete=true"
        )),
        "{:?}",
        harness.paths()
    );
    let live = client.appointments(&february()).await.unwrap();
    assert_eq!(live.appointments.len(), 1);
    assert_eq!(live.appointments[0].subject.as_deref(), Some("keep"));
    let with_deleted = client
        .appointments(&AppointmentQuery {
            include_deleted: true,
            ..february()
        })
        .await
        .unwrap();
    assert_eq!(with_deleted.appointments.len(), 2);
    let again = client.delete_appointment(drop_id, true).await.unwrap_err();
    assert!(matches!(again, HaloError::NotFound { .. }), "{again:?}");
}

#[tokio::test]
async fn a_429_from_halo_backs_off_and_the_calls_succeed() {
    let harness = start(None).await;
    harness.halo_allows_per_second(3);
    // The client's own budget is set far above the simulator's so Halo's
    // 429 is what it meets.
    let mut config = harness.config();
    config.requests_per_5_minutes = 10_000;
    let client = harness.client_with(&config);
    for _ in 0..8 {
        assert_eq!(client.me().await.unwrap().id, 2);
    }
    let records = harness.log.records();
    let throttled = records.iter().filter(|r| r.status == Some(429)).count();
    assert!(
        throttled > 0,
        "the simulator throttled: {:?}",
        harness.paths()
    );
    let throttled_record: &RequestRecord = records.iter().find(|r| r.status == Some(429)).unwrap();
    assert_eq!(
        throttled_record.error.as_deref(),
        Some("Rate Limit Reached - 3 Requests per rolling 1 second window")
    );
    assert_eq!(
        records.iter().filter(|r| r.status == Some(200)).count(),
        10,
        "discovery, the token and eight calls all got through"
    );
}

#[tokio::test]
async fn the_clients_own_budget_keeps_it_under_halos_limit() {
    let harness = start(None).await;
    harness.halo_allows_per_second(4);
    // Three requests per second against Halo's four: Halo never says 429.
    let mut config = harness.config();
    config.requests_per_5_minutes = 3;
    let client = HaloClient::with_options(
        &config,
        harness.log.clone(),
        harness.clock.clone(),
        HaloClientOptions {
            retry: fast_retries(),
            budget_window: StdDuration::from_secs(1),
            ..HaloClientOptions::default()
        },
    )
    .unwrap();
    for _ in 0..6 {
        client.me().await.unwrap();
    }
    let records = harness.log.records();
    assert_eq!(records.len(), 8, "{:?}", harness.paths());
    assert!(
        records.iter().all(|r| r.status == Some(200)),
        "{:?}",
        harness.paths()
    );
}

#[tokio::test]
async fn clients_sharing_a_budget_and_a_token_keep_under_halos_limit_together() {
    let harness = start(None).await;
    harness.halo_allows_per_second(3);
    // Two clients (two of the service's jobs), two requests a second
    // between them against Halo's three. Each alone would send two a
    // second, four together: Halo would answer 429.
    let config = harness.config();
    let shared = HaloShared::new(2, StdDuration::from_secs(1));
    let client = || {
        HaloClient::with_options(
            &config,
            harness.log.clone(),
            harness.clock.clone(),
            HaloClientOptions {
                retry: fast_retries(),
                shared: Some(shared.clone()),
                ..HaloClientOptions::default()
            },
        )
        .unwrap()
    };
    let (first, second) = (client(), client());
    let started = std::time::Instant::now();
    for _ in 0..2 {
        first.me().await.unwrap();
        second.me().await.unwrap();
    }
    // One discovery and one token for both, then four calls.
    let paths = harness.paths();
    assert_eq!(paths.len(), 6, "{paths:?}");
    assert_eq!(
        paths.iter().filter(|p| p.contains("token")).count(),
        1,
        "{paths:?}"
    );
    assert_eq!(
        paths.iter().filter(|p| p.contains("authinfo")).count(),
        1,
        "{paths:?}"
    );
    let records = harness.log.records();
    assert!(
        records.iter().all(|r| r.status == Some(200)),
        "{:?}",
        harness.paths()
    );
    assert!(
        started.elapsed() >= StdDuration::from_secs(2),
        "six requests at two a second take over two seconds: {:?}",
        started.elapsed()
    );
}
