//! The flags of `lm-collapse`, and its combined outputs: every arm is validated and the corpus
//! checked before any training; the arms run through the run layer's arms protocol
//! ([`crate::run::arms`]: each in its own process, since burn keeps one default float dtype
//! per device and process); then the figures, the tally and the summary.

use std::path::{Path, PathBuf};

use clap::Args;
use serde::{Deserialize, Serialize};

use super::config::{LmArm, LmConfig, LmPreset, TokenizerKind};
use super::metrics::{LmRow, LmSummary, TOP_TOKENS_FILE, format_top_tokens};
use super::train::{LmRunResult, prepare, run};
use crate::cli::{ArmSelection, ArmSpec, RunFlags};
use crate::config::BackendKind;
use crate::error::ExperimentError;
use crate::metrics::write_json;
use crate::output::RunDir;
use crate::plot::{XyPanel, XySeries, draw_panels, xy_panels};
use crate::run::RunOptions;
use crate::run::{Arm, ArmTask, run_arms};

/// The flags of one language-model experiment; unset flags keep the preset's value.
#[derive(Debug, Clone, Args)]
pub struct LmArgs {
    /// Starting configuration.
    #[arg(long, value_enum, default_value = "tiny")]
    pub preset: LmPreset,
    /// The arms (`--only`/`--arms`, comma-separated: f32, f64-loss, bf16 (cuda only),
    /// centered) and `--list`. Default: every arm the backend can run (the others are listed
    /// as skipped in summary.json).
    #[command(flatten)]
    pub arms: ArmSelection,
    /// Training text: a UTF-8 file or a directory of them (default: the built-in corpus).
    #[arg(long, value_name = "PATH")]
    pub corpus: Option<PathBuf>,
    /// `byte` or `bpe:VOCAB` (BPE trained on the corpus).
    #[arg(long)]
    pub tokenizer: Option<TokenizerKind>,
    /// Optimizer steps.
    #[arg(long, allow_hyphen_values = true)]
    pub steps: Option<u64>,
    /// Windows per step.
    #[arg(long, allow_hyphen_values = true)]
    pub batch: Option<usize>,
    /// Tokens per window.
    #[arg(long, allow_hyphen_values = true)]
    pub seq_len: Option<usize>,
    /// Residual width.
    #[arg(long, allow_hyphen_values = true)]
    pub d_model: Option<usize>,
    /// Blocks.
    #[arg(long, allow_hyphen_values = true)]
    pub layers: Option<usize>,
    /// Attention heads.
    #[arg(long, allow_hyphen_values = true)]
    pub heads: Option<usize>,
    /// SwiGLU hidden width.
    #[arg(long, allow_hyphen_values = true)]
    pub ffn_hidden: Option<usize>,
    /// Peak learning rate.
    #[arg(long, allow_hyphen_values = true)]
    pub lr: Option<f64>,
    /// Floor of the cosine decay.
    #[arg(long, allow_hyphen_values = true)]
    pub min_lr: Option<f64>,
    /// Linear warm-up steps.
    #[arg(long, allow_hyphen_values = true)]
    pub warmup: Option<u64>,
    /// Gradient clipping threshold.
    #[arg(long, allow_hyphen_values = true)]
    pub grad_clip: Option<f64>,
    /// Seed of the initialization and the batches.
    #[arg(long, allow_hyphen_values = true)]
    pub seed: Option<u64>,
    /// Backend.
    // `BackendKind::CPU_DEFAULT`.
    #[arg(long, value_enum, default_value = "flex")]
    pub backend: BackendKind,
    /// Where and how the run goes: `--out`, `--resume`, `--overwrite`, checkpoints, progress.
    #[command(flatten)]
    pub run: RunFlags,
    /// Log (read statistics back) every this many steps.
    #[arg(long, allow_hyphen_values = true)]
    pub log_every: Option<u64>,
}

/// The experiment's name.
pub const EXPERIMENT: &str = "lm-collapse";

/// An arm left out, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedArm {
    /// The arm.
    pub arm: String,
    /// Why it did not run.
    pub reason: String,
}

/// The top-level `summary.json` of a multi-arm run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LmReport {
    /// Each arm's summary, in the order run.
    pub arms: Vec<LmSummary>,
    /// Arms not run on this backend.
    pub skipped_arms: Vec<SkippedArm>,
    /// Fig. 13's comparison: whether the f64-loss arm ended with a higher mean logit than the
    /// f32 arm (absent unless both ran).
    pub f64_loss_higher_final_mean_logit: Option<bool>,
}

