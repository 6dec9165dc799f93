//! The sign-in flows against the Microsoft identity platform: the
//! authorization code flow with PKCE (a browser comes back to
//! `/auth/callback`) and the device authorization grant (for servers no
//! browser can reach), then finding out which account signed in.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use url::Url;

use super::ConnectError;
use crate::config::{ConnectionConfig, ConnectionKind, WebhookConfig};
use crate::graph::GraphUpstreams;
use crate::graph::auth::{Flow, SignedIn, TokenProvider, scopes};
use crate::http::{RequestContext, UpstreamClient};

/// The path the identity platform sends the browser back to.
pub const CALLBACK_PATH: &str = "/auth/callback";

/// 32 random bytes, base64url: a PKCE verifier or an OAuth `state`.
pub fn random_token() -> Result<String, ConnectError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ConnectError::Random(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The S256 challenge of a PKCE verifier.
pub fn challenge(verifier: &SecretString) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.expose_secret().as_bytes()))
}

/// The redirect URI to register in the app registration: the public URL's
/// `/auth/callback`, or — with no public URL — `http://localhost:<port>`
/// on the listener's port, which only a browser on this machine (or through
/// an SSH tunnel) reaches.
pub fn redirect_uri(webhook: &WebhookConfig) -> Result<Url, ConnectError> {
    match &webhook.public_url {
        // Joined like the webhook paths: the path replaces the URL's own.
        Some(root) => root.join(CALLBACK_PATH),
        None => Url::parse(&format!(
            "http://localhost:{}{CALLBACK_PATH}",
            webhook.listen.port()
        )),
    }
    .map_err(|e| {
        ConnectError::Config(format!(
            "webhook.public_url cannot take {CALLBACK_PATH}: {e}"
        ))
    })
}

/// The scopes a sign-in asks for: the connection type's, plus the basic
/// profile (`User.Read`) a per-agent sign-in needs to read `/me`, which is
/// how halosync learns which account signed in.
pub fn sign_in_scope(connection: &ConnectionConfig) -> String {
    let base = scopes(connection.kind, connection.cloud);
    match connection.kind {
        ConnectionKind::PerAgent => {
            format!("{base} {}/User.Read", connection.cloud.graph_url())
        }
        _ => base,
    }
}

/// The sign-in page's URL for `connection`.
pub fn authorize_url(
    connection: &ConnectionConfig,
    redirect: &Url,
    state: &str,
    challenge: &str,
    login_hint: Option<&str>,
) -> Result<Url, ConnectError> {
    let mut url = connection
        .login_url
        .join(&format!("{}/oauth2/v2.0/authorize", connection.tenant_id))
        .map_err(|e| ConnectError::Config(format!("tenant_id does not fit in a URL: {e}")))?;
    url.query_pairs_mut()
        .append_pair("client_id", &connection.client_id)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", redirect.as_str())
        .append_pair("response_mode", "query")
        .append_pair("scope", &sign_in_scope(connection))
        .append_pair("state", state)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("prompt", "select_account");
    if let Some(hint) = login_hint {
        url.query_pairs_mut().append_pair("login_hint", hint);
    }
    Ok(url)
}

/// A device code the user enters at `verification_uri`.
#[derive(Debug, Clone, Deserialize)]
pub struct DeviceCode {
    #[serde(skip_serializing)]
    device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub expires_in: u64,
    #[serde(default = "default_interval")]
    pub interval: u64,
    #[serde(default)]
    pub message: Option<String>,
}

fn default_interval() -> u64 {
    5
}

/// Who signed in, from `GET /me`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub user_principal_name: String,
    #[serde(default)]
    pub mail: Option<String>,
}

impl Account {
    /// Whether this account is `mailbox` (its UPN or primary address).
    pub fn is(&self, mailbox: &str) -> bool {
        self.user_principal_name.eq_ignore_ascii_case(mailbox)
            || self
                .mail
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case(mailbox))
    }
}

/// Redeems sign-ins for one connection.
pub struct SignInClient {
    tokens: TokenProvider,
    identity: UpstreamClient,
    graph: UpstreamClient,
    devicecode_url: Url,
    me_url: Url,
    client_id: String,
    scope: String,
}

