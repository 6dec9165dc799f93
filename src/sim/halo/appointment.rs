//! Halo's `Appointment` as the simulator stores it, with exactly Halo's
//! property names (a subset of the OpenAPI `Appointment` schema), and the
//! date-time convention Halo uses on the wire.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// A naive UTC date-time as Halo writes it (`2026-02-10T09:00:00`, with
/// fractional seconds only when there are some); "no date" is 1900-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HaloDateTime(pub NaiveDateTime);

impl HaloDateTime {
    pub fn empty() -> Self {
        Self(
            NaiveDate::from_ymd_opt(1900, 1, 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .unwrap_or_default(),
        )
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::empty()
    }

    /// Halo keeps millisecond precision (SQL Server `datetime`-like).
    pub fn from_utc(at: DateTime<Utc>) -> Self {
        let naive = at.naive_utc();
        let millis = naive.and_utc().timestamp_subsec_millis();
        Self(naive.with_nanosecond(millis * 1_000_000).unwrap_or(naive))
    }

    /// Accepts naive UTC (with or without fractional seconds), a trailing `Z`
    /// or a numeric offset (converted to UTC), or a bare date; empty means
    /// "no date".
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.is_empty() {
            return Some(Self::empty());
        }
        if let Ok(with_offset) = DateTime::parse_from_rfc3339(text) {
            return Some(Self(with_offset.naive_utc()));
        }
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
            return Some(Self(naive));
        }
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f") {
            return Some(Self(naive));
        }
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(Self)
    }
}

impl Default for HaloDateTime {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Display for HaloDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%dT%H:%M:%S%.f"))
    }
}

impl Serialize for HaloDateTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HaloDateTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        HaloDateTime::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("Could not convert string to DateTime: {text}"))
        })
    }
}

/// An agent as it appears inside an appointment's `agents` (a `Uname`
/// subset).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppointmentAgent {
    pub id: i32,
    pub name: String,
    pub email: String,
}

/// The appointment fields the simulator models. Fields of Halo's schema it
/// does not model are accepted on input and ignored, as Halo ignores
/// properties it does not know.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Appointment {
    pub id: i32,
    pub subject: String,
    pub start_date: HaloDateTime,
    pub end_date: HaloDateTime,
    pub allday: bool,
    pub agent_id: i32,
    pub agent_name: String,
    pub agents: Vec<AppointmentAgent>,
    pub note: String,
    pub note_html: String,
    pub is_private: bool,
    pub is_task: bool,
    pub colour: String,
    pub appointment_type_id: i32,
    pub appointment_type_name: String,
    pub status: i32,
    pub agent_status: i32,
    pub complete_status: i32,
    pub ticket_id: i32,
    pub client_id: i32,
    pub client_name: String,
    pub site_id: i32,
    pub site_name: String,
    pub user_id: i32,
    pub user_name: String,
    pub online_meeting_url: String,
    pub organizer: i32,
    pub organizer_email: String,
    pub attendees: String,
    pub tolist: String,
    pub cclist: String,
    pub entryid: String,
    pub changekey: String,
    pub exchange_uid: String,
    pub calendar_id: String,
    pub exchangemailboxfqdn: String,
    pub exchangelastmodifieddate: HaloDateTime,
    pub appointment_location: i32,
    pub appointment_location_name: String,
    pub appointment_location_free_text: String,
    #[serde(rename = "_recurringmaster")]
    pub recurringmaster: bool,
    pub recurring_master_id: String,
    pub halo_recurring_master_id: i32,
    pub recurring_desc: String,
    #[serde(rename = "type")]
    pub kind: i32,
    pub reminderminutes: i32,
    pub inform_agents: bool,
    pub inform_user: bool,
    pub last_modified: HaloDateTime,
}

/// Fields of the OpenAPI `Appointment_List` schema (plus `last_modified`,
/// which the newer spec adds to list rows) that the model has: what list rows
/// and a `GET /{id}` without `includedetails` carry.
pub const LIST_FIELDS: &[&str] = &[
    "id",
    "agent_id",
    "start_date",
    "end_date",
    "allday",
    "colour",
    "ticket_id",
    "subject",
    "client_id",
    "client_name",
    "site_id",
    "site_name",
    "user_id",
    "user_name",
    "agent_name",
    "appointment_type_name",
    "complete_status",
    "is_private",
    "is_task",
    "online_meeting_url",
    "organizer",
    "entryid",
    "changekey",
    "attendees",
    "_recurringmaster",
    "recurring_master_id",
    "type",
    "appointment_location",
    "appointment_location_name",
    "appointment_location_free_text",
    "calendar_id",
    "exchangelastmodifieddate",
    "recurring_desc",
    "last_modified",
];

/// Fields a client cannot set: the server owns them.
const SERVER_OWNED: &[&str] = &["id", "last_modified", "agent_name"];

/// Why an appointment in a request body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FieldError(pub String);

impl Appointment {
    /// The full JSON (what `includedetails=true` returns).
    pub fn to_json(&self) -> Value {
        // A struct of strings, numbers and dates always serializes.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The list-row projection.
    pub fn to_list_json(&self) -> Value {
        match self.to_json() {
            Value::Object(mut map) => {
                map.retain(|key, _| LIST_FIELDS.contains(&key.as_str()));
                Value::Object(map)
            }
            other => other,
        }
    }

    /// Applies the properties present in `changes` (a partial update: absent
    /// properties keep their values, `null` resets one to its empty value).
    /// Server-owned and unknown properties are ignored.
    pub fn merged(&self, changes: &Map<String, Value>) -> Result<Appointment, FieldError> {
        let Value::Object(mut current) = self.to_json() else {
            return Err(FieldError("the stored appointment is not an object".into()));
        };
        for (key, value) in changes {
            if SERVER_OWNED.contains(&key.as_str()) || !current.contains_key(key) {
                continue;
            }
            if value.is_null() {
                current.remove(key);
            } else {
                current.insert(key.clone(), value.clone());
            }
        }
        serde_json::from_value(Value::Object(current))
            .map_err(|error| FieldError(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_naive_z_and_offsets_as_utc_and_write_naive() {
        for (input, expected) in [
            ("2026-02-10T09:00:00", "2026-02-10T09:00:00"),
            ("2026-02-10T09:00:00Z", "2026-02-10T09:00:00"),
            ("2026-02-10T10:00:00+01:00", "2026-02-10T09:00:00"),
            ("2026-02-10T09:00:00.250", "2026-02-10T09:00:00.250"),
            ("2026-02-10", "2026-02-10T00:00:00"),
            ("", "1900-01-01T00:00:00"),
        ] {
            let parsed = HaloDateTime::parse(input).expect(input);
            assert_eq!(parsed.to_string(), expected, "{input}");
        }
        assert_eq!(HaloDateTime::parse("next tuesday"), None);
    }

    #[test]
    fn a_partial_update_changes_only_the_given_fields_and_rejects_wrong_types() {
        let original = Appointment {
            id: 7,
            subject: "Site visit".into(),
            note: "bring ladder".into(),
            ..Appointment::default()
        };
        let changes = serde_json::json!({"subject": "Moved visit", "id": 99, "no_such_field": 1, "note": null});
        let updated = original
            .merged(changes.as_object().expect("object"))
            .expect("valid change");
        assert_eq!(updated.id, 7, "the id is the server's");
        assert_eq!(updated.subject, "Moved visit");
        assert_eq!(updated.note, "", "null resets the field");
        let wrong = serde_json::json!({"agent_id": "two"});
        assert!(original.merged(wrong.as_object().expect("object")).is_err());
    }
}
