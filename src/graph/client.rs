//! [`GraphClient`]: one connection's (or one per-agent sign-in's) way into
//! Microsoft Graph, on the shared HTTP layer.
//!
//! Every request carries the bearer token, `Prefer: IdType="ImmutableId"`
//! (when enabled), `outlook.timezone="UTC"` and
//! `outlook.body-content-type="text"`, and its own
//! `client-request-id`; a failure is logged with Graph's `request-id`. A 401
//! gets one new token and one more try. Retries, the per-mailbox limits
//! (4 in flight, a budget under 10,000 per 10 minutes, a pause while
//! throttled) and the request log are [`crate::http`]'s.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderValue, IF_MATCH};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use url::Url;

use super::auth::{Flow, RefreshTokens, TokenProvider};
use super::error::{Access, GraphError};
use crate::clock::SharedClock;
use crate::config::{ConnectionConfig, ConnectionKind};
use crate::http::{
    HttpError, Idempotency, MailboxLimits, Reply, RequestContext, RetryPolicy, SharedRequestLog,
    Timeouts, Upstream, UpstreamClient, UpstreamSettings,
};

/// The window Graph counts its per-mailbox request limit over.
pub const MAILBOX_BUDGET_WINDOW: Duration = Duration::from_secs(600);

/// Tuning that is not in the configuration file.
#[derive(Debug, Clone)]
pub struct GraphClientOptions {
    pub timeouts: Timeouts,
    pub retry: RetryPolicy,
    /// Requests in flight per mailbox; Graph allows 4 per app and mailbox.
    pub mailbox_concurrency: usize,
    /// Requests per mailbox per [`GraphClientOptions::budget_window`]; Graph
    /// allows 10,000 per 10 minutes, and halosync keeps a margin.
    pub mailbox_budget: u32,
    pub budget_window: Duration,
}

impl Default for GraphClientOptions {
    fn default() -> Self {
        Self {
            timeouts: Timeouts::default(),
            retry: RetryPolicy::default(),
            mailbox_concurrency: 4,
            mailbox_budget: 9_000,
            budget_window: MAILBOX_BUDGET_WINDOW,
        }
    }
}

/// The HTTP clients every Graph connection shares: one for Graph (with the
/// per-mailbox limits, shared by all connections and agents, since Graph
/// counts per app and mailbox) and one for the identity platform.
#[derive(Debug, Clone)]
pub struct GraphUpstreams {
    pub graph: UpstreamClient,
    pub identity: UpstreamClient,
    retry: RetryPolicy,
}

impl GraphUpstreams {
    pub fn new(
        log: SharedRequestLog,
        clock: SharedClock,
        options: &GraphClientOptions,
    ) -> Result<Self, HttpError> {
        let graph = UpstreamSettings {
            timeouts: options.timeouts,
            retry: options.retry,
            mailbox_limits: Some(Arc::new(MailboxLimits::new(
                options.mailbox_concurrency,
                options.mailbox_budget,
                options.budget_window,
            ))),
            request_id_header: Some(reqwest::header::HeaderName::from_static("request-id")),
            error_text: Some(graph_error_text),
            ..UpstreamSettings::new(Upstream::Graph)
        };
        let identity = UpstreamSettings {
            timeouts: options.timeouts,
            retry: options.retry,
            error_text: Some(identity_error_text),
            ..UpstreamSettings::new(Upstream::Identity)
        };
        Ok(Self {
            graph: UpstreamClient::new(graph, log.clone(), clock.clone())?,
            identity: UpstreamClient::new(identity, log, clock)?,
            retry: options.retry,
        })
    }
}

/// `code: message` from a Graph error body, for the request log.
fn graph_error_text(_status: StatusCode, body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let error = value.get("error")?;
    let code = error.get("code").and_then(|c| c.as_str()).unwrap_or("");
    let message = error.get("message").and_then(|m| m.as_str()).unwrap_or("");
    Some(format!("{code}: {message}"))
}

/// The OAuth error and the first line of its description (the rest is
/// trace ids), for the request log.
fn identity_error_text(_status: StatusCode, body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let error = value.get("error")?.as_str()?;
    let description = value
        .get("error_description")
        .and_then(|d| d.as_str())
        .and_then(|d| d.lines().next())
        .unwrap_or("");
    Some(format!("{error}: {description}"))
}

