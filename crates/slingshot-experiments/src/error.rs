//! What can go wrong in an experiment, said before any training where possible.

use std::path::PathBuf;

/// Errors of the experiment harness.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// A flag or configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The output directory cannot be created or written.
    #[error("output directory {path}: {reason}")]
    Output {
        /// The directory.
        path: PathBuf,
        /// Why it is unusable.
        reason: String,
    },
    /// A checkpoint cannot be resumed.
    #[error("cannot resume from {path}: {reason}")]
    Resume {
        /// The checkpoint directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Writing metrics, summaries, figures or checkpoints failed.
    #[error("writing {path}: {reason}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        reason: String,
    },
    /// A dataset file is missing, truncated or malformed.
    #[error("dataset file {path}: {reason}")]
    Dataset {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A primitive of the other crates rejected its input.
    #[error(transparent)]
    Loss(#[from] slingshot_loss::LossError),
    /// An nn primitive rejected its input.
    #[error(transparent)]
    Nn(#[from] slingshot_nn::NnError),
    /// An optimizer-side primitive rejected its input.
    #[error(transparent)]
    Optim(#[from] slingshot_optim::OptimError),
}
