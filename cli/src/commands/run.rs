//! `audex run`: export now, with progress, a summary or the JSON report.

use std::io::IsTerminal;
use std::sync::Arc;

use audex_core::engine::{
    run_destination, CancellationToken, LockRequest, RunEnd, RunObserver, RunOptions, RunReport,
    RunStatus, WhenLocked,
};

use super::signals::spawn_signal_handler;
use crate::cli::{Output, RunArgs};
use crate::display::{print_summary, Progress};
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
                    .is_none_or(|s| d.exports().iter().any(|e| &e.segment == s))
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
            let lock = LockRequest::new("audex run", when_locked);
            let end = run_destination(&config, name, &store, &options, &lock).await;
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
