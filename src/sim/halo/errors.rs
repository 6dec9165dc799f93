//! Halo's error responses. Halo has no single error format: validation
//! failures are plain text, .NET exceptions surface as
//! `{"ClassName","Message"}`, a bad bearer token is a bare 401.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The hosted rate limit as Halo words it.
pub fn rate_limit_text(requests: usize, window_seconds: u64) -> String {
    let window = if window_seconds.is_multiple_of(60) {
        format!("{} minute", window_seconds / 60)
    } else {
        format!("{window_seconds} second")
    };
    format!("Rate Limit Reached - {requests} Requests per rolling {window} window")
}

/// One Halo error, in the shape Halo uses for that kind of failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HaloError {
    /// 400 with a plain-text message (validation).
    Validation(String),
    /// 400 from a body the JSON reader could not bind.
    UnreadableBody {
        class: &'static str,
        message: String,
    },
    /// 404 with a plain-text message.
    NotFound(String),
    /// 401 with no body, as the bearer-token check answers.
    Unauthorized { description: &'static str },
    /// 429 with the rate-limit text.
    RateLimited(String),
}

impl HaloError {
    /// The error's text, for the control API.
    pub fn message(&self) -> String {
        match self {
            HaloError::Validation(message)
            | HaloError::NotFound(message)
            | HaloError::RateLimited(message)
            | HaloError::UnreadableBody { message, .. } => message.clone(),
            HaloError::Unauthorized { description } => (*description).to_owned(),
        }
    }

    /// A body the JSON binder could not turn into the expected type.
    pub fn unbindable(message: impl Into<String>) -> Self {
        HaloError::UnreadableBody {
            class: "Newtonsoft.Json.JsonSerializationException",
            message: message.into(),
        }
    }
}

impl IntoResponse for HaloError {
    fn into_response(self) -> Response {
        match self {
            HaloError::Validation(message) => (StatusCode::BAD_REQUEST, message).into_response(),
            HaloError::UnreadableBody { class, message } => (
                StatusCode::BAD_REQUEST,
                Json(json!({ "ClassName": class, "Message": message })),
            )
                .into_response(),
            HaloError::NotFound(message) => (StatusCode::NOT_FOUND, message).into_response(),
            HaloError::Unauthorized { description } => {
                let challenge =
                    format!("Bearer error=\"invalid_token\", error_description=\"{description}\"");
                let mut response = StatusCode::UNAUTHORIZED.into_response();
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    response
                        .headers_mut()
                        .insert(header::WWW_AUTHENTICATE, value);
                }
                response
            }
            HaloError::RateLimited(text) => (StatusCode::TOO_MANY_REQUESTS, text).into_response(),
        }
    }
}

/// Halo's body for an injected fault of `status`.
pub fn fault_body(status: StatusCode) -> Response {
    match status {
        StatusCode::TOO_MANY_REQUESTS => {
            HaloError::RateLimited(rate_limit_text(300, 300)).into_response()
        }
        StatusCode::UNAUTHORIZED => HaloError::Unauthorized {
            description: "The token is invalid",
        }
        .into_response(),
        status if status.is_server_error() => (
            status,
            Json(json!({
                "ClassName": "System.Exception",
                "Message": "An error has occurred. Please contact your administrator.",
            })),
        )
            .into_response(),
        status => (
            status,
            status.canonical_reason().unwrap_or("Error").to_owned(),
        )
            .into_response(),
    }
}
