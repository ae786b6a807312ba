//! The fused CubeCL kernel executed on wgpu, so that its logic is tested on machines without a
//! GPU: any Vulkan adapter will do, a CPU one included (Debian:
//! `apt-get install mesa-vulkan-drivers`, Mesa's lavapipe). Run with
//! `cargo test -p slingshot-loss --features wgpu --test wgpu`; skips itself (with a message)
//! where no adapter can be initialised.
//!
//! WGSL has no f64, so this covers f32 logits computed in f32 (the `Native` and `F32`
//! precisions), both forward paths (rows read twice up to 16 KiB, once beyond), every reduction
//! and zero-sum projection, against the portable kernel on the same adapter within the bounds of
//! `common::compare`, on `Wgpu` and on burn's default `Fusion<Wgpu>`; and the typed error that
//! `LossPrecision::F64` gets there. The CUDA suite (`tests/cuda.rs`) adds f64 and bf16/f16
//! logits.

#![cfg(feature = "wgpu")]

mod common;

use burn::backend::Autodiff;
use burn::tensor::{Int, Tensor, TensorData};
use burn_fusion::Fusion;
use burn_ndarray::NdArray;
use burn_wgpu::Wgpu;
use common::compare::{SHAPES, check_collapse_decisions, compare_all, compare_backends};
use common::{per_row, run, to_f64};
use slingshot_loss::{CollapseAwareCrossEntropyConfig, LossError, LossPrecision};
use slingshot_numerics::FloatFormat;

type W = Autodiff<Wgpu<f32, i32>>;
/// burn's default `Wgpu` (feature `fusion`).
type WF = Autodiff<Fusion<Wgpu<f32, i32>>>;

fn adapter() -> bool {
    let ok = std::panic::catch_unwind(|| {
        let device = Default::default();
        Tensor::<Wgpu<f32, i32>, 1>::from_floats([1.0, 2.0], &device)
            .sum()
            .into_scalar()
    })
    .is_ok();
    if !ok {
        eprintln!("skipped: no wgpu adapter");
    }
    ok
}

#[test]
fn fused_matches_portable_on_wgpu() {
    if !adapter() {
        return;
    }
    compare_all::<W>(
        &SHAPES,
        &[
            (LossPrecision::Native, FloatFormat::F32),
            (LossPrecision::F32, FloatFormat::F32),
        ],
        FloatFormat::F32,
    );
}

/// The fused kernel is what runs: with the input checks off, a label outside the row gives that
/// row a NaN loss (the portable kernel would gather out of bounds), and the other rows are right.
#[test]
fn the_fused_kernel_runs_on_wgpu() {
    if !adapter() {
        return;
    }
    let device = Default::default();
    let z = Tensor::<W, 2>::from_data(
        TensorData::new(vec![1.0f32, 0.0, 0.0, 2.0, 1.0, 0.0], [2, 3]),
        &device,
    );
    let t = Tensor::<W, 1, Int>::from_data(TensorData::new(vec![0i64, 5], [2]), &device);
    let loss = per_row().init::<W>(&device).forward(z, t);
    let loss = to_f64(loss.inner());
    let want = (1f64.exp() + 2.0).ln() - 1.0;
    assert!((loss[0] - want).abs() < 1e-6, "{loss:?}");
    assert!(loss[1].is_nan(), "{loss:?}");
}

/// Collapse decisions at margins where every summation order agrees, on both forward paths;
/// the `[m, 0, 0]` anchors' losses (the gradient's last bits depend on the adapter's `exp`).
#[test]
fn fused_collapse_decisions_on_wgpu() {
    if !adapter() {
        return;
    }
    let r = run::<W>(&per_row(), &[16.0, 0.0, 0.0], 3, &[0]);
    assert_eq!(r.loss[0] as f32, 2.384_185_5e-7);
    assert!(r.grad[0] < 0.0);
    for m in [17.0, 20.0, 30.0] {
        let r = run::<W>(&per_row(), &[m, 0.0, 0.0], 3, &[0]);
        assert_eq!((r.loss[0], r.grad[0]), (0.0, 0.0), "m = {m}");
        assert_eq!(r.summary.unwrap().collapsed_fraction, 1.0);
    }
    check_collapse_decisions::<W>();
}

/// Under fusion the loss runs on the inner backend: the fused kernel against the portable one,
/// and against the portable kernel of the fusion-free backend.
#[test]
fn fused_matches_portable_under_fusion() {
    if !adapter() {
        return;
    }
    let precisions = [
        (LossPrecision::Native, FloatFormat::F32),
        (LossPrecision::F32, FloatFormat::F32),
    ];
    compare_all::<WF>(&SHAPES[..3], &precisions, FloatFormat::F32);
    compare_backends::<WF, W>(&SHAPES[..2], &precisions, FloatFormat::F32);
    compare_backends::<WF, Autodiff<NdArray>>(&SHAPES[..2], &precisions, FloatFormat::F32);
    check_collapse_decisions::<WF>();
}

/// The label smoothing, class weights and pad tokens (the portable kernel) under fusion equal
/// the same loss without fusion within f32 rounding.
#[test]
fn portable_options_under_fusion() {
    if !adapter() {
        return;
    }
    let config = CollapseAwareCrossEntropyConfig::new()
        .with_smoothing(Some(0.1))
        .with_weights(Some(vec![1.0, 2.0, 0.5]))
        .with_pad_tokens(Some(vec![2]));
    let logits = [3.0, 1.0, 0.0, 0.5, 2.0, 1.0, 25.0, 0.0, 0.0];
    let a = run::<WF>(&config, &logits, 3, &[0, 1, 2]);
    let b = run::<Autodiff<NdArray>>(&config, &logits, 3, &[0, 1, 2]);
    for (x, y) in a.loss.iter().zip(&b.loss).chain(a.grad.iter().zip(&b.grad)) {
        assert!((x - y).abs() <= 1e-6 * (1.0 + y.abs()), "{a:?} vs {b:?}");
    }
}

/// WGSL has no f64: the f64 loss is a typed error naming what to use instead, with and without
/// fusion, never a panic inside burn.
#[test]
fn f64_loss_is_a_typed_error_on_wgsl() {
    if !adapter() {
        return;
    }
    fn check<B: burn::tensor::backend::AutodiffBackend>() {
        let device = Default::default();
        let z = Tensor::<B, 2>::from_floats([[1.0, 0.0, 0.0]], &device).require_grad();
        let t = Tensor::<B, 1, Int>::from_ints([0], &device);
        let err = CollapseAwareCrossEntropyConfig::new()
            .with_precision(LossPrecision::F64)
            .init::<B>(&device)
            .try_forward(z, t)
            .unwrap_err();
        assert!(
            matches!(err, LossError::UnsupportedPrecision { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("use LossPrecision::F32"), "{err}");
    }
    check::<W>();
    check::<WF>();
}
