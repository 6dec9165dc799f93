//! Expansion of a `patternedRecurrence` into occurrence start times.
//!
//! Expansion happens on wall-clock dates in the series' own zone, so a 09:00
//! Europe/London meeting stays at 09:00 local time across a DST change and its
//! UTC time shifts, as Exchange does.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Utc, Weekday};
use chrono_tz::Tz;

use super::model::{
    DayOfWeek, PatternedRecurrence, RecurrencePatternType, RecurrenceRangeType, WeekIndex,
};
use super::time::local_to_utc;

/// No series is expanded past this many periods, so a hostile `noEnd` series
/// cannot spin the simulator.
const MAX_PERIODS: i64 = 40_000;

pub fn parse_date(value: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d").ok()
}

/// Checks a recurrence against the series' first start (local date), with
/// the messages Exchange gives for the same mistakes.
pub fn validate(recurrence: &PatternedRecurrence, start_date: NaiveDate) -> Result<(), String> {
    let pattern = &recurrence.pattern;
    let range = &recurrence.range;
    if pattern.interval < 1 || pattern.interval > 999 {
        return Err("The recurrence pattern's interval must be between 1 and 999.".into());
    }
    let range_start = parse_date(&range.start_date).ok_or_else(|| {
        format!(
            "'{}' is not a valid recurrence start date.",
            range.start_date
        )
    })?;
    if range_start != start_date {
        return Err(
            "The recurrence range's startDate must be the date of the event's start.".into(),
        );
    }
    match range.range_type {
        RecurrenceRangeType::EndDate => {
            let end = range
                .end_date
                .as_deref()
                .and_then(parse_date)
                .ok_or("An endDate range needs a valid endDate.")?;
            if end < range_start {
                return Err("The recurrence range's endDate is before its startDate.".into());
            }
        }
        RecurrenceRangeType::Numbered if range.number_of_occurrences < 1 => {
            return Err("A numbered range needs numberOfOccurrences of at least 1.".into());
        }
        _ => {}
    }
    let needs_days = matches!(
        pattern.pattern_type,
        RecurrencePatternType::Weekly
            | RecurrencePatternType::RelativeMonthly
            | RecurrencePatternType::RelativeYearly
    );
    if needs_days && pattern.days_of_week.is_empty() {
        return Err(format!(
            "A {} pattern needs daysOfWeek.",
            pattern.pattern_type.as_str()
        ));
    }
    let needs_day_of_month = matches!(
        pattern.pattern_type,
        RecurrencePatternType::AbsoluteMonthly | RecurrencePatternType::AbsoluteYearly
    );
    if needs_day_of_month && !(1..=31).contains(&pattern.day_of_month) {
        return Err("dayOfMonth must be between 1 and 31.".into());
    }
    let yearly = matches!(
        pattern.pattern_type,
        RecurrencePatternType::AbsoluteYearly | RecurrencePatternType::RelativeYearly
    );
    if yearly && !(1..=12).contains(&pattern.month) {
        return Err("month must be between 1 and 12.".into());
    }
    Ok(())
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    };
    next.and_then(|n| n.pred_opt()).map_or(28, |d| d.day())
}

fn clamped_day(year: i32, month: u32, day: i32) -> Option<NaiveDate> {
    let day = u32::try_from(day).ok()?.min(days_in_month(year, month));
    NaiveDate::from_ymd_opt(year, month, day)
}

fn nth_weekday(year: i32, month: u32, weekday: Weekday, index: WeekIndex) -> Option<NaiveDate> {
    if index == WeekIndex::Last {
        let mut date = NaiveDate::from_ymd_opt(year, month, days_in_month(year, month))?;
        while date.weekday() != weekday {
            date = date.pred_opt()?;
        }
        return Some(date);
    }
    let nth = match index {
        WeekIndex::First => 0,
        WeekIndex::Second => 1,
        WeekIndex::Third => 2,
        _ => 3,
    };
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, nth + 1)
}

fn month_at(base: NaiveDate, months: i64) -> Option<(i32, u32)> {
    let total = i64::from(base.year()) * 12 + i64::from(base.month0()) + months;
    let year = i32::try_from(total.div_euclid(12)).ok()?;
    let month = u32::try_from(total.rem_euclid(12)).ok()? + 1;
    Some((year, month))
}

