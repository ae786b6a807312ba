//! Fig. 3(b)/(c) on CIFAR-10: VGG11 with BatchNorm in its convolutions (which still spikes)
//! against BatchNorm before the classifier (no spikes), LayerNorm before the classifier (the
//! last-layer norm grows stepwise), the centered classifier `W - W_G` and the zero-sum
//! projection of the logit gradient.
//!
//! `cargo run -p slingshot-examples --bin cifar-mitigations` runs the CPU preset;
//! `--model vgg11` uses VGG11 without BatchNorm as the base network.

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

/// The last-layer mitigations on CIFAR-10, each against the plain network.
#[derive(Debug, Parser)]
#[command(name = "cifar-mitigations", version)]
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
    let experiment = ImageExperiment {
        name: "cifar-mitigations",
        default_model: ModelKind::Vgg11Bn,
        arms: vec![
            ArmSpec::new("baseline", &[]),
            ArmSpec::new("batch-norm-head", &["--head-norm", "batch-norm"]),
            ArmSpec::new("layer-norm-head", &["--head-norm", "layer-norm"]),
            ArmSpec::new("centered", &["--centered"]),
            ArmSpec::new("zero-sum", &["--zero-sum"]),
        ],
        panels: plot::image_panels(),
        preset: cifar_preset,
    };
    run_image_experiment(cli, |c| &c.common, &experiment).map(|_| ())
}
