//! The Graph `event` as halosync reads and writes it: only the properties it
//! syncs, every one optional. Unknown properties are ignored on read, and a
//! write serialises only what is set, so a PATCH changes exactly what the
//! caller filled in.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

/// The single-value extended property that carries the Halo appointment id
/// on every event halosync writes. The GUID is halosync's own property set
/// (never reuse it for anything else); the name says what the value is.
/// Reading it back (`$expand`/`$filter`) rebuilds links lost from the store.
pub const HALO_ID_PROPERTY: &str =
    "String {9b3e6f2a-5c1d-4e8b-a7f0-2d4c6b8e1a35} Name HaloAppointmentId";

/// The zone halosync asks Graph to answer in (`Prefer: outlook.timezone`)
/// and writes `dateTimeTimeZone`s in.
pub const UTC_ZONE: &str = "UTC";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_key: Option<String>,
    /// The version to send as `If-Match`.
    #[serde(
        default,
        rename = "@odata.etag",
        skip_serializing_if = "Option::is_none"
    )]
    pub etag: Option<String>,
    #[serde(default, rename = "iCalUId", skip_serializing_if = "Option::is_none")]
    pub ical_uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series_master_id: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub event_type: Option<EventType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<ItemBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<DateTimeTimeZone>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<DateTimeTimeZone>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_all_day: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_cancelled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitivity: Option<Sensitivity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show_as: Option<ShowAs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attendees: Option<Vec<Attendee>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizer: Option<Recipient>,
    /// False on an attendee's copy of someone else's meeting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_organizer: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_online_meeting: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_meeting_provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_meeting: Option<OnlineMeeting>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence: Option<PatternedRecurrence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_date_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_value_extended_properties: Option<Vec<ExtendedProperty>>,
    /// Set on create so a replayed POST does not make a second event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    /// Present (only) on delta entries for items that left the view.
    #[serde(default, rename = "@removed", skip_serializing_if = "Option::is_none")]
    pub removed: Option<Removed>,
}

impl Event {
    /// The Halo appointment id halosync stamped on this event, when the
    /// property was read (`$expand`) and is a number.
    pub fn halo_id(&self) -> Option<i64> {
        self.single_value_extended_properties
            .as_deref()?
            .iter()
            .find(|p| p.id.eq_ignore_ascii_case(HALO_ID_PROPERTY))
            .and_then(|p| p.value.as_deref())
            .and_then(|v| v.trim().parse().ok())
    }

    /// Stamps the Halo appointment id (for a create or PATCH body).
    pub fn set_halo_id(&mut self, halo_id: i64) {
        let property = ExtendedProperty {
            id: HALO_ID_PROPERTY.to_string(),
            value: Some(halo_id.to_string()),
        };
        let properties = self
            .single_value_extended_properties
            .get_or_insert_default();
        properties.retain(|p| !p.id.eq_ignore_ascii_case(HALO_ID_PROPERTY));
        properties.push(property);
    }

    /// On an attendee's copy of a meeting, the organizer's address
    /// (lower-cased); `None` on the organizer's own events.
    pub fn organizer_of_copy(&self) -> Option<String> {
        if self.is_organizer != Some(false) {
            return None;
        }
        let address = self.organizer.as_ref()?.email_address.address.as_deref()?;
        Some(address.trim().to_ascii_lowercase())
    }

    pub fn start_utc(&self) -> Result<Option<DateTime<Utc>>, DateError> {
        self.start
            .as_ref()
            .map(DateTimeTimeZone::to_utc)
            .transpose()
    }

    pub fn end_utc(&self) -> Result<Option<DateTime<Utc>>, DateError> {
        self.end.as_ref().map(DateTimeTimeZone::to_utc).transpose()
    }

