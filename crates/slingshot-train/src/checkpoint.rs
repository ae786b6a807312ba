//! Checkpoints that survive a kill: burn-train's file checkpointer writes each record in
//! place, so a kill during a save leaves a truncated file that the next resume loads.

use std::path::{Path, PathBuf};

use burn::record::{FileRecorder, Recorder, RecorderError};
use burn::tensor::backend::Backend;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A file recorder that writes through `R` to a hidden file beside the target, syncs it, and
/// renames it into place: a reader sees the old record or the new one, never part of one.
/// Give it to burn-train's `with_file_checkpointer`.
#[derive(Debug, Clone, Default)]
pub struct AtomicFileRecorder<R> {
    inner: R,
}

impl<R> AtomicFileRecorder<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Self { inner }
    }
}

fn io(e: std::io::Error) -> RecorderError {
    RecorderError::Unknown(e.to_string())
}

/// The rename itself reaches the disk with the directory's sync (POSIX); other systems
/// cannot open a directory as a file, and their rename is as durable as it gets.
fn sync_dir(dir: &Path) -> Result<(), RecorderError> {
    if cfg!(unix) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

impl<B: Backend, R: FileRecorder<B>> Recorder<B> for AtomicFileRecorder<R> {
    type Settings = R::Settings;
    type RecordArgs = PathBuf;
    type RecordOutput = ();
    type LoadArgs = PathBuf;

    fn save_item<I: Serialize>(&self, item: I, mut file: PathBuf) -> Result<(), RecorderError> {
        file.set_extension(R::file_extension());
        let name = file
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| RecorderError::Unknown(format!("no file name in {}", file.display())))?;
        let parent = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        // `R` sets its own extension on the path it is given: the hidden name keeps it.
        let partial = parent.join(format!(".partial-{name}"));
        self.inner.save_item(item, partial.clone())?;
        let written = partial.with_extension(R::file_extension());
        std::fs::File::open(&written)
            .and_then(|f| f.sync_all())
            .map_err(io)?;
        std::fs::rename(&written, &file).map_err(io)?;
        sync_dir(parent)
    }

    fn load_item<I: DeserializeOwned>(&self, file: &mut PathBuf) -> Result<I, RecorderError> {
        <R as Recorder<B>>::load_item(&self.inner, file)
    }
}

impl<B: Backend, R: FileRecorder<B>> FileRecorder<B> for AtomicFileRecorder<R> {
    fn file_extension() -> &'static str {
        R::file_extension()
    }
}

/// The epochs, in order, whose model, optimizer and scheduler records burn-train's
/// checkpointer has all written under `{dir}/checkpoint` (files
/// `{model,optim,scheduler}-{epoch}.{ext}`). Each of the three is saved on its own thread:
/// after a kill the newest epoch may have only some of them.
pub fn checkpoint_epochs(dir: &Path, extension: &str) -> Vec<usize> {
    let checkpoints = dir.join("checkpoint");
    let Ok(entries) = std::fs::read_dir(&checkpoints) else {
        return Vec::new();
    };
    let mut epochs: Vec<usize> = entries
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            let epoch = name
                .strip_prefix("model-")?
                .strip_suffix(&format!(".{extension}"))?;
            epoch.parse::<usize>().ok()
        })
        .filter(|e| {
            ["optim", "scheduler"].iter().all(|part| {
                checkpoints
                    .join(format!("{part}-{e}.{extension}"))
                    .is_file()
            })
        })
        .collect();
    epochs.sort_unstable();
    epochs
}

/// The latest of [`checkpoint_epochs`], or `None`.
pub fn latest_checkpoint(dir: &Path, extension: &str) -> Option<usize> {
    checkpoint_epochs(dir, extension).last().copied()
}
