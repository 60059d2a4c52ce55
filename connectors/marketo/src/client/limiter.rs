//! The instance-wide limiter: every export to the same Marketo instance in
//! this process shares one, so together they stay under the instance's
//! limits (facts §3: 100 calls per rolling 20 s, 10 in flight, a daily quota).
//!
//! Marketo counts a call when it *arrives*, which is some time between our
//! send and the answer. So a call holds its place in the window from the
//! moment it is sent until one window after its answer came back (not after
//! it was sent): the next call that takes the place cannot arrive inside the
//! same server-side window, whatever the network did. Identity calls are not
//! counted by Marketo and do not pass through here.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use audex_core::{Error, Result};
use chrono::{NaiveDate, Utc};
use tokio::sync::Notify;
use tokio::time::Instant;

/// The limits one instance is driven under.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LimitSettings {
    pub calls: u32,
    pub window: Duration,
    pub max_concurrency: usize,
    pub daily_budget: u64,
}

impl LimitSettings {
    /// The stricter of two settings, field by field: when two exports to the
    /// same instance configure different limits, the instance gets the
    /// lowest of each.
    fn tightest(self, other: LimitSettings) -> LimitSettings {
        LimitSettings {
            calls: self.calls.min(other.calls).max(1),
            window: self.window.max(other.window),
            max_concurrency: self.max_concurrency.min(other.max_concurrency).max(1),
            daily_budget: self.daily_budget.min(other.daily_budget),
        }
    }
}

#[derive(Debug)]
struct State {
    limits: LimitSettings,
    in_flight: usize,
    /// When each answered call in the current window came back, oldest first.
    answered: VecDeque<Instant>,
    day: NaiveDate,
    used_today: u64,
    /// Marketo answered 607: nothing more today, whatever our own count says.
    quota_spent: bool,
    /// Another caller drove the instance into 606/615: nobody sends before this.
    paused_until: Option<Instant>,
}

/// A rolling-window, concurrency and daily-budget limiter.
#[derive(Debug)]
pub struct Limiter {
    state: Mutex<State>,
    changed: Notify,
}

/// Today's quota day: Marketo's quota resets at midnight CST
/// (`config::quota_reset`, the same rule the scheduler resumes by).
fn quota_day() -> NaiveDate {
    let now = Utc::now();
    match crate::config::quota_reset() {
        Some(reset) => reset.day_of(now),
        // Unreachable (UTC-6 is a valid offset); UTC is the least wrong day.
        None => now.date_naive(),
    }
}

/// About thirty years: "never" for a deadline, yet far from the end of the
/// clock, so adding it to now cannot overflow.
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// `at + d`, or thirty years from `at` when that does not fit the clock (a
/// window or a pause of absurd length from a config or an answer).
fn deadline(at: Instant, d: Duration) -> Instant {
    at.checked_add(d)
        .or_else(|| at.checked_add(FAR_FUTURE))
        .unwrap_or(at)
}

impl Limiter {
    pub fn new(limits: LimitSettings) -> Arc<Limiter> {
        Arc::new(Limiter {
            state: Mutex::new(State {
                limits,
                in_flight: 0,
                answered: VecDeque::new(),
                day: quota_day(),
                used_today: 0,
                quota_spent: false,
                paused_until: None,
            }),
            changed: Notify::new(),
        })
    }

