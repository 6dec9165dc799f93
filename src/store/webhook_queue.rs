//! Queries on `webhook_queue` (mailboxes waiting for a pull because Graph
//! notified halosync) and `webhook_seen` (notifications already queued).
//!
//! Call these inside one transaction per request or per take, so a crash
//! never leaves half a coalescing step behind.

use chrono::{DateTime, Duration, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{StoreError, db_time, enum_column, time_column};

/// Why a mailbox should be pulled. Ordered by strength: coalescing keeps
/// the strongest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeReason {
    /// Items changed: a delta pull finds them.
    Changed,
    /// Graph lost notifications (`missed`): resync the mailbox.
    Missed,
    /// Graph removed the subscription (`subscriptionRemoved`): changes may
    /// have gone unnoticed until it was recreated; resync the mailbox.
    Removed,
}

impl ChangeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Changed => "changed",
            Self::Missed => "missed",
            Self::Removed => "removed",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "changed" => Self::Changed,
            "missed" => Self::Missed,
            "removed" => Self::Removed,
            _ => return None,
        })
    }
}

/// Verified notifications for one mailbox, to add to its waiting entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    pub mailbox: String,
    pub agent_id: i64,
    pub subscription_id: Option<String>,
    pub reason: ChangeReason,
    pub notifications: u32,
}

/// A mailbox the engine should pull: every notification that arrived for
/// it since the last pull, coalesced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxChanged {
    pub mailbox: String,
    pub agent_id: i64,
    pub subscription_id: Option<String>,
    pub reason: ChangeReason,
    /// How many notifications were coalesced into this one pull.
    pub notifications: u32,
    /// When the oldest of them arrived.
    pub first_at: DateTime<Utc>,
    /// Identifies the queue entry for `done`/`release`.
    pub ticket: i64,
}

struct Entry {
    id: i64,
    changed: MailboxChanged,
    last_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, mailbox, agent_id, subscription_id, reason, notifications, first_at, last_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Entry> {
    let notifications: i64 = row.get(5)?;
    let id = row.get(0)?;
    Ok(Entry {
        id,
        changed: MailboxChanged {
            mailbox: row.get(1)?,
            agent_id: row.get(2)?,
            subscription_id: row.get(3)?,
            reason: enum_column(row, 4, ChangeReason::parse)?,
            notifications: u32::try_from(notifications).unwrap_or(u32::MAX),
            first_at: time_column(row, 6)?,
            ticket: id,
        },
        last_at: time_column(row, 7)?,
    })
}

fn waiting(conn: &Connection, mailbox: &str) -> Result<Option<Entry>, StoreError> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM webhook_queue WHERE mailbox = ?1 AND taken_at IS NULL"),
        [mailbox],
        from_row,
    )
    .optional()
    .map_err(|e| StoreError::on(conn, "reading the webhook queue", e))
}

fn taken(conn: &Connection, ticket: i64) -> Result<Option<Entry>, StoreError> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM webhook_queue WHERE id = ?1 AND taken_at IS NOT NULL"),
        [ticket],
        from_row,
    )
    .optional()
    .map_err(|e| StoreError::on(conn, "reading the webhook queue", e))
}

/// Adds `extra` notifications (first arrived at `first_at`, last at
/// `last_at`) to the waiting entry `entry`.
fn merge_into(
    conn: &Connection,
    entry: &Entry,
    extra: u32,
    reason: ChangeReason,
    first_at: DateTime<Utc>,
    last_at: DateTime<Utc>,
    latest: Option<(i64, Option<&str>)>,
) -> Result<(), StoreError> {
    let (agent_id, subscription_id) = latest.unwrap_or((
        entry.changed.agent_id,
        entry.changed.subscription_id.as_deref(),
    ));
    conn.execute(
        "UPDATE webhook_queue SET notifications = ?2, reason = ?3, first_at = ?4, last_at = ?5,
             agent_id = ?6, subscription_id = ?7
         WHERE id = ?1",
        params![
            entry.id,
            entry.changed.notifications.saturating_add(extra),
            entry.changed.reason.max(reason).as_str(),
            db_time(entry.changed.first_at.min(first_at)),
            db_time(entry.last_at.max(last_at)),
            agent_id,
            subscription_id,
        ],
    )
    .map_err(|e| StoreError::on(conn, "updating the webhook queue", e))?;
    Ok(())
}

