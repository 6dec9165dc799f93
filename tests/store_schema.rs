//! Schema v1: every table exists after migration, and the constraints make
//! the states the sync engine must never reach impossible to write.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failed setup step should fail the test loudly"
)]

use chrono::{TimeZone, Utc};
use halosync::store::{Store, StoreError, db_time};
use rusqlite::{Connection, ErrorCode, ffi, params};

const T0: &str = "2026-02-10T00:00:00.000Z";

fn open_fresh() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("halosync.db")).unwrap();
    (dir, store)
}

fn insert_agent(conn: &Connection, agent_id: i64, mailbox: &str) {
    conn.execute(
        "INSERT INTO agents (agent_id, name, mailbox, enabled, updated_at) VALUES (?1, 'Agent', ?2, 1, ?3)",
        params![agent_id, mailbox, T0],
    )
    .unwrap();
}

fn insert_link(
    conn: &Connection,
    agent_id: i64,
    mailbox: &str,
    halo_id: Option<i64>,
    graph_id: Option<&str>,
) -> rusqlite::Result<usize> {
    conn.execute(
        "INSERT INTO links (agent_id, mailbox, halo_id, graph_id, origin, state, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, 'halo', 'active', ?5, ?5)",
        params![agent_id, mailbox, halo_id, graph_id, T0],
    )
}

/// Asserts that `result` is the constraint violation SQLite reports with `extended_code`.
fn assert_violates<T: std::fmt::Debug>(result: rusqlite::Result<T>, extended_code: i32) {
    match result {
        Err(rusqlite::Error::SqliteFailure(e, message)) => {
            assert_eq!(e.code, ErrorCode::ConstraintViolation, "{message:?}");
            assert_eq!(e.extended_code, extended_code, "{message:?}");
        }
        other => panic!("expected a constraint violation, got {other:?}"),
    }
}

#[test]
fn migrations_create_every_table_on_an_empty_file() {
    let (_dir, store) = open_fresh();
    let mut stmt = store
        .connection()
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap();
    let tables: Vec<String> = stmt
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        tables,
        [
            "agents",
            "delta_cursors",
            "halo_cursors",
            "inbound_requests",
            "links",
            "oauth_tokens",
            "outbound_requests",
            "pending_operations",
            "subscriptions",
            "sync_runs",
            "webhook_queue",
            "webhook_seen",
        ]
    );
    assert_eq!(
        store.schema_version().unwrap(),
        Store::latest_schema_version()
    );
    assert!(Store::latest_schema_version() >= 1);
}

#[test]
fn the_owning_connection_is_durable_and_enforces_foreign_keys() {
    let (_dir, store) = open_fresh();
    let conn = store.connection();
    let pragma_i64 =
        |name: &str| -> i64 { conn.pragma_query_value(None, name, |r| r.get(0)).unwrap() };
    let journal: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
    assert_eq!(pragma_i64("synchronous"), 2, "2 is FULL");
    assert_eq!(pragma_i64("foreign_keys"), 1);
    assert_eq!(pragma_i64("busy_timeout"), 5000);
}

#[test]
fn a_halo_appointment_links_to_at_most_one_event() {
    let (_dir, store) = open_fresh();
    let conn = store.connection();
    insert_agent(conn, 7, "alice@example.com");
    insert_link(conn, 7, "alice@example.com", Some(100), Some("AAMk-1")).unwrap();
    assert_violates(
        insert_link(conn, 7, "alice@example.com", Some(100), Some("AAMk-2")),
        ffi::SQLITE_CONSTRAINT_UNIQUE,
    );
}

