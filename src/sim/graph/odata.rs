//! OData query options and collection shapes: `$select`, `$expand`, the
//! `$filter`s the simulator understands, `$top`/`$skip` paging, time windows.

use axum::http::{StatusCode, header};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::collection;
use super::error::{ApiError, ApiResponse};
use super::model::SingleValueExtendedProperty;
use super::routes::{ApiRequest, Prefs};
use super::store::Instance;
use super::time;

/// Graph's default page size for event collections.
const DEFAULT_PAGE: usize = 10;

/// How a response presents events: zone, id form, `$select`, `$expand`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Presentation {
    pub zone: String,
    pub select: Option<Vec<String>>,
    /// `None`: no expand; `Some(None)`: all properties; `Some(Some(id))`: one.
    pub expand: Option<Option<String>>,
}

impl Presentation {
    pub fn from_request(request: &ApiRequest) -> Result<Self, ApiError> {
        let select = request.query("$select").map(|s| {
            s.split(',')
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect()
        });
        let expand = match request.query("$expand") {
            None => None,
            Some(raw) => Some(parse_expand(raw)?),
        };
        Ok(Self {
            zone: request.prefs().zone(),
            select,
            expand,
        })
    }

    /// Renders an event: times in the preferred zone, the etag, the expanded
    /// extended properties, and only the selected properties.
    pub fn render(&self, instance: &Instance, extended: &[SingleValueExtendedProperty]) -> Value {
        let mut event = instance.event.clone();
        event.odata_etag = event.change_key.as_ref().map(|k| etag(k));
        event.start = Some(time::render(instance.start, &self.zone));
        event.end = Some(time::render(instance.end, &self.zone));
        event.single_value_extended_properties = self.expand.as_ref().map(|filter| {
            extended
                .iter()
                .filter(|p| {
                    filter
                        .as_ref()
                        .is_none_or(|id| p.id.eq_ignore_ascii_case(id))
                })
                .cloned()
                .collect()
        });
        let mut value = serde_json::to_value(&event).unwrap_or(Value::Null);
        if let (Some(select), Value::Object(map)) = (&self.select, &mut value) {
            map.retain(|key, _| {
                key.starts_with('@')
                    || key == "id"
                    || key == "singleValueExtendedProperties"
                    || select.iter().any(|s| s == key)
            });
        }
        value
    }
}

pub(crate) fn etag(change_key: &str) -> String {
    format!("W/\"{change_key}\"")
}

/// `singleValueExtendedProperties($filter=id eq '...')` or the bare name.
pub(crate) fn parse_expand(raw: &str) -> Result<Option<String>, ApiError> {
    let raw = raw.trim();
    let unsupported = || {
        ApiError::bad_request(
            "BadRequest",
            format!("Parsing OData Select and Expand failed: '{raw}' cannot be expanded here."),
        )
    };
    let Some(rest) = strip_prefix_ci(raw, "singleValueExtendedProperties") else {
        return Err(unsupported());
    };
    let rest = rest.trim();
    if rest.is_empty() {
        return Ok(None);
    }
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(unsupported)?;
    let filter = strip_prefix_ci(inner.trim(), "$filter=").ok_or_else(unsupported)?;
    let literal = strip_prefix_ci(filter.trim(), "id eq ").ok_or_else(unsupported)?;
    Ok(Some(
        parse_literal(literal.trim()).ok_or_else(unsupported)?.0,
    ))
}

pub(crate) fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Reads a quoted OData string literal (`''` escapes a quote) and returns it
/// with the remaining text.
pub(crate) fn parse_literal(text: &str) -> Option<(String, &str)> {
    let body = text.strip_prefix('\'')?;
    let mut out = String::new();
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if chars.peek().is_some_and(|(_, n)| *n == '\'') {
                chars.next();
                out.push('\'');
            } else {
                return Some((out, &body[i + 1..]));
            }
        } else {
            out.push(c);
        }
    }
    None
}

/// The `$filter`s the simulator understands on event lists.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum EventFilter {
    ExtendedProperty { id: String, value: String },
    ICalUId(String),
}

