//! What Exchange fills in and checks when an event is written: server-owned
//! properties, defaults, time and recurrence validation, Teams join links.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::ApiError;
use super::model::{
    Attendee, AttendeeType, BodyType, Event, EventType, FreeBusyStatus, Importance, ItemBody,
    Location, LocationType, LocationUniqueIdType, OnlineMeetingInfo, OnlineMeetingProvider,
    Recipient, ResponseStatus, ResponseType, Sensitivity, SingleValueExtendedProperty,
};
use super::recurrence;
use super::time::{self, DateError};

/// Properties a client may send but the server owns; ignored on POST/PATCH.
pub(super) const READ_ONLY: &[&str] = &[
    "@odata.context",
    "@odata.type",
    "@odata.etag",
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "iCalUId",
    "type",
    "seriesMasterId",
    "webLink",
    "bodyPreview",
    "isOrganizer",
    "hasAttachments",
    "originalStart",
    "originalStartTimeZone",
    "originalEndTimeZone",
    "cancelledOccurrences",
    "onlineMeetingUrl",
];

pub(super) fn date_error(error: DateError) -> ApiError {
    match error {
        DateError::BadDateTime(value) => ApiError::bad_request(
            "ErrorInvalidRequest",
            format!(
                "'{value}' is not a valid dateTime; expected a value such as 2026-02-10T09:00:00."
            ),
        ),
        DateError::UnknownZone(zone) => ApiError::bad_request(
            "TimeZoneNotSupportedException",
            format!(
                "A valid TimeZone value must be specified. The following TimeZone value is not supported: '{zone}'."
            ),
        ),
    }
}

pub(super) fn new_change_key() -> String {
    STANDARD.encode(Uuid::new_v4().as_bytes())
}

pub(super) fn new_ical_uid() -> String {
    format!(
        "040000008200E00074C5B7101A82E00800000000{}",
        Uuid::new_v4().simple().to_string().to_uppercase()
    )
}

/// Occurrences carry the master's iCalUId with the instance date in bytes
/// 16..20, as Exchange's global object ids do.
pub(super) fn occurrence_ical_uid(master: &str, original: DateTime<Utc>) -> String {
    use chrono::Datelike;
    if master.len() < 40 || !master.is_char_boundary(32) || !master.is_char_boundary(40) {
        return master.to_string();
    }
    format!(
        "{}{:04X}{:02X}{:02X}{}",
        &master[..32],
        original.year(),
        original.month(),
        original.day(),
        &master[40..]
    )
}

pub(super) fn body_preview(body: Option<&ItemBody>) -> String {
    let content = body.and_then(|b| b.content.as_deref()).unwrap_or_default();
    let mut text = String::new();
    let mut in_tag = false;
    for c in content.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed.chars().take(255).collect()
}

/// Parses a POST/PATCH body into an `Event`, refusing properties Graph does
/// not have and ignoring the server-owned ones.
pub(super) fn parse_event_body(raw: &Value) -> Result<(Map<String, Value>, Event), ApiError> {
    let Value::Object(object) = raw else {
        return Err(ApiError::invalid_json());
    };
    let mut writable = object.clone();
    for key in READ_ONLY {
        writable.remove(*key);
    }
    let event: Event = serde_json::from_value(Value::Object(writable.clone()))
        .map_err(|e| ApiError::from_body_error(&e, "microsoft.graph.event"))?;
    Ok((writable, event))
}

/// Applies the properties named in `patch` onto `base`.
pub(super) fn merge(
    base: &Event,
    written: &Map<String, Value>,
    patch: &Event,
) -> Result<Event, ApiError> {
    let mut merged = serde_json::to_value(base).map_err(internal)?;
    let normalized = serde_json::to_value(patch).map_err(internal)?;
    if let Value::Object(target) = &mut merged {
        for key in written.keys() {
            let value = normalized.get(key).cloned().unwrap_or(Value::Null);
            target.insert(key.clone(), value);
        }
    }
    serde_json::from_value(merged)
        .map_err(|e| ApiError::from_body_error(&e, "microsoft.graph.event"))
}

