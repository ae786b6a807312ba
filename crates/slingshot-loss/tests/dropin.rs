//! A drop-in for burn's `CrossEntropyLoss`: the same config fields (`pad_tokens`, `weights`,
//! `smoothing`) give the same loss and gradient as burn's own loss, and both agree with an f64
//! reference of burn's definition:
//!
//! `t_ik = ((1 - a) [k = y_i] + a / K) w_k`, `row_i = -[y_i not padded] sum_k t_ik lp_ik`, the
//! loss `sum_i row_i / D` with `D = n` (padded rows included, as burn) or `sum_i w_{y_i}` with
//! class weights; its gradient `[kept] (p_ik sum_k t_ik - t_ik) / D`.
//!
//! Tolerances, in f32 unit roundoffs `u` (values are O(1)): the loss within `64 u (1 + |l|)`
//! of the reference and of burn's; each gradient entry within `64 u (|g| + 1 / D)`. Both
//! losses compute the same terms in different orders (burn multiplies the whole smoothed
//! target, we add the label and uniform parts), so bit equality is not expected there; without
//! smoothing, weights or pads the forward is bit for bit burn's (`tests/numerics.rs`).

mod common;

use burn::backend::Autodiff;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{DType, Int, Tensor, TensorData};
use burn_ndarray::NdArray;
use common::to_f64;
use proptest::prelude::*;
use slingshot_loss::{CollapseAwareCrossEntropyConfig, LossError};

type B = Autodiff<NdArray>;
const U: f64 = f32::EPSILON as f64 / 2.0;

#[derive(Debug, Clone)]
struct Case {
    n: usize,
    k: usize,
    logits: Vec<f32>,
    targets: Vec<usize>,
    pads: Option<Vec<usize>>,
    weights: Option<Vec<f32>>,
    smoothing: Option<f32>,
}

fn cases() -> impl Strategy<Value = Case> {
    (1usize..8, 2usize..12).prop_flat_map(|(n, k)| {
        (
            prop::collection::vec(-8.0f32..8.0, n * k),
            prop::collection::vec(0..k, n),
            prop::option::of(prop::collection::vec(0..k, 1..3)),
            prop::option::of(prop::collection::vec(0.25f32..2.0, k)),
            prop::option::of(0.0f32..0.3),
        )
            .prop_map(move |(logits, targets, pads, weights, smoothing)| Case {
                n,
                k,
                logits,
                targets,
                pads,
                weights,
                smoothing,
            })
    })
}

/// Loss and gradient of burn's definition in f64.
fn reference(c: &Case) -> (f64, Vec<f64>) {
    let (n, k) = (c.n, c.k);
    let a = c.smoothing.map_or(0.0, f64::from);
    let w = |j: usize| c.weights.as_ref().map_or(1.0, |w| f64::from(w[j]));
    let divisor = match &c.weights {
        Some(_) => c.targets.iter().map(|&y| w(y)).sum::<f64>(),
        None => n as f64,
    };
    let (mut loss, mut grad) = (0.0, vec![0.0; n * k]);
    for i in 0..n {
        let y = c.targets[i];
        if c.pads.as_ref().is_some_and(|p| p.contains(&y)) {
            continue;
        }
        let z: Vec<f64> = c.logits[i * k..(i + 1) * k]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        let t: Vec<f64> = (0..k)
            .map(|j| ((1.0 - a) * f64::from(u8::from(j == y)) + a / k as f64) * w(j))
            .collect();
        let total: f64 = t.iter().sum();
        for j in 0..k {
            loss -= t[j] * (z[j] - lse) / divisor;
            grad[i * k + j] = ((z[j] - lse).exp() * total - t[j]) / divisor;
        }
    }
    (loss, grad)
}

fn tensors(c: &Case) -> (Tensor<B, 2>, Tensor<B, 1, Int>) {
    let device = Default::default();
    let z = Tensor::<B, 2>::from_data(
        TensorData::new(c.logits.clone(), [c.n, c.k]),
        (&device, DType::F32),
    );
    let t: Vec<i64> = c.targets.iter().map(|&t| t as i64).collect();
    (z, Tensor::from_data(TensorData::new(t, [c.n]), &device))
}

