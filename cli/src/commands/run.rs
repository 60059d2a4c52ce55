//! `audex run`: export now, with progress, a summary or the JSON report.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use audex_core::engine::{
    CancellationToken, RunEvent, RunObserver, RunOptions, RunReport, RunStatus,
};
use audex_core::schedule::RunEnd;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::export::{export, spawn_signal_handler, WhenLocked};
use crate::cli::{Output, RunArgs};
use crate::exit;

pub fn run(args: &RunArgs) -> i32 {
    let config = match super::load_config(&args.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let names: Vec<String> = match &args.destination {
        Some(d) if !config.destinations.contains_key(d) => {
            let known: Vec<&str> = config.destinations.keys().map(String::as_str).collect();
            eprintln!(
                "audex: no destination named `{d}` in {} (declared: {})",
                args.config.config.display(),
                known.join(", ")
            );
            return exit::CONFIG;
        }
        Some(d) => vec![d.clone()],
        None => config
            .destinations
            .iter()
            .filter(|(_, d)| {
                args.segment
                    .as_ref()
                    .is_none_or(|s| d.settings().exports.iter().any(|e| &e.segment == s))
            })
            .map(|(n, _)| n.clone())
            .collect(),
    };
    if names.is_empty() {
        match &args.segment {
            Some(s) => eprintln!("audex: no destination exports segment `{s}`"),
            None => eprintln!("audex: the config declares no destinations"),
        }
        return exit::CONFIG;
    }
    let store = match super::open_state(&config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let runtime = match super::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let cancel = CancellationToken::new();
    let progress = Arc::new(Progress::new(std::io::stderr().is_terminal()));
    let when_locked = if args.wait {
        WhenLocked::Wait
    } else {
        WhenLocked::Refuse
    };
    runtime.block_on(async {
        spawn_signal_handler(cancel.clone());
        let mut codes = Vec::new();
        for name in &names {
            if cancel.is_cancelled() {
                codes.push(exit::INTERRUPTED);
                break;
            }
            let options = RunOptions {
                dry_run: args.dry_run,
                full: args.full,
                reconcile: args.reconcile,
                segment: args.segment.clone(),
                allow_mass_removal: args.allow_mass_removal,
                cancel: cancel.clone(),
                observer: Some(progress.clone() as Arc<dyn RunObserver>),
                rejects_dir: None,
            };
            let end = export(&config, name, &store, options, "audex run", when_locked).await;
            progress.clear();
            match end {
                RunEnd::Ran(report) => {
                    match args.output {
                        Output::Json => match serde_json::to_string(&report) {
                            Ok(s) => println!("{s}"),
                            Err(e) => eprintln!("audex: cannot print the report: {e}"),
                        },
                        Output::Text => print_summary(&report),
                    }
                    codes.push(code_for(&report));
                }
                RunEnd::Locked(holder) => {
                    eprintln!("audex: destination {name} is locked by {holder}");
                    eprintln!(
                        "audex: not started; run again once it is done, or add --wait to wait for it"
                    );
                    codes.push(exit::LOCKED);
                }
                RunEnd::Cancelled => codes.push(exit::INTERRUPTED),
                RunEnd::NotStarted(e) => {
                    if e.is_config() {
                        super::print_config_errors(&args.config.config, &e);
                    } else {
                        eprintln!("audex: destination {name}: {e}");
                    }
                    codes.push(exit::for_error(&e));
                }
                RunEnd::Unchanged => codes.push(exit::OK),
            }
        }
        worst(&codes)
    })
}

/// The exit code of one report of `audex run` (docs/configuration.md: 0
/// done, 1 failed, 75 paused, 78 config; 130 when interrupted by a signal:
/// an export stopped half-way is not a success for a one-shot command).
pub fn code_for(report: &RunReport) -> i32 {
    match report.status {
        RunStatus::Succeeded | RunStatus::DryRun => exit::OK,
        RunStatus::Paused => exit::PAUSED,
        RunStatus::Interrupted => exit::INTERRUPTED,
        RunStatus::Failed | RunStatus::Running => match report.error_class() {
            Some(audex_core::ErrorClass::Config) => exit::CONFIG,
            _ => exit::FAILED,
        },
    }
}

/// Several destinations: the most serious outcome wins.
fn worst(codes: &[i32]) -> i32 {
    exit::worst(
        codes,
        &[exit::CONFIG, exit::FAILED, exit::INTERRUPTED, exit::PAUSED],
    )
}

fn print_summary(r: &RunReport) {
    print!("{}", table(segment_rows(&r.segments)));
    let what = if r.status == RunStatus::DryRun {
        "dry run (nothing sent; counts and calls are what a run would do)".to_string()
    } else {
        r.status.to_string()
    };
    println!(
        "run {} of {}: {what}, {} calls in {:.1} s",
        r.run_id,
        r.destination,
        r.calls_total,
        r.duration_ms as f64 / 1000.0
    );
    let truncated: u64 = r.segments.iter().map(|s| s.truncated_values).sum();
    if truncated > 0 {
        println!("{truncated} values were cut to their field's length");
    }
    if let Some(f) = &r.rejects_file {
        println!("rejected rows: {f}");
    }
    for s in &r.segments {
        let Some(m) = &s.mass_removal else { continue };
        let verdict = if m.allowed {
            "allowed by --allow-mass-removal"
        } else if r.status == RunStatus::DryRun {
            "a real run would stop here and send nothing (mirror guard)"
        } else {
            "stopped by the mirror guard: nothing sent"
        };
        println!("{}: {verdict}", m.message(&s.segment));
    }
    if let Some(e) = &r.error {
        println!("error ({}): {}", e.class, e.message);
    }
    match r.status {
        RunStatus::Paused => {
            println!("paused: the daily quota or call budget is spent; run again later to resume")
        }
        RunStatus::Interrupted => println!("interrupted: run again to resume"),
        _ => {}
    }
}

/// Left-aligned text columns, numbers right-aligned.
pub(crate) fn table(rows: Vec<Vec<String>>) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, s)| {
                if !s.is_empty() && s.chars().all(|ch| ch.is_ascii_digit()) {
                    format!("{s:>w$}", w = widths[c])
                } else {
                    format!("{s:<w$}", w = widths[c])
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Progress: a bar per segment on a terminal, plain lines otherwise.
pub(crate) struct Progress {
    tty: bool,
    multi: MultiProgress,
    bar: Mutex<Option<ProgressBar>>,
    calls: AtomicU64,
    last_line: Mutex<Instant>,
    started: Mutex<Instant>,
}

impl Progress {
    pub(crate) fn new(tty: bool) -> Self {
        Progress {
            tty,
            multi: MultiProgress::new(),
            bar: Mutex::new(None),
            calls: AtomicU64::new(0),
            last_line: Mutex::new(Instant::now()),
            started: Mutex::new(Instant::now()),
        }
    }

    pub(crate) fn clear(&self) {
        if let Some(b) = self.bar.lock().unwrap_or_else(|p| p.into_inner()).take() {
            b.finish_and_clear();
        }
    }
}

impl RunObserver for Progress {
    fn event(&self, event: &RunEvent<'_>) {
        let mut bar = self.bar.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            RunEvent::SegmentStarted { segment, list } => {
                self.calls.store(0, Ordering::Relaxed);
                *self.started.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
                if self.tty {
                    let b = self.multi.add(ProgressBar::new_spinner());
                    b.set_style(
                        ProgressStyle::with_template("{spinner} {prefix}: {pos} rows read {msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    b.set_prefix(format!("{segment} -> list {list}"));
                    b.enable_steady_tick(Duration::from_millis(120));
                    if let Some(old) = bar.replace(b) {
                        old.finish();
                    }
                } else {
                    eprintln!("audex: segment {segment} -> list {list}: reading");
                }
            }
            RunEvent::RowsRead { rows, .. } => {
                if let Some(b) = bar.as_ref() {
                    b.set_position(*rows);
                }
            }
            RunEvent::Planned {
                segment,
                upserts,
                adds,
                removes,
                unchanged,
                rejected,
                estimated_calls,
            } => {
                let plan = format!(
                    "{upserts} to upsert, {adds} to add, {removes} to remove, {unchanged} unchanged, {rejected} rejected; ~{estimated_calls} calls"
                );
                if let Some(b) = bar.as_ref() {
                    b.set_style(
                        ProgressStyle::with_template(
                            "{prefix}: [{bar:30}] {pos}/{len} calls ({per_sec}, {elapsed}) {msg}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    b.set_length(*estimated_calls);
                    b.set_position(0);
                    b.set_message(plan);
                } else {
                    eprintln!("audex: segment {segment}: {plan}");
                }
            }
            RunEvent::CallFinished { segment, .. } => {
                let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
                if let Some(b) = bar.as_ref() {
                    b.set_position(n);
                } else {
                    let mut last = self.last_line.lock().unwrap_or_else(|p| p.into_inner());
                    if last.elapsed() >= Duration::from_secs(10) {
                        *last = Instant::now();
                        let secs = self
                            .started
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .elapsed()
                            .as_secs_f64()
                            .max(0.001);
                        eprintln!(
                            "audex: segment {segment}: {n} calls ({:.1}/s)",
                            n as f64 / secs
                        );
                    }
                }
            }
            RunEvent::SegmentFinished { report } => {
                if let Some(b) = bar.take() {
                    b.finish_and_clear();
                }
                if !self.tty {
                    eprintln!(
                        "audex: segment {}: {} upserted, {} added, {} removed, {} rejected, {} failed, {} pending, {} calls",
                        report.segment,
                        report.upserted,
                        report.added,
                        report.removed,
                        report.rejected,
                        report.failed,
                        report.pending,
                        report.calls
                    );
                }
            }
            _ => {}
        }
    }
}

/// The per-segment table of a report, header first (shared with `audex runs show`).
pub(crate) fn segment_rows(segments: &[audex_core::engine::SegmentReport]) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = vec![[
        "segment",
        "list",
        "mode",
        "read",
        "rejected",
        "upserted",
        "unchanged",
        "failed",
        "pending",
        "added",
        "removed",
        "calls",
    ]
    .map(String::from)
    .to_vec()];
    for s in segments {
        rows.push(vec![
            s.segment.clone(),
            s.list_id.0.clone(),
            s.mode.to_string(),
            s.read.to_string(),
            s.rejected.to_string(),
            s.upserted.to_string(),
            s.unchanged.to_string(),
            s.failed.to_string(),
            s.pending.to_string(),
            s.added.to_string(),
            s.removed.to_string(),
            s.calls.to_string(),
        ]);
    }
    rows
}
