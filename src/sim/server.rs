//! The whole simulator on one server: the identity platform at `/login`,
//! Graph at `/graph`, Halo at `/halo`, and the control API at `/_sim`.
//!
//! The control API is a contract tests rely on; it is documented in
//! `docs/simulator.md`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::clock::{SharedClock, ShiftedClock};
use crate::sim::graph::{GraphFaults, GraphSim, GraphSimConfig, SeedMailbox};
use crate::sim::halo::{AgentSeed, HaloClientSeed, HaloFaults, HaloSeed, HaloSim, HaloSimConfig};
use crate::sim::identity::{
    AppSeed, IdentityFaults, IdentitySeed, IdentitySim, IdentitySimConfig, UserSeed,
};
use crate::sim::token::TokenAuthority;

/// The composed simulator; cheap to clone.
#[derive(Debug, Clone)]
pub struct Simulator {
    parts: Arc<Parts>,
}

#[derive(Debug)]
struct Parts {
    base: Url,
    clock: Arc<ShiftedClock>,
    tokens: Arc<TokenAuthority>,
    identity: IdentitySim,
    graph: GraphSim,
    halo: HaloSim,
}

/// `POST /_sim/seed`: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedRequest {
    #[serde(default)]
    apps: Vec<AppSeed>,
    #[serde(default)]
    halo_clients: Vec<HaloClientSeed>,
    #[serde(default)]
    agents: Vec<AgentSeed>,
    #[serde(default)]
    mailboxes: Vec<SeedMailbox>,
    #[serde(default)]
    events: BTreeMap<String, Vec<Value>>,
    #[serde(default)]
    appointments: Vec<Value>,
}

/// `POST /_sim/faults`: settings per upstream, plus a jump of the clock.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsRequest {
    #[serde(default)]
    identity: Option<IdentityFaults>,
    #[serde(default)]
    graph: Option<GraphFaults>,
    #[serde(default)]
    halo: Option<HaloFaults>,
    /// Moves the simulator's clock forward (tokens, subscriptions and delta
    /// links age without waiting).
    #[serde(default)]
    advance_clock_seconds: Option<i64>,
}

impl Simulator {
    /// A simulator whose public address is `base` (e.g. `http://127.0.0.1:8080/`).
    pub fn new(base: Url) -> Self {
        let clock = Arc::new(ShiftedClock::new());
        let shared: SharedClock = clock.clone();
        let tokens = Arc::new(TokenAuthority::new());
        let identity = IdentitySim::new(IdentitySimConfig {
            clock: shared.clone(),
            tokens: tokens.clone(),
        });
        let graph = GraphSim::new(GraphSimConfig {
            public_base: mount(&base, "graph")
                .as_str()
                .trim_end_matches('/')
                .to_string(),
            clock: shared.clone(),
            tokens: tokens.clone(),
        });
        let halo = HaloSim::new(HaloSimConfig {
            public_base: mount(&base, "halo"),
            clock: shared,
            tokens: tokens.clone(),
            tenant_id: None,
        });
        Self {
            parts: Arc::new(Parts {
                base,
                clock,
                tokens,
                identity,
                graph,
                halo,
            }),
        }
    }

    pub fn base_url(&self) -> &Url {
        &self.parts.base
    }

    /// What halosync's `login_url` should be.
    pub fn login_url(&self) -> Url {
        mount(&self.parts.base, "login")
    }

    /// What halosync's `graph_url` should be.
    pub fn graph_url(&self) -> Url {
        mount(&self.parts.base, "graph")
    }

    /// What halosync's `[halo].base_url` should be.
    pub fn halo_url(&self) -> Url {
        mount(&self.parts.base, "halo")
    }

    /// The simulator's clock, to share with a client under test so both
    /// see the same "now" when `advance_clock_seconds` moves it.
    pub fn clock(&self) -> Arc<ShiftedClock> {
        self.parts.clock.clone()
    }

    pub fn graph(&self) -> &GraphSim {
        &self.parts.graph
    }

    pub fn halo(&self) -> &HaloSim {
        &self.parts.halo
    }

    pub fn identity(&self) -> &IdentitySim {
        &self.parts.identity
    }

