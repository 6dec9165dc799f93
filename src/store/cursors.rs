//! Where the incremental reads resume: the calendarView delta link of each
//! mailbox and sync window, and the newest Halo `last_modified` processed
//! per agent and scope.
//!
//! The caller saves a cursor only after it applied what the read that
//! produced it observed: a cursor saved earlier would skip changes a failed
//! apply never carried across.

use chrono::{DateTime, Utc};
use rusqlite::{ErrorCode, OptionalExtension, params};

use super::{Store, StoreError, db_time};

/// A sync window as stored: `[start, end)` in UTC.
type StoredWindow = (DateTime<Utc>, DateTime<Utc>);

impl Store {
    /// The delta link saved for `mailbox` over exactly `window`. A link of
    /// another window is never returned: the window is part of the token, so
    /// it would report changes against the wrong range.
    pub fn delta_link(
        &self,
        mailbox: &str,
        window: StoredWindow,
    ) -> Result<Option<String>, StoreError> {
        self.connection()
            .query_row(
                "SELECT delta_link FROM delta_cursors
                 WHERE mailbox = ?1 AND window_start = ?2 AND window_end = ?3",
                params![mailbox, db_time(window.0), db_time(window.1)],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| StoreError::sqlite("reading a delta link", self.path(), e))
    }

    /// Saves the link a delta round over `window` ended with, and drops the
    /// mailbox's links for other windows (a rolled window never comes back).
    pub fn save_delta_link(
        &self,
        mailbox: &str,
        window: StoredWindow,
        link: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let fail = |e| StoreError::sqlite("saving a delta link", self.path(), e);
        let (start, end) = (db_time(window.0), db_time(window.1));
        let conn = self.connection();
        // Saved before the others are dropped, so a crash in between leaves
        // a stale extra row (never read: lookups name the window) rather
        // than no link at all.
        conn.execute(
            "INSERT INTO delta_cursors (mailbox, window_start, window_end, delta_link, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (mailbox, window_start, window_end) DO UPDATE SET
                 delta_link = excluded.delta_link, updated_at = excluded.updated_at",
            params![mailbox, start, end, link, db_time(now)],
        )
        .map_err(fail)?;
        conn.execute(
            "DELETE FROM delta_cursors
             WHERE mailbox = ?1 AND NOT (window_start = ?2 AND window_end = ?3)",
            params![mailbox, start, end],
        )
        .map_err(fail)?;
        Ok(())
    }

    /// Drops every delta link of `mailbox` (Graph no longer knows its token,
    /// or the mailbox is no longer synced): the next round starts afresh.
    pub fn forget_delta_links(&self, mailbox: &str) -> Result<(), StoreError> {
        self.connection()
            .execute("DELETE FROM delta_cursors WHERE mailbox = ?1", [mailbox])
            .map_err(|e| StoreError::sqlite("forgetting delta links", self.path(), e))?;
        Ok(())
    }

    /// The newest Halo `last_modified` processed for `agent_id` in `scope`
    /// (e.g. `"appointments"`).
    pub fn halo_cursor(
        &self,
        agent_id: i64,
        scope: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.connection()
            .query_row(
                "SELECT last_modified FROM halo_cursors WHERE agent_id = ?1 AND scope = ?2",
                params![agent_id, scope],
                |row| {
                    let text: String = row.get(0)?;
                    DateTime::parse_from_rfc3339(&text)
                        .map(|at| at.with_timezone(&Utc))
                        .map_err(|e| {
                            rusqlite::Error::FromSqlConversionFailure(
                                0,
                                rusqlite::types::Type::Text,
                                format!("'{text}' is not a time: {e}").into(),
                            )
                        })
                },
            )
            .optional()
            .map_err(|e| StoreError::sqlite("reading a Halo cursor", self.path(), e))
    }

    /// Saves the Halo cursor of `agent_id` in `scope`. The agent must already
    /// be recorded ([`Store::upsert_agent`]): a cursor of an agent halosync
    /// does not know is refused.
    ///
    /// Stored to the millisecond, rounded down, so a cursor never moves past
    /// a change it has not seen.
    pub fn save_halo_cursor(
        &self,
        agent_id: i64,
        scope: &str,
        last_modified: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.connection()
            .execute(
                "INSERT INTO halo_cursors (agent_id, scope, last_modified, updated_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (agent_id, scope) DO UPDATE SET
                     last_modified = excluded.last_modified, updated_at = excluded.updated_at",
                params![agent_id, scope, db_time(last_modified), db_time(now)],
            )
            .map_err(|e| {
                let action = if is_foreign_key_failure(&e) {
                    format!(
                        "saving the Halo cursor of agent {agent_id}: agent {agent_id} is not in the \
                         database; record it (Store::upsert_agent, from Halo's agent list) before its cursor"
                    )
                } else {
                    format!("saving the Halo cursor of agent {agent_id}")
                };
                StoreError::sqlite(action, self.path(), e)
            })?;
        Ok(())
    }
}

