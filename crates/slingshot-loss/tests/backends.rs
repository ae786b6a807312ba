//! The loss on every CPU backend burn 0.21 ships, through burn's bounds alone:
//!
//! - burn-flex: its fused host kernel against its portable kernel, and against ndarray's, within
//!   the tolerance of `docs/loss.md` (`common::compare`); flex sums in its own order, so the two
//!   kernels are not bit for bit there;
//! - burn-candle (no fused kernel, and not an `Autodiff` type the loss knows: the gradient is
//!   injected): against ndarray's portable kernel within the same tolerance;
//! - the injected gradient against the one-node gradient on the same arithmetic, bit for bit:
//!   `Autodiff<NdArray<f32, i32>>` is not in the known list, `Autodiff<NdArray<f32, i64>>` is;
//! - collapse decisions equal on all of them where the summation order cannot decide.

// burn-candle 0.21 is deprecated upstream, but burn still ships it: covered while it does.
#![allow(deprecated)]

mod common;

use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use burn_candle::Candle;
use burn_flex::Flex;
use burn_ndarray::NdArray;
use common::compare::{SHAPES, check_collapse_decisions, compare_all, compare_backends};
use common::{per_row, run};
use slingshot_loss::{CollapseAwareCrossEntropyConfig, LossPrecision, LossReduction, Normalizer};
use slingshot_numerics::FloatFormat;

type AdFlex = Autodiff<Flex>;
type AdCandle = Autodiff<Candle>;
type AdNd = Autodiff<NdArray>;
/// Same arithmetic as `AdNd`, but an autodiff type outside the loss's list: the injected path.
type AdNdI32 = Autodiff<NdArray<f32, i32>>;

const PRECISIONS: [(LossPrecision, FloatFormat); 3] = [
    (LossPrecision::Native, FloatFormat::F32),
    (LossPrecision::F32, FloatFormat::F32),
    (LossPrecision::F64, FloatFormat::F64),
];

#[test]
fn flex_fused_kernel_matches_the_portable_kernels() {
    compare_all::<AdFlex>(&SHAPES[..3], &PRECISIONS, FloatFormat::F32);
    compare_backends::<AdFlex, AdNd>(&SHAPES[..2], &PRECISIONS, FloatFormat::F32);
    check_collapse_decisions::<AdFlex>();
}

#[test]
fn candle_matches_ndarray() {
    compare_backends::<AdCandle, AdNd>(&SHAPES[..2], &PRECISIONS[..2], FloatFormat::F32);
    check_collapse_decisions::<AdCandle>();
}

/// burn-candle's reductions read storage as its own float element, so a loss in another dtype
/// is refused with a typed error instead of a panic inside burn-candle.
#[test]
fn candle_refuses_a_loss_in_another_float_type() {
    let device = Default::default();
    let z = Tensor::<AdCandle, 2>::from_floats([[1.0, 0.0, 0.0]], &device);
    let t = Tensor::<AdCandle, 1, Int>::from_ints([0], &device);
    let err = CollapseAwareCrossEntropyConfig::new()
        .with_precision(LossPrecision::F64)
        .init::<AdCandle>(&device)
        .try_forward(z, t)
        .unwrap_err();
    assert!(err.to_string().contains("Candle<f64>"), "{err}");
}

/// The paper's anchor `[m, 0, 0]` on each backend: at 16 a gradient, from 17 on exactly none
/// for the correct class while the others keep theirs.
#[test]
fn anchors_on_every_cpu_backend() {
    fn anchors<B: burn::tensor::backend::AutodiffBackend>() {
        let r = run::<B>(&per_row(), &[16.0, 0.0, 0.0], 3, &[0]);
        assert_eq!(
            r.loss[0] as f32,
            2.384_185_5e-7,
            "{}",
            B::name(&Default::default())
        );
        assert!(r.grad[0] < 0.0);
        for m in [17.0, 20.0, 30.0] {
            let r = run::<B>(&per_row(), &[m, 0.0, 0.0], 3, &[0]);
            assert_eq!((r.loss[0], r.grad[0]), (0.0, 0.0), "m = {m}");
            assert!(r.grad[1] > 0.0, "m = {m}");
            assert_eq!(r.summary.unwrap().collapsed_fraction, 1.0);
        }
    }
    anchors::<AdNd>();
    anchors::<AdNdI32>();
    anchors::<AdFlex>();
    anchors::<AdCandle>();
}

