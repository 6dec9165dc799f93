//! `halosync subscriptions list|create|delete|renew`: the guide's
//! "webhooks" table, by hand.
//!
//! `list` only reads the database (safe beside the service). The others own
//! it, so the service must be stopped; `create` and `renew` also answer
//! Graph's validation requests on `webhook.listen` while they run, because
//! Graph validates the notification URLs before it creates a subscription.

use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use clap::Subcommand;
use tokio::sync::oneshot;

use super::{exit, table};
use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::graph::{GraphClientOptions, GraphUpstreams};
use crate::http::MemoryRequestLog;
use crate::session::{
    ConnectionClients, Session, StoredTokens, agent_name, refresh_tokens, served_agents,
};
use crate::store::subscriptions::{self, SubscriptionRow};
use crate::store::{Store, StoreError};
use crate::webhook::{
    Ensured, GraphClients, SubscriptionManager, SubscriptionSettings, Tended, WebhookQueue,
    WebhookState, served_mailboxes,
};

#[derive(Debug, Subcommand)]
pub enum SubscriptionsCommand {
    /// List the subscriptions: agent, mailbox, id, expiry, last
    /// notification and state (read-only; safe while the service runs).
    List,
    /// Subscribe agents' mailboxes to change notifications (delegated
    /// connections cannot be; their agents are polled). Stop the service
    /// first: this answers Graph's validation on webhook.listen.
    Create(AgentChoice),
    /// Delete subscriptions on Graph and in the database.
    Delete(AgentChoice),
    /// Renew every subscription now, recreating any that Graph lost.
    Renew,
}

#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct AgentChoice {
    /// Only this agent (their e-mail address).
    #[arg(long, value_name = "EMAIL")]
    pub agent: Option<String>,
    /// Every agent this config serves (create), or every subscription (delete).
    #[arg(long)]
    pub all: bool,
}

impl AgentChoice {
    fn wanted(&self) -> Option<String> {
        self.agent.as_deref().map(|a| a.trim().to_ascii_lowercase())
    }
}

pub fn run(command: &SubscriptionsCommand, config: Config) -> ExitCode {
    let config = Arc::new(config);
    match command {
        SubscriptionsCommand::List => list(&config),
        SubscriptionsCommand::Create(choice) => super::block_on(create(&config, choice)),
        SubscriptionsCommand::Delete(choice) => super::block_on(delete(&config, choice)),
        SubscriptionsCommand::Renew => super::block_on(renew(&config)),
    }
}

fn failed(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("halosync: {message}");
    ExitCode::from(exit::FAILURE)
}

fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn list(config: &Config) -> ExitCode {
    let store = match Store::open_read_only(&config.store.path) {
        Ok(store) => store,
        Err(error) => return failed(error),
    };
    let conn = store.connection();
    let rows = match subscriptions::all(conn) {
        Ok(rows) => rows,
        Err(error) => return failed(error),
    };
    if rows.is_empty() {
        println!("no subscriptions");
        return ExitCode::SUCCESS;
    }
    let mut lines = Vec::new();
    for row in &rows {
        let name = match subscriptions::agent_name(conn, row.agent_id) {
            Ok(name) => name,
            Err(error) => return failed(error),
        };
        let agent = match name {
            Some(name) if !name.trim().is_empty() => format!("{} (#{})", name.trim(), row.agent_id),
            _ => format!("#{}", row.agent_id),
        };
        let state = match &row.last_error {
            Some(error) => format!("{}: {error}", row.state.as_str()),
            None => row.state.as_str().to_owned(),
        };
        lines.push(vec![
            agent,
            row.mailbox.clone(),
            row.subscription_id.clone(),
            when(row.expires_at),
            row.last_notification_at
                .map_or_else(|| "never".to_owned(), when),
            state,
        ]);
    }
    print!(
        "{}",
        table::render(
            &[
                "agent",
                "mailbox",
                "id",
                "expires",
                "last notification",
                "state"
            ],
            &lines
        )
    );
    ExitCode::SUCCESS
}

