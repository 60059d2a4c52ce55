//! A lock per destination, shared by every audex process using the same
//! state store, so a scheduled run and a run by hand never drive the same
//! destination at once. Plus the record of scheduled runs that were skipped.
//!
//! The lock is a row (holder pid, host, heartbeat). A holder refreshes its
//! heartbeat while it works; a row whose process is gone (same host) or whose
//! heartbeat is older than the stale timeout (any host, e.g. another pod) is
//! taken over. Take-over happens inside an immediate transaction, so two
//! processes racing for a stale lock cannot both win.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use super::{db_err, StateStore};
use crate::error::{Error, ErrorClass, Result};

/// How long a heartbeat may be silent before its lock counts as abandoned.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(120);
/// How often a holder refreshes its heartbeat (well inside the timeout).
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(15);

const CREATE: &str = "
    CREATE TABLE IF NOT EXISTS destination_locks (
        destination  TEXT PRIMARY KEY,
        token        TEXT NOT NULL,
        pid          INTEGER NOT NULL,
        host         TEXT NOT NULL,
        purpose      TEXT NOT NULL,
        acquired_at  TEXT NOT NULL,
        heartbeat_at TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS schedule_skips (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        destination TEXT NOT NULL,
        due_at      TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        reason      TEXT NOT NULL
    );";

/// Who holds a destination's lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LockHolder {
    pub pid: u32,
    pub host: String,
    /// What the holder is doing, e.g. `audex schedule` or `audex run`.
    pub purpose: String,
    pub acquired_at: String,
    pub heartbeat_at: String,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (process {} on {}, since {}, last heartbeat {})",
            self.purpose, self.pid, self.host, self.acquired_at, self.heartbeat_at
        )
    }
}

/// Our hold on a destination's lock. Only the token's owner can refresh or
/// release it, so a process whose lock was taken over cannot release the
/// new holder's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockToken {
    destination: String,
    token: String,
}

impl LockToken {
    pub fn destination(&self) -> &str {
        &self.destination
    }
}

/// The result of trying to take a destination's lock.
#[derive(Debug, PartialEq, Eq)]
pub enum LockAttempt {
    /// The lock is ours; `replaced` is the stale holder we took over from.
    Acquired {
        token: LockToken,
        replaced: Option<LockHolder>,
    },
    /// A live holder has it.
    Held(LockHolder),
}

/// A skipped scheduled run, as recorded in the history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SkipRecord {
    pub id: i64,
    pub destination: String,
    /// The scheduled instant that was skipped.
    pub due_at: String,
    pub recorded_at: String,
    pub reason: String,
}

pub(super) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// This machine's name, to tell a dead local holder from a remote one.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_string())
}

