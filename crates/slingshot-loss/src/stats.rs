//! Softmax-collapse statistics, computed on the device in the same pass as the loss.

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Bool, DType, Element, Tensor};

/// Per-row and per-batch collapse statistics of one forward pass.
///
/// Every field is a tensor on the loss's device: nothing is read back to the host until the
/// caller reads it (for example with [`CollapseStats::summary`], one read for all batch values).
///
/// The float fields are in the dtype the loss was computed in ([`CollapseStats::dtype`]): f64
/// under `LossPrecision::F64` even for f32 logits, f32 for emulated bf16/f16. Read them with the
/// typed accessors ([`CollapseStats::margins`] and friends), which convert, rather than with
/// `into_data().to_vec::<f32>()`, which fails on a dtype mismatch.
#[derive(Debug, Clone)]
pub struct CollapseStats<B: Backend> {
    /// Per row: the normalizer sum is exactly the label's own term in the loss precision (1 for
    /// softmax) and the label is the arg-max. Use it as a token mask.
    pub collapsed: Tensor<B, 1, Bool>,
    /// Per row: the row's loss is exactly zero.
    pub zero_loss: Tensor<B, 1, Bool>,
    /// Per row: margin `z_r - max_{k != r} z_k`.
    pub margin: Tensor<B, 1>,
    /// Per row: residual mass `epsilon = sum_{k != r} p_k`.
    pub residual_mass: Tensor<B, 1>,
    /// Per row: `z_max + ln sum exp(z - z_max)` (StableMax: `ln sum s(z)`).
    pub log_sum_exp: Tensor<B, 1>,
    /// The batch values, in the order of [`CollapseSummary`]'s fields, as one `[8]` tensor.
    pub batch: Tensor<B, 1>,
}

/// The batch statistics read back to the host.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CollapseSummary {
    /// Fraction of rows in softmax collapse.
    pub collapsed_fraction: f64,
    /// Fraction of rows whose loss is exactly zero.
    pub zero_loss_fraction: f64,
    /// Mean residual mass.
    pub mean_residual_mass: f64,
    /// Largest residual mass.
    pub max_residual_mass: f64,
    /// Smallest margin.
    pub min_margin: f64,
    /// Mean margin.
    pub mean_margin: f64,
    /// Mean log-sum-exp.
    pub mean_log_sum_exp: f64,
    /// Mean logit over the whole batch.
    pub mean_logit: f64,
}

impl CollapseSummary {
    /// The summary from [`CollapseStats::batch`]'s values once they are on the host, for a
    /// caller that reads them in its own transaction with other tensors.
    pub fn from_batch_values(v: &[f64; 8]) -> CollapseSummary {
        CollapseSummary {
            collapsed_fraction: v[0],
            zero_loss_fraction: v[1],
            mean_residual_mass: v[2],
            max_residual_mass: v[3],
            min_margin: v[4],
            mean_margin: v[5],
            mean_log_sum_exp: v[6],
            mean_logit: v[7],
        }
    }

    /// The summary of a batch from those of its disjoint parts and their row counts: means
    /// and fractions weighted by rows, the extremes of the extremes. Parts with no rows are
    /// ignored; with no rows at all every field is NaN.
    pub fn merge(parts: &[(CollapseSummary, usize)]) -> CollapseSummary {
        let rows: usize = parts.iter().map(|&(_, n)| n).sum();
        let parts = parts.iter().filter(|&&(_, n)| n > 0);
        let mean = |f: fn(&CollapseSummary) -> f64| {
            parts.clone().map(|(s, n)| f(s) * *n as f64).sum::<f64>() / rows as f64
        };
        let fold = |f: fn(&CollapseSummary) -> f64, pick: fn(f64, f64) -> f64| {
            parts
                .clone()
                .map(|(s, _)| f(s))
                .reduce(pick)
                .unwrap_or(f64::NAN)
        };
        CollapseSummary {
            collapsed_fraction: mean(|s| s.collapsed_fraction),
            zero_loss_fraction: mean(|s| s.zero_loss_fraction),
            mean_residual_mass: mean(|s| s.mean_residual_mass),
            max_residual_mass: fold(|s| s.max_residual_mass, f64::max),
            min_margin: fold(|s| s.min_margin, f64::min),
            mean_margin: mean(|s| s.mean_margin),
            mean_log_sum_exp: mean(|s| s.mean_log_sum_exp),
            mean_logit: mean(|s| s.mean_logit),
        }
    }
}

impl<B: Backend> CollapseStats<B> {
    /// The dtype of the float fields: the loss's compute dtype.
    pub fn dtype(&self) -> DType {
        self.margin.dtype()
    }