#[test]
fn an_event_links_once_per_mailbox_whatever_the_mailbox_case() {
    let (_dir, store) = open_fresh();
    let conn = store.connection();
    insert_agent(conn, 7, "alice@example.com");
    insert_agent(conn, 8, "bob@example.com");
    insert_link(conn, 7, "alice@example.com", Some(100), Some("AAMk-1")).unwrap();
    assert_violates(
        insert_link(conn, 7, "Alice@Example.com", Some(101), Some("AAMk-1")),
        ffi::SQLITE_CONSTRAINT_UNIQUE,
    );
    // The same id in another mailbox is another event.
    insert_link(conn, 8, "bob@example.com", Some(102), Some("AAMk-1")).unwrap();
    // Several links may wait for their Graph create at once.
    insert_link(conn, 7, "alice@example.com", Some(103), None).unwrap();
    insert_link(conn, 7, "alice@example.com", Some(104), None).unwrap();
}

#[test]
fn a_link_needs_an_id_on_at_least_one_side() {
    let (_dir, store) = open_fresh();
    insert_agent(store.connection(), 7, "alice@example.com");
    assert_violates(
        insert_link(store.connection(), 7, "alice@example.com", None, None),
        ffi::SQLITE_CONSTRAINT_CHECK,
    );
}

#[test]
fn a_link_to_an_unknown_agent_is_rejected() {
    let (_dir, store) = open_fresh();
    assert_violates(
        insert_link(store.connection(), 99, "ghost@example.com", Some(1), None),
        ffi::SQLITE_CONSTRAINT_FOREIGNKEY,
    );
}

#[test]
fn enum_columns_reject_values_outside_their_list() {
    let (_dir, store) = open_fresh();
    let conn = store.connection();
    insert_agent(conn, 7, "alice@example.com");
    assert_violates(
        conn.execute(
            "UPDATE agents SET state = 'sleeping' WHERE agent_id = 7",
            [],
        ),
        ffi::SQLITE_CONSTRAINT_CHECK,
    );
    assert_violates(
        conn.execute(
            "INSERT INTO links (agent_id, mailbox, halo_id, origin, state, created_at, updated_at)
             VALUES (7, 'alice@example.com', 1, 'halo', 'gone', ?1, ?1)",
            [T0],
        ),
        ffi::SQLITE_CONSTRAINT_CHECK,
    );
    assert_violates(
        conn.execute(
            "INSERT INTO outbound_requests (at, upstream, method, path, status, duration_ms)
             VALUES (?1, 'smtp', 'GET', '/', 200, 1)",
            [T0],
        ),
        ffi::SQLITE_CONSTRAINT_CHECK,
    );
}

#[test]
fn times_must_be_canonical_utc_so_text_order_is_time_order() {
    let (_dir, store) = open_fresh();
    let conn = store.connection();
    let insert_at = |at: &str| {
        conn.execute(
            "INSERT INTO inbound_requests (at, method, path, status, outcome, duration_ms)
             VALUES (?1, 'POST', '/graph/notifications', 202, 'accepted', 3)",
            [at],
        )
    };
    for bad in [
        "2026-02-10T00:00:00Z",
        "2026-02-10T01:00:00.000+01:00",
        "2026-02-10 00:00:00.000",
    ] {
        assert_violates(insert_at(bad), ffi::SQLITE_CONSTRAINT_CHECK);
    }
    let at = Utc.with_ymd_and_hms(2026, 2, 10, 0, 0, 0).unwrap();
    assert_eq!(db_time(at), T0);
    insert_at(&db_time(at)).unwrap();
}