fn new_token() -> String {
    use sha2::{Digest, Sha256};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = format!(
        "{}:{}:{:?}:{}",
        host_name(),
        std::process::id(),
        std::time::SystemTime::now(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    hex::encode(&Sha256::digest(seed.as_bytes())[..12])
}

pub(super) fn ensure_tables(conn: &Connection) -> Result<()> {
    conn.execute_batch(CREATE)
        .map_err(db_err("create the lock tables"))
}

pub(super) fn read_holder(
    conn: &Connection,
    destination: &str,
) -> Result<Option<(String, LockHolder)>> {
    conn.query_row(
        "SELECT token, pid, host, purpose, acquired_at, heartbeat_at
         FROM destination_locks WHERE destination = ?1",
        params![destination],
        |r| {
            Ok((
                r.get(0)?,
                LockHolder {
                    pid: u32::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                    host: r.get(2)?,
                    purpose: r.get(3)?,
                    acquired_at: r.get(4)?,
                    heartbeat_at: r.get(5)?,
                },
            ))
        },
    )
    .optional()
    .map_err(db_err("read a destination lock"))
}

/// Refuse unless `token` holds its destination's lock, saying who does.
pub(super) fn ensure_held(conn: &Connection, token: &LockToken) -> Result<()> {
    match read_holder(conn, &token.destination)? {
        Some((held, _)) if held == token.token => Ok(()),
        Some((_, holder)) => Err(Error::new(
            ErrorClass::Transient,
            format!(
                "another run of destination {} is in progress: {holder}",
                token.destination
            ),
        )
        .with_hint("wait for it to finish (`audex run --wait` waits), or stop it")),
        None => Err(Error::new(
            ErrorClass::Internal,
            format!(
                "the lock of destination {} is not held: take it before a run",
                token.destination
            ),
        )),
    }
}

/// Whether `holder` has given up its lock: its process is gone (when it ran
/// on this host) or it has not beaten its heart for `stale_after`.
pub(super) fn is_stale(
    holder: &LockHolder,
    now: DateTime<Utc>,
    stale_after: Duration,
    here: &str,
) -> bool {
    if holder.host == here && !process_alive(holder.pid) {
        return true;
    }
    let Ok(beat) = DateTime::parse_from_rfc3339(&holder.heartbeat_at) else {
        return true;
    };
    let silent = now.signed_duration_since(beat.with_timezone(&Utc));
    silent.to_std().is_ok_and(|s| s > stale_after)
}

impl StateStore {
    /// Try to take `destination`'s lock for this process at `now`. Never
    /// waits for a live holder: the caller decides to wait or refuse.
    pub fn try_lock_destination(
        &self,
        destination: &str,
        purpose: &str,
        now: DateTime<Utc>,
        stale_after: Duration,
    ) -> Result<LockAttempt> {
        let mut conn = self.lock();
        ensure_tables(&conn)?;
        let here = host_name();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err("begin taking a lock"))?;
        let current = read_holder(&tx, destination)?;
        let replaced = match current {
            Some((_, holder)) if !is_stale(&holder, now, stale_after, &here) => {
                return Ok(LockAttempt::Held(holder));
            }
            Some((_, holder)) => Some(holder),
            None => None,
        };
        let token = new_token();
        tx.execute(
            "INSERT INTO destination_locks
                 (destination, token, pid, host, purpose, acquired_at, heartbeat_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
             ON CONFLICT (destination) DO UPDATE SET
                 token = excluded.token, pid = excluded.pid, host = excluded.host,
                 purpose = excluded.purpose, acquired_at = excluded.acquired_at,
                 heartbeat_at = excluded.heartbeat_at",
            params![
                destination,
                token,
                i64::from(std::process::id()),
                here,
                purpose,
                ts(now)
            ],
        )
        .map_err(db_err("take a lock"))?;
        tx.commit().map_err(db_err("commit a lock"))?;
        Ok(LockAttempt::Acquired {
            token: LockToken {
                destination: destination.to_string(),
                token,
            },
            replaced,
        })
    }

    /// Refresh our heartbeat. `false` means the lock is no longer ours (it
    /// was taken over after we went silent): stop writing.
    pub fn heartbeat_lock(&self, token: &LockToken, now: DateTime<Utc>) -> Result<bool> {
        let conn = self.lock();
        ensure_tables(&conn)?;
        let n = conn
            .execute(
                "UPDATE destination_locks SET heartbeat_at = ?3
                 WHERE destination = ?1 AND token = ?2",
                params![token.destination, token.token, ts(now)],
            )
            .map_err(db_err("refresh a lock"))?;
        Ok(n == 1)
    }

    /// Release our lock; a lock taken over by someone else is left alone.
    pub fn unlock_destination(&self, token: &LockToken) -> Result<()> {
        let conn = self.lock();
        ensure_tables(&conn)?;
        conn.execute(
            "DELETE FROM destination_locks WHERE destination = ?1 AND token = ?2",
            params![token.destination, token.token],
        )
        .map_err(db_err("release a lock"))?;
        Ok(())
    }

    /// Who holds `destination`'s lock at `now`, if a live process does (a
    /// stale holder counts as none: the next taker replaces it).
    pub fn live_lock_holder(
        &self,
        destination: &str,
        now: DateTime<Utc>,
        stale_after: Duration,
    ) -> Result<Option<LockHolder>> {
        let conn = self.lock();
        ensure_tables(&conn)?;
        let here = host_name();
        Ok(read_holder(&conn, destination)?
            .map(|(_, h)| h)
            .filter(|h| !is_stale(h, now, stale_after, &here)))
    }

    /// Who holds `destination`'s lock, if anyone (stale or not).
    pub fn destination_lock(&self, destination: &str) -> Result<Option<LockHolder>> {
        let conn = self.lock();
        ensure_tables(&conn)?;
        Ok(read_holder(&conn, destination)?.map(|(_, h)| h))
    }

    /// Record that the scheduled run of `destination` due at `due` was
    /// skipped, and why.
    pub fn record_skip(
        &self,
        destination: &str,
        due: DateTime<Utc>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let conn = self.lock();
        ensure_tables(&conn)?;
        conn.execute(
            "INSERT INTO schedule_skips (destination, due_at, recorded_at, reason)
             VALUES (?1, ?2, ?3, ?4)",
            params![destination, ts(due), ts(now), reason],
        )
        .map_err(db_err("record a skipped run"))?;
        Ok(conn.last_insert_rowid())
    }

    /// The latest `limit` skipped runs, newest first, of one destination or
    /// of all.
    pub fn skips(&self, destination: Option<&str>, limit: usize) -> Result<Vec<SkipRecord>> {
        let conn = self.lock();
        ensure_tables(&conn)?;
        let mut stmt = conn
            .prepare(
                "SELECT id, destination, due_at, recorded_at, reason FROM schedule_skips
                 WHERE ?1 IS NULL OR destination = ?1 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(db_err("list skipped runs"))?;
        let rows = stmt
            .query_map(params![destination, limit as i64], |r| {
                Ok(SkipRecord {
                    id: r.get(0)?,
                    destination: r.get(1)?,
                    due_at: r.get(2)?,
                    recorded_at: r.get(3)?,
                    reason: r.get(4)?,
                })
            })
            .map_err(db_err("list skipped runs"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(db_err("list skipped runs"))
    }
}

/// Whether a process with this id is running (and not a zombie). Only Linux
/// can tell; elsewhere only the heartbeat decides.
pub(super) fn process_alive(pid: u32) -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the command name in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn acquired(a: LockAttempt) -> (LockToken, Option<LockHolder>) {
        match a {
            LockAttempt::Acquired { token, replaced } => (token, replaced),
            LockAttempt::Held(h) => panic!("held by {h}"),
        }
    }

    fn store() -> (tempfile::TempDir, StateStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("state.db")).unwrap();
        (dir, store)
    }

    #[test]
    fn a_live_holder_keeps_the_lock_until_it_releases() {
        let (_d, s) = store();
        let t0 = at("2026-01-01T00:00:00Z");
        let (token, replaced) = acquired(
            s.try_lock_destination("mkto", "audex schedule", t0, DEFAULT_STALE_AFTER)
                .unwrap(),
        );
        assert_eq!(replaced, None);
        match s
            .try_lock_destination("mkto", "audex run", t0, DEFAULT_STALE_AFTER)
            .unwrap()
        {
            LockAttempt::Held(h) => {
                assert_eq!(h.pid, std::process::id());
                assert_eq!(h.purpose, "audex schedule");
            }
            other => panic!("{other:?}"),
        }
        // Other destinations are independent.
        acquired(
            s.try_lock_destination("other", "audex run", t0, DEFAULT_STALE_AFTER)
                .unwrap(),
        );
        s.unlock_destination(&token).unwrap();
        assert_eq!(s.destination_lock("mkto").unwrap(), None);
        acquired(
            s.try_lock_destination("mkto", "audex run", t0, DEFAULT_STALE_AFTER)
                .unwrap(),
        );
    }

    #[test]
    fn a_silent_heartbeat_makes_the_lock_stale() {
        let (_d, s) = store();
        let t0 = at("2026-01-01T00:00:00Z");
        let stale = Duration::from_secs(120);
        let (old, _) = acquired(s.try_lock_destination("mkto", "a", t0, stale).unwrap());
        let t1 = t0 + chrono::Duration::seconds(100);
        assert!(s.heartbeat_lock(&old, t1).unwrap());
        // 119 s after the last beat: still held.
        let t2 = t1 + chrono::Duration::seconds(119);
        assert!(matches!(
            s.try_lock_destination("mkto", "b", t2, stale).unwrap(),
            LockAttempt::Held(_)
        ));
        // 121 s: taken over, and the old holder learns it lost the lock.
        let t3 = t1 + chrono::Duration::seconds(121);
        let (new, replaced) = acquired(s.try_lock_destination("mkto", "b", t3, stale).unwrap());
        assert_eq!(replaced.unwrap().purpose, "a");
        assert!(!s.heartbeat_lock(&old, t3).unwrap());
        // The old holder's release leaves the new holder's lock in place.
        s.unlock_destination(&old).unwrap();
        assert_eq!(s.destination_lock("mkto").unwrap().unwrap().purpose, "b");
        assert!(s.heartbeat_lock(&new, t3).unwrap());
    }

    #[test]
    fn a_dead_holder_on_this_host_is_taken_over_at_once() {
        let (_d, s) = store();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = child.id();
        child.wait().unwrap();
        let t0 = at("2026-01-01T00:00:00Z");
        {
            let conn = s.lock();
            ensure_tables(&conn).unwrap();
            conn.execute(
                "INSERT INTO destination_locks VALUES ('mkto', 'x', ?1, ?2, 'audex run', ?3, ?3)",
                params![i64::from(dead_pid), host_name(), ts(t0)],
            )
            .unwrap();
        }
        let (_, replaced) = acquired(
            s.try_lock_destination("mkto", "audex schedule", t0, DEFAULT_STALE_AFTER)
                .unwrap(),
        );
        assert_eq!(replaced.unwrap().pid, dead_pid);
    }

    #[test]
    fn a_holder_on_another_host_is_trusted_until_its_heartbeat_stops() {
        let (_d, s) = store();
        let t0 = at("2026-01-01T00:00:00Z");
        {
            let conn = s.lock();
            ensure_tables(&conn).unwrap();
            // pid 1 on another host: its liveness cannot be checked from here.
            conn.execute(
                "INSERT INTO destination_locks VALUES ('mkto', 'x', 999999, 'pod-7', 'audex schedule', ?1, ?1)",
                params![ts(t0)],
            )
            .unwrap();
        }
        let soon = t0 + chrono::Duration::seconds(60);
        match s
            .try_lock_destination("mkto", "audex run", soon, DEFAULT_STALE_AFTER)
            .unwrap()
        {
            LockAttempt::Held(h) => assert_eq!(h.host, "pod-7"),
            other => panic!("{other:?}"),
        }
        let late = t0 + chrono::Duration::seconds(600);
        acquired(
            s.try_lock_destination("mkto", "audex run", late, DEFAULT_STALE_AFTER)
                .unwrap(),
        );
    }

    #[test]
    fn skips_are_recorded_newest_first() {
        let (_d, s) = store();
        let t0 = at("2026-01-01T03:00:00Z");
        s.record_skip("a", t0, "the previous run is still going", t0)
            .unwrap();
        s.record_skip("b", t0, "held by audex run", t0).unwrap();
        let all = s.skips(None, 10).unwrap();
        assert_eq!(
            all.iter()
                .map(|k| k.destination.as_str())
                .collect::<Vec<_>>(),
            ["b", "a"]
        );
        let a = s.skips(Some("a"), 10).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].due_at, "2026-01-01T03:00:00.000Z");
    }
}