/// A Graph client for one connection, or one agent of a per-agent
/// connection. Cheap to clone.
#[derive(Clone)]
pub struct GraphClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: UpstreamClient,
    tokens: TokenProvider,
    /// `<graph root>/v1.0/`.
    root: Url,
    immutable_ids: bool,
    access: Access,
    connection: String,
    /// The Halo agent a per-agent client signs in as, for the request log.
    agent_id: Option<i64>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient")
            .field("connection", &self.inner.connection)
            .field("root", &self.inner.root.as_str())
            .finish_non_exhaustive()
    }
}

/// One request to Graph, before the client adds what every request carries.
pub(crate) struct Call<'a> {
    pub method: Method,
    pub url: Url,
    /// The mailbox the request concerns (limits and error messages); `None`
    /// for tenant-wide resources such as subscriptions.
    pub mailbox: Option<&'a str>,
    pub body: Option<serde_json::Value>,
    pub if_match: Option<&'a str>,
    /// The caller knows a replay is harmless: a POST the server
    /// deduplicates (event create with `transactionId`) or that changes
    /// nothing (`$batch` of reads, `translateExchangeIds`), or a write that
    /// ends the same however often it is applied (a subscription's absolute
    /// expiry, its deletion). Event PATCH/DELETE rely on `If-Match` instead.
    pub replay_safe: bool,
    pub max_page_size: Option<u32>,
}

impl<'a> Call<'a> {
    pub fn new(method: Method, url: Url, mailbox: Option<&'a str>) -> Self {
        Self {
            method,
            url,
            mailbox,
            body: None,
            if_match: None,
            replay_safe: false,
            max_page_size: None,
        }
    }

    pub fn json(mut self, body: serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }

    /// Whether replaying this request after an answer was lost is harmless:
    /// reads always; a write when the caller says so, or when `If-Match`
    /// makes a second application fail instead of repeating.
    fn idempotency(&self) -> Idempotency {
        let safe = matches!(self.method, Method::GET | Method::HEAD)
            || self.replay_safe
            || self.if_match.is_some();
        if safe {
            Idempotency::Idempotent
        } else {
            Idempotency::NotIdempotent
        }
    }
}

impl GraphClient {
    /// A client for `connection` getting tokens by `flow`.
    pub fn new(
        connection: &ConnectionConfig,
        flow: Flow,
        upstreams: &GraphUpstreams,
    ) -> Result<Self, GraphError> {
        Self::build(connection, flow, None, upstreams)
    }

    /// The subject a connection's stored sign-in is kept under: the
    /// connection's own (delegated) or the agent's (per-agent).
    pub fn sign_in_subject(connection: &ConnectionConfig, agent_id: Option<i64>) -> String {
        Self::sign_in_subject_for(connection.kind, &connection.name, agent_id)
    }

    /// [`GraphClient::sign_in_subject`] from the connection's type and name.
    pub fn sign_in_subject_for(
        kind: ConnectionKind,
        connection: &str,
        agent_id: Option<i64>,
    ) -> String {
        match (kind, agent_id) {
            (ConnectionKind::PerAgent, Some(id)) => format!("agent:{id}"),
            _ => format!("connection:{connection}"),
        }
    }

    /// A client for one agent of a per-agent connection, signed in with the
    /// agent's stored refresh token; its requests are logged with the agent.
    pub fn for_agent(
        connection: &ConnectionConfig,
        agent_id: i64,
        tokens: Arc<dyn RefreshTokens>,
        upstreams: &GraphUpstreams,
    ) -> Result<Self, GraphError> {
        let flow = Flow::RefreshToken {
            subject: Self::sign_in_subject(connection, Some(agent_id)),
            tokens,
        };
        Self::build(connection, flow, Some(agent_id), upstreams)
    }

