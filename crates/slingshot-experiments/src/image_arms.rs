//! The image experiments (`cifar-architectures`, `cifar-mitigations`, `cifar-dataset-size`,
//! `cifar-minibatch`): their shared flags, presets and combined outputs. The arms run through
//! the run layer's arms protocol ([`crate::run::arms`]); the parent then draws the combined
//! figure and writes `table.csv`.

use std::path::Path;

use clap::{Args, Parser};
use serde::Serialize;

use crate::cli::{
    ArmSelection, ArmSpec, CifarArgs, Preset, TrainArgs, arm_configs, print_table, run_train_arms,
    series,
};
use crate::config::TrainConfig;
use crate::error::ExperimentError;
use crate::model::ModelKind;
use crate::plot::{self, Panel};
use crate::train::RunResult;

/// The flags every image binary shares.
#[derive(Debug, Clone, Args)]
pub struct ImageExperimentArgs {
    /// Training flags (`--preset demo` is the CPU preset, `--preset paper` App. D Table 3).
    #[command(flatten)]
    pub train: TrainArgs,
    /// Data and network flags.
    #[command(flatten)]
    pub cifar: CifarArgs,
    /// `--only` and `--list`.
    #[command(flatten)]
    pub arms: ArmSelection,
}

/// One image experiment: its name (the output directory under `runs/`), the network its arms
/// use unless `--model` says otherwise, its arms and its figure's panels.
#[derive(Debug, Clone)]
pub struct ImageExperiment {
    /// Binary and experiment name.
    pub name: &'static str,
    /// The network without `--model`.
    pub default_model: ModelKind,
    /// Every arm.
    pub arms: Vec<ArmSpec>,
    /// The panels of every figure.
    pub panels: Vec<Panel>,
    /// The starting configuration for a network and `--preset` (most experiments:
    /// [`cifar_preset`]).
    pub preset: fn(ModelKind, Preset) -> TrainConfig,
}

/// [`TrainConfig::cifar_demo`] or [`TrainConfig::cifar_paper`].
pub fn cifar_preset(kind: ModelKind, preset: Preset) -> TrainConfig {
    match preset {
        // `run_image_experiment` refuses the modular-only presets before this is reached.
        Preset::Demo | Preset::AddMod113 | Preset::Grokking => TrainConfig::cifar_demo(kind),
        Preset::Paper => TrainConfig::cifar_paper(kind),
    }
}

impl ImageExperiment {
    /// The configuration `args` ask for as the arm `arm`: the preset of `--model` (or the
    /// default network), then the flags.
    pub fn config(&self, args: &ImageExperimentArgs, arm: &str) -> TrainConfig {
        let kind = args.train.model.unwrap_or(self.default_model);
        let base = (self.preset)(kind, args.train.preset);
        args.cifar.config(&args.train, self.name, base, arm)
    }
}

/// A row of `table.csv`: one arm's outcome.
#[derive(Debug, Clone, Serialize)]
struct TableRow<'a> {
    arm: &'a str,
    model: &'a str,
    dataset: &'a str,
    steps: u64,
    n_spikes: usize,
    first_spike: Option<u64>,
    first_sc_step: Option<u64>,
    max_collapsed_fraction: f64,
    max_mu_g_norm: f64,
    final_train_acc: f64,
    final_test_acc: f64,
    wall_seconds: f64,
}

/// Runs the binary whose command line is `C` (it flattens [`ImageExperimentArgs`], reached
/// through `common`): checks every selected arm, runs them, and returns their results after
/// writing `figure.png` and `table.csv` into the output directory (nothing for `--list`).
pub fn run_image_experiment<C: Parser>(
    cli: &C,
    common: fn(&C) -> &ImageExperimentArgs,
    experiment: &ImageExperiment,
) -> Result<Vec<RunResult>, ExperimentError> {
    let args = common(cli);
    let preset = args.train.preset;
    if preset.modular_only() {
        return Err(ExperimentError::InvalidConfig(format!(
            "--preset {} is for the modular task; the image experiments take demo or paper",
            preset.name()
        )));
    }
    if args.arms.print_list(&experiment.arms) {
        return Ok(Vec::new());
    }
    let selected = args.arms.select(&experiment.arms, None)?;
    let arms = arm_configs::<C, _>(experiment.name, &selected, |parsed, label| {
        experiment.config(common(parsed), label)
    })?;
    let out = args.train.out_dir(experiment.name);
    let (root, results) = run_train_arms(&out, &arms, &args.train.options(), &experiment.panels)?;
    let figure = root.figure("figure.png");
    plot::draw_panels(
        &figure,
        experiment.name,
        3,
        &plot::metric_panels(&experiment.panels, &series(&results)),
    )?;
    println!("wrote {}", figure.display());
    write_table(&root.root().join("table.csv"), &results)?;
    print_table(&results);
    Ok(results)
}

/// Writes `table.csv`: each arm's spikes, collapse and accuracies.
fn write_table(path: &Path, results: &[RunResult]) -> Result<(), ExperimentError> {
    let err = |e: &dyn std::fmt::Display| ExperimentError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut w = csv::Writer::from_path(path).map_err(|e| err(&e))?;
    for r in results {
        let s = &r.summary;
        w.serialize(TableRow {
            arm: &s.arm,
            model: &s.model,
            dataset: s.dataset.as_deref().unwrap_or("modular"),
            steps: s.steps,
            n_spikes: s.n_spikes,
            first_spike: s.spikes.first().copied(),
            first_sc_step: s.first_sc_step,
            max_collapsed_fraction: s.max_collapsed_fraction,
            max_mu_g_norm: s.max_mu_g_norm,
            final_train_acc: s.final_train_acc,
            final_test_acc: s.final_test_acc,
            wall_seconds: s.wall_seconds,
        })
        .map_err(|e| err(&e))?;
    }
    w.flush().map_err(|e| err(&e))
}
