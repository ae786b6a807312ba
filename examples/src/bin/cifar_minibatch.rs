//! §4.3's mini-batch NFI: VGG11 with Adam at batch 256. No spike is expected, but about half of
//! the samples enter softmax collapse and `||mu_G||` and the logits grow late in training;
//! subtracting `W_G` (the centered classifier) or BatchNorm before the classifier slows that
//! growth. The paper preset runs 1,000,000 steps on the 50,000 images; the CPU preset 800 steps
//! of batch 32 on 256 synthetic images.
//!
//! `cargo run -p slingshot-examples --bin cifar-minibatch`.

use std::process::ExitCode;

use clap::Parser;
use slingshot_experiments::cli::{ArmSpec, Preset, TrainArm, exit_code};
use slingshot_experiments::image_arms::{
    ImageExperiment, ImageExperimentArgs, cifar_preset, run_image_experiment,
};
use slingshot_experiments::model::ModelKind;
use slingshot_experiments::plot::Panel;
use slingshot_experiments::run::child_entry;
use slingshot_experiments::{BatchSize, ExperimentError, TrainConfig};

// mimalloc keeps freed tensor buffers for the next step; glibc's malloc unmaps the large ones
// and page-faults them back, which halves the transformer's speed (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Mini-batch Adam on CIFAR-10: collapse and feature inflation without a spike.
#[derive(Debug, Parser)]
#[command(name = "cifar-minibatch", version)]
struct Cli {
    #[command(flatten)]
    common: ImageExperimentArgs,
}

/// §4.3's setting: batch 256 for 1,000,000 steps (paper), batch 32 of 256 images for 800
/// steps (CPU).
fn preset(kind: ModelKind, preset: Preset) -> TrainConfig {
    let mut c = cifar_preset(kind, preset);
    c.grad_chunk = None;
    match preset {
        Preset::Paper => {
            c.batch = BatchSize::Rows(256);
            c.steps = 1_000_000;
            c.log_every = 1_000;
        }
        Preset::Demo | Preset::AddMod113 | Preset::Grokking => {
            if let Some(images) = c.images_mut() {
                images.train_size = 256;
            }
            c.batch = BatchSize::Rows(32);
            c.steps = 800;
            c.log_every = 10;
        }
    }
    c
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
        name: "cifar-minibatch",
        default_model: ModelKind::Vgg11,
        arms: vec![
            ArmSpec::new("baseline", &[]),
            ArmSpec::new("centered", &["--centered"]),
            ArmSpec::new("batch-norm-head", &["--head-norm", "batch-norm"]),
        ],
        panels: vec![
            Panel::loss(),
            Panel::collapsed_fraction(),
            Panel::mu_g_norm(),
            Panel::linear("max logit", |r| Some(r.max_logit)),
            Panel::linear("mean logit", |r| Some(r.mean_logit)),
            Panel::log("last-layer norm ||W||", |r| Some(r.last_layer_norm)),
        ],
        preset,
    };
    run_image_experiment(cli, |c| &c.common, &experiment).map(|_| ())
}