/// Every option, fused or portable, through the injected gradient equals the one-node
/// gradient bit for bit when the upstream gradient is one.
#[test]
fn the_injected_gradient_equals_the_node_gradient() {
    let (logits, targets) = common::compare::rows(12, 37, 6.0, 30.0, 3);
    let base = CollapseAwareCrossEntropyConfig::new;
    let mut configs = vec![
        base().with_smoothing(Some(0.1)),
        base().with_normalizer(Normalizer::StableMax),
        base().with_z_loss(1e-3),
        base().with_weights(Some((0..37).map(|c| 0.5 + c as f32 / 37.0).collect())),
        base().with_pad_tokens(Some(vec![targets[1], targets[4]])),
        base().with_precision(LossPrecision::BF16),
    ];
    configs.extend(common::compare::covered_configs(&[
        LossPrecision::Native,
        LossPrecision::F64,
    ]));
    for config in configs {
        let node = run::<AdNd>(&config, &logits, 37, &targets);
        let injected = run::<AdNdI32>(&config, &logits, 37, &targets);
        let bits = |v: &[f64]| v.iter().map(|x| (*x as f32).to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&node.loss), bits(&injected.loss), "{config:?}");
        assert_eq!(bits(&node.grad), bits(&injected.grad), "{config:?}");
        assert_eq!(node.collapsed, injected.collapsed, "{config:?}");
    }
}

/// burn-candle's reductions read storage as its own element: the bf16 loss there is emulated
/// in f32 (as on ndarray), so it equals ndarray's emulated bf16 loss bit for bit.
#[test]
fn candle_emulates_bf16() {
    let config = per_row().with_precision(LossPrecision::BF16);
    let logits = [3.0, 1.0, 0.0, 0.5, 9.0, 1.0];
    let a = run::<AdCandle>(&config, &logits, 3, &[0, 1]);
    let b = run::<AdNd>(&config, &logits, 3, &[0, 1]);
    assert_eq!(a.loss, b.loss);
    assert_eq!(a.grad, b.grad);
}

/// Without autodiff the forward is the same on flex and candle as under autodiff.
#[test]
fn forward_without_autodiff() {
    fn loss<B: Backend>() -> Vec<f32> {
        let device = Default::default();
        let z = Tensor::<B, 2>::from_data(
            TensorData::new(vec![20.0f32, 0.0, 0.0, 1.0, 2.0, 0.5], [2, 3]),
            (&device, burn::tensor::DType::F32),
        );
        let t = Tensor::<B, 1, Int>::from_ints([0, 1], &device);
        let out = per_row().init::<B>(&device).forward_with_stats(z, t);
        assert_eq!(out.stats.collapsed_rows(), vec![true, false]);
        out.loss.into_data().to_vec::<f32>().unwrap()
    }
    let want = loss::<NdArray>();
    assert_eq!(want[0], 0.0);
    for got in [
        loss::<Flex>(),
        loss::<Candle>(),
        loss::<AdFlex>(),
        loss::<AdCandle>(),
    ] {
        assert!(
            (got[1] - want[1]).abs() <= 2.0 * f32::EPSILON * want[1],
            "{got:?}"
        );
        assert_eq!(got[0], 0.0);
    }
}

/// The statistics are in the loss's compute dtype; the typed accessors convert.
#[test]
fn statistics_read_in_any_float_type() {
    let device = Default::default();
    let z = Tensor::<AdFlex, 2>::from_floats([[20.0, 0.0, 1.0]], &device);
    let t = Tensor::<AdFlex, 1, Int>::from_ints([0], &device);
    let out = per_row()
        .with_reduction(LossReduction::None)
        .with_precision(LossPrecision::F64)
        .init::<AdFlex>(&device)
        .forward_with_stats(z, t);
    assert_eq!(out.stats.dtype(), burn::tensor::DType::F64);
    assert_eq!(out.stats.margins::<f32>(), vec![19.0f32]);
    assert_eq!(out.stats.margins::<f64>(), vec![19.0f64]);
    let residual = out.stats.residual_masses::<f64>()[0];
    let want = (-20f64).exp() + (-19f64).exp();
    assert!(
        (residual - want / (1.0 + want)).abs() <= 1e-15 * want,
        "{residual:e}"
    );
    assert_eq!(out.stats.collapsed_rows(), vec![false]);
    assert_eq!(out.stats.zero_loss_rows(), vec![false]);
}
