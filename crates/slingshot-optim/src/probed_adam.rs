//! Adam, bit-identical to burn's, with an effective-learning-rate probe.

use std::collections::HashMap;
use std::marker::PhantomData;

use burn::module::{AutodiffModule, ModuleMapper, Param, ParamId};
use burn::optim::{GradientsParams, LearningRate, MultiGradientsParams, Optimizer};
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};

use crate::OptimError;
use crate::adam_rule::{AdamRule, Moments};
use crate::erased::ErasedTensor;
use crate::grads::GradSource;
use crate::histogram::LogBins;
use crate::probe::{AdamProbe, ParamProbeState, ProbeHyper, ProbeStore};
use crate::record::{ProbedAdamParamRecord, ProbedAdamRecord};

/// Adam's state of one parameter tensor, any rank.
#[derive(Debug, Clone)]
struct ParamState<B: Backend> {
    time: usize,
    moment_1: ErasedTensor<B>,
    moment_2: ErasedTensor<B>,
}

/// Adam with the update rule of burn's `Adam` (same operations, same f32 constants, so the
/// same bits) and a probe of what the paper blames for the slingshot: the effective learning
/// rate `lr / (sqrt(v_hat) + eps)`, the update magnitudes and their step-to-step ratio, and
/// the gradient norm.
///
/// With the probe on, each step keeps two one-element sums per tensor on the device and
/// shared handles on the moments `m` and `v`; nothing is read back until the handle from
/// [`ProbedAdam::probe`] or [`ProbedAdam::take_probe`] is read. Build it with
/// [`crate::ProbedAdamConfig`].
///
/// Not supported (use burn's `Adam` for these): weight decay, AMSGrad, gradient clipping.
pub struct ProbedAdam<M, B: AutodiffBackend> {
    rule: AdamRule,
    bins: LogBins,
    probe_on: bool,
    states: HashMap<ParamId, ParamState<B::InnerBackend>>,
    probe: ProbeStore<B::InnerBackend>,
    // `fn() -> M`: the module type without owning one (keeps `Send` and `Clone` free of `M`).
    module: PhantomData<fn() -> M>,
}

impl<M, B: AutodiffBackend> Clone for ProbedAdam<M, B> {
    fn clone(&self) -> Self {
        Self {
            rule: self.rule,
            bins: self.bins.clone(),
            probe_on: self.probe_on,
            states: self.states.clone(),
            probe: self.probe.clone(),
            module: PhantomData,
        }
    }
}

impl<M, B: AutodiffBackend> std::fmt::Debug for ProbedAdam<M, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbedAdam")
            .field("rule", &self.rule)
            .field("probe", &self.probe_on)
            .field("tensors", &self.states.len())
            .finish()
    }
}

impl<M: AutodiffModule<B>, B: AutodiffBackend> ProbedAdam<M, B> {
    pub(crate) fn new(rule: AdamRule, bins: LogBins, probe_on: bool) -> Self {
        Self {
            rule,
            bins,
            probe_on,
            states: HashMap::new(),
            probe: ProbeStore::default(),
            module: PhantomData,
        }
    }

    /// Whether steps record the probe.
    pub fn probe_enabled(&self) -> bool {
        self.probe_on
    }

    /// Turns the probe on or off. Off drops its values (and its handles on the state).
    pub fn set_probe(&mut self, on: bool) {
        self.probe_on = on;
        if !on {
            self.probe = ProbeStore::default();
        }
    }

    /// The probe of the latest step, still on the device; `None` before the first probed
    /// step. Read it with [`AdamProbe::read`].
    pub fn probe(&self) -> Option<AdamProbe<B::InnerBackend>> {
        self.probe.snapshot(self.probe_hyper())
    }

    /// Like [`Self::probe`], and starts a new window for the report's `max_update_ratio`:
    /// call it at each logging step.
    pub fn take_probe(&mut self) -> Option<AdamProbe<B::InnerBackend>> {
        let probe = self.probe();
        self.probe.reset_max_ratio();
        probe
    }

    fn probe_hyper(&self) -> ProbeHyper {
        ProbeHyper {
            rule: self.rule,
            bins: self.bins.clone(),
        }
    }

    /// [`Optimizer::step`] that first checks the learning rate: finite and `>= 0`.
    pub fn try_step(
        &mut self,
        lr: LearningRate,
        module: M,
        grads: GradientsParams,
    ) -> Result<M, OptimError> {
        check_lr(lr)?;
        Ok(self.step(lr, module, grads))
    }

