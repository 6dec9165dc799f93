//! The shutdown request: SIGTERM (what `systemctl stop` sends) or SIGINT
//! (Ctrl-C in a terminal).

use tokio::signal::unix::{SignalKind, signal};

/// Completes on the first SIGTERM or SIGINT. If a handler cannot be
/// installed, that signal keeps its default action (the process ends), so
/// the service can still be stopped; this is logged.
pub async fn shutdown_signal() {
    let terminate = wait_for(SignalKind::terminate(), "SIGTERM");
    let interrupt = wait_for(SignalKind::interrupt(), "SIGINT");
    tokio::select! {
        () = terminate => tracing::info!("received SIGTERM"),
        () = interrupt => tracing::info!("received SIGINT"),
    }
}

async fn wait_for(kind: SignalKind, name: &str) {
    match signal(kind) {
        Ok(mut stream) => {
            stream.recv().await;
        }
        Err(error) => {
            tracing::warn!(%error, "cannot handle {name}; it will end halosync without a graceful shutdown");
            std::future::pending::<()>().await;
        }
    }
}
