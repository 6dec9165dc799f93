//! Who is asking and for what: client identification, scope rules per cloud,
//! and PKCE challenges.

use std::collections::HashMap;

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use super::{DEFAULT_APP_ROLES, OAuthError, World};
use crate::cloud::Cloud;

/// The scopes that shape the sign-in rather than name a resource permission.
const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// A form body or query string.
pub(super) type Form = HashMap<String, String>;

/// Delegated scopes, split into the resource permissions (short names, as the
/// `scp` claim carries them) and the OpenID Connect ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DelegatedScopes {
    pub(super) cloud: Cloud,
    permissions: Vec<String>,
    oidc: Vec<String>,
}

impl DelegatedScopes {
    pub(super) fn offline_access(&self) -> bool {
        self.oidc.iter().any(|s| s == "offline_access")
    }

    pub(super) fn scp(&self) -> String {
        self.permissions.join(" ")
    }

    /// The `scope` of a token response: what was granted, without
    /// `offline_access` (which shows as the refresh token itself).
    pub(super) fn granted(&self) -> String {
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
    pub(super) fn matches(&self, verifier: &str) -> bool {
        match self {
            CodeChallenge::S256(challenge) => {
                URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == *challenge
            }
            CodeChallenge::Plain(challenge) => verifier == challenge,
        }
    }
}

/// The client a request authenticated as.
pub(super) struct Client {
    pub(super) tenant: String,
    pub(super) client_id: String,
    /// `None` for an unseeded client in the any-credentials mode: the scope
    /// decides the cloud.
    pub(super) cloud: Option<Cloud>,
    pub(super) roles: Vec<String>,
    pub(super) redirect_uris: Option<Vec<String>>,
}

pub(super) fn param<'a>(form: &'a Form, name: &str) -> Result<&'a str, OAuthError> {
    form.get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| OAuthError::missing_parameter(name))
}

/// Tenant aliases that interactive flows may use instead of a real tenant.
pub(super) fn is_multi_tenant_alias(tenant: &str) -> bool {
    ["common", "organizations", "consumers"]
        .iter()
        .any(|alias| alias.eq_ignore_ascii_case(tenant))
}

/// Finds the client; checks the secret when one is given or `secret_required`.
/// How a token request proves which app sent it.
#[derive(Debug, Clone, Copy)]
pub(super) enum Proof<'a> {
    Secret(&'a str),
    /// A signed client assertion (certificate credential).
    Assertion(&'a str),
    None,
}

impl<'a> Proof<'a> {
    /// Reads `client_secret` or `client_assertion` (with its type) from a form.
    pub(super) fn of(form: &'a Form) -> Result<Self, OAuthError> {
        match (form.get("client_secret"), form.get("client_assertion")) {
            (Some(secret), None) => Ok(Self::Secret(secret)),
            (None, Some(assertion)) => {
                if param(form, "client_assertion_type")? != super::assertion::ASSERTION_TYPE {
                    return Err(OAuthError::bad_request(
                        "invalid_request",
                        50027,
                        "Invalid client_assertion_type.",
                    ));
                }
                Ok(Self::Assertion(assertion))
            }
            (None, None) => Ok(Self::None),
            (Some(_), Some(_)) => Err(OAuthError::bad_request(
                "invalid_request",
                90014,
                "Only one of client_secret and client_assertion may be sent.",
            )),
        }
    }
}

pub(super) fn identify_client(
    world: &World,
    tenant: &str,
    client_id: &str,
    proof: Proof<'_>,
    secret_required: bool,
    now: chrono::DateTime<chrono::Utc>,
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
    match proof {
        Proof::Assertion(assertion) => super::assertion::verify(
            assertion,
            app.certificate.as_deref(),
            client_id,
            tenant,
            now,
        )?,
        Proof::Secret(secret) if secret != app.client_secret.expose_secret() => {
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
        Proof::None if secret_required => {
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
pub(super) fn app_only_cloud(client: &Client, scope: &str) -> Result<Cloud, OAuthError> {
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
    let cloud = Cloud::from_graph_url(resource).ok_or_else(|| {
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
pub(super) fn delegated_scopes(
    client: &Client,
    scope: &str,
) -> Result<DelegatedScopes, OAuthError> {
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
                let named = Cloud::from_graph_url(root).ok_or_else(|| invalid(item))?;
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

pub(super) fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}
