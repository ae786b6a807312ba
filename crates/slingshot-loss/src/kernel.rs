//! The portable computation on burn's tensor ops: loss, the parts of the gradient, and the
//! collapse statistics, in one pass, in the chosen precision.
//!
//! The operation order is PyTorch's (and burn's) so that each precision reproduces the
//! framework's numerics: `s = z - z_max`, `S = sum exp(s)`, `lp = s - ln S`,
//! loss `= -lp_r`, and log-softmax + NLL backward `g = p * v - t * v` with `p = exp(lp)`,
//! `t` the (smoothed) target and `v` the upstream gradient of the row.

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, DType, FloatDType, IndexingUpdateOp, Int, Tensor, TensorData};
use slingshot_numerics::FloatFormat;

use crate::host::HostGrad;
use crate::rounding::Rounding;
use crate::{CollapseStats, LossError, LossPrecision, LossReduction, Normalizer};

/// The validated settings of one loss, as the kernels receive them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LossPlan {
    pub(crate) precision: LossPrecision,
    pub(crate) normalizer: Normalizer,
    pub(crate) smoothing: f64,
    pub(crate) z_loss: f64,
    pub(crate) reduction: LossReduction,
    pub(crate) stats: bool,
    /// burn's class weights, one per class.
    pub(crate) weights: Option<Vec<f32>>,
    /// burn's pad tokens: targets that contribute nothing.
    pub(crate) pad_tokens: Option<Vec<usize>>,
    pub(crate) zero_sum: bool,
    /// Skip a backend's fused kernel and run the portable one.
    pub(crate) portable_only: bool,
}

/// What the forward pass produces.
pub(crate) struct Forward<B: Backend> {
    /// The reduced loss, in the logits' dtype.
    pub(crate) loss: Tensor<B, 1>,
    /// What the backward pass needs, when asked for.
    pub(crate) grad: Option<GradParts<B>>,
    /// Collapse statistics, when asked for.
    pub(crate) stats: Option<CollapseStats<B>>,
}

/// What the backward pass needs: from the portable kernel, or from a backend's fused one.
#[derive(Debug, Clone)]
pub(crate) enum GradParts<B: Backend> {
    Device(DeviceGrad<B>),
    Host(HostGrad<B>),
    /// The fused CubeCL kernel's: the backward recomputes from the logits.
    #[cfg(feature = "cubecl")]
    Cube(crate::cube::CubeGrad<B>),
    /// Computed on another backend (the inner `CubeBackend` of `Fusion`) and moved back.
    #[cfg(feature = "cubecl")]
    Bridged(std::sync::Arc<dyn InnerGrad<B>>),
}

/// Gradient parts that live on another backend.
#[cfg(feature = "cubecl")]
pub(crate) trait InnerGrad<B: Backend>: std::fmt::Debug + Send + Sync {
    /// `d loss / d logits` on `B` for the upstream gradient on `B`.
    fn gradient(&self, upstream: Tensor<B, 1>) -> Tensor<B, 2>;
}

impl<B: Backend> GradParts<B> {
    /// `d loss / d logits` in the loss's compute dtype, not yet rounded to the logits' dtype
    /// (the portable kernel's parts; the fused kernels' are already in the logits' dtype).
    pub(crate) fn wide_gradient(self, upstream: Tensor<B, 1>) -> Tensor<B, 2> {
        match self {
            GradParts::Device(parts) => parts.wide_gradient(upstream),
            other => other.gradient(upstream),
        }
    }

    /// `d loss / d logits` for the upstream gradient of the loss tensor, in the logits' dtype.
    pub(crate) fn gradient(self, upstream: Tensor<B, 1>) -> Tensor<B, 2> {
        match self {
            GradParts::Device(parts) => parts.gradient(upstream),
            GradParts::Host(parts) => parts.gradient(upstream),
            #[cfg(feature = "cubecl")]
            GradParts::Cube(parts) => parts.gradient(upstream),
            #[cfg(feature = "cubecl")]
            GradParts::Bridged(parts) => parts.gradient(upstream),
        }
    }
}

