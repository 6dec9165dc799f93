//! [`UpstreamClient`]: one upstream's `reqwest::Client` with its retry
//! policy, request budget and request log.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, RETRY_AFTER};
use reqwest::{Request, StatusCode};

use super::error::describe_transport;
use super::retry::Transient;
use super::{
    HttpError, Idempotency, MailboxLimits, RequestRecord, RetryPolicy, RollingBudget,
    SharedRequestLog, TransportKind, USER_AGENT, Upstream, parse_retry_after, scrub_path,
};
use crate::clock::SharedClock;

/// Connect and whole-request timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(60),
        }
    }
}

/// Reads an upstream's error body into a message for the request log.
pub type ErrorText = fn(StatusCode, &[u8]) -> Option<String>;

/// Everything that differs between upstreams.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    pub upstream: Upstream,
    pub timeouts: Timeouts,
    pub retry: RetryPolicy,
    /// A rolling budget shared by every request through this client.
    pub budget: Option<Arc<RollingBudget>>,
    /// Limits per [`RequestContext::mailbox`] (Graph); requests without a
    /// mailbox are not subject to them.
    pub mailbox_limits: Option<Arc<MailboxLimits>>,
    /// The response header carrying the upstream's request id (Graph's
    /// `request-id`).
    pub request_id_header: Option<HeaderName>,
    pub error_text: Option<ErrorText>,
}

impl UpstreamSettings {
    pub fn new(upstream: Upstream) -> Self {
        Self {
            upstream,
            timeouts: Timeouts::default(),
            retry: RetryPolicy::default(),
            budget: None,
            mailbox_limits: None,
            request_id_header: None,
            error_text: None,
        }
    }
}

/// Who a request is for, and whether it may be replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    pub idempotency: Idempotency,
    pub mailbox: Option<String>,
    pub agent_id: Option<i64>,
}

impl RequestContext {
    pub fn idempotent() -> Self {
        Self {
            idempotency: Idempotency::Idempotent,
            mailbox: None,
            agent_id: None,
        }
    }

    pub fn not_idempotent() -> Self {
        Self {
            idempotency: Idempotency::NotIdempotent,
            ..Self::idempotent()
        }
    }

    pub fn for_agent(mut self, agent_id: i64) -> Self {
        self.agent_id = Some(agent_id);
        self
    }

    pub fn for_mailbox(mut self, mailbox: impl Into<String>) -> Self {
        self.mailbox = Some(mailbox.into());
        self
    }
}

/// A complete HTTP answer, of any status.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub request_id: Option<String>,
    /// The attempts it took, this one included.
    pub attempts: u32,
    /// The method and scrubbed path, for error messages.
    pub method: String,
    pub path: String,
}

impl Reply {
    /// The `Retry-After` the upstream sent, if any.
    pub fn retry_after(&self, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
        retry_after(&self.headers, now)
    }
}

fn retry_after(headers: &HeaderMap, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| parse_retry_after(value, now))
}

/// The longest error text kept in the request log.
const MAX_ERROR_TEXT: usize = 500;

/// One upstream's HTTP client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct UpstreamClient {
    http: reqwest::Client,
    settings: UpstreamSettings,
    log: SharedRequestLog,
    clock: SharedClock,
}

impl UpstreamClient {
    /// Builds the upstream's `reqwest::Client` (rustls, timeouts, user agent).
    pub fn new(
        settings: UpstreamSettings,
        log: SharedRequestLog,
        clock: SharedClock,
    ) -> Result<Self, HttpError> {
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(settings.timeouts.connect)
            .timeout(settings.timeouts.request)
            .build()
            .map_err(|error| HttpError::Build {
                upstream: settings.upstream,
                reason: describe_transport(error),
            })?;
        Ok(Self {
            http,
            settings,
            log,
            clock,
        })
    }

