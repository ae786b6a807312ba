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
//! (f32's absorption threshold, `exp(-(p - 1) ln 2)` in the paper).
//!
//! `cargo run -p slingshot-examples --bin update-spike` uses the CPU demo configuration.

use std::process::ExitCode;

use clap::Parser;
use serde::Serialize;
use slingshot::numerics::{AdamHyper, BiasCorrection, estimate_reemergence_update};
use slingshot_experiments::cli::{TrainArgs, exit_code};
use slingshot_experiments::metrics::{UPDATES_FILE, read_updates, write_json};
use slingshot_experiments::plot::{self, HistogramPanel, Panel, Series};
use slingshot_experiments::{ExperimentError, MetricsRow, RunDir, RunOptions};

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

/// Mean and median magnitude of one step's updates.
#[derive(Debug, Clone, Copy, Serialize)]
struct StepUpdates {
    step: u64,
    mean_abs: f64,
    median_abs: f64,
    max_abs: f64,
}

impl StepUpdates {
    fn of(step: u64, values: &[f64]) -> Self {
        let mut abs: Vec<f64> = values.iter().map(|v| v.abs()).collect();
        abs.sort_by(f64::total_cmp);
        Self {
            step,
            mean_abs: abs.iter().sum::<f64>() / abs.len().max(1) as f64,
            median_abs: abs.get(abs.len() / 2).copied().unwrap_or(f64::NAN),
            max_abs: abs.last().copied().unwrap_or(f64::NAN),
        }
    }
}

/// `update-spike.json`.
#[derive(Debug, Serialize)]
struct Report {
    first_spike: u64,
    before: StepUpdates,
    at: StepUpdates,
    after: StepUpdates,
    measured_amplification: f64,
    estimate: Estimate,
}

/// §4.1's scalar estimate with the measured inputs.
#[derive(Debug, Serialize)]
struct Estimate {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    g_before: f64,
    g_after: f64,
    update: f64,
    amplification: f64,
}

fn main() -> ExitCode {
    exit_code(run(&Cli::parse()))
}

