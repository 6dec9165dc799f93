//! `sync_runs`: one row per run of a scheduled or on-demand job, so an
//! operator can see what ran, when, and how it ended (`halosync status`).
//!
//! A run is inserted as `running` before the job starts and finished as
//! `ok` or `failed`; a tick that found the previous run still going is a
//! `skipped` row. Rows still `running` when the owner opens the database
//! belong to a process that stopped mid-run and are closed as failed.

use chrono::{DateTime, Duration, Utc};
use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use super::{Store, StoreError, db_time};

/// A row id of `sync_runs`.
pub type RunId = i64;

/// How a finished run ended, as `sync_runs.outcome` stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Running,
    Ok,
    Failed,
    Skipped,
}

impl RunOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "running" => Some(Self::Running),
            "ok" => Some(Self::Ok),
            "failed" => Some(Self::Failed),
            "skipped" => Some(Self::Skipped),
            _ => None,
        }
    }
}

/// One row of `sync_runs`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub id: RunId,
    pub job: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: RunOutcome,
    pub stats: Option<Value>,
    pub error: Option<String>,
}

impl Store {
    /// Records that `job` started at `now`; finish it with [`Store::finish_run`].
    pub fn start_run(&self, job: &str, now: DateTime<Utc>) -> Result<RunId, StoreError> {
        self.connection()
            .execute(
                "INSERT INTO sync_runs (job, started_at, outcome) VALUES (?1, ?2, 'running')",
                params![job, db_time(now)],
            )
            .map_err(|e| StoreError::sqlite("recording the start of a job run", self.path(), e))?;
        Ok(self.connection().last_insert_rowid())
    }

    /// Closes a run as `ok` or `failed` with its stats and error.
    pub fn finish_run(
        &self,
        run: RunId,
        outcome: RunOutcome,
        stats: Option<&Value>,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let fail = |e| StoreError::sqlite("recording the end of a job run", self.path(), e);
        // The schema refuses a finish before the start; a clock stepped back
        // between the two must not lose the run's outcome.
        let changed = self
            .connection()
            .execute(
                "UPDATE sync_runs
                 SET outcome = ?2, stats = ?3, error = ?4, finished_at = max(started_at, ?5)
                 WHERE id = ?1 AND outcome = 'running'",
                params![
                    run,
                    outcome.as_str(),
                    stats.map(Value::to_string),
                    error,
                    db_time(now)
                ],
            )
            .map_err(fail)?;
        if changed == 0 {
            return Err(fail(rusqlite::Error::QueryReturnedNoRows));
        }
        Ok(())
    }

    /// Records a tick of `job` that did not run, and why.
    pub fn record_skipped_run(
        &self,
        job: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<RunId, StoreError> {
        let at = db_time(now);
        self.connection()
            .execute(
                "INSERT INTO sync_runs (job, started_at, finished_at, outcome, error)
                 VALUES (?1, ?2, ?2, 'skipped', ?3)",
                params![job, at, reason],
            )
            .map_err(|e| StoreError::sqlite("recording a skipped job run", self.path(), e))?;
        Ok(self.connection().last_insert_rowid())
    }

    /// Closes every run still marked `running` as failed with `reason`.
    /// Only the database's owner may call this, at start-up: any such row
    /// was left by a process that stopped mid-run.
    pub fn close_interrupted_runs(
        &self,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        self.connection()
            .execute(
                "UPDATE sync_runs SET outcome = 'failed', error = ?1,
                     finished_at = max(started_at, ?2)
                 WHERE outcome = 'running'",
                params![reason, db_time(now)],
            )
            .map_err(|e| StoreError::sqlite("closing interrupted job runs", self.path(), e))
    }

    /// The newest run of `job` that was not skipped, if any.
    pub fn last_run(&self, job: &str) -> Result<Option<RunRecord>, StoreError> {
        self.connection()
            .query_row(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM sync_runs
                     WHERE job = ?1 AND outcome <> 'skipped'
                     ORDER BY started_at DESC, id DESC LIMIT 1"
                ),
                [job],
                run_from_row,
            )
            .optional()
            .map_err(|e| StoreError::sqlite("reading the last job run", self.path(), e))
    }

