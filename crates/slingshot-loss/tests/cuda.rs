//! The loss suite on burn-cuda, for GPU sessions: `cargo test -p slingshot-loss --features cuda`.
//! Skips itself (with a message) where no CUDA device can be initialised.
//!
//! The bit-for-bit comparisons of `numerics.rs` assume burn-ndarray's summation order, so here
//! the contract is checked in its order-independent form: the anchors, the thresholds, the f64
//! reference within the derived bounds, and native bf16 against the bf16 thresholds. These run
//! the fused CubeCL kernel wherever it covers the plan (the default on burn-cuda).
//!
//! The fused kernel against the portable one on the same device, within the tolerance of
//! `docs/loss.md` (`common::compare`): f32/f64 models, every covered precision, reduction and
//! zero-sum projection, rows of 97 to 32768 classes (both the two-read and the one-read forward),
//! in and out of collapse; and bf16/f16 logits computed in f32. The same under burn's default
//! `Fusion<Cuda>`, the f64 loss included (burn's fusion compiler has no f64: the loss runs on
//! the inner backend).

#![cfg(feature = "cuda")]

mod common;

use burn::backend::Autodiff;
use burn::tensor::{bf16, f16};
use burn_cuda::{Cuda, CudaDevice};
use burn_fusion::Fusion;
use common::compare::{SHAPES, check_collapse_decisions, compare_all, compare_backends};
use common::{U32, per_row, run};
use slingshot_loss::LossPrecision;
use slingshot_numerics::{AbsorptionThresholds, CollapsePrediction, FloatFormat};

type Gpu32 = Autodiff<Cuda<f32, i32>>;
type Gpu64 = Autodiff<Cuda<f64, i32>>;
type GpuBf16 = Autodiff<Cuda<bf16, i32>>;
type GpuF16 = Autodiff<Cuda<f16, i32>>;
/// burn's default `Cuda` (feature `fusion`): the loss runs on the inner backend.
type Fused32 = Autodiff<Fusion<Cuda<f32, i32>>>;

fn gpu() -> bool {
    let ok = std::panic::catch_unwind(|| {
        let device = CudaDevice::default();
        burn::tensor::Tensor::<Cuda<f32, i32>, 1>::from_floats([1.0, 2.0], &device)
            .sum()
            .into_scalar()
    })
    .is_ok();
    if !ok {
        eprintln!("skipped: no CUDA device");
    }
    ok
}

#[test]
fn anchors_on_cuda() {
    if !gpu() {
        return;
    }
    let r = run::<Gpu32>(&per_row(), &[16.0, 0.0, 0.0], 3, &[0]);
    assert_eq!(r.loss[0] as f32, 2.384_185_5e-7);
    assert_eq!(r.grad[0] as f32, -2.384_185_8e-7);
    for m in [17.0, 20.0, 30.0] {
        let r = run::<Gpu32>(&per_row(), &[m, 0.0, 0.0], 3, &[0]);
        assert_eq!((r.loss[0], r.grad[0]), (0.0, 0.0), "m = {m}");
        assert_eq!(r.summary.unwrap().collapsed_fraction, 1.0);
    }
    let f64_loss = run::<Gpu32>(
        &per_row().with_precision(LossPrecision::F64),
        &[20.0, 0.0, 0.0],
        3,
        &[0],
    );
    assert!((f64_loss.grad[0] + 4.12e-9).abs() < 1e-11);
}

#[test]
fn thresholds_and_f64_reference_on_cuda() {
    if !gpu() {
        return;
    }
    for (k, margin) in [(97usize, 15.0), (97, 22.0), (4096, 16.0), (4096, 28.0)] {
        let mut logits = vec![0.0; k];
        logits[5] = margin;
        let t = AbsorptionThresholds::new(FloatFormat::F32, k).unwrap();
        let r = run::<Gpu32>(&per_row(), &logits, k, &[5]);
        match t.predict(margin).unwrap() {
            CollapsePrediction::Certain => assert_eq!(r.grad[5], 0.0),
            CollapsePrediction::Impossible => assert!(r.grad[5] < 0.0),
            CollapsePrediction::OrderDependent => {}
        }
        let r64 = run::<Gpu64>(&per_row(), &logits, k, &[5]);
        let tol = U32 * (margin + (k as f64).ln() + k as f64 + 4.0);
        assert!((r.loss[0] - r64.loss[0]).abs() <= tol);
    }
}

