//! The sign-in routes of the public listener:
//!
//! - `GET /connect[?agent=EMAIL]`: the start page (pre-filled from a link
//!   made by `halosync connect link`), with the agent's sign-in state;
//! - `POST /connect/start`, `POST /connect/disconnect` (form `email`):
//!   start a sign-in for that agent and redirect to Microsoft;
//! - `GET /auth/callback`: where Microsoft sends the browser back; redeems
//!   the code, checks who signed in and stores (or forgets) the sign-in.

use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use secrecy::SecretString;
use serde::Deserialize;
use tokio::sync::watch;

use super::ConnectError;
use super::oauth::{CALLBACK_PATH, SignInClient, authorize_url, redirect_uri};
use super::pages::{self, Page};
use super::pending::{PendingSignIns, Purpose};
use crate::clock::SharedClock;
use crate::config::{Config, ConnectionConfig, ConnectionKind};
use crate::graph::GraphClient;
use crate::graph::GraphUpstreams;
use crate::halo::HaloClient;
use crate::store::{Store, TokenState};
use crate::token_cipher::TokenCipher;

/// Form bodies are one e-mail address.
const MAX_FORM_BYTES: usize = 4096;

/// How an admin sign-in ended: the account, or why it failed.
pub type AdminOutcome = Option<Result<String, String>>;

/// What the sign-in routes share. Cheap to clone.
#[derive(Clone)]
pub struct ConnectState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<Config>,
    store: Arc<Mutex<Store>>,
    key: SecretString,
    upstreams: GraphUpstreams,
    /// Finds agents by e-mail; `None` where only the admin signs in.
    halo: Option<HaloClient>,
    pending: PendingSignIns,
    clock: SharedClock,
    admin_done: watch::Sender<AdminOutcome>,
}

impl ConnectState {
    pub fn new(
        config: Arc<Config>,
        store: Arc<Mutex<Store>>,
        upstreams: GraphUpstreams,
        halo: Option<HaloClient>,
        clock: SharedClock,
    ) -> Result<Self, ConnectError> {
        let key = config.store.token_key.clone().ok_or_else(|| {
            ConnectError::Config(
                "store.token_key is required to store sign-ins (delegated and per-agent connections)"
                    .into(),
            )
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                pending: PendingSignIns::new(clock.clone()),
                config,
                store,
                key,
                upstreams,
                halo,
                clock,
                admin_done: watch::channel(None).0,
            }),
        })
    }

    /// The routes, ready to merge into the public listener's router.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/connect", get(start_page))
            .route("/connect/start", post(start))
            .route("/connect/disconnect", post(disconnect))
            .route(CALLBACK_PATH, get(callback))
            .with_state(self.clone())
    }

    /// Starts the admin sign-in of delegated `connection`; returns the URL
    /// to open.
    pub fn start_admin(&self, connection: &ConnectionConfig) -> Result<url::Url, ConnectError> {
        let started = self.inner.pending.start(Purpose::Admin {
            connection: connection.name.clone(),
        })?;
        authorize_url(
            connection,
            &redirect_uri(&self.inner.config.webhook)?,
            &started.state,
            &started.challenge,
            None,
        )
    }

    /// Told when an admin sign-in completes or fails.
    pub fn admin_outcome(&self) -> watch::Receiver<AdminOutcome> {
        self.inner.admin_done.subscribe()
    }

    fn connection(&self, name: &str) -> Option<&ConnectionConfig> {
        self.inner
            .config
            .connections
            .iter()
            .find(|c| c.name == name)
    }

    /// Seals and stores a sign-in (replacing any earlier one).
    pub fn save(
        &self,
        subject: &str,
        connection: &str,
        account: &str,
        refresh_token: &SecretString,
    ) -> Result<(), ConnectError> {
        save_sign_in(
            &self.inner.store,
            &TokenCipher::new(&self.inner.key),
            subject,
            connection,
            account,
            refresh_token,
            self.inner.clock.now(),
        )
    }

    /// The origins of the identity platforms the pages redirect to.
    fn form_targets(&self) -> Vec<String> {
        let mut origins: Vec<String> = self
            .inner
            .config
            .connections
            .iter()
            .filter(|c| c.kind == ConnectionKind::PerAgent)
            .map(|c| c.login_url.origin().ascii_serialization())
            .collect();
        origins.sort();
        origins.dedup();
        origins
    }

    fn page(&self, status: StatusCode, title: &'static str, body: String) -> Response {
        let mut page = Page::new(status, title, body);
        page.form_targets = self.form_targets();
        page.into_response()
    }

    /// The per-agent connection serving `email`, and the agent's id.
    async fn agent(&self, email: &str) -> Result<(i64, String, String), String> {
        let email = email.trim().to_ascii_lowercase();
        if email.is_empty() || !email.contains('@') {
            return Err("Enter your e-mail address.".into());
        }
        let config = &self.inner.config;
        let not_served =
            || format!("{email} is not an agent who connects their own calendar here.");
        let connection = config
            .connections
            .iter()
            .find(|c| c.agents.serves(&email))
            .filter(|c| c.kind == ConnectionKind::PerAgent)
            .ok_or_else(not_served)?;
        let halo = self.inner.halo.as_ref().ok_or_else(not_served)?;
        let agents = halo.agents().await.map_err(|e| {
            tracing::warn!(error = %e, "Halo agents could not be listed for a sign-in");
            "HaloITSM could not be reached; try again in a few minutes.".to_string()
        })?;
        let agent = agents
            .iter()
            .filter(|a| !a.is_disabled() && crate::session::served(config, a))
            .find(|a| a.mailbox().as_deref() == Some(email.as_str()))
            .ok_or_else(not_served)?;
        Ok((agent.id, email, connection.name.clone()))
    }

    fn token_state(&self, subject: &str) -> Option<(TokenState, Option<String>)> {
        let store = self
            .inner
            .store
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        store
            .refresh_token(subject)
            .ok()
            .flatten()
            .map(|t| (t.state, t.account))
    }
}

