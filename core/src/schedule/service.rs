//! The scheduler's loop: sleep until the planner has something to do, start
//! due runs through a [`Runner`], record skips, feed outcomes back to the
//! planner, and stop cleanly.
//!
//! The loop knows nothing of locks, engines or printing: the runner does the
//! run ([`super::ConfigRunner`] builds the destination and runs it through
//! the engine, which takes its lock), and a [`ScheduleObserver`] hears what
//! happened. Time comes from a
//! [`Clock`]; waiting is `tokio::time::sleep`, so tests drive the loop with
//! paused tokio time and a clock that follows it, without real waiting.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::clock::Clock;
use super::cron::Schedule;
use super::history::last_run;
use super::once::{due_now, Due};
use super::planner::{Action, Outcome, Planner, Trigger};
pub use crate::engine::RunEnd;
use crate::engine::RunStatus;
use crate::error::{Error, Result};
use crate::state::{StateStore, DEFAULT_STALE_AFTER};

/// The longest the loop sleeps between looks at the clock, so a wall clock
/// that jumps (NTP, a machine waking from suspend) is noticed within a
/// minute.
pub const MAX_NAP: Duration = Duration::from_secs(60);

/// The reason recorded for a tick that came while the previous run of the
/// destination (in this process) was still going.
pub const STILL_RUNNING: &str = "the previous run is still going";

impl RunEnd {
    /// What the planner needs to know.
    pub fn outcome(&self) -> Outcome {
        match self {
            RunEnd::Ran(r) => match r.status {
                RunStatus::Succeeded | RunStatus::DryRun => Outcome::Succeeded,
                RunStatus::Paused => Outcome::Paused,
                RunStatus::Interrupted => Outcome::Interrupted,
                RunStatus::Failed | RunStatus::Running => Outcome::Failed,
            },
            RunEnd::Locked(_) => Outcome::NotStarted,
            RunEnd::Unchanged => Outcome::Succeeded,
            RunEnd::NotStarted(e) if e.is_quota_exhausted() => Outcome::Paused,
            RunEnd::NotStarted(_) => Outcome::Failed,
            RunEnd::Cancelled => Outcome::Interrupted,
        }
    }
}

/// Does one run of one destination.
#[async_trait]
pub trait Runner: Send + Sync {
    /// Run `destination` now. `stop` is the scheduler's: once cancelled, the
    /// run finishes its calls in flight, checkpoints and ends `interrupted`.
    async fn run(&self, destination: &str, trigger: Trigger, stop: CancellationToken) -> RunEnd;
}

/// What the scheduler did, for logs.
#[derive(Debug)]
#[non_exhaustive]
pub enum ScheduleEvent<'a> {
    Started {
        destination: &'a str,
        trigger: Trigger,
        due: DateTime<Utc>,
    },
    /// A due run was not started; the skip is in the history.
    Skipped {
        destination: &'a str,
        due: DateTime<Utc>,
        reason: &'a str,
    },
    Finished {
        destination: &'a str,
        trigger: Trigger,
        due: DateTime<Utc>,
        end: &'a RunEnd,
        /// When the destination runs next (a tick or a resume).
        next: Option<DateTime<Utc>>,
    },
    /// `--once`: the destination is not due.
    NotDue {
        destination: &'a str,
        next: Option<DateTime<Utc>>,
    },
    /// A signal came: no new runs; waiting for `running` to finish.
    Stopping { running: usize },
}

/// Hears [`ScheduleEvent`]s. Called from the scheduler's task: keep it quick.
pub trait ScheduleObserver: Send + Sync {
    fn event(&self, event: &ScheduleEvent<'_>);
}

/// A finished run of `--once`.
#[derive(Debug)]
pub struct OnceRun {
    pub destination: String,
    pub due: Due,
    pub end: RunEnd,
}

/// The scheduler: a planner, a clock, the state store (for the history and
/// the skips) and a runner.
pub struct Scheduler {
    planner: Planner,
    clock: Arc<dyn Clock>,
    store: Arc<StateStore>,
    runner: Arc<dyn Runner>,
    observer: Option<Arc<dyn ScheduleObserver>>,
}

impl fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scheduler")
            .field("planner", &self.planner)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    /// Plan `schedules` from the clock's now and the history: each
    /// destination's last run is restored ([`Planner::restore`]), so a
    /// paused run resumes, an interrupted one finishes, and a tick missed
    /// while no scheduler ran is run once.
    pub fn from_history(
        schedules: Vec<(String, Schedule)>,
        clock: Arc<dyn Clock>,
        store: Arc<StateStore>,
        runner: Arc<dyn Runner>,
    ) -> Result<Scheduler> {
        let now = clock.now();
        let mut planner = Planner::new(schedules.iter().cloned(), now);
        for (name, _) in &schedules {
            if let Some(last) = last_run(&store, name, now, DEFAULT_STALE_AFTER)? {
                planner.restore(name, &last, now);
            }
        }
        Ok(Scheduler {
            planner,
            clock,
            store,
            runner,
            observer: None,
        })
    }

    pub fn with_observer(mut self, observer: Arc<dyn ScheduleObserver>) -> Scheduler {
        self.observer = Some(observer);
        self
    }

    pub fn planner(&self) -> &Planner {
        &self.planner
    }

    fn emit(&self, event: &ScheduleEvent<'_>) {
        if let Some(o) = self.observer.as_deref() {
            o.event(event);
        }
    }

