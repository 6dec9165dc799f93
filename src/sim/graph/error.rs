//! Graph's error shape and the simulator's internal response type.

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::clock::{Clock, SystemClock};

/// An error Graph would answer with: status, `error.code`, `error.message`
/// and any headers that go with it (`Retry-After`, `Location`).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub headers: Vec<(HeaderName, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_string(),
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn item_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        )
    }

    pub fn invalid_token(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            message,
        )
    }

    pub fn access_denied() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        )
    }

    pub fn invalid_json() -> Self {
        Self::bad_request(
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
        )
    }

    /// The error for a body serde refused: an unknown property gets Graph's
    /// own wording, anything else the reader's message.
    pub fn from_body_error(error: &serde_json::Error, type_name: &str) -> Self {
        let text = error.to_string();
        if let Some(rest) = text.strip_prefix("unknown field `") {
            let property = rest.split('`').next().unwrap_or_default();
            return Self::bad_request(
                "RequestBodyRead",
                format!(
                    "The property '{property}' does not exist on type '{type_name}'. Make sure to only use property names that are defined by the type or mark the type as open type."
                ),
            );
        }
        if error.is_syntax() || error.is_eof() {
            return Self::invalid_json();
        }
        Self::bad_request("RequestBodyRead", text)
    }

    /// The body Graph sends for this error.
    pub fn body(
        &self,
        request_id: &str,
        client_request_id: Option<&str>,
        date: DateTime<Utc>,
    ) -> Value {
        let mut inner = json!({
            "request-id": request_id,
            "date": date.format("%Y-%m-%dT%H:%M:%S").to_string(),
        });
        if let Some(client) = client_request_id {
            inner["client-request-id"] = Value::String(client.to_string());
        }
        json!({"error": {"code": self.code, "message": self.message, "innerError": inner}})
    }
}

/// A response before it becomes HTTP: `$batch` embeds these directly.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, String)>,
    pub body: Option<Value>,
}

impl ApiResponse {
    pub fn json(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Some(body),
        }
    }

    pub fn no_content() -> Self {
        Self {
            status: StatusCode::NO_CONTENT,
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn into_http(self) -> Response {
        let mut response = match self.body {
            Some(body) => (self.status, axum::Json(body)).into_response(),
            None => (self.status, Body::empty()).into_response(),
        };
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().append(name, value);
            }
        }
        response
    }
}

/// What the fault injector renders for a status: Graph's usual error for it.
pub fn fault_body(status: StatusCode) -> Response {
    let (code, message) = match status.as_u16() {
        401 => (
            "InvalidAuthenticationToken",
            "Access token has expired or is not yet valid.",
        ),
        403 => (
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        ),
        404 => (
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        ),
        409 | 412 => (
            "ErrorIrresolvableConflict",
            "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.",
        ),
        429 => ("TooManyRequests", "Please retry again later."),
        503 => (
            "serviceNotAvailable",
            "Service is unavailable. Please try again later.",
        ),
        504 => ("UnknownError", "Gateway timeout."),
        _ => (
            "ErrorInternalServerTransientError",
            "An internal server transient error occurred.",
        ),
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    let error = ApiError::new(status, code, message);
    let mut response = (
        status,
        axum::Json(error.body(&request_id, None, SystemClock.now())),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("request-id"), value);
    }
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
