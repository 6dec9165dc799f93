//! The device authorization grant (RFC 8628): `POST .../devicecode` hands
//! out a device code and a user code; the token endpoint answers
//! `authorization_pending` (or `slow_down` when polled faster than the
//! interval) until a person approves the user code — here through the
//! control API's `approve_device_code` — and `expired_token` after
//! [`DEVICE_CODE_LIFETIME`].

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::clients::{Form, Proof, delegated_scopes, identify_client, param, random_token};
use super::{IdentitySim, OAuthError, RefreshGrant, clients::DelegatedScopes};

/// How long a device code may wait for its user (the platform's 15 minutes).
pub const DEVICE_CODE_LIFETIME: Duration = Duration::minutes(15);
/// The polling interval handed out. Shorter than the platform's 5 s so
/// tests finish quickly; polling faster still gets `slow_down`.
pub const POLL_INTERVAL_SECONDS: i64 = 1;

/// An outstanding device code.
#[derive(Debug, Clone)]
pub(super) struct PendingDevice {
    client_id: String,
    tenant: String,
    scopes: DelegatedScopes,
    pub(super) user_code: String,
    issued_at: DateTime<Utc>,
    last_poll: Option<DateTime<Utc>>,
    pub(super) approved_by: Option<String>,
}

impl IdentitySim {
    fn device_code(&self, tenant: &str, form: &Form) -> Result<Value, OAuthError> {
        let client_id = param(form, "client_id")?;
        let mut world = self.world();
        let client = identify_client(&world, tenant, client_id, Proof::None, false, self.now())?;
        let scopes = delegated_scopes(&client, param(form, "scope")?)?;
        let device_code = random_token();
        // Eight letters, as the platform shows them.
        let user_code: String = random_token()
            .chars()
            .filter(char::is_ascii_alphabetic)
            .take(8)
            .collect::<String>()
            .to_ascii_uppercase();
        world.device_codes.insert(
            device_code.clone(),
            PendingDevice {
                client_id: client.client_id,
                tenant: tenant.to_owned(),
                scopes,
                user_code: user_code.clone(),
                issued_at: self.now(),
                last_poll: None,
                approved_by: None,
            },
        );
        let uri = "https://microsoft.com/devicelogin";
        Ok(json!({
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": uri,
            "expires_in": DEVICE_CODE_LIFETIME.num_seconds(),
            "interval": POLL_INTERVAL_SECONDS,
            "message": format!("To sign in, use a web browser to open the page {uri} and enter the code {user_code} to authenticate."),
        }))
    }

    /// The token endpoint's `urn:ietf:params:oauth:grant-type:device_code`.
    pub(super) fn redeem_device_code(
        &self,
        tenant: &str,
        form: &Form,
    ) -> Result<Value, OAuthError> {
        let client_id = param(form, "client_id")?;
        let code = param(form, "device_code")?;
        let now = self.now();
        let mut world = self.world();
        let client = identify_client(&world, tenant, client_id, Proof::of(form)?, false, now)?;
        let pending = world
            .device_codes
            .get_mut(code)
            .filter(|p| p.client_id == client.client_id)
            .ok_or_else(|| {
                OAuthError::bad_request(
                    "invalid_grant",
                    70000,
                    "The provided device code is not valid.",
                )
            })?;
        if now - pending.issued_at >= DEVICE_CODE_LIFETIME {
            return Err(OAuthError::bad_request(
                "expired_token",
                70020,
                "The provided value for the input parameter 'device_code' is not valid. This device code has expired.",
            ));
        }
        let Some(upn) = pending.approved_by.clone() else {
            let too_soon = pending
                .last_poll
                .is_some_and(|last| now - last < Duration::seconds(POLL_INTERVAL_SECONDS));
            pending.last_poll = Some(now);
            return Err(if too_soon {
                OAuthError::bad_request(
                    "slow_down",
                    70016,
                    "Polling too fast: wait the interval between requests.",
                )
            } else {
                OAuthError::bad_request(
                    "authorization_pending",
                    70016,
                    "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
                )
            });
        };
        let pending = world
            .device_codes
            .remove(code)
            .ok_or_else(OAuthError::expired_or_revoked_grant)?;
        let grant = RefreshGrant {
            client_id: pending.client_id,
            tenant: pending.tenant,
            upn,
            scopes: pending.scopes,
            issued_at: now,
            last_used: now,
            revoked: false,
        };
        Ok(self.issue_delegated(&mut world, grant))
    }

    /// A person entering `user_code` and signing in as `upn`
    /// (`POST /_sim/act` `approve_device_code`).
    pub fn approve_device_code(&self, user_code: &str, upn: &str) -> Result<Value, String> {
        let mut world = self.world();
        if !world.users.is_empty() && !world.users.iter().any(|u| u.eq_ignore_ascii_case(upn)) {
            return Err(format!("no user {upn} can sign in"));
        }
        let pending = world
            .device_codes
            .values_mut()
            .find(|p| p.user_code.eq_ignore_ascii_case(user_code.trim()))
            .ok_or_else(|| format!("no pending device code {user_code}"))?;
        pending.approved_by = Some(upn.to_owned());
        Ok(json!({}))
    }
}

/// `POST /{tenant}/oauth2/v2.0/devicecode` (form body).
pub(super) async fn devicecode(
    State(sim): State<IdentitySim>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Response {
    let form: Form = url::form_urlencoded::parse(&body).into_owned().collect();
    match sim.device_code(&tenant, &form) {
        Ok(body) => Json(body).into_response(),
        Err(error) => error.into_response_at(sim.now()),
    }
}
