//! `audex schedule --once`: which exports are due now, judged from the run
//! history, so an outside scheduler (cron, a systemd timer, a Kubernetes
//! CronJob) can call audex as often as it likes.

use chrono::{DateTime, Utc};

use super::cron::Schedule;
use super::planner::Trigger;

/// The latest run of a destination, as the history has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastRun {
    pub started_at: DateTime<Utc>,
    /// When it ended; `None` while running or after a crash.
    pub finished_at: Option<DateTime<Utc>>,
    /// It stopped on the daily quota or the call budget.
    pub paused: bool,
    /// It did not finish: stopped by a signal, or its process died (a
    /// `running` row whose process no longer holds the destination's lock).
    pub interrupted: bool,
}

impl LastRun {
    /// A run that ended normally (succeeded or failed) at `finished_at`.
    pub fn finished(started_at: DateTime<Utc>, finished_at: DateTime<Utc>) -> LastRun {
        LastRun {
            started_at,
            finished_at: Some(finished_at),
            paused: false,
            interrupted: false,
        }
    }
}

/// A run that is due: why, and the instant it answers (the scheduled tick,
/// the quota reset, or the start of the history's unfinished run).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Due {
    pub trigger: Trigger,
    pub at: DateTime<Utc>,
}

/// Whether a destination on `schedule` is due at `now`, and why.
///
/// Due when a tick has passed since its last run started (or it never ran
/// and a tick has passed); when its last run was interrupted (a signal, a
/// crash), to finish it; or when its last run paused and the quota has reset
/// since.
pub fn due_now(schedule: &Schedule, last: Option<&LastRun>, now: DateTime<Utc>) -> Option<Due> {
    let last_tick = schedule.last_at_or_before(now);
    let Some(last) = last else {
        return last_tick.map(|at| Due {
            trigger: Trigger::Schedule,
            at,
        });
    };
    if let Some(at) = last_tick.filter(|t| *t > last.started_at) {
        return Some(Due {
            trigger: Trigger::Schedule,
            at,
        });
    }
    if last.interrupted {
        return Some(Due {
            trigger: Trigger::Resume,
            at: last.finished_at.unwrap_or(last.started_at),
        });
    }
    if last.paused {
        let paused_at = last.finished_at.unwrap_or(last.started_at);
        let reset = schedule.resume_after_pause(paused_at).filter(|r| *r <= now);
        if let Some(reset) = reset {
            return Some(Due {
                trigger: Trigger::Resume,
                at: reset,
            });
        }
    }
    None
}
