//! One run of one destination, from start to history.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use super::execute::{Executor, Stop};
use super::index::flag;
use super::lease::{self, LockRequest};
use super::plan::{plan_segment, PlanContext, SegmentPlan};
use super::rejects::RejectsFile;
use super::report::{MassRemoval, RunError, RunReport, RunStatus, SegmentReport};
use super::unreadable::UnreadableTally;
use super::{
    ensure_consent, RunEnd, RunEvent, RunOptions, Target, TargetExport, DEFAULT_CONCURRENCY,
};
use crate::error::{ConfigError, Error, ErrorClass, Result};
use crate::mapping::Mapper;
use crate::settings::Mode;
use crate::state::{FieldsHash, LockToken, NewRun, StateStore};

/// Run `target` under its destination's lock (refused while another live
/// process holds it) and record the run in the history. For library
/// callers; [`run_exclusive`] chooses how to meet a held lock.
///
/// `Err` only when the run could not start (consent not given, another run
/// of the destination in progress, the state store unusable). Everything
/// that happens once it started (a source error, a segment over
/// `max_profiles`, a spent quota) is in the report's status and error.
pub async fn run_target(
    target: &Target,
    store: &StateStore,
    options: &RunOptions,
) -> Result<RunReport> {
    match run_exclusive(target, store, options, &LockRequest::default()).await {
        RunEnd::Ran(report) => Ok(*report),
        RunEnd::Locked(holder) => Err(Error::new(
            ErrorClass::Transient,
            format!(
                "another run of destination {} is in progress: {holder}",
                target.name
            ),
        )
        .with_hint("wait for it to finish (`audex run --wait` waits), or stop it")),
        RunEnd::NotStarted(e) => Err(e),
        RunEnd::Unchanged | RunEnd::Cancelled => Err(Error::new(
            ErrorClass::Internal,
            format!("the run of destination {} did not start", target.name),
        )),
    }
}

/// Run `target` under its destination's lock: check consent, take the lock
/// as `lock` says, keep its heartbeat while the engine works, release it,
/// and record the run in the history. Cancelling `options.cancel` while
/// waiting for the lock ends [`RunEnd::Cancelled`]; while running, the
/// calls in flight finish and the run ends `interrupted`.
pub async fn run_exclusive(
    target: &Target,
    store: &StateStore,
    options: &RunOptions,
    lock: &LockRequest,
) -> RunEnd {
    if let Err(e) = ensure_consent(&target.name, &target.settings) {
        return RunEnd::NotStarted(e);
    }
    let observer = options.observer.as_deref();
    let token = match lease::take(store, &target.name, lock, &options.cancel, observer).await {
        Ok(lease::Taken::Ours(token)) => token,
        Ok(lease::Taken::Held(holder)) => return RunEnd::Locked(holder),
        Ok(lease::Taken::Cancelled) => return RunEnd::Cancelled,
        Err(e) => return RunEnd::NotStarted(e),
    };
    // A lock taken over while this process was silent is no longer ours:
    // stop writing, as after a signal.
    let lost = options.cancel.child_token();
    let held = RunOptions {
        cancel: lost.clone(),
        ..options.clone()
    };
    let result = lease::hold(store, &token, &lost, run_held(target, store, &held, &token)).await;
    lease::release(store, &token);
    match result {
        Ok(report) => RunEnd::Ran(Box::new(report)),
        Err(e) => RunEnd::NotStarted(e),
    }
}

