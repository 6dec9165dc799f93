//! Errors at the store boundary. Every message names the database file and
//! says what an operator can do about it.

use std::path::PathBuf;

/// Why the store could not be opened, migrated, checked or backed up.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "directory {} for database {} does not exist; create it (the systemd unit's StateDirectory= does) or fix the database path",
        dir.display(),
        path.display()
    )]
    MissingDirectory { path: PathBuf, dir: PathBuf },

    #[error(
        "database {} is in use by another halosync process ({}); stop it first (systemctl stop halosync)",
        path.display(),
        describe_pid(*pid)
    )]
    Locked { path: PathBuf, pid: Option<u32> },

    #[error(
        "database {} was created by a newer halosync (schema {found}, this binary knows {known}); downgrading is not supported — restore a backup or upgrade halosync",
        path.display()
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },

    #[error(
        "database {} has schema {found} but this binary reads schema {known}; run `halosync db migrate` (or start the service, which upgrades it) and try again",
        path.display()
    )]
    SchemaOutdated {
        path: PathBuf,
        found: i64,
        known: i64,
    },

    #[error(
        "{} has tables but no halosync schema version, so it is not a halosync database; check the database path",
        path.display()
    )]
    NotHalosync { path: PathBuf },

    #[error(
        "database {} is not initialised; check the path, or create it with `halosync db migrate`",
        path.display()
    )]
    NotInitialised { path: PathBuf },

    #[error(
        "database {} stayed in journal mode '{mode}' instead of WAL; keep it on a local filesystem",
        path.display()
    )]
    WalUnavailable { path: PathBuf, mode: String },

    #[error(
        "refusing to back up to {}: the file already exists; choose a new file name",
        dest.display()
    )]
    BackupTargetExists { dest: PathBuf },

    #[error("path {} is not valid UTF-8, which SQLite needs for a file name; choose another path", path.display())]
    NonUtf8Path { path: PathBuf },

    #[error("{action} failed for {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{action} failed for database {}: {source}", path.display())]
    Sqlite {
        action: String,
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
}

impl StoreError {
    /// Wraps a rusqlite error with the operation and file it concerns.
    pub(crate) fn sqlite(
        action: impl Into<String>,
        path: impl Into<PathBuf>,
        source: rusqlite::Error,
    ) -> Self {
        Self::Sqlite {
            action: action.into(),
            path: path.into(),
            source,
        }
    }

    /// Wraps a rusqlite error with the operation and the file `conn` is open on.
    pub(crate) fn on(
        conn: &rusqlite::Connection,
        action: impl Into<String>,
        source: rusqlite::Error,
    ) -> Self {
        Self::sqlite(action, conn.path().unwrap_or("(in memory)"), source)
    }
}

fn describe_pid(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("pid {pid}"),
        None => "pid unknown".to_owned(),
    }
}