    /// The limiter of the instance at `origin`, shared by everything in the
    /// process that talks to it. A second caller with stricter settings
    /// tightens the shared ones.
    pub fn shared(origin: &str, limits: LimitSettings) -> Arc<Limiter> {
        static REGISTRY: OnceLock<Mutex<HashMap<String, Arc<Limiter>>>> = OnceLock::new();
        let registry = REGISTRY.get_or_init(Default::default);
        let mut map = registry.lock().unwrap_or_else(|p| p.into_inner());
        let limiter = map
            .entry(origin.to_ascii_lowercase())
            .or_insert_with(|| Limiter::new(limits))
            .clone();
        drop(map);
        {
            let mut s = limiter.lock();
            s.limits = s.limits.tightest(limits);
        }
        limiter
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn limits(&self) -> LimitSettings {
        self.lock().limits
    }

    /// Calls counted against today's budget so far.
    pub fn used_today(&self) -> u64 {
        self.lock().used_today
    }

    /// Wait for a place in the window and under the concurrency cap, and
    /// count the call against the daily budget. Fails with class
    /// `QuotaExhausted` once the budget (or Marketo's quota) is spent.
    pub async fn acquire(self: &Arc<Self>) -> Result<Permit> {
        loop {
            // Registered before looking, so a release between the look and
            // the wait still wakes us.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let wake_at = {
                let mut s = self.lock();
                let now = Instant::now();
                let today = quota_day();
                if today != s.day {
                    s.day = today;
                    s.used_today = 0;
                    s.quota_spent = false;
                }
                if s.quota_spent {
                    return Err(Error::quota_exhausted("Marketo's daily API quota is spent")
                        .with_hint(
                        "the quota resets at midnight US Central time; run again then to resume",
                    ));
                }
                if s.used_today >= s.limits.daily_budget {
                    return Err(Error::quota_exhausted(format!(
                        "the daily call budget ({} calls) is spent",
                        s.limits.daily_budget
                    ))
                    .with_hint("raise rate_limit.daily_call_budget, or run again after midnight US Central time to resume"));
                }
                let window = s.limits.window;
                // Clock granularity between us and the server.
                let margin = (window / 100).min(Duration::from_millis(50));
                let held = window.saturating_add(margin);
                while let Some(&t) = s.answered.front() {
                    if deadline(t, held) <= now {
                        s.answered.pop_front();
                    } else {
                        break;
                    }
                }
                match s.paused_until {
                    Some(until) if until > now => Some(until),
                    _ => {
                        let window_full = s.in_flight + s.answered.len() >= s.limits.calls as usize;
                        if s.in_flight >= s.limits.max_concurrency {
                            None
                        } else if window_full {
                            // The oldest answered call leaves the window first; if all
                            // places are held by calls in flight, wait for an answer.
                            s.answered.front().map(|&t| deadline(t, held))
                        } else {
                            s.in_flight += 1;
                            s.used_today += 1;
                            return Ok(Permit {
                                limiter: Some(self.clone()),
                            });
                        }
                    }
                }
            };
            match wake_at {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = &mut changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }

    /// Stop every caller from sending for `pause`: another integration has
    /// driven the instance into its rate or concurrency limit.
    pub fn pause(&self, pause: Duration) {
        let until = deadline(Instant::now(), pause);
        let mut s = self.lock();
        if s.paused_until.is_none_or(|u| u < until) {
            s.paused_until = Some(until);
        }
        drop(s);
        self.changed.notify_waiters();
    }

    /// Marketo answered 607: no caller sends again today.
    pub fn quota_spent(&self) {
        self.lock().quota_spent = true;
        self.changed.notify_waiters();
    }

    fn release(&self) {
        let mut s = self.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
        s.answered.push_back(Instant::now());
        drop(s);
        self.changed.notify_waiters();
    }
}

/// A place in the window and under the cap, held while a call is in flight.
/// Dropping it marks the call answered.
#[derive(Debug)]
pub struct Permit {
    limiter: Option<Arc<Limiter>>,
}

impl Permit {
    /// The call timed out on our side, but Marketo may still be working on
    /// it (and may not even have counted it yet): keep the place for `hold`
    /// more, so we never have more calls in flight than the cap as the
    /// server sees them.
    pub fn hold_for(mut self, hold: Duration) {
        if let Some(limiter) = self.limiter.take() {
            tokio::spawn(async move {
                tokio::time::sleep(hold).await;
                limiter.release();
            });
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(l) = self.limiter.take() {
            l.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn limits(calls: u32, window_ms: u64, conc: usize, budget: u64) -> LimitSettings {
        LimitSettings {
            calls,
            window: Duration::from_millis(window_ms),
            max_concurrency: conc,
            daily_budget: budget,
        }
    }

    /// 40 tasks each making 10 calls of varying length through one limiter:
    /// the number of calls *arriving* (sent) in any window never exceeds the
    /// limit, and in-flight calls never exceed the cap.
    #[tokio::test(start_paused = true)]
    async fn window_and_cap_are_never_exceeded() {
        let lim = Limiter::new(limits(10, 1_000, 3, 1_000_000));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let sends = Arc::new(Mutex::new(Vec::<Instant>::new()));
        let mut tasks = Vec::new();
        for t in 0..40u64 {
            let (lim, in_flight, peak, sends) =
                (lim.clone(), in_flight.clone(), peak.clone(), sends.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0..10u64 {
                    let permit = lim.acquire().await.expect("budget is large");
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    sends.lock().expect("lock").push(Instant::now());
                    tokio::time::sleep(Duration::from_millis(7 * ((t + i) % 13))).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    drop(permit);
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        assert!(peak.load(Ordering::SeqCst) <= 3);
        let sends = sends.lock().expect("lock").clone();
        assert_eq!(sends.len(), 400);
        for (i, &start) in sends.iter().enumerate() {
            let in_window = sends[i..]
                .iter()
                .filter(|&&t| t < start + Duration::from_millis(1_000))
                .count();
            assert!(in_window <= 10, "{in_window} calls within one window");
        }
        // The limiter is not too timid either: 400 calls at 10 a second
        // take about 40 s, plus the call durations.
        let span = *sends.last().expect("sent") - sends[0];
        assert!(span < Duration::from_secs(48), "{span:?}");
    }

    /// A call that arrives late (long in flight) keeps its place until a
    /// window after its answer.
    #[tokio::test(start_paused = true)]
    async fn place_is_held_until_a_window_after_the_answer() {
        let lim = Limiter::new(limits(1, 1_000, 5, 100));
        let start = Instant::now();
        let p = lim.acquire().await.expect("first");
        tokio::time::sleep(Duration::from_millis(700)).await;
        drop(p);
        let _q = lim.acquire().await.expect("second");
        assert!(Instant::now() - start >= Duration::from_millis(1_700));
    }

    #[tokio::test(start_paused = true)]
    async fn budget_stops_with_quota_exhausted() {
        let lim = Limiter::new(limits(100, 1_000, 5, 3));
        for _ in 0..3 {
            drop(lim.acquire().await.expect("within budget"));
        }
        let err = lim.acquire().await.expect_err("budget spent");
        assert!(err.is_quota_exhausted());
        assert_eq!(lim.used_today(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn marketo_quota_stops_everyone() {
        let lim = Limiter::new(limits(100, 1_000, 5, 1_000));
        drop(lim.acquire().await.expect("ok"));
        lim.quota_spent();
        assert!(lim.acquire().await.expect_err("spent").is_quota_exhausted());
    }

    #[tokio::test(start_paused = true)]
    async fn timed_out_call_keeps_its_concurrency_place() {
        let lim = Limiter::new(limits(100, 10, 1, 1_000));
        let start = Instant::now();
        let p = lim.acquire().await.expect("first");
        p.hold_for(Duration::from_secs(5));
        let _q = lim.acquire().await.expect("second");
        assert!(Instant::now() - start >= Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn pause_delays_every_caller() {
        let lim = Limiter::new(limits(100, 10, 5, 1_000));
        let start = Instant::now();
        lim.pause(Duration::from_secs(3));
        drop(lim.acquire().await.expect("after pause"));
        assert!(Instant::now() - start >= Duration::from_secs(3));
    }

    /// A window or pause too long for the clock (a config of 1e19 s, an
    /// absurd backoff) means "not before long", never an overflow panic.
    #[tokio::test(start_paused = true)]
    async fn absurd_window_and_pause_do_not_overflow() {
        let lim = Limiter::new(LimitSettings {
            calls: 1,
            window: Duration::MAX,
            max_concurrency: 1,
            daily_budget: 10,
        });
        drop(lim.acquire().await.expect("first call goes"));
        // The second waits out a window that never ends in this test.
        let second = tokio::time::timeout(Duration::from_secs(3600), lim.acquire()).await;
        assert!(second.is_err(), "a call went inside an endless window");

        let lim = Limiter::new(limits(100, 10, 5, 1_000));
        lim.pause(Duration::MAX);
        let paused = tokio::time::timeout(Duration::from_secs(3600), lim.acquire()).await;
        assert!(paused.is_err(), "a call went during an endless pause");
        assert!(deadline(Instant::now(), Duration::MAX) > Instant::now());
    }

    #[test]
    fn shared_per_origin_and_tightened() {
        let a = Limiter::shared(
            "http://limiter-test.invalid:1",
            limits(100, 20_000, 10, 50_000),
        );
        let b = Limiter::shared(
            "HTTP://LIMITER-TEST.invalid:1",
            limits(50, 20_000, 5, 60_000),
        );
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.limits(), limits(50, 20_000, 5, 50_000));
        let c = Limiter::shared(
            "http://limiter-test.invalid:2",
            limits(100, 20_000, 10, 50_000),
        );
        assert!(!Arc::ptr_eq(&a, &c));
    }
}
