//! Opening, owning, crashing, reading alongside and backing up a database.
//!
//! The multi-process tests re-run this test binary (`current_exe`) with
//! `--exact <test>` and an environment variable that makes the test play the
//! child's part, so the second process is real without a helper binary.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failed setup step should fail the test loudly"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use halosync::store::{Store, StoreError};
use rusqlite::{Connection, ErrorCode, params};

const T0: &str = "2026-02-10T00:00:00.000Z";
/// Set in a child process to the name of the test whose child part it plays.
const CHILD_ROLE: &str = "HALOSYNC_STORE_TEST_CHILD";
/// The database the child works on.
const CHILD_DB: &str = "HALOSYNC_STORE_TEST_DB";

/// The database path if this process is the child of `test_name`.
fn child_role(test_name: &str) -> Option<PathBuf> {
    let role = std::env::var(CHILD_ROLE).ok()?;
    (role == test_name).then(|| PathBuf::from(std::env::var_os(CHILD_DB).unwrap()))
}

fn child_command(test_name: &str, db: &Path) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ROLE, test_name)
        .env(CHILD_DB, db)
        .stderr(Stdio::inherit());
    command
}

fn db_in(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("halosync.db")
}

fn insert_agent(conn: &Connection, agent_id: i64) {
    conn.execute(
        "INSERT INTO agents (agent_id, name, mailbox, enabled, updated_at) VALUES (?1, 'Agent', ?2, 1, ?3)",
        params![agent_id, format!("agent{agent_id}@example.com"), T0],
    )
    .unwrap();
}

fn insert_link(conn: &Connection, agent_id: i64, halo_id: i64) -> rusqlite::Result<usize> {
    conn.execute(
        "INSERT INTO links (agent_id, mailbox, halo_id, origin, state, created_at, updated_at)
         VALUES (?1, ?2, ?3, 'halo', 'pending', ?4, ?4)",
        params![
            agent_id,
            format!("agent{agent_id}@example.com"),
            halo_id,
            T0
        ],
    )
}

fn halo_ids(store: &Store) -> Vec<i64> {
    let mut stmt = store
        .connection()
        .prepare("SELECT halo_id FROM links ORDER BY halo_id")
        .unwrap();
    stmt.query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn reopening_keeps_the_version_and_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    {
        let store = Store::open(&db).unwrap();
        insert_agent(store.connection(), 7);
        insert_link(store.connection(), 7, 100).unwrap();
    }
    let store = Store::open(&db).unwrap();
    assert_eq!(
        store.schema_version().unwrap(),
        Store::latest_schema_version()
    );
    assert_eq!(halo_ids(&store), [100]);
    assert!(store.integrity_check().unwrap().is_ok());
}

#[test]
fn a_database_from_a_newer_binary_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let newer = Store::latest_schema_version() + 1;
    Connection::open(&db)
        .unwrap()
        .pragma_update(None, "user_version", newer)
        .unwrap();

    let err = Store::open(&db).unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found, known, .. }
            if found == newer && known == Store::latest_schema_version()),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains(&db.display().to_string()), "{message}");
    assert!(
        message.contains(&format!(
            "created by a newer halosync (schema {newer}, this binary knows {})",
            Store::latest_schema_version()
        )),
        "{message}"
    );
    assert!(
        message.contains("downgrading is not supported"),
        "{message}"
    );

    let raw = Connection::open(&db).unwrap();
    let tables: i64 = raw
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tables, 0, "nothing may be created in a newer database");
    let journal: String = raw
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "delete", "the journal mode must be left alone");
    assert!(matches!(
        Store::open_read_only(&db),
        Err(StoreError::SchemaTooNew { .. })
    ));
}

#[test]
fn another_programs_database_is_not_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("notes.db");
    Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE notes (body TEXT)")
        .unwrap();

    let err = Store::open(&db).unwrap_err();
    assert!(matches!(err, StoreError::NotHalosync { .. }), "{err:?}");
    assert!(err.to_string().contains("notes.db"), "{err}");
    let tables: i64 = Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tables, 1, "no halosync table may be added");
}

#[test]
fn a_missing_directory_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not-created");
    let err = Store::open(missing.join("halosync.db")).unwrap_err();
    assert!(
        matches!(&err, StoreError::MissingDirectory { dir, .. } if *dir == missing),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
    assert!(!missing.exists(), "open must not create directories");
}

#[test]
fn a_second_owner_in_the_same_process_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let first = Store::open(&db).unwrap();
    let err = Store::open(&db).unwrap_err();
    assert!(
        matches!(&err, StoreError::Locked { pid: Some(pid), .. } if *pid == std::process::id()),
        "{err:?}"
    );
    drop(first);
    Store::open(&db).unwrap();
}

