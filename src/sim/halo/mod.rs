//! The simulated HaloITSM API: client-credentials auth, agents and
//! appointments, with Halo's field names, date convention, paging envelope,
//! error shapes and hosted rate limit.
//!
//! Served relative to its mount (`/halo` in the composed server):
//! `POST /auth/token`, `GET /api/authinfo`, `/api/Agent[/{id}|/me]`,
//! `GET|POST /api/Appointment`, `GET|DELETE /api/Appointment/{id}` (the
//! lower-case spellings too, as Halo's routing ignores case).
//!
//! Choices where the real API is undocumented (see `halo.md` §7):
//! - the `start_date`/`end_date` filter returns appointments that overlap the
//!   window;
//! - a soft-deleted appointment, listed with `includedeleted=true`, looks like
//!   any other row: the `Appointment` schema has no deletion marker, so a
//!   client tells deletions apart by listing with and without the flag;
//! - the API agent is an administrator, so `showall` changes nothing;
//! - every request, `/auth/token` included, spends the rate-limit budget, and
//!   a 429 carries no `Retry-After`;
//! - a token requested without `scope` is issued but refused by the API, as
//!   reported in the wild.
//! - `/auth/token?tenant=` is accepted and not checked; the tenant only ends
//!   up in the token.

mod agents;
mod appointment;
mod appointments_api;
mod auth;
mod errors;
mod params;
mod store;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use url::Url;

use crate::clock::SharedClock;
use crate::sim::faults::{self, ErrorBody, FaultPlan, FaultSettings, RollingWindow};
use crate::sim::request_log::{self, RequestLog};
use crate::sim::token::TokenAuthority;
use agents::Agent;
pub use appointment::{Appointment, AppointmentAgent, HaloDateTime};
use errors::HaloError;

/// Halo's "unassigned" pseudo-agent, present in every agent list.
pub const UNASSIGNED_AGENT_ID: i32 = 1;
/// The API-only agent a client logs in as when its seed names none.
pub const API_AGENT_ID: i32 = 1_000_000;
/// The hosted limit: 300 requests per rolling 5 minutes.
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    requests: 300,
    window_seconds: 300,
};

/// How the composer builds the Halo simulator.
#[derive(Debug, Clone)]
pub struct HaloSimConfig {
    /// The public URL of the Halo mount (such as `http://127.0.0.1:8080/halo`);
    /// `authinfo` points clients at `{public_base}/auth`.
    pub public_base: Url,
    pub clock: SharedClock,
    pub tokens: Arc<TokenAuthority>,
    /// Reported by `authinfo` as `tenant_id` (so clients add `?tenant=`).
    pub tenant_id: Option<String>,
}

/// An API application (Configuration > Integrations > Halo API).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaloClientSeed {
    pub client_id: String,
    pub client_secret: SecretString,
    /// The agent the application logs in as (`GET /api/Agent/me`); absent
    /// means the built-in API agent [`API_AGENT_ID`].
    #[serde(default)]
    pub agent_id: Option<i32>,
}

/// An agent (a technician with a calendar).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSeed {
    pub id: i32,
    pub name: String,
    pub email: String,
    #[serde(default)]
    pub isdisabled: bool,
}

/// `POST /_sim/seed`, Halo part. Seeding adds to what is there.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaloSeed {
    /// With none seeded at all, any client id and secret is accepted.
    #[serde(default)]
    pub halo_clients: Vec<HaloClientSeed>,
    #[serde(default)]
    pub agents: Vec<AgentSeed>,
    /// Halo appointment JSON; an `id` is kept, otherwise one is assigned, and
    /// a given `last_modified` is kept (to stage history).
    #[serde(default)]
    pub appointments: Vec<Value>,
}

/// `POST /_sim/act`, Halo part: a person changing appointments in Halo's UI.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum HaloAction {
    CreateAppointment {
        appointment: Map<String, Value>,
    },
    /// Changes only the given properties.
    UpdateAppointment {
        id: i32,
        changes: Map<String, Value>,
    },
    DeleteAppointment {
        id: i32,
    },
}

/// A rolling request budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub requests: usize,
    pub window_seconds: u64,
}

/// `POST /_sim/faults`, Halo part. Each call replaces every setting; absent
/// ones return to their defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaloFaults {
    #[serde(default)]
    pub faults: FaultSettings,
    /// Default: 300 requests per 300 seconds.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Make every API update return the appointment under a new id (the old
    /// id is soft-deleted), as some Halo tenants do.
    #[serde(default)]
    pub rekey_on_update: bool,
}

