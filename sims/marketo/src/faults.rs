//! Deterministic fault choice: the fault for call `n` is a pure function of
//! the seed and `n`, so a failing run can be replayed with the same seed and
//! call order.

use crate::config::{FaultConfig, FaultKind};

/// SplitMix64 finaliser: a well-mixed 64-bit hash.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The fault for call number `n`, if any.
pub fn decide(cfg: &FaultConfig, n: u64) -> Option<FaultKind> {
    if cfg.rate <= 0.0 || cfg.kinds.is_empty() {
        return None;
    }
    let h = mix(cfg.seed ^ mix(n));
    // Top 53 bits as a uniform fraction in [0, 1).
    let u = (h >> 11) as f64 / (1u64 << 53) as f64;
    if u >= cfg.rate {
        return None;
    }
    let pick = mix(h) % cfg.kinds.len() as u64;
    cfg.kinds.get(pick as usize).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_faults_and_rate_is_respected() {
        let cfg = FaultConfig::all(42, 0.2);
        let a: Vec<_> = (0..2000).map(|n| decide(&cfg, n)).collect();
        let b: Vec<_> = (0..2000).map(|n| decide(&cfg, n)).collect();
        assert_eq!(a, b);
        let hits = a.iter().filter(|f| f.is_some()).count();
        assert!((300..500).contains(&hits), "{hits}");
        let other: Vec<_> = (0..2000)
            .map(|n| decide(&FaultConfig::all(43, 0.2), n))
            .collect();
        assert_ne!(a, other);
        for k in FaultKind::ALL {
            assert!(a.contains(&Some(k)), "{k:?} never drawn");
        }
    }

    #[test]
    fn zero_rate_or_no_kinds_never_faults() {
        assert!((0..1000).all(|n| decide(&FaultConfig::all(1, 0.0), n).is_none()));
        let cfg = FaultConfig {
            seed: 1,
            rate: 1.0,
            kinds: vec![],
        };
        assert!(decide(&cfg, 0).is_none());
        let always = FaultConfig {
            seed: 1,
            rate: 1.0,
            kinds: vec![FaultKind::Code713],
        };
        assert!((0..100).all(|n| decide(&always, n) == Some(FaultKind::Code713)));
    }

    #[test]
    fn kinds_serialise_by_their_cli_names() {
        for k in FaultKind::ALL {
            let v = serde_json::to_value(k).expect("serialise");
            assert_eq!(v, serde_json::json!(k.name()));
            assert_eq!(k.name().parse::<FaultKind>(), Ok(k));
        }
    }
}
