//! The scheduler's runner over a config: build the destination and its
//! sources, skip a scheduled time whose sources did not change
//! (`run_on: source_change`), run through the engine under the
//! destination's lock (refused, so a busy destination's tick is a skip),
//! and remember the sources' fingerprint after a success.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::planner::Trigger;
use super::service::Runner;
use super::trigger::sources_fingerprint;
use crate::config::Config;
use crate::engine::{
    run_exclusive, LockRequest, RunEnd, RunObserver, RunOptions, RunStatus, Target, WhenLocked,
};
use crate::settings::RunOn;
use crate::state::StateStore;

/// Runs a config's destinations for a [`super::Scheduler`].
pub struct ConfigRunner {
    config: Arc<Config>,
    store: Arc<StateStore>,
    lock: LockRequest,
    observer: Option<Arc<dyn RunObserver>>,
}

impl std::fmt::Debug for ConfigRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigRunner")
            .field("lock", &self.lock)
            .finish_non_exhaustive()
    }
}

impl ConfigRunner {
    /// `purpose` names the runs in the destination lock (e.g.
    /// `audex schedule`).
    pub fn new(config: Arc<Config>, store: Arc<StateStore>, purpose: &str) -> Self {
        ConfigRunner {
            config,
            store,
            lock: LockRequest::new(purpose, WhenLocked::Refuse),
            observer: None,
        }
    }

    /// Hear every run's events.
    pub fn with_observer(mut self, observer: Arc<dyn RunObserver>) -> Self {
        self.observer = Some(observer);
        self
    }
}

#[async_trait]
impl Runner for ConfigRunner {
    async fn run(&self, destination: &str, trigger: Trigger, stop: CancellationToken) -> RunEnd {
        let target = match Target::from_config(&self.config, destination, None) {
            Ok(t) => t,
            Err(e) => return RunEnd::NotStarted(e),
        };
        // A scheduled time with the sources as they were at the last
        // successful export has nothing to do. A resume (paused,
        // interrupted) always runs: it is unfinished work.
        let fingerprint = if target.settings.run_on == RunOn::SourceChange {
            match sources_fingerprint(&target).await {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(destination, error = %e,
                        "cannot tell whether the sources changed; exporting");
                    None
                }
            }
        } else {
            None
        };
        if let (Some(now), Trigger::Schedule) = (&fingerprint, trigger) {
            match self.store.source_fingerprint(destination) {
                Ok(Some(last)) if last == *now => return RunEnd::Unchanged,
                Ok(_) => {}
                Err(e) => return RunEnd::NotStarted(e),
            }
        }
        let options = RunOptions {
            cancel: stop,
            observer: self.observer.clone(),
            ..RunOptions::default()
        };
        let end = run_exclusive(&target, &self.store, &options, &self.lock).await;
        if let (Some(f), RunEnd::Ran(r)) = (&fingerprint, &end) {
            if r.status == RunStatus::Succeeded {
                if let Err(e) = self
                    .store
                    .record_source_fingerprint(destination, f, Utc::now())
                {
                    // The next scheduled time exports again: harmless.
                    tracing::warn!(destination, error = %e, "cannot record the sources' fingerprint");
                }
            }
        }
        end
    }
}