/// Queues `arrival`, coalescing it into its mailbox's waiting entry.
pub fn push(conn: &Connection, arrival: &Arrival, now: DateTime<Utc>) -> Result<(), StoreError> {
    if let Some(entry) = waiting(conn, &arrival.mailbox)? {
        return merge_into(
            conn,
            &entry,
            arrival.notifications,
            arrival.reason,
            now,
            now,
            Some((arrival.agent_id, arrival.subscription_id.as_deref())),
        );
    }
    conn.execute(
        "INSERT INTO webhook_queue (mailbox, agent_id, subscription_id, reason, notifications, first_at, last_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        params![
            arrival.mailbox,
            arrival.agent_id,
            arrival.subscription_id,
            arrival.reason.as_str(),
            arrival.notifications.max(1),
            db_time(now),
        ],
    )
    .map_err(|e| StoreError::on(conn, "adding to the webhook queue", e))?;
    Ok(())
}

/// Remembers a notification's identity; true if it was already queued
/// (Graph redelivering one whose answer it did not see).
pub fn seen_before(
    conn: &Connection,
    key: &[u8; 32],
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    conn.execute(
        "INSERT OR IGNORE INTO webhook_seen (key, at) VALUES (?1, ?2)",
        params![key.as_slice(), db_time(now)],
    )
    .map(|inserted| inserted == 0)
    .map_err(|e| StoreError::on(conn, "recording a notification", e))
}

/// Hands out every mailbox whose first waiting notification arrived at
/// least `debounce` ago and which is not being pulled already; entries
/// taken more than `lease` ago (their consumer died) are put back first.
pub fn take_due(
    conn: &Connection,
    now: DateTime<Utc>,
    debounce: Duration,
    lease: Duration,
) -> Result<Vec<MailboxChanged>, StoreError> {
    let fail = |e| StoreError::on(conn, "taking from the webhook queue", e);
    let abandoned: Vec<i64> = {
        let mut statement = conn
            .prepare_cached("SELECT id FROM webhook_queue WHERE taken_at < ?1")
            .map_err(fail)?;
        let rows = statement
            .query_map([db_time(now - lease)], |row| row.get(0))
            .map_err(fail)?;
        rows.collect::<Result<_, _>>().map_err(fail)?
    };
    for ticket in abandoned {
        release(conn, ticket)?;
    }
    let due: Vec<Entry> = {
        let mut statement = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM webhook_queue AS w
                 WHERE taken_at IS NULL AND first_at <= ?1
                   AND NOT EXISTS (SELECT 1 FROM webhook_queue AS t
                                   WHERE t.mailbox = w.mailbox AND t.taken_at IS NOT NULL)
                 ORDER BY first_at, id"
            ))
            .map_err(fail)?;
        let rows = statement
            .query_map([db_time(now - debounce)], from_row)
            .map_err(fail)?;
        rows.collect::<Result<_, _>>().map_err(fail)?
    };
    let mut statement = conn
        .prepare_cached("UPDATE webhook_queue SET taken_at = ?2 WHERE id = ?1")
        .map_err(fail)?;
    for entry in &due {
        statement
            .execute(params![entry.id, db_time(now)])
            .map_err(fail)?;
    }
    Ok(due.into_iter().map(|entry| entry.changed).collect())
}

