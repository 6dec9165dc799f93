//! The simulated Microsoft Graph v1.0: users, mailboxes, events (with real
//! recurrence expansion), `calendarView` and its delta, subscriptions with the
//! validation handshake and notification delivery, `$batch`, and Outlook's
//! throttling.
//!
//! [`GraphSim`] is the handle the composer mounts at `/graph`; its router
//! serves paths relative to that mount (`/v1.0/...`) and every absolute URL it
//! emits is built from [`GraphSimConfig::public_base`].
//!
//! Module map: [`model`] (Graph's wire types), [`store`] (mailboxes and the
//! event store), `rules` (what Exchange fills in and checks on writes),
//! [`recurrence`], [`time`], [`ids`], `routes` (routing, auth, throttling),
//! `odata` (query options, paging), `events`, `meetings` (attendees' copies
//! of meetings), `delta`, `subscriptions`, `batch`, and [`control`] (the
//! seed/act/faults/state JSON of the control API).

mod batch;
pub mod control;
mod delta;
mod error;
mod events;
pub mod ids;
mod meetings;
pub mod model;
mod odata;
pub mod recurrence;
mod routes;
mod rules;
pub mod store;
mod subscriptions;
pub mod time;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use serde_json::{Value, json};

use crate::clock::SharedClock;
use crate::sim::faults::{ErrorBody, FaultPlan, RollingWindow};
use crate::sim::token::TokenAuthority;

pub use control::{
    Delivery, GraphAction, GraphFaults, GraphSeed, GraphSimError, GraphState, Invitation,
    LifecycleFault, SeedMailbox,
};
pub use routes::IN_BATCH;
pub use store::MailboxState;

/// What the composer hands the Graph simulator.
#[derive(Clone)]
pub struct GraphSimConfig {
    /// The public URL the router is mounted at, such as
    /// `http://127.0.0.1:8080/graph`; nextLink/deltaLink URLs start with it.
    pub public_base: String,
    pub clock: SharedClock,
    /// Verifies the bearer tokens the identity platform minted.
    pub tokens: Arc<TokenAuthority>,
}

// The token authority holds the signing key: keep it out of Debug output.
impl std::fmt::Debug for GraphSimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphSimConfig")
            .field("public_base", &self.public_base)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// Tunables the control API can change (`POST /_sim/faults`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Settings {
    pub concurrency_limit: usize,
    pub budget_per_10_min: usize,
    pub mailbox_hold_ms: u64,
    pub max_subscription_minutes: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            concurrency_limit: 4,
            budget_per_10_min: 10_000,
            mailbox_hold_ms: 0,
            max_subscription_minutes: 10_080,
        }
    }
}

/// Everything that changes while the simulator runs.
#[derive(Debug, Default)]
pub(crate) struct Inner {
    /// Mailboxes by lower-cased UPN.
    pub mailboxes: BTreeMap<String, store::Mailbox>,
    pub settings: Settings,
    /// Requests in flight per (app id, mailbox).
    pub in_flight: HashMap<(String, String), usize>,
    pub budgets: HashMap<(String, String), RollingWindow>,
    pub delta: delta::DeltaTokens,
    pub subscriptions: BTreeMap<String, subscriptions::SubscriptionRecord>,
    pub invitations: Vec<Invitation>,
    pub deliveries: Vec<Delivery>,
    pub requests: u64,
    pub by_route: BTreeMap<String, u64>,
}

impl Inner {
    /// A mailbox by UPN or user id, case-insensitively.
    pub fn mailbox_key(&self, user: &str) -> Option<String> {
        let lower = user.to_lowercase();
        if self.mailboxes.contains_key(&lower) {
            return Some(lower);
        }
        self.mailboxes
            .iter()
            .find(|(_, m)| m.user_id.eq_ignore_ascii_case(user))
            .map(|(k, _)| k.clone())
    }
}

