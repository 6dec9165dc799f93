//! The admin listener: health and metrics for the machine's own monitoring,
//! on `[admin].listen` (loopback by default), apart from the public webhook
//! listener so metrics are never exposed with it by accident.
//!
//! - `GET /healthz`: 200 while the process serves requests at all (a
//!   liveness probe).
//! - `GET /readyz`: 200 once the daemon has started and while its database
//!   can be opened and read; 503 with the reason otherwise (a readiness
//!   probe, and what an operator's monitoring should alert on).
//! - `GET /metrics`: every [`Metrics`] series in the Prometheus text format.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::metrics::{self, Metrics};
use crate::store::Store;

/// How long `/readyz` waits for the database before calling it unavailable.
/// A busy database answers within its 5 s busy timeout, and a probe must
/// answer before a monitoring system's own timeout (typically 10 s).
const DATABASE_CHECK_TIMEOUT: Duration = Duration::from_secs(6);

const STARTING: u8 = 0;
const READY: u8 = 1;
const STOPPING: u8 = 2;

/// Where the daemon is in its life, as `/readyz` reports it.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicU8>);

impl Readiness {
    pub fn set_ready(&self) {
        self.0.store(READY, Ordering::SeqCst);
    }

    pub fn set_stopping(&self) {
        self.0.store(STOPPING, Ordering::SeqCst);
    }

    fn phase(&self) -> u8 {
        self.0.load(Ordering::SeqCst)
    }
}

/// What the admin handlers read.
#[derive(Debug, Clone)]
pub struct AdminState {
    readiness: Readiness,
    database: PathBuf,
    metrics: Metrics,
}

impl AdminState {
    pub fn new(readiness: Readiness, database: PathBuf, metrics: Metrics) -> Self {
        Self {
            readiness,
            database,
            metrics,
        }
    }
}

/// The admin routes.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(state)
}

/// Serves the admin routes on `listener` until `shutdown` completes, then
/// finishes the requests in flight.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AdminState>) -> Response {
    match state.readiness.phase() {
        STARTING => return unavailable("starting".to_owned()),
        STOPPING => return unavailable("stopping".to_owned()),
        _ => {}
    }
    // A fresh read-only connection each time: this checks that the file can
    // still be opened and read, not just that an old handle is alive, and
    // never waits behind a job holding the daemon's own connection.
    let database = state.database.clone();
    let check = tokio::task::spawn_blocking(move || {
        Store::open_read_only(&database).and_then(|store| store.schema_version())
    });
    match tokio::time::timeout(DATABASE_CHECK_TIMEOUT, check).await {
        Ok(Ok(Ok(_))) => (StatusCode::OK, "ready\n").into_response(),
        Ok(Ok(Err(error))) => unavailable(format!("database unavailable: {error}")),
        Ok(Err(error)) => unavailable(format!("database check failed: {error}")),
        Err(_) => unavailable(format!(
            "database unavailable: no answer within {} s",
            DATABASE_CHECK_TIMEOUT.as_secs()
        )),
    }
}

fn unavailable(reason: String) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response()
}

async fn render_metrics(State(state): State<AdminState>) -> Response {
    match state.metrics.render() {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("could not render metrics: {error}\n"),
        )
            .into_response(),
    }
}
