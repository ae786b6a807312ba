//! Configuration of the collapse-aware cross-entropy.

use burn::config::Config;
use burn::tensor::backend::Backend;

use crate::{CollapseAwareCrossEntropy, LossError};

/// The precision the loss (softmax, log, sums) is computed in.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum LossPrecision {
    /// The logits' own dtype: what the framework's loss does.
    Native,
    /// f32, whatever the logits are (bf16 logits are widened, f64 narrowed).
    F32,
    /// f64 for the loss only, the paper's "float64 loss" arm (Fig. 1(a)); the gradient is the
    /// f64 value rounded once to the logits' dtype.
    F64,
    /// bfloat16: native where the backend supports it, else emulated by rounding every
    /// intermediate (ndarray).
    BF16,
    /// IEEE half: native where the backend supports it, else emulated (ndarray).
    F16,
}

/// How logits become probabilities.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum Normalizer {
    /// `exp(z_k) / sum exp(z)`, max-subtracted.
    Softmax,
    /// Prieto et al.'s StableMax: `s(z_k) / sum s(z)`, `s(x) = x + 1` for `x >= 0` and
    /// `1 / (1 - x)` for `x < 0`.
    StableMax,
}

/// How per-row losses are combined.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum Reduction {
    /// Average over rows (PyTorch's default).
    Mean,
    /// Sum over rows.
    Sum,
    /// One loss per row.
    None,
}

/// Configuration of [`CollapseAwareCrossEntropy`]. The defaults are PyTorch's
/// `F.cross_entropy` in the logits' precision, with collapse statistics and input checks on.
#[derive(Config, Debug)]
pub struct CollapseAwareCrossEntropyConfig {
    /// Precision of the loss computation.
    #[config(default = "LossPrecision::Native")]
    pub precision: LossPrecision,
    /// Replace each row's logit gradient `g` by `g - mean_k g_k` (§4.1 "Zero-Sum Projection").
    #[config(default = false)]
    pub zero_sum_projection: bool,
    /// Label smoothing `a` in `[0, 1)`: target `(1 - a) onehot + a / K`, as PyTorch.
    #[config(default = 0.0)]
    pub label_smoothing: f64,
    /// z-loss coefficient: adds `z_loss * lse^2` per row (PaLM); `lse` is `ln sum s(z)` for
    /// StableMax.
    #[config(default = 0.0)]
    pub z_loss: f64,
    /// Softmax or StableMax.
    #[config(default = "Normalizer::Softmax")]
    pub normalizer: Normalizer,
    /// Mean, sum or per-row losses.
    #[config(default = "Reduction::Mean")]
    pub reduction: Reduction,
    /// Compute [`crate::CollapseStats`] in the same pass.
    #[config(default = true)]
    pub stats: bool,
    /// Check targets and logits (one host read per forward). Turn off only in loops whose
    /// inputs are known good: out-of-range targets then give meaningless values, not errors.
    #[config(default = true)]
    pub check_inputs: bool,
}

impl CollapseAwareCrossEntropyConfig {
    /// Checks every value: smoothing in `[0, 1)`, z-loss finite and `>= 0`.
    pub fn validate(&self) -> Result<(), LossError> {
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(LossError::InvalidLabelSmoothing(self.label_smoothing));
        }
        if !(self.z_loss.is_finite() && self.z_loss >= 0.0) {
            return Err(LossError::InvalidZLoss(self.z_loss));
        }
        Ok(())
    }

    /// Builds the loss, or says which value is invalid.
    pub fn try_init<B: Backend>(
        &self,
        device: &B::Device,
    ) -> Result<CollapseAwareCrossEntropy<B>, LossError> {
        self.validate()?;
        Ok(CollapseAwareCrossEntropy::from_config(self, device))
    }

    /// Builds the loss; panics with the [`LossError`] message on an invalid value.
    pub fn init<B: Backend>(&self, device: &B::Device) -> CollapseAwareCrossEntropy<B> {
        self.try_init(device).unwrap_or_else(|e| panic!("{e}"))
    }
}
