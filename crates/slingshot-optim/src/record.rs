//! The checkpointable state of [`crate::ProbedAdam`].

use burn::record::Record;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// Adam's state of one parameter tensor, flattened so that one record type holds every rank.
#[derive(Record, Debug, Clone)]
pub struct ProbedAdamParamRecord<B: Backend> {
    /// The parameter, as `ParamId::val`.
    pub param_id: u64,
    /// Steps taken, `t`.
    pub time: usize,
    /// The parameter's dimensions.
    pub shape: Vec<usize>,
    /// First moment, row-major.
    pub moment_1: Tensor<B, 1>,
    /// Second moment, row-major.
    pub moment_2: Tensor<B, 1>,
}

/// The state of a [`crate::ProbedAdam`]: Adam's moments and step counts, everything needed to
/// continue bit-identically. The probe's values are not in it: after loading, the first step
/// has no previous one to compare with.
#[derive(Record, Debug, Clone)]
pub struct ProbedAdamRecord<B: Backend> {
    /// One entry per parameter tensor, ordered by id.
    pub params: Vec<ProbedAdamParamRecord<B>>,
}
