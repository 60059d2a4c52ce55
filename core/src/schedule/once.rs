//! `audex schedule --once`: which exports are due now, judged from the run
//! history, so an outside scheduler (cron, a systemd timer, a Kubernetes
//! CronJob) can call audex as often as it likes.

use chrono::{DateTime, Utc};

use super::cron::{next_quota_reset, Schedule};
use super::planner::Trigger;

/// The latest run of a destination, as the history has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastRun {
    pub started_at: DateTime<Utc>,
    /// When it ended; `None` while running or after a crash.
    pub finished_at: Option<DateTime<Utc>>,
    /// It stopped on the daily quota or the call budget.
    pub paused: bool,
}

/// Whether a destination on `schedule` is due at `now`, and why.
///
/// Due when a tick has passed since its last run started (or it never ran
/// and a tick has passed), or when its last run paused and the quota has
/// reset since.
pub fn due_now(schedule: &Schedule, last: Option<&LastRun>, now: DateTime<Utc>) -> Option<Trigger> {
    let last_tick = schedule.last_at_or_before(now);
    let Some(last) = last else {
        return last_tick.map(|_| Trigger::Schedule);
    };
    if last_tick.is_some_and(|t| t > last.started_at) {
        return Some(Trigger::Schedule);
    }
    if last.paused {
        let paused_at = last.finished_at.unwrap_or(last.started_at);
        if next_quota_reset(paused_at) <= now {
            return Some(Trigger::Resume);
        }
    }
    None
}
