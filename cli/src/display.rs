//! How a run looks to a person: progress while it runs (a bar per segment
//! on a terminal, plain lines otherwise) and the summary after it. Shared
//! by `audex run`, `audex schedule` and `audex runs show`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use audex_core::engine::{RunEvent, RunObserver, RunReport, RunStatus};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// The report of a run as a table and a few lines, on stdout.
pub(crate) fn print_summary(r: &RunReport) {
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
    for line in unreadable_lines(&r.tables, &r.segments) {
        println!("{line}");
    }
    for s in &r.segments {
        for notice in &s.notices {
            println!("segment {}: {notice}", s.segment);
        }
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

/// What the sources could not read, and the members a mirror export kept
/// because of it: one line each.
pub(crate) fn unreadable_lines(
    tables: &[audex_core::engine::TableReport],
    segments: &[audex_core::engine::SegmentReport],
) -> Vec<String> {
    let rows = |n: u64| {
        if n == 1 {
            "1 row".to_string()
        } else {
            format!("{n} rows")
        }
    };
    let mut out: Vec<String> = tables
        .iter()
        .map(|t| {
            format!(
                "table {} of source {}: {} could not be read (set aside, see the rejects file)",
                t.table,
                t.source,
                rows(t.unreadable)
            )
        })
        .collect();
    out.extend(segments.iter().filter(|s| s.held > 0).map(|s| {
        format!(
            "segment {}: {} kept in the list because their row could not be read",
            s.segment,
            if s.held == 1 {
                "1 member".to_string()
            } else {
                format!("{} members", s.held)
            }
        )
    }));
    out
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
            RunEvent::SegmentStarted { segment, target } => {
                self.calls.store(0, Ordering::Relaxed);
                *self.started.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
                if self.tty {
                    let b = self.multi.add(ProgressBar::new_spinner());
                    b.set_style(
                        ProgressStyle::with_template("{spinner} {prefix}: {pos} rows read {msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    b.set_prefix(format!("{segment} -> {target}"));
                    b.enable_steady_tick(Duration::from_millis(120));
                    if let Some(old) = bar.replace(b) {
                        old.finish();
                    }
                } else {
                    eprintln!("audex: segment {segment} -> {target}: reading");
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
            RunEvent::WaitingForLock {
                destination,
                holder,
            } => eprintln!("audex: destination {destination} is locked by {holder}; waiting for it"),
            RunEvent::LockTakenOver {
                destination,
                holder,
            } => eprintln!(
                "audex: destination {destination}: took over the lock left by {holder}: that process is gone or silent"
            ),
            _ => {}
        }
    }
}

/// The per-segment table of a report, header first (shared with `audex runs show`).
pub(crate) fn segment_rows(segments: &[audex_core::engine::SegmentReport]) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = vec![[
        "segment",
        "target",
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
            target_text(&s.target),
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

/// An export's target for a table cell: its fields as `name=value`
/// (`list_id=1001`, `tag=VIP customers`).
pub(crate) fn target_text(target: &serde_json::Map<String, serde_json::Value>) -> String {
    target
        .iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}
