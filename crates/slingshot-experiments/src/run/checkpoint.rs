//! Checkpoints of any task: the model and optimizer files the task writes, and `state.json`
//! with the step, the clock, the configuration and the task's own state.
//!
//! A save never leaves less than one whole checkpoint. It writes `dir.tmp` completely and
//! syncs it, renames `dir` to `dir.old`, renames `dir.tmp` to `dir`, syncs the parent, and only
//! then removes `dir.old`. A kill at any point leaves `dir` or `dir.old` whole; [`read_state`]
//! takes whichever is.

use std::fs::File;
use std::path::{Path, PathBuf};

use burn::module::AutodiffModule;
use burn::optim::Optimizer;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::ExperimentError;

/// The checkpoint format this build writes. Format 1 (no `format` field) has the same layout
/// and is read as well.
pub const CHECKPOINT_FORMAT: u32 = 2;

fn format_one() -> u32 {
    1
}

/// `state.json` of a checkpoint: what every task keeps, and the task's own state `X`
/// flattened beside it (so that the fields of format 1 keep their names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState<C, X> {
    /// The checkpoint format ([`CHECKPOINT_FORMAT`]).
    #[serde(default = "format_one")]
    pub format: u32,
    /// Optimizer steps taken.
    pub step: u64,
    /// Rows of `metrics.csv` written up to this step.
    pub metrics_rows: usize,
    /// Training seconds so far.
    pub wall_seconds: f64,
    /// The run's configuration; a resume with another one is refused.
    pub config: C,
    /// The task's own state (the sharpness vector, the token tally, ...).
    #[serde(flatten)]
    pub task: X,
}

/// The points of a save a test can stop at, as a kill would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveStage {
    /// `dir.tmp` is created, nothing is in it yet.
    TmpCreated,
    /// The model and optimizer files are in `dir.tmp`.
    PartsWritten,
    /// `state.json` is written and `dir.tmp` is synced.
    TmpComplete,
    /// `dir` is renamed to `dir.old`.
    OldMoved,
    /// `dir.tmp` is renamed to `dir`.
    NewInPlace,
    /// `dir.old` is removed.
    Done,
}

impl SaveStage {
    /// Every stage, in order.
    pub const ALL: [SaveStage; 6] = [
        SaveStage::TmpCreated,
        SaveStage::PartsWritten,
        SaveStage::TmpComplete,
        SaveStage::OldMoved,
        SaveStage::NewInPlace,
        SaveStage::Done,
    ];
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}.{suffix}", dir.display()))
}

fn write_err(path: &Path, e: impl std::fmt::Display) -> ExperimentError {
    ExperimentError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Flushes a file or directory to the disk, so that a rename after it publishes whole data.
fn sync(path: &Path) -> Result<(), ExperimentError> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| write_err(path, e))
}

/// Writes a checkpoint into `dir`: `write_parts` puts the model and optimizer files into the
/// directory it is given, then `state.json` follows. `stop_at` is a test hook: the save
/// returns at that stage as if the process were killed there.
pub fn save<S: Serialize>(
    dir: &Path,
    write_parts: impl FnOnce(&Path) -> Result<(), ExperimentError>,
    state: &S,
    stop_at: Option<SaveStage>,
) -> Result<(), ExperimentError> {
    let (tmp, old) = (sibling(dir, "tmp"), sibling(dir, "old"));
    let stop = |stage| stop_at == Some(stage);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| write_err(&tmp, e))?;
    }
    // `dir.old` is removable only while `dir` is whole; otherwise it is the one checkpoint.
    if old.exists() && dir.join("state.json").is_file() {
        std::fs::remove_dir_all(&old).map_err(|e| write_err(&old, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| write_err(&tmp, e))?;
    if stop(SaveStage::TmpCreated) {
        return Ok(());
    }
    write_parts(&tmp)?;
    if stop(SaveStage::PartsWritten) {
        return Ok(());
    }
    crate::output::write_json(&tmp.join("state.json"), state)?;
    for entry in std::fs::read_dir(&tmp).map_err(|e| write_err(&tmp, e))? {
        sync(&entry.map_err(|e| write_err(&tmp, e))?.path())?;
    }
    sync(&tmp)?;
    if stop(SaveStage::TmpComplete) {
        return Ok(());
    }
    if dir.exists() {
        if old.exists() {
            // `dir` is a leftover without state.json while `dir.old` is whole: keep the whole one.
            std::fs::remove_dir_all(dir).map_err(|e| write_err(dir, e))?;
        } else {
            std::fs::rename(dir, &old).map_err(|e| write_err(dir, e))?;
        }
    }
    if stop(SaveStage::OldMoved) {
        return Ok(());
    }
    std::fs::rename(&tmp, dir).map_err(|e| write_err(dir, e))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync(parent)?;
    }
    if stop(SaveStage::NewInPlace) {
        return Ok(());
    }
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| write_err(&old, e))?;
    }
    Ok(())
}

