//! Signals, shared by `audex run` and `audex schedule`: the first SIGINT or
//! SIGTERM stops the runs after their calls in flight, the second quits.

use audex_core::engine::CancellationToken;

use crate::exit;

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
