//! The one training loop every task runs in: resume, log cadence, progress, divergence stop,
//! checkpoints and the summary on completion. A task plugs in through [`Training`].

use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::checkpoint::{self, CHECKPOINT_FORMAT, CheckpointState, SaveStage};
use super::csv_log::{CsvLog, read_prefix};
use super::resume::{check_resumable, claim_fresh};
use crate::error::ExperimentError;
use crate::output::{RunDir, progress_bar, write_json};

/// How to run (not part of the numbers, so not in the config).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// No progress bar.
    pub quiet: bool,
    /// Write a checkpoint every this many steps.
    pub checkpoint_every: Option<u64>,
    /// Continue from the checkpoint in the output directory.
    pub resume: bool,
    /// Replace a run already in the output directory (without it, a used directory is
    /// refused).
    pub overwrite: bool,
    /// Stop (as if killed) after this many steps, leaving the last checkpoint: for tests of
    /// `--resume`.
    pub stop_after: Option<u64>,
    /// Stop the checkpoint save of this step at this stage, as a kill would, and end the run
    /// there: for tests of the atomic save.
    pub kill_in_save: Option<(u64, SaveStage)>,
    /// Log every step in this range too, and write each one's classifier-weight update
    /// `w_after - w_before` to `classifier-updates.csv` (Fig. 2(a)); not with `resume`.
    /// Logging more often does not change the numbers.
    pub record_updates: Option<std::ops::RangeInclusive<u64>>,
}

/// A task's training, as the loop drives it: the model, optimizer, data and measurements live
/// in the task; the loop owns the files and the schedule of logs and checkpoints.
pub trait Training {
    /// `config.json`, compared on resume.
    type Config: Serialize + DeserializeOwned + Clone;
    /// One row of `metrics.csv`.
    type Row: Serialize + DeserializeOwned + Clone;
    /// What the task keeps in a checkpoint besides the model and optimizer.
    type State: Serialize + DeserializeOwned;
    /// `summary.json`.
    type Summary: Serialize;
    /// Whether a resume may raise `steps`: not when the schedule depends on the run's length
    /// (the language model's cosine), since the rest of the run would follow another curve.
    const STEPS_EXTEND: bool = true;

    /// The configuration.
    fn config(&self) -> &Self::Config;
    /// Optimizer steps of the whole run.
    fn total_steps(&self) -> u64;
    /// The progress bar's label.
    fn label(&self) -> String;
    /// Whether the step that makes `taken` steps is logged.
    fn is_logged(&self, taken: u64) -> bool;
    /// One optimizer step at 0-based `step`, with its row when `log`.
    fn step(&mut self, step: u64, log: bool) -> Result<Option<Self::Row>, ExperimentError>;
    /// The row's step.
    fn row_step(row: &Self::Row) -> u64;
    /// Sets the row's training clock.
    fn set_wall_seconds(row: &mut Self::Row, seconds: f64);
    /// Whether nothing after this row is informative (a non-finite loss).
    fn diverged(row: &Self::Row) -> bool;
    /// The progress bar's message after a logged row.
    fn message(row: &Self::Row) -> String;
    /// Writes the model and optimizer files into `dir`.
    fn save_parts(&self, dir: &Path) -> Result<(), ExperimentError>;
    /// Loads the model and optimizer files from `dir`.
    fn load_parts(&mut self, dir: &Path) -> Result<(), ExperimentError>;
    /// The task's checkpoint state now (it may fold device-side tallies in).
    fn state(&mut self) -> Self::State;
    /// Takes the state of a checkpoint back, with the rows logged up to it.
    fn restore(&mut self, state: Self::State, rows: &[Self::Row]) -> Result<(), ExperimentError>;
    /// `summary.json` after `steps` steps and `wall_seconds` of training.
    fn summary(&mut self, rows: &[Self::Row], steps: u64, wall_seconds: f64) -> Self::Summary;
    /// Writes `summary.json` and any other file of a finished run into `dir`.
    fn write_outputs(&self, dir: &RunDir, summary: &Self::Summary) -> Result<(), ExperimentError>;
}

/// What the loop returns.
#[derive(Debug, Clone)]
pub struct Trained<R, S> {
    /// Every logged row, those before a resume included.
    pub rows: Vec<R>,
    /// The summary (written when the run finished or diverged).
    pub summary: S,
}

/// Where a run starts: step, clock and the rows already logged.
struct Start<R> {
    step: u64,
    wall: f64,
    rows: Vec<R>,
}