/// Seals `refresh_token` for `subject` and stores it with the account.
pub fn save_sign_in(
    store: &Mutex<Store>,
    cipher: &TokenCipher,
    subject: &str,
    connection: &str,
    account: &str,
    refresh_token: &SecretString,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), ConnectError> {
    let sealed = cipher
        .seal(refresh_token, subject)
        .map_err(|e| ConnectError::Store(e.to_string()))?;
    store
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .save_refresh_token(subject, connection, Some(account), &sealed, now)
        .map_err(|e| ConnectError::Store(e.to_string()))
}

#[derive(Deserialize)]
struct StartQuery {
    #[serde(default)]
    agent: Option<String>,
}

async fn start_page(
    State(state): State<ConnectState>,
    Query(query): Query<StartQuery>,
) -> Response {
    let email = query.agent.unwrap_or_default();
    let notice = match state.agent(&email).await {
        Ok((agent_id, _, connection)) => {
            let subject = GraphClient::sign_in_subject_for(
                ConnectionKind::PerAgent,
                &connection,
                Some(agent_id),
            );
            Some(match state.token_state(&subject) {
                Some((TokenState::Ok, account)) => format!(
                    "Connected as {}.",
                    account.unwrap_or_else(|| "your account".into())
                ),
                Some((TokenState::ReauthRequired, _)) => {
                    "Re-authorization required: Microsoft no longer accepts your sign-in. Sign in again to keep your calendar in sync.".into()
                }
                Some((TokenState::Revoked, _)) | None => "Not connected.".into(),
            })
        }
        Err(_) => None,
    };
    state.page(
        StatusCode::OK,
        "Connect your calendar",
        pages::start_form(&email, notice.as_deref()),
    )
}

fn form_email(body: &Bytes) -> String {
    url::form_urlencoded::parse(body)
        .find(|(name, _)| name == "email")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

async fn start(State(state): State<ConnectState>, body: Bytes) -> Response {
    begin(state, body, false).await
}

async fn disconnect(State(state): State<ConnectState>, body: Bytes) -> Response {
    begin(state, body, true).await
}

/// Starts an agent's sign-in and redirects to Microsoft.
async fn begin(state: ConnectState, body: Bytes, disconnect: bool) -> Response {
    if body.len() > MAX_FORM_BYTES {
        return state.page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Not accepted",
            pages::message("The form was too large."),
        );
    }
    let (agent_id, mailbox, connection_name) = match state.agent(&form_email(&body)).await {
        Ok(found) => found,
        Err(why) => {
            return state.page(
                StatusCode::BAD_REQUEST,
                "Connect your calendar",
                pages::start_form("", Some(&why)),
            );
        }
    };
    let Some(connection) = state.connection(&connection_name) else {
        return failure(&state, "the connection is no longer configured");
    };
    let purpose = if disconnect {
        Purpose::Disconnect {
            agent_id,
            mailbox: mailbox.clone(),
            connection: connection_name.clone(),
        }
    } else {
        Purpose::Connect {
            agent_id,
            mailbox: mailbox.clone(),
            connection: connection_name.clone(),
        }
    };
    let target = state.inner.pending.start(purpose).and_then(|started| {
        authorize_url(
            connection,
            &redirect_uri(&state.inner.config.webhook)?,
            &started.state,
            &started.challenge,
            Some(&mailbox),
        )
    });
    match target {
        Ok(url) => (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, url.to_string()),
                (header::CACHE_CONTROL, "no-store".to_string()),
                (header::REFERRER_POLICY, "no-referrer".to_string()),
            ],
        )
            .into_response(),
        Err(error) => failure(&state, &error.to_string()),
    }
}

fn failure(state: &ConnectState, why: &str) -> Response {
    tracing::warn!(error = %why, "a sign-in failed");
    state.page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Sign-in failed",
        pages::message(&format!("The sign-in could not be completed: {why}")),
    )
}

#[derive(Deserialize)]
struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

