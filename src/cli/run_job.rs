//! `halosync run-job JOB`: runs one job now, in the foreground, through the
//! same runner and run records as the service.

use std::process::ExitCode;
use std::sync::Arc;

use super::exit;
use super::subscriptions::Listening;
use crate::config::Config;
use crate::daemon::{self, Context, JobName, JobOutcome, SubscriptionUpkeep, UnknownJob};

#[derive(Debug, clap::Args)]
pub struct RunJobArgs {
    /// The job to run: pull, push, reconcile, renew-subscriptions or prune.
    #[arg(value_name = "JOB", value_parser = parse_job)]
    pub job: JobName,
}

fn parse_job(text: &str) -> Result<JobName, UnknownJob> {
    text.parse()
}

pub fn run(config: Config, args: &RunJobArgs) -> ExitCode {
    // Opening as the database's owner is refused (naming the pid) while the
    // service runs: two writers would fight over the same links.
    let context = match Context::open(Arc::new(config)) {
        Ok(context) => context,
        Err(error) => {
            eprintln!("halosync: {error}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    let job = args.job;
    super::block_on(async move {
        // Creating a subscription needs Graph's validation request answered
        // on webhook.listen, as the service would.
        let mut listening = None;
        let mut subscriptions = None;
        if job == JobName::RenewSubscriptions && context.config.webhook.enabled {
            let (log, _writer) = daemon::metered_log(&context);
            match SubscriptionUpkeep::open(&context, log) {
                Ok(upkeep) => subscriptions = Some(Arc::new(upkeep)),
                Err(error) => {
                    eprintln!("halosync: webhook subscriptions: {error}");
                    return ExitCode::from(exit::CONFIG);
                }
            }
            match Listening::start(&context.config, &context.store, &context.clock).await {
                Ok(started) => listening = Some(started),
                Err(code) => return code,
            }
        }
        let jobs = daemon::production_jobs(&context, subscriptions);
        let outcome = daemon::run_job(&context, jobs, job, daemon::shutdown_signal()).await;
        if let Some(listening) = listening {
            listening.stop().await;
        }
        match outcome {
            Ok(outcome) => report(job, &outcome),
            Err(error) => {
                eprintln!("halosync: {job}: {error}");
                ExitCode::from(exit::FAILURE)
            }
        }
    })
}

fn report(job: JobName, outcome: &JobOutcome) -> ExitCode {
    match outcome {
        JobOutcome::Done { summary, stats } => {
            println!("{job}: ok: {summary}");
            println!("{stats}");
            ExitCode::SUCCESS
        }
        JobOutcome::NeedsOperator { reason } => {
            eprintln!("halosync: {job}: operator action needed: {reason}");
            ExitCode::from(exit::OPERATOR)
        }
        JobOutcome::Failed { error } => {
            eprintln!("halosync: {job} failed: {error}");
            ExitCode::from(exit::FAILURE)
        }
    }
}
