//! Connecting accounts: the sign-ins behind delegated (option 2) and
//! per-agent (option 3) connections.
//!
//! - [`oauth`]: the authorization code flow with PKCE, the device
//!   authorization grant, and finding out who signed in (`GET /me`).
//! - [`pending`]: started sign-ins, by their single-use `state`.
//! - [`routes`]: `/connect` and `/auth/callback` on the public listener.
//! - [`pages`]: their plain HTML.
//!
//! Refresh tokens are stored sealed ([`crate::token_cipher`]) in
//! `oauth_tokens`, one per subject (`connection:<name>`, `agent:<id>`).

pub mod oauth;
pub mod pages;
pub mod pending;
pub mod routes;

pub use routes::{ConnectState, save_sign_in};

use crate::config::{Config, ConnectionKind};
use crate::graph::auth::AuthError;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Auth(AuthError),
    #[error("{0}")]
    Upstream(String),
    #[error("storing the sign-in failed: {0}")]
    Store(String),
    #[error("the system's random number generator failed: {0}")]
    Random(String),
    #[error("too many sign-ins are open at once; try again in a few minutes")]
    Busy,
    #[error("the device code expired before anyone signed in; run the command again")]
    DeviceCodeExpired,
    #[error("the sign-in was declined")]
    Declined,
}

/// Whether any connection needs a person to sign in, and so the public
/// listener's sign-in routes.
pub fn has_sign_ins(config: &Config) -> bool {
    config
        .connections
        .iter()
        .any(|c| c.kind != ConnectionKind::Application)
}

/// The sign-in routes as the service serves them: agents are found in Halo.
pub fn service_routes(
    config: std::sync::Arc<Config>,
    store: std::sync::Arc<std::sync::Mutex<crate::store::Store>>,
    clock: crate::clock::SharedClock,
    halo: crate::halo::HaloShared,
) -> Result<axum::Router, ConnectError> {
    // Sign-ins are rare: their requests go to a log in memory.
    let log: crate::http::SharedRequestLog =
        std::sync::Arc::new(crate::http::MemoryRequestLog::new());
    let options = crate::halo::HaloClientOptions {
        shared: Some(halo),
        ..Default::default()
    };
    let halo =
        crate::halo::HaloClient::with_options(&config.halo, log.clone(), clock.clone(), options)
            .map_err(|e| ConnectError::Config(format!("Halo: {e}")))?;
    let upstreams = crate::graph::GraphUpstreams::new(log, clock.clone(), &Default::default())
        .map_err(|e| ConnectError::Config(e.to_string()))?;
    Ok(ConnectState::new(config, store, upstreams, Some(halo), clock)?.router())
}
