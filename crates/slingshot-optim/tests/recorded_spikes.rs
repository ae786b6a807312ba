//! The spike detector on recorded runs (`tests/data/*.csv`: step, loss, `||mu_G||`, `||W_G||`
//! and collapsed fraction of every logged step, copied from `metrics.csv`):
//! - the README's demo (`modular-division`, flex, 12,000 steps): its f32 spike stays at 11,020,
//!   its f64-loss arm has no event;
//! - addition mod 113 (issue 17 §5: width 200, depth 2, full batch, lr 5e-4, beta2 0.99,
//!   eps 1e-25, no classifier bias, 8,000 steps, flex): the f64-loss arm's loss jumps from
//!   2e-16 to 5e-9 at step 7,380 while `||mu_G||` climbs from 65 to 760. The old fixed floor
//!   (`min_loss = 1e-3`) hid that spike; judged against f64's resolution it is found.

use slingshot_numerics::FloatFormat;
use slingshot_optim::{NfiObservation, SpikeDetector, SpikeDetectorConfig, SpikeKind};

struct Row {
    step: u64,
    loss: f64,
    nfi: NfiObservation,
}

fn curve(name: &str) -> Vec<Row> {
    let path = format!("{}/tests/data/{name}.csv", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            let v: Vec<f64> = line.split(',').map(|f| f.parse().unwrap()).collect();
            Row {
                step: v[0] as u64,
                loss: v[1],
                nfi: NfiObservation {
                    mu_g_norm: v[2],
                    w_g_norm: v[3],
                    collapsed_fraction: v[4],
                },
            }
        })
        .collect()
}

fn replay(name: &str, config: SpikeDetectorConfig) -> SpikeDetector {
    let mut d = SpikeDetector::try_new(config).unwrap();
    for r in curve(name) {
        d.observe_loss(r.step, r.loss);
        d.observe_nfi(r.step, r.nfi);
    }
    d
}

/// The first format's floor: a fixed `min_loss = 1e-3`, no resolution.
fn old_floor() -> SpikeDetectorConfig {
    SpikeDetectorConfig {
        min_loss: 1e-3,
        loss_resolution: 0.0,
        ..SpikeDetectorConfig::default()
    }
}

#[test]
fn the_demo_spike_step_does_not_change() {
    let d = replay(
        "demo-f32",
        SpikeDetectorConfig::for_format(FloatFormat::F32),
    );
    assert_eq!(d.loss_spike_steps(), vec![11_020]);
    assert_eq!(
        replay("demo-f32", old_floor()).loss_spike_steps(),
        vec![11_020]
    );
    // Feature inflation is flagged 140 steps before the spike: `||mu_G||` doubled within 500
    // steps while 18% of the rows were collapsed.
    assert_eq!(d.nfi_event_steps(), vec![10_880]);
    let nfi = d
        .events()
        .iter()
        .find(|e| e.kind == SpikeKind::Nfi)
        .unwrap();
    assert!(nfi.value >= 2.0 * nfi.reference, "{nfi:?}");
}

#[test]
fn the_demo_f64_loss_arm_has_no_event() {
    let d = replay(
        "demo-f64-loss",
        SpikeDetectorConfig::for_format(FloatFormat::F64),
    );
    assert!(d.events().is_empty(), "{:?}", d.events());
}

#[test]
fn a_spike_below_the_old_floor_is_found_against_f64s_resolution() {
    let d = replay(
        "add113-f64-loss",
        SpikeDetectorConfig::for_format(FloatFormat::F64),
    );
    assert_eq!(d.loss_spike_steps(), vec![7_380]);
    let spike = d
        .events()
        .iter()
        .find(|e| e.kind == SpikeKind::Loss)
        .unwrap();
    // From about 2e-16 to about 5e-9: seven decades, all below the old floor of 1e-3.
    assert!(
        spike.reference < 3e-16 && (1e-9..1e-8).contains(&spike.value),
        "{spike:?}"
    );
    assert!(
        replay("add113-f64-loss", old_floor())
            .loss_spike_steps()
            .is_empty()
    );
    // The NFI event comes first, while `||mu_G||` climbs with 27% of the rows collapsed.
    assert_eq!(d.nfi_event_steps(), vec![6_740]);
}

#[test]
fn the_f32_arm_of_the_same_run_has_both_kinds() {
    let d = replay(
        "add113-f32",
        SpikeDetectorConfig::for_format(FloatFormat::F32),
    );
    assert_eq!(d.loss_spike_steps(), vec![3_520, 5_890]);
    assert_eq!(d.nfi_event_steps(), vec![2_800]);
}

#[test]
fn rounding_noise_below_the_resolution_is_not_a_spike() {
    // f32 losses wandering between 1e-10 and 1e-8 (a few rows one ulp off 1) stay below
    // 10 times f32's resolution: no spike, whatever the jumps between them.
    let mut d = SpikeDetector::try_new(SpikeDetectorConfig::default()).unwrap();
    for step in 0..400u64 {
        let loss = if step % 7 == 0 { 1e-8 } else { 1e-10 };
        assert!(d.observe_loss(step, loss).is_none(), "step {step}");
    }
    // The same jumps in f64, whose resolution is 2e-16, are spikes.
    let mut d = SpikeDetector::try_new(SpikeDetectorConfig::for_format(FloatFormat::F64)).unwrap();
    for step in 0..400u64 {
        d.observe_loss(step, if step % 7 == 0 { 1e-8 } else { 1e-10 });
    }
    assert!(!d.loss_spike_steps().is_empty());
}

#[test]
fn nfi_needs_collapsed_rows() {
    let mut d = SpikeDetector::try_new(SpikeDetectorConfig::default()).unwrap();
    let obs = |mu: f64, collapsed: f64| NfiObservation {
        mu_g_norm: mu,
        w_g_norm: 1.0,
        collapsed_fraction: collapsed,
    };
    // Early training: the norm grows 10x with no collapsed row, then with one row of 256
    // (below the 1% default): no event.
    for step in 0..50u64 {
        assert!(
            d.observe_nfi(step * 10, obs(1.0 + step as f64, 0.0))
                .is_none()
        );
    }
    assert!(d.observe_nfi(500, obs(60.0, 1.0 / 256.0)).is_none());
    // The same growth with 20% collapsed is one event, however long it lasts.
    let mut d = SpikeDetector::try_new(SpikeDetectorConfig::default()).unwrap();
    let events: Vec<u64> = (0..50u64)
        .filter_map(|step| d.observe_nfi(step * 10, obs(1.0 + step as f64, 0.2)))
        .map(|e| e.step)
        .collect();
    assert_eq!(events, vec![10]);
    assert_eq!(d.events()[0].kind, SpikeKind::Nfi);
}
