//! The state store: what each destination is known to hold, and the run
//! history. SQLite (embedded, WAL), default `.audex/state.db` beside the
//! config, created with mode 0600 because it holds customer keys.
//!
//! Invariant: the store only records what a destination confirmed. A run
//! that dies at any point leaves it describing a subset of the truth, so the
//! next run's diff sends what is missing and nothing twice.

mod fingerprints;
mod lock;
mod members;
mod runs;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::Connection;

use crate::error::{Error, Result};

pub use lock::{
    host_name, LockAttempt, LockHolder, LockToken, SkipRecord, DEFAULT_STALE_AFTER, HEARTBEAT_EVERY,
};
pub use members::{Checkpoint, MemberRow, PurgeCounts, StoredRecord, Suppression};
pub use runs::{NewRun, RunRecord};
pub use schema::SCHEMA_VERSION;

/// A hash of the fields last sent for a record (the first 16 bytes of a
/// SHA-256 over the field names and values).
pub type FieldsHash = [u8; 16];

/// The state store. Cheap to share behind an `Arc`; each method holds the
/// connection only for its own statements.
#[derive(Debug)]
pub struct StateStore {
    conn: Mutex<Connection>,
    path: Option<PathBuf>,
}

impl StateStore {
    /// Open (creating it, its folder and its schema if needed) the store at
    /// `path`. The file is created readable by its owner only.
    pub fn open(path: &Path) -> Result<StateStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir)?;
        }
        create_private_file(path)?;
        let conn = Connection::open(path).map_err(|e| {
            Error::internal(format!("cannot open the state store {}", path.display()))
                .with_source(e)
        })?;
        Self::init(conn, Some(path.to_path_buf()))
    }

    /// A store that lives in memory only (tests, dry runs of tools).
    pub fn open_in_memory() -> Result<StateStore> {
        let conn = Connection::open_in_memory().map_err(db_err("open an in-memory store"))?;
        Self::init(conn, None)
    }

    fn init(mut conn: Connection, path: Option<PathBuf>) -> Result<StateStore> {
        // Another process (a scheduler, a manual run) may hold the write lock
        // for one checkpoint; wait rather than fail.
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(db_err("set the busy timeout"))?;
        if path.is_some() {
            // WAL with synchronous=NORMAL keeps every committed transaction
            // across a process crash (SIGKILL); only power loss may drop the
            // last few, which the next run's diff then resends.
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(db_err("enable WAL"))?;
            conn.pragma_update(None, "synchronous", "NORMAL")
                .map_err(db_err("set synchronous"))?;
            // A run appends each call's checkpoint to the journal, and the
            // next reader folds it into the B-trees in key order. A 16 MiB
            // page cache holds their inner pages for that; 64 MiB measured
            // slower on the fold and cost 50 MB more RSS (bench: 1M
            // profiles). A large WAL folds many commits of the same page
            // into one write back.
            conn.pragma_update(None, "cache_size", -16_384)
                .map_err(db_err("set the cache size"))?;
            conn.pragma_update(None, "wal_autocheckpoint", 16_384)
                .map_err(db_err("set the WAL checkpoint size"))?;
        }
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(db_err("enable foreign keys"))?;
        schema::migrate(&mut conn)?;
        Ok(StateStore {
            conn: Mutex::new(conn),
            path,
        })
    }

    /// Where the store lives (`None` in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<u32> {
        schema::current_version(&self.lock())
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves the connection usable (SQLite
        // rolls back an unfinished transaction), so a poisoned lock is fine.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The current time as RFC 3339 UTC, as stored in the database.
pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub(crate) fn db_err(context: &str) -> impl FnOnce(rusqlite::Error) -> Error + '_ {
    move |e| Error::internal(format!("state store: cannot {context}")).with_source(e)
}

fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| {
        Error::internal(format!("cannot create the folder {}", dir.display())).with_source(e)
    })
}

/// Create the file with mode 0600 before SQLite opens it (SQLite would use
/// the umask, usually 0644); tighten an existing file that is wider.
fn create_private_file(path: &Path) -> Result<()> {
    let io_err = |e: std::io::Error| {
        Error::internal(format!("cannot create the state store {}", path.display())).with_source(e)
    };
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map_err(io_err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(io_err)?;
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(io_err)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