fn is_foreign_key_failure(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.code == ErrorCode::ConstraintViolation
                && failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AgentRow;
    use chrono::{Duration, TimeZone};

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0)
            .single()
            .expect("valid date")
    }

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("c.db")).expect("open");
        (dir, store)
    }

    #[test]
    fn a_delta_link_is_kept_per_window_and_a_new_window_replaces_the_old() {
        let (_dir, store) = open();
        let november = (at(1, 0), at(30, 0));
        let rolled = (at(2, 0), at(30, 0) + Duration::days(1));
        assert_eq!(
            store
                .delta_link("leah@contoso.com", november)
                .expect("read"),
            None
        );

        store
            .save_delta_link(
                "leah@contoso.com",
                november,
                "https://g/delta?$deltatoken=a",
                at(1, 6),
            )
            .expect("save");
        store
            .save_delta_link(
                "amir@contoso.com",
                november,
                "https://g/delta?$deltatoken=b",
                at(1, 6),
            )
            .expect("save");
        // Mailboxes compare without case, like the rest of the schema.
        assert_eq!(
            store
                .delta_link("Leah@Contoso.com", november)
                .expect("read")
                .as_deref(),
            Some("https://g/delta?$deltatoken=a")
        );
        assert_eq!(
            store.delta_link("leah@contoso.com", rolled).expect("read"),
            None
        );

        store
            .save_delta_link(
                "leah@contoso.com",
                november,
                "https://g/delta?$deltatoken=a2",
                at(1, 7),
            )
            .expect("update");
        assert_eq!(
            store
                .delta_link("leah@contoso.com", november)
                .expect("read")
                .as_deref(),
            Some("https://g/delta?$deltatoken=a2")
        );

        store
            .save_delta_link(
                "leah@contoso.com",
                rolled,
                "https://g/delta?$deltatoken=c",
                at(2, 6),
            )
            .expect("save the rolled window");
        assert_eq!(
            store
                .delta_link("leah@contoso.com", november)
                .expect("read"),
            None
        );
        assert_eq!(
            store
                .delta_link("leah@contoso.com", rolled)
                .expect("read")
                .as_deref(),
            Some("https://g/delta?$deltatoken=c")
        );
        assert!(
            store
                .delta_link("amir@contoso.com", november)
                .expect("read")
                .is_some(),
            "another mailbox keeps its link"
        );

        store
            .forget_delta_links("LEAH@contoso.com")
            .expect("forget");
        assert_eq!(
            store.delta_link("leah@contoso.com", rolled).expect("read"),
            None
        );
        assert!(
            store
                .delta_link("amir@contoso.com", november)
                .expect("read")
                .is_some()
        );
    }

    #[test]
    fn a_halo_cursor_round_trips_per_agent_and_scope_to_the_millisecond() {
        let (_dir, store) = open();
        store
            .upsert_agent(
                &AgentRow {
                    agent_id: 2,
                    name: "Leah".into(),
                    email: Some("leah@contoso.com".into()),
                    mailbox: Some("leah@contoso.com".into()),
                    connection: None,
                    enabled: true,
                },
                at(1, 0),
            )
            .expect("agent");
        assert_eq!(store.halo_cursor(2, "appointments").expect("read"), None);
        let seen = at(3, 9) + Duration::microseconds(123_456);
        store
            .save_halo_cursor(2, "appointments", seen, at(3, 10))
            .expect("save");
        assert_eq!(
            store.halo_cursor(2, "appointments").expect("read"),
            Some(at(3, 9) + Duration::milliseconds(123)),
            "rounded down, never past what was seen"
        );
        assert_eq!(store.halo_cursor(2, "tickets").expect("read"), None);
        store
            .save_halo_cursor(2, "appointments", at(4, 9), at(4, 10))
            .expect("move on");
        assert_eq!(
            store.halo_cursor(2, "appointments").expect("read"),
            Some(at(4, 9))
        );
    }

    #[test]
    fn a_halo_cursor_for_an_unknown_agent_is_refused_with_what_to_do() {
        let (_dir, store) = open();
        let error = store
            .save_halo_cursor(99, "appointments", at(3, 9), at(3, 10))
            .expect_err("no agent 99");
        let message = error.to_string();
        assert!(
            message.contains("agent 99 is not in the database"),
            "{message}"
        );
        assert!(message.contains("upsert_agent"), "{message}");
        assert_eq!(store.halo_cursor(99, "appointments").expect("read"), None);
    }
}
