//! `metrics.csv` of any task: one serialized row per logged step, flushed after each, and read
//! back on resume up to the checkpoint's row.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ExperimentError;
use crate::output::RunDir;

fn write_err(path: &Path, e: impl std::fmt::Display) -> ExperimentError {
    ExperimentError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// An open `metrics.csv`, flushed after every row so that a killed run loses nothing logged.
pub struct CsvLog {
    path: PathBuf,
    writer: csv::Writer<File>,
}

impl CsvLog {
    /// Replaces `path` with a file holding `rows` (the rows kept on resume). The rows go to a
    /// temporary file renamed over `path`, so a kill here leaves the old file or the new one.
    pub fn create<T: Serialize>(path: &Path, rows: &[T]) -> Result<Self, ExperimentError> {
        let tmp = PathBuf::from(format!("{}.tmp", path.display()));
        let mut writer = csv::Writer::from_path(&tmp).map_err(|e| write_err(&tmp, e))?;
        for row in rows {
            writer.serialize(row).map_err(|e| write_err(&tmp, e))?;
        }
        writer.flush().map_err(|e| write_err(&tmp, e))?;
        writer
            .get_ref()
            .sync_all()
            .map_err(|e| write_err(&tmp, e))?;
        // The open handle follows the file through the rename.
        std::fs::rename(&tmp, path).map_err(|e| write_err(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            writer,
        })
    }

    /// Puts every row written so far on the disk: before a checkpoint that counts them.
    pub fn sync(&mut self) -> Result<(), ExperimentError> {
        self.writer.flush().map_err(|e| write_err(&self.path, e))?;
        self.writer
            .get_ref()
            .sync_data()
            .map_err(|e| write_err(&self.path, e))
    }

    /// Appends one row.
    pub fn write<T: Serialize>(&mut self, row: &T) -> Result<(), ExperimentError> {
        self.writer
            .serialize(row)
            .map_err(|e| write_err(&self.path, e))?;
        self.writer.flush().map_err(|e| write_err(&self.path, e))
    }
}

/// Every row of a `metrics.csv`.
pub fn read_rows<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, ExperimentError> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| read_err(path, e))?;
    reader
        .deserialize()
        .collect::<Result<Vec<T>, _>>()
        .map_err(|e| read_err(path, e))
}

fn read_err(path: &Path, e: impl std::fmt::Display) -> ExperimentError {
    ExperimentError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// The first `n` rows of `metrics.csv`, for a resume from a checkpoint that had written `n`.
/// Rows after them (a partial last row of a kill included) are not read: they are logged
/// again.
pub fn read_prefix<T: DeserializeOwned>(path: &Path, n: usize) -> Result<Vec<T>, ExperimentError> {
    let refuse = |reason: String| ExperimentError::Resume {
        path: path.to_path_buf(),
        reason,
    };
    if !path.is_file() {
        return Err(refuse(format!(
            "metrics.csv is missing, and the checkpoint expects its first {n} rows; without them the run cannot resume (start it again with --overwrite)"
        )));
    }
    let mut reader = csv::Reader::from_path(path).map_err(|e| refuse(e.to_string()))?;
    let rows = reader
        .deserialize()
        .take(n)
        .collect::<Result<Vec<T>, _>>()
        .map_err(|e| refuse(format!("a row before the checkpoint's is unreadable: {e}")))?;
    if rows.len() < n {
        return Err(refuse(format!(
            "has {} rows, the checkpoint expects {n}; without them the run cannot resume (start it again with --overwrite)",
            rows.len()
        )));
    }
    Ok(rows)
}

/// A finished run's rows (`metrics.csv`) and summary (`summary.json`), of any task.
pub fn read_outputs<R: DeserializeOwned, S: DeserializeOwned>(
    dir: &RunDir,
) -> Result<(Vec<R>, S), ExperimentError> {
    let rows = read_rows(&dir.metrics())?;
    let path = dir.summary();
    let text = std::fs::read_to_string(&path).map_err(|e| read_err(&path, e))?;
    let summary = serde_json::from_str(&text).map_err(|e| read_err(&path, e))?;
    Ok((rows, summary))
}
