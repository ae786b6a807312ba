//! Flags shared by the experiment binaries, turned into [`TrainConfig`]s.

use std::path::PathBuf;

use clap::Args;
use slingshot_nn::HeadNorm;

use crate::config::{BackendKind, BatchSize, Precision, TrainConfig};
use crate::data::Operation;
use crate::model::ModelKind;
use crate::train::RunOptions;

/// Which starting configuration the flags modify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// The CPU demo: a smaller task and model that show the mechanism in minutes on two cores
    /// (see the README for how it differs from the paper).
    Demo,
    /// App. D Table 2 exactly: division mod 97, the 6-layer MLP of width 512, Adam lr 1e-3,
    /// 10 warm-up steps, betas 0.9/0.999, eps 1e-8, batch 512, 100k steps.
    Paper,
}

/// The flags of one training run; unset flags keep the preset's value.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// Starting configuration.
    #[arg(long, value_enum, default_value = "demo")]
    pub preset: Preset,
    /// Network.
    #[arg(long, value_enum)]
    pub model: Option<ModelKind>,
    /// Modulus (a prime).
    #[arg(long)]
    pub p: Option<usize>,
    /// Operation: add, sub, mul or div.
    #[arg(long)]
    pub op: Option<Operation>,
    /// Optimizer steps.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Rows per step: `full` or a number.
    #[arg(long)]
    pub batch: Option<BatchSize>,
    /// Adam's learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Linear warm-up steps.
    #[arg(long)]
    pub warmup: Option<u64>,
    /// Adam's beta1.
    #[arg(long)]
    pub beta1: Option<f64>,
    /// Adam's beta2.
    #[arg(long)]
    pub beta2: Option<f64>,
    /// Adam's epsilon.
    #[arg(long)]
    pub eps: Option<f64>,
    /// MLP hidden width.
    #[arg(long)]
    pub width: Option<usize>,
    /// MLP hidden layers.
    #[arg(long)]
    pub depth: Option<usize>,
    /// LayerNorm in the transformer blocks.
    #[arg(long)]
    pub transformer_layer_norm: bool,
    /// Seed of the split, the initialization and the batches.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Backend.
    // `BackendKind::CPU_DEFAULT`.
    #[arg(long, value_enum, default_value = "flex")]
    pub backend: BackendKind,
    /// Log and evaluate every this many steps.
    #[arg(long)]
    pub log_every: Option<u64>,
    /// Write a checkpoint every this many steps (0: never).
    #[arg(long, default_value_t = 1000)]
    pub checkpoint_every: u64,
    /// Continue each arm from its checkpoint in `--out` (the flags must match the first run).
    #[arg(long)]
    pub resume: bool,
    /// No progress bar (it is also off when stdout is not a terminal).
    #[arg(long)]
    pub quiet: bool,
    /// Output directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Zero-sum projection of the logit gradient (§4.1).
    #[arg(long)]
    pub zero_sum: bool,
    /// Label smoothing.
    #[arg(long)]
    pub label_smoothing: Option<f64>,
    /// Subtract the classifier's mean row after every step.
    #[arg(long)]
    pub mean_removal: bool,
    /// Weight of the mu-loss `gamma ||W_G||^2`.
    #[arg(long)]
    pub mu_loss: Option<f64>,
    /// Forward the classifier with `W - W_G` (§4.3).
    #[arg(long)]
    pub centered: bool,
    /// Normalization before the classifier: none, centering, batch-norm or layer-norm.
    #[arg(long, value_parser = parse_head_norm)]
    pub head_norm: Option<HeadNorm>,
    /// No bias in the classifier (App. A.1.3).
    #[arg(long)]
    pub no_classifier_bias: bool,
    /// Clamp each row's logits to at least `max - MARGIN` (App. A.1.4 uses 100).
    #[arg(long, value_name = "MARGIN")]
    pub logit_clamp: Option<f64>,
    /// Switch from Adam to gradient descent at this learning rate once the loss is at most
    /// `--switch-when-loss-at-most` (§4.2 uses 1e5).
    #[arg(long, value_name = "LR")]
    pub switch_to_gd: Option<f64>,
    /// The training loss at or below which `--switch-to-gd` switches (checked on logged
    /// steps; 0 means exactly zero, as in the paper).
    #[arg(
        long,
        value_name = "LOSS",
        default_value_t = 0.0,
        requires = "switch_to_gd"
    )]
    pub switch_when_loss_at_most: f64,
    /// Estimate the largest Hessian eigenvalue every this many steps (a multiple of
    /// `--log-every`; Fig. 5).
    #[arg(long, value_name = "STEPS")]
    pub sharpness_every: Option<u64>,
    /// Internal: the arm's name (output subdirectory and legend), set by the parent process.
    #[arg(long, hide = true)]
    pub arm_label: Option<String>,
}