/// Prepares `dir` and the task for the first step: a fresh run needs an unused directory
/// (or `overwrite`); a resume needs a checkpoint whose configuration matches. Nothing is
/// written before every check has passed.
fn start<T: Training>(
    task: &mut T,
    dir: &RunDir,
    options: &RunOptions,
) -> Result<Start<T::Row>, ExperimentError> {
    if !options.resume {
        claim_fresh(dir.root(), options.overwrite)?;
        write_json(&dir.config(), task.config())?;
        return Ok(Start {
            step: 0,
            wall: 0.0,
            rows: Vec::new(),
        });
    }
    let (found, state) = checkpoint::read_state::<T::Config, T::State>(&dir.checkpoint())?;
    check_resumable(
        &state.config,
        task.config(),
        state.step,
        &found,
        T::STEPS_EXTEND,
    )?;
    let rows: Vec<T::Row> = read_prefix(&dir.metrics(), state.metrics_rows)?;
    task.load_parts(&found).map_err(|e| match state.format {
        // Format 1 kept the modular and image networks as five optional fields.
        1 => ExperimentError::Resume {
            path: found.clone(),
            reason: format!(
                "checkpoint format 1 (written before slingshot's run layer; this build writes format {CHECKPOINT_FORMAT}) does not load into this model layout ({e}); start the run again with --overwrite"
            ),
        },
        _ => e,
    })?;
    task.restore(state.task, &rows)?;
    // A longer --steps extends the run: config.json says what the run is now, and the
    // summary of the shorter run goes until the longer one writes its own.
    write_json(&dir.config(), task.config())?;
    if state.step < task.total_steps() && dir.summary().exists() {
        std::fs::remove_file(dir.summary()).map_err(|e| ExperimentError::Write {
            path: dir.summary(),
            reason: e.to_string(),
        })?;
    }
    Ok(Start {
        step: state.step,
        wall: state.wall_seconds,
        rows,
    })
}

/// Runs `task` in `dir` from its start (or its checkpoint) to the end of its steps, a
/// divergence, or `options.stop_after`.
pub fn train_loop<T: Training>(
    task: &mut T,
    dir: &RunDir,
    options: &RunOptions,
) -> Result<Trained<T::Row, T::Summary>, ExperimentError> {
    let Start {
        step: first,
        wall: wall_before,
        mut rows,
    } = start(task, dir, options)?;
    let mut writer = CsvLog::create(&dir.metrics(), &rows)?;
    let steps = task.total_steps();
    let bar = progress_bar(steps, options.quiet, &task.label());
    bar.set_position(first);
    let clock = Instant::now();
    let end = options.stop_after.map_or(steps, |s| s.min(steps));
    let mut diverged = false;
    for step in first..end {
        let taken = step + 1;
        if let Some(mut row) = task.step(step, task.is_logged(taken))? {
            T::set_wall_seconds(&mut row, wall_before + clock.elapsed().as_secs_f64());
            bar.set_message(T::message(&row));
            writer.write(&row)?;
            diverged = T::diverged(&row);
            rows.push(row);
            if diverged {
                bar.inc(1);
                break;
            }
        }
        bar.inc(1);
        if let Some(every) = options.checkpoint_every
            && (taken.is_multiple_of(every) || taken == steps)
        {
            let state = CheckpointState {
                format: CHECKPOINT_FORMAT,
                step: taken,
                metrics_rows: rows.len(),
                wall_seconds: wall_before + clock.elapsed().as_secs_f64(),
                config: task.config().clone(),
                task: task.state(),
            };
            // The checkpoint counts rows that must be on the disk before it is.
            writer.sync()?;
            let kill = options.kill_in_save.filter(|(at, _)| *at == taken);
            checkpoint::save(
                &dir.checkpoint(),
                |d| task.save_parts(d),
                &state,
                kill.map(|k| k.1),
            )?;
            if kill.is_some() {
                bar.finish_and_clear();
                return Err(ExperimentError::Killed { step: taken });
            }
        }
    }
    bar.finish_and_clear();
    let wall = wall_before + clock.elapsed().as_secs_f64();
    let steps_done = match (diverged, rows.last()) {
        (true, Some(last)) => T::row_step(last),
        _ => end,
    };
    let summary = task.summary(&rows, steps_done, wall);
    if end == steps || diverged {
        task.write_outputs(dir, &summary)?;
    }
    Ok(Trained { rows, summary })
}
