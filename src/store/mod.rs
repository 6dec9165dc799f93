//! The SQLite database: schema, migrations, single-owner locking, integrity
//! checks and backups.
//!
//! The store holds no business rules. Later modules read and write the tables
//! through [`Store::connection`] and group multi-row changes with
//! [`Store::transaction`]; the schema (see `schema_v1.sql`) makes the
//! invariants that must never break (one link per Halo appointment, one per
//! event and mailbox, valid states) impossible to violate.

mod cursors;
mod error;
pub mod inbound_log;
mod journal;
mod links;
mod lock;
mod migrations;
mod oauth_tokens;
pub mod request_log;
mod retention;
mod runs;
mod status;
pub mod subscriptions;
pub mod webhook_queue;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

pub use error::StoreError;
pub use journal::{Intent, WriteKind};
pub use links::{AgentHealth, AgentRow, MeetingLink};
use lock::OwnerLock;
pub use oauth_tokens::{StoredToken, TokenState};
pub use retention::LINK_TOMBSTONE_DAYS;
pub use runs::{RunId, RunOutcome, RunRecord};
pub use status::AgentStatus;

/// How long a statement waits for another connection's write lock (for
/// example a `status` reader mid-checkpoint) before failing with SQLITE_BUSY.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// An open halosync database.
#[derive(Debug)]
pub struct Store {
    // Field order matters: the connection must close (and checkpoint) before
    // the lock is released to the next owner.
    conn: Connection,
    path: PathBuf,
    /// The schema version the file had when opened (0 for a new file).
    opened_at_version: i64,
    _owner: Option<OwnerLock>,
}