    fn step_source(&mut self, lr: LearningRate, module: M, mut grads: GradSource) -> M {
        let probe = if self.probe_on {
            self.probe.begin_step(lr);
            Some(&mut self.probe)
        } else {
            None
        };
        let mut mapper = AdamMapper::<B> {
            rule: self.rule,
            lr,
            states: &mut self.states,
            probe,
            grads: &mut grads,
        };
        let module = module.map(&mut mapper);
        if self.probe_on {
            self.probe.end_step();
        }
        module
    }
}

/// A learning rate must be finite and not negative.
pub(crate) fn check_lr(lr: f64) -> Result<(), OptimError> {
    if lr.is_finite() && lr >= 0.0 {
        Ok(())
    } else {
        Err(OptimError::InvalidLearningRate { lr })
    }
}

impl<M: AutodiffModule<B>, B: AutodiffBackend> Optimizer<M, B> for ProbedAdam<M, B> {
    type Record = ProbedAdamRecord<B>;

    fn step(&mut self, lr: LearningRate, module: M, grads: GradientsParams) -> M {
        self.step_source(lr, module, GradSource::Single(grads))
    }

    fn step_multi(&mut self, lr: LearningRate, module: M, grads: MultiGradientsParams) -> M {
        self.step_source(lr, module, GradSource::Multi(grads))
    }

    fn to_record(&self) -> Self::Record {
        let mut params: Vec<_> = self
            .states
            .iter()
            .map(|(id, state)| ProbedAdamParamRecord {
                param_id: id.val(),
                time: state.time,
                shape: state.moment_1.dims().to_vec(),
                moment_1: Tensor::from_inner(state.moment_1.clone().flat()),
                moment_2: Tensor::from_inner(state.moment_2.clone().flat()),
            })
            .collect();
        params.sort_by_key(|p| p.param_id);
        ProbedAdamRecord { params }
    }

    fn load_record(mut self, record: Self::Record) -> Self {
        // Loaded state is flat; the next step gives it the parameter's shape.
        self.states = record
            .params
            .into_iter()
            .map(|p| {
                let state = ParamState {
                    time: p.time,
                    moment_1: ErasedTensor::new(p.moment_1.inner()),
                    moment_2: ErasedTensor::new(p.moment_2.inner()),
                };
                (ParamId::from(p.param_id), state)
            })
            .collect();
        self.probe = ProbeStore::default();
        self
    }
}

/// Steps every float parameter that has a gradient, as burn's `OptimizerAdaptor` does.
struct AdamMapper<'a, B: AutodiffBackend> {
    rule: AdamRule,
    lr: f64,
    states: &'a mut HashMap<ParamId, ParamState<B::InnerBackend>>,
    probe: Option<&'a mut ProbeStore<B::InnerBackend>>,
    grads: &'a mut GradSource,
}

impl<B: AutodiffBackend> ModuleMapper<B> for AdamMapper<'_, B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let Some((grad, device)) = self.grads.remove::<B::InnerBackend, D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let is_require_grad = tensor.is_require_grad();
        let tensor = if tensor.device() != device {
            tensor.to_device(&device)
        } else {
            tensor
        };
        let dims = tensor.shape().dims::<D>();
        // The previous probe shares `v`: keep only its sum, dropping the rest now, so that `v`
        // is updated in place.
        let prev_update_abs_sum = self
            .probe
            .as_mut()
            .and_then(|p| p.take(id))
            .map(|p| p.update_abs_sum);
        let state = self.states.remove(&id).map(|s| Moments {
            time: s.time,
            moment_1: s.moment_1.into_tensor(dims).to_device(&device),
            moment_2: s.moment_2.into_tensor(dims).to_device(&device),
        });
        let probing = self.probe.is_some();
        let (tensor, moments, step_probe) =
            self.rule
                .step(self.lr, tensor.inner(), grad, state, probing);
        if let (Some(store), Some(step)) = (self.probe.as_mut(), step_probe) {
            store.record(
                id,
                ParamProbeState {
                    time: moments.time,
                    lr: self.lr,
                    moment_1: ErasedTensor::new(moments.moment_1.clone()),
                    moment_2: ErasedTensor::new(moments.moment_2.clone()),
                    update_abs_sum: step.update_abs_sum,
                    prev_update_abs_sum,
                    grad_sq_sum: step.grad_sq_sum,
                },
            );
        }
        self.states.insert(
            id,
            ParamState {
                time: moments.time,
                moment_1: ErasedTensor::new(moments.moment_1),
                moment_2: ErasedTensor::new(moments.moment_2),
            },
        );
        let mut tensor = Tensor::from_inner(tensor);
        if is_require_grad {
            tensor = tensor.require_grad();
        }
        Param::from_mapped_value(id, tensor, mapper)
    }
}
