//! Fig. 2(a) of the paper: the classifier layer's parameter updates before, at and after a
//! slingshot loss spike, with §4.1's scalar estimate of the spike update printed beside the
//! measured one.
//!
//! The f32 arm runs once to find its first loss spike; the same seed then runs again up to just
//! past it, logging every step of a window around the spike and recording each step's
//! classifier update `w_after - w_before` (logging more often changes no number; the binary
//! checks that the two runs agree). The "at" step is the window's step with the largest mean
//! update. §4.1's estimate takes the gradient held before the spike as the root mean square of
//! the classifier-weight gradient at the "before" step, and a re-emerging gradient of `2^-23`
//! (f32's absorption threshold, `exp(-(p - 1) ln 2)` in the paper). The runs and the analysis
//! are [`slingshot_experiments::update_analysis`]; this binary parses flags, draws and prints.
//!
//! `cargo run -p slingshot-examples --bin update-spike` uses the CPU demo configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use slingshot_experiments::ExperimentError;
use slingshot_experiments::cli::{TrainArgs, exit_code};
use slingshot_experiments::plot::{self, HistogramPanel, Panel, Series};
use slingshot_experiments::update_analysis::{self, SpikeWindow, Stage, UpdateSpike};

// mimalloc keeps freed tensor buffers for the next step; glibc's malloc unmaps the large ones
// and page-faults them back, which halves the transformer's speed (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Classifier updates around a slingshot spike (the paper's Fig. 2(a)).
#[derive(Debug, Parser)]
#[command(name = "update-spike", version)]
struct Cli {
    #[command(flatten)]
    train: TrainArgs,
    /// Steps recorded on each side of the first spike.
    #[arg(long, default_value_t = 40)]
    window: u64,
    /// Distance of the "before" and "after" histograms from the spike update's step.
    #[arg(long, default_value_t = 10)]
    offset: u64,
    /// Histogram bins.
    #[arg(long, default_value_t = 60)]
    bins: usize,
}

const EXPERIMENT: &str = "update-spike";

fn main() -> ExitCode {
    exit_code(run(&Cli::parse()))
}

fn run(cli: &Cli) -> Result<(), ExperimentError> {
    let window = SpikeWindow {
        window: cli.window,
        offset: cli.offset,
    };
    let result = update_analysis::run(
        &cli.train.config(EXPERIMENT, "run"),
        window,
        &cli.train.options(),
        &cli.train.out_dir(EXPERIMENT),
        |stage| match stage {
            Stage::FirstRun => println!("1/2: the f32 run, to find the first spike"),
            Stage::WindowRun { up_to } => {
                println!("2/2: the same seed up to step {up_to}, every step logged near the spike")
            }
        },
    )?;
    let figures = draw(&result, cli.bins)?;
    print_report(&result, figures);
    Ok(())
}

/// `histograms.png` (Fig. 2(a)) and `window.png`; returns their paths.
fn draw(result: &UpdateSpike, bins: usize) -> Result<[PathBuf; 2], ExperimentError> {
    let report = &result.analysis.report;
    let titles = [
        format!("before: step {}", report.before.step),
        format!("at the spike: step {}", report.at.step),
        format!("after: step {}", report.after.step),
    ];
    let values = result.histogram_values();
    let panels: Vec<HistogramPanel> = titles
        .iter()
        .zip(values)
        .map(|(title, values)| HistogramPanel { title, values })
        .collect();
    let histograms = result.root.figure("histograms.png");
    plot::draw_panels(
        &histograms,
        &format!("{EXPERIMENT}: classifier-weight updates around the first spike (f32)"),
        panels.len(),
        &plot::histogram_plots(&panels, bins),
    )?;
    let window_rows = result.window_rows();
    let window_figure = result.root.figure("window.png");
    plot::draw_panels(
        &window_figure,
        &format!(
            "{EXPERIMENT}: steps {} to {}",
            result.recorded.start(),
            result.recorded.end()
        ),
        2,
        &plot::metric_panels(
            &window_panels(),
            &[Series {
                label: "f32",
                rows: &window_rows,
                spikes: &result.window_run.summary.spikes,
                nfi_events: &result.window_run.summary.nfi_events,
            }],
        ),
    )?;
    Ok([histograms, window_figure])
}

/// The table of the three steps, §4.1's estimate beside the measurement, and the outputs.
fn print_report(result: &UpdateSpike, [histograms, window_figure]: [PathBuf; 2]) {
    let report = &result.analysis.report;
    let est = &report.estimate;
    println!(
        "\nfirst loss spike at logged step {}; updates of the classifier weight:",
        report.first_spike
    );
    println!(
        "{:<8} {:>8} {:>12} {:>12} {:>12}",
        "", "step", "mean |dw|", "median |dw|", "max |dw|"
    );
    for (name, s) in [
        ("before", report.before),
        ("at", report.at),
        ("after", report.after),
    ] {
        println!(
            "{name:<8} {:>8} {:>12.3e} {:>12.3e} {:>12.3e}",
            s.step, s.mean_abs, s.median_abs, s.max_abs
        );
    }
    println!(
        "\n§4.1 estimate: g_before = {:.3e} (classifier gradient RMS), g_after = {:.3e}, lr {:e}, betas {}/{}, eps {:e}",
        est.g_before, est.g_after, est.lr, est.beta1, est.beta2, est.eps
    );
    println!(
        "  estimated spike update {:.3e} ({:.1}x the step before); measured median {:.3e}, mean {:.3e} ({:.1}x the 'before' mean)",
        est.update,
        est.amplification,
        report.at.median_abs,
        report.at.mean_abs,
        report.measured_amplification
    );
    println!(
        "\nwrote {}, {} and {}",
        histograms.display(),
        window_figure.display(),
        result.report_path.display()
    );
}

/// Loss, the classifier's mean update, its median effective learning rate, collapse.
fn window_panels() -> Vec<Panel> {
    vec![
        Panel::log("training loss", |r| Some(r.loss)).with_spikes(),
        Panel::log("mean |update| of the classifier weight", |r| r.update_mean),
        Panel::log("median effective LR lr/(sqrt(v)+eps), classifier", |r| {
            r.eff_lr_median
        }),
        Panel::collapsed_fraction(),
    ]
}
