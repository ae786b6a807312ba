//! The loss module: checks, 2-D and 3-D logits, output.

use std::marker::PhantomData;

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Int, Tensor, Transaction};

use crate::dispatch::{self, Inputs, LossParts};
use crate::kernel::LossPlan;
use crate::{CollapseAwareCrossEntropyConfig, CollapseStats, LossError};

/// A cross-entropy that reports softmax collapse and lets you choose its numerics.
///
/// A drop-in for burn's `CrossEntropyLoss`: [`forward`](Self::forward) returns the loss tensor
/// as burn's does, with burn's `pad_tokens`, `weights` and `smoothing`. On top of that: the
/// precision you choose ([`LossPrecision`](crate::LossPrecision)), one autodiff node whose
/// backward is PyTorch's log-softmax + NLL gradient in that precision (so in f32 the
/// correct-class gradient is exactly 0 under collapse, as with the framework's own loss),
/// optional zero-sum projection, z-loss and StableMax, and [`CollapseStats`] from the same pass
/// through [`forward_with_stats`](Self::forward_with_stats). It runs on every burn backend with
/// only burn's bounds; the fused kernels are chosen inside (see `docs/loss.md`).
#[derive(Module, Debug)]
pub struct CollapseAwareCrossEntropy<B: Backend> {
    #[module(skip)]
    plan: LossPlan,
    #[module(skip)]
    check_inputs: bool,
    _backend: PhantomData<B>,
}

/// The loss and the collapse statistics of the same pass.
#[derive(Debug, Clone)]
pub struct CrossEntropyOutput<B: Backend> {
    /// The loss: `[1]` for mean and sum reductions, one value per row for
    /// `LossReduction::None`.
    pub loss: Tensor<B, 1>,
    /// Statistics of the same pass.
    pub stats: CollapseStats<B>,
}

impl<B: Backend> CollapseAwareCrossEntropy<B> {
    pub(crate) fn from_config(
        config: &CollapseAwareCrossEntropyConfig,
        _device: &B::Device,
    ) -> Self {
        Self {
            plan: LossPlan {
                precision: config.precision,
                normalizer: config.normalizer,
                smoothing: config.smoothing.map_or(0.0, f64::from),
                z_loss: config.z_loss,
                reduction: config.reduction,
                stats: false,
                zero_sum: config.zero_sum_projection,
                portable_only: false,
                weights: config.weights.clone(),
                pad_tokens: config.pad_tokens.clone(),
            },
            check_inputs: config.check_inputs,
            _backend: PhantomData,
        }
    }

    /// The same loss, always computed by the portable kernel on burn's tensor ops, even on a
    /// backend that has a fused kernel. This is for comparing them and for measuring what the
    /// fused kernel saves.
    pub fn with_portable_kernel(mut self) -> Self {
        self.plan.portable_only = true;
        self
    }

