//! The HaloITSM REST client: authentication, agents and appointments, with
//! Halo's wire names, date convention, paging and error shapes.
//!
//! Built on [`crate::http`]: one client for the Halo host with a rolling
//! budget below Halo's hosted limit (`halo.requests_per_5_minutes`, shared by
//! token and API requests, since Halo counts both), and a 401 answered by one
//! token refresh and one retry. This module speaks Halo; it decides nothing
//! about what to sync.

mod agents;
mod appointment;
mod appointments;
mod auth;
mod error;
pub mod time;

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

pub use agents::{Agent, UNASSIGNED_AGENT_ID};
pub use appointment::{Appointment, AppointmentAgent};
pub use appointments::{
    AppointmentListing, AppointmentQuery, PAGE_SIZE, SAVE_BATCH_SIZE, SaveFailure, SavedAppointment,
};
pub use error::{HaloError, error_text};

use crate::clock::SharedClock;
use crate::config::HaloConfig;
use crate::http::{
    Reply, RequestContext, RetryPolicy, RollingBudget, SharedRequestLog, Timeouts, Upstream,
    UpstreamClient, UpstreamSettings,
};
use auth::{Credentials, TokenCache, TokenSource};

/// The window Halo's hosted rate limit is counted over.
pub const RATE_LIMIT_WINDOW: Duration = Duration::from_secs(300);

/// Tuning that is not in the configuration file.
#[derive(Debug, Clone)]
pub struct HaloClientOptions {
    pub timeouts: Timeouts,
    pub retry: RetryPolicy,
    /// The budget is `requests_per_5_minutes` per this window.
    pub budget_window: Duration,
    /// What this client shares with other clients of the same Halo (the
    /// service's jobs each open one); `None`: its own budget and token.
    pub shared: Option<HaloShared>,
}

/// What the clients of one Halo share across a service's jobs: Halo's
/// request limit is for all of them together, and one token serves them
/// all (a new client would otherwise discover and sign in again: two of
/// the few requests a quiet cycle makes).
#[derive(Debug, Clone)]
pub struct HaloShared {
    budget: Arc<RollingBudget>,
    tokens: TokenCache,
}

impl HaloShared {
    /// `requests` per `window` for all the clients.
    pub fn new(requests: u32, window: Duration) -> Self {
        Self {
            budget: Arc::new(RollingBudget::new(requests, window)),
            tokens: TokenCache::default(),
        }
    }

    /// Halo's configured limit, `requests_per_5_minutes`.
    pub fn for_config(config: &HaloConfig) -> Self {
        Self::new(config.requests_per_5_minutes, RATE_LIMIT_WINDOW)
    }
}

impl Default for HaloClientOptions {
    fn default() -> Self {
        Self {
            timeouts: Timeouts::default(),
            retry: RetryPolicy::default(),
            budget_window: RATE_LIMIT_WINDOW,
            shared: None,
        }
    }
}

/// A HaloITSM API client; cheap to clone, one per Halo instance.
#[derive(Debug, Clone)]
pub struct HaloClient {
    http: UpstreamClient,
    auth: Arc<TokenSource>,
    base_url: Url,
}

impl HaloClient {
    pub fn new(
        config: &HaloConfig,
        log: SharedRequestLog,
        clock: SharedClock,
    ) -> Result<Self, HaloError> {
        Self::with_options(config, log, clock, HaloClientOptions::default())
    }

    pub fn with_options(
        config: &HaloConfig,
        log: SharedRequestLog,
        clock: SharedClock,
        options: HaloClientOptions,
    ) -> Result<Self, HaloError> {
        let shared = options.shared.unwrap_or_else(|| {
            HaloShared::new(config.requests_per_5_minutes, options.budget_window)
        });
        let settings = UpstreamSettings {
            timeouts: options.timeouts,
            retry: options.retry,
            budget: Some(shared.budget),
            error_text: Some(error_text),
            ..UpstreamSettings::new(Upstream::Halo)
        };
        let http = UpstreamClient::new(settings, log, clock)?;
        let auth = Arc::new(TokenSource::new(
            http.clone(),
            Credentials::from_config(config),
            shared.tokens,
        ));
        Ok(Self {
            http,
            auth,
            base_url: config.base_url.clone(),
        })
    }

    async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
        context: RequestContext,
    ) -> Result<Reply, HaloError> {
        self.call(Method::GET, path, query, None, context).await
    }

    /// Sends an authenticated request to `{base_url}{path}`; a 401 gets one
    /// fresh token and one more try. Any error status becomes a [`HaloError`].
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        context: RequestContext,
    ) -> Result<Reply, HaloError> {
        let mut url = self
            .base_url
            .join(path)
            .map_err(|e| HaloError::Request(format!("{path} under halo.base_url: {e}")))?;
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let mut refreshed = false;
        loop {
            let token = self.auth.token().await?;
            let mut builder = self
                .http
                .http()
                .request(method.clone(), url.clone())
                .bearer_auth(token.value.expose_secret());
            if let Some(body) = body {
                builder = builder.json(body);
            }
            let request = builder
                .build()
                .map_err(|e| HaloError::Request(e.without_url().to_string()))?;
            let reply = self.http.send(request, &context).await?;
            if reply.status == StatusCode::UNAUTHORIZED && !refreshed {
                tracing::info!(path = %reply.path, "Halo refused the access token; getting a new one");
                self.auth.invalidate(&token).await;
                refreshed = true;
                continue;
            }
            if reply.status.is_success() {
                return Ok(reply);
            }
            return Err(HaloError::from_reply(&reply, self.http.clock().now()));
        }
    }
}

/// The reply's JSON body as `T`.
fn json<T: DeserializeOwned>(reply: &Reply) -> Result<T, HaloError> {
    serde_json::from_slice(&reply.body).map_err(|e| HaloError::decode(reply, e))
}

/// A list body: a bare array, or an object holding the array under one of
/// `keys`.
fn rows<T: DeserializeOwned>(reply: &Reply, keys: &[&str]) -> Result<Vec<T>, HaloError> {
    let value: Value = json(reply)?;
    rows_in(reply, value, keys)
}

fn rows_in<T: DeserializeOwned>(
    reply: &Reply,
    value: Value,
    keys: &[&str],
) -> Result<Vec<T>, HaloError> {
    let list = match value {
        Value::Array(_) => value,
        Value::Object(mut map) => keys
            .iter()
            .find_map(|key| map.remove(*key).filter(Value::is_array))
            .ok_or_else(|| {
                HaloError::decode(
                    reply,
                    format!("expected a list, or an object with one of {keys:?}"),
                )
            })?,
        _ => return Err(HaloError::decode(reply, "expected a JSON list")),
    };
    serde_json::from_value(list).map_err(|e| HaloError::decode(reply, e))
}
