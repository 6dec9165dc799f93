//! Queries on `subscriptions`: the Graph change-notification subscriptions
//! halosync holds, one per subscribed mailbox.
//!
//! The clientState each subscription was created with is a shared secret;
//! only its SHA-256 is stored, enough to verify what a notification echoes.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{StoreError, db_time, optional_time_column, time_column};

/// Where a subscription stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionState {
    Active,
    /// Graph sent `reauthorizationRequired`: reauthorize or renew it soon.
    ReauthorizationRequired,
    /// Graph sent `subscriptionRemoved`: it no longer exists there.
    Removed,
    Expired,
    /// The last renewal or repair failed (see `last_error`).
    Error,
}

impl SubscriptionState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::ReauthorizationRequired => "reauthorization_required",
            Self::Removed => "removed",
            Self::Expired => "expired",
            Self::Error => "error",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "active" => Self::Active,
            "reauthorization_required" => Self::ReauthorizationRequired,
            "removed" => Self::Removed,
            "expired" => Self::Expired,
            "error" => Self::Error,
            _ => return None,
        })
    }
}

/// One row of `subscriptions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRow {
    pub subscription_id: String,
    pub agent_id: i64,
    pub mailbox: String,
    /// The configured connection it was created through.
    pub connection: String,
    pub resource: String,
    /// SHA-256 of the subscription's clientState.
    pub client_state_hash: [u8; 32],
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub renewed_at: Option<DateTime<Utc>>,
    pub state: SubscriptionState,
    pub last_error: Option<String>,
    pub last_notification_at: Option<DateTime<Utc>>,
}

impl SubscriptionRow {
    /// When the current lifetime began: the last renewal, else the creation.
    pub fn lifetime_start(&self) -> DateTime<Utc> {
        self.renewed_at.unwrap_or(self.created_at)
    }
}

const COLUMNS: &str = "subscription_id, agent_id, mailbox, connection, resource, client_state_hash,
     expires_at, created_at, renewed_at, state, last_error, last_notification_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<SubscriptionRow> {
    let hash: Vec<u8> = row.get(5)?;
    let state: String = row.get(9)?;
    let invalid = |column: usize, what: String| {
        rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, what.into())
    };
    Ok(SubscriptionRow {
        subscription_id: row.get(0)?,
        agent_id: row.get(1)?,
        mailbox: row.get(2)?,
        connection: row.get(3)?,
        resource: row.get(4)?,
        client_state_hash: hash
            .try_into()
            .map_err(|h: Vec<u8>| invalid(5, format!("a {}-byte hash", h.len())))?,
        expires_at: time_column(row, 6)?,
        created_at: time_column(row, 7)?,
        renewed_at: optional_time_column(row, 8)?,
        state: SubscriptionState::parse(&state)
            .ok_or_else(|| invalid(9, format!("unknown state '{state}'")))?,
        last_error: row.get(10)?,
        last_notification_at: optional_time_column(row, 11)?,
    })
}

/// Records a subscription Graph just created.
pub fn insert(conn: &Connection, row: &SubscriptionRow) -> Result<(), StoreError> {
    conn.execute(
        &format!("INSERT INTO subscriptions ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"),
        params![
            row.subscription_id,
            row.agent_id,
            row.mailbox,
            row.connection,
            row.resource,
            row.client_state_hash.as_slice(),
            db_time(row.expires_at),
            db_time(row.created_at),
            row.renewed_at.map(db_time),
            row.state.as_str(),
            row.last_error,
            row.last_notification_at.map(db_time),
        ],
    )
    .map_err(|e| StoreError::on(conn, "saving a subscription", e))?;
    Ok(())
}

/// One subscription by its Graph id.
pub fn get(
    conn: &Connection,
    subscription_id: &str,
) -> Result<Option<SubscriptionRow>, StoreError> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM subscriptions WHERE subscription_id = ?1"),
        [subscription_id],
        from_row,
    )
    .optional()
    .map_err(|e| StoreError::on(conn, "reading a subscription", e))
}

/// Every subscription, by mailbox.
pub fn all(conn: &Connection) -> Result<Vec<SubscriptionRow>, StoreError> {
    select(conn, "1 = 1", params![])
}

/// The subscriptions of one agent (normally one).
pub fn of_agent(conn: &Connection, agent_id: i64) -> Result<Vec<SubscriptionRow>, StoreError> {
    select(conn, "agent_id = ?1", params![agent_id])
}

