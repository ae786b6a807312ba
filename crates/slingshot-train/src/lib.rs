//! slingshot inside burn-train's `Learner`: the collapse statistics, the classifier's feature
//! inflation and Adam's effective learning rate as burn-train metrics, a warning when softmax
//! collapse starts, and [`slingshot_optim::ProbedAdam`] as the Learner's optimizer.
//!
//! burn-train is used without its default features; `tui` and `sys-metrics` turn on its
//! dashboard and system metrics.
//!
//! * Return [`CollapseOutput`] from your `TrainStep` instead of burn's `ClassificationOutput`
//!   (it wraps one, so burn's `LossMetric` and `AccuracyMetric` still work), with the
//!   precision your loss computes in. Add the classifier with
//!   [`CollapseOutput::try_with_classifier`] for the NFI metrics.
//! * Register [`CollapseMetric`]s (the collapsed fraction, zero-loss fraction, residual mass,
//!   margin over the absorption threshold, mean logit), [`NfiMetric`]s and a
//!   [`CollapseWarning`] with `metric_train_numeric` / `metric_train`. The collapse metrics
//!   also read burn's own `ClassificationOutput`; burn-train syncs it in the metrics
//!   device's default dtype (f32), so bf16, f16 or f64 logits need [`CollapseOutput`].
//! * Train with [`LearnerAdam`] and register [`EffectiveLrMetric`]s on the same
//!   [`ProbeFeed`]. Its record is `ProbedAdam`'s, saved and restored by burn-train's
//!   checkpointer.
//! * [`MetricLinesRenderer`] prints the values headless; burn-train's CLI renderer prints
//!   only the progress.
//!
//! `docs/burn-train.md` in the repository has the whole example a user copies.

mod checkpoint;
mod effective_lr;
mod error;
mod input;
mod logs;
mod metric;
mod output;
mod renderer;
mod warning;

pub use checkpoint::{AtomicFileRecorder, checkpoint_epochs, latest_checkpoint};
pub use effective_lr::{
    EffectiveLrMetric, EffectiveLrQuantity, EffectiveLrSource, LearnerAdam, ProbeFeed,
    ProbeReading, ProbeScope,
};
pub use error::TrainError;
pub use input::{CollapseInput, NfiInput, loss_format};
pub use logs::{ResumedMetricLogger, metric_log_path, read_numeric_log};
pub use metric::{
    BatchQuantity, CollapseMetric, CollapseQuantity, NfiMetric, NfiQuantity, QuantityMetric,
};
pub use output::{ClassifierParts, CollapseItem, CollapseOutput};
pub use renderer::MetricLinesRenderer;
pub use warning::CollapseWarning;