    /// Every access token (identity platform and Halo) and refresh token
    /// the simulator has issued: what must never show in halosync's output.
    pub fn issued_tokens(&self) -> Vec<String> {
        let mut tokens = self.parts.tokens.issued();
        tokens.extend(self.parts.identity.refresh_tokens());
        tokens
    }

    pub fn router(&self) -> Router {
        let control = Router::new()
            .route("/reset", post(reset))
            .route("/seed", post(seed))
            .route("/act", post(act))
            .route("/faults", post(faults))
            .route("/state", get(state))
            .with_state(self.clone());
        Router::new()
            .nest("/login", self.parts.identity.router())
            .nest_service("/graph", self.parts.graph.router())
            .nest("/halo", self.parts.halo.router())
            .nest("/_sim", control)
    }

    /// A complete halosync config pointing at this simulator. The secrets
    /// come from `HALOSYNC_SIM_SECRET` (any value: an unseeded simulator
    /// accepts every credential).
    pub fn config_snippet(&self) -> String {
        format!(
            "[halo]\nbase_url = \"{halo}\"\nclient_id = \"demo\"\n\
             client_secret_env = \"HALOSYNC_SIM_SECRET\"\n\n\
             [[exchange.connection]]\nname = \"sim\"\ntype = \"application\"\n\
             login_url = \"{login}\"\ngraph_url = \"{graph}\"\n\
             tenant_id = \"contoso\"\nclient_id = \"demo\"\n\
             client_secret_env = \"HALOSYNC_SIM_SECRET\"\n\n\
             [store]\npath = \"halosync-sim.db\"\n",
            halo = self.halo_url(),
            login = self.login_url(),
            graph = self.graph_url()
        )
    }

    fn reset_all(&self) {
        let parts = &self.parts;
        parts.identity.reset();
        parts.graph.reset();
        parts.halo.reset();
        parts.tokens.revoke_all();
        parts.clock.advance(-parts.clock.offset());
    }

    /// `POST /_sim/act` in process: dispatches on the action's `op`:
    /// `*_event` acts in Exchange, `*_appointment` in Halo.
    pub async fn act_json(&self, value: Value) -> Result<Value, String> {
        let op = value.get("op").and_then(Value::as_str).unwrap_or_default();
        if op.ends_with("_event") {
            match serde_json::from_value(value) {
                Ok(action) => self
                    .parts
                    .graph
                    .act(action)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(format!("invalid Exchange action: {e}")),
            }
        } else if op.ends_with("_appointment") {
            match serde_json::from_value(value) {
                Ok(action) => self.parts.halo.act(action).await.map_err(|e| e.to_string()),
                Err(e) => Err(format!("invalid Halo action: {e}")),
            }
        } else if op == "approve_device_code" {
            let field = |name: &str| value.get(name).and_then(Value::as_str).unwrap_or_default();
            self.parts
                .identity
                .approve_device_code(field("user_code"), field("upn"))
        } else {
            Err(format!(
                "unknown op `{op}`: expected create_event, update_event, delete_event, \
                 create_appointment, update_appointment, delete_appointment or approve_device_code"
            ))
        }
    }

    /// `GET /_sim/state` in process.
    pub fn state_json(&self) -> Value {
        let parts = &self.parts;

        let identity = parts.identity.state();
        let graph = parts.graph.state();
        let halo = parts.halo.state();
        let mut by_route = BTreeMap::new();
        by_route.extend(identity.by_route.clone());
        by_route.extend(graph.by_route.clone());
        by_route.extend(halo.by_route.clone());
        json!({
            "events": graph.events,
            "appointments": halo.appointments,
            "invitations": graph.invitations,
            "subscriptions": graph.subscriptions,
            "deliveries": graph.deliveries,
            "identity": { "apps": identity.apps, "users": identity.users, "live_refresh_tokens": identity.live_refresh_tokens },
            "requests": {
                "identity": identity.requests,
                "graph": graph.requests,
                "halo": halo.requests,
                "by_route": by_route,
            },
            "clock": crate::clock::Clock::now(parts.clock.as_ref()),
        })
    }

    /// Seeds from a `POST /_sim/seed` body; returns the ids assigned.
    pub fn seed_json(&self, body: &[u8]) -> Result<Value, String> {
        parse(body).and_then(|request| self.seed_all(request))
    }

