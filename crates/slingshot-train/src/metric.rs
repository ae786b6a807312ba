//! burn-train numeric metrics: the collapse statistics of each batch and the classifier's NFI
//! values, each with burn's running epoch mean.

use std::sync::Arc;

use burn_train::metric::state::{FormatOptions, NumericMetricState};
use burn_train::metric::{
    Metric, MetricAttributes, MetricMetadata, MetricName, Numeric, NumericAttributes, NumericEntry,
    SerializedEntry,
};
use slingshot_loss::CollapseSummary;
use slingshot_nn::NfiSummary;

use crate::input::{CollapseInput, NfiInput};

/// Which collapse statistic a [`CollapseMetric`] reports; each is the
/// [`CollapseSummary`] field of the same meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollapseQuantity {
    /// Fraction of rows whose softmax sum is exactly 1 in the training precision.
    CollapsedFraction,
    /// Fraction of rows whose loss is exactly 0.
    ZeroLossFraction,
    /// Mean residual mass `epsilon = sum_{k != r} p_k`.
    ResidualMass,
    /// Mean margin `z_r - max_{k != r} z_k` minus the precision's absorption threshold:
    /// positive once the average row is past the point where it can absorb.
    MarginOverThreshold,
    /// Mean logit over the batch.
    MeanLogit,
}

impl CollapseQuantity {
    /// Every quantity, in the order above.
    pub const ALL: [CollapseQuantity; 5] = [
        CollapseQuantity::CollapsedFraction,
        CollapseQuantity::ZeroLossFraction,
        CollapseQuantity::ResidualMass,
        CollapseQuantity::MarginOverThreshold,
        CollapseQuantity::MeanLogit,
    ];

    /// The metric's name: its log file is this with spaces as underscores.
    pub fn name(self) -> &'static str {
        match self {
            CollapseQuantity::CollapsedFraction => "Collapsed Fraction",
            CollapseQuantity::ZeroLossFraction => "Zero-Loss Fraction",
            CollapseQuantity::ResidualMass => "Residual Mass",
            CollapseQuantity::MarginOverThreshold => "Margin Over Threshold",
            CollapseQuantity::MeanLogit => "Mean Logit",
        }
    }

    /// The value of one batch.
    pub fn of(self, input: &CollapseInput) -> f64 {
        let s: &CollapseSummary = &input.summary;
        match self {
            CollapseQuantity::CollapsedFraction => s.collapsed_fraction,
            CollapseQuantity::ZeroLossFraction => s.zero_loss_fraction,
            CollapseQuantity::ResidualMass => s.mean_residual_mass,
            CollapseQuantity::MarginOverThreshold => s.mean_margin - input.threshold,
            CollapseQuantity::MeanLogit => s.mean_logit,
        }
    }
}

/// A numeric burn-train metric of one [`CollapseQuantity`]. Its batch value is the quantity
/// of that batch, logged as `value,rows`; the running value is the row-weighted epoch mean.
pub type CollapseMetric = QuantityMetric<CollapseQuantity>;

impl BatchQuantity for CollapseQuantity {
    type Input = CollapseInput;

    fn name(&self) -> &'static str {
        CollapseQuantity::name(*self)
    }

    fn measure(&mut self, input: &CollapseInput) -> (f64, usize) {
        (self.of(input), input.rows)
    }
}

impl CollapseMetric {
    /// The metric of `quantity`.
    pub fn new(quantity: CollapseQuantity) -> Self {
        Self::of(quantity)
    }

    /// The collapsed fraction.
    pub fn collapsed_fraction() -> Self {
        Self::new(CollapseQuantity::CollapsedFraction)
    }

    /// The zero-loss fraction.
    pub fn zero_loss_fraction() -> Self {
        Self::new(CollapseQuantity::ZeroLossFraction)
    }

    /// The mean residual mass.
    pub fn residual_mass() -> Self {
        Self::new(CollapseQuantity::ResidualMass)
    }

    /// The mean margin over the absorption threshold.
    pub fn margin_over_threshold() -> Self {
        Self::new(CollapseQuantity::MarginOverThreshold)
    }

    /// The mean logit.
    pub fn mean_logit() -> Self {
        Self::new(CollapseQuantity::MeanLogit)
    }
}