fn parse_head_norm(s: &str) -> Result<HeadNorm, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "none" => Ok(HeadNorm::None),
        "centering" => Ok(HeadNorm::Centering),
        "batch-norm" | "batchnorm" => Ok(HeadNorm::BatchNorm),
        "layer-norm" | "layernorm" => Ok(HeadNorm::LayerNorm),
        other => Err(format!(
            "unknown head norm {other:?}; expected none, centering, batch-norm or layer-norm"
        )),
    }
}

impl TrainArgs {
    /// The configuration of the arm `precision` of `experiment`.
    pub fn config(&self, experiment: &str, precision: Precision) -> TrainConfig {
        let base = match self.preset {
            Preset::Paper => TrainConfig::paper(),
            Preset::Demo => TrainConfig::demo(),
        };
        self.apply(base, experiment, precision)
    }

    /// `base` with these flags set on it, as the arm `precision` of `experiment`.
    pub fn apply(&self, base: TrainConfig, experiment: &str, precision: Precision) -> TrainConfig {
        let mut c = base;
        c.experiment = experiment.into();
        c.arm = self
            .arm_label
            .clone()
            .unwrap_or_else(|| precision.to_string());
        c.precision = precision;
        c.backend = self.backend;
        if let Some(kind) = self.model {
            c.model.kind = kind;
        }
        macro_rules! set {
            ($($flag:ident => $field:expr),* $(,)?) => {
                $(if let Some(v) = self.$flag { $field = v; })*
            };
        }
        set!(
            p => c.p, op => c.op, steps => c.steps, batch => c.batch, lr => c.lr,
            warmup => c.warmup, beta1 => c.beta1, beta2 => c.beta2, eps => c.eps,
            width => c.model.width, depth => c.model.depth, seed => c.seed,
            log_every => c.log_every, label_smoothing => c.mitigations.label_smoothing,
            mu_loss => c.mitigations.mu_loss, head_norm => c.model.head_norm,
        );
        c.model.layer_norm |= self.transformer_layer_norm;
        c.model.centered |= self.centered;
        c.model.classifier_bias &= !self.no_classifier_bias;
        c.mitigations.zero_sum |= self.zero_sum;
        c.mitigations.post_step_mean_removal |= self.mean_removal;
        if self.logit_clamp.is_some() {
            c.mitigations.logit_clamp = self.logit_clamp;
        }
        if let Some(lr) = self.switch_to_gd {
            c.mitigations.switch_to_gd = Some(crate::config::GdSwitch {
                lr,
                loss_at_most: self.switch_when_loss_at_most,
            });
        }
        if self.sharpness_every.is_some() {
            c.sharpness_every = self.sharpness_every;
        }
        c
    }

    /// How to run.
    pub fn options(&self) -> RunOptions {
        RunOptions {
            quiet: self.quiet,
            checkpoint_every: (self.checkpoint_every > 0).then_some(self.checkpoint_every),
            resume: self.resume,
            stop_after: None,
            record_updates: None,
        }
    }

    /// `--out`, or `runs/<experiment>`.
    pub fn out_dir(&self, experiment: &str) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(experiment))
    }
}

/// The flags of the image experiments, on top of [`TrainArgs`] (whose `--preset` picks
/// [`TrainConfig::cifar_demo`] or [`TrainConfig::cifar_paper`], see
/// [`crate::image_arms::cifar_preset`]).
#[derive(Debug, Clone, Args)]
pub struct CifarArgs {
    /// Directory of the CIFAR-10 binary distribution (`data_batch_1.bin` .. `data_batch_5.bin`,
    /// `test_batch.bin`). Without it the runs use a seeded synthetic stand-in and every
    /// summary says `dataset: "synthetic"`. Nothing is downloaded.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Training images (a seeded subset; the paper preset: 50,000).
    #[arg(long, value_name = "N")]
    pub train_size: Option<usize>,
    /// Test images (App. D.2: 1,000).
    #[arg(long, value_name = "N")]
    pub test_size: Option<usize>,
    /// Forward and backward at most this many images at a time, accumulating a step's
    /// gradient over its batch (one optimizer step per batch, as without chunks).
    #[arg(long, value_name = "ROWS")]
    pub grad_chunk: Option<usize>,
    /// No chunks: the whole batch in one pass (overrides the preset's `--grad-chunk`).
    #[arg(long, conflicts_with = "grad_chunk")]
    pub no_grad_chunk: bool,
    /// Base width of VGG11 and ResNet18 (the paper: 64).
    #[arg(long)]
    pub channels: Option<usize>,
    /// ViT width (the paper: 256).
    #[arg(long)]
    pub d_model: Option<usize>,
    /// ViT attention heads (the paper: 8).
    #[arg(long)]
    pub heads: Option<usize>,
    /// ViT blocks (the paper: 12).
    #[arg(long)]
    pub layers: Option<usize>,
    /// ViT patch side (the paper: 4; it must divide 32).
    #[arg(long)]
    pub patch: Option<usize>,
}

