//! The identity platform's OAuth error responses.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::clock::{Clock, SystemClock};

/// The ids and time the platform stamps on every error.
struct Trace {
    trace_id: String,
    correlation_id: String,
    timestamp: String,
}

impl Trace {
    fn new(now: DateTime<Utc>) -> Self {
        Self {
            trace_id: uuid::Uuid::new_v4().to_string(),
            correlation_id: uuid::Uuid::new_v4().to_string(),
            timestamp: now.format("%Y-%m-%d %H:%M:%SZ").to_string(),
        }
    }
}

/// One token- or authorize-endpoint error, rendered exactly like Entra ID's:
/// `error`, an `error_description` that starts with the AADSTS code and ends
/// with the trace, correlation and timestamp lines, and `error_codes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub code: u32,
    pub message: String,
}

impl OAuthError {
    pub fn new(
        status: StatusCode,
        error: &'static str,
        code: u32,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            error,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(error: &'static str, code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, code, message)
    }

    pub fn missing_parameter(name: &str) -> Self {
        Self::bad_request(
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{name}'."),
        )
    }

    pub fn expired_or_revoked_grant() -> Self {
        Self::bad_request(
            "invalid_grant",
            70008,
            "The provided authorization code or refresh token has expired due to inactivity. \
             Send a new interactive authorization request for this user and resource.",
        )
    }

    /// `error_description` as the platform writes it.
    fn description(&self, trace: &Trace) -> String {
        format!(
            "AADSTS{}: {}\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {}",
            self.code, self.message, trace.trace_id, trace.correlation_id, trace.timestamp
        )
    }

    /// `error` and `error_description`, for an error sent back through the
    /// authorize redirect.
    pub fn redirect_params(&self, now: DateTime<Utc>) -> [(&'static str, String); 2] {
        [
            ("error", self.error.to_owned()),
            ("error_description", self.description(&Trace::new(now))),
        ]
    }

    pub fn to_body(&self, now: DateTime<Utc>) -> serde_json::Value {
        let trace = Trace::new(now);
        json!({
            "error": self.error,
            "error_description": self.description(&trace),
            "error_codes": [self.code],
            "timestamp": trace.timestamp,
            "trace_id": trace.trace_id,
            "correlation_id": trace.correlation_id,
        })
    }

    pub fn into_response_at(self, now: DateTime<Utc>) -> Response {
        (self.status, Json(self.to_body(now))).into_response()
    }
}

/// The identity platform's body for an injected fault. A fault renderer is a
/// plain function without the simulator's clock, so its timestamp is the wall
/// clock's.
pub fn fault_body(status: StatusCode) -> Response {
    let error = if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        OAuthError::new(
            status,
            "temporarily_unavailable",
            90033,
            "A transient error has occurred. Please try again.",
        )
    } else {
        OAuthError::new(
            status,
            "invalid_request",
            90100,
            "The request could not be processed.",
        )
    };
    error.into_response_at(SystemClock.now())
}
