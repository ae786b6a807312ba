//! A backend's fused kernel against the portable kernel on the same backend, within the
//! tolerance `docs/loss.md` states for kernels whose row sums add in a different order.
//!
//! Generic over the backend, so that the CUDA suite (`tests/cuda.rs`) and any other CubeCL
//! runtime can run it; on burn-ndarray (whose fused kernel returns the same bits) it runs in the
//! normal suite so that it stays exercised.

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use slingshot_loss::{
    CollapseAwareCrossEntropy, CollapseAwareCrossEntropyConfig, LossPrecision, LossReduction,
};
use slingshot_numerics::{AbsorptionThresholds, CollapsePrediction, FloatFormat};

use super::{flags, inputs};

/// Every output of one forward + backward, in f64.
#[derive(Debug, Clone)]
pub struct Outputs {
    pub loss: Vec<f64>,
    pub grad: Vec<f64>,
    pub collapsed: Vec<bool>,
    pub zero_loss: Vec<bool>,
    pub margin: Vec<f64>,
    pub residual: Vec<f64>,
    pub lse: Vec<f64>,
    pub batch: Vec<f64>,
}

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data().convert::<f64>().to_vec::<f64>().unwrap()
}

/// Runs `loss` and backpropagates `sum(loss * weights)` (one weight per loss value).
pub fn outputs<B: AutodiffBackend>(
    loss: &CollapseAwareCrossEntropy<B>,
    logits: &[f64],
    k: usize,
    targets: &[usize],
    weights: &[f64],
) -> Outputs {
    let device = Default::default();
    let dtype = <B::FloatElem as burn::tensor::Element>::dtype();
    let (z, t) = inputs::<B>(logits, k, targets);
    let z = z.require_grad();
    let out = loss.forward_with_stats(z.clone(), t);
    let [m] = out.loss.dims();
    let w = Tensor::<B, 1>::from_data(
        TensorData::new(weights[..m].to_vec(), [m]),
        (&device, dtype),
    );
    let stats = out.stats.clone();
    let grads = (out.loss.clone() * w).sum().backward();
    Outputs {
        loss: values(out.loss.inner()),
        grad: values(z.grad(&grads).expect("gradient")),
        collapsed: flags(stats.collapsed.inner()),
        zero_loss: flags(stats.zero_loss.inner()),
        margin: values(stats.margin.inner()),
        residual: values(stats.residual_mass.inner()),
        lse: values(stats.log_sum_exp.inner()),
        batch: values(stats.batch.inner()),
    }
}

/// The compute format and the stored logits' unit roundoff of a comparison.
#[derive(Debug, Clone, Copy)]
pub struct Formats {
    /// The loss precision the kernels compute in.
    pub compute: FloatFormat,
    /// The logits' (and the gradient's) format.
    pub logits: FloatFormat,
}

/// Runs the fused kernel (the backend's default) and the portable one on the same inputs and
/// checks the fused outputs against the portable ones within the documented tolerance:
///
/// * `margin` equal (maxima do not depend on the order);
/// * collapse and zero-loss flags equal on every row whose label margin is outside the band
///   where the numerics crate says the decision depends on the summation order;
/// * per row, with `u` the compute format's unit roundoff and `d = (2 (k - 1) + 8) u` the bound
///   on `|ln S_fused - ln S_portable|` (two summations of the same terms, each within
///   `(k - 1) u S`, plus the rescaling of the one-read path):
///   `|d loss| <= d + 2u |loss|`, `|d lse| <= d + 2u |lse|`,
///   `|d residual| <= residual (4k + 8) u`;
/// * the gradient: `|d g_k| <= |v| (q_k (d + 4u) + 2u) + 2 u_out |g_k|` (each kernel rounds its
///   own value to the logits' format once), and with zero-sum
///   projection `|v| (6u + (d + 6u) / k)` more, `v` the row's upstream gradient and `q_k` the
///   softmax probability;
/// * the reduced loss: the per-row bound averaged (mean) or added (sum), plus `2 n u |loss|`.
///
/// Returns what was compared, or the first value outside its bound.
pub fn check_fused_against_portable<B: AutodiffBackend>(
    config: &CollapseAwareCrossEntropyConfig,
    formats: Formats,
    data: (&[f64], &[usize], usize, &[f64]),
) -> Result<Comparison, String> {
    check_kernels::<B, B>(config, formats, data)
}

