//! The scheduler's reading of the run history: how a destination's last run
//! ended, for `--once` and for a scheduler starting up.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::once::LastRun;
use crate::engine::RunStatus;
use crate::error::Result;
use crate::state::StateStore;

/// The last run (not a dry run) of `destination` at `now`. A run the history
/// shows as `running` counts as interrupted unless a live process holds the
/// destination's lock (`stale_after` decides, as for taking the lock).
pub fn last_run(
    store: &StateStore,
    destination: &str,
    now: DateTime<Utc>,
    stale_after: Duration,
) -> Result<Option<LastRun>> {
    let Some(run) = store.last_run(destination)? else {
        return Ok(None);
    };
    let parse = |s: &str| {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    // A start the history cannot read is taken as long ago: the next tick
    // is due, which is the safe side (the diff sends only what is missing).
    let started_at = parse(&run.started_at).unwrap_or(DateTime::<Utc>::MIN_UTC);
    let finished_at = run.finished_at.as_deref().and_then(parse);
    let interrupted = match run.status {
        RunStatus::Interrupted => true,
        RunStatus::Running => store
            .live_lock_holder(destination, now, stale_after)?
            .is_none(),
        _ => false,
    };
    Ok(Some(LastRun {
        started_at,
        finished_at,
        paused: run.status == RunStatus::Paused,
        interrupted,
    }))
}
