//! The effective learning rate of burn's own `Adam`, read from its optimizer record.
//!
//! burn 0.21 makes this possible without copies of its code: the record
//! (`OptimizerAdaptor::to_record`, a map from `ParamId` to `AdaptorRecord<Adam, B>`) is a
//! public enum over ranks whose states, `AdamState { momentum: AdaptiveMomentumState { time,
//! moment_1, moment_2, max_moment_2 } }`, have public fields. `AdamConfig`'s fields are
//! private, so [`BurnAdamHyper::from_config`] reads them from its serde form.

use burn::module::ParamId;
use burn::optim::record::{AdaptorRecord, AdaptorRecordV1};
use burn::optim::{Adam, AdamConfig, AdamState};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, Transaction};

use crate::OptimError;
use crate::stats::{EffectiveLrStats, HostAdam};

/// What the effective learning rate of burn's `Adam` depends on: the learning rate and the
/// f32 `beta_2` and `epsilon` it was configured with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurnAdamHyper {
    lr: f64,
    beta_2: f32,
    epsilon: f32,
}

impl BurnAdamHyper {
    /// Checks `lr` finite and `>= 0`, `beta_2` in `[0, 1)`, `epsilon` finite and `> 0`.
    pub fn try_new(lr: f64, beta_2: f32, epsilon: f32) -> Result<Self, OptimError> {
        crate::probed_adam::check_lr(lr)?;
        if !(0.0..1.0).contains(&beta_2) {
            return Err(OptimError::InvalidConfig {
                name: "beta_2",
                value: beta_2 as f64,
                expected: "a value in [0, 1)",
            });
        }
        if !(epsilon.is_finite() && epsilon > 0.0) {
            return Err(OptimError::InvalidConfig {
                name: "epsilon",
                value: epsilon as f64,
                expected: "a finite value > 0",
            });
        }
        Ok(Self {
            lr,
            beta_2,
            epsilon,
        })
    }

    /// `beta_2` and `epsilon` of `config` (read through its JSON form, its fields being
    /// private) with learning rate `lr`.
    pub fn from_config(config: &AdamConfig, lr: f64) -> Result<Self, OptimError> {
        let json = serde_json::to_value(config)
            .map_err(|_| OptimError::UnreadableConfig { what: "AdamConfig" })?;
        let field = |what: &'static str| {
            json.get(what)
                .and_then(serde_json::Value::as_f64)
                .ok_or(OptimError::UnreadableConfig { what })
        };
        // The JSON holds the f32 values widened to f64: narrowing gives them back exactly.
        Self::try_new(lr, field("beta_2")? as f32, field("epsilon")? as f32)
    }
}

/// The effective learning rate of every parameter tensor burn's `Adam` has stepped.
#[derive(Debug, Clone, PartialEq)]
pub struct BurnAdamProbeReport {
    /// One entry per parameter tensor, ordered by id, with Adam's step count `t`.
    pub params: Vec<(ParamId, usize, EffectiveLrStats)>,
    /// Over all entries; `None` if the record is empty.
    pub model: Option<EffectiveLrStats>,
}

/// `t` and the second moment Adam divides by (the running maximum under AMSGrad), flat.
fn second_moment<B: Backend, const D: usize>(state: &AdamState<B, D>) -> (usize, Tensor<B, 1>) {
    let momentum = &state.momentum;
    let v = momentum
        .max_moment_2
        .clone()
        .unwrap_or_else(|| momentum.moment_2.clone());
    let numel = v.shape().num_elements();
    (momentum.time, v.reshape([numel]))
}

/// Effective-learning-rate statistics of burn's `Adam` from its record
/// (`optimizer.to_record()`, passed by reference) with one device read:
/// `lr / (sqrt(v / (1 - beta_2^t)) + eps)` per entry, in f64.
pub fn burn_adam_effective_lr<'a, B: AutodiffBackend>(
    records: impl IntoIterator<Item = (&'a ParamId, &'a AdaptorRecord<Adam, B>)>,
    hyper: &BurnAdamHyper,
) -> BurnAdamProbeReport {
    let mut entries: Vec<(ParamId, usize, Tensor<B::InnerBackend, 1>)> = records
        .into_iter()
        .map(|(id, record)| {
            let AdaptorRecord::V1(record) = record;
            let (time, v) = match record {
                AdaptorRecordV1::Rank0(s) => second_moment(s),
                AdaptorRecordV1::Rank1(s) => second_moment(s),
                AdaptorRecordV1::Rank2(s) => second_moment(s),
                AdaptorRecordV1::Rank3(s) => second_moment(s),
                AdaptorRecordV1::Rank4(s) => second_moment(s),
                AdaptorRecordV1::Rank5(s) => second_moment(s),
                AdaptorRecordV1::Rank6(s) => second_moment(s),
                AdaptorRecordV1::Rank7(s) => second_moment(s),
                AdaptorRecordV1::Rank8(s) => second_moment(s),
            };
            (*id, time, v)
        })
        .collect();
    entries.sort_by_key(|(id, _, _)| *id);

    let mut transaction = Transaction::default();
    let mut ids = Vec::with_capacity(entries.len());
    for (id, time, v) in entries {
        transaction = transaction.register(v);
        ids.push((id, time));
    }
    let data = transaction.execute();

    let host = HostAdam {
        lr: hyper.lr,
        beta_2: hyper.beta_2 as f64,
        epsilon: hyper.epsilon as f64,
    };
    let ceiling = host.ceiling();
    let mut all = Vec::new();
    let mut params = Vec::with_capacity(ids.len());
    for ((id, time), v) in ids.into_iter().zip(&data) {
        let start = all.len();
        all.extend(host.effective_lrs(v.iter::<f64>(), time));
        let mut lrs = all[start..].to_vec();
        if let Some(stats) = EffectiveLrStats::from_values(&mut lrs, ceiling) {
            params.push((id, time, stats));
        }
    }
    BurnAdamProbeReport {
        params,
        model: EffectiveLrStats::from_values(&mut all, ceiling),
    }
}