/// [`check_fused_against_portable`] with the portable kernel run on another backend `P`: the
/// same bounds hold between two backends whose sums add in different orders.
pub fn check_kernels<B: AutodiffBackend, P: AutodiffBackend>(
    config: &CollapseAwareCrossEntropyConfig,
    formats: Formats,
    (logits, targets, k, weights): (&[f64], &[usize], usize, &[f64]),
) -> Result<Comparison, String> {
    let fused = outputs(
        &config.init::<B>(&Default::default()),
        logits,
        k,
        targets,
        weights,
    );
    let portable = outputs(
        &config.init::<P>(&Default::default()).with_portable_kernel(),
        logits,
        k,
        targets,
        weights,
    );
    let n = targets.len();
    let u = formats.compute.unit_roundoff();
    let u_out = formats.logits.unit_roundoff();
    let d = (2.0 * (k as f64 - 1.0) + 8.0) * u;
    let thresholds = AbsorptionThresholds::new(formats.compute, k).map_err(|e| e.to_string())?;
    let worst = std::cell::Cell::new(0.0f64);
    let close = |what: &str, i: usize, a: f64, b: f64, tol: f64| {
        let diff = (a - b).abs();
        if diff > 0.0 && tol > 0.0 {
            worst.set(worst.get().max(diff / tol));
        }
        if diff <= tol || (a.is_nan() && b.is_nan()) {
            Ok(())
        } else {
            Err(format!(
                "{what}[{i}]: fused {a:e}, portable {b:e}, |diff| {:e} > {tol:e}",
                (a - b).abs()
            ))
        }
    };

    let mut order_dependent = 0;
    for i in 0..n {
        let row = &logits[i * k..(i + 1) * k];
        let label = targets[i];
        let runner_up = row
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != label)
            .map(|(_, &z)| z)
            .fold(f64::NEG_INFINITY, f64::max);
        let prediction = thresholds
            .predict(row[label] - runner_up)
            .map_err(|e| e.to_string())?;
        if prediction == CollapsePrediction::OrderDependent {
            order_dependent += 1;
        } else {
            if fused.collapsed[i] != portable.collapsed[i] {
                return Err(format!(
                    "collapsed[{i}]: fused {}, portable {} ({prediction:?})",
                    fused.collapsed[i], portable.collapsed[i]
                ));
            }
            if fused.zero_loss[i] != portable.zero_loss[i] {
                return Err(format!(
                    "zero_loss[{i}]: fused {}, portable {} ({prediction:?})",
                    fused.zero_loss[i], portable.zero_loss[i]
                ));
            }
        }
        close("margin", i, fused.margin[i], portable.margin[i], 0.0)?;
        let lse = portable.lse[i];
        close("lse", i, fused.lse[i], lse, d + 2.0 * u * lse.abs())?;
        let res = portable.residual[i];
        let res_tol = res * (4.0 * k as f64 + 8.0) * u + f64::MIN_POSITIVE;
        close("residual", i, fused.residual[i], res, res_tol)?;
    }

    // The loss.
    let reduction = config.reduction;
    match reduction {
        LossReduction::None => {
            for i in 0..n {
                let l = portable.loss[i];
                close("loss", i, fused.loss[i], l, d + 2.0 * u * l.abs())?;
            }
        }
        LossReduction::Mean | LossReduction::Sum => {
            let l = portable.loss[0];
            let scale = if reduction == LossReduction::Sum {
                n as f64
            } else {
                1.0
            };
            let tol = d * scale + 2.0 * (n as f64 + 1.0) * u * l.abs();
            close("loss", 0, fused.loss[0], l, tol)?;
        }
    }

    // The gradient, row by row.
    for i in 0..n {
        let v = match reduction {
            LossReduction::Mean => weights[0] / n as f64,
            LossReduction::Sum => weights[0],
            LossReduction::None => weights[i],
        }
        .abs();
        let lse = portable.lse[i];
        let projection = if config.zero_sum_projection {
            v * (6.0 * u + (d + 6.0 * u) / k as f64)
        } else {
            0.0
        };
        for j in 0..k {
            let q = (logits[i * k + j] - lse).exp().min(1.0);
            let g = portable.grad[i * k + j];
            let tol = v * (q * (d + 4.0 * u) + 2.0 * u) + projection + 2.0 * u_out * g.abs();
            close("grad", i * k + j, fused.grad[i * k + j], g, tol)?;
        }
    }

    // The batch values: fractions exact when no row was order-dependent; the rest within the
    // largest per-row bound.
    if order_dependent == 0 {
        close(
            "collapsed_fraction",
            0,
            fused.batch[0],
            portable.batch[0],
            0.0,
        )?;
        close(
            "zero_loss_fraction",
            0,
            fused.batch[1],
            portable.batch[1],
            0.0,
        )?;
    }
    let max_lse = portable.lse.iter().fold(0.0f64, |a, &b| a.max(b.abs()));
    let max_res = portable.residual.iter().fold(0.0f64, |a, &b| a.max(b));
    let res_tol = max_res * (4.0 * k as f64 + 8.0 + 2.0 * n as f64) * u + f64::MIN_POSITIVE;
    close(
        "mean_residual",
        0,
        fused.batch[2],
        portable.batch[2],
        res_tol,
    )?;
    close(
        "max_residual",
        0,
        fused.batch[3],
        portable.batch[3],
        res_tol,
    )?;
    close("min_margin", 0, fused.batch[4], portable.batch[4], 0.0)?;
    let margin_scale = portable.margin.iter().fold(0.0f64, |a, &b| a.max(b.abs()));
    let margin_tol = 2.0 * n as f64 * u * margin_scale;
    close(
        "mean_margin",
        0,
        fused.batch[5],
        portable.batch[5],
        margin_tol,
    )?;
    let lse_tol = d + 2.0 * (n as f64 + 1.0) * u * max_lse;
    close("mean_lse", 0, fused.batch[6], portable.batch[6], lse_tol)?;
    let logit_scale = logits.iter().fold(0.0f64, |a, &b| a.max(b.abs()));
    let logit_tol = 2.0 * (n * k) as f64 * u * logit_scale;
    close(
        "mean_logit",
        0,
        fused.batch[7],
        portable.batch[7],
        logit_tol,
    )?;
    Ok(Comparison {
        order_dependent,
        worst: worst.get(),
    })
}