fn run(cli: &Cli) -> Result<(), ExperimentError> {
    let config = cli.train.config(EXPERIMENT, "run");
    config.validate()?;
    if cli.window < 2 || cli.offset == 0 || cli.offset >= cli.window {
        return Err(ExperimentError::InvalidConfig(format!(
            "--window {} and --offset {}: need window >= 2 and 0 < offset < window",
            cli.window, cli.offset
        )));
    }
    let out = cli.train.out_dir(EXPERIMENT);
    let root = RunDir::create(&out)?;
    let run_dir = RunDir::create(&out.join("run"))?;
    let window_dir = RunDir::create(&out.join("window"))?;

    println!("1/2: the f32 run, to find the first spike");
    let first = slingshot_experiments::run(&config, &run_dir, &cli.train.options())?;
    let Some(&spike) = first.summary.spikes.first() else {
        return Err(ExperimentError::InvalidConfig(format!(
            "the run had no loss spike in {} steps: try more --steps (see {})",
            config.steps,
            run_dir.root().display()
        )));
    };

    println!(
        "2/2: the same seed up to step {}, every step logged near the spike",
        spike + cli.window
    );
    let mut window_config = config.clone();
    window_config.arm = "window".into();
    window_config.steps = (spike + cli.window).min(config.steps);
    let range = spike.saturating_sub(cli.window).max(1)..=window_config.steps;
    let options = RunOptions {
        quiet: cli.train.quiet,
        overwrite: cli.train.overwrite,
        record_updates: Some(range.clone()),
        ..RunOptions::default()
    };
    let second = slingshot_experiments::run(&window_config, &window_dir, &options)?;
    check_same_numbers(&first.rows, &second.rows)?;

    let updates = read_updates(&window_dir.root().join(UPDATES_FILE))?;
    let (at_index, _) = updates
        .iter()
        .enumerate()
        .map(|(i, (s, v))| (i, StepUpdates::of(*s, v).mean_abs))
        .filter(|(_, m)| m.is_finite())
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .ok_or_else(|| ExperimentError::InvalidConfig("no update was recorded".into()))?;
    let pick = |i: usize| StepUpdates::of(updates[i].0, &updates[i].1);
    let before_index = at_index.saturating_sub(cli.offset as usize);
    let after_index = (at_index + cli.offset as usize).min(updates.len() - 1);
    let (before, at, after) = (pick(before_index), pick(at_index), pick(after_index));

    // §4.1: the gradient held before the spike, as the classifier gradient's root mean
    // square at the "before" step (the step just before "at" already carries the re-emerging
    // gradient).
    let numel = updates[at_index].1.len() as f64;
    let g_before = second
        .rows
        .iter()
        .find(|r| r.step == before.step)
        .and_then(|r| r.classifier_grad_norm)
        .map(|norm| norm / numel.sqrt())
        .ok_or_else(|| ExperimentError::InvalidConfig("no probe before the spike".into()))?;
    let lr = slingshot_experiments::train::learning_rate(&config, at.step - 1);
    let g_after = f64::from(f32::EPSILON);
    let hyper = AdamHyper::try_new(lr, config.beta1, config.beta2, config.eps)
        .map_err(|e| ExperimentError::InvalidConfig(e.to_string()))?;
    let est =
        estimate_reemergence_update(&hyper, g_before, g_after, BiasCorrection::AtStep(at.step))
            .map_err(|e| ExperimentError::InvalidConfig(e.to_string()))?;
    let report = Report {
        first_spike: spike,
        before,
        at,
        after,
        measured_amplification: at.mean_abs / before.mean_abs,
        estimate: Estimate {
            lr,
            beta1: config.beta1,
            beta2: config.beta2,
            eps: config.eps,
            g_before,
            g_after,
            update: est.update.abs(),
            amplification: est.amplification(),
        },
    };
    write_json(&root.root().join("update-spike.json"), &report)?;

    let titles = [
        format!("before: step {}", before.step),
        format!("at the spike: step {}", at.step),
        format!("after: step {}", after.step),
    ];
    let histograms = root.figure("histograms.png");
    plot::draw_histograms(
        &histograms,
        &format!("{EXPERIMENT}: classifier-weight updates around the first spike (f32)"),
        &[
            HistogramPanel {
                title: &titles[0],
                values: &updates[before_index].1,
            },
            HistogramPanel {
                title: &titles[1],
                values: &updates[at_index].1,
            },
            HistogramPanel {
                title: &titles[2],
                values: &updates[after_index].1,
            },
        ],
        cli.bins,
    )?;
    let window_rows: Vec<MetricsRow> = second
        .rows
        .iter()
        .filter(|r| range.contains(&r.step))
        .cloned()
        .collect();
    let window_figure = root.figure("window.png");
    plot::draw(
        &window_figure,
        &format!("{EXPERIMENT}: steps {} to {}", range.start(), range.end()),
        &[Series {
            label: "f32",
            rows: &window_rows,
            spikes: &second.summary.spikes,
        }],
        &window_panels(),
        2,
    )?;

    println!("\nfirst loss spike at logged step {spike}; updates of the classifier weight:");
    println!(
        "{:<8} {:>8} {:>12} {:>12} {:>12}",
        "", "step", "mean |dw|", "median |dw|", "max |dw|"
    );
    for (name, s) in [("before", before), ("at", at), ("after", after)] {
        println!(
            "{name:<8} {:>8} {:>12.3e} {:>12.3e} {:>12.3e}",
            s.step, s.mean_abs, s.median_abs, s.max_abs
        );
    }
    println!(
        "\n§4.1 estimate: g_before = {g_before:.3e} (classifier gradient RMS), g_after = {g_after:.3e}, lr {lr:e}, betas {}/{}, eps {:e}",
        config.beta1, config.beta2, config.eps
    );
    println!(
        "  estimated spike update {:.3e} ({:.1}x the step before); measured median {:.3e}, mean {:.3e} ({:.1}x the 'before' mean)",
        est.update.abs(),
        est.amplification(),
        at.median_abs,
        at.mean_abs,
        report.measured_amplification
    );
    println!(
        "\nwrote {}, {} and {}",
        histograms.display(),
        window_figure.display(),
        root.root().join("update-spike.json").display()
    );
    Ok(())
}

/// The window's rows must repeat the first run's numbers at the steps both logged.
fn check_same_numbers(first: &[MetricsRow], second: &[MetricsRow]) -> Result<(), ExperimentError> {
    for b in second {
        if let Some(a) = first.iter().find(|a| a.step == b.step)
            && (a.loss.to_bits() != b.loss.to_bits()
                || a.mu_g_norm.to_bits() != b.mu_g_norm.to_bits())
        {
            return Err(ExperimentError::InvalidConfig(format!(
                "the re-run differs from the first run at step {}: loss {} vs {}",
                b.step, b.loss, a.loss
            )));
        }
    }
    Ok(())
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
