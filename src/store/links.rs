//! Agents and the links between Halo appointments and Exchange events.
//!
//! A removed link is kept as a tombstone (`state = 'deleted'`) for the
//! record; a later link for the same item replaces its tombstone.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{Store, StoreError, db_time};
use crate::model::Fingerprint;
use crate::sync::apply::Origin;
use crate::sync::plan::{GraphId, HaloId, Link, LinkId, Synced};

/// An agent as halosync knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    pub agent_id: i64,
    pub name: String,
    pub email: Option<String>,
    pub mailbox: Option<String>,
    pub connection: Option<String>,
    pub enabled: bool,
}

fn side<Id>(
    id: Option<Id>,
    version: Option<String>,
    fingerprint: Option<String>,
) -> Option<Synced<Id>> {
    Some(Synced {
        id: id?,
        version: version?,
        fingerprint: Fingerprint::from_hex(&fingerprint?)?,
    })
}

/// A link (live or removed) that records a meeting's iCalUId.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingLink {
    pub link: LinkId,
    pub mailbox: String,
    /// A live link naming no event yet: the agent's copy of a meeting
    /// created in another calendar had not arrived when it was saved.
    pub awaiting_copy: bool,
}

/// How an agent's calendar sync stands (`agents.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentHealth {
    Ok,
    /// The sign-in behind the agent's connection stopped working.
    ReauthRequired,
    /// The mailbox cannot be reached (no access, unlicensed, not found).
    MailboxUnavailable,
    Error,
}

impl AgentHealth {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::ReauthRequired => "reauth_required",
            Self::MailboxUnavailable => "mailbox_unavailable",
            Self::Error => "error",
        }
    }
}

impl Store {
    /// Records how the agent's last sync went (shown by `status`).
    pub fn set_agent_health(
        &self,
        agent_id: i64,
        health: AgentHealth,
        last_error: Option<&str>,
        diagnosis: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.connection()
            .execute(
                "UPDATE agents SET state = ?2, last_error = ?3, diagnosis = ?4, updated_at = ?5
                 WHERE agent_id = ?1",
                params![
                    agent_id,
                    health.as_str(),
                    last_error,
                    diagnosis,
                    db_time(now)
                ],
            )
            .map_err(|e| StoreError::sqlite("saving an agent's sync state", self.path(), e))?;
        Ok(())
    }

    /// Adds or refreshes an agent (from Halo's agent list).
    pub fn upsert_agent(&self, agent: &AgentRow, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.connection()
            .execute(
                "INSERT INTO agents (agent_id, name, email, mailbox, connection, enabled, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (agent_id) DO UPDATE SET
                     name = excluded.name, email = excluded.email, mailbox = excluded.mailbox,
                     connection = excluded.connection, enabled = excluded.enabled,
                     updated_at = excluded.updated_at",
                params![
                    agent.agent_id,
                    agent.name,
                    agent.email,
                    agent.mailbox,
                    agent.connection,
                    agent.enabled,
                    db_time(now)
                ],
            )
            .map_err(|e| StoreError::sqlite("saving an agent", self.path(), e))?;
        Ok(())
    }

    /// The live links of one mailbox.
    pub fn links(&self, mailbox: &str) -> Result<Vec<Link>, StoreError> {
        let fail = |e| StoreError::sqlite("reading links", self.path(), e);
        let mut statement = self
            .connection()
            .prepare_cached(
                "SELECT id, halo_id, halo_version, halo_fingerprint,
                        graph_id, graph_version, graph_fingerprint
                 FROM links WHERE mailbox = ?1 AND state <> 'deleted' ORDER BY id",
            )
            .map_err(fail)?;
        let rows = statement
            .query_map([mailbox], |row| {
                Ok(Link {
                    id: row.get(0)?,
                    halo: side(row.get(1)?, row.get(2)?, row.get(3)?),
                    graph: side(row.get(4)?, row.get(5)?, row.get(6)?),
                })
            })
            .map_err(fail)?;
        rows.collect::<Result<_, _>>().map_err(fail)
    }