/// The gradient is `q * v - tw * v` per row, `v` the upstream gradient of that row: `q` is
/// `softmax` (StableMax: `s'(z) / S`), `tw` the target (StableMax: `t s'(z) / s(z)`).
#[derive(Debug, Clone)]
pub(crate) struct DeviceGrad<B: Backend> {
    q: Tensor<B, 2>,
    tw: TargetWeights<B>,
    rounding: Rounding,
    reduction: LossReduction,
    zero_sum: bool,
    logits_dtype: DType,
    /// Per-row weight times pad mask `[n, 1]` (without a dense target, which carries them).
    row_scale: Option<Tensor<B, 2>>,
    /// Per-row multiplier of `q` `[n, 1]`: the dense target's row sum when it is weighted.
    q_scale: Option<Tensor<B, 2>>,
    /// The weighted mean's divisor `sum_i w[target_i]`.
    divisor: Option<Tensor<B, 1>>,
}

/// `tw` without smoothing is non-zero only at the label, so it is kept as indices (and, for
/// StableMax, one weight per row) and subtracted with an O(N) scatter instead of a dense pass.
#[derive(Debug, Clone)]
pub(crate) enum TargetWeights<B: Backend> {
    /// Weight 1 (softmax) or `weight[row]` (StableMax) at `index[row]`, zero elsewhere.
    Label {
        index: Tensor<B, 2, Int>,
        weight: Option<Tensor<B, 2>>,
    },
    /// A dense `[n, k]` target (label smoothing).
    Dense(Tensor<B, 2>),
}

impl<B: Backend> DeviceGrad<B> {
    /// `d loss / d logits` for the upstream gradient of the loss tensor (shape `[1]`, or `[n]`
    /// for `LossReduction::None`), in the logits' dtype.
    pub(crate) fn gradient(self, upstream: Tensor<B, 1>) -> Tensor<B, 2> {
        let dtype = self.logits_dtype;
        self.wide_gradient(upstream).cast(dtype)
    }

    /// [`Self::gradient`] before its one rounding to the logits' dtype.
    fn wide_gradient(self, upstream: Tensor<B, 1>) -> Tensor<B, 2> {
        let r = self.rounding;
        let [n, k] = self.q.dims();
        let up = upstream.cast(self.q.dtype());
        // PyTorch's NLL backward divides the upstream gradient by the number of rows (by the
        // summed weights with class weights).
        let v = match (self.reduction, self.divisor) {
            (LossReduction::Mean, Some(w)) => r.apply(up / w.cast(self.q.dtype())).reshape([1, 1]),
            (LossReduction::Mean, None) => r.apply(up / n as f64).reshape([1, 1]),
            (LossReduction::Sum, _) => up.reshape([1, 1]),
            (LossReduction::None, _) => up.reshape([n, 1]),
        };
        let v = match self.row_scale {
            Some(scale) => r.apply(v * scale),
            None => v,
        };
        let qv = match self.q_scale {
            Some(t) => r.apply(self.q * r.apply(v.clone() * t)),
            None => r.apply(self.q * v.clone()),
        };
        let g = match self.tw {
            // fl(q v - v) at the label, exactly PyTorch's `grad_output - exp(out) * sum(...)`.
            TargetWeights::Label { index, weight } => {
                let v = v.expand([n, 1]);
                let tv = match weight {
                    Some(w) => r.apply(w * v),
                    None => v,
                };
                r.apply(qv.scatter(1, index, tv.neg(), IndexingUpdateOp::Add))
            }
            TargetWeights::Dense(tw) => r.apply(qv - r.apply(tw * v)),
        };
        if self.zero_sum {
            let mean = r.apply(r.row_sum(g.clone()) / k as f64);
            r.apply(g - mean)
        } else {
            g
        }
    }
}

/// Whether `B`'s device computes in `dtype`, where backends report more than they do:
/// - burn-wgpu's WGSL compiler reports f64 where the adapter has it (lavapipe does), but WGSL
///   has no f64 (its f64 `exp` returns garbage);
/// - burn's fusion compiler has no f64 (it panics); under the `cuda`/`wgpu` features the loss
///   runs on the inner backend instead and never asks here for a fusion backend;
/// - burn-candle reports every dtype, but its reductions read storage as its own element.
pub(crate) fn device_has<B: Backend>(device: &B::Device, dtype: DType) -> bool {
    let name = B::name(device);
    let own = <B::FloatElem as burn::tensor::Element>::dtype();
    B::supports_dtype(device, dtype)
        && !(dtype == DType::F64 && (name.contains("wgsl") || name.contains("fusion")))
        && !(name.contains("candle") && dtype != own)
}

