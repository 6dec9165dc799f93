//! `halosync db ...`: create, upgrade, check and back up the database.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::exit;
use crate::config::Config;
use crate::store::{Store, StoreError};

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Create the database, or upgrade its schema to this version of
    /// halosync. Refused while another halosync process owns the database.
    Migrate,
    /// Check the database's structure and references (read-only; safe while
    /// the service runs). Exit 1 if anything is wrong.
    Check,
    /// Write a consistent, compacted copy of the database to a new file
    /// (read-only; safe while the service runs).
    Backup {
        /// Where to write the copy; must not exist yet.
        #[arg(value_name = "DEST")]
        dest: PathBuf,
    },
}

pub fn run(command: &DbCommand, config: &Config) -> ExitCode {
    let path = &config.store.path;
    let outcome = match command {
        DbCommand::Migrate => migrate(path),
        DbCommand::Check => check(path),
        DbCommand::Backup { dest } => backup(path, dest),
    };
    outcome.unwrap_or_else(|error| {
        eprintln!("halosync: {error}");
        ExitCode::from(exit::FAILURE)
    })
}

fn migrate(path: &std::path::Path) -> Result<ExitCode, StoreError> {
    let store = Store::open(path)?;
    let now = store.schema_version()?;
    match store.opened_at_version() {
        0 => println!("{}: created with schema {now}", path.display()),
        before if before == now => println!("{}: schema {now} is current", path.display()),
        before => println!("{}: upgraded schema {before} to {now}", path.display()),
    }
    Ok(ExitCode::SUCCESS)
}

fn check(path: &std::path::Path) -> Result<ExitCode, StoreError> {
    let store = Store::open_read_only(path)?;
    let report = store.integrity_check()?;
    if report.is_ok() {
        println!(
            "{}: ok (schema {})",
            path.display(),
            store.schema_version()?
        );
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "{}: {} problem(s) found:",
        path.display(),
        report.problems().len()
    );
    for problem in report.problems() {
        eprintln!("  {problem}");
    }
    eprintln!(
        "restore the latest backup (halosync db backup makes one) or contact support with this output"
    );
    Ok(ExitCode::from(exit::FAILURE))
}

fn backup(path: &std::path::Path, dest: &std::path::Path) -> Result<ExitCode, StoreError> {
    let store = Store::open_read_only(path)?;
    store.backup_to(dest)?;
    println!("{}: backed up to {}", path.display(), dest.display());
    Ok(ExitCode::SUCCESS)
}
