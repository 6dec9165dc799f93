//! `halosync requests inbound|outbound`: the request logs (the guide's
//! "Inbound requests" and "Outbound requests" tabs), newest first, as a
//! table or JSON. Read-only: safe while the service runs.

use std::process::ExitCode;

use chrono::{DateTime, Duration, Utc};
use clap::ValueEnum;
use serde_json::{Value, json};

use super::{exit, table};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::http::RequestRecord;
use crate::store::inbound_log::{self, InboundRecord};
use crate::store::request_log::{self, RequestFilter};
use crate::store::{Store, db_time};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Direction {
    /// Requests Graph (or anyone) made to the webhook listener.
    Inbound,
    /// Requests halosync made to Halo, Graph and the identity platform.
    Outbound,
}

#[derive(Debug, clap::Args)]
pub struct RequestsArgs {
    #[arg(value_enum)]
    pub direction: Direction,
    /// Only requests about this agent's mailbox (their e-mail address).
    #[arg(long, value_name = "EMAIL")]
    pub agent: Option<String>,
    /// Only requests from the last DURATION, e.g. 30m, 2h, 3d or 1w.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// Only failures: errors, HTTP 4xx/5xx, and refused or dropped
    /// notifications.
    #[arg(long)]
    pub failed: bool,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
    /// At most this many requests, the newest.
    #[arg(long, default_value_t = 200, value_name = "N")]
    pub limit: u32,
}

/// `30m`, `2h`, `3d`, `1w` (or seconds: `90s`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let invalid = || {
        format!(
            "`{text}` is not a duration; expected a number and a unit, such as 30m, 2h, 3d or 1w"
        )
    };
    let number: i64 = number.parse().map_err(|_| invalid())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(invalid()),
    };
    number
        .checked_mul(seconds)
        .and_then(Duration::try_seconds)
        .ok_or_else(invalid)
}

pub fn run(args: &RequestsArgs, config: &Config) -> ExitCode {
    let store = match Store::open_read_only(&config.store.path) {
        Ok(store) => store,
        Err(error) => {
            eprintln!("halosync: {error}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    let filter = RequestFilter {
        since: args.since.map(|ago| SystemClock.now() - ago),
        agent: args.agent.as_deref().map(|a| a.trim().to_ascii_lowercase()),
        failed_only: args.failed,
        limit: args.limit,
    };
    let conn = store.connection();
    let printed = match args.direction {
        Direction::Inbound => inbound_log::query(conn, &filter).map(|records| {
            output(
                args.json,
                &records,
                inbound_json,
                INBOUND_HEADER,
                inbound_row,
            )
        }),
        Direction::Outbound => request_log::query(conn, &filter).map(|records| {
            output(
                args.json,
                &records,
                outbound_json,
                OUTBOUND_HEADER,
                outbound_row,
            )
        }),
    };
    match printed {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("halosync: {error}");
            ExitCode::from(exit::FAILURE)
        }
    }
}

fn output<R>(
    as_json: bool,
    records: &[R],
    to_json: fn(&R) -> Value,
    header: &[&str],
    to_row: fn(&R) -> Vec<String>,
) -> String {
    if as_json {
        let array = Value::Array(records.iter().map(to_json).collect());
        return format!("{array:#}\n");
    }
    if records.is_empty() {
        return "no requests\n".to_owned();
    }
    let rows: Vec<Vec<String>> = records.iter().map(to_row).collect();
    table::render(header, &rows)
}

fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn or_dash(value: Option<&str>) -> String {
    value.unwrap_or("-").to_owned()
}

const INBOUND_HEADER: &[&str] = &[
    "time (UTC)",
    "method",
    "path",
    "status",
    "outcome",
    "subscription",
    "mailbox",
    "items",
    "ms",
    "detail",
];

fn inbound_row(record: &InboundRecord) -> Vec<String> {
    vec![
        when(record.at),
        record.method.clone(),
        record.path.clone(),
        record.status.to_string(),
        record.outcome.as_str().to_owned(),
        or_dash(record.subscription_id.as_deref()),
        or_dash(record.mailbox.as_deref()),
        record.item_count.to_string(),
        record.duration_ms.to_string(),
        or_dash(record.detail.as_deref()),
    ]
}

fn inbound_json(record: &InboundRecord) -> Value {
    json!({
        "at": db_time(record.at),
        "method": record.method,
        "path": record.path,
        "status": record.status,
        "outcome": record.outcome.as_str(),
        "subscription_id": record.subscription_id,
        "mailbox": record.mailbox,
        "item_count": record.item_count,
        "duration_ms": record.duration_ms,
        "detail": record.detail,
    })
}

const OUTBOUND_HEADER: &[&str] = &[
    "time (UTC)",
    "upstream",
    "method",
    "path",
    "status",
    "ms",
    "mailbox",
    "agent",
    "error",
];

fn outbound_row(record: &RequestRecord) -> Vec<String> {
    vec![
        when(record.at),
        record.upstream.as_str().to_owned(),
        record.method.clone(),
        record.path.clone(),
        record
            .status
            .map_or_else(|| "-".to_owned(), |s| s.to_string()),
        record.duration_ms.to_string(),
        or_dash(record.mailbox.as_deref()),
        record
            .agent_id
            .map_or_else(|| "-".to_owned(), |id| format!("#{id}")),
        or_dash(record.error.as_deref()),
    ]
}

fn outbound_json(record: &RequestRecord) -> Value {
    json!({
        "at": db_time(record.at),
        "upstream": record.upstream.as_str(),
        "method": record.method,
        "path": record.path,
        "status": record.status,
        "duration_ms": record.duration_ms,
        "mailbox": record.mailbox,
        "agent_id": record.agent_id,
        "request_id": record.request_id,
        "error": record.error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_number_and_a_unit() {
        assert_eq!(parse_duration("2h"), Ok(Duration::hours(2)));
        assert_eq!(parse_duration("3d"), Ok(Duration::days(3)));
        assert_eq!(parse_duration("30m"), Ok(Duration::minutes(30)));
        assert_eq!(parse_duration(" 1w "), Ok(Duration::weeks(1)));
        for bad in ["", "h", "2", "2 h", "2x", "-2h", "99999999999999999999d"] {
            let error = parse_duration(bad).unwrap_err();
            assert!(
                error.contains("such as 30m, 2h, 3d or 1w"),
                "{bad}: {error}"
            );
        }
    }
}
