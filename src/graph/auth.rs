//! Access tokens for Microsoft Graph, for the guide's three connection types.
//!
//! - Option 1 (`application`): client credentials for `<graph root>/.default`.
//! - Options 2 and 3 (`delegated`, `per_agent`): a stored refresh token,
//!   rotated on every use and saved back sealed.
//!
//! A token is reused until shortly before it expires, then refreshed by one
//! caller while concurrent callers wait for that result (one request, not
//! one per caller). Refusals are sorted into what a person must do: sign in
//! again ([`AuthError::ReauthorizationRequired`]), fix the app registration
//! or config ([`AuthError::Configuration`]), or nothing but wait
//! ([`AuthError::Transient`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Duration, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::assertion::{ASSERTION_TYPE, ClientCertificate};
use crate::clock::SharedClock;
use crate::cloud::Cloud;
use crate::config::{ConnectionConfig, ConnectionKind};
use crate::http::{RequestContext, UpstreamClient};
use crate::store::{Store, TokenState};
use crate::token_cipher::TokenCipher;

/// Refresh a token this long before it expires (or at half its lifetime,
/// whichever is sooner).
const REFRESH_MARGIN_SECONDS: i64 = 300;

/// AADSTS codes that mean "a person must sign in again".
const REAUTH_CODES: [u64; 9] = [
    70008, 700082, 50173, 50132, 50133, 50076, 50079, 70043, 70044,
];

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error(
        "{subject}: Microsoft refused the stored sign-in ({code}: {description}); \
         the account must sign in again"
    )]
    ReauthorizationRequired {
        subject: String,
        code: String,
        description: String,
    },
    #[error("{subject}: no sign-in is stored yet; the account must connect first")]
    NotConnected { subject: String },
    #[error("connection `{connection}`: {message}")]
    Configuration { connection: String, message: String },
    #[error(
        "connection `{connection}`: the identity platform is unavailable ({detail}); will retry"
    )]
    Transient { connection: String, detail: String },
    #[error("connection `{connection}`: unexpected answer from the identity platform: {detail}")]
    Protocol { connection: String, detail: String },
    #[error("stored sign-in for {subject}: {detail}")]
    Storage { subject: String, detail: String },
}

/// Where refresh tokens live between runs. Implementations are quick and
/// synchronous (a row in SQLite): refreshes happen about once an hour.
pub trait RefreshTokens: Send + Sync {
    fn load(&self, subject: &str) -> Result<Option<SecretString>, AuthError>;
    /// Replaces the stored token with a rotated one.
    fn save(&self, subject: &str, token: &SecretString) -> Result<(), AuthError>;
    /// The stored token was refused for good.
    fn mark_reauthorization_required(&self, subject: &str) -> Result<(), AuthError>;
}

/// Refresh tokens held only in memory (tests, one-off tools).
#[derive(Default)]
pub struct MemoryRefreshTokens {
    tokens: Mutex<HashMap<String, SecretString>>,
    refused: Mutex<Vec<String>>,
}

impl MemoryRefreshTokens {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&self, subject: &str, token: SecretString) {
        self.lock_tokens().insert(subject.to_string(), token);
    }

    pub fn current(&self, subject: &str) -> Option<SecretString> {
        self.lock_tokens().get(subject).cloned()
    }

    /// Subjects whose tokens were refused, in order.
    pub fn refused(&self) -> Vec<String> {
        self.refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn lock_tokens(&self) -> std::sync::MutexGuard<'_, HashMap<String, SecretString>> {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl RefreshTokens for MemoryRefreshTokens {
    fn load(&self, subject: &str) -> Result<Option<SecretString>, AuthError> {
        Ok(self.current(subject))
    }

    fn save(&self, subject: &str, token: &SecretString) -> Result<(), AuthError> {
        self.insert(subject, token.clone());
        Ok(())
    }

    fn mark_reauthorization_required(&self, subject: &str) -> Result<(), AuthError> {
        self.lock_tokens().remove(subject);
        self.refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(subject.to_string());
        Ok(())
    }
}

/// Refresh tokens sealed in the database's `oauth_tokens` table.
pub struct StoredRefreshTokens {
    store: Arc<Mutex<Store>>,
    cipher: TokenCipher,
    connection: String,
    clock: SharedClock,
}

impl StoredRefreshTokens {
    pub fn new(
        store: Arc<Mutex<Store>>,
        cipher: TokenCipher,
        connection: &str,
        clock: SharedClock,
    ) -> Self {
        Self {
            store,
            cipher,
            connection: connection.to_string(),
            clock,
        }
    }

    fn storage(subject: &str, detail: impl std::fmt::Display) -> AuthError {
        AuthError::Storage {
            subject: subject.to_string(),
            detail: detail.to_string(),
        }
    }
}

