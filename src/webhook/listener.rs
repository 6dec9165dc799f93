//! The embedded listener Graph posts to (behind the operator's TLS proxy).
//!
//! Only `POST` on the two configured paths is served. A `?validationToken=`
//! is echoed as `text/plain`; anything else must be an `application/json`
//! body of at most [`MAX_BODY_BYTES`], read within [`BODY_TIMEOUT`]. A
//! notification collection is verified and recorded in SQLite before the
//! `202` goes out (Graph allows 3 s and throttles slow endpoints); if that
//! fails or takes longer than [`PERSIST_TIMEOUT`], the answer is `503` so
//! Graph delivers again. Every request, whatever its fate, gets one row in
//! the inbound request log.
//!
//! A well-formed collection is answered `202` even when none of its items
//! verifies: Graph expects a 2xx for every delivery (a 4xx for a
//! subscription halosync no longer knows would only make Graph retry it for
//! hours), and a forger learns nothing from an answer that never varies.
//! Such items are dropped, counted in the log, and never acted on.

use std::future::Future;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::intake::{self, RequestFacts};
use super::notification;
use super::queue::WebhookQueue;
use crate::clock::SharedClock;
use crate::config::WebhookConfig;
use crate::metrics::Metrics;
use crate::store::inbound_log::{self, InboundOutcome, InboundRecord};

/// Larger bodies are refused with `413`; Graph's batches are far smaller.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The body must arrive within this time (`408` otherwise).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(2);
/// Recording must finish within this time, leaving margin in Graph's 3 s.
pub const PERSIST_TIMEOUT: Duration = Duration::from_secs(2);
/// Validation tokens longer than this are refused; Graph's are far shorter.
pub const MAX_TOKEN_CHARS: usize = 1024;

/// What the listener shares between requests. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WebhookState {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    queue: WebhookQueue,
    clock: SharedClock,
    notify_path: String,
    lifecycle_path: String,
    maintenance: Arc<Notify>,
    /// Set once by the service; tests and the CLI's handshake listener
    /// run without.
    metrics: std::sync::OnceLock<Metrics>,
}

