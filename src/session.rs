//! What the commands that talk to both systems share: which agents are
//! served, and the Graph client (with its stored sign-ins) for each.

use std::sync::{Arc, Mutex};

use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, ConnectionConfig, ConnectionKind};
use crate::graph::auth::{AuthError, Flow, RefreshTokens, StoredRefreshTokens};
use crate::graph::{GraphClient, GraphClientOptions, GraphError, GraphUpstreams};
use crate::halo::{Agent, HaloClient, HaloClientOptions, HaloError, HaloShared};
use crate::http::{HttpError, MemoryRequestLog, SharedRequestLog};
use crate::store::Store;
use crate::token_cipher::TokenCipher;
use crate::webhook::GraphClients;

/// Whether `[sync]` includes the agent.
pub fn served(config: &Config, agent: &Agent) -> bool {
    let Some(mailbox) = agent.mailbox() else {
        return false;
    };
    let include = &config.sync.include_agents;
    (include.is_empty() || include.contains(&mailbox))
        && !config.sync.exclude_agents.contains(&mailbox)
}

/// The served agents of `all`, or only `wanted` (an e-mail address); an
/// error names a wanted agent this config does not serve.
pub fn served_agents<'a>(
    config: &Config,
    all: &'a [Agent],
    wanted: Option<&str>,
) -> Result<Vec<&'a Agent>, String> {
    let wanted = wanted.map(|a| a.trim().to_ascii_lowercase());
    let agents: Vec<&Agent> = all
        .iter()
        .filter(|agent| served(config, agent))
        .filter(|agent| wanted.is_none() || agent.mailbox() == wanted)
        .collect();
    match wanted {
        Some(email) if agents.is_empty() => Err(format!(
            "{email} is not an enabled Halo agent served by this config"
        )),
        _ => Ok(agents),
    }
}

pub fn agent_name(agent: &Agent) -> String {
    match &agent.name {
        Some(name) if !name.trim().is_empty() => format!("{} (#{})", name.trim(), agent.id),
        _ => format!("#{}", agent.id),
    }
}

/// The stored sign-ins, when any connection needs them, read through
/// `store` (or the database opened here when the command has none).
pub fn refresh_tokens(
    config: &Config,
    clock: &SharedClock,
    store: Option<Arc<Mutex<Store>>>,
) -> Result<Option<StoredTokens>, String> {
    if config
        .connections
        .iter()
        .all(|c| c.kind == ConnectionKind::Application)
    {
        return Ok(None);
    }
    let key = config.store.token_key.as_ref().ok_or_else(|| {
        "store.token_key is required to read the stored sign-ins of delegated and per-agent connections"
            .to_string()
    })?;
    let store = match store {
        Some(store) => store,
        None => Arc::new(Mutex::new(
            Store::open(&config.store.path)
                .map_err(|e| format!("{}: {e}", config.store.path.display()))?,
        )),
    };
    Ok(Some(StoredTokens {
        store,
        key: key.clone(),
        clock: clock.clone(),
    }))
}

#[derive(Clone)]
pub struct StoredTokens {
    store: Arc<Mutex<Store>>,
    /// A cipher per client: `TokenCipher` is deliberately not `Clone`.
    key: secrecy::SecretString,
    clock: SharedClock,
}

impl StoredTokens {
    /// The database the sign-ins are read from, opened as its owner: a
    /// command that also writes other tables must use this one.
    pub fn store(&self) -> &Arc<Mutex<Store>> {
        &self.store
    }
}

/// The client for `connection`, or for `agent_id` of a per-agent one.
pub fn connection_client(
    connection: &ConnectionConfig,
    upstreams: &GraphUpstreams,
    tokens: Option<&StoredTokens>,
    agent_id: Option<i64>,
) -> Result<GraphClient, GraphError> {
    let stored = match (connection.kind, tokens) {
        (ConnectionKind::Application, _) => {
            return GraphClient::new(connection, Flow::Application, upstreams);
        }
        (_, None) => {
            return Err(GraphError::Auth(AuthError::Configuration {
                connection: connection.name.clone(),
                message: "store.token_key is required for stored sign-ins".into(),
            }));
        }
        (_, Some(stored)) => stored,
    };
    let tokens: Arc<dyn RefreshTokens> = Arc::new(StoredRefreshTokens::new(
        stored.store.clone(),
        TokenCipher::new(&stored.key),
        &connection.name,
        stored.clock.clone(),
    ));
    match (connection.kind, agent_id) {
        (ConnectionKind::PerAgent, Some(agent_id)) => {
            GraphClient::for_agent(connection, agent_id, tokens, upstreams)
        }
        _ => {
            let subject = GraphClient::sign_in_subject(connection, None);
            GraphClient::new(
                connection,
                Flow::RefreshToken { subject, tokens },
                upstreams,
            )
        }
    }
}

