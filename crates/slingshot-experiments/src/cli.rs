//! Flags shared by the experiment binaries, turned into [`TrainConfig`]s.

use std::path::{Path, PathBuf};

use clap::{Args, Parser};
use slingshot_nn::HeadNorm;

use crate::config::{BackendKind, BatchSize, Precision, TrainConfig};
use crate::data::Operation;
use crate::error::ExperimentError;
use crate::mitigation::{
    GdSwitch, LabelSmoothing, LogitClamp, MeanRemoval, Mitigation, Mitigations, MuLoss, SwitchToGd,
    ZeroSum,
};
use crate::model::{ModelKind, NetworkConfig, ResNetConfig, VggConfig};
use crate::output::RunDir;
use crate::plot::Panel;
use crate::run::{Arm, ArmTask, RunOptions, run_arms};
use crate::train::RunResult;

/// Which starting configuration the flags modify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// The CPU demo: a smaller task and model that show the mechanism in minutes on two cores
    /// (see the README for how it differs from the paper).
    Demo,
    /// App. D Table 2 exactly: division mod 97, the 6-layer MLP of width 512, Adam lr 1e-3,
    /// 10 warm-up steps, betas 0.9/0.999, eps 1e-8, batch 512, 100k steps.
    Paper,
    /// Addition mod 113 with a 2-layer MLP of width 200 and no classifier bias, full batch,
    /// Adam lr 5e-4, beta2 0.99, eps 1e-25, 8,000 steps: collapse in f32 and in the f64
    /// loss, spikes below the old detector floor, and zero-sum projection generalizing
    /// (issue 17, §5 and §6). Modular task only.
    #[value(name = "add-mod-113")]
    AddMod113,
    /// Fig. 2(c) on the CPU: the demo with 80% of the pairs for training and 60,000 steps;
    /// test accuracy steps up at the f32 spikes (issue 17 §1). Modular task only.
    Grokking,
}

