//! `burn-train-collapse`: a classifier trained by burn-train's `Learner` with slingshot's
//! metrics, warning and optimizer, in four arms: burn's `CrossEntropyLoss` and slingshot's
//! loss, each in f32 and with an f64 loss. burn-train writes its metric logs; this module
//! adds `metrics.csv`, `summary.json` and a figure from them.

pub mod arms;
pub mod model;
pub mod report;
pub mod run;

use serde::{Deserialize, Serialize};
use slingshot::loss::LossPrecision;
use slingshot_experiments::ExperimentError;

/// The experiment's name: the default output directory and each config's `experiment`.
pub const EXPERIMENT: &str = "burn-train-collapse";

/// Which loss an arm trains with, and in which precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LossArm {
    /// burn's `CrossEntropyLoss` on the f32 logits.
    BurnF32,
    /// burn's `CrossEntropyLoss` on the logits cast to f64.
    BurnF64Loss,
    /// slingshot's `CollapseAwareCrossEntropy` in the logits' f32.
    SlingshotF32,
    /// slingshot's loss with `LossPrecision::F64`.
    SlingshotF64Loss,
}

impl LossArm {
    /// Every arm, in the order they run.
    pub const ALL: [LossArm; 4] = [
        LossArm::BurnF32,
        LossArm::BurnF64Loss,
        LossArm::SlingshotF32,
        LossArm::SlingshotF64Loss,
    ];

    /// The arm's directory and legend label.
    pub fn label(self) -> &'static str {
        match self {
            LossArm::BurnF32 => "burn-f32",
            LossArm::BurnF64Loss => "burn-f64-loss",
            LossArm::SlingshotF32 => "slingshot-f32",
            LossArm::SlingshotF64Loss => "slingshot-f64-loss",
        }
    }

    /// The precision the arm's loss computes in, in which collapse is judged.
    pub fn precision(self) -> LossPrecision {
        match self {
            LossArm::BurnF32 | LossArm::SlingshotF32 => LossPrecision::Native,
            LossArm::BurnF64Loss | LossArm::SlingshotF64Loss => LossPrecision::F64,
        }
    }
}

/// The CPU backend the Learner trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum CpuBackend {
    /// burn-flex.
    Flex,
    /// burn-ndarray.
    Ndarray,
}

/// One arm's configuration, as `config.json` records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollapseRunConfig {
    /// Always [`EXPERIMENT`].
    pub experiment: String,
    /// The loss and its precision.
    pub arm: LossArm,
    /// The backend.
    pub backend: CpuBackend,
    /// The modulus of `(a + b) mod p`.
    pub p: usize,
    /// Share of the `p^2` pairs trained on; the rest is the validation set.
    pub train_fraction: f64,
    /// Hidden width of the MLP.
    pub width: usize,
    /// burn-train epochs; a checkpoint ends each.
    pub epochs: usize,
    /// Full-batch steps per epoch.
    pub steps_per_epoch: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Adam's epsilon.
    pub eps: f32,
    /// Seed of the split and the initialization.
    pub seed: u64,
    /// The collapsed fraction at which the warning fires.
    pub warning_threshold: f64,
}

impl CollapseRunConfig {
    /// The demo: addition mod 23 on half the pairs, width 64, Adam at lr 0.07 with eps 1e-8,
    /// 6 epochs of 100 full-batch steps. The f32 arms collapse within 30 steps; the f64-loss
    /// arms do not within 3,000 (docs/results.md, "burn-train").
    pub fn demo(arm: LossArm) -> Self {
        Self {
            experiment: EXPERIMENT.into(),
            arm,
            backend: CpuBackend::Flex,
            p: 23,
            train_fraction: 0.5,
            width: 64,
            epochs: 6,
            steps_per_epoch: 100,
            lr: 0.07,
            eps: 1e-8,
            seed: 0,
            warning_threshold: 0.01,
        }
    }

    /// Checks every value, naming the flag of the first bad one.
    pub fn validate(&self) -> Result<(), ExperimentError> {
        let bad = |flag: &str, expected: &str, value: String| {
            Err(ExperimentError::InvalidConfig(format!(
                "--{flag} must be {expected}, got {value}"
            )))
        };
        if !(2..=2000).contains(&self.p) {
            return bad("p", "in 2..=2000", self.p.to_string());
        }
        let pairs = self.p * self.p;
        if !(self.train_fraction > 0.0 && self.train_fraction < 1.0)
            || (pairs as f64 * self.train_fraction).round() < 1.0
            || (pairs as f64 * self.train_fraction).round() >= pairs as f64
        {
            let what = "in (0, 1), leaving at least one pair on each side";
            return bad("train-fraction", what, self.train_fraction.to_string());
        }
        for (flag, value, most) in [
            ("width", self.width, 65_536),
            ("epochs", self.epochs, 1_000_000),
            ("steps-per-epoch", self.steps_per_epoch, 1_000_000),
        ] {
            if !(1..=most).contains(&value) {
                return bad(flag, &format!("in 1..={most}"), value.to_string());
            }
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", "finite and > 0", self.lr.to_string());
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return bad("eps", "finite and > 0", self.eps.to_string());
        }
        if !(self.warning_threshold > 0.0 && self.warning_threshold <= 1.0) {
            let value = self.warning_threshold.to_string();
            return bad("warning-threshold", "in (0, 1]", value);
        }
        Ok(())
    }

    /// A lower bound of the memory a run needs: the f32 inputs and the activations of a full
    /// batch, and the parameters with Adam's two moments and a gradient.
    pub fn memory_bytes(&self) -> u64 {
        let (p, w) = (self.p as u64, self.width as u64);
        let rows = p.saturating_mul(p);
        let params = (3 * p)
            .saturating_mul(w)
            .saturating_add(w.saturating_mul(w));
        let activations = rows.saturating_mul(4 * p + 2 * w);
        activations
            .saturating_add(params.saturating_mul(4))
            .saturating_mul(4)
    }

    /// Training rows per batch (the whole training set).
    pub fn train_rows(&self) -> usize {
        ((self.p * self.p) as f64 * self.train_fraction).round() as usize
    }
}