impl WebhookState {
    pub fn new(config: &WebhookConfig, queue: WebhookQueue, clock: SharedClock) -> Self {
        Self {
            inner: Arc::new(Shared {
                queue,
                clock,
                notify_path: config.notify_path.clone(),
                lifecycle_path: config.lifecycle_path.clone(),
                maintenance: Arc::new(Notify::new()),
                metrics: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Counts every request and its time to answer in `metrics`.
    pub fn with_metrics(self, metrics: Metrics) -> Self {
        // Only ever set here, on a state not yet serving.
        let _ = self.inner.metrics.set(metrics);
        self
    }

    /// Signalled when the subscription manager has work: a lifecycle event
    /// arrived, or a notification came through a subscription past half its
    /// lifetime. Pass it to [`super::tend`].
    pub fn maintenance_wakeup(&self) -> Arc<Notify> {
        self.inner.maintenance.clone()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("the webhook listener failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// Serves the listener on `listener` until `shutdown` completes; requests
/// in flight are finished first.
pub async fn serve(
    listener: TcpListener,
    state: WebhookState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WebhookError> {
    serve_public(listener, Some(state), Router::new(), shutdown).await
}

/// Serves the public listener: `routes` (the sign-in pages), and Graph's
/// webhook paths when `webhooks` is given (everything else is `404`).
pub async fn serve_public(
    listener: TcpListener,
    webhooks: Option<WebhookState>,
    routes: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WebhookError> {
    let app = match webhooks {
        Some(state) => routes.merge(Router::new().fallback(handle).with_state(state)),
        None => routes,
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(WebhookError::Serve)
}

/// How a request was answered, for the response and its log row.
struct Answer {
    status: StatusCode,
    outcome: InboundOutcome,
    detail: String,
    /// The echoed validation token.
    token: Option<String>,
}

impl Answer {
    fn refuse(status: StatusCode, outcome: InboundOutcome, detail: impl Into<String>) -> Self {
        Self {
            status,
            outcome,
            detail: detail.into(),
            token: None,
        }
    }
}

async fn handle(State(state): State<WebhookState>, request: Request) -> Response {
    let facts = RequestFacts {
        at: state.inner.clock.now(),
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
        started: Instant::now(),
    };
    let (answer, recorded) = match answer(&state, &facts, request).await {
        Ok(recorded) => (recorded, true),
        Err(answer) => (answer, false),
    };
    if !recorded {
        log_request(&state, &facts, &answer).await;
    }
    if let Some(metrics) = state.inner.metrics.get() {
        metrics.webhook_request(answer.outcome, facts.started.elapsed());
    }
    respond(answer)
}

/// The answer to a request; `Err` for those not yet in the inbound log.
async fn answer(
    state: &WebhookState,
    facts: &RequestFacts,
    request: Request,
) -> Result<Answer, Answer> {
    let shared = &state.inner;
    if facts.path != shared.notify_path && facts.path != shared.lifecycle_path {
        return Err(Answer::refuse(
            StatusCode::NOT_FOUND,
            InboundOutcome::Rejected,
            "unknown path",
        ));
    }
    if request.method() != Method::POST {
        return Err(Answer::refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            InboundOutcome::Rejected,
            "only POST is served",
        ));
    }
    if let Some(token) = validation_token(request.uri().query()) {
        return Err(validation(token));
    }
    if !is_json(request.headers()) {
        return Err(Answer::refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            InboundOutcome::Rejected,
            "notifications must be application/json",
        ));
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let body = read_body(request.into_body()).await?;
    let items = notification::parse(&body).map_err(|malformed| {
        Answer::refuse(
            StatusCode::BAD_REQUEST,
            InboundOutcome::Malformed,
            malformed.to_string(),
        )
    })?;
    let store = shared.queue.store().clone();
    let request = facts.clone();
    let recording = tokio::task::spawn_blocking(move || {
        let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
        intake::record(&mut store, items, &request, StatusCode::ACCEPTED.as_u16())
    });
    let failed = |why: String| {
        tracing::error!(error = %why, "could not record a Graph notification; answering 503 so Graph delivers it again");
        Answer::refuse(StatusCode::SERVICE_UNAVAILABLE, InboundOutcome::Error, why)
    };
    let intake = match tokio::time::timeout(PERSIST_TIMEOUT, recording).await {
        Ok(Ok(Ok(intake))) => intake,
        Ok(Ok(Err(error))) => return Err(failed(error.to_string())),
        Ok(Err(error)) => return Err(failed(format!("the recording task failed: {error}"))),
        Err(_) => {
            return Err(failed(format!(
                "recording took longer than {PERSIST_TIMEOUT:?}"
            )));
        }
    };
    if intake.queued {
        shared.queue.wake();
    }
    if intake.needs_tending {
        shared.maintenance.notify_one();
    }
    Ok(Answer {
        status: StatusCode::ACCEPTED,
        outcome: intake.outcome.unwrap_or(InboundOutcome::Accepted),
        detail: String::new(),
        token: None,
    })
}

/// The decoded `validationToken` query parameter, if present.
fn validation_token(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(name, _)| name == "validationToken")
        .map(|(_, value)| value.into_owned())
}

/// Echoes a sane token; refuses one that is too long or not printable
/// ASCII, which no Graph token is.
fn validation(token: String) -> Answer {
    if token.chars().count() > MAX_TOKEN_CHARS {
        return Answer::refuse(
            StatusCode::BAD_REQUEST,
            InboundOutcome::Rejected,
            format!("validation token longer than {MAX_TOKEN_CHARS} characters"),
        );
    }
    if token.is_empty() || !token.chars().all(|c| c == ' ' || c.is_ascii_graphic()) {
        return Answer::refuse(
            StatusCode::BAD_REQUEST,
            InboundOutcome::Rejected,
            "validation token empty or not printable",
        );
    }
    Answer {
        status: StatusCode::OK,
        outcome: InboundOutcome::Validation,
        detail: String::new(),
        token: Some(token),
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

fn too_large() -> Answer {
    Answer::refuse(
        StatusCode::PAYLOAD_TOO_LARGE,
        InboundOutcome::Rejected,
        format!("body larger than {MAX_BODY_BYTES} bytes"),
    )
}

/// Reads at most [`MAX_BODY_BYTES`] within [`BODY_TIMEOUT`].
async fn read_body(body: Body) -> Result<bytes::Bytes, Answer> {
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY_BYTES)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(too_large()),
        Err(_) => Err(Answer::refuse(
            StatusCode::REQUEST_TIMEOUT,
            InboundOutcome::Rejected,
            format!("body not received within {BODY_TIMEOUT:?}"),
        )),
    }
}

/// Writes the log row of a request [`intake::record`] did not log.
async fn log_request(state: &WebhookState, facts: &RequestFacts, answer: &Answer) {
    let record = InboundRecord {
        at: facts.at,
        method: facts.method.clone(),
        path: facts.path.clone(),
        status: answer.status.as_u16(),
        outcome: answer.outcome,
        subscription_id: None,
        mailbox: None,
        item_count: 0,
        duration_ms: u64::try_from(facts.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        detail: (!answer.detail.is_empty()).then(|| answer.detail.clone()),
    };
    let store = state.inner.queue.store().clone();
    let written = tokio::task::spawn_blocking(move || {
        let store = store.lock().unwrap_or_else(PoisonError::into_inner);
        inbound_log::insert(store.connection(), &record)
    })
    .await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "could not write the inbound request log"),
        Err(error) => tracing::warn!(%error, "the inbound request log writer failed"),
    }
}

fn respond(answer: Answer) -> Response {
    let mut response = match answer.token {
        Some(token) => (
            answer.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            token,
        )
            .into_response(),
        None if answer.status.is_success() => answer.status.into_response(),
        None => (answer.status, answer.detail).into_response(),
    };
    let headers = response.headers_mut();
    // The token is echoed verbatim: make sure nothing renders it as HTML.
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if answer.status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
    }
    response
}