    /// The newest `limit` runs of every job, newest first.
    pub fn recent_runs(&self, limit: u32) -> Result<Vec<RunRecord>, StoreError> {
        let fail = |e| StoreError::sqlite("reading job runs", self.path(), e);
        let mut statement = self
            .connection()
            .prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM sync_runs ORDER BY started_at DESC, id DESC LIMIT ?1"
            ))
            .map_err(fail)?;
        let rows = statement.query_map([limit], run_from_row).map_err(fail)?;
        rows.collect::<Result<_, _>>().map_err(fail)
    }

    /// Deletes finished runs that started more than `retention_days` before
    /// `now`, keeping each job's newest run so `status` can still say when
    /// it last ran. Returns how many were deleted.
    pub fn prune_runs(&self, now: DateTime<Utc>, retention_days: u32) -> Result<usize, StoreError> {
        let cutoff = now - Duration::days(i64::from(retention_days));
        self.connection()
            .execute(
                "DELETE FROM sync_runs
                 WHERE outcome <> 'running' AND started_at < ?1
                   AND id NOT IN (SELECT max(id) FROM sync_runs GROUP BY job)",
                [db_time(cutoff)],
            )
            .map_err(|e| StoreError::sqlite("pruning old job runs", self.path(), e))
    }
}

const RUN_COLUMNS: &str = "id, job, started_at, finished_at, outcome, stats, error";

fn run_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
    let invalid = |column: usize, text: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            column,
            rusqlite::types::Type::Text,
            format!("unexpected value '{text}'").into(),
        )
    };
    let time = |column: usize, text: String| {
        DateTime::parse_from_rfc3339(&text)
            .map(|at| at.with_timezone(&Utc))
            .map_err(|_| invalid(column, &text))
    };
    let outcome: String = row.get(4)?;
    let stats: Option<String> = row.get(5)?;
    Ok(RunRecord {
        id: row.get(0)?,
        job: row.get(1)?,
        started_at: time(2, row.get(2)?)?,
        finished_at: row
            .get::<_, Option<String>>(3)?
            .map(|text| time(3, text))
            .transpose()?,
        outcome: RunOutcome::parse(&outcome).ok_or_else(|| invalid(4, &outcome))?,
        // The schema holds stats to valid JSON.
        stats: stats
            .map(|text| serde_json::from_str(&text).map_err(|_| invalid(5, &text)))
            .transpose()?,
        error: row.get(6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0)
            .single()
            .expect("valid date")
    }

    #[test]
    fn a_run_goes_from_running_to_its_outcome_and_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("r.db")).expect("open");
        let run = store.start_run("pull", at(2, 6)).expect("start");
        assert_eq!(
            store.last_run("pull").expect("last").map(|r| r.outcome),
            Some(RunOutcome::Running)
        );
        let stats = json!({ "created": 2 });
        store
            .finish_run(run, RunOutcome::Ok, Some(&stats), None, at(2, 7))
            .expect("finish");
        store
            .record_skipped_run("pull", "previous run still going", at(2, 8))
            .expect("skip");
        let last = store.last_run("pull").expect("last").expect("a run");
        assert_eq!(last.outcome, RunOutcome::Ok, "skipped ticks are not runs");
        assert_eq!(last.stats, Some(stats));
        assert_eq!(last.finished_at, Some(at(2, 7)));
        assert!(
            store
                .finish_run(run, RunOutcome::Failed, None, Some("again"), at(2, 9))
                .is_err(),
            "a finished run cannot be finished twice"
        );
        assert_eq!(store.recent_runs(10).expect("recent").len(), 2);
    }

    #[test]
    fn interrupted_runs_are_closed_as_failed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("r.db")).expect("open");
        store.start_run("reconcile", at(2, 6)).expect("start");
        // The clock stepped back: the finish still may not precede the start.
        let closed = store
            .close_interrupted_runs("halosync stopped mid-run", at(1, 6))
            .expect("close");
        assert_eq!(closed, 1);
        let run = store.last_run("reconcile").expect("last").expect("a run");
        assert_eq!(run.outcome, RunOutcome::Failed);
        assert_eq!(run.error.as_deref(), Some("halosync stopped mid-run"));
        assert_eq!(run.finished_at, Some(at(2, 6)));
    }
}