/// The run itself, with the lock held.
async fn run_held(
    target: &Target,
    store: &StateStore,
    options: &RunOptions,
    lock: &LockToken,
) -> Result<RunReport> {
    let clock = Instant::now();
    let started_at = crate::state::now();
    let run_id = store.begin_run(&NewRun {
        lock,
        display_name: &target.settings.display_name,
        export_user: &target.settings.export_user.0,
        dry_run: options.dry_run,
        full: options.full,
        reconcile: options.reconcile,
    })?;
    tracing::info!(run_id, destination = %target.name, dry_run = options.dry_run, "run started");
    if let Some(o) = options.observer.as_deref() {
        o.event(&RunEvent::RunStarted {
            run_id,
            destination: &target.name,
        });
    }
    let rejects_dir = options.rejects_dir.clone().unwrap_or_else(|| {
        store
            .path()
            .and_then(|p| p.parent())
            .map(|d| d.join("rejects"))
            .unwrap_or_else(|| PathBuf::from(".audex/rejects"))
    });
    let mut rejects = RejectsFile::new(rejects_dir.join(format!("run-{run_id}.csv")));
    let mut report = RunReport {
        run_id,
        destination: target.name.clone(),
        status: RunStatus::Running,
        segments: target
            .exports
            .iter()
            .map(|e| SegmentReport::new(&e.spec.segment, &e.spec.target, e.spec.mode))
            .collect(),
        tables: Vec::new(),
        calls_total: 0,
        duration_ms: 0,
        rejects_file: None,
        started_at,
        finished_at: String::new(),
        error: None,
    };

    let mut unreadable = UnreadableTally::default();
    let ending = drive(
        target,
        store,
        options,
        &mut rejects,
        &mut unreadable,
        &mut report,
    )
    .await;
    report.tables = unreadable.tables();
    let (status, error) = match ending {
        Err(e) if e.is_quota_exhausted() => (RunStatus::Paused, Some(e)),
        Err(e) => (RunStatus::Failed, Some(e)),
        Ok(Ending {
            stop: Some(Stop::Paused(e)),
            ..
        }) => (RunStatus::Paused, Some(e)),
        Ok(Ending {
            stop: Some(Stop::Failed(e)),
            ..
        }) => (RunStatus::Failed, Some(e)),
        Ok(Ending {
            stop: Some(Stop::Interrupted),
            ..
        }) => (RunStatus::Interrupted, None),
        Ok(Ending {
            call_error: Some(e),
            ..
        }) => (RunStatus::Failed, Some(e)),
        Ok(_) if options.dry_run => (RunStatus::DryRun, None),
        Ok(_) => (RunStatus::Succeeded, None),
    };
    report.status = status;
    report.error = error.map(|e| RunError {
        class: e.class(),
        message: describe(&e),
    });
    match rejects.finish() {
        Ok(path) => report.rejects_file = path.map(|p| p.display().to_string()),
        Err(e) => {
            tracing::error!(error = %e, "the rejects file is incomplete");
            if report.error.is_none() {
                report.status = RunStatus::Failed;
                report.error = Some(RunError {
                    class: e.class(),
                    message: describe(&e),
                });
            }
        }
    }
    report.duration_ms = clock.elapsed().as_millis() as u64;
    report.finished_at = crate::state::now();
    if let Err(e) = store.finish_run(&report) {
        tracing::error!(run_id, error = %e, "cannot record the run's end in the history");
    }
    tracing::info!(run_id, status = %report.status, calls = report.calls_total,
        duration_ms = report.duration_ms, "run finished");
    Ok(report)
}

/// The message with its config errors and hint, on one line each.
fn describe(e: &Error) -> String {
    e.to_string()
}

struct Ending {
    stop: Option<Stop>,
    /// A call failed as a whole but the run went on.
    call_error: Option<Error>,
}