async fn callback(
    State(state): State<ConnectState>,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let taken = query
        .state
        .as_deref()
        .and_then(|s| state.inner.pending.take(s));
    let Some((purpose, verifier)) = taken else {
        return state.page(
            StatusCode::BAD_REQUEST,
            "Sign-in expired",
            pages::message(
                "This sign-in link has expired or was already used (or halosync restarted meanwhile). Start again.",
            ),
        );
    };
    let outcome = complete(&state, &purpose, query, &verifier).await;
    if let Purpose::Admin { .. } = purpose {
        let _ = state.inner.admin_done.send(Some(match &outcome {
            Ok(account) => Ok(account.clone()),
            Err(refusal) => Err(refusal.text.clone()),
        }));
    }
    match (outcome, &purpose) {
        (Ok(account), Purpose::Disconnect { .. }) => state.page(
            StatusCode::OK,
            "Disconnected",
            pages::message(&format!(
                "{account} is disconnected: halosync no longer syncs this calendar with your sign-in."
            )),
        ),
        (Ok(account), _) => state.page(
            StatusCode::OK,
            "Connected",
            pages::message(&format!(
                "Connected as {account}. Your calendar is kept in sync with HaloITSM; you may close this window."
            )),
        ),
        (Err(refusal), _) => state.page(refusal.status, refusal.title, pages::message(&refusal.text)),
    }
}

struct Refusal {
    status: StatusCode,
    title: &'static str,
    text: String,
}

impl Refusal {
    fn failed(text: String) -> Self {
        Self {
            status: StatusCode::BAD_GATEWAY,
            title: "Sign-in failed",
            text,
        }
    }
}

/// Redeems the code, checks the account and records the outcome; `Ok` is
/// the account that signed in.
async fn complete(
    state: &ConnectState,
    purpose: &Purpose,
    query: CallbackQuery,
    verifier: &SecretString,
) -> Result<String, Refusal> {
    if let Some(error) = query.error {
        let description = query.error_description.unwrap_or_default();
        let first = description.lines().next().unwrap_or_default();
        return Err(Refusal {
            status: StatusCode::FORBIDDEN,
            title: "Sign-in refused",
            text: format!("Microsoft refused the sign-in ({error}): {first}"),
        });
    }
    let code = query
        .code
        .ok_or_else(|| Refusal::failed("Microsoft sent back no authorization code.".into()))?;
    let connection_name = match purpose {
        Purpose::Admin { connection }
        | Purpose::Connect { connection, .. }
        | Purpose::Disconnect { connection, .. } => connection,
    };
    let connection = state
        .connection(connection_name)
        .ok_or_else(|| Refusal::failed("the connection is no longer configured".into()))?;
    let redirect =
        redirect_uri(&state.inner.config.webhook).map_err(|e| Refusal::failed(e.to_string()))?;
    let client = SignInClient::new(connection, &state.inner.upstreams)
        .map_err(|e| Refusal::failed(e.to_string()))?;
    let signed_in = client
        .redeem_code(&code, verifier, &redirect)
        .await
        .map_err(|e| Refusal::failed(e.to_string()))?;
    let account = client
        .account(&signed_in.access_token)
        .await
        .map_err(|e| Refusal::failed(e.to_string()))?;
    let upn = account.user_principal_name.clone();
    match purpose {
        Purpose::Admin { connection } => {
            let subject =
                GraphClient::sign_in_subject_for(ConnectionKind::Delegated, connection, None);
            state
                .save(&subject, connection, &upn, &signed_in.refresh_token)
                .map_err(|e| Refusal::failed(e.to_string()))?;
        }
        Purpose::Connect {
            agent_id,
            mailbox,
            connection,
        }
        | Purpose::Disconnect {
            agent_id,
            mailbox,
            connection,
        } => {
            if !account.is(mailbox) {
                tracing::warn!(
                    agent_id,
                    "a sign-in was refused: the account is not the agent's mailbox"
                );
                return Err(Refusal {
                    status: StatusCode::FORBIDDEN,
                    title: "Wrong account",
                    text: format!(
                        "You signed in as {upn}, but this connection is for {mailbox}. \
                         Nothing was changed. Sign out of Microsoft, then start again and sign in as {mailbox}."
                    ),
                });
            }
            let subject = GraphClient::sign_in_subject_for(
                ConnectionKind::PerAgent,
                connection,
                Some(*agent_id),
            );
            if matches!(purpose, Purpose::Disconnect { .. }) {
                state
                    .inner
                    .store
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .set_token_state(&subject, TokenState::Revoked, state.inner.clock.now())
                    .map_err(|e| Refusal::failed(e.to_string()))?;
                tracing::info!(agent_id, "an agent disconnected their calendar");
            } else {
                state
                    .save(&subject, connection, &upn, &signed_in.refresh_token)
                    .map_err(|e| Refusal::failed(e.to_string()))?;
                tracing::info!(agent_id, "an agent connected their calendar");
            }
        }
    }
    Ok(upn)
}
