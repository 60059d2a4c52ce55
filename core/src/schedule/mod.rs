//! Scheduled exports: when each destination is due (cron in its time zone),
//! what to skip when a run overlaps its next tick, and when a run paused on
//! the daily quota resumes.
//!
//! Pure logic over explicit instants and an injectable [`Clock`]; the CLI's
//! `audex schedule` does the waiting, the locking and the running.

mod clock;
mod cron;
mod once;
mod planner;

#[cfg(test)]
mod tests;

pub use clock::{Clock, ManualClock, SystemClock};
pub use cron::{next_quota_reset, Schedule, QUOTA_RESET_TZ};
pub use once::{due_now, LastRun};
pub use planner::{Action, Outcome, Planner, Trigger};
