//! ProbedAdam as burn-train's optimizer, publishing Adam's effective learning rate to
//! metrics: the quantity whose inflation throws the loss back up (the paper's step 4).

use std::sync::{Arc, Mutex};

use burn::module::{AutodiffModule, ParamId};
use burn::optim::{GradientsParams, LearningRate, MultiGradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use slingshot_optim::{EffectiveLrStats, ProbedAdam, ProbedAdamConfig, ProbedAdamRecord};

use crate::TrainError;
use crate::metric::{BatchQuantity, QuantityMetric};

/// How many readings a [`ProbeFeed`] keeps for metrics that lag behind the optimizer.
const KEPT_READINGS: usize = 64;

/// What the probe read at one optimizer step.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeReading {
    /// Adam's step `t`, counting the steps before a restored record.
    pub step: u64,
    /// Effective learning rate `lr / (sqrt(v_hat) + eps)` over the probed entries.
    pub effective_lr: EffectiveLrStats,
    /// L2 norm of the whole gradient of the step.
    pub grad_norm: f64,
}

/// Which entries the effective-LR statistics cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeScope {
    /// Every parameter of the model.
    Model,
    /// One parameter tensor, for example the classifier weight (`linear.weight.id`). A
    /// record restores the saved ids: when burn-train resumes from a checkpoint, take the id
    /// from the model with that checkpoint's record loaded, not from a fresh one.
    Param(ParamId),
}

/// The readings a [`LearnerAdam`] publishes and its [`EffectiveLrMetric`]s read. Clones
/// share the readings.
#[derive(Debug, Clone, Default)]
pub struct ProbeFeed {
    readings: Arc<Mutex<Readings>>,
}

/// Each reading with the optimizer call of this process it came from (1, 2, ...): the
/// metrics count batches the same way.
#[derive(Debug, Default)]
struct Readings {
    kept: Vec<(u64, ProbeReading)>,
}

impl ProbeFeed {
    /// An empty feed.
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&self, call: u64, reading: ProbeReading) {
        let mut readings = self.readings.lock().expect("probe feed lock");
        readings.kept.push((call, reading));
        let excess = readings.kept.len().saturating_sub(KEPT_READINGS);
        readings.kept.drain(..excess);
    }

    /// The latest reading at or before the optimizer's `call`-th step in this process;
    /// `None` before the first reading, and for a metric more than 64 readings behind (its
    /// reading is gone, and a later one would be misattributed).
    pub fn at(&self, call: u64) -> Option<ProbeReading> {
        let readings = self.readings.lock().expect("probe feed lock");
        readings
            .kept
            .iter()
            .rev()
            .find(|(c, _)| *c <= call)
            .map(|(_, r)| r.clone())
    }
}

/// [`ProbedAdam`] for burn-train's `Learner`: the same steps and the same record, and at
/// every `every`-th Adam step it reads its probe and publishes the effective-LR statistics to
/// a [`ProbeFeed`]. Between those steps the probe is off, so the step is burn's Adam step with
/// no read from the device. After a restored record the count goes on from the record's `t`.
pub struct LearnerAdam<M, B: AutodiffBackend> {
    inner: ProbedAdam<M, B>,
    feed: ProbeFeed,
    every: u64,
    scope: ProbeScope,
    step: u64,
    calls: u64,
    warned_missing: bool,
}

impl<M, B: AutodiffBackend> Clone for LearnerAdam<M, B> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            feed: self.feed.clone(),
            every: self.every,
            scope: self.scope,
            step: self.step,
            calls: self.calls,
            warned_missing: self.warned_missing,
        }
    }
}

impl<M: AutodiffModule<B>, B: AutodiffBackend> LearnerAdam<M, B> {
    /// Adam from `config`, publishing to `feed` the statistics of `scope` every `every`
    /// steps (1: each step, one device read per step).
    pub fn try_new(
        config: &ProbedAdamConfig,
        feed: ProbeFeed,
        scope: ProbeScope,
        every: u64,
    ) -> Result<Self, TrainError> {
        if every == 0 {
            return Err(TrainError::Zero {
                what: "the probe interval `every`",
            });
        }
        let inner = config.try_init()?;
        Ok(Self {
            inner,
            feed,
            every,
            scope,
            step: 0,
            calls: 0,
            warned_missing: false,
        })
    }

    /// The wrapped optimizer.
    pub fn inner(&self) -> &ProbedAdam<M, B> {
        &self.inner
    }

