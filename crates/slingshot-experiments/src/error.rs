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
    /// An output of a run (metrics, summary) cannot be read back.
    #[error("reading {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
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
    /// An arm's child process failed (it printed its own error).
    #[error("arm {arm} failed: {reason}")]
    ArmFailed {
        /// The arm.
        arm: String,
        /// Its exit status, or why it could not start.
        reason: String,
    },
    /// SIGTERM or SIGINT stopped the run; the arms' checkpoints stay for `--resume`.
    #[error("stopped by signal {signal}; continue with --resume")]
    Interrupted {
        /// The signal.
        signal: i32,
    },
    /// A test hook stopped the run inside a checkpoint save, as a kill would
    /// ([`crate::run::RunOptions::kill_in_save`]).
    #[error("stopped inside the checkpoint save of step {step} (test hook)")]
    Killed {
        /// The step whose checkpoint was being saved.
        step: u64,
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

/// The process exit code of a binary's result, printing the error to stderr.
pub fn exit_code(result: Result<(), ExperimentError>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
