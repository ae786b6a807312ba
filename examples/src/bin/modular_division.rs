//! Fig. 1 and Fig. 2(c) of the paper: modular division trained in f32, f64 and with an f64 loss,
//! side by side. Fig. 1(a): only f32 spikes. Fig. 1(b): `||mu_G||` grows with the collapsed
//! fraction. Fig. 1(c): `cos(W_G, mu_G)` approaches -1 and correct-class logits go negative.
//! Fig. 2(c): test accuracy moves in steps at the spikes.
//!
//! `cargo run -p slingshot-examples --bin modular-division` runs the CPU demo;
//! `--preset paper --backend cuda` runs App. D Table 2 on a GPU.

use std::process::ExitCode;

use clap::Parser;
use slingshot_experiments::cli::{
    TrainArgs, exit_code, print_table, run_precision_arms, run_single_arm, series,
};
use slingshot_experiments::plot;
use slingshot_experiments::{ExperimentError, Precision};

/// Modular division in f32, f64 and f64-loss, side by side (the paper's Fig. 1).
#[derive(Debug, Parser)]
#[command(name = "modular-division", version)]
struct Cli {
    #[command(flatten)]
    train: TrainArgs,
    /// The arms to run, comma-separated: f32, f64, f64-loss.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "f32,f64-loss,f64"
    )]
    arms: Vec<Precision>,
    /// Internal: run the single arm `--arms` names and skip the combined outputs.
    #[arg(long, hide = true)]
    child: bool,
}

const EXPERIMENT: &str = "modular-division";

fn main() -> ExitCode {
    exit_code(run(&Cli::parse()))
}

fn run(cli: &Cli) -> Result<(), ExperimentError> {
    if cli.child {
        return run_single_arm(&cli.train, EXPERIMENT, cli.arms[0]).map(|_| ());
    }
    // One process per arm: burn keeps one default float dtype per device and process.
    let (configs, root, results) = run_precision_arms(&cli.train, EXPERIMENT, &cli.arms)?;
    let figure = root.figure("figure.png");
    plot::draw(
        &figure,
        &format!(
            "{EXPERIMENT}: p = {}, {} steps",
            configs[0].p, configs[0].steps
        ),
        &series(&results),
        &plot::mechanism_panels(),
        3,
    )?;
    print_table(&results);
    println!("\nwrote {} and one directory per arm", figure.display());
    Ok(())
}
