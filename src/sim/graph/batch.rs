//! `POST /$batch`: up to 20 requests, each served by the same handlers as a
//! top-level request (so each is throttled on its own), with `dependsOn`.
//!
//! Requests run one at a time in dependency order; Graph runs at most four
//! at a time against a mailbox, so sequential execution never trips the
//! concurrency limit a real batch would not.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Shared;
use super::error::{ApiError, ApiResponse};
use super::routes::{ApiRequest, dispatch};

const MAX_REQUESTS: usize = 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    requests: Vec<BatchRequest>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BatchRequest {
    id: String,
    method: String,
    url: String,
    #[serde(default)]
    headers: HashMap<String, String>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    depends_on: Vec<String>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("BadRequest", message)
}

pub(crate) async fn run(
    shared: &Arc<Shared>,
    request: ApiRequest,
) -> Result<ApiResponse, ApiError> {
    let body: BatchBody = serde_json::from_slice(&request.body)
        .map_err(|e| ApiError::from_body_error(&e, "batch request"))?;
    if body.requests.len() > MAX_REQUESTS {
        return Err(bad(format!(
            "The number of requests in the batch ({}) exceeds the limit of {MAX_REQUESTS}.",
            body.requests.len()
        )));
    }
    let mut ids = HashSet::new();
    for item in &body.requests {
        if !ids.insert(item.id.as_str()) {
            return Err(bad(format!(
                "The batch request id '{}' is used more than once.",
                item.id
            )));
        }
    }
    for item in &body.requests {
        if let Some(missing) = item
            .depends_on
            .iter()
            .find(|d| !ids.contains(d.as_str()) || *d == &item.id)
        {
            return Err(bad(format!(
                "Request '{}' depends on '{missing}', which is not an earlier request in this batch.",
                item.id
            )));
        }
    }
    let authorization = request.headers.get(header::AUTHORIZATION).cloned();
    let mut statuses: HashMap<String, StatusCode> = HashMap::new();
    let mut responses = Vec::new();
    let mut remaining: Vec<&BatchRequest> = body.requests.iter().collect();
    while !remaining.is_empty() {
        let Some(position) = remaining
            .iter()
            .position(|r| r.depends_on.iter().all(|d| statuses.contains_key(d)))
        else {
            return Err(bad("The dependsOn chain of the batch has a cycle."));
        };
        let item = remaining.remove(position);
        let failed_dependency = item
            .depends_on
            .iter()
            .any(|d| statuses.get(d).is_some_and(|s| !s.is_success()));
        let (status, headers, body) = if failed_dependency {
            let error = ApiError::new(
                StatusCode::FAILED_DEPENDENCY,
                "FailedDependency",
                "A request this request depends on failed.",
            );
            let request_id = uuid::Uuid::new_v4().to_string();
            (
                StatusCode::FAILED_DEPENDENCY,
                serde_json::Map::new(),
                Some(error.body(&request_id, None, shared.now())),
            )
        } else {
            let sub = match to_request(item, authorization.clone()) {
                Ok(sub) => sub,
                Err(error) => {
                    statuses.insert(item.id.clone(), error.status);
                    let request_id = uuid::Uuid::new_v4().to_string();
                    responses.push(json!({"id": item.id, "status": error.status.as_u16(), "headers": {}, "body": error.body(&request_id, None, shared.now())}));
                    continue;
                }
            };
            let response = dispatch(shared, sub, false).await;
            let mut headers = serde_json::Map::new();
            for (name, value) in &response.headers {
                headers.insert(name.as_str().to_string(), Value::String(value.clone()));
            }
            if response.body.is_some() {
                headers.insert("content-type".into(), json!("application/json"));
            }
            (response.status, headers, response.body)
        };
        statuses.insert(item.id.clone(), status);
        let mut entry = json!({"id": item.id, "status": status.as_u16(), "headers": headers});
        if let Some(body) = body {
            entry["body"] = body;
        }
        responses.push(entry);
    }
    Ok(ApiResponse::json(
        StatusCode::OK,
        json!({"responses": responses}),
    ))
}

/// Turns a batch entry into a request for the router; its url is relative to
/// `/v1.0` and it carries the batch's own credentials.
fn to_request(
    item: &BatchRequest,
    authorization: Option<HeaderValue>,
) -> Result<ApiRequest, ApiError> {
    let method = Method::from_bytes(item.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| bad(format!("'{}' is not an HTTP method.", item.method)))?;
    let url = item.url.trim();
    if url.starts_with("http://") || url.starts_with("https://") {
        return Err(bad(
            "Batch request urls must be relative, such as /users/{id}/events.",
        ));
    }
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let path = format!("/v1.0/{}", path.trim_start_matches('/'));
    let query = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let mut headers = HeaderMap::new();
    for (name, value) in &item.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            return Err(bad(format!(
                "The header '{name}' of request '{}' is not valid.",
                item.id
            )));
        };
        headers.append(name, value);
    }
    if let Some(auth) = authorization {
        headers.insert(header::AUTHORIZATION, auth);
    }
    let body = match &item.body {
        Some(value) => Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
        None => Bytes::new(),
    };
    Ok(ApiRequest {
        method,
        path,
        query,
        headers,
        body,
    })
}
