//! Admission for Marketo calls: access tokens, the rolling rate window and the
//! daily quota (facts §1, §3). Time is `tokio::time::Instant`, so tests can
//! pause and advance it.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use chrono::{Duration as ChronoDuration, FixedOffset, Utc};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    Valid,
    /// 601: missing or unknown.
    Invalid,
    /// 602: known but past its expiry.
    Expired,
}

#[derive(Debug)]
struct TokenRec {
    expires_at: Instant,
}

#[derive(Debug)]
pub struct Gate {
    token_ttl: Duration,
    tokens: HashMap<String, TokenRec>,
    current: Option<String>,
    token_seq: u64,
    token_salt: u64,
    rate_calls: usize,
    rate_window: Duration,
    window: VecDeque<Instant>,
    daily_quota: u64,
    quota_used: u64,
    next_reset: Instant,
    day: Duration,
}

/// The first quota reset: the next midnight CST. CST is taken as fixed UTC-6
/// (whether Marketo follows daylight saving is unconfirmed, facts §"Could not
/// confirm"), and the wait is shrunk by the time scale.
fn until_cst_midnight(scale: f64) -> Duration {
    let cst = FixedOffset::west_opt(6 * 3600)
        .unwrap_or_else(|| FixedOffset::east_opt(0).expect("utc offset"));
    let now = Utc::now().with_timezone(&cst);
    let tomorrow = now.date_naive() + ChronoDuration::days(1);
    let midnight = tomorrow.and_hms_opt(0, 0, 0).map(|m| m - now.naive_local());
    let secs = midnight
        .map(|d| d.num_milliseconds())
        .unwrap_or(86_400_000)
        .max(1) as f64
        / 1000.0;
    Duration::from_secs_f64(secs / scale.max(f64::MIN_POSITIVE))
}

impl Gate {
    pub fn new(
        token_ttl: Duration,
        rate_calls: u32,
        rate_window: Duration,
        daily_quota: u64,
        scale: f64,
        salt: u64,
    ) -> Gate {
        let now = Instant::now();
        Gate {
            token_ttl,
            tokens: HashMap::new(),
            current: None,
            token_seq: 0,
            token_salt: salt,
            rate_calls: rate_calls as usize,
            rate_window,
            window: VecDeque::new(),
            daily_quota,
            quota_used: 0,
            next_reset: now + until_cst_midnight(scale),
            day: Duration::from_secs_f64(86_400.0 / scale.max(f64::MIN_POSITIVE)),
        }
    }

