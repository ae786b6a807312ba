//! The portable computation on burn's tensor ops: loss, the parts of the gradient, and the
//! collapse statistics, in one pass, in the chosen precision.
//!
//! The operation order is PyTorch's (and burn's) so that each precision reproduces the
//! framework's numerics: `s = z - z_max`, `S = sum exp(s)`, `lp = s - ln S`,
//! loss `= -lp_r`, and log-softmax + NLL backward `g = p * v - t * v` with `p = exp(lp)`,
//! `t` the (smoothed) target and `v` the upstream gradient of the row.

use burn::tensor::backend::Backend;
use burn::tensor::{DType, FloatDType, IndexingUpdateOp, Int, Tensor};
use slingshot_numerics::FloatFormat;

use crate::host::HostGrad;
use crate::rounding::Rounding;
use crate::{CollapseStats, LossError, LossPrecision, Normalizer, Reduction};

/// The validated settings of one loss, as the backends receive them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossPlan {
    pub(crate) precision: LossPrecision,
    pub(crate) normalizer: Normalizer,
    pub(crate) smoothing: f64,
    pub(crate) z_loss: f64,
    pub(crate) reduction: Reduction,
    pub(crate) stats: bool,
    pub(crate) zero_sum: bool,
    /// Skip a backend's fused kernel and run the portable one.
    pub(crate) portable_only: bool,
}

/// What the forward pass produces (public only because backends return it).
#[doc(hidden)]
pub struct Forward<B: Backend> {
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
    /// The fused CubeCL kernel's (burn-cuda): the backward recomputes from the logits.
    #[cfg(feature = "cuda")]
    Cube(crate::cube::CubeGrad<B>),
}

