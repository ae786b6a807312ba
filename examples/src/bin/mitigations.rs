//! The paper's mitigations on the modular task, each arm against the plain f32 baseline:
//! zero-sum projection (§4.1: no spikes), the centered classifier and mu-centering (§4.3),
//! BatchNorm before the classifier (Fig. 3(c)), LayerNorm before the classifier (Fig. 3(b):
//! spikes persist, earlier), Adam eps 1e-6 and 1e-5 (Fig. 3(a)), label smoothing (Fig. 4(b)),
//! no classifier bias (App. A.1.3), learning rates around the default (App. A.1.2), and the f64
//! loss for reference. One combined figure and one table.
//!
//! `cargo run -p slingshot-examples --bin mitigations -- --only baseline,zero-sum`
//! runs a subset. Not yet here: the switch to gradient descent at lr 1e5 (§4.2) and the logit
//! clamp (App. A.1.4).

use std::process::ExitCode;

use clap::Parser;
use slingshot_experiments::cli::{
    ArmSpec, TrainArgs, exit_code, print_table, run_arms, run_single_arm,
};
use slingshot_experiments::plot::{self, Series};
use slingshot_experiments::{ExperimentError, Precision, RunDir};

/// Mitigations of softmax collapse and the slingshot spike, side by side.
#[derive(Debug, Parser)]
#[command(name = "mitigations", version)]
struct Cli {
    #[command(flatten)]
    train: TrainArgs,
    /// Only these arms (comma-separated labels; see `--list`).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Print the arms and their flags, then exit.
    #[arg(long)]
    list: bool,
    /// Internal: the precision of a child's single arm.
    #[arg(long, value_enum, hide = true, default_value = "f32")]
    arms: Precision,
    /// Internal: run one arm and skip the combined outputs.
    #[arg(long, hide = true)]
    child: bool,
}

const EXPERIMENT: &str = "mitigations";

/// Every arm: its label and its flags on top of the shared ones.
fn all_arms() -> Vec<ArmSpec> {
    vec![
        ArmSpec::new("baseline", &[]),
        ArmSpec::new("zero-sum", &["--zero-sum"]),
        ArmSpec::new("centered", &["--centered"]),
        ArmSpec::new("mu-centering", &["--mean-removal"]),
        ArmSpec::new("batch-norm-head", &["--head-norm", "batch-norm"]),
        ArmSpec::new("layer-norm-head", &["--head-norm", "layer-norm"]),
        ArmSpec::new("eps-1e-6", &["--eps", "1e-6"]),
        ArmSpec::new("eps-1e-5", &["--eps", "1e-5"]),
        ArmSpec::new("label-smoothing", &["--label-smoothing", "0.1"]),
        ArmSpec::new("no-bias", &["--no-classifier-bias"]),
        ArmSpec::new("lr-3e-2", &["--lr", "3e-2"]),
        ArmSpec::new("lr-3e-3", &["--lr", "3e-3"]),
        ArmSpec::new("f64-loss", &["--arms", "f64-loss"]),
    ]
}

fn main() -> ExitCode {
    exit_code(run(&Cli::parse()))
}

fn run(cli: &Cli) -> Result<(), ExperimentError> {
    if cli.child {
        return run_single_arm(&cli.train, EXPERIMENT, cli.arms).map(|_| ());
    }
    let arms: Vec<ArmSpec> = all_arms()
        .into_iter()
        .filter(|a| cli.only.is_empty() || cli.only.contains(&a.label))
        .collect();
    if cli.list {
        for a in all_arms() {
            println!("{:<16} {}", a.label, a.flags.join(" "));
        }
        return Ok(());
    }
    if let Some(unknown) = cli
        .only
        .iter()
        .find(|l| !all_arms().iter().any(|a| &a.label == *l))
    {
        return Err(ExperimentError::InvalidConfig(format!(
            "unknown arm {unknown:?}; `--list` shows them"
        )));
    }
    cli.train.config(EXPERIMENT, Precision::F32).validate()?;
    let out = cli.train.out_dir(EXPERIMENT);
    let root = RunDir::create(&out)?;
    let results = run_arms(&arms, &out)?;
    let series: Vec<Series> = arms
        .iter()
        .zip(&results)
        .map(|(a, r)| Series {
            label: &a.label,
            rows: &r.rows,
            spikes: &r.summary.spikes,
        })
        .collect();
    let panels = plot::mechanism_panels();
    // Figures of at most six lines, each with the first arm (the baseline) for reference.
    let (first, rest) = series.split_first().expect("at least one arm");
    let groups: Vec<Vec<Series>> = if rest.is_empty() {
        vec![vec![*first]]
    } else {
        rest.chunks(5)
            .map(|c| std::iter::once(*first).chain(c.iter().copied()).collect())
            .collect()
    };
    for (i, group) in groups.iter().enumerate() {
        let figure = root.figure(&format!("figure-{}.png", i + 1));
        plot::draw(
            &figure,
            &format!("{EXPERIMENT} ({})", i + 1),
            group,
            &panels,
            3,
        )?;
        println!("wrote {}", figure.display());
    }
    print_table(&results);
    Ok(())
}