/// The dtype the loss is computed in and how it is rounded, for `precision` and logits of
/// `dtype` on backend `B`.
pub(crate) fn resolve<B: Backend>(
    precision: LossPrecision,
    dtype: DType,
    device: &B::Device,
) -> Result<(FloatDType, Rounding), LossError> {
    let unsupported = |reason, instead| LossError::UnsupportedPrecision {
        precision,
        dtype: format!("{dtype:?}"),
        backend: B::name(device),
        reason,
        instead,
    };
    let native = |d: DType, f: FloatDType, instead| {
        if device_has::<B>(device, d) {
            Ok((f, Rounding::Native))
        } else {
            Err(unsupported(
                "the device does not support this dtype",
                instead,
            ))
        }
    };
    // A narrow format: native where the device has its dtype (fp8 has none), else emulated.
    let low = |native: Option<(DType, FloatDType)>, format: FloatFormat| {
        if let Some((_, f)) = native.filter(|&(d, _)| device_has::<B>(device, d)) {
            Ok((f, Rounding::Native))
        } else if device_has::<B>(device, DType::F32) {
            Ok((FloatDType::F32, Rounding::Emulated(format)))
        } else {
            Err(unsupported(
                "no native dtype and no f32 to emulate it in",
                "use LossPrecision::Native",
            ))
        }
    };
    // burn-candle reports every dtype as supported, but its reductions read storage as its own
    // float element: a loss computed in another dtype would panic inside it.
    if B::name(device).contains("candle") {
        let wanted = match precision {
            LossPrecision::F32 => Some(DType::F32),
            LossPrecision::F64 => Some(DType::F64),
            _ => None,
        };
        if wanted.is_some_and(|w| w != dtype) {
            return Err(unsupported(
                "burn-candle computes only in the model's own float type",
                "use LossPrecision::Native, or a model in that float type (Candle<f64>)",
            ));
        }
    }
    match precision {
        LossPrecision::Native => match dtype {
            DType::F64 => Ok((FloatDType::F64, Rounding::Native)),
            DType::F32 | DType::Flex32 => Ok((FloatDType::F32, Rounding::Native)),
            DType::F16 => Ok((FloatDType::F16, Rounding::Native)),
            DType::BF16 => Ok((FloatDType::BF16, Rounding::Native)),
            _ => Err(unsupported(
                "logits must be a float dtype",
                "cast the logits to a float dtype",
            )),
        },
        LossPrecision::F32 => native(DType::F32, FloatDType::F32, "use LossPrecision::Native"),
        LossPrecision::F64 => native(
            DType::F64,
            FloatDType::F64,
            "use LossPrecision::F32, or a backend whose device has f64 (ndarray, flex, candle with \
             an f64 model, cuda; under burn's fusion, enable slingshot's `cuda`/`wgpu` feature)",
        ),
        LossPrecision::BF16 => low(Some((DType::BF16, FloatDType::BF16)), FloatFormat::BF16),
        LossPrecision::F16 => low(Some((DType::F16, FloatDType::F16)), FloatFormat::F16),
        LossPrecision::E4M3 => low(None, FloatFormat::E4M3),
        LossPrecision::E5M2 => low(None, FloatFormat::E5M2),
    }
}

/// Per-row scale from class weights and pad tokens, and the mean's divisor.
struct RowWeights<B: Backend> {
    /// `w[target_i]`, zero for padded rows; `[n, 1]`. `None` without weights and pads.
    scale: Option<Tensor<B, 2>>,
    /// Class weights as a `[1, k]` row, for label smoothing.
    class_row: Option<Tensor<B, 2>>,
    /// 1 for kept rows, 0 for padded ones; `[n, 1]`.
    keep: Option<Tensor<B, 2>>,
    /// `sum_i w[target_i]` (padded rows included, as burn); `None` divides by `n`.
    divisor: Option<Tensor<B, 1>>,
}