impl RefreshTokens for StoredRefreshTokens {
    fn load(&self, subject: &str) -> Result<Option<SecretString>, AuthError> {
        let store = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(stored) = store
            .refresh_token(subject)
            .map_err(|e| Self::storage(subject, e))?
        else {
            return Ok(None);
        };
        match (stored.state, stored.sealed) {
            (TokenState::Ok, Some(sealed)) => self
                .cipher
                .open(&sealed, subject)
                .map(Some)
                .map_err(|e| Self::storage(subject, e)),
            _ => Ok(None),
        }
    }

    fn save(&self, subject: &str, token: &SecretString) -> Result<(), AuthError> {
        let sealed = self
            .cipher
            .seal(token, subject)
            .map_err(|e| Self::storage(subject, e))?;
        let store = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        store
            .save_refresh_token(subject, &self.connection, None, &sealed, self.clock.now())
            .map_err(|e| Self::storage(subject, e))
    }

    fn mark_reauthorization_required(&self, subject: &str) -> Result<(), AuthError> {
        let store = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        store
            .set_token_state(subject, TokenState::ReauthRequired, self.clock.now())
            .map_err(|e| Self::storage(subject, e))
    }
}

/// The tokens a completed sign-in gave. Deliberately not `Debug`.
pub struct SignedIn {
    pub access_token: SecretString,
    pub refresh_token: SecretString,
}

/// A sign-in grant the identity platform refused.
#[derive(Debug)]
pub struct GrantRefused {
    /// The OAuth `error` code, when the answer had one.
    pub oauth_error: Option<String>,
    pub error: AuthError,
}

/// How this provider obtains tokens.
pub enum Flow {
    /// Option 1: client credentials.
    Application,
    /// Options 2 and 3: the refresh token stored for `subject`
    /// (`connection:<name>` or `agent:<id>`).
    RefreshToken {
        subject: String,
        tokens: Arc<dyn RefreshTokens>,
    },
}

#[derive(Clone)]
struct AccessToken {
    value: SecretString,
    refresh_at: DateTime<Utc>,
}

/// Gets and caches Graph access tokens for one connection (or one agent of
/// a per-agent connection). Deliberately not `Debug`.
pub struct TokenProvider {
    /// The `identity` upstream: token calls are retried per its policy and
    /// recorded (path only, never the form) in the request log.
    http: UpstreamClient,
    connection: String,
    token_url: Url,
    client_id: String,
    credential: Credential,
    scope: String,
    flow: Flow,
    clock: SharedClock,
    cached: Mutex<Option<AccessToken>>,
    refreshing: tokio::sync::Mutex<()>,
}

/// How the app proves who it is on each token request.
enum Credential {
    Secret(SecretString),
    Certificate(ClientCertificate),
}