/// Graph access and the database, without Halo: what delete and renew need.
struct GraphAccess {
    clock: SharedClock,
    upstreams: GraphUpstreams,
    tokens: Option<StoredTokens>,
    store: Arc<Mutex<Store>>,
}

impl GraphAccess {
    fn open(
        config: &Config,
        clock: SharedClock,
        tokens: Option<StoredTokens>,
    ) -> Result<Self, ExitCode> {
        let log = Arc::new(MemoryRequestLog::new());
        let upstreams = GraphUpstreams::new(log, clock.clone(), &GraphClientOptions::default())
            .map_err(failed)?;
        // The sign-ins' store is the database, opened as its owner; open it
        // here only when no connection needed it.
        let store = match &tokens {
            Some(tokens) => tokens.store().clone(),
            None => Arc::new(Mutex::new(Store::open(&config.store.path).map_err(failed)?)),
        };
        Ok(Self {
            clock,
            upstreams,
            tokens,
            store,
        })
    }

    fn clients(&self, config: &Arc<Config>) -> ConnectionClients {
        ConnectionClients::new(config.clone(), self.upstreams.clone(), self.tokens.clone())
    }

    fn manager(&self, config: &Config) -> SubscriptionManager {
        SubscriptionManager::new(
            WebhookQueue::new(self.store.clone()),
            SubscriptionSettings::from_config(&config.webhook),
            self.clock.clone(),
        )
    }