/// Each agent's Graph client, found by the name of the connection that
/// serves it (what the subscription manager asks for). Owned, so the
/// service's long-running tasks can keep one.
pub struct ConnectionClients {
    config: Arc<Config>,
    upstreams: GraphUpstreams,
    tokens: Option<StoredTokens>,
}

impl ConnectionClients {
    pub fn new(
        config: Arc<Config>,
        upstreams: GraphUpstreams,
        tokens: Option<StoredTokens>,
    ) -> Self {
        Self {
            config,
            upstreams,
            tokens,
        }
    }
}

impl GraphClients for ConnectionClients {
    fn client(&self, agent_id: i64, connection: &str) -> Result<GraphClient, GraphError> {
        let configured = self
            .config
            .connections
            .iter()
            .find(|c| c.name == connection)
            .ok_or_else(|| {
                GraphError::Auth(AuthError::Configuration {
                    connection: connection.to_owned(),
                    message: "no connection of that name in the config (renamed or removed?)"
                        .into(),
                })
            })?;
        connection_client(
            configured,
            &self.upstreams,
            self.tokens.as_ref(),
            Some(agent_id),
        )
    }
}

/// The clients a read-only command needs: Halo (with its agents), the
/// Graph upstreams and the stored sign-ins. Their requests go to a log in
/// memory: these commands record nothing in the database.
pub struct Session {
    pub clock: SharedClock,
    pub halo: HaloClient,
    pub agents: Vec<Agent>,
    pub upstreams: GraphUpstreams,
    pub tokens: Option<StoredTokens>,
}

/// Why a [`Session`] could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("Halo: {0}")]
    Halo(#[from] HaloError),
    #[error("Graph: {0}")]
    Graph(#[from] HttpError),
    /// The stored sign-ins cannot be read (no token key, no database).
    #[error("{0}")]
    SignIns(String),
}

impl SessionError {
    /// Whether the config must change before trying again.
    pub fn is_configuration(&self) -> bool {
        matches!(self, Self::SignIns(_))
    }
}

impl Session {
    /// Connects to Halo and lists its agents.
    pub async fn open(config: &Config) -> Result<Self, SessionError> {
        Self::open_with(config, None, Arc::new(MemoryRequestLog::new())).await
    }

    /// [`Session::open`] reading sign-ins through `store` and logging
    /// requests to `log` (a command that writes keeps both in the database).
    pub async fn open_with(
        config: &Config,
        store: Option<Arc<Mutex<Store>>>,
        log: SharedRequestLog,
    ) -> Result<Self, SessionError> {
        Self::open_sharing(config, store, log, None).await
    }

    /// [`Session::open_with`] sharing Halo's request budget and token with
    /// other sessions when `halo` is given (the service's, for all its
    /// jobs) — else with a budget and token of this session's own.
    pub async fn open_sharing(
        config: &Config,
        store: Option<Arc<Mutex<Store>>>,
        log: SharedRequestLog,
        halo: Option<HaloShared>,
    ) -> Result<Self, SessionError> {
        let clock: SharedClock = Arc::new(SystemClock);
        let halo = HaloClient::with_options(
            &config.halo,
            log.clone(),
            clock.clone(),
            HaloClientOptions {
                shared: halo,
                ..HaloClientOptions::default()
            },
        )?;
        let agents = halo.agents().await?;
        let upstreams = GraphUpstreams::new(log, clock.clone(), &GraphClientOptions::default())?;
        let tokens = refresh_tokens(config, &clock, store).map_err(SessionError::SignIns)?;
        Ok(Self {
            clock,
            halo,
            agents,
            upstreams,
            tokens,
        })
    }
}