    fn build(
        connection: &ConnectionConfig,
        flow: Flow,
        agent_id: Option<i64>,
        upstreams: &GraphUpstreams,
    ) -> Result<Self, GraphError> {
        let tokens = TokenProvider::new(
            upstreams.identity.clone(),
            connection,
            flow,
            upstreams.graph.clock().clone(),
        )?;
        let root = connection.graph_url.join("v1.0/").map_err(|e| {
            GraphError::Auth(super::auth::AuthError::Configuration {
                connection: connection.name.clone(),
                message: format!(
                    "graph_url `{}` cannot take /v1.0/: {e}",
                    connection.graph_url
                ),
            })
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                http: upstreams.graph.clone(),
                tokens,
                root,
                immutable_ids: connection.immutable_ids,
                access: match connection.kind {
                    ConnectionKind::Delegated => Access::Delegate,
                    ConnectionKind::Application | ConnectionKind::PerAgent => Access::Direct,
                },
                connection: connection.name.clone(),
                agent_id,
                retry: upstreams.retry,
            }),
        })
    }

    pub fn connection(&self) -> &str {
        &self.inner.connection
    }

    /// How this client reaches mailboxes; pass it to [`GraphError::diagnosis`].
    pub fn access(&self) -> Access {
        self.inner.access
    }

    /// Gets an access token (cached or new): checks the connection's
    /// credentials or sign-in without calling Graph.
    pub async fn check_token(&self) -> Result<(), GraphError> {
        self.inner.tokens.token().await?;
        Ok(())
    }

    pub(crate) fn retry_policy(&self) -> RetryPolicy {
        self.inner.retry
    }

    pub(crate) fn clock(&self) -> &SharedClock {
        self.inner.http.clock()
    }

    /// `<root>/v1.0/<segments…>`, each segment escaped.
    pub(crate) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.root.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// `users/{mailbox}/<segments…>`.
    pub(crate) fn user_url(&self, mailbox: &str, segments: &[&str]) -> Url {
        let mut all = vec!["users", mailbox];
        all.extend_from_slice(segments);
        self.url(&all)
    }

    /// A link Graph handed out (`@odata.nextLink`/`deltaLink`), checked to
    /// point at this client's Graph, so a token is never sent elsewhere.
    pub(crate) fn link(&self, link: &str, mailbox: &str) -> Result<Url, GraphError> {
        let url = Url::parse(link).map_err(|e| decode(mailbox, "a paging link", e))?;
        if url.origin() != self.inner.root.origin() {
            return Err(decode(
                mailbox,
                "a paging link",
                format!(
                    "it points at another host ({})",
                    url.origin().ascii_serialization()
                ),
            ));
        }
        Ok(url)
    }

    /// The `Prefer` header value every request carries. Bodies come as
    /// plain text, the form halosync syncs, so an event's content reads the
    /// same whichever client last wrote it.
    pub(crate) fn preferences(&self, max_page_size: Option<u32>) -> String {
        let mut prefer =
            String::from("outlook.timezone=\"UTC\", outlook.body-content-type=\"text\"");
        if self.inner.immutable_ids {
            prefer.insert_str(0, "IdType=\"ImmutableId\", ");
        }
        if let Some(size) = max_page_size {
            prefer.push_str(&format!(", odata.maxpagesize={size}"));
        }
        prefer
    }

    /// Sends `call` and returns the successful reply; anything else becomes
    /// a [`GraphError`].
    pub(crate) async fn send(&self, call: Call<'_>) -> Result<Reply, GraphError> {
        let mailbox = call.mailbox.unwrap_or_default();
        let context = RequestContext {
            idempotency: call.idempotency(),
            mailbox: call.mailbox.map(str::to_owned),
            agent_id: self.inner.agent_id,
        };
        let client_request_id = uuid::Uuid::new_v4().to_string();
        let mut refreshed = false;
        loop {
            let token = self.inner.tokens.token().await?;
            let mut builder = self
                .inner
                .http
                .http()
                .request(call.method.clone(), call.url.clone())
                .bearer_auth(token.expose_secret())
                .header("Prefer", self.preferences(call.max_page_size))
                .header("client-request-id", &client_request_id);
            if let Some(etag) = call.if_match {
                builder = builder.header(IF_MATCH, etag);
            }
            if let Some(body) = &call.body {
                builder = builder
                    .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                    .body(body.to_string());
            }
            let request = builder
                .build()
                .map_err(|e| GraphError::Transport(e.without_url().to_string()))?;
            let reply = self.inner.http.send(request, &context).await?;
            if reply.status == StatusCode::UNAUTHORIZED && !refreshed {
                tracing::info!(connection = %self.inner.connection, path = %reply.path,
                    "Graph refused the access token; getting a new one");
                self.inner.tokens.invalidate(&token);
                refreshed = true;
                continue;
            }
            if reply.status.is_success() {
                return Ok(reply);
            }
            let error = GraphError::from_response(
                mailbox,
                reply.status.as_u16(),
                reply.retry_after(self.clock().now()),
                reply.request_id.clone(),
                &reply.body,
            );
            macro_rules! failed {
                ($level:expr) => {
                    tracing::event!(
                        $level,
                        connection = %self.inner.connection,
                        method = %reply.method,
                        path = %reply.path,
                        status = reply.status.as_u16(),
                        request_id = reply.request_id.as_deref().unwrap_or("-"),
                        %client_request_id,
                        attempts = reply.attempts,
                        %error,
                        "Graph request failed"
                    )
                };
            }
            // "Not found" is an answer (a deletion confirmed, an occurrence
            // cancelled): the caller decides whether it is a problem.
            if matches!(error, GraphError::ItemNotFound { .. }) {
                failed!(tracing::Level::DEBUG);
            } else {
                failed!(tracing::Level::WARN);
            }
            return Err(error);
        }
    }

    /// Sends `call` and reads the reply's JSON body as `T`.
    pub(crate) async fn send_json<T: DeserializeOwned>(
        &self,
        call: Call<'_>,
    ) -> Result<T, GraphError> {
        let mailbox = call.mailbox.unwrap_or_default().to_owned();
        let reply = self.send(call).await?;
        parse(&reply, &mailbox)
    }
}