async fn drive(
    target: &Target,
    store: &StateStore,
    options: &RunOptions,
    rejects: &mut RejectsFile,
    unreadable: &mut UnreadableTally,
    report: &mut RunReport,
) -> Result<Ending> {
    let dest = &target.destination;
    let limits = dest.limits();
    let concurrency = limits.max_concurrency.unwrap_or(DEFAULT_CONCURRENCY).max(1);
    let observer = options.observer.as_deref();
    if options.reconcile && !dest.capabilities().can_read_members {
        return Err(Error::config(vec![ConfigError::new(
            format!("destinations.{}", target.name),
            "this destination cannot read its lists back, so --reconcile is not available",
        )]));
    }

    if options.cancel.is_cancelled() {
        return Ok(Ending {
            stop: Some(Stop::Interrupted),
            call_error: None,
        });
    }
    report.calls_total += 1;
    let fields = dest.fields().await?;

    // Keys held by the exports done so far, when more than one export shares
    // the destination (see `PlanContext::claimed`).
    let mut claimed: Option<HashMap<String, FieldsHash>> =
        (target.exports.len() > 1).then(HashMap::new);
    let mut call_error = None;
    for (n, export) in target.exports.iter().enumerate() {
        if options.cancel.is_cancelled() {
            return Ok(Ending {
                stop: Some(Stop::Interrupted),
                call_error,
            });
        }
        let segment = export.spec.segment.as_str();
        if let Some(o) = observer {
            o.event(&RunEvent::SegmentStarted {
                segment,
                target: &export.spec.target,
            });
        }
        let schema = export.source.schema(&export.query).await?;
        let mapper = Mapper::new(
            &target.settings.mapping,
            dest.lookup_field(),
            dest.key_rule(),
            &fields,
            &schema,
        )
        .map_err(|e| under_destination(e, &target.name))?;
        let cx = PlanContext {
            destination_name: &target.name,
            destination: dest.as_ref(),
            key_rule: mapper.key_rule().as_ref(),
            store,
            max_profiles: target.settings.max_profiles,
            full: options.full,
            reconcile: options.reconcile,
            cancel: &options.cancel,
            observer,
            claimed: claimed.as_ref(),
            dry_run: options.dry_run,
        };
        let planned = plan_segment(
            &cx,
            export,
            &mapper,
            mapper.lookup_column(),
            rejects,
            unreadable,
        )
        .await;
        let Some(mut plan) = planned? else {
            return Ok(Ending {
                stop: Some(Stop::Interrupted),
                call_error,
            });
        };
        let seg = &mut report.segments[n];
        seg.read = plan.read;
        seg.truncated_values = plan.truncated_values;
        seg.held = plan.held;
        seg.calls = plan.calls;
        let estimated = plan.estimated_calls(&limits);
        seg.notices = dest.notices(export.spec.list(), plan.new_records());
        for notice in &seg.notices {
            tracing::info!(segment, notice = notice.as_str(), "the destination says");
        }
        let to_add = plan.to_add_count();
        tracing::info!(
            segment,
            rows = plan.read,
            valid = plan.index.len(),
            upserts = plan.to_upsert.len(),
            adds = to_add,
            removes = plan.to_remove.len(),
            estimated_calls = estimated,
            "planned"
        );
        if let Some(o) = observer {
            o.event(&RunEvent::Planned {
                segment,
                upserts: plan.to_upsert.len() as u64,
                adds: to_add,
                removes: plan.to_remove.len() as u64,
                unchanged: (plan.index.len() - plan.to_upsert.len()) as u64 - plan.suppressed,
                rejected: plan.rejected + plan.suppressed,
                estimated_calls: estimated,
            });
        }

        if let Some(blocked) = mirror_guard(target, export, &plan, options, seg) {
            count_rows(&plan, seg);
            report.calls_total += seg.calls;
            if let Some(o) = observer {
                o.event(&RunEvent::SegmentFinished { report: seg });
            }
            return Ok(Ending {
                stop: Some(Stop::Failed(blocked)),
                call_error,
            });
        }

        let mut stop = None;
        if options.dry_run {
            seg.rejected = plan.rejected + plan.suppressed;
            seg.upserted = plan.to_upsert.len() as u64;
            seg.unchanged = (plan.index.len() - plan.to_upsert.len()) as u64 - plan.suppressed;
            seg.added = to_add;
            seg.removed = plan.to_remove.len() as u64;
            seg.calls += estimated;
        } else {
            if let Some(remote) = plan.remote_members.take() {
                store.replace_members(&target.name, &export.spec.list().0, &remote)?;
            }
            let mut exec = Executor {
                destination_name: &target.name,
                segment,
                list: export.spec.list(),
                destination: dest.clone(),
                store,
                limits: &limits,
                concurrency,
                cancel: &options.cancel,
                observer,
                rejects,
            };
            let out = exec.run(&mut plan).await;
            count_rows(&plan, seg);
            seg.added = out.added;
            seg.removed = out.removed;
            seg.calls += out.calls;
            stop = out.stop;
            if out.last_error.is_some() {
                call_error = out.last_error;
            }
        }
        debug_assert!(seg.adds_up(), "{seg:?}");
        if plan.conflicts > 0 {
            tracing::warn!(
                segment,
                records = plan.conflicts,
                "records share their lookup key with a record of an earlier segment of this run \
                 but differ in their fields; the earlier segment's fields were kept"
            );
        }
        // The last export's keys are claimed by nobody after it.
        let later_exports = n + 1 < target.exports.len();
        if let (Some(claimed), true) = (claimed.as_mut(), later_exports) {
            for i in 0..plan.index.len() as u32 {
                let e = plan.index.entry(i);
                if !e.has(flag::REJECTED) {
                    claimed
                        .entry(plan.index.key(i).to_string())
                        .or_insert(e.hash);
                }
            }
        }
        report.calls_total += seg.calls;
        if let Some(o) = observer {
            o.event(&RunEvent::SegmentFinished { report: seg });
        }
        if stop.is_some() {
            return Ok(Ending { stop, call_error });
        }
    }
    Ok(Ending {
        stop: None,
        call_error,
    })
}