/// Why a control request to the Halo simulator was refused.
#[derive(Debug, thiserror::Error)]
pub enum HaloSimError {
    #[error("a halo client needs a non-empty client_id")]
    EmptyClientId,
    #[error(
        "agent id {0} is reserved or invalid; use an id of 2 or more other than {API_AGENT_ID}"
    )]
    ReservedAgentId(i32),
    #[error("appointment {index} in the seed is not usable: {reason}")]
    BadSeedAppointment { index: usize, reason: String },
    #[error("rate_limit needs at least one request and a window of at least one second")]
    BadRateLimit,
    #[error("{0}")]
    Rejected(String),
}

/// A stored appointment and whether it was (soft-)deleted.
#[derive(Debug, Clone, Serialize)]
pub struct StoredAppointment {
    #[serde(flatten)]
    pub appointment: Appointment,
    pub deleted: bool,
}

/// What `GET /_sim/state` shows of Halo.
#[derive(Debug, Clone, Serialize)]
pub struct HaloState {
    pub appointments: Vec<StoredAppointment>,
    pub requests: u64,
    pub by_route: BTreeMap<String, u64>,
}

#[derive(Debug)]
struct World {
    clients: Vec<HaloClientSeed>,
    agents: BTreeMap<i32, Agent>,
    appointments: BTreeMap<i32, StoredAppointment>,
    next_id: i32,
    rate_limit: RateLimit,
    window: RollingWindow,
    rekey_on_update: bool,
}

impl Default for World {
    fn default() -> Self {
        let agents = [Agent::unassigned(), Agent::api_agent()]
            .into_iter()
            .map(|agent| (agent.id, agent))
            .collect();
        Self {
            clients: Vec::new(),
            agents,
            appointments: BTreeMap::new(),
            next_id: 1,
            rate_limit: DEFAULT_RATE_LIMIT,
            window: window_for(DEFAULT_RATE_LIMIT),
            rekey_on_update: false,
        }
    }
}

fn window_for(limit: RateLimit) -> RollingWindow {
    let seconds = i64::try_from(limit.window_seconds).unwrap_or(i64::MAX);
    RollingWindow::new(limit.requests, chrono::Duration::seconds(seconds))
}

/// Whether a save comes from the API (where re-keying applies) or a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Actor {
    Api,
    Person,
}

#[derive(Debug)]
struct Inner {
    config: HaloSimConfig,
    faults: Arc<FaultPlan>,
    requests: Arc<RequestLog>,
    world: Mutex<World>,
}

/// The simulated HaloITSM API; cheap to clone.
#[derive(Debug, Clone)]
pub struct HaloSim {
    inner: Arc<Inner>,
}