impl CifarArgs {
    /// The configuration of the arm `precision` of `experiment` on images: `base` (the
    /// preset), then the shared flags, then these.
    pub fn config(
        &self,
        train: &TrainArgs,
        experiment: &str,
        base: TrainConfig,
        precision: Precision,
    ) -> TrainConfig {
        let mut c = train.apply(base, experiment, precision);
        if let Some(images) = c.images.as_mut() {
            images.data_dir.clone_from(&self.data_dir);
            if let Some(n) = self.train_size {
                images.train_size = n;
            }
            if let Some(n) = self.test_size {
                images.test_size = n;
            }
        }
        if self.grad_chunk.is_some() {
            c.grad_chunk = self.grad_chunk;
        }
        if self.no_grad_chunk {
            c.grad_chunk = None;
        }
        macro_rules! set {
            ($($flag:ident => $field:expr),* $(,)?) => {
                $(if let Some(v) = self.$flag { $field = v; })*
            };
        }
        set!(
            channels => c.model.channels, d_model => c.model.d_model, heads => c.model.heads,
            layers => c.model.layers, patch => c.model.patch,
        );
        c
    }
}

/// The arguments of this process without `flag` and its value (`--flag v` or `--flag=v`), to
/// re-run the binary for one arm in a child process.
pub fn args_without(flag: &str) -> Vec<std::ffi::OsString> {
    let mut out = Vec::new();
    let mut skip_next = false;
    let prefix = format!("{flag}=");
    for arg in std::env::args_os().skip(1) {
        if skip_next {
            skip_next = false;
            continue;
        }
        let text = arg.to_string_lossy();
        if text == flag {
            skip_next = true;
        } else if !text.starts_with(&prefix) {
            out.push(arg);
        }
    }
    out
}