/// The candidate dates of period `k` (ascending), or `None` past the
/// calendar's end.
fn period_dates(
    recurrence: &PatternedRecurrence,
    start: NaiveDate,
    k: i64,
) -> Option<Vec<NaiveDate>> {
    let pattern = &recurrence.pattern;
    let step = i64::from(pattern.interval) * k;
    let weekdays: Vec<Weekday> = pattern.days_of_week.iter().map(|d| d.to_chrono()).collect();
    let index = pattern.index.unwrap_or(WeekIndex::First);
    let mut dates = match pattern.pattern_type {
        RecurrencePatternType::Daily => vec![start.checked_add_signed(Duration::days(step))?],
        RecurrencePatternType::Weekly => {
            let first = pattern
                .first_day_of_week
                .unwrap_or(DayOfWeek::Sunday)
                .to_chrono();
            let back =
                (7 + start.weekday().num_days_from_sunday() - first.num_days_from_sunday()) % 7;
            let week_start = start.checked_sub_signed(Duration::days(i64::from(back)))?;
            let this_week = week_start.checked_add_signed(Duration::weeks(step))?;
            (0..7)
                .filter_map(|d| this_week.checked_add_signed(Duration::days(d)))
                .filter(|d| weekdays.contains(&d.weekday()))
                .collect()
        }
        RecurrencePatternType::AbsoluteMonthly => {
            let (year, month) = month_at(start, step)?;
            vec![clamped_day(year, month, pattern.day_of_month)?]
        }
        RecurrencePatternType::RelativeMonthly => {
            let (year, month) = month_at(start, step)?;
            weekdays
                .iter()
                .filter_map(|w| nth_weekday(year, month, *w, index))
                .collect()
        }
        RecurrencePatternType::AbsoluteYearly => {
            let year = start.year().checked_add(i32::try_from(step).ok()?)?;
            vec![clamped_day(
                year,
                u32::try_from(pattern.month).ok()?,
                pattern.day_of_month,
            )?]
        }
        RecurrencePatternType::RelativeYearly => {
            let year = start.year().checked_add(i32::try_from(step).ok()?)?;
            let month = u32::try_from(pattern.month).ok()?;
            weekdays
                .iter()
                .filter_map(|w| nth_weekday(year, month, *w, index))
                .collect()
        }
    };
    dates.sort();
    dates.dedup();
    Some(dates)
}