impl<B: Backend> GradParts<B> {
    /// `d loss / d logits` for the upstream gradient of the loss tensor, in the logits' dtype.
    pub(crate) fn gradient(self, upstream: Tensor<B, 1>) -> Tensor<B, 2> {
        match self {
            GradParts::Device(parts) => parts.gradient(upstream),
            GradParts::Host(parts) => parts.gradient(upstream),
            #[cfg(feature = "cuda")]
            GradParts::Cube(parts) => parts.gradient(upstream),
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
    reduction: Reduction,
    zero_sum: bool,
    logits_dtype: DType,
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
    /// for `Reduction::None`), in the logits' dtype.
    pub(crate) fn gradient(self, upstream: Tensor<B, 1>) -> Tensor<B, 2> {
        let r = self.rounding;
        let [n, k] = self.q.dims();
        let up = upstream.cast(self.q.dtype());
        // PyTorch's NLL backward divides the upstream gradient by the number of rows.
        let v = match self.reduction {
            Reduction::Mean => r.apply(up / n as f64).reshape([1, 1]),
            Reduction::Sum => up.reshape([1, 1]),
            Reduction::None => up.reshape([n, 1]),
        };
        let qv = r.apply(self.q * v.clone());
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
        let g = if self.zero_sum {
            let mean = r.apply(r.row_sum(g.clone()) / k as f64);
            r.apply(g - mean)
        } else {
            g
        };
        g.cast(self.logits_dtype)
    }
}

/// The dtype the loss is computed in and how it is rounded, for `precision` and logits of
/// `dtype` on backend `B`.
pub(crate) fn resolve<B: Backend>(
    precision: LossPrecision,
    dtype: DType,
    device: &B::Device,
) -> Result<(FloatDType, Rounding), LossError> {
    let unsupported = |reason| LossError::UnsupportedPrecision {
        precision,
        dtype: format!("{dtype:?}"),
        backend: B::name(device),
        reason,
    };
    let native = |d: DType, f: FloatDType| {
        if B::supports_dtype(device, d) {
            Ok((f, Rounding::Native))
        } else {
            Err(unsupported("the backend does not support this dtype"))
        }
    };
    let low = |d: DType, f: FloatDType, format: FloatFormat| {
        if B::supports_dtype(device, d) {
            Ok((f, Rounding::Native))
        } else if B::supports_dtype(device, DType::F32) {
            Ok((FloatDType::F32, Rounding::Emulated(format)))
        } else {
            Err(unsupported("no native dtype and no f32 to emulate it in"))
        }
    };
    match precision {
        LossPrecision::Native => match dtype {
            DType::F64 => Ok((FloatDType::F64, Rounding::Native)),
            DType::F32 | DType::Flex32 => Ok((FloatDType::F32, Rounding::Native)),
            DType::F16 => Ok((FloatDType::F16, Rounding::Native)),
            DType::BF16 => Ok((FloatDType::BF16, Rounding::Native)),
            _ => Err(unsupported("logits must be a float dtype")),
        },
        LossPrecision::F32 => native(DType::F32, FloatDType::F32),
        LossPrecision::F64 => native(DType::F64, FloatDType::F64),
        LossPrecision::BF16 => low(DType::BF16, FloatDType::BF16, FloatFormat::BF16),
        LossPrecision::F16 => low(DType::F16, FloatDType::F16, FloatFormat::F16),
    }
}

/// Forward pass on any backend; `need_grad` keeps what the backward pass needs.
pub(crate) fn forward<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    plan: &LossPlan,
    need_grad: bool,
) -> Result<Forward<B>, LossError> {
    let device = logits.device();
    let logits_dtype = logits.dtype();
    let (dtype, r) = resolve::<B>(plan.precision, logits_dtype, &device)?;
    let [n, k] = logits.dims();
    let z = r.apply(logits.cast(dtype));

    let target_index = targets.reshape([n, 1]);
    let a = plan.smoothing;
    // A dense target only for label smoothing: (1 - a) onehot + a/K.
    let dense_target = (a > 0.0).then(|| {
        let ones = Tensor::<B, 2>::full([n, 1], 1.0, (&device, dtype.into()));
        let onehot = Tensor::<B, 2>::zeros([n, k], (&device, dtype.into())).scatter(
            1,
            target_index.clone(),
            ones,
            IndexingUpdateOp::Add,
        );
        r.apply(r.apply(onehot * (1.0 - a)) + a / k as f64)
    });

    let z_label = z.clone().gather(1, target_index.clone());
    let z_max = z.clone().max_dim(1);

    // The per-row loss parts that need the log-probabilities: NLL, and for label smoothing
    // `-sum_k lp_k`. Taken before `lp` is consumed, so that `exp(lp)` can run in place.
    let loss_terms = |lp: &Tensor<B, 2>| {
        let nll = lp
            .clone()
            .gather(1, target_index.clone())
            .neg()
            .reshape([n]);
        let smooth = (a > 0.0).then(|| r.row_sum(lp.clone()).neg().reshape([n]));
        (nll, smooth)
    };

    // Normalizer-specific part: the loss parts, the gradient parts `q` and `tw`, the
    // log-normalizer, and whether the normalizer sum absorbed every wrong class. `terms` (exp of
    // the shifted logits; StableMax: s(z)) and their row sums are kept for the residual mass.
    let ((nll, smooth), q, tw, log_norm, absorbed, terms, sum) = match plan.normalizer {
        Normalizer::Softmax => {
            let shifted = r.apply(z.clone() - z_max.clone());
            let terms = r.apply(shifted.clone().exp());
            let sum = r.row_sum(terms.clone());
            let log_sum = r.apply(sum.clone().log());
            let lp = r.apply(shifted - log_sum.clone());
            let parts = loss_terms(&lp);
            let p = r.apply(lp.exp());
            let lse = r.apply(z_max.clone() + log_sum);
            let absorbed = sum.clone().equal_elem(1.0);
            let tw = match &dense_target {
                Some(t) => TargetWeights::Dense(t.clone()),
                None => TargetWeights::Label {
                    index: target_index.clone(),
                    weight: None,
                },
            };
            (parts, p, tw, lse, absorbed, terms, sum)
        }
        Normalizer::StableMax => {
            let positive = z.clone().greater_equal_elem(0.0);
            // s(x) = 1/(1-x) below zero, x+1 above; s'(x) = 1/(1-x)^2 below, 1 above.
            let one_minus = r.apply(z.clone().neg() + 1.0);
            let inv = r.apply(ones_like(&one_minus) / one_minus);
            let s = inv
                .clone()
                .mask_where(positive.clone(), r.apply(z.clone() + 1.0));
            let ds = r
                .apply(inv.clone() * inv)
                .mask_where(positive, ones_like(&z));
            let sum = r.row_sum(s.clone());
            let p = r.apply(s.clone() / sum.clone());
            let parts = loss_terms(&r.apply(p.log()));
            let q = r.apply(ds.clone() / sum.clone());
            let tw = match &dense_target {
                Some(t) => TargetWeights::Dense(r.apply(r.apply(t.clone() * ds) / s.clone())),
                None => TargetWeights::Label {
                    index: target_index.clone(),
                    weight: Some(r.apply(
                        ds.gather(1, target_index.clone())
                            / s.clone().gather(1, target_index.clone()),
                    )),
                },
            };
            let log_norm = r.apply(sum.clone().log());
            let absorbed = sum.clone().equal(s.clone().gather(1, target_index.clone()));
            (parts, q, tw, log_norm, absorbed, s, sum)
        }
    };

    // Per-row loss parts, reduced separately as PyTorch does with label smoothing.
    let reduce = |rows: Tensor<B, 1>| match plan.reduction {
        Reduction::Mean => r.apply(r.total(rows) / n as f64),
        Reduction::Sum => r.total(rows),
        Reduction::None => rows,
    };
    let mut rows = nll.clone();
    // PyTorch and burn negate after reducing: a sum of zero losses is -0.0, not +0.0.
    let mut loss = reduce(nll.clone().neg()).neg();
    if let Some(smooth) = smooth {
        rows = rows * (1.0 - a) + smooth.clone() * (a / k as f64);
        loss = r.apply(r.apply(loss * (1.0 - a)) + r.apply(reduce(smooth) * (a / k as f64)));
    }
    let log_norm_rows = log_norm.clone().reshape([n]);
    let q = if plan.z_loss > 0.0 {
        let squared = r.apply(log_norm_rows.clone() * log_norm_rows.clone());
        rows = rows + squared.clone() * plan.z_loss;
        loss = r.apply(loss + r.apply(reduce(squared) * plan.z_loss));
        // d(z lse^2)/dz_k = 2 z lse q_k.
        let factor = r.apply(log_norm.clone() * (2.0 * plan.z_loss));
        r.apply(q.clone() + r.apply(q * factor))
    } else {
        q
    };

    let stats = if plan.stats {
        let mean_logit = z.clone().mean();
        // The runner-up: add -inf at the label (an O(N) scatter; in place, as this is the last
        // use of `z`) and take the row max.
        let minus_inf = Tensor::<B, 2>::full([n, 1], f64::NEG_INFINITY, (&device, dtype.into()));
        let runner_up = z
            .scatter(1, target_index.clone(), minus_inf, IndexingUpdateOp::Add)
            .max_dim(1);
        let margin = (z_label.clone() - runner_up).reshape([n]);
        let label_is_max = z_label.equal(z_max).reshape([n]);
        // Residual mass sum_{k != r} term_k / S: the label's own term set to exactly zero.
        let label_term = terms.clone().gather(1, target_index.clone());
        let residual = (terms
            .scatter(
                1,
                target_index.clone(),
                label_term.neg(),
                IndexingUpdateOp::Add,
            )
            .sum_dim(1)
            / sum)
            .reshape([n]);
        Some(CollapseStats::from_rows(
            absorbed.reshape([n]).bool_and(label_is_max),
            rows.clone().equal_elem(0.0),
            margin,
            residual,
            log_norm_rows,
            mean_logit,
        ))
    } else {
        None
    };
    let grad = need_grad.then(|| {
        GradParts::Device(DeviceGrad {
            q,
            tw,
            rounding: r,
            reduction: plan.reduction,
            zero_sum: plan.zero_sum,
            logits_dtype,
        })
    });
    Ok(Forward {
        loss: loss.cast(logits_dtype),
        grad,
        stats,
    })
}

/// A tensor of ones with `x`'s shape, dtype and device.
fn ones_like<B: Backend>(x: &Tensor<B, 2>) -> Tensor<B, 2> {
    Tensor::ones(x.shape(), (&x.device(), x.dtype()))
}