    fn with_store<T>(
        &self,
        work: impl FnOnce(&Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        work(&self.store.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

fn graph_access(config: &Config) -> Result<GraphAccess, ExitCode> {
    let clock: SharedClock = Arc::new(SystemClock);
    let tokens = refresh_tokens(config, &clock, None).map_err(|message| {
        eprintln!("halosync: {message}");
        ExitCode::from(exit::CONFIG)
    })?;
    GraphAccess::open(config, clock, tokens)
}

/// The listener, answering Graph's validation requests while a command
/// creates subscriptions.
pub(super) struct Listening {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), crate::webhook::WebhookError>>,
}

impl Listening {
    pub(super) async fn start(
        config: &Config,
        store: &Arc<Mutex<Store>>,
        clock: &SharedClock,
    ) -> Result<Self, ExitCode> {
        let address = config.webhook.listen;
        let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| {
            failed(format!(
                "cannot listen on {address} (webhook.listen) for Graph's validation requests: {e}; \
                 if the service is running, stop it first"
            ))
        })?;
        let state = WebhookState::new(
            &config.webhook,
            WebhookQueue::new(store.clone()),
            clock.clone(),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(crate::webhook::serve(listener, state, async {
            let _ = stopped.await;
        }));
        Ok(Self { stop, task })
    }

    pub(super) async fn stop(self) {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("halosync: {error}"),
            Err(error) => eprintln!("halosync: the webhook listener failed: {error}"),
        }
    }
}

async fn create(config: &Arc<Config>, choice: &AgentChoice) -> ExitCode {
    if !config.webhook.enabled {
        eprintln!(
            "halosync: webhooks are off; set webhook.enabled = true (and webhook.public_url)"
        );
        return ExitCode::from(exit::CONFIG);
    }
    let session = match Session::open(config).await {
        Ok(session) => session,
        Err(error) => return super::session_failed(&error),
    };
    let wanted = choice.wanted();
    let agents = match served_agents(config, &session.agents, wanted.as_deref()) {
        Ok(agents) => agents,
        Err(message) => {
            eprintln!("halosync: {message}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let access = match GraphAccess::open(config, session.clock.clone(), session.tokens) {
        Ok(access) => access,
        Err(code) => return code,
    };
    let listening = match Listening::start(config, &access.store, &access.clock).await {
        Ok(listening) => listening,
        Err(code) => return code,
    };
    let manager = access.manager(config);
    let clients = access.clients(config);
    let mut all_ok = true;
    let mut lines = Vec::new();
    for agent in agents {
        let mailbox = agent.mailbox().unwrap_or_default();
        let result = match served_mailboxes(config, &[agent]).first() {
            None => Err("no connection serves this agent".to_owned()),
            Some(served) => manager
                .subscribe(served, &clients, access.clock.now())
                .await
                .map(|ensured| said(&ensured, &served.connection))
                .map_err(|e| e.to_string()),
        };
        all_ok &= result.is_ok();
        lines.push(vec![
            agent_name(agent),
            mailbox,
            result.unwrap_or_else(|error| format!("failed: {error}")),
        ]);
    }
    listening.stop().await;
    print!("{}", table::render(&["agent", "mailbox", "result"], &lines));
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::FAILURE)
    }
}

/// What ensuring a subscription did, for a person.
fn said(ensured: &Ensured, connection: &str) -> String {
    match ensured {
        Ensured::Created {
            subscription_id,
            expires_at,
        } => format!(
            "subscribed ({subscription_id}, expires {})",
            when(*expires_at)
        ),
        Ensured::Existing {
            subscription_id,
            expires_at,
        } => format!(
            "already subscribed ({subscription_id}, expires {})",
            when(*expires_at)
        ),
        Ensured::Polling => format!(
            "not subscribed: connection `{connection}` is delegated, which Graph does not notify; polled on the pull schedule"
        ),
    }
}

async fn delete(config: &Arc<Config>, choice: &AgentChoice) -> ExitCode {
    let access = match graph_access(config) {
        Ok(access) => access,
        Err(code) => return code,
    };
    let wanted = choice.wanted();
    let rows: Vec<SubscriptionRow> =
        match access.with_store(|store| subscriptions::all(store.connection())) {
            Ok(rows) => rows
                .into_iter()
                .filter(|row| {
                    wanted
                        .as_deref()
                        .is_none_or(|w| row.mailbox.eq_ignore_ascii_case(w))
                })
                .collect(),
            Err(error) => return failed(error),
        };
    if rows.is_empty() {
        println!("no subscriptions to delete");
        return ExitCode::SUCCESS;
    }
    let manager = access.manager(config);
    let clients = access.clients(config);
    let mut agents: Vec<(i64, String, String)> = rows
        .iter()
        .map(|row| (row.agent_id, row.mailbox.clone(), row.connection.clone()))
        .collect();
    agents.dedup();
    let mut all_ok = true;
    let mut lines = Vec::new();
    for (agent_id, mailbox, connection) in agents {
        let result = match clients.client(agent_id, &connection) {
            Ok(client) => manager
                .delete(agent_id, &client)
                .await
                .map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        all_ok &= result.is_ok();
        lines.push(vec![
            mailbox,
            match result {
                Ok(count) => format!("deleted {count}"),
                Err(error) => format!("failed: {error}"),
            },
        ]);
    }
    print!("{}", table::render(&["mailbox", "result"], &lines));
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::FAILURE)
    }
}

async fn renew(config: &Arc<Config>) -> ExitCode {
    let access = match graph_access(config) {
        Ok(access) => access,
        Err(code) => return code,
    };
    // A subscription Graph lost is recreated, which needs the handshake.
    let listening = match Listening::start(config, &access.store, &access.clock).await {
        Ok(listening) => listening,
        Err(code) => return code,
    };
    let report = access
        .manager(config)
        .renew(&access.clients(config), true)
        .await;
    listening.stop().await;
    let report = match report {
        Ok(report) => report,
        Err(error) => return failed(error),
    };
    if report.is_empty() {
        println!("no subscriptions to renew");
        return ExitCode::SUCCESS;
    }
    let mut all_ok = true;
    let lines: Vec<Vec<String>> = report
        .into_iter()
        .map(|tended| {
            let result = match tended.outcome {
                Tended::Renewed { expires_at } => format!("renewed until {}", when(expires_at)),
                Tended::Reauthorized => "reauthorized".to_owned(),
                Tended::Recreated { subscription_id } => {
                    format!("recreated as {subscription_id} (its mailbox will be resynced)")
                }
                Tended::Failed(error) => {
                    all_ok = false;
                    format!("failed: {error}")
                }
            };
            vec![tended.mailbox, tended.subscription_id, result]
        })
        .collect();
    print!("{}", table::render(&["mailbox", "id", "result"], &lines));
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::FAILURE)
    }
}
