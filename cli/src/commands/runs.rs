//! `audex runs`: the run history from the state store.

use audex_core::state::{RunRecord, SkipRecord, StateStore};
use serde::Serialize;

use crate::cli::{Output, RunsArgs, RunsCommand};
use crate::exit;

pub fn run(args: &RunsArgs) -> i32 {
    let config = match super::load_config(&args.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if !config.state_path.exists() {
        return match (&args.show, args.output) {
            (Some(RunsCommand::Show { id }), _) => {
                eprintln!("audex: no run with id {id} (no state store yet)");
                exit::FAILED
            }
            (None, Output::Json) => {
                println!("[]");
                exit::OK
            }
            (None, Output::Text) => {
                println!("no runs yet");
                exit::OK
            }
        };
    }
    let store = match StateStore::open(&config.state_path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("audex: {e}");
            return exit::FAILED;
        }
    };
    match &args.show {
        Some(RunsCommand::Show { id }) => match store.run(*id) {
            Ok(Some(run)) => {
                match args.output {
                    Output::Json => print_json(&run),
                    Output::Text => print_run(&run),
                }
                exit::OK
            }
            Ok(None) => {
                eprintln!("audex: no run with id {id}");
                exit::FAILED
            }
            Err(e) => {
                eprintln!("audex: {e}");
                exit::FAILED
            }
        },
        None => match history(&store, args.limit) {
            Ok(entries) => {
                match args.output {
                    Output::Json => print_json(&entries),
                    Output::Text if entries.is_empty() => println!("no runs yet"),
                    Output::Text => print_list(&entries),
                }
                exit::OK
            }
            Err(e) => {
                eprintln!("audex: {e}");
                exit::FAILED
            }
        },
    }
}

fn print_json<T: serde::Serialize>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("audex: cannot print: {e}"),
    }
}

fn secs(ms: Option<u64>) -> String {
    ms.map(|ms| format!("{:.1}s", ms as f64 / 1000.0))
        .unwrap_or_default()
}

/// One line of the history: a run, or a scheduled run that was skipped
/// (its tick came while the destination was still running). In JSON a run
/// is the run record with `"kind": "run"`; a skip is `{"kind": "skip",
/// "status": "skipped", "skip_id", "destination", "due_at", "recorded_at",
/// "reason"}`.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Entry {
    Run(RunRecord),
    Skip(Skipped),
}

#[derive(Serialize)]
struct Skipped {
    status: &'static str,
    skip_id: i64,
    destination: String,
    due_at: String,
    recorded_at: String,
    reason: String,
}

impl Entry {
    /// When it happened, as stored (RFC 3339 UTC, so text order is time order).
    fn at(&self) -> &str {
        match self {
            Entry::Run(r) => &r.started_at,
            Entry::Skip(s) => &s.recorded_at,
        }
    }
}

/// The latest `limit` runs and skips, newest first.
fn history(store: &StateStore, limit: usize) -> audex_core::Result<Vec<Entry>> {
    let runs = store.runs(limit)?;
    let skips = store.skips(None, limit)?;
    let mut entries: Vec<Entry> = runs
        .into_iter()
        .map(Entry::Run)
        .chain(skips.into_iter().map(|s: SkipRecord| {
            Entry::Skip(Skipped {
                status: "skipped",
                skip_id: s.id,
                destination: s.destination,
                due_at: s.due_at,
                recorded_at: s.recorded_at,
                reason: s.reason,
            })
        }))
        .collect();
    // Stable: a run and a skip recorded in the same millisecond keep the
    // run first.
    entries.sort_by(|a, b| b.at().cmp(a.at()));
    entries.truncate(limit);
    Ok(entries)
}

fn print_list(entries: &[Entry]) {
    let mut rows = vec![[
        "id",
        "started",
        "destination",
        "user",
        "status",
        "segments",
        "read",
        "sent",
        "calls",
        "duration",
        "error",
    ]
    .map(String::from)
    .to_vec()];
    for entry in entries {
        let r = match entry {
            Entry::Run(r) => r,
            Entry::Skip(s) => {
                // The scheduled time that was skipped, and why.
                rows.push(vec![
                    "-".to_string(),
                    s.due_at.clone(),
                    s.destination.clone(),
                    String::new(),
                    s.status.to_string(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    shorten(&s.reason),
                ]);
                continue;
            }
        };
        let read: u64 = r.segments.iter().map(|s| s.read).sum();
        let sent: u64 = r.segments.iter().map(|s| s.upserted).sum();
        let error = r
            .error
            .as_ref()
            .map(|e| shorten(&e.message))
            .unwrap_or_default();
        rows.push(vec![
            r.id.to_string(),
            r.started_at.clone(),
            r.destination.clone(),
            r.export_user.clone(),
            r.status.to_string(),
            r.segments.len().to_string(),
            read.to_string(),
            sent.to_string(),
            r.calls_total.to_string(),
            secs(r.duration_ms),
            error,
        ]);
    }
    print!("{}", crate::display::table(rows));
}

fn shorten(text: &str) -> String {
    if text.chars().count() > 60 {
        text.chars().take(57).collect::<String>() + "..."
    } else {
        text.to_string()
    }
}

fn print_run(r: &RunRecord) {
    println!("run          {}", r.id);
    println!("destination  {} ({})", r.destination, r.display_name);
    println!("export user  {}", r.export_user);
    println!("status       {}", r.status);
    println!("started      {}", r.started_at);
    println!("finished     {}", r.finished_at.as_deref().unwrap_or("-"));
    println!("duration     {}", secs(r.duration_ms));
    let mut flags = Vec::new();
    for (on, name) in [
        (r.dry_run, "dry-run"),
        (r.full, "full"),
        (r.reconcile, "reconcile"),
    ] {
        if on {
            flags.push(name);
        }
    }
    if !flags.is_empty() {
        println!("options      {}", flags.join(", "));
    }
    println!("calls        {}", r.calls_total);
    if let Some(f) = &r.rejects_file {
        println!("rejects      {f}");
    }
    for line in crate::display::unreadable_lines(&r.tables, &r.segments) {
        println!("unreadable   {line}");
    }
    if let Some(e) = &r.error {
        println!("error        ({}) {}", e.class, e.message);
    }
    if !r.segments.is_empty() {
        println!();
        print!(
            "{}",
            crate::display::table(crate::display::segment_rows(&r.segments))
        );
    }
}
