//! `halosync run-job` and `halosync status`: each job runs through the
//! runner and is recorded; an unknown job is a usage error naming the
//! valid ones; a running job is dropped after the grace on an interrupt;
//! status reads the database beside its owner, lists every agent, and exits
//! 3 when one needs a person.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

mod common;
mod daemon_support;

use std::sync::Arc;

use halosync::clock::ManualClock;
use halosync::daemon::{self, JobName, JobOutcome};
use halosync::store::{AgentRow, RunOutcome, Store, db_time};
use rusqlite::params;
use serde_json::json;

use common::{Workspace, run};
use daemon_support::*;

#[tokio::test]
async fn run_job_runs_each_job_through_the_runner_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at(utc(2026, 6, 1, 8, 0, 0)));
    let context = context(dir.path(), &[], clock.clone());
    let (jobs, mut events) = ScriptedJobs::new(clock, []);
    for job in JobName::ALL {
        let outcome = daemon::run_job(&context, jobs.clone(), job, std::future::pending())
            .await
            .unwrap();
        assert_eq!(outcome, done(job.as_str()));
        assert!(matches!(events.try_recv(), Ok(Event::Started(started, _)) if started == job));
        assert_eq!(events.try_recv(), Ok(Event::Finished(job)));
        let last = context
            .store
            .lock()
            .unwrap()
            .last_run(job.as_str())
            .unwrap()
            .unwrap();
        assert_eq!(last.outcome, RunOutcome::Ok, "{job}");
        assert_eq!(
            last.stats,
            Some(json!({ "summary": job.as_str(), "stats": { "by": "script" } }))
        );
    }
}

#[tokio::test(start_paused = true)]
async fn an_interrupted_run_job_asks_the_job_to_stop_and_drops_it_after_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TokioClock::starting_at(utc(2026, 6, 1, 8, 0, 0));
    let context = context(dir.path(), &[], clock.clone());
    let (jobs, mut events) = ScriptedJobs::new(clock, [(JobName::Pull, Script::Hang)]);
    let started = tokio::time::Instant::now();
    let outcome = daemon::run_job(&context, jobs, JobName::Pull, async {})
        .await
        .unwrap();
    assert!(
        matches!(&outcome, JobOutcome::Failed { error } if error.starts_with("interrupted")),
        "{outcome:?}"
    );
    assert_eq!(started.elapsed(), daemon::SHUTDOWN_GRACE);
    assert!(matches!(
        events.try_recv(),
        Ok(Event::Started(JobName::Pull, _))
    ));
    assert_eq!(events.try_recv(), Ok(Event::StopRequested(JobName::Pull)));
    assert_eq!(runs_of(&context.store, JobName::Pull)[0].0, "failed");
}

#[test]
fn run_job_from_the_command_line_runs_prune_and_renew_subscriptions() {
    let workspace = Workspace::new();
    let config = workspace.example_config();
    let prune = run(workspace
        .halosync()
        .args(["run-job", "prune", "--config"])
        .arg(&config));
    let stdout = String::from_utf8_lossy(&prune.stdout);
    assert_eq!(prune.status.code(), Some(0), "{prune:?}");
    assert!(
        stdout.starts_with("prune: ok: deleted 0 outbound"),
        "{stdout}"
    );

    // (The sync jobs need Halo; `tests/daemon_run.rs` runs them against
    // the simulator.)
    let renew = run(workspace
        .halosync()
        .args(["run-job", "renew-subscriptions", "--config"])
        .arg(&config));
    assert_eq!(renew.status.code(), Some(0), "{renew:?}");
    assert!(
        String::from_utf8_lossy(&renew.stdout).contains("webhooks are off"),
        "{renew:?}"
    );

    let store = Store::open_read_only(workspace.path("halosync.db")).unwrap();
    assert_eq!(
        store.last_run("prune").unwrap().unwrap().outcome,
        RunOutcome::Ok
    );
    assert_eq!(
        store
            .last_run("renew-subscriptions")
            .unwrap()
            .unwrap()
            .outcome,
        RunOutcome::Ok
    );
}

#[test]
fn an_unknown_job_is_a_usage_error_that_lists_the_jobs() {
    let workspace = Workspace::new();
    let config = workspace.example_config();
    let output = run(workspace
        .halosync()
        .args(["run-job", "sync", "--config"])
        .arg(&config));
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "unknown job `sync`; the jobs are: pull, push, reconcile, renew-subscriptions, prune"
        ),
        "{stderr}"
    );
    assert!(
        !workspace.path("halosync.db").exists(),
        "nothing was opened"
    );
}

#[test]
fn run_job_is_refused_while_another_process_owns_the_database() {
    let workspace = Workspace::new();
    let config = workspace.example_config();
    let _owner = Store::open(workspace.path("halosync.db")).unwrap();
    let output = run(workspace
        .halosync()
        .args(["run-job", "prune", "--config"])
        .arg(&config));
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("in use by another halosync process (pid "),
        "{stderr}"
    );
}

