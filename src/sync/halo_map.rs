//! Halo appointments ↔ the neutral [`Appointment`].
//!
//! Reading: times, all-day, subject, plain-text note, location (free text,
//! else the named location, when location sync is on), privacy, the
//! additional agents (as e-mail addresses) and the Teams link.
//!
//! Writing is partial (Halo keeps what a save leaves out): a private copy
//! from Exchange writes its times only, so nothing private reaches Halo and
//! nothing Halo holds is blanked.

use std::collections::BTreeMap;

use crate::config::{AttendeeMode, SyncConfig};
use crate::halo::Appointment as HaloAppointment;
use crate::halo::AppointmentAgent;
use crate::model::Appointment;
use crate::sync::plan::{HaloId, Item};

/// Halo agent ids and their e-mail addresses (lower-case), both ways.
#[derive(Debug, Clone, Default)]
pub struct AgentDirectory {
    emails: BTreeMap<i64, String>,
    ids: BTreeMap<String, i64>,
}

impl AgentDirectory {
    pub fn new(agents: impl IntoIterator<Item = (i64, String)>) -> Self {
        let mut directory = Self::default();
        for (id, email) in agents {
            let email = email.trim().to_ascii_lowercase();
            directory.ids.insert(email.clone(), id);
            directory.emails.insert(id, email);
        }
        directory
    }

    pub fn email(&self, id: i64) -> Option<&str> {
        self.emails.get(&id).map(String::as_str)
    }

    pub fn id(&self, email: &str) -> Option<i64> {
        self.ids.get(&email.trim().to_ascii_lowercase()).copied()
    }
}

/// Mapping settings from `[sync]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HaloMapping {
    pub sync_location: bool,
    /// Additional agents are synced (as Exchange attendees). When they are
    /// not, they are neither read nor written, so an Exchange edit can
    /// never strip an appointment's additional agents.
    pub sync_attendees: bool,
}

impl HaloMapping {
    pub fn from_config(sync: &SyncConfig) -> Self {
        Self {
            sync_location: sync.sync_location,
            sync_attendees: sync.attendees != AttendeeMode::None,
        }
    }
}

impl HaloMapping {
    /// The appointment as an observed item, or `None` for rows halosync
    /// cannot sync (no id, no start or end, end before start).
    pub fn read(&self, row: &HaloAppointment, agents: &AgentDirectory) -> Option<Item<HaloId>> {
        let id = row.id?;
        let (start, end) = (row.start_date?, row.end_date?);
        if end < start {
            return None;
        }
        let location = if self.sync_location {
            row.appointment_location_free_text
                .clone()
                .filter(|l| !l.trim().is_empty())
                .or_else(|| row.appointment_location_name.clone())
        } else {
            None
        };
        let primary = row.agent_id;
        let attendees = row
            .agents
            .iter()
            .flatten()
            .filter(|_| self.sync_attendees)
            .filter(|agent| Some(agent.id) != primary)
            .filter_map(|agent| {
                agent
                    .email
                    .clone()
                    .or_else(|| agents.email(agent.id).map(str::to_string))
            })
            .map(|email| email.trim().to_ascii_lowercase())
            .collect();
        let content = Appointment {
            start,
            end,
            all_day: row.allday.unwrap_or(false),
            subject: row.subject.clone().unwrap_or_default(),
            body: row.note.clone().unwrap_or_default(),
            location,
            private: row.is_private.unwrap_or(false),
            attendees,
            online_meeting_url: row.online_meeting_url.clone(),
        }
        .canonical();
        Some(Item {
            id,
            // Halo has no etag: last_modified is the version.
            version: row
                .last_modified
                .map(|t| t.to_rfc3339())
                .unwrap_or_default(),
            modified: row.last_modified.unwrap_or(start),
            content,
        })
    }

