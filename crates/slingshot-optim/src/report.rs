//! What a read of the probe returns: plain host values per parameter and for the model.

use burn::module::ParamId;

use crate::stats::{EffectiveLrStats, UpdateStats};

/// The probe of one parameter tensor, read back.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamProbe {
    /// The parameter.
    pub id: ParamId,
    /// Its dimensions.
    pub shape: Vec<usize>,
    /// Adam's step count `t` for this tensor.
    pub time: usize,
    /// Effective learning rate over its entries.
    pub effective_lr: EffectiveLrStats,
    /// `|lr * update|` over its entries.
    pub update: UpdateStats,
    /// This step's mean `|update|` over the previous step's (device f32 sums); `None` on the
    /// first step.
    pub update_ratio: Option<f64>,
    /// L2 norm of the gradient the step used (from a device f32 sum of squares).
    pub grad_norm: f64,
}

/// The probe over every stepped parameter together.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelProbe {
    /// Entries over all tensors.
    pub numel: usize,
    /// Effective learning rate over all entries.
    pub effective_lr: EffectiveLrStats,
    /// `|lr * update|` over all entries.
    pub update: UpdateStats,
    /// This step's mean `|update|` over the previous step's; `None` on the first step.
    pub update_ratio: Option<f64>,
    /// The largest `update_ratio` of any step since the probe was last taken with
    /// [`crate::ProbedAdam::take_probe`] (0 for steps where both means were exactly 0);
    /// `None` if no step since had a previous one.
    pub max_update_ratio: Option<f64>,
    /// L2 norm of the whole gradient.
    pub grad_norm: f64,
}

/// Everything the probe measured at the latest step, as plain host values.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamProbeReport {
    /// Optimizer steps taken with the probe on.
    pub step: u64,
    /// The learning rate of the latest step.
    pub lr: f64,
    /// One entry per stepped parameter tensor, in module order.
    pub params: Vec<ParamProbe>,
    /// All of them together.
    pub model: ModelProbe,
}

impl AdamProbeReport {
    /// The entry of parameter `id`.
    pub fn param(&self, id: ParamId) -> Option<&ParamProbe> {
        self.params.iter().find(|p| p.id == id)
    }
}

/// What [`crate::AdamProbe::read_params`] returns: the chosen tensors' statistics and the
/// whole-model values that need no pass over the entries, each equal to
/// [`AdamProbeReport`]'s.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectedProbeReport {
    /// Optimizer steps taken with the probe on.
    pub step: u64,
    /// The learning rate of the latest step.
    pub lr: f64,
    /// One entry per chosen (and non-empty) parameter tensor, in module order.
    pub params: Vec<ParamProbe>,
    /// As [`ModelProbe::update_ratio`].
    pub update_ratio: Option<f64>,
    /// As [`ModelProbe::max_update_ratio`].
    pub max_update_ratio: Option<f64>,
    /// As [`ModelProbe::grad_norm`]: the L2 norm of the whole gradient.
    pub grad_norm: f64,
}

impl SelectedProbeReport {
    /// The entry of parameter `id`.
    pub fn param(&self, id: ParamId) -> Option<&ParamProbe> {
        self.params.iter().find(|p| p.id == id)
    }
}