impl<B: Backend> RowWeights<B> {
    fn new(plan: &LossPlan, targets: &Tensor<B, 1, Int>, dtype: FloatDType, r: Rounding) -> Self {
        let device = targets.device();
        let [n] = targets.dims();
        let keep = plan
            .pad_tokens
            .as_ref()
            .filter(|p| !p.is_empty())
            .map(|pads| {
                let is = |pad: usize| targets.clone().equal_elem(pad as i64);
                let padded = pads[1..]
                    .iter()
                    .fold(is(pads[0]), |acc, &pad| acc.bool_or(is(pad)));
                Tensor::<B, 1>::ones([n], (&device, dtype.into()))
                    .mask_fill(padded, 0.0)
                    .reshape([n, 1])
            });
        let class_weights = plan.weights.as_ref().map(|w| {
            let data = TensorData::new(w.clone(), [w.len()]).convert_dtype(dtype.into());
            r.apply(Tensor::<B, 1>::from_data(data, (&device, dtype.into())))
        });
        let row_weight = class_weights
            .as_ref()
            .map(|w| w.clone().gather(0, targets.clone()));
        let divisor = row_weight.clone().map(|w| r.apply(r.batch_total(w)));
        let scale = match (row_weight, keep.clone()) {
            (Some(w), Some(k)) => Some(w.reshape([n, 1]) * k),
            (Some(w), None) => Some(w.reshape([n, 1])),
            (None, keep) => keep,
        };
        let class_row = class_weights.map(|w| {
            let k = w.dims()[0];
            w.reshape([1, k])
        });
        Self {
            scale,
            class_row,
            keep,
            divisor,
        }
    }
}

/// The normalizer's results for one batch.
struct Normalized<B: Backend> {
    /// Log-probabilities.
    lp: Tensor<B, 2>,
    /// The gradient's `q` (softmax: `p`).
    q: Tensor<B, 2>,
    /// The label part of the gradient.
    tw: TargetWeights<B>,
    /// `[n, 1]` log-normalizer.
    log_norm: Tensor<B, 2>,
    /// Whether the normalizer sum absorbed every wrong class.
    absorbed: Tensor<B, 2, Bool>,
    /// Softmax: `exp(z - z_max)`; StableMax: `s(z)`; and their row sums.
    terms: Tensor<B, 2>,
    sum: Tensor<B, 2>,
}

fn softmax<B: Backend>(
    z: &Tensor<B, 2>,
    z_max: &Tensor<B, 2>,
    index: &Tensor<B, 2, Int>,
    target: Option<&Tensor<B, 2>>,
    r: Rounding,
) -> Normalized<B> {
    let shifted = r.apply(z.clone() - z_max.clone());
    let terms = r.apply(shifted.clone().exp());
    let sum = r.row_sum(terms.clone());
    let log_sum = r.apply(sum.clone().log());
    let lp = r.apply(shifted - log_sum.clone());
    let q = r.apply(lp.clone().exp());
    let tw = match target {
        Some(t) => TargetWeights::Dense(t.clone()),
        None => TargetWeights::Label {
            index: index.clone(),
            weight: None,
        },
    };
    Normalized {
        lp,
        q,
        tw,
        log_norm: r.apply(z_max.clone() + log_sum),
        absorbed: sum.clone().equal_elem(1.0),
        terms,
        sum,
    }
}

fn stablemax<B: Backend>(
    z: &Tensor<B, 2>,
    index: &Tensor<B, 2, Int>,
    target: Option<&Tensor<B, 2>>,
    r: Rounding,
) -> Normalized<B> {
    let positive = z.clone().greater_equal_elem(0.0);
    // s(x) = 1/(1-x) below zero, x+1 above; s'(x) = 1/(1-x)^2 below, 1 above.
    let one_minus = r.apply(z.clone().neg() + 1.0);
    let inv = r.apply(ones_like(&one_minus) / one_minus);
    let s = inv
        .clone()
        .mask_where(positive.clone(), r.apply(z.clone() + 1.0));
    let ds = r
        .apply(inv.clone() * inv)
        .mask_where(positive, ones_like(z));
    let sum = r.row_sum(s.clone());
    let p = r.apply(s.clone() / sum.clone());
    let q = r.apply(ds.clone() / sum.clone());
    let tw = match target {
        Some(t) => TargetWeights::Dense(r.apply(r.apply(t.clone() * ds) / s.clone())),
        None => TargetWeights::Label {
            index: index.clone(),
            weight: Some(r.apply(ds.gather(1, index.clone()) / s.clone().gather(1, index.clone()))),
        },
    };
    Normalized {
        lp: r.apply(p.log()),
        q,
        tw,
        log_norm: r.apply(sum.clone().log()),
        absorbed: sum.clone().equal(s.clone().gather(1, index.clone())),
        terms: s,
        sum,
    }
}

