//! The intent journal: a write is recorded here before it is sent and
//! removed once its outcome is in the links, so a crash in between leaves a
//! row the next run replays instead of a write nobody remembers.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use super::{Store, StoreError, db_time};
use crate::sync::plan::{LinkId, Side};

/// What kind of write an intent is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    Create,
    Update,
    Delete,
}

impl WriteKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "create" => Some(Self::Create),
            "update" => Some(Self::Update),
            "delete" => Some(Self::Delete),
            _ => None,
        }
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Halo => "halo",
        Side::Exchange => "graph",
    }
}

/// A write that was started and not yet confirmed.
#[derive(Debug, Clone, PartialEq)]
pub struct Intent {
    pub id: i64,
    pub link: Option<LinkId>,
    pub side: Side,
    pub kind: WriteKind,
    /// The Graph `transactionId` of a create, so a replay returns the event
    /// the first attempt made instead of a second one.
    pub transaction_id: Option<String>,
    pub payload: Value,
    pub attempts: i64,
    pub last_error: Option<String>,
}

impl Store {
    /// Records a write about to be sent. Recording a Graph create again
    /// (same `transaction_id`, e.g. on a replay) returns the existing row.
    pub fn record_intent(
        &self,
        link: Option<LinkId>,
        side: Side,
        kind: WriteKind,
        transaction_id: Option<&str>,
        payload: &Value,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let fail = |e| StoreError::sqlite("recording a write intent", self.path(), e);
        let conn = self.connection();
        if let Some(existing) = transaction_id {
            let found: Option<i64> = conn
                .query_row(
                    "SELECT id FROM pending_operations WHERE transaction_id = ?1",
                    [existing],
                    |row| row.get(0),
                )
                .optional()
                .map_err(fail)?;
            if let Some(id) = found {
                return Ok(id);
            }
        }
        conn.execute(
            "INSERT INTO pending_operations (link_id, side, kind, transaction_id, payload, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            params![
                link,
                side_name(side),
                kind.as_str(),
                transaction_id,
                payload.to_string(),
                db_time(now)
            ],
        )
        .map_err(fail)?;
        Ok(conn.last_insert_rowid())
    }

    /// Every write not yet confirmed, oldest first.
    pub fn pending_intents(&self) -> Result<Vec<Intent>, StoreError> {
        let fail = |e| StoreError::sqlite("reading write intents", self.path(), e);
        let mut statement = self
            .connection()
            .prepare_cached(
                "SELECT id, link_id, side, kind, transaction_id, payload, attempts, last_error
                 FROM pending_operations ORDER BY id",
            )
            .map_err(fail)?;
        let rows = statement
            .query_map([], |row| {
                let side: String = row.get(2)?;
                let kind: String = row.get(3)?;
                let payload: String = row.get(5)?;
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, Option<i64>>(1)?,
                    side,
                    kind,
                    row.get::<_, Option<String>>(4)?,
                    payload,
                    row.get::<_, i64>(6)?,
                    row.get::<_, Option<String>>(7)?,
                ))
            })
            .map_err(fail)?;
        let mut intents = Vec::new();
        for row in rows {
            let (id, link, side, kind, transaction_id, payload, attempts, last_error) =
                row.map_err(fail)?;
            // The schema's CHECKs admit only these values and valid JSON.
            intents.push(Intent {
                id,
                link,
                side: if side == "halo" {
                    Side::Halo
                } else {
                    Side::Exchange
                },
                kind: WriteKind::parse(&kind).unwrap_or(WriteKind::Update),
                transaction_id,
                payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
                attempts,
                last_error,
            });
        }
        Ok(intents)
    }

    /// Counts an attempt of intent `id`, with the error it ended in.
    pub fn note_intent_attempt(
        &self,
        id: i64,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.connection()
            .execute(
                "UPDATE pending_operations SET attempts = attempts + 1, last_error = ?2, updated_at = ?3
                 WHERE id = ?1",
                params![id, error, db_time(now)],
            )
            .map_err(|e| StoreError::sqlite("counting a write attempt", self.path(), e))?;
        Ok(())
    }

    /// The write's outcome is recorded in its link: the intent is done.
    pub fn finish_intent(&self, id: i64) -> Result<(), StoreError> {
        self.connection()
            .execute("DELETE FROM pending_operations WHERE id = ?1", [id])
            .map_err(|e| StoreError::sqlite("finishing a write intent", self.path(), e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 7, 0, 0)
            .single()
            .expect("valid date")
    }

    #[test]
    fn an_intent_survives_until_finished_and_a_replayed_create_is_not_recorded_twice() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("j.db")).expect("open");
        let payload = json!({"subject": "Audit"});
        let first = store
            .record_intent(
                None,
                Side::Exchange,
                WriteKind::Create,
                Some("tx-1"),
                &payload,
                now(),
            )
            .expect("record");
        let replay = store
            .record_intent(
                None,
                Side::Exchange,
                WriteKind::Create,
                Some("tx-1"),
                &payload,
                now(),
            )
            .expect("record again");
        assert_eq!(first, replay);
        let update = store
            .record_intent(
                None,
                Side::Halo,
                WriteKind::Update,
                None,
                &json!({"id": 41}),
                now(),
            )
            .expect("record");
        store
            .note_intent_attempt(first, Some("HTTP 503"), now())
            .expect("attempt");

        // Reopening (as after a crash) finds both, oldest first.
        drop(store);
        let store = Store::open(dir.path().join("j.db")).expect("reopen");
        let pending = store.pending_intents().expect("pending");
        assert_eq!(pending.len(), 2);
        assert_eq!(pending[0].transaction_id.as_deref(), Some("tx-1"));
        assert_eq!(
            (pending[0].attempts, pending[0].last_error.as_deref()),
            (1, Some("HTTP 503"))
        );
        assert_eq!(pending[0].payload, payload);
        assert_eq!(
            (pending[1].side, pending[1].kind),
            (Side::Halo, WriteKind::Update)
        );

        store.finish_intent(first).expect("finish");
        store.finish_intent(update).expect("finish");
        assert!(store.pending_intents().expect("pending").is_empty());
    }

    #[test]
    fn only_a_graph_create_carries_a_transaction_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("j.db")).expect("open");
        let refused = store.record_intent(
            None,
            Side::Halo,
            WriteKind::Create,
            Some("tx-2"),
            &json!({}),
            now(),
        );
        assert!(
            refused.is_err(),
            "the schema refuses a transactionId on a Halo write"
        );
    }
}
