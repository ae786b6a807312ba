//! The classifier updates around a slingshot spike (the paper's Fig. 2(a)) and §4.1's scalar
//! estimate of the spike update, for the `update-spike` binary.
//!
//! [`run`] trains the f32 arm once to find its first loss spike, then trains the same seed
//! again up to [`SpikeWindow::window`] steps past it, logging every step near the spike and
//! recording each step's classifier update `w_after - w_before` in [`UPDATES_FILE`] (logging
//! more often changes no number: [`check_same_numbers`] checks it).
//! [`analyse`] then summarises the recorded updates:
//!
//! - the "at" step is the recorded step with the largest finite mean `|update|`, and "before"
//!   and "after" are [`SpikeWindow::offset`] recorded steps away ([`pick_steps`]);
//! - each of the three steps is summarised by [`StepUpdates`];
//! - §4.1's estimate ([`Estimate`], via [`estimate_reemergence_update`]) takes the gradient
//!   held before the spike as the root mean square of the classifier-weight gradient at the
//!   "before" step ([`gradient_rms`]; the step just before "at" already carries the
//!   re-emerging gradient), and a re-emerging gradient of [`G_AFTER`] `= 2^-23`.
//!
//! The results go to [`REPORT_FILE`] as a [`Report`].

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use slingshot_numerics::{AdamHyper, BiasCorrection, estimate_reemergence_update};

use crate::config::TrainConfig;
use crate::error::ExperimentError;
use crate::metrics::MetricsRow;
use crate::metrics::{UPDATES_FILE, f64_or_nan, read_updates, write_json};
use crate::output::RunDir;
use crate::run::RunOptions;
use crate::train::{RunResult, learning_rate};

/// The report's file name in the experiment's output directory.
pub const REPORT_FILE: &str = "update-spike.json";

/// §4.1's re-emerging gradient: f32's absorption threshold `2^-23` (`f32::EPSILON`,
/// `exp(-(p - 1) ln 2)` in the paper).
pub const G_AFTER: f64 = f32::EPSILON as f64;

/// The updates of one recorded step, as `(step, one update per classifier-weight entry)`:
/// what [`read_updates`] returns one of.
pub type RecordedStep = (u64, Vec<f64>);

/// Which steps around the spike are recorded and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpikeWindow {
    /// Steps recorded on each side of the first spike.
    pub window: u64,
    /// Distance, in recorded steps, of "before" and "after" from the "at" step.
    pub offset: u64,
}

impl SpikeWindow {
    /// Checks `window >= 2` and `0 < offset < window`.
    pub fn validate(&self) -> Result<(), ExperimentError> {
        if self.window < 2 || self.offset == 0 || self.offset >= self.window {
            return Err(ExperimentError::InvalidConfig(format!(
                "--window {} and --offset {}: need window >= 2 and 0 < offset < window",
                self.window, self.offset
            )));
        }
        Ok(())
    }

    /// The re-run of `config` around the first spike `spike`: the arm `window`, trained to
    /// `spike + window` steps (at most `config.steps`), and the steps whose updates it records,
    /// from `spike - window` (at least 1) to its last step.
    pub fn rerun(&self, config: &TrainConfig, spike: u64) -> (TrainConfig, RangeInclusive<u64>) {
        let mut rerun = config.clone();
        rerun.arm = "window".into();
        rerun.steps = (spike + self.window).min(config.steps);
        let range = spike.saturating_sub(self.window).max(1)..=rerun.steps;
        (rerun, range)
    }
}

/// Mean, median and largest magnitude of one step's updates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepUpdates {
    /// The step.
    pub step: u64,
    /// Mean `|update|` (0 for no update).
    #[serde(deserialize_with = "f64_or_nan")]
    pub mean_abs: f64,
    /// Median `|update|`: the upper median (`sorted[n / 2]`) for an even count; NaN for no
    /// update.
    #[serde(deserialize_with = "f64_or_nan")]
    pub median_abs: f64,
    /// Largest `|update|` (NaN for no update).
    #[serde(deserialize_with = "f64_or_nan")]
    pub max_abs: f64,
}

impl StepUpdates {
    /// The statistics of `values`, the updates of `step`.
    pub fn of(step: u64, values: &[f64]) -> Self {
        let mut abs: Vec<f64> = values.iter().map(|v| v.abs()).collect();
        abs.sort_by(f64::total_cmp);
        Self {
            step,
            mean_abs: abs.iter().sum::<f64>() / abs.len().max(1) as f64,
            median_abs: abs.get(abs.len() / 2).copied().unwrap_or(f64::NAN),
            max_abs: abs.last().copied().unwrap_or(f64::NAN),
        }
    }
}

/// Indices into the recorded steps of "before", "at" and "after".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpikeSteps {
    /// `at - offset`, at least 0.
    pub before: usize,
    /// The step with the largest finite mean `|update|` (the last one on a tie).
    pub at: usize,
    /// `at + offset`, at most the last index.
    pub after: usize,
}

