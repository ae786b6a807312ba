//! Fig. 5 of the paper (App. A.2): edge-of-stability oscillations and slingshot spikes in one
//! run. A narrow network (hidden width 20) trains in f32 and in f64; every `--sharpness-every`
//! steps the largest Hessian eigenvalue of the training loss is estimated by power iteration on
//! finite-difference Hessian-vector products. Early oscillations appear in both precisions;
//! late spikes, after softmax collapse, only in f32.
//!
//! `cargo run -p slingshot-examples --bin eos-vs-slingshot` uses the CPU demo configuration
//! with width 20, Adam lr 3e-2 and 20,000 steps (the narrow network needs the larger learning
//! rate to collapse and spike within that budget) and a sharpness estimate every 100 steps;
//! `--preset paper` keeps App. D's settings apart from the width.

use std::process::ExitCode;

use clap::Parser;
use slingshot_experiments::cli::{
    Preset, TrainArgs, exit_code, print_table, run_precision_arms, run_single_arm, series,
};
use slingshot_experiments::plot::{self, Panel};
use slingshot_experiments::{ExperimentError, Precision};

/// Edge of stability versus slingshot: f32 and f64 with the Hessian's top eigenvalue (Fig. 5).
#[derive(Debug, Parser)]
#[command(name = "eos-vs-slingshot", version)]
struct Cli {
    #[command(flatten)]
    train: TrainArgs,
    /// The arms to run, comma-separated: f32, f64, f64-loss.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "f32,f64")]
    arms: Vec<Precision>,
    /// Internal: run the single arm `--arms` names and skip the combined outputs.
    #[arg(long, hide = true)]
    child: bool,
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
    exit_code(run(&Cli::parse()))
}

fn run(cli: &Cli) -> Result<(), ExperimentError> {
    // The experiment's own defaults, applied the same way in the parent and in each child.
    let mut train = cli.train.clone();
    train.width.get_or_insert(WIDTH);
    train.sharpness_every.get_or_insert(SHARPNESS_EVERY);
    if train.preset == Preset::Demo {
        train.lr.get_or_insert(DEMO_LR);
        train.steps.get_or_insert(DEMO_STEPS);
    }
    if cli.child {
        return run_single_arm(&train, EXPERIMENT, cli.arms[0]).map(|_| ());
    }
    let (configs, root, results) = run_precision_arms(&train, EXPERIMENT, &cli.arms)?;
    let figure = root.figure("figure.png");
    plot::draw(
        &figure,
        &format!(
            "{EXPERIMENT}: width {}, p = {}, lr {:e}",
            configs[0].model.width, configs[0].p, configs[0].lr
        ),
        &series(&results),
        &panels(),
        2,
    )?;
    print_table(&results);
    for (c, r) in configs.iter().zip(&results) {
        let sharp: Vec<(u64, f64)> = r
            .rows
            .iter()
            .filter_map(|row| row.sharpness.map(|l| (row.step, l)))
            .collect();
        let peak = sharp.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1));
        let last = sharp.last().copied();
        println!(
            "{:<8} lambda_max: peak {} , last {}",
            c.arm,
            peak.map_or("-".into(), |(s, l)| format!("{l:.3e} at step {s}")),
            last.map_or("-".into(), |(s, l)| format!("{l:.3e} at step {s}")),
        );
    }
    println!("\nwrote {} and one directory per arm", figure.display());
    Ok(())
}

/// Fig. 5(a) loss and 5(b) the Hessian's top eigenvalue, with collapse and `||mu_G||` for the
/// mechanism behind the late spikes.
fn panels() -> Vec<Panel> {
    vec![
        Panel::loss(),
        Panel::log("largest Hessian eigenvalue", |r| r.sharpness).with_spikes(),
        Panel::collapsed_fraction(),
        Panel::mu_g_norm(),
    ]
}
