//! The token and authorize endpoints: client credentials, authorization code
//! with PKCE, and refresh-token rotation.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{
    Cloud, DEFAULT_ACCESS_TOKEN_LIFETIME_SECONDS, DEFAULT_APP_ROLES, IdentitySim, OAuthError,
    PendingCode, RefreshGrant, World,
};
use crate::sim::token::Claims;

/// Authorization codes are short-lived on the real platform (about ten
/// minutes).
const CODE_LIFETIME: Duration = Duration::minutes(10);
/// A refresh token unused this long is dead (AADSTS700082).
const REFRESH_INACTIVITY_LIMIT: Duration = Duration::days(90);
/// The scopes that shape the sign-in rather than name a resource permission.
const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

type Form = HashMap<String, String>;

/// Delegated scopes, split into the resource permissions (short names, as the
/// `scp` claim carries them) and the OpenID Connect ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DelegatedScopes {
    cloud: Cloud,
    permissions: Vec<String>,
    oidc: Vec<String>,
}

impl DelegatedScopes {
    fn offline_access(&self) -> bool {
        self.oidc.iter().any(|s| s == "offline_access")
    }

    fn scp(&self) -> String {
        self.permissions.join(" ")
    }

    /// The `scope` of a token response: what was granted, without
    /// `offline_access` (which shows as the refresh token itself).
    fn granted(&self) -> String {
        self.permissions
            .iter()
            .chain(self.oidc.iter().filter(|s| *s != "offline_access"))
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A PKCE challenge from the authorize request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CodeChallenge {
    S256(String),
    Plain(String),
}

impl CodeChallenge {
    fn matches(&self, verifier: &str) -> bool {
        match self {
            CodeChallenge::S256(challenge) => {
                URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == *challenge
            }
            CodeChallenge::Plain(challenge) => verifier == challenge,
        }
    }
}

/// The client a request authenticated as.
struct Client {
    tenant: String,
    client_id: String,
    /// `None` for an unseeded client in the any-credentials mode: the scope
    /// decides the cloud.
    cloud: Option<Cloud>,
    roles: Vec<String>,
    redirect_uris: Option<Vec<String>>,
}

fn param<'a>(form: &'a Form, name: &str) -> Result<&'a str, OAuthError> {
    form.get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| OAuthError::missing_parameter(name))
}

/// Tenant aliases that interactive flows may use instead of a real tenant.
fn is_multi_tenant_alias(tenant: &str) -> bool {
    ["common", "organizations", "consumers"]
        .iter()
        .any(|alias| alias.eq_ignore_ascii_case(tenant))
}

/// Finds the client; checks the secret when one is given or `secret_required`.
fn identify_client(
    world: &World,
    tenant: &str,
    client_id: &str,
    secret: Option<&str>,
    secret_required: bool,
) -> Result<Client, OAuthError> {
    if world.apps.is_empty() {
        return Ok(Client {
            tenant: tenant.to_owned(),
            client_id: client_id.to_owned(),
            cloud: None,
            roles: DEFAULT_APP_ROLES.iter().map(|r| r.to_string()).collect(),
            redirect_uris: None,
        });
    }
    let app = world
        .apps
        .iter()
        .find(|app| {
            app.client_id == client_id
                && (app.tenant.eq_ignore_ascii_case(tenant) || is_multi_tenant_alias(tenant))
        })
        .ok_or_else(|| {
            OAuthError::bad_request(
                "unauthorized_client",
                700016,
                format!(
                    "Application with identifier '{client_id}' was not found in the directory '{tenant}'. \
                     This can happen if the application has not been installed by the administrator \
                     of the tenant or consented to by any user in the tenant."
                ),
            )
        })?;
    match secret {
        Some(secret) if secret != app.client_secret.expose_secret() => {
            return Err(OAuthError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000215,
                format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is \
                     the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                ),
            ));
        }
        None if secret_required => {
            return Err(OAuthError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            ));
        }
        _ => {}
    }
    Ok(Client {
        tenant: app.tenant.clone(),
        client_id: app.client_id.clone(),
        cloud: Some(app.cloud),
        roles: app
            .roles
            .clone()
            .unwrap_or_else(|| DEFAULT_APP_ROLES.iter().map(|r| r.to_string()).collect()),
        redirect_uris: app.redirect_uris.clone(),
    })
}

