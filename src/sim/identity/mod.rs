//! The simulated Microsoft identity platform (OAuth 2.0 v2.0 endpoints).
//!
//! Served relative to its mount (`/login` in the composed server):
//! `POST /{tenant}/oauth2/v2.0/token` (client credentials, authorization code
//! with PKCE, refresh token) and `GET /{tenant}/oauth2/v2.0/authorize`, which
//! consents on a seeded user's behalf and redirects straight back, so tests and
//! the demo need no browser.
//!
//! Access tokens come from the shared [`TokenAuthority`]; refresh tokens and
//! authorization codes are opaque strings remembered here.

mod assertion;
mod authorize;
mod clients;
mod device;
mod grants;
mod oauth_error;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::clock::SharedClock;
use crate::cloud::Cloud;
use crate::sim::faults::{self, ErrorBody, FaultPlan, FaultSettings};
use crate::sim::request_log::{self, RequestLog};
use crate::sim::token::TokenAuthority;

use oauth_error::OAuthError;

/// Access-token lifetime when none is configured, as the platform usually
/// reports it.
pub const DEFAULT_ACCESS_TOKEN_LIFETIME_SECONDS: i64 = 3599;
/// Application permissions an app gets when its seed names none.
pub const DEFAULT_APP_ROLES: [&str; 2] = ["Calendars.ReadWrite", "User.Read.All"];

/// How the composer builds the identity platform.
#[derive(Debug, Clone)]
pub struct IdentitySimConfig {
    pub clock: SharedClock,
    pub tokens: Arc<TokenAuthority>,
}

/// An app registration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSeed {
    /// The tenant (GUID or domain) the app is registered in.
    pub tenant: String,
    pub client_id: String,
    pub client_secret: SecretString,
    /// The cloud the app is registered in; its tokens are only for that
    /// cloud's Graph.
    #[serde(default)]
    pub cloud: Cloud,
    /// Redirect URIs the authorize endpoint accepts; absent accepts any.
    #[serde(default)]
    pub redirect_uris: Option<Vec<String>>,
    /// Application permissions with admin consent (the `roles` claim of its
    /// app-only tokens); absent means [`DEFAULT_APP_ROLES`].
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// A certificate (PEM) uploaded to the app: client assertions signed
    /// with its key are accepted in place of the secret.
    #[serde(default)]
    pub certificate: Option<String>,
}

/// A user who can sign in (the composer passes the Graph mailboxes' UPNs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSeed {
    pub upn: String,
}

/// `POST /_sim/seed`, identity part. Seeding adds to what is there; an app
/// with the same tenant and client id replaces the earlier one.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySeed {
    /// With no apps seeded at all, any tenant, client id and secret is
    /// accepted; once one is seeded, unknown clients and wrong secrets get the
    /// real errors.
    #[serde(default)]
    pub apps: Vec<AppSeed>,
    #[serde(default)]
    pub users: Vec<UserSeed>,
}

/// Which users a fault applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Users {
    /// `"all"`
    All,
    /// `{"some": ["upn", ...]}`
    Some(Vec<String>),
}

impl Users {
    fn includes(&self, upn: &str) -> bool {
        match self {
            Users::All => true,
            Users::Some(upns) => upns.iter().any(|u| u.eq_ignore_ascii_case(upn)),
        }
    }
}

/// `POST /_sim/faults`, identity part. Each call replaces the previous
/// settings; `revoke_refresh_tokens` acts once, on the tokens that exist now.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityFaults {
    #[serde(default)]
    pub faults: FaultSettings,
    /// `expires_in` of new access tokens (default 3599).
    #[serde(default)]
    pub access_token_lifetime_seconds: Option<i64>,
    /// Revoke these users' refresh tokens (as a password reset or an admin's
    /// "revoke sessions" does): redeeming one then gives `invalid_grant`.
    #[serde(default)]
    pub revoke_refresh_tokens: Option<Users>,
    /// Make refresh-token redemption for these users fail with
    /// `interaction_required` (MFA or Conditional Access demanding a sign-in).
    #[serde(default)]
    pub interaction_required: Option<Users>,
    /// Sign-ins at the authorize endpoint pick this account whatever the
    /// `login_hint` (a person choosing another account in the picker).
    #[serde(default)]
    pub sign_in_as: Option<String>,
}