/// The local start times of the series' occurrences that start before
/// `until`, in order. `first_start` is the master's start in `tz`.
pub fn expand(
    recurrence: &PatternedRecurrence,
    tz: Tz,
    first_start: NaiveDateTime,
    until: DateTime<Utc>,
) -> Vec<NaiveDateTime> {
    let range = &recurrence.range;
    let Some(range_start) = parse_date(&range.start_date) else {
        return Vec::new();
    };
    let end_date = match range.range_type {
        RecurrenceRangeType::EndDate => range.end_date.as_deref().and_then(parse_date),
        _ => None,
    };
    let limit = match range.range_type {
        RecurrenceRangeType::Numbered => usize::try_from(range.number_of_occurrences).unwrap_or(0),
        _ => usize::MAX,
    };
    let time = first_start.time();
    let mut out = Vec::new();
    for k in 0..MAX_PERIODS {
        let Some(dates) = period_dates(recurrence, range_start, k) else {
            break;
        };
        for date in dates {
            if date < range_start {
                continue;
            }
            if end_date.is_some_and(|end| date > end) || out.len() >= limit {
                return out;
            }
            let local = date.and_time(time);
            if local_to_utc(tz, local) >= until {
                return out;
            }
            out.push(local);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::graph::model::{RecurrencePattern, RecurrenceRange};

    fn series(pattern: RecurrencePattern, range: RecurrenceRange) -> PatternedRecurrence {
        PatternedRecurrence { pattern, range }
    }

    fn pattern(kind: RecurrencePatternType) -> RecurrencePattern {
        RecurrencePattern {
            pattern_type: kind,
            interval: 1,
            month: 0,
            day_of_month: 0,
            days_of_week: Vec::new(),
            first_day_of_week: None,
            index: None,
        }
    }

    fn numbered(start: &str, n: i32) -> RecurrenceRange {
        RecurrenceRange {
            range_type: RecurrenceRangeType::Numbered,
            start_date: start.into(),
            end_date: None,
            number_of_occurrences: n,
            recurrence_time_zone: None,
        }
    }

    fn dates(rec: &PatternedRecurrence, start: &str) -> Vec<String> {
        let first = NaiveDateTime::parse_from_str(start, "%Y-%m-%dT%H:%M").unwrap();
        let until = DateTime::from_timestamp(4_102_444_800, 0).unwrap();
        expand(rec, Tz::UTC, first, until)
            .iter()
            .map(|d| d.format("%Y-%m-%d").to_string())
            .collect()
    }

    #[test]
    fn relative_monthly_last_friday_and_absolute_monthly_clamps() {
        let mut last_friday = pattern(RecurrencePatternType::RelativeMonthly);
        last_friday.days_of_week = vec![DayOfWeek::Friday];
        last_friday.index = Some(WeekIndex::Last);
        let rec = series(last_friday, numbered("2026-01-30", 3));
        assert_eq!(
            dates(&rec, "2026-01-30T10:00"),
            ["2026-01-30", "2026-02-27", "2026-03-27"]
        );

        let mut the_31st = pattern(RecurrencePatternType::AbsoluteMonthly);
        the_31st.day_of_month = 31;
        let rec = series(the_31st, numbered("2026-01-31", 3));
        assert_eq!(
            dates(&rec, "2026-01-31T10:00"),
            ["2026-01-31", "2026-02-28", "2026-03-31"]
        );
    }

    #[test]
    fn weekly_every_other_week_and_yearly_patterns() {
        let mut weekly = pattern(RecurrencePatternType::Weekly);
        weekly.interval = 2;
        weekly.days_of_week = vec![DayOfWeek::Monday, DayOfWeek::Thursday];
        weekly.first_day_of_week = Some(DayOfWeek::Monday);
        let rec = series(weekly, numbered("2026-02-05", 4));
        // Starts on a Thursday: the Monday of that week is before the range.
        assert_eq!(
            dates(&rec, "2026-02-05T09:00"),
            ["2026-02-05", "2026-02-16", "2026-02-19", "2026-03-02"]
        );

        let mut relative_yearly = pattern(RecurrencePatternType::RelativeYearly);
        relative_yearly.month = 11;
        relative_yearly.index = Some(WeekIndex::Fourth);
        relative_yearly.days_of_week = vec![DayOfWeek::Thursday];
        let rec = series(relative_yearly, numbered("2026-11-26", 2));
        assert_eq!(
            dates(&rec, "2026-11-26T12:00"),
            ["2026-11-26", "2027-11-25"]
        );

        let mut absolute_yearly = pattern(RecurrencePatternType::AbsoluteYearly);
        absolute_yearly.month = 2;
        absolute_yearly.day_of_month = 29;
        let rec = series(
            absolute_yearly,
            RecurrenceRange {
                range_type: RecurrenceRangeType::EndDate,
                start_date: "2028-02-29".into(),
                end_date: Some("2030-03-01".into()),
                number_of_occurrences: 0,
                recurrence_time_zone: None,
            },
        );
        assert_eq!(
            dates(&rec, "2028-02-29T08:00"),
            ["2028-02-29", "2029-02-28", "2030-02-28"]
        );
    }

    #[test]
    fn daily_no_end_stops_at_the_horizon() {
        let mut daily = pattern(RecurrencePatternType::Daily);
        daily.interval = 3;
        let mut range = numbered("2026-01-01", 0);
        range.range_type = RecurrenceRangeType::NoEnd;
        let rec = series(daily, range);
        let first = NaiveDateTime::parse_from_str("2026-01-01T10:00", "%Y-%m-%dT%H:%M").unwrap();
        let until = DateTime::parse_from_rfc3339("2026-01-10T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let got = expand(&rec, Tz::UTC, first, until);
        assert_eq!(got.len(), 3, "{got:?}"); // 1st, 4th, 7th; the 10th starts at the horizon
        assert!(validate(&rec, first.date()).is_ok());
        assert!(validate(&rec, first.date().succ_opt().unwrap()).is_err());
    }
}
