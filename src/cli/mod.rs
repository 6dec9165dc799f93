//! The `halosync` command tree. Each command parses its arguments, calls into
//! the library and turns the outcome into output and an exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{self, Environment, LogFormat};
use crate::logging;

mod agents;
mod bench;
mod check;
mod connect;

mod db;
mod demo;
mod report;
mod requests;
mod run_job;
mod service;
mod sim;
mod status;
mod subscriptions;
mod sync;
mod table;

/// Exit codes an administrator (or systemd's `RestartPreventExitStatus=`) can act on.
pub mod exit {
    /// Something failed at run time (network, disk, upstream); retrying may help.
    pub const FAILURE: u8 = 1;
    /// The configuration (or the command line) is wrong; retrying will not help.
    pub const CONFIG: u8 = 2;
    /// An administrator must act: a sign-in to renew, a mailbox without
    /// access, or deletions held back by the mass-deletion guard.
    pub const OPERATOR: u8 = 3;
}

/// Says why a session could not be opened; the exit code for it.
fn session_failed(error: &crate::session::SessionError) -> std::process::ExitCode {
    eprintln!("halosync: {error}");
    std::process::ExitCode::from(if error.is_configuration() {
        exit::CONFIG
    } else {
        exit::FAILURE
    })
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
    /// Show what a sync would do now, per agent and why, changing nothing
    /// (the same as `sync --once --dry-run`).
    Plan(sync::PlanArgs),
    /// Sync now: Exchange and Halo changes both ways, per agent, printing
    /// every write and why (exit 3 when an administrator must act).
    Sync(sync::SyncArgs),
    /// Bring the existing Exchange appointments in the window into Halo,
    /// linking those already on both sides first (resumable; safe to rerun).
    Import(sync::ImportArgs),
    /// Rebuild lost links (after losing or restoring the database) from
    /// halosync's markers and from copies already on both sides; creates
    /// and deletes nothing.
    Relink(sync::RelinkArgs),
    /// Try halosync with nothing to set up: a real import and two-way sync
    /// against the built-in simulator, printing what it did.
    Demo(demo::DemoArgs),
    /// Run the service: the scheduled jobs of [sync.schedule] (pull, push,
    /// reconcile, renew-subscriptions, prune), health and metrics on
    /// [admin] listen, systemd notify; stops cleanly on SIGTERM/SIGINT.
    Run,
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
    /// Manage the Graph change-notification subscriptions (the webhooks
    /// table): list, create, delete, renew.
    #[command(subcommand)]
    Subscriptions(subscriptions::SubscriptionsCommand),
    /// Show the inbound (webhook) or outbound (Halo, Graph) request log,
    /// newest first.
    Requests(requests::RequestsArgs),
    /// Connect accounts: sign in a delegated connection's account
    /// (`connect admin`), or print an agent's link to /connect
    /// (`connect link --agent EMAIL`).
    #[command(subcommand)]
    Connect(connect::ConnectCommand),
    /// List every served agent: connection, type, connected-as, sign-in
    /// state and sync state (`--json` for scripts).
    Agents(agents::AgentsArgs),
    /// Measure halosync against the built-in simulator (import, steady
    /// state, churn, latency, memory) next to a full-rescan integrator;
    /// prints a table and writes JSON.
    Bench(bench::BenchArgs),
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
            Ok(config) => sync::plan(&config, args.agent.as_deref()),
            Err(code) => code,
        },
        Command::Sync(ref args) => match load_with_logging(&cli, &env) {
            Ok(config) => sync::sync(&config, args),
            Err(code) => code,
        },
        Command::Import(ref args) => match load_with_logging(&cli, &env) {
            Ok(config) => sync::import(&config, args),
            Err(code) => code,
        },
        Command::Relink(ref args) => match load_with_logging(&cli, &env) {
            Ok(config) => sync::relink(&config, args),
            Err(code) => code,
        },
        Command::Status => match load_with_logging(&cli, &env) {
            Ok(config) => status::run(&config),
            Err(code) => code,
        },
        Command::Run => match load_with_logging(&cli, &env) {
            Ok(config) => service::run(config),
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
        Command::Demo(ref args) => {
            if let Err(code) = init_logging(&cli, &env, None) {
                return code;
            }
            demo::run(args)
        }
        Command::Subscriptions(ref command) => match load_with_logging(&cli, &env) {
            Ok(config) => subscriptions::run(command, config),
            Err(code) => code,
        },
        Command::Requests(ref args) => match load_with_logging(&cli, &env) {
            Ok(config) => requests::run(args, &config),
            Err(code) => code,
        },
        Command::Connect(ref command) => match load_with_logging(&cli, &env) {
            Ok(config) => connect::run(command, config),
            Err(code) => code,
        },
        Command::Agents(ref args) => match load_with_logging(&cli, &env) {
            Ok(config) => agents::run(args, &config),
            Err(code) => code,
        },
        Command::Bench(ref args) if args.phase.is_some() => match load_with_logging(&cli, &env) {
            Ok(config) => bench::phase(&config),
            Err(code) => code,
        },
        Command::Bench(ref args) => {
            // The engine's per-agent lines would drown the table.
            let filter = cli
                .log_level
                .clone()
                .or_else(|| env.var("RUST_LOG"))
                .unwrap_or_else(|| "warn".into());
            let format = cli.log_format.map_or(LogFormat::Text, LogFormat::from);
            if let Err(e) = logging::init(&filter, format) {
                eprintln!("halosync: {e}");
                return ExitCode::from(exit::CONFIG);
            }
            bench::run(args)
        }
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
            if crate::connect::has_sign_ins(&loaded.config) {
                match crate::connect::oauth::redirect_uri(&loaded.config.webhook) {
                    Ok(uri) => println!(
                        "redirect URI to register in the app registration (platform \"Web\"): {uri}"
                    ),
                    Err(error) => eprintln!("halosync: {error}"),
                }
            }
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
