//! The effective-learning-rate probe of [`crate::ProbedAdam`]: cheap device-side values every
//! step, the expensive statistics only when read.

use std::collections::HashMap;

use burn::module::ParamId;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData, Transaction};

use crate::adam_rule::{AdamRule, Moments};
use crate::erased::ErasedTensor;
use crate::histogram::LogBins;
use crate::report::{AdamProbeReport, ModelProbe, ParamProbe, SelectedProbeReport};
use crate::stats::{EffectiveLrStats, HostAdam, UpdateStats};

/// What the probe keeps of one parameter tensor's latest step, all on the device.
#[derive(Debug, Clone)]
pub(crate) struct ParamProbeState<B: Backend> {
    /// Adam's `t` for this tensor.
    pub(crate) time: usize,
    /// The learning rate of the step.
    pub(crate) lr: f64,
    /// Adam's moments after the step (shared handles on the optimizer state, not copies):
    /// the effective learning rate needs `v`, and `|lr * update|` is recomputed from both.
    pub(crate) moment_1: ErasedTensor<B>,
    pub(crate) moment_2: ErasedTensor<B>,
    pub(crate) update_abs_sum: Tensor<B, 1>,
    pub(crate) prev_update_abs_sum: Option<Tensor<B, 1>>,
    pub(crate) grad_sq_sum: Tensor<B, 1>,
}

/// Whole-model values of one step.
#[derive(Debug, Clone)]
struct ModelStep<B: Backend> {
    update_abs_sum: Tensor<B, 1>,
    numel: usize,
}

/// The probe's device-side state inside the optimizer.
#[derive(Debug, Clone)]
pub(crate) struct ProbeStore<B: Backend> {
    params: HashMap<ParamId, ParamProbeState<B>>,
    /// Parameters in module order, as visited by the latest step.
    order: Vec<ParamId>,
    current: Option<ModelStep<B>>,
    previous: Option<ModelStep<B>>,
    /// Largest whole-model update ratio since the last `ProbedAdam::take_probe`.
    max_ratio: Option<Tensor<B, 1>>,
    /// Per-tensor sums and the entry count of the step in progress.
    pending_sums: Vec<Tensor<B, 1>>,
    pending_numel: usize,
    lr: f64,
    steps: u64,
}

impl<B: Backend> Default for ProbeStore<B> {
    fn default() -> Self {
        Self {
            params: HashMap::new(),
            order: Vec::new(),
            current: None,
            previous: None,
            max_ratio: None,
            pending_sums: Vec::new(),
            pending_numel: 0,
            lr: 0.0,
            steps: 0,
        }
    }
}

impl<B: Backend> ProbeStore<B> {
    pub(crate) fn begin_step(&mut self, lr: f64) {
        self.order.clear();
        self.pending_sums.clear();
        self.pending_numel = 0;
        self.lr = lr;
    }

    /// Removes and returns the previous step's values of `id`: dropping its handle on the
    /// optimizer state before the update lets that update run in place.
    pub(crate) fn take(&mut self, id: ParamId) -> Option<ParamProbeState<B>> {
        self.params.remove(&id)
    }

    /// Records one tensor's step.
    pub(crate) fn record(&mut self, id: ParamId, state: ParamProbeState<B>) {
        self.pending_numel += state.moment_2.numel();
        self.pending_sums.push(state.update_abs_sum.clone());
        self.order.push(id);
        self.params.insert(id, state);
    }

    /// Closes the step: the whole-model ratio to the previous step and its running maximum,
    /// a handful of one-element operations.
    pub(crate) fn end_step(&mut self) {
        if self.pending_sums.is_empty() {
            return;
        }
        // One concatenation and one sum rather than an addition per tensor.
        let sums = std::mem::take(&mut self.pending_sums);
        let step = ModelStep {
            update_abs_sum: Tensor::cat(sums, 0).sum(),
            numel: std::mem::take(&mut self.pending_numel),
        };
        self.steps += 1;
        if let Some(current) = &self.current {
            let ratio = model_ratio(&step, current);
            self.max_ratio = Some(match self.max_ratio.take() {
                None => ratio,
                Some(max) => max.max_pair(ratio),
            });
        }
        self.previous = self.current.replace(step);
    }

    /// A snapshot for reading (shared handles, no copies).
    pub(crate) fn snapshot(&self, hyper: ProbeHyper) -> Option<AdamProbe<B>> {
        let current = self.current.clone()?;
        let params = self
            .order
            .iter()
            .filter_map(|id| self.params.get(id).map(|s| (*id, s.clone())))
            .collect();
        Some(AdamProbe {
            params,
            current,
            previous: self.previous.clone(),
            max_ratio: self.max_ratio.clone(),
            rule: hyper.rule,
            lr: self.lr,
            bins: hyper.bins,
            step: self.steps,
        })
    }

    /// Starts a new window for the running maximum of the update ratio.
    pub(crate) fn reset_max_ratio(&mut self) {
        self.max_ratio = None;
    }
}

