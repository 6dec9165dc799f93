//! The authorize endpoint: consents on a seeded user's behalf and redirects
//! straight back with a code, so tests and the demo need no browser.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::clients::{
    Client, CodeChallenge, Form, Proof, delegated_scopes, identify_client, param, random_token,
};
use super::{IdentitySim, OAuthError, PendingCode};

impl IdentitySim {
    /// Consents on the user's behalf; `Ok` is the redirect target with the
    /// code or the OAuth error in its query, `Err` an error that cannot be
    /// redirected (unknown client or untrusted redirect URI).
    fn authorize_redirect(&self, tenant: &str, query: &Form) -> Result<url::Url, OAuthError> {
        let client_id = param(query, "client_id")?;
        let redirect_uri = param(query, "redirect_uri")?;
        let client = {
            let world = self.world();
            identify_client(&world, tenant, client_id, Proof::None, false, self.now())?
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
                target
                    .query_pairs_mut()
                    .extend_pairs(error.redirect_params(self.now()));
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
        let hint = world
            .sign_in_as
            .clone()
            .or_else(|| query.get("login_hint").cloned())
            .filter(|h| !h.is_empty());
        let hint = hint.as_ref();
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
