//! The anchors of `shared/reference/anchors.md`, zero-sum projection, StableMax, 3-D logits,
//! statistics, and every bad input.

mod common;

use burn::tensor::{DType, Int, Tensor, TensorData};
use burn_ndarray::NdArray;
use common::{Ad32, U32, per_row, run};
use slingshot_loss::{
    CollapseAwareCrossEntropyConfig, CollapseSummary, LossError, LossPrecision, LossReduction,
    Normalizer,
};

#[test]
fn f32_anchor_margin_16_is_not_collapsed() {
    let r = run::<Ad32>(&per_row(), &[16.0, 0.0, 0.0], 3, &[0]);
    assert_eq!(r.loss[0] as f32, 2.384_185_5e-7);
    assert_eq!(r.grad[0] as f32, -2.384_185_8e-7);
    assert_eq!(r.collapsed, vec![false]);
}

#[test]
fn f32_anchor_margins_17_20_30_collapse_with_zero_correct_class_gradient() {
    for (m, wrong) in [(17.0, 4.14e-8), (20.0, 2.06e-9), (30.0, 9.36e-14)] {
        let r = run::<Ad32>(&per_row(), &[m, 0.0, 0.0], 3, &[0]);
        assert_eq!(r.loss[0], 0.0, "m = {m}");
        assert_eq!(r.grad[0], 0.0, "m = {m}: exactly zero");
        assert!(
            (r.grad[1] - wrong).abs() < 2e-3 * wrong,
            "m = {m}: {}",
            r.grad[1]
        );
        let s = r.summary.unwrap();
        assert_eq!(s.collapsed_fraction, 1.0);
        assert_eq!(s.zero_loss_fraction, 1.0);
        assert_eq!(s.min_margin, m);
        // The row's gradient no longer sums to zero: the broken zero-sum constraint.
        assert!(r.grad.iter().sum::<f64>() > 0.0);
    }
}

/// anchors.md: burn's mean loss of a collapsed row is -0.0 (it negates after reducing, as
/// PyTorch does); ours is the same bits with either kernel, and +0.0 would not be.
#[test]
fn collapsed_mean_and_sum_losses_are_negative_zero_like_burns() {
    for reduction in [LossReduction::Mean, LossReduction::Sum] {
        let config = CollapseAwareCrossEntropyConfig::new().with_reduction(reduction);
        let r = run::<Ad32>(&config, &[17.0, 0.0, 0.0, 30.0, 0.0, 0.0], 3, &[0, 0]);
        assert_eq!(
            (r.loss[0] as f32).to_bits(),
            (-0.0f32).to_bits(),
            "{reduction:?}"
        );
    }
    // Per row, the loss is -lp = -(+0.0) as well.
    let r = run::<Ad32>(&per_row(), &[17.0, 0.0, 0.0], 3, &[0]);
    assert_eq!((r.loss[0] as f32).to_bits(), (-0.0f32).to_bits());
}

#[test]
fn f64_loss_precision_gives_the_f64_gradient_to_f32_logits() {
    let config = per_row().with_precision(LossPrecision::F64);
    let r = run::<Ad32>(&config, &[20.0, 0.0, 0.0], 3, &[0]);
    let e = (-20f64).exp();
    let exact = -2.0 * e / (1.0 + 2.0 * e);
    assert_eq!(r.grad[0] as f32, exact as f32); // -4.12e-9: rounded once
    assert!((r.grad[0] + 4.12e-9).abs() < 1e-11);
    assert_eq!(r.collapsed, vec![false]);
    assert!(r.loss[0] > 0.0);
}

#[test]
fn zero_sum_projection_makes_every_row_sum_to_zero() {
    let config = per_row().with_zero_sum_projection(true);
    let logits = [17.0, 0.0, 0.0, 30.0, 1.0, -2.0, 0.3, 0.2, 0.1];
    let plain = run::<Ad32>(&per_row(), &logits, 3, &[0, 0, 2]);
    let projected = run::<Ad32>(&config, &logits, 3, &[0, 0, 2]);
    for i in 0..3 {
        let row = &projected.grad[i * 3..i * 3 + 3];
        let before = &plain.grad[i * 3..i * 3 + 3];
        let mean = before.iter().map(|&g| g as f32).sum::<f32>() / 3.0;
        // Each entry is g - mean(g), rounded once.
        for (p, b) in row.iter().zip(before) {
            assert_eq!(*p as f32, *b as f32 - mean);
        }
        // So the row sums to zero up to the rounding of those three subtractions.
        let scale = before.iter().fold(0.0f64, |a, &b| a.max(b.abs()));
        assert!(
            row.iter().sum::<f64>().abs() <= 3.0 * U32 * scale.max(f64::MIN_POSITIVE),
            "row {i}: {row:?}"
        );
    }
    // Under collapse the correct class now receives -epsilon * (K-1)/K instead of 0.
    assert!(projected.grad[0] < 0.0);
}

