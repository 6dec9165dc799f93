//! Halo access tokens: discovery of the authorisation server, the
//! client-credentials grant, and a cache that refreshes before expiry with
//! one refresh in flight however many callers need a token.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;
use url::Url;

use super::HaloError;
use crate::config::HaloConfig;
use crate::http::{RequestContext, UpstreamClient};

/// Refresh this long before a token expires (or at half its lifetime, for
/// short-lived tokens), so a request never leaves with a token about to die.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// Halo tokens last an hour; assumed when a response omits `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// What the client needs to get tokens, copied out of [`HaloConfig`].
#[derive(Debug, Clone)]
pub(super) struct Credentials {
    pub base_url: Url,
    pub auth_url: Option<Url>,
    pub tenant: Option<String>,
    pub client_id: String,
    pub client_secret: SecretString,
    pub scope: String,
}

impl Credentials {
    pub fn from_config(config: &HaloConfig) -> Self {
        Self {
            base_url: config.base_url.clone(),
            auth_url: config.auth_url.clone(),
            tenant: config.tenant.clone(),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            scope: config.scope.clone(),
        }
    }
}

/// A bearer token and when to stop using it.
#[derive(Debug, Clone)]
pub(super) struct AccessToken {
    pub value: SecretString,
    refresh_at: DateTime<Utc>,
}

/// The token a Halo client holds and where it came from, shareable between
/// clients of the same Halo so that each new one (a service's job opens one
/// per run) does not discover and sign in again.
#[derive(Debug, Clone, Default)]
pub struct TokenCache(Arc<Mutex<State>>);

#[derive(Debug, Default)]
struct State {
    /// The token endpoint, once discovered.
    endpoint: Option<Url>,
    token: Option<AccessToken>,
}

#[derive(Debug)]
pub(super) struct TokenSource {
    http: UpstreamClient,
    credentials: Credentials,
    /// Held across a refresh: callers queue behind the one doing it and then
    /// find its token.
    state: TokenCache,
}

/// `GET /api/authinfo`.
#[derive(Debug, Deserialize)]
struct AuthInfo {
    auth_url: Option<String>,
    tenant_id: Option<String>,
}

impl TokenSource {
    pub fn new(http: UpstreamClient, credentials: Credentials, cache: TokenCache) -> Self {
        Self {
            http,
            credentials,
            state: cache,
        }
    }

    /// A token valid for a while yet, fetched only if the cached one is not.
    pub async fn token(&self) -> Result<AccessToken, HaloError> {
        let mut state = self.state.0.lock().await;
        let now = self.http.clock().now();
        if let Some(token) = state.token.as_ref().filter(|t| now < t.refresh_at) {
            return Ok(token.clone());
        }
        let endpoint = match &state.endpoint {
            Some(endpoint) => endpoint.clone(),
            None => {
                let (endpoint, settled) = self.discover().await?;
                // A fallback after a failed discovery is tried again at the
                // next refresh: authinfo may only have been briefly down.
                if settled {
                    state.endpoint = Some(endpoint.clone());
                }
                endpoint
            }
        };
        let token = self.request_token(&endpoint).await?;
        state.token = Some(token.clone());
        Ok(token)
    }

    /// Forgets `rejected` (a token the API refused) so the next call gets a
    /// new one; a token another caller already replaced is left alone.
    pub async fn invalidate(&self, rejected: &AccessToken) {
        let mut state = self.state.0.lock().await;
        if state
            .token
            .as_ref()
            .is_some_and(|t| t.value.expose_secret() == rejected.value.expose_secret())
        {
            state.token = None;
        }
    }