    fn seed_all(&self, request: SeedRequest) -> Result<Value, String> {
        let users = request
            .mailboxes
            .iter()
            .map(|m| UserSeed { upn: m.upn.clone() })
            .collect();
        let identity = self
            .parts
            .identity
            .seed(IdentitySeed {
                apps: request.apps,
                users,
            })
            .map_err(|e| e.to_string())?;
        let graph = self
            .parts
            .graph
            .seed(crate::sim::graph::GraphSeed {
                mailboxes: request.mailboxes,
                events: request.events,
            })
            .map_err(|e| e.to_string())?;
        let halo = self
            .parts
            .halo
            .seed(HaloSeed {
                halo_clients: request.halo_clients,
                agents: request.agents,
                appointments: request.appointments,
            })
            .map_err(|e| e.to_string())?;
        Ok(json!({ "identity": identity, "graph": graph, "halo": halo }))
    }
}

/// `base` joined with one path segment, always ending in `/`.
fn mount(base: &Url, segment: &str) -> Url {
    let mut url = base.clone();
    let path = format!("{}/{segment}/", base.path().trim_end_matches('/'));
    url.set_path(&path);
    url
}

fn bad_request(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": message.into() })),
    )
        .into_response()
}

/// An empty body means "no settings", as `{}` does.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| format!("invalid control request: {e}"))
}

fn respond(outcome: Result<Value, String>) -> Response {
    match outcome {
        Ok(Value::Null) => StatusCode::NO_CONTENT.into_response(),
        Ok(value) => Json(value).into_response(),
        Err(message) => bad_request(message),
    }
}

async fn reset(State(sim): State<Simulator>) -> StatusCode {
    sim.reset_all();
    StatusCode::NO_CONTENT
}

async fn seed(State(sim): State<Simulator>, body: axum::body::Bytes) -> Response {
    respond(parse(&body).and_then(|request| sim.seed_all(request)))
}

async fn act(State(sim): State<Simulator>, body: axum::body::Bytes) -> Response {
    match parse(&body) {
        Ok(value) => respond(sim.act_json(value).await),
        Err(message) => bad_request(message),
    }
}

async fn faults(State(sim): State<Simulator>, body: axum::body::Bytes) -> Response {
    let request: FaultsRequest = match parse(&body) {
        Ok(request) => request,
        Err(message) => return bad_request(message),
    };
    let parts = &sim.parts;
    let outcome = (|| {
        if let Some(faults) = request.identity {
            parts
                .identity
                .set_faults(faults)
                .map_err(|e| e.to_string())?;
        }
        if let Some(faults) = request.graph {
            parts.graph.set_faults(faults).map_err(|e| e.to_string())?;
        }
        if let Some(faults) = request.halo {
            parts.halo.set_faults(faults).map_err(|e| e.to_string())?;
        }
        if let Some(seconds) = request.advance_clock_seconds {
            parts.clock.advance(chrono::Duration::seconds(seconds));
        }
        Ok::<Value, String>(Value::Null)
    })();
    respond(outcome)
}

async fn state(State(sim): State<Simulator>) -> Json<Value> {
    Json(sim.state_json())
}

/// A simulator serving on a listener until stopped.
#[derive(Debug)]
pub struct RunningSimulator {
    pub simulator: Simulator,
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningSimulator {
    /// Binds `127.0.0.1:0` and serves there; for tests.
    pub async fn start_local() -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        Self::start(listener)
    }

    /// Serves on `listener` until [`RunningSimulator::stop`].
    pub fn start(listener: TcpListener) -> std::io::Result<Self> {
        let address = listener.local_addr()?;
        let base = Url::parse(&format!("http://{address}/"))
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let simulator = Simulator::new(base);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(
            listener,
            simulator.clone(),
            shutdown.clone().cancelled_owned(),
        ));
        Ok(Self {
            simulator,
            shutdown,
            task,
        })
    }

    pub async fn stop(self) -> std::io::Result<()> {
        self.shutdown.cancel();
        self.task
            .await
            .map_err(|e| std::io::Error::other(format!("simulator task failed: {e}")))?
    }
}

/// Serves the simulator on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    simulator: Simulator,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, simulator.router())
        .with_graceful_shutdown(shutdown)
        .await
}