#[test]
fn stablemax_matches_its_definition_and_reports_collapse() {
    let config = per_row().with_normalizer(Normalizer::StableMax);
    let r = run::<Ad32>(&config, &[2.0, -1.0, 0.5], 3, &[0]);
    // s = [3, 1/2, 3/2], S = 5, loss = -ln(3/5)
    assert!((r.loss[0] - (5.0f64 / 3.0).ln()).abs() < 4.0 * U32);
    // d/dz_k = s'(z_k)/S - [k=r] s'(z_r)/s(z_r): [1/5 - 1/3, (1/4)/5, 1/5]
    let expect = [0.2 - 1.0 / 3.0, 0.05, 0.2];
    for (g, e) in r.grad.iter().zip(expect) {
        assert!((g - e).abs() < 4.0 * U32, "{g} vs {e}");
    }
    // StableMax collapses too: s(z_r) absorbs the rest once it is 2^24 times larger.
    let big = run::<Ad32>(&config, &[3.0e7, -1.0, 0.0], 3, &[0]);
    assert_eq!(big.collapsed, vec![true]);
    assert_eq!(big.loss[0], 0.0);
}

#[test]
fn three_d_logits_equal_the_flattened_rows() {
    let device = Default::default();
    let values: Vec<f32> = (0..2 * 3 * 5)
        .map(|i| ((i * 7 % 11) as f32) * 0.9 - 4.0)
        .collect();
    let targets: Vec<i64> = vec![0, 4, 2, 1, 3, 3];
    let loss = CollapseAwareCrossEntropyConfig::new()
        .with_reduction(LossReduction::None)
        .init::<NdArray>(&device);
    let z3 = Tensor::<NdArray, 3>::from_data(
        TensorData::new(values.clone(), [2, 3, 5]),
        (&device, DType::F32),
    );
    let t2 =
        Tensor::<NdArray, 2, Int>::from_data(TensorData::new(targets.clone(), [2, 3]), &device);
    let z2 =
        Tensor::<NdArray, 2>::from_data(TensorData::new(values, [6, 5]), (&device, DType::F32));
    let t1 = Tensor::<NdArray, 1, Int>::from_data(TensorData::new(targets, [6]), &device);
    let a = loss.forward_3d_with_stats(z3, t2);
    let b = loss.forward_with_stats(z2, t1);
    assert_eq!(a.loss.into_data(), b.loss.into_data());
    assert_eq!(a.stats.collapsed.into_data(), b.stats.collapsed.into_data());
}

#[test]
fn statistics_describe_the_batch() {
    // Row 0 collapsed (margin 20), row 1 not (margin 1), row 2 mislabelled (margin -2).
    let r = run::<Ad32>(
        &per_row(),
        &[20.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 2.0, 0.0],
        3,
        &[0, 0, 0],
    );
    assert_eq!(r.collapsed, vec![true, false, false]);
    let s = r.summary.unwrap();
    assert!((s.collapsed_fraction - 1.0 / 3.0).abs() < 1e-7);
    assert!((s.zero_loss_fraction - 1.0 / 3.0).abs() < 1e-7);
    assert_eq!(s.min_margin, -2.0);
    assert!((s.mean_margin - 19.0 / 3.0).abs() < 1e-5);
    let eps1 = 2.0 / (std::f64::consts::E + 2.0); // residual mass of row 1
    let e2 = 2f64.exp();
    let eps2 = (e2 + 1.0) / (e2 + 2.0); // row 2: p = [1, e^2, 1] / (e^2 + 2)
    assert!(
        (s.max_residual_mass - eps2.max(eps1)).abs() < 1e-6,
        "{}",
        s.max_residual_mass
    );
    assert!((s.mean_logit - 23.0 / 9.0).abs() < 1e-6);
}

