//! The numerics crate's thresholds and simulator against burn's own `CrossEntropyLoss`.

use burn::backend::Autodiff;
use burn::tensor::backend::AutodiffBackend;
use burn_ndarray::NdArray;
use proptest::prelude::*;
use slingshot::numerics::strategies::{LogitRow, LogitRowConfig, logit_rows_mixed};
use slingshot::numerics::{
    AbsorptionThresholds, CollapsePrediction, CrossEntropySimulator, FloatFormat, SummationOrder,
};
use slingshot_tests::burn_cross_entropy;

type Cpu = Autodiff<NdArray<f32>>;

/// The anchor values measured with burn 0.21 (`shared/reference/anchors.md`): logits
/// `[m, 0, 0]`, target 0. Both burn and the simulator must give exactly these.
fn check_anchors<B: AutodiffBackend>(device: &B::Device) {
    let sim = CrossEntropySimulator::new(FloatFormat::F32, SummationOrder::Sequential);
    let r = burn_cross_entropy::<B>(device, &[16.0, 0.0, 0.0], 0);
    assert_eq!(r.loss, 2.384_185_5e-7);
    assert_eq!(r.gradient[0], -2.384_185_8e-7);
    let s = sim.simulate(&[16.0, 0.0, 0.0], 0).unwrap();
    assert_eq!(s.loss as f32, r.loss);
    assert_eq!(s.correct_class_gradient() as f32, r.gradient[0]);
    for m in [17.0f32, 20.0, 30.0] {
        let r = burn_cross_entropy::<B>(device, &[m, 0.0, 0.0], 0);
        assert_eq!(r.loss, 0.0, "m = {m}");
        assert_eq!(
            r.gradient[0], 0.0,
            "m = {m}: the correct-class gradient is exactly zero"
        );
        assert!(r.gradient[1] > 0.0 && r.gradient[2] > 0.0);
        let s = sim.simulate(&[m as f64, 0.0, 0.0], 0).unwrap();
        assert!(s.is_collapsed());
        assert_eq!(s.gradient[1] as f32, r.gradient[1], "m = {m}");
    }
}

#[test]
fn burn_ndarray_reproduces_the_anchor_values() {
    check_anchors::<Cpu>(&Default::default());
}

/// Rows near and away from the thresholds, up to 2048 classes.
fn rows() -> BoxedStrategy<LogitRow> {
    let config = LogitRowConfig {
        classes: 2..=2048,
        margin: 12.0..32.0,
        offset: -4.0..4.0,
        spread: 12.0,
    };
    logit_rows_mixed(FloatFormat::F32, config)
}

/// burn's autodiff and the simulator's PyTorch-style backward round differently: burn turns
/// `ln(sum(exp))` into `exp(s_k) * (1/S)` (about 4 roundings of relative `u`), PyTorch computes
/// `exp(s_k - ln S)`, whose rounded argument has absolute error `|log p_k| u` that `exp` turns
/// into a relative one. So the two agree within `|log p_k| + 6` ulps (1 ulp is `u` to `2u`
/// relative), which is what is asserted: about 22 ulps for a wrong class at margin 16.
fn gradient_tolerance_ulps(log_prob: f64) -> f32 {
    (log_prob.abs() + 6.0) as f32
}

fn ulps_apart(a: f32, b: f32) -> f32 {
    let ulp = FloatFormat::F32.ulp(a.abs().max(b.abs()) as f64) as f32;
    (a - b).abs() / ulp
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// burn-ndarray's loss is bit for bit the simulator's with burn-ndarray's summation order,
    /// its gradient within `gradient_tolerance_ulps`, and both respect the thresholds.
    #[test]
    fn burn_ndarray_matches_the_simulator_and_the_thresholds(row in rows()) {
        let z: Vec<f32> = row.logits.iter().map(|&v| v as f32).collect();
        let r = burn_cross_entropy::<Cpu>(&Default::default(), &z, row.label);
        let s = CrossEntropySimulator::new(FloatFormat::F32, SummationOrder::Unrolled8)
            .simulate(&row.logits, row.label)
            .unwrap();
        prop_assert_eq!(r.loss.to_bits(), (s.loss as f32).to_bits(), "K = {}", z.len());
        for (k, (&b, &g)) in r.gradient.iter().zip(&s.gradient).enumerate() {
            let d = ulps_apart(b, g as f32);
            let tol = gradient_tolerance_ulps(s.logits[k] - s.log_sum_exp);
            prop_assert!(d <= tol, "class {}: burn {:e}, simulated {:e} ({} ulps > {})", k, b, g, d, tol);
        }
        prop_assert_eq!(r.gradient[row.label] == 0.0, s.is_collapsed());
        let t = AbsorptionThresholds::new(FloatFormat::F32, z.len()).unwrap();
        match t.predict(row.margin).unwrap() {
            CollapsePrediction::Certain => {
                prop_assert_eq!(r.loss, 0.0);
                prop_assert_eq!(r.gradient[row.label], 0.0);
            }
            CollapsePrediction::Impossible => {
                prop_assert!(r.loss > 0.0, "margin {}: loss {}", row.margin, r.loss);
                prop_assert!(r.gradient[row.label] < 0.0);
            }
            CollapsePrediction::OrderDependent => {}
        }
    }
}

#[cfg(feature = "cuda")]
#[test]
fn burn_cuda_reproduces_the_anchor_values() {
    if !slingshot_tests::cuda_available() {
        eprintln!("skipped: no CUDA device");
        return;
    }
    check_anchors::<Autodiff<burn_cuda::Cuda<f32, i32>>>(&Default::default());
}