/// The reply's JSON body as `T`.
pub(crate) fn parse<T: DeserializeOwned>(reply: &Reply, mailbox: &str) -> Result<T, GraphError> {
    serde_json::from_slice(&reply.body)
        .map_err(|e| decode(mailbox, &format!("{} {}", reply.method, reply.path), e))
}

pub(crate) fn decode(mailbox: &str, request: &str, detail: impl std::fmt::Display) -> GraphError {
    GraphError::Decode {
        mailbox: mailbox.to_string(),
        request: request.to_string(),
        detail: detail.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(method: Method) -> Call<'static> {
        Call::new(method, Url::parse("https://g/v1.0/x").expect("url"), None)
    }

    #[test]
    fn only_reads_and_safe_writes_are_replayable() {
        use Idempotency::*;
        assert_eq!(call(Method::GET).idempotency(), Idempotent);
        for method in [Method::POST, Method::PATCH, Method::DELETE] {
            assert_eq!(
                call(method.clone()).idempotency(),
                NotIdempotent,
                "{method}"
            );
        }
        let mut create = call(Method::POST);
        create.replay_safe = true;
        assert_eq!(
            create.idempotency(),
            Idempotent,
            "create with transactionId"
        );
        for method in [Method::PATCH, Method::DELETE] {
            let mut guarded = call(method.clone());
            guarded.if_match = Some("W/\"etag\"");
            assert_eq!(guarded.idempotency(), Idempotent, "{method} with If-Match");
        }
    }

    #[test]
    fn the_log_gets_graph_and_oauth_error_codes() {
        let graph = br#"{"error":{"code":"ErrorAccessDenied","message":"Access is denied."}}"#;
        assert_eq!(
            graph_error_text(StatusCode::FORBIDDEN, graph).as_deref(),
            Some("ErrorAccessDenied: Access is denied.")
        );
        let oauth = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret.\r\nTrace ID: 1"}"#;
        assert_eq!(
            identity_error_text(StatusCode::UNAUTHORIZED, oauth).as_deref(),
            Some("invalid_client: AADSTS7000215: Invalid client secret.")
        );
        assert_eq!(graph_error_text(StatusCode::BAD_GATEWAY, b"<html>"), None);
    }
}
