//! Halo's errors, whatever shape their bodies come in, as one typed error.
//!
//! Halo has no single error format (see `halo.md` §4): .NET exceptions as
//! `{ClassName, Message}`, `{resultCode, errorMessage}`, OAuth's `{error}` or
//! `{error: {error_description}}`, a bare JSON string, a single-key object,
//! or plain text. [`error_text`] finds the message in any of them.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::WWW_AUTHENTICATE;
use serde_json::Value;

use crate::http::{HttpError, Reply};

/// Where Halo's administrators manage the API application.
const API_SETTINGS: &str = "Configuration > Integrations > Halo API";

/// Why a Halo call failed.
#[derive(Debug, thiserror::Error)]
pub enum HaloError {
    #[error(transparent)]
    Http(#[from] HttpError),

    #[error(
        "Halo refused halosync's client id or secret (invalid_client); check the client id and secret in {API_SETTINGS} and set the same values as halo.client_id and the halo client secret in halosync's configuration"
    )]
    InvalidClient,

    #[error(
        "Halo's token endpoint {endpoint} refused the request ({status}): {message}; check halo.auth_url, halo.tenant and halo.scope against the API details in {API_SETTINGS}"
    )]
    TokenRefused {
        endpoint: String,
        status: u16,
        message: String,
    },

    #[error(
        "Halo's token endpoint {endpoint} answered without a usable access token ({reason}); check that halo.auth_url points at Halo's authorisation server"
    )]
    BadTokenResponse { endpoint: String, reason: String },

    #[error(
        "Halo rejected a freshly issued access token for {method} {path}: {message}; check that the API application in {API_SETTINGS} is active and that halo.scope (usually \"all\") grants access"
    )]
    Unauthorized {
        method: String,
        path: String,
        message: String,
    },

    #[error(
        "Halo denied {method} {path} (403): {message}; give the agent the API application logs in as the permission it needs ({API_SETTINGS})"
    )]
    Forbidden {
        method: String,
        path: String,
        message: String,
    },

    #[error("Halo has no such record ({method} {path}, 404): {message}")]
    NotFound {
        method: String,
        path: String,
        message: String,
    },

    #[error(
        "Halo kept rate limiting {method} {path} (429: {message}); lower halo.requests_per_5_minutes or spread the work out"
    )]
    RateLimited {
        method: String,
        path: String,
        message: String,
        retry_after: Option<Duration>,
    },

    #[error("Halo answered {method} {path} with {status}: {message}")]
    Api {
        status: u16,
        method: String,
        path: String,
        message: String,
    },

    #[error("Halo's answer to {method} {path} could not be read: {reason}")]
    Decode {
        method: String,
        path: String,
        reason: String,
    },

    #[error(
        "Halo sent the same page again while listing {path} (page {page} starts with appointment {first_id}, like page {previous}); the listing was stopped so it is not taken as complete"
    )]
    RepeatedPage {
        path: String,
        page: u32,
        previous: u32,
        first_id: i64,
    },

    #[error(
        "Halo answered {method} {path} with {returned} appointment(s) for the {sent} sent; the save may have happened, so read the appointments back before retrying"
    )]
    SaveCountMismatch {
        method: String,
        path: String,
        sent: usize,
        returned: usize,
    },

    #[error("could not build the request to Halo: {0}")]
    Request(String),
}

impl HaloError {
    /// The HTTP status Halo answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::TokenRefused { status, .. } | Self::Api { status, .. } => Some(*status),
            Self::InvalidClient | Self::Unauthorized { .. } => Some(401),
            Self::Forbidden { .. } => Some(403),
            Self::NotFound { .. } => Some(404),
            Self::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// The error an API (not token) reply with an error status stands for.
    pub(crate) fn from_reply(reply: &Reply, now: chrono::DateTime<chrono::Utc>) -> Self {
        let method = reply.method.clone();
        let path = reply.path.clone();
        let message = error_text(reply.status, &reply.body)
            .or_else(|| bearer_error_description(reply))
            .unwrap_or_else(|| {
                reply
                    .status
                    .canonical_reason()
                    .unwrap_or("no message")
                    .to_owned()
            });
        match reply.status {
            StatusCode::UNAUTHORIZED => Self::Unauthorized {
                method,
                path,
                message,
            },
            StatusCode::FORBIDDEN => Self::Forbidden {
                method,
                path,
                message,
            },
            StatusCode::NOT_FOUND => Self::NotFound {
                method,
                path,
                message,
            },
            StatusCode::TOO_MANY_REQUESTS => Self::RateLimited {
                method,
                path,
                message,
                retry_after: reply.retry_after(now),
            },
            status => Self::Api {
                status: status.as_u16(),
                method,
                path,
                message,
            },
        }
    }

