//! Deterministic fault choice: the fault for call `n` is a pure function of
//! the seed and `n`, so a failing run replays with the same seed and order.

use crate::config::{FaultConfig, FaultKind};

/// A 64-bit integer hash with good avalanche (SplitMix64's finaliser).
pub(crate) fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The fault for call number `n`, if any.
pub fn decide(cfg: &FaultConfig, n: u64) -> Option<FaultKind> {
    if cfg.rate <= 0.0 || cfg.kinds.is_empty() {
        return None;
    }
    let h = mix(cfg.seed ^ mix(n.wrapping_add(1)));
    // 53 bits as a uniform fraction in [0, 1).
    let u = (h >> 11) as f64 / (1u64 << 53) as f64;
    if u >= cfg.rate {
        return None;
    }
    let pick = mix(h ^ 0x5bd1_e995) % cfg.kinds.len() as u64;
    cfg.kinds.get(pick as usize).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_and_near_the_rate() {
        let cfg = FaultConfig::all(7, 0.25);
        let a: Vec<_> = (0..4000).map(|n| decide(&cfg, n)).collect();
        let b: Vec<_> = (0..4000).map(|n| decide(&cfg, n)).collect();
        assert_eq!(a, b);
        let hits = a.iter().filter(|f| f.is_some()).count();
        assert!((850..1150).contains(&hits), "{hits}");
        for k in FaultKind::ALL {
            assert!(a.contains(&Some(k)), "{k:?} never drawn");
        }
        let other: Vec<_> = (0..4000)
            .map(|n| decide(&FaultConfig::all(8, 0.25), n))
            .collect();
        assert_ne!(a, other);
    }

    #[test]
    fn zero_rate_or_no_kinds_never_faults() {
        assert!((0..500).all(|n| decide(&FaultConfig::all(1, 0.0), n).is_none()));
        let none = FaultConfig {
            seed: 1,
            rate: 1.0,
            kinds: Vec::new(),
        };
        assert!(decide(&none, 3).is_none());
        let always = FaultConfig::always(FaultKind::Slow);
        assert!((0..100).all(|n| decide(&always, n) == Some(FaultKind::Slow)));
    }
}
