//! The single-owner lock: one halosync process writes a database at a time.
//!
//! SQLite's own locking only serialises transactions; two daemons on one
//! database would both sync and fight each other. An advisory lock on
//! `<db>.lock` makes the second one stop at start-up instead. The kernel drops
//! the lock when its holder exits or crashes, so a lock is never stale; the pid
//! written into the file is only there to tell the operator who holds it.

use std::ffi::OsString;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::StoreError;

/// Holds the exclusive lock for as long as it lives.
#[derive(Debug)]
pub(super) struct OwnerLock {
    _file: File,
}

impl OwnerLock {
    /// Takes the lock beside `db_path` without waiting, or reports who holds it.
    pub(super) fn acquire(db_path: &Path) -> Result<Self, StoreError> {
        let lock_path = lock_path_for(db_path);
        let io_error = |action, source| StoreError::Io {
            action,
            path: lock_path.clone(),
            source,
        };
        // No truncate on open: until we hold the lock, the pid inside belongs
        // to whoever does.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| io_error("opening the lock file", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    path: db_path.to_path_buf(),
                    pid: read_holder_pid(&mut file),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io_error("locking the lock file", e)),
        }
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .map_err(|e| io_error("writing our pid into the lock file", e))?;
        Ok(Self { _file: file })
    }
}

/// `<db path>.lock`, beside the database so it shares its directory and permissions.
fn lock_path_for(db_path: &Path) -> PathBuf {
    let mut name = OsString::from(db_path.as_os_str());
    name.push(".lock");
    PathBuf::from(name)
}

/// The holder's pid, if it has written one yet; it is informational only, so
/// anything unreadable is simply unknown.
fn read_holder_pid(file: &mut File) -> Option<u32> {
    let mut contents = String::new();
    file.read_to_string(&mut contents).ok()?;
    contents.trim().parse().ok()
}
