//! Checkpoints: the model, the optimizer state, the step and the clock, written so that a kill
//! at any moment leaves either the previous checkpoint or the new one, never half of one.

use std::path::{Path, PathBuf};

use burn::module::AutodiffModule;
use burn::optim::Optimizer;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use crate::ExperimentError;
use crate::config::TrainConfig;
use crate::metrics::write_json;

/// `state.json` of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Optimizer steps taken.
    pub step: u64,
    /// Rows of `metrics.csv` written up to this step.
    pub metrics_rows: usize,
    /// Training seconds so far.
    pub wall_seconds: f64,
    /// The run's configuration; a resume with another one is refused.
    pub config: TrainConfig,
    /// The last sharpness estimate's eigenvector, where the next estimate starts.
    #[serde(default)]
    pub sharpness_vector: Option<Vec<f64>>,
}

fn recorder() -> NamedMpkFileRecorder<FullPrecisionSettings> {
    NamedMpkFileRecorder::<FullPrecisionSettings>::new()
}

fn write_err(path: &Path, e: impl std::fmt::Display) -> ExperimentError {
    ExperimentError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Writes the checkpoint into `dir`: first into `dir.tmp`, then renamed over `dir`.
pub fn save<B, M, O>(
    dir: &Path,
    model: &M,
    optimizer: &O,
    state: &CheckpointState,
) -> Result<(), ExperimentError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    O: Optimizer<M, B>,
{
    let tmp = PathBuf::from(format!("{}.tmp", dir.display()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| write_err(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| write_err(&tmp, e))?;
    model
        .clone()
        .save_file(tmp.join("model"), &recorder())
        .map_err(|e| write_err(&tmp.join("model.mpk"), e))?;
    recorder()
        .record(optimizer.to_record(), tmp.join("optimizer"))
        .map_err(|e| write_err(&tmp.join("optimizer.mpk"), e))?;
    write_json(&tmp.join("state.json"), state)?;
    // The old checkpoint goes only once the new one is complete.
    let old = PathBuf::from(format!("{}.old", dir.display()));
    if dir.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| write_err(&old, e))?;
        }
        std::fs::rename(dir, &old).map_err(|e| write_err(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| write_err(dir, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| write_err(&old, e))?;
    }
    Ok(())
}

/// Reads `state.json` of the checkpoint in `dir` (or of `dir.old`, when a kill came between
/// the two renames of [`save`]).
pub fn read_state(dir: &Path) -> Result<(PathBuf, CheckpointState), ExperimentError> {
    let old = PathBuf::from(format!("{}.old", dir.display()));
    let dir = if dir.join("state.json").exists() {
        dir.to_path_buf()
    } else if old.join("state.json").exists() {
        old
    } else {
        return Err(ExperimentError::Resume {
            path: dir.to_path_buf(),
            reason: "no checkpoint there (run without --resume, or with --checkpoint-every)".into(),
        });
    };
    let text =
        std::fs::read_to_string(dir.join("state.json")).map_err(|e| ExperimentError::Resume {
            path: dir.clone(),
            reason: e.to_string(),
        })?;
    let state = serde_json::from_str(&text).map_err(|e| ExperimentError::Resume {
        path: dir.clone(),
        reason: format!("state.json: {e}"),
    })?;
    Ok((dir, state))
}

/// Loads the model and optimizer of the checkpoint in `dir` into `model` and `optimizer`.
pub fn load<B, M, O>(
    dir: &Path,
    model: M,
    optimizer: O,
    device: &B::Device,
) -> Result<(M, O), ExperimentError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    O: Optimizer<M, B>,
{
    let err = |e: &dyn std::fmt::Display| ExperimentError::Resume {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    };
    let model = model
        .load_file(dir.join("model"), &recorder(), device)
        .map_err(|e| err(&e))?;
    let record = recorder()
        .load(dir.join("optimizer"), device)
        .map_err(|e| err(&e))?;
    Ok((model, optimizer.load_record(record)))
}
