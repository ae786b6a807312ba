//! The configuration of one training run, as written to `config.json` and checked on resume.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use slingshot_optim::SpikeDetectorConfig;

use crate::ExperimentError;
use crate::data::Operation;
use crate::model::ModelConfig;

/// The numeric precision of a run (Fig. 1(a)'s three arms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Precision {
    /// Model and loss in f32.
    #[serde(rename = "f32")]
    #[value(name = "f32")]
    F32,
    /// Model and loss in f64.
    #[serde(rename = "f64")]
    #[value(name = "f64")]
    F64,
    /// Model in f32, the loss upcast to f64.
    #[serde(rename = "f64-loss")]
    #[value(name = "f64-loss")]
    F64Loss,
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::F64 => "f64",
            Precision::F64Loss => "f64-loss",
        })
    }
}

/// Where the run computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// burn-ndarray on the CPU.
    Ndarray,
    /// burn-cuda (needs the `cuda` feature and a GPU).
    Cuda,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Ndarray => "ndarray",
            BackendKind::Cuda => "cuda",
        })
    }
}

/// Rows per optimizer step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchSize {
    /// The whole training split every step.
    Full,
    /// A fixed number of rows, sampled without replacement each step.
    Rows(usize),
}

impl FromStr for BatchSize {
    type Err = String;

    /// `full` or a positive number of rows.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "full" => Ok(Self::Full),
            n => match n.parse::<usize>() {
                Ok(rows) if rows > 0 => Ok(Self::Rows(rows)),
                _ => Err(format!(
                    "batch {n:?}: expected `full` or a positive number of rows"
                )),
            },
        }
    }
}

impl fmt::Display for BatchSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchSize::Full => f.write_str("full"),
            BatchSize::Rows(n) => write!(f, "{n}"),
        }
    }
}

/// The mitigations of §4 and App. A, each off by default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Mitigations {
    /// Project each row's logit gradient to zero sum (§4.1).
    pub zero_sum: bool,
    /// Label smoothing of the loss (Fig. 4(b)).
    pub label_smoothing: f64,
    /// Subtract the classifier's mean row after every optimizer step (mu-centering).
    pub post_step_mean_removal: bool,
    /// Weight of the mu-loss `gamma ||W_G||^2`.
    pub mu_loss: f64,
    /// Clamp each row's logits to at least `max - margin` (App. A.1.4 uses 100), so that no
    /// probability underflows.
    #[serde(default)]
    pub logit_clamp: Option<f64>,
    /// Switch from Adam to plain gradient descent once the loss is small enough (§4.2).
    #[serde(default)]
    pub switch_to_gd: Option<GdSwitch>,
}

/// §4.2's switch from Adam to gradient descent at a huge learning rate, emulating Adam's
/// effective-LR ceiling `lr / eps`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GdSwitch {
    /// Gradient descent's learning rate (the paper: 1e5).
    pub lr: f64,
    /// Switch after the first logged step whose training loss is at most this (the paper: 0,
    /// i.e. exactly zero). Checked on logged steps only, where the loss is read anyway.
    pub loss_at_most: f64,
}

/// Everything that determines a run's numbers. Two runs with equal configs give identical
/// metrics on ndarray.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The experiment (binary) this run belongs to.
    pub experiment: String,
    /// The arm within the experiment.
    pub arm: String,
    /// Modulus.
    pub p: usize,
    /// Operation.
    pub op: Operation,
    /// Share of the pairs used for training.
    pub train_fraction: f64,
    /// Seed of the split, the initialization and the batches.
    pub seed: u64,
    /// The network.
    pub model: ModelConfig,
    /// Optimizer steps.
    pub steps: u64,
    /// Rows per step.
    pub batch: BatchSize,
    /// Adam's learning rate after warm-up.
    pub lr: f64,
    /// Linear warm-up steps.
    pub warmup: u64,
    /// Adam's beta1.
    pub beta1: f64,
    /// Adam's beta2.
    pub beta2: f64,
    /// Adam's epsilon.
    pub eps: f64,
    /// Model and loss precision.
    pub precision: Precision,
    /// Backend.
    pub backend: BackendKind,
    /// Log (and evaluate) every this many steps.
    pub log_every: u64,
    /// Mitigations.
    pub mitigations: Mitigations,
    /// Loss-spike detection.
    pub spikes: SpikeDetectorConfig,
    /// Estimate the largest Hessian eigenvalue of the training loss every this many steps
    /// (a multiple of `log_every`; Fig. 5).
    #[serde(default)]
    pub sharpness_every: Option<u64>,
}