fn agent(store: &Store, id: i64, name: &str, mailbox: &str) {
    store
        .upsert_agent(
            &AgentRow {
                agent_id: id,
                name: name.into(),
                email: Some(mailbox.into()),
                mailbox: Some(mailbox.into()),
                connection: Some("main".into()),
                enabled: true,
            },
            utc(2026, 6, 1, 7, 0, 0),
        )
        .unwrap();
}

#[test]
fn status_lists_every_agent_and_exits_3_while_one_needs_reauthorization() {
    let workspace = Workspace::new();
    let config = workspace.example_config();
    // The daemon owns the database the whole time: status reads beside it.
    let owner = Store::open(workspace.path("halosync.db")).unwrap();
    agent(&owner, 2, "Leah Fox", "leah@contoso.com");
    agent(&owner, 3, "Sam Ortiz", "sam@contoso.com");
    let conn = owner.connection();
    conn.execute(
        "UPDATE agents SET state = 'reauth_required', last_error = ?1, diagnosis = ?2 WHERE agent_id = 3",
        params![
            "AADSTS700082: the refresh token has expired due to inactivity",
            "Sam must sign in again (halosync connect --agent sam@contoso.com)"
        ],
    )
    .unwrap();
    let t = db_time(utc(2026, 6, 1, 7, 0, 0));
    conn.execute(
        "INSERT INTO links (id, agent_id, mailbox, halo_id, origin, state, created_at, updated_at)
         VALUES (10, 2, 'leah@contoso.com', 41, 'halo', 'conflict', ?1, ?1)",
        [&t],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO pending_operations (link_id, side, kind, payload, created_at, updated_at)
         VALUES (10, 'halo', 'update', '{}', ?1, ?1)",
        [&t],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO subscriptions (subscription_id, agent_id, mailbox, connection, resource,
             client_state_hash, expires_at, created_at, state)
         VALUES ('sub-1', 2, 'leah@contoso.com', 'main', '/users/leah@contoso.com/events',
             zeroblob(32), '2026-06-03T10:00:00.000Z', ?1, 'active')",
        [&t],
    )
    .unwrap();
    let pull = owner.start_run("pull", utc(2026, 6, 1, 7, 55, 0)).unwrap();
    owner
        .finish_run(
            pull,
            RunOutcome::Ok,
            Some(&json!({ "summary": "2 mailboxes, 3 writes", "stats": {} })),
            None,
            utc(2026, 6, 1, 7, 55, 2),
        )
        .unwrap();

    let status = run(workspace
        .halosync()
        .args(["status", "--config"])
        .arg(&config));
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert_eq!(status.status.code(), Some(3), "{status:?}");
    let leah = stdout
        .lines()
        .find(|l| l.starts_with("Leah Fox (#2)"))
        .expect(&stdout);
    for column in [
        "leah@contoso.com",
        "main",
        "ok",
        "1",
        "expires 2026-06-03 10:00:00Z",
    ] {
        assert!(leah.contains(column), "{column} in {leah:?}");
    }
    let sam = stdout
        .lines()
        .find(|l| l.starts_with("Sam Ortiz (#3)"))
        .expect(&stdout);
    assert!(sam.contains("reauth_required"), "{sam}");
    assert!(stdout.contains("  last error: AADSTS700082"), "{stdout}");
    assert!(
        stdout.contains("  what to do: Sam must sign in again"),
        "{stdout}"
    );
    let pull_line = stdout
        .lines()
        .find(|l| l.starts_with("pull "))
        .expect(&stdout);
    assert!(pull_line.contains("2026-06-01 07:55:00Z"), "{pull_line}");
    assert!(
        pull_line.contains("2 mailboxes, 3 writes (took 2.0 s)"),
        "{pull_line}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("push ") && l.contains("never")),
        "{stdout}"
    );
    assert!(
        stdout.contains("needs action: 1 agent(s), 0 job(s)"),
        "{stdout}"
    );

    // Signed in again: nothing needs a person.
    conn.execute(
        "UPDATE agents SET state = 'ok', last_error = NULL, diagnosis = NULL WHERE agent_id = 3",
        [],
    )
    .unwrap();
    let status = run(workspace
        .halosync()
        .args(["status", "--config"])
        .arg(&config));
    assert_eq!(status.status.code(), Some(0), "{status:?}");

    // A run stopped by the mass-deletion guard needs a person too.
    let reconcile = owner
        .start_run("reconcile", utc(2026, 6, 1, 8, 0, 0))
        .unwrap();
    owner
        .finish_run(
            reconcile,
            RunOutcome::Failed,
            Some(&json!({ "needs_operator": true })),
            Some("operator action needed: the mass-deletion guard held 12 deletions"),
            utc(2026, 6, 1, 8, 0, 1),
        )
        .unwrap();
    let status = run(workspace
        .halosync()
        .args(["status", "--config"])
        .arg(&config));
    assert_eq!(status.status.code(), Some(3), "{status:?}");
    assert!(String::from_utf8_lossy(&status.stdout).contains("needs action: 0 agent(s), 1 job(s)"));
}
