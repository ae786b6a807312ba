//! A burn-train metric that warns when softmax collapse starts.

use std::sync::Arc;

use burn_train::metric::{Metric, MetricMetadata, MetricName, SerializedEntry};

use crate::TrainError;
use crate::input::CollapseInput;

/// A text metric that says when a batch's collapsed fraction first reaches a threshold (and
/// again each time it comes back after falling below). Each crossing is also a
/// `log::warn!`, which burn-train writes to its `experiment.log`. The dashboard and
/// [`crate::MetricLinesRenderer`] show its text; its log file has one line per batch:
/// `collapsed_fraction,1` at or above the threshold, `collapsed_fraction,0` below.
#[derive(Debug, Clone)]
pub struct CollapseWarning {
    threshold: f64,
    above: bool,
    crossings: usize,
    message: String,
    name: MetricName,
}

impl CollapseWarning {
    /// Warns when the collapsed fraction of a batch reaches `threshold`, in `(0, 1]`.
    pub fn try_new(threshold: f64) -> Result<Self, TrainError> {
        if !(threshold > 0.0 && threshold <= 1.0) {
            return Err(TrainError::InvalidThreshold(threshold));
        }
        Ok(Self {
            threshold,
            above: false,
            crossings: 0,
            message: format!("no softmax collapse (threshold {})", percent(threshold)),
            name: Arc::new("Collapse Warning".to_string()),
        })
    }

    /// How many times the collapsed fraction has reached the threshold from below.
    pub fn crossings(&self) -> usize {
        self.crossings
    }
}

fn percent(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

impl Metric for CollapseWarning {
    type Input = CollapseInput;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn update(&mut self, input: &CollapseInput, meta: &MetricMetadata) -> SerializedEntry {
        let fraction = input.summary.collapsed_fraction;
        let above = fraction >= self.threshold;
        if above && !self.above {
            self.crossings += 1;
            self.message = format!(
                "SOFTMAX COLLAPSE: {} of rows collapsed (threshold {}) at epoch {} iteration {}",
                percent(fraction),
                percent(self.threshold),
                meta.global_progress.items_processed,
                meta.iteration.unwrap_or(0),
            );
            log::warn!("{}", self.message);
        }
        self.above = above;
        SerializedEntry::new(
            self.message.clone(),
            format!("{fraction},{}", u8::from(above)),
        )
    }

    // The warning outlives an epoch: a collapse that began stays reported.
    fn clear(&mut self) {}
}
