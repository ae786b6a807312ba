//! The spike detector on synthetic curves: every injected spike found at its step, nothing
//! found on noisy decaying curves.

use proptest::prelude::*;
use slingshot_optim::{OptimError, SpikeDetector, SpikeDetectorConfig, SpikeKind};

/// Uniform noise in [-1, 1), deterministic per seed.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }
}

/// A loss decaying from 1 to about 5e-5 over 5000 steps with +-30% multiplicative noise.
fn decaying(steps: u64, seed: u64) -> Vec<f64> {
    let mut noise = Noise(seed);
    (0..steps)
        .map(|t| (-(t as f64) / 500.0).exp() * (1.0 + 0.3 * noise.next()))
        .collect()
}

fn detector() -> SpikeDetector {
    SpikeDetector::try_new(SpikeDetectorConfig::default()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn no_false_positives_on_a_noisy_decaying_curve(seed in any::<u64>()) {
        let mut d = detector();
        for (t, &loss) in decaying(5000, seed).iter().enumerate() {
            d.observe_loss(t as u64, loss);
        }
        prop_assert!(d.events().is_empty(), "{:?}", d.events());
    }

    /// Spikes of height 0.5 to 2 injected at least 300 steps apart after step 1500, each decaying
    /// back over about 30 steps: found at exactly the injected steps, once each.
    #[test]
    fn finds_every_injected_spike_at_its_step(
        seed in any::<u64>(),
        gaps in prop::collection::vec(300u64..700, 1..6),
        heights in prop::collection::vec(0.5f64..2.0, 6),
    ) {
        let mut loss = decaying(5000, seed);
        let mut injected = Vec::new();
        let mut at = 1500;
        for (gap, height) in gaps.iter().zip(&heights) {
            at += gap;
            if at >= 4900 { break; }
            injected.push(at);
            for (i, l) in loss[at as usize..].iter_mut().take(60).enumerate() {
                *l += height * (-(i as f64) / 5.0).exp();
            }
        }
        let mut d = detector();
        for (t, &l) in loss.iter().enumerate() {
            d.observe_loss(t as u64, l);
        }
        prop_assert_eq!(d.loss_spike_steps(), injected);
    }

    #[test]
    fn finds_every_update_spike(seed in any::<u64>(), at in prop::collection::btree_set(1u64..2000, 1..8)) {
        let mut noise = Noise(seed);
        let mut d = detector();
        for t in 0..2000u64 {
            let base = 1e-5 * (1.0 + 0.3 * noise.next());
            d.observe_update(t, if at.contains(&t) { 40.0 * 1.3e-5 } else { base });
        }
        // Two spikes on consecutive steps: the second is not 20x the first.
        let expected: Vec<u64> = at.iter().copied().filter(|t| !at.contains(&(t - 1))).collect();
        prop_assert_eq!(d.update_spike_steps(), expected);
    }
}

#[test]
fn a_loss_leaving_exact_zero_is_a_spike() {
    let mut d = detector();
    for t in 0..200 {
        assert!(d.observe_loss(t, 0.0).is_none());
    }
    assert_eq!(d.baseline(), Some(0.0));
    // Tiny rounding-level losses after collapse are not spikes...
    assert!(d.observe_loss(200, 1e-7).is_none());
    // ...a slingshot back to 1e-2 is, once.
    let e = d.observe_loss(201, 1e-2).unwrap();
    assert_eq!((e.step, e.kind, e.reference), (201, SpikeKind::Loss, 0.0));
    assert!(d.observe_loss(202, 5e-3).is_none());
    assert_eq!(d.loss_spike_steps(), vec![201]);
}

#[test]
fn non_finite_losses_are_spikes_and_warmup_is_respected() {
    let mut d = detector();
    // No baseline yet: nothing is a spike during the warm-up.
    assert!(d.observe_loss(0, 1.0).is_none());
    assert!(d.observe_loss(1, 100.0).is_none());
    for t in 2..20 {
        d.observe_loss(t, 0.5);
    }
    assert_eq!(d.observe_loss(20, f64::NAN).map(|e| e.step), Some(20));
}

#[test]
fn bad_configs_say_what_is_allowed() {
    let err = |c: SpikeDetectorConfig| SpikeDetector::try_new(c).unwrap_err();
    let base = SpikeDetectorConfig::default();
    assert_eq!(
        err(SpikeDetectorConfig {
            loss_factor: 1.0,
            ..base
        })
        .to_string(),
        "invalid loss_factor = 1: expected a finite value > 1"
    );
    assert!(matches!(
        err(SpikeDetectorConfig {
            min_loss: -1.0,
            ..base
        }),
        OptimError::InvalidConfig {
            name: "min_loss",
            ..
        }
    ));
    assert!(matches!(
        err(SpikeDetectorConfig { window: 0, ..base }),
        OptimError::InvalidConfig { name: "window", .. }
    ));
    assert!(matches!(
        err(SpikeDetectorConfig {
            warmup: 101,
            ..base
        }),
        OptimError::InvalidConfig { name: "warmup", .. }
    ));
    assert!(matches!(
        err(SpikeDetectorConfig {
            update_factor: f64::NAN,
            ..base
        }),
        OptimError::InvalidConfig {
            name: "update_factor",
            ..
        }
    ));
    let name = |c: SpikeDetectorConfig| match err(c) {
        OptimError::InvalidConfig { name, .. } => name,
        other => panic!("{other}"),
    };
    assert_eq!(
        name(SpikeDetectorConfig {
            loss_resolution: -1e-7,
            ..base
        }),
        "loss_resolution"
    );
    assert_eq!(
        name(SpikeDetectorConfig {
            nfi_factor: 1.0,
            ..base
        }),
        "nfi_factor"
    );
    assert_eq!(
        name(SpikeDetectorConfig {
            nfi_window: 0,
            ..base
        }),
        "nfi_window"
    );
    assert_eq!(
        name(SpikeDetectorConfig {
            nfi_min_collapsed: 1.5,
            ..base
        }),
        "nfi_min_collapsed"
    );
}

/// A config written before the resolution and the NFI fields existed still reads, with
/// their defaults.
#[test]
fn an_older_config_reads_with_the_new_defaults() {
    let old =
        r#"{"loss_factor":10.0,"min_loss":0.001,"window":100,"warmup":10,"update_factor":20.0}"#;
    let c: SpikeDetectorConfig = serde_json::from_str(old).unwrap();
    assert_eq!(c.min_loss, 1e-3);
    assert_eq!(c.loss_resolution, f64::from(f32::EPSILON));
    assert_eq!(c.nfi_factor, SpikeDetectorConfig::default().nfi_factor);
}

/// Fed every 10 steps, `observe_update` compares with the update 10 steps earlier (the
/// previous call), not with the previous step's.
#[test]
fn updates_are_compared_with_the_previous_call_not_the_previous_step() {
    // An update growing 1.5x per step: no step-to-step ratio reaches 20x, but ten steps
    // compound to 1.5^10 = 57.7x.
    let update = |t: u64| 1e-6 * 1.5f64.powi(t as i32);
    let mut every_10 = detector();
    let events: Vec<_> = (0..=30)
        .step_by(10)
        .filter_map(|t| every_10.observe_update(t, update(t)))
        .collect();
    assert_eq!(every_10.update_spike_steps(), vec![10, 20, 30]);
    assert_eq!(
        (events[0].value, events[0].reference),
        (update(10), update(0))
    );
    assert_eq!(events[2].reference, update(20));

    // Fed every step, the same run has no update spike.
    let mut every_step = detector();
    for t in 0..=30 {
        every_step.observe_update(t, update(t));
    }
    assert!(every_step.update_spike_steps().is_empty());
}
