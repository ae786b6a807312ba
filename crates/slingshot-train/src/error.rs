//! What the constructors of this crate refuse.

use thiserror::Error;

/// A value a metric, output or optimizer of this crate cannot be built with.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum TrainError {
    /// The collapse warning's threshold is a fraction of rows.
    #[error("the collapse warning threshold must be in (0, 1], got {0}")]
    InvalidThreshold(f64),
    /// Tensors of one step output disagree in shape.
    #[error("{what}: expected {expected:?}, got {got:?}")]
    Shape {
        /// Which tensor.
        what: &'static str,
        /// The shape the other tensors imply.
        expected: Vec<usize>,
        /// Its shape.
        got: Vec<usize>,
    },
    /// A count that must be at least 1.
    #[error("{what} must be at least 1")]
    Zero {
        /// Which count.
        what: &'static str,
    },
    /// The optimizer's configuration is invalid.
    #[error(transparent)]
    Optimizer(#[from] slingshot_optim::OptimError),
    /// A metric log that cannot be read back.
    #[error("metric log {path}: {reason}")]
    Log {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}