impl LmArgs {
    /// The configuration of `arm`.
    pub fn config(&self, arm: LmArm) -> LmConfig {
        let mut c = LmConfig::preset(self.preset);
        c.experiment = EXPERIMENT.into();
        c.arm = arm;
        c.backend = self.backend;
        if self.corpus.is_some() {
            c.corpus = self.corpus.clone();
        }
        macro_rules! set {
            ($($flag:ident => $field:expr),* $(,)?) => {
                $(if let Some(v) = self.$flag { $field = v; })*
            };
        }
        set!(
            tokenizer => c.tokenizer, steps => c.steps, batch => c.batch, seq_len => c.seq_len,
            d_model => c.model.d_model, layers => c.model.n_layers, heads => c.model.n_heads,
            ffn_hidden => c.model.ffn_hidden, lr => c.lr, min_lr => c.min_lr,
            warmup => c.warmup, grad_clip => c.grad_clip, seed => c.seed,
            log_every => c.log_every,
        );
        c
    }

    /// How to run (a checkpoint every 200 steps unless `--checkpoint-every` says otherwise).
    pub fn options(&self) -> RunOptions {
        self.run.options(200)
    }

    /// `--out`, or `runs/lm-collapse`.
    pub fn out_dir(&self) -> PathBuf {
        self.run.out_dir(EXPERIMENT)
    }

    /// The arms to run and the ones skipped: `--only` as given (an arm the backend cannot run
    /// is then an error, from validation), or every arm the backend runs.
    pub fn arms(&self) -> Result<(Vec<LmArm>, Vec<SkippedArm>), ExperimentError> {
        let chosen: Vec<LmArm> = self
            .arms
            .select(&arm_specs(), None)?
            .iter()
            .filter_map(|spec| LmArm::ALL.into_iter().find(|a| a.to_string() == spec.label))
            .collect();
        if !self.arms.only.is_empty() {
            return Ok((chosen, Vec::new()));
        }
        let (run, skip): (Vec<LmArm>, Vec<LmArm>) =
            chosen.into_iter().partition(|a| a.runs_on(self.backend));
        let skipped = skip
            .into_iter()
            .map(|a| SkippedArm {
                arm: a.to_string(),
                reason: format!(
                    "needs --backend cuda (a bf16 model); this run used {}",
                    self.backend
                ),
            })
            .collect();
        Ok((run, skipped))
    }
}

/// Every arm, for `--list` and `--only` (an arm is its configuration, it adds no flags).
fn arm_specs() -> Vec<ArmSpec> {
    LmArm::ALL
        .iter()
        .map(|a| ArmSpec::new(&a.to_string(), &[]))
        .collect()
}

/// The language-model task as an arm of `lm-collapse`.
#[derive(Debug, Clone, Copy)]
pub struct LmArmTask;

impl ArmTask for LmArmTask {
    type Config = LmConfig;
    type Output = LmRunResult;
    // The cosine schedule spans the whole run.
    const STEPS_EXTEND: bool = false;

    fn validate(config: &LmConfig) -> Result<(), ExperimentError> {
        config.validate()
    }

    fn run(
        config: &LmConfig,
        dir: &RunDir,
        options: &RunOptions,
    ) -> Result<LmRunResult, ExperimentError> {
        run(config, dir, options)
    }

    fn read(dir: &RunDir) -> Result<LmRunResult, ExperimentError> {
        read_arm(dir)
    }
}

/// Runs `lm-collapse`: every arm, each arm's figure, and the combined outputs.
pub fn main_run(args: &LmArgs) -> Result<(), ExperimentError> {
    if args.arms.print_list(&arm_specs()) {
        return Ok(());
    }
    let (arms, skipped) = args.arms()?;
    if arms.is_empty() {
        return Err(ExperimentError::InvalidConfig("no arm to run".into()));
    }
    let arms: Vec<Arm<LmConfig>> = arms
        .iter()
        .map(|&a| Arm {
            label: a.to_string(),
            config: args.config(a),
        })
        .collect();
    // The corpus is checked before the first step, as the flags are in `run_arms`.
    arms[0].config.validate()?;
    prepare(&arms[0].config)?;
    let out = args.out_dir();
    let (root, results) = run_arms::<LmArmTask>(&out, &arms, &args.options())?;
    for (arm, result) in arms.iter().zip(&results) {
        draw_panels(
            &out.join(&arm.label).join("figure.png"),
            &format!("{EXPERIMENT}: {} ({})", arm.label, arm.config.backend),
            2,
            &xy_panels(&panels(std::slice::from_ref(result))),
        )?;
    }
    let report = report(&results, skipped);
    write_json(&root.summary(), &report)?;
    let tally: String = results
        .iter()
        .map(|r| format_top_tokens(&r.summary.arm, &r.summary.top_collapsed_tokens))
        .collect::<Vec<_>>()
        .join("\n");
    let path = root.root().join(TOP_TOKENS_FILE);
    std::fs::write(&path, tally).map_err(|e| ExperimentError::Write {
        path,
        reason: e.to_string(),
    })?;
    draw_figures(root.root(), &results)?;
    print_report(&report);
    println!(
        "\nwrote {} (figures, tally, summary) and one directory per arm",
        out.display()
    );
    Ok(())
}

