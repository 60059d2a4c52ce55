//! What a run did, per segment and in total: the `run --output json` report
//! and the rows of the run history.
//!
//! # How the counts add up
//!
//! Every row the source returns for a segment (`read`) ends in exactly one of
//! five buckets, so `read = rejected + upserted + unchanged + failed +
//! pending`:
//!
//! - `rejected`: refused and not exported: by audex before sending (mapping or
//!   validation error, duplicate lookup key) or by the destination for that
//!   one record (e.g. an invalid value). Each is a line of the rejects file.
//! - `upserted`: the record was new or changed (or `--full`) and the
//!   destination confirmed it; it is a confirmed member of the list.
//! - `unchanged`: the record matched what was last sent, so it was not sent
//!   again; it is a confirmed member of the list.
//! - `failed`: a call for the row was made and did not succeed: it failed
//!   after retries, or the destination refused the row's list membership. A
//!   rerun retries it.
//! - `pending`: the row was not sent because the run stopped first (daily
//!   quota or call budget, interruption, a fatal error elsewhere). A rerun
//!   sends it; a paused run's `pending` is what the next run will do.
//!
//! Rows a source cannot read (bad encoding, a broken line, a value that
//! does not fit its column) are not rows of any segment: they are counted
//! per source table, as `unreadable` in the run's `tables`.
//!
//! `added` counts members added to the list in this run (a subset of
//! `upserted + unchanged`); `removed` counts members removed (leavers in
//! mirror mode, and strays with `--reconcile`). `calls` counts the requests
//! the engine made for the segment (a request the destination retried
//! internally counts once); `calls_total` adds the run's setup calls (the
//! destination's field description). A dry run fills the same fields with
//! what it would do and the calls it would spend.

use std::fmt;

use serde::Serialize;

use crate::error::ErrorClass;
use crate::record::ListId;
use crate::settings::ExportTarget;
use crate::settings::Mode;

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Still going, or the process died without finishing it (history only).
    Running,
    /// Every segment was exported; per-record rejections may exist.
    Succeeded,
    /// A fatal error, or a call failed as a whole; a rerun retries.
    Failed,
    /// The daily quota or call budget is spent; a rerun resumes.
    Paused,
    /// A dry run: counts and calls are what a run would do.
    DryRun,
    /// Stopped by a signal after finishing the calls in flight.
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Paused => "paused",
            RunStatus::DryRun => "dry_run",
            RunStatus::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        Some(match s {
            "running" => RunStatus::Running,
            "succeeded" => RunStatus::Succeeded,
            "failed" => RunStatus::Failed,
            "paused" => RunStatus::Paused,
            "dry_run" => RunStatus::DryRun,
            "interrupted" => RunStatus::Interrupted,
            _ => return None,
        })
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mirror export that would remove more of its list than its
/// `mirror_guard` allows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MassRemoval {
    /// Members the export would remove.
    pub removals: u64,
    /// Members the list held before the run (as audex knows them, or as
    /// read back with `--reconcile`).
    pub members: u64,
    pub max_removal_share: f64,
    pub min_removals: u64,
    /// `false`: nothing was sent (a dry run says a real run would stop);
    /// `true`: `--allow-mass-removal` let it through.
    pub allowed: bool,
}

impl MassRemoval {
    /// What to tell the user: how much would go and how to proceed.
    pub fn message(&self, segment: &str) -> String {
        let pct = |x: f64| format!("{:.0} %", x * 100.0);
        let share = if self.members == 0 {
            1.0
        } else {
            self.removals as f64 / self.members as f64
        };
        format!(
            "segment `{segment}` would remove {} of the list's {} members ({}), more than mirror_guard.max_removal_share ({})",
            self.removals,
            self.members,
            pct(share),
            pct(self.max_removal_share)
        )
    }
}

/// Counts of one export (segment -> target) within a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SegmentReport {
    pub segment: String,
    /// Where the export goes, as the destination names it:
    /// `{"list_id": 1001}` (Marketo), `{"tag": "VIP"}` (Mailchimp).
    pub target: serde_json::Map<String, serde_json::Value>,
    /// The target's `list_id`, when it has one (Marketo's reports have
    /// always carried it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list_id: Option<serde_json::Value>,
    /// The target's key in the state store (not in the JSON report).
    #[serde(skip)]
    pub list: ListId,
    pub mode: Mode,
    pub read: u64,
    pub rejected: u64,
    pub upserted: u64,
    pub added: u64,
    pub removed: u64,
    pub unchanged: u64,
    pub failed: u64,
    /// Rows not sent because the run stopped before them.
    pub pending: u64,
    pub calls: u64,
    /// Values cut to their destination field's length (the row was sent).
    pub truncated_values: u64,
    /// Mirror mode: members left in the list, though not among the rows read,
    /// because a row of theirs could not be read (see `RunReport::tables`).
    pub held: u64,
    /// Set when the export would remove more than its mirror guard allows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mass_removal: Option<MassRemoval>,
    /// What the destination says a person should know about this export
    /// (e.g. confirmation emails it sends). Not kept in the run history.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
}

impl SegmentReport {
    pub fn new(segment: impl Into<String>, target: &ExportTarget, mode: Mode) -> Self {
        SegmentReport::with_target(segment, target.label.clone(), target.list.clone(), mode)
    }

    /// A report of an export to `list`, labelled `target` (a run read back
    /// from the history has no [`ExportTarget`]).
    pub fn with_target(
        segment: impl Into<String>,
        target: serde_json::Map<String, serde_json::Value>,
        list: ListId,
        mode: Mode,
    ) -> Self {
        SegmentReport {
            segment: segment.into(),
            list_id: target.get("list_id").cloned(),
            target,
            list,
            mode,
            read: 0,
            rejected: 0,
            upserted: 0,
            added: 0,
            removed: 0,
            unchanged: 0,
            failed: 0,
            pending: 0,
            calls: 0,
            truncated_values: 0,
            held: 0,
            mass_removal: None,
            notices: Vec::new(),
        }
    }

    /// Whether `read = rejected + upserted + unchanged + failed + pending`
    /// holds.
    pub fn adds_up(&self) -> bool {
        self.read == self.rejected + self.upserted + self.unchanged + self.failed + self.pending
    }
}

/// The class and message of the error that ended a run. Never holds a
/// secret or an email address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RunError {
    pub class: ErrorClass,
    pub message: String,
}

/// A source table that had rows it could not read in a run. Such rows never
/// reach a segment (so no segment's `read` counts them); each is a line of
/// the rejects file with its file and line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TableReport {
    /// The source's name in the config.
    pub source: String,
    pub table: String,
    /// Distinct rows set aside (a table read by several segments counts
    /// each row once).
    pub unreadable: u64,
}

/// The outcome of one run of one destination.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunReport {
    pub run_id: i64,
    pub destination: String,
    pub status: RunStatus,
    pub segments: Vec<SegmentReport>,
    /// Tables with unreadable rows, by source and table name; none when
    /// every row could be read.
    pub tables: Vec<TableReport>,
    pub calls_total: u64,
    pub duration_ms: u64,
    /// The CSV file holding every rejected row, when there was one.
    pub rejects_file: Option<String>,
    pub started_at: String,
    pub finished_at: String,
    pub error: Option<RunError>,
}

impl RunReport {
    pub fn error_class(&self) -> Option<ErrorClass> {
        self.error.as_ref().map(|e| e.class)
    }
}
