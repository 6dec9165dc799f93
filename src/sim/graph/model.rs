//! Graph's own wire types for the parts of the `event`, `subscription` and
//! change-notification resources the simulator serves.
//!
//! Property names follow the v1.0 CSDL exactly (see
//! `shared/fixtures/graph/schemas/`). Every struct denies unknown fields, so a
//! client sending a property Graph does not have gets an error instead of
//! having it silently kept. Enums read case-insensitively (Graph accepts
//! `"HTML"` for `html`) and always write Graph's spelling.

use serde::{Deserialize, Serialize};

/// Declares a Graph enum: written with Graph's spelling, read ignoring case.
macro_rules! graph_enum {
    ($(#[$meta:meta])* $name:ident ($graph_name:literal) { $($variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [&'static str] = &[$($wire),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $wire),+ }
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                $(if raw.eq_ignore_ascii_case($wire) { return Ok(Self::$variant); })+
                Err(serde::de::Error::custom(format!(
                    "Cannot convert the literal '{raw}' to the expected type '{}'",
                    $graph_name
                )))
            }
        }
    };
}

graph_enum!(Sensitivity("microsoft.graph.sensitivity") {
    Normal => "normal", Personal => "personal", Private => "private", Confidential => "confidential",
});
graph_enum!(FreeBusyStatus("microsoft.graph.freeBusyStatus") {
    Unknown => "unknown", Free => "free", Tentative => "tentative", Busy => "busy", Oof => "oof",
    WorkingElsewhere => "workingElsewhere",
});
graph_enum!(EventType("microsoft.graph.eventType") {
    SingleInstance => "singleInstance", Occurrence => "occurrence", Exception => "exception",
    SeriesMaster => "seriesMaster",
});
graph_enum!(OnlineMeetingProvider("microsoft.graph.onlineMeetingProviderType") {
    Unknown => "unknown", SkypeForBusiness => "skypeForBusiness", SkypeForConsumer => "skypeForConsumer",
    TeamsForBusiness => "teamsForBusiness",
});
graph_enum!(AttendeeType("microsoft.graph.attendeeType") {
    Required => "required", Optional => "optional", Resource => "resource",
});
graph_enum!(ResponseType("microsoft.graph.responseType") {
    None => "none", Organizer => "organizer", TentativelyAccepted => "tentativelyAccepted",
    Accepted => "accepted", Declined => "declined", NotResponded => "notResponded",
});
graph_enum!(BodyType("microsoft.graph.bodyType") { Text => "text", Html => "html" });
graph_enum!(Importance("microsoft.graph.importance") { Low => "low", Normal => "normal", High => "high" });
graph_enum!(RecurrencePatternType("microsoft.graph.recurrencePatternType") {
    Daily => "daily", Weekly => "weekly", AbsoluteMonthly => "absoluteMonthly",
    RelativeMonthly => "relativeMonthly", AbsoluteYearly => "absoluteYearly", RelativeYearly => "relativeYearly",
});
graph_enum!(RecurrenceRangeType("microsoft.graph.recurrenceRangeType") {
    EndDate => "endDate", NoEnd => "noEnd", Numbered => "numbered",
});
graph_enum!(DayOfWeek("microsoft.graph.dayOfWeek") {
    Sunday => "sunday", Monday => "monday", Tuesday => "tuesday", Wednesday => "wednesday",
    Thursday => "thursday", Friday => "friday", Saturday => "saturday",
});
graph_enum!(WeekIndex("microsoft.graph.weekIndex") {
    First => "first", Second => "second", Third => "third", Fourth => "fourth", Last => "last",
});
graph_enum!(LocationType("microsoft.graph.locationType") {
    Default => "default", ConferenceRoom => "conferenceRoom", HomeAddress => "homeAddress",
    BusinessAddress => "businessAddress", GeoCoordinates => "geoCoordinates", StreetAddress => "streetAddress",
    Hotel => "hotel", Restaurant => "restaurant", LocalBusiness => "localBusiness", PostalAddress => "postalAddress",
});
graph_enum!(LocationUniqueIdType("microsoft.graph.locationUniqueIdType") {
    Unknown => "unknown", LocationStore => "locationStore", Directory => "directory", Private => "private",
    Bing => "bing",
});
graph_enum!(ChangeType("microsoft.graph.changeType") {
    Created => "created", Updated => "updated", Deleted => "deleted",
});
graph_enum!(LifecycleEventType("microsoft.graph.lifecycleEventType") {
    Missed => "missed", SubscriptionRemoved => "subscriptionRemoved",
    ReauthorizationRequired => "reauthorizationRequired",
});
graph_enum!(ExchangeIdFormat("microsoft.graph.exchangeIdFormat") {
    EntryId => "entryId", EwsId => "ewsId", ImmutableEntryId => "immutableEntryId", RestId => "restId",
    RestImmutableEntryId => "restImmutableEntryId",
});
graph_enum!(PhoneType("microsoft.graph.phoneType") {
    Home => "home", Business => "business", Mobile => "mobile", Other => "other", Assistant => "assistant",
    HomeFax => "homeFax", BusinessFax => "businessFax", OtherFax => "otherFax", Pager => "pager", Radio => "radio",
});

