//! The long-running scheduler's decisions, as pure logic over explicit
//! instants: which export to start, which tick to skip because the previous
//! run is still going, and when a paused run resumes.
//!
//! The CLI drives it: `poll(now)` at each wake-up, `finished(..)` when a run
//! ends, and sleeps until `next_wake()`. Tests drive it with any instants.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::cron::Schedule;
use super::once::{due_now, Due, LastRun};

/// Why a run starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Its schedule came due.
    Schedule,
    /// It was paused (daily quota or call budget) and the quota has reset.
    Resume,
}

/// What the scheduler should do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start a run of `destination`.
    Start {
        destination: String,
        trigger: Trigger,
        /// The scheduled (or resume) instant this run answers.
        due: DateTime<Utc>,
    },
    /// The tick `due` came while the previous run was still going: not
    /// started twice, and the skip goes into the history.
    Skip {
        destination: String,
        due: DateTime<Utc>,
    },
}

/// How a run the planner started ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
    /// Out of daily quota or call budget: resume at the next tick or the
    /// quota reset, whichever comes first.
    Paused,
    Interrupted,
    /// The run could not start (another process holds the destination).
    NotStarted,
}

#[derive(Clone, Debug)]
struct Job {
    schedule: Schedule,
    next_due: Option<DateTime<Utc>>,
    running: bool,
    resume_at: Option<DateTime<Utc>>,
}

/// The scheduler's state: one job per scheduled destination.
#[derive(Clone, Debug, Default)]
pub struct Planner {
    jobs: BTreeMap<String, Job>,
}

impl Planner {
    /// Plan `schedules` from `now`: each destination's first run is its
    /// first tick after `now`.
    pub fn new(
        schedules: impl IntoIterator<Item = (String, Schedule)>,
        now: DateTime<Utc>,
    ) -> Self {
        let jobs = schedules
            .into_iter()
            .map(|(name, schedule)| {
                let next_due = schedule.next_after(now);
                (
                    name,
                    Job {
                        schedule,
                        next_due,
                        running: false,
                        resume_at: None,
                    },
                )
            })
            .collect();
        Planner { jobs }
    }

    /// Mark `destination` as paused at `paused_at` (its last run, found in
    /// the history at start-up, stopped on the quota).
    pub fn mark_paused(&mut self, destination: &str, paused_at: DateTime<Utc>) {
        if let Some(job) = self.jobs.get_mut(destination) {
            job.resume_at = job.schedule.resume_after_pause(paused_at);
        }
    }

    /// Take `destination`'s last run from the history into account at
    /// start-up: a tick missed while no scheduler ran (since that run
    /// started) runs at the first poll, once; an interrupted run (a signal,
    /// a crash) resumes at the first poll; a paused one resumes at the quota
    /// reset or its next tick. A destination that never ran waits for its
    /// first tick.
    pub fn restore(&mut self, destination: &str, last: &LastRun, now: DateTime<Utc>) {
        let Some(job) = self.jobs.get_mut(destination) else {
            return;
        };
        match due_now(&job.schedule, Some(last), now) {
            Some(Due {
                trigger: Trigger::Schedule,
                at,
            }) => job.next_due = Some(at),
            Some(Due {
                trigger: Trigger::Resume,
                ..
            }) => job.resume_at = Some(now),
            None if last.paused => {
                job.resume_at = job
                    .schedule
                    .resume_after_pause(last.finished_at.unwrap_or(last.started_at));
            }
            None => {}
        }
    }

    /// The destinations planned, with their schedules.
    pub fn schedules(&self) -> impl Iterator<Item = (&str, &Schedule)> {
        self.jobs.iter().map(|(n, j)| (n.as_str(), &j.schedule))
    }

    /// What to do at `now`. Ticks missed while asleep (a suspended machine)
    /// are coalesced into one run, not replayed.
    pub fn poll(&mut self, now: DateTime<Utc>) -> Vec<Action> {
        let mut actions = Vec::new();
        for (name, job) in &mut self.jobs {
            if let Some(due) = job.next_due.filter(|d| *d <= now) {
                job.next_due = job.schedule.next_after(now);
                if job.running {
                    actions.push(Action::Skip {
                        destination: name.clone(),
                        due,
                    });
                } else {
                    job.running = true;
                    job.resume_at = None;
                    actions.push(Action::Start {
                        destination: name.clone(),
                        trigger: Trigger::Schedule,
                        due,
                    });
                }
                continue;
            }
            if let Some(at) = job.resume_at.filter(|r| *r <= now && !job.running) {
                job.running = true;
                job.resume_at = None;
                actions.push(Action::Start {
                    destination: name.clone(),
                    trigger: Trigger::Resume,
                    due: at,
                });
            }
        }
        actions
    }

    /// Record that the run of `destination` ended at `now`.
    pub fn finished(&mut self, destination: &str, outcome: Outcome, now: DateTime<Utc>) {
        if let Some(job) = self.jobs.get_mut(destination) {
            job.running = false;
            job.resume_at = match outcome {
                // The next tick resumes it too; poll takes whichever is first.
                Outcome::Paused => job.schedule.resume_after_pause(now),
                _ => None,
            };
        }
    }

    /// Whether a run of `destination` is going.
    pub fn is_running(&self, destination: &str) -> bool {
        self.jobs.get(destination).is_some_and(|j| j.running)
    }

    /// When `poll` next has something to do (a tick or a resume).
    pub fn next_wake(&self) -> Option<DateTime<Utc>> {
        self.jobs
            .values()
            .flat_map(|j| {
                let resume = j.resume_at.filter(|_| !j.running);
                [j.next_due, resume]
            })
            .flatten()
            .min()
    }

    /// Each destination's next start: its next tick, or an earlier resume.
    pub fn next_runs(&self) -> Vec<(String, Option<DateTime<Utc>>)> {
        self.jobs
            .iter()
            .map(|(name, j)| {
                let next = match (j.next_due, j.resume_at) {
                    (Some(d), Some(r)) => Some(d.min(r)),
                    (d, r) => d.or(r),
                };
                (name.clone(), next)
            })
            .collect()
    }
}
