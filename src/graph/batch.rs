//! JSON `$batch`: up to 20 requests per call, each answered (and throttled)
//! on its own. Items throttled inside a batch are sent again, in a new
//! batch, after the longest `retry-after` among them — SDKs leave that to
//! the caller.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::client::{Call, GraphClient, decode};
use super::error::GraphError;
use super::events::PAGE_SIZE;
use crate::http::parse_retry_after;

/// Graph takes at most this many requests per `$batch`.
pub const MAX_BATCH_REQUESTS: usize = 20;

/// One request inside a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRequest {
    /// Unique within the call; the response carries it back.
    pub id: String,
    pub method: Method,
    /// Relative to `/v1.0`, starting with `/` (e.g. `/users/a@b.c/events/AAMk…`).
    pub url: String,
    pub body: Option<Value>,
    pub if_match: Option<String>,
}

impl BatchRequest {
    pub fn get(id: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            method: Method::GET,
            url: url.into(),
            body: None,
            if_match: None,
        }
    }

    /// Safe to send again after a 503/504 (it may have been applied).
    fn replayable(&self) -> bool {
        self.method == Method::GET || self.if_match.is_some()
    }
}

/// One answer from a batch.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BatchResponse {
    pub id: String,
    pub status: u16,
    #[serde(default)]
    pub headers: HashMap<String, String>,
    #[serde(default)]
    pub body: Option<Value>,
}

impl BatchResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The item's body as `T` when it succeeded, its typed error otherwise.
    pub fn into_result<T: DeserializeOwned>(self, mailbox: &str) -> Result<T, GraphError> {
        if !(200..300).contains(&self.status) {
            return Err(self.error(mailbox, None));
        }
        serde_json::from_value(self.body.unwrap_or(Value::Null))
            .map_err(|e| decode(mailbox, &format!("batch item {}", self.id), e))
    }

    fn error(&self, mailbox: &str, retry_after: Option<Duration>) -> GraphError {
        let body = self.body.as_ref().map(Value::to_string).unwrap_or_default();
        GraphError::from_response(
            mailbox,
            self.status,
            retry_after,
            self.header("request-id").map(str::to_owned),
            body.as_bytes(),
        )
    }
}

#[derive(Deserialize)]
struct BatchReply {
    #[serde(default)]
    responses: Vec<BatchResponse>,
}

impl GraphClient {
    /// Sends `requests` in batches of [`MAX_BATCH_REQUESTS`] and returns one
    /// response per request, in request order. An item answered 429 (or
    /// 503/504 when replaying it is safe) is retried after its
    /// `retry-after`, up to the retry policy's attempts; what is still
    /// failing then is returned as it came. `mailbox` is the mailbox the
    /// items concern, for the per-mailbox limits (`None` when they span
    /// several).
    pub async fn batch(
        &self,
        mailbox: Option<&str>,
        requests: &[BatchRequest],
    ) -> Result<Vec<BatchResponse>, GraphError> {
        let mut answered: HashMap<String, BatchResponse> = HashMap::with_capacity(requests.len());
        for chunk in requests.chunks(MAX_BATCH_REQUESTS) {
            self.batch_chunk(mailbox, chunk, &mut answered).await?;
        }
        requests
            .iter()
            .map(|request| {
                answered.remove(&request.id).ok_or_else(|| {
                    decode(
                        mailbox.unwrap_or_default(),
                        "POST /$batch",
                        format!("no response for request `{}`", request.id),
                    )
                })
            })
            .collect()
    }

    async fn batch_chunk(
        &self,
        mailbox: Option<&str>,
        chunk: &[BatchRequest],
        answered: &mut HashMap<String, BatchResponse>,
    ) -> Result<(), GraphError> {
        let policy = self.retry_policy();
        let mut pending: Vec<&BatchRequest> = chunk.iter().collect();
        let mut attempt = 1;
        while !pending.is_empty() {
            let responses = self.send_batch(mailbox, &pending).await?;
            let now = self.clock().now();
            let mut again = Vec::new();
            let mut longest: Option<Duration> = None;
            for response in responses {
                let Some(request) = pending.iter().find(|r| r.id == response.id) else {
                    continue;
                };
                let throttled = response.status == 429
                    || (matches!(response.status, 503 | 504) && request.replayable());
                if throttled && attempt < policy.max_attempts {
                    let wait = response
                        .header("retry-after")
                        .and_then(|value| parse_retry_after(value, now));
                    longest = longest.max(wait);
                    again.push(*request);
                }
                answered.insert(response.id.clone(), response);
            }
            if again.is_empty() {
                break;
            }
            let Some(wait) = policy.delay(attempt, longest) else {
                // Graph asked for a longer pause than this policy waits:
                // the throttled answers go back to the caller as they are.
                break;
            };
            tracing::info!(
                items = again.len(),
                attempt,
                wait_ms = wait.as_millis(),
                "batch items throttled; retrying them"
            );
            tokio::time::sleep(wait).await;
            pending = again;
            attempt += 1;
        }
        Ok(())
    }

    async fn send_batch(
        &self,
        mailbox: Option<&str>,
        requests: &[&BatchRequest],
    ) -> Result<Vec<BatchResponse>, GraphError> {
        // The batch carries no Prefer of its own that reaches the items.
        // The page size matters only to the listings among them.
        let prefer = self.preferences(Some(PAGE_SIZE));
        let items: Vec<Value> = requests
            .iter()
            .map(|request| {
                let mut headers = serde_json::Map::new();
                headers.insert("Prefer".into(), json!(prefer));
                if let Some(etag) = &request.if_match {
                    headers.insert("If-Match".into(), json!(etag));
                }
                let mut item = json!({"id": request.id, "method": request.method.as_str(), "url": request.url});
                if let Some(body) = &request.body {
                    headers.insert("Content-Type".into(), json!("application/json"));
                    item["body"] = body.clone();
                }
                item["headers"] = Value::Object(headers);
                item
            })
            .collect();
        let mut call = Call::new(Method::POST, self.url(&["$batch"]), mailbox)
            .json(json!({"requests": items}));
        call.replay_safe = requests.iter().all(|r| r.replayable());
        let reply: BatchReply = self.send_json(call).await?;
        Ok(reply.responses)
    }

    /// The path (and query) of `url` relative to `/v1.0`, for a batch item.
    pub(crate) fn batch_path(&self, url: &url::Url) -> String {
        let root = self.url(&[]);
        let full = &url[url::Position::BeforePath..];
        let prefix = root.path().trim_end_matches('/');
        full.strip_prefix(prefix).unwrap_or(full).to_string()
    }
}