impl Preset {
    /// The preset's name on the command line (`--preset NAME`).
    pub fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self)
            .map_or_else(String::new, |v| v.get_name().to_string())
    }

    /// Whether only the modular task takes this preset (the image binaries refuse it).
    pub fn modular_only(self) -> bool {
        matches!(self, Preset::AddMod113 | Preset::Grokking)
    }
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
    #[arg(long, allow_hyphen_values = true)]
    pub p: Option<usize>,
    /// Operation: add, sub, mul or div.
    #[arg(long)]
    pub op: Option<Operation>,
    /// Fraction of the pairs in the training split (Prieto et al. use 0.4 to 0.7; the
    /// presets 0.5).
    #[arg(long, allow_hyphen_values = true)]
    pub train_fraction: Option<f64>,
    /// Optimizer steps.
    #[arg(long, allow_hyphen_values = true)]
    pub steps: Option<u64>,
    /// Rows per step: `full` or a number.
    #[arg(long)]
    pub batch: Option<BatchSize>,
    /// Adam's learning rate.
    #[arg(long, allow_hyphen_values = true)]
    pub lr: Option<f64>,
    /// Linear warm-up steps.
    #[arg(long, allow_hyphen_values = true)]
    pub warmup: Option<u64>,
    /// Adam's beta1.
    #[arg(long, allow_hyphen_values = true)]
    pub beta1: Option<f64>,
    /// Adam's beta2.
    #[arg(long, allow_hyphen_values = true)]
    pub beta2: Option<f64>,
    /// Adam's epsilon.
    #[arg(long, allow_hyphen_values = true)]
    pub eps: Option<f64>,
    /// Decoupled weight decay (AdamW; 0: Adam, the presets' value).
    #[arg(long, allow_hyphen_values = true)]
    pub weight_decay: Option<f64>,
    /// MLP hidden width.
    #[arg(long, allow_hyphen_values = true)]
    pub width: Option<usize>,
    /// MLP hidden layers.
    #[arg(long, allow_hyphen_values = true)]
    pub depth: Option<usize>,
    /// LayerNorm in the transformer blocks.
    #[arg(long)]
    pub transformer_layer_norm: bool,
    /// Seed of the split, the initialization and the batches.
    #[arg(long, allow_hyphen_values = true)]
    pub seed: Option<u64>,
    /// Backend.
    // `BackendKind::CPU_DEFAULT`.
    #[arg(long, value_enum, default_value = "flex")]
    pub backend: BackendKind,
    /// Log and evaluate every this many steps.
    #[arg(long, allow_hyphen_values = true)]
    pub log_every: Option<u64>,
    /// Where and how the run goes: `--out`, `--resume`, `--overwrite`, checkpoints, progress.
    #[command(flatten)]
    pub run: RunFlags,
    /// Zero-sum projection of the logit gradient (§4.1).
    #[arg(long)]
    pub zero_sum: bool,
    /// Label smoothing.
    #[arg(long, allow_hyphen_values = true)]
    pub label_smoothing: Option<f64>,
    /// Subtract the classifier's mean row after every step.
    #[arg(long)]
    pub mean_removal: bool,
    /// Weight of the mu-loss `gamma ||W_G||^2`.
    #[arg(long, allow_hyphen_values = true)]
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
    #[arg(long, value_name = "MARGIN", allow_hyphen_values = true)]
    pub logit_clamp: Option<f64>,
    /// Switch from Adam to gradient descent at this learning rate once the loss is at most
    /// `--switch-when-loss-at-most` (§4.2 uses 1e5).
    #[arg(long, value_name = "LR", allow_hyphen_values = true)]
    pub switch_to_gd: Option<f64>,
    /// The training loss at or below which `--switch-to-gd` switches (checked on logged
    /// steps; 0 means exactly zero, as in the paper).
    #[arg(
        long,
        value_name = "LOSS",
        default_value_t = 0.0,
        allow_hyphen_values = true,
        requires = "switch_to_gd"
    )]
    pub switch_when_loss_at_most: f64,
    /// Any registered mitigation, as `KEY` or `KEY=VALUE` (repeatable; e.g. `stablemax`,
    /// `orthograd`; see `slingshot_experiments::mitigation`).
    #[arg(long, value_name = "KEY[=VALUE]", value_parser = Mitigation::from_flag)]
    pub mitigation: Vec<Mitigation>,
    /// Estimate the largest Hessian eigenvalue every this many steps (a multiple of
    /// `--log-every`; Fig. 5).
    #[arg(long, value_name = "STEPS")]
    pub sharpness_every: Option<u64>,
    /// Model and loss precision: `f32`, `f64-loss` (the loss upcast to f64) or `f64`.
    #[arg(long, value_enum)]
    pub precision: Option<Precision>,
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
    /// The configuration of the arm `arm` of `experiment`.
    pub fn config(&self, experiment: &str, arm: &str) -> TrainConfig {
        let base = match self.preset {
            Preset::Paper => TrainConfig::paper(),
            Preset::Demo => TrainConfig::demo(),
            Preset::AddMod113 => TrainConfig::add_mod_113(),
            Preset::Grokking => TrainConfig::grokking(),
        };
        self.apply(base, experiment, arm)
    }

    /// `base` with these flags set on it, as the arm `arm` of `experiment`.
    pub fn apply(&self, base: TrainConfig, experiment: &str, arm: &str) -> TrainConfig {
        let mut c = base;
        c.experiment = experiment.into();
        c.arm = arm.into();
        c.precision = self.precision.unwrap_or(Precision::F32);
        // Loss jumps are judged against the resolution of the format the loss computes in.
        c.spikes.loss_resolution = c.precision.loss_format().epsilon();
        c.backend = self.backend;
        // Another network starts from its paper sizes; the same one keeps the preset's.
        if let Some(kind) = self.model
            && kind != c.model.kind()
        {
            c.model.network = NetworkConfig::paper(kind);
        }
        macro_rules! set {
            ($($flag:ident => $field:expr),* $(,)?) => {
                $(if let Some(v) = self.$flag { $field = v; })*
            };
        }
        set!(
            steps => c.steps, batch => c.batch, lr => c.lr,
            warmup => c.warmup, beta1 => c.beta1, beta2 => c.beta2, eps => c.eps,
            weight_decay => c.weight_decay,
            seed => c.seed, log_every => c.log_every, head_norm => c.model.head.head_norm,
        );
        if let Some(task) = c.modular_mut() {
            set!(p => task.p, op => task.op, train_fraction => task.train_fraction);
        }
        // Each size flag sets its network's size and leaves the other networks alone.
        match &mut c.model.network {
            NetworkConfig::Mlp(m) => {
                set!(width => m.width, depth => m.depth);
            }
            NetworkConfig::Transformer(t) => t.layer_norm |= self.transformer_layer_norm,
            _ => {}
        }
        c.model.head.centered |= self.centered;
        c.model.head.classifier_bias &= !self.no_classifier_bias;
        self.apply_mitigations(&mut c.mitigations);
        if self.sharpness_every.is_some() {
            c.sharpness_every = self.sharpness_every;
        }
        c
    }

    /// The mitigation flags set on `m`: the named ones, then every `--mitigation`.
    fn apply_mitigations(&self, m: &mut Mitigations) {
        if self.zero_sum {
            m.set(ZeroSum);
        }
        if self.mean_removal {
            m.set(MeanRemoval);
        }
        // A zero amount or weight is "off" (`Mitigations::set` removes it).
        if let Some(amount) = self.label_smoothing {
            m.set(LabelSmoothing { amount });
        }
        if let Some(weight) = self.mu_loss {
            m.set(MuLoss { weight });
        }
        if let Some(margin) = self.logit_clamp {
            m.set(LogitClamp { margin });
        }
        if let Some(lr) = self.switch_to_gd {
            m.set(SwitchToGd(GdSwitch {
                lr,
                loss_at_most: self.switch_when_loss_at_most,
            }));
        }
        for extra in &self.mitigation {
            m.set(extra.clone());
        }
    }

    /// How to run (a checkpoint every 1,000 steps unless `--checkpoint-every` says otherwise).
    pub fn options(&self) -> RunOptions {
        self.run.options(1000)
    }

    /// `--out`, or `runs/<experiment>`.
    pub fn out_dir(&self, experiment: &str) -> PathBuf {
        self.run.out_dir(experiment)
    }
}