    /// The save that makes Halo appointment `id` (a new one when `None`) of
    /// `agent_id` hold `content`.
    pub fn write(
        &self,
        id: Option<HaloId>,
        agent_id: i64,
        content: &Appointment,
        agents: &AgentDirectory,
    ) -> HaloAppointment {
        let mut row = HaloAppointment {
            id,
            // Named on a create only: Halo resets the additional agents of
            // an update that names the primary agent without them.
            agent_id: id.is_none().then_some(agent_id),
            start_date: Some(content.start),
            end_date: Some(content.end),
            allday: Some(content.all_day),
            is_private: Some(content.private),
            ..HaloAppointment::default()
        };
        if content.private && content.subject.is_empty() && content.body.is_empty() {
            // A private Exchange event: its times only.
            return row;
        }
        row.subject = Some(content.subject.clone());
        row.note = Some(content.body.clone());
        if self.sync_location {
            row.appointment_location_free_text = Some(content.location.clone().unwrap_or_default());
        }
        row.online_meeting_url = content.online_meeting_url.clone();
        if !self.sync_attendees {
            return row;
        }
        let mut with_agents = vec![AppointmentAgent {
            id: agent_id,
            ..AppointmentAgent::default()
        }];
        with_agents.extend(content.attendees.iter().filter_map(|email| {
            agents
                .id(email)
                .filter(|id| *id != agent_id)
                .map(|id| AppointmentAgent {
                    id,
                    ..AppointmentAgent::default()
                })
        }));
        row.agents = Some(with_agents);
        row
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, TimeZone, Utc};

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, hour, 0, 0)
            .single()
            .expect("valid date")
    }

    fn directory() -> AgentDirectory {
        AgentDirectory::new([
            (2, "Leah@Contoso.com".to_string()),
            (3, "amir@contoso.com".to_string()),
        ])
    }

    fn row() -> HaloAppointment {
        HaloAppointment {
            id: Some(41),
            subject: Some("Printer repair ".into()),
            note: Some("Tray 2 jams\r\n".into()),
            start_date: Some(at(13)),
            end_date: Some(at(14)),
            agent_id: Some(2),
            agents: Some(vec![
                AppointmentAgent {
                    id: 2,
                    ..AppointmentAgent::default()
                },
                AppointmentAgent {
                    id: 3,
                    ..AppointmentAgent::default()
                },
            ]),
            appointment_location_name: Some("HQ".into()),
            appointment_location_free_text: Some("Room 4".into()),
            last_modified: Some(at(9)),
            ..HaloAppointment::default()
        }
    }

    #[test]
    fn a_halo_row_reads_as_its_synced_fields() {
        let mapping = HaloMapping {
            sync_location: true,
            sync_attendees: true,
        };
        let item = mapping.read(&row(), &directory()).expect("syncable");
        assert_eq!(item.id, 41);
        assert_eq!(item.modified, at(9));
        assert_eq!(item.content.subject, "Printer repair");
        assert_eq!(item.content.body, "Tray 2 jams");
        assert_eq!(item.content.location.as_deref(), Some("Room 4"));
        assert_eq!(
            item.content.attendees.iter().collect::<Vec<_>>(),
            vec!["amir@contoso.com"],
            "the additional agent, not the appointment's own agent"
        );
        let without_location = HaloMapping {
            sync_location: false,
            sync_attendees: true,
        }
        .read(&row(), &directory())
        .expect("syncable");
        assert_eq!(without_location.content.location, None);
    }

    #[test]
    fn rows_without_times_are_not_synced() {
        let mapping = HaloMapping {
            sync_location: true,
            sync_attendees: true,
        };
        let mut no_end = row();
        no_end.end_date = None;
        assert!(mapping.read(&no_end, &directory()).is_none());
        let mut backwards = row();
        backwards.end_date = Some(at(12));
        assert!(mapping.read(&backwards, &directory()).is_none());
    }

    #[test]
    fn writing_and_reading_back_keeps_the_content() {
        let mapping = HaloMapping {
            sync_location: true,
            sync_attendees: true,
        };
        let original = mapping
            .read(&row(), &directory())
            .expect("syncable")
            .content;
        let mut saved = mapping.write(Some(41), 2, &original, &directory());
        assert_eq!(saved.agent_id, None, "an update never re-assigns");
        assert_eq!(
            mapping.write(None, 2, &original, &directory()).agent_id,
            Some(2)
        );
        // Halo answers a save with the whole row.
        saved.agent_id = Some(2);
        saved.last_modified = Some(at(10));
        let again = mapping.read(&saved, &directory()).expect("syncable");
        assert_eq!(again.content.fingerprint(), original.fingerprint());
    }

    #[test]
    fn a_private_copy_from_exchange_writes_times_only() {
        let mapping = HaloMapping {
            sync_location: true,
            sync_attendees: true,
        };
        let private = Appointment {
            start: at(8),
            end: at(9),
            ..Appointment::default()
        }
        .times_only();
        let saved = mapping.write(Some(41), 2, &private, &directory());
        assert_eq!(
            (saved.start_date, saved.end_date),
            (Some(at(8)), Some(at(9)))
        );
        assert_eq!(saved.is_private, Some(true));
        assert!(
            saved.subject.is_none() && saved.note.is_none(),
            "nothing private reaches Halo"
        );
        assert!(saved.appointment_location_free_text.is_none() && saved.agents.is_none());
    }

    #[test]
    fn additional_agents_are_left_alone_when_invitations_are_off() {
        let quiet = HaloMapping {
            sync_location: true,
            sync_attendees: false,
        };
        let item = quiet.read(&row(), &directory()).expect("syncable");
        assert!(item.content.attendees.is_empty());
        let saved = quiet.write(Some(41), 2, &item.content, &directory());
        assert!(
            saved.agents.is_none(),
            "a save without agents keeps Halo's additional agents"
        );
    }
}
