//! For `run_on: source_change`: per destination, the fingerprint of its
//! sources at its last export that succeeded.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::lock::ts;
use super::{db_err, StateStore};
use crate::error::Result;

// Created on first use, like the lock tables, so stores written by an older
// audex need no migration.
const CREATE: &str = "
    CREATE TABLE IF NOT EXISTS source_fingerprints (
        destination TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        recorded_at TEXT NOT NULL
    );";

fn ensure_table(conn: &Connection) -> Result<()> {
    conn.execute_batch(CREATE)
        .map_err(db_err("create the fingerprint table"))
}

/// Forget `destination`'s fingerprint (its state is purged: the next
/// scheduled time must export whatever the sources hold).
pub(super) fn forget(conn: &Connection, destination: &str) -> Result<()> {
    ensure_table(conn)?;
    conn.execute(
        "DELETE FROM source_fingerprints WHERE destination = ?1",
        params![destination],
    )
    .map_err(db_err("forget a source fingerprint"))?;
    Ok(())
}

impl StateStore {
    /// The fingerprint of `destination`'s sources at its last successful
    /// export, if one was recorded.
    pub fn source_fingerprint(&self, destination: &str) -> Result<Option<String>> {
        let conn = self.lock();
        ensure_table(&conn)?;
        conn.query_row(
            "SELECT fingerprint FROM source_fingerprints WHERE destination = ?1",
            params![destination],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_err("read a source fingerprint"))
    }

    /// Record the fingerprint `destination`'s sources had when an export
    /// that succeeded started.
    pub fn record_source_fingerprint(
        &self,
        destination: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let conn = self.lock();
        ensure_table(&conn)?;
        conn.execute(
            "INSERT INTO source_fingerprints (destination, fingerprint, recorded_at)
             VALUES (?1, ?2, ?3)
             ON CONFLICT (destination) DO UPDATE SET
                 fingerprint = excluded.fingerprint, recorded_at = excluded.recorded_at",
            params![destination, fingerprint, ts(now)],
        )
        .map_err(db_err("record a source fingerprint"))?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_fingerprint_per_destination() {
        let s = StateStore::open_in_memory().unwrap();
        assert_eq!(s.source_fingerprint("mkto").unwrap(), None);
        let now = Utc::now();
        s.record_source_fingerprint("mkto", "a", now).unwrap();
        s.record_source_fingerprint("mkto", "b", now).unwrap();
        s.record_source_fingerprint("other", "c", now).unwrap();
        assert_eq!(s.source_fingerprint("mkto").unwrap().as_deref(), Some("b"));
    }
}