/// Which NFI value an [`NfiMetric`] reports ([`NfiSummary`]'s field of the same meaning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NfiQuantity {
    /// `||W_G||`, the norm of the classifier's class mean.
    WgNorm,
    /// `||mu_G||`, the norm of the batch's feature mean.
    MuGNorm,
    /// `cos(W_G, mu_G)`: near -1 under feature inflation.
    CosWgMuG,
}

impl NfiQuantity {
    /// Every quantity.
    pub const ALL: [NfiQuantity; 3] = [
        NfiQuantity::WgNorm,
        NfiQuantity::MuGNorm,
        NfiQuantity::CosWgMuG,
    ];

    /// The metric's name.
    pub fn name(self) -> &'static str {
        match self {
            NfiQuantity::WgNorm => "W_G Norm",
            NfiQuantity::MuGNorm => "mu_G Norm",
            NfiQuantity::CosWgMuG => "cos(W_G, mu_G)",
        }
    }

    /// The value in `summary`.
    pub fn of(self, summary: &NfiSummary) -> f64 {
        match self {
            NfiQuantity::WgNorm => summary.w_g_norm,
            NfiQuantity::MuGNorm => summary.mu_g_norm,
            NfiQuantity::CosWgMuG => summary.cos_wg_mug,
        }
    }
}

/// A numeric burn-train metric of one [`NfiQuantity`], from a step output that carries the
/// classifier ([`crate::CollapseOutput::try_with_classifier`]); NaN for one that does not.
pub type NfiMetric = QuantityMetric<NfiQuantity>;

impl BatchQuantity for NfiQuantity {
    type Input = NfiInput;

    fn name(&self) -> &'static str {
        NfiQuantity::name(*self)
    }

    fn measure(&mut self, input: &NfiInput) -> (f64, usize) {
        let value = input.summary.as_ref().map_or(f64::NAN, |s| self.of(s));
        (value, input.rows)
    }
}

impl NfiMetric {
    /// The metric of `quantity`.
    pub fn new(quantity: NfiQuantity) -> Self {
        Self::of(quantity)
    }

    /// `||W_G||`.
    pub fn w_g_norm() -> Self {
        Self::new(NfiQuantity::WgNorm)
    }

    /// `||mu_G||`.
    pub fn mu_g_norm() -> Self {
        Self::new(NfiQuantity::MuGNorm)
    }

    /// `cos(W_G, mu_G)`.
    pub fn cos_wg_mug() -> Self {
        Self::new(NfiQuantity::CosWgMuG)
    }
}

/// What a [`QuantityMetric`] reports: a name, and one value per batch with its weight.
pub trait BatchQuantity: Clone + Send + Sync {
    /// What the metric reads from the step output.
    type Input;

    /// The metric's name: its log file is this with spaces as underscores.
    fn name(&self) -> &'static str;

    /// The batch's value and its weight in the epoch's running mean (its rows).
    fn measure(&mut self, input: &Self::Input) -> (f64, usize);
}

/// A numeric burn-train metric of one [`BatchQuantity`]: the batch value logged as
/// `value,weight`, and burn-train's weighted running mean over the epoch.
#[derive(Clone)]
pub struct QuantityMetric<Q> {
    quantity: Q,
    name: MetricName,
    state: NumericMetricState,
}

impl<Q: BatchQuantity> QuantityMetric<Q> {
    /// The metric of `quantity`.
    pub fn of(quantity: Q) -> Self {
        Self {
            name: Arc::new(quantity.name().to_string()),
            quantity,
            state: NumericMetricState::new(),
        }
    }

    /// The quantity reported.
    pub fn quantity(&self) -> &Q {
        &self.quantity
    }
}

impl<Q: BatchQuantity> Metric for QuantityMetric<Q> {
    type Input = Q::Input;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn update(&mut self, input: &Q::Input, _: &MetricMetadata) -> SerializedEntry {
        let (value, weight) = self.quantity.measure(input);
        let format = FormatOptions::new(self.name()).precision(4);
        self.state.update(value, weight, format)
    }

    // The running mean restarts each epoch; a quantity's own state (a step count) does not.
    fn clear(&mut self) {
        self.state.reset();
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes {
            unit: None,
            higher_is_better: false,
        }
        .into()
    }
}

impl<Q: BatchQuantity> Numeric for QuantityMetric<Q> {
    fn value(&self) -> NumericEntry {
        self.state.current_value()
    }

    fn running_value(&self) -> NumericEntry {
        self.state.running_value()
    }
}