/// The scopes each connection type asks for, in `cloud`'s own Graph root.
pub fn scopes(kind: ConnectionKind, cloud: Cloud) -> String {
    let root = cloud.graph_url();
    match kind {
        ConnectionKind::Application => format!("{root}/.default"),
        ConnectionKind::Delegated => {
            format!("offline_access {root}/Calendars.ReadWrite.Shared {root}/User.Read.All")
        }
        ConnectionKind::PerAgent => format!("offline_access {root}/Calendars.ReadWrite"),
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: i64,
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct OAuthErrorBody {
    error: String,
    #[serde(default)]
    error_description: String,
    #[serde(default)]
    error_codes: Vec<u64>,
}

impl TokenProvider {
    /// A provider for `connection`, proving the app's identity with its
    /// client secret or its certificate.
    pub fn new(
        http: UpstreamClient,
        connection: &ConnectionConfig,
        flow: Flow,
        clock: SharedClock,
    ) -> Result<Self, AuthError> {
        let credential = match &connection.credential {
            crate::config::ClientCredential::Secret(secret) => Credential::Secret(secret.clone()),
            crate::config::ClientCredential::Certificate(pem) => {
                Credential::Certificate(ClientCertificate::from_pem(pem).map_err(|why| {
                    AuthError::Configuration {
                        connection: connection.name.clone(),
                        message: format!("client certificate: {why}"),
                    }
                })?)
            }
        };
        let token_url = connection
            .login_url
            .join(&format!("{}/oauth2/v2.0/token", connection.tenant_id))
            .map_err(|e| AuthError::Configuration {
                connection: connection.name.clone(),
                message: format!(
                    "tenant_id `{}` does not fit in a URL: {e}",
                    connection.tenant_id
                ),
            })?;
        Ok(Self {
            http,
            connection: connection.name.clone(),
            token_url,
            client_id: connection.client_id.clone(),
            credential,
            scope: scopes(connection.kind, connection.cloud),
            flow,
            clock,
            cached: Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
        })
    }

    /// A valid access token, from the cache or freshly obtained.
    pub async fn token(&self) -> Result<SecretString, AuthError> {
        if let Some(token) = self.fresh_cached() {
            return Ok(token);
        }
        // One refresh at a time; whoever waited finds the new token cached.
        let _refreshing = self.refreshing.lock().await;
        if let Some(token) = self.fresh_cached() {
            return Ok(token);
        }
        let token = self.request_token().await?;
        let value = token.value.clone();
        *self.cached.lock().unwrap_or_else(PoisonError::into_inner) = Some(token);
        Ok(value)
    }

    /// Forgets the cached token (after Graph answered 401 with it), so the
    /// next [`TokenProvider::token`] gets a new one.
    pub fn invalidate(&self, rejected: &SecretString) {
        let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        if cached
            .as_ref()
            .is_some_and(|c| c.value.expose_secret() == rejected.expose_secret())
        {
            *cached = None;
        }
    }

    fn fresh_cached(&self) -> Option<SecretString> {
        let cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        cached
            .as_ref()
            .filter(|c| self.clock.now() < c.refresh_at)
            .map(|c| c.value.clone())
    }

    /// The app's client id and proof of identity, for every token request.
    fn client_form(&self) -> Result<Vec<(&'static str, String)>, AuthError> {
        let mut form: Vec<(&str, String)> = vec![("client_id", self.client_id.clone())];
        match &self.credential {
            Credential::Secret(secret) => {
                form.push(("client_secret", secret.expose_secret().to_string()));
            }
            Credential::Certificate(certificate) => {
                let assertion = certificate
                    .assertion(&self.client_id, self.token_url.as_str(), self.clock.now())
                    .map_err(|why| AuthError::Configuration {
                        connection: self.connection.clone(),
                        message: format!("client certificate: {why}"),
                    })?;
                form.push(("client_assertion_type", ASSERTION_TYPE.to_string()));
                form.push(("client_assertion", assertion.expose_secret().to_string()));
            }
        }
        Ok(form)
    }

    /// Posts `grant` (with the app's credentials) to the token endpoint.
    async fn post_grant(
        &self,
        grant: Vec<(&'static str, String)>,
        context: &RequestContext,
    ) -> Result<crate::http::Reply, AuthError> {
        let mut form = self.client_form()?;
        form.extend(grant);
        let request = self
            .http
            .http()
            .post(self.token_url.clone())
            .form(&form)
            .build()
            .map_err(|e| self.transient(format!("token request failed: {}", without_url(&e))))?;
        self.http
            .send(request, context)
            .await
            .map_err(|e| self.transient(format!("token request failed: {e}")))
    }

    async fn request_token(&self) -> Result<AccessToken, AuthError> {
        let mut grant = vec![("scope", self.scope.clone())];
        if let Flow::RefreshToken { subject, tokens } = &self.flow {
            let Some(refresh_token) = tokens.load(subject)? else {
                return Err(AuthError::NotConnected {
                    subject: subject.clone(),
                });
            };
            grant.push(("grant_type", "refresh_token".to_string()));
            grant.push(("refresh_token", refresh_token.expose_secret().to_string()));
        } else {
            grant.push(("grant_type", "client_credentials".to_string()));
        }
        let issued_at = self.clock.now();
        // A client-credentials grant can be replayed freely. A refresh grant
        // whose answer was lost may have rotated the refresh token we would
        // replay, so it is retried only when it surely was not processed
        // (429, no connection).
        let context = match self.flow {
            Flow::Application => RequestContext::idempotent(),
            Flow::RefreshToken { .. } => RequestContext::not_idempotent(),
        };
        let reply = self.post_grant(grant, &context).await?;
        let (status, body) = (reply.status, reply.body);
        if !status.is_success() {
            return Err(self.refusal(status, &body));
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| AuthError::Protocol {
                connection: self.connection.clone(),
                detail: format!("token response is not the expected JSON ({e})"),
            })?;
        if let (Flow::RefreshToken { subject, tokens }, Some(rotated)) =
            (&self.flow, parsed.refresh_token)
        {
            tokens.save(subject, &SecretString::from(rotated))?;
        }
        let lifetime = parsed.expires_in.max(0);
        let margin = REFRESH_MARGIN_SECONDS.min(lifetime / 2);
        Ok(AccessToken {
            value: SecretString::from(parsed.access_token),
            refresh_at: issued_at + Duration::seconds(lifetime - margin),
        })
    }

    /// Redeems a sign-in grant (an authorization code, or a device code)
    /// for tokens, without caching or storing anything: the caller decides
    /// where the refresh token goes once it knows who signed in. A refusal
    /// keeps the OAuth `error` so a device-code poll can tell
    /// `authorization_pending` from a real failure.
    pub async fn redeem(
        &self,
        grant: Vec<(&'static str, String)>,
    ) -> Result<SignedIn, GrantRefused> {
        // A code is single-use: a lost answer cannot be replayed.
        let reply = self
            .post_grant(grant, &RequestContext::not_idempotent())
            .await
            .map_err(|error| GrantRefused {
                oauth_error: None,
                error,
            })?;
        if !reply.status.is_success() {
            let oauth_error = serde_json::from_slice::<OAuthErrorBody>(&reply.body)
                .ok()
                .map(|body| body.error);
            return Err(GrantRefused {
                oauth_error,
                error: self.refusal(reply.status, &reply.body),
            });
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&reply.body).map_err(|e| GrantRefused {
                oauth_error: None,
                error: AuthError::Protocol {
                    connection: self.connection.clone(),
                    detail: format!("token response is not the expected JSON ({e})"),
                },
            })?;
        let refresh_token = parsed.refresh_token.ok_or_else(|| GrantRefused {
            oauth_error: None,
            error: AuthError::Protocol {
                connection: self.connection.clone(),
                detail: "the sign-in gave no refresh token (was offline_access granted?)".into(),
            },
        })?;
        Ok(SignedIn {
            access_token: SecretString::from(parsed.access_token),
            refresh_token: SecretString::from(refresh_token),
        })
    }

    fn transient(&self, detail: String) -> AuthError {
        AuthError::Transient {
            connection: self.connection.clone(),
            detail,
        }
    }

    /// Sorts a refusal into what someone has to do about it.
    fn refusal(&self, status: reqwest::StatusCode, body: &[u8]) -> AuthError {
        let Ok(error) = serde_json::from_slice::<OAuthErrorBody>(body) else {
            return if status.is_server_error() || status.as_u16() == 429 {
                self.transient(format!("HTTP {status}"))
            } else {
                AuthError::Protocol {
                    connection: self.connection.clone(),
                    detail: format!("HTTP {status} without an OAuth error body"),
                }
            };
        };
        // The first line is the message; the rest is trace and correlation ids.
        let description = error
            .error_description
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        let code = error.error_codes.first().copied();
        let reauth = matches!(
            error.error.as_str(),
            "invalid_grant" | "interaction_required"
        ) || code.is_some_and(|c| REAUTH_CODES.contains(&c));
        if let (true, Flow::RefreshToken { subject, tokens }) = (reauth, &self.flow) {
            if let Err(e) = tokens.mark_reauthorization_required(subject) {
                tracing::warn!(error = %e, "could not record that a sign-in needs renewing");
            }
            tracing::warn!(subject = %subject, code = ?code, "stored sign-in refused; re-authorization required");
            return AuthError::ReauthorizationRequired {
                subject: subject.clone(),
                code: code.map_or(error.error.clone(), |c| format!("AADSTS{c}")),
                description,
            };
        }
        if status.is_server_error()
            || status.as_u16() == 429
            || error.error == "temporarily_unavailable"
        {
            return self.transient(description);
        }
        AuthError::Configuration {
            connection: self.connection.clone(),
            message: format!("{}; {description}", configuration_hint(&error.error, code)),
        }
    }
}

/// What to change in Azure or in the config for a refusal that no retry fixes.
fn configuration_hint(error: &str, code: Option<u64>) -> &'static str {
    match code {
        Some(7000215) => {
            "the client secret is wrong: copy the secret's Value (not its Secret ID) from the app registration's Certificates & secrets"
        }
        Some(7000222) => {
            "the client secret has expired: create a new one under Certificates & secrets and update the secret file"
        }
        Some(700016) => {
            "no application with this client_id exists in this tenant: check client_id, tenant_id and cloud"
        }
        Some(90002) => "the tenant was not found: check tenant_id and cloud",
        Some(500011) | Some(1002012) => {
            "the requested scope belongs to another Microsoft cloud: check the connection's `cloud` setting"
        }
        Some(700027) => {
            "the client certificate was refused: upload this certificate (its public part) to the app registration's Certificates & secrets"
        }
        Some(700024) => "the client assertion's time was refused: check this server's clock (NTP)",
        Some(65001) => {
            "admin consent is missing: grant admin consent for the app's API permissions in Azure"
        }
        _ => match error {
            "invalid_client" => {
                "the client id or secret was refused: check client_id and the client secret"
            }
            "unauthorized_client" => {
                "the app registration does not allow this sign-in: check the app's platform (Web), redirect URI and permissions"
            }
            "invalid_scope" => {
                "the scope was refused: check the connection's `cloud` and the app's API permissions"
            }
            _ => "the identity platform refused the request",
        },
    }
}

/// reqwest's errors include the URL; ours carries no secrets, but keep
/// messages short and stable.
fn without_url(error: &reqwest::Error) -> String {
    let text = error.to_string();
    match error.url() {
        Some(url) => text.replace(url.as_str(), "the token endpoint"),
        None => text,
    }
}
