//! `audex runs`: the run history from the state store.

use audex_core::state::{RunRecord, StateStore};

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
        None => match store.runs(args.limit) {
            Ok(runs) => {
                match args.output {
                    Output::Json => print_json(&runs),
                    Output::Text if runs.is_empty() => println!("no runs yet"),
                    Output::Text => print_list(&runs),
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

fn print_list(runs: &[RunRecord]) {
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
    for r in runs {
        let read: u64 = r.segments.iter().map(|s| s.read).sum();
        let sent: u64 = r.segments.iter().map(|s| s.upserted).sum();
        let mut error = r
            .error
            .as_ref()
            .map(|e| e.message.clone())
            .unwrap_or_default();
        if error.chars().count() > 60 {
            error = error.chars().take(57).collect::<String>() + "...";
        }
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
    print!("{}", super::run::table(rows));
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
    if let Some(e) = &r.error {
        println!("error        ({}) {}", e.class, e.message);
    }
    if !r.segments.is_empty() {
        println!();
        print!("{}", super::run::table(super::run::segment_rows(&r.segments)));
    }
}