/// The smoothed target `(1 - a) onehot + a/K`, times the class weights and the pad mask.
fn dense_target<B: Backend>(
    index: &Tensor<B, 2, Int>,
    [n, k]: [usize; 2],
    a: f64,
    weights: &RowWeights<B>,
    dtype: FloatDType,
    r: Rounding,
) -> Tensor<B, 2> {
    let device = index.device();
    let ones = Tensor::<B, 2>::full([n, 1], 1.0, (&device, dtype.into()));
    let onehot = Tensor::<B, 2>::zeros([n, k], (&device, dtype.into())).scatter(
        1,
        index.clone(),
        ones,
        IndexingUpdateOp::Add,
    );
    let t = r.apply(r.apply(onehot * (1.0 - a)) + a / k as f64);
    let t = match &weights.class_row {
        Some(w) => r.apply(t * w.clone()),
        None => t,
    };
    match &weights.keep {
        Some(keep) => t * keep.clone(),
        None => t,
    }
}

/// Forward pass on any backend; `need_grad` keeps what the backward pass needs.
pub(crate) fn forward<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    plan: &LossPlan,
    need_grad: bool,
) -> Result<Forward<B>, LossError> {
    let logits_dtype = logits.dtype();
    let (dtype, r) = resolve::<B>(plan.precision, logits_dtype, &logits.device())?;
    let [n, k] = logits.dims();
    let z = r.apply(logits.cast(dtype));
    let weights = RowWeights::new(plan, &targets, dtype, r);
    let index = targets.reshape([n, 1]);
    let a = plan.smoothing;
    let target = (a > 0.0).then(|| dense_target(&index, [n, k], a, &weights, dtype, r));
    let z_max = z.clone().max_dim(1);
    let norm = match plan.normalizer {
        Normalizer::Softmax => softmax(&z, &z_max, &index, target.as_ref(), r),
        Normalizer::StableMax => stablemax(&z, &index, target.as_ref(), r),
    };
    let (rows, loss, q_scale) = reduce_loss(plan, &norm, &index, &weights, target, r);
    let (q, tw, log_norm) = (norm.q.clone(), norm.tw.clone(), norm.log_norm.clone());
    let q = if plan.z_loss > 0.0 {
        // d(z lse^2)/dz_k = 2 z lse q_k.
        let factor = r.apply(log_norm * (2.0 * plan.z_loss));
        r.apply(q.clone() + r.apply(q * factor))
    } else {
        q
    };
    let stats = plan
        .stats
        .then(|| statistics(z, z_max, &index, norm, rows.clone()));
    let grad = need_grad.then(|| {
        GradParts::Device(DeviceGrad {
            q,
            tw,
            rounding: r,
            reduction: plan.reduction,
            zero_sum: plan.zero_sum,
            logits_dtype,
            // A dense target already carries the weights and the pad mask.
            row_scale: if plan.smoothing > 0.0 {
                None
            } else {
                weights.scale
            },
            q_scale,
            divisor: weights.divisor,
        })
    });
    Ok(Forward {
        loss: loss.cast(logits_dtype),
        grad,
        stats,
    })
}

