//! Versioned schema migrations tracked in `PRAGMA user_version`.
//!
//! Hand-written because rusqlite_migration pins an older rusqlite. Migration N
//! (1-based) takes the schema from version N-1 to N. Released migrations are
//! never edited: a change to the schema is a new entry at the end.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// The SQL of every migration, in order.
pub(super) const MIGRATIONS: &[&str] = &[
    include_str!("schema_v1.sql"),
    include_str!("schema_v2.sql"),
    include_str!("schema_v3.sql"),
];

/// The schema version this binary creates and understands.
pub(super) const LATEST_VERSION: i64 = MIGRATIONS.len() as i64;

/// Reads `PRAGMA user_version`.
pub(super) fn schema_version(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|e| StoreError::sqlite("reading the schema version", path, e))
}

/// Brings the database up to the latest schema.
///
/// Each migration and its user_version bump commit together, so a crash
/// leaves the database at a version it really has. A database from a newer
/// binary is refused before anything is written.
/// Brings the schema up to date; returns the version the file had before.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<i64, StoreError> {
    apply(conn, path, MIGRATIONS)
}

fn apply(conn: &mut Connection, path: &Path, migrations: &[&str]) -> Result<i64, StoreError> {
    let known = migrations.len() as i64;
    let found = schema_version(conn, path)?;
    if found > known {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            known,
        });
    }
    // Version 0 with tables means some other program's database: the path is
    // wrong, and adding our tables to it would only hide that.
    if found == 0 && has_tables(conn, path)? {
        return Err(StoreError::NotHalosync {
            path: path.to_path_buf(),
        });
    }
    // halosync never writes a negative user_version; found is in 0..=known here.
    let applied = usize::try_from(found).unwrap_or(0);
    for (version, sql) in (1..).zip(migrations).skip(applied) {
        let action = format!("migrating the schema to version {version}");
        let fail = |e| StoreError::sqlite(action.clone(), path, e);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        tx.execute_batch(sql).map_err(fail)?;
        tx.pragma_update(None, "user_version", version)
            .map_err(fail)?;
        tx.commit().map_err(fail)?;
    }
    Ok(found)
}

fn has_tables(conn: &Connection, path: &Path) -> Result<bool, StoreError> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table')",
        [],
        |row| row.get(0),
    )
    .map_err(|e| StoreError::sqlite("listing the tables", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: &str = "CREATE TABLE first (id INTEGER PRIMARY KEY) STRICT;";
    const BROKEN: &str =
        "CREATE TABLE second (id INTEGER PRIMARY KEY) STRICT; INSERT INTO missing VALUES (1);";

    fn table_names(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
            .unwrap();
        stmt.query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn a_failing_migration_leaves_the_previous_version_intact() {
        let mut conn = Connection::open_in_memory().unwrap();
        let path = Path::new(":memory:");
        let err = apply(&mut conn, path, &[FIRST, BROKEN]).unwrap_err();
        assert!(
            err.to_string()
                .contains("migrating the schema to version 2"),
            "{err}"
        );
        assert_eq!(schema_version(&conn, path).unwrap(), 1);
        // The half-applied second migration's table must not survive.
        assert_eq!(table_names(&conn), ["first"]);
    }

    #[test]
    fn only_missing_migrations_run() {
        let mut conn = Connection::open_in_memory().unwrap();
        let path = Path::new(":memory:");
        apply(&mut conn, path, &[FIRST]).unwrap();
        // Re-running FIRST would fail with "table first already exists".
        apply(
            &mut conn,
            path,
            &[FIRST, "CREATE TABLE second (id INTEGER) STRICT;"],
        )
        .unwrap();
        assert_eq!(schema_version(&conn, path).unwrap(), 2);
        assert_eq!(table_names(&conn), ["first", "second"]);
    }

    #[test]
    fn a_version_1_database_upgrades_keeping_its_subscriptions() {
        let mut conn = Connection::open_in_memory().unwrap();
        let path = Path::new(":memory:");
        apply(&mut conn, path, &MIGRATIONS[..1]).unwrap();
        conn.execute_batch(
            "INSERT INTO agents (agent_id, name, updated_at) VALUES (2, 'Leah', '2026-01-01T00:00:00.000Z');
             INSERT INTO subscriptions (subscription_id, agent_id, mailbox, connection, resource,
                 client_state_hash, expires_at, created_at, state)
             VALUES ('s1', 2, 'leah@contoso.com', 'main', '/users/leah@contoso.com/events',
                 zeroblob(32), '2026-01-03T00:00:00.000Z', '2026-01-01T00:00:00.000Z', 'active');",
        )
        .unwrap();
        assert_eq!(migrate(&mut conn, path).unwrap(), 1);
        let (id, notified): (String, Option<String>) = conn
            .query_row(
                "SELECT subscription_id, last_notification_at FROM subscriptions",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!((id.as_str(), notified), ("s1", None));
    }

    #[test]
    fn released_migrations_apply_to_an_empty_database() {
        let mut conn = Connection::open_in_memory().unwrap();
        let path = Path::new(":memory:");
        migrate(&mut conn, path).unwrap();
        assert_eq!(schema_version(&conn, path).unwrap(), LATEST_VERSION);
    }
}