/// When the next waiting entry becomes due (ignoring mailboxes being
/// pulled, which become due when their pull is done).
pub fn next_due(
    conn: &Connection,
    debounce: Duration,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let first: Option<String> = conn
        .query_row(
            "SELECT min(first_at) FROM webhook_queue AS w
             WHERE taken_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM webhook_queue AS t
                               WHERE t.mailbox = w.mailbox AND t.taken_at IS NOT NULL)",
            [],
            |row| row.get(0),
        )
        .map_err(|e| StoreError::on(conn, "reading the webhook queue", e))?;
    Ok(first
        .and_then(|text| DateTime::parse_from_rfc3339(&text).ok())
        .map(|first| first.with_timezone(&Utc) + debounce))
}

/// The pull for `ticket` finished: forget what it covered. Notifications
/// that arrived meanwhile wait in their own entry.
pub fn done(conn: &Connection, ticket: i64) -> Result<(), StoreError> {
    conn.execute(
        "DELETE FROM webhook_queue WHERE id = ?1 AND taken_at IS NOT NULL",
        [ticket],
    )
    .map_err(|e| StoreError::on(conn, "finishing a webhook queue entry", e))?;
    Ok(())
}

/// The pull for `ticket` did not happen: put its notifications back,
/// merged with any that arrived meanwhile.
pub fn release(conn: &Connection, ticket: i64) -> Result<(), StoreError> {
    let Some(entry) = taken(conn, ticket)? else {
        return Ok(());
    };
    let fail = |e| StoreError::on(conn, "releasing a webhook queue entry", e);
    match waiting(conn, &entry.changed.mailbox)? {
        Some(newer) => {
            merge_into(
                conn,
                &newer,
                entry.changed.notifications,
                entry.changed.reason,
                entry.changed.first_at,
                entry.last_at,
                None,
            )?;
            conn.execute("DELETE FROM webhook_queue WHERE id = ?1", [ticket])
                .map_err(fail)?;
        }
        None => {
            conn.execute(
                "UPDATE webhook_queue SET taken_at = NULL WHERE id = ?1",
                [ticket],
            )
            .map_err(fail)?;
        }
    }
    Ok(())
}

/// Puts back every taken entry: at start-up no pull is in progress.
pub fn release_all(conn: &Connection) -> Result<(), StoreError> {
    let fail = |e| StoreError::on(conn, "releasing the webhook queue", e);
    let tickets: Vec<i64> = {
        let mut statement = conn
            .prepare_cached("SELECT id FROM webhook_queue WHERE taken_at IS NOT NULL")
            .map_err(fail)?;
        let rows = statement.query_map([], |row| row.get(0)).map_err(fail)?;
        rows.collect::<Result<_, _>>().map_err(fail)?
    };
    for ticket in tickets {
        release(conn, ticket)?;
    }
    Ok(())
}

