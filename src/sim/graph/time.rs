//! Graph's date handling: `dateTime` + `timeZone` pairs, Windows zone names,
//! and the seven-digit fraction Graph writes.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use super::model::DateTimeTimeZone;

/// Windows time-zone names Outlook uses, mapped to the IANA zone CLDR pairs
/// them with (the "001" territory). Only the common ones: anything else is
/// accepted by its IANA name.
const WINDOWS_ZONES: &[(&str, &str)] = &[
    ("UTC", "UTC"),
    ("Coordinated Universal Time", "UTC"),
    ("GMT Standard Time", "Europe/London"),
    ("Greenwich Standard Time", "Atlantic/Reykjavik"),
    ("W. Europe Standard Time", "Europe/Berlin"),
    ("Romance Standard Time", "Europe/Paris"),
    ("Central Europe Standard Time", "Europe/Budapest"),
    ("Central European Standard Time", "Europe/Warsaw"),
    ("E. Europe Standard Time", "Europe/Chisinau"),
    ("FLE Standard Time", "Europe/Kiev"),
    ("GTB Standard Time", "Europe/Bucharest"),
    ("Russian Standard Time", "Europe/Moscow"),
    ("Israel Standard Time", "Asia/Jerusalem"),
    ("South Africa Standard Time", "Africa/Johannesburg"),
    ("Arabian Standard Time", "Asia/Dubai"),
    ("India Standard Time", "Asia/Kolkata"),
    ("China Standard Time", "Asia/Shanghai"),
    ("Singapore Standard Time", "Asia/Singapore"),
    ("Tokyo Standard Time", "Asia/Tokyo"),
    ("Korea Standard Time", "Asia/Seoul"),
    ("AUS Eastern Standard Time", "Australia/Sydney"),
    ("E. Australia Standard Time", "Australia/Brisbane"),
    ("W. Australia Standard Time", "Australia/Perth"),
    ("New Zealand Standard Time", "Pacific/Auckland"),
    ("Hawaiian Standard Time", "Pacific/Honolulu"),
    ("Alaskan Standard Time", "America/Anchorage"),
    ("Pacific Standard Time", "America/Los_Angeles"),
    ("US Mountain Standard Time", "America/Phoenix"),
    ("Mountain Standard Time", "America/Denver"),
    ("Central Standard Time", "America/Chicago"),
    ("Eastern Standard Time", "America/New_York"),
    ("Atlantic Standard Time", "America/Halifax"),
    ("E. South America Standard Time", "America/Sao_Paulo"),
    ("Canada Central Standard Time", "America/Regina"),
];

/// Resolves a Windows or IANA zone name (case-insensitively for Windows names).
pub fn zone(name: &str) -> Option<Tz> {
    let name = name.trim();
    if let Some((_, iana)) = WINDOWS_ZONES
        .iter()
        .find(|(windows, _)| windows.eq_ignore_ascii_case(name))
    {
        return iana.parse().ok();
    }
    name.parse().ok()
}

/// Parses the wall-clock part Graph accepts: `2026-02-10T09:00:00`, with an
/// optional fraction; a trailing `Z` or offset is tolerated and ignored by
/// callers that pair it with a `timeZone`.
pub fn parse_naive(value: &str) -> Option<NaiveDateTime> {
    let trimmed = value.trim();
    if let Ok(naive) = NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(naive);
    }
    if let Ok(naive) = NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%dT%H:%M") {
        return Some(naive);
    }
    DateTime::parse_from_rfc3339(trimmed)
        .ok()
        .map(|dt| dt.naive_local())
        .or_else(|| {
            NaiveDate::parse_from_str(trimmed, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
}

/// Parses an absolute instant: RFC 3339, or a naive time meaning UTC (as
/// calendarView's `startDateTime` does).
pub fn parse_instant(value: &str) -> Option<DateTime<Utc>> {
    let trimmed = value.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(trimmed) {
        return Some(dt.with_timezone(&Utc));
    }
    parse_naive(trimmed).map(|naive| naive.and_utc())
}

/// The instant a wall-clock time in `tz` denotes. A time skipped by a DST
/// gap moves forward by the gap, as Exchange does; an ambiguous one takes
/// the first (daylight) reading.
pub fn local_to_utc(tz: Tz, naive: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(dt) => dt.with_timezone(&Utc),
        chrono::LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        chrono::LocalResult::None => naive
            .checked_add_signed(chrono::Duration::hours(1))
            .and_then(|later| tz.from_local_datetime(&later).earliest())
            .map_or_else(|| naive.and_utc(), |dt| dt.with_timezone(&Utc)),
    }
}

/// Graph's `dateTime` text: seconds plus a seven-digit fraction.
pub fn format_naive(naive: NaiveDateTime) -> String {
    format!(
        "{}.{:07}",
        naive.format("%Y-%m-%dT%H:%M:%S"),
        naive.nanosecond() / 100
    )
}

/// An `Edm.DateTimeOffset` in UTC, as Graph writes `createdDateTime`.
pub fn format_instant(instant: DateTime<Utc>) -> String {
    format!("{}Z", format_naive(instant.naive_utc()))
}

/// Why a `dateTimeTimeZone` could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateError {
    BadDateTime(String),
    UnknownZone(String),
}

/// The instant a `dateTimeTimeZone` denotes (no zone means UTC).
pub fn to_utc(value: &DateTimeTimeZone) -> Result<DateTime<Utc>, DateError> {
    let naive = parse_naive(&value.date_time)
        .ok_or_else(|| DateError::BadDateTime(value.date_time.clone()))?;
    let tz = zone_or_utc(value.time_zone.as_deref())?;
    Ok(local_to_utc(tz, naive))
}

pub fn zone_or_utc(name: Option<&str>) -> Result<Tz, DateError> {
    match name {
        None => Ok(Tz::UTC),
        Some(n) if n.trim().is_empty() => Ok(Tz::UTC),
        Some(n) => zone(n).ok_or_else(|| DateError::UnknownZone(n.to_string())),
    }
}

/// Renders an instant in the zone a client asked for (by the name it used).
pub fn render(instant: DateTime<Utc>, zone_name: &str) -> DateTimeTimeZone {
    let tz = zone(zone_name).unwrap_or(Tz::UTC);
    DateTimeTimeZone {
        date_time: format_naive(instant.with_timezone(&tz).naive_local()),
        time_zone: Some(zone_name.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_names_and_dst_are_honoured() {
        let summer = DateTimeTimeZone {
            date_time: "2017-04-15T12:00:00".into(),
            time_zone: Some("Pacific Standard Time".into()),
        };
        assert_eq!(
            format_instant(to_utc(&summer).unwrap()),
            "2017-04-15T19:00:00.0000000Z"
        );
        let rendered = render(to_utc(&summer).unwrap(), "Eastern Standard Time");
        assert_eq!(rendered.date_time, "2017-04-15T15:00:00.0000000");
        assert!(matches!(
            zone_or_utc(Some("Mars Standard Time")),
            Err(DateError::UnknownZone(_))
        ));
    }

    #[test]
    fn a_time_in_the_spring_gap_moves_forward() {
        let naive = parse_naive("2026-03-29T01:30:00").unwrap();
        let utc = local_to_utc(chrono_tz::Europe::London, naive);
        assert_eq!(format_instant(utc), "2026-03-29T01:30:00.0000000Z");
    }
}