    /// A delta entry that carries only the keys (an occurrence in a delta
    /// page): its subject, body and the rest must be fetched.
    pub fn is_sparse(&self) -> bool {
        self.removed.is_none() && self.subject.is_none() && self.last_modified_date_time.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EventType {
    SingleInstance,
    Occurrence,
    Exception,
    SeriesMaster,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Sensitivity {
    Normal,
    Personal,
    Private,
    Confidential,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ShowAs {
    Free,
    Tentative,
    Busy,
    Oof,
    WorkingElsewhere,
    /// Also what a value newer than this client reads as.
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemBody {
    pub content_type: BodyType,
    #[serde(default)]
    pub content: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BodyType {
    Text,
    Html,
}

/// Graph's `dateTimeTimeZone`: a wall-clock time and the zone it is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DateTimeTimeZone {
    pub date_time: String,
    #[serde(default)]
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    #[error("`{0}` is not a Graph dateTime")]
    DateTime(String),
    #[error(
        "time zone `{0}` is not one halosync can convert (it asks Graph for UTC; an IANA name also works)"
    )]
    Zone(String),
}

impl DateTimeTimeZone {
    /// An instant written the way Graph writes one (`…T13:00:00.0000000`, UTC).
    pub fn utc(at: DateTime<Utc>) -> Self {
        Self {
            // Seven fractional digits (100 ns ticks); chrono has no `%.7f`.
            date_time: format!(
                "{}.{:07}",
                at.format("%Y-%m-%dT%H:%M:%S"),
                at.timestamp_subsec_nanos() / 100
            ),
            time_zone: Some(UTC_ZONE.to_string()),
        }
    }

    /// The instant this denotes. No zone means UTC; an offset in the text
    /// wins over the zone name.
    pub fn to_utc(&self) -> Result<DateTime<Utc>, DateError> {
        let text = self.date_time.trim();
        if let Ok(at) = DateTime::parse_from_rfc3339(text) {
            return Ok(at.with_timezone(&Utc));
        }
        let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
            .map_err(|_| DateError::DateTime(text.to_string()))?;
        let zone = self.time_zone.as_deref().map(str::trim).unwrap_or(UTC_ZONE);
        if zone.is_empty()
            || ["UTC", "Etc/UTC", "GMT", "Z", "tzone://Microsoft/Utc"]
                .iter()
                .any(|utc| utc.eq_ignore_ascii_case(zone))
        {
            return Ok(naive.and_utc());
        }
        let tz: chrono_tz::Tz = zone
            .parse()
            .map_err(|_| DateError::Zone(zone.to_string()))?;
        // A wall-clock time in a DST gap or overlap: take the earliest
        // reading, as Exchange does for the overlap.
        naive
            .and_local_timezone(tz)
            .earliest()
            .map(|at| at.with_timezone(&Utc))
            .ok_or_else(|| DateError::DateTime(format!("{text} does not exist in {zone}")))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_email_address: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailAddress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    pub email_address: EmailAddress,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attendee {
    pub email_address: EmailAddress,
    /// `required`, `optional` or `resource`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub attendee_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ResponseStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OnlineMeeting {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_url: Option<String>,
}

/// `patternedRecurrence`; pattern and range types stay text so a value this
/// client does not know survives a read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatternedRecurrence {
    pub pattern: RecurrencePattern,
    pub range: RecurrenceRange,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecurrencePattern {
    /// `daily`, `weekly`, `absoluteMonthly`, `relativeMonthly`, `absoluteYearly`, `relativeYearly`.
    #[serde(rename = "type")]
    pub pattern_type: String,
    #[serde(default = "one")]
    pub interval: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days_of_week: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day_of_month: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub month: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_day_of_week: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecurrenceRange {
    /// `endDate`, `noEnd` or `numbered`.
    #[serde(rename = "type")]
    pub range_type: String,
    pub start_date: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_occurrences: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence_time_zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtendedProperty {
    pub id: String,
    #[serde(default)]
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// `deleted` or `changed`.
    #[serde(default)]
    pub reason: String,
}

/// `GET /users/{u}`: the fields halosync uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    #[serde(default)]
    pub user_principal_name: Option<String>,
    #[serde(default)]
    pub mail: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn graph_date_times_read_as_utc_in_any_form() {
        let at = |date_time: &str, zone: Option<&str>| {
            DateTimeTimeZone {
                date_time: date_time.into(),
                time_zone: zone.map(Into::into),
            }
            .to_utc()
        };
        let expected = Utc.with_ymd_and_hms(2026, 12, 2, 13, 0, 0).single();
        assert_eq!(
            at("2026-12-02T13:00:00.0000000", Some("UTC")).ok(),
            expected
        );
        assert_eq!(at("2026-12-02T13:00:00", None).ok(), expected);
        assert_eq!(
            at("2026-12-02T14:00:00.0000000", Some("Europe/Berlin")).ok(),
            expected
        );
        assert_eq!(
            at("2026-12-02T13:00:00Z", Some("Pacific Standard Time")).ok(),
            expected
        );
        assert!(matches!(
            at("2026-12-02T13:00:00", Some("Mars/Olympus")),
            Err(DateError::Zone(_))
        ));
        assert!(matches!(at("tomorrow", None), Err(DateError::DateTime(_))));
        let written = DateTimeTimeZone::utc(expected.expect("valid"));
        assert_eq!(written.date_time, "2026-12-02T13:00:00.0000000");
        assert_eq!(written.to_utc().ok(), expected);
    }

    #[test]
    fn unknown_fields_are_tolerated_and_writes_carry_only_what_is_set() {
        let read: Event = serde_json::from_value(serde_json::json!({
            "id": "AAMk1", "@odata.etag": "W/\"x\"", "type": "occurrence",
            "showAs": "somethingNew", "hasAttachments": false, "futureThing": {"a": 1},
            "singleValueExtendedProperties": [{"id": HALO_ID_PROPERTY.to_lowercase(), "value": "417"}]
        }))
        .expect("tolerant read");
        assert_eq!(read.event_type, Some(EventType::Occurrence));
        assert_eq!(read.show_as, Some(ShowAs::Unknown));
        assert_eq!(read.halo_id(), Some(417));
        assert!(read.is_sparse());

        let mut patch = Event {
            subject: Some("Renamed".into()),
            ..Event::default()
        };
        patch.set_halo_id(9);
        patch.set_halo_id(10);
        assert_eq!(
            serde_json::to_value(&patch).expect("serialise"),
            serde_json::json!({"subject": "Renamed",
                "singleValueExtendedProperties": [{"id": HALO_ID_PROPERTY, "value": "10"}]})
        );
    }
}
