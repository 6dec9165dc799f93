//! The webhook listener on 127.0.0.1:0 in front of a fresh store, the
//! simulator behind it (as Graph), and a subscription manager using the
//! simulator's application client, for the `webhook_*` tests.
#![allow(dead_code)] // each test file uses a different part of the harness
#![allow(clippy::expect_used, clippy::unwrap_used)] // test support: fail loudly

use std::sync::{Arc, Mutex};
use std::time::Duration;

use halosync::clock::SharedClock;
use halosync::config::{ConnectionKind, WebhookConfig};
use halosync::graph::{GraphClient, GraphError};
use halosync::store::inbound_log::{self, InboundRecord};
use halosync::store::request_log::RequestFilter;
use halosync::store::subscriptions::{self, SubscriptionRow, SubscriptionState};
use halosync::store::{AgentRow, Store};
use halosync::webhook::notification::client_state_hash;
use halosync::webhook::{
    GraphClients, SubscriptionManager, SubscriptionSettings, SubscriptionTarget, WebhookQueue,
    WebhookState,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::graph_client_support::{Harness, OK};

pub const LEAH: &str = OK;
pub const LEAH_ID: i64 = 2;
pub const NOTIFY: &str = "/graph/notify";
pub const LIFECYCLE: &str = "/graph/lifecycle";

/// Every agent's client is the simulator's application client.
pub struct AppClients(pub GraphClient);

impl GraphClients for AppClients {
    fn client(&self, _agent_id: i64, _connection: &str) -> Result<GraphClient, GraphError> {
        Ok(self.0.clone())
    }
}

pub struct Hook {
    pub h: Harness,
    _dir: tempfile::TempDir,
    pub store: Arc<Mutex<Store>>,
    pub queue: WebhookQueue,
    pub state: WebhookState,
    /// `http://127.0.0.1:<port>`, the listener's public URL.
    pub base: String,
    pub config: WebhookConfig,
    pub clock: SharedClock,
    pub manager: Arc<SubscriptionManager>,
    pub clients: Arc<AppClients>,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
}

impl Hook {
    /// Everything on the simulator's clock.
    pub async fn start() -> Self {
        let h = Harness::start().await;
        let clock = h.clock();
        Self::start_with(h, clock).await
    }

    /// The manager (and the listener) on `clock`; the Graph client stays
    /// on the simulator's.
    pub async fn start_with(h: Harness, clock: SharedClock) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("halosync.db")).unwrap();
        store
            .upsert_agent(
                &AgentRow {
                    agent_id: LEAH_ID,
                    name: "Leah".into(),
                    email: Some(LEAH.into()),
                    mailbox: Some(LEAH.into()),
                    connection: Some("main".into()),
                    enabled: true,
                },
                clock.now(),
            )
            .unwrap();
        let store = Arc::new(Mutex::new(store));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let config = WebhookConfig {
            enabled: true,
            listen: addr,
            public_url: Some(url::Url::parse(&base).unwrap()),
            notify_path: NOTIFY.into(),
            lifecycle_path: LIFECYCLE.into(),
            subscription_lifetime_minutes: 4230,
        };
        let queue = WebhookQueue::new(store.clone());
        let state = WebhookState::new(&config, queue.clone(), clock.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(halosync::webhook::serve(listener, state.clone(), async {
            let _ = stopped.await;
        }));
        let manager = Arc::new(SubscriptionManager::new(
            queue.clone(),
            SubscriptionSettings::from_config(&config),
            clock.clone(),
        ));
        let clients = Arc::new(AppClients(h.app_client()));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        Self {
            h,
            _dir: dir,
            store,
            queue,
            state,
            base,
            config,
            clock,
            manager,
            clients,
            http,
            stop: Some(stop),
        }
    }

    pub fn leah(&self) -> SubscriptionTarget<'static> {
        SubscriptionTarget {
            agent_id: LEAH_ID,
            mailbox: LEAH,
            connection: "main",
            kind: ConnectionKind::Application,
        }
    }

    /// Subscribes Leah's mailbox through the manager; returns the id.
    pub async fn subscribe_leah(&self) -> String {
        match self
            .manager
            .ensure(&self.leah(), &self.clients.0)
            .await
            .unwrap()
        {
            halosync::webhook::Ensured::Created {
                subscription_id, ..
            } => subscription_id,
            other => panic!("expected a new subscription, got {other:?}"),
        }
    }

    /// A subscription row for Leah whose clientState the test knows.
    pub fn insert_known(&self, subscription_id: &str, client_state: &str) {
        let now = self.clock.now();
        let store = self.store.lock().unwrap();
        subscriptions::insert(
            store.connection(),
            &SubscriptionRow {
                subscription_id: subscription_id.into(),
                agent_id: LEAH_ID,
                mailbox: LEAH.into(),
                connection: "main".into(),
                resource: format!("/users/{LEAH}/events"),
                client_state_hash: client_state_hash(&SecretString::from(client_state)),
                expires_at: now + chrono::Duration::days(2),
                created_at: now,
                renewed_at: None,
                state: SubscriptionState::Active,
                last_error: None,
                last_notification_at: None,
            },
        )
        .unwrap();
    }

    pub async fn post(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, String) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    pub fn inbound(&self) -> Vec<InboundRecord> {
        let store = self.store.lock().unwrap();
        inbound_log::query(store.connection(), &RequestFilter::newest(1000)).unwrap()
    }

    pub fn subscriptions(&self) -> Vec<SubscriptionRow> {
        subscriptions::all(self.store.lock().unwrap().connection()).unwrap()
    }

    /// A person creates an event in `mailbox` (Graph notifies subscribers).
    pub async fn person_creates(&self, mailbox: &str, subject: &str) -> Value {
        let start = self.h.now() + chrono::Duration::days(1);
        self.h
            .control(
                "act",
                json!({"op": "create_event", "mailbox": mailbox, "event": {
                    "subject": subject,
                    "start": crate::graph_client_support::at(start),
                    "end": crate::graph_client_support::at(start + chrono::Duration::hours(1)),
                }}),
            )
            .await
    }

    /// Waits until the simulator has made `count` successful deliveries of
    /// change notifications (lifecycle ones are not counted).
    pub async fn deliveries_done(&self, count: usize) -> Vec<Value> {
        for _ in 0..500 {
            let deliveries: Vec<Value> = self.h.state().await["deliveries"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let ok = deliveries
                .iter()
                .filter(|d| {
                    matches!(d["kind"].as_str(), Some("created" | "updated" | "deleted"))
                        && d["status"]
                            .as_u64()
                            .is_some_and(|s| (200..300).contains(&s))
                })
                .count();
            if ok >= count {
                return deliveries;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the simulator did not deliver {count} notifications");
    }

    /// The simulator's live subscriptions.
    pub async fn graph_subscriptions(&self) -> Vec<Value> {
        self.h.state().await["subscriptions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
