//! The per-agent health report behind `halosync status`: one read over the
//! agents and what hangs off them (pending writes, conflicts, subscriptions,
//! sign-ins). Read-only, so it runs beside the daemon.

use chrono::{DateTime, Utc};
use rusqlite::Row;

use super::{Store, StoreError, TokenState};

/// One agent's sync health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStatus {
    pub agent_id: i64,
    pub name: String,
    pub mailbox: Option<String>,
    pub connection: Option<String>,
    pub enabled: bool,
    /// `agents.state`: ok, reauth_required, mailbox_unavailable, disabled or error.
    pub state: String,
    pub last_error: Option<String>,
    pub diagnosis: Option<String>,
    /// Writes recorded in the intent journal and not yet confirmed.
    pub pending_writes: i64,
    /// Links in the `conflict` state.
    pub conflicts: i64,
    /// When the agent's active Graph subscription expires, if it has one.
    pub subscription_expires: Option<DateTime<Utc>>,
    /// The worst state of the sign-ins the agent depends on (its own, for a
    /// per-agent connection; its connection's, for a delegated one).
    pub sign_in: Option<TokenState>,
}

impl AgentStatus {
    /// Whether a person has to do something before this agent syncs again.
    pub fn needs_action(&self) -> bool {
        matches!(
            self.state.as_str(),
            "reauth_required" | "mailbox_unavailable" | "error"
        ) || self.sign_in == Some(TokenState::ReauthRequired)
    }
}

impl Store {
    /// Every known agent's health, by name.
    pub fn agent_statuses(&self) -> Result<Vec<AgentStatus>, StoreError> {
        let fail = |e| StoreError::sqlite("reading agent status", self.path(), e);
        let mut statement = self
            .connection()
            .prepare(
                "SELECT a.agent_id, a.name, a.mailbox, a.connection, a.enabled, a.state,
                        a.last_error, a.diagnosis,
                        (SELECT count(*) FROM pending_operations p
                           JOIN links l ON l.id = p.link_id WHERE l.agent_id = a.agent_id),
                        (SELECT count(*) FROM links l
                           WHERE l.agent_id = a.agent_id AND l.state = 'conflict'),
                        (SELECT max(s.expires_at) FROM subscriptions s
                           WHERE s.agent_id = a.agent_id AND s.state = 'active'),
                        (SELECT group_concat(t.state) FROM oauth_tokens t
                           WHERE t.subject = 'agent:' || a.agent_id
                              OR t.subject = 'connection:' || a.connection)
                 FROM agents a
                 ORDER BY a.name COLLATE NOCASE, a.agent_id",
            )
            .map_err(fail)?;
        let rows = statement.query_map([], agent_status).map_err(fail)?;
        rows.collect::<Result<_, _>>().map_err(fail)
    }

    /// Mailboxes a change notification queued for a pull, not yet pulled.
    pub fn webhook_queue_depth(&self) -> Result<i64, StoreError> {
        self.connection()
            .query_row("SELECT count(*) FROM webhook_queue", [], |row| row.get(0))
            .map_err(|e| StoreError::sqlite("counting the webhook queue", self.path(), e))
    }

    /// Journal entries not tied to any agent's link (a create whose link
    /// does not exist yet).
    pub fn unattributed_pending_writes(&self) -> Result<i64, StoreError> {
        self.connection()
            .query_row(
                "SELECT count(*) FROM pending_operations WHERE link_id IS NULL",
                [],
                |row| row.get(0),
            )
            .map_err(|e| StoreError::sqlite("counting pending writes", self.path(), e))
    }
}

fn agent_status(row: &Row<'_>) -> rusqlite::Result<AgentStatus> {
    let expires: Option<String> = row.get(10)?;
    let sign_ins: Option<String> = row.get(11)?;
    Ok(AgentStatus {
        agent_id: row.get(0)?,
        name: row.get(1)?,
        mailbox: row.get(2)?,
        connection: row.get(3)?,
        enabled: row.get(4)?,
        state: row.get(5)?,
        last_error: row.get(6)?,
        diagnosis: row.get(7)?,
        pending_writes: row.get(8)?,
        conflicts: row.get(9)?,
        subscription_expires: expires
            .as_deref()
            .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
            .map(|at| at.with_timezone(&Utc)),
        sign_in: sign_ins.as_deref().and_then(worst_sign_in),
    })
}

/// Of several sign-in states, the one that matters most to an operator.
fn worst_sign_in(states: &str) -> Option<TokenState> {
    let states: Vec<&str> = states.split(',').collect();
    [
        ("reauth_required", TokenState::ReauthRequired),
        ("revoked", TokenState::Revoked),
        ("ok", TokenState::Ok),
    ]
    .into_iter()
    .find(|(name, _)| states.contains(name))
    .map(|(_, state)| state)
}
