//! The one path from a destination's name to a finished run, shared by
//! `audex run` and `audex schedule`: take the destination's lock (refuse or
//! wait), keep its heartbeat while the engine runs, release it. And the
//! signal handling both verbs share.

use std::sync::Arc;
use std::time::Duration;

use audex_core::config::Config;
use audex_core::engine::{run_destination, CancellationToken, RunOptions};
use audex_core::schedule::RunEnd;
use audex_core::state::{LockAttempt, LockToken, StateStore, DEFAULT_STALE_AFTER, HEARTBEAT_EVERY};
use chrono::Utc;

use crate::exit;

/// What to do when another process holds the destination's lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenLocked {
    /// Do not run (`audex run` exits 75, the scheduler records a skip).
    Refuse,
    /// Poll until the lock is free (`audex run --wait`).
    Wait,
}

/// How often `--wait` looks at the lock again.
const WAIT_POLL: Duration = Duration::from_millis(500);

/// Run destination `name` under its lock. `purpose` names the holder for
/// whoever finds the lock taken (`audex run`, `audex schedule`).
/// Cancelling `options.cancel` while waiting for the lock ends with
/// [`RunEnd::Cancelled`]; while running, the engine finishes the calls in
/// flight and ends `interrupted`.
pub async fn export(
    config: &Config,
    name: &str,
    store: &Arc<StateStore>,
    options: RunOptions,
    purpose: &str,
    when_locked: WhenLocked,
) -> RunEnd {
    let token = match acquire(store, name, purpose, when_locked, &options.cancel).await {
        Ok(Ok(token)) => token,
        Ok(Err(end)) => return end,
        Err(e) => return RunEnd::NotStarted(e),
    };
    // A lock taken over while we were silent (a suspended process) is no
    // longer ours: stop writing, as after a signal.
    let lost = options.cancel.child_token();
    let heartbeat = tokio::spawn(heartbeat(Arc::clone(store), token.clone(), lost.clone()));
    let options = RunOptions {
        cancel: lost,
        ..options
    };
    let result = run_destination(config, name, store, &options).await;
    heartbeat.abort();
    if let Err(e) = store.unlock_destination(&token) {
        // Left behind, it is taken over as soon as this process is gone.
        tracing::warn!(destination = name, error = %e, "cannot release the destination lock");
    }
    match result {
        Ok(report) => RunEnd::Ran(Box::new(report)),
        Err(e) => RunEnd::NotStarted(e),
    }
}

/// Take the lock, or say who has it (`Ok(Err(Locked))`), or wait for it.
async fn acquire(
    store: &StateStore,
    name: &str,
    purpose: &str,
    when_locked: WhenLocked,
    cancel: &CancellationToken,
) -> audex_core::Result<Result<LockToken, RunEnd>> {
    let mut told = false;
    loop {
        match store.try_lock_destination(name, purpose, Utc::now(), DEFAULT_STALE_AFTER)? {
            LockAttempt::Acquired { token, replaced } => {
                if let Some(old) = replaced {
                    eprintln!(
                        "audex: destination {name}: took over the lock left by {old}: that process is gone or silent"
                    );
                }
                return Ok(Ok(token));
            }
            LockAttempt::Held(holder) => match when_locked {
                WhenLocked::Refuse => return Ok(Err(RunEnd::Locked(holder))),
                WhenLocked::Wait => {
                    if !told {
                        eprintln!(
                            "audex: destination {name} is locked by {holder}; waiting for it"
                        );
                        told = true;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(WAIT_POLL) => {}
                        _ = cancel.cancelled() => return Ok(Err(RunEnd::Cancelled)),
                    }
                }
            },
        }
    }
}

async fn heartbeat(store: Arc<StateStore>, token: LockToken, lost: CancellationToken) {
    let mut every = tokio::time::interval(HEARTBEAT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        match store.heartbeat_lock(&token, Utc::now()) {
            Ok(true) => {}
            Ok(false) => {
                eprintln!(
                    "audex: destination {}: another process took over the lock (this one was silent too long); stopping after the calls in flight",
                    token.destination()
                );
                lost.cancel();
                return;
            }
            Err(e) => {
                tracing::warn!(destination = token.destination(), error = %e, "cannot refresh the lock's heartbeat");
            }
        }
    }
}

/// First SIGINT/SIGTERM: cancel `stop` (the runs stop scheduling calls,
/// finish those in flight, checkpoint, and end `interrupted`). Second: exit
/// at once with 130 (the state store holds only confirmed work, so the next
/// run is still exact; a lock left behind is taken over).
pub fn spawn_signal_handler(stop: CancellationToken) {
    // Registered now, inside the runtime, so no signal is missed between
    // here and the task's first poll.
    let mut signals = Signals::new();
    tokio::spawn(async move {
        let mut seen = 0;
        while signals.next().await {
            seen += 1;
            if seen == 1 {
                eprintln!("audex: stopping after the calls in flight (signal again to quit now)");
                stop.cancel();
            } else {
                eprintln!("audex: quitting now; the next run resumes");
                std::process::exit(exit::INTERRUPTED);
            }
        }
    });
}

/// SIGINT and SIGTERM, listened to from the start (a signal between two
/// waits is not lost).
struct Signals {
    #[cfg(unix)]
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    #[cfg(unix)]
    fn new() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        let streams = match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(int), Ok(term)) => Some((int, term)),
            _ => None,
        };
        Signals { streams }
    }

    #[cfg(not(unix))]
    fn new() -> Signals {
        Signals {}
    }

    /// Wait for the next signal; `false` when none can come.
    #[cfg(unix)]
    async fn next(&mut self) -> bool {
        let Some((int, term)) = self.streams.as_mut() else {
            return false;
        };
        tokio::select! {
            s = int.recv() => s.is_some(),
            s = term.recv() => s.is_some(),
        }
    }

    #[cfg(not(unix))]
    async fn next(&mut self) -> bool {
        tokio::signal::ctrl_c().await.is_ok()
    }
}