#[test]
fn merged_chunk_statistics_equal_the_whole_batchs() {
    // Five rows with every kind of margin, split 2 + 3 as a chunked step splits its batch.
    let logits = [
        20.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 2.0, 0.0, 40.0, -3.0, 1.0, 0.5, 0.25, -7.0,
    ];
    let labels = [0, 0, 0, 0, 1];
    let whole = run::<Ad32>(&per_row(), &logits, 3, &labels)
        .summary
        .unwrap();
    let first = run::<Ad32>(&per_row(), &logits[..6], 3, &labels[..2])
        .summary
        .unwrap();
    let second = run::<Ad32>(&per_row(), &logits[6..], 3, &labels[2..])
        .summary
        .unwrap();
    let merged = CollapseSummary::merge(&[(first, 2), (second, 3), (first, 0)]);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * b.abs().max(1.0);
    for (name, m, w) in [
        (
            "collapsed",
            merged.collapsed_fraction,
            whole.collapsed_fraction,
        ),
        (
            "zero loss",
            merged.zero_loss_fraction,
            whole.zero_loss_fraction,
        ),
        (
            "mean eps",
            merged.mean_residual_mass,
            whole.mean_residual_mass,
        ),
        ("max eps", merged.max_residual_mass, whole.max_residual_mass),
        ("min margin", merged.min_margin, whole.min_margin),
        ("mean margin", merged.mean_margin, whole.mean_margin),
        ("mean lse", merged.mean_log_sum_exp, whole.mean_log_sum_exp),
        ("mean logit", merged.mean_logit, whole.mean_logit),
    ] {
        assert!(close(m, w), "{name}: merged {m} vs whole {w}");
    }
    assert!(close(merged.collapsed_fraction, 0.4));
    assert!(CollapseSummary::merge(&[]).mean_logit.is_nan());
}

fn loss32() -> slingshot_loss::CollapseAwareCrossEntropy<NdArray> {
    CollapseAwareCrossEntropyConfig::new().init(&Default::default())
}

/// With the opt-in input checks.
fn checked32() -> slingshot_loss::CollapseAwareCrossEntropy<NdArray> {
    CollapseAwareCrossEntropyConfig::new()
        .with_check_inputs(true)
        .init(&Default::default())
}

fn tensors(
    values: &[f32],
    shape: [usize; 2],
    targets: &[i64],
) -> (Tensor<NdArray, 2>, Tensor<NdArray, 1, Int>) {
    let device = Default::default();
    (
        Tensor::from_data(
            TensorData::new(values.to_vec(), shape),
            (&device, DType::F32),
        ),
        Tensor::from_data(TensorData::new(targets.to_vec(), [targets.len()]), &device),
    )
}

#[test]
fn bad_inputs_are_errors_that_say_what_was_wrong() {
    let l = checked32();
    let (z, t) = tensors(&[1.0, 2.0, 3.0, 4.0], [2, 2], &[0, 2]);
    let e = l.try_forward(z, t).unwrap_err();
    assert_eq!(
        e,
        LossError::TargetOutOfRange {
            classes: 2,
            count: 1,
            min: 0,
            max: 2
        }
    );
    assert_eq!(
        e.to_string(),
        "targets must lie in [0, 2): found 1 outside (smallest 0, largest 2)"
    );
    let (z, t) = tensors(&[1.0, 2.0, 3.0, 4.0], [2, 2], &[-1, 0]);
    assert!(matches!(
        l.try_forward(z, t),
        Err(LossError::TargetOutOfRange {
            count: 1,
            min: -1,
            ..
        })
    ));
    let (z, t) = tensors(&[1.0, 2.0, 3.0, 4.0], [2, 2], &[0]);
    assert_eq!(
        l.try_forward(z, t).unwrap_err(),
        LossError::ShapeMismatch {
            logits_rows: 2,
            targets_rows: 1
        }
    );
    let (z, t) = tensors(&[1.0, 2.0], [2, 1], &[0, 0]);
    assert_eq!(
        l.try_forward(z, t).unwrap_err(),
        LossError::TooFewClasses { classes: 1 }
    );
    assert_eq!(
        LossError::TooFewClasses { classes: 1 }.to_string(),
        "logits have 1 class; a cross-entropy needs at least 2"
    );
    assert_eq!(
        LossError::TooFewClasses { classes: 0 }.to_string(),
        "logits have 0 classes; a cross-entropy needs at least 2"
    );
    let (z, t) = tensors(&[], [0, 3], &[]);
    assert_eq!(l.try_forward(z, t).unwrap_err(), LossError::EmptyBatch);
    let (z, t) = tensors(&[1.0, f32::NAN, f32::INFINITY, 0.0], [2, 2], &[0, 1]);
    assert_eq!(
        l.try_forward(z, t).unwrap_err(),
        LossError::NonFiniteLogits { count: 2 }
    );
}

