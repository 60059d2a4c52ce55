//! Admission for `/3.0` calls: calls in flight per account (Mailchimp's
//! only documented limit, facts §7) and an optional rolling window. Time is
//! `tokio::time::Instant`, so tests can pause and advance it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Calls in flight now and at most.
#[derive(Debug, Default)]
pub struct InFlight {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl InFlight {
    /// Enters a call; the guard leaves it however the call ends.
    pub fn enter(&self) -> (Slot<'_>, usize) {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(n, Ordering::SeqCst);
        (Slot(self), n)
    }

    /// Calls in flight now.
    pub fn current(&self) -> usize {
        self.now.load(Ordering::SeqCst)
    }

    /// Most calls in flight at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// Starts the peak again from the calls in flight now.
    pub fn reset_peak(&self) {
        self.peak.store(self.current(), Ordering::SeqCst);
    }
}

/// One call in flight.
#[derive(Debug)]
pub struct Slot<'a>(&'a InFlight);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A rolling window: at most `calls` admissions within any `window`.
#[derive(Debug)]
pub struct Window {
    calls: usize,
    window: Duration,
    admitted: VecDeque<Instant>,
}

impl Window {
    /// A window of `calls` per `window` (already scaled).
    pub fn new(calls: u32, window: Duration) -> Window {
        Window {
            calls: calls as usize,
            window,
            admitted: VecDeque::new(),
        }
    }

    /// Admits a call, or refuses it (refused calls do not enter the window).
    pub fn admit(&mut self, now: Instant) -> bool {
        while let Some(first) = self.admitted.front() {
            if now.duration_since(*first) >= self.window {
                self.admitted.pop_front();
            } else {
                break;
            }
        }
        if self.admitted.len() >= self.calls {
            return false;
        }
        self.admitted.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn window_rolls() {
        let mut w = Window::new(2, Duration::from_secs(10));
        assert!(w.admit(Instant::now()));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(w.admit(Instant::now()));
        assert!(!w.admit(Instant::now()));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(w.admit(Instant::now()));
        assert!(!w.admit(Instant::now()));
    }

    #[test]
    fn slots_count_and_peak() {
        let f = InFlight::default();
        {
            let (_a, n1) = f.enter();
            let (_b, n2) = f.enter();
            assert_eq!((n1, n2), (1, 2));
        }
        assert_eq!((f.current(), f.peak()), (0, 2));
        f.reset_peak();
        assert_eq!(f.peak(), 0);
    }
}
