//! Halo's `Appointment` on the wire, with Halo's exact property names.
//!
//! Every field is optional: list rows carry a subset (`Appointment_List`),
//! and on write an absent field is left unchanged by Halo (updates are
//! partial), so `None` is never serialized. Unknown fields are ignored on
//! read. Dates follow [`super::time`]: naive UTC, 1900-01-01 is `None`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::time;

/// An agent inside an appointment's `agents` list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppointmentAgent {
    pub id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Appointment {
    /// `None` on a write means "create".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Plain-text body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note_html: Option<String>,
    #[serde(with = "time::option", skip_serializing_if = "Option::is_none")]
    pub start_date: Option<DateTime<Utc>>,
    #[serde(with = "time::option", skip_serializing_if = "Option::is_none")]
    pub end_date: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allday: Option<bool>,
    /// The primary agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_name: Option<String>,
    /// Every agent on a multi-agent appointment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agents: Option<Vec<AppointmentAgent>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_private: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_task: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appointment_type_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appointment_type_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appointment_location_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appointment_location_free_text: Option<String>,
    /// The Teams join link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub online_meeting_url: Option<String>,
    /// Extra attendees; Halo does not document the format.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attendees: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<i64>,
    #[serde(with = "time::option", skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<DateTime<Utc>>,
    /// The Exchange/Graph item id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entryid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changekey: Option<String>,
    /// The iCalUId.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange_uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calendar_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchangemailboxfqdn: Option<String>,
    #[serde(with = "time::option", skip_serializing_if = "Option::is_none")]
    pub exchangelastmodifieddate: Option<DateTime<Utc>>,
    #[serde(rename = "_recurringmaster", skip_serializing_if = "Option::is_none")]
    pub recurring_master: Option<bool>,
    /// A string in Halo's schema (probably the Exchange series id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recurring_master_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub halo_recurring_master_id: Option<i64>,
    /// Bypasses Halo's warnings (such as clashes) on save.
    #[serde(rename = "_force", skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_halo_rows_tolerating_unknown_fields_nulls_and_no_dates() {
        let row = json!({
            "id": 42,
            "subject": "Site visit",
            "start_date": "2026-02-10T09:00:00",
            "end_date": "2026-02-10T10:00:00Z",
            "allday": false,
            "agent_id": 7,
            "agents": [{"id": 7, "name": "Ada", "email": "ada@contoso.com", "colour": "#fff"}],
            "last_modified": "2026-02-01T08:30:00.123",
            "exchangelastmodifieddate": "1900-01-01T00:00:00",
            "note": null,
            "_recurringmaster": false,
            "recurring_master_id": "",
            "some_field_halo_added_later": {"nested": true}
        });
        let appointment: Appointment = serde_json::from_value(row).expect("a valid row");
        assert_eq!(appointment.id, Some(42));
        assert_eq!(
            appointment.end_date.map(|d| d.to_rfc3339()),
            Some("2026-02-10T10:00:00+00:00".to_owned())
        );
        assert_eq!(appointment.exchangelastmodifieddate, None);
        assert_eq!(appointment.note, None);
        assert_eq!(appointment.recurring_master, Some(false));
        assert_eq!(appointment.agents.as_deref().map(<[_]>::len), Some(1));
    }

    #[test]
    fn writes_only_the_fields_that_are_set_with_naive_utc_dates() {
        let start = DateTime::parse_from_rfc3339("2026-02-10T10:00:00+01:00")
            .expect("valid")
            .with_timezone(&Utc);
        let update = Appointment {
            id: Some(5),
            start_date: Some(start),
            force: Some(true),
            ..Appointment::default()
        };
        assert_eq!(
            serde_json::to_value(&update).expect("serializes"),
            json!({"id": 5, "start_date": "2026-02-10T09:00:00", "_force": true})
        );
    }
}