/// What [`check_fused_against_portable`] compared.
#[derive(Debug, Clone, Copy)]
pub struct Comparison {
    /// Rows whose collapse decision depends on the summation order (flags not compared).
    pub order_dependent: usize,
    /// The largest `|fused - portable| / bound` over every compared value (at most 1).
    pub worst: f64,
}

/// Every covered configuration: precision x reduction x zero-sum projection.
pub fn covered_configs(precisions: &[LossPrecision]) -> Vec<CollapseAwareCrossEntropyConfig> {
    let mut out = Vec::new();
    for &precision in precisions {
        for reduction in [LossReduction::Mean, LossReduction::Sum, LossReduction::None] {
            for zero_sum in [false, true] {
                out.push(
                    CollapseAwareCrossEntropyConfig::new()
                        .with_precision(precision)
                        .with_reduction(reduction)
                        .with_zero_sum_projection(zero_sum),
                );
            }
        }
    }
    out
}

/// Shapes on both sides of the two-read threshold (16 KiB rows), odd and vector-aligned rows.
pub const SHAPES: [(usize, usize); 5] = [(64, 97), (48, 1000), (32, 4096), (16, 8192), (8, 32768)];

/// [`check_fused_against_portable`] on every shape, covered configuration and precision (with
/// its compute format), panicking on the first value outside its bound.
pub fn compare_all<B: AutodiffBackend>(
    shapes: &[(usize, usize)],
    precisions: &[(LossPrecision, FloatFormat)],
    logits_format: FloatFormat,
) {
    compare_backends::<B, B>(shapes, precisions, logits_format);
}

/// [`compare_all`] with the portable kernel on another backend `P`.
pub fn compare_backends<B: AutodiffBackend, P: AutodiffBackend>(
    shapes: &[(usize, usize)],
    precisions: &[(LossPrecision, FloatFormat)],
    logits_format: FloatFormat,
) {
    for &(n, k) in shapes {
        // Every third row leads by 30 (collapsed in f32 for these k), the rest are ordinary.
        let (logits, targets) = rows(n, k, 6.0, 30.0, 3);
        let weights: Vec<f64> = (0..n).map(|i| 0.5 + (i % 5) as f64 * 0.4).collect();
        for &(precision, compute) in precisions {
            for config in covered_configs(&[precision]) {
                let formats = Formats {
                    compute,
                    logits: logits_format,
                };
                check_kernels::<B, P>(&config, formats, (&logits, &targets, k, &weights))
                    .unwrap_or_else(|e| panic!("{n}x{k} {config:?}: {e}"));
            }
        }
    }
}

/// Collapse decisions at margins where every summation order agrees (the numerics crate's
/// `impossible_below - 0.5` and `certain_at + 0.5`), for 97 classes (the two-read forward) and
/// 32768 (the one-read forward): the mask, a zero correct-class gradient and a zero loss.
pub fn check_collapse_decisions<B: AutodiffBackend>() {
    for k in [97usize, 32768] {
        let t = AbsorptionThresholds::new(FloatFormat::F32, k).unwrap();
        for margin in [t.impossible_below - 0.5, t.certain_at + 0.5] {
            let mut logits = vec![0.0; k];
            logits[7] = margin;
            let r = super::run::<B>(&super::per_row(), &logits, k, &[7]);
            let collapsed = t.predict(margin).unwrap() == CollapsePrediction::Certain;
            assert_eq!(r.collapsed, vec![collapsed], "k = {k}, margin {margin}");
            assert_eq!(r.grad[7] == 0.0, collapsed, "k = {k}, margin {margin}");
            assert_eq!(r.loss[0] == 0.0, collapsed, "k = {k}, margin {margin}");
        }
    }
}

/// Rows of `k` logits in `[-scale, scale)` (a fixed linear congruential sequence, f32-exact),
/// with a lead added to the label of every `lead_every`-th row.
pub fn rows(
    n: usize,
    k: usize,
    scale: f64,
    lead: f64,
    lead_every: usize,
) -> (Vec<f64>, Vec<usize>) {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut logits: Vec<f64> = (0..n * k).map(|_| (2.0 * next() - 1.0) * scale).collect();
    let targets: Vec<usize> = (0..n).map(|i| (i * 7919 + 13) % k).collect();
    for (i, &t) in targets.iter().enumerate() {
        if lead_every > 0 && i % lead_every == 0 {
            logits[i * k + t] += lead;
        }
    }
    let logits = logits.iter().map(|&x| (x as f32) as f64).collect();
    (logits, targets)
}
