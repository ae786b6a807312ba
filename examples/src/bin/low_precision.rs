//! App. A.3.3's conjecture tested: does training in lower precision (bf16, f16, FP8) bring
//! softmax collapse, feature inflation and spikes sooner and more often? The modular task with
//! the loss in each format, bf16 logits with an f32 loss (autocast), the whole model in bf16
//! and f16 on burn-flex, each again with zero-sum projection, and the 16-bit models with the
//! loss upcast to f32. Each arm's collapse margins are set against the thresholds of its
//! format (`low-precision.json`).
//!
//! `cargo run --release -p slingshot-examples --bin low-precision` runs every arm of the demo;
//! `--only f32,bf16-loss` a subset; `--list` prints them.

use std::process::ExitCode;

use clap::Parser;
use slingshot_experiments::cli::{
    ArmSelection, TrainArgs, TrainArm, TrainedArms, exit_code, run_selected_arms, series,
};
use slingshot_experiments::low_precision::{self, arm_report};
use slingshot_experiments::margins::read_fraction_points;
use slingshot_experiments::plot::{self, PlotPanel, Series, XyPanel, XySeries};
use slingshot_experiments::run::child_entry;
use slingshot_experiments::train::MARGINS_FILE;
use slingshot_experiments::{ExperimentError, TrainConfig};

// mimalloc keeps freed tensor buffers for the next step; glibc's malloc unmaps the large ones
// and page-faults them back, which halves the transformer's speed (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Every format in the loss, side by side.
#[derive(Debug, Parser)]
#[command(name = "low-precision", version)]
struct Cli {
    #[command(flatten)]
    train: TrainArgs,
    /// `--only` and `--list`.
    #[command(flatten)]
    arms: ArmSelection,
}

const EXPERIMENT: &str = "low-precision";

fn main() -> ExitCode {
    // A child process started for one arm trains it and exits here.
    if let Some(code) = child_entry::<TrainArm>() {
        return code;
    }
    exit_code(run(&Cli::parse()))
}

fn run(cli: &Cli) -> Result<(), ExperimentError> {
    let all = low_precision::arms();
    let Some(TrainedArms {
        arms,
        root,
        results,
    }) = run_selected_arms(EXPERIMENT, cli, |c: &Cli| &c.train, &cli.arms, &all, None)?
    else {
        return Ok(());
    };
    let panels = plot::mechanism_panels();
    let reports: Vec<_> = arms
        .iter()
        .zip(&results)
        .map(|(arm, r)| arm_report(r, arm.config.precision, arm.config.classes()))
        .collect();
    low_precision::write_report(root.root(), &reports)?;

    // One figure per group of arms, each with the f32 arm (when run) for reference.
    let all_series = series(&results);
    let group = |keep: &dyn Fn(&str) -> bool| -> Vec<Series> {
        all_series
            .iter()
            .filter(|s| keep(s.label))
            .copied()
            .collect()
    };
    let is_upcast = |l: &str| l.ends_with("-f32-loss");
    let groups = [
        (
            "formats",
            group(&|l| !l.contains("zero-sum") && !is_upcast(l)),
        ),
        ("zero-sum", group(&|l| l == "f32" || l.contains("zero-sum"))),
        (
            "upcast",
            group(&|l| ["f32", "bf16", "f16"].contains(&l) || is_upcast(l)),
        ),
    ];
    for (name, lines) in groups.iter().filter(|(_, lines)| !lines.is_empty()) {
        let figure = root.figure(&format!("figure-{name}.png"));
        let title = format!("{EXPERIMENT}: {name}");
        plot::draw_panels(&figure, &title, 3, &plot::metric_panels(&panels, lines))?;
        println!("wrote {}", figure.display());
    }
    draw_collapse_vs_margin(&root, &arms, &results)?;
    low_precision::print_report(&reports);
    Ok(())
}

/// The collapsed fraction of the logged rows against their margin, one line per arm without
/// a mitigation: where each format's rows collapse.
fn draw_collapse_vs_margin(
    root: &slingshot_experiments::RunDir,
    arms: &[slingshot_experiments::run::Arm<TrainConfig>],
    results: &[slingshot_experiments::RunResult],
) -> Result<(), ExperimentError> {
    let mut lines = Vec::new();
    for (arm, r) in arms.iter().zip(results) {
        if arm.label.contains("zero-sum") {
            continue;
        }
        let points = read_fraction_points(&root.root().join(&arm.label).join(MARGINS_FILE))?;
        lines.push(XySeries {
            label: &r.summary.arm,
            points,
        });
    }
    let panel = XyPanel {
        title: "collapsed fraction of the logged rows by margin",
        x_label: "margin z_label - max other z",
        log_y: false,
        series: lines,
    };
    let figure = root.figure("collapse-vs-margin.png");
    plot::draw_panels(
        &figure,
        &format!("{EXPERIMENT}: where rows collapse"),
        1,
        &[PlotPanel::Lines(panel.line_panel())],
    )?;
    println!("wrote {}", figure.display());
    Ok(())
}