    /// The loss of `logits` `[batch, classes]` against `targets` `[batch]`, like burn's
    /// `CrossEntropyLoss::forward`; panics with the [`LossError`] message on bad input.
    #[track_caller]
    pub fn forward(&self, logits: Tensor<B, 2>, targets: Tensor<B, 1, Int>) -> Tensor<B, 1> {
        match self.try_forward(logits, targets) {
            Ok(loss) => loss,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`Self::forward`], or what was wrong with the input.
    pub fn try_forward(
        &self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 1, Int>,
    ) -> Result<Tensor<B, 1>, LossError> {
        Ok(self.run(logits, targets, false)?.0)
    }

    /// The loss and the [`CollapseStats`] of the same pass (on the device: nothing is read
    /// back until you read them); panics with the [`LossError`] message on bad input.
    #[track_caller]
    pub fn forward_with_stats(
        &self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 1, Int>,
    ) -> CrossEntropyOutput<B> {
        match self.try_forward_with_stats(logits, targets) {
            Ok(out) => out,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`Self::forward_with_stats`], or what was wrong with the input.
    pub fn try_forward_with_stats(
        &self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 1, Int>,
    ) -> Result<CrossEntropyOutput<B>, LossError> {
        let (loss, stats) = self.run(logits, targets, true)?;
        let stats = stats.expect("statistics were asked for");
        Ok(CrossEntropyOutput { loss, stats })
    }

    /// Language-model logits `[batch, seq, vocab]` against `[batch, seq]` targets, flattened to
    /// `batch * seq` rows (row `b * seq + s`); panics on bad input.
    #[track_caller]
    pub fn forward_3d(&self, logits: Tensor<B, 3>, targets: Tensor<B, 2, Int>) -> Tensor<B, 1> {
        match self.try_forward_3d(logits, targets) {
            Ok(loss) => loss,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`Self::forward_3d`], or what was wrong with the input.
    pub fn try_forward_3d(
        &self,
        logits: Tensor<B, 3>,
        targets: Tensor<B, 2, Int>,
    ) -> Result<Tensor<B, 1>, LossError> {
        let (logits, targets) = flatten(logits, targets)?;
        self.try_forward(logits, targets)
    }

    /// [`Self::forward_3d`] with the statistics, one row per token; panics on bad input.
    #[track_caller]
    pub fn forward_3d_with_stats(
        &self,
        logits: Tensor<B, 3>,
        targets: Tensor<B, 2, Int>,
    ) -> CrossEntropyOutput<B> {
        match self.try_forward_3d_with_stats(logits, targets) {
            Ok(out) => out,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`Self::forward_3d_with_stats`], or what was wrong with the input.
    pub fn try_forward_3d_with_stats(
        &self,
        logits: Tensor<B, 3>,
        targets: Tensor<B, 2, Int>,
    ) -> Result<CrossEntropyOutput<B>, LossError> {
        let (logits, targets) = flatten(logits, targets)?;
        self.try_forward_with_stats(logits, targets)
    }

    fn run(
        &self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 1, Int>,
        stats: bool,
    ) -> Result<LossParts<B>, LossError> {
        let [rows, classes] = logits.dims();
        let [targets_rows] = targets.dims();
        check_shapes(rows, classes, targets_rows)?;
        if let Some(weights) = &self.plan.weights
            && weights.len() != classes
        {
            return Err(LossError::WeightCount {
                weights: weights.len(),
                classes,
            });
        }
        if self.check_inputs {
            check_values(&logits, &targets, classes)?;
        }
        let plan = LossPlan {
            stats,
            ..self.plan.clone()
        };
        dispatch::cross_entropy(logits, targets, &plan)
    }
}

/// `[batch, seq, vocab]` and `[batch, seq]` as `batch * seq` rows.
fn flatten<B: Backend>(
    logits: Tensor<B, 3>,
    targets: Tensor<B, 2, Int>,
) -> Result<Inputs<B>, LossError> {
    let [batch, seq, vocab] = logits.dims();
    let [t_batch, t_seq] = targets.dims();
    if (batch, seq) != (t_batch, t_seq) {
        return Err(LossError::ShapeMismatch {
            logits_rows: batch * seq,
            targets_rows: t_batch * t_seq,
        });
    }
    Ok((
        logits.reshape([batch * seq, vocab]),
        targets.reshape([batch * seq]),
    ))
}

fn check_shapes(rows: usize, classes: usize, targets_rows: usize) -> Result<(), LossError> {
    if rows != targets_rows {
        return Err(LossError::ShapeMismatch {
            logits_rows: rows,
            targets_rows,
        });
    }
    if rows == 0 {
        return Err(LossError::EmptyBatch);
    }
    if classes < 2 {
        return Err(LossError::TooFewClasses { classes });
    }
    Ok(())
}

/// Target range and finiteness, read back together in one host transfer.
///
/// Finiteness is probed with one sum over the logits (NaN or infinity anywhere makes it
/// non-finite); the exact count for the error message is only computed when it is.
fn check_values<B: Backend>(
    logits: &Tensor<B, 2>,
    targets: &Tensor<B, 1, Int>,
    classes: usize,
) -> Result<(), LossError> {
    let outside = targets.clone().lower_elem(0).int().sum()
        + targets
            .clone()
            .greater_equal_elem(classes as i64)
            .int()
            .sum();
    let dtype = outside.dtype();
    let bounds = Tensor::cat(
        vec![
            outside,
            targets.clone().min().cast(dtype),
            targets.clone().max().cast(dtype),
        ],
        0,
    );
    let data = Transaction::default()
        .register(bounds)
        .register(logits.clone().sum())
        .execute();
    let v = data[0]
        .clone()
        .convert::<i64>()
        .to_vec::<i64>()
        .expect("i64 checks");
    let probe = data[1]
        .clone()
        .convert::<f64>()
        .to_vec::<f64>()
        .expect("f64 probe")[0];
    if v[0] > 0 {
        return Err(LossError::TargetOutOfRange {
            classes,
            count: v[0] as usize,
            min: v[1],
            max: v[2],
        });
    }
    if !probe.is_finite() {
        let count = (logits.clone().is_nan().int().sum() + logits.clone().is_inf().int().sum())
            .into_scalar()
            .elem::<i64>();
        // A sum of finite logits can only overflow for values near the format's maximum.
        if count > 0 {
            return Err(LossError::NonFiniteLogits {
                count: count as usize,
            });
        }
    }
    Ok(())
}
