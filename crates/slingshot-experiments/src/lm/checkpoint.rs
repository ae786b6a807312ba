//! Checkpoints of the language-model run: the model, AdamW's moments, the step, the clock and
//! the collapsed-token tally. Written beside the old one and renamed over it, so that a kill
//! at any moment leaves one whole checkpoint.

use std::path::{Path, PathBuf};

use burn::module::AutodiffModule;
use burn::optim::Optimizer;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use super::config::LmConfig;
use super::metrics::TopToken;
use crate::ExperimentError;
use crate::metrics::write_json;

/// `state.json` of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LmCheckpointState {
    /// Optimizer steps taken.
    pub step: u64,
    /// Rows of `metrics.csv` written up to this step.
    pub metrics_rows: usize,
    /// Training seconds so far.
    pub wall_seconds: f64,
    /// The run's configuration; a resume with another one is refused.
    pub config: LmConfig,
    /// Zero-loss count of every token so far.
    pub counts: Vec<u64>,
    /// The first logged step with a zero-loss token, and the tally then.
    pub first_collapse: Option<(u64, Vec<TopToken>)>,
}

fn recorder() -> NamedMpkFileRecorder<FullPrecisionSettings> {
    NamedMpkFileRecorder::<FullPrecisionSettings>::new()
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}.{suffix}", dir.display()))
}

/// Writes the checkpoint into `dir` by way of `dir.tmp` (and `dir.old` for the one it
/// replaces).
pub fn save<B, M, O>(
    dir: &Path,
    model: &M,
    optimizer: &O,
    state: &LmCheckpointState,
) -> Result<(), ExperimentError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    O: Optimizer<M, B>,
{
    let fail = |p: &Path, e: &dyn std::fmt::Display| ExperimentError::Write {
        path: p.to_path_buf(),
        reason: e.to_string(),
    };
    let (tmp, old) = (sibling(dir, "tmp"), sibling(dir, "old"));
    for stale in [&tmp, &old] {
        if stale.exists() {
            std::fs::remove_dir_all(stale).map_err(|e| fail(stale, &e))?;
        }
    }
    std::fs::create_dir_all(&tmp).map_err(|e| fail(&tmp, &e))?;
    model
        .clone()
        .save_file(tmp.join("model"), &recorder())
        .map_err(|e| fail(&tmp, &e))?;
    recorder()
        .record(optimizer.to_record(), tmp.join("optimizer"))
        .map_err(|e| fail(&tmp, &e))?;
    write_json(&tmp.join("state.json"), state)?;
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(|e| fail(dir, &e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| fail(dir, &e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| fail(&old, &e))?;
    }
    Ok(())
}

/// The checkpoint directory to resume from (`dir`, or `dir.old` when a kill came between the
/// renames) and its state.
pub fn read_state(dir: &Path) -> Result<(PathBuf, LmCheckpointState), ExperimentError> {
    let found = [dir.to_path_buf(), sibling(dir, "old")]
        .into_iter()
        .find(|d| d.join("state.json").is_file())
        .ok_or_else(|| ExperimentError::Resume {
            path: dir.to_path_buf(),
            reason: "no checkpoint there (run without --resume, or with --checkpoint-every)".into(),
        })?;
    let resume_err = |reason: String| ExperimentError::Resume {
        path: found.clone(),
        reason,
    };
    let text =
        std::fs::read_to_string(found.join("state.json")).map_err(|e| resume_err(e.to_string()))?;
    let state = serde_json::from_str(&text).map_err(|e| resume_err(format!("state.json: {e}")))?;
    Ok((found, state))
}

/// Loads the model and optimizer of a checkpoint: the modular harness's loader, which does not
/// depend on the state's type.
pub use crate::checkpoint::load;