/// Why a control request to the identity platform was refused.
#[derive(Debug, thiserror::Error)]
pub enum IdentitySimError {
    #[error("an app needs a non-empty tenant and client_id")]
    IncompleteApp,
    #[error("access_token_lifetime_seconds must be positive, got {0}")]
    BadLifetime(i64),
    #[error("a user needs a non-empty upn")]
    EmptyUpn,
}

/// What `GET /_sim/state` shows of the identity platform (never secrets or
/// tokens).
#[derive(Debug, Clone, Serialize)]
pub struct IdentityState {
    pub apps: Vec<AppSummary>,
    pub users: Vec<String>,
    /// Refresh tokens that would still be accepted (not revoked).
    pub live_refresh_tokens: usize,
    /// Device codes' user codes waiting for someone to sign in.
    pub pending_user_codes: Vec<String>,
    pub requests: u64,
    pub by_route: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AppSummary {
    pub tenant: String,
    pub client_id: String,
    pub cloud: Cloud,
}

/// An outstanding authorization code.
#[derive(Debug, Clone)]
struct PendingCode {
    client_id: String,
    tenant: String,
    redirect_uri: String,
    scopes: clients::DelegatedScopes,
    challenge: Option<clients::CodeChallenge>,
    upn: String,
    issued_at: DateTime<Utc>,
    redeemed: bool,
}

/// What a refresh token stands for.
#[derive(Debug, Clone)]
struct RefreshGrant {
    client_id: String,
    tenant: String,
    upn: String,
    scopes: clients::DelegatedScopes,
    issued_at: DateTime<Utc>,
    last_used: DateTime<Utc>,
    revoked: bool,
}

#[derive(Default)]
struct World {
    apps: Vec<AppSeed>,
    users: Vec<String>,
    codes: HashMap<String, PendingCode>,
    refresh_tokens: HashMap<String, RefreshGrant>,
    device_codes: HashMap<String, device::PendingDevice>,
    access_token_lifetime_seconds: Option<i64>,
    interaction_required: Option<Users>,
    /// Who the authorize endpoint signs in, whatever the `login_hint`.
    sign_in_as: Option<String>,
}

/// Codes and refresh tokens are credentials: Debug shows only how many
/// there are.
impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("apps", &self.apps)
            .field("users", &self.users)
            .field("codes", &self.codes.len())
            .field("refresh_tokens", &self.refresh_tokens.len())
            .field("device_codes", &self.device_codes.len())
            .field("sign_in_as", &self.sign_in_as)
            .field(
                "access_token_lifetime_seconds",
                &self.access_token_lifetime_seconds,
            )
            .field("interaction_required", &self.interaction_required)
            .finish()
    }
}

#[derive(Debug)]
struct Inner {
    config: IdentitySimConfig,
    faults: Arc<FaultPlan>,
    requests: Arc<RequestLog>,
    world: Mutex<World>,
}

/// The simulated identity platform; cheap to clone.
#[derive(Debug, Clone)]
pub struct IdentitySim {
    inner: Arc<Inner>,
}