/// The unweighted per-row losses, the reduced (weighted, padded) loss, and the per-row
/// multiplier of `q` in the gradient where weights or pads make the target not sum to 1.
fn reduce_loss<B: Backend>(
    plan: &LossPlan,
    norm: &Normalized<B>,
    index: &Tensor<B, 2, Int>,
    weights: &RowWeights<B>,
    target: Option<Tensor<B, 2>>,
    r: Rounding,
) -> (Tensor<B, 1>, Tensor<B, 1>, Option<Tensor<B, 2>>) {
    let [n, k] = norm.lp.dims();
    let a = plan.smoothing;
    // Row sums round every partial (the absorption lives there); the batch reduction rounds
    // once (`Rounding::batch_total`).
    let reduce = |rows: Tensor<B, 1>| match (plan.reduction, &weights.divisor) {
        (LossReduction::Mean, Some(w)) => r.apply(r.batch_total(rows) / w.clone()),
        (LossReduction::Mean, None) => r.apply(r.batch_total(rows) / n as f64),
        (LossReduction::Sum, _) => r.apply(r.batch_total(rows)),
        (LossReduction::None, _) => rows,
    };
    let nll = norm.lp.clone().gather(1, index.clone()).neg().reshape([n]);
    let mut rows = nll.clone();
    let (mut loss, q_scale) = match (&target, &weights.scale) {
        // PyTorch and burn negate after reducing: a sum of zero losses is -0.0, not +0.0.
        (None, None) => (reduce(nll.neg()).neg(), None),
        (None, Some(scale)) => (
            reduce(r.apply(nll * scale.clone().reshape([n])).neg()).neg(),
            None,
        ),
        (Some(_), None) => {
            let smooth = r.row_sum(norm.lp.clone()).neg().reshape([n]);
            rows = rows * (1.0 - a) + smooth.clone() * (a / k as f64);
            let loss = r.apply(
                r.apply(reduce(nll.neg()).neg() * (1.0 - a))
                    + r.apply(reduce(smooth) * (a / k as f64)),
            );
            (loss, None)
        }
        // burn's weighted smoothing: `-sum_k t_ik lp_ik`, the target carrying the weights and
        // the pad mask; its row sum scales `q` in the gradient.
        (Some(t), Some(_)) => {
            let weighted = r.row_sum(r.apply(norm.lp.clone() * t.clone()));
            // The row's own (unweighted) loss, as without weights: for `zero_loss`.
            let smooth = r.row_sum(norm.lp.clone()).neg().reshape([n]);
            rows = rows * (1.0 - a) + smooth * (a / k as f64);
            (
                reduce(weighted.reshape([n])).neg(),
                Some(r.row_sum(t.clone())),
            )
        }
    };
    if plan.z_loss > 0.0 {
        let lse = norm.log_norm.clone().reshape([n]);
        let squared = r.apply(lse.clone() * lse);
        rows = rows + squared.clone() * plan.z_loss;
        loss = r.apply(loss + r.apply(reduce(squared) * plan.z_loss));
    }
    (rows, loss, q_scale)
}

/// The collapse statistics from the normalizer's results and the per-row losses.
fn statistics<B: Backend>(
    z: Tensor<B, 2>,
    z_max: Tensor<B, 2>,
    index: &Tensor<B, 2, Int>,
    norm: Normalized<B>,
    rows: Tensor<B, 1>,
) -> CollapseStats<B> {
    let [n, _] = z.dims();
    let (device, dtype) = (z.device(), z.dtype());
    let mean_logit = z.clone().mean();
    let z_label = z.clone().gather(1, index.clone());
    // The runner-up: add -inf at the label (an O(N) scatter; in place, as this is the last use
    // of `z`) and take the row max.
    let minus_inf = Tensor::<B, 2>::full([n, 1], f64::NEG_INFINITY, (&device, dtype));
    let runner_up = z
        .scatter(1, index.clone(), minus_inf, IndexingUpdateOp::Add)
        .max_dim(1);
    let margin = (z_label.clone() - runner_up).reshape([n]);
    let label_is_max = z_label.equal(z_max).reshape([n]);
    // Residual mass sum_{k != r} term_k / S: the label's own term set to exactly zero.
    let label_term = norm.terms.clone().gather(1, index.clone());
    let residual = (norm
        .terms
        .scatter(1, index.clone(), label_term.neg(), IndexingUpdateOp::Add)
        .sum_dim(1)
        / norm.sum)
        .reshape([n]);
    CollapseStats::from_rows(
        norm.absorbed.reshape([n]).bool_and(label_is_max),
        rows.equal_elem(0.0),
        margin,
        residual,
        norm.log_norm.reshape([n]),
        mean_logit,
    )
}

/// A tensor of ones with `x`'s shape, dtype and device.
fn ones_like<B: Backend>(x: &Tensor<B, 2>) -> Tensor<B, 2> {
    Tensor::ones(x.shape(), (&x.device(), x.dtype()))
}