#[test]
#[should_panic(expected = "logits contain 1 non-finite values")]
fn forward_panics_with_the_same_message() {
    let (z, t) = tensors(&[1.0, f32::NAN], [1, 2], &[0]);
    checked32().forward(z, t);
}

/// The default does no device read per forward: non-finite logits are not looked for (the
/// loss is NaN), while shapes, which need no read, are still checked.
#[test]
fn input_checks_are_opt_in() {
    let (z, t) = tensors(&[1.0, f32::NAN], [1, 2], &[0]);
    assert!(loss32().try_forward(z, t).unwrap().into_scalar().is_nan());
    let (z, t) = tensors(&[1.0, 2.0, 3.0, 4.0], [2, 2], &[0]);
    assert!(matches!(
        loss32().try_forward(z, t),
        Err(LossError::ShapeMismatch { .. })
    ));
}

#[test]
fn bad_config_values_are_rejected() {
    let device = Default::default();
    let err = |c: CollapseAwareCrossEntropyConfig| c.try_init::<NdArray>(&device).unwrap_err();
    // burn's interval: [0, 1], both ends included.
    for ok in [0.0, 1.0] {
        let c = CollapseAwareCrossEntropyConfig::new().with_smoothing(Some(ok));
        assert!(c.try_init::<NdArray>(&device).is_ok());
    }
    assert_eq!(
        err(CollapseAwareCrossEntropyConfig::new().with_smoothing(Some(1.5))),
        LossError::InvalidLabelSmoothing(1.5)
    );
    assert_eq!(
        err(CollapseAwareCrossEntropyConfig::new().with_smoothing(Some(-0.5))),
        LossError::InvalidLabelSmoothing(-0.5)
    );
    assert_eq!(
        err(CollapseAwareCrossEntropyConfig::new().with_weights(Some(vec![1.0, 0.0]))),
        LossError::InvalidWeight {
            class: 1,
            weight: 0.0
        }
    );
    for c in [
        CollapseAwareCrossEntropyConfig::new().with_weights(Some(vec![1.0, 2.0])),
        CollapseAwareCrossEntropyConfig::new().with_pad_tokens(Some(vec![0])),
    ] {
        assert!(matches!(
            err(c.with_z_loss(1e-4)),
            LossError::IncompatibleOptions(_)
        ));
    }
    assert_eq!(
        err(CollapseAwareCrossEntropyConfig::new().with_weights(Some(vec![f32::NAN]))).to_string(),
        "weights[0] = NaN is invalid; class weights must be finite and > 0"
    );
    assert_eq!(
        err(CollapseAwareCrossEntropyConfig::new().with_z_loss(-1e-4)),
        LossError::InvalidZLoss(-1e-4)
    );
    assert!(
        err(CollapseAwareCrossEntropyConfig::new().with_z_loss(f64::NAN))
            .to_string()
            .contains("z_loss = NaN")
    );
}

#[test]
#[should_panic(expected = "smoothing = 1.5 is invalid")]
fn init_panics_on_a_bad_config() {
    CollapseAwareCrossEntropyConfig::new()
        .with_smoothing(Some(1.5))
        .init::<NdArray>(&Default::default());
}

#[test]
fn the_loss_runs_without_autodiff_too() {
    let (z, t) = tensors(&[20.0, 0.0, 0.0], [1, 3], &[0]);
    let out = loss32().forward_with_stats(z, t);
    assert_eq!(out.loss.into_scalar(), 0.0);
    assert_eq!(out.stats.summary().collapsed_fraction, 1.0);
}
