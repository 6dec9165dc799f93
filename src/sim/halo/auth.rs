//! Halo's authorisation server (`/auth/token`), its discovery endpoint, the
//! bearer-token check on `/api/*` and the hosted rate limit.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::errors::{HaloError, rate_limit_text};
use super::{API_AGENT_ID, HaloSim};
use crate::sim::token::Claims;

/// The audience of Halo tokens.
pub const HALO_AUDIENCE: &str = "halo";
/// Halo tokens last an hour.
const TOKEN_LIFETIME_SECONDS: i64 = 3600;

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

/// `POST /auth/token[?tenant=]` with a client-credentials form.
pub(super) async fn token(
    State(sim): State<HaloSim>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some(_) => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
        None => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request"),
    }
    let client_id = form
        .get("client_id")
        .map(String::as_str)
        .unwrap_or_default();
    let secret = form
        .get("client_secret")
        .map(String::as_str)
        .unwrap_or_default();
    if client_id.is_empty() || !sim.client_allowed(client_id, secret) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let now = sim.now();
    let tenant = query
        .get("tenant")
        .cloned()
        .or_else(|| sim.inner.config.tenant_id.clone())
        .unwrap_or_else(|| HALO_AUDIENCE.to_owned());
    let access_token = sim.inner.config.tokens.mint(Claims {
        aud: HALO_AUDIENCE.to_owned(),
        tid: tenant,
        appid: client_id.to_owned(),
        upn: None,
        scp: Some(form.get("scope").cloned().unwrap_or_default()),
        roles: Vec::new(),
        iat: now.timestamp(),
        exp: now.timestamp() + TOKEN_LIFETIME_SECONDS,
        epoch: 0,
    });
    Json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME_SECONDS,
    }))
    .into_response()
}

/// `GET /api/authinfo` (unauthenticated): where to get tokens.
pub(super) async fn authinfo(State(sim): State<HaloSim>) -> Response {
    let base = sim.inner.config.public_base.as_str().trim_end_matches('/');
    let mut body = json!({ "auth_url": format!("{base}/auth") });
    if let Some(tenant) = &sim.inner.config.tenant_id {
        body["tenant_id"] = json!(tenant);
    }
    Json(body).into_response()
}

/// The API agent behind a verified bearer token.
#[derive(Debug, Clone)]
pub(super) struct Caller {
    pub agent_id: i32,
}

impl FromRequestParts<HaloSim> for Caller {
    type Rejection = HaloError;

    async fn from_request_parts(parts: &mut Parts, sim: &HaloSim) -> Result<Self, Self::Rejection> {
        let unauthorized = |description| HaloError::Unauthorized { description };
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(|| unauthorized("No bearer token was sent"))?;
        let claims = sim
            .inner
            .config
            .tokens
            .verify(token.trim(), sim.now())
            .map_err(|error| match error {
                crate::sim::token::TokenError::Expired => unauthorized("The token expired"),
                _ => unauthorized("The token is invalid"),
            })?;
        if claims.aud != HALO_AUDIENCE {
            return Err(unauthorized("The audience is invalid"));
        }
        // Halo issues a token without a scope but refuses it on every call.
        if claims.scp.as_deref().is_none_or(|s| s.trim().is_empty()) {
            return Err(unauthorized("The token has no scope"));
        }
        let world = sim.world();
        let agent_id = world
            .clients
            .iter()
            .find(|c| c.client_id == claims.appid)
            .and_then(|c| c.agent_id)
            .unwrap_or(API_AGENT_ID);
        Ok(Caller { agent_id })
    }
}

/// Route-layer middleware: a `Date` header from the simulator's clock (as
/// Halo's servers send theirs), so it agrees with the `last_modified` the
/// simulator stamps even when a test moves that clock.
pub(super) async fn date_header(
    State(sim): State<HaloSim>,
    request: Request,
    next: Next,
) -> Response {
    let now = sim.now();
    let mut response = next.run(request).await;
    let date = now.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    if let Ok(value) = axum::http::HeaderValue::from_str(&date) {
        response
            .headers_mut()
            .insert(axum::http::header::DATE, value);
    }
    response
}

/// Route-layer middleware: the hosted rolling-window request budget.
pub(super) async fn rate_limit(
    State(sim): State<HaloSim>,
    request: Request,
    next: Next,
) -> Response {
    let refused = {
        let now = sim.now();
        let mut world = sim.world();
        let limit = world.rate_limit;
        world
            .window
            .try_acquire(now)
            .err()
            .map(|_| rate_limit_text(limit.requests, limit.window_seconds))
    };
    match refused {
        Some(text) => HaloError::RateLimited(text).into_response(),
        None => next.run(request).await,
    }
}
