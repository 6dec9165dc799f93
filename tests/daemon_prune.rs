//! The prune job deletes exactly what is past its retention: request logs
//! and finished job runs older than `[store].request_log_retention_days`
//! (keeping each job's newest run and any run still going), and deleted-link
//! tombstones older than 90 days that no unfinished write still names.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

mod daemon_support;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use halosync::clock::ManualClock;
use halosync::daemon::{self, JobOutcome};
use halosync::http::{RequestRecord, Upstream};
use halosync::store::{RunOutcome, Store, db_time, request_log};
use rusqlite::params;
use serde_json::json;

use daemon_support::*;

fn ids(store: &Store, table: &str) -> Vec<i64> {
    let mut statement = store
        .connection()
        .prepare(&format!("SELECT id FROM {table} ORDER BY id"))
        .unwrap();
    statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn outbound(at: DateTime<Utc>) -> RequestRecord {
    RequestRecord {
        at,
        upstream: Upstream::Graph,
        method: "GET".into(),
        path: "/v1.0/users/leah@contoso.com/calendarView".into(),
        status: Some(200),
        duration_ms: 12,
        mailbox: Some("leah@contoso.com".into()),
        agent_id: Some(2),
        request_id: None,
        error: None,
    }
}

fn inbound(store: &Store, at: DateTime<Utc>) {
    store
        .connection()
        .execute(
            "INSERT INTO inbound_requests (at, method, path, status, outcome, duration_ms)
             VALUES (?1, 'POST', '/graph/notify', 202, 'accepted', 3)",
            [db_time(at)],
        )
        .unwrap();
}

fn run(store: &Store, job: &str, started: DateTime<Utc>, outcome: RunOutcome) -> i64 {
    let id = store.start_run(job, started).unwrap();
    if outcome != RunOutcome::Running {
        store
            .finish_run(id, outcome, Some(&json!({})), None, started)
            .unwrap();
    }
    id
}

fn link(store: &Store, halo_id: i64, state: &str, updated: DateTime<Utc>) -> i64 {
    store
        .connection()
        .execute(
            "INSERT INTO links (agent_id, mailbox, halo_id, origin, state, created_at, updated_at)
             VALUES (2, 'leah@contoso.com', ?1, 'halo', ?2, ?3, ?3)",
            params![halo_id, state, db_time(updated)],
        )
        .unwrap();
    store.connection().last_insert_rowid()
}

#[tokio::test]
async fn prune_deletes_only_what_is_older_than_its_retention() {
    let dir = tempfile::tempdir().unwrap();
    let now = utc(2026, 6, 1, 12, 0, 0);
    let context = context(dir.path(), &[], Arc::new(ManualClock::at(now)));
    assert_eq!(context.config.store.request_log_retention_days, 14);
    // Request logs and runs: the cut-off is 2026-05-18 12:00.
    let just_old = utc(2026, 5, 18, 11, 59, 0);
    let just_new = utc(2026, 5, 18, 12, 1, 0);
    let (kept_runs, kept_tombstones) = {
        let store = context.store.lock().unwrap();
        request_log::insert(
            store.connection(),
            &[outbound(just_old), outbound(just_new)],
        )
        .unwrap();
        inbound(&store, just_old);
        inbound(&store, just_new);

        run(&store, "pull", utc(2026, 5, 1, 0, 0, 0), RunOutcome::Ok);
        run(&store, "pull", just_old, RunOutcome::Failed);
        let pull_recent = run(&store, "pull", just_new, RunOutcome::Ok);
        // Old, but still going: never pruned.
        let push_running = run(
            &store,
            "push",
            utc(2026, 4, 2, 0, 0, 0),
            RunOutcome::Running,
        );
        let push_recent = run(&store, "push", utc(2026, 5, 31, 0, 0, 0), RunOutcome::Ok);
        // Old, but reconcile's newest run: status still needs it.
        let reconcile_last = run(
            &store,
            "reconcile",
            utc(2026, 4, 1, 0, 0, 0),
            RunOutcome::Ok,
        );

        store
            .upsert_agent(
                &halosync::store::AgentRow {
                    agent_id: 2,
                    name: "Leah".into(),
                    email: Some("leah@contoso.com".into()),
                    mailbox: Some("leah@contoso.com".into()),
                    connection: Some("main".into()),
                    enabled: true,
                },
                now,
            )
            .unwrap();
        // Tombstones: the cut-off is 2026-03-03 12:00.
        link(&store, 1, "deleted", utc(2026, 3, 3, 11, 0, 0));
        let recent_tombstone = link(&store, 2, "deleted", utc(2026, 3, 3, 13, 0, 0));
        let old_live_link = link(&store, 3, "active", utc(2026, 1, 1, 0, 0, 0));
        let awaited_tombstone = link(&store, 4, "deleted", utc(2026, 2, 1, 0, 0, 0));
        store
            .connection()
            .execute(
                "INSERT INTO pending_operations (link_id, side, kind, payload, created_at, updated_at)
                 VALUES (?1, 'halo', 'delete', '{}', ?2, ?2)",
                params![awaited_tombstone, db_time(utc(2026, 2, 1, 0, 0, 0))],
            )
            .unwrap();
        (
            vec![pull_recent, push_running, push_recent, reconcile_last],
            vec![recent_tombstone, old_live_link, awaited_tombstone],
        )
    };

    let outcome = daemon::prune(&context).await;

    let JobOutcome::Done { summary, stats } = outcome else {
        panic!("prune failed: {outcome:?}");
    };
    assert_eq!(
        stats,
        json!({
            "outbound_requests": 1,
            "inbound_requests": 1,
            "sync_runs": 2,
            "link_tombstones": 1,
        })
    );
    assert!(summary.contains("older than 14 days"), "{summary}");
    let store = context.store.lock().unwrap();
    let outbound_left = request_log::recent(store.connection(), 10).unwrap();
    assert_eq!(
        outbound_left.iter().map(|r| r.at).collect::<Vec<_>>(),
        [just_new]
    );
    let inbound_left: Vec<String> = store
        .connection()
        .prepare("SELECT at FROM inbound_requests")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(inbound_left, [db_time(just_new)]);
    assert_eq!(ids(&store, "sync_runs"), kept_runs);
    assert_eq!(ids(&store, "links"), kept_tombstones);
    assert!(store.integrity_check().unwrap().is_ok());
}
