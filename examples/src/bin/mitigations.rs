//! The paper's mitigations on the modular task, each arm against the plain f32 baseline:
//! zero-sum projection (§4.1: no spikes), the centered classifier and mu-centering (§4.3),
//! BatchNorm before the classifier (Fig. 3(c)), LayerNorm before the classifier (Fig. 3(b):
//! its last-layer norm against the baseline's in `layer-norm.png`), Adam eps 1e-6 and 1e-5
//! (Fig. 3(a)), label smoothing (Fig. 4(b)), no classifier bias (App. A.1.3), the logit clamp
//! `z_min >= z_max - 100` (App. A.1.4: spikes persist), the switch to gradient descent at lr
//! 1e5 once the loss is (near) zero (§4.2: a spike, then divergence), the learning-rate sweep
//! 1e-2..1e-5 (App. A.1.2, Fig. 4(a)), and the f64 loss for reference. Combined figures and
//! one table.
//!
//! `cargo run -p slingshot-examples --bin mitigations -- --only baseline,zero-sum`
//! runs a subset; `--list` prints every arm with its flags.
//!
//! The demo's loss never reaches exactly zero (its collapse peaks near 67% of the rows), so the
//! gradient-descent arm switches once the logged loss is at most 1e-7, when about a quarter of
//! the rows have collapsed; with `--preset paper` it waits for an exact zero as in §4.2.

use std::process::ExitCode;

use clap::Parser;
use slingshot_experiments::ExperimentError;
use slingshot_experiments::cli::{
    ArmSelection, ArmSpec, Preset, TrainArgs, TrainArm, TrainedArms, exit_code, print_table,
    run_selected_arms, series,
};
use slingshot_experiments::mitigation::solo_arms;
use slingshot_experiments::output::RunDir;
use slingshot_experiments::plot::{self, Series};
use slingshot_experiments::run::child_entry;

// mimalloc keeps freed tensor buffers for the next step; glibc's malloc unmaps the large ones
// and page-faults them back, which halves the transformer's speed (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Mitigations of softmax collapse and the slingshot spike, side by side.
#[derive(Debug, Parser)]
#[command(name = "mitigations", version)]
struct Cli {
    #[command(flatten)]
    train: TrainArgs,
    /// `--only` and `--list`.
    #[command(flatten)]
    arms: ArmSelection,
}

const EXPERIMENT: &str = "mitigations";

/// The learning rates of App. A.1.2's sweep.
const LR_SWEEP: [(&str, f64); 4] = [
    ("1e-2", 1e-2),
    ("1e-3", 1e-3),
    ("1e-4", 1e-4),
    ("1e-5", 1e-5),
];

/// Every arm: its label and its flags on top of the shared ones. The sweep leaves out the
/// shared learning rate `base_lr` (that arm is the baseline); the gradient-descent switch waits
/// for an exact zero loss with the paper preset, and for 1e-7 with the demo (see above).
fn all_arms(base_lr: f64, preset: Preset) -> Vec<ArmSpec> {
    let switch_loss = match preset {
        Preset::Paper => "0",
        Preset::Demo | Preset::AddMod113 | Preset::Grokking => "1e-7",
    };
    let mut arms = vec![
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
        ArmSpec::new("logit-clamp", &["--logit-clamp", "100"]),
        ArmSpec::new(
            "gd-switch",
            &[
                "--switch-to-gd",
                "1e5",
                "--switch-when-loss-at-most",
                switch_loss,
            ],
        ),
    ];
    for (text, lr) in LR_SWEEP {
        if (lr - base_lr).abs() > 1e-3 * lr {
            arms.push(ArmSpec::new(&format!("lr-{text}"), &["--lr", text]));
        }
    }
    arms.push(ArmSpec::new("f64-loss", &["--precision", "f64-loss"]));
    // Mitigations reached only through `--mitigation` (StableMax, ⊥Grad) each get an arm.
    for (label, spec) in solo_arms() {
        arms.push(ArmSpec::new(label, &["--mitigation", spec]));
    }
    arms
}

fn main() -> ExitCode {
    // A child process started for one arm trains it and exits here.
    if let Some(code) = child_entry::<TrainArm>() {
        return code;
    }
    exit_code(run(&Cli::parse()))
}

fn run(cli: &Cli) -> Result<(), ExperimentError> {
    let base = cli.train.config(EXPERIMENT, "baseline");
    let every = all_arms(base.lr, cli.train.preset);
    let Some(TrainedArms { root, results, .. }) =
        run_selected_arms(EXPERIMENT, cli, |c: &Cli| &c.train, &cli.arms, &every, None)?
    else {
        return Ok(());
    };
    let panels = plot::mechanism_panels();
    let series = series(&results);
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
        plot::draw_panels(
            &figure,
            &format!("{EXPERIMENT} ({})", i + 1),
            3,
            &plot::metric_panels(&panels, group),
        )?;
        println!("wrote {}", figure.display());
    }
    draw_layer_norm_figure(&root, &series)?;
    print_table(&results);
    Ok(())
}

/// Fig. 3(b): the baseline's last-layer norm, `||mu_G||` and spikes against the LayerNorm
/// head's, when both arms ran.
fn draw_layer_norm_figure(root: &RunDir, series: &[Series]) -> Result<(), ExperimentError> {
    let pick = |label: &str| series.iter().find(|s| s.label == label).copied();
    let (Some(baseline), Some(layer_norm)) = (pick("baseline"), pick("layer-norm-head")) else {
        return Ok(());
    };
    let figure = root.figure("layer-norm.png");
    plot::draw_panels(
        &figure,
        &format!("{EXPERIMENT}: LayerNorm before the classifier (Fig. 3(b))"),
        2,
        &plot::metric_panels(&plot::last_layer_norm_panels(), &[baseline, layer_norm]),
    )?;
    println!("wrote {}", figure.display());
    Ok(())
}
