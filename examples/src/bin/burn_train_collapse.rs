//! burn-train's `Learner` trains a classifier on `(a + b) mod p` with slingshot's collapse,
//! NFI and effective-LR metrics, its collapse warning and `LearnerAdam`, in four arms:
//! burn's `CrossEntropyLoss` and slingshot's loss, each in f32 and with an f64 loss.
//!
//! burn-train writes its metric logs under `<out>/<arm>/{train,valid}/epoch-N/`; this adds
//! `metrics.csv`, `summary.json` per arm and `figure.png`. A killed run continues with
//! `--resume` from each arm's last complete epoch.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use slingshot_examples::burn_train_collapse::arms::run_arms;
use slingshot_examples::burn_train_collapse::report::ArmSummary;
use slingshot_examples::burn_train_collapse::run::LaunchOptions;
use slingshot_examples::burn_train_collapse::{CollapseRunConfig, CpuBackend, EXPERIMENT, LossArm};
use slingshot_experiments::ExperimentError;
use slingshot_experiments::cli::exit_code;

// mimalloc keeps freed tensor buffers for the next step; glibc's malloc unmaps the large ones
// and page-faults them back, which halves the transformer's speed (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Softmax collapse seen through burn-train's Learner.
#[derive(Debug, Parser)]
#[command(name = "burn-train-collapse", version)]
struct Cli {
    /// The arms, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = LossArm::ALL)]
    arms: Vec<LossArm>,
    /// The backend.
    #[arg(long, value_enum, default_value = "flex")]
    backend: CpuBackend,
    /// Modulus of `(a + b) mod p` [default: 23].
    #[arg(long)]
    p: Option<usize>,
    /// Share of the pairs trained on [default: 0.5].
    #[arg(long, allow_hyphen_values = true)]
    train_fraction: Option<f64>,
    /// Hidden width [default: 64].
    #[arg(long)]
    width: Option<usize>,
    /// Epochs, a checkpoint ending each [default: 6].
    #[arg(long)]
    epochs: Option<usize>,
    /// Full-batch steps per epoch [default: 100].
    #[arg(long)]
    steps_per_epoch: Option<usize>,
    /// Adam's learning rate [default: 0.07].
    #[arg(long, allow_hyphen_values = true)]
    lr: Option<f64>,
    /// Adam's epsilon [default: 1e-8].
    #[arg(long, allow_hyphen_values = true)]
    eps: Option<f32>,
    /// Seed of the split and the initialization [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// Collapsed fraction at which the warning fires [default: 0.01].
    #[arg(long, allow_hyphen_values = true)]
    warning_threshold: Option<f64>,
    /// Print the metric values at every this-many-th step of an epoch and at its last step.
    #[arg(long, default_value_t = 50)]
    log_every: usize,
    /// Output directory (default `runs/burn-train-collapse`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue a killed run from each arm's last complete epoch.
    #[arg(long, conflicts_with = "overwrite")]
    resume: bool,
    /// Replace the run in `--out`.
    #[arg(long)]
    overwrite: bool,
    /// Only the warnings and the final table.
    #[arg(long)]
    quiet: bool,
}

impl Cli {
    /// Each arm's configuration: the demo's, with the flags given.
    fn configs(&self) -> Vec<CollapseRunConfig> {
        self.arms
            .iter()
            .map(|&arm| {
                let demo = CollapseRunConfig::demo(arm);
                CollapseRunConfig {
                    backend: self.backend,
                    p: self.p.unwrap_or(demo.p),
                    train_fraction: self.train_fraction.unwrap_or(demo.train_fraction),
                    width: self.width.unwrap_or(demo.width),
                    epochs: self.epochs.unwrap_or(demo.epochs),
                    steps_per_epoch: self.steps_per_epoch.unwrap_or(demo.steps_per_epoch),
                    lr: self.lr.unwrap_or(demo.lr),
                    eps: self.eps.unwrap_or(demo.eps),
                    seed: self.seed.unwrap_or(demo.seed),
                    warning_threshold: self.warning_threshold.unwrap_or(demo.warning_threshold),
                    ..demo
                }
            })
            .collect()
    }
}

fn main() -> ExitCode {
    exit_code(run(&Cli::parse()))
}

fn run(cli: &Cli) -> Result<(), ExperimentError> {
    if cli.log_every == 0 {
        return Err(ExperimentError::InvalidConfig(
            "--log-every must be at least 1, got 0".into(),
        ));
    }
    let distinct: std::collections::HashSet<_> = cli.arms.iter().collect();
    if distinct.len() != cli.arms.len() {
        return Err(ExperimentError::InvalidConfig(
            "--arms names an arm twice".into(),
        ));
    }
    let out = cli
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(EXPERIMENT));
    let options = LaunchOptions {
        log_every: cli.log_every,
        quiet: cli.quiet,
    };
    let summaries = run_arms(&cli.configs(), &out, cli.resume, cli.overwrite, options)?;
    print_table(&summaries);
    println!(
        "\nwrote {} and one directory per arm",
        out.join("figure.png").display()
    );
    Ok(())
}

fn print_table(summaries: &[ArmSummary]) {
    let step = |s: Option<usize>| s.map_or("-".to_string(), |s| s.to_string());
    println!(
        "\n{:<20} {:>14} {:>13} {:>13} {:>11} {:>10} {:>9}",
        "arm",
        "first collapse",
        "warning step",
        "max collapsed",
        "max |mu_G|",
        "final loss",
        "valid acc"
    );
    for s in summaries {
        println!(
            "{:<20} {:>14} {:>13} {:>13.4} {:>11.3} {:>10.3e} {:>8.1}%",
            s.arm,
            step(s.first_collapse_step),
            step(s.warning_step),
            s.max_collapsed_fraction,
            s.max_mu_g_norm,
            s.final_loss,
            s.final_valid_accuracy_percent
        );
    }
}