/// Whether `dir` (or `dir.old`, after a kill between the renames) holds a whole checkpoint.
pub fn exists(dir: &Path) -> bool {
    dir.join("state.json").is_file() || sibling(dir, "old").join("state.json").is_file()
}

/// The whole checkpoint to resume from (`dir`, or `dir.old` when a kill came between the
/// renames of [`save`]) and its state.
pub fn read_state<C: DeserializeOwned, X: DeserializeOwned>(
    dir: &Path,
) -> Result<(PathBuf, CheckpointState<C, X>), ExperimentError> {
    let found = [dir.to_path_buf(), sibling(dir, "old")]
        .into_iter()
        .find(|d| d.join("state.json").is_file())
        .ok_or_else(|| ExperimentError::Resume {
            path: dir.to_path_buf(),
            reason: "no checkpoint there (it is written every --checkpoint-every steps); start the run again with --overwrite".into(),
        })?;
    let resume_err = |reason: String| ExperimentError::Resume {
        path: found.clone(),
        reason,
    };
    let text =
        std::fs::read_to_string(found.join("state.json")).map_err(|e| resume_err(e.to_string()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| resume_err(format!("state.json: {e}")))?;
    let format = value.get("format").and_then(|f| f.as_u64()).unwrap_or(1);
    if format > u64::from(CHECKPOINT_FORMAT) {
        return Err(resume_err(format!(
            "checkpoint format {format} was written by a newer slingshot; this build reads formats 1 to {CHECKPOINT_FORMAT}"
        )));
    }
    let state = serde_json::from_value(value).map_err(|e| {
        resume_err(format!(
            "state.json (checkpoint format {format}) does not match this task: {e}"
        ))
    })?;
    Ok((found, state))
}

fn recorder() -> NamedMpkFileRecorder<FullPrecisionSettings> {
    NamedMpkFileRecorder::<FullPrecisionSettings>::new()
}

/// Writes `model.mpk` and `optimizer.mpk` into `dir`: the `write_parts` of most tasks.
pub fn save_model<B, M, O>(dir: &Path, model: &M, optimizer: &O) -> Result<(), ExperimentError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    O: Optimizer<M, B>,
{
    model
        .clone()
        .save_file(dir.join("model"), &recorder())
        .map_err(|e| write_err(&dir.join("model.mpk"), e))?;
    recorder()
        .record(optimizer.to_record(), dir.join("optimizer"))
        .map_err(|e| write_err(&dir.join("optimizer.mpk"), e))
}

/// Loads the model and optimizer of the checkpoint in `dir` into `model` and `optimizer`.
pub fn load_model<B, M, O>(
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
    let model = model
        .load_file(dir.join("model"), &recorder(), device)
        .map_err(|_| unreadable(dir, "model.mpk"))?;
    let record = recorder()
        .load(dir.join("optimizer"), device)
        .map_err(|_| unreadable(dir, "optimizer.mpk"))?;
    Ok((model, optimizer.load_record(record)))
}

/// A file of a checkpoint that burn cannot decode: truncated, corrupt, or of another model.
fn unreadable(dir: &Path, file: &str) -> ExperimentError {
    let path = dir.join(file);
    let size =
        std::fs::metadata(&path).map_or("missing".to_string(), |m| format!("{} bytes", m.len()));
    ExperimentError::Resume {
        path,
        reason: format!(
            "{file} cannot be read ({size}: truncated, corrupt, or written for another model); this checkpoint is unusable, start the run again with --overwrite"
        ),
    }
}