/// Picks "at" (the largest finite mean `|update|`) and "before"/"after" `offset` recorded
/// steps away, clamped to the recorded steps. Fails when no step has a finite mean.
pub fn pick_steps(updates: &[RecordedStep], offset: u64) -> Result<SpikeSteps, ExperimentError> {
    let (at, _) = updates
        .iter()
        .enumerate()
        .map(|(i, (s, v))| (i, StepUpdates::of(*s, v).mean_abs))
        .filter(|(_, m)| m.is_finite())
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .ok_or_else(|| ExperimentError::InvalidConfig("no update was recorded".into()))?;
    let offset = usize::try_from(offset).unwrap_or(usize::MAX);
    Ok(SpikeSteps {
        before: at.saturating_sub(offset),
        at,
        after: at.saturating_add(offset).min(updates.len() - 1),
    })
}

/// The root mean square of the classifier-weight gradient at `step`,
/// `classifier_grad_norm / sqrt(numel)`, from the logged `rows`; `None` when `step` was not
/// logged or its gradient was not probed.
pub fn gradient_rms(rows: &[MetricsRow], step: u64, numel: usize) -> Option<f64> {
    rows.iter()
        .find(|r| r.step == step)
        .and_then(|r| r.classifier_grad_norm)
        .map(|norm| norm / (numel as f64).sqrt())
}

/// §4.1's scalar estimate with the measured inputs (`estimate` in [`REPORT_FILE`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// The learning rate of the spike step (after warm-up).
    pub lr: f64,
    /// Adam's beta1.
    pub beta1: f64,
    /// Adam's beta2.
    pub beta2: f64,
    /// Adam's epsilon.
    pub eps: f64,
    /// The gradient held before the spike.
    pub g_before: f64,
    /// The re-emerging gradient.
    pub g_after: f64,
    /// `|update|` at the spike step.
    #[serde(deserialize_with = "f64_or_nan")]
    pub update: f64,
    /// The spike update over the update of the step before.
    #[serde(deserialize_with = "f64_or_nan")]
    pub amplification: f64,
}

impl Estimate {
    /// The update of a scalar that held `g_before` until `at_step`, where `g_after` re-emerges,
    /// under `config`'s Adam with its learning rate at `at_step` and bias correction at
    /// `at_step` ([`BiasCorrection::AtStep`]; `at_step >= 2`).
    pub fn new(
        config: &TrainConfig,
        at_step: u64,
        g_before: f64,
        g_after: f64,
    ) -> Result<Self, ExperimentError> {
        let invalid =
            |e: slingshot_numerics::NumericsError| ExperimentError::InvalidConfig(e.to_string());
        // `learning_rate` takes the steps taken before the step.
        let lr = learning_rate(config, at_step.saturating_sub(1));
        let hyper =
            AdamHyper::try_new(lr, config.beta1, config.beta2, config.eps).map_err(invalid)?;
        let est =
            estimate_reemergence_update(&hyper, g_before, g_after, BiasCorrection::AtStep(at_step))
                .map_err(invalid)?;
        Ok(Self {
            lr,
            beta1: config.beta1,
            beta2: config.beta2,
            eps: config.eps,
            g_before,
            g_after,
            update: est.update.abs(),
            amplification: est.amplification(),
        })
    }
}

/// [`REPORT_FILE`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The first loss spike of the first run (a logged step).
    pub first_spike: u64,
    /// `offset` recorded steps before "at".
    pub before: StepUpdates,
    /// The recorded step with the largest mean `|update|`.
    pub at: StepUpdates,
    /// `offset` recorded steps after "at".
    pub after: StepUpdates,
    /// `at.mean_abs / before.mean_abs`.
    #[serde(deserialize_with = "f64_or_nan")]
    pub measured_amplification: f64,
    /// §4.1's estimate.
    pub estimate: Estimate,
}

/// The report and where its three steps are among the recorded ones.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Analysis {
    /// What [`REPORT_FILE`] holds.
    pub report: Report,
    /// Indices of "before", "at" and "after" into the recorded updates.
    pub steps: SpikeSteps,
}

/// The statistics around the spike and §4.1's estimate, from the recorded `updates`, the
/// re-run's logged `rows` (for the gradient before the spike) and its `config` (for Adam's
/// hyper-parameters and the learning rate).
pub fn analyse(
    config: &TrainConfig,
    first_spike: u64,
    updates: &[RecordedStep],
    rows: &[MetricsRow],
    offset: u64,
) -> Result<Analysis, ExperimentError> {
    let steps = pick_steps(updates, offset)?;
    let pick = |i: usize| StepUpdates::of(updates[i].0, &updates[i].1);
    let (before, at, after) = (pick(steps.before), pick(steps.at), pick(steps.after));
    let g_before = gradient_rms(rows, before.step, updates[steps.at].1.len())
        .ok_or_else(|| ExperimentError::InvalidConfig("no probe before the spike".into()))?;
    let estimate = Estimate::new(config, at.step, g_before, G_AFTER)?;
    let report = Report {
        first_spike,
        before,
        at,
        after,
        measured_amplification: at.mean_abs / before.mean_abs,
        estimate,
    };
    Ok(Analysis { report, steps })
}

