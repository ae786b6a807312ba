//! Fig. 5 of the paper (App. A.2): edge-of-stability oscillations and slingshot spikes in one
//! run. A narrow network (hidden width 20) trains in f32 and in f64; every `--sharpness-every`
//! steps the largest Hessian eigenvalue of the training loss is estimated by power iteration on
//! finite-difference Hessian-vector products. Early oscillations appear in both precisions;
//! late spikes, after softmax collapse, only in f32. Under Adam the edge of stability is
//! reached by the preconditioned sharpness (the largest eigenvalue of `P^-1 H`, `P` Adam's
//! diagonal `sqrt(v_hat) + eps`) against `(2 + 2 beta1) / ((1 - beta1) lr)`, 38/lr, not by the
//! raw one against 2/lr (Cohen et al. 2022): both are estimated and printed against their edges.
//!
//! `cargo run -p slingshot-examples --bin eos-vs-slingshot` uses the CPU demo configuration
//! with width 20, Adam lr 3e-2 and 20,000 steps (the narrow network needs the larger learning
//! rate to collapse and spike within that budget) and a sharpness estimate every 100 steps;
//! `--preset paper` keeps App. D's settings apart from the width.

use std::process::ExitCode;

use clap::Parser;
use slingshot_experiments::cli::{
    ArmSelection, ArmSpec, Preset, TrainArgs, TrainArm, arm_configs, exit_code, print_table,
    run_train_arms, series,
};
use slingshot_experiments::model::NetworkConfig;
use slingshot_experiments::plot::{self, Panel};
use slingshot_experiments::run::child_entry;
use slingshot_experiments::{ExperimentError, MetricsRow, Precision, TrainConfig};

// mimalloc keeps freed tensor buffers for the next step; glibc's malloc unmaps the large ones
// and page-faults them back, which halves the transformer's speed (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Edge of stability versus slingshot: f32 and f64 with the Hessian's top eigenvalue (Fig. 5).
#[derive(Debug, Parser)]
#[command(name = "eos-vs-slingshot", version)]
struct Cli {
    #[command(flatten)]
    train: TrainArgs,
    /// The arms: f32, f64, f64-loss (default: f32 and f64).
    #[command(flatten)]
    arms: ArmSelection,
}

const EXPERIMENT: &str = "eos-vs-slingshot";
/// Fig. 5's narrow network.
const WIDTH: usize = 20;
/// Steps between sharpness estimates unless `--sharpness-every` says otherwise.
const SHARPNESS_EVERY: u64 = 100;
/// The demo's learning rate and steps for the narrow network.
const DEMO_LR: f64 = 3e-2;
const DEMO_STEPS: u64 = 20_000;

fn main() -> ExitCode {
    // A child process started for one arm trains it and exits here.
    if let Some(code) = child_entry::<TrainArm>() {
        return code;
    }
    exit_code(run(&Cli::parse()))
}

/// The flags with the experiment's own defaults where they are unset.
fn with_defaults(train: &TrainArgs) -> TrainArgs {
    let mut train = train.clone();
    train.width.get_or_insert(WIDTH);
    train.sharpness_every.get_or_insert(SHARPNESS_EVERY);
    if train.preset == Preset::Demo {
        train.lr.get_or_insert(DEMO_LR);
        train.steps.get_or_insert(DEMO_STEPS);
    }
    train
}

fn run(cli: &Cli) -> Result<(), ExperimentError> {
    let all = [Precision::F32, Precision::F64, Precision::F64Loss]
        .map(|p| ArmSpec::new(&p.to_string(), &["--precision", &p.to_string()]))
        .to_vec();
    if cli.arms.print_list(&all) {
        return Ok(());
    }
    let selected = cli.arms.select(&all, Some(&["f32", "f64"]))?;
    let arms = arm_configs::<Cli, _>(EXPERIMENT, &selected, |c, label| {
        with_defaults(&c.train).config(EXPERIMENT, label)
    })?;
    let train = with_defaults(&cli.train);
    let out = train.out_dir(EXPERIMENT);
    let (root, results) = run_train_arms(&out, &arms, &train.options(), &panels())?;
    let configs: Vec<_> = arms.iter().map(|a| a.config.clone()).collect();
    let figure = root.figure("figure.png");
    plot::draw_panels(
        &figure,
        &format!(
            "{EXPERIMENT}: width {}, p = {}, lr {:e}",
            hidden_width(&configs[0]),
            configs[0].classes(),
            configs[0].lr
        ),
        2,
        &plot::metric_panels(&panels(), &series(&results)),
    )?;
    print_table(&results);
    for (c, r) in configs.iter().zip(&results) {
        // Gradient descent's edge 2/lr for the raw sharpness; Adam's (2 + 2 b1) / ((1 - b1) lr)
        // for the preconditioned one (Cohen et al. 2022).
        let adam_edge = (2.0 + 2.0 * c.beta1) / ((1.0 - c.beta1) * c.lr);
        let quantities: [(&str, Measured, f64); 2] = [
            ("lambda_max", |r| r.sharpness, 2.0 / c.lr),
            ("P^-1 H", |r| r.preconditioned_sharpness, adam_edge),
        ];
        for (name, value, edge) in quantities {
            let sharp: Vec<(u64, f64)> = r
                .rows
                .iter()
                .filter_map(|row| value(row).map(|l| (row.step, l)))
                .collect();
            let peak = sharp.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1));
            let above = sharp.iter().filter(|(_, l)| *l >= edge).count();
            println!(
                "{:<8} {name}: peak {}, edge {edge:.3e}, {above} of {} estimates at or above it",
                c.arm,
                peak.map_or("-".into(), |(s, l)| format!("{l:.3e} at step {s}")),
                sharp.len(),
            );
        }
    }
    println!("\nwrote {} and one directory per arm", figure.display());
    Ok(())
}

/// A row's sharpness estimate, where it has one.
type Measured = fn(&MetricsRow) -> Option<f64>;

/// The MLP's hidden width (0 for another network).
fn hidden_width(config: &TrainConfig) -> usize {
    match config.model.network {
        NetworkConfig::Mlp(m) => m.width,
        _ => 0,
    }
}

/// Fig. 5(a) loss and 5(b) the Hessian's top eigenvalue, with collapse and `||mu_G||` for the
/// mechanism behind the late spikes.
fn panels() -> Vec<Panel> {
    vec![
        Panel::loss(),
        Panel::log("largest Hessian eigenvalue", |r| r.sharpness).with_spikes(),
        Panel::log("largest eigenvalue of P^-1 H (Adam)", |r| {
            r.preconditioned_sharpness
        })
        .with_spikes(),
        Panel::collapsed_fraction(),
        Panel::mu_g_norm(),
    ]
}