#[test]
fn native_bf16_obeys_the_bf16_thresholds() {
    if !gpu() {
        return;
    }
    let config = per_row().with_precision(LossPrecision::BF16);
    for (margin, k) in [(4.0, 97usize), (12.0, 97)] {
        let mut logits = vec![0.0; k];
        logits[0] = margin;
        let t = AbsorptionThresholds::new(FloatFormat::BF16, k).unwrap();
        let r = run::<Gpu32>(&config, &logits, k, &[0]);
        match t.predict(margin).unwrap() {
            CollapsePrediction::Certain => assert_eq!(r.grad[0], 0.0),
            CollapsePrediction::Impossible => assert!(r.grad[0] < 0.0),
            CollapsePrediction::OrderDependent => {}
        }
    }
}

#[test]
fn fused_matches_portable_f32_model_on_cuda() {
    if !gpu() {
        return;
    }
    compare_all::<Gpu32>(
        &SHAPES,
        &[
            (LossPrecision::Native, FloatFormat::F32),
            (LossPrecision::F32, FloatFormat::F32),
            (LossPrecision::F64, FloatFormat::F64),
        ],
        FloatFormat::F32,
    );
}

#[test]
fn fused_matches_portable_f64_model_on_cuda() {
    if !gpu() {
        return;
    }
    compare_all::<Gpu64>(
        &SHAPES,
        &[
            (LossPrecision::Native, FloatFormat::F64),
            (LossPrecision::F32, FloatFormat::F64),
            (LossPrecision::F64, FloatFormat::F64),
        ],
        FloatFormat::F64,
    );
}

/// bf16/f16 logits computed in f32 (`precision = F32`): read narrow, computed wide, the gradient
/// rounded once to the logits' format.
#[test]
fn fused_matches_portable_low_precision_logits_on_cuda() {
    if !gpu() {
        return;
    }
    compare_all::<GpuBf16>(
        &SHAPES,
        &[(LossPrecision::F32, FloatFormat::F32)],
        FloatFormat::BF16,
    );
    compare_all::<GpuF16>(
        &SHAPES,
        &[(LossPrecision::F32, FloatFormat::F32)],
        FloatFormat::F16,
    );
}

/// The fused kernel's collapse decisions at margins where the numerics crate says every
/// summation order agrees, on both forward paths (k = 97 reads twice, k = 32768 once).
#[test]
fn fused_collapse_decisions_follow_the_thresholds_on_cuda() {
    if !gpu() {
        return;
    }
    check_collapse_decisions::<Gpu32>();
}

/// Under fusion: the fused kernel against the portable one, and against the fusion-free
/// backend's portable kernel, in f32 and with the f64 loss; collapse decisions; the anchors.
#[test]
fn fused_matches_portable_under_fusion_on_cuda() {
    if !gpu() {
        return;
    }
    let precisions = [
        (LossPrecision::Native, FloatFormat::F32),
        (LossPrecision::F32, FloatFormat::F32),
        (LossPrecision::F64, FloatFormat::F64),
    ];
    compare_all::<Fused32>(&SHAPES, &precisions, FloatFormat::F32);
    compare_backends::<Fused32, Gpu32>(&SHAPES[..2], &precisions, FloatFormat::F32);
    check_collapse_decisions::<Fused32>();
    let f64_loss = run::<Fused32>(
        &per_row().with_precision(LossPrecision::F64),
        &[20.0, 0.0, 0.0],
        3,
        &[0],
    );
    assert!((f64_loss.grad[0] + 4.12e-9).abs() < 1e-11);
}