/// An arm's outputs read back from its directory.
pub fn read_arm(dir: &RunDir) -> Result<LmRunResult, ExperimentError> {
    let (rows, summary) = crate::run::csv_log::read_outputs(dir)?;
    Ok(LmRunResult { summary, rows })
}

/// The top-level summary of the arms' results.
pub fn report(results: &[LmRunResult], skipped_arms: Vec<SkippedArm>) -> LmReport {
    let final_mean = |arm: &str| {
        results
            .iter()
            .find(|r| r.summary.arm == arm)
            .map(|r| r.summary.final_mean_logit)
    };
    LmReport {
        arms: results.iter().map(|r| r.summary.clone()).collect(),
        skipped_arms,
        f64_loss_higher_final_mean_logit: final_mean("f64-loss")
            .zip(final_mean("f32"))
            .map(|(f64_loss, f32)| f64_loss > f32),
    }
}

fn series(results: &[LmRunResult], value: fn(&LmRow) -> f64) -> Vec<XySeries<'_>> {
    results
        .iter()
        .map(|r| XySeries {
            label: &r.summary.arm,
            points: r
                .rows
                .iter()
                .map(|row| (row.step as f64, value(row)))
                .collect(),
        })
        .collect()
}

/// The panels of an arm's (or the arms') figure.
fn panels(results: &[LmRunResult]) -> Vec<XyPanel<'_>> {
    let panel = |title, log_y, value| XyPanel {
        title,
        x_label: "step",
        log_y,
        series: series(results, value),
    };
    vec![
        panel("training loss", true, |r| r.loss),
        panel("mean logit", false, |r| r.mean_logit),
        panel("zero-loss (collapsed) token fraction", false, |r| {
            r.zero_loss_fraction
        }),
        panel("||W_G|| (output-embedding mean)", false, |r| r.w_g_norm),
    ]
}

/// The three figures of the issue, one quantity each, one line per arm.
pub fn draw_figures(root: &Path, results: &[LmRunResult]) -> Result<(), ExperimentError> {
    let all = panels(results);
    let names = [
        ("mean-logit.png", 1, "mean logit by arm (Fig. 13)"),
        (
            "collapsed-fraction.png",
            2,
            "zero-loss token fraction by arm",
        ),
        ("w-g-norm.png", 3, "||W_G|| by arm"),
    ];
    for (file, index, title) in names {
        draw_panels(
            &root.join(file),
            &format!("{EXPERIMENT}: {title}"),
            1,
            &xy_panels(std::slice::from_ref(&all[index])),
        )?;
    }
    draw_panels(&root.join("figure.png"), EXPERIMENT, 2, &xy_panels(&all))
}

/// The table `lm-collapse` prints.
pub fn print_report(report: &LmReport) {
    println!(
        "\n{:<10} {:>8} {:>10} {:>11} {:>12} {:>9} {:>10} {:>9}",
        "arm", "loss", "mean logit", "max zero-%", "zero tokens", "||W_G||", "tokens/s", "params"
    );
    for s in &report.arms {
        println!(
            "{:<10} {:>8.4} {:>10.3} {:>10.2}% {:>12} {:>9.4} {:>10.0} {:>9}",
            s.arm,
            s.final_loss,
            s.final_mean_logit,
            100.0 * s.max_zero_loss_fraction,
            s.total_zero_loss_tokens,
            s.final_w_g_norm,
            s.tokens_per_second,
            s.params
        );
    }
    for s in &report.arms {
        let top: Vec<String> = s
            .top_collapsed_tokens
            .iter()
            .map(|t| format!("{:?} ({})", t.text, t.count))
            .collect();
        println!("top collapsed tokens, {}: {}", s.arm, top.join(", "));
    }
    for s in &report.skipped_arms {
        println!("skipped {}: {}", s.arm, s.reason);
    }
    if let Some(higher) = report.f64_loss_higher_final_mean_logit {
        println!("f64-loss final mean logit higher than f32: {higher}");
    }
}