impl Store {
    /// Opens (creating if needed) the database as its single owner and
    /// migrates it to the latest schema.
    ///
    /// Fails with [`StoreError::Locked`] when another process owns it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        ensure_parent_exists(path)?;
        let owner = OwnerLock::acquire(path)?;
        let mut conn = Connection::open(path)
            .map_err(|e| StoreError::sqlite("opening the database", path, e))?;
        configure_connection(&conn, path)?;
        // Migrate before switching the journal mode, the one setting stored in
        // the file: a newer binary's database is refused untouched.
        let opened_at_version = migrations::migrate(&mut conn, path)?;
        enable_wal(&conn, path)?;
        Ok(Self {
            conn,
            path: path.to_path_buf(),
            opened_at_version,
            _owner: Some(owner),
        })
    }

    /// Opens the database for reading next to a running daemon: no lock, no
    /// migrations, and SQLite refuses every write.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(StoreError::NotInitialised {
                path: path.to_path_buf(),
            });
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| StoreError::sqlite("opening the database read-only", path, e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| StoreError::sqlite("setting the busy timeout", path, e))?;
        let found = migrations::schema_version(&conn, path)?;
        check_readable(path, found, migrations::LATEST_VERSION)?;
        Ok(Self {
            conn,
            path: path.to_path_buf(),
            opened_at_version: found,
            _owner: None,
        })
    }

    /// An empty database in memory with the latest schema: what a dry run
    /// reads when no database file exists yet (no links, nothing written).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let path = Path::new(":memory:");
        let mut conn = Connection::open_in_memory()
            .map_err(|e| StoreError::sqlite("opening a database in memory", path, e))?;
        configure_connection(&conn, path)?;
        let opened_at_version = migrations::migrate(&mut conn, path)?;
        Ok(Self {
            conn,
            path: path.to_path_buf(),
            opened_at_version,
            _owner: None,
        })
    }

    /// The schema version this binary creates and reads.
    pub const fn latest_schema_version() -> i64 {
        migrations::LATEST_VERSION
    }

    /// The schema version the file had before [`Store::open`] migrated it:
    /// 0 for a database created by this open.
    pub fn opened_at_version(&self) -> i64 {
        self.opened_at_version
    }

    /// The schema version recorded in the database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        migrations::schema_version(&self.conn, &self.path)
    }

    /// The database file this store was opened on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying connection, for the modules that own each table's queries.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Runs `work` in one write transaction: committed if it returns `Ok`,
    /// rolled back if it returns `Err` or panics.
    ///
    /// The transaction starts IMMEDIATE, taking the write lock up front, so it
    /// cannot fail half-way with SQLITE_BUSY when upgrading from a read.
    pub fn transaction<T, E>(
        &mut self,
        work: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| StoreError::sqlite("starting a transaction", &self.path, e))?;
        let value = work(&tx)?;
        tx.commit()
            .map_err(|e| StoreError::sqlite("committing a transaction", &self.path, e))?;
        Ok(value)
    }

    /// Runs `work` with this store's own methods in one write transaction:
    /// committed if it returns `Ok`, rolled back if it returns `Err` or
    /// panics. Not re-entrant: `work` must not call `atomically` again.
    pub fn atomically<T, E>(&self, work: impl FnOnce(&Store) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        /// Rolls back unless committed, so a panic cannot leave it open.
        struct Open<'a>(&'a Store, bool);
        impl Drop for Open<'_> {
            fn drop(&mut self) {
                if !self.1 {
                    // Nothing to report to: the error or panic that got
                    // here is what the caller sees.
                    let _ = self.0.conn.execute_batch("ROLLBACK");
                }
            }
        }
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| StoreError::sqlite("starting a transaction", &self.path, e))?;
        let mut open = Open(self, false);
        let value = work(self)?;
        self.conn
            .execute_batch("COMMIT")
            .map_err(|e| StoreError::sqlite("committing a transaction", &self.path, e))?;
        open.1 = true;
        Ok(value)
    }

    /// Checks the file structure and every foreign key.
    pub fn integrity_check(&self) -> Result<IntegrityReport, StoreError> {
        let fail = |action: &str, e| StoreError::sqlite(action, &self.path, e);
        let mut problems = Vec::new();
        self.conn
            .pragma_query(None, "integrity_check", |row| {
                let message: String = row.get(0)?;
                if message != "ok" {
                    problems.push(message);
                }
                Ok(())
            })
            .map_err(|e| fail("running PRAGMA integrity_check", e))?;
        self.conn
            .pragma_query(None, "foreign_key_check", |row| {
                let table: String = row.get(0)?;
                let rowid: Option<i64> = row.get(1)?;
                let parent: String = row.get(2)?;
                let row_label = rowid.map_or_else(|| "a row".to_owned(), |id| format!("row {id}"));
                problems.push(format!(
                    "{table} {row_label} refers to a missing {parent} row"
                ));
                Ok(())
            })
            .map_err(|e| fail("running PRAGMA foreign_key_check", e))?;
        Ok(IntegrityReport { problems })
    }

    /// Writes a consistent, compacted copy of the database to `dest`, which
    /// must not exist yet. Safe while the daemon keeps writing.
    pub fn backup_to(&self, dest: impl AsRef<Path>) -> Result<(), StoreError> {
        let dest = dest.as_ref();
        ensure_parent_exists(dest)?;
        // VACUUM INTO would also refuse a non-empty file, but not an empty
        // one, and its message does not say which file.
        if dest.exists() {
            return Err(StoreError::BackupTargetExists {
                dest: dest.to_path_buf(),
            });
        }
        let dest_str = dest.to_str().ok_or_else(|| StoreError::NonUtf8Path {
            path: dest.to_path_buf(),
        })?;
        self.conn
            .execute("VACUUM INTO ?1", [dest_str])
            .map_err(|e| {
                StoreError::sqlite(format!("backing up to {}", dest.display()), &self.path, e)
            })?;
        // VACUUM INTO does not fsync its output; a backup that a power cut
        // can truncate is no backup.
        std::fs::File::open(dest)
            .and_then(|file| file.sync_all())
            .map_err(|source| StoreError::Io {
                action: "flushing the backup to disk",
                path: dest.to_path_buf(),
                source,
            })
    }
}

/// What [`Store::integrity_check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrityReport {
    problems: Vec<String>,
}

impl IntegrityReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// One line per problem found.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }
}

/// Formats a time the way every time column stores it
/// (`2026-02-10T00:00:00.000Z`); the schema rejects any other shape.
pub fn db_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Reads a time column written by [`db_time`].
pub(crate) fn time_column(
    row: &rusqlite::Row<'_>,
    column: usize,
) -> rusqlite::Result<DateTime<Utc>> {
    let text: String = row.get(column)?;
    parse_db_time(column, &text)
}

/// Reads a TEXT column holding one of a fixed set of values through
/// `parse`; a value it does not know is a conversion error naming it.
pub(crate) fn enum_column<T>(
    row: &rusqlite::Row<'_>,
    column: usize,
    parse: impl FnOnce(&str) -> Option<T>,
) -> rusqlite::Result<T> {
    let text: String = row.get(column)?;
    parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            column,
            rusqlite::types::Type::Text,
            format!("unexpected value '{text}'").into(),
        )
    })
}