impl SignInClient {
    pub fn new(
        connection: &ConnectionConfig,
        upstreams: &GraphUpstreams,
    ) -> Result<Self, ConnectError> {
        let tokens = TokenProvider::new(
            upstreams.identity.clone(),
            connection,
            Flow::Application,
            upstreams.identity.clock().clone(),
        )
        .map_err(ConnectError::Auth)?;
        let bad = |e: url::ParseError| ConnectError::Config(format!("connection URL: {e}"));
        let devicecode_url = connection
            .login_url
            .join(&format!("{}/oauth2/v2.0/devicecode", connection.tenant_id))
            .map_err(bad)?;
        let me_url = connection.graph_url.join("v1.0/me").map_err(bad)?;
        Ok(Self {
            tokens,
            identity: upstreams.identity.clone(),
            graph: upstreams.graph.clone(),
            devicecode_url,
            me_url,
            client_id: connection.client_id.clone(),
            scope: sign_in_scope(connection),
        })
    }

    /// Redeems the code the browser brought back.
    pub async fn redeem_code(
        &self,
        code: &str,
        verifier: &SecretString,
        redirect: &Url,
    ) -> Result<SignedIn, ConnectError> {
        self.tokens
            .redeem(vec![
                ("grant_type", "authorization_code".into()),
                ("code", code.to_string()),
                ("redirect_uri", redirect.to_string()),
                ("code_verifier", verifier.expose_secret().to_string()),
                ("scope", self.scope.clone()),
            ])
            .await
            .map_err(|refused| ConnectError::Auth(refused.error))
    }

    /// Asks for a device code.
    pub async fn start_device_code(&self) -> Result<DeviceCode, ConnectError> {
        let request = self
            .identity
            .http()
            .post(self.devicecode_url.clone())
            .form(&[
                ("client_id", self.client_id.as_str()),
                ("scope", self.scope.as_str()),
            ])
            .build()
            .map_err(|e| ConnectError::Upstream(format!("device code request: {e}")))?;
        let reply = self
            .identity
            .send(request, &RequestContext::not_idempotent())
            .await
            .map_err(|e| ConnectError::Upstream(format!("device code request: {e}")))?;
        if !reply.status.is_success() {
            return Err(ConnectError::Upstream(format!(
                "the identity platform refused a device code (HTTP {}): {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
                    .lines()
                    .next()
                    .unwrap_or_default()
            )));
        }
        serde_json::from_slice(&reply.body)
            .map_err(|e| ConnectError::Upstream(format!("device code answer: {e}")))
    }

    /// Polls until the user signs in, the code expires or the platform
    /// refuses; honours `slow_down` by waiting 5 s longer (RFC 8628 §3.5).
    pub async fn wait_for_device_sign_in(
        &self,
        device: &DeviceCode,
    ) -> Result<SignedIn, ConnectError> {
        let mut interval = device.interval.max(1);
        loop {
            tokio::time::sleep(Duration::from_secs(interval)).await;
            let polled = self
                .tokens
                .redeem(vec![
                    (
                        "grant_type",
                        "urn:ietf:params:oauth:grant-type:device_code".into(),
                    ),
                    ("device_code", device.device_code.clone()),
                ])
                .await;
            match polled {
                Ok(signed_in) => return Ok(signed_in),
                Err(refused) => match refused.oauth_error.as_deref() {
                    Some("authorization_pending") => {}
                    Some("slow_down") => interval += 5,
                    Some("expired_token") => return Err(ConnectError::DeviceCodeExpired),
                    Some("authorization_declined") => return Err(ConnectError::Declined),
                    _ => return Err(ConnectError::Auth(refused.error)),
                },
            }
        }
    }

    /// The account an access token belongs to.
    pub async fn account(&self, access_token: &SecretString) -> Result<Account, ConnectError> {
        let request = self
            .graph
            .http()
            .get(self.me_url.clone())
            .bearer_auth(access_token.expose_secret())
            .build()
            .map_err(|e| ConnectError::Upstream(format!("GET /me: {e}")))?;
        let reply = self
            .graph
            .send(request, &RequestContext::idempotent())
            .await
            .map_err(|e| ConnectError::Upstream(format!("GET /me: {e}")))?;
        if !reply.status.is_success() {
            return Err(ConnectError::Upstream(format!(
                "GET /me answered HTTP {}",
                reply.status
            )));
        }
        serde_json::from_slice(&reply.body)
            .map_err(|e| ConnectError::Upstream(format!("GET /me answer: {e}")))
    }
}