impl HaloSim {
    pub fn new(config: HaloSimConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                faults: Arc::new(FaultPlan::new()),
                requests: Arc::new(RequestLog::default()),
                world: Mutex::new(World::default()),
            }),
        }
    }

    fn world(&self) -> MutexGuard<'_, World> {
        // The world is plain data: a panicked request must not wedge the rest.
        self.inner
            .world
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> DateTime<Utc> {
        self.inner.config.clock.now()
    }

    /// Routes relative to the mount, wrapped (inside out) in the rate limit,
    /// fault injection and request counting.
    pub fn router(&self) -> Router {
        let error_body: ErrorBody = errors::fault_body;
        let mut router = Router::new()
            .route("/auth/token", post(auth::token))
            .route("/api/authinfo", get(auth::authinfo))
            .route("/api/AuthInfo", get(auth::authinfo));
        for agent in ["Agent", "agent"] {
            router = router
                .route(&format!("/api/{agent}"), get(agents::list))
                .route(&format!("/api/{agent}/me"), get(agents::me))
                .route(&format!("/api/{agent}/{{id}}"), get(agents::by_id));
        }
        for appointment in ["Appointment", "appointment"] {
            router = router
                .route(
                    &format!("/api/{appointment}"),
                    get(appointments_api::list).post(appointments_api::save),
                )
                .route(
                    &format!("/api/{appointment}/{{id}}"),
                    get(appointments_api::by_id).delete(appointments_api::delete),
                );
        }
        router
            .route_layer(from_fn_with_state(self.clone(), auth::date_header))
            .route_layer(from_fn_with_state(self.clone(), auth::rate_limit))
            .route_layer(from_fn_with_state(
                (self.inner.faults.clone(), error_body),
                faults::inject,
            ))
            .route_layer(from_fn_with_state(
                self.inner.requests.clone(),
                request_log::count,
            ))
            .with_state(self.clone())
    }

    /// Back to an empty Halo with default settings; tokens minted so far stop
    /// working.
    pub fn reset(&self) {
        *self.world() = World::default();
        self.inner.faults.clear();
        self.inner.requests.clear();
        self.inner.config.tokens.revoke_all();
    }

    pub fn seed(&self, seed: HaloSeed) -> Result<Value, HaloSimError> {
        if seed
            .halo_clients
            .iter()
            .any(|c| c.client_id.trim().is_empty())
        {
            return Err(HaloSimError::EmptyClientId);
        }
        if let Some(agent) = seed
            .agents
            .iter()
            .find(|a| a.id <= UNASSIGNED_AGENT_ID || a.id == API_AGENT_ID)
        {
            return Err(HaloSimError::ReservedAgentId(agent.id));
        }
        let now = self.now();
        let mut world = self.world();
        let mut agent_ids = Vec::new();
        for agent in seed.agents {
            agent_ids.push(agent.id);
            world.agents.insert(agent.id, Agent::from_seed(agent));
        }
        let mut client_ids = Vec::new();
        for client in seed.halo_clients {
            world.clients.retain(|c| c.client_id != client.client_id);
            client_ids.push(client.client_id.clone());
            world.clients.push(client);
        }
        let mut appointment_ids = Vec::new();
        for (index, raw) in seed.appointments.into_iter().enumerate() {
            let bad = |reason: String| HaloSimError::BadSeedAppointment { index, reason };
            let Value::Object(fields) = raw else {
                return Err(bad("not a JSON object".into()));
            };
            let saved = world
                .seed_appointment(&fields, now)
                .map_err(|e| bad(e.message()))?;
            appointment_ids.push(saved);
        }
        Ok(json!({
            "halo_clients": client_ids,
            "agents": agent_ids,
            "appointments": appointment_ids,
        }))
    }

    pub async fn act(&self, action: HaloAction) -> Result<Value, HaloSimError> {
        let now = self.now();
        let mut world = self.world();
        let rejected = |e: HaloError| HaloSimError::Rejected(e.message());
        match action {
            HaloAction::CreateAppointment { mut appointment } => {
                appointment.remove("id");
                let saved = world
                    .save(vec![appointment], now, Actor::Person)
                    .map_err(rejected)?;
                Ok(saved.first().map(Appointment::to_json).unwrap_or_default())
            }
            HaloAction::UpdateAppointment { id, mut changes } => {
                changes.insert("id".into(), json!(id));
                let saved = world
                    .save(vec![changes], now, Actor::Person)
                    .map_err(rejected)?;
                Ok(saved.first().map(Appointment::to_json).unwrap_or_default())
            }
            HaloAction::DeleteAppointment { id } => {
                world.delete(id, now).map_err(rejected)?;
                Ok(json!({ "deleted": id }))
            }
        }
    }

    pub fn set_faults(&self, faults: HaloFaults) -> Result<(), HaloSimError> {
        let rate_limit = faults.rate_limit.unwrap_or(DEFAULT_RATE_LIMIT);
        if rate_limit.requests == 0 || rate_limit.window_seconds == 0 {
            return Err(HaloSimError::BadRateLimit);
        }
        self.inner.faults.set(faults.faults);
        let mut world = self.world();
        if world.rate_limit != rate_limit {
            world.rate_limit = rate_limit;
            world.window = window_for(rate_limit);
        }
        world.rekey_on_update = faults.rekey_on_update;
        Ok(())
    }

    pub fn state(&self) -> HaloState {
        HaloState {
            appointments: self.world().appointments.values().cloned().collect(),
            requests: self.inner.requests.total(),
            by_route: self.inner.requests.snapshot(),
        }
    }

    /// Requests served so far, by route: the cheap part of
    /// [`HaloSim::state`] (which copies every appointment).
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.inner.requests.snapshot()
    }

    /// One stored appointment (deleted ones too), without copying the rest.
    pub fn appointment(&self, id: i32) -> Option<StoredAppointment> {
        self.world().appointments.get(&id).cloned()
    }

    /// Whether `client_id`/`secret` may have a token.
    fn client_allowed(&self, client_id: &str, secret: &str) -> bool {
        let world = self.world();
        world.clients.is_empty()
            || world
                .clients
                .iter()
                .any(|c| c.client_id == client_id && c.client_secret.expose_secret() == secret)
    }
}
