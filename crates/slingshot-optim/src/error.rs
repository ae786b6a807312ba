//! What was wrong with an optimizer-side configuration or input.

use thiserror::Error;

/// Errors of `slingshot-optim` constructors and checked steps.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum OptimError {
    /// A configuration value outside its range.
    #[error("invalid {name} = {value}: expected {expected}")]
    InvalidConfig {
        /// Which value.
        name: &'static str,
        /// Its value.
        value: f64,
        /// The allowed range, in words.
        expected: &'static str,
    },
    /// A learning rate that is NaN, infinite or negative.
    #[error("invalid learning rate {lr}: expected a finite value >= 0")]
    InvalidLearningRate {
        /// The learning rate passed.
        lr: f64,
    },
    /// A burn optimizer configuration that could not be read.
    #[error("cannot read {what} from burn's optimizer configuration")]
    UnreadableConfig {
        /// The field that was missing or not a number.
        what: &'static str,
    },
}