/// Reads a nullable time column written by [`db_time`].
pub(crate) fn optional_time_column(
    row: &rusqlite::Row<'_>,
    column: usize,
) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let text: Option<String> = row.get(column)?;
    text.map(|text| parse_db_time(column, &text)).transpose()
}

fn parse_db_time(column: usize, text: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, e.into())
        })
}

/// A reader cannot migrate, so it accepts only the exact schema it was built for.
fn check_readable(path: &Path, found: i64, known: i64) -> Result<(), StoreError> {
    let path = path.to_path_buf();
    match found {
        0 => Err(StoreError::NotInitialised { path }),
        _ if found > known => Err(StoreError::SchemaTooNew { path, found, known }),
        _ if found < known => Err(StoreError::SchemaOutdated { path, found, known }),
        _ => Ok(()),
    }
}

/// SQLite would report a missing directory as "unable to open database file";
/// name the directory instead.
fn ensure_parent_exists(path: &Path) -> Result<(), StoreError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => {
            Err(StoreError::MissingDirectory {
                path: path.to_path_buf(),
                dir: dir.to_path_buf(),
            })
        }
        _ => Ok(()),
    }
}

/// Per-connection settings of the owning connection; none is stored in the file.
///
/// synchronous=FULL makes every commit survive a power cut, which matters
/// more here than write speed (a lost link means a duplicated event).
fn configure_connection(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let fail = |action: &str, e| StoreError::sqlite(action, path, e);
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| fail("setting the busy timeout", e))?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| fail("setting synchronous=FULL", e))?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(|e| fail("enabling foreign keys", e))?;
    Ok(())
}

/// WAL lets `status` readers run beside the daemon without blocking its writes.
fn enable_wal(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|e| StoreError::sqlite("switching to WAL journal mode", path, e))?;
    if mode.eq_ignore_ascii_case("wal") {
        Ok(())
    } else {
        Err(StoreError::WalUnavailable {
            path: path.to_path_buf(),
            mode,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_accepts_only_the_schema_it_was_built_for() {
        let path = Path::new("/var/lib/halosync/halosync.db");
        assert!(check_readable(path, 3, 3).is_ok());
        assert!(matches!(
            check_readable(path, 0, 3),
            Err(StoreError::NotInitialised { .. })
        ));
        let outdated = check_readable(path, 2, 3).unwrap_err();
        assert!(
            matches!(
                outdated,
                StoreError::SchemaOutdated {
                    found: 2,
                    known: 3,
                    ..
                }
            ),
            "{outdated:?}"
        );
        assert!(
            outdated.to_string().contains("halosync db migrate"),
            "{outdated}"
        );
        assert!(matches!(
            check_readable(path, 4, 3),
            Err(StoreError::SchemaTooNew {
                found: 4,
                known: 3,
                ..
            })
        ));
    }

    #[test]
    fn atomically_commits_on_ok_and_rolls_back_on_err() {
        let store = Store::open_in_memory().expect("open");
        let count = |store: &Store| -> i64 {
            store
                .connection()
                .query_row("SELECT count(*) FROM halo_cursors", [], |r| r.get(0))
                .expect("count")
        };
        let agent = |store: &Store, id: i64| -> Result<(), StoreError> {
            store
                .connection()
                .execute(
                    "INSERT INTO agents (agent_id, name, updated_at) VALUES (?1, 'A', '2026-11-29T00:00:00.000Z')",
                    [id],
                )
                .map_err(|e| StoreError::sqlite("test insert", store.path(), e))?;
            store
                .connection()
                .execute(
                    "INSERT INTO halo_cursors (agent_id, scope, last_modified, updated_at)
                     VALUES (?1, 'appointments', '2026-11-29T00:00:00.000Z', '2026-11-29T00:00:00.000Z')",
                    [id],
                )
                .map_err(|e| StoreError::sqlite("test insert", store.path(), e))?;
            Ok(())
        };
        store.atomically(|s| agent(s, 1)).expect("commits");
        assert_eq!(count(&store), 1);
        // The second insert of agent 1 fails after agent 2's rows went in:
        // neither stays.
        let failed: Result<(), StoreError> = store.atomically(|s| {
            agent(s, 2)?;
            agent(s, 1)
        });
        assert!(failed.is_err());
        assert_eq!(count(&store), 1, "rolled back");
        // And the store is usable afterwards (no transaction left open).
        store.atomically(|s| agent(s, 3)).expect("commits again");
        assert_eq!(count(&store), 2);
    }
}
