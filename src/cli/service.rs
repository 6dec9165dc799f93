//! `halosync run`: the service. Opens the database as its owner, checks
//! that Halo answers with a token, binds the admin listener, then runs the
//! scheduled jobs until SIGTERM or SIGINT (see [`crate::daemon`]).

use std::process::ExitCode;
use std::sync::Arc;

use super::exit;
use crate::config::Config;
use crate::daemon::{self, Context, Daemon, JobName, SubscriptionUpkeep};
use crate::http::MemoryRequestLog;
use crate::webhook::{self, DEFAULT_DEBOUNCE, WebhookQueue, WebhookState};
use tokio_util::sync::CancellationToken;

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
    let halo = match crate::halo::HaloClient::with_options(
        &config.halo,
        Arc::new(MemoryRequestLog::new()),
        context.clock.clone(),
        crate::halo::HaloClientOptions {
            shared: Some(context.halo.clone()),
            ..Default::default()
        },
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
    let subscriptions = if config.webhook.enabled {
        // Lives as long as the service: its last records may be cut off at exit.
        let (log, _writer) = daemon::metered_log(&context);
        match SubscriptionUpkeep::open(&context, log) {
            Ok(upkeep) => Some(Arc::new(upkeep)),
            Err(error) => {
                eprintln!("halosync: webhook subscriptions: {error}");
                return ExitCode::from(exit::CONFIG);
            }
        }
    } else {
        None
    };
    let jobs = daemon::production_jobs(&context, subscriptions.clone());
    let stop = CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            daemon::shutdown_signal().await;
            stop.cancel();
        }
    });
    let mut daemon = Daemon::new(context.clone());
    if (config.webhook.enabled || crate::connect::has_sign_ins(&config))
        && let Err(code) =
            start_public_listener(&context, &jobs, subscriptions.as_deref(), &stop).await
    {
        return code;
    }
    if subscriptions.is_some() {
        // Subscriptions are made (or found live) as soon as the service
        // runs, not a day later on the schedule.
        daemon = daemon.with_startup_jobs(vec![JobName::RenewSubscriptions]);
    }
    match daemon.run(admin, jobs, stop.cancelled_owned()).await {
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

/// The public listener (the webhook paths when webhooks are on, the
/// sign-in pages when a connection needs sign-ins); with webhooks, the task
/// that syncs each mailbox a notification names (debounced, under the
/// scheduled syncs' lock) and the one that renews and repairs subscriptions
/// when they fall due or a lifecycle event asks.
async fn start_public_listener(
    context: &Context,
    jobs: &Arc<daemon::ProductionJobs>,
    subscriptions: Option<&SubscriptionUpkeep>,
    stop: &CancellationToken,
) -> Result<(), ExitCode> {
    let config = &context.config;
    let queue = WebhookQueue::new(context.store.clone());
    if config.webhook.enabled
        && let Err(error) = queue.recover()
    {
        eprintln!("halosync: the webhook queue: {error}");
        return Err(ExitCode::from(exit::FAILURE));
    }
    let listener = match tokio::net::TcpListener::bind(config.webhook.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!(
                "halosync: cannot listen on {} ([webhook] listen): {error}",
                config.webhook.listen
            );
            return Err(ExitCode::from(exit::FAILURE));
        }
    };
    let webhooks = subscriptions.map(|subscriptions| {
        let state = WebhookState::new(&config.webhook, queue.clone(), context.clock.clone())
            .with_metrics(context.metrics.clone());
        tokio::spawn(
            subscriptions.tend(state.maintenance_wakeup(), stop.clone().cancelled_owned()),
        );
        state
    });
    let sign_ins = if crate::connect::has_sign_ins(config) {
        crate::connect::service_routes(
            config.clone(),
            context.store.clone(),
            context.clock.clone(),
            context.halo.clone(),
        )
        .map_err(|error| {
            eprintln!("halosync: the sign-in pages: {error}");
            ExitCode::from(exit::CONFIG)
        })?
    } else {
        axum::Router::new()
    };
    let shutdown = stop.clone().cancelled_owned();
    tokio::spawn(async move {
        if let Err(error) = webhook::serve_public(listener, webhooks, sign_ins, shutdown).await {
            tracing::error!(%error, "the public listener stopped");
        }
    });
    if subscriptions.is_none() {
        return Ok(());
    }
    let (jobs, context, stop) = (jobs.clone(), context.clone(), stop.clone());
    tokio::spawn(async move {
        loop {
            let due = tokio::select! {
                () = stop.cancelled() => return,
                due = queue.wait_due(context.clock.as_ref(), DEFAULT_DEBOUNCE) => due,
            };
            let changes = match due {
                Ok(changes) => changes,
                Err(error) => {
                    tracing::warn!(%error, "could not read the webhook queue; retrying in 5 s");
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                    continue;
                }
            };
            for changed in changes {
                let outcome = jobs.sync_mailbox(&changed.mailbox, stop.clone()).await;
                let settled = match outcome {
                    daemon::JobOutcome::Done { .. } => queue.done(&changed),
                    // The scheduled pull is the failsafe; the entry is
                    // handed out again.
                    _ => queue.release(&changed),
                };
                if let Err(error) = settled {
                    tracing::warn!(%error, mailbox = %changed.mailbox, "could not settle a webhook queue entry");
                }
            }
            if let Err(error) = daemon::refresh_gauges(&context).await {
                tracing::warn!(%error, "could not read the metrics' gauges from the database");
            }
        }
    });
    Ok(())
}
