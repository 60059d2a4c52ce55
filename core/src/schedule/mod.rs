//! Scheduled exports: when each destination is due (cron in its time zone),
//! what to skip when a run overlaps its next tick, when a run paused on the
//! daily quota resumes, and the loop that runs it all.
//!
//! The decisions are pure logic over explicit instants and an injectable
//! [`Clock`] ([`Planner`], [`due_now`]); [`Scheduler`] is the loop, which
//! sleeps, starts runs through a [`Runner`] and records skips.
//! [`ConfigRunner`] is the runner over a config (build, `run_on:
//! source_change`, the engine under the destination's lock); the CLI's
//! `audex schedule` adds only the printing.

mod clock;
mod cron;
mod history;
mod once;
mod planner;
mod runner;
mod service;
mod trigger;

#[cfg(test)]
mod tests;

pub use clock::{Clock, ManualClock, SystemClock};
pub use cron::Schedule;
pub use history::last_run;
pub use once::{due_now, Due, LastRun};
pub use planner::{Action, Outcome, Planner, Trigger};
pub use runner::ConfigRunner;
pub use service::{
    OnceRun, RunEnd, Runner, ScheduleEvent, ScheduleObserver, Scheduler, MAX_NAP, STILL_RUNNING,
};
pub use trigger::sources_fingerprint;
