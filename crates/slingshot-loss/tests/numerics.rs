//! The loss against the numerics crate: bit for bit against the simulator in every precision,
//! within derived bounds of an f64 reference, against finite differences, against burn's own
//! `CrossEntropyLoss`, and the collapse statistics against the absorption thresholds.

mod common;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{DType, Int, Tensor, TensorData};
use common::{Ad32, Ad64, U32, per_row, run, to_f64};
use proptest::prelude::*;
use slingshot_loss::{CollapseAwareCrossEntropyConfig, LossPrecision, LossReduction};
use slingshot_numerics::strategies::{LogitRowConfig, logit_rows_mixed};
use slingshot_numerics::{
    AbsorptionThresholds, CollapsePrediction, CrossEntropySimulator, FloatFormat, SummationOrder,
};

/// A batch of rows with the same class count: logits flattened, targets, and `k`.
fn batches() -> impl Strategy<Value = (Vec<f64>, Vec<usize>, usize)> {
    (2usize..64, 1usize..6, -2.0f64..1.5).prop_flat_map(|(k, n, log_scale)| {
        let scale = 10f64.powf(log_scale);
        (
            prop::collection::vec(-1.0f64..1.0, n * k)
                .prop_map(move |v| v.iter().map(|x| ((x * scale) as f32) as f64).collect()),
            prop::collection::vec(0..k, n),
            Just(k),
        )
    })
}

/// Rows near and away from the collapse thresholds, f32-exact, as one-row batches.
fn collapse_rows() -> BoxedStrategy<(Vec<f64>, usize)> {
    let config = LogitRowConfig {
        classes: 2..=512,
        margin: 10.0..30.0,
        offset: -4.0..4.0,
        spread: 12.0,
    };
    logit_rows_mixed(FloatFormat::F32, config)
        .prop_map(|r| (r.logits, r.label))
        .boxed()
}

