//! What was wrong with a loss configuration or a batch.

use thiserror::Error;

use crate::LossPrecision;

/// Errors of [`crate::CollapseAwareCrossEntropy::try_forward`] and of configuration checks.
/// `forward` and `init` panic with the same messages.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum LossError {
    /// A target outside `[0, classes)`.
    #[error(
        "targets must lie in [0, {classes}): found {count} outside (smallest {min}, largest {max})"
    )]
    TargetOutOfRange {
        /// Number of classes `K`.
        classes: usize,
        /// How many targets are outside.
        count: usize,
        /// Smallest target.
        min: i64,
        /// Largest target.
        max: i64,
    },
    /// Logits and targets disagree on the number of rows.
    #[error(
        "logits have {logits_rows} rows but targets have {targets_rows}; expected one target per row"
    )]
    ShapeMismatch {
        /// Rows of the logits (`batch` or `batch * seq`).
        logits_rows: usize,
        /// Number of targets.
        targets_rows: usize,
    },
    /// Fewer than 2 classes.
    #[error("logits have {classes} {}; a cross-entropy needs at least 2", class_noun(.classes))]
    TooFewClasses {
        /// Size of the class dimension.
        classes: usize,
    },
    /// No rows.
    #[error("the batch is empty; expected at least one row of logits")]
    EmptyBatch,
    /// NaN or infinite logits.
    #[error("logits contain {count} non-finite values (NaN or infinity); logits must be finite")]
    NonFiniteLogits {
        /// How many values are NaN or infinite.
        count: usize,
    },
    /// Label smoothing outside `[0, 1]`.
    #[error("smoothing = {0} is invalid; expected a value in [0, 1]")]
    InvalidLabelSmoothing(f64),
    /// A class weight that is not finite and positive.
    #[error("weights[{class}] = {weight} is invalid; class weights must be finite and > 0")]
    InvalidWeight {
        /// The class.
        class: usize,
        /// Its weight.
        weight: f32,
    },
    /// Class weights for another number of classes.
    #[error("{weights} class weights were given for logits with {classes} classes")]
    WeightCount {
        /// How many weights the config has.
        weights: usize,
        /// Size of the class dimension.
        classes: usize,
    },
    /// Two options that the loss does not combine.
    #[error("{0}")]
    IncompatibleOptions(&'static str),
    /// A negative or non-finite z-loss coefficient.
    #[error("z_loss = {0} is invalid; expected a finite value >= 0")]
    InvalidZLoss(f64),
    /// The precision cannot be computed on this backend, natively or emulated.
    #[error(
        "precision {precision:?} is not available for {dtype} logits on backend {backend}: {reason}; {instead}"
    )]
    UnsupportedPrecision {
        /// The requested precision.
        precision: LossPrecision,
        /// The logits' dtype.
        dtype: String,
        /// The backend's name.
        backend: String,
        /// Why.
        reason: &'static str,
        /// What to use instead.
        instead: &'static str,
    },
}

/// "class" or "classes" for `n`.
fn class_noun(n: &usize) -> &'static str {
    if *n == 1 { "class" } else { "classes" }
}