#[test]
fn a_second_process_is_refused_until_the_owner_exits() {
    const NAME: &str = "a_second_process_is_refused_until_the_owner_exits";
    if let Some(db) = child_role(NAME) {
        let _store = Store::open(&db).unwrap();
        println!("OWNER READY {}", std::process::id());
        std::io::stdout().flush().unwrap();
        // Hold the database until the parent closes our stdin.
        std::io::stdin().read_to_end(&mut Vec::new()).unwrap();
        return;
    }

    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let mut child = child_command(NAME, &db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let reported_pid: u32 = lines
        .find_map(|line| {
            // libtest may print "test <name> ... " on the same line first.
            line.unwrap()
                .split_once("OWNER READY ")
                .map(|(_, pid)| pid.parse().unwrap())
        })
        .expect("the child exited before opening the store");
    assert_eq!(reported_pid, child.id());

    let err = Store::open(&db).unwrap_err();
    assert!(
        matches!(&err, StoreError::Locked { path, pid } if *path == db && *pid == Some(child.id())),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "database {} is in use by another halosync process (pid {}); stop it first (systemctl stop halosync)",
            db.display(),
            child.id()
        )
    );

    // Status-style readers work beside the owner, and cannot write.
    let reader = Store::open_read_only(&db).unwrap();
    assert_eq!(
        reader.schema_version().unwrap(),
        Store::latest_schema_version()
    );
    let write = reader.connection().execute(
        "INSERT INTO agents (agent_id, name, updated_at) VALUES (1, 'x', ?1)",
        [T0],
    );
    assert!(
        matches!(&write, Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == ErrorCode::ReadOnly),
        "{write:?}"
    );

    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    let _owner = Store::open(&db).unwrap();
    let lock_contents = std::fs::read_to_string(format!("{}.lock", db.display())).unwrap();
    assert_eq!(lock_contents.trim(), std::process::id().to_string());
}

#[cfg(unix)]
#[test]
fn a_crash_mid_transaction_keeps_only_committed_rows() {
    use std::os::unix::process::ExitStatusExt;
    const NAME: &str = "a_crash_mid_transaction_keeps_only_committed_rows";
    const SIGABRT: i32 = 6;
    if let Some(db) = child_role(NAME) {
        let mut store = Store::open(&db).unwrap();
        insert_agent(store.connection(), 7);
        insert_link(store.connection(), 7, 1).unwrap();
        // A tiny page cache makes SQLite spill the uncommitted pages into the
        // WAL, so recovery has written-but-uncommitted frames to discard.
        store
            .connection()
            .pragma_update(None, "cache_size", 10)
            .unwrap();
        let wal = PathBuf::from(format!("{}-wal", db.display()));
        let wal_before = std::fs::metadata(&wal).unwrap().len();
        let _: Result<(), StoreError> = store.transaction(|tx| {
            for halo_id in 2..=1001 {
                insert_link(tx, 7, halo_id).unwrap();
            }
            let wal_after = std::fs::metadata(&wal).unwrap().len();
            println!("UNCOMMITTED wal {wal_before} -> {wal_after}");
            std::io::stdout().flush().unwrap();
            std::process::abort()
        });
        unreachable!("the child aborts inside the transaction");
    }

    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let output = child_command(NAME, &db).output().unwrap();
    assert_eq!(
        output.status.signal(),
        Some(SIGABRT),
        "child did not abort: {:?}",
        output.status
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let (before, after) = stdout
        .lines()
        .find_map(|l| l.split_once("UNCOMMITTED wal "))
        .and_then(|(_, sizes)| sizes.split_once(" -> "))
        .expect("the child never reached the middle of its transaction");
    let (before, after): (u64, u64) = (before.parse().unwrap(), after.parse().unwrap());
    assert!(after > before, "uncommitted pages never reached the WAL");

    let store = Store::open(&db).unwrap();
    let report = store.integrity_check().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems());
    assert_eq!(halo_ids(&store), [1]);
}

#[test]
fn integrity_check_reports_broken_foreign_keys() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let store = Store::open(&db).unwrap();
    // Only a connection that switched enforcement off can write this.
    let raw = Connection::open(&db).unwrap();
    raw.pragma_update(None, "foreign_keys", false).unwrap();
    insert_link(&raw, 99, 1).unwrap();

    let report = store.integrity_check().unwrap();
    assert!(!report.is_ok());
    assert_eq!(
        report.problems(),
        ["links row 1 refers to a missing agents row"]
    );
}

#[test]
fn a_backup_opens_and_passes_the_integrity_check() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(db_in(&dir)).unwrap();
    insert_agent(store.connection(), 7);
    insert_link(store.connection(), 7, 100).unwrap();
    let dest = dir.path().join("backup.db");
    store.backup_to(&dest).unwrap();

    let restored = Store::open(&dest).unwrap();
    assert!(restored.integrity_check().unwrap().is_ok());
    assert_eq!(
        restored.schema_version().unwrap(),
        Store::latest_schema_version()
    );
    assert_eq!(halo_ids(&restored), [100]);
}

#[test]
fn a_backup_never_overwrites_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(db_in(&dir)).unwrap();
    let dest = dir.path().join("backup.db");
    std::fs::write(&dest, b"").unwrap();
    let err = store.backup_to(&dest).unwrap_err();
    assert!(
        matches!(&err, StoreError::BackupTargetExists { dest: d } if *d == dest),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&dest.display().to_string()),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        b"",
        "the file must be left alone"
    );
}

#[test]
fn reading_a_database_that_was_never_created_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let err = Store::open_read_only(&db).unwrap_err();
    assert!(matches!(err, StoreError::NotInitialised { .. }), "{err:?}");
    assert!(err.to_string().contains("not initialised"), "{err}");
    assert!(!db.exists(), "a read-only open must not create the file");

    std::fs::write(&db, b"").unwrap();
    let err = Store::open_read_only(&db).unwrap_err();
    assert!(matches!(err, StoreError::NotInitialised { .. }), "{err:?}");
}