    fn skip(&self, destination: &str, due: DateTime<Utc>, reason: &str) {
        if let Err(e) = self
            .store
            .record_skip(destination, due, reason, self.clock.now())
        {
            tracing::error!(destination, error = %e, "cannot record a skipped run");
        }
        self.emit(&ScheduleEvent::Skipped {
            destination,
            due,
            reason,
        });
    }

    /// Run until `stop` is cancelled; then start nothing more, let the runs
    /// going finish (the runner sees the same token: they finish their calls
    /// in flight, checkpoint and end `interrupted`), and return.
    pub async fn serve(mut self, stop: CancellationToken) {
        let mut runs: JoinSet<(String, Trigger, DateTime<Utc>, RunEnd)> = JoinSet::new();
        let mut stopping = false;
        loop {
            if stop.is_cancelled() {
                if !stopping {
                    stopping = true;
                    self.emit(&ScheduleEvent::Stopping {
                        running: runs.len(),
                    });
                }
                match runs.join_next().await {
                    Some(joined) => self.finished(joined),
                    None => return,
                }
                continue;
            }
            let now = self.clock.now();
            for action in self.planner.poll(now) {
                match action {
                    Action::Start {
                        destination,
                        trigger,
                        due,
                    } => {
                        self.emit(&ScheduleEvent::Started {
                            destination: &destination,
                            trigger,
                            due,
                        });
                        let runner = Arc::clone(&self.runner);
                        let stop = stop.clone();
                        runs.spawn(async move {
                            let end =
                                run_caught(runner.as_ref(), &destination, trigger, stop).await;
                            (destination, trigger, due, end)
                        });
                    }
                    Action::Skip { destination, due } => {
                        self.skip(&destination, due, STILL_RUNNING);
                    }
                }
            }
            let nap = self
                .planner
                .next_wake()
                .map(|w| (w - self.clock.now()).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(MAX_NAP)
                .min(MAX_NAP);
            tokio::select! {
                _ = tokio::time::sleep(nap) => {}
                Some(joined) = runs.join_next(), if !runs.is_empty() => self.finished(joined),
                _ = stop.cancelled() => {}
            }
        }
    }

    fn finished(
        &mut self,
        joined: std::result::Result<
            (String, Trigger, DateTime<Utc>, RunEnd),
            tokio::task::JoinError,
        >,
    ) {
        // Runs catch their panics (`run_caught`), so a join error is the
        // runtime shutting down.
        let Ok((destination, trigger, due, end)) = joined else {
            return;
        };
        let now = self.clock.now();
        self.planner.finished(&destination, end.outcome(), now);
        if let RunEnd::Locked(holder) = &end {
            self.skip(&destination, due, &format!("locked by {holder}"));
        }
        let next = self
            .planner
            .next_runs()
            .into_iter()
            .find(|(n, _)| *n == destination)
            .and_then(|(_, next)| next);
        self.emit(&ScheduleEvent::Finished {
            destination: &destination,
            trigger,
            due,
            end: &end,
            next,
        });
    }

    /// `--once`: run every destination that is due now (judged from the
    /// history, see [`due_now`]), all at once, and return how each ended.
    pub async fn run_once(self, stop: CancellationToken) -> Result<Vec<OnceRun>> {
        let now = self.clock.now();
        let mut runs: JoinSet<OnceRun> = JoinSet::new();
        for (name, schedule) in self.planner.schedules() {
            let last = last_run(&self.store, name, now, DEFAULT_STALE_AFTER)?;
            let Some(due) = due_now(schedule, last.as_ref(), now) else {
                self.emit(&ScheduleEvent::NotDue {
                    destination: name,
                    next: schedule.next_after(now),
                });
                continue;
            };
            if stop.is_cancelled() {
                break;
            }
            self.emit(&ScheduleEvent::Started {
                destination: name,
                trigger: due.trigger,
                due: due.at,
            });
            let runner = Arc::clone(&self.runner);
            let stop = stop.clone();
            let destination = name.to_string();
            runs.spawn(async move {
                let end = run_caught(runner.as_ref(), &destination, due.trigger, stop).await;
                OnceRun {
                    destination,
                    due,
                    end,
                }
            });
        }
        let schedules: HashMap<&str, &Schedule> = self.planner.schedules().collect();
        let mut out = Vec::new();
        while let Some(joined) = runs.join_next().await {
            let Ok(run) = joined else {
                continue;
            };
            if let RunEnd::Locked(holder) = &run.end {
                self.skip(&run.destination, run.due.at, &format!("locked by {holder}"));
            }
            let next = schedules
                .get(run.destination.as_str())
                .and_then(|s| s.next_after(self.clock.now()));
            self.emit(&ScheduleEvent::Finished {
                destination: &run.destination,
                trigger: run.due.trigger,
                due: run.due.at,
                end: &run.end,
                next,
            });
            out.push(run);
        }
        out.sort_by(|a, b| a.destination.cmp(&b.destination));
        Ok(out)
    }
}

/// Run through `runner`, turning a panic into a failed start, so the planner
/// always learns that the destination's run ended.
async fn run_caught(
    runner: &dyn Runner,
    destination: &str,
    trigger: Trigger,
    stop: CancellationToken,
) -> RunEnd {
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(runner.run(destination, trigger, stop))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            RunEnd::NotStarted(Error::internal(
                "the run panicked (a bug: please report it with the log)",
            ))
        })
}
