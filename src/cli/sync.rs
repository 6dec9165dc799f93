//! `halosync sync --once`, `import`, `relink` and `plan`: one run over the
//! served agents, each through the connection that serves it, printing
//! every write and why, then a summary table.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use super::exit;
use super::report::{Tally, print_agent, print_summary};
use crate::config::Config;
use crate::halo::Agent;
use crate::http::{MemoryRequestLog, SharedRequestLog, spawn_store_writer};
use crate::session::{Session, agent_name, served_agents};
use crate::store::{Store, StoreError};
use crate::sync::agents::{AgentResult, Reporter, run_agents};
use crate::sync::run::RunOptions;
pub(super) use crate::sync::run::{Mode, Pass};

#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// Run one sync now and exit (the daemon, `halosync run`, syncs on its schedule).
    #[arg(long, required = true)]
    pub once: bool,
    /// Only this agent (their e-mail address).
    #[arg(long, value_name = "EMAIL")]
    pub agent: Option<String>,
    /// Print what would be created, updated or deleted, and why; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Let this run delete more than the mass-deletion guard allows (after
    /// checking why so much disappeared). Best combined with --agent.
    #[arg(long)]
    pub allow_deletes: bool,
    /// Read the whole window on both sides (as the hourly reconcile does)
    /// instead of only what changed since the last sync.
    #[arg(long)]
    pub full: bool,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Also import the occurrences of recurring series in the window.
    #[arg(long)]
    pub recurring: bool,
    /// Only this agent (their e-mail address).
    #[arg(long, value_name = "EMAIL")]
    pub agent: Option<String>,
    /// Print what would be imported or linked; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Only this agent (their e-mail address).
    #[arg(long, value_name = "EMAIL")]
    pub agent: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct RelinkArgs {
    /// Only this agent (their e-mail address).
    #[arg(long, value_name = "EMAIL")]
    pub agent: Option<String>,
    /// Print what would be linked; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn sync(config: &Config, args: &SyncArgs) -> ExitCode {
    let options = RunOptions {
        mode: Mode::Sync,
        pass: if args.full {
            Pass::Full
        } else {
            Pass::Incremental
        },
        dry_run: args.dry_run,
        allow_deletes: args.allow_deletes,
    };
    super::block_on(run_once(config, args.agent.as_deref(), options))
}

pub fn import(config: &Config, args: &ImportArgs) -> ExitCode {
    let options = RunOptions {
        mode: Mode::Import {
            recurring: args.recurring,
        },
        pass: Pass::Full,
        dry_run: args.dry_run,
        allow_deletes: false,
    };
    super::block_on(run_once(config, args.agent.as_deref(), options))
}

pub fn relink(config: &Config, args: &RelinkArgs) -> ExitCode {
    let options = RunOptions {
        mode: Mode::Relink,
        pass: Pass::Full,
        dry_run: args.dry_run,
        allow_deletes: false,
    };
    super::block_on(run_once(config, args.agent.as_deref(), options))
}

/// `plan`: the same as `sync --once --dry-run`.
pub fn plan(config: &Config, agent: Option<&str>) -> ExitCode {
    let options = RunOptions {
        mode: Mode::Sync,
        pass: Pass::Incremental,
        dry_run: true,
        allow_deletes: false,
    };
    super::block_on(run_once(config, agent, options))
}

/// The database a run uses: the real one (owned, migrated) for a run that
/// writes; for a dry run, the file read-only, or an empty one in memory
/// before the first sync.
fn open_store(config: &Config, dry_run: bool) -> Result<Store, StoreError> {
    match (dry_run, config.store.path.exists()) {
        (false, _) => Store::open(&config.store.path),
        (true, true) => Store::open_read_only(&config.store.path),
        (true, false) => Store::open_in_memory(),
    }
}

