//! Exchange-style item ids.
//!
//! A REST id encodes the calendar the item sits in, so it changes when the
//! item moves calendars (as Exchange's do); an immutable id does not. Both are
//! self-describing, so the store needs no id index, and occurrence ids are
//! derived from the master and the occurrence's original start, so they are
//! stable across requests.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use uuid::Uuid;

const REST_PREFIX: &str = "AAMkAGI1";
const IMMUTABLE_PREFIX: &str = "AAkALgAA";
const ITEM: u8 = 0;
const OCCURRENCE: u8 = 1;

/// Which id format a client asked for (`Prefer: IdType="ImmutableId"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdForm {
    Rest,
    Immutable,
}

/// What an id points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedId {
    pub key: Uuid,
    /// The calendar a REST id was minted in (`None` for immutable ids).
    pub calendar: Option<u8>,
    /// For an occurrence, its original start (unix seconds).
    pub original_start: Option<i64>,
}

fn encode(form: IdForm, kind: u8, key: Uuid, calendar: u8, start: i64) -> String {
    let mut bytes = Vec::with_capacity(26);
    bytes.push(kind);
    // Immutable ids must survive moves, so they do not record the calendar.
    bytes.push(if form == IdForm::Rest { calendar } else { 0 });
    bytes.extend_from_slice(key.as_bytes());
    if kind == OCCURRENCE {
        bytes.extend_from_slice(&start.to_be_bytes());
    }
    let prefix = match form {
        IdForm::Rest => REST_PREFIX,
        IdForm::Immutable => IMMUTABLE_PREFIX,
    };
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

pub fn item_id(form: IdForm, key: Uuid, calendar: u8) -> String {
    encode(form, ITEM, key, calendar, 0)
}

pub fn occurrence_id(
    form: IdForm,
    key: Uuid,
    calendar: u8,
    original_start: DateTime<Utc>,
) -> String {
    encode(form, OCCURRENCE, key, calendar, original_start.timestamp())
}

/// Decodes an id; `None` for anything this simulator did not mint.
pub fn parse(id: &str) -> Option<ParsedId> {
    let (form, rest) = if let Some(rest) = id.strip_prefix(REST_PREFIX) {
        (IdForm::Rest, rest)
    } else {
        (IdForm::Immutable, id.strip_prefix(IMMUTABLE_PREFIX)?)
    };
    let bytes = URL_SAFE_NO_PAD.decode(rest).ok()?;
    let kind = *bytes.first()?;
    let calendar = *bytes.get(1)?;
    let key = Uuid::from_slice(bytes.get(2..18)?).ok()?;
    let original_start = match (kind, bytes.len()) {
        (ITEM, 18) => None,
        (OCCURRENCE, 26) => {
            let raw: [u8; 8] = bytes.get(18..26)?.try_into().ok()?;
            Some(i64::from_be_bytes(raw))
        }
        _ => return None,
    };
    Some(ParsedId {
        key,
        calendar: (form == IdForm::Rest).then_some(calendar),
        original_start,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_rest_ids_carry_their_calendar() {
        let key = Uuid::new_v4();
        let rest = item_id(IdForm::Rest, key, 1);
        let immutable = item_id(IdForm::Immutable, key, 1);
        assert_ne!(rest, immutable);
        assert_ne!(rest, item_id(IdForm::Rest, key, 0));
        assert_eq!(item_id(IdForm::Immutable, key, 0), immutable);
        assert_eq!(
            parse(&rest),
            Some(ParsedId {
                key,
                calendar: Some(1),
                original_start: None
            })
        );
        let start = DateTime::from_timestamp(1_770_714_000, 0).unwrap();
        let occurrence = parse(&occurrence_id(IdForm::Immutable, key, 0, start)).unwrap();
        assert_eq!(occurrence.original_start, Some(1_770_714_000));
        assert_eq!(parse("not-an-id"), None);
        assert_eq!(parse("AAMkAGI1!!!"), None);
    }
}