/// The mirror guard's verdict on a planned export, recorded in its report.
/// `Some` with the error that stops the run when a real run must not send
/// it; a dry run only reports the verdict, and `--allow-mass-removal` lets
/// the export through with a warning.
fn mirror_guard(
    target: &Target,
    export: &TargetExport,
    plan: &SegmentPlan,
    options: &RunOptions,
    seg: &mut SegmentReport,
) -> Option<Error> {
    let guard = &target.settings.mirror_guard;
    let removals = plan.to_remove.len() as u64;
    if export.spec.mode != Mode::Mirror || !guard.trips(removals, plan.list_members) {
        return None;
    }
    let verdict = MassRemoval {
        removals,
        members: plan.list_members,
        max_removal_share: guard.max_removal_share,
        min_removals: guard.min_removals,
        allowed: options.allow_mass_removal,
    };
    let message = verdict.message(&export.spec.segment);
    seg.mass_removal = Some(verdict);
    let segment = export.spec.segment.as_str();
    if options.allow_mass_removal {
        tracing::warn!(
            segment,
            removals,
            "{message}; allowed by --allow-mass-removal"
        );
        return None;
    }
    if options.dry_run {
        tracing::warn!(
            segment,
            removals,
            "{message}; a real run would stop here and send nothing"
        );
        return None;
    }
    Some(
        Error::new(
            ErrorClass::Guard,
            format!("{message}; this export sent nothing"),
        )
        .with_hint(
            "check the source first (a truncated or broken file empties a segment); if the removals are right, \
             run again with --allow-mass-removal, or raise mirror_guard.max_removal_share",
        ),
    )
}

/// Put each row of an executed plan in exactly one bucket (see
/// [`super::report`]).
pub(crate) fn count_rows(plan: &SegmentPlan, seg: &mut SegmentReport) {
    seg.rejected = plan.rejected;
    seg.upserted = 0;
    seg.unchanged = 0;
    seg.failed = 0;
    seg.pending = 0;
    for e in plan.index.entries() {
        if e.has(flag::REJECTED) {
            seg.rejected += 1;
        } else if e.has(flag::FAILED) {
            seg.failed += 1;
        } else if (e.has(flag::NEEDS_UPSERT) && !e.has(flag::UPSERTED))
            || (e.has(flag::NEEDS_ADD) && !e.has(flag::ADDED))
        {
            seg.pending += 1;
        } else if e.has(flag::NEEDS_UPSERT) {
            seg.upserted += 1;
        } else {
            seg.unchanged += 1;
        }
    }
}

/// Mapping errors name paths relative to the destination's block.
fn under_destination(e: Error, name: &str) -> Error {
    if e.config_errors().is_empty() {
        return e;
    }
    let prefix = format!("destinations.{name}");
    Error::config(
        e.config_errors()
            .iter()
            .cloned()
            .map(|c| c.under(&prefix))
            .collect(),
    )
}
