//! Capped exponential backoff with jitter.

use std::time::Duration;

use rand::RngExt;

/// How long to wait before another attempt, and how many attempts in all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The longest first wait.
    pub base: Duration,
    /// The longest wait of all.
    pub max: Duration,
    /// Attempts in all, the first one included.
    pub max_attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(30),
            max_attempts: 6,
        }
    }
}

impl Backoff {
    /// The longest wait after the `retry`-th failure (0-based): `base`
    /// doubled each time, at most `max`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32 << retry.min(20);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// A wait between half the ceiling and the ceiling, drawn at random, so
    /// callers that failed together do not come back together.
    pub fn delay(&self, retry: u32) -> Duration {
        let ceiling = self.ceiling(retry);
        let floor = ceiling / 2;
        let spread = u64::try_from((ceiling - floor).as_micros()).unwrap_or(u64::MAX);
        if spread == 0 {
            return ceiling;
        }
        floor + Duration::from_micros(rand::rng().random_range(0..=spread))
    }

    /// Whether another attempt may follow `attempts` made.
    pub fn may_retry(&self, attempts: u32) -> bool {
        attempts < self.max_attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_ceiling_doubles_up_to_the_cap() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_millis(700),
            max_attempts: 3,
        };
        let got: Vec<u128> = (0..5).map(|i| b.ceiling(i).as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 700, 700]);
        assert_eq!(b.ceiling(u32::MAX), Duration::from_millis(700));
        assert!(b.may_retry(2) && !b.may_retry(3));
    }

    proptest! {
        #[test]
        fn a_delay_lies_between_half_and_all_of_its_ceiling(
            base in 0u64..10_000, max in 0u64..100_000, retry in 0u32..100
        ) {
            let b = Backoff {
                base: Duration::from_millis(base),
                max: Duration::from_millis(max),
                max_attempts: 1,
            };
            let c = b.ceiling(retry);
            let d = b.delay(retry);
            prop_assert!(d <= c && d >= c / 2);
        }
    }
}
