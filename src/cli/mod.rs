//! The `halosync` command tree. Each command parses its arguments, calls into
//! the library and turns the outcome into output and an exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{self, Environment, LogFormat};
use crate::logging;

mod check;
mod connections;
mod db;
mod plan;
mod run_job;
mod sim;
mod status;

/// Exit codes an administrator (or systemd's `RestartPreventExitStatus=`) can act on.
pub mod exit {
    /// Something failed at run time (network, disk, upstream); retrying may help.
    pub const FAILURE: u8 = 1;
    /// The configuration (or the command line) is wrong; retrying will not help.
    pub const CONFIG: u8 = 2;
    /// A person has to act first: an agent must sign in again, a mailbox is
    /// unavailable, or the mass-deletion guard held deletions back.
    pub const OPERATOR: u8 = 3;
}

#[derive(Debug, Parser)]
#[command(
    name = "halosync",
    version,
    about = "Two-way sync between HaloITSM appointments and Exchange Online calendars",
    long_about = "halosync keeps HaloITSM appointments and Exchange Online (Microsoft Graph) \
calendars in step, in both directions. It runs as a service on your own server, reading \
its settings from a TOML file (see config.example.toml) and keeping its state in a local \
SQLite database.\n\nStart with `halosync check-config --config /etc/halosync/halosync.toml`."
)]
pub struct Cli {
    /// Config file to use.
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "HALOSYNC_CONFIG",
        default_value = config::DEFAULT_CONFIG_PATH,
        value_name = "PATH"
    )]
    pub config: PathBuf,

    /// Log filter, e.g. `debug` or `halosync=trace,info` (default: RUST_LOG, then log.level in the config).
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,

    /// Log line format (default: log.format in the config).
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormatArg>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(value: LogFormatArg) -> Self {
        match value {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the config file and load its secrets; print a summary, or every
    /// problem with its line (exit 2).
    CheckConfig,
    /// Check connectivity: tokens for Halo and each Exchange connection, and
    /// a user lookup and one day's calendar read for every agent served;
    /// prints agent | mailbox | connection | result (exit 1 if any fails).
    Check(check::CheckArgs),
    /// Show what a sync would do now, per agent and why, changing nothing:
    /// reads both systems over the sync window and plans with the
    /// configured policies.
    Plan(plan::PlanArgs),
    /// Show each agent's sync health (mailbox, connection, state, pending
    /// writes, conflicts, subscription, last error) and each job's last run,
    /// from the database (read-only; safe while the service runs). Exit 3 if
    /// anything needs a person.
    Status,
    /// Run one job now, in the foreground, and record it like the service
    /// does: pull, push, reconcile, renew-subscriptions or prune. Refused
    /// while the service runs (it owns the database).
    RunJob(run_job::RunJobArgs),
    /// Look after the SQLite database named by store.path in the config.
    #[command(subcommand)]
    Db(db::DbCommand),
    /// Run the built-in Microsoft Graph + HaloITSM simulator (for trying
    /// halosync without a tenant; also what the tests use).
    Sim(sim::SimArgs),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    let env = Environment::process();
    match cli.command {
        Command::CheckConfig => {
            // Logging starts before the config is read so that secret loading
            // can be traced; its level comes from the command line or RUST_LOG.
            if let Err(code) = init_logging(&cli, &env, None) {
                return code;
            }
            check_config(&cli, &env)
        }
        Command::Check(_) => match load_with_logging(&cli, &env) {
            Ok(config) => check::run(&config),
            Err(code) => code,
        },
        Command::Plan(ref args) => match load_with_logging(&cli, &env) {
            Ok(config) => plan::run(&config, args),
            Err(code) => code,
        },
        Command::Status => match load_with_logging(&cli, &env) {
            Ok(config) => status::run(&config),
            Err(code) => code,
        },
        Command::RunJob(ref args) => match load_with_logging(&cli, &env) {
            Ok(config) => run_job::run(config, args),
            Err(code) => code,
        },
        Command::Db(ref command) => match load_with_logging(&cli, &env) {
            Ok(config) => db::run(command, &config),
            Err(code) => code,
        },
        Command::Sim(ref args) => {
            if let Err(code) = init_logging(&cli, &env, None) {
                return code;
            }
            sim::run(args)
        }
    }
}

/// Loads the config (exit 2 when it is wrong) and starts logging with its
/// settings.
fn load_with_logging(cli: &Cli, env: &Environment) -> Result<config::Config, ExitCode> {
    let loaded = config::load(&cli.config, env).map_err(|error| {
        eprintln!("{error}");
        ExitCode::from(exit::CONFIG)
    })?;
    init_logging(cli, env, Some(&loaded.config.log))?;
    Ok(loaded.config)
}

fn init_logging(
    cli: &Cli,
    env: &Environment,
    from_config: Option<&config::LogConfig>,
) -> Result<(), ExitCode> {
    let filter = cli
        .log_level
        .clone()
        .or_else(|| env.var("RUST_LOG"))
        .or_else(|| from_config.map(|l| l.level.clone()))
        .unwrap_or_else(|| "info".to_string());
    let format = cli
        .log_format
        .map(LogFormat::from)
        .or(from_config.map(|l| l.format))
        .unwrap_or(LogFormat::Text);
    logging::init(&filter, format).map_err(|e| {
        eprintln!("halosync: {e}");
        ExitCode::from(exit::CONFIG)
    })
}

fn check_config(cli: &Cli, env: &Environment) -> ExitCode {
    match config::load(&cli.config, env) {
        Ok(loaded) => {
            let file = cli.config.display().to_string();
            for warning in &loaded.warnings {
                eprintln!("{}", warning.render(&file));
            }
            println!("{file}: OK: {}", loaded.config.summary());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::from(exit::CONFIG)
        }
    }
}

/// Runs an async command on a multi-threaded runtime made for it.
fn block_on(command: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(command),
        Err(e) => {
            eprintln!("halosync: cannot start the async runtime: {e}");
            ExitCode::from(exit::FAILURE)
        }
    }
}
