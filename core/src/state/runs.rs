//! The run history: one row per run, one per exported segment.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use super::lock::{self, LockToken};
use super::{db_err, now, StateStore};
use crate::engine::report::{RunError, RunReport, RunStatus, SegmentReport, TableReport};
use crate::error::{ErrorClass, Result};
use crate::record::ListId;
use crate::settings::Mode;

/// A run about to start.
#[derive(Clone, Debug)]
pub struct NewRun<'a> {
    /// The destination's lock, held by the caller (the engine takes it
    /// before a run and releases it after).
    pub lock: &'a LockToken,
    pub display_name: &'a str,
    /// Who is responsible for the export (from the destination's config).
    pub export_user: &'a str,
    pub dry_run: bool,
    pub full: bool,
    pub reconcile: bool,
}

/// A run as the history holds it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub destination: String,
    pub display_name: String,
    pub export_user: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: RunStatus,
    pub dry_run: bool,
    pub full: bool,
    pub reconcile: bool,
    pub calls_total: u64,
    pub duration_ms: Option<u64>,
    pub error: Option<RunError>,
    pub rejects_file: Option<String>,
    pub segments: Vec<SegmentReport>,
    /// Source tables with rows that could not be read.
    pub tables: Vec<TableReport>,
}

impl StateStore {
    /// Record the start of a run and return its id.
    ///
    /// The destination's lock (see [`StateStore::try_lock_destination`]) is
    /// the one guard against two runs of a destination, and the run must
    /// hold it: `begin_run` refuses a token that no longer holds the lock
    /// (another process took it over). Holding the lock proves that no
    /// other run of the destination is going, so a run the history still
    /// shows as `running` was left by a process that died: it is marked
    /// `interrupted`.
    pub fn begin_run(&self, run: &NewRun<'_>) -> Result<i64> {
        let mut conn = self.lock();
        lock::ensure_tables(&conn)?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err("begin a run"))?;
        let destination = run.lock.destination();
        let me = std::process::id();
        lock::ensure_held(&tx, run.lock)?;
        tx.execute(
            "UPDATE runs SET status = 'interrupted', finished_at = COALESCE(finished_at, ?2),
                    error_class = 'internal',
                    error = 'the process ended before the run finished (killed or crashed)'
             WHERE destination = ?1 AND status = 'running'",
            params![destination, now()],
        )
        .map_err(db_err("close a stale run"))?;
        tx.execute(
            "INSERT INTO runs (destination, display_name, export_user, started_at, status,
                               dry_run, full, reconcile, pid)
             VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6, ?7, ?8)",
            params![
                destination,
                run.display_name,
                run.export_user,
                now(),
                run.dry_run,
                run.full,
                run.reconcile,
                i64::from(me),
            ],
        )
        .map_err(db_err("record a run"))?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(db_err("commit a run"))?;
        Ok(id)
    }

    /// The latest run of `destination` that was not a dry run.
    pub fn last_run(&self, destination: &str) -> Result<Option<RunRecord>> {
        let conn = self.lock();
        let id: Option<i64> = conn
            .query_row(
                "SELECT id FROM runs WHERE destination = ?1 AND dry_run = 0
                 ORDER BY id DESC LIMIT 1",
                params![destination],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_err("read the last run"))?;
        match id {
            Some(id) => read_run(&conn, id),
            None => Ok(None),
        }
    }

    /// Record how a run ended, with its per-segment counts.
    pub fn finish_run(&self, report: &RunReport) -> Result<()> {
        let mut conn = self.lock();
        let tx = conn
            .transaction()
            .map_err(db_err("begin finishing a run"))?;
        tx.execute(
            "UPDATE runs SET status = ?2, finished_at = ?3, calls_total = ?4, duration_ms = ?5,
                    error_class = ?6, error = ?7, rejects_file = ?8
             WHERE id = ?1",
            params![
                report.run_id,
                report.status.as_str(),
                report.finished_at,
                report.calls_total as i64,
                report.duration_ms as i64,
                report.error.as_ref().map(|e| e.class.to_string()),
                report.error.as_ref().map(|e| e.message.clone()),
                report.rejects_file,
            ],
        )
        .map_err(db_err("finish a run"))?;
        tx.execute(
            "DELETE FROM run_segments WHERE run_id = ?1",
            params![report.run_id],
        )
        .map_err(db_err("finish a run"))?;
        for (i, s) in report.segments.iter().enumerate() {
            tx.execute(
                "INSERT INTO run_segments (run_id, position, segment, list_id, mode, read, rejected,
                     upserted, added, removed, unchanged, failed, calls, truncated_values, pending,
                     held, target)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                         ?17)",
                params![
                    report.run_id,
                    i as i64,
                    s.segment,
                    s.list.0,
                    s.mode.to_string(),
                    s.read as i64,
                    s.rejected as i64,
                    s.upserted as i64,
                    s.added as i64,
                    s.removed as i64,
                    s.unchanged as i64,
                    s.failed as i64,
                    s.calls as i64,
                    s.truncated_values as i64,
                    s.pending as i64,
                    s.held as i64,
                    serde_json::Value::Object(s.target.clone()).to_string(),
                ],
            )
            .map_err(db_err("record a segment's counts"))?;
        }
        tx.execute(
            "DELETE FROM run_tables WHERE run_id = ?1",
            params![report.run_id],
        )
        .map_err(db_err("finish a run"))?;
        for t in &report.tables {
            tx.execute(
                "INSERT INTO run_tables (run_id, source, table_name, unreadable)
                 VALUES (?1, ?2, ?3, ?4)",
                params![report.run_id, t.source, t.table, t.unreadable as i64],
            )
            .map_err(db_err("record a table's unreadable rows"))?;
        }
        tx.commit().map_err(db_err("commit a finished run"))
    }

    /// The latest `limit` runs, newest first.
    pub fn runs(&self, limit: usize) -> Result<Vec<RunRecord>> {
        let conn = self.lock();
        let ids: Vec<i64> = {
            let mut stmt = conn
                .prepare("SELECT id FROM runs ORDER BY id DESC LIMIT ?1")
                .map_err(db_err("list runs"))?;
            let rows = stmt
                .query_map(params![limit as i64], |r| r.get(0))
                .map_err(db_err("list runs"))?;
            rows.collect::<rusqlite::Result<_>>()
                .map_err(db_err("list runs"))?
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(r) = read_run(&conn, id)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// One run, by id.
    pub fn run(&self, id: i64) -> Result<Option<RunRecord>> {
        read_run(&self.lock(), id)
    }
}

fn read_run(conn: &Connection, id: i64) -> Result<Option<RunRecord>> {
    let run = conn
        .query_row(
            "SELECT id, destination, display_name, export_user, started_at, finished_at, status,
                    dry_run, full, reconcile, calls_total, duration_ms, error_class, error,
                    rejects_file
             FROM runs WHERE id = ?1",
            params![id],
            |r| {
                let status: String = r.get(6)?;
                let error_class: Option<String> = r.get(12)?;
                let error: Option<String> = r.get(13)?;
                Ok(RunRecord {
                    id: r.get(0)?,
                    destination: r.get(1)?,
                    display_name: r.get(2)?,
                    export_user: r.get(3)?,
                    started_at: r.get(4)?,
                    finished_at: r.get(5)?,
                    status: RunStatus::parse(&status).unwrap_or(RunStatus::Failed),
                    dry_run: r.get(7)?,
                    full: r.get(8)?,
                    reconcile: r.get(9)?,
                    calls_total: r.get::<_, i64>(10)?.max(0) as u64,
                    duration_ms: r.get::<_, Option<i64>>(11)?.map(|d| d.max(0) as u64),
                    error: error.map(|message| RunError {
                        class: parse_class(error_class.as_deref()),
                        message,
                    }),
                    rejects_file: r.get(14)?,
                    segments: Vec::new(),
                    tables: Vec::new(),
                })
            },
        )
        .optional()
        .map_err(db_err("read a run"))?;
    let Some(mut run) = run else {
        return Ok(None);
    };
    let mut stmt = conn
        .prepare(
            "SELECT segment, list_id, mode, read, rejected, upserted, added, removed, unchanged,
                    failed, calls, truncated_values, pending, held, target
             FROM run_segments WHERE run_id = ?1 ORDER BY position",
        )
        .map_err(db_err("read a run's segments"))?;
    let rows = stmt
        .query_map(params![id], |r| {
            let n = |i: usize| r.get::<_, i64>(i).map(|v| v.max(0) as u64);
            let mode: String = r.get(2)?;
            let list = ListId(r.get(1)?);
            let target = stored_target(r.get::<_, Option<String>>(14)?.as_deref(), &list);
            let mode = if mode == "append" {
                Mode::Append
            } else {
                Mode::Mirror
            };
            Ok(SegmentReport {
                read: n(3)?,
                rejected: n(4)?,
                upserted: n(5)?,
                added: n(6)?,
                removed: n(7)?,
                unchanged: n(8)?,
                failed: n(9)?,
                calls: n(10)?,
                truncated_values: n(11)?,
                pending: n(12)?,
                held: n(13)?,
                ..SegmentReport::with_target(r.get::<_, String>(0)?, target, list, mode)
            })
        })
        .map_err(db_err("read a run's segments"))?;
    run.segments = rows
        .collect::<rusqlite::Result<_>>()
        .map_err(db_err("read a run's segments"))?;
    let mut stmt = conn
        .prepare(
            "SELECT source, table_name, unreadable FROM run_tables
             WHERE run_id = ?1 ORDER BY source, table_name",
        )
        .map_err(db_err("read a run's tables"))?;
    let rows = stmt
        .query_map(params![id], |r| {
            Ok(TableReport {
                source: r.get(0)?,
                table: r.get(1)?,
                unreadable: r.get::<_, i64>(2)?.max(0) as u64,
            })
        })
        .map_err(db_err("read a run's tables"))?;
    run.tables = rows
        .collect::<rusqlite::Result<_>>()
        .map_err(db_err("read a run's tables"))?;
    Ok(Some(run))
}

fn parse_class(s: Option<&str>) -> ErrorClass {
    match s {
        Some("config") => ErrorClass::Config,
        Some("auth") => ErrorClass::Auth,
        Some("rate_limited") => ErrorClass::RateLimited,
        Some("quota_exhausted") => ErrorClass::QuotaExhausted,
        Some("transient") => ErrorClass::Transient,
        Some("rejected") => ErrorClass::Rejected,
        _ => ErrorClass::Internal,
    }
}

/// A segment's target as recorded; runs recorded before targets were (or a
/// value that does not read back as an object) stand for `{"list_id": …}`,
/// the id a number when it is one.
fn stored_target(
    stored: Option<&str>,
    list: &ListId,
) -> serde_json::Map<String, serde_json::Value> {
    if let Some(serde_json::Value::Object(target)) =
        stored.and_then(|s| serde_json::from_str(s).ok())
    {
        return target;
    }
    let id = match list.0.parse::<u64>() {
        Ok(n) if n.to_string() == list.0 => serde_json::Value::from(n),
        _ => serde_json::Value::from(list.0.clone()),
    };
    serde_json::Map::from_iter([("list_id".to_string(), id)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_recorded_before_targets_reads_back_with_its_list_id() {
        let t = |stored: Option<&str>, list: &str| {
            serde_json::Value::Object(stored_target(stored, &ListId(list.into())))
        };
        assert_eq!(t(None, "1001"), serde_json::json!({"list_id": 1001}));
        assert_eq!(t(None, "0042"), serde_json::json!({"list_id": "0042"}));
        assert_eq!(t(Some("not json"), "7"), serde_json::json!({"list_id": 7}));
        assert_eq!(
            t(Some(r#"{"tag":"VIP"}"#), "tag:VIP"),
            serde_json::json!({"tag": "VIP"})
        );
    }
}