/// Forgets notification identities older than `keep`; returns how many.
pub fn prune_seen(
    conn: &Connection,
    now: DateTime<Utc>,
    keep: Duration,
) -> Result<usize, StoreError> {
    conn.execute(
        "DELETE FROM webhook_seen WHERE at < ?1",
        [db_time(now - keep)],
    )
    .map_err(|e| StoreError::on(conn, "pruning the webhook queue's seen notifications", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use chrono::TimeZone;

    const DEBOUNCE: Duration = Duration::milliseconds(500);
    const LEASE: Duration = Duration::minutes(30);

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap()
    }

    fn ms(n: i64) -> DateTime<Utc> {
        t0() + Duration::milliseconds(n)
    }

    fn arrival(mailbox: &str, reason: ChangeReason) -> Arrival {
        Arrival {
            mailbox: mailbox.into(),
            agent_id: 2,
            subscription_id: Some("s1".into()),
            reason,
            notifications: 1,
        }
    }

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("q.db")).unwrap();
        (dir, store)
    }

    #[test]
    fn a_burst_becomes_one_entry_due_after_the_debounce() {
        let (_dir, store) = open();
        let conn = store.connection();
        for i in 0..20 {
            push(
                conn,
                &arrival("leah@contoso.com", ChangeReason::Changed),
                ms(i * 10),
            )
            .unwrap();
        }
        push(
            conn,
            &arrival("Leah@Contoso.com", ChangeReason::Missed),
            ms(200),
        )
        .unwrap();
        push(
            conn,
            &arrival("amir@contoso.com", ChangeReason::Changed),
            ms(300),
        )
        .unwrap();
        assert!(take_due(conn, ms(499), DEBOUNCE, LEASE).unwrap().is_empty());
        assert_eq!(next_due(conn, DEBOUNCE).unwrap(), Some(ms(500)));
        let due = take_due(conn, ms(500), DEBOUNCE, LEASE).unwrap();
        assert_eq!(due.len(), 1, "{due:?}");
        assert_eq!(due[0].mailbox, "leah@contoso.com");
        assert_eq!(due[0].notifications, 21);
        assert_eq!(
            due[0].reason,
            ChangeReason::Missed,
            "the strongest reason wins"
        );
        assert_eq!(due[0].first_at, ms(0));
        let later = take_due(conn, ms(800), DEBOUNCE, LEASE).unwrap();
        assert_eq!(
            later.iter().map(|c| c.mailbox.as_str()).collect::<Vec<_>>(),
            ["amir@contoso.com"]
        );
    }

    #[test]
    fn a_change_during_a_pull_waits_for_the_next_pull() {
        let (_dir, store) = open();
        let conn = store.connection();
        push(
            conn,
            &arrival("leah@contoso.com", ChangeReason::Changed),
            ms(0),
        )
        .unwrap();
        let first = take_due(conn, ms(600), DEBOUNCE, LEASE).unwrap();
        push(
            conn,
            &arrival("leah@contoso.com", ChangeReason::Changed),
            ms(700),
        )
        .unwrap();
        // Due by time, but the mailbox is being pulled.
        assert!(
            take_due(conn, ms(5_000), DEBOUNCE, LEASE)
                .unwrap()
                .is_empty()
        );
        assert_eq!(next_due(conn, DEBOUNCE).unwrap(), None);
        done(conn, first[0].ticket).unwrap();
        let second = take_due(conn, ms(5_000), DEBOUNCE, LEASE).unwrap();
        assert_eq!(second.len(), 1);
        assert_eq!((second[0].notifications, second[0].first_at), (1, ms(700)));
        done(conn, second[0].ticket).unwrap();
        assert!(
            take_due(conn, ms(9_000), DEBOUNCE, LEASE)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_released_or_abandoned_pull_is_handed_out_again_merged_with_newer_changes() {
        let (_dir, store) = open();
        let conn = store.connection();
        push(
            conn,
            &arrival("leah@contoso.com", ChangeReason::Removed),
            ms(0),
        )
        .unwrap();
        let taken = take_due(conn, ms(600), DEBOUNCE, LEASE).unwrap();
        push(
            conn,
            &arrival("leah@contoso.com", ChangeReason::Changed),
            ms(700),
        )
        .unwrap();
        release(conn, taken[0].ticket).unwrap();
        let again = take_due(conn, ms(1_300), DEBOUNCE, LEASE).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(
            (again[0].notifications, again[0].reason, again[0].first_at),
            (2, ChangeReason::Removed, ms(0))
        );
        // Never finished: after the lease it is due again.
        let lapsed = ms(1_300) + LEASE + Duration::seconds(1);
        assert_eq!(take_due(conn, lapsed, DEBOUNCE, LEASE).unwrap().len(), 1);
        // A restart puts back whatever was taken.
        release_all(conn).unwrap();
        assert_eq!(take_due(conn, lapsed, DEBOUNCE, LEASE).unwrap().len(), 1);
    }

    #[test]
    fn a_notification_is_seen_once_until_pruned() {
        let (_dir, store) = open();
        let conn = store.connection();
        let key = [7; 32];
        assert!(!seen_before(conn, &key, t0()).unwrap());
        assert!(seen_before(conn, &key, ms(10)).unwrap());
        assert_eq!(
            prune_seen(conn, t0() + Duration::days(2), Duration::days(1)).unwrap(),
            1
        );
        assert!(!seen_before(conn, &key, t0() + Duration::days(2)).unwrap());
    }
}