pub(crate) struct Shared {
    pub base: String,
    pub clock: SharedClock,
    pub tokens: Arc<TokenAuthority>,
    pub faults: Arc<FaultPlan>,
    /// For validation handshakes and notification delivery.
    pub http: reqwest::Client,
    state: Mutex<Inner>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphSim")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state is plain data; a panic elsewhere must not wedge the simulator.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}

/// The simulated Graph: cheap to clone, all clones share one state.
#[derive(Debug, Clone)]
pub struct GraphSim {
    shared: Arc<Shared>,
}

impl GraphSim {
    pub fn new(config: GraphSimConfig) -> Self {
        // Delivery to a webhook must answer within Graph's 3 seconds; the
        // validation handshake gets 10 (set per request).
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(3))
            .connect_timeout(std::time::Duration::from_secs(3))
            .build()
            .unwrap_or_default();
        Self {
            shared: Arc::new(Shared {
                base: config.public_base.trim_end_matches('/').to_string(),
                clock: config.clock,
                tokens: config.tokens,
                faults: Arc::new(FaultPlan::new()),
                http,
                state: Mutex::new(Inner::default()),
            }),
        }
    }

    /// The Graph API, relative to its mount, wrapped in the fault injector.
    pub fn router(&self) -> Router {
        let error_body: ErrorBody = error::fault_body;
        routes::router(self.shared.clone()).layer(axum::middleware::from_fn_with_state(
            (self.shared.faults.clone(), error_body),
            crate::sim::faults::inject,
        ))
    }

    /// Forgets every mailbox, event, subscription and token; default settings.
    pub fn reset(&self) {
        *self.shared.lock() = Inner::default();
        self.shared.faults.clear();
    }

    /// Adds mailboxes and events; returns the ids assigned.
    pub fn seed(&self, seed: GraphSeed) -> Result<Value, GraphSimError> {
        control::seed(&self.shared, seed)
    }

    /// A person changing an event outside halosync (notifications follow).
    pub async fn act(&self, action: GraphAction) -> Result<Value, GraphSimError> {
        control::act(&self.shared, action)
    }

    pub fn set_faults(&self, faults: GraphFaults) -> Result<(), GraphSimError> {
        control::set_faults(&self.shared, faults)
    }

    pub fn state(&self) -> GraphState {
        control::state(&self.shared)
    }

    /// Requests served so far, by `"METHOD /route/{template}"`: the cheap
    /// part of [`GraphSim::state`] (which copies every event).
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.shared.lock().by_route.clone()
    }

    /// The subject of event `id` (any id form) in mailbox `upn`, without
    /// copying the mailbox; `None` when either is unknown.
    pub fn event_subject(&self, upn: &str, id: &str) -> Option<String> {
        let inner = self.shared.lock();
        let mailbox = inner.mailboxes.get(&inner.mailbox_key(upn)?)?;
        let key = mailbox.resolve(id).ok()?.master();
        mailbox.events.get(&key)?.event.subject.clone()
    }

    /// The public base URL this simulator builds links from.
    pub fn public_base(&self) -> &str {
        &self.shared.base
    }
}

/// `{"value": [...]}` with an OData context.
pub(crate) fn collection(context: String, value: Vec<Value>) -> Value {
    json!({"@odata.context": context, "value": value})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    #[test]
    fn debug_output_leaves_out_the_token_signing_key() {
        let config = GraphSimConfig {
            public_base: "http://127.0.0.1:1/graph/".into(),
            clock: Arc::new(SystemClock),
            tokens: Arc::new(TokenAuthority::new()),
        };
        let config_debug = format!("{config:?}");
        let sim = GraphSim::new(config);
        let sim_debug = format!("{sim:?}");
        for text in [&config_debug, &sim_debug] {
            assert!(!text.contains("key"), "{text}");
            assert!(text.contains("127.0.0.1:1/graph"), "{text}");
        }
        assert_eq!(sim.public_base(), "http://127.0.0.1:1/graph");
    }
}
