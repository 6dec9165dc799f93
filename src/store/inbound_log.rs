//! Queries on `inbound_requests`, the inbound request log (the guide's
//! "Inbound requests" tab): one row per request to the webhook listener.
//! A row never holds a body, a query string or a clientState.

use chrono::{DateTime, Duration, Utc};
use rusqlite::{Connection, Row, params};

use super::request_log::RequestFilter;
use super::{StoreError, db_time, enum_column, time_column, webhook_queue};

/// What the listener made of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundOutcome {
    /// Change notifications, at least one verified and queued.
    Accepted,
    /// A validation handshake answered.
    Validation,
    /// Lifecycle notifications, at least one verified and recorded.
    Lifecycle,
    /// Refused or dropped: wrong path, method or content type, bad token,
    /// too large, or no item with a known subscription and its clientState.
    Rejected,
    /// Not a notification payload at all.
    Malformed,
    /// halosync could not record it (Graph was told to retry).
    Error,
}

impl InboundOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Validation => "validation",
            Self::Lifecycle => "lifecycle",
            Self::Rejected => "rejected",
            Self::Malformed => "malformed",
            Self::Error => "error",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "accepted" => Self::Accepted,
            "validation" => Self::Validation,
            "lifecycle" => Self::Lifecycle,
            "rejected" => Self::Rejected,
            "malformed" => Self::Malformed,
            "error" => Self::Error,
            _ => return None,
        })
    }

    /// Whether `requests inbound --failed` shows it.
    pub fn is_failure(self) -> bool {
        matches!(self, Self::Rejected | Self::Malformed | Self::Error)
    }
}

/// One request to the listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundRecord {
    pub at: DateTime<Utc>,
    pub method: String,
    /// The path only: a query string may carry a validation token.
    pub path: String,
    pub status: u16,
    pub outcome: InboundOutcome,
    pub subscription_id: Option<String>,
    pub mailbox: Option<String>,
    /// Items in the payload (accepted or not).
    pub item_count: u32,
    pub duration_ms: u64,
    /// Why it was refused or dropped, in a few words.
    pub detail: Option<String>,
}

/// Appends one record.
pub fn insert(conn: &Connection, record: &InboundRecord) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO inbound_requests
             (at, method, path, status, outcome, subscription_id, mailbox, item_count, duration_ms, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .and_then(|mut statement| {
        statement.execute(params![
            db_time(record.at),
            record.method,
            record.path,
            record.status,
            record.outcome.as_str(),
            record.subscription_id,
            record.mailbox,
            record.item_count,
            i64::try_from(record.duration_ms).unwrap_or(i64::MAX),
            record.detail,
        ])
    })
    .map_err(|e| StoreError::on(conn, "writing the inbound request log", e))?;
    Ok(())
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<InboundRecord> {
    let item_count: i64 = row.get(7)?;
    let duration_ms: i64 = row.get(8)?;
    Ok(InboundRecord {
        at: time_column(row, 0)?,
        method: row.get(1)?,
        path: row.get(2)?,
        status: row.get(3)?,
        outcome: enum_column(row, 4, InboundOutcome::parse)?,
        subscription_id: row.get(5)?,
        mailbox: row.get(6)?,
        item_count: u32::try_from(item_count).unwrap_or(0),
        duration_ms: u64::try_from(duration_ms).unwrap_or(0),
        detail: row.get(9)?,
    })
}

/// The records `filter` selects, newest first.
pub fn query(conn: &Connection, filter: &RequestFilter) -> Result<Vec<InboundRecord>, StoreError> {
    let fail = |e| StoreError::on(conn, "reading the inbound request log", e);
    let mut statement = conn
        .prepare_cached(
            "SELECT at, method, path, status, outcome, subscription_id, mailbox, item_count, duration_ms, detail
             FROM inbound_requests
             WHERE (?1 IS NULL OR at >= ?1)
               AND (?2 IS NULL OR mailbox = ?2)
               AND (?3 = 0 OR outcome IN ('rejected', 'malformed', 'error') OR status >= 400)
             ORDER BY at DESC, id DESC LIMIT ?4",
        )
        .map_err(fail)?;
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
        .map_err(fail)?;
    rows.collect::<Result<_, _>>().map_err(fail)
}

/// How long a notification's identity is remembered to recognise Graph's
/// redelivery (which stops after 4 hours).
const SEEN_KEPT: Duration = Duration::days(1);

/// Deletes inbound records older than `retention_days` before `now`, and
/// the webhook queue's memory of notifications it no longer needs; returns
/// how many records went.
pub fn prune(
    conn: &Connection,
    now: DateTime<Utc>,
    retention_days: u32,
) -> Result<usize, StoreError> {
    let cutoff = now - Duration::days(i64::from(retention_days));
    let pruned = conn
        .execute(
            "DELETE FROM inbound_requests WHERE at < ?1",
            [db_time(cutoff)],
        )
        .map_err(|e| StoreError::on(conn, "pruning the inbound request log", e))?;
    webhook_queue::prune_seen(conn, now, SEEN_KEPT)?;
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use chrono::TimeZone;

    fn record(at: DateTime<Utc>) -> InboundRecord {
        InboundRecord {
            at,
            method: "POST".into(),
            path: "/graph/notify".into(),
            status: 202,
            outcome: InboundOutcome::Accepted,
            subscription_id: Some("s1".into()),
            mailbox: Some("leah@contoso.com".into()),
            item_count: 3,
            duration_ms: 7,
            detail: None,
        }
    }

    #[test]
    fn records_round_trip_and_retention_prunes_old_ones_and_old_seen_notifications() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("t.db")).unwrap();
        let conn = store.connection();
        let now = Utc.with_ymd_and_hms(2026, 3, 20, 12, 0, 0).unwrap();
        insert(conn, &record(now - Duration::days(15))).unwrap();
        insert(conn, &record(now - Duration::days(13))).unwrap();
        webhook_queue::seen_before(conn, &[1; 32], now - Duration::days(2)).unwrap();
        webhook_queue::seen_before(conn, &[2; 32], now - Duration::hours(2)).unwrap();

        assert_eq!(prune(conn, now, 14).unwrap(), 1);
        let left = query(conn, &RequestFilter::newest(10)).unwrap();
        assert_eq!(left, [record(now - Duration::days(13))]);
        assert!(
            !webhook_queue::seen_before(conn, &[1; 32], now).unwrap(),
            "forgotten"
        );
        assert!(
            webhook_queue::seen_before(conn, &[2; 32], now).unwrap(),
            "kept"
        );
    }
}