impl TrainConfig {
    /// App. D Table 2: the 6-layer MLP on division mod 97, Adam lr 1e-3 with 10 warm-up steps,
    /// betas 0.9/0.999, eps 1e-8, batch 512, 100k steps.
    pub fn paper() -> Self {
        Self {
            experiment: "modular-division".into(),
            arm: "f32".into(),
            p: 97,
            op: Operation::Div,
            train_fraction: 0.5,
            seed: 0,
            model: ModelConfig::paper_mlp(),
            steps: 100_000,
            batch: BatchSize::Rows(512),
            lr: 1e-3,
            warmup: 10,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            precision: Precision::F32,
            backend: BackendKind::Ndarray,
            log_every: 100,
            mitigations: Mitigations::default(),
            spikes: SpikeDetectorConfig::default(),
            sharpness_every: None,
        }
    }

    /// The CPU demo (the README's main command): the paper's task and Adam settings, except a
    /// modulus of 23, an MLP of width 128 with 2 hidden layers, full batch, and lr 1e-2, which
    /// brings collapse, feature inflation and a spike within 12,000 steps (about 25 s per f32
    /// arm on two cores).
    pub fn demo() -> Self {
        let mut c = Self::paper();
        c.p = 23;
        c.model.width = 128;
        c.model.depth = 2;
        c.batch = BatchSize::Full;
        c.lr = 1e-2;
        c.steps = 12_000;
        c.log_every = 10;
        c
    }

    /// Checks every value that can be wrong before any training.
    pub fn validate(&self) -> Result<(), ExperimentError> {
        let bad = |what: String| Err(ExperimentError::InvalidConfig(what));
        self.model.validate()?;
        self.spikes.validate()?;
        if self.steps == 0 {
            return bad("steps must be at least 1".into());
        }
        if self.log_every == 0 {
            return bad("log-every must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("learning rate {}: must be finite and > 0", self.lr));
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return bad(format!("eps {}: must be finite and > 0", self.eps));
        }
        for (name, beta) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return bad(format!("{name} {beta}: must be in [0, 1)"));
            }
        }
        let m = &self.mitigations;
        if !(0.0..1.0).contains(&m.label_smoothing) {
            return bad(format!(
                "label smoothing {}: must be in [0, 1)",
                m.label_smoothing
            ));
        }
        if !(m.mu_loss.is_finite() && m.mu_loss >= 0.0) {
            return bad(format!(
                "mu-loss weight {}: must be finite and >= 0",
                m.mu_loss
            ));
        }
        if let Some(margin) = m.logit_clamp
            && !(margin.is_finite() && margin > 0.0)
        {
            return bad(format!(
                "logit clamp margin {margin}: must be finite and > 0"
            ));
        }
        if let Some(gd) = m.switch_to_gd {
            if !(gd.lr.is_finite() && gd.lr > 0.0) {
                return bad(format!(
                    "gradient-descent learning rate {}: must be finite and > 0",
                    gd.lr
                ));
            }
            if !(gd.loss_at_most.is_finite() && gd.loss_at_most >= 0.0) {
                return bad(format!(
                    "switch loss {}: must be finite and >= 0",
                    gd.loss_at_most
                ));
            }
        }
        if self.sharpness_every.is_some()
            && self.model.head_norm == slingshot_nn::HeadNorm::BatchNorm
        {
            // The finite-difference passes would move BatchNorm's running statistics.
            return bad("sharpness measurement does not support a BatchNorm head".into());
        }
        if let Some(every) = self.sharpness_every
            && (every == 0 || !every.is_multiple_of(self.log_every))
        {
            return bad(format!(
                "sharpness-every {every}: must be a positive multiple of log-every ({})",
                self.log_every
            ));
        }
        if self.backend == BackendKind::Cuda && !cfg!(feature = "cuda") {
            return bad("--backend cuda needs a build with `--features cuda`".into());
        }
        Ok(())
    }
}
