//! The token endpoint: client credentials, authorization code with PKCE, and
//! refresh-token rotation.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use chrono::Duration;
use serde_json::{Value, json};

use super::clients::{
    Form, Proof, app_only_cloud, identify_client, is_multi_tenant_alias, param, random_token,
};
use super::{DEFAULT_ACCESS_TOKEN_LIFETIME_SECONDS, IdentitySim, OAuthError, RefreshGrant, World};
use crate::sim::token::Claims;

/// Authorization codes are short-lived on the real platform (about ten
/// minutes).
const CODE_LIFETIME: Duration = Duration::minutes(10);
/// A refresh token unused this long is dead (AADSTS700082).
const REFRESH_INACTIVITY_LIMIT: Duration = Duration::days(90);

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
            "urn:ietf:params:oauth:grant-type:device_code" => self.redeem_device_code(tenant, form),
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
        let client = identify_client(
            &world,
            tenant,
            client_id,
            Proof::of(form)?,
            true,
            self.now(),
        )?;
        let cloud = app_only_cloud(&client, param(form, "scope")?)?;
        let lifetime = self.access_token_lifetime(&world);
        let now = self.now();
        let access_token = self.inner.config.tokens.mint(Claims {
            aud: cloud.graph_url().to_owned(),
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
        let now = self.now();
        let mut world = self.world();
        // A public client proves itself with PKCE instead of a secret.
        let client = identify_client(
            &world,
            tenant,
            client_id,
            Proof::of(form)?,
            verifier.is_none(),
            now,
        )?;
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
        let now = self.now();
        let mut world = self.world();
        let client = identify_client(&world, tenant, client_id, Proof::of(form)?, false, now)?;
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
    pub(super) fn issue_delegated(&self, world: &mut World, grant: RefreshGrant) -> Value {
        let lifetime = self.access_token_lifetime(world);
        let now = self.now();
        let access_token = self.inner.config.tokens.mint(Claims {
            aud: grant.scopes.cloud.graph_url().to_owned(),
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
