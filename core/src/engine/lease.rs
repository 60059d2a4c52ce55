//! The destination's lock around a run: taken before the run starts
//! (refused, or waited for), its heartbeat kept while the engine works,
//! released at the end. Every run takes this one path: `audex run`, the
//! scheduler and a library caller alike, so a long run never looks
//! abandoned to another process. The lock's SQL is the state store's
//! (`state/lock.rs`); this module only drives it.

use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::{RunEvent, RunObserver};
use crate::error::Result;
use crate::state::{
    LockAttempt, LockHolder, LockToken, StateStore, DEFAULT_STALE_AFTER, HEARTBEAT_EVERY,
};

/// How often a waiting run looks at the lock again.
const WAIT_POLL: Duration = Duration::from_millis(500);

/// What to do when another live process holds the destination's lock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WhenLocked {
    /// Do not run: the caller reports who holds it (`audex run` exits 75,
    /// the scheduler records a skip).
    #[default]
    Refuse,
    /// Wait until the lock is free (`audex run --wait`), or until cancelled.
    Wait,
}

/// Who takes the lock, and what to do when it is held.
#[derive(Clone, Debug)]
pub struct LockRequest {
    /// Names the holder for whoever finds the lock taken, e.g.
    /// `audex run` or `audex schedule`.
    pub purpose: String,
    pub when_locked: WhenLocked,
}

impl LockRequest {
    pub fn new(purpose: impl Into<String>, when_locked: WhenLocked) -> Self {
        LockRequest {
            purpose: purpose.into(),
            when_locked,
        }
    }
}

impl Default for LockRequest {
    /// A library caller's run: refused while another process runs the
    /// destination.
    fn default() -> Self {
        LockRequest::new("audex (library)", WhenLocked::Refuse)
    }
}

/// How taking the lock went.
pub(crate) enum Taken {
    Ours(LockToken),
    Held(LockHolder),
    Cancelled,
}

/// Take `destination`'s lock as `request` says. A stale holder (its process
/// gone, or silent for [`DEFAULT_STALE_AFTER`]) is taken over.
pub(crate) async fn take(
    store: &StateStore,
    destination: &str,
    request: &LockRequest,
    cancel: &CancellationToken,
    observer: Option<&dyn RunObserver>,
) -> Result<Taken> {
    let mut told = false;
    loop {
        let attempt = store.try_lock_destination(
            destination,
            &request.purpose,
            Utc::now(),
            DEFAULT_STALE_AFTER,
        )?;
        match attempt {
            LockAttempt::Acquired { token, replaced } => {
                if let Some(old) = replaced {
                    tracing::warn!(destination, holder = %old,
                        "took over the lock of a process that is gone or silent");
                    if let Some(o) = observer {
                        o.event(&RunEvent::LockTakenOver {
                            destination,
                            holder: &old,
                        });
                    }
                }
                return Ok(Taken::Ours(token));
            }
            LockAttempt::Held(holder) => match request.when_locked {
                WhenLocked::Refuse => return Ok(Taken::Held(holder)),
                WhenLocked::Wait => {
                    if !told {
                        told = true;
                        tracing::info!(destination, holder = %holder, "waiting for the lock");
                        if let Some(o) = observer {
                            o.event(&RunEvent::WaitingForLock {
                                destination,
                                holder: &holder,
                            });
                        }
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(WAIT_POLL) => {}
                        _ = cancel.cancelled() => return Ok(Taken::Cancelled),
                    }
                }
            },
        }
    }
}

/// Drive `work` while beating the lock's heartbeat every
/// [`HEARTBEAT_EVERY`]. When the lock turns out to be someone else's (taken
/// over after this process went silent), `lost` is cancelled so the run
/// stops writing after the calls in flight; `work` still runs to its end.
pub(crate) async fn hold<F: Future>(
    store: &StateStore,
    token: &LockToken,
    lost: &CancellationToken,
    work: F,
) -> F::Output {
    let mut every = tokio::time::interval(HEARTBEAT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is now: the lock was just taken.
    every.tick().await;
    tokio::pin!(work);
    let mut beating = true;
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = every.tick(), if beating => match store.heartbeat_lock(token, Utc::now()) {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(destination = token.destination(),
                        "another process took over the lock (this one was silent too long); \
                         stopping after the calls in flight");
                    lost.cancel();
                    beating = false;
                }
                Err(e) => {
                    tracing::warn!(destination = token.destination(), error = %e,
                        "cannot refresh the lock's heartbeat");
                }
            },
        }
    }
}

/// Release the lock; a lock taken over by another process is left alone.
pub(crate) fn release(store: &StateStore, token: &LockToken) {
    if let Err(e) = store.unlock_destination(token) {
        // Left behind, it is taken over as soon as this process is gone.
        tracing::warn!(destination = token.destination(), error = %e,
            "cannot release the destination lock");
    }
}