pub(super) fn internal(error: serde_json::Error) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "ErrorInternalServerError",
        format!("The simulator could not process the event: {error}"),
    )
}

/// Fills the server-owned properties of a new event and validates it.
pub(super) fn complete_new(
    mut event: Event,
    owner: Recipient,
    now: DateTime<Utc>,
) -> Result<Event, ApiError> {
    let stamp = time::format_instant(now);
    event.created_date_time = Some(stamp.clone());
    event.last_modified_date_time = Some(stamp);
    event.change_key = Some(new_change_key());
    event.i_cal_uid = Some(new_ical_uid());
    event.categories.get_or_insert_with(Vec::new);
    event.reminder_minutes_before_start.get_or_insert(15);
    event.is_reminder_on.get_or_insert(true);
    event.has_attachments = Some(false);
    event.hide_attendees.get_or_insert(false);
    event.importance.get_or_insert(Importance::Normal);
    event.sensitivity.get_or_insert(Sensitivity::Normal);
    event.is_all_day.get_or_insert(false);
    event.is_cancelled.get_or_insert(false);
    event.is_draft.get_or_insert(false);
    event.response_requested.get_or_insert(true);
    event.show_as.get_or_insert(FreeBusyStatus::Busy);
    event.allow_new_time_proposals.get_or_insert(true);
    event.is_online_meeting.get_or_insert(false);
    event
        .online_meeting_provider
        .get_or_insert(OnlineMeetingProvider::Unknown);
    event.body.get_or_insert(ItemBody {
        content_type: Some(BodyType::Html),
        content: Some(String::new()),
    });
    event.attendees.get_or_insert_with(Vec::new);
    if event.organizer.is_none() {
        event.organizer = Some(owner.clone());
    }
    let own_address = |r: &Recipient| {
        r.email_address
            .as_ref()
            .and_then(|e| e.address.as_deref())
            .is_some_and(|a| {
                owner
                    .email_address
                    .as_ref()
                    .and_then(|o| o.address.as_deref())
                    .is_some_and(|own| own.eq_ignore_ascii_case(a))
            })
    };
    let is_organizer = event.organizer.as_ref().is_some_and(own_address);
    event.is_organizer = Some(is_organizer);
    event.response_status.get_or_insert(ResponseStatus {
        response: Some(if is_organizer {
            ResponseType::Organizer
        } else {
            ResponseType::NotResponded
        }),
        time: Some("0001-01-01T00:00:00Z".into()),
    });
    event.event_type = Some(if event.recurrence.is_some() {
        EventType::SeriesMaster
    } else {
        EventType::SingleInstance
    });
    if event.location.is_none() {
        event.location = Some(Location {
            display_name: Some(String::new()),
            location_type: Some(LocationType::Default),
            unique_id_type: Some(LocationUniqueIdType::Unknown),
            ..Location::default()
        });
        event.locations.get_or_insert_with(Vec::new);
    }
    event.original_start_time_zone = event.start.as_ref().and_then(|s| s.time_zone.clone());
    event.original_end_time_zone = event.end.as_ref().and_then(|e| e.time_zone.clone());
    normalize(&mut event)?;
    Ok(event)
}

pub(super) fn upsert_extended(
    existing: &mut Vec<SingleValueExtendedProperty>,
    props: Vec<SingleValueExtendedProperty>,
) {
    for prop in props {
        match existing
            .iter_mut()
            .find(|p| p.id.eq_ignore_ascii_case(&prop.id))
        {
            Some(slot) => slot.value = prop.value,
            None => existing.push(prop),
        }
    }
}