impl DayOfWeek {
    pub fn to_chrono(self) -> chrono::Weekday {
        use chrono::Weekday;
        match self {
            Self::Sunday => Weekday::Sun,
            Self::Monday => Weekday::Mon,
            Self::Tuesday => Weekday::Tue,
            Self::Wednesday => Weekday::Wed,
            Self::Thursday => Weekday::Thu,
            Self::Friday => Weekday::Fri,
            Self::Saturday => Weekday::Sat,
        }
    }
}

/// `microsoft.graph.dateTimeTimeZone`: a wall-clock time and the zone it is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DateTimeTimeZone {
    pub date_time: String,
    #[serde(default)]
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ItemBody {
    #[serde(default)]
    pub content_type: Option<BodyType>,
    #[serde(default)]
    pub content: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmailAddress {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Recipient {
    #[serde(default)]
    pub email_address: Option<EmailAddress>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResponseStatus {
    #[serde(default)]
    pub response: Option<ResponseType>,
    #[serde(default)]
    pub time: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimeSlot {
    pub start: DateTimeTimeZone,
    pub end: DateTimeTimeZone,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Attendee {
    #[serde(default, rename = "type")]
    pub attendee_type: Option<AttendeeType>,
    #[serde(default)]
    pub status: Option<ResponseStatus>,
    #[serde(default)]
    pub email_address: Option<EmailAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposed_new_time: Option<TimeSlot>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PhysicalAddress {
    #[serde(default)]
    pub street: Option<String>,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub country_or_region: Option<String>,
    #[serde(default)]
    pub postal_code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutlookGeoCoordinates {
    #[serde(default)]
    pub accuracy: Option<f64>,
    #[serde(default)]
    pub altitude: Option<f64>,
    #[serde(default)]
    pub altitude_accuracy: Option<f64>,
    #[serde(default)]
    pub latitude: Option<f64>,
    #[serde(default)]
    pub longitude: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Location {
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub location_type: Option<LocationType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_email_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_id: Option<String>,
    #[serde(default)]
    pub unique_id_type: Option<LocationUniqueIdType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<PhysicalAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinates: Option<OutlookGeoCoordinates>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Phone {
    #[serde(default)]
    pub number: Option<String>,
    #[serde(default, rename = "type")]
    pub phone_type: Option<PhoneType>,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OnlineMeetingInfo {
    #[serde(default)]
    pub join_url: Option<String>,
    #[serde(default)]
    pub conference_id: Option<String>,
    #[serde(default)]
    pub toll_number: Option<String>,
    #[serde(default)]
    pub toll_free_numbers: Vec<String>,
    #[serde(default)]
    pub phones: Vec<Phone>,
    #[serde(default)]
    pub quick_dial: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecurrencePattern {
    #[serde(rename = "type")]
    pub pattern_type: RecurrencePatternType,
    #[serde(default = "one")]
    pub interval: i32,
    #[serde(default)]
    pub month: i32,
    #[serde(default)]
    pub day_of_month: i32,
    #[serde(default)]
    pub days_of_week: Vec<DayOfWeek>,
    #[serde(default)]
    pub first_day_of_week: Option<DayOfWeek>,
    #[serde(default)]
    pub index: Option<WeekIndex>,
}

fn one() -> i32 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecurrenceRange {
    #[serde(rename = "type")]
    pub range_type: RecurrenceRangeType,
    pub start_date: String,
    #[serde(default)]
    pub end_date: Option<String>,
    #[serde(default)]
    pub number_of_occurrences: i32,
    #[serde(default)]
    pub recurrence_time_zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatternedRecurrence {
    pub pattern: RecurrencePattern,
    pub range: RecurrenceRange,
}

/// `microsoft.graph.singleValueLegacyExtendedProperty`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SingleValueExtendedProperty {
    pub id: String,
    #[serde(default)]
    pub value: Option<String>,
}

/// The `@removed` annotation of a delta item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Removed {
    pub reason: String,
}

/// `microsoft.graph.event` (with its `outlookItem` and `entity` bases).
///
/// Every property is optional because Graph omits what `$select`, delta or a
/// PATCH body leave out; the store fills the read-only ones on create.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Event {
    #[serde(
        default,
        rename = "@odata.context",
        skip_serializing_if = "Option::is_none"
    )]
    pub odata_context: Option<String>,
    #[serde(
        default,
        rename = "@odata.type",
        skip_serializing_if = "Option::is_none"
    )]
    pub odata_type: Option<String>,
    #[serde(
        default,
        rename = "@odata.etag",
        skip_serializing_if = "Option::is_none"
    )]
    pub odata_etag: Option<String>,
    #[serde(default, rename = "@removed", skip_serializing_if = "Option::is_none")]
    pub removed: Option<Removed>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub created_date_time: Option<String>,
    #[serde(default)]
    pub last_modified_date_time: Option<String>,
    #[serde(default)]
    pub change_key: Option<String>,
    #[serde(default)]
    pub categories: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    #[serde(default)]
    pub original_start_time_zone: Option<String>,
    #[serde(default)]
    pub original_end_time_zone: Option<String>,
    #[serde(default, rename = "iCalUId")]
    pub i_cal_uid: Option<String>,
    #[serde(default)]
    pub reminder_minutes_before_start: Option<i32>,
    #[serde(default)]
    pub is_reminder_on: Option<bool>,
    #[serde(default)]
    pub has_attachments: Option<bool>,
    #[serde(default)]
    pub hide_attendees: Option<bool>,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub body_preview: Option<String>,
    #[serde(default)]
    pub importance: Option<Importance>,
    #[serde(default)]
    pub sensitivity: Option<Sensitivity>,
    #[serde(default)]
    pub is_all_day: Option<bool>,
    #[serde(default)]
    pub is_cancelled: Option<bool>,
    #[serde(default)]
    pub is_draft: Option<bool>,
    #[serde(default)]
    pub is_organizer: Option<bool>,
    #[serde(default)]
    pub response_requested: Option<bool>,
    #[serde(default)]
    pub series_master_id: Option<String>,
    #[serde(default)]
    pub show_as: Option<FreeBusyStatus>,
    #[serde(default, rename = "type")]
    pub event_type: Option<EventType>,
    #[serde(default)]
    pub web_link: Option<String>,
    #[serde(default)]
    pub online_meeting_url: Option<String>,
    #[serde(default)]
    pub is_online_meeting: Option<bool>,
    #[serde(default)]
    pub online_meeting_provider: Option<OnlineMeetingProvider>,
    #[serde(default)]
    pub online_meeting: Option<OnlineMeetingInfo>,
    #[serde(default)]
    pub allow_new_time_proposals: Option<bool>,
    #[serde(default)]
    pub response_status: Option<ResponseStatus>,
    #[serde(default)]
    pub body: Option<ItemBody>,
    #[serde(default)]
    pub start: Option<DateTimeTimeZone>,
    #[serde(default)]
    pub end: Option<DateTimeTimeZone>,
    #[serde(default)]
    pub original_start: Option<String>,
    #[serde(default)]
    pub location: Option<Location>,
    #[serde(default)]
    pub locations: Option<Vec<Location>>,
    #[serde(default)]
    pub recurrence: Option<PatternedRecurrence>,
    #[serde(default)]
    pub attendees: Option<Vec<Attendee>>,
    #[serde(default)]
    pub organizer: Option<Recipient>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_occurrences: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_value_extended_properties: Option<Vec<SingleValueExtendedProperty>>,
}

/// `microsoft.graph.subscription`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Subscription {
    #[serde(
        default,
        rename = "@odata.context",
        skip_serializing_if = "Option::is_none"
    )]
    pub odata_context: Option<String>,
    #[serde(
        default,
        rename = "@odata.type",
        skip_serializing_if = "Option::is_none"
    )]
    pub odata_type: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub resource: Option<String>,
    #[serde(default)]
    pub application_id: Option<String>,
    #[serde(default)]
    pub change_type: Option<String>,
    #[serde(default)]
    pub client_state: Option<String>,
    #[serde(default)]
    pub notification_url: Option<String>,
    #[serde(default)]
    pub notification_query_options: Option<String>,
    #[serde(default)]
    pub lifecycle_notification_url: Option<String>,
    #[serde(default)]
    pub expiration_date_time: Option<String>,
    #[serde(default)]
    pub creator_id: Option<String>,
    #[serde(default)]
    pub include_resource_data: Option<bool>,
    #[serde(default)]
    pub latest_supported_tls_version: Option<String>,
    #[serde(default)]
    pub encryption_certificate: Option<String>,
    #[serde(default)]
    pub encryption_certificate_id: Option<String>,
    #[serde(default)]
    pub notification_url_app_id: Option<String>,
}

/// `microsoft.graph.resourceData` as Graph fills it for basic notifications.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceData {
    #[serde(rename = "@odata.type")]
    pub odata_type: String,
    #[serde(rename = "@odata.id")]
    pub odata_id: String,
    #[serde(
        rename = "@odata.etag",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub odata_etag: Option<String>,
    pub id: String,
}

/// `microsoft.graph.changeNotification`, for both change and lifecycle
/// notifications.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeNotification {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub subscription_id: String,
    pub subscription_expiration_date_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_type: Option<ChangeType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_data: Option<ResourceData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_state: Option<String>,
    pub tenant_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_event: Option<LifecycleEventType>,
}

/// `microsoft.graph.changeNotificationCollection`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeNotificationCollection {
    pub value: Vec<ChangeNotification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_tokens: Option<Vec<String>>,
}

/// One page of a `calendarView/delta` round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeltaPage {
    #[serde(rename = "@odata.context")]
    pub odata_context: String,
    #[serde(
        rename = "@odata.nextLink",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub next_link: Option<String>,
    #[serde(
        rename = "@odata.deltaLink",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub delta_link: Option<String>,
    pub value: Vec<Event>,
}
