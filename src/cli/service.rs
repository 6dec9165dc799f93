//! `halosync run`: the service. Opens the database as its owner, checks
//! that Halo answers with a token, binds the admin listener, then runs the
//! scheduled jobs until SIGTERM or SIGINT (see [`crate::daemon`]).

use std::process::ExitCode;
use std::sync::Arc;

use super::exit;
use crate::config::Config;
use crate::daemon::{self, Context};
use crate::http::MemoryRequestLog;

pub fn run(config: Config) -> ExitCode {
    let context = match Context::open(Arc::new(config)) {
        Ok(context) => context,
        Err(error) => {
            eprintln!("halosync: {error}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    super::block_on(serve(context))
}

async fn serve(context: Context) -> ExitCode {
    let config = context.config.clone();
    // systemd hears READY=1 only once Halo has given a token: a service
    // that cannot reach Halo is not running, and restarts on its schedule.
    let halo = match crate::halo::HaloClient::new(
        &config.halo,
        Arc::new(MemoryRequestLog::new()),
        context.clock.clone(),
    ) {
        Ok(halo) => halo,
        Err(error) => {
            eprintln!("halosync: Halo: {error}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    if let Err(error) = halo.agents().await {
        eprintln!("halosync: Halo: {error}");
        return ExitCode::from(exit::FAILURE);
    }
    let admin = match tokio::net::TcpListener::bind(config.admin.listen).await {
        Ok(admin) => admin,
        Err(error) => {
            eprintln!(
                "halosync: cannot listen on {} ([admin] listen): {error}",
                config.admin.listen
            );
            return ExitCode::from(exit::FAILURE);
        }
    };
    let jobs = daemon::production_jobs(&context);
    match daemon::run(context, admin, jobs, daemon::shutdown_signal()).await {
        Ok(exit) => {
            if !exit.abandoned.is_empty() {
                tracing::warn!(abandoned = ?exit.abandoned, "jobs were stopped part-way; the next run finishes their writes");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("halosync: {error}");
            ExitCode::from(exit::FAILURE)
        }
    }
}