    pub(crate) fn decode(reply: &Reply, reason: impl ToString) -> Self {
        Self::Decode {
            method: reply.method.clone(),
            path: reply.path.clone(),
            reason: reason.to_string(),
        }
    }
}

/// The `error_description` of a `WWW-Authenticate: Bearer` challenge, which
/// is all a bodiless 401 says.
fn bearer_error_description(reply: &Reply) -> Option<String> {
    let challenge = reply.headers.get(WWW_AUTHENTICATE)?.to_str().ok()?;
    let (_, rest) = challenge.split_once("error_description=\"")?;
    let (description, _) = rest.split_once('"')?;
    Some(description.to_owned()).filter(|d| !d.is_empty())
}

/// The message in a Halo error body of any known shape; `None` for an empty
/// body.
pub fn error_text(_status: StatusCode, body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    match serde_json::from_str::<Value>(text) {
        Ok(value) => json_message(&value).or_else(|| Some(text.to_owned())),
        Err(_) => Some(text.to_owned()),
    }
}

fn non_empty(value: Option<&Value>) -> Option<String> {
    value
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn json_message(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.trim().to_owned()).filter(|t| !t.is_empty()),
        Value::Object(map) => {
            // {ClassName, Message}: keep the class, it tells a .NET
            // serialization failure from a business-rule refusal.
            if let Some(message) = non_empty(map.get("Message").or_else(|| map.get("message"))) {
                return Some(match non_empty(map.get("ClassName")) {
                    Some(class) => format!("{message} ({class})"),
                    None => message,
                });
            }
            if let Some(message) = non_empty(map.get("errorMessage")) {
                return Some(match map.get("resultCode") {
                    Some(code) if !code.is_null() => format!("{message} (result code {code})"),
                    _ => message,
                });
            }
            match map.get("error") {
                Some(Value::String(code)) => {
                    return Some(match non_empty(map.get("error_description")) {
                        Some(description) => format!("{code}: {description}"),
                        None => code.clone(),
                    });
                }
                Some(Value::Object(inner)) => {
                    if let Some(message) = non_empty(
                        inner
                            .get("error_description")
                            .or_else(|| inner.get("message")),
                    ) {
                        return Some(message);
                    }
                }
                _ => {}
            }
            // A single-key object: its one value is the message.
            if map.len() == 1 {
                return map.values().next().and_then(json_message);
            }
            None
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(body: &str) -> Option<String> {
        error_text(StatusCode::BAD_REQUEST, body.as_bytes())
    }

    #[test]
    fn every_halo_error_shape_yields_its_message() {
        assert_eq!(
            text(r#"{"ClassName":"System.Exception","Message":"Appointment 9 not found."}"#)
                .as_deref(),
            Some("Appointment 9 not found. (System.Exception)")
        );
        assert_eq!(
            text(r#"{"resultCode":3,"errorMessage":"Start date is required"}"#).as_deref(),
            Some("Start date is required (result code 3)")
        );
        assert_eq!(
            text(r#"{"error":"invalid_client"}"#).as_deref(),
            Some("invalid_client")
        );
        assert_eq!(
            text(r#"{"error":"invalid_scope","error_description":"bad scope"}"#).as_deref(),
            Some("invalid_scope: bad scope")
        );
        assert_eq!(
            text(r#"{"error":{"error_description":"The agent is disabled"}}"#).as_deref(),
            Some("The agent is disabled")
        );
        assert_eq!(
            text(r#""Ticket is closed""#).as_deref(),
            Some("Ticket is closed")
        );
        assert_eq!(text(r#"{"detail":"Nope"}"#).as_deref(), Some("Nope"));
        assert_eq!(
            text("The value 'x' is not valid for agents.").as_deref(),
            Some("The value 'x' is not valid for agents.")
        );
        assert_eq!(
            text(r#"{"a":1,"b":2}"#).as_deref(),
            Some(r#"{"a":1,"b":2}"#)
        );
        assert_eq!(text("  "), None);
    }
}