    /// Identity: the current token while it has life left (same token, falling
    /// `expires_in`), else a new one. Returns the token and whole seconds left.
    pub fn issue(&mut self, now: Instant) -> (String, u64) {
        if let Some(tok) = &self.current {
            if let Some(rec) = self.tokens.get(tok) {
                if rec.expires_at > now {
                    let left = rec.expires_at.duration_since(now).as_secs();
                    return (tok.clone(), left);
                }
            }
        }
        self.token_seq += 1;
        let a = crate::faults::mix(self.token_salt ^ self.token_seq.wrapping_mul(0x9E37_79B9));
        let b = crate::faults::mix(a ^ self.token_seq);
        let tok = format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}:int",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        );
        // Expired tokens stay known so they answer 602, not 601; keep a few.
        if self.tokens.len() > 64 {
            self.tokens
                .retain(|_, r| r.expires_at + Duration::from_secs(86_400) > now);
        }
        self.tokens.insert(
            tok.clone(),
            TokenRec {
                expires_at: now + self.token_ttl,
            },
        );
        self.current = Some(tok.clone());
        (tok, self.token_ttl.as_secs())
    }

    pub fn check_token(&self, token: Option<&str>, now: Instant) -> TokenCheck {
        match token.and_then(|t| self.tokens.get(t)) {
            None => TokenCheck::Invalid,
            Some(r) if r.expires_at <= now => TokenCheck::Expired,
            Some(_) => TokenCheck::Valid,
        }
    }

    pub fn expire_all(&mut self, now: Instant) {
        for r in self.tokens.values_mut() {
            r.expires_at = r.expires_at.min(now);
        }
    }

    pub fn expire(&mut self, token: &str, now: Instant) {
        if let Some(r) = self.tokens.get_mut(token) {
            r.expires_at = r.expires_at.min(now);
        }
    }

    fn roll_quota(&mut self, now: Instant) {
        while now >= self.next_reset {
            self.quota_used = 0;
            self.next_reset += self.day;
        }
    }

    /// Take one call from the daily quota; false when it is spent (607).
    pub fn take_quota(&mut self, now: Instant) -> bool {
        self.roll_quota(now);
        if self.quota_used >= self.daily_quota {
            return false;
        }
        self.quota_used += 1;
        true
    }

    pub fn quota_used(&mut self, now: Instant) -> u64 {
        self.roll_quota(now);
        self.quota_used
    }

    pub fn reset_quota(&mut self) {
        self.quota_used = 0;
    }

    fn trim_window(&mut self, now: Instant) {
        while let Some(front) = self.window.front() {
            if now.duration_since(*front) >= self.rate_window {
                self.window.pop_front();
            } else {
                break;
            }
        }
    }

    /// Admit one call into the rolling window; false when `rate_calls` calls
    /// were admitted in the last `rate_window` (606). Refused calls do not
    /// enter the window.
    pub fn take_rate(&mut self, now: Instant) -> bool {
        self.trim_window(now);
        if self.window.len() >= self.rate_calls {
            return false;
        }
        self.window.push_back(now);
        true
    }

    /// Record a call in the window without checking (a 615 answer still
    /// reached the instance).
    pub fn record_rate(&mut self, now: Instant) {
        self.trim_window(now);
        self.window.push_back(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> Gate {
        Gate::new(
            Duration::from_secs(3600),
            3,
            Duration::from_secs(20),
            5,
            1.0,
            7,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn token_reused_until_expiry() {
        let mut g = gate();
        let (t1, left1) = g.issue(Instant::now());
        assert_eq!(left1, 3600);
        tokio::time::advance(Duration::from_secs(100)).await;
        let (t2, left2) = g.issue(Instant::now());
        assert_eq!(t1, t2);
        assert_eq!(left2, 3500);
        assert_eq!(g.check_token(Some(&t1), Instant::now()), TokenCheck::Valid);
        tokio::time::advance(Duration::from_secs(3500)).await;
        assert_eq!(
            g.check_token(Some(&t1), Instant::now()),
            TokenCheck::Expired
        );
        let (t3, _) = g.issue(Instant::now());
        assert_ne!(t1, t3);
        assert_eq!(
            g.check_token(Some("nope"), Instant::now()),
            TokenCheck::Invalid
        );
        assert_eq!(g.check_token(None, Instant::now()), TokenCheck::Invalid);
    }

    #[tokio::test(start_paused = true)]
    async fn rolling_window() {
        let mut g = gate();
        let t0 = Instant::now();
        assert!(g.take_rate(t0));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(g.take_rate(Instant::now()));
        assert!(g.take_rate(Instant::now()));
        assert!(!g.take_rate(Instant::now()));
        // The first call leaves the window 20 s after it entered, not at a fixed boundary.
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(g.take_rate(Instant::now()));
        assert!(!g.take_rate(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn quota_spends_and_resets() {
        let mut g = gate();
        for _ in 0..5 {
            assert!(g.take_quota(Instant::now()));
        }
        assert!(!g.take_quota(Instant::now()));
        g.reset_quota();
        assert!(g.take_quota(Instant::now()));
        tokio::time::advance(Duration::from_secs(86_401)).await;
        assert_eq!(g.quota_used(Instant::now()), 0);
    }
}
