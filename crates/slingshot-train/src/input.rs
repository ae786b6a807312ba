//! What the collapse and NFI metrics read from a step: host values computed once per batch.

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Int, Tensor};
use burn_train::ClassificationOutput;
use burn_train::metric::Adaptor;
use slingshot_loss::{CollapseAwareCrossEntropyConfig, CollapseSummary, LossPrecision};
use slingshot_nn::NfiSummary;
use slingshot_numerics::{FloatFormat, collapse_impossible_below};

/// One batch's collapse statistics ([`slingshot_loss::CollapseStats`]'s summary) in the
/// training precision, and the absorption margin of that precision.
#[derive(Debug, Clone, PartialEq)]
pub struct CollapseInput {
    /// Rows in the batch: the weight of its values in an epoch's running mean.
    pub rows: usize,
    /// The batch statistics.
    pub summary: CollapseSummary,
    /// [`collapse_impossible_below`] of the loss's format: the margin a row must pass before
    /// its softmax sum can absorb to exactly 1 (16.64 for f32, 5.52 for bf16).
    pub threshold: f64,
}

impl CollapseInput {
    /// The statistics of `logits` `[N, K]` and `targets` `[N]` as
    /// [`slingshot_loss::CollapseAwareCrossEntropy`] with `precision` computes them: the same
    /// definitions as [`slingshot_loss::CollapseStats`], on the tensors' own backend.
    pub fn compute<B: Backend>(
        logits: Tensor<B, 2>,
        targets: Tensor<B, 1, Int>,
        precision: LossPrecision,
    ) -> Self {
        let [rows, _] = logits.dims();
        let format = loss_format(precision, logits.dtype());
        let loss = CollapseAwareCrossEntropyConfig::new()
            .with_precision(precision)
            .init::<B>(&logits.device());
        let stats = loss.forward_with_stats(logits.detach(), targets).stats;
        Self {
            rows,
            summary: stats.summary(),
            threshold: collapse_impossible_below(format),
        }
    }
}

/// The format a loss with `precision` computes in, for logits of `dtype`.
pub fn loss_format(precision: LossPrecision, dtype: DType) -> FloatFormat {
    precision.format().unwrap_or(match dtype {
        DType::F64 => FloatFormat::F64,
        DType::BF16 => FloatFormat::BF16,
        DType::F16 => FloatFormat::F16,
        _ => FloatFormat::F32,
    })
}

/// One batch's NFI values, when the step output carried the classifier and the features.
#[derive(Debug, Clone, PartialEq)]
pub struct NfiInput {
    /// Rows in the batch.
    pub rows: usize,
    /// [`slingshot_nn::NfiDiagnostics`]'s inflation values, or `None` without a classifier.
    pub summary: Option<NfiSummary>,
}

/// burn's own output (what a step with `CrossEntropyLoss` returns) feeds the collapse metrics
/// too. burn-train syncs it to the metrics device's default float dtype (f32 unless the
/// process set another), so the statistics are judged in that dtype whatever the logits'
/// dtype was, and each metric computes them again. [`crate::CollapseOutput`] keeps the loss
/// precision and computes them once per batch.
impl<B: Backend> Adaptor<CollapseInput> for ClassificationOutput<B> {
    fn adapt(&self) -> CollapseInput {
        CollapseInput::compute(
            self.output.clone(),
            self.targets.clone(),
            LossPrecision::Native,
        )
    }
}