/// The re-run's rows must repeat the first run's loss and `||mu_G||` bit for bit at every step
/// both logged.
pub fn check_same_numbers(
    first: &[MetricsRow],
    second: &[MetricsRow],
) -> Result<(), ExperimentError> {
    for b in second {
        if let Some(a) = first.iter().find(|a| a.step == b.step)
            && (a.loss.to_bits() != b.loss.to_bits()
                || a.mu_g_norm.to_bits() != b.mu_g_norm.to_bits())
        {
            return Err(ExperimentError::InvalidConfig(format!(
                "the re-run differs from the first run at step {}: loss {} vs {}",
                b.step, b.loss, a.loss
            )));
        }
    }
    Ok(())
}

/// The first of a run's loss `spikes`, or the error that says to train longer than `steps`
/// (the run's output directory `run_dir` named in it).
pub fn first_spike(spikes: &[u64], steps: u64, run_dir: &Path) -> Result<u64, ExperimentError> {
    spikes.first().copied().ok_or_else(|| {
        ExperimentError::InvalidConfig(format!(
            "the run had no loss spike in {steps} steps: try more --steps (see {})",
            run_dir.display()
        ))
    })
}

/// Where [`run`] is, for the caller to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The first run, which finds the spike, starts.
    FirstRun,
    /// The re-run starts; it trains up to step `up_to` (`spike + window`, before the cap at the
    /// configured steps).
    WindowRun {
        /// `spike + window`.
        up_to: u64,
    },
}

/// What [`run`] returns.
#[derive(Debug)]
pub struct UpdateSpike {
    /// The experiment's output directory (the report and figures go here).
    pub root: RunDir,
    /// The steps whose updates the re-run recorded.
    pub recorded: RangeInclusive<u64>,
    /// The re-run's result.
    pub window_run: RunResult,
    /// The recorded updates, as [`read_updates`] reads them.
    pub updates: Vec<RecordedStep>,
    /// The statistics and the estimate.
    pub analysis: Analysis,
    /// Where the report was written.
    pub report_path: PathBuf,
}

impl UpdateSpike {
    /// The re-run's logged rows within the recorded steps.
    pub fn window_rows(&self) -> Vec<MetricsRow> {
        self.window_run
            .rows
            .iter()
            .filter(|r| self.recorded.contains(&r.step))
            .cloned()
            .collect()
    }

    /// The recorded updates of "before", "at" and "after", in that order.
    pub fn histogram_values(&self) -> [&[f64]; 3] {
        let s = self.analysis.steps;
        [s.before, s.at, s.after].map(|i| self.updates[i].1.as_slice())
    }
}

/// The whole experiment under `out`: `config` (its arm renamed `run`) trains once with
/// `options` into `out/run` to find its first spike, then again into `out/window` around it
/// (quiet as `options` says, no checkpoints), and the analysis is written to
/// `out/`[`REPORT_FILE`]. `progress` hears of each run before it starts. Validates `config`
/// and `window` before any training.
pub fn run(
    config: &TrainConfig,
    window: SpikeWindow,
    options: &RunOptions,
    out: &Path,
    mut progress: impl FnMut(Stage),
) -> Result<UpdateSpike, ExperimentError> {
    let mut config = config.clone();
    config.arm = "run".into();
    config.validate()?;
    window.validate()?;
    let root = RunDir::create(out)?;
    let run_dir = RunDir::create(&out.join("run"))?;
    let window_dir = RunDir::create(&out.join("window"))?;

    progress(Stage::FirstRun);
    let first = crate::run(&config, &run_dir, options)?;
    let spike = first_spike(&first.summary.spikes, config.steps, run_dir.root())?;

    progress(Stage::WindowRun {
        up_to: spike + window.window,
    });
    let (window_config, recorded) = window.rerun(&config, spike);
    let window_options = RunOptions {
        quiet: options.quiet,
        // The window run is derived from the first: it is redone whole every time.
        overwrite: true,
        record_updates: Some(recorded.clone()),
        ..RunOptions::default()
    };
    let window_run = crate::run(&window_config, &window_dir, &window_options)?;
    check_same_numbers(&first.rows, &window_run.rows)?;

    let updates = read_updates(&window_dir.root().join(UPDATES_FILE))?;
    let analysis = analyse(&config, spike, &updates, &window_run.rows, window.offset)?;
    let report_path = root.root().join(REPORT_FILE);
    write_json(&report_path, &analysis.report)?;
    Ok(UpdateSpike {
        root,
        recorded,
        window_run,
        updates,
        analysis,
        report_path,
    })
}