    fn step_with(&mut self, step: impl FnOnce(&mut ProbedAdam<M, B>) -> M) -> M {
        self.step += 1;
        self.calls += 1;
        let probed = self.step.is_multiple_of(self.every);
        self.inner.set_probe(probed);
        let module = step(&mut self.inner);
        if probed && let Some(probe) = self.inner.take_probe() {
            let reading = match self.scope {
                ProbeScope::Model => {
                    let report = probe.read();
                    Some((report.model.effective_lr, report.model.grad_norm))
                }
                ProbeScope::Param(id) => {
                    let report = probe.read_params(&[id]);
                    let grad_norm = report.grad_norm;
                    let found = report.param(id).map(|p| (p.effective_lr, grad_norm));
                    if found.is_none() && !self.warned_missing {
                        // Usually an id taken from a fresh model before a resume.
                        log::warn!(
                            "the probed parameter {id} is not in the model: no effective-LR readings"
                        );
                        self.warned_missing = true;
                    }
                    found
                }
            };
            if let Some((effective_lr, grad_norm)) = reading {
                let reading = ProbeReading {
                    step: self.step,
                    effective_lr,
                    grad_norm,
                };
                self.feed.push(self.calls, reading);
            }
        }
        // The probe shares the moments: off before the next step, which then updates in place.
        self.inner.set_probe(false);
        module
    }
}

impl<M: AutodiffModule<B>, B: AutodiffBackend> Optimizer<M, B> for LearnerAdam<M, B> {
    type Record = ProbedAdamRecord<B>;

    fn step(&mut self, lr: LearningRate, module: M, grads: GradientsParams) -> M {
        self.step_with(|adam| adam.step(lr, module, grads))
    }

    fn step_multi(&mut self, lr: LearningRate, module: M, grads: MultiGradientsParams) -> M {
        self.step_with(|adam| adam.step_multi(lr, module, grads))
    }

    fn to_record(&self) -> Self::Record {
        self.inner.to_record()
    }

    fn load_record(mut self, record: Self::Record) -> Self {
        self.step = record
            .params
            .iter()
            .map(|p| p.time as u64)
            .max()
            .unwrap_or(0);
        self.inner = self.inner.load_record(record);
        self
    }
}

/// Which effective-LR statistic an [`EffectiveLrMetric`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EffectiveLrQuantity {
    /// Median entry.
    Median,
    /// Largest entry.
    Max,
    /// Fraction of entries within 10% of the ceiling `lr / eps`: parameters whose gradient
    /// has been absent long enough that a returning gradient is amplified.
    NearCeilingFraction,
}

impl EffectiveLrQuantity {
    /// Every quantity.
    pub const ALL: [EffectiveLrQuantity; 3] = [
        EffectiveLrQuantity::Median,
        EffectiveLrQuantity::Max,
        EffectiveLrQuantity::NearCeilingFraction,
    ];

    /// The metric's name.
    pub fn name(self) -> &'static str {
        match self {
            EffectiveLrQuantity::Median => "Effective LR Median",
            EffectiveLrQuantity::Max => "Effective LR Max",
            EffectiveLrQuantity::NearCeilingFraction => "Effective LR Near Ceiling",
        }
    }

    /// The value in `stats`.
    pub fn of(self, stats: &EffectiveLrStats) -> f64 {
        match self {
            EffectiveLrQuantity::Median => stats.median,
            EffectiveLrQuantity::Max => stats.max,
            EffectiveLrQuantity::NearCeilingFraction => stats.near_ceiling_fraction,
        }
    }
}

/// A numeric burn-train metric of one [`EffectiveLrQuantity`], read from a [`ProbeFeed`].
/// Its `n`-th batch in this process reports the reading of the optimizer's `n`-th step in this
/// process, or of the latest step read before it; NaN before the first reading. That pairing
/// holds for one optimizer step per training batch: register it for training only, and not
/// with gradient accumulation or burn-train's multi-device strategy (one batch per device).
pub type EffectiveLrMetric = QuantityMetric<EffectiveLrSource>;

/// An [`EffectiveLrQuantity`] read from a [`ProbeFeed`], counting the batches it has seen.
#[derive(Debug, Clone)]
pub struct EffectiveLrSource {
    quantity: EffectiveLrQuantity,
    feed: ProbeFeed,
    batches: u64,
}

impl BatchQuantity for EffectiveLrSource {
    type Input = ();

    fn name(&self) -> &'static str {
        self.quantity.name()
    }

    // The batch count goes on across epochs: it is the optimizer's step.
    fn measure(&mut self, _: &()) -> (f64, usize) {
        self.batches += 1;
        let value = self
            .feed
            .at(self.batches)
            .map_or(f64::NAN, |r| self.quantity.of(&r.effective_lr));
        (value, 1)
    }
}

impl EffectiveLrMetric {
    /// The metric of `quantity`, reading `feed`.
    pub fn new(quantity: EffectiveLrQuantity, feed: ProbeFeed) -> Self {
        Self::of(EffectiveLrSource {
            quantity,
            feed,
            batches: 0,
        })
    }
}
