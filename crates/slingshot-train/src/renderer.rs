//! A headless renderer that prints metric values: burn-train's own CLI renderer prints only
//! the progress, so without the `tui` dashboard a collapse would not be seen.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};

use crate::TrainError;

use burn_train::LearnerSummary;
use burn_train::metric::{MetricDefinition, MetricId};
use burn_train::renderer::{
    EvaluationName, EvaluationProgress, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining, ProgressType, TrainingProgress,
};

/// Prints one line of every numeric metric's batch value at every `every`-th training
/// iteration of an epoch (burn-train counts iterations from 1 in each epoch) and at each
/// epoch's last one, one line with the last validation batch's values per epoch, and a text
/// metric (such as [`crate::CollapseWarning`]) whenever its text changes.
pub struct MetricLinesRenderer {
    every: usize,
    values: bool,
    names: HashMap<MetricId, String>,
    order: Vec<MetricId>,
    train: HashMap<MetricId, f64>,
    valid: HashMap<MetricId, f64>,
    texts: HashMap<MetricId, String>,
    out: Box<dyn Write + Send + Sync>,
    bar: Option<ProgressBar>,
}

impl MetricLinesRenderer {
    /// Lines every `every` iterations on standard output.
    ///
    /// # Panics
    /// If `every` is 0; [`Self::try_new`] returns the error.
    #[track_caller]
    pub fn new(every: usize) -> Self {
        match Self::try_new(every) {
            Ok(renderer) => renderer,
            Err(e) => panic!("{e}"),
        }
    }

    /// Lines every `every` iterations on standard output, or [`TrainError::Zero`].
    pub fn try_new(every: usize) -> Result<Self, TrainError> {
        Self::with_writer(every, Box::new(std::io::stdout()))
    }

    /// Only the text metrics (the warning), on standard output: no value lines.
    pub fn warnings_only() -> Self {
        let mut renderer = Self::new(1);
        renderer.values = false;
        renderer
    }

    /// Lines every `every` iterations to `out`, or [`TrainError::Zero`].
    pub fn with_writer(
        every: usize,
        out: Box<dyn Write + Send + Sync>,
    ) -> Result<Self, TrainError> {
        if every == 0 {
            return Err(TrainError::Zero {
                what: "the renderer's line interval `every`",
            });
        }
        Ok(Self {
            every,
            values: true,
            names: HashMap::new(),
            order: Vec::new(),
            train: HashMap::new(),
            valid: HashMap::new(),
            texts: HashMap::new(),
            out,
            bar: None,
        })
    }

    /// Adds a progress bar over `iterations` training iterations in all, on a terminal
    /// only and unless `quiet`; the lines then print above it.
    pub fn with_progress_bar(mut self, iterations: u64, quiet: bool) -> Self {
        if !quiet && std::io::stdout().is_terminal() {
            let bar = ProgressBar::new(iterations);
            let style = ProgressStyle::with_template(
                "[{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
            )
            .expect("a valid template");
            bar.set_style(style);
            self.bar = Some(bar);
        }
        self
    }

    /// Clears the bar and flushes the writer.
    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let _ = self.out.flush();
    }

    /// The end of training or testing: the bar ends, and burn-train's summary (which its
    /// default renderers print to stdout) goes to this renderer's writer before the flush.
    fn end(&mut self, summary: Option<LearnerSummary>) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if let Some(summary) = summary {
            let _ = writeln!(self.out, "{summary}");
        }
        self.finish();
    }

    fn print(&mut self, line: &str) {
        // Output is best effort: a closed pipe must not stop training.
        match &self.bar {
            Some(bar) => bar.println(line),
            None => {
                let _ = writeln!(self.out, "{line}");
            }
        }
    }

    fn update(&mut self, state: MetricState, valid: bool) {
        match state {
            MetricState::Numeric(entry, value) => {
                let values = if valid {
                    &mut self.valid
                } else {
                    &mut self.train
                };
                values.insert(entry.metric_id, value.current());
            }
            MetricState::Generic(entry) => {
                let text = entry.serialized_entry.formatted;
                if self.texts.get(&entry.metric_id) != Some(&text) {
                    let name = self
                        .names
                        .get(&entry.metric_id)
                        .cloned()
                        .unwrap_or_default();
                    self.print(&format!("{name}: {text}"));
                    self.texts.insert(entry.metric_id, text);
                }
            }
        }
    }

    fn line(&mut self, split: LineSplit, item: &TrainingProgress) {
        if !self.values {
            return;
        }
        let (split, values) = match split {
            LineSplit::Train => ("train", &self.train),
            LineSplit::Valid => ("valid", &self.valid),
            LineSplit::Test => ("test", &self.valid),
        };
        let mut line = format!(
            "{split} epoch {} iteration {}",
            item.global_progress.items_processed,
            item.iteration.unwrap_or(0)
        );
        for id in &self.order {
            if let (Some(name), Some(v)) = (self.names.get(id), values.get(id)) {
                line.push_str(&format!(" | {name} {}", format_value(*v)));
            }
        }
        self.print(&line);
    }
}

/// Which values a line prints; a test's values arrive through the validation map.
#[derive(Debug, Clone, Copy)]
enum LineSplit {
    Train,
    Valid,
    Test,
}

/// Whether `item` is the last batch of its epoch (or of its evaluation).
fn last_of_epoch(item: &TrainingProgress) -> bool {
    item.progress
        .as_ref()
        .is_some_and(|p| p.items_processed >= p.items_total)
}

/// Four significant digits, in scientific notation where fixed would hide them.
fn format_value(v: f64) -> String {
    if v != 0.0 && (v.abs() < 1e-3 || v.abs() >= 1e5) {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

impl MetricsRendererTraining for MetricLinesRenderer {
    fn update_train(&mut self, state: MetricState) {
        self.update(state, false);
    }

    fn update_valid(&mut self, state: MetricState) {
        self.update(state, true);
    }

    fn render_train(&mut self, item: TrainingProgress, _: Vec<ProgressType>) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
        // An epoch shorter than `every` still prints its last values.
        if item.iteration.unwrap_or(0).is_multiple_of(self.every) || last_of_epoch(&item) {
            self.line(LineSplit::Train, &item);
        }
    }

    fn render_valid(&mut self, item: TrainingProgress, _: Vec<ProgressType>) {
        if last_of_epoch(&item) {
            self.line(LineSplit::Valid, &item);
        }
    }

    fn on_train_end(
        &mut self,
        summary: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        // burn-train calls `manual_close` only for its dashboard: the bar ends here.
        self.end(summary);
        Ok(())
    }
}

impl MetricsRendererEvaluation for MetricLinesRenderer {
    fn update_test(&mut self, _: EvaluationName, state: MetricState) {
        self.update(state, true);
    }

    fn render_test(&mut self, item: EvaluationProgress, _: Vec<ProgressType>) {
        if item.progress.items_processed >= item.progress.items_total {
            self.line(LineSplit::Test, &TrainingProgress::from(&item));
        }
    }

    fn on_test_end(
        &mut self,
        summary: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        self.end(summary);
        Ok(())
    }
}

impl MetricsRenderer for MetricLinesRenderer {
    fn manual_close(&mut self) {
        self.finish();
    }

    fn register_metric(&mut self, definition: MetricDefinition) {
        if !self.names.contains_key(&definition.metric_id) {
            self.order.push(definition.metric_id.clone());
        }
        self.names.insert(definition.metric_id, definition.name);
        // burn-train registers metrics in no fixed order: print them by name.
        let names = &self.names;
        self.order.sort_by_key(|id| names.get(id).cloned());
    }
}
