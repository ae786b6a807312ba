//! What was wrong with an optimizer-side configuration.

use thiserror::Error;

/// Errors of `slingshot-optim` constructors.
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
}
