//! What was wrong with a layer configuration or an input.

use thiserror::Error;

/// Errors of `slingshot-nn` constructors and `try_*` functions.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum NnError {
    /// A layer dimension of zero.
    #[error("{what} must be at least 1, got 0")]
    ZeroSized {
        /// Which dimension.
        what: &'static str,
    },
    /// A classifier needs at least two classes for its class mean to mean anything.
    #[error("a classifier needs at least 2 classes, got {classes}")]
    TooFewClasses {
        /// The number of classes (output features).
        classes: usize,
    },
    /// Shapes that do not fit together.
    #[error("shape mismatch: {what}")]
    ShapeMismatch {
        /// What did not fit, with the shapes.
        what: String,
    },
    /// A negative or non-finite penalty weight.
    #[error("gamma = {0} is invalid; expected a finite value >= 0")]
    InvalidGamma(f64),
    /// A non-positive or non-finite logit-clamp margin.
    #[error("logit clamp margin = {0} is invalid; expected a finite value > 0")]
    InvalidMargin(f64),
}

/// A classifier's dimensions: at least one input feature and two classes.
pub(crate) fn check_classifier_dims(d_input: usize, d_output: usize) -> Result<(), NnError> {
    if d_input == 0 {
        return Err(NnError::ZeroSized { what: "d_input" });
    }
    if d_output < 2 {
        return Err(NnError::TooFewClasses { classes: d_output });
    }
    Ok(())
}
