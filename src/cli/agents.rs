//! `halosync agents`: every served agent with the connection that serves
//! it, who it is connected as, the sign-in's state and the sync state.
//! Reads Halo's agent list and the database (read-only: safe beside the
//! service).

use std::collections::HashMap;
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;

use super::{exit, table};
use crate::config::{Config, ConnectionKind};
use crate::graph::GraphClient;
use crate::session::{Session, agent_name, served};
use crate::store::Store;

#[derive(Debug, Args)]
pub struct AgentsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One line of the listing.
#[derive(Debug, Serialize)]
struct AgentLine {
    agent_id: i64,
    agent: String,
    mailbox: String,
    connection: Option<String>,
    connection_type: Option<&'static str>,
    connected_as: Option<String>,
    /// `ok`, `reauth_required`, `revoked`, `not_connected`, or `app` for
    /// application permissions (no sign-in).
    token_state: &'static str,
    /// The last sync's state, or `never_synced`.
    sync_state: String,
}

pub fn run(args: &AgentsArgs, config: &Config) -> ExitCode {
    super::block_on(list(args, config))
}

async fn list(args: &AgentsArgs, config: &Config) -> ExitCode {
    let session = match Session::open(config).await {
        Ok(session) => session,
        Err(error) => return super::session_failed(&error),
    };
    let store = match Store::open_read_only(&config.store.path) {
        Ok(store) => Some(store),
        Err(error) => {
            tracing::info!(%error, "no database yet: every sign-in shows as not connected");
            None
        }
    };
    let sync_states: HashMap<i64, String> = match store.as_ref().map(Store::agent_statuses) {
        Some(Ok(statuses)) => statuses
            .into_iter()
            .map(|s| (s.agent_id, s.state))
            .collect(),
        Some(Err(error)) => {
            eprintln!("halosync: {error}");
            return ExitCode::from(exit::FAILURE);
        }
        None => HashMap::new(),
    };
    let mut lines = Vec::new();
    for agent in session.agents.iter().filter(|a| served(config, a)) {
        let mailbox = agent.mailbox().unwrap_or_default();
        let connection = config
            .connections
            .iter()
            .find(|c| c.agents.serves(&mailbox));
        let (token_state, connected_as) = match connection {
            None => ("not_connected", None),
            Some(c) if c.kind == ConnectionKind::Application => ("app", None),
            Some(c) => {
                let subject = GraphClient::sign_in_subject(c, Some(agent.id));
                let stored = store
                    .as_ref()
                    .and_then(|s| s.refresh_token(&subject).ok().flatten());
                match stored {
                    Some(token) => (token.state.as_str(), token.account),
                    None => ("not_connected", None),
                }
            }
        };
        lines.push(AgentLine {
            agent_id: agent.id,
            agent: agent_name(agent),
            mailbox,
            connection: connection.map(|c| c.name.clone()),
            connection_type: connection.map(|c| c.kind.as_str()),
            connected_as,
            token_state,
            sync_state: sync_states
                .get(&agent.id)
                .cloned()
                .unwrap_or_else(|| "never_synced".into()),
        });
    }
    if args.json {
        match serde_json::to_string_pretty(&lines) {
            Ok(json) => println!("{json}"),
            Err(error) => {
                eprintln!("halosync: {error}");
                return ExitCode::from(exit::FAILURE);
            }
        }
        return ExitCode::SUCCESS;
    }
    let rows: Vec<Vec<String>> = lines
        .iter()
        .map(|l| {
            let dash = || "-".to_string();
            vec![
                l.agent.clone(),
                l.mailbox.clone(),
                l.connection.clone().unwrap_or_else(dash),
                l.connection_type.map_or_else(dash, str::to_owned),
                l.connected_as.clone().unwrap_or_else(dash),
                l.token_state.to_owned(),
                l.sync_state.clone(),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &[
                "agent",
                "mailbox",
                "connection",
                "type",
                "connected as",
                "sign-in",
                "sync"
            ],
            &rows
        )
    );
    ExitCode::SUCCESS
}
