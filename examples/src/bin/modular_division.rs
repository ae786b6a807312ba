//! Fig. 1 and Fig. 2(c) of the paper: modular division trained in f32, f64 and with an f64 loss,
//! side by side (and, with `--only`, Prieto et al.'s StableMax and ⊥Grad in f32). Fig. 1(a): only f32 spikes. Fig. 1(b): `||mu_G||` grows with the collapsed
//! fraction. Fig. 1(c): `cos(W_G, mu_G)` approaches -1 and correct-class logits go negative.
//! Fig. 2(c): test accuracy moves in steps at the spikes (`--preset grokking`, where the demo
//! trains on 80% of the pairs for 60,000 steps).
//!
//! `cargo run -p slingshot-examples --bin modular-division` runs the CPU demo;
//! `--preset paper --backend cuda` runs App. D Table 2 on a GPU.

use std::process::ExitCode;

use clap::Parser;
use slingshot_experiments::cli::{
    ArmSelection, ArmSpec, TrainArgs, TrainArm, TrainedArms, exit_code, print_table,
    run_selected_arms, series,
};
use slingshot_experiments::mitigation::solo_arms;
use slingshot_experiments::run::child_entry;
use slingshot_experiments::{ExperimentError, Precision, plot};

// mimalloc keeps freed tensor buffers for the next step; glibc's malloc unmaps the large ones
// and page-faults them back, which halves the transformer's speed (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Modular division in f32, f64 and f64-loss, side by side (the paper's Fig. 1).
#[derive(Debug, Parser)]
#[command(name = "modular-division", version)]
struct Cli {
    #[command(flatten)]
    train: TrainArgs,
    /// The arms: f32, f64-loss, f64 (the default), stablemax, orthograd.
    #[command(flatten)]
    arms: ArmSelection,
}

const EXPERIMENT: &str = "modular-division";

/// One arm per precision, named after it, then one per mitigation reached only through
/// `--mitigation` (StableMax, ⊥Grad), in f32.
fn all_arms() -> Vec<ArmSpec> {
    let precisions = [Precision::F32, Precision::F64Loss, Precision::F64]
        .map(|p| ArmSpec::new(&p.to_string(), &["--precision", &p.to_string()]));
    let solo = solo_arms()
        .into_iter()
        .map(|(label, spec)| ArmSpec::new(label, &["--mitigation", spec]));
    precisions.into_iter().chain(solo).collect()
}

/// The arms without `--only`: Fig. 1's three precisions.
const DEFAULT_ARMS: [&str; 3] = ["f32", "f64-loss", "f64"];

fn main() -> ExitCode {
    // A child process started for one arm trains it and exits here.
    if let Some(code) = child_entry::<TrainArm>() {
        return code;
    }
    exit_code(run(&Cli::parse()))
}

fn run(cli: &Cli) -> Result<(), ExperimentError> {
    let all = all_arms();
    let Some(TrainedArms {
        arms,
        root,
        results,
    }) = run_selected_arms(
        EXPERIMENT,
        cli,
        |c: &Cli| &c.train,
        &cli.arms,
        &all,
        Some(&DEFAULT_ARMS),
    )?
    else {
        return Ok(());
    };
    let panels = plot::mechanism_panels();
    let figure = root.figure("figure.png");
    let first = &arms[0].config;
    plot::draw_panels(
        &figure,
        &format!(
            "{EXPERIMENT}: p = {}, {} steps",
            first.classes(),
            first.steps
        ),
        3,
        &plot::metric_panels(&panels, &series(&results)),
    )?;
    print_table(&results);
    println!("\nwrote {} and one directory per arm", figure.display());
    Ok(())
}