pub(crate) fn parse_filter(raw: &str) -> Result<EventFilter, ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "ErrorInvalidUrlQueryFilter",
            format!("The query filter '{raw}' is not supported by the simulator."),
        )
    };
    let text = raw.trim();
    if let Some(rest) = strip_prefix_ci(text, "iCalUId eq ") {
        let (value, tail) = parse_literal(rest.trim()).ok_or_else(invalid)?;
        return if tail.trim().is_empty() {
            Ok(EventFilter::ICalUId(value))
        } else {
            Err(invalid())
        };
    }
    let rest = strip_prefix_ci(text, "singleValueExtendedProperties/Any(").ok_or_else(invalid)?;
    let (_, rest) = rest.split_once(':').ok_or_else(invalid)?;
    let rest = rest.trim();
    let (_, rest) = rest.split_once("/id eq ").ok_or_else(invalid)?;
    let (id, rest) = parse_literal(rest.trim()).ok_or_else(invalid)?;
    let rest = strip_prefix_ci(rest.trim(), "and ").ok_or_else(invalid)?;
    let (_, rest) = rest.split_once("/value eq ").ok_or_else(invalid)?;
    let (value, rest) = parse_literal(rest.trim()).ok_or_else(invalid)?;
    if rest.trim() != ")" {
        return Err(invalid());
    }
    Ok(EventFilter::ExtendedProperty { id, value })
}

pub(crate) fn matches(
    filter: &EventFilter,
    instance: &Instance,
    extended: &[SingleValueExtendedProperty],
) -> bool {
    match filter {
        EventFilter::ICalUId(uid) => instance.event.i_cal_uid.as_deref() == Some(uid.as_str()),
        EventFilter::ExtendedProperty { id, value } => extended
            .iter()
            .any(|p| p.id.eq_ignore_ascii_case(id) && p.value.as_deref() == Some(value.as_str())),
    }
}

pub(crate) fn window(request: &ApiRequest) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let missing = || {
        ApiError::bad_request(
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
        )
    };
    let parse = |name: &str| -> Result<DateTime<Utc>, ApiError> {
        let raw = request.query(name).ok_or_else(missing)?;
        time::parse_instant(raw).ok_or_else(|| {
            ApiError::bad_request(
                "ErrorInvalidParameter",
                format!("The value '{raw}' of parameter '{name}' is invalid."),
            )
        })
    };
    let from = parse("startDateTime")?;
    let to = parse("endDateTime")?;
    if to <= from {
        return Err(ApiError::bad_request(
            "ErrorInvalidParameter",
            "The parameter 'EndDateTime' must be later than 'StartDateTime'.",
        ));
    }
    Ok((from, to))
}

/// Pages a rendered collection with `$top`/`$skip` and a nextLink.
pub(crate) fn page(
    request: &ApiRequest,
    base: &str,
    context: String,
    items: Vec<Value>,
) -> Result<ApiResponse, ApiError> {
    let bad =
        |name: &str| ApiError::bad_request("BadRequest", format!("Invalid value for {name}."));
    let skip = match request.query("$skip") {
        Some(raw) => raw.parse::<usize>().map_err(|_| bad("$skip"))?,
        None => 0,
    };
    let size = match request.query("$top") {
        Some(raw) => raw.parse::<usize>().map_err(|_| bad("$top"))?.min(1000),
        None => request.prefs().max_page_size.unwrap_or(DEFAULT_PAGE).max(1),
    };
    let total = items.len();
    let value: Vec<Value> = items.into_iter().skip(skip).take(size).collect();
    let mut body = collection(context, value);
    if skip + size < total {
        let mut query: Vec<(String, String)> = request
            .query
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("$skip"))
            .cloned()
            .collect();
        query.push(("$skip".into(), (skip + size).to_string()));
        let encoded = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query)
            .finish();
        let path = request.path.trim_start_matches('/');
        body["@odata.nextLink"] = Value::String(format!("{base}/{path}?{encoded}"));
    }
    Ok(with_prefs(
        ApiResponse::json(StatusCode::OK, body),
        &request.prefs(),
    ))
}

pub(crate) fn with_prefs(response: ApiResponse, prefs: &Prefs) -> ApiResponse {
    match prefs.applied() {
        Some(applied) => response.with_header(
            header::HeaderName::from_static("preference-applied"),
            applied,
        ),
        None => response,
    }
}
