//! Halo's date-time convention: naive values that mean UTC
//! (`2026-02-10T09:00:00`), and 1900-01-01 (or earlier) for "no date".
//!
//! Reading also accepts a `Z`, a numeric offset (converted to UTC),
//! fractional seconds, a space instead of `T`, and a bare date. Writing is
//! always naive UTC, with milliseconds only when there are some.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serializer};

/// The last instant Halo uses to mean "no date".
fn no_date_limit() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(1900, 1, 1)
        .and_then(|d| d.and_hms_opt(23, 59, 59))
        .unwrap_or_default()
}

/// Reads a Halo date-time: `Ok(None)` for an empty value or Halo's
/// "no date", `Err` for text that is not a date.
pub fn parse(text: &str) -> Result<Option<DateTime<Utc>>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let naive = if let Ok(with_offset) = DateTime::parse_from_rfc3339(text) {
        with_offset.naive_utc()
    } else if let Ok(naive) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
        naive
    } else if let Ok(naive) = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f") {
        naive
    } else if let Some(midnight) = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
    {
        midnight
    } else {
        return Err(format!("'{text}' is not a Halo date-time"));
    };
    Ok((naive > no_date_limit()).then(|| naive.and_utc()))
}

/// Writes a UTC instant the way Halo stores it.
pub fn format(at: DateTime<Utc>) -> String {
    let naive = at.naive_utc();
    if naive.nanosecond() / 1_000_000 == 0 {
        naive.format("%Y-%m-%dT%H:%M:%S").to_string()
    } else {
        naive.format("%Y-%m-%dT%H:%M:%S%.3f").to_string()
    }
}

/// `#[serde(with = "time::option")]` for `Option<DateTime<Utc>>` fields.
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(
        value: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(at) => serializer.serialize_str(&format(*at)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        match Option::<String>::deserialize(deserializer)? {
            Some(text) => parse(&text).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
            .single()
            .expect("valid date")
    }

    #[test]
    fn naive_values_are_utc_and_offsets_are_converted() {
        let nine = Some(utc(2026, 2, 10, 9, 0, 0));
        for text in [
            "2026-02-10T09:00:00",
            "2026-02-10T09:00:00Z",
            "2026-02-10T10:00:00+01:00",
            "2026-02-10T04:00:00-05:00",
            "2026-02-10 09:00:00",
            " 2026-02-10T09:00:00.000 ",
        ] {
            assert_eq!(parse(text), Ok(nine), "{text}");
        }
        let fractional = parse("2026-02-10T09:00:00.25")
            .expect("valid")
            .expect("a date");
        assert_eq!(fractional.timestamp_subsec_millis(), 250);
        assert_eq!(parse("2026-02-10"), Ok(Some(utc(2026, 2, 10, 0, 0, 0))));
    }

    #[test]
    fn nineteen_hundred_and_earlier_mean_no_date() {
        for text in [
            "1900-01-01T00:00:00",
            "1900-01-01T00:00:00Z",
            "1900-01-01",
            "1899-12-30T00:00:00",
            "0001-01-01T00:00:00",
            "",
        ] {
            assert_eq!(parse(text), Ok(None), "{text}");
        }
        assert_eq!(
            parse("1900-01-02T00:00:00"),
            Ok(Some(utc(1900, 1, 2, 0, 0, 0)))
        );
        assert!(parse("next tuesday").is_err());
    }

    #[test]
    fn writes_are_naive_utc() {
        assert_eq!(format(utc(2026, 2, 10, 9, 0, 0)), "2026-02-10T09:00:00");
        let with_millis = utc(2026, 2, 10, 9, 0, 0) + chrono::Duration::milliseconds(250);
        assert_eq!(format(with_millis), "2026-02-10T09:00:00.250");
    }

    proptest::proptest! {
        #[test]
        fn what_is_written_reads_back_as_the_same_instant(
            millis in 0i64..4_102_444_800_000, // 1970 to 2100
        ) {
            let at = DateTime::from_timestamp_millis(millis).expect("in range");
            proptest::prop_assert_eq!(parse(&format(at)), Ok(Some(at)));
        }

        #[test]
        fn parsing_never_panics(text in "\\PC{0,40}") {
            let _ = parse(&text);
        }
    }
}