/// One run over the served agents (or only `agent`), printed.
pub(super) async fn run_once(
    config: &Config,
    agent: Option<&str>,
    options: RunOptions,
) -> ExitCode {
    let store = match open_store(config, options.dry_run) {
        Ok(store) => Arc::new(Mutex::new(store)),
        Err(e) => {
            eprintln!("halosync: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    // A run that writes keeps the guide's outbound request log; a dry run
    // records nothing.
    let (log, writer): (SharedRequestLog, _) = if options.dry_run {
        (Arc::new(MemoryRequestLog::new()), None)
    } else {
        let (log, task) = spawn_store_writer(store.clone(), 1024);
        (log, Some(task))
    };
    let code = sync_served(config, agent, options, store, log).await;
    if let Some(writer) = writer {
        // Every client (and so every sender) is gone: the writer drains
        // what is queued and stops.
        if let Err(e) = writer.await {
            tracing::warn!(error = %e, "the request log writer stopped abnormally");
        }
    }
    code
}

async fn sync_served(
    config: &Config,
    agent: Option<&str>,
    options: RunOptions,
    store: Arc<Mutex<Store>>,
    log: SharedRequestLog,
) -> ExitCode {
    let session = match Session::open_with(config, Some(store.clone()), log).await {
        Ok(session) => session,
        Err(error) => return super::session_failed(&error),
    };
    let agents = match served_agents(config, &session.agents, agent) {
        Ok(agents) => agents,
        Err(message) => {
            eprintln!("halosync: {message}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let mut printer = Printer {
        dry_run: options.dry_run,
        progress: Progress::new(options),
        bar: None,
        header: String::new(),
        rows: Vec::new(),
    };
    let verdict = run_agents(config, &session, &store, options, &agents, &mut printer).await;
    print_summary(&printer.rows, options.dry_run);
    if verdict.needs_operator {
        ExitCode::from(exit::OPERATOR)
    } else if verdict.failed {
        ExitCode::from(exit::FAILURE)
    } else {
        ExitCode::SUCCESS
    }
}

/// Prints each agent's run as it ends, with a progress bar while it runs.
struct Printer {
    dry_run: bool,
    progress: Progress,
    bar: Option<AgentProgress>,
    header: String,
    rows: Vec<(String, Option<Tally>)>,
}

impl Reporter for Printer {
    fn started(&mut self, agent: &Agent, n: usize, of: usize) {
        let mailbox = agent.mailbox().unwrap_or_default();
        self.header = format!("{} <{mailbox}> [{n}/{of}]", agent_name(agent));
        self.bar = Some(self.progress.agent(&mailbox));
    }

    fn progress(&mut self, done: usize, total: usize) -> bool {
        if let Some(bar) = &mut self.bar {
            bar.step(done, total);
        }
        true
    }

    fn finished(&mut self, agent: &Agent, result: &AgentResult) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
        let mailbox = agent.mailbox().unwrap_or_default();
        let tally = match result {
            AgentResult::NotRun { reason, .. } => {
                println!("{}\n  skipped: {reason}", self.header);
                None
            }
            AgentResult::Ran(run) => print_agent(&self.header, run, self.dry_run),
        };
        self.rows.push((mailbox, tally));
    }
}

/// Progress of an import: a bar on a terminal, a line per agent otherwise
/// (logs and pipes get no control characters).
struct Progress {
    import: bool,
    bars: bool,
}

impl Progress {
    fn new(options: RunOptions) -> Self {
        let import = matches!(options.mode, Mode::Import { .. }) && !options.dry_run;
        Self {
            import,
            bars: import && std::io::stderr().is_terminal(),
        }
    }

    fn agent(&self, mailbox: &str) -> AgentProgress {
        let bar = self.bars.then(|| {
            let bar = indicatif::ProgressBar::new(0);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} {elapsed_precise}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(mailbox.to_string());
            bar
        });
        AgentProgress {
            bar,
            lines: self.import && !self.bars,
            mailbox: mailbox.to_string(),
            tenths: 0,
        }
    }
}

struct AgentProgress {
    bar: Option<indicatif::ProgressBar>,
    /// A plain line at every tenth of a long import.
    lines: bool,
    mailbox: String,
    tenths: usize,
}

impl AgentProgress {
    fn step(&mut self, done: usize, total: usize) {
        if let Some(bar) = &self.bar {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
        let tenths = done * 10 / total.max(1);
        if self.lines && total >= 20 && tenths > self.tenths {
            self.tenths = tenths;
            eprintln!("{}: {done}/{total} imported or linked", self.mailbox);
        }
    }

    fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