    /// Per-row margins on the host, converted to `E` (one device read).
    pub fn margins<E: Element>(&self) -> Vec<E> {
        host_values(self.margin.clone())
    }

    /// Per-row residual masses on the host, converted to `E` (one device read).
    pub fn residual_masses<E: Element>(&self) -> Vec<E> {
        host_values(self.residual_mass.clone())
    }

    /// Per-row log-sum-exp on the host, converted to `E` (one device read).
    pub fn log_sum_exps<E: Element>(&self) -> Vec<E> {
        host_values(self.log_sum_exp.clone())
    }

    /// Per-row collapse flags on the host (one device read). Read through integers: CubeCL
    /// backends store booleans as u8/u32.
    pub fn collapsed_rows(&self) -> Vec<bool> {
        host_flags(self.collapsed.clone())
    }

    /// Per-row zero-loss flags on the host (one device read).
    pub fn zero_loss_rows(&self) -> Vec<bool> {
        host_flags(self.zero_loss.clone())
    }

    /// Reads the batch statistics back to the host: one device read.
    pub fn summary(&self) -> CollapseSummary {
        let v = self
            .batch
            .clone()
            .into_data()
            .convert::<f64>()
            .to_vec::<f64>()
            .expect("f64 statistics");
        CollapseSummary::from_batch_values(&v.try_into().expect("8 batch statistics"))
    }

    /// Builds the statistics from the per-row values; the batch reductions stay on the device.
    pub(crate) fn from_rows(
        collapsed: Tensor<B, 1, Bool>,
        zero_loss: Tensor<B, 1, Bool>,
        margin: Tensor<B, 1>,
        residual_mass: Tensor<B, 1>,
        log_sum_exp: Tensor<B, 1>,
        mean_logit: Tensor<B, 1>,
    ) -> Self {
        let dtype = margin.dtype();
        // Five per-row vectors, one mean over them: fewer small ops than five reductions.
        let per_row = Tensor::stack::<2>(
            vec![
                collapsed.clone().float().cast(dtype),
                zero_loss.clone().float().cast(dtype),
                residual_mass.clone(),
                margin.clone(),
                log_sum_exp.clone(),
            ],
            0,
        );
        Self::from_block(
            per_row,
            collapsed,
            zero_loss,
            margin,
            residual_mass,
            log_sum_exp,
            mean_logit,
        )
    }

    /// [`Self::from_rows`] where a kernel already wrote the `[5, n]` block of the per-row
    /// vectors averaged for the batch values: collapsed and zero-loss as 1/0, residual mass,
    /// margin, log-sum-exp.
    pub(crate) fn from_block(
        per_row: Tensor<B, 2>,
        collapsed: Tensor<B, 1, Bool>,
        zero_loss: Tensor<B, 1, Bool>,
        margin: Tensor<B, 1>,
        residual_mass: Tensor<B, 1>,
        log_sum_exp: Tensor<B, 1>,
        mean_logit: Tensor<B, 1>,
    ) -> Self {
        let dtype = margin.dtype();
        let means = per_row.mean_dim(1).reshape([5]);
        let batch = Tensor::cat(
            vec![
                means.clone().narrow(0, 0, 3),
                residual_mass.clone().max(),
                margin.clone().min(),
                means.narrow(0, 3, 2),
                mean_logit.cast(dtype),
            ],
            0,
        );
        Self {
            collapsed,
            zero_loss,
            margin,
            residual_mass,
            log_sum_exp,
            batch,
        }
    }
}

impl<B: Backend> CollapseStats<B> {
    /// Lifts statistics computed on an autodiff backend's inner backend (they carry no graph).
    pub(crate) fn lift<A: AutodiffBackend<InnerBackend = B>>(self) -> CollapseStats<A> {
        CollapseStats {
            collapsed: Tensor::from_inner(self.collapsed),
            zero_loss: Tensor::from_inner(self.zero_loss),
            margin: Tensor::from_inner(self.margin),
            residual_mass: Tensor::from_inner(self.residual_mass),
            log_sum_exp: Tensor::from_inner(self.log_sum_exp),
            batch: Tensor::from_inner(self.batch),
        }
    }
}

fn host_values<B: Backend, E: Element>(x: Tensor<B, 1>) -> Vec<E> {
    x.into_data()
        .convert::<E>()
        .to_vec::<E>()
        .expect("converted to the asked type")
}

fn host_flags<B: Backend>(x: Tensor<B, 1, Bool>) -> Vec<bool> {
    x.int()
        .into_data()
        .convert::<i64>()
        .to_vec::<i64>()
        .expect("converted to i64")
        .into_iter()
        .map(|v| v != 0)
        .collect()
}