impl IdentitySim {
    pub fn new(config: IdentitySimConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                faults: Arc::new(FaultPlan::new()),
                requests: Arc::new(RequestLog::default()),
                world: Mutex::new(World::default()),
            }),
        }
    }

    fn world(&self) -> MutexGuard<'_, World> {
        // The world is plain data: a panicked request must not wedge the rest.
        self.inner
            .world
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> DateTime<Utc> {
        self.inner.config.clock.now()
    }

    /// Routes relative to the mount, wrapped in fault injection and request
    /// counting.
    pub fn router(&self) -> Router {
        let error_body: ErrorBody = oauth_error::fault_body;
        Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(grants::token))
            .route("/{tenant}/oauth2/v2.0/authorize", get(authorize::authorize))
            .route("/{tenant}/oauth2/v2.0/devicecode", post(device::devicecode))
            .route_layer(from_fn_with_state(
                (self.inner.faults.clone(), error_body),
                faults::inject,
            ))
            .route_layer(from_fn_with_state(
                self.inner.requests.clone(),
                request_log::count,
            ))
            .with_state(self.clone())
    }

    /// Forgets every app, user, code and refresh token, clears faults and
    /// invalidates every access token minted so far.
    pub fn reset(&self) {
        *self.world() = World::default();
        self.inner.faults.clear();
        self.inner.requests.clear();
        self.inner.config.tokens.revoke_all();
    }

    pub fn seed(&self, seed: IdentitySeed) -> Result<serde_json::Value, IdentitySimError> {
        if seed
            .apps
            .iter()
            .any(|app| app.tenant.trim().is_empty() || app.client_id.trim().is_empty())
        {
            return Err(IdentitySimError::IncompleteApp);
        }
        if seed.users.iter().any(|user| user.upn.trim().is_empty()) {
            return Err(IdentitySimError::EmptyUpn);
        }
        let mut world = self.world();
        let mut apps = Vec::new();
        for app in seed.apps {
            world
                .apps
                .retain(|a| !(a.tenant == app.tenant && a.client_id == app.client_id));
            apps.push(serde_json::json!({
                "tenant": app.tenant,
                "client_id": app.client_id,
                "cloud": app.cloud,
            }));
            world.apps.push(app);
        }
        let mut users = Vec::new();
        for user in seed.users {
            if !world
                .users
                .iter()
                .any(|u| u.eq_ignore_ascii_case(&user.upn))
            {
                world.users.push(user.upn.clone());
            }
            users.push(user.upn);
        }
        Ok(serde_json::json!({ "apps": apps, "users": users }))
    }

    pub fn set_faults(&self, faults: IdentityFaults) -> Result<(), IdentitySimError> {
        if let Some(seconds) = faults.access_token_lifetime_seconds
            && seconds <= 0
        {
            return Err(IdentitySimError::BadLifetime(seconds));
        }
        self.inner.faults.set(faults.faults);
        let mut world = self.world();
        world.access_token_lifetime_seconds = faults.access_token_lifetime_seconds;
        world.interaction_required = faults.interaction_required;
        world.sign_in_as = faults.sign_in_as;
        if let Some(users) = faults.revoke_refresh_tokens {
            for grant in world.refresh_tokens.values_mut() {
                if users.includes(&grant.upn) {
                    grant.revoked = true;
                }
            }
        }
        Ok(())
    }

    /// Every refresh token issued since the last reset, revoked or not.
    pub fn refresh_tokens(&self) -> Vec<String> {
        self.world().refresh_tokens.keys().cloned().collect()
    }

    pub fn state(&self) -> IdentityState {
        let world = self.world();
        IdentityState {
            apps: world
                .apps
                .iter()
                .map(|app| AppSummary {
                    tenant: app.tenant.clone(),
                    client_id: app.client_id.clone(),
                    cloud: app.cloud,
                })
                .collect(),
            users: world.users.clone(),
            live_refresh_tokens: world.refresh_tokens.values().filter(|g| !g.revoked).count(),
            pending_user_codes: world
                .device_codes
                .values()
                .filter(|p| p.approved_by.is_none())
                .map(|p| p.user_code.clone())
                .collect(),
            requests: self.inner.requests.total(),
            by_route: self.inner.requests.snapshot(),
        }
    }
}