    /// The token endpoint: `{auth_url}/token`, from the configuration or
    /// from `/api/authinfo`, else `{base}/auth/token`; with `?tenant=` when
    /// a tenant is configured or discovered. `settled` is false for the
    /// fallback.
    async fn discover(&self) -> Result<(Url, bool), HaloError> {
        let creds = &self.credentials;
        let (auth_url, discovered_tenant, settled) = match &creds.auth_url {
            Some(url) => (url.clone(), None, true),
            None => match self.auth_info().await {
                Some((url, tenant)) => (url, tenant, true),
                None => (self.base_join("auth")?, None, false),
            },
        };
        let mut endpoint = Url::parse(&format!(
            "{}/token",
            auth_url.as_str().trim_end_matches('/')
        ))
        .map_err(|e| HaloError::Request(format!("the token endpoint under {auth_url}: {e}")))?;
        if let Some(tenant) = creds.tenant.clone().or(discovered_tenant) {
            endpoint.query_pairs_mut().append_pair("tenant", &tenant);
        }
        Ok((endpoint, settled))
    }

    fn base_join(&self, path: &str) -> Result<Url, HaloError> {
        self.credentials
            .base_url
            .join(path)
            .map_err(|e| HaloError::Request(format!("{path} under halo.base_url: {e}")))
    }

    /// Asks `/api/authinfo`; `None` (logged) when it cannot say.
    async fn auth_info(&self) -> Option<(Url, Option<String>)> {
        let url = self.base_join("api/authinfo").ok()?;
        let request = self.http.http().get(url).build().ok()?;
        let outcome = self.http.send(request, &RequestContext::idempotent()).await;
        let found = match &outcome {
            Ok(reply) if reply.status.is_success() => {
                serde_json::from_slice::<AuthInfo>(&reply.body)
                    .ok()
                    .and_then(|info| {
                        let auth_url = Url::parse(info.auth_url?.trim()).ok()?;
                        let tenant = info.tenant_id.filter(|t| !t.trim().is_empty());
                        Some((auth_url, tenant))
                    })
            }
            _ => None,
        };
        if found.is_none() {
            tracing::warn!(
                "Halo's /api/authinfo did not name an authorisation server; using {{base_url}}/auth (set halo.auth_url to choose one)"
            );
        }
        found
    }

    async fn request_token(&self, endpoint: &Url) -> Result<AccessToken, HaloError> {
        let creds = &self.credentials;
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", creds.client_id.as_str()),
            ("client_secret", creds.client_secret.expose_secret()),
            ("scope", creds.scope.as_str()),
        ];
        let request = self
            .http
            .http()
            .post(endpoint.clone())
            .form(&form)
            .build()
            .map_err(|e| HaloError::Request(e.without_url().to_string()))?;
        let requested_at = self.http.clock().now();
        // Minting a second token is harmless, so the grant may be retried.
        let reply = self
            .http
            .send(request, &RequestContext::idempotent())
            .await?;
        let endpoint_text = crate::http::scrub_path(endpoint);
        let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        if !reply.status.is_success() {
            let code = body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if matches!(code, "invalid_client" | "unauthorized_client") {
                return Err(HaloError::InvalidClient);
            }
            return Err(HaloError::TokenRefused {
                endpoint: endpoint_text,
                status: reply.status.as_u16(),
                message: super::error::error_text(reply.status, &reply.body)
                    .unwrap_or_else(|| "no message".to_owned()),
            });
        }
        let bad = |reason: &str| HaloError::BadTokenResponse {
            endpoint: endpoint_text.clone(),
            reason: reason.to_owned(),
        };
        let value = body
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad("no access_token"))?;
        let lifetime = match body.get("expires_in") {
            None | Some(Value::Null) => DEFAULT_LIFETIME,
            // Some servers send the number as a string.
            Some(Value::String(text)) => text
                .trim()
                .parse()
                .map(Duration::from_secs)
                .map_err(|_| bad("expires_in is not a number"))?,
            Some(other) => other
                .as_u64()
                .map(Duration::from_secs)
                .ok_or_else(|| bad("expires_in is not a number"))?,
        };
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        let usable = chrono::Duration::from_std(lifetime - margin).unwrap_or_default();
        tracing::debug!(lifetime_s = lifetime.as_secs(), "got a Halo access token");
        Ok(AccessToken {
            value: SecretString::from(value.to_owned()),
            refresh_at: requested_at + usable,
        })
    }
}