/// Compares the loss's per-row output with the simulator, bit for bit.
fn assert_matches_simulator(
    precision: LossPrecision,
    format: FloatFormat,
    (logits, targets, k): &(Vec<f64>, Vec<usize>, usize),
) -> Result<(), TestCaseError> {
    let r = run::<Ad32>(&per_row().with_precision(precision), logits, *k, targets);
    let sim = CrossEntropySimulator::new(format, SummationOrder::Unrolled8);
    for (i, &t) in targets.iter().enumerate() {
        let s = sim.simulate(&logits[i * k..(i + 1) * k], t).unwrap();
        // Results reach the f32 logits' dtype with one rounding.
        prop_assert_eq!(
            (r.loss[i] as f32).to_bits(),
            (s.loss as f32).to_bits(),
            "row {} loss",
            i
        );
        for c in 0..*k {
            let got = r.grad[i * k + c] as f32;
            prop_assert_eq!(
                got.to_bits(),
                (s.gradient[c] as f32).to_bits(),
                "row {} class {}",
                i,
                c
            );
        }
        prop_assert_eq!(r.collapsed[i], s.is_collapsed());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn f32_loss_is_the_simulated_f32_loss_bit_for_bit(b in batches()) {
        assert_matches_simulator(LossPrecision::Native, FloatFormat::F32, &b)?;
    }

    #[test]
    fn f64_loss_is_the_simulated_f64_loss_rounded_once(b in batches()) {
        assert_matches_simulator(LossPrecision::F64, FloatFormat::F64, &b)?;
    }

    #[test]
    fn emulated_bf16_and_f16_are_the_simulated_formats_bit_for_bit(b in batches()) {
        assert_matches_simulator(LossPrecision::BF16, FloatFormat::BF16, &b)?;
        assert_matches_simulator(LossPrecision::F16, FloatFormat::F16, &b)?;
    }

    /// FP8 in the loss: the batches' logits stay below E4M3's largest finite value (448), so
    /// every row is a value of the simulator, loss and every gradient entry bit for bit.
    #[test]
    fn emulated_e4m3_and_e5m2_are_the_simulated_formats_bit_for_bit(b in batches()) {
        assert_matches_simulator(LossPrecision::E4M3, FloatFormat::E4M3, &b)?;
        assert_matches_simulator(LossPrecision::E5M2, FloatFormat::E5M2, &b)?;
    }

    /// f32 results within bounds derived from the operation sequence against an f64
    /// reference. The log-probability `lp_k = fl(s_k - ln S)` carries an absolute error of at
    /// most `u (|s_k| + |ln S| + |lp_k| + K + 4)`: the shift rounds `s_k` (`u |s_k|`); `S` has a
    /// relative error of `(K-1) u` from the sum plus `2u` from `exp`, which `ln` passes on as
    /// absolute error, and `ln` rounds (`u |ln S|`); the subtraction rounds (`u |lp_k|`).
    /// `exp` turns that into a relative error of `p_k`, plus `2u` for `exp` itself, plus `u` of
    /// absolute error for the correct class's `p - 1`.
    #[test]
    fn f32_loss_and_gradient_are_within_the_derived_bounds_of_f64((logits, targets, k) in batches()) {
        let r32 = run::<Ad32>(&per_row(), &logits, k, &targets);
        let r64 = run::<Ad64>(&per_row(), &logits, k, &targets);
        for (i, &t) in targets.iter().enumerate() {
            let row = &logits[i * k..(i + 1) * k];
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = max + row.iter().map(|z| (z - max).exp()).sum::<f64>().ln();
            let lp_err = |c: usize| {
                U32 * ((row[c] - max).abs() + (lse - max).abs() + (row[c] - lse).abs() + k as f64 + 4.0)
            };
            let tol = lp_err(t);
            prop_assert!((r32.loss[i] - r64.loss[i]).abs() <= tol, "row {}: {} vs {} (tol {})", i, r32.loss[i], r64.loss[i], tol);
            for (c, &z) in row.iter().enumerate() {
                let (g32, g64) = (r32.grad[i * k + c], r64.grad[i * k + c]);
                let p = (z - lse).exp();
                let tol = p * (lp_err(c) + 2.0 * U32) + if c == t { U32 } else { 0.0 };
                prop_assert!((g32 - g64).abs() <= tol, "row {} class {}: {:e} vs {:e} (tol {:e})", i, c, g32, g64, tol);
            }
        }
    }

    /// f64 gradients against central differences of the f64 loss, for every option that
    /// changes the gradient: smoothing, z-loss, StableMax, mean reduction. StableMax's `s` has
    /// a jump in its second derivative at 0, where central differences are only O(h): its
    /// logits are shifted off zero.
    #[test]
    fn f64_gradients_match_finite_differences(
        (logits, targets, k) in batches(),
        smoothing in prop_oneof![Just(0.0), 0.0..0.3f64],
        z_loss in prop_oneof![Just(0.0), 0.0..1e-2f64],
        stablemax in any::<bool>(),
    ) {
        let normalizer = if stablemax { slingshot_loss::Normalizer::StableMax } else { slingshot_loss::Normalizer::Softmax };
        let logits: Vec<f64> = if stablemax { logits.iter().map(|z| z + 0.37).collect() } else { logits };
        let config = CollapseAwareCrossEntropyConfig::new()
            .with_smoothing(Some(smoothing as f32))
            .with_z_loss(z_loss)
            .with_normalizer(normalizer);
        let g = run::<Ad64>(&config, &logits, k, &targets).grad;
        let loss_at = |z: &[f64]| run::<Ad64>(&config, z, k, &targets).loss[0];
        for j in 0..logits.len() {
            let h = 1e-6 * logits[j].abs().max(1.0);
            let (mut up, mut down) = (logits.clone(), logits.clone());
            up[j] += h;
            down[j] -= h;
            let (lu, ld) = (loss_at(&up), loss_at(&down));
            let fd = (lu - ld) / (2.0 * h);
            prop_assert!(
                (g[j] - fd).abs() <= 1e-7 * (1.0 + g[j].abs()),
                "entry {}: {:e} vs fd {:e} (loss {:e} / {:e}, h {:e}, logits {:?}, targets {:?})",
                j, g[j], fd, lu, ld, h, logits, targets
            );
        }
    }

    /// burn's own loss: the same forward bit for bit (mean reduction included). Gradients
    /// round differently (burn: `exp(s) * (1/S)`, PyTorch/ours: `exp(lp)`): within
    /// `|lp_k| + 8` ulps, and `4 u` absolute for the correct class (`p_r - 1` cancels).
    #[test]
    fn agrees_with_burns_cross_entropy((logits, targets, k) in batches()) {
        let device = Default::default();
        let n = targets.len();
        let z = Tensor::<Ad32, 2>::from_data(TensorData::new(logits.iter().map(|&v| v as f32).collect::<Vec<_>>(), [n, k]), (&device, DType::F32)).require_grad();
        let t = Tensor::<Ad32, 1, Int>::from_data(TensorData::new(targets.iter().map(|&t| t as i64).collect::<Vec<_>>(), [n]), &device);
        let burn_loss = CrossEntropyLossConfig::new().init(&device).forward(z.clone(), t);
        let burn_value = to_f64(burn_loss.clone().inner())[0];
        let burn_grad = to_f64(z.grad(&burn_loss.backward()).unwrap());
        let ours = run::<Ad32>(&CollapseAwareCrossEntropyConfig::new(), &logits, k, &targets);
        prop_assert_eq!((ours.loss[0] as f32).to_bits(), (burn_value as f32).to_bits());
        for (i, &tr) in targets.iter().enumerate() {
            let row = &logits[i * k..(i + 1) * k];
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = max + row.iter().map(|z| (z - max).exp()).sum::<f64>().ln();
            for c in 0..k {
                let (a, b) = (ours.grad[i * k + c] as f32, burn_grad[i * k + c] as f32);
                let ulp = FloatFormat::F32.ulp(a.abs().max(b.abs()) as f64);
                let tol = ((row[c] - lse).abs() + 8.0) * ulp + if c == tr { 4.0 * U32 / n as f64 } else { 0.0 };
                prop_assert!(((a - b) as f64).abs() <= tol, "row {} class {}: {:e} vs burn {:e}", i, c, a, b);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// What the loss reports agrees with what the numerics crate predicts.
    #[test]
    fn collapse_reports_agree_with_the_thresholds((logits, label) in collapse_rows()) {
        let k = logits.len();
        let r = run::<Ad32>(&per_row(), &logits, k, &[label]);
        let sim = CrossEntropySimulator::new(FloatFormat::F32, SummationOrder::Unrolled8)
            .simulate(&logits, label)
            .unwrap();
        prop_assert_eq!(r.collapsed[0], sim.is_collapsed());
        let margin = slingshot_numerics::margin_of(&logits, label);
        let t = AbsorptionThresholds::new(FloatFormat::F32, k).unwrap();
        match t.predict(margin).unwrap() {
            CollapsePrediction::Certain => {
                prop_assert!(r.collapsed[0]);
                prop_assert_eq!(r.loss[0], 0.0);
                prop_assert_eq!(r.grad[label], 0.0);
            }
            CollapsePrediction::Impossible => {
                prop_assert!(!r.collapsed[0]);
                prop_assert!(r.grad[label] < 0.0);
            }
            CollapsePrediction::OrderDependent => {}
        }
        let s = r.summary.unwrap();
        prop_assert_eq!(s.collapsed_fraction, if r.collapsed[0] { 1.0 } else { 0.0 });
        prop_assert_eq!(s.min_margin as f32, margin as f32);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// In every narrow format the loss computes in, what it reports as collapsed agrees with
    /// the thresholds for that format and K: certain above the certain margin (zero loss, zero
    /// correct-class gradient), impossible below the impossible one.
    #[test]
    fn narrow_format_collapse_agrees_with_the_thresholds(
        (precision, format) in prop::sample::select(vec![
            (LossPrecision::BF16, FloatFormat::BF16),
            (LossPrecision::F16, FloatFormat::F16),
            (LossPrecision::E4M3, FloatFormat::E4M3),
            (LossPrecision::E5M2, FloatFormat::E5M2),
        ]),
        seed_row in any::<prop::sample::Index>(),
        margin_fraction in 0.0f64..1.0,
        classes in 2usize..200,
    ) {
        // A row with the requested margin, exact in the format: the label at `m`, the others
        // spread at and below 0 (E4M3 has few values; keep them near the runner-up).
        let certain = slingshot_numerics::collapse_certain_at(format, classes).unwrap();
        let margin = format.round(margin_fraction * 1.5 * certain);
        let label = seed_row.index(classes);
        let logits: Vec<f64> = (0..classes)
            .map(|c| if c == label { margin } else { -format.round((c % 3) as f64 * 0.5) })
            .collect();
        let r = run::<Ad32>(&per_row().with_precision(precision), &logits, classes, &[label]);
        let m = slingshot_numerics::margin_of(&logits, label);
        let t = AbsorptionThresholds::new(format, classes).unwrap();
        match t.predict(m).unwrap() {
            CollapsePrediction::Certain => {
                prop_assert!(r.collapsed[0], "{:?} margin {} K {}", format, m, classes);
                prop_assert_eq!(r.loss[0], 0.0);
                prop_assert_eq!(r.grad[label], 0.0);
            }
            CollapsePrediction::Impossible => {
                prop_assert!(!r.collapsed[0], "{:?} margin {} K {}", format, m, classes);
                prop_assert!(r.grad[label] < 0.0);
            }
            CollapsePrediction::OrderDependent => {}
        }
    }
}

#[test]
fn mean_and_sum_reductions_scale_the_per_row_losses() {
    let logits = [1.0, 2.0, 0.5, -1.0, 0.0, 3.0];
    let rows = run::<Ad32>(&per_row(), &logits, 3, &[0, 2]);
    let mean = run::<Ad32>(&CollapseAwareCrossEntropyConfig::new(), &logits, 3, &[0, 2]);
    let sum = run::<Ad32>(
        &CollapseAwareCrossEntropyConfig::new().with_reduction(LossReduction::Sum),
        &logits,
        3,
        &[0, 2],
    );
    let total = (rows.loss[0] as f32 + rows.loss[1] as f32) as f64;
    assert_eq!(sum.loss, vec![total]);
    assert_eq!(mean.loss, vec![(total as f32 / 2.0) as f64]);
    for (m, s) in mean.grad.iter().zip(&sum.grad) {
        assert!((m * 2.0 - s).abs() <= 2.0 * U32 * s.abs());
    }
    assert_eq!(rows.grad, sum.grad);
}
