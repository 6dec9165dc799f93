//! `halosync check --connectivity`: the guide's "test which calendars the
//! connected account has access to". Gets a Halo token and lists the agents,
//! gets a token for each Exchange connection, then for every agent a
//! connection serves reads `GET /users/{mailbox}` and one day of its
//! calendar, and prints `agent | mailbox | connection | result`.

use std::process::ExitCode;

use chrono::Duration;
use futures_util::StreamExt;

use super::exit;
use crate::config::{Config, ConnectionConfig, ConnectionKind};
use crate::graph::auth::AuthError;
use crate::graph::{Access, GraphClient, GraphError, GraphUpstreams, Window};
use crate::halo::Agent;
use crate::session::{Session, StoredTokens, agent_name, connection_client, served};

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Get tokens for Halo and each Exchange connection and read every
    /// served agent's mailbox and calendar (exit 1 if any fails).
    #[arg(long, required = true)]
    pub connectivity: bool,
}

/// Mailboxes checked at once (each connection's mailboxes are also limited
/// by the Graph client itself).
const PARALLEL_CHECKS: usize = 8;

pub fn run(config: &Config) -> ExitCode {
    super::block_on(connectivity(config))
}

/// One line of the report.
struct Row {
    agent: String,
    mailbox: String,
    connection: String,
    result: String,
    ok: bool,
}

async fn connectivity(config: &Config) -> ExitCode {
    let Session {
        clock,
        agents,
        upstreams,
        tokens,
        ..
    } = match Session::open(config).await {
        Ok(session) => session,
        Err(error) => return super::session_failed(&error),
    };
    println!("Halo: OK ({} agents)", agents.len());
    let (mut all_ok, shared_clients) = check_connections(config, &upstreams, tokens.as_ref()).await;
    let now = clock.now();
    let window = Window::new(now, now + Duration::days(1));
    let checks = agents
        .iter()
        .filter(|agent| served(config, agent))
        .map(|agent| {
            // Config validation guarantees at most one connection claims an agent.
            let found = config
                .connections
                .iter()
                .zip(&shared_clients)
                .find(|(connection, _)| {
                    agent
                        .mailbox()
                        .is_some_and(|mailbox| connection.agents.serves(&mailbox))
                });
            check_agent(agent, found, &upstreams, tokens.as_ref(), window)
        });
    let rows: Vec<Row> = futures_util::stream::iter(checks)
        .buffered(PARALLEL_CHECKS)
        .collect()
        .await;
    all_ok &= rows.iter().all(|row| row.ok);
    print_table(&rows);
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::FAILURE)
    }
}

/// Gets a token for each application and delegated connection and prints
/// the outcome; returns whether all worked, and each connection's client
/// (`None` for per-agent connections, which have one per agent, and for
/// connections whose client could not be built).
async fn check_connections(
    config: &Config,
    upstreams: &GraphUpstreams,
    tokens: Option<&StoredTokens>,
) -> (bool, Vec<Option<GraphClient>>) {
    let mut all_ok = true;
    let mut clients = Vec::with_capacity(config.connections.len());
    for connection in &config.connections {
        if connection.kind == ConnectionKind::PerAgent {
            println!(
                "Exchange connection `{}`: a sign-in per agent",
                connection.name
            );
            clients.push(None);
            continue;
        }
        let client = connection_client(connection, upstreams, tokens, None);
        let outcome = match &client {
            Ok(client) => client.check_token().await.map(|()| "token OK".to_string()),
            Err(e) => Err(e.clone()),
        };
        let line = outcome.unwrap_or_else(|e| {
            all_ok = false;
            format!("no token: {e}")
        });
        println!("Exchange connection `{}`: {line}", connection.name);
        clients.push(client.ok());
    }
    (all_ok, clients)
}

/// The user lookup and calendar read for one agent, as a table row.
async fn check_agent(
    agent: &Agent,
    found: Option<(&ConnectionConfig, &Option<GraphClient>)>,
    upstreams: &GraphUpstreams,
    tokens: Option<&StoredTokens>,
    window: Window,
) -> Row {
    let mailbox = agent.mailbox().unwrap_or_default();
    let Some((connection, shared)) = found else {
        return Row {
            agent: agent_name(agent),
            mailbox,
            connection: "-".into(),
            result: "no connection serves this agent".into(),
            ok: false,
        };
    };
    let client = match shared {
        Some(client) => Ok(client.clone()),
        None => connection_client(connection, upstreams, tokens, Some(agent.id)),
    };
    let result = match client {
        Ok(client) => check_mailbox(&client, &mailbox, window).await,
        Err(error) => Err((error, Access::Direct)),
    };
    Row {
        agent: agent_name(agent),
        mailbox,
        connection: connection.name.clone(),
        ok: result.is_ok(),
        result: match result {
            Ok(()) => "OK".into(),
            Err((error, access)) => describe(&error, access),
        },
    }
}

async fn check_mailbox(
    client: &GraphClient,
    mailbox: &str,
    window: Window,
) -> Result<(), (GraphError, Access)> {
    let access = client.access();
    client.user(mailbox).await.map_err(|e| (e, access))?;
    client
        .calendar_view(mailbox, window)
        .await
        .map_err(|e| (e, access))?;
    Ok(())
}

/// The result column: the typed error and what to do about it.
fn describe(error: &GraphError, access: Access) -> String {
    if let GraphError::Auth(AuthError::NotConnected { subject }) = error {
        return format!(
            "not connected: {subject} has no usable sign-in (never connected, or must sign in again)"
        );
    }
    match error.diagnosis(access) {
        Some(diagnosis) => format!("{error} — {diagnosis}"),
        None => error.to_string(),
    }
}

fn print_table(rows: &[Row]) {
    let header = Row {
        agent: "agent".into(),
        mailbox: "mailbox".into(),
        connection: "connection".into(),
        result: "result".into(),
        ok: true,
    };
    let width = |get: fn(&Row) -> &str| {
        rows.iter()
            .chain([&header])
            .map(|row| get(row).chars().count())
            .max()
            .unwrap_or(0)
    };
    let agent = width(|r| &r.agent);
    let mailbox = width(|r| &r.mailbox);
    let connection = width(|r| &r.connection);
    for row in [&header].into_iter().chain(rows) {
        println!(
            "{:agent$} | {:mailbox$} | {:connection$} | {}",
            row.agent, row.mailbox, row.connection, row.result
        );
    }
}
