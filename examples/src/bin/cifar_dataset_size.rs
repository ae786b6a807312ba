//! App. A.1.1: full-batch Adam on CIFAR-10 subsets of N images, N in {200, 2000, 20000, 50000}
//! with `--preset paper` (the CPU preset: {32, 64, 256} synthetic images), to show that the
//! spikes do not depend on the dataset size.
//!
//! `cargo run -p slingshot-examples --bin cifar-dataset-size -- --sizes 100,400` picks the
//! sizes; `--model` the network (the MLP by default).

use std::process::ExitCode;

use clap::Parser;
use slingshot_experiments::ExperimentError;
use slingshot_experiments::cli::{ArmSpec, Preset, TrainArm, exit_code};
use slingshot_experiments::image_arms::{
    ImageExperiment, ImageExperimentArgs, cifar_preset, run_image_experiment,
};
use slingshot_experiments::model::ModelKind;
use slingshot_experiments::plot;
use slingshot_experiments::run::child_entry;

// mimalloc keeps freed tensor buffers for the next step; glibc's malloc unmaps the large ones
// and page-faults them back, which halves the transformer's speed (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Full-batch Adam on CIFAR-10 subsets of several sizes.
#[derive(Debug, Parser)]
#[command(name = "cifar-dataset-size", version)]
struct Cli {
    #[command(flatten)]
    common: ImageExperimentArgs,
    /// The subset sizes (comma-separated; default: the preset's).
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<usize>,
}

/// App. A.1.1's sizes.
const PAPER_SIZES: [usize; 4] = [200, 2_000, 20_000, 50_000];
/// The CPU preset's sizes.
const DEMO_SIZES: [usize; 3] = [32, 64, 256];

fn main() -> ExitCode {
    // A child process started for one arm trains it and exits here.
    if let Some(code) = child_entry::<TrainArm>() {
        return code;
    }
    exit_code(run(&Cli::parse()))
}

fn run(cli: &Cli) -> Result<(), ExperimentError> {
    if cli.common.cifar.train_size.is_some() {
        return Err(ExperimentError::InvalidConfig(
            "each arm is one size: give them with `--sizes`, not `--train-size`".into(),
        ));
    }
    let sizes = match (cli.sizes.is_empty(), cli.common.train.preset) {
        (false, _) => cli.sizes.clone(),
        (true, Preset::Paper) => PAPER_SIZES.to_vec(),
        (true, Preset::Demo | Preset::AddMod113 | Preset::Grokking) => DEMO_SIZES.to_vec(),
    };
    let arms = sizes
        .iter()
        .map(|n| {
            let n = n.to_string();
            ArmSpec::new(&format!("n-{n}"), &["--train-size", &n])
        })
        .collect();
    let experiment = ImageExperiment {
        name: "cifar-dataset-size",
        default_model: ModelKind::Mlp,
        arms,
        panels: plot::image_panels(),
        preset: cifar_preset,
    };
    run_image_experiment(cli, |c| &c.common, &experiment).map(|_| ())
}