/// Checks times, zones and recurrence and fills what Graph derives from them.
pub(super) fn normalize(event: &mut Event) -> Result<(), ApiError> {
    let (Some(start), Some(end)) = (event.start.as_mut(), event.end.as_mut()) else {
        return Err(ApiError::bad_request(
            "ErrorInvalidRequest",
            "Your request can't be completed. An event needs both a start and an end.",
        ));
    };
    let start_utc = time::to_utc(start).map_err(date_error)?;
    let end_utc = time::to_utc(end).map_err(date_error)?;
    if end_utc < start_utc {
        return Err(ApiError::bad_request(
            "ErrorInvalidRequest",
            "Your request can't be completed. The event's end is before its start.",
        ));
    }
    if event.is_all_day == Some(true) {
        let midnight = |value: &str| {
            time::parse_naive(value).is_some_and(|n| n.time() == chrono::NaiveTime::MIN)
        };
        if !midnight(&start.date_time)
            || !midnight(&end.date_time)
            || start.time_zone != end.time_zone
            || end_utc == start_utc
        {
            return Err(ApiError::bad_request(
                "ErrorInvalidRequest",
                "Your request can't be completed. An all-day event must start and end at midnight in one time zone.",
            ));
        }
    }
    for slot in [start, end] {
        let naive = time::parse_naive(&slot.date_time).unwrap_or_default();
        slot.date_time = time::format_naive(naive);
        if slot
            .time_zone
            .as_deref()
            .is_none_or(|z| z.trim().is_empty())
        {
            slot.time_zone = Some("UTC".into());
        }
    }
    if let Some(recurrence) = &event.recurrence {
        let zone = recurrence
            .range
            .recurrence_time_zone
            .clone()
            .or_else(|| event.start.as_ref().and_then(|s| s.time_zone.clone()));
        let tz = time::zone_or_utc(zone.as_deref()).map_err(date_error)?;
        let local_start = start_utc.with_timezone(&tz).date_naive();
        recurrence::validate(recurrence, local_start)
            .map_err(|message| ApiError::bad_request("ErrorPropertyValidationFailure", message))?;
    }
    if let Some(body) = &mut event.body {
        body.content_type.get_or_insert(BodyType::Text);
        body.content.get_or_insert_with(String::new);
    }
    event.body_preview = Some(body_preview(event.body.as_ref()));
    if let Some(location) = &mut event.location {
        location.location_type.get_or_insert(LocationType::Default);
        if location.unique_id.is_none()
            && location
                .display_name
                .as_deref()
                .is_some_and(|d| !d.is_empty())
        {
            location.unique_id = location.display_name.clone();
            location.unique_id_type = Some(LocationUniqueIdType::Private);
        }
        location
            .unique_id_type
            .get_or_insert(LocationUniqueIdType::Unknown);
        if event.locations.as_ref().is_none_or(Vec::is_empty)
            && location
                .display_name
                .as_deref()
                .is_some_and(|d| !d.is_empty())
        {
            event.locations = Some(vec![location.clone()]);
        }
    }
    for attendee in event.attendees.iter_mut().flatten() {
        normalize_attendee(attendee);
    }
    if event.is_online_meeting == Some(true) {
        let provider = match event.online_meeting_provider {
            None | Some(OnlineMeetingProvider::Unknown) => OnlineMeetingProvider::TeamsForBusiness,
            Some(other) => other,
        };
        event.online_meeting_provider = Some(provider);
        if event
            .online_meeting
            .as_ref()
            .and_then(|m| m.join_url.as_ref())
            .is_none()
        {
            let thread = Uuid::new_v4().simple().to_string();
            event.online_meeting = Some(OnlineMeetingInfo {
                join_url: Some(format!(
                    "https://teams.microsoft.com/l/meetup-join/19%3ameeting_{thread}%40thread.v2/0"
                )),
                conference_id: Some(format!("{}", Uuid::new_v4().as_u128() % 1_000_000_000)),
                ..OnlineMeetingInfo::default()
            });
        }
    }
    Ok(())
}

pub(super) fn normalize_attendee(attendee: &mut Attendee) {
    attendee.attendee_type.get_or_insert(AttendeeType::Required);
    attendee.status.get_or_insert(ResponseStatus {
        response: Some(ResponseType::None),
        time: Some("0001-01-01T00:00:00Z".into()),
    });
}

/// The email addresses of an event's attendees.
pub(super) fn attendee_addresses(event: &Event) -> Vec<String> {
    event
        .attendees
        .iter()
        .flatten()
        .filter_map(|a| a.email_address.as_ref()?.address.clone())
        .collect()
}
