//! Capped exponential backoff with jitter, and the rule of what may be
//! retried at all.

use std::time::Duration;

use rand::RngExt;

/// Whether repeating an operation can change the outcome beyond the first
/// success. Only idempotent operations are ever retried after the request
/// may have reached Marketo: createOrUpdate upserts (keyed by email), list
/// add (re-adding answers `added`), list remove (a non-member answers 1015)
/// and reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idempotency {
    Idempotent,
    /// E.g. a bulk import submission: a retry could queue a second job.
    NotIdempotent,
}

/// How long to wait before attempt `n + 1`, and how many attempts in all.
#[derive(Clone, Debug, PartialEq)]
pub struct Backoff {
    /// Delay ceiling before the first retry.
    pub base: Duration,
    /// Ceiling for any one delay.
    pub max: Duration,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(500),
            max: Duration::from_secs(30),
            max_attempts: 6,
        }
    }
}

impl Backoff {
    /// The ceiling for the delay after failed attempt `attempt` (0-based):
    /// `base * 2^attempt`, capped at `max`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(30)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// A delay drawn uniformly from the upper half of the ceiling, so callers
    /// that failed together spread out but still back off exponentially.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        let half = ceiling / 2;
        let spread = (ceiling - half).as_nanos().min(u64::MAX as u128) as u64;
        if spread == 0 {
            return ceiling;
        }
        half + Duration::from_nanos(rand::rng().random_range(0..=spread))
    }

    /// Whether another attempt is allowed after `attempts` made.
    pub fn may_retry(&self, attempts: u32) -> bool {
        attempts < self.max_attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ceiling_doubles_then_caps() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
            max_attempts: 5,
        };
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(1), Duration::from_millis(200));
        assert_eq!(b.ceiling(3), Duration::from_millis(800));
        assert_eq!(b.ceiling(4), Duration::from_secs(1));
        assert_eq!(b.ceiling(200), Duration::from_secs(1));
    }

    #[test]
    fn attempts_are_bounded() {
        let b = Backoff::default();
        assert!(b.may_retry(1));
        assert!(b.may_retry(b.max_attempts - 1));
        assert!(!b.may_retry(b.max_attempts));
    }

    proptest! {
        #[test]
        fn delay_stays_within_half_and_full_ceiling(
            base_ms in 1u64..5_000, max_ms in 1u64..60_000, attempt in 0u32..64
        ) {
            let b = Backoff {
                base: Duration::from_millis(base_ms),
                max: Duration::from_millis(max_ms),
                max_attempts: 3,
            };
            let ceiling = b.ceiling(attempt);
            prop_assert!(ceiling <= b.max);
            let d = b.delay(attempt);
            prop_assert!(d <= ceiling, "{d:?} > {ceiling:?}");
            prop_assert!(d >= ceiling / 2, "{d:?} < half of {ceiling:?}");
        }
    }
}
