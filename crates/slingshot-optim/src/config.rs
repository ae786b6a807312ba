//! Configuration of [`ProbedAdam`].

use burn::config::Config;
use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;

use crate::adam_rule::AdamRule;
use crate::histogram::LogBins;
use crate::{OptimError, ProbedAdam};

/// Configuration of [`ProbedAdam`]: burn's `AdamConfig` without AMSGrad or gradient
/// clipping, plus decoupled weight decay (burn's `AdamW`, off by default) and the probe. The learning rate is not here: like burn's optimizers,
/// [`ProbedAdam`] takes it at every step.
///
/// The defaults are burn's, including `epsilon = 1e-5`; PyTorch and the paper's examples use
/// `1e-8` (`.with_epsilon(1e-8)`), whose effective-LR ceiling `lr / eps` is 1000 times higher.
/// The constants are f32, as in burn, so that the arithmetic is burn's to the bit.
#[derive(Config, Debug)]
pub struct ProbedAdamConfig {
    /// First-moment decay.
    #[config(default = 0.9)]
    pub beta_1: f32,
    /// Second-moment decay.
    #[config(default = 0.999)]
    pub beta_2: f32,
    /// Denominator epsilon (burn's default; PyTorch's is 1e-8).
    #[config(default = 1e-5)]
    pub epsilon: f32,
    /// Decoupled weight decay (AdamW, Loshchilov & Hutter): every step first scales the
    /// parameters by `1 - lr * weight_decay`, as burn's `AdamW`. 0 (the default) is Adam. The
    /// probe's update statistics are Adam's part alone.
    #[config(default = 0.0)]
    pub weight_decay: f32,
    /// Keep the probe's values each step. Off, a step is exactly burn's Adam step.
    #[config(default = true)]
    pub probe: bool,
    /// Lower edge of the update-magnitude histogram.
    #[config(default = 1e-12)]
    pub histogram_min: f64,
    /// Upper edge of the update-magnitude histogram.
    #[config(default = 1.0)]
    pub histogram_max: f64,
    /// Bins between the edges, equally spaced in `log10` (the default: one per decade).
    #[config(default = 12)]
    pub histogram_bins: usize,
}

impl ProbedAdamConfig {
    /// Checks every value: `epsilon` finite and `> 0`, betas in `[0, 1)`, histogram edges
    /// `0 < min < max` and at least one bin.
    pub fn validate(&self) -> Result<(), OptimError> {
        self.parts().map(|_| ())
    }

    fn parts(&self) -> Result<(AdamRule, LogBins), OptimError> {
        let bad = |name, value: f32, expected| {
            Err(OptimError::InvalidConfig {
                name,
                value: value as f64,
                expected,
            })
        };
        if !(0.0..1.0).contains(&self.beta_1) {
            return bad("beta_1", self.beta_1, "a value in [0, 1)");
        }
        if !(0.0..1.0).contains(&self.beta_2) {
            return bad("beta_2", self.beta_2, "a value in [0, 1)");
        }
        if !(self.epsilon.is_finite() && self.epsilon > 0.0) {
            return bad("epsilon", self.epsilon, "a finite value > 0");
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad("weight_decay", self.weight_decay, "a finite value >= 0");
        }
        let bins = LogBins::try_new(self.histogram_min, self.histogram_max, self.histogram_bins)?;
        let rule = AdamRule {
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon,
            weight_decay: self.weight_decay,
        };
        Ok((rule, bins))
    }

    /// The optimizer, or which value is invalid.
    pub fn try_init<B: AutodiffBackend, M: AutodiffModule<B>>(
        &self,
    ) -> Result<ProbedAdam<M, B>, OptimError> {
        let (rule, bins) = self.parts()?;
        Ok(ProbedAdam::new(rule, bins, self.probe))
    }

    /// The optimizer.
    ///
    /// # Panics
    /// On an invalid value, with [`OptimError`]'s message; [`Self::try_init`] returns it.
    #[track_caller]
    pub fn init<B: AutodiffBackend, M: AutodiffModule<B>>(&self) -> ProbedAdam<M, B> {
        // A `match`, not `unwrap_or_else`: a closure's panic would name this line, not
        // the caller's.
        match self.try_init() {
            Ok(value) => value,
            Err(e) => panic!("{e}"),
        }
    }
}