    /// For building requests (`client.http().get(url)...build()`).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn upstream(&self) -> Upstream {
        self.settings.upstream
    }

    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Sends `request`, retrying what [`RetryPolicy`] and `context` allow,
    /// and returns the final answer whatever its status. Fails only when no
    /// answer came back at all.
    pub async fn send(
        &self,
        request: Request,
        context: &RequestContext,
    ) -> Result<Reply, HttpError> {
        let method = request.method().as_str().to_owned();
        let path = scrub_path(request.url());
        let policy = self.settings.retry;
        let gate = self
            .settings
            .mailbox_limits
            .as_ref()
            .zip(context.mailbox.as_deref())
            .map(|(limits, mailbox)| limits.gate(mailbox));
        let mut current = request;
        let mut attempt = 1;
        loop {
            // A streaming body cannot be replayed; such a request gets one try.
            let replay = if attempt < policy.max_attempts {
                current.try_clone()
            } else {
                None
            };
            let slot = match &gate {
                Some(gate) => gate.enter().await,
                None => None,
            };
            if let Some(budget) = &self.settings.budget {
                budget.acquire().await;
            }
            let outcome = self.attempt(current, &method, &path, context).await;
            drop(slot);
            let (transient, retry_after) = match &outcome {
                Ok(reply) => (
                    Transient::of_status(reply.status),
                    retry_after(&reply.headers, self.clock.now()),
                ),
                Err((kind, _)) => (Some(Transient::of_transport(*kind)), None),
            };
            let delay = transient
                .filter(|t| t.allows(context.idempotency))
                .and_then(|_| policy.delay(attempt, retry_after));
            // Throttling is per mailbox: every request to it waits, including
            // ones already queued, and even when this one is given up.
            if let (Some(gate), Ok(reply)) = (&gate, &outcome)
                && reply.status == StatusCode::TOO_MANY_REQUESTS
                && let Some(wait) = retry_after.or(delay)
            {
                gate.pause(wait);
            }
            match (outcome, delay.zip(replay)) {
                (outcome, Some((delay, replay))) => {
                    let status = outcome.as_ref().ok().map(|r| r.status.as_u16());
                    if matches!(status, Some(429 | 503)) {
                        self.log.throttled(self.settings.upstream, delay);
                    }
                    tracing::info!(
                        upstream = %self.settings.upstream,
                        %method,
                        %path,
                        ?status,
                        attempt,
                        wait_ms = delay.as_millis(),
                        "transient failure; retrying"
                    );
                    tokio::time::sleep(delay).await;
                    current = replay;
                    attempt += 1;
                }
                (Ok(mut reply), None) => {
                    reply.attempts = attempt;
                    return Ok(reply);
                }
                (Err((kind, reason)), None) => {
                    return Err(HttpError::Transport {
                        upstream: self.settings.upstream,
                        method,
                        path,
                        attempts: attempt,
                        kind,
                        reason,
                    });
                }
            }
        }
    }

    /// One attempt: send, read the whole body, record it.
    async fn attempt(
        &self,
        request: Request,
        method: &str,
        path: &str,
        context: &RequestContext,
    ) -> Result<Reply, (TransportKind, String)> {
        let at = self.clock.now();
        let started = tokio::time::Instant::now();
        let outcome = match self.http.execute(request).await {
            Ok(response) => {
                let status = response.status();
                let headers = response.headers().clone();
                response.bytes().await.map(|body| (status, headers, body))
            }
            Err(error) => Err(error),
        };
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut record = RequestRecord {
            at,
            upstream: self.settings.upstream,
            method: method.to_owned(),
            path: path.to_owned(),
            status: None,
            duration_ms,
            mailbox: context.mailbox.clone(),
            agent_id: context.agent_id,
            request_id: None,
            error: None,
        };
        let result = match outcome {
            Ok((status, headers, body)) => {
                let request_id = self
                    .settings
                    .request_id_header
                    .as_ref()
                    .and_then(|name| headers.get(name))
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned);
                record.status = Some(status.as_u16());
                record.request_id.clone_from(&request_id);
                if !status.is_success() {
                    record.error = Some(self.error_text(status, &body));
                }
                Ok(Reply {
                    status,
                    headers,
                    body,
                    request_id,
                    attempts: 1,
                    method: method.to_owned(),
                    path: path.to_owned(),
                })
            }
            Err(error) => {
                let kind = TransportKind::of(&error);
                let reason = describe_transport(error);
                record.error = Some(reason.clone());
                Err((kind, reason))
            }
        };
        self.log.record(record);
        result
    }

    /// The upstream's message for an error reply, short enough for the log.
    fn error_text(&self, status: StatusCode, body: &[u8]) -> String {
        let mut text = self
            .settings
            .error_text
            .and_then(|read| read(status, body))
            .unwrap_or_else(|| {
                status
                    .canonical_reason()
                    .unwrap_or("error status")
                    .to_owned()
            });
        if text.len() > MAX_ERROR_TEXT {
            text.truncate(text.floor_char_boundary(MAX_ERROR_TEXT));
            text.push('…');
        }
        text
    }
}
