//! `audex schedule`: run each destination's exports on its cron schedule
//! until stopped, or (`--once`) run what is due now and exit. The loop and
//! its decisions are audex-core's `Scheduler`, its runs audex-core's
//! `ConfigRunner` (the engine under the destination's lock, as for
//! `audex run`); this verb prints the plan and the log lines.

use std::sync::Arc;

use audex_core::config::Config;
use audex_core::engine::{CancellationToken, RunStatus};
use audex_core::schedule::{
    ConfigRunner, RunEnd, Schedule, ScheduleEvent, ScheduleObserver, Scheduler, SystemClock,
    Trigger,
};
use chrono::{DateTime, SecondsFormat, Utc};

use super::signals::spawn_signal_handler;
use crate::cli::ScheduleArgs;
use crate::display::Progress;
use crate::exit;

/// How the scheduler's runs name themselves in the destination lock.
const PURPOSE: &str = "audex schedule";

pub fn run(args: &ScheduleArgs) -> i32 {
    let config = match super::load_config(&args.config) {
        Ok(c) => Arc::new(c),
        Err(code) => return code,
    };
    let (jobs, unscheduled) = match schedules(&config) {
        Ok(j) => j,
        Err(code) => return code,
    };
    if jobs.is_empty() {
        eprintln!(
            "audex: no destination in {} has a `schedule`",
            args.config.config.display()
        );
        eprintln!("audex: add one (e.g. schedule: \"0 3 * * *\"), or export now with `audex run`");
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
    runtime.block_on(async {
        let stop = CancellationToken::new();
        spawn_signal_handler(stop.clone());
        let runner = Arc::new(
            ConfigRunner::new(Arc::clone(&config), Arc::clone(&store), PURPOSE)
                .with_observer(Arc::new(Progress::new(false))),
        );
        let scheduler = match Scheduler::from_history(
            jobs,
            Arc::new(SystemClock),
            Arc::clone(&store),
            runner,
        ) {
            Ok(s) => s.with_observer(Arc::new(Log)),
            Err(e) => {
                eprintln!("audex: {e}");
                return exit::FAILED;
            }
        };
        if args.once {
            match scheduler.run_once(stop).await {
                Ok(runs) => {
                    let codes: Vec<i32> = runs.iter().map(|r| once_code(&r.end)).collect();
                    exit::worst(&codes, &[exit::CONFIG, exit::FAILED, exit::PAUSED])
                }
                Err(e) => {
                    eprintln!("audex: {e}");
                    exit::FAILED
                }
            }
        } else {
            print_plan(&scheduler, &unscheduled, &config);
            scheduler.serve(stop).await;
            println!("{} audex schedule: stopped", stamp(Utc::now()));
            exit::OK
        }
    })
}

/// Each scheduled destination with its parsed schedule, and the names of
/// the others. The config loader validated the expressions; a failure here
/// is reported like any config error.
type Jobs = (Vec<(String, Schedule)>, Vec<String>);

fn schedules(config: &Config) -> Result<Jobs, i32> {
    let mut jobs = Vec::new();
    let mut unscheduled = Vec::new();
    for (name, dest) in &config.destinations {
        let settings = dest.settings();
        let Some(expr) = settings.schedule.as_deref() else {
            unscheduled.push(name.clone());
            continue;
        };
        match Schedule::parse(expr, settings.timezone.as_deref()) {
            Ok(s) => jobs.push((name.clone(), s.with_quota_reset(dest.daily_quota_reset()))),
            Err(errors) => {
                for e in errors {
                    eprintln!("{}", e.under(&format!("destinations.{name}")));
                }
                return Err(exit::CONFIG);
            }
        }
    }
    Ok((jobs, unscheduled))
}

/// `--once`: a signal, a skip or an unchanged source is not a failure of
/// the job that called us; a pause is 75, as for `audex run`.
fn once_code(end: &RunEnd) -> i32 {
    match end {
        RunEnd::Ran(r) => match r.status {
            RunStatus::Interrupted => exit::OK,
            _ => super::run::code_for(r),
        },
        RunEnd::NotStarted(e) => exit::for_error(e),
        RunEnd::Locked(_) | RunEnd::Unchanged | RunEnd::Cancelled => exit::OK,
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn print_plan(scheduler: &Scheduler, unscheduled: &[String], config: &Config) {
    let now = Utc::now();
    let planner = scheduler.planner();
    let next: std::collections::BTreeMap<String, Option<DateTime<Utc>>> =
        planner.next_runs().into_iter().collect();
    println!(
        "{} audex schedule: {} destination(s) scheduled; state {}",
        stamp(now),
        next.len(),
        config.state_path.display()
    );
    for (name, schedule) in planner.schedules() {
        let ticks: Vec<String> = schedule.upcoming(now, 3).into_iter().map(stamp).collect();
        println!(
            "  {name}: \"{}\" ({}); next runs {}",
            schedule.expr(),
            schedule.timezone(),
            ticks.join(", ")
        );
        let first_tick = schedule.next_after(now);
        if let Some(Some(at)) = next.get(name) {
            if first_tick.is_none_or(|t| *at < t) {
                let at = if *at <= now { now } else { *at };
                println!(
                    "  {name}: resumes at {} (its last run was paused, interrupted or missed)",
                    stamp(at)
                );
            }
        }
    }
    if !unscheduled.is_empty() {
        println!(
            "  not scheduled (no `schedule`): {}",
            unscheduled.join(", ")
        );
    }
}

/// One log line per event on stdout (a service's journal), with the time.
struct Log;

impl ScheduleObserver for Log {
    fn event(&self, event: &ScheduleEvent<'_>) {
        let now = stamp(Utc::now());
        match event {
            ScheduleEvent::Started {
                destination,
                trigger,
                due,
            } => {
                let why = match trigger {
                    Trigger::Schedule => format!("scheduled for {}", stamp(*due)),
                    Trigger::Resume => "resuming its unfinished run".to_string(),
                };
                println!("{now} {destination}: starting ({why})");
            }
            ScheduleEvent::Skipped {
                destination,
                due,
                reason,
            } => println!(
                "{now} {destination}: skipped the run due at {}: {reason}",
                stamp(*due)
            ),
            ScheduleEvent::Finished {
                destination,
                end,
                next,
                ..
            } => {
                let next = next
                    .map(|t| format!("; next run {}", stamp(t)))
                    .unwrap_or_default();
                match end {
                    RunEnd::Ran(r) => {
                        let sum = |f: fn(&audex_core::engine::SegmentReport) -> u64| -> u64 {
                            r.segments.iter().map(f).sum()
                        };
                        let mut line = format!(
                            "{now} {destination}: run {} {}: {} read, {} upserted, {} unchanged, {} added, {} removed, {} rejected, {} failed, {} pending; {} calls in {:.1} s",
                            r.run_id,
                            r.status,
                            sum(|s| s.read),
                            sum(|s| s.upserted),
                            sum(|s| s.unchanged),
                            sum(|s| s.added),
                            sum(|s| s.removed),
                            sum(|s| s.rejected),
                            sum(|s| s.failed),
                            sum(|s| s.pending),
                            r.calls_total,
                            r.duration_ms as f64 / 1000.0
                        );
                        if let Some(e) = &r.error {
                            line.push_str(&format!("; error ({}): {}", e.class, e.message));
                        }
                        if let Some(f) = &r.rejects_file {
                            line.push_str(&format!("; rejected rows: {f}"));
                        }
                        println!("{line}{next}");
                    }
                    // The skip line said it.
                    RunEnd::Locked(_) => {}
                    RunEnd::Unchanged => println!(
                        "{now} {destination}: its sources have not changed since the last export; nothing to do{next}"
                    ),
                    RunEnd::NotStarted(e) => {
                        for c in e.config_errors() {
                            println!("{now} {destination}: {c}");
                        }
                        println!("{now} {destination}: could not start: {e}{next}");
                    }
                    RunEnd::Cancelled => {
                        println!("{now} {destination}: stopped before it started")
                    }
                }
            }
            ScheduleEvent::NotDue { destination, next } => {
                let next = next
                    .map(|t| format!("; next run {}", stamp(t)))
                    .unwrap_or_default();
                println!("{now} {destination}: not due{next}");
            }
            ScheduleEvent::Stopping { running } => println!(
                "{now} audex schedule: stopping; {running} run(s) finishing their calls in flight (signal again to quit now)"
            ),
            _ => {}
        }
    }
}
