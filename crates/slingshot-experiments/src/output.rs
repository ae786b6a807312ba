//! The output directory of a run: checked before training, and the paths of its files.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::error::ExperimentError;

/// A run's output directory, known to be writable.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Creates `root` (and its parents) and proves it writable by writing and removing a file,
    /// so that a bad `--out` fails before any training.
    pub fn create(root: &Path) -> Result<Self, ExperimentError> {
        let err = |reason: String| ExperimentError::Output {
            path: root.to_path_buf(),
            reason,
        };
        if root.exists() && !root.is_dir() {
            return Err(err("exists and is not a directory".into()));
        }
        std::fs::create_dir_all(root).map_err(|e| err(format!("cannot create it: {e}")))?;
        let probe = root.join(".write-test");
        std::fs::write(&probe, b"ok").map_err(|e| err(format!("not writable: {e}")))?;
        std::fs::remove_file(&probe).map_err(|e| err(format!("not writable: {e}")))?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    /// The directory at `root`, without creating or checking it (for reading a run).
    pub fn at(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `metrics.csv`.
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.csv")
    }

    /// `summary.json`.
    pub fn summary(&self) -> PathBuf {
        self.root.join("summary.json")
    }

    /// `config.json`.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.json")
    }

    /// The checkpoint directory.
    pub fn checkpoint(&self) -> PathBuf {
        self.root.join("checkpoint")
    }

    /// A figure.
    pub fn figure(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

/// A progress bar over `steps`, hidden when `quiet` or when stdout is not a terminal.
pub fn progress_bar(steps: u64, quiet: bool, label: &str) -> ProgressBar {
    if quiet || !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta}) {msg}",
        )
        .expect("a valid template"),
    );
    bar.set_prefix(label.to_string());
    bar
}

/// Writes any serializable value as pretty JSON, atomically: a temporary file, synced, then
/// renamed over `path`, so that a kill leaves the old file or the new one.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), ExperimentError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| ExperimentError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_atomic(path, (text + "\n").as_bytes())
}

/// Writes `bytes` atomically: a temporary file, synced, then renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ExperimentError> {
    let err = |e: &dyn std::fmt::Display| ExperimentError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let mut file = std::fs::File::create(&tmp).map_err(|e| err(&e))?;
    std::io::Write::write_all(&mut file, bytes).map_err(|e| err(&e))?;
    file.sync_all().map_err(|e| err(&e))?;
    std::fs::rename(&tmp, path).map_err(|e| err(&e))
}
