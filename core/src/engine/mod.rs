//! The run engine: plan (read the segment, map, dedupe, diff against the
//! state store), execute (batches through the destination under its limits),
//! checkpoint each completed batch, report.
//!
//! The surface is small: build a [`Target`] (from a [`Config`], or from parts
//! when the caller keeps its destinations alive between runs, as a scheduler
//! does), then [`run_target`] it with [`RunOptions`]; or do both with
//! [`run_destination`]. Progress goes to an optional [`RunObserver`];
//! cancelling [`RunOptions::cancel`] stops scheduling new calls, lets those in
//! flight finish and checkpoint, and ends the run as `interrupted`.
//!
//! # Crash safety
//!
//! The state store records only what the destination confirmed, one
//! transaction per completed call. A process killed at any point leaves the
//! store describing a subset of the list; the next run recomputes the diff
//! from the segment and the store, so it sends what is missing and adds
//! nothing twice (upserts are keyed by the lookup field, list adds and
//! removes are idempotent).

mod execute;
mod index;
mod lease;
mod plan;
mod rejects;
pub mod report;
mod run;
mod unreadable;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

pub use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::destination::Destination;
use crate::error::{ConfigError, Error, Result};
use crate::registry::BuildContext;
use crate::settings::{ExportSettings, ExportSpec};
use crate::source::{SegmentQuery, SegmentSource};
use crate::state::{LockHolder, StateStore};

pub use lease::{LockRequest, WhenLocked};
pub use rejects::{DUPLICATE_KEY, REJECTS_HEADER};
pub use report::{MassRemoval, RunError, RunReport, RunStatus, SegmentReport, TableReport};
pub use run::{run_exclusive, run_target};

/// Concurrency when a destination declares no cap.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// How to run.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Plan and count, send nothing that writes, change no member state.
    pub dry_run: bool,
    /// Ignore the stored hashes and membership: upsert and add every row.
    pub full: bool,
    /// Read each list's real members and diff against them (mirror mode
    /// removes strays); needs a destination that can read members.
    pub reconcile: bool,
    /// Only this segment's export(s).
    pub segment: Option<String>,
    /// Let a mirror export remove more of its list than its
    /// `mirror_guard` allows (this run only).
    pub allow_mass_removal: bool,
    /// Cancel to stop after the calls in flight (status `interrupted`).
    pub cancel: CancellationToken,
    pub observer: Option<Arc<dyn RunObserver>>,
    /// Where `run-<id>.csv` rejects files go; default `rejects/` beside the
    /// state store (`.audex/rejects`).
    pub rejects_dir: Option<PathBuf>,
}

impl fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunOptions")
            .field("dry_run", &self.dry_run)
            .field("full", &self.full)
            .field("reconcile", &self.reconcile)
            .field("segment", &self.segment)
            .field("allow_mass_removal", &self.allow_mass_removal)
            .field("rejects_dir", &self.rejects_dir)
            .finish_non_exhaustive()
    }
}

/// The kind of a destination call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallKind {
    Upsert,
    Add,
    Remove,
}

impl CallKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CallKind::Upsert => "upsert",
            CallKind::Add => "add",
            CallKind::Remove => "remove",
        }
    }
}

/// What a run is doing, for progress displays. No customer data.
#[derive(Debug)]
#[non_exhaustive]
pub enum RunEvent<'a> {
    RunStarted {
        run_id: i64,
        destination: &'a str,
    },
    SegmentStarted {
        segment: &'a str,
        target: &'a crate::settings::ExportTarget,
    },
    /// Rows read so far from the segment's source.
    RowsRead {
        segment: &'a str,
        rows: u64,
    },
    /// The plan of a segment: what will be sent.
    Planned {
        segment: &'a str,
        upserts: u64,
        adds: u64,
        removes: u64,
        unchanged: u64,
        rejected: u64,
        estimated_calls: u64,
    },
    CallFinished {
        segment: &'a str,
        kind: CallKind,
        records: usize,
        ok: bool,
    },
    SegmentFinished {
        report: &'a SegmentReport,
    },
    /// `WhenLocked::Wait`: another live process runs the destination.
    WaitingForLock {
        destination: &'a str,
        holder: &'a LockHolder,
    },
    /// The lock was left by a process that is gone or silent; it is ours now.
    LockTakenOver {
        destination: &'a str,
        holder: &'a LockHolder,
    },
}

/// How a run under the destination's lock ended.
#[derive(Debug)]
pub enum RunEnd {
    /// The run happened (whatever its status).
    Ran(Box<RunReport>),
    /// Another live process holds the destination's lock: not started.
    Locked(LockHolder),
    /// `run_on: source_change` and the sources have not changed since the
    /// last export: nothing to do.
    Unchanged,
    /// The run could not start (config, consent, state store).
    NotStarted(Error),
    /// Cancelled before the run started (while waiting for the lock).
    Cancelled,
}