/// Mean over mean, with a ratio of exact zeros counted as 0 rather than NaN (a NaN would stick
/// in the running maximum).
fn model_ratio<B: Backend>(now: &ModelStep<B>, before: &ModelStep<B>) -> Tensor<B, 1> {
    let mut sum = now.update_abs_sum.clone();
    if now.numel != before.numel {
        sum = sum.mul_scalar(before.numel as f64 / now.numel as f64);
    }
    let ratio = sum.div(before.update_abs_sum.clone());
    ratio.clone().mask_fill(ratio.is_nan(), 0.0)
}

/// The optimizer's constants the read needs.
#[derive(Debug, Clone)]
pub(crate) struct ProbeHyper {
    pub(crate) rule: AdamRule,
    pub(crate) bins: LogBins,
}

/// A handle on the probe values of the latest step, still on the device. Holding it is cheap
/// (it shares the optimizer's tensors); drop it before the next step, or that step copies the
/// moments it shares instead of updating them in place.
#[derive(Debug, Clone)]
pub struct AdamProbe<B: Backend> {
    params: Vec<(ParamId, ParamProbeState<B>)>,
    current: ModelStep<B>,
    previous: Option<ModelStep<B>>,
    max_ratio: Option<Tensor<B, 1>>,
    rule: AdamRule,
    lr: f64,
    bins: LogBins,
    step: u64,
}

/// Indices of one parameter's tensors in the transaction.
struct ParamSlots {
    moment_2: usize,
    update_abs: usize,
    update_abs_sum: usize,
    prev_update_abs_sum: Option<usize>,
    grad_sq_sum: usize,
}

/// Indices of the whole-model scalars in the transaction.
struct ModelSlots {
    sum: usize,
    prev_sum: Option<usize>,
    max_ratio: Option<usize>,
}

/// Collects rank-1 tensors for one device read.
struct Reads<B: Backend> {
    transaction: Transaction<B>,
    count: usize,
}

impl<B: Backend> Default for Reads<B> {
    fn default() -> Self {
        Self {
            transaction: Transaction::default(),
            count: 0,
        }
    }
}

impl<B: Backend> Reads<B> {
    fn add(&mut self, tensor: Tensor<B, 1>) -> usize {
        let transaction = std::mem::take(&mut self.transaction);
        self.transaction = transaction.register(tensor);
        self.count += 1;
        self.count - 1
    }
}

fn scalar(data: &TensorData) -> f64 {
    data.iter::<f64>().next().unwrap_or(f64::NAN)
}

fn ratio(now: f64, before: f64) -> f64 {
    if now == 0.0 && before == 0.0 {
        0.0
    } else {
        now / before
    }
}

impl<B: Backend> AdamProbe<B> {
    /// `|lr * update|` of the step, recomputed from the moments with the step's own operations
    /// (so the same bits), flat.
    fn update_abs(&self, state: &ParamProbeState<B>) -> Tensor<B, 1> {
        let moments = Moments {
            time: state.time,
            moment_1: state.moment_1.clone().flat(),
            moment_2: state.moment_2.clone().flat(),
        };
        self.rule.delta(state.lr, &moments).abs()
    }

    /// Registers one parameter's tensors for the read.
    fn param_slots(&self, reads: &mut Reads<B>, s: &ParamProbeState<B>) -> ParamSlots {
        ParamSlots {
            moment_2: reads.add(s.moment_2.clone().flat()),
            update_abs: reads.add(self.update_abs(s)),
            update_abs_sum: reads.add(s.update_abs_sum.clone()),
            prev_update_abs_sum: s.prev_update_abs_sum.clone().map(|t| reads.add(t)),
            grad_sq_sum: reads.add(s.grad_sq_sum.clone()),
        }
    }

    /// Registers the whole-model scalars for the read.
    fn model_slots(&self, reads: &mut Reads<B>) -> ModelSlots {
        ModelSlots {
            sum: reads.add(self.current.update_abs_sum.clone()),
            prev_sum: self
                .previous
                .as_ref()
                .map(|p| reads.add(p.update_abs_sum.clone())),
            max_ratio: self.max_ratio.clone().map(|t| reads.add(t)),
        }
    }

    fn host(&self, lr: f64) -> HostAdam {
        HostAdam {
            lr,
            beta_2: self.rule.beta_2 as f64,
            epsilon: self.rule.epsilon as f64,
        }
    }

    /// One parameter's statistics and gradient sum of squares from the read `data`; its
    /// effective learning rates are appended to `lrs` (and reordered there). `None` for an
    /// empty tensor.
    fn param_probe(
        &self,
        (id, state): &(ParamId, ParamProbeState<B>),
        slot: &ParamSlots,
        data: &[TensorData],
        lrs: &mut Vec<f64>,
    ) -> Option<(ParamProbe, f64)> {
        let host = self.host(state.lr);
        let start = lrs.len();
        lrs.extend(host.effective_lrs(data[slot.moment_2].iter::<f64>(), state.time));
        let updates: Vec<f64> = data[slot.update_abs].iter::<f64>().collect();
        let effective_lr = EffectiveLrStats::from_values(&mut lrs[start..], host.ceiling())?;
        let update = UpdateStats::from_values(&updates, &self.bins)?;
        let grad_sq = scalar(&data[slot.grad_sq_sum]);
        let now = scalar(&data[slot.update_abs_sum]);
        let probe = ParamProbe {
            id: *id,
            shape: state.moment_2.dims().to_vec(),
            time: state.time,
            effective_lr,
            update,
            update_ratio: slot
                .prev_update_abs_sum
                .map(|i| ratio(now, scalar(&data[i]))),
            grad_norm: grad_sq.sqrt(),
        };
        Some((probe, grad_sq))
    }