/// Client credentials take exactly one `<cloud graph root>/.default` scope, in
/// the app's own cloud.
fn app_only_cloud(client: &Client, scope: &str) -> Result<Cloud, OAuthError> {
    let invalid_scope = || {
        OAuthError::bad_request(
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have \
                 a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        )
    };
    let resource = scope.strip_suffix("/.default").ok_or_else(invalid_scope)?;
    let cloud = Cloud::from_graph_root(resource).ok_or_else(|| {
        OAuthError::bad_request(
            "invalid_resource",
            500011,
            format!(
                "The resource principal named {resource} was not found in the tenant named {}. \
                 This can happen if the application has not been installed by the administrator of the tenant.",
                client.tenant
            ),
        )
    })?;
    match client.cloud {
        Some(own) if own != cloud => Err(invalid_scope()),
        _ => Ok(cloud),
    }
}

/// Splits a delegated `scope` parameter; permissions may carry their cloud's
/// Graph root as a prefix, which must be the app's cloud.
fn delegated_scopes(client: &Client, scope: &str) -> Result<DelegatedScopes, OAuthError> {
    let invalid = |item: &str| {
        OAuthError::bad_request(
            "invalid_scope",
            70011,
            format!(
                "The provided value for the input parameter 'scope' is not valid. The scope {item} is not valid."
            ),
        )
    };
    let mut cloud = client.cloud;
    let mut permissions = Vec::new();
    let mut oidc = Vec::new();
    for item in scope.split_whitespace() {
        if OIDC_SCOPES.contains(&item) {
            oidc.push(item.to_owned());
            continue;
        }
        let permission = match item.rsplit_once('/') {
            Some((root, permission)) => {
                let named = Cloud::from_graph_root(root).ok_or_else(|| invalid(item))?;
                if cloud.is_some_and(|c| c != named) || permission.is_empty() {
                    return Err(invalid(item));
                }
                cloud = Some(named);
                permission
            }
            None => item,
        };
        if permission == ".default" {
            continue;
        }
        permissions.push(permission.to_owned());
    }
    if permissions.is_empty() {
        // The platform falls back to Graph's basic profile permission.
        permissions.push("User.Read".to_owned());
    }
    Ok(DelegatedScopes {
        cloud: cloud.unwrap_or_default(),
        permissions,
        oidc,
    })
}

fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl IdentitySim {
    fn access_token_lifetime(&self, world: &World) -> i64 {
        world
            .access_token_lifetime_seconds
            .unwrap_or(DEFAULT_ACCESS_TOKEN_LIFETIME_SECONDS)
    }

    fn grant(&self, tenant: &str, form: &Form) -> Result<Value, OAuthError> {
        match param(form, "grant_type")? {
            "client_credentials" => self.client_credentials(tenant, form),
            "authorization_code" => self.redeem_code(tenant, form),
            "refresh_token" => self.refresh(tenant, form),
            other => Err(OAuthError::bad_request(
                "unsupported_grant_type",
                70003,
                format!("The app requested an unsupported grant type '{other}'."),
            )),
        }
    }

    fn client_credentials(&self, tenant: &str, form: &Form) -> Result<Value, OAuthError> {
        let client_id = param(form, "client_id")?;
        let world = self.world();
        let secret = form.get("client_secret").map(String::as_str);
        let client = identify_client(&world, tenant, client_id, secret, true)?;
        let cloud = app_only_cloud(&client, param(form, "scope")?)?;
        let lifetime = self.access_token_lifetime(&world);
        let now = self.now();
        let access_token = self.inner.config.tokens.mint(Claims {
            aud: cloud.graph_root().to_owned(),
            tid: client.tenant,
            appid: client.client_id,
            upn: None,
            scp: None,
            roles: client.roles,
            iat: now.timestamp(),
            exp: now.timestamp() + lifetime,
            epoch: 0,
        });
        Ok(json!({
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": access_token,
        }))
    }

    fn redeem_code(&self, tenant: &str, form: &Form) -> Result<Value, OAuthError> {
        let client_id = param(form, "client_id")?;
        let code = param(form, "code")?;
        let redirect_uri = param(form, "redirect_uri")?;
        let verifier = form.get("code_verifier").map(String::as_str);
        let secret = form.get("client_secret").map(String::as_str);
        let now = self.now();
        let mut world = self.world();
        // A public client proves itself with PKCE instead of a secret.
        let client = identify_client(&world, tenant, client_id, secret, verifier.is_none())?;
        let invalid_code = || {
            OAuthError::bad_request(
                "invalid_grant",
                70000,
                "The provided value for the 'code' parameter is not valid.",
            )
        };
        let pending = world.codes.get_mut(code).ok_or_else(invalid_code)?;
        if pending.client_id != client.client_id {
            return Err(invalid_code());
        }
        if pending.redeemed {
            return Err(OAuthError::bad_request(
                "invalid_grant",
                54005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid code \
                 or use an existing refresh token.",
            ));
        }
        if now - pending.issued_at >= CODE_LIFETIME {
            return Err(OAuthError::expired_or_revoked_grant());
        }
        if pending.redirect_uri != redirect_uri {
            return Err(OAuthError::bad_request(
                "invalid_grant",
                500112,
                format!(
                    "The reply address '{redirect_uri}' does not match the reply address '{}' provided \
                     when requesting Authorization code.",
                    pending.redirect_uri
                ),
            ));
        }
        if let Some(challenge) = &pending.challenge
            && !verifier.is_some_and(|v| challenge.matches(v))
        {
            return Err(OAuthError::bad_request(
                "invalid_grant",
                501481,
                "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
            ));
        }
        pending.redeemed = true;
        let pending = pending.clone();
        let tenant = if is_multi_tenant_alias(&pending.tenant) {
            client.tenant
        } else {
            pending.tenant
        };
        let grant = RefreshGrant {
            client_id: pending.client_id,
            tenant,
            upn: pending.upn,
            scopes: pending.scopes,
            issued_at: now,
            last_used: now,
            revoked: false,
        };
        Ok(self.issue_delegated(&mut world, grant))
    }

    fn refresh(&self, tenant: &str, form: &Form) -> Result<Value, OAuthError> {
        let client_id = param(form, "client_id")?;
        let refresh_token = param(form, "refresh_token")?;
        let secret = form.get("client_secret").map(String::as_str);
        let now = self.now();
        let mut world = self.world();
        let client = identify_client(&world, tenant, client_id, secret, false)?;
        let interaction = world.interaction_required.clone();
        let grant = world
            .refresh_tokens
            .get_mut(refresh_token)
            .filter(|grant| !grant.revoked)
            .ok_or_else(OAuthError::expired_or_revoked_grant)?;
        if grant.client_id != client.client_id {
            return Err(OAuthError::bad_request(
                "invalid_grant",
                70000,
                "Provided grant is invalid or malformed.",
            ));
        }
        if now - grant.last_used >= REFRESH_INACTIVITY_LIMIT {
            return Err(OAuthError::bad_request(
                "invalid_grant",
                700082,
                format!(
                    "The refresh token has expired due to inactivity. The token was issued on {} \
                     and was inactive for 90.00:00:00.",
                    grant.issued_at.format("%Y-%m-%dT%H:%M:%S%.fZ")
                ),
            ));
        }
        if interaction.is_some_and(|users| users.includes(&grant.upn)) {
            return Err(OAuthError::bad_request(
                "interaction_required",
                50076,
                "Due to a configuration change made by your administrator, or because you moved to a \
                 new location, you must use multi-factor authentication to access \
                 '00000003-0000-0000-c000-000000000000'.",
            ));
        }
        // The old token stays valid (the platform does not revoke it on
        // rotation); using it counts as activity.
        grant.last_used = now;
        let rotated = RefreshGrant {
            issued_at: now,
            ..grant.clone()
        };
        Ok(self.issue_delegated(&mut world, rotated))
    }

    /// Mints a delegated access token and, with `offline_access`, a new
    /// refresh token for `grant`.
    fn issue_delegated(&self, world: &mut World, grant: RefreshGrant) -> Value {
        let lifetime = self.access_token_lifetime(world);
        let now = self.now();
        let access_token = self.inner.config.tokens.mint(Claims {
            aud: grant.scopes.cloud.graph_root().to_owned(),
            tid: grant.tenant.clone(),
            appid: grant.client_id.clone(),
            upn: Some(grant.upn.clone()),
            scp: Some(grant.scopes.scp()),
            roles: Vec::new(),
            iat: now.timestamp(),
            exp: now.timestamp() + lifetime,
            epoch: 0,
        });
        let mut body = json!({
            "token_type": "Bearer",
            "scope": grant.scopes.granted(),
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": access_token,
        });
        if grant.scopes.offline_access() {
            let refresh_token = random_token();
            body["refresh_token"] = Value::String(refresh_token.clone());
            world.refresh_tokens.insert(refresh_token, grant);
        }
        body
    }

    /// Consents on the user's behalf; `Ok` is the redirect target with the
    /// code or the OAuth error in its query, `Err` an error that cannot be
    /// redirected (unknown client or untrusted redirect URI).
    fn authorize_redirect(&self, tenant: &str, query: &Form) -> Result<url::Url, OAuthError> {
        let client_id = param(query, "client_id")?;
        let redirect_uri = param(query, "redirect_uri")?;
        let client = {
            let world = self.world();
            identify_client(&world, tenant, client_id, None, false)?
        };
        let untrusted = || {
            OAuthError::bad_request(
                "invalid_request",
                50011,
                format!(
                    "The redirect URI '{redirect_uri}' specified in the request does not match the \
                     redirect URIs configured for the application '{client_id}'."
                ),
            )
        };
        if client
            .redirect_uris
            .as_ref()
            .is_some_and(|allowed| !allowed.iter().any(|u| u == redirect_uri))
        {
            return Err(untrusted());
        }
        let mut target = url::Url::parse(redirect_uri).map_err(|_| untrusted())?;
        let state = query.get("state").cloned();
        match self.consent(tenant, &client, redirect_uri, query) {
            Ok(code) => {
                target.query_pairs_mut().append_pair("code", &code);
            }
            Err(error) => {
                let trace_id = uuid::Uuid::new_v4().to_string();
                let correlation_id = uuid::Uuid::new_v4().to_string();
                let timestamp = self.now().format("%Y-%m-%d %H:%M:%SZ").to_string();
                target
                    .query_pairs_mut()
                    .append_pair("error", error.error)
                    .append_pair(
                        "error_description",
                        &error.description(&trace_id, &correlation_id, &timestamp),
                    );
            }
        }
        if let Some(state) = state {
            target.query_pairs_mut().append_pair("state", &state);
        }
        Ok(target)
    }

    fn consent(
        &self,
        tenant: &str,
        client: &Client,
        redirect_uri: &str,
        query: &Form,
    ) -> Result<String, OAuthError> {
        let response_type = param(query, "response_type")?;
        if response_type != "code" {
            return Err(OAuthError::bad_request(
                "unsupported_response_type",
                700054,
                format!("response_type '{response_type}' is not enabled for the application."),
            ));
        }
        let scopes = delegated_scopes(client, param(query, "scope")?)?;
        let challenge = match (
            query.get("code_challenge"),
            query.get("code_challenge_method"),
        ) {
            (None, _) => None,
            (Some(challenge), Some(method)) if method == "S256" => {
                Some(CodeChallenge::S256(challenge.clone()))
            }
            (Some(challenge), None) => Some(CodeChallenge::Plain(challenge.clone())),
            (Some(challenge), Some(method)) if method == "plain" => {
                Some(CodeChallenge::Plain(challenge.clone()))
            }
            (Some(_), Some(method)) => {
                return Err(OAuthError::bad_request(
                    "invalid_request",
                    50117,
                    format!("The code_challenge_method '{method}' is not supported."),
                ));
            }
        };
        let mut world = self.world();
        let hint = query.get("login_hint").filter(|h| !h.is_empty());
        let upn = match (hint, world.users.first()) {
            (Some(hint), _) if world.users.is_empty() => hint.clone(),
            (Some(hint), _) => world
                .users
                .iter()
                .find(|u| u.eq_ignore_ascii_case(hint))
                .cloned()
                .ok_or_else(|| {
                    OAuthError::bad_request(
                        "invalid_request",
                        50034,
                        format!(
                            "The user account {hint} does not exist in the {tenant} directory."
                        ),
                    )
                })?,
            (None, Some(first)) => first.clone(),
            (None, None) => {
                return Err(OAuthError::bad_request(
                    "login_required",
                    50058,
                    "A silent sign-in request was sent but no user is signed in.",
                ));
            }
        };
        let code = random_token();
        world.codes.insert(
            code.clone(),
            PendingCode {
                client_id: client.client_id.clone(),
                tenant: tenant.to_owned(),
                redirect_uri: redirect_uri.to_owned(),
                scopes,
                challenge,
                upn,
                issued_at: self.now(),
                redeemed: false,
            },
        );
        Ok(code)
    }
}

/// `POST /{tenant}/oauth2/v2.0/token` (form body).
pub(super) async fn token(
    State(sim): State<IdentitySim>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Response {
    let form: Form = url::form_urlencoded::parse(&body).into_owned().collect();
    match sim.grant(&tenant, &form) {
        Ok(body) => Json(body).into_response(),
        Err(error) => error.into_response_at(sim.now()),
    }
}

/// `GET /{tenant}/oauth2/v2.0/authorize`.
pub(super) async fn authorize(
    State(sim): State<IdentitySim>,
    Path(tenant): Path<String>,
    Query(query): Query<Form>,
) -> Response {
    match sim.authorize_redirect(&tenant, &query) {
        Ok(target) => (StatusCode::FOUND, [(header::LOCATION, target.to_string())]).into_response(),
        Err(error) => error.into_response_at(sim.now()),
    }
}