/// Receives [`RunEvent`]s. Called from the run's task: keep it quick.
pub trait RunObserver: Send + Sync {
    fn event(&self, event: &RunEvent<'_>);
}

/// One export of a target: the segment's source and query, and where it goes.
#[derive(Clone)]
pub struct TargetExport {
    pub spec: ExportSpec,
    /// The source's name in the config.
    pub source_name: String,
    pub source: Arc<dyn SegmentSource>,
    pub query: SegmentQuery,
}

impl fmt::Debug for TargetExport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetExport")
            .field("spec", &self.spec)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// A destination with everything a run of it needs, built.
#[derive(Clone, Debug)]
pub struct Target {
    /// The destination's name in the config.
    pub name: String,
    pub settings: ExportSettings,
    pub destination: Arc<dyn Destination>,
    pub exports: Vec<TargetExport>,
}

impl Target {
    /// Build the destination `name` of `config` and the sources of its
    /// exports (only `segment`'s, when given).
    pub fn from_config(config: &Config, name: &str, segment: Option<&str>) -> Result<Target> {
        let dest = destination_config(config, name)?;
        let ctx = BuildContext {
            base_dir: config.base_dir.clone(),
        };
        let destination = dest.build(&ctx)?;
        Target::assemble(config, name, dest, destination, segment)
    }

    /// Like [`Target::from_config`], with a destination the caller built
    /// (and keeps, so its rate limits span runs).
    pub fn with_destination(
        config: &Config,
        name: &str,
        destination: Arc<dyn Destination>,
        segment: Option<&str>,
    ) -> Result<Target> {
        let dest = destination_config(config, name)?;
        Target::assemble(config, name, dest, destination, segment)
    }

    fn assemble(
        config: &Config,
        name: &str,
        dest: &dyn crate::registry::DestinationConfig,
        destination: Arc<dyn Destination>,
        segment: Option<&str>,
    ) -> Result<Target> {
        let settings = dest.settings().clone();
        let ctx = BuildContext {
            base_dir: config.base_dir.clone(),
        };
        let all = dest.exports();
        let specs: Vec<ExportSpec> = all
            .iter()
            .filter(|e| segment.is_none_or(|s| s == e.segment))
            .cloned()
            .collect();
        if let Some(s) = segment {
            if specs.is_empty() {
                let known: Vec<&str> = all.iter().map(|e| e.segment.as_str()).collect();
                return Err(Error::config(vec![ConfigError::new(
                    format!("destinations.{name}.exports"),
                    format!("destination `{name}` has no export of segment `{s}`"),
                )
                .with_hint(format!("it exports: {}", known.join(", ")))]));
            }
        }
        let mut sources: BTreeMap<String, Arc<dyn SegmentSource>> = BTreeMap::new();
        let mut exports = Vec::with_capacity(specs.len());
        for spec in specs {
            let seg = config.segments.get(&spec.segment).ok_or_else(|| {
                Error::config(vec![ConfigError::new(
                    format!("destinations.{name}.exports"),
                    format!("segment `{}` is not declared under segments", spec.segment),
                )])
            })?;
            let source = match sources.get(&seg.source) {
                Some(s) => Arc::clone(s),
                None => {
                    let cfg = config.sources.get(&seg.source).ok_or_else(|| {
                        Error::config(vec![ConfigError::new(
                            format!("segments.{}.source", spec.segment),
                            format!("source `{}` is not declared under sources", seg.source),
                        )])
                    })?;
                    let built = cfg.build(&ctx)?;
                    sources.insert(seg.source.clone(), Arc::clone(&built));
                    built
                }
            };
            exports.push(TargetExport {
                spec,
                source_name: seg.source.clone(),
                source,
                query: seg.query.clone(),
            });
        }
        Ok(Target {
            name: name.to_string(),
            settings,
            destination,
            exports,
        })
    }
}

fn destination_config<'c>(
    config: &'c Config,
    name: &str,
) -> Result<&'c dyn crate::registry::DestinationConfig> {
    config
        .destinations
        .get(name)
        .map(|d| d.as_ref())
        .ok_or_else(|| {
            let known: Vec<&str> = config.destinations.keys().map(String::as_str).collect();
            Error::config(vec![ConfigError::new(
                "destinations",
                format!("no destination named `{name}`"),
            )
            .with_hint(if known.is_empty() {
                "the config declares no destinations".to_string()
            } else {
                format!("declared: {}", known.join(", "))
            })])
        })
}

/// Refuse a destination whose data-privacy consent is not given. The config
/// loader reports it too; the engine checks again so no caller can skip it.
pub fn ensure_consent(name: &str, settings: &ExportSettings) -> Result<()> {
    if settings.data_privacy_consent {
        return Ok(());
    }
    Err(Error::config(vec![ConfigError::new(
        format!("destinations.{name}.data_privacy_consent"),
        "data privacy consent is not given: exported profiles leave your compliance boundary",
    )
    .with_hint("set data_privacy_consent: true once you agree")]))
}

/// Build the destination `name` from `config` and run it under its lock,
/// as `lock` says. The one path from a destination's name to a finished
/// run, for `audex run` and library callers alike.
pub async fn run_destination(
    config: &Config,
    name: &str,
    store: &StateStore,
    options: &RunOptions,
    lock: &LockRequest,
) -> RunEnd {
    match Target::from_config(config, name, options.segment.as_deref()) {
        Ok(target) => run_exclusive(&target, store, options, lock).await,
        Err(e) => RunEnd::NotStarted(e),
    }
}

#[cfg(test)]
mod tests;
