//! Issue 17 §6: does removing numerical feature inflation let the model generalize? Every
//! generalization-relevant arm (f32, f64 loss, zero-sum projection, centered head,
//! mu-centering, ⊥Grad, StableMax, AdamW) on one task and several seeds, with the steps at
//! which test accuracy first reaches 50% and 90% (`generalization.json`) and a figure of test
//! accuracy against step for every arm.
//!
//! `cargo run --release -p slingshot-examples --bin generalization -- --preset add-mod-113`
//! runs the task (addition mod 113, about 10 minutes per run on two cores);
//! `--seeds 0,1,2` and `--only zero-sum-s0,f32-s0` choose runs; `--list` prints them.

use std::process::ExitCode;

use clap::Parser;
use slingshot_experiments::ExperimentError;
use slingshot_experiments::cli::{
    ArmSelection, TrainArgs, TrainArm, TrainedArms, exit_code, run_selected_arms,
};
use slingshot_experiments::generalization::{self, outcome};
use slingshot_experiments::plot::{self, PlotPanel, XyPanel, XySeries};
use slingshot_experiments::run::child_entry;

// mimalloc keeps freed tensor buffers for the next step; glibc's malloc unmaps the large ones
// and page-faults them back, which halves the transformer's speed (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Every generalization-relevant arm, over seeds.
#[derive(Debug, Parser)]
#[command(name = "generalization", version)]
struct Cli {
    #[command(flatten)]
    train: TrainArgs,
    /// The seeds of every arm (the split, the initialization and the batches).
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    seeds: Vec<u64>,
    /// `--only` and `--list`.
    #[command(flatten)]
    arms: ArmSelection,
}

const EXPERIMENT: &str = "generalization";

fn main() -> ExitCode {
    // A child process started for one arm trains it and exits here.
    if let Some(code) = child_entry::<TrainArm>() {
        return code;
    }
    exit_code(run(&Cli::parse()))
}

fn run(cli: &Cli) -> Result<(), ExperimentError> {
    if cli.train.seed.is_some() {
        return Err(ExperimentError::InvalidConfig(
            "each run has its own seed: give them with `--seeds`, not `--seed`".into(),
        ));
    }
    let all = generalization::arms(&cli.seeds);
    let Some(TrainedArms {
        arms,
        root,
        results,
    }) = run_selected_arms(EXPERIMENT, cli, |c: &Cli| &c.train, &cli.arms, &all, None)?
    else {
        return Ok(());
    };
    let outcomes: Vec<_> = arms
        .iter()
        .zip(&results)
        .map(|(arm, r)| outcome(r, arm.config.seed))
        .collect();
    generalization::write_outcomes(root.root(), &outcomes)?;
    // One panel per arm, one line per seed (the same colour for a seed in every panel).
    let seed_labels: Vec<String> = outcomes
        .iter()
        .map(|o| format!("seed {}", o.seed))
        .collect();
    let panels: Vec<PlotPanel> = generalization::ARMS
        .iter()
        .filter_map(|&(arm, _)| {
            let lines: Vec<XySeries> = (0..results.len())
                .filter(|&i| outcomes[i].arm == arm)
                .map(|i| XySeries {
                    label: &seed_labels[i],
                    points: results[i]
                        .rows
                        .iter()
                        .map(|r| (r.step as f64, r.test_acc))
                        .collect(),
                })
                .collect();
            let panel = XyPanel {
                title: arm,
                x_label: "step",
                log_y: false,
                series: lines,
            };
            (!panel.series.is_empty()).then(|| PlotPanel::Lines(panel.line_panel()))
        })
        .collect();
    let figure = root.figure("test-accuracy.png");
    plot::draw_panels(&figure, &format!("{EXPERIMENT}: test accuracy"), 4, &panels)?;
    println!("wrote {}", figure.display());
    generalization::print_outcomes(&outcomes);
    Ok(())
}
