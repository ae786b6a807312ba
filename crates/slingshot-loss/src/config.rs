//! Configuration of the collapse-aware cross-entropy.
//!
//! The first three fields are burn's `CrossEntropyLossConfig`'s, with burn's names and types, so
//! that moving from burn's loss is a one-line change.

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
    /// f64 value rounded once to the logits' dtype. Needs a device with f64: ndarray, flex,
    /// candle and CUDA have it, WGSL (burn-wgpu's default compiler) does not.
    F64,
    /// bfloat16: native where the backend supports it, else emulated by rounding every
    /// intermediate (ndarray).
    BF16,
    /// IEEE half: native where the backend supports it, else emulated (ndarray).
    F16,
    /// OCP FP8 E4M3 ("E4M3FN": 3 mantissa bits, largest finite 448, no infinities), always
    /// emulated in f32 storage: no burn backend computes in it. A logit above 448 in
    /// magnitude, or any other overflow, is NaN, as in the format.
    E4M3,
    /// OCP FP8 E5M2 (2 mantissa bits, largest finite 57344, IEEE infinities), always
    /// emulated in f32 storage.
    E5M2,
}

impl LossPrecision {
    /// The format the loss rounds to when it is not the logits' own dtype (`None` for
    /// [`LossPrecision::Native`]).
    pub fn format(self) -> Option<slingshot_numerics::FloatFormat> {
        use slingshot_numerics::FloatFormat;
        match self {
            LossPrecision::Native => None,
            LossPrecision::F32 => Some(FloatFormat::F32),
            LossPrecision::F64 => Some(FloatFormat::F64),
            LossPrecision::BF16 => Some(FloatFormat::BF16),
            LossPrecision::F16 => Some(FloatFormat::F16),
            LossPrecision::E4M3 => Some(FloatFormat::E4M3),
            LossPrecision::E5M2 => Some(FloatFormat::E5M2),
        }
    }
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

/// How per-row losses are combined. (Named apart from `burn::nn::loss::Reduction`, which has
/// no per-row variant, so that both can be imported.)
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum LossReduction {
    /// Average over rows (PyTorch's and burn's default). With class `weights`, the weighted
    /// mean `sum_i w_i l_i / sum_i w_i`.
    Mean,
    /// Sum over rows.
    Sum,
    /// One loss per row.
    None,
}

/// Configuration of [`CollapseAwareCrossEntropy`]. The defaults are burn's `CrossEntropyLoss`
/// (and PyTorch's `F.cross_entropy`) in the logits' precision, with no input checks (so no
/// device-to-host read per forward).
#[derive(Config, Debug)]
pub struct CollapseAwareCrossEntropyConfig {
    /// Targets equal to one of these tokens contribute zero loss and zero gradient. As in burn's
    /// loss, the mean still divides by every row (or every row's weight), padded ones included.
    pub pad_tokens: Option<Vec<usize>>,
    /// One positive weight per class: row `i` counts `weights[target_i]` times, and the mean
    /// divides by the sum of those weights (burn's and PyTorch's weighted mean).
    pub weights: Option<Vec<f32>>,
    /// Label smoothing `alpha` in `[0, 1]`: target `(1 - alpha) onehot + alpha / K`, as burn and
    /// PyTorch.
    pub smoothing: Option<f32>,
    /// Precision of the loss computation.
    #[config(default = "LossPrecision::Native")]
    pub precision: LossPrecision,
    /// Replace each row's logit gradient `g` by `g - mean_k g_k` (§4.1 "Zero-Sum Projection").
    #[config(default = false)]
    pub zero_sum_projection: bool,
    /// z-loss coefficient: adds `z_loss * lse^2` per row (PaLM); `lse` is `ln sum s(z)` for
    /// StableMax.
    #[config(default = 0.0)]
    pub z_loss: f64,
    /// Softmax or StableMax.
    #[config(default = "Normalizer::Softmax")]
    pub normalizer: Normalizer,
    /// Mean, sum or per-row losses.
    #[config(default = "LossReduction::Mean")]
    pub reduction: LossReduction,
    /// Check targets and logits on every forward, returning [`LossError`] on bad input. Off by
    /// default: the check reads back from the device, a stall on every GPU step. The host
    /// kernels (ndarray, flex) range-check the targets they read anyway, checks on or off.
    #[config(default = false)]
    pub check_inputs: bool,
}

impl CollapseAwareCrossEntropyConfig {
    /// Checks every value: smoothing in `[0, 1]`, weights finite and `> 0`, z-loss finite and
    /// `>= 0` and not combined with weights or pad tokens.
    pub fn validate(&self) -> Result<(), LossError> {
        if let Some(alpha) = self.smoothing
            && !(0.0..=1.0).contains(&alpha)
        {
            return Err(LossError::InvalidLabelSmoothing(f64::from(alpha)));
        }
        if let Some(weights) = &self.weights
            && let Some((class, &w)) = weights
                .iter()
                .enumerate()
                .find(|&(_, &w)| !(w.is_finite() && w > 0.0))
        {
            return Err(LossError::InvalidWeight { class, weight: w });
        }
        if !(self.z_loss.is_finite() && self.z_loss >= 0.0) {
            return Err(LossError::InvalidZLoss(self.z_loss));
        }
        // Neither burn nor PyTorch defines a weighted or padded z-loss: refuse rather than guess.
        if self.z_loss > 0.0 && (self.weights.is_some() || self.pad_tokens.is_some()) {
            return Err(LossError::IncompatibleOptions(
                "z_loss cannot be combined with class weights or pad tokens; use one or the other",
            ));
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
    #[track_caller]
    pub fn init<B: Backend>(&self, device: &B::Device) -> CollapseAwareCrossEntropy<B> {
        match self.try_init(device) {
            Ok(loss) => loss,
            Err(e) => panic!("{e}"),
        }
    }
}
