//! Table 1's CIFAR-10 rows and Fig. 2(b): the 6-layer MLP, VGG11, VGG11 with BatchNorm, the
//! ViT and ResNet18, each trained with full-batch Adam (ViT: batch 2048 with `--preset paper`),
//! with spike or no spike per network in `table.csv` and the residual-mass curves of all of
//! them in one figure.
//!
//! `cargo run -p slingshot-examples --bin cifar-architectures` runs the CPU preset on the
//! synthetic stand-in; `--data-dir DIR` reads the CIFAR-10 binary files, `--preset paper
//! --backend cuda` (with `--features cuda`) is App. D Table 3.

use std::process::ExitCode;

use clap::Parser;
use slingshot_experiments::ExperimentError;
use slingshot_experiments::cli::{ArmSpec, TrainArm, exit_code};
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

/// Table 1 on CIFAR-10: which networks spike, with their residual-mass curves (Fig. 2(b)).
#[derive(Debug, Parser)]
#[command(name = "cifar-architectures", version)]
struct Cli {
    #[command(flatten)]
    common: ImageExperimentArgs,
}

fn main() -> ExitCode {
    // A child process started for one arm trains it and exits here.
    if let Some(code) = child_entry::<TrainArm>() {
        return code;
    }
    exit_code(run(&Cli::parse()))
}

fn run(cli: &Cli) -> Result<(), ExperimentError> {
    if cli.common.train.model.is_some() {
        return Err(ExperimentError::InvalidConfig(
            "each arm is one network: pick them with `--only mlp,vgg11`, not `--model`".into(),
        ));
    }
    let arms = [
        ModelKind::Mlp,
        ModelKind::Vgg11,
        ModelKind::Vgg11Bn,
        ModelKind::Vit,
        ModelKind::Resnet18,
    ]
    .map(|k| ArmSpec::new(k.name(), &["--model", k.name()]))
    .to_vec();
    let experiment = ImageExperiment {
        name: "cifar-architectures",
        default_model: ModelKind::Mlp,
        arms,
        panels: plot::image_panels(),
        preset: cifar_preset,
    };
    run_image_experiment(cli, |c| &c.common, &experiment).map(|_| ())
}
