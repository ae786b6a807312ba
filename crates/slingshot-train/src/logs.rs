//! Reading back what burn-train's file logger wrote: one line per batch.

use std::path::{Path, PathBuf};

use burn_train::logger::MetricLogger;
use burn_train::metric::store::{EpochSummary, MetricsUpdate, Split};
use burn_train::metric::{MetricDefinition, NumericEntry};

use crate::TrainError;

/// The file burn-train's `FileMetricLogger` writes metric `name` to for `split` (`"train"`,
/// `"valid"`) and `epoch` (from 1): `{dir}/{split}/epoch-{epoch}/{name, spaces as _}.log`.
pub fn metric_log_path(dir: &Path, split: &str, epoch: usize, name: &str) -> PathBuf {
    dir.join(split)
        .join(format!("epoch-{epoch}"))
        .join(format!("{}.log", name.replace(' ', "_")))
}

/// The batch values of a numeric metric's log, each with its batch size (`value,size`
/// per line, as `NumericMetricState` writes them; a bare `value` counts one). A last line
/// without its newline is left out: a kill cut it short, and its digits may be too.
pub fn read_numeric_log(path: &Path) -> Result<Vec<(f64, usize)>, TrainError> {
    let bad = |reason: String| TrainError::Log {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let whole = text.rfind('\n').map_or("", |end| &text[..=end]);
    whole
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let (value, size) = line.split_once(',').unwrap_or((line, "1"));
            let value = value.parse::<f64>();
            let size = size.parse::<usize>();
            match (value, size) {
                (Ok(v), Ok(n)) => Ok((v, n)),
                _ => Err(bad(format!("line {}: `{line}` is not `value,size`", i + 1))),
            }
        })
        .collect()
}

/// A metric logger for a resumed run. burn-train 0.21's event store numbers the first epoch
/// after `.checkpoint(k)` as epoch 1 (and the ones after it correctly), so its file logger
/// would overwrite epoch 1's logs with epoch `k + 1`'s. This writes that epoch as `k + 1`.
/// Reads pass through unchanged: they name epochs that are on disk under their own numbers.
/// Register it with `with_metric_logger` (which replaces burn-train's default file logger).
pub struct ResumedMetricLogger<L> {
    inner: L,
    first_epoch: usize,
}

impl<L: MetricLogger> ResumedMetricLogger<L> {
    /// Wraps `inner` for a run that resumes at epoch `first_epoch` (`k + 1`; 1 for a fresh
    /// run, where nothing changes).
    pub fn new(inner: L, first_epoch: usize) -> Self {
        Self { inner, first_epoch }
    }

    /// The wrapped logger.
    pub fn into_inner(self) -> L {
        self.inner
    }

    fn epoch(&self, epoch: usize) -> usize {
        epoch.max(self.first_epoch)
    }
}

impl<L: MetricLogger> MetricLogger for ResumedMetricLogger<L> {
    fn log(&mut self, update: MetricsUpdate, epoch: usize, split: &Split) {
        let epoch = self.epoch(epoch);
        self.inner.log(update, epoch, split);
    }

    fn read_numeric(
        &mut self,
        name: &str,
        epoch: usize,
        split: &Split,
    ) -> Result<Vec<NumericEntry>, String> {
        self.inner.read_numeric(name, epoch, split)
    }

    fn log_metric_definition(&mut self, definition: MetricDefinition) {
        self.inner.log_metric_definition(definition);
    }

    fn log_epoch_summary(&mut self, summary: EpochSummary) {
        self.inner.log_epoch_summary(summary);
    }
}
