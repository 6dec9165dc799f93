//! `halosync db ...`, run as the real binary.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

mod common;

use common::{Workspace, run, stderr, stdout};
use halosync::store::Store;

fn db(workspace: &Workspace, args: &[&str]) -> std::process::Output {
    let config = workspace.example_config();
    run(workspace
        .halosync()
        .arg("--config")
        .arg(&config)
        .arg("db")
        .args(args))
}

#[test]
fn migrate_creates_then_reports_current_and_check_passes() {
    let workspace = Workspace::new();
    let db_path = workspace.path("halosync.db");

    let output = db(&workspace, &["check"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("is not initialised"),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains("halosync db migrate"),
        "{}",
        stderr(&output)
    );

    let output = db(&workspace, &["migrate"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let latest = Store::latest_schema_version();
    assert_eq!(
        stdout(&output).trim(),
        format!("{}: created with schema {latest}", db_path.display())
    );
    let output = db(&workspace, &["migrate"]);
    assert_eq!(
        stdout(&output).trim(),
        format!("{}: schema {latest} is current", db_path.display())
    );
    let output = db(&workspace, &["check"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).contains(&format!("ok (schema {latest})")));
}

#[test]
fn a_second_owner_is_refused_with_the_holders_pid_but_readers_still_work() {
    let workspace = Workspace::new();
    assert_eq!(db(&workspace, &["migrate"]).status.code(), Some(0));
    let held = Store::open(workspace.path("halosync.db")).expect("this test owns the database");

    let output = db(&workspace, &["migrate"]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains(&format!(
            "is in use by another halosync process (pid {})",
            std::process::id()
        )),
        "{err}"
    );
    // Read-only commands are safe beside the owner.
    assert_eq!(db(&workspace, &["check"]).status.code(), Some(0));
    let backup = workspace.path("copy.db");
    let output = db(&workspace, &["backup", backup.to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    drop(held);

    let restored = Store::open(&backup).expect("the backup opens");
    assert!(restored.integrity_check().expect("check").is_ok());
    let output = db(&workspace, &["backup", backup.to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("already exists"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn check_lists_broken_references_and_exits_1() {
    let workspace = Workspace::new();
    assert_eq!(db(&workspace, &["migrate"]).status.code(), Some(0));
    {
        // Another tool writing behind halosync's back, with foreign keys off.
        let conn = rusqlite::Connection::open(workspace.path("halosync.db")).expect("open");
        conn.execute_batch(
            "PRAGMA foreign_keys = OFF;
             INSERT INTO links (agent_id, mailbox, halo_id, origin, state, created_at, updated_at)
             VALUES (4242, 'ghost@contoso.com', 17, 'halo', 'active',
                     '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z');",
        )
        .expect("insert an orphan link");
    }
    let output = db(&workspace, &["check"]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let err = stderr(&output);
    assert!(err.contains("1 problem(s) found"), "{err}");
    assert!(
        err.contains("links row 1 refers to a missing agents row"),
        "{err}"
    );
}

#[test]
fn a_bad_config_stops_db_commands_before_they_touch_anything() {
    let workspace = Workspace::new();
    let config = workspace.write_private("bad.toml", "[halo]\nbase_url = 1\n");
    let output = run(workspace
        .halosync()
        .arg("-c")
        .arg(&config)
        .args(["db", "migrate"]));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("halo.base_url"),
        "{}",
        stderr(&output)
    );
    assert!(!workspace.path("halosync.db").exists());
}