#[test]
fn a_graph_create_is_journalled_with_exactly_one_transaction_id() {
    let (_dir, store) = open_fresh();
    let conn = store.connection();
    let journal = |side: &str, kind: &str, transaction_id: Option<&str>| {
        conn.execute(
            "INSERT INTO pending_operations (side, kind, transaction_id, payload, created_at, updated_at)
             VALUES (?1, ?2, ?3, '{}', ?4, ?4)",
            params![side, kind, transaction_id, T0],
        )
    };
    journal("graph", "create", Some("tx-1")).unwrap();
    assert_violates(
        journal("graph", "create", Some("tx-1")),
        ffi::SQLITE_CONSTRAINT_UNIQUE,
    );
    assert_violates(
        journal("graph", "create", None),
        ffi::SQLITE_CONSTRAINT_CHECK,
    );
    assert_violates(
        journal("halo", "create", Some("tx-2")),
        ffi::SQLITE_CONSTRAINT_CHECK,
    );
    journal("halo", "update", None).unwrap();
    assert_violates(
        conn.execute(
            "INSERT INTO pending_operations (side, kind, payload, created_at, updated_at)
             VALUES ('halo', 'delete', 'not json', ?1, ?1)",
            [T0],
        ),
        ffi::SQLITE_CONSTRAINT_CHECK,
    );
}

#[test]
fn a_run_is_finished_exactly_when_it_has_left_running() {
    let (_dir, store) = open_fresh();
    let conn = store.connection();
    let run = |outcome: &str, finished_at: Option<&str>| {
        conn.execute(
            "INSERT INTO sync_runs (job, started_at, finished_at, outcome) VALUES ('push', ?1, ?2, ?3)",
            params![T0, finished_at, outcome],
        )
    };
    run("running", None).unwrap();
    run("ok", Some("2026-02-10T00:00:01.000Z")).unwrap();
    assert_violates(run("ok", None), ffi::SQLITE_CONSTRAINT_CHECK);
    assert_violates(
        run("running", Some("2026-02-10T00:00:01.000Z")),
        ffi::SQLITE_CONSTRAINT_CHECK,
    );
    assert_violates(
        run("failed", Some("2026-02-09T23:59:59.000Z")),
        ffi::SQLITE_CONSTRAINT_CHECK,
    );
}

#[test]
fn a_refresh_token_is_stored_with_its_nonce_or_not_at_all() {
    let (_dir, store) = open_fresh();
    let conn = store.connection();
    let token = |subject: &str, nonce: Option<&[u8]>, ciphertext: Option<&[u8]>| {
        conn.execute(
            "INSERT INTO oauth_tokens (subject, connection, nonce, ciphertext, updated_at, state)
             VALUES (?1, 'main', ?2, ?3, ?4, 'ok')",
            params![subject, nonce, ciphertext, T0],
        )
    };
    token("connection:main", Some(b"n"), Some(b"c")).unwrap();
    token("agent:42", None, None).unwrap();
    assert_violates(
        token("agent:43", Some(b"n"), None),
        ffi::SQLITE_CONSTRAINT_CHECK,
    );
    assert_violates(token("agent:4x", None, None), ffi::SQLITE_CONSTRAINT_CHECK);
    assert_violates(
        token("mailbox:alice", None, None),
        ffi::SQLITE_CONSTRAINT_CHECK,
    );
}

#[test]
fn a_failed_transaction_leaves_nothing_behind() {
    let (_dir, mut store) = open_fresh();
    insert_agent(store.connection(), 7, "alice@example.com");
    let result: Result<(), Box<dyn std::error::Error + Send + Sync>> = store.transaction(|tx| {
        insert_link(tx, 7, "alice@example.com", Some(1), None)?;
        insert_link(tx, 7, "alice@example.com", Some(1), None)?; // duplicate halo_id
        Ok(())
    });
    assert!(result.is_err());
    let count_links = |store: &Store| -> i64 {
        store
            .connection()
            .query_row("SELECT count(*) FROM links", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(
        count_links(&store),
        0,
        "the first insert must be rolled back"
    );

    let committed: Result<i64, StoreError> = store.transaction(|tx| {
        insert_link(tx, 7, "alice@example.com", Some(1), None).map_err(|source| {
            StoreError::Sqlite {
                action: "inserting a test link".into(),
                path: "test".into(),
                source,
            }
        })?;
        Ok(tx.last_insert_rowid())
    });
    assert!(committed.unwrap() > 0);
    assert_eq!(count_links(&store), 1);
}