    /// The whole-model mean `|update|` ratio to the previous step and its running maximum.
    fn model_ratios(&self, slots: &ModelSlots, data: &[TensorData]) -> (Option<f64>, Option<f64>) {
        let update_ratio = slots.prev_sum.zip(self.previous.as_ref()).map(|(i, p)| {
            let now = scalar(&data[slots.sum]) / self.current.numel as f64;
            ratio(now, scalar(&data[i]) / p.numel as f64)
        });
        (update_ratio, slots.max_ratio.map(|i| scalar(&data[i])))
    }

    /// Recomputes `|lr * update|` on the device, reads it and `v` back in one transaction, and
    /// computes the statistics on the host in f64. Costs a few passes and a transfer of two
    /// values per parameter, and `O(n)` host work: call it when logging, not every step.
    pub fn read(&self) -> AdamProbeReport {
        let mut reads = Reads::default();
        let slots: Vec<ParamSlots> = self
            .params
            .iter()
            .map(|(_, s)| self.param_slots(&mut reads, s))
            .collect();
        let model_slots = self.model_slots(&mut reads);
        let data = reads.transaction.execute();

        let mut all_lrs = Vec::with_capacity(self.current.numel);
        let mut grad_sq_total = 0.0;
        let mut params = Vec::with_capacity(self.params.len());
        for (param, slot) in self.params.iter().zip(&slots) {
            if let Some((probe, grad_sq)) = self.param_probe(param, slot, &data, &mut all_lrs) {
                grad_sq_total += grad_sq;
                params.push(probe);
            }
        }

        let numel = all_lrs.len();
        let ceiling = self.host(self.lr).ceiling();
        // Each tensor's statistics exist (they are skipped when empty), so the pooled ones do
        // whenever there is a tensor at all; NaN marks a model without entries.
        let update = UpdateStats::pool(params.iter().map(|p| (&p.update, p.effective_lr.count)))
            .unwrap_or_else(|| UpdateStats {
                mean: f64::NAN,
                max: f64::NAN,
                histogram: self.bins.histogram([]),
            });
        let effective_lr =
            EffectiveLrStats::from_values(&mut all_lrs, ceiling).unwrap_or(EffectiveLrStats {
                min: f64::NAN,
                median: f64::NAN,
                max: f64::NAN,
                ceiling,
                near_ceiling_fraction: f64::NAN,
                count: 0,
            });
        let (update_ratio, max_update_ratio) = self.model_ratios(&model_slots, &data);
        let model = ModelProbe {
            numel,
            effective_lr,
            update,
            update_ratio,
            max_update_ratio,
            grad_norm: grad_sq_total.sqrt(),
        };
        AdamProbeReport {
            step: self.step,
            lr: self.lr,
            params,
            model,
        }
    }

    /// The statistics of the tensors `ids` only, with the whole-model values that need no pass
    /// over the entries (gradient norm, update ratios): each equal to what [`Self::read`]
    /// reports, at `O(n)` host work in those tensors' entries rather than the model's. The
    /// harness reads the classifier this way on every logged step.
    pub fn read_params(&self, ids: &[ParamId]) -> SelectedProbeReport {
        let mut reads = Reads::default();
        let chosen: Vec<(&(ParamId, ParamProbeState<B>), ParamSlots)> = self
            .params
            .iter()
            .filter(|(id, _)| ids.contains(id))
            .map(|p| (p, self.param_slots(&mut reads, &p.1)))
            .collect();
        // Every tensor's gradient sum of squares: a scalar each.
        let grad_sq: Vec<usize> = self
            .params
            .iter()
            .map(|(_, s)| reads.add(s.grad_sq_sum.clone()))
            .collect();
        let model_slots = self.model_slots(&mut reads);
        let data = reads.transaction.execute();

        let mut lrs = Vec::new();
        let params = chosen
            .iter()
            .filter_map(|(param, slot)| {
                lrs.clear();
                self.param_probe(param, slot, &data, &mut lrs)
                    .map(|(probe, _)| probe)
            })
            .collect();
        // Empty tensors add an exact 0, so this is `read`'s sum over the non-empty ones.
        let grad_sq_total: f64 = grad_sq.iter().fold(0.0, |acc, &i| acc + scalar(&data[i]));
        let (update_ratio, max_update_ratio) = self.model_ratios(&model_slots, &data);
        SelectedProbeReport {
            step: self.step,
            lr: self.lr,
            params,
            update_ratio,
            max_update_ratio,
            grad_norm: grad_sq_total.sqrt(),
        }
    }
}
