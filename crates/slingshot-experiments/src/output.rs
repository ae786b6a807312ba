//! The output directory of a run: checked before training, and the paths of its files.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use serde::de::DeserializeOwned;

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

    /// A finished run's rows (`metrics.csv`) and summary (`summary.json`), of any task.
    pub fn read_outputs<R: DeserializeOwned, S: DeserializeOwned>(
        &self,
    ) -> Result<(Vec<R>, S), ExperimentError> {
        let rows = crate::run::csv_log::read_rows(&self.metrics())?;
        let path = self.summary();
        let unreadable = |reason: String| ExperimentError::Read {
            path: path.clone(),
            reason,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| unreadable(e.to_string()))?;
        let summary = serde_json::from_str(&text).map_err(|e| unreadable(e.to_string()))?;
        Ok((rows, summary))
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