fn select(
    conn: &Connection,
    condition: &str,
    params: &[&dyn rusqlite::ToSql],
) -> Result<Vec<SubscriptionRow>, StoreError> {
    let fail = |e| StoreError::on(conn, "reading subscriptions", e);
    let mut statement = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM subscriptions WHERE {condition} ORDER BY mailbox, created_at"
        ))
        .map_err(fail)?;
    let rows = statement.query_map(params, from_row).map_err(fail)?;
    rows.collect::<Result<_, _>>().map_err(fail)
}

/// A renewal (or reauthorization) succeeded: the subscription is active
/// until `expires_at`.
pub fn renewed(
    conn: &Connection,
    subscription_id: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE subscriptions SET expires_at = ?2, renewed_at = ?3, state = 'active', last_error = NULL
         WHERE subscription_id = ?1",
        params![subscription_id, db_time(expires_at), db_time(now)],
    )
    .map_err(|e| StoreError::on(conn, "recording a subscription renewal", e))?;
    Ok(())
}

/// Sets the state (and why, for `error`).
pub fn set_state(
    conn: &Connection,
    subscription_id: &str,
    state: SubscriptionState,
    last_error: Option<&str>,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE subscriptions SET state = ?2, last_error = ?3 WHERE subscription_id = ?1",
        params![subscription_id, state.as_str(), last_error],
    )
    .map_err(|e| StoreError::on(conn, "updating a subscription", e))?;
    Ok(())
}

/// A verified notification arrived through the subscription.
pub fn notified(
    conn: &Connection,
    subscription_id: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE subscriptions SET last_notification_at = ?2 WHERE subscription_id = ?1",
        params![subscription_id, db_time(at)],
    )
    .map_err(|e| StoreError::on(conn, "recording a notification", e))?;
    Ok(())
}

/// The name of the agent a subscription belongs to, for listings.
pub fn agent_name(conn: &Connection, agent_id: i64) -> Result<Option<String>, StoreError> {
    conn.query_row(
        "SELECT name FROM agents WHERE agent_id = ?1",
        [agent_id],
        |row| row.get(0),
    )
    .optional()
    .map_err(|e| StoreError::on(conn, "reading an agent", e))
}

/// Forgets a subscription; true if it was there.
pub fn delete(conn: &Connection, subscription_id: &str) -> Result<bool, StoreError> {
    conn.execute(
        "DELETE FROM subscriptions WHERE subscription_id = ?1",
        [subscription_id],
    )
    .map(|n| n > 0)
    .map_err(|e| StoreError::on(conn, "deleting a subscription", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AgentRow, Store};
    use chrono::TimeZone;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, hour, 0, 0).unwrap()
    }

    fn row(id: &str) -> SubscriptionRow {
        SubscriptionRow {
            subscription_id: id.into(),
            agent_id: 7,
            mailbox: "Leah@contoso.com".into(),
            connection: "main".into(),
            resource: "/users/leah@contoso.com/events".into(),
            client_state_hash: [9; 32],
            expires_at: at(12),
            created_at: at(1),
            renewed_at: None,
            state: SubscriptionState::Active,
            last_error: None,
            last_notification_at: None,
        }
    }

    #[test]
    fn a_subscription_round_trips_and_records_renewals_states_and_notifications() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("t.db")).unwrap();
        let agent = AgentRow {
            agent_id: 7,
            name: "Leah".into(),
            email: None,
            mailbox: None,
            connection: None,
            enabled: true,
        };
        store.upsert_agent(&agent, at(0)).unwrap();
        let conn = store.connection();
        insert(conn, &row("s1")).unwrap();
        assert_eq!(get(conn, "s1").unwrap(), Some(row("s1")));
        assert_eq!(of_agent(conn, 7).unwrap().len(), 1);
        assert!(of_agent(conn, 8).unwrap().is_empty());

        set_state(conn, "s1", SubscriptionState::Error, Some("Graph said no")).unwrap();
        renewed(conn, "s1", at(20), at(6)).unwrap();
        notified(conn, "s1", at(7)).unwrap();
        let renewed_row = get(conn, "s1").unwrap().unwrap();
        assert_eq!(renewed_row.state, SubscriptionState::Active);
        assert_eq!(renewed_row.last_error, None, "a renewal clears the error");
        assert_eq!(renewed_row.expires_at, at(20));
        assert_eq!(renewed_row.lifetime_start(), at(6));
        assert_eq!(renewed_row.last_notification_at, Some(at(7)));

        assert!(delete(conn, "s1").unwrap());
        assert!(!delete(conn, "s1").unwrap());
        assert!(all(conn).unwrap().is_empty());
    }
}
