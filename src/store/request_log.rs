//! Queries on `outbound_requests`, the outbound request log.

use chrono::{DateTime, Duration, Utc};
use rusqlite::{Connection, params};

use super::{StoreError, db_time, enum_column, time_column};
use crate::http::{RequestRecord, Upstream};

fn fail(conn: &Connection, action: &str, error: rusqlite::Error) -> StoreError {
    StoreError::on(conn, action, error)
}

/// Appends `records`; call inside a transaction to write a batch at once.
pub fn insert(conn: &Connection, records: &[RequestRecord]) -> Result<usize, StoreError> {
    let mut statement = conn
        .prepare_cached(
            "INSERT INTO outbound_requests
                 (at, upstream, method, path, status, duration_ms, mailbox, agent_id, request_id, error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .map_err(|e| fail(conn, "preparing the request log insert", e))?;
    for record in records {
        // The table insists on a status or an error for every row.
        let error = match (&record.error, record.status) {
            (None, None) => Some("no answer".to_owned()),
            (error, _) => error.clone(),
        };
        statement
            .execute(params![
                db_time(record.at),
                record.upstream.as_str(),
                record.method,
                record.path,
                record.status,
                i64::try_from(record.duration_ms).unwrap_or(i64::MAX),
                record.mailbox,
                record.agent_id,
                record.request_id,
                error,
            ])
            .map_err(|e| fail(conn, "writing the request log", e))?;
    }
    Ok(records.len())
}

/// Which log records a view shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFilter {
    /// Only records at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only records about this agent's mailbox (an e-mail address).
    pub agent: Option<String>,
    /// Only failures: no answer, an error or an HTTP status of 400 or more
    /// (inbound: also requests refused or dropped).
    pub failed_only: bool,
    /// At most this many, the newest.
    pub limit: u32,
}

impl RequestFilter {
    /// The newest `limit` records.
    pub fn newest(limit: u32) -> Self {
        Self {
            since: None,
            agent: None,
            failed_only: false,
            limit,
        }
    }
}

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RequestRecord> {
    let duration_ms: i64 = row.get(5)?;
    Ok(RequestRecord {
        at: time_column(row, 0)?,
        upstream: enum_column(row, 1, Upstream::parse)?,
        method: row.get(2)?,
        path: row.get(3)?,
        status: row.get(4)?,
        duration_ms: u64::try_from(duration_ms).unwrap_or(0),
        mailbox: row.get(6)?,
        agent_id: row.get(7)?,
        request_id: row.get(8)?,
        error: row.get(9)?,
    })
}

/// The newest `limit` records, newest first.
pub fn recent(conn: &Connection, limit: u32) -> Result<Vec<RequestRecord>, StoreError> {
    query(conn, &RequestFilter::newest(limit))
}

/// The records `filter` selects, newest first. An agent matches by the
/// request's mailbox or by the agent id it was made for.
pub fn query(conn: &Connection, filter: &RequestFilter) -> Result<Vec<RequestRecord>, StoreError> {
    let mut statement = conn
        .prepare_cached(
            "SELECT at, upstream, method, path, status, duration_ms, mailbox, agent_id, request_id, error
             FROM outbound_requests
             WHERE (?1 IS NULL OR at >= ?1)
               AND (?2 IS NULL OR mailbox = ?2
                    OR agent_id IN (SELECT agent_id FROM agents
                                    WHERE mailbox = ?2 OR email = ?2 COLLATE NOCASE))
               AND (?3 = 0 OR status IS NULL OR status >= 400 OR error IS NOT NULL)
             ORDER BY at DESC, id DESC LIMIT ?4",
        )
        .map_err(|e| fail(conn, "preparing the request log query", e))?;
    let rows = statement
        .query_map(
            params![
                filter.since.map(db_time),
                filter.agent,
                filter.failed_only,
                filter.limit
            ],
            from_row,
        )
        .map_err(|e| fail(conn, "reading the request log", e))?;
    rows.collect::<Result<_, _>>()
        .map_err(|e| fail(conn, "reading the request log", e))
}

/// Deletes records older than `retention_days` before `now`; returns how many.
pub fn prune(
    conn: &Connection,
    now: DateTime<Utc>,
    retention_days: u32,
) -> Result<usize, StoreError> {
    let cutoff = now - Duration::days(i64::from(retention_days));
    conn.execute(
        "DELETE FROM outbound_requests WHERE at < ?1",
        [db_time(cutoff)],
    )
    .map_err(|e| fail(conn, "pruning the request log", e))
}