    /// Sets both sides of a link, or creates one for `agent_id` in `mailbox`.
    #[allow(clippy::too_many_arguments)] // one row's columns
    pub fn save_link(
        &self,
        agent_id: i64,
        mailbox: &str,
        link: Option<LinkId>,
        halo: Option<&Synced<HaloId>>,
        graph: Option<&Synced<GraphId>>,
        origin: Origin,
        now: DateTime<Utc>,
    ) -> Result<LinkId, StoreError> {
        let fail = |e| StoreError::sqlite("saving a link", self.path(), e);
        let conn = self.connection();
        let halo_cols = (
            halo.map(|h| h.id),
            halo.map(|h| h.version.clone()),
            halo.map(|h| h.fingerprint.to_string()),
        );
        let graph_cols = (
            graph.map(|g| g.id.clone()),
            graph.map(|g| g.version.clone()),
            graph.map(|g| g.fingerprint.to_string()),
        );
        // A tombstone holding the same item's id gives way to the live link.
        conn.execute(
            "DELETE FROM links WHERE state = 'deleted' AND id IS NOT ?1
               AND (halo_id = ?2 OR (mailbox = ?3 AND graph_id = ?4))",
            params![link, halo_cols.0, mailbox, graph_cols.0],
        )
        .map_err(fail)?;
        if let Some(id) = link {
            conn.execute(
                "UPDATE links SET halo_id = ?2, halo_version = ?3, halo_fingerprint = ?4,
                     graph_id = ?5, graph_version = ?6, graph_fingerprint = ?7,
                     state = 'active', updated_at = ?8
                 WHERE id = ?1",
                params![
                    id,
                    halo_cols.0,
                    halo_cols.1,
                    halo_cols.2,
                    graph_cols.0,
                    graph_cols.1,
                    graph_cols.2,
                    db_time(now)
                ],
            )
            .map_err(fail)?;
            return Ok(id);
        }
        let origin = match origin {
            Origin::Halo => "halo",
            Origin::Exchange => "exchange",
            Origin::Matched => "import",
        };
        conn.execute(
            "INSERT INTO links (agent_id, mailbox, halo_id, halo_version, halo_fingerprint,
                 graph_id, graph_version, graph_fingerprint, origin, state, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'active', ?10, ?10)",
            params![
                agent_id,
                mailbox,
                halo_cols.0,
                halo_cols.1,
                halo_cols.2,
                graph_cols.0,
                graph_cols.1,
                graph_cols.2,
                origin,
                db_time(now)
            ],
        )
        .map_err(fail)?;
        Ok(conn.last_insert_rowid())
    }

    /// Records an Exchange event's iCalUId and series master on its link.
    pub fn set_link_identity(
        &self,
        link: LinkId,
        ical_uid: Option<&str>,
        series_master_id: Option<&str>,
    ) -> Result<(), StoreError> {
        self.connection()
            .execute(
                "UPDATE links SET ical_uid = COALESCE(?2, ical_uid),
                     series_master_id = COALESCE(?3, series_master_id)
                 WHERE id = ?1",
                params![link, ical_uid, series_master_id],
            )
            .map_err(|e| StoreError::sqlite("saving a link's Exchange ids", self.path(), e))?;
        Ok(())
    }

    /// The links, live or removed, in any mailbox, that record the meeting
    /// `ical_uid`.
    pub fn links_of_meeting(&self, ical_uid: &str) -> Result<Vec<MeetingLink>, StoreError> {
        let fail = |e| StoreError::sqlite("reading the links of a meeting", self.path(), e);
        let mut statement = self
            .connection()
            .prepare_cached(
                "SELECT id, mailbox, graph_id IS NULL AND state <> 'deleted' FROM links
                 WHERE ical_uid = ?1 ORDER BY id",
            )
            .map_err(fail)?;
        let rows = statement
            .query_map([ical_uid], |row| {
                Ok(MeetingLink {
                    link: row.get(0)?,
                    mailbox: row.get(1)?,
                    awaiting_copy: row.get(2)?,
                })
            })
            .map_err(fail)?;
        rows.collect::<Result<_, _>>().map_err(fail)
    }

    /// Marks a link removed (both items are gone, or one was deleted with
    /// its partner).
    pub fn remove_link(&self, link: LinkId, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.connection()
            .execute(
                "UPDATE links SET state = 'deleted', updated_at = ?2 WHERE id = ?1",
                params![link, db_time(now)],
            )
            .map_err(|e| StoreError::sqlite("removing a link", self.path(), e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Appointment;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 6, 0, 0)
            .single()
            .expect("valid date")
    }

    fn synced<Id>(id: Id, version: &str, subject: &str) -> Synced<Id> {
        Synced {
            id,
            version: version.into(),
            fingerprint: Appointment {
                subject: subject.into(),
                ..Appointment::default()
            }
            .fingerprint(),
        }
    }

    #[test]
    fn links_round_trip_update_and_give_way_when_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("l.db")).expect("open");
        store
            .upsert_agent(
                &AgentRow {
                    agent_id: 2,
                    name: "Leah".into(),
                    email: Some("leah@contoso.com".into()),
                    mailbox: Some("leah@contoso.com".into()),
                    connection: Some("main".into()),
                    enabled: true,
                },
                now(),
            )
            .expect("agent");
        let halo = synced(41, "2026-11-29T05:00:00", "Audit");
        let graph = synced("AAMkE1".to_string(), "ck1", "Audit");
        let id = store
            .save_link(
                2,
                "leah@contoso.com",
                None,
                Some(&halo),
                Some(&graph),
                Origin::Halo,
                now(),
            )
            .expect("insert");
        assert_eq!(
            store.links("LEAH@contoso.com").expect("links"),
            vec![Link {
                id,
                halo: Some(halo.clone()),
                graph: Some(graph.clone())
            }],
            "mailboxes compare without case"
        );

        let moved = synced("AAMkE1".to_string(), "ck2", "Audit (moved)");
        store
            .save_link(
                2,
                "leah@contoso.com",
                Some(id),
                Some(&halo),
                Some(&moved),
                Origin::Matched,
                now(),
            )
            .expect("update");
        assert_eq!(
            store.links("leah@contoso.com").expect("links")[0].graph,
            Some(moved)
        );

        store
            .set_link_identity(id, Some("U1"), None)
            .expect("identity");
        assert_eq!(
            store.links_of_meeting("U1").expect("meeting"),
            vec![MeetingLink {
                link: id,
                mailbox: "leah@contoso.com".into(),
                awaiting_copy: false
            }]
        );
        assert!(store.links_of_meeting("U2").expect("none").is_empty());

        store.remove_link(id, now()).expect("remove");
        assert_eq!(
            store.links_of_meeting("U1").expect("meeting").len(),
            1,
            "a removed link still names its meeting"
        );
        assert!(store.links("leah@contoso.com").expect("links").is_empty());
        // The same appointment linked again replaces the tombstone.
        let again = store
            .save_link(
                2,
                "leah@contoso.com",
                None,
                Some(&halo),
                None,
                Origin::Halo,
                now(),
            )
            .expect("relink");
        let live = store.links("leah@contoso.com").expect("links");
        assert_eq!(live.iter().map(|l| l.id).collect::<Vec<_>>(), vec![again]);
        // A link with no event yet waits for its meeting's copy.
        store
            .set_link_identity(again, Some("U3"), None)
            .expect("identity");
        assert!(store.links_of_meeting("U3").expect("meeting")[0].awaiting_copy);
        assert!(store.integrity_check().expect("check").is_ok());
    }
}