/// Loss and gradient of a loss function given as a closure over the inputs.
fn evaluate(
    c: &Case,
    f: impl Fn(Tensor<B, 2>, Tensor<B, 1, Int>) -> Tensor<B, 1>,
) -> (f64, Vec<f64>) {
    let (z, t) = tensors(c);
    let z = z.require_grad();
    let loss = f(z.clone(), t);
    let value = to_f64(loss.clone().inner())[0];
    let grad = to_f64(z.grad(&loss.backward()).unwrap());
    (value, grad)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn matches_burns_loss_and_the_f64_reference(c in cases()) {
        let device = Default::default();
        let ours = CollapseAwareCrossEntropyConfig::new()
            .with_pad_tokens(c.pads.clone())
            .with_weights(c.weights.clone())
            .with_smoothing(c.smoothing)
            .init::<B>(&device);
        let burns = CrossEntropyLossConfig::new()
            .with_pad_tokens(c.pads.clone())
            .with_weights(c.weights.clone())
            .with_smoothing(c.smoothing)
            .init::<B>(&device);
        let (l_ours, g_ours) = evaluate(&c, |z, t| ours.forward(z, t));
        let (l_burn, g_burn) = evaluate(&c, |z, t| burns.forward(z, t));
        let (l_ref, g_ref) = reference(&c);
        let divisor = match &c.weights {
            Some(w) => c.targets.iter().map(|&y| f64::from(w[y])).sum::<f64>(),
            None => c.n as f64,
        };
        let loss_tol = 64.0 * U * (1.0 + l_ref.abs());
        prop_assert!((l_ours - l_ref).abs() <= loss_tol, "ours {l_ours:e} vs f64 {l_ref:e}");
        prop_assert!((l_ours - l_burn).abs() <= loss_tol, "ours {l_ours:e} vs burn {l_burn:e}");
        for j in 0..g_ref.len() {
            let tol = 64.0 * U * (g_ref[j].abs() + 1.0 / divisor);
            prop_assert!((g_ours[j] - g_ref[j]).abs() <= tol, "grad[{j}]: ours {:e} vs f64 {:e}", g_ours[j], g_ref[j]);
            prop_assert!((g_ours[j] - g_burn[j]).abs() <= tol, "grad[{j}]: ours {:e} vs burn {:e}", g_ours[j], g_burn[j]);
        }
    }
}

/// A padded row has no gradient at all, and the mean still divides by every row (burn's rule).
#[test]
fn padded_rows_have_no_gradient() {
    let c = Case {
        n: 2,
        k: 3,
        logits: vec![1.0, 2.0, 0.5, 3.0, 0.0, -1.0],
        targets: vec![2, 0],
        pads: Some(vec![2]),
        weights: None,
        smoothing: None,
    };
    let ours = CollapseAwareCrossEntropyConfig::new()
        .with_pad_tokens(c.pads.clone())
        .init::<B>(&Default::default());
    let (loss, grad) = evaluate(&c, |z, t| ours.forward(z, t));
    assert_eq!(&grad[..3], &[0.0, 0.0, 0.0]);
    let row1 = (3f64.exp() + 1.0 + (-1f64).exp()).ln() - 3.0;
    assert!((loss - row1 / 2.0).abs() <= 4.0 * U, "{loss:e}");
}

/// Class weights for another number of classes are a typed error.
#[test]
fn weights_must_match_the_classes() {
    let c = Case {
        n: 1,
        k: 3,
        logits: vec![1.0, 2.0, 0.5],
        targets: vec![0],
        pads: None,
        weights: None,
        smoothing: None,
    };
    let (z, t) = tensors(&c);
    let err = CollapseAwareCrossEntropyConfig::new()
        .with_weights(Some(vec![1.0, 2.0]))
        .init::<B>(&Default::default())
        .try_forward(z, t)
        .unwrap_err();
    assert_eq!(
        err,
        LossError::WeightCount {
            weights: 2,
            classes: 3
        }
    );
}