/// The flags of how a run goes, the same for every task (not part of its numbers).
#[derive(Debug, Clone, Default, Args)]
pub struct RunFlags {
    /// Write a checkpoint every this many steps (0: never; default: the task's).
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// Continue each arm from its checkpoint in `--out` (the flags must match the first run).
    #[arg(long)]
    pub resume: bool,
    /// Replace the run already in `--out` (without it, a used `--out` is refused).
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// No progress bar (it is also off when stdout is not a terminal).
    #[arg(long)]
    pub quiet: bool,
    /// Output directory (default: `runs/<experiment>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl RunFlags {
    /// The run options, with a checkpoint every `default_every` steps unless the flag says.
    pub fn options(&self, default_every: u64) -> RunOptions {
        let every = self.checkpoint_every.unwrap_or(default_every);
        RunOptions {
            quiet: self.quiet,
            checkpoint_every: (every > 0).then_some(every),
            resume: self.resume,
            overwrite: self.overwrite,
            ..RunOptions::default()
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
    /// The configuration of the arm `arm` of `experiment` on images: `base` (the preset), then
    /// the shared flags, then these.
    pub fn config(
        &self,
        train: &TrainArgs,
        experiment: &str,
        base: TrainConfig,
        arm: &str,
    ) -> TrainConfig {
        let mut c = train.apply(base, experiment, arm);
        if let Some(images) = c.images_mut() {
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
        match &mut c.model.network {
            NetworkConfig::Vgg11(VggConfig { channels, .. })
            | NetworkConfig::Resnet18(ResNetConfig { channels }) => {
                set!(channels => *channels);
            }
            NetworkConfig::Vit(v) => {
                set!(d_model => v.d_model, heads => v.heads, layers => v.layers, patch => v.patch);
            }
            _ => {}
        }
        c
    }
}

/// The outputs of a finished run, read back from its directory.
pub fn read_result(dir: &RunDir) -> Result<RunResult, ExperimentError> {
    let (rows, summary) = crate::run::csv_log::read_outputs(dir)?;
    Ok(RunResult { summary, rows })
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

/// `--only` and `--list`: the same in every multi-arm binary.
#[derive(Debug, Clone, Default, Args)]
pub struct ArmSelection {
    /// Only these arms, comma-separated (`--list` shows them; `--arms` is the same flag).
    #[arg(long, visible_alias = "arms", value_delimiter = ',')]
    pub only: Vec<String>,
    /// Print the arms and their flags, then exit.
    #[arg(long)]
    pub list: bool,
}

impl ArmSelection {
    /// The arms to run, in the experiment's order: those `--only` names, or without it those
    /// in `default` (every arm when `None`). An unknown label is refused.
    pub fn select(
        &self,
        all: &[ArmSpec],
        default: Option<&[&str]>,
    ) -> Result<Vec<ArmSpec>, ExperimentError> {
        if let Some(unknown) = self
            .only
            .iter()
            .find(|l| !all.iter().any(|a| &a.label == *l))
        {
            let labels: Vec<&str> = all.iter().map(|a| a.label.as_str()).collect();
            return Err(ExperimentError::InvalidConfig(format!(
                "unknown arm {unknown:?}; the arms are {}",
                labels.join(", ")
            )));
        }
        let chosen = |a: &&ArmSpec| match (self.only.is_empty(), default) {
            (false, _) => self.only.contains(&a.label),
            (true, Some(labels)) => labels.contains(&a.label.as_str()),
            (true, None) => true,
        };
        Ok(all.iter().filter(chosen).cloned().collect())
    }

    /// With `--list`, prints every arm and its flags and returns true.
    pub fn print_list(&self, all: &[ArmSpec]) -> bool {
        if self.list {
            for a in all {
                println!("{:<20} {}", a.label, a.flags.join(" "));
            }
        }
        self.list
    }
}

/// The modular and image task as an arm of a multi-arm binary.
#[derive(Debug, Clone, Copy)]
pub struct TrainArm;

impl ArmTask for TrainArm {
    type Config = TrainConfig;
    type Output = RunResult;

    fn validate(config: &TrainConfig) -> Result<(), ExperimentError> {
        config.validate()
    }

    fn run(
        config: &TrainConfig,
        dir: &RunDir,
        options: &RunOptions,
    ) -> Result<RunResult, ExperimentError> {
        crate::run(config, dir, options)
    }

    fn read(dir: &RunDir) -> Result<RunResult, ExperimentError> {
        read_result(dir)
    }
}

/// Each arm's configuration: this process's flags and then the arm's, parsed as the binary's
/// command line `C`, turned into a configuration by `make` (given the arm's label).
pub fn arm_configs<C: Parser, T>(
    binary: &str,
    arms: &[ArmSpec],
    make: impl Fn(&C, &str) -> T,
) -> Result<Vec<Arm<T>>, ExperimentError> {
    let shared: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    arms.iter()
        .map(|arm| {
            let line = std::iter::once(binary.into())
                .chain(shared.iter().cloned())
                .chain(arm.flags.iter().map(Into::into));
            let parsed = C::try_parse_from(line).map_err(|e| {
                let text = e.render().to_string();
                let first = text
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("error: ");
                ExperimentError::InvalidConfig(format!("arm {}: {first}", arm.label))
            })?;
            Ok(Arm {
                label: arm.label.clone(),
                config: make(&parsed, &arm.label),
            })
        })
        .collect()
}

/// Runs every arm (each in its own process, see [`crate::run::arms`]) into `out/<label>`,
/// and draws each arm's `figure.png` with `panels`.
pub fn run_train_arms(
    out: &Path,
    arms: &[Arm<TrainConfig>],
    options: &RunOptions,
    panels: &[Panel],
) -> Result<(RunDir, Vec<RunResult>), ExperimentError> {
    let (root, results) = run_arms::<TrainArm>(out, arms, options)?;
    for (arm, result) in arms.iter().zip(&results) {
        let c = &arm.config;
        crate::plot::draw_panels(
            &out.join(&arm.label).join("figure.png"),
            &format!("{}: {} ({})", c.experiment, c.arm, c.backend),
            3,
            &crate::plot::metric_panels(panels, &series(std::slice::from_ref(result))),
        )?;
    }
    Ok((root, results))
}

/// What [`run_selected_arms`] ran: the arms' configurations, the root directory and each
/// arm's result, in the same order.
pub struct TrainedArms {
    /// The arms run.
    pub arms: Vec<Arm<TrainConfig>>,
    /// The directory holding one directory per arm.
    pub root: RunDir,
    /// Each arm's rows and summary.
    pub results: Vec<RunResult>,
}

/// The preamble every modular multi-arm binary shares: `--list` prints the arms (then
/// `None`); otherwise the arms `--only` names among `all` (`default` without it) are parsed
/// over the shared flags as the binary's own `C`, run into `--out`, and each gets its
/// mechanism figure.
pub fn run_selected_arms<C: Parser>(
    experiment: &str,
    cli: &C,
    train: fn(&C) -> &TrainArgs,
    selection: &ArmSelection,
    all: &[ArmSpec],
    default: Option<&[&str]>,
) -> Result<Option<TrainedArms>, ExperimentError> {
    if selection.print_list(all) {
        return Ok(None);
    }
    let selected = selection.select(all, default)?;
    let arms = arm_configs::<C, TrainConfig>(experiment, &selected, |c, label| {
        train(c).config(experiment, label)
    })?;
    let args = train(cli);
    let panels = crate::plot::mechanism_panels();
    let (root, results) =
        run_train_arms(&args.out_dir(experiment), &arms, &args.options(), &panels)?;
    Ok(Some(TrainedArms {
        arms,
        root,
        results,
    }))
}

/// One figure line per result, labelled with its arm.
pub fn series(results: &[RunResult]) -> Vec<crate::plot::Series<'_>> {
    results
        .iter()
        .map(|r| crate::plot::Series {
            label: &r.summary.arm,
            rows: &r.rows,
            spikes: &r.summary.spikes,
            nfi_events: &r.summary.nfi_events,
        })
        .collect()
}

/// The table every multi-arm binary prints.
pub fn print_table(results: &[RunResult]) {
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

pub use crate::error::exit_code;