/// Runs this binary again with `args` plus `extra` and waits for it: each precision gets its
/// own process (see [`crate::train::run`] on burn's per-process default dtype).
pub fn run_child(
    args: &[std::ffi::OsString],
    extra: &[&str],
) -> Result<(), crate::ExperimentError> {
    let exe = std::env::current_exe().map_err(|e| {
        crate::ExperimentError::InvalidConfig(format!("cannot find this binary to re-run: {e}"))
    })?;
    let status = std::process::Command::new(&exe)
        .args(args)
        .args(extra)
        .status()
        .map_err(|e| {
            crate::ExperimentError::InvalidConfig(format!("cannot run {}: {e}", exe.display()))
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(crate::ExperimentError::InvalidConfig(format!(
            "the child run {:?} failed ({status})",
            extra
        )))
    }
}

/// The outputs of a finished run, read back from its directory.
pub fn read_result(dir: &crate::RunDir) -> Result<crate::RunResult, crate::ExperimentError> {
    let rows = crate::metrics::read_metrics(&dir.metrics())?;
    let path = dir.summary();
    let text = std::fs::read_to_string(&path).map_err(|e| crate::ExperimentError::Write {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let summary = serde_json::from_str(&text).map_err(|e| crate::ExperimentError::Write {
        path,
        reason: e.to_string(),
    })?;
    Ok(crate::RunResult { summary, rows })
}

/// One arm of a multi-arm experiment: its name and the flags that make it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmSpec {
    /// Output subdirectory and legend label.
    pub label: String,
    /// Flags added to the shared ones.
    pub flags: Vec<String>,
}

impl ArmSpec {
    /// An arm from its label and flags.
    pub fn new(label: &str, flags: &[&str]) -> Self {
        Self {
            label: label.into(),
            flags: flags.iter().map(|f| f.to_string()).collect(),
        }
    }
}

/// Runs each arm in its own child process (this binary with the shared flags, the arm's flags,
/// `--arm-label` and `--child`), then reads every arm's outputs from `out/<label>`.
pub fn run_arms(
    arms: &[ArmSpec],
    out: &std::path::Path,
) -> Result<Vec<crate::RunResult>, crate::ExperimentError> {
    let args = args_without("--arms");
    for arm in arms {
        let mut extra: Vec<&str> = arm.flags.iter().map(String::as_str).collect();
        extra.extend(["--arm-label", &arm.label, "--child"]);
        run_child(&args, &extra)?;
    }
    arms.iter()
        .map(|arm| read_result(&crate::RunDir::create(&out.join(&arm.label))?))
        .collect()
}

/// The child side of [`run_arms`] and of per-precision runs: validates, trains the one arm, and
/// draws its own figure into its directory.
pub fn run_single_arm(
    train: &TrainArgs,
    experiment: &str,
    precision: crate::Precision,
) -> Result<crate::RunResult, crate::ExperimentError> {
    train_and_draw(
        &train.config(experiment, precision),
        &train.out_dir(experiment),
        &train.options(),
        &crate::plot::mechanism_panels(),
    )
}

/// Validates `config`, trains it into `out/<arm>`, and draws `panels` of it into that
/// directory's `figure.png`.
pub fn train_and_draw(
    config: &TrainConfig,
    out: &std::path::Path,
    options: &RunOptions,
    panels: &[crate::plot::Panel],
) -> Result<crate::RunResult, crate::ExperimentError> {
    config.validate()?;
    let dir = crate::RunDir::create(&out.join(&config.arm))?;
    let result = crate::run(config, &dir, options)?;
    crate::plot::draw(
        &dir.figure("figure.png"),
        &format!("{}: {} ({})", config.experiment, config.arm, config.backend),
        &[crate::plot::Series {
            label: &config.arm,
            rows: &result.rows,
            spikes: &result.summary.spikes,
        }],
        panels,
        3,
    )?;
    Ok(result)
}

/// Validates every arm's configuration, creates `--out`, then runs each precision in its own
/// child process (this binary with `--arms <precision>`). Returns the configurations, the
/// output root and the results, in the order of `arms`.
pub fn run_precision_arms(
    train: &TrainArgs,
    experiment: &str,
    arms: &[crate::Precision],
) -> Result<
    (
        Vec<crate::TrainConfig>,
        crate::RunDir,
        Vec<crate::RunResult>,
    ),
    crate::ExperimentError,
> {
    // Every flag and the output directory are checked before the first step.
    let configs: Vec<_> = arms.iter().map(|&a| train.config(experiment, a)).collect();
    for c in &configs {
        c.validate()?;
    }
    let out = train.out_dir(experiment);
    let root = crate::RunDir::create(&out)?;
    let specs: Vec<ArmSpec> = configs
        .iter()
        .map(|c| ArmSpec::new(&c.arm, &["--arms", &c.arm]))
        .collect();
    let results = run_arms(&specs, &out)?;
    Ok((configs, root, results))
}

/// One figure line per result, labelled with its arm.
pub fn series(results: &[crate::RunResult]) -> Vec<crate::plot::Series<'_>> {
    results
        .iter()
        .map(|r| crate::plot::Series {
            label: &r.summary.arm,
            rows: &r.rows,
            spikes: &r.summary.spikes,
        })
        .collect()
}

/// The table every multi-arm binary prints.
pub fn print_table(results: &[crate::RunResult]) {
    println!(
        "\n{:<16} {:>7} {:>8} {:>8} {:>11} {:>10} {:>8} {:>8} {:>8}",
        "arm",
        "spikes",
        "first SC",
        "max SC",
        "max |mu_G|",
        "final cos",
        "train",
        "test",
        "steps/s"
    );
    for r in results {
        let s = &r.summary;
        println!(
            "{:<16} {:>7} {:>8} {:>7.1}% {:>11.3e} {:>10.3} {:>7.1}% {:>7.1}% {:>8.1}",
            s.arm,
            s.n_spikes,
            s.first_sc_step.map_or("-".into(), |v| v.to_string()),
            100.0 * s.max_collapsed_fraction,
            s.max_mu_g_norm,
            s.final_cos_wg_mug,
            100.0 * s.final_train_acc,
            100.0 * s.final_test_acc,
            s.steps_per_second
        );
    }
}

/// The process exit code of a binary's result, printing the error to stderr.
pub fn exit_code(result: Result<(), crate::ExperimentError>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
